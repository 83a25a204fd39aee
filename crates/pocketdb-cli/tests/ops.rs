//! End-to-end tests of the operations subcommands: databases, backup, restore, vacuum,
//! check, stats, sql, import --bulk.

use serde_json::Value;

mod common;
use common::{run_in, stdout};

#[test]
fn operations_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let docs = (0..200)
        .map(|i| format!("{{\"_id\": {i}, \"n\": {i}}}\n"))
        .collect::<String>();
    let o = run_in(
        dir,
        &[
            "--dir",
            "d",
            "--database",
            "app",
            "import",
            "-c",
            "things",
            "--bulk",
        ],
        &docs,
    );
    assert!(o.status.success(), "{o:?}");
    run_in(
        dir,
        &["--dir", "d", "--database", "other", "import", "-c", "x"],
        "{\"a\": 1}\n",
    );

    let o = run_in(dir, &["--dir", "d", "databases"], "");
    assert_eq!(stdout(&o), "app\nother\n");

    let o = run_in(dir, &["--dir", "d", "--database", "app", "stats"], "");
    assert!(o.status.success());
    assert!(stdout(&o).contains("things"), "{}", stdout(&o));
    let o = run_in(dir, &["--dir", "d", "stats", "--json"], "");
    let lines: Vec<Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["collections"][0]["documents"], 200);

    let o = run_in(
        dir,
        &[
            "--dir",
            "d",
            "--database",
            "app",
            "sql",
            "SELECT count(*) AS n FROM c_things WHERE doc ->> '$.n' >= ?",
            "--param",
            "150",
        ],
        "",
    );
    assert_eq!(stdout(&o).trim(), "{\"n\":50}");
    let o = run_in(
        dir,
        &[
            "--dir",
            "d",
            "--database",
            "app",
            "sql",
            "DELETE FROM c_things",
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(2), "read-only by default");

    // Backup everything, damage the live data, restore.
    let o = run_in(dir, &["--dir", "d", "backup", "--to", "bk"], "");
    assert!(o.status.success(), "{o:?}");
    assert!(dir.join("bk/app.sqlite").is_file());
    let o = run_in(
        dir,
        &[
            "--dir",
            "d",
            "--database",
            "app",
            "delete",
            "-c",
            "things",
            "--filter",
            "{}",
            "--many",
        ],
        "",
    );
    assert!(o.status.success());
    let o = run_in(dir, &["--dir", "d", "restore", "--from", "bk"], "");
    assert!(o.status.success(), "{o:?}");
    let o = run_in(
        dir,
        &["--dir", "d", "--database", "app", "count", "-c", "things"],
        "",
    );
    assert_eq!(stdout(&o).trim(), "200");

    // One database to a file and back.
    let o = run_in(
        dir,
        &[
            "--dir",
            "d",
            "--database",
            "app",
            "backup",
            "--to",
            "app-copy.sqlite",
        ],
        "",
    );
    assert!(o.status.success(), "{o:?}");
    let o = run_in(
        dir,
        &["--db", "app-copy.sqlite", "count", "-c", "things"],
        "",
    );
    assert_eq!(stdout(&o).trim(), "200");

    let o = run_in(dir, &["--dir", "d", "vacuum"], "");
    assert!(o.status.success(), "{o:?}");
    let o = run_in(dir, &["--dir", "d", "check"], "");
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stdout(&o), "app: ok\nother: ok\n");
}

#[test]
fn check_reports_damage_with_exit_code_1() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let docs = (0..3000)
        .map(|i| format!("{{\"_id\": {i}, \"text\": \"{}\"}}\n", "words ".repeat(20)))
        .collect::<String>();
    let o = run_in(dir, &["--db", "good.sqlite", "import", "-c", "c"], &docs);
    assert!(o.status.success());
    run_in(dir, &["--db", "good.sqlite", "vacuum"], "");
    let o = run_in(dir, &["--db", "good.sqlite", "check"], "");
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let mut bytes = std::fs::read(dir.join("good.sqlite")).unwrap();
    for (i, b) in bytes[8192..60_000].iter_mut().enumerate() {
        *b = (i * 13 % 256) as u8;
    }
    std::fs::write(dir.join("bad.sqlite"), &bytes).unwrap();
    let o = run_in(dir, &["--db", "bad.sqlite", "check"], "");
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(stdout(&o).contains("problem"), "{}", stdout(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).is_empty()
            || !String::from_utf8_lossy(&o.stderr).contains("panicked")
    );
}
