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

/// Neighbours as comparable `(_id, distance)` pairs.
fn hits(n: &[pocketdb::plugin::Neighbor<Value>]) -> Vec<(Value, f64)> {
    n.iter()
        .map(|h| (h.document["_id"].clone(), h.distance))
        .collect()
}

fn vec0_rows(db: &Database) -> pocketdb::Result<i64> {
    let rows = db.sql(
        "SELECT ident FROM _pocketdb_vector_indexes ORDER BY ident LIMIT 1",
        &[],
    )?;
    let ident = rows[0]["ident"].as_i64().unwrap_or_default();
    let n = db.sql(
        &format!("SELECT count(*) AS n FROM \"pocketdb_v{ident}\""),
        &[],
    )?;
    Ok(n[0]["n"].as_i64().unwrap_or(-1))
}

/// The sqlite-vec path against the brute-force reference: random continuous vectors
/// (and some exact duplicates, for ties), random prefilters of every selectivity, both
/// metrics, across inserts, updates and deletes that the vec0 table must follow.
#[test]
fn vector_index_agrees_with_brute_force() -> pocketdb::Result<()> {
    let db = Database::memory()?;
    let docs = db.collection::<Value>("docs");
    let mut g = Gen(0x9E37_79B9_7F4A_7C15);
    let unit = |g: &mut Gen| (g.next() % 20_001) as f64 / 10_000.0 - 1.0;
    let n = 2500;
    let mut batch = Vec::new();
    for i in 0..n {
        let v: Vec<f64> = if i % 50 == 7 {
            vec![0.5, -0.25, 0.125, 1.0] // duplicates: ties broken by _id
        } else {
            (0..DIM).map(|_| unit(&mut g)).collect()
        };
        let mut d = json!({"_id": i, "bucket": i % 10, "group": i % 3, "embedding": v});
        if i % 97 == 0 {
            d["embedding"] = json!("not a vector"); // skipped by both paths
        }
        if i % 89 == 0 {
            d["embedding"] = json!([0.0, 0.0, 0.0, 0.0]); // skipped under cosine
        }
        batch.push(d);
    }
    docs.insert_many(batch)?;
    assert!(docs.create_vector_index("embedding", DIM, Metric::Cosine)?);
    assert!(docs.create_vector_index("embedding", DIM, Metric::L2)?);
    assert!(!docs.create_vector_index("embedding", DIM, Metric::L2)?);
    assert!(docs
        .create_vector_index("embedding", DIM + 1, Metric::L2)
        .is_err());
    let valid = |all: &[Value]| {
        all.iter()
            .filter(|d| {
                d["embedding"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x != 0.0))
            })
            .count() as i64
    };
    assert_eq!(vec0_rows(&db)?, valid(&docs.find(json!({}))?.to_vec()?));

    let prefilters = [
        json!({}),
        json!({"bucket": {"$lt": 5}}),
        json!({"bucket": 3}),
        json!({"group": 1, "bucket": {"$ne": 2}}),
        json!({"bucket": {"$in": [1, 9]}}),
        json!({"_id": {"$gte": 2400}}),
    ];
    let compare = |g: &mut Gen, round: usize| -> pocketdb::Result<()> {
        for (i, pre) in prefilters.iter().enumerate() {
            for metric in [Metric::Cosine, Metric::L2] {
                let query: Vec<f64> = if (round + i).is_multiple_of(4) {
                    vec![0.5, -0.25, 0.125, 1.0]
                } else {
                    (0..DIM).map(|_| unit(g)).collect()
                };
                for k in [1, 10, 60] {
                    let fast = docs.near("embedding", &query, k, metric, pre.clone())?;
                    let slow =
                        docs.near_brute_force("embedding", &query, k, metric, pre.clone())?;
                    assert_eq!(hits(&fast), hits(&slow), "{metric:?} k={k} {pre} {query:?}");
                    assert_eq!(fast, slow);
                }
            }
        }
        Ok(())
    };
    compare(&mut g, 0)?;

    // Writes of every kind keep the vec0 tables in step.
    docs.update_many(
        json!({"bucket": 4}),
        json!({"$set": {"embedding": [0.9, 0.1, -0.3, 0.2]}}),
    )?;
    docs.update_many(json!({"bucket": 6}), json!({"$unset": {"embedding": ""}}))?;
    docs.delete_many(json!({"bucket": 8}))?;
    docs.replace_one(
        json!({"_id": 1}),
        json!({"_id": 1, "bucket": 1, "group": 1, "embedding": [1, 1, 1, 1]}),
    )?;
    docs.insert_many((n..n + 200).map(|i| {
        json!({"_id": i, "bucket": i % 10, "group": i % 3, "embedding": [0.1, 0.2, 0.3, (i % 7) as f64]})
    }))?;
    assert_eq!(vec0_rows(&db)?, valid(&docs.find(json!({}))?.to_vec()?));
    compare(&mut g, 1)?;

    // A value beyond f32 marks the index stale: `near` stays exact by brute force.
    docs.insert_one(json!({"_id": -1, "bucket": 0, "group": 0, "embedding": [1e300, 0, 0, 0]}))?;
    compare(&mut g, 2)?;
    let top = docs.near(
        "embedding",
        &[1.0, 0.0, 0.0, 0.0],
        1,
        Metric::L2,
        json!({"_id": -1}),
    )?;
    assert_eq!(top[0].document["_id"], -1);

    // Dropping the collection drops the vec0 tables and the catalog rows.
    db.drop_collection("docs")?;
    let left = db.sql("SELECT count(*) AS n FROM _pocketdb_vector_indexes", &[])?;
    assert_eq!(left[0]["n"], 0);
    let tables = db.sql(
        "SELECT count(*) AS n FROM sqlite_master WHERE name LIKE 'pocketdb_v%'",
        &[],
    )?;
    assert_eq!(tables[0]["n"], 0);
    Ok(())
}
