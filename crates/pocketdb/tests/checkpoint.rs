//! WAL checkpoints in the background thread: they run, they bound the WAL, bulk-load mode
//! suspends and restores them, and nothing written is lost.

use pocketdb::{CheckpointOptions, Database, Options};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

/// Bytes of a WAL holding `pages` frames of 4 KiB pages (header and frame headers).
fn wal_bytes_for(pages: u64) -> u64 {
    32 + pages * (4096 + 24)
}

fn wal_len(db_path: &Path) -> u64 {
    let mut wal = db_path.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(wal).map(|m| m.len()).unwrap_or(0)
}

/// Waits until `cond` holds, up to 10 s.
fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

fn doc(i: u64) -> Value {
    json!({"_id": i, "pad": "x".repeat(300), "n": i})
}

#[test]
fn background_checkpoints_run_and_bound_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.sqlite");
    let db = Database::open_with(
        &path,
        Options::default().checkpoint(CheckpointOptions::default().pages(20).max_wal_pages(200)),
    )
    .unwrap();
    let c = db.collection::<Value>("c");
    for i in 0..3_000 {
        c.insert_one(doc(i)).unwrap();
        if i % 100 == 0 {
            c.update_one(json!({"_id": i / 2}), json!({"$inc": {"n": 1}}))
                .unwrap();
        }
    }
    assert!(
        eventually(|| db.stats().unwrap().checkpoints.background > 0),
        "no background checkpoint ran: {:?}",
        db.stats().unwrap().checkpoints
    );
    // The WAL starts over once a checkpoint copied all of it: it never holds much more
    // than max_wal_pages frames (plus the commit that crossed the limit; the writer waits
    // for a background checkpoint in progress rather than letting the WAL grow), far
    // below the ~9,000 frames written.
    assert!(
        wal_len(&path) <= wal_bytes_for(200 + 50),
        "WAL grew to {} bytes",
        wal_len(&path)
    );
    assert_eq!(c.count_documents(json!({})).unwrap(), 3_000);
    assert_eq!(c.find_one(json!({"_id": 0})).unwrap().unwrap()["n"], 1);
    drop(c);
    drop(db);
    let db = Database::open(&path).unwrap();
    assert!(db.integrity_check().unwrap().ok);
    assert_eq!(
        db.collection::<Value>("c")
            .count_documents(json!({}))
            .unwrap(),
        3_000
    );
}

#[test]
fn the_writer_checkpoints_itself_past_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.sqlite");
    // The background thread starts at 1,000 pages: with a limit of 30 it never gets a
    // request, so every checkpoint is the writer's own.
    let db = Database::open_with(
        &path,
        Options::default().checkpoint(CheckpointOptions::default().pages(1_000).max_wal_pages(30)),
    )
    .unwrap();
    let c = db.collection::<Value>("c");
    for i in 0..1_000 {
        c.insert_one(doc(i)).unwrap();
    }
    let stats = db.stats().unwrap().checkpoints;
    assert!(stats.inline > 0, "{stats:?}");
    assert_eq!(stats.background, 0, "{stats:?}");
    assert!(wal_len(&path) <= wal_bytes_for(30 + 20));
}

#[test]
fn without_the_thread_sqlite_checkpoints_as_usual() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    let db = Database::open_with(
        &path,
        Options::default().checkpoint(CheckpointOptions::default().background(false).pages(25)),
    )
    .unwrap();
    let c = db.collection::<Value>("c");
    for i in 0..1_000 {
        c.insert_one(doc(i)).unwrap();
    }
    assert_eq!(
        db.stats().unwrap().checkpoints,
        pocketdb::CheckpointStats::default()
    );
    assert!(wal_len(&path) <= wal_bytes_for(25 + 20));
    assert_eq!(c.count_documents(json!({})).unwrap(), 1_000);
}

#[test]
fn bulk_load_suspends_checkpoints_and_restores_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.sqlite");
    let db = Database::open_with(
        &path,
        Options::default().checkpoint(CheckpointOptions::default().pages(20).max_wal_pages(100)),
    )
    .unwrap();
    let c = db.collection::<Value>("c");
    db.with_bulk_load(|_| {
        for i in 0..1_000 {
            c.insert_one(doc(i))?;
        }
        Ok(())
    })
    .unwrap();
    // Bulk-load mode raised the thresholds: the WAL grew past the normal limit.
    assert!(wal_len(&path) > wal_bytes_for(100));
    let before = db.stats().unwrap().checkpoints;
    // Back to normal: writes are checkpointed again and the WAL starts over.
    for i in 1_000..2_000 {
        c.insert_one(doc(i)).unwrap();
    }
    assert!(eventually(|| {
        let now = db.stats().unwrap().checkpoints;
        now.background + now.inline > before.background + before.inline
    }));
    assert_eq!(c.count_documents(json!({})).unwrap(), 2_000);
}
