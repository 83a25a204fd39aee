//! Joins and aggregation output across collection layouts: `$lookup` and populate whose
//! foreign side is a sharded or partitioned collection, `$merge`/`$out` into one, and
//! [`Collection::lookup`] in a buffered database with writes not yet applied.

use pocketdb::{
    BufferOptions, Client, Collection, Database, Durability, Error, LookupSpec, LookupStrategy,
    Options, PartitionBy, ShardKey, ShardOptions, ShardedCollection, TimeBucket,
};
use serde_json::{json, Value};
use std::time::Duration;

/// 2025-01-01T00:00:00Z.
const JAN_1: i64 = 1_735_689_600_000;
const DAY: i64 = 24 * 3_600_000;

fn sharded(client: &Client, name: &str, shards: usize) -> ShardedCollection {
    client
        .create_sharded_collection("app", name, ShardOptions::new(shards).key(ShardKey::Id))
        .unwrap()
}

fn plain(client: &Client, name: &str) -> Collection {
    client.database("app").unwrap().collection::<Value>(name)
}

fn aggregate(coll: &Collection, pipeline: Value) -> Vec<Value> {
    coll.aggregate(pipeline).unwrap().to_vec().unwrap()
}

/// A buffered database that applies its writes only when flushed.
fn open_buffered(dir: &tempfile::TempDir) -> Database {
    Database::open_with(
        dir.path().join("buf.sqlite"),
        Options::default().durability(Durability::Buffered(
            BufferOptions::default().flush_interval(Duration::from_secs(3600)),
        )),
    )
    .unwrap()
}

// ----- $lookup from a sharded or partitioned collection --------------------------------

/// `$lookup` with `localField`/`foreignField` whose `from` is a sharded collection of the
/// same database joins the members' documents, not the empty placeholder table (the
/// batched `$in` path).
#[test]
fn lookup_equality_from_a_sharded_collection() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::open(dir.path()).unwrap();
    let users = sharded(&client, "users", 3);
    users
        .insert_many((0..10).map(|i| json!({"_id": i, "name": format!("u{i}")})))
        .unwrap();
    let orders = plain(&client, "orders");
    orders
        .insert_many([
            json!({"_id": "o1", "user": 3}),
            json!({"_id": "o2", "user": [1, 8]}),
            json!({"_id": "o3", "user": 42}),
        ])
        .unwrap();
    let out = aggregate(
        &orders,
        json!([
            {"$lookup": {"from": "users", "localField": "user", "foreignField": "_id", "as": "u"}},
            {"$sort": {"_id": 1}}
        ]),
    );
    let names: Vec<Vec<Value>> = out
        .iter()
        .map(|d| {
            let mut n: Vec<Value> = d["u"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["name"].clone())
                .collect();
            n.sort_by_key(|v| v.as_str().map(str::to_string));
            n
        })
        .collect();
    assert_eq!(
        names,
        vec![vec![json!("u3")], vec![json!("u1"), json!("u8")], vec![]],
        "{out:?}"
    );
}

/// `$lookup` from a partitioned collection, also addressed as `{db, coll}`, and the
/// pipeline forms (uncorrelated, and correlated without an equality match) read the
/// partitions too.
#[test]
fn lookup_from_a_partitioned_collection_in_every_form() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::open(dir.path()).unwrap();
    let events = client
        .create_partitioned_collection(
            "app",
            "events",
            PartitionBy::Time {
                field: "ts".into(),
                bucket: TimeBucket::Day,
            },
        )
        .unwrap();
    events
        .insert_many((0..6).map(|i| json!({"_id": i, "ts": JAN_1 + i * DAY, "user": i % 2})))
        .unwrap();
    assert!(events.partitions().unwrap().len() > 1);
    let users = plain(&client, "users");
    users
        .insert_many([json!({"_id": 0}), json!({"_id": 1})])
        .unwrap();
    let count = |pipeline: Value| -> Vec<Value> {
        aggregate(
            &users,
            json!([
                {"$lookup": pipeline},
                {"$project": {"n": {"$size": "$e"}}},
                {"$sort": {"_id": 1}}
            ]),
        )
    };
    let want = vec![json!({"_id": 0, "n": 3}), json!({"_id": 1, "n": 3})];
    assert_eq!(
        count(
            json!({"from": {"db": "app", "coll": "events"}, "localField": "_id",
                     "foreignField": "user", "as": "e"})
        ),
        want
    );
    assert_eq!(
        count(json!({"from": "events", "let": {"u": "$_id"}, "as": "e",
                     "pipeline": [{"$match": {"$expr": {"$eq": ["$user", "$$u"]}}}]})),
        want
    );
    assert_eq!(
        count(json!({"from": "events", "as": "e",
                     "pipeline": [{"$match": {"ts": {"$lt": JAN_1 + 3 * DAY}}}]})),
        want
    );
}

/// `populate` and [`Collection::lookup`] given the handle of a sharded collection's name
/// read its members; an explicit SQL join, which cannot, is refused.
#[test]
fn populate_and_collection_lookup_read_a_sharded_target() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::open(dir.path()).unwrap();
    let users = sharded(&client, "users", 3);
    users
        .insert_many((0..5).map(|i| json!({"_id": i, "name": format!("u{i}")})))
        .unwrap();
    let by_name = plain(&client, "users");
    let orders = plain(&client, "orders");
    orders.insert_one(json!({"_id": "o1", "user": 2})).unwrap();
    let populated = orders
        .find(json!({}))
        .unwrap()
        .populate("user", &by_name)
        .to_vec()
        .unwrap();
    assert_eq!(populated[0]["user"], json!({"_id": 2, "name": "u2"}));
    let spec = LookupSpec::new(&by_name, "user", "_id", "u");
    let joined = orders.lookup_explained(json!({}), &spec).unwrap();
    assert_eq!(joined.strategy, LookupStrategy::Batched);
    assert_eq!(joined.documents[0]["u"], json!([{"_id": 2, "name": "u2"}]));
    let refused = orders.lookup(json!({}), &spec.strategy(LookupStrategy::SqlJoin));
    assert!(
        matches!(refused, Err(Error::InvalidArgument(_))),
        "{refused:?}"
    );
}

// ----- $merge / $out into a sharded collection ------------------------------------------

/// `$merge` into a sharded collection writes through its members (insert, then
/// `whenMatched` merge and replace on documents it finds there); the placeholder table
/// stays empty.
#[test]
fn merge_into_a_sharded_collection_reaches_its_members() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::open(dir.path()).unwrap();
    let target = sharded(&client, "target", 3);
    let src = plain(&client, "src");
    src.insert_many((0..5).map(|i| json!({"_id": i, "v": i})))
        .unwrap();
    assert!(aggregate(&src, json!([{"$merge": {"into": "target"}}])).is_empty());
    assert_eq!(target.count_documents(json!({})).unwrap(), 5);
    // The placeholder table of the main file stays empty (a plain handle on the name
    // is refused, so it is read in SQL).
    assert_eq!(
        client
            .database("app")
            .unwrap()
            .sql("SELECT count(*) AS n FROM \"c_target\"", &[])
            .unwrap(),
        vec![json!({"n": 0})]
    );

    aggregate(
        &src,
        json!([{"$match": {"_id": {"$lt": 2}}}, {"$set": {"w": 1}}, {"$merge": "target"}]),
    );
    aggregate(
        &src,
        json!([
            {"$match": {"_id": 4}},
            {"$project": {"r": {"$literal": true}}},
            {"$merge": {"into": "target", "whenMatched": "replace"}}
        ]),
    );
    let all = target
        .find(json!({}))
        .unwrap()
        .sort(json!({"_id": 1}))
        .to_vec()
        .unwrap();
    assert_eq!(
        all,
        vec![
            json!({"_id": 0, "v": 0, "w": 1}),
            json!({"_id": 1, "v": 1, "w": 1}),
            json!({"_id": 2, "v": 2}),
            json!({"_id": 3, "v": 3}),
            json!({"_id": 4, "r": true}),
        ]
    );
    let failed = src
        .aggregate(json!([{"$merge": {"into": "target", "whenMatched": "fail"}}]))
        .and_then(|c| c.to_vec());
    assert!(
        matches!(failed, Err(Error::InvalidPipeline { .. })),
        "{failed:?}"
    );
}

/// `$out` into a sharded collection is refused with `Error::Shard` naming it, before
/// anything is written.
#[test]
fn out_into_a_sharded_collection_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::open(dir.path()).unwrap();
    let target = sharded(&client, "target", 2);
    target.insert_one(json!({"_id": "kept"})).unwrap();
    let src = plain(&client, "src");
    src.insert_one(json!({"_id": 1})).unwrap();
    let r = src
        .aggregate(json!([{"$out": "target"}]))
        .and_then(|c| c.to_vec());
    match r {
        Err(Error::Shard { collection, .. }) => assert_eq!(collection, "target"),
        other => panic!("expected Error::Shard, got {other:?}"),
    }
    assert_eq!(target.count_documents(json!({})).unwrap(), 1);
    let names = client.database("app").unwrap().list_collections().unwrap();
    assert!(!names.iter().any(|n| n.starts_with("tmp.")), "{names:?}");
}

// ----- Collection::lookup in a buffered database ------------------------------------------

/// [`Collection::lookup`] sees writes pending in a buffered database on either side:
/// `Auto` answers with the batched strategy (which reads through the buffer) while
/// writes are pending and with the SQL join once they are applied; an explicit
/// `SqlJoin` flushes first. The aggregation `$lookup` agrees.
#[test]
fn collection_lookup_sees_buffered_writes() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_buffered(&dir);
    let orders = db.collection::<Value>("orders");
    let users = db.collection::<Value>("users");
    users
        .insert_one(json!({"_id": "u1", "name": "Ada"}))
        .unwrap();
    orders.insert_one(json!({"_id": 1, "user": "u1"})).unwrap();
    orders.insert_one(json!({"_id": 3, "user": "u1"})).unwrap();
    db.flush().unwrap();
    let pend = || {
        users
            .insert_one(json!({"_id": "u2", "name": "Linus"}))
            .unwrap();
        orders.insert_one(json!({"_id": 2, "user": "u2"})).unwrap();
        users
            .update_one(json!({"_id": "u1"}), json!({"$set": {"name": "Ada L."}}))
            .unwrap();
        orders.delete_one(json!({"_id": 3})).unwrap();
    };
    pend();
    let want = vec![
        json!({"_id": 1, "user": "u1", "u": [{"_id": "u1", "name": "Ada L."}]}),
        json!({"_id": 2, "user": "u2", "u": [{"_id": "u2", "name": "Linus"}]}),
    ];
    let sorted = |mut docs: Vec<Value>| {
        docs.sort_by_key(|d| d["_id"].as_i64());
        docs
    };
    let spec = LookupSpec::new(&users, "user", "_id", "u");
    let auto = orders.lookup_explained(json!({}), &spec).unwrap();
    assert_eq!(auto.strategy, LookupStrategy::Batched);
    assert_eq!(sorted(auto.documents), want, "Auto with pending writes");
    let agg = aggregate(
        &orders,
        json!([
            {"$lookup": {"from": "users", "localField": "user", "foreignField": "_id", "as": "u"}},
            {"$sort": {"_id": 1}}
        ]),
    );
    assert_eq!(agg, want, "aggregate $lookup");

    // Pending on the foreign side only.
    db.flush().unwrap();
    users
        .update_one(json!({"_id": "u2"}), json!({"$set": {"name": "L."}}))
        .unwrap();
    let got = orders.lookup(json!({"_id": 2}), &spec).unwrap();
    assert_eq!(got[0]["u"], json!([{"_id": "u2", "name": "L."}]));

    // An explicit SQL join applies the pending writes first.
    let sql = spec.clone().strategy(LookupStrategy::SqlJoin);
    users
        .update_one(json!({"_id": "u2"}), json!({"$set": {"name": "Linus"}}))
        .unwrap();
    orders.insert_one(json!({"_id": 4, "user": "u9"})).unwrap();
    let joined = orders.lookup_explained(json!({}), &sql).unwrap();
    assert_eq!(joined.strategy, LookupStrategy::SqlJoin);
    let mut want_all = want.clone();
    want_all.push(json!({"_id": 4, "user": "u9", "u": []}));
    assert_eq!(sorted(joined.documents), want_all, "explicit SqlJoin");

    // Nothing pending: Auto joins in SQL again.
    let auto = orders.lookup_explained(json!({}), &spec).unwrap();
    assert_eq!(auto.strategy, LookupStrategy::SqlJoin);
    assert_eq!(sorted(auto.documents), want_all);
}
