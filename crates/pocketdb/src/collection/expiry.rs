//! Per-collection expiry (seed 001's cache): a collection created with
//! [`CollectionOptions::expire_after`] forgets each document a fixed time after its last
//! write (insert, update or replace).
//!
//! Layout: such a collection's table has a column `expires_at INTEGER` (milliseconds
//! since the Unix epoch) set by two triggers after every insert and every update of
//! `doc`, with a partial index on it. Enforcement:
//!
//! * on read: before reading an expiring collection, an index probe looks for expired
//!   rows; when there are any they are deleted first (through the writer), so a read
//!   never returns an expired document;
//! * on write: every write transaction on the collection deletes its expired rows first,
//!   so an update or upsert never sees one;
//! * in the background: a thread per database (one, whatever the number of expiring
//!   collections; every [`crate::Options::expiry_interval`]) deletes expired rows.
//!
//! Expired documents are deleted through the normal delete path: the change log records
//! each as a `delete`.
//!
//! In buffered mode a write's expiry counts from its acknowledgement: the buffer keeps it
//! beside the document, reads treat an expired buffered document as deleted, and the
//! applier stores that expiry (after deleting what had expired when the write was
//! acknowledged) instead of the triggers' apply-time one.

use super::{Collection, Document};
use crate::database::{CollectionOptions, Database};
use crate::engine::schema::table_name;
use crate::error::{Error, Result};
use crate::query::parse_filter;
use rusqlite::Connection;
use serde_json::{json, Map, Value};
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

/// Catalog option holding the expiry, in seconds.
pub(crate) const OPTION: &str = "expire_after";

impl CollectionOptions {
    /// Documents of the collection expire `after` their last write.
    pub fn expire_after(mut self, after: Duration) -> CollectionOptions {
        let secs = after.as_secs_f64();
        self.options.insert(OPTION.to_string(), json!(secs));
        self
    }
}

fn option_ms(options: &Map<String, Value>) -> Result<Option<i64>> {
    match options.get(OPTION) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(secs) if secs >= 0.0 && secs.is_finite() && secs < 1e12 => {
                Ok(Some((secs * 1000.0).round() as i64))
            }
            _ => Err(Error::InvalidArgument(format!(
                "{OPTION} must be a non-negative number of seconds, got {n}"
            ))),
        },
        Some(other) => Err(Error::InvalidArgument(format!(
            "{OPTION} must be a number of seconds, got {other}"
        ))),
    }
}

/// Validates the expiry option before a collection is created. A sharded or
/// partitioned collection cannot expire: its documents live in member files, which the
/// option (set on the main file's catalog entry) would not reach.
pub(crate) fn validate_options(options: &Map<String, Value>) -> Result<()> {
    let ms = option_ms(options)?;
    if ms.is_some() && crate::shard::member_kind(options).is_some() {
        return Err(Error::InvalidArgument(format!(
            "{OPTION} is not supported on a sharded or partitioned collection"
        )));
    }
    Ok(())
}

/// Sets up (or removes) the expiry machinery of a collection's table, inside the
/// caller's transaction.
pub(crate) fn install(conn: &Connection, name: &str, options: &Map<String, Value>) -> Result<()> {
    let ms = option_ms(options)?;
    let table = table_name(name);
    let tbl = format!("c_{name}");
    let has_column: bool = conn.query_row(
        "SELECT EXISTS(SELECT 1 FROM pragma_table_info(?1) WHERE name = 'expires_at')",
        [&tbl],
        |r| r.get(0),
    )?;
    if ms.is_none() && !has_column {
        return Ok(());
    }
    if !has_column {
        conn.execute_batch(&format!(
            "ALTER TABLE {table} ADD COLUMN expires_at INTEGER"
        ))?;
    }
    let mut stmt = conn.prepare(
        "SELECT type, name FROM sqlite_schema WHERE tbl_name = ?1 AND type IN ('trigger', 'index')
         AND name LIKE '\\_pocketdb\\_ttl%' ESCAPE '\\'",
    )?;
    let old = stmt
        .query_map([&tbl], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    for (kind, obj) in old {
        let kind = if kind == "trigger" {
            "TRIGGER"
        } else {
            "INDEX"
        };
        conn.execute_batch(&format!(
            "DROP {kind} IF EXISTS \"{}\"",
            obj.replace('"', "\"\"")
        ))?;
    }
    match ms {
        Some(ms) => {
            let now = "CAST(unixepoch('subsec') * 1000 AS INTEGER)";
            conn.execute_batch(&format!(
                "CREATE INDEX \"_pocketdb_ttl_{name}\" ON {table}(expires_at)
                     WHERE expires_at IS NOT NULL;
                 CREATE TRIGGER \"_pocketdb_ttl_ins_{name}\" AFTER INSERT ON {table} BEGIN
                     UPDATE {table} SET expires_at = {now} + {ms} WHERE rid = NEW.rid;
                 END;
                 CREATE TRIGGER \"_pocketdb_ttl_upd_{name}\" AFTER UPDATE OF doc ON {table} BEGIN
                     UPDATE {table} SET expires_at = {now} + {ms} WHERE rid = NEW.rid;
                 END;
                 UPDATE {table} SET expires_at = {now} + {ms};"
            ))?;
        }
        None => conn.execute_batch(&format!("UPDATE {table} SET expires_at = NULL"))?,
    }
    Ok(())
}

/// The expiry of a collection from the catalog, on `conn`.
fn read_ms(conn: &Connection, name: &str) -> Result<Option<i64>> {
    match crate::database::catalog_options(conn, name)? {
        None => Ok(None),
        Some(options) => option_ms(&options),
    }
}

impl Database {
    /// The cached expiry of a collection, read on `conn` on a miss.
    pub(crate) fn expire_after_in(&self, conn: &Connection, name: &str) -> Result<Option<i64>> {
        if let Some(v) = self
            .inner
            .extras
            .ttl
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
        {
            return Ok(*v);
        }
        let ms = read_ms(conn, name)?;
        self.inner
            .extras
            .ttl
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_string(), ms);
        if ms.is_some() {
            self.start_expiry_thread();
        }
        Ok(ms)
    }

    pub(crate) fn expire_after_ms(&self, name: &str) -> Result<Option<i64>> {
        if let Some(v) = self
            .inner
            .extras
            .ttl
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
        {
            return Ok(*v);
        }
        self.read(|conn| self.expire_after_in(conn, name))
    }

    pub(crate) fn forget_expiry(&self, name: &str) {
        self.inner
            .extras
            .ttl
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
    }

    /// How long documents of `collection` live after their last write; `None` when they
    /// do not expire.
    pub fn expire_after(&self, collection: &str) -> Result<Option<Duration>> {
        crate::engine::schema::validate_collection_name(collection)?;
        Ok(self
            .expire_after_ms(collection)?
            .map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0))))
    }

    /// Sets (or with `None` removes) the expiry of a collection, creating it if needed.
    /// Documents already stored count their time from now. Setting one on a sharded or
    /// partitioned collection fails with `Error::Shard` (its documents live in member
    /// files, which expiry does not reach).
    pub fn set_expire_after(&self, collection: &str, after: Option<Duration>) -> Result<()> {
        let coll = self.collection::<Value>(collection);
        let result = coll.write(|conn| {
            let text: String = conn.query_row(
                "SELECT options FROM _pocketdb_collections WHERE name = ?1",
                [collection],
                |r| r.get(0),
            )?;
            let mut options: Map<String, Value> = serde_json::from_str(&text)?;
            if after.is_some() && crate::shard::member_kind(&options).is_some() {
                return Err(Error::Shard {
                    collection: collection.to_string(),
                    message: format!(
                        "{OPTION} is not supported on a sharded or partitioned collection \
                         (its documents live in member files)"
                    ),
                });
            }
            match after {
                Some(d) => {
                    options.insert(OPTION.to_string(), json!(d.as_secs_f64()));
                }
                None => {
                    options.shift_remove(OPTION);
                }
            }
            install(conn, collection, &options)?;
            conn.execute(
                "UPDATE _pocketdb_collections SET options = ?2 WHERE name = ?1",
                [collection, &Value::Object(options).to_string()],
            )?;
            Ok(())
        });
        self.forget_expiry(collection);
        result
    }

    /// Deletes expired documents of `collection` when there are any (through the
    /// writer). Called before reads.
    pub(crate) fn expire_due(&self, name: &str) -> Result<()> {
        if self.expire_after_ms(name)?.is_none() {
            return Ok(());
        }
        let sql = format!(
            "SELECT EXISTS(SELECT 1 FROM {} WHERE expires_at <= ?1)",
            table_name(name)
        );
        let now = crate::changes::now_millis();
        let due: bool = self.read(|conn| {
            if !self.has_collection(conn, name)? {
                return Ok(false);
            }
            Ok(conn.query_row(&sql, [now], |r| r.get(0))?)
        })?;
        if !due {
            return Ok(());
        }
        let Some(buffer) = self.buffer() else {
            self.collection::<Value>(name).write(|_| Ok(()))?;
            return Ok(());
        };
        // Not through the buffer's gate: a synchronous write waits there until every
        // buffered write is applied, and a buffered writer (which reads stored rows, so
        // comes here, holding the gate's shared side) would wait for itself. Expired rows
        // are deleted whatever is pending, except those of documents a pending write
        // replaces: the applier deletes those, counting from that write's
        // acknowledgement (a write acknowledged while the document was live keeps it).
        let pending: HashSet<String> = buffer.snapshot(name).into_iter().map(|(k, _)| k).collect();
        let coll = self.collection::<Value>(name);
        self.write_direct(|conn| {
            if !self.has_collection(conn, name)? {
                return Ok(());
            }
            coll.purge_expired_except(conn, now, &pending)
        })
    }

    /// Deletes the expired documents of every expiring collection now. Returns how
    /// many collections had some.
    pub fn purge_expired(&self) -> Result<usize> {
        let names: Vec<String> = self.read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT name FROM _pocketdb_collections WHERE json_extract(options, '$.expire_after') IS NOT NULL",
            )?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })?;
        let mut purged = 0;
        for name in names {
            if crate::engine::schema::validate_collection_name(&name).is_err() {
                continue;
            }
            let before = self.collection::<Value>(&name).estimated_count()?;
            self.expire_due(&name)?;
            if self.collection::<Value>(&name).estimated_count()? < before {
                purged += 1;
            }
        }
        Ok(purged)
    }

    /// Starts the background expiry thread once per database.
    pub(crate) fn start_expiry_thread(&self) {
        if self
            .inner
            .extras
            .cleaner_started
            .swap(true, Ordering::SeqCst)
        {
            return;
        }
        let weak = Arc::downgrade(&self.inner);
        let interval = self
            .options()
            .expiry_interval
            .max(Duration::from_millis(10));
        let spawned = std::thread::Builder::new()
            .name("pocketdb-expiry".to_string())
            .spawn(move || loop {
                std::thread::sleep(interval);
                let Some(inner) = weak.upgrade() else {
                    return;
                };
                let db = Database { inner };
                if let Err(e) = db.purge_expired() {
                    tracing::warn!(database = db.name(), error = %e, "expiry sweep failed");
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "could not start the expiry thread");
            self.inner
                .extras
                .cleaner_started
                .store(false, Ordering::SeqCst);
        }
    }

    /// Starts the expiry thread when the file has expiring collections (at open).
    pub(crate) fn start_expiry_if_needed(&self) -> Result<()> {
        let any: bool = self.read(|conn| {
            Ok(conn.query_row(
                "SELECT EXISTS(SELECT 1 FROM _pocketdb_collections WHERE json_extract(options, '$.expire_after') IS NOT NULL)",
                [],
                |r| r.get(0),
            )?)
        })?;
        if any {
            self.start_expiry_thread();
        }
        Ok(())
    }
}

impl<T: Document> Collection<T> {
    /// Deletes this collection's expired documents inside the caller's write
    /// transaction.
    pub(crate) fn purge_expired_in(&self, conn: &Connection) -> Result<()> {
        self.purge_expired_at(conn, crate::changes::now_millis())
    }

    /// Deletes the documents of this collection that expired by `now` (ms since the Unix
    /// epoch) inside the caller's write transaction.
    pub(crate) fn purge_expired_at(&self, conn: &Connection, now: i64) -> Result<()> {
        self.purge_expired_except(conn, now, &HashSet::new())
    }

    /// [`purge_expired_at`](Self::purge_expired_at), leaving the documents whose `_id`
    /// keys are in `keep`.
    pub(crate) fn purge_expired_except(
        &self,
        conn: &Connection,
        now: i64,
        keep: &HashSet<String>,
    ) -> Result<()> {
        if self.db.expire_after_in(conn, &self.name)?.is_none() {
            return Ok(());
        }
        // Walked in the order of the expiry index, so that kept rows are passed over
        // once.
        let sql = format!(
            "SELECT expires_at, rid, id FROM {} WHERE expires_at <= ?1 AND (expires_at, rid) > (?2, ?3)
             ORDER BY expires_at, rid LIMIT 1000",
            table_name(&self.name)
        );
        let mut after = (i64::MIN, i64::MIN);
        loop {
            let rows: Vec<(i64, i64, String)> = {
                let mut stmt = conn.prepare_cached(&sql)?;
                let rows = stmt.query_map(rusqlite::params![now, after.0, after.1], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?;
                rows.collect::<rusqlite::Result<Vec<_>>>()?
            };
            let Some((at, rid, _)) = rows.last() else {
                return Ok(());
            };
            after = (*at, *rid);
            let keys: Vec<String> = rows
                .into_iter()
                .map(|(_, _, k)| k)
                .filter(|k| !keep.contains(k))
                .collect();
            if keys.is_empty() {
                continue;
            }
            let ids = keys
                .iter()
                .map(|k| serde_json::from_str::<Value>(k))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            let filter = parse_filter(&json!({"_id": {"$in": ids}}))?;
            self.delete_in(conn, &filter, true)?;
        }
    }
}
