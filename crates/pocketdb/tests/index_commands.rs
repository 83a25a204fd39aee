//! The index commands of the command layer: `createIndexes`, `listIndexes`,
//! `dropIndexes` and `explain`.

use pocketdb::command::run_command;
use pocketdb::Database;
use serde_json::{json, Value};

fn run(db: &Database, cmd: Value) -> Value {
    run_command(db, &cmd)
}

fn seeded() -> Database {
    let db = Database::memory().unwrap();
    let docs: Vec<Value> = (0..40)
        .map(|i| json!({"_id": i, "email": format!("u{i}@x.io"), "age": i % 7, "tags": [format!("t{}", i % 3)]}))
        .collect();
    let reply = run(&db, json!({"insert": "users", "documents": docs}));
    assert_eq!(reply["ok"], 1, "{reply}");
    db
}

fn assert_error(reply: &Value, code: i64, needle: &str) {
    assert_eq!(reply["ok"], 0, "{reply}");
    assert_eq!(reply["code"], code, "{reply}");
    let msg = reply["errmsg"].as_str().unwrap_or_default();
    assert!(msg.contains(needle), "{msg:?} should contain {needle:?}");
}

fn index_names(db: &Database, coll: &str) -> Vec<String> {
    let reply = run(db, json!({"listIndexes": coll}));
    reply["cursor"]["firstBatch"]
        .as_array()
        .unwrap_or_else(|| panic!("{reply}"))
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn create_indexes_reports_counts() {
    let db = seeded();
    let reply = run(
        &db,
        json!({"createIndexes": "users", "indexes": [
            {"key": {"email": 1}, "name": "by_email", "unique": true},
            {"key": {"age": 1, "email": -1}},
            {"key": {"tags": 1}, "sparse": 1},
        ]}),
    );
    assert_eq!(
        reply,
        json!({"createdCollectionAutomatically": false, "numIndexesBefore": 1, "numIndexesAfter": 4, "ok": 1})
    );
    assert_eq!(
        index_names(&db, "users"),
        ["_id_", "by_email", "age_1_email_-1", "tags_1"]
    );
    // Again: nothing to do.
    let reply = run(
        &db,
        json!({"createIndexes": "users", "indexes": [{"key": {"email": 1}, "name": "by_email", "unique": true}]}),
    );
    assert_eq!(reply["numIndexesBefore"], 4, "{reply}");
    assert_eq!(reply["numIndexesAfter"], 4, "{reply}");
    assert_eq!(reply["note"], "all indexes already exist");
    // The unique index is enforced.
    let reply = run(
        &db,
        json!({"insert": "users", "documents": [{"email": "u1@x.io"}]}),
    );
    assert_eq!(reply["writeErrors"][0]["code"], 11000, "{reply}");
}

#[test]
fn create_indexes_on_a_new_collection_with_ttl_and_partial() {
    let db = Database::memory().unwrap();
    let reply = run(
        &db,
        json!({"createIndexes": "events", "indexes": [
            {"key": {"at": 1}, "name": "at_ttl", "expireAfterSeconds": 3600},
            {"key": {"kind": 1}, "partialFilterExpression": {"kind": {"$exists": true}}},
        ]}),
    );
    assert_eq!(
        reply,
        json!({"createdCollectionAutomatically": true, "numIndexesBefore": 1, "numIndexesAfter": 3, "ok": 1})
    );
    let list = run(&db, json!({"listIndexes": "events"}));
    let batch = &list["cursor"]["firstBatch"];
    assert_eq!(batch[1]["expireAfterSeconds"], 3600, "{list}");
    assert_eq!(
        batch[2]["partialFilterExpression"],
        json!({"kind": {"$exists": true}})
    );
    assert_eq!(list["cursor"]["ns"], format!("{}.events", db.name()));
    assert_eq!(list["cursor"]["id"], 0);
}

#[test]
fn create_indexes_rejects_bad_specs_and_builds_nothing() {
    let db = seeded();
    assert_error(
        &run(&db, json!({"createIndexes": "users", "indexes": []})),
        2,
        "at least one index",
    );
    assert_error(
        &run(&db, json!({"createIndexes": "users"})),
        40414,
        "indexes",
    );
    assert_error(
        &run(
            &db,
            json!({"createIndexes": "users", "indexes": [{"name": "x"}]}),
        ),
        9,
        "'key' field is a required",
    );
    assert_error(
        &run(
            &db,
            json!({"createIndexes": "users", "indexes": [{"key": {"a": 1}, "collation": {}}]}),
        ),
        197,
        "'collation' is not valid",
    );
    assert_error(
        &run(
            &db,
            json!({"createIndexes": "users", "indexes": [{"key": {"a": "text"}}]}),
        ),
        2,
        "direction must be 1 or -1",
    );
    // The second index fails (duplicate ages): the first is not kept either.
    let reply = run(
        &db,
        json!({"createIndexes": "users", "indexes": [
            {"key": {"email": 1}},
            {"key": {"age": 1}, "unique": true},
        ]}),
    );
    assert_error(&reply, 11000, "E11000");
    assert_eq!(index_names(&db, "users"), ["_id_"]);
}

#[test]
fn list_indexes_of_an_absent_collection_fails() {
    let db = seeded();
    assert_error(
        &run(&db, json!({"listIndexes": "nope"})),
        26,
        "ns does not exist",
    );
    let reply = run(
        &db,
        json!({"listIndexes": "users", "cursor": {"batchSize": 10}}),
    );
    assert_eq!(
        reply["cursor"]["firstBatch"],
        json!([{"v": 2, "key": {"_id": 1}, "name": "_id_"}])
    );
    assert_error(
        &run(&db, json!({"listIndexes": "users", "cursor": {"bogus": 1}})),
        40415,
        "bogus",
    );
}

#[test]
fn drop_indexes_by_name_spec_list_and_star() {
    let db = seeded();
    let reply = run(
        &db,
        json!({"createIndexes": "users", "indexes": [
            {"key": {"email": 1}}, {"key": {"age": -1}}, {"key": {"tags": 1}}, {"key": {"age": 1, "email": 1}},
        ]}),
    );
    assert_eq!(reply["numIndexesAfter"], 5, "{reply}");

    let reply = run(&db, json!({"dropIndexes": "users", "index": "email_1"}));
    assert_eq!(reply, json!({"nIndexesWas": 5, "ok": 1}));
    let reply = run(&db, json!({"dropIndexes": "users", "index": {"age": -1}}));
    assert_eq!(reply, json!({"nIndexesWas": 4, "ok": 1}));
    assert_eq!(
        index_names(&db, "users"),
        ["_id_", "tags_1", "age_1_email_1"]
    );
    assert_error(
        &run(&db, json!({"dropIndexes": "users", "index": "email_1"})),
        27,
        "email_1",
    );
    assert_error(
        &run(&db, json!({"dropIndexes": "users", "index": {"nope": 1}})),
        27,
        "can't find index with key",
    );
    // A list fails whole when one name is unknown.
    assert_error(
        &run(
            &db,
            json!({"dropIndexes": "users", "index": ["tags_1", "missing"]}),
        ),
        27,
        "missing",
    );
    assert_eq!(index_names(&db, "users").len(), 3);
    let reply = run(&db, json!({"dropIndexes": "users", "index": ["tags_1"]}));
    assert_eq!(reply, json!({"nIndexesWas": 3, "ok": 1}));
    let reply = run(&db, json!({"dropIndexes": "users", "index": "*"}));
    assert_eq!(
        reply,
        json!({"nIndexesWas": 2, "msg": "non-_id indexes dropped for collection", "ok": 1})
    );
    assert_eq!(index_names(&db, "users"), ["_id_"]);

    assert_eq!(
        run(&db, json!({"dropIndexes": "users", "index": "_id_"}))["ok"],
        0
    );
    assert_error(&run(&db, json!({"dropIndexes": "users"})), 40414, "index");
    assert_error(
        &run(&db, json!({"dropIndexes": "users", "index": 5})),
        14,
        "wrong type",
    );
    assert_error(
        &run(&db, json!({"dropIndexes": "nope", "index": "*"})),
        26,
        "ns does not exist",
    );
}

#[test]
fn explain_find_reports_the_plan() {
    let db = seeded();
    run(
        &db,
        json!({"createIndexes": "users", "indexes": [{"key": {"email": 1}}]}),
    );
    let reply = run(
        &db,
        json!({"explain": {"find": "users", "filter": {"email": "u3@x.io"}}}),
    );
    assert_eq!(reply["ok"], 1, "{reply}");
    assert_eq!(reply["index"], "email_1");
    assert_eq!(reply["queryPlanner"]["winningPlan"]["stage"], "IXSCAN");
    assert_eq!(reply["queryPlanner"]["winningPlan"]["indexName"], "email_1");
    assert_eq!(
        reply["queryPlanner"]["parsedQuery"],
        json!({"email": "u3@x.io"})
    );
    assert!(reply["sqlite_plan"].as_array().is_some(), "{reply}");
    assert!(reply.get("executionStats").is_none());

    // A collection scan with an in-memory sort, and execution statistics.
    let reply = run(
        &db,
        json!({"explain": {"find": "users", "filter": {"age": 3}, "sort": {"age": 1}, "limit": 2},
               "verbosity": "executionStats"}),
    );
    assert_eq!(reply["index"], Value::Null, "{reply}");
    assert_eq!(reply["queryPlanner"]["winningPlan"]["stage"], "COLLSCAN");
    assert_eq!(reply["sorted_in_memory"], true);
    assert_eq!(reply["executionStats"]["nReturned"], 2);

    // A hint forces the index, by name or by key specification.
    for hint in [json!("email_1"), json!({"email": 1})] {
        let reply = run(
            &db,
            json!({"explain": {"find": "users", "filter": {"age": 3}, "hint": hint}}),
        );
        assert_eq!(reply["index"], "email_1", "{reply}");
    }
    let reply = run(
        &db,
        json!({"explain": {"find": "users", "filter": {}, "hint": "nope_1"}}),
    );
    assert_error(&reply, 27, "nope_1");
}

#[test]
fn explain_rejects_bad_input_and_explains_aggregates() {
    let db = seeded();
    assert_error(
        &run(&db, json!({"explain": {"frobnicate": "users"}})),
        59,
        "unknown command: frobnicate",
    );
    assert_error(&run(&db, json!({"explain": 1})), 14, "wrong type");
    assert_error(
        &run(
            &db,
            json!({"explain": {"find": "users"}, "verbosity": "loud"}),
        ),
        2,
        "verbosity",
    );
    assert_error(
        &run(&db, json!({"explain": {"find": "users", "hint": 3}})),
        14,
        "hint",
    );
    assert_error(
        &run(&db, json!({"explain": {"find": "users", "fliter": {}}})),
        40415,
        "fliter",
    );
    let reply = run(
        &db,
        json!({"explain": {"aggregate": "users", "pipeline": [{"$match": {"age": 1}}, {"$count": "n"}]}}),
    );
    assert_eq!(reply["ok"], 1, "{reply}");
}
