//! The shell's index methods and `.explain()`, driven through a pipe.

use serde_json::Value;
use std::path::Path;

mod common;
use common::run_in;

/// Runs `pocketdb shell` on `db` with `script` on stdin; returns (stdout lines, stderr).
fn shell(db: &str, script: &str) -> (Vec<String>, String) {
    let o = run_in(Path::new("."), &["--db", db, "shell"], script);
    assert!(o.status.success(), "{o:?}");
    (
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(str::to_string)
            .collect(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn json(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
}

#[test]
fn create_list_explain_and_drop_indexes_in_the_shell() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("shell.sqlite");
    let db = db.to_str().unwrap();
    let script = r#"
db.users.insertMany([{email: 'a@x.io', age: 30, tags: ['x']}, {email: 'b@x.io', age: 40, tags: ['y', 'z']}])
db.users.createIndex({email: 1}, {unique: true})
db.users.createIndex({age: -1}, {name: 'by_age'})
db.users.createIndexes([{tags: 1}, {age: 1, email: 1}])
db.users.getIndexes()
db.users.find({email: 'a@x.io'}).explain()
db.users.find({age: {$gt: 1}}).sort({age: 1}).hint('by_age').explain('executionStats')
db.users.find({}).hint({email: 1}).limit(1)
db.users.insertOne({email: 'a@x.io'})
db.users.dropIndex('by_age')
db.users.dropIndex({tags: 1})
db.users.dropIndex('nope')
db.users.dropIndexes()
db.users.getIndexes()
"#;
    let (out, err) = shell(db, script);
    assert_eq!(out.len(), 12, "stdout: {out:#?}\nstderr: {err}");
    assert_eq!(json(&out[1]), Value::String("email_1".into()));
    assert_eq!(json(&out[2]), Value::String("by_age".into()));
    assert_eq!(
        json(&out[3]),
        serde_json::json!(["tags_1", "age_1_email_1"])
    );
    let indexes = json(&out[4]);
    let names: Vec<&str> = indexes
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["_id_", "email_1", "by_age", "tags_1", "age_1_email_1"]
    );
    assert_eq!(indexes[1]["unique"], true);
    assert_eq!(indexes[3]["multikey"], true);
    let plan = json(&out[5]);
    assert_eq!(plan["index"], "email_1", "{plan}");
    let plan = json(&out[6]);
    assert_eq!(plan["index"], "by_age", "{plan}");
    assert_eq!(plan["executionStats"]["nReturned"], 2, "{plan}");
    assert_eq!(json(&out[7])["email"], "a@x.io");
    // The duplicate insert fails on stderr; the drops reply with MongoDB's documents.
    assert!(err.contains("E11000"), "{err}");
    assert_eq!(json(&out[8])["nIndexesWas"], 5);
    assert_eq!(json(&out[9])["nIndexesWas"], 4);
    assert!(err.contains("nope"), "{err}");
    assert_eq!(json(&out[10])["nIndexesWas"], 3);
    assert_eq!(
        json(&out[10])["msg"],
        "non-_id indexes dropped for collection"
    );
    assert_eq!(
        json(&out[11]),
        serde_json::json!([{"v": 2, "key": {"_id": 1}, "name": "_id_"}])
    );
}

#[test]
fn index_commands_through_run() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("run.sqlite");
    let db = db.to_str().unwrap();
    let o = run_in(
        Path::new("."),
        &["--db", db, "run"],
        "{insert: 'c', documents: [{a: 1}, {a: 2}]}\n\
         {createIndexes: 'c', indexes: [{key: {a: 1}, name: 'a_1'}]}\n\
         {listIndexes: 'c'}\n\
         {explain: {find: 'c', filter: {a: 2}}}\n\
         {dropIndexes: 'c', index: 'a_1'}\n",
    );
    let replies: Vec<Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(json)
        .collect();
    assert_eq!(replies.len(), 5, "{o:?}");
    assert_eq!(replies[1]["numIndexesAfter"], 2);
    assert_eq!(replies[2]["cursor"]["firstBatch"][1]["name"], "a_1");
    assert_eq!(replies[3]["index"], "a_1");
    assert_eq!(replies[4], serde_json::json!({"nIndexesWas": 2, "ok": 1}));
}
