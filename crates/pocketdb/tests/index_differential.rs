//! Indexes must never change a query's answer: every filter and sort of the reference
//! suite (`tests/reference/expected.json`), and generated documents and filters, run on a
//! collection without indexes and on one with an index on every path involved (so the
//! planner uses expression indexes, multikey side tables, prefix ranges and SQL sorts),
//! and the results are compared.

use pocketdb::query::SortSpec;
use pocketdb::{Collection, Database, IndexOptions};
use proptest::prelude::*;

mod common;
use common::generators::{document, filter};
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;

fn load_reference() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/reference/expected.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {path}: {e}"))
}

/// Field paths named by a filter (outside `$elemMatch`, whose paths are relative).
fn filter_paths(filter: &Value, out: &mut BTreeSet<String>) {
    let Some(obj) = filter.as_object() else {
        return;
    };
    for (k, v) in obj {
        match k.as_str() {
            "$and" | "$or" | "$nor" => {
                for f in v.as_array().into_iter().flatten() {
                    filter_paths(f, out);
                }
            }
            k if k.starts_with('$') => {}
            k => {
                out.insert(k.to_string());
            }
        }
    }
}

fn indexable(path: &str) -> bool {
    path.split('.')
        .all(|s| !s.is_empty() && !s.bytes().all(|b| b.is_ascii_digit()) && !s.starts_with('$'))
        && path != "_id"
}

/// A collection holding `docs`, with indexes on `paths` (plus a compound one on the
/// first two) when `indexed`.
fn collection(docs: &[Value], paths: &BTreeSet<String>, indexed: bool) -> Collection<Value> {
    let db = Database::memory().unwrap();
    let c = db.collection::<Value>("c");
    if indexed {
        // Half the indexes before loading (maintained by writes), half after (built).
        let list: Vec<&String> = paths.iter().filter(|p| indexable(p)).collect();
        for p in list.iter().step_by(2) {
            c.create_index(json!({ p.as_str(): 1 }), IndexOptions::default())
                .unwrap();
        }
        c.insert_many(docs).unwrap();
        for p in list.iter().skip(1).step_by(2) {
            c.create_index(json!({ p.as_str(): -1 }), IndexOptions::default())
                .unwrap();
        }
        if list.len() >= 2 {
            let mut keys = Map::new();
            keys.insert(list[0].to_string(), json!(1));
            keys.insert(list[1].to_string(), json!(-1));
            c.create_index(
                Value::Object(keys),
                IndexOptions::default().name("compound"),
            )
            .unwrap();
        }
    } else {
        c.insert_many(docs).unwrap();
    }
    c
}

/// The answer to a query, comparable across plans: ids as a set, plus the sequence of
/// sort keys (ties may come in any order, as in MongoDB).
fn answer(
    c: &Collection<Value>,
    filter: &Value,
    sort: Option<&Value>,
    limit: i64,
) -> Result<(BTreeSet<String>, Vec<String>, u64), String> {
    let run = || -> pocketdb::Result<_> {
        let mut cur = c.find(filter.clone())?.limit(limit);
        if let Some(s) = sort {
            cur = cur.sort(s.clone());
        }
        let docs = cur.to_vec()?;
        let keys = match sort {
            Some(s) => {
                let spec = SortSpec::parse(s)?;
                docs.iter()
                    .map(|d| format!("{:?}", spec.sort_key(d)))
                    .collect()
            }
            None => Vec::new(),
        };
        let ids = if sort.is_some() && limit != 0 {
            BTreeSet::new()
        } else {
            docs.iter().map(|d| d["_id"].to_string()).collect()
        };
        let count = c.count_documents(filter.clone())?;
        Ok((ids, keys, count))
    };
    run().map_err(|e| e.to_string())
}

#[test]
fn reference_queries_answer_the_same_with_indexes() {
    let reference = load_reference();
    let corpus: Vec<Value> = reference["corpus"].as_array().unwrap().clone();
    let cases: Vec<&Value> = reference["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| matches!(c["kind"].as_str(), Some("filter" | "sort")))
        .collect();
    let mut paths = BTreeSet::new();
    for case in &cases {
        filter_paths(&case["filter"], &mut paths);
        if let Some(s) = case["sort"].as_object() {
            paths.extend(s.keys().cloned());
        }
    }
    let plain = collection(&corpus, &paths, false);
    let indexed = collection(&corpus, &paths, true);
    assert!(indexed.list_indexes().unwrap().len() > 10);
    let mut failures = Vec::new();
    let mut used_index = 0;
    for case in &cases {
        let sort = case.get("sort").filter(|s| s.is_object());
        for limit in [0, 3] {
            if limit != 0 && sort.is_none() {
                continue;
            }
            let a = answer(&plain, &case["filter"], sort, limit);
            let b = answer(&indexed, &case["filter"], sort, limit);
            if a != b {
                failures.push(format!(
                    "{} (limit {limit}): without {a:?}\n  with {b:?}",
                    case["id"]
                ));
            }
        }
        if let Ok(cur) = indexed.find(case["filter"].clone()) {
            if cur.explain().is_ok_and(|e| e.index.is_some()) {
                used_index += 1;
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The comparison is only meaningful if the indexes are actually used.
    assert!(
        used_index > cases.len() / 3,
        "indexes used by only {used_index} of {} cases",
        cases.len()
    );
}

const INDEXED_PATHS: [&str; 7] = ["a", "b", "tags", "a.b", "a.c", "b.a", "a.b.c"];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn generated_queries_answer_the_same_with_indexes(
        docs in prop::collection::vec(document(), 1..12),
        f in filter(),
        sort_path in prop::sample::select(vec!["a", "b", "a.b", "tags"]),
        desc in any::<bool>(),
        limit in 0i64..4,
    ) {
        let docs: Vec<Value> = docs
            .into_iter()
            .enumerate()
            .map(|(i, mut d)| {
                d.as_object_mut().unwrap().insert("_id".into(), json!(i));
                d
            })
            .collect();
        let paths: BTreeSet<String> = INDEXED_PATHS.iter().map(|s| s.to_string()).collect();
        let plain = collection(&docs, &paths, false);
        let indexed = collection(&docs, &paths, true);
        prop_assert_eq!(answer(&plain, &f, None, 0), answer(&indexed, &f, None, 0), "filter {}", f);
        let sort = json!({ sort_path: if desc { -1 } else { 1 } });
        prop_assert_eq!(
            answer(&plain, &f, Some(&sort), limit),
            answer(&indexed, &f, Some(&sort), limit),
            "filter {} sort {} limit {}", f, sort, limit
        );
    }
}
