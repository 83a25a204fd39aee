//! The workloads and their measurement.

use crate::{doc_id, document, raw, CITIES};
use pocketdb::{Collection, Database};
use serde_json::{json, Map, Value};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Instant;

/// A benchmark workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// `insert_many` in batches of 1,000, one transaction each.
    InsertMany,
    /// `insert_one`, one transaction each.
    InsertOne,
    /// `find_one({_id})` on a loaded collection.
    GetById,
    /// `find({email})` with an index on `email`.
    FindIndexed,
    /// `find({score: {$gt: 50}, city})` without an index (a full scan).
    FindScan,
    /// `update_one({_id}, {$inc: {age: 1}})`.
    UpdateOne,
    /// `aggregate([{$group: {_id: "$city", n: {$sum: 1}, avg: {$avg: "$score"}}}])`
    /// against the same `GROUP BY` written by hand (see `group_by`).
    GroupBy,
}

impl Workload {
    /// Every workload, in report order.
    pub const ALL: [Workload; 7] = [
        Workload::InsertMany,
        Workload::InsertOne,
        Workload::GetById,
        Workload::FindIndexed,
        Workload::FindScan,
        Workload::UpdateOne,
        Workload::GroupBy,
    ];

    /// The workload's command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Workload::InsertMany => "insert-many",
            Workload::InsertOne => "insert-one",
            Workload::GetById => "get-by-id",
            Workload::FindIndexed => "find-indexed",
            Workload::FindScan => "find-scan",
            Workload::UpdateOne => "update-one",
            Workload::GroupBy => "group-by",
        }
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Workload {
    type Err = String;

    fn from_str(s: &str) -> Result<Workload, String> {
        Workload::ALL
            .into_iter()
            .find(|w| w.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Workload::ALL.iter().map(|w| w.name()).collect();
                format!(
                    "unknown workload '{s}' (not yet available: group-commit, buffered, \
                     sharded-insert, sharded-scan); known: {}",
                    names.join(", ")
                )
            })
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// The workload.
    pub workload: Workload,
    /// Documents loaded (or inserted, for insert workloads).
    pub docs: u64,
    /// Operations measured (defaults depend on the workload).
    pub ops: Option<u64>,
    /// Directory for the database files (a temporary one when `None`).
    pub dir: Option<PathBuf>,
}

/// The outcome of one workload.
#[derive(Debug, Clone)]
pub struct Report {
    /// The workload.
    pub workload: Workload,
    /// Documents in the collection.
    pub docs: u64,
    /// Operations measured.
    pub ops: u64,
    /// Seconds pocketdb took.
    pub seconds: f64,
    /// pocketdb's operations per second.
    pub ops_per_sec: f64,
    /// Seconds raw rusqlite took for the same work.
    pub raw_seconds: f64,
    /// Raw rusqlite's operations per second.
    pub raw_ops_per_sec: f64,
    /// Extra figures (documents scanned, results, …).
    pub extra: Map<String, Value>,
}

impl Report {
    /// pocketdb's throughput as a fraction of raw rusqlite's.
    pub fn ratio(&self) -> f64 {
        if self.raw_ops_per_sec > 0.0 {
            self.ops_per_sec / self.raw_ops_per_sec
        } else {
            0.0
        }
    }

    /// The report as one JSON object.
    pub fn to_json(&self) -> Value {
        let mut out = json!({
            "workload": self.workload.name(),
            "docs": self.docs,
            "ops": self.ops,
            "seconds": self.seconds,
            "ops_per_sec": self.ops_per_sec,
            "raw_seconds": self.raw_seconds,
            "raw_ops_per_sec": self.raw_ops_per_sec,
            "ratio_vs_raw": self.ratio(),
        });
        if let Value::Object(map) = &mut out {
            map.extend(self.extra.clone());
        }
        out
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<13} docs={:<9} ops={:<8} pocketdb {:>12.0} ops/s  raw rusqlite {:>12.0} ops/s  ratio {:.2}",
            self.workload.name(),
            self.docs,
            self.ops,
            self.ops_per_sec,
            self.raw_ops_per_sec,
            self.ratio()
        )?;
        for (k, v) in &self.extra {
            write!(f, "  {k}={v}")?;
        }
        Ok(())
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Runs one workload through pocketdb and through raw rusqlite.
pub fn run(config: &Config) -> Result<Report, BoxError> {
    let tmp;
    let dir = match &config.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let db_path = dir.join(format!("bench-{}.sqlite", config.workload.name()));
    let raw_path = dir.join(format!("bench-{}-raw.sqlite", config.workload.name()));
    for p in [&db_path, &raw_path] {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", p.display()));
        }
    }
    let db = Database::open(&db_path)?;
    let coll = db.collection::<Value>("bench");
    let mut conn = raw::open(&raw_path)?;
    let n = config.docs.max(1);
    let mut extra = Map::new();

    let (ops, seconds, raw_seconds) = match config.workload {
        Workload::InsertMany => {
            let t = Instant::now();
            load(&coll, n)?;
            let s = t.elapsed().as_secs_f64();
            let t = Instant::now();
            load_raw(&mut conn, n)?;
            (n, s, t.elapsed().as_secs_f64())
        }
        Workload::InsertOne => {
            let ops = config.ops.unwrap_or(n.min(2_000));
            let t = Instant::now();
            for i in 0..ops {
                coll.insert_one(document(i))?;
            }
            let s = t.elapsed().as_secs_f64();
            let t = Instant::now();
            for i in 0..ops {
                raw::insert_batch(&mut conn, &[document(i)])?;
            }
            (ops, s, t.elapsed().as_secs_f64())
        }
        Workload::GetById => {
            load(&coll, n)?;
            load_raw(&mut conn, n)?;
            let ops = config.ops.unwrap_or(n.min(100_000));
            let t = Instant::now();
            for k in 0..ops {
                let id = doc_id((k * 7919) % n);
                if coll.find_one(json!({"_id": id}))?.is_none() {
                    return Err(format!("document {id} missing").into());
                }
            }
            let s = t.elapsed().as_secs_f64();
            let t = Instant::now();
            for k in 0..ops {
                let id = doc_id((k * 7919) % n);
                if raw::get(&conn, &id)?.is_none() {
                    return Err(format!("raw document {id} missing").into());
                }
            }
            (ops, s, t.elapsed().as_secs_f64())
        }
        Workload::FindIndexed => {
            return Err(
                "find-indexed needs secondary indexes, which this build does not have yet".into(),
            );
        }
        Workload::FindScan => {
            load(&coll, n)?;
            load_raw(&mut conn, n)?;
            let ops = config.ops.unwrap_or(5);
            let mut found = 0;
            let t = Instant::now();
            for k in 0..ops {
                let city = CITIES[(k % 50) as usize];
                let filter = json!({"score": {"$gt": 50}, "city": city});
                found += coll.find(filter)?.count();
            }
            let s = t.elapsed().as_secs_f64();
            let mut raw_found = 0;
            let t = Instant::now();
            for k in 0..ops {
                raw_found += raw::scan(&conn, CITIES[(k % 50) as usize])?;
            }
            let r = t.elapsed().as_secs_f64();
            if found != raw_found {
                return Err(format!("find-scan found {found}, raw found {raw_found}").into());
            }
            extra.insert("results".into(), json!(found));
            extra.insert("docs_scanned_per_sec".into(), json!((n * ops) as f64 / s));
            extra.insert("ms_per_scan".into(), json!(s * 1000.0 / ops as f64));
            (ops, s, r)
        }
        Workload::GroupBy => {
            load(&coll, n)?;
            load_raw(&mut conn, n)?;
            let ops = config.ops.unwrap_or(3);
            let (s, r) = crate::group_by::measure(&coll, &conn, ops, &mut extra)?;
            (ops, s, r)
        }
        Workload::UpdateOne => {
            load(&coll, n)?;
            load_raw(&mut conn, n)?;
            let ops = config.ops.unwrap_or(n.min(5_000));
            let t = Instant::now();
            for k in 0..ops {
                let id = doc_id((k * 7919) % n);
                coll.update_one(json!({"_id": id}), json!({"$inc": {"age": 1}}))?;
            }
            let s = t.elapsed().as_secs_f64();
            let t = Instant::now();
            for k in 0..ops {
                raw::inc_age(&mut conn, &doc_id((k * 7919) % n))?;
            }
            (ops, s, t.elapsed().as_secs_f64())
        }
    };
    Ok(Report {
        workload: config.workload,
        docs: n,
        ops,
        seconds,
        ops_per_sec: ops as f64 / seconds.max(1e-9),
        raw_seconds,
        raw_ops_per_sec: ops as f64 / raw_seconds.max(1e-9),
        extra,
    })
}

const BATCH: u64 = 1_000;

fn load(coll: &Collection<Value>, n: u64) -> Result<(), BoxError> {
    let mut start = 0;
    while start < n {
        let end = (start + BATCH).min(n);
        coll.insert_many((start..end).map(document))?;
        start = end;
    }
    Ok(())
}

fn load_raw(conn: &mut rusqlite::Connection, n: u64) -> Result<(), BoxError> {
    let mut start = 0;
    while start < n {
        let end = (start + BATCH).min(n);
        let docs: Vec<Value> = (start..end).map(document).collect();
        raw::insert_batch(conn, &docs)?;
        start = end;
    }
    Ok(())
}
