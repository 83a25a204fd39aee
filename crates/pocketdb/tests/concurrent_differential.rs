//! Threads writing concurrently, each to its own documents, in every write mode and
//! layout: each thread's operations must report what they report when the thread runs
//! alone on a `Sync` collection, and the collection must end up holding the union of
//! those runs. Group commit combines the threads' writes into shared transactions,
//! buffered mode acknowledges them from the log while the applier moves earlier ones to
//! SQLite, and sharded collections write their members in parallel: none of that may
//! leak between threads or lose a write.

use pocketdb::{
    BufferOptions, Client, Collection, Database, Durability, FindOneAndModifyOptions, Options,
    ReturnDocument, ShardOptions, ShardedCollection, UpdateOptions,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::time::Duration;

const THREADS: u64 = 4;
/// Ids per thread: thread `t` owns `t * IDS .. (t + 1) * IDS`.
const IDS: u64 = 12;
const OPS: usize = 120;

#[derive(Debug, Clone)]
enum Op {
    Insert(u64, u8),
    InsertMany(Vec<(u64, u8)>, bool),
    Update(u64, u8, bool),
    Replace(u64, u8, bool),
    Delete(u64),
    FindOneAndUpdate(u64, u8, bool),
    Get(u64),
}

fn doc(id: u64, v: u8) -> Value {
    json!({"_id": id, "v": v, "tags": [format!("t{}", v % 3)], "owner": id / IDS})
}

fn ops_for(thread: u64, seed: u64) -> Vec<Op> {
    let mut rng = StdRng::seed_from_u64(seed * 1000 + thread);
    let base = thread * IDS;
    (0..OPS)
        .map(|_| {
            let id = base + rng.random_range(0..IDS);
            let v: u8 = rng.random();
            match rng.random_range(0..7) {
                0 => Op::Insert(id, v),
                1 => {
                    let n = rng.random_range(1..5);
                    let docs = (0..n)
                        .map(|_| (base + rng.random_range(0..IDS), rng.random()))
                        .collect();
                    Op::InsertMany(docs, rng.random())
                }
                2 => Op::Update(id, v, rng.random()),
                3 => Op::Replace(id, v, rng.random()),
                4 => Op::Delete(id),
                5 => Op::FindOneAndUpdate(id, v, rng.random()),
                _ => Op::Get(id),
            }
        })
        .collect()
}

#[derive(Clone)]
enum Target {
    Plain(Collection),
    Sharded(ShardedCollection),
}

macro_rules! on_target {
    ($t:expr, $c:ident => $body:expr) => {
        match $t {
            Target::Plain($c) => $body,
            Target::Sharded($c) => $body,
        }
    };
}

fn outcome<T: std::fmt::Debug>(r: pocketdb::Result<T>) -> String {
    match r {
        Ok(v) => format!("ok {v:?}"),
        Err(pocketdb::Error::BulkWrite(f)) => format!(
            "bulk {:?} {:?}",
            f.inserted_ids,
            f.write_errors.iter().map(|w| w.index).collect::<Vec<_>>()
        ),
        Err(e) => format!("{e:?}")
            .split(['(', ' ', '{'])
            .next()
            .unwrap_or_default()
            .to_string(),
    }
}

fn run(t: &Target, op: &Op) -> String {
    let upsert = |u: bool| UpdateOptions {
        upsert: u,
        array_filters: None,
    };
    match op {
        Op::Insert(id, v) => outcome(on_target!(t, c => c.insert_one(doc(*id, *v)))),
        Op::InsertMany(docs, ordered) => {
            let docs: Vec<Value> = docs.iter().map(|(i, v)| doc(*i, *v)).collect();
            let o = pocketdb::InsertManyOptions { ordered: *ordered };
            outcome(on_target!(t, c => c.insert_many_with(docs, o)))
        }
        Op::Update(id, v, u) => {
            let update = json!({"$inc": {"v": 1}, "$push": {"tags": format!("u{v}")},
                                "$setOnInsert": {"owner": id / IDS}});
            outcome(on_target!(t, c => c.update_one_with(json!({"_id": id}), update, &upsert(*u))))
        }
        Op::Replace(id, v, u) => {
            let mut d = doc(*id, *v);
            if let Some(m) = d.as_object_mut() {
                m.shift_remove("_id");
            }
            outcome(on_target!(t, c => c.replace_one_with(json!({"_id": id}), d, *u)))
        }
        Op::Delete(id) => outcome(on_target!(t, c => c.delete_one(json!({"_id": id})))),
        Op::FindOneAndUpdate(id, v, after) => {
            let o = FindOneAndModifyOptions {
                return_document: if *after {
                    ReturnDocument::After
                } else {
                    ReturnDocument::Before
                },
                ..Default::default()
            };
            let update = json!({"$set": {"v": v}});
            outcome(on_target!(t, c => c.find_one_and_update(json!({"_id": id}), update, &o)))
        }
        Op::Get(id) => outcome(on_target!(t, c => c.find_one(json!({"_id": id})))),
    }
}

fn contents(t: &Target) -> Vec<Value> {
    on_target!(t, c => c
        .find(json!({}))
        .and_then(|cur| cur.sort(json!({"_id": 1})).to_vec()))
    .unwrap()
}

fn buffered() -> Durability {
    Durability::Buffered(
        BufferOptions::default()
            .batch_size(5)
            .flush_interval(Duration::from_millis(1)),
    )
}

#[test]
fn concurrent_writers_to_their_own_documents_agree_with_running_alone() {
    // More rounds on demand: POCKETDB_CONCURRENT_SEEDS=100.
    let seeds: u64 = std::env::var("POCKETDB_CONCURRENT_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    for seed in 0..seeds {
        let dir = tempfile::tempdir().unwrap();
        let plan: Vec<Vec<Op>> = (0..THREADS).map(|t| ops_for(t, seed)).collect();
        // Each thread alone, on a collection of its own.
        let mut want_outcomes = Vec::new();
        let mut want_contents = Vec::new();
        for (t, ops) in plan.iter().enumerate() {
            let db = Database::memory().unwrap();
            let alone = Target::Plain(db.collection(&format!("alone{t}")));
            want_outcomes.push(ops.iter().map(|op| run(&alone, op)).collect::<Vec<_>>());
            want_contents.extend(contents(&alone));
        }
        want_contents.sort_by_key(|d| d["_id"].as_u64());

        let open = |name: &str, durability: Durability| {
            Database::open_with(
                dir.path().join(format!("{name}.sqlite")),
                Options::default().durability(durability),
            )
            .unwrap()
        };
        let sync = open("sync", Durability::Sync);
        let group = open("group", Durability::GroupCommit);
        let buffered_db = open("buffered", buffered());
        let client = Client::open(dir.path().join("cluster")).unwrap();
        let buffered_client = Client::open_with(
            dir.path().join("buffered-cluster"),
            Options::default().durability(buffered()),
        )
        .unwrap();
        let targets = [
            ("sync", Target::Plain(sync.collection("items"))),
            ("group commit", Target::Plain(group.collection("items"))),
            ("buffered", Target::Plain(buffered_db.collection("items"))),
            (
                "sharded",
                Target::Sharded(
                    client
                        .create_sharded_collection("app", "items", ShardOptions::new(3))
                        .unwrap(),
                ),
            ),
            (
                "buffered, sharded",
                Target::Sharded(
                    buffered_client
                        .create_sharded_collection("app", "items", ShardOptions::new(2))
                        .unwrap(),
                ),
            ),
        ];
        for (name, target) in &targets {
            let got: Vec<Vec<String>> = std::thread::scope(|s| {
                let handles: Vec<_> = plan
                    .iter()
                    .map(|ops| s.spawn(move || ops.iter().map(|op| run(target, op)).collect()))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_default())
                    .collect()
            });
            for (t, (got, want)) in got.iter().zip(&want_outcomes).enumerate() {
                for (i, (g, w)) in got.iter().zip(want).enumerate() {
                    assert_eq!(
                        g, w,
                        "seed {seed}, {name}, thread {t}, op {i} {:?}",
                        plan[t][i]
                    );
                }
                assert_eq!(got.len(), want.len(), "{name} thread {t}");
            }
            assert_eq!(contents(target), want_contents, "seed {seed}: {name}");
        }
        // Everything applied and reopened: the same documents.
        drop(targets);
        drop((sync, group, buffered_db, client, buffered_client));
        let buffered_db = open("buffered", buffered());
        assert_eq!(
            contents(&Target::Plain(buffered_db.collection("items"))),
            want_contents,
            "seed {seed}: buffered, reopened"
        );
    }
}
