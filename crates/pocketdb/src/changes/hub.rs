//! Delivery of committed changes to subscribers: one hub per database.
//!
//! Writers call [`Hub::committed`] after each commit; it bumps a generation counter and
//! wakes the dispatcher thread. The dispatcher (started with the first subscriber,
//! stopped when the last one leaves or the database is dropped) reads the new change-log
//! rows once, in one read transaction, looks up the documents subscribers asked for in
//! that same snapshot, and hands each subscriber ([`Sink`]) the events of its scope in
//! commit order. Writes made by other processes (or by any path that does not call
//! `committed`) are found by polling the log every [`POLL_INTERVAL`].
//!
//! Writers never wait for subscribers: `committed` only takes a tiny mutex, and sinks
//! are bounded (a watch queue that fills up is dropped with `Error::Lagged`).

use super::retention::{self, ChangeRetention};
use super::{read_keyed, Change, ChangeOp};
use crate::database::{Database, DbInner};
use crate::engine::schema::{table_name, validate_collection_name};
use crate::error::Result;
use crate::plugin::Registry;
use rusqlite::Connection;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

/// How often the dispatcher looks at the log without being woken (writes by other
/// processes are seen within this delay).
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Change-log rows read per query by the dispatcher.
const BATCH: usize = 1024;

/// A document as of the dispatcher's snapshot.
#[derive(Debug)]
pub(crate) struct Looked {
    /// Storage position (breaks sort ties as the cursor does).
    pub rid: i64,
    /// The whole document.
    pub doc: Value,
}

/// One change-log entry on its way to subscribers.
#[derive(Debug)]
pub(crate) struct Event {
    pub change: Change,
    /// The stored `_id` key.
    pub key: String,
    /// Whether the document was looked up (some subscriber wanted it).
    pub looked_up: bool,
    /// The document as of the snapshot the event was read in (None when absent).
    pub doc: Option<Arc<Looked>>,
}

/// A subscriber of a hub.
pub(crate) trait Sink: Send + Sync {
    /// The collection whose events the sink wants; `None` for every collection.
    fn collection(&self) -> Option<&str>;
    /// Whether events of this kind must carry the document.
    fn wants_document(&self, op: ChangeOp) -> bool;
    /// Events of the sink's scope, in commit order, read in the snapshot `conn` is in;
    /// `plugins` are the database's, for sinks that hand documents to the caller (their
    /// `after_read` hooks). Returns false to be unsubscribed.
    fn deliver(&self, events: &[Arc<Event>], conn: &Connection, plugins: &Registry) -> bool;
    /// Called after every sink of the batch got its events, still in the snapshot:
    /// expensive work (re-running a query) goes here so that it does not delay the
    /// other sinks' notifications.
    fn settle(&self, _conn: &Connection, _plugins: &Registry) {}
    /// Every change up to `seq` has been delivered (called after each batch).
    fn advance(&self, _seq: i64) {}
}

struct Subscriber {
    id: u64,
    sink: Arc<dyn Sink>,
}

struct HubState {
    subscribers: Vec<Subscriber>,
    /// Sequence of the last change handed to subscribers; `None` until the first
    /// subscriber arrives.
    cursor: Option<i64>,
    running: bool,
    next_id: u64,
}

struct Retention {
    policy: ChangeRetention,
    commits: u32,
    last_trim: Instant,
}

/// The per-database notification and fan-out point.
pub(crate) struct Hub {
    name: String,
    pub(crate) plugins: Registry,
    generation: Mutex<u64>,
    wake: Condvar,
    state: Mutex<HubState>,
    retention: Mutex<Retention>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Hub {
    /// A hub for a database whose writer connection is `conn` (the retention policy is
    /// loaded from the file).
    pub(crate) fn new(conn: &Connection, name: &str) -> Result<Arc<Hub>> {
        super::migrate(conn)?;
        let policy = retention::load(conn)?;
        Ok(Arc::new(Hub {
            name: name.to_string(),
            plugins: Registry::default(),
            generation: Mutex::new(0),
            wake: Condvar::new(),
            state: Mutex::new(HubState {
                subscribers: Vec::new(),
                cursor: None,
                running: false,
                next_id: 1,
            }),
            retention: Mutex::new(Retention {
                policy,
                commits: 0,
                last_trim: Instant::now(),
            }),
        }))
    }

    /// Called after every committed write (by `Database::write`, once the write's
    /// transaction committed): wakes the dispatcher, runs the plugins' `after_write`
    /// hooks and, when a retention policy is set and due, trims the log in a write of
    /// its own. Never blocks on subscribers.
    pub(crate) fn committed(&self, db: &Database) {
        {
            let mut g = lock(&self.generation);
            *g = g.wrapping_add(1);
        }
        self.wake.notify_all();
        self.plugins.committed(db, &self.name);
        let due = {
            let mut r = lock(&self.retention);
            if r.policy.is_unbounded() {
                None
            } else {
                r.commits += 1;
                if r.commits >= r.policy.check_every.max(1)
                    || r.last_trim.elapsed() >= Duration::from_secs(1)
                {
                    r.commits = 0;
                    r.last_trim = Instant::now();
                    Some(r.policy.clone())
                } else {
                    None
                }
            }
        };
        if let Some(policy) = due {
            if let Err(e) = db.inner.pool.write(|conn| retention::trim(conn, &policy)) {
                tracing::warn!("change-log retention: {e}");
            }
        }
    }

    pub(crate) fn retention(&self) -> ChangeRetention {
        lock(&self.retention).policy.clone()
    }

    pub(crate) fn set_retention(&self, policy: ChangeRetention) {
        let mut r = lock(&self.retention);
        r.policy = policy;
        r.commits = 0;
    }

    /// Registers a sink built by `make`, which receives the sequence from which the
    /// dispatcher will deliver (every change after it reaches the sink). `make` runs
    /// with the hub locked, so no batch is dispatched between it and the registration.
    pub(crate) fn register<R>(
        self: &Arc<Hub>,
        db: &Database,
        make: impl FnOnce(i64) -> Result<(Arc<dyn Sink>, R)>,
    ) -> Result<(u64, R)> {
        let mut st = lock(&self.state);
        let cursor = match st.cursor {
            Some(c) => c,
            None => {
                let c = db.last_change_seq()?;
                st.cursor = Some(c);
                c
            }
        };
        let (sink, out) = make(cursor)?;
        let id = st.next_id;
        st.next_id += 1;
        st.subscribers.push(Subscriber { id, sink });
        if !st.running {
            st.running = true;
            let hub = Arc::clone(self);
            let weak = Arc::downgrade(&db.inner);
            let spawned = std::thread::Builder::new()
                .name("pocketdb-changes".to_string())
                .spawn(move || hub.run(weak));
            if let Err(e) = spawned {
                st.running = false;
                st.subscribers.retain(|s| s.id != id);
                return Err(e.into());
            }
        }
        Ok((id, out))
    }

    /// Removes a subscriber (a dropped stream or live query).
    pub(crate) fn unregister(&self, id: u64) {
        lock(&self.state).subscribers.retain(|s| s.id != id);
    }

    /// Number of registered subscribers.
    pub(crate) fn subscriber_count(&self) -> usize {
        lock(&self.state).subscribers.len()
    }

    fn run(self: Arc<Hub>, db: Weak<DbInner>) {
        let mut seen = *lock(&self.generation);
        loop {
            {
                let mut g = lock(&self.generation);
                if *g == seen {
                    g = self
                        .wake
                        .wait_timeout(g, POLL_INTERVAL)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
                seen = *g;
            }
            let Some(inner) = db.upgrade() else {
                return;
            };
            let db = Database { inner };
            let mut st = lock(&self.state);
            if st.subscribers.is_empty() {
                st.running = false;
                st.cursor = None;
                return;
            }
            let t = Instant::now();
            if let Err(e) = dispatch(&db, &mut st) {
                tracing::warn!("change dispatcher: {e}");
            }
            if std::env::var_os("POCKETDB_TRACE").is_some()
                && t.elapsed() > Duration::from_millis(2)
            {
                eprintln!(
                    "dispatch took {:?} subs {}",
                    t.elapsed(),
                    st.subscribers.len()
                );
            }
        }
    }
}

/// Reads every change after the cursor in one snapshot and fans it out.
fn dispatch(db: &Database, st: &mut HubState) -> Result<()> {
    let Some(mut cursor) = st.cursor else {
        return Ok(());
    };
    let start = cursor;
    let plugins = db.inner.hub.plugins();
    db.read(|conn| {
        let tx = conn.unchecked_transaction()?;
        loop {
            let rows = read_keyed(&tx, None, cursor, BATCH)?;
            let Some(last) = rows.last().map(|(c, _)| c.seq) else {
                break;
            };
            let events = build_events(&tx, rows, |collection, op| {
                st.subscribers.iter().any(|s| {
                    s.sink.collection().is_none_or(|c| c == collection) && s.sink.wants_document(op)
                })
            })?;
            let mut by_collection: HashMap<&str, Vec<Arc<Event>>> = HashMap::new();
            for e in &events {
                by_collection
                    .entry(e.change.collection.as_str())
                    .or_default()
                    .push(Arc::clone(e));
            }
            st.subscribers.retain(|s| {
                let mine: &[Arc<Event>] = match s.sink.collection() {
                    None => &events,
                    Some(c) => match by_collection.get(c) {
                        Some(v) => v,
                        None => return true,
                    },
                };
                s.sink.deliver(mine, &tx, plugins)
            });
            for s in &st.subscribers {
                s.sink.settle(&tx, plugins);
            }
            cursor = last;
        }
        tx.commit()?;
        Ok(())
    })?;
    st.cursor = Some(cursor);
    if cursor != start {
        for s in &st.subscribers {
            s.sink.advance(cursor);
        }
    }
    Ok(())
}

/// Turns log rows into events, looking documents up (in `conn`'s snapshot) when `wants`
/// says some subscriber needs them.
pub(crate) fn build_events(
    conn: &Connection,
    rows: Vec<(Change, String)>,
    wants: impl Fn(&str, ChangeOp) -> bool,
) -> Result<Vec<Arc<Event>>> {
    let mut cache: HashMap<(String, String), Option<Arc<Looked>>> = HashMap::new();
    let mut exists: HashMap<String, bool> = HashMap::new();
    let mut out = Vec::with_capacity(rows.len());
    for (change, key) in rows {
        let want = matches!(
            change.op,
            ChangeOp::Insert | ChangeOp::Update | ChangeOp::Replace
        ) && wants(&change.collection, change.op);
        let doc = if want {
            let ck = (change.collection.clone(), key.clone());
            match cache.get(&ck) {
                Some(d) => d.clone(),
                None => {
                    let d = lookup(conn, &change.collection, &key, &mut exists)?.map(Arc::new);
                    cache.insert(ck, d.clone());
                    d
                }
            }
        } else {
            None
        };
        out.push(Arc::new(Event {
            change,
            key,
            looked_up: want,
            doc,
        }));
    }
    Ok(out)
}

/// The current version of a document by its stored key.
pub(crate) fn lookup(
    conn: &Connection,
    collection: &str,
    key: &str,
    exists: &mut HashMap<String, bool>,
) -> Result<Option<Looked>> {
    let present = match exists.get(collection) {
        Some(p) => *p,
        None => {
            let p = validate_collection_name(collection).is_ok()
                && conn
                    .prepare_cached("SELECT 1 FROM _pocketdb_collections WHERE name = ?1")?
                    .exists([collection])?;
            exists.insert(collection.to_string(), p);
            p
        }
    };
    if !present {
        return Ok(None);
    }
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT rid, doc FROM {} WHERE id = ?1",
        table_name(collection)
    ))?;
    let mut rows = stmt.query([key])?;
    match rows.next()? {
        None => Ok(None),
        Some(r) => Ok(Some(Looked {
            rid: r.get(0)?,
            doc: crate::value::jsonb::stored_doc(conn, r.get_ref(1)?)?,
        })),
    }
}
