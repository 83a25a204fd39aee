//! The `aggregate` database command.

use pocketdb::command::run_command;
use pocketdb::Database;
use serde_json::{json, Value};

fn db() -> Database {
    let db = Database::memory().expect("db");
    db.collection::<Value>("sales")
        .insert_many([
            json!({"_id": 1, "item": "a", "qty": 2}),
            json!({"_id": 2, "item": "b", "qty": 1}),
            json!({"_id": 3, "item": "a", "qty": 5}),
        ])
        .expect("insert");
    db
}

#[test]
fn aggregate_replies_with_a_cursor() {
    let db = db();
    let reply = run_command(
        &db,
        &json!({"aggregate": "sales", "pipeline": [
            {"$group": {"_id": "$item", "total": {"$sum": "$qty"}}}, {"$sort": {"_id": 1}}
        ], "cursor": {}}),
    );
    assert_eq!(
        reply,
        json!({"cursor": {"firstBatch": [{"_id": "a", "total": 7}, {"_id": "b", "total": 1}],
                          "id": 0, "ns": ":memory:.sales"}, "ok": 1})
    );
    let reply = run_command(
        &db,
        &json!({"aggregate": "sales", "pipeline": [{"$count": "n"}], "cursor": {"batchSize": 10}, "allowDiskUse": true}),
    );
    assert_eq!(reply["cursor"]["firstBatch"], json!([{"n": 3}]));
    let reply = run_command(
        &db,
        &json!({"aggregate": "sales", "pipeline": [{"$match": {"qty": 2}}], "explain": true}),
    );
    assert_eq!(reply["ok"], json!(1));
    assert_eq!(reply["stages"][0]["engine"], json!("sql"));
}

#[test]
fn aggregate_errors() {
    let db = db();
    let reply = run_command(&db, &json!({"aggregate": "sales", "pipeline": []}));
    assert_eq!(reply["ok"], json!(0));
    assert_eq!(reply["code"], json!(9));
    let reply = run_command(
        &db,
        &json!({"aggregate": "sales", "pipeline": [{"$nope": 1}], "cursor": {}}),
    );
    assert_eq!(reply["ok"], json!(0));
    assert_eq!(reply["code"], json!(40324));
    assert!(reply["errmsg"]
        .as_str()
        .unwrap_or_default()
        .contains("$nope"));
    let reply = run_command(
        &db,
        &json!({"aggregate": "sales", "pipeline": {}, "cursor": {}}),
    );
    assert_eq!(reply["ok"], json!(0));
    let reply = run_command(
        &db,
        &json!({"aggregate": "sales", "pipeline": [], "cursor": {}, "bogus": 1}),
    );
    assert_eq!(reply["ok"], json!(0));
}
