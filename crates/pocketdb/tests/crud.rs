//! Collection CRUD through the public API only.

use pocketdb::{
    ChangeOp, Client, Database, Error, FindOneAndModifyOptions, InsertManyOptions, ReturnDocument,
    UpdateOptions, WriteModel,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

fn users(db: &Database) -> pocketdb::Collection<Value> {
    db.collection::<Value>("users")
}

fn seeded() -> (Database, pocketdb::Collection<Value>) {
    let db = Database::memory().unwrap();
    let c = users(&db);
    c.insert_many([
        json!({"_id": 1, "name": "Ada", "age": 36, "tags": ["math", "eng"]}),
        json!({"_id": 2, "name": "Linus", "age": 28, "tags": ["os"]}),
        json!({"_id": 3, "name": "Grace", "age": 45, "tags": []}),
        json!({"_id": 4, "name": "Alan", "age": null}),
    ])
    .unwrap();
    (db, c)
}

fn ids(docs: &[Value]) -> Vec<Value> {
    docs.iter().map(|d| d["_id"].clone()).collect()
}

#[test]
fn insert_generates_object_ids_first_in_field_order() {
    let db = Database::memory().unwrap();
    let c = users(&db);
    let r = c.insert_one(json!({"name": "x"})).unwrap();
    let id = r.inserted_id.as_str().unwrap().to_string();
    assert_eq!(id.len(), 24);
    let doc = c.find_one(json!({"_id": id})).unwrap().unwrap();
    let keys: Vec<&String> = doc.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["_id", "name"]);
}

#[test]
fn duplicate_id_is_typed_error_and_stores_nothing() {
    let (_db, c) = seeded();
    let err = c
        .insert_one(json!({"_id": 1.0, "name": "dup"}))
        .unwrap_err();
    match err {
        Error::DuplicateKey { index, key, .. } => {
            assert_eq!(index, "_id_");
            assert!(key.contains('1'), "{key}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(c.count_documents(json!({})).unwrap(), 4);
    assert_eq!(
        c.find_one(json!({"_id": 1})).unwrap().unwrap()["name"],
        "Ada"
    );
}

#[test]
fn insert_many_ordered_and_unordered_report_per_document() {
    let db = Database::memory().unwrap();
    let c = users(&db);
    c.insert_one(json!({"_id": 2})).unwrap();
    let docs = [json!({"_id": 1}), json!({"_id": 2}), json!({"_id": 3})];
    let err = c
        .insert_many_with(docs.clone(), InsertManyOptions { ordered: true })
        .unwrap_err();
    let Error::BulkWrite(f) = err else {
        panic!("expected BulkWrite")
    };
    assert_eq!(f.inserted_ids.len(), 1);
    assert_eq!(f.write_errors.len(), 1);
    assert_eq!(f.write_errors[0].index, 1);
    assert_eq!(c.count_documents(json!({})).unwrap(), 2);

    let db = Database::memory().unwrap();
    let c = users(&db);
    c.insert_one(json!({"_id": 2})).unwrap();
    let err = c
        .insert_many_with(
            [
                json!({"_id": 1}),
                json!({"_id": 2}),
                json!("bad"),
                json!({"_id": 3}),
            ],
            InsertManyOptions { ordered: false },
        )
        .unwrap_err();
    let Error::BulkWrite(f) = err else {
        panic!("expected BulkWrite")
    };
    assert_eq!(
        f.write_errors.iter().map(|e| e.index).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(c.count_documents(json!({})).unwrap(), 3);
}

#[test]
fn find_sort_skip_limit_projection() {
    let (_db, c) = seeded();
    let docs = c
        .find(json!({}))
        .unwrap()
        .sort(json!({"age": -1}))
        .skip(1)
        .limit(2)
        .projection(json!({"name": 1, "_id": 0}))
        .to_vec()
        .unwrap();
    assert_eq!(docs, vec![json!({"name": "Ada"}), json!({"name": "Linus"})]);
    // null sorts first ascending.
    let docs = c
        .find(json!({}))
        .unwrap()
        .sort(json!({"age": 1}))
        .to_vec()
        .unwrap();
    assert_eq!(ids(&docs), [json!(4), json!(2), json!(1), json!(3)]);
}

/// A sort no index answers runs within `max_sort_memory`: top-k with a limit, sorted
/// runs spilled to a temporary file past the limit, or a typed error without disk use.
/// Every way gives the order a stable sort of all the documents gives.
#[test]
fn sorts_in_memory_stay_within_their_limit() {
    let db = Database::memory().unwrap();
    let c = users(&db);
    let docs: Vec<Value> = (0..2000i64)
        .map(|i| {
            // Many ties, and values of several types (null < numbers < strings).
            let k = match i % 6 {
                0 => json!(null),
                1 => json!(format!("k{}", (i * 31) % 89)),
                _ => json!((i * 7919) % 89),
            };
            json!({"_id": i, "k": k, "pad": "x".repeat(50)})
        })
        .collect();
    c.insert_many(docs.clone()).unwrap();
    let ids_of = |cursor: pocketdb::Cursor<Value>| -> Vec<i64> {
        cursor
            .map(|d| d.unwrap()["_id"].as_i64().unwrap())
            .collect()
    };
    for spec in [
        json!({"k": 1}),
        json!({"k": -1}),
        json!({"k": -1, "_id": -1}),
    ] {
        // The reference: everything in memory, no limit on it.
        let all = ids_of(
            c.find(json!({}))
                .unwrap()
                .sort(spec.clone())
                .max_sort_memory(usize::MAX),
        );
        assert_eq!(all.len(), 2000);
        let spilled = ids_of(
            c.find(json!({}))
                .unwrap()
                .sort(spec.clone())
                .max_sort_memory(30_000),
        );
        assert!(spilled == all, "{spec}: spilled order differs");
        for (skip, limit) in [(0, 1), (0, 10), (25, 100), (1990, 50), (0, 2000)] {
            let want: Vec<i64> = all.iter().skip(skip).take(limit).copied().collect();
            for memory in [usize::MAX, 30_000] {
                let got = ids_of(
                    c.find(json!({}))
                        .unwrap()
                        .sort(spec.clone())
                        .skip(skip as u64)
                        .limit(limit as i64)
                        .max_sort_memory(memory),
                );
                assert!(
                    got == want,
                    "{spec} skip {skip} limit {limit} memory {memory}"
                );
            }
        }
        // With a filter the matcher re-checks in memory.
        let odd = ids_of(
            c.find(json!({"_id": {"$mod": [2, 1]}}))
                .unwrap()
                .sort(spec.clone())
                .max_sort_memory(30_000),
        );
        let want: Vec<i64> = all.iter().copied().filter(|i| i % 2 == 1).collect();
        assert!(odd == want, "{spec}: filtered");
    }
    // Without disk use, a sort past the limit fails with a typed error; a top-k whose
    // documents fit does not.
    let mut failing = c
        .find(json!({}))
        .unwrap()
        .sort(json!({"k": 1}))
        .max_sort_memory(30_000)
        .allow_disk_use(false);
    match failing.next() {
        Some(Err(Error::MemoryLimitExceeded { limit, .. })) => assert_eq!(limit, 30_000),
        other => panic!("expected MemoryLimitExceeded, got {other:?}"),
    }
    assert!(failing.next().is_none());
    let top = c
        .find(json!({}))
        .unwrap()
        .sort(json!({"k": 1}))
        .limit(5)
        .max_sort_memory(30_000)
        .allow_disk_use(false)
        .to_vec()
        .unwrap();
    assert_eq!(top.len(), 5);
}

/// A sort with a small limit reads only the sort fields of every match, then the
/// winners' documents; its order must be the full sort's, for dotted paths into arrays
/// of documents, arrays (min or max element), missing fields, mixed types and ties.
#[test]
fn top_k_sorts_agree_with_full_sorts() {
    let db = Database::memory().unwrap();
    let c = users(&db);
    let docs: Vec<Value> = (0..1500i64)
        .map(|i| {
            let grp = ["a", "b", "c"][(i % 3) as usize];
            let mut d = json!({"_id": i, "grp": grp});
            match i % 7 {
                0 => {}
                1 => d["k"] = json!(null),
                2 => d["k"] = json!([(i * 13) % 50, (i * 17) % 50]),
                3 => d["k"] = json!(format!("s{}", i % 40)),
                4 => d["k"] = json!({"x": i % 5}),
                _ => d["k"] = json!((i * 7919) % 60),
            }
            d["sub"] = json!([{"v": (i * 31) % 70}, {"v": (i * 37) % 70}]);
            d["n"] = json!({"m": (i % 11) as f64 / 2.0});
            d
        })
        .collect();
    c.insert_many(docs).unwrap();
    // Interleave deletes so row ids have gaps and storage order is not `_id` order.
    c.delete_many(json!({"_id": {"$mod": [13, 0]}})).unwrap();
    c.insert_many((0..40).map(|i| json!({"_id": 5000 + i, "grp": "a", "k": i % 3})))
        .unwrap();
    let ids_of = |cursor: pocketdb::Cursor<Value>| -> Vec<i64> {
        cursor
            .map(|d| d.unwrap()["_id"].as_i64().unwrap())
            .collect()
    };
    for filter in [json!({}), json!({"grp": "a"}), json!({"k": {"$gte": 10}})] {
        for spec in [
            json!({"k": 1}),
            json!({"k": -1}),
            json!({"sub.v": -1, "_id": 1}),
            json!({"sub.v": 1}),
            json!({"n.m": -1, "k": 1}),
        ] {
            let all = ids_of(c.find(filter.clone()).unwrap().sort(spec.clone()));
            for (skip, limit) in [(0, 1), (0, 7), (3, 20), (100, 300), (0, 1000)] {
                let want: Vec<i64> = all.iter().skip(skip).take(limit).copied().collect();
                let got = ids_of(
                    c.find(filter.clone())
                        .unwrap()
                        .sort(spec.clone())
                        .skip(skip as u64)
                        .limit(limit as i64),
                );
                assert!(
                    got == want,
                    "{filter} {spec} skip {skip} limit {limit}:\n got {got:?}\nwant {want:?}"
                );
            }
        }
    }
}

#[test]
fn cursor_is_lazy_across_pages() {
    let db = Database::memory().unwrap();
    let c = users(&db);
    c.insert_many((0..1000).map(|i| json!({"_id": i, "even": i % 2 == 0})))
        .unwrap();
    let mut cursor = c.find(json!({"even": true})).unwrap().batch_size(10);
    assert_eq!(cursor.next().unwrap().unwrap()["_id"], 0);
    // A write after the cursor started is seen by later pages.
    c.insert_one(json!({"_id": 5000, "even": true})).unwrap();
    let rest: Vec<Value> = cursor.map(Result::unwrap).collect();
    assert_eq!(rest.len(), 500);
    assert_eq!(rest.last().unwrap()["_id"], 5000);
    let limited = c
        .find(json!({"even": true}))
        .unwrap()
        .skip(495)
        .limit(3)
        .to_vec()
        .unwrap();
    assert_eq!(ids(&limited), [json!(990), json!(992), json!(994)]);
}

#[test]
fn array_element_and_dotted_queries() {
    let db = Database::memory().unwrap();
    let c = users(&db);
    c.insert_many([
        json!({"_id": 1, "items": [{"sku": "A1", "qty": 2}, {"sku": "B2", "qty": 9}]}),
        json!({"_id": 2, "items": [{"sku": "C3", "qty": 5}]}),
        json!({"_id": 3, "tags": ["x", "y"], "n": 7}),
        json!({"_id": 4, "tags": "x", "n": "7"}),
    ])
    .unwrap();
    let got = |f: Value| ids(&c.find(f).unwrap().to_vec().unwrap());
    assert_eq!(got(json!({"items.sku": "A1"})), [json!(1)]);
    assert_eq!(got(json!({"items.qty": {"$gt": 4}})), [json!(1), json!(2)]);
    assert_eq!(
        got(json!({"items": {"$elemMatch": {"sku": "A1", "qty": 9}}})),
        Vec::<Value>::new()
    );
    assert_eq!(got(json!({"tags": "x"})), [json!(3), json!(4)]);
    assert_eq!(got(json!({"n": {"$gt": 5}})), [json!(3)]);
    assert_eq!(got(json!({"items.0.sku": "C3"})), [json!(2)]);
    assert_eq!(got(json!({"tags": {"$size": 2}})), [json!(3)]);
}

#[test]
fn updates_report_matched_modified_and_upserted() {
    let (_db, c) = seeded();
    let r = c
        .update_many(
            json!({"age": {"$gte": 30}}),
            json!({"$set": {"senior": true}}),
        )
        .unwrap();
    assert_eq!((r.matched_count, r.modified_count), (2, 2));
    let r = c
        .update_many(
            json!({"age": {"$gte": 30}}),
            json!({"$set": {"senior": true}}),
        )
        .unwrap();
    assert_eq!((r.matched_count, r.modified_count), (2, 0));
    let r = c
        .update_one_with(
            json!({"name": "Barbara"}),
            json!({"$set": {"age": 50}, "$setOnInsert": {"new": true}}),
            &UpdateOptions::upsert(),
        )
        .unwrap();
    assert_eq!(r.matched_count, 0);
    let id = r.upserted_id.unwrap();
    let doc = c.find_one(json!({"_id": id})).unwrap().unwrap();
    assert_eq!(doc["name"], "Barbara");
    assert_eq!(doc["age"], 50);
    assert_eq!(doc["new"], true);
}

#[test]
fn invalid_updates_change_nothing() {
    let (_db, c) = seeded();
    let before = c.find(json!({})).unwrap().to_vec().unwrap();
    assert!(matches!(
        c.update_many(json!({}), json!({"$inc": {"name": 1}})),
        Err(Error::InvalidUpdate { .. })
    ));
    assert!(matches!(
        c.update_one(json!({}), json!({"$bogus": {"a": 1}})),
        Err(Error::InvalidUpdate { .. })
    ));
    assert!(matches!(
        c.update_one(json!({}), json!({"$set": {"_id": 9}})),
        Err(Error::InvalidUpdate { .. })
    ));
    assert!(matches!(
        c.update_one(json!({}), json!({"name": "no operators"})),
        Err(Error::InvalidUpdate { .. })
    ));
    assert!(matches!(
        c.find(json!({"age": {"$foo": 1}})),
        Err(Error::InvalidFilter { .. })
    ));
    assert_eq!(c.find(json!({})).unwrap().to_vec().unwrap(), before);
}

#[test]
fn replace_keeps_id_and_rejects_operators() {
    let (_db, c) = seeded();
    let r = c
        .replace_one(json!({"_id": 2}), json!({"name": "Torvalds"}))
        .unwrap();
    assert_eq!((r.matched_count, r.modified_count), (1, 1));
    assert_eq!(
        c.find_one(json!({"_id": 2})).unwrap().unwrap(),
        json!({"_id": 2, "name": "Torvalds"})
    );
    assert!(c
        .replace_one(json!({"_id": 2}), json!({"$set": {"a": 1}}))
        .is_err());
    assert!(c
        .replace_one(json!({"_id": 2}), json!({"_id": 3, "a": 1}))
        .is_err());
    let r = c
        .replace_one_with(json!({"_id": 10}), json!({"name": "new"}), true)
        .unwrap();
    assert_eq!(r.upserted_id, Some(json!(10)));
}

#[test]
fn deletes_and_counts() {
    let (_db, c) = seeded();
    assert_eq!(
        c.delete_one(json!({"age": {"$gt": 0}}))
            .unwrap()
            .deleted_count,
        1
    );
    assert_eq!(
        c.delete_many(json!({"age": {"$gt": 0}}))
            .unwrap()
            .deleted_count,
        2
    );
    assert_eq!(c.estimated_count().unwrap(), 1);
    assert_eq!(c.count_documents(json!({"age": null})).unwrap(), 1);
}

#[test]
fn find_one_and_modify_variants() {
    let (_db, c) = seeded();
    let opts = FindOneAndModifyOptions {
        sort: Some(json!({"age": -1})),
        ..Default::default()
    };
    let before = c
        .find_one_and_update(
            json!({"age": {"$type": "number"}}),
            json!({"$inc": {"age": 1}}),
            &opts,
        )
        .unwrap()
        .unwrap();
    assert_eq!(before["age"], 45);
    let after_opts = FindOneAndModifyOptions {
        return_document: ReturnDocument::After,
        projection: Some(json!({"age": 1})),
        ..Default::default()
    };
    let after = c
        .find_one_and_update(json!({"_id": 3}), json!({"$inc": {"age": 1}}), &after_opts)
        .unwrap()
        .unwrap();
    assert_eq!(after, json!({"_id": 3, "age": 47}));
    let replaced = c
        .find_one_and_replace(json!({"_id": 4}), json!({"name": "Turing"}), &after_opts)
        .unwrap()
        .unwrap();
    assert_eq!(replaced, json!({"_id": 4}));
    let deleted = c
        .find_one_and_delete(json!({"_id": 1}), &Default::default())
        .unwrap()
        .unwrap();
    assert_eq!(deleted["name"], "Ada");
    assert!(c.find_one(json!({"_id": 1})).unwrap().is_none());
    let none = c
        .find_one_and_update(
            json!({"_id": 99}),
            json!({"$set": {"a": 1}}),
            &Default::default(),
        )
        .unwrap();
    assert!(none.is_none());
}

#[test]
fn distinct_unwinds_arrays() {
    let (_db, c) = seeded();
    let tags = c.distinct("tags", json!({})).unwrap();
    assert_eq!(tags, [json!("eng"), json!("math"), json!("os")]);
    let ages = c.distinct("age", json!({"age": {"$lt": 40}})).unwrap();
    assert_eq!(ages, [json!(28), json!(36)]);
}

/// `distinct` over many values, dotted paths into arrays of documents, mixed types and
/// equal numbers of two spellings, with exact and inexact filters: the same values as a
/// naive scan of the documents keeps (the first of equal values), in MongoDB's order.
#[test]
fn distinct_over_many_values_matches_a_naive_scan() {
    let db = Database::memory().unwrap();
    let c = users(&db);
    let docs: Vec<Value> = (0..6000i64)
        .map(|i| {
            let v = match i % 5 {
                0 => json!(i % 2500),
                1 => json!((i % 2500) as f64),
                2 => json!(format!("s{}", i % 1200)),
                3 => json!([i % 40, {"x": i % 3}]),
                _ => json!(null),
            };
            json!({"_id": i, "v": v, "items": [{"k": i % 900}, {"k": "a"}], "odd": i % 2 == 1})
        })
        .collect();
    c.insert_many(docs.clone()).unwrap();
    let naive = |filter: &dyn Fn(&Value) -> bool, get: &dyn Fn(&Value) -> Vec<Value>| {
        let mut out: Vec<Value> = Vec::new();
        for d in docs.iter().filter(|d| filter(d)) {
            for v in get(d) {
                if !out.iter().any(|x| pocketdb::value::values_equal(x, &v)) {
                    out.push(v);
                }
            }
        }
        out.sort_by(pocketdb::value::compare_values);
        out
    };
    let v_of = |d: &Value| match &d["v"] {
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    };
    let k_of = |d: &Value| -> Vec<Value> {
        d["items"]
            .as_array()
            .map(|items| items.iter().map(|it| it["k"].clone()).collect())
            .unwrap_or_default()
    };
    let all = |_: &Value| true;
    let odd = |d: &Value| d["odd"] == json!(true);
    assert_eq!(c.distinct("v", json!({})).unwrap(), naive(&all, &v_of));
    assert_eq!(
        c.distinct("v", json!({"odd": true})).unwrap(),
        naive(&odd, &v_of)
    );
    assert_eq!(
        c.distinct("items.k", json!({})).unwrap(),
        naive(&all, &k_of)
    );
    // A numeric path segment compiles inexactly: rows are re-checked by the matcher.
    let first_k = |d: &Value| d["items"][0]["k"].as_i64().is_some_and(|k| k < 10);
    assert_eq!(
        c.distinct("items.k", json!({"items.0.k": {"$lt": 10}}))
            .unwrap(),
        naive(&first_k, &k_of)
    );
    let n = c.distinct("v", json!({})).unwrap().len();
    assert!(n > 1000, "{n}");
}

#[test]
fn bulk_write_mixes_operations() {
    let (_db, c) = seeded();
    let r = c
        .bulk_write(
            vec![
                WriteModel::InsertOne {
                    document: json!({"_id": 10}),
                },
                WriteModel::UpdateMany {
                    filter: json!({"age": {"$gt": 30}}),
                    update: json!({"$set": {"x": 1}}),
                    options: Default::default(),
                },
                WriteModel::ReplaceOne {
                    filter: json!({"_id": 20}),
                    replacement: json!({"y": 1}),
                    upsert: true,
                },
                WriteModel::DeleteOne {
                    filter: json!({"_id": 2}),
                },
            ],
            true,
        )
        .unwrap();
    assert_eq!(r.inserted_count, 1);
    assert_eq!((r.matched_count, r.modified_count), (2, 2));
    assert_eq!(r.upserted_ids.get(&2), Some(&json!(20)));
    assert_eq!(r.deleted_count, 1);
    let err = c
        .bulk_write(
            vec![
                WriteModel::InsertOne {
                    document: json!({"_id": 10}),
                },
                WriteModel::DeleteOne {
                    filter: json!({"_id": 1}),
                },
            ],
            false,
        )
        .unwrap_err();
    let Error::BulkWrite(f) = err else { panic!() };
    assert_eq!(f.write_errors[0].index, 0);
    assert_eq!(f.deleted_count, 1);
}

#[test]
fn change_log_records_every_write_in_order() {
    let (db, c) = seeded();
    c.update_one(json!({"_id": 1}), json!({"$set": {"a": 1}}))
        .unwrap();
    c.replace_one(json!({"_id": 2}), json!({"b": 1})).unwrap();
    c.delete_one(json!({"_id": 3})).unwrap();
    // A failed write logs nothing.
    let _ = c.insert_one(json!({"_id": 1}));
    let changes = c.changes_since(0, 100).unwrap();
    let ops: Vec<ChangeOp> = changes.iter().map(|ch| ch.op).collect();
    use ChangeOp::*;
    assert_eq!(
        ops,
        [Insert, Insert, Insert, Insert, Update, Replace, Delete]
    );
    assert!(changes.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(changes[4].id, json!(1));
    assert_eq!(changes[4].rev, 2);
    let tail = c.changes_since(changes[5].seq, 100).unwrap();
    assert_eq!(tail.len(), 1);
    c.drop().unwrap();
    assert_eq!(db.changes_since(changes[6].seq, 10).unwrap()[0].op, Drop);
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    #[serde(rename = "_id", skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    name: String,
    age: u32,
}

#[test]
fn typed_collections_round_trip() {
    let db = Database::memory().unwrap();
    let c = db.collection::<User>("users");
    let r = c
        .insert_one(User {
            id: None,
            name: "Ada".into(),
            age: 36,
        })
        .unwrap();
    let got = c.find_one(json!({"name": "Ada"})).unwrap().unwrap();
    assert_eq!(got.id.as_deref(), r.inserted_id.as_str());
    assert_eq!(got.age, 36);
    // Documents that do not fit the type are a Serde error, not a panic.
    db.collection::<Value>("users")
        .insert_one(json!({"name": 5}))
        .unwrap();
    let err = c.find(json!({})).unwrap().to_vec().unwrap_err();
    assert!(matches!(err, Error::Serde(_)));
}

#[test]
fn collections_are_listed_renamed_dropped_and_names_checked() {
    let db = Database::memory().unwrap();
    db.collection::<Value>("a").insert_one(json!({})).unwrap();
    db.create_collection("b", Default::default()).unwrap();
    assert!(matches!(
        db.create_collection("b", Default::default()),
        Err(Error::CollectionExists(_))
    ));
    assert_eq!(db.list_collections().unwrap(), ["a", "b"]);
    db.collection::<Value>("a").rename("c").unwrap();
    assert_eq!(db.list_collections().unwrap(), ["b", "c"]);
    assert_eq!(
        db.collection::<Value>("c")
            .count_documents(json!({}))
            .unwrap(),
        1
    );
    assert!(db.drop_collection("b").unwrap());
    assert!(!db.drop_collection("b").unwrap());
    for bad in ["", "a b", "x\"; DROP TABLE c; --", "system.x"] {
        let err = db
            .collection::<Value>(bad)
            .insert_one(json!({}))
            .unwrap_err();
        assert!(matches!(err, Error::InvalidName { .. }), "{bad}: {err:?}");
    }
    assert_eq!(db.list_collections().unwrap(), ["c"]);
}

#[test]
fn bad_documents_are_rejected() {
    let db = Database::memory_with(pocketdb::Options::default().max_document_size(100)).unwrap();
    let c = users(&db);
    assert!(matches!(
        c.insert_one(json!([1])),
        Err(Error::InvalidDocument(_))
    ));
    assert!(matches!(
        c.insert_one(json!({"$a": 1})),
        Err(Error::InvalidDocument(_))
    ));
    assert!(matches!(
        c.insert_one(json!({"_id": [1]})),
        Err(Error::InvalidDocument(_))
    ));
    assert!(matches!(
        c.insert_one(json!({"big": "x".repeat(200)})),
        Err(Error::DocumentTooLarge { .. })
    ));
    assert_eq!(c.estimated_count().unwrap(), 0);
}

#[test]
fn client_manages_database_files() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::open(dir.path()).unwrap();
    let a = client.database("alpha").unwrap();
    a.collection::<Value>("x")
        .insert_one(json!({"v": 1}))
        .unwrap();
    client.database("beta").unwrap();
    assert_eq!(client.list_databases().unwrap(), ["alpha", "beta"]);
    assert!(dir.path().join("alpha.sqlite").exists());
    client.drop_database("beta").unwrap();
    assert!(matches!(
        client.drop_database("beta"),
        Err(Error::DatabaseNotFound(_))
    ));
    assert!(client.database("../evil").is_err());
    drop(a);
    // Reopening sees the data.
    let again = Client::open(dir.path()).unwrap().database("alpha").unwrap();
    assert_eq!(
        again
            .collection::<Value>("x")
            .count_documents(json!({"v": 1}))
            .unwrap(),
        1
    );
}

#[test]
fn handles_are_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Database>();
    assert_send_sync::<pocketdb::Collection<Value>>();
    assert_send_sync::<Client>();
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("t.sqlite")).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let c = users(&db);
            std::thread::spawn(move || {
                for i in 0..100 {
                    c.insert_one(json!({"t": t, "i": i})).unwrap();
                    assert!(c.count_documents(json!({"t": t})).unwrap() > 0);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(users(&db).count_documents(json!({})).unwrap(), 400);
    assert_eq!(db.changes_since(0, 1000).unwrap().len(), 400);
}

#[test]
fn find_and_modify_reports_upserts_and_updates() {
    use pocketdb::Modification;
    let (_db, c) = seeded();
    let opts = FindOneAndModifyOptions {
        upsert: true,
        return_document: ReturnDocument::After,
        ..Default::default()
    };
    let out = c
        .find_and_modify(
            json!({"_id": 1}),
            Modification::Update(json!({"$inc": {"age": 1}})),
            &opts,
        )
        .unwrap();
    assert!(out.updated_existing);
    assert_eq!(out.upserted_id, None);
    assert_eq!(out.document.unwrap()["age"], 37);
    let out = c
        .find_and_modify(
            json!({"_id": 50}),
            Modification::Replace(json!({"x": 1})),
            &opts,
        )
        .unwrap();
    assert!(!out.updated_existing);
    assert_eq!(out.upserted_id, Some(json!(50)));
    assert_eq!(out.document, Some(json!({"_id": 50, "x": 1})));
    let out = c
        .find_and_modify(
            json!({"_id": 50}),
            Modification::Delete,
            &Default::default(),
        )
        .unwrap();
    assert_eq!(out.document, Some(json!({"_id": 50, "x": 1})));
    assert!(c
        .find_and_modify(json!({}), Modification::Update(json!({"a": 1})), &opts)
        .is_err());
}

/// Dropping a database removes everything stored for it: a database created again
/// under its name starts empty, whatever the dropped one left beside its file (shard
/// and partition files, a buffer log with writes not yet applied).
#[test]
fn dropped_database_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::open(dir.path()).unwrap();
    let sharded = client
        .create_sharded_collection("app", "items", pocketdb::ShardOptions::new(2))
        .unwrap();
    sharded
        .insert_many((0..20).map(|i| json!({"_id": i})))
        .unwrap();
    drop(sharded);
    client.drop_database("app").unwrap();
    let leftovers = entries(dir.path());
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let again = client
        .create_sharded_collection("app", "items", pocketdb::ShardOptions::new(2))
        .unwrap();
    assert_eq!(again.count_documents(json!({})).unwrap(), 0);
}

/// A buffered database dropped with writes not yet applied: they go with it (its log
/// is not replayed into the database created again under its name). While a handle
/// buffers writes to it, the drop is refused.
#[test]
fn dropped_buffered_database_discards_its_log() {
    let dir = tempfile::tempdir().unwrap();
    let options = pocketdb::Options::default().durability(pocketdb::Durability::Buffered(
        pocketdb::BufferOptions::default().flush_interval(std::time::Duration::from_secs(600)),
    ));
    let client = Client::open_with(dir.path(), options).unwrap();
    let db = client.database("app").unwrap();
    let c = db.collection::<Value>("c");
    c.insert_many((0..10).map(|i| json!({"_id": i}))).unwrap();
    let busy = client.drop_database("app");
    assert!(matches!(busy, Err(Error::Buffer(_))), "{busy:?}");
    // The refused drop changed nothing.
    assert_eq!(c.count_documents(json!({})).unwrap(), 10);
    drop(c);
    drop(db);
    client.drop_database("app").unwrap();
    let leftovers = entries(dir.path());
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let again = client.database("app").unwrap().collection::<Value>("c");
    assert_eq!(again.count_documents(json!({})).unwrap(), 0);
}

/// The names of the entries of a directory.
fn entries(dir: &std::path::Path) -> Vec<std::ffi::OsString> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect()
}

/// A renamed collection keeps its documents and indexes (a unique one still refuses
/// duplicates, queries still use it), the old name is free, and the errors are typed.
#[test]
fn rename_keeps_documents_and_indexes() {
    let db = Database::memory().unwrap();
    let old = db.collection::<Value>("old");
    old.insert_many((0..5).map(|i| json!({"_id": i, "email": format!("u{i}")})))
        .unwrap();
    old.create_index(
        json!({"email": 1}),
        pocketdb::IndexOptions::default().unique(true),
    )
    .unwrap();
    db.collection::<Value>("taken")
        .insert_one(json!({"_id": 1}))
        .unwrap();
    assert!(matches!(
        db.rename_collection("old", "taken", false),
        Err(Error::CollectionExists(_))
    ));
    assert!(matches!(
        db.rename_collection("missing", "x", false),
        Err(Error::CollectionNotFound(_))
    ));
    assert!(matches!(
        db.rename_collection("old", "old", false),
        Err(Error::InvalidArgument(_))
    ));
    let seq = db.last_change_seq().unwrap();
    db.rename_collection("old", "taken", true).unwrap();
    assert_eq!(db.list_collections().unwrap(), ["taken"]);
    let new = db.collection::<Value>("taken");
    assert_eq!(new.count_documents(json!({})).unwrap(), 5);
    let found = new.find(json!({"email": "u3"})).unwrap();
    let plan = found.explain().unwrap();
    assert_eq!(plan.index.as_deref(), Some("email_1"), "{plan:?}");
    assert!(matches!(
        new.insert_one(json!({"_id": 9, "email": "u3"})),
        Err(Error::DuplicateKey { .. })
    ));
    assert_eq!(old.count_documents(json!({})).unwrap(), 0);
    // The log: the replaced target dropped, the old name dropped, each document inserted
    // under the new name.
    let log = db.changes_since(seq, 100).unwrap();
    let ops: Vec<(String, ChangeOp)> = log.iter().map(|c| (c.collection.clone(), c.op)).collect();
    assert_eq!(ops[0], ("taken".to_string(), ChangeOp::Drop));
    assert_eq!(ops[1], ("old".to_string(), ChangeOp::Drop));
    assert_eq!(ops.len(), 7);
    assert!(ops[2..]
        .iter()
        .all(|(c, op)| c == "taken" && *op == ChangeOp::Insert));
    // Earlier entries keep the old name: a watcher of it resuming from before the
    // rename sees its inserts, then the drop.
    let mut stream = old.watch_from(0).unwrap();
    let mut seen = Vec::new();
    while let Some(event) = stream
        .next_timeout(std::time::Duration::from_millis(200))
        .unwrap()
    {
        seen.push(event.op);
    }
    assert_eq!(seen.len(), 6, "{seen:?}");
    assert!(
        seen[..5].iter().all(|op| *op == ChangeOp::Insert),
        "{seen:?}"
    );
    assert_eq!(seen[5], ChangeOp::Drop);
}

/// `_id`s MongoDB holds equal are one document whatever their number type, above 2^53
/// too: `1e17` and `100000000000000000` (keys used to differ there).
#[test]
fn large_numeric_ids_equal_as_numbers_are_one_document() {
    let db = Database::memory().unwrap();
    let c = users(&db);
    c.insert_one(json!({"_id": 1e17, "v": 1})).unwrap();
    let found = c
        .find_one(json!({"_id": 100_000_000_000_000_000i64}))
        .unwrap();
    assert_eq!(found.map(|d| d["v"].clone()), Some(json!(1)));
    assert!(matches!(
        c.insert_one(json!({"_id": 100_000_000_000_000_000i64})),
        Err(Error::DuplicateKey { .. })
    ));
    // An integer no float equals is another document.
    c.insert_one(json!({"_id": 100_000_000_000_000_001i64}))
        .unwrap();
    assert_eq!(c.count_documents(json!({})).unwrap(), 2);
}
