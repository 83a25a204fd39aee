//! TTL indexes: documents whose date at the index's path is older than
//! `expire_after_seconds` are deleted, through the collection's ordinary delete path (so
//! each removal is logged in the change log like any delete).
//!
//! A background thread per [`crate::Database`] (started once a TTL index exists, holding
//! only a weak reference and stopping when the last handle is dropped) runs a pass every
//! [`crate::Options::ttl_interval`]; `Database::expire_now` / `Collection::expire_now` run
//! one on demand.
//!
//! # Dates
//!
//! JSON has no date type. A value counts as a date when it is ([`parse_date_millis`]):
//!
//! * MongoDB extended JSON: `{"$date": "2024-05-01T12:00:00Z"}`,
//!   `{"$date": {"$numberLong": "1714564800000"}}` or `{"$date": 1714564800000}`
//!   (milliseconds since the Unix epoch);
//! * an RFC 3339 string: `"2024-05-01T12:00:00Z"`, `"2024-05-01T14:00:00.250+02:00"`
//!   (`T` or a space between date and time, fractional seconds optional, `Z` or an
//!   offset required).
//!
//! Numbers, and strings in any other format, are not dates: as in MongoDB, documents
//! without a date at the path never expire. For an array, the earliest date counts, also
//! among the keys of a path through an array of documents (`events.at`). A partial TTL
//! index expires only the documents its filter holds.

use super::keys::{path_keys, KeyPart};
use crate::database::{Database, DbInner};
use crate::error::Result;
use crate::query::sql::{path_expr, prefix_type_exprs, type_expr};
use crate::value::FieldPath;
use rusqlite::Connection;
use serde_json::Value;
use std::sync::{Mutex, PoisonError, Weak};
use std::thread::{self, Thread};

/// Milliseconds since the Unix epoch of a date value (see the module docs for the
/// accepted forms), `None` when the value is not a date.
///
/// ```
/// use pocketdb::parse_date_millis;
/// use serde_json::json;
/// assert_eq!(parse_date_millis(&json!("1970-01-01T00:00:01Z")), Some(1000));
/// assert_eq!(parse_date_millis(&json!({"$date": "1970-01-01T01:00:00+01:00"})), Some(0));
/// assert_eq!(parse_date_millis(&json!({"$date": {"$numberLong": "42"}})), Some(42));
/// assert_eq!(parse_date_millis(&json!(42)), None);
/// ```
pub fn parse_date_millis(value: &Value) -> Option<i64> {
    match value {
        Value::String(s) => parse_rfc3339(s),
        Value::Object(m) if m.len() == 1 => match m.get("$date")? {
            Value::String(s) => parse_rfc3339(s),
            Value::Number(n) => n.as_i64(),
            Value::Object(inner) if inner.len() == 1 => {
                inner.get("$numberLong")?.as_str()?.parse().ok()
            }
            _ => None,
        },
        _ => None,
    }
}

fn digits(s: &[u8]) -> Option<i64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0i64, |acc, d| {
        acc.checked_mul(10)?.checked_add(i64::from(d - b'0'))
    })
}

/// Days from 1970-01-01 to a proleptic Gregorian date.
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (y, mo, d) = (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    let (h, mi, sec) = (
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
    );
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 60
    {
        return None;
    }
    let mut i = 19;
    let mut millis = 0i64;
    if b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let frac = &b[start..i];
        if frac.is_empty() {
            return None;
        }
        for (k, dgt) in frac.iter().take(3).enumerate() {
            millis += i64::from(dgt - b'0') * [100, 10, 1][k];
        }
    }
    let offset_min = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let oh = digits(&b[i + 1..i + 3])?;
            let om = digits(&b[i + 4..i + 6])?;
            if oh > 23 || om > 59 {
                return None;
            }
            let m = oh * 60 + om;
            if *sign == b'+' {
                m
            } else {
                -m
            }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3_600 + mi * 60 + sec.min(59) - offset_min * 60;
    Some(secs * 1_000 + millis)
}

/// The earliest date in a TTL field's value (the value itself or an array's elements).
fn earliest_date(value: &Value) -> Option<i64> {
    match value {
        Value::Array(items) => items.iter().filter_map(parse_date_millis).min(),
        other => parse_date_millis(other),
    }
}

/// The earliest date among the index keys of `doc` at `path` (through arrays of
/// documents on the way, as MongoDB's multikey TTL index reads them).
fn earliest_key_date(doc: &Value, path: &FieldPath) -> Option<i64> {
    path_keys(doc, path)
        .iter()
        .filter_map(|k| match k {
            KeyPart::Value(v) => parse_date_millis(v),
            KeyPart::Undefined => None,
        })
        .min()
}

/// Deletes the expired documents of one collection (in the caller's write transaction)
/// and returns how many. `delete` removes one row by `rid` through the collection's
/// delete path.
///
/// A document expires when the earliest date among its keys in a TTL index is older
/// than the index's TTL, and the index holds it (a partial index only holds the
/// documents matching its filter; a sparse one only those with the field, which a
/// document with a date has).
pub(crate) fn expire_collection(
    conn: &Connection,
    set: &super::IndexSet,
    table: &str,
    now_millis: i64,
    mut delete: impl FnMut(&Connection, i64) -> Result<()>,
) -> Result<u64> {
    let mut deleted = 0;
    for def in set.defs.iter().filter(|d| d.ttl.is_some()) {
        let (Some(ttl), Some((path, _))) = (def.ttl, def.keys.first()) else {
            continue;
        };
        let cutoff = now_millis.saturating_sub(ttl.saturating_mul(1_000));
        let expired = if def.partial.is_some() || (path.len() > 1 && def.is_multikey()) {
            expired_by_document(conn, def, path, table, cutoff)?
        } else {
            expired_by_value(conn, path, table, cutoff)?
        };
        for rid in expired {
            delete(conn, rid)?;
            deleted += 1;
        }
    }
    Ok(deleted)
}

/// The rows whose value at `path` (a field, or a path crossing no array) holds a date
/// before `cutoff`, reading only that value.
fn expired_by_value(
    conn: &Connection,
    path: &FieldPath,
    table: &str,
    cutoff: i64,
) -> Result<Vec<i64>> {
    let (Some(val), Some(ty)) = (path_expr(path), type_expr(path)) else {
        return Ok(Vec::new());
    };
    let sql = format!(
        "SELECT rid, json_quote({val}) FROM {table} WHERE {ty} IN ('text','object','array')"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let text: String = r.get(1)?;
        let v: Value = serde_json::from_str(&text)?;
        if earliest_date(&v).is_some_and(|d| d < cutoff) {
            out.push(r.get(0)?);
        }
    }
    Ok(out)
}

/// The rows the index `def` holds (partial filter) whose keys at `path` (which may
/// cross arrays of documents) hold a date before `cutoff`, reading whole documents of
/// the rows SQL finds a possible date in.
fn expired_by_document(
    conn: &Connection,
    def: &super::IndexDef,
    path: &FieldPath,
    table: &str,
    cutoff: i64,
) -> Result<Vec<i64>> {
    let Some(types) = prefix_type_exprs(path) else {
        return Ok(Vec::new());
    };
    // A date is a string or an object; an array on the path or a prefix may hold one.
    let mut maybe: Vec<String> = types.iter().map(|t| format!("{t} = 'array'")).collect();
    if let Some(last) = types.last() {
        maybe.push(format!("{last} IN ('text','object')"));
    }
    let sql = format!("SELECT rid, doc FROM {table} WHERE {}", maybe.join(" OR "));
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let doc = crate::value::jsonb::stored_doc(conn, r.get_ref(1)?)?;
        if earliest_key_date(&doc, path).is_some_and(|d| d < cutoff) && def.indexes(&doc) {
            out.push(r.get(0)?);
        }
    }
    Ok(out)
}

/// The background TTL thread of a database, if started.
#[derive(Default)]
pub(crate) struct TtlMonitor {
    thread: Mutex<Option<Thread>>,
}

impl TtlMonitor {
    /// Starts the thread for `db` unless it runs already.
    pub(crate) fn ensure_started(&self, db: &Database) {
        let mut slot = self.thread.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_some() {
            return;
        }
        let weak: Weak<DbInner> = std::sync::Arc::downgrade(&db.inner);
        let interval = db.options().ttl_interval;
        let spawned = thread::Builder::new()
            .name("pocketdb-ttl".to_string())
            .spawn(move || loop {
                thread::park_timeout(interval);
                let Some(inner) = weak.upgrade() else {
                    return;
                };
                let db = Database { inner };
                if let Err(e) = db.expire_now() {
                    tracing::warn!(error = %e, "TTL pass failed");
                }
            });
        match spawned {
            Ok(handle) => *slot = Some(handle.thread().clone()),
            Err(e) => tracing::warn!(error = %e, "could not start the TTL thread"),
        }
    }
}

impl Drop for TtlMonitor {
    fn drop(&mut self) {
        // The last handle is gone: wake the thread so it sees that and exits.
        let slot = self
            .thread
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(t) = slot.take() {
            t.unpark();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rfc3339_forms() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("1970-01-01 00:00:00.5z"), Some(500));
        assert_eq!(parse_rfc3339("2000-03-01T00:00:00Z"), Some(951_868_800_000));
        assert_eq!(
            parse_rfc3339("2024-02-29T23:59:59-00:30"),
            Some(1_709_252_999_000)
        );
        assert_eq!(parse_rfc3339("2023-02-29T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("2024-01-01T00:00:00"), None);
        assert_eq!(parse_rfc3339("2024-01-01"), None);
        assert_eq!(parse_rfc3339("2024-01-01T00:00:00.Z"), None);
    }

    #[test]
    fn extended_json_and_arrays() {
        assert_eq!(parse_date_millis(&json!({"$date": 5})), Some(5));
        assert_eq!(parse_date_millis(&json!({"$date": "x"})), None);
        assert_eq!(parse_date_millis(&json!({"$date": 5, "b": 1})), None);
        assert_eq!(
            earliest_date(&json!(["1970-01-01T00:00:02Z", {"$date": 1000}, 7])),
            Some(1000)
        );
    }
}
