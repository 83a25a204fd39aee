//! [`CollectionOps`]: the method set [`Collection`] and [`ShardedCollection`] share, as
//! a trait over untyped documents, so code that takes a collection by name (the command
//! layer, the CLI, the shell) works the same on a single-file, sharded or partitioned
//! collection. [`Database::resolve_collection`] picks the right one from the catalog.

use super::{ShardedCollection, PARTITIONED, SHARDED};
use crate::aggregate::{AggregateCursor, AggregateOptions};
use crate::collection::Collection;
use crate::database::Database;
use crate::error::Result;
use crate::index::{IndexInfo, IndexModel};
use crate::{
    BulkWriteResult, DeleteResult, FindAndModifyOutcome, FindOneAndModifyOptions,
    InsertManyOptions, InsertManyResult, InsertOneResult, Modification, UpdateOptions,
    UpdateResult, WriteModel,
};
use serde_json::Value;

/// A stream of result documents.
pub type DocumentStream = Box<dyn Iterator<Item = Result<Value>> + Send>;

/// The cursor options of [`CollectionOps::find_with`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FindSpec {
    /// Sort specification (`{"field": 1}`).
    pub sort: Option<Value>,
    /// Projection specification.
    pub projection: Option<Value>,
    /// Documents to skip.
    pub skip: Option<u64>,
    /// Most documents to return (MongoDB's meaning of a negative limit).
    pub limit: Option<i64>,
    /// Whether a sort done in memory may spill to disk (see [`Cursor::allow_disk_use`];
    /// `None`: the cursor's default, true).
    ///
    /// [`Cursor::allow_disk_use`]: crate::Cursor::allow_disk_use
    pub allow_disk_use: Option<bool>,
}

/// What kind of collection a name stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CollectionKind {
    /// One table in the database's file.
    Plain,
    /// Hash shards over several files.
    Sharded,
    /// Time or prefix partitions over several files.
    Partitioned,
}

/// The operations every kind of collection offers on untyped documents. Each method
/// behaves as the inherent method of the same name on [`Collection`] or
/// [`ShardedCollection`] (see those for the guarantees, which differ: a sharded write
/// that touches several members is not atomic).
pub trait CollectionOps: Send + Sync + std::fmt::Debug {
    /// The collection's name.
    fn name(&self) -> &str;
    /// The database whose catalog holds the collection.
    fn database(&self) -> &Database;
    /// Which kind of collection this is.
    fn kind(&self) -> CollectionKind;
    /// `find` with cursor options, as a stream of documents.
    fn find_with(&self, filter: Value, spec: &FindSpec) -> Result<DocumentStream>;
    /// Counts matching documents.
    fn count_documents(&self, filter: Value) -> Result<u64>;
    /// Counts every document, from metadata where possible.
    fn estimated_count(&self) -> Result<u64>;
    /// Distinct values of `field` among matching documents.
    fn distinct(&self, field: &str, filter: Value) -> Result<Vec<Value>>;
    /// Inserts one document.
    fn insert_one(&self, document: Value) -> Result<InsertOneResult>;
    /// Inserts documents.
    fn insert_many_with(
        &self,
        documents: Vec<Value>,
        options: InsertManyOptions,
    ) -> Result<InsertManyResult>;
    /// Updates the first matching document.
    fn update_one_with(
        &self,
        filter: Value,
        update: Value,
        options: &UpdateOptions,
    ) -> Result<UpdateResult>;
    /// Updates every matching document.
    fn update_many_with(
        &self,
        filter: Value,
        update: Value,
        options: &UpdateOptions,
    ) -> Result<UpdateResult>;
    /// Replaces the first matching document.
    fn replace_one_with(
        &self,
        filter: Value,
        replacement: Value,
        upsert: bool,
    ) -> Result<UpdateResult>;
    /// Deletes the first matching document.
    fn delete_one(&self, filter: Value) -> Result<DeleteResult>;
    /// Deletes every matching document.
    fn delete_many(&self, filter: Value) -> Result<DeleteResult>;
    /// MongoDB's `findAndModify`.
    fn find_and_modify(
        &self,
        filter: Value,
        modification: Modification,
        options: &FindOneAndModifyOptions,
    ) -> Result<FindAndModifyOutcome<Value>>;
    /// Runs several writes in order.
    fn bulk_write(&self, models: Vec<WriteModel>, ordered: bool) -> Result<BulkWriteResult>;
    /// Runs an aggregation pipeline.
    fn aggregate_with(&self, pipeline: Value, options: AggregateOptions)
        -> Result<AggregateCursor>;
    /// Creates indexes; returns their names.
    fn create_indexes(&self, models: &[IndexModel]) -> Result<Vec<String>>;
    /// Lists the indexes, `_id_` first.
    fn list_indexes(&self) -> Result<Vec<IndexInfo>>;
    /// Drops one index by name.
    fn drop_index(&self, name: &str) -> Result<()>;
    /// Drops every index but `_id_`.
    fn drop_indexes(&self) -> Result<usize>;
    /// Drops the collection (for a sharded or partitioned one, every member file);
    /// false when it did not exist.
    fn drop_collection(&self) -> Result<bool>;
}

impl Database {
    /// The collection `name` as whatever kind the catalog says it is: a
    /// [`ShardedCollection`] for a sharded or partitioned name, a plain [`Collection`]
    /// otherwise (including a name that does not exist yet, as [`Database::collection`]).
    ///
    /// ```
    /// use pocketdb::{CollectionKind, Database, ShardOptions};
    /// use serde_json::json;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let db = Database::open(dir.path().join("app.db"))?;
    /// db.create_sharded_collection("events", ShardOptions::new(2))?;
    /// let events = db.resolve_collection("events")?;
    /// assert_eq!(events.kind(), CollectionKind::Sharded);
    /// events.insert_one(json!({"_id": 1, "type": "view"}))?;
    /// assert_eq!(events.count_documents(json!({"type": "view"}))?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn resolve_collection(&self, name: &str) -> Result<Box<dyn CollectionOps>> {
        let spread = self.collection_options(name)?.is_some_and(|o| {
            o.options.contains_key(SHARDED) || o.options.contains_key(PARTITIONED)
        });
        if spread {
            Ok(Box::new(ShardedCollection::<Value>::from_spread(
                self.open_spread(name)?,
            )))
        } else {
            Ok(Box::new(self.collection::<Value>(name)))
        }
    }
}

/// Applies a [`FindSpec`] to a cursor of either kind (same builder method names).
macro_rules! with_spec {
    ($cursor:expr, $spec:expr) => {{
        let spec: &FindSpec = $spec;
        let mut cursor = $cursor;
        if let Some(sort) = &spec.sort {
            cursor = cursor.sort(sort.clone());
        }
        if let Some(projection) = &spec.projection {
            cursor = cursor.projection(projection.clone());
        }
        if let Some(skip) = spec.skip {
            cursor = cursor.skip(skip);
        }
        if let Some(limit) = spec.limit {
            cursor = cursor.limit(limit);
        }
        if let Some(allow) = spec.allow_disk_use {
            cursor = cursor.allow_disk_use(allow);
        }
        cursor
    }};
}

/// The trait methods delegate to the inherent methods of the same name, which Rust
/// resolves first.
macro_rules! shared_methods {
    () => {
        fn name(&self) -> &str {
            self.name()
        }

        fn database(&self) -> &Database {
            self.database()
        }

        fn count_documents(&self, filter: Value) -> Result<u64> {
            self.count_documents(filter)
        }

        fn estimated_count(&self) -> Result<u64> {
            self.estimated_count()
        }

        fn distinct(&self, field: &str, filter: Value) -> Result<Vec<Value>> {
            self.distinct(field, filter)
        }

        fn insert_one(&self, document: Value) -> Result<InsertOneResult> {
            self.insert_one(document)
        }

        fn insert_many_with(
            &self,
            documents: Vec<Value>,
            options: InsertManyOptions,
        ) -> Result<InsertManyResult> {
            self.insert_many_with(documents, options)
        }

        fn update_one_with(
            &self,
            filter: Value,
            update: Value,
            options: &UpdateOptions,
        ) -> Result<UpdateResult> {
            self.update_one_with(filter, update, options)
        }

        fn update_many_with(
            &self,
            filter: Value,
            update: Value,
            options: &UpdateOptions,
        ) -> Result<UpdateResult> {
            self.update_many_with(filter, update, options)
        }

        fn replace_one_with(
            &self,
            filter: Value,
            replacement: Value,
            upsert: bool,
        ) -> Result<UpdateResult> {
            self.replace_one_with(filter, replacement, upsert)
        }

        fn delete_one(&self, filter: Value) -> Result<DeleteResult> {
            self.delete_one(filter)
        }

        fn delete_many(&self, filter: Value) -> Result<DeleteResult> {
            self.delete_many(filter)
        }

        fn find_and_modify(
            &self,
            filter: Value,
            modification: Modification,
            options: &FindOneAndModifyOptions,
        ) -> Result<FindAndModifyOutcome<Value>> {
            self.find_and_modify(filter, modification, options)
        }

        fn bulk_write(&self, models: Vec<WriteModel>, ordered: bool) -> Result<BulkWriteResult> {
            self.bulk_write(models, ordered)
        }

        fn aggregate_with(
            &self,
            pipeline: Value,
            options: AggregateOptions,
        ) -> Result<AggregateCursor> {
            self.aggregate_with(pipeline, options)
        }

        fn create_indexes(&self, models: &[IndexModel]) -> Result<Vec<String>> {
            self.create_indexes(models)
        }

        fn list_indexes(&self) -> Result<Vec<IndexInfo>> {
            self.list_indexes()
        }

        fn drop_index(&self, name: &str) -> Result<()> {
            self.drop_index(name)
        }

        fn drop_indexes(&self) -> Result<usize> {
            self.drop_indexes()
        }

        fn drop_collection(&self) -> Result<bool> {
            self.drop()
        }
    };
}

impl CollectionOps for Collection<Value> {
    shared_methods!();

    fn kind(&self) -> CollectionKind {
        CollectionKind::Plain
    }

    fn find_with(&self, filter: Value, spec: &FindSpec) -> Result<DocumentStream> {
        Ok(Box::new(with_spec!(self.find(filter)?, spec)))
    }
}

impl CollectionOps for ShardedCollection<Value> {
    shared_methods!();

    fn kind(&self) -> CollectionKind {
        if self.shard_count().is_some() {
            CollectionKind::Sharded
        } else {
            CollectionKind::Partitioned
        }
    }

    fn find_with(&self, filter: Value, spec: &FindSpec) -> Result<DocumentStream> {
        Ok(Box::new(with_spec!(self.find(filter)?, spec)))
    }
}
