//! Generated, mostly malformed filters, updates, pipelines, sorts, projections and index
//! specifications against a small collection: each call returns a result or a typed
//! error, never a panic, and a refused write leaves the documents as they were.

use pocketdb::{Collection, Database, IndexOptions};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

/// Names that are neither fields of the documents nor operators of the other lists.
const ODD_KEYS: &[&str] = &[
    "a.$",
    "a.$[]",
    "a.$[x]",
    "",
    ".",
    "a..b",
    "$",
    "$options",
    "$and",
    "$or",
    "$nor",
    "$expr",
    "$where",
    "$text",
    "$each",
    "$slice",
    "$position",
    "$bit",
    "$group",
    "$lookup",
    "$sum",
    "$avg",
    "$first",
    "$cond",
    "$concat",
    "$add",
    "$divide",
    "$date",
    "$numberLong",
];

/// Field names and operators a query, update or stage may use, and some it may not.
fn keys() -> Vec<&'static str> {
    [FIELDS, QUERY_OPS, UPDATE_OPS, STAGES, ODD_KEYS].concat()
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        prop_oneof![
            Just(0i64),
            Just(-1),
            Just(1),
            Just(2),
            Just(i64::MAX),
            Just(i64::MIN)
        ]
        .prop_map(|i| json!(i)),
        (-1e300f64..1e300).prop_map(|f| json!(f)),
        prop::sample::select(keys()).prop_map(|k| json!(k)),
        prop::sample::select(
            &["", "$a", "$$ROOT", "a(", "[", "\\", "é", "\u{0}", ".*", "int", "array", "date"][..]
        )
        .prop_map(|s| json!(s)),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 40, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(keys()), inner), 0..4).prop_map(|kv| {
                Value::Object(
                    kv.into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect::<Map<String, Value>>(),
                )
            }),
        ]
    })
}

const FIELDS: &[&str] = &["a", "b", "a.b", "a.0", "tags", "tags.1", "_id", "x.y.z"];
const QUERY_OPS: &[&str] = &[
    "$eq",
    "$ne",
    "$gt",
    "$gte",
    "$lt",
    "$lte",
    "$in",
    "$nin",
    "$exists",
    "$type",
    "$size",
    "$all",
    "$elemMatch",
    "$regex",
    "$not",
    "$mod",
];
const UPDATE_OPS: &[&str] = &[
    "$set",
    "$unset",
    "$inc",
    "$mul",
    "$min",
    "$max",
    "$rename",
    "$push",
    "$pull",
    "$pullAll",
    "$addToSet",
    "$pop",
    "$currentDate",
    "$setOnInsert",
];
const STAGES: &[&str] = &[
    "$match",
    "$group",
    "$project",
    "$unwind",
    "$limit",
    "$skip",
    "$count",
    "$addFields",
    "$sort",
    "$replaceRoot",
    "$set",
    "$unset",
];

/// A filter shaped like one: fields with values or operator documents, `$and`/`$or`.
fn filter() -> impl Strategy<Value = Value> {
    let condition = prop_oneof![
        value(),
        (prop::sample::select(QUERY_OPS), value()).prop_map(|(op, v)| json!({ op: v })),
    ];
    let clause = prop::collection::vec((prop::sample::select(FIELDS), condition), 0..3)
        .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()));
    prop_oneof![
        3 => clause.clone(),
        1 => (prop::sample::select(&["$and", "$or", "$nor"][..]), prop::collection::vec(clause, 0..3))
            .prop_map(|(op, list)| json!({ op: list })),
        1 => value(),
    ]
}

/// An update shaped like one: operators over fields, or a replacement, or a pipeline.
fn update() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => prop::collection::vec(
            (
                prop::sample::select(UPDATE_OPS),
                prop::collection::vec((prop::sample::select(FIELDS), value()), 1..3),
            ),
            1..3,
        )
        .prop_map(|ops| {
            Value::Object(
                ops.into_iter()
                    .map(|(op, fields)| {
                        let fields: Map<String, Value> =
                            fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
                        (op.to_string(), Value::Object(fields))
                    })
                    .collect(),
            )
        }),
        1 => pipeline(),
        1 => value(),
    ]
}

/// A pipeline shaped like one: stages with generated arguments.
fn pipeline() -> impl Strategy<Value = Value> {
    prop::collection::vec((prop::sample::select(STAGES), value()), 0..4)
        .prop_map(|stages| Value::Array(stages.into_iter().map(|(s, v)| json!({ s: v })).collect()))
}

fn collection() -> (Database, Collection<Value>) {
    let db = Database::memory().unwrap();
    let c = db.collection::<Value>("c");
    c.insert_many([
        json!({"_id": 1, "a": 1, "b": "x", "tags": ["p", "q"]}),
        json!({"_id": 2, "a": [1, {"b": 2}], "tags": []}),
        json!({"_id": 3, "a": {"b": [3, 4]}, "b": null}),
        json!({"_id": 4}),
    ])
    .unwrap();
    c.create_index(json!({"a": 1}), IndexOptions::default())
        .unwrap();
    (db, c)
}

/// Cases per property: 256, or `PROPTEST_CASES` for a longer run.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(256)
}

fn all(c: &Collection<Value>) -> Vec<Value> {
    c.find(json!({}))
        .unwrap()
        .sort(json!({"_id": 1}))
        .to_vec()
        .unwrap()
}

const COMMANDS: &[&str] = &[
    "ping",
    "insert",
    "find",
    "update",
    "delete",
    "count",
    "distinct",
    "findAndModify",
    "create",
    "drop",
    "listCollections",
    "aggregate",
    "createIndexes",
    "listIndexes",
    "dropIndexes",
    "explain",
    "frobnicate",
];
const COMMAND_FIELDS: &[&str] = &[
    "filter",
    "documents",
    "updates",
    "deletes",
    "q",
    "u",
    "limit",
    "multi",
    "upsert",
    "query",
    "update",
    "remove",
    "new",
    "sort",
    "projection",
    "pipeline",
    "cursor",
    "indexes",
    "key",
    "name",
    "index",
    "skip",
    "batchSize",
    "ordered",
    "verbosity",
];

/// A command document: the command with a collection name (or not), then fields.
fn command() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(COMMANDS),
        prop_oneof![Just(json!("c")), Just(json!("new")), scalar()],
        prop::collection::vec(
            (
                prop::sample::select(COMMAND_FIELDS),
                prop_oneof![value(), filter(), update(), pipeline()],
            ),
            0..4,
        ),
    )
        .prop_map(|(name, target, fields)| {
            let mut m = Map::new();
            m.insert(name.to_string(), target);
            for (k, v) in fields {
                m.insert(k.to_string(), v);
            }
            Value::Object(m)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn commands_always_reply(cmd in command(), raw in value()) {
        let (db, _c) = collection();
        for c in [cmd, raw] {
            let reply = pocketdb::command::run_command(&db, &c);
            let ok = reply.get("ok").and_then(Value::as_f64);
            prop_assert!(ok == Some(1.0) || ok == Some(0.0), "{} -> {}", c, reply);
        }
    }

    #[test]
    fn reads_never_panic(filter in filter(), spec in value(), pipeline in pipeline()) {
        let (_db, c) = collection();
        let _ = c.find(filter.clone()).and_then(|cur| cur.to_vec());
        let _ = c.find(json!({})).and_then(|cur| cur.sort(spec.clone()).limit(2).to_vec());
        let _ = c.find(json!({})).and_then(|cur| cur.projection(spec.clone()).to_vec());
        let _ = c.count_documents(filter.clone());
        let _ = c.distinct("a", filter.clone());
        let _ = c.aggregate(pipeline.clone()).and_then(|cur| cur.to_vec());
        let _ = c.aggregate(json!([{"$match": filter}, {"$project": spec}]))
            .and_then(|cur| cur.to_vec());
    }

    #[test]
    fn refused_writes_change_nothing(filter in filter(), update in update(), keys in value()) {
        let (_db, c) = collection();
        let before = all(&c);
        if c.update_many(filter.clone(), update.clone()).is_err() {
            prop_assert_eq!(all(&c), before.clone());
        }
        let before = all(&c);
        if c.update_one_with(filter.clone(), update.clone(), &pocketdb::UpdateOptions::upsert()).is_err() {
            prop_assert_eq!(all(&c), before.clone());
        }
        let before = all(&c);
        if c.replace_one(filter.clone(), update.clone()).is_err() {
            prop_assert_eq!(all(&c), before.clone());
        }
        let before = all(&c);
        if c.delete_many(filter.clone()).is_err() {
            prop_assert_eq!(all(&c), before.clone());
        }
        let before = all(&c);
        if c.insert_one(update.clone()).is_err() {
            prop_assert_eq!(all(&c), before.clone());
        }
        let _ = c.create_index(keys.clone(), IndexOptions::default().unique(true));
        let _ = c.create_index(keys, IndexOptions::default().sparse(true));
        // Whatever was created or refused, the collection still answers.
        let answer = c.find(json!({})).and_then(|cur| cur.to_vec());
        prop_assert!(answer.is_ok(), "{:?}", answer);
    }
}
