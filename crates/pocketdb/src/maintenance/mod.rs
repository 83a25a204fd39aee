//! Operations on whole databases: SQL access and `ATTACH`, online backup and restore,
//! incremental replication through the change log, integrity checks, vacuum,
//! checkpoints, statistics, slow-query tracking and bulk-load mode.
//!
//! # Storage layout (for hand-written SQL)
//!
//! Every database file holds, besides SQLite's own tables:
//!
//! ```text
//! _pocketdb_meta(key TEXT PRIMARY KEY, value TEXT)        format_version, database_id, applied:<id>
//! _pocketdb_collections(name, tbl, options, created_at)  the catalog; options is JSON text
//! _pocketdb_changes(seq, collection, doc_id, op, rev, ts) the change log (ts in ms since epoch)
//! "c_<collection>"(rid INTEGER PRIMARY KEY,               one table per collection
//!                  id TEXT UNIQUE,                        canonical JSON text of _id
//!                  doc BLOB,                              the document as JSONB
//!                  rev INTEGER,                           revision, 1 on insert, +1 per write
//!                  [expires_at INTEGER])                  only with expire_after: ms since epoch
//! ```
//!
//! Read a field with `doc ->> '$.name'` or `json_extract(doc, '$.name')` and a whole
//! document with `json(doc)`; [`Database::sql`](crate::Database::sql) decodes a selected
//! `doc` column into a JSON object by itself. A join across two databases of a client:
//!
//! ```
//! use pocketdb::Client;
//! use serde_json::{json, Value};
//!
//! let dir = tempfile::tempdir()?;
//! let client = Client::open(dir.path())?;
//! let shop = client.database("shop")?;
//! let base = client.database("base")?;
//! base.collection::<Value>("users").insert_one(json!({"_id": "u1", "name": "Ada"}))?;
//! shop.collection::<Value>("orders").insert_one(json!({"_id": 1, "user_id": "u1"}))?;
//! client.attach(&shop, &base, "base")?;
//! let rows = shop.sql(
//!     "SELECT o.doc ->> '$._id' AS order_id, u.doc ->> '$.name' AS name
//!      FROM c_orders o JOIN base.c_users u ON u.doc ->> '$._id' = o.doc ->> '$.user_id'",
//!     &[],
//! )?;
//! assert_eq!(rows, vec![json!({"order_id": 1, "name": "Ada"})]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod backup;
mod bulk;
mod changeset;
mod check;
mod slow;
mod sql;
mod stats;

pub use backup::{BackupProgress, BackupReport};
pub use bulk::BulkLoad;
pub use changeset::{ApplyReport, ChangeSet, ChangeSetEntry};
pub use check::{check_file, CheckpointMode, CheckpointResult, IntegrityReport};
pub use slow::SlowQuery;
pub use stats::{CacheStats, CollectionStats, DatabaseStats, IndexStats};

pub(crate) use sql::Attachment;

use rusqlite::Connection;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;

/// Per-database state of the maintenance layer, kept in the database's shared handle.
#[derive(Default)]
pub(crate) struct DbExtras {
    /// Databases attached under an alias (applied to SQL connections).
    pub(crate) attachments: Mutex<Vec<Attachment>>,
    /// The read-only connection serving `sql()` and SQL joins (file databases).
    pub(crate) sql_conn: Mutex<Option<Connection>>,
    /// `expire_after` of collections in milliseconds, `None` for collections without.
    pub(crate) ttl: Mutex<HashMap<String, Option<i64>>>,
    /// Whether the background expiry thread runs.
    pub(crate) cleaner_started: AtomicBool,
    /// The most recent slow queries.
    pub(crate) slow: Mutex<VecDeque<SlowQuery>>,
    /// Bulk-load nesting depth and the settings to restore.
    pub(crate) bulk: Mutex<bulk::BulkState>,
}
