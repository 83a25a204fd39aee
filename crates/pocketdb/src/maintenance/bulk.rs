//! Bulk-load mode (seed 000 §4): relaxed durability for a large import, restored
//! afterwards even when the import fails or panics.

use crate::database::Database;
use crate::error::Result;
use std::sync::PoisonError;

/// Saved settings while bulk-load mode is on.
#[derive(Debug, Default)]
pub(crate) struct BulkState {
    depth: usize,
    synchronous: i64,
    autocheckpoint: i64,
    max_wal_pages: u32,
}

/// WAL pages between checkpoints while bulk-load mode is on.
const BULK_CHECKPOINT_PAGES: u32 = 100_000;

/// Bulk-load mode, on while this guard lives ([`Database::bulk_load`]). Nested guards
/// share one mode; the last one dropped restores the settings.
///
/// While on, the writer runs with `synchronous=OFF` and a large WAL auto-checkpoint
/// interval: commits are not synced, so an operating-system crash or power loss during
/// the import may lose the import (and, as SQLite documents for `synchronous=OFF`,
/// may damage the file); an application crash loses nothing committed. When the mode
/// ends, the previous settings come back and the WAL is checkpointed.
#[derive(Debug)]
#[must_use = "bulk-load mode ends when the guard is dropped"]
pub struct BulkLoad {
    db: Database,
    finished: bool,
}

impl Database {
    /// Turns bulk-load mode on until the returned guard is dropped (or
    /// [`finish`](BulkLoad::finish)ed).
    pub fn bulk_load(&self) -> Result<BulkLoad> {
        let mut state = self
            .inner
            .extras
            .bulk
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if state.depth == 0 {
            let writer = self.inner.pool.writer();
            state.synchronous = writer.query_row("PRAGMA synchronous", [], |r| r.get(0))?;
            writer.execute_batch("PRAGMA synchronous=OFF")?;
            match self.inner.pool.checkpointer() {
                Some(c) => {
                    state.autocheckpoint = i64::from(c.pages());
                    state.max_wal_pages = c.max_wal_pages();
                    c.set_pages(BULK_CHECKPOINT_PAGES);
                }
                None => {
                    state.autocheckpoint =
                        writer.query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))?;
                    let _: i64 = writer.query_row(
                        &format!("PRAGMA wal_autocheckpoint={BULK_CHECKPOINT_PAGES}"),
                        [],
                        |r| r.get(0),
                    )?;
                }
            }
        }
        state.depth += 1;
        Ok(BulkLoad {
            db: self.clone(),
            finished: false,
        })
    }

    /// Runs `f` in bulk-load mode; the settings are restored whether `f` succeeds,
    /// fails or panics.
    pub fn with_bulk_load<R>(&self, f: impl FnOnce(&Database) -> Result<R>) -> Result<R> {
        let guard = self.bulk_load()?;
        let out = f(self);
        let restored = guard.finish();
        let out = out?;
        restored?;
        Ok(out)
    }

    /// True while bulk-load mode is on.
    pub fn in_bulk_load(&self) -> bool {
        self.inner
            .extras
            .bulk
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .depth
            > 0
    }

    fn end_bulk_load(&self) -> Result<()> {
        let mut state = self
            .inner
            .extras
            .bulk
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        state.depth = state.depth.saturating_sub(1);
        if state.depth > 0 {
            return Ok(());
        }
        let writer = self.inner.pool.writer();
        writer.execute_batch(&format!("PRAGMA synchronous={}", state.synchronous))?;
        match self.inner.pool.checkpointer() {
            Some(c) => {
                c.set_pages(u32::try_from(state.autocheckpoint).unwrap_or(1_000));
                c.set_max_wal_pages(state.max_wal_pages);
            }
            None => {
                let _: i64 = writer.query_row(
                    &format!("PRAGMA wal_autocheckpoint={}", state.autocheckpoint),
                    [],
                    |r| r.get(0),
                )?;
            }
        }
        if self.path().is_some() {
            // Make the import durable now that syncs are back.
            let _: (i64, i64, i64) =
                writer.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?;
        }
        Ok(())
    }
}

impl BulkLoad {
    /// Ends bulk-load mode now, reporting a failure to restore the settings.
    pub fn finish(mut self) -> Result<()> {
        self.finished = true;
        self.db.end_bulk_load()
    }
}

impl Drop for BulkLoad {
    fn drop(&mut self) {
        if !self.finished {
            if let Err(e) = self.db.end_bulk_load() {
                tracing::error!(database = self.db.name(), error = %e, "could not leave bulk-load mode");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::Database;

    fn writer_sync(db: &Database) -> i64 {
        db.inner
            .pool
            .writer()
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap_or(-1)
    }

    #[test]
    fn settings_are_relaxed_then_restored() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let db = Database::open(dir.path().join("b.sqlite")).unwrap_or_else(|e| panic!("{e}"));
        let normal = writer_sync(&db);
        assert_eq!(normal, 1);
        let failed: crate::Result<()> = db.with_bulk_load(|db| {
            assert_eq!(writer_sync(db), 0);
            Err(crate::Error::InvalidArgument("import failed".to_string()))
        });
        assert!(failed.is_err());
        assert_eq!(writer_sync(&db), normal);
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _guard = db.bulk_load();
            panic!("import panicked");
        }));
        assert!(panicked.is_err());
        assert_eq!(writer_sync(&db), normal);
        assert!(!db.in_bulk_load());
    }
}
