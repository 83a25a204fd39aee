//! A database: one SQLite file (or memory) holding collections, their catalog and the
//! change log.

use crate::changes::{self, Change, ChangeOp};
use crate::collection::{Collection, Document};
use crate::engine::buffer::{self, Buffer, BufferEvent, BufferStats, Op};
use crate::engine::schema::{self, table_name, validate_collection_name};
use crate::engine::{BufferOptions, Durability, Options, Pool};
use crate::error::{Error, Result};
use rusqlite::{Connection, OptionalExtension};
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::path::Path;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// A handle on one database. Cheap to clone (`Arc` inside), `Send + Sync`; all clones
/// share one writer connection and a pool of readers.
///
/// ```
/// use pocketdb::Database;
/// use serde_json::{json, Value};
///
/// let db = Database::memory()?;
/// let users = db.collection::<Value>("users");
/// users.insert_one(json!({"name": "Ada", "age": 36}))?;
/// assert_eq!(db.list_collections()?, vec!["users".to_string()]);
/// # Ok::<(), pocketdb::Error>(())
/// ```
#[derive(Clone)]
pub struct Database {
    pub(crate) inner: Arc<DbInner>,
}

pub(crate) struct DbInner {
    pub(crate) name: String,
    pub(crate) pool: Pool,
    /// Commit notification and fan-out of the change log (watch, live queries).
    pub(crate) hub: Arc<changes::hub::Hub>,
    /// Collections known to have a table, so writes skip the catalog check.
    known: Mutex<HashSet<String>>,
    /// The names of this database's sharded and partitioned collections, read from the
    /// catalog when first needed (`None` again after this handle changes the catalog).
    spreads: Mutex<Option<Arc<HashSet<String>>>>,
    /// The write buffer, in [`Durability::Buffered`] mode.
    pub(crate) buffer: OnceLock<Arc<Buffer>>,
    /// Index catalog cache and TTL monitor.
    pub(crate) indexes: crate::index::DbIndexes,
    /// Compiled plans by filter shape (see `collection::plan_cache`).
    pub(crate) plans: crate::collection::PlanCache,
    /// The client the database was opened through, if any (weak: the client owns its
    /// cache of databases). Lets `$lookup` reach the client's other databases.
    client: std::sync::OnceLock<crate::client::WeakClient>,
    /// State of the maintenance layer (attachments, expiry, slow queries, bulk mode).
    pub(crate) extras: crate::maintenance::DbExtras,
    /// Member databases of this database's sharded and partitioned collections.
    pub(crate) shards: crate::shard::Registry,
    /// Set on a member database by the registry that opened it. The last field, so it
    /// is dropped last, after the connections, threads and buffer are closed: until
    /// then the registry does not open the file again.
    pub(crate) closing: OnceLock<Arc<()>>,
}

impl Drop for DbInner {
    fn drop(&mut self) {
        if let Some(buffer) = self.buffer.get() {
            buffer.shutdown();
        }
    }
}

/// Options recorded in the catalog when a collection is created.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CollectionOptions {
    /// Free-form options kept in the catalog (later layers: schema, TTL, sharding).
    pub options: Map<String, Value>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("name", &self.inner.name)
            .field("path", &self.inner.pool.path())
            .finish()
    }
}

impl Database {
    /// Opens (creating if needed) the database file at `path` with default options.
    pub fn open(path: impl AsRef<Path>) -> Result<Database> {
        Database::open_with(path, Options::default())
    }

    /// Opens (creating if needed) the database file at `path`.
    pub fn open_with(path: impl AsRef<Path>, options: Options) -> Result<Database> {
        let path = path.as_ref();
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        Database::from_pool(name, Pool::open(path, &options)?)
    }

    /// A new, empty in-memory database with default options.
    pub fn memory() -> Result<Database> {
        Database::memory_with(Options::default())
    }

    /// A new, empty in-memory database.
    pub fn memory_with(options: Options) -> Result<Database> {
        Database::from_pool(":memory:".to_string(), Pool::memory(&options)?)
    }

    pub(crate) fn from_pool(name: String, pool: Pool) -> Result<Database> {
        let has_ttl = {
            let conn = pool.writer();
            schema::init(&conn)?;
            crate::index::has_ttl_index(&conn)?
        };
        let hub = changes::hub::Hub::new(&pool.writer(), &name)?;
        let db = Database {
            inner: Arc::new(DbInner {
                name,
                pool,
                hub,
                known: Mutex::new(HashSet::new()),
                spreads: Mutex::new(None),
                buffer: OnceLock::new(),
                indexes: crate::index::DbIndexes::default(),
                plans: Default::default(),
                client: std::sync::OnceLock::new(),
                extras: Default::default(),
                shards: Default::default(),
                closing: OnceLock::new(),
            }),
        };
        if let Durability::Buffered(options) = &db.options().durability {
            db.start_buffer(options.clone())?;
        } else {
            db.replay_orphaned_log()?;
        }
        db.start_expiry_if_needed()?;
        if has_ttl {
            db.inner.indexes.ttl.ensure_started(&db);
        }
        Ok(db)
    }

    /// Replays the buffer log (applying every write it holds that the database has not
    /// applied yet), then starts the buffer and its applier.
    fn start_buffer(&self, options: BufferOptions) -> Result<()> {
        let path = self
            .path()
            .ok_or_else(|| {
                Error::InvalidArgument(
                    "buffered durability needs a database file (the buffer log lives beside it)"
                        .to_string(),
                )
            })?
            .to_path_buf();
        let lock = buffer::lock_logs(&path)?.ok_or_else(|| {
            Error::Buffer(format!(
                "the buffer log of {} is in use by another buffered handle (in this process \
                 or another); one handle at a time may buffer writes to a file",
                path.display()
            ))
        })?;
        let recovered = self.replay_log(&path, options.batch_size)?;
        let applied = applied_seq(&self.inner.pool.writer())?;
        let buffer = Buffer::open(&path, options, applied, recovered, lock)?;
        let weak = Arc::downgrade(&self.inner);
        buffer.start(Box::new(move |ops, last| {
            let inner = weak
                .upgrade()
                .ok_or_else(|| Error::Buffer("the database is closed".to_string()))?;
            crate::collection::apply_buffered(&Database { inner }, ops, last)
        }))?;
        // Only this function sets the cell, once, right after the database is created.
        let _ = self.inner.buffer.set(buffer);
        Ok(())
    }

    /// Applies the writes of the buffer logs the database has not applied yet; returns
    /// how many there were. The caller holds the log lock.
    fn replay_log(&self, path: &Path, batch_size: usize) -> Result<u64> {
        let applied = applied_seq(&self.inner.pool.writer())?;
        let pending = buffer::pending_in_logs(path, applied)?;
        let recovered = pending.len() as u64;
        if recovered > 0 {
            tracing::info!(writes = recovered, "replaying the buffer log");
        }
        let pending: Vec<Arc<Op>> = pending.into_iter().map(Arc::new).collect();
        for chunk in pending.chunks(batch_size.max(1)) {
            let last = chunk.last().map_or(applied, |op| op.seq);
            for (seq, error) in crate::collection::apply_buffered(self, chunk, last)? {
                tracing::warn!(seq, %error, "replayed buffered write dropped");
            }
        }
        Ok(recovered)
    }

    /// Opened without buffering, a file whose last buffered handle did not apply
    /// everything (it crashed, or was killed) still has acknowledged writes in its
    /// buffer log: they are applied now, as a buffered open would, and the logs removed.
    /// Left alone while a buffered handle holds the log (it applies them itself).
    fn replay_orphaned_log(&self) -> Result<()> {
        let Some(path) = self.path().map(Path::to_path_buf) else {
            return Ok(());
        };
        if !buffer::logs_exist(&path) {
            return Ok(());
        }
        let Some(lock) = buffer::lock_logs(&path)? else {
            tracing::debug!("the buffer log is held by a buffered handle; not replayed");
            return Ok(());
        };
        self.replay_log(&path, BufferOptions::default().batch_size)?;
        buffer::remove_logs(&path, &lock)
    }

    pub(crate) fn buffer(&self) -> Option<&Arc<Buffer>> {
        self.inner.buffer.get()
    }

    /// Waits until every buffered write acknowledged before the call is applied to
    /// SQLite. Returns at once for databases that do not buffer. Fails when applying
    /// fails (the writes stay buffered, readable, and are retried).
    pub fn flush(&self) -> Result<()> {
        match self.buffer() {
            Some(b) => b.flush(),
            None => Ok(()),
        }
    }

    /// Flushes the buffer (see [`flush`](Database::flush)) and closes this handle; the
    /// files close when the last clone is dropped.
    pub fn close(self) -> Result<()> {
        self.flush()
    }

    /// Counters of the write buffer; `None` unless the database is in
    /// [`Durability::Buffered`] mode.
    pub fn buffer_stats(&self) -> Option<BufferStats> {
        self.buffer().map(|b| b.stats())
    }

    /// A channel of the buffer's events ([`BufferEvent::Flush`] after each applied batch,
    /// [`BufferEvent::Error`] when something fails in the background). The channel holds
    /// up to `capacity` events; a receiver that falls behind misses events rather than
    /// growing memory. Fails unless the database is buffered.
    pub fn buffer_events(&self, capacity: usize) -> Result<Receiver<BufferEvent>> {
        Ok(self.require_buffer()?.subscribe(capacity))
    }

    /// Runs `callback` on the applier thread for every buffer event. Keep it short: it
    /// delays the applier. Fails unless the database is buffered.
    pub fn on_buffer_event(
        &self,
        callback: impl Fn(&BufferEvent) + Send + Sync + 'static,
    ) -> Result<()> {
        self.require_buffer()?.on_event(Box::new(callback));
        Ok(())
    }

    fn require_buffer(&self) -> Result<&Arc<Buffer>> {
        self.buffer().ok_or_else(|| {
            Error::InvalidArgument("the database is not in buffered durability mode".to_string())
        })
    }

    /// Runs a TTL pass now: deletes, in every collection with a TTL index, the documents
    /// whose date is older than the index's `expire_after_seconds`. Returns how many were
    /// deleted. The background pass calls this every [`Options::ttl_interval`].
    pub fn expire_now(&self) -> Result<u64> {
        let names: Vec<String> = self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT DISTINCT collection FROM _pocketdb_indexes
                 WHERE json_extract(options, '$.expireAfterSeconds') IS NOT NULL",
            )?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })?;
        let mut deleted = 0;
        for name in names {
            deleted += self.collection::<Value>(&name).expire_now()?;
        }
        Ok(deleted)
    }

    /// The database's name (file stem, or `:memory:`).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The file path, `None` for an in-memory database.
    pub fn path(&self) -> Option<&Path> {
        self.inner.pool.path()
    }

    /// The options the database was opened with.
    pub fn options(&self) -> &Options {
        self.inner.pool.options()
    }

    /// A handle on a collection, untyped (`Collection<serde_json::Value>`) or typed
    /// through serde. The collection is created on first write; an invalid name is
    /// reported by the first operation.
    pub fn collection<T: Document>(&self, name: &str) -> Collection<T> {
        Collection::new(self.clone(), name)
    }

    /// Names of the collections, sorted.
    pub fn list_collections(&self) -> Result<Vec<String>> {
        // Taken first: a write applied meanwhile is then in the catalog read after.
        let pending = self.buffer().map(|b| b.storing_collections());
        let mut names = self.read(|conn| {
            let mut stmt =
                conn.prepare_cached("SELECT name FROM _pocketdb_collections ORDER BY name")?;
            let names = stmt.query_map([], |r| r.get::<_, String>(0))?;
            Ok(names.collect::<rusqlite::Result<Vec<_>>>()?)
        })?;
        // A buffered insert creates its collection when it is acknowledged, as in
        // MongoDB, though its table is made when the write is applied.
        if let Some(pending) = pending {
            names.extend(pending);
            names.sort();
            names.dedup();
        }
        Ok(names)
    }

    /// Creates a collection explicitly. Fails with `CollectionExists` when it exists.
    pub fn create_collection(
        &self,
        name: &str,
        options: CollectionOptions,
    ) -> Result<Collection<Value>> {
        validate_collection_name(name)?;
        crate::collection::expiry::validate_options(&options.options)?;
        self.forget_expiry(name);
        self.write(|conn| {
            if collection_exists(conn, name)? {
                return Err(Error::CollectionExists(name.to_string()));
            }
            create_collection_in(conn, name, &options)?;
            Ok(())
        })?;
        self.mark_known(name);
        Ok(self.collection(name))
    }

    /// The options a collection was created with; `None` when it does not exist.
    pub fn collection_options(&self, name: &str) -> Result<Option<CollectionOptions>> {
        validate_collection_name(name)?;
        let pending = self.buffer().is_some_and(|b| b.stores_in(name));
        let options = self.read(|conn| {
            Ok(catalog_options(conn, name)?.map(|options| CollectionOptions { options }))
        })?;
        // Created by a buffered write not applied yet: with the default options.
        Ok(options.or_else(|| pending.then(CollectionOptions::default)))
    }

    /// Drops a collection with its documents. Returns false when it did not exist. A
    /// `drop` entry goes to the change log.
    pub fn drop_collection(&self, name: &str) -> Result<bool> {
        validate_collection_name(name)?;
        let dropped = self.write(|conn| {
            let Some(members) = spread_members(conn, name)? else {
                return Ok(None);
            };
            crate::index::on_drop_collection(conn, name)?;
            conn.execute_batch(&format!("DROP TABLE IF EXISTS {}", table_name(name)))?;
            conn.execute("DELETE FROM _pocketdb_collections WHERE name = ?1", [name])?;
            changes::record(conn, name, "null", ChangeOp::Drop, 0, changes::now_millis())?;
            Ok(Some(members))
        })?;
        self.forget(name);
        self.forget_spreads();
        // A sharded or partitioned collection's member files go with its catalog entry.
        if let Some(Some(kind)) = dropped {
            crate::shard::remove_members(self, name, kind)?;
        }
        Ok(dropped.is_some())
    }

    /// Renames a collection. Fails when `from` does not exist or `to` exists (unless
    /// `drop_target`, which drops `to` first). The change log records a `Drop` of `from`
    /// and an `Insert` of every document under `to` (one entry per document), so that
    /// watchers and replicas fed by change sets follow the rename; earlier entries keep
    /// the name `from`.
    pub fn rename_collection(&self, from: &str, to: &str, drop_target: bool) -> Result<()> {
        validate_collection_name(from)?;
        validate_collection_name(to)?;
        if from == to {
            return Err(Error::InvalidArgument(
                "cannot rename a collection to itself".to_string(),
            ));
        }
        self.write(|conn| {
            let Some(from_members) = spread_members(conn, from)? else {
                return Err(Error::CollectionNotFound(from.to_string()));
            };
            let to_members = spread_members(conn, to)?;
            // Their documents live in member files named after the collection.
            for (name, kind) in [(from, from_members), (to, to_members.flatten())] {
                if let Some(kind) = kind {
                    return Err(Error::Shard {
                        collection: name.to_string(),
                        message: format!(
                            "a collection whose documents live in member files (<db>.{kind}/) \
                             cannot be renamed or replaced by a rename"
                        ),
                    });
                }
            }
            if to_members.is_some() {
                if !drop_target {
                    return Err(Error::CollectionExists(to.to_string()));
                }
                crate::index::on_drop_collection(conn, to)?;
                conn.execute_batch(&format!("DROP TABLE {}", table_name(to)))?;
                conn.execute("DELETE FROM _pocketdb_collections WHERE name = ?1", [to])?;
                changes::record(conn, to, "null", ChangeOp::Drop, 0, changes::now_millis())?;
            }
            conn.execute_batch(&format!(
                "ALTER TABLE {} RENAME TO {}",
                table_name(from),
                table_name(to)
            ))?;
            conn.execute(
                "UPDATE _pocketdb_collections SET name = ?2, tbl = ?3 WHERE name = ?1",
                rusqlite::params![from, to, format!("c_{to}")],
            )?;
            // For readers of the log (watchers, change sets): the old name is dropped and
            // every document is written under the new one, so a replica that applied
            // the log up to here (under the old name) ends up with the same collection.
            // Earlier entries keep the old name: a watcher of it resuming from before the
            // rename sees them, then the drop.
            let now = changes::now_millis();
            changes::record(conn, from, "null", ChangeOp::Drop, 0, now)?;
            conn.execute(
                &format!(
                    "INSERT INTO _pocketdb_changes(collection, doc_id, op, rev, ts, fields)
                     SELECT ?1, id, ?2, rev, ?3, NULL FROM {} ORDER BY rid",
                    table_name(to)
                ),
                rusqlite::params![to, ChangeOp::Insert.as_str(), now],
            )?;
            crate::index::on_rename_collection(conn, from, to)?;
            Ok(())
        })?;
        self.forget(from);
        self.forget(to);
        self.forget_spreads();
        Ok(())
    }

    /// Change-log entries of every collection with `seq > since`, oldest first, at most
    /// `limit`.
    pub fn changes_since(&self, since: i64, limit: usize) -> Result<Vec<Change>> {
        self.read(|conn| changes::read_since(conn, None, since, limit))
    }

    /// The sequence number of the newest change-log entry (0 when empty).
    pub fn last_change_seq(&self) -> Result<i64> {
        self.read(|conn| {
            Ok(conn.query_row(
                "SELECT coalesce(max(seq), 0) FROM _pocketdb_changes",
                [],
                |r| r.get(0),
            )?)
        })
    }

    /// The client this database was opened through, while that client is alive.
    pub(crate) fn client(&self) -> Option<crate::Client> {
        self.inner.client.get().and_then(|c| c.upgrade())
    }

    /// Records the client that opened this database (first call wins).
    pub(crate) fn set_client(&self, client: crate::client::WeakClient) {
        let _ = self.inner.client.set(client);
    }

    /// Runs `f` on a reader connection.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        self.inner.pool.read(f)
    }

    /// Runs `f` on a reader connection, with its catalog stamp when it is a read-only
    /// reader (see [`crate::index::CatalogStamp`]).
    pub(crate) fn read_stamped<R>(
        &self,
        f: impl FnOnce(&Connection, Option<&mut crate::index::CatalogStamp>) -> Result<R>,
    ) -> Result<R> {
        self.inner.pool.read_stamped(f)
    }

    /// Runs `f` inside an immediate transaction on the writer; commits when `f` returns
    /// `Ok`, rolls back otherwise. Returns once the transaction committed (under group
    /// commit, possibly together with other threads' writes). In buffered mode, waits
    /// until every buffered write is applied and holds buffered writers off meanwhile,
    /// so a synchronous write never overtakes a buffered one.
    pub(crate) fn write<R>(&self, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        let out = match self.buffer() {
            Some(buffer) => {
                let _exclusive = buffer.exclusive()?;
                self.inner.pool.write(f)
            }
            None => self.inner.pool.write(f),
        };
        if out.is_ok() {
            self.inner.hub.committed(self);
        }
        out
    }

    /// [`write`](Database::write) for a job owning its data: under group commit, queued
    /// writes of this kind are run and committed together by one thread.
    pub(crate) fn write_owned(&self, job: crate::engine::OwnedJob) -> Result<()> {
        let out = match self.buffer() {
            Some(buffer) => {
                let _exclusive = buffer.exclusive()?;
                self.inner.pool.write_owned(job)
            }
            None => self.inner.pool.write_owned(job),
        };
        if out.is_ok() {
            self.inner.hub.committed(self);
        }
        out
    }

    /// [`write`](Database::write) without the buffer's gate: for the applier.
    pub(crate) fn write_direct<R>(&self, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        let out = self.inner.pool.write(f);
        if out.is_ok() {
            self.inner.hub.committed(self);
        }
        out
    }

    /// Makes sure the collection's table exists (inside the caller's transaction).
    pub(crate) fn ensure_collection(&self, conn: &Connection, name: &str) -> Result<()> {
        if self.is_known(name) {
            return Ok(());
        }
        if !collection_exists(conn, name)? {
            create_collection_in(conn, name, &CollectionOptions::default())?;
        }
        // Marked known by the caller once the transaction committed: readers on other
        // connections must not look for a table that is not committed yet.
        Ok(())
    }

    /// True when the collection's table exists (for reads of absent collections).
    pub(crate) fn has_collection(&self, conn: &Connection, name: &str) -> Result<bool> {
        if self.is_known(name) {
            return Ok(true);
        }
        let exists = collection_exists(conn, name)?;
        if exists {
            self.mark_known(name);
        }
        Ok(exists)
    }

    fn is_known(&self, name: &str) -> bool {
        self.inner
            .known
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(name)
    }

    pub(crate) fn mark_known(&self, name: &str) {
        self.inner
            .known
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_string());
    }

    pub(crate) fn forget(&self, name: &str) {
        self.inner
            .known
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
        self.forget_expiry(name);
    }

    /// True when `name` is a sharded or partitioned collection of this database (its
    /// table here is an empty placeholder; its documents live in member files).
    pub(crate) fn is_spread(&self, name: &str) -> Result<bool> {
        let cached = self
            .inner
            .spreads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let names = match cached {
            Some(names) => names,
            None => {
                let names: HashSet<String> = self.read(|conn| {
                    let mut stmt = conn.prepare_cached(
                        "SELECT name, options FROM _pocketdb_collections WHERE options LIKE '%\"sharded\"%' OR options LIKE '%\"partitioned\"%'",
                    )?;
                    let rows = stmt.query_map([], |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                    })?;
                    let mut names = HashSet::new();
                    for row in rows {
                        let (name, options) = row?;
                        let options: Map<String, Value> = serde_json::from_str(&options)?;
                        if crate::shard::member_kind(&options).is_some() {
                            names.insert(name);
                        }
                    }
                    Ok(names)
                })?;
                let names = Arc::new(names);
                *self
                    .inner
                    .spreads
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(names.clone());
                names
            }
        };
        Ok(names.contains(name))
    }

    /// Forgets which collections are sharded or partitioned (after a catalog change).
    pub(crate) fn forget_spreads(&self) {
        *self
            .inner
            .spreads
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// Forgets every cached collection (after a restore).
    pub(crate) fn forget_all(&self) {
        self.forget_spreads();
        self.inner
            .known
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// The sequence number of the last buffered write applied (0 when none).
fn applied_seq(conn: &Connection) -> Result<u64> {
    let v: Option<String> = conn
        .query_row(
            "SELECT value FROM _pocketdb_meta WHERE key = 'buffer_applied_seq'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(v.and_then(|v| v.parse().ok()).unwrap_or(0))
}

fn collection_exists(conn: &Connection, name: &str) -> Result<bool> {
    let mut stmt = conn.prepare_cached("SELECT 1 FROM _pocketdb_collections WHERE name = ?1")?;
    Ok(stmt.exists([name])?)
}

fn create_collection_in(conn: &Connection, name: &str, options: &CollectionOptions) -> Result<()> {
    conn.execute_batch(&schema::create_table_sql(name))?;
    conn.execute(
        "INSERT INTO _pocketdb_collections(name, tbl, options, created_at) VALUES (?1, ?2, ?3, ?4)",
        rusqlite::params![
            name,
            format!("c_{name}"),
            Value::Object(options.options.clone()).to_string(),
            changes::now_millis()
        ],
    )?;
    crate::collection::expiry::install(conn, name, &options.options)?;
    Ok(())
}

/// `None` when the collection does not exist; otherwise the directory kind of its member
/// files (`"shards"`, `"parts"`) when it is sharded or partitioned.
fn spread_members(conn: &Connection, name: &str) -> Result<Option<Option<&'static str>>> {
    Ok(catalog_options(conn, name)?.map(|options| crate::shard::member_kind(&options)))
}

/// The catalog options of a collection, read on `conn`; `None` when it does not exist.
pub(crate) fn catalog_options(conn: &Connection, name: &str) -> Result<Option<Map<String, Value>>> {
    let text: Option<String> = conn
        .query_row(
            "SELECT options FROM _pocketdb_collections WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
        .optional()?;
    Ok(match text {
        None => None,
        Some(t) => Some(serde_json::from_str(&t)?),
    })
}
