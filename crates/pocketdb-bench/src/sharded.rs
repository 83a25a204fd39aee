//! The sharded workloads: `sharded-insert` and `sharded-scan`, each also measured
//! single-file through pocketdb in the same run so the effect of sharding shows apart
//! from pocketdb's own overhead.

use crate::{document, raw, CITIES};
use pocketdb::{Client, Collection, ShardOptions, ShardedCollection};
use serde_json::{json, Map, Value};
use std::path::Path;
use std::time::Instant;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Seconds for pocketdb, seconds for raw rusqlite, and operations measured.
pub(crate) struct Timing {
    pub ops: u64,
    pub seconds: f64,
    pub raw_seconds: f64,
}

const BATCH: u64 = 1_000;

/// A fresh client under `dir/name` with a sharded collection `bench.bench`.
fn sharded(dir: &Path, name: &str, shards: usize) -> Result<ShardedCollection, BoxError> {
    let root = dir.join(name);
    if root.exists() {
        std::fs::remove_dir_all(&root)?;
    }
    let client = Client::open(&root)?;
    Ok(client.create_sharded_collection("bench", "bench", ShardOptions::new(shards))?)
}

fn load_sharded(coll: &ShardedCollection, n: u64) -> Result<(), BoxError> {
    let mut start = 0;
    while start < n {
        let end = (start + BATCH).min(n);
        coll.insert_many((start..end).map(document))?;
        start = end;
    }
    Ok(())
}

/// `insert_many` in batches of 1,000 over `shards` shards, against raw rusqlite
/// inserting the same batches into one file, and pocketdb's single-file `insert_many`.
pub(crate) fn insert(
    dir: &Path,
    single: &Collection<Value>,
    conn: &mut rusqlite::Connection,
    n: u64,
    shards: usize,
    extra: &mut Map<String, Value>,
) -> Result<Timing, BoxError> {
    let coll = sharded(dir, "sharded-insert", shards)?;
    let t = Instant::now();
    load_sharded(&coll, n)?;
    let seconds = t.elapsed().as_secs_f64();
    if coll.count_documents(json!({}))? != n {
        return Err("sharded-insert: documents missing".into());
    }
    let t = Instant::now();
    crate::workloads::load(single, n)?;
    let single_seconds = t.elapsed().as_secs_f64();
    let t = Instant::now();
    crate::workloads::load_raw(conn, n)?;
    let raw_seconds = t.elapsed().as_secs_f64();
    extra.insert("shards".into(), json!(shards));
    extra.insert(
        "single_file_docs_per_sec".into(),
        json!(n as f64 / single_seconds.max(1e-9)),
    );
    extra.insert(
        "vs_single_file".into(),
        json!(single_seconds / seconds.max(1e-9)),
    );
    Ok(Timing {
        ops: n,
        seconds,
        raw_seconds,
    })
}

/// The `find-scan` query (`{score: {$gt: 50}, city}`, no index) over `shards` shards,
/// against the same query on a single file through pocketdb (the speed-up is reported
/// as `speedup_vs_single_file`) and through raw rusqlite.
pub(crate) fn scan(
    dir: &Path,
    single: &Collection<Value>,
    conn: &mut rusqlite::Connection,
    n: u64,
    ops: u64,
    shards: usize,
    extra: &mut Map<String, Value>,
) -> Result<Timing, BoxError> {
    let coll = sharded(dir, "sharded-scan", shards)?;
    load_sharded(&coll, n)?;
    crate::workloads::load(single, n)?;
    crate::workloads::load_raw(conn, n)?;
    let filter = |k: u64| json!({"score": {"$gt": 50}, "city": CITIES[(k % 50) as usize]});
    // One warm-up pass each, so every file's pages are in the OS cache alike.
    coll.find(filter(0))?.count();
    single.find(filter(0))?.count();
    // The parallel ceiling of this machine: raw rusqlite scanning the shard files, one
    // thread each, against its own single-file scan.
    let files: Vec<_> = (0..shards)
        .map(|i| {
            dir.join("sharded-scan/bench.shards/bench")
                .join(format!("shard-{i}.sqlite"))
        })
        .collect();
    let mut conns = files
        .iter()
        .map(|f| {
            let c = rusqlite::Connection::open(f)?;
            c.execute_batch("PRAGMA cache_size=-65536; PRAGMA mmap_size=268435456;")?;
            Ok(c)
        })
        .collect::<rusqlite::Result<Vec<_>>>()?;
    for c in &mut conns {
        raw::scan_table(c, "c_bench", CITIES[0])?; // warm, like the others
    }
    // The four scans of each query run back to back, so a slower stretch of a shared
    // machine weighs on all of them alike rather than on whichever ran then.
    let (mut found, mut single_found, mut raw_found, mut raw_parallel_found) = (0, 0, 0, 0);
    let (mut seconds, mut single_seconds, mut raw_seconds, mut raw_parallel_seconds) =
        (0.0, 0.0, 0.0, 0.0);
    for k in 0..ops {
        let city = CITIES[(k % 50) as usize];
        let t = Instant::now();
        found += coll.find(filter(k))?.count();
        seconds += t.elapsed().as_secs_f64();
        let t = Instant::now();
        single_found += single.find(filter(k))?.count();
        single_seconds += t.elapsed().as_secs_f64();
        let t = Instant::now();
        raw_found += raw::scan(conn, city)?;
        raw_seconds += t.elapsed().as_secs_f64();
        let t = Instant::now();
        raw_parallel_found += std::thread::scope(|s| {
            let handles: Vec<_> = conns
                .iter_mut()
                .map(|c| s.spawn(move || raw::scan_table(c, "c_bench", city)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or(Ok(0)))
                .sum::<rusqlite::Result<usize>>()
        })?;
        raw_parallel_seconds += t.elapsed().as_secs_f64();
    }
    extra.insert(
        "raw_parallel_speedup".into(),
        json!(raw_seconds / raw_parallel_seconds.max(1e-9)),
    );
    if found != single_found || found != raw_found || found != raw_parallel_found {
        return Err(format!(
            "sharded-scan found {found}, single file {single_found}, raw {raw_found}"
        )
        .into());
    }
    extra.insert("shards".into(), json!(shards));
    extra.insert("results".into(), json!(found));
    extra.insert("ms_per_scan".into(), json!(seconds * 1000.0 / ops as f64));
    extra.insert(
        "single_file_ms_per_scan".into(),
        json!(single_seconds * 1000.0 / ops as f64),
    );
    extra.insert(
        "speedup_vs_single_file".into(),
        json!(single_seconds / seconds.max(1e-9)),
    );
    Ok(Timing {
        ops,
        seconds,
        raw_seconds,
    })
}
