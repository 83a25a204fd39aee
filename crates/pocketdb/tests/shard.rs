//! Hash-sharded collections through the public API, checked against a single-file
//! collection holding the same documents.

use pocketdb::{
    Client, Collection, Error, FindOneAndModifyOptions, IndexOptions, InsertManyOptions,
    ReturnDocument, ShardKey, ShardOptions, ShardedCollection, UpdateOptions,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

fn doc(i: u64) -> Value {
    json!({
        "_id": i,
        "team": format!("t{}", i % 7),
        "score": (i * 37) % 101,
        "tags": [format!("g{}", i % 3), format!("h{}", i % 4)],
        "nested": {"n": i % 5},
    })
}

/// A sharded collection and a plain one with the same 300 documents.
fn setup(
    shards: usize,
    key: ShardKey,
) -> (tempfile::TempDir, Client, ShardedCollection, Collection) {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::open(dir.path()).unwrap();
    let sharded = client
        .create_sharded_collection("app", "items", ShardOptions::new(shards).key(key))
        .unwrap();
    let plain = client
        .database("plain")
        .unwrap()
        .collection::<Value>("items");
    sharded.insert_many((0..300).map(doc)).unwrap();
    plain.insert_many((0..300).map(doc)).unwrap();
    (dir, client, sharded, plain)
}

#[test]
fn documents_spread_over_shard_files_and_reopen() {
    let (dir, client, sharded, _) = setup(4, ShardKey::Id);
    for i in 0..4 {
        let path = dir
            .path()
            .join(format!("app.shards/items/shard-{i}.sqlite"));
        assert!(path.exists(), "{}", path.display());
        let n = sharded.count_documents(json!({})).unwrap();
        assert_eq!(n, 300);
    }
    // Every shard holds a fair share.
    let mut per_shard = [0u64; 4];
    for i in 0..300 {
        let m: usize = sharded.member_of(doc(i)).unwrap().parse().unwrap();
        per_shard[m] += 1;
    }
    assert!(per_shard.iter().all(|n| *n > 40), "{per_shard:?}");
    // The catalog records the layout; a new client finds it.
    let options = client
        .database("app")
        .unwrap()
        .collection_options("items")
        .unwrap()
        .unwrap();
    assert_eq!(
        options.options["sharded"],
        json!({"shards": 4, "key": "_id"})
    );
    drop(sharded);
    drop(client);
    let client = Client::open(dir.path()).unwrap();
    let again = client.sharded::<Value>("app", "items").unwrap();
    assert_eq!(again.shard_count(), Some(4));
    assert_eq!(again.count_documents(json!({})).unwrap(), 300);
    assert_eq!(again.estimated_count().unwrap(), 300);
    assert_eq!(again.find_one(json!({"_id": 123})).unwrap(), Some(doc(123)));
    // Shard files are not databases of the client.
    assert_eq!(client.list_databases().unwrap(), vec!["app", "plain"]);
}

fn ids(docs: &[Value]) -> Vec<Value> {
    docs.iter().map(|d| d["_id"].clone()).collect()
}

#[test]
fn find_matches_a_single_file_collection() {
    for key in [ShardKey::Id, ShardKey::Field("team".into())] {
        let (_dir, _client, sharded, plain) = setup(3, key);
        let filters = [
            json!({}),
            json!({"score": {"$gt": 50}}),
            json!({"team": "t3"}),
            json!({"team": {"$in": ["t1", "t2"]}, "score": {"$lt": 70}}),
            json!({"tags": "g1"}),
            json!({"$or": [{"_id": 5}, {"_id": 77}, {"nested.n": 4}]}),
            json!({"_id": {"$in": [1, 2, 3, 400]}}),
            json!({"score": {"$gte": 1000}}),
        ];
        // The sorts end with _id so the order is total and both sides must agree.
        let sorts = [
            json!({"score": 1, "_id": 1}),
            json!({"score": -1, "_id": -1}),
            json!({"team": 1, "score": -1, "_id": 1}),
            json!({"tags": 1, "_id": 1}),
        ];
        for filter in &filters {
            let want = plain.count_documents(filter.clone()).unwrap();
            assert_eq!(
                sharded.count_documents(filter.clone()).unwrap(),
                want,
                "{filter}"
            );
            let mut all = sharded.find(filter.clone()).unwrap().to_vec().unwrap();
            all.sort_by_key(|d| d["_id"].as_u64());
            let mut expected = plain.find(filter.clone()).unwrap().to_vec().unwrap();
            expected.sort_by_key(|d| d["_id"].as_u64());
            assert_eq!(all, expected, "{filter}");
            assert_eq!(
                sharded.distinct("tags", filter.clone()).unwrap(),
                plain.distinct("tags", filter.clone()).unwrap()
            );
            for sort in &sorts {
                for (skip, limit) in [(0, 0), (0, 7), (5, 10), (290, 20), (0, 1)] {
                    let got = sharded
                        .find(filter.clone())
                        .unwrap()
                        .sort(sort.clone())
                        .skip(skip)
                        .limit(limit)
                        .to_vec()
                        .unwrap();
                    let want = plain
                        .find(filter.clone())
                        .unwrap()
                        .sort(sort.clone())
                        .skip(skip)
                        .limit(limit)
                        .to_vec()
                        .unwrap();
                    assert_eq!(ids(&got), ids(&want), "{filter} {sort} {skip} {limit}");
                }
            }
            // Unsorted skip/limit: the right number of distinct matching documents.
            let page = sharded
                .find(filter.clone())
                .unwrap()
                .skip(3)
                .limit(11)
                .to_vec()
                .unwrap();
            assert_eq!(page.len() as u64, want.saturating_sub(3).min(11));
        }
        // Projection after a merge on a projected-away key.
        let got = sharded
            .find(json!({"team": "t1"}))
            .unwrap()
            .sort(json!({"score": -1, "_id": 1}))
            .projection(json!({"_id": 0, "team": 1}))
            .limit(2)
            .to_vec()
            .unwrap();
        assert_eq!(got, vec![json!({"team": "t1"}), json!({"team": "t1"})]);
        // The fluent builder.
        let q = sharded
            .query()
            .where_("score")
            .gte(90)
            .sort("score", pocketdb::SortOrder::Asc)
            .limit(3)
            .to_vec()
            .unwrap();
        assert_eq!(q.len(), 3);
        assert_eq!(
            sharded.query().where_("team").eq("t0").count().unwrap(),
            plain.count_documents(json!({"team": "t0"})).unwrap()
        );
    }
}

#[test]
fn queries_on_the_shard_key_visit_one_shard() {
    let (_dir, _client, sharded, _) = setup(4, ShardKey::Field("team".into()));
    assert_eq!(sharded.members_for(json!({"team": "t2"})).unwrap().len(), 1);
    assert_eq!(sharded.members_for(json!({"score": 3})).unwrap().len(), 4);
    assert!(
        sharded
            .members_for(json!({"team": {"$in": ["t1", "t2"]}}))
            .unwrap()
            .len()
            <= 2
    );
    let before = sharded.member_stats().visited;
    let cursor = sharded
        .find(json!({"team": "t2", "score": {"$gt": 10}}))
        .unwrap();
    assert_eq!(cursor.members().len(), 1);
    assert_eq!(sharded.member_stats().visited, before + 1);
    assert_eq!(
        cursor.to_vec().unwrap().len() as u64,
        (0..300u64)
            .filter(|i| i % 7 == 2 && (i * 37) % 101 > 10)
            .count() as u64
    );
}

#[test]
fn single_document_writes_touch_one_document() {
    let (_dir, _client, sharded, _) = setup(4, ShardKey::Id);
    let r = sharded
        .update_one(json!({"team": "t1"}), json!({"$set": {"marked": true}}))
        .unwrap();
    assert_eq!((r.matched_count, r.modified_count), (1, 1));
    assert_eq!(sharded.count_documents(json!({"marked": true})).unwrap(), 1);
    let r = sharded
        .update_many(json!({"team": "t1"}), json!({"$inc": {"score": 1000}}))
        .unwrap();
    assert_eq!(r.matched_count, 43);
    assert_eq!(
        sharded
            .count_documents(json!({"score": {"$gte": 1000}}))
            .unwrap(),
        43
    );
    let r = sharded.delete_one(json!({"team": "t1"})).unwrap();
    assert_eq!(r.deleted_count, 1);
    assert_eq!(
        sharded
            .delete_many(json!({"team": "t1"}))
            .unwrap()
            .deleted_count,
        42
    );
    assert_eq!(sharded.count_documents(json!({})).unwrap(), 257);
    assert_eq!(
        sharded
            .delete_one(json!({"team": "t1"}))
            .unwrap()
            .deleted_count,
        0
    );
    let r = sharded
        .update_one(json!({"team": "nobody"}), json!({"$set": {"a": 1}}))
        .unwrap();
    assert_eq!(r.matched_count, 0);
    let r = sharded
        .replace_one(json!({"_id": 10}), json!({"_id": 10, "replaced": true}))
        .unwrap();
    assert_eq!(r.modified_count, 1);
    assert_eq!(
        sharded.find_one(json!({"_id": 10})).unwrap(),
        Some(json!({"_id": 10, "replaced": true}))
    );
}

#[test]
fn upserts_land_on_the_shard_of_the_new_document() {
    for key in [ShardKey::Id, ShardKey::Field("team".into())] {
        let (_dir, _client, sharded, _) = setup(4, key.clone());
        // Pinned by _id.
        let r = sharded
            .update_one_with(
                json!({"_id": "new-1"}),
                json!({"$set": {"team": "t9"}}),
                &UpdateOptions::upsert(),
            )
            .unwrap();
        assert_eq!(r.upserted_id, Some(json!("new-1")));
        // Not pinned: the _id is generated here, so the document routes consistently.
        let r = sharded
            .update_one_with(
                json!({"name": "zed"}),
                json!({"$set": {"team": "t4", "score": 5}}),
                &UpdateOptions::upsert(),
            )
            .unwrap();
        let id = r.upserted_id.unwrap();
        let found = sharded
            .find_one(json!({"_id": id.clone()}))
            .unwrap()
            .unwrap();
        assert_eq!(found["name"], "zed");
        // A pinned find reads only the routed shard, so finding it proves the routing.
        assert_eq!(
            sharded
                .members_for(json!({"_id": id.clone()}))
                .unwrap()
                .len(),
            match key {
                ShardKey::Id => 1,
                ShardKey::Field(_) => 4,
            }
        );
        let by_key = sharded
            .find(json!({"team": "t4", "name": "zed"}))
            .unwrap()
            .to_vec()
            .unwrap();
        assert_eq!(by_key.len(), 1);
        // A second upsert with the same filter updates instead.
        let r = sharded
            .update_one_with(
                json!({"name": "zed"}),
                json!({"$set": {"score": 6}}),
                &UpdateOptions::upsert(),
            )
            .unwrap();
        assert_eq!((r.matched_count, r.upserted_id), (1, None));
        // update_many and replace_one upsert too.
        let r = sharded
            .update_many_with(
                json!({"team": "t77"}),
                json!({"$set": {"x": 1}}),
                &UpdateOptions::upsert(),
            )
            .unwrap();
        assert!(r.upserted_id.is_some());
        assert_eq!(sharded.count_documents(json!({"team": "t77"})).unwrap(), 1);
        let r = sharded
            .replace_one_with(json!({"_id": "r1"}), json!({"team": "t8", "r": 1}), true)
            .unwrap();
        assert_eq!(r.upserted_id, Some(json!("r1")));
        assert_eq!(
            sharded.find_one(json!({"_id": "r1"})).unwrap(),
            Some(json!({"_id": "r1", "team": "t8", "r": 1}))
        );
        assert_eq!(sharded.count_documents(json!({})).unwrap(), 304);
    }
}

#[test]
fn the_shard_key_cannot_change() {
    let (_dir, _client, sharded, _) = setup(4, ShardKey::Field("team".into()));
    let err = sharded
        .update_one(json!({"_id": 3}), json!({"$set": {"team": "other"}}))
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidUpdate { ref path, .. } if path == "team"),
        "{err}"
    );
    let err = sharded
        .replace_one(json!({"_id": 3}), json!({"team": "other"}))
        .unwrap_err();
    assert!(matches!(err, Error::InvalidUpdate { .. }), "{err}");
    assert!(sharded
        .update_many(json!({}), json!({"$unset": {"team": ""}}))
        .is_err());
    assert_eq!(sharded.find_one(json!({"_id": 3})).unwrap(), Some(doc(3)));
    // Other fields, and setting the key to its own value, are fine.
    sharded
        .update_one(json!({"_id": 3}), json!({"$set": {"team": "t3", "x": 1}}))
        .unwrap();
    assert_eq!(
        sharded.find_one(json!({"_id": 3})).unwrap().unwrap()["x"],
        1
    );
    // Arrays cannot be shard keys.
    let err = sharded.insert_one(json!({"team": ["a"]})).unwrap_err();
    assert!(matches!(err, Error::InvalidDocument(_)), "{err}");
}

#[test]
fn find_one_and_modify_uses_the_global_order() {
    let (_dir, _client, sharded, _) = setup(4, ShardKey::Id);
    let options = FindOneAndModifyOptions {
        sort: Some(json!({"score": -1, "_id": 1})),
        return_document: ReturnDocument::After,
        ..Default::default()
    };
    // score 100 is reached by the smallest i with 37 i = 100 (mod 101).
    let top = sharded
        .find_one_and_update(json!({}), json!({"$set": {"top": true}}), &options)
        .unwrap()
        .unwrap();
    assert_eq!(top["score"], 100);
    assert_eq!(top["top"], true);
    let gone = sharded
        .find_one_and_delete(
            json!({"team": "t0"}),
            &FindOneAndModifyOptions {
                sort: Some(json!({"score": 1, "_id": 1})),
                ..Default::default()
            },
        )
        .unwrap()
        .unwrap();
    let want_min = (0..300u64)
        .filter(|i| i % 7 == 0)
        .map(|i| ((i * 37) % 101, i))
        .min()
        .unwrap();
    assert_eq!(gone["_id"], want_min.1);
    assert_eq!(sharded.find_one(json!({"_id": want_min.1})).unwrap(), None);
    let replaced = sharded
        .find_one_and_replace(
            json!({"_id": 1}),
            json!({"_id": 1, "team": "t1", "new": true}),
            &FindOneAndModifyOptions::default(),
        )
        .unwrap();
    assert_eq!(replaced, Some(doc(1)));
    let upserted = sharded
        .find_one_and_update(
            json!({"name": "fresh"}),
            json!({"$set": {"v": 1}}),
            &FindOneAndModifyOptions {
                upsert: true,
                return_document: ReturnDocument::After,
                ..Default::default()
            },
        )
        .unwrap()
        .unwrap();
    assert_eq!(upserted["name"], "fresh");
    assert_eq!(
        sharded.count_documents(json!({"name": "fresh"})).unwrap(),
        1
    );
}

#[test]
fn insert_many_reports_failures_by_request_position() {
    let (_dir, _client, sharded, _) = setup(4, ShardKey::Id);
    let batch = vec![
        json!({"_id": 1000}),
        json!({"_id": 5}),
        json!({"_id": 1001}),
        json!({"_id": 7}),
    ];
    let err = sharded
        .insert_many_with(batch, InsertManyOptions { ordered: false })
        .unwrap_err();
    let Error::BulkWrite(f) = err else {
        panic!("{err}")
    };
    let failed: Vec<usize> = f.write_errors.iter().map(|e| e.index).collect();
    assert_eq!(failed, vec![1, 3]);
    let mut inserted: Vec<usize> = f.inserted_ids.iter().map(|(i, _)| *i).collect();
    inserted.sort();
    assert_eq!(inserted, vec![0, 2]);
    assert!(f
        .write_errors
        .iter()
        .all(|e| matches!(e.error, Error::DuplicateKey { .. })));
    // Ordered: members insert in parallel, but nothing after the first failure stays,
    // whichever member it went to.
    let err = sharded
        .insert_many((0..12).map(|i| json!({"_id": if i == 1 { 5 } else { 1100 + i }})))
        .unwrap_err();
    let Error::BulkWrite(f) = err else {
        panic!("{err}")
    };
    assert_eq!(
        f.write_errors.iter().map(|e| e.index).collect::<Vec<_>>(),
        vec![1]
    );
    assert_eq!(f.inserted_ids, vec![(0, json!(1100))]);
    assert_eq!(
        sharded
            .count_documents(json!({"_id": {"$gte": 1100, "$lt": 1200}}))
            .unwrap(),
        1
    );
    // A document that cannot be routed fails before anything is written.
    let err = sharded
        .insert_many(vec![
            json!({"_id": 2000}),
            json!({"_id": [1]}),
            json!({"_id": 2001}),
        ])
        .unwrap_err();
    let Error::BulkWrite(f) = err else {
        panic!("{err}")
    };
    assert_eq!(f.write_errors[0].index, 1);
    assert_eq!(sharded.count_documents(json!({"_id": 2001})).unwrap(), 0);
    let r = sharded.insert_many((3000..3010).map(doc)).unwrap();
    assert_eq!(r.inserted_ids.len(), 10);
    assert_eq!(r.inserted_ids[&9], json!(3009));
}

#[test]
fn insert_many_routes_documents_without_id_by_the_id_it_gives_them() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::open(dir.path()).unwrap();
    let by_id = client
        .create_sharded_collection("app", "by_id", ShardOptions::new(4))
        .unwrap();
    // A shard key below `_id`: documents without `_id` have no key (null).
    let below = client
        .create_sharded_collection(
            "app",
            "below",
            ShardOptions::new(3).key(ShardKey::Field("_id.k".into())),
        )
        .unwrap();
    let docs: Vec<Value> = (0..200).map(|i| json!({"n": i, "tags": [i % 3]})).collect();
    let r = by_id.insert_many(&docs).unwrap();
    assert_eq!(r.inserted_ids.len(), 200);
    let mut members = std::collections::BTreeSet::new();
    for (position, id) in &r.inserted_ids {
        assert!(id.is_string(), "{id}");
        // A query by `_id` reads only the member the id routes to: the document is
        // there, stored with the id that was returned, `_id` first.
        let pinned = by_id.members_for(json!({"_id": id})).unwrap();
        assert_eq!(pinned.len(), 1);
        members.insert(pinned[0].clone());
        let stored = by_id.find_one(json!({"_id": id})).unwrap().unwrap();
        assert_eq!(stored["n"], json!(*position));
        assert_eq!(stored.as_object().unwrap().keys().next().unwrap(), "_id");
        assert_eq!(by_id.member_of(&stored).unwrap(), pinned[0]);
    }
    assert!(members.len() > 1, "generated ids spread over shards");
    // The request's documents are left as they were.
    assert!(docs.iter().all(|d| d.get("_id").is_none()));
    let r = below.insert_many(&docs[..20]).unwrap();
    assert_eq!(r.inserted_ids.len(), 20);
    assert_eq!(below.count_documents(json!({})).unwrap(), 20);
    let null_member = below.member_of(json!({"n": 0})).unwrap();
    let stored = below
        .find_one(json!({"_id": r.inserted_ids[&0]}))
        .unwrap()
        .unwrap();
    assert_eq!(below.member_of(&stored).unwrap(), null_member);
    // Documents that are not objects fail at their position, typed; unordered, the
    // others are stored.
    let err = by_id
        .insert_many_with(
            vec![
                json!({"a": 1}),
                json!(5),
                json!([{"a": 2}]),
                json!({"a": 3}),
            ],
            InsertManyOptions { ordered: false },
        )
        .unwrap_err();
    let Error::BulkWrite(f) = err else {
        panic!("{err}")
    };
    let failed: Vec<usize> = f.write_errors.iter().map(|e| e.index).collect();
    assert_eq!(failed, vec![1, 2]);
    assert!(f
        .write_errors
        .iter()
        .all(|e| matches!(e.error, Error::InvalidDocument(_))));
    assert_eq!(f.inserted_ids.len(), 2);
    assert_eq!(
        by_id
            .count_documents(json!({"a": {"$in": [1, 3]}}))
            .unwrap(),
        2
    );
}

#[test]
fn indexes_fan_out_and_unique_needs_the_shard_key() {
    let (_dir, _client, sharded, _) = setup(3, ShardKey::Field("team".into()));
    let name = sharded
        .create_index(json!({"score": 1}), IndexOptions::default())
        .unwrap();
    assert_eq!(name, "score_1");
    let names: Vec<String> = sharded
        .list_indexes()
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, vec!["_id_", "score_1"]);
    let err = sharded
        .create_index(
            json!({"score": 1}),
            IndexOptions::default().unique(true).name("u"),
        )
        .unwrap_err();
    assert!(matches!(err, Error::InvalidIndex { .. }), "{err}");
    sharded
        .create_index(
            json!({"team": 1, "_id": 1}),
            IndexOptions::default().unique(true),
        )
        .unwrap();
    assert_eq!(
        sharded
            .find(json!({"score": 7}))
            .unwrap()
            .to_vec()
            .unwrap()
            .len() as u64,
        (0..300u64).filter(|i| (i * 37) % 101 == 7).count() as u64
    );
    sharded.drop_index("score_1").unwrap();
    assert!(matches!(
        sharded.drop_index("score_1"),
        Err(Error::IndexNotFound { .. })
    ));
}

#[test]
fn drop_removes_every_file() {
    let (dir, client, sharded, _) = setup(2, ShardKey::Id);
    assert!(sharded.drop().unwrap());
    assert!(!dir.path().join("app.shards/items").exists());
    assert!(matches!(
        client.sharded::<Value>("app", "items"),
        Err(Error::CollectionNotFound(_))
    ));
    // The name can be reused, starting empty.
    let again = client
        .create_sharded_collection("app", "items", ShardOptions::new(3))
        .unwrap();
    assert_eq!(again.count_documents(json!({})).unwrap(), 0);
}

#[test]
fn bad_requests_get_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::open(dir.path()).unwrap();
    assert!(matches!(
        client.create_sharded_collection("app", "x", ShardOptions::new(0)),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        client.create_sharded_collection("app", "$bad", ShardOptions::new(2)),
        Err(Error::InvalidName { .. })
    ));
    assert!(client
        .create_sharded_collection(
            "app",
            "x",
            ShardOptions::new(2).key(ShardKey::Field("a..b".into()))
        )
        .is_err());
    let memory = pocketdb::Database::memory().unwrap();
    assert!(matches!(
        memory.create_sharded_collection("x", ShardOptions::new(2)),
        Err(Error::InvalidArgument(_))
    ));
    assert!(memory.list_collections().unwrap().is_empty());
    let db = client.database("app").unwrap();
    db.collection::<Value>("plain")
        .insert_one(json!({}))
        .unwrap();
    assert!(matches!(
        db.sharded::<Value>("plain"),
        Err(Error::Shard { .. })
    ));
    client
        .create_sharded_collection("app", "s", ShardOptions::new(2))
        .unwrap();
    assert!(matches!(
        client.create_sharded_collection("app", "s", ShardOptions::new(2)),
        Err(Error::CollectionExists(_))
    ));
    assert!(matches!(
        db.partitioned::<Value>("s"),
        Err(Error::Shard { .. })
    ));
    // A deleted shard file is reported, not silently recreated empty.
    let client2 = Client::open(dir.path()).unwrap();
    std::fs::remove_file(dir.path().join("app.shards/s/shard-1.sqlite")).unwrap();
    assert!(matches!(
        client2.sharded::<Value>("app", "s"),
        Err(Error::Shard { .. })
    ));
    let s = client.sharded::<Value>("app", "s").unwrap();
    assert!(s.find(json!({"$bad": 1})).is_err());
    assert!(s
        .find(json!({}))
        .unwrap()
        .sort(json!({"a": 3}))
        .next()
        .unwrap()
        .is_err());
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    #[serde(rename = "_id")]
    id: String,
    name: String,
    age: u32,
}

#[test]
fn typed_collections_and_concurrent_writers() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::open(dir.path()).unwrap();
    client
        .create_sharded_collection("app", "users", ShardOptions::new(4))
        .unwrap();
    let users = client.sharded::<User>("app", "users").unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let users = users.clone();
            s.spawn(move || {
                for i in 0..50 {
                    users
                        .insert_one(User {
                            id: format!("u{t}-{i}"),
                            name: format!("n{i}"),
                            age: i,
                        })
                        .unwrap();
                }
            });
        }
    });
    assert_eq!(users.count_documents(json!({})).unwrap(), 200);
    let oldest: Vec<User> = users
        .find(json!({"age": {"$gte": 48}}))
        .unwrap()
        .sort(json!({"age": -1, "_id": 1}))
        .to_vec()
        .unwrap();
    assert_eq!(oldest.len(), 8);
    assert_eq!(oldest[0].id, "u0-49");
    // A cursor dropped early does not hang its member threads.
    let mut cursor = users.find(json!({})).unwrap().batch_size(2);
    assert!(cursor.next().is_some());
    drop(cursor);
    let untyped = users.typed::<Value>();
    assert_eq!(
        untyped.find_one(json!({"_id": "u1-1"})).unwrap().unwrap()["age"],
        1
    );
}

/// The README's sharding example, kept compiling and passing.
#[test]
fn readme_shard_example() -> Result<(), Box<dyn std::error::Error>> {
    use pocketdb::{PartitionBy, TimeBucket};
    let dir = tempfile::tempdir()?;

    let client = Client::open(dir.path())?;
    let users = client.create_sharded_collection(
        "app",
        "users",
        ShardOptions::new(4).key(ShardKey::Field("team".into())),
    )?; // <dir>/app.shards/users/shard-{0..3}.sqlite
    users.insert_many((0..1000).map(|i| json!({"_id": i, "team": i % 10, "score": i})))?;
    let top = users
        .find(json!({"score": {"$gt": 500}}))?
        .sort(json!({"score": -1}))
        .skip(5)
        .limit(10)
        .to_vec()?; // parallel scatter-gather
    assert_eq!(users.members_for(json!({"team": 3}))?.len(), 1); // pinned to one shard
    let users = client.sharded::<serde_json::Value>("app", "users")?; // reopen from the catalog

    let events = client.create_partitioned_collection(
        "app",
        "events",
        PartitionBy::Time {
            field: "ts".into(),
            bucket: TimeBucket::Day,
        },
    )?; // <dir>/app.parts/events/part-2025-01-31.sqlite, …
    events.insert_one(json!({"ts": "2025-01-31T10:00:00Z", "type": "view"}))?;
    events.count_documents(json!({"ts": {"$gte": 1738281600000_i64}}))?; // prunes partitions
    events.drop_partitions_before(1738281600000)?; // deletes whole files, no VACUUM

    assert_eq!(top[0]["score"], 994);
    assert_eq!(users.count_documents(json!({}))?, 1000);
    assert!(dir
        .path()
        .join("app.parts/events/part-2025-01-31.sqlite")
        .exists());
    Ok(())
}

fn bulk_models() -> Vec<pocketdb::WriteModel> {
    use pocketdb::WriteModel;
    vec![
        WriteModel::InsertOne {
            document: doc(1000),
        },
        WriteModel::InsertOne {
            document: doc(1001),
        },
        WriteModel::UpdateOne {
            filter: json!({"_id": 5}),
            update: json!({"$set": {"score": -1}}),
            options: UpdateOptions::default(),
        },
        WriteModel::UpdateMany {
            filter: json!({"team": "t3"}),
            update: json!({"$inc": {"score": 1000}}),
            options: UpdateOptions::default(),
        },
        WriteModel::ReplaceOne {
            filter: json!({"_id": 2000}),
            replacement: json!({"team": "new", "score": 1}),
            upsert: true,
        },
        WriteModel::DeleteOne {
            filter: json!({"_id": 7}),
        },
        WriteModel::DeleteMany {
            filter: json!({"team": "t1"}),
        },
        WriteModel::InsertOne {
            document: doc(1002),
        },
    ]
}

#[test]
fn bulk_write_matches_a_single_file_collection() {
    let (_dir, _client, sharded, plain) = setup(3, ShardKey::Id);
    let got = sharded.bulk_write(bulk_models(), true).unwrap();
    let want = plain.bulk_write(bulk_models(), true).unwrap();
    assert_eq!(got, want);
    assert_eq!(got.inserted_count, 3);
    assert_eq!(got.upserted_ids.get(&4), Some(&json!(2000)));
    assert!(got.deleted_count > 1);
    let sort = json!({"_id": 1});
    let a = sharded
        .find(json!({}))
        .unwrap()
        .sort(sort.clone())
        .to_vec()
        .unwrap();
    let b = plain.find(json!({})).unwrap().sort(sort).to_vec().unwrap();
    assert_eq!(a, b);
}

#[test]
fn bulk_write_reports_errors_by_request_position() {
    use pocketdb::WriteModel;
    let (_dir, _client, sharded, _plain) = setup(2, ShardKey::Id);
    let models = || {
        vec![
            WriteModel::InsertOne { document: doc(500) },
            WriteModel::InsertOne { document: doc(3) }, // duplicate _id
            WriteModel::UpdateOne {
                filter: json!({"_id": 4}),
                update: json!({"$bogus": {"x": 1}}),
                options: UpdateOptions::default(),
            },
            WriteModel::DeleteOne {
                filter: json!({"_id": 6}),
            },
        ]
    };
    // Ordered: stops at the duplicate.
    let Err(Error::BulkWrite(failure)) = sharded.bulk_write(models(), true) else {
        panic!("expected a bulk write failure");
    };
    assert_eq!(failure.write_errors.len(), 1);
    assert_eq!(failure.write_errors[0].index, 1);
    assert!(matches!(
        failure.write_errors[0].error,
        Error::DuplicateKey { .. }
    ));
    assert_eq!(failure.inserted_ids, vec![(0, json!(500))]);
    assert_eq!(sharded.count_documents(json!({"_id": 6})).unwrap(), 1);

    // Unordered: both errors, the delete still runs.
    sharded.delete_one(json!({"_id": 500})).unwrap();
    let Err(Error::BulkWrite(failure)) = sharded.bulk_write(models(), false) else {
        panic!("expected a bulk write failure");
    };
    let indexes: Vec<usize> = failure.write_errors.iter().map(|e| e.index).collect();
    assert_eq!(indexes, vec![1, 2]);
    assert_eq!(failure.deleted_count, 1);
    assert_eq!(sharded.count_documents(json!({"_id": 6})).unwrap(), 0);
}

#[test]
fn create_and_drop_several_indexes_on_every_shard() {
    let (_dir, _client, sharded, _plain) = setup(2, ShardKey::Id);
    let names = sharded
        .create_indexes(&[
            pocketdb::IndexModel {
                keys: json!({"team": 1}),
                options: IndexOptions::default(),
            },
            pocketdb::IndexModel {
                keys: json!({"score": -1}),
                options: IndexOptions::default(),
            },
        ])
        .unwrap();
    assert_eq!(names, vec!["team_1".to_string(), "score_-1".to_string()]);
    let listed: Vec<String> = sharded
        .list_indexes()
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(listed, vec!["_id_", "team_1", "score_-1"]);
    assert_eq!(sharded.drop_indexes().unwrap(), 2);
    let listed: Vec<String> = sharded
        .list_indexes()
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(listed, vec!["_id_"]);
}

#[test]
fn aggregate_matches_a_single_file_collection() {
    let (_dir, _client, sharded, plain) = setup(3, ShardKey::Field("team".to_string()));
    let pipelines = [
        json!([
            {"$match": {"score": {"$gte": 20}}},
            {"$group": {"_id": "$team", "n": {"$sum": 1}, "top": {"$max": "$score"}}},
            {"$sort": {"_id": 1}},
        ]),
        json!([
            {"$match": {"team": "t2"}},
            {"$unwind": "$tags"},
            {"$sortByCount": "$tags"},
            {"$sort": {"_id": 1}},
        ]),
        json!([
            {"$sort": {"score": -1, "_id": 1}},
            {"$skip": 3},
            {"$limit": 5},
            {"$project": {"score": 1}},
        ]),
        json!([{"$match": {"nested.n": 2}}, {"$count": "n"}]),
        json!([{"$skip": 1000}]),
    ];
    for p in pipelines {
        let got = sharded.aggregate(p.clone()).unwrap().to_vec().unwrap();
        let want = plain.aggregate(p.clone()).unwrap().to_vec().unwrap();
        assert_eq!(got, want, "pipeline {p}");
    }
    // Unordered skip/limit: the right number of documents, all matching.
    let some = sharded
        .aggregate(json!([{"$match": {"score": {"$lt": 50}}}, {"$skip": 2}, {"$limit": 7}]))
        .unwrap()
        .to_vec()
        .unwrap();
    assert_eq!(some.len(), 7);
    assert!(some.iter().all(|d| d["score"].as_u64().unwrap() < 50));
    assert!(matches!(
        sharded.aggregate(json!([{"$bogus": {}}])),
        Err(Error::InvalidPipeline { .. })
    ));
}

/// A sharded collection's documents live in member files named after it: a rename of
/// it (or onto it) through its database is refused and changes nothing, and dropping
/// it through its database removes its member files.
#[test]
fn database_level_rename_and_drop_of_a_sharded_collection() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::open(dir.path()).unwrap();
    let sharded = client
        .create_sharded_collection("app", "items", ShardOptions::new(2))
        .unwrap();
    sharded.insert_many((0..20).map(doc)).unwrap();
    let db = client.database("app").unwrap();
    db.collection::<Value>("plain")
        .insert_one(json!({"a": 1}))
        .unwrap();
    for (from, to) in [("items", "things"), ("plain", "items")] {
        let refused = db.rename_collection(from, to, true);
        assert!(matches!(refused, Err(Error::Shard { .. })), "{refused:?}");
    }
    assert_eq!(sharded.count_documents(json!({})).unwrap(), 20);
    assert_eq!(
        db.collection::<Value>("plain")
            .count_documents(json!({}))
            .unwrap(),
        1
    );
    let members = dir.path().join("app.shards/items");
    assert!(members.exists());
    assert!(db.drop_collection("items").unwrap());
    assert!(!members.exists());
    assert!(matches!(
        client.sharded::<Value>("app", "items"),
        Err(Error::CollectionNotFound(_))
    ));
}

/// Guards that an upsert whose filter pins the shard key (without `_id`) updates the
/// existing match, as on a plain collection, for `update_one`, `replace_one` and
/// `find_one_and_update`, and inserts exactly once when nothing matches.
#[test]
fn pinned_upsert_updates_the_existing_match() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::open(dir.path()).unwrap();
    let s = client
        .create_sharded_collection(
            "app",
            "items",
            ShardOptions::new(4).key(ShardKey::Field("team".into())),
        )
        .unwrap();
    s.insert_one(json!({"_id": 1, "team": "a", "name": "x"}))
        .unwrap();
    let r = s
        .update_one_with(
            json!({"team": "a", "name": "x"}),
            json!({"$set": {"v": 1}}),
            &UpdateOptions::upsert(),
        )
        .unwrap();
    assert_eq!((r.matched_count, r.upserted_id.clone()), (1, None), "{r:?}");
    let r = s
        .replace_one_with(
            json!({"team": "a", "name": "x"}),
            json!({"team": "a", "name": "x", "v": 2}),
            true,
        )
        .unwrap();
    assert_eq!((r.matched_count, r.upserted_id.clone()), (1, None), "{r:?}");
    let after = s
        .find_one_and_update(
            json!({"team": "a", "name": "x"}),
            json!({"$inc": {"v": 1}}),
            &FindOneAndModifyOptions {
                upsert: true,
                return_document: ReturnDocument::After,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        after,
        Some(json!({"_id": 1, "team": "a", "name": "x", "v": 3}))
    );
    assert_eq!(s.count_documents(json!({})).unwrap(), 1);
    // Nothing matches: one insert, on the shard the new document routes to.
    for _ in 0..2 {
        s.update_one_with(
            json!({"team": "b", "name": "y"}),
            json!({"$inc": {"n": 1}}),
            &UpdateOptions::upsert(),
        )
        .unwrap();
    }
    let b = s.find(json!({"team": "b"})).unwrap().to_vec().unwrap();
    assert_eq!(b.len(), 1, "{b:?}");
    assert_eq!(b[0]["n"], 2);
    assert_eq!(s.count_documents(json!({})).unwrap(), 2);
}

/// Guards the same on a one-shard collection keyed by `_id`, where every filter reaches
/// the only shard but a new document's generated `_id` picks its shard.
#[test]
fn one_shard_upsert_updates_the_existing_match() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::open(dir.path()).unwrap();
    let s = client
        .create_sharded_collection("app", "items", ShardOptions::new(1))
        .unwrap();
    s.insert_one(json!({"_id": 1, "name": "x"})).unwrap();
    let r = s
        .update_one_with(
            json!({"name": "x"}),
            json!({"$inc": {"n": 1}}),
            &UpdateOptions::upsert(),
        )
        .unwrap();
    assert_eq!((r.matched_count, r.upserted_id.clone()), (1, None), "{r:?}");
    let r = s
        .update_one_with(
            json!({"name": "new"}),
            json!({"$inc": {"n": 1}}),
            &UpdateOptions::upsert(),
        )
        .unwrap();
    let id = r.upserted_id.expect("inserted");
    assert_eq!(s.count_documents(json!({"_id": id})).unwrap(), 1);
    assert_eq!(s.count_documents(json!({})).unwrap(), 2);
}

/// Guards that a bulk write mixing every kind of operation (among them an upsert pinned
/// to one shard that matches) gives the counts and documents of a plain collection.
#[test]
fn bulk_write_with_a_pinned_upsert_matches_a_plain_collection() {
    use pocketdb::WriteModel;
    let dir = tempfile::tempdir().unwrap();
    let client = Client::open(dir.path()).unwrap();
    let s = client
        .create_sharded_collection(
            "app",
            "items",
            ShardOptions::new(4).key(ShardKey::Field("g".into())),
        )
        .unwrap();
    let p = client
        .database("plain")
        .unwrap()
        .collection::<Value>("items");
    let docs: Vec<Value> = (0..20)
        .map(|i| json!({"_id": i, "g": i % 3, "v": i}))
        .collect();
    s.insert_many(docs.clone()).unwrap();
    p.insert_many(docs).unwrap();
    let models = vec![
        WriteModel::InsertOne {
            document: json!({"_id": 100, "g": 1}),
        },
        WriteModel::UpdateMany {
            filter: json!({"v": {"$gte": 10}}),
            update: json!({"$set": {"big": true}}),
            options: UpdateOptions::default(),
        },
        WriteModel::UpdateOne {
            filter: json!({"g": 2, "v": 5}),
            update: json!({"$set": {"w": 1}}),
            options: UpdateOptions::upsert(),
        },
        WriteModel::ReplaceOne {
            filter: json!({"g": 0, "v": 6}),
            replacement: json!({"g": 0, "r": 1}),
            upsert: true,
        },
        WriteModel::InsertOne {
            document: json!({"_id": 101, "g": 2}),
        },
        WriteModel::DeleteMany {
            filter: json!({"big": true, "g": 0}),
        },
        WriteModel::UpdateMany {
            filter: json!({"g": 2}),
            update: json!({"$set": {"big": true}}),
            options: UpdateOptions::default(),
        },
    ];
    let a = s.bulk_write(models.clone(), true).unwrap();
    let b = p.bulk_write(models, true).unwrap();
    let counts = |r: &pocketdb::BulkWriteResult| {
        (
            r.inserted_count,
            r.matched_count,
            r.modified_count,
            r.deleted_count,
            r.upserted_count,
        )
    };
    assert_eq!(counts(&a), counts(&b));
    let sorted = |mut docs: Vec<Value>| {
        docs.sort_by_key(|d| d["_id"].as_i64());
        docs
    };
    assert_eq!(
        sorted(s.find(json!({})).unwrap().to_vec().unwrap()),
        sorted(p.find(json!({})).unwrap().to_vec().unwrap())
    );
}

/// Guards that expiry, which would only reach the main file's empty placeholder table,
/// is refused on a sharded collection instead of silently never expiring anything.
#[test]
fn expire_after_is_refused_on_a_sharded_collection() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::open(dir.path()).unwrap();
    let s = client
        .create_sharded_collection("app", "items", ShardOptions::new(2))
        .unwrap();
    s.insert_many((0..4).map(|i| json!({"_id": i}))).unwrap();
    let db = client.database("app").unwrap();
    let set = db.set_expire_after("items", Some(std::time::Duration::from_millis(50)));
    assert!(matches!(set, Err(Error::Shard { .. })), "{set:?}");
    assert_eq!(db.expire_after("items").unwrap(), None);
    // Not even removing one: no expiry applies to it.
    assert!(matches!(
        db.set_expire_after("items", None),
        Err(Error::Shard { .. })
    ));
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(s.count_documents(json!({})).unwrap(), 4);
}

/// Guards that a handle opened before another handle dropped the collection fails with
/// `CollectionNotFound` instead of acknowledging writes into deleted files, also once
/// the name is reused; a handle on the new collection works.
#[test]
fn a_stale_handle_after_drop_fails() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::open(dir.path()).unwrap();
    let h1 = client
        .create_sharded_collection("app", "items", ShardOptions::new(2))
        .unwrap();
    h1.insert_one(json!({"_id": 1})).unwrap();
    let h2 = client.sharded::<Value>("app", "items").unwrap();
    assert!(h2.drop().unwrap());
    let w = h1.insert_one(json!({"_id": 2}));
    assert!(matches!(w, Err(Error::CollectionNotFound(_))), "{w:?}");
    let w = h1.update_one(json!({"_id": 1}), json!({"$set": {"a": 1}}));
    assert!(matches!(w, Err(Error::CollectionNotFound(_))), "{w:?}");
    let r = h1.count_documents(json!({}));
    assert!(matches!(r, Err(Error::CollectionNotFound(_))), "{r:?}");
    // Dropped through the database too.
    let again = client
        .create_sharded_collection("app", "items", ShardOptions::new(2))
        .unwrap();
    assert!(h1.insert_one(json!({"_id": 3})).is_err());
    // The stale handle does not drop the new collection.
    assert!(!h1.drop().unwrap());
    again.insert_one(json!({"_id": 4})).unwrap();
    let other = client.sharded::<Value>("app", "items").unwrap();
    assert_eq!(other.count_documents(json!({})).unwrap(), 1);
    assert!(client
        .database("app")
        .unwrap()
        .drop_collection("items")
        .unwrap());
    let w = again.insert_one(json!({"_id": 5}));
    assert!(matches!(w, Err(Error::CollectionNotFound(_))), "{w:?}");
}

/// Numbers MongoDB holds equal route to the same shard: a float shard key above 2^53
/// (`1e17`) hashed by its text while the equal integer hashed by its digits, so a query
/// pinned to the integer's shard missed the document.
#[test]
fn equal_large_numbers_route_to_the_same_shard() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::open(dir.path()).unwrap();
    let s = client
        .create_sharded_collection(
            "app",
            "items",
            ShardOptions::new(8).key(ShardKey::Field("k".into())),
        )
        .unwrap();
    for e in 16..19u32 {
        let f = 10f64.powi(e as i32);
        let i = 10i64.pow(e);
        s.insert_one(json!({"_id": e, "k": f})).unwrap();
        assert_eq!(
            s.members_for(json!({"k": i})).unwrap(),
            s.members_for(json!({"k": f})).unwrap()
        );
        assert_eq!(s.count_documents(json!({"k": i})).unwrap(), 1, "10^{e}");
    }
}

/// A replacement upsert takes only `_id` from its filter on a sharded collection too,
/// as on one file: other filter fields an operator upsert could not seed from (`$all`
/// of two values) do not fail it.
#[test]
fn sharded_replacement_upsert_takes_only_the_id_from_its_filter() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::open(dir.path()).unwrap();
    let s = client
        .create_sharded_collection("app", "r", ShardOptions::new(3))
        .unwrap();
    let plain = client.database("app").unwrap().collection::<Value>("plain");
    let filter = json!({"_id": 5, "x": {"$all": [1, 2]}});
    for result in [
        s.replace_one_with(filter.clone(), json!({"v": 1}), true),
        plain.replace_one_with(filter.clone(), json!({"v": 1}), true),
    ] {
        assert_eq!(result.unwrap().upserted_id, Some(json!(5)));
    }
    assert_eq!(
        s.find_one(json!({"_id": 5})).unwrap(),
        Some(json!({"_id": 5, "v": 1}))
    );
}

/// A plain `Collection` handle on a sharded collection's name is refused with
/// `Error::Shard`: it read and wrote the empty table the collection has in its main
/// database, so a `find` silently found nothing and an insert was never seen by the
/// sharded collection.
#[test]
fn a_plain_handle_on_a_sharded_name_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::open(dir.path()).unwrap();
    let s = client
        .create_sharded_collection("app", "users", ShardOptions::new(2))
        .unwrap();
    s.insert_one(json!({"_id": 1})).unwrap();
    let db = client.database("app").unwrap();
    let plain = db.collection::<Value>("users");
    let refused = |r: pocketdb::Result<()>| matches!(r, Err(Error::Shard { .. }));
    assert!(refused(
        plain.find(json!({})).and_then(|c| c.to_vec()).map(|_| ())
    ));
    assert!(refused(plain.find_one(json!({"_id": 1})).map(|_| ())));
    assert!(refused(plain.count_documents(json!({})).map(|_| ())));
    assert!(refused(plain.insert_one(json!({"_id": 2})).map(|_| ())));
    assert!(refused(
        plain
            .update_one(json!({"_id": 1}), json!({"$set": {"a": 1}}))
            .map(|_| ())
    ));
    assert!(refused(plain.delete_one(json!({"_id": 1})).map(|_| ())));
    // Through the catalog-aware entry points it is the sharded collection.
    assert_eq!(
        db.resolve_collection("users")
            .unwrap()
            .count_documents(json!({}))
            .unwrap(),
        1
    );
    // Once dropped, the name is an ordinary collection again.
    s.drop().unwrap();
    plain.insert_one(json!({"_id": 3})).unwrap();
    assert_eq!(plain.count_documents(json!({})).unwrap(), 1);
}
