//! The on-disk layout of a pocketdb database file.
//!
//! ```text
//! _pocketdb_meta(key TEXT PRIMARY KEY, value TEXT)            format version
//! _pocketdb_collections(name TEXT PRIMARY KEY, tbl TEXT UNIQUE, options TEXT, created_at INTEGER)
//! _pocketdb_changes(seq INTEGER PRIMARY KEY,                 the change log (seq: see changes)
//!                   collection TEXT, doc_id TEXT, op TEXT, rev INTEGER, ts INTEGER)
//! "c_<collection>"(rid INTEGER PRIMARY KEY,                  one table per collection
//!                  id TEXT NOT NULL UNIQUE,                   canonical _id key (id::id_key)
//!                  doc BLOB NOT NULL,                         the document as JSONB
//!                  rev INTEGER NOT NULL)                      revision, 1 on insert, +1 per write
//! _pocketdb_indexes(collection TEXT, name TEXT,              secondary indexes (crate::index)
//!                   ident INTEGER UNIQUE,                     names the SQL objects below
//!                   keys TEXT, options TEXT,                  key spec and options, as JSON
//!                   multikey INTEGER, mixed INTEGER,          per-key bit sets (see index)
//!                   PRIMARY KEY(collection, name))
//! "pocketdb_x<ident>"                                         expression index on the table
//! "pocketdb_m<ident>"(t0, v0, …, rid) WITHOUT ROWID           multikey side table
//! ```
//!
//! `_pocketdb_meta` also holds `index_gen`, a random value replaced at every change of
//! `_pocketdb_indexes`, so each connection can tell whether its cached index catalog is
//! current (see `crate::index`).
//!
//! Collection names are validated ([`validate_collection_name`]) to a character set that
//! needs no escaping inside double quotes, so [`table_name`] can quote them safely.

use crate::error::{Error, Result};
use rusqlite::{Connection, OptionalExtension};

/// Version of the file layout written into `_pocketdb_meta`.
pub(crate) const FORMAT_VERSION: i64 = 1;

/// Creates the catalog tables if missing and checks the format version.
pub(crate) fn init(conn: &Connection) -> Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS _pocketdb_meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
         CREATE TABLE IF NOT EXISTS _pocketdb_collections(
             name TEXT PRIMARY KEY,
             tbl TEXT NOT NULL UNIQUE,
             options TEXT NOT NULL DEFAULT '{}',
             created_at INTEGER NOT NULL);
         CREATE TABLE IF NOT EXISTS _pocketdb_changes(
             seq INTEGER PRIMARY KEY,
             collection TEXT NOT NULL,
             doc_id TEXT NOT NULL,
             op TEXT NOT NULL,
             rev INTEGER NOT NULL,
             ts INTEGER NOT NULL);
         CREATE TABLE IF NOT EXISTS _pocketdb_indexes(
             collection TEXT NOT NULL,
             name TEXT NOT NULL,
             ident INTEGER NOT NULL UNIQUE,
             keys TEXT NOT NULL,
             options TEXT NOT NULL DEFAULT '{}',
             multikey INTEGER NOT NULL DEFAULT 0,
             mixed INTEGER NOT NULL DEFAULT 0,
             PRIMARY KEY(collection, name));
         INSERT OR IGNORE INTO _pocketdb_meta(key, value) VALUES ('index_gen', '0');",
    )?;
    let version: Option<String> = conn
        .query_row(
            "SELECT value FROM _pocketdb_meta WHERE key = 'format_version'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    match version {
        None => {
            conn.execute(
                "INSERT INTO _pocketdb_meta(key, value) VALUES ('format_version', ?1)",
                [FORMAT_VERSION.to_string()],
            )?;
        }
        Some(v) if v == FORMAT_VERSION.to_string() => {}
        Some(v) => {
            return Err(Error::Incompatible(format!(
                "format version {v}, this build reads version {FORMAT_VERSION}"
            )))
        }
    }
    Ok(())
}

/// The quoted SQL table name of a collection (the name must be validated).
pub(crate) fn table_name(collection: &str) -> String {
    format!("\"c_{collection}\"")
}

/// DDL of a collection's table.
pub(crate) fn create_table_sql(collection: &str) -> String {
    let t = table_name(collection);
    format!(
        "CREATE TABLE IF NOT EXISTS {t}(
             rid INTEGER PRIMARY KEY,
             id TEXT NOT NULL UNIQUE,
             doc BLOB NOT NULL,
             rev INTEGER NOT NULL)"
    )
}

/// Checks a collection name: 1 to 120 characters from `A-Z a-z 0-9 _ - .`, starting with
/// a letter, digit or underscore, not starting with `system.` or `_pocketdb`.
pub fn validate_collection_name(name: &str) -> Result<()> {
    validate_name("collection", name, 120)?;
    if name.starts_with("system.") || name.starts_with("_pocketdb") {
        return Err(Error::InvalidName {
            kind: "collection",
            name: name.to_string(),
            reason: "names starting with 'system.' or '_pocketdb' are reserved".to_string(),
        });
    }
    Ok(())
}

/// Checks a database name: 1 to 64 characters from `A-Z a-z 0-9 _ -`, starting with a
/// letter, digit or underscore (it becomes a file name).
pub fn validate_database_name(name: &str) -> Result<()> {
    validate_name("database", name, 64)?;
    if name.contains('.') {
        return Err(Error::InvalidName {
            kind: "database",
            name: name.to_string(),
            reason: "database names may not contain '.'".to_string(),
        });
    }
    Ok(())
}

fn validate_name(kind: &'static str, name: &str, max: usize) -> Result<()> {
    let bad = |reason: String| Error::InvalidName {
        kind,
        name: name.to_string(),
        reason,
    };
    if name.is_empty() {
        return Err(bad("name is empty".to_string()));
    }
    if name.len() > max {
        return Err(bad(format!("name is longer than {max} characters")));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(bad(format!("character {c:?} is not allowed")));
    }
    if name.starts_with(['-', '.']) {
        return Err(bad(
            "name must start with a letter, digit or '_'".to_string()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        assert!(validate_collection_name("users").is_ok());
        assert!(validate_collection_name("events.2024-01").is_ok());
        for bad in ["", "a\"b", "a b", "-x", "system.users", "_pocketdb_x", "é"] {
            assert!(validate_collection_name(bad).is_err(), "{bad}");
        }
        assert!(validate_database_name("a.b").is_err());
        assert!(validate_database_name("app_1").is_ok());
    }
}
