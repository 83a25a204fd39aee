//! `update_one` with a filter that is one `_id` equality takes a fast path (the row read
//! by its key, the update applied in place, the change description computed from the
//! fields the update touches). The same update through the general path — here selected
//! with `{_id: {$in: [id]}}`, which the planner answers the same way — must give the
//! same result counts, errors, documents, revisions, change-log entries and index
//! answers. Updates and documents are generated.

use pocketdb::{Collection, Database, IndexOptions};
use proptest::prelude::*;
use serde_json::{json, Value};

mod common;
use common::generators::{document, path, scalar, value};

fn update() -> impl Strategy<Value = Value> {
    let op = prop_oneof![
        (path(), value()).prop_map(|(p, v)| json!({"$set": {p: v}})),
        path().prop_map(|p| json!({"$unset": {p: ""}})),
        (path(), -2i64..3).prop_map(|(p, n)| json!({"$inc": {p: n}})),
        (path(), scalar()).prop_map(|(p, v)| json!({"$inc": {p: v}})),
        (path(), -2i64..3).prop_map(|(p, n)| json!({"$mul": {p: n}})),
        (path(), scalar()).prop_map(|(p, v)| json!({"$min": {p: v}})),
        (path(), scalar()).prop_map(|(p, v)| json!({"$max": {p: v}})),
        (path(), path()).prop_map(|(p, q)| json!({"$rename": {p: q}})),
        (path(), scalar()).prop_map(|(p, v)| json!({"$push": {p: v}})),
        (path(), scalar()).prop_map(|(p, v)| json!({"$addToSet": {p: v}})),
        (path(), prop::sample::select(vec![-1, 1])).prop_map(|(p, n)| json!({"$pop": {p: n}})),
        (path(), scalar()).prop_map(|(p, v)| json!({"$pull": {p: v}})),
        (path(), scalar()).prop_map(|(p, v)| json!({"$set": {format!("{p}.$[]"): v}})),
        scalar().prop_map(|v| json!({"$set": {"_id": v}})),
        Just(json!({"$set": {"_id": 1}})),
    ];
    // Two operators at once (conflicting paths are errors on both sides).
    (op.clone(), prop::option::of(op)).prop_map(|(a, b)| {
        let mut out = a.as_object().cloned().unwrap_or_default();
        if let Some(Value::Object(b)) = b {
            for (k, v) in b {
                out.entry(k).or_insert(v);
            }
        }
        Value::Object(out)
    })
}

/// Everything observable about a collection: its documents as text (field order
/// included), its change log, and what an indexed query on `a` answers.
fn state(coll: &Collection) -> (Vec<String>, Vec<String>, Vec<String>) {
    let docs = coll
        .find(json!({}))
        .unwrap()
        .to_vec()
        .unwrap()
        .iter()
        .map(|d| d.to_string())
        .collect();
    let log = coll
        .changes_since(0, 100_000)
        .unwrap()
        .into_iter()
        .map(|c| format!("{} {:?} {} {:?}", c.id, c.op, c.rev, c.update_description))
        .collect();
    let indexed = [json!(1), json!(0.5), json!("a"), json!(null)]
        .iter()
        .flat_map(|v| {
            coll.find(json!({"a": v}))
                .unwrap()
                .to_vec()
                .unwrap()
                .into_iter()
                .map(|d| d["_id"].to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    (docs, log, indexed)
}

fn outcome(r: pocketdb::Result<pocketdb::UpdateResult>) -> String {
    match r {
        Ok(r) => format!(
            "ok {} {} {:?}",
            r.matched_count, r.modified_count, r.upserted_id
        ),
        Err(e) => format!("error {e}"),
    }
}

fn check(docs: Vec<Value>, updates: Vec<(usize, Value)>, indexed: bool) {
    let db = Database::memory().unwrap();
    let fast = db.collection::<Value>("fast");
    let general = db.collection::<Value>("general");
    for coll in [&fast, &general] {
        if indexed {
            coll.create_index(json!({"a": 1}), IndexOptions::default())
                .unwrap();
        }
        let docs: Vec<Value> = docs
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let mut d = d.clone();
                d["_id"] = json!(i);
                d
            })
            .collect();
        if !docs.is_empty() {
            coll.insert_many(docs).unwrap();
        }
    }
    for (target, update) in updates {
        let a = fast.update_one(json!({"_id": target}), update.clone());
        let b = general.update_one(json!({"_id": {"$in": [target]}}), update.clone());
        assert_eq!(outcome(a), outcome(b), "update {update} of _id {target}");
    }
    assert_eq!(state(&fast), state(&general));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn point_updates_match_the_general_path(
        docs in prop::collection::vec(document(), 0..4),
        updates in prop::collection::vec((0usize..5, update()), 1..8),
        indexed in any::<bool>(),
    ) {
        check(docs, updates, indexed);
    }
}

#[test]
fn point_update_logs_the_changed_fields() {
    let db = Database::memory().unwrap();
    let coll = db.collection::<Value>("c");
    coll.insert_one(json!({"_id": 1, "a": {"x": 1, "y": 2}, "b": 1, "c": 3}))
        .unwrap();
    let r = coll
        .update_one(
            json!({"_id": 1}),
            json!({"$inc": {"a.x": 1}, "$unset": {"b": ""}, "$set": {"d": [1]}}),
        )
        .unwrap();
    assert_eq!((r.matched_count, r.modified_count), (1, 1));
    let unchanged = coll
        .update_one(json!({"_id": 1}), json!({"$set": {"c": 3}}))
        .unwrap();
    assert_eq!((unchanged.matched_count, unchanged.modified_count), (1, 0));
    let missing = coll
        .update_one(json!({"_id": 2}), json!({"$set": {"c": 3}}))
        .unwrap();
    assert_eq!((missing.matched_count, missing.modified_count), (0, 0));
    let upsert = pocketdb::UpdateOptions {
        upsert: true,
        ..Default::default()
    };
    let upserted = coll
        .update_one_with(json!({"_id": 2}), json!({"$set": {"c": 3}}), &upsert)
        .unwrap();
    assert_eq!(upserted.upserted_id, Some(json!(2)));
    assert_eq!(
        coll.find_one(json!({"_id": 1})).unwrap(),
        Some(json!({"_id": 1, "a": {"x": 2, "y": 2}, "c": 3, "d": [1]}))
    );
    let log = coll.changes_since(0, 10).unwrap();
    let update = &log[1];
    assert_eq!(update.rev, 2);
    assert_eq!(
        update.update_description.as_ref().map(|d| d.to_json()),
        Some(json!({"updatedFields": {"a.x": 2, "d": [1]}, "removedFields": ["b"]}))
    );
    // The no-op update logged nothing; the upsert logged an insert.
    assert_eq!(log.len(), 3);
    assert_eq!(log[2].op, pocketdb::ChangeOp::Insert);
}

/// Change-log sequence numbers are never reused, even after trimming emptied the log.
#[test]
fn change_sequence_survives_a_log_trimmed_empty() {
    let db = Database::memory().unwrap();
    let coll = db.collection::<Value>("c");
    for i in 0..3 {
        coll.insert_one(json!({"_id": i})).unwrap();
    }
    let last = coll.changes_since(0, 10).unwrap()[2].seq;
    let trim_everything = || {
        db.set_change_retention(
            pocketdb::ChangeRetention::default().max_age(std::time::Duration::ZERO),
        )
        .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        db.trim_changes().unwrap();
        assert!(coll.changes_since(0, 10).unwrap().is_empty());
        db.set_change_retention(pocketdb::ChangeRetention::default())
            .unwrap();
    };
    trim_everything();
    coll.update_one(json!({"_id": 1}), json!({"$set": {"a": 1}}))
        .unwrap();
    let after = coll.changes_since(0, 10).unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].seq, last + 1);
    coll.delete_one(json!({"_id": 2})).unwrap();
    assert_eq!(coll.changes_since(0, 10).unwrap()[1].seq, last + 2);

    // An `insert_many` into an emptied log: its first entry continues the numbering,
    // the others follow it (SQLite numbering them once the first is in).
    trim_everything();
    coll.insert_many((10..14).map(|i| json!({"_id": i})))
        .unwrap();
    let numbers = seqs(coll.changes_since(0, 10).unwrap());
    assert_eq!(numbers, [last + 3, last + 4, last + 5, last + 6]);

    // Dropping a collection records an entry too.
    let other = db.collection::<Value>("other");
    other.insert_one(json!({"_id": 1})).unwrap();
    trim_everything();
    assert!(other.drop().unwrap());
    coll.insert_one(json!({"_id": 20})).unwrap();
    let numbers = seqs(db.changes_since(0, 10).unwrap());
    assert_eq!(numbers, [last + 8, last + 9]);
}

/// Under group commit, a batch whose first write fails (its entry rolled back with its
/// savepoint) still numbers the entries of the others after the trimmed ones.
#[test]
fn group_commit_numbers_entries_after_a_log_trimmed_empty() {
    let db = Database::memory_with(
        pocketdb::Options::default().durability(pocketdb::Durability::GroupCommit),
    )
    .unwrap();
    let coll = db.collection::<Value>("c");
    coll.insert_many((0..5).map(|i| json!({"_id": i}))).unwrap();
    db.set_change_retention(pocketdb::ChangeRetention::default().max_count(0))
        .unwrap();
    db.trim_changes().unwrap();
    assert!(db.changes_since(0, 10).unwrap().is_empty());
    db.set_change_retention(pocketdb::ChangeRetention::default())
        .unwrap();
    // Half of the writers repeat an `_id` (a failed write whose entry is rolled back),
    // the others insert new documents, all at once.
    std::thread::scope(|s| {
        for t in 0..8 {
            let coll = coll.clone();
            s.spawn(move || {
                let id = if t % 2 == 0 { t / 2 } else { 100 + t };
                let outcome = coll.insert_one(json!({"_id": id}));
                assert_eq!(outcome.is_ok(), t % 2 == 1, "writer {t}: {outcome:?}");
            });
        }
    });
    let numbers = seqs(db.changes_since(0, 10).unwrap());
    assert_eq!(numbers, [6, 7, 8, 9]);
}

/// The sequence numbers of change-log entries.
fn seqs(changes: Vec<pocketdb::Change>) -> Vec<i64> {
    changes.iter().map(|c| c.seq).collect()
}
