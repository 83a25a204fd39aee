//! The change log: every insert, update, replace and delete appends a row to
//! `_pocketdb_changes` in the same transaction as the write, so the log's order is commit
//! order and a rolled-back write leaves no entry. Live queries, watch, sync and
//! incremental backup read it.
//!
//! Besides writing and reading rows, this module delivers the log to subscribers:
//! [`ChangeStream`] (`watch`, blocking iterator or callback, resumable by token) and the
//! live queries of [`crate::live`], both fed by one dispatcher thread per database
//! ([`hub`]), and it trims the log by count, age or size ([`ChangeRetention`]).

mod diff;
pub(crate) mod hub;
pub(crate) mod retention;
pub(crate) mod watch;

pub use diff::UpdateDescription;
pub use retention::ChangeRetention;
pub use watch::{ChangeEvent, ChangeStream, FullDocument, WatchHandle, WatchOptions};

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
    /// For `Update`: the fields set and removed (absent in logs written before the
    /// column existed, and for other operations).
    pub update_description: Option<UpdateDescription>,
}

/// Adds the `fields` column (JSON of an update's changed and removed fields) to a change
/// log created before it existed. Idempotent.
pub(crate) fn migrate(conn: &Connection) -> Result<()> {
    let mut stmt =
        conn.prepare("SELECT 1 FROM pragma_table_info('_pocketdb_changes') WHERE name = 'fields'")?;
    if !stmt.exists([])? {
        conn.execute_batch("ALTER TABLE _pocketdb_changes ADD COLUMN fields TEXT")?;
    }
    Ok(())
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
    record_with_fields(conn, collection, id_key, op, rev, ts_millis, None)
}

/// Appends the entry of a document rewritten from `old` to `new`; an `Update` also
/// records which fields changed (MongoDB's `updateDescription`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn record_rewrite(
    conn: &Connection,
    collection: &str,
    id_key: &str,
    op: ChangeOp,
    rev: i64,
    ts_millis: i64,
    old: &Value,
    new: &Value,
) -> Result<()> {
    let fields = match op {
        ChangeOp::Update => Some(serde_json::to_string(&UpdateDescription::between(
            old, new,
        ))?),
        _ => None,
    };
    record_with_fields(
        conn,
        collection,
        id_key,
        op,
        rev,
        ts_millis,
        fields.as_deref(),
    )
}

/// Appends the entry of an update whose changed fields are already known.
pub(crate) fn record_update(
    conn: &Connection,
    collection: &str,
    id_key: &str,
    rev: i64,
    ts_millis: i64,
    description: &UpdateDescription,
) -> Result<()> {
    let fields = serde_json::to_string(description)?;
    record_with_fields(
        conn,
        collection,
        id_key,
        ChangeOp::Update,
        rev,
        ts_millis,
        Some(&fields),
    )
}

/// The prepared statement appending change-log entries, for a caller recording many
/// (see [`record_prepared`]).
pub(crate) fn recorder(conn: &Connection) -> Result<rusqlite::CachedStatement<'_>> {
    Ok(conn.prepare_cached(APPEND_SQL)?)
}

/// Appends an entry and lets SQLite number it: one above the largest `seq`, which is the
/// next number whenever the log holds an entry. An empty log makes SQLite pick 1, the
/// one case [`renumber_first`] corrects. So a number is never used twice, as
/// `AUTOINCREMENT` guarantees, but without its `sqlite_sequence` row (one more page
/// written and checkpointed per write) and without a `max(seq)` look-up per entry.
const APPEND_SQL: &str = "INSERT INTO _pocketdb_changes(collection, doc_id, op, rev, ts, fields)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

/// After an entry was appended as `seq`: when that is 1, the log was empty, and if
/// retention had trimmed it empty (`changes_trimmed_through`, see `retention`) the entry
/// is renumbered to follow the last trimmed one, so a resume token never goes back.
fn renumber_first(conn: &Connection, seq: i64) -> Result<()> {
    if seq != 1 {
        return Ok(());
    }
    let through = retention::trimmed_through(conn)?;
    if through > 0 {
        conn.prepare_cached("UPDATE _pocketdb_changes SET seq = ?1 WHERE seq = 1")?
            .execute([through.saturating_add(1)])?;
    }
    Ok(())
}

/// [`record`] through a statement from [`recorder`] (prepared on `conn`).
pub(crate) fn record_prepared(
    conn: &Connection,
    stmt: &mut rusqlite::CachedStatement<'_>,
    collection: &str,
    id_key: &str,
    op: ChangeOp,
    rev: i64,
    ts_millis: i64,
) -> Result<()> {
    let seq = stmt.insert(params![
        collection,
        id_key,
        op.as_str(),
        rev,
        ts_millis,
        None::<&str>
    ])?;
    renumber_first(conn, seq)
}

fn record_with_fields(
    conn: &Connection,
    collection: &str,
    id_key: &str,
    op: ChangeOp,
    rev: i64,
    ts_millis: i64,
    fields: Option<&str>,
) -> Result<()> {
    let seq = conn.prepare_cached(APPEND_SQL)?.insert(params![
        collection,
        id_key,
        op.as_str(),
        rev,
        ts_millis,
        fields
    ])?;
    renumber_first(conn, seq)
}

/// The last sequence number the log has used: its newest entry, or the last one
/// trimmed when trimming emptied it.
pub(crate) fn log_position(conn: &Connection) -> Result<i64> {
    let newest: Option<i64> =
        conn.query_row("SELECT max(seq) FROM _pocketdb_changes", [], |r| r.get(0))?;
    Ok(newest.unwrap_or(0).max(retention::trimmed_through(conn)?))
}

/// After a restore replaced the file's content (its change log included): the restored
/// log is cleared and numbering continues after both the live file's position `live`
/// and the restored one, so no sequence number is used twice; then a `drop` of every
/// collection the live file had (`dropped`) and an `insert` of every document restored
/// are recorded. A watcher or change-set replica that had read the live log to its end
/// thereby reaches the restored state; older resume tokens are expired (the trimmed
/// mark). One transaction on `conn`.
pub(crate) fn restart_after_restore(
    conn: &Connection,
    live: i64,
    dropped: &[String],
) -> Result<()> {
    let tx = conn.unchecked_transaction()?;
    let mark = live.max(log_position(&tx)?);
    tx.execute("DELETE FROM _pocketdb_changes", [])?;
    tx.execute(
        "INSERT INTO _pocketdb_meta(key, value) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        params![retention::TRIMMED_KEY, mark.to_string()],
    )?;
    let now = now_millis();
    for name in dropped {
        record(&tx, name, "null", ChangeOp::Drop, 0, now)?;
    }
    let restored: Vec<String> = {
        let mut stmt = tx.prepare("SELECT name FROM _pocketdb_collections ORDER BY name")?;
        let names = stmt.query_map([], |r| r.get(0))?;
        names.collect::<rusqlite::Result<_>>()?
    };
    for name in restored {
        // Numbered explicitly: the log may still be empty here.
        let base = log_position(&tx)?;
        tx.execute(
            &format!(
                "INSERT INTO _pocketdb_changes(seq, collection, doc_id, op, rev, ts, fields)
                 SELECT ?1 + row_number() OVER (ORDER BY rid), ?2, id, ?3, rev, ?4, NULL
                 FROM {}",
                crate::engine::schema::table_name(&name)
            ),
            params![base, name, ChangeOp::Insert.as_str(), now],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// Reads entries with `seq > since`, oldest first, optionally for one collection.
pub(crate) fn read_since(
    conn: &Connection,
    collection: Option<&str>,
    since: i64,
    limit: usize,
) -> Result<Vec<Change>> {
    Ok(read_keyed(conn, collection, since, limit)?
        .into_iter()
        .map(|(c, _)| c)
        .collect())
}

/// [`read_since`] with each entry's stored `doc_id` key (to look the document up).
pub(crate) fn read_keyed(
    conn: &Connection,
    collection: Option<&str>,
    since: i64,
    limit: usize,
) -> Result<Vec<(Change, String)>> {
    // LIMIT is a literal and the collection test is chosen here rather than with
    // `?2 IS NULL`: parameters the planner reads force a re-prepare when rebound.
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let sql = match collection {
        Some(_) => format!(
            "SELECT seq, collection, doc_id, op, rev, ts, fields FROM _pocketdb_changes
             WHERE seq > ?1 AND collection = ?2 ORDER BY seq LIMIT {limit}"
        ),
        None => format!(
            "SELECT seq, collection, doc_id, op, rev, ts, fields FROM _pocketdb_changes
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
            r.get::<_, Option<String>>(6)?,
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
    let mut out = Vec::with_capacity(rows.len());
    for (seq, collection, key, op, rev, ts_millis, fields) in rows {
        let change = Change {
            seq,
            collection,
            id: serde_json::from_str(&key).unwrap_or_else(|_| Value::String(key.clone())),
            op: ChangeOp::parse(&op),
            rev,
            ts_millis,
            update_description: fields.and_then(|f| serde_json::from_str(&f).ok()),
        };
        out.push((change, key));
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
