//! Regression tests for secondary-index bugs found by probing pocketdb against MongoDB's
//! semantics: batch inserts after a refused document, default index names, hints on
//! multikey indexes, option conflicts, numeric option forms, and TTL expiry.

use pocketdb::{Collection, Database, Error, IndexOptions, InsertManyOptions};
use serde_json::{json, Value};

/// The `_id`s of the documents matching `filter` (read unsorted, so the query runs on
/// the plan an index gives it), in `_id` order.
fn ids(c: &Collection<Value>, filter: Value) -> Vec<Value> {
    let mut out: Vec<Value> = c
        .find(filter)
        .unwrap()
        .to_vec()
        .unwrap()
        .into_iter()
        .map(|d| d["_id"].clone())
        .collect();
    out.sort_by(pocketdb::value::compare_values);
    out
}

fn unordered() -> InsertManyOptions {
    InsertManyOptions { ordered: false }
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

fn dated(id: i64, at: &str) -> Value {
    json!({"_id": id, "at": {"$date": at}})
}

/// Guards the batch inserter's index set: a document refused by a unique index after it
/// turned another index multikey (creating its side table) must not leave the rest of an
/// unordered `insert_many` writing no side-table keys, which indexed queries would miss.
#[test]
fn unordered_insert_many_after_a_refused_document_that_made_the_index_multikey() {
    let db = Database::memory().unwrap();
    let c = db.collection::<Value>("c");
    c.create_index(json!({"tags": 1}), IndexOptions::default())
        .unwrap();
    c.create_index(json!({"u": 1}), IndexOptions::default().unique(true))
        .unwrap();
    c.insert_one(json!({"_id": 0, "u": 1, "tags": "a"}))
        .unwrap();
    let r = c.insert_many_with(
        vec![
            json!({"_id": 1, "u": 1, "tags": ["a", "b"]}),
            json!({"_id": 2, "u": 2, "tags": "b"}),
            // No array: a later array would fill the side table again from every row.
            json!({"_id": 3, "u": 3, "tags": "c"}),
        ],
        unordered(),
    );
    match r {
        Err(Error::BulkWrite(f)) => {
            assert_eq!(f.write_errors.len(), 1);
            assert_eq!(f.write_errors[0].index, 0);
        }
        other => panic!("expected one refused document, got {other:?}"),
    }
    let e = c.find(json!({"tags": "b"})).unwrap().explain().unwrap();
    assert_eq!(e.index.as_deref(), Some("tags_1"), "{e:?}");
    assert_eq!(ids(&c, json!({"tags": "b"})), vec![json!(2)]);
    assert_eq!(ids(&c, json!({"tags": "c"})), vec![json!(3)]);
    assert_eq!(ids(&c, json!({"tags": "a"})), vec![json!(0)]);
    assert_eq!(
        c.count_documents(json!({"tags": {"$in": ["b", "c"]}}))
            .unwrap(),
        2
    );
}

/// Guards the same for a document refused for giving a compound index too many keys
/// (after turning both its paths multikey).
#[test]
fn unordered_insert_many_after_a_document_with_too_many_keys() {
    let db = Database::memory().unwrap();
    let c = db.collection::<Value>("c");
    c.create_index(json!({"x": 1, "y": 1}), IndexOptions::default())
        .unwrap();
    let big: Vec<i64> = (0..200).collect();
    let r = c.insert_many_with(
        vec![
            json!({"_id": 1, "x": big.clone(), "y": big}),
            json!({"_id": 2, "x": 7, "y": 1}),
            json!({"_id": 3, "x": 7, "y": 2}),
        ],
        unordered(),
    );
    assert!(matches!(r, Err(Error::BulkWrite(_))), "{r:?}");
    assert_eq!(c.count_documents(json!({})).unwrap(), 2);
    assert_eq!(ids(&c, json!({"x": 7})), vec![json!(2), json!(3)]);
    assert_eq!(ids(&c, json!({"x": 7, "y": 2})), vec![json!(3)]);
}

/// Guards MongoDB's default index names on field names outside `A-Z a-z 0-9 _ - .`
/// (spaces, non-ASCII letters, `:` and `/`): they were refused as invalid names. The
/// same names given explicitly (as drivers send them) are accepted too, while names
/// that could be confusing or harmful are still refused.
#[test]
fn default_index_names_for_unusual_field_names() {
    let db = Database::memory().unwrap();
    let c = db.collection::<Value>("c");
    c.insert_many(vec![
        json!({"_id": 1, "first name": "ann", "ñame": "x", "a:b": 1, "a/b": 2}),
        json!({"_id": 2, "first name": "bob", "ñame": "y", "a:b": 3, "a/b": 4}),
    ])
    .unwrap();
    for k in ["first name", "ñame", "a-b", "a:b", "a/b", "café.prix"] {
        let name = c.create_index(json!({k: 1}), IndexOptions::default());
        assert_eq!(name.ok(), Some(format!("{k}_1")), "{k}");
    }
    let e = c
        .find(json!({"first name": "bob"}))
        .unwrap()
        .explain()
        .unwrap();
    assert_eq!(e.index.as_deref(), Some("first name_1"), "{e:?}");
    assert_eq!(ids(&c, json!({"first name": "bob"})), vec![json!(2)]);
    let hinted = c
        .find(json!({"a:b": 3}))
        .unwrap()
        .hint(json!("a:b_1"))
        .to_vec()
        .unwrap();
    assert_eq!(hinted.len(), 1);
    // The default name given explicitly names the same index.
    let again = c.create_index(json!({"ñame": 1}), IndexOptions::default().name("ñame_1"));
    assert_eq!(again.unwrap(), "ñame_1");
    c.drop_index("a/b_1").unwrap();
    assert!(c.list_indexes().unwrap().iter().all(|i| i.name != "a/b_1"));
    for bad in ["", "*", "x\"y", "x\\y", "x\ny", &"n".repeat(1025)] {
        let r = c.create_index(json!({"z": 1}), IndexOptions::default().name(bad));
        assert!(
            matches!(r, Err(Error::InvalidName { kind: "index", .. })),
            "{bad:?}: {r:?}"
        );
    }
}

/// Guards hints on a multikey index when the filter does not bound its leading key:
/// MongoDB scans the whole index; pocketdb refused the query.
#[test]
fn hint_multikey_index_without_bounding_condition() {
    let db = Database::memory().unwrap();
    let c = db.collection::<Value>("c");
    c.create_index(json!({"tags": 1}), IndexOptions::default())
        .unwrap();
    c.create_index(json!({"tags": 1, "k": 1}), IndexOptions::default())
        .unwrap();
    c.insert_many(vec![
        json!({"_id": 1, "tags": ["a", "b", "c"], "k": 1}),
        json!({"_id": 2, "x": 1, "k": 2}),
        json!({"_id": 3, "tags": [], "k": 1}),
        json!({"_id": 4, "tags": "d"}),
    ])
    .unwrap();
    let all = c
        .find(json!({}))
        .unwrap()
        .hint(json!("tags_1"))
        .to_vec()
        .unwrap();
    let mut got: Vec<Value> = all.iter().map(|d| d["_id"].clone()).collect();
    got.sort_by(pocketdb::value::compare_values);
    assert_eq!(got, vec![json!(1), json!(2), json!(3), json!(4)]);
    let e = c
        .find(json!({}))
        .unwrap()
        .hint(json!("tags_1"))
        .explain()
        .unwrap();
    assert_eq!(e.index.as_deref(), Some("tags_1"), "{e:?}");
    let exists = c
        .find(json!({"tags": {"$exists": true}}))
        .unwrap()
        .hint(json!({"tags": 1}))
        .to_vec()
        .unwrap();
    assert_eq!(exists.len(), 3);
    let by_second = c
        .find(json!({"k": 1}))
        .unwrap()
        .hint(json!({"tags": 1, "k": 1}))
        .sort(json!({"_id": -1}))
        .to_vec()
        .unwrap();
    let got: Vec<Value> = by_second.iter().map(|d| d["_id"].clone()).collect();
    assert_eq!(got, vec![json!(3), json!(1)]);
}

/// Guards MongoDB's refusal of a second index on the same keys that differs only in
/// `unique`, `sparse` or the TTL (IndexOptionsConflict); a different partial filter
/// still allows one.
#[test]
fn same_keys_with_different_options_conflict() {
    let db = Database::memory().unwrap();
    let c = db.collection::<Value>("c");
    c.create_index(json!({"a": 1}), IndexOptions::default())
        .unwrap();
    for options in [
        IndexOptions::default().unique(true).name("a_unique"),
        IndexOptions::default().sparse(true).name("a_sparse"),
        IndexOptions::default()
            .expire_after_seconds(60)
            .name("a_ttl"),
    ] {
        let r = c.create_index(json!({"a": 1}), options.clone());
        assert!(
            matches!(r, Err(Error::InvalidIndex { .. })),
            "{options:?}: {r:?}"
        );
    }
    let partial = IndexOptions::default()
        .unique(true)
        .partial_filter_expression(json!({"b": {"$gt": 0}}))
        .name("a_partial");
    assert_eq!(
        c.create_index(json!({"a": 1}), partial.clone()).unwrap(),
        "a_partial"
    );
    // Asking again for an existing index is still a no-op.
    assert_eq!(
        c.create_index(json!({"a": 1}), partial).unwrap(),
        "a_partial"
    );
    assert_eq!(
        c.create_index(json!({"a": 1}), IndexOptions::default())
            .unwrap(),
        "a_1"
    );
    assert_eq!(c.list_indexes().unwrap().len(), 3);
}

/// Guards the option forms MongoDB accepts: numbers for `unique` and `sparse`, a whole
/// double for `expireAfterSeconds`.
#[test]
fn index_options_accept_mongodb_numeric_forms() {
    let o = IndexOptions::from_json(&json!({"unique": 1, "sparse": 1.0})).unwrap();
    assert!(o.unique && o.sparse);
    let o = IndexOptions::from_json(&json!({"unique": 0, "sparse": false})).unwrap();
    assert!(!o.unique && !o.sparse);
    let o = IndexOptions::from_json(&json!({"expireAfterSeconds": 3600.0})).unwrap();
    assert_eq!(o.expire_after_seconds, Some(3600));
    for bad in [
        json!({"unique": "yes"}),
        json!({"sparse": null}),
        json!({"expireAfterSeconds": 1.5}),
        json!({"expireAfterSeconds": "60"}),
        json!({"expireAfterSeconds": 1e300}),
    ] {
        assert!(
            matches!(
                IndexOptions::from_json(&bad),
                Err(Error::InvalidArgument(_))
            ),
            "{bad}"
        );
    }
}

/// Guards TTL expiry of partial indexes: only the documents the partial filter holds
/// expire.
#[test]
fn ttl_respects_partial_filter_expression() {
    let db = Database::memory().unwrap();
    let c = db.collection::<Value>("c");
    let old = "2000-01-01T00:00:00Z";
    let mut docs = vec![
        dated(1, old),
        dated(2, old),
        dated(3, "2999-01-01T00:00:00Z"),
    ];
    docs[0]["kind"] = json!("temp");
    docs[1]["kind"] = json!("keep");
    docs[2]["kind"] = json!("temp");
    c.insert_many(docs).unwrap();
    c.create_index(
        json!({"at": 1}),
        IndexOptions::default()
            .expire_after_seconds(60)
            .partial_filter_expression(json!({"kind": "temp"})),
    )
    .unwrap();
    assert_eq!(c.expire_now().unwrap(), 1);
    assert_eq!(ids(&c, json!({})), vec![json!(2), json!(3)]);
}

/// Guards TTL expiry on a path through an array of documents (`events.at`): the
/// earliest date among the index keys counts, as in MongoDB.
#[test]
fn ttl_on_a_path_through_an_array_of_documents() {
    let db = Database::memory().unwrap();
    let c = db.collection::<Value>("c");
    let (old, new) = ("2000-01-01T00:00:00Z", "2999-01-01T00:00:00Z");
    c.insert_many(vec![
        json!({"_id": 1, "events": [{"at": {"$date": old}}, {"at": {"$date": new}}]}),
        json!({"_id": 2, "events": {"at": {"$date": old}}}),
        json!({"_id": 3, "events": [{"at": {"$date": new}}]}),
        json!({"_id": 4, "events": [{"at": [{"$date": new}, old]}, {"x": 1}]}),
        json!({"_id": 5, "events": [{"at": 5}, {"at": "not a date"}]}),
    ])
    .unwrap();
    c.create_index(
        json!({"events.at": 1}),
        IndexOptions::default().expire_after_seconds(60),
    )
    .unwrap();
    assert_eq!(c.expire_now().unwrap(), 3);
    assert_eq!(ids(&c, json!({})), vec![json!(3), json!(5)]);
}

/// Guards unique multikey indexes on integers beyond `i64`: the side table holds them
/// as approximate reals, where distinct ones collided; true duplicates are still
/// refused.
#[test]
fn unique_multikey_large_integers_do_not_falsely_collide() {
    let db = Database::memory().unwrap();
    let d = db.collection::<Value>("d");
    d.create_index(json!({"a": 1}), IndexOptions::default().unique(true))
        .unwrap();
    d.insert_one(json!({"_id": 0, "a": [1, 2]})).unwrap();
    d.insert_one(parse(r#"{"_id": 1, "a": [18446744073709551615]}"#))
        .unwrap();
    let r = d.insert_one(parse(r#"{"_id": 2, "a": [18446744073709551614, 3]}"#));
    assert!(r.is_ok(), "a distinct integer refused: {r:?}");
    let r = d.insert_one(parse(r#"{"_id": 3, "a": 18446744073709551614}"#));
    assert!(matches!(r, Err(Error::DuplicateKey { .. })), "{r:?}");
    let r = d.insert_one(parse(r#"{"_id": 4, "a": [4, 18446744073709551615]}"#));
    assert!(matches!(r, Err(Error::DuplicateKey { .. })), "{r:?}");
    let r = d.update_one(
        json!({"_id": 0}),
        parse(r#"{"$set": {"a": [18446744073709551613]}}"#),
    );
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(d.count_documents(json!({})).unwrap(), 3);
}
