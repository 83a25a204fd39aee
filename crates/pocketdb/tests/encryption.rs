//! Field-level encryption: round trips, ciphertext on disk, wrong keys, deterministic
//! equality queries, rejected queries, updates, key rotation (including an interrupted
//! one) and passphrase keys.

use pocketdb::plugin::{Encryption, EncryptionKey, Plugin, WriteContext};
use pocketdb::{Database, Error, IndexOptions};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

fn key(b: u8) -> EncryptionKey {
    EncryptionKey::from_bytes([b; 32])
}

fn plugin(k: &EncryptionKey) -> pocketdb::Result<Encryption> {
    Encryption::new(k)?
        .field("ssn")?
        .field("profile.secret")?
        .field("cards.number")?
        .deterministic_field("email")
}

fn raw_docs(db: &Database, coll: &str) -> pocketdb::Result<Vec<String>> {
    let rows = db.sql(
        &format!("SELECT json(doc) AS doc FROM \"c_{coll}\" ORDER BY rid"),
        &[],
    )?;
    Ok(rows
        .iter()
        .map(|r| r["doc"].as_str().unwrap_or_default().to_string())
        .collect())
}

fn sample(id: i64) -> Value {
    json!({
        "_id": id,
        "name": format!("user {id}"),
        "email": format!("u{id}@example.com"),
        "ssn": format!("secret-ssn-{id}"),
        "profile": {"age": 30 + id, "secret": {"pin": 1234, "words": ["alpha", "beta"]}},
        "cards": [{"number": "4111-1111-1111-1111", "kind": "visa"}, {"number": 5500, "kind": "mc"}],
    })
}

#[test]
fn round_trip_and_ciphertext_on_disk() -> pocketdb::Result<()> {
    let db = Database::memory()?;
    db.register_collection_plugin("users", plugin(&key(1))?)?;
    let users = db.collection::<Value>("users");
    users.insert_one(sample(1))?;
    users.insert_one(json!({"_id": 2, "ssn": null, "email": "x@y"}))?;

    let doc = users.find_one(json!({"_id": 1}))?.expect("stored");
    assert_eq!(doc, sample(1), "every type and nested path round-trips");
    let doc2 = users.find_one(json!({"_id": 2}))?.expect("stored");
    assert_eq!(doc2["ssn"], Value::Null);

    let raw = raw_docs(&db, "users")?;
    for secret in [
        "secret-ssn-1",
        "u1@example.com",
        "alpha",
        "1234",
        "4111-1111",
        "5500",
    ] {
        assert!(
            !raw[0].contains(secret),
            "{secret} is on disk in the clear: {}",
            raw[0]
        );
    }
    let stored: Value = serde_json::from_str(&raw[0])?;
    assert!(stored["ssn"]
        .as_str()
        .is_some_and(|s| s.starts_with("enc:v1:")));
    assert!(stored["profile"]["secret"]
        .as_str()
        .is_some_and(|s| s.starts_with("enc:v1:")));
    assert!(stored["cards"][1]["number"]
        .as_str()
        .is_some_and(|s| s.starts_with("enc:v1:")));
    // The rest stays in the clear and queryable.
    assert_eq!(stored["name"], "user 1");
    assert_eq!(stored["profile"]["age"], 31);
    assert_eq!(stored["cards"][0]["kind"], "visa");
    assert_eq!(
        users.count_documents(json!({"profile.age": {"$gt": 30}}))?,
        1
    );
    Ok(())
}

#[test]
fn random_nonces_differ_deterministic_ones_do_not() -> pocketdb::Result<()> {
    let db = Database::memory()?;
    db.register_collection_plugin("users", plugin(&key(1))?)?;
    let users = db.collection::<Value>("users");
    users.insert_one(json!({"_id": 1, "ssn": "same", "email": "same"}))?;
    users.insert_one(json!({"_id": 2, "ssn": "same", "email": "same"}))?;
    let raw: Vec<Value> = raw_docs(&db, "users")?
        .iter()
        .map(|s| serde_json::from_str(s))
        .collect::<Result<_, _>>()?;
    assert_ne!(raw[0]["ssn"], raw[1]["ssn"]);
    assert_eq!(raw[0]["email"], raw[1]["email"]);
    Ok(())
}

#[test]
fn wrong_key_is_a_typed_error_never_garbage() -> pocketdb::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("enc.sqlite");
    {
        let db = Database::open(&path)?;
        db.register_collection_plugin("users", plugin(&key(1))?)?;
        db.collection::<Value>("users").insert_one(sample(1))?;
    }
    let db = Database::open(&path)?;
    db.register_collection_plugin("users", plugin(&key(2))?)?;
    let users = db.collection::<Value>("users");
    match users.find_one(json!({"_id": 1})) {
        Err(Error::Decryption(msg)) => assert!(msg.contains("not configured"), "{msg}"),
        other => panic!("expected a decryption error, got {other:?}"),
    }
    // An update under the wrong key is refused instead of double-encrypting.
    let before = raw_docs(&db, "users")?;
    match users.update_one(json!({"_id": 1}), json!({"$set": {"name": "x"}})) {
        Err(Error::Decryption(_)) => {}
        other => panic!("expected a decryption error, got {other:?}"),
    }
    assert_eq!(raw_docs(&db, "users")?, before);
    // Without the plugin, the stored ciphertext is what comes back.
    let plain = Database::open(&path)?;
    let doc = plain
        .collection::<Value>("users")
        .find_one(json!({"_id": 1}))?
        .expect("stored");
    assert!(doc["ssn"]
        .as_str()
        .is_some_and(|s| s.starts_with("enc:v1:")));
    Ok(())
}

#[test]
fn tampered_or_moved_ciphertext_fails_to_decrypt() -> pocketdb::Result<()> {
    let db = Database::memory()?;
    db.register_collection_plugin("users", plugin(&key(1))?)?;
    let users = db.collection::<Value>("users");
    users.insert_one(sample(1))?;
    // Move the ssn ciphertext into the email field: authenticated with its path, so
    // it does not decrypt there.
    db.sql_write(
        "UPDATE c_users SET doc = jsonb_set(doc, '$.email', doc ->> '$.ssn')",
        &[],
    )?;
    assert!(matches!(
        users.find_one(json!({"_id": 1})),
        Err(Error::Decryption(_))
    ));
    // Flip a character of the ciphertext.
    users.insert_one(json!({"_id": 2, "ssn": "abc"}))?;
    let rows = db.sql(
        "SELECT doc ->> '$.ssn' AS s FROM c_users WHERE doc ->> '$._id' = 2",
        &[],
    )?;
    let mut chars: Vec<char> = rows[0]["s"].as_str().unwrap_or_default().chars().collect();
    assert!(chars.len() > 20);
    let at = chars.len() - 3;
    chars[at] = if chars[at] == 'A' { 'B' } else { 'A' };
    let forged: String = chars.into_iter().collect();
    db.sql_write(
        "UPDATE c_users SET doc = jsonb_set(doc, '$.ssn', ?1) WHERE doc ->> '$._id' = 2",
        &[json!(forged)],
    )?;
    assert!(matches!(
        users.find_one(json!({"_id": 2})),
        Err(Error::Decryption(_))
    ));
    Ok(())
}

#[test]
fn deterministic_equality_queries() -> pocketdb::Result<()> {
    let db = Database::memory()?;
    db.register_collection_plugin("users", plugin(&key(1))?)?;
    let users = db.collection::<Value>("users");
    users.insert_many((1..=20).map(sample))?;
    users.insert_one(json!({"_id": 100, "email": null}))?;
    users.insert_one(json!({"_id": 101}))?;

    let found = users.find(json!({"email": "u7@example.com"}))?.to_vec()?;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["_id"], 7);
    assert_eq!(found[0]["ssn"], "secret-ssn-7");

    let ids = |filter: Value| -> pocketdb::Result<Vec<i64>> {
        let mut ids: Vec<i64> = users
            .find(filter)?
            .to_vec()?
            .iter()
            .filter_map(|d| d["_id"].as_i64())
            .collect();
        ids.sort_unstable();
        Ok(ids)
    };
    assert_eq!(ids(json!({"email": {"$eq": "u3@example.com"}}))?, vec![3]);
    assert_eq!(
        ids(json!({"email": {"$in": ["u3@example.com", "u5@example.com", "nobody"]}}))?,
        vec![3, 5]
    );
    assert_eq!(
        ids(json!({"$or": [{"email": "u1@example.com"}, {"name": "user 2"}]}))?,
        vec![1, 2]
    );
    assert_eq!(
        users.count_documents(json!({"email": {"$ne": "u1@example.com"}}))?,
        21
    );
    assert_eq!(
        users.count_documents(json!({"email": {"$nin": ["u1@example.com", "u2@example.com"]}}))?,
        20
    );
    // null matches the stored (encrypted) null and the missing field, as in MongoDB.
    assert_eq!(ids(json!({"email": null}))?, vec![100, 101]);
    assert_eq!(ids(json!({"ssn": {"$exists": false}}))?, vec![100, 101]);

    // distinct and find-and-modify decrypt too.
    let emails = users.distinct("email", json!({"_id": {"$lte": 3}}))?;
    assert_eq!(
        emails,
        vec![
            json!("u1@example.com"),
            json!("u2@example.com"),
            json!("u3@example.com")
        ]
    );
    let before = users.find_one_and_update(
        json!({"email": "u8@example.com"}),
        json!({"$set": {"ssn": "new-8"}}),
        &pocketdb::FindOneAndModifyOptions::default(),
    )?;
    assert_eq!(before.expect("matched")["ssn"], "secret-ssn-8");

    // An index on the deterministic field serves equality.
    users.create_index(json!({"email": 1}), IndexOptions::default().unique(true))?;
    assert_eq!(ids(json!({"email": "u9@example.com"}))?, vec![9]);
    assert!(matches!(
        users.insert_one(json!({"email": "u9@example.com"})),
        Err(Error::DuplicateKey { .. })
    ));

    // Writes by filter go through the rewrite too.
    let r = users.update_one(
        json!({"email": "u4@example.com"}),
        json!({"$set": {"name": "four"}}),
    )?;
    assert_eq!(r.modified_count, 1);
    assert_eq!(
        users
            .delete_many(json!({"email": {"$in": ["u5@example.com", "u6@example.com"]}}))?
            .deleted_count,
        2
    );
    // An upsert seeded from the rewritten filter is not encrypted twice.
    users.update_one_with(
        json!({"email": "new@example.com"}),
        json!({"$set": {"ssn": "n"}}),
        &pocketdb::UpdateOptions {
            upsert: true,
            ..Default::default()
        },
    )?;
    let new = users
        .find_one(json!({"email": "new@example.com"}))?
        .expect("upserted");
    assert_eq!(new["email"], "new@example.com");
    assert_eq!(new["ssn"], "n");
    Ok(())
}

#[test]
fn unsupported_queries_on_encrypted_fields_are_rejected() -> pocketdb::Result<()> {
    let db = Database::memory()?;
    db.register_collection_plugin("users", plugin(&key(1))?)?;
    let users = db.collection::<Value>("users");
    users.insert_one(sample(1))?;
    let rejected = [
        json!({"email": {"$gt": "a"}}),
        json!({"email": {"$regex": "^u1"}}),
        json!({"email": {"$not": {"$eq": "x"}}}),
        json!({"ssn": "secret-ssn-1"}),
        json!({"ssn": {"$in": ["secret-ssn-1"]}}),
        json!({"ssn": {"$lte": "z"}}),
        json!({"$and": [{"name": "user 1"}, {"ssn": {"$gte": "a"}}]}),
        json!({"profile.secret.pin": 1234}),
        json!({"profile": {"age": 31, "secret": {"pin": 1234}}}),
        json!({"cards": {"$elemMatch": {"number": 5500}}}),
    ];
    for filter in rejected {
        match users.find(filter.clone()) {
            Err(Error::InvalidFilter { message, .. }) => {
                assert!(message.contains("encrypted"), "{filter}: {message}")
            }
            other => panic!("{filter}: expected InvalidFilter, got {other:?}"),
        }
        assert!(matches!(
            users.count_documents(filter.clone()),
            Err(Error::InvalidFilter { .. })
        ));
    }
    // $exists is fine on every encrypted field.
    assert_eq!(users.count_documents(json!({"ssn": {"$exists": true}}))?, 1);
    assert_eq!(users.count_documents(json!({"profile.age": 31}))?, 1);
    Ok(())
}

#[test]
fn updates_keep_or_encrypt_fields() -> pocketdb::Result<()> {
    let db = Database::memory()?;
    db.register_collection_plugin("users", plugin(&key(1))?)?;
    let users = db.collection::<Value>("users");
    users.insert_one(sample(1))?;
    let before: Value = serde_json::from_str(&raw_docs(&db, "users")?[0])?;
    users.update_one(json!({"_id": 1}), json!({"$set": {"name": "renamed"}}))?;
    let after: Value = serde_json::from_str(&raw_docs(&db, "users")?[0])?;
    assert_eq!(
        before["ssn"], after["ssn"],
        "an untouched ciphertext is kept as is"
    );

    users.update_one(
        json!({"_id": 1}),
        json!({"$set": {"ssn": "changed", "profile.secret": [1, 2]}}),
    )?;
    let doc = users.find_one(json!({"_id": 1}))?.expect("stored");
    assert_eq!(doc["ssn"], "changed");
    assert_eq!(doc["profile"]["secret"], json!([1, 2]));
    assert_eq!(doc["name"], "renamed");
    assert!(!raw_docs(&db, "users")?[0].contains("changed"));

    // Operators computing from a value see the plaintext: `$inc` on a string is the
    // update engine's typed error, as without encryption.
    assert!(matches!(
        users.update_one(json!({"_id": 1}), json!({"$inc": {"ssn": 1}})),
        Err(Error::InvalidUpdate { .. })
    ));
    users.replace_one(json!({"_id": 1}), json!({"ssn": "replaced"}))?;
    let doc = users.find_one(json!({"_id": 1}))?.expect("stored");
    assert_eq!(doc, json!({"_id": 1, "ssn": "replaced"}));
    Ok(())
}

#[test]
fn setting_an_encrypted_field_to_its_value_modifies_nothing() -> pocketdb::Result<()> {
    let db = Database::memory()?;
    db.register_collection_plugin("users", plugin(&key(1))?)?;
    let users = db.collection::<Value>("users");
    users.insert_one(sample(1))?;
    let before = raw_docs(&db, "users")?;
    // `ssn` (random nonce), `email` (deterministic), `profile.secret` (a document).
    for set in [
        json!({"ssn": "secret-ssn-1"}),
        json!({"email": "u1@example.com"}),
        json!({"profile.secret": {"pin": 1234, "words": ["alpha", "beta"]}}),
        json!({"ssn": "secret-ssn-1", "email": "u1@example.com", "name": "user 1"}),
    ] {
        let r = users.update_one(json!({"_id": 1}), json!({"$set": set.clone()}))?;
        assert_eq!((r.matched_count, r.modified_count), (1, 0), "{set}");
        let r = users.update_many(json!({}), json!({"$set": set.clone()}))?;
        assert_eq!((r.matched_count, r.modified_count), (1, 0), "{set}");
    }
    assert_eq!(
        raw_docs(&db, "users")?,
        before,
        "the stored ciphertexts are kept"
    );
    // Another value, even an equal number of another type, is a change.
    let r = users.update_one(json!({"_id": 1}), json!({"$set": {"ssn": "other"}}))?;
    assert_eq!(r.modified_count, 1);
    let r = users.update_one(
        json!({"_id": 1}),
        json!({"$set": {"profile.secret": {"pin": 1234.0, "words": ["alpha", "beta"]}}}),
    )?;
    assert_eq!(r.modified_count, 1);
    // So is the same document with its fields in another order.
    let r = users.update_one(
        json!({"_id": 1}),
        json!({"$set": {"profile.secret": {"words": ["alpha", "beta"], "pin": 1234.0}}}),
    )?;
    assert_eq!(r.modified_count, 1);
    let doc = users.find_one(json!({"_id": 1}))?.expect("stored");
    assert_eq!(doc["ssn"], "other");
    assert_eq!(doc["profile"]["secret"]["pin"], json!(1234.0));
    Ok(())
}

/// Rejects writes while armed: interrupts a rotation part-way.
struct Tripwire(Arc<AtomicBool>);

impl Plugin for Tripwire {
    fn name(&self) -> &str {
        "tripwire"
    }
    fn before_write(&self, _ctx: &WriteContext<'_>, doc: &mut Value) -> pocketdb::Result<()> {
        if self.0.load(Ordering::SeqCst) && doc["_id"].as_i64().is_some_and(|id| id > 1500) {
            return Err(Error::Plugin {
                plugin: "tripwire".into(),
                message: "simulated crash".into(),
            });
        }
        Ok(())
    }
}

fn all_readable(db: &Database, n: usize) -> pocketdb::Result<()> {
    let users = db.collection::<Value>("users");
    let docs = users.find(json!({}))?.sort(json!({"_id": 1})).to_vec()?;
    assert_eq!(docs.len(), n);
    for (i, d) in docs.iter().enumerate() {
        assert_eq!(d, &sample(i as i64 + 1));
    }
    Ok(())
}

#[test]
fn key_rotation_interrupted_then_resumed() -> pocketdb::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("rot.sqlite");
    let (old, new) = (key(1), key(2));
    let n = 2500;
    {
        let db = Database::open(&path)?;
        db.register_collection_plugin("users", plugin(&old)?)?;
        db.collection::<Value>("users")
            .insert_many((1..=n as i64).map(sample))?;
    }
    {
        // Rotation dies after the first batch of 1,000 committed.
        let db = Database::open(&path)?;
        let enc = plugin(&old)?;
        let armed = Arc::new(AtomicBool::new(true));
        db.register_collection_plugin("users", enc.clone())?;
        db.register_collection_plugin("users", Tripwire(armed.clone()))?;
        let users = db.collection::<Value>("users");
        assert!(matches!(
            enc.rotate_key(&users, &new),
            Err(Error::Plugin { .. })
        ));
    }
    // The new key alone reads the rotated part only.
    {
        let db = Database::open(&path)?;
        db.register_collection_plugin("users", plugin(&new)?)?;
        let users = db.collection::<Value>("users");
        assert_eq!(
            users.find_one(json!({"_id": 1}))?.expect("rotated")["ssn"],
            "secret-ssn-1"
        );
        assert!(matches!(
            users.find_one(json!({"_id": 2000})),
            Err(Error::Decryption(_))
        ));
    }
    // Both keys read everything; rotating again finishes the job.
    let db = Database::open(&path)?;
    let enc = plugin(&new)?.previous_key(&old)?;
    db.register_collection_plugin("users", enc.clone())?;
    all_readable(&db, n)?;
    let users = db.collection::<Value>("users");
    let report = enc.rotate_key(&users, &new)?;
    assert_eq!(report.scanned, n as u64);
    assert_eq!(report.rewritten, (n - 1000) as u64);
    assert_eq!(report.batches, 3);
    // Idempotent.
    assert_eq!(enc.rotate_key(&users, &new)?.rewritten, 0);
    drop(db);

    let db = Database::open(&path)?;
    db.register_collection_plugin("users", plugin(&new)?)?;
    all_readable(&db, n)?;
    // Deterministic ciphertexts were re-derived under the new key.
    let users = db.collection::<Value>("users");
    assert_eq!(
        users.count_documents(json!({"email": "u2400@example.com"}))?,
        1
    );
    // And the old key alone reads nothing any more.
    let db = Database::open(&path)?;
    db.register_collection_plugin("users", plugin(&old)?)?;
    assert!(matches!(
        db.collection::<Value>("users").find_one(json!({"_id": 1})),
        Err(Error::Decryption(_))
    ));
    Ok(())
}

#[test]
fn rotate_key_encrypts_documents_written_before_the_plugin() -> pocketdb::Result<()> {
    let db = Database::memory()?;
    let users = db.collection::<Value>("users");
    users.insert_many((1..=5).map(sample))?;
    let enc = plugin(&key(1))?;
    db.register_collection_plugin("users", enc.clone())?;
    // Plain values written earlier read as they are until migrated.
    assert_eq!(
        users.find_one(json!({"_id": 1}))?.expect("stored"),
        sample(1)
    );
    let report = enc.rotate_key(&users, &key(1))?;
    assert_eq!(report.rewritten, 5);
    assert!(raw_docs(&db, "users")?
        .iter()
        .all(|d| !d.contains("secret-ssn")));
    all_readable(&db, 5)
}

#[test]
fn passphrase_keys_reopen_with_the_stored_salt() -> pocketdb::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("pass.sqlite");
    let first_id;
    {
        let db = Database::open(&path)?;
        let k = EncryptionKey::from_passphrase(&db, "correct horse battery staple")?;
        first_id = k.id()?;
        db.register_collection_plugin("users", plugin(&k)?)?;
        db.collection::<Value>("users").insert_one(sample(1))?;
    }
    let db = Database::open(&path)?;
    let k = EncryptionKey::from_passphrase(&db, "correct horse battery staple")?;
    assert_eq!(k.id()?, first_id, "same passphrase, same salt, same key");
    db.register_collection_plugin("users", plugin(&k)?)?;
    assert_eq!(
        db.collection::<Value>("users")
            .find_one(json!({"_id": 1}))?
            .expect("stored"),
        sample(1)
    );
    // Another database has another salt: the same passphrase gives another key.
    let other = Database::memory()?;
    let k2 = EncryptionKey::from_passphrase(&other, "correct horse battery staple")?;
    assert_ne!(k2.id()?, first_id);
    // A wrong passphrase is a decryption error.
    let db = Database::open(&path)?;
    let wrong = EncryptionKey::from_passphrase(&db, "wrong")?;
    db.register_collection_plugin("users", plugin(&wrong)?)?;
    assert!(matches!(
        db.collection::<Value>("users").find_one(json!({"_id": 1})),
        Err(Error::Decryption(_))
    ));
    Ok(())
}

#[test]
fn bad_configuration_is_rejected() -> pocketdb::Result<()> {
    assert!(matches!(
        EncryptionKey::from_slice(&[0; 31]),
        Err(Error::InvalidArgument(_))
    ));
    let e = Encryption::new(&key(1))?;
    assert!(e.clone().field("_id").is_err());
    assert!(e.clone().field("a.b")?.field("a").is_err());
    assert!(e.clone().field("a")?.deterministic_field("a.b").is_err());
    assert!(e.field("bad..path").is_err());
    assert!(!format!("{:?}", key(1)).contains("1, 1"));
    Ok(())
}

#[test]
fn fluent_queries_pass_the_plugins_too() -> pocketdb::Result<()> {
    let db = Database::memory()?;
    db.register_collection_plugin("users", plugin(&key(1))?)?;
    let users = db.collection::<Value>("users");
    users.insert_many((1..=5).map(sample))?;
    let found = users
        .query()
        .where_("email")
        .eq("u4@example.com")
        .to_vec()?;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["_id"], 4);
    let n = users
        .query()
        .or(vec![
            pocketdb::QueryBuilder::new()
                .where_("email")
                .eq("u1@example.com"),
            pocketdb::QueryBuilder::new()
                .where_("email")
                .eq("u2@example.com"),
        ])
        .count()?;
    assert_eq!(n, 2);
    // Unsupported conditions are rejected here as in JSON filters, not answered wrongly.
    assert!(users.query().where_("ssn").lte("z").to_vec().is_err());
    Ok(())
}

/// A pipeline's leading `$match` goes through the collection's read path: the plugin
/// rewrites an equality on a deterministically encrypted field into one on ciphertext
/// (before, it compared plaintext with ciphertext and matched nothing). Later stages see
/// decrypted documents.
#[test]
fn aggregate_match_on_an_encrypted_field() -> pocketdb::Result<()> {
    let db = Database::memory()?;
    db.register_collection_plugin("users", plugin(&key(1))?)?;
    let users = db.collection::<Value>("users");
    users.insert_many((1..=6).map(sample))?;
    let out = users
        .aggregate(json!([
            {"$match": {"email": "u3@example.com"}},
            {"$project": {"ssn": 1, "email": 1}}
        ]))?
        .to_vec()?;
    assert_eq!(
        out,
        vec![json!({"_id": 3, "email": "u3@example.com", "ssn": "secret-ssn-3"})]
    );
    let out = users
        .aggregate(json!([
            {"$match": {"email": {"$in": ["u1@example.com", "u2@example.com"]}}},
            {"$group": {"_id": null, "emails": {"$push": "$email"}, "n": {"$sum": 1}}}
        ]))?
        .to_vec()?;
    assert_eq!(
        out,
        vec![json!({"_id": null, "emails": ["u1@example.com", "u2@example.com"], "n": 2})]
    );
    // A $match after another stage runs in Rust on decrypted documents.
    let out = users
        .aggregate(json!([
            {"$project": {"email": 1}},
            {"$match": {"email": "u4@example.com"}}
        ]))?
        .to_vec()?;
    assert_eq!(out, vec![json!({"_id": 4, "email": "u4@example.com"})]);
    // A grouping by an encrypted field sees plaintext, not stored ciphertext.
    let out = users
        .aggregate(json!([
            {"$match": {"_id": {"$lte": 2}}},
            {"$group": {"_id": "$ssn", "n": {"$sum": 1}}},
            {"$sort": {"_id": 1}}
        ]))?
        .to_vec()?;
    assert_eq!(
        out,
        vec![
            json!({"_id": "secret-ssn-1", "n": 1}),
            json!({"_id": "secret-ssn-2", "n": 1})
        ]
    );
    Ok(())
}

#[test]
fn buffered_updates_are_encrypted_before_they_reach_the_buffer_log() -> pocketdb::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("b.sqlite");
    let db = Database::open_with(
        &path,
        pocketdb::Options::default().durability(pocketdb::Durability::Buffered(
            pocketdb::BufferOptions::default().flush_interval(std::time::Duration::from_secs(3600)),
        )),
    )?;
    db.register_collection_plugin("users", plugin(&key(1))?)?;
    let users = db.collection::<Value>("users");
    users.insert_one(sample(1))?;
    users.update_one(
        json!({"_id": 1}),
        json!({"$set": {"ssn": "updated-ssn-77", "profile.secret": "updated-pin-88"}}),
    )?;
    users.replace_one(
        json!({"_id": 1}),
        json!({"ssn": "replaced-ssn-99", "email": "replaced@example.com"}),
    )?;
    users.update_one_with(
        json!({"_id": 2}),
        json!({"$set": {"ssn": "upserted-ssn-11"}}),
        &pocketdb::UpdateOptions::upsert(),
    )?;
    // Writing a field's plaintext again is no modification, buffered or not.
    let same = users.update_one(
        json!({"_id": 1}),
        json!({"$set": {"ssn": "replaced-ssn-99"}}),
    )?;
    assert_eq!(same.modified_count, 0);
    assert_eq!(db.buffer_stats().map(|s| s.buffered), Some(4));
    let log = std::fs::read(dir.path().join("b.sqlite.buffer-log"))?;
    let log = String::from_utf8_lossy(&log);
    for secret in [
        "secret-ssn-1",
        "updated-ssn-77",
        "updated-pin-88",
        "replaced-ssn-99",
        "replaced@example.com",
        "upserted-ssn-11",
    ] {
        assert!(
            !log.contains(secret),
            "{secret} is in the buffer log in the clear"
        );
    }
    let expected = json!({"_id": 1, "ssn": "replaced-ssn-99", "email": "replaced@example.com"});
    assert_eq!(users.find_one(json!({"_id": 1}))?, Some(expected.clone()));
    assert_eq!(
        users.find_one(json!({"email": "replaced@example.com"}))?,
        Some(expected.clone())
    );
    db.flush()?;
    assert_eq!(db.buffer_stats().map(|s| s.dropped), Some(0));
    assert_eq!(users.find_one(json!({"_id": 1}))?, Some(expected));
    // Now the current document is the stored one, with sealed fields: setting one to
    // its plaintext is still no modification.
    let same = users.update_one(
        json!({"_id": 1}),
        json!({"$set": {"ssn": "replaced-ssn-99"}}),
    )?;
    assert_eq!(same.modified_count, 0);
    assert_eq!(db.buffer_stats().map(|s| s.buffered), Some(0));
    assert!(raw_docs(&db, "users")?
        .iter()
        .all(|d| !d.contains("replaced-ssn-99") && !d.contains("upserted-ssn-11")));
    Ok(())
}

/// Update operators that compute from a value (`$inc`, `$mul`, `$push`, `$addToSet`,
/// `$pull`, a path inside an encrypted document) see the plaintext, in every update
/// path, and what they write is sealed again; encrypted fields they leave alone keep
/// their stored ciphertext.
#[test]
fn operators_compute_from_the_plaintext_of_encrypted_fields() -> pocketdb::Result<()> {
    let dir = tempfile::tempdir()?;
    for buffered in [false, true] {
        let durability = if buffered {
            pocketdb::Durability::Buffered(pocketdb::BufferOptions::default())
        } else {
            pocketdb::Durability::Sync
        };
        let path = dir.path().join(format!("ops-{buffered}.sqlite"));
        let db = Database::open_with(&path, pocketdb::Options::default().durability(durability))?;
        let enc = Encryption::new(&key(3))?
            .field("balance")?
            .field("tags")?
            .field("profile.secret")?
            .field("cards.number")?
            .deterministic_field("code")?;
        db.register_collection_plugin("accounts", enc)?;
        let accounts = db.collection::<Value>("accounts");
        for id in 1..=3 {
            accounts.insert_one(json!({
                "_id": id, "balance": 100 * id, "tags": ["a"], "code": 7,
                "profile": {"secret": {"pin": 1000 + id, "words": ["alpha"]}},
                "cards": [{"number": "4111"}],
            }))?;
        }
        db.flush()?;
        let stored_before: Vec<Value> = raw_docs(&db, "accounts")?
            .iter()
            .map(|t| serde_json::from_str(t))
            .collect::<Result<_, _>>()?;

        let r = accounts.update_one(
            json!({"_id": 1}),
            json!({
                "$inc": {"balance": 5, "profile.secret.pin": 1},
                "$push": {"tags": "b", "profile.secret.words": "beta"},
                "$mul": {"code": 2},
            }),
        )?;
        assert_eq!((r.matched_count, r.modified_count), (1, 1));
        let r = accounts.update_many(
            json!({}),
            json!({"$inc": {"balance": 1}, "$addToSet": {"tags": "a"}}),
        )?;
        assert_eq!((r.matched_count, r.modified_count), (3, 3));
        let bulk = accounts.bulk_write(
            vec![pocketdb::WriteModel::UpdateOne {
                filter: json!({"_id": 3}),
                update: json!({"$inc": {"balance": 10}}),
                options: pocketdb::UpdateOptions::default(),
            }],
            true,
        )?;
        assert_eq!(bulk.modified_count, 1);
        let after = accounts.find_one_and_update(
            json!({"_id": 2}),
            json!({"$pull": {"tags": "a"}, "$inc": {"balance": -50}}),
            &pocketdb::FindOneAndModifyOptions {
                return_document: pocketdb::ReturnDocument::After,
                ..Default::default()
            },
        )?;
        assert_eq!(
            after.as_ref().map(|d| d["balance"].clone()),
            Some(json!(151))
        );
        assert_eq!(after.map(|d| d["tags"].clone()), Some(json!([])));
        // Nothing to change is no modification, and an operator on a field reached
        // through an array still sees its ciphertext.
        let r = accounts.update_one(json!({"_id": 3}), json!({"$addToSet": {"tags": "a"}}))?;
        assert_eq!((r.matched_count, r.modified_count), (1, 0));
        assert!(matches!(
            accounts.update_one(json!({"_id": 3}), json!({"$inc": {"cards.0.number": 1}})),
            Err(Error::InvalidUpdate { .. })
        ));

        db.flush()?;
        let one = accounts.find_one(json!({"_id": 1}))?.expect("stored");
        assert_eq!(one["balance"], 106);
        assert_eq!(one["tags"], json!(["a", "b"]));
        assert_eq!(one["code"], 14);
        assert_eq!(
            one["profile"]["secret"],
            json!({"pin": 1002, "words": ["alpha", "beta"]})
        );
        assert_eq!(one["cards"], json!([{"number": "4111"}]));
        let three = accounts.find_one(json!({"_id": 3}))?.expect("stored");
        assert_eq!(three["balance"], 311);
        // The deterministic field is queried by its new value.
        assert_eq!(
            accounts.count_documents(json!({"code": 14}))?,
            1,
            "buffered: {buffered}"
        );
        assert_eq!(accounts.count_documents(json!({"code": 7}))?, 2);
        let stored_after: Vec<Value> = raw_docs(&db, "accounts")?
            .iter()
            .map(|t| serde_json::from_str(t))
            .collect::<Result<_, _>>()?;
        for (before, after) in stored_before.iter().zip(&stored_after) {
            for field in ["balance", "tags", "code"] {
                let sealed = after[field].as_str().unwrap_or_default();
                assert!(sealed.len() > 20, "{field} is stored sealed: {after}");
            }
            assert_eq!(
                before["cards"], after["cards"],
                "an untouched field keeps its ciphertext"
            );
        }
        // Document 3's code was not touched: its ciphertext is the one stored first.
        assert_eq!(stored_before[2]["code"], stored_after[2]["code"]);
        assert_ne!(stored_before[0]["code"], stored_after[0]["code"]);
    }
    Ok(())
}
