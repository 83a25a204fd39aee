//! Live queries: a query whose result is kept up to date as writes commit.
//!
//! `coll.live(query)` runs the query once and subscribes to the collection's change
//! events (through the database's change hub, see [`crate::changes`]). The result is then
//! maintained incrementally, in the spirit of EventReduce:
//!
//! - the engine holds the matching documents in result order (sort keys, then storage
//!   order as the cursor breaks ties) — for a limited query only the first
//!   `skip + limit + buffer` of them, and a flag saying whether that prefix is complete;
//! - for each event it looks at the document as committed and at whether it was held:
//!   a document that neither matched before (as far as the held prefix knows) nor
//!   matches now costs one `Filter::matches` call and nothing else; one that enters,
//!   leaves or moves is removed / inserted in place by binary search with
//!   `SortSpec`'s order;
//! - only when a limited window can no longer be filled from the held prefix (documents
//!   left and the buffer beyond `limit` ran dry) is the query re-run.
//!
//! Writes to other collections never reach the query. Notifications carry the full
//! result and a diff (added / removed / changed / moved) against the last delivered
//! result; with a coalescing delay, bursts of writes produce one notification. Dropping
//! the handle unsubscribes.
//!
//! # Plugins
//!
//! A live query goes through the collection's plugins the way `find` does: a JSON
//! filter ([`LiveQuery::new`], `query().….live()`) passes the `before_read` hooks once,
//! when the query is opened, and every document delivered passes the `after_read` hooks
//! (before projection). The engine works on **stored** documents throughout: the
//! initial run compiles the rewritten filter to SQL over the table, and change events
//! carry documents as stored, so the in-memory matcher evaluates that same rewritten
//! filter against them, and sort keys are taken from them, as `find` sorts. Matching
//! the plugin's output instead (decrypted documents against the caller's filter) would
//! let the initial result and the incremental patches disagree whenever a hook is not
//! an exact inverse of the other (a random-nonce encrypted field, a rewritten `null`).
//! Held documents are kept already transformed by `after_read`, so a hook runs once per
//! document entering the result, not once per notification. A parsed filter
//! ([`LiveQuery::from_filter`]) is taken as it is, like
//! [`Collection::find_filter`](crate::Collection::find_filter).

use crate::changes::hub::{Event, Looked, Sink};
use crate::changes::ChangeOp;
use crate::collection::{from_document, Collection, Document};
use crate::database::Database;
use crate::engine::schema::{table_name, validate_collection_name};
use crate::error::{Error, Result};
use crate::plugin::Registry;
use crate::query::sort::SortValue;
use crate::query::sql::{compile_filter, SqlFilter};
use crate::query::{parse_filter, BuiltQuery, Filter, Projection, QueryBuilder, SortSpec};
use rusqlite::Connection;
use serde_json::Value;
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::marker::PhantomData;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// What a live query selects: filter, sort, skip, limit, projection, and how it
/// notifies.
///
/// ```
/// use pocketdb::{Database, LiveQuery};
/// use serde_json::{json, Value};
/// use std::time::Duration;
///
/// let db = Database::memory()?;
/// let tasks = db.collection::<Value>("tasks");
/// tasks.insert_one(json!({"_id": 1, "title": "write", "prio": 2, "done": false}))?;
/// let mut live = tasks.live(
///     LiveQuery::new(json!({"done": false})).sort(json!({"prio": -1})).limit(10),
/// )?;
/// let first = live.next_timeout(Duration::from_secs(5))?.expect("initial result");
/// assert_eq!(first.results.len(), 1);
/// tasks.insert_one(json!({"_id": 2, "title": "test", "prio": 5, "done": false}))?;
/// let update = live.next_timeout(Duration::from_secs(5))?.expect("an update");
/// assert_eq!(update.results[0]["_id"], 2);
/// assert_eq!(update.diff.added.len(), 1);
/// assert_eq!(update.diff.added[0].index, 0);
/// # Ok::<(), pocketdb::Error>(())
/// ```
#[derive(Debug)]
pub struct LiveQuery {
    filter: Filter,
    /// The filter as the caller wrote it, for the plugins' `before_read` hooks (which
    /// rewrite JSON); `None` for a parsed filter, taken as it is.
    json: Option<Value>,
    sort: Option<SortSpec>,
    skip: u64,
    limit: Option<u64>,
    projection: Option<Projection>,
    coalesce: Duration,
    buffer: Option<usize>,
    error: Option<Error>,
}

impl LiveQuery {
    /// A live query over the documents matching a MongoDB filter.
    /// The filter passes the collection's plugins' `before_read` hooks when the query is
    /// opened, as `find`'s does.
    pub fn new(filter: Value) -> LiveQuery {
        let mut q = match parse_filter(&filter) {
            Ok(f) => LiveQuery::from_filter(f),
            Err(e) => {
                let mut q = LiveQuery::from_filter(Filter::all());
                q.error = Some(e);
                q
            }
        };
        q.json = Some(filter);
        q
    }

    /// A live query over the documents matching a parsed filter. The filter is used as
    /// it is (like [`Collection::find_filter`]): plugins' `before_read` hooks do not see
    /// it, so it must be written against stored documents.
    pub fn from_filter(filter: Filter) -> LiveQuery {
        LiveQuery {
            filter,
            json: None,
            sort: None,
            skip: 0,
            limit: None,
            projection: None,
            coalesce: Duration::ZERO,
            buffer: None,
            error: None,
        }
    }

    /// Orders the result by a MongoDB sort document.
    pub fn sort(mut self, spec: Value) -> LiveQuery {
        match SortSpec::parse(&spec) {
            Ok(s) => self.sort = (!s.is_empty()).then_some(s),
            Err(e) => self.error = self.error.or(Some(e)),
        }
        self
    }

    /// Orders the result by a parsed sort.
    pub fn sort_spec(mut self, spec: SortSpec) -> LiveQuery {
        self.sort = (!spec.is_empty()).then_some(spec);
        self
    }

    /// Skips the first `n` results.
    pub fn skip(mut self, n: u64) -> LiveQuery {
        self.skip = n;
        self
    }

    /// Keeps at most `n` results (0: no limit).
    pub fn limit(mut self, n: u64) -> LiveQuery {
        self.limit = (n > 0).then_some(n);
        self
    }

    /// Shapes each result with a MongoDB projection.
    pub fn projection(mut self, spec: Value) -> LiveQuery {
        match Projection::parse(&spec) {
            Ok(p) => self.projection = Some(p),
            Err(e) => self.error = self.error.or(Some(e)),
        }
        self
    }

    /// Waits this long after a change before notifying, so a burst of writes produces
    /// one notification (default: none).
    pub fn coalesce(mut self, delay: Duration) -> LiveQuery {
        self.coalesce = delay;
        self
    }

    /// Documents held beyond `skip + limit` so that documents leaving the window can be
    /// replaced without re-running the query (default: `max(limit, 16)`).
    pub fn buffer(mut self, n: usize) -> LiveQuery {
        self.buffer = Some(n);
        self
    }
}

impl From<BuiltQuery> for LiveQuery {
    fn from(q: BuiltQuery) -> LiveQuery {
        let mut live = LiveQuery::from_filter(q.filter).skip(q.skip);
        live.sort = q.sort.filter(|s| !s.is_empty());
        live.limit = q.limit.filter(|l| *l > 0);
        live.projection = q.projection;
        live
    }
}

// ----- the incremental engine ----------------------------------------------------------

#[derive(Debug, Clone)]
struct Entry {
    key: String,
    rid: i64,
    /// Taken from the stored document.
    sort_key: Vec<SortValue>,
    /// The document after the plugins' `after_read` hooks (before projection).
    doc: Value,
}

/// One result as delivered: its key and its projected document.
#[derive(Debug, Clone, PartialEq)]
struct Item {
    key: String,
    doc: Value,
}

struct Engine {
    collection: String,
    /// The filter after the plugins' `before_read` hooks: it is evaluated against
    /// stored documents, by SQL in `rerun` and by the matcher in `apply`.
    filter: Filter,
    sql: SqlFilter,
    sort: Option<SortSpec>,
    projection: Option<Projection>,
    skip: usize,
    limit: Option<usize>,
    /// How many matching documents to hold (`None`: all of them).
    capacity: Option<usize>,
    /// The first matching documents in result order.
    held: Vec<Entry>,
    keys: HashSet<String>,
    /// True when `held` holds every matching document.
    complete: bool,
}

impl Engine {
    fn new(collection: &str, q: &LiveQuery) -> Engine {
        let skip = usize::try_from(q.skip).unwrap_or(usize::MAX);
        let limit = q.limit.map(|l| usize::try_from(l).unwrap_or(usize::MAX));
        let capacity = limit.map(|l| {
            let buffer = q.buffer.unwrap_or_else(|| l.clamp(16, 1024));
            skip.saturating_add(l).saturating_add(buffer)
        });
        Engine {
            collection: collection.to_string(),
            sql: compile_filter(&q.filter),
            filter: q.filter.clone(),
            sort: q.sort.clone(),
            projection: q.projection.clone(),
            skip,
            limit,
            capacity,
            held: Vec::new(),
            keys: HashSet::new(),
            complete: true,
        }
    }

    fn sort_key(&self, doc: &Value) -> Vec<SortValue> {
        self.sort
            .as_ref()
            .map(|s| s.sort_key(doc))
            .unwrap_or_default()
    }

    fn order(&self, a: &Entry, key: &[SortValue], rid: i64) -> Ordering {
        let by_sort = match &self.sort {
            Some(s) => s.compare_keys(&a.sort_key, key),
            None => Ordering::Equal,
        };
        by_sort.then(a.rid.cmp(&rid))
    }

    /// Runs the query in `conn`'s snapshot and holds its first `capacity` results
    /// (passed through the plugins' `after_read` hooks).
    fn rerun(&mut self, conn: &Connection, plugins: &Registry) -> Result<()> {
        self.held.clear();
        self.keys.clear();
        self.complete = true;
        let exists = conn
            .prepare_cached("SELECT 1 FROM _pocketdb_collections WHERE name = ?1")?
            .exists([&self.collection])?;
        if !exists {
            return Ok(());
        }
        let sql = format!(
            "SELECT rid, id, doc FROM {} WHERE {} ORDER BY rid",
            table_name(&self.collection),
            self.sql.sql
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(self.sql.params.iter()))?;
        let mut all = Vec::new();
        while let Some(r) = rows.next()? {
            let doc = crate::value::jsonb::stored_doc(conn, r.get_ref(2)?)?;
            if self.sql.exact || self.filter.matches(&doc) {
                all.push(Entry {
                    rid: r.get(0)?,
                    key: r.get(1)?,
                    sort_key: self.sort_key(&doc),
                    doc,
                });
            }
        }
        if let Some(sort) = &self.sort {
            // stable: ties keep storage order, as the cursor does
            all.sort_by(|a, b| sort.compare_keys(&a.sort_key, &b.sort_key));
        }
        if let Some(cap) = self.capacity {
            if all.len() > cap {
                all.truncate(cap);
                self.complete = false;
            }
        }
        for e in &mut all {
            plugins.after_read(&self.collection, &mut e.doc)?;
        }
        self.keys = all.iter().map(|e| e.key.clone()).collect();
        self.held = all;
        Ok(())
    }

    fn clear(&mut self) {
        self.held.clear();
        self.keys.clear();
        self.complete = true;
    }

    /// Applies "the document with this key is now `now`" (None: absent; a stored
    /// document). Returns true when the held prefix changed. On error (an `after_read`
    /// hook failed) the held prefix is unchanged.
    fn apply(&mut self, key: &str, now: Option<&Looked>, plugins: &Registry) -> Result<bool> {
        let was_held = self.keys.contains(key);
        let matching = now.filter(|l| self.filter.matches(&l.doc));
        if !was_held && matching.is_none() {
            return Ok(false);
        }
        let view = match matching {
            Some(l) => {
                let mut doc = l.doc.clone();
                plugins.after_read(&self.collection, &mut doc)?;
                Some(doc)
            }
            None => None,
        };
        if was_held {
            if let Some(p) = self.held.iter().position(|e| e.key == key) {
                self.held.remove(p);
            }
            self.keys.remove(key);
        }
        if let (Some(l), Some(doc)) = (matching, view) {
            let sort_key = self.sort_key(&l.doc);
            let at = self
                .held
                .partition_point(|e| self.order(e, &sort_key, l.rid) == Ordering::Less);
            // Past the end of an incomplete prefix, unknown documents may come first.
            if self.complete || at < self.held.len() {
                self.held.insert(
                    at,
                    Entry {
                        key: key.to_string(),
                        rid: l.rid,
                        sort_key,
                        doc,
                    },
                );
                self.keys.insert(key.to_string());
                if let Some(cap) = self.capacity {
                    if self.held.len() > cap {
                        if let Some(e) = self.held.pop() {
                            self.keys.remove(&e.key);
                        }
                        self.complete = false;
                    }
                }
            } else if !was_held {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// True when the window cannot be filled from the held prefix.
    fn needs_rerun(&self) -> bool {
        match self.limit {
            Some(l) => !self.complete && self.held.len() < self.skip.saturating_add(l),
            None => false,
        }
    }

    fn visible(&self) -> Vec<Item> {
        let end = match self.limit {
            Some(l) => self.skip.saturating_add(l).min(self.held.len()),
            None => self.held.len(),
        };
        self.held
            .get(self.skip.min(end)..end)
            .unwrap_or_default()
            .iter()
            .map(|e| Item {
                key: e.key.clone(),
                doc: match &self.projection {
                    Some(p) => p.apply(&e.doc),
                    None => e.doc.clone(),
                },
            })
            .collect()
    }
}

// ----- shared state between the dispatcher and the handle -------------------------------

/// Counters of a live query's work, to check that it is incremental.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LiveStats {
    /// Change events of the collection the query examined.
    pub events: u64,
    /// Times the query was run against the database (the initial run included).
    pub runs: u64,
    /// Times the visible result changed.
    pub changes: u64,
}

struct LiveState {
    engine: Engine,
    current: Vec<Item>,
    delivered: Option<Vec<Item>>,
    /// When the current result first differed from the delivered one.
    dirty_at: Option<Instant>,
    token: i64,
    closed: bool,
    error: Option<Error>,
    stats: LiveStats,
    /// The held prefix ran dry during this batch: re-run in `settle`.
    rerun_pending: bool,
    /// Consumers blocked on `ready` (notifying costs a system call: skip it when 0).
    waiting: u32,
}

struct LiveShared {
    state: Mutex<LiveState>,
    ready: Condvar,
    coalesce: Duration,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl LiveShared {
    /// Wakes blocked consumers, if any, after releasing the lock.
    fn wake(&self, st: MutexGuard<'_, LiveState>) {
        let waiting = st.waiting > 0;
        drop(st);
        if waiting {
            self.ready.notify_all();
        }
    }

    /// Blocks on `ready`, counted in `waiting`.
    fn wait<'a>(
        &self,
        mut st: MutexGuard<'a, LiveState>,
        timeout: Duration,
    ) -> MutexGuard<'a, LiveState> {
        st.waiting += 1;
        let mut st = self
            .ready
            .wait_timeout(st, timeout)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
        st.waiting -= 1;
        st
    }

    fn close(&self) {
        lock(&self.state).closed = true;
        self.ready.notify_all();
    }
}

struct LiveSink {
    shared: Arc<LiveShared>,
    collection: String,
}

impl Sink for LiveSink {
    fn collection(&self) -> Option<&str> {
        Some(&self.collection)
    }

    fn wants_document(&self, op: ChangeOp) -> bool {
        op != ChangeOp::Delete && op != ChangeOp::Drop
    }

    fn deliver(&self, events: &[Arc<Event>], _conn: &Connection, plugins: &Registry) -> bool {
        let mut st = lock(&self.shared.state);
        if st.closed {
            return false;
        }
        let mut touched = false;
        for e in events {
            st.stats.events += 1;
            if e.change.op == ChangeOp::Drop {
                st.engine.clear();
                touched = true;
            } else {
                let now = if e.looked_up { e.doc.as_deref() } else { None };
                match st.engine.apply(&e.key, now, plugins) {
                    Ok(changed) => touched |= changed,
                    Err(err) => {
                        // The document stays as it was held; the consumer gets the error.
                        st.error = Some(err);
                        self.shared.ready.notify_all();
                    }
                }
            }
        }
        if st.engine.needs_rerun() {
            // re-run in `settle`, after the other sinks were notified
            st.rerun_pending = true;
            return true;
        }
        if touched {
            publish(&mut st, &self.shared);
        }
        true
    }

    fn settle(&self, conn: &Connection, plugins: &Registry) {
        let mut st = lock(&self.shared.state);
        if !st.rerun_pending || st.closed {
            return;
        }
        st.rerun_pending = false;
        st.stats.runs += 1;
        if let Err(err) = st.engine.rerun(conn, plugins) {
            st.error = Some(err);
            self.shared.wake(st);
            return;
        }
        publish(&mut st, &self.shared);
    }

    fn advance(&self, seq: i64) {
        let mut st = lock(&self.shared.state);
        if seq > st.token {
            st.token = seq;
            self.shared.wake(st);
        }
    }
}

/// Recomputes the visible result and wakes the consumer when it changed.
fn publish(st: &mut MutexGuard<'_, LiveState>, shared: &LiveShared) {
    {
        let visible = st.engine.visible();
        if visible != st.current {
            st.current = visible;
            st.stats.changes += 1;
            if st.dirty_at.is_none() {
                st.dirty_at = Some(Instant::now());
            }
            shared.ready.notify_all();
        }
    }
}

// ----- the public handle ---------------------------------------------------------------

/// A document of a live result with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveItem<T> {
    /// The document's `_id`.
    pub id: Value,
    /// Position in the new result (for `removed`: in the previous one).
    pub index: usize,
    /// The document (projected).
    pub document: T,
}

/// A document that stayed in the result but changed place relative to the others.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveMove {
    /// The document's `_id`.
    pub id: Value,
    /// Position in the previous result.
    pub from: usize,
    /// Position in the new result.
    pub to: usize,
}

/// How a live result changed since the previous notification. `moved` is minimal:
/// documents that kept their relative order are not listed, even when their index
/// shifted because others entered or left.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveDiff<T> {
    /// Documents that entered the result.
    pub added: Vec<LiveItem<T>>,
    /// Documents that left it.
    pub removed: Vec<LiveItem<T>>,
    /// Documents still in it whose content changed.
    pub changed: Vec<LiveItem<T>>,
    /// Documents still in it that moved relative to the others.
    pub moved: Vec<LiveMove>,
}

impl<T> LiveDiff<T> {
    /// True when nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && self.moved.is_empty()
    }
}

/// One notification of a live query: the whole new result and the diff from the
/// previous one (the first notification is the initial result, all `added`).
#[derive(Debug, Clone, PartialEq)]
pub struct LiveUpdate<T> {
    /// The result, in order.
    pub results: Vec<T>,
    /// What changed since the previous notification.
    pub diff: LiveDiff<T>,
    /// The result reflects every change up to this change-log sequence.
    pub token: i64,
}

/// A live query subscription. Iterate (blocking) or call
/// [`next_timeout`](LiveHandle::next_timeout) for notifications, or hand it a callback
/// with [`on_update`](LiveHandle::on_update). Dropping it unsubscribes.
pub struct LiveHandle<T = Value> {
    shared: Arc<LiveShared>,
    db: Database,
    sink_id: u64,
    _type: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for LiveHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = lock(&self.shared.state);
        f.debug_struct("LiveHandle")
            .field("collection", &st.engine.collection)
            .field("token", &st.token)
            .field("stats", &st.stats)
            .finish()
    }
}

fn item_id(key: &str) -> Value {
    serde_json::from_str(key).unwrap_or_else(|_| Value::String(key.to_string()))
}

fn diff_items<T: Document>(old: &[Item], new: &[Item]) -> Result<LiveDiff<T>> {
    let old_pos: HashMap<&str, usize> = old
        .iter()
        .enumerate()
        .map(|(i, it)| (it.key.as_str(), i))
        .collect();
    let new_keys: HashSet<&str> = new.iter().map(|it| it.key.as_str()).collect();
    let mut diff = LiveDiff {
        added: Vec::new(),
        removed: Vec::new(),
        changed: Vec::new(),
        moved: Vec::new(),
    };
    let mut common: Vec<(usize, usize)> = Vec::new();
    for (j, it) in new.iter().enumerate() {
        match old_pos.get(it.key.as_str()) {
            None => diff.added.push(LiveItem {
                id: item_id(&it.key),
                index: j,
                document: from_document(it.doc.clone())?,
            }),
            Some(&i) => {
                common.push((i, j));
                if old[i].doc != it.doc {
                    diff.changed.push(LiveItem {
                        id: item_id(&it.key),
                        index: j,
                        document: from_document(it.doc.clone())?,
                    });
                }
            }
        }
    }
    for (i, it) in old.iter().enumerate() {
        if !new_keys.contains(it.key.as_str()) {
            diff.removed.push(LiveItem {
                id: item_id(&it.key),
                index: i,
                document: from_document(it.doc.clone())?,
            });
        }
    }
    let olds: Vec<usize> = common.iter().map(|(i, _)| *i).collect();
    let stay = longest_increasing(&olds);
    for (n, (i, j)) in common.iter().enumerate() {
        if !stay.contains(&n) {
            diff.moved.push(LiveMove {
                id: item_id(&new[*j].key),
                from: *i,
                to: *j,
            });
        }
    }
    Ok(diff)
}

/// Positions (in `xs`) of one longest strictly increasing subsequence.
fn longest_increasing(xs: &[usize]) -> HashSet<usize> {
    let mut tails: Vec<usize> = Vec::new(); // positions in xs
    let mut prev: Vec<Option<usize>> = vec![None; xs.len()];
    for (p, &x) in xs.iter().enumerate() {
        let at = tails.partition_point(|&t| xs[t] < x);
        if at > 0 {
            prev[p] = Some(tails[at - 1]);
        }
        if at == tails.len() {
            tails.push(p);
        } else {
            tails[at] = p;
        }
    }
    let mut out = HashSet::new();
    let mut cur = tails.last().copied();
    while let Some(p) = cur {
        out.insert(p);
        cur = prev[p];
    }
    out
}

impl<T: Document> LiveHandle<T> {
    fn results(items: &[Item]) -> Result<Vec<T>> {
        items
            .iter()
            .map(|it| from_document(it.doc.clone()))
            .collect()
    }

    /// The result as of the last change processed (whether or not it was notified).
    pub fn current(&self) -> Result<Vec<T>> {
        let items = lock(&self.shared.state).current.clone();
        Self::results(&items)
    }

    /// The change-log sequence the result reflects.
    pub fn token(&self) -> i64 {
        lock(&self.shared.state).token
    }

    /// Counters of the work done for this query.
    pub fn stats(&self) -> LiveStats {
        lock(&self.shared.state).stats
    }

    /// Waits until the result reflects every change up to `token`; false on timeout.
    pub fn wait_for(&self, token: i64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = lock(&self.shared.state);
        while st.token < token && !st.closed {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            st = self.shared.wait(st, deadline - now);
        }
        st.token >= token
    }

    /// Waits until the result reflects every change committed so far (in a buffered
    /// database, every write acknowledged so far: they are applied first); false on
    /// timeout.
    pub fn sync(&self, timeout: Duration) -> Result<bool> {
        self.db.flush()?;
        let last = self.db.last_change_seq()?;
        Ok(self.wait_for(last, timeout))
    }

    /// The next notification without waiting (`Ok(None)`: nothing new).
    pub fn try_next(&mut self) -> Result<Option<LiveUpdate<T>>> {
        self.next_until(Some(Instant::now()))
    }

    /// The next notification, waiting at most `timeout` (`Ok(None)` on timeout). The
    /// first one is the initial result.
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<LiveUpdate<T>>> {
        self.next_until(Instant::now().checked_add(timeout))
    }

    fn next_until(&mut self, deadline: Option<Instant>) -> Result<Option<LiveUpdate<T>>> {
        let mut st = lock(&self.shared.state);
        loop {
            if st.closed {
                return Ok(None);
            }
            if let Some(e) = st.error.take() {
                return Err(e);
            }
            let now = Instant::now();
            let due = match (&st.delivered, st.dirty_at) {
                (None, _) => Some(now),
                (Some(_), Some(t)) => Some(t + self.shared.coalesce),
                (Some(_), None) => None,
            };
            if let Some(due) = due.filter(|d| *d <= now) {
                let _ = due;
                let old = st.delivered.take().unwrap_or_default();
                let new = st.current.clone();
                st.delivered = Some(new.clone());
                st.dirty_at = None;
                let token = st.token;
                drop(st);
                let diff = diff_items::<T>(&old, &new)?;
                if diff.is_empty() && !old.is_empty() {
                    st = lock(&self.shared.state);
                    continue;
                }
                return Ok(Some(LiveUpdate {
                    results: Self::results(&new)?,
                    diff,
                    token,
                }));
            }
            let wake = match (due, deadline) {
                (Some(d), Some(e)) => d.min(e),
                (Some(d), None) => d,
                (None, Some(e)) => e,
                (None, None) => now + Duration::from_secs(3600),
            };
            if deadline.is_some_and(|e| e <= now) {
                return Ok(None);
            }
            st = self.shared.wait(st, wake.saturating_duration_since(now));
        }
    }

    /// Calls `callback` with every notification (the initial result first) from a
    /// background thread, until the returned subscription is dropped.
    pub fn on_update(
        mut self,
        mut callback: impl FnMut(Result<LiveUpdate<T>>) + Send + 'static,
    ) -> Result<LiveSubscription> {
        let shared = Arc::clone(&self.shared);
        std::thread::Builder::new()
            .name("pocketdb-live".to_string())
            .spawn(move || loop {
                match self.next_until(None) {
                    Ok(Some(u)) => callback(Ok(u)),
                    Ok(None) => break,
                    Err(e) => callback(Err(e)),
                }
            })?;
        Ok(LiveSubscription { shared })
    }
}

impl<T: Document> Iterator for LiveHandle<T> {
    type Item = Result<LiveUpdate<T>>;

    /// Blocks until the next notification.
    fn next(&mut self) -> Option<Result<LiveUpdate<T>>> {
        self.next_until(None).transpose()
    }
}

impl<T> Drop for LiveHandle<T> {
    fn drop(&mut self) {
        self.shared.close();
        self.db.inner.hub.unregister(self.sink_id);
    }
}

/// A callback subscription to a live query ([`LiveHandle::on_update`]); dropping it
/// unsubscribes.
pub struct LiveSubscription {
    shared: Arc<LiveShared>,
}

impl std::fmt::Debug for LiveSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveSubscription").finish()
    }
}

impl Drop for LiveSubscription {
    fn drop(&mut self) {
        self.shared.close();
    }
}

// ----- entry points --------------------------------------------------------------------

impl<T: Document> Collection<T> {
    /// Opens a live query on this collection; see [`LiveQuery`].
    pub fn live(&self, mut query: LiveQuery) -> Result<LiveHandle<T>> {
        if let Some(e) = query.error.take() {
            return Err(e);
        }
        validate_collection_name(self.name())?;
        let db = self.database().clone();
        // A live query follows the change log, which buffered writes reach when they
        // are applied: the ones acknowledged before it opens are applied first, so the
        // initial result holds them.
        if self.buffer_pending() {
            db.flush()?;
        }
        if let Some(mut json) = query.json.take() {
            if db.has_plugins() {
                db.before_read(self.name(), &mut json)?;
                query.filter = parse_filter(&json)?;
            }
        }
        let hub = Arc::clone(&db.inner.hub);
        let name = self.name().to_string();
        let (sink_id, shared) = hub.register(&db, |cursor| {
            let mut engine = Engine::new(&name, &query);
            db.read(|conn| {
                let tx = conn.unchecked_transaction()?;
                engine.rerun(&tx, db.inner.hub.plugins())?;
                tx.commit()?;
                Ok(())
            })?;
            let current = engine.visible();
            let shared = Arc::new(LiveShared {
                state: Mutex::new(LiveState {
                    engine,
                    current,
                    delivered: None,
                    dirty_at: None,
                    token: cursor,
                    closed: false,
                    error: None,
                    stats: LiveStats {
                        runs: 1,
                        ..LiveStats::default()
                    },
                    rerun_pending: false,
                    waiting: 0,
                }),
                ready: Condvar::new(),
                coalesce: query.coalesce,
            });
            let sink: Arc<dyn Sink> = Arc::new(LiveSink {
                shared: Arc::clone(&shared),
                collection: name.clone(),
            });
            Ok((sink, shared))
        })?;
        Ok(LiveHandle {
            shared,
            db,
            sink_id,
            _type: PhantomData,
        })
    }
}

impl<T: Document> QueryBuilder<Collection<T>> {
    /// Opens the query as a live query (see [`Collection::live`]); its conditions pass
    /// the plugins' `before_read` hooks as `find`'s do.
    pub fn live(self) -> Result<LiveHandle<T>> {
        let json = self.filter_json();
        let (coll, q) = self.into_parts()?;
        let mut live = LiveQuery::from(q);
        live.json = Some(json);
        coll.live(live)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lis_keeps_relative_order() {
        let s = longest_increasing(&[0, 2, 1, 3]);
        assert_eq!(s.len(), 3);
        assert!(longest_increasing(&[]).is_empty());
        assert_eq!(longest_increasing(&[3, 2, 1, 0]).len(), 1);
    }
}
