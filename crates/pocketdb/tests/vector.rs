//! Vector fields: dimension checks on write, and `near` against a brute-force reference
//! on generated data (both metrics, prefilters, ties broken by `_id`).

use pocketdb::plugin::{Encryption, EncryptionKey, Metric, VectorField};
use pocketdb::{Database, Error};
use serde_json::{json, Value};
use std::cmp::Ordering;

/// A small deterministic generator (xorshift64*), so the test needs no extra crate.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// A small integer-valued component in [-3, 3], so that ties are frequent.
    fn component(&mut self) -> f64 {
        (self.next() % 7) as f64 - 3.0
    }
}

const DIM: usize = 4;

fn reference(
    docs: &[Value],
    query: &[f64],
    k: usize,
    metric: Metric,
    keep: impl Fn(&Value) -> bool,
) -> Vec<(i64, f64)> {
    let mut scored: Vec<(i64, f64)> = docs
        .iter()
        .filter(|d| keep(d))
        .filter_map(|d| {
            let v: Vec<f64> = d["v"]
                .as_array()?
                .iter()
                .filter_map(Value::as_f64)
                .collect();
            let dist = match metric {
                Metric::L2 => query
                    .iter()
                    .zip(&v)
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum::<f64>()
                    .sqrt(),
                Metric::Cosine => {
                    let dot: f64 = query.iter().zip(&v).map(|(a, b)| a * b).sum();
                    let nq = query.iter().map(|x| x * x).sum::<f64>().sqrt();
                    let nv = v.iter().map(|x| x * x).sum::<f64>().sqrt();
                    if nv == 0.0 {
                        return None;
                    }
                    1.0 - dot / (nq * nv)
                }
            };
            Some((d["_id"].as_i64()?, dist))
        })
        .collect();
    scored.sort_by(|a, b| {
        a.1.partial_cmp(&b.1)
            .unwrap_or(Ordering::Equal)
            .then(a.0.cmp(&b.0))
    });
    scored.truncate(k);
    scored
}

#[test]
fn near_matches_brute_force_reference() -> pocketdb::Result<()> {
    let db = Database::memory()?;
    db.register_collection_plugin("items", VectorField::new("v", DIM)?)?;
    let items = db.collection::<Value>("items");
    let mut g = Gen(0x9E37_79B9_7F4A_7C15);
    let docs: Vec<Value> = (0..600)
        .map(|i| {
            let v: Vec<f64> = (0..DIM).map(|_| g.component()).collect();
            json!({"_id": i, "group": i % 3, "v": v})
        })
        .collect();
    // Insert in a shuffled order so storage order is not `_id` order.
    let mut shuffled = docs.clone();
    for i in (1..shuffled.len()).rev() {
        let j = (g.next() % (i as u64 + 1)) as usize;
        shuffled.swap(i, j);
    }
    items.insert_many(&shuffled)?;
    items.insert_one(json!({"_id": 10_000, "group": 0}))?; // no vector: skipped

    for round in 0..25 {
        let query: Vec<f64> = loop {
            let q: Vec<f64> = (0..DIM).map(|_| g.component()).collect();
            if q.iter().any(|x| *x != 0.0) {
                break q;
            }
        };
        let k = [1, 5, 10, 50, 1000][round % 5];
        for metric in [Metric::Cosine, Metric::L2] {
            let got = items.near("v", &query, k, metric, json!({}))?;
            let got: Vec<(i64, f64)> = got
                .iter()
                .map(|n| (n.document["_id"].as_i64().unwrap_or(-1), n.distance))
                .collect();
            let want = reference(&docs, &query, k, metric, |_| true);
            assert_eq!(got, want, "query {query:?} k {k} {metric:?}");

            let got = items.near("v", &query, k, metric, json!({"group": {"$in": [1, 2]}}))?;
            let got: Vec<(i64, f64)> = got
                .iter()
                .map(|n| (n.document["_id"].as_i64().unwrap_or(-1), n.distance))
                .collect();
            let want = reference(&docs, &query, k, metric, |d| d["group"] != 0);
            assert_eq!(got, want, "prefiltered: query {query:?} k {k} {metric:?}");
        }
    }
    Ok(())
}

#[test]
fn ties_are_broken_by_id() -> pocketdb::Result<()> {
    let db = Database::memory()?;
    let c = db.collection::<Value>("c");
    c.insert_many([
        json!({"_id": "b", "v": [1.0, 0.0]}),
        json!({"_id": 3, "v": [0.0, 1.0]}),
        json!({"_id": "a", "v": [1.0, 0.0]}),
        json!({"_id": 1, "v": [2.0, 0.0]}),
    ])?;
    let hits = c.near("v", &[1.0, 0.0], 3, Metric::Cosine, json!({}))?;
    let ids: Vec<Value> = hits.iter().map(|h| h.document["_id"].clone()).collect();
    // Distance 0 for 1, "a", "b" (same direction): numbers sort before strings.
    assert_eq!(ids, vec![json!(1), json!("a"), json!("b")]);
    let hits = c.near("v", &[1.0, 0.0], 2, Metric::L2, json!({}))?;
    let ids: Vec<Value> = hits.iter().map(|h| h.document["_id"].clone()).collect();
    assert_eq!(ids, vec![json!("a"), json!("b")]);
    assert_eq!(hits[0].distance, 0.0);
    Ok(())
}

#[test]
fn dimension_is_validated_on_write() -> pocketdb::Result<()> {
    let db = Database::memory()?;
    db.register_collection_plugin("c", VectorField::new("emb.v", 3)?)?;
    let c = db.collection::<Value>("c");
    c.insert_one(json!({"_id": 1, "emb": {"v": [1, 2.5, -3]}}))?;
    c.insert_one(json!({"_id": 2, "other": true}))?; // optional by default
    for bad in [
        json!({"emb": {"v": [1, 2]}}),
        json!({"emb": {"v": [1, 2, 3, 4]}}),
        json!({"emb": {"v": [1, "2", 3]}}),
        json!({"emb": {"v": "1,2,3"}}),
        json!({"emb": {"v": null}}),
    ] {
        match c.insert_one(bad.clone()) {
            Err(Error::Validation { errors, .. }) => {
                assert!(errors[0].contains("emb.v"), "{errors:?}")
            }
            other => panic!("{bad}: expected a validation error, got {other:?}"),
        }
    }
    assert!(matches!(
        c.update_one(json!({"_id": 1}), json!({"$push": {"emb.v": 4}})),
        Err(Error::Validation { .. })
    ));
    assert_eq!(c.count_documents(json!({}))?, 2);

    db.register_collection_plugin("r", VectorField::new("v", 2)?.required())?;
    assert!(db
        .collection::<Value>("r")
        .insert_one(json!({"x": 1}))
        .is_err());
    assert!(VectorField::new("v", 0).is_err());
    Ok(())
}

#[test]
fn bad_queries_are_typed_errors() -> pocketdb::Result<()> {
    let db = Database::memory()?;
    let c = db.collection::<Value>("c");
    c.insert_one(json!({"v": [0.0, 0.0]}))?;
    c.insert_one(json!({"v": [1.0, 1.0]}))?;
    c.insert_one(json!({"v": [1.0, 1.0, 1.0]}))?; // other dimension: skipped
    assert!(matches!(
        c.near("v", &[], 1, Metric::L2, json!({})),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        c.near("v", &[0.0, 0.0], 1, Metric::Cosine, json!({})),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        c.near("v", &[f64::NAN, 0.0], 1, Metric::L2, json!({})),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        c.near("v", &[1.0, 0.0], 1, Metric::L2, json!({"$bad": 1})),
        Err(Error::InvalidFilter { .. })
    ));
    assert!(c
        .near("v", &[1.0, 0.0], 0, Metric::L2, json!({}))?
        .is_empty());
    // The all-zero vector is skipped under cosine only.
    assert_eq!(
        c.near("v", &[1.0, 0.0], 10, Metric::Cosine, json!({}))?
            .len(),
        1
    );
    assert_eq!(
        c.near("v", &[1.0, 0.0], 10, Metric::L2, json!({}))?.len(),
        2
    );
    Ok(())
}

#[test]
fn near_works_with_typed_collections_and_encrypted_prefilters() -> pocketdb::Result<()> {
    #[derive(serde::Deserialize, serde::Serialize, Debug)]
    struct Doc {
        _id: i64,
        owner: String,
        v: Vec<f64>,
    }
    let db = Database::memory()?;
    let enc = Encryption::new(&EncryptionKey::from_bytes([3; 32]))?.deterministic_field("owner")?;
    db.register_collection_plugin("d", enc)?;
    let d = db.collection::<Doc>("d");
    for (i, owner) in ["ann", "bob", "ann"].iter().enumerate() {
        d.insert_one(Doc {
            _id: i as i64,
            owner: owner.to_string(),
            v: vec![i as f64, 1.0],
        })?;
    }
    let hits = d.near("v", &[2.0, 1.0], 5, Metric::L2, json!({"owner": "ann"}))?;
    let ids: Vec<i64> = hits.iter().map(|h| h.document._id).collect();
    assert_eq!(ids, vec![2, 0]);
    assert_eq!(hits[0].document.owner, "ann");
    Ok(())
}
