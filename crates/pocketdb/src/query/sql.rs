//! The SQL back end: compiles a [`Filter`] into a `WHERE` clause over the collection
//! table's JSONB `doc` column.
//!
//! # Spelling
//!
//! A field path is always read with `json_extract(doc,'$."a"."b"')` and its type with
//! `json_type(doc,'$."a"."b"')` ([`path_expr`], [`type_expr`]). Expression indexes must be
//! created with exactly the text [`path_expr`] returns so SQLite's planner matches them.
//! Path literals are SQL string literals built from the validated [`FieldPath`]; every
//! operand is a bound parameter (`?`).
//!
//! # Semantics
//!
//! MongoDB's rules are reproduced exactly where [`SqlFilter::exact`] is true:
//! type brackets (every comparison is guarded by `json_type`, so `true` never equals `1`
//! and a string never compares with a number), array element matching (a branch over
//! `json_each` for arrays at the leaf), traversal of arrays of documents in dotted paths
//! (nested `json_each`), `null` matching missing fields, and negations that never see SQL
//! `NULL` (`NOT coalesce(…, 0)`). Equality and ordering against embedded documents and
//! arrays, and `$regex`, call the SQL functions installed by [`register_functions`], which
//! must therefore be registered on every connection that runs compiled filters.
//!
//! Dates (`{"$date": …}`, see [`crate::value::date_millis`]) are JSON objects to SQLite:
//! `json_type` says `'object'` for them as for embedded documents. Conditions that must
//! tell the two apart (`$type`, comparisons with a document or a date, which
//! [`JSON_CMP_FUNCTION`] answers only within one type bracket) ask the SQL functions,
//! which read values with [`crate::value`]'s rules, so they stay exact.
//!
//! Paths with numeric segments (`a.0`, array index or field name depending on the
//! document), segments SQLite's JSON path syntax cannot express safely, and very deep
//! paths compile to the superset `1` with `exact: false`: the caller re-checks rows with the
//! in-memory matcher. Inexact parts narrow the result only where a superset stays valid
//! (`$and`, `$or`, `$elemMatch`); under a negation they widen to `1`.

#[cfg(test)]
mod tests;

use crate::query::ast::{AllItem, Cond, ElemMatch, Filter, InItem, Regex};
use crate::query::shape::{
    conv_int, conv_json_text, conv_options, conv_pattern, conv_size, conv_text, Lit, Src,
};
use crate::value::{compare_values, date_millis, type_rank, BsonType, FieldPath};
use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::{Value as SqlValue, ValueRef};
use serde_json::{Number, Value};
use std::cmp::Ordering;
use std::collections::HashSet;
use std::sync::Arc;

/// A compiled `WHERE` clause.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlFilter {
    /// SQL boolean expression over the column `doc`; `1` when nothing could be pushed.
    pub sql: String,
    /// Values bound to the `?` placeholders, in order.
    pub params: Vec<rusqlite::types::Value>,
    /// True when the SQL answers the filter exactly; false when rows it returns must be
    /// re-checked with the in-memory matcher (the SQL then selects a superset).
    pub exact: bool,
}

/// What the caller knows about the collection that lets the compiler emit simpler SQL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompileOptions {
    /// Paths at which no document holds an array, neither at the path itself nor at any
    /// prefix of it (an index's "multikey" flag is off). Conditions on these paths omit
    /// the `json_each` array branches, so an expression index on [`path_expr`] can serve
    /// them.
    pub scalar_paths: HashSet<FieldPath>,
}

/// Name of the SQL function `pocketdb_regex(pattern, options, text)`: 1 when `text` is a
/// string matching the MongoDB regex, 0 otherwise. Installed by [`register_functions`].
pub const REGEX_FUNCTION: &str = "pocketdb_regex";

/// Name of the SQL function `pocketdb_regex_json(pattern, options, json)`: as
/// [`REGEX_FUNCTION`] on `json`, a value as JSON text from `->`, when it is a string, or
/// 1 when it is an array with a string element that matches. One JSON lookup per row.
/// Installed by [`register_functions`].
pub const REGEX_JSON_FUNCTION: &str = "pocketdb_regex_json";

/// Name of the SQL function `pocketdb_json_cmp(a, b)`: compares two JSON texts with
/// MongoDB's value order and returns -1, 0 or 1; NULL when either is not JSON text or
/// the two are of different type brackets (a date and an embedded document, both
/// `'object'` to `json_type`), which MongoDB's comparisons never relate. Installed by
/// [`register_functions`].
pub const JSON_CMP_FUNCTION: &str = "pocketdb_json_cmp";

/// Name of the SQL function `pocketdb_is_date(json)`: 1 when `json` (a value as JSON
/// text) is a date `{"$date": …}` (see [`crate::value::date_millis`]), 0 otherwise.
/// Installed by [`register_functions`].
pub const DATE_FUNCTION: &str = "pocketdb_is_date";

/// Name of the SQL function `pocketdb_eq(json, needle, ...)`: 1 when `json` (a value as
/// JSON text, as the `->` operator renders it; NULL when missing) equals one of the
/// needles (strings, numbers or booleans as JSON text) with MongoDB's equality, or is an
/// array with an element that does; 0 otherwise. It reads the value once where
/// `json_type` and `json_extract` read it two or three times. Installed by
/// [`register_functions`].
pub const EQ_FUNCTION: &str = "pocketdb_eq";

/// Name of the SQL function `pocketdb_eq_at(doc, path, needle, ...)`: what
/// `pocketdb_eq(doc -> path, needle, ...)` answers, for a path of object labels
/// (`'$."a"."b"'`) into a stored JSONB document, found and compared in the blob without
/// SQLite rendering the value as JSON text first.
pub const EQ_AT_FUNCTION: &str = "pocketdb_eq_at";

/// Name of the SQL function `pocketdb_cmp(json, op, needle)`: 1 when `json` (a value as
/// JSON text from `->`; NULL when missing) is of the needle's type bracket (a number or
/// a string, given as JSON text) and compares with it as `op` (`'<'`, `'<='`, `'>'` or
/// `'>='`) says in MongoDB's order, or is an array with such an element; 0 otherwise.
/// One JSON lookup per row where `CASE json_type(…) … json_extract(…) < ?` takes two.
/// Installed by [`register_functions`].
pub const CMP_FUNCTION: &str = "pocketdb_cmp";

/// Name of the SQL function `pocketdb_cmp_at(doc, path, op, needle)`: what
/// `pocketdb_cmp(doc -> path, op, needle)` answers, for a path of object labels into a
/// stored JSONB document, found and compared in the blob (see [`EQ_AT_FUNCTION`]).
pub const CMP_AT_FUNCTION: &str = "pocketdb_cmp_at";

/// Most `$in` values compiled to one [`EQ_FUNCTION`] call; longer lists use SQL's `IN`,
/// which SQLite answers with a lookup table instead of comparing with each.
const EQ_FUNCTION_MAX_NEEDLES: usize = 32;

/// Deepest dotted path compiled with array traversal; the SQL doubles with each segment.
const MAX_TRAVERSAL_SEGMENTS: usize = 5;

/// Compiles a filter to SQL.
pub fn compile_filter(filter: &Filter) -> SqlFilter {
    compile_filter_with(filter, &CompileOptions::default())
}

/// Compiles a filter to SQL, using what `options` says about the collection.
pub fn compile_filter_with(filter: &Filter, options: &CompileOptions) -> SqlFilter {
    compile_filter_traced(filter, options).0
}

/// [`compile_filter_with`], also saying where each parameter came from (for the plan
/// cache, see [`crate::query::shape`]).
pub(crate) fn compile_filter_traced(
    filter: &Filter,
    options: &CompileOptions,
) -> (SqlFilter, Vec<Src>) {
    let mut compiler = Compiler {
        options,
        aliases: 0,
    };
    let piece = compiler.filter(filter, "doc", true);
    (
        SqlFilter {
            sql: piece.frag.sql,
            params: piece.frag.params,
            exact: piece.exact,
        },
        piece.frag.srcs,
    )
}

/// The SQL expression reading `path` from the `doc` column:
/// `json_extract(doc,'$."a"."b"')`. Expression indexes must use exactly this text.
/// `None` when the path cannot be expressed exactly as one JSON path: a segment is
/// numeric (array index or field name, decided per document) or contains `"`, `\` or a
/// control character.
pub fn path_expr(path: &FieldPath) -> Option<String> {
    Some(format!(
        "json_extract(doc,{})",
        sql_string(&json_path(path)?)
    ))
}

/// The SQL expression giving the JSON text of the value at `path` in `doc`:
/// `doc -> '$."a"."b"'` (`NULL` when missing). One JSON lookup tells both the type and
/// the value, where [`path_expr`] and [`type_expr`] take two. `None` where [`path_expr`]
/// is.
pub fn json_text_expr(path: &FieldPath) -> Option<String> {
    Some(format!("(doc -> {})", sql_string(&json_path(path)?)))
}

/// The SQL expression giving the JSON type of `path` in `doc`:
/// `json_type(doc,'$."a"."b"')` (`NULL` when missing). `None` where [`path_expr`] is.
pub fn type_expr(path: &FieldPath) -> Option<String> {
    Some(format!("json_type(doc,{})", sql_string(&json_path(path)?)))
}

/// `json_type` of `doc` at each prefix of `path`, shortest first: for `a.b`,
/// `json_type(doc,'$."a"')` and `json_type(doc,'$."a"."b"')`. `None` where [`path_expr`]
/// is.
pub fn prefix_type_exprs(path: &FieldPath) -> Option<Vec<String>> {
    let mut prefix = String::from("$");
    path.segments()
        .iter()
        .map(|seg| {
            push_segment(&mut prefix, seg)?;
            Some(format!("json_type(doc,{})", sql_string(&prefix)))
        })
        .collect()
}

/// The JSON path text (`$."a"."b"`) of a field path, unquoted for SQL.
fn json_path(path: &FieldPath) -> Option<String> {
    let mut out = String::from("$");
    for seg in path.segments() {
        push_segment(&mut out, seg)?;
    }
    Some(out)
}

/// Appends `."seg"` to a JSON path, or `None` when the segment is unsafe or numeric.
fn push_segment(out: &mut String, seg: &str) -> Option<()> {
    if !segment_ok(seg) {
        return None;
    }
    out.push_str(".\"");
    out.push_str(seg);
    out.push('"');
    Some(())
}

fn segment_ok(seg: &str) -> bool {
    !seg.is_empty()
        && !seg.bytes().all(|b| b.is_ascii_digit())
        && !seg.chars().any(|c| c == '"' || c == '\\' || c.is_control())
}

/// An SQL string literal.
fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// SQL text with the parameters its `?` placeholders bind, in order, and where each
/// parameter came from.
#[derive(Debug, Clone, Default)]
struct Frag {
    sql: String,
    params: Vec<SqlValue>,
    srcs: Vec<Src>,
}

impl Frag {
    fn lit(sql: impl Into<String>) -> Frag {
        Frag {
            sql: sql.into(),
            params: Vec::new(),
            srcs: Vec::new(),
        }
    }

    fn s(mut self, sql: &str) -> Frag {
        self.sql.push_str(sql);
        self
    }

    /// A placeholder bound to `conv` of a literal (see [`Src::param`]).
    fn p(mut self, (value, src): (SqlValue, Src)) -> Frag {
        self.sql.push('?');
        self.params.push(value);
        self.srcs.push(src);
        self
    }

    fn f(mut self, other: Frag) -> Frag {
        self.sql.push_str(&other.sql);
        self.params.extend(other.params);
        self.srcs.extend(other.srcs);
        self
    }
}

/// A compiled predicate: exact, or a superset of the matching documents.
#[derive(Debug, Clone)]
struct Piece {
    frag: Frag,
    exact: bool,
}

impl Piece {
    fn exact(frag: Frag) -> Piece {
        Piece { frag, exact: true }
    }

    fn bool(b: bool) -> Piece {
        Piece::exact(Frag::lit(if b { "1" } else { "0" }))
    }

    /// The superset of everything.
    fn anything() -> Piece {
        Piece {
            frag: Frag::lit("1"),
            exact: false,
        }
    }

    fn is(&self, lit: &str) -> bool {
        self.frag.sql == lit
    }

    fn inexact_if(mut self, cond: bool) -> Piece {
        if cond {
            self.exact = false;
        }
        self
    }
}

/// Conjunction; supersets of the parts give a superset of the whole.
fn and_all(parts: Vec<Piece>) -> Piece {
    let exact = parts.iter().all(|p| p.exact);
    if parts.iter().any(|p| p.is("0") && p.exact) {
        return Piece::bool(false);
    }
    let kept: Vec<Piece> = parts.into_iter().filter(|p| !p.is("1")).collect();
    join(kept, " AND ", "1", exact)
}

/// Disjunction; supersets of the parts give a superset of the whole.
fn or_any(parts: Vec<Piece>) -> Piece {
    let exact = parts.iter().all(|p| p.exact);
    if parts.iter().any(|p| p.is("1")) {
        return Piece::bool(true).inexact_if(!exact);
    }
    let kept: Vec<Piece> = parts.into_iter().filter(|p| !p.is("0")).collect();
    join(kept, " OR ", "0", exact)
}

fn join(mut parts: Vec<Piece>, sep: &str, empty: &str, exact: bool) -> Piece {
    let frag = match parts.len() {
        0 => Frag::lit(empty),
        1 => parts.remove(0).frag,
        _ => {
            let mut frag = Frag::lit("(");
            for (i, p) in parts.into_iter().enumerate() {
                if i > 0 {
                    frag = frag.s(sep);
                }
                frag = frag.f(p.frag);
            }
            frag.s(")")
        }
    };
    Piece { frag, exact }
}

/// Negation. Only an exact piece can be negated; a superset of a negation is `1`.
fn negate(p: Piece) -> Piece {
    if !p.exact {
        return Piece::anything();
    }
    if p.is("1") {
        return Piece::bool(false);
    }
    if p.is("0") {
        return Piece::bool(true);
    }
    Piece::exact(Frag::lit("NOT coalesce(").f(p.frag).s(",0)"))
}

/// Where a value is read from.
#[derive(Debug, Clone)]
enum Loc {
    /// `json_extract(base,'path')`: may be missing.
    Path { base: String, path: String },
    /// The current row of `json_each(…) AS alias`: always present.
    Elem { alias: String },
}

impl Loc {
    fn ty(&self) -> String {
        match self {
            Loc::Path { base, path } => format!("json_type({base},{})", sql_string(path)),
            Loc::Elem { alias } => format!("{alias}.type"),
        }
    }

    fn val(&self) -> String {
        match self {
            Loc::Path { base, path } => format!("json_extract({base},{})", sql_string(path)),
            Loc::Elem { alias } => format!("{alias}.value"),
        }
    }

    fn each(&self) -> String {
        match self {
            Loc::Path { base, path } => format!("json_each({base},{})", sql_string(path)),
            Loc::Elem { alias } => format!("json_each({alias}.value)"),
        }
    }

    fn array_len(&self) -> String {
        match self {
            Loc::Path { base, path } => {
                format!("json_array_length({base},{})", sql_string(path))
            }
            Loc::Elem { alias } => format!("json_array_length({alias}.value)"),
        }
    }
}

/// The bound form of a JSON number; `false` when SQLite can only approximate it (an
/// unsigned integer above `i64::MAX` becomes a REAL).
fn number_param(n: &Number) -> (SqlValue, bool) {
    if let Some(i) = n.as_i64() {
        (SqlValue::Integer(i), true)
    } else if let Some(u) = n.as_u64() {
        (SqlValue::Real(u as f64), false)
    } else {
        (SqlValue::Real(n.as_f64().unwrap_or(0.0)), true)
    }
}

/// A number operand as bound (see [`number_param`]).
fn conv_number(l: Lit<'_>) -> Option<SqlValue> {
    match l {
        Lit::Value(Value::Number(n)) => Some(number_param(n).0),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CmpOp {
    Gt,
    Gte,
    Lt,
    Lte,
}

impl CmpOp {
    fn sql(self) -> &'static str {
        match self {
            CmpOp::Gt => ">",
            CmpOp::Gte => ">=",
            CmpOp::Lt => "<",
            CmpOp::Lte => "<=",
        }
    }

    /// The non-strict form, for operands SQLite may round.
    fn relaxed(self) -> CmpOp {
        match self {
            CmpOp::Gt | CmpOp::Gte => CmpOp::Gte,
            CmpOp::Lt | CmpOp::Lte => CmpOp::Lte,
        }
    }

    fn holds(self, o: Ordering) -> bool {
        match self {
            CmpOp::Gt => o == Ordering::Greater,
            CmpOp::Gte => o != Ordering::Less,
            CmpOp::Lt => o == Ordering::Less,
            CmpOp::Lte => o != Ordering::Greater,
        }
    }
}

/// A positive condition as the compiler walks it. The variants other than `Cond` are
/// the conditions `$ne`, `$nin`, `$exists: false` and `$all` stand for, borrowing the
/// filter's own operands: the plan cache finds each parameter's literal by its address.
#[derive(Debug, Clone, Copy)]
enum Pos<'c> {
    Cond(&'c Cond),
    Eq(&'c Value),
    In(&'c [InItem]),
    Regex(&'c Regex),
    ElemMatch(&'c ElemMatch),
    Exists,
}

struct Compiler<'a> {
    options: &'a CompileOptions,
    aliases: usize,
}

impl Compiler<'_> {
    fn alias(&mut self) -> String {
        self.aliases += 1;
        format!("je{}", self.aliases)
    }

    /// Compiles a filter whose documents are the JSON at `root` (`doc` at the top,
    /// `jeN.value` inside `$elemMatch`).
    fn filter(&mut self, filter: &Filter, root: &str, top: bool) -> Piece {
        match filter {
            Filter::And(parts) => {
                // SQLite tests a scan's terms in the order written: equalities first,
                // as they usually reject the most rows.
                let mut ranked: Vec<(bool, Piece)> = parts
                    .iter()
                    .map(|f| (!is_equality(f), self.filter(f, root, top)))
                    .collect();
                ranked.sort_by_key(|(later, _)| *later);
                and_all(ranked.into_iter().map(|(_, p)| p).collect())
            }
            Filter::Or(parts) => {
                let parts = parts.iter().map(|f| self.filter(f, root, top)).collect();
                or_any(parts)
            }
            Filter::Nor(parts) => {
                let parts = parts.iter().map(|f| self.filter(f, root, top)).collect();
                negate(or_any(parts))
            }
            Filter::Field { path, cond } => self.field(root, top, path, cond),
            Filter::Expr(_) => Piece::anything(),
        }
    }

    /// A condition on a field, with negations taken over the whole field.
    fn field(&mut self, root: &str, top: bool, path: &FieldPath, cond: &Cond) -> Piece {
        match cond {
            Cond::Ne(v) => negate(self.positive(root, top, path, Pos::Eq(v))),
            Cond::Nin(items) => negate(self.positive(root, top, path, Pos::In(items))),
            Cond::Exists(false) => negate(self.positive(root, top, path, Pos::Exists)),
            Cond::Not(conds) => {
                let parts = conds
                    .iter()
                    .map(|c| self.field(root, top, path, c))
                    .collect();
                negate(and_all(parts))
            }
            Cond::All(items) => {
                if items.is_empty() {
                    return Piece::bool(false);
                }
                let parts = items
                    .iter()
                    .map(|item| {
                        let c = match item {
                            AllItem::Value(v) => Pos::Eq(v),
                            AllItem::Regex(r) => Pos::Regex(r),
                            AllItem::ElemMatch(em) => Pos::ElemMatch(em),
                        };
                        self.positive(root, top, path, c)
                    })
                    .collect();
                and_all(parts)
            }
            _ => self.positive(root, top, path, Pos::Cond(cond)),
        }
    }

    /// A condition that holds when some value reached through the path satisfies it.
    fn positive(&mut self, root: &str, top: bool, path: &FieldPath, cond: Pos<'_>) -> Piece {
        let segs = path.segments();
        let scalar = top && self.options.scalar_paths.contains(path);
        if segs.iter().all(|s| segment_ok(s)) && (scalar || segs.len() <= MAX_TRAVERSAL_SEGMENTS) {
            return self.walk(root, "$", segs, true, scalar, cond);
        }
        // Not expressible: a condition that a missing value cannot satisfy still needs
        // the first segment to exist, whatever the rest of the path does.
        let mut first = String::from("$");
        if matches_missing(cond) || push_segment(&mut first, path.first()).is_none() {
            return Piece::anything();
        }
        Piece {
            frag: Frag::lit(format!(
                "json_type({root},{}) IS NOT NULL",
                sql_string(&first)
            )),
            exact: false,
        }
    }

    /// MongoDB's path traversal from the value at (`base`, `path`): arrays met before the
    /// last segment are entered, and each element that is a document continues the walk;
    /// other values yield one "missing" candidate. `at_root` values are documents.
    fn walk(
        &mut self,
        base: &str,
        path: &str,
        segs: &[String],
        at_root: bool,
        scalar: bool,
        cond: Pos<'_>,
    ) -> Piece {
        let (first, rest) = match segs.split_first() {
            Some(split) => split,
            None => {
                return self.leaf(
                    &Loc::Path {
                        base: base.into(),
                        path: path.into(),
                    },
                    cond,
                    scalar,
                )
            }
        };
        let mut child = path.to_string();
        if push_segment(&mut child, first).is_none() {
            return Piece::anything();
        }
        let inner = self.walk(base, &child, rest, false, scalar, cond);
        if at_root || scalar {
            return inner;
        }
        let here = Loc::Path {
            base: base.into(),
            path: path.into(),
        };
        let alias = self.alias();
        let sub = self.walk(&format!("{alias}.value"), "$", segs, true, scalar, cond);
        let exact = sub.exact && inner.exact;
        // One `json_type` per row: `CASE` evaluates its operand once.
        let frag = Frag::lit("(CASE ")
            .s(&here.ty())
            .s(" WHEN 'array' THEN EXISTS (SELECT 1 FROM ")
            .s(&here.each())
            .s(" AS ")
            .s(&alias)
            .s(" WHERE ")
            .s(&alias)
            .s(".type='object' AND ")
            .f(sub.frag)
            .s(") ELSE ")
            .f(inner.frag)
            .s(" END)");
        Piece { frag, exact }
    }

    /// A condition on one candidate value, which may be missing. Conditions that
    /// MongoDB applies to array elements also hold when an element satisfies them.
    fn leaf(&mut self, loc: &Loc, cond: Pos<'_>, scalar: bool) -> Piece {
        let single = self.single_pos(loc, cond);
        let expands = match cond {
            Pos::Eq(_) | Pos::In(_) | Pos::Regex(_) => true,
            Pos::ElemMatch(_) | Pos::Exists => false,
            // An array is of type "array" whatever its elements are.
            Pos::Cond(Cond::Type(types)) => !types.contains(&BsonType::Array),
            Pos::Cond(c) => matches!(
                c,
                Cond::Eq(_)
                    | Cond::Gt(_)
                    | Cond::Gte(_)
                    | Cond::Lt(_)
                    | Cond::Lte(_)
                    | Cond::In(_)
                    | Cond::Type(_)
                    | Cond::Regex(_)
                    | Cond::Mod { .. }
            ),
        };
        if !expands || scalar {
            return single;
        }
        if let Some(piece) = eq_scalar_or_element(loc, cond) {
            return piece;
        }
        if let Some(piece) = cmp_scalar_or_element(loc, cond) {
            return piece;
        }
        if let (Pos::Regex(re) | Pos::Cond(Cond::Regex(re)), Loc::Path { base, path }) = (cond, loc)
        {
            return Piece::exact(
                Frag::lit(format!("{REGEX_JSON_FUNCTION}("))
                    .p(Src::param(Lit::Regex(re), conv_pattern))
                    .s(",")
                    .p(Src::param(Lit::Regex(re), conv_options))
                    .s(&format!(",{base} -> {})", sql_string(path))),
            );
        }
        let alias = self.alias();
        let elem = self.single_pos(
            &Loc::Elem {
                alias: alias.clone(),
            },
            cond,
        );
        if let Some(typed) = typed_single(loc, cond) {
            let exists = if elem.is("0") && elem.exact {
                Frag::lit("0")
            } else {
                Frag::lit(format!(
                    "EXISTS (SELECT 1 FROM {} AS {alias} WHERE ",
                    loc.each()
                ))
                .f(elem.frag)
                .s(")")
            };
            return typed.with_elements(loc, exists, elem.exact);
        }
        let elements = if elem.is("0") && elem.exact {
            Piece::bool(false)
        } else {
            Piece {
                frag: Frag::lit("(")
                    .s(&loc.ty())
                    .s("='array' AND EXISTS (SELECT 1 FROM ")
                    .s(&loc.each())
                    .s(" AS ")
                    .s(&alias)
                    .s(" WHERE ")
                    .f(elem.frag)
                    .s("))"),
                exact: elem.exact,
            }
        };
        or_any(vec![single, elements])
    }

    /// [`Compiler::single`] for a condition the compiler derived.
    fn single_pos(&mut self, loc: &Loc, cond: Pos<'_>) -> Piece {
        match cond {
            Pos::Cond(c) => self.single(loc, c),
            Pos::Eq(v) => eq_single(loc, v),
            Pos::In(items) => in_single(loc, items),
            Pos::Regex(re) => regex_single(loc, re),
            Pos::ElemMatch(em) => self.elem_match(loc, em),
            Pos::Exists => Piece::exact(Frag::lit(format!("{} IS NOT NULL", loc.ty()))),
        }
    }

    /// A condition on one value as a whole, without looking into arrays (also the
    /// semantics of conditions inside `$elemMatch: {$gt: …}`).
    fn single(&mut self, loc: &Loc, cond: &Cond) -> Piece {
        match cond {
            Cond::Eq(v) => eq_single(loc, v),
            Cond::Ne(v) => negate(eq_single(loc, v)),
            Cond::Gt(v) => cmp_single(loc, CmpOp::Gt, v),
            Cond::Gte(v) => cmp_single(loc, CmpOp::Gte, v),
            Cond::Lt(v) => cmp_single(loc, CmpOp::Lt, v),
            Cond::Lte(v) => cmp_single(loc, CmpOp::Lte, v),
            Cond::In(items) => in_single(loc, items),
            Cond::Nin(items) => negate(in_single(loc, items)),
            Cond::Exists(true) => Piece::exact(Frag::lit(format!("{} IS NOT NULL", loc.ty()))),
            Cond::Exists(false) => Piece::exact(Frag::lit(format!("{} IS NULL", loc.ty()))),
            Cond::Type(types) => type_single(loc, types),
            Cond::Regex(re) => regex_single(loc, re),
            Cond::Size(n) => match i64::try_from(*n) {
                Ok(_) => Piece::exact(
                    Frag::lit(format!("({}='array' AND {}=", loc.ty(), loc.array_len()))
                        .p(Src::param(Lit::Size(n), conv_size))
                        .s(")"),
                ),
                Err(_) => Piece::bool(false),
            },
            Cond::Mod { divisor, remainder } => Piece::exact(
                Frag::lit(format!(
                    "({} IN ('integer','real') AND (CAST({} AS INTEGER) % ",
                    loc.ty(),
                    loc.val()
                ))
                .p(Src::param(Lit::Int(divisor), conv_int))
                .s(")=")
                .p(Src::param(Lit::Int(remainder), conv_int))
                .s(")"),
            ),
            Cond::ElemMatch(em) => self.elem_match(loc, em),
            Cond::Not(conds) => {
                let parts = conds.iter().map(|c| self.single(loc, c)).collect();
                negate(and_all(parts))
            }
            // `$all` inside `$elemMatch: {…}` on elements: rare; re-checked in memory.
            Cond::All(_) => Piece::anything(),
        }
    }

    fn elem_match(&mut self, loc: &Loc, em: &ElemMatch) -> Piece {
        let alias = self.alias();
        let body = match em {
            ElemMatch::Value(conds) => {
                let elem = Loc::Elem {
                    alias: alias.clone(),
                };
                let parts = conds.iter().map(|c| self.single(&elem, c)).collect();
                and_all(parts)
            }
            ElemMatch::Document(filter) => {
                let sub = self.filter(filter, &format!("{alias}.value"), false);
                and_all(vec![
                    Piece::exact(Frag::lit(format!("{alias}.type IN ('object','array')"))),
                    sub,
                ])
            }
        };
        if body.is("0") && body.exact {
            return Piece::bool(false);
        }
        Piece {
            frag: Frag::lit(format!(
                "({}='array' AND EXISTS (SELECT 1 FROM {} AS {alias} WHERE ",
                loc.ty(),
                loc.each()
            ))
            .f(body.frag)
            .s("))"),
            exact: body.exact,
        }
    }
}

/// Equality with a string, number or boolean, or `$in` of those, at a path that
/// may hold an array: `pocketdb_eq(base -> 'path', needle, ...)`, one JSON lookup per row
/// ([`EQ_FUNCTION`]). `None` for other conditions and for `json_each` rows, whose value
/// is already read.
fn eq_scalar_or_element(loc: &Loc, cond: Pos<'_>) -> Option<Piece> {
    let scalar = |v: &Value| v.is_string() || v.is_number() || v.is_boolean();
    let needles: Vec<&Value> = match cond {
        Pos::Eq(v) | Pos::Cond(Cond::Eq(v)) if scalar(v) => vec![v],
        Pos::In(items) => scalar_items(items)?,
        Pos::Cond(Cond::In(items)) => scalar_items(items)?,
        _ => return None,
    };
    let Loc::Path { base, path } = loc else {
        return None;
    };
    let mut frag = if base == "doc" && path_labels(path).is_some() {
        Frag::lit(format!("{EQ_AT_FUNCTION}(doc,{}", sql_string(path)))
    } else {
        Frag::lit(format!("{EQ_FUNCTION}({base} -> {}", sql_string(path)))
    };
    for v in needles {
        frag = frag.s(",").p(Src::param(Lit::Value(v), conv_json_text));
    }
    Some(Piece::exact(frag.s(")")))
}

/// `$lt`/`$lte` with a number, or any comparison with a string, at a path that may hold
/// an array: `pocketdb_cmp(base -> 'path', op, needle)`, one JSON lookup per row
/// ([`CMP_FUNCTION`]). `$gt`/`$gte` with a number keep their guarded SQL (see
/// [`typed_single`]), which costs one lookup on the rows that fail it.
fn cmp_scalar_or_element(loc: &Loc, cond: Pos<'_>) -> Option<Piece> {
    let (op, v) = match cond {
        Pos::Cond(Cond::Gt(v)) => (CmpOp::Gt, v),
        Pos::Cond(Cond::Gte(v)) => (CmpOp::Gte, v),
        Pos::Cond(Cond::Lt(v)) => (CmpOp::Lt, v),
        Pos::Cond(Cond::Lte(v)) => (CmpOp::Lte, v),
        _ => return None,
    };
    let wanted = v.is_string() || (v.is_number() && matches!(op, CmpOp::Lt | CmpOp::Lte));
    let Loc::Path { base, path } = loc else {
        return None;
    };
    if !wanted {
        return None;
    }
    let call = if base == "doc" && path_labels(path).is_some() {
        format!("{CMP_AT_FUNCTION}(doc,{},'{}',", sql_string(path), op.sql())
    } else {
        format!(
            "{CMP_FUNCTION}({base} -> {},'{}',",
            sql_string(path),
            op.sql()
        )
    };
    Some(Piece::exact(
        Frag::lit(call)
            .p(Src::param(Lit::Value(v), conv_json_text))
            .s(")"),
    ))
}

/// The values of a `$in` list of at most [`EQ_FUNCTION_MAX_NEEDLES`] strings, numbers
/// and booleans.
fn scalar_items(items: &[InItem]) -> Option<Vec<&Value>> {
    if items.is_empty() || items.len() > EQ_FUNCTION_MAX_NEEDLES {
        return None;
    }
    items
        .iter()
        .map(|item| match item {
            InItem::Value(v) if v.is_string() || v.is_number() || v.is_boolean() => Some(v),
            _ => None,
        })
        .collect()
}

/// A comparison of one value with a number or a string, split for [`Typed::with_elements`]:
/// it holds for values of `types` (JSON types as `json_type` names them) on which `test`
/// holds. With `guard`, `test` alone is also a necessary condition for an array (see
/// [`typed_single`]).
struct Typed {
    types: &'static [&'static str],
    test: Frag,
    exact: bool,
    guard: bool,
}

impl Typed {
    /// The condition on a value that may be an array whose elements are tested by
    /// `exists`, reading the value's JSON type once:
    /// `CASE type WHEN 'integer' THEN test … WHEN 'array' THEN exists ELSE 0 END`, which
    /// is `(type IN types AND test) OR (type = 'array' AND exists)` with one `json_type`
    /// call per row instead of two or three. With `guard`, `test AND CASE …` tests the
    /// value first: most rows of a range scan fail there, after one call.
    fn with_elements(self, loc: &Loc, exists: Frag, elements_exact: bool) -> Piece {
        let mut frag = if self.guard {
            Frag::lit("(").f(self.test.clone()).s(" AND ")
        } else {
            Frag::lit("(")
        };
        frag = frag.s("CASE ").s(&loc.ty());
        for t in self.types {
            frag = frag.s(" WHEN '").s(t).s("' THEN ");
            frag = if self.guard {
                frag.s("1")
            } else {
                frag.f(self.test.clone())
            };
        }
        frag = frag.s(" WHEN 'array' THEN ").f(exists).s(" ELSE 0 END)");
        Piece {
            frag,
            exact: self.exact && elements_exact,
        }
    }
}

/// [`Typed`] of an equality or a comparison with a number or a string.
///
/// `$gt`/`$gte` with a number is guarded: `json_extract` gives an array (or a document,
/// or a string) as TEXT, which SQLite orders after every number, so a value failing
/// `value > n` is neither an array nor anything else that could match.
fn typed_single(loc: &Loc, cond: Pos<'_>) -> Option<Typed> {
    let (op, v) = match cond {
        Pos::Eq(v) | Pos::Cond(Cond::Eq(v)) => (None, v),
        Pos::Cond(Cond::Gt(v)) => (Some(CmpOp::Gt), v),
        Pos::Cond(Cond::Gte(v)) => (Some(CmpOp::Gte), v),
        Pos::Cond(Cond::Lt(v)) => (Some(CmpOp::Lt), v),
        Pos::Cond(Cond::Lte(v)) => (Some(CmpOp::Lte), v),
        _ => return None,
    };
    let val = loc.val();
    match v {
        Value::Number(n) => {
            let exact = number_param(n).1;
            let op = op.map(|o| if exact { o } else { o.relaxed() });
            let sql_op = op.map_or("=", CmpOp::sql);
            Some(Typed {
                types: &["integer", "real"],
                test: Frag::lit(format!("{val}{sql_op}")).p(Src::param(Lit::Value(v), conv_number)),
                exact,
                guard: matches!(op, Some(CmpOp::Gt | CmpOp::Gte)),
            })
        }
        Value::String(_) => Some(Typed {
            types: &["text"],
            test: Frag::lit(format!("{val}{}", op.map_or("=", CmpOp::sql)))
                .p(Src::param(Lit::Value(v), conv_text)),
            exact: true,
            guard: false,
        }),
        _ => None,
    }
}

/// True for an equality with a number, string or boolean, or an `$in`.
fn is_equality(filter: &Filter) -> bool {
    match filter {
        Filter::Field { cond, .. } => match cond {
            Cond::Eq(v) => v.is_number() || v.is_string() || v.is_boolean(),
            Cond::In(_) => true,
            _ => false,
        },
        _ => false,
    }
}

/// True when a positive condition can hold for a missing value (it involves `null`).
fn matches_missing(cond: Pos<'_>) -> bool {
    let cond = match cond {
        Pos::Eq(v) => return v.is_null(),
        Pos::In(items) => {
            return items
                .iter()
                .any(|i| matches!(i, InItem::Value(Value::Null)))
        }
        Pos::Regex(_) | Pos::ElemMatch(_) | Pos::Exists => return false,
        Pos::Cond(c) => c,
    };
    match cond {
        Cond::Eq(Value::Null) | Cond::Gte(Value::Null) | Cond::Lte(Value::Null) => true,
        Cond::In(items) => items
            .iter()
            .any(|i| matches!(i, InItem::Value(Value::Null))),
        Cond::Eq(_)
        | Cond::Gt(_)
        | Cond::Gte(_)
        | Cond::Lt(_)
        | Cond::Lte(_)
        | Cond::Exists(true)
        | Cond::Type(_)
        | Cond::Regex(_)
        | Cond::Size(_)
        | Cond::ElemMatch(_)
        | Cond::Mod { .. } => false,
        // Negations and `$all` are never passed here; answer conservatively.
        Cond::Ne(_) | Cond::Nin(_) | Cond::Not(_) | Cond::Exists(false) | Cond::All(_) => true,
    }
}

fn eq_single(loc: &Loc, v: &Value) -> Piece {
    let (ty, val) = (loc.ty(), loc.val());
    match v {
        Value::Null => Piece::exact(Frag::lit(format!("{val} IS NULL"))),
        Value::Bool(b) => Piece::exact(Frag::lit(format!("{ty}='{b}'"))),
        Value::Number(n) => {
            let exact = number_param(n).1;
            Piece {
                frag: Frag::lit(format!("({ty} IN ('integer','real') AND {val}="))
                    .p(Src::param(Lit::Value(v), conv_number))
                    .s(")"),
                exact,
            }
        }
        Value::String(_) => Piece::exact(
            Frag::lit(format!("({ty}='text' AND {val}="))
                .p(Src::param(Lit::Value(v), conv_text))
                .s(")"),
        ),
        Value::Array(_) | Value::Object(_) => {
            let t = if v.is_array() { "array" } else { "object" };
            Piece::exact(
                Frag::lit(format!("({ty}='{t}' AND {JSON_CMP_FUNCTION}({val},"))
                    .p(Src::param(Lit::Value(v), conv_json_text))
                    .s(")=0)"),
            )
        }
    }
}

fn cmp_single(loc: &Loc, op: CmpOp, v: &Value) -> Piece {
    let (ty, val) = (loc.ty(), loc.val());
    match v {
        Value::Null => match op {
            CmpOp::Gte | CmpOp::Lte => Piece::exact(Frag::lit(format!("{val} IS NULL"))),
            CmpOp::Gt | CmpOp::Lt => Piece::bool(false),
        },
        Value::Bool(b) => {
            let types: Vec<&str> = [false, true]
                .into_iter()
                .filter(|x| op.holds(x.cmp(b)))
                .map(|x| if x { "'true'" } else { "'false'" })
                .collect();
            if types.is_empty() {
                Piece::bool(false)
            } else {
                Piece::exact(Frag::lit(format!("{ty} IN ({})", types.join(","))))
            }
        }
        Value::Number(n) => {
            let exact = number_param(n).1;
            let op = if exact { op } else { op.relaxed() };
            Piece {
                frag: Frag::lit(format!("({ty} IN ('integer','real') AND {val}{}", op.sql()))
                    .p(Src::param(Lit::Value(v), conv_number))
                    .s(")"),
                exact,
            }
        }
        Value::String(_) => Piece::exact(
            Frag::lit(format!("({ty}='text' AND {val}{}", op.sql()))
                .p(Src::param(Lit::Value(v), conv_text))
                .s(")"),
        ),
        Value::Array(_) | Value::Object(_) => {
            let t = if v.is_array() { "array" } else { "object" };
            Piece::exact(
                Frag::lit(format!("({ty}='{t}' AND {JSON_CMP_FUNCTION}({val},"))
                    .p(Src::param(Lit::Value(v), conv_json_text))
                    .s(format!("){}0)", op.sql()).as_str()),
            )
        }
    }
}

fn in_single(loc: &Loc, items: &[InItem]) -> Piece {
    let (ty, val) = (loc.ty(), loc.val());
    let mut numbers = Vec::new();
    let mut numbers_exact = true;
    let mut strings = Vec::new();
    let mut parts = Vec::new();
    for item in items {
        match item {
            InItem::Value(v @ Value::Number(n)) => {
                numbers_exact &= number_param(n).1;
                numbers.push(Src::param(Lit::Value(v), conv_number));
            }
            InItem::Value(v @ Value::String(_)) => {
                strings.push(Src::param(Lit::Value(v), conv_text))
            }
            InItem::Value(v) => parts.push(eq_single(loc, v)),
            InItem::Regex(re) => parts.push(regex_single(loc, re)),
        }
    }
    let list = |head: String, values: Vec<(SqlValue, Src)>| {
        let mut frag = Frag::lit(head);
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                frag = frag.s(",");
            }
            frag = frag.p(v);
        }
        frag.s("))")
    };
    if !strings.is_empty() {
        let frag = list(format!("({ty}='text' AND {val} IN ("), strings);
        parts.insert(0, Piece::exact(frag));
    }
    if !numbers.is_empty() {
        let frag = list(
            format!("({ty} IN ('integer','real') AND {val} IN ("),
            numbers,
        );
        parts.insert(
            0,
            Piece {
                frag,
                exact: numbers_exact,
            },
        );
    }
    or_any(parts)
}

/// `$type`: one `json_type` test against the list of SQLite types the aliases name
/// (`number` and `int` + `long` need no look at the value); only `int` or `long` alone
/// compares the integer with the 32-bit range.
fn type_single(loc: &Loc, types: &[BsonType]) -> Piece {
    let (ty, val) = (loc.ty(), loc.val());
    let (int, long) = (
        types.contains(&BsonType::Int),
        types.contains(&BsonType::Long),
    );
    // Dates and embedded documents are both `'object'` to `json_type`.
    let (object, date) = (
        types.contains(&BsonType::Object),
        types.contains(&BsonType::Date),
    );
    let mut names: Vec<&str> = Vec::new();
    for t in types {
        let more: &[&str] = match t {
            BsonType::Double => &["real"],
            BsonType::String => &["text"],
            BsonType::Object | BsonType::Date if object && date => &["object"],
            BsonType::Object | BsonType::Date => &[],
            BsonType::Array => &["array"],
            BsonType::Bool => &["true", "false"],
            BsonType::Null => &["null"],
            BsonType::Int | BsonType::Long if int && long => &["integer"],
            BsonType::Int | BsonType::Long => &[],
        };
        for name in more {
            if !names.contains(name) {
                names.push(name);
            }
        }
    }
    let mut parts = Vec::new();
    match names.as_slice() {
        [] => {}
        [one] => parts.push(Piece::exact(Frag::lit(format!("{ty}='{one}'")))),
        many => parts.push(Piece::exact(Frag::lit(format!(
            "{ty} IN ({})",
            many.iter()
                .map(|n| format!("'{n}'"))
                .collect::<Vec<_>>()
                .join(",")
        )))),
    }
    if object != date {
        parts.push(Piece::exact(Frag::lit(format!(
            "({ty}='object' AND {DATE_FUNCTION}({val})={})",
            u8::from(date)
        ))));
    }
    if int != long {
        let range = if int { "BETWEEN" } else { "NOT BETWEEN" };
        parts.push(Piece::exact(Frag::lit(format!(
            "({ty}='integer' AND {val} {range} -2147483648 AND 2147483647)"
        ))));
    }
    or_any(parts)
}

fn regex_single(loc: &Loc, re: &Regex) -> Piece {
    Piece::exact(
        Frag::lit(format!("({}='text' AND {REGEX_FUNCTION}(", loc.ty()))
            .p(Src::param(Lit::Regex(re), conv_pattern))
            .s(",")
            .p(Src::param(Lit::Regex(re), conv_options))
            .s(&format!(",{}))", loc.val())),
    )
}

/// Installs the SQL functions compiled filters call ([`REGEX_FUNCTION`],
/// [`REGEX_JSON_FUNCTION`], [`JSON_CMP_FUNCTION`], [`DATE_FUNCTION`], [`EQ_FUNCTION`],
/// [`CMP_FUNCTION`]) on a connection. Call it once per connection before running any SQL
/// from [`compile_filter`].
pub fn register_functions(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8
        | FunctionFlags::SQLITE_DETERMINISTIC
        | FunctionFlags::SQLITE_INNOCUOUS;
    conn.create_scalar_function(REGEX_FUNCTION, 3, flags, regex_fn)?;
    conn.create_scalar_function(REGEX_JSON_FUNCTION, 3, flags, regex_json_fn)?;
    conn.create_scalar_function(JSON_CMP_FUNCTION, 2, flags, json_cmp_fn)?;
    conn.create_scalar_function(DATE_FUNCTION, 1, flags, is_date_fn)?;
    conn.create_scalar_function(EQ_FUNCTION, -1, flags, eq_fn)?;
    conn.create_scalar_function(EQ_AT_FUNCTION, -1, flags, eq_at_fn)?;
    conn.create_scalar_function(CMP_FUNCTION, 3, flags, cmp_fn)?;
    conn.create_scalar_function(CMP_AT_FUNCTION, 4, flags, cmp_at_fn)?;
    Ok(())
}

fn user_error(e: impl std::error::Error + Send + Sync + 'static) -> rusqlite::Error {
    rusqlite::Error::UserFunctionError(Box::new(e))
}

/// A compiled regex remembered per call site with the options it was built with.
struct CachedRegex {
    options: String,
    regex: regex::Regex,
}

fn regex_fn(ctx: &Context<'_>) -> rusqlite::Result<bool> {
    let text = match ctx.get_raw(2) {
        ValueRef::Text(bytes) => match std::str::from_utf8(bytes) {
            Ok(s) => s,
            Err(_) => return Ok(false),
        },
        _ => return Ok(false),
    };
    with_regex(ctx, |re| re.is_match(text))
}

/// [`REGEX_JSON_FUNCTION`]: the regex of arguments 0 and 1 against a string, or the
/// string elements of an array, given as JSON text.
fn regex_json_fn(ctx: &Context<'_>) -> rusqlite::Result<bool> {
    let ValueRef::Text(text) = ctx.get_raw(2) else {
        return Ok(false);
    };
    match text.first() {
        Some(b'"') if text.len() >= 2 && !text.contains(&b'\\') => {
            match std::str::from_utf8(&text[1..text.len() - 1]) {
                Ok(s) => with_regex(ctx, |re| re.is_match(s)),
                Err(_) => Ok(false),
            }
        }
        Some(b'"') => match serde_json::from_slice::<String>(text) {
            Ok(s) => with_regex(ctx, |re| re.is_match(&s)),
            Err(_) => Ok(false),
        },
        Some(b'[') => match serde_json::from_slice::<Vec<Value>>(text) {
            Ok(items) => with_regex(ctx, |re| {
                items
                    .iter()
                    .any(|v| v.as_str().is_some_and(|s| re.is_match(s)))
            }),
            Err(_) => Ok(false),
        },
        _ => Ok(false),
    }
}

/// Calls `f` with the regex of arguments 0 (pattern) and 1 (options), compiled once per
/// statement.
fn with_regex<R>(ctx: &Context<'_>, f: impl FnOnce(&regex::Regex) -> R) -> rusqlite::Result<R> {
    let options: String = ctx.get(1)?;
    let build = |pattern: &str| -> rusqlite::Result<CachedRegex> {
        let compiled = Regex::new(pattern, &options).map_err(user_error)?;
        Ok(CachedRegex {
            options: options.clone(),
            regex: compiled.compiled,
        })
    };
    let cached: Arc<CachedRegex> =
        ctx.get_or_create_aux(0, |v| -> rusqlite::Result<CachedRegex> {
            build(
                v.as_str()
                    .map_err(|e| user_error(rusqlite::Error::from(e)))?,
            )
        })?;
    if cached.options == options {
        return Ok(f(&cached.regex));
    }
    let pattern: String = ctx.get(0)?;
    Ok(f(&build(&pattern)?.regex))
}

fn parse_json(v: ValueRef<'_>) -> Option<Value> {
    match v {
        ValueRef::Text(bytes) => serde_json::from_slice(bytes).ok(),
        _ => None,
    }
}

/// [`EQ_FUNCTION`]. The needles are strings, numbers or booleans serialised by
/// serde_json, as documents are when stored, so equal values are usually equal texts;
/// only escapes (a string with a backslash), numbers of another spelling (`1` and `1.0`)
/// and arrays are parsed.
fn eq_fn(ctx: &Context<'_>) -> rusqlite::Result<bool> {
    let ValueRef::Text(text) = ctx.get_raw(0) else {
        return Ok(false);
    };
    let mut needs_parse = false;
    for i in 1..ctx.len() {
        let ValueRef::Text(needle) = ctx.get_raw(i) else {
            continue;
        };
        if text == needle {
            return Ok(true);
        }
        needs_parse |= match (text.first(), needle.first()) {
            // Two strings written without escapes are equal exactly when their texts are.
            (Some(b'"'), Some(b'"')) => text.contains(&b'\\') || needle.contains(&b'\\'),
            // So are two integers in JSON's only spelling (no exponent, no `-0`).
            (Some(b'-' | b'0'..=b'9'), Some(b'-' | b'0'..=b'9')) => {
                !(plain_integer(text) && plain_integer(needle))
            }
            (Some(b'['), _) => true,
            _ => false,
        };
    }
    if !needs_parse {
        return Ok(false);
    }
    match serde_json::from_slice::<Value>(text) {
        Ok(v) => eq_decoded(ctx, 1, &v),
        Err(_) => Ok(false),
    }
}

/// The labels of a JSON path made by [`push_segment`] (`$."a"."b"` → `a`, `b`); `None`
/// for any other path.
fn path_labels(path: &str) -> Option<Vec<String>> {
    let mut rest = path.strip_prefix('$')?;
    let mut labels = Vec::new();
    while !rest.is_empty() {
        let inner = rest.strip_prefix(".\"")?;
        let close = inner.find('"')?;
        labels.push(inner[..close].to_string());
        rest = &inner[close + 1..];
    }
    (!labels.is_empty()).then_some(labels)
}

/// [`EQ_AT_FUNCTION`]: [`eq_fn`]'s answer for the value at a path of a JSONB document.
/// Strings without escapes, integers in JSON's one spelling and booleans compare as
/// bytes in the blob; anything else is decoded and compared as [`eq_fn`] compares it.
fn eq_at_fn(ctx: &Context<'_>) -> rusqlite::Result<bool> {
    use crate::value::jsonb::{self, Found};
    let Some(v) = value_at(ctx)? else {
        return Ok(false);
    };
    let (blob, kind, payload, at) = match v {
        At::Decoded(v) => return eq_decoded(ctx, 2, &v),
        At::Blob(blob, Found::At { kind, payload, at }) => (blob, kind, payload, at),
        At::Blob(_, _) => return Ok(false),
    };
    let mut decode = false;
    for i in 2..ctx.len() {
        let ValueRef::Text(needle) = ctx.get_raw(i) else {
            continue;
        };
        match kind {
            jsonb::TEXT | jsonb::TEXTRAW => match needle.strip_prefix(b"\"") {
                // A needle without escapes is the string's bytes between quotes; such a
                // string has no character a stored one would need escaped.
                Some(inner)
                    if !needle.contains(&b'\\') && inner.strip_suffix(b"\"") == Some(payload) =>
                {
                    return Ok(true)
                }
                Some(_) if needle.contains(&b'\\') => decode = true,
                Some(_) => {}
                None => {}
            },
            jsonb::INT | jsonb::FLOAT => {
                if needle == payload {
                    return Ok(true);
                }
                if matches!(needle.first(), Some(b'-' | b'0'..=b'9'))
                    && !(plain_integer(payload) && plain_integer(needle))
                {
                    decode = true;
                }
            }
            jsonb::TRUE if needle == b"true" => return Ok(true),
            jsonb::FALSE if needle == b"false" => return Ok(true),
            jsonb::TRUE | jsonb::FALSE | jsonb::NULL | jsonb::OBJECT => {}
            // Arrays (any element may match), strings with escapes, the rest.
            _ => decode = true,
        }
    }
    if !decode {
        return Ok(false);
    }
    match jsonb::decode_at(blob, at) {
        Some(v) => eq_decoded(ctx, 2, &v),
        None => Ok(false),
    }
}

/// [`eq_fn`]'s comparison of a decoded value with the needles from argument `first`
/// on: equal scalars, or an array holding one.
fn eq_decoded(ctx: &Context<'_>, first: usize, v: &Value) -> rusqlite::Result<bool> {
    let mut needles = Vec::with_capacity(ctx.len().saturating_sub(first));
    for i in first..ctx.len() {
        let arg = i32::try_from(i).map_err(user_error)?;
        let needle: Arc<Option<Value>> = ctx
            .get_or_create_aux(arg, |v| -> rusqlite::Result<Option<Value>> {
                Ok(parse_json(v))
            })?;
        needles.push(needle);
    }
    let equal = |v: &Value| {
        needles.iter().any(|n| match (v, n.as_ref()) {
            (Value::String(a), Some(Value::String(b))) => a == b,
            (Value::Bool(a), Some(Value::Bool(b))) => a == b,
            (Value::Number(_), Some(n @ Value::Number(_))) => {
                compare_values(v, n) == Ordering::Equal
            }
            _ => false,
        })
    };
    Ok(match v {
        Value::Array(items) => items.iter().any(equal),
        other => equal(other),
    })
}

/// [`CMP_FUNCTION`]. Strings without escapes compare as their bytes (MongoDB's binary
/// order); numbers and arrays are parsed.
fn cmp_fn(ctx: &Context<'_>) -> rusqlite::Result<bool> {
    let ValueRef::Text(text) = ctx.get_raw(0) else {
        return Ok(false);
    };
    let Some((op, needle)) = cmp_operands(ctx, 1)? else {
        return Ok(false);
    };
    let needle = needle.as_ref().as_ref();
    Ok(match (text.first(), needle) {
        (Some(b'"'), Some(Value::String(b))) if text.len() >= 2 && !text.contains(&b'\\') => {
            op.holds(text[1..text.len() - 1].cmp(b.as_bytes()))
        }
        (Some(b'"'), Some(Value::String(_)))
        | (Some(b'-' | b'0'..=b'9'), Some(Value::Number(_)))
        | (Some(b'['), Some(_)) => {
            serde_json::from_slice::<Value>(text).is_ok_and(|v| cmp_holds(op, &v, needle))
        }
        _ => false,
    })
}

/// The operator (argument `at`) and the parsed needle (argument `at + 1`) of a
/// comparison function; `None` for an unknown operator.
fn cmp_operands(
    ctx: &Context<'_>,
    at: usize,
) -> rusqlite::Result<Option<(CmpOp, Arc<Option<Value>>)>> {
    let op = match ctx.get_raw(at) {
        ValueRef::Text(b">") => CmpOp::Gt,
        ValueRef::Text(b">=") => CmpOp::Gte,
        ValueRef::Text(b"<") => CmpOp::Lt,
        ValueRef::Text(b"<=") => CmpOp::Lte,
        _ => return Ok(None),
    };
    let arg = i32::try_from(at + 1).map_err(user_error)?;
    let needle: Arc<Option<Value>> = ctx
        .get_or_create_aux(arg, |v| -> rusqlite::Result<Option<Value>> {
            Ok(parse_json(v))
        })?;
    Ok(Some((op, needle)))
}

/// [`cmp_fn`]'s test of a decoded value: a string or number of the needle's kind that
/// compares as `op` says (strings by their bytes), or an array holding one.
fn cmp_holds(op: CmpOp, v: &Value, needle: Option<&Value>) -> bool {
    let Some(needle) = needle else {
        return false;
    };
    let holds = |v: &Value| match (v, needle) {
        (Value::String(a), Value::String(b)) => op.holds(a.as_bytes().cmp(b.as_bytes())),
        (Value::Number(_), Value::Number(_)) => op.holds(compare_values(v, needle)),
        _ => false,
    };
    match v {
        Value::Array(items) => items.iter().any(holds),
        other => holds(other),
    }
}

/// [`CMP_AT_FUNCTION`]: [`cmp_fn`]'s answer for the value at a path of a JSONB
/// document. A string without escapes compares as its bytes in the blob; numbers,
/// escaped strings and arrays are decoded.
fn cmp_at_fn(ctx: &Context<'_>) -> rusqlite::Result<bool> {
    use crate::value::jsonb::{self, Found};
    let Some((op, needle)) = cmp_operands(ctx, 2)? else {
        return Ok(false);
    };
    let needle = needle.as_ref().as_ref();
    let Some(v) = value_at(ctx)? else {
        return Ok(false);
    };
    let (blob, kind, payload, at) = match v {
        At::Decoded(v) => return Ok(cmp_holds(op, &v, needle)),
        At::Blob(blob, Found::At { kind, payload, at }) => (blob, kind, payload, at),
        At::Blob(_, _) => return Ok(false),
    };
    match (kind, needle) {
        (jsonb::TEXT | jsonb::TEXTRAW, Some(Value::String(b))) => {
            Ok(op.holds(payload.cmp(b.as_bytes())))
        }
        (jsonb::TEXTJ, Some(Value::String(_)))
        | (jsonb::INT | jsonb::FLOAT, Some(Value::Number(_)))
        | (jsonb::ARRAY, Some(_)) => {
            Ok(jsonb::decode_at(blob, at).is_some_and(|v| cmp_holds(op, &v, needle)))
        }
        _ => Ok(false),
    }
}

/// Where the value at the path (argument 1) of the document (argument 0) is.
enum At<'b> {
    /// In a JSONB blob (a [`Found::At`](crate::value::jsonb::Found), or missing).
    Blob(&'b [u8], crate::value::jsonb::Found<'b>),
    /// Decoded from a document the blob reader does not follow, or given as text.
    Decoded(Value),
}

/// The value at the path of argument 1 in the document of argument 0; `None` when it
/// is missing.
fn value_at<'c>(ctx: &'c Context<'_>) -> rusqlite::Result<Option<At<'c>>> {
    use crate::value::jsonb::{self, Found};
    let labels: Arc<Vec<String>> =
        ctx.get_or_create_aux(1, |v| -> rusqlite::Result<Vec<String>> {
            match v {
                ValueRef::Text(t) => std::str::from_utf8(t)
                    .ok()
                    .and_then(path_labels)
                    .ok_or_else(|| user_error(std::fmt::Error)),
                _ => Err(user_error(std::fmt::Error)),
            }
        })?;
    let walk = |doc: Value| -> Option<Value> {
        let mut v = doc;
        for label in labels.iter() {
            v = match v {
                Value::Object(mut map) => map.remove(label)?,
                _ => return None,
            };
        }
        Some(v)
    };
    Ok(match ctx.get_raw(0) {
        ValueRef::Blob(blob) => match jsonb::lookup(blob, &labels) {
            Found::Missing => None,
            Found::Unknown => jsonb::decode(blob).and_then(walk).map(At::Decoded),
            found => Some(At::Blob(blob, found)),
        },
        // Not JSONB (a document given as text): walk its parsed value.
        other => parse_json(other).and_then(walk).map(At::Decoded),
    })
}

/// True for the JSON text of an integer other than `-0`: digits after an optional `-`.
fn plain_integer(text: &[u8]) -> bool {
    let digits = text.strip_prefix(b"-").unwrap_or(text);
    !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) && text != b"-0"
}

fn json_cmp_fn(ctx: &Context<'_>) -> rusqlite::Result<Option<i64>> {
    let a = match parse_json(ctx.get_raw(0)) {
        Some(a) => a,
        None => return Ok(None),
    };
    let b: Arc<Option<Value>> = ctx
        .get_or_create_aux(1, |v| -> rusqlite::Result<Option<Value>> {
            Ok(parse_json(v))
        })?;
    Ok(b.as_ref().as_ref().and_then(|b| {
        if type_rank(&a) != type_rank(b) {
            return None;
        }
        Some(match compare_values(&a, b) {
            Ordering::Less => -1,
            Ordering::Equal => 0,
            Ordering::Greater => 1,
        })
    }))
}

/// [`DATE_FUNCTION`]. Only the JSON text of an object naming `$date` is parsed.
fn is_date_fn(ctx: &Context<'_>) -> rusqlite::Result<bool> {
    let ValueRef::Text(text) = ctx.get_raw(0) else {
        return Ok(false);
    };
    if text.first() != Some(&b'{') || !text.windows(7).any(|w| w == b"\"$date\"") {
        return Ok(false);
    }
    Ok(serde_json::from_slice::<Value>(text).is_ok_and(|v| date_millis(&v).is_some()))
}
