//! Online backup while a writer inserts, restore, client-wide backup, change sets.

use pocketdb::{Client, Database};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

fn all(db: &Database, coll: &str) -> Vec<Value> {
    db.collection::<Value>(coll)
        .find(json!({}))
        .unwrap()
        .sort(json!({"_id": 1}))
        .to_vec()
        .unwrap()
}

#[test]
fn backup_while_writing_then_restore() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("live.sqlite")).unwrap();
    let coll = db.collection::<Value>("events");
    coll.insert_many((0..2000).map(|i| json!({"_id": i, "payload": "x".repeat(400)})))
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let coll = coll.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut i = 100_000;
            while !stop.load(Ordering::Relaxed) {
                coll.insert_one(json!({"_id": i, "payload": "live"}))
                    .unwrap();
                i += 1;
            }
            i - 100_000
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(30));
    let backup_path = dir.path().join("backup").join("live.sqlite");
    let mut steps = 0;
    let report = db
        .backup_to_with(&backup_path, &mut |p| {
            assert!(p.copied <= p.total);
            steps += 1;
        })
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(30));
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap();
    assert!(written > 0);
    assert!(steps > 1, "progress is reported per step");
    assert!(report.bytes > 0);

    // The backup is a consistent snapshot: its change log ends at report.last_change_seq
    // and holds exactly the documents inserted up to then.
    let copy = Database::open(&backup_path).unwrap();
    assert!(copy.integrity_check().unwrap().ok);
    assert_eq!(copy.last_change_seq().unwrap(), report.last_change_seq);
    let n = copy
        .collection::<Value>("events")
        .count_documents(json!({}))
        .unwrap();
    assert_eq!(
        n as i64, report.last_change_seq,
        "one insert per change-log entry"
    );
    assert!(n >= 2000);
    assert!(n <= 2000 + written as u64);
    let snapshot = all(&copy, "events");
    drop(copy);

    // Restore the snapshot into the live database: same documents as the backup.
    coll.insert_one(json!({"_id": "after"})).unwrap();
    db.collection::<Value>("other")
        .insert_one(json!({"a": 1}))
        .unwrap();
    let mut restore_steps = 0;
    db.restore_from_with(&backup_path, &mut |_| restore_steps += 1)
        .unwrap();
    assert!(restore_steps > 0);
    assert_eq!(all(&db, "events"), snapshot);
    assert_eq!(db.list_collections().unwrap(), vec!["events".to_string()]);
    // Still writable after the restore.
    coll.insert_one(json!({"_id": "again"})).unwrap();
    assert!(db.integrity_check().unwrap().ok);
}

#[test]
fn restore_refuses_damaged_backups() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("a.sqlite")).unwrap();
    db.collection::<Value>("c")
        .insert_one(json!({"_id": 1}))
        .unwrap();
    let bad = dir.path().join("bad.sqlite");
    std::fs::write(
        &bad,
        b"this is not a database, just text that goes on and on",
    )
    .unwrap();
    assert!(db.restore_from(&bad).is_err());
    assert!(db.restore_from(dir.path().join("missing.sqlite")).is_err());
    assert_eq!(
        db.collection::<Value>("c")
            .count_documents(json!({}))
            .unwrap(),
        1
    );
}

#[test]
fn client_backup_and_restore_directory() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::open(dir.path().join("live")).unwrap();
    for name in ["base", "shop"] {
        client
            .database(name)
            .unwrap()
            .collection::<Value>("c")
            .insert_many((0..100).map(|i| json!({"_id": i, "db": name})))
            .unwrap();
    }
    let reports = client.backup_to_dir(dir.path().join("bk")).unwrap();
    assert_eq!(reports.len(), 2);
    assert!(client.backup_to_dir(dir.path().join("live")).is_err());
    // Change the live data, then restore the backup into a fresh client and the live one.
    client
        .database("shop")
        .unwrap()
        .collection::<Value>("c")
        .delete_many(json!({}))
        .unwrap();
    let fresh = Client::open(dir.path().join("fresh")).unwrap();
    assert_eq!(
        fresh.restore_from_dir(dir.path().join("bk")).unwrap(),
        vec!["base".to_string(), "shop".to_string()]
    );
    assert_eq!(all(&fresh.database("shop").unwrap(), "c").len(), 100);
    client.restore_from_dir(dir.path().join("bk")).unwrap();
    assert_eq!(all(&client.database("shop").unwrap(), "c").len(), 100);
}

#[test]
fn memory_database_backup() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::memory().unwrap();
    db.collection::<Value>("c")
        .insert_one(json!({"_id": 1}))
        .unwrap();
    let path = dir.path().join("mem.sqlite");
    db.backup_to(&path).unwrap();
    let copy = Database::open(&path).unwrap();
    assert_eq!(all(&copy, "c"), vec![json!({"_id": 1})]);
    let other = Database::memory().unwrap();
    other.restore_from(&path).unwrap();
    assert_eq!(all(&other, "c"), vec![json!({"_id": 1})]);
}

#[test]
fn changes_applied_twice_give_the_same_result() {
    let dir = tempfile::tempdir().unwrap();
    let primary = Database::open(dir.path().join("p.sqlite")).unwrap();
    let replica = Database::open(dir.path().join("r.sqlite")).unwrap();
    let users = primary.collection::<Value>("users");
    users
        .insert_many((0..20).map(|i| json!({"_id": i, "v": 0})))
        .unwrap();
    primary
        .collection::<Value>("tmp")
        .insert_one(json!({"_id": 1}))
        .unwrap();
    let first = primary.export_changes(0).unwrap();
    let r1 = replica.apply_changes(&first).unwrap();
    assert_eq!(r1.upserted, 21);
    // More changes: updates, a delete, a delete-then-reinsert, a drop.
    users
        .update_many(json!({"_id": {"$lt": 5}}), json!({"$inc": {"v": 1}}))
        .unwrap();
    users.delete_one(json!({"_id": 7})).unwrap();
    users.delete_one(json!({"_id": 8})).unwrap();
    users.insert_one(json!({"_id": 8, "v": "reborn"})).unwrap();
    primary.drop_collection("tmp").unwrap();
    let second = primary.export_changes(first.until).unwrap();
    // Serialisable: through JSON text and back.
    let second: pocketdb::ChangeSet =
        serde_json::from_str(&serde_json::to_string(&second).unwrap()).unwrap();
    replica.apply_changes(&second).unwrap();
    let once = (all(&replica, "users"), replica.list_collections().unwrap());
    let again = replica.apply_changes(&second).unwrap();
    assert_eq!(again.applied, 0);
    let older = replica.apply_changes(&first).unwrap();
    assert_eq!(older.applied, 0, "an older set does not roll back");
    assert_eq!(
        (all(&replica, "users"), replica.list_collections().unwrap()),
        once
    );
    assert_eq!(all(&replica, "users"), all(&primary, "users"));
    assert_eq!(once.1, vec!["users".to_string()]);
    // A fresh replica given both sets (or the whole log at once) converges too.
    let fresh = Database::memory().unwrap();
    fresh
        .apply_changes(&primary.export_changes(0).unwrap())
        .unwrap();
    assert_eq!(all(&fresh, "users"), all(&primary, "users"));
    // Chunked export converges as well.
    let chunked = Database::memory().unwrap();
    let mut since = 0;
    loop {
        let set = primary.export_changes_limited(since, 7).unwrap();
        if set.until == since {
            break;
        }
        chunked.apply_changes(&set).unwrap();
        since = set.until;
    }
    assert_eq!(all(&chunked, "users"), all(&primary, "users"));
}

#[test]
fn client_backup_includes_sharded_members() {
    use pocketdb::shard::ShardOptions;
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let bak = tempfile::tempdir().unwrap();
    let client = Client::open(src.path()).unwrap();
    let sharded = client
        .create_sharded_collection("app", "events", ShardOptions::new(3))
        .unwrap();
    sharded
        .insert_many((0..90).map(|i| json!({"_id": i, "v": i * 2})))
        .unwrap();
    client
        .database("app")
        .unwrap()
        .collection::<Value>("plain")
        .insert_one(json!({"_id": 1}))
        .unwrap();
    client.backup_to_dir(bak.path()).unwrap();
    // Writes after the backup are not in it.
    sharded.insert_one(json!({"_id": 1000})).unwrap();

    let restored = Client::open(dst.path()).unwrap();
    restored.restore_from_dir(bak.path()).unwrap();
    let again = restored.sharded::<Value>("app", "events").unwrap();
    assert_eq!(again.count_documents(json!({})).unwrap(), 90);
    assert_eq!(
        again.find_one(json!({"_id": 45})).unwrap(),
        Some(json!({"_id": 45, "v": 90}))
    );
    assert_eq!(
        restored
            .database("app")
            .unwrap()
            .collection::<Value>("plain")
            .count_documents(json!({}))
            .unwrap(),
        1
    );
}

/// A buffered database's backup holds every write acknowledged before it started
/// (buffered writes are applied first), and a restore is not followed by writes
/// buffered before it: the restored content is the backup's.
#[test]
fn backup_and_restore_of_a_buffered_database() {
    let dir = tempfile::tempdir().unwrap();
    let buffered = pocketdb::Options::default().durability(pocketdb::Durability::Buffered(
        pocketdb::BufferOptions::default().flush_interval(std::time::Duration::from_secs(3600)),
    ));
    let db = Database::open_with(dir.path().join("live.sqlite"), buffered.clone()).unwrap();
    let c = db.collection::<Value>("c");
    c.insert_many((0..10).map(|i| json!({"_id": i}))).unwrap();
    let backup = dir.path().join("backup.sqlite");
    db.backup_to(&backup).unwrap();
    let copy = Database::open(&backup).unwrap();
    assert_eq!(
        copy.collection::<Value>("c")
            .count_documents(json!({}))
            .unwrap(),
        10
    );
    drop(copy);
    c.insert_one(json!({"_id": 100})).unwrap();
    let compacted = dir.path().join("compacted.sqlite");
    db.vacuum_into(&compacted).unwrap();
    let copy = Database::open(&compacted).unwrap();
    assert_eq!(
        copy.collection::<Value>("c")
            .count_documents(json!({}))
            .unwrap(),
        11
    );
    drop(copy);
    c.delete_one(json!({"_id": 100})).unwrap();
    // Acknowledged after the backup, still buffered when the restore comes.
    c.insert_many((10..15).map(|i| json!({"_id": i}))).unwrap();
    db.restore_from(&backup).unwrap();
    assert_eq!(c.count_documents(json!({})).unwrap(), 10);
    db.flush().unwrap();
    assert_eq!(c.count_documents(json!({})).unwrap(), 10);
    // Writes after the restore are buffered and applied as usual, also across a reopen.
    c.insert_one(json!({"_id": 20})).unwrap();
    drop(c);
    drop(db);
    let db = Database::open_with(dir.path().join("live.sqlite"), buffered.clone()).unwrap();
    let c = db.collection::<Value>("c");
    assert_eq!(c.count_documents(json!({})).unwrap(), 11);
    assert!(c.find_one(json!({"_id": 12})).unwrap().is_none());

    // Restored into a database whose buffer log is younger than the backup's: the
    // log's writes still replay after a crash (the backup's position in its own log
    // does not come along).
    let fresh_path = dir.path().join("fresh.sqlite");
    let fresh = Database::open_with(&fresh_path, buffered.clone()).unwrap();
    fresh.restore_from(&backup).unwrap();
    fresh
        .collection::<Value>("c")
        .insert_one(json!({"_id": 30}))
        .unwrap();
    drop(fresh); // the write stays in the log, unapplied
    let fresh = Database::open_with(&fresh_path, buffered).unwrap();
    let c = fresh.collection::<Value>("c");
    assert_eq!(c.count_documents(json!({})).unwrap(), 11);
    assert!(c.find_one(json!({"_id": 30})).unwrap().is_some());
}

/// A replica following a database through change sets ends up with the same
/// collections after a rename: the old name goes, and every document of the new one
/// arrives, also those not written since the replica's last set.
#[test]
fn change_sets_carry_a_rename() {
    let primary = Database::memory().unwrap();
    let replica = Database::memory().unwrap();
    let c = primary.collection::<Value>("c");
    c.insert_many((0..3).map(|i| json!({"_id": i, "v": i})))
        .unwrap();
    primary
        .collection::<Value>("d")
        .insert_one(json!({"_id": 9}))
        .unwrap();
    let first = primary.export_changes(0).unwrap();
    replica.apply_changes(&first).unwrap();
    primary.rename_collection("c", "d", true).unwrap();
    primary
        .collection::<Value>("d")
        .update_one(json!({"_id": 1}), json!({"$set": {"v": 10}}))
        .unwrap();
    replica
        .apply_changes(&primary.export_changes(first.until).unwrap())
        .unwrap();
    assert_eq!(replica.list_collections().unwrap(), ["d"]);
    assert_eq!(all(&replica, "d"), all(&primary, "d"));
    assert_eq!(all(&replica, "d").len(), 3);
    // Watchers of the old name see it dropped.
    let log = primary.changes_since(first.until, 100).unwrap();
    assert!(log
        .iter()
        .any(|e| e.collection == "c" && e.op == pocketdb::ChangeOp::Drop));
}

/// A restore rewinds a database: readers of its change log that had read it to the end
/// (a change-set replica, a watcher) reach the restored state, no sequence number is
/// used twice, and older resume tokens are refused rather than silently skipping.
#[test]
fn change_log_readers_follow_a_restore() {
    let dir = tempfile::tempdir().unwrap();
    let primary = Database::open(dir.path().join("primary.sqlite")).unwrap();
    let replica = Database::memory().unwrap();
    let c = primary.collection::<Value>("c");
    c.insert_many((0..3).map(|i| json!({"_id": i}))).unwrap();
    let backup = dir.path().join("backup.sqlite");
    primary.backup_to(&backup).unwrap();
    c.insert_many((3..6).map(|i| json!({"_id": i}))).unwrap();
    primary
        .collection::<Value>("later")
        .insert_one(json!({"_id": 1}))
        .unwrap();
    let first = primary.export_changes(0).unwrap();
    replica.apply_changes(&first).unwrap();
    let end = primary.last_change_seq().unwrap();
    let id = primary.database_id().unwrap();
    let mut stream = primary.watch_from(end).unwrap();

    primary.restore_from(&backup).unwrap();
    assert_eq!(primary.database_id().unwrap(), id);
    c.insert_one(json!({"_id": 7})).unwrap();
    let log = primary.changes_since(0, 100).unwrap();
    assert!(log.iter().all(|e| e.seq > end), "{log:?}");
    // The replica follows from where it was.
    replica
        .apply_changes(&primary.export_changes(first.until).unwrap())
        .unwrap();
    assert_eq!(replica.list_collections().unwrap(), ["c"]);
    assert_eq!(all(&replica, "c"), all(&primary, "c"));
    assert_eq!(all(&replica, "c").len(), 4);
    // So does the watcher; a token from before the restore has expired.
    let event = stream
        .next_timeout(std::time::Duration::from_secs(5))
        .unwrap()
        .unwrap();
    assert_eq!(event.op, pocketdb::ChangeOp::Drop);
    assert!(matches!(
        primary.watch_from(1),
        Err(pocketdb::Error::ResumeTokenExpired { .. })
    ));
}

const DAY_MS: i64 = 86_400_000;
/// 2025-01-01T00:00:00Z.
const JAN_1_MS: i64 = 1_735_689_600_000;

/// The member files under `<dir>/app.<kind>/<collection>/`, sorted.
fn member_files(dir: &std::path::Path, kind: &str, collection: &str) -> Vec<String> {
    let mut files: Vec<String> =
        match std::fs::read_dir(dir.join(format!("app.{kind}")).join(collection)) {
            Ok(entries) => entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|f| f.ends_with(".sqlite"))
                .collect(),
            Err(_) => Vec::new(),
        };
    files.sort();
    files
}

/// Guards that a client restore brings a partitioned collection back to the backup's
/// partitions: a partition created after the backup does not survive it.
#[test]
fn restore_from_dir_drops_partitions_created_after_the_backup() {
    use pocketdb::{PartitionBy, TimeBucket};
    let dir = tempfile::tempdir().unwrap();
    let backup = tempfile::tempdir().unwrap();
    let client = Client::open(dir.path()).unwrap();
    let by = PartitionBy::Time {
        field: "ts".into(),
        bucket: TimeBucket::Day,
    };
    let events = client
        .create_partitioned_collection("app", "events", by)
        .unwrap();
    events
        .insert_one(json!({"_id": 1, "ts": JAN_1_MS}))
        .unwrap();
    client.backup_to_dir(backup.path()).unwrap();
    events
        .insert_one(json!({"_id": 2, "ts": JAN_1_MS + 5 * DAY_MS}))
        .unwrap();
    events
        .insert_one(json!({"_id": 3, "ts": JAN_1_MS + 1}))
        .unwrap();
    client.restore_from_dir(backup.path()).unwrap();
    let events = client.partitioned::<Value>("app", "events").unwrap();
    assert_eq!(events.partitions().unwrap(), vec!["2025-01-01"]);
    assert_eq!(
        events.find(json!({})).unwrap().to_vec().unwrap(),
        vec![json!({"_id": 1, "ts": JAN_1_MS})]
    );
    assert_eq!(
        member_files(dir.path(), "parts", "events"),
        member_files(backup.path(), "parts", "events")
    );
    // The partition can be created again, empty.
    events
        .insert_one(json!({"_id": 4, "ts": JAN_1_MS + 5 * DAY_MS}))
        .unwrap();
    assert_eq!(events.count_documents(json!({})).unwrap(), 2);
}

/// Guards that a client restore deletes the member directories of sharded and
/// partitioned collections created after the backup: creating such a collection again
/// after the restore must not find the old documents in leftover files.
#[test]
fn restore_from_dir_removes_collections_created_after_the_backup() {
    use pocketdb::{PartitionBy, ShardOptions};
    let dir = tempfile::tempdir().unwrap();
    let backup = tempfile::tempdir().unwrap();
    let client = Client::open(dir.path()).unwrap();
    let kept = client
        .create_sharded_collection("app", "kept", ShardOptions::new(2))
        .unwrap();
    kept.insert_many((0..4).map(|i| json!({"_id": i}))).unwrap();
    client.backup_to_dir(backup.path()).unwrap();
    let late = client
        .create_sharded_collection("app", "late", ShardOptions::new(3))
        .unwrap();
    late.insert_many((0..9).map(|i| json!({"_id": i}))).unwrap();
    let by = PartitionBy::Prefix {
        field: "k".into(),
        len: 1,
    };
    let parts = client
        .create_partitioned_collection("app", "parts", by.clone())
        .unwrap();
    parts.insert_one(json!({"k": "abc"})).unwrap();
    client.restore_from_dir(backup.path()).unwrap();

    assert!(!dir.path().join("app.shards").join("late").exists());
    assert!(!dir.path().join("app.parts").join("parts").exists());
    assert_eq!(member_files(dir.path(), "shards", "kept").len(), 2);
    let kept = client.sharded::<Value>("app", "kept").unwrap();
    assert_eq!(kept.count_documents(json!({})).unwrap(), 4);
    let late = client
        .create_sharded_collection("app", "late", ShardOptions::new(3))
        .unwrap();
    assert_eq!(late.count_documents(json!({})).unwrap(), 0);
    let parts = client
        .create_partitioned_collection("app", "parts", by)
        .unwrap();
    assert_eq!(parts.count_documents(json!({})).unwrap(), 0);
}

/// Guards that a sharded collection dropped and recreated with more shards after the
/// backup comes back with the backup's shard files only.
#[test]
fn restore_from_dir_replaces_a_collection_recreated_with_more_shards() {
    use pocketdb::ShardOptions;
    let dir = tempfile::tempdir().unwrap();
    let backup = tempfile::tempdir().unwrap();
    let client = Client::open(dir.path()).unwrap();
    let items = client
        .create_sharded_collection("app", "items", ShardOptions::new(2))
        .unwrap();
    items
        .insert_many((0..10).map(|i| json!({"_id": i})))
        .unwrap();
    client.backup_to_dir(backup.path()).unwrap();
    assert!(items.drop().unwrap());
    let items = client
        .create_sharded_collection("app", "items", ShardOptions::new(4))
        .unwrap();
    items
        .insert_many((100..120).map(|i| json!({"_id": i})))
        .unwrap();
    drop(items);
    client.restore_from_dir(backup.path()).unwrap();
    assert_eq!(
        member_files(dir.path(), "shards", "items"),
        vec!["shard-0.sqlite", "shard-1.sqlite"]
    );
    let items = client.sharded::<Value>("app", "items").unwrap();
    assert_eq!(items.shard_count(), Some(2));
    let ids: Vec<i64> = items
        .find(json!({}))
        .unwrap()
        .sort(json!({"_id": 1}))
        .to_vec()
        .unwrap()
        .iter()
        .filter_map(|d| d["_id"].as_i64())
        .collect();
    assert_eq!(ids, (0..10).collect::<Vec<_>>());
}

/// Exports that would leave changes out are refused: from a position the retention
/// trimmed (`ResumeTokenExpired`), or past the end of the log, as after a fail-over to
/// an older copy (`ResumeTokenNotFound`); both returned a set silently missing changes.
#[test]
fn exports_that_would_leave_changes_out_are_refused() {
    use pocketdb::{ChangeRetention, Error};
    let dir = tempfile::tempdir().unwrap();
    let primary = Database::open(dir.path().join("p.sqlite")).unwrap();
    let c = primary.collection::<Value>("c");
    c.insert_one(json!({"_id": 0})).unwrap();
    primary.backup_to(dir.path().join("copy.sqlite")).unwrap();
    for i in 1..10 {
        c.insert_one(json!({"_id": i})).unwrap();
    }
    let position = primary.export_changes(0).unwrap().until;
    let copy = Database::open(dir.path().join("copy.sqlite")).unwrap();
    assert!(matches!(
        copy.export_changes(position),
        Err(Error::ResumeTokenNotFound { .. })
    ));
    primary
        .set_change_retention(ChangeRetention::default().max_count(3))
        .unwrap();
    primary.trim_changes().unwrap();
    assert!(matches!(
        primary.export_changes(0),
        Err(Error::ResumeTokenExpired { .. })
    ));
    assert_eq!(primary.export_changes(position).unwrap().entries.len(), 0);
}

/// A change set starting after what a replica applied from its source is refused (it
/// was applied, and the watermark then passed the changes in between for good).
#[test]
fn a_change_set_leaving_a_gap_is_refused() {
    let primary = Database::memory().unwrap();
    let replica = Database::memory().unwrap();
    let c = primary.collection::<Value>("c");
    for i in 0..3 {
        c.insert_one(json!({"_id": i})).unwrap();
    }
    let first = primary.export_changes(0).unwrap();
    for i in 3..6 {
        c.insert_one(json!({"_id": i})).unwrap();
    }
    let second = primary.export_changes(first.until).unwrap();
    let refused = replica.apply_changes(&second).unwrap_err();
    assert!(
        refused.to_string().contains("apply the sets in between"),
        "{refused}"
    );
    assert!(replica.list_collections().unwrap().is_empty());
    replica.apply_changes(&first).unwrap();
    replica.apply_changes(&second).unwrap();
    assert_eq!(all(&replica, "c"), all(&primary, "c"));
}

/// Documents that exchanged unique keys on the primary reach a replica with the same
/// unique index: their final states, stored one by one, collided with each other's old
/// ones and the set failed with `DuplicateKey`.
#[test]
fn a_unique_key_swap_replicates() {
    use pocketdb::IndexOptions;
    let primary = Database::memory().unwrap();
    let replica = Database::memory().unwrap();
    for db in [&primary, &replica] {
        db.collection::<Value>("u")
            .create_index(json!({"e": 1}), IndexOptions::default().unique(true))
            .unwrap();
    }
    let u = primary.collection::<Value>("u");
    u.insert_many([
        json!({"_id": "A", "e": 1}),
        json!({"_id": "B", "e": 2}),
        json!({"_id": "C", "e": 9}),
    ])
    .unwrap();
    let first = primary.export_changes(0).unwrap();
    replica.apply_changes(&first).unwrap();
    u.update_one(json!({"_id": "A"}), json!({"$set": {"e": 3}}))
        .unwrap();
    u.update_one(json!({"_id": "B"}), json!({"$set": {"e": 1}}))
        .unwrap();
    u.update_one(json!({"_id": "A"}), json!({"$set": {"e": 2}}))
        .unwrap();
    u.delete_one(json!({"_id": "C"})).unwrap();
    let second = primary.export_changes(first.until).unwrap();
    replica.apply_changes(&second).unwrap();
    assert_eq!(all(&replica, "u"), all(&primary, "u"));
}
