//! Creating and dropping indexes, and the catalog hooks of collection drop and rename.
//!
//! A build runs in the caller's write transaction: it scans the documents once (keys,
//! multikey and mixed flags, uniqueness), fills the side table when the index is
//! multikey, then has SQLite build the expression index. Without a uniqueness check the
//! scan reads only the documents an SQL filter lets through (those holding an array or a
//! value SQLite orders unlike MongoDB on a key path), so building an index on a plain
//! field costs little more than SQLite's own `CREATE INDEX`. Any failure — a duplicate key
//! of a unique index above all — rolls the transaction back and leaves nothing behind.

use super::keys::{
    has_array_on_path, key_tuples, push_tuple_params, scalar_value, sorts_differently, tuple_text,
    KeyPart,
};
use super::{
    bump_gen, default_name, load, parse_keys, validate_default_name, validate_index_name,
    IndexBuildPhase, IndexDef, IndexModel, IndexProgress,
};
use crate::error::{Error, Result};
use crate::query::parse_filter;
use crate::query::sql::{path_expr, prefix_type_exprs};
use crate::query::SortOrder;
use rusqlite::types::Value as SqlValue;
use rusqlite::Connection;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// Documents between two progress reports.
const REPORT_EVERY: u64 = 10_000;

/// Creates the indexes described by `models` on `collection` (table `table`), in order.
/// Returns their names. An index identical to an existing one (same name, keys and
/// options) is left as it is, as MongoDB does.
pub(crate) fn create_indexes(
    conn: &Connection,
    collection: &str,
    table: &str,
    models: &[IndexModel],
    progress: &mut dyn FnMut(IndexProgress),
) -> Result<Vec<String>> {
    let mut names = Vec::with_capacity(models.len());
    for model in models {
        names.push(create_one(conn, collection, table, model, progress)?);
    }
    Ok(names)
}

fn create_one(
    conn: &Connection,
    collection: &str,
    table: &str,
    model: &IndexModel,
    progress: &mut dyn FnMut(IndexProgress),
) -> Result<String> {
    let keys = parse_keys(&model.keys)?;
    let o = &model.options;
    let name = match &o.name {
        Some(chosen) => {
            validate_index_name(chosen)?;
            chosen.clone()
        }
        None => {
            let generated = default_name(&keys);
            validate_default_name(&generated)?;
            generated
        }
    };
    let invalid = |message: String| Error::InvalidIndex {
        collection: collection.to_string(),
        name: name.clone(),
        message,
    };
    let partial = o
        .partial_filter_expression
        .as_ref()
        .map(parse_filter)
        .transpose()?;
    if let Some(ttl) = o.expire_after_seconds {
        if ttl < 0 {
            return Err(invalid("expireAfterSeconds must be at least 0".to_string()));
        }
        if keys.len() != 1 {
            return Err(invalid("a TTL index must have exactly one key".to_string()));
        }
    }
    let is_id = keys.len() == 1 && keys[0].0.len() == 1 && keys[0].0.first() == "_id";
    if is_id || name == "_id_" {
        let plain = !o.unique
            && !o.sparse
            && o.partial_filter_expression.is_none()
            && o.expire_after_seconds.is_none();
        if is_id && plain && (name == "_id_" || o.name.is_none()) {
            return Ok("_id_".to_string());
        }
        return Err(invalid(
            "the _id index exists already and cannot be changed".to_string(),
        ));
    }
    let def = IndexDef {
        name: name.clone(),
        ident: 0,
        keys,
        key_spec: model.keys.clone(),
        unique: o.unique,
        sparse: o.sparse,
        partial,
        partial_json: o.partial_filter_expression.clone(),
        ttl: o.expire_after_seconds,
        multikey: 0,
        mixed: 0,
    };
    let existing = load(conn, collection)?;
    for e in &existing.defs {
        let same_keys = e.keys == def.keys;
        let same_options = e.options_json() == def.options_json();
        if e.name == name {
            if same_keys && same_options {
                return Ok(name);
            }
            return Err(invalid(
                "an index with this name exists with different keys or options".to_string(),
            ));
        }
        if same_keys && same_options {
            return Err(invalid(format!(
                "an index with the same keys and options exists as '{}'",
                e.name
            )));
        }
        // MongoDB tells two indexes on the same keys apart only by their partial filter
        // (or collation, which pocketdb does not have): a second one differing in
        // `unique`, `sparse` or the TTL is refused (IndexOptionsConflict).
        if same_keys && e.partial_json == def.partial_json {
            return Err(invalid(format!(
                "an index with the same keys exists as '{}' with different options \
                 (only a different partialFilterExpression allows a second one)",
                e.name
            )));
        }
    }
    let ident: i64 = conn.query_row(
        "SELECT coalesce(max(ident), 0) + 1 FROM _pocketdb_indexes",
        [],
        |r| r.get(0),
    )?;
    let mut def = IndexDef { ident, ..def };
    let total = count(conn, table)?;
    let unique_unchecked = scan_new_index(conn, collection, table, &mut def, total, progress)?;
    conn.execute(
        "INSERT INTO _pocketdb_indexes(collection, name, ident, keys, options, multikey, mixed)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        rusqlite::params![
            collection,
            name,
            ident,
            def.key_spec.to_string(),
            def.options_json().to_string(),
            def.multikey as i64,
            def.mixed as i64
        ],
    )?;
    if def.is_multikey() {
        create_side_table(conn, &def, table, Some(&mut *progress))?;
    }
    progress(IndexProgress {
        phase: IndexBuildPhase::Sorting,
        done: 0,
        total,
    });
    let columns: Vec<String> = def
        .keys
        .iter()
        .map(|(p, o)| {
            let expr =
                path_expr(p).ok_or_else(|| Error::InvalidArgument(format!("index path '{p}'")))?;
            Ok(if *o == SortOrder::Desc {
                format!("{expr} DESC")
            } else {
                expr
            })
        })
        .collect::<Result<_>>()?;
    conn.execute_batch(&format!(
        "CREATE INDEX {} ON {table}({})",
        def.sql_index(),
        columns.join(", ")
    ))?;
    if unique_unchecked {
        check_unique_after_build(conn, collection, table, &def, total)?;
    }
    bump_gen(conn)?;
    progress(IndexProgress {
        phase: IndexBuildPhase::Done,
        done: total,
        total,
    });
    Ok(name)
}

fn count(conn: &Connection, table: &str) -> Result<u64> {
    let n: i64 = conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?;
    Ok(n as u64)
}

/// Calls `f` with each document's `rid` and the document (reduced to the fields the
/// index reads, unless `full`).
fn scan_docs(
    conn: &Connection,
    table: &str,
    def: &IndexDef,
    full: bool,
    filter: Option<&str>,
    mut f: impl FnMut(i64, Value) -> Result<()>,
) -> Result<()> {
    let mut firsts: Vec<&str> = Vec::new();
    for (p, _) in &def.keys {
        if !firsts.contains(&p.first()) {
            firsts.push(p.first());
        }
    }
    let columns = if full {
        "doc".to_string()
    } else {
        firsts
            .iter()
            .map(|s| format!("doc -> '$.\"{s}\"'"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let filter = filter.map(|f| format!(" WHERE {f}")).unwrap_or_default();
    let mut stmt = conn.prepare(&format!(
        "SELECT rid, {columns} FROM {table}{filter} ORDER BY rid"
    ))?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let rid: i64 = r.get(0)?;
        let doc = if full {
            crate::value::jsonb::stored_doc(conn, r.get_ref(1)?)?
        } else {
            let mut m = Map::new();
            for (i, s) in firsts.iter().enumerate() {
                let text: Option<String> = r.get(i + 1)?;
                if let Some(t) = text {
                    m.insert((*s).to_string(), serde_json::from_str(&t)?);
                }
            }
            Value::Object(m)
        };
        f(rid, doc)?;
    }
    Ok(())
}

/// The first pass of a build: flags and uniqueness. Returns `true` when the uniqueness of
/// a plain unique index is left to [`check_unique_after_build`], once SQLite built it.
fn scan_new_index(
    conn: &Connection,
    collection: &str,
    table: &str,
    def: &mut IndexDef,
    total: u64,
    progress: &mut dyn FnMut(IndexProgress),
) -> Result<bool> {
    progress(IndexProgress {
        phase: IndexBuildPhase::Scanning,
        done: 0,
        total,
    });
    // The flags depend on the few documents SQLite finds with `flag_filter`. A unique
    // index needs every key, unless no document set a flag: then its keys are strings,
    // numbers and nulls, which SQL tells apart exactly as MongoDB does, and the built
    // index answers whether any repeats. Sparse and partial unique indexes skip some
    // documents, which only the scan knows how to do.
    let filter = flag_filter(def);
    let plain_unique = def.unique && !def.sparse && def.partial.is_none();
    if filter.is_some() && (!def.unique || plain_unique) {
        scan_pass(
            conn,
            collection,
            table,
            def,
            filter.as_deref(),
            false,
            total,
            progress,
        )?;
        if !def.unique || (def.multikey | def.mixed) == 0 {
            progress(IndexProgress {
                phase: IndexBuildPhase::Scanning,
                done: total,
                total,
            });
            return Ok(def.unique);
        }
    }
    let check_unique = def.unique;
    let done = scan_pass(
        conn,
        collection,
        table,
        def,
        None,
        check_unique,
        total,
        progress,
    )?;
    progress(IndexProgress {
        phase: IndexBuildPhase::Scanning,
        done,
        total,
    });
    Ok(false)
}

/// Reads the documents `filter` lets through (all without one), sets `def`'s flags from
/// them and, with `check_unique`, fails on the first repeated key. Returns how many
/// documents it read.
#[allow(clippy::too_many_arguments)]
fn scan_pass(
    conn: &Connection,
    collection: &str,
    table: &str,
    def: &mut IndexDef,
    filter: Option<&str>,
    check_unique: bool,
    total: u64,
    progress: &mut dyn FnMut(IndexProgress),
) -> Result<u64> {
    let paths: Vec<_> = def.keys.iter().map(|(p, _)| p.clone()).collect();
    let path_refs: Vec<_> = paths.iter().collect();
    let mut seen: HashMap<String, ()> = HashMap::new();
    let mut done = 0u64;
    let (mut multikey, mut mixed) = (0u64, 0u64);
    let probe = def.clone();
    let full = check_unique && def.partial.is_some();
    scan_docs(conn, table, def, full, filter, |_, doc| {
        for (i, p) in paths.iter().enumerate() {
            let bit = 1u64 << i;
            if has_array_on_path(&doc, p) {
                multikey |= bit;
            } else if let Some(v) = scalar_value(&doc, p) {
                if sorts_differently(v) {
                    mixed |= bit;
                }
            }
        }
        if check_unique && probe.indexes(&doc) {
            let tuples =
                key_tuples(&doc, &path_refs).ok_or_else(|| super::too_many_keys(&probe))?;
            for t in tuples {
                if seen.insert(tuple_text(&t), ()).is_some() {
                    return Err(Error::DuplicateKey {
                        collection: collection.to_string(),
                        index: probe.name.clone(),
                        key: super::keys::describe_key(&path_refs, &t),
                    });
                }
            }
        }
        done += 1;
        // With a filter, `done` counts only the documents let through.
        if filter.is_none() && done.is_multiple_of(REPORT_EVERY) {
            progress(IndexProgress {
                phase: IndexBuildPhase::Scanning,
                done,
                total,
            });
        }
        Ok(())
    })?;
    def.multikey = multikey;
    def.mixed = mixed;
    Ok(done)
}

/// The uniqueness check of a plain unique index whose documents set no flag, through the
/// index SQLite just built: a group of equal keys in SQL is a repeated key for MongoDB
/// too, and the scan then names it.
fn check_unique_after_build(
    conn: &Connection,
    collection: &str,
    table: &str,
    def: &IndexDef,
    total: u64,
) -> Result<()> {
    let exprs = def
        .keys
        .iter()
        .map(|(p, _)| path_expr(p))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| Error::InvalidArgument(format!("index '{}' paths", def.name)))?
        .join(", ");
    let repeated = conn
        .prepare(&format!(
            "SELECT 1 FROM {table} GROUP BY {exprs} HAVING count(*) > 1 LIMIT 1"
        ))?
        .exists([])?;
    if repeated {
        let mut exact = def.clone();
        scan_pass(
            conn,
            collection,
            table,
            &mut exact,
            None,
            true,
            total,
            &mut |_| {},
        )?;
    }
    Ok(())
}

/// An SQL condition true for every document that could make the index multikey (an
/// array on a key path or a prefix of it) or mixed (a value [`sorts_differently`]: a
/// boolean, a document, an array or an integer beyond `i64`, which SQLite reads as a
/// real). It may let through more than that; the scan decides. `None` when a path has
/// no JSON path form.
fn flag_filter(def: &IndexDef) -> Option<String> {
    let mut any = Vec::new();
    for (path, _) in &def.keys {
        let types = prefix_type_exprs(path)?;
        let (last, prefixes) = types.split_last()?;
        for t in prefixes {
            any.push(format!("{t} = 'array'"));
        }
        // One JSON lookup for the usual types (an `IN` list and a second test would
        // take two, and scanning costs little more than the lookups).
        any.push(format!(
            "CASE {last} WHEN 'text' THEN 0 WHEN 'real' THEN 0 WHEN 'null' THEN 0 \
             WHEN 'integer' THEN typeof({}) <> 'integer' \
             WHEN 'array' THEN 1 WHEN 'object' THEN 1 WHEN 'true' THEN 1 WHEN 'false' THEN 1 \
             ELSE 0 END",
            path_expr(path)?
        ));
    }
    Some(any.join(" OR "))
}

/// Creates the side table of `def` and fills it from every document of `table`.
pub(crate) fn create_side_table(
    conn: &Connection,
    def: &IndexDef,
    table: &str,
    mut progress: Option<&mut dyn FnMut(IndexProgress)>,
) -> Result<()> {
    let n = def.keys.len();
    let cols: Vec<String> = (0..n)
        .map(|i| format!("t{i} INTEGER NOT NULL, v{i} NOT NULL"))
        .collect();
    let pk: Vec<String> = (0..n).map(|i| format!("t{i}, v{i}")).collect();
    let side = def.side_table();
    conn.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {side}({}, rid INTEGER NOT NULL, PRIMARY KEY({}, rid)) WITHOUT ROWID;
         CREATE INDEX IF NOT EXISTS \"pocketdb_m{}_rid\" ON {side}(rid);",
        cols.join(", "),
        pk.join(", "),
        def.ident
    ))?;
    let total = count(conn, table)?;
    let paths = def.paths();
    let mut done = 0u64;
    let mut insert = insert_statement(conn, def)?;
    scan_docs(conn, table, def, false, None, |rid, doc| {
        let tuples = key_tuples(&doc, &paths).ok_or_else(|| super::too_many_keys(def))?;
        execute_per_tuple(&mut insert, rid, &tuples)?;
        done += 1;
        if done.is_multiple_of(REPORT_EVERY) {
            if let Some(p) = progress.as_mut() {
                p(IndexProgress {
                    phase: IndexBuildPhase::Multikey,
                    done,
                    total,
                });
            }
        }
        Ok(())
    })
}

/// The statement adding one key tuple (`t0, v0, ..., rid`) to `def`'s side table.
fn insert_statement<'c>(
    conn: &'c Connection,
    def: &IndexDef,
) -> Result<rusqlite::CachedStatement<'c>> {
    let marks = vec!["?"; 2 * def.keys.len() + 1].join(",");
    Ok(conn.prepare_cached(&format!(
        "INSERT OR IGNORE INTO {} VALUES ({marks})",
        def.side_table()
    ))?)
}

/// Adds the key tuples of document `rid` to the side table.
pub(crate) fn insert_keys(
    conn: &Connection,
    def: &IndexDef,
    rid: i64,
    tuples: &[Vec<KeyPart>],
) -> Result<()> {
    let mut stmt = insert_statement(conn, def)?;
    execute_per_tuple(&mut stmt, rid, tuples)
}

/// Runs `stmt` (an insert or delete whose parameters are `t0, v0, ..., rid`) for each
/// key tuple of document `rid`.
pub(crate) fn execute_per_tuple(
    stmt: &mut rusqlite::Statement<'_>,
    rid: i64,
    tuples: &[Vec<KeyPart>],
) -> Result<()> {
    let mut params: Vec<SqlValue> = Vec::new();
    for tuple in tuples {
        params.clear();
        push_tuple_params(tuple, &mut params);
        params.push(SqlValue::Integer(rid));
        stmt.execute(rusqlite::params_from_iter(params.iter()))?;
    }
    Ok(())
}

fn drop_def(conn: &Connection, def: &IndexDef) -> Result<()> {
    conn.execute_batch(&format!(
        "DROP INDEX IF EXISTS {}; DROP TABLE IF EXISTS {};",
        def.sql_index(),
        def.side_table()
    ))?;
    conn.execute(
        "DELETE FROM _pocketdb_indexes WHERE ident = ?1",
        [def.ident],
    )?;
    Ok(())
}

/// Drops one index by name (or by key specification, given as JSON text starting with
/// `{`). The `_id_` index cannot be dropped.
pub(crate) fn drop_index(conn: &Connection, collection: &str, name: &str) -> Result<()> {
    if name == "_id_" {
        return Err(Error::InvalidIndex {
            collection: collection.to_string(),
            name: name.to_string(),
            message: "the _id index cannot be dropped".to_string(),
        });
    }
    let set = load(conn, collection)?;
    let def = match set.by_name(name) {
        Some(d) => Some(d),
        None if name.starts_with('{') => serde_json::from_str::<Value>(name)
            .ok()
            .and_then(|spec| set.by_keys(&spec)),
        None => None,
    };
    let def = def.ok_or_else(|| Error::IndexNotFound {
        collection: collection.to_string(),
        name: name.to_string(),
    })?;
    drop_def(conn, def)?;
    bump_gen(conn)
}

/// Drops every secondary index of a collection; returns how many.
pub(crate) fn drop_all(conn: &Connection, collection: &str) -> Result<usize> {
    let set = load(conn, collection)?;
    for def in &set.defs {
        drop_def(conn, def)?;
    }
    if !set.defs.is_empty() {
        bump_gen(conn)?;
    }
    Ok(set.defs.len())
}

/// Removes a dropped collection's indexes (its table, with the expression indexes, is
/// dropped by the caller).
pub(crate) fn on_drop_collection(conn: &Connection, collection: &str) -> Result<()> {
    drop_all(conn, collection)?;
    super::vector::on_drop_collection(conn, collection)
}

/// Moves a renamed collection's indexes to its new name (the SQL objects are named by
/// `ident` and follow the table).
pub(crate) fn on_rename_collection(conn: &Connection, from: &str, to: &str) -> Result<()> {
    let n = conn.execute(
        "UPDATE _pocketdb_indexes SET collection = ?2 WHERE collection = ?1",
        [from, to],
    )?;
    if n > 0 {
        bump_gen(conn)?;
    }
    super::vector::on_rename_collection(conn, from, to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn def(keys: Value) -> IndexDef {
        IndexDef {
            name: "t".to_string(),
            ident: 1,
            keys: parse_keys(&keys).unwrap(),
            key_spec: keys,
            unique: false,
            sparse: false,
            partial: None,
            partial_json: None,
            ttl: None,
            multikey: 0,
            mixed: 0,
        }
    }

    /// The flags computed from every document in Rust, with no SQL filter.
    fn reference_flags(docs: &[Value], def: &IndexDef) -> (u64, u64) {
        let (mut multikey, mut mixed) = (0, 0);
        for doc in docs {
            for (i, (p, _)) in def.keys.iter().enumerate() {
                if has_array_on_path(doc, p) {
                    multikey |= 1 << i;
                } else if scalar_value(doc, p).is_some_and(sorts_differently) {
                    mixed |= 1 << i;
                }
            }
        }
        (multikey, mixed)
    }

    fn table_of(docs: &[Value]) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t(rid INTEGER PRIMARY KEY, doc BLOB NOT NULL)")
            .unwrap();
        for doc in docs {
            conn.execute("INSERT INTO t(doc) VALUES (jsonb(?1))", [doc.to_string()])
                .unwrap();
        }
        conn
    }

    fn built_flags(docs: &[Value], keys: &Value) -> (u64, u64) {
        let conn = table_of(docs);
        let mut d = def(keys.clone());
        scan_new_index(&conn, "c", "t", &mut d, docs.len() as u64, &mut |_| {}).unwrap();
        (d.multikey, d.mixed)
    }

    #[test]
    fn the_sql_prefilter_finds_every_document_that_sets_a_flag() {
        let docs = [
            json!({"a": 1}),
            json!({"a": "s"}),
            json!({"a": null}),
            json!({}),
            json!({"a": true}),
            json!({"a": false}),
            json!({"a": {"b": 1}}),
            json!({"a": [1, 2]}),
            json!({"a": []}),
            json!({"a": {"b": [1]}}),
            json!({"a": {"b": false}}),
            json!({"a": {"b": {}}}),
            json!({"a": 18446744073709551615u64}),
            json!({"a": 9223372036854775808u64}),
            json!({"a": i64::MAX}),
            json!({"a": i64::MIN}),
            json!({"a": 1.5}),
            json!({"a": -0.0}),
            json!({"c": {"d": {"e": {"f": 1}}}}),
            json!({"c": [{"d": {"e": 1}}]}),
            json!({"c": {"d": [{"e": 1}]}}),
            json!({"c": {"d": "x"}}),
            json!({"c": {"d": {"e": [1]}}}),
            json!({"c": {"d": {"e": 12345678901234567890u64}}}),
        ];
        let specs = [
            json!({"a": 1}),
            json!({"a.b": -1}),
            json!({"c.d.e": 1}),
            json!({"a": 1, "a.b": 1, "c.d.e": -1}),
        ];
        for keys in &specs {
            let d = def(keys.clone());
            assert!(flag_filter(&d).is_some(), "{keys}");
            // Each document alone decides the flags exactly, and so do all together.
            for doc in &docs {
                let one = std::slice::from_ref(doc);
                assert_eq!(
                    built_flags(one, keys),
                    reference_flags(one, &d),
                    "{keys} on {doc}"
                );
            }
            assert_eq!(
                built_flags(&docs, keys),
                reference_flags(&docs, &d),
                "{keys}"
            );
        }
        // Documents that set no flag do not pass the filter: they are not read at all.
        let conn = table_of(&[
            json!({"a": 1}),
            json!({"a": "x"}),
            json!({"a": {"b": 2}}),
            json!({"b": true}),
            json!({"a": i64::MAX}),
        ]);
        let filter = flag_filter(&def(json!({"a.b": 1}))).unwrap();
        let passing: i64 = conn
            .query_row(&format!("SELECT count(*) FROM t WHERE {filter}"), [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(passing, 0);
    }
}
