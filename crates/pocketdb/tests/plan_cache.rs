//! The plan cache through the public API: queries of one shape reuse a plan and still
//! return exactly what the in-memory matcher selects for their own values; index
//! changes (create, drop, a path turning multikey) invalidate cached plans.

use pocketdb::query::parse_filter;
use pocketdb::{Collection, Database, IndexOptions, PlanCacheUse};
use serde_json::{json, Value};

fn docs() -> Vec<Value> {
    (0..200i64)
        .map(|i| {
            let mut d = json!({
                "_id": i,
                "email": format!("u{i}@x.io"),
                "age": i % 40,
                "score": (i % 17) as f64 + 0.5,
                "name": format!("{}{}", ["ann", "bob", "carl", "dora"][(i % 4) as usize], i),
                "tags": [format!("t{}", i % 7), "all"],
                "n": i % 9,
            });
            // Values SQLite orders unlike MongoDB, and type variety on one path.
            match i % 10 {
                0 => d["age"] = json!(format!("{}", i % 40)),
                1 => d["age"] = json!(null),
                2 => d["age"] = json!(true),
                3 => d["age"] = json!((i % 40) as f64 + 0.25),
                _ => {}
            }
            d
        })
        .collect()
}

fn seeded() -> (Database, Collection<Value>, Vec<Value>) {
    let db = Database::memory().unwrap();
    let c = db.collection::<Value>("people");
    let docs = docs();
    c.insert_many(docs.clone()).unwrap();
    for spec in [
        json!({"email": 1}),
        json!({"age": 1}),
        json!({"score": 1}),
        json!({"name": 1}),
        json!({"tags": 1}),
    ] {
        c.create_index(spec, IndexOptions::default()).unwrap();
    }
    (db, c, docs)
}

fn expected(docs: &[Value], f: &Value) -> Vec<Value> {
    let parsed = parse_filter(f).unwrap();
    docs.iter()
        .filter(|d| parsed.matches(d))
        .map(|d| d["_id"].clone())
        .collect()
}

fn found(c: &Collection<Value>, f: &Value) -> Vec<Value> {
    let mut ids: Vec<Value> = c
        .find(f.clone())
        .unwrap()
        .map(|d| d.unwrap()["_id"].clone())
        .collect();
    ids.sort_by(pocketdb::value::compare_values);
    ids
}

/// Filters of one shape per row, each instance with other values (of the same type).
fn families() -> Vec<Vec<Value>> {
    vec![
        (0..30).map(|i| json!({"email": format!("u{}@x.io", i * 7)})).collect(),
        (0..30).map(|i| json!({"age": {"$gt": i}})).collect(),
        (0..30).map(|i| json!({"age": {"$gte": i as f64 + 0.5, "$lt": 35}})).collect(),
        (0..30).map(|i| json!({"age": {"$lt": format!("{}", i)}})).collect(),
        (0..30).map(|i| json!({"score": {"$lte": i as f64 / 2.0}, "n": {"$ne": i % 9}})).collect(),
        (0..30).map(|i| json!({"tags": format!("t{}", i % 8)})).collect(),
        (0..30)
            .map(|i| json!({"tags": {"$all": [format!("t{}", i % 7), "all"]}}))
            .collect(),
        (0..30).map(|i| json!({"n": {"$in": [i % 9, (i + 3) % 9, 100]}})).collect(),
        (0..30).map(|i| json!({"n": {"$nin": [i % 9, "x"]}})).collect(),
        (0..30)
            .map(|i| json!({"name": {"$regex": format!("^{}", ["an", "bo", "car", "d", "zz"][i % 5])}}))
            .collect(),
        (0..30).map(|i| json!({"name": {"$regex": format!("{}$", i % 10)}})).collect(),
        (0..30).map(|i| json!({"n": {"$mod": [i % 4 + 2, i % 2]}})).collect(),
        (0..30).map(|i| json!({"tags": {"$size": i % 3 + 1}})).collect(),
        (0..30)
            .map(|i| json!({"$or": [{"_id": i}, {"age": {"$gte": 38 - i % 5}}]}))
            .collect(),
        (0..30).map(|i| json!({"_id": {"$in": [i, i + 1, i * 3]}, "n": {"$gte": 2}})).collect(),
        (0..30)
            .map(|i| json!({"tags": {"$elemMatch": {"$gte": format!("t{}", i % 7)}}}))
            .collect(),
    ]
}

#[test]
fn many_queries_of_one_shape_match_the_matcher_and_hit_the_cache() {
    let (db, c, docs) = seeded();
    for family in families() {
        let before = db.plan_cache_stats();
        for f in &family {
            assert_eq!(found(&c, f), expected(&docs, f), "filter {f}");
            assert_eq!(
                c.count_documents(f.clone()).unwrap(),
                expected(&docs, f).len() as u64,
                "count {f}"
            );
        }
        let after = db.plan_cache_stats();
        let queries = 2 * family.len() as u64;
        assert_eq!(after.uncacheable, before.uncacheable, "{}", family[0]);
        // One compilation for the shape; every other query reuses it.
        assert_eq!(after.misses - before.misses, 1, "{}", family[0]);
        assert_eq!(after.hits - before.hits, queries - 1, "{}", family[0]);
    }
}

#[test]
fn sorted_limited_queries_reuse_the_plan_and_the_sort() {
    let (db, c, docs) = seeded();
    for i in 0..20 {
        let low = i as f64 / 2.0;
        let got: Vec<Value> = c
            .find(json!({"score": {"$gt": low}}))
            .unwrap()
            .sort(json!({"score": 1, "_id": 1}))
            .limit(5)
            .map(|d| d.unwrap()["_id"].clone())
            .collect();
        let mut want: Vec<&Value> = docs
            .iter()
            .filter(|d| d["score"].as_f64().unwrap() > low)
            .collect();
        want.sort_by(|a, b| {
            a["score"]
                .as_f64()
                .unwrap()
                .total_cmp(&b["score"].as_f64().unwrap())
                .then(a["_id"].as_i64().cmp(&b["_id"].as_i64()))
        });
        let want: Vec<Value> = want.iter().take(5).map(|d| d["_id"].clone()).collect();
        assert_eq!(got, want, "low {low}");
    }
    let e = c
        .find(json!({"score": {"$gt": 3.5}}))
        .unwrap()
        .sort(json!({"score": 1, "_id": 1}))
        .limit(5)
        .explain()
        .unwrap();
    assert_eq!(e.plan_cache, PlanCacheUse::Hit);
    // Another sort is another plan.
    let e = c
        .find(json!({"score": {"$gt": 3.5}}))
        .unwrap()
        .sort(json!({"score": -1}))
        .explain()
        .unwrap();
    assert_eq!(e.plan_cache, PlanCacheUse::Miss);
    assert_eq!(db.plan_cache_stats().uncacheable, 0);
}

#[test]
fn explain_reports_hits_and_point_reads_bypass() {
    let (_db, c, _) = seeded();
    let e = c
        .find(json!({"email": "u1@x.io"}))
        .unwrap()
        .explain()
        .unwrap();
    assert_eq!(e.plan_cache, PlanCacheUse::Miss);
    assert_eq!(e.to_json()["plan_cache"], "miss");
    let e = c
        .find(json!({"email": "u2@x.io"}))
        .unwrap()
        .explain()
        .unwrap();
    assert_eq!(e.plan_cache, PlanCacheUse::Hit);
    assert_eq!(e.index.as_deref(), Some("email_1"));
    assert_eq!(e.to_json()["plan_cache"], "hit");
    let e = c.find(json!({"_id": 3})).unwrap().explain().unwrap();
    assert_eq!(e.plan_cache, PlanCacheUse::Bypass);
}

#[test]
fn values_of_another_type_or_class_get_their_own_plan() {
    let (db, c, docs) = seeded();
    // Same operators and paths, operands of different types: each must be answered by
    // its own SQL (type brackets, `true` embedded in SQL, null matching missing).
    let filters = [
        json!({"age": 5}),
        json!({"age": 5.5}),
        json!({"age": "5"}),
        json!({"age": true}),
        json!({"age": false}),
        json!({"age": null}),
        json!({"age": [5]}),
        json!({"age": {"x": 5}}),
        json!({"age": 18446744073709551615u64}),
        json!({"age": {"$gt": 5}}),
        json!({"age": {"$gt": "5"}}),
        json!({"age": {"$gt": null}}),
        json!({"age": {"$gte": null}}),
        json!({"age": {"$gt": false}}),
        json!({"name": {"$regex": "^bo"}}),
        json!({"name": {"$regex": "^bo", "$options": "i"}}),
        json!({"name": {"$regex": "bo"}}),
        json!({"tags": {"$size": 2}}),
        json!({"tags": {"$size": 3}}),
    ];
    for round in 0..3 {
        for f in &filters {
            assert_eq!(found(&c, f), expected(&docs, f), "round {round} filter {f}");
        }
    }
    let stats = db.plan_cache_stats();
    // `$size: 2` and `$size: 3` share a shape; everything else is its own.
    assert_eq!(stats.misses, filters.len() as u64 - 1);
    assert_eq!(stats.hits, 2 * filters.len() as u64 + 1);
}

#[test]
fn index_changes_invalidate_cached_plans() {
    let db = Database::memory().unwrap();
    let c = db.collection::<Value>("items");
    c.insert_many((0..100).map(|i| json!({"_id": i, "sku": format!("s{i}"), "qty": i % 10})))
        .unwrap();
    let plan = |sku: &str| c.find(json!({"sku": sku})).unwrap().explain().unwrap();
    assert_eq!(plan("s1").index, None);
    assert_eq!(plan("s2").plan_cache, PlanCacheUse::Hit);

    c.create_index(json!({"sku": 1}), IndexOptions::default())
        .unwrap();
    let e = plan("s3");
    assert_eq!(e.plan_cache, PlanCacheUse::Miss);
    assert_eq!(e.index.as_deref(), Some("sku_1"));
    assert!(!e.sql.contains("json_each"), "{}", e.sql);
    let e = plan("s4");
    assert_eq!(e.plan_cache, PlanCacheUse::Hit);
    assert_eq!(e.index.as_deref(), Some("sku_1"));
    assert!(db.plan_cache_stats().invalidated >= 1);

    // A document with an array on the path turns the index multikey: the scalar plan
    // would miss it.
    c.insert_one(json!({"_id": 1000, "sku": ["s5", "extra"]}))
        .unwrap();
    let e = plan("s5");
    assert_eq!(e.plan_cache, PlanCacheUse::Miss);
    assert!(e.sql.contains("pocketdb_m"), "{}", e.sql);
    let got: Vec<Value> = c
        .find(json!({"sku": "s5"}))
        .unwrap()
        .map(|d| d.unwrap()["_id"].clone())
        .collect();
    assert_eq!(got, vec![json!(5), json!(1000)]);

    c.drop_index("sku_1").unwrap();
    let e = plan("s6");
    assert_eq!(e.plan_cache, PlanCacheUse::Miss);
    assert_eq!(e.index, None);
    assert_eq!(c.find_one(json!({"sku": "s7"})).unwrap().unwrap()["_id"], 7);
}

#[test]
fn hints_are_part_of_the_key() {
    let (_db, c, docs) = seeded();
    c.create_index(json!({"n": 1}), IndexOptions::default())
        .unwrap();
    let f = json!({"n": 3, "age": {"$gte": 10}});
    let hinted = |hint: Value| c.find(f.clone()).unwrap().hint(hint).explain().unwrap();
    let a = hinted(json!("n_1"));
    let b = hinted(json!("age_1"));
    assert_eq!(a.plan_cache, PlanCacheUse::Miss);
    assert_eq!(b.plan_cache, PlanCacheUse::Miss);
    assert_eq!(a.index.as_deref(), Some("n_1"));
    assert_eq!(b.index.as_deref(), Some("age_1"));
    assert_eq!(hinted(json!("n_1")).plan_cache, PlanCacheUse::Hit);
    let err = c
        .find(f.clone())
        .unwrap()
        .hint(json!("nope"))
        .to_vec()
        .unwrap_err();
    assert!(
        matches!(err, pocketdb::Error::IndexNotFound { .. }),
        "{err}"
    );
    let got: Vec<Value> = {
        let mut v: Vec<Value> = c
            .find(f.clone())
            .unwrap()
            .hint(json!({"n": 1}))
            .map(|d| d.unwrap()["_id"].clone())
            .collect();
        v.sort_by(pocketdb::value::compare_values);
        v
    };
    assert_eq!(got, expected(&docs, &f));
}

#[test]
fn the_cache_stays_within_its_capacity() {
    let db = Database::memory().unwrap();
    let c = db.collection::<Value>("wide");
    c.insert_one(json!({"f0": 1})).unwrap();
    let n = pocketdb::PLAN_CACHE_CAPACITY + 50;
    for i in 0..n {
        let field = format!("f{i}");
        assert_eq!(
            c.count_documents(json!({field: 1})).unwrap(),
            u64::from(i == 0)
        );
    }
    let stats = db.plan_cache_stats();
    assert_eq!(stats.entries, pocketdb::PLAN_CACHE_CAPACITY as u64);
    assert_eq!(stats.evicted, 50);
    // The most recent shapes are kept.
    let before = db.plan_cache_stats().hits;
    c.count_documents(json!({format!("f{}", n - 1): 2}))
        .unwrap();
    assert_eq!(db.plan_cache_stats().hits, before + 1);
}

#[test]
fn index_driven_reads_of_any_size_come_in_storage_order() {
    let (_db, c, docs) = seeded();
    // `tags: "all"` matches every document (more than a page), `t3` a few; the first
    // page is read with the plan, the rest by row id.
    for (tag, batch) in [("all", 7), ("all", 1000), ("t3", 7), ("t3", 2), ("none", 3)] {
        let f = json!({"tags": tag});
        let want = expected(&docs, &f);
        let got: Vec<Value> = c
            .find(f.clone())
            .unwrap()
            .batch_size(batch)
            .map(|d| d.unwrap()["_id"].clone())
            .collect();
        assert_eq!(got, want, "{tag} batch {batch}");
        let got: Vec<Value> = c
            .find(f.clone())
            .unwrap()
            .batch_size(batch)
            .skip(2)
            .limit(5)
            .map(|d| d.unwrap()["_id"].clone())
            .collect();
        let want: Vec<Value> = want.into_iter().skip(2).take(5).collect();
        assert_eq!(got, want, "{tag} batch {batch} skip 2 limit 5");
    }
    // An expression index (email) and a prefix range (name).
    for f in [
        json!({"email": "u9@x.io"}),
        json!({"name": {"$regex": "^car"}}),
    ] {
        for batch in [1, 3, 500] {
            let got: Vec<Value> = c
                .find(f.clone())
                .unwrap()
                .batch_size(batch)
                .map(|d| d.unwrap()["_id"].clone())
                .collect();
            assert_eq!(got, expected(&docs, &f), "{f} batch {batch}");
        }
    }
}
