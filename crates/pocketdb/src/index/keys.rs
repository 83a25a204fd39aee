//! Index keys of a document, with MongoDB's rules, and their SQL encoding.
//!
//! The keys of a document at a path are the values the in-memory matcher reaches there
//! ([`crate::query::matcher::lookup`]), with arrays replaced by their elements: a missing
//! field gives `null`, an empty array gives MongoDB's `undefined` key, `[1, 2]` gives `1`
//! and `2`. A compound index's keys are the cartesian product of its paths' keys.
//!
//! Every key is stored in the multikey side table as a pair `(tag, value)`: `tag` is the
//! MongoDB type rank of the value (so `true` does not meet `1`, nor `"1"` meet `1`) and
//! `value` its SQL form, numbers as numbers (SQLite compares `1` and `1.0` as equal),
//! strings as text, booleans as 0/1, documents and arrays as canonical JSON text.

use crate::id::id_key;
use crate::query::matcher::{lookup, Found};
use crate::value::{equality_key, type_rank, FieldPath};
use rusqlite::types::Value as SqlValue;
use serde_json::Value;
use std::collections::HashSet;

/// Tag of the `undefined` key of an empty array.
pub(crate) const TAG_UNDEFINED: i64 = 0;
/// Tag of `null` and missing.
pub(crate) const TAG_NULL: i64 = 1;
/// Tag of numbers.
pub(crate) const TAG_NUMBER: i64 = 2;
/// Tag of strings.
pub(crate) const TAG_STRING: i64 = 3;

/// Most index keys one document may produce in a compound index whose paths hold
/// several arrays (the cartesian product of their elements; MongoDB refuses such
/// "parallel arrays" outright); beyond it the write fails rather than bloating the side
/// table. One array's keys are not limited (one per distinct element).
pub(crate) const MAX_KEYS_PER_DOCUMENT: usize = 10_000;

/// One key component: its value, `None` for `undefined` (an empty array).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum KeyPart {
    /// The empty array's key.
    Undefined,
    /// A value (`null` for missing).
    Value(Value),
}

impl KeyPart {
    /// The `(tag, value)` SQL pair of this key component.
    pub(crate) fn sql(&self) -> (i64, SqlValue) {
        match self {
            KeyPart::Undefined => (TAG_UNDEFINED, SqlValue::Integer(0)),
            KeyPart::Value(v) => value_sql(v),
        }
    }

    /// The component as JSON for messages (`undefined` shown as such).
    pub(crate) fn display(&self) -> String {
        match self {
            KeyPart::Undefined => "undefined".to_string(),
            KeyPart::Value(v) => v.to_string(),
        }
    }
}

/// Appends the side-table parameters of a key tuple: `t0, v0, t1, v1, ...`.
pub(crate) fn push_tuple_params(tuple: &[KeyPart], out: &mut Vec<SqlValue>) {
    for part in tuple {
        let (t, v) = part.sql();
        out.push(SqlValue::Integer(t));
        out.push(v);
    }
}

/// The `(tag, value)` SQL pair of a value.
pub(crate) fn value_sql(v: &Value) -> (i64, SqlValue) {
    let tag = i64::from(type_rank(v));
    let sql = match v {
        Value::Null => SqlValue::Integer(0),
        Value::Bool(b) => SqlValue::Integer(i64::from(*b)),
        Value::Number(n) => match n.as_i64() {
            Some(i) => SqlValue::Integer(i),
            None => SqlValue::Real(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => SqlValue::Text(s.clone()),
        Value::Array(_) | Value::Object(_) => SqlValue::Text(id_key(v)),
    };
    (tag, sql)
}

/// Up to this many keys, a new key is compared with each one kept; beyond, keys are
/// hashed by their [`tuple_text`] (an array of thousands of elements would otherwise
/// cost a quadratic number of comparisons on every write).
const PAIRWISE_KEYS: usize = 32;

/// Keys in first-seen order, without repeats.
#[derive(Default)]
struct KeyList {
    keys: Vec<KeyPart>,
    seen: Option<HashSet<String>>,
}

impl KeyList {
    fn push(&mut self, k: KeyPart) {
        if let Some(seen) = &mut self.seen {
            if seen.insert(tuple_text(std::slice::from_ref(&k))) {
                self.keys.push(k);
            }
            return;
        }
        if self.keys.contains(&k) {
            return;
        }
        self.keys.push(k);
        if self.keys.len() > PAIRWISE_KEYS {
            self.seen = Some(
                self.keys
                    .iter()
                    .map(|k| tuple_text(std::slice::from_ref(k)))
                    .collect(),
            );
        }
    }
}

/// The keys of `doc` at `path` (deduplicated, in document order).
pub(crate) fn path_keys(doc: &Value, path: &FieldPath) -> Vec<KeyPart> {
    let mut list = KeyList::default();
    for found in lookup(doc, path.segments()) {
        match found {
            Found::Missing => list.push(KeyPart::Value(Value::Null)),
            Found::Value(Value::Array(items)) if items.is_empty() => list.push(KeyPart::Undefined),
            Found::Value(Value::Array(items)) => {
                for item in items {
                    list.push(KeyPart::Value(item.clone()));
                }
            }
            Found::Value(v) => list.push(KeyPart::Value(v.clone())),
        }
    }
    let mut out = list.keys;
    if out.is_empty() {
        out.push(KeyPart::Value(Value::Null));
    }
    out
}

/// The key tuples of `doc` for an index on `paths`: the cartesian product of each path's
/// keys. `None` when several paths hold arrays whose product exceeds
/// [`MAX_KEYS_PER_DOCUMENT`].
pub(crate) fn key_tuples(doc: &Value, paths: &[&FieldPath]) -> Option<Vec<Vec<KeyPart>>> {
    if let [path] = paths {
        // One key per distinct element: bounded by the document's size, as in MongoDB.
        return Some(path_keys(doc, path).into_iter().map(|k| vec![k]).collect());
    }
    let all: Vec<Vec<KeyPart>> = paths.iter().map(|p| path_keys(doc, p)).collect();
    if over_limit(&all) {
        return None;
    }
    let mut tuples: Vec<Vec<KeyPart>> = vec![Vec::new()];
    for keys in all {
        let mut next = Vec::with_capacity(tuples.len() * keys.len());
        for t in &tuples {
            for k in &keys {
                let mut t = t.clone();
                t.push(k.clone());
                next.push(t);
            }
        }
        tuples = next;
    }
    Some(tuples)
}

/// True when `doc` gives an index on `paths` more keys than [`MAX_KEYS_PER_DOCUMENT`]
/// ([`key_tuples`] would return `None`), without building the key tuples.
pub(crate) fn exceeds_limit(doc: &Value, paths: &[&FieldPath]) -> bool {
    paths.len() > 1 && over_limit(&paths.iter().map(|p| path_keys(doc, p)).collect::<Vec<_>>())
}

/// With one array among the paths there is one key per element, as in MongoDB; only a
/// product of several arrays is limited.
fn over_limit(all: &[Vec<KeyPart>]) -> bool {
    let arrays = all.iter().filter(|k| k.len() > 1).count();
    let product = all.iter().fold(1usize, |n, k| n.saturating_mul(k.len()));
    arrays > 1 && product > MAX_KEYS_PER_DOCUMENT
}

/// True when `doc` holds an array at `path` or at a prefix of it: the condition that
/// makes an index on the path multikey.
pub(crate) fn has_array_on_path(doc: &Value, path: &FieldPath) -> bool {
    let mut cur = doc;
    for seg in path.segments() {
        cur = match cur {
            Value::Object(m) => match m.get(seg) {
                Some(v) => v,
                None => return false,
            },
            Value::Array(_) => return true,
            _ => return false,
        };
    }
    cur.is_array()
}

/// The value at `path` following object fields only (the path holds no arrays).
pub(crate) fn scalar_value<'a>(doc: &'a Value, path: &FieldPath) -> Option<&'a Value> {
    let mut cur = doc;
    for seg in path.segments() {
        cur = cur.as_object()?.get(seg)?;
    }
    Some(cur)
}

/// True when SQLite would order `v` differently from MongoDB if sorted by
/// `json_extract`: booleans (read as 0/1), documents and arrays (read as JSON text) and
/// integers beyond `i64` (read as approximate reals).
pub(crate) fn sorts_differently(v: &Value) -> bool {
    match v {
        Value::Bool(_) | Value::Object(_) | Value::Array(_) => true,
        Value::Number(n) => n.as_i64().is_none() && n.as_u64().is_some(),
        Value::Null | Value::String(_) => false,
    }
}

/// True when the document has a value at one of the paths (sparse indexes skip
/// documents lacking all of them).
pub(crate) fn has_any_field(doc: &Value, paths: &[&FieldPath]) -> bool {
    paths.iter().any(|p| {
        lookup(doc, p.segments())
            .iter()
            .any(|f| matches!(f, Found::Value(_)))
    })
}

/// A text form of a key tuple for uniqueness checks in memory: equal for two tuples
/// exactly when SQLite's unique check finds them equal (numbers by value across
/// representations, types told apart).
pub(crate) fn tuple_text(tuple: &[KeyPart]) -> String {
    let mut out = String::new();
    for part in tuple {
        match part {
            KeyPart::Undefined => out.push('u'),
            KeyPart::Value(v) => equality_key(v, &mut out),
        }
        out.push('\u{1}');
    }
    out
}

/// MongoDB's rendering of a duplicate key: `{ email: "a@x.io" }`.
pub(crate) fn describe_key(paths: &[&FieldPath], tuple: &[KeyPart]) -> String {
    let fields: Vec<String> = paths
        .iter()
        .zip(tuple)
        .map(|(p, k)| format!("{p}: {}", k.display()))
        .collect();
    format!("{{ {} }}", fields.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(s: &str) -> FieldPath {
        FieldPath::parse(s).unwrap()
    }

    #[test]
    fn keys_follow_mongodb() {
        let doc = json!({"tags": ["a", "b", "a"], "x": [], "items": [{"sku": 1}, {"q": 2}]});
        assert_eq!(
            path_keys(&doc, &p("tags")),
            vec![KeyPart::Value(json!("a")), KeyPart::Value(json!("b"))]
        );
        assert_eq!(path_keys(&doc, &p("x")), vec![KeyPart::Undefined]);
        assert_eq!(
            path_keys(&doc, &p("nope")),
            vec![KeyPart::Value(json!(null))]
        );
        let skus = path_keys(&doc, &p("items.sku"));
        assert!(skus.contains(&KeyPart::Value(json!(1))));
        assert!(skus.contains(&KeyPart::Value(json!(null))));
    }

    #[test]
    fn arrays_on_paths() {
        let doc = json!({"a": {"b": [1]}, "c": [{"d": 1}], "e": 1});
        assert!(has_array_on_path(&doc, &p("a.b")));
        assert!(!has_array_on_path(&doc, &p("a")));
        assert!(has_array_on_path(&doc, &p("c.d")));
        assert!(!has_array_on_path(&doc, &p("e.f")));
    }

    #[test]
    fn tuple_text_tells_types_apart() {
        let t = |v: Value| tuple_text(&[KeyPart::Value(v)]);
        assert_eq!(t(json!(1)), t(json!(1.0)));
        assert_ne!(t(json!(1)), t(json!(true)));
        assert_ne!(t(json!(1)), t(json!("1")));
        assert_ne!(t(json!(null)), tuple_text(&[KeyPart::Undefined]));
        assert_eq!(t(json!(1e19)), t(json!(10_000_000_000_000_000_000u64)));
        assert_ne!(
            t(json!(9_007_199_254_740_993i64)),
            t(json!(9_007_199_254_740_992.0))
        );
        assert_ne!(t(json!({"a": 1, "b": 2})), t(json!({"b": 2, "a": 1})));
    }

    #[test]
    fn long_arrays_are_deduplicated_like_short_ones() {
        // Past the pairwise limit keys are hashed: repeats (also `1.0` for `1`) are
        // still dropped and document order kept.
        let mut items: Vec<Value> = (0..100).map(|i| json!(i)).collect();
        items.extend((0..100).map(|i| json!(f64::from(i))));
        items.push(json!("a"));
        items.push(json!("a"));
        items.push(json!({"k": 1}));
        let keys = path_keys(&json!({"t": items}), &p("t"));
        let mut expected: Vec<KeyPart> = (0..100).map(|i| KeyPart::Value(json!(i))).collect();
        expected.push(KeyPart::Value(json!("a")));
        expected.push(KeyPart::Value(json!({"k": 1})));
        assert_eq!(keys, expected);
        let short = path_keys(&json!({"t": ["a", "b", "a"]}), &p("t"));
        assert_eq!(short.len(), 2);
    }

    #[test]
    fn compound_tuples_are_a_product() {
        let doc = json!({"a": [1, 2], "b": "x"});
        let t = key_tuples(&doc, &[&p("a"), &p("b")]).unwrap();
        assert_eq!(t.len(), 2);
    }
}
