//! Generators of documents and MongoDB filters shared by the property tests.
#![allow(dead_code)]

use proptest::prelude::*;
use serde_json::{json, Map, Value};

pub fn scalar() -> BoxedStrategy<Value> {
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

pub fn value() -> impl Strategy<Value = Value> {
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

pub fn document() -> impl Strategy<Value = Value> {
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

pub fn path() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "a", "b", "tags", "a.b", "a.c", "b.a", "a.0", "tags.1", "a.b.c",
    ])
    .prop_map(String::from)
}

pub fn condition() -> impl Strategy<Value = Value> {
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

pub fn filter() -> impl Strategy<Value = Value> {
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
