//! The document an upsert inserts before applying its update.

use super::path::{Seg, Walker};
use crate::error::{Error, Result};
use crate::query::{Cond, Filter};
use crate::value::FieldPath;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The document an upsert starts from: the equality conditions of the filter
/// (`{a: 1, "b.c": 2}` → `{a: 1, b: {c: 2}}`), before the update is applied.
///
/// Implicit equality and `$eq` contribute, also inside a top-level `$and`; every other
/// operator (and `$or`, `$nor`) contributes nothing. `_id` comes first. Two equalities
/// on the same path, or on a path and its prefix, are an error, as in MongoDB.
pub fn upsert_seed(filter: &Filter) -> Result<Value> {
    let mut pairs: Vec<(&FieldPath, &Value)> = Vec::new();
    collect(filter, &mut pairs);
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

fn collect<'f>(filter: &'f Filter, out: &mut Vec<(&'f FieldPath, &'f Value)>) {
    match filter {
        Filter::And(children) => {
            for child in children {
                collect(child, out);
            }
        }
        Filter::Field {
            path,
            cond: Cond::Eq(value),
        } => out.push((path, value)),
        Filter::Field { .. } | Filter::Or(_) | Filter::Nor(_) | Filter::Expr(_) => {}
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
