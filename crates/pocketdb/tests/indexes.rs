//! Secondary indexes through the public API: creation and catalog, SQLite's use of the
//! expression indexes (checked with EXPLAIN QUERY PLAN, never by timing), multikey side
//! tables, unique constraints, TTL, hints.

use pocketdb::{
    ChangeOp, Database, Error, Explain, IndexBuildPhase, IndexModel, IndexOptions,
    InsertManyOptions, Options,
};
use serde_json::{json, Value};
use std::time::Duration;

fn seeded(n: i64) -> (Database, pocketdb::Collection<Value>) {
    let db = Database::memory().unwrap();
    let c = db.collection::<Value>("users");
    let docs: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "_id": i,
                "email": format!("u{i}@x.io"),
                "age": i % 50,
                "status": if i % 2 == 0 { "a" } else { "b" },
                "tags": [format!("t{}", i % 5), "all"],
                "items": [{"sku": format!("S{i}")}, {"sku": format!("K{}", i % 3)}],
            })
        })
        .collect();
    c.insert_many(docs).unwrap();
    (db, c)
}

fn explain(c: &pocketdb::Collection<Value>, f: Value, sort: Option<Value>, limit: i64) -> Explain {
    let mut cur = c.find(f).unwrap().limit(limit);
    if let Some(s) = sort {
        cur = cur.sort(s);
    }
    cur.explain().unwrap()
}

fn ids(c: &pocketdb::Collection<Value>, f: Value) -> Vec<Value> {
    let mut v: Vec<Value> = c
        .find(f)
        .unwrap()
        .map(|d| d.unwrap()["_id"].clone())
        .collect();
    v.sort_by(pocketdb::value::compare_values);
    v
}

fn no_sort_step(e: &Explain) -> bool {
    !e.sqlite_plan.iter().any(|l| l.contains("TEMP B-TREE"))
}

#[test]
fn create_list_drop() {
    let (_db, c) = seeded(10);
    assert_eq!(
        c.create_index(json!({"email": 1}), IndexOptions::default())
            .unwrap(),
        "email_1"
    );
    // Identical creation is a no-op; same name with other keys is an error.
    assert_eq!(
        c.create_index(json!({"email": 1}), IndexOptions::default())
            .unwrap(),
        "email_1"
    );
    let err = c
        .create_index(json!({"age": 1}), IndexOptions::default().name("email_1"))
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidIndex { ref name, .. } if name == "email_1"),
        "{err}"
    );
    let names = c
        .create_indexes(&[
            IndexModel::new(json!({"status": 1, "age": -1})),
            IndexModel::new(json!({"tags": 1}))
                .with_options(IndexOptions::default().name("by_tag")),
        ])
        .unwrap();
    assert_eq!(names, ["status_1_age_-1", "by_tag"]);
    let list = c.list_indexes().unwrap();
    let listed: Vec<&str> = list.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(listed, ["_id_", "email_1", "status_1_age_-1", "by_tag"]);
    assert!(list[3].multikey && !list[1].multikey);
    assert_eq!(list[2].to_json()["key"], json!({"status": 1, "age": -1}));
    // Bad input gets typed errors.
    assert!(matches!(
        c.create_index(json!({"a": "text"}), IndexOptions::default()),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        c.create_index(json!({"a.0": 1}), IndexOptions::default()),
        Err(Error::InvalidName { kind: "field", .. })
    ));
    assert!(matches!(
        c.create_index(
            json!({"a": 1}),
            IndexOptions::default().name("x\"; DROP TABLE")
        ),
        Err(Error::InvalidName { kind: "index", .. })
    ));
    assert!(c
        .create_index(
            json!({"a": 1, "b": 1}),
            IndexOptions::default().expire_after_seconds(5)
        )
        .is_err());
    assert_eq!(
        c.create_index(json!({"_id": 1}), IndexOptions::default())
            .unwrap(),
        "_id_"
    );
    // Drop.
    assert!(matches!(
        c.drop_index("nope"),
        Err(Error::IndexNotFound { .. })
    ));
    assert!(c.drop_index("_id_").is_err());
    c.drop_index("email_1").unwrap();
    c.drop_index(r#"{"tags":1}"#).unwrap();
    assert_eq!(c.drop_indexes().unwrap(), 1);
    assert_eq!(c.list_indexes().unwrap().len(), 1);
    // Queries still work without indexes.
    assert_eq!(ids(&c, json!({"tags": "t1"})).len(), 2);
}

#[test]
fn expression_indexes_serve_equality_ranges_in_regex_and_sorts() {
    let (_db, c) = seeded(300);
    c.create_index(json!({"email": 1}), IndexOptions::default())
        .unwrap();
    c.create_index(json!({"age": 1}), IndexOptions::default())
        .unwrap();
    c.create_index(json!({"status": 1, "age": -1}), IndexOptions::default())
        .unwrap();

    let e = explain(&c, json!({"email": "u5@x.io"}), None, 0);
    assert_eq!(e.index.as_deref(), Some("email_1"), "{e:#?}");
    assert!(e.exact && !e.filtered_in_memory);
    assert!(e.sqlite_plan[0].starts_with("SEARCH"), "{e:#?}");

    let e = explain(
        &c,
        json!({"email": {"$in": ["u5@x.io", "u7@x.io"]}}),
        None,
        0,
    );
    assert_eq!(e.index.as_deref(), Some("email_1"), "{e:#?}");

    let e = explain(&c, json!({"email": {"$regex": "^u1"}}), None, 0);
    assert_eq!(e.index.as_deref(), Some("email_1"), "{e:#?}");
    assert!(
        e.sqlite_plan[0].contains("<expr>>?") && e.sqlite_plan[0].contains("<expr><?"),
        "{e:#?}"
    );
    assert_eq!(ids(&c, json!({"email": {"$regex": "^u1"}})).len(), 111);

    let e = explain(&c, json!({"age": {"$gte": 10, "$lt": 12}}), None, 0);
    assert_eq!(e.index.as_deref(), Some("age_1"), "{e:#?}");
    assert_eq!(ids(&c, json!({"age": {"$gte": 10, "$lt": 12}})).len(), 12);

    // Range + sort + limit: streamed from the index, no sort step.
    let e = explain(&c, json!({"age": {"$gt": 10}}), Some(json!({"age": 1})), 20);
    assert_eq!(e.index.as_deref(), Some("age_1"), "{e:#?}");
    assert!(
        e.sort_in_sql && !e.sorted_in_memory && no_sort_step(&e),
        "{e:#?}"
    );
    let e = explain(&c, json!({}), Some(json!({"age": -1})), 5);
    assert!(e.sort_in_sql && no_sort_step(&e), "{e:#?}");
    // Equality on the compound index's first key, sort on its second.
    let e = explain(&c, json!({"status": "a"}), Some(json!({"age": -1})), 20);
    assert_eq!(e.index.as_deref(), Some("status_1_age_-1"), "{e:#?}");
    assert!(no_sort_step(&e), "{e:#?}");
    let got: Vec<Value> = c
        .find(json!({"status": "a"}))
        .unwrap()
        .sort(json!({"age": -1}))
        .limit(3)
        .map(|d| d.unwrap()["age"].clone())
        .collect();
    assert_eq!(got, [json!(48), json!(48), json!(48)]);

    // An unindexed field is a collection scan.
    let e = explain(&c, json!({"name": "x"}), None, 0);
    assert_eq!(e.index, None);
    assert!(!e.sqlite_plan[0].contains("USING INDEX"), "{e:#?}");
    // `_id` equality uses the primary key.
    assert_eq!(
        explain(&c, json!({"_id": 3}), None, 0).index.as_deref(),
        Some("_id_")
    );
    // The JSON form names the index.
    assert_eq!(
        explain(&c, json!({"email": "x"}), None, 0).to_json()["index"],
        "email_1"
    );
}

#[test]
fn sorts_stay_in_memory_where_sql_would_order_wrongly() {
    let db = Database::memory().unwrap();
    let c = db.collection::<Value>("c");
    c.insert_many([
        json!({"_id": 1, "v": 2}),
        json!({"_id": 2, "v": "a"}),
        json!({"_id": 3}),
    ])
    .unwrap();
    c.create_index(json!({"v": 1}), IndexOptions::default())
        .unwrap();
    assert!(explain(&c, json!({}), Some(json!({"v": 1})), 2).sort_in_sql);
    // A boolean sorts after strings in MongoDB but as 1 in SQLite.
    c.insert_one(json!({"_id": 4, "v": true})).unwrap();
    let e = explain(&c, json!({}), Some(json!({"v": 1})), 2);
    assert!(!e.sort_in_sql && e.sorted_in_memory, "{e:#?}");
    let order: Vec<Value> = c
        .find(json!({}))
        .unwrap()
        .sort(json!({"v": -1}))
        .map(|d| d.unwrap()["_id"].clone())
        .collect();
    assert_eq!(order, [json!(4), json!(2), json!(1), json!(3)]);
}

#[test]
fn multikey_indexes_use_the_side_table() {
    let (_db, c) = seeded(200);
    c.create_index(json!({"tags": 1}), IndexOptions::default())
        .unwrap();
    c.create_index(json!({"items.sku": 1}), IndexOptions::default())
        .unwrap();
    for (f, n) in [
        (json!({"tags": "t1"}), 40),
        (json!({"tags": {"$in": ["t1", "t2"]}}), 80),
        (json!({"items.sku": "S5"}), 1),
        (json!({"items.sku": {"$regex": "^K"}}), 200),
        (json!({"tags": {"$all": ["t1", "all"]}}), 40),
        (json!({"tags": {"$elemMatch": {"$gte": "t3"}}}), 80),
    ] {
        let e = explain(&c, f.clone(), None, 0);
        assert!(e.index.is_some(), "{f}: {e:#?}");
        assert!(
            e.sqlite_plan.iter().any(|l| l.contains("pocketdb_m")),
            "{f}: {e:#?}"
        );
        assert_eq!(ids(&c, f.clone()).len(), n, "{f}");
    }
    // Kept in step by updates and deletes.
    c.update_one(json!({"_id": 1}), json!({"$set": {"tags": ["zz"]}}))
        .unwrap();
    assert_eq!(ids(&c, json!({"tags": "zz"})), [json!(1)]);
    assert_eq!(ids(&c, json!({"tags": "t1"})).len(), 39);
    c.delete_one(json!({"_id": 1})).unwrap();
    assert!(ids(&c, json!({"tags": "zz"})).is_empty());
    c.replace_one(json!({"_id": 2}), json!({"tags": "solo"}))
        .unwrap();
    assert_eq!(ids(&c, json!({"tags": "solo"})), [json!(2)]);
}

#[test]
fn multikey_flag_turns_on_inside_the_writing_transaction() {
    let db = Database::memory().unwrap();
    let c = db.collection::<Value>("c");
    c.insert_many([json!({"_id": 1, "t": "x"}), json!({"_id": 2, "t": "y"})])
        .unwrap();
    c.create_index(json!({"t": 1}), IndexOptions::default())
        .unwrap();
    assert!(!c.list_indexes().unwrap()[1].multikey);
    assert!(explain(&c, json!({"t": "x"}), None, 0).sqlite_plan[0].contains("pocketdb_x"));
    // A failing all-or-nothing update rolls the flag back with it.
    c.insert_one(json!({"_id": 3, "t": "z", "n": "text"}))
        .unwrap();
    let err = c
        .update_many(
            json!({}),
            json!({"$set": {"t": ["x", "q"]}, "$inc": {"n": 1}}),
        )
        .unwrap_err();
    assert!(matches!(err, Error::InvalidUpdate { .. }), "{err}");
    assert!(!c.list_indexes().unwrap()[1].multikey);
    assert_eq!(ids(&c, json!({"t": "q"})), Vec::<Value>::new());
    // A successful write flips it, and the array document is found through the index.
    c.insert_one(json!({"_id": 4, "t": ["x", "q"]})).unwrap();
    assert!(c.list_indexes().unwrap()[1].multikey);
    assert_eq!(ids(&c, json!({"t": "x"})), [json!(1), json!(4)]);
    assert_eq!(ids(&c, json!({"t": "q"})), [json!(4)]);
    let e = explain(&c, json!({"t": "x"}), None, 0);
    assert!(
        e.sqlite_plan.iter().any(|l| l.contains("pocketdb_m")),
        "{e:#?}"
    );
}

#[test]
fn type_brackets_hold_through_the_side_table() {
    let db = Database::memory().unwrap();
    let c = db.collection::<Value>("c");
    c.insert_many([
        json!({"_id": 1, "v": [1, "1"]}),
        json!({"_id": 2, "v": [true]}),
        json!({"_id": 3, "v": [1.0, null]}),
        json!({"_id": 4, "v": []}),
        json!({"_id": 5}),
        json!({"_id": 6, "v": [{"a": 1}]}),
    ])
    .unwrap();
    c.create_index(json!({"v": 1}), IndexOptions::default())
        .unwrap();
    assert_eq!(ids(&c, json!({"v": 1})), [json!(1), json!(3)]);
    assert_eq!(ids(&c, json!({"v": true})), [json!(2)]);
    assert_eq!(ids(&c, json!({"v": "1"})), [json!(1)]);
    assert_eq!(ids(&c, json!({"v": null})), [json!(3), json!(5)]);
    assert_eq!(ids(&c, json!({"v": {"$gt": 0}})), [json!(1), json!(3)]);
    assert_eq!(ids(&c, json!({"v": {"a": 1}})), [json!(6)]);
    assert_eq!(ids(&c, json!({"v": []})), [json!(4)]);
}

#[test]
fn unique_indexes_follow_mongodb() {
    let db = Database::memory().unwrap();
    let c = db.collection::<Value>("c");
    c.create_index(json!({"email": 1}), IndexOptions::default().unique(true))
        .unwrap();
    c.insert_one(json!({"_id": 1, "email": "a@x"})).unwrap();
    let err = c.insert_one(json!({"_id": 2, "email": "a@x"})).unwrap_err();
    match &err {
        Error::DuplicateKey {
            index,
            key,
            collection,
        } => {
            assert_eq!(index, "email_1");
            assert_eq!(collection, "c");
            assert_eq!(key, r#"{ email: "a@x" }"#);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.code(), 11000);
    // Missing counts as null: only one document may lack the field.
    c.insert_one(json!({"_id": 3})).unwrap();
    assert!(matches!(
        c.insert_one(json!({"_id": 4})),
        Err(Error::DuplicateKey { .. })
    ));
    assert!(matches!(
        c.insert_one(json!({"_id": 4, "email": null})),
        Err(Error::DuplicateKey { .. })
    ));
    // 1 and 1.0 collide, true and 1 do not.
    c.insert_one(json!({"_id": 5, "email": 1})).unwrap();
    assert!(c.insert_one(json!({"_id": 6, "email": 1.0})).is_err());
    c.insert_one(json!({"_id": 7, "email": true})).unwrap();
    // Updates are checked too, and a failed update changes nothing.
    let err = c
        .update_one(json!({"_id": 7}), json!({"$set": {"email": "a@x"}}))
        .unwrap_err();
    assert!(matches!(err, Error::DuplicateKey { .. }));
    assert_eq!(
        c.find_one(json!({"_id": 7})).unwrap().unwrap()["email"],
        true
    );
    c.update_one(json!({"_id": 1}), json!({"$set": {"n": 1}}))
        .unwrap();
    // Arrays: every element is a key, across documents.
    c.insert_one(json!({"_id": 8, "email": ["p", "q"]}))
        .unwrap();
    assert!(c
        .insert_one(json!({"_id": 9, "email": ["r", "q"]}))
        .is_err());
    assert!(c.insert_one(json!({"_id": 9, "email": "p"})).is_err());
    assert!(c.insert_one(json!({"_id": 9, "email": "a@x"})).is_err());
    c.insert_one(json!({"_id": 9, "email": ["p2", "p2"]}))
        .unwrap();
    // insert_many reports the failing positions.
    let Err(Error::BulkWrite(f)) = c.insert_many_with(
        [
            json!({"_id": 10, "email": "new"}),
            json!({"_id": 11, "email": "new"}),
        ],
        pocketdb::InsertManyOptions { ordered: false },
    ) else {
        panic!("expected a bulk write error")
    };
    assert_eq!(f.write_errors[0].index, 1);
}

#[test]
fn unique_compound_sparse_and_partial() {
    let db = Database::memory().unwrap();
    let c = db.collection::<Value>("c");
    c.create_index(
        json!({"a": 1, "b": 1}),
        IndexOptions::default().unique(true),
    )
    .unwrap();
    c.insert_one(json!({"a": 1, "b": 1})).unwrap();
    c.insert_one(json!({"a": 1, "b": 2})).unwrap();
    c.insert_one(json!({"a": 1})).unwrap();
    let err = c.insert_one(json!({"a": 1, "b": null})).unwrap_err();
    assert!(
        matches!(err, Error::DuplicateKey { ref key, .. } if key == "{ a: 1, b: null }"),
        "{err}"
    );

    let s = db.collection::<Value>("s");
    s.create_index(
        json!({"x": 1}),
        IndexOptions::default().unique(true).sparse(true),
    )
    .unwrap();
    s.insert_many([
        json!({"_id": 1}),
        json!({"_id": 2}),
        json!({"_id": 3, "x": null}),
    ])
    .unwrap();
    assert!(s.insert_one(json!({"x": null})).is_err());

    let p = db.collection::<Value>("p");
    p.create_index(
        json!({"email": 1}),
        IndexOptions::default()
            .unique(true)
            .partial_filter_expression(json!({"active": true})),
    )
    .unwrap();
    p.insert_many([
        json!({"email": "a", "active": false}),
        json!({"email": "a", "active": false}),
        json!({"email": "a", "active": true}),
    ])
    .unwrap();
    assert!(p.insert_one(json!({"email": "a", "active": true})).is_err());
    assert_eq!(p.count_documents(json!({"email": "a"})).unwrap(), 3);
}

/// Builds a unique index with `options` on `keys` over `docs`; the repeated key it
/// reports, if any.
fn unique_build(docs: &[Value], keys: Value, options: IndexOptions) -> Option<String> {
    let db = Database::memory().unwrap();
    let c = db.collection::<Value>("u");
    for (i, d) in docs.iter().enumerate() {
        let mut d = d.clone();
        d["_id"] = json!(i);
        c.insert_one(d).unwrap();
    }
    match c.create_index(keys, options.unique(true)) {
        Ok(_) => {
            assert_eq!(c.list_indexes().unwrap().len(), 2);
            None
        }
        Err(Error::DuplicateKey { key, .. }) => {
            assert_eq!(c.list_indexes().unwrap().len(), 1);
            Some(key)
        }
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn unique_builds_compare_keys_as_mongodb_does() {
    let plain = IndexOptions::default;
    let a = || json!({"a": 1});
    // Numbers equal across integer and double, null equal to missing.
    for (docs, key) in [
        (vec![json!({"a": 1}), json!({"a": 1.0})], "{ a: 1.0 }"),
        (vec![json!({"a": -0.0}), json!({"a": 0})], "{ a: 0 }"),
        (vec![json!({"b": 1}), json!({"b": 2})], "{ a: null }"),
        (vec![json!({"a": null}), json!({"b": 2})], "{ a: null }"),
        (
            vec![json!({"a": "x"}), json!({"a": "y"}), json!({"a": "x"})],
            r#"{ a: "x" }"#,
        ),
    ] {
        assert_eq!(
            unique_build(&docs, a(), plain()).as_deref(),
            Some(key),
            "{docs:?}"
        );
    }
    // Told apart: types, string case, booleans against 1 and 0, documents by content.
    for docs in [
        vec![json!({"a": 1}), json!({"a": "1"})],
        vec![json!({"a": "x"}), json!({"a": "X"})],
        vec![
            json!({"a": true}),
            json!({"a": 1}),
            json!({"a": 0}),
            json!({"a": false}),
        ],
        vec![
            json!({"a": {"x": 1}}),
            json!({"a": {"x": 2}}),
            json!({"a": "{\"x\":1}"}),
        ],
        vec![json!({"a": 1}), json!({"a": 1.5}), json!({"a": null})],
    ] {
        assert_eq!(unique_build(&docs, a(), plain()), None, "{docs:?}");
    }
    // Flags send the build through the scan, which still finds repeats.
    let mixed = vec![json!({"a": true}), json!({"a": "s"}), json!({"a": true})];
    assert_eq!(
        unique_build(&mixed, a(), plain()).as_deref(),
        Some("{ a: true }")
    );
    let multikey = vec![json!({"a": [1, 2]}), json!({"a": 2})];
    assert_eq!(
        unique_build(&multikey, a(), plain()).as_deref(),
        Some("{ a: 2 }")
    );
    // Compound keys repeat only as a whole.
    let ab = || json!({"a": 1, "b": 1});
    let docs = vec![
        json!({"a": 1, "b": 1}),
        json!({"a": 1, "b": 2}),
        json!({"a": 2, "b": 1}),
    ];
    assert_eq!(unique_build(&docs, ab(), plain()), None);
    let docs = vec![json!({"a": 1, "b": null}), json!({"a": 1})];
    assert_eq!(
        unique_build(&docs, ab(), plain()).as_deref(),
        Some("{ a: 1, b: null }")
    );
    // Sparse and partial unique indexes skip documents.
    let docs = vec![json!({"b": 1}), json!({"b": 2}), json!({"a": 1})];
    assert_eq!(unique_build(&docs, a(), plain().sparse(true)), None);
    let docs = vec![json!({"a": 1, "on": false}), json!({"a": 1, "on": true})];
    let partial = plain().partial_filter_expression(json!({"on": true}));
    assert_eq!(unique_build(&docs, a(), partial), None);
}

#[test]
fn unique_build_on_duplicates_fails_cleanly() {
    let (db, c) = seeded(50);
    let before = db.last_change_seq().unwrap();
    let mut phases = Vec::new();
    let err = c
        .create_index_with_progress(
            json!({"status": 1}),
            IndexOptions::default().unique(true),
            |p| phases.push(p.phase),
        )
        .unwrap_err();
    assert!(
        matches!(err, Error::DuplicateKey { ref index, ref key, .. } if index == "status_1" && key == r#"{ status: "a" }"#),
        "{err}"
    );
    // Plain values: the repeat is found through the index SQLite built, after sorting.
    assert_eq!(
        phases,
        [
            IndexBuildPhase::Scanning,
            IndexBuildPhase::Scanning,
            IndexBuildPhase::Sorting
        ]
    );
    assert_eq!(c.list_indexes().unwrap().len(), 1);
    assert_eq!(db.last_change_seq().unwrap(), before);
    // Multikey duplicates across documents too.
    assert!(c
        .create_index(json!({"tags": 1}), IndexOptions::default().unique(true))
        .is_err());
    assert_eq!(c.list_indexes().unwrap().len(), 1);
    // A unique index that fits builds, with progress to the end.
    let mut last = None;
    c.create_index_with_progress(
        json!({"email": 1}),
        IndexOptions::default().unique(true),
        |p| last = Some(p),
    )
    .unwrap();
    let last = last.unwrap();
    assert_eq!(
        (last.phase, last.done, last.total),
        (IndexBuildPhase::Done, 50, 50)
    );
}

#[test]
fn ttl_expires_documents_into_the_change_log() {
    let db = Database::memory().unwrap();
    let c = db.collection::<Value>("sessions");
    c.insert_many([
        json!({"_id": 1, "at": {"$date": "2000-01-01T00:00:00Z"}}),
        json!({"_id": 2, "at": "2001-01-01T00:00:00+02:00"}),
        json!({"_id": 3, "at": {"$date": {"$numberLong": "978307200000"}}}),
        json!({"_id": 4, "at": {"$date": "2999-01-01T00:00:00Z"}}),
        json!({"_id": 5, "at": 12}),
        json!({"_id": 6, "at": ["2999-01-01T00:00:00Z", "2000-01-01T00:00:00Z"]}),
        json!({"_id": 7}),
    ])
    .unwrap();
    c.create_index(
        json!({"at": 1}),
        IndexOptions::default().expire_after_seconds(3600),
    )
    .unwrap();
    assert_eq!(
        c.list_indexes().unwrap()[1].expire_after_seconds,
        Some(3600)
    );
    let seq = db.last_change_seq().unwrap();
    assert_eq!(c.expire_now().unwrap(), 4);
    assert_eq!(ids(&c, json!({})), [json!(4), json!(5), json!(7)]);
    let log = c.changes_since(seq, 100).unwrap();
    assert_eq!(log.len(), 4);
    assert!(log.iter().all(|ch| ch.op == ChangeOp::Delete));
    assert_eq!(db.expire_now().unwrap(), 0);
}

#[test]
fn ttl_background_pass_runs_on_its_interval() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ttl.sqlite");
    {
        let db = Database::open(&path).unwrap();
        let c = db.collection::<Value>("s");
        c.create_index(
            json!({"at": 1}),
            IndexOptions::default().expire_after_seconds(0),
        )
        .unwrap();
    }
    let db = Database::open_with(
        &path,
        Options::default().ttl_interval(Duration::from_millis(50)),
    )
    .unwrap();
    let c = db.collection::<Value>("s");
    c.insert_one(json!({"at": "2000-01-01T00:00:00Z"})).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while c.count_documents(json!({})).unwrap() > 0 {
        assert!(std::time::Instant::now() < deadline, "TTL pass did not run");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn hint_forces_an_index() {
    let (_db, c) = seeded(100);
    c.create_index(json!({"age": 1}), IndexOptions::default())
        .unwrap();
    c.create_index(json!({"status": 1}), IndexOptions::default())
        .unwrap();
    c.create_index(json!({"tags": 1}), IndexOptions::default())
        .unwrap();
    let f = json!({"age": 3, "status": "b"});
    let hinted = c
        .find(f.clone())
        .unwrap()
        .hint(json!("status_1"))
        .explain()
        .unwrap();
    assert_eq!(hinted.index.as_deref(), Some("status_1"));
    assert!(hinted.sqlite_plan[0].contains("pocketdb_x2"), "{hinted:#?}");
    let by_keys = c
        .find(f.clone())
        .unwrap()
        .hint(json!({"age": 1}))
        .explain()
        .unwrap();
    assert_eq!(by_keys.index.as_deref(), Some("age_1"));
    let n = c.find(f.clone()).unwrap().hint(json!("status_1")).count();
    assert_eq!(n, ids(&c, f).len());
    let e = c
        .find(json!({"tags": "t2"}))
        .unwrap()
        .hint(json!("tags_1"))
        .explain()
        .unwrap();
    assert_eq!(e.index.as_deref(), Some("tags_1"));
    let err = c
        .find(json!({}))
        .unwrap()
        .hint(json!("nope"))
        .next()
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(err, Error::IndexNotFound { ref collection, ref name } if collection == "users" && name == "nope")
    );
}

#[test]
fn indexes_follow_drop_and_rename() {
    let (db, c) = seeded(20);
    c.create_index(json!({"tags": 1}), IndexOptions::default())
        .unwrap();
    c.create_index(json!({"email": 1}), IndexOptions::default().unique(true))
        .unwrap();
    let r = c.rename("people").unwrap();
    assert_eq!(r.list_indexes().unwrap().len(), 3);
    assert!(r.insert_one(json!({"email": "u1@x.io"})).is_err());
    assert_eq!(ids(&r, json!({"tags": "t1"})).len(), 4);
    assert_eq!(c.list_indexes().unwrap().len(), 0);
    r.drop().unwrap();
    let again = db.collection::<Value>("people");
    again.insert_one(json!({"email": "u1@x.io"})).unwrap();
    again.insert_one(json!({"email": "u1@x.io"})).unwrap();
    assert_eq!(again.list_indexes().unwrap().len(), 1);
}

#[test]
fn catalog_changes_are_seen_by_other_handles_of_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.sqlite");
    let a = Database::open(&path).unwrap();
    let b = Database::open(&path).unwrap();
    let ca = a.collection::<Value>("c");
    let cb = b.collection::<Value>("c");
    ca.insert_one(json!({"k": 1})).unwrap();
    assert_eq!(cb.list_indexes().unwrap().len(), 1);
    ca.create_index(json!({"k": 1}), IndexOptions::default().unique(true))
        .unwrap();
    assert!(matches!(
        cb.insert_one(json!({"k": 1})),
        Err(Error::DuplicateKey { .. })
    ));
}

/// Reader connections skip the catalog `SELECT` while SQLite's data version says the
/// file is unchanged since they last read it: every kind of catalog change made through
/// another connection must still reach the next query of this handle.
#[test]
fn the_next_query_sees_index_changes_made_through_another_handle() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.sqlite");
    let a = Database::open(&path).unwrap();
    let b = Database::open(&path).unwrap();
    let ca = a.collection::<Value>("c");
    let cb = b.collection::<Value>("c");
    let docs: Vec<Value> = (0..50)
        .map(|i| json!({"_id": i, "k": i, "tags": format!("t{}", i % 5)}))
        .collect();
    ca.insert_many(docs).unwrap();
    ca.create_index(json!({"tags": 1}), IndexOptions::default())
        .unwrap();
    // Warm `a`'s readers: the catalog is read once and its snapshot remembered.
    for _ in 0..3 {
        assert_eq!(ids(&ca, json!({"tags": "t1"})).len(), 10);
        assert_eq!(ids(&ca, json!({"k": 7})), vec![json!(7)]);
    }

    // Documents written through `b` (the catalog unchanged) are read at once.
    cb.insert_one(json!({"_id": 50, "k": 50, "tags": "t1"}))
        .unwrap();
    assert_eq!(ids(&ca, json!({"tags": "t1"})).len(), 11);
    cb.delete_one(json!({"_id": 50})).unwrap();
    assert_eq!(ids(&ca, json!({"tags": "t1"})).len(), 10);

    // An index created through `b`: `a`'s next query plans with it.
    cb.create_index(json!({"k": 1}), IndexOptions::default())
        .unwrap();
    assert_eq!(
        ca.find(json!({"k": 7}))
            .unwrap()
            .hint(json!("k_1"))
            .to_vec()
            .unwrap(),
        vec![json!({"_id": 7, "k": 7, "tags": "t2"})]
    );
    assert_eq!(
        explain(&ca, json!({"k": 7}), None, 0).index.as_deref(),
        Some("k_1")
    );

    // `tags` turns multikey through `b`: a plan compiled while the path held no array
    // (no array branches) would miss the new document.
    cb.insert_one(json!({"_id": 100, "k": 100, "tags": ["t1", "x"]}))
        .unwrap();
    let found = ids(&ca, json!({"tags": "t1"}));
    assert_eq!(found.len(), 11);
    assert!(found.contains(&json!(100)));
    assert_eq!(ids(&ca, json!({"tags": "x"})), vec![json!(100)]);

    // Dropped through `b`: a hint naming it is refused, not run with a stale plan.
    cb.drop_index("k_1").unwrap();
    assert!(matches!(
        ca.find(json!({"k": 7}))
            .unwrap()
            .hint(json!("k_1"))
            .to_vec(),
        Err(Error::IndexNotFound { .. })
    ));
    assert_eq!(ids(&ca, json!({"k": 7})), vec![json!(7)]);
}

/// The same through SQL run on a plain SQLite connection to the file: the catalog row
/// and `index_gen` changed by hand are seen by the next query.
#[test]
fn the_next_query_sees_catalog_changes_made_in_sql() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.sqlite");
    let db = Database::open(&path).unwrap();
    let c = db.collection::<Value>("c");
    c.insert_many(
        (0..20)
            .map(|i| json!({"_id": i, "k": i}))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    c.create_index(json!({"k": 1}), IndexOptions::default().name("by_k"))
        .unwrap();
    for _ in 0..3 {
        let hinted = c.find(json!({"k": 3})).unwrap().hint(json!("by_k"));
        assert_eq!(hinted.to_vec().unwrap().len(), 1);
    }
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute_batch(
        "UPDATE _pocketdb_indexes SET name = 'renamed' WHERE name = 'by_k';
         UPDATE _pocketdb_meta SET value = 'changed by hand' WHERE key = 'index_gen';",
    )
    .unwrap();
    drop(raw);
    assert!(matches!(
        c.find(json!({"k": 3}))
            .unwrap()
            .hint(json!("by_k"))
            .to_vec(),
        Err(Error::IndexNotFound { .. })
    ));
    let hinted = c.find(json!({"k": 3})).unwrap().hint(json!("renamed"));
    assert_eq!(hinted.to_vec().unwrap(), vec![json!({"_id": 3, "k": 3})]);
    assert_eq!(
        explain(&c, json!({"k": 3}), None, 0).index.as_deref(),
        Some("renamed")
    );
}

#[test]
fn a_document_with_too_many_multikey_keys_is_refused_before_it_is_stored() {
    let db = Database::memory().unwrap();
    let c = db.collection::<Value>("c");
    c.create_index(json!({"arr": 1, "other": 1}), IndexOptions::default())
        .unwrap();
    c.insert_one(json!({"_id": 0, "arr": [1, 2], "other": 1}))
        .unwrap();
    // One array: a key per element, however many (as in MongoDB).
    let big: Vec<Value> = (0..20_000).map(|i| json!(i)).collect();
    c.insert_one(json!({"_id": 9, "arr": big.clone(), "other": 1}))
        .unwrap();
    assert_eq!(
        c.count_documents(json!({"arr": 19_999, "other": 1}))
            .unwrap(),
        1
    );
    // Two arrays: their product (200 x 200) is past the limit.
    let wide: Vec<Value> = (0..200).map(|i| json!(i)).collect();
    let r = c.insert_many_with(
        [
            json!({"_id": 1, "arr": wide.clone(), "other": wide.clone()}),
            json!({"_id": 2, "arr": [3], "other": wide.clone()}),
        ],
        InsertManyOptions { ordered: false },
    );
    let Err(Error::BulkWrite(failure)) = r else {
        panic!("expected a bulk write failure, got {r:?}");
    };
    assert_eq!(failure.write_errors.len(), 1);
    assert_eq!(failure.write_errors[0].index, 0);
    assert!(matches!(
        failure.write_errors[0].error,
        Error::InvalidDocument(_)
    ));
    assert_eq!(failure.inserted_ids, vec![(1, json!(2))]);
    // The failed document is not stored, and an update that would blow the limit
    // leaves the document as it was.
    assert_eq!(c.count_documents(json!({"_id": 1})).unwrap(), 0);
    assert!(c
        .update_one(
            json!({"_id": 0}),
            json!({"$set": {"arr": wide.clone(), "other": wide}})
        )
        .is_err());
    assert_eq!(
        c.find_one(json!({"_id": 0})).unwrap(),
        Some(json!({"_id": 0, "arr": [1, 2], "other": 1}))
    );
    // Documents 0 and 9 hold 2; the refused update left 0's keys as they were.
    assert_eq!(c.count_documents(json!({"arr": 2, "other": 1})).unwrap(), 2);
    assert_eq!(c.count_documents(json!({"arr": 150})).unwrap(), 1);
}

#[test]
fn an_insert_repeating_its_id_and_a_unique_key_is_refused_for_its_id() {
    let db = Database::memory().unwrap();
    let c = db.collection::<Value>("users");
    c.create_index(json!({"email": 1}), IndexOptions::default().unique(true))
        .unwrap();
    c.insert_one(json!({"_id": 1, "email": "x"})).unwrap();
    let index_of = |r: pocketdb::Result<pocketdb::InsertOneResult>| match r {
        Err(pocketdb::Error::DuplicateKey { index, .. }) => index,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        index_of(c.insert_one(json!({"_id": 1, "email": "x"}))),
        "_id_"
    );
    assert_eq!(
        index_of(c.insert_one(json!({"_id": 2, "email": "x"}))),
        "email_1"
    );
    assert_eq!(
        index_of(c.insert_one(json!({"_id": 1, "email": "y"}))),
        "_id_"
    );
}

/// Updates of a long indexed array change only the keys that came or went; the side
/// table must end up as a fresh insert of the final document would leave it.
#[test]
fn long_multikey_arrays_keep_their_keys_through_updates() {
    let db = Database::memory().unwrap();
    let updated = db.collection::<Value>("updated");
    let fresh = db.collection::<Value>("fresh");
    for c in [&updated, &fresh] {
        c.create_index(json!({"tags": 1}), IndexOptions::default())
            .unwrap();
    }
    let mut tags: Vec<Value> = (0..40).map(|i| json!(i)).collect();
    tags.extend([
        json!(1.0),
        json!("a"),
        json!("a"),
        json!({"k": 1}),
        json!([1, 2]),
    ]);
    updated.insert_one(json!({"_id": 1, "tags": tags})).unwrap();
    for update in [
        json!({"$push": {"tags": 40}}),
        json!({"$pull": {"tags": {"$in": [3, 4, "a"]}}}),
        json!({"$addToSet": {"tags": {"$each": [41, 5, 42]}}}),
        json!({"$pop": {"tags": -1}}),
        json!({"$push": {"tags": {"$each": [1.5, 1.5, null]}}}),
    ] {
        updated.update_one(json!({"_id": 1}), update).unwrap();
    }
    let last = updated.find_one(json!({"_id": 1})).unwrap().unwrap();
    fresh.insert_one(last.clone()).unwrap();
    let side = |name: &str| {
        let ident = db
            .sql(
                "SELECT ident FROM _pocketdb_indexes WHERE collection = ?1",
                &[json!(name)],
            )
            .unwrap()[0]["ident"]
            .clone();
        let rows = db
            .sql(
                &format!("SELECT t0, v0 FROM pocketdb_m{ident} ORDER BY t0, v0"),
                &[],
            )
            .unwrap();
        rows.into_iter()
            .map(|r| (r["t0"].clone(), r["v0"].clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(side("updated"), side("fresh"));
    assert!(side("updated").len() > 40);
    for (probe, present) in [
        (json!(0), false),
        (json!(3), false),
        (json!("a"), false),
        (json!(40), true),
        (json!(42), true),
        (json!(1.5), true),
        (json!(null), true),
        (json!(1), true),
    ] {
        let n = updated.count_documents(json!({"tags": probe})).unwrap();
        assert_eq!(n, u64::from(present), "tags: {probe}");
    }
}
