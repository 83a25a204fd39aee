//! What an update changed: MongoDB's `updateDescription` (`updatedFields`,
//! `removedFields`), computed from the document before and after the write.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The fields an update set and removed, as dotted paths.
///
/// Embedded documents are compared field by field, so `{$set: {"a.b": 1}}` reports
/// `a.b`; arrays are reported whole when they differ.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdateDescription {
    /// Paths whose value was added or changed, with the new value.
    #[serde(rename = "updatedFields")]
    pub updated_fields: Map<String, Value>,
    /// Paths that were removed.
    #[serde(rename = "removedFields")]
    pub removed_fields: Vec<String>,
}

impl UpdateDescription {
    /// The difference from `old` to `new` (two documents).
    pub fn between(old: &Value, new: &Value) -> UpdateDescription {
        let mut out = UpdateDescription::default();
        if let (Value::Object(a), Value::Object(b)) = (old, new) {
            diff_objects("", a, b, &mut out);
        }
        out
    }

    /// [`between`](Self::between) for two versions of some of a document's top-level
    /// fields, given as maps; the fields absent from both are taken as unchanged.
    pub(crate) fn between_fields(
        old: &Map<String, Value>,
        new: &Map<String, Value>,
    ) -> UpdateDescription {
        let mut out = UpdateDescription::default();
        diff_objects("", old, new, &mut out);
        out
    }

    /// True when nothing changed.
    pub fn is_empty(&self) -> bool {
        self.updated_fields.is_empty() && self.removed_fields.is_empty()
    }

    /// The description as MongoDB shows it.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "updatedFields": self.updated_fields,
            "removedFields": self.removed_fields,
        })
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn diff_objects(
    prefix: &str,
    old: &Map<String, Value>,
    new: &Map<String, Value>,
    out: &mut UpdateDescription,
) {
    for (k, v) in new {
        let path = join(prefix, k);
        match old.get(k) {
            Some(Value::Object(a)) if v.is_object() => {
                if let Value::Object(b) = v {
                    if keeps_field_order(a, b) {
                        diff_objects(&path, a, b, out);
                    } else {
                        // Field order is part of an embedded document's value: the
                        // changes of its fields would not rebuild it.
                        out.updated_fields.insert(path, v.clone());
                    }
                }
            }
            Some(prev) if same(prev, v) => {}
            _ => {
                out.updated_fields.insert(path, v.clone());
            }
        }
    }
    for k in old.keys() {
        if !new.contains_key(k) {
            out.removed_fields.push(join(prefix, k));
        }
    }
}

/// True when `new` keeps the fields it shares with `old` in `old`'s order, after which
/// come the fields it adds: what setting and unsetting fields of `old` can give.
fn keeps_field_order(old: &Map<String, Value>, new: &Map<String, Value>) -> bool {
    let mut kept = old.keys().filter(|k| new.contains_key(*k));
    let mut added = false;
    for k in new.keys() {
        if old.contains_key(k) {
            if added || kept.next() != Some(k) {
                return false;
            }
        } else {
            added = true;
        }
    }
    true
}

/// Equality that tells `1` from `1.0` apart only by value, and objects by field order
/// too (a reordered embedded document is a change in MongoDB).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((k1, v1), (k2, v2))| k1 == k2 && same(v1, v2))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Value::Number(x), Value::Number(y)) => {
            x == y || x.as_f64() == y.as_f64() && x.is_f64() == y.is_f64()
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_set_and_unset() {
        let d = UpdateDescription::between(
            &json!({"_id": 1, "a": {"b": 1, "c": 2}, "x": 1, "arr": [1, 2]}),
            &json!({"_id": 1, "a": {"b": 5, "c": 2}, "arr": [1, 2, 3], "n": null}),
        );
        assert_eq!(
            d.updated_fields,
            json!({"a.b": 5, "arr": [1, 2, 3], "n": null})
                .as_object()
                .cloned()
                .unwrap_or_default()
        );
        assert_eq!(d.removed_fields, vec!["x".to_string()]);
        assert!(UpdateDescription::between(&json!({"a": 1}), &json!({"a": 1})).is_empty());
    }

    /// A reordered embedded document is reported whole (its fields' changes would not
    /// rebuild it; before, the update showed no change at all); fields set, unset or
    /// added at the end are reported one by one.
    #[test]
    fn reordered_embedded_documents_are_reported_whole() {
        let updated = |old: Value, new: Value| {
            let d = UpdateDescription::between(&old, &new);
            (Value::Object(d.updated_fields), d.removed_fields)
        };
        assert_eq!(
            updated(
                json!({"a": {"b": 1, "c": 2}}),
                json!({"a": {"c": 2, "b": 1}})
            ),
            (json!({"a": {"c": 2, "b": 1}}), vec![])
        );
        assert_eq!(
            updated(
                json!({"a": {"b": 1, "c": 2}}),
                json!({"a": {"b": 1, "x": 0, "c": 2}})
            ),
            (json!({"a": {"b": 1, "x": 0, "c": 2}}), vec![])
        );
        assert_eq!(
            updated(
                json!({"a": {"b": 1, "c": 2, "d": 3}}),
                json!({"a": {"b": 1, "d": 4, "x": 0}})
            ),
            (json!({"a.d": 4, "a.x": 0}), vec!["a.c".to_string()])
        );
    }
}
