//! Generators of documents and MongoDB filters shared by the property tests.
#![allow(dead_code)]

use proptest::prelude::*;
use serde_json::{json, Map, Value};

pub fn scalar() -> BoxedStrategy<Value> {
    plain_scalar()
}

/// [`scalar`], or a date (see [`date`]).
pub fn scalar_or_date() -> BoxedStrategy<Value> {
    prop_oneof![6 => plain_scalar(), 1 => date()].boxed()
}

/// A date `{"$date": …}`: a few instants, several spelled more than one way (so equal
/// dates have different texts) and one before the epoch.
pub fn date() -> BoxedStrategy<Value> {
    prop::sample::select(vec![
        "2020-01-02T00:00:00.000Z",
        "2020-01-02T00:00:00Z",
        "2020-01-02T01:00:00+01:00",
        "2020-01-01T23:00:00Z",
        "2021-06-01T12:30:00.500Z",
        "1969-12-31T23:59:59Z",
    ])
    .prop_map(|t| json!({ "$date": t }))
    .boxed()
}

fn plain_scalar() -> BoxedStrategy<Value> {
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
    value_of(scalar())
}

/// [`value`] with leaves drawn from `scalar`.
pub fn value_of(scalar: BoxedStrategy<Value>) -> impl Strategy<Value = Value> {
    scalar.prop_recursive(2, 12, 4, |inner| {
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
    document_of(scalar())
}

/// [`document`] with dates among its values.
pub fn document_with_dates() -> impl Strategy<Value = Value> {
    document_of(scalar_or_date())
}

/// [`document`] with leaves drawn from `scalar`.
pub fn document_of(scalar: BoxedStrategy<Value>) -> impl Strategy<Value = Value> {
    prop::collection::vec(
        (
            prop::sample::select(vec!["a", "b", "c", "tags"]),
            value_of(scalar),
        ),
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
    condition_of(scalar())
}

/// [`condition`] with operands drawn from `s` (and `$type` asking for dates too).
pub fn condition_of(s: BoxedStrategy<Value>) -> impl Strategy<Value = Value> {
    prop_oneof![
        s.clone(),
        value_of(s.clone()),
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
            "number", "string", "array", "object", "bool", "null", "int", "double", "date"
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
    filter_of(scalar())
}

/// [`filter`] with dates among its operands.
pub fn filter_with_dates() -> impl Strategy<Value = Value> {
    filter_of(scalar_or_date())
}

/// [`filter`] with operands drawn from `scalar`.
pub fn filter_of(scalar: BoxedStrategy<Value>) -> impl Strategy<Value = Value> {
    let leaf = (path(), condition_of(scalar)).prop_map(|(p, c)| {
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
