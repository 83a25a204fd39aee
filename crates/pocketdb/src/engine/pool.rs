//! One writer connection and a pool of reader connections over the same file.
//!
//! The writer is behind a mutex ([`Writer`]): SQLite allows one writer at a time anyway,
//! and holding the mutex for a whole transaction keeps the change log's order equal to
//! commit order. With group commit, several writers' jobs share one transaction.
//! Readers are opened on demand up to `max_readers` and returned to the pool after use;
//! in WAL mode they read the last committed state while the writer works. An in-memory
//! database has a single connection, so reads go through the writer.

use super::checkpoint::Checkpointer;
use super::options::{Durability, FsyncPolicy, JournalMode, Options, Synchronous};
use super::writer::{Writer, WriterGuard};
use crate::error::Result;
use crate::index::CatalogStamp;
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

/// Most jobs sharing one group-commit transaction.
const MAX_GROUP: usize = 1024;

pub(crate) struct Pool {
    /// Declared first: its connection closes before the writer's, so the last connection
    /// to close (which checkpoints and removes the WAL) is the writer.
    checkpointer: Option<Checkpointer>,
    path: Option<PathBuf>,
    options: Options,
    writer: Writer,
    /// Idle read-only connections, each with what it last learned of the index catalog.
    readers: Mutex<Vec<(Connection, CatalogStamp)>>,
}

impl Pool {
    pub(crate) fn open(path: &Path, options: &Options) -> Result<Pool> {
        #[cfg(feature = "vector")]
        crate::index::vector::register_extension();
        let mut writer = Connection::open(path)?;
        configure(&writer, options, true)?;
        let checkpointer = if options.checkpoint.background && is_wal(&writer)? {
            Some(Checkpointer::start(
                path,
                options,
                synchronous(options, true),
                &mut writer,
            )?)
        } else {
            writer.execute_batch(&format!(
                "PRAGMA wal_autocheckpoint={}",
                options.checkpoint.pages
            ))?;
            None
        };
        Ok(Pool {
            checkpointer,
            path: Some(path.to_path_buf()),
            options: options.clone(),
            writer: new_writer(writer, options),
            readers: Mutex::new(Vec::new()),
        })
    }

    pub(crate) fn memory(options: &Options) -> Result<Pool> {
        #[cfg(feature = "vector")]
        crate::index::vector::register_extension();
        let writer = Connection::open_in_memory()?;
        configure(&writer, options, true)?;
        Ok(Pool {
            checkpointer: None,
            path: None,
            options: options.clone(),
            writer: new_writer(writer, options),
            readers: Mutex::new(Vec::new()),
        })
    }

    pub(crate) fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    pub(crate) fn options(&self) -> &Options {
        &self.options
    }

    /// The background checkpoint thread, when there is one.
    /// Counters of the writer's commits.
    pub(crate) fn commit_stats(&self) -> super::CommitStats {
        self.writer.stats()
    }

    pub(crate) fn checkpointer(&self) -> Option<&Checkpointer> {
        self.checkpointer.as_ref()
    }

    /// Locks the writer connection for work outside a write transaction (schema setup,
    /// reads of in-memory databases); an open group-commit batch is committed first.
    pub(crate) fn writer(&self) -> WriterGuard<'_> {
        self.writer.lock()
    }

    /// Runs `f` inside a write transaction; returns after that transaction committed.
    pub(crate) fn write<R>(&self, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        self.writer.write(f)
    }

    /// [`write`](Self::write) for a job owning its data (see [`Writer::write_owned`]).
    pub(crate) fn write_owned(&self, job: super::writer::OwnedJob) -> Result<()> {
        self.writer.write_owned(job)
    }

    /// Runs `f` on a reader connection (the writer for in-memory databases or WAL-less
    /// journal modes, where separate readers would not see the same data or would block).
    pub(crate) fn read<R>(&self, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        self.read_stamped(|conn, _| f(conn))
    }

    /// [`read`](Self::read), also handing `f` the connection's catalog stamp when it is a
    /// read-only pooled reader (`None` on the writer, which changes the file itself).
    pub(crate) fn read_stamped<R>(
        &self,
        f: impl FnOnce(&Connection, Option<&mut CatalogStamp>) -> Result<R>,
    ) -> Result<R> {
        let path = match &self.path {
            Some(p) if self.options.journal_mode == JournalMode::Wal => p,
            _ => return f(&self.writer(), None),
        };
        let pooled = self
            .readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let (conn, mut stamp) = match pooled {
            Some(c) => c,
            None => {
                let c = Connection::open_with_flags(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY
                        | OpenFlags::SQLITE_OPEN_URI
                        | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                configure(&c, &self.options, false)?;
                (c, CatalogStamp::default())
            }
        };
        let result = f(&conn, Some(&mut stamp));
        let mut readers = self.readers.lock().unwrap_or_else(PoisonError::into_inner);
        if readers.len() < self.options.max_readers {
            readers.push((conn, stamp));
        }
        result
    }
}

impl Pool {
    /// Runs `f` on the writer and on every idle pooled reader (for statistics).
    pub(crate) fn each_connection(&self, f: &mut dyn FnMut(&Connection)) {
        f(&self.writer());
        for c in self
            .readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            f(&c.0);
        }
    }
}

/// True when the connection's database is in WAL mode (a file that cannot be, such as
/// one on a file system without shared memory, stays in its journal mode).
fn is_wal(conn: &Connection) -> Result<bool> {
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
    Ok(mode.eq_ignore_ascii_case("wal"))
}

fn new_writer(conn: Connection, options: &Options) -> Writer {
    let group = options.durability == Durability::GroupCommit;
    Writer::new(conn, group, MAX_GROUP)
}

/// In buffered mode the log is truncated once its writes are committed, so the commits
/// of the applier must be as durable as the log was: at least `FULL` unless the log is
/// never synced.
fn synchronous(options: &Options, writer: bool) -> Synchronous {
    match &options.durability {
        Durability::Buffered(b)
            if writer
                && b.fsync != FsyncPolicy::Never
                && matches!(options.synchronous, Synchronous::Off | Synchronous::Normal) =>
        {
            Synchronous::Full
        }
        _ => options.synchronous,
    }
}

fn configure(conn: &Connection, options: &Options, writer: bool) -> Result<()> {
    conn.busy_timeout(options.busy_timeout)?;
    if writer {
        // journal_mode returns a row; query it rather than execute.
        let _mode: String = conn.query_row(
            &format!("PRAGMA journal_mode={}", options.journal_mode.pragma()),
            [],
            |r| r.get(0),
        )?;
    }
    conn.execute_batch(&format!(
        "PRAGMA synchronous={};
         PRAGMA cache_size=-{};
         PRAGMA mmap_size={};
         PRAGMA temp_store={};
         PRAGMA foreign_keys=OFF;",
        synchronous(options, writer).pragma(),
        options.cache_size_kib,
        options.mmap_size,
        if options.temp_store_memory {
            "MEMORY"
        } else {
            "DEFAULT"
        },
    ))?;
    conn.set_prepared_statement_cache_capacity(256);
    crate::query::sql::register_functions(conn)?;
    Ok(())
}
