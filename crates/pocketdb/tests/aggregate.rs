//! Aggregation pipelines through the public API: every stage, with null / missing /
//! array edge cases. Expected results follow MongoDB's documentation (each case names the
//! rule it checks); `aggregate_reference.rs` adds cases generated with mongomock.

use pocketdb::{AggregateOptions, Client, Database, Error};
use serde_json::{json, Value};

fn coll(docs: Vec<Value>) -> (Database, pocketdb::Collection<Value>) {
    let db = Database::memory().expect("memory db");
    let c = db.collection::<Value>("c");
    if !docs.is_empty() {
        c.insert_many(docs).expect("insert");
    }
    (db, c)
}

fn run(docs: Vec<Value>, pipeline: Value) -> Vec<Value> {
    let (_db, c) = coll(docs);
    c.aggregate(pipeline)
        .and_then(|cur| cur.to_vec())
        .unwrap_or_else(|e| panic!("aggregate failed: {e}"))
}

fn run_err(docs: Vec<Value>, pipeline: Value) -> Error {
    let (_db, c) = coll(docs);
    match c.aggregate(pipeline).and_then(|cur| cur.to_vec()) {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e,
    }
}

/// Results in a canonical order, for stages whose output order MongoDB leaves open.
fn by_text(mut docs: Vec<Value>) -> Vec<Value> {
    docs.sort_by_key(|d| d.to_string());
    docs
}

fn sample() -> Vec<Value> {
    vec![
        json!({"_id": 1, "item": "abc", "price": 10, "qty": 2, "tags": ["a", "b"]}),
        json!({"_id": 2, "item": "jkl", "price": 20, "qty": 1, "tags": []}),
        json!({"_id": 3, "item": "xyz", "price": 5, "qty": 10, "tags": null}),
        json!({"_id": 4, "item": "xyz", "price": 5.5, "qty": 20}),
        json!({"_id": 5, "item": "abc", "price": 10, "qty": 10, "tags": "c"}),
    ]
}

#[test]
fn match_sort_skip_limit() {
    let out = run(
        sample(),
        json!([{"$match": {"price": {"$gte": 5.5}}}, {"$sort": {"qty": -1}}, {"$skip": 1}, {"$limit": 2}]),
    );
    let ids: Vec<Value> = out.iter().map(|d| d["_id"].clone()).collect();
    assert_eq!(ids, vec![json!(5), json!(1)]);
    // $match after $limit must not be pushed before it.
    let out = run(
        sample(),
        json!([{"$limit": 2}, {"$match": {"item": "xyz"}}]),
    );
    assert!(out.is_empty());
}

#[test]
fn group_accumulators() {
    let out = run(
        sample(),
        json!([
            {"$group": {
                "_id": "$item",
                "total": {"$sum": {"$multiply": ["$price", "$qty"]}},
                "avgQty": {"$avg": "$qty"},
                "n": {"$sum": 1},
                "c": {"$count": {}},
                "min": {"$min": "$price"},
                "max": {"$max": "$price"},
                "first": {"$first": "$qty"},
                "last": {"$last": "$qty"},
                "qtys": {"$push": "$qty"},
                "set": {"$addToSet": "$price"}
            }},
            {"$sort": {"_id": 1}}
        ]),
    );
    assert_eq!(out.len(), 3);
    assert_eq!(
        out[0],
        json!({"_id": "abc", "total": 120, "avgQty": 6.0, "n": 2, "c": 2, "min": 10, "max": 10,
               "first": 2, "last": 10, "qtys": [2, 10], "set": [10]})
    );
    assert_eq!(out[2]["total"], json!(160.0));
    assert_eq!(out[2]["min"], json!(5));
    assert_eq!(out[2]["max"], json!(5.5));
}

#[test]
fn group_null_missing_and_numbers() {
    // null and missing group together; 1 and 1.0 are one key (MongoDB $group docs).
    let docs = vec![
        json!({"_id": 1, "k": null, "v": 1}),
        json!({"_id": 2, "v": 2}),
        json!({"_id": 3, "k": 1, "v": "x"}),
        json!({"_id": 4, "k": 1.0, "v": [1, 2]}),
        json!({"_id": 5, "k": true, "v": 4}),
    ];
    let out = run(
        docs,
        json!([{"$group": {"_id": "$k", "s": {"$sum": "$v"}, "a": {"$avg": "$v"}, "m": {"$max": "$v"}}}, {"$sort": {"_id": 1}}]),
    );
    assert_eq!(
        out,
        vec![
            json!({"_id": null, "s": 3, "a": 1.5, "m": 2}),
            json!({"_id": 1, "s": 0, "a": null, "m": [1, 2]}),
            json!({"_id": true, "s": 4, "a": 4.0, "m": 4}),
        ]
    );
    // A constant key groups everything; no input gives no group.
    assert_eq!(
        run(
            sample(),
            json!([{"$group": {"_id": null, "n": {"$sum": 1}}}])
        ),
        vec![json!({"_id": null, "n": 5})]
    );
    assert!(run(vec![], json!([{"$group": {"_id": null, "n": {"$sum": 1}}}])).is_empty());
}

#[test]
fn project_addfields_unset() {
    let out = run(
        sample(),
        json!([{"$match": {"_id": 1}}, {"$project": {"item": 1, "total": {"$multiply": ["$price", "$qty"]}, "nope": "$missing"}}]),
    );
    assert_eq!(out, vec![json!({"_id": 1, "item": "abc", "total": 20})]);
    let out = run(
        sample(),
        json!([{"$match": {"_id": 2}}, {"$set": {"price": {"$add": ["$price", 1]}, "meta.x": 1}}, {"$unset": ["tags", "qty"]}]),
    );
    assert_eq!(
        out,
        vec![json!({"_id": 2, "item": "jkl", "price": 21, "meta": {"x": 1}})]
    );
    let out = run(
        sample(),
        json!([{"$match": {"_id": 3}}, {"$addFields": {"item": "$$REMOVE"}}, {"$project": {"_id": 0, "tags": 0}}]),
    );
    assert_eq!(out, vec![json!({"price": 5, "qty": 10})]);
}

#[test]
fn unwind_forms() {
    let out = run(
        sample(),
        json!([{"$unwind": "$tags"}, {"$project": {"tags": 1}}]),
    );
    // Arrays unwind per element; a non-array non-null value passes as itself; null,
    // missing and [] are dropped.
    assert_eq!(
        out,
        vec![
            json!({"_id": 1, "tags": "a"}),
            json!({"_id": 1, "tags": "b"}),
            json!({"_id": 5, "tags": "c"})
        ]
    );
    let out = run(
        sample(),
        json!([{"$unwind": {"path": "$tags", "includeArrayIndex": "i", "preserveNullAndEmptyArrays": true}}, {"$project": {"tags": 1, "i": 1}}]),
    );
    assert_eq!(
        out,
        vec![
            json!({"_id": 1, "tags": "a", "i": 0}),
            json!({"_id": 1, "tags": "b", "i": 1}),
            json!({"_id": 2, "i": null}),
            json!({"_id": 3, "tags": null, "i": null}),
            json!({"_id": 4, "i": null}),
            json!({"_id": 5, "tags": "c", "i": null}),
        ]
    );
}

#[test]
fn count_sort_by_count_replace_root() {
    assert_eq!(
        run(sample(), json!([{"$count": "n"}])),
        vec![json!({"n": 5})]
    );
    assert!(run(sample(), json!([{"$match": {"x": 1}}, {"$count": "n"}])).is_empty());
    let out = run(sample(), json!([{"$sortByCount": "$item"}]));
    assert_eq!(out[2], json!({"_id": "jkl", "count": 1}));
    assert_eq!(out[0]["count"], json!(2));
    let out = run(
        vec![
            json!({"_id": 1, "a": {"b": 1}}),
            json!({"_id": 2, "a": {"b": 2}}),
        ],
        json!([{"$replaceRoot": {"newRoot": "$a"}}]),
    );
    assert_eq!(out, vec![json!({"b": 1}), json!({"b": 2})]);
    let out = run(
        vec![json!({"_id": 1, "a": {"b": 1}})],
        json!([{"$replaceWith": {"$mergeObjects": [{"z": 0}, "$a", {"id": "$_id"}]}}]),
    );
    assert_eq!(out, vec![json!({"z": 0, "b": 1, "id": 1})]);
    let e = run_err(vec![json!({"_id": 1})], json!([{"$replaceWith": "$a"}]));
    assert!(
        matches!(e, Error::InvalidPipeline { ref stage, .. } if stage == "$replaceWith"),
        "{e}"
    );
}

#[test]
fn bucket_facet_sample() {
    let out = run(
        sample(),
        json!([{"$bucket": {"groupBy": "$price", "boundaries": [0, 10, 20], "default": "other",
                             "output": {"n": {"$sum": 1}, "items": {"$push": "$item"}}}}]),
    );
    assert_eq!(
        out,
        vec![
            json!({"_id": 0, "n": 2, "items": ["xyz", "xyz"]}),
            json!({"_id": 10, "n": 2, "items": ["abc", "abc"]}),
            json!({"_id": "other", "n": 1, "items": ["jkl"]}),
        ]
    );
    let e = run_err(
        sample(),
        json!([{"$bucket": {"groupBy": "$price", "boundaries": [0, 10]}}]),
    );
    assert!(matches!(e, Error::InvalidPipeline { .. }));
    let out = run(
        sample(),
        json!([{"$facet": {"n": [{"$count": "n"}], "top": [{"$sort": {"qty": -1}}, {"$limit": 1}, {"$project": {"_id": 1}}]}}]),
    );
    assert_eq!(out, vec![json!({"n": [{"n": 5}], "top": [{"_id": 4}]})]);
    let out = run(sample(), json!([{"$sample": {"size": 3}}]));
    assert_eq!(out.len(), 3);
    let mut ids: Vec<i64> = out.iter().filter_map(|d| d["_id"].as_i64()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 3);
}

#[test]
fn lookup_equality_and_pipeline() {
    let db = Database::memory().expect("db");
    let orders = db.collection::<Value>("orders");
    let items = db.collection::<Value>("items");
    orders
        .insert_many([
            json!({"_id": 1, "sku": "a", "qty": 1}),
            json!({"_id": 2, "sku": ["b", "c"], "qty": 2}),
            json!({"_id": 3, "qty": 3}),
        ])
        .expect("insert");
    items
        .insert_many([
            json!({"_id": 10, "sku": "a", "stock": 5}),
            json!({"_id": 11, "sku": "b", "stock": 0}),
            json!({"_id": 12, "sku": "c", "stock": 7}),
            json!({"_id": 13, "stock": 1}),
        ])
        .expect("insert");
    let out = orders
        .aggregate(json!([{"$lookup": {"from": "items", "localField": "sku", "foreignField": "sku", "as": "inv"}},
                          {"$project": {"ids": "$inv._id"}}]))
        .and_then(|c| c.to_vec())
        .expect("lookup");
    // An array local field matches each element; a missing one matches missing/null.
    assert_eq!(
        out,
        vec![
            json!({"_id": 1, "ids": [10]}),
            json!({"_id": 2, "ids": [11, 12]}),
            json!({"_id": 3, "ids": [13]})
        ]
    );
    let out = orders
        .aggregate(json!([
            {"$lookup": {"from": "items", "let": {"q": "$qty"},
                         "pipeline": [{"$match": {"$expr": {"$gt": ["$stock", "$$q"]}}}, {"$project": {"_id": 1}}],
                         "as": "ok"}},
            {"$project": {"ok": 1}}
        ]))
        .and_then(|c| c.to_vec())
        .expect("lookup pipeline");
    assert_eq!(
        out,
        vec![
            json!({"_id": 1, "ok": [{"_id": 10}, {"_id": 12}]}),
            json!({"_id": 2, "ok": [{"_id": 10}, {"_id": 12}]}),
            json!({"_id": 3, "ok": [{"_id": 10}, {"_id": 12}]}),
        ]
    );
    // Uncorrelated pipeline, combined with an equality match.
    let out = orders
        .aggregate(json!([
            {"$lookup": {"from": "items", "localField": "sku", "foreignField": "sku",
                         "pipeline": [{"$match": {"stock": {"$gt": 0}}}], "as": "inStock"}},
            {"$project": {"n": {"$size": "$inStock"}}}
        ]))
        .and_then(|c| c.to_vec())
        .expect("lookup combined");
    assert_eq!(out[1], json!({"_id": 2, "n": 1}));
}

#[test]
fn lookup_across_databases_of_a_client() {
    let dir = tempfile::tempdir().expect("tempdir");
    let client = Client::open(dir.path()).expect("client");
    let sales = client.database("sales").expect("db");
    let catalog = client.database("catalog").expect("db");
    catalog
        .collection::<Value>("products")
        .insert_many([
            json!({"_id": "p1", "name": "pen"}),
            json!({"_id": "p2", "name": "ink"}),
        ])
        .expect("insert");
    let orders = sales.collection::<Value>("orders");
    orders
        .insert_many(
            (0..600).map(|i| json!({"_id": i, "product": if i % 2 == 0 { "p1" } else { "p2" }})),
        )
        .expect("insert");
    let out = orders
        .aggregate(json!([
            {"$lookup": {"from": {"db": "catalog", "coll": "products"}, "localField": "product",
                         "foreignField": "_id", "as": "p"}},
            {"$unwind": "$p"},
            {"$group": {"_id": "$p.name", "n": {"$sum": 1}}},
            {"$sort": {"_id": 1}}
        ]))
        .and_then(|c| c.to_vec())
        .expect("cross-db lookup");
    assert_eq!(
        out,
        vec![
            json!({"_id": "ink", "n": 300}),
            json!({"_id": "pen", "n": 300})
        ]
    );
    // Without a client, another database cannot be reached.
    let lone = Database::memory().expect("db");
    let e = lone
        .collection::<Value>("x")
        .aggregate(json!([{"$lookup": {"from": {"db": "other", "coll": "y"}, "localField": "a", "foreignField": "b", "as": "z"}}]));
    let e = e.and_then(|c| c.to_vec());
    assert!(matches!(e, Err(Error::InvalidPipeline { .. })), "{e:?}");
}

#[test]
fn out_and_merge() {
    let (db, c) = coll(sample());
    let out = c
        .aggregate(json!([{"$group": {"_id": "$item", "n": {"$sum": 1}}}, {"$out": "summary"}]))
        .and_then(|c| c.to_vec())
        .expect("out");
    assert!(out.is_empty());
    let summary = db.collection::<Value>("summary");
    assert_eq!(summary.count_documents(json!({})).expect("count"), 3);
    // $out replaces the previous contents.
    c.aggregate(json!([{"$match": {"_id": 1}}, {"$out": "summary"}]))
        .and_then(|c| c.to_vec())
        .expect("out again");
    assert_eq!(summary.count_documents(json!({})).expect("count"), 1);
    c.aggregate(
        json!([{"$project": {"qty": 1}}, {"$merge": {"into": "summary", "whenMatched": "merge"}}]),
    )
    .and_then(|c| c.to_vec())
    .expect("merge");
    assert_eq!(summary.count_documents(json!({})).expect("count"), 5);
    let one = summary
        .find_one(json!({"_id": 1}))
        .expect("find")
        .expect("doc");
    assert_eq!(one["item"], json!("abc"));
    assert_eq!(one["qty"], json!(2));
    let e = c
        .aggregate(json!([{"$merge": {"into": "summary", "whenMatched": "fail"}}]))
        .and_then(|c| c.to_vec());
    assert!(matches!(e, Err(Error::InvalidPipeline { .. })));
    let e = run_err(sample(), json!([{"$out": "x"}, {"$match": {}}]));
    assert!(matches!(e, Error::InvalidPipeline { ref stage, .. } if stage == "$out"));
}

/// `$addToSet` over many values keeps each value once (numbers by value: `3` and
/// `3.0` are one), in first-seen order, per group and across a spilled `$group`.
#[test]
fn add_to_set_over_many_values() {
    let docs: Vec<Value> = (0..6000i64)
        .map(|i| {
            let v = if i % 2 == 0 {
                json!(i % 2000)
            } else {
                json!((i % 2000) as f64)
            };
            json!({"_id": i, "g": i % 3, "v": v, "s": [i % 5]})
        })
        .collect();
    let (_db, c) = coll(docs.clone());
    let pipeline = json!([
        {"$group": {"_id": "$g", "vs": {"$addToSet": "$v"}, "ss": {"$addToSet": "$s"}}},
        {"$sort": {"_id": 1}}
    ]);
    let expected = |g: i64| -> Vec<Value> {
        let mut out: Vec<Value> = Vec::new();
        for d in docs.iter().filter(|d| d["g"] == json!(g)) {
            let v = &d["v"];
            if !out.iter().any(|x| pocketdb::value::values_equal(x, v)) {
                out.push(v.clone());
            }
        }
        out
    };
    for options in [
        AggregateOptions::default(),
        // Room for one group's set, not three: the `$group` spills.
        AggregateOptions {
            allow_disk_use: true,
            max_memory_bytes: 150_000,
        },
    ] {
        let out = c
            .aggregate_with(pipeline.clone(), options.clone())
            .and_then(|c| c.to_vec())
            .expect("aggregate");
        assert_eq!(out.len(), 3);
        for (g, group) in out.iter().enumerate() {
            let mut got = group["vs"].as_array().cloned().unwrap_or_default();
            let mut want = expected(g as i64);
            assert_eq!(got.len(), want.len(), "{options:?} group {g}");
            got.sort_by(pocketdb::value::compare_values);
            want.sort_by(pocketdb::value::compare_values);
            assert!(
                got.iter()
                    .zip(&want)
                    .all(|(a, b)| pocketdb::value::values_equal(a, b)),
                "{options:?} group {g}"
            );
            assert_eq!(group["ss"].as_array().map(Vec::len), Some(5));
        }
    }
}

#[test]
fn memory_limit_and_disk_use() {
    let docs: Vec<Value> = (0..2000)
        .map(|i| json!({"_id": i, "k": (i * 7919) % 2000, "pad": "x".repeat(50)}))
        .collect();
    let (_db, c) = coll(docs);
    let small = AggregateOptions {
        allow_disk_use: false,
        max_memory_bytes: 20_000,
    };
    let e = c
        .aggregate_with(json!([{"$sort": {"k": 1}}]), small.clone())
        .and_then(|c| c.to_vec());
    assert!(matches!(e, Err(Error::MemoryLimitExceeded { .. })), "{e:?}");
    let e = c
        .aggregate_with(
            json!([{"$group": {"_id": "$_id", "p": {"$push": "$pad"}}}]),
            small.clone(),
        )
        .and_then(|c| c.to_vec());
    assert!(matches!(e, Err(Error::MemoryLimitExceeded { ref stage, .. }) if stage == "$group"));
    // With disk use (the default, as MongoDB 6's allowDiskUseByDefault), $sort spills
    // sorted runs and merges them.
    let disk = AggregateOptions {
        max_memory_bytes: small.max_memory_bytes,
        ..AggregateOptions::default()
    };
    assert!(disk.allow_disk_use);
    let out = c
        .aggregate_with(json!([{"$sort": {"k": -1}}, {"$project": {"k": 1}}]), disk)
        .and_then(|c| c.to_vec())
        .expect("spilled sort");
    assert_eq!(out.len(), 2000);
    assert!(out
        .windows(2)
        .all(|w| w[0]["k"].as_i64() > w[1]["k"].as_i64()));
    // $sort + $limit keeps only the top documents, within a small budget.
    let out = c
        .aggregate_with(
            json!([{"$sort": {"k": 1}}, {"$limit": 3}, {"$project": {"k": 1, "_id": 0}}]),
            small.clone(),
        )
        .and_then(|c| c.to_vec())
        .expect("top-k");
    assert_eq!(out, vec![json!({"k": 0}), json!({"k": 1}), json!({"k": 2})]);
    // A top-k whose k documents outgrow the budget fails without disk use, and spills
    // with it, giving the same first k as an unbounded sort.
    let pipeline = json!([{"$sort": {"k": -1}}, {"$limit": 500}, {"$project": {"k": 1}}]);
    let e = c
        .aggregate_with(pipeline.clone(), small.clone())
        .and_then(|c| c.to_vec());
    assert!(matches!(e, Err(Error::MemoryLimitExceeded { ref stage, .. }) if stage == "$sort"));
    let spilled = c
        .aggregate_with(
            pipeline.clone(),
            AggregateOptions {
                allow_disk_use: true,
                ..small
            },
        )
        .and_then(|c| c.to_vec())
        .expect("spilled top-k");
    let roomy = c
        .aggregate(pipeline)
        .and_then(|c| c.to_vec())
        .expect("top-k in memory");
    assert_eq!(spilled.len(), 500);
    assert_eq!(spilled, roomy);
    assert_eq!(roomy[0]["k"], json!(1999));
}

#[test]
fn pipeline_errors_name_the_stage() {
    for (pipeline, stage) in [
        (json!([{"$bogus": 1}]), "$bogus"),
        (json!([{"$limit": 0}]), "$limit"),
        (json!([{"$skip": -1}]), "$skip"),
        (json!([{"$group": {"n": {"$sum": 1}}}]), "$group"),
        (
            json!([{"$group": {"_id": null, "n": {"$median": 1}}}]),
            "$group",
        ),
        (json!([{"$project": {"a": {"$nosuch": 1}}}]), "$nosuch"),
        (
            json!([{"$project": {"a": {"$add": "$x", "$y": 1}}}]),
            "$add",
        ),
        (json!([{"$unwind": "tags"}]), "$unwind"),
        (json!([{"$count": "$n"}]), "$count"),
        (json!([{"$match": {"$where": "x"}}]), "$match"),
        (json!([{"$sort": {}}]), "$sort"),
        (json!({"$match": {}}), "pipeline"),
    ] {
        let e = run_err(sample(), pipeline.clone());
        match e {
            Error::InvalidPipeline { stage: s, .. } => assert_eq!(s, stage, "{pipeline}"),
            other => panic!("{pipeline}: {other}"),
        }
    }
    // Evaluation errors too: $add of a string.
    let e = run_err(
        sample(),
        json!([{"$project": {"x": {"$add": ["$item", 1]}}}]),
    );
    assert!(
        matches!(e, Error::InvalidPipeline { ref stage, .. } if stage == "$add"),
        "{e}"
    );
}

#[test]
fn explain_reports_sql_stages() {
    let (_db, c) = coll(sample());
    let plan = c
        .explain_aggregate(json!([{"$match": {"qty": {"$gt": 1}}}, {"$group": {"_id": "$item", "n": {"$sum": 1}}}, {"$sort": {"n": -1}}]))
        .expect("explain");
    assert_eq!(engines(&plan), ["sql", "sql", "rust"]);
    assert!(plan["stages"][1]["sql"]
        .as_str()
        .unwrap_or_default()
        .contains("GROUP BY"));
    let plan = c
        .explain_aggregate(json!([{"$group": {"_id": "$item", "f": {"$first": "$qty"}}}]))
        .expect("explain");
    assert_eq!(plan["stages"][0]["engine"], json!("rust"));
}

#[test]
fn sql_group_falls_back_on_booleans_and_arrays() {
    // Booleans at the key would collide with 1/0 in SQL; arrays group as whole values.
    let docs = vec![
        json!({"_id": 1, "k": true}),
        json!({"_id": 2, "k": 1}),
        json!({"_id": 3, "k": [1, 2]}),
        json!({"_id": 4, "k": [1, 2]}),
    ];
    let out = run(docs, json!([{"$group": {"_id": "$k", "n": {"$sum": 1}}}]));
    assert_eq!(
        by_text(out),
        by_text(vec![
            json!({"_id": 1, "n": 1}),
            json!({"_id": [1, 2], "n": 2}),
            json!({"_id": true, "n": 1})
        ])
    );
    // A path through an array of documents collects the values (MongoDB field paths).
    let docs = vec![
        json!({"_id": 1, "a": [{"b": 1}, {"b": 2}]}),
        json!({"_id": 2, "a": {"b": 1}}),
    ];
    let out = run(docs, json!([{"$group": {"_id": "$a.b", "n": {"$sum": 1}}}]));
    assert_eq!(
        by_text(out),
        by_text(vec![
            json!({"_id": 1, "n": 1}),
            json!({"_id": [1, 2], "n": 1})
        ])
    );
}

/// `$group` over more groups than the memory limit holds: with `allow_disk_use` the
/// partial groups spill and merge back to exactly the in-memory result (order-dependent
/// accumulators included, since each key's documents are spread over several spills);
/// without it the stage fails naming the limit.
#[test]
fn group_spills_past_the_memory_limit() {
    let docs: Vec<Value> = (0..3000)
        .map(|i| {
            let v = if i % 3 == 0 {
                json!(i)
            } else {
                json!(i as f64 + 0.5)
            };
            json!({"_id": i, "k": (i * 7) % 701, "m": i % 5, "v": v, "pad": "y".repeat(20)})
        })
        .collect();
    let (_db, c) = coll(docs);
    let pipeline = json!([{"$group": {
        "_id": {"$add": ["$k", 0]},
        "first": {"$first": "$_id"}, "last": {"$last": "$_id"}, "all": {"$push": "$_id"},
        "set": {"$addToSet": "$m"}, "sum": {"$sum": "$v"}, "avg": {"$avg": "$v"},
        "min": {"$min": "$v"}, "max": {"$max": "$v"}, "n": {"$count": {}}
    }}]);
    let in_memory = c
        .aggregate(pipeline.clone())
        .and_then(|c| c.to_vec())
        .expect("in memory");
    assert_eq!(in_memory.len(), 701);
    let small = AggregateOptions {
        allow_disk_use: true,
        max_memory_bytes: 100_000,
    };
    let spilled = c
        .aggregate_with(pipeline.clone(), small.clone())
        .and_then(|c| c.to_vec())
        .expect("spilled group");
    assert_eq!(spilled.len(), 701);
    // The set's order is open in MongoDB: compare it as a set.
    let canonical = |docs: Vec<Value>| {
        by_text(
            docs.into_iter()
                .map(|mut d| {
                    if let Some(Value::Array(s)) = d.get_mut("set") {
                        s.sort_by_key(|v| v.to_string());
                    }
                    d
                })
                .collect(),
        )
    };
    assert_eq!(canonical(spilled.clone()), canonical(in_memory));
    // MongoDB semantics, checked directly: input (storage) order decides first/last/push.
    let g0 = spilled
        .iter()
        .find(|d| d["_id"] == json!(0))
        .expect("group 0");
    let expected: Vec<i64> = (0..3000).filter(|i| (i * 7) % 701 == 0).collect();
    assert_eq!(g0["all"], json!(expected));
    assert_eq!(g0["first"], json!(expected[0]));
    assert_eq!(g0["last"], json!(expected[expected.len() - 1]));
    assert_eq!(g0["n"], json!(expected.len()));
    // Without disk use the same group fails with a typed error naming the limit.
    let e = c
        .aggregate_with(
            pipeline,
            AggregateOptions {
                allow_disk_use: false,
                ..small.clone()
            },
        )
        .and_then(|c| c.to_vec());
    match e {
        Err(e @ Error::MemoryLimitExceeded { .. }) => {
            let text = e.to_string();
            assert!(text.contains("$group") && text.contains("100000"), "{text}");
            assert!(text.contains("allowDiskUse"), "{text}");
        }
        other => panic!("expected MemoryLimitExceeded, got {other:?}"),
    }
    // One group whose $push alone outgrows the limit fails even with disk use.
    let e = c
        .aggregate_with(
            json!([{"$group": {"_id": null, "all": {"$push": "$pad"}}}]),
            small,
        )
        .and_then(|c| c.to_vec());
    assert!(
        matches!(e, Err(Error::MemoryLimitExceeded { ref stage, .. }) if stage == "$group"),
        "{e:?}"
    );
}

/// The `engine` of each stage an `explain_aggregate` report lists.
fn engines(plan: &Value) -> Vec<&str> {
    plan["stages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["engine"].as_str())
        .collect()
}

/// `$match` + `$sort` + `$limit` on an indexed sort path run as one SQL query whose
/// `ORDER BY` the index serves (no sort step in SQLite's plan); results equal the Rust
/// path's.
#[test]
fn match_sort_limit_pushed_down_to_an_index() {
    let docs: Vec<Value> = (0..2000)
        .map(|i| json!({"_id": i, "status": if i % 3 == 0 { "a" } else { "b" }, "score": (i * 37) % 1000}))
        .collect();
    let (_db, c) = coll(docs);
    let pipeline = json!([
        {"$match": {"status": "a"}},
        {"$sort": {"score": -1}},
        {"$skip": 2},
        {"$limit": 5},
        {"$project": {"score": 1, "_id": 0}}
    ]);
    // No index yet: the sort runs in Rust (top-k).
    let rust = c
        .aggregate(pipeline.clone())
        .and_then(|c| c.to_vec())
        .expect("rust path");
    let plan = c.explain_aggregate(pipeline.clone()).expect("explain");
    assert_eq!(
        engines(&plan),
        ["sql", "rust", "rust", "rust", "rust"],
        "{plan:#}"
    );
    assert_eq!(plan["query"]["sorted_in_memory"], json!(true), "{plan:#}");
    // The same sort run by the pipeline itself (an `$addFields` stops the pushdown).
    let in_pipeline = c
        .aggregate(json!([
            {"$match": {"status": "a"}},
            {"$addFields": {"x": 1}},
            {"$sort": {"score": -1}},
            {"$skip": 2},
            {"$limit": 5},
            {"$project": {"score": 1, "_id": 0}}
        ]))
        .and_then(|c| c.to_vec())
        .expect("pipeline sort");
    assert_eq!(rust, in_pipeline);
    c.create_index(
        json!({"status": 1, "score": -1}),
        pocketdb::IndexOptions::default(),
    )
    .expect("index");
    let sql = c
        .aggregate(pipeline.clone())
        .and_then(|c| c.to_vec())
        .expect("sql path");
    assert_eq!(sql, rust);
    assert_eq!(sql.len(), 5);
    let plan = c.explain_aggregate(pipeline).expect("explain");
    assert_eq!(
        engines(&plan),
        ["sql", "sql", "sql", "sql", "rust"],
        "{plan:#}"
    );
    let query = &plan["query"];
    assert_eq!(query["sort_in_sql"], json!(true), "{plan:#}");
    assert_eq!(query["index"], json!("status_1_score_-1"), "{plan:#}");
    let sql_text = query["sql"].as_str().unwrap_or_default();
    assert!(
        sql_text.contains("ORDER BY") && sql_text.contains("LIMIT 5 OFFSET 2"),
        "{sql_text}"
    );
    let lines: Vec<&str> = query["sqlite_plan"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    assert!(lines.iter().any(|l| l.contains("USING INDEX")), "{lines:?}");
    assert!(
        !lines.iter().any(|l| l.contains("TEMP B-TREE")),
        "{lines:?}"
    );
    // Without a $limit the sort stays in Rust, within the memory limit.
    let plan = c
        .explain_aggregate(json!([{"$match": {"status": "a"}}, {"$sort": {"score": -1}}]))
        .expect("explain");
    assert_eq!(plan["stages"][1]["engine"], json!("rust"), "{plan:#}");
}

/// The equality `$lookup` costs one foreign query per page of 256 input documents (the
/// batched read populate uses), across databases of a client too, and answers exactly
/// what `Collection::lookup` does.
#[test]
fn lookup_queries_are_per_batch_not_per_document() {
    let dir = tempfile::tempdir().expect("tempdir");
    let client = Client::open(dir.path()).expect("client");
    let shop = client.database("shop").expect("db");
    let catalog = client.database("catalog").expect("db");
    let products = catalog.collection::<Value>("products");
    products
        .insert_many(
            (0..50).map(|i| json!({"_id": i, "sku": format!("s{i}"), "name": format!("p{i}")})),
        )
        .expect("insert");
    products
        .create_index(json!({"sku": 1}), pocketdb::IndexOptions::default())
        .expect("index");
    let orders = shop.collection::<Value>("orders");
    orders
        .insert_many((0..1000).map(|i| json!({"_id": i, "sku": format!("s{}", i % 60)})))
        .expect("insert");
    let mut cursor = orders
        .aggregate(json!([
            {"$lookup": {"from": {"db": "catalog", "coll": "products"}, "localField": "sku",
                         "foreignField": "sku", "as": "p"}}
        ]))
        .expect("aggregate");
    let mut out = Vec::new();
    for d in cursor.by_ref() {
        out.push(d.expect("doc"));
    }
    assert_eq!(out.len(), 1000);
    // ceil(1000 / 256) pages, one query each.
    assert_eq!(cursor.lookup_queries(), 4);
    let expected = orders
        .lookup(
            json!({}),
            &pocketdb::LookupSpec::new(&products, "sku", "sku", "p")
                .strategy(pocketdb::LookupStrategy::Batched),
        )
        .expect("collection lookup");
    assert_eq!(out, expected);
    assert_eq!(out[7]["p"][0]["name"], json!("p7"));
    assert_eq!(out[55]["p"], json!([]));
}
