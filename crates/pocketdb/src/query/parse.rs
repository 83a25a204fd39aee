//! MongoDB JSON filter → [`Filter`].
//!
//! The grammar follows MongoDB's query language:
//!
//! * top level: `{field: value, field: {$op: …}, $and: […], $or: […], $nor: […]}`;
//! * `{field: value}` is implicit equality, also when `value` is an embedded document whose
//!   first key does not start with `$`, or an extended-JSON date `{"$date": …}` (see
//!   [`crate::value::date_millis`]), which is a literal wherever a value is;
//! * `{field: {$gt: 1, $lt: 5}}` is an operator object, one condition per operator on the
//!   same path.
//!
//! JSON cannot hold regex literals, so wherever MongoDB accepts one (`$in`, `$nin`, `$all`,
//! `$not`, a field value) a `{"$regex": "…", "$options": "…"}` object stands in for it.

use crate::error::{Error, Result};
use crate::query::ast::{AllItem, Cond, ElemMatch, Filter, InItem, Regex};
use crate::value::{BsonType, FieldPath};
use serde_json::{Map, Value};

/// Parses a MongoDB-style filter document into the filter AST.
///
/// An empty document gives [`Filter::all`]; a document with one condition gives that
/// condition; otherwise the conditions are combined with [`Filter::And`], in document
/// order, each operator of an operator object becoming its own [`Filter::Field`].
pub fn parse_filter(filter: &Value) -> Result<Filter> {
    check_depth(filter)?;
    let obj = filter
        .as_object()
        .ok_or_else(|| Error::filter("", "a filter must be a document (JSON object)"))?;
    let mut parts = Vec::new();
    for (key, value) in obj {
        parse_top_level_entry(key, value, &mut parts)?;
    }
    Ok(combine_and(parts))
}

/// Deepest nesting of objects and arrays accepted in a filter (MongoDB allows 100
/// levels of BSON nesting). Bounds the parser's and matcher's recursion.
pub const MAX_DEPTH: usize = 128;

fn exceeds_depth(v: &Value, budget: usize) -> bool {
    match v {
        Value::Array(items) => budget == 0 || items.iter().any(|i| exceeds_depth(i, budget - 1)),
        Value::Object(m) => budget == 0 || m.values().any(|i| exceeds_depth(i, budget - 1)),
        _ => false,
    }
}

fn depth_error() -> Error {
    Error::filter(
        "",
        format!("filter is nested more than {MAX_DEPTH} levels deep"),
    )
}

fn check_depth(v: &Value) -> Result<()> {
    if exceeds_depth(v, MAX_DEPTH) {
        Err(depth_error())
    } else {
        Ok(())
    }
}

/// Combines top-level conditions the way [`parse_filter`] does: none → match all, one →
/// itself, several → `And`.
pub fn combine_and(mut parts: Vec<Filter>) -> Filter {
    if parts.len() == 1 {
        if let Some(only) = parts.pop() {
            return only;
        }
    }
    Filter::And(parts)
}

/// Parses one top-level entry of a filter document into `parts`.
pub(crate) fn parse_top_level_entry(
    key: &str,
    value: &Value,
    parts: &mut Vec<Filter>,
) -> Result<()> {
    if let Some(op) = key.strip_prefix('$') {
        match op {
            "and" | "or" | "nor" => {
                let arr = value
                    .as_array()
                    .ok_or_else(|| Error::filter("", format!("{key} needs an array")))?;
                if arr.is_empty() {
                    return Err(Error::filter("", format!("{key} needs a non-empty array")));
                }
                let mut children = Vec::with_capacity(arr.len());
                for item in arr {
                    if !item.is_object() {
                        return Err(Error::filter(
                            "",
                            format!("{key} entries must be documents"),
                        ));
                    }
                    children.push(parse_filter(item)?);
                }
                parts.push(match op {
                    "and" => Filter::And(children),
                    "or" => Filter::Or(children),
                    _ => Filter::Nor(children),
                });
                Ok(())
            }
            "expr" => {
                let expr = crate::aggregate::Expr::parse(value)
                    .map_err(|e| Error::filter("", format!("$expr: {e}")))?;
                parts.push(Filter::Expr(Box::new(expr)));
                Ok(())
            }
            // MongoDB ignores `$comment` when matching.
            "comment" => Ok(()),
            _ => Err(Error::filter("", format!("unsupported operator {key}"))),
        }
    } else {
        let path = FieldPath::parse(key)?;
        for cond in parse_field_value(key, value)? {
            parts.push(Filter::Field {
                path: path.clone(),
                cond,
            });
        }
        Ok(())
    }
}

/// True when `value` is an operator object: a JSON object whose first key starts with `$`,
/// other than a date `{"$date": …}` (see [`crate::value::date_millis`]), which is a value
/// as in MongoDB's extended JSON.
pub fn is_operator_object(value: &Value) -> bool {
    match value {
        Value::Object(m) => {
            m.keys().next().is_some_and(|k| k.starts_with('$'))
                && crate::value::date_millis(value).is_none()
        }
        _ => false,
    }
}

/// Parses the value given for a field in a filter: an operator object gives one condition
/// per operator, anything else is implicit equality.
pub fn parse_field_value(path: &str, value: &Value) -> Result<Vec<Cond>> {
    check_depth(value)?;
    match value {
        Value::Object(m) if is_operator_object(value) => parse_operator_object(path, m),
        other => Ok(vec![Cond::Eq(other.clone())]),
    }
}

/// Parses an operator object (`{$gt: 1, $lt: 5}`) into its conditions, in order.
/// `$regex` and `$options` together make one condition.
pub fn parse_operator_object(path: &str, ops: &Map<String, Value>) -> Result<Vec<Cond>> {
    if ops.values().any(|v| exceeds_depth(v, MAX_DEPTH)) {
        return Err(depth_error());
    }
    let mut conds = Vec::with_capacity(ops.len());
    let options = match ops.get("$options") {
        None => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err(Error::filter(path, "$options needs a string")),
    };
    if options.is_some() && !ops.contains_key("$regex") {
        return Err(Error::filter(path, "$options needs a $regex"));
    }
    for (op, arg) in ops {
        let cond = match op.as_str() {
            "$eq" => Cond::Eq(arg.clone()),
            "$ne" => Cond::Ne(arg.clone()),
            "$gt" => Cond::Gt(arg.clone()),
            "$gte" => Cond::Gte(arg.clone()),
            "$lt" => Cond::Lt(arg.clone()),
            "$lte" => Cond::Lte(arg.clone()),
            "$in" => Cond::In(parse_in_items(path, op, arg)?.into()),
            "$nin" => Cond::Nin(parse_in_items(path, op, arg)?.into()),
            "$exists" => Cond::Exists(truthy(arg)),
            "$type" => Cond::Type(parse_types(path, arg)?),
            "$regex" => {
                let pattern = arg
                    .as_str()
                    .ok_or_else(|| Error::filter(path, "$regex needs a string pattern"))?;
                Cond::Regex(regex_at(path, pattern, options.unwrap_or(""))?)
            }
            "$options" => continue,
            "$size" => Cond::Size(parse_size(path, arg)?),
            "$all" => Cond::All(parse_all(path, arg)?),
            "$elemMatch" => Cond::ElemMatch(parse_elem_match(path, arg)?),
            "$mod" => {
                let (divisor, remainder) = parse_mod(path, arg)?;
                Cond::Mod { divisor, remainder }
            }
            "$not" => Cond::Not(parse_not(path, arg)?),
            other if other.starts_with('$') => {
                return Err(Error::filter(path, format!("unknown operator {other}")))
            }
            other => {
                return Err(Error::filter(
                    path,
                    format!(
                    "unknown operator {other}: an operator object cannot mix operators and fields"
                ),
                ))
            }
        };
        conds.push(cond);
    }
    Ok(conds)
}

/// Compiles a regex, reporting errors at `path`.
pub(crate) fn regex_at(path: &str, pattern: &str, options: &str) -> Result<Regex> {
    Regex::new(pattern, options).map_err(|e| match e {
        Error::InvalidFilter { message, .. } => Error::filter(path, message),
        other => other,
    })
}

/// MongoDB's truthiness of an operand (`$exists: 0` is false, `$exists: 1` true).
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        _ => true,
    }
}

/// If `v` is a `{"$regex": "…", "$options": "…"}` object standing in for a regex literal,
/// compiles it. `Ok(None)` when it is not such an object.
pub(crate) fn regex_object(path: &str, v: &Value) -> Result<Option<Regex>> {
    let Value::Object(m) = v else {
        return Ok(None);
    };
    let Some(pattern) = m.get("$regex") else {
        return Ok(None);
    };
    if m.keys().any(|k| k != "$regex" && k != "$options") {
        return Ok(None);
    }
    let pattern = pattern
        .as_str()
        .ok_or_else(|| Error::filter(path, "$regex needs a string pattern"))?;
    let options = match m.get("$options") {
        None => "",
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(Error::filter(path, "$options needs a string")),
    };
    regex_at(path, pattern, options).map(Some)
}

fn parse_in_items(path: &str, op: &str, arg: &Value) -> Result<Vec<InItem>> {
    let arr = arg
        .as_array()
        .ok_or_else(|| Error::filter(path, format!("{op} needs an array")))?;
    let mut items = Vec::with_capacity(arr.len());
    for item in arr {
        if let Some(re) = regex_object(path, item)? {
            items.push(InItem::Regex(re));
        } else if is_operator_object(item) {
            return Err(Error::filter(
                path,
                format!("{op}: operators are not allowed inside {op}"),
            ));
        } else {
            items.push(InItem::Value(item.clone()));
        }
    }
    Ok(items)
}

/// MongoDB `$type` aliases of BSON types JSON cannot hold: accepted, match nothing.
const UNREPRESENTABLE_ALIASES: &[&str] = &[
    "undefined",
    "objectId",
    "regex",
    "dbPointer",
    "javascript",
    "symbol",
    "javascriptWithScope",
    "timestamp",
    "decimal",
    "minKey",
    "maxKey",
    "binData",
];

/// BSON type numbers JSON cannot hold: accepted, match nothing.
const UNREPRESENTABLE_NUMBERS: &[i64] = &[-1, 5, 6, 7, 11, 12, 13, 14, 15, 17, 19, 127];

fn push_type(path: &str, v: &Value, out: &mut Vec<BsonType>) -> Result<()> {
    let mut add = |t: BsonType| {
        if !out.contains(&t) {
            out.push(t);
        }
    };
    match v {
        Value::String(s) => {
            if s == "number" {
                add(BsonType::Double);
                add(BsonType::Int);
                add(BsonType::Long);
            } else if let Some(t) = BsonType::from_alias(s) {
                add(t);
            } else if !UNREPRESENTABLE_ALIASES.contains(&s.as_str()) {
                return Err(Error::filter(
                    path,
                    format!("$type: unknown type name '{s}'"),
                ));
            }
        }
        Value::Number(n) => {
            let code = integral(n).ok_or_else(|| {
                Error::filter(path, format!("$type: type number {n} is not an integer"))
            })?;
            if let Some(t) = BsonType::from_number(code) {
                add(t);
            } else if !UNREPRESENTABLE_NUMBERS.contains(&code) {
                return Err(Error::filter(
                    path,
                    format!("$type: unknown type number {code}"),
                ));
            }
        }
        _ => {
            return Err(Error::filter(
                path,
                "$type needs a type name, a type number or an array of them",
            ))
        }
    }
    Ok(())
}

fn parse_types(path: &str, arg: &Value) -> Result<Vec<BsonType>> {
    let mut out = Vec::new();
    match arg {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(Error::filter(path, "$type needs at least one type"));
            }
            for item in items {
                push_type(path, item, &mut out)?;
            }
        }
        other => push_type(path, other, &mut out)?,
    }
    Ok(out)
}

/// The exact integer value of a JSON number (`2` and `2.0`), if it has one in i64 range.
fn integral(n: &serde_json::Number) -> Option<i64> {
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    let f = n.as_f64()?;
    if f.fract() == 0.0 && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f) {
        Some(f as i64)
    } else {
        None
    }
}

fn parse_size(path: &str, arg: &Value) -> Result<u64> {
    let Value::Number(n) = arg else {
        return Err(Error::filter(path, "$size needs a number"));
    };
    match integral(n) {
        Some(i) if i >= 0 => Ok(i as u64),
        Some(_) => Err(Error::filter(path, "$size needs a non-negative integer")),
        None => match n.as_u64() {
            Some(u) => Ok(u),
            None => Err(Error::filter(path, "$size needs a non-negative integer")),
        },
    }
}

fn parse_all(path: &str, arg: &Value) -> Result<Vec<AllItem>> {
    let arr = arg
        .as_array()
        .ok_or_else(|| Error::filter(path, "$all needs an array"))?;
    let is_elem_match = |v: &Value| {
        v.as_object()
            .and_then(|m| m.keys().next())
            .is_some_and(|k| k == "$elemMatch")
    };
    let elem_match_mode = arr.first().is_some_and(is_elem_match);
    let mut items = Vec::with_capacity(arr.len());
    for item in arr {
        if elem_match_mode {
            let m = match item {
                Value::Object(m) if is_elem_match(item) && m.len() == 1 => m,
                _ => {
                    return Err(Error::filter(
                        path,
                        "$all: $elemMatch items cannot be mixed with other items",
                    ))
                }
            };
            let inner = m.get("$elemMatch").unwrap_or(&Value::Null);
            items.push(AllItem::ElemMatch(parse_elem_match(path, inner)?));
        } else if let Some(re) = regex_object(path, item)? {
            items.push(AllItem::Regex(re));
        } else if is_operator_object(item) {
            return Err(Error::filter(
                path,
                "$all: operators are not allowed inside $all (except $elemMatch)",
            ));
        } else {
            items.push(AllItem::Value(item.clone()));
        }
    }
    Ok(items)
}

/// Parses the argument of `$elemMatch` (query or projection): the value form when every
/// key is an operator other than `$and`/`$or`/`$nor`, the document form otherwise.
pub fn parse_elem_match(path: &str, arg: &Value) -> Result<ElemMatch> {
    check_depth(arg)?;
    let m = arg
        .as_object()
        .ok_or_else(|| Error::filter(path, "$elemMatch needs a document"))?;
    let value_form = !m.is_empty()
        && m.keys()
            .all(|k| k.starts_with('$') && !matches!(k.as_str(), "$and" | "$or" | "$nor"));
    if value_form {
        Ok(ElemMatch::Value(parse_operator_object(path, m)?))
    } else {
        Ok(ElemMatch::Document(Box::new(parse_filter(arg)?)))
    }
}

fn parse_mod(path: &str, arg: &Value) -> Result<(i64, i64)> {
    let arr = arg
        .as_array()
        .ok_or_else(|| Error::filter(path, "$mod needs an array [divisor, remainder]"))?;
    let [d, r] = arr.as_slice() else {
        return Err(Error::filter(
            path,
            "$mod needs exactly two numbers [divisor, remainder]",
        ));
    };
    let num = |v: &Value, what: &str| -> Result<i64> {
        let n = v
            .as_number()
            .ok_or_else(|| Error::filter(path, format!("$mod: {what} must be a number")))?;
        if let Some(i) = n.as_i64() {
            return Ok(i);
        }
        match n.as_f64() {
            Some(f) if f.is_finite() && f.abs() < 9.2e18 => Ok(f.trunc() as i64),
            _ => Err(Error::filter(path, format!("$mod: {what} is out of range"))),
        }
    };
    let divisor = num(d, "divisor")?;
    let remainder = num(r, "remainder")?;
    if divisor == 0 {
        return Err(Error::filter(path, "$mod: divisor cannot be 0"));
    }
    Ok((divisor, remainder))
}

fn parse_not(path: &str, arg: &Value) -> Result<Vec<Cond>> {
    match arg {
        Value::Object(m) if m.is_empty() => Err(Error::filter(path, "$not cannot be empty")),
        Value::Object(m) if is_operator_object(arg) => parse_operator_object(path, m),
        _ => Err(Error::filter(
            path,
            "$not needs an operator object or a {\"$regex\": …} object",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(s: &str) -> FieldPath {
        FieldPath::parse(s).unwrap()
    }

    fn field(path: &str, cond: Cond) -> Filter {
        Filter::Field {
            path: p(path),
            cond,
        }
    }

    fn err_msg(v: Value) -> String {
        match parse_filter(&v) {
            Err(e) => e.to_string(),
            Ok(f) => panic!("expected an error for {v}, got {f:?}"),
        }
    }

    #[test]
    fn empty_and_implicit_equality() {
        assert!(parse_filter(&json!({})).unwrap().is_all());
        assert_eq!(
            parse_filter(&json!({"a": 1})).unwrap(),
            field("a", Cond::Eq(json!(1)))
        );
        assert_eq!(
            parse_filter(&json!({"a": {"b": 1}})).unwrap(),
            field("a", Cond::Eq(json!({"b": 1})))
        );
        assert_eq!(
            parse_filter(&json!({"a": {}})).unwrap(),
            field("a", Cond::Eq(json!({})))
        );
        assert_eq!(
            parse_filter(&json!({"a": {"b": 1, "$gt": 2}})).unwrap(),
            field("a", Cond::Eq(json!({"b": 1, "$gt": 2})))
        );
        assert_eq!(
            parse_filter(&json!({"a": 1, "b.c": null})).unwrap(),
            Filter::And(vec![
                field("a", Cond::Eq(json!(1))),
                field("b.c", Cond::Eq(json!(null)))
            ])
        );
    }

    #[test]
    fn operator_objects() {
        assert_eq!(
            parse_filter(&json!({"a": {"$gt": 1, "$lt": 5}})).unwrap(),
            Filter::And(vec![
                field("a", Cond::Gt(json!(1))),
                field("a", Cond::Lt(json!(5)))
            ])
        );
        let f = parse_filter(&json!({"a": {"$regex": "^x", "$options": "i"}})).unwrap();
        let Filter::Field {
            cond: Cond::Regex(re),
            ..
        } = f
        else {
            panic!("{f:?}")
        };
        assert_eq!((re.pattern.as_str(), re.options.as_str()), ("^x", "i"));
        assert_eq!(
            parse_filter(&json!({"a": {"$options": "i", "$regex": "x"}})).unwrap(),
            field("a", Cond::Regex(Regex::new("x", "i").unwrap()))
        );
        assert_eq!(
            parse_filter(&json!({"a": {"$type": "number"}})).unwrap(),
            field(
                "a",
                Cond::Type(vec![BsonType::Double, BsonType::Int, BsonType::Long])
            )
        );
        assert_eq!(
            parse_filter(&json!({"a": {"$type": [2, "array", "date", 9, "regex"]}})).unwrap(),
            field(
                "a",
                Cond::Type(vec![BsonType::String, BsonType::Array, BsonType::Date])
            )
        );
        assert_eq!(
            parse_filter(&json!({"a": {"$size": 2.0}})).unwrap(),
            field("a", Cond::Size(2))
        );
        assert_eq!(
            parse_filter(&json!({"a": {"$mod": [4.7, -1.2]}})).unwrap(),
            field(
                "a",
                Cond::Mod {
                    divisor: 4,
                    remainder: -1
                }
            )
        );
        assert_eq!(
            parse_filter(&json!({"a": {"$exists": 0}})).unwrap(),
            field("a", Cond::Exists(false))
        );
        assert_eq!(
            parse_filter(&json!({"a": {"$in": [1, {"$regex": "x"}]}})).unwrap(),
            field(
                "a",
                Cond::In(
                    vec![
                        InItem::Value(json!(1)),
                        InItem::Regex(Regex::new("x", "").unwrap())
                    ]
                    .into()
                )
            )
        );
        assert_eq!(
            parse_filter(&json!({"a": {"$not": {"$regex": "x", "$options": "m"}}})).unwrap(),
            field(
                "a",
                Cond::Not(vec![Cond::Regex(Regex::new("x", "m").unwrap())])
            )
        );
        assert_eq!(
            parse_filter(&json!({"a": {"$all": [{"$elemMatch": {"$gt": 1}}]}})).unwrap(),
            field(
                "a",
                Cond::All(vec![AllItem::ElemMatch(ElemMatch::Value(vec![Cond::Gt(
                    json!(1)
                )]))])
            )
        );
    }

    #[test]
    fn dates_are_literals() {
        let d = json!({"$date": "2020-01-02T00:00:00Z"});
        assert_eq!(
            parse_filter(&json!({ "a": d })).unwrap(),
            field("a", Cond::Eq(d.clone()))
        );
        for (op, cond) in [
            ("$eq", Cond::Eq(d.clone())),
            ("$ne", Cond::Ne(d.clone())),
            ("$gt", Cond::Gt(d.clone())),
            ("$lte", Cond::Lte(d.clone())),
            ("$in", Cond::In(vec![InItem::Value(d.clone())].into())),
            ("$nin", Cond::Nin(vec![InItem::Value(d.clone())].into())),
            ("$all", Cond::All(vec![AllItem::Value(d.clone())])),
        ] {
            let arg = if matches!(op, "$in" | "$nin" | "$all") {
                json!([d])
            } else {
                d.clone()
            };
            assert_eq!(
                parse_filter(&json!({ "a": { op: arg } })).unwrap(),
                field("a", cond),
                "{op}"
            );
        }
        // Not a date: still an (unknown) operator.
        assert!(err_msg(json!({"a": {"$date": "soon"}})).contains("unknown operator $date"));
        assert!(err_msg(json!({"a": {"$in": [{"$date": []}]}})).contains("not allowed"));
    }

    #[test]
    fn elem_match_forms() {
        assert_eq!(
            parse_filter(&json!({"a": {"$elemMatch": {"$gt": 1, "$lt": 3}}})).unwrap(),
            field(
                "a",
                Cond::ElemMatch(ElemMatch::Value(vec![
                    Cond::Gt(json!(1)),
                    Cond::Lt(json!(3))
                ]))
            )
        );
        assert_eq!(
            parse_filter(&json!({"a": {"$elemMatch": {"b": 1}}})).unwrap(),
            field(
                "a",
                Cond::ElemMatch(ElemMatch::Document(Box::new(field(
                    "b",
                    Cond::Eq(json!(1))
                ))))
            )
        );
        assert_eq!(
            parse_filter(&json!({"a": {"$elemMatch": {"$or": [{"b": 1}]}}})).unwrap(),
            field(
                "a",
                Cond::ElemMatch(ElemMatch::Document(Box::new(Filter::Or(vec![field(
                    "b",
                    Cond::Eq(json!(1))
                )]))))
            )
        );
    }

    #[test]
    fn logical_operators() {
        assert_eq!(
            parse_filter(&json!({"$or": [{"a": 1}, {}], "$comment": "x"})).unwrap(),
            Filter::Or(vec![field("a", Cond::Eq(json!(1))), Filter::all()])
        );
        assert_eq!(
            parse_filter(&json!({"$nor": [{"a": 1}], "b": 2})).unwrap(),
            Filter::And(vec![
                Filter::Nor(vec![field("a", Cond::Eq(json!(1)))]),
                field("b", Cond::Eq(json!(2)))
            ])
        );
    }

    #[test]
    fn deep_nesting_is_rejected_not_overflowing() {
        let mut f = json!({"$gt": 1});
        for _ in 0..300 {
            f = json!({ "$not": f });
        }
        let msg = err_msg(json!({ "a": f }));
        assert!(msg.contains("nested"), "{msg}");
        let mut g = json!({"a": 1});
        for _ in 0..300 {
            g = json!({ "$and": [g] });
        }
        assert!(err_msg(g).contains("nested"));
        let mut ok = json!({"a": 1});
        for _ in 0..50 {
            ok = json!({ "$or": [ok] });
        }
        assert!(parse_filter(&ok).is_ok());
    }

    #[test]
    fn errors() {
        let cases = [
            (json!(1), "must be a document"),
            (json!([]), "must be a document"),
            (json!(null), "must be a document"),
            (json!({"a": {"$foo": 1}}), "unknown operator $foo"),
            (json!({"a": {"$gt": 1, "b": 1}}), "unknown operator b"),
            (json!({"a": {"$in": 1}}), "$in needs an array"),
            (json!({"a": {"$nin": {}}}), "$nin needs an array"),
            (json!({"a": {"$in": [{"$gt": 1}]}}), "not allowed"),
            (json!({"a": {"$all": 1}}), "$all needs an array"),
            (json!({"a": {"$all": [{"$gt": 1}]}}), "not allowed"),
            (json!({"a": {"$all": [{"$elemMatch": {}}, 1]}}), "mixed"),
            (json!({"a": {"$size": -1}}), "$size"),
            (json!({"a": {"$size": 1.5}}), "$size"),
            (json!({"a": {"$size": "1"}}), "$size"),
            (json!({"a": {"$mod": [0, 1]}}), "divisor cannot be 0"),
            (json!({"a": {"$mod": [1]}}), "$mod"),
            (json!({"a": {"$mod": [1, 2, 3]}}), "$mod"),
            (json!({"a": {"$mod": ["a", 1]}}), "$mod"),
            (json!({"a": {"$mod": 3}}), "$mod"),
            (json!({"a": {"$not": 5}}), "$not"),
            (json!({"a": {"$not": {}}}), "$not"),
            (json!({"a": {"$not": {"b": 1}}}), "$not"),
            (json!({"a": {"$not": {"$foo": 1}}}), "unknown operator $foo"),
            (json!({"a": {"$regex": 1}}), "$regex"),
            (json!({"a": {"$regex": "("}}), "invalid pattern"),
            (json!({"a": {"$regex": "x", "$options": "q"}}), "option"),
            (json!({"a": {"$options": "i"}}), "$options needs a $regex"),
            (json!({"a": {"$type": "nope"}}), "unknown type"),
            (json!({"a": {"$type": 100}}), "unknown type"),
            (json!({"a": {"$type": []}}), "at least one"),
            (json!({"a": {"$type": true}}), "$type"),
            (
                json!({"a": {"$elemMatch": 1}}),
                "$elemMatch needs a document",
            ),
            (json!({"a": {"$elemMatch": {"$gt": 1, "$foo": 2}}}), "$foo"),
            (json!({"$and": []}), "non-empty"),
            (json!({"$or": {}}), "$or needs an array"),
            (json!({"$nor": [1]}), "documents"),
            (json!({"$where": "1"}), "unsupported operator $where"),
            (
                json!({"$expr": {"$bogus": 1}}),
                "$expr: invalid pipeline: $bogus",
            ),
            (json!({"$text": {}}), "unsupported operator $text"),
            (json!({"$or": [{"a": {"$bad": 1}}]}), "$bad"),
        ];
        for (filter, needle) in cases {
            let msg = err_msg(filter.clone());
            assert!(msg.contains(needle), "{filter}: {msg}");
        }
        assert!(matches!(
            parse_filter(&json!({"a": {"$in": 1}})),
            Err(Error::InvalidFilter { path, .. }) if path == "a"
        ));
        assert!(matches!(
            parse_filter(&json!({"a..b": 1})),
            Err(Error::InvalidName { .. })
        ));
        assert!(matches!(
            parse_filter(&json!({"": 1})),
            Err(Error::InvalidName { .. })
        ));
    }
}
