//! Bulk writes and multi-index commands on sharded and partitioned collections, with
//! the same signatures as [`Collection`](crate::Collection)'s.
//!
//! A bulk write runs its operations in request order, each routed like the single
//! operation it stands for (`insert_one`, `update_one`, …): runs of consecutive inserts
//! are grouped per member and written in parallel, other operations go one by one. It is
//! **not atomic**, not even on one member: each operation (or run of inserts on one
//! member) commits on its own, so a failure leaves the operations before it written.
//! Document-level errors (a duplicate key, an invalid update) are collected with their
//! request index, as in MongoDB: an ordered bulk write stops at the first, an unordered
//! one goes on; the result then comes back as [`Error::BulkWrite`].

use super::ShardedCollection;
use crate::collection::{is_document_error, Document};
use crate::error::{Error, Result, WriteError};
use crate::index::IndexModel;
use crate::{BulkWriteResult, InsertManyOptions, UpdateResult, WriteModel};
use serde_json::Value;

impl<T: Document> ShardedCollection<T> {
    /// Runs a list of writes in order (see the module docs for what is and is not
    /// atomic). `ordered` stops at the first document-level error.
    pub fn bulk_write(&self, models: Vec<WriteModel>, ordered: bool) -> Result<BulkWriteResult> {
        let this = self.typed::<Value>();
        let mut result = BulkWriteResult::default();
        let mut errors: Vec<WriteError> = Vec::new();
        let mut i = 0;
        while i < models.len() {
            if ordered && !errors.is_empty() {
                break;
            }
            // A run of inserts goes through insert_many, which groups by member.
            let run_end = models[i..]
                .iter()
                .position(|m| !matches!(m, WriteModel::InsertOne { .. }))
                .map_or(models.len(), |p| i + p);
            if run_end > i {
                this.bulk_inserts(&models[i..run_end], i, ordered, &mut result, &mut errors)?;
                i = run_end;
                continue;
            }
            match this.bulk_one(&models[i], i, &mut result) {
                Ok(()) => {}
                Err(error) if is_document_error(&error) => {
                    errors.push(WriteError { index: i, error })
                }
                Err(error) => return Err(error),
            }
            i += 1;
        }
        if errors.is_empty() {
            return Ok(result);
        }
        Err(result.into_failure(errors))
    }

    /// Creates several indexes on every member; returns their names in order.
    pub fn create_indexes(&self, models: &[IndexModel]) -> Result<Vec<String>> {
        models
            .iter()
            .map(|m| self.create_index(m.keys.clone(), m.options.clone()))
            .collect()
    }

    /// Drops every index but `_id_` on every member; returns how many distinct indexes
    /// were dropped.
    pub fn drop_indexes(&self) -> Result<usize> {
        let names: Vec<String> = self
            .list_indexes()?
            .into_iter()
            .map(|info| info.name)
            .filter(|name| name != "_id_")
            .collect();
        for name in &names {
            match self.drop_index(name) {
                Ok(()) | Err(Error::IndexNotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(names.len())
    }
}

impl ShardedCollection<Value> {
    fn bulk_inserts(
        &self,
        models: &[WriteModel],
        offset: usize,
        ordered: bool,
        result: &mut BulkWriteResult,
        errors: &mut Vec<WriteError>,
    ) -> Result<()> {
        let docs: Vec<Value> = models
            .iter()
            .filter_map(|m| match m {
                WriteModel::InsertOne { document } => Some(document.clone()),
                _ => None,
            })
            .collect();
        let (inserted, failed) = match self.insert_many_with(docs, InsertManyOptions { ordered }) {
            Ok(r) => (r.inserted_ids, Vec::new()),
            Err(Error::BulkWrite(failure)) => {
                let failure = *failure;
                (
                    failure.inserted_ids.into_iter().collect(),
                    failure.write_errors,
                )
            }
            Err(e) => return Err(e),
        };
        result.inserted_count += inserted.len() as u64;
        for (index, id) in inserted {
            result.inserted_ids.insert(offset + index, id);
        }
        errors.extend(failed.into_iter().map(|e| WriteError {
            index: offset + e.index,
            error: e.error,
        }));
        Ok(())
    }

    fn bulk_one(
        &self,
        model: &WriteModel,
        index: usize,
        result: &mut BulkWriteResult,
    ) -> Result<()> {
        let mut add = |r: UpdateResult| {
            result.matched_count += r.matched_count;
            result.modified_count += r.modified_count;
            if let Some(id) = r.upserted_id {
                result.upserted_count += 1;
                result.upserted_ids.insert(index, id);
            }
        };
        match model {
            WriteModel::InsertOne { document } => {
                let r = self.insert_one(document)?;
                result.inserted_count += 1;
                result.inserted_ids.insert(index, r.inserted_id);
            }
            WriteModel::UpdateOne {
                filter,
                update,
                options,
            } => add(self.update_one_with(filter.clone(), update.clone(), options)?),
            WriteModel::UpdateMany {
                filter,
                update,
                options,
            } => add(self.update_many_with(filter.clone(), update.clone(), options)?),
            WriteModel::ReplaceOne {
                filter,
                replacement,
                upsert,
            } => add(self.replace_one_with(filter.clone(), replacement, *upsert)?),
            WriteModel::DeleteOne { filter } => {
                result.deleted_count += self.delete_one(filter.clone())?.deleted_count;
            }
            WriteModel::DeleteMany { filter } => {
                result.deleted_count += self.delete_many(filter.clone())?.deleted_count;
            }
        }
        Ok(())
    }
}
