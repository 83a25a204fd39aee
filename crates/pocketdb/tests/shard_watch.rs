//! Change streams of sharded and partitioned collections.

use pocketdb::shard::{ShardChangeEvent, ShardResumeToken, ShardedChangeStream};
use pocketdb::{ChangeOp, Client, PartitionBy, ShardOptions, TimeBucket};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);

/// Reads exactly `n` events, then checks that no more arrive for a short while.
fn take(stream: &mut ShardedChangeStream, n: usize) -> Vec<ShardChangeEvent> {
    let mut out = Vec::new();
    while out.len() < n {
        match stream.next_timeout(WAIT).unwrap() {
            Some(ev) => out.push(ev),
            None => panic!("timed out after {} of {n} events", out.len()),
        }
    }
    assert!(
        stream
            .next_timeout(Duration::from_millis(300))
            .unwrap()
            .is_none(),
        "more events than expected"
    );
    out
}

fn key(ev: &ShardChangeEvent) -> (String, i64, &'static str) {
    (ev.member.clone(), ev.event.token, ev.event.op.as_str())
}

#[test]
fn every_write_on_three_shards_arrives_once_in_member_order() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::open(dir.path()).unwrap();
    let items = client
        .create_sharded_collection("app", "items", ShardOptions::new(3))
        .unwrap();
    items.insert_one(json!({"_id": -1})).unwrap(); // before the stream: not seen
    let mut stream = items.watch(json!({})).unwrap();
    assert_eq!(stream.members(), vec!["0", "1", "2"]);

    items
        .insert_many((0..30).map(|i| json!({"_id": i, "n": i})))
        .unwrap();
    items
        .update_many(json!({"n": {"$lt": 10}}), json!({"$set": {"small": true}}))
        .unwrap();
    items.delete_many(json!({"n": {"$gte": 25}})).unwrap();
    let events = take(&mut stream, 30 + 10 + 5);

    let ops = |op| events.iter().filter(|e| e.event.op == op).count();
    assert_eq!(
        (
            ops(ChangeOp::Insert),
            ops(ChangeOp::Update),
            ops(ChangeOp::Delete)
        ),
        (30, 10, 5)
    );
    // exactly once
    let distinct: BTreeSet<_> = events.iter().map(key).collect();
    assert_eq!(distinct.len(), events.len());
    // each event is tagged with the member its document lives in, every shard is used,
    // and tokens increase per member
    let mut last: BTreeMap<String, i64> = BTreeMap::new();
    for ev in &events {
        assert_eq!(
            ev.member,
            items.member_of(json!({"_id": ev.event.id})).unwrap()
        );
        assert_eq!(ev.event.database, "app");
        let prev = last.insert(ev.member.clone(), ev.event.token);
        assert!(prev.is_none_or(|p| p < ev.event.token));
        assert_eq!(ev.resume_token.get(&ev.member), Some(ev.event.token));
        assert_eq!(ev.to_json()["member"], json!(ev.member));
    }
    assert_eq!(last.len(), 3);
    assert_eq!(stream.resume_token().positions(), &last);
    let inserted: BTreeSet<i64> = events
        .iter()
        .filter(|e| e.event.op == ChangeOp::Insert)
        .filter_map(|e| e.event.id.as_i64())
        .collect();
    assert_eq!(inserted, (0..30).collect());
}

#[test]
fn filter_applies_on_every_member() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::open(dir.path()).unwrap();
    let items = client
        .create_sharded_collection("app", "items", ShardOptions::new(3))
        .unwrap();
    let mut stream = items.watch(json!({"operationType": "delete"})).unwrap();
    items
        .insert_many((0..12).map(|i| json!({"_id": i})))
        .unwrap();
    items.delete_many(json!({"_id": {"$lt": 4}})).unwrap();
    let events = take(&mut stream, 4);
    assert!(events.iter().all(|e| e.event.op == ChangeOp::Delete));
    assert!(items.watch(json!({"$bogus": 1})).is_err());
}

#[test]
fn resume_from_composite_token_yields_exactly_the_new_events() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::open(dir.path()).unwrap();
    let items = client
        .create_sharded_collection("app", "items", ShardOptions::new(3))
        .unwrap();
    let mut stream = items.watch(json!({})).unwrap();
    items
        .insert_many((0..9).map(|i| json!({"_id": i})))
        .unwrap();
    let first = take(&mut stream, 9);
    // Stop half-way: resume after the 5th event delivered.
    let token_text = first[4].resume_token.to_string();
    let seen: BTreeSet<_> = first[..5].iter().map(key).collect();
    drop(stream);

    items
        .update_many(json!({}), json!({"$inc": {"v": 1}}))
        .unwrap();
    items.delete_one(json!({"_id": 3})).unwrap();

    let token: ShardResumeToken = token_text.parse().unwrap();
    let mut resumed = items.watch_from(&token).unwrap();
    let rest = take(&mut resumed, 4 + 9 + 1);
    let rest_keys: BTreeSet<_> = rest.iter().map(key).collect();
    assert_eq!(rest_keys.len(), rest.len(), "duplicates after resume");
    assert!(
        seen.is_disjoint(&rest_keys),
        "events before the token again"
    );
    // the four delivered after the token come again, then the new writes
    assert!(first[5..].iter().all(|e| rest_keys.contains(&key(e))));

    // The resumed stream's final token resumes to nothing new.
    let end = resumed.resume_token();
    drop(resumed);
    let mut again = items.watch_from(&end).unwrap();
    assert!(again
        .next_timeout(Duration::from_millis(300))
        .unwrap()
        .is_none());
}

#[test]
fn bad_tokens_are_rejected() {
    assert!("not json".parse::<ShardResumeToken>().is_err());
    assert!("[1,2]".parse::<ShardResumeToken>().is_err());
    assert!(r#"{"0": "x"}"#.parse::<ShardResumeToken>().is_err());
    let t: ShardResumeToken = r#"{"0": 3, "1": 0}"#.parse().unwrap();
    assert_eq!(t.get("0"), Some(3));
    assert_eq!(t.to_string().parse::<ShardResumeToken>().unwrap(), t);
}

#[test]
fn dropping_the_stream_stops_its_forwarders() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::open(dir.path()).unwrap();
    let items = client
        .create_sharded_collection("app", "items", ShardOptions::new(3))
        .unwrap();
    assert_eq!(items.change_subscribers().unwrap(), 0);
    let mut stream = items.watch(json!({})).unwrap();
    assert_eq!(items.change_subscribers().unwrap(), 3);
    items
        .insert_many((0..6).map(|i| json!({"_id": i})))
        .unwrap();
    take(&mut stream, 6);

    // A stream whose consumer stopped reading, with forwarders blocked on a full queue.
    let options = pocketdb::WatchOptions::default().capacity(1);
    let blocked = items.watch_with(options, None).unwrap();
    items
        .insert_many((10..40).map(|i| json!({"_id": i})))
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));

    let started = Instant::now();
    drop(stream);
    drop(blocked);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "drop took too long"
    );
    assert_eq!(items.change_subscribers().unwrap(), 0);
}

#[test]
fn slow_consumer_gets_every_event_without_lagging() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::open(dir.path()).unwrap();
    let items = client
        .create_sharded_collection("app", "items", ShardOptions::new(3))
        .unwrap();
    // Member queues of 2 overflow while the forwarders wait on the merged queue: the
    // forwarders reopen their members from the log.
    let options = pocketdb::WatchOptions::default().capacity(2);
    let mut stream = items.watch_with(options, None).unwrap();
    for i in 0..60 {
        items.insert_one(json!({"_id": i})).unwrap();
    }
    let events = take(&mut stream, 60);
    let ids: BTreeSet<i64> = events.iter().filter_map(|e| e.event.id.as_i64()).collect();
    assert_eq!(ids, (0..60).collect());
}

#[test]
fn partitioned_stream_picks_up_new_partitions() {
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
    const DAY: i64 = 86_400_000;
    const JAN_1: i64 = 1_735_689_600_000; // 2025-01-01T00:00:00Z
    events.insert_one(json!({"_id": 0, "ts": JAN_1})).unwrap();
    let mut stream = events.watch(json!({})).unwrap();
    assert_eq!(stream.members(), vec!["2025-01-01"]);

    events
        .insert_one(json!({"_id": 1, "ts": JAN_1 + 1}))
        .unwrap();
    // Two partitions created on demand after the stream opened.
    events
        .insert_one(json!({"_id": 2, "ts": JAN_1 + DAY}))
        .unwrap();
    events
        .insert_one(json!({"_id": 3, "ts": JAN_1 + 2 * DAY}))
        .unwrap();
    let got = take(&mut stream, 3);
    let by_id: BTreeMap<i64, String> = got
        .iter()
        .filter_map(|e| Some((e.event.id.as_i64()?, e.member.clone())))
        .collect();
    assert_eq!(
        by_id,
        BTreeMap::from([
            (1, "2025-01-01".to_string()),
            (2, "2025-01-02".to_string()),
            (3, "2025-01-03".to_string()),
        ])
    );
    let token = stream.resume_token();
    assert_eq!(token.positions().len(), 3);
    drop(stream);

    // Resume: new writes in old partitions and in a partition the token does not name.
    events
        .update_one(json!({"_id": 2}), json!({"$set": {"x": 1}}))
        .unwrap();
    events
        .insert_one(json!({"_id": 4, "ts": JAN_1 + 3 * DAY}))
        .unwrap();
    let mut resumed = events.watch_from(&token).unwrap();
    let got = take(&mut resumed, 2);
    let ids: Vec<Value> = got.iter().map(|e| e.event.id.clone()).collect();
    assert!(
        ids.contains(&json!(2)) && ids.contains(&json!(4)),
        "{ids:?}"
    );

    // A dropped partition is no longer followed.
    events.drop_partition("2025-01-01").unwrap();
    std::thread::sleep(Duration::from_millis(400));
    assert!(resumed.try_next().unwrap().is_none());
    assert!(!resumed.members().contains(&"2025-01-01".to_string()));
}

/// Receives `n` callback results, failing on a timeout or an error.
fn receive(
    rx: &std::sync::mpsc::Receiver<pocketdb::Result<ShardChangeEvent>>,
    n: usize,
) -> Vec<ShardChangeEvent> {
    (0..n)
        .map(|i| match rx.recv_timeout(WAIT) {
            Ok(Ok(ev)) => ev,
            Ok(Err(e)) => panic!("error after {i} of {n} events: {e}"),
            Err(e) => panic!("no event after {i} of {n}: {e}"),
        })
        .collect()
}

/// Waits until the collection has `n` subscribers left.
fn wait_subscribers(items: &pocketdb::ShardedCollection, n: usize) {
    let deadline = Instant::now() + WAIT;
    while items.change_subscribers().unwrap() != n {
        assert!(Instant::now() < deadline, "still subscribed");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn sharded_on_change_calls_back_for_every_member_until_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::open(dir.path()).unwrap();
    let items = client
        .create_sharded_collection("app", "items", ShardOptions::new(3))
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = items
        .on_change(
            pocketdb::WatchOptions::default().filter(json!({"operationType": "insert"})),
            move |ev| {
                let _ = tx.send(ev);
            },
        )
        .unwrap();
    assert_eq!(items.change_subscribers().unwrap(), 3);
    items
        .insert_many((0..30).map(|i| json!({"_id": i})))
        .unwrap();
    items.delete_many(json!({})).unwrap(); // filtered out
    let events = receive(&rx, 30);
    let ids: BTreeSet<i64> = events.iter().filter_map(|e| e.event.id.as_i64()).collect();
    assert_eq!(ids, (0..30).collect());
    for ev in &events {
        assert_eq!(ev.event.op, ChangeOp::Insert);
        assert_eq!(
            ev.member,
            items.member_of(json!({"_id": ev.event.id})).unwrap()
        );
    }
    let members: BTreeSet<&str> = events.iter().map(|e| e.member.as_str()).collect();
    assert_eq!(members.len(), 3);
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());

    // Dropping the handle unsubscribes from every member; later writes are not seen.
    drop(handle);
    wait_subscribers(&items, 0);
    items.insert_one(json!({"_id": 100})).unwrap();
    assert!(
        matches!(
            rx.recv_timeout(Duration::from_millis(300)),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected)
        ),
        "the callback thread ended"
    );
}

#[test]
fn partitioned_on_change_follows_new_partitions_and_resumes_from_a_token() {
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
    const DAY: i64 = 86_400_000;
    const JAN_1: i64 = 1_735_689_600_000; // 2025-01-01T00:00:00Z
    events.insert_one(json!({"_id": 0, "ts": JAN_1})).unwrap();

    let (tx, rx) = std::sync::mpsc::channel();
    let handle = events
        .on_change(pocketdb::WatchOptions::default(), move |ev| {
            let _ = tx.send(ev);
        })
        .unwrap();
    events
        .insert_one(json!({"_id": 1, "ts": JAN_1 + 1}))
        .unwrap();
    // a partition created after the subscription
    events
        .insert_one(json!({"_id": 2, "ts": JAN_1 + DAY}))
        .unwrap();
    let got = receive(&rx, 2);
    let by_id: BTreeMap<i64, String> = got
        .iter()
        .filter_map(|e| Some((e.event.id.as_i64()?, e.member.clone())))
        .collect();
    assert_eq!(
        by_id,
        BTreeMap::from([(1, "2025-01-01".to_string()), (2, "2025-01-02".to_string()),])
    );
    // the last event's token holds the position of every member
    let token = got[1].resume_token.clone();
    assert_eq!(token.positions().len(), 2);
    drop(handle);
    drop(rx);
    wait_subscribers(&events, 0);

    // Written while nobody listens, then delivered by the resumed callback form.
    events
        .update_one(json!({"_id": 1}), json!({"$set": {"x": 1}}))
        .unwrap();
    events
        .insert_one(json!({"_id": 3, "ts": JAN_1 + 2 * DAY}))
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let _resumed = events
        .watch_from(&token)
        .unwrap()
        .for_each(move |ev| {
            let _ = tx.send(ev);
        })
        .unwrap();
    let got = receive(&rx, 2);
    let mut seen: Vec<(i64, &str)> = got
        .iter()
        .filter_map(|e| Some((e.event.id.as_i64()?, e.event.op.as_str())))
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, [(1, "update"), (3, "insert")]);
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
}

const DAY_MS: i64 = 86_400_000;
/// 2025-01-01T00:00:00Z.
const JAN_1_MS: i64 = 1_735_689_600_000;

fn daily_events(client: &Client) -> pocketdb::PartitionedCollection {
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

/// Guards that a stream follows a partition dropped and recreated under the same label
/// (a new file, whose log starts again) instead of the deleted file.
#[test]
fn stream_follows_a_partition_recreated_after_a_drop() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::open(dir.path()).unwrap();
    let events = daily_events(&client);
    events
        .insert_one(json!({"_id": 1, "ts": JAN_1_MS}))
        .unwrap();
    let mut stream = events.watch(json!({})).unwrap();
    assert_eq!(
        events.drop_partitions_before(JAN_1_MS + DAY_MS).unwrap(),
        vec!["2025-01-01"]
    );
    events
        .insert_one(json!({"_id": 2, "ts": JAN_1_MS + 1}))
        .unwrap();
    let got = take(&mut stream, 1);
    assert_eq!(
        (got[0].member.as_str(), &got[0].event.id),
        ("2025-01-01", &json!(2))
    );
    // The position is the new file's, and later writes to it keep coming.
    assert_eq!(
        stream.resume_token().get("2025-01-01"),
        Some(got[0].event.token)
    );
    events
        .insert_one(json!({"_id": 3, "ts": JAN_1_MS + 2}))
        .unwrap();
    assert_eq!(take(&mut stream, 1)[0].event.id, json!(3));
}

/// Guards that a token taken before a partition was dropped and recreated resumes the
/// new file from its start (its numbering restarts, so the old position would skip).
#[test]
fn resume_token_survives_a_recreated_partition() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::open(dir.path()).unwrap();
    let events = daily_events(&client);
    let mut stream = events.watch(json!({})).unwrap();
    for i in 0..5 {
        events
            .insert_one(json!({"_id": i, "ts": JAN_1_MS + i}))
            .unwrap();
    }
    take(&mut stream, 5);
    let token = stream.resume_token();
    assert!(token.database_id("2025-01-01").is_some());
    drop(stream);
    events.drop_partitions_before(JAN_1_MS + DAY_MS).unwrap();
    events
        .insert_one(json!({"_id": 100, "ts": JAN_1_MS + 1}))
        .unwrap();
    // through the text form, as a client would keep it
    let token: ShardResumeToken = token.to_string().parse().unwrap();
    let mut resumed = events.watch_from(&token).unwrap();
    let got = take(&mut resumed, 1);
    assert_eq!(got[0].event.id, json!(100));
}

/// Guards that a stream of a hash-sharded collection follows the new shard files when
/// the collection is dropped and recreated (even when opened from the old handle), and
/// that a token taken before resumes the new files from their start.
#[test]
fn hash_shards_of_a_recreated_collection_are_followed_and_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let client = Client::open(dir.path()).unwrap();
    let old = client
        .create_sharded_collection("app", "items", ShardOptions::new(2))
        .unwrap();
    let mut stream = old.watch(json!({})).unwrap();
    old.insert_many((0..6).map(|i| json!({"_id": i}))).unwrap();
    take(&mut stream, 6);
    let token = stream.resume_token();
    assert!(old.drop().unwrap());
    let new = client
        .create_sharded_collection("app", "items", ShardOptions::new(2))
        .unwrap();
    new.insert_many((10..14).map(|i| json!({"_id": i})))
        .unwrap();
    let ids: BTreeSet<i64> = take(&mut stream, 4)
        .iter()
        .filter_map(|e| e.event.id.as_i64())
        .collect();
    assert_eq!(ids, (10..14).collect());
    drop(stream);

    let mut resumed = new.watch_from(&token).unwrap();
    let ids: BTreeSet<i64> = take(&mut resumed, 4)
        .iter()
        .filter_map(|e| e.event.id.as_i64())
        .collect();
    assert_eq!(ids, (10..14).collect());
}

/// Guards the token's text form: members carry the `database_id` of their file, and
/// tokens of earlier versions (bare sequences) are still read and resume as before.
#[test]
fn tokens_carry_database_ids_and_old_tokens_still_resume() {
    let t: ShardResumeToken = r#"{"0": {"seq": 3, "database_id": "abc"}, "1": 4}"#
        .parse()
        .unwrap();
    assert_eq!((t.get("0"), t.database_id("0")), (Some(3), Some("abc")));
    assert_eq!((t.get("1"), t.database_id("1")), (Some(4), None));
    assert_eq!(t.to_string().parse::<ShardResumeToken>().unwrap(), t);
    for bad in [
        r#"{"0": {"seq": "x"}}"#,
        r#"{"0": {"database_id": "abc"}}"#,
        r#"{"0": {"seq": 1, "database_id": 3}}"#,
        r#"{"0": {"seq": 1, "other": 3}}"#,
        r#"{"0": {"seq": -1}}"#,
    ] {
        assert!(bad.parse::<ShardResumeToken>().is_err(), "{bad}");
    }

    let dir = tempfile::tempdir().unwrap();
    let client = Client::open(dir.path()).unwrap();
    let items = client
        .create_sharded_collection("app", "items", ShardOptions::new(2))
        .unwrap();
    let mut stream = items.watch(json!({})).unwrap();
    items
        .insert_many((0..6).map(|i| json!({"_id": i})))
        .unwrap();
    take(&mut stream, 6);
    let positions = stream.resume_token().positions().clone();
    assert!(positions
        .keys()
        .all(|m| stream.resume_token().database_id(m).is_some()));
    drop(stream);
    items.insert_one(json!({"_id": 6})).unwrap();
    // The bare form of the same positions resumes right after them.
    let old_form = ShardResumeToken::new(positions);
    let mut resumed = items.watch_from(&old_form).unwrap();
    assert_eq!(take(&mut resumed, 1)[0].event.id, json!(6));
}
