//! Vector indexes: one sqlite-vec `vec0` virtual table per (collection, field, metric),
//! kept in step with the documents by the write path, like multikey side tables.
//!
//! * `_pocketdb_vector_indexes(ident, collection, path, dimension, metric, stale)` is the
//!   catalog (created by the first `create_vector_index`);
//! * `"pocketdb_v<ident>"` is a `vec0(embedding float[<dimension>]
//!   distance_metric=<metric>)` table whose rowid is the document's `rid`. It holds a
//!   row for every document whose field is an array of exactly `dimension` finite
//!   numbers (and, for cosine, not all zeros): the documents `near` can return.
//!
//! The documents stay the source of truth; the table is a copy written in the same
//! transaction as each insert, update and delete (`after_write`), dropped with the
//! collection and renamed with it. A build without the `vector` feature cannot write to
//! a `vec0` table: when it writes a collection that has vector indexes it marks them
//! `stale` instead, and `near` then ignores them (brute force) until
//! `create_vector_index` rebuilds them. So does a value that does not fit in an `f32`.
//!
//! This module owns those SQL objects and nothing else.

// Without the `vector` feature only the catalog and the stale marking are used.
#![cfg_attr(not(feature = "vector"), allow(dead_code, unused_imports))]

use crate::error::Result;
use crate::value::FieldPath;
use rusqlite::{Connection, OptionalExtension};
use serde_json::Value;

/// A vector index as the engine uses it.
#[derive(Debug, Clone)]
pub(crate) struct VectorDef {
    pub ident: i64,
    pub path: FieldPath,
    pub dimension: usize,
    /// `"cosine"` or `"l2"` (sqlite-vec's names).
    pub metric: String,
    /// Not in step with the documents: not used by queries, not maintained.
    pub stale: bool,
}

impl VectorDef {
    /// Quoted name of the `vec0` table.
    pub(crate) fn table(&self) -> String {
        format!("\"pocketdb_v{}\"", self.ident)
    }
}

const CATALOG: &str = "_pocketdb_vector_indexes";

fn catalog_exists(conn: &Connection) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1")?
        .exists([CATALOG])?)
}

/// A collection's vector indexes (none when the catalog was never created).
pub(crate) fn load(conn: &Connection, collection: &str) -> Result<Vec<VectorDef>> {
    if !catalog_exists(conn)? {
        return Ok(Vec::new());
    }
    let mut stmt = conn.prepare_cached(
        "SELECT ident, path, dimension, metric, stale FROM _pocketdb_vector_indexes
         WHERE collection = ?1 ORDER BY ident",
    )?;
    let rows = stmt.query_map([collection], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, bool>(4)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (ident, path, dimension, metric, stale) = row?;
        out.push(VectorDef {
            ident,
            path: FieldPath::parse(&path)?,
            dimension: usize::try_from(dimension).unwrap_or(0),
            metric,
            stale,
        });
    }
    Ok(out)
}

/// The value at a dotted path through documents only (no array traversal).
pub(crate) fn value_at<'a>(doc: &'a Value, path: &FieldPath) -> Option<&'a Value> {
    path.segments()
        .iter()
        .try_fold(doc, |v, seg| v.as_object().and_then(|m| m.get(seg)))
}

/// The value as a vector: an array of finite numbers.
pub(crate) fn as_vector(v: &Value) -> Option<Vec<f64>> {
    v.as_array()?
        .iter()
        .map(|x| x.as_f64().filter(|f| f.is_finite()))
        .collect()
}

fn mark_stale(conn: &Connection, def: &VectorDef) -> Result<()> {
    conn.execute(
        "UPDATE _pocketdb_vector_indexes SET stale = 1 WHERE ident = ?1",
        [def.ident],
    )?;
    super::bump_gen(conn)
}

/// Drops a collection's vector indexes.
pub(crate) fn on_drop_collection(conn: &Connection, collection: &str) -> Result<()> {
    let defs = load(conn, collection)?;
    for def in &defs {
        drop_def(conn, def)?;
    }
    if !defs.is_empty() {
        super::bump_gen(conn)?;
    }
    Ok(())
}

/// Moves a renamed collection's vector indexes to its new name.
pub(crate) fn on_rename_collection(conn: &Connection, from: &str, to: &str) -> Result<()> {
    if !catalog_exists(conn)? {
        return Ok(());
    }
    let n = conn.execute(
        "UPDATE _pocketdb_vector_indexes SET collection = ?2 WHERE collection = ?1",
        [from, to],
    )?;
    if n > 0 {
        super::bump_gen(conn)?;
    }
    Ok(())
}

#[cfg(not(feature = "vector"))]
fn drop_def(conn: &Connection, def: &VectorDef) -> Result<()> {
    // Without sqlite-vec the vec0 table cannot be dropped (no module); forget it in the
    // catalog and leave the table to a build with the feature (it is only ever reached
    // through the catalog).
    conn.execute(
        "DELETE FROM _pocketdb_vector_indexes WHERE ident = ?1",
        [def.ident],
    )?;
    Ok(())
}

#[cfg(feature = "vector")]
fn drop_def(conn: &Connection, def: &VectorDef) -> Result<()> {
    conn.execute_batch(&format!("DROP TABLE IF EXISTS {}", def.table()))?;
    conn.execute(
        "DELETE FROM _pocketdb_vector_indexes WHERE ident = ?1",
        [def.ident],
    )?;
    Ok(())
}

/// Keeps the vector tables in step after a row was written (`old` and `new` versions
/// of `rid`; `None` for an insert or a delete).
#[cfg(not(feature = "vector"))]
pub(crate) fn after_write(
    conn: &Connection,
    defs: &[VectorDef],
    _rid: i64,
    _old: Option<&Value>,
    _new: Option<&Value>,
) -> Result<()> {
    for def in defs.iter().filter(|d| !d.stale) {
        mark_stale(conn, def)?;
    }
    Ok(())
}

/// Keeps the vector tables in step after a row was written (`old` and `new` versions
/// of `rid`; `None` for an insert or a delete).
#[cfg(feature = "vector")]
pub(crate) fn after_write(
    conn: &Connection,
    defs: &[VectorDef],
    rid: i64,
    old: Option<&Value>,
    new: Option<&Value>,
) -> Result<()> {
    for def in defs.iter().filter(|d| !d.stale) {
        let before = old.and_then(|d| indexed_value(def, d));
        let after = new.and_then(|d| indexed_value(def, d));
        if old.is_some() && new.is_some() && before == after {
            continue;
        }
        if before.is_some() {
            conn.prepare_cached(&format!("DELETE FROM {} WHERE rowid = ?1", def.table()))?
                .execute([rid])?;
        }
        if let Some(v) = after {
            match f32_blob(def, v)? {
                Some(blob) => {
                    conn.prepare_cached(&format!(
                        "INSERT INTO {}(rowid, embedding) VALUES (?1, ?2)",
                        def.table()
                    ))?
                    .execute(rusqlite::params![rid, blob])?;
                }
                None => mark_stale(conn, def)?,
            }
        }
    }
    Ok(())
}

/// The document's value for the index, when it is a vector the index holds.
#[cfg(feature = "vector")]
fn indexed_value<'a>(def: &VectorDef, doc: &'a Value) -> Option<&'a Value> {
    value_at(doc, &def.path).filter(|v| {
        as_vector(v).is_some_and(|x| {
            x.len() == def.dimension && (def.metric != "cosine" || x.iter().any(|c| *c != 0.0))
        })
    })
}

/// The vector as sqlite-vec's `float32` blob; `None` when a component does not fit in
/// an `f32` (the index then cannot rank it as the exact search does).
#[cfg(feature = "vector")]
fn f32_blob(def: &VectorDef, v: &Value) -> Result<Option<Vec<u8>>> {
    let Some(x) = as_vector(v) else {
        return Ok(None);
    };
    let mut blob = Vec::with_capacity(def.dimension * 4);
    for c in x {
        #[allow(clippy::cast_possible_truncation)] // range checked just below
        let f = c as f32;
        if !f.is_finite() {
            return Ok(None);
        }
        blob.extend_from_slice(&f.to_le_bytes());
    }
    Ok(Some(blob))
}

/// The query vector as a `float32` blob (components already checked finite).
#[cfg(feature = "vector")]
pub(crate) fn query_blob(query: &[f64]) -> Option<Vec<u8>> {
    let mut blob = Vec::with_capacity(query.len() * 4);
    for c in query {
        #[allow(clippy::cast_possible_truncation)] // range checked just below
        let f = *c as f32;
        if !f.is_finite() {
            return None;
        }
        blob.extend_from_slice(&f.to_le_bytes());
    }
    Some(blob)
}

/// Registers sqlite-vec with every SQLite connection opened afterwards in this process
/// (`sqlite3_auto_extension`); done once, before the first connection is opened.
#[cfg(feature = "vector")]
pub(crate) fn register_extension() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        type Init = unsafe extern "C" fn(
            *mut rusqlite::ffi::sqlite3,
            *mut *mut std::os::raw::c_char,
            *const rusqlite::ffi::sqlite3_api_routines,
        ) -> std::os::raw::c_int;
        // SAFETY: `sqlite3_vec_init` is the extension's entry point, declared by the
        // crate without its parameters; its real signature is `Init` (sqlite-vec's
        // documented way of registering it with rusqlite). It is compiled with
        // SQLITE_CORE against the same statically linked SQLite as rusqlite.
        let rc = unsafe {
            let init =
                std::mem::transmute::<*const (), Init>(sqlite_vec::sqlite3_vec_init as *const ());
            rusqlite::ffi::sqlite3_auto_extension(Some(init))
        };
        if rc != rusqlite::ffi::SQLITE_OK {
            tracing::warn!("sqlite-vec: sqlite3_auto_extension failed with code {rc}");
        }
    });
}

/// Creates (or rebuilds, when stale) the vector index on `path` for `metric` and fills
/// it from the collection's documents. Returns whether it was (re)built.
#[cfg(feature = "vector")]
pub(crate) fn create(
    conn: &Connection,
    collection: &str,
    table: &str,
    path: &FieldPath,
    dimension: usize,
    metric: &str,
) -> Result<bool> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS _pocketdb_vector_indexes(
             ident INTEGER PRIMARY KEY,
             collection TEXT NOT NULL,
             path TEXT NOT NULL,
             dimension INTEGER NOT NULL,
             metric TEXT NOT NULL,
             stale INTEGER NOT NULL DEFAULT 0,
             UNIQUE(collection, path, metric))",
    )?;
    let existing: Option<(i64, i64, bool)> = conn
        .prepare_cached(
            "SELECT ident, dimension, stale FROM _pocketdb_vector_indexes
             WHERE collection = ?1 AND path = ?2 AND metric = ?3",
        )?
        .query_row(
            rusqlite::params![collection, path.to_string(), metric],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let dim = i64::try_from(dimension).unwrap_or(i64::MAX);
    if let Some((ident, d, stale)) = existing {
        if d != dim {
            return Err(crate::Error::InvalidArgument(format!(
                "a vector index on '{path}' ({metric}) exists with dimension {d}, not {dimension}"
            )));
        }
        if !stale {
            return Ok(false);
        }
        conn.execute_batch(&format!("DROP TABLE IF EXISTS \"pocketdb_v{ident}\""))?;
        conn.execute(
            "DELETE FROM _pocketdb_vector_indexes WHERE ident = ?1",
            [ident],
        )?;
    }
    conn.execute(
        "INSERT INTO _pocketdb_vector_indexes(collection, path, dimension, metric) VALUES (?1, ?2, ?3, ?4)",
        rusqlite::params![collection, path.to_string(), dim, metric],
    )?;
    let def = VectorDef {
        ident: conn.last_insert_rowid(),
        path: path.clone(),
        dimension,
        metric: metric.to_string(),
        stale: false,
    };
    conn.execute_batch(&format!(
        "CREATE VIRTUAL TABLE {} USING vec0(embedding float[{dimension}] distance_metric={metric})",
        def.table()
    ))?;
    let mut stmt = conn.prepare(&format!("SELECT rid, doc FROM {table}"))?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let rid: i64 = r.get(0)?;
        let doc = crate::value::jsonb::stored_doc(conn, r.get_ref(1)?)?;
        after_write(conn, std::slice::from_ref(&def), rid, None, Some(&doc))?;
        // a value that does not fit in f32 marked it stale: stop filling
        if conn
            .prepare_cached("SELECT stale FROM _pocketdb_vector_indexes WHERE ident = ?1")?
            .query_row([def.ident], |r| r.get::<_, bool>(0))?
        {
            break;
        }
    }
    super::bump_gen(conn)?;
    Ok(true)
}
