//! The single writer connection and how write transactions commit on it.
//!
//! With [`Durability::Sync`](super::Durability::Sync) each write is one transaction:
//! lock, `BEGIN IMMEDIATE`, run, `COMMIT`, unlock.
//!
//! With [`Durability::GroupCommit`](super::Durability::GroupCommit) writers that arrive
//! while another one holds the connection share its transaction. Each writer still runs
//! its own closure, on its own thread, under the connection lock, inside a `SAVEPOINT` so
//! that a failing write is rolled back alone (MongoDB's rule: a failed write changes
//! nothing). After its job, a writer looks at how many others are queued on the lock: if
//! none (or the batch is full) it commits the transaction and wakes everyone whose job was
//! in it; otherwise it leaves the transaction open, releases the lock and waits until a
//! later writer of the same batch commits. Every write is acknowledged only after the
//! `COMMIT` holding it succeeded, so the durability is the same as `Sync`; the throughput
//! under contention is that of batches, because the commit (the WAL append and, with
//! `synchronous=FULL`, the fsync) is paid once per batch.
//!
//! Why not a dedicated writer thread fed by a channel: that would need every write closure
//! to be `'static + Send` (or lifetime erasure with `unsafe`), and costs two thread hand-offs
//! per write even when there is no contention. Running each closure on its caller's
//! thread keeps `Database::write`'s signature, keeps panics in the caller's thread, and
//! makes an uncontended group-commit write cost the same as a `Sync` one.
//!
//! Writes whose job owns its data ([`Writer::write_owned`], used by `insert_one`) go one
//! step further (flat combining): the job is queued, and whichever of the queued writers
//! gets the connection first runs every queued job, each in its own savepoint, commits
//! once and hands each writer its outcome. The other writers sleep until then: a batch
//! of N such writes costs one lock hand-off and one wake-up round instead of N hand-offs,
//! which is what bounds group commit on a machine with fewer cores than writers.
//! Preparing the document (checks, `_id`, serialisation) stays on each caller's thread.
//!
//! Batches are numbered; they finish strictly in order, so a watermark (`done`) tells a
//! waiting writer that its batch finished, and a small table records failed commits
//! until each waiter of the failed batch has read its error. The change log is written
//! inside the jobs, so its order is commit order.

use crate::error::{Error, Result};
use rusqlite::Connection;
use std::any::Any;
use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// Times a writer about to commit a shared batch yields to let others join it.
const DWELL_YIELDS: usize = 4;

/// Most yields a leader of combined jobs makes waiting for the writers of its last batch.
const COMBINE_YIELDS: usize = 16;

/// A write job owning its data, so any writer thread may run it (see the module docs).
pub(crate) type OwnedJob = Box<dyn FnOnce(&Connection) -> Result<()> + Send>;

/// What became of a queued [`OwnedJob`].
enum JobOutcome {
    Done(Result<()>),
    Panicked(Box<dyn Any + Send>),
}

/// Queued owned jobs and their outcomes.
#[derive(Default)]
struct Combiner {
    next_ticket: u64,
    pending: Vec<(u64, OwnedJob)>,
    done: HashMap<u64, JobOutcome>,
    /// A writer is running queued jobs; the others wait for `combined`.
    leader: bool,
}

/// Counters of the write transactions committed ([`crate::DatabaseStats`]): with group
/// commit, `writes / transactions` is the average number of writes sharing a commit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CommitStats {
    /// Write transactions committed through the commit protocol.
    pub transactions: u64,
    /// Writes (jobs: one `insert_one`, one `update_many`, ...) in those transactions.
    pub writes: u64,
}

/// The writer connection with its commit protocol.
pub(crate) struct Writer {
    state: Mutex<WriterState>,
    combiner: Mutex<Combiner>,
    /// Signalled when queued jobs have outcomes or the leader steps down.
    combined: Condvar,
    /// Threads queued on `state` to run a write job.
    waiting: AtomicUsize,
    /// Jobs in the last batch of combined jobs: how many writers are about.
    last_combined: AtomicUsize,
    commits: Mutex<Commits>,
    committed: Condvar,
    group: bool,
    max_batch: usize,
    transactions: AtomicU64,
    writes: AtomicU64,
}

struct WriterState {
    conn: Connection,
    /// The batch whose transaction is open, waiting for more jobs.
    open: Option<u64>,
    /// Jobs run in the open batch.
    jobs: usize,
    /// Jobs of the open batch whose writers wait for its commit.
    waiters: usize,
    last_batch: u64,
    /// The thread that ran the last job that finished with no writer queued.
    last_thread: Option<std::thread::ThreadId>,
}

#[derive(Default)]
struct Commits {
    /// Every batch numbered `<= done` has committed or failed.
    done: u64,
    /// Failed batches: the error message and how many waiters have not read it yet.
    failed: HashMap<u64, (String, usize)>,
}

/// Exclusive access to the writer connection outside the commit protocol (schema setup,
/// reads of in-memory databases). Any open group-commit batch is committed first.
pub(crate) struct WriterGuard<'a> {
    guard: MutexGuard<'a, WriterState>,
}

impl Deref for WriterGuard<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.guard.conn
    }
}

impl DerefMut for WriterGuard<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.guard.conn
    }
}

impl Writer {
    /// Wraps the writer connection. `group` enables group commit; `max_batch` bounds the
    /// number of jobs sharing one transaction.
    pub(crate) fn new(conn: Connection, group: bool, max_batch: usize) -> Writer {
        Writer {
            state: Mutex::new(WriterState {
                conn,
                open: None,
                jobs: 0,
                waiters: 0,
                last_batch: 0,
                last_thread: None,
            }),
            waiting: AtomicUsize::new(0),
            last_combined: AtomicUsize::new(0),
            combiner: Mutex::new(Combiner::default()),
            combined: Condvar::new(),
            commits: Mutex::new(Commits::default()),
            committed: Condvar::new(),
            group,
            max_batch: max_batch.max(1),
            transactions: AtomicU64::new(0),
            writes: AtomicU64::new(0),
        }
    }

    /// Transactions committed and the writes in them, since the database was opened.
    pub(crate) fn stats(&self) -> CommitStats {
        CommitStats {
            transactions: self.transactions.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
        }
    }

    fn count_commit(&self, writes: usize) {
        self.transactions.fetch_add(1, Ordering::Relaxed);
        self.writes.fetch_add(writes as u64, Ordering::Relaxed);
    }

    fn lock_state(&self) -> MutexGuard<'_, WriterState> {
        // A poisoned lock is recovered: a panicking job's savepoint is rolled back before
        // the panic resumes, and a plain transaction rolls back when dropped.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The connection, with no transaction of the commit protocol open.
    pub(crate) fn lock(&self) -> WriterGuard<'_> {
        let mut guard = self.lock_state();
        if guard.open.is_some() {
            // The result reaches the batch's waiters; this caller only needs a clean slate.
            let _ = self.commit(&mut guard);
        }
        WriterGuard { guard }
    }

    /// Runs `f` in a write transaction and returns once that transaction committed.
    pub(crate) fn write<R>(&self, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        if !self.group {
            let mut guard = self.lock();
            let tx = guard
                .deref_mut()
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let out = f(&tx)?;
            tx.commit()?;
            self.count_commit(1);
            return Ok(out);
        }
        self.group_write(f)
    }

    /// [`write`](Self::write) for a job that owns its data: under group commit it is
    /// queued and run, with the other queued jobs, by whichever writer gets the connection.
    pub(crate) fn write_owned(&self, job: OwnedJob) -> Result<()> {
        if !self.group {
            return self.write(job);
        }
        let mut c = self.lock_combiner();
        let ticket = c.next_ticket;
        c.next_ticket += 1;
        c.pending.push((ticket, job));
        loop {
            if let Some(outcome) = c.done.remove(&ticket) {
                drop(c);
                return match outcome {
                    JobOutcome::Done(result) => result,
                    JobOutcome::Panicked(panic) => resume_unwind(panic),
                };
            }
            if c.leader {
                // Sleep at once: yielding in a loop first (tried) cost more CPU per write
                // than it saved in wake-ups, with more writers than cores.
                c = self
                    .combined
                    .wait(c)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            c.leader = true;
            drop(c);
            self.lead();
            c = self.lock_combiner();
        }
    }

    fn lock_combiner(&self) -> MutexGuard<'_, Combiner> {
        self.combiner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs queued owned jobs in batches until none is left, then steps down.
    fn lead(&self) {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let mut st = self.lock_state();
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        loop {
            let mut outcomes: Vec<(u64, JobOutcome)> = Vec::new();
            let mut failure: Option<String> = None;
            // The writers woken by the last batch are on their way back with their next
            // job: while this batch is smaller than the last one, let them run (a few
            // yields) before paying for a commit. A lone writer never waits.
            let expected = self
                .last_combined
                .load(Ordering::Relaxed)
                .min(self.max_batch);
            let mut dwell = 0;
            // Jobs queued while this batch runs join it, up to `max_batch`.
            loop {
                let jobs = {
                    let mut c = self.lock_combiner();
                    let room = self.max_batch.saturating_sub(st.jobs).max(1);
                    let n = c.pending.len().min(room);
                    c.pending.drain(..n).collect::<Vec<_>>()
                };
                if jobs.is_empty() {
                    if outcomes.is_empty() || outcomes.len() >= expected || dwell >= COMBINE_YIELDS
                    {
                        break;
                    }
                    dwell += 1;
                    std::thread::yield_now();
                    continue;
                }
                for (ticket, job) in jobs {
                    if failure.is_some() {
                        outcomes.push((ticket, JobOutcome::Done(Ok(()))));
                        continue;
                    }
                    match self.run_job(&mut st, job) {
                        Ok(outcome) => outcomes.push((ticket, outcome)),
                        Err(message) => {
                            failure = Some(message);
                            outcomes.push((ticket, JobOutcome::Done(Ok(()))));
                        }
                    }
                }
                if failure.is_some() || st.jobs >= self.max_batch {
                    break;
                }
            }
            if outcomes.is_empty() {
                let mut c = self.lock_combiner();
                if c.pending.is_empty() {
                    c.leader = false;
                    drop(c);
                    drop(st);
                    self.combined.notify_all();
                    return;
                }
                continue;
            }
            self.last_combined.store(outcomes.len(), Ordering::Relaxed);
            if failure.is_none() {
                if let Err(e) = self.commit(&mut st) {
                    failure = Some(format!("commit failed: {e}"));
                }
            }
            // A batch that did not commit fails every job that had succeeded in it.
            if let Some(message) = &failure {
                for (_, outcome) in &mut outcomes {
                    if matches!(outcome, JobOutcome::Done(Ok(()))) {
                        *outcome = JobOutcome::Done(Err(Error::Commit(message.clone())));
                    }
                }
            }
            let mut c = self.lock_combiner();
            c.done.extend(outcomes);
            drop(c);
            self.combined.notify_all();
        }
    }

    /// Runs one owned job of the open batch (opening one if needed) in its own
    /// savepoint. `Err` when the batch is lost (it was rolled back and its closure
    /// waiters failed).
    fn run_job(
        &self,
        st: &mut MutexGuard<'_, WriterState>,
        job: OwnedJob,
    ) -> std::result::Result<JobOutcome, String> {
        if st.open.is_none() {
            if let Err(e) = run_cached(&st.conn, "BEGIN IMMEDIATE") {
                return Err(format!("could not begin a write transaction: {e}"));
            }
            st.last_batch += 1;
            st.open = Some(st.last_batch);
            st.jobs = 0;
            st.waiters = 0;
        }
        if let Err(e) = run_cached(&st.conn, "SAVEPOINT pocketdb_job") {
            let message = format!("could not open a write's savepoint: {e}");
            self.abort(st, &message);
            return Err(message);
        }
        let outcome = catch_unwind(AssertUnwindSafe(|| job(&st.conn)));
        let end = if matches!(outcome, Ok(Ok(()))) {
            run_cached(&st.conn, "RELEASE pocketdb_job")
        } else {
            run_cached(&st.conn, "ROLLBACK TO pocketdb_job")
                .and_then(|()| run_cached(&st.conn, "RELEASE pocketdb_job"))
        };
        st.jobs += 1;
        if let Err(e) = end {
            let message = format!("could not end a write's savepoint: {e}");
            self.abort(st, &message);
            return Err(message);
        }
        Ok(match outcome {
            Ok(result) => JobOutcome::Done(result),
            Err(panic) => JobOutcome::Panicked(panic),
        })
    }

    fn group_write<R>(&self, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let mut st = self.lock_state();
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        let batch = match st.open {
            Some(b) => b,
            None => {
                run_cached(&st.conn, "BEGIN IMMEDIATE")?;
                st.last_batch += 1;
                st.open = Some(st.last_batch);
                st.jobs = 0;
                st.waiters = 0;
                st.last_batch
            }
        };
        if let Err(e) = run_cached(&st.conn, "SAVEPOINT pocketdb_job") {
            self.abort(&mut st, &e.to_string());
            return Err(e.into());
        }
        let outcome = catch_unwind(AssertUnwindSafe(|| f(&st.conn)));
        let succeeded = matches!(outcome, Ok(Ok(_)));
        let end = if succeeded {
            run_cached(&st.conn, "RELEASE pocketdb_job")
        } else {
            run_cached(&st.conn, "ROLLBACK TO pocketdb_job")
                .and_then(|()| run_cached(&st.conn, "RELEASE pocketdb_job"))
        };
        st.jobs += 1;
        let mut own_commit = None;
        if let Err(e) = end {
            // The transaction's state is unknown: give up the whole batch.
            let message = format!("could not end a write's savepoint: {e}");
            self.abort(&mut st, &message);
            own_commit = Some(Err(Error::Commit(message)));
        } else if st.jobs >= self.max_batch {
            own_commit = Some(self.commit(&mut st));
        } else if self.waiting.load(Ordering::SeqCst) == 0 {
            // A different thread wrote the previous job: writers are concurrent.
            let me = std::thread::current().id();
            let concurrent = st.waiters > 0 || st.last_thread.is_some_and(|t| t != me);
            st.last_thread = Some(me);
            if !concurrent || !succeeded {
                own_commit = Some(self.commit(&mut st));
            } else {
                // Other writers are about (the ones just woken by the previous commit
                // may be on their way). Give them a moment to join
                // before paying for a commit, then commit unless one of them took over.
                st.waiters += 1;
                drop(st);
                st = self.dwell();
                if st.open == Some(batch) && self.waiting.load(Ordering::SeqCst) == 0 {
                    st.waiters -= 1;
                    own_commit = Some(self.commit(&mut st));
                }
            }
        } else if succeeded {
            st.waiters += 1;
        }
        drop(st);
        let value = match outcome {
            Err(panic) => resume_unwind(panic),
            Ok(Err(e)) => return Err(e),
            Ok(Ok(v)) => v,
        };
        match own_commit {
            Some(result) => result.map(|()| value),
            None => self.wait_for(batch).map(|()| value),
        }
    }

    /// Lets other threads run briefly, then re-locks the connection.
    fn dwell(&self) -> MutexGuard<'_, WriterState> {
        for _ in 0..DWELL_YIELDS {
            std::thread::yield_now();
            if self.waiting.load(Ordering::SeqCst) > 0 {
                break;
            }
        }
        self.lock_state()
    }

    /// Commits the open batch and wakes its waiters.
    fn commit(&self, st: &mut WriterState) -> Result<()> {
        let Some(batch) = st.open.take() else {
            return Ok(());
        };
        match run_cached(&st.conn, "COMMIT") {
            Ok(()) => {
                self.count_commit(st.jobs);
                self.finish(batch, None, st.waiters);
                Ok(())
            }
            Err(e) => {
                if !st.conn.is_autocommit() {
                    let _ = st.conn.execute_batch("ROLLBACK");
                }
                let message = format!("commit failed: {e}");
                self.finish(batch, Some(message), st.waiters);
                Err(e.into())
            }
        }
    }

    /// Rolls the open batch back and fails its waiters.
    fn abort(&self, st: &mut WriterState, message: &str) {
        if let Some(batch) = st.open.take() {
            if !st.conn.is_autocommit() {
                let _ = st.conn.execute_batch("ROLLBACK");
            }
            self.finish(batch, Some(message.to_string()), st.waiters);
        }
    }

    fn finish(&self, batch: u64, failure: Option<String>, waiters: usize) {
        let mut commits = self.commits.lock().unwrap_or_else(PoisonError::into_inner);
        commits.done = batch;
        if let Some(message) = failure {
            if waiters > 0 {
                commits.failed.insert(batch, (message, waiters));
            }
        }
        drop(commits);
        self.committed.notify_all();
    }

    fn wait_for(&self, batch: u64) -> Result<()> {
        let commits = self.commits.lock().unwrap_or_else(PoisonError::into_inner);
        let mut commits = self
            .committed
            .wait_while(commits, |c| c.done < batch)
            .unwrap_or_else(PoisonError::into_inner);
        let Some((message, left)) = commits.failed.get_mut(&batch) else {
            return Ok(());
        };
        let error = Error::Commit(message.clone());
        *left -= 1;
        if *left == 0 {
            commits.failed.remove(&batch);
        }
        Err(error)
    }
}

/// Runs a statement without parameters through the statement cache (transaction
/// control statements are run for every write).
fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn writer(dir: &tempfile::TempDir) -> Arc<Writer> {
        let conn = Connection::open(dir.path().join("w.sqlite")).unwrap();
        conn.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t(x INTEGER)")
            .unwrap();
        Arc::new(Writer::new(conn, true, 64))
    }

    #[test]
    fn a_panicking_job_is_rolled_back_alone_and_others_commit() {
        let dir = tempfile::tempdir().unwrap();
        let w = writer(&dir);
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let w = w.clone();
                std::thread::spawn(move || {
                    for i in 0..100 {
                        let r = std::panic::catch_unwind(AssertUnwindSafe(|| {
                            w.write(|c| {
                                c.execute("INSERT INTO t VALUES (?1)", [t * 1000 + i])?;
                                if i % 10 == 0 {
                                    panic!("job panics after writing");
                                }
                                Ok(())
                            })
                        }));
                        assert_eq!(r.is_err(), i % 10 == 0);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let n: i64 = w
            .lock()
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 8 * 90);
    }

    #[test]
    fn owned_jobs_are_combined_and_fail_or_panic_alone() {
        let dir = tempfile::tempdir().unwrap();
        let w = writer(&dir);
        let handles: Vec<_> = (0..8i64)
            .map(|t| {
                let w = w.clone();
                std::thread::spawn(move || {
                    for i in 0..200i64 {
                        let x = t * 1000 + i;
                        let job: OwnedJob = Box::new(move |c| {
                            c.execute("INSERT INTO t VALUES (?1)", [x])?;
                            match i % 10 {
                                3 => Err(Error::InvalidArgument("refused".into())),
                                7 => panic!("job panics after writing"),
                                _ => Ok(()),
                            }
                        });
                        let r = std::panic::catch_unwind(AssertUnwindSafe(|| w.write_owned(job)));
                        match i % 10 {
                            3 => assert!(matches!(r, Ok(Err(Error::InvalidArgument(_))))),
                            7 => assert!(r.is_err()),
                            _ => assert!(matches!(r, Ok(Ok(())))),
                        }
                        // Closure writers interleave with the combined ones.
                        if i % 50 == 0 {
                            w.write(|c| Ok(c.execute("INSERT INTO t VALUES (?1)", [-x - 1])?))
                                .unwrap();
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let conn = w.lock();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM t WHERE x >= 0", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 8 * 160);
        let failed: i64 = conn
            .query_row(
                "SELECT count(*) FROM t WHERE x % 10 IN (3, 7) AND x >= 0",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(failed, 0);
        let closures: i64 = conn
            .query_row("SELECT count(*) FROM t WHERE x < 0", [], |r| r.get(0))
            .unwrap();
        assert_eq!(closures, 8 * 4);
    }

    #[test]
    fn failed_jobs_return_their_error_and_leave_no_trace() {
        let dir = tempfile::tempdir().unwrap();
        let w = writer(&dir);
        let r: Result<()> = w.write(|c| {
            c.execute("INSERT INTO t VALUES (1)", [])?;
            Err(Error::InvalidArgument("no".into()))
        });
        assert!(matches!(r, Err(Error::InvalidArgument(_))));
        w.write(|c| Ok(c.execute("INSERT INTO t VALUES (2)", [])?))
            .unwrap();
        let sum: i64 = w
            .lock()
            .query_row("SELECT sum(x) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sum, 2);
    }
}
