//! Criterion micro-benchmarks of pocketdb's hot paths: `cargo bench -p pocketdb-bench`
//! (or `cargo bench -p pocketdb-bench -- find_one` for one of them).
//!
//! The throughput workloads beside raw rusqlite are `pocketdb bench`; these measure one
//! operation each, with small fixtures so the whole run takes a few minutes.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use pocketdb::query::sql::compile_filter;
use pocketdb::query::{parse_filter, Filter};
use pocketdb::update::{ApplyContext, Update};
use pocketdb::{Collection, Database, IndexOptions};
use pocketdb_bench::{doc_id, document};
use serde_json::{json, Value};
use std::hint::black_box;
use std::time::Duration;

/// Documents loaded for the read benchmarks.
const LOADED: u64 = 10_000;

/// A file database in a temporary directory (WAL, the default pragmas).
fn open() -> (tempfile::TempDir, Database) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let db = Database::open(dir.path().join("bench.sqlite")).expect("open database");
    (dir, db)
}

fn load(coll: &Collection<Value>, n: u64) {
    for start in (0..n).step_by(1_000) {
        coll.insert_many((start..(start + 1_000).min(n)).map(document))
            .expect("load documents");
    }
}

fn writes(c: &mut Criterion) {
    let (_dir, db) = open();
    let coll = db.collection::<Value>("bench");
    let mut next = 0u64;
    c.bench_function("insert_one", |b| {
        b.iter(|| {
            next += 1;
            coll.insert_one(document(next)).expect("insert_one");
        })
    });

    let coll = db.collection::<Value>("batches");
    let mut next = 0u64;
    let mut group = c.benchmark_group("insert_many");
    group.throughput(Throughput::Elements(1_000));
    group.sample_size(20);
    group.bench_function("1000", |b| {
        b.iter_batched(
            || {
                next += 1_000;
                (next..next + 1_000).map(document).collect::<Vec<_>>()
            },
            |docs| coll.insert_many(docs).expect("insert_many"),
            BatchSize::LargeInput,
        )
    });
    group.finish();

    let coll = db.collection::<Value>("updates");
    load(&coll, LOADED);
    let mut k = 0u64;
    c.bench_function("update_one_by_id", |b| {
        b.iter(|| {
            k = (k + 7_919) % LOADED;
            coll.update_one(json!({"_id": doc_id(k)}), json!({"$inc": {"age": 1}}))
                .expect("update_one");
        })
    });
}

fn reads(c: &mut Criterion) {
    let (_dir, db) = open();
    let coll = db.collection::<Value>("bench");
    load(&coll, LOADED);
    coll.create_index(json!({"email": 1}), IndexOptions::default())
        .expect("create index");
    let mut k = 0u64;
    c.bench_function("find_one_by_id", |b| {
        b.iter(|| {
            k = (k + 7_919) % LOADED;
            let doc = coll.find_one(json!({"_id": doc_id(k)})).expect("find_one");
            black_box(doc.expect("document present"));
        })
    });
    c.bench_function("find_indexed_eq", |b| {
        b.iter(|| {
            k = (k + 7_919) % LOADED;
            let found = coll
                .find(json!({"email": format!("user{k}@example.com")}))
                .and_then(|c| c.to_vec())
                .expect("find");
            assert_eq!(found.len(), 1);
        })
    });
}

/// A filter of the usual shape: a range, an equality, an array membership and an `$or`.
fn sample_filter() -> Value {
    json!({
        "score": {"$gt": 50},
        "city": "Paris",
        "tags": {"$in": ["t1", "t3"]},
        "$or": [{"active": true}, {"age": {"$lt": 30}}],
        "address.zip": {"$exists": true},
    })
}

fn in_memory(c: &mut Criterion) {
    let filter = sample_filter();
    c.bench_function("filter_parse_and_compile", |b| {
        b.iter(|| {
            let parsed = parse_filter(black_box(&filter)).expect("parse");
            black_box(compile_filter(&parsed));
        })
    });

    let parsed: Filter = parse_filter(&filter).expect("parse");
    let docs: Vec<Value> = (0..100).map(document).collect();
    let mut group = c.benchmark_group("matcher");
    group.throughput(Throughput::Elements(docs.len() as u64));
    group.bench_function("100_documents", |b| {
        b.iter(|| docs.iter().filter(|d| parsed.matches(d)).count())
    });
    // `$in` with 1,000 emails (ten of them present): looked up by hash, not compared
    // with every entry.
    let emails: Vec<String> = (0..1_000u64)
        .map(|i| format!("user{}@example.com", i * 10))
        .collect();
    let long_in = parse_filter(&json!({"email": {"$in": emails}})).expect("parse");
    group.bench_function("100_documents_in_1000", |b| {
        b.iter(|| docs.iter().filter(|d| long_in.matches(d)).count())
    });
    group.finish();

    let update = Update::parse(
        &json!({
            "$set": {"city": "Oslo", "address.street": "1 Fjord Rd"},
            "$inc": {"age": 1, "score": 0.5},
            "$push": {"tags": "t9"},
            "$unset": {"active": ""},
        }),
        None,
    )
    .expect("parse update");
    let all = Filter::all();
    let ctx = ApplyContext {
        filter: &all,
        is_insert: false,
        now_millis: 0,
    };
    let doc = document(42);
    c.bench_function("update_apply", |b| {
        b.iter_batched(
            || doc.clone(),
            |mut d| update.apply(&mut d, &ctx).expect("apply"),
            BatchSize::SmallInput,
        )
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = writes, reads, in_memory
}
criterion_main!(benches);
