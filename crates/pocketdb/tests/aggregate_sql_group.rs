//! Property test: `$group` compiled to SQL `GROUP BY` returns what the Rust
//! implementation returns, on generated documents mixing every JSON type, missing
//! fields, arrays at and above the grouped path. A leading empty `$addFields` keeps the
//! same pipeline off the SQL path for the reference run.

use pocketdb::Database;
use proptest::prelude::*;
use serde_json::{json, Value};

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (-3i64..4).prop_map(Value::from),
        (-3i64..4).prop_map(|i| json!(i as f64)),
        (-300i64..300).prop_map(|i| json!(i as f64 / 7.0)),
        prop_oneof![Just("a"), Just("b"), Just("B"), Just("")].prop_map(Value::from),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => scalar(),
        1 => prop::collection::vec(scalar(), 0..3).prop_map(Value::from),
        1 => scalar().prop_map(|v| json!({"x": v})),
    ]
}

fn doc() -> impl Strategy<Value = Value> {
    (
        prop::option::of(value()),
        prop::option::of(value()),
        prop::option::of(prop_oneof![
            3 => value().prop_map(|v| json!({"b": v})),
            1 => prop::collection::vec(value().prop_map(|v| json!({"b": v})), 0..3).prop_map(Value::from),
            1 => scalar(),
        ]),
    )
        .prop_map(|(k, v, a)| {
            let mut m = serde_json::Map::new();
            if let Some(k) = k {
                m.insert("k".into(), k);
            }
            if let Some(v) = v {
                m.insert("v".into(), v);
            }
            if let Some(a) = a {
                m.insert("a".into(), a);
            }
            Value::Object(m)
        })
}

fn group() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just(json!("$k")),
        Just(json!("$a.b")),
        Just(json!(null)),
        Just(json!("const"))
    ];
    let path = prop_oneof![Just("$v"), Just("$k"), Just("$a.b")];
    let acc = (
        prop_oneof![Just("$sum"), Just("$avg"), Just("$min"), Just("$max")],
        path,
    )
        .prop_map(|(op, p)| json!({op: p}));
    let extra = prop_oneof![
        Just(json!({"$sum": 1})),
        Just(json!({"$count": {}})),
        Just(json!({"$sum": 3}))
    ];
    (key, prop::collection::vec(acc, 0..3), extra).prop_map(|(key, accs, extra)| {
        let mut g = serde_json::Map::new();
        g.insert("_id".into(), key);
        for (i, a) in accs.into_iter().enumerate() {
            g.insert(format!("f{i}"), a);
        }
        g.insert("n".into(), extra);
        json!({"$group": g})
    })
}

fn close(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (
                x.as_f64().unwrap_or(f64::NAN),
                y.as_f64().unwrap_or(f64::NAN),
            );
            (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0)
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| close(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((k1, v1), (k2, v2))| k1 == k2 && close(v1, v2))
        }
        _ => a == b,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn sql_group_by_equals_rust_group(docs in prop::collection::vec(doc(), 0..25), g in group(), filter in prop::bool::ANY) {
        let db = Database::memory().expect("db");
        let c = db.collection::<Value>("c");
        if !docs.is_empty() {
            c.insert_many(docs).expect("insert");
        }
        let mut head = Vec::new();
        if filter {
            head.push(json!({"$match": {"k": {"$ne": "a"}}}));
        }
        let sql: Vec<Value> = head.iter().cloned().chain([g.clone()]).collect();
        let rust: Vec<Value> = head.iter().cloned().chain([json!({"$addFields": {}}), g.clone()]).collect();
        let plan = c.explain_aggregate(Value::Array(sql.clone())).expect("explain");
        prop_assert_eq!(&plan["stages"][head.len()]["engine"], &json!("sql"), "{}", plan);
        let mut a = c.aggregate(Value::Array(sql)).and_then(|x| x.to_vec()).expect("sql path");
        let mut b = c.aggregate(Value::Array(rust)).and_then(|x| x.to_vec()).expect("rust path");
        let key = |d: &Value| {
            let mut k = String::new();
            // Group keys are equal values; the text of `_id` identifies the group up to 1 vs 1.0.
            k.push_str(&d["_id"].as_f64().map_or_else(|| d["_id"].to_string(), |f| format!("{f}")));
            k
        };
        a.sort_by_key(key);
        b.sort_by_key(key);
        prop_assert_eq!(a.len(), b.len(), "sql {:?} rust {:?}", a, b);
        for (x, y) in a.iter().zip(&b) {
            prop_assert!(close(x, y), "sql {} rust {}", x, y);
        }
    }
}
