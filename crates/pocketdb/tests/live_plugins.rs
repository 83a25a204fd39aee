//! Live queries and change streams through plugins: filters pass `before_read` (a
//! deterministic-encrypted field is queried by its ciphertext), documents delivered pass
//! `after_read` (they come out decrypted), for the initial result, for incremental
//! patches and for change events.

use pocketdb::plugin::{Encryption, EncryptionKey};
use pocketdb::{Database, Error, FullDocument, LiveHandle, LiveQuery, LiveUpdate, WatchOptions};
use serde_json::{json, Value};
use std::sync::mpsc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

fn encryption(b: u8) -> pocketdb::Result<Encryption> {
    Encryption::new(&EncryptionKey::from_bytes([b; 32]))?
        .field("ssn")?
        .deterministic_field("team")
}

fn person(id: i64, team: &str, score: i64) -> Value {
    json!({"_id": id, "team": team, "ssn": format!("ssn-{id}"), "score": score})
}

fn next(h: &mut LiveHandle<Value>) -> LiveUpdate<Value> {
    match h.next_timeout(WAIT) {
        Ok(Some(u)) => u,
        other => panic!("expected an update, got {other:?}"),
    }
}

fn ids(docs: &[Value]) -> Vec<i64> {
    docs.iter().filter_map(|d| d["_id"].as_i64()).collect()
}

/// Every delivered document is decrypted and matches the caller's (plaintext) filter.
fn assert_plain(docs: &[Value], team: &str) {
    for d in docs {
        assert_eq!(d["team"], team, "{d}");
        let id = d["_id"].as_i64().unwrap_or_default();
        assert_eq!(d["ssn"], format!("ssn-{id}"), "{d}");
    }
}

#[test]
fn live_query_on_a_deterministic_encrypted_field() -> pocketdb::Result<()> {
    let db = Database::memory()?;
    db.register_collection_plugin("people", encryption(1)?)?;
    let people = db.collection::<Value>("people");
    people.insert_many([
        person(1, "red", 10),
        person(2, "blue", 20),
        person(3, "red", 30),
    ])?;

    let mut live = people.live(LiveQuery::new(json!({"team": "red"})))?;
    let first = next(&mut live);
    assert_eq!(ids(&first.results), [1, 3]);
    assert_plain(&first.results, "red");
    assert_eq!(first.diff.added.len(), 2);
    assert_plain(
        &first
            .diff
            .added
            .iter()
            .map(|a| a.document.clone())
            .collect::<Vec<_>>(),
        "red",
    );

    // an insert that matches enters, decrypted; one that does not is not seen
    people.insert_one(person(4, "red", 40))?;
    people.insert_one(person(5, "blue", 50))?;
    let u = next(&mut live);
    assert_eq!(ids(&u.results), [1, 3, 4]);
    assert_eq!(u.diff.added.len(), 1);
    assert_eq!(u.diff.added[0].id, json!(4));
    assert_eq!(u.diff.added[0].document, person(4, "red", 40));
    assert_plain(&u.results, "red");

    // an update moving a document into the team (written in plaintext, stored encrypted)
    people.update_one(json!({"_id": 2}), json!({"$set": {"team": "red"}}))?;
    let u = next(&mut live);
    assert_eq!(ids(&u.results), [1, 2, 3, 4]);
    assert_eq!(u.diff.added[0].document, person(2, "red", 20));

    // an update of another field of a held document is a change, decrypted
    people.update_one(
        json!({"team": "red", "_id": 3}),
        json!({"$set": {"score": 31}}),
    )?;
    let u = next(&mut live);
    assert_eq!(u.diff.changed.len(), 1);
    assert_eq!(u.diff.changed[0].document, person(3, "red", 31));

    // leaving the team, and a delete
    people.update_one(json!({"_id": 1}), json!({"$set": {"team": "blue"}}))?;
    people.delete_one(json!({"_id": 4}))?;
    live.sync(WAIT)?;
    let mut last = None;
    while let Some(u) = live.try_next()? {
        last = Some(u);
    }
    let current = live.current()?;
    assert_eq!(ids(&current), [2, 3]);
    assert_plain(&current, "red");
    if let Some(u) = last {
        assert_eq!(ids(&u.results), [2, 3]);
    }

    // the live result equals a fresh find with the same filter
    let found = people.find(json!({"team": "red"}))?.to_vec()?;
    assert_eq!(found, current);
    assert_eq!(live.stats().runs, 1, "maintained without re-running");
    Ok(())
}

#[test]
fn live_query_sorted_on_a_clear_field_over_encrypted_documents() -> pocketdb::Result<()> {
    let db = Database::memory()?;
    db.register_collection_plugin("people", encryption(2)?)?;
    let people = db.collection::<Value>("people");
    people
        .insert_many((1..=8).map(|i| person(i, if i % 2 == 0 { "red" } else { "blue" }, i * 10)))?;

    let mut live = people.live(
        LiveQuery::new(json!({"team": {"$in": ["red", "green"]}}))
            .sort(json!({"score": -1}))
            .limit(3),
    )?;
    let first = next(&mut live);
    assert_eq!(ids(&first.results), [8, 6, 4]);
    assert_plain(&first.results, "red");

    people.insert_one(person(20, "green", 65))?;
    let u = next(&mut live);
    assert_eq!(ids(&u.results), [8, 20, 6]);
    assert_eq!(u.results[1]["ssn"], "ssn-20");
    assert_eq!(u.diff.removed.len(), 1);
    assert_eq!(u.diff.removed[0].id, json!(4));
    assert_eq!(u.diff.removed[0].document, person(4, "red", 40));

    // the top one leaves: the held buffer refills the window, still decrypted
    people.delete_one(json!({"_id": 8}))?;
    let u = next(&mut live);
    assert_eq!(ids(&u.results), [20, 6, 4]);
    assert_eq!(u.results[2], person(4, "red", 40));

    // a score change moves a document within the window
    people.update_one(json!({"_id": 4}), json!({"$set": {"score": 100}}))?;
    let u = next(&mut live);
    assert_eq!(ids(&u.results), [4, 20, 6]);
    assert_eq!(u.diff.moved.len(), 1);
    assert_eq!(u.results[0], person(4, "red", 100));

    let mut expected = people
        .find(json!({"team": {"$in": ["red", "green"]}}))?
        .sort(json!({"score": -1}))
        .limit(3)
        .to_vec()?;
    assert_eq!(live.current()?, std::mem::take(&mut expected));
    Ok(())
}

#[test]
fn fluent_live_queries_pass_the_plugins_too() -> pocketdb::Result<()> {
    let db = Database::memory()?;
    db.register_collection_plugin("people", encryption(3)?)?;
    let people = db.collection::<Value>("people");
    people.insert_many([person(1, "red", 1), person(2, "blue", 2)])?;
    let mut live = people.query().where_("team").eq("blue").live()?;
    let first = next(&mut live);
    assert_eq!(first.results, [person(2, "blue", 2)]);
    // a filter the plugin rejects (range on an encrypted field) fails at open
    assert!(matches!(
        people.live(LiveQuery::new(json!({"team": {"$gt": "a"}}))),
        Err(Error::InvalidFilter { .. })
    ));
    assert!(matches!(
        people.live(LiveQuery::new(json!({"ssn": "ssn-1"}))),
        Err(Error::InvalidFilter { .. })
    ));
    Ok(())
}

#[test]
fn live_query_reports_a_document_it_cannot_decrypt() -> pocketdb::Result<()> {
    let dir = tempfile::tempdir().map_err(Error::from)?;
    let path = dir.path().join("p.sqlite");
    let db = Database::open(&path)?;
    db.register_collection_plugin("people", encryption(4)?)?;
    let people = db.collection::<Value>("people");
    people.insert_one(person(1, "red", 1))?;
    let mut live = people.live(LiveQuery::new(json!({"score": {"$gte": 0}})))?;
    assert_eq!(next(&mut live).results, [person(1, "red", 1)]);

    // another handle writes under another key
    let other = Database::open(&path)?;
    other.register_collection_plugin("people", encryption(5)?)?;
    other
        .collection::<Value>("people")
        .insert_one(person(2, "red", 2))?;
    let mut failed = false;
    for _ in 0..50 {
        match live.next_timeout(Duration::from_millis(200)) {
            Err(Error::Decryption(_)) => {
                failed = true;
                break;
            }
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => {}
        }
    }
    assert!(failed, "the undecryptable document is reported");
    // the result keeps what it could read
    assert_eq!(live.current()?, [person(1, "red", 1)]);
    Ok(())
}

#[test]
fn change_stream_documents_come_out_decrypted() -> pocketdb::Result<()> {
    let db = Database::memory()?;
    db.register_collection_plugin("people", encryption(6)?)?;
    let people = db.collection::<Value>("people");
    let mut stream = people.watch_with(
        WatchOptions::default()
            .full_document(FullDocument::UpdateLookup)
            // the event filter sees the decrypted document
            .filter(json!({"fullDocument.ssn": {"$in": ["ssn-1", "ssn-2"]}})),
    )?;
    // (one write at a time: an update's document is looked up when it is dispatched)
    people.insert_one(person(1, "red", 1))?;
    people.insert_one(person(3, "red", 3))?; // filtered out
    let first = stream.next_timeout(WAIT)?.expect("insert");
    assert_eq!(first.full_document, Some(person(1, "red", 1)));
    people.update_one(json!({"_id": 1}), json!({"$set": {"score": 5}}))?;
    let second = stream.next_timeout(WAIT)?.expect("update");
    assert_eq!(second.full_document, Some(person(1, "red", 5)));
    people.replace_one(json!({"_id": 1}), person(1, "blue", 9))?;
    let third = stream.next_timeout(WAIT)?.expect("replace");
    assert_eq!(third.full_document, Some(person(1, "blue", 9)));
    assert!(stream.next_timeout(Duration::from_millis(300))?.is_none());

    // resuming (catch-up read from the log) decrypts too
    let mut resumed = people.watch_with(
        WatchOptions::default()
            .full_document(FullDocument::UpdateLookup)
            .resume_after(0),
    )?;
    let mut docs = Vec::new();
    while let Some(ev) = resumed.next_timeout(Duration::from_millis(300))? {
        docs.extend(ev.full_document);
    }
    assert!(!docs.is_empty());
    for d in &docs {
        let id = d["_id"].as_i64().unwrap_or_default();
        assert_eq!(d["ssn"], format!("ssn-{id}"), "{d}");
    }

    // the callback form too
    let (tx, rx) = mpsc::channel();
    let _handle = people.on_change(WatchOptions::default(), move |ev| {
        let _ = tx.send(ev.map(|e| e.full_document));
    })?;
    people.insert_one(person(7, "red", 7))?;
    let got = rx
        .recv_timeout(WAIT)
        .map_err(|e| Error::InvalidArgument(e.to_string()))??;
    assert_eq!(got, Some(person(7, "red", 7)));
    Ok(())
}

#[test]
fn callback_gets_a_decryption_error_and_goes_on() -> pocketdb::Result<()> {
    let dir = tempfile::tempdir().map_err(Error::from)?;
    let path = dir.path().join("p.sqlite");
    let db = Database::open(&path)?;
    db.register_collection_plugin("people", encryption(8)?)?;
    let people = db.collection::<Value>("people");
    let (tx, rx) = mpsc::channel();
    let _handle = people.on_change(WatchOptions::default(), move |ev| {
        let _ = tx.send(ev.map(|e| e.full_document));
    })?;
    // written by another handle under another key: this handle cannot read it
    let other = Database::open(&path)?;
    other.register_collection_plugin("people", encryption(9)?)?;
    other
        .collection::<Value>("people")
        .insert_one(person(1, "red", 1))?;
    let first = rx
        .recv_timeout(WAIT)
        .map_err(|e| Error::InvalidArgument(e.to_string()))?;
    assert!(matches!(first, Err(Error::Decryption(_))), "{first:?}");
    // delivery goes on with the next event
    people.insert_one(person(2, "red", 2))?;
    let second = rx
        .recv_timeout(WAIT)
        .map_err(|e| Error::InvalidArgument(e.to_string()))??;
    assert_eq!(second, Some(person(2, "red", 2)));
    Ok(())
}
