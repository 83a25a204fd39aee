//! Projections: inclusion, exclusion, nested paths and `_id` rules.
//!
//! * `{a: 1, "b.c": 1}` keeps only the listed paths (and `_id`, unless `_id: 0`);
//! * `{a: 0, "b.c": 0}` removes the listed paths;
//! * inclusions and exclusions cannot be mixed, except `_id: 0` in an inclusion;
//! * flags may be booleans or numbers (`0` excludes, any other number includes);
//! * a path through an array applies to every document in it (`{"items.sku": 1}` keeps
//!   `items: [{sku: …}, …]`; non-document elements are dropped by an inclusion);
//! * `{a: {$slice: n}}` / `{a: {$slice: [skip, limit]}}` keeps part of an array, and in a
//!   projection of nothing else keeps every other field;
//! * `{a: {$elemMatch: {…}}}` (top-level fields only) keeps the first matching element
//!   of the array, in a one-element array, or drops the field when none matches; as in
//!   MongoDB 4.4+, such a field comes after the other fields of the result, and with no
//!   field flag beside it (`b: 1` / `b: 0`) or `$slice`, the projection is an inclusion
//!   (only `_id` and the projected array come back);
//! * a path and its prefix cannot both appear (`{a: 1, "a.b": 1}` is a path collision);
//! * the result keeps the document's field order.

use crate::error::{Error, Result};
use crate::query::ast::ElemMatch;
use crate::query::matcher::elem_matches;
use crate::query::parse::parse_elem_match;
use crate::value::FieldPath;
use serde_json::{Map, Value};

/// A parsed projection.
#[derive(Debug, Clone, PartialEq)]
pub struct Projection {
    inclusion: bool,
    root: Node,
}

#[derive(Debug, Clone, PartialEq, Default)]
struct Node {
    children: Vec<(String, Child)>,
}

#[derive(Debug, Clone, PartialEq)]
enum Child {
    Leaf(Action),
    Node(Node),
}

#[derive(Debug, Clone, PartialEq)]
enum Action {
    Include,
    Exclude,
    Slice { skip: Option<i64>, limit: i64 },
    ElemMatch(ElemMatch),
}

impl Node {
    fn get(&self, key: &str) -> Option<&Child> {
        self.children
            .iter()
            .find_map(|(k, c)| (k == key).then_some(c))
    }

    fn insert(&mut self, segs: &[String], action: Action, full: &str) -> Result<()> {
        let Some((first, rest)) = segs.split_first() else {
            return Ok(());
        };
        let existing = self.children.iter_mut().find(|(k, _)| k == first);
        match (existing, rest.is_empty()) {
            (None, true) => self.children.push((first.clone(), Child::Leaf(action))),
            (None, false) => {
                let mut node = Node::default();
                node.insert(rest, action, full)?;
                self.children.push((first.clone(), Child::Node(node)));
            }
            (Some((_, Child::Node(node))), false) => node.insert(rest, action, full)?,
            (Some(_), _) => {
                return Err(invalid(
                    full,
                    "path collision: a path and its prefix cannot both be projected",
                ))
            }
        }
        Ok(())
    }
}

fn invalid(path: &str, message: impl Into<String>) -> Error {
    Error::InvalidProjection {
        path: path.to_string(),
        message: message.into(),
    }
}

fn integral(v: &Value) -> Option<i64> {
    let n = v.as_number()?;
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    let f = n.as_f64()?;
    (f.fract() == 0.0 && f.abs() < 9.2e18).then_some(f as i64)
}

fn parse_slice(path: &str, arg: &Value) -> Result<Action> {
    if let Some(n) = integral(arg) {
        return Ok(Action::Slice {
            skip: None,
            limit: n,
        });
    }
    if let Some([skip, limit]) = arg.as_array().map(Vec::as_slice) {
        let (Some(skip), Some(limit)) = (integral(skip), integral(limit)) else {
            return Err(invalid(path, "$slice: [skip, limit] must be integers"));
        };
        if limit <= 0 {
            return Err(invalid(path, "$slice: limit must be positive"));
        }
        return Ok(Action::Slice {
            skip: Some(skip),
            limit,
        });
    }
    Err(invalid(
        path,
        "$slice needs an integer or an array [skip, limit]",
    ))
}

fn parse_action(path: &FieldPath, key: &str, value: &Value) -> Result<Action> {
    match value {
        Value::Bool(b) => Ok(if *b { Action::Include } else { Action::Exclude }),
        Value::Number(n) => Ok(if n.as_f64().is_some_and(|f| f == 0.0) {
            Action::Exclude
        } else {
            Action::Include
        }),
        Value::Object(m) if m.len() == 1 => {
            let (op, arg) = m
                .iter()
                .next()
                .ok_or_else(|| invalid(key, "empty projection operator"))?;
            match op.as_str() {
                "$slice" => parse_slice(key, arg),
                "$elemMatch" => {
                    if path.len() > 1 {
                        return Err(invalid(
                            key,
                            "$elemMatch projection cannot be used on a nested field",
                        ));
                    }
                    let em = parse_elem_match(key, arg).map_err(|e| match e {
                        Error::InvalidFilter { message, .. } => invalid(key, message),
                        other => other,
                    })?;
                    Ok(Action::ElemMatch(em))
                }
                other => Err(invalid(
                    key,
                    format!("unsupported projection operator {other}"),
                )),
            }
        }
        _ => Err(invalid(
            key,
            format!(
                "unsupported projection value {value}: use 1/true, 0/false, $slice or $elemMatch"
            ),
        )),
    }
}

impl Projection {
    /// Parses a projection document. Errors are [`Error::InvalidProjection`]: a
    /// non-object spec, mixed inclusion and exclusion, a path collision, an unsupported
    /// value (expressions, literals, the positional `a.$`) or a bad operator argument.
    pub fn parse(spec: &Value) -> Result<Projection> {
        let obj = spec
            .as_object()
            .ok_or_else(|| invalid("", "a projection must be a document"))?;
        let mut entries = Vec::with_capacity(obj.len());
        let (mut includes, mut excludes) = (false, false);
        let (mut has_slice, mut has_elem_match) = (false, false);
        let mut id_flag = None;
        for (key, value) in obj {
            if key == "$" || key.ends_with(".$") {
                return Err(invalid(
                    key,
                    "the positional projection ($) is not supported",
                ));
            }
            let path = FieldPath::parse(key).map_err(|e| invalid(key, e.to_string()))?;
            let action = parse_action(&path, key, value)?;
            if key == "_id" {
                match action {
                    Action::Include => id_flag = Some(true),
                    Action::Exclude => id_flag = Some(false),
                    _ => {}
                }
            } else {
                match action {
                    Action::Include => includes = true,
                    Action::Exclude => excludes = true,
                    Action::Slice { .. } => has_slice = true,
                    Action::ElemMatch(_) => has_elem_match = true,
                }
            }
            if includes && excludes {
                return Err(invalid(
                    key,
                    "cannot mix inclusion and exclusion (except _id: 0 in an inclusion)",
                ));
            }
            entries.push((key, path, action));
        }
        let inclusion =
            projection_is_inclusion(includes, excludes, has_slice, has_elem_match, id_flag);
        let mut root = Node::default();
        let mut id_mentioned = false;
        for (key, path, action) in entries {
            if path.first() == "_id" {
                id_mentioned = true;
            }
            let action = match (key.as_str(), &action, inclusion) {
                // `_id: 0` in an inclusion: simply not included.
                ("_id", Action::Exclude, true) => continue,
                // `_id: 1` in an exclusion: kept anyway.
                ("_id", Action::Include, false) => continue,
                _ => action,
            };
            root.insert(path.segments(), action, key)?;
        }
        if inclusion && !id_mentioned {
            root.children
                .insert(0, ("_id".to_string(), Child::Leaf(Action::Include)));
        }
        Ok(Projection { inclusion, root })
    }

    /// True for an inclusion projection (only listed fields are kept).
    pub fn is_inclusion(&self) -> bool {
        self.inclusion
    }

    /// True when the projection returns documents unchanged (`{}`).
    pub fn is_identity(&self) -> bool {
        !self.inclusion && self.root.children.is_empty()
    }

    /// Applies the projection to a document. Non-object values are returned unchanged.
    pub fn apply(&self, doc: &Value) -> Value {
        match doc {
            Value::Object(m) => Value::Object(apply_object(&self.root, m, self.inclusion)),
            other => other.clone(),
        }
    }
}

/// Whether a projection is an inclusion, by MongoDB's rules (`computeProjectionType`):
/// a field flag (`a: 1` / `a: 0`) decides; without one, a `$slice` makes an exclusion
/// unless `_id: 1` is given, an `$elemMatch` makes an inclusion whatever `_id` says,
/// and otherwise `_id: 1` alone is an inclusion.
fn projection_is_inclusion(
    includes: bool,
    excludes: bool,
    has_slice: bool,
    has_elem_match: bool,
    id_flag: Option<bool>,
) -> bool {
    if includes || excludes {
        return includes;
    }
    if has_slice {
        return id_flag == Some(true);
    }
    has_elem_match || id_flag == Some(true)
}

fn apply_object(node: &Node, obj: &Map<String, Value>, inclusion: bool) -> Map<String, Value> {
    let mut out = Map::new();
    let mut trailing = Vec::new();
    for (key, value) in obj {
        match node.get(key) {
            None => {
                if !inclusion {
                    out.insert(key.clone(), value.clone());
                }
            }
            Some(Child::Leaf(Action::Include)) => {
                out.insert(key.clone(), value.clone());
            }
            Some(Child::Leaf(Action::Exclude)) => {}
            Some(Child::Leaf(Action::Slice { skip, limit })) => {
                out.insert(key.clone(), slice(value, *skip, *limit));
            }
            Some(Child::Leaf(Action::ElemMatch(em))) => {
                if let Value::Array(items) = value {
                    if let Some(first) = items.iter().find(|e| elem_matches(em, e)) {
                        trailing.push((key.clone(), Value::Array(vec![first.clone()])));
                    }
                }
            }
            Some(Child::Node(sub)) => {
                if let Some(v) = apply_nested(sub, value, inclusion) {
                    out.insert(key.clone(), v);
                }
            }
        }
    }
    out.extend(trailing);
    out
}

/// Applies a sub-projection to the value of a field: into documents, and into every
/// element of arrays. In an inclusion, scalars (and scalar elements) are dropped.
fn apply_nested(node: &Node, value: &Value, inclusion: bool) -> Option<Value> {
    match value {
        Value::Object(m) => Some(Value::Object(apply_object(node, m, inclusion))),
        Value::Array(items) => Some(Value::Array(
            items
                .iter()
                .filter_map(|e| apply_nested(node, e, inclusion))
                .collect(),
        )),
        other => (!inclusion).then(|| other.clone()),
    }
}

fn slice(value: &Value, skip: Option<i64>, limit: i64) -> Value {
    let Value::Array(items) = value else {
        return value.clone();
    };
    let len = items.len();
    let clamp = |n: i64| usize::try_from(n.max(0)).unwrap_or(usize::MAX).min(len);
    let (start, count) = match skip {
        None if limit >= 0 => (0, clamp(limit)),
        None => {
            let n = clamp(limit.saturating_neg());
            (len - n, n)
        }
        Some(s) if s >= 0 => (clamp(s), clamp(limit)),
        Some(s) => (len - clamp(s.saturating_neg()), clamp(limit)),
    };
    Value::Array(items.iter().skip(start).take(count).cloned().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn proj(spec: Value, doc: Value) -> Value {
        Projection::parse(&spec)
            .unwrap_or_else(|e| panic!("{spec}: {e}"))
            .apply(&doc)
    }

    /// Compares with field order significant.
    fn same(a: &Value, b: &Value) -> bool {
        serde_json::to_string(a).ok() == serde_json::to_string(b).ok()
    }

    #[test]
    fn projection_table() {
        let doc = json!({"_id": 1, "a": 1, "b": {"c": 2, "d": 3}, "e": [1, 2, 3, 4, 5]});
        let items =
            json!({"_id": 2, "items": [{"sku": "x", "q": 1}, 7, {"q": 2}, [{"sku": "y"}]], "n": 1});
        #[rustfmt::skip]
        let cases: Vec<(Value, Value, Value)> = vec![
            (json!({}), doc.clone(), doc.clone()),
            (json!({"a": 1}), doc.clone(), json!({"_id": 1, "a": 1})),
            (json!({"a": true}), doc.clone(), json!({"_id": 1, "a": 1})),
            (json!({"a": 0.5}), doc.clone(), json!({"_id": 1, "a": 1})),
            (json!({"a": -1}), doc.clone(), json!({"_id": 1, "a": 1})),
            (json!({"a": 1, "_id": 0}), doc.clone(), json!({"a": 1})),
            (json!({"_id": 0, "b.c": 1}), doc.clone(), json!({"b": {"c": 2}})),
            (json!({"b.d": 1, "a": 1}), doc.clone(), json!({"_id": 1, "a": 1, "b": {"d": 3}})),
            (json!({"b.x": 1}), doc.clone(), json!({"_id": 1, "b": {}})),
            (json!({"a.x": 1}), doc.clone(), json!({"_id": 1})),
            (json!({"zz": 1}), doc.clone(), json!({"_id": 1})),
            (json!({"_id": 1}), doc.clone(), json!({"_id": 1})),
            (json!({"a": 0}), doc.clone(), json!({"_id": 1, "b": {"c": 2, "d": 3}, "e": [1, 2, 3, 4, 5]})),
            (json!({"a": false, "e": 0}), doc.clone(), json!({"_id": 1, "b": {"c": 2, "d": 3}})),
            (json!({"_id": 0}), doc.clone(), json!({"a": 1, "b": {"c": 2, "d": 3}, "e": [1, 2, 3, 4, 5]})),
            (json!({"_id": 1, "a": 0}), doc.clone(), json!({"_id": 1, "b": {"c": 2, "d": 3}, "e": [1, 2, 3, 4, 5]})),
            (json!({"b.c": 0, "_id": 0}), doc.clone(), json!({"a": 1, "b": {"d": 3}, "e": [1, 2, 3, 4, 5]})),
            (json!({"a.x": 0}), doc.clone(), doc.clone()),
            // arrays of documents
            (json!({"items.sku": 1}), items.clone(), json!({"_id": 2, "items": [{"sku": "x"}, {}, [{"sku": "y"}]]})),
            (json!({"items.sku": 0}), items.clone(), json!({"_id": 2, "items": [{"q": 1}, 7, {"q": 2}, [{}]], "n": 1})),
            (json!({"items.sku": 1, "_id": 0, "n": 1}), items.clone(), json!({"items": [{"sku": "x"}, {}, [{"sku": "y"}]], "n": 1})),
            // $slice
            (json!({"e": {"$slice": 2}}), doc.clone(), json!({"_id": 1, "a": 1, "b": {"c": 2, "d": 3}, "e": [1, 2]})),
            (json!({"e": {"$slice": -2}, "_id": 0, "a": 0, "b": 0}), doc.clone(), json!({"e": [4, 5]})),
            (json!({"e": {"$slice": [1, 2]}, "a": 1}), doc.clone(), json!({"_id": 1, "a": 1, "e": [2, 3]})),
            (json!({"e": {"$slice": [-2, 5]}, "a": 1}), doc.clone(), json!({"_id": 1, "a": 1, "e": [4, 5]})),
            (json!({"e": {"$slice": [-9, 2]}, "a": 1}), doc.clone(), json!({"_id": 1, "a": 1, "e": [1, 2]})),
            (json!({"e": {"$slice": [9, 2]}, "a": 1}), doc.clone(), json!({"_id": 1, "a": 1, "e": []})),
            (json!({"e": {"$slice": -9}, "a": 1}), doc.clone(), json!({"_id": 1, "a": 1, "e": [1, 2, 3, 4, 5]})),
            (json!({"e": {"$slice": 0}, "a": 1}), doc.clone(), json!({"_id": 1, "a": 1, "e": []})),
            (json!({"a": {"$slice": 1}, "_id": 0, "b": 1}), doc.clone(), json!({"a": 1, "b": {"c": 2, "d": 3}})),
            (json!({"x.y": {"$slice": 1}}), json!({"x": [{"y": [1, 2], "z": 1}]}), json!({"x": [{"y": [1], "z": 1}]})),
            // $elemMatch
            // alone, an $elemMatch is an inclusion (whatever `_id` says)
            (json!({"items": {"$elemMatch": {"q": {"$gte": 2}}}}), items.clone(), json!({"_id": 2, "items": [{"q": 2}]})),
            (json!({"items": {"$elemMatch": {"q": 5}}, "_id": 0}), items.clone(), json!({})),
            (json!({"items": {"$elemMatch": {"q": 5}}, "_id": 1}), items.clone(), json!({"_id": 2})),
            // beside an exclusion, an exclusion
            (json!({"items": {"$elemMatch": {"q": 2}}, "n": 0}), items.clone(), json!({"_id": 2, "items": [{"q": 2}]})),
            // beside a $slice, an exclusion unless `_id: 1`
            (json!({"items": {"$elemMatch": {"q": 2}}, "e": {"$slice": 1}}), items.clone(), json!({"_id": 2, "n": 1, "items": [{"q": 2}]})),
            (json!({"items": {"$elemMatch": {"q": 2}}, "e": {"$slice": 1}, "_id": 1}), items.clone(), json!({"_id": 2, "items": [{"q": 2}]})),
            (json!({"items": {"$elemMatch": {"q": 1}}, "n": 1}), items.clone(), json!({"_id": 2, "n": 1, "items": [{"sku": "x", "q": 1}]})),
            (json!({"e": {"$elemMatch": {"$gt": 3}}, "a": 1}), doc.clone(), json!({"_id": 1, "a": 1, "e": [4]})),
            (json!({"a": {"$elemMatch": {"$gt": 0}}, "_id": 0, "b": 1}), doc.clone(), json!({"b": {"c": 2, "d": 3}})),
        ];
        let mut failures = Vec::new();
        for (spec, doc, expected) in &cases {
            let got = proj(spec.clone(), doc.clone());
            if !same(&got, expected) {
                failures.push(format!("{spec} on {doc}: got {got}, expected {expected}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn keeps_document_field_order() {
        let doc: Value = serde_json::from_str(r#"{"z": 1, "_id": 5, "m": 2, "a": 3}"#).unwrap();
        let got = proj(json!({"a": 1, "z": 1}), doc.clone());
        assert_eq!(
            serde_json::to_string(&got).unwrap(),
            r#"{"z":1,"_id":5,"a":3}"#
        );
        let got = proj(json!({"m": 0}), doc);
        assert_eq!(
            serde_json::to_string(&got).unwrap(),
            r#"{"z":1,"_id":5,"a":3}"#
        );
    }

    #[test]
    fn errors() {
        for bad in [
            json!(1),
            json!([]),
            json!({"a": 1, "b": 0}),
            json!({"a": 0, "b": true}),
            json!({"a": 1, "a.b": 1}),
            json!({"a.b": 0, "a": 0}),
            json!({"a": "x"}),
            json!({"a": null}),
            json!({"a": [1]}),
            json!({"a": {"$slice": "x"}}),
            json!({"a": {"$slice": [1, 0]}}),
            json!({"a": {"$slice": [1]}}),
            json!({"a": {"$slice": 1.5}}),
            json!({"a": {"$foo": 1}}),
            json!({"a": {"$slice": 1, "$elemMatch": {}}}),
            json!({"a": {}}),
            json!({"a.b": {"$elemMatch": {"x": 1}}}),
            json!({"a": {"$elemMatch": 1}}),
            json!({"a": {"$elemMatch": {"$bad": 1}}}),
            json!({"a.$": 1}),
            json!({"a..b": 1}),
        ] {
            assert!(
                matches!(
                    Projection::parse(&bad),
                    Err(Error::InvalidProjection { .. })
                ),
                "{bad}: {:?}",
                Projection::parse(&bad)
            );
        }
        assert!(Projection::parse(&json!({"a": 1, "_id": 0})).is_ok());
        assert!(Projection::parse(&json!({"a": 0, "_id": 1})).is_ok());
        assert!(Projection::parse(&json!({})).unwrap().is_identity());
        assert!(Projection::parse(&json!({"_id": 1}))
            .unwrap()
            .is_inclusion());
        assert!(!Projection::parse(&json!({"_id": 0}))
            .unwrap()
            .is_inclusion());
    }
}
