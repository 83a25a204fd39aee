//! Partitioned collections (seed 002): routing by time bucket and key prefix, pruning,
//! dropping old partitions as files.

use pocketdb::{
    Client, Error, IndexOptions, Options, PartitionBy, PartitionedCollection, TimeBucket,
};
use serde_json::{json, Value};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
/// 2025-01-01T00:00:00Z.
const JAN_1: i64 = 1_735_689_600_000;

/// Event `i`: one every 2 hours from JAN_1, over 10 days.
fn event(i: i64) -> Value {
    let kind = ["view", "click", "buy"][(i % 3) as usize];
    json!({"_id": i, "ts": JAN_1 + i * 2 * HOUR, "kind": kind, "n": i})
}

/// `app.events`, partitioned by day of `ts`.
fn create_events(client: &Client) -> PartitionedCollection {
    client
        .create_partitioned_collection(
            "app",
            "events",
            PartitionBy::Time {
                field: "ts".into(),
                bucket: TimeBucket::Day,
            },
        )
        .unwrap()
}

fn setup(dir: &std::path::Path) -> (Client, PartitionedCollection) {
    let client = Client::open(dir).unwrap();
    let events = create_events(&client);
    events.insert_many((0..120).map(event)).unwrap();
    (client, events)
}

#[test]
fn time_partitions_are_files_per_day() {
    let dir = tempfile::tempdir().unwrap();
    let (_client, events) = setup(dir.path());
    let parts = events.partitions().unwrap();
    assert_eq!(parts.len(), 10);
    assert_eq!(parts[0], "2025-01-01");
    assert_eq!(parts[9], "2025-01-10");
    assert!(dir
        .path()
        .join("app.parts/events/part-2025-01-03.sqlite")
        .exists());
    assert_eq!(events.count_documents(json!({})).unwrap(), 120);
    assert_eq!(events.member_of(event(13)).unwrap(), "2025-01-02");
    // Dates as RFC 3339 strings and {"$date": …} route by the same instant.
    events
        .insert_one(json!({"_id": "s", "ts": "2025-01-04T23:30:00-02:00"}))
        .unwrap();
    events
        .insert_one(json!({"_id": "d", "ts": {"$date": "2025-01-20T01:00:00Z"}}))
        .unwrap();
    assert_eq!(
        events.find_one(json!({"_id": "s"})).unwrap().unwrap()["ts"],
        "2025-01-04T23:30:00-02:00"
    );
    let parts = events.partitions().unwrap();
    assert!(parts.contains(&"2025-01-05".to_string()), "{parts:?}");
    assert!(parts.contains(&"2025-01-20".to_string()), "{parts:?}");
    // Documents without a date in the partition field are refused.
    for bad in [
        json!({"x": 1}),
        json!({"ts": "yesterday"}),
        json!({"ts": [JAN_1]}),
    ] {
        assert!(
            matches!(
                events.insert_one(bad.clone()),
                Err(Error::InvalidDocument(_))
            ),
            "{bad}"
        );
    }
}

#[test]
fn queries_on_the_partition_field_open_only_what_they_need() {
    let dir = tempfile::tempdir().unwrap();
    {
        setup(dir.path());
    }
    // A fresh client: nothing is open yet.
    let client = Client::open(dir.path()).unwrap();
    let events = client.partitioned::<Value>("app", "events").unwrap();
    assert_eq!(events.stats().opened, 0);
    let range = json!({"ts": {"$gte": JAN_1 + 3 * DAY, "$lt": JAN_1 + 5 * DAY}, "kind": "view"});
    assert_eq!(
        events.partitions_for(range.clone()).unwrap(),
        vec!["2025-01-04", "2025-01-05"]
    );
    let found = events
        .find(range.clone())
        .unwrap()
        .sort(json!({"ts": -1}))
        .to_vec()
        .unwrap();
    let want: Vec<Value> = (0..120)
        .rev()
        .map(event)
        .filter(|e| {
            let ts = e["ts"].as_i64().unwrap();
            (JAN_1 + 3 * DAY..JAN_1 + 5 * DAY).contains(&ts) && e["kind"] == "view"
        })
        .collect();
    assert_eq!(found, want);
    let stats = events.stats();
    assert_eq!((stats.opened, stats.visited), (2, 2));
    assert_eq!(
        events
            .count_documents(json!({"ts": JAN_1 + 2 * HOUR}))
            .unwrap(),
        1
    );
    assert_eq!(events.stats().opened, 3, "an equality opens one partition");
    assert_eq!(
        events
            .count_documents(json!({"ts": {"$in": [JAN_1, JAN_1 + 9 * DAY]}}))
            .unwrap(),
        2
    );
    // A filter on other fields must read every partition.
    assert_eq!(events.count_documents(json!({"kind": "buy"})).unwrap(), 40);
    assert_eq!(events.stats().opened, 10);
    // Pruned results agree with a brute-force filter for assorted ranges.
    for (lo, hi) in [
        (0, DAY),
        (DAY / 2, 3 * DAY + 1),
        (9 * DAY, 20 * DAY),
        (-DAY, 0),
    ] {
        let filter = json!({"ts": {"$gt": JAN_1 + lo, "$lte": JAN_1 + hi}});
        let want = (0..120)
            .map(event)
            .filter(|e| {
                let ts = e["ts"].as_i64().unwrap();
                ts > JAN_1 + lo && ts <= JAN_1 + hi
            })
            .count() as u64;
        assert_eq!(events.count_documents(filter).unwrap(), want, "{lo} {hi}");
    }
}

#[test]
fn drop_partitions_before_deletes_files() {
    let dir = tempfile::tempdir().unwrap();
    let (_client, events) = setup(dir.path());
    let dropped = events
        .drop_partitions_before(JAN_1 + 3 * DAY + HOUR)
        .unwrap();
    assert_eq!(dropped, vec!["2025-01-01", "2025-01-02", "2025-01-03"]);
    assert!(!dir
        .path()
        .join("app.parts/events/part-2025-01-01.sqlite")
        .exists());
    assert_eq!(events.partitions().unwrap().len(), 7);
    assert_eq!(events.count_documents(json!({})).unwrap(), 84);
    assert_eq!(
        events.find_one(json!({"_id": 0})).unwrap(),
        None,
        "old data gone"
    );
    // Writing into a dropped bucket recreates it.
    events.insert_one(event(0)).unwrap();
    assert_eq!(events.partitions().unwrap()[0], "2025-01-01");
    assert!(events.drop_partition("2025-01-01").unwrap());
    assert!(!events.drop_partition("2025-01-01").unwrap());
    assert!(events.drop().unwrap());
    assert!(!dir.path().join("app.parts/events").exists());
}

#[test]
fn prefix_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::open(dir.path()).unwrap();
    let events = client
        .create_partitioned_collection(
            "app",
            "log",
            PartitionBy::Prefix {
                field: "key".into(),
                len: 14,
            },
        )
        .unwrap();
    for month in 1..=3 {
        for i in 0..10 {
            events
                .insert_one(json!({"key": format!("events:2025:{month:02}:{i:03}"), "v": i}))
                .unwrap();
        }
    }
    assert_eq!(
        events.partitions().unwrap(),
        vec!["events:2025:01", "events:2025:02", "events:2025:03"]
    );
    let feb = json!({"key": {"$gte": "events:2025:02", "$lt": "events:2025:03"}});
    assert_eq!(
        events.partitions_for(feb.clone()).unwrap(),
        vec!["events:2025:02", "events:2025:03"]
    );
    assert_eq!(events.count_documents(feb).unwrap(), 10);
    assert_eq!(
        events
            .partitions_for(json!({"key": "events:2025:03:007"}))
            .unwrap(),
        vec!["events:2025:03"]
    );
    assert!(matches!(
        events.drop_partitions_before(0),
        Err(Error::Shard { .. })
    ));
    assert!(events.drop_partition("events:2025:01").unwrap());
    assert_eq!(events.count_documents(json!({})).unwrap(), 20);
    assert!(events.insert_one(json!({"key": 5})).is_err());
}

#[test]
fn indexes_reach_partitions_created_later() {
    let dir = tempfile::tempdir().unwrap();
    let (_client, events) = setup(dir.path());
    events
        .create_index(json!({"kind": 1}), IndexOptions::default())
        .unwrap();
    assert!(events
        .create_index(
            json!({"kind": 1}),
            IndexOptions::default().unique(true).name("u")
        )
        .is_err());
    events.insert_one(event(1000)).unwrap();
    let late = events.member_of(event(1000)).unwrap();
    for old in events.partitions().unwrap() {
        if old != late {
            events.drop_partition(&old).unwrap();
        }
    }
    let names: Vec<String> = events
        .list_indexes()
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, vec!["_id_", "kind_1"]);
    events.drop_index("kind_1").unwrap();
    events.insert_one(event(2000)).unwrap();
    let names: Vec<String> = events
        .list_indexes()
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, vec!["_id_"]);
}

#[test]
fn updates_stay_within_their_partition() {
    let dir = tempfile::tempdir().unwrap();
    let (_client, events) = setup(dir.path());
    // Within the same day: allowed.
    events
        .update_one(json!({"_id": 1}), json!({"$inc": {"ts": HOUR}}))
        .unwrap();
    assert_eq!(
        events.find_one(json!({"_id": 1})).unwrap().unwrap()["ts"],
        JAN_1 + 3 * HOUR
    );
    // To another day: refused, document unchanged.
    let err = events
        .update_one(json!({"_id": 1}), json!({"$inc": {"ts": DAY}}))
        .unwrap_err();
    assert!(matches!(err, Error::InvalidUpdate { .. }), "{err}");
    assert_eq!(
        events.find_one(json!({"_id": 1})).unwrap().unwrap()["ts"],
        JAN_1 + 3 * HOUR
    );
    let r = events
        .update_many(
            json!({"ts": {"$lt": JAN_1 + DAY}}),
            json!({"$set": {"early": true}}),
        )
        .unwrap();
    assert_eq!(r.matched_count, 12);
    assert_eq!(
        events
            .delete_many(json!({"early": true}))
            .unwrap()
            .deleted_count,
        12
    );
    // An upsert creates the partition its document belongs to.
    let r = events
        .update_one_with(
            json!({"_id": "late"}),
            json!({"$set": {"ts": JAN_1 + 40 * DAY}}),
            &pocketdb::UpdateOptions::upsert(),
        )
        .unwrap();
    assert_eq!(r.upserted_id, Some(json!("late")));
    assert!(events
        .partitions()
        .unwrap()
        .contains(&"2025-02-10".to_string()));
}

#[test]
fn idle_partitions_beyond_the_cap_are_closed_and_reopened_on_demand() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::open_with(dir.path(), Options::default().max_open_members(3)).unwrap();
    let events = create_events(&client);
    // Ten days, one insert each: ten files opened, three kept.
    for i in 0..120 {
        events.insert_one(event(i)).unwrap();
    }
    let stats = events.stats();
    assert_eq!((stats.opened, stats.open_members), (10, 3));
    // A query over every partition opens the closed ones again, and leaves three open.
    assert_eq!(events.count_documents(json!({"kind": "buy"})).unwrap(), 40);
    let stats = events.stats();
    assert_eq!(stats.open_members, 3);
    assert!(stats.opened >= 17, "{stats:?}");
    // A partition used through a live cursor stays one instance: the cursor's writes
    // and a fresh handle's reads meet.
    let mut cursor = events.find(json!({"ts": JAN_1})).unwrap();
    for i in 120..160 {
        events.insert_one(event(i)).unwrap();
    }
    assert_eq!(cursor.next().unwrap().unwrap()["_id"], json!(0));
    events
        .update_one(json!({"ts": JAN_1}), json!({"$set": {"seen": true}}))
        .unwrap();
    let again = client.partitioned::<Value>("app", "events").unwrap();
    assert_eq!(
        again.find_one(json!({"ts": JAN_1})).unwrap().unwrap()["seen"],
        json!(true)
    );
    assert_eq!(again.count_documents(json!({})).unwrap(), 160);
    assert!(again.stats().open_members <= 3);
}

#[test]
fn members_closed_and_reopened_under_concurrent_buffered_writes_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let options =
        Options::default()
            .max_open_members(1)
            .durability(pocketdb::Durability::Buffered(
                pocketdb::BufferOptions::default(),
            ));
    let client = Client::open_with(dir.path(), options).unwrap();
    let events = create_events(&client);
    // Three threads write to three days in turn: with one member kept, nearly every
    // write closes a member that another thread may be reopening.
    std::thread::scope(|s| {
        for t in 0..3i64 {
            let events = events.clone();
            s.spawn(move || {
                for i in 0..20i64 {
                    let day = (i + t) % 3;
                    events
                        .insert_one(json!({"_id": t * 1000 + i, "ts": JAN_1 + day * DAY + i}))
                        .unwrap();
                }
            });
        }
    });
    events.flush().unwrap();
    assert_eq!(events.count_documents(json!({})).unwrap(), 60);
    drop(events);
    drop(client);
    let client = Client::open(dir.path()).unwrap();
    let events = client.partitioned::<Value>("app", "events").unwrap();
    assert_eq!(events.count_documents(json!({})).unwrap(), 60);
    assert_eq!(events.partitions().unwrap().len(), 3);
}

#[test]
fn sorted_queries_over_many_partitions_keep_the_merge_order() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::open_with(dir.path(), Options::default().max_open_members(2)).unwrap();
    let events = create_events(&client);
    events.insert_many((0..120).map(event)).unwrap();
    // Ten partitions, more than the threads a query uses: members are read in turn, by
    // the top-k path with a limit up to 10,000 and through one sorter otherwise (limit 0
    // is no limit), in memory or spilled. Ties on `kind` go by partition (day), then by
    // insertion order within it, as a k-way merge of the members gives them.
    let all: Vec<Value> = (0..120).map(event).collect();
    let rank = |k: &Value| {
        ["buy", "click", "view"]
            .iter()
            .position(|x| k == x)
            .unwrap()
    };
    for (sort, skip, limit) in [
        (json!({"kind": 1}), 0usize, 7usize),
        (json!({"kind": -1}), 5, 30),
        (json!({"n": -1}), 3, 10),
        (json!({"kind": 1, "n": -1}), 40, 45),
        (json!({"n": 1}), 115, 50),
        (json!({"kind": 1}), 0, 0),
        (json!({"kind": -1, "n": 1}), 9, 0),
        (json!({"kind": -1}), 2, 20_000),
    ] {
        let query = || {
            events
                .find(json!({}))
                .unwrap()
                .sort(sort.clone())
                .skip(skip as u64)
                .limit(limit as i64)
                .projection(json!({"_id": 1}))
        };
        let found = query().to_vec().unwrap();
        let spilled = query().max_sort_memory(2_000).to_vec().unwrap();
        assert_eq!(found, spilled, "{sort} skip {skip} limit {limit} spilled");
        let limit = if limit == 0 { usize::MAX } else { limit };
        let mut want = all.clone();
        // Sort stable: documents start in partition-then-insertion order.
        want.sort_by(|a, b| {
            let mut o = std::cmp::Ordering::Equal;
            for (k, dir) in sort.as_object().unwrap() {
                let c = if k == "kind" {
                    rank(&a[k]).cmp(&rank(&b[k]))
                } else {
                    a[k].as_i64().cmp(&b[k].as_i64())
                };
                let c = if dir.as_i64() == Some(-1) {
                    c.reverse()
                } else {
                    c
                };
                o = o.then(c);
            }
            o
        });
        let want: Vec<Value> = want
            .into_iter()
            .skip(skip)
            .take(limit)
            .map(|d| json!({"_id": d["_id"]}))
            .collect();
        assert_eq!(found, want, "{sort} skip {skip} limit {limit}");
    }
    assert!(events.stats().open_members <= 2);
}

#[test]
fn partitions_dropped_while_read_count_as_empty_and_stay_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::open_with(dir.path(), Options::default().max_open_members(2)).unwrap();
    let events = create_events(&client);
    let days = 12i64;
    for d in 0..days {
        let docs = (0..300).map(|i| json!({"_id": d * 1000 + i, "ts": JAN_1 + d * DAY + i}));
        events.insert_many(docs).unwrap();
    }
    let total = (days * 300) as u64;
    // A cursor started before the drop: members it had not opened yet read as empty.
    let mut cursor = events.find(json!({})).unwrap();
    let first = cursor.next().unwrap().unwrap();
    assert_eq!(
        events
            .drop_partitions_before(JAN_1 + days * DAY)
            .unwrap()
            .len(),
        12
    );
    let mut seen = std::collections::HashSet::new();
    assert!(seen.insert(first["_id"].clone()));
    for doc in cursor {
        let doc = doc.unwrap();
        assert!(seen.insert(doc["_id"].clone()), "{doc} twice");
    }
    assert!(seen.len() as u64 <= total);
    assert_eq!(events.partitions().unwrap(), Vec::<String>::new());
    assert_eq!(events.count_documents(json!({})).unwrap(), 0);

    // Reads racing the drop of partition after partition never fail, see the total
    // shrink and never bring a dropped file back.
    for d in 0..days {
        let docs = (0..300).map(|i| json!({"_id": d * 1000 + i, "ts": JAN_1 + d * DAY + i}));
        events.insert_many(docs).unwrap();
    }
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut last = total;
            let mut rounds = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) || rounds == 0 {
                let n = events.count_documents(json!({})).unwrap();
                assert!(n <= last, "{n} after {last}");
                last = n;
                let found = events.find(json!({"ts": {"$gte": JAN_1}})).unwrap();
                assert!(found.map(Result::unwrap).count() as u64 <= total);
                let sorted = events.find(json!({})).unwrap().sort(json!({"ts": -1}));
                assert!(sorted.limit(5).map(Result::unwrap).count() <= 5);
                rounds += 1;
            }
            rounds
        });
        for d in 0..days {
            events
                .drop_partitions_before(JAN_1 + (d + 1) * DAY)
                .unwrap();
            std::thread::yield_now();
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(reader.join().unwrap() > 0);
    });
    assert_eq!(events.partitions().unwrap(), Vec::<String>::new());
    assert_eq!(events.count_documents(json!({})).unwrap(), 0);
    let left: Vec<_> = std::fs::read_dir(dir.path().join("app.parts/events"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Guards that an upsert whose filter pins one existing partition (equality on the
/// partition field) updates the existing match instead of inserting a duplicate.
#[test]
fn partition_pinned_upsert_updates_the_existing_match() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::open(dir.path()).unwrap();
    let events = create_events(&client);
    events
        .insert_one(json!({"_id": 1, "ts": JAN_1 + HOUR, "kind": "view"}))
        .unwrap();
    let r = events
        .update_one_with(
            json!({"ts": JAN_1 + HOUR, "kind": "view"}),
            json!({"$inc": {"n": 1}}),
            &pocketdb::UpdateOptions::upsert(),
        )
        .unwrap();
    assert_eq!((r.matched_count, r.upserted_id.clone()), (1, None), "{r:?}");
    let r = events
        .replace_one_with(
            json!({"ts": JAN_1 + HOUR, "kind": "view"}),
            json!({"ts": JAN_1 + HOUR, "kind": "view", "n": 5}),
            true,
        )
        .unwrap();
    assert_eq!((r.matched_count, r.upserted_id.clone()), (1, None), "{r:?}");
    assert_eq!(
        events.find(json!({})).unwrap().to_vec().unwrap(),
        vec![json!({"_id": 1, "ts": JAN_1 + HOUR, "kind": "view", "n": 5})]
    );
    // No match in the pinned partition: one insert there.
    let r = events
        .update_one_with(
            json!({"ts": JAN_1 + HOUR, "kind": "click"}),
            json!({"$inc": {"n": 1}}),
            &pocketdb::UpdateOptions::upsert(),
        )
        .unwrap();
    assert!(r.upserted_id.is_some(), "{r:?}");
    assert_eq!(events.count_documents(json!({})).unwrap(), 2);
    assert_eq!(events.partitions().unwrap(), vec!["2025-01-01"]);
}

/// Guards that an index created before the first partition exists is listed, and that
/// dropping it succeeds (and keeps it off partitions created later).
#[test]
fn index_created_before_any_partition_is_listed_and_droppable() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::open(dir.path()).unwrap();
    let events = create_events(&client);
    let name = events
        .create_index(json!({"kind": 1}), IndexOptions::default())
        .unwrap();
    let names = |events: &PartitionedCollection| -> Vec<String> {
        events
            .list_indexes()
            .unwrap()
            .into_iter()
            .map(|i| i.name)
            .collect()
    };
    assert_eq!(names(&events), vec!["_id_".to_string(), name.clone()]);
    events.drop_index(&name).unwrap();
    assert_eq!(names(&events), vec!["_id_".to_string()]);
    assert!(matches!(
        events.drop_index(&name),
        Err(Error::IndexNotFound { .. })
    ));
    events
        .insert_one(json!({"ts": JAN_1, "kind": "a"}))
        .unwrap();
    assert_eq!(names(&events), vec!["_id_".to_string()]);
    // Created again once a partition exists: listed from it.
    let name = events
        .create_index(json!({"kind": 1}), IndexOptions::default())
        .unwrap();
    events
        .insert_one(json!({"ts": JAN_1 + 3 * DAY, "kind": "b"}))
        .unwrap();
    assert_eq!(names(&events), vec!["_id_".to_string(), name]);
}

/// Guards that expiry is refused on a partitioned collection (it would only reach the
/// main file's empty placeholder table).
#[test]
fn expire_after_is_refused_on_a_partitioned_collection() {
    let dir = tempfile::tempdir().unwrap();
    let (client, events) = setup(dir.path());
    let db = client.database("app").unwrap();
    let set = db.set_expire_after("events", Some(std::time::Duration::from_secs(1)));
    assert!(matches!(set, Err(Error::Shard { .. })), "{set:?}");
    assert_eq!(db.expire_after("events").unwrap(), None);
    assert_eq!(events.count_documents(json!({})).unwrap(), 120);
}

/// Guards that a partitioned handle opened before another handle dropped the
/// collection fails with `CollectionNotFound` instead of writing a partition of a
/// collection that is gone.
#[test]
fn a_stale_partitioned_handle_after_drop_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (client, events) = setup(dir.path());
    let other = client.partitioned::<Value>("app", "events").unwrap();
    assert!(other.drop().unwrap());
    let w = events.insert_one(event(500));
    assert!(matches!(w, Err(Error::CollectionNotFound(_))), "{w:?}");
    assert!(!dir.path().join("app.parts/events").exists());
}
