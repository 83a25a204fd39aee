//! Change-log retention: trimming the oldest entries by count, age or size.
//!
//! The policy is stored in the file (`_pocketdb_meta`, key `change_retention`) so every
//! handle and process applies the same one, and the highest trimmed sequence is kept
//! (`changes_trimmed_through`) so that resuming from a token older than that is a clear
//! [`Error::ResumeTokenExpired`] rather than a silent gap.

use crate::error::{Error, Result};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How much of the change log to keep. Every limit that is set applies (the strictest
/// wins); the default keeps everything. Trimming runs on the writer every
/// `check_every` commits (or at most once a second), and on demand through
/// [`Database::trim_changes`](crate::Database::trim_changes).
///
/// ```
/// use pocketdb::{ChangeRetention, Database};
/// use serde_json::json;
///
/// let db = Database::memory()?;
/// db.set_change_retention(ChangeRetention::default().max_count(2))?;
/// let c = db.collection::<serde_json::Value>("c");
/// for i in 0..5 { c.insert_one(json!({"i": i}))?; }
/// db.trim_changes()?;
/// assert_eq!(db.changes_since(0, 100)?.len(), 2);
/// assert!(db.watch_from(1).is_err()); // trimmed: resuming would leave a gap
/// # Ok::<(), pocketdb::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeRetention {
    /// Keep at most this many entries.
    pub max_count: Option<u64>,
    /// Drop entries older than this.
    pub max_age: Option<Duration>,
    /// Keep the newest entries up to about this many bytes (text of the entries plus a
    /// fixed overhead per row).
    pub max_bytes: Option<u64>,
    /// Commits between automatic trims (default 100).
    pub check_every: u32,
}

impl Default for ChangeRetention {
    fn default() -> Self {
        ChangeRetention {
            max_count: None,
            max_age: None,
            max_bytes: None,
            check_every: 100,
        }
    }
}

impl ChangeRetention {
    /// Keep at most `n` entries.
    pub fn max_count(mut self, n: u64) -> Self {
        self.max_count = Some(n);
        self
    }

    /// Drop entries older than `age`.
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = Some(age);
        self
    }

    /// Keep about `bytes` bytes of entries.
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = Some(bytes);
        self
    }

    /// Commits between automatic trims.
    pub fn check_every(mut self, commits: u32) -> Self {
        self.check_every = commits.max(1);
        self
    }

    /// True when no limit is set (nothing is ever trimmed).
    pub fn is_unbounded(&self) -> bool {
        self.max_count.is_none() && self.max_age.is_none() && self.max_bytes.is_none()
    }
}

impl crate::Database {
    /// Sets the change-log retention policy, stored in the file for every handle and
    /// process, and applies it once now.
    pub fn set_change_retention(&self, policy: ChangeRetention) -> Result<()> {
        self.inner.pool.write(|conn| store(conn, &policy))?;
        self.inner.hub.set_retention(policy);
        self.trim_changes()?;
        Ok(())
    }

    /// The change-log retention policy in effect.
    pub fn change_retention(&self) -> ChangeRetention {
        self.inner.hub.retention()
    }

    /// Applies the retention policy now; returns the number of entries removed.
    pub fn trim_changes(&self) -> Result<u64> {
        let policy = self.inner.hub.retention();
        self.inner.pool.write(|conn| trim(conn, &policy))
    }

    /// The oldest token a change stream can resume from (0 when nothing was trimmed).
    pub fn oldest_resume_token(&self) -> Result<i64> {
        self.read(trimmed_through)
    }
}

const POLICY_KEY: &str = "change_retention";
pub(super) const TRIMMED_KEY: &str = "changes_trimmed_through";

/// The policy stored in the file (default when none).
pub(crate) fn load(conn: &Connection) -> Result<ChangeRetention> {
    let text: Option<String> = conn
        .query_row(
            "SELECT value FROM _pocketdb_meta WHERE key = ?1",
            [POLICY_KEY],
            |r| r.get(0),
        )
        .optional()?;
    Ok(match text {
        Some(t) => serde_json::from_str(&t)?,
        None => ChangeRetention::default(),
    })
}

/// Stores the policy in the file.
pub(crate) fn store(conn: &Connection, policy: &ChangeRetention) -> Result<()> {
    conn.execute(
        "INSERT INTO _pocketdb_meta(key, value) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        params![POLICY_KEY, serde_json::to_string(policy)?],
    )?;
    Ok(())
}

/// The highest sequence removed by retention (0 when nothing was).
pub(crate) fn trimmed_through(conn: &Connection) -> Result<i64> {
    let text: Option<String> = conn
        .query_row(
            "SELECT value FROM _pocketdb_meta WHERE key = ?1",
            [TRIMMED_KEY],
            |r| r.get(0),
        )
        .optional()?;
    Ok(text.and_then(|t| t.parse().ok()).unwrap_or(0))
}

/// Fails with `ResumeTokenExpired` when changes after `token` were trimmed.
pub(crate) fn check_token(conn: &Connection, token: i64) -> Result<()> {
    let trimmed = trimmed_through(conn)?;
    if token < trimmed {
        return Err(Error::ResumeTokenExpired {
            token,
            oldest_resumable: trimmed,
        });
    }
    // Positions only grow (a restore continues the numbering), so one past the end was
    // never this log's: following it would skip the changes up to it.
    let newest = super::log_position(conn)?;
    if token > newest {
        return Err(Error::ResumeTokenNotFound { token, newest });
    }
    Ok(())
}

/// Applies a policy inside the caller's write transaction; returns the number of
/// entries removed.
pub(crate) fn trim(conn: &Connection, policy: &ChangeRetention) -> Result<u64> {
    if policy.is_unbounded() {
        return Ok(0);
    }
    let tx = conn;
    let mut cutoff: Option<i64> = None;
    let mut raise = |c: Option<i64>| {
        if let Some(c) = c {
            cutoff = Some(cutoff.map_or(c, |x: i64| x.max(c)));
        }
    };
    if let Some(n) = policy.max_count {
        let offset = i64::try_from(n).unwrap_or(i64::MAX);
        raise(
            tx.query_row(
                "SELECT seq FROM _pocketdb_changes ORDER BY seq DESC LIMIT 1 OFFSET ?1",
                [offset],
                |r| r.get(0),
            )
            .optional()?,
        );
    }
    if let Some(age) = policy.max_age {
        let limit = super::now_millis() - i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
        raise(tx.query_row(
            "SELECT max(seq) FROM _pocketdb_changes WHERE ts < ?1",
            [limit],
            |r| r.get(0),
        )?);
    }
    if let Some(bytes) = policy.max_bytes {
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        raise(
            tx.query_row(
                "SELECT seq FROM (
                     SELECT seq, sum(length(collection) + length(doc_id) + length(op)
                                     + coalesce(length(fields), 0) + 24)
                            OVER (ORDER BY seq DESC) AS total
                     FROM _pocketdb_changes)
                 WHERE total > ?1 ORDER BY seq DESC LIMIT 1",
                [bytes],
                |r| r.get(0),
            )
            .optional()?,
        );
    }
    let Some(cutoff) = cutoff else {
        return Ok(0);
    };
    let removed = tx.execute("DELETE FROM _pocketdb_changes WHERE seq <= ?1", [cutoff])?;
    let previous = trimmed_through(tx)?;
    if cutoff > previous {
        tx.execute(
            "INSERT INTO _pocketdb_meta(key, value) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![TRIMMED_KEY, cutoff.to_string()],
        )?;
    }
    Ok(removed as u64)
}
