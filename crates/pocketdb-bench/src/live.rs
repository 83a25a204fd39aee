//! Live-query notification latency: how long after a commit the affected live query
//! delivers its new result, with many live queries open on the same collection.

use crate::{document, CITIES};
use pocketdb::{Database, LiveHandle, LiveQuery};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Latency figures of one run.
#[derive(Debug, Clone)]
pub struct LiveLatency {
    /// Live queries open.
    pub queries: usize,
    /// Writes measured.
    pub writes: u64,
    /// Median time from the write call to the notification, microseconds.
    pub p50_us: f64,
    /// 99th percentile, microseconds.
    pub p99_us: f64,
    /// Median time from the write's return (commit done) to the notification.
    pub after_commit_p50_us: f64,
    /// 99th percentile of the same.
    pub after_commit_p99_us: f64,
    /// Maximum of the write-to-notification time, microseconds.
    pub max_us: f64,
    /// Times a live query had to be re-run (its window ran dry), over all queries.
    pub reruns: u64,
}

impl std::fmt::Display for LiveLatency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "live-latency queries={:<5} writes={:<5} write→notify p50 {:>8.1} µs  p99 {:>8.1} µs  max {:>8.1} µs  commit→notify p50 {:>8.1} µs  p99 {:>8.1} µs  reruns {}",
            self.queries,
            self.writes,
            self.p50_us,
            self.p99_us,
            self.max_us,
            self.after_commit_p50_us,
            self.after_commit_p99_us,
            self.reruns
        )
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Opens `queries` live queries (query `i`: documents of city `i % 50` with
/// `age >= (i / 50) % 90`, by `score` descending, limit 10) over `docs` documents, then
/// makes `writes` single-document updates, each moving a document to the top of one
/// query's window, and times how long that query takes to notify.
pub fn live_latency(queries: usize, docs: u64, writes: u64) -> Result<LiveLatency, BoxError> {
    let dir = tempfile::tempdir()?;
    let db = Database::open(dir.path().join("live.sqlite"))?;
    let coll = db.collection::<Value>("bench");
    let mut start = 0;
    while start < docs {
        let end = (start + 1000).min(docs);
        coll.insert_many((start..end).map(document))?;
        start = end;
    }
    let queries = queries.max(1);
    let mut handles: Vec<LiveHandle<Value>> = Vec::with_capacity(queries);
    for i in 0..queries {
        let filter = json!({"city": CITIES[i % 50], "age": {"$gte": (i / 50) % 90}});
        let mut h = coll.live(LiveQuery::new(filter).sort(json!({"score": -1})).limit(10))?;
        h.try_next()?; // the initial result
        handles.push(h);
    }
    let wait = Duration::from_secs(10);
    let mut total = Vec::with_capacity(writes as usize);
    let mut after = Vec::with_capacity(writes as usize);
    for k in 0..writes {
        let q = (k as usize * 7) % queries;
        let id = crate::doc_id((k * 7919) % docs.max(1));
        let t0 = Instant::now();
        coll.update_one(
            json!({"_id": id}),
            json!({"$set": {"city": CITIES[q % 50], "age": 89, "score": 1000.0 + k as f64}}),
        )?;
        let t1 = Instant::now();
        match handles[q].next_timeout(wait)? {
            Some(_) => {}
            None => return Err(format!("no notification for query {q}").into()),
        }
        let t2 = Instant::now();
        total.push((t2 - t0).as_secs_f64() * 1e6);
        after.push((t2 - t1).as_secs_f64() * 1e6);
    }
    total.sort_by(f64::total_cmp);
    after.sort_by(f64::total_cmp);
    Ok(LiveLatency {
        queries,
        writes,
        p50_us: percentile(&total, 0.5),
        p99_us: percentile(&total, 0.99),
        after_commit_p50_us: percentile(&after, 0.5),
        after_commit_p99_us: percentile(&after, 0.99),
        max_us: total.last().copied().unwrap_or(0.0),
        reruns: handles
            .iter()
            .map(|h| h.stats().runs.saturating_sub(1))
            .sum(),
    })
}
