//! Update documents: parsing (`$set`, `$inc`, … or a replacement document) and applying
//! them to a document in memory. Owns no storage.
//!
//! Semantics follow MongoDB's documentation:
//!
//! - Operators: `$set $unset $inc $mul $min $max $rename $setOnInsert $currentDate $push
//!   $addToSet $pop $pull $pullAll`. Anything else is an "Unknown modifier" error.
//! - Paths are dotted; missing intermediate fields are created as embedded documents,
//!   numeric segments index into arrays (setting past the end pads with `null`), and
//!   creating a field inside a scalar is an error. Positional forms: `$` (the element the
//!   query filter matched), `$[]` (every element) and `$[<id>]` (elements matching the
//!   `arrayFilters` entry for `<id>`).
//! - Operators are applied in the order of their field paths (string segments byte-wise,
//!   numeric segments numerically, before string ones), as MongoDB 5.0+ does: fields an
//!   update creates are appended at the end of their document in that order. A field that
//!   already exists keeps its position; `$rename` removes the source (and any existing
//!   target) and appends the target.
//! - `$currentDate` (with `true`, `{$type: "date"}` or `{$type: "timestamp"}`) stores the
//!   extended-JSON date `{"$date": "YYYY-MM-DDTHH:MM:SS.mmmZ"}` built from
//!   [`ApplyContext::now_millis`]. Timestamps use the same representation.
//! - Integer arithmetic (`$inc`, `$mul`) stays integral and is checked: a result that
//!   fits neither `i64` nor `u64` is an `integer overflow` error. Any float operand makes
//!   the result a float; a non-finite float result is an error (JSON cannot hold it).
//! - `_id` is immutable: operators that always change a field (`$unset`, `$rename`,
//!   `$inc`, `$mul`, `$currentDate` and the array operators) are rejected on `_id` at
//!   parse time; `$set`, `$setOnInsert`, `$min` and `$max` may name `_id`, and
//!   [`Update::apply`] fails if the `_id` the document had before ends up different (type
//!   included: `{$set: {_id: 1.0}}` on `_id: 1` fails, as in MongoDB). A replacement
//!   without `_id` keeps the document's `_id` (first in field order); one with an `_id`
//!   MongoDB holds different fails the same way, while one it holds equal (`1.0` for `1`,
//!   the same canonical key) is stored as given.
//! - An operator update with only empty operands (`{$set: {}}`) is a no-op, as in
//!   MongoDB 5.0+.
//! - [`Update::apply`] reports whether the document changed (MongoDB's `nModified`): a
//!   change is any difference in values, value types or field order.

mod apply;
mod parse;
mod path;
mod positional;
mod seed;

#[cfg(test)]
mod tests;

use crate::error::{Error, Result};
use crate::id::id_key;
use crate::query::Filter;
use crate::value::FieldPath;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

pub(crate) use apply::civil_from_days;
pub use apply::date_value;
pub use seed::{replacement_seed, upsert_seed};

/// A parsed update: operators or a replacement document.
#[derive(Debug, Clone)]
pub struct Update {
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    /// A replacement document (an object without `$` keys at the top level).
    Replacement(Value),
    /// Operator entries, sorted in application order, and the parsed array filters.
    Operators {
        entries: Vec<parse::Entry>,
        array_filters: BTreeMap<String, Filter>,
    },
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
    ///
    /// A document whose first key starts with `$` is an operator update; any other
    /// object (including `{}`) is a replacement. Every validation that does not need the
    /// target document happens here (see the module docs).
    pub fn parse(update: &Value, array_filters: Option<&[Value]>) -> Result<Update> {
        parse::parse(update, array_filters).map(|kind| Update { kind })
    }

    /// True for a replacement document (no operators).
    pub fn is_replacement(&self) -> bool {
        matches!(self.kind, Kind::Replacement(_))
    }

    /// The replacement document, for a replacement update.
    pub fn replacement(&self) -> Option<&Value> {
        match &self.kind {
            Kind::Replacement(doc) => Some(doc),
            Kind::Operators { .. } => None,
        }
    }

    /// The fields an operator update may change, each cut before its first positional
    /// segment (`a.$[].b` → `a`, `$rename` contributes source and target), in
    /// application order. `None` for a replacement, which may change every field.
    pub fn touched_paths(&self) -> Option<Vec<FieldPath>> {
        match &self.kind {
            Kind::Replacement(_) => None,
            Kind::Operators { entries, .. } => Some(
                entries
                    .iter()
                    .flat_map(|e| e.paths())
                    .filter_map(|p| p.static_prefix())
                    .collect(),
            ),
        }
    }

    /// Applies the update to `doc` in place. Returns whether the document changed. On
    /// error `doc` may be partially modified; callers apply to a copy.
    ///
    /// `doc` must be an object. For a replacement, `doc`'s `_id` (if any) is kept and
    /// the replacement may not change it.
    pub fn apply(&self, doc: &mut Value, ctx: &ApplyContext<'_>) -> Result<bool> {
        if !doc.is_object() {
            return Err(Error::update(
                "update",
                "",
                "the target document must be an object",
            ));
        }
        let before = doc.clone();
        match &self.kind {
            Kind::Replacement(replacement) => apply_replacement(doc, replacement)?,
            Kind::Operators {
                entries,
                array_filters,
            } => {
                apply::apply_entries(doc, entries, array_filters, ctx)?;
                check_id_unchanged(&before, doc, "update")?;
            }
        }
        if ctx.is_insert {
            move_id_first(doc);
        }
        Ok(!identical(&before, doc))
    }
}

/// What [`Update::apply_tracked`] did.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tracked {
    /// Not applied: the update is a replacement, or the document is being inserted by
    /// an upsert. Apply it with [`Update::apply`].
    Untracked,
    /// Applied; the document did not change.
    Unchanged,
    /// Applied; the document changed. Only the fields the update may change differ.
    Changed(TouchedFields),
}

/// The top-level fields an update may change, before and after it, each map in
/// document order: everything else is the same in both versions of the document, so
/// comparing these tells what the update changed (see [`Update::apply_tracked`]).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TouchedFields {
    /// The fields present before the update.
    pub(crate) before: Map<String, Value>,
    /// The fields present after it.
    pub(crate) after: Map<String, Value>,
}

impl Update {
    /// The distinct top-level fields an operator update may change (`$rename`: source
    /// and target); `None` for a replacement, which may change any field.
    fn top_fields(&self) -> Option<Vec<&str>> {
        let Kind::Operators { entries, .. } = &self.kind else {
            return None;
        };
        let mut fields: Vec<&str> = Vec::with_capacity(entries.len() + 1);
        for entry in entries {
            for path in entry.paths() {
                let field = path.top_field()?;
                if !fields.contains(&field) {
                    fields.push(field);
                }
            }
        }
        Some(fields)
    }

    /// [`apply`](Self::apply) without copying the document: only the top-level fields
    /// the update may change are copied before it runs. The outcome (the document, the
    /// error, whether it changed) is the one `apply` gives; a caller that needs the
    /// document as it was gets the changed fields' old values in [`TouchedFields`].
    /// On error `doc` may be partially modified, as with `apply`.
    pub(crate) fn apply_tracked(&self, doc: &mut Value, ctx: &ApplyContext<'_>) -> Result<Tracked> {
        if ctx.is_insert {
            return Ok(Tracked::Untracked);
        }
        let (Some(fields), Value::Object(map)) = (self.top_fields(), &*doc) else {
            return Ok(Tracked::Untracked);
        };
        let Kind::Operators {
            entries,
            array_filters,
        } = &self.kind
        else {
            return Ok(Tracked::Untracked);
        };
        let before = positioned(map, &fields);
        apply::apply_entries(doc, entries, array_filters, ctx)?;
        let Value::Object(map) = &*doc else {
            return Err(Error::update(
                "update",
                "",
                "the target document must be an object",
            ));
        };
        let after = positioned(map, &fields);
        // `_id` can only have changed if the update names it.
        if let Some((_, old)) = before.iter().find(|(k, _)| *k == "_id") {
            match after.iter().find(|(k, _)| *k == "_id") {
                Some((_, (_, new))) if identical(&old.1, new) => {}
                _ => {
                    return Err(Error::update(
                        "update",
                        "_id",
                        "Performing an update on the path '_id' would modify the immutable \
                         field '_id'",
                    ))
                }
            }
        }
        // Untouched fields keep their values and their order among themselves, so the
        // document is unchanged exactly when every touched field has the same presence,
        // position and value.
        let same = before.len() == after.len()
            && before
                .iter()
                .zip(&after)
                .all(|((k1, (i1, v1)), (k2, (i2, v2)))| k1 == k2 && i1 == i2 && identical(v1, v2));
        if same {
            return Ok(Tracked::Unchanged);
        }
        Ok(Tracked::Changed(TouchedFields {
            before: into_map(before),
            after: into_map(after),
        }))
    }
}

/// The fields of `map` among `fields` that are present, with their positions, in
/// document order. (A scan: `serde_json::Map` does not expose positions.)
fn positioned<'f>(map: &Map<String, Value>, fields: &[&'f str]) -> Vec<(&'f str, (usize, Value))> {
    let mut out = Vec::with_capacity(fields.len());
    for (i, (k, v)) in map.iter().enumerate() {
        if let Some(f) = fields.iter().find(|f| **f == k.as_str()) {
            out.push((*f, (i, v.clone())));
            if out.len() == fields.len() {
                break;
            }
        }
    }
    out
}

fn into_map(fields: Vec<(&str, (usize, Value))>) -> Map<String, Value> {
    fields
        .into_iter()
        .map(|(k, (_, v))| (k.to_string(), v))
        .collect()
}

/// Replaces `doc` with `replacement`, keeping `doc`'s `_id` when the replacement has none.
///
/// A replacement `_id` must equal the old one as MongoDB compares values (its
/// `ObjectReplaceExecutor` uses `compareWithBSONElement`), which for an `_id` is
/// pocketdb's canonical key ([`id_key`]): `1` may be replaced by `1.0`, and the document
/// then stores the replacement's `1.0`, as MongoDB does.
fn apply_replacement(doc: &mut Value, replacement: &Value) -> Result<()> {
    let old_id = doc.get("_id").cloned();
    let mut new_doc = replacement.clone();
    if let (Some(old), Some(new)) = (&old_id, new_doc.get("_id")) {
        if id_key(old) != id_key(new) {
            return Err(Error::update(
                "replacement",
                "_id",
                format!(
                    "After applying the update, the (immutable) field '_id' was found to \
                     have been altered to _id: {new}"
                ),
            ));
        }
    }
    if let (Some(old), Value::Object(map)) = (old_id, &mut new_doc) {
        if !map.contains_key("_id") {
            map.insert("_id".to_string(), old);
        }
    }
    move_id_first(&mut new_doc);
    *doc = new_doc;
    Ok(())
}

/// Fails when an operator update changed `_id`, type included: unlike a replacement,
/// MongoDB's modifiers (`SetNode`) treat a value of another type as a modification
/// (`binaryEqualValues`), and any modification of `_id` is refused, so `{$set: {_id:
/// 1.0}}` on `{_id: 1}` is an error there too.
fn check_id_unchanged(before: &Value, after: &Value, operator: &str) -> Result<()> {
    if let Some(old) = before.get("_id") {
        match after.get("_id") {
            Some(new) if identical(old, new) => {}
            _ => {
                return Err(Error::update(
                    operator,
                    "_id",
                    "Performing an update on the path '_id' would modify the immutable \
                     field '_id'",
                ))
            }
        }
    }
    Ok(())
}

/// Moves `_id` to the first position of an object, as MongoDB stores it.
fn move_id_first(doc: &mut Value) {
    if let Value::Object(map) = doc {
        if map.keys().next().is_some_and(|k| k != "_id") {
            if let Some(id) = map.shift_remove("_id") {
                map.shift_insert(0, "_id".to_string(), id);
            }
        }
    }
}

/// Strict identity of two values: same types (an integer is not identical to a float of
/// equal value), same values, and for objects the same fields in the same order. This is
/// what decides whether an update modified a document.
pub(crate) fn identical(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y.iter())
                    .all(|((ka, va), (kb, vb))| ka == kb && identical(va, vb))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(l, r)| identical(l, r))
        }
        _ => a == b,
    }
}
