//! The two back ends of the filter AST — SQL compilation and the in-memory matcher —
//! must agree. Documents and filters are generated (dates among their values where no
//! multikey index is involved); for every filter the SQL must return
//! exactly the matcher's documents when it claims to be exact, and a superset otherwise.
//! The collection API (which combines both) must return exactly the matcher's answer,
//! also when plans come from the plan cache: filters of one shape with other values (and
//! of other types) must never reuse a plan that answers differently.

use pocketdb::query::sql::compile_filter;
use pocketdb::query::{parse_filter, Filter};
use pocketdb::{Database, IndexOptions};
use proptest::prelude::*;

mod common;
use common::generators::{document, document_with_dates, filter, filter_with_dates, scalar};
use rusqlite::Connection;
use serde_json::{json, Value};
use std::collections::BTreeSet;

fn table(docs: &[Value]) -> Connection {
    let conn = Connection::open_in_memory().unwrap();
    pocketdb::query::sql::register_functions(&conn).unwrap();
    conn.execute_batch("CREATE TABLE t(rid INTEGER PRIMARY KEY, doc BLOB NOT NULL)")
        .unwrap();
    for (i, d) in docs.iter().enumerate() {
        conn.execute(
            "INSERT INTO t(rid, doc) VALUES (?1, jsonb(?2))",
            rusqlite::params![i as i64, d.to_string()],
        )
        .unwrap();
    }
    conn
}

fn sql_ids(conn: &Connection, filter: &Filter) -> (BTreeSet<i64>, bool) {
    let compiled = compile_filter(filter);
    let mut stmt = conn
        .prepare(&format!("SELECT rid FROM t WHERE {}", compiled.sql))
        .unwrap_or_else(|e| panic!("bad SQL {}: {e}", compiled.sql));
    let ids = stmt
        .query_map(rusqlite::params_from_iter(compiled.params.iter()), |r| {
            r.get(0)
        })
        .unwrap()
        .collect::<rusqlite::Result<BTreeSet<i64>>>()
        .unwrap();
    (ids, compiled.exact)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn sql_and_matcher_agree(docs in prop::collection::vec(document_with_dates(), 1..12), f in filter_with_dates()) {
        let Ok(parsed) = parse_filter(&f) else { return Ok(()); };
        let conn = table(&docs);
        let expected: BTreeSet<i64> = docs
            .iter()
            .enumerate()
            .filter(|(_, d)| parsed.matches(d))
            .map(|(i, _)| i as i64)
            .collect();
        let (got, exact) = sql_ids(&conn, &parsed);
        if exact {
            prop_assert_eq!(&got, &expected, "filter {} docs {:?}", f, docs);
        } else {
            prop_assert!(got.is_superset(&expected), "filter {} docs {:?}: SQL {:?} is not a superset of {:?}", f, docs, got, expected);
        }
    }

    #[test]
    fn collection_find_equals_matcher(docs in prop::collection::vec(document_with_dates(), 1..10), f in filter_with_dates()) {
        let Ok(parsed) = parse_filter(&f) else { return Ok(()); };
        let db = Database::memory().unwrap();
        let coll = db.collection::<Value>("c");
        let docs: Vec<Value> = docs
            .into_iter()
            .enumerate()
            .map(|(i, mut d)| {
                if let Value::Object(m) = &mut d {
                    m.shift_insert(0, "_id".into(), json!(i));
                }
                d
            })
            .collect();
        coll.insert_many(docs.clone()).unwrap();
        let expected: Vec<Value> = docs.iter().filter(|d| parsed.matches(d)).map(|d| d["_id"].clone()).collect();
        let got: Vec<Value> = coll.find(f.clone()).unwrap().map(|d| d.unwrap()["_id"].clone()).collect();
        prop_assert_eq!(&got, &expected, "filter {}", f);
        prop_assert_eq!(coll.count_documents(f.clone()).unwrap(), expected.len() as u64);
    }

    #[test]
    fn cached_plans_answer_like_the_matcher(
        docs in prop::collection::vec(document(), 1..10),
        filters in prop::collection::vec(filter(), 1..5),
        values in prop::collection::vec(scalar(), 8),
    ) {
        let db = Database::memory().unwrap();
        let coll = db.collection::<Value>("c");
        // Indexes make the compiler drop array branches on paths that never held an
        // array, and the planner pick side tables on those that did.
        for spec in [json!({"a": 1}), json!({"b": 1}), json!({"tags": 1}), json!({"a.b": 1})] {
            coll.create_index(spec, IndexOptions::default()).unwrap();
        }
        let docs = with_ids(docs);
        coll.insert_many(docs.clone()).unwrap();
        // Each filter, then the same structure with other values (possibly of other
        // types), each run twice: the second run of a shape binds into a cached plan.
        let mut queries = Vec::new();
        for f in &filters {
            queries.push(f.clone());
            let mut values = values.iter().cycle();
            queries.push(revalue(f, &mut values));
        }
        for f in queries.iter().chain(queries.iter()) {
            let Ok(parsed) = parse_filter(f) else { continue };
            let expected: Vec<Value> = docs.iter().filter(|d| parsed.matches(d)).map(|d| d["_id"].clone()).collect();
            let got: Vec<Value> = coll.find(f.clone()).unwrap().map(|d| d.unwrap()["_id"].clone()).collect();
            prop_assert_eq!(&got, &expected, "filter {}", f);
            prop_assert_eq!(coll.count_documents(f.clone()).unwrap(), expected.len() as u64, "count {}", f);
        }
        let stats = db.plan_cache_stats();
        prop_assert!(stats.hits > 0, "{:?}", stats);
    }
}

fn with_ids(docs: Vec<Value>) -> Vec<Value> {
    docs.into_iter()
        .enumerate()
        .map(|(i, mut d)| {
            if let Value::Object(m) = &mut d {
                m.shift_insert(0, "_id".into(), json!(i));
            }
            d
        })
        .collect()
}

/// `f` with every operand scalar replaced by the next of `values` (operands of `$type`,
/// `$regex`, `$options`, `$size`, `$mod` and `$exists` are kept: they must stay valid).
fn revalue<'a>(f: &Value, values: &mut impl Iterator<Item = &'a Value>) -> Value {
    match f {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let keep = ["$type", "$regex", "$options", "$size", "$mod", "$exists"]
                        .contains(&k.as_str());
                    (k.clone(), if keep { v.clone() } else { revalue(v, values) })
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| revalue(v, values)).collect()),
        _ => values.next().cloned().unwrap_or(Value::Null),
    }
}
