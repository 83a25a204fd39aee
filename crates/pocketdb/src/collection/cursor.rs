//! Cursors: lazy iteration over query results.

use super::plan::{Plan, Row};
use super::sorter::{skip_take, DocStream, SortMemory, Sorter};
use super::{from_document, Collection, Document, PlanCacheUse};
use crate::error::{Error, Result};
use crate::index::IndexSet;
use crate::query::{Filter, Projection, SortSpec};
use rusqlite::Connection;
use serde::Serialize;
use serde_json::Value;
use std::collections::VecDeque;

/// A lazy result of [`Collection::find`]. Configure it with [`sort`](Cursor::sort),
/// [`skip`](Cursor::skip), [`limit`](Cursor::limit) and
/// [`projection`](Cursor::projection), then iterate: documents are read from SQLite in
/// pages as the iterator advances. With a sort on paths an index knows to hold only
/// nulls, numbers and strings (and an exact filter), SQLite sorts (through the index when
/// it can, reading only `skip + limit` rows); otherwise the matching documents are read
/// and sorted when iteration starts, within a memory limit: with a `limit` only the best
/// `skip + limit` are kept, and past [`max_sort_memory`](Cursor::max_sort_memory)
/// (100 MiB) sorted runs spill to a temporary file unless
/// [`allow_disk_use(false)`](Cursor::allow_disk_use) asks for an error instead.
/// [`explain`](Cursor::explain) tells which.
///
/// A malformed sort or projection is reported by the first call to `next`.
pub struct Cursor<T> {
    coll: Collection<T>,
    filter: Option<Filter>,
    sort: Option<SortSpec>,
    projection: Option<Projection>,
    skip: u64,
    limit: Option<u64>,
    batch_size: usize,
    hint: Option<Value>,
    memory: SortMemory,
    /// The stage named by a sort's `MemoryLimitExceeded` (`$sort` under a pipeline).
    sort_stage: &'static str,
    error: Option<Error>,
    state: State,
}

/// What a sort in memory may hold before it spills (MongoDB's 100 MB blocking-sort
/// limit).
pub(crate) const SORT_MEMORY: SortMemory = SortMemory {
    max_bytes: 100 * 1024 * 1024,
    allow_disk_use: true,
};

/// What [`Cursor::start`] read with the plan.
enum First {
    /// Every result, in order.
    Sorted(Vec<Row>),
    /// Every matching document, sorted by the cursor (skip and limit not applied yet).
    SortedHere(Plan, DocStream),
    /// An index-driven read: the row ids still to read and the first rows.
    Rids(Plan, VecDeque<i64>, Vec<Row>),
    /// A paged read: the first page and the last `rid` it examined (`None`: no more).
    Pages(Plan, Vec<Row>, Option<i64>),
}

enum State {
    NotStarted,
    Streaming {
        plan: Box<Plan>,
        /// Candidate `rid`s still to read, when an index range drives the query.
        rids: Option<VecDeque<i64>>,
        after: i64,
        buffer: VecDeque<Row>,
        exhausted: bool,
        to_skip: u64,
        remaining: Option<u64>,
    },
    Sorted(std::vec::IntoIter<Row>),
    /// Documents sorted by the cursor, skip and limit applied.
    Docs(DocStream),
    Done,
}

impl<T> std::fmt::Debug for Cursor<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cursor")
            .field("collection", &self.coll.name)
            .field("filter", &self.filter)
            .field("sort", &self.sort)
            .field("skip", &self.skip)
            .field("limit", &self.limit)
            .finish()
    }
}

impl<T: Document> Cursor<T> {
    pub(crate) fn new(coll: Collection<T>, filter: Filter) -> Cursor<T> {
        Cursor {
            coll,
            filter: Some(filter),
            sort: None,
            projection: None,
            skip: 0,
            limit: None,
            batch_size: 256,
            hint: None,
            memory: SORT_MEMORY,
            sort_stage: "sort",
            error: None,
            state: State::NotStarted,
        }
    }

    /// Orders results by a MongoDB sort document (`{"age": -1, "name": 1}`).
    pub fn sort(mut self, spec: Value) -> Cursor<T> {
        match SortSpec::parse(&spec) {
            Ok(s) => self.sort = (!s.keys.is_empty()).then_some(s),
            Err(e) => self.error = self.error.or(Some(e)),
        }
        self
    }

    /// Orders results by an already parsed sort.
    pub fn sort_spec(mut self, spec: SortSpec) -> Cursor<T> {
        self.sort = (!spec.keys.is_empty()).then_some(spec);
        self
    }

    /// Skips the first `n` results.
    pub fn skip(mut self, n: u64) -> Cursor<T> {
        self.skip = n;
        self
    }

    /// Returns at most `n` results. As in MongoDB, `0` means no limit and a negative
    /// limit counts as its absolute value.
    pub fn limit(mut self, n: i64) -> Cursor<T> {
        self.limit = match n.unsigned_abs() {
            0 => None,
            n => Some(n),
        };
        self
    }

    /// Shapes each result with a MongoDB projection document.
    pub fn projection(mut self, spec: Value) -> Cursor<T> {
        match Projection::parse(&spec) {
            Ok(p) => self.projection = Some(p),
            Err(e) => self.error = self.error.or(Some(e)),
        }
        self
    }

    /// Shapes each result with an already parsed projection.
    pub fn projection_spec(mut self, projection: Projection) -> Cursor<T> {
        self.projection = Some(projection);
        self
    }

    /// Number of documents read from SQLite per page (default 256).
    pub fn batch_size(mut self, n: usize) -> Cursor<T> {
        self.batch_size = n.max(1);
        self
    }

    /// Forces the query to use an index, given by name (`"email_1"`) or key
    /// specification (`{"email": 1}`). An unknown index is reported as
    /// `IndexNotFound` by the first call to `next`.
    pub fn hint(mut self, index: Value) -> Cursor<T> {
        self.hint = Some(index);
        self
    }

    /// Whether a sort done in memory may spill sorted runs to a temporary file once it
    /// holds more than [`max_sort_memory`](Cursor::max_sort_memory) (MongoDB's
    /// `allowDiskUse`; default true, as `allowDiskUseByDefault` in MongoDB 6.0+). With
    /// `false` such a sort fails with [`Error::MemoryLimitExceeded`]. A sort SQLite
    /// answers through an index, or one with a `limit` whose `skip + limit` documents
    /// fit, never needs the disk.
    pub fn allow_disk_use(mut self, allow: bool) -> Cursor<T> {
        self.memory.allow_disk_use = allow;
        self
    }

    /// Bytes (estimated) of documents a sort done in memory holds at once (default 100
    /// MiB, MongoDB's blocking-sort limit).
    pub fn max_sort_memory(mut self, bytes: usize) -> Cursor<T> {
        self.memory.max_bytes = bytes;
        self
    }

    /// Names the stage a sort's [`Error::MemoryLimitExceeded`] reports (an aggregation's
    /// `$sort` handed to its cursor).
    pub(crate) fn sort_stage(mut self, stage: &'static str) -> Cursor<T> {
        self.sort_stage = stage;
        self
    }

    /// Reads every remaining result.
    pub fn to_vec(self) -> Result<Vec<T>> {
        self.collect()
    }

    /// The plan the cursor would run, without running it: the index used (or `None` for
    /// a collection scan), the SQL with its parameter count, SQLite's `EXPLAIN QUERY
    /// PLAN`, and what is left to do in memory.
    ///
    /// ```
    /// use pocketdb::{Database, IndexOptions};
    /// use serde_json::{json, Value};
    ///
    /// let db = Database::memory()?;
    /// let users = db.collection::<Value>("users");
    /// users.insert_one(json!({"email": "ada@example.com"}))?;
    /// users.create_index(json!({"email": 1}), IndexOptions::default())?;
    /// let plan = users.find(json!({"email": "ada@example.com"}))?.explain()?;
    /// assert_eq!(plan.index.as_deref(), Some("email_1"));
    /// # Ok::<(), pocketdb::Error>(())
    /// ```
    pub fn explain(mut self) -> Result<Explain> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let filter = self.filter.take().unwrap_or_else(Filter::all);
        let (cached, set) = self
            .coll
            .read_plan(filter, self.hint.as_ref(), self.sort.as_ref())?;
        let (plan, order_by) = (cached.plan, cached.order_by);
        let (sql, params) = match &order_by {
            Some(o) => (
                plan.ordered_sql(&self.coll.name, o, self.skip, self.limit),
                plan.params.len(),
            ),
            None if plan.index_range => (plan.rids_sql(&self.coll.name), plan.params.len()),
            None => {
                let page = self
                    .limit
                    .map_or(self.batch_size, |l| {
                        usize::try_from(l.saturating_add(self.skip)).unwrap_or(usize::MAX)
                    })
                    .min(self.batch_size);
                (plan.page_sql(&self.coll.name, page), plan.params.len() + 1)
            }
        };
        let sqlite_plan = self
            .coll
            .read_with(|conn| query_plan(conn, &sql, params), Vec::new)?;
        let index = plan
            .chosen_index
            .clone()
            .or_else(|| index_in_plan(&set, &sqlite_plan));
        Ok(Explain {
            collection: self.coll.name.to_string(),
            index,
            sql,
            params,
            sqlite_plan,
            exact: plan.exact,
            filtered_in_memory: !plan.exact,
            sort_in_sql: order_by.is_some(),
            sorted_in_memory: self.sort.is_some() && order_by.is_none(),
            plan_cache: cached.cache,
        })
    }

    fn start(&mut self) -> Result<()> {
        let filter = self.filter.take().unwrap_or_else(Filter::all);
        if self.coll.buffer_pending() {
            return self.start_merged(Plan::new(filter));
        }
        // Planning (index catalog, plan cache) and the first read see one snapshot (see
        // `Collection::read_planned`); the closure only reads and may run twice.
        let (skip, limit, batch) = (self.skip, self.limit, self.batch_size);
        let name = self.coll.name.clone();
        let (sort, memory, stage) = (self.sort.as_ref(), self.memory, self.sort_stage);
        // A limit bounds what the sort keeps: `skip + limit` documents.
        let keep = limit.map(|l| usize::try_from(l.saturating_add(skip)).unwrap_or(usize::MAX));
        let started = std::time::Instant::now();
        let first = self.coll.read_planned(
            filter,
            self.hint.as_ref(),
            self.sort.as_ref(),
            |conn, cached| {
                let plan = cached.plan;
                if let Some(order_by) = cached.order_by {
                    let rows = plan.fetch_ordered(conn, &name, &order_by, skip, limit)?;
                    return Ok(First::Sorted(rows));
                }
                if let Some(sort) = sort {
                    if let Some(k) = keep {
                        if let Some(docs) = plan.top_by_keys(conn, &name, sort, k, memory)? {
                            return Ok(First::SortedHere(plan, Box::new(docs.into_iter().map(Ok))));
                        }
                    }
                    let mut sorter = Sorter::new(stage, sort.clone(), keep, memory);
                    plan.for_each_row(conn, &name, |row| sorter.push(row.doc))?;
                    return Ok(First::SortedHere(plan, sorter.finish()?));
                }
                let mut page = batch;
                if plan.exact {
                    if let Some(l) = limit {
                        let want = l.saturating_add(skip);
                        page = page.min(usize::try_from(want).unwrap_or(usize::MAX));
                    }
                }
                if !plan.index_range {
                    let (rows, last) = plan.fetch_page(conn, &name, 0, page)?;
                    return Ok(First::Pages(plan, rows, last));
                }
                // Most index lookups find a few rows: read them in one statement, and
                // collect row ids first only when there are more than a page.
                if let Some(rows) = plan.fetch_few(conn, &name, page)? {
                    return Ok(First::Rids(plan, VecDeque::new(), rows));
                }
                let mut rids: VecDeque<i64> = plan.fetch_rids(conn, &name)?.into();
                let chunk: Vec<i64> = rids.drain(..page.min(rids.len())).collect();
                let rows = if chunk.is_empty() {
                    Vec::new()
                } else {
                    plan.fetch_by_rids(conn, &name, &chunk)?
                };
                Ok(First::Rids(plan, rids, rows))
            },
            || First::Sorted(Vec::new()),
        )?;
        self.state = match first {
            First::Sorted(rows) => State::Sorted(rows.into_iter()),
            First::SortedHere(plan, docs) => {
                self.coll
                    .db
                    .observe_read(&self.coll.name, &plan.filter, started.elapsed());
                // The sort is stable: ties keep storage order.
                let skip = usize::try_from(self.skip).unwrap_or(usize::MAX);
                let take = self
                    .limit
                    .map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
                State::Docs(skip_take(docs, skip, take))
            }
            First::Rids(plan, rids, rows) => State::Streaming {
                exhausted: rids.is_empty(),
                rids: Some(rids),
                plan: Box::new(plan),
                after: 0,
                buffer: rows.into(),
                to_skip: self.skip,
                remaining: self.limit,
            },
            First::Pages(plan, rows, last) => {
                self.coll
                    .db
                    .observe_read(&self.coll.name, &plan.filter, started.elapsed());
                State::Streaming {
                    rids: None,
                    plan: Box::new(plan),
                    after: last.unwrap_or(0),
                    buffer: rows.into(),
                    exhausted: last.is_none(),
                    to_skip: self.skip,
                    remaining: self.limit,
                }
            }
        };
        Ok(())
    }

    /// Buffered writes are pending: read stored and buffered documents merged.
    fn start_merged(&mut self, plan: Plan) -> Result<()> {
        let rows = self.coll.merged_rows(plan)?;
        let skip = usize::try_from(self.skip).unwrap_or(usize::MAX);
        let take = self
            .limit
            .map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
        let docs: DocStream = match &self.sort {
            // Sorted within the memory limit, as a sort without writes pending.
            Some(sort) => {
                let keep = self.limit.map(|_| skip.saturating_add(take));
                let mut sorter = Sorter::new(self.sort_stage, sort.clone(), keep, self.memory);
                for row in rows {
                    sorter.push(row?.doc)?;
                }
                sorter.finish()?
            }
            // Lazily, a page of stored rows at a time.
            None => Box::new(rows.map(|r| r.map(|r| r.doc))),
        };
        self.state = State::Docs(skip_take(docs, skip, take));
        Ok(())
    }

    /// The next result, before plugins and the projection.
    fn next_doc(&mut self) -> Result<Option<Value>> {
        match &mut self.state {
            State::NotStarted | State::Done => Ok(None),
            State::Sorted(rows) => Ok(rows.next().map(|r| r.doc)),
            State::Docs(docs) => docs.next().transpose(),
            State::Streaming {
                plan,
                rids,
                after,
                buffer,
                exhausted,
                to_skip,
                remaining,
            } => loop {
                if *remaining == Some(0) {
                    return Ok(None);
                }
                if let Some(row) = buffer.pop_front() {
                    if *to_skip > 0 {
                        *to_skip -= 1;
                        continue;
                    }
                    if let Some(r) = remaining.as_mut() {
                        *r -= 1;
                    }
                    return Ok(Some(row.doc));
                }
                if *exhausted {
                    return Ok(None);
                }
                let mut page = self.batch_size;
                if plan.exact {
                    if let Some(r) = remaining {
                        let want = r.saturating_add(*to_skip);
                        page = page.min(usize::try_from(want).unwrap_or(usize::MAX));
                    }
                }
                if let Some(rids) = rids {
                    let chunk: Vec<i64> = rids.drain(..page.min(rids.len())).collect();
                    if rids.is_empty() {
                        *exhausted = true;
                    }
                    if !chunk.is_empty() {
                        let rows = self.coll.read_with(
                            |conn| plan.fetch_by_rids(conn, &self.coll.name, &chunk),
                            Vec::new,
                        )?;
                        buffer.extend(rows);
                    }
                    continue;
                }
                let (rows, last) = self.coll.read_rows(plan, *after, page)?;
                match last {
                    Some(l) => *after = l,
                    None => *exhausted = true,
                }
                buffer.extend(rows);
            },
        }
    }
}

impl<T: Document> Iterator for Cursor<T> {
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
            Ok(Some(mut doc)) => {
                if let Err(e) = self.coll.db.after_read(&self.coll.name, &mut doc) {
                    self.state = State::Done;
                    return Some(Err(e));
                }
                let doc = match &self.projection {
                    Some(p) => p.apply(&doc),
                    None => doc,
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

/// What [`Cursor::explain`] reports. Serializable (`serde_json::to_value`) or shown as
/// one JSON object by [`Explain::to_json`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explain {
    /// The collection queried.
    pub collection: String,
    /// The index the plan uses (`_id_` for the primary key), `None` for a collection
    /// scan.
    pub index: Option<String>,
    /// The SQL run (for an unsorted or memory-sorted query, the first page's).
    pub sql: String,
    /// Number of parameters bound to the SQL.
    pub params: usize,
    /// SQLite's `EXPLAIN QUERY PLAN`, one line per step, indented by depth.
    pub sqlite_plan: Vec<String>,
    /// True when the SQL answers the filter exactly.
    pub exact: bool,
    /// True when rows are re-checked with the in-memory matcher.
    pub filtered_in_memory: bool,
    /// True when the sort is done by SQLite (through an index when its plan says so).
    pub sort_in_sql: bool,
    /// True when the matching documents are sorted in memory.
    pub sorted_in_memory: bool,
    /// Whether the plan was reused from the plan cache (`"hit"`), compiled (`"miss"`),
    /// or built without consulting it (`"bypass"`: a point read by `_id`).
    pub plan_cache: PlanCacheUse,
}

impl Explain {
    /// The plan as one JSON object.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// SQLite's plan of `sql`, binding `params` NULL parameters.
fn query_plan(conn: &Connection, sql: &str, params: usize) -> Result<Vec<String>> {
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
    let nulls = vec![rusqlite::types::Value::Null; params];
    let mut rows = stmt.query(rusqlite::params_from_iter(nulls.iter()))?;
    let mut depth: std::collections::HashMap<i64, usize> = std::collections::HashMap::new();
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let id: i64 = r.get(0)?;
        let parent: i64 = r.get(1)?;
        let detail: String = r.get(3)?;
        let d = depth.get(&parent).map_or(0, |d| d + 1);
        depth.insert(id, d);
        out.push(format!("{}{detail}", "  ".repeat(d)));
    }
    Ok(out)
}

/// The index SQLite's plan uses first, if any.
fn index_in_plan(set: &IndexSet, plan: &[String]) -> Option<String> {
    plan.iter().find_map(|line| {
        if let Some(def) = set.mentioned_in(line) {
            return Some(def.name.clone());
        }
        line.contains("sqlite_autoindex_c_")
            .then(|| "_id_".to_string())
    })
}
