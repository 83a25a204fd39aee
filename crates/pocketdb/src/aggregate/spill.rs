//! `$sort` within the memory limit: in memory while the documents fit; past the limit,
//! with `allow_disk_use`, an external merge sort whose sorted runs are stored in a private
//! temporary SQLite database (deleted when closed) and merged back lazily.

use super::accum::approx_size;
use super::pipeline::{Budget, Docs};
use super::AggregateOptions;
use crate::error::Result;
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
