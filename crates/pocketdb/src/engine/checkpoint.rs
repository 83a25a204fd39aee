//! WAL checkpoints in a background thread.
//!
//! SQLite's automatic checkpoint runs inside the `COMMIT` that takes the WAL past
//! `wal_autocheckpoint` pages: that writer copies the WAL into the database file and
//! syncs both files before its write returns. On a write-heavy load this is a large share
//! of each write's cost (a fifth of `update_one` by `_id` in a profile of the benchmark).
//!
//! A file database in WAL mode instead hands the work to a thread with its own
//! connection. A WAL hook on the writer connection (which replaces the automatic
//! checkpoint) runs after each commit with the number of pages in the WAL:
//! - once [`CheckpointOptions::pages`] pages were added since the last checkpoint copied
//!   the WAL, it wakes the checkpoint thread, which runs a `PASSIVE` checkpoint: it copies
//!   what no reader still needs, beside the writer and the readers, and never blocks
//!   them. Counting from the last checkpoint, not from the start of the WAL, keeps one
//!   checkpoint (and its two syncs) per `pages` pages written, as SQLite's own; counting
//!   the whole WAL would run them back to back while the WAL cannot start over;
//! - from [`CheckpointOptions::max_wal_pages`] on, the writer checkpoints itself once
//!   (`PASSIVE` again, so readers are never waited for), as SQLite would, after waiting
//!   for a background checkpoint in progress to end (two checkpoints cannot run at once,
//!   and the WAL cannot grow meanwhile: the writer is the one writing). A background
//!   checkpoint copies frames, but the WAL file only starts over when a checkpoint has
//!   copied all of it and a new write begins; under a steady stream of writes the
//!   background never catches the writer, so this bounds the WAL's size. Most of the
//!   copying was done by then, so the writer pays for the tail only.
//!
//! Checkpoints are crash-safe in SQLite whichever connection runs them; the durability of
//! each commit is unchanged (it is decided when the WAL frames are written).

use super::options::{Options, Synchronous};
use crate::error::Result;
use rusqlite::wal::CheckpointMode;
use rusqlite::Connection;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;

/// When the WAL is checkpointed (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointOptions {
    /// Checkpoint in a background thread (default true). When false, SQLite's automatic
    /// checkpoint runs in the committing writer at `pages`.
    pub background: bool,
    /// WAL pages past which a checkpoint starts (default 1,000, SQLite's own default).
    pub pages: u32,
    /// WAL pages past which the writer checkpoints itself although the background thread
    /// exists (default 16,384: 64 MiB with 4 KiB pages).
    pub max_wal_pages: u32,
}

impl Default for CheckpointOptions {
    fn default() -> CheckpointOptions {
        CheckpointOptions {
            background: true,
            pages: 1_000,
            max_wal_pages: 16_384,
        }
    }
}

impl CheckpointOptions {
    /// Turns the background thread on or off.
    pub fn background(mut self, value: bool) -> CheckpointOptions {
        self.background = value;
        self
    }

    /// Sets the WAL size, in pages, that starts a checkpoint (at least 1).
    pub fn pages(mut self, value: u32) -> CheckpointOptions {
        self.pages = value.max(1);
        self
    }

    /// Sets the WAL size, in pages, past which the writer checkpoints itself.
    pub fn max_wal_pages(mut self, value: u32) -> CheckpointOptions {
        self.max_wal_pages = value.max(1);
        self
    }
}

/// Counters of the checkpoints run ([`crate::DatabaseStats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CheckpointStats {
    /// Checkpoints run by the background thread.
    pub background: u64,
    /// Checkpoints the writer ran itself because the WAL reached `max_wal_pages`.
    pub inline: u64,
}

struct Shared {
    /// A checkpoint was asked for and the thread has not started it yet.
    requested: AtomicBool,
    shutdown: AtomicBool,
    lock: Mutex<()>,
    wake: Condvar,
    /// Held while a checkpoint runs, by the thread or by the writer past the limit.
    running: Mutex<()>,
    /// Current thresholds (bulk-load mode raises `pages`).
    pages: AtomicU32,
    /// WAL frames the last background checkpoint had copied (the WAL's position then).
    copied: AtomicU32,
    max_wal_pages: AtomicU32,
    background_runs: AtomicU64,
    inline_runs: AtomicU64,
}

impl Shared {
    fn request(&self) {
        if self.requested.swap(true, Ordering::AcqRel) {
            return;
        }
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        self.wake.notify_one();
    }
}

/// The checkpoint thread of one database; stopped when dropped.
pub(crate) struct Checkpointer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Opens the thread's connection to `path`, installs the WAL hook on `writer` and
    /// starts the thread.
    pub(crate) fn start(
        path: &Path,
        options: &Options,
        synchronous: Synchronous,
        writer: &mut Connection,
    ) -> Result<Checkpointer> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(options.busy_timeout)?;
        // The checkpoint syncs the files as this connection's setting says: the writer's.
        conn.execute_batch(&format!("PRAGMA synchronous={}", synchronous.pragma()))?;
        let shared = Arc::new(Shared {
            requested: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            lock: Mutex::new(()),
            wake: Condvar::new(),
            running: Mutex::new(()),
            pages: AtomicU32::new(options.checkpoint.pages.max(1)),
            copied: AtomicU32::new(0),
            max_wal_pages: AtomicU32::new(options.checkpoint.max_wal_pages.max(1)),
            background_runs: AtomicU64::new(0),
            inline_runs: AtomicU64::new(0),
        });
        install_hook(writer, &shared)?;
        let for_thread = shared.clone();
        let thread = std::thread::Builder::new()
            .name("pocketdb-checkpoint".into())
            .spawn(move || run(&for_thread, &conn))?;
        Ok(Checkpointer {
            shared,
            thread: Some(thread),
        })
    }

    /// Sets the WAL size that starts a checkpoint (bulk-load mode raises it).
    pub(crate) fn set_pages(&self, pages: u32) {
        self.shared.pages.store(pages.max(1), Ordering::Relaxed);
        let max = self.shared.max_wal_pages.load(Ordering::Relaxed);
        if max < pages {
            self.shared.max_wal_pages.store(pages, Ordering::Relaxed);
        }
    }

    /// The WAL size that starts a checkpoint.
    pub(crate) fn pages(&self) -> u32 {
        self.shared.pages.load(Ordering::Relaxed)
    }

    /// Sets the WAL size past which the writer checkpoints itself.
    pub(crate) fn set_max_wal_pages(&self, pages: u32) {
        self.shared
            .max_wal_pages
            .store(pages.max(1), Ordering::Relaxed);
    }

    /// The WAL size past which the writer checkpoints itself.
    pub(crate) fn max_wal_pages(&self) -> u32 {
        self.shared.max_wal_pages.load(Ordering::Relaxed)
    }

    pub(crate) fn stats(&self) -> CheckpointStats {
        CheckpointStats {
            background: self.shared.background_runs.load(Ordering::Relaxed),
            inline: self.shared.inline_runs.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::Release);
        {
            let _guard = self
                .shared
                .lock
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            self.shared.wake.notify_one();
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Replaces SQLite's automatic checkpoint on `writer` by the hook of the module docs.
fn install_hook(writer: &mut Connection, shared: &Arc<Shared>) -> Result<()> {
    let shared = shared.clone();
    writer.wal_hook(Some(move |wal: &mut rusqlite::hooks::Wal, pages: i32| {
        let pages = u32::try_from(pages).unwrap_or(0);
        if pages >= shared.max_wal_pages.load(Ordering::Relaxed) {
            let _running = shared
                .running
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            // An error here would be reported by the commit, which has already succeeded;
            // a failed checkpoint is tried again at the next commit.
            if wal.checkpoint_v2(CheckpointMode::PASSIVE).is_ok() {
                shared.inline_runs.fetch_add(1, Ordering::Relaxed);
                shared.copied.store(0, Ordering::Relaxed);
            }
        } else {
            let copied = shared.copied.load(Ordering::Relaxed);
            let (request, restarted) =
                wants_checkpoint(pages, copied, shared.pages.load(Ordering::Relaxed));
            if restarted {
                shared.copied.store(0, Ordering::Relaxed);
            }
            if request {
                shared.request();
            }
        }
        Ok(())
    }))?;
    Ok(())
}

/// Whether a WAL of `pages` frames, of which the last background checkpoint had copied
/// `copied`, needs one (`threshold` pages added since); and whether the WAL started over
/// since that checkpoint (fewer frames than it had copied).
fn wants_checkpoint(pages: u32, copied: u32, threshold: u32) -> (bool, bool) {
    let restarted = pages < copied;
    let since = if restarted { pages } else { pages - copied };
    (since >= threshold, restarted)
}

fn run(shared: &Shared, conn: &Connection) {
    loop {
        {
            let mut guard = shared.lock.lock().unwrap_or_else(PoisonError::into_inner);
            while !shared.requested.load(Ordering::Acquire)
                && !shared.shutdown.load(Ordering::Acquire)
            {
                guard = shared
                    .wake
                    .wait(guard)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        }
        if shared.shutdown.load(Ordering::Acquire) {
            return;
        }
        shared.requested.store(false, Ordering::Release);
        let _running = shared
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        }) {
            Ok((_, _, copied)) => {
                shared.background_runs.fetch_add(1, Ordering::Relaxed);
                let copied = u32::try_from(copied).unwrap_or(0);
                shared.copied.store(copied, Ordering::Relaxed);
            }
            Err(e) => tracing::debug!(error = %e, "background checkpoint did not run"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::wants_checkpoint;

    #[test]
    fn a_checkpoint_is_wanted_per_threshold_pages_added_since_the_last() {
        // Nothing copied yet: from the start of the WAL.
        assert_eq!(wants_checkpoint(999, 0, 1_000), (false, false));
        assert_eq!(wants_checkpoint(1_000, 0, 1_000), (true, false));
        // The WAL could not start over (writes kept coming): count from what was copied,
        // not from the WAL's size, or checkpoints would run back to back.
        assert_eq!(wants_checkpoint(5_000, 4_800, 1_000), (false, false));
        assert_eq!(wants_checkpoint(5_800, 4_800, 1_000), (true, false));
        // The WAL started over: fewer frames than were copied.
        assert_eq!(wants_checkpoint(10, 4_800, 1_000), (false, true));
        assert_eq!(wants_checkpoint(1_200, 4_800, 1_000), (true, true));
    }
}
