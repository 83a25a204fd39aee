//! Index bounds: which rows of a multikey side table can hold a document matching a
//! condition, and the string range of a prefix regex.
//!
//! Bounds are only ever a *superset* of the matching documents: the compiled filter (or
//! the matcher) still decides. They follow MongoDB's type brackets through the side
//! table's type tag: `{$gt: 5}` looks at number keys only, `{$lt: "m"}` at string keys.

use super::keys::{value_sql, TAG_NULL, TAG_NUMBER, TAG_STRING};
use crate::query::shape::{conv_prefix_hi, conv_prefix_lo, Lit, Src};
use crate::query::{AllItem, Cond, ElemMatch, InItem, Regex};
use rusqlite::types::Value as SqlValue;
use serde_json::Value;

/// A predicate over the side table's leading key columns `t0`, `v0`.
#[derive(Debug, Clone)]
pub(crate) struct Bounds {
    /// SQL over `t0` and `v0`.
    pub sql: String,
    /// Its parameters.
    pub params: Vec<SqlValue>,
    /// Where each parameter came from (see [`crate::query::shape`]).
    pub srcs: Vec<Src>,
    /// Selectivity class, lower is better: 0 equality, 1 `$in`, 2 range.
    pub rank: u8,
}

fn eq_bounds(v: &Value) -> Option<Bounds> {
    if v.is_array() {
        // An array operand also matches the array as a whole, which is not a key.
        return None;
    }
    if crate::value::date_millis(v).is_some() {
        // Keys hold a date's text, and one instant has many texts.
        return None;
    }
    let (tag, tag_src) = Src::param(Lit::Value(v), conv_key_tag);
    let (value, value_src) = Src::param(Lit::Value(v), conv_key_value);
    Some(Bounds {
        sql: "(t0=? AND v0=?)".to_string(),
        params: vec![tag, value],
        srcs: vec![tag_src, value_src],
        rank: 0,
    })
}

/// The side table's type tag of a value operand.
fn conv_key_tag(l: Lit<'_>) -> Option<SqlValue> {
    match l {
        Lit::Value(v) => Some(SqlValue::Integer(value_sql(v).0)),
        _ => None,
    }
}

/// The side table's key value of a value operand.
fn conv_key_value(l: Lit<'_>) -> Option<SqlValue> {
    match l {
        Lit::Value(v) => Some(value_sql(v).1),
        _ => None,
    }
}

fn range_bounds(op: &str, v: &Value) -> Option<Bounds> {
    let tag = match v {
        Value::Number(_) => TAG_NUMBER,
        Value::String(_) => TAG_STRING,
        Value::Null if op.contains('=') => {
            return Some(Bounds {
                sql: "(t0=?)".to_string(),
                params: vec![SqlValue::Integer(TAG_NULL)],
                srcs: vec![Src::Const],
                rank: 2,
            })
        }
        _ => return None,
    };
    // Non-strict: SQLite may round a large integer operand.
    let op = if op.starts_with('>') { ">=" } else { "<=" };
    let (value, value_src) = Src::param(Lit::Value(v), conv_key_value);
    Some(Bounds {
        sql: format!("(t0=? AND v0{op}?)"),
        params: vec![SqlValue::Integer(tag), value],
        // The tag follows from the operand's type, part of the filter's shape.
        srcs: vec![Src::Const, value_src],
        rank: 2,
    })
}

fn regex_bounds(re: &Regex) -> Option<Bounds> {
    let (_, hi) = prefix_range(re)?;
    let (lo, lo_src) = Src::param(Lit::Regex(re), conv_prefix_lo);
    let mut params = vec![SqlValue::Integer(TAG_STRING), lo];
    let mut srcs = vec![Src::Const, lo_src];
    let sql = match hi {
        Some(_) => {
            let (hi, hi_src) = Src::param(Lit::Regex(re), conv_prefix_hi);
            params.push(hi);
            srcs.push(hi_src);
            "(t0=? AND v0>=? AND v0<?)"
        }
        None => "(t0=? AND v0>=?)",
    };
    Some(Bounds {
        sql: sql.to_string(),
        params,
        srcs,
        rank: 2,
    })
}

/// Bounds on the side table for a condition on the index's leading path, `None` when the
/// condition cannot be bounded (negations, `$exists`, `$type`, array operands…).
pub(crate) fn side_bounds(cond: &Cond) -> Option<Bounds> {
    match cond {
        Cond::Eq(v) => eq_bounds(v),
        Cond::Gt(v) => range_bounds(">", v),
        Cond::Gte(v) => range_bounds(">=", v),
        Cond::Lt(v) => range_bounds("<", v),
        Cond::Lte(v) => range_bounds("<=", v),
        Cond::Regex(re) => regex_bounds(re),
        Cond::In(items) => {
            if items.is_empty() {
                return None;
            }
            let mut parts = Vec::new();
            let mut params = Vec::new();
            let mut srcs = Vec::new();
            for item in items {
                let b = match item {
                    InItem::Value(v) => eq_bounds(v)?,
                    InItem::Regex(re) => regex_bounds(re)?,
                };
                parts.push(b.sql);
                params.extend(b.params);
                srcs.extend(b.srcs);
            }
            Some(Bounds {
                sql: format!("({})", parts.join(" OR ")),
                params,
                srcs,
                rank: 1,
            })
        }
        Cond::All(items) => items.iter().find_map(|item| match item {
            AllItem::Value(v) => eq_bounds(v),
            AllItem::Regex(re) => regex_bounds(re),
            AllItem::ElemMatch(ElemMatch::Value(conds)) => best(conds),
            AllItem::ElemMatch(ElemMatch::Document(_)) => None,
        }),
        Cond::ElemMatch(ElemMatch::Value(conds)) => best(conds),
        _ => None,
    }
}

/// The best bounds among conditions an array element must satisfy *as a whole* (the
/// value form of `$elemMatch`): only conditions that compare the element itself; a
/// nested `$elemMatch` or `$all` looks inside the element, which is not a key.
fn best(conds: &[Cond]) -> Option<Bounds> {
    conds
        .iter()
        .filter(|c| {
            matches!(
                c,
                Cond::Eq(_)
                    | Cond::Gt(_)
                    | Cond::Gte(_)
                    | Cond::Lt(_)
                    | Cond::Lte(_)
                    | Cond::In(_)
                    | Cond::Regex(_)
            )
        })
        .filter_map(side_bounds)
        .min_by_key(|b| b.rank)
}

/// The string range `[lo, hi)` holding every string a regex can match, when the regex
/// is anchored at the start with a literal prefix and no options that change what the
/// prefix means (`i`, `m`, `x`). `hi` is `None` when the prefix has no successor.
pub(crate) fn prefix_range(re: &Regex) -> Option<(String, Option<String>)> {
    if re.options.chars().any(|c| c != 's') {
        return None;
    }
    let body = re.pattern.strip_prefix('^')?;
    if re.pattern.contains('|') {
        return None;
    }
    let mut prefix: Vec<char> = Vec::new();
    let mut chars = body.chars().peekable();
    while let Some(&c) = chars.peek() {
        if "\\.^$*+?()[]{}|".contains(c) {
            if matches!(c, '*' | '?' | '{') {
                // The last literal is optional or repeated: not part of the prefix.
                prefix.pop();
            }
            break;
        }
        prefix.push(c);
        chars.next();
    }
    if prefix.is_empty() {
        return None;
    }
    let lo: String = prefix.iter().collect();
    Some((lo, successor(prefix)))
}

/// The smallest string greater than every string starting with `prefix`.
fn successor(mut prefix: Vec<char>) -> Option<String> {
    while let Some(last) = prefix.pop() {
        let next = match last {
            char::MAX => continue,
            '\u{D7FF}' => Some('\u{E000}'),
            c => char::from_u32(c as u32 + 1),
        };
        if let Some(n) = next {
            prefix.push(n);
            return Some(prefix.into_iter().collect());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(p: &str, o: &str) -> Option<(String, Option<String>)> {
        prefix_range(&Regex::new(p, o).unwrap())
    }

    #[test]
    fn prefixes() {
        assert_eq!(range("^abc", ""), Some(("abc".into(), Some("abd".into()))));
        assert_eq!(range("^ab.*", ""), Some(("ab".into(), Some("ac".into()))));
        assert_eq!(range("^abc?", ""), Some(("ab".into(), Some("ac".into()))));
        assert_eq!(range("^abc+", ""), Some(("abc".into(), Some("abd".into()))));
        assert_eq!(
            range("^a\u{10FFFF}", ""),
            Some(("a\u{10FFFF}".into(), Some("b".into())))
        );
        assert_eq!(range("^abc", "i"), None);
        assert_eq!(range("abc", ""), None);
        assert_eq!(range("^a|b", ""), None);
        assert_eq!(range("^.a", ""), None);
    }

    #[test]
    fn bounds_respect_type_brackets() {
        let b = side_bounds(&Cond::Gt(serde_json::json!(5))).unwrap();
        assert!(b.sql.contains("t0=?"));
        assert_eq!(b.params[0], SqlValue::Integer(TAG_NUMBER));
        assert!(side_bounds(&Cond::Eq(serde_json::json!([1]))).is_none());
        assert!(side_bounds(&Cond::Exists(true)).is_none());
        // Elements of elements are not keys.
        let nested = Cond::ElemMatch(ElemMatch::Value(vec![Cond::ElemMatch(ElemMatch::Value(
            vec![Cond::Eq(serde_json::json!(3))],
        ))]));
        assert!(side_bounds(&nested).is_none());
        // Elements of elements are not keys.
        let nested = Cond::ElemMatch(ElemMatch::Value(vec![Cond::ElemMatch(ElemMatch::Value(
            vec![Cond::Eq(serde_json::json!(3))],
        ))]));
        assert!(side_bounds(&nested).is_none());
    }
}
