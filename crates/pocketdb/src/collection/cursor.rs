//! Cursors: lazy iteration over query results.

use super::plan::{Plan, Row};
use super::{from_document, Collection, Document};
use crate::error::{Error, Result};
use crate::query::{Filter, Projection, SortSpec};
use serde_json::Value;
use std::collections::VecDeque;

/// A lazy result of [`Collection::find`]. Configure it with [`sort`](Cursor::sort),
/// [`skip`](Cursor::skip), [`limit`](Cursor::limit) and
/// [`projection`](Cursor::projection), then iterate: documents are read from SQLite in
/// pages as the iterator advances. With a sort, the matching documents are read and
/// sorted when iteration starts (an index-served sort arrives with the planner).
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
    error: Option<Error>,
    state: State,
}

enum State {
    NotStarted,
    Streaming {
        plan: Plan,
        after: i64,
        buffer: VecDeque<Row>,
        exhausted: bool,
        to_skip: u64,
        remaining: Option<u64>,
    },
    Sorted(std::vec::IntoIter<Row>),
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

    /// Reads every remaining result.
    pub fn to_vec(self) -> Result<Vec<T>> {
        self.collect()
    }

    fn start(&mut self) -> Result<()> {
        let filter = self.filter.take().unwrap_or_else(Filter::all);
        let plan = Plan::new(filter);
        self.state = match &self.sort {
            Some(sort) => {
                let mut rows = self.coll.read_all(&plan)?;
                // Stable sort: ties keep storage order.
                rows.sort_by(|a, b| sort.compare(&a.doc, &b.doc));
                let skip = usize::try_from(self.skip).unwrap_or(usize::MAX);
                let rows: Vec<Row> = match self.limit {
                    Some(l) => rows
                        .into_iter()
                        .skip(skip)
                        .take(usize::try_from(l).unwrap_or(usize::MAX))
                        .collect(),
                    None => rows.into_iter().skip(skip).collect(),
                };
                State::Sorted(rows.into_iter())
            }
            None => State::Streaming {
                plan,
                after: 0,
                buffer: VecDeque::new(),
                exhausted: false,
                to_skip: self.skip,
                remaining: self.limit,
            },
        };
        Ok(())
    }

    fn next_row(&mut self) -> Result<Option<Row>> {
        match &mut self.state {
            State::NotStarted | State::Done => Ok(None),
            State::Sorted(rows) => Ok(rows.next()),
            State::Streaming {
                plan,
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
                    return Ok(Some(row));
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
        match self.next_row() {
            Ok(Some(mut row)) => {
                if let Err(e) = self.coll.db.after_read(&self.coll.name, &mut row.doc) {
                    self.state = State::Done;
                    return Some(Err(e));
                }
                let doc = match &self.projection {
                    Some(p) => p.apply(&row.doc),
                    None => row.doc,
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
