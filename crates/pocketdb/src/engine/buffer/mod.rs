//! The write buffer of [`Durability::Buffered`](crate::Durability::Buffered) (seed 003's
//! HyperScale, done properly).
//!
//! A buffered write is appended to the buffer log (`<database file>.buffer-log`, framed
//! records with a CRC, see [`log`]), recorded in an in-memory overlay keyed by
//! (collection, `_id` key) that reads merge with the stored documents, and queued for the
//! applier thread, which applies the queue to SQLite in batches through the ordinary
//! write path (so the change log and indexes stay right). Each batch's transaction also
//! stores the sequence number of its last write (`buffer_applied_seq` in
//! `_pocketdb_meta`), so replaying the log after a crash applies every write exactly once.
//! Once the queue is empty the log is truncated; under sustained load it is rotated to
//! `<file>.buffer-log.old`, deleted when everything in it is applied.
//!
//! The buffer holds at most `max_buffered` unapplied writes: writers block until the
//! applier makes room. Writes that cannot be buffered (anything not addressed by one
//! `_id`) take the exclusive side of the [`gate`](Buffer::exclusive), wait until the
//! buffer is empty and then run synchronously, so they never overtake a buffered write.
//!
//! This module knows nothing of documents: it stores JSON text under keys. Applying a
//! batch is a callback given by the database.

pub(crate) mod log;

use super::options::{BufferOptions, FsyncPolicy};
use crate::error::{Error, Result};
pub(crate) use log::{Op, OpKind};
use std::collections::VecDeque;

/// The overlay's maps: keyed by `_id` keys on every buffered write and read, where
/// SipHash (the standard default) was a tenth of a small buffered insert. foldhash is
/// several times faster and still seeded at random per map.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::quality::RandomState>;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard};
use std::sync::{RwLockWriteGuard, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Size past which the active log is rotated while writes are still pending.
const ROTATE_BYTES: u64 = 64 * 1024 * 1024;

/// Counters of a buffered database ([`crate::Database::buffer_stats`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BufferStats {
    /// Writes acknowledged but not yet applied to SQLite.
    pub buffered: u64,
    /// Writes applied to SQLite since the database was opened (replayed ones included).
    pub applied: u64,
    /// Bytes in the buffer log files.
    pub log_bytes: u64,
    /// Writes found in the log and applied when the database was opened.
    pub recovered: u64,
    /// Batches (transactions) the applier committed.
    pub batches: u64,
    /// Reads by `_id` answered from the buffer.
    pub cache_hits: u64,
    /// Reads by `_id` that went to SQLite.
    pub cache_misses: u64,
    /// Buffered writes that failed when applied and were dropped; each is reported by a
    /// [`BufferEvent::Error`]. Unique indexes are checked before a write is
    /// acknowledged, so this stays 0 unless another process changed the file meanwhile
    /// or a document passed the key limit of a compound index over several arrays.
    pub dropped: u64,
    /// Batches that failed as a whole and were retried.
    pub apply_errors: u64,
}

/// What the applier reports to subscribers ([`crate::Database::buffer_events`]).
#[derive(Debug, Clone, PartialEq)]
pub enum BufferEvent {
    /// A batch of buffered writes was applied to SQLite.
    Flush {
        /// Writes in the batch.
        count: u64,
        /// Sequence number of the last write applied.
        applied_seq: u64,
    },
    /// Something went wrong in the background.
    Error {
        /// What went wrong.
        message: String,
    },
}

/// What buffered writes to one collection check before they are acknowledged, from its
/// indexes.
#[derive(Debug, Clone, Default)]
pub(crate) struct WriteChecks {
    /// One of the indexes is unique: documents claim their keys.
    pub unique: bool,
    /// The index set, when an index spans several fields: documents are held to the
    /// limit of keys per document (arrays on several of its fields).
    pub compound: Option<Arc<crate::index::IndexSet>>,
}

/// The latest buffered state of one document.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// Sequence number of the write that produced it.
    pub seq: u64,
    /// The document's JSON text; `None` when the latest write deleted it.
    pub doc: Option<Arc<str>>,
    /// When the document expires, in a collection with `expire_after` (ms since the
    /// Unix epoch, counted from the acknowledgement).
    pub expires: Option<i64>,
}

impl Entry {
    /// The document, unless the write deleted it or it expired by `now` (ms since the
    /// Unix epoch): an expired buffered document reads as deleted, as a stored one
    /// would be.
    pub(crate) fn live_doc(&self, now: i64) -> Option<&Arc<str>> {
        match self.expires {
            Some(at) if at <= now => None,
            _ => self.doc.as_ref(),
        }
    }
}

/// Applies a batch inside one transaction, storing `applied_seq`. Returns the writes that
/// failed individually (dropped) or an error when the whole batch failed.
pub(crate) type ApplyFn = dyn Fn(&[Arc<Op>], u64) -> Result<Vec<(u64, Error)>> + Send + Sync;

/// A subscriber callback.
type EventFn = dyn Fn(&BufferEvent) + Send + Sync;

/// Unique keys claimed in one collection: key text → (`_id` key, sequence number).
type Claims = HashMap<String, Vec<(Arc<str>, u64)>>;

struct State {
    next_seq: u64,
    applied_seq: u64,
    queue: VecDeque<Arc<Op>>,
    overlay: HashMap<Arc<str>, HashMap<Arc<str>, Entry>>,
    /// Keys of unique secondary indexes claimed by buffered documents: collection → key
    /// text → (`_id` key, sequence number) of the writes claiming it. A claim counts
    /// while its write is the latest buffered one of its document.
    claims: HashMap<Arc<str>, Claims>,
    /// The key texts each claiming write claimed, by sequence number (released when the
    /// write is applied or taken back).
    claimed_by: HashMap<u64, (Arc<str>, Vec<String>)>,
    /// The frame buffer of the last append, kept to reuse its allocation.
    scratch: Vec<u8>,
    /// Bumped after every applied batch (optimistic checks of writers).
    apply_gen: u64,
    active: Arc<File>,
    active_bytes: u64,
    /// The rotated log and the last sequence number in it.
    old: Option<(u64, u64)>,
    dirty: bool,
    /// Apply without waiting for the interval until this sequence number is applied.
    flush_to: u64,
    shutdown: bool,
    last_error: Option<String>,
}

/// The buffer of one database.
pub(crate) struct Buffer {
    /// Held while the buffer lives: no other handle appends to or replays its logs.
    _lock: LogLock,
    options: BufferOptions,
    log_path: PathBuf,
    old_path: PathBuf,
    state: Mutex<State>,
    /// Wakes the applier.
    work: Condvar,
    /// Wakes writers waiting for room and callers of `flush`.
    progress: Condvar,
    gate: RwLock<()>,
    /// What writes to each collection check before they are acknowledged, as writers
    /// found it from its indexes. Forgotten whenever the exclusive side of the gate is
    /// taken: index changes of this handle happen there, while no writer holds the
    /// shared side.
    checks: Mutex<std::collections::HashMap<String, WriteChecks>>,
    /// The index catalog generation the applier last saw: when it changes (an index
    /// created or dropped through another handle), `checks` are forgotten.
    catalog_gen: Mutex<Option<String>>,
    applied: AtomicU64,
    batches: AtomicU64,
    recovered: AtomicU64,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    dropped: AtomicU64,
    apply_errors: AtomicU64,
    subscribers: Mutex<Vec<SyncSender<BufferEvent>>>,
    callbacks: Mutex<Vec<Box<EventFn>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// What a writer's closure may do while holding the buffer lock.
pub(crate) struct Appender<'a> {
    state: &'a mut State,
    bytes: Vec<u8>,
    pushed: usize,
}

impl Appender<'_> {
    /// The buffered state of a document, if any write to it is unapplied.
    pub(crate) fn lookup(&self, collection: &str, key: &str) -> Option<&Entry> {
        self.state.overlay.get(collection)?.get(key)
    }

    /// Counter bumped by every applied batch.
    pub(crate) fn apply_gen(&self) -> u64 {
        self.state.apply_gen
    }

    /// The `_id` keys of the buffered documents (in their latest buffered version, not
    /// expired by `now`) that claimed the unique key `text` in `collection`.
    pub(crate) fn claimants<'s>(
        &'s self,
        collection: &str,
        text: &str,
        now: i64,
    ) -> impl Iterator<Item = &'s str> + 's {
        let overlay = self.state.overlay.get(collection);
        self.state
            .claims
            .get(collection)
            .and_then(|m| m.get(text))
            .into_iter()
            .flatten()
            .filter(move |(key, seq)| {
                overlay
                    .and_then(|m| m.get(key))
                    .is_some_and(|e| e.seq == *seq && e.live_doc(now).is_some())
            })
            .map(|(key, _)| &**key)
    }

    /// Buffers a write (made durable when the closure returns and the policy says so).
    /// The document takes the unique keys `claims` (texts of
    /// [`crate::index::UniqueClaim`]), which [`claimants`](Self::claimants) then reports
    /// until the write is applied or a later write to the document replaces it.
    pub(crate) fn push(
        &mut self,
        kind: OpKind,
        collection: &Arc<str>,
        key: Arc<str>,
        doc: Option<Arc<str>>,
        expires: Option<i64>,
        claims: Vec<String>,
    ) {
        let seq = self.state.next_seq;
        if !claims.is_empty() {
            claim(&mut self.state.claims, collection, &key, seq, &claims);
            self.state
                .claimed_by
                .insert(seq, (collection.clone(), claims));
        }
        self.state.next_seq += 1;
        let op = Arc::new(Op {
            seq,
            kind,
            collection: collection.clone(),
            key,
            doc,
            expires,
        });
        log::encode_op(&op, &mut self.bytes);
        let entry = Entry {
            seq,
            doc: op.doc.clone(),
            expires,
        };
        match self.state.overlay.get_mut(collection) {
            Some(m) => {
                m.insert(op.key.clone(), entry);
            }
            None => {
                let mut m = HashMap::default();
                m.insert(op.key.clone(), entry);
                self.state.overlay.insert(collection.clone(), m);
            }
        }
        self.state.queue.push_back(op);
        self.pushed += 1;
    }
}

/// Takes the last `pushed` writes back out of the queue and the overlay (they did not
/// reach the log), restoring the overlay entries they shadowed.
fn unpush(st: &mut State, pushed: usize) {
    if pushed == 0 {
        return;
    }
    let n = st.queue.len() - pushed;
    let taken: Vec<Arc<Op>> = st.queue.drain(n..).collect();
    for op in &taken {
        release_claims(st, op.seq);
    }
    for op in taken.iter().rev() {
        if let Some(m) = st.overlay.get_mut(&op.collection) {
            m.remove(&op.key);
        }
    }
    // Earlier unapplied writes to the same keys may have been shadowed; they are still
    // queued, so restore them (in queue order, so the latest one wins).
    let queue: Vec<Arc<Op>> = st.queue.iter().cloned().collect();
    for op in queue {
        if taken
            .iter()
            .any(|t| t.key == op.key && t.collection == op.collection)
        {
            st.overlay.entry(op.collection.clone()).or_default().insert(
                op.key.clone(),
                Entry {
                    seq: op.seq,
                    doc: op.doc.clone(),
                    expires: op.expires,
                },
            );
            // Its claims were superseded by the write taken back: they count again.
            if let Some((_, texts)) = st.claimed_by.get(&op.seq) {
                let texts = texts.clone();
                claim(&mut st.claims, &op.collection, &op.key, op.seq, &texts);
            }
        }
    }
    st.overlay.retain(|_, m| !m.is_empty());
}

/// Records that the write `seq` of document `key` claims `texts`. An earlier write of the
/// document is superseded, so its claims on these keys go (repeated updates of one
/// document keep the lists short).
fn claim(
    claims: &mut HashMap<Arc<str>, Claims>,
    collection: &Arc<str>,
    key: &Arc<str>,
    seq: u64,
    texts: &[String],
) {
    let m = claims.entry(collection.clone()).or_default();
    for text in texts {
        let holders = m.entry(text.clone()).or_default();
        holders.retain(|(k, _)| k != key);
        holders.push((key.clone(), seq));
    }
}

/// Releases the unique keys the write `seq` claimed.
fn release_claims(st: &mut State, seq: u64) {
    let Some((collection, texts)) = st.claimed_by.remove(&seq) else {
        return;
    };
    if let Some(m) = st.claims.get_mut(&collection) {
        for text in texts {
            if let Some(v) = m.get_mut(&text) {
                v.retain(|(_, s)| *s != seq);
                if v.is_empty() {
                    m.remove(&text);
                }
            }
        }
        if m.is_empty() {
            st.claims.remove(&collection);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Paths of the active and rotated logs of the database file `db_path`.
pub(crate) fn log_paths(db_path: &Path) -> (PathBuf, PathBuf) {
    let mut active = db_path.as_os_str().to_owned();
    active.push(".buffer-log");
    let mut old = active.clone();
    old.push(".old");
    (PathBuf::from(active), PathBuf::from(old))
}

/// An exclusive lock on the buffer logs of one database file (`<file>.buffer-lock`, an
/// empty file left in place): the buffered handle holding it is the only one that appends
/// to the logs or replays them. Released when dropped.
pub(crate) struct LogLock {
    _file: File,
}

/// Takes the log lock of `db_path`: `None` when another handle (in this process or
/// another) holds it.
pub(crate) fn lock_logs(db_path: &Path) -> Result<Option<LogLock>> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock_path(db_path))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(LogLock { _file: file })),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
    }
}

/// The log lock file of the database file `db_path` (`<file>.buffer-lock`).
pub(crate) fn lock_path(db_path: &Path) -> PathBuf {
    let mut path = db_path.as_os_str().to_owned();
    path.push(".buffer-lock");
    PathBuf::from(path)
}

/// True when a buffer log of `db_path` exists (possibly holding unapplied writes).
pub(crate) fn logs_exist(db_path: &Path) -> bool {
    let (active, old) = log_paths(db_path);
    active.exists() || old.exists()
}

/// Removes the buffer logs of `db_path` (after their writes were applied).
pub(crate) fn remove_logs(db_path: &Path, _lock: &LogLock) -> Result<()> {
    let (active, old) = log_paths(db_path);
    for path in [old, active] {
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The writes in the logs of `db_path` not yet applied (`seq > applied_seq`), in order.
pub(crate) fn pending_in_logs(db_path: &Path, applied_seq: u64) -> Result<Vec<Op>> {
    let (active, old) = log_paths(db_path);
    let mut ops = log::read_log(&old)?;
    ops.extend(log::read_log(&active)?);
    ops.retain(|op| op.seq > applied_seq);
    Ok(ops)
}

impl Buffer {
    /// Opens the buffer of the database file `db_path` after recovery: the logs must hold
    /// nothing unapplied (they are emptied here). `applied_seq` is the stored watermark.
    pub(crate) fn open(
        db_path: &Path,
        options: BufferOptions,
        applied_seq: u64,
        recovered: u64,
        lock: LogLock,
    ) -> Result<Arc<Buffer>> {
        let (log_path, old_path) = log_paths(db_path);
        match std::fs::remove_file(&old_path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        let active = log::open_append(&log_path)?;
        active.set_len(0)?;
        active.sync_all()?;
        Ok(Arc::new(Buffer {
            _lock: lock,
            log_path,
            old_path,
            state: Mutex::new(State {
                next_seq: applied_seq + 1,
                applied_seq,
                queue: VecDeque::new(),
                overlay: HashMap::default(),
                claims: HashMap::default(),
                claimed_by: HashMap::default(),
                scratch: Vec::new(),
                apply_gen: 0,
                active: Arc::new(active),
                active_bytes: 0,
                old: None,
                dirty: false,
                flush_to: 0,
                shutdown: false,
                last_error: None,
            }),
            options,
            work: Condvar::new(),
            progress: Condvar::new(),
            gate: RwLock::new(()),
            checks: Mutex::new(std::collections::HashMap::new()),
            catalog_gen: Mutex::new(None),
            applied: AtomicU64::new(recovered),
            batches: AtomicU64::new(0),
            recovered: AtomicU64::new(recovered),
            cache_hits: AtomicU64::new(0),
            cache_misses: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            apply_errors: AtomicU64::new(0),
            subscribers: Mutex::new(Vec::new()),
            callbacks: Mutex::new(Vec::new()),
            threads: Mutex::new(Vec::new()),
        }))
    }

    /// Starts the applier (and, for `FsyncPolicy::Interval`, the syncer) thread.
    /// `apply` is called without any buffer lock held.
    pub(crate) fn start(self: &Arc<Buffer>, apply: Box<ApplyFn>) -> Result<()> {
        let weak = Arc::downgrade(self);
        let applier = std::thread::Builder::new()
            .name("pocketdb-applier".to_string())
            .spawn(move || applier_loop(weak, apply))?;
        let mut threads = lock(&self.threads);
        threads.push(applier);
        if let FsyncPolicy::Interval(ms) = self.options.fsync {
            let weak = Arc::downgrade(self);
            let every = Duration::from_millis(ms.max(1));
            threads.push(
                std::thread::Builder::new()
                    .name("pocketdb-log-sync".to_string())
                    .spawn(move || syncer_loop(weak, every))?,
            );
        }
        Ok(())
    }

    /// Shared side of the gate: held by buffered writers.
    pub(crate) fn shared(&self) -> RwLockReadGuard<'_, ()> {
        self.gate.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Exclusive side of the gate, after every buffered write was applied: held by
    /// writes that run synchronously in buffered mode.
    pub(crate) fn exclusive(&self) -> Result<RwLockWriteGuard<'_, ()>> {
        let guard = self.gate.write().unwrap_or_else(PoisonError::into_inner);
        lock(&self.checks).clear();
        self.flush()?;
        Ok(guard)
    }

    /// What a buffered write to `collection` must check before it is acknowledged,
    /// found by `look` the first time (and again after any write that took the exclusive
    /// side of the gate, as index changes do). Called with the shared side held.
    pub(crate) fn write_checks(
        &self,
        collection: &str,
        look: impl FnOnce() -> Result<WriteChecks>,
    ) -> Result<WriteChecks> {
        if let Some(known) = lock(&self.checks).get(collection) {
            return Ok(known.clone());
        }
        let found = look()?;
        lock(&self.checks).insert(collection.to_string(), found.clone());
        Ok(found)
    }

    /// Called by the applier with the index catalog generation its batch reads: when
    /// the catalog changed since the last batch (through another handle: this handle's
    /// own index changes clear the checks under the exclusive gate), what writers check
    /// is looked up again, so writes acknowledged from now on are checked against the
    /// new indexes.
    pub(crate) fn catalog_seen(&self, generation: &str) {
        let mut seen = lock(&self.catalog_gen);
        if seen.as_deref() != Some(generation) {
            // Also at the first batch: checks found before it are of an unknown one.
            lock(&self.checks).clear();
            *seen = Some(generation.to_string());
        }
    }

    /// Runs `f` with the buffer locked (after waiting for room), then writes the records
    /// it pushed to the log, in one frame and one `write`, and syncs them as the policy
    /// says. When `f` returns `Err`, whatever it pushed is taken back.
    pub(crate) fn append<R>(&self, f: impl FnOnce(&mut Appender<'_>) -> Result<R>) -> Result<R> {
        let mut st = lock(&self.state);
        while st.queue.len() >= self.options.max_buffered && !st.shutdown {
            self.work.notify_one();
            st = self
                .progress
                .wait(st)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if st.shutdown {
            return Err(Error::Buffer("the buffer is shut down".to_string()));
        }
        // The frame is built in place (header first, filled in once the payload is
        // known) in a buffer reused from one append to the next.
        let scratch = log::begin_frame(std::mem::take(&mut st.scratch));
        let mut appender = Appender {
            state: &mut st,
            bytes: scratch,
            pushed: 0,
        };
        let out = f(&mut appender);
        let Appender {
            mut bytes, pushed, ..
        } = appender;
        let out = match out {
            Ok(out) if pushed == 0 => {
                st.scratch = bytes;
                return Ok(out);
            }
            Ok(out) => out,
            Err(e) => {
                unpush(&mut st, pushed);
                st.scratch = bytes;
                return Err(e);
            }
        };
        let written = if log::finish_frame(&mut bytes) {
            log::append(&st.active, &bytes)
        } else {
            Err(Error::Buffer(format!(
                "{} bytes of writes do not fit in one buffer log frame",
                bytes.len() - log::header_len()
            )))
        };
        let frame_len = bytes.len() as u64;
        // A very large frame's allocation is not worth keeping.
        if bytes.capacity() <= 4 * 1024 * 1024 {
            st.scratch = bytes;
        }
        if let Err(e) = written {
            // The records are not in the log: take them back out of the buffer, and cut
            // off any part of the frame that was written, so that later frames do not
            // follow a torn one (reading stops at the first torn frame).
            let _ = st.active.set_len(st.active_bytes);
            unpush(&mut st, pushed);
            return Err(e);
        }
        st.active_bytes += frame_len;
        st.dirty = true;
        let file = st.active.clone();
        // The applier sleeps without a deadline while the queue is empty: wake it when
        // this append made the queue non-empty (it then waits `flush_interval`), and
        // when a full batch is ready.
        if st.queue.len() == pushed || st.queue.len() >= self.options.batch_size {
            self.work.notify_one();
        }
        drop(st);
        if self.options.fsync == FsyncPolicy::EveryWrite {
            file.sync_data()
                .map_err(|e| Error::Buffer(format!("cannot sync the buffer log: {e}")))?;
        }
        Ok(out)
    }

    /// The buffered state of a document (`None`: no unapplied write to it), with the
    /// apply generation it was seen at. Counts a cache hit or miss.
    pub(crate) fn lookup(&self, collection: &str, key: &str) -> (Option<Entry>, u64) {
        let st = lock(&self.state);
        let entry = st.overlay.get(collection).and_then(|m| m.get(key)).cloned();
        let counter = if entry.is_some() {
            &self.cache_hits
        } else {
            &self.cache_misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        (entry, st.apply_gen)
    }

    /// The apply generation and those of `keys` that no unapplied write of `collection`
    /// touches (the others are answered by the buffer).
    pub(crate) fn unbuffered_keys<'k>(
        &self,
        collection: &str,
        keys: impl Iterator<Item = &'k Arc<str>>,
    ) -> (u64, Vec<Arc<str>>) {
        let st = lock(&self.state);
        let buffered = st.overlay.get(collection);
        let unknown = keys
            .filter(|k| buffered.is_none_or(|m| !m.contains_key(&***k)))
            .cloned()
            .collect();
        (st.apply_gen, unknown)
    }

    /// True when some write to `collection` is unapplied.
    pub(crate) fn has_pending(&self, collection: &str) -> bool {
        lock(&self.state)
            .overlay
            .get(collection)
            .is_some_and(|m| !m.is_empty())
    }

    /// The collections an unapplied write stores a document in (which the applier
    /// creates if they do not exist yet), sorted.
    pub(crate) fn storing_collections(&self) -> Vec<String> {
        let st = lock(&self.state);
        let mut names: Vec<String> = st
            .overlay
            .iter()
            .filter(|(_, m)| m.values().any(|e| e.doc.is_some()))
            .map(|(name, _)| name.to_string())
            .collect();
        names.sort();
        names
    }

    /// True when an unapplied write stores a document in `collection`.
    pub(crate) fn stores_in(&self, collection: &str) -> bool {
        lock(&self.state)
            .overlay
            .get(collection)
            .is_some_and(|m| m.values().any(|e| e.doc.is_some()))
    }

    /// Every unapplied document state of `collection`, in write order.
    pub(crate) fn snapshot(&self, collection: &str) -> Vec<(String, Entry)> {
        let st = lock(&self.state);
        let mut out: Vec<(String, Entry)> = st
            .overlay
            .get(collection)
            .map(|m| m.iter().map(|(k, e)| (k.to_string(), e.clone())).collect())
            .unwrap_or_default();
        out.sort_by_key(|(_, e)| e.seq);
        out
    }

    /// Waits until every write buffered before the call is applied. Fails when the
    /// applier reports an error while the writes wait (they stay buffered and are retried).
    pub(crate) fn flush(&self) -> Result<()> {
        let mut st = lock(&self.state);
        let target = st.next_seq - 1;
        while st.applied_seq < target {
            if st.shutdown {
                return Err(Error::Buffer("the buffer is shut down".to_string()));
            }
            st.flush_to = st.flush_to.max(target);
            self.work.notify_one();
            let (next, _) = self
                .progress
                .wait_timeout(st, Duration::from_millis(100))
                .unwrap_or_else(PoisonError::into_inner);
            st = next;
            if let Some(e) = st.last_error.clone() {
                if st.applied_seq < target {
                    return Err(Error::Buffer(format!("applying buffered writes: {e}")));
                }
            }
        }
        Ok(())
    }

    /// Counters.
    pub(crate) fn stats(&self) -> BufferStats {
        let st = lock(&self.state);
        let old_bytes = st
            .old
            .and_then(|_| std::fs::metadata(&self.old_path).ok())
            .map_or(0, |m| m.len());
        BufferStats {
            buffered: st.queue.len() as u64,
            applied: self.applied.load(Ordering::Relaxed),
            log_bytes: st.active_bytes + old_bytes,
            recovered: self.recovered.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
            cache_hits: self.cache_hits.load(Ordering::Relaxed),
            cache_misses: self.cache_misses.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            apply_errors: self.apply_errors.load(Ordering::Relaxed),
        }
    }

    /// A channel receiving events; events are dropped for a receiver that falls more
    /// than `capacity` behind.
    pub(crate) fn subscribe(&self, capacity: usize) -> Receiver<BufferEvent> {
        let (tx, rx) = std::sync::mpsc::sync_channel(capacity.max(1));
        lock(&self.subscribers).push(tx);
        rx
    }

    /// Registers a callback run on the applier thread for every event.
    pub(crate) fn on_event(&self, f: Box<EventFn>) {
        lock(&self.callbacks).push(f);
    }

    fn emit(&self, event: BufferEvent) {
        lock(&self.subscribers).retain(|tx| match tx.try_send(event.clone()) {
            Ok(()) | Err(TrySendError::Full(_)) => true,
            Err(TrySendError::Disconnected(_)) => false,
        });
        for cb in lock(&self.callbacks).iter() {
            cb(&event);
        }
    }

    /// Stops the background threads and syncs the log. Unapplied writes stay in the log
    /// and are applied when the database is next opened.
    pub(crate) fn shutdown(&self) {
        let file = {
            let mut st = lock(&self.state);
            st.shutdown = true;
            st.active.clone()
        };
        self.work.notify_all();
        self.progress.notify_all();
        let me = std::thread::current().id();
        let threads: Vec<JoinHandle<()>> = lock(&self.threads).drain(..).collect();
        for t in threads {
            if t.thread().id() != me {
                let _ = t.join();
            }
        }
        let _ = file.sync_data();
    }

    /// Takes the next batch to apply, waiting for one to be due. `None` on shutdown.
    fn next_batch(&self) -> Option<(Vec<Arc<Op>>, u64)> {
        let mut st = lock(&self.state);
        let mut due = Instant::now() + self.options.flush_interval;
        loop {
            if st.shutdown {
                return None;
            }
            let now = Instant::now();
            if !st.queue.is_empty()
                && (st.queue.len() >= self.options.batch_size
                    || st.flush_to > st.applied_seq
                    || now >= due)
            {
                let n = st.queue.len().min(self.options.batch_size);
                let batch: Vec<Arc<Op>> = st.queue.iter().take(n).cloned().collect();
                let last = batch.last().map_or(st.applied_seq, |op| op.seq);
                return Some((batch, last));
            }
            if st.queue.is_empty() {
                due = now + self.options.flush_interval;
                st = self.work.wait(st).unwrap_or_else(PoisonError::into_inner);
                due = due.max(Instant::now() + self.options.flush_interval);
            } else {
                let (next, _) = self
                    .work
                    .wait_timeout(st, due.saturating_duration_since(now))
                    .unwrap_or_else(PoisonError::into_inner);
                st = next;
            }
        }
    }

    /// Records an applied batch: removes it from the queue and the overlay (unless a
    /// later write shadows an entry) and truncates or rotates the log.
    fn applied(&self, batch: &[Arc<Op>], last: u64) -> Result<()> {
        let mut st = lock(&self.state);
        for _ in 0..batch.len() {
            st.queue.pop_front();
        }
        for op in batch {
            release_claims(&mut st, op.seq);
            if let Some(m) = st.overlay.get_mut(&op.collection) {
                if m.get(&op.key).is_some_and(|e| e.seq == op.seq) {
                    m.remove(&op.key);
                }
            }
        }
        st.overlay.retain(|_, m| !m.is_empty());
        st.apply_gen += 1;
        st.last_error = None;
        if st.old.is_some_and(|(_, old_last)| old_last <= last) {
            st.old = None;
            std::fs::remove_file(&self.old_path)?;
        }
        if st.queue.is_empty() {
            st.active.set_len(0)?;
            st.active_bytes = 0;
            if st.old.is_some() {
                st.old = None;
                std::fs::remove_file(&self.old_path)?;
            }
        } else if st.active_bytes > ROTATE_BYTES && st.old.is_none() {
            st.active.sync_data()?;
            std::fs::rename(&self.log_path, &self.old_path)?;
            let fresh = log::open_append(&self.log_path)?;
            st.old = Some((st.active_bytes, st.next_seq - 1));
            st.active = Arc::new(fresh);
            st.active_bytes = 0;
        }
        drop(st);
        self.applied
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        self.batches.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Moves the applied watermark (after the batch's events were emitted, so `flush`
    /// returns after them) and wakes waiters.
    fn publish(&self, last: u64) {
        lock(&self.state).applied_seq = last;
        self.progress.notify_all();
    }

    fn failed(&self, message: String) {
        self.apply_errors.fetch_add(1, Ordering::Relaxed);
        lock(&self.state).last_error = Some(message.clone());
        self.progress.notify_all();
        self.emit(BufferEvent::Error { message });
    }
}

fn applier_loop(buffer: Weak<Buffer>, apply: Box<ApplyFn>) {
    loop {
        let Some(buf) = buffer.upgrade() else {
            return;
        };
        let Some((batch, last)) = buf.next_batch() else {
            return;
        };
        match apply(&batch, last) {
            Ok(dropped) => {
                if let Err(e) = buf.applied(&batch, last) {
                    buf.emit(BufferEvent::Error {
                        message: format!("truncating the buffer log: {e}"),
                    });
                }
                for (seq, error) in dropped {
                    buf.dropped.fetch_add(1, Ordering::Relaxed);
                    buf.emit(BufferEvent::Error {
                        message: format!("buffered write {seq} dropped when applied: {error}"),
                    });
                }
                buf.emit(BufferEvent::Flush {
                    count: batch.len() as u64,
                    applied_seq: last,
                });
                buf.publish(last);
            }
            Err(e) => {
                buf.failed(e.to_string());
                // Back off before retrying; the writes stay buffered and readable.
                let pause = buf.options.flush_interval.max(Duration::from_millis(10));
                drop(buf);
                std::thread::sleep(pause);
            }
        }
    }
}

fn syncer_loop(buffer: Weak<Buffer>, every: Duration) {
    loop {
        std::thread::sleep(every);
        let Some(buf) = buffer.upgrade() else {
            return;
        };
        let file = {
            let mut st = lock(&buf.state);
            if st.shutdown {
                return;
            }
            if !st.dirty {
                continue;
            }
            st.dirty = false;
            st.active.clone()
        };
        if let Err(e) = file.sync_data() {
            buf.emit(BufferEvent::Error {
                message: format!("syncing the buffer log: {e}"),
            });
        }
    }
}
