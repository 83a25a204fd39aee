//! Routing: which member (shard or partition) a document belongs to, and which members a
//! filter can match documents in.
//!
//! Hash shards use `crc32(id_key(key)) % n` (seed 000): the canonical key text of
//! [`crate::id::id_key`] makes values MongoDB considers equal (`1`, `1.0`) land on the
//! same shard, and crc32 of that text is the same on every platform and run.

use super::partition::Partitioner;
use crate::error::{Error, Result};
use crate::id::id_key;
use crate::query::{Cond, Filter, InItem};
use crate::value::FieldPath;
use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// How a collection's documents are spread over its members.
#[derive(Debug, Clone)]
pub(crate) enum Layout {
    /// `shards` files chosen by a hash of the value at `path`.
    Hash {
        /// Number of shards, fixed at creation.
        shards: usize,
        /// The shard key path (`_id` for [`ShardKey::Id`](super::ShardKey::Id)).
        path: FieldPath,
    },
    /// One file per time bucket or key prefix, created on demand.
    Partition(Partitioner),
}

impl Layout {
    /// The path whose value routes a document.
    pub(crate) fn path(&self) -> &FieldPath {
        match self {
            Layout::Hash { path, .. } => path,
            Layout::Partition(p) => p.path(),
        }
    }

    /// The label of the member `doc` belongs to: the shard number, or the partition name.
    pub(crate) fn label_of(&self, doc: &Value) -> Result<String> {
        self.label_of_key(&key_value(doc, self.path())?)
    }

    /// The label of the member a document whose routing key is `key` belongs to.
    pub(crate) fn label_of_key(&self, key: &Value) -> Result<String> {
        match self {
            Layout::Hash { shards, .. } => Ok(shard_index(key, *shards).to_string()),
            Layout::Partition(p) => p.label_of_key(key),
        }
    }
}

/// The value of the routing key in `doc`: `null` when missing (as MongoDB treats a
/// missing shard key). Arrays cannot be shard keys: a path ending at or crossing an
/// array is an error.
pub(crate) fn key_value(doc: &Value, path: &FieldPath) -> Result<Value> {
    key_below(doc, path.segments(), path)
}

/// [`key_value`] of a document given as its map.
pub(crate) fn key_value_in(doc: &Map<String, Value>, path: &FieldPath) -> Result<Value> {
    match path.segments().split_first() {
        Some((head, rest)) => match doc.get(head) {
            Some(next) => key_below(next, rest, path),
            None => Ok(Value::Null),
        },
        None => Ok(Value::Null),
    }
}

/// [`key_value_in`] of a document that has no `_id` yet and will be given `id`.
pub(crate) fn key_value_given_id(
    doc: &Map<String, Value>,
    id: &Value,
    path: &FieldPath,
) -> Result<Value> {
    match path.segments().split_first() {
        Some((head, rest)) if head == "_id" => key_below(id, rest, path),
        _ => key_value_in(doc, path),
    }
}

fn key_below(mut current: &Value, segments: &[String], path: &FieldPath) -> Result<Value> {
    for seg in segments {
        match current {
            Value::Object(map) => match map.get(seg) {
                Some(next) => current = next,
                None => return Ok(Value::Null),
            },
            Value::Array(_) => return Err(array_key(path)),
            _ => return Ok(Value::Null),
        }
    }
    if current.is_array() {
        return Err(array_key(path));
    }
    Ok(current.clone())
}

fn array_key(path: &FieldPath) -> Error {
    Error::InvalidDocument(format!(
        "the shard key '{path}' cannot be an array or lie inside an array"
    ))
}

/// The shard of a key value: `crc32(id_key(key)) % shards`.
pub(crate) fn shard_index(key: &Value, shards: usize) -> usize {
    let hash = crc32fast::hash(id_key(key).as_bytes());
    (hash as usize) % shards.max(1)
}

/// The shards a filter can match documents in, or `None` when it does not pin the shard
/// key (every shard must be asked). Equality and `$in` on the key pin it; `$and` takes
/// the intersection of its pinned children, `$or` the union when every branch is pinned.
pub(crate) fn pinned_shards(
    filter: &Filter,
    path: &FieldPath,
    shards: usize,
) -> Option<BTreeSet<usize>> {
    match filter {
        Filter::Field { path: p, cond } if p == path => match cond {
            Cond::Eq(v) => Some(BTreeSet::from([shard_index(v, shards)])),
            Cond::In(items) => items
                .iter()
                .map(|item| match item {
                    InItem::Value(v) => Some(shard_index(v, shards)),
                    InItem::Regex(_) => None,
                })
                .collect(),
            _ => None,
        },
        Filter::And(children) => children
            .iter()
            .filter_map(|c| pinned_shards(c, path, shards))
            .reduce(|a, b| a.intersection(&b).copied().collect()),
        Filter::Or(children) if !children.is_empty() => {
            let mut all = BTreeSet::new();
            for c in children {
                all.extend(pinned_shards(c, path, shards)?);
            }
            Some(all)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::parse_filter;
    use serde_json::json;

    fn pinned(filter: Value, n: usize) -> Option<Vec<usize>> {
        let f = parse_filter(&filter).unwrap();
        pinned_shards(&f, &FieldPath::parse("k").unwrap(), n).map(|s| s.into_iter().collect())
    }

    #[test]
    fn hash_is_stable_and_normalises_numbers() {
        // Fixed values: the routing of stored data must never change.
        assert_eq!(shard_index(&json!("a"), 1000), 686);
        assert_eq!(shard_index(&json!(1), 1000), 583);
        assert_eq!(shard_index(&json!("user-42"), 1000), 197);
        assert_eq!(shard_index(&json!(1), 4), shard_index(&json!(1.0), 4));
        let spread: BTreeSet<usize> = (0..100).map(|i| shard_index(&json!(i), 4)).collect();
        assert_eq!(spread.len(), 4);
    }

    #[test]
    fn filters_pin_shards() {
        let s = |v: Value| shard_index(&v, 8);
        assert_eq!(pinned(json!({"k": 5}), 8), Some(vec![s(json!(5))]));
        assert_eq!(
            pinned(json!({"k": {"$eq": "x"}, "a": 1}), 8),
            Some(vec![s(json!("x"))])
        );
        let mut both = vec![s(json!(1)), s(json!(2))];
        both.sort();
        both.dedup();
        assert_eq!(pinned(json!({"k": {"$in": [1, 2]}}), 8), Some(both.clone()));
        assert_eq!(pinned(json!({"$or": [{"k": 1}, {"k": 2}]}), 8), Some(both));
        assert_eq!(pinned(json!({"$or": [{"k": 1}, {"a": 2}]}), 8), None);
        assert_eq!(pinned(json!({"k": {"$gt": 1}}), 8), None);
        assert_eq!(pinned(json!({"k": {"$in": [1, {"$regex": "a"}]}}), 8), None);
        assert_eq!(pinned(json!({"k": {"$in": []}}), 8), Some(vec![]));
        assert_eq!(pinned(json!({}), 8), None);
    }

    #[test]
    fn key_values() {
        let p = FieldPath::parse("a.b").unwrap();
        assert_eq!(key_value(&json!({"a": {"b": 3}}), &p).unwrap(), json!(3));
        assert_eq!(key_value(&json!({"a": 1}), &p).unwrap(), Value::Null);
        assert_eq!(key_value(&json!({}), &p).unwrap(), Value::Null);
        assert!(key_value(&json!({"a": [{"b": 1}]}), &p).is_err());
        assert!(key_value(&json!({"a": {"b": [1]}}), &p).is_err());
    }
}
