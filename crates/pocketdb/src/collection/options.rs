//! Options and results of collection operations, shaped like MongoDB's.

use serde_json::Value;
use std::collections::BTreeMap;

/// Result of `insert_one`.
#[derive(Debug, Clone, PartialEq)]
pub struct InsertOneResult {
    /// The `_id` of the inserted document (generated when the document had none).
    pub inserted_id: Value,
}

/// Result of `insert_many`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct InsertManyResult {
    /// `_id`s of the inserted documents, keyed by position in the request.
    pub inserted_ids: BTreeMap<usize, Value>,
}

/// Options of `insert_many`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InsertManyOptions {
    /// Ordered (default): stop at the first failing document; the ones before it stay
    /// inserted. Unordered: try every document and report all failures.
    pub ordered: bool,
}

impl Default for InsertManyOptions {
    fn default() -> Self {
        InsertManyOptions { ordered: true }
    }
}

/// Result of updates and replacements.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UpdateResult {
    /// Documents the filter matched.
    pub matched_count: u64,
    /// Documents actually changed (an update that changes nothing is not counted).
    pub modified_count: u64,
    /// `_id` of the document inserted by an upsert.
    pub upserted_id: Option<Value>,
}

/// Result of deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeleteResult {
    /// Documents deleted.
    pub deleted_count: u64,
}

/// Options of `update_*` and `replace_one`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UpdateOptions {
    /// Insert a document built from the filter and the update when nothing matches.
    pub upsert: bool,
    /// Filters for `$[<identifier>]` positional updates.
    pub array_filters: Option<Vec<Value>>,
}

impl UpdateOptions {
    /// Options with `upsert` set.
    pub fn upsert() -> UpdateOptions {
        UpdateOptions {
            upsert: true,
            array_filters: None,
        }
    }
}

/// Which version of the document `find_one_and_*` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReturnDocument {
    /// The document as it was before the write (the default, as in MongoDB).
    #[default]
    Before,
    /// The document as written.
    After,
}

/// Options of `find_one_and_update`, `find_one_and_replace` and `find_one_and_delete`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FindOneAndModifyOptions {
    /// Which matching document to pick first.
    pub sort: Option<Value>,
    /// Projection applied to the returned document.
    pub projection: Option<Value>,
    /// Insert when nothing matches (update and replace only).
    pub upsert: bool,
    /// Return the document before or after the write.
    pub return_document: ReturnDocument,
    /// Filters for `$[<identifier>]`.
    pub array_filters: Option<Vec<Value>>,
}

/// One write of a `bulk_write`.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteModel {
    /// Insert a document.
    InsertOne {
        /// The document.
        document: Value,
    },
    /// Update the first matching document.
    UpdateOne {
        /// Which document.
        filter: Value,
        /// Update operators.
        update: Value,
        /// Upsert and array filters.
        options: UpdateOptions,
    },
    /// Update every matching document.
    UpdateMany {
        /// Which documents.
        filter: Value,
        /// Update operators.
        update: Value,
        /// Upsert and array filters.
        options: UpdateOptions,
    },
    /// Replace the first matching document.
    ReplaceOne {
        /// Which document.
        filter: Value,
        /// The new document.
        replacement: Value,
        /// Upsert.
        upsert: bool,
    },
    /// Delete the first matching document.
    DeleteOne {
        /// Which document.
        filter: Value,
    },
    /// Delete every matching document.
    DeleteMany {
        /// Which documents.
        filter: Value,
    },
}

/// Result of a `bulk_write` that fully succeeded.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BulkWriteResult {
    /// Documents inserted.
    pub inserted_count: u64,
    /// Documents matched by updates and replacements.
    pub matched_count: u64,
    /// Documents modified.
    pub modified_count: u64,
    /// Documents deleted.
    pub deleted_count: u64,
    /// Documents upserted.
    pub upserted_count: u64,
    /// `_id`s of inserted documents by request position.
    pub inserted_ids: BTreeMap<usize, Value>,
    /// `_id`s of upserted documents by request position.
    pub upserted_ids: BTreeMap<usize, Value>,
}

impl BulkWriteResult {
    /// The error of a bulk write that had document-level failures, carrying what did
    /// succeed.
    pub(crate) fn into_failure(self, write_errors: Vec<crate::WriteError>) -> crate::Error {
        crate::Error::BulkWrite(Box::new(crate::BulkWriteFailure {
            inserted_ids: self.inserted_ids.into_iter().collect(),
            matched_count: self.matched_count,
            modified_count: self.modified_count,
            deleted_count: self.deleted_count,
            upserted_ids: self.upserted_ids.into_iter().collect(),
            write_errors,
        }))
    }
}

/// The change a [`find_and_modify`](crate::Collection::find_and_modify) makes.
#[derive(Debug, Clone, PartialEq)]
pub enum Modification {
    /// Update operators (`{"$set": …}`).
    Update(Value),
    /// A replacement document.
    Replace(Value),
    /// Delete the document.
    Delete,
}

/// What a find-and-modify did.
#[derive(Debug, Clone, PartialEq)]
pub struct FindAndModifyOutcome<T> {
    /// The document before or after the write (per `return_document`), projected.
    pub document: Option<T>,
    /// True when an existing document was updated or replaced.
    pub updated_existing: bool,
    /// The `_id` of the document inserted by an upsert.
    pub upserted_id: Option<Value>,
}
