//! Integrity checks, vacuum and WAL checkpoints.

use crate::database::Database;
use crate::engine::schema::FORMAT_VERSION;
use crate::error::{Error, Result};
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use std::path::Path;

/// The outcome of an integrity check: `ok` with no problems, or the problems found, in
/// words. A damaged file gives a report, never a panic.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct IntegrityReport {
    /// True when no problem was found.
    pub ok: bool,
    /// What is wrong, one line each (SQLite's integrity_check messages and pocketdb's
    /// catalog checks).
    pub problems: Vec<String>,
}

impl IntegrityReport {
    fn from_problems(problems: Vec<String>) -> IntegrityReport {
        IntegrityReport {
            ok: problems.is_empty(),
            problems,
        }
    }
}

impl std::fmt::Display for IntegrityReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.ok {
            return write!(f, "ok");
        }
        writeln!(f, "{} problem(s):", self.problems.len())?;
        for p in &self.problems {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

/// SQLite's `integrity_check` (or the faster `quick_check`) as a list of problems.
pub(crate) fn integrity_problems(conn: &Connection, quick: bool) -> Result<Vec<String>> {
    let pragma = if quick {
        "PRAGMA quick_check(100)"
    } else {
        "PRAGMA integrity_check(100)"
    };
    let mut stmt = conn.prepare(pragma)?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for row in rows {
        let line = row?;
        if line != "ok" {
            out.push(line);
        }
    }
    Ok(out)
}

/// pocketdb's own checks: format version, catalog entries with their tables, documents
/// that decode.
fn catalog_problems(conn: &Connection, documents: bool) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let version: Option<String> = conn
        .query_row(
            "SELECT value FROM _pocketdb_meta WHERE key = 'format_version'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    match version {
        None => out.push("no format version in _pocketdb_meta".to_string()),
        Some(v) if v != FORMAT_VERSION.to_string() => {
            out.push(format!("format version {v}, expected {FORMAT_VERSION}"))
        }
        _ => {}
    }
    let mut stmt = conn.prepare("SELECT name, tbl FROM _pocketdb_collections ORDER BY name")?;
    let catalog = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    for (name, tbl) in &catalog {
        let exists: bool = conn.query_row(
            "SELECT EXISTS(SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1)",
            [tbl],
            |r| r.get(0),
        )?;
        if !exists {
            out.push(format!("collection '{name}': table {tbl} is missing"));
            continue;
        }
        if !documents || crate::engine::schema::validate_collection_name(name).is_err() {
            continue;
        }
        let sql = format!(
            "SELECT count(*) FROM {} WHERE CASE WHEN json_valid(doc, 8) THEN json_type(doc, '$._id') IS NULL ELSE 1 END",
            crate::engine::schema::table_name(name)
        );
        let bad: i64 = conn.query_row(&sql, [], |r| r.get(0))?;
        if bad > 0 {
            out.push(format!(
                "collection '{name}': {bad} document(s) are not valid JSONB or lack an _id"
            ));
        }
    }
    let mut stmt = conn.prepare(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name LIKE 'c\\_%' ESCAPE '\\'
         AND name NOT IN (SELECT tbl FROM _pocketdb_collections) ORDER BY name",
    )?;
    let orphans = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    for t in orphans {
        out.push(format!("table {t} has no catalog entry"));
    }
    Ok(out)
}

fn check_conn(conn: &Connection, quick: bool) -> IntegrityReport {
    let mut problems = match integrity_problems(conn, quick) {
        Ok(p) => p,
        Err(e) => vec![format!("integrity check failed: {e}")],
    };
    if problems.is_empty() {
        match catalog_problems(conn, !quick) {
            Ok(p) => problems.extend(p),
            Err(e) => problems.push(format!("catalog check failed: {e}")),
        }
    }
    IntegrityReport::from_problems(problems)
}

/// Checks the database file at `path` without opening it as a [`Database`] (which
/// would fail on a damaged file): SQLite's `integrity_check`, then pocketdb's catalog
/// and document checks. A file that cannot be opened or is not a database gives a
/// report with the reason; only a missing file is an error.
pub fn check_file(path: &Path) -> Result<IntegrityReport> {
    if !path.is_file() {
        return Err(Error::Io(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no database file at {}", path.display()),
        )));
    }
    let conn = match Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
    ) {
        Ok(c) => c,
        Err(e) => {
            return Ok(IntegrityReport::from_problems(vec![format!(
                "cannot open {}: {e}",
                path.display()
            )]))
        }
    };
    Ok(check_conn(&conn, false))
}

/// How much a WAL checkpoint does (SQLite's modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CheckpointMode {
    /// Copy what can be copied without waiting.
    Passive,
    /// Wait for writers, copy everything.
    Full,
    /// Like `Full`, then wait for readers so the next writer restarts the WAL.
    Restart,
    /// Like `Restart`, then truncate the WAL file to zero bytes (the default).
    #[default]
    Truncate,
}

impl CheckpointMode {
    fn pragma(self) -> &'static str {
        match self {
            CheckpointMode::Passive => "PASSIVE",
            CheckpointMode::Full => "FULL",
            CheckpointMode::Restart => "RESTART",
            CheckpointMode::Truncate => "TRUNCATE",
        }
    }
}

/// What a checkpoint did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CheckpointResult {
    /// True when a reader or writer kept the checkpoint from completing.
    pub busy: bool,
    /// Frames in the WAL.
    pub wal_frames: i64,
    /// Frames copied into the database file.
    pub checkpointed_frames: i64,
}

impl Database {
    /// Runs SQLite's `integrity_check` and pocketdb's catalog and document checks.
    pub fn integrity_check(&self) -> Result<IntegrityReport> {
        self.read(|conn| Ok(check_conn(conn, false)))
    }

    /// The faster `quick_check` (no index/table cross-checks, no document scan).
    pub fn quick_check(&self) -> Result<IntegrityReport> {
        self.read(|conn| Ok(check_conn(conn, true)))
    }

    /// Rebuilds the file, returning free pages to the file system. Takes the writer for
    /// its duration (writes wait).
    pub fn vacuum(&self) -> Result<()> {
        let writer = self.inner.pool.writer();
        writer.execute_batch("VACUUM")?;
        Ok(())
    }

    /// Writes a compacted copy of the database to `path` (`VACUUM INTO`): a consistent
    /// snapshot like [`backup_to`](Database::backup_to) (holding, in buffered mode, every
    /// write acknowledged before it), smaller, without progress.
    pub fn vacuum_into(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        if path.exists() {
            return Err(Error::InvalidArgument(format!(
                "{} exists; VACUUM INTO needs a new file",
                path.display()
            )));
        }
        self.flush()?;
        let target = path.to_string_lossy().into_owned();
        match self.path() {
            Some(_) => self.read(|conn| Ok(conn.execute("VACUUM INTO ?1", [&target])?))?,
            None => self
                .inner
                .pool
                .writer()
                .execute("VACUUM INTO ?1", [&target])?,
        };
        Ok(())
    }

    /// Copies the WAL into the database file (`PRAGMA wal_checkpoint`).
    pub fn checkpoint(&self, mode: CheckpointMode) -> Result<CheckpointResult> {
        let writer = self.inner.pool.writer();
        let (busy, log, done): (i64, i64, i64) = writer.query_row(
            &format!("PRAGMA wal_checkpoint({})", mode.pragma()),
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        Ok(CheckpointResult {
            busy: busy != 0,
            wal_frames: log,
            checkpointed_frames: done,
        })
    }
}
