//! pocketdb: an embedded, local-first document database on SQLite with MongoDB's query
//! and update semantics.
//!
//! ```
//! use pocketdb::Database;
//! use serde_json::{json, Value};
//!
//! let db = Database::memory()?;
//! let users = db.collection::<Value>("users");
//! users.insert_one(json!({"name": "Ada", "age": 36}))?;
//! let adults = users.find(json!({"age": {"$gte": 18}}))?.sort(json!({"name": 1})).to_vec()?;
//! assert_eq!(adults.len(), 1);
//! # Ok::<(), pocketdb::Error>(())
//! ```

#![warn(missing_docs)]

pub mod aggregate;
pub mod changes;
pub mod client;
pub mod collection;
pub mod command;
pub mod database;
pub mod engine;
pub mod error;
pub mod id;
pub mod index;
pub mod live;
pub mod maintenance;
pub mod plugin;
pub mod query;
pub mod shard;
pub mod update;
pub mod value;

pub use aggregate::{AggregateCursor, AggregateOptions};
pub use changes::{
    Change, ChangeEvent, ChangeOp, ChangeRetention, ChangeStream, FullDocument, UpdateDescription,
    WatchHandle, WatchOptions,
};
pub use client::Client;
pub use collection::{
    BulkWriteResult, Collection, Cursor, DeleteResult, Document, Explain, FindAndModifyOutcome,
    FindOneAndModifyOptions, InsertManyOptions, InsertManyResult, InsertOneResult, LookupOutput,
    LookupSpec, LookupStrategy, MissingReference, Modification, PlanCacheStats, PlanCacheUse,
    PopulateSpec, Populated, ReturnDocument, UpdateOptions, UpdateResult, WriteModel,
    PLAN_CACHE_CAPACITY,
};
pub use database::{CollectionOptions, Database};
pub use engine::{
    BufferEvent, BufferOptions, BufferStats, CheckpointOptions, CheckpointStats, CommitStats,
    Durability, FsyncPolicy, JournalMode, Options, Synchronous,
};
pub use error::{BulkWriteFailure, Error, Result, WriteError};
pub use index::{
    parse_date_millis, IndexBuildPhase, IndexInfo, IndexModel, IndexOptions, IndexProgress,
};
pub use live::{
    LiveDiff, LiveHandle, LiveItem, LiveMove, LiveQuery, LiveStats, LiveSubscription, LiveUpdate,
};
pub use maintenance::{
    check_file, ApplyReport, BackupProgress, BackupReport, BulkLoad, ChangeSet, ChangeSetEntry,
    CheckpointMode, CheckpointResult, DatabaseStats, IntegrityReport,
};
pub use query::{Filter, QueryBuilder, SortOrder};
pub use shard::{
    CollectionKind, CollectionOps, DocumentStream, FindSpec, PartitionBy, PartitionStats,
    PartitionedCollection, ShardKey, ShardOptions, ShardedCollection, ShardedCursor, TimeBucket,
};
