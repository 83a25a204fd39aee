//! MongoDB semantics pocketdb follows where an earlier version differed: upsert seeding
//! (`jstests/core/upsert_fields.js`), `$elemMatch` projections, empty update operands and
//! replacing `_id` by an equal value. Each test names the MongoDB behaviour it guards.

use pocketdb::{ChangeOp, Collection, Database, UpdateOptions};
use serde_json::{json, Value};

fn collection(docs: Value) -> (Database, Collection<Value>) {
    let db = Database::memory().unwrap();
    let c = db.collection::<Value>("c");
    for d in docs.as_array().unwrap() {
        c.insert_one(d.clone()).unwrap();
    }
    (db, c)
}

/// The document an operator upsert (`{$set: {a: 1}}`) inserts for `filter`.
fn op_upsert(filter: Value) -> pocketdb::Result<Value> {
    let (_db, c) = collection(json!([]));
    c.update_one_with(filter, json!({"$set": {"a": 1}}), &UpdateOptions::upsert())?;
    Ok(c.find_one(json!({}))?.unwrap())
}

/// The document a replacement upsert (`{a: 1}`) inserts for `filter`.
fn replacement_upsert(filter: Value) -> pocketdb::Result<Value> {
    let (_db, c) = collection(json!([]));
    c.replace_one_with(filter, json!({"a": 1}), true)?;
    Ok(c.find_one(json!({}))?.unwrap())
}

/// upsert_fields.js: MongoDB seeds an operator upsert from the filter after simplifying
/// it: a one-value `$in` and each `$all` value are equalities, and a one-clause `$or` /
/// `$and` is its clause.
#[test]
fn operator_upsert_seeds_simplified_equalities() {
    for (filter, x) in [
        (json!({"x": {"$in": [1]}}), json!(1)),
        (json!({"x": {"$all": [1]}}), json!(1)),
        (json!({"$or": [{"x": 1}]}), json!(1)),
        (json!({"$or": [{"x": {"$eq": 1}}]}), json!(1)),
        (json!({"$and": [{"x": {"$eq": 1}}]}), json!(1)),
        (json!({"x.x": {"$all": [1]}}), json!({"x": 1})),
        (json!({"$or": [{"x.x": 1}]}), json!({"x": 1})),
    ] {
        let doc = op_upsert(filter.clone()).unwrap();
        assert_eq!(doc["x"], x, "{filter} -> {doc}");
        assert_eq!(doc["a"], json!(1), "{filter} -> {doc}");
    }
    // Not equalities: nothing is seeded.
    for filter in [
        json!({"x": {"$in": [1, 2]}}),
        json!({"x": {"$in": [{"$regex": "^a"}]}}),
        json!({"$or": [{"x": 1}, {"x": 1}]}),
        json!({"$nor": [{"x": 1}]}),
    ] {
        let doc = op_upsert(filter.clone()).unwrap();
        assert!(doc.get("x").is_none(), "{filter} -> {doc}");
    }
}

/// upsert_fields.js: the same forms seed `_id`, in operator and replacement upserts.
#[test]
fn upsert_seeds_id_from_simplified_equalities() {
    for filter in [
        json!({"_id": {"$in": [1]}}),
        json!({"_id": {"$all": [1]}}),
        json!({"$or": [{"_id": 1}]}),
        json!({"$and": [{"_id": {"$eq": 1}}]}),
    ] {
        assert_eq!(
            op_upsert(filter.clone()).unwrap()["_id"],
            json!(1),
            "{filter}"
        );
        assert_eq!(
            replacement_upsert(filter.clone()).unwrap()["_id"],
            json!(1),
            "{filter}"
        );
    }
}

/// upsert_fields.js: two equalities on one path, or on a path and its prefix, are a
/// write error for an operator upsert (`$all: [1, 2]` is two equalities).
#[test]
fn operator_upsert_conflicting_equalities_are_errors() {
    for filter in [
        json!({"x": {"$all": [1, 2]}}),
        json!({"$and": [{"x": 1}, {"x": 1}]}),
        json!({"$and": [{"x": {"$eq": 1}}, {"x": 2}]}),
        json!({"x": 1, "x.x": 1}),
        json!({"x": {}, "x.x": 1}),
        json!({"x": {"x": 1}, "x.y": 1}),
        json!({"_id": {"$all": [1, 2]}}),
    ] {
        assert!(
            matches!(
                op_upsert(filter.clone()),
                Err(pocketdb::Error::InvalidUpdate { .. })
            ),
            "{filter}"
        );
    }
}

/// upsert_fields.js: a replacement upsert takes only `_id` from the filter; other
/// fields, and conflicts among them, are ignored.
#[test]
fn replacement_upsert_ignores_fields_other_than_id() {
    for filter in [
        json!({"x": 1}),
        json!({"x": {"$all": [1, 2]}}),
        json!({"$and": [{"x": 1}, {"x": 1}]}),
        json!({"x": 1, "x.x": 1}),
        json!({"x": {"x": 1}, "x.y": 1}),
    ] {
        let doc = replacement_upsert(filter.clone()).unwrap();
        assert!(doc.get("x").is_none(), "{filter} -> {doc}");
        assert_eq!(doc["a"], json!(1), "{filter} -> {doc}");
    }
    let doc = replacement_upsert(json!({"_id": 1, "x": [1, {"x": 1}], "x.x": 1})).unwrap();
    assert_eq!(doc, json!({"_id": 1, "a": 1}));
}

/// upsert_fields.js: conflicts on `_id` are errors in both styles, and a replacement
/// upsert cannot assemble `_id` from `_id.x` paths (an operator upsert can).
#[test]
fn upsert_id_conflicts_and_dotted_id() {
    for filter in [
        json!({"_id": {"$all": [1, 2]}}),
        json!({"$and": [{"_id": 1}, {"_id": 1}]}),
        json!({"_id": 1, "_id.x": 1}),
    ] {
        assert!(op_upsert(filter.clone()).is_err(), "op {filter}");
        assert!(
            replacement_upsert(filter.clone()).is_err(),
            "replacement {filter}"
        );
    }
    let dotted = json!({"_id.x": 1, "_id.y": 2});
    assert!(matches!(
        replacement_upsert(dotted.clone()),
        Err(pocketdb::Error::InvalidUpdate { .. })
    ));
    assert_eq!(op_upsert(dotted).unwrap()["_id"], json!({"x": 1, "y": 2}));
}

/// MongoDB's `$elemMatch` projection is an inclusion: only `_id` and the projected
/// array come back (beside `b: 0` it is an exclusion, beside `b: 1` an inclusion).
#[test]
fn elem_match_projection_is_an_inclusion() {
    let (_db, c) = collection(json!([
        {"_id": 1, "items": [{"k": "a", "v": 1}, {"k": "b", "v": 2}, {"k": "b", "v": 3}], "z": 1, "w": 2}
    ]));
    let project = |p: Value| c.find(json!({})).unwrap().projection(p).to_vec().unwrap();
    assert_eq!(
        project(json!({"items": {"$elemMatch": {"k": "b"}}})),
        [json!({"_id": 1, "items": [{"k": "b", "v": 2}]})]
    );
    assert_eq!(
        project(json!({"items": {"$elemMatch": {"k": "zz"}}})),
        [json!({"_id": 1})]
    );
    assert_eq!(
        project(json!({"items": {"$elemMatch": {"k": "b"}}, "_id": 0})),
        [json!({"items": [{"k": "b", "v": 2}]})]
    );
    assert_eq!(
        project(json!({"items": {"$elemMatch": {"k": "b"}}, "w": 0})),
        [json!({"_id": 1, "z": 1, "items": [{"k": "b", "v": 2}]})]
    );
    assert_eq!(
        project(json!({"items": {"$elemMatch": {"k": "b"}}, "z": 1})),
        [json!({"_id": 1, "z": 1, "items": [{"k": "b", "v": 2}]})]
    );
}

/// MongoDB 5.0+: an operator with an empty operand (`{$set: {}}`) is accepted and does
/// nothing: matched 1, modified 0, no change-log entry, the document unchanged.
#[test]
fn empty_operand_update_is_a_noop() {
    let (_db, c) = collection(json!([{"_id": 1, "a": 1}]));
    let before = c.changes_since(0, 100).unwrap().len();
    // `{_id: 1}` takes the single-document fast path, `{a: 1}` the general one.
    for filter in [json!({"_id": 1}), json!({"a": 1})] {
        for update in [json!({"$set": {}}), json!({"$unset": {}, "$inc": {}})] {
            let r = c.update_one(filter.clone(), update.clone()).unwrap();
            assert_eq!(
                (r.matched_count, r.modified_count),
                (1, 0),
                "{filter} {update}"
            );
            let r = c.update_many(filter.clone(), update.clone()).unwrap();
            assert_eq!(
                (r.matched_count, r.modified_count),
                (1, 0),
                "{filter} {update}"
            );
        }
    }
    assert_eq!(c.changes_since(0, 100).unwrap().len(), before);
    assert_eq!(
        c.find_one(json!({})).unwrap(),
        Some(json!({"_id": 1, "a": 1}))
    );
    // Beside a real change, the empty operand is ignored.
    let r = c
        .update_one(json!({"_id": 1}), json!({"$set": {}, "$inc": {"a": 1}}))
        .unwrap();
    assert_eq!(r.modified_count, 1);
    assert_eq!(
        c.find_one(json!({})).unwrap(),
        Some(json!({"_id": 1, "a": 2}))
    );
    // An upsert with only an empty operand inserts the seed.
    let r = c
        .update_one_with(
            json!({"_id": 5}),
            json!({"$set": {}}),
            &UpdateOptions::upsert(),
        )
        .unwrap();
    assert_eq!(r.upserted_id, Some(json!(5)));
}

/// MongoDB's replacement keeps `_id` immutable by value comparison
/// (`compareWithBSONElement`): replacing `_id: 1` by `1.0` is allowed and stores `1.0`
/// (the same canonical key, so the document keeps its identity). `{$set: {_id: 1.0}}`
/// remains an error there (`SetNode` compares bytes and type, and any change of `_id` is
/// refused).
#[test]
fn replacing_id_by_a_numerically_equal_value() {
    let (_db, c) = collection(json!([{"_id": 1, "a": 1}]));
    let r = c
        .replace_one(json!({"_id": 1}), json!({"_id": 1.0, "y": 3}))
        .unwrap();
    assert_eq!((r.matched_count, r.modified_count), (1, 1));
    let stored = c.find_one(json!({"_id": 1})).unwrap().unwrap();
    assert_eq!(
        serde_json::to_string(&stored).unwrap(),
        r#"{"_id":1.0,"y":3}"#
    );
    assert_eq!(c.count_documents(json!({})).unwrap(), 1);
    let ops: Vec<ChangeOp> = c
        .changes_since(0, 100)
        .unwrap()
        .iter()
        .map(|ch| ch.op)
        .collect();
    assert_eq!(ops, [ChangeOp::Insert, ChangeOp::Replace]);
    // A different value is still refused.
    assert!(c.replace_one(json!({"_id": 1}), json!({"_id": 2})).is_err());
    assert!(c
        .replace_one(json!({"_id": 1}), json!({"_id": "1"}))
        .is_err());
    // $set compares with the type: an error, as in MongoDB.
    let (_db, c) = collection(json!([{"_id": 1, "a": 1}]));
    assert!(c
        .update_one(json!({"_id": 1}), json!({"$set": {"_id": 1.0}}))
        .is_err());
    // An upsert replacement may restate the seeded `_id` in another numeric type.
    let (_db, c) = collection(json!([]));
    c.replace_one_with(json!({"_id": 7}), json!({"_id": 7.0, "b": 1}), true)
        .unwrap();
    assert_eq!(
        c.find_one(json!({"_id": 7})).unwrap().unwrap()["b"],
        json!(1)
    );
}
