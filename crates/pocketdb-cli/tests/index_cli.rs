//! `pocketdb index` and `pocketdb explain` end to end.

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_pocketdb");

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run pocketdb")
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn index_create_list_explain_drop() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let db = dir.join("app.sqlite");
    let db = db.to_str().unwrap();
    let docs: String = (0..50)
        .map(|i| format!("{{\"email\": \"u{i}@x.io\", \"age\": {}}}\n", i % 7))
        .collect();
    std::fs::write(dir.join("docs.ndjson"), docs).unwrap();
    let o = run(
        dir,
        &["import", "--db", db, "--collection", "users", "docs.ndjson"],
    );
    assert!(o.status.success(), "{o:?}");

    let o = run(
        dir,
        &[
            "index",
            "create",
            "--db",
            db,
            "--collection",
            "users",
            "--keys",
            "{email: 1}",
            "--unique",
        ],
    );
    assert!(o.status.success(), "{o:?}");
    assert_eq!(out(&o).trim(), "email_1");
    let o = run(
        dir,
        &[
            "index",
            "create",
            "--db",
            db,
            "--collection",
            "users",
            "--keys",
            "{age: 1}",
            "--unique",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("E11000"),
        "{o:?}"
    );

    let o = run(dir, &["index", "list", "--db", db, "--collection", "users"]);
    let lines: Vec<Value> = out(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["name"], "email_1");
    assert_eq!(lines[1]["unique"], true);

    let o = run(
        dir,
        &[
            "explain",
            "--db",
            db,
            "--collection",
            "users",
            "--filter",
            "{email: 'u3@x.io'}",
        ],
    );
    assert!(o.status.success(), "{o:?}");
    let plan: Value = serde_json::from_str(out(&o).trim()).unwrap();
    assert_eq!(plan["index"], "email_1");
    let o = run(
        dir,
        &[
            "explain",
            "--db",
            db,
            "--collection",
            "users",
            "--filter",
            "{age: 3}",
            "--sort",
            "{age: 1}",
            "--limit",
            "5",
        ],
    );
    let plan: Value = serde_json::from_str(out(&o).trim()).unwrap();
    assert_eq!(plan["index"], Value::Null);
    assert_eq!(plan["sorted_in_memory"], true);

    let o = run(
        dir,
        &[
            "index",
            "drop",
            "--db",
            db,
            "--collection",
            "users",
            "--name",
            "email_1",
        ],
    );
    assert!(o.status.success(), "{o:?}");
    let o = run(
        dir,
        &[
            "index",
            "drop",
            "--db",
            db,
            "--collection",
            "users",
            "--name",
            "email_1",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let o = run(
        dir,
        &[
            "index",
            "create",
            "--db",
            db,
            "--collection",
            "users",
            "--keys",
            "{a: 'x'}",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{o:?}");
}
