//! A client: a directory of databases, one SQLite file each (`<dir>/<name>.sqlite`).

use crate::database::Database;
use crate::engine::buffer;
use crate::engine::schema::validate_database_name;
use crate::engine::Options;
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, Weak};

/// A directory of databases. Cheap to clone; databases opened through it are cached so
/// every handle on one database shares its connections.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let client = pocketdb::Client::open(dir.path())?;
/// let db = client.database("app")?;
/// db.collection::<serde_json::Value>("users").insert_one(serde_json::json!({"a": 1}))?;
/// assert_eq!(client.list_databases()?, vec!["app".to_string()]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<ClientInner>,
}

struct ClientInner {
    dir: PathBuf,
    options: Options,
    open: Mutex<HashMap<String, Database>>,
}

/// A non-owning handle on a client, held by the databases it opened.
#[derive(Clone)]
pub(crate) struct WeakClient(Weak<ClientInner>);

impl WeakClient {
    /// The client, if it is still alive.
    pub(crate) fn upgrade(&self) -> Option<Client> {
        self.0.upgrade().map(|inner| Client { inner })
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("dir", &self.inner.dir)
            .finish()
    }
}

impl Client {
    /// Opens a client on `dir`, creating the directory if needed.
    pub fn open(dir: impl AsRef<Path>) -> Result<Client> {
        Client::open_with(dir, Options::default())
    }

    /// Opens a client whose databases use `options`.
    pub fn open_with(dir: impl AsRef<Path>, options: Options) -> Result<Client> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir)?;
        Ok(Client {
            inner: Arc::new(ClientInner {
                dir,
                options,
                open: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The client's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The path of a database's file.
    pub fn database_path(&self, name: &str) -> Result<PathBuf> {
        validate_database_name(name)?;
        Ok(self.inner.dir.join(format!("{name}.sqlite")))
    }

    /// The database `name`, created on first use.
    pub fn database(&self, name: &str) -> Result<Database> {
        let path = self.database_path(name)?;
        let mut open = self
            .inner
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(db) = open.get(name) {
            return Ok(db.clone());
        }
        let db = Database::open_with(&path, self.inner.options.clone())?;
        db.set_client(WeakClient(Arc::downgrade(&self.inner)));
        open.insert(name.to_string(), db.clone());
        Ok(db)
    }

    /// Names of the databases in the directory, sorted.
    pub fn list_databases(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.inner.dir)? {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("sqlite") {
                continue;
            }
            if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
                if validate_database_name(stem).is_ok() {
                    names.push(stem.to_string());
                }
            }
        }
        names.sort();
        Ok(names)
    }

    /// Deletes a database: its file with its WAL, shared-memory and buffer-log
    /// companions, and the member files of its sharded and partitioned collections
    /// (`<name>.shards/`, `<name>.parts/`), so that a database created again under the
    /// name starts empty. Writes still buffered and not applied are discarded with it.
    ///
    /// Handles still open on it in `Sync` or group-commit mode keep working on the
    /// unlinked file until dropped. Fails with `DatabaseNotFound` when absent, and with
    /// `Error::Buffer` while a handle (of this process or another) buffers writes to it:
    /// its log would outlive the drop.
    pub fn drop_database(&self, name: &str) -> Result<()> {
        let path = self.database_path(name)?;
        // This client's handle goes first (with it, its buffer's log lock).
        let cached = self
            .inner
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
        drop(cached);
        if !path.exists() {
            return Err(Error::DatabaseNotFound(name.to_string()));
        }
        let lock = log_lock_for_drop(&path, name)?;
        remove_if_present(&path)?;
        for suffix in ["-wal", "-shm", "-journal"] {
            remove_if_present(&self.inner.dir.join(format!("{name}.sqlite{suffix}")))?;
        }
        buffer::remove_logs(&path, &lock)?;
        for kind in ["shards", "parts"] {
            match std::fs::remove_dir_all(self.inner.dir.join(format!("{name}.{kind}"))) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
        }
        // The lock file last: while it is held, no handle starts buffering on the files
        // being removed.
        remove_if_present(&buffer::lock_path(&path))?;
        drop(lock);
        Ok(())
    }
}

/// Takes the buffer-log lock of the database file `path` for [`Client::drop_database`].
/// A buffered handle dropped just before may still be stopping its applier thread: its
/// lock is waited for a moment before the drop is refused.
fn log_lock_for_drop(path: &Path, name: &str) -> Result<buffer::LogLock> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        if let Some(lock) = buffer::lock_logs(path)? {
            return Ok(lock);
        }
        if std::time::Instant::now() >= deadline {
            return Err(Error::Buffer(format!(
                "database '{name}' is open with buffered writes by another handle; \
                 close it before dropping the database"
            )));
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Removes a file; nothing to do when it does not exist.
fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}
