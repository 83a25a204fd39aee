//! The change log: every insert, update, replace and delete appends a row to
//! `_pocketdb_changes` in the same transaction as the write, so the log's order is commit
//! order and a rolled-back write leaves no entry. Live queries, watch, sync and
//! incremental backup read it; this module only writes and reads rows.

use crate::error::Result;
use rusqlite::{params, Connection};
use serde_json::Value;

/// Kind of a logged write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeOp {
    /// A document was inserted (also by an upsert).
    Insert,
    /// A document was changed by update operators.
    Update,
    /// A document was replaced whole.
    Replace,
    /// A document was deleted.
    Delete,
    /// The collection was dropped (`id` is null).
    Drop,
}

impl ChangeOp {
    /// The name stored in the log (`insert`, `update`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeOp::Insert => "insert",
            ChangeOp::Update => "update",
            ChangeOp::Replace => "replace",
            ChangeOp::Delete => "delete",
            ChangeOp::Drop => "drop",
        }
    }

    fn parse(s: &str) -> ChangeOp {
        match s {
            "insert" => ChangeOp::Insert,
            "update" => ChangeOp::Update,
            "replace" => ChangeOp::Replace,
            "delete" => ChangeOp::Delete,
            _ => ChangeOp::Drop,
        }
    }
}

/// One entry of the change log.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Position in the log: strictly increasing in commit order, usable as a resume token.
    pub seq: i64,
    /// Collection written.
    pub collection: String,
    /// `_id` of the document (null for `Drop`).
    pub id: Value,
    /// What happened.
    pub op: ChangeOp,
    /// Revision of the document after the write (for deletes: the revision deleted).
    pub rev: i64,
    /// Wall-clock time of the write, milliseconds since the Unix epoch.
    pub ts_millis: i64,
}

/// Appends an entry (called inside the write's transaction).
pub(crate) fn record(
    conn: &Connection,
    collection: &str,
    id_key: &str,
    op: ChangeOp,
    rev: i64,
    ts_millis: i64,
) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO _pocketdb_changes(collection, doc_id, op, rev, ts) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    stmt.execute(params![collection, id_key, op.as_str(), rev, ts_millis])?;
    Ok(())
}

/// Reads entries with `seq > since`, oldest first, optionally for one collection.
pub(crate) fn read_since(
    conn: &Connection,
    collection: Option<&str>,
    since: i64,
    limit: usize,
) -> Result<Vec<Change>> {
    // LIMIT is a literal and the collection test is chosen here rather than with
    // `?2 IS NULL`: parameters the planner reads force a re-prepare when rebound.
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let sql = match collection {
        Some(_) => format!(
            "SELECT seq, collection, doc_id, op, rev, ts FROM _pocketdb_changes
             WHERE seq > ?1 AND collection = ?2 ORDER BY seq LIMIT {limit}"
        ),
        None => format!(
            "SELECT seq, collection, doc_id, op, rev, ts FROM _pocketdb_changes
             WHERE seq > ?1 ORDER BY seq LIMIT {limit}"
        ),
    };
    let mut stmt = conn.prepare_cached(&sql)?;
    let map_row = |r: &rusqlite::Row<'_>| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, i64>(4)?,
            r.get::<_, i64>(5)?,
        ))
    };
    let rows: Vec<_> = match collection {
        Some(c) => stmt
            .query_map(params![since, c], map_row)?
            .collect::<rusqlite::Result<_>>()?,
        None => stmt
            .query_map(params![since], map_row)?
            .collect::<rusqlite::Result<_>>()?,
    };
    let mut out = Vec::new();
    for (seq, collection, id, op, rev, ts_millis) in rows {
        out.push(Change {
            seq,
            collection,
            id: serde_json::from_str(&id).unwrap_or(Value::String(id)),
            op: ChangeOp::parse(&op),
            rev,
            ts_millis,
        });
    }
    Ok(out)
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
