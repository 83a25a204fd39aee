//! The README's change-stream, live-query and plugin examples, verbatim (kept in sync
//! by `readme_examples_are_current`).

#[test]
fn readme_change_streams() -> Result<(), Box<dyn std::error::Error>> {
    use pocketdb::{ChangeRetention, Database, FullDocument, WatchOptions};
    use serde_json::{json, Value};
    use std::time::Duration;

    let db = Database::memory()?;
    let users = db.collection::<Value>("users");
    let mut stream = users.watch(json!({"operationType": "insert"}))?; // {} for every event
    users.insert_one(json!({"_id": 1, "name": "Ada"}))?;
    let event = stream
        .next_timeout(Duration::from_secs(5))?
        .expect("an event");
    assert_eq!(event.full_document, Some(json!({"_id": 1, "name": "Ada"})));
    let token = event.token; // keep it: resume right after this event, even after a restart
    users.insert_one(json!({"_id": 2}))?;
    let mut resumed = users.watch_from(token)?;
    assert_eq!(
        resumed.next_timeout(Duration::from_secs(5))?.map(|e| e.id),
        Some(json!(2))
    );
    // Updates with the document as of dispatch (MongoDB's updateLookup), from a token:
    let _all = db.watch_with(
        WatchOptions::default()
            .full_document(FullDocument::UpdateLookup)
            .resume_after(0),
    )?;
    db.set_change_retention(ChangeRetention::default().max_count(100_000))?;
    Ok(())
}

#[test]
fn readme_live_queries() -> Result<(), Box<dyn std::error::Error>> {
    use pocketdb::{Database, LiveQuery};
    use serde_json::{json, Value};
    use std::time::Duration;

    let db = Database::memory()?;
    let tasks = db.collection::<Value>("tasks");
    tasks.insert_one(json!({"_id": 1, "title": "write", "prio": 2, "done": false}))?;
    let mut live = tasks.live(
        LiveQuery::new(json!({"done": false}))
            .sort(json!({"prio": -1}))
            .limit(10)
            .coalesce(Duration::from_millis(20)), // a burst of writes → one notification
    )?;
    let first = live
        .next_timeout(Duration::from_secs(5))?
        .expect("initial result");
    assert_eq!(first.results.len(), 1); // the first notification: everything `added`
    tasks.insert_one(json!({"_id": 2, "title": "test", "prio": 5, "done": false}))?;
    let update = live
        .next_timeout(Duration::from_secs(5))?
        .expect("an update");
    assert_eq!(update.results[0]["_id"], 2);
    assert_eq!(update.diff.added[0].index, 0); // also diff.removed, .changed, .moved
    Ok(())
}

#[test]
fn readme_plugins() -> Result<(), Box<dyn std::error::Error>> {
    use pocketdb::plugin::{Encryption, EncryptionKey, Metric, Timestamps, VectorField};
    use pocketdb::Database;
    use serde_json::{json, Value};

    let db = Database::memory()?;
    // created_at / updated_at on every write (RFC 3339 UTC strings with milliseconds)
    db.register_plugin(Timestamps::default())?;
    // Field-level encryption: "ssn" with random nonces, "email" deterministic (queryable by
    // equality, and so leaks which documents share a value).
    let key = EncryptionKey::from_passphrase(&db, "correct horse battery staple")?;
    let enc = Encryption::new(&key)?
        .field("ssn")?
        .deterministic_field("email")?;
    db.register_collection_plugin("users", enc.clone())?;
    // A vector field of dimension 3, checked on every write.
    db.register_collection_plugin("users", VectorField::new("embedding", 3)?)?;

    let users = db.collection::<Value>("users");
    users.insert_many([
        json!({"_id": 1, "email": "ada@example.com", "ssn": "123", "embedding": [0.1, 0.9, 0.0]}),
        json!({"_id": 2, "email": "bob@example.com", "ssn": "987", "embedding": [0.8, 0.2, 0.1]}),
    ])?;
    let ada = users.find_one(json!({"email": "ada@example.com"}))?;
    assert_eq!(ada.map(|d| d["ssn"].clone()), Some(json!("123"))); // ciphertext on disk
    let nearest = users.near("embedding", &[1.0, 0.0, 0.0], 1, Metric::Cosine, json!({}))?;
    assert_eq!(nearest[0].document["_id"], 2);
    // Re-encrypt every document under a new key, 1,000 per transaction.
    let report = enc.rotate_key(&users, &EncryptionKey::generate())?;
    assert_eq!(report.rewritten, 2);
    Ok(())
}

#[test]
fn readme_examples_are_current() {
    let readme = include_str!("../../../README.md");
    let squash = |s: &str| s.split_whitespace().collect::<String>();
    let this = squash(include_str!("encryption_readme.rs"));
    let start = readme.find("## Change streams").unwrap_or(0);
    let end = readme.find("## Command line").unwrap_or(readme.len());
    let section = &readme[start..end];
    let blocks: Vec<&str> = section
        .split("```rust\n")
        .skip(1)
        .filter_map(|s| s.split("```").next())
        .collect();
    assert_eq!(blocks.len(), 3);
    for line in blocks.iter().flat_map(|b| b.lines()) {
        if line.trim().is_empty() {
            continue;
        }
        assert!(
            this.contains(&squash(line)),
            "README line missing from tests/encryption_readme.rs: {line}"
        );
    }
}
