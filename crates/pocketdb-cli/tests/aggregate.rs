//! `aggregate` through the binary: `pocketdb run` and the shell's `db.coll.aggregate`.

use serde_json::{json, Value};
use std::process::Output;

mod common;
use common::run_in;

fn lines(o: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| Value::String(l.to_string())))
        .collect()
}

#[test]
fn shell_and_run_aggregate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = r#"
db.sales.insertMany([{_id: 1, item: 'a', qty: 2}, {_id: 2, item: 'b', qty: 1}, {_id: 3, item: 'a', qty: 5}])
db.sales.aggregate([{$group: {_id: '$item', total: {$sum: '$qty'}}}, {$sort: {total: -1}}])
db.sales.aggregate([{$match: {qty: {$gt: 1}}}, {$project: {_id: 0, qty: 1}}]).toArray()
db.sales.aggregate([{$bogus: 1}])
db.sales.aggregate([]).itcount()
"#;
    let out = run_in(dir.path(), &["shell"], script);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        lines(&out),
        vec![
            json!({"acknowledged": true, "insertedIds": {"0": 1, "1": 2, "2": 3}}),
            json!({"_id": "a", "total": 7}),
            json!({"_id": "b", "total": 1}),
            json!([{"qty": 2}, {"qty": 5}]),
            json!(3),
        ]
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("$bogus"));
    let out = run_in(
        dir.path(),
        &[
            "run",
            "{aggregate: 'sales', pipeline: [{$count: 'n'}], cursor: {}}",
        ],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        lines(&out),
        vec![json!({"cursor": {"firstBatch": [{"n": 3}], "id": 0, "ns": "test.sales"}, "ok": 1})]
    );
}
