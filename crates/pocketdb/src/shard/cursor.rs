//! Scatter-gather reads: members run the query on their own threads and stream their
//! results in batches; the cursor merges the streams.
//!
//! With a sort, each member sorts (with `skip + limit` pushed down as its limit) and the
//! cursor does a k-way merge on the sort keys over a binary heap, then skips and limits.
//! Without a sort, batches are taken in whatever order members produce them (as MongoDB
//! makes no order promise for an unsorted query over shards) and the projection is
//! pushed down too, and at most `MAX_MEMBER_THREADS` threads take the members in turn,
//! each opening its member when it starts on it: a query over hundreds of partitions
//! never holds them all open. A sorted merge needs every member's stream at once; so a
//! sorted query with a limit (`skip + limit` up to 10,000) over more members than
//! threads reads the members that way too, each its own first `skip + limit`, and
//! keeps the best seen. Any other sorted query over more members than the database
//! keeps open (`Options::max_open_members`, at least 8) reads them one at a time, in
//! member order, into one [`Sorter`] (within the cursor's sort memory, spilling past
//! it), so it holds one member open and one sort's memory rather than a stream and a
//! thread per member. A query that reaches one member is handed to that member's
//! own cursor whole.

use super::{Spread, MAX_MEMBER_THREADS};
use crate::collection::sorter::{skip_take, DocStream, SortMemory, Sorter};
use crate::collection::{from_document, Collection, Cursor, Document, SORT_MEMORY};
use crate::error::{Error, Result};
use crate::query::sort::SortValue;
use crate::query::{Filter, Projection, SortSpec};
use serde_json::Value;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::marker::PhantomData;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};

/// Batches a member thread may have in flight before it waits for the cursor.
const QUEUE: usize = 4;

/// Members read ahead of the one being sorted when a sorted query reads them in turn.
const READ_AHEAD: usize = 2;

/// Largest `skip + limit` a sorted query over many members answers by keeping only the
/// best documents seen (see [`ShardedCursor::top`]) instead of merging every member's
/// stream at once.
const TOP_MAX: u64 = 10_000;

/// A lazy result of [`ShardedCollection::find`](super::ShardedCollection::find): the same
/// builder methods as [`Cursor`] (`sort`, `skip`, `limit`, `projection`, `batch_size`),
/// then iterate. The member queries start, in parallel, at the first `next`.
pub struct ShardedCursor<T> {
    collection: String,
    spread: Arc<Spread>,
    /// Labels of the members the query reads, opened when read.
    members: Vec<String>,
    filter: Filter,
    sort: Option<SortSpec>,
    projection: Option<Projection>,
    skip: u64,
    limit: Option<u64>,
    batch_size: usize,
    memory: SortMemory,
    error: Option<Error>,
    state: State,
    _type: PhantomData<fn() -> T>,
}

enum State {
    NotStarted,
    /// One member: its own cursor does everything.
    Single(Box<Cursor<Value>>),
    /// Several members, no sort: batches from any member as they come.
    Unsorted {
        rx: Receiver<Result<Vec<Value>>>,
        buffer: VecDeque<Value>,
        to_skip: u64,
        remaining: Option<u64>,
    },
    /// Several members, sorted with a small limit: the results, already merged.
    Ready(VecDeque<Value>),
    /// More members than threads, sorted: the sorter's output, skip and limit applied.
    Sorted(DocStream),
    /// Several members, sorted: a k-way merge.
    Merge {
        streams: Vec<Stream>,
        heap: BinaryHeap<Head>,
        spec: Arc<SortSpec>,
        to_skip: u64,
        remaining: Option<u64>,
    },
    Done,
}

/// One member's sorted results, batch by batch.
struct Stream {
    rx: Receiver<Result<Vec<Value>>>,
    buffer: VecDeque<Value>,
}

impl Stream {
    fn next(&mut self) -> Result<Option<Value>> {
        loop {
            if let Some(doc) = self.buffer.pop_front() {
                return Ok(Some(doc));
            }
            match self.rx.recv() {
                Ok(batch) => self.buffer.extend(batch?),
                Err(_) => return Ok(None),
            }
        }
    }
}

/// The current first document of one member in a merge. Ordered so that the heap (a
/// max-heap) pops the smallest sort key first, ties going to the lower member.
struct Head {
    key: Vec<SortValue>,
    member: usize,
    doc: Value,
    spec: Arc<SortSpec>,
}

impl PartialEq for Head {
    fn eq(&self, other: &Head) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Head {}

impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Head) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Head {
    fn cmp(&self, other: &Head) -> Ordering {
        self.spec
            .compare_keys(&other.key, &self.key)
            .then(other.member.cmp(&self.member))
    }
}

impl<T> std::fmt::Debug for ShardedCursor<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardedCursor")
            .field("collection", &self.collection)
            .field("members", &self.members)
            .field("filter", &self.filter)
            .field("sort", &self.sort)
            .field("skip", &self.skip)
            .field("limit", &self.limit)
            .finish()
    }
}

impl<T: Document> ShardedCursor<T> {
    pub(crate) fn new(
        spread: Arc<Spread>,
        members: Vec<String>,
        filter: Filter,
    ) -> ShardedCursor<T> {
        ShardedCursor {
            collection: spread.name.clone(),
            spread,
            members,
            filter,
            sort: None,
            projection: None,
            skip: 0,
            limit: None,
            batch_size: 256,
            memory: SORT_MEMORY,
            error: None,
            state: State::NotStarted,
            _type: PhantomData,
        }
    }

    /// Orders results by a MongoDB sort document (`{"age": -1, "name": 1}`).
    pub fn sort(mut self, spec: Value) -> ShardedCursor<T> {
        match SortSpec::parse(&spec) {
            Ok(s) => self.sort = (!s.keys.is_empty()).then_some(s),
            Err(e) => self.error = self.error.or(Some(e)),
        }
        self
    }

    /// Orders results by an already parsed sort.
    pub fn sort_spec(mut self, spec: SortSpec) -> ShardedCursor<T> {
        self.sort = (!spec.keys.is_empty()).then_some(spec);
        self
    }

    /// Skips the first `n` results (of the merged order).
    pub fn skip(mut self, n: u64) -> ShardedCursor<T> {
        self.skip = n;
        self
    }

    /// Returns at most `n` results; `0` means no limit, a negative limit counts as its
    /// absolute value. Each member is asked for at most `skip + limit` documents.
    pub fn limit(mut self, n: i64) -> ShardedCursor<T> {
        self.limit = match n.unsigned_abs() {
            0 => None,
            n => Some(n),
        };
        self
    }

    /// Shapes each result with a MongoDB projection document.
    pub fn projection(mut self, spec: Value) -> ShardedCursor<T> {
        match Projection::parse(&spec) {
            Ok(p) => self.projection = Some(p),
            Err(e) => self.error = self.error.or(Some(e)),
        }
        self
    }

    /// Shapes each result with an already parsed projection.
    pub fn projection_spec(mut self, projection: Projection) -> ShardedCursor<T> {
        self.projection = Some(projection);
        self
    }

    /// Documents per batch read from each member (default 256).
    pub fn batch_size(mut self, n: usize) -> ShardedCursor<T> {
        self.batch_size = n.max(1);
        self
    }

    /// As [`Cursor::allow_disk_use`], for the sorts of the members and of the merge.
    pub fn allow_disk_use(mut self, allow: bool) -> ShardedCursor<T> {
        self.memory.allow_disk_use = allow;
        self
    }

    /// As [`Cursor::max_sort_memory`], for each member's sort and the cursor's own.
    pub fn max_sort_memory(mut self, bytes: usize) -> ShardedCursor<T> {
        self.memory.max_bytes = bytes;
        self
    }

    /// The members (shard numbers or partition names) the query reads.
    pub fn members(&self) -> Vec<String> {
        self.members.clone()
    }

    /// Reads every remaining result.
    pub fn to_vec(self) -> Result<Vec<T>> {
        self.collect()
    }

    /// The member query: the filter, the sort, `skip + limit` as its limit and, when
    /// `push_projection`, the projection.
    fn member_query(&self, push_projection: bool) -> MemberQuery {
        MemberQuery {
            filter: self.filter.clone(),
            sort: self.sort.clone(),
            limit: self
                .limit
                .map(|l| i64::try_from(l.saturating_add(self.skip)).unwrap_or(i64::MAX)),
            projection: self.projection.clone().filter(|_| push_projection),
            batch_size: self.batch_size,
            memory: self.memory,
        }
    }

    /// Every member's matching documents fed, one member at a time and in member order,
    /// into one sorter keeping `skip + limit` when there is a limit. Members are read in
    /// storage order, so ties come out as a merge of the members' own stable sorts would
    /// give them: by member, then by storage order.
    fn sorted_in_turn(&self, sort: &SortSpec) -> Result<DocStream> {
        let keep = self
            .limit
            .map(|l| usize::try_from(l.saturating_add(self.skip)).unwrap_or(usize::MAX));
        let mut sorter = Sorter::new("sort", sort.clone(), keep, self.memory);
        let query = MemberQuery {
            sort: None,
            limit: None,
            projection: None,
            ..self.member_query(false)
        };
        // Members are read on their own threads, at most `READ_AHEAD` ahead of the one
        // being sorted (each blocks on its bounded channel, holding its member open,
        // until its turn), while this thread sorts and spills. Each member's channel
        // goes into `order` in member order, and is drained whole before the next one.
        let (spread, members) = (&self.spread, &self.members);
        let query = &query;
        let batch_size = self.batch_size;
        let sorted = std::thread::scope(|s| -> Result<()> {
            type Batches = Receiver<Result<Vec<Value>>>;
            let (order_tx, order_rx) = sync_channel::<Batches>(READ_AHEAD);
            let spawner = std::thread::Builder::new()
                .name("pocketdb-shard-sort".to_string())
                .spawn_scoped(s, move || {
                    for label in members {
                        let (tx, rx) = sync_channel(QUEUE);
                        if order_tx.send(rx).is_err() {
                            return;
                        }
                        let failed = tx.clone();
                        let read = move || match spread.read_member(label) {
                            Ok(Some(coll)) => {
                                stream(query.cursor(&coll), batch_size, &tx);
                            }
                            // A partition dropped since the query listed it is empty.
                            Ok(None) => {}
                            Err(e) => {
                                let _ = tx.send(Err(e));
                            }
                        };
                        let spawned = std::thread::Builder::new()
                            .name("pocketdb-shard-scan".to_string())
                            .spawn_scoped(s, read);
                        if let Err(e) = spawned {
                            let _ = failed.send(Err(e.into()));
                            return;
                        }
                    }
                })?;
            let fed = order_rx.iter().try_for_each(|member| {
                member
                    .iter()
                    .try_for_each(|batch| batch?.into_iter().try_for_each(|d| sorter.push(d)))
            });
            // Dropping the receivers (and the channels queued in `order`) stops the
            // readers at their next batch.
            drop(order_rx);
            if spawner.join().is_err() {
                return Err(spread.error("a member thread panicked"));
            }
            fed
        });
        sorted?;
        sorter.finish()
    }

    /// The first `want` documents in sort order over every member, for a sorted query
    /// with a limit over more members than threads: members are read (each its own
    /// first `want`) by at most `MAX_MEMBER_THREADS` threads, each opening its member
    /// when it takes it, and only the best `want` seen so far are kept. Ties are ordered
    /// as the merge orders them: by member, then by the member's own order.
    fn top(&self, sort: &SortSpec, want: usize) -> Result<Vec<Value>> {
        type Ranked = (Vec<SortValue>, usize, usize, Value);
        let query = self.member_query(false);
        let best: Mutex<Vec<Ranked>> = Mutex::new(Vec::new());
        let members: Vec<(usize, &String)> = self.members.iter().enumerate().collect();
        let spread = &self.spread;
        spread.in_parallel(&members, |&(member, label)| {
            // A partition dropped since the query listed it holds nothing.
            let Some(coll) = spread.read_member(label)? else {
                return Ok(());
            };
            let docs = query.cursor(&coll).collect::<Result<Vec<Value>>>()?;
            let mut best = best.lock().unwrap_or_else(PoisonError::into_inner);
            best.extend(
                docs.into_iter()
                    .enumerate()
                    .map(|(pos, doc)| (sort.sort_key(&doc), member, pos, doc)),
            );
            best.sort_by(|a, b| {
                sort.compare_keys(&a.0, &b.0)
                    .then(a.1.cmp(&b.1))
                    .then(a.2.cmp(&b.2))
            });
            best.truncate(want);
            Ok(())
        })?;
        let best = best.into_inner().unwrap_or_else(PoisonError::into_inner);
        Ok(best.into_iter().map(|(_, _, _, doc)| doc).collect())
    }

    fn start(&mut self) -> Result<()> {
        if let [label] = self.members.as_slice() {
            let Some(coll) = self.spread.read_member(label)? else {
                self.state = State::Ready(VecDeque::new());
                return Ok(());
            };
            let mut cursor = self.member_query(true).cursor(&coll).skip(self.skip);
            if let Some(limit) = self.limit {
                cursor = cursor.limit(i64::try_from(limit).unwrap_or(i64::MAX));
            }
            self.state = State::Single(Box::new(cursor));
            return Ok(());
        }
        match self.sort.clone() {
            None => {
                let workers = self.members.len().min(MAX_MEMBER_THREADS);
                let (tx, rx) = sync_channel(QUEUE * workers.max(1));
                let work = Arc::new(Work {
                    spread: self.spread.clone(),
                    labels: Mutex::new(self.members.iter().cloned().collect()),
                    query: self.member_query(true),
                });
                for _ in 0..workers {
                    spawn_worker(work.clone(), tx.clone())?;
                }
                self.state = State::Unsorted {
                    rx,
                    buffer: VecDeque::new(),
                    to_skip: self.skip,
                    remaining: self.limit,
                };
            }
            Some(sort) => {
                let want = self.limit.map(|l| l.saturating_add(self.skip));
                if let Some(want) = want.filter(|&w| w <= TOP_MAX) {
                    if self.members.len() > MAX_MEMBER_THREADS {
                        let best = self.top(&sort, usize::try_from(want).unwrap_or(0))?;
                        let skip = usize::try_from(self.skip).unwrap_or(usize::MAX);
                        self.state = State::Ready(best.into_iter().skip(skip).collect());
                        return Ok(());
                    }
                }
                // A merge holds every member open with a thread each: fine up to the
                // members the database keeps open anyway, read in turn beyond that.
                let merge_max = self
                    .spread
                    .db
                    .options()
                    .max_open_members
                    .max(MAX_MEMBER_THREADS);
                if self.members.len() > merge_max {
                    let docs = self.sorted_in_turn(&sort)?;
                    let skip = usize::try_from(self.skip).unwrap_or(usize::MAX);
                    let take = self
                        .limit
                        .map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
                    self.state = State::Sorted(skip_take(docs, skip, take));
                    return Ok(());
                }
                let mut streams = Vec::with_capacity(self.members.len());
                let query = self.member_query(false);
                for label in &self.members {
                    let Some(coll) = self.spread.read_member(label)? else {
                        continue;
                    };
                    let (tx, rx) = sync_channel(QUEUE);
                    spawn_member(query.cursor(&coll), self.batch_size, tx)?;
                    streams.push(Stream {
                        rx,
                        buffer: VecDeque::new(),
                    });
                }
                let spec = Arc::new(sort);
                let mut heap = BinaryHeap::with_capacity(streams.len());
                for (member, stream) in streams.iter_mut().enumerate() {
                    if let Some(doc) = stream.next()? {
                        heap.push(Head {
                            key: spec.sort_key(&doc),
                            member,
                            doc,
                            spec: spec.clone(),
                        });
                    }
                }
                self.state = State::Merge {
                    streams,
                    heap,
                    spec,
                    to_skip: self.skip,
                    remaining: self.limit,
                };
            }
        }
        Ok(())
    }

    /// The next document, before projection (projection already applied for the
    /// pushed-down shapes, flagged by the second field).
    fn next_doc(&mut self) -> Result<Option<(Value, bool)>> {
        match &mut self.state {
            State::NotStarted | State::Done => Ok(None),
            State::Ready(docs) => Ok(docs.pop_front().map(|d| (d, false))),
            State::Sorted(docs) => docs.next().transpose().map(|d| d.map(|d| (d, false))),
            State::Single(cursor) => cursor.next().transpose().map(|d| d.map(|d| (d, true))),
            State::Unsorted {
                rx,
                buffer,
                to_skip,
                remaining,
            } => loop {
                if *remaining == Some(0) {
                    return Ok(None);
                }
                if let Some(doc) = buffer.pop_front() {
                    if *to_skip > 0 {
                        *to_skip -= 1;
                        continue;
                    }
                    if let Some(r) = remaining.as_mut() {
                        *r -= 1;
                    }
                    return Ok(Some((doc, true)));
                }
                match rx.recv() {
                    Ok(batch) => buffer.extend(batch?),
                    Err(_) => return Ok(None),
                }
            },
            State::Merge {
                streams,
                heap,
                spec,
                to_skip,
                remaining,
            } => loop {
                if *remaining == Some(0) {
                    return Ok(None);
                }
                let Some(head) = heap.pop() else {
                    return Ok(None);
                };
                if let Some(stream) = streams.get_mut(head.member) {
                    if let Some(doc) = stream.next()? {
                        heap.push(Head {
                            key: spec.sort_key(&doc),
                            member: head.member,
                            doc,
                            spec: spec.clone(),
                        });
                    }
                }
                if *to_skip > 0 {
                    *to_skip -= 1;
                    continue;
                }
                if let Some(r) = remaining.as_mut() {
                    *r -= 1;
                }
                return Ok(Some((head.doc, false)));
            },
        }
    }
}

/// What a member runs for a scatter-gather query.
#[derive(Clone)]
struct MemberQuery {
    filter: Filter,
    sort: Option<SortSpec>,
    limit: Option<i64>,
    projection: Option<Projection>,
    batch_size: usize,
    memory: SortMemory,
}

impl MemberQuery {
    fn cursor(&self, coll: &Collection<Value>) -> Cursor<Value> {
        let mut cursor = coll
            .find_filter(self.filter.clone())
            .batch_size(self.batch_size)
            .allow_disk_use(self.memory.allow_disk_use)
            .max_sort_memory(self.memory.max_bytes);
        if let Some(sort) = &self.sort {
            cursor = cursor.sort_spec(sort.clone());
        }
        if let Some(limit) = self.limit {
            cursor = cursor.limit(limit);
        }
        if let Some(p) = &self.projection {
            cursor = cursor.projection_spec(p.clone());
        }
        cursor
    }
}

/// The members an unsorted query has yet to read, shared by its worker threads.
struct Work {
    spread: Arc<Spread>,
    labels: Mutex<VecDeque<String>>,
    query: MemberQuery,
}

/// Starts a thread that takes members from `work` one at a time, opens each and streams
/// its results, until none is left, one fails or the receiving cursor is dropped.
fn spawn_worker(work: Arc<Work>, tx: SyncSender<Result<Vec<Value>>>) -> Result<()> {
    std::thread::Builder::new()
        .name("pocketdb-shard-scan".to_string())
        .spawn(move || loop {
            let label = work
                .labels
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop_front();
            let Some(label) = label else { return };
            let coll = match work.spread.read_member(&label) {
                Ok(Some(coll)) => coll,
                // Dropped since the query listed it: nothing to read.
                Ok(None) => continue,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            if !stream(work.query.cursor(&coll), work.query.batch_size, &tx) {
                return;
            }
        })?;
    Ok(())
}

/// Sends a cursor's results in batches; `false` when it failed or nobody listens.
fn stream(cursor: Cursor<Value>, batch_size: usize, tx: &SyncSender<Result<Vec<Value>>>) -> bool {
    let mut batch = Vec::with_capacity(batch_size);
    for doc in cursor {
        match doc {
            Ok(doc) => {
                batch.push(doc);
                if batch.len() >= batch_size {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(batch_size));
                    if tx.send(Ok(full)).is_err() {
                        return false;
                    }
                }
            }
            Err(e) => {
                let _ = tx.send(Err(e));
                return false;
            }
        }
    }
    batch.is_empty() || tx.send(Ok(batch)).is_ok()
}

/// Runs a member cursor on its own thread, sending batches until it is exhausted, fails
/// or the receiving cursor is dropped.
fn spawn_member(
    cursor: Cursor<Value>,
    batch_size: usize,
    tx: SyncSender<Result<Vec<Value>>>,
) -> Result<()> {
    std::thread::Builder::new()
        .name("pocketdb-shard-scan".to_string())
        .spawn(move || {
            stream(cursor, batch_size, &tx);
        })?;
    Ok(())
}

impl<T: Document> Iterator for ShardedCursor<T> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        if let Some(e) = self.error.take() {
            self.state = State::Done;
            return Some(Err(e));
        }
        if matches!(self.state, State::NotStarted) {
            if let Err(e) = self.start() {
                self.state = State::Done;
                return Some(Err(e));
            }
        }
        match self.next_doc() {
            Ok(Some((doc, projected))) => {
                let doc = match (&self.projection, projected) {
                    (Some(p), false) => p.apply(&doc),
                    _ => doc,
                };
                Some(from_document(doc))
            }
            Ok(None) => {
                self.state = State::Done;
                None
            }
            Err(e) => {
                self.state = State::Done;
                Some(Err(e))
            }
        }
    }
}
