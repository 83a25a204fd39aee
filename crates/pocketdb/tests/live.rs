//! Live queries: initial result, incremental maintenance, diffs, coalescing,
//! unsubscribe, and a property test against fresh runs of the same query.

use pocketdb::{Database, LiveHandle, LiveQuery, LiveUpdate, SortOrder};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

fn next(h: &mut LiveHandle<Value>) -> LiveUpdate<Value> {
    match h.next_timeout(WAIT) {
        Ok(Some(u)) => u,
        other => panic!("expected an update, got {other:?}"),
    }
}

fn ids(docs: &[Value]) -> Vec<Value> {
    docs.iter().map(|d| d["_id"].clone()).collect()
}

#[test]
fn initial_result_then_diffs() -> pocketdb::Result<()> {
    let db = Database::memory()?;
    let c = db.collection::<Value>("c");
    c.insert_many((0..5).map(|i| json!({"_id": i, "score": i * 10, "on": true})))?;
    let mut h = c.live(
        LiveQuery::new(json!({"on": true}))
            .sort(json!({"score": -1}))
            .limit(3),
    )?;
    let first = next(&mut h);
    assert_eq!(ids(&first.results), [json!(4), json!(3), json!(2)]);
    assert_eq!(first.diff.added.len(), 3);

    // enters at the top, pushes 2 out
    c.insert_one(json!({"_id": 9, "score": 100, "on": true}))?;
    let u = next(&mut h);
    assert_eq!(ids(&u.results), [json!(9), json!(4), json!(3)]);
    assert_eq!(u.diff.added[0].id, json!(9));
    assert_eq!(u.diff.added[0].index, 0);
    assert_eq!(u.diff.removed[0].id, json!(2));
    assert!(u.diff.moved.is_empty(), "shifts are not moves");

    // leaves: 2 comes back from the buffer without a re-run
    c.update_one(json!({"_id": 9}), json!({"$set": {"on": false}}))?;
    let u = next(&mut h);
    assert_eq!(ids(&u.results), [json!(4), json!(3), json!(2)]);

    // moves within the window, content changes
    c.update_one(json!({"_id": 2}), json!({"$set": {"score": 45}}))?;
    let u = next(&mut h);
    assert_eq!(ids(&u.results), [json!(2), json!(4), json!(3)]);
    assert_eq!(u.diff.moved.len(), 1);
    assert_eq!((u.diff.moved[0].from, u.diff.moved[0].to), (2, 0));
    assert_eq!(u.diff.changed[0].id, json!(2));
    assert_eq!(h.stats().runs, 1, "no re-run was needed");

    // writes that cannot affect it cost nothing and notify nothing
    db.collection::<Value>("other")
        .insert_one(json!({"on": true, "score": 1000}))?;
    c.insert_one(json!({"_id": 20, "on": false, "score": 1000}))?;
    c.insert_one(json!({"_id": 21, "on": true, "score": -5}))?;
    assert!(h.sync(WAIT)?);
    assert!(h.try_next()?.is_none());
    assert_eq!(h.stats().runs, 1);
    Ok(())
}

#[test]
fn reruns_only_when_the_buffer_runs_dry() -> pocketdb::Result<()> {
    let db = Database::memory()?;
    let c = db.collection::<Value>("c");
    c.insert_many((0..20).map(|i| json!({"_id": i, "n": i})))?;
    let h = c.live(
        LiveQuery::new(json!({}))
            .sort(json!({"n": 1}))
            .limit(2)
            .buffer(1),
    )?;
    c.delete_one(json!({"_id": 0}))?; // window [1,2], buffer empty now
    assert!(h.sync(WAIT)?);
    assert_eq!(h.stats().runs, 1);
    c.delete_one(json!({"_id": 1}))?; // window underflows: re-run
    assert!(h.sync(WAIT)?);
    assert_eq!(h.stats().runs, 2);
    assert_eq!(ids(&h.current()?), [json!(2), json!(3)]);
    Ok(())
}

#[test]
fn coalesces_bursts_and_unsubscribes_on_drop() -> pocketdb::Result<()> {
    let db = Database::memory()?;
    let c = db.collection::<Value>("c");
    let mut h = c.live(LiveQuery::new(json!({})).coalesce(Duration::from_millis(30)))?;
    assert!(next(&mut h).results.is_empty());
    c.insert_many([json!({"_id": 1})])?;
    for i in 2..10 {
        c.insert_one(json!({"_id": i}))?;
    }
    assert!(h.sync(WAIT)?);
    let u = next(&mut h);
    assert_eq!(u.results.len(), 9, "one notification for the burst");
    assert_eq!(u.diff.added.len(), 9);
    assert_eq!(db.change_subscribers(), 1);
    drop(h);
    assert_eq!(db.change_subscribers(), 0);
    Ok(())
}

#[test]
fn callback_form_builder_form_and_typed() -> pocketdb::Result<()> {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Task {
        _id: i64,
        title: String,
    }
    let db = Database::memory()?;
    let c = db.collection::<Task>("tasks");
    let h = c
        .query()
        .where_("_id")
        .gte(0)
        .sort("title", SortOrder::Asc)
        .live()?;
    let (tx, rx) = std::sync::mpsc::channel();
    let sub = h.on_update(move |u| {
        let _ = tx.send(u.map(|u| u.results.len()));
    })?;
    assert_eq!(rx.recv_timeout(WAIT).ok().and_then(|r| r.ok()), Some(0));
    c.insert_one(Task {
        _id: 1,
        title: "a".into(),
    })?;
    assert_eq!(rx.recv_timeout(WAIT).ok().and_then(|r| r.ok()), Some(1));
    drop(sub);
    assert!(rx.recv_timeout(WAIT).is_err(), "callback thread ended");
    assert_eq!(db.change_subscribers(), 0);
    assert!(matches!(
        db.collection::<Value>("c")
            .live(LiveQuery::new(json!({"$nope": 1}))),
        Err(pocketdb::Error::InvalidFilter { .. })
    ));
    Ok(())
}

#[test]
fn drop_and_writes_from_other_connections() -> pocketdb::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("l.sqlite");
    let db = Database::open(&path)?;
    let other = Database::open(&path)?;
    let c = db.collection::<Value>("c");
    c.insert_one(json!({"_id": 1}))?;
    let mut h = c.live(LiveQuery::new(json!({})))?;
    assert_eq!(next(&mut h).results.len(), 1);
    other
        .collection::<Value>("c")
        .insert_one(json!({"_id": 2}))?;
    assert_eq!(next(&mut h).results.len(), 2);
    c.drop()?;
    assert!(next(&mut h).results.is_empty());
    Ok(())
}

// ----- property test -------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    Insert(i64, i64, i64, Vec<i64>),
    Set(i64, i64, i64),
    Unset(i64),
    Replace(i64, i64),
    Delete(i64),
    DeleteWhereA(i64),
    IncWhereB(i64),
    Upsert(i64, i64),
    Drop,
}

fn op() -> impl Strategy<Value = Op> {
    let k = 0i64..12;
    let v = 0i64..5;
    prop_oneof![
        4 => (k.clone(), v.clone(), v.clone(), prop::collection::vec(0i64..4, 0..3))
            .prop_map(|(k, a, b, t)| Op::Insert(k, a, b, t)),
        4 => (k.clone(), v.clone(), v.clone()).prop_map(|(k, a, b)| Op::Set(k, a, b)),
        1 => k.clone().prop_map(Op::Unset),
        1 => (k.clone(), v.clone()).prop_map(|(k, a)| Op::Replace(k, a)),
        2 => k.clone().prop_map(Op::Delete),
        1 => v.clone().prop_map(Op::DeleteWhereA),
        1 => v.clone().prop_map(Op::IncWhereB),
        1 => (k, v).prop_map(|(k, a)| Op::Upsert(k, a)),
        1 => Just(Op::Drop),
    ]
}

struct Spec {
    filter: Value,
    sort: Option<Value>,
    skip: u64,
    limit: u64,
    projection: Option<Value>,
    buffer: Option<usize>,
}

fn specs() -> Vec<Spec> {
    let s = |filter: Value, sort: Option<Value>, skip, limit, projection, buffer| Spec {
        filter,
        sort,
        skip,
        limit,
        projection,
        buffer,
    };
    vec![
        s(
            json!({"a": {"$gte": 2}}),
            Some(json!({"b": 1})),
            0,
            3,
            None,
            None,
        ),
        s(
            json!({}),
            Some(json!({"a": -1, "b": 1})),
            2,
            4,
            None,
            Some(1),
        ),
        s(json!({"b": {"$in": [1, 3]}}), None, 0, 0, None, None),
        s(
            json!({"a": {"$lt": 3}}),
            Some(json!({"b": -1})),
            0,
            2,
            Some(json!({"a": 1})),
            Some(0),
        ),
        s(json!({"tags": 2}), Some(json!({"a": 1})), 1, 0, None, None),
        s(json!({}), None, 0, 3, None, Some(1)),
        s(
            json!({"$or": [{"a": 1}, {"b": {"$exists": false}}]}),
            Some(json!({"tags": 1})),
            1,
            2,
            Some(json!({"tags": 0})),
            None,
        ),
    ]
}

fn apply(c: &pocketdb::Collection<Value>, op: &Op) {
    // errors (duplicate keys, …) are part of the game: the database stays consistent
    let _ = match op {
        Op::Insert(k, a, b, t) => c
            .insert_one(json!({"_id": k, "a": a, "b": b, "tags": t}))
            .map(|_| ()),
        Op::Set(k, a, b) => c
            .update_one(json!({"_id": k}), json!({"$set": {"a": a, "b": b}}))
            .map(|_| ()),
        Op::Unset(k) => c
            .update_one(json!({"_id": k}), json!({"$unset": {"b": ""}}))
            .map(|_| ()),
        Op::Replace(k, a) => c
            .replace_one(json!({"_id": k}), json!({"a": a}))
            .map(|_| ()),
        Op::Delete(k) => c.delete_one(json!({"_id": k})).map(|_| ()),
        Op::DeleteWhereA(a) => c.delete_many(json!({"a": a})).map(|_| ()),
        Op::IncWhereB(b) => c
            .update_many(json!({"b": b}), json!({"$inc": {"a": 1}}))
            .map(|_| ()),
        Op::Upsert(k, a) => c
            .update_one_with(
                json!({"_id": k}),
                json!({"$set": {"a": a}}),
                &pocketdb::UpdateOptions::upsert(),
            )
            .map(|_| ()),
        Op::Drop => c.drop().map(|_| ()),
    };
}

fn fresh(c: &pocketdb::Collection<Value>, s: &Spec) -> Vec<Value> {
    let mut cur = c
        .find(s.filter.clone())
        .expect("filter")
        .skip(s.skip)
        .limit(s.limit as i64);
    if let Some(sort) = &s.sort {
        cur = cur.sort(sort.clone());
    }
    if let Some(p) = &s.projection {
        cur = cur.projection(p.clone());
    }
    cur.to_vec().expect("fresh run")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn live_results_equal_fresh_runs(ops in prop::collection::vec(op(), 1..40)) {
        let db = Database::memory().expect("db");
        let c = db.collection::<Value>("c");
        let specs = specs();
        let mut handles: Vec<LiveHandle<Value>> = specs
            .iter()
            .map(|s| {
                let mut q = LiveQuery::new(s.filter.clone()).skip(s.skip).limit(s.limit);
                if let Some(sort) = &s.sort { q = q.sort(sort.clone()); }
                if let Some(p) = &s.projection { q = q.projection(p.clone()); }
                if let Some(b) = s.buffer { q = q.buffer(b); }
                c.live(q).expect("live")
            })
            .collect();
        let mut seen: Vec<Vec<Value>> = vec![Vec::new(); specs.len()];
        for op in &ops {
            apply(&c, op);
            for (i, (h, s)) in handles.iter_mut().zip(&specs).enumerate() {
                prop_assert!(h.sync(WAIT).expect("sync"));
                let want = fresh(&c, s);
                prop_assert_eq!(h.current().expect("current"), want.clone(), "query {} after {:?}", i, op);
                // notifications compose: previous ids - removed + added = new ids
                while let Some(u) = h.try_next().expect("next") {
                    let mut keys: HashSet<String> =
                        ids(&seen[i]).iter().map(|v| v.to_string()).collect();
                    for r in &u.diff.removed { keys.remove(&r.id.to_string()); }
                    for a in &u.diff.added { keys.insert(a.id.to_string()); }
                    let now: HashSet<String> = ids(&u.results).iter().map(|v| v.to_string()).collect();
                    prop_assert_eq!(&keys, &now);
                    for ch in &u.diff.changed {
                        prop_assert_eq!(&u.results[ch.index], &ch.document);
                    }
                    seen[i] = u.results;
                }
                prop_assert_eq!(&seen[i], &want);
            }
        }
    }
}

/// In a buffered database a live query follows writes as they are applied: one opened
/// while writes are pending starts from them (they are applied first), and `sync`
/// applies what was acknowledged before it, so the result agrees with `find`.
#[test]
fn live_queries_in_a_buffered_database_start_from_and_sync_to_acknowledged_writes() {
    use pocketdb::{BufferOptions, Durability, Options};
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_with(
        dir.path().join("buf.sqlite"),
        Options::default().durability(Durability::Buffered(
            BufferOptions::default().flush_interval(Duration::from_secs(3600)),
        )),
    )
    .unwrap();
    let c = db.collection::<Value>("tasks");
    c.insert_many((0..3).map(|i| json!({"_id": i, "done": false})))
        .unwrap();
    db.flush().unwrap();
    c.insert_one(json!({"_id": 10, "done": false})).unwrap();
    c.update_one(json!({"_id": 0}), json!({"$set": {"done": true}}))
        .unwrap();
    let live = c
        .live(LiveQuery::new(json!({"done": false})).sort(json!({"_id": 1})))
        .unwrap();
    assert_eq!(
        ids(&live.current().unwrap()),
        [json!(1), json!(2), json!(10)]
    );
    c.insert_one(json!({"_id": 11, "done": false})).unwrap();
    c.delete_one(json!({"_id": 1})).unwrap();
    assert!(live.sync(Duration::from_secs(5)).unwrap());
    let found = c
        .find(json!({"done": false}))
        .unwrap()
        .sort(json!({"_id": 1}))
        .to_vec()
        .unwrap();
    assert_eq!(ids(&live.current().unwrap()), ids(&found));
    assert_eq!(ids(&found), [json!(2), json!(10), json!(11)]);
}
