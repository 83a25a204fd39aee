//! Change streams: `coll.watch(filter)`, `db.watch()`, `client.watch()`.
//!
//! A stream is a blocking iterator of [`ChangeEvent`]s in commit order. Each event's
//! `token` is its change-log sequence; `watch_from(token)` resumes right after it, also
//! in another process after a restart. A stream first reads the log from its token up to
//! the point where it joined the dispatcher's fan-out ("catch-up"), then takes events
//! from its bounded queue. A queue that fills up (a consumer too slow for the write
//! rate) is dropped from the fan-out, and after the queued events the stream yields
//! [`Error::Lagged`] with the token to resume from: writers never wait.
//!
//! An event's `full_document` is the document as a read returns it: it passes the
//! collection's plugins' `after_read` hooks (an encrypted field comes out decrypted),
//! and the stream's filter sees it that way. An event whose hook fails (a value
//! encrypted under an unknown key) is yielded as that error, in its place; the stream
//! goes on after it.

use super::hub::{build_events, Event, Sink};
use super::retention;
use super::{read_keyed, ChangeOp, UpdateDescription};
use crate::client::Client;
use crate::collection::{Collection, Document};
use crate::database::Database;
use crate::engine::schema::validate_collection_name;
use crate::error::{Error, Result};
use crate::plugin::Registry;
use crate::query::{parse_filter, Filter};
use rusqlite::Connection;
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Which events carry the changed document (`full_document`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FullDocument {
    /// Inserts and replacements carry the document (MongoDB's default).
    #[default]
    Default,
    /// Updates carry it too (MongoDB's `updateLookup`).
    UpdateLookup,
    /// No event carries it (cheapest).
    Off,
}

impl FullDocument {
    fn wants(self, op: ChangeOp) -> bool {
        match self {
            FullDocument::Off => false,
            FullDocument::Default => matches!(op, ChangeOp::Insert | ChangeOp::Replace),
            FullDocument::UpdateLookup => {
                matches!(op, ChangeOp::Insert | ChangeOp::Replace | ChangeOp::Update)
            }
        }
    }
}

/// How to open a change stream.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// A filter over the event as [`ChangeEvent::to_json`] shows it, e.g.
    /// `{"operationType": "insert", "fullDocument.status": "active"}`.
    pub filter: Option<Value>,
    /// Which events carry the document.
    pub full_document: FullDocument,
    /// Events buffered for a slow consumer before it is dropped with `Lagged`
    /// (default 4,096).
    pub capacity: usize,
    /// Resume after this token instead of starting at the current end of the log.
    pub resume_after: Option<i64>,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            filter: None,
            full_document: FullDocument::Default,
            capacity: 4096,
            resume_after: None,
        }
    }
}

impl WatchOptions {
    /// Sets the event filter.
    pub fn filter(mut self, filter: Value) -> Self {
        self.filter = Some(filter);
        self
    }

    /// Sets which events carry the document.
    pub fn full_document(mut self, mode: FullDocument) -> Self {
        self.full_document = mode;
        self
    }

    /// Sets the buffer capacity (at least 1).
    pub fn capacity(mut self, n: usize) -> Self {
        self.capacity = n.max(1);
        self
    }

    /// Resumes after `token`.
    pub fn resume_after(mut self, token: i64) -> Self {
        self.resume_after = Some(token);
        self
    }
}

/// One committed change, as a change stream delivers it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent {
    /// The change-log sequence: pass it to `watch_from` to resume after this event.
    pub token: i64,
    /// What happened.
    pub op: ChangeOp,
    /// The database's name.
    pub database: String,
    /// The collection's name.
    pub collection: String,
    /// The document's `_id` (null for `Drop`).
    pub id: Value,
    /// The document's revision after the write.
    pub rev: i64,
    /// Wall-clock time of the write, milliseconds since the Unix epoch.
    pub ts_millis: i64,
    /// For updates: the fields set and removed.
    pub update_description: Option<UpdateDescription>,
    /// The document, when the stream's [`FullDocument`] mode asks for it, after the
    /// collection's plugins' `after_read` hooks (as `find` returns it). It is read when
    /// the event is dispatched, so it may already include later writes (as with
    /// MongoDB's `updateLookup`); `None` when the document is gone by then.
    pub full_document: Option<Value>,
}

impl ChangeEvent {
    pub(crate) fn from_event(e: &Event, database: &str, mode: FullDocument) -> ChangeEvent {
        let c = &e.change;
        ChangeEvent {
            token: c.seq,
            op: c.op,
            database: database.to_string(),
            collection: c.collection.clone(),
            id: c.id.clone(),
            rev: c.rev,
            ts_millis: c.ts_millis,
            update_description: c.update_description.clone(),
            full_document: if mode.wants(c.op) {
                e.doc.as_ref().map(|d| d.doc.clone())
            } else {
                None
            },
        }
    }

    /// Passes `full_document` through the plugins' `after_read` hooks.
    pub(crate) fn read_back(mut self, plugins: &Registry) -> Result<ChangeEvent> {
        if let Some(doc) = &mut self.full_document {
            plugins.after_read(&self.collection, doc)?;
        }
        Ok(self)
    }

    /// The event shaped like a MongoDB change event (`operationType`, `ns`,
    /// `documentKey`, `updateDescription`, `fullDocument`, `wallTime`), with the token as
    /// `_id`.
    pub fn to_json(&self) -> Value {
        let mut out = json!({
            "_id": self.token,
            "operationType": self.op.as_str(),
            "ns": {"db": self.database, "coll": self.collection},
        });
        if let Value::Object(map) = &mut out {
            if self.op != ChangeOp::Drop {
                map.insert("documentKey".into(), json!({"_id": self.id}));
            }
            if let Some(d) = &self.update_description {
                map.insert("updateDescription".into(), d.to_json());
            }
            if let Some(doc) = &self.full_document {
                map.insert("fullDocument".into(), doc.clone());
            }
            map.insert("rev".into(), json!(self.rev));
            map.insert("wallTime".into(), json!(self.ts_millis));
        }
        out
    }
}

// ----- the queue shared by a stream and its sinks ---------------------------------------

struct Queue {
    /// Events, and errors of events whose `after_read` hooks failed.
    items: VecDeque<Result<ChangeEvent>>,
    /// Set when a sink found the queue full; the database whose events overflowed.
    lagged: Option<String>,
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
    capacity: usize,
    filter: Option<Filter>,
    full_document: FullDocument,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// Whether the stream delivers this event (errors always are).
    fn accepts(&self, e: &Result<ChangeEvent>) -> bool {
        match e {
            Ok(e) => self.filter.as_ref().is_none_or(|f| f.matches(&e.to_json())),
            Err(_) => true,
        }
    }

    /// The event as the stream delivers it, or `None` when the filter rejects it.
    fn prepare(
        &self,
        e: &Event,
        database: &str,
        plugins: &Registry,
    ) -> Option<Result<ChangeEvent>> {
        let ev = ChangeEvent::from_event(e, database, self.full_document).read_back(plugins);
        self.accepts(&ev).then_some(ev)
    }

    fn close(&self) {
        lock(&self.queue).closed = true;
        self.ready.notify_all();
    }
}

/// The sink of one database feeding a stream's queue.
struct WatchSink {
    shared: Arc<Shared>,
    database: String,
    collection: Option<String>,
    /// Deliver only events after this sequence.
    after: i64,
}

impl Sink for WatchSink {
    fn collection(&self) -> Option<&str> {
        self.collection.as_deref()
    }

    fn wants_document(&self, op: ChangeOp) -> bool {
        self.shared.full_document.wants(op)
    }

    fn deliver(&self, events: &[Arc<Event>], _conn: &Connection, plugins: &Registry) -> bool {
        let mut q = lock(&self.shared.queue);
        if q.closed || q.lagged.is_some() {
            return false;
        }
        let mut pushed = false;
        for e in events {
            if e.change.seq <= self.after {
                continue;
            }
            let Some(ev) = self.shared.prepare(e, &self.database, plugins) else {
                continue;
            };
            if q.items.len() >= self.shared.capacity {
                q.lagged = Some(self.database.clone());
                drop(q);
                self.shared.ready.notify_all();
                return false;
            }
            q.items.push_back(ev);
            pushed = true;
        }
        drop(q);
        if pushed {
            self.shared.ready.notify_all();
        }
        true
    }
}

// ----- the stream ----------------------------------------------------------------------

struct Source {
    db: Database,
    name: String,
    collection: Option<String>,
    sink_id: u64,
    /// Log range still to read directly: `(from, to]`.
    catchup: Option<(i64, i64)>,
    /// Token of the last event yielded from this database (or the start token).
    position: i64,
}

/// A blocking iterator of [`ChangeEvent`]s. Dropping it unsubscribes.
///
/// ```
/// use pocketdb::Database;
/// use serde_json::{json, Value};
/// use std::time::Duration;
///
/// let db = Database::memory()?;
/// let users = db.collection::<Value>("users");
/// let mut stream = users.watch(json!({"operationType": "insert"}))?;
/// users.insert_one(json!({"_id": 1, "name": "Ada"}))?;
/// let event = stream.next_timeout(Duration::from_secs(5))?.expect("an event");
/// assert_eq!(event.full_document, Some(json!({"_id": 1, "name": "Ada"})));
/// // resume later (even in another process) right after this event
/// let token = event.token;
/// users.insert_one(json!({"_id": 2}))?;
/// let mut resumed = users.watch_from(token)?;
/// assert_eq!(resumed.next_timeout(Duration::from_secs(5))?.map(|e| e.id), Some(json!(2)));
/// # Ok::<(), pocketdb::Error>(())
/// ```
pub struct ChangeStream {
    shared: Arc<Shared>,
    sources: Vec<Source>,
    pending: VecDeque<(usize, Result<ChangeEvent>)>,
    done: bool,
}

impl std::fmt::Debug for ChangeStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeStream")
            .field(
                "databases",
                &self.sources.iter().map(|s| &s.name).collect::<Vec<_>>(),
            )
            .field("done", &self.done)
            .finish()
    }
}

impl ChangeStream {
    fn open(
        targets: Vec<(Database, Option<String>, Option<i64>)>,
        options: &WatchOptions,
    ) -> Result<ChangeStream> {
        let filter = options.filter.as_ref().map(parse_filter).transpose()?;
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                items: VecDeque::new(),
                lagged: None,
                closed: false,
            }),
            ready: Condvar::new(),
            capacity: options.capacity.max(1),
            filter,
            full_document: options.full_document,
        });
        let mut stream = ChangeStream {
            shared: Arc::clone(&shared),
            sources: Vec::new(),
            pending: VecDeque::new(),
            done: false,
        };
        for (db, collection, token) in targets {
            let start = match token {
                Some(t) => {
                    db.read(|conn| retention::check_token(conn, t))?;
                    t
                }
                None => db.last_change_seq()?,
            };
            let name = db.name().to_string();
            let hub = Arc::clone(&db.inner.hub);
            let sink_shared = Arc::clone(&shared);
            let coll = collection.clone();
            let (sink_id, joined) = hub.register(&db, move |cursor| {
                let sink: Arc<dyn Sink> = Arc::new(WatchSink {
                    shared: sink_shared,
                    database: name,
                    collection: coll,
                    after: start,
                });
                Ok((sink, cursor))
            })?;
            stream.sources.push(Source {
                name: db.name().to_string(),
                db,
                collection,
                sink_id,
                catchup: (joined > start).then_some((start, joined)),
                position: start,
            });
        }
        Ok(stream)
    }

    /// The token to resume from: the last event yielded (or the start token). For a
    /// client-wide stream, the one of the first database; see
    /// [`resume_tokens`](ChangeStream::resume_tokens).
    pub fn resume_token(&self) -> i64 {
        self.sources.first().map_or(0, |s| s.position)
    }

    /// Resume tokens by database name (a client-wide stream watches several).
    pub fn resume_tokens(&self) -> BTreeMap<String, i64> {
        self.sources
            .iter()
            .map(|s| (s.name.clone(), s.position))
            .collect()
    }

    /// The next event without waiting: `Ok(None)` when none is ready.
    pub fn try_next(&mut self) -> Result<Option<ChangeEvent>> {
        self.next_timeout(Duration::ZERO)
    }

    /// The next event, waiting at most `timeout`: `Ok(None)` on timeout or when the
    /// stream was closed. Fails with `Lagged` (once) when the consumer fell behind.
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<ChangeEvent>> {
        let deadline = Instant::now().checked_add(timeout);
        self.next_until(deadline)
    }

    fn next_until(&mut self, deadline: Option<Instant>) -> Result<Option<ChangeEvent>> {
        if self.done {
            return Ok(None);
        }
        loop {
            if let Some((i, ev)) = self.pending.pop_front() {
                let ev = ev?;
                self.sources[i].position = ev.token;
                return Ok(Some(ev));
            }
            if let Some(i) = self.sources.iter().position(|s| s.catchup.is_some()) {
                self.catch_up(i)?;
                continue;
            }
            let mut q = lock(&self.shared.queue);
            loop {
                if let Some(ev) = q.items.pop_front() {
                    drop(q);
                    let ev = ev?;
                    if let Some(s) = self.sources.iter_mut().find(|s| s.name == ev.database) {
                        s.position = ev.token;
                    }
                    return Ok(Some(ev));
                }
                if let Some(db) = q.lagged.clone() {
                    drop(q);
                    self.done = true;
                    let resume_token = self
                        .sources
                        .iter()
                        .find(|s| s.name == db)
                        .map_or(0, |s| s.position);
                    return Err(Error::Lagged { resume_token });
                }
                if q.closed {
                    self.done = true;
                    return Ok(None);
                }
                let now = Instant::now();
                let wait = match deadline {
                    None => Duration::from_secs(3600),
                    Some(d) if d > now => d - now,
                    Some(_) => return Ok(None),
                };
                q = self
                    .shared
                    .ready
                    .wait_timeout(q, wait)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        }
    }

    /// Reads one page of source `i`'s catch-up range into `pending`.
    fn catch_up(&mut self, i: usize) -> Result<()> {
        let source = &mut self.sources[i];
        let Some((from, to)) = source.catchup else {
            return Ok(());
        };
        let shared = &self.shared;
        let collection = source.collection.clone();
        let name = source.name.clone();
        let (events, last) = source.db.read(|conn| {
            retention::check_token(conn, from)?;
            let tx = conn.unchecked_transaction()?;
            let mut rows = read_keyed(&tx, collection.as_deref(), from, 256)?;
            let last = rows.last().map(|(c, _)| c.seq);
            rows.retain(|(c, _)| c.seq <= to);
            let events = build_events(&tx, rows, |_, op| shared.full_document.wants(op))?;
            tx.commit()?;
            Ok((events, last))
        })?;
        let plugins = source.db.inner.hub.plugins();
        for e in &events {
            if let Some(ev) = shared.prepare(e, &name, plugins) {
                self.pending.push_back((i, ev));
            }
        }
        source.catchup = match last {
            Some(l) if l < to => Some((l, to)),
            _ => None,
        };
        Ok(())
    }

    /// Runs `callback` on every event in a background thread until the returned
    /// handle is dropped or the stream ends. Errors are handed to the callback too:
    /// after `Lagged` the stream ends (resume from its token); after an event whose
    /// `after_read` hook failed it goes on.
    pub fn for_each(
        mut self,
        callback: impl FnMut(Result<ChangeEvent>) + Send + 'static,
    ) -> Result<WatchHandle> {
        let shared = Arc::clone(&self.shared);
        spawn_callback(
            "pocketdb-watch",
            move || self.next_until(None),
            move || shared.close(),
            callback,
        )
    }
}

/// Runs a blocking stream on a background thread named `name`, handing each item and
/// each error to `callback`, until `next` ends it (`Ok(None)`) or the returned handle
/// is dropped. Dropping the handle calls `close`, which must make a blocked `next`
/// return `Ok(None)`. The callback form of every change stream (plain, sharded,
/// partitioned) is this function.
pub(crate) fn spawn_callback<E: Send + 'static>(
    name: &str,
    mut next: impl FnMut() -> Result<Option<E>> + Send + 'static,
    close: impl Fn() + Send + Sync + 'static,
    mut callback: impl FnMut(Result<E>) + Send + 'static,
) -> Result<WatchHandle> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            while !flag.load(Ordering::Acquire) {
                match next() {
                    Ok(Some(ev)) => callback(Ok(ev)),
                    Ok(None) => break,
                    Err(e) => callback(Err(e)),
                }
            }
        })?;
    Ok(WatchHandle {
        stop,
        close: Box::new(close),
    })
}

impl Iterator for ChangeStream {
    type Item = Result<ChangeEvent>;

    /// Blocks until the next event; ends after a `Lagged` error.
    fn next(&mut self) -> Option<Result<ChangeEvent>> {
        self.next_until(None).transpose()
    }
}

impl Drop for ChangeStream {
    fn drop(&mut self) {
        self.shared.close();
        for s in &self.sources {
            s.db.inner.hub.unregister(s.sink_id);
        }
    }
}

/// A callback subscription ([`ChangeStream::for_each`], `on_change`, and their sharded
/// forms); dropping it stops delivery and unsubscribes (the background thread ends
/// once a callback in progress returns).
pub struct WatchHandle {
    stop: Arc<AtomicBool>,
    /// Wakes the background thread's blocked stream and makes it end.
    close: Box<dyn Fn() + Send + Sync>,
}

impl std::fmt::Debug for WatchHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchHandle").finish()
    }
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        (self.close)();
    }
}

// ----- entry points --------------------------------------------------------------------

impl<T: Document> Collection<T> {
    /// A change stream of this collection, starting now; `filter` selects events by
    /// their [`ChangeEvent::to_json`] shape (`{}` for all).
    pub fn watch(&self, filter: Value) -> Result<ChangeStream> {
        self.watch_with(WatchOptions::default().filter(filter))
    }

    /// A change stream of this collection resuming right after `token`.
    pub fn watch_from(&self, token: i64) -> Result<ChangeStream> {
        self.watch_with(WatchOptions::default().resume_after(token))
    }

    /// A change stream of this collection.
    pub fn watch_with(&self, options: WatchOptions) -> Result<ChangeStream> {
        validate_collection_name(self.name())?;
        ChangeStream::open(
            vec![(
                self.database().clone(),
                Some(self.name().to_string()),
                options.resume_after,
            )],
            &options,
        )
    }

    /// Calls `callback` on every change of this collection from a background thread
    /// until the returned handle is dropped.
    pub fn on_change(
        &self,
        options: WatchOptions,
        callback: impl FnMut(Result<ChangeEvent>) + Send + 'static,
    ) -> Result<WatchHandle> {
        self.watch_with(options)?.for_each(callback)
    }
}

impl Database {
    /// Number of open change streams and live queries on this database (a dropped
    /// stream or handle is unsubscribed at once).
    pub fn change_subscribers(&self) -> usize {
        self.inner.hub.subscriber_count()
    }

    /// A change stream of every collection of this database, starting now.
    pub fn watch(&self) -> Result<ChangeStream> {
        self.watch_with(WatchOptions::default())
    }

    /// A change stream of this database resuming right after `token`.
    pub fn watch_from(&self, token: i64) -> Result<ChangeStream> {
        self.watch_with(WatchOptions::default().resume_after(token))
    }

    /// A change stream of this database.
    pub fn watch_with(&self, options: WatchOptions) -> Result<ChangeStream> {
        ChangeStream::open(vec![(self.clone(), None, options.resume_after)], &options)
    }

    /// Calls `callback` on every change of this database from a background thread
    /// until the returned handle is dropped.
    pub fn on_change(
        &self,
        options: WatchOptions,
        callback: impl FnMut(Result<ChangeEvent>) + Send + 'static,
    ) -> Result<WatchHandle> {
        self.watch_with(options)?.for_each(callback)
    }
}

impl Client {
    /// A change stream of every database present in the client's directory when it is
    /// opened (databases created later are not included). Events of one database come
    /// in commit order; there is no order across databases.
    pub fn watch(&self) -> Result<ChangeStream> {
        self.watch_with(WatchOptions::default(), &BTreeMap::new())
    }

    /// [`watch`](Client::watch) resuming each database after its token (from
    /// [`ChangeStream::resume_tokens`]); databases without a token start now.
    pub fn watch_with(
        &self,
        options: WatchOptions,
        tokens: &BTreeMap<String, i64>,
    ) -> Result<ChangeStream> {
        let mut targets = Vec::new();
        for name in self.list_databases()? {
            let token = tokens.get(&name).copied().or(options.resume_after);
            targets.push((self.database(&name)?, None, token));
        }
        ChangeStream::open(targets, &options)
    }
}
