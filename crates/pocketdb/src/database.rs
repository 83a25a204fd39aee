//! A database: one SQLite file (or memory) holding collections, their catalog and the
//! change log.

use crate::changes::{self, Change, ChangeOp};
use crate::collection::{Collection, Document};
use crate::engine::schema::{self, table_name, validate_collection_name};
use crate::engine::{Options, Pool};
use crate::error::{Error, Result};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

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
    /// State of the maintenance layer (attachments, expiry, slow queries, bulk mode).
    pub(crate) extras: crate::maintenance::DbExtras,
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
        schema::init(&pool.writer())?;
        let hub = changes::hub::Hub::new(&pool.writer(), &name)?;
        let db = Database {
            inner: Arc::new(DbInner {
                name,
                pool,
                hub,
                known: Mutex::new(HashSet::new()),
                extras: Default::default(),
            }),
        };
        db.start_expiry_if_needed()?;
        Ok(db)
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
        self.read(|conn| {
            let mut stmt =
                conn.prepare_cached("SELECT name FROM _pocketdb_collections ORDER BY name")?;
            let names = stmt.query_map([], |r| r.get::<_, String>(0))?;
            Ok(names.collect::<rusqlite::Result<Vec<_>>>()?)
        })
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
        self.read(|conn| {
            let text: Option<String> = conn
                .query_row(
                    "SELECT options FROM _pocketdb_collections WHERE name = ?1",
                    [name],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(match text {
                None => None,
                Some(t) => Some(CollectionOptions {
                    options: serde_json::from_str(&t)?,
                }),
            })
        })
    }

    /// Drops a collection with its documents. Returns false when it did not exist. A
    /// `drop` entry goes to the change log.
    pub fn drop_collection(&self, name: &str) -> Result<bool> {
        validate_collection_name(name)?;
        let dropped = self.write(|conn| {
            if !collection_exists(conn, name)? {
                return Ok(false);
            }
            conn.execute_batch(&format!("DROP TABLE IF EXISTS {}", table_name(name)))?;
            conn.execute("DELETE FROM _pocketdb_collections WHERE name = ?1", [name])?;
            changes::record(conn, name, "null", ChangeOp::Drop, 0, changes::now_millis())?;
            Ok(true)
        })?;
        self.forget(name);
        Ok(dropped)
    }

    /// Renames a collection. Fails when `from` does not exist or `to` exists (unless
    /// `drop_target`, which drops `to` first).
    pub fn rename_collection(&self, from: &str, to: &str, drop_target: bool) -> Result<()> {
        validate_collection_name(from)?;
        validate_collection_name(to)?;
        if from == to {
            return Err(Error::InvalidArgument(
                "cannot rename a collection to itself".to_string(),
            ));
        }
        self.write(|conn| {
            if !collection_exists(conn, from)? {
                return Err(Error::CollectionNotFound(from.to_string()));
            }
            if collection_exists(conn, to)? {
                if !drop_target {
                    return Err(Error::CollectionExists(to.to_string()));
                }
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
            conn.execute(
                "UPDATE _pocketdb_changes SET collection = ?2 WHERE collection = ?1",
                [from, to],
            )?;
            Ok(())
        })?;
        self.forget(from);
        self.forget(to);
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

    /// Runs `f` on a reader connection.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        self.inner.pool.read(f)
    }

    /// Runs `f` inside an immediate transaction on the writer; commits when `f` returns
    /// `Ok`, rolls back otherwise.
    pub(crate) fn write<R>(&self, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        let mut conn = self.inner.pool.writer();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        self.inner.hub.committed(&conn);
        Ok(out)
    }

    /// Makes sure the collection's table exists (inside the caller's transaction).
    pub(crate) fn ensure_collection(&self, conn: &Connection, name: &str) -> Result<()> {
        if self.is_known(name) {
            return Ok(());
        }
        if !collection_exists(conn, name)? {
            create_collection_in(conn, name, &CollectionOptions::default())?;
        }
        // Marked known only after commit would be stricter; a rollback of the creating
        // transaction is handled by `forget` in the collection's error path.
        self.mark_known(name);
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

    fn mark_known(&self, name: &str) {
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

    /// Forgets every cached collection (after a restore).
    pub(crate) fn forget_all(&self) {
        self.inner
            .known
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
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
