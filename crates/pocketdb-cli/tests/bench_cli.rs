//! `pocketdb bench` end to end, on a small workload.

use serde_json::Value;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_pocketdb");

#[test]
fn bench_prints_one_json_object_per_workload() {
    let tmp = tempfile::tempdir().unwrap();
    let o = Command::new(BIN)
        .args([
            "bench",
            "--workload",
            "insert-many",
            "--docs",
            "2000",
            "--json",
        ])
        .args(["--dir", tmp.path().to_str().unwrap()])
        .output()
        .expect("run pocketdb bench");
    assert!(o.status.success(), "{o:?}");
    let text = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    let report: Value = serde_json::from_str(lines[0]).unwrap();
    for key in [
        "workload",
        "docs",
        "ops",
        "seconds",
        "ops_per_sec",
        "raw_seconds",
        "raw_ops_per_sec",
        "ratio_vs_raw",
    ] {
        assert!(report.get(key).is_some(), "missing {key} in {report}");
    }
    assert_eq!(report["workload"], "insert-many");
    assert_eq!(report["docs"], 2000);
    assert_eq!(report["ops"], 2000);
    assert!(report["ops_per_sec"].as_f64().unwrap() > 0.0);
    assert!(report["ratio_vs_raw"].as_f64().unwrap() > 0.0);
    // The database files went to --dir.
    assert!(tmp.path().join("bench-insert-many.sqlite").exists());
}

/// `find-sort-scan` checks that pocketdb's top-k equals SQLite's `ORDER BY … LIMIT`
/// (it fails otherwise) and that the sort ran in memory, not through an index.
#[test]
fn find_sort_scan_agrees_with_sqlite_sorting() {
    let tmp = tempfile::tempdir().unwrap();
    let o = Command::new(BIN)
        .args(["bench", "--workload", "find-sort-scan", "--docs", "3000"])
        .args([
            "--ops",
            "4",
            "--json",
            "--dir",
            tmp.path().to_str().unwrap(),
        ])
        .output()
        .expect("run pocketdb bench");
    assert!(o.status.success(), "{o:?}");
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["workload"], "find-sort-scan");
    assert_eq!(report["ops"], 4);
    assert_eq!(report["sorted_in_memory"], true);
    assert!(report["unlimited_ratio_vs_raw"].as_f64().unwrap() > 0.0);
}

#[test]
fn bench_rejects_unknown_workloads_before_running() {
    let o = Command::new(BIN)
        .args(["bench", "--workload", "warp-speed", "--docs", "10"])
        .output()
        .expect("run pocketdb bench");
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("unknown workload 'warp-speed'"), "{err}");
    assert!(err.contains("insert-many"), "{err}");
}

#[test]
fn bench_runs_with_sqlite_checkpoints_too() {
    let tmp = tempfile::tempdir().unwrap();
    let o = Command::new(BIN)
        .args([
            "bench",
            "--workload",
            "update-one",
            "--docs",
            "500",
            "--ops",
            "300",
            "--json",
            "--sqlite-checkpoints",
        ])
        .args(["--dir", tmp.path().to_str().unwrap()])
        .output()
        .expect("run pocketdb bench");
    assert!(o.status.success(), "{o:?}");
    let report: Value = serde_json::from_str(String::from_utf8_lossy(&o.stdout).trim()).unwrap();
    assert_eq!(report["workload"], "update-one");
    assert_eq!(report["ops"], 300);
}

/// `event-storage` reports the bytes per document of pocketdb (change log whole and
/// trimmed) and of raw rusqlite: the trimmed log costs less than the whole one, and
/// both at least what raw stores.
#[test]
fn event_storage_reports_bytes_per_document() {
    let tmp = tempfile::tempdir().unwrap();
    let o = Command::new(BIN)
        .args(["bench", "--workload", "event-storage", "--docs", "30000"])
        .args(["--json", "--dir", tmp.path().to_str().unwrap()])
        .output()
        .expect("run pocketdb bench");
    assert!(o.status.success(), "{o:?}");
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["workload"], "event-storage");
    assert_eq!(report["ops"], 30000);
    let bytes = |key: &str| report[key].as_f64().unwrap_or(0.0);
    let (whole, trimmed, raw) = (
        bytes("bytes_per_doc"),
        bytes("trimmed_log_bytes_per_doc"),
        bytes("raw_bytes_per_doc"),
    );
    assert!(raw > bytes("json_bytes_per_doc"), "{report}");
    assert!(trimmed >= raw * 0.95 && trimmed < whole, "{report}");
    assert!(whole < raw * 2.0, "{report}");
}
