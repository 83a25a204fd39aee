//! Unique secondary indexes in buffered mode: a buffered write claims its unique keys
//! before it is acknowledged, against the stored documents and the other buffered ones,
//! so a write the index refuses fails with `DuplicateKey` as in `Sync` mode instead of
//! being acknowledged and dropped when applied.

use pocketdb::{
    BufferOptions, Collection, Database, Durability, Error, IndexOptions, InsertManyOptions,
    Options, UpdateOptions,
};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::time::Duration;

mod common;
use common::field_by_id;

fn open(dir: &std::path::Path, name: &str, durability: Durability) -> Database {
    Database::open_with(
        dir.join(format!("{name}.sqlite")),
        Options::default().durability(durability),
    )
    .unwrap()
}

/// Buffered, with an applier that waits long enough that writes stay buffered.
fn slow() -> Durability {
    Durability::Buffered(BufferOptions::default().flush_interval(Duration::from_secs(3600)))
}

/// Buffered, applying in batches of 3 every millisecond: writes move to SQLite while
/// later ones are checked.
fn busy() -> Durability {
    Durability::Buffered(
        BufferOptions::default()
            .batch_size(3)
            .flush_interval(Duration::from_millis(1)),
    )
}

/// The index a refused write names, or a panic.
fn refused_by<T: std::fmt::Debug>(r: pocketdb::Result<T>) -> String {
    match r {
        Err(Error::DuplicateKey { index, .. }) => index,
        other => panic!("expected DuplicateKey, got {other:?}"),
    }
}

fn emails(c: &Collection) -> Vec<(Value, Value)> {
    field_by_id(c, "_id")
        .into_iter()
        .zip(field_by_id(c, "email"))
        .collect()
}

#[test]
fn buffered_writes_claim_unique_keys_before_they_are_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path(), "buf", slow());
    let c = db.collection::<Value>("users");
    c.create_index(json!({"email": 1}), IndexOptions::default().unique(true))
        .unwrap();
    c.insert_one(json!({"_id": 1, "email": "x"})).unwrap();
    db.flush().unwrap();

    // Against a stored document.
    assert_eq!(
        refused_by(c.insert_one(json!({"_id": 2, "email": "x"}))),
        "email_1"
    );
    // Against a buffered one.
    c.insert_one(json!({"_id": 3, "email": "y"})).unwrap();
    assert_eq!(db.buffer_stats().unwrap().buffered, 1);
    assert_eq!(
        refused_by(c.insert_one(json!({"_id": 4, "email": "y"}))),
        "email_1"
    );
    // A stored document whose buffered version moved to another key gives its key up.
    c.update_one(json!({"_id": 1}), json!({"$set": {"email": "z"}}))
        .unwrap();
    c.insert_one(json!({"_id": 5, "email": "x"})).unwrap();
    // ... and holds the new one.
    assert_eq!(
        refused_by(c.update_one(json!({"_id": 3}), json!({"$set": {"email": "z"}}))),
        "email_1"
    );
    assert_eq!(
        refused_by(c.replace_one(json!({"_id": 3}), json!({"email": "z"}))),
        "email_1"
    );
    // An upsert claims as an insert does.
    assert_eq!(
        refused_by(c.update_one_with(
            json!({"_id": 6}),
            json!({"$set": {"email": "z"}}),
            &UpdateOptions::upsert(),
        )),
        "email_1"
    );
    // A buffered delete frees the key; a document keeps its own key.
    c.delete_one(json!({"_id": 1})).unwrap();
    c.update_one(json!({"_id": 3}), json!({"$set": {"email": "z"}}))
        .unwrap();
    c.update_one(json!({"_id": 3}), json!({"$set": {"email": "z", "n": 1}}))
        .unwrap();
    // Documents of one request claim against each other, in order.
    let err = c
        .insert_many_with(
            &[
                json!({"_id": 7, "email": "w"}),
                json!({"_id": 8, "email": "w"}),
                json!({"_id": 9, "email": "v"}),
            ],
            InsertManyOptions { ordered: false },
        )
        .unwrap_err();
    let Error::BulkWrite(f) = err else {
        panic!("{err:?}")
    };
    assert_eq!(f.inserted_ids.len(), 2);
    assert_eq!(
        f.write_errors.iter().map(|w| w.index).collect::<Vec<_>>(),
        vec![1]
    );
    assert!(matches!(
        &f.write_errors[0].error,
        Error::DuplicateKey { index, key, .. } if index == "email_1" && key == r#"{ email: "w" }"#
    ));

    let expected = vec![
        (json!(3), json!("z")),
        (json!(5), json!("x")),
        (json!(7), json!("w")),
        (json!(9), json!("v")),
    ];
    assert_eq!(emails(&c), expected);
    db.flush().unwrap();
    let stats = db.buffer_stats().unwrap();
    assert_eq!(
        stats.dropped, 0,
        "a write was acknowledged and then dropped"
    );
    assert_eq!(emails(&c), expected);
}

#[test]
fn a_unique_index_created_between_buffered_writes_is_checked_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path(), "buf", slow());
    let c = db.collection::<Value>("users");
    // Writers remember that the collection has no unique index...
    c.insert_one(json!({"_id": 1, "email": "x"})).unwrap();
    c.insert_one(json!({"_id": 2, "email": "x"})).unwrap();
    c.delete_one(json!({"_id": 2})).unwrap();
    // ... until an index changes.
    c.create_index(json!({"email": 1}), IndexOptions::default().unique(true))
        .unwrap();
    c.insert_one(json!({"_id": 3, "email": "y"})).unwrap();
    assert_eq!(
        refused_by(c.insert_one(json!({"_id": 4, "email": "x"}))),
        "email_1"
    );
    assert_eq!(
        refused_by(c.insert_one(json!({"_id": 4, "email": "y"}))),
        "email_1"
    );
    c.drop_index("email_1").unwrap();
    c.insert_one(json!({"_id": 4, "email": "y"})).unwrap();
    db.flush().unwrap();
    assert_eq!(db.buffer_stats().unwrap().dropped, 0);
    assert_eq!(
        emails(&c),
        vec![
            (json!(1), json!("x")),
            (json!(3), json!("y")),
            (json!(4), json!("y"))
        ]
    );
}

/// A unique index created through another handle on the file: buffered writes check it
/// from the applier's next batch on (the batch sees the catalog change); a write
/// acknowledged before that is checked by the applier and dropped, reported.
#[test]
fn a_unique_index_created_by_another_handle_is_checked_after_the_next_batch() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path(), "buf", busy());
    let c = db.collection::<Value>("users");
    c.insert_one(json!({"_id": 1, "email": "x"})).unwrap();
    db.flush().unwrap();
    let other = open(dir.path(), "buf", Durability::Sync);
    other
        .collection::<Value>("users")
        .create_index(json!({"email": 1}), IndexOptions::default().unique(true))
        .unwrap();
    // Checked against what this handle knew: acknowledged, then applied (no conflict).
    c.insert_one(json!({"_id": 2, "email": "y"})).unwrap();
    db.flush().unwrap();
    // The applier saw the new catalog: the index is checked before acknowledging.
    assert_eq!(
        refused_by(c.insert_one(json!({"_id": 3, "email": "x"}))),
        "email_1"
    );
    db.flush().unwrap();
    assert_eq!(db.buffer_stats().unwrap().dropped, 0);
    assert_eq!(
        emails(&c),
        vec![(json!(1), json!("x")), (json!(2), json!("y"))]
    );
}

#[test]
fn concurrent_writers_never_share_a_unique_key() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path(), "buf", busy());
    let c = db.collection::<Value>("users");
    c.create_index(json!({"email": 1}), IndexOptions::default().unique(true))
        .unwrap();
    // Four threads insert and update documents of their own over 50 shared emails while
    // the applier moves writes to SQLite: every acknowledged write is applied (none is
    // dropped by the applier's own check) and each email ends up held at most once.
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let c = c.clone();
            std::thread::spawn(move || {
                let mut accepted = 0;
                for i in 0..150u64 {
                    let id = t * 1000 + i;
                    let email = (i * 7 + t) % 50;
                    let ok = if i % 3 == 2 {
                        let target = t * 1000 + i - 1;
                        match c
                            .update_one(json!({"_id": target}), json!({"$set": {"email": email}}))
                        {
                            Ok(r) => r.modified_count == 1,
                            Err(Error::DuplicateKey { .. }) => false,
                            Err(e) => panic!("{e:?}"),
                        }
                    } else {
                        match c.insert_one(json!({"_id": id, "email": email})) {
                            Ok(_) => true,
                            Err(Error::DuplicateKey { .. }) => false,
                            Err(e) => panic!("{e:?}"),
                        }
                    };
                    accepted += usize::from(ok);
                }
                accepted
            })
        })
        .collect();
    let inserted_or_moved: usize = threads.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(inserted_or_moved > 0);
    db.flush().unwrap();
    assert_eq!(db.buffer_stats().unwrap().dropped, 0);
    let docs = c.find(json!({})).unwrap().to_vec().unwrap();
    let mut held: Vec<i64> = docs.iter().filter_map(|d| d["email"].as_i64()).collect();
    let n = held.len();
    held.sort_unstable();
    held.dedup();
    assert_eq!(held.len(), n, "an email is held twice");
    assert!(n <= 50);
}

#[test]
fn sparse_partial_multikey_and_compound_unique_indexes_claim_their_keys() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path(), "buf", slow());
    let c = db.collection::<Value>("items");
    c.create_index(
        json!({"s": 1}),
        IndexOptions::default().unique(true).sparse(true),
    )
    .unwrap();
    c.create_index(
        json!({"p": 1}),
        IndexOptions::default()
            .unique(true)
            .partial_filter_expression(json!({"p": {"$gt": 2}})),
    )
    .unwrap();
    c.create_index(json!({"tags": 1}), IndexOptions::default().unique(true))
        .unwrap();
    c.create_index(
        json!({"a": 1, "b": 1}),
        IndexOptions::default().unique(true),
    )
    .unwrap();
    // Missing fields: the sparse index skips them, the others key them as null, and
    // the compound index holds (null, null) once.
    c.insert_one(json!({"_id": 1, "tags": ["t1", "t2"], "a": 1}))
        .unwrap();
    db.flush().unwrap();
    assert_eq!(
        refused_by(c.insert_one(json!({"_id": 2, "tags": ["t3"], "a": 1}))),
        "a_1_b_1"
    );
    // The stored document's array holds each of its elements.
    assert_eq!(
        refused_by(c.insert_one(json!({"_id": 2, "tags": ["t0", "t2"], "a": 2}))),
        "tags_1"
    );
    // Sparse: two documents without `s` are fine, two with the same `s` are not.
    c.insert_one(json!({"_id": 2, "tags": "u1", "a": 2, "s": 5}))
        .unwrap();
    assert_eq!(
        refused_by(c.insert_one(json!({"_id": 3, "tags": "u2", "a": 3, "s": 5}))),
        "s_1"
    );
    // Partial: only documents with p > 2 are held.
    c.insert_one(json!({"_id": 3, "tags": "u3", "a": 3, "p": 1}))
        .unwrap();
    c.insert_one(json!({"_id": 4, "tags": "u4", "a": 4, "p": 1}))
        .unwrap();
    c.insert_one(json!({"_id": 5, "tags": "u5", "a": 5, "p": 3}))
        .unwrap();
    assert_eq!(
        refused_by(c.update_one(json!({"_id": 4}), json!({"$set": {"p": 3.0}}))),
        "p_1"
    );
    // A buffered (not yet applied) array claims each element too.
    c.insert_one(json!({"_id": 6, "tags": ["v1", "v2"], "a": 6}))
        .unwrap();
    assert_eq!(
        refused_by(c.update_one(json!({"_id": 5}), json!({"$set": {"tags": ["u5", "v2"]}}))),
        "tags_1"
    );
    // Compound keys compare numbers by value.
    c.update_one(json!({"_id": 6}), json!({"$set": {"b": 1}}))
        .unwrap();
    assert_eq!(
        refused_by(c.update_one(json!({"_id": 5}), json!({"$set": {"a": 6.0, "b": 1.0}}))),
        "a_1_b_1"
    );
    db.flush().unwrap();
    assert_eq!(db.buffer_stats().unwrap().dropped, 0);
    assert_eq!(c.count_documents(json!({})).unwrap(), 6);
}

/// One write of the differential; ids and field values come from small domains so
/// that unique keys collide often.
#[derive(Debug, Clone)]
enum Op {
    Insert(u8, [u8; 4]),
    InsertMany(Vec<(u8, [u8; 4])>, bool),
    Set(u8, [u8; 4], bool),
    Replace(u8, [u8; 4]),
    Delete(u8),
    Flush,
}

/// A document: `e` unique, `tags` unique multikey, `s` unique sparse (absent for 0),
/// `p` unique partial (`p > 2`), `a`/`b` unique compound.
fn fields(v: [u8; 4]) -> Value {
    let mut d = json!({
        "e": v[0] % 7,
        "tags": [format!("t{}", v[1] % 5), format!("t{}", v[1] / 51)],
        "p": v[2] % 5,
        "a": v[3] % 3,
        "b": v[0] % 2,
    });
    if !v[2].is_multiple_of(3) {
        d["s"] = json!(v[2] % 4);
    }
    d
}

fn doc(id: u8, v: [u8; 4]) -> Value {
    let mut d = fields(v);
    d["_id"] = json!(id);
    d
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let id = 0..12u8;
    let v = any::<[u8; 4]>();
    let op = prop_oneof![
        (id.clone(), v).prop_map(|(i, v)| Op::Insert(i, v)),
        (
            proptest::collection::vec((0..12u8, any::<[u8; 4]>()), 1..5),
            any::<bool>()
        )
            .prop_map(|(d, o)| Op::InsertMany(d, o)),
        (id.clone(), v, any::<bool>()).prop_map(|(i, v, u)| Op::Set(i, v, u)),
        (id.clone(), v).prop_map(|(i, v)| Op::Replace(i, v)),
        id.prop_map(Op::Delete),
        Just(Op::Flush),
    ];
    proptest::collection::vec(op, 1..40)
}

fn outcome<T: std::fmt::Debug>(r: pocketdb::Result<T>) -> String {
    match r {
        Err(Error::BulkWrite(f)) => format!("{:?} {:?}", f.inserted_ids, f.write_errors),
        other => format!("{other:?}"),
    }
}

fn run(c: &Collection, db: &Database, op: &Op) -> String {
    match op {
        Op::Insert(i, v) => outcome(c.insert_one(doc(*i, *v))),
        Op::InsertMany(docs, ordered) => {
            let docs: Vec<Value> = docs.iter().map(|(i, v)| doc(*i, *v)).collect();
            outcome(c.insert_many_with(&docs, InsertManyOptions { ordered: *ordered }))
        }
        Op::Set(i, v, upsert) => {
            // Sets two of the fields, so the rest of the document keeps its keys.
            let f = fields(*v);
            let set = json!({"e": f["e"], "tags": f["tags"]});
            outcome(c.update_one_with(
                json!({"_id": i}),
                json!({"$set": set}),
                &UpdateOptions {
                    upsert: *upsert,
                    ..Default::default()
                },
            ))
        }
        Op::Replace(i, v) => outcome(c.replace_one(json!({"_id": i}), fields(*v))),
        Op::Delete(i) => outcome(c.delete_one(json!({"_id": i}))),
        Op::Flush => {
            db.flush().unwrap();
            String::new()
        }
    }
}

fn unique_indexes(c: &Collection) {
    let unique = IndexOptions::default().unique(true);
    c.create_index(json!({"e": 1}), unique.clone()).unwrap();
    c.create_index(json!({"tags": 1}), unique.clone()).unwrap();
    c.create_index(json!({"s": 1}), unique.clone().sparse(true))
        .unwrap();
    c.create_index(
        json!({"p": -1}),
        unique
            .clone()
            .partial_filter_expression(json!({"p": {"$gt": 2}})),
    )
    .unwrap();
    c.create_index(json!({"a": 1, "b": 1}), unique).unwrap();
}

fn all(c: &Collection) -> Vec<Value> {
    c.find(json!({}))
        .unwrap()
        .sort(json!({"_id": 1}))
        .to_vec()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(24)
    ))]

    /// Every write reports in buffered mode (writes kept in the buffer, or applied in
    /// small batches meanwhile) what it reports in `Sync` mode, error and index
    /// included, and the collections end up alike with no write dropped.
    #[test]
    fn buffered_unique_checks_agree_with_sync(ops in ops()) {
        let dir = tempfile::tempdir().unwrap();
        let dbs = [
            open(dir.path(), "sync", Durability::Sync),
            open(dir.path(), "slow", slow()),
            open(dir.path(), "busy", busy()),
        ];
        let colls: Vec<Collection> = dbs.iter().map(|db| db.collection("u")).collect();
        for c in &colls {
            unique_indexes(c);
        }
        for (step, op) in ops.iter().enumerate() {
            let expected = run(&colls[0], &dbs[0], op);
            for (c, db) in colls.iter().zip(&dbs).skip(1) {
                prop_assert_eq!(&run(c, db, op), &expected, "step {} {:?}", step, op);
            }
        }
        let expected = all(&colls[0]);
        for (c, db) in colls.iter().zip(&dbs).skip(1) {
            prop_assert_eq!(&all(c), &expected);
            db.flush().unwrap();
            prop_assert_eq!(db.buffer_stats().unwrap().dropped, 0);
            prop_assert_eq!(&all(c), &expected);
        }
    }
}

/// The stored holder of a key is looked up with a statement compiled once per type of
/// key and reused with each key's value: keys of every type, each repeated after keys of
/// other types, find exactly their holders (numbers by value, as in `Sync` mode).
#[test]
fn holder_lookups_reuse_their_statements_with_each_key() {
    let dir = tempfile::tempdir().unwrap();
    for durability in [Durability::Sync, slow()] {
        let name = if durability == Durability::Sync {
            "sync"
        } else {
            "slow"
        };
        let db = open(dir.path(), name, durability);
        let c = db.collection::<Value>("c");
        c.create_index(json!({"k": 1}), IndexOptions::default().unique(true))
            .unwrap();
        let stored = [
            json!("a"),
            json!(1),
            json!(2.5),
            json!(true),
            json!(null),
            json!({"x": 1}),
            json!(u64::MAX),
        ];
        for (i, k) in stored.iter().enumerate() {
            c.insert_one(json!({"_id": i, "k": k})).unwrap();
        }
        db.flush().unwrap();
        let tries = [
            (json!("a"), false),
            (json!("b"), true),
            (json!(1.0), false),
            (json!(2), true),
            (json!(2.5), false),
            (json!(3.5), true),
            (json!(false), true),
            (json!(true), false),
            (json!({"x": 1}), false),
            (json!({"x": 2}), true),
            (json!(u64::MAX), false),
            (json!(u64::MAX - 1), true),
            (json!("c"), true),
            (json!(1), false),
        ];
        for (n, (k, free)) in tries.iter().enumerate() {
            let r = c.insert_one(json!({"_id": 100 + n, "k": k}));
            if *free {
                assert!(r.is_ok(), "{name}: {k} should be free: {r:?}");
            } else {
                assert_eq!(refused_by(r), "k_1", "{name}: {k}");
            }
        }
        db.flush().unwrap();
        assert_eq!(db.buffer_stats().map(|s| s.dropped).unwrap_or(0), 0);
    }
}
