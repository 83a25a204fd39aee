//! Change streams: events, filters, resume tokens (also across a restart), other
//! connections, lagging consumers, retention.

use pocketdb::{
    ChangeEvent, ChangeOp, ChangeRetention, ChangeStream, Client, Database, Error, FullDocument,
    WatchOptions,
};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;

/// Generous failure guard: every wait is for an event that has already been committed.
const WAIT: Duration = Duration::from_secs(10);

fn next(stream: &mut ChangeStream) -> ChangeEvent {
    match stream.next_timeout(WAIT) {
        Ok(Some(e)) => e,
        other => panic!("expected an event, got {other:?}"),
    }
}

fn ops(events: &[ChangeEvent]) -> Vec<ChangeOp> {
    events.iter().map(|e| e.op).collect()
}

#[test]
fn every_kind_of_event_in_commit_order() -> pocketdb::Result<()> {
    let db = Database::memory()?;
    let c = db.collection::<Value>("c");
    let mut s = c.watch(json!({}))?;
    c.insert_one(json!({"_id": 1, "a": {"b": 1, "c": 2}, "x": 1}))?;
    c.update_one(
        json!({"_id": 1}),
        json!({"$set": {"a.b": 5, "n": "new"}, "$unset": {"x": ""}}),
    )?;
    c.replace_one(json!({"_id": 1}), json!({"y": 2}))?;
    c.delete_one(json!({"_id": 1}))?;
    c.drop()?;
    let events: Vec<ChangeEvent> = (0..5).map(|_| next(&mut s)).collect();
    assert_eq!(
        ops(&events),
        [
            ChangeOp::Insert,
            ChangeOp::Update,
            ChangeOp::Replace,
            ChangeOp::Delete,
            ChangeOp::Drop
        ]
    );
    assert!(events.windows(2).all(|w| w[0].token < w[1].token));
    // looked up at dispatch time: the document may already be gone
    assert!(
        events[0].full_document.is_none()
            || events[0]
                .full_document
                .as_ref()
                .is_some_and(|d| d["_id"] == 1)
    );
    let d = events[1]
        .update_description
        .clone()
        .expect("update description");
    assert_eq!(
        Value::Object(d.updated_fields),
        json!({"a.b": 5, "n": "new"})
    );
    assert_eq!(d.removed_fields, vec!["x".to_string()]);
    assert_eq!(
        events[1].full_document, None,
        "default mode: no lookup for updates"
    );
    assert_eq!(events[3].id, json!(1));
    let j = events[1].to_json();
    assert_eq!(j["operationType"], "update");
    assert_eq!(j["ns"]["coll"], "c");
    assert_eq!(j["documentKey"], json!({"_id": 1}));
    assert_eq!(j["updateDescription"]["removedFields"], json!(["x"]));
    assert!(s.try_next()?.is_none());
    Ok(())
}

#[test]
fn full_document_modes_and_event_filters() -> pocketdb::Result<()> {
    let db = Database::memory()?;
    let c = db.collection::<Value>("c");
    let mut lookup =
        c.watch_with(WatchOptions::default().full_document(FullDocument::UpdateLookup))?;
    let mut off = c.watch_with(WatchOptions::default().full_document(FullDocument::Off))?;
    let mut active = c.watch(json!({"fullDocument.status": "active"}))?;
    let mut deletes = c.watch(json!({"operationType": "delete"}))?;
    c.insert_one(json!({"_id": 1, "status": "idle"}))?;
    c.insert_one(json!({"_id": 2, "status": "active"}))?;
    c.update_one(json!({"_id": 1}), json!({"$set": {"k": 1}}))?;
    // documents are read when the event is dispatched: wait before deleting
    assert_eq!(next(&mut active).id, json!(2));
    c.delete_one(json!({"_id": 2}))?;
    let l: Vec<_> = (0..4).map(|_| next(&mut lookup)).collect();
    assert_eq!(
        l[2].full_document,
        Some(json!({"_id": 1, "status": "idle", "k": 1}))
    );
    let o: Vec<_> = (0..4).map(|_| next(&mut off)).collect();
    assert!(o.iter().all(|e| e.full_document.is_none()));
    assert_eq!(next(&mut deletes).id, json!(2));
    assert!(active.try_next()?.is_none());
    assert!(deletes.try_next()?.is_none());
    assert!(matches!(
        c.watch(json!({"$bogus": 1})),
        Err(Error::InvalidFilter { .. })
    ));
    Ok(())
}

#[test]
fn watch_from_resumes_without_gaps_or_duplicates_across_restarts() -> pocketdb::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("w.sqlite");
    let token;
    {
        let db = Database::open(&path)?;
        let c = db.collection::<Value>("c");
        let mut s = c.watch(json!({}))?;
        for i in 0..5 {
            c.insert_one(json!({"_id": i}))?;
        }
        for _ in 0..3 {
            next(&mut s);
        }
        token = s.resume_token();
        // two more happened that this consumer never saw
    }
    let db = Database::open(&path)?;
    let c = db.collection::<Value>("c");
    db.collection::<Value>("other")
        .insert_one(json!({"_id": "x"}))?;
    for i in 5..8 {
        c.insert_one(json!({"_id": i}))?;
    }
    let mut s = c.watch_from(token)?;
    let ids: Vec<Value> = (0..5).map(|_| next(&mut s).id).collect();
    assert_eq!(ids, [json!(3), json!(4), json!(5), json!(6), json!(7)]);
    // live events continue after the catch-up, no duplicates
    c.insert_one(json!({"_id": 8}))?;
    assert_eq!(next(&mut s).id, json!(8));
    assert!(s.try_next()?.is_none());
    // database-wide resume sees the other collection too
    let mut all = db.watch_from(token)?;
    let colls: Vec<String> = (0..6).map(|_| next(&mut all).collection).collect();
    assert_eq!(colls.iter().filter(|c| *c == "other").count(), 1);
    Ok(())
}

#[test]
fn writes_from_another_connection_are_seen() -> pocketdb::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("x.sqlite");
    let watcher = Database::open(&path)?;
    let writer = Database::open(&path)?; // separate handle: its commits do not wake us
    let mut s = watcher.collection::<Value>("c").watch(json!({}))?;
    writer
        .collection::<Value>("c")
        .insert_one(json!({"_id": "far"}))?;
    assert_eq!(next(&mut s).id, json!("far"));
    Ok(())
}

#[test]
fn concurrent_writers_arrive_in_commit_order() -> pocketdb::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Database::open(dir.path().join("t.sqlite"))?;
    let mut s = db.watch()?;
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let c = db.collection::<Value>("c");
            std::thread::spawn(move || {
                for i in 0..50 {
                    c.insert_one(json!({"t": t, "i": i}))?;
                }
                Ok::<(), Error>(())
            })
        })
        .collect();
    for t in threads {
        t.join()
            .map_err(|_| Error::InvalidArgument("thread panicked".into()))??;
    }
    let events: Vec<ChangeEvent> = (0..200).map(|_| next(&mut s)).collect();
    assert!(events.windows(2).all(|w| w[0].token + 1 == w[1].token));
    let log = db.changes_since(events[0].token - 1, 1000)?;
    assert_eq!(log.len(), 200);
    Ok(())
}

#[test]
fn a_slow_consumer_lags_with_a_resume_token_and_never_blocks_writers() -> pocketdb::Result<()> {
    let db = Database::memory()?;
    let c = db.collection::<Value>("c");
    let mut s = c.watch_with(WatchOptions::default().capacity(4))?;
    let mut sync = db.watch()?; // a second stream to know when dispatch happened
    for i in 0..20 {
        c.insert_one(json!({"_id": i}))?;
    }
    for _ in 0..20 {
        next(&mut sync);
    }
    let mut seen = Vec::new();
    let token = loop {
        match s.next_timeout(WAIT) {
            Ok(Some(e)) => seen.push(e.id),
            Err(Error::Lagged { resume_token }) => break resume_token,
            other => panic!("expected Lagged, got {other:?}"),
        }
    };
    assert_eq!(seen.len(), 4);
    assert!(
        s.next_timeout(Duration::ZERO)?.is_none(),
        "stream ends after Lagged"
    );
    let mut resumed = c.watch_from(token)?;
    for i in 4..20 {
        seen.push(next(&mut resumed).id);
        assert_eq!(seen[i], json!(i));
    }
    assert!(resumed.try_next()?.is_none());
    Ok(())
}

#[test]
fn callback_form_and_unsubscribe_on_drop() -> pocketdb::Result<()> {
    let db = Database::memory()?;
    let c = db.collection::<Value>("c");
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = c.on_change(WatchOptions::default(), move |e| {
        let _ = tx.send(e.map(|e| e.id));
    })?;
    c.insert_one(json!({"_id": "a"}))?;
    let got = rx
        .recv_timeout(WAIT)
        .map_err(|_| Error::InvalidArgument("no callback".into()))??;
    assert_eq!(got, json!("a"));
    drop(handle);
    // the callback thread ends: its sender is dropped
    let ended = rx.recv_timeout(WAIT);
    assert!(ended.is_err());
    Ok(())
}

#[test]
fn client_watch_spans_databases() -> pocketdb::Result<()> {
    let dir = tempfile::tempdir()?;
    let client = Client::open(dir.path())?;
    let a = client.database("a")?;
    let b = client.database("b")?;
    a.collection::<Value>("x").insert_one(json!({"_id": 0}))?;
    b.collection::<Value>("x").insert_one(json!({"_id": 0}))?;
    let mut s = client.watch()?;
    a.collection::<Value>("x").insert_one(json!({"_id": 1}))?;
    b.collection::<Value>("y").insert_one(json!({"_id": 2}))?;
    let mut got: Vec<(String, Value)> = (0..2)
        .map(|_| {
            let e = next(&mut s);
            (e.database, e.id)
        })
        .collect();
    got.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(
        got,
        [("a".to_string(), json!(1)), ("b".to_string(), json!(2))]
    );
    let tokens = s.resume_tokens();
    drop(s);
    b.collection::<Value>("y").insert_one(json!({"_id": 3}))?;
    let mut r = client.watch_with(WatchOptions::default(), &tokens)?;
    let e = next(&mut r);
    assert_eq!((e.database.as_str(), e.id), ("b", json!(3)));
    Ok(())
}

#[test]
fn retention_by_count_size_and_age() -> pocketdb::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("r.sqlite");
    let db = Database::open(&path)?;
    let c = db.collection::<Value>("c");
    for i in 0..10 {
        c.insert_one(json!({"_id": i}))?;
    }
    db.set_change_retention(ChangeRetention::default().max_count(4))?;
    assert_eq!(db.changes_since(0, 100)?.len(), 4);
    let oldest = db.oldest_resume_token()?;
    assert_eq!(oldest, 6);
    match c.watch_from(2) {
        Err(Error::ResumeTokenExpired {
            token,
            oldest_resumable,
        }) => assert_eq!((token, oldest_resumable), (2, 6)),
        other => panic!("expected ResumeTokenExpired, got {other:?}"),
    }
    let mut ok = c.watch_from(oldest)?;
    assert_eq!(next(&mut ok).token, 7);
    // applied automatically after writes (check_every commits), and kept in the file
    for i in 10..300 {
        c.insert_one(json!({"_id": i}))?;
    }
    assert!(db.changes_since(0, 1000)?.len() <= 4 + 100);
    drop(ok);
    drop(c);
    drop(db);
    let db = Database::open(&path)?;
    assert_eq!(db.change_retention().max_count, Some(4));
    db.set_change_retention(ChangeRetention::default().max_bytes(200))?;
    let kept = db.changes_since(0, 1000)?.len();
    assert!((1..=6).contains(&kept), "kept {kept}");
    db.set_change_retention(ChangeRetention::default().max_age(Duration::from_secs(3600)))?;
    assert_eq!(db.changes_since(0, 1000)?.len(), kept);
    std::thread::sleep(Duration::from_millis(5));
    db.set_change_retention(ChangeRetention::default().max_age(Duration::ZERO))?;
    assert_eq!(db.changes_since(0, 1000)?.len(), 0);
    Ok(())
}

#[test]
fn group_commit_and_buffered_writes_arrive_once_committed() -> pocketdb::Result<()> {
    use pocketdb::engine::{BufferOptions, Durability};
    // Buffered writes are delivered once the applier commits them.
    for durability in [
        Durability::GroupCommit,
        Durability::Buffered(BufferOptions::default()),
    ] {
        let dir = tempfile::tempdir()?;
        let db = Database::open_with(
            dir.path().join("d.sqlite"),
            pocketdb::Options::default().durability(durability.clone()),
        )?;
        let c = db.collection::<Value>("c");
        let mut s = c.watch(json!({}))?;
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for i in 0..25 {
                        c.insert_one(json!({"_id": t * 100 + i}))?;
                    }
                    Ok::<(), Error>(())
                })
            })
            .collect();
        for t in threads {
            t.join()
                .map_err(|_| Error::InvalidArgument("thread panicked".into()))??;
        }
        let mut events: Vec<ChangeEvent> = Vec::new();
        while events.len() < 100 {
            match s.next_timeout(WAIT)? {
                Some(e) => events.push(e),
                None => panic!(
                    "{durability:?}: {} events, log has {}",
                    events.len(),
                    db.changes_since(0, 1000)?.len()
                ),
            }
        }
        assert!(events.windows(2).all(|w| w[0].token < w[1].token));
        let ids: HashSet<String> = events.iter().map(|e| e.id.to_string()).collect();
        assert_eq!(ids.len(), 100);
    }
    Ok(())
}

/// A token past the end of the log (another file's, or a newer history's) is refused:
/// it was accepted and the stream skipped every change up to it.
#[test]
fn a_token_past_the_end_of_the_log_is_refused() {
    let db = Database::memory().unwrap();
    let c = db.collection::<Value>("c");
    c.insert_one(json!({"_id": 0})).unwrap();
    let end = db.last_change_seq().unwrap();
    assert!(matches!(
        c.watch_from(end + 3),
        Err(Error::ResumeTokenNotFound { token, newest }) if token == end + 3 && newest == end
    ));
    // The end itself resumes: the next write comes.
    let mut stream = c.watch_from(end).unwrap();
    c.insert_one(json!({"_id": 1})).unwrap();
    assert_eq!(next(&mut stream).id, json!(1));
}
