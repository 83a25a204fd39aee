//! `pocketdb watch` and the shell's `db.<coll>.watch()`.

use pocketdb::Database;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_pocketdb");

fn lines(bytes: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| Value::String(l.to_string())))
        .collect()
}

#[test]
fn watch_replays_from_a_token_as_ndjson() -> pocketdb::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("w.sqlite");
    let db = Database::open(&path)?;
    let c = db.collection::<Value>("c");
    c.insert_one(json!({"_id": 1, "a": 1}))?;
    c.update_one(json!({"_id": 1}), json!({"$set": {"a": 2}}))?;
    db.collection::<Value>("other")
        .insert_one(json!({"_id": 9}))?;
    c.delete_one(json!({"_id": 1}))?;
    let path_arg = path.to_string_lossy().into_owned();
    let out = Command::new(BIN)
        .args(["watch", "--db", &path_arg, "--collection", "c"])
        .args(["--resume-after", "0", "--limit", "3"])
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = lines(&out.stdout);
    let ops: Vec<&str> = events
        .iter()
        .map(|e| e["operationType"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(ops, ["insert", "update", "delete"]);
    assert_eq!(
        events[1]["updateDescription"]["updatedFields"],
        json!({"a": 2})
    );
    assert_eq!(events[2]["documentKey"], json!({"_id": 1}));
    // a bad filter is bad input
    let bad = Command::new(BIN)
        .args([
            "watch",
            "--db",
            &path_arg,
            "--filter",
            "{$nope: 1}",
            "--limit",
            "1",
        ])
        .args(["--resume-after", "0"])
        .output()?;
    assert_eq!(bad.status.code(), Some(2));
    Ok(())
}

#[test]
fn watch_follows_writes_of_another_process() -> pocketdb::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("f.sqlite");
    let db = Database::open(&path)?;
    let c = db.collection::<Value>("c");
    c.insert_one(json!({"_id": 0}))?;
    let start = db.last_change_seq()?.to_string();
    let mut child = Command::new(BIN)
        .args([
            "watch",
            "--db",
            &path.to_string_lossy(),
            "--collection",
            "c",
        ])
        .args(["--filter", "{operationType: 'insert'}", "--limit", "2"])
        .args(["--resume-after", &start])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    c.update_one(json!({"_id": 0}), json!({"$set": {"x": 1}}))?;
    c.insert_one(json!({"_id": 1, "n": "one"}))?;
    c.insert_one(json!({"_id": 2}))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| std::io::Error::other("no stdout"))?;
    let got: Vec<Value> = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str(&l).ok())
        .collect();
    let status = child.wait()?;
    assert!(status.success());
    assert_eq!(got.len(), 2);
    assert_eq!(got[0]["documentKey"]["_id"], 1);
    assert_eq!(got[1]["documentKey"]["_id"], 2);
    Ok(())
}

#[test]
fn shell_watch() -> pocketdb::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("s.sqlite");
    let mut child = Command::new(BIN)
        .args(["shell", "--db", &path.to_string_lossy()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let script = "db.c.insertOne({_id: 1})\n\
                  db.c.insertOne({_id: 2})\n\
                  db.c.watch({operationType: 'insert'}, {resumeAfter: 0, limit: 2})\n\
                  db.c.watch({}, {maxAwaitTimeMS: 0})\n\
                  db.c.watch({}, {bogus: 1})\n";
    child
        .stdin
        .take()
        .ok_or_else(|| std::io::Error::other("no stdin"))?
        .write_all(script.as_bytes())?;
    let out = child.wait_with_output()?;
    let got = lines(&out.stdout);
    assert_eq!(got.len(), 4, "{got:?}");
    assert_eq!(got[2]["operationType"], "insert");
    assert_eq!(got[3]["fullDocument"], json!({"_id": 2}));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown option 'bogus'"));
    Ok(())
}
