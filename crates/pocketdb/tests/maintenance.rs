//! Expiry, integrity checks of damaged files, stats, slow queries, bulk-load mode,
//! vacuum and checkpoints.

use pocketdb::{check_file, CheckpointMode, CollectionOptions, Database, Options};
use serde_json::{json, Value};
use std::time::Duration;

#[test]
fn expired_documents_disappear() {
    let db = Database::memory_with(Options::default().expiry_interval(Duration::from_millis(50)))
        .unwrap();
    let cache = db
        .create_collection(
            "cache",
            CollectionOptions::default().expire_after(Duration::from_millis(300)),
        )
        .unwrap();
    assert_eq!(
        db.expire_after("cache").unwrap(),
        Some(Duration::from_millis(300))
    );
    cache.insert_one(json!({"_id": "a", "v": 1})).unwrap();
    cache.insert_one(json!({"_id": "b", "v": 1})).unwrap();
    assert_eq!(cache.count_documents(json!({})).unwrap(), 2);
    std::thread::sleep(Duration::from_millis(200));
    // A write renews the document's time.
    cache
        .update_one(json!({"_id": "b"}), json!({"$set": {"v": 2}}))
        .unwrap();
    std::thread::sleep(Duration::from_millis(150));
    // Read enforcement: "a" is gone even if the sweeper has not run yet.
    assert_eq!(cache.find_one(json!({"_id": "a"})).unwrap(), None);
    assert_eq!(
        cache.find(json!({})).unwrap().to_vec().unwrap(),
        vec![json!({"_id": "b", "v": 2})]
    );
    // An upsert after expiry inserts afresh instead of updating the expired document.
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(
        cache.estimated_count().unwrap(),
        0,
        "swept in the background"
    );
    let deletes = db
        .changes_since(0, 100)
        .unwrap()
        .into_iter()
        .filter(|c| c.op == pocketdb::ChangeOp::Delete)
        .count();
    assert_eq!(deletes, 2, "expiry is logged as deletes");
    // Other collections are untouched; removing the expiry keeps documents.
    let plain = db.collection::<Value>("plain");
    plain.insert_one(json!({"_id": 1})).unwrap();
    db.set_expire_after("cache", None).unwrap();
    cache.insert_one(json!({"_id": "c"})).unwrap();
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(cache.count_documents(json!({})).unwrap(), 1);
    assert_eq!(plain.count_documents(json!({})).unwrap(), 1);
    assert!(db
        .create_collection(
            "bad",
            CollectionOptions {
                options: json!({"expire_after": "soon"})
                    .as_object()
                    .cloned()
                    .unwrap()
            }
        )
        .is_err());
}

#[test]
fn expiry_survives_reopen_and_set_on_existing_collection() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ttl.sqlite");
    {
        let db = Database::open(&path).unwrap();
        let c = db.collection::<Value>("sessions");
        c.insert_many((0..10).map(|i| json!({"_id": i}))).unwrap();
        db.set_expire_after("sessions", Some(Duration::from_millis(100)))
            .unwrap();
        assert_eq!(c.count_documents(json!({})).unwrap(), 10);
    }
    std::thread::sleep(Duration::from_millis(150));
    let db = Database::open(&path).unwrap();
    assert_eq!(
        db.collection::<Value>("sessions")
            .count_documents(json!({}))
            .unwrap(),
        0
    );
    assert!(db.integrity_check().unwrap().ok);
}

#[test]
fn corrupted_file_is_reported_not_panicked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("good.sqlite");
    {
        let db = Database::open(&path).unwrap();
        db.collection::<Value>("c")
            .insert_many((0..3000).map(|i| json!({"_id": i, "text": "some text ".repeat(20)})))
            .unwrap();
        db.checkpoint(CheckpointMode::Truncate).unwrap();
        assert!(db.integrity_check().unwrap().ok);
    }
    assert!(check_file(&path).unwrap().ok);
    // Overwrite pages in the middle of a copy with garbage.
    let bad = dir.path().join("bad.sqlite");
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 40_000);
    for (i, b) in bytes[8192..40_000].iter_mut().enumerate() {
        *b = (i * 7 % 251) as u8;
    }
    std::fs::write(&bad, &bytes).unwrap();
    let report = check_file(&bad).unwrap();
    assert!(!report.ok);
    assert!(!report.problems.is_empty());
    assert!(report.to_string().contains("problem"));
    // Not a database at all.
    let text = dir.path().join("text.sqlite");
    std::fs::write(&text, "hello world, this is not sqlite".repeat(100)).unwrap();
    let report = check_file(&text).unwrap();
    assert!(!report.ok, "{report}");
    // Opening the damaged file as a database, if it opens, reports too.
    if let Ok(db) = Database::open(&bad) {
        if let Ok(r) = db.integrity_check() {
            assert!(!r.ok);
        }
    }
    assert!(check_file(&dir.path().join("absent.sqlite")).is_err());
}

#[test]
fn stats_vacuum_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("s.sqlite")).unwrap();
    let c = db.collection::<Value>("docs");
    c.insert_many((0..500).map(|i| json!({"_id": i, "body": "y".repeat(100)})))
        .unwrap();
    db.collection::<Value>("empty")
        .insert_one(json!({"_id": 1}))
        .unwrap();
    let _ = c
        .find(json!({"_id": {"$lt": 10}}))
        .unwrap()
        .to_vec()
        .unwrap();
    let stats = db.stats().unwrap();
    assert!(stats.file_bytes > 0);
    assert!(stats.page_count > 0);
    let docs = stats.collections.iter().find(|s| s.name == "docs").unwrap();
    assert_eq!(docs.documents, 500);
    assert!(docs.data_bytes >= 500 * 100);
    assert!(docs.table_bytes >= docs.data_bytes);
    assert_eq!(docs.indexes.len(), 1, "{:?}", docs.indexes);
    assert!(docs.indexes[0].bytes > 0);
    let cache = stats.cache.unwrap();
    assert!(cache.hit_ratio >= 0.0 && cache.hit_ratio <= 1.0);
    assert!(stats.change_log_entries >= 501);
    serde_json::to_string(&stats).unwrap();

    c.delete_many(json!({"_id": {"$gte": 100}})).unwrap();
    let cp = db.checkpoint(CheckpointMode::Truncate).unwrap();
    assert!(!cp.busy);
    let before = db.stats().unwrap();
    assert_eq!(before.wal_bytes, 0);
    assert!(before.freelist_pages > 0);
    db.vacuum().unwrap();
    let after = db.stats().unwrap();
    assert_eq!(after.freelist_pages, 0);
    assert!(after.page_count < before.page_count);
    let copy = dir.path().join("compact.sqlite");
    db.vacuum_into(&copy).unwrap();
    assert!(db.vacuum_into(&copy).is_err(), "target exists");
    assert_eq!(
        Database::open(&copy)
            .unwrap()
            .collection::<Value>("docs")
            .count_documents(json!({}))
            .unwrap(),
        100
    );
    assert!(db.quick_check().unwrap().ok);
}

#[test]
fn slow_queries_are_recorded() {
    let db = Database::memory_with(Options::default().slow_query_threshold(Some(Duration::ZERO)))
        .unwrap();
    let c = db.collection::<Value>("c");
    c.insert_one(json!({"a": 1})).unwrap();
    c.find(json!({"a": {"$gt": 0}})).unwrap().to_vec().unwrap();
    let slow = db.slow_queries();
    assert!(!slow.is_empty());
    assert_eq!(slow[0].collection, "c");
    assert!(slow[0].filter.contains('a'));
    let quiet = Database::memory().unwrap();
    quiet
        .collection::<Value>("c")
        .find(json!({}))
        .unwrap()
        .to_vec()
        .unwrap();
    assert!(quiet.slow_queries().is_empty());
}

#[test]
fn bulk_load_restores_settings_even_on_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("b.sqlite")).unwrap();
    let result: pocketdb::Result<()> = db.with_bulk_load(|db| {
        assert!(db.in_bulk_load());
        let c = db.collection::<Value>("c");
        c.insert_many((0..1000).map(|i| json!({"_id": i}))).unwrap();
        c.insert_one(json!({"_id": 1}))?; // duplicate: fails
        Ok(())
    });
    assert!(result.is_err());
    assert!(!db.in_bulk_load());
    assert_eq!(
        db.collection::<Value>("c")
            .count_documents(json!({}))
            .unwrap(),
        1000
    );
    // The guard form, nested.
    {
        let outer = db.bulk_load().unwrap();
        let inner = db.bulk_load().unwrap();
        drop(inner);
        assert!(db.in_bulk_load());
        outer.finish().unwrap();
    }
    assert!(!db.in_bulk_load());
}
