//! Buffered durability: read-your-writes, single-document writes, synchronous fallbacks,
//! recovery from the log, events and back-pressure.

use pocketdb::{
    BufferEvent, BufferOptions, CollectionOptions, Database, Durability, Error, FsyncPolicy,
    Options, UpdateOptions,
};
use serde_json::{json, Value};
use std::time::Duration;

mod common;
use common::field_by_id;

/// A buffered database whose applier waits long enough that reads hit the buffer.
fn open_slow(dir: &tempfile::TempDir) -> Database {
    open_with(
        dir,
        BufferOptions::default().flush_interval(Duration::from_secs(3600)),
    )
}

fn open_with(dir: &tempfile::TempDir, b: BufferOptions) -> Database {
    Database::open_with(
        dir.path().join("buf.sqlite"),
        Options::default().durability(Durability::Buffered(b)),
    )
    .unwrap()
}

#[test]
fn reads_see_buffered_writes_merged_with_stored_ones() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_slow(&dir);
    let c = db.collection::<Value>("users");
    c.insert_many([
        json!({"_id": 1, "name": "Ada", "age": 36}),
        json!({"_id": 2, "name": "Linus", "age": 28}),
    ])
    .unwrap();
    db.flush().unwrap();
    assert_eq!(db.buffer_stats().unwrap().buffered, 0);
    // Now buffered, not applied: an insert, an update of a stored doc, a delete.
    c.insert_one(json!({"_id": 3, "name": "Grace", "age": 45}))
        .unwrap();
    c.update_one(json!({"_id": 1}), json!({"$inc": {"age": 1}}))
        .unwrap();
    assert_eq!(c.delete_one(json!({"_id": 2})).unwrap().deleted_count, 1);
    assert_eq!(c.delete_one(json!({"_id": 2})).unwrap().deleted_count, 0);
    assert_eq!(db.buffer_stats().unwrap().buffered, 3);

    let check = |c: &pocketdb::Collection<Value>| {
        assert_eq!(c.find_one(json!({"_id": 1})).unwrap().unwrap()["age"], 37);
        assert!(c.find_one(json!({"_id": 2})).unwrap().is_none());
        assert_eq!(
            c.find_one(json!({"_id": 3})).unwrap().unwrap()["name"],
            "Grace"
        );
        let all = c
            .find(json!({}))
            .unwrap()
            .sort(json!({"age": -1}))
            .to_vec()
            .unwrap();
        let names: Vec<&str> = all.iter().map(|d| d["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["Grace", "Ada"]);
        assert_eq!(c.count_documents(json!({"age": {"$gt": 30}})).unwrap(), 2);
        assert_eq!(c.count_documents(json!({"name": "Linus"})).unwrap(), 0);
        assert_eq!(c.estimated_count().unwrap(), 2);
        assert_eq!(
            c.distinct("age", json!({})).unwrap(),
            vec![json!(37), json!(45)]
        );
        assert_eq!(
            c.find(json!({})).unwrap().limit(1).to_vec().unwrap().len(),
            1
        );
        assert_eq!(
            c.find(json!({"_id": {"$in": [1, 2, 3]}})).unwrap().count(),
            2
        );
    };
    check(&c);
    let stats = db.buffer_stats().unwrap();
    assert!(stats.cache_hits >= 3, "{stats:?}");
    assert!(stats.log_bytes > 0);
    db.flush().unwrap();
    let stats = db.buffer_stats().unwrap();
    assert_eq!(stats.buffered, 0);
    assert_eq!(stats.log_bytes, 0);
    check(&c);
    // The change log has every write, in order.
    let ops: Vec<String> = db
        .changes_since(0, 100)
        .unwrap()
        .iter()
        .map(|c| format!("{}:{}", c.op.as_str(), c.id))
        .collect();
    assert_eq!(
        ops,
        ["insert:1", "insert:2", "insert:3", "update:1", "delete:2"]
    );
}

/// While writes are pending, reads merge the buffer lazily: unsorted finds page through
/// the stored rows, sorts keep to the cursor's memory limit (spilling, or failing
/// without disk use), and skip/limit apply to the merged order.
#[test]
fn merged_reads_keep_to_the_sort_memory_limit() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_slow(&dir);
    let c = db.collection::<Value>("events");
    let doc = |i: i64| json!({"_id": i, "k": (i * 7919) % 1000, "pad": "x".repeat(60)});
    c.insert_many((0..1500).map(doc)).unwrap();
    db.flush().unwrap();
    // Pending: new documents, updates of stored ones (shadowing them) and deletes.
    c.insert_many((1500..2000).map(doc)).unwrap();
    // (Single-document writes are buffered; `update_many` would flush first.)
    for i in 0..30 {
        c.update_one(json!({"_id": i}), json!({"$set": {"k": -1}}))
            .unwrap();
    }
    for i in 1400..1410 {
        assert_eq!(c.delete_one(json!({"_id": i})).unwrap().deleted_count, 1);
    }
    assert_eq!(db.buffer_stats().unwrap().buffered, 540);
    let ids = |cursor: pocketdb::Cursor<Value>| -> Vec<i64> {
        cursor
            .map(|d| d.unwrap()["_id"].as_i64().unwrap())
            .collect()
    };
    let expected_sorted = |skip: usize, limit: usize| -> Vec<i64> {
        let mut all: Vec<(i64, i64)> = (0..2000i64)
            .filter(|i| !(1400..1410).contains(i))
            .map(|i| (if i < 30 { -1 } else { (i * 7919) % 1000 }, i))
            .collect();
        // Ties keep the merged order: stored rows first (by `_id` here), then
        // buffered inserts in write order; shadowed rows come with the buffer.
        all.sort_by_key(|&(k, i)| (k, if (30..1500).contains(&i) { 0 } else { 1 }, i));
        all.into_iter()
            .map(|(_, i)| i)
            .skip(skip)
            .take(limit)
            .collect()
    };
    let sorted = |memory: usize| {
        c.find(json!({}))
            .unwrap()
            .sort(json!({"k": 1}))
            .max_sort_memory(memory)
    };
    let want = expected_sorted(0, usize::MAX);
    assert_eq!(want.len(), 1990);
    assert_eq!(ids(sorted(usize::MAX)), want);
    assert_eq!(ids(sorted(20_000)), want, "spilled");
    assert_eq!(
        ids(sorted(20_000).skip(10).limit(25)),
        expected_sorted(10, 25)
    );
    let mut failing = sorted(20_000).allow_disk_use(false);
    match failing.next() {
        Some(Err(Error::MemoryLimitExceeded { limit, .. })) => assert_eq!(limit, 20_000),
        other => panic!("expected MemoryLimitExceeded, got {other:?}"),
    }
    // Unsorted: every document once, skip and limit over the merged stream.
    let mut all = ids(c.find(json!({})).unwrap());
    assert_eq!(all.len(), 1990);
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 1990);
    assert_eq!(
        ids(c.find(json!({})).unwrap().skip(1980).limit(20)).len(),
        10
    );
    // Counts: stored rows in SQL less the shadowed ones, plus the buffered documents.
    assert_eq!(c.count_documents(json!({"k": -1})).unwrap(), 30);
    assert_eq!(c.count_documents(json!({"k": {"$gte": 0}})).unwrap(), 1960);
    assert_eq!(
        c.count_documents(json!({"_id": {"$gte": 1400, "$lt": 1410}}))
            .unwrap(),
        0
    );
    assert_eq!(
        c.count_documents(json!({"_id": {"$gte": 1495, "$lt": 1505}}))
            .unwrap(),
        10
    );
    assert_eq!(c.find(json!({"k": {"$lt": 0}})).unwrap().count(), 30);
    // A numeric path segment compiles inexactly: counted row by row.
    assert_eq!(
        c.count_documents(json!({"k.0": {"$exists": false}}))
            .unwrap(),
        1990
    );
    assert_eq!(c.estimated_count().unwrap(), 1990);
    assert_eq!(
        db.buffer_stats().unwrap().buffered,
        540,
        "reads flushed nothing"
    );
}

#[test]
fn duplicate_ids_are_refused_before_acknowledgement() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_slow(&dir);
    let c = db.collection::<Value>("items");
    c.insert_one(json!({"_id": "a"})).unwrap();
    // In the buffer.
    assert!(matches!(
        c.insert_one(json!({"_id": "a"})),
        Err(Error::DuplicateKey { .. })
    ));
    db.flush().unwrap();
    // In the store.
    assert!(matches!(
        c.insert_one(json!({"_id": "a"})),
        Err(Error::DuplicateKey { .. })
    ));
    // Deleted in the buffer: the id is free again.
    c.delete_one(json!({"_id": "a"})).unwrap();
    c.insert_one(json!({"_id": "a", "v": 2})).unwrap();
    // insert_many: ordered stops at the duplicate, unordered goes on.
    let err = c
        .insert_many([
            json!({"_id": "b"}),
            json!({"_id": "a"}),
            json!({"_id": "c"}),
        ])
        .unwrap_err();
    let Error::BulkWrite(f) = err else { panic!() };
    assert_eq!(f.inserted_ids.len(), 1);
    assert_eq!(f.write_errors[0].index, 1);
    let err = c
        .insert_many_with(
            [
                json!({"_id": "d"}),
                json!({"_id": "a"}),
                json!({"_id": "d"}),
                json!({"_id": "e"}),
            ],
            pocketdb::InsertManyOptions { ordered: false },
        )
        .unwrap_err();
    let Error::BulkWrite(f) = err else { panic!() };
    assert_eq!(f.inserted_ids.len(), 2);
    assert_eq!(f.write_errors.len(), 2);
    db.flush().unwrap();
    assert_eq!(
        field_by_id(&c, "_id"),
        [json!("a"), json!("b"), json!("d"), json!("e")]
    );
    assert_eq!(c.find_one(json!({"_id": "a"})).unwrap().unwrap()["v"], 2);
}

#[test]
fn upserts_by_id_collide_with_a_document_the_filter_rejects() {
    // `{_id: 1, age: {$gt: 50}}` matches nothing while `_id: 1` exists: the upsert would
    // insert a second `_id: 1`, which is a duplicate key (as in Sync mode and MongoDB),
    // not a replacement of the existing document.
    let dir = tempfile::tempdir().unwrap();
    let db = open_slow(&dir);
    let c = db.collection::<Value>("users");
    c.insert_one(json!({"_id": 1, "age": 36})).unwrap();
    db.flush().unwrap();
    c.insert_one(json!({"_id": 2, "age": 28})).unwrap();
    for id in [1, 2] {
        let err = c
            .update_one_with(
                json!({"_id": id, "age": {"$gt": 50}}),
                json!({"$set": {"age": 99}}),
                &UpdateOptions::upsert(),
            )
            .unwrap_err();
        assert!(matches!(err, Error::DuplicateKey { .. }), "{err}");
        let err = c
            .replace_one_with(
                json!({"_id": id, "age": {"$gt": 50}}),
                json!({"age": 7}),
                true,
            )
            .unwrap_err();
        assert!(matches!(err, Error::DuplicateKey { .. }), "{err}");
        // Without upsert it is a no-op.
        let r = c
            .update_one(
                json!({"_id": id, "age": {"$gt": 50}}),
                json!({"$set": {"age": 99}}),
            )
            .unwrap();
        assert_eq!((r.matched_count, r.modified_count), (0, 0));
    }
    db.flush().unwrap();
    assert_eq!(field_by_id(&c, "age"), [json!(36), json!(28)]);
}

#[test]
fn aggregations_see_writes_not_yet_applied() {
    // A `$group` that compiles to SQL reads the store: with writes pending it must
    // run over the merged documents instead.
    let dir = tempfile::tempdir().unwrap();
    let db = open_slow(&dir);
    let c = db.collection::<Value>("sales");
    c.insert_many((0..6).map(|i| json!({"_id": i, "k": i % 2, "n": i})))
        .unwrap();
    db.flush().unwrap();
    c.insert_one(json!({"_id": 10, "k": 1, "n": 100})).unwrap();
    c.update_one(json!({"_id": 0}), json!({"$set": {"n": 50}}))
        .unwrap();
    c.delete_one(json!({"_id": 5})).unwrap();
    assert!(db.buffer_stats().unwrap().buffered > 0);
    let pipeline = json!([
        {"$match": {"n": {"$gte": 0}}},
        {"$group": {"_id": "$k", "count": {"$sum": 1}, "total": {"$sum": "$n"}}},
        {"$sort": {"_id": 1}},
    ]);
    let want = json!([
        {"_id": 0, "count": 3, "total": 56},
        {"_id": 1, "count": 3, "total": 104},
    ]);
    assert_eq!(
        Value::Array(c.aggregate(pipeline.clone()).unwrap().to_vec().unwrap()),
        want
    );
    db.flush().unwrap();
    assert_eq!(
        Value::Array(c.aggregate(pipeline).unwrap().to_vec().unwrap()),
        want
    );
}

#[test]
fn concurrent_increments_of_one_document_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_with(
        &dir,
        BufferOptions::default()
            .flush_interval(Duration::from_millis(1))
            .batch_size(7),
    );
    let c = db.collection::<Value>("counters");
    c.insert_one(json!({"_id": "n", "v": 0})).unwrap();
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let c = c.clone();
            std::thread::spawn(move || {
                for _ in 0..200 {
                    c.update_one(json!({"_id": "n"}), json!({"$inc": {"v": 1}}))
                        .unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(c.find_one(json!({"_id": "n"})).unwrap().unwrap()["v"], 1600);
    db.flush().unwrap();
    assert_eq!(c.find_one(json!({"_id": "n"})).unwrap().unwrap()["v"], 1600);
}

#[test]
fn other_writes_flush_first_and_see_everything() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_slow(&dir);
    let c = db.collection::<Value>("items");
    for i in 0..100 {
        c.insert_one(json!({"_id": i, "even": i % 2 == 0})).unwrap();
    }
    let r = c
        .update_many(json!({"even": true}), json!({"$set": {"tag": "x"}}))
        .unwrap();
    assert_eq!(r.modified_count, 50);
    assert_eq!(db.buffer_stats().unwrap().buffered, 0);
    // update_one with a non-_id filter runs synchronously too.
    c.insert_one(json!({"_id": 1000, "even": true})).unwrap();
    c.update_one(
        json!({"_id": 1000, "even": true}),
        json!({"$set": {"tag": "y"}}),
    )
    .unwrap();
    let r = c
        .update_one(
            json!({"even": true, "tag": {"$exists": false}}),
            json!({"$set": {"tag": "z"}}),
        )
        .unwrap();
    assert_eq!(r.modified_count, 0);
    assert_eq!(
        c.delete_many(json!({"even": false})).unwrap().deleted_count,
        50
    );
    assert_eq!(c.count_documents(json!({})).unwrap(), 51);
    // Upserts by _id are buffered.
    let r = c
        .update_one_with(
            json!({"_id": 5000}),
            json!({"$set": {"a": 1}}),
            &UpdateOptions {
                upsert: true,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(r.upserted_id, Some(json!(5000)));
    assert_eq!(
        c.replace_one(json!({"_id": 5000}), json!({"b": 2}))
            .unwrap()
            .modified_count,
        1
    );
    assert_eq!(
        c.find_one(json!({"_id": 5000})).unwrap().unwrap(),
        json!({"_id": 5000, "b": 2})
    );
    // A bad update is refused before it is buffered.
    assert!(c
        .update_one(json!({"_id": 5000}), json!({"$set": {"_id": 1}}))
        .is_err());
    assert!(c
        .update_one(json!({"_id": 5000}), json!({"$inc": {"b": "x"}}))
        .is_err());
    db.flush().unwrap();
    assert_eq!(
        c.find_one(json!({"_id": 5000})).unwrap().unwrap(),
        json!({"_id": 5000, "b": 2})
    );
    // Dropping a collection waits for its buffered writes.
    c.insert_one(json!({"_id": "late"})).unwrap();
    assert!(c.drop().unwrap());
    assert_eq!(c.count_documents(json!({})).unwrap(), 0);
}

#[test]
fn unapplied_writes_are_replayed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = open_slow(&dir);
        let c = db.collection::<Value>("items");
        for i in 0..500 {
            c.insert_one(json!({"_id": i})).unwrap();
        }
        c.update_one(json!({"_id": 7}), json!({"$set": {"x": 1}}))
            .unwrap();
        c.delete_one(json!({"_id": 8})).unwrap();
        assert_eq!(db.buffer_stats().unwrap().buffered, 502);
        // Dropped without a flush: the writes stay in the log only.
    }
    let db = open_slow(&dir);
    let stats = db.buffer_stats().unwrap();
    assert_eq!(stats.recovered, 502);
    assert_eq!(stats.buffered, 0);
    let c = db.collection::<Value>("items");
    assert_eq!(c.count_documents(json!({})).unwrap(), 499);
    assert_eq!(c.find_one(json!({"_id": 7})).unwrap().unwrap()["x"], 1);
    // Closed (the collection handle holds the database too) before the file is opened
    // again: one buffered handle at a time.
    drop(c);
    drop(db);
    // Nothing to replay twice.
    let db = open_slow(&dir);
    assert_eq!(db.buffer_stats().unwrap().recovered, 0);
    assert_eq!(db.changes_since(0, 10_000).unwrap().len(), 502);
}

#[test]
fn a_log_left_unapplied_is_replayed_by_any_open_and_one_handle_buffers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("buf.sqlite");
    let log = dir.path().join("buf.sqlite.buffer-log");
    {
        let db = open_slow(&dir);
        let c = db.collection::<Value>("items");
        c.insert_many((0..10).map(|i| json!({"_id": i}))).unwrap();
        c.update_one(json!({"_id": 3}), json!({"$set": {"x": 1}}))
            .unwrap();
        // A second buffered handle on the file is refused while this one lives; a
        // handle that does not buffer opens it and leaves its log alone.
        let err = Database::open_with(
            &path,
            Options::default().durability(Durability::Buffered(BufferOptions::default())),
        )
        .unwrap_err();
        assert!(matches!(err, Error::Buffer(_)), "{err}");
        let plain = Database::open(&path).unwrap();
        assert_eq!(
            plain
                .collection::<Value>("items")
                .count_documents(json!({}))
                .unwrap(),
            0
        );
        assert!(log.exists());
        drop(plain);
        assert_eq!(db.buffer_stats().unwrap().buffered, 11);
        // Dropped without a flush: acknowledged writes only in the log, as after a
        // crash.
    }
    // Opened without buffering (the CLI, another program): the log is applied first,
    // then removed.
    let db = Database::open(&path).unwrap();
    let c = db.collection::<Value>("items");
    assert_eq!(c.count_documents(json!({})).unwrap(), 10);
    assert_eq!(c.find_one(json!({"_id": 3})).unwrap().unwrap()["x"], 1);
    assert!(!log.exists());
    c.update_one(json!({"_id": 3}), json!({"$set": {"x": 2}}))
        .unwrap();
    drop(c);
    drop(db);
    // A later buffered open has nothing to replay: the newer write stays.
    let db = open_slow(&dir);
    assert_eq!(db.buffer_stats().unwrap().recovered, 0);
    let c = db.collection::<Value>("items");
    assert_eq!(c.find_one(json!({"_id": 3})).unwrap().unwrap()["x"], 2);
}

#[test]
fn events_and_back_pressure() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_with(
        &dir,
        BufferOptions::default()
            .max_buffered(50)
            .batch_size(20)
            .fsync(FsyncPolicy::Never)
            .flush_interval(Duration::from_millis(5)),
    );
    let events = db.buffer_events(10_000).unwrap();
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = seen.clone();
    db.on_buffer_event(move |e| {
        if let BufferEvent::Flush { count, .. } = e {
            counter.fetch_add(*count, std::sync::atomic::Ordering::SeqCst);
        }
    })
    .unwrap();
    let c = db.collection::<Value>("items");
    for i in 0..1000 {
        c.insert_one(json!({"_id": i})).unwrap();
        assert!(db.buffer_stats().unwrap().buffered <= 50);
    }
    db.flush().unwrap();
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 1000);
    let flushed: u64 = events
        .try_iter()
        .map(|e| match e {
            BufferEvent::Flush { count, .. } => count,
            BufferEvent::Error { message } => panic!("{message}"),
        })
        .sum();
    assert_eq!(flushed, 1000);
    let stats = db.buffer_stats().unwrap();
    assert_eq!(stats.applied, 1000);
    assert!(stats.batches >= 50, "{stats:?}");
}

#[test]
fn buffered_mode_needs_a_file_and_other_modes_have_no_buffer() {
    let err = Database::memory_with(
        Options::default().durability(Durability::Buffered(BufferOptions::default())),
    )
    .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)));
    let db = Database::memory().unwrap();
    assert!(db.buffer_stats().is_none());
    assert!(db.buffer_events(1).is_err());
    db.flush().unwrap();
}

#[test]
fn the_applier_wakes_for_small_batches_without_a_flush() {
    // Writes below `batch_size` reach SQLite within `flush_interval` on their own: the
    // applier used to sleep forever once it had found the queue empty.
    let dir = tempfile::tempdir().unwrap();
    let db = open_with(&dir, BufferOptions::default());
    for round in 0..3 {
        std::thread::scope(|s| {
            for t in 0..4 {
                let c = db.collection::<Value>("c");
                s.spawn(move || {
                    for i in 0..25 {
                        c.insert_one(json!({"round": round, "t": t, "i": i}))
                            .unwrap();
                    }
                });
            }
        });
        let want = (round + 1) * 100;
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while db.changes_since(0, 10_000).unwrap().len() < want {
            assert!(
                std::time::Instant::now() < deadline,
                "round {round}: buffered writes were not applied"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[test]
fn batched_duplicate_checks_cover_the_buffer_and_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_slow(&dir);
    let c = db.collection::<Value>("items");
    // More stored ids than one `IN` query of the check holds.
    c.insert_many((0..1500).map(|i| json!({"_id": i}))).unwrap();
    db.flush().unwrap();
    // Buffered on top: a delete of a stored id (free again) and an insert.
    c.delete_one(json!({"_id": 10})).unwrap();
    c.insert_one(json!({"_id": 2000})).unwrap();
    let mut docs = vec![
        json!({"_id": 10, "v": "again"}),
        json!({"_id": 1499.0}),
        json!({"_id": 1700}),
        json!({"_id": 2000}),
        json!({"_id": 1700}),
        json!({"_id": 5}),
        json!({"v": "generated id"}),
    ];
    docs.extend((4000..5200).map(|i| json!({"_id": i})));
    let err = c
        .insert_many_with(&docs, pocketdb::InsertManyOptions { ordered: false })
        .unwrap_err();
    let Error::BulkWrite(f) = err else { panic!() };
    let failed: Vec<usize> = f.write_errors.iter().map(|e| e.index).collect();
    assert_eq!(failed, [1, 3, 4, 5]);
    assert!(f
        .write_errors
        .iter()
        .all(|e| matches!(e.error, Error::DuplicateKey { .. })));
    assert_eq!(f.inserted_ids.len(), docs.len() - 4);
    // Ordered: stops at the first duplicate, found in the store past the first 1,000 keys.
    let mut ordered: Vec<Value> = (6000..7100).map(|i| json!({"_id": i})).collect();
    ordered.push(json!({"_id": 1400}));
    ordered.push(json!({"_id": 7200}));
    let err = c.insert_many(&ordered).unwrap_err();
    let Error::BulkWrite(f) = err else { panic!() };
    assert_eq!(f.inserted_ids.len(), 1100);
    assert_eq!(f.write_errors.len(), 1);
    assert_eq!(f.write_errors[0].index, 1100);
    db.flush().unwrap();
    assert_eq!(
        c.find_one(json!({"_id": 10})).unwrap().unwrap()["v"],
        "again"
    );
    assert!(c.find_one(json!({"_id": 7200})).unwrap().is_none());
    // 1,500 − 1 deleted + 1 re-inserted + 2000 + 1700 + generated + 1,200 + 1,100.
    assert_eq!(
        c.count_documents(json!({})).unwrap(),
        1500 + 1 + 1 + 1 + 1200 + 1100
    );
}

#[test]
fn duplicates_are_refused_while_the_applier_moves_writes_to_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_with(
        &dir,
        BufferOptions::default()
            .flush_interval(Duration::from_millis(1))
            .batch_size(37),
    );
    let c = db.collection::<Value>("items");
    let writer = {
        let c = c.clone();
        std::thread::spawn(move || {
            for start in (0..3000).step_by(100) {
                c.insert_many((start..start + 100).map(|i| json!({"_id": i})))
                    .unwrap();
            }
        })
    };
    // Every id is acknowledged; re-inserting them while the applier moves them from the
    // buffer to SQLite must refuse each one, wherever it is at that moment.
    writer.join().unwrap();
    let mut refused = 0;
    for start in (0..3000).step_by(50) {
        let docs: Vec<Value> = (start..start + 50).map(|i| json!({"_id": i})).collect();
        let err = c
            .insert_many_with(&docs, pocketdb::InsertManyOptions { ordered: false })
            .unwrap_err();
        let Error::BulkWrite(f) = err else { panic!() };
        assert!(f.inserted_ids.is_empty(), "a duplicate slipped through");
        refused += f.write_errors.len();
    }
    assert_eq!(refused, 3000);
    db.flush().unwrap();
    assert_eq!(c.count_documents(json!({})).unwrap(), 3000);
    assert_eq!(db.buffer_stats().unwrap().dropped, 0);
}

#[test]
fn duplicate_checks_around_the_largest_stored_id() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_slow(&dir);
    let c = db.collection::<Value>("keys");
    // Keys above the largest stored `_id` skip the lookup; the largest itself, and keys
    // below it, are looked up (one by one when few, with `IN` when many).
    c.insert_many([json!({"_id": "b"}), json!({"_id": "d"}), json!({"_id": 7})])
        .unwrap();
    db.flush().unwrap();
    let few = [
        json!({"_id": "e"}),
        json!({"_id": "d"}),
        json!({"_id": "c"}),
        json!({"_id": 7}),
        json!({"_id": "a"}),
    ];
    let err = c
        .insert_many_with(&few, pocketdb::InsertManyOptions { ordered: false })
        .unwrap_err();
    let Error::BulkWrite(f) = err else { panic!() };
    let failed: Vec<usize> = f.write_errors.iter().map(|e| e.index).collect();
    assert_eq!(failed, [1, 3]);
    db.flush().unwrap();
    let mut many: Vec<Value> = (0..40)
        .map(|i| json!({"_id": format!("c{i:02}")}))
        .collect();
    many.push(json!({"_id": "e"}));
    many.push(json!({"_id": "b"}));
    many.push(json!({"_id": "zz"}));
    let err = c
        .insert_many_with(&many, pocketdb::InsertManyOptions { ordered: false })
        .unwrap_err();
    let Error::BulkWrite(f) = err else { panic!() };
    let failed: Vec<usize> = f.write_errors.iter().map(|e| e.index).collect();
    assert_eq!(failed, [40, 41]);
    db.flush().unwrap();
    assert_eq!(c.count_documents(json!({})).unwrap(), 3 + 3 + 41);
}

/// An expiring collection (`expire_after`) in buffered mode: a buffered document expires
/// `expire_after` from its acknowledgement, reads stop returning it then even while it
/// is still unapplied, and writes treat it as deleted (its `_id` and unique keys are
/// free), as in `Sync` mode, with nothing dropped when the applier catches up.
#[test]
fn buffered_documents_expire_from_their_acknowledgement() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_with(
        dir.path().join("buf.sqlite"),
        Options::default()
            .durability(Durability::Buffered(
                BufferOptions::default().flush_interval(Duration::from_secs(3600)),
            ))
            // No sweep in the background: only reads and writes enforce expiry here.
            .expiry_interval(Duration::from_secs(3600)),
    )
    .unwrap();
    // Long enough that the writes between two checks never take it (a loaded machine).
    let ttl = Duration::from_millis(1000);
    let c = db
        .create_collection("cache", CollectionOptions::default().expire_after(ttl))
        .unwrap();
    c.create_index(
        json!({"email": 1}),
        pocketdb::IndexOptions::default().unique(true),
    )
    .unwrap();
    c.insert_many([
        json!({"_id": "a", "email": "a@x", "v": 1}),
        json!({"_id": "b", "email": "b@x", "v": 1}),
    ])
    .unwrap();
    assert_eq!(db.buffer_stats().unwrap().buffered, 2);
    assert_eq!(c.count_documents(json!({})).unwrap(), 2);
    std::thread::sleep(ttl + Duration::from_millis(100));

    // Still buffered, but expired: gone for every read.
    assert_eq!(db.buffer_stats().unwrap().buffered, 2);
    assert_eq!(c.find_one(json!({"_id": "a"})).unwrap(), None);
    assert_eq!(
        c.find(json!({})).unwrap().to_vec().unwrap(),
        Vec::<Value>::new()
    );
    assert_eq!(c.count_documents(json!({})).unwrap(), 0);
    assert_eq!(c.count_documents(json!({"v": 1})).unwrap(), 0);
    assert_eq!(c.distinct("email", json!({})).unwrap(), Vec::<Value>::new());
    let grouped = c
        .aggregate(json!([{"$group": {"_id": null, "n": {"$sum": 1}}}]))
        .unwrap()
        .to_vec()
        .unwrap();
    assert_eq!(grouped, Vec::<Value>::new());
    // Writes see it deleted: no match, its `_id` and unique key are free.
    let r = c
        .update_one(json!({"_id": "a"}), json!({"$set": {"v": 2}}))
        .unwrap();
    assert_eq!((r.matched_count, r.modified_count), (0, 0));
    assert_eq!(c.delete_one(json!({"_id": "b"})).unwrap().deleted_count, 0);
    c.insert_one(json!({"_id": "a", "email": "a@x", "v": 3}))
        .unwrap();
    c.insert_one(json!({"_id": "c", "email": "b@x", "v": 3}))
        .unwrap();
    let up = c
        .update_one_with(
            json!({"_id": "b"}),
            json!({"$set": {"email": "new-b@x", "v": 3}}),
            &UpdateOptions::upsert(),
        )
        .unwrap();
    assert_eq!(up.upserted_id, Some(json!("b")));
    assert_eq!(c.count_documents(json!({"v": 3})).unwrap(), 3);

    // The applier deletes the expired versions before storing the new ones: nothing is
    // dropped, and the change log records the expiry as deletes.
    let seq = db.changes_since(0, 1000).unwrap().len();
    db.flush().unwrap();
    let stats = db.buffer_stats().unwrap();
    assert_eq!((stats.buffered, stats.dropped), (0, 0), "{stats:?}");
    assert_eq!(
        field_by_id(&c, "email"),
        vec![json!("a@x"), json!("new-b@x"), json!("b@x")]
    );
    let ops: Vec<(pocketdb::ChangeOp, Value)> = db
        .changes_since(0, 1000)
        .unwrap()
        .into_iter()
        .skip(seq)
        .map(|ch| (ch.op, ch.id))
        .collect();
    assert_eq!(
        ops.iter()
            .filter(|(op, _)| *op == pocketdb::ChangeOp::Delete)
            .count(),
        2,
        "{ops:?}"
    );

    // Applied documents keep the expiry of their acknowledgement, not of the apply.
    c.insert_one(json!({"_id": "late", "email": "late@x"}))
        .unwrap();
    std::thread::sleep(ttl / 2);
    db.flush().unwrap();
    std::thread::sleep(ttl / 2 + Duration::from_millis(100));
    assert_eq!(c.find_one(json!({"_id": "late"})).unwrap(), None);
    assert_eq!(c.count_documents(json!({})).unwrap(), 0);
    assert!(db.integrity_check().unwrap().ok);
}

/// A document giving an index over several fields more keys than allowed (arrays on
/// two of its fields, 200 × 200 keys) is refused before a buffered write is
/// acknowledged, as in `Sync` mode, instead of being acknowledged and then dropped by
/// the applier.
#[test]
fn documents_with_too_many_compound_keys_are_refused_before_acknowledgement() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_slow(&dir);
    let c = db.collection::<Value>("c");
    c.create_index(
        json!({"arr": 1, "other": 1}),
        pocketdb::IndexOptions::default(),
    )
    .unwrap();
    let wide: Vec<Value> = (0..200).map(|i| json!(i)).collect();
    let too_many = |id: i64| json!({"_id": id, "arr": wide.clone(), "other": wide.clone()});
    assert!(matches!(
        c.insert_one(too_many(1)),
        Err(Error::InvalidDocument(_))
    ));
    // One array is not limited.
    c.insert_one(json!({"_id": 2, "arr": wide.clone(), "other": 1}))
        .unwrap();
    // Ordered: stops at the refused document; unordered: goes on past it.
    let r = c.insert_many([json!({"_id": 3}), too_many(4), json!({"_id": 5})]);
    let Err(Error::BulkWrite(failure)) = r else {
        panic!("expected a bulk write failure, got {r:?}");
    };
    assert_eq!(failure.write_errors.len(), 1);
    assert_eq!(failure.write_errors[0].index, 1);
    assert!(matches!(
        failure.write_errors[0].error,
        Error::InvalidDocument(_)
    ));
    assert_eq!(failure.inserted_ids, vec![(0, json!(3))]);
    let r = c.insert_many_with(
        [json!({"_id": 6}), too_many(7), json!({"_id": 8})],
        pocketdb::InsertManyOptions { ordered: false },
    );
    let Err(Error::BulkWrite(failure)) = r else {
        panic!("expected a bulk write failure, got {r:?}");
    };
    assert_eq!(failure.inserted_ids, vec![(0, json!(6)), (2, json!(8))]);
    // An update by `_id` that would give too many keys leaves the document unchanged.
    let r = c.update_one(json!({"_id": 2}), json!({"$set": {"other": wide.clone()}}));
    assert!(matches!(r, Err(Error::InvalidDocument(_))), "{r:?}");
    let r = c.replace_one(json!({"_id": 3}), too_many(3));
    assert!(matches!(r, Err(Error::InvalidDocument(_))), "{r:?}");
    assert_eq!(
        field_by_id(&c, "_id"),
        vec![json!(2), json!(3), json!(6), json!(8)]
    );
    db.flush().unwrap();
    let stats = db.buffer_stats().unwrap();
    assert_eq!((stats.buffered, stats.dropped), (0, 0), "{stats:?}");
    assert_eq!(
        field_by_id(&c, "_id"),
        vec![json!(2), json!(3), json!(6), json!(8)]
    );
    assert_eq!(
        c.count_documents(json!({"arr": 199, "other": 1})).unwrap(),
        1
    );
}

/// A buffered write to an expiring collection logs its expiry: replayed after a crash,
/// a document expires `expire_after` from its acknowledgement, not from the replay.
#[test]
fn replayed_writes_keep_the_expiry_of_their_acknowledgement() {
    let dir = tempfile::tempdir().unwrap();
    // Long enough that the reopen below comes before the second document expires.
    let ttl = Duration::from_secs(2);
    {
        let db = open_slow(&dir);
        let c = db
            .create_collection("cache", CollectionOptions::default().expire_after(ttl))
            .unwrap();
        c.insert_one(json!({"_id": "old", "v": 1})).unwrap();
        std::thread::sleep(ttl + Duration::from_millis(100));
        c.insert_one(json!({"_id": "fresh", "v": 2})).unwrap();
        c.update_one(json!({"_id": "fresh"}), json!({"$set": {"v": 3}}))
            .unwrap();
        assert_eq!(db.buffer_stats().unwrap().buffered, 3);
        // Dropped without a flush: the writes stay in the log only.
    }
    // Replayed by an open in `Sync` mode: the first document expired before it.
    let db = Database::open(dir.path().join("buf.sqlite")).unwrap();
    let c = db.collection::<Value>("cache");
    assert_eq!(c.find_one(json!({"_id": "old"})).unwrap(), None);
    assert_eq!(
        c.find(json!({})).unwrap().to_vec().unwrap(),
        vec![json!({"_id": "fresh", "v": 3})]
    );
    assert!(db.integrity_check().unwrap().ok);
}

/// Runs `f` on a thread and fails the test when it does not return within `secs`
/// (a deadlock would otherwise hang the suite).
fn within<R: Send + 'static>(secs: u64, label: &str, f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(r) => r,
        Err(_) => panic!("{label}: did not return within {secs} s"),
    }
}

/// A buffered database with an expiring collection `cache` (`ttl`) and no background
/// sweep: expired stored documents stay until a read or write notices them.
fn open_expiring(dir: &tempfile::TempDir, ttl: Duration) -> (Database, pocketdb::Collection) {
    let db = Database::open_with(
        dir.path().join("buf.sqlite"),
        Options::default()
            .durability(Durability::Buffered(
                BufferOptions::default().flush_interval(Duration::from_secs(3600)),
            ))
            .expiry_interval(Duration::from_secs(3600)),
    )
    .unwrap();
    let c = db
        .create_collection("cache", CollectionOptions::default().expire_after(ttl))
        .unwrap();
    (db, c)
}

/// Buffered writes that read stored rows (an insert with its `_id`, an update or delete
/// by `_id`) deleted the expired documents they found through a synchronous write,
/// which waited for the buffer's gate the writer itself held: they hung for good once
/// any stored document had expired.
#[test]
fn buffered_writes_to_an_expiring_collection_with_expired_documents_return() {
    let ttl = Duration::from_millis(300);
    let dir = tempfile::tempdir().unwrap();
    let (db, c) = open_expiring(&dir, ttl);
    c.insert_many([
        json!({"_id": "old", "v": 1}),
        json!({"_id": "older", "v": 1}),
    ])
    .unwrap();
    db.flush().unwrap();
    std::thread::sleep(ttl + Duration::from_millis(200));
    let c2 = c.clone();
    within(20, "insert_one", move || {
        c2.insert_one(json!({"_id": "new"})).unwrap()
    });
    let c2 = c.clone();
    let updated = within(20, "update_one", move || {
        c2.update_one(json!({"_id": "old"}), json!({"$set": {"v": 2}}))
            .unwrap()
    });
    // The expired document reads as deleted: nothing to update.
    assert_eq!(updated.matched_count, 0);
    let c2 = c.clone();
    let deleted = within(20, "delete_one", move || {
        c2.delete_one(json!({"_id": "older"})).unwrap()
    });
    assert_eq!(deleted.deleted_count, 0);
    assert_eq!(c.count_documents(json!({})).unwrap(), 1);
    db.flush().unwrap();
    assert_eq!(
        c.find(json!({})).unwrap().to_vec().unwrap(),
        vec![json!({"_id": "new"})]
    );
}

/// A document updated while it was live keeps living from that update even when its
/// stored version expires before the update is applied: the expired rows a read
/// deletes leave those a pending write replaces, and no `delete` reaches the log.
#[test]
fn a_pending_write_keeps_its_document_past_the_stored_version_expiry() {
    // Wide margins: the update's version lives until 4.5 s, checked from 3.3 s on.
    let ttl = Duration::from_millis(3000);
    let dir = tempfile::tempdir().unwrap();
    let (db, c) = open_expiring(&dir, ttl);
    c.insert_many([
        json!({"_id": "kept", "v": 1}),
        json!({"_id": "gone", "v": 1}),
    ])
    .unwrap();
    db.flush().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    c.update_one(json!({"_id": "kept"}), json!({"$set": {"v": 2}}))
        .unwrap();
    // Past the stored versions' expiry, not the update's.
    std::thread::sleep(Duration::from_millis(1800));
    let c2 = c.clone();
    let seen = within(20, "find", move || {
        c2.find(json!({})).unwrap().to_vec().unwrap()
    });
    assert_eq!(seen, vec![json!({"_id": "kept", "v": 2})]);
    db.flush().unwrap();
    assert_eq!(
        c.find(json!({})).unwrap().to_vec().unwrap(),
        vec![json!({"_id": "kept", "v": 2})]
    );
    let ops: Vec<(Value, String)> = c
        .changes_since(0, 100)
        .unwrap()
        .into_iter()
        .filter(|ch| ch.id == json!("kept"))
        .map(|ch| (ch.id, format!("{:?}", ch.op)))
        .collect();
    assert!(
        ops.iter().all(|(_, op)| op != "Delete"),
        "kept was deleted on the way: {ops:?}"
    );
}

/// A cache written continuously with its own `_id`s under the default expiry sweep
/// (which deletes what expired while writers buffer) keeps going.
#[test]
fn a_buffered_cache_with_a_short_expiry_keeps_taking_writes() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_with(
        &dir,
        BufferOptions::default().flush_interval(Duration::from_millis(20)),
    );
    let c = db
        .create_collection(
            "cache",
            CollectionOptions::default().expire_after(Duration::from_millis(100)),
        )
        .unwrap();
    let c2 = c.clone();
    let written = within(60, "2 s of cache writes", move || {
        let start = std::time::Instant::now();
        let mut i = 0u64;
        while start.elapsed() < Duration::from_secs(2) {
            match c2.insert_one(json!({"_id": i % 50, "v": i})) {
                // The previous version of this `_id` may not have expired yet.
                Ok(_) | Err(Error::DuplicateKey { .. }) => {}
                Err(e) => panic!("{e}"),
            }
            i += 1;
            std::thread::sleep(Duration::from_millis(2));
        }
        i
    });
    assert!(written > 100, "{written} writes in 2 s");
}

/// `{_id: {$in: [...]}}` naming a buffered document more than once (or as `1` and
/// `1.0`) returned it once per mention.
#[test]
fn an_in_list_repeating_a_buffered_id_finds_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_slow(&dir);
    let c = db.collection::<Value>("c");
    c.insert_one(json!({"_id": 1, "v": "a"})).unwrap();
    c.insert_one(json!({"_id": 2, "v": "b"})).unwrap();
    let found = |filter: Value| c.find(filter).unwrap().to_vec().unwrap().len();
    assert_eq!(found(json!({"_id": {"$in": [1, 1]}})), 1);
    assert_eq!(found(json!({"_id": {"$in": [1, 1.0, 2, 1]}})), 2);
    let grouped = c
        .aggregate(json!([
            {"$match": {"_id": {"$in": [1, 1]}}},
            {"$group": {"_id": null, "n": {"$sum": 1}}}
        ]))
        .unwrap()
        .to_vec()
        .unwrap();
    assert_eq!(grouped, vec![json!({"_id": null, "n": 1})]);
    db.flush().unwrap();
    assert_eq!(found(json!({"_id": {"$in": [1, 1.0, 2, 1]}})), 2);
}

/// A collection made by a buffered insert is listed (with default options) before the
/// write is applied, as MongoDB lists it after the insert.
#[test]
fn a_collection_created_by_a_buffered_insert_is_listed_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_slow(&dir);
    db.create_collection("stored", CollectionOptions::default())
        .unwrap();
    let c = db.collection::<Value>("fresh");
    c.insert_one(json!({"_id": 1})).unwrap();
    assert_eq!(db.list_collections().unwrap(), ["fresh", "stored"]);
    assert_eq!(
        db.collection_options("fresh").unwrap(),
        Some(CollectionOptions::default())
    );
    // A pending delete of nothing creates nothing.
    db.collection::<Value>("ghost")
        .delete_one(json!({"_id": 1}))
        .unwrap();
    assert_eq!(db.collection_options("ghost").unwrap(), None);
    db.flush().unwrap();
    assert_eq!(db.list_collections().unwrap(), ["fresh", "stored"]);
}
