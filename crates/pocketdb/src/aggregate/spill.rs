//! Blocking stages past the memory limit, with `allow_disk_use`:
//!
//! * `$sort`: in memory while the documents fit; past the limit, an external merge sort
//!   whose sorted runs are stored in a private temporary SQLite database (deleted when
//!   closed) and merged back lazily;
//! * `$group`: a hash aggregation in memory while the groups fit; past the limit, the
//!   partial states of every group are written out as a run and memory starts over; at
//!   the end the runs are merged key by key ([`GroupSpill`]).

use super::accum::{approx_size, Accumulator, State};
use super::pipeline::{group_output, Budget, Docs};
use super::AggregateOptions;
use crate::error::{Error, Result};
use crate::query::sort::SortValue;
use crate::query::SortSpec;
use rusqlite::Connection;
use serde_json::Value;
use std::collections::VecDeque;

type Keyed = (Vec<SortValue>, Value);

/// Sorts `input` by `sort`, spilling sorted runs to disk past the memory limit when
/// allowed (otherwise failing with `MemoryLimitExceeded`).
pub(crate) fn sort_with_spill(
    sort: &SortSpec,
    input: Docs,
    options: &AggregateOptions,
) -> Result<Docs> {
    let mut budget = Budget::new("$sort", options);
    let mut buffer: Vec<Keyed> = Vec::new();
    let mut spill: Option<Spill> = None;
    for d in input {
        let d = d?;
        let size = approx_size(&d);
        if budget.would_exceed(size) && options.allow_disk_use && !buffer.is_empty() {
            let s = match spill.as_mut() {
                Some(s) => s,
                None => spill.insert(Spill::new()?),
            };
            s.write_run(sort, std::mem::take(&mut buffer))?;
            budget.reset();
        }
        budget.add(size)?;
        buffer.push((sort.sort_key(&d), d));
    }
    match spill {
        None => {
            buffer.sort_by(|a, b| sort.compare_keys(&a.0, &b.0));
            Ok(Box::new(buffer.into_iter().map(|(_, d)| Ok(d))))
        }
        Some(mut s) => {
            if !buffer.is_empty() {
                s.write_run(sort, buffer)?;
            }
            Ok(Box::new(s.merge(sort.clone())?))
        }
    }
}

struct Spill {
    conn: Connection,
    runs: usize,
}

/// Documents read from a run per query during the merge.
const PAGE: i64 = 256;

impl Spill {
    fn new() -> Result<Spill> {
        // An empty file name opens a private temporary on-disk database.
        let conn = Connection::open("")?;
        conn.execute_batch(
            "CREATE TABLE runs(run INTEGER NOT NULL, pos INTEGER NOT NULL, doc TEXT NOT NULL,
                               PRIMARY KEY(run, pos)) WITHOUT ROWID",
        )?;
        Ok(Spill { conn, runs: 0 })
    }

    fn write_run(&mut self, sort: &SortSpec, mut docs: Vec<Keyed>) -> Result<()> {
        docs.sort_by(|a, b| sort.compare_keys(&a.0, &b.0));
        let tx = self.conn.transaction()?;
        {
            let mut stmt =
                tx.prepare_cached("INSERT INTO runs(run, pos, doc) VALUES (?1, ?2, ?3)")?;
            for (pos, (_, d)) in docs.iter().enumerate() {
                stmt.execute(rusqlite::params![
                    self.runs as i64,
                    pos as i64,
                    d.to_string()
                ])?;
            }
        }
        tx.commit()?;
        self.runs += 1;
        Ok(())
    }

    fn merge(self, sort: SortSpec) -> Result<Merger> {
        let mut m = Merger {
            conn: self.conn,
            sort,
            heads: (0..self.runs)
                .map(|_| RunHead {
                    next_pos: 0,
                    buffer: VecDeque::new(),
                    done: false,
                })
                .collect(),
            failed: false,
        };
        for r in 0..m.heads.len() {
            m.refill(r)?;
        }
        Ok(m)
    }
}

struct RunHead {
    next_pos: i64,
    buffer: VecDeque<Keyed>,
    done: bool,
}

/// Lazily merges the sorted runs (a linear scan over run heads: runs are few).
struct Merger {
    conn: Connection,
    sort: SortSpec,
    heads: Vec<RunHead>,
    failed: bool,
}

impl Merger {
    fn refill(&mut self, r: usize) -> Result<()> {
        let head = &mut self.heads[r];
        if head.done || !head.buffer.is_empty() {
            return Ok(());
        }
        let mut stmt = self.conn.prepare_cached(
            "SELECT doc FROM runs WHERE run = ?1 AND pos >= ?2 ORDER BY pos LIMIT ?3",
        )?;
        let rows = stmt.query_map(rusqlite::params![r as i64, head.next_pos, PAGE], |row| {
            row.get::<_, String>(0)
        })?;
        for text in rows {
            let d: Value = serde_json::from_str(&text?)?;
            head.buffer.push_back((self.sort.sort_key(&d), d));
        }
        head.next_pos += PAGE;
        if (head.buffer.len() as i64) < PAGE {
            head.done = true;
        }
        Ok(())
    }

    fn next_doc(&mut self) -> Result<Option<Value>> {
        let mut best: Option<usize> = None;
        for (r, head) in self.heads.iter().enumerate() {
            let Some((key, _)) = head.buffer.front() else {
                continue;
            };
            let better = match best {
                None => true,
                Some(b) => {
                    let current = &self.heads[b].buffer[0].0;
                    // Earlier runs win ties, keeping the sort stable.
                    self.sort.compare_keys(key, current) == std::cmp::Ordering::Less
                }
            };
            if better {
                best = Some(r);
            }
        }
        let Some(r) = best else {
            return Ok(None);
        };
        let doc = self.heads[r].buffer.pop_front().map(|(_, d)| d);
        self.refill(r)?;
        Ok(doc)
    }
}

impl Iterator for Merger {
    type Item = Result<Value>;

    fn next(&mut self) -> Option<Result<Value>> {
        if self.failed {
            return None;
        }
        match self.next_doc() {
            Ok(d) => d.map(Ok),
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

// ----- $group -----------------------------------------------------------------------------

/// One group held in memory: its key text (see [`group_key`]), key value and states.
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
