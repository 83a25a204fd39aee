//! Pipelines checked against mongomock (tests/reference/aggregate_generate.py →
//! aggregate_expected.json). Cases marked unordered are compared as multisets; numbers
//! compare by value (`1 == 1.0`), as MongoDB's equality does. Every mismatch is reported.

use pocketdb::Database;
use serde_json::Value;

fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| equal(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((k1, v1), (k2, v2))| k1 == k2 && equal(v1, v2))
        }
        _ => a == b,
    }
}

fn same_multiset(got: &[Value], want: &[Value]) -> bool {
    let mut left: Vec<&Value> = got.iter().collect();
    want.len() == got.len()
        && want
            .iter()
            .all(|w| match left.iter().position(|g| equal(g, w)) {
                Some(i) => {
                    left.swap_remove(i);
                    true
                }
                None => false,
            })
}

#[test]
fn aggregate_reference_cases() {
    let text = include_str!("../../../tests/reference/aggregate_expected.json");
    let reference: Value = serde_json::from_str(text).expect("aggregate_expected.json");
    let db = Database::memory().expect("db");
    let coll = db.collection::<Value>("c");
    coll.insert_many(reference["corpus"].as_array().cloned().unwrap_or_default())
        .expect("corpus");
    let cases = reference["cases"].as_array().cloned().unwrap_or_default();
    assert!(cases.len() >= 25, "too few cases: {}", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let id = case["id"].as_str().unwrap_or("?");
        let want = case["expected"].as_array().cloned().unwrap_or_default();
        match coll
            .aggregate(case["pipeline"].clone())
            .and_then(|c| c.to_vec())
        {
            Err(e) => failures.push(format!("{id}: error {e}")),
            Ok(got) => {
                let ok = if case["ordered"] == Value::Bool(true) {
                    got.len() == want.len() && got.iter().zip(&want).all(|(g, w)| equal(g, w))
                } else {
                    same_multiset(&got, &want)
                };
                if !ok {
                    failures.push(format!(
                        "{id}:\n  got  {}\n  want {}",
                        Value::Array(got),
                        Value::Array(want)
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
