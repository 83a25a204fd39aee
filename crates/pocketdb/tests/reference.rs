//! Differential test against reference results: `tests/reference/expected.json` holds a
//! document corpus and several hundred cases (filters, sorts, projections, updates) whose
//! expected results were computed with mongomock and corrected by MongoDB's documentation
//! where the two disagree (see `tests/reference/README.md`).
//!
//! Every case runs on a fresh in-memory database holding the corpus, through the public
//! API only. All mismatches are collected and reported together.
//!
//! `REFERENCE_CASE=<prefix>` runs only the cases whose id starts with the prefix.

use pocketdb::{Database, UpdateOptions, UpdateResult};
use serde_json::{json, Map, Value};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// What a case produced: an error, ids (filters, sorts), documents (projections), or an
/// update's counts and the whole collection afterwards.
#[derive(Debug)]
enum Outcome {
    Error(String),
    Ids(Vec<Value>),
    Docs(Vec<Value>),
    Update {
        matched: u64,
        modified: u64,
        upserted_id: Option<Value>,
        docs: Vec<Value>,
    },
}

fn load_reference() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/reference/expected.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {path}: {e}"))
}

fn fresh_collection(corpus: &[Value]) -> pocketdb::Collection<Value> {
    let db = Database::memory().expect("in-memory database");
    let coll = db.collection::<Value>("c");
    coll.insert_many(corpus).expect("inserting the corpus");
    coll
}

fn ids_of(docs: &[Value]) -> Vec<Value> {
    docs.iter().map(|d| d["_id"].clone()).collect()
}

fn sort_by_id(docs: &mut [Value]) {
    docs.sort_by(|a, b| {
        let (x, y) = (a["_id"].as_f64(), b["_id"].as_f64());
        x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal)
    });
}

fn run_case(corpus: &[Value], case: &Value) -> pocketdb::Result<Outcome> {
    let coll = fresh_collection(corpus);
    let filter = case["filter"].clone();
    match case["kind"].as_str() {
        Some("filter") => {
            let mut docs = coll.find(filter)?.to_vec()?;
            sort_by_id(&mut docs);
            Ok(Outcome::Ids(ids_of(&docs)))
        }
        Some("sort") => {
            let docs = coll
                .find(filter)?
                .sort(case["sort"].clone())
                .projection(json!({"_id": 1}))
                .to_vec()?;
            Ok(Outcome::Ids(ids_of(&docs)))
        }
        Some("projection") => {
            let docs = coll
                .find(filter)?
                .sort(json!({"_id": 1}))
                .projection(case["projection"].clone())
                .to_vec()?;
            Ok(Outcome::Docs(docs))
        }
        Some("update") => {
            let upsert = case["upsert"].as_bool().unwrap_or(false);
            let options = UpdateOptions {
                upsert,
                array_filters: case.get("array_filters").and_then(Value::as_array).cloned(),
            };
            let result: UpdateResult = match case["op"].as_str() {
                Some("update_one") => {
                    coll.update_one_with(filter, case["update"].clone(), &options)?
                }
                Some("update_many") => {
                    coll.update_many_with(filter, case["update"].clone(), &options)?
                }
                Some("replace_one") => {
                    coll.replace_one_with(filter, case["replacement"].clone(), upsert)?
                }
                other => panic!("unknown update op {other:?}"),
            };
            let mut docs = coll.find(json!({}))?.to_vec()?;
            sort_by_id(&mut docs);
            Ok(Outcome::Update {
                matched: result.matched_count,
                modified: result.modified_count,
                upserted_id: result.upserted_id,
                docs,
            })
        }
        other => panic!("unknown case kind {other:?}"),
    }
}

/// Runs a case, turning an error into `Outcome::Error` and a panic (an unfinished module's
/// `todo!()`, or a bug) into a mismatch message.
fn run_guarded(corpus: &[Value], case: &Value) -> Result<Outcome, String> {
    match catch_unwind(AssertUnwindSafe(|| run_case(corpus, case))) {
        Ok(Ok(outcome)) => Ok(outcome),
        Ok(Err(e)) => Ok(Outcome::Error(e.to_string())),
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "non-string panic".to_string());
            Err(format!("panicked: {msg}"))
        }
    }
}

/// JSON equality with numbers compared by value (`1 == 1.0`). With `ordered`, object
/// fields must also come in the same order.
fn same_value(a: &Value, b: &Value, ordered: bool) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_value(p, q, ordered))
        }
        (Value::Object(x), Value::Object(y)) => same_object(x, y, ordered),
        _ => a == b,
    }
}

fn same_object(x: &Map<String, Value>, y: &Map<String, Value>, ordered: bool) -> bool {
    if x.len() != y.len() {
        return false;
    }
    if ordered {
        x.iter()
            .zip(y)
            .all(|((kx, vx), (ky, vy))| kx == ky && same_value(vx, vy, ordered))
    } else {
        x.iter()
            .all(|(k, vx)| y.get(k).is_some_and(|vy| same_value(vx, vy, ordered)))
    }
}

fn same_list(expected: &Value, got: &[Value], ordered: bool) -> bool {
    same_value(expected, &Value::Array(got.to_vec()), ordered)
}

/// How a case's result compares with the expectation.
enum Verdict {
    Pass,
    /// Equal except for the order of fields in some object.
    FieldOrder(String),
    Fail(String),
}

/// `unordered`: the case's field order is not specified by MongoDB (the case file says so).
fn compare(expected: &Value, got: &Outcome, unordered: bool) -> Verdict {
    if expected["error"].as_bool() == Some(true) {
        return match got {
            Outcome::Error(_) => Verdict::Pass,
            other => Verdict::Fail(format!("expected an error, got {}", describe(other))),
        };
    }
    let fail = || Verdict::Fail(format!("got {}", describe(got)));
    let docs_verdict = |want: &Value, docs: &[Value]| {
        if same_list(want, docs, !unordered) {
            Verdict::Pass
        } else if same_list(want, docs, false) {
            Verdict::FieldOrder(format!("got {}", Value::Array(docs.to_vec())))
        } else {
            fail()
        }
    };
    match got {
        Outcome::Error(_) => fail(),
        Outcome::Ids(ids) => {
            if same_list(&expected["ids"], ids, true) {
                Verdict::Pass
            } else {
                fail()
            }
        }
        Outcome::Docs(docs) => docs_verdict(&expected["docs"], docs),
        Outcome::Update {
            matched,
            modified,
            upserted_id,
            docs,
        } => {
            let counts_ok = expected["matched"].as_u64() == Some(*matched)
                && expected["modified"].as_u64() == Some(*modified)
                && same_value(
                    &expected["upserted_id"],
                    upserted_id.as_ref().unwrap_or(&Value::Null),
                    true,
                );
            if !counts_ok {
                return fail();
            }
            docs_verdict(&expected["docs"], docs)
        }
    }
}

fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Error(e) => format!("error: {e}"),
        Outcome::Ids(ids) => format!("ids {}", Value::Array(ids.clone())),
        Outcome::Docs(docs) => format!("docs {}", Value::Array(docs.clone())),
        Outcome::Update {
            matched,
            modified,
            upserted_id,
            docs,
        } => format!(
            "matched {matched}, modified {modified}, upserted_id {}, docs {}",
            upserted_id.clone().unwrap_or(Value::Null),
            Value::Array(docs.clone())
        ),
    }
}

/// The input part of a case, for the report.
fn case_input(case: &Value) -> Value {
    let mut input = case.as_object().cloned().unwrap_or_default();
    for key in [
        "id",
        "kind",
        "expected",
        "mongomock",
        "source",
        "note",
        "unordered",
    ] {
        input.remove(key);
    }
    Value::Object(input)
}

#[test]
fn reference_cases() {
    let reference = load_reference();
    let corpus = reference["corpus"]
        .as_array()
        .expect("corpus is an array")
        .clone();
    let cases = reference["cases"].as_array().expect("cases is an array");
    let only = std::env::var("REFERENCE_CASE").ok();

    // Panics are reported per case; keep the default hook from printing each one.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));

    let mut failures = Vec::new();
    let mut order_notes = Vec::new();
    let mut ran = 0;
    for case in cases {
        let id = case["id"].as_str().unwrap_or("?");
        if only.as_deref().is_some_and(|p| !id.starts_with(p)) {
            continue;
        }
        ran += 1;
        let expected = &case["expected"];
        let unordered = case["unordered"].as_bool().unwrap_or(false);
        let header = || {
            let mut s = format!(
                "[{id}] ({})\n  input:    {}\n  expected: {expected}",
                case["kind"].as_str().unwrap_or("?"),
                case_input(case)
            );
            if let Some(note) = case["note"].as_str() {
                s.push_str(&format!("\n  (documented rule: {note})"));
            }
            s
        };
        match run_guarded(&corpus, case) {
            Err(panic) => failures.push(format!("{}\n  {panic}", header())),
            Ok(outcome) => match compare(expected, &outcome, unordered) {
                Verdict::Pass => {}
                Verdict::FieldOrder(got) => {
                    order_notes.push(format!("{}\n  {got}", header()));
                }
                Verdict::Fail(got) => failures.push(format!("{}\n  {got}", header())),
            },
        }
    }
    std::panic::set_hook(hook);

    let mut report: Vec<String> = failures;
    report.extend(
        order_notes
            .into_iter()
            .map(|n| format!("{n}\n  (field order differs)")),
    );
    if !report.is_empty() {
        panic!(
            "{} of {ran} reference case(s) failed:\n\n{}\n\n{} of {ran} reference case(s) failed",
            report.len(),
            report.join("\n\n"),
            report.len()
        );
    }
    assert!(ran > 0, "no reference case selected");
}
