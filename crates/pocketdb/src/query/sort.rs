//! Sort specifications (`{"age": -1, "name": 1}`) and MongoDB's sort order.
//!
//! Each sort key of a document is the value at the key's path, with MongoDB's rules:
//! a missing field sorts as `null`; when the path reaches an array, the array's elements
//! (one level) are the candidates and the smallest one is used for an ascending key, the
//! largest for a descending key; a path through an array of documents collects the value
//! of every element (elements lacking the field count as `null`); an empty array sorts
//! before `null` in either direction (it is "less than null or a missing field").

use crate::error::{Error, Result};
use crate::query::matcher::{lookup_for_sort, Found};
use crate::value::{compare_values, FieldPath};
use serde_json::Value;
use std::cmp::Ordering;

/// Direction of one sort key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortOrder {
    /// Ascending (`1`).
    Asc,
    /// Descending (`-1`).
    Desc,
}

/// A parsed sort specification.
#[derive(Debug, Clone, PartialEq)]
pub struct SortSpec {
    /// Keys in priority order.
    pub keys: Vec<(FieldPath, SortOrder)>,
}

/// One component of a document's sort key (see [`SortSpec::sort_key`]).
#[derive(Debug, Clone, PartialEq)]
pub enum SortValue {
    /// The field is an empty array: lower than every value, `null` included.
    EmptyArray,
    /// The representative value (`null` for a missing field).
    Value(Value),
}

impl SortValue {
    /// MongoDB's order over sort key components.
    pub fn compare(&self, other: &SortValue) -> Ordering {
        match (self, other) {
            (SortValue::EmptyArray, SortValue::EmptyArray) => Ordering::Equal,
            (SortValue::EmptyArray, SortValue::Value(_)) => Ordering::Less,
            (SortValue::Value(_), SortValue::EmptyArray) => Ordering::Greater,
            (SortValue::Value(a), SortValue::Value(b)) => compare_values(a, b),
        }
    }
}

fn invalid(path: &str, message: impl Into<String>) -> Error {
    Error::InvalidSort {
        path: path.to_string(),
        message: message.into(),
    }
}

impl SortSpec {
    /// Parses `{"field": 1 | -1, …}`. `1.0` and `-1.0` are accepted; any other value, a
    /// bad field path or a non-object spec is an [`Error::InvalidSort`]. An empty object
    /// is a spec with no keys (no sorting).
    pub fn parse(spec: &Value) -> Result<SortSpec> {
        let obj = spec
            .as_object()
            .ok_or_else(|| invalid("", "a sort specification must be a document"))?;
        let mut keys = Vec::with_capacity(obj.len());
        for (key, dir) in obj {
            let path = FieldPath::parse(key).map_err(|e| invalid(key, e.to_string()))?;
            let d = dir.as_f64();
            let order = if d == Some(1.0) {
                SortOrder::Asc
            } else if d == Some(-1.0) {
                SortOrder::Desc
            } else {
                return Err(invalid(
                    key,
                    format!("sort direction must be 1 or -1, got {dir}"),
                ));
            };
            keys.push((path, order));
        }
        Ok(SortSpec { keys })
    }

    /// Builds a spec from keys.
    pub fn new(keys: Vec<(FieldPath, SortOrder)>) -> SortSpec {
        SortSpec { keys }
    }

    /// True when the spec has no keys (sorting is a no-op).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The sort key of a document: one component per key of the spec, already chosen for
    /// the key's direction (smallest candidate ascending, largest descending). Compare
    /// keys with [`SortSpec::compare_keys`]; computing them once per document is cheaper
    /// than [`SortSpec::compare`] for large sorts.
    pub fn sort_key(&self, doc: &Value) -> Vec<SortValue> {
        self.keys
            .iter()
            .map(|(path, order)| key_component(doc, path, *order))
            .collect()
    }

    /// Compares two keys produced by [`SortSpec::sort_key`] under this spec.
    pub fn compare_keys(&self, a: &[SortValue], b: &[SortValue]) -> Ordering {
        for ((x, y), (_, order)) in a.iter().zip(b).zip(&self.keys) {
            let o = x.compare(y);
            let o = match order {
                SortOrder::Asc => o,
                SortOrder::Desc => o.reverse(),
            };
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    }

    /// Compares two documents under this spec, with MongoDB's rules (missing sorts as
    /// null; an array field sorts by its smallest element ascending, largest descending).
    /// Documents equal on every key compare `Equal`; use a stable sort to keep their order.
    pub fn compare(&self, a: &Value, b: &Value) -> Ordering {
        for (path, order) in &self.keys {
            let x = key_component(a, path, *order);
            let y = key_component(b, path, *order);
            let o = x.compare(&y);
            let o = match order {
                SortOrder::Asc => o,
                SortOrder::Desc => o.reverse(),
            };
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    }
}

fn key_component(doc: &Value, path: &FieldPath, order: SortOrder) -> SortValue {
    let reached = lookup_for_sort(doc, path.segments());
    let mut best: Option<SortValue> = None;
    let mut offer = |candidate: SortValue| {
        let better = match &best {
            None => true,
            Some(current) => {
                let o = candidate.compare(current);
                match order {
                    SortOrder::Asc => o == Ordering::Less,
                    SortOrder::Desc => o == Ordering::Greater,
                }
            }
        };
        if better {
            best = Some(candidate);
        }
    };
    for found in reached {
        match found {
            Found::Missing => offer(SortValue::Value(Value::Null)),
            Found::Value(Value::Array(items)) if items.is_empty() => offer(SortValue::EmptyArray),
            Found::Value(Value::Array(items)) => {
                for item in items {
                    offer(SortValue::Value(item.clone()));
                }
            }
            Found::Value(v) => offer(SortValue::Value(v.clone())),
        }
    }
    best.unwrap_or(SortValue::Value(Value::Null))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sorted(spec: Value, docs: Vec<Value>) -> Vec<Value> {
        let spec = SortSpec::parse(&spec).unwrap();
        let mut docs = docs;
        docs.sort_by(|a, b| spec.compare(a, b));
        let ids: Vec<Value> = docs.iter().map(|d| d["_id"].clone()).collect();
        // compare_keys must agree with compare.
        let mut keyed: Vec<(Vec<SortValue>, Value)> = docs
            .iter()
            .map(|d| (spec.sort_key(d), d["_id"].clone()))
            .collect();
        keyed.sort_by(|a, b| spec.compare_keys(&a.0, &b.0));
        assert_eq!(
            keyed.into_iter().map(|k| k.1).collect::<Vec<_>>(),
            ids,
            "sort_key / compare_keys disagree with compare"
        );
        ids
    }

    #[test]
    fn parse_specs() {
        let s = SortSpec::parse(&json!({"a": 1, "b.c": -1.0})).unwrap();
        assert_eq!(
            s.keys,
            vec![
                (FieldPath::parse("a").unwrap(), SortOrder::Asc),
                (FieldPath::parse("b.c").unwrap(), SortOrder::Desc)
            ]
        );
        assert!(SortSpec::parse(&json!({})).unwrap().is_empty());
        for bad in [
            json!({"a": 2}),
            json!({"a": 0}),
            json!({"a": "asc"}),
            json!({"a": true}),
            json!({"a": null}),
            json!({"a": {"$meta": "textScore"}}),
            json!({"a..b": 1}),
            json!({"$a": 1}),
            json!([["a", 1]]),
            json!("a"),
        ] {
            assert!(
                matches!(SortSpec::parse(&bad), Err(Error::InvalidSort { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn cross_type_order_and_missing() {
        let docs = vec![
            json!({"_id": 1, "a": true}),
            json!({"_id": 2, "a": "x"}),
            json!({"_id": 3, "a": 5}),
            json!({"_id": 4}),
            json!({"_id": 5, "a": {"b": 1}}),
            json!({"_id": 6, "a": null}),
            json!({"_id": 7, "a": 1.5}),
            json!({"_id": 8, "a": false}),
        ];
        // Missing and null tie; the stable sort keeps their input order.
        assert_eq!(
            sorted(json!({"a": 1}), docs.clone()),
            vec![
                json!(4),
                json!(6),
                json!(7),
                json!(3),
                json!(2),
                json!(5),
                json!(8),
                json!(1)
            ]
        );
        assert_eq!(
            sorted(json!({"a": -1}), docs),
            vec![
                json!(1),
                json!(8),
                json!(5),
                json!(2),
                json!(3),
                json!(7),
                json!(4),
                json!(6)
            ]
        );
    }

    #[test]
    fn arrays_sort_by_min_or_max_element() {
        let docs = vec![
            json!({"_id": 1, "a": [1, 10]}),
            json!({"_id": 2, "a": 5}),
            json!({"_id": 3, "a": [3, 4]}),
            json!({"_id": 4, "a": []}),
            json!({"_id": 5}),
        ];
        assert_eq!(
            sorted(json!({"a": 1}), docs.clone()),
            vec![json!(4), json!(5), json!(1), json!(3), json!(2)]
        );
        assert_eq!(
            sorted(json!({"a": -1}), docs),
            vec![json!(1), json!(2), json!(3), json!(5), json!(4)]
        );
        // Elements of mixed types use the cross-type order: a string beats numbers.
        let docs = vec![json!({"_id": 1, "a": [1, "x"]}), json!({"_id": 2, "a": 3})];
        assert_eq!(
            sorted(json!({"a": 1}), docs.clone()),
            vec![json!(1), json!(2)]
        );
        assert_eq!(sorted(json!({"a": -1}), docs), vec![json!(1), json!(2)]);
        // Nested arrays are compared as arrays (one level of expansion).
        let docs = vec![json!({"_id": 1, "a": [[0]]}), json!({"_id": 2, "a": [7]})];
        assert_eq!(sorted(json!({"a": 1}), docs), vec![json!(2), json!(1)]);
    }

    #[test]
    fn dotted_paths_and_multiple_keys() {
        let docs = vec![
            json!({"_id": 1, "a": [{"b": 4}, {"b": 9}]}),
            json!({"_id": 2, "a": {"b": 5}}),
            json!({"_id": 3, "a": [{"b": 6}, {"c": 1}]}),
            json!({"_id": 4, "a": [{"b": 2}, 7]}),
        ];
        // _id 3 and 4 hold a "missing" b (an element lacking b / a scalar element): null.
        assert_eq!(
            sorted(json!({"a.b": 1}), docs.clone()),
            vec![json!(3), json!(4), json!(1), json!(2)]
        );
        assert_eq!(
            sorted(json!({"a.b": -1}), docs),
            vec![json!(1), json!(3), json!(2), json!(4)]
        );
        let docs = vec![
            json!({"_id": 1, "x": 1, "y": "b"}),
            json!({"_id": 2, "x": 0, "y": "z"}),
            json!({"_id": 3, "x": 1, "y": "a"}),
            json!({"_id": 4, "x": 1.0, "y": "c"}),
        ];
        assert_eq!(
            sorted(json!({"x": -1, "y": 1}), docs),
            vec![json!(3), json!(1), json!(4), json!(2)]
        );
        let s = SortSpec::parse(&json!({"a.0": 1})).unwrap();
        assert_eq!(
            s.sort_key(&json!({"a": [3, 1]})),
            vec![SortValue::Value(json!(3))]
        );
    }
}
