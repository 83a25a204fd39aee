//! Sizes and counters of a database: files, collections, indexes, page cache, slow
//! queries.

use super::SlowQuery;
use crate::database::Database;
use crate::engine::schema::{table_name, validate_collection_name};
use crate::error::Result;
use rusqlite::Connection;
use serde::Serialize;
use std::collections::HashMap;
use std::path::PathBuf;

/// Statistics of one database ([`Database::stats`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatabaseStats {
    /// Database name.
    pub database: String,
    /// The file, `None` in memory.
    pub path: Option<PathBuf>,
    /// Size of the database file in bytes.
    pub file_bytes: u64,
    /// Size of the WAL file in bytes (0 when absent).
    pub wal_bytes: u64,
    /// Page size in bytes.
    pub page_size: u64,
    /// Pages in the database.
    pub page_count: u64,
    /// Unused pages (reclaimed by [`Database::vacuum`]).
    pub freelist_pages: u64,
    /// Entries in the change log.
    pub change_log_entries: u64,
    /// Per collection, by name.
    pub collections: Vec<CollectionStats>,
    /// Page-cache hits and misses over the database's open connections, when available.
    pub cache: Option<CacheStats>,
    /// The most recent queries slower than [`crate::Options::slow_query_threshold`].
    pub slow_queries: Vec<SlowQuery>,
    /// Counters of the plan cache (see [`Database::plan_cache_stats`]).
    pub plan_cache: crate::PlanCacheStats,
    /// Checkpoints run by the background thread and by the writer itself (zero when
    /// the database has no background checkpoint thread).
    pub checkpoints: crate::CheckpointStats,
    /// Write transactions committed and the writes in them: under group commit,
    /// `commits.writes / commits.transactions` is how many writes shared a commit.
    pub commits: crate::CommitStats,
}

/// Statistics of one collection.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CollectionStats {
    /// Collection name.
    pub name: String,
    /// Number of documents.
    pub documents: u64,
    /// Bytes of stored documents (JSONB).
    pub data_bytes: u64,
    /// Bytes of the table's pages (`dbstat`), including free space in them.
    pub table_bytes: u64,
    /// The table's indexes (including the unique `_id` index) with their sizes.
    pub indexes: Vec<IndexStats>,
    /// `expire_after` in milliseconds, if set.
    pub expire_after_ms: Option<i64>,
}

/// Size of one SQLite index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndexStats {
    /// SQLite's name of the index.
    pub name: String,
    /// Bytes of its pages.
    pub bytes: u64,
}

/// Page-cache counters (`sqlite3_db_status`), summed over connections.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CacheStats {
    /// Pages found in the cache.
    pub hits: u64,
    /// Pages read from the file.
    pub misses: u64,
    /// `hits / (hits + misses)`, 1 when nothing was read yet.
    pub hit_ratio: f64,
}

fn page_sizes(conn: &Connection) -> Option<HashMap<String, u64>> {
    let mut stmt = conn
        .prepare("SELECT name, sum(pgsize) FROM dbstat('main') GROUP BY name")
        .ok()?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
        .ok()?;
    let mut out = HashMap::new();
    for row in rows {
        let (name, bytes) = row.ok()?;
        out.insert(name, u64::try_from(bytes).unwrap_or(0));
    }
    Some(out)
}

fn cache_status(conn: &Connection) -> (u64, u64) {
    let read = |op: i32| -> u64 {
        let (mut current, mut high) = (0i32, 0i32);
        // SAFETY: the handle is valid for the connection's lifetime and the connection
        // is borrowed (so not used by another thread) during the call;
        // sqlite3_db_status only reads counters.
        let rc = unsafe {
            rusqlite::ffi::sqlite3_db_status(conn.handle(), op, &mut current, &mut high, 0)
        };
        if rc == rusqlite::ffi::SQLITE_OK {
            u64::try_from(current).unwrap_or(0)
        } else {
            0
        }
    };
    (
        read(rusqlite::ffi::SQLITE_DBSTATUS_CACHE_HIT),
        read(rusqlite::ffi::SQLITE_DBSTATUS_CACHE_MISS),
    )
}

fn file_len(path: Option<PathBuf>) -> u64 {
    path.and_then(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .unwrap_or(0)
}

impl Database {
    /// Counters of the plan cache: plans reused (`hits`), compiled (`misses`), found
    /// stale after an index change (`invalidated`), and the entries kept. Cheap, unlike
    /// [`Database::stats`].
    ///
    /// ```
    /// use pocketdb::Database;
    /// use serde_json::{json, Value};
    ///
    /// let db = Database::memory()?;
    /// let users = db.collection::<Value>("users");
    /// users.insert_one(json!({"age": 30}))?;
    /// users.count_documents(json!({"age": {"$gt": 20}}))?;
    /// users.count_documents(json!({"age": {"$gt": 40}}))?;
    /// let stats = db.plan_cache_stats();
    /// assert_eq!((stats.misses, stats.hits), (1, 1));
    /// # Ok::<(), pocketdb::Error>(())
    /// ```
    pub fn plan_cache_stats(&self) -> crate::PlanCacheStats {
        self.inner.plans.stats()
    }

    /// Sizes and counters: file and WAL sizes, documents and bytes per collection,
    /// index sizes, the page-cache hit ratio and recent slow queries. Reads every page
    /// of the file (through `dbstat`), so it costs a full scan.
    pub fn stats(&self) -> Result<DatabaseStats> {
        let path = self.path().map(|p| p.to_path_buf());
        let wal = path.as_ref().map(|p| {
            let mut s = p.as_os_str().to_owned();
            s.push("-wal");
            PathBuf::from(s)
        });
        let collections = self.list_collections()?;
        let ttl: Vec<Option<i64>> = collections
            .iter()
            .map(|c| self.expire_after_ms(c))
            .collect::<Result<_>>()?;
        let mut stats = self.read(|conn| {
            let pragma = |name: &str| -> Result<u64> {
                let v: i64 = conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))?;
                Ok(u64::try_from(v).unwrap_or(0))
            };
            let sizes = page_sizes(conn);
            let mut index_rows = conn.prepare(
                "SELECT name, tbl_name FROM sqlite_schema WHERE type = 'index' ORDER BY name",
            )?;
            let index_list = index_rows
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut out = Vec::new();
            for (name, expire_after_ms) in collections.iter().zip(&ttl) {
                validate_collection_name(name)?;
                let (documents, data_bytes): (i64, i64) = conn.query_row(
                    &format!(
                        "SELECT count(*), coalesce(sum(length(doc)), 0) FROM {}",
                        table_name(name)
                    ),
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                let tbl = format!("c_{name}");
                let size = |n: &str| sizes.as_ref().and_then(|s| s.get(n)).copied().unwrap_or(0);
                out.push(CollectionStats {
                    name: name.clone(),
                    documents: u64::try_from(documents).unwrap_or(0),
                    data_bytes: u64::try_from(data_bytes).unwrap_or(0),
                    table_bytes: size(&tbl),
                    indexes: index_list
                        .iter()
                        .filter(|(_, t)| *t == tbl)
                        .map(|(i, _)| IndexStats {
                            name: i.clone(),
                            bytes: size(i),
                        })
                        .collect(),
                    expire_after_ms: *expire_after_ms,
                });
            }
            let changes: i64 =
                conn.query_row("SELECT count(*) FROM _pocketdb_changes", [], |r| r.get(0))?;
            Ok(DatabaseStats {
                database: self.name().to_string(),
                path: path.clone(),
                file_bytes: 0,
                wal_bytes: 0,
                page_size: pragma("page_size")?,
                page_count: pragma("page_count")?,
                freelist_pages: pragma("freelist_count")?,
                change_log_entries: u64::try_from(changes).unwrap_or(0),
                collections: out,
                cache: None,
                slow_queries: Vec::new(),
                plan_cache: self.plan_cache_stats(),
                checkpoints: self
                    .inner
                    .pool
                    .checkpointer()
                    .map(|c| c.stats())
                    .unwrap_or_default(),
                commits: self.inner.pool.commit_stats(),
            })
        })?;
        stats.file_bytes = match &path {
            Some(_) => file_len(path.clone()),
            None => stats.page_size * stats.page_count,
        };
        stats.wal_bytes = file_len(wal);
        let (mut hits, mut misses) = (0u64, 0u64);
        self.inner.pool.each_connection(&mut |conn| {
            let (h, m) = cache_status(conn);
            hits += h;
            misses += m;
        });
        stats.cache = Some(CacheStats {
            hits,
            misses,
            hit_ratio: if hits + misses == 0 {
                1.0
            } else {
                hits as f64 / (hits + misses) as f64
            },
        });
        stats.slow_queries = self.slow_queries();
        Ok(stats)
    }
}
