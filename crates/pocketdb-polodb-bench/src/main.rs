//! `pocketdb-polodb-bench`: the workloads of `pocketdb bench` run on PoloDB
//! (`polodb_core` 5, an embedded MongoDB-like database on RocksDB), with the same
//! documents (`pocketdb_bench::document`), the same operation counts and the same report
//! shape. By default each workload is also run through `pocketdb_bench::run` in the same
//! process, so every line carries PoloDB, pocketdb and raw rusqlite side by side.
//!
//! ```text
//! apt-get install -y libclang-dev
//! cargo run --release --manifest-path crates/pocketdb-polodb-bench/Cargo.toml -- \
//!     --workload get-by-id --docs 100000
//! ```
//!
//! Workloads PoloDB has no counterpart for (`group-commit`, `buffered`, `find-multikey`,
//! `index-write-cost`, `group-by`: no group commit or buffered mode, and `$group` has no
//! `$avg`) are skipped with a note on stderr.

use clap::Parser;
use pocketdb_bench::{doc_id, document, Config, Workload, CITIES};
use polodb_core::bson::{doc, Document};
use polodb_core::{Collection, CollectionT, Database, IndexModel};
use serde_json::{json, Map, Value};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Instant;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Command-line arguments (the same names as `pocketdb bench`).
#[derive(Debug, Parser)]
#[command(name = "pocketdb-polodb-bench", about)]
struct Args {
    /// Workload name, a comma-separated list, or `all`
    #[arg(long, short, default_value = "all")]
    workload: String,
    /// Documents loaded (or inserted) per workload
    #[arg(long, default_value_t = 100_000)]
    docs: u64,
    /// Operations measured [default: as in `pocketdb bench`]
    #[arg(long)]
    ops: Option<u64>,
    /// One JSON object per workload instead of a line of text
    #[arg(long)]
    json: bool,
    /// Directory for the database files (a temporary one by default)
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Measure PoloDB only (no pocketdb / raw rusqlite run for comparison)
    #[arg(long)]
    polodb_only: bool,
}

/// PoloDB's result for one workload.
struct Measured {
    ops: u64,
    seconds: f64,
    extra: Map<String, Value>,
}

fn main() {
    let args = Args::parse();
    let workloads = match parse_workloads(&args.workload) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run_all(&args, &workloads) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn parse_workloads(text: &str) -> Result<Vec<Workload>, String> {
    if text.trim() == "all" {
        return Ok(Workload::ALL.to_vec());
    }
    text.split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(Workload::from_str)
        .collect()
}

fn run_all(args: &Args, workloads: &[Workload]) -> Result<(), BoxError> {
    let tmp = tempfile::tempdir()?;
    let dir = args.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir)?;
    for &w in workloads {
        if !supported(w) {
            eprintln!("skipped {w}: no PoloDB counterpart");
            continue;
        }
        let n = args.docs.max(1);
        // pocketdb and raw rusqlite first; PoloDB then does the same number of operations.
        let peer = if args.polodb_only {
            None
        } else {
            Some(pocketdb_bench::run(&Config {
                workload: w,
                docs: n,
                ops: args.ops,
                dir: Some(dir.join("pocketdb")),
                threads: None,
                sqlite_checkpoints: false,
            })?)
        };
        let ops = peer.as_ref().map(|r| r.ops).or(args.ops);
        let path = dir.join(format!("polodb-{w}"));
        if path.exists() {
            std::fs::remove_dir_all(&path)?;
        }
        let db = Database::open_path(&path)?;
        let m = measure(&db, w, n, ops)?;
        drop(db);
        let _ = std::fs::remove_dir_all(&path);

        let ops_per_sec = m.ops as f64 / m.seconds.max(1e-9);
        let mut out = json!({
            "workload": w.name(),
            "engine": "polodb",
            "docs": n,
            "ops": m.ops,
            "seconds": m.seconds,
            "ops_per_sec": ops_per_sec,
        });
        if let (Some(r), Value::Object(map)) = (&peer, &mut out) {
            map.insert("raw_seconds".into(), json!(r.raw_seconds));
            map.insert("raw_ops_per_sec".into(), json!(r.raw_ops_per_sec));
            map.insert(
                "ratio_vs_raw".into(),
                json!(ops_per_sec / r.raw_ops_per_sec.max(1e-9)),
            );
            map.insert("pocketdb_ops_per_sec".into(), json!(r.ops_per_sec));
            map.insert(
                "pocketdb_vs_polodb".into(),
                json!(r.ops_per_sec / ops_per_sec.max(1e-9)),
            );
        }
        if let Value::Object(map) = &mut out {
            map.extend(m.extra);
        }
        if args.json {
            println!("{out}");
        } else {
            println!("{}", human(&out));
        }
    }
    Ok(())
}

fn human(r: &Value) -> String {
    let f = |k: &str| r[k].as_f64().unwrap_or(0.0);
    let mut text = format!(
        "{:<16} docs={:<8} ops={:<8} polodb {:>11.0} ops/s",
        r["workload"].as_str().unwrap_or(""),
        r["docs"],
        r["ops"],
        f("ops_per_sec")
    );
    if r.get("raw_ops_per_sec").is_some() {
        text.push_str(&format!(
            "   pocketdb {:>11.0} ops/s   raw rusqlite {:>11.0} ops/s   polodb/raw {:.2}   pocketdb/polodb {:.2}",
            f("pocketdb_ops_per_sec"),
            f("raw_ops_per_sec"),
            f("ratio_vs_raw"),
            f("pocketdb_vs_polodb")
        ));
    }
    text
}

fn supported(w: Workload) -> bool {
    matches!(
        w,
        Workload::InsertMany
            | Workload::InsertOne
            | Workload::GetById
            | Workload::FindIndexed
            | Workload::FindScan
            | Workload::UpdateOne
            | Workload::FindRangeSort
            | Workload::IndexBuild
    )
}

/// Document `i` as BSON.
fn bson_doc(i: u64) -> Result<Document, BoxError> {
    Ok(polodb_core::bson::to_document(&document(i))?)
}

fn load(coll: &Collection<Document>, n: u64) -> Result<(), BoxError> {
    let mut start = 0;
    while start < n {
        let end = (start + 1_000).min(n);
        let docs = (start..end).map(bson_doc).collect::<Result<Vec<_>, _>>()?;
        coll.insert_many(docs)?;
        start = end;
    }
    Ok(())
}

fn index(coll: &Collection<Document>, field: &str) -> Result<(), BoxError> {
    coll.create_index(IndexModel {
        keys: doc! { field: 1 },
        options: None,
    })?;
    Ok(())
}

/// Longest a measured loop runs: PoloDB answers some queries (a sort over half the
/// collection, a scan) far more slowly than pocketdb, and the rate is what is compared.
const TIME_BUDGET_SECS: f64 = 20.0;

/// Runs `op` for `0..ops`, or until [`TIME_BUDGET_SECS`] have passed; returns the
/// operations done and the seconds taken, and notes an early stop in `extra`.
fn timed(
    ops: u64,
    extra: &mut Map<String, Value>,
    mut op: impl FnMut(u64) -> Result<(), BoxError>,
) -> Result<(u64, f64), BoxError> {
    let t = Instant::now();
    let mut done = 0;
    while done < ops {
        op(done)?;
        done += 1;
        if t.elapsed().as_secs_f64() > TIME_BUDGET_SECS && done < ops {
            extra.insert("stopped_early_after_ops".into(), json!(done));
            break;
        }
    }
    Ok((done, t.elapsed().as_secs_f64()))
}

fn measure(db: &Database, w: Workload, n: u64, ops: Option<u64>) -> Result<Measured, BoxError> {
    let coll = db.collection::<Document>("bench");
    let mut extra = Map::new();
    let (ops, seconds) = match w {
        Workload::InsertMany => {
            let t = Instant::now();
            load(&coll, n)?;
            (n, t.elapsed().as_secs_f64())
        }
        Workload::InsertOne => {
            let ops = ops.unwrap_or(n.min(2_000));
            let docs = (0..ops).map(bson_doc).collect::<Result<Vec<_>, _>>()?;
            let t = Instant::now();
            for d in docs {
                coll.insert_one(d)?;
            }
            (ops, t.elapsed().as_secs_f64())
        }
        Workload::GetById => {
            load(&coll, n)?;
            let ops = ops.unwrap_or(n.min(100_000));
            timed(ops, &mut extra, |k| {
                let id = doc_id((k * 7919) % n);
                match coll.find_one(doc! {"_id": &id})? {
                    Some(_) => Ok(()),
                    None => Err(format!("document {id} missing").into()),
                }
            })?
        }
        Workload::FindIndexed => {
            load(&coll, n)?;
            index(&coll, "email")?;
            let ops = ops.unwrap_or(n.min(20_000));
            timed(ops, &mut extra, |k| {
                let email = format!("user{}@example.com", (k * 7919) % n);
                let found = coll
                    .find(doc! {"email": email})
                    .run()?
                    .collect::<Result<Vec<_>, _>>()?;
                if found.len() != 1 {
                    return Err(format!("find-indexed found {} documents", found.len()).into());
                }
                Ok(())
            })?
        }
        Workload::FindRangeSort => {
            load(&coll, n)?;
            index(&coll, "score")?;
            let ops = ops.unwrap_or(n.min(20_000));
            timed(ops, &mut extra, |k| {
                let low = ((k * 7919) % 9_000) as f64 / 100.0;
                let found = coll
                    .find(doc! {"score": {"$gt": low}})
                    .sort(doc! {"score": 1})
                    .limit(20)
                    .run()?
                    .collect::<Result<Vec<_>, _>>()?;
                if found.len() != 20 {
                    return Err(format!("find-range-sort found {}", found.len()).into());
                }
                Ok(())
            })?
        }
        Workload::FindScan => {
            load(&coll, n)?;
            let ops = ops.unwrap_or(5);
            let mut found = 0usize;
            let mut notes = Map::new();
            let (done, s) = timed(ops, &mut notes, |k| {
                let city = CITIES[(k % 50) as usize];
                for d in coll
                    .find(doc! {"score": {"$gt": 50}, "city": city})
                    .run()?
                {
                    d?;
                    found += 1;
                }
                Ok(())
            })?;
            extra.extend(notes);
            extra.insert("results".into(), json!(found));
            extra.insert("ms_per_scan".into(), json!(s * 1000.0 / done.max(1) as f64));
            (done, s)
        }
        Workload::UpdateOne => {
            load(&coll, n)?;
            let ops = ops.unwrap_or(n.min(5_000));
            timed(ops, &mut extra, |k| {
                let id = doc_id((k * 7919) % n);
                let r = coll.update_one(doc! {"_id": &id}, doc! {"$inc": {"age": 1}})?;
                if r.matched_count != 1 {
                    return Err(format!("update-one matched {} for {id}", r.matched_count).into());
                }
                Ok(())
            })?
        }
        Workload::IndexBuild => {
            load(&coll, n)?;
            let t = Instant::now();
            index(&coll, "email")?;
            (n, t.elapsed().as_secs_f64())
        }
        other => return Err(format!("{other} has no PoloDB counterpart").into()),
    };
    Ok(Measured {
        ops,
        seconds,
        extra,
    })
}
