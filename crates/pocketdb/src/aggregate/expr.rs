//! Aggregation expressions: parsing MongoDB's expression language into [`Expr`] and
//! evaluating it against a document. The same engine serves `$expr` in queries.
//!
//! Evaluation yields `Option<Value>`: `None` is MongoDB's "missing" (a field path that
//! leads nowhere), which differs from `null` in a few places — `$ifNull` and field
//! creation treat both as absent, but comparisons order missing below `null`, and
//! `$type` reports `"missing"`.

use super::dates;
use crate::error::{Error, Result};
use crate::query::Regex;
use crate::value::{compare_values, BsonType};
use serde_json::{Map, Number, Value};
use std::cmp::Ordering;

/// A parsed aggregation expression.
///
/// ```
/// use pocketdb::aggregate::Expr;
/// use serde_json::json;
///
/// let e = Expr::parse(&json!({"$add": ["$a", {"$multiply": ["$b", 2]}]}))?;
/// assert_eq!(e.evaluate(&json!({"a": 1, "b": 3}))?, Some(json!(7)));
/// # Ok::<(), pocketdb::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Expr(Node);

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Lit(Value),
    /// `$a.b`: a path from the current document.
    Field(Vec<String>),
    /// `$$name.a.b`: a variable, then a path.
    Var(String, Vec<String>),
    Object(Vec<(String, Node)>),
    Array(Vec<Node>),
    Op(Op, Vec<Node>),
    Switch {
        branches: Vec<(Node, Node)>,
        default: Option<Box<Node>>,
    },
    Filter {
        input: Box<Node>,
        var: String,
        cond: Box<Node>,
        limit: Option<Box<Node>>,
    },
    Map {
        input: Box<Node>,
        var: String,
        body: Box<Node>,
    },
    Reduce {
        input: Box<Node>,
        init: Box<Node>,
        body: Box<Node>,
    },
    Let {
        vars: Vec<(String, Node)>,
        body: Box<Node>,
    },
    RegexMatch {
        input: Box<Node>,
        regex: RegexArg,
    },
    Trim {
        op: &'static str,
        input: Box<Node>,
        chars: Option<Box<Node>>,
    },
    DatePart {
        op: &'static str,
        date: Box<Node>,
    },
    DateToString {
        date: Box<Node>,
        format: Option<Box<Node>>,
        on_null: Option<Box<Node>>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RegexArg {
    Fixed(Regex),
    Dynamic(Box<Node>, Option<Box<Node>>),
}

/// Operators taking a plain list of argument expressions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Add,
    Subtract,
    Multiply,
    Divide,
    Mod,
    Abs,
    Round,
    Trunc,
    Floor,
    Ceil,
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
    Cmp,
    And,
    Or,
    Not,
    Cond,
    IfNull,
    Concat,
    SubstrCP,
    ToLower,
    ToUpper,
    Split,
    StrLenCP,
    Size,
    ArrayElemAt,
    In,
    ConcatArrays,
    Slice,
    IsArray,
    First,
    Last,
    Sum,
    Avg,
    Min,
    Max,
    MergeObjects,
    Type,
    ToString,
    ToInt,
    ToLong,
    ToDouble,
    ToBool,
    ToDate,
}

/// Name, operator and accepted argument counts (`max == usize::MAX` for variadic).
const OPS: &[(&str, Op, usize, usize)] = &[
    ("$add", Op::Add, 0, usize::MAX),
    ("$subtract", Op::Subtract, 2, 2),
    ("$multiply", Op::Multiply, 0, usize::MAX),
    ("$divide", Op::Divide, 2, 2),
    ("$mod", Op::Mod, 2, 2),
    ("$abs", Op::Abs, 1, 1),
    ("$round", Op::Round, 1, 2),
    ("$trunc", Op::Trunc, 1, 2),
    ("$floor", Op::Floor, 1, 1),
    ("$ceil", Op::Ceil, 1, 1),
    ("$eq", Op::Eq, 2, 2),
    ("$ne", Op::Ne, 2, 2),
    ("$gt", Op::Gt, 2, 2),
    ("$gte", Op::Gte, 2, 2),
    ("$lt", Op::Lt, 2, 2),
    ("$lte", Op::Lte, 2, 2),
    ("$cmp", Op::Cmp, 2, 2),
    ("$and", Op::And, 0, usize::MAX),
    ("$or", Op::Or, 0, usize::MAX),
    ("$not", Op::Not, 1, 1),
    ("$cond", Op::Cond, 3, 3),
    ("$ifNull", Op::IfNull, 2, usize::MAX),
    ("$concat", Op::Concat, 0, usize::MAX),
    ("$substrCP", Op::SubstrCP, 3, 3),
    ("$toLower", Op::ToLower, 1, 1),
    ("$toUpper", Op::ToUpper, 1, 1),
    ("$split", Op::Split, 2, 2),
    ("$strLenCP", Op::StrLenCP, 1, 1),
    ("$size", Op::Size, 1, 1),
    ("$arrayElemAt", Op::ArrayElemAt, 2, 2),
    ("$in", Op::In, 2, 2),
    ("$concatArrays", Op::ConcatArrays, 0, usize::MAX),
    ("$slice", Op::Slice, 2, 3),
    ("$isArray", Op::IsArray, 1, 1),
    ("$first", Op::First, 1, 1),
    ("$last", Op::Last, 1, 1),
    ("$sum", Op::Sum, 0, usize::MAX),
    ("$avg", Op::Avg, 0, usize::MAX),
    ("$min", Op::Min, 0, usize::MAX),
    ("$max", Op::Max, 0, usize::MAX),
    ("$mergeObjects", Op::MergeObjects, 0, usize::MAX),
    ("$type", Op::Type, 1, 1),
    ("$toString", Op::ToString, 1, 1),
    ("$toInt", Op::ToInt, 1, 1),
    ("$toLong", Op::ToLong, 1, 1),
    ("$toDouble", Op::ToDouble, 1, 1),
    ("$toBool", Op::ToBool, 1, 1),
    ("$toDate", Op::ToDate, 1, 1),
];

const DATE_PARTS: &[&str] = &[
    "$year",
    "$month",
    "$dayOfMonth",
    "$hour",
    "$minute",
    "$second",
    "$millisecond",
    "$dayOfWeek",
    "$dayOfYear",
];

/// Deepest nesting of an expression accepted (bounds parser and evaluator recursion).
const MAX_DEPTH: usize = 100;

fn err(op: &str, message: impl Into<String>) -> Error {
    Error::pipeline(op, message)
}

fn type_name(v: Option<&Value>) -> &'static str {
    match v {
        None => "missing",
        Some(v) if dates::is_date(v) => "date",
        Some(v) => BsonType::of(v).name(),
    }
}

impl Expr {
    /// Parses an expression: a `"$field.path"`, a `"$$variable"`, an operator object
    /// (`{"$add": [...]}`), an object or array of expressions, or a literal.
    pub fn parse(value: &Value) -> Result<Expr> {
        Ok(Expr(parse(value, 0)?))
    }

    /// A constant expression.
    pub fn literal(value: Value) -> Expr {
        Expr(Node::Lit(value))
    }

    /// Evaluates against `doc` (bound to `$$ROOT` and `$$CURRENT`). `None` means missing.
    pub fn evaluate(&self, doc: &Value) -> Result<Option<Value>> {
        self.eval(&Env::new(doc))
    }

    pub(crate) fn eval(&self, env: &Env<'_>) -> Result<Option<Value>> {
        eval(&self.0, env)
    }

    /// The field path when the expression is exactly `"$a.b"`.
    pub(crate) fn as_field_path(&self) -> Option<&[String]> {
        match &self.0 {
            Node::Field(p) => Some(p),
            _ => None,
        }
    }

    /// The constant value when the expression is a literal.
    pub(crate) fn as_literal(&self) -> Option<&Value> {
        match &self.0 {
            Node::Lit(v) => Some(v),
            _ => None,
        }
    }
}

// ----- parsing ---------------------------------------------------------------------------

fn parse_path(op: &str, text: &str) -> Result<Vec<String>> {
    let segs: Vec<String> = text.split('.').map(str::to_string).collect();
    if segs
        .iter()
        .any(|s| s.is_empty() || s.starts_with('$') || s.contains('\0'))
    {
        return Err(err(op, format!("invalid field path '{text}'")));
    }
    Ok(segs)
}

fn parse(value: &Value, depth: usize) -> Result<Node> {
    if depth > MAX_DEPTH {
        return Err(err(
            "expression",
            format!("nested more than {MAX_DEPTH} levels"),
        ));
    }
    match value {
        Value::String(s) => {
            if let Some(var) = s.strip_prefix("$$") {
                let mut parts = var.splitn(2, '.');
                let name = parts.next().unwrap_or_default();
                if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
                    return Err(err("expression", format!("invalid variable name '{s}'")));
                }
                let path = match parts.next() {
                    Some(rest) => parse_path("expression", rest)?,
                    None => Vec::new(),
                };
                Ok(Node::Var(name.to_string(), path))
            } else if let Some(path) = s.strip_prefix('$') {
                if path.is_empty() {
                    return Err(err("expression", "'$' is not a valid field path"));
                }
                Ok(Node::Field(parse_path("expression", path)?))
            } else {
                Ok(Node::Lit(value.clone()))
            }
        }
        Value::Array(items) => {
            let nodes = items
                .iter()
                .map(|i| parse(i, depth + 1))
                .collect::<Result<Vec<_>>>()?;
            Ok(fold_array(nodes))
        }
        Value::Object(map) => {
            let Some(first) = map.keys().next() else {
                return Ok(Node::Lit(Value::Object(Map::new())));
            };
            if first.starts_with('$') {
                if map.len() != 1 {
                    return Err(err(
                        first,
                        "an expression object with an operator must have exactly one field",
                    ));
                }
                let arg = map.values().next().unwrap_or(&Value::Null);
                if dates::is_date(value) {
                    return Ok(Node::Lit(value.clone()));
                }
                return parse_operator(first, arg, depth);
            }
            let mut fields = Vec::with_capacity(map.len());
            for (k, v) in map {
                if k.starts_with('$') || k.contains('.') || k.is_empty() {
                    return Err(err(
                        "expression",
                        format!("field name '{k}' in an expression object may not start with '$' or contain '.'"),
                    ));
                }
                fields.push((k.clone(), parse(v, depth + 1)?));
            }
            Ok(fold_object(fields))
        }
        other => Ok(Node::Lit(other.clone())),
    }
}

/// Arrays and objects of literals become literals (cheaper to evaluate).
fn fold_array(nodes: Vec<Node>) -> Node {
    if nodes.iter().all(|n| matches!(n, Node::Lit(_))) {
        Node::Lit(Value::Array(
            nodes
                .into_iter()
                .filter_map(|n| match n {
                    Node::Lit(v) => Some(v),
                    _ => None,
                })
                .collect(),
        ))
    } else {
        Node::Array(nodes)
    }
}

fn fold_object(fields: Vec<(String, Node)>) -> Node {
    if fields.iter().all(|(_, n)| matches!(n, Node::Lit(_))) {
        Node::Lit(Value::Object(
            fields
                .into_iter()
                .filter_map(|(k, n)| match n {
                    Node::Lit(v) => Some((k, v)),
                    _ => None,
                })
                .collect(),
        ))
    } else {
        Node::Object(fields)
    }
}

fn args_of(op: &str, arg: &Value, depth: usize) -> Result<Vec<Node>> {
    match arg {
        Value::Array(items) => items.iter().map(|i| parse(i, depth + 1)).collect(),
        other => Ok(vec![parse(other, depth + 1)?]),
    }
    .map_err(|e| match e {
        Error::InvalidPipeline { .. } => e,
        other => err(op, other.to_string()),
    })
}

fn spec_object<'a>(op: &str, arg: &'a Value) -> Result<&'a Map<String, Value>> {
    arg.as_object()
        .ok_or_else(|| err(op, "expects an object argument"))
}

fn check_keys(op: &str, spec: &Map<String, Value>, allowed: &[&str]) -> Result<()> {
    for k in spec.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(err(op, format!("unknown argument '{k}'")));
        }
    }
    Ok(())
}

fn required<'a>(op: &str, spec: &'a Map<String, Value>, key: &str) -> Result<&'a Value> {
    spec.get(key)
        .ok_or_else(|| err(op, format!("missing required argument '{key}'")))
}

fn var_name(op: &str, v: Option<&Value>, default: &str) -> Result<String> {
    match v {
        None => Ok(default.to_string()),
        Some(Value::String(s))
            if !s.is_empty()
                && !s.starts_with('$')
                && s.chars().all(|c| c.is_alphanumeric() || c == '_') =>
        {
            Ok(s.clone())
        }
        Some(other) => Err(err(op, format!("invalid variable name {other}"))),
    }
}

fn opt(spec: &Map<String, Value>, key: &str, depth: usize) -> Result<Option<Box<Node>>> {
    spec.get(key)
        .map(|v| parse(v, depth + 1).map(Box::new))
        .transpose()
}

fn parse_operator(name: &str, arg: &Value, depth: usize) -> Result<Node> {
    let boxed = |v: &Value| parse(v, depth + 1).map(Box::new);
    match name {
        "$literal" => return Ok(Node::Lit(arg.clone())),
        "$cond" if arg.is_object() => {
            let spec = spec_object(name, arg)?;
            check_keys(name, spec, &["if", "then", "else"])?;
            let args = ["if", "then", "else"]
                .iter()
                .map(|k| parse(required(name, spec, k)?, depth + 1))
                .collect::<Result<Vec<_>>>()?;
            return Ok(Node::Op(Op::Cond, args));
        }
        "$switch" => {
            let spec = spec_object(name, arg)?;
            check_keys(name, spec, &["branches", "default"])?;
            let branches = required(name, spec, "branches")?
                .as_array()
                .ok_or_else(|| err(name, "'branches' must be an array"))?;
            let mut out = Vec::with_capacity(branches.len());
            for b in branches {
                let b = spec_object(name, b)?;
                check_keys(name, b, &["case", "then"])?;
                out.push((
                    parse(required(name, b, "case")?, depth + 1)?,
                    parse(required(name, b, "then")?, depth + 1)?,
                ));
            }
            return Ok(Node::Switch {
                branches: out,
                default: opt(spec, "default", depth)?,
            });
        }
        "$filter" => {
            let spec = spec_object(name, arg)?;
            check_keys(name, spec, &["input", "as", "cond", "limit"])?;
            return Ok(Node::Filter {
                input: boxed(required(name, spec, "input")?)?,
                var: var_name(name, spec.get("as"), "this")?,
                cond: boxed(required(name, spec, "cond")?)?,
                limit: opt(spec, "limit", depth)?,
            });
        }
        "$map" => {
            let spec = spec_object(name, arg)?;
            check_keys(name, spec, &["input", "as", "in"])?;
            return Ok(Node::Map {
                input: boxed(required(name, spec, "input")?)?,
                var: var_name(name, spec.get("as"), "this")?,
                body: boxed(required(name, spec, "in")?)?,
            });
        }
        "$reduce" => {
            let spec = spec_object(name, arg)?;
            check_keys(name, spec, &["input", "initialValue", "in"])?;
            return Ok(Node::Reduce {
                input: boxed(required(name, spec, "input")?)?,
                init: boxed(required(name, spec, "initialValue")?)?,
                body: boxed(required(name, spec, "in")?)?,
            });
        }
        "$let" => {
            let spec = spec_object(name, arg)?;
            check_keys(name, spec, &["vars", "in"])?;
            let vars = spec_object(name, required(name, spec, "vars")?)?;
            let mut out = Vec::with_capacity(vars.len());
            for (k, v) in vars {
                out.push((
                    var_name(name, Some(&Value::String(k.clone())), "")?,
                    parse(v, depth + 1)?,
                ));
            }
            return Ok(Node::Let {
                vars: out,
                body: boxed(required(name, spec, "in")?)?,
            });
        }
        "$regexMatch" => {
            let spec = spec_object(name, arg)?;
            check_keys(name, spec, &["input", "regex", "options"])?;
            let input = boxed(required(name, spec, "input")?)?;
            let pattern = required(name, spec, "regex")?;
            let regex = match (pattern, spec.get("options")) {
                (Value::String(p), None) => RegexArg::Fixed(compile_regex(p, "")?),
                (Value::String(p), Some(Value::String(o))) => RegexArg::Fixed(compile_regex(p, o)?),
                (Value::Object(m), None) if m.contains_key("$regex") => {
                    let p = m.get("$regex").and_then(Value::as_str).unwrap_or_default();
                    let o = m
                        .get("$options")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    RegexArg::Fixed(compile_regex(p, o)?)
                }
                (p, o) => RegexArg::Dynamic(
                    boxed(p)?,
                    o.map(|o| parse(o, depth + 1).map(Box::new)).transpose()?,
                ),
            };
            return Ok(Node::RegexMatch { input, regex });
        }
        "$trim" | "$ltrim" | "$rtrim" => {
            let spec = spec_object(name, arg)?;
            check_keys(name, spec, &["input", "chars"])?;
            let op = match name {
                "$trim" => "$trim",
                "$ltrim" => "$ltrim",
                _ => "$rtrim",
            };
            return Ok(Node::Trim {
                op,
                input: boxed(required(name, spec, "input")?)?,
                chars: opt(spec, "chars", depth)?,
            });
        }
        "$dateToString" => {
            let spec = spec_object(name, arg)?;
            check_keys(name, spec, &["date", "format", "timezone", "onNull"])?;
            check_utc(name, spec.get("timezone"))?;
            return Ok(Node::DateToString {
                date: boxed(required(name, spec, "date")?)?,
                format: opt(spec, "format", depth)?,
                on_null: opt(spec, "onNull", depth)?,
            });
        }
        _ => {}
    }
    if let Some(op) = DATE_PARTS.iter().find(|p| **p == name) {
        let date = match arg {
            Value::Object(spec) if spec.contains_key("date") => {
                check_keys(name, spec, &["date", "timezone"])?;
                check_utc(name, spec.get("timezone"))?;
                boxed(required(name, spec, "date")?)?
            }
            Value::Array(items) if items.len() == 1 => boxed(&items[0])?,
            other => boxed(other)?,
        };
        return Ok(Node::DatePart { op, date });
    }
    let Some(&(_, op, min, max)) = OPS.iter().find(|(n, ..)| *n == name) else {
        return Err(err(name, "unknown expression operator"));
    };
    let args = args_of(name, arg, depth)?;
    if args.len() < min || args.len() > max {
        let want = if min == max {
            format!("exactly {min}")
        } else if max == usize::MAX {
            format!("at least {min}")
        } else {
            format!("{min} to {max}")
        };
        return Err(err(
            name,
            format!("takes {want} argument(s), got {}", args.len()),
        ));
    }
    Ok(Node::Op(op, args))
}

fn check_utc(op: &str, tz: Option<&Value>) -> Result<()> {
    match tz {
        None => Ok(()),
        Some(Value::String(s)) if matches!(s.as_str(), "UTC" | "Z" | "+00:00" | "GMT") => Ok(()),
        Some(other) => Err(err(
            op,
            format!("only UTC dates are supported, got timezone {other}"),
        )),
    }
}

fn compile_regex(pattern: &str, options: &str) -> Result<Regex> {
    Regex::new(pattern, options).map_err(|e| err("$regexMatch", e.to_string()))
}

// ----- evaluation ------------------------------------------------------------------------

/// The variables an expression sees.
#[derive(Debug, Clone)]
pub(crate) struct Env<'a> {
    pub root: &'a Value,
    pub vars: Vec<(String, Value)>,
}

impl<'a> Env<'a> {
    pub(crate) fn new(root: &'a Value) -> Env<'a> {
        Env {
            root,
            vars: Vec::new(),
        }
    }

    fn with(&self, name: &str, value: Value) -> Env<'a> {
        let mut vars = self.vars.clone();
        vars.push((name.to_string(), value));
        Env {
            root: self.root,
            vars,
        }
    }

    fn var(&self, name: &str) -> Result<Option<&Value>> {
        if let Some((_, v)) = self.vars.iter().rev().find(|(k, _)| k == name) {
            return Ok(Some(v));
        }
        match name {
            "ROOT" | "CURRENT" => Ok(Some(self.root)),
            "REMOVE" => Ok(None),
            _ => Err(err(
                "expression",
                format!("use of undefined variable $${name}"),
            )),
        }
    }
}

/// Follows a path with aggregation semantics: through objects, and through arrays by
/// mapping over their elements (elements lacking the field are dropped; nested arrays
/// stay nested). Numeric segments are field names, not array indexes.
pub(crate) fn field_path(value: &Value, segs: &[String]) -> Option<Value> {
    let Some((seg, rest)) = segs.split_first() else {
        return Some(value.clone());
    };
    match value {
        Value::Object(m) => field_path(m.get(seg)?, rest),
        Value::Array(items) => Some(Value::Array(
            items.iter().filter_map(|i| array_path(i, segs)).collect(),
        )),
        _ => None,
    }
}

fn array_path(item: &Value, segs: &[String]) -> Option<Value> {
    match item {
        Value::Object(_) => field_path(item, segs),
        Value::Array(items) => Some(Value::Array(
            items.iter().filter_map(|i| array_path(i, segs)).collect(),
        )),
        _ => None,
    }
}

/// MongoDB's truthiness: `false`, `null`, missing and numeric zero are false.
pub(crate) fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(_) => true,
    }
}

/// Comparison with missing ordered below every value (`null` included).
pub(crate) fn compare_opt(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(x), Some(y)) => compare_values(x, y),
    }
}

fn nullish(v: &Option<Value>) -> bool {
    matches!(v, None | Some(Value::Null))
}

/// A number as MongoDB arithmetic sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    pub(crate) fn of(v: &Value) -> Option<Num> {
        match v {
            Value::Number(n) => Some(match n.as_i64() {
                Some(i) => Num::Int(i),
                None => Num::Float(n.as_f64()?),
            }),
            _ => None,
        }
    }

    pub(crate) fn f(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }

    pub(crate) fn value(self) -> Value {
        match self {
            Num::Int(i) => Value::from(i),
            Num::Float(f) => float_value(f),
        }
    }
}

/// A float as JSON; NaN and infinities, which JSON cannot hold, become `null`.
pub(crate) fn float_value(f: f64) -> Value {
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

fn eval(node: &Node, env: &Env<'_>) -> Result<Option<Value>> {
    match node {
        Node::Lit(v) => Ok(Some(v.clone())),
        Node::Field(path) => Ok(field_path(env.root, path)),
        Node::Var(name, path) => Ok(env.var(name)?.and_then(|v| field_path(v, path))),
        Node::Object(fields) => {
            let mut out = Map::with_capacity(fields.len());
            for (k, n) in fields {
                if let Some(v) = eval(n, env)? {
                    out.insert(k.clone(), v);
                }
            }
            Ok(Some(Value::Object(out)))
        }
        Node::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for n in items {
                out.push(eval(n, env)?.unwrap_or(Value::Null));
            }
            Ok(Some(Value::Array(out)))
        }
        Node::Op(op, args) => eval_op(*op, args, env),
        Node::Switch { branches, default } => {
            for (case, then) in branches {
                if truthy(eval(case, env)?.as_ref()) {
                    return eval(then, env);
                }
            }
            match default {
                Some(d) => eval(d, env),
                None => Err(err("$switch", "no branch matched and no default was given")),
            }
        }
        Node::Filter {
            input,
            var,
            cond,
            limit,
        } => {
            let items = match eval(input, env)? {
                None | Some(Value::Null) => return Ok(Some(Value::Null)),
                Some(Value::Array(items)) => items,
                Some(other) => {
                    return Err(err(
                        "$filter",
                        format!("input must be an array, got {}", type_name(Some(&other))),
                    ))
                }
            };
            let limit = match limit {
                None => None,
                Some(l) => match eval(l, env)? {
                    None | Some(Value::Null) => None,
                    Some(v) => match whole(&v) {
                        Some(n) if n >= 1 => Some(n as usize),
                        _ => return Err(err("$filter", "limit must be a positive integer")),
                    },
                },
            };
            let mut out = Vec::new();
            for item in items {
                if limit.is_some_and(|l| out.len() >= l) {
                    break;
                }
                let inner = env.with(var, item.clone());
                if truthy(eval(cond, &inner)?.as_ref()) {
                    out.push(item);
                }
            }
            Ok(Some(Value::Array(out)))
        }
        Node::Map { input, var, body } => {
            let items = match eval(input, env)? {
                None | Some(Value::Null) => return Ok(Some(Value::Null)),
                Some(Value::Array(items)) => items,
                Some(other) => {
                    return Err(err(
                        "$map",
                        format!("input must be an array, got {}", type_name(Some(&other))),
                    ))
                }
            };
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                let inner = env.with(var, item);
                out.push(eval(body, &inner)?.unwrap_or(Value::Null));
            }
            Ok(Some(Value::Array(out)))
        }
        Node::Reduce { input, init, body } => {
            let items = match eval(input, env)? {
                None | Some(Value::Null) => return Ok(Some(Value::Null)),
                Some(Value::Array(items)) => items,
                Some(other) => {
                    return Err(err(
                        "$reduce",
                        format!("input must be an array, got {}", type_name(Some(&other))),
                    ))
                }
            };
            let mut acc = eval(init, env)?.unwrap_or(Value::Null);
            for item in items {
                let inner = env.with("value", acc).with("this", item);
                acc = eval(body, &inner)?.unwrap_or(Value::Null);
            }
            Ok(Some(acc))
        }
        Node::Let { vars, body } => {
            let mut inner = env.clone();
            for (k, n) in vars {
                let v = eval(n, env)?.unwrap_or(Value::Null);
                inner = inner.with(k, v);
            }
            eval(body, &inner)
        }
        Node::RegexMatch { input, regex } => {
            let text = match eval(input, env)? {
                None | Some(Value::Null) => return Ok(Some(Value::Bool(false))),
                Some(Value::String(s)) => s,
                Some(other) => {
                    return Err(err(
                        "$regexMatch",
                        format!("input must be a string, got {}", type_name(Some(&other))),
                    ))
                }
            };
            let matched = match regex {
                RegexArg::Fixed(re) => re.is_match(&text),
                RegexArg::Dynamic(p, o) => {
                    let pattern = match eval(p, env)? {
                        None | Some(Value::Null) => return Ok(Some(Value::Bool(false))),
                        Some(Value::String(s)) => s,
                        Some(other) => {
                            return Err(err(
                                "$regexMatch",
                                format!("regex must be a string, got {}", type_name(Some(&other))),
                            ))
                        }
                    };
                    let options = match o {
                        Some(o) => match eval(o, env)? {
                            Some(Value::String(s)) => s,
                            None | Some(Value::Null) => String::new(),
                            Some(_) => return Err(err("$regexMatch", "options must be a string")),
                        },
                        None => String::new(),
                    };
                    compile_regex(&pattern, &options)?.is_match(&text)
                }
            };
            Ok(Some(Value::Bool(matched)))
        }
        Node::Trim { op, input, chars } => {
            let text = match eval(input, env)? {
                None | Some(Value::Null) => return Ok(Some(Value::Null)),
                Some(Value::String(s)) => s,
                Some(other) => {
                    return Err(err(
                        op,
                        format!("input must be a string, got {}", type_name(Some(&other))),
                    ))
                }
            };
            let set: Option<Vec<char>> = match chars {
                None => None,
                Some(c) => match eval(c, env)? {
                    None | Some(Value::Null) => return Ok(Some(Value::Null)),
                    Some(Value::String(s)) => Some(s.chars().collect()),
                    Some(_) => return Err(err(op, "chars must be a string")),
                },
            };
            let strip = |c: char| match &set {
                Some(set) => set.contains(&c),
                None => c.is_whitespace() || c == '\0',
            };
            let out = match *op {
                "$ltrim" => text.trim_start_matches(strip),
                "$rtrim" => text.trim_end_matches(strip),
                _ => text.trim_matches(strip),
            };
            Ok(Some(Value::String(out.to_string())))
        }
        Node::DatePart { op, date } => {
            let Some(millis) = date_arg(op, eval(date, env)?)? else {
                return Ok(Some(Value::Null));
            };
            let p = dates::parts(millis);
            let n = match *op {
                "$year" => p.year,
                "$month" => p.month,
                "$dayOfMonth" => p.day,
                "$hour" => p.hour,
                "$minute" => p.minute,
                "$second" => p.second,
                "$millisecond" => p.millisecond,
                "$dayOfWeek" => p.day_of_week,
                _ => p.day_of_year,
            };
            Ok(Some(Value::from(n)))
        }
        Node::DateToString {
            date,
            format,
            on_null,
        } => {
            let Some(millis) = date_arg("$dateToString", eval(date, env)?)? else {
                return match on_null {
                    Some(n) => eval(n, env),
                    None => Ok(Some(Value::Null)),
                };
            };
            let fmt = match format {
                None => "%Y-%m-%dT%H:%M:%S.%LZ".to_string(),
                Some(f) => match eval(f, env)? {
                    Some(Value::String(s)) => s,
                    None | Some(Value::Null) => return Ok(Some(Value::Null)),
                    Some(_) => return Err(err("$dateToString", "format must be a string")),
                },
            };
            dates::format(millis, &fmt)
                .map(|s| Some(Value::String(s)))
                .map_err(|m| err("$dateToString", m))
        }
    }
}

fn date_arg(op: &str, v: Option<Value>) -> Result<Option<i64>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match dates::date_millis(&v) {
            Some(m) => Ok(Some(m)),
            None => Err(err(
                op,
                format!(
                    "can't convert from BSON type {} to Date",
                    type_name(Some(&v))
                ),
            )),
        },
    }
}

/// An integral number (`2` or `2.0`).
pub(crate) fn whole(v: &Value) -> Option<i64> {
    match Num::of(v)? {
        Num::Int(i) => Some(i),
        Num::Float(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Some(f as i64),
        Num::Float(_) => None,
    }
}

fn eval_all(args: &[Node], env: &Env<'_>) -> Result<Vec<Option<Value>>> {
    args.iter().map(|a| eval(a, env)).collect()
}

fn number_arg(op: &str, v: &Value) -> Result<Num> {
    Num::of(v).ok_or_else(|| {
        err(
            op,
            format!("only supports numeric types, not {}", type_name(Some(v))),
        )
    })
}

fn eval_op(op: Op, args: &[Node], env: &Env<'_>) -> Result<Option<Value>> {
    let name = OPS
        .iter()
        .find(|(_, o, ..)| *o == op)
        .map_or("expression", |(n, ..)| n);
    // Operators with their own evaluation order come first.
    match op {
        Op::And => {
            for a in args {
                if !truthy(eval(a, env)?.as_ref()) {
                    return Ok(Some(Value::Bool(false)));
                }
            }
            return Ok(Some(Value::Bool(true)));
        }
        Op::Or => {
            for a in args {
                if truthy(eval(a, env)?.as_ref()) {
                    return Ok(Some(Value::Bool(true)));
                }
            }
            return Ok(Some(Value::Bool(false)));
        }
        Op::Cond => {
            let pick = if truthy(eval(&args[0], env)?.as_ref()) {
                &args[1]
            } else {
                &args[2]
            };
            return eval(pick, env);
        }
        Op::IfNull => {
            let (last, rest) = args.split_last().ok_or_else(|| err(name, "no arguments"))?;
            for a in rest {
                let v = eval(a, env)?;
                if !nullish(&v) {
                    return Ok(v);
                }
            }
            return eval(last, env);
        }
        _ => {}
    }
    let vals = eval_all(args, env)?;
    let v0 = vals.first().cloned().flatten();
    match op {
        Op::Add | Op::Multiply => arith_fold(name, op, &vals),
        Op::Subtract => subtract(&vals),
        Op::Divide => {
            if vals.iter().any(nullish) {
                return Ok(Some(Value::Null));
            }
            let (a, b) = (
                number_arg(name, vals[0].as_ref().unwrap_or(&Value::Null))?,
                number_arg(name, vals[1].as_ref().unwrap_or(&Value::Null))?,
            );
            if b.f() == 0.0 {
                return Err(err(name, "can't $divide by zero"));
            }
            Ok(Some(float_value(a.f() / b.f())))
        }
        Op::Mod => {
            if vals.iter().any(nullish) {
                return Ok(Some(Value::Null));
            }
            let (a, b) = (
                number_arg(name, vals[0].as_ref().unwrap_or(&Value::Null))?,
                number_arg(name, vals[1].as_ref().unwrap_or(&Value::Null))?,
            );
            match (a, b) {
                (_, b) if b.f() == 0.0 => Err(err(name, "can't $mod by zero")),
                (Num::Int(x), Num::Int(y)) => Ok(Some(Value::from(x.wrapping_rem(y)))),
                (x, y) => Ok(Some(float_value(x.f() % y.f()))),
            }
        }
        Op::Abs | Op::Floor | Op::Ceil => {
            let Some(v) = v0.filter(|v| !v.is_null()) else {
                return Ok(Some(Value::Null));
            };
            Ok(Some(match (op, number_arg(name, &v)?) {
                (Op::Abs, Num::Int(i)) => i
                    .checked_abs()
                    .map_or_else(|| float_value((i as f64).abs()), Value::from),
                (Op::Abs, Num::Float(f)) => float_value(f.abs()),
                (_, Num::Int(i)) => Value::from(i),
                (Op::Floor, Num::Float(f)) => float_value(f.floor()),
                (_, Num::Float(f)) => float_value(f.ceil()),
            }))
        }
        Op::Round | Op::Trunc => {
            if vals.iter().any(nullish) {
                return Ok(Some(Value::Null));
            }
            let n = number_arg(name, vals[0].as_ref().unwrap_or(&Value::Null))?;
            let place = match vals.get(1) {
                None => 0,
                Some(p) => match p.as_ref().and_then(whole) {
                    Some(p) if (-20..100).contains(&p) => p,
                    _ => return Err(err(name, "place must be an integer between -20 and 100")),
                },
            };
            Ok(Some(round(n, place, op == Op::Trunc)))
        }
        Op::Eq | Op::Ne | Op::Gt | Op::Gte | Op::Lt | Op::Lte | Op::Cmp => {
            let o = compare_opt(vals[0].as_ref(), vals[1].as_ref());
            Ok(Some(match op {
                Op::Eq => Value::Bool(o == Ordering::Equal),
                Op::Ne => Value::Bool(o != Ordering::Equal),
                Op::Gt => Value::Bool(o == Ordering::Greater),
                Op::Gte => Value::Bool(o != Ordering::Less),
                Op::Lt => Value::Bool(o == Ordering::Less),
                Op::Lte => Value::Bool(o != Ordering::Greater),
                _ => Value::from(o as i8),
            }))
        }
        Op::Not => Ok(Some(Value::Bool(!truthy(v0.as_ref())))),
        Op::Concat => {
            let mut out = String::new();
            for v in &vals {
                match v {
                    None | Some(Value::Null) => return Ok(Some(Value::Null)),
                    Some(Value::String(s)) => out.push_str(s),
                    Some(other) => {
                        return Err(err(
                            name,
                            format!("only supports strings, not {}", type_name(Some(other))),
                        ))
                    }
                }
            }
            Ok(Some(Value::String(out)))
        }
        Op::SubstrCP => {
            let s = coerce_string(name, v0)?;
            let start = vals[1].as_ref().and_then(whole);
            let count = vals[2].as_ref().and_then(whole);
            let (Some(start), Some(count)) = (start, count) else {
                return Err(err(name, "starting index and length must be integers"));
            };
            if start < 0 {
                return Err(err(name, "starting index must be non-negative"));
            }
            let take = if count < 0 {
                usize::MAX
            } else {
                count as usize
            };
            Ok(Some(Value::String(
                s.chars().skip(start as usize).take(take).collect(),
            )))
        }
        Op::ToLower | Op::ToUpper => {
            let s = coerce_string(name, v0)?;
            Ok(Some(Value::String(if op == Op::ToLower {
                s.to_lowercase()
            } else {
                s.to_uppercase()
            })))
        }
        Op::Split => {
            let (s, d) = match (&vals[0], &vals[1]) {
                (None | Some(Value::Null), _) | (_, None | Some(Value::Null)) => {
                    return Ok(Some(Value::Null))
                }
                (Some(Value::String(s)), Some(Value::String(d))) => (s, d),
                _ => return Err(err(name, "requires a string and a string delimiter")),
            };
            if d.is_empty() {
                return Err(err(name, "requires a non-empty separator"));
            }
            Ok(Some(Value::Array(
                s.split(d.as_str())
                    .map(|p| Value::String(p.to_string()))
                    .collect(),
            )))
        }
        Op::StrLenCP => match v0 {
            Some(Value::String(s)) => Ok(Some(Value::from(s.chars().count()))),
            other => Err(err(
                name,
                format!(
                    "requires a string argument, found: {}",
                    type_name(other.as_ref())
                ),
            )),
        },
        Op::Size => match v0 {
            Some(Value::Array(items)) => Ok(Some(Value::from(items.len()))),
            other => Err(err(
                name,
                format!(
                    "the argument must be an array, but was of type: {}",
                    type_name(other.as_ref())
                ),
            )),
        },
        Op::ArrayElemAt => {
            let items = match &vals[0] {
                None | Some(Value::Null) => return Ok(Some(Value::Null)),
                Some(Value::Array(items)) => items,
                Some(other) => {
                    return Err(err(
                        name,
                        format!(
                            "first argument must be an array, got {}",
                            type_name(Some(other))
                        ),
                    ))
                }
            };
            let idx = match &vals[1] {
                None | Some(Value::Null) => return Ok(Some(Value::Null)),
                Some(v) => {
                    whole(v).ok_or_else(|| err(name, "second argument must be an integer"))?
                }
            };
            let i = if idx < 0 {
                items.len() as i64 + idx
            } else {
                idx
            };
            Ok(usize::try_from(i).ok().and_then(|i| items.get(i)).cloned())
        }
        Op::In => match &vals[1] {
            Some(Value::Array(items)) => {
                Ok(Some(Value::Bool(items.iter().any(|i| {
                    compare_opt(vals[0].as_ref(), Some(i)) == Ordering::Equal
                }))))
            }
            other => Err(err(
                name,
                format!(
                    "requires an array as a second argument, found: {}",
                    type_name(other.as_ref())
                ),
            )),
        },
        Op::ConcatArrays => {
            let mut out = Vec::new();
            for v in vals {
                match v {
                    None | Some(Value::Null) => return Ok(Some(Value::Null)),
                    Some(Value::Array(items)) => out.extend(items),
                    Some(other) => {
                        return Err(err(
                            name,
                            format!("only supports arrays, not {}", type_name(Some(&other))),
                        ))
                    }
                }
            }
            Ok(Some(Value::Array(out)))
        }
        Op::Slice => {
            if vals.iter().any(nullish) {
                return Ok(Some(Value::Null));
            }
            let Some(Value::Array(items)) = &vals[0] else {
                return Err(err(name, "first argument must be an array"));
            };
            let ints: Vec<i64> = vals[1..]
                .iter()
                .map(|v| v.as_ref().and_then(whole))
                .collect::<Option<_>>()
                .ok_or_else(|| err(name, "position and count must be integers"))?;
            let len = items.len() as i64;
            let (start, count) = match ints.as_slice() {
                [n] if *n >= 0 => (0, *n),
                [n] => ((len + n).max(0), -n),
                [p, n] => {
                    if *n <= 0 {
                        return Err(err(name, "count must be positive"));
                    }
                    let start = if *p < 0 {
                        (len + p).max(0)
                    } else {
                        (*p).min(len)
                    };
                    (start, *n)
                }
                _ => return Err(err(name, "takes 2 or 3 arguments")),
            };
            Ok(Some(Value::Array(
                items
                    .iter()
                    .skip(start as usize)
                    .take(count.max(0) as usize)
                    .cloned()
                    .collect(),
            )))
        }
        Op::IsArray => Ok(Some(Value::Bool(matches!(v0, Some(Value::Array(_)))))),
        Op::First | Op::Last => match v0 {
            None | Some(Value::Null) => Ok(Some(Value::Null)),
            Some(Value::Array(items)) => Ok(if op == Op::First {
                items.first().cloned()
            } else {
                items.last().cloned()
            }),
            Some(other) => Err(err(
                name,
                format!("argument must be an array, got {}", type_name(Some(&other))),
            )),
        },
        Op::Sum | Op::Avg | Op::Min | Op::Max => {
            // One argument: an array's elements; several: the arguments themselves.
            let items: Vec<Value> = if vals.len() == 1 {
                match v0 {
                    Some(Value::Array(items)) => items,
                    Some(v) => vec![v],
                    None => Vec::new(),
                }
            } else {
                vals.into_iter().flatten().collect()
            };
            let kind = match op {
                Op::Sum => super::accum::Kind::Sum,
                Op::Avg => super::accum::Kind::Avg,
                Op::Min => super::accum::Kind::Min,
                _ => super::accum::Kind::Max,
            };
            let mut acc = super::accum::State::new(kind);
            for i in &items {
                acc.add(Some(i));
            }
            Ok(Some(acc.finish()))
        }
        Op::MergeObjects => {
            let mut out = Map::new();
            for v in vals {
                match v {
                    None | Some(Value::Null) => {}
                    Some(Value::Object(m)) => out.extend(m),
                    Some(other) => {
                        return Err(err(
                            name,
                            format!(
                                "requires object inputs, but input is of type {}",
                                type_name(Some(&other))
                            ),
                        ))
                    }
                }
            }
            Ok(Some(Value::Object(out)))
        }
        Op::Type => Ok(Some(Value::String(type_name(v0.as_ref()).to_string()))),
        Op::ToString => convert_to_string(v0),
        Op::ToInt | Op::ToLong => convert_to_int(name, v0, op == Op::ToInt),
        Op::ToDouble => convert_to_double(v0),
        Op::ToBool => Ok(match v0 {
            None | Some(Value::Null) => Some(Value::Null),
            Some(Value::Bool(b)) => Some(Value::Bool(b)),
            Some(Value::Number(n)) => Some(Value::Bool(n.as_f64() != Some(0.0))),
            Some(_) => Some(Value::Bool(true)),
        }),
        Op::ToDate => match v0 {
            None | Some(Value::Null) => Ok(Some(Value::Null)),
            Some(v) if dates::is_date(&v) => Ok(Some(v)),
            Some(Value::String(s)) => dates::parse_rfc3339(&s)
                .map(|m| Some(dates::make_date(m)))
                .ok_or_else(|| err(name, format!("error parsing date string '{s}'"))),
            Some(v) => match Num::of(&v) {
                Some(n) => Ok(Some(dates::make_date(n.f() as i64))),
                None => Err(err(
                    name,
                    format!("can't convert from {} to date", type_name(Some(&v))),
                )),
            },
        },
        Op::And | Op::Or | Op::Cond | Op::IfNull => Ok(None),
    }
}

fn coerce_string(op: &str, v: Option<Value>) -> Result<String> {
    match v {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s),
        Some(Value::Number(n)) => Ok(number_text(&n)),
        Some(v) if dates::is_date(&v) => Ok(date_text(&v)),
        Some(other) => Err(err(
            op,
            format!("can't convert {} to a string", type_name(Some(&other))),
        )),
    }
}

fn date_text(v: &Value) -> String {
    dates::date_millis(v)
        .and_then(|m| dates::format(m, "%Y-%m-%dT%H:%M:%S.%LZ").ok())
        .unwrap_or_default()
}

fn number_text(n: &Number) -> String {
    match n.as_f64() {
        Some(f) if !n.is_i64() && !n.is_u64() && f.fract() == 0.0 && f.abs() < 1e15 => {
            format!("{}", f as i64)
        }
        _ => n.to_string(),
    }
}

fn convert_to_string(v: Option<Value>) -> Result<Option<Value>> {
    Ok(Some(match v {
        None | Some(Value::Null) => Value::Null,
        Some(Value::String(s)) => Value::String(s),
        Some(Value::Bool(b)) => Value::String(b.to_string()),
        Some(Value::Number(n)) => Value::String(number_text(&n)),
        Some(v) if dates::is_date(&v) => Value::String(date_text(&v)),
        Some(other) => {
            return Err(err(
                "$toString",
                format!(
                    "unsupported conversion from {} to string",
                    type_name(Some(&other))
                ),
            ))
        }
    }))
}

fn convert_to_int(op: &str, v: Option<Value>, int32: bool) -> Result<Option<Value>> {
    let out = match v {
        None | Some(Value::Null) => return Ok(Some(Value::Null)),
        Some(Value::Bool(b)) => i64::from(b),
        Some(Value::Number(n)) => match Num::of(&Value::Number(n)) {
            Some(Num::Int(i)) => i,
            Some(Num::Float(f)) if f.is_finite() && f.trunc().abs() < 9.2e18 => f.trunc() as i64,
            _ => return Err(err(op, "conversion overflow")),
        },
        Some(Value::String(s)) => s
            .trim()
            .parse::<i64>()
            .map_err(|_| err(op, format!("failed to parse number '{s}' in $convert")))?,
        Some(v) if dates::is_date(&v) && !int32 => dates::date_millis(&v).unwrap_or_default(),
        Some(other) => {
            return Err(err(
                op,
                format!(
                    "unsupported conversion from {} to an integer",
                    type_name(Some(&other))
                ),
            ))
        }
    };
    if int32 && i32::try_from(out).is_err() {
        return Err(err(
            op,
            format!("conversion overflow: {out} does not fit in an int"),
        ));
    }
    Ok(Some(Value::from(out)))
}

fn convert_to_double(v: Option<Value>) -> Result<Option<Value>> {
    let f = match v {
        None | Some(Value::Null) => return Ok(Some(Value::Null)),
        Some(Value::Bool(b)) => f64::from(u8::from(b)),
        Some(Value::Number(n)) => n.as_f64().unwrap_or_default(),
        Some(Value::String(s)) => s.trim().parse::<f64>().map_err(|_| {
            err(
                "$toDouble",
                format!("failed to parse number '{s}' in $convert"),
            )
        })?,
        Some(v) if dates::is_date(&v) => dates::date_millis(&v).unwrap_or_default() as f64,
        Some(other) => {
            return Err(err(
                "$toDouble",
                format!(
                    "unsupported conversion from {} to double",
                    type_name(Some(&other))
                ),
            ))
        }
    };
    Ok(Some(float_value(f)))
}

/// `$round` (half to even, as MongoDB) and `$trunc` to `place` decimal digits.
fn round(n: Num, place: i64, trunc: bool) -> Value {
    let apply = |x: f64| {
        if trunc {
            x.trunc()
        } else {
            x.round_ties_even()
        }
    };
    match n {
        Num::Int(i) if place >= 0 => Value::from(i),
        Num::Int(i) => {
            let scale = 10f64.powi((-place) as i32);
            let r = apply(i as f64 / scale) * scale;
            if r.abs() < 9.2e18 {
                Value::from(r as i64)
            } else {
                float_value(r)
            }
        }
        Num::Float(f) => {
            let scale = 10f64.powi(place as i32);
            let scaled = f * scale;
            if !scaled.is_finite() {
                return float_value(f);
            }
            float_value(apply(scaled) / scale)
        }
    }
}

fn arith_fold(name: &str, op: Op, vals: &[Option<Value>]) -> Result<Option<Value>> {
    let mut acc = Num::Int(if op == Op::Add { 0 } else { 1 });
    let mut date: Option<i64> = None;
    for v in vals {
        let v = match v {
            None | Some(Value::Null) => return Ok(Some(Value::Null)),
            Some(v) => v,
        };
        if op == Op::Add {
            if let Some(m) = dates::date_millis(v) {
                if date.is_some() {
                    return Err(err(name, "only one date allowed in an $add expression"));
                }
                date = Some(m);
                continue;
            }
        }
        let n = number_arg(name, v)?;
        acc = match (acc, n, op) {
            (Num::Int(a), Num::Int(b), Op::Add) => a
                .checked_add(b)
                .map_or(Num::Float(a as f64 + b as f64), Num::Int),
            (Num::Int(a), Num::Int(b), _) => a
                .checked_mul(b)
                .map_or(Num::Float(a as f64 * b as f64), Num::Int),
            (a, b, Op::Add) => Num::Float(a.f() + b.f()),
            (a, b, _) => Num::Float(a.f() * b.f()),
        };
    }
    Ok(Some(match date {
        Some(m) => dates::make_date(m.saturating_add(acc.f().round() as i64)),
        None => acc.value(),
    }))
}

fn subtract(vals: &[Option<Value>]) -> Result<Option<Value>> {
    if vals.iter().any(nullish) {
        return Ok(Some(Value::Null));
    }
    let (a, b) = (
        vals[0].as_ref().unwrap_or(&Value::Null),
        vals[1].as_ref().unwrap_or(&Value::Null),
    );
    match (dates::date_millis(a), dates::date_millis(b)) {
        (Some(x), Some(y)) => return Ok(Some(Value::from(x - y))),
        (Some(x), None) => {
            let n = number_arg("$subtract", b)?;
            return Ok(Some(dates::make_date(x - n.f().round() as i64)));
        }
        (None, Some(_)) => {
            return Err(err("$subtract", "can't subtract a date from a number"));
        }
        _ => {}
    }
    let (x, y) = (number_arg("$subtract", a)?, number_arg("$subtract", b)?);
    Ok(Some(match (x, y) {
        (Num::Int(x), Num::Int(y)) => x
            .checked_sub(y)
            .map_or_else(|| float_value(x as f64 - y as f64), Value::from),
        (x, y) => float_value(x.f() - y.f()),
    }))
}
