//! `find_one({_id: v})` answered by one `_id` lookup: the same answers as the planned
//! path, for every kind of id and collection state.

use pocketdb::{Database, Options};
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;

#[test]
fn point_reads_answer_as_the_planned_path() {
    let db = Database::memory().unwrap();
    let c = db.collection::<Value>("c");
    // A collection that does not exist yet.
    assert_eq!(c.find_one(json!({"_id": 1})).unwrap(), None);
    c.insert_many([
        json!({"_id": 1, "v": "int"}),
        json!({"_id": "1", "v": "string"}),
        json!({"_id": 2.5, "v": "float"}),
        json!({"_id": {"k": 1}, "v": "object"}),
        json!({"v": "generated"}),
    ])
    .unwrap();
    let cases = [
        json!({"_id": 1}),
        json!({"_id": 1.0}),
        json!({"_id": "1"}),
        json!({"_id": 2.5}),
        json!({"_id": 3}),
        json!({"_id": "missing"}),
        json!({"_id": {"k": 1}}),
    ];
    for filter in cases {
        // `find(..).limit(1)` always plans: the reference.
        let planned = c
            .find(filter.clone())
            .unwrap()
            .limit(1)
            .to_vec()
            .unwrap()
            .into_iter()
            .next();
        assert_eq!(c.find_one(filter.clone()).unwrap(), planned, "{filter}");
    }
    assert_eq!(
        c.find_one(json!({"_id": 1.0})).unwrap().unwrap()["v"],
        "int"
    );
    assert_eq!(
        c.find_one(json!({"_id": "1"})).unwrap().unwrap()["v"],
        "string"
    );
}

#[test]
fn point_reads_decode_typed_documents_and_report_bad_ones() {
    #[derive(Debug, Deserialize, serde::Serialize, PartialEq)]
    struct User {
        _id: String,
        age: u32,
    }
    let db = Database::memory().unwrap();
    db.collection::<Value>("users")
        .insert_many([
            json!({"_id": "ada", "age": 36}),
            json!({"_id": "bad", "age": "old"}),
        ])
        .unwrap();
    let users = db.collection::<User>("users");
    assert_eq!(
        users.find_one(json!({"_id": "ada"})).unwrap(),
        Some(User {
            _id: "ada".into(),
            age: 36
        })
    );
    assert!(matches!(
        users.find_one(json!({"_id": "bad"})),
        Err(pocketdb::Error::Serde(_))
    ));
}

#[test]
fn slow_point_reads_are_logged() {
    let db = Database::memory_with(Options::default().slow_query_threshold(Some(Duration::ZERO)))
        .unwrap();
    let c = db.collection::<Value>("c");
    c.insert_one(json!({"_id": "a"})).unwrap();
    c.find_one(json!({"_id": "a"})).unwrap();
    let slow = db.slow_queries();
    assert!(
        slow.iter()
            .any(|q| q.collection == "c" && q.filter.contains("_id")),
        "{slow:?}"
    );
}
