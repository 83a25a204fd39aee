//! Dates (`{"$date": …}`) behave as MongoDB's Date type: their own `$type`, a rank after
//! booleans in the comparison order, equality and ordering by instant, and literals in
//! filters. Each query runs without an index, with a plain index and with a multikey
//! index, and the SQL back end is checked against the in-memory matcher.

use pocketdb::query::parse_filter;
use pocketdb::query::sql::{compile_filter, register_functions};
use pocketdb::{Collection, Database, IndexOptions, UpdateOptions};
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// 2020-01-02T00:00:00Z in three spellings, and other values around it.
fn docs() -> Vec<Value> {
    vec![
        json!({"_id": 1, "a": {"$date": "2020-01-02T00:00:00.000Z"}}),
        json!({"_id": 2, "a": {"$date": "2020-01-02T00:00:00Z"}}),
        json!({"_id": 3, "a": {"$date": "2020-01-02T01:00:00+01:00"}}),
        json!({"_id": 4, "a": {"$date": "2019-06-01T00:00:00Z"}}),
        json!({"_id": 5, "a": {"$date": "2021-06-01T00:00:00Z"}}),
        json!({"_id": 6, "a": {"x": 1}}),
        json!({"_id": 7, "a": true}),
        json!({"_id": 8, "a": "2020-01-02T00:00:00Z"}),
        json!({"_id": 9, "a": 5}),
        json!({"_id": 10, "a": [{"$date": "2020-01-02T00:00:00.000Z"}, 1]}),
        json!({"_id": 11}),
    ]
}

/// The kinds of collection a query runs on: name, whether `a` is indexed, whether the
/// documents holding an array are left out (so that the index is not multikey).
type Kind = (&'static str, bool, bool);

const NO_INDEX: Kind = ("no index", false, false);
const MULTIKEY_INDEX: Kind = ("multikey index", true, false);
const SCALAR_INDEX: Kind = ("scalar index", true, true);

/// Every kind; see [`equality_through_a_multikey_index`] for what [`MULTIKEY_INDEX`]
/// still gets wrong.
const ALL: &[Kind] = &[NO_INDEX, MULTIKEY_INDEX, SCALAR_INDEX];
/// The kinds whose equality with a date is served right today.
const NOT_MULTIKEY: &[Kind] = &[NO_INDEX, SCALAR_INDEX];

/// The collections of `kinds`, filled with [`docs`].
fn collections(kinds: &[Kind]) -> Vec<(&'static str, Database, Collection<Value>, Vec<Value>)> {
    let mut out = Vec::new();
    for &(name, index, skip_arrays) in kinds {
        let db = Database::memory().unwrap();
        let c = db.collection::<Value>("c");
        let docs: Vec<Value> = docs()
            .into_iter()
            .filter(|d| !(skip_arrays && d["a"].is_array()))
            .collect();
        for d in &docs {
            c.insert_one(d.clone()).unwrap();
        }
        if index {
            c.create_index(json!({"a": 1}), IndexOptions::default())
                .unwrap();
        }
        out.push((name, db, c, docs));
    }
    out
}

/// The `_id`s `filter` finds, checked to be the same in every collection of
/// [`collections`] (of [`ALL`] kinds), and the same as the SQL compiled alone and the
/// matcher find.
fn ids(filter: Value) -> Vec<i64> {
    ids_in(ALL, filter)
}

/// [`ids`] on the collections of `kinds`.
fn ids_in(kinds: &[Kind], filter: Value) -> Vec<i64> {
    let mut answer: Option<Vec<i64>> = None;
    for (name, _db, c, docs) in collections(kinds) {
        let mut got: Vec<i64> = c
            .find(filter.clone())
            .unwrap_or_else(|e| panic!("{name}: find {filter}: {e}"))
            .to_vec()
            .unwrap()
            .iter()
            .map(|d| d["_id"].as_i64().unwrap())
            .collect();
        got.sort_unstable();
        let parsed = parse_filter(&filter).unwrap();
        let expected: Vec<i64> = docs
            .iter()
            .filter(|d| parsed.matches(d))
            .map(|d| d["_id"].as_i64().unwrap())
            .collect();
        assert_eq!(got, expected, "{name}: {filter} (collection vs matcher)");
        let (sql, exact) = sql_ids(&docs, &filter);
        if exact {
            assert_eq!(sql, expected, "{name}: {filter} (exact SQL vs matcher)");
        } else {
            assert!(
                expected.iter().all(|id| sql.contains(id)),
                "{name}: {filter}: SQL {sql:?} misses some of {expected:?}"
            );
        }
        // Without the documents holding arrays, the answer may only lose those.
        if let Some(all) = &answer {
            let kept: Vec<i64> = all.iter().copied().filter(|id| *id != 10).collect();
            let mine: Vec<i64> = got.iter().copied().filter(|id| *id != 10).collect();
            assert_eq!(mine, kept, "{name}: {filter}");
        } else {
            answer = Some(got);
        }
    }
    answer.unwrap_or_default()
}

/// The `_id`s the compiled SQL alone selects, and whether it claims to be exact.
fn sql_ids(docs: &[Value], filter: &Value) -> (Vec<i64>, bool) {
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    register_functions(&conn).unwrap();
    conn.execute_batch("CREATE TABLE t(rid INTEGER PRIMARY KEY, doc BLOB NOT NULL)")
        .unwrap();
    for d in docs {
        conn.execute(
            "INSERT INTO t(rid, doc) VALUES (?1, jsonb(?2))",
            rusqlite::params![d["_id"].as_i64().unwrap(), d.to_string()],
        )
        .unwrap();
    }
    let compiled = compile_filter(&parse_filter(filter).unwrap());
    let mut stmt = conn
        .prepare(&format!(
            "SELECT rid FROM t WHERE {} ORDER BY rid",
            compiled.sql
        ))
        .unwrap();
    let ids = stmt
        .query_map(rusqlite::params_from_iter(compiled.params.iter()), |r| {
            r.get(0)
        })
        .unwrap()
        .collect::<rusqlite::Result<BTreeSet<i64>>>()
        .unwrap();
    (ids.into_iter().collect(), compiled.exact)
}

#[test]
fn type_date_matches_dates_only() {
    assert_eq!(ids(json!({"a": {"$type": "date"}})), [1, 2, 3, 4, 5, 10]);
    assert_eq!(ids(json!({"a": {"$type": 9}})), [1, 2, 3, 4, 5, 10]);
    assert_eq!(ids(json!({"a": {"$type": "object"}})), [6]);
    assert_eq!(ids(json!({"a": {"$type": 3}})), [6]);
    assert_eq!(
        ids(json!({"a": {"$type": ["object", "date"]}})),
        [1, 2, 3, 4, 5, 6, 10]
    );
    assert_eq!(
        ids(json!({"a": {"$not": {"$type": "date"}}})),
        [6, 7, 8, 9, 11]
    );
    assert_eq!(ids(json!({"a": {"$elemMatch": {"$type": "date"}}})), [10]);
}

#[test]
fn equality_is_by_instant() {
    equality_cases(NOT_MULTIKEY);
}

/// A multikey index keys a date by its text (`v0 = '{"$date":…}'`), so bounding an
/// equality by it would miss the other spellings of the instant: date operands are not
/// bounded (`index/bounds.rs`, `eq_bounds`).
#[test]
fn equality_through_a_multikey_index() {
    equality_cases(&[MULTIKEY_INDEX]);
}

fn equality_cases(kinds: &[Kind]) {
    let ids = |f: Value| ids_in(kinds, f);
    let all_spellings = [1, 2, 3, 10];
    for text in [
        "2020-01-02T00:00:00.000Z",
        "2020-01-02T00:00:00Z",
        "2020-01-02T03:00:00+03:00",
    ] {
        let d = json!({ "$date": text });
        assert_eq!(ids(json!({ "a": d })), all_spellings, "{d}");
        assert_eq!(ids(json!({"a": {"$eq": d}})), all_spellings, "{d}");
        assert_eq!(ids(json!({"a": {"$in": [d, 5]}})), [1, 2, 3, 9, 10], "{d}");
        assert_eq!(ids(json!({"a": {"$all": [d]}})), all_spellings, "{d}");
        assert_eq!(ids(json!({"a": {"$ne": d}})), [4, 5, 6, 7, 8, 9, 11], "{d}");
        assert_eq!(ids(json!({"a": {"$nin": [d]}})), [4, 5, 6, 7, 8, 9, 11]);
    }
    // Milliseconds and `$numberLong` spell instants too.
    assert_eq!(
        ids(json!({"a": {"$date": 1_577_923_200_000i64}})),
        all_spellings
    );
    assert_eq!(
        ids(json!({"a": {"$date": {"$numberLong": "1577923200000"}}})),
        all_spellings
    );
    // A date is not the string of its text, nor a document.
    assert_eq!(ids(json!({"a": "2020-01-02T00:00:00Z"})), [8]);
    assert_eq!(ids(json!({"a": {"x": 1}})), [6]);
}

#[test]
fn ranges_compare_instants_within_the_date_bracket() {
    let d = json!({"$date": "2020-01-02T01:00:00+01:00"});
    assert_eq!(ids(json!({"a": {"$gt": d}})), [5]);
    assert_eq!(ids(json!({"a": {"$gte": d}})), [1, 2, 3, 5, 10]);
    assert_eq!(ids(json!({"a": {"$lt": d}})), [4]);
    assert_eq!(ids(json!({"a": {"$lte": d}})), [1, 2, 3, 4, 10]);
    // 01:00+02:00 is 23:00 the day before: nothing stored at midnight is below it.
    assert_eq!(
        ids(json!({"a": {"$lt": {"$date": "2020-01-02T01:00:00+02:00"}}})),
        [4]
    );
    // Brackets: documents, booleans and strings never compare with dates.
    assert_eq!(ids(json!({"a": {"$gt": {"x": 0}}})), [6]);
    assert_eq!(ids(json!({"a": {"$lt": {"x": 9}}})), [6]);
    assert_eq!(ids(json!({"a": {"$gte": false}})), [7]);
    assert_eq!(ids(json!({"a": {"$gte": "2"}})), [8]);
    assert_eq!(
        ids(json!({"a": {"$elemMatch": {"$gte": d, "$lt": {"$date": "2021-01-01T00:00:00Z"}}}})),
        [10]
    );
}

#[test]
fn dates_sort_after_booleans_by_instant() {
    for (name, _db, c, _) in collections(ALL) {
        let sorted: Vec<Value> = c
            .find(json!({"_id": {"$ne": 10}}))
            .unwrap()
            .sort(json!({"a": 1, "_id": 1}))
            .to_vec()
            .unwrap()
            .into_iter()
            .map(|d| d["_id"].clone())
            .collect();
        assert_eq!(
            sorted,
            [11, 9, 8, 6, 7, 4, 1, 2, 3, 5].map(|i| json!(i)),
            "{name}"
        );
        let first = c
            .find(json!({}))
            .unwrap()
            .sort(json!({"a": -1}))
            .limit(1)
            .to_vec()
            .unwrap();
        assert_eq!(first[0]["_id"], json!(5), "{name}");
    }
}

#[test]
fn min_max_and_current_date() {
    let db = Database::memory().unwrap();
    let c = db.collection::<Value>("c");
    c.insert_one(json!({"_id": 1, "a": true, "b": {"$date": "2020-01-02T00:00:00Z"}}))
        .unwrap();
    c.update_one(
        json!({}),
        json!({
            "$max": {"a": {"$date": "2000-01-01T00:00:00Z"}},
            "$min": {"b": {"$date": "2020-01-02T00:30:00+01:00"}},
        }),
    )
    .unwrap();
    let doc = c.find_one(json!({})).unwrap().unwrap();
    assert_eq!(doc["a"], json!({"$date": "2000-01-01T00:00:00Z"}));
    assert_eq!(doc["b"], json!({"$date": "2020-01-02T00:30:00+01:00"}));
    // A later instant, whatever its text, does not replace the minimum.
    c.update_one(
        json!({}),
        json!({"$min": {"b": {"$date": "2020-01-02T01:00:00+01:00"}}}),
    )
    .unwrap();
    let doc = c.find_one(json!({})).unwrap().unwrap();
    assert_eq!(doc["b"], json!({"$date": "2020-01-02T00:30:00+01:00"}));
    c.update_one(json!({}), json!({"$currentDate": {"now": true}}))
        .unwrap();
    assert_eq!(
        c.count_documents(json!({"now": {"$type": "date"}}))
            .unwrap(),
        1
    );
    assert_eq!(
        c.count_documents(json!({"now": {"$gt": {"$date": "2020-01-01T00:00:00Z"}}}))
            .unwrap(),
        1
    );
}

#[test]
fn upsert_seeds_a_date_from_equality() {
    let db = Database::memory().unwrap();
    let c = db.collection::<Value>("c");
    let d = json!({"$date": "2020-01-02T00:00:00Z"});
    c.update_one_with(
        json!({ "a": d }),
        json!({"$set": {"b": 1}}),
        &UpdateOptions::upsert(),
    )
    .unwrap();
    let doc = c.find_one(json!({})).unwrap().unwrap();
    assert_eq!(doc["a"], d);
    assert_eq!(
        c.count_documents(json!({"a": {"$date": "2020-01-02T00:00:00.000Z"}}))
            .unwrap(),
        1
    );
}

#[test]
fn group_and_type_expression_see_dates() {
    let db = Database::memory().unwrap();
    let c = db.collection::<Value>("c");
    for d in docs() {
        c.insert_one(d).unwrap();
    }
    let groups = c
        .aggregate(json!([
            {"$match": {"a": {"$type": "date"}}},
            {"$group": {"_id": "$a", "n": {"$sum": 1}}},
            {"$sort": {"_id": 1}},
        ]))
        .unwrap()
        .to_vec()
        .unwrap();
    let counts: Vec<i64> = groups.iter().map(|g| g["n"].as_i64().unwrap()).collect();
    // One group per instant (three spellings of one), and the array on its own.
    assert_eq!(counts, [1, 1, 3, 1], "{groups:?}");
    let types = c
        .aggregate(json!([
            {"$match": {"_id": {"$in": [1, 6]}}},
            {"$sort": {"_id": 1}},
            {"$project": {"t": {"$type": "$a"}}},
        ]))
        .unwrap()
        .to_vec()
        .unwrap();
    assert_eq!(types[0]["t"], json!("date"));
    assert_eq!(types[1]["t"], json!("object"));
}

/// MongoDB's unique index sees two spellings of one instant as one key.
#[test]
fn unique_index_keys_dates_by_instant() {
    let db = Database::memory().unwrap();
    let c = db.collection::<Value>("c");
    c.create_index(json!({"a": 1}), IndexOptions::default().unique(true))
        .unwrap();
    c.insert_one(json!({"_id": 1, "a": {"$date": "2020-01-02T00:00:00Z"}}))
        .unwrap();
    assert!(c
        .insert_one(json!({"_id": 2, "a": {"$date": "2020-01-02T01:00:00+01:00"}}))
        .is_err());
}
