//! End-to-end tests of the `pocketdb` binary.

use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Output};

mod common;
use common::{run_in, stdout, BIN};

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Each stdout line as JSON (a bare word such as a collection name becomes a string).
fn json_lines(o: &Output) -> Vec<Value> {
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| Value::String(l.to_string())))
        .collect()
}

fn assert_ok(o: &Output) {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        stdout(o),
        stderr(o)
    );
}

fn seed(dir: &Path) {
    let data = r#"{"_id": 1, "name": "Ada", "age": 36, "tags": ["math"]}
{"_id": 2, "name": "Linus", "age": 28, "tags": ["os", "git"]}
{"_id": 3, "name": "Grace", "age": 45, "tags": ["navy", "math"]}
{"_id": 4, "name": "Alan", "age": 41}
"#;
    let out = run_in(dir, &["import", "--collection", "users"], data);
    assert_ok(&out);
    assert_eq!(stdout(&out).trim(), "inserted 4, failed 0");
}

#[test]
fn shell_through_a_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let script = r#"
db.users.insertOne({_id: 1, name: "Ada", age: 36})
db.users.insertMany([{_id: 2, name: 'Linus', age: 28,}, {_id: 3, name: "Grace", age: 45, tags: ["a,b", "c)"]}])
db.users.find({age: {$gt: 30}}).sort({age: -1}).limit(5)
db.users.find({}, {name: 1, _id: 0}).sort({name: 1}).skip(1).limit(1)
db.users.updateMany({age: {$gt: 30}}, {$inc: {age: 1}})
db.users.find({age: {$bogus: 1}})
db.users.find({_id: {$in: [1, 3]}}).projection({age: 1}).toArray()
db.users.find({name: /^g/i}, {_id: 1})
db.users.updateOne({name: "Zed"}, {$set: {age: 1}}, {upsert: true})
db.users.countDocuments({age: {$gte: 30}})
db.users.distinct("age", {age: {$lt: 40}})
show collections
db.users.deleteMany({name: {$in: ["Linus", "Zed"]}})
db.users.find().count()
exit
db.users.insertOne({_id: 99})
"#;
    let out = run_in(dir.path(), &["shell"], script);
    assert_ok(&out);
    let lines = json_lines(&out);
    let upserted = &lines[8]["insertedId"];
    assert!(upserted.is_string(), "{lines:?}");
    assert_eq!(
        lines,
        vec![
            json!({"acknowledged": true, "insertedId": 1}),
            json!({"acknowledged": true, "insertedIds": {"0": 2, "1": 3}}),
            json!({"_id": 3, "name": "Grace", "age": 45, "tags": ["a,b", "c)"]}),
            json!({"_id": 1, "name": "Ada", "age": 36}),
            json!({"name": "Grace"}),
            json!({"acknowledged": true, "insertedId": null, "matchedCount": 2,
                   "modifiedCount": 2, "upsertedCount": 0}),
            json!([{"_id": 1, "age": 37}, {"_id": 3, "age": 46}]),
            json!({"_id": 3}),
            json!({"acknowledged": true, "insertedId": upserted, "matchedCount": 0,
                   "modifiedCount": 0, "upsertedCount": 1}),
            json!(2),
            json!([1, 28, 37]),
            json!("users"),
            json!({"acknowledged": true, "deletedCount": 2}),
            json!(2),
        ]
    );
    // Results are one readable line each.
    assert!(stdout(&out).starts_with("{\"acknowledged\": true, \"insertedId\": 1}\n"));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: ") && err.contains("$bogus"),
        "{err}"
    );
    // The statement after `exit` did not run.
    let out = run_in(dir.path(), &["count", "--collection", "users"], "");
    assert_eq!(stdout(&out).trim(), "2");
}

#[test]
fn shell_errors_do_not_stop_it() {
    let dir = tempfile::tempdir().unwrap();
    let script = r#"db.users.insertOne({name: "x"
db.users.insertOne({a: 1}, {b: 2}, {c: 3})
db.users.insertOne([1])
db.users.find().limit
select * from users
db.users.insertOne({_id: 1})
db.users.insertOne({_id: 1})
db.users.frobnicate()
use other
show dbs
db.users.find({}, {_id: 1})
"#;
    let out = run_in(dir.path(), &["shell"], script);
    assert_ok(&out);
    assert_eq!(
        json_lines(&out),
        vec![
            json!({"acknowledged": true, "insertedId": 1}),
            json!("switched to db other"),
            json!("other"),
            json!("test"),
        ]
    );
    let err = stderr(&out);
    let errors: Vec<&str> = err.lines().collect();
    assert_eq!(errors.len(), 7, "{err}");
    assert!(errors.iter().all(|l| l.starts_with("error: ")), "{err}");
    assert!(errors[0].contains("incomplete statement"), "{err}");
    assert!(errors[1].contains("at most 2 arguments"), "{err}");
    assert!(errors[5].contains("E11000"), "{err}");
    assert!(errors[6].contains("frobnicate"), "{err}");

    // `use` and `show dbs` need a client directory.
    let out = run_in(
        dir.path(),
        &["shell", "--db", "one.db"],
        "use x\nshow dbs\ndb\n",
    );
    assert_ok(&out);
    assert_eq!(stdout(&out), "one\n");
    assert_eq!(stderr(&out).lines().count(), 2);
}

#[test]
fn shell_renames_collections_and_drops_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let script = r#"db.users.insertOne({_id: 1})
db.x.insertOne({_id: 2})
db.users.renameCollection("people")
db.people.renameCollection("x")
db.people.renameCollection("x", true)
show collections
db.x.findOne()
db.dropDatabase()
show collections
db.y.insertOne({_id: 3})
show collections
"#;
    let out = run_in(dir.path(), &["shell"], script);
    assert_ok(&out);
    assert_eq!(
        json_lines(&out),
        vec![
            json!({"acknowledged": true, "insertedId": 1}),
            json!({"acknowledged": true, "insertedId": 2}),
            json!({"ok": 1}),
            json!({"ok": 1}),
            json!("x"),
            json!({"_id": 1}),
            json!({"ok": 1, "dropped": "test"}),
            json!({"acknowledged": true, "insertedId": 3}),
            json!("y"),
        ]
    );
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("already exists"), "{err}");
    // Without a client directory there is no database to drop.
    let out = run_in(
        dir.path(),
        &["shell", "--db", "one.db"],
        "db.dropDatabase()\n",
    );
    assert!(stderr(&out).contains("--dir"), "{}", stderr(&out));
}

#[test]
fn shell_bulk_write_legacy_methods_and_stats() {
    let dir = tempfile::tempdir().unwrap();
    let script = r#"db.u.insert({_id: 1, a: 1})
db.u.insert([{_id: 2}, {_id: 3}])
db.u.bulkWrite([{insertOne: {document: {_id: 4}}}, {updateOne: {filter: {_id: 1}, update: {$inc: {a: 1}}}}, {replaceOne: {filter: {_id: 9}, replacement: {x: 1}, upsert: true}}, {deleteMany: {filter: {_id: {$in: [2, 3]}}}}])
db.u.bulkWrite([{insertOne: {document: {_id: 1}}}, {insertOne: {document: {_id: 5}}}], {ordered: false})
db.u.bulkWrite([{frob: {filter: {}}}])
db.u.update({}, {$set: {c: 1}}, {multi: true})
db.u.update({_id: 9}, {y: 2})
db.u.remove({c: 1}, {justOne: true})
db.u.find({}, {_id: 1})
"#;
    let out = run_in(dir.path(), &["shell"], script);
    assert_ok(&out);
    assert_eq!(
        json_lines(&out),
        vec![
            json!({"acknowledged": true, "insertedCount": 1}),
            json!({"acknowledged": true, "insertedCount": 2}),
            json!({"acknowledged": true, "insertedCount": 1, "insertedIds": {"0": 4},
                   "matchedCount": 1, "modifiedCount": 1, "deletedCount": 2,
                   "upsertedCount": 1, "upsertedIds": {"2": 9}}),
            json!({"acknowledged": true, "insertedId": null, "matchedCount": 4,
                   "modifiedCount": 4, "upsertedCount": 0}),
            json!({"acknowledged": true, "insertedId": null, "matchedCount": 1,
                   "modifiedCount": 1, "upsertedCount": 0}),
            json!({"acknowledged": true, "deletedCount": 1}),
            json!({"_id": 4}),
            json!({"_id": 9}),
            json!({"_id": 5}),
        ]
    );
    let err = stderr(&out);
    let errors: Vec<&str> = err.lines().collect();
    assert_eq!(errors.len(), 2, "{err}");
    assert!(errors[0].contains("duplicate key"), "{err}");
    assert!(errors[1].contains("unknown operation 'frob'"), "{err}");
    let out = run_in(dir.path(), &["shell"], "db.stats()\n");
    assert_ok(&out);
    let stats = &json_lines(&out)[0];
    assert_eq!(stats["database"], "test");
    assert_eq!(stats["collections"][0]["documents"], 3);
    let out = run_in(dir.path(), &["shell"], "db.u.stats()\ndb.nothing.stats()\n");
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["name"], "u");
    assert_eq!(lines[0]["documents"], 3);
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
}

#[test]
fn shell_multi_line_statement_from_a_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let script = "db.users.insertMany([\n  {_id: 1},\n  {_id: 2},\n])\ndb.users.countDocuments()\n";
    let out = run_in(dir.path(), &["shell"], script);
    assert_ok(&out);
    assert_eq!(
        json_lines(&out),
        vec![
            json!({"acknowledged": true, "insertedIds": {"0": 1, "1": 2}}),
            json!(2)
        ]
    );
}

#[test]
fn import_ndjson_with_a_bad_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = "{\"_id\": 1, \"a\": 1}\n\n{\"_id\": 2, \"a\": }\n{\"_id\": 3, \"a\": 3}\n[4]\n{\"_id\": 1}\n{\"_id\": 5}\n";
    std::fs::write(dir.path().join("in.ndjson"), data).unwrap();
    let out = run_in(
        dir.path(),
        &["import", "--collection", "c", "in.ndjson"],
        "",
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "inserted 3, failed 3");
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(lines[0].starts_with("line 3: malformed JSON"), "{err}");
    assert!(lines[1].starts_with("line 5: "), "{err}");
    assert!(lines[2].starts_with("line 6: E11000"), "{err}");
    let out = run_in(dir.path(), &["export", "--collection", "c"], "");
    assert_eq!(
        json_lines(&out),
        vec![
            json!({"_id": 1, "a": 1}),
            json!({"_id": 3, "a": 3}),
            json!({"_id": 5})
        ]
    );
}

#[test]
fn import_stop_on_error_aborts() {
    let dir = tempfile::tempdir().unwrap();
    let data = "{\"_id\": 1}\n{\"_id\": 2}\nnot json\n{\"_id\": 4}\n";
    let out = run_in(
        dir.path(),
        &["import", "--collection", "c", "--stop-on-error", "-"],
        data,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with("error: line 3: malformed JSON"),
        "{}",
        stderr(&out)
    );
    // What came before the bad line is kept, nothing after it.
    let out = run_in(dir.path(), &["count", "--collection", "c"], "");
    assert_eq!(stdout(&out).trim(), "2");
}

#[test]
fn import_json_array_in_batches() {
    let dir = tempfile::tempdir().unwrap();
    let docs: Vec<Value> = (0..2500).map(|i| json!({"_id": i, "n": i % 7})).collect();
    let text = format!("\n  {}", serde_json::to_string_pretty(&docs).unwrap());
    let out = run_in(
        dir.path(),
        &["import", "--collection", "nums", "--batch-size", "1000"],
        &text,
    );
    assert_ok(&out);
    assert_eq!(stdout(&out).trim(), "inserted 2500, failed 0");
    let out = run_in(
        dir.path(),
        &["count", "--collection", "nums", "--filter", "{n: 3}"],
        "",
    );
    assert_eq!(stdout(&out).trim(), "357");

    let out = run_in(
        dir.path(),
        &["import", "--collection", "arr"],
        "[{\"a\": 1}, 2, {\"$bad\": 1}, {\"b\": 2}]",
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out).trim(), "inserted 2, failed 2");
    assert!(stderr(&out).contains("element 1: "), "{}", stderr(&out));
    assert!(stderr(&out).contains("element 2: "), "{}", stderr(&out));

    // A malformed array is rejected whole.
    let out = run_in(
        dir.path(),
        &["import", "--collection", "bad"],
        "[{\"a\": 1}, {",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).starts_with("error: malformed JSON array"));
    let out = run_in(dir.path(), &["collections"], "");
    assert_eq!(stdout(&out), "arr\nnums\n");
}

#[test]
fn find_in_the_order_asked() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path());
    let out = run_in(
        dir.path(),
        &[
            "find",
            "--collection",
            "users",
            "--filter",
            "{age: {$gte: 30}}",
            "--sort",
            "{age: -1}",
            "--skip",
            "1",
            "--limit",
            "2",
            "--projection",
            "{name: 1, _id: 0}",
        ],
        "",
    );
    assert_ok(&out);
    // Compact JSON, one document per line.
    assert_eq!(stdout(&out), "{\"name\":\"Alan\"}\n{\"name\":\"Ada\"}\n");
    let out = run_in(
        dir.path(),
        &[
            "find",
            "-c",
            "users",
            "--sort",
            "{name: 1}",
            "--projection",
            "{_id: 1}",
        ],
        "",
    );
    assert_eq!(
        json_lines(&out),
        vec![
            json!({"_id": 1}),
            json!({"_id": 4}),
            json!({"_id": 3}),
            json!({"_id": 2})
        ]
    );
}

#[test]
fn count_distinct_update_delete_export() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path());
    let d = dir.path();
    let out = run_in(
        d,
        &["count", "-c", "users", "--filter", "{tags: 'math'}"],
        "",
    );
    assert_eq!(stdout(&out), "2\n");
    let out = run_in(d, &["distinct", "-c", "users", "--field", "tags"], "");
    assert_eq!(stdout(&out), "\"git\"\n\"math\"\n\"navy\"\n\"os\"\n");
    let out = run_in(
        d,
        &[
            "update",
            "-c",
            "users",
            "--filter",
            "{age: {$gt: 40}}",
            "--update",
            "{$inc: {age: 1}}",
            "--many",
        ],
        "",
    );
    assert_eq!(stdout(&out), "matched 2, modified 2, upserted 0\n");
    let out = run_in(
        d,
        &[
            "update",
            "-c",
            "users",
            "--filter",
            "{_id: 9}",
            "--update",
            "{$set: {name: 'Neo'}}",
            "--upsert",
        ],
        "",
    );
    assert_eq!(stdout(&out), "matched 0, modified 0, upserted 1 (_id: 9)\n");
    let out = run_in(
        d,
        &[
            "update",
            "-c",
            "users",
            "--filter",
            "{_id: 9}",
            "--update",
            "{name: 'Trinity'}",
        ],
        "",
    );
    assert_eq!(stdout(&out), "matched 1, modified 1, upserted 0\n");
    let out = run_in(
        d,
        &["delete", "-c", "users", "--filter", "{age: {$lt: 40}}"],
        "",
    );
    assert_eq!(stdout(&out), "deleted 1\n");
    let out = run_in(
        d,
        &[
            "delete",
            "-c",
            "users",
            "--filter",
            "{age: {$lt: 40}}",
            "--many",
        ],
        "",
    );
    assert_eq!(stdout(&out), "deleted 1\n");
    let out = run_in(
        d,
        &[
            "export",
            "-c",
            "users",
            "--filter",
            "{age: {$exists: true}}",
        ],
        "",
    );
    assert_eq!(
        json_lines(&out),
        vec![
            json!({"_id": 3, "name": "Grace", "age": 46, "tags": ["navy", "math"]}),
            json!({"_id": 4, "name": "Alan", "age": 42}),
        ]
    );
    let out = run_in(d, &["export", "-c", "users"], "");
    assert_eq!(json_lines(&out)[2], json!({"_id": 9, "name": "Trinity"}));
    let out = run_in(d, &["collections"], "");
    assert_eq!(stdout(&out), "users\n");
}

#[test]
fn run_a_single_command() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path());
    let out = run_in(
        dir.path(),
        &[
            "run",
            "{find: 'users', filter: {age: {$lt: 40}}, sort: {age: 1}, projection: {name: 1}}",
        ],
        "",
    );
    assert_ok(&out);
    assert_eq!(
        stdout(&out),
        "{\"cursor\":{\"firstBatch\":[{\"_id\":2,\"name\":\"Linus\"},{\"_id\":1,\"name\":\"Ada\"}],\"id\":0,\"ns\":\"test.users\"},\"ok\":1}\n"
    );
    let out = run_in(
        dir.path(),
        &["run", "{count: 'users', query: {a: {$nope: 1}}}"],
        "",
    );
    assert_eq!(out.status.code(), Some(2));
    let reply: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(reply["ok"], 0);
    assert_eq!(reply["code"], 2);
    assert_eq!(reply["codeName"], "BadValue");
    assert!(stderr(&out).starts_with("error: "));
    let out = run_in(dir.path(), &["run", "{nope: 1}"], "");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        serde_json::from_str::<Value>(stdout(&out).trim()).unwrap(),
        json!({"ok": 0, "errmsg": "no such command: 'nope'", "code": 59, "codeName": "CommandNotFound"})
    );
}

#[test]
fn run_commands_from_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let commands = r#"{insert: "c", documents: [{_id: 1, a: 1}, {_id: 2, a: 2}, {_id: 1}]}
{update: "c", updates: [{q: {_id: 3}, u: {$set: {a: 3}}, upsert: true}, {q: {}, u: {$inc: {a: 10}}, multi: true}]}
this is not json

{delete: "c", deletes: [{q: {a: 11}, limit: 1}]}
{count: "c"}
{distinct: "c", key: "a"}
{findAndModify: "c", query: {_id: 2}, update: {$set: {b: 1}}, new: true}
{listCollections: 1, nameOnly: true}
{ping: 1}
"#;
    let out = run_in(dir.path(), &["run"], commands);
    assert_ok(&out);
    let replies = json_lines(&out);
    assert_eq!(replies.len(), 9, "{}", stdout(&out));
    assert_eq!(replies[0]["n"], 2);
    assert_eq!(replies[0]["writeErrors"][0]["index"], 2);
    assert_eq!(replies[0]["writeErrors"][0]["code"], 11000);
    assert_eq!(
        replies[1],
        json!({"n": 4, "nModified": 3, "upserted": [{"index": 0, "_id": 3}], "ok": 1})
    );
    assert_eq!(replies[2]["ok"], 0);
    assert_eq!(replies[2]["codeName"], "FailedToParse");
    assert_eq!(replies[3], json!({"n": 1, "ok": 1}));
    assert_eq!(replies[4], json!({"n": 2, "ok": 1}));
    assert_eq!(replies[5], json!({"values": [12, 13], "ok": 1}));
    assert_eq!(
        replies[6],
        json!({"lastErrorObject": {"n": 1, "updatedExisting": true},
               "value": {"_id": 2, "a": 12, "b": 1}, "ok": 1})
    );
    assert_eq!(
        replies[7]["cursor"]["firstBatch"],
        json!([{"name": "c", "type": "collection"}])
    );
    assert_eq!(replies[8], json!({"ok": 1}));
}

/// Every kind of bad input exits with 2, prints one `error:` line and leaves the
/// database as it was.
#[test]
fn bad_input_exits_2_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path());
    let d = dir.path();
    let export = || stdout(&run_in(d, &["export", "-c", "users"], ""));
    let before = export();
    let cases: &[&[&str]] = &[
        &["find", "-c", "users", "--filter", "{age: "],
        &["find", "-c", "users", "--filter", "[1, 2]"],
        &["find", "-c", "users", "--filter", "{age: {$bogus: 1}}"],
        &["find", "-c", "users", "--sort", "{age: 'up'}"],
        &["find", "-c", "users", "--projection", "{a: 1, b: 0}"],
        &["find", "-c", "bad$name"],
        &["count", "-c", "users", "--filter", "{$and: 5}"],
        &["distinct", "-c", "users", "--field", ""],
        &[
            "update",
            "-c",
            "users",
            "--filter",
            "{}",
            "--update",
            "{$frob: {a: 1}}",
            "--many",
        ],
        &[
            "update",
            "-c",
            "users",
            "--filter",
            "{}",
            "--update",
            "{$set: {age: 1}, name: 'x'}",
        ],
        &[
            "update",
            "-c",
            "users",
            "--filter",
            "{}",
            "--update",
            "{name: 'x'}",
            "--many",
        ],
        &[
            "update",
            "-c",
            "users",
            "--filter",
            "{_id: 1}",
            "--update",
            "{$set: {_id: 5}}",
        ],
        &[
            "delete",
            "-c",
            "users",
            "--filter",
            "{name: {$regex: '('}}",
            "--many",
        ],
        &["delete", "-c", "users", "--filter", "not json"],
        &["run", "{insert: 'users', documents: 'nope'}"],
        &["run", "{insert: 'users'"],
        &["import", "-c", "users", "missing-file.ndjson"],
        &["--db", "x.db", "--dir", "y", "collections"],
        &["--database", "bad/name", "collections"],
        &["find"],
    ];
    let deep = format!("{{a: {}{}}}", "[".repeat(5000), "]".repeat(5000));
    let deep_case: &[&str] = &["find", "-c", "users", "--filter", &deep];
    for args in cases.iter().chain([&deep_case]) {
        let out = run_in(d, args, "");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.starts_with("error: "), "{args:?}: {err}");
        if args[0] != "find" || args.len() > 1 {
            assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        }
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    assert_eq!(export(), before);
    assert!(!d.join("x.db").exists());
}

#[test]
fn db_file_selection() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = run_in(
        d,
        &[
            "--db",
            "one.sqlite",
            "run",
            "{insert: 'c', documents: [{a: 1}]}",
        ],
        "",
    );
    assert_ok(&out);
    assert!(d.join("one.sqlite").exists());
    let out = run_in(d, &["count", "--db", "one.sqlite", "-c", "c"], "");
    assert_eq!(stdout(&out), "1\n");
    let out = run_in(
        d,
        &["--dir", "data", "--database", "app", "run", "{create: 'x'}"],
        "",
    );
    assert_ok(&out);
    assert!(d.join("data/app.sqlite").exists());
    let out = run_in(
        d,
        &["collections", "--dir", "data", "--database", "app"],
        "",
    );
    assert_eq!(stdout(&out), "x\n");
}

#[test]
fn readme_example() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/readme_example.sh");
    let out = Command::new("bash")
        .arg(&script)
        .env("POCKETDB", BIN)
        .output()
        .expect("run bash");
    assert_ok(&out);
    assert_eq!(
        stdout(&out),
        r#"inserted 3, failed 0
{"name":"Grace"}
{"name":"Ada"}
matched 1, modified 1, upserted 0
1
{"values":["en","fi","fr"],"ok":1}
{"name": "Linus", "age": 29}
{"name": "Ada", "age": 36}
"#
    );
    assert_eq!(stderr(&out), "");
}
