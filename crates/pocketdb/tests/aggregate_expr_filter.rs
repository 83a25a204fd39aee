//! `$expr` in queries: the filter AST's `Expr` variant through both back ends.

use pocketdb::query::sql::compile_filter;
use pocketdb::{Database, Error, Filter};
use serde_json::{json, Value};

fn docs() -> Vec<Value> {
    vec![
        json!({"_id": 1, "spent": 10, "budget": 20}),
        json!({"_id": 2, "spent": 30, "budget": 20}),
        json!({"_id": 3, "spent": 5}),
        json!({"_id": 4, "spent": "x", "budget": 1}),
    ]
}

#[test]
fn expr_filters_match_in_find_and_matcher() {
    let db = Database::memory().expect("db");
    let c = db.collection::<Value>("c");
    c.insert_many(docs()).expect("insert");
    let ids = |filter: Value| -> Vec<Value> {
        c.find(filter)
            .and_then(|cur| cur.to_vec())
            .expect("find")
            .into_iter()
            .map(|d| d["_id"].clone())
            .collect()
    };
    // Aggregation comparison: a string is greater than any number; missing < null.
    assert_eq!(
        ids(json!({"$expr": {"$gt": ["$spent", "$budget"]}})),
        vec![json!(2), json!(3), json!(4)]
    );
    assert_eq!(
        ids(json!({"$expr": {"$lt": ["$budget", null]}})),
        vec![json!(3)]
    );
    // Combined with ordinary conditions, under $or and $nor.
    assert_eq!(
        ids(json!({"_id": {"$lte": 2}, "$expr": {"$gt": ["$spent", "$budget"]}})),
        vec![json!(2)]
    );
    assert_eq!(
        ids(json!({"$nor": [{"$expr": {"$eq": ["$spent", 10]}}]})),
        vec![json!(2), json!(3), json!(4)]
    );
    assert_eq!(
        ids(json!({"$or": [{"_id": 1}, {"$expr": {"$eq": [{"$type": "$budget"}, "missing"]}}]})),
        vec![json!(1), json!(3)]
    );
    // An evaluation error matches nothing rather than failing the query.
    assert_eq!(
        ids(json!({"$expr": {"$gt": [{"$add": ["$spent", 1]}, 0]}})),
        vec![json!(1), json!(2), json!(3)]
    );
    assert_eq!(
        c.count_documents(json!({"$expr": {"$gte": ["$spent", 10]}}))
            .expect("count"),
        3
    );
    // Updates and deletes with $expr.
    let r = c
        .update_many(
            json!({"$expr": {"$gt": ["$spent", "$budget"]}}),
            json!({"$set": {"over": true}}),
        )
        .expect("update");
    assert_eq!(r.modified_count, 3);
}

#[test]
fn expr_compiles_to_an_inexact_superset() {
    let f = pocketdb::query::parse_filter(&json!({"$expr": {"$eq": ["$a", 1]}})).expect("parse");
    assert!(matches!(f, Filter::Expr(_)));
    let sql = compile_filter(&f);
    assert_eq!(sql.sql, "1");
    assert!(!sql.exact);
    let f =
        pocketdb::query::parse_filter(&json!({"a": 1, "$nor": [{"$expr": true}]})).expect("parse");
    assert!(!compile_filter(&f).exact);
    assert!(!f.matches(&json!({"a": 1})));
    let f = pocketdb::query::parse_filter(&json!({"$expr": "$flag"})).expect("parse");
    assert!(f.matches(&json!({"flag": 1})));
    assert!(!f.matches(&json!({"flag": 0})));
    assert!(!f.matches(&json!({})));
}

#[test]
fn malformed_expr_is_an_invalid_filter() {
    let e = pocketdb::query::parse_filter(&json!({"$expr": {"$add": 1, "$x": 2}}));
    assert!(matches!(e, Err(Error::InvalidFilter { .. })), "{e:?}");
}
