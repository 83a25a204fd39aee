//! The in-memory back end: evaluates a [`Filter`] against a document.
//!
//! Path evaluation follows MongoDB:
//!
//! * a path is followed through embedded documents; at an array with segments left, each
//!   element that is a document is searched for the rest of the path (one level: arrays
//!   nested directly in arrays are not entered), and a numeric segment also selects the
//!   element at that index;
//! * a document lacking the next field yields "missing" (which `null` equality matches),
//!   a scalar met before the path ends too; array elements that are not documents yield
//!   nothing;
//! * at the end of the path, most operators test an array value as a whole *and* each of
//!   its elements (one level); `$size`, `$elemMatch` and `$all`'s `$elemMatch` items only
//!   look at arrays as a whole.

use crate::query::ast::{AllItem, Cond, ElemMatch, Filter, InItem, InList};
use crate::value::{compare_values, equality_key, type_rank, values_equal, BsonType, FieldPath};
use serde_json::{Map, Value};
use std::cmp::Ordering;

/// One value reached by following a path, or the fact that the path ended in nothing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Found<'a> {
    /// The path does not exist at this branch (matches `null` equality).
    Missing,
    /// A value at the end of the path (an array is not expanded here).
    Value(&'a Value),
}

/// Follows `segs` from `value` with MongoDB's query rules (see the module docs) and
/// returns every value reached, unexpanded. An empty result means the path went only
/// through arrays that held no documents.
pub(crate) fn lookup<'a>(value: &'a Value, segs: &[String]) -> Vec<Found<'a>> {
    let mut out = Vec::new();
    reach(value, segs, false, &mut out);
    out
}

/// Like [`lookup`], but array elements that are not documents (met with path segments
/// left) yield "missing", as index key generation and sorting treat them.
pub(crate) fn lookup_for_sort<'a>(value: &'a Value, segs: &[String]) -> Vec<Found<'a>> {
    let mut out = Vec::new();
    reach(value, segs, true, &mut out);
    out
}

fn reach<'a>(value: &'a Value, segs: &[String], scalars_missing: bool, out: &mut Vec<Found<'a>>) {
    let Some((seg, rest)) = segs.split_first() else {
        out.push(Found::Value(value));
        return;
    };
    match value {
        Value::Object(m) => match m.get(seg) {
            Some(child) => reach(child, rest, scalars_missing, out),
            None => out.push(Found::Missing),
        },
        Value::Array(items) => {
            let index = FieldPath::as_index(seg);
            // For sorting, a scalar element yields "missing" unless the segment picks an
            // element of this array by position.
            let positional = index.is_some_and(|i| i < items.len());
            for (i, item) in items.iter().enumerate() {
                if index == Some(i) {
                    reach(item, rest, scalars_missing, out);
                }
                match item {
                    Value::Object(_) => reach(item, segs, scalars_missing, out),
                    _ if scalars_missing && !positional => out.push(Found::Missing),
                    _ => {}
                }
            }
        }
        _ => out.push(Found::Missing),
    }
}

/// The value at an exact path: object fields, and numeric segments as array indexes
/// (no implicit traversal of arrays). `None` when the path does not exist.
pub(crate) fn get_path<'a>(doc: &'a Value, segs: &[String]) -> Option<&'a Value> {
    let mut cur = doc;
    for seg in segs {
        cur = match cur {
            Value::Object(m) => m.get(seg)?,
            Value::Array(items) => items.get(FieldPath::as_index(seg)?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// The candidates an expanding operator tests: each reached value, and for a reached
/// array also each of its elements (elements first, then the array).
fn expand<'a>(reached: &[Found<'a>], out: &mut Vec<Found<'a>>) {
    for f in reached {
        if let Found::Value(Value::Array(items)) = f {
            out.extend(items.iter().map(Found::Value));
        }
        out.push(*f);
    }
}

fn eq_single(c: Found<'_>, x: &Value) -> bool {
    match c {
        Found::Missing => x.is_null(),
        Found::Value(v) => values_equal(v, x),
    }
}

fn cmp_single(c: Found<'_>, x: &Value, accept: fn(Ordering) -> bool) -> bool {
    let v = match c {
        Found::Missing => &Value::Null,
        Found::Value(v) => v,
    };
    type_rank(v) == type_rank(x) && accept(compare_values(v, x))
}

fn regex_single(c: Found<'_>, re: &crate::query::ast::Regex) -> bool {
    matches!(c, Found::Value(Value::String(s)) if re.is_match(s))
}

fn in_single(c: Found<'_>, list: &InList) -> bool {
    let Some(lookup) = list.lookup() else {
        return list.iter().any(|item| match item {
            InItem::Value(x) => eq_single(c, x),
            InItem::Regex(re) => regex_single(c, re),
        });
    };
    // A long list: one hash lookup by the candidate's equality key, which is equal for
    // two values exactly when `$eq` says they are.
    let v = match c {
        Found::Missing => return lookup.has_null,
        Found::Value(v) => v,
    };
    let keyed = match v {
        Value::Array(_) => lookup.has_array,
        Value::Object(_) => lookup.has_object,
        _ => true,
    };
    if keyed {
        let mut key = String::new();
        equality_key(v, &mut key);
        if lookup.keys.contains(&key) {
            return true;
        }
    }
    lookup.regexes.iter().any(|re| regex_single(c, re))
}

fn mod_single(c: Found<'_>, divisor: i64, remainder: i64) -> bool {
    let Found::Value(Value::Number(n)) = c else {
        return false;
    };
    let x = match n.as_i64() {
        Some(i) => i,
        // Saturating truncation toward zero, as MongoDB converts doubles.
        None => match n.as_f64() {
            Some(f) if f.is_finite() => f.trunc() as i64,
            _ => return false,
        },
    };
    x.checked_rem(divisor).unwrap_or(0) == remainder
}

fn type_single(c: Found<'_>, types: &[BsonType]) -> bool {
    matches!(c, Found::Value(v) if types.contains(&BsonType::of(v)))
}

/// True when one array element satisfies an `$elemMatch`.
pub(crate) fn elem_matches(em: &ElemMatch, element: &Value) -> bool {
    match em {
        ElemMatch::Value(conds) => conds
            .iter()
            .all(|c| matches_cond(c, &[Found::Value(element)], false)),
        ElemMatch::Document(filter) => match element {
            Value::Object(_) => filter.matches(element),
            // MongoDB sees an array element as a document keyed "0", "1", …
            Value::Array(items) => {
                let as_doc: Map<String, Value> = items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (i.to_string(), v.clone()))
                    .collect();
                filter.matches(&Value::Object(as_doc))
            }
            _ => false,
        },
    }
}

fn any_array_elem_matches(reached: &[Found<'_>], em: &ElemMatch) -> bool {
    reached.iter().any(|f| match f {
        Found::Value(Value::Array(items)) => items.iter().any(|e| elem_matches(em, e)),
        _ => false,
    })
}

/// Evaluates one condition over the values reached at its path. With `expand`, arrays
/// are tested whole and element by element; without it (inside `$elemMatch`'s value
/// form) each value is tested only as itself.
pub(crate) fn matches_cond(cond: &Cond, reached: &[Found<'_>], expand_arrays: bool) -> bool {
    let mut buf = Vec::new();
    let candidates: &[Found<'_>] = if expand_arrays {
        expand(reached, &mut buf);
        &buf
    } else {
        reached
    };
    let any = |pred: &dyn Fn(Found<'_>) -> bool| candidates.iter().any(|c| pred(*c));
    match cond {
        Cond::Eq(x) => any(&|c| eq_single(c, x)),
        Cond::Ne(x) => !any(&|c| eq_single(c, x)),
        Cond::Gt(x) => any(&|c| cmp_single(c, x, |o| o == Ordering::Greater)),
        Cond::Gte(x) => any(&|c| cmp_single(c, x, |o| o != Ordering::Less)),
        Cond::Lt(x) => any(&|c| cmp_single(c, x, |o| o == Ordering::Less)),
        Cond::Lte(x) => any(&|c| cmp_single(c, x, |o| o != Ordering::Greater)),
        Cond::In(items) => any(&|c| in_single(c, items)),
        Cond::Nin(items) => !any(&|c| in_single(c, items)),
        Cond::Exists(want) => reached.iter().any(|f| matches!(f, Found::Value(_))) == *want,
        Cond::Type(types) => any(&|c| type_single(c, types)),
        Cond::Regex(re) => any(&|c| regex_single(c, re)),
        Cond::Size(n) => reached
            .iter()
            .any(|f| matches!(f, Found::Value(Value::Array(items)) if items.len() as u64 == *n)),
        Cond::All(items) => {
            !items.is_empty()
                && items.iter().all(|item| match item {
                    AllItem::Value(x) => any(&|c| eq_single(c, x)),
                    AllItem::Regex(re) => any(&|c| regex_single(c, re)),
                    AllItem::ElemMatch(em) => any_array_elem_matches(reached, em),
                })
        }
        Cond::ElemMatch(em) => any_array_elem_matches(reached, em),
        Cond::Mod { divisor, remainder } => any(&|c| mod_single(c, *divisor, *remainder)),
        Cond::Not(conds) => !conds
            .iter()
            .all(|c| matches_cond(c, reached, expand_arrays)),
    }
}

impl Filter {
    /// True when `doc` matches, with MongoDB's semantics.
    pub fn matches(&self, doc: &Value) -> bool {
        match self {
            Filter::And(fs) => fs.iter().all(|f| f.matches(doc)),
            Filter::Or(fs) => fs.iter().any(|f| f.matches(doc)),
            Filter::Nor(fs) => !fs.iter().any(|f| f.matches(doc)),
            Filter::Field { path, cond } => matches_cond(cond, &lookup(doc, path.segments()), true),
            // An expression that fails to evaluate (e.g. `$add` of a string) matches nothing.
            Filter::Expr(e) => e
                .evaluate(doc)
                .is_ok_and(|v| crate::aggregate::truthy(v.as_ref())),
        }
    }
}

/// The positional `$` rule of updates: the index of the first element of the array at
/// `array_path` (an exact path: fields and array indexes) that satisfies the filter's
/// conditions on that array and on paths under it.
///
/// Conditions on other paths are ignored (the document is assumed to match the filter
/// as a whole), and so are negations (`$ne`, `$nin`, `$not`, `$nor`, `$exists: false`),
/// `$exists` and `$size`, which do not identify an element. `None` when there is no array
/// there, no element qualifies, or the filter says nothing about the array.
pub fn first_matching_index(filter: &Filter, doc: &Value, array_path: &FieldPath) -> Option<usize> {
    let items = get_path(doc, array_path.segments())?.as_array()?;
    items
        .iter()
        .position(|e| positional_eval(filter, e, array_path) == Some(true))
}

fn is_negation(cond: &Cond) -> bool {
    matches!(
        cond,
        Cond::Ne(_) | Cond::Nin(_) | Cond::Not(_) | Cond::Exists(_) | Cond::Size(_)
    )
}

/// `Some(verdict)` for an element when the filter constrains the array, `None` when it
/// says nothing about it.
fn positional_eval(filter: &Filter, element: &Value, array_path: &FieldPath) -> Option<bool> {
    match filter {
        Filter::And(fs) => {
            let mut constrained = false;
            for f in fs {
                match positional_eval(f, element, array_path) {
                    Some(false) => return Some(false),
                    Some(true) => constrained = true,
                    None => {}
                }
            }
            constrained.then_some(true)
        }
        Filter::Or(fs) => {
            let mut constrained = false;
            for f in fs {
                match positional_eval(f, element, array_path) {
                    Some(true) => return Some(true),
                    Some(false) => constrained = true,
                    None => {}
                }
            }
            constrained.then_some(false)
        }
        Filter::Nor(_) | Filter::Expr(_) => None,
        Filter::Field { path, cond } => {
            if !array_path.is_prefix_of(path) || is_negation(cond) {
                return None;
            }
            let rest = path.segments().get(array_path.len()..).unwrap_or(&[]);
            if rest.is_empty() {
                Some(match cond {
                    Cond::ElemMatch(em) => elem_matches(em, element),
                    Cond::All(items) => items.iter().any(|item| match item {
                        AllItem::Value(x) => {
                            matches_cond(&Cond::Eq(x.clone()), &[Found::Value(element)], true)
                        }
                        AllItem::Regex(re) => {
                            matches_cond(&Cond::Regex(re.clone()), &[Found::Value(element)], true)
                        }
                        AllItem::ElemMatch(em) => elem_matches(em, element),
                    }),
                    other => matches_cond(other, &[Found::Value(element)], true),
                })
            } else {
                Some(matches_cond(cond, &lookup(element, rest), true))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::parse_filter;
    use serde_json::json;

    fn check(doc: &Value, filter: &Value) -> bool {
        parse_filter(filter)
            .unwrap_or_else(|e| panic!("{filter}: {e}"))
            .matches(doc)
    }

    #[test]
    fn long_in_lists_compare_numbers_by_value_and_keep_regexes() {
        let mut items: Vec<Value> = (100..120).map(|i| json!(format!("pad{i}"))).collect();
        items.extend([
            json!(1),
            json!(u64::MAX),
            json!(-0.0),
            json!(2.5),
            json!(null),
            json!([1, "a"]),
            json!({"x": 1, "y": [2]}),
            json!({"$regex": "^b", "$options": "i"}),
        ]);
        let filter = json!({"v": {"$in": items}});
        let yes = [
            json!({"v": 1.0}),
            json!({"v": 1}),
            json!({"v": 18446744073709551615u64}),
            json!({"v": 0}),
            json!({"v": 0.0}),
            json!({"v": 2.5}),
            json!({"v": null}),
            json!({}),
            json!({"v": [1, "a"]}),
            json!({"v": [[1, "a"], 7]}),
            json!({"v": [9, 1.0]}),
            json!({"v": {"x": 1, "y": [2]}}),
            json!({"v": "Banana"}),
            json!({"v": ["zz", "bb"]}),
            json!({"v": "pad105"}),
        ];
        let no = [
            json!({"v": 1.5}),
            json!({"v": "1"}),
            json!({"v": 18446744073709551614u64}),
            json!({"v": [3]}),
            json!({"v": ["a", 3]}),
            json!({"v": {"y": [2], "x": 1}}),
            json!({"v": "abc"}),
            json!({"v": "pad99"}),
            json!({"v": false}),
            json!({"v": []}),
        ];
        for d in &yes {
            assert!(check(d, &filter), "{d} should match");
            assert!(
                !check(d, &json!({"v": {"$nin": filter["v"]["$in"]}})),
                "{d}"
            );
        }
        for d in &no {
            assert!(!check(d, &filter), "{d} should not match");
        }
        // The same answers as each entry alone (a short list, compared one by one).
        let entries = filter["v"]["$in"].as_array().unwrap();
        for d in yes.iter().chain(&no) {
            let any = entries
                .iter()
                .any(|e| check(d, &json!({"v": {"$in": [e]}})));
            assert_eq!(check(d, &filter), any, "{d}");
        }
    }

    #[test]
    fn match_table() {
        #[rustfmt::skip]
        let cases: Vec<(Value, Value, bool)> = vec![
            // --- implicit equality, embedded documents
            (json!({"a": 1}), json!({}), true),
            (json!({"a": 1}), json!({"a": 1}), true),
            (json!({"a": 1}), json!({"a": 1.0}), true),
            (json!({"a": 1}), json!({"a": "1"}), false),
            (json!({"a": true}), json!({"a": 1}), false),
            (json!({"a": 1}), json!({"b": 1}), false),
            (json!({"a": {"b": 1, "c": 2}}), json!({"a": {"b": 1, "c": 2}}), true),
            (json!({"a": {"b": 1, "c": 2}}), json!({"a": {"c": 2, "b": 1}}), false),
            (json!({"a": {"b": 1, "c": 2}}), json!({"a": {"b": 1}}), false),
            (json!({"a": {"b": 1}}), json!({"a.b": 1}), true),
            (json!({"a": {"b": {"c": "x"}}}), json!({"a.b.c": "x"}), true),
            (json!({"a": 1, "b": 2}), json!({"a": 1, "b": 2}), true),
            (json!({"a": 1, "b": 2}), json!({"a": 1, "b": 3}), false),
            (json!({"a": {}}), json!({"a": {}}), true),
            // --- arrays and equality
            (json!({"tags": ["x", "y"]}), json!({"tags": "x"}), true),
            (json!({"tags": ["x", "y"]}), json!({"tags": "z"}), false),
            (json!({"tags": ["x", "y"]}), json!({"tags": ["x", "y"]}), true),
            (json!({"tags": ["x", "y"]}), json!({"tags": ["y", "x"]}), false),
            (json!({"tags": ["x", "y"]}), json!({"tags": ["x"]}), false),
            (json!({"a": [[1, 2], 3]}), json!({"a": [1, 2]}), true),
            (json!({"a": [[1, 2], 3]}), json!({"a": 1}), false),
            (json!({"a": [[1, 2], 3]}), json!({"a": 3}), true),
            (json!({"a": []}), json!({"a": []}), true),
            (json!({"a": [[]]}), json!({"a": []}), true),
            (json!({"a": [{"b": 1}, {"b": 2}]}), json!({"a.b": 2}), true),
            (json!({"a": [{"b": 1}, {"b": 2}]}), json!({"a.b": 3}), false),
            (json!({"a": [{"b": [1, 2]}, {"b": 3}]}), json!({"a.b": 2}), true),
            (json!({"a": [{"b": [1, 2]}, {"b": 3}]}), json!({"a.b": [1, 2]}), true),
            (json!({"a": [[{"b": 1}]]}), json!({"a.b": 1}), false),
            (json!({"a": [{"b": {"c": 5}}]}), json!({"a.b.c": 5}), true),
            (json!({"a": [{"b": [{"c": 5}]}]}), json!({"a.b.c": 5}), true),
            (json!({"a": {"b": [{"c": 1}, {"c": 2}]}}), json!({"a.b.c": 2}), true),
            (json!({"a": [{"b": 1}]}), json!({"a": {"b": 1}}), true),
            // --- numeric path segments
            (json!({"a": [5, 6]}), json!({"a.0": 5}), true),
            (json!({"a": [5, 6]}), json!({"a.1": 5}), false),
            (json!({"a": [5, 6]}), json!({"a.2": 5}), false),
            (json!({"a": [{"b": 1}, {"b": 2}]}), json!({"a.1.b": 2}), true),
            (json!({"a": [{"b": 1}, {"b": 2}]}), json!({"a.0.b": 2}), false),
            (json!({"a": [{"0": "k"}]}), json!({"a.0": "k"}), true),
            (json!({"a": {"0": "k"}}), json!({"a.0": "k"}), true),
            (json!({"a": [[5, 6], 7]}), json!({"a.0.1": 6}), true),
            (json!({"a": [[5, 6], 7]}), json!({"a.0": 6}), true),
            // --- null and missing
            (json!({}), json!({"a": null}), true),
            (json!({"a": null}), json!({"a": null}), true),
            (json!({"a": 0}), json!({"a": null}), false),
            (json!({"a": [1]}), json!({"a": null}), false),
            (json!({"a": [null]}), json!({"a": null}), true),
            (json!({"a": []}), json!({"a": null}), false),
            (json!({"a": [{"c": 1}]}), json!({"a.b": null}), true),
            (json!({"a": [{"c": 1}, {"b": 2}]}), json!({"a.b": null}), true),
            (json!({"a": [{"b": 1}, {"b": 2}]}), json!({"a.b": null}), false),
            (json!({"a": 5}), json!({"a.b": null}), true),
            (json!({"a": {"c": 1}}), json!({"a.b": null}), true),
            (json!({}), json!({"a": {"$ne": null}}), false),
            (json!({"a": null}), json!({"a": {"$ne": null}}), false),
            (json!({"a": 1}), json!({"a": {"$ne": null}}), true),
            (json!({"a": [1, null]}), json!({"a": {"$ne": null}}), false),
            (json!({"a": 1}), json!({"a": {"$eq": null}}), false),
            // --- $exists
            (json!({"a": null}), json!({"a": {"$exists": true}}), true),
            (json!({}), json!({"a": {"$exists": true}}), false),
            (json!({}), json!({"a": {"$exists": false}}), true),
            (json!({"a": []}), json!({"a": {"$exists": true}}), true),
            (json!({"a": [{"b": 1}]}), json!({"a.b": {"$exists": true}}), true),
            (json!({"a": [{"c": 1}]}), json!({"a.b": {"$exists": true}}), false),
            (json!({"a": [1, 2]}), json!({"a.b": {"$exists": false}}), true),
            (json!({"a": [5]}), json!({"a.0": {"$exists": true}}), true),
            (json!({"a": [5]}), json!({"a.1": {"$exists": true}}), false),
            // --- $ne / $eq
            (json!({"a": 1}), json!({"a": {"$ne": 2}}), true),
            (json!({"a": 1}), json!({"a": {"$ne": 1}}), false),
            (json!({}), json!({"a": {"$ne": 1}}), true),
            (json!({"a": [1, 2]}), json!({"a": {"$ne": 1}}), false),
            (json!({"a": [1, 2]}), json!({"a": {"$ne": 3}}), true),
            (json!({"a": [1, 2]}), json!({"a": {"$ne": [1, 2]}}), false),
            (json!({"a": {"b": 1}}), json!({"a": {"$eq": {"b": 1}}}), true),
            (json!({"a": {"$gt": 1}}), json!({"a": {"$eq": {"$gt": 1}}}), true),
            // --- comparisons and type brackets
            (json!({"a": 6}), json!({"a": {"$gt": 5}}), true),
            (json!({"a": 5}), json!({"a": {"$gt": 5}}), false),
            (json!({"a": 5}), json!({"a": {"$gte": 5}}), true),
            (json!({"a": 5.5}), json!({"a": {"$lt": 6}}), true),
            (json!({"a": "6"}), json!({"a": {"$gt": 5}}), false),
            (json!({"a": "b"}), json!({"a": {"$gt": "a"}}), true),
            (json!({"a": "B"}), json!({"a": {"$gt": "a"}}), false),
            (json!({"a": true}), json!({"a": {"$gt": 5}}), false),
            (json!({"a": null}), json!({"a": {"$lt": 5}}), false),
            (json!({}), json!({"a": {"$lt": 5}}), false),
            (json!({"a": [1, 10]}), json!({"a": {"$gt": 5}}), true),
            (json!({"a": [1, 2]}), json!({"a": {"$gt": 5}}), false),
            (json!({"a": [1, 10]}), json!({"a": {"$gt": 5, "$lt": 2}}), true),
            (json!({"a": [3]}), json!({"a": {"$gt": 5, "$lt": 2}}), false),
            (json!({"a": [1, 2]}), json!({"a": {"$gt": [1, 1]}}), true),
            (json!({"a": [1, 2]}), json!({"a": {"$lt": [1, 3]}}), true),
            (json!({"a": [1, 2]}), json!({"a": {"$gte": [1, 2]}}), true),
            (json!({"a": [[2]]}), json!({"a": {"$gt": [1]}}), true),
            (json!({"a": {"b": 2}}), json!({"a": {"$gt": {"b": 1}}}), true),
            (json!({"a": {"b": 2}}), json!({"a": {"$gt": 1}}), false),
            (json!({"a": false}), json!({"a": {"$lt": true}}), true),
            (json!({"a": null}), json!({"a": {"$gte": null}}), true),
            (json!({}), json!({"a": {"$gte": null}}), true),
            (json!({}), json!({"a": {"$lte": null}}), true),
            (json!({"a": 1}), json!({"a": {"$gte": null}}), false),
            (json!({"a": null}), json!({"a": {"$gt": null}}), false),
            (json!({"a": 1}), json!({"a": {"$gt": null}}), false),
            (json!({"a": [{"b": 7}]}), json!({"a.b": {"$gte": 7}}), true),
            // --- $in / $nin
            (json!({"a": 2}), json!({"a": {"$in": [1, 2]}}), true),
            (json!({"a": 3}), json!({"a": {"$in": [1, 2]}}), false),
            (json!({"a": 3}), json!({"a": {"$in": []}}), false),
            (json!({"a": [3, 2]}), json!({"a": {"$in": [1, 2]}}), true),
            (json!({}), json!({"a": {"$in": [null]}}), true),
            (json!({}), json!({"a": {"$in": [1]}}), false),
            (json!({"a": [1, 2]}), json!({"a": {"$in": [[1, 2]]}}), true),
            (json!({"a": "xyz"}), json!({"a": {"$in": [{"$regex": "^x"}]}}), true),
            (json!({"a": "Xyz"}), json!({"a": {"$in": [{"$regex": "^x", "$options": "i"}]}}), true),
            (json!({"a": ["q", "xyz"]}), json!({"a": {"$in": [{"$regex": "^x"}]}}), true),
            (json!({"a": 3}), json!({"a": {"$nin": [1, 2]}}), true),
            (json!({"a": 2}), json!({"a": {"$nin": [1, 2]}}), false),
            (json!({}), json!({"a": {"$nin": [1, 2]}}), true),
            (json!({}), json!({"a": {"$nin": [null]}}), false),
            (json!({"a": [3, 2]}), json!({"a": {"$nin": [2]}}), false),
            (json!({"a": 1}), json!({"a": {"$nin": []}}), true),
            (json!({"a": "xyz"}), json!({"a": {"$nin": [{"$regex": "z$"}]}}), false),
            // --- $type
            (json!({"a": 1}), json!({"a": {"$type": "int"}}), true),
            (json!({"a": 1.5}), json!({"a": {"$type": "double"}}), true),
            (json!({"a": 1.5}), json!({"a": {"$type": "number"}}), true),
            (json!({"a": 1}), json!({"a": {"$type": "number"}}), true),
            (json!({"a": 5_000_000_000_i64}), json!({"a": {"$type": "long"}}), true),
            (json!({"a": "x"}), json!({"a": {"$type": "number"}}), false),
            (json!({"a": "x"}), json!({"a": {"$type": 2}}), true),
            (json!({"a": "x"}), json!({"a": {"$type": ["bool", "string"]}}), true),
            (json!({"a": [1]}), json!({"a": {"$type": "array"}}), true),
            (json!({"a": []}), json!({"a": {"$type": "array"}}), true),
            (json!({"a": 1}), json!({"a": {"$type": "array"}}), false),
            (json!({"a": ["x", 1]}), json!({"a": {"$type": "string"}}), true),
            (json!({"a": [1]}), json!({"a": {"$type": "string"}}), false),
            (json!({"a": null}), json!({"a": {"$type": "null"}}), true),
            (json!({}), json!({"a": {"$type": "null"}}), false),
            (json!({"a": {}}), json!({"a": {"$type": "object"}}), true),
            (json!({"a": false}), json!({"a": {"$type": "bool"}}), true),
            (json!({"a": 1}), json!({"a": {"$type": "date"}}), false),
            // --- $regex
            (json!({"a": "hello"}), json!({"a": {"$regex": "ell"}}), true),
            (json!({"a": "hello"}), json!({"a": {"$regex": "^ell"}}), false),
            (json!({"a": "HELLO"}), json!({"a": {"$regex": "hello", "$options": "i"}}), true),
            (json!({"a": "a\nb"}), json!({"a": {"$regex": "^b", "$options": "m"}}), true),
            (json!({"a": "a\nb"}), json!({"a": {"$regex": "^b"}}), false),
            (json!({"a": "a\nb"}), json!({"a": {"$regex": "a.b", "$options": "s"}}), true),
            (json!({"a": "ab"}), json!({"a": {"$regex": "a b", "$options": "x"}}), true),
            (json!({"a": 5}), json!({"a": {"$regex": "5"}}), false),
            (json!({"a": ["x", "hello"]}), json!({"a": {"$regex": "^h"}}), true),
            (json!({"a": [{"b": "hello"}]}), json!({"a.b": {"$regex": "o$"}}), true),
            (json!({}), json!({"a": {"$regex": ""}}), false),
            // --- $size
            (json!({"a": [1, 2]}), json!({"a": {"$size": 2}}), true),
            (json!({"a": [1, 2]}), json!({"a": {"$size": 1}}), false),
            (json!({"a": []}), json!({"a": {"$size": 0}}), true),
            (json!({"a": "ab"}), json!({"a": {"$size": 2}}), false),
            (json!({}), json!({"a": {"$size": 0}}), false),
            (json!({"a": [[1, 2]]}), json!({"a": {"$size": 2}}), false),
            (json!({"a": [{"b": [1]}, {"b": [1, 2]}]}), json!({"a.b": {"$size": 2}}), true),
            // --- $all
            (json!({"a": [1, 2, 3]}), json!({"a": {"$all": [1, 3]}}), true),
            (json!({"a": [1, 2, 3]}), json!({"a": {"$all": [1, 4]}}), false),
            (json!({"a": [1, 2, 3]}), json!({"a": {"$all": []}}), false),
            (json!({"a": 1}), json!({"a": {"$all": [1]}}), true),
            (json!({"a": 1}), json!({"a": {"$all": [1, 2]}}), false),
            (json!({"a": [[1, 2], 3]}), json!({"a": {"$all": [[1, 2]]}}), true),
            (json!({"a": [1, 2]}), json!({"a": {"$all": [[1, 2]]}}), true),
            (json!({"a": ["ab", "cd"]}), json!({"a": {"$all": [{"$regex": "^a"}, "cd"]}}), true),
            (json!({}), json!({"a": {"$all": [null]}}), true),
            (json!({"a": [{"b": 1}, {"b": 2}]}), json!({"a.b": {"$all": [1, 2]}}), true),
            (json!({"a": [{"b": 1, "c": 1}, {"b": 2, "c": 5}]}),
             json!({"a": {"$all": [{"$elemMatch": {"b": 1}}, {"$elemMatch": {"c": {"$gt": 3}}}]}}), true),
            (json!({"a": [{"b": 1, "c": 1}]}),
             json!({"a": {"$all": [{"$elemMatch": {"b": 1}}, {"$elemMatch": {"c": {"$gt": 3}}}]}}), false),
            // --- $elemMatch
            (json!({"a": [1, 5, 10]}), json!({"a": {"$elemMatch": {"$gt": 3, "$lt": 6}}}), true),
            (json!({"a": [1, 10]}), json!({"a": {"$elemMatch": {"$gt": 3, "$lt": 6}}}), false),
            (json!({"a": [1, 10]}), json!({"a": {"$gt": 3, "$lt": 6}}), true),
            (json!({"a": 5}), json!({"a": {"$elemMatch": {"$gt": 3}}}), false),
            (json!({"a": [[5]]}), json!({"a": {"$elemMatch": {"$gt": 3}}}), false),
            (json!({"a": [[5]]}), json!({"a": {"$elemMatch": {"$size": 1}}}), true),
            (json!({"a": [{"b": 1, "c": 2}, {"b": 2, "c": 1}]}),
             json!({"a": {"$elemMatch": {"b": 1, "c": 1}}}), false),
            (json!({"a": [{"b": 1, "c": 2}, {"b": 2, "c": 1}]}),
             json!({"a.b": 1, "a.c": 1}), true),
            (json!({"a": [{"b": 1, "c": 2}, {"b": 2, "c": 1}]}),
             json!({"a": {"$elemMatch": {"b": 2, "c": {"$lt": 2}}}}), true),
            (json!({"a": [{"b": [1, 2]}]}), json!({"a": {"$elemMatch": {"b": 2}}}), true),
            (json!({"a": [1, {"b": 1}]}), json!({"a": {"$elemMatch": {"b": {"$exists": true}}}}), true),
            (json!({"a": [1, 2]}), json!({"a": {"$elemMatch": {}}}), false),
            (json!({"a": [1, {}]}), json!({"a": {"$elemMatch": {}}}), true),
            (json!({"a": [{"b": 1}]}), json!({"a": {"$elemMatch": {"$or": [{"b": 2}, {"b": 1}]}}}), true),
            (json!({"a": [{"b": {"c": [{"d": 1}]}}]}),
             json!({"a": {"$elemMatch": {"b.c": {"$elemMatch": {"d": 1}}}}}), true),
            (json!({"x": [{"a": [1, 7]}]}), json!({"x.a": {"$elemMatch": {"$gt": 5}}}), true),
            (json!({"a": ["abc"]}), json!({"a": {"$elemMatch": {"$regex": "b"}}}), true),
            (json!({"a": [1, 2]}), json!({"a": {"$elemMatch": {"$ne": 1}}}), true),
            (json!({"a": [1]}), json!({"a": {"$elemMatch": {"$ne": 1}}}), false),
            (json!({"a": [[{"b": 1}]]}), json!({"a": {"$elemMatch": {"b": 1}}}), false),
            (json!({"a": [[1]]}), json!({"a": {"$elemMatch": {"0": 1}}}), true),
            // --- $mod
            (json!({"a": 7}), json!({"a": {"$mod": [4, 3]}}), true),
            (json!({"a": 8}), json!({"a": {"$mod": [4, 3]}}), false),
            (json!({"a": 7.9}), json!({"a": {"$mod": [4, 3]}}), true),
            (json!({"a": -7}), json!({"a": {"$mod": [4, -3]}}), true),
            (json!({"a": -7}), json!({"a": {"$mod": [4, 1]}}), false),
            (json!({"a": "7"}), json!({"a": {"$mod": [4, 3]}}), false),
            (json!({"a": [1, 7]}), json!({"a": {"$mod": [4, 3]}}), true),
            (json!({}), json!({"a": {"$mod": [4, 0]}}), false),
            (json!({"a": i64::MIN}), json!({"a": {"$mod": [-1, 0]}}), true),
            // --- $not
            (json!({"a": 7}), json!({"a": {"$not": {"$gt": 5}}}), false),
            (json!({"a": 3}), json!({"a": {"$not": {"$gt": 5}}}), true),
            (json!({}), json!({"a": {"$not": {"$gt": 5}}}), true),
            (json!({"a": "x"}), json!({"a": {"$not": {"$gt": 5}}}), true),
            (json!({"a": [3, 7]}), json!({"a": {"$not": {"$gt": 5}}}), false),
            (json!({"a": 4}), json!({"a": {"$not": {"$gt": 1, "$lt": 5}}}), false),
            (json!({"a": 6}), json!({"a": {"$not": {"$gt": 1, "$lt": 5}}}), true),
            (json!({"a": "abc"}), json!({"a": {"$not": {"$regex": "^a"}}}), false),
            (json!({"a": "xbc"}), json!({"a": {"$not": {"$regex": "^a"}}}), true),
            (json!({"a": 1}), json!({"a": {"$not": {"$not": {"$eq": 1}}}}), true),
            // --- $and / $or / $nor
            (json!({"a": 1, "b": 2}), json!({"$and": [{"a": 1}, {"b": 2}]}), true),
            (json!({"a": 1, "b": 2}), json!({"$and": [{"a": 1}, {"b": 3}]}), false),
            (json!({"a": 1}), json!({"$or": [{"a": 2}, {"a": 1}]}), true),
            (json!({"a": 1}), json!({"$or": [{"a": 2}, {"b": 1}]}), false),
            (json!({"a": 1}), json!({"$nor": [{"a": 2}, {"b": 1}]}), true),
            (json!({"a": 1}), json!({"$nor": [{"a": 1}]}), false),
            (json!({"a": 1}), json!({"$or": [{}]}), true),
            (json!({"a": 1, "b": 1}), json!({"a": 1, "$or": [{"b": 2}, {"c": {"$exists": false}}]}), true),
            (json!({"a": [1, 2]}), json!({"$and": [{"a": 1}, {"a": 2}]}), true),
        ];
        assert!(cases.len() >= 120, "{}", cases.len());
        let mut failures = Vec::new();
        for (doc, filter, expected) in &cases {
            if check(doc, filter) != *expected {
                failures.push(format!("{doc} / {filter}: expected {expected}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn non_object_documents_do_not_panic() {
        let f = parse_filter(&json!({"a.b.0": null, "c": {"$size": 1}})).unwrap();
        for doc in [json!(null), json!(1), json!([1, [2]]), json!("s")] {
            let _ = f.matches(&doc);
        }
        assert!(parse_filter(&json!({"a": null}))
            .unwrap()
            .matches(&json!(5)));
    }

    fn positional(filter: Value, doc: Value, path: &str) -> Option<usize> {
        first_matching_index(
            &parse_filter(&filter).unwrap(),
            &doc,
            &FieldPath::parse(path).unwrap(),
        )
    }

    #[test]
    fn positional_index() {
        let doc = json!({"grades": [80, 85, 90], "items": [{"sku": "a", "q": 1}, {"sku": "b", "q": 5}, {"sku": "b", "q": 9}]});
        assert_eq!(
            positional(json!({"grades": 85}), doc.clone(), "grades"),
            Some(1)
        );
        assert_eq!(
            positional(json!({"grades": {"$gte": 86}}), doc.clone(), "grades"),
            Some(2)
        );
        assert_eq!(
            positional(json!({"grades": 100}), doc.clone(), "grades"),
            None
        );
        assert_eq!(positional(json!({"x": 1}), doc.clone(), "grades"), None);
        assert_eq!(
            positional(json!({"items.sku": "b"}), doc.clone(), "items"),
            Some(1)
        );
        assert_eq!(
            positional(
                json!({"items.sku": "b", "items.q": {"$gt": 6}}),
                doc.clone(),
                "items"
            ),
            Some(2)
        );
        assert_eq!(
            positional(
                json!({"items": {"$elemMatch": {"sku": "b", "q": {"$gt": 6}}}}),
                doc.clone(),
                "items"
            ),
            Some(2)
        );
        assert_eq!(
            positional(
                json!({"_id": 1, "items.q": {"$in": [5, 9]}}),
                doc.clone(),
                "items"
            ),
            Some(1)
        );
        assert_eq!(
            positional(
                json!({"$or": [{"items.q": 9}, {"items.sku": "z"}]}),
                doc.clone(),
                "items"
            ),
            Some(2)
        );
        assert_eq!(
            positional(json!({"items.sku": {"$ne": "a"}}), doc.clone(), "items"),
            None
        );
        assert_eq!(
            positional(json!({"grades": 85}), doc.clone(), "items"),
            None
        );
        assert_eq!(
            positional(json!({"grades": 85}), json!({"grades": 3}), "grades"),
            None
        );
        assert_eq!(
            positional(
                json!({"a.b.c": 2}),
                json!({"a": {"b": [{"c": 1}, {"c": 2}]}}),
                "a.b"
            ),
            Some(1)
        );
    }

    #[test]
    fn path_helpers() {
        let doc = json!({"a": [{"b": 1}, {"b": [2, 3]}], "c": {"d": 4}});
        let segs = |s: &str| FieldPath::parse(s).unwrap().segments().to_vec();
        assert_eq!(get_path(&doc, &segs("c.d")), Some(&json!(4)));
        assert_eq!(get_path(&doc, &segs("a.1.b.0")), Some(&json!(2)));
        assert_eq!(get_path(&doc, &segs("a.b")), None);
        assert_eq!(
            lookup(&doc, &segs("a.b")),
            vec![Found::Value(&json!(1)), Found::Value(&json!([2, 3]))]
        );
        assert_eq!(lookup(&doc, &segs("x")), vec![Found::Missing]);
        assert_eq!(lookup(&json!({"a": [1]}), &segs("a.b")), vec![]);
        assert_eq!(
            lookup_for_sort(&json!({"a": [1]}), &segs("a.b")),
            vec![Found::Missing]
        );
    }
}

#[cfg(test)]
mod prop_tests {
    use crate::query::{parse_filter, Projection, SortSpec};
    use proptest::prelude::*;
    use serde_json::{json, Map, Value};
    use std::cmp::Ordering;

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("a".to_string()),
            Just("b".to_string()),
            Just("0".to_string()),
            Just("a.b".to_string()),
            Just("a.0".to_string()),
        ]
    }

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            (-3i64..4).prop_map(Value::from),
            (-3.0f64..3.0).prop_map(|f| json!((f * 2.0).round() / 2.0)),
            prop_oneof![Just("x"), Just("y"), Just("ab")].prop_map(Value::from),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        scalar().prop_recursive(3, 16, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                prop::collection::vec((key(), inner), 0..3)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
            ]
        })
    }

    fn doc() -> impl Strategy<Value = Value> {
        prop::collection::vec((prop_oneof![Just("a"), Just("b")], value()), 0..3)
            .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()))
    }

    /// Filters built from any mix of operators and values, valid or not.
    fn raw_filter() -> impl Strategy<Value = Value> {
        let op = prop_oneof![
            Just("$eq"),
            Just("$ne"),
            Just("$gt"),
            Just("$lte"),
            Just("$in"),
            Just("$nin"),
            Just("$all"),
            Just("$size"),
            Just("$exists"),
            Just("$type"),
            Just("$mod"),
            Just("$not"),
            Just("$elemMatch"),
            Just("$regex"),
            Just("$or"),
            Just("$foo"),
        ];
        let arg = value().prop_recursive(2, 8, 2, move |inner| {
            (op.clone(), inner).prop_map(|(o, v)| json!({ o: v }))
        });
        prop::collection::vec((key(), arg), 0..3)
            .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>()))
    }

    proptest! {
        #[test]
        fn never_panics(f in raw_filter(), d in doc()) {
            if let Ok(filter) = parse_filter(&f) {
                let _ = filter.matches(&d);
            }
            if let Ok(p) = Projection::parse(&f) {
                let _ = p.apply(&d);
            }
            if let Ok(s) = SortSpec::parse(&f) {
                let _ = s.compare(&d, &d);
            }
        }

        /// A list long enough to be looked up by hash matches exactly when one of its
        /// entries alone (a list of one, compared entry by entry) matches.
        #[test]
        fn long_in_lists_match_as_their_entries_do(
            d in doc(),
            path in key(),
            items in prop::collection::vec(
                prop_oneof![
                    8 => value(),
                    1 => Just(json!({"$regex": "^a"})),
                    1 => Just(json!({"$regex": "Y", "$options": "i"})),
                ],
                12..40,
            ),
        ) {
            let one = |item: &Value| {
                parse_filter(&json!({ path.clone(): { "$in": [item] } }))
                    .unwrap()
                    .matches(&d)
            };
            let expected = items.iter().any(one);
            let inn = parse_filter(&json!({ path.clone(): { "$in": items.clone() } })).unwrap();
            let nin = parse_filter(&json!({ path.clone(): { "$nin": items.clone() } })).unwrap();
            prop_assert_eq!(inn.matches(&d), expected, "{} in {:?}", d, items);
            prop_assert_eq!(nin.matches(&d), !expected);
            // The lookup is built once and kept: a second match answers the same.
            prop_assert_eq!(inn.matches(&d), expected);
        }

        #[test]
        fn negations_are_complements(d in doc(), path in key(), v in value()) {
            let eq = parse_filter(&json!({ path.clone(): { "$eq": v.clone() } })).unwrap();
            let ne = parse_filter(&json!({ path.clone(): { "$ne": v.clone() } })).unwrap();
            let inn = parse_filter(&json!({ path.clone(): { "$in": [v.clone()] } })).unwrap();
            let nin = parse_filter(&json!({ path.clone(): { "$nin": [v.clone()] } })).unwrap();
            let not = parse_filter(&json!({ path.clone(): { "$not": { "$eq": v.clone() } } })).unwrap();
            let nor = parse_filter(&json!({ "$nor": [{ path.clone(): { "$eq": v.clone() } }] })).unwrap();
            let all = parse_filter(&json!({ path.clone(): { "$all": [v.clone()] } })).unwrap();
            let m = eq.matches(&d);
            prop_assert_eq!(ne.matches(&d), !m);
            prop_assert_eq!(inn.matches(&d), m);
            prop_assert_eq!(nin.matches(&d), !m);
            prop_assert_eq!(not.matches(&d), !m);
            prop_assert_eq!(nor.matches(&d), !m);
            prop_assert_eq!(all.matches(&d), m);
            let gte = parse_filter(&json!({ path.clone(): { "$gte": v.clone() } })).unwrap();
            let lte = parse_filter(&json!({ path.clone(): { "$lte": v.clone() } })).unwrap();
            if m {
                prop_assert!(gte.matches(&d) && lte.matches(&d));
            }
        }

        #[test]
        fn sort_is_a_total_order(a in doc(), b in doc(), c in doc(), path in key(), desc in any::<bool>()) {
            let s = SortSpec::parse(&json!({ path: if desc { -1 } else { 1 } })).unwrap();
            prop_assert_eq!(s.compare(&a, &b), s.compare(&b, &a).reverse());
            prop_assert_eq!(s.compare(&a, &a), Ordering::Equal);
            if s.compare(&a, &b) != Ordering::Greater && s.compare(&b, &c) != Ordering::Greater {
                prop_assert_ne!(s.compare(&a, &c), Ordering::Greater);
            }
        }
    }
}
