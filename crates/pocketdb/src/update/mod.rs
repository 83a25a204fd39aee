//! Update documents: parsing (`$set`, `$inc`, … or a replacement document) and applying
//! them to a document in memory. Owns no storage.

use crate::error::Result;
use crate::query::Filter;
use serde_json::Value;

/// A parsed update: operators or a replacement document.
#[derive(Debug, Clone)]
pub struct Update {
    _private: (),
}

/// Context of one application of an update.
#[derive(Debug, Clone, Copy)]
pub struct ApplyContext<'a> {
    /// The query filter that selected the document (for the positional `$`).
    pub filter: &'a Filter,
    /// True when the document is being inserted by an upsert (`$setOnInsert` applies).
    pub is_insert: bool,
    /// Milliseconds since the Unix epoch, for `$currentDate`.
    pub now_millis: i64,
}

impl Update {
    /// Parses an update document; `array_filters` are the `arrayFilters` option.
    pub fn parse(update: &Value, array_filters: Option<&[Value]>) -> Result<Update> {
        let _ = (update, array_filters);
        todo!("Update::parse")
    }

    /// True for a replacement document (no operators).
    pub fn is_replacement(&self) -> bool {
        todo!("Update::is_replacement")
    }

    /// Applies the update to `doc` in place. Returns whether the document changed. On
    /// error `doc` may be partially modified; callers apply to a copy.
    pub fn apply(&self, doc: &mut Value, ctx: &ApplyContext<'_>) -> Result<bool> {
        let _ = (doc, ctx);
        todo!("Update::apply")
    }
}

/// The document an upsert starts from: the equality conditions of the filter
/// (`{a: 1, "b.c": 2}` → `{a: 1, b: {c: 2}}`), before the update is applied.
pub fn upsert_seed(filter: &Filter) -> Result<Value> {
    let _ = filter;
    todo!("upsert_seed")
}
