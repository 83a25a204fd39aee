//! Sorting documents within a memory limit, for a `find` sorted in memory and the
//! aggregation `$sort` stage.
//!
//! Documents are held with their sort keys while their estimated size
//! ([`approx_size`]) stays under the limit. With a bound on how many are wanted (`skip +
//! limit`, or a `$sort` followed by `$limit`) only the best `k` are kept, so a top-k sort
//! holds about `k` documents however many it reads. Past the limit the held documents
//! are sorted and written as a *run* to a private temporary SQLite database (deleted
//! when closed), when spilling is allowed, and the runs are merged back lazily at the
//! end: an external merge sort. Otherwise the sort fails with
//! [`Error::MemoryLimitExceeded`].
//!
//! Ties keep input order, as MongoDB's sort is stable over the order documents are read.

use crate::error::{Error, Result};
use crate::query::sort::SortValue;
use crate::query::SortSpec;
use crate::value::approx_size;
use rusqlite::Connection;
use serde_json::Value;
use std::collections::VecDeque;

/// A stream of documents, each possibly an error.
pub(crate) type DocStream = Box<dyn Iterator<Item = Result<Value>> + Send>;

type Keyed = (Vec<SortValue>, Value);

/// `docs` without its first `skip` documents and then at most `take`: as `Iterator::skip`
/// and `take`, except that an error is passed on, never skipped or counted.
pub(crate) fn skip_take(docs: DocStream, skip: usize, take: usize) -> DocStream {
    let (mut skip, mut take) = (skip, take);
    Box::new(
        docs.filter(move |d| {
            if d.is_ok() && skip > 0 {
                skip -= 1;
                return false;
            }
            true
        })
        .take_while(move |d| {
            if d.is_err() {
                return true;
            }
            if take == 0 {
                return false;
            }
            take -= 1;
            true
        }),
    )
}

/// How much a sort may hold in memory, and what happens past it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SortMemory {
    /// Estimated bytes of documents held at once.
    pub max_bytes: usize,
    /// Spill sorted runs to disk past `max_bytes` (otherwise fail).
    pub allow_disk_use: bool,
}

/// A sort being fed documents: [`push`](Sorter::push) each, then
/// [`finish`](Sorter::finish).
pub(crate) struct Sorter {
    stage: &'static str,
    sort: SortSpec,
    keep: Option<usize>,
    memory: SortMemory,
    buffer: Vec<Keyed>,
    used: usize,
    spill: Option<Spill>,
}

impl Sorter {
    /// A sort named `stage` in errors, keeping only the first `keep` documents when set.
    pub(crate) fn new(
        stage: &'static str,
        sort: SortSpec,
        keep: Option<usize>,
        memory: SortMemory,
    ) -> Sorter {
        Sorter {
            stage,
            sort,
            keep,
            memory,
            buffer: Vec::new(),
            used: 0,
            spill: None,
        }
    }

    fn exceeded(&self) -> Error {
        Error::MemoryLimitExceeded {
            stage: self.stage.to_string(),
            limit: self.memory.max_bytes,
        }
    }

    /// Sorts the buffer and drops what is beyond `keep`.
    fn compact(&mut self) {
        let Some(k) = self.keep else { return };
        let sort = &self.sort;
        self.buffer.sort_by(|a, b| sort.compare_keys(&a.0, &b.0));
        self.buffer.truncate(k);
        self.used = self.buffer.iter().map(|(_, d)| approx_size(d)).sum();
    }

    pub(crate) fn push(&mut self, doc: Value) -> Result<()> {
        if self.keep == Some(0) {
            return Ok(());
        }
        if let Some(k) = self.keep {
            if self.buffer.len() >= k.saturating_mul(2).max(1024) {
                self.compact();
            }
        }
        let size = approx_size(&doc);
        if self.used.saturating_add(size) > self.memory.max_bytes {
            // A top-k sort first makes room by dropping what cannot be wanted.
            self.compact();
            if self.used.saturating_add(size) > self.memory.max_bytes {
                if !self.memory.allow_disk_use || self.buffer.is_empty() {
                    return Err(self.exceeded());
                }
                let run = std::mem::take(&mut self.buffer);
                self.used = 0;
                let spill = match self.spill.as_mut() {
                    Some(s) => s,
                    None => self.spill.insert(Spill::new()?),
                };
                spill.write_run(&self.sort, run, self.keep)?;
            }
        }
        self.used = self.used.saturating_add(size);
        self.buffer.push((self.sort.sort_key(&doc), doc));
        Ok(())
    }

    /// The documents in sort order (the first `keep` of them when set).
    pub(crate) fn finish(mut self) -> Result<DocStream> {
        let keep = self.keep.unwrap_or(usize::MAX);
        match self.spill.take() {
            None => {
                let sort = &self.sort;
                // Stable: ties keep input order.
                self.buffer.sort_by(|a, b| sort.compare_keys(&a.0, &b.0));
                self.buffer.truncate(keep);
                Ok(Box::new(self.buffer.into_iter().map(|(_, d)| Ok(d))))
            }
            Some(mut spill) => {
                if !self.buffer.is_empty() {
                    spill.write_run(&self.sort, self.buffer, self.keep)?;
                }
                Ok(Box::new(spill.merge(self.sort)?.take(keep)))
            }
        }
    }

    /// Sorted runs written to disk so far (0 when everything fit in memory).
    #[cfg(test)]
    fn runs(&self) -> usize {
        self.spill.as_ref().map_or(0, |s| s.runs)
    }
}

/// Sorts a stream of documents within `memory` (see [`Sorter`]).
pub(crate) fn sort_stream(
    stage: &'static str,
    sort: &SortSpec,
    keep: Option<usize>,
    input: impl Iterator<Item = Result<Value>>,
    memory: SortMemory,
) -> Result<DocStream> {
    let mut sorter = Sorter::new(stage, sort.clone(), keep, memory);
    for doc in input {
        sorter.push(doc?)?;
    }
    sorter.finish()
}

/// Sorted runs in a temporary database.
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

    /// Sorts `docs` and writes (the first `keep` of) them as the next run.
    fn write_run(
        &mut self,
        sort: &SortSpec,
        mut docs: Vec<Keyed>,
        keep: Option<usize>,
    ) -> Result<()> {
        docs.sort_by(|a, b| sort.compare_keys(&a.0, &b.0));
        docs.truncate(keep.unwrap_or(usize::MAX));
        let tx = self.conn.transaction()?;
        {
            let mut stmt =
                tx.prepare_cached("INSERT INTO runs(run, pos, doc) VALUES (?1, ?2, ?3)")?;
            for (pos, (_, d)) in docs.iter().enumerate() {
                stmt.execute(rusqlite::params![
                    self.runs as i64,
                    pos as i64,
                    serde_json::to_string(d)?
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn skip_take_passes_errors_on() {
        let items: Vec<Result<Value>> = vec![
            Ok(json!(1)),
            Err(Error::InvalidArgument("x".into())),
            Ok(json!(2)),
            Ok(json!(3)),
            Ok(json!(4)),
        ];
        let out: Vec<String> = skip_take(Box::new(items.into_iter()), 1, 2)
            .map(|d| d.map_or_else(|_| "err".to_string(), |v| v.to_string()))
            .collect();
        assert_eq!(out, ["err", "2", "3"]);
    }

    fn spec(v: Value) -> SortSpec {
        SortSpec::parse(&v).unwrap()
    }

    /// Documents with keys in a scrambled order, many ties, and mixed types.
    fn docs(n: i64) -> Vec<Value> {
        (0..n)
            .map(|i| {
                let k = (i * 7919) % 97;
                let key = match i % 5 {
                    0 => json!(format!("s{k}")),
                    1 => json!(null),
                    _ => json!(k),
                };
                json!({"i": i, "k": key, "pad": "x".repeat(40)})
            })
            .collect()
    }

    fn reference(sort: &SortSpec, mut all: Vec<Value>) -> Vec<Value> {
        // Vec::sort_by is stable: ties keep input order.
        all.sort_by(|a, b| sort.compare(a, b));
        all
    }

    fn run(sort: &SortSpec, keep: Option<usize>, memory: SortMemory) -> (Vec<Value>, usize) {
        let mut sorter = Sorter::new("sort", sort.clone(), keep, memory);
        for d in docs(3000) {
            sorter.push(d).unwrap();
        }
        let runs = sorter.runs();
        let out = sorter.finish().unwrap().map(Result::unwrap).collect();
        (out, runs)
    }

    #[test]
    fn spilled_and_top_k_sorts_match_a_stable_sort_in_memory() {
        for s in [json!({"k": 1}), json!({"k": -1, "i": -1}), json!({"k": -1})] {
            let sort = spec(s.clone());
            let expected = reference(&sort, docs(3000));
            let roomy = SortMemory {
                max_bytes: usize::MAX,
                allow_disk_use: false,
            };
            let tight = SortMemory {
                max_bytes: 20_000,
                allow_disk_use: true,
            };
            let (all, runs) = run(&sort, None, roomy);
            assert_eq!((all == expected, runs), (true, 0), "{s}");
            let (all, runs) = run(&sort, None, tight);
            assert!(runs > 10, "{s}: {runs} runs");
            assert!(all == expected, "{s}: spilled order differs");
            for k in [0, 1, 5, 100, 2999, 5000] {
                let want: Vec<Value> = expected.iter().take(k).cloned().collect();
                let (top, runs) = run(&sort, Some(k), roomy);
                assert!(top == want && runs == 0, "{s} top {k}");
                let (top, _) = run(&sort, Some(k), tight);
                assert!(top == want, "{s} top {k} spilled");
            }
        }
    }

    #[test]
    fn past_the_limit_without_disk_use_the_sort_fails() {
        let sort = spec(json!({"k": 1}));
        let mut sorter = Sorter::new(
            "sort",
            sort.clone(),
            None,
            SortMemory {
                max_bytes: 20_000,
                allow_disk_use: false,
            },
        );
        let failed = docs(3000)
            .into_iter()
            .map(|d| sorter.push(d))
            .find(Result::is_err);
        assert!(matches!(
            failed,
            Some(Err(Error::MemoryLimitExceeded { limit: 20_000, .. }))
        ));
        // A top-k sort whose k documents fit never fails, however many it reads.
        let mut top = Sorter::new(
            "sort",
            sort,
            Some(10),
            SortMemory {
                max_bytes: 20_000,
                allow_disk_use: false,
            },
        );
        for d in docs(3000) {
            top.push(d).unwrap();
        }
        assert_eq!(top.finish().unwrap().count(), 10);
    }
}
