//! Blocking stages past the memory limit, with `allow_disk_use`:
//!
//! * `$sort`: the collection layer's [`Sorter`](crate::collection::sorter::Sorter), in
//!   memory while the documents fit (the best `k` only before a `$limit`), past the limit
//!   an external merge sort over runs in a private temporary SQLite database;
//! * `$group`: a hash aggregation in memory while the groups fit; past the limit, the
//!   partial states of every group are written out as a run and memory starts over; at
//!   the end the runs are merged key by key ([`GroupSpill`]).

use super::accum::{approx_size, Accumulator, State};
use super::pipeline::{group_output, Budget, Docs};
use super::AggregateOptions;
use crate::collection::sorter::{sort_stream, SortMemory};
use crate::error::{Error, Result};
use crate::query::SortSpec;
use rusqlite::Connection;
use serde_json::Value;
use std::collections::VecDeque;

/// Sorts `input` by `sort`, spilling sorted runs to disk past the memory limit when
/// allowed (otherwise failing with `MemoryLimitExceeded`); only the first `keep` when set
/// (a `$sort` followed by `$limit`).
pub(crate) fn sort_with_spill(
    sort: &SortSpec,
    keep: Option<usize>,
    input: Docs,
    options: &AggregateOptions,
) -> Result<Docs> {
    let memory = SortMemory {
        max_bytes: options.max_memory_bytes,
        allow_disk_use: options.allow_disk_use,
    };
    sort_stream("$sort", sort, keep, input, memory)
}

/// Rows read from a run per query during the merge.
const PAGE: i64 = 256;

// ----- $group -----------------------------------------------------------------------------

/// One group held in memory: its key text (see [`equality_key`]), key value and states.
pub(crate) type GroupEntry = (String, Value, Vec<State>);

/// Partial `$group` states spilled past the memory limit. Each spill writes every group
/// held in memory as one *run* (numbered in input order) into a private temporary
/// SQLite database; the merge reads the rows back ordered by (key, run) — the primary
/// key, so SQLite does no sorting — and folds the runs of each key in input order, which
/// keeps `$first`, `$last` and `$push` exact.
pub(crate) struct GroupSpill {
    conn: Connection,
    runs: i64,
}

impl GroupSpill {
    pub(crate) fn new() -> Result<GroupSpill> {
        let conn = Connection::open("")?;
        conn.execute_batch(
            "CREATE TABLE parts(key TEXT NOT NULL, run INTEGER NOT NULL, doc TEXT NOT NULL,
                                PRIMARY KEY(key, run)) WITHOUT ROWID",
        )?;
        Ok(GroupSpill { conn, runs: 0 })
    }

    /// Writes `groups` as the next run.
    pub(crate) fn write_run(&mut self, groups: Vec<GroupEntry>) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut stmt =
                tx.prepare_cached("INSERT INTO parts(key, run, doc) VALUES (?1, ?2, ?3)")?;
            for (text, key, states) in groups {
                let states: Vec<Value> = states.iter().map(State::to_json).collect();
                let doc = Value::Array(vec![key, Value::Array(states)]);
                stmt.execute(rusqlite::params![text, self.runs, doc.to_string()])?;
            }
        }
        tx.commit()?;
        self.runs += 1;
        Ok(())
    }

    /// The merged groups, lazily, one output document per key.
    pub(crate) fn merge(self, accumulators: Vec<Accumulator>, options: &AggregateOptions) -> Docs {
        Box::new(GroupMerger {
            conn: self.conn,
            accumulators,
            budget: Budget::new("$group", options),
            page: VecDeque::new(),
            after: None,
            exhausted: false,
            current: None,
            failed: false,
        })
    }
}

struct GroupMerger {
    conn: Connection,
    accumulators: Vec<Accumulator>,
    /// Bounds the one group being merged (a `$push` can outgrow the limit by itself).
    budget: Budget,
    page: VecDeque<(String, Value)>,
    /// (key, run) of the last row read.
    after: Option<(String, i64)>,
    exhausted: bool,
    current: Option<GroupEntry>,
    failed: bool,
}

impl GroupMerger {
    fn refill(&mut self) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT key, run, doc FROM parts WHERE key > ?1 OR (key = ?1 AND run > ?2)
             ORDER BY key, run LIMIT ?3",
        )?;
        let (key, run) = self.after.clone().unwrap_or((String::new(), -1));
        let rows = stmt.query_map(rusqlite::params![key, run, PAGE], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        let mut n: i64 = 0;
        for row in rows {
            let (key, run, doc) = row?;
            self.page
                .push_back((key.clone(), serde_json::from_str(&doc)?));
            self.after = Some((key, run));
            n += 1;
        }
        if n < PAGE {
            self.exhausted = true;
        }
        Ok(())
    }

    fn decode(&self, doc: Value) -> Result<(Value, Vec<State>)> {
        let bad = || Error::Serde("spilled $group row is malformed".to_string());
        let Value::Array(mut parts) = doc else {
            return Err(bad());
        };
        let (Some(Value::Array(states)), Some(key)) = (parts.pop(), parts.pop()) else {
            return Err(bad());
        };
        if states.len() != self.accumulators.len() {
            return Err(bad());
        }
        let states = self
            .accumulators
            .iter()
            .zip(states)
            .map(|(a, s)| State::from_json(a.kind, s))
            .collect::<Result<Vec<_>>>()?;
        Ok((key, states))
    }

    fn next_group(&mut self) -> Result<Option<Value>> {
        loop {
            if self.page.is_empty() && !self.exhausted {
                self.refill()?;
            }
            let Some((text, doc)) = self.page.pop_front() else {
                let done = self.current.take();
                return Ok(
                    done.map(|(_, key, states)| group_output(key, &self.accumulators, states))
                );
            };
            let size = approx_size(&doc);
            let (key, states) = self.decode(doc)?;
            match &mut self.current {
                Some((current, _, acc)) if *current == text => {
                    self.budget.add(size)?;
                    for (a, later) in acc.iter_mut().zip(states) {
                        a.merge(later);
                    }
                }
                _ => {
                    self.budget.reset();
                    self.budget.add(size)?;
                    let done = self.current.replace((text, key, states));
                    if let Some((_, key, states)) = done {
                        return Ok(Some(group_output(key, &self.accumulators, states)));
                    }
                }
            }
        }
    }
}

impl Iterator for GroupMerger {
    type Item = Result<Value>;

    fn next(&mut self) -> Option<Result<Value>> {
        if self.failed {
            return None;
        }
        match self.next_group() {
            Ok(d) => d.map(Ok),
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}
