//! The two back ends of the filter AST — SQL compilation and the in-memory matcher —
//! must agree. Documents and filters are generated; for every filter the SQL must return
//! exactly the matcher's documents when it claims to be exact, and a superset otherwise.
//! The collection API (which combines both) must return exactly the matcher's answer.

use pocketdb::query::sql::compile_filter;
use pocketdb::query::{parse_filter, Filter};
use pocketdb::Database;
use proptest::prelude::*;
use rusqlite::Connection;
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;

fn scalar() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-3i64..4).prop_map(Value::from),
        (-3i64..4).prop_map(|i| json!(i as f64 + 0.5)),
        Just(json!(2.0)),
        prop::sample::select(vec!["", "a", "b", "ab", "B", "x y"]).prop_map(Value::from),
    ]
    .boxed()
}

fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(vec!["a", "b", "c"]), inner), 0..3)
                .prop_map(|kvs| {
                    let mut m = Map::new();
                    for (k, v) in kvs {
                        m.insert(k.to_string(), v);
                    }
                    Value::Object(m)
                }),
        ]
    })
}

fn document() -> impl Strategy<Value = Value> {
    prop::collection::vec(
        (prop::sample::select(vec!["a", "b", "c", "tags"]), value()),
        0..4,
    )
    .prop_map(|kvs| {
        let mut m = Map::new();
        for (k, v) in kvs {
            m.insert(k.to_string(), v);
        }
        Value::Object(m)
    })
}

fn path() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "a", "b", "tags", "a.b", "a.c", "b.a", "a.0", "tags.1", "a.b.c",
    ])
    .prop_map(String::from)
}

fn condition() -> impl Strategy<Value = Value> {
    let s = scalar();
    prop_oneof![
        s.clone(),
        value(),
        s.clone().prop_map(|v| json!({"$eq": v})),
        s.clone().prop_map(|v| json!({"$ne": v})),
        s.clone().prop_map(|v| json!({"$gt": v})),
        s.clone().prop_map(|v| json!({"$gte": v})),
        s.clone().prop_map(|v| json!({"$lt": v})),
        s.clone().prop_map(|v| json!({"$lte": v})),
        prop::collection::vec(s.clone(), 0..3).prop_map(|v| json!({"$in": v})),
        prop::collection::vec(s.clone(), 0..3).prop_map(|v| json!({"$nin": v})),
        any::<bool>().prop_map(|b| json!({"$exists": b})),
        prop::sample::select(vec![
            "number", "string", "array", "object", "bool", "null", "int", "double"
        ])
        .prop_map(|t| json!({"$type": t})),
        (0u64..3).prop_map(|n| json!({"$size": n})),
        prop::collection::vec(s.clone(), 0..3).prop_map(|v| json!({"$all": v})),
        s.clone().prop_map(|v| json!({"$elemMatch": {"$gte": v}})),
        s.clone().prop_map(|v| json!({"$elemMatch": {"a": v}})),
        (1i64..4, 0i64..3).prop_map(|(d, r)| json!({"$mod": [d, r]})),
        prop::sample::select(vec!["^a", "b$", "A", "^$"])
            .prop_map(|r| json!({"$regex": r, "$options": "i"})),
        s.clone().prop_map(|v| json!({"$not": {"$gt": v}})),
    ]
}

fn filter() -> impl Strategy<Value = Value> {
    let leaf = (path(), condition()).prop_map(|(p, c)| {
        let mut m = Map::new();
        m.insert(p, c);
        Value::Object(m)
    });
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..3).prop_map(|v| json!({"$and": v})),
            prop::collection::vec(inner.clone(), 1..3).prop_map(|v| json!({"$or": v})),
            prop::collection::vec(inner, 1..3).prop_map(|v| json!({"$nor": v})),
        ]
    })
}

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
    fn sql_and_matcher_agree(docs in prop::collection::vec(document(), 1..12), f in filter()) {
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
    fn collection_find_equals_matcher(docs in prop::collection::vec(document(), 1..10), f in filter()) {
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
}
