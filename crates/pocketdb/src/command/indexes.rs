//! The index commands: `createIndexes`, `listIndexes`, `dropIndexes`, and `explain` of a
//! `find` (or `aggregate`), answered from the collection's index API and planner.

use super::args::CommandDoc;
use super::CommandError;
use crate::database::Database;
use crate::engine::schema::validate_collection_name;
use crate::index::{IndexModel, IndexOptions};
use serde_json::{json, Map, Value};
use std::time::Instant;

type Reply = Result<Map<String, Value>, CommandError>;

/// The fields an index specification of `createIndexes` may hold.
const SPEC_FIELDS: &[&str] = &[
    "key",
    "name",
    "unique",
    "sparse",
    "partialFilterExpression",
    "expireAfterSeconds",
    "v",
    "background",
];

/// The collection a command names, validated, and whether it exists.
fn target<'a>(db: &Database, cmd: &CommandDoc<'a>) -> Result<(&'a str, bool), CommandError> {
    let name = cmd.collection()?;
    validate_collection_name(name)?;
    let exists = db.collection_options(name)?.is_some();
    Ok((name, exists))
}

fn namespace_not_found(db: &Database, name: &str) -> CommandError {
    CommandError::new(26, format!("ns does not exist: {}.{name}", db.name()))
}

/// One entry of `indexes` as an [`IndexModel`]; `position` names it in errors.
fn index_model(spec: &Value, position: usize) -> Result<IndexModel, CommandError> {
    let obj = spec.as_object().ok_or_else(|| {
        CommandError::new(
            14,
            format!(
                "BSON field 'createIndexes.indexes.{position}' is the wrong type '{}', expected type 'object'",
                crate::value::BsonType::of(spec).name()
            ),
        )
    })?;
    if let Some(field) = obj.keys().find(|k| !SPEC_FIELDS.contains(&k.as_str())) {
        return Err(CommandError::new(
            197,
            format!("The field '{field}' is not valid for an index specification. Specification: {spec}"),
        ));
    }
    let keys = match obj.get("key") {
        Some(k @ Value::Object(_)) => k.clone(),
        Some(other) => {
            return Err(CommandError::new(
                14,
                format!("The 'key' field of index {position} must be a document, got {other}"),
            ))
        }
        None => {
            return Err(CommandError::new(
                9,
                format!("The 'key' field is a required property of an index specification (index {position})"),
            ))
        }
    };
    let mut options = Map::new();
    for (k, v) in obj {
        match k.as_str() {
            "key" | "v" | "background" => {}
            // MongoDB reads numbers as booleans for these.
            "unique" | "sparse" => {
                let b = super::args::as_bool(v).ok_or_else(|| {
                    CommandError::new(
                        14,
                        format!("The field '{k}' of index {position} must be a boolean, got {v}"),
                    )
                })?;
                options.insert(k.clone(), Value::Bool(b));
            }
            "expireAfterSeconds" => {
                let n = super::args::as_integer(v).ok_or_else(|| {
                    CommandError::new(
                        14,
                        format!("TTL index 'expireAfterSeconds' must be a number, got {v}"),
                    )
                })?;
                options.insert(k.clone(), json!(n));
            }
            _ => {
                options.insert(k.clone(), v.clone());
            }
        }
    }
    let options = IndexOptions::from_json(&Value::Object(options))?;
    Ok(IndexModel { keys, options })
}

/// `{createIndexes: coll, indexes: [{key, name, unique, sparse, partialFilterExpression,
/// expireAfterSeconds}]}` → `{createdCollectionAutomatically, numIndexesBefore,
/// numIndexesAfter}` (plus `note` when every index existed already). All indexes are
/// built in one transaction: all or none.
pub(super) fn create_indexes(db: &Database, cmd: &CommandDoc<'_>) -> Reply {
    cmd.check_fields(&["indexes", "commitQuorum"])?;
    let (name, existed) = target(db, cmd)?;
    let specs = cmd.required_array("indexes")?;
    if specs.is_empty() {
        return Err(CommandError::new(
            2,
            "Must specify at least one index to create",
        ));
    }
    let models = specs
        .iter()
        .enumerate()
        .map(|(i, s)| index_model(s, i))
        .collect::<Result<Vec<_>, _>>()?;
    let coll = db.resolve_collection(name)?;
    // An absent collection still has its `_id_` index once created.
    let before = coll.list_indexes()?.len().max(1);
    coll.create_indexes(&models)?;
    let after = coll.list_indexes()?.len();
    let mut reply = Map::new();
    reply.insert("createdCollectionAutomatically".into(), json!(!existed));
    reply.insert("numIndexesBefore".into(), json!(before));
    reply.insert("numIndexesAfter".into(), json!(after));
    if existed && after == before {
        reply.insert("note".into(), json!("all indexes already exist"));
    }
    Ok(reply)
}

/// `{listIndexes: coll, cursor: {batchSize}}` → a cursor of MongoDB's index documents
/// (`{v: 2, key, name, unique?, …}`); `NamespaceNotFound` for an absent collection.
pub(super) fn list_indexes(db: &Database, cmd: &CommandDoc<'_>) -> Reply {
    cmd.check_fields(&["cursor"])?;
    if let Some(cursor) = cmd.document("cursor")? {
        let cursor = cmd.nested("cursor", cursor)?;
        cursor.check_fields(&["batchSize"])?;
        cursor.non_negative("batchSize")?;
    }
    let (name, exists) = target(db, cmd)?;
    if !exists {
        return Err(namespace_not_found(db, name));
    }
    let batch: Vec<Value> = db
        .resolve_collection(name)?
        .list_indexes()?
        .iter()
        .map(|i| i.to_json())
        .collect();
    let mut reply = Map::new();
    reply.insert(
        "cursor".into(),
        json!({"firstBatch": batch, "id": 0, "ns": format!("{}.{name}", db.name())}),
    );
    Ok(reply)
}

/// `{dropIndexes: coll, index: name | keySpec | "*" | [names]}` → `{nIndexesWas}`
/// (plus `msg` for `"*"`). Every named index must exist, or nothing is dropped.
pub(super) fn drop_indexes(db: &Database, cmd: &CommandDoc<'_>) -> Reply {
    cmd.check_fields(&["index"])?;
    let (name, exists) = target(db, cmd)?;
    let index = cmd.get("index").ok_or_else(|| cmd.missing("index"))?;
    if !exists {
        return Err(namespace_not_found(db, name));
    }
    let coll = db.resolve_collection(name)?;
    let was = coll.list_indexes()?;
    let mut reply = Map::new();
    reply.insert("nIndexesWas".into(), json!(was.len()));
    match index {
        Value::String(s) if s == "*" => {
            coll.drop_indexes()?;
            reply.insert(
                "msg".into(),
                json!("non-_id indexes dropped for collection"),
            );
        }
        Value::String(s) => coll.drop_index(s)?,
        spec @ Value::Object(_) => {
            let found = was.iter().find(|i| same_keys(&i.keys, spec));
            match found {
                Some(info) if info.name == "_id_" => coll.drop_index("_id_")?,
                Some(info) => coll.drop_index(&info.name)?,
                None => {
                    return Err(CommandError::new(
                        27,
                        format!("can't find index with key: {spec}"),
                    ))
                }
            }
        }
        Value::Array(names) => {
            let mut wanted = Vec::with_capacity(names.len());
            for n in names {
                let n = n.as_str().ok_or_else(|| {
                    CommandError::new(14, format!("dropIndexes: index names must be strings, got {n}"))
                })?;
                if n == "*" || n == "_id_" {
                    return Err(CommandError::new(
                        72,
                        format!("dropIndexes: '{n}' cannot be given in an array of names"),
                    ));
                }
                if !was.iter().any(|i| i.name == n) {
                    return Err(CommandError::new(
                        27,
                        format!("index not found with name [{n}]"),
                    ));
                }
                wanted.push(n);
            }
            for n in wanted {
                coll.drop_index(n)?;
            }
        }
        other => {
            return Err(CommandError::new(
                14,
                format!(
                    "BSON field 'dropIndexes.index' is the wrong type '{}', expected types '[string, object, array]'",
                    crate::value::BsonType::of(other).name()
                ),
            ))
        }
    }
    Ok(reply)
}

/// Key specifications are equal when they list the same paths in the same order with the
/// same directions (`1` and `1.0` alike).
fn same_keys(a: &Value, b: &Value) -> bool {
    match (a.as_object(), b.as_object()) {
        (Some(a), Some(b)) => {
            a.len() == b.len()
                && a.iter().zip(b).all(|((ka, va), (kb, vb))| {
                    ka == kb && va.as_f64().is_some() && va.as_f64() == vb.as_f64()
                })
        }
        _ => false,
    }
}

/// `{explain: {find: coll, filter, sort, skip, limit, hint, projection}, verbosity}` →
/// the planner's [`crate::Explain`] as JSON (its fields at the top level), with
/// MongoDB's `queryPlanner` summary; `verbosity: "executionStats"` also runs the query
/// and reports `executionStats: {nReturned, executionTimeMillis}`. `{explain:
/// {aggregate: coll, pipeline}}` returns the pipeline's explanation.
pub(super) fn explain(db: &Database, cmd: &CommandDoc<'_>) -> Reply {
    cmd.check_fields(&["verbosity"])?;
    let verbosity = cmd.string("verbosity")?.unwrap_or("queryPlanner");
    let execute = match verbosity {
        "queryPlanner" => false,
        "executionStats" | "allPlansExecution" => true,
        other => {
            return Err(CommandError::new(
                2,
                format!("verbosity string must be one of {{'queryPlanner', 'executionStats', 'allPlansExecution'}}, got '{other}'"),
            ))
        }
    };
    let inner_value = match cmd.get("explain") {
        Some(v @ Value::Object(_)) => v,
        Some(other) => {
            return Err(CommandError::new(
                14,
                format!(
                    "BSON field 'explain.explain' is the wrong type '{}', expected type 'object'",
                    crate::value::BsonType::of(other).name()
                ),
            ))
        }
        None => return Err(cmd.missing("explain")),
    };
    let inner = CommandDoc::new(inner_value)?;
    match inner.name() {
        "find" => explain_find(db, &inner, execute),
        "aggregate" => {
            inner.check_fields(&["pipeline", "cursor", "allowDiskUse", "hint", "let"])?;
            let name = inner.collection()?;
            validate_collection_name(name)?;
            let pipeline = Value::Array(inner.required_array("pipeline")?.clone());
            super::commands::no_explain(&*db.resolve_collection(name)?)?;
            Ok(db
                .collection::<Value>(name)
                .explain_aggregate(pipeline)?
                .as_object()
                .cloned()
                .unwrap_or_default())
        }
        other => Err(CommandError::new(
            59,
            format!("Explain failed due to unknown command: {other}"),
        )),
    }
}

fn explain_find(db: &Database, cmd: &CommandDoc<'_>, execute: bool) -> Reply {
    cmd.check_fields(&[
        "filter",
        "sort",
        "projection",
        "skip",
        "limit",
        "batchSize",
        "singleBatch",
        "hint",
    ])?;
    let name = cmd.collection()?;
    validate_collection_name(name)?;
    super::commands::no_explain(&*db.resolve_collection(name)?)?;
    let coll = db.collection::<Value>(name);
    let filter = cmd
        .document("filter")?
        .cloned()
        .unwrap_or_else(|| Value::Object(Map::new()));
    let sort = cmd.document("sort")?.cloned();
    let projection = cmd.document("projection")?.cloned();
    let skip = cmd.non_negative("skip")?;
    let limit = cmd.non_negative("limit")?;
    let hint = match cmd.get("hint") {
        None => None,
        Some(h @ (Value::String(_) | Value::Object(_))) => Some(h.clone()),
        Some(other) => {
            return Err(CommandError::new(
                14,
                format!(
                "BSON field 'find.hint' is the wrong type '{}', expected types '[string, object]'",
                crate::value::BsonType::of(other).name()
            ),
            ))
        }
    };
    let build = || -> Result<crate::Cursor<Value>, CommandError> {
        let mut cursor = coll.find(filter.clone())?;
        if let Some(s) = &sort {
            cursor = cursor.sort(s.clone());
        }
        if let Some(p) = &projection {
            cursor = cursor.projection(p.clone());
        }
        if let Some(s) = skip {
            cursor = cursor.skip(s);
        }
        if let Some(l) = limit {
            cursor = cursor.limit(i64::try_from(l).unwrap_or(i64::MAX));
        }
        if let Some(h) = &hint {
            cursor = cursor.hint(h.clone());
        }
        Ok(cursor)
    };
    let plan = build()?.explain()?;
    let stage = match plan.index.as_deref() {
        Some("_id_") => "IDHACK",
        Some(_) => "IXSCAN",
        None => "COLLSCAN",
    };
    let mut winning = json!({"stage": stage});
    if let Some(index) = &plan.index {
        winning["indexName"] = json!(index);
    }
    let mut reply = plan.to_json().as_object().cloned().unwrap_or_default();
    reply.insert(
        "queryPlanner".into(),
        json!({
            "namespace": format!("{}.{name}", db.name()),
            "parsedQuery": filter,
            "winningPlan": winning,
            "rejectedPlans": [],
        }),
    );
    if execute {
        let start = Instant::now();
        let returned = build()?.to_vec()?.len();
        reply.insert(
            "executionStats".into(),
            json!({
                "nReturned": returned,
                "executionTimeMillis": start.elapsed().as_millis() as u64,
            }),
        );
    }
    Ok(reply)
}
