//! Kill -9 crash test of every durability mode (see README.md in this folder).

use pocketdb::{
    BufferOptions, CollectionOptions, Database, Durability, FsyncPolicy, IndexOptions, Options,
};
use rand::Rng;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const CHILD_ENV: &str = "POCKETDB_CRASH_CHILD";
const MODES: [&str; 5] = [
    "sync",
    "group",
    "buffered-every",
    "buffered-interval",
    "buffered-never",
];
const BATCH: usize = 5;
/// `expire_after` of the `sessions` collection, in ms: long enough that nothing expires
/// during the test; what is checked is when each document will.
const SESSION_TTL_MS: i64 = 3_600_000;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn options(mode: &str) -> Options {
    let buffered = |fsync| {
        Durability::Buffered(
            BufferOptions::default()
                .fsync(fsync)
                .batch_size(64)
                .flush_interval(Duration::from_millis(2)),
        )
    };
    let durability = match mode {
        "sync" => Durability::Sync,
        "group" => Durability::GroupCommit,
        "buffered-every" => buffered(FsyncPolicy::EveryWrite),
        "buffered-interval" => buffered(FsyncPolicy::Interval(5)),
        _ => buffered(FsyncPolicy::Never),
    };
    Options::default().durability(durability)
}

/// The child: writes until killed, printing `ACK <id>` after each acknowledged
/// `insert_one`, `BATCH <tag>` after each acknowledged `insert_many`,
/// `INC <n>` after each acknowledged increment of the counter document, and
/// `EXP <id> <ms>` after each acknowledged insert into the expiring `sessions`
/// collection, with the time just after the acknowledgement.
#[test]
fn crash_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return; // Not a child: nothing to do.
    };
    let mut parts = spec.splitn(3, ':');
    let (mode, run, path) = match (parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(r), Some(p)) => (m.to_string(), r.to_string(), p.to_string()),
        _ => panic!("bad {CHILD_ENV}: {spec}"),
    };
    let db = Database::open_with(&path, options(&mode)).unwrap();
    // Every document takes a key `u` in a unique index; every other single insert also
    // tries a key already taken, which must be refused before it is acknowledged.
    db.collection::<Value>("items")
        .create_index(json!({"u": 1}), IndexOptions::default().unique(true))
        .unwrap();
    let ttl = Duration::from_millis(SESSION_TTL_MS as u64);
    match db.create_collection("sessions", CollectionOptions::default().expire_after(ttl)) {
        Ok(_) | Err(pocketdb::Error::CollectionExists(_)) => {}
        Err(e) => panic!("{e}"),
    }
    let threads = if mode == "sync" { 1 } else { 4 };
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let c = db.collection::<Value>("items");
            let counters = db.collection::<Value>("counters");
            let sessions = db.collection::<Value>("sessions");
            let run = run.clone();
            std::thread::spawn(move || {
                let counter = format!("{run}-{t}");
                counters
                    .insert_one(json!({"_id": counter, "n": 0}))
                    .unwrap();
                for i in 0.. {
                    let id = format!("{run}-{t}-{i}");
                    if i % 4 == 3 {
                        let docs: Vec<Value> = (0..BATCH)
                            .map(|k| {
                                let key = format!("{id}.{k}");
                                json!({"_id": key, "u": key, "batch": id, "k": k})
                            })
                            .collect();
                        c.insert_many(docs).unwrap();
                        println!("BATCH {id}");
                    } else if i % 4 == 1 {
                        counters
                            .update_one(json!({"_id": counter}), json!({"$inc": {"n": 1}}))
                            .unwrap();
                        println!("INC {counter} {}", i / 4 + 1);
                    } else {
                        c.insert_one(json!({"_id": id, "u": id, "pad": "x".repeat(i % 200)}))
                            .unwrap();
                        println!("ACK {id}");
                        if i % 4 == 0 {
                            sessions.insert_one(json!({"_id": id})).unwrap();
                            println!("EXP {id} {}", now_ms());
                        }
                        if i % 4 == 2 {
                            let taken = format!("{run}-{t}-{}", i - 2);
                            match c.insert_one(json!({"_id": format!("{id}-dup"), "u": taken})) {
                                Err(pocketdb::Error::DuplicateKey { .. }) => {}
                                other => println!("BADDUP {id} {other:?}"),
                            }
                        }
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

struct Acks {
    ids: Vec<String>,
    batches: Vec<String>,
    counters: HashMap<String, u64>,
    /// Sessions acknowledged, with the time printed after each acknowledgement.
    sessions: Vec<(String, i64)>,
    /// When the child was started (every acknowledgement came after).
    started: i64,
}

/// Runs one child until a random moment, kills it with SIGKILL, returns what it acked.
fn run_child(mode: &str, run: usize, path: &Path, rng: &mut impl Rng) -> Acks {
    let exe = std::env::current_exe().unwrap();
    let started = now_ms();
    let mut child = Command::new(exe)
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, format!("{mode}:{run}:{}", path.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Wait for the first acknowledgement, then let it run a random while.
    let first = rx.recv_timeout(Duration::from_secs(30)).ok();
    std::thread::sleep(Duration::from_millis(rng.random_range(5..150)));
    child.kill().unwrap(); // SIGKILL on unix
    let _ = child.wait();
    reader.join().unwrap();
    let mut acks = Acks {
        ids: Vec::new(),
        batches: Vec::new(),
        counters: HashMap::new(),
        sessions: Vec::new(),
        started,
    };
    for line in first.into_iter().chain(rx.try_iter()) {
        let mut words = line.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some("ACK"), Some(id), _) => acks.ids.push(id.to_string()),
            (Some("BADDUP"), _, _) => panic!("{mode}: a taken unique key was accepted: {line}"),
            (Some("BATCH"), Some(tag), _) => acks.batches.push(tag.to_string()),
            (Some("EXP"), Some(id), Some(at)) => {
                acks.sessions.push((id.to_string(), at.parse().unwrap()));
            }
            (Some("INC"), Some(counter), Some(n)) => {
                let n: u64 = n.parse().unwrap();
                let e = acks.counters.entry(counter.to_string()).or_default();
                *e = (*e).max(n);
            }
            _ => {}
        }
    }
    acks
}

/// Reopens the file killed in `mode` with the options of `reopen` (the same mode, or
/// `sync`: a buffered file's log must be replayed by an open in any mode) and checks it.
fn check(mode: &str, reopen: &str, path: &Path, acks: &Acks) -> (usize, usize) {
    let db = Database::open_with(path, options(reopen)).unwrap();
    let items = db.collection::<Value>("items");
    let present: HashSet<String> = items
        .find(json!({}))
        .unwrap()
        .projection(json!({"_id": 1}))
        .map(|d| d.unwrap()["_id"].as_str().unwrap().to_string())
        .collect();
    for id in &acks.ids {
        assert!(present.contains(id), "{mode}: acknowledged {id} is missing");
    }
    for tag in &acks.batches {
        for k in 0..BATCH {
            assert!(
                present.contains(&format!("{tag}.{k}")),
                "{mode}: acknowledged batch {tag} lost document {k}"
            );
        }
    }
    // No batch is half there, acknowledged or not.
    let mut per_batch: HashMap<String, usize> = HashMap::new();
    for d in items.find(json!({"batch": {"$exists": true}})).unwrap() {
        *per_batch
            .entry(d.unwrap()["batch"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    for (tag, n) in &per_batch {
        assert_eq!(*n, BATCH, "{mode}: batch {tag} is half-applied");
    }
    // No refused duplicate got in (nor was any write dropped when applied).
    assert_eq!(
        items
            .count_documents(json!({"_id": {"$regex": "-dup$"}}))
            .unwrap(),
        0
    );
    assert_eq!(
        db.buffer_stats().map_or(0, |s| s.dropped),
        0,
        "{mode}: writes dropped"
    );
    // Increments: at least every acknowledged one; at most one unacknowledged more.
    let counters = db.collection::<Value>("counters");
    for (counter, acked) in &acks.counters {
        let doc = counters.find_one(json!({"_id": counter})).unwrap().unwrap();
        let n = doc["n"].as_u64().unwrap();
        assert!(
            n >= *acked && n <= acked + 1,
            "{mode}: counter {counter} is {n}, {acked} increments acknowledged"
        );
    }
    // Expiring documents expire `expire_after` from their acknowledgement, replayed
    // from the buffer log or not: between the child's start and the time it printed.
    db.flush().unwrap();
    // (The table is created with the collection's first document.)
    let expiries: HashMap<String, i64> = if acks.sessions.is_empty() {
        HashMap::new()
    } else {
        db.sql("SELECT id, expires_at FROM \"c_sessions\"", &[])
            .unwrap_or_else(|e| panic!("{mode}: reading the expiries: {e}"))
            .into_iter()
            .map(|r| {
                let id: String = serde_json::from_str(r["id"].as_str().unwrap()).unwrap();
                (id, r["expires_at"].as_i64().unwrap())
            })
            .collect()
    };
    for (id, acked_at) in &acks.sessions {
        let at = expiries.get(id).copied();
        assert!(at.is_some(), "{mode}: acknowledged session {id} is missing");
        let at = at.unwrap_or_default() - SESSION_TTL_MS;
        assert!(
            (acks.started..=*acked_at).contains(&at),
            "{mode}: session {id} expires {} ms after its acknowledgement",
            at - acked_at
        );
    }
    drop(items);
    drop(counters);
    drop(db);
    let conn = rusqlite::Connection::open(path).unwrap();
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok", "{mode}: integrity_check");
    (acks.ids.len() + acks.batches.len() * BATCH, present.len())
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let iterations: usize = std::env::var("POCKETDB_CRASH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let mut rng = rand::rng();
    let dir = tempfile::tempdir().unwrap();
    for mode in MODES {
        let path = dir.path().join(format!("{mode}.sqlite"));
        let runs = iterations.div_ceil(MODES.len()).max(2);
        let mut acked_total = 0;
        for run in 0..runs {
            let acks = run_child(mode, run, &path, &mut rng);
            let reopen = if mode.starts_with("buffered") && run % 2 == 1 {
                "sync"
            } else {
                mode
            };
            let (acked, present) = check(mode, reopen, &path, &acks);
            acked_total += acked;
            assert!(present > 0 || acked == 0);
        }
        eprintln!("{mode}: {runs} kills, {acked_total} acknowledged writes checked");
    }
}
