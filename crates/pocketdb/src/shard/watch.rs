//! Change streams of sharded and partitioned collections: `watch`, `watch_from`.
//!
//! Every member file has its own change log, so a [`ShardedChangeStream`] opens one
//! ordinary [`ChangeStream`] per member and runs one forwarding thread per member that
//! moves its events into a bounded queue the stream reads. Events of one member come in
//! that member's commit order; **there is no global order across members** (events of
//! different members come in the order they reach the queue).
//!
//! A member is identified by its label (shard number or partition name) together with
//! its file's [`database_id`](crate::Database::database_id): a partition dropped and
//! recreated under the same label, or the shards of a collection dropped and
//! recreated, are new files whose change logs start again from 1.
//!
//! The resume token ([`ShardResumeToken`]) is the position (change-log sequence) of
//! every member and the `database_id` of the file it belongs to,
//! `{"<member>": {"seq": n, "database_id": "…"}, …}`. `watch_from(token)` resumes each
//! member right after its position, so nothing is missed or repeated. A member the
//! token does not name (a partition created after the token was taken), or whose file
//! is not the one the token names (recreated since), is read from the start of its
//! log. Tokens without `database_id`s (`{"<member>": n}`, written by earlier versions)
//! are still read; their positions are taken as they are.
//!
//! A forwarder whose member stream lags (the merged queue was full for too long) reopens
//! that member from its last forwarded position, reading the member's log, so the
//! merged stream itself never reports `Lagged`; it still fails when the member's log
//! was trimmed past that position ([`Error::ResumeTokenExpired`]).
//!
//! Partitions created after the stream opened are found by listing the collection's
//! directory at most every [`MEMBER_POLL`] while the consumer waits for events, and are
//! read from the start of their log; partitions deleted are no longer followed. The same
//! look checks that every member followed (partition or hash shard) is still the file
//! at its path: a member whose file was replaced (dropped and recreated) is followed
//! again from the start of the new file's log. Events of the replaced file already
//! queued are still delivered, but no longer move the member's position.

use super::Spread;
use crate::changes::watch::spawn_callback;
use crate::changes::{ChangeEvent, ChangeStream, WatchHandle, WatchOptions};
use crate::collection::{Collection, Document};
use crate::database::Database;
use crate::error::{Error, Result};
use crate::query::{parse_filter, Filter};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often a stream looks for new partitions and for members whose file was replaced
/// (while its consumer waits for events).
pub const MEMBER_POLL: Duration = Duration::from_millis(250);

/// How long a forwarding thread waits for its member before checking whether the stream
/// was dropped: bounds how long dropping a stream takes.
const FORWARD_TICK: Duration = Duration::from_millis(50);

/// The position of a sharded or partitioned change stream: the last change-log sequence
/// delivered (or the start position) of every member, by member label (shard number or
/// partition name), with the [`database_id`](crate::Database::database_id) of the
/// member file the position belongs to. Its text form is a JSON object,
/// `{"0":{"seq":12,"database_id":"…"},"1":{"seq":7,"database_id":"…"}}`
/// ([`Display`](fmt::Display) / [`FromStr`]); a member without a `database_id` is
/// written as its bare sequence, `{"0":12}`, the form of earlier versions, which is
/// still read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardResumeToken {
    positions: BTreeMap<String, i64>,
    /// The `database_id` of the file each position belongs to; only members with a
    /// position, and not every one (tokens of earlier versions have none).
    database_ids: BTreeMap<String, String>,
}

impl ShardResumeToken {
    /// A token from member positions, without `database_id`s (each position is taken
    /// as it is, whatever file the member has when resuming).
    pub fn new(positions: BTreeMap<String, i64>) -> ShardResumeToken {
        ShardResumeToken {
            positions,
            database_ids: BTreeMap::new(),
        }
    }

    /// The token with `member` at position `seq` of the member file whose
    /// [`database_id`](crate::Database::database_id) is `database_id` (`None`: of
    /// whatever file the member has when resuming).
    pub fn with_member(
        mut self,
        member: impl Into<String>,
        seq: i64,
        database_id: Option<String>,
    ) -> ShardResumeToken {
        let member = member.into();
        match database_id {
            Some(id) => self.database_ids.insert(member.clone(), id),
            None => self.database_ids.remove(&member),
        };
        self.positions.insert(member, seq);
        self
    }

    /// Positions by member label.
    pub fn positions(&self) -> &BTreeMap<String, i64> {
        &self.positions
    }

    /// The position of one member.
    pub fn get(&self, member: &str) -> Option<i64> {
        self.positions.get(member).copied()
    }

    /// The `database_id` of the file one member's position belongs to; `None` when the
    /// token does not say (a token of an earlier version).
    pub fn database_id(&self, member: &str) -> Option<&str> {
        self.database_ids.get(member).map(String::as_str)
    }

    /// The token as a JSON object of member label to `{"seq": n, "database_id": id}`
    /// (or to the bare sequence `n` for a member without a `database_id`).
    pub fn to_json(&self) -> Value {
        Value::Object(
            self.positions
                .iter()
                .map(|(member, seq)| {
                    let position = match self.database_ids.get(member) {
                        Some(id) => serde_json::json!({"seq": seq, "database_id": id}),
                        None => Value::from(*seq),
                    };
                    (member.clone(), position)
                })
                .collect::<Map<String, Value>>(),
        )
    }

    /// Reads a token from [`to_json`](ShardResumeToken::to_json)'s shape (members as
    /// `{"seq": n, "database_id": id}` or as a bare sequence `n`); fails with
    /// `InvalidArgument` for anything else.
    pub fn from_json(value: &Value) -> Result<ShardResumeToken> {
        let Value::Object(map) = value else {
            return Err(invalid_token("not a JSON object"));
        };
        let mut token = ShardResumeToken::default();
        for (member, position) in map {
            let (seq, database_id) = match position {
                Value::Object(fields) => {
                    if let Some(other) = fields.keys().find(|k| *k != "seq" && *k != "database_id")
                    {
                        return Err(invalid_token(&format!(
                            "member '{member}': unknown field '{other}'"
                        )));
                    }
                    let id = match fields.get("database_id") {
                        None => None,
                        Some(Value::String(id)) => Some(id.clone()),
                        Some(_) => {
                            return Err(invalid_token(&format!(
                                "member '{member}': database_id is not a string"
                            )))
                        }
                    };
                    (fields.get("seq"), id)
                }
                seq => (Some(seq), None),
            };
            let seq = seq
                .and_then(Value::as_i64)
                .filter(|s| *s >= 0)
                .ok_or_else(|| invalid_token(&format!("member '{member}': not a sequence")))?;
            token = token.with_member(member.clone(), seq, database_id);
        }
        Ok(token)
    }
}

fn invalid_token(why: &str) -> Error {
    Error::InvalidArgument(format!("invalid shard resume token: {why}"))
}

impl fmt::Display for ShardResumeToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_json())
    }
}

impl FromStr for ShardResumeToken {
    type Err = Error;

    fn from_str(s: &str) -> Result<ShardResumeToken> {
        let value: Value =
            serde_json::from_str(s).map_err(|e| invalid_token(&format!("not JSON: {e}")))?;
        ShardResumeToken::from_json(&value)
    }
}

/// One change of a sharded or partitioned collection: the member's event, tagged with
/// the member it happened in.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardChangeEvent {
    /// The member (shard number or partition name).
    pub member: String,
    /// The member's event; `token` is the sequence in that member's change log and
    /// `database` the name of the database that holds the collection.
    pub event: ChangeEvent,
    /// The stream's position right after this event: `watch_from` it to resume here.
    pub resume_token: ShardResumeToken,
}

impl ShardChangeEvent {
    /// [`ChangeEvent::to_json`] with `member` added and the composite resume token as
    /// `_id`.
    pub fn to_json(&self) -> Value {
        let mut out = self.event.to_json();
        if let Value::Object(map) = &mut out {
            map.insert("_id".into(), self.resume_token.to_json());
            map.insert("member".into(), Value::String(self.member.clone()));
        }
        out
    }
}

// ----- the merged queue ----------------------------------------------------------------

/// A member's event or error: its label, the generation of the follow that read it
/// (see [`Followed::generation`]) and the event.
type Message = (String, u64, Result<ChangeEvent>);

struct Queue {
    items: VecDeque<Message>,
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    not_empty: Condvar,
    not_full: Condvar,
    capacity: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// Queues a message, waiting while the queue is full; false when the stream was
    /// dropped or this forwarder stopped.
    fn push(&self, message: Message, stop: &AtomicBool) -> bool {
        let mut q = lock(&self.queue);
        while q.items.len() >= self.capacity {
            if q.closed || stop.load(Ordering::Acquire) {
                return false;
            }
            q = self
                .not_full
                .wait_timeout(q, FORWARD_TICK)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        if q.closed || stop.load(Ordering::Acquire) {
            return false;
        }
        q.items.push_back(message);
        drop(q);
        self.not_empty.notify_one();
        true
    }

    fn close(&self) {
        lock(&self.queue).closed = true;
        self.not_empty.notify_all();
        self.not_full.notify_all();
    }
}

/// A member followed by the stream: its file and its forwarding thread.
struct Followed {
    forwarder: Forwarder,
    /// The open instance of the member file followed; another instance at the
    /// member's path means the file was replaced.
    db: Database,
    /// The followed file's `database_id`.
    database_id: String,
    /// Tells the follow's messages apart from those of an earlier follow of the same
    /// label (a replaced file) still in the queue.
    generation: u64,
}

/// One member's forwarding thread.
struct Forwarder {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Forwarder {
    /// Stops the thread and waits for it (at most about [`FORWARD_TICK`]).
    fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            // A panicking forwarder has nothing left to clean up.
            let _ = t.join();
        }
    }
}

/// Moves `stream`'s events into the merged queue until stopped. A lagging member
/// stream is reopened from the last forwarded event; any other error is forwarded and
/// ends the thread.
fn forward(
    (label, generation): (String, u64),
    coll: Collection<Value>,
    mut stream: ChangeStream,
    options: WatchOptions,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
) {
    let mut last = stream.resume_token();
    while !stop.load(Ordering::Acquire) {
        match stream.next_timeout(FORWARD_TICK) {
            Ok(Some(ev)) => {
                last = ev.token;
                if !shared.push((label.clone(), generation, Ok(ev)), &stop) {
                    return;
                }
            }
            Ok(None) => {}
            Err(Error::Lagged { .. }) => {
                drop(stream);
                match coll.watch_with(options.clone().resume_after(last)) {
                    Ok(s) => stream = s,
                    Err(e) => {
                        shared.push((label, generation, Err(e)), &stop);
                        return;
                    }
                }
            }
            Err(e) => {
                shared.push((label, generation, Err(e)), &stop);
                return;
            }
        }
    }
}

// ----- the stream ----------------------------------------------------------------------

/// Where to resume a member: after `seq` of the file whose `database_id` is
/// `database_id` (of whatever file the member has when `None`).
struct Resume {
    seq: i64,
    database_id: Option<String>,
}

impl Resume {
    /// The start of the log of whatever file the member has.
    fn start() -> Resume {
        Resume {
            seq: 0,
            database_id: None,
        }
    }
}

/// A change stream of a sharded or partitioned collection: a blocking iterator of
/// [`ShardChangeEvent`]s merging the streams of every member (one forwarding thread per
/// member). Events of one member come in its commit order; there is no order across
/// members. Dropping the stream stops and joins its threads and unsubscribes from every
/// member. See the [module docs](crate::shard::watch).
///
/// ```
/// use pocketdb::{Client, ShardOptions};
/// use serde_json::json;
/// use std::time::Duration;
///
/// let dir = tempfile::tempdir()?;
/// let client = Client::open(dir.path())?;
/// let users = client.create_sharded_collection("app", "users", ShardOptions::new(3))?;
/// let mut stream = users.watch(json!({}))?;
/// users.insert_one(json!({"_id": 1}))?;
/// let event = stream.next_timeout(Duration::from_secs(5))?.expect("an event");
/// assert_eq!(event.member, users.member_of(json!({"_id": 1}))?);
/// users.insert_one(json!({"_id": 2}))?;
/// // resume right after the first event, on every shard
/// let token = event.resume_token.to_string();
/// let mut resumed = users.watch_from(&token.parse()?)?;
/// let next = resumed.next_timeout(Duration::from_secs(5))?.expect("an event");
/// assert_eq!(next.event.id, json!(2));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ShardedChangeStream {
    spread: Arc<Spread>,
    options: WatchOptions,
    shared: Arc<Shared>,
    members: BTreeMap<String, Followed>,
    /// The last delivered (or start) position of every member followed.
    positions: BTreeMap<String, i64>,
    /// The generation of the next follow.
    generations: u64,
    /// When to look for new partitions and replaced member files next.
    next_poll: Instant,
}

impl fmt::Debug for ShardedChangeStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShardedChangeStream")
            .field("collection", &self.spread.name)
            .field("positions", &self.positions)
            .finish()
    }
}

impl ShardedChangeStream {
    fn open(
        spread: Arc<Spread>,
        options: WatchOptions,
        token: Option<&ShardResumeToken>,
    ) -> Result<ShardedChangeStream> {
        if options.resume_after.is_some() {
            return Err(Error::InvalidArgument(
                "a sharded change stream resumes from a ShardResumeToken (watch_from), not resume_after"
                    .to_string(),
            ));
        }
        if let Some(f) = &options.filter {
            parse_filter(f)?;
        }
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                items: VecDeque::new(),
                closed: false,
            }),
            not_empty: Condvar::new(),
            not_full: Condvar::new(),
            capacity: options.capacity.max(1),
        });
        let mut stream = ShardedChangeStream {
            spread,
            options,
            shared,
            members: BTreeMap::new(),
            positions: BTreeMap::new(),
            generations: 0,
            next_poll: Instant::now() + MEMBER_POLL,
        };
        for label in stream.spread.labels_for(&Filter::all())? {
            // Without a token a member starts now; a member the token does not name
            // did not exist when it was taken, so all of its log is new.
            let start = token.map(|t| Resume {
                seq: t.get(&label).unwrap_or(0),
                database_id: t.database_id(&label).map(str::to_string),
            });
            // On error, dropping `stream` stops the forwarders already started.
            stream.follow(label, start)?;
        }
        Ok(stream)
    }

    /// The member `label` as its file is now; `None` when the file is gone. A hash
    /// shard is looked up by its path again, as the handle the stream was opened from
    /// keeps the instance it opened even when the collection was dropped and recreated.
    fn current_member(&self, label: &str) -> Result<Option<Collection<Value>>> {
        let Some(member) = self.spread.read_member(label)? else {
            return Ok(None);
        };
        if self.spread.partitioner().is_ok() {
            return Ok(Some(member));
        }
        let Some(path) = member.database().path().map(Path::to_path_buf) else {
            return Ok(Some(member));
        };
        let db = &self.spread.db;
        let opened = db.inner.shards.open(&path, db.options(), false)?;
        Ok(opened.map(|opened| {
            if Arc::ptr_eq(&opened.db.inner, &member.database().inner) {
                member
            } else {
                self.spread.member_collection(&opened.db)
            }
        }))
    }

    /// Opens `label`'s member stream and its forwarder: from now without `from`, else
    /// right after `from.seq` when the member's file is the one `from` names (or `from`
    /// names none), and from the start of the log when it is another file.
    fn follow(&mut self, label: String, from: Option<Resume>) -> Result<()> {
        // A member dropped since it was listed has nothing to follow.
        let Some(coll) = self.current_member(&label)? else {
            return Ok(());
        };
        let database_id = coll.database().database_id()?;
        let newest = coll.database().read(crate::changes::log_position)?;
        let mut options = self.options.clone();
        options.resume_after = from.map(|from| match from.database_id {
            Some(id) if id != database_id => 0,
            // A position past this file's log, in a token without file ids (written
            // before the member's file was recreated), was another file's.
            None if from.seq > newest => 0,
            _ => from.seq,
        });
        let member_stream = coll.watch_with(options.clone())?;
        self.positions
            .insert(label.clone(), member_stream.resume_token());
        let generation = self.generations;
        self.generations += 1;
        let db = coll.database().clone();
        let stop = Arc::new(AtomicBool::new(false));
        let (shared, flag, name) = (Arc::clone(&self.shared), Arc::clone(&stop), label.clone());
        let thread = std::thread::Builder::new()
            .name(format!("pocketdb-watch-{label}"))
            .spawn(move || {
                forward(
                    (name, generation),
                    coll,
                    member_stream,
                    options,
                    shared,
                    flag,
                )
            })?;
        self.members.insert(
            label,
            Followed {
                forwarder: Forwarder {
                    stop,
                    thread: Some(thread),
                },
                db,
                database_id,
                generation,
            },
        );
        Ok(())
    }

    /// Stops following `label`; returns where it was (to follow it again).
    fn unfollow(&mut self, label: &str) -> Option<Resume> {
        let seq = self.positions.remove(label);
        let mut followed = self.members.remove(label)?;
        followed.forwarder.stop();
        Some(Resume {
            seq: seq.unwrap_or(0),
            database_id: Some(followed.database_id),
        })
    }

    /// Follows partitions created since the last look (from the start of their log),
    /// stops following deleted members, and follows a member whose file was replaced
    /// (dropped and recreated) again, from the start of the new file's log.
    fn poll_members(&mut self) -> Result<()> {
        let labels = self.spread.labels_for(&Filter::all())?;
        let gone: Vec<String> = self
            .members
            .keys()
            .filter(|l| !labels.contains(l))
            .cloned()
            .collect();
        for label in gone {
            self.unfollow(&label);
        }
        for label in labels {
            let Some(followed) = self.members.get(&label) else {
                self.follow(label, Some(Resume::start()))?;
                continue;
            };
            match self.current_member(&label)? {
                Some(c) if Arc::ptr_eq(&c.database().inner, &followed.db.inner) => {}
                Some(_) => {
                    // Another instance: the file was replaced (a new `database_id`
                    // restarts from its start) or reopened (the same one continues).
                    let from = self.unfollow(&label);
                    self.follow(label, from)?;
                }
                None => {
                    self.unfollow(&label);
                }
            }
        }
        Ok(())
    }

    /// The position to resume from: every member's last delivered event (or start),
    /// with the `database_id` of the file it belongs to.
    pub fn resume_token(&self) -> ShardResumeToken {
        self.positions
            .iter()
            .fold(ShardResumeToken::default(), |token, (label, seq)| {
                let id = self.members.get(label).map(|m| m.database_id.clone());
                token.with_member(label.clone(), *seq, id)
            })
    }

    /// The members followed (shard numbers or partition names).
    pub fn members(&self) -> Vec<String> {
        self.members.keys().cloned().collect()
    }

    /// The next event without waiting: `Ok(None)` when none is ready.
    pub fn try_next(&mut self) -> Result<Option<ShardChangeEvent>> {
        self.next_timeout(Duration::ZERO)
    }

    /// The next event, waiting at most `timeout`: `Ok(None)` on timeout. An error
    /// comes from one member (opening a new partition, or its log trimmed past the
    /// position); that member is no longer followed, the others are, and
    /// `watch_from(resume_token())` retries it.
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<ShardChangeEvent>> {
        let deadline = Instant::now().checked_add(timeout);
        self.next_until(deadline)
    }

    fn next_until(&mut self, deadline: Option<Instant>) -> Result<Option<ShardChangeEvent>> {
        loop {
            let now = Instant::now();
            if now >= self.next_poll {
                self.next_poll = now + MEMBER_POLL;
                self.poll_members()?;
            }
            let mut q = lock(&self.shared.queue);
            if q.closed {
                // closed by a callback handle being dropped
                return Ok(None);
            }
            if let Some((member, generation, result)) = q.items.pop_front() {
                drop(q);
                self.shared.not_full.notify_one();
                // A message of a file no longer followed (replaced or deleted): its
                // event happened and is delivered, but the member's position is now in
                // another file (or gone); its error concerns nothing followed.
                let current = self
                    .members
                    .get(&member)
                    .is_some_and(|m| m.generation == generation);
                let mut event = match result {
                    Ok(event) => event,
                    Err(e) if current => return Err(e),
                    Err(_) => continue,
                };
                if current {
                    self.positions.insert(member.clone(), event.token);
                }
                event.database = self.spread.db.name().to_string();
                return Ok(Some(ShardChangeEvent {
                    member,
                    event,
                    resume_token: self.resume_token(),
                }));
            }
            let now = Instant::now();
            let mut wait = match deadline {
                None => Duration::from_secs(3600),
                Some(d) if d > now => d - now,
                Some(_) => return Ok(None),
            };
            wait = wait.min(self.next_poll.saturating_duration_since(now));
            let _unused = self
                .shared
                .not_empty
                .wait_timeout(q, wait)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

impl ShardedChangeStream {
    /// Runs `callback` on every event in a background thread until the returned handle
    /// is dropped, like [`ChangeStream::for_each`]. A member's error is handed to the
    /// callback and delivery goes on with the other members (this stream never lags).
    pub fn for_each(
        mut self,
        callback: impl FnMut(Result<ShardChangeEvent>) + Send + 'static,
    ) -> Result<WatchHandle> {
        let shared = Arc::clone(&self.shared);
        spawn_callback(
            "pocketdb-shard-watch",
            move || self.next_until(None),
            move || shared.close(),
            callback,
        )
    }
}

impl Iterator for ShardedChangeStream {
    type Item = Result<ShardChangeEvent>;

    /// Blocks until the next event (or member error).
    fn next(&mut self) -> Option<Result<ShardChangeEvent>> {
        self.next_until(None).transpose()
    }
}

impl Drop for ShardedChangeStream {
    fn drop(&mut self) {
        self.shared.close();
        for f in self.members.values() {
            f.forwarder.stop.store(true, Ordering::Release);
        }
        for f in self.members.values_mut() {
            f.forwarder.stop();
        }
    }
}

// ----- entry points --------------------------------------------------------------------

impl<T: Document> super::ShardedCollection<T> {
    /// A change stream of every member, starting now; `filter` selects events by their
    /// [`ChangeEvent::to_json`] shape (`{}` for all), evaluated on each member (where
    /// `ns.db` is the member file's database name).
    pub fn watch(&self, filter: Value) -> Result<ShardedChangeStream> {
        self.watch_with(WatchOptions::default().filter(filter), None)
    }

    /// A change stream resuming every member right after its position in `token`.
    pub fn watch_from(&self, token: &ShardResumeToken) -> Result<ShardedChangeStream> {
        self.watch_with(WatchOptions::default(), Some(token))
    }

    /// A change stream with options (filter, full document, queue capacity — also the
    /// capacity of the merged queue), resuming from `token` when given.
    /// `options.resume_after` must be unset (a single sequence cannot position several
    /// members).
    pub fn watch_with(
        &self,
        options: WatchOptions,
        token: Option<&ShardResumeToken>,
    ) -> Result<ShardedChangeStream> {
        ShardedChangeStream::open(Arc::clone(&self.inner), options, token)
    }

    /// Calls `callback` on every change of every member from a background thread until
    /// the returned handle is dropped (the callback form of
    /// [`watch_with`](Self::watch_with) without a token, as
    /// [`Collection::on_change`] is for a plain collection). Resume from a token with
    /// `watch_from(&token)?.for_each(callback)`.
    pub fn on_change(
        &self,
        options: WatchOptions,
        callback: impl FnMut(Result<ShardChangeEvent>) + Send + 'static,
    ) -> Result<WatchHandle> {
        self.watch_with(options, None)?.for_each(callback)
    }

    /// Open change streams and live queries over the member files (a dropped
    /// [`ShardedChangeStream`] is unsubscribed once its drop returns).
    pub fn change_subscribers(&self) -> Result<usize> {
        let mut n = 0;
        for label in self.inner.labels_for(&Filter::all())? {
            if let Some(member) = self.inner.read_member(&label)? {
                n += member.database().change_subscribers();
            }
        }
        Ok(n)
    }
}
