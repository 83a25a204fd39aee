//! The document an upsert inserts before applying its update.
//!
//! Follows MongoDB's `jstests/core/upsert_fields.js`: the equalities of the filter seed
//! the document. An operator upsert takes every such equality; a replacement upsert
//! takes only `_id`.

use super::path::{Seg, Walker};
use crate::error::{Error, Result};
use crate::query::{AllItem, Cond, Filter, InItem};
use crate::value::{values_equal, FieldPath};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// One equality the filter requires: a path and the value there.
type Equality<'f> = (&'f FieldPath, &'f Value);

/// The document an operator upsert starts from: the equality conditions of the filter
/// (`{a: 1, "b.c": 2}` → `{a: 1, b: {c: 2}}`), before the update is applied.
///
/// Equalities are what MongoDB extracts after simplifying the filter: implicit equality
/// and `$eq`; `$in` with one value (not a regex); every value of `$all` (one equality
/// each); and these inside `$and` or a `$or` of exactly one clause, at any depth. Every
/// other operator (and `$nor`, a `$or` of several clauses) contributes nothing. `_id`
/// comes first. Two equalities on the same path (`{x: {$all: [1, 2]}}`), or on a path
/// and its prefix (`{x: 1, "x.y": 1}`), are an error, as in MongoDB.
pub fn upsert_seed(filter: &Filter) -> Result<Value> {
    let mut pairs = Vec::new();
    collect(filter, &mut pairs);
    seed_from(pairs)
}

/// The document a replacement upsert starts from: only the `_id` of the filter, found
/// as [`upsert_seed`] finds equalities (`{_id: {$in: [1]}}` seeds `_id: 1`). Equalities
/// on other paths are ignored, conflicts among them too; two equalities on `_id`, or one
/// on a path inside it (`"_id.x"`, which a replacement cannot assemble into a whole
/// `_id`), are errors, as in MongoDB.
pub fn replacement_seed(filter: &Filter) -> Result<Value> {
    let mut pairs = Vec::new();
    collect(filter, &mut pairs);
    pairs.retain(|(path, _)| path.first() == "_id");
    if let Some((path, _)) = pairs.iter().find(|(path, _)| path.len() > 1) {
        return Err(Error::update(
            "upsert",
            path.to_string(),
            format!(
                "field at '_id' must be exactly specified in a replacement upsert, field at \
                 sub-path '{path}' found"
            ),
        ));
    }
    seed_from(pairs)
}

/// Builds the seed document from the equalities, after checking that no two of them
/// name the same path or a path and its prefix.
fn seed_from(mut pairs: Vec<Equality<'_>>) -> Result<Value> {
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    for pair in pairs.windows(2) {
        if let [(a, _), (b, _)] = pair {
            if a.is_prefix_of(b) {
                let message = if a == b {
                    format!("cannot infer query fields to set, path '{a}' is matched twice")
                } else {
                    format!(
                        "cannot infer query fields to set, both paths '{a}' and '{b}' are matched"
                    )
                };
                return Err(Error::update("upsert", b.to_string(), message));
            }
        }
    }
    let mut doc = Value::Object(Map::new());
    let no_filters = BTreeMap::new();
    for (path, value) in pairs {
        let text = path.to_string();
        let walker = Walker {
            op: "upsert",
            text: &text,
            array_filters: &no_filters,
        };
        let segs: Vec<Seg> = path.segments().iter().cloned().map(Seg::Field).collect();
        walker.run(&mut doc, &segs, &mut SeedLeaf(value))?;
    }
    super::move_id_first(&mut doc);
    Ok(doc)
}

/// Gathers the equalities `filter` requires (see [`upsert_seed`]).
fn collect<'f>(filter: &'f Filter, out: &mut Vec<Equality<'f>>) {
    match filter {
        Filter::And(children) => {
            for child in children {
                collect(child, out);
            }
        }
        // MongoDB simplifies a one-clause `$or` to its clause.
        Filter::Or(children) if children.len() == 1 => {
            for child in children {
                collect(child, out);
            }
        }
        Filter::Field { path, cond } => collect_cond(path, cond, out),
        Filter::Or(_) | Filter::Nor(_) | Filter::Expr(_) => {}
    }
}

/// The equalities one condition on `path` requires.
fn collect_cond<'f>(path: &'f FieldPath, cond: &'f Cond, out: &mut Vec<Equality<'f>>) {
    match cond {
        Cond::Eq(value) => out.push((path, value)),
        // A `$in` whose values are all one value (MongoDB keeps `$in` entries distinct) is
        // that equality; a regex entry never is.
        Cond::In(list) => {
            let mut values = list.iter().map(|item| match item {
                InItem::Value(v) => Some(v),
                InItem::Regex(_) => None,
            });
            if let Some(Some(first)) = values.next() {
                if values.all(|v| v.is_some_and(|v| values_equal(v, first))) {
                    out.push((path, first));
                }
            }
        }
        // `$all` is an equality per value; regex and `$elemMatch` items are not.
        Cond::All(items) => {
            for item in items {
                if let AllItem::Value(value) = item {
                    out.push((path, value));
                }
            }
        }
        _ => {}
    }
}

/// Sets a seed field; the sorted, prefix-free paths never meet an existing value.
struct SeedLeaf<'a>(&'a Value);

impl super::path::Leaf for SeedLeaf<'_> {
    fn creates(&self) -> bool {
        true
    }

    fn existing(&mut self, value: &mut Value) -> Result<()> {
        *value = self.0.clone();
        Ok(())
    }

    fn missing(&mut self) -> Result<Option<Value>> {
        Ok(Some(self.0.clone()))
    }
}
