//! A client: a directory of databases, one SQLite file each (`<dir>/<name>.sqlite`).

use crate::database::Database;
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

    /// Deletes a database's file (and its WAL). Handles still open on it keep working
    /// on the unlinked file until dropped. Fails with `DatabaseNotFound` when absent.
    pub fn drop_database(&self, name: &str) -> Result<()> {
        let path = self.database_path(name)?;
        self.inner
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
        if !path.exists() {
            return Err(Error::DatabaseNotFound(name.to_string()));
        }
        std::fs::remove_file(&path)?;
        for suffix in ["-wal", "-shm"] {
            let side = self.inner.dir.join(format!("{name}.sqlite{suffix}"));
            if side.exists() {
                std::fs::remove_file(side)?;
            }
        }
        Ok(())
    }
}
