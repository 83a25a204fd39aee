//! The CLI and the shell on sharded and partitioned collections: every command that
//! takes a collection name reaches the member files, not the empty placeholder table.

mod common;

use common::{run_in, stdout};
use pocketdb::{Database, PartitionBy, ShardOptions, TimeBucket};
use serde_json::{json, Value};

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| Value::String(l.to_string())))
        .collect()
}

#[test]
fn cli_commands_on_a_sharded_collection() -> pocketdb::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Database::open(dir.path().join("app.db"))?;
    db.create_sharded_collection("events", ShardOptions::new(3))?;
    drop(db);
    let input: String = (0..20)
        .map(|i| format!("{{\"_id\": {i}, \"kind\": \"k{}\", \"n\": {i}}}\n", i % 4))
        .collect();
    let base = ["--db", "app.db", "--collection", "events"];
    let run = |cmd: &str, extra: &[&str], stdin: &str| {
        let mut args = vec![cmd];
        args.extend_from_slice(&base);
        args.extend_from_slice(extra);
        let out = run_in(dir.path(), &args, stdin);
        assert!(
            out.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout(&out)
    };
    assert_eq!(run("import", &[], &input).trim(), "inserted 20, failed 0");
    let found = run(
        "find",
        &[
            "--filter",
            "{kind: 'k1'}",
            "--sort",
            "{n: -1}",
            "--limit",
            "2",
        ],
        "",
    );
    assert_eq!(
        lines(&found),
        vec![
            json!({"_id": 17, "kind": "k1", "n": 17}),
            json!({"_id": 13, "kind": "k1", "n": 13})
        ]
    );
    assert_eq!(
        run("count", &["--filter", "{n: {$gte: 10}}"], "").trim(),
        "10"
    );
    let kinds = run("distinct", &["--field", "kind"], "");
    assert_eq!(kinds.lines().count(), 4);
    assert_eq!(
        run(
            "update",
            &[
                "--filter",
                "{kind: 'k2'}",
                "--update",
                "{$set: {hit: true}}",
                "--many"
            ],
            ""
        )
        .trim(),
        "matched 5, modified 5, upserted 0"
    );
    assert_eq!(
        run("delete", &["--filter", "{hit: true}", "--many"], "").trim(),
        "deleted 5"
    );
    assert_eq!(lines(&run("export", &[], "")).len(), 15);

    // The files hold the documents; the main file's placeholder stays empty.
    let db = Database::open(dir.path().join("app.db"))?;
    assert_eq!(
        db.sharded::<Value>("events")?.count_documents(json!({}))?,
        15
    );
    // The main file's placeholder table stays empty.
    assert_eq!(
        db.sql("SELECT count(*) AS n FROM \"c_events\"", &[])?,
        vec![json!({"n": 0})]
    );
    Ok(())
}

#[test]
fn shell_on_a_partitioned_collection() -> pocketdb::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Database::open(dir.path().join("app.db"))?;
    db.create_partitioned_collection(
        "logs",
        PartitionBy::Time {
            field: "ts".to_string(),
            bucket: TimeBucket::Day,
        },
    )?;
    drop(db);
    let script = "db.logs.insertMany([{_id: 1, ts: '2025-01-01T10:00:00Z', level: 'info'}, \
                  {_id: 2, ts: '2025-01-02T10:00:00Z', level: 'warn'}, \
                  {_id: 3, ts: '2025-01-02T11:00:00Z', level: 'warn'}])\n\
                  db.logs.find({level: 'warn'}).sort({_id: -1}).toArray()\n\
                  db.logs.countDocuments({})\n\
                  db.logs.aggregate([{$group: {_id: '$level', n: {$sum: 1}}}, {$sort: {_id: 1}}]).toArray()\n\
                  db.logs.findOneAndUpdate({_id: 2}, {$set: {seen: true}}, {returnNewDocument: true})\n\
                  db.logs.find({}).explain()\n\
                  db.logs.stats()\n";
    let out = run_in(dir.path(), &["shell", "--db", "app.db"], script);
    let got = lines(&stdout(&out));
    assert_eq!(got[1].as_array().map(Vec::len), Some(2), "{got:?}");
    assert_eq!(got[1][0]["_id"], 3);
    assert_eq!(got[2], json!(3));
    assert_eq!(
        got[3],
        json!([{"_id": "info", "n": 1}, {"_id": "warn", "n": 2}])
    );
    assert_eq!(got[4]["seen"], true);
    assert_eq!(
        got[5],
        json!({"name": "logs", "kind": "partitioned", "documents": 3})
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("explain() is not available"), "{stderr}");
    Ok(())
}

#[test]
fn watch_a_sharded_collection_from_a_composite_token() -> pocketdb::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Database::open(dir.path().join("app.db"))?;
    let events = db.create_sharded_collection("events", ShardOptions::new(2))?;
    let token = events
        .watch(json!({}))?
        .resume_token()
        .to_json()
        .to_string();
    events.insert_many((0..4).map(|i| json!({"_id": i})))?;
    events.delete_one(json!({"_id": 2}))?;
    drop((events, db));
    let out = run_in(
        dir.path(),
        &[
            "watch",
            "--db",
            "app.db",
            "--collection",
            "events",
            "--resume-after",
            &token,
            "--limit",
            "5",
        ],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = lines(&stdout(&out));
    assert_eq!(got.len(), 5, "{got:?}");
    let deletes: Vec<&Value> = got
        .iter()
        .filter(|e| e["operationType"] == "delete")
        .collect();
    assert_eq!(deletes.len(), 1);
    assert_eq!(deletes[0]["documentKey"], json!({"_id": 2}));
    assert!(got
        .iter()
        .all(|e| e["_id"].is_object() && e["member"].is_string()));
    // A plain number cannot position several members.
    let bad = run_in(
        dir.path(),
        &[
            "watch",
            "--db",
            "app.db",
            "--collection",
            "events",
            "--resume-after",
            "0",
            "--limit",
            "1",
        ],
        "",
    );
    assert_eq!(bad.status.code(), Some(2));
    Ok(())
}
