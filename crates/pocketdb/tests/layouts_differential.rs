//! Generated sequences of writes and reads run on one collection in every write mode and
//! layout: a plain `Sync` collection (the reference), the same with secondary indexes,
//! group commit, buffered (small batches, so writes are applied while others are
//! pending), hash-sharded by `_id`, sharded by a field, partitioned by key prefix, and
//! sharded over buffered members, and with encrypted fields (`Sync` and buffered). Every
//! operation must report the same outcome
//! everywhere and every read must return the same documents, also after everything is
//! closed and opened again from its files. Replicas fed the change sets of the
//! single-file databases (`export_changes` / `apply_changes`) must hold the same too.
//!
//! Single-document writes pin their document by `_id` (MongoDB does not say which of
//! several matching documents `update_one` picks; a sharded collection may pick another),
//! and `find_one_and_update` sorts with `_id` last. The shard and partition key `g` is a
//! function of `_id` that no update changes (sharded collections refuse to move a
//! document). Updates never fail on a document: an `update_many` that fails on one
//! member after another committed is documented as not atomic across members, so the
//! generator keeps `a` a number and `tags` an array.

use pocketdb::plugin::{Encryption, EncryptionKey};
use pocketdb::{
    BufferOptions, BulkWriteResult, Client, Collection, Database, DeleteResult, Durability, Error,
    FindOneAndModifyOptions, IndexOptions, InsertManyOptions, InsertManyResult, Options,
    PartitionBy, ReturnDocument, ShardKey, ShardOptions, ShardedCollection, TimeBucket,
    UpdateOptions, UpdateResult, WriteModel,
};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// Ids come from a small pool so inserts collide and filters match several documents.
const IDS: u64 = 16;

fn g_of(id: u64) -> String {
    format!("k{}", id % 3)
}

/// The time partition key: a date that is a function of `_id`, over several days.
fn ts_of(id: u64) -> Value {
    json!(1_735_689_600_000i64 + (id as i64) * 7 * 3_600_000)
}

fn doc(id: u64, v: u8) -> Value {
    let mut d = json!({"_id": id, "g": g_of(id), "a": v % 7, "tags": [format!("t{}", v % 4)],
                       "ts": ts_of(id)});
    if v.is_multiple_of(3) {
        d["n"] = json!({"x": v % 5});
    }
    if v.is_multiple_of(5) {
        d["a"] = json!((v % 7) as f64 + 0.5);
    }
    d
}

#[derive(Debug, Clone)]
enum Op {
    InsertMany(Vec<(u64, u8)>, bool),
    InsertOne(u64, u8),
    UpdateOne(u64, Option<u8>, usize, bool),
    UpdateMany(usize, usize),
    ReplaceOne(u64, u8, bool),
    DeleteOne(u64),
    DeleteMany(usize),
    FindOneAndUpdate(usize, usize, bool, bool),
    FindOneAndDelete(usize, usize),
    UpsertMany(u8, usize),
    BulkWrite(Vec<(usize, u64, u8)>, bool),
    Read(usize, usize, usize, usize),
    Aggregate(usize, usize, usize),
    Reopen,
}

fn filter(i: usize, k: u8) -> Value {
    match i % 8 {
        0 => json!({}),
        1 => json!({"a": {"$gt": k % 7}}),
        2 => json!({"g": g_of(u64::from(k))}),
        3 => json!({"tags": format!("t{}", k % 4)}),
        4 => json!({"_id": {"$in": [k % 16, (k % 16 + 5) % 16, (k % 16 + 9) % 16]}}),
        5 => json!({"$or": [{"a": k % 7}, {"n.x": k % 5}]}),
        6 => json!({"n": {"$exists": false}, "a": {"$lte": 3}}),
        // A range of the time partition key: only some days' partitions are read.
        _ if k % 2 == 1 => json!({"ts": {"$gte": ts_of(u64::from(k % 16)),
                                          "$lt": ts_of(u64::from(k % 16) + 6)}}),
        _ => json!({"tags": {"$size": 2}}),
    }
}

fn update(i: usize, k: u8) -> Value {
    match i % 7 {
        0 => json!({"$set": {"a": k % 7}}),
        1 => json!({"$inc": {"a": 1 + k % 3}}),
        2 => json!({"$unset": {"n": ""}}),
        3 => json!({"$push": {"tags": format!("t{}", k % 4)}}),
        4 => json!({"$addToSet": {"tags": format!("t{}", k % 4)}}),
        5 => json!({"$set": {"n.x": k % 5}}),
        _ => json!({"$inc": {"a": 2}, "$set": {"b": format!("s{k}")}}),
    }
}

const SORTS: [&str; 4] = [
    r#"{"_id": 1}"#,
    r#"{"a": 1, "_id": 1}"#,
    r#"{"a": -1, "_id": -1}"#,
    r#"{"tags": 1, "g": -1, "_id": 1}"#,
];

fn sort(i: usize) -> Value {
    serde_json::from_str(SORTS[i % SORTS.len()]).unwrap_or(Value::Null)
}

fn op() -> impl Strategy<Value = Op> {
    let id = 0..IDS;
    prop_oneof![
        (
            proptest::collection::vec((0..IDS, any::<u8>()), 1..6),
            any::<bool>()
        )
            .prop_map(|(d, o)| Op::InsertMany(d, o)),
        (id.clone(), any::<u8>()).prop_map(|(i, v)| Op::InsertOne(i, v)),
        (id.clone(), any::<Option<u8>>(), 0..9usize, any::<bool>())
            .prop_map(|(i, k, u, up)| Op::UpdateOne(i, k, u, up)),
        (0..64usize, 0..7usize).prop_map(|(f, u)| Op::UpdateMany(f, u)),
        (id.clone(), any::<u8>(), any::<bool>()).prop_map(|(i, v, up)| Op::ReplaceOne(i, v, up)),
        id.prop_map(Op::DeleteOne),
        (0..64usize).prop_map(Op::DeleteMany),
        (0..64usize, 0..7usize, any::<bool>(), any::<bool>())
            .prop_map(|(f, u, up, after)| Op::FindOneAndUpdate(f, u, up, after)),
        (0..64usize, 0..4usize).prop_map(|(f, s)| Op::FindOneAndDelete(f, s)),
        (any::<u8>(), 0..7usize).prop_map(|(k, u)| Op::UpsertMany(k, u)),
        (
            proptest::collection::vec((0..7usize, 0..IDS, any::<u8>()), 1..6),
            any::<bool>()
        )
            .prop_map(|(m, o)| Op::BulkWrite(m, o)),
        (0..64usize, 0..4usize, 0..4usize, 0..6usize).prop_map(|(f, s, k, l)| Op::Read(f, s, k, l)),
        (0..64usize, 0..4usize, 0..3usize).prop_map(|(f, s, p)| Op::Aggregate(f, s, p)),
        Just(Op::Reopen),
    ]
}

/// One collection under test, whatever its layout.
enum Target {
    Plain(Collection),
    Sharded(ShardedCollection),
}

/// What an operation reported, comparable across layouts.
fn outcome<T: std::fmt::Debug>(r: pocketdb::Result<T>) -> String {
    match r {
        Ok(v) => format!("ok {v:?}"),
        Err(Error::BulkWrite(f)) => format!(
            "bulk inserted {:?} errors {:?}",
            f.inserted_ids,
            f.write_errors
                .iter()
                .map(|w| (w.index, kind(&w.error)))
                .collect::<Vec<_>>()
        ),
        Err(e) => kind(&e),
    }
}

fn kind(e: &Error) -> String {
    let text = format!("{e:?}");
    text.split(['(', ' ', '{'])
        .next()
        .unwrap_or_default()
        .to_string()
}

macro_rules! on_target {
    ($t:expr, $c:ident => $body:expr) => {
        match $t {
            Target::Plain($c) => $body,
            Target::Sharded($c) => $body,
        }
    };
}

impl Target {
    fn insert_many(&self, docs: Vec<Value>, ordered: bool) -> pocketdb::Result<InsertManyResult> {
        let o = InsertManyOptions { ordered };
        on_target!(self, c => c.insert_many_with(docs, o))
    }

    fn insert_one(&self, d: Value) -> pocketdb::Result<Value> {
        on_target!(self, c => c.insert_one(d).map(|r| r.inserted_id))
    }

    fn update_one(&self, f: Value, u: Value, upsert: bool) -> pocketdb::Result<UpdateResult> {
        let o = UpdateOptions {
            upsert,
            array_filters: None,
        };
        on_target!(self, c => c.update_one_with(f, u, &o))
    }

    fn update_many(&self, f: Value, u: Value) -> pocketdb::Result<UpdateResult> {
        on_target!(self, c => c.update_many(f, u))
    }

    fn replace_one(&self, f: Value, d: Value, upsert: bool) -> pocketdb::Result<UpdateResult> {
        on_target!(self, c => c.replace_one_with(f, d, upsert))
    }

    fn delete_one(&self, f: Value) -> pocketdb::Result<DeleteResult> {
        on_target!(self, c => c.delete_one(f))
    }

    fn delete_many(&self, f: Value) -> pocketdb::Result<DeleteResult> {
        on_target!(self, c => c.delete_many(f))
    }

    fn find_one_and_update(
        &self,
        f: Value,
        u: Value,
        o: &FindOneAndModifyOptions,
    ) -> pocketdb::Result<Option<Value>> {
        on_target!(self, c => c.find_one_and_update(f, u, o))
    }

    fn find_one_and_delete(
        &self,
        f: Value,
        o: &FindOneAndModifyOptions,
    ) -> pocketdb::Result<Option<Value>> {
        on_target!(self, c => c.find_one_and_delete(f, o))
    }

    fn bulk_write(
        &self,
        models: Vec<WriteModel>,
        ordered: bool,
    ) -> pocketdb::Result<BulkWriteResult> {
        on_target!(self, c => c.bulk_write(models, ordered))
    }

    fn read(&self, f: Value, s: Value, skip: u64, limit: i64) -> pocketdb::Result<Vec<Value>> {
        on_target!(self, c => c.find(f)?.sort(s).skip(skip).limit(limit).to_vec())
    }

    fn read_projected(&self, f: Value, s: Value, p: Value) -> pocketdb::Result<Vec<Value>> {
        on_target!(self, c => c.find(f)?.sort(s).projection(p).limit(5).to_vec())
    }

    fn aggregate(&self, pipeline: Value) -> pocketdb::Result<Vec<Value>> {
        on_target!(self, c => c.aggregate(pipeline)?.to_vec())
    }

    fn count(&self, f: Value) -> pocketdb::Result<u64> {
        on_target!(self, c => c.count_documents(f))
    }

    fn distinct(&self, field: &str, f: Value) -> pocketdb::Result<Vec<Value>> {
        on_target!(self, c => c.distinct(field, f))
    }
}

/// Runs `op` on `t` and returns everything it reported.
fn run(t: &Target, op: &Op) -> Vec<String> {
    match op {
        Op::InsertMany(docs, ordered) => {
            let docs = docs.iter().map(|(i, v)| doc(*i, *v)).collect();
            vec![outcome(t.insert_many(docs, *ordered))]
        }
        Op::InsertOne(i, v) => vec![outcome(t.insert_one(doc(*i, *v)))],
        Op::UpdateOne(i, k, u, upsert) => {
            let mut f = json!({"_id": i});
            if let Some(k) = k {
                f["a"] = json!({"$gte": k % 7});
            }
            // Two updates every layout must refuse alike: one changing `_id`, one
            // naming a field twice.
            let mut u = match u {
                7 => json!({"$inc": {"_id": 1}}),
                8 => json!({"$set": {"a": 1}, "$unset": {"a": ""}}),
                u => update(*u, k.unwrap_or(1)),
            };
            u["$setOnInsert"] = json!({"g": g_of(*i), "ts": ts_of(*i)});
            vec![outcome(t.update_one(f, u, *upsert))]
        }
        Op::UpdateMany(f, u) => {
            let k = (*f / 8) as u8;
            vec![outcome(t.update_many(filter(*f, k), update(*u, k)))]
        }
        Op::ReplaceOne(i, v, upsert) => {
            let mut d = doc(*i, *v);
            if let Some(m) = d.as_object_mut() {
                // `remove` swaps the last field into `_id`'s place: the same values in
                // another order, which is a modification.
                m.remove("_id");
            }
            vec![outcome(t.replace_one(json!({"_id": i}), d, *upsert))]
        }
        Op::DeleteOne(i) => vec![outcome(t.delete_one(json!({"_id": i})))],
        Op::DeleteMany(f) => vec![outcome(t.delete_many(filter(*f, (*f / 8) as u8)))],
        Op::FindOneAndUpdate(f, u, upsert, after) => {
            // An upsert from `{tags: "t1"}` would store `tags` as a string, on which a
            // later `$push` fails: keep `tags` an array (see the module docs).
            let f = &if *upsert && *f % 8 == 3 { *f + 1 } else { *f };
            let k = (*f / 8) as u8;
            let o = FindOneAndModifyOptions {
                sort: Some(sort(*f + *u)),
                upsert: *upsert,
                return_document: if *after {
                    ReturnDocument::After
                } else {
                    ReturnDocument::Before
                },
                ..Default::default()
            };
            let mut u = update(*u, k);
            // An upsert from this filter has no `_id` of its own: give it one in the
            // pool's complement so it cannot collide, and its shard key.
            let id = IDS + u64::from(k);
            u["$setOnInsert"] = json!({"_id": id, "g": g_of(id), "ts": ts_of(id)});
            let f = match filter(*f, k) {
                Value::Object(m) if m.is_empty() => json!({"a": {"$gte": 0}}),
                other => other,
            };
            vec![outcome(t.find_one_and_update(f, u, &o))]
        }
        Op::FindOneAndDelete(f, s) => {
            let o = FindOneAndModifyOptions {
                sort: Some(sort(*s)),
                ..Default::default()
            };
            vec![outcome(
                t.find_one_and_delete(filter(*f, (*f / 8) as u8), &o),
            )]
        }
        Op::UpsertMany(k, u) => {
            // Matches every document of one `a` and `g`, or inserts one with an `_id`
            // outside the pool.
            let id = IDS + u64::from(*k % 8);
            let f = json!({"a": k % 7, "g": g_of(id)});
            let mut u = update(*u, *k);
            u["$setOnInsert"] = json!({"_id": id, "ts": ts_of(id)});
            let o = UpdateOptions {
                upsert: true,
                array_filters: None,
            };
            vec![outcome(on_target!(t, c => c.update_many_with(f, u, &o)))]
        }
        Op::BulkWrite(models, ordered) => {
            let models = models
                .iter()
                .map(|(m, id, v)| match m {
                    0 | 1 => WriteModel::InsertOne {
                        document: doc(*id, *v),
                    },
                    2 => WriteModel::UpdateOne {
                        filter: json!({"_id": id}),
                        update: update(usize::from(*v), *v),
                        options: UpdateOptions::default(),
                    },
                    3 => WriteModel::UpdateMany {
                        filter: filter(usize::from(*v), *v),
                        update: update(usize::from(*v / 8), *v),
                        options: UpdateOptions::default(),
                    },
                    4 => WriteModel::ReplaceOne {
                        filter: json!({"_id": id}),
                        replacement: doc(*id, *v),
                        upsert: v % 2 == 0,
                    },
                    5 => WriteModel::DeleteOne {
                        filter: json!({"_id": id}),
                    },
                    _ => WriteModel::DeleteMany {
                        filter: filter(usize::from(*v), *v),
                    },
                })
                .collect();
            vec![outcome(t.bulk_write(models, *ordered))]
        }
        Op::Aggregate(f, s, p) => {
            let k = (*f / 8) as u8;
            let pipeline = match p {
                0 => json!([
                    {"$match": filter(*f, k)},
                    {"$group": {"_id": "$g", "n": {"$sum": 1}, "s": {"$sum": "$a"},
                                "top": {"$max": "$a"}, "low": {"$min": "$_id"}}},
                    {"$sort": {"_id": 1}},
                ]),
                1 => json!([
                    {"$match": filter(*f, k)},
                    {"$sort": sort(*s)},
                    {"$skip": 1},
                    {"$limit": 4},
                    {"$project": {"a": 1, "first": {"$arrayElemAt": ["$tags", 0]}}},
                ]),
                _ => json!([
                    {"$unwind": "$tags"},
                    {"$sortByCount": "$tags"},
                    {"$sort": {"count": -1, "_id": 1}},
                ]),
            };
            vec![outcome(t.aggregate(pipeline))]
        }
        Op::Reopen => Vec::new(),
        Op::Read(f, s, skip, limit) => {
            let k = (*f / 8) as u8;
            let f = filter(*f, k);
            vec![
                outcome(t.read(f.clone(), sort(*s), *skip as u64, *limit as i64)),
                outcome(t.count(f.clone())),
                outcome(t.distinct("a", f.clone())),
                outcome(t.distinct("tags", f.clone())),
                outcome(t.read_projected(f, sort(*s), json!({"tags": 0, "n.x": 0}))),
            ]
        }
    }
}

/// Secondary indexes of the indexed layouts: single, compound, multikey, sparse and
/// partial; with `unique`, also a unique one on `ts` (a function of `_id`, so it never
/// refuses a write; sharded collections only take unique indexes on their shard key).
fn indexes(unique: bool) -> Vec<(Value, IndexOptions)> {
    let mut all = vec![
        (json!({"a": 1}), IndexOptions::default()),
        (json!({"tags": 1, "a": -1}), IndexOptions::default()),
        (json!({"g": 1}), IndexOptions::default()),
        (json!({"n.x": 1}), IndexOptions::default().sparse(true)),
        (
            json!({"tags": 1}),
            IndexOptions::default().partial_filter_expression(json!({"a": {"$gt": 2}})),
        ),
    ];
    if unique {
        all.push((json!({"ts": -1}), IndexOptions::default().unique(true)));
    }
    all
}

struct Layouts {
    _clients: Vec<Client>,
    /// `sync`, `indexed`, `group commit`, `buffered`, `encrypted fields`, the same buffered.
    dbs: Vec<Database>,
    targets: Vec<(&'static str, Target)>,
}

fn buffered() -> Durability {
    Durability::Buffered(
        BufferOptions::default()
            .batch_size(3)
            .flush_interval(Duration::from_millis(1)),
    )
}

/// Opens every layout in `dir`, creating the collections the first time.
fn layouts(dir: &std::path::Path) -> Layouts {
    let open = |name: &str, durability: Durability| {
        Database::open_with(
            dir.join(format!("{name}.sqlite")),
            Options::default().durability(durability),
        )
        .unwrap()
    };
    let sync = open("sync", Durability::Sync);
    let indexed = open("indexed", Durability::Sync);
    let group = open("group", Durability::GroupCommit);
    let buffered_db = open("buffered", buffered());
    for (keys, options) in indexes(true) {
        buffered_db
            .collection::<Value>("items")
            .create_index(keys, options)
            .unwrap();
    }
    let indexed_coll = indexed.collection::<Value>("items");
    for (keys, options) in indexes(true) {
        indexed_coll.create_index(keys, options).unwrap();
    }
    // Field-level encryption: `b` random (never queried), `n.x` deterministic (equality
    // queries on it run on ciphertext).
    let encryption = || {
        Encryption::new(&EncryptionKey::from_bytes([7; 32]))
            .and_then(|e| e.field("b"))
            .and_then(|e| e.deterministic_field("n.x"))
            .unwrap()
    };
    let encrypted = open("encrypted", Durability::Sync);
    encrypted
        .register_collection_plugin("items", encryption())
        .unwrap();
    // The same, buffered: the hooks run when a write is acknowledged.
    let encrypted_buffered = open("encrypted-buffered", buffered());
    encrypted_buffered
        .register_collection_plugin("items", encryption())
        .unwrap();
    let client = Client::open(dir.join("cluster")).unwrap();
    let buffered_client = Client::open_with(
        dir.join("buffered-cluster"),
        Options::default().durability(buffered()),
    )
    .unwrap();
    let sharded = |client: &Client, name: &str, options: ShardOptions| {
        client
            .sharded("app", name)
            .or_else(|_| client.create_sharded_collection("app", name, options))
            .unwrap()
    };
    let by_id = sharded(&client, "by_id", ShardOptions::new(3));
    let by_g = sharded(
        &client,
        "by_g",
        ShardOptions::new(2).key(ShardKey::Field("g".into())),
    );
    for (keys, options) in indexes(false) {
        by_g.create_index(keys, options).unwrap();
    }
    let buffered_by_id = sharded(&buffered_client, "by_id", ShardOptions::new(2));
    let parts = client
        .partitioned("app", "parts")
        .or_else(|_| {
            client.create_partitioned_collection(
                "app",
                "parts",
                PartitionBy::Prefix {
                    field: "g".into(),
                    len: 2,
                },
            )
        })
        .unwrap();
    let by_day = client
        .partitioned("app", "by_day")
        .or_else(|_| {
            client.create_partitioned_collection(
                "app",
                "by_day",
                PartitionBy::Time {
                    field: "ts".into(),
                    bucket: TimeBucket::Day,
                },
            )
        })
        .unwrap();
    let targets = vec![
        ("sync", Target::Plain(sync.collection("items"))),
        ("indexed", Target::Plain(indexed_coll)),
        ("group commit", Target::Plain(group.collection("items"))),
        (
            "buffered, indexed",
            Target::Plain(buffered_db.collection("items")),
        ),
        ("sharded by _id", Target::Sharded(by_id)),
        ("sharded by g, indexed", Target::Sharded(by_g)),
        ("partitioned by g", Target::Sharded((*parts).clone())),
        ("partitioned by day", Target::Sharded((*by_day).clone())),
        ("buffered, sharded by _id", Target::Sharded(buffered_by_id)),
        (
            "encrypted fields",
            Target::Plain(encrypted.collection("items")),
        ),
        (
            "buffered, encrypted fields",
            Target::Plain(encrypted_buffered.collection("items")),
        ),
    ];
    Layouts {
        _clients: vec![client, buffered_client],
        dbs: vec![
            sync,
            indexed,
            group,
            buffered_db,
            encrypted,
            encrypted_buffered,
        ],
        targets,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn every_layout_and_write_mode_agrees(ops in proptest::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let mut l = layouts(dir.path());
        // Replicas of the sync, group-commit and buffered databases, fed their change
        // sets in small chunks before every reopen and at the end.
        let mut replicas: Vec<(usize, Database, i64)> = [0, 2, 3]
            .into_iter()
            .map(|i| (i, Database::memory().unwrap(), 0))
            .collect();
        let mut replicate = |l: &Layouts| -> Result<(), TestCaseError> {
            let want = outcome(l.targets[0].1.read(json!({}), json!({"_id": 1}), 0, 0));
            for (i, replica, since) in &mut replicas {
                let primary = &l.dbs[*i];
                primary.flush().unwrap();
                loop {
                    let set = primary.export_changes_limited(*since, 5).unwrap();
                    if set.until == *since {
                        break;
                    }
                    replica.apply_changes(&set).unwrap();
                    *since = set.until;
                }
                let got = outcome(
                    Target::Plain(replica.collection("items")).read(json!({}), json!({"_id": 1}), 0, 0),
                );
                prop_assert_eq!(got, want.clone(), "replica of {}", l.targets[*i].0);
            }
            Ok(())
        };
        for (step, op) in ops.iter().enumerate() {
            if matches!(op, Op::Reopen) {
                // Everything is closed (buffered writes applied or left in the log) and
                // opened again from the files.
                replicate(&l)?;
                drop(l);
                l = layouts(dir.path());
                continue;
            }
            let (reference_name, reference) = &l.targets[0];
            let want = run(reference, op);
            for (name, target) in &l.targets[1..] {
                let got = run(target, op);
                prop_assert_eq!(
                    &got, &want,
                    "step {} {:?}: {} differs from {}", step, op, name, reference_name
                );
            }
        }
        let all = |t: &Target| outcome(t.read(json!({}), json!({"_id": 1}), 0, 0));
        let want = all(&l.targets[0].1);
        for (name, target) in &l.targets[1..] {
            prop_assert_eq!(all(target), want.clone(), "final contents of {}", name);
        }
        replicate(&l)?;
        // The change streams of the single-file collections, replayed from the start of
        // their logs: every document went through the same changes in the same order.
        let history = |db: &Database| -> BTreeMap<String, Vec<String>> {
            db.flush().unwrap();
            let mut stream = db.collection::<Value>("items").watch_from(0).unwrap();
            let mut by_id: BTreeMap<String, Vec<String>> = BTreeMap::new();
            while let Some(event) = stream.try_next().unwrap() {
                by_id
                    .entry(event.id.to_string())
                    .or_default()
                    .push(format!("{:?}", event.op));
            }
            by_id
        };
        let want = history(&l.dbs[0]);
        let stored = l.targets[0].1.count(json!({})).unwrap();
        prop_assert!(stored == 0 || !want.is_empty(), "documents without a history");
        for (i, db) in l.dbs.iter().enumerate().skip(1) {
            prop_assert_eq!(&history(db), &want, "change history of {}", ["sync", "indexed", "group commit", "buffered", "encrypted fields", "buffered, encrypted fields"][i]);
        }
    }
}
