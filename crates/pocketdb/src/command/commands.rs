//! The commands themselves, one function each.

use super::args::CommandDoc;
use super::{write_error, CommandError};
use crate::collection::{
    FindOneAndModifyOptions, InsertManyOptions, ReturnDocument, UpdateOptions, UpdateResult,
};
use crate::database::{CollectionOptions, Database};
use crate::engine::schema::validate_collection_name;
use crate::error::Error;
use crate::query::{parse_filter, Projection};
use crate::shard::{CollectionKind, CollectionOps, FindSpec};
use crate::Modification;
use serde_json::{json, Map, Value};

type Reply = Result<Map<String, Value>, CommandError>;

/// MongoDB's limit on the number of statements of one write command.
const MAX_WRITE_BATCH: usize = 100_000;

fn reply<const N: usize>(fields: [(&str, Value); N]) -> Map<String, Value> {
    fields
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

/// The named collection, whatever its kind (plain, sharded, partitioned).
fn collection<'a>(
    db: &Database,
    cmd: &CommandDoc<'a>,
) -> Result<(&'a str, Box<dyn CollectionOps>), CommandError> {
    let name = cmd.collection()?;
    validate_collection_name(name)?;
    Ok((name, db.resolve_collection(name)?))
}

/// `explain` describes one file's plan: refused on sharded and partitioned collections.
pub(super) fn no_explain(coll: &dyn CollectionOps) -> Result<(), CommandError> {
    if coll.kind() == CollectionKind::Plain {
        return Ok(());
    }
    Err(CommandError::new(
        115,
        format!(
            "explain is not supported on the sharded or partitioned collection '{}'",
            coll.name()
        ),
    ))
}

fn check_batch(len: usize) -> Result<(), CommandError> {
    if len == 0 || len > MAX_WRITE_BATCH {
        return Err(CommandError::new(
            16,
            format!(
                "Write batch sizes must be between 1 and {MAX_WRITE_BATCH}. Got {len} operations."
            ),
        ));
    }
    Ok(())
}

fn cursor_reply(ns: String, batch: Vec<Value>) -> Map<String, Value> {
    reply([("cursor", json!({"firstBatch": batch, "id": 0, "ns": ns}))])
}

fn empty_filter() -> Value {
    Value::Object(Map::new())
}

/// `{ping: 1}` → `{ok: 1}`.
pub(super) fn ping(cmd: &CommandDoc<'_>) -> Reply {
    cmd.check_fields(&[])?;
    Ok(Map::new())
}

/// `{insert: coll, documents: [...], ordered}` → `{n, writeErrors?}`.
pub(super) fn insert(db: &Database, cmd: &CommandDoc<'_>) -> Reply {
    cmd.check_fields(&["documents", "ordered"])?;
    let (_, coll) = collection(db, cmd)?;
    let documents = cmd.required_array("documents")?;
    // As MongoDB: a document that is not one fails the whole command (`TypeMismatch`),
    // before anything is inserted.
    if let Some((i, other)) = documents.iter().enumerate().find(|(_, d)| !d.is_object()) {
        return Err(CommandError::new(
            14,
            format!(
                "BSON field 'insert.documents.{i}' is the wrong type '{}', expected type 'object'",
                crate::value::BsonType::of(other).name()
            ),
        ));
    }
    let ordered = cmd.bool("ordered", true)?;
    check_batch(documents.len())?;
    match coll.insert_many_with(documents.clone(), InsertManyOptions { ordered }) {
        Ok(result) => Ok(reply([("n", json!(result.inserted_ids.len()))])),
        Err(Error::BulkWrite(failure)) => {
            let failure = *failure;
            let errors: Vec<Value> = failure
                .write_errors
                .into_iter()
                .map(|e| write_error(e.index, &CommandError::from(e.error)))
                .collect();
            Ok(reply([
                ("n", json!(failure.inserted_ids.len())),
                ("writeErrors", Value::Array(errors)),
            ]))
        }
        Err(e) => Err(e.into()),
    }
}

/// `{find: coll, filter, sort, projection, skip, limit, batchSize, singleBatch}` →
/// `{cursor: {firstBatch, id: 0, ns}}`.
pub(super) fn find(db: &Database, cmd: &CommandDoc<'_>) -> Reply {
    cmd.check_fields(&[
        "filter",
        "sort",
        "projection",
        "skip",
        "limit",
        "batchSize",
        "singleBatch",
        "hint",
        "allowDiskUse",
        "noCursorTimeout",
        "allowPartialResults",
    ])?;
    let (name, coll) = collection(db, cmd)?;
    let filter = cmd
        .document("filter")?
        .cloned()
        .unwrap_or_else(empty_filter);
    let sort = cmd.document("sort")?;
    let projection = cmd.document("projection")?;
    let skip = cmd.non_negative("skip")?;
    let limit = cmd.non_negative("limit")?;
    cmd.non_negative("batchSize")?;
    cmd.bool("singleBatch", false)?;
    let spec = FindSpec {
        sort: sort.cloned(),
        projection: projection.cloned(),
        skip,
        limit: limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX)),
        // MongoDB 6's default (allowDiskUseByDefault), as the cursor's.
        allow_disk_use: Some(cmd.bool("allowDiskUse", true)?),
    };
    let batch = coll
        .find_with(filter, &spec)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(cursor_reply(format!("{}.{name}", db.name()), batch))
}

/// One parsed statement of an `update` command.
struct UpdateStatement<'a> {
    q: &'a Value,
    u: &'a Value,
    upsert: bool,
    multi: bool,
    array_filters: Option<Vec<Value>>,
}

/// `{update: coll, updates: [{q, u, upsert, multi, arrayFilters}], ordered}` →
/// `{n, nModified, upserted?, writeErrors?}`.
pub(super) fn update(db: &Database, cmd: &CommandDoc<'_>) -> Reply {
    cmd.check_fields(&["updates", "ordered"])?;
    let (_, coll) = collection(db, cmd)?;
    let updates = cmd.required_array("updates")?;
    let ordered = cmd.bool("ordered", true)?;
    check_batch(updates.len())?;
    // Malformed statements fail the whole command before anything is written.
    let statements = updates
        .iter()
        .map(|s| parse_update_statement(cmd, s))
        .collect::<Result<Vec<_>, _>>()?;
    let mut n = 0u64;
    let mut modified = 0u64;
    let mut upserted = Vec::new();
    let mut errors = Vec::new();
    for (index, statement) in statements.iter().enumerate() {
        match run_update_statement(&*coll, statement) {
            Ok(result) => {
                n += result.matched_count;
                modified += result.modified_count;
                if let Some(id) = result.upserted_id {
                    n += 1;
                    upserted.push(json!({"index": index, "_id": id}));
                }
            }
            Err(e) => {
                errors.push(write_error(index, &e));
                if ordered {
                    break;
                }
            }
        }
    }
    let mut out = reply([("n", json!(n)), ("nModified", json!(modified))]);
    if !upserted.is_empty() {
        out.insert("upserted".to_string(), Value::Array(upserted));
    }
    if !errors.is_empty() {
        out.insert("writeErrors".to_string(), Value::Array(errors));
    }
    Ok(out)
}

fn parse_update_statement<'a>(
    cmd: &CommandDoc<'a>,
    statement: &'a Value,
) -> Result<UpdateStatement<'a>, CommandError> {
    let s = cmd.nested("updates", statement)?;
    s.check_fields(&["q", "u", "upsert", "multi", "arrayFilters", "hint"])?;
    let q = s.document("q")?.ok_or_else(|| s.missing("q"))?;
    let u = s.get("u").ok_or_else(|| s.missing("u"))?;
    match u {
        Value::Object(_) => {}
        Value::Array(_) => {
            return Err(CommandError::new(
                2,
                "aggregation pipeline updates are not supported; use update operators",
            ))
        }
        other => {
            return Err(CommandError::new(
                14,
                format!(
                    "BSON field 'update.updates.u' is the wrong type '{}', expected type 'object'",
                    crate::value::BsonType::of(other).name()
                ),
            ))
        }
    }
    Ok(UpdateStatement {
        q,
        u,
        upsert: s.bool("upsert", false)?,
        multi: s.bool("multi", false)?,
        array_filters: s.array("arrayFilters")?.cloned(),
    })
}

fn is_operator_update(u: &Value) -> bool {
    u.as_object()
        .and_then(|m| m.keys().next())
        .is_some_and(|k| k.starts_with('$'))
}

fn run_update_statement(
    coll: &dyn CollectionOps,
    s: &UpdateStatement<'_>,
) -> Result<UpdateResult, CommandError> {
    if is_operator_update(s.u) {
        let options = UpdateOptions {
            upsert: s.upsert,
            array_filters: s.array_filters.clone(),
        };
        let result = if s.multi {
            coll.update_many_with(s.q.clone(), s.u.clone(), &options)
        } else {
            coll.update_one_with(s.q.clone(), s.u.clone(), &options)
        };
        return Ok(result?);
    }
    if s.multi {
        return Err(CommandError::new(
            9,
            "multi update is not supported for replacement-style update",
        ));
    }
    Ok(coll.replace_one_with(s.q.clone(), s.u.clone(), s.upsert)?)
}

/// `{delete: coll, deletes: [{q, limit}], ordered}` → `{n, writeErrors?}`; `limit` 0
/// deletes every match, 1 the first.
pub(super) fn delete(db: &Database, cmd: &CommandDoc<'_>) -> Reply {
    cmd.check_fields(&["deletes", "ordered"])?;
    let (_, coll) = collection(db, cmd)?;
    let deletes = cmd.required_array("deletes")?;
    let ordered = cmd.bool("ordered", true)?;
    check_batch(deletes.len())?;
    let mut statements = Vec::with_capacity(deletes.len());
    for statement in deletes {
        let s = cmd.nested("deletes", statement)?;
        s.check_fields(&["q", "limit", "hint"])?;
        let q = s.document("q")?.ok_or_else(|| s.missing("q"))?;
        let limit = s.integer("limit")?.ok_or_else(|| s.missing("limit"))?;
        if limit != 0 && limit != 1 {
            return Err(CommandError::new(
                9,
                format!("The limit field in delete objects must be 0 or 1. Got {limit}"),
            ));
        }
        statements.push((q, limit == 0));
    }
    let mut n = 0u64;
    let mut errors = Vec::new();
    for (index, (q, many)) in statements.into_iter().enumerate() {
        let result = if many {
            coll.delete_many(q.clone())
        } else {
            coll.delete_one(q.clone())
        };
        match result {
            Ok(r) => n += r.deleted_count,
            Err(e) => {
                errors.push(write_error(index, &e.into()));
                if ordered {
                    break;
                }
            }
        }
    }
    let mut out = reply([("n", json!(n))]);
    if !errors.is_empty() {
        out.insert("writeErrors".to_string(), Value::Array(errors));
    }
    Ok(out)
}

/// `{count: coll, query, skip, limit}` → `{n}`.
pub(super) fn count(db: &Database, cmd: &CommandDoc<'_>) -> Reply {
    cmd.check_fields(&["query", "skip", "limit", "hint"])?;
    let (_, coll) = collection(db, cmd)?;
    let query = cmd.document("query")?.cloned().unwrap_or_else(empty_filter);
    let skip = cmd.non_negative("skip")?.unwrap_or(0);
    // A negative limit counts as its absolute value, as in MongoDB.
    let limit = cmd.integer("limit")?.map(i64::unsigned_abs).unwrap_or(0);
    let mut n = coll.count_documents(query)?.saturating_sub(skip);
    if limit > 0 {
        n = n.min(limit);
    }
    Ok(reply([("n", json!(n))]))
}

/// `{distinct: coll, key, query}` → `{values}`.
pub(super) fn distinct(db: &Database, cmd: &CommandDoc<'_>) -> Reply {
    cmd.check_fields(&["key", "query", "hint"])?;
    let (_, coll) = collection(db, cmd)?;
    let key = cmd.string("key")?.ok_or_else(|| cmd.missing("key"))?;
    let query = cmd.document("query")?.cloned().unwrap_or_else(empty_filter);
    let values = coll.distinct(key, query)?;
    Ok(reply([("values", Value::Array(values))]))
}

/// `{findAndModify: coll, query, sort, remove | update, new, fields, upsert,
/// arrayFilters}` → `{value, lastErrorObject: {n, updatedExisting, upserted?}}`.
pub(super) fn find_and_modify(db: &Database, cmd: &CommandDoc<'_>) -> Reply {
    cmd.check_fields(&[
        "query",
        "sort",
        "remove",
        "update",
        "new",
        "fields",
        "upsert",
        "arrayFilters",
        "hint",
    ])?;
    let (_, coll) = collection(db, cmd)?;
    let query = cmd.document("query")?.cloned().unwrap_or_else(empty_filter);
    let sort = cmd.document("sort")?.cloned();
    let fields = cmd.document("fields")?;
    let remove = cmd.bool("remove", false)?;
    let new = cmd.bool("new", false)?;
    let upsert = cmd.bool("upsert", false)?;
    let array_filters = cmd.array("arrayFilters")?.cloned();
    let update = match cmd.get("update") {
        None => None,
        Some(u @ Value::Object(_)) => Some(u),
        Some(Value::Array(_)) => {
            return Err(CommandError::new(
                2,
                "aggregation pipeline updates are not supported; use update operators",
            ))
        }
        Some(other) => {
            return Err(CommandError::new(
                14,
                format!(
                "BSON field 'findAndModify.update' is the wrong type '{}', expected type 'object'",
                crate::value::BsonType::of(other).name()
            ),
            ))
        }
    };
    match (remove, update) {
        (true, Some(_)) => {
            return Err(CommandError::new(
                9,
                "Cannot specify both an update and remove=true",
            ))
        }
        (false, None) => {
            return Err(CommandError::new(
                9,
                "Either an update or remove=true must be specified",
            ))
        }
        (true, None) if new => {
            return Err(CommandError::new(
                9,
                "Cannot specify both new=true and remove=true; 'remove' always returns the deleted document",
            ))
        }
        (true, None) if upsert => {
            return Err(CommandError::new(
                9,
                "Cannot specify both upsert=true and remove=true",
            ))
        }
        _ => {}
    }
    let projection = fields.map(Projection::parse).transpose()?;
    let options = FindOneAndModifyOptions {
        sort,
        projection: None,
        upsert,
        return_document: if new {
            ReturnDocument::After
        } else {
            ReturnDocument::Before
        },
        array_filters,
    };
    let project = |doc: Option<Value>| match (doc, &projection) {
        (Some(doc), Some(p)) => p.apply(&doc),
        (Some(doc), None) => doc,
        (None, _) => Value::Null,
    };
    let Some(update) = update else {
        let removed = coll
            .find_and_modify(query, Modification::Delete, &options)?
            .document;
        let n = u64::from(removed.is_some());
        return Ok(reply([
            ("lastErrorObject", json!({"n": n})),
            ("value", project(removed)),
        ]));
    };
    let modification = if is_operator_update(update) {
        Modification::Update(update.clone())
    } else {
        Modification::Replace(update.clone())
    };
    let outcome = coll.find_and_modify(query, modification, &options)?;
    let (doc, upserted_id) = (outcome.document, outcome.upserted_id);
    let last_error = match (&doc, &upserted_id) {
        (_, Some(id)) => json!({"n": 1, "updatedExisting": false, "upserted": id}),
        (Some(_), None) => json!({"n": 1, "updatedExisting": true}),
        (None, None) => json!({"n": 0, "updatedExisting": false}),
    };
    Ok(reply([
        ("lastErrorObject", last_error),
        ("value", project(doc)),
    ]))
}

/// `{create: coll}` → `{ok: 1}`; fails with `NamespaceExists` when it exists.
pub(super) fn create(db: &Database, cmd: &CommandDoc<'_>) -> Reply {
    cmd.check_fields(&[])?;
    let name = cmd.collection()?;
    db.create_collection(name, CollectionOptions::default())?;
    Ok(Map::new())
}

/// `{drop: coll}` → `{ns}`; dropping an absent collection succeeds, as in MongoDB 7.
pub(super) fn drop(db: &Database, cmd: &CommandDoc<'_>) -> Reply {
    cmd.check_fields(&[])?;
    let (name, coll) = collection(db, cmd)?;
    if coll.drop_collection()? {
        Ok(reply([("ns", json!(format!("{}.{name}", db.name())))]))
    } else {
        Ok(Map::new())
    }
}

/// `{listCollections: 1, filter, nameOnly}` → a cursor of `{name, type: "collection",
/// options, info}`.
pub(super) fn list_collections(db: &Database, cmd: &CommandDoc<'_>) -> Reply {
    cmd.check_fields(&["filter", "nameOnly", "authorizedCollections", "cursor"])?;
    let filter = cmd.document("filter")?.map(parse_filter).transpose()?;
    let name_only = cmd.bool("nameOnly", false)?;
    cmd.bool("authorizedCollections", false)?;
    cmd.document("cursor")?;
    let mut batch = Vec::new();
    for name in db.list_collections()? {
        let mut entry = json!({"name": name, "type": "collection"});
        if !name_only {
            let options = db
                .collection_options(&name)?
                .map(|o| Value::Object(o.options))
                .unwrap_or_else(empty_filter);
            entry["options"] = options;
            entry["info"] = json!({"readOnly": false});
        }
        let keep = match &filter {
            Some(f) => f.matches(&entry),
            None => true,
        };
        if keep {
            batch.push(entry);
        }
    }
    Ok(cursor_reply(
        format!("{}.$cmd.listCollections", db.name()),
        batch,
    ))
}

/// `{aggregate: coll, pipeline: [...], cursor: {batchSize}, allowDiskUse, explain}` →
/// `{cursor: {firstBatch, id: 0, ns}}` (or the plan with `explain: true`).
pub(super) fn aggregate(db: &Database, cmd: &CommandDoc<'_>) -> Reply {
    cmd.check_fields(&[
        "pipeline",
        "cursor",
        "allowDiskUse",
        "explain",
        "hint",
        "let",
        "maxTimeMS",
        "bypassDocumentValidation",
    ])?;
    let (name, coll) = collection(db, cmd)?;
    let pipeline = Value::Array(cmd.required_array("pipeline")?.clone());
    let explain = cmd.bool("explain", false)?;
    if !explain && cmd.document("cursor")?.is_none() {
        return Err(CommandError::new(
            9,
            "The 'cursor' option is required, except for aggregate with the explain argument",
        ));
    }
    if let Some(cursor) = cmd.document("cursor")? {
        let cursor = cmd.nested("cursor", cursor)?;
        cursor.check_fields(&["batchSize"])?;
        cursor.non_negative("batchSize")?;
    }
    if explain {
        no_explain(&*coll)?;
        return Ok(db
            .collection::<Value>(name)
            .explain_aggregate(pipeline)?
            .as_object()
            .cloned()
            .unwrap_or_default());
    }
    let options = crate::AggregateOptions {
        // MongoDB 6's default (allowDiskUseByDefault), as `find`'s.
        allow_disk_use: cmd.bool("allowDiskUse", true)?,
        ..Default::default()
    };
    let batch = coll.aggregate_with(pipeline, options)?.to_vec()?;
    Ok(cursor_reply(format!("{}.{name}", db.name()), batch))
}

/// `{renameCollection: "<db>.<from>", to: "<db>.<to>", dropTarget}`: renames a
/// collection of this database. Both namespaces must name it (an in-memory database,
/// which has no file name, takes any database name, the same in both); a rename across
/// database files is refused with `IllegalOperation`.
pub(super) fn rename_collection(db: &Database, cmd: &CommandDoc<'_>) -> Reply {
    cmd.check_fields(&["to", "dropTarget", "stayTemp", "writeConcern", "comment"])?;
    let split = |namespace: &'_ str| -> Result<(String, String), CommandError> {
        // Database names hold no '.', collection names may.
        match namespace.split_once('.') {
            Some((d, c)) if !d.is_empty() && !c.is_empty() => Ok((d.to_string(), c.to_string())),
            _ => Err(CommandError::new(
                73,
                format!("'{namespace}' is not a full namespace (<db>.<collection>)"),
            )),
        }
    };
    let (from_db, from) = split(cmd.collection()?)?;
    let (to_db, to) = split(cmd.string("to")?.ok_or_else(|| cmd.missing("to"))?)?;
    let ours = |d: &str| d == db.name() || (db.path().is_none() && d == from_db);
    if !ours(&from_db) || !ours(&to_db) {
        return Err(CommandError::new(
            20,
            format!(
                "renameCollection within database '{}' only: '{from_db}.{from}' to '{to_db}.{to}'",
                db.name()
            ),
        ));
    }
    cmd.bool("stayTemp", false)?;
    let drop_target = cmd.bool("dropTarget", false)?;
    db.rename_collection(&from, &to, drop_target)?;
    Ok(Map::new())
}

/// `{getMore: <cursor id>, collection}`: there are no server-side cursors (every
/// `find` and `aggregate` returns its whole result in the first batch, with cursor id
/// 0), so no cursor id is ever open: `CursorNotFound`, as MongoDB answers for a cursor it
/// does not know.
pub(super) fn get_more(cmd: &CommandDoc<'_>) -> Reply {
    cmd.check_fields(&["collection", "batchSize", "maxTimeMS", "comment"])?;
    let id = cmd.get("getMore").cloned().unwrap_or(Value::Null);
    Err(CommandError::new(
        43,
        format!("cursor id {id} not found: results are returned whole in the first batch"),
    ))
}
