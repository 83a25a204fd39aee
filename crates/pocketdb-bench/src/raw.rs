//! The raw rusqlite side of each workload: the same work without pocketdb.

use rusqlite::{params, Connection};
use serde_json::Value;
use std::path::Path;

pub(crate) fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    let _: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    conn.execute_batch(
        "PRAGMA synchronous=NORMAL;
         PRAGMA cache_size=-65536;
         PRAGMA mmap_size=268435456;
         PRAGMA temp_store=MEMORY;
         CREATE TABLE IF NOT EXISTS docs(
             rid INTEGER PRIMARY KEY,
             id TEXT NOT NULL UNIQUE,
             doc BLOB NOT NULL);",
    )?;
    Ok(conn)
}

pub(crate) fn insert_batch(conn: &mut Connection, docs: &[Value]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare_cached("INSERT INTO docs(id, doc) VALUES (?1, jsonb(?2))")?;
        for d in docs {
            let id = d["_id"].as_str().unwrap_or_default();
            stmt.execute(params![id, serde_json::to_string(d).unwrap_or_default()])?;
        }
    }
    tx.commit()
}

pub(crate) fn get(conn: &Connection, id: &str) -> rusqlite::Result<Option<Value>> {
    let mut stmt = conn.prepare_cached("SELECT json(doc) FROM docs WHERE id = ?1")?;
    let mut rows = stmt.query([id])?;
    match rows.next()? {
        Some(r) => {
            let text: String = r.get(0)?;
            Ok(serde_json::from_str(&text).ok())
        }
        None => Ok(None),
    }
}

pub(crate) fn scan(conn: &Connection, city: &str) -> rusqlite::Result<usize> {
    scan_table(conn, "docs", city)
}

/// The `find-scan` query on `table` (a fixed name, never user input).
pub(crate) fn scan_table(conn: &Connection, table: &str, city: &str) -> rusqlite::Result<usize> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT json(doc) FROM \"{table}\" WHERE json_extract(doc, '$.score') > 50 \
         AND json_extract(doc, '$.city') = ?1"
    ))?;
    let n = count_decoded(stmt.query([city])?)?;
    Ok(n)
}

pub(crate) fn find_by_email(conn: &Connection, email: &str) -> rusqlite::Result<usize> {
    let mut stmt =
        conn.prepare_cached("SELECT json(doc) FROM docs WHERE json_extract(doc, '$.email') = ?1")?;
    let n = count_decoded(stmt.query([email])?)?;
    Ok(n)
}

/// Read-modify-write as an application without pocketdb would do it: read the document,
/// change it with serde_json, write it back, all in one transaction.
pub(crate) fn inc_age(conn: &mut Connection, id: &str) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut get = tx.prepare_cached("SELECT rid, json(doc) FROM docs WHERE id = ?1")?;
        let found: Option<(i64, String)> = {
            let mut rows = get.query([id])?;
            match rows.next()? {
                Some(r) => Some((r.get(0)?, r.get(1)?)),
                None => None,
            }
        };
        if let Some((rid, text)) = found {
            let mut doc: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let age = doc["age"].as_i64().unwrap_or(0);
            doc["age"] = Value::from(age + 1);
            let mut put = tx.prepare_cached("UPDATE docs SET doc = jsonb(?1) WHERE rid = ?2")?;
            put.execute(params![
                serde_json::to_string(&doc).unwrap_or_default(),
                rid
            ])?;
        }
    }
    tx.commit()
}

pub(crate) fn range_sort(conn: &Connection, low: f64) -> rusqlite::Result<usize> {
    let mut stmt = conn.prepare_cached(
        "SELECT json(doc) FROM docs WHERE json_extract(doc, '$.score') > ?1 \
         ORDER BY json_extract(doc, '$.score') LIMIT 20",
    )?;
    let n = count_decoded(stmt.query([low])?)?;
    Ok(n)
}

/// `find-sort-scan`: the scores of the city's documents with the highest scores, by
/// SQLite's sorter (`limit` -1: all of them), each document decoded as pocketdb would.
pub(crate) fn top_scores(
    conn: &Connection,
    city: &str,
    limit: i64,
) -> rusqlite::Result<Vec<Value>> {
    let mut stmt = conn.prepare_cached(
        "SELECT json(doc) FROM docs WHERE json_extract(doc, '$.city') = ?1 \
         ORDER BY json_extract(doc, '$.score') DESC LIMIT ?2",
    )?;
    let mut rows = stmt.query(rusqlite::params![city, limit])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let text: String = r.get(0)?;
        let doc: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        out.push(doc["score"].clone());
    }
    Ok(out)
}

/// Inserts documents and, by hand, one `(sku, rid)` row per element of `skus`: what an
/// application does to index an array without pocketdb.
pub(crate) fn insert_with_skus(conn: &mut Connection, docs: &[Value]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS skus(value TEXT NOT NULL, rid INTEGER NOT NULL,
                 PRIMARY KEY(value, rid)) WITHOUT ROWID",
        )?;
        let mut stmt = tx.prepare_cached("INSERT INTO docs(id, doc) VALUES (?1, jsonb(?2))")?;
        let mut side =
            tx.prepare_cached("INSERT OR IGNORE INTO skus(value, rid) VALUES (?1, ?2)")?;
        for d in docs {
            let id = d["_id"].as_str().unwrap_or_default();
            stmt.execute(params![id, serde_json::to_string(d).unwrap_or_default()])?;
            let rid = tx.last_insert_rowid();
            for sku in d["skus"].as_array().into_iter().flatten() {
                side.execute(params![sku.as_str().unwrap_or_default(), rid])?;
            }
        }
    }
    tx.commit()
}

pub(crate) fn find_by_sku(conn: &Connection, sku: &str) -> rusqlite::Result<usize> {
    let mut stmt = conn.prepare_cached(
        "SELECT json(doc) FROM docs WHERE rid IN (SELECT rid FROM skus WHERE value = ?1)",
    )?;
    let n = count_decoded(stmt.query([sku])?)?;
    Ok(n)
}

/// Decodes every document a `SELECT json(doc) …` returns, as an application would, and
/// counts them.
fn count_decoded(mut rows: rusqlite::Rows<'_>) -> rusqlite::Result<usize> {
    let mut n = 0;
    while let Some(r) = rows.next()? {
        let text: String = r.get(0)?;
        let _doc: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        n += 1;
    }
    Ok(n)
}
