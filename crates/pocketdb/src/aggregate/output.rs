//! The output stages `$out` and `$merge`.
//!
//! `$out` writes the results into a staging collection and renames it over the target in
//! one step, so readers see the old contents or the new, never a mix; a failure leaves the
//! target as it was. `$merge` upserts each result into the target by its `on` fields.
//!
//! A target naming a sharded or partitioned collection is resolved through the catalog:
//! `$merge` writes through the sharded collection (each document reaches the member it
//! routes to; the writes are those of [`crate::ShardedCollection`], not atomic across
//! members), and `$out` is refused with [`Error::Shard`] before anything is written,
//! since replacing a collection whose documents live in member files is not supported.

use super::lookup::Source;
use super::pipeline::{Ctx, Docs};
use crate::collection::populate::NamedCollection;
use crate::error::{Error, Result};
use serde_json::{Map, Value};

/// Where `$out` / `$merge` write.
#[derive(Debug, Clone)]
pub(crate) struct Target(Source);

impl Target {
    pub(crate) fn parse(stage: &str, v: &Value) -> Result<Target> {
        Ok(Target(Source::parse(stage, v)?))
    }

    /// The target as its name resolves in its database's catalog.
    fn collection(&self, stage: &str, ctx: &Ctx) -> Result<NamedCollection> {
        let db = self.0.database(stage, &ctx.db)?;
        crate::engine::schema::validate_collection_name(&self.0.coll)?;
        NamedCollection::resolve(&db.collection(&self.0.coll))
    }

    /// `$out`: replaces the target's documents with `input`.
    pub(crate) fn write(&self, input: Docs, ctx: &Ctx) -> Result<()> {
        let target = match self.collection("$out", ctx)? {
            NamedCollection::Table(c) => c,
            NamedCollection::Spread(s) => {
                return Err(Error::Shard {
                    collection: s.name().to_string(),
                    message: "$out cannot replace a sharded or partitioned collection \
                              (use $merge to write into it)"
                        .to_string(),
                })
            }
        };
        let db = target.database().clone();
        let staging_name = format!(
            "tmp.agg_out.{}.{:08x}",
            &self.0.coll.chars().take(60).collect::<String>(),
            rand::random::<u32>()
        );
        let staging = db.collection::<Value>(&staging_name);
        let result = (|| {
            db.create_collection(&staging_name, Default::default())?;
            let mut batch = Vec::with_capacity(1000);
            for d in input {
                batch.push(d?);
                if batch.len() == 1000 {
                    staging.insert_many(std::mem::take(&mut batch))?;
                }
            }
            if !batch.is_empty() {
                staging.insert_many(batch)?;
            }
            db.rename_collection(&staging_name, target.name(), true)
        })();
        if result.is_err() {
            let _ = staging.drop();
        }
        result
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum WhenMatched {
    Replace,
    KeepExisting,
    Merge,
    Fail,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum WhenNotMatched {
    Insert,
    Discard,
    Fail,
}

/// A parsed `$merge`.
#[derive(Debug, Clone)]
pub(crate) struct Merge {
    into: Target,
    on: Vec<String>,
    when_matched: WhenMatched,
    when_not_matched: WhenNotMatched,
}

impl Merge {
    pub(crate) fn parse(spec: &Value) -> Result<Merge> {
        let name = "$merge";
        let (into, m) = match spec {
            Value::String(_) => (Target::parse(name, spec)?, Map::new()),
            Value::Object(m) => {
                if let Some(k) = m.keys().find(|k| {
                    !matches!(k.as_str(), "into" | "on" | "whenMatched" | "whenNotMatched")
                }) {
                    return Err(Error::pipeline(name, format!("unknown argument '{k}'")));
                }
                let into = m
                    .get("into")
                    .ok_or_else(|| Error::pipeline(name, "missing 'into'"))?;
                (Target::parse(name, into)?, m.clone())
            }
            _ => {
                return Err(Error::pipeline(
                    name,
                    "expects a collection name or an object",
                ))
            }
        };
        let on = match m.get("on") {
            None => vec!["_id".to_string()],
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) if !items.is_empty() => items
                .iter()
                .map(|i| {
                    i.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| Error::pipeline(name, "'on' fields must be strings"))
                })
                .collect::<Result<_>>()?,
            Some(_) => return Err(Error::pipeline(name, "'on' must be a string or an array")),
        };
        let when_matched = match m.get("whenMatched").map(|v| v.as_str()) {
            None | Some(Some("merge")) => WhenMatched::Merge,
            Some(Some("replace")) => WhenMatched::Replace,
            Some(Some("keepExisting")) => WhenMatched::KeepExisting,
            Some(Some("fail")) => WhenMatched::Fail,
            Some(_) => {
                return Err(Error::pipeline(
                    name,
                    "'whenMatched' must be replace, keepExisting, merge or fail (pipelines are not supported)",
                ))
            }
        };
        let when_not_matched = match m.get("whenNotMatched").map(|v| v.as_str()) {
            None | Some(Some("insert")) => WhenNotMatched::Insert,
            Some(Some("discard")) => WhenNotMatched::Discard,
            Some(Some("fail")) => WhenNotMatched::Fail,
            Some(_) => {
                return Err(Error::pipeline(
                    name,
                    "'whenNotMatched' must be insert, discard or fail",
                ))
            }
        };
        Ok(Merge {
            into,
            on,
            when_matched,
            when_not_matched,
        })
    }

    /// Merges every result into the target collection.
    pub(crate) fn write(&self, input: Docs, ctx: &Ctx) -> Result<()> {
        let target = MergeTarget(self.into.collection("$merge", ctx)?);
        for d in input {
            let d = d?;
            let mut filter = Map::new();
            for f in &self.on {
                let v = crate::query::matcher::get_path(
                    &d,
                    &f.split('.').map(str::to_string).collect::<Vec<_>>(),
                )
                .cloned()
                .ok_or_else(|| {
                    Error::pipeline(
                        "$merge",
                        format!("the 'on' field '{f}' is missing from a result document"),
                    )
                })?;
                filter.insert(f.clone(), v);
            }
            let filter = Value::Object(filter);
            let existing = target.find_one(filter.clone())?;
            match (existing, self.when_matched, self.when_not_matched) {
                (Some(_), WhenMatched::KeepExisting, _) => {}
                (Some(_), WhenMatched::Fail, _) => {
                    return Err(Error::pipeline(
                        "$merge",
                        format!("a document matching {filter} already exists (whenMatched: fail)"),
                    ))
                }
                (Some(old), WhenMatched::Replace, _) => {
                    let mut new = d.clone();
                    keep_id(&mut new, &old);
                    target.replace_one(filter, new)?;
                }
                (Some(old), WhenMatched::Merge, _) => {
                    let mut set = d.as_object().cloned().unwrap_or_default();
                    if old.get("_id").is_some() {
                        set.shift_remove("_id");
                    }
                    if !set.is_empty() {
                        target.update_one(filter, serde_json::json!({"$set": set}))?;
                    }
                }
                (None, _, WhenNotMatched::Insert) => {
                    target.insert_one(d)?;
                }
                (None, _, WhenNotMatched::Discard) => {}
                (None, _, WhenNotMatched::Fail) => {
                    return Err(Error::pipeline(
                        "$merge",
                        format!("no document matches {filter} (whenNotMatched: fail)"),
                    ))
                }
            }
        }
        Ok(())
    }
}

/// The collection `$merge` writes into: a plain collection, or a sharded or partitioned
/// one written through its members.
struct MergeTarget(NamedCollection);

impl MergeTarget {
    fn find_one(&self, filter: Value) -> Result<Option<Value>> {
        match &self.0 {
            NamedCollection::Table(c) => c.find_one(filter),
            NamedCollection::Spread(s) => s.find_one(filter),
        }
    }

    fn replace_one(&self, filter: Value, replacement: Value) -> Result<()> {
        match &self.0 {
            NamedCollection::Table(c) => c.replace_one(filter, replacement).map(drop),
            NamedCollection::Spread(s) => s.replace_one(filter, replacement).map(drop),
        }
    }

    fn update_one(&self, filter: Value, update: Value) -> Result<()> {
        match &self.0 {
            NamedCollection::Table(c) => c.update_one(filter, update).map(drop),
            NamedCollection::Spread(s) => s.update_one(filter, update).map(drop),
        }
    }

    fn insert_one(&self, document: Value) -> Result<()> {
        match &self.0 {
            NamedCollection::Table(c) => c.insert_one(document).map(drop),
            NamedCollection::Spread(s) => s.insert_one(document).map(drop),
        }
    }
}

/// A replacement keeps the target's `_id`.
fn keep_id(new: &mut Value, old: &Value) {
    if let (Value::Object(n), Some(id)) = (new, old.get("_id")) {
        n.shift_remove("_id");
        let mut with_id = Map::with_capacity(n.len() + 1);
        with_id.insert("_id".to_string(), id.clone());
        with_id.extend(std::mem::take(n));
        *n = with_id;
    }
}
