//! The workloads and their measurement.

use crate::{doc_id, document, event, raw, CITIES};
use pocketdb::{
    BufferOptions, ChangeRetention, CheckpointMode, CheckpointOptions, Collection, Database,
    Durability, Explain, IndexOptions, Options, Synchronous,
};
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
    /// `insert_one` from `threads` threads (default 16) with group commit; compared with
    /// raw rusqlite inserting one document per transaction on one thread, and with
    /// pocketdb's own single-threaded `insert_one` (`vs_insert_one`). Also the same under
    /// `synchronous=FULL` (`full_sync_*`), and the ceiling of any group commit on one
    /// connection: `insert_many` in batches of `threads` documents from one thread
    /// (`batched_ceiling_vs_insert_one`).
    GroupCommit,
    /// `insert_many` in batches of 1,000 into a buffered database: documents per second
    /// acknowledged (burst), and until applied (`sustained_*`), against raw `insert-many`.
    /// Also `insert_one` acknowledged one at a time, without and with a unique index
    /// (`insert_one_acked_per_sec`, `insert_one_acked_unique_index_per_sec`).
    Buffered,
    /// `find({score: {$gt: x}}).sort({score: 1}).limit(20)` with an index on `score`.
    FindRangeSort,
    /// `find({city: C}).sort({score: -1}).limit(20)` with no index: every document of the
    /// city is read and the best 20 kept in memory (top-k); raw rusqlite lets SQLite's
    /// sorter do the same `ORDER BY … LIMIT 20`. Also a sort of every document of the
    /// city without a limit (`unlimited_*`).
    FindSortScan,
    /// `find({skus: s})` on an array field with a multikey index (documents get an extra
    /// `skus` array of two values; raw rusqlite keeps the same side table by hand).
    FindMultikey,
    /// `create_index({email: 1})` on a loaded collection (ops = documents indexed); also
    /// a multikey index on `tags` and a unique index on `name` (`unique_ratio_vs_raw`,
    /// against `CREATE UNIQUE INDEX`).
    IndexBuild,
    /// `insert_many` with 0, 1, 2 and 4 secondary indexes: the write cost per index.
    IndexWriteCost,
    /// `aggregate([{$group: {_id: "$city", n: {$sum: 1}, avg: {$avg: "$score"}}}])`
    /// against the same `GROUP BY` written by hand (see `group_by`).
    GroupBy,
    /// `insert_many` in batches of 1,000 into a collection sharded over `threads` shards
    /// (default 2), written in parallel; against raw `insert-many` into one file, and
    /// pocketdb's single-file `insert_many` (`vs_single_file`).
    ShardedInsert,
    /// The `find-scan` query over `threads` shards (default 2) scanned in parallel,
    /// against the same query on one file through pocketdb (`speedup_vs_single_file`)
    /// and raw rusqlite.
    ShardedScan,
    /// Storage of small event documents (`event`, seed 002's micro-documents):
    /// `insert_many` in batches of 1,000, then the bytes of the database per document
    /// (pages in use after a checkpoint), with the change log kept whole (the default)
    /// and trimmed to its last 10,000 entries (`ChangeRetention`), against raw rusqlite
    /// storing the same JSONB documents (`bytes_per_doc`, which is also MB per million
    /// documents, `trimmed_log_bytes_per_doc`, `raw_bytes_per_doc`, `storage_vs_raw`).
    EventStorage,
}

impl Workload {
    /// Every workload, in report order.
    pub const ALL: [Workload; 17] = [
        Workload::InsertMany,
        Workload::InsertOne,
        Workload::GetById,
        Workload::FindIndexed,
        Workload::FindScan,
        Workload::UpdateOne,
        Workload::GroupCommit,
        Workload::Buffered,
        Workload::FindRangeSort,
        Workload::FindSortScan,
        Workload::FindMultikey,
        Workload::IndexBuild,
        Workload::IndexWriteCost,
        Workload::GroupBy,
        Workload::ShardedInsert,
        Workload::ShardedScan,
        Workload::EventStorage,
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
            Workload::GroupCommit => "group-commit",
            Workload::Buffered => "buffered",
            Workload::FindRangeSort => "find-range-sort",
            Workload::FindSortScan => "find-sort-scan",
            Workload::FindMultikey => "find-multikey",
            Workload::IndexBuild => "index-build",
            Workload::IndexWriteCost => "index-write-cost",
            Workload::GroupBy => "group-by",
            Workload::ShardedInsert => "sharded-insert",
            Workload::ShardedScan => "sharded-scan",
            Workload::EventStorage => "event-storage",
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
                format!("unknown workload '{s}'; known: {}", names.join(", "))
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
    /// Writer threads for concurrent workloads (`group-commit`: default 16); the number
    /// of shards for `sharded-insert` and `sharded-scan` (default 2).
    pub threads: Option<usize>,
    /// Let SQLite checkpoint the WAL inside the committing writer, as raw rusqlite does,
    /// instead of pocketdb's background checkpoint thread (to measure what the thread
    /// brings).
    pub sqlite_checkpoints: bool,
}

impl Config {
    /// The options of the databases pocketdb's side of a workload opens.
    fn options(&self) -> Options {
        Options::default()
            .checkpoint(CheckpointOptions::default().background(!self.sqlite_checkpoints))
    }
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
        remove_database_files(p);
    }
    let db = Database::open_with(&db_path, config.options())?;
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
            let ops = config.ops.unwrap_or(n.min(10_000));
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
            load(&coll, n)?;
            load_raw(&mut conn, n)?;
            coll.create_index(json!({"email": 1}), IndexOptions::default())?;
            conn.execute_batch("CREATE INDEX docs_email ON docs(json_extract(doc, '$.email'))")?;
            let ops = config.ops.unwrap_or(n.min(20_000));
            let email = |k: u64| format!("user{}@example.com", (k * 7919) % n);
            let (s, lat) = timed(ops, |k| {
                let found = coll.find(json!({"email": email(k)}))?.to_vec()?;
                if found.len() != 1 {
                    return Err(format!("find-indexed found {} documents", found.len()).into());
                }
                Ok(())
            })?;
            let (r, raw_lat) = timed(ops, |k| {
                if raw::find_by_email(&conn, &email(k))? != 1 {
                    return Err("raw find-indexed missed".into());
                }
                Ok(())
            })?;
            latencies(&mut extra, "", lat);
            latencies(&mut extra, "raw_", raw_lat);
            explain_index(
                &mut extra,
                coll.find(json!({"email": email(1)}))?.explain()?,
            );
            (ops, s, r)
        }
        Workload::FindRangeSort => {
            load(&coll, n)?;
            load_raw(&mut conn, n)?;
            coll.create_index(json!({"score": 1}), IndexOptions::default())?;
            conn.execute_batch("CREATE INDEX docs_score ON docs(json_extract(doc, '$.score'))")?;
            let ops = config.ops.unwrap_or(n.min(20_000));
            let low = |k: u64| ((k * 7919) % 9_000) as f64 / 100.0;
            let (s, lat) = timed(ops, |k| {
                let found = coll
                    .find(json!({"score": {"$gt": low(k)}}))?
                    .sort(json!({"score": 1}))
                    .limit(20)
                    .to_vec()?;
                if found.len() != 20 {
                    return Err(format!("find-range-sort found {}", found.len()).into());
                }
                Ok(())
            })?;
            let (r, raw_lat) = timed(ops, |k| {
                if raw::range_sort(&conn, low(k))? != 20 {
                    return Err("raw find-range-sort missed".into());
                }
                Ok(())
            })?;
            latencies(&mut extra, "", lat);
            latencies(&mut extra, "raw_", raw_lat);
            let e = coll
                .find(json!({"score": {"$gt": 50}}))?
                .sort(json!({"score": 1}))
                .limit(20)
                .explain()?;
            extra.insert("sort_in_sql".into(), json!(e.sort_in_sql));
            explain_index(&mut extra, e);
            (ops, s, r)
        }
        Workload::FindMultikey => {
            coll.create_index(json!({"skus": 1}), IndexOptions::default())?;
            let mut start = 0;
            while start < n {
                let end = (start + BATCH).min(n);
                coll.insert_many((start..end).map(|i| sku_document(i, n)))?;
                let docs: Vec<Value> = (start..end).map(|i| sku_document(i, n)).collect();
                raw::insert_with_skus(&mut conn, &docs)?;
                start = end;
            }
            let ops = config.ops.unwrap_or(n.min(20_000));
            let sku = |k: u64| format!("sku{}", (k * 7919) % n);
            let (s, lat) = timed(ops, |k| {
                if coll.find(json!({"skus": sku(k)}))?.to_vec()?.is_empty() {
                    return Err("find-multikey found nothing".into());
                }
                Ok(())
            })?;
            let (r, raw_lat) = timed(ops, |k| {
                if raw::find_by_sku(&conn, &sku(k))? == 0 {
                    return Err("raw find-multikey found nothing".into());
                }
                Ok(())
            })?;
            latencies(&mut extra, "", lat);
            latencies(&mut extra, "raw_", raw_lat);
            explain_index(&mut extra, coll.find(json!({"skus": sku(1)}))?.explain()?);
            (ops, s, r)
        }
        Workload::IndexBuild => {
            load(&coll, n)?;
            load_raw(&mut conn, n)?;
            let t = Instant::now();
            coll.create_index(json!({"email": 1}), IndexOptions::default())?;
            let s = t.elapsed().as_secs_f64();
            let t = Instant::now();
            conn.execute_batch("CREATE INDEX docs_email ON docs(json_extract(doc, '$.email'))")?;
            let r = t.elapsed().as_secs_f64();
            let t = Instant::now();
            coll.create_index(json!({"tags": 1}), IndexOptions::default())?;
            extra.insert(
                "multikey_docs_per_sec".into(),
                json!(n as f64 / t.elapsed().as_secs_f64()),
            );
            // A unique index (the keys are checked for repeats) against SQLite's own.
            let t = Instant::now();
            coll.create_index(json!({"name": 1}), IndexOptions::default().unique(true))?;
            let unique = t.elapsed().as_secs_f64();
            let t = Instant::now();
            conn.execute_batch(
                "CREATE UNIQUE INDEX docs_name ON docs(json_extract(doc, '$.name'))",
            )?;
            extra.insert(
                "unique_ratio_vs_raw".into(),
                json!(t.elapsed().as_secs_f64() / unique.max(1e-9)),
            );
            (n, s, r)
        }
        Workload::IndexWriteCost => {
            let per = config.ops.unwrap_or(n.min(200_000));
            let specs = [
                json!({"email": 1}),
                json!({"city": 1}),
                json!({"age": 1}),
                json!({"score": 1}),
            ];
            let mut base = 0.0;
            for k in [0usize, 1, 2, 4] {
                let c = db.collection::<Value>(&format!("w{k}"));
                for spec in &specs[..k] {
                    c.create_index(spec.clone(), IndexOptions::default())?;
                }
                let t = Instant::now();
                load(&c, per)?;
                let rate = per as f64 / t.elapsed().as_secs_f64();
                if k == 0 {
                    base = rate;
                }
                extra.insert(format!("docs_per_sec_{k}_indexes"), json!(rate.round()));
                if k > 0 {
                    extra.insert(
                        format!("slowdown_per_index_{k}"),
                        json!(((1.0 - rate / base) / k as f64 * 1000.0).round() / 1000.0),
                    );
                }
            }
            let t = Instant::now();
            load_raw(&mut conn, per)?;
            (per, per as f64 / base, t.elapsed().as_secs_f64())
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
        Workload::FindSortScan => {
            load(&coll, n)?;
            load_raw(&mut conn, n)?;
            let ops = config.ops.unwrap_or(10);
            let mut found = Vec::new();
            let t = Instant::now();
            for k in 0..ops {
                let city = CITIES[(k % 50) as usize];
                let docs = coll
                    .find(json!({"city": city}))?
                    .sort(json!({"score": -1}))
                    .limit(20)
                    .to_vec()?;
                found.push(docs.iter().map(|d| d["score"].clone()).collect::<Vec<_>>());
            }
            let s = t.elapsed().as_secs_f64();
            let mut raw_found = Vec::new();
            let t = Instant::now();
            for k in 0..ops {
                raw_found.push(raw::top_scores(&conn, CITIES[(k % 50) as usize], 20)?);
            }
            let r = t.elapsed().as_secs_f64();
            // Scores tie across documents: compare the scores, not the documents.
            if found != raw_found {
                return Err("find-sort-scan: pocketdb and raw top scores differ".into());
            }
            // The same sort without a limit: every document of the city, in order.
            let unlimited_ops = ops.min(5);
            let t = Instant::now();
            let mut unlimited = 0;
            for k in 0..unlimited_ops {
                let city = CITIES[(k % 50) as usize];
                unlimited += coll
                    .find(json!({"city": city}))?
                    .sort(json!({"score": -1}))
                    .count();
            }
            let us = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let mut raw_unlimited = 0;
            for k in 0..unlimited_ops {
                let city = CITIES[(k % 50) as usize];
                raw_unlimited += raw::top_scores(&conn, city, -1)?.len();
            }
            let ur = t.elapsed().as_secs_f64();
            if unlimited != raw_unlimited {
                return Err(format!("find-sort-scan: {unlimited} vs raw {raw_unlimited}").into());
            }
            let e = coll
                .find(json!({"city": CITIES[0]}))?
                .sort(json!({"score": -1}))
                .limit(20)
                .explain()?;
            extra.insert("sorted_in_memory".into(), json!(e.sorted_in_memory));
            extra.insert("ms_per_query".into(), json!(s * 1000.0 / ops as f64));
            extra.insert(
                "unlimited_ms_per_query".into(),
                json!(us * 1000.0 / unlimited_ops as f64),
            );
            extra.insert("unlimited_ratio_vs_raw".into(), json!(ur / us.max(1e-9)));
            (ops, s, r)
        }
        Workload::ShardedInsert | Workload::ShardedScan => {
            let shards = config.threads.unwrap_or(2).max(1);
            let t = if config.workload == Workload::ShardedInsert {
                crate::sharded::insert(&dir, &coll, &mut conn, n, shards, &mut extra)?
            } else {
                let ops = config.ops.unwrap_or(20);
                crate::sharded::scan(&dir, &coll, &mut conn, n, ops, shards, &mut extra)?
            };
            (t.ops, t.seconds, t.raw_seconds)
        }
        Workload::EventStorage => {
            let t = Instant::now();
            load_events(&coll, n)?;
            let seconds = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let mut start = 0;
            while start < n {
                let end = (start + BATCH).min(n);
                let docs: Vec<Value> = (start..end)
                    .map(|i| {
                        let mut d = event(i);
                        if let Value::Object(m) = &mut d {
                            m.shift_insert(0, "_id".to_string(), json!(doc_id(i)));
                        }
                        d
                    })
                    .collect();
                raw::insert_batch(&mut conn, &docs)?;
                start = end;
            }
            let raw_seconds = t.elapsed().as_secs_f64();
            // The same events with the change log trimmed as it grows.
            let trimmed_path = dir.join("bench-event-storage-trimmed.sqlite");
            remove_database_files(&trimmed_path);
            {
                let trimmed = Database::open_with(&trimmed_path, config.options())?;
                trimmed.set_change_retention(ChangeRetention::default().max_count(10_000))?;
                load_events(&trimmed.collection::<Value>("bench"), n)?;
                trimmed.trim_changes()?;
                trimmed.checkpoint(CheckpointMode::Truncate)?;
            }
            db.checkpoint(CheckpointMode::Truncate)?;
            conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
            let per_doc = |path: &std::path::Path| -> Result<f64, BoxError> {
                Ok(used_bytes(&rusqlite::Connection::open(path)?)? as f64 / n as f64)
            };
            let ours = per_doc(&db_path)?;
            let trimmed = per_doc(&trimmed_path)?;
            let raw_bytes = used_bytes(&conn)? as f64 / n as f64;
            let text: usize = (0..n.min(1_000))
                .map(|i| serde_json::to_string(&event(i)).map_or(0, |t| t.len()))
                .sum();
            extra.insert(
                "json_bytes_per_doc".into(),
                json!(text as f64 / n.min(1_000) as f64),
            );
            extra.insert("bytes_per_doc".into(), json!(ours));
            extra.insert("trimmed_log_bytes_per_doc".into(), json!(trimmed));
            extra.insert("raw_bytes_per_doc".into(), json!(raw_bytes));
            extra.insert("storage_vs_raw".into(), json!(ours / raw_bytes.max(1e-9)));
            extra.insert(
                "trimmed_log_storage_vs_raw".into(),
                json!(trimmed / raw_bytes.max(1e-9)),
            );
            (n, seconds, raw_seconds)
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
            let ops = config.ops.unwrap_or(n.min(20_000));
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
        Workload::GroupCommit => {
            let threads = config.threads.unwrap_or(16).max(1);
            let ops = config.ops.unwrap_or(n.min(20_000)).max(threads as u64);
            let per = ops / threads as u64;
            let ops = per * threads as u64;
            let group_db = Database::open_with(
                dir.join("bench-group-commit-gc.sqlite"),
                config.options().durability(Durability::GroupCommit),
            )?;
            let s = concurrent_inserts(&group_db, threads, per)?;
            extra.insert(
                "writes_per_commit".into(),
                json!(writes_per_commit(&group_db)?),
            );
            // The same with `synchronous=FULL`, where every commit is an fsync: what group
            // commit amortises. Compared with a single thread's `insert_one` on FULL.
            let full = || config.options().synchronous(Synchronous::Full);
            let full_group = Database::open_with(
                dir.join("bench-group-commit-full-gc.sqlite"),
                full().durability(Durability::GroupCommit),
            )?;
            let full_per = (per / 4).max(1);
            let full_s = concurrent_inserts(&full_group, threads, full_per)?;
            extra.insert(
                "full_sync_writes_per_commit".into(),
                json!(writes_per_commit(&full_group)?),
            );
            let full_rate = (full_per * threads as u64) as f64 / full_s.max(1e-9);
            let full_single =
                Database::open_with(dir.join("bench-group-commit-full.sqlite"), full())?
                    .collection::<Value>("bench");
            let single_ops = 500u64;
            let t = Instant::now();
            for i in 0..single_ops {
                full_single.insert_one(document(i))?;
            }
            let full_single_rate = single_ops as f64 / t.elapsed().as_secs_f64().max(1e-9);
            extra.insert("full_sync_ops_per_sec".into(), json!(full_rate));
            extra.insert(
                "full_sync_insert_one_ops_per_sec".into(),
                json!(full_single_rate),
            );
            extra.insert(
                "full_sync_vs_insert_one".into(),
                json!(full_rate / full_single_rate.max(1e-9)),
            );
            // pocketdb's own insert-one on one thread, for the ratio the issue asks for.
            let single = ops.min(5_000);
            let t = Instant::now();
            for i in 0..single {
                coll.insert_one(document(i))?;
            }
            let single_rate = single as f64 / t.elapsed().as_secs_f64().max(1e-9);
            let t = Instant::now();
            for i in 0..single {
                raw::insert_batch(&mut conn, &[document(i)])?;
            }
            let raw_rate = single as f64 / t.elapsed().as_secs_f64().max(1e-9);
            // The ceiling of any group commit on one writer connection: every group of
            // `threads` writes in one transaction with no coordination at all, that is
            // `insert_many` in batches of `threads` documents from one thread.
            let batched = Database::open_with(
                dir.join("bench-group-commit-batched.sqlite"),
                config.options(),
            )?
            .collection::<Value>("bench");
            let batch_docs: Vec<Value> = (0..ops).map(document).collect();
            let t = Instant::now();
            for chunk in batch_docs.chunks(threads) {
                batched.insert_many(chunk)?;
            }
            let batched_rate = ops as f64 / t.elapsed().as_secs_f64().max(1e-9);
            let rate = ops as f64 / s.max(1e-9);
            extra.insert("threads".into(), json!(threads));
            extra.insert("insert_one_ops_per_sec".into(), json!(single_rate));
            extra.insert("vs_insert_one".into(), json!(rate / single_rate.max(1e-9)));
            extra.insert(
                "batched_ceiling_vs_insert_one".into(),
                json!(batched_rate / single_rate.max(1e-9)),
            );
            (ops, s, ops as f64 / raw_rate)
        }
        Workload::Buffered => {
            let buffered_db = Database::open_with(
                dir.join("bench-buffered-buf.sqlite"),
                config.options().durability(Durability::Buffered(
                    BufferOptions::default()
                        .max_buffered(usize::try_from(n).unwrap_or(usize::MAX).max(1_000))
                        .batch_size(10_000),
                )),
            )?;
            let bcoll = buffered_db.collection::<Value>("bench");
            let docs: Vec<Vec<Value>> = (0..n)
                .step_by(BATCH as usize)
                .map(|start| (start..(start + BATCH).min(n)).map(document).collect())
                .collect();
            // The floor of an acknowledged write on this machine: serialising the
            // document to JSON text, which every write to the log needs.
            let t = Instant::now();
            let mut text_bytes = 0usize;
            for d in docs.iter().flatten() {
                text_bytes += serde_json::to_string(d)?.len();
            }
            let serialize_rate = n as f64 / t.elapsed().as_secs_f64().max(1e-9);
            std::hint::black_box(text_bytes);
            let t = Instant::now();
            for batch in &docs {
                bcoll.insert_many(batch)?;
            }
            let acked = t.elapsed().as_secs_f64();
            extra.insert("serialize_only_docs_per_sec".into(), json!(serialize_rate));
            extra.insert(
                "acked_vs_serialize_only".into(),
                json!(n as f64 / acked.max(1e-9) / serialize_rate.max(1e-9)),
            );
            buffered_db.flush()?;
            let applied = t.elapsed().as_secs_f64();
            if bcoll.count_documents(json!({}))? != n {
                return Err("buffered: documents missing after flush".into());
            }
            let stats = buffered_db.buffer_stats().unwrap_or_default();
            // insert_one, acknowledged one at a time.
            let singles = config.ops.unwrap_or(n.min(50_000));
            let t = Instant::now();
            for i in 0..singles {
                bcoll.insert_one(document(n + i))?;
            }
            let single_s = t.elapsed().as_secs_f64();
            // The same into a collection with a unique index on `email`: each write
            // claims its key before it is acknowledged (a read of the stored holders).
            let ucoll = buffered_db.collection::<Value>("bench_unique");
            ucoll.create_index(json!({"email": 1}), IndexOptions::default().unique(true))?;
            let unique_ops = singles.min(20_000);
            let t = Instant::now();
            for i in 0..unique_ops {
                ucoll.insert_one(document(i))?;
            }
            let unique_s = t.elapsed().as_secs_f64();
            buffered_db.flush()?;
            extra.insert(
                "insert_one_acked_unique_index_per_sec".into(),
                json!(unique_ops as f64 / unique_s.max(1e-9)),
            );
            let t = Instant::now();
            load_raw(&mut conn, n)?;
            let r = t.elapsed().as_secs_f64();
            let raw_rate = n as f64 / r.max(1e-9);
            extra.insert("sustained_docs_per_sec".into(), json!(n as f64 / applied));
            extra.insert(
                "sustained_ratio_vs_raw".into(),
                json!(n as f64 / applied / raw_rate.max(1e-9)),
            );
            extra.insert(
                "insert_one_acked_per_sec".into(),
                json!(singles as f64 / single_s.max(1e-9)),
            );
            extra.insert("batches".into(), json!(stats.batches));
            (n, acked, r)
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

pub(crate) fn load(coll: &Collection<Value>, n: u64) -> Result<(), BoxError> {
    load_generated(coll, n, document)
}

/// Inserts events `0..n` (`event`) in batches of [`BATCH`].
fn load_events(coll: &Collection<Value>, n: u64) -> Result<(), BoxError> {
    load_generated(coll, n, event)
}

/// Inserts `generate(0..n)` in batches of [`BATCH`].
fn load_generated(
    coll: &Collection<Value>,
    n: u64,
    generate: fn(u64) -> Value,
) -> Result<(), BoxError> {
    let mut start = 0;
    while start < n {
        let end = (start + BATCH).min(n);
        coll.insert_many((start..end).map(generate))?;
        start = end;
    }
    Ok(())
}

/// Bytes of a database's pages in use (pages on the free list left out: a file does
/// not shrink without `VACUUM`, but its free pages are reused first).
fn used_bytes(conn: &rusqlite::Connection) -> Result<u64, BoxError> {
    let pragma = |name: &str| -> rusqlite::Result<u64> {
        conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get::<_, i64>(0))
            .map(|v| u64::try_from(v).unwrap_or(0))
    };
    Ok(pragma("page_count")?.saturating_sub(pragma("freelist_count")?) * pragma("page_size")?)
}

/// Deletes a database file and its WAL and shared-memory files, if there.
fn remove_database_files(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

pub(crate) fn load_raw(conn: &mut rusqlite::Connection, n: u64) -> Result<(), BoxError> {
    let mut start = 0;
    while start < n {
        let end = (start + BATCH).min(n);
        let docs: Vec<Value> = (start..end).map(document).collect();
        raw::insert_batch(conn, &docs)?;
        start = end;
    }
    Ok(())
}

type OpResult = Result<(), BoxError>;

/// Runs `op` for `0..ops`, returning the total seconds and each operation's latency.
/// Per-operation latencies of a timed loop, and how often the scheduler took the CPU
/// away from the thread meanwhile.
struct Latencies {
    seconds: Vec<f64>,
    /// Involuntary context switches of the thread during the loop (Linux only): on a
    /// loaded machine each one can add a scheduler time slice (~4 ms) to an operation,
    /// which shows in the p99 whatever the code does.
    preempted: Option<u64>,
}

fn timed(ops: u64, mut op: impl FnMut(u64) -> OpResult) -> Result<(f64, Latencies), BoxError> {
    let mut lat = Vec::with_capacity(ops as usize);
    let switches = involuntary_switches();
    let start = Instant::now();
    for k in 0..ops {
        let t = Instant::now();
        op(k)?;
        lat.push(t.elapsed().as_secs_f64());
    }
    let elapsed = start.elapsed().as_secs_f64();
    let preempted = match (switches, involuntary_switches()) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    Ok((
        elapsed,
        Latencies {
            seconds: lat,
            preempted,
        },
    ))
}

/// The calling thread's involuntary context switches so far (`/proc/thread-self/status`).
fn involuntary_switches() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/thread-self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("nonvoluntary_ctxt_switches:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Adds p50 / p99 / max latencies in milliseconds under `prefix`, the number of
/// operations slower than 1 ms, and the thread's involuntary context switches.
fn latencies(extra: &mut Map<String, Value>, prefix: &str, lat: Latencies) {
    let Latencies {
        seconds: mut lat,
        preempted,
    } = lat;
    if lat.is_empty() {
        return;
    }
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let at = |q: f64| lat[((lat.len() as f64 - 1.0) * q).round() as usize] * 1000.0;
    let ms = |x: f64| json!((x * 1000.0).round() / 1000.0);
    extra.insert(format!("{prefix}p50_ms"), ms(at(0.5)));
    extra.insert(format!("{prefix}p99_ms"), ms(at(0.99)));
    extra.insert(format!("{prefix}max_ms"), ms(at(1.0)));
    let slow = lat.iter().filter(|s| **s > 0.001).count();
    extra.insert(format!("{prefix}over_1ms"), json!(slow));
    if let Some(p) = preempted {
        extra.insert(format!("{prefix}preempted"), json!(p));
    }
}

fn explain_index(extra: &mut Map<String, Value>, e: Explain) {
    extra.insert("index".into(), json!(e.index));
}

/// Document `i` with an extra `skus` array of two values for the multikey workload.
fn sku_document(i: u64, n: u64) -> Value {
    let mut d = document(i);
    if let Value::Object(m) = &mut d {
        m.insert(
            "skus".into(),
            json!([format!("sku{i}"), format!("sku{}", (i * 31 + 7) % n)]),
        );
    }
    d
}

/// Average number of writes that shared a commit since `db` was opened.
fn writes_per_commit(db: &Database) -> Result<f64, BoxError> {
    let c = db.stats()?.commits;
    Ok(c.writes as f64 / c.transactions.max(1) as f64)
}

/// Seconds for `threads` threads each inserting `per` documents with `insert_one`.
fn concurrent_inserts(db: &Database, threads: usize, per: u64) -> Result<f64, BoxError> {
    let t = Instant::now();
    let handles: Vec<_> = (0..threads as u64)
        .map(|k| {
            let c = db.collection::<Value>("bench");
            std::thread::spawn(move || -> Result<(), pocketdb::Error> {
                for i in 0..per {
                    c.insert_one(document(k * per + i))?;
                }
                Ok(())
            })
        })
        .collect();
    for h in handles {
        h.join().map_err(|_| "a writer thread panicked")??;
    }
    Ok(t.elapsed().as_secs_f64())
}
