//! Group commit: many threads writing through shared transactions.

use pocketdb::{Database, Durability, Error, Options};
use serde_json::{json, Value};
use std::sync::Arc;

fn open(dir: &tempfile::TempDir) -> Database {
    Database::open_with(
        dir.path().join("gc.sqlite"),
        Options::default().durability(Durability::GroupCommit),
    )
    .unwrap()
}

#[test]
fn concurrent_inserts_are_all_committed_in_log_order() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir);
    let threads = 16;
    let per = 200;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let coll = db.collection::<Value>("items");
            std::thread::spawn(move || {
                for i in 0..per {
                    coll.insert_one(json!({"_id": format!("{t}-{i}"), "t": t, "i": i}))
                        .unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let coll = db.collection::<Value>("items");
    assert_eq!(coll.count_documents(json!({})).unwrap(), threads * per);
    let changes = db.changes_since(0, 100_000).unwrap();
    assert_eq!(changes.len() as u64, threads * per);
    // Per thread, the change log keeps each writer's own order.
    for t in 0..threads {
        let mine: Vec<i64> = changes
            .iter()
            .filter_map(|c| c.id.as_str().map(str::to_string))
            .filter(|id| id.starts_with(&format!("{t}-")))
            .map(|id| id.split('-').nth(1).unwrap().parse().unwrap())
            .collect();
        assert_eq!(mine, (0..per as i64).collect::<Vec<_>>());
    }
    // The file is reopened with everything in it.
    drop(coll);
    drop(db);
    let db = open(&dir);
    assert_eq!(
        db.collection::<Value>("items")
            .count_documents(json!({}))
            .unwrap(),
        threads * per
    );
}

#[test]
fn a_failing_write_in_a_batch_changes_nothing_and_spares_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir);
    let coll = db.collection::<Value>("items");
    coll.insert_one(json!({"_id": "taken"})).unwrap();
    let db = Arc::new(db);
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let coll = db.collection::<Value>("items");
            std::thread::spawn(move || {
                let mut dups = 0;
                for i in 0..100 {
                    // Every third write fails on the duplicate _id.
                    let doc = if i % 3 == 0 {
                        json!({"_id": "taken", "t": t})
                    } else {
                        json!({"_id": format!("{t}-{i}")})
                    };
                    match coll.insert_one(doc) {
                        Ok(_) => {}
                        Err(Error::DuplicateKey { .. }) => dups += 1,
                        Err(e) => panic!("{e}"),
                    }
                    // Updates that fail mid-way leave the document as it was.
                    let r = coll.update_one(json!({"_id": "taken"}), json!({"$inc": {"n": "x"}}));
                    assert!(r.is_err());
                }
                dups
            })
        })
        .collect();
    let dups: i32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(dups, 8 * 34);
    assert_eq!(coll.count_documents(json!({})).unwrap(), 1 + 8 * 66);
    assert_eq!(
        coll.find_one(json!({"_id": "taken"})).unwrap().unwrap(),
        json!({"_id": "taken"})
    );
}

#[test]
fn batches_interleave_with_reads_on_file_and_memory_databases() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir);
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let coll = db.collection::<Value>("items");
            std::thread::spawn(move || {
                for i in 0..50 {
                    coll.insert_one(json!({"_id": format!("{t}-{i}")})).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    // A memory database reads through the writer: an open batch is committed first.
    let mem =
        Database::memory_with(Options::default().durability(Durability::GroupCommit)).unwrap();
    let c = mem.collection::<Value>("x");
    c.insert_one(json!({"a": 1})).unwrap();
    assert_eq!(c.count_documents(json!({})).unwrap(), 1);
    assert_eq!(
        db.collection::<Value>("items")
            .count_documents(json!({}))
            .unwrap(),
        200
    );
}

#[test]
fn commit_counters_count_transactions_and_the_writes_in_them() {
    let dir = tempfile::tempdir().unwrap();
    // One transaction per write without group commit, whatever the write does.
    let db = Database::open(dir.path().join("sync.sqlite")).unwrap();
    let coll = db.collection::<Value>("items");
    coll.insert_one(json!({"_id": 0})).unwrap();
    let before = db.stats().unwrap().commits;
    for i in 1..=5 {
        coll.insert_one(json!({"_id": i})).unwrap();
    }
    coll.insert_many((6..16).map(|i| json!({"_id": i})).collect::<Vec<_>>())
        .unwrap();
    let after = db.stats().unwrap().commits;
    assert_eq!(after.transactions - before.transactions, 6);
    assert_eq!(after.writes - before.writes, 6);

    // With group commit every write is counted once, in the transaction it shared.
    let db = open(&dir);
    db.collection::<Value>("items")
        .insert_one(json!({"_id": "first"}))
        .unwrap();
    let before = db.stats().unwrap().commits;
    let threads = 8u64;
    let per = 100u64;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let coll = db.collection::<Value>("items");
            std::thread::spawn(move || {
                for i in 0..per {
                    coll.insert_one(json!({"_id": t * per + i})).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let after = db.stats().unwrap().commits;
    let writes = after.writes - before.writes;
    let transactions = after.transactions - before.transactions;
    assert_eq!(writes, threads * per);
    assert!(
        transactions >= 1 && transactions <= writes,
        "{transactions}"
    );
}
