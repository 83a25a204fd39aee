use super::*;
use serde_json::json;

fn db() -> Database {
    Database::memory().unwrap()
}

fn run(db: &Database, cmd: Value) -> Value {
    run_command(db, &cmd)
}

fn seed(db: &Database) {
    let reply = run(
        db,
        json!({"insert": "users", "documents": [
            {"_id": 1, "name": "Ada", "age": 36, "tags": ["math"]},
            {"_id": 2, "name": "Linus", "age": 28, "tags": ["os", "git"]},
            {"_id": 3, "name": "Grace", "age": 45, "tags": ["navy", "math"]},
        ]}),
    );
    assert_eq!(reply, json!({"n": 3, "ok": 1}));
}

fn assert_error(reply: &Value, code: i32, code_name: &str, needle: &str) {
    assert_eq!(reply["ok"], 0, "{reply}");
    assert_eq!(reply["code"], code, "{reply}");
    assert_eq!(reply["codeName"], code_name, "{reply}");
    let msg = reply["errmsg"].as_str().unwrap();
    assert!(msg.contains(needle), "{msg:?} should contain {needle:?}");
}

#[test]
fn ping() {
    assert_eq!(run(&db(), json!({"ping": 1})), json!({"ok": 1}));
    assert_eq!(
        run(&db(), json!({"ping": 1, "$db": "admin", "lsid": {"id": 1}})),
        json!({"ok": 1})
    );
}

#[test]
fn unknown_command_and_malformed_documents() {
    let db = db();
    assert_error(
        &run(&db, json!({"frobnicate": "users"})),
        59,
        "CommandNotFound",
        "no such command: 'frobnicate'",
    );
    assert_error(
        &run(&db, json!({})),
        59,
        "CommandNotFound",
        "no such command",
    );
    assert_error(
        &run(&db, json!([1, 2])),
        9,
        "FailedToParse",
        "must be a document",
    );
    assert_error(
        &run(&db, json!({"find": 5})),
        73,
        "InvalidNamespace",
        "collection name has invalid type int",
    );
    assert_error(
        &run(&db, json!({"find": "users", "fliter": {}})),
        40415,
        "Location40415",
        "BSON field 'find.fliter' is an unknown field.",
    );
}

#[test]
fn insert_reports_count_and_generates_ids() {
    let db = db();
    seed(&db);
    let reply = run(
        &db,
        json!({"insert": "users", "documents": [{"name": "New"}]}),
    );
    assert_eq!(reply, json!({"n": 1, "ok": 1}));
    let doc = db
        .collection::<Value>("users")
        .find_one(json!({"name": "New"}))
        .unwrap()
        .unwrap();
    assert!(doc["_id"].is_string());
}

#[test]
fn insert_write_errors_ordered_and_unordered() {
    let db = db();
    seed(&db);
    let reply = run(
        &db,
        json!({"insert": "users", "documents": [{"_id": 10}, {"_id": 1}, {"_id": 11}]}),
    );
    assert_eq!(reply["ok"], 1);
    assert_eq!(reply["n"], 1);
    let errors = reply["writeErrors"].as_array().unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["index"], 1);
    assert_eq!(errors[0]["code"], 11000);
    assert!(errors[0]["errmsg"]
        .as_str()
        .unwrap()
        .starts_with("E11000 duplicate key error"));
    assert_eq!(
        db.collection::<Value>("users")
            .count_documents(json!({}))
            .unwrap(),
        4
    );

    let reply = run(
        &db,
        json!({"insert": "users", "ordered": false,
               "documents": [{"_id": 1}, {"_id": 20}, {"$bad": 1}]}),
    );
    assert_eq!(reply["n"], 1);
    let indexes: Vec<Value> = reply["writeErrors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["index"].clone())
        .collect();
    assert_eq!(indexes, vec![json!(0), json!(2)]);
    assert_eq!(reply["writeErrors"][1]["code"], 2);
    // A value that is not a document fails the whole command, as in MongoDB: nothing
    // of it is inserted.
    let reply = run(
        &db,
        json!({"insert": "users", "ordered": false, "documents": [{"_id": 30}, 5]}),
    );
    assert_error(
        &reply,
        14,
        "TypeMismatch",
        "BSON field 'insert.documents.1' is the wrong type 'int', expected type 'object'",
    );
    assert_eq!(
        db.collection::<Value>("users")
            .count_documents(json!({"_id": 30}))
            .unwrap(),
        0
    );
}

/// `listIndexes` shows the `_id` index as MongoDB does, without a `unique` flag.
#[test]
fn list_indexes_shows_the_id_index_as_mongodb() {
    let db = db();
    seed(&db);
    let reply = run(&db, json!({"listIndexes": "users"}));
    assert_eq!(
        reply["cursor"]["firstBatch"][0],
        json!({"v": 2, "key": {"_id": 1}, "name": "_id_"})
    );
}

#[test]
fn insert_argument_errors() {
    let db = db();
    assert_error(
        &run(&db, json!({"insert": "users"})),
        40414,
        "Location40414",
        "BSON field 'insert.documents' is missing but a required field",
    );
    assert_error(
        &run(&db, json!({"insert": "users", "documents": {"a": 1}})),
        14,
        "TypeMismatch",
        "expected type 'array'",
    );
    assert_error(
        &run(&db, json!({"insert": "users", "documents": []})),
        16,
        "InvalidLength",
        "Write batch sizes",
    );
    assert_error(
        &run(&db, json!({"insert": "bad$name", "documents": [{}]})),
        73,
        "InvalidNamespace",
        "bad$name",
    );
    assert!(db.list_collections().unwrap().is_empty());
}

#[test]
fn find_with_sort_skip_limit_projection() {
    let db = db();
    seed(&db);
    let reply = run(
        &db,
        json!({"find": "users", "filter": {"age": {"$gt": 30}}, "sort": {"age": -1},
               "projection": {"name": 1, "_id": 0}}),
    );
    assert_eq!(
        reply,
        json!({"cursor": {"firstBatch": [{"name": "Grace"}, {"name": "Ada"}], "id": 0,
                          "ns": ":memory:.users"}, "ok": 1})
    );
    let reply = run(
        &db,
        json!({"find": "users", "sort": {"age": 1}, "skip": 1, "limit": 1, "batchSize": 10}),
    );
    assert_eq!(
        reply["cursor"]["firstBatch"],
        json!([{"_id": 1, "name": "Ada", "age": 36, "tags": ["math"]}])
    );
    let reply = run(&db, json!({"find": "nothing"}));
    assert_eq!(reply["cursor"]["firstBatch"], json!([]));
}

#[test]
fn find_errors() {
    let db = db();
    seed(&db);
    assert_error(
        &run(
            &db,
            json!({"find": "users", "filter": {"age": {"$bogus": 1}}}),
        ),
        2,
        "BadValue",
        "$bogus",
    );
    assert_error(
        &run(&db, json!({"find": "users", "filter": 3})),
        14,
        "TypeMismatch",
        "BSON field 'find.filter' is the wrong type 'int', expected type 'object'",
    );
    assert_error(
        &run(&db, json!({"find": "users", "limit": -1})),
        51024,
        "Location51024",
        "must be >= 0",
    );
    // allowDiskUse is read (and passed to the cursor), so its type is checked.
    assert_error(
        &run(
            &db,
            json!({"find": "users", "sort": {"age": 1}, "allowDiskUse": "no"}),
        ),
        14,
        "TypeMismatch",
        "BSON field 'find.allowDiskUse' is the wrong type 'string', expected type 'bool'",
    );
    let reply = run(
        &db,
        json!({"find": "users", "sort": {"name": -1}, "allowDiskUse": false, "limit": 1}),
    );
    assert_eq!(reply["cursor"]["firstBatch"][0]["name"], json!("Linus"));
    assert_error(
        &run(&db, json!({"find": "users", "sort": {"age": "up"}})),
        2,
        "BadValue",
        "sort",
    );
}

#[test]
fn update_operators_upsert_multi_and_array_filters() {
    let db = db();
    seed(&db);
    let reply = run(
        &db,
        json!({"update": "users", "updates": [
            {"q": {"tags": "math"}, "u": {"$inc": {"age": 1}}, "multi": true},
            {"q": {"name": "Nobody"}, "u": {"$set": {"age": 1}}, "upsert": true},
            {"q": {"_id": 2}, "u": {"$set": {"tags.$[t]": "linux"}},
             "arrayFilters": [{"t": "os"}]},
            {"q": {"_id": 2}, "u": {"name": "Linus T", "age": 29}},
        ]}),
    );
    assert_eq!(reply["ok"], 1, "{reply}");
    assert_eq!(reply["n"], 5);
    assert_eq!(reply["nModified"], 4);
    assert_eq!(reply["upserted"][0]["index"], 1);
    let upserted_id = reply["upserted"][0]["_id"].clone();
    let users = db.collection::<Value>("users");
    assert_eq!(
        users
            .find_one(json!({"_id": upserted_id}))
            .unwrap()
            .unwrap()["name"],
        "Nobody"
    );
    assert_eq!(
        users.find_one(json!({"_id": 2})).unwrap().unwrap(),
        json!({"_id": 2, "name": "Linus T", "age": 29})
    );
    assert_eq!(
        users.find_one(json!({"_id": 3})).unwrap().unwrap()["age"],
        46
    );
    assert!(reply.get("writeErrors").is_none());
}

#[test]
fn update_array_filters_apply() {
    let db = db();
    seed(&db);
    let reply = run(
        &db,
        json!({"update": "users", "updates": [
            {"q": {"_id": 2}, "u": {"$set": {"tags.$[t]": "linux"}}, "arrayFilters": [{"t": "os"}]},
        ]}),
    );
    assert_eq!(reply, json!({"n": 1, "nModified": 1, "ok": 1}));
    let doc = db
        .collection::<Value>("users")
        .find_one(json!({"_id": 2}))
        .unwrap()
        .unwrap();
    assert_eq!(doc["tags"], json!(["linux", "git"]));
}

#[test]
fn update_write_errors_and_command_errors() {
    let db = db();
    seed(&db);
    let reply = run(
        &db,
        json!({"update": "users", "ordered": false, "updates": [
            {"q": {"_id": 1}, "u": {"$frob": {"a": 1}}},
            {"q": {"_id": 1}, "u": {"$set": {"seen": true}}},
            {"q": {}, "u": {"replaced": true}, "multi": true},
            {"q": {"a": {"$nope": 1}}, "u": {"$set": {"x": 1}}},
        ]}),
    );
    assert_eq!(reply["ok"], 1);
    assert_eq!(reply["n"], 1);
    assert_eq!(reply["nModified"], 1);
    let errors = reply["writeErrors"].as_array().unwrap();
    assert_eq!(errors.len(), 3);
    assert_eq!(errors[0]["index"], 0);
    assert_eq!(errors[0]["code"], 9);
    assert_eq!(errors[1]["index"], 2);
    assert_eq!(errors[1]["code"], 9);
    assert_eq!(errors[2]["index"], 3);
    assert_eq!(errors[2]["code"], 2);

    // Ordered: stops at the first failure.
    let reply = run(
        &db,
        json!({"update": "users", "updates": [
            {"q": {"_id": 1}, "u": {"$frob": {"a": 1}}},
            {"q": {"_id": 1}, "u": {"$set": {"second": true}}},
        ]}),
    );
    assert_eq!(reply["n"], 0);
    assert_eq!(reply["writeErrors"].as_array().unwrap().len(), 1);
    let doc = db
        .collection::<Value>("users")
        .find_one(json!({"_id": 1}))
        .unwrap()
        .unwrap();
    assert!(doc.get("second").is_none());

    assert_error(
        &run(
            &db,
            json!({"update": "users", "updates": [{"u": {"$set": {"a": 1}}}]}),
        ),
        40414,
        "Location40414",
        "BSON field 'update.updates.q' is missing",
    );
    assert_error(
        &run(
            &db,
            json!({"update": "users", "updates": [{"q": {}, "u": [{"$set": {"a": 1}}]}]}),
        ),
        2,
        "BadValue",
        "pipeline",
    );
    assert_error(
        &run(&db, json!({"update": "users", "updates": [5]})),
        14,
        "TypeMismatch",
        "update.updates",
    );
}

#[test]
fn delete_one_and_all() {
    let db = db();
    seed(&db);
    let reply = run(
        &db,
        json!({"delete": "users", "deletes": [{"q": {"tags": "math"}, "limit": 1}]}),
    );
    assert_eq!(reply, json!({"n": 1, "ok": 1}));
    let reply = run(
        &db,
        json!({"delete": "users", "deletes": [{"q": {}, "limit": 0}]}),
    );
    assert_eq!(reply, json!({"n": 2, "ok": 1}));
}

#[test]
fn delete_errors() {
    let db = db();
    seed(&db);
    assert_error(
        &run(
            &db,
            json!({"delete": "users", "deletes": [{"q": {}, "limit": 2}]}),
        ),
        9,
        "FailedToParse",
        "must be 0 or 1",
    );
    assert_error(
        &run(&db, json!({"delete": "users", "deletes": [{"q": {}}]})),
        40414,
        "Location40414",
        "delete.deletes.limit",
    );
    let reply = run(
        &db,
        json!({"delete": "users", "deletes": [{"q": {"$where": "x"}, "limit": 0}]}),
    );
    assert_eq!(reply["ok"], 1);
    assert_eq!(reply["n"], 0);
    assert_eq!(reply["writeErrors"][0]["index"], 0);
    assert_eq!(reply["writeErrors"][0]["code"], 2);
    assert_eq!(
        db.collection::<Value>("users")
            .count_documents(json!({}))
            .unwrap(),
        3
    );
}

#[test]
fn count_with_skip_and_limit() {
    let db = db();
    seed(&db);
    assert_eq!(
        run(&db, json!({"count": "users"})),
        json!({"n": 3, "ok": 1})
    );
    assert_eq!(
        run(
            &db,
            json!({"count": "users", "query": {"age": {"$lt": 40}}})
        ),
        json!({"n": 2, "ok": 1})
    );
    assert_eq!(
        run(&db, json!({"count": "users", "skip": 1, "limit": -1})),
        json!({"n": 1, "ok": 1})
    );
    assert_eq!(run(&db, json!({"count": "none"})), json!({"n": 0, "ok": 1}));
    assert_error(
        &run(&db, json!({"count": "users", "query": {"$and": 1}})),
        2,
        "BadValue",
        "$and",
    );
}

#[test]
fn distinct_values() {
    let db = db();
    seed(&db);
    assert_eq!(
        run(&db, json!({"distinct": "users", "key": "tags"})),
        json!({"values": ["git", "math", "navy", "os"], "ok": 1})
    );
    assert_eq!(
        run(
            &db,
            json!({"distinct": "users", "key": "age", "query": {"age": {"$gt": 30}}})
        ),
        json!({"values": [36, 45], "ok": 1})
    );
    assert_error(
        &run(&db, json!({"distinct": "users"})),
        40414,
        "Location40414",
        "distinct.key",
    );
    assert_error(
        &run(&db, json!({"distinct": "users", "key": 5})),
        14,
        "TypeMismatch",
        "expected type 'string'",
    );
}

#[test]
fn find_and_modify_update_before_and_after() {
    let db = db();
    seed(&db);
    let reply = run(
        &db,
        json!({"findAndModify": "users", "query": {"tags": "math"}, "sort": {"age": -1},
               "update": {"$inc": {"age": 1}}}),
    );
    assert_eq!(reply["ok"], 1);
    assert_eq!(reply["value"]["name"], "Grace");
    assert_eq!(reply["value"]["age"], 45);
    assert_eq!(
        reply["lastErrorObject"],
        json!({"n": 1, "updatedExisting": true})
    );

    let reply = run(
        &db,
        json!({"findAndModify": "users", "query": {"_id": 3}, "new": true,
               "update": {"$inc": {"age": 1}}, "fields": {"age": 1}}),
    );
    assert_eq!(reply["value"], json!({"_id": 3, "age": 47}));
    assert_eq!(
        reply["lastErrorObject"],
        json!({"n": 1, "updatedExisting": true})
    );

    let reply = run(
        &db,
        json!({"findAndModify": "users", "query": {"_id": 99}, "update": {"$set": {"a": 1}}}),
    );
    assert_eq!(reply["value"], Value::Null);
    assert_eq!(
        reply["lastErrorObject"],
        json!({"n": 0, "updatedExisting": false})
    );
}

#[test]
fn find_and_modify_upsert_and_replace() {
    let db = db();
    seed(&db);
    let reply = run(
        &db,
        json!({"findAndModify": "users", "query": {"name": "Zed"}, "upsert": true,
               "new": true, "update": {"$set": {"age": 20}}}),
    );
    let id = reply["value"]["_id"].clone();
    assert!(id.is_string(), "{reply}");
    assert_eq!(
        reply["lastErrorObject"],
        json!({"n": 1, "updatedExisting": false, "upserted": id})
    );
    // Upsert that returns the (absent) "before" document still reports the new _id.
    let reply = run(
        &db,
        json!({"findAndModify": "users", "query": {"_id": 50}, "upsert": true,
               "update": {"$set": {"age": 20}}}),
    );
    assert_eq!(reply["value"], Value::Null);
    assert_eq!(
        reply["lastErrorObject"],
        json!({"n": 1, "updatedExisting": false, "upserted": 50})
    );
    // Upsert that matches an existing document.
    let reply = run(
        &db,
        json!({"findAndModify": "users", "query": {"_id": 50}, "upsert": true, "new": true,
               "update": {"$set": {"age": 21}}}),
    );
    assert_eq!(reply["value"], json!({"_id": 50, "age": 21}));
    assert_eq!(
        reply["lastErrorObject"],
        json!({"n": 1, "updatedExisting": true})
    );
    // Replacement.
    let reply = run(
        &db,
        json!({"findAndModify": "users", "query": {"_id": 50}, "new": true,
               "update": {"name": "Fifty"}}),
    );
    assert_eq!(reply["value"], json!({"_id": 50, "name": "Fifty"}));
}

#[test]
fn find_and_modify_remove() {
    let db = db();
    seed(&db);
    let reply = run(
        &db,
        json!({"findAndModify": "users", "query": {}, "sort": {"age": 1}, "remove": true,
               "fields": {"name": 1, "_id": 0}}),
    );
    assert_eq!(
        reply,
        json!({"lastErrorObject": {"n": 1}, "value": {"name": "Linus"}, "ok": 1})
    );
    let reply = run(
        &db,
        json!({"findAndModify": "users", "query": {"_id": 99}, "remove": true}),
    );
    assert_eq!(
        reply,
        json!({"lastErrorObject": {"n": 0}, "value": null, "ok": 1})
    );
    assert_eq!(
        db.collection::<Value>("users")
            .count_documents(json!({}))
            .unwrap(),
        2
    );
}

#[test]
fn find_and_modify_errors() {
    let db = db();
    seed(&db);
    assert_error(
        &run(&db, json!({"findAndModify": "users", "query": {}})),
        9,
        "FailedToParse",
        "Either an update or remove=true",
    );
    assert_error(
        &run(
            &db,
            json!({"findAndModify": "users", "remove": true, "update": {"$set": {"a": 1}}}),
        ),
        9,
        "FailedToParse",
        "Cannot specify both an update and remove=true",
    );
    assert_error(
        &run(
            &db,
            json!({"findAndModify": "users", "remove": true, "new": true}),
        ),
        9,
        "FailedToParse",
        "new=true and remove=true",
    );
    assert_error(
        &run(
            &db,
            json!({"findAndModify": "users", "query": {"_id": 1}, "update": {"$frob": {"a": 1}}}),
        ),
        9,
        "FailedToParse",
        "$frob",
    );
    assert_error(
        &run(
            &db,
            json!({"findAndModify": "users", "query": {"_id": 1}, "update": {"$set": {"a": 1}},
                   "fields": {"a": 1, "b": 0}}),
        ),
        2,
        "BadValue",
        "projection",
    );
    // Nothing changed.
    let doc = db
        .collection::<Value>("users")
        .find_one(json!({"_id": 1}))
        .unwrap()
        .unwrap();
    assert!(doc.get("a").is_none());
}

#[test]
fn create_drop_and_list_collections() {
    let db = db();
    assert_eq!(run(&db, json!({"create": "logs"})), json!({"ok": 1}));
    assert_error(
        &run(&db, json!({"create": "logs"})),
        48,
        "NamespaceExists",
        "logs",
    );
    assert_error(
        &run(&db, json!({"create": "logs2", "capped": true})),
        40415,
        "Location40415",
        "create.capped",
    );
    assert_error(&run(&db, json!({"create": ""})), 73, "InvalidNamespace", "");
    seed(&db);
    let reply = run(&db, json!({"listCollections": 1}));
    assert_eq!(
        reply,
        json!({"cursor": {"firstBatch": [
            {"name": "logs", "type": "collection", "options": {}, "info": {"readOnly": false}},
            {"name": "users", "type": "collection", "options": {}, "info": {"readOnly": false}},
        ], "id": 0, "ns": ":memory:.$cmd.listCollections"}, "ok": 1})
    );
    let reply = run(
        &db,
        json!({"listCollections": 1, "nameOnly": true, "filter": {"name": "users"}}),
    );
    assert_eq!(
        reply["cursor"]["firstBatch"],
        json!([{"name": "users", "type": "collection"}])
    );
    assert_eq!(
        run(&db, json!({"drop": "logs"})),
        json!({"ns": ":memory:.logs", "ok": 1})
    );
    assert_eq!(run(&db, json!({"drop": "logs"})), json!({"ok": 1}));
    assert_eq!(db.list_collections().unwrap(), vec!["users".to_string()]);
    assert_error(
        &run(&db, json!({"drop": "a$b"})),
        73,
        "InvalidNamespace",
        "a$b",
    );
}

#[test]
fn error_conversion_keeps_codes() {
    let e = CommandError::from(Error::CollectionNotFound("x".into()));
    assert_eq!(e.code, 26);
    assert_eq!(e.code_name(), "NamespaceNotFound");
    assert_eq!(code_name(12345), "Location12345");
    assert_eq!(
        e.to_reply(),
        json!({"ok": 0, "errmsg": "collection 'x' does not exist", "code": 26,
               "codeName": "NamespaceNotFound"})
    );
}

#[test]
fn commands_reach_every_member_of_a_sharded_collection() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("app.db")).unwrap();
    db.create_sharded_collection("events", crate::ShardOptions::new(3))
        .unwrap();
    let docs: Vec<Value> = (0..30)
        .map(|i| json!({"_id": i, "kind": if i % 2 == 0 { "view" } else { "click" }, "n": i}))
        .collect();
    assert_eq!(
        run(&db, json!({"insert": "events", "documents": docs})),
        json!({"n": 30, "ok": 1})
    );
    // The documents are in the member files, not the main file's placeholder table.
    assert_eq!(
        db.sql("SELECT count(*) AS n FROM \"c_events\"", &[])
            .unwrap(),
        vec![json!({"n": 0})]
    );
    let found = run(
        &db,
        json!({"find": "events", "filter": {"kind": "view"}, "sort": {"n": -1}, "limit": 2}),
    );
    assert_eq!(
        found["cursor"]["firstBatch"],
        json!([{"_id": 28, "kind": "view", "n": 28}, {"_id": 26, "kind": "view", "n": 26}])
    );
    assert_eq!(
        run(&db, json!({"count": "events", "query": {"kind": "click"}})),
        json!({"n": 15, "ok": 1})
    );
    let updated = run(
        &db,
        json!({"update": "events", "updates": [{"q": {"kind": "click"}, "u": {"$inc": {"n": 100}}, "multi": true}]}),
    );
    assert_eq!(updated["nModified"], 15, "{updated}");
    let grouped = run(
        &db,
        json!({"aggregate": "events", "pipeline": [
            {"$group": {"_id": "$kind", "total": {"$sum": "$n"}}},
            {"$sort": {"_id": 1}},
        ], "cursor": {}}),
    );
    assert_eq!(
        grouped["cursor"]["firstBatch"],
        json!([{"_id": "click", "total": 1725}, {"_id": "view", "total": 210}])
    );
    let modified = run(
        &db,
        json!({"findAndModify": "events", "query": {"_id": 99}, "update": {"$set": {"kind": "new"}}, "upsert": true, "new": true}),
    );
    assert_eq!(modified["lastErrorObject"]["upserted"], 99, "{modified}");
    assert_eq!(modified["value"], json!({"_id": 99, "kind": "new"}));
    assert_eq!(
        run(
            &db,
            json!({"delete": "events", "deletes": [{"q": {"kind": "view"}, "limit": 0}]})
        ),
        json!({"n": 15, "ok": 1})
    );
    let created = run(
        &db,
        json!({"createIndexes": "events", "indexes": [{"key": {"n": 1}, "name": "n_1"}]}),
    );
    assert_eq!(created["ok"], 1, "{created}");
    let listed = run(&db, json!({"listIndexes": "events", "cursor": {}}));
    assert_eq!(listed["cursor"]["firstBatch"][1]["name"], "n_1", "{listed}");
    let explained = run(&db, json!({"explain": {"find": "events", "filter": {}}}));
    assert_error(
        &explained,
        115,
        "CommandNotSupported",
        "sharded or partitioned",
    );
    let members = dir.path().join("app.shards").join("events");
    assert!(members.exists());
    assert_eq!(run(&db, json!({"drop": "events"}))["ok"], 1);
    assert!(!members.exists());
}

/// Update failures carry MongoDB's codes in `writeErrors` (they were all 9).
#[test]
fn update_errors_carry_mongodb_codes() {
    let db = db();
    run(
        &db,
        json!({"insert": "c", "documents": [{"_id": 1, "s": "x", "a": 1, "n": [1]}]}),
    );
    for (update, code) in [
        (json!({"$inc": {"s": 1}}), 14),
        (json!({"$set": {"_id": 2}}), 66),
        (json!({"$set": {"a": 1}, "$inc": {"a": 1}}), 40),
        (json!({"$set": {"a.b": 1}}), 28),
        (json!({"$push": {"a": 1}}), 2),
        (json!({"$bogus": {"a": 1}}), 9),
    ] {
        let reply = run(
            &db,
            json!({"update": "c", "updates": [{"q": {"_id": 1}, "u": update.clone()}]}),
        );
        assert_eq!(reply["writeErrors"][0]["code"], code, "{update}: {reply}");
    }
}

/// `renameCollection` takes full namespaces within the database; `getMore` has no
/// cursor to continue (every result comes whole in the first batch).
#[test]
fn rename_collection_and_get_more() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("app.sqlite")).unwrap();
    run(&db, json!({"insert": "a", "documents": [{"_id": 1}]}));
    let reply = run(&db, json!({"renameCollection": "app.a", "to": "app.b"}));
    assert_eq!(reply, json!({"ok": 1}));
    assert_eq!(db.list_collections().unwrap(), ["b"]);
    run(&db, json!({"insert": "c", "documents": [{"_id": 2}]}));
    let reply = run(&db, json!({"renameCollection": "app.c", "to": "app.b"}));
    assert_error(&reply, 48, "NamespaceExists", "b");
    let reply = run(
        &db,
        json!({"renameCollection": "app.c", "to": "app.b", "dropTarget": true}),
    );
    assert_eq!(reply, json!({"ok": 1}));
    let reply = run(&db, json!({"renameCollection": "other.b", "to": "app.d"}));
    assert_error(&reply, 20, "IllegalOperation", "within database 'app'");
    let reply = run(&db, json!({"renameCollection": "b", "to": "app.d"}));
    assert_error(&reply, 73, "InvalidNamespace", "full namespace");
    let reply = run(&db, json!({"getMore": 0, "collection": "b"}));
    assert_error(&reply, 43, "CursorNotFound", "cursor id 0");
    // An in-memory database has no file name: any one database name goes.
    let mem = Database::memory().unwrap();
    run(&mem, json!({"insert": "a", "documents": [{"_id": 1}]}));
    let reply = run(&mem, json!({"renameCollection": "test.a", "to": "test.b"}));
    assert_eq!(reply, json!({"ok": 1}));
}
