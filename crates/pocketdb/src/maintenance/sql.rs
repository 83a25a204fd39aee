//! Raw SQL over a database and the databases attached to it.

use crate::client::Client;
use crate::database::Database;
use crate::error::{Error, Result};
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{Connection, OpenFlags};
use serde_json::{Map, Number, Value};
use std::path::PathBuf;
use std::sync::{Arc, PoisonError};

/// A database attached to another under an alias.
#[derive(Debug, Clone)]
pub(crate) struct Attachment {
    pub(crate) alias: String,
    pub(crate) path: PathBuf,
}

/// Checks an `ATTACH` alias: 1 to 64 characters from `A-Z a-z 0-9 _`, not starting with a
/// digit, not `main` or `temp`.
fn validate_alias(alias: &str) -> Result<()> {
    let bad = |reason: &str| Error::InvalidName {
        kind: "alias",
        name: alias.to_string(),
        reason: reason.to_string(),
    };
    if alias.is_empty() || alias.len() > 64 {
        return Err(bad("an alias has 1 to 64 characters"));
    }
    if !alias.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(bad("only letters, digits and '_' are allowed"));
    }
    if alias.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(bad("an alias may not start with a digit"));
    }
    if ["main", "temp"].contains(&alias.to_ascii_lowercase().as_str()) {
        return Err(bad("'main' and 'temp' are reserved"));
    }
    Ok(())
}

fn attach_sql(alias: &str) -> String {
    format!("ATTACH DATABASE ?1 AS \"{alias}\"")
}

fn apply_attachments(conn: &Connection, attachments: &[Attachment]) -> Result<()> {
    for a in attachments {
        conn.execute(&attach_sql(&a.alias), [a.path.to_string_lossy().as_ref()])?;
    }
    Ok(())
}

/// The first keyword of a statement, skipping whitespace and comments.
fn first_keyword(sql: &str) -> String {
    let mut rest = sql;
    loop {
        rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix("--") {
            rest = r.split_once('\n').map(|(_, r)| r).unwrap_or("");
        } else if let Some(r) = rest.strip_prefix("/*") {
            rest = r.split_once("*/").map(|(_, r)| r).unwrap_or("");
        } else {
            break;
        }
    }
    rest.chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect::<String>()
        .to_ascii_uppercase()
}

fn to_sql_value(v: &Value) -> SqlValue {
    match v {
        Value::Null => SqlValue::Null,
        Value::Bool(b) => SqlValue::Integer(i64::from(*b)),
        Value::Number(n) => match n.as_i64() {
            Some(i) => SqlValue::Integer(i),
            None => SqlValue::Real(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => SqlValue::Text(s.clone()),
        other => SqlValue::Text(other.to_string()),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs one statement and returns its rows as JSON objects.
fn query_rows(
    conn: &Connection,
    query: &str,
    params: &[Value],
    readonly: bool,
) -> Result<Vec<Value>> {
    let keyword = first_keyword(query);
    if matches!(keyword.as_str(), "ATTACH" | "DETACH") {
        return Err(Error::InvalidArgument(
            "use Client::attach / detach instead of ATTACH and DETACH statements".to_string(),
        ));
    }
    let mut stmt = conn.prepare(query)?;
    if readonly && (!stmt.readonly() || keyword == "PRAGMA" && query.contains('=')) {
        return Err(Error::InvalidArgument(
            "sql() is read-only; use sql_write for statements that change the database".to_string(),
        ));
    }
    let names: Vec<String> = stmt.column_names().map(|s| s.to_string()).collect();
    let values: Vec<SqlValue> = params.iter().map(to_sql_value).collect();
    let mut rows = stmt.query(rusqlite::params_from_iter(values.iter()))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let mut obj = Map::new();
        for (i, name) in names.iter().enumerate() {
            let v = match row.get_ref(i)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(n) => Value::from(n),
                ValueRef::Real(f) => Number::from_f64(f)
                    .map(Value::Number)
                    .unwrap_or(Value::Null),
                ValueRef::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Blob(b) => decode_blob(conn, b),
            };
            obj.insert(name.clone(), v);
        }
        out.push(Value::Object(obj));
    }
    Ok(out)
}

/// A JSONB blob decoded to JSON; other blobs as `{"$binary": "<hex>"}`.
fn decode_blob(conn: &Connection, bytes: &[u8]) -> Value {
    let text: Option<String> = conn
        .query_row("SELECT json(?1)", [bytes], |r| r.get(0))
        .ok();
    match text.and_then(|t| serde_json::from_str(&t).ok()) {
        Some(v) => v,
        None => serde_json::json!({ "$binary": hex(bytes) }),
    }
}

impl Database {
    /// Runs one read-only SQL statement and returns its rows as JSON objects (column
    /// name → value; JSONB columns such as `doc` decoded, other blobs as
    /// `{"$binary": hex}`). Parameters bind to `?`, `?N`, `:name` placeholders in order.
    /// Databases attached with [`Client::attach`] are visible under their alias. The
    /// storage layout is described in [`crate::maintenance`].
    ///
    /// Statements that would write fail with `InvalidArgument` (see
    /// [`sql_write`](Database::sql_write)).
    pub fn sql(&self, query: &str, params: &[Value]) -> Result<Vec<Value>> {
        self.read_joined(|conn| query_rows(conn, query, params, true))
    }

    /// Runs one SQL statement that may write, on its own connection with the
    /// attachments, and returns the rows it produces (for `RETURNING`). Writes made
    /// this way bypass the change log, indexes kept by pocketdb and validation: use it
    /// for repairs and migrations, not for documents.
    pub fn sql_write(&self, query: &str, params: &[Value]) -> Result<Vec<Value>> {
        let attachments = self.attachments();
        let out = match self.path() {
            None => {
                let conn = self.inner.pool.writer();
                query_rows(&conn, query, params, false)
            }
            Some(path) => {
                let conn = Connection::open(path)?;
                conn.busy_timeout(self.options().busy_timeout)?;
                crate::query::sql::register_functions(&conn)?;
                apply_attachments(&conn, &attachments)?;
                query_rows(&conn, query, params, false)
            }
        };
        self.invalidate_caches();
        out
    }

    fn attachments(&self) -> Vec<Attachment> {
        self.inner
            .extras
            .attachments
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Runs `f` on the connection used for SQL joins: the writer for in-memory
    /// databases, otherwise a read-only connection with the attachments applied.
    pub(crate) fn read_joined<R>(&self, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        let Some(path) = self.path() else {
            return f(&self.inner.pool.writer());
        };
        let mut slot = self
            .inner
            .extras
            .sql_conn
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            let conn = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
            )?;
            conn.busy_timeout(self.options().busy_timeout)?;
            crate::query::sql::register_functions(&conn)?;
            apply_attachments(&conn, &self.attachments())?;
            *slot = Some(conn);
        }
        match slot.as_ref() {
            Some(conn) => f(conn),
            None => Err(Error::InvalidArgument("no SQL connection".to_string())),
        }
    }

    /// The schema under which `other`'s collections are reachable from this database's
    /// SQL connection: `main` for the same database, the alias when attached.
    pub(crate) fn join_schema(&self, other: &Database) -> Result<Option<String>> {
        if Arc::ptr_eq(&self.inner, &other.inner) {
            return Ok(Some("main".to_string()));
        }
        let Some(other_path) = other.path() else {
            return Ok(None);
        };
        let other_path = std::fs::canonicalize(other_path)?;
        Ok(self.attachments().into_iter().find_map(|a| {
            let p = std::fs::canonicalize(&a.path).ok()?;
            (p == other_path).then_some(a.alias)
        }))
    }

    /// Drops the connections and caches that depend on the file's contents (after a
    /// restore or raw SQL writes).
    pub(crate) fn invalidate_caches(&self) {
        *self
            .inner
            .extras
            .sql_conn
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
        self.inner
            .extras
            .ttl
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        self.forget_all();
    }

    /// Attaches the file at `path` under `alias` to this database's SQL connections.
    pub fn attach_path(&self, path: impl Into<PathBuf>, alias: &str) -> Result<()> {
        validate_alias(alias)?;
        let path = path.into();
        let mut list = self
            .inner
            .extras
            .attachments
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if list.iter().any(|a| a.alias.eq_ignore_ascii_case(alias)) {
            return Err(Error::InvalidArgument(format!(
                "alias '{alias}' is already attached"
            )));
        }
        let attachment = Attachment {
            alias: alias.to_string(),
            path,
        };
        if self.path().is_none() {
            apply_attachments(&self.inner.pool.writer(), std::slice::from_ref(&attachment))?;
        } else if let Some(conn) = self
            .inner
            .extras
            .sql_conn
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            apply_attachments(conn, std::slice::from_ref(&attachment))?;
        }
        list.push(attachment);
        Ok(())
    }

    /// Detaches `alias`. Fails with `InvalidArgument` when nothing is attached under it.
    pub fn detach(&self, alias: &str) -> Result<()> {
        validate_alias(alias)?;
        let mut list = self
            .inner
            .extras
            .attachments
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(pos) = list
            .iter()
            .position(|a| a.alias.eq_ignore_ascii_case(alias))
        else {
            return Err(Error::InvalidArgument(format!(
                "nothing is attached as '{alias}'"
            )));
        };
        let detach = format!("DETACH DATABASE \"{}\"", list[pos].alias);
        if self.path().is_none() {
            self.inner.pool.writer().execute_batch(&detach)?;
        } else {
            let mut slot = self
                .inner
                .extras
                .sql_conn
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(conn) = slot.as_ref() {
                if conn.execute_batch(&detach).is_err() {
                    *slot = None;
                }
            }
        }
        list.remove(pos);
        Ok(())
    }

    /// Aliases attached to this database, with their files.
    pub fn attached(&self) -> Vec<(String, PathBuf)> {
        self.attachments()
            .into_iter()
            .map(|a| (a.alias, a.path))
            .collect()
    }
}

impl Client {
    /// Attaches `other`'s file to `db`'s SQL connections under `alias`, so
    /// [`Database::sql`] and [`Collection::lookup`](crate::Collection::lookup) can join
    /// across the two files (`alias.c_<collection>`). In-memory databases cannot be
    /// attached. SQLite allows 10 attachments per connection.
    pub fn attach(&self, db: &Database, other: &Database, alias: &str) -> Result<()> {
        let path = other.path().ok_or_else(|| {
            Error::InvalidArgument("an in-memory database cannot be attached".to_string())
        })?;
        db.attach_path(path.to_path_buf(), alias)
    }

    /// Detaches `alias` from `db`.
    pub fn detach(&self, db: &Database, alias: &str) -> Result<()> {
        db.detach(alias)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_skip_comments() {
        assert_eq!(first_keyword("  -- x\n /* y */ attach 'a' as b"), "ATTACH");
        assert_eq!(first_keyword("select 1"), "SELECT");
    }

    #[test]
    fn aliases_are_validated() {
        assert!(validate_alias("base").is_ok());
        for bad in ["", "main", "TEMP", "a-b", "1x", "a\"b"] {
            assert!(validate_alias(bad).is_err(), "{bad}");
        }
    }
}
