//! `$group` compiled to SQL `GROUP BY` when SQLite computes exactly what MongoDB would.
//!
//! Accepted: an `_id` that is a constant scalar or a field path [`path_expr`] can spell,
//! and accumulators `$count`, `$sum` of an integer constant, `$sum`/`$avg`/`$min`/`$max`
//! of such a field path, over the documents selected by an exact SQL filter. Why each is
//! exact:
//!
//! * group key: `json_extract` gives `NULL` for `null` and missing alike (MongoDB groups
//!   them together), numbers compare by value across integer/real, strings byte-wise. It
//!   is wrong only for booleans (`1`/`0`), objects and arrays (JSON text) at the path, and
//!   for arrays at a prefix of the path (MongoDB collects values from each element): a
//!   per-group `bad` column flags those rows and the whole result is then discarded in
//!   favour of the Rust implementation;
//! * `$sum`/`$avg` only see values whose `json_type` is `integer` or `real` — MongoDB
//!   ignores every other type, arrays included, and a path through an array yields an
//!   array in MongoDB and `NULL` in SQLite, ignored by both. An integer overflow in
//!   `sum()` is an SQLite error, which also falls back to Rust (MongoDB promotes);
//! * `$min`/`$max` skip `NULL` as MongoDB skips null and missing, and SQLite orders
//!   numbers before text as MongoDB does; booleans, objects and arrays at the path (or an
//!   array at a prefix) set `bad`.

use super::accum::Kind;
use super::pipeline::Group;
use crate::database::Database;
use crate::engine::schema::table_name;
use crate::error::{Error, Result};
use crate::query::sql::{compile_filter, path_expr, type_expr};
use crate::query::Filter;
use crate::value::FieldPath;
use rusqlite::types::{Value as SqlValue, ValueRef};
use serde_json::{Map, Value};

/// A `$group` compiled to one SQL statement.
#[derive(Debug, Clone)]
pub(crate) struct SqlGroup {
    /// The statement; its last column is the `bad` flag.
    pub sql: String,
    params: Vec<SqlValue>,
    /// A constant `_id`, when the key is not a column.
    constant_key: Option<Value>,
    names: Vec<String>,
}

fn path_of(segs: &[String]) -> Option<FieldPath> {
    let text = segs.join(".");
    let p = FieldPath::parse(&text).ok()?;
    path_expr(&p)?;
    Some(p)
}

/// `json_type(...) = 'array'` for every proper prefix of the path.
fn prefix_array_checks(p: &FieldPath, out: &mut Vec<String>) {
    for n in 1..p.len() {
        let prefix = FieldPath::from_segments(p.segments()[..n].to_vec());
        if let Some(t) = type_expr(&prefix) {
            out.push(format!("{t} = 'array'"));
        }
    }
}

/// Compiles `group` over the documents matching `filter`, or `None` when SQL would not
/// be exact.
pub(crate) fn compile(collection: &str, filter: &Filter, group: &Group) -> Option<SqlGroup> {
    let compiled = compile_filter(filter);
    if !compiled.exact {
        return None;
    }
    let mut select = Vec::new();
    let mut bad = Vec::new();
    let mut group_by = None;
    let mut constant_key = None;
    if let Some(v) = group.id.as_literal() {
        if v.is_object() || v.is_array() {
            return None;
        }
        constant_key = Some(v.clone());
    } else {
        let p = path_of(group.id.as_field_path()?)?;
        let (e, t) = (path_expr(&p)?, type_expr(&p)?);
        bad.push(format!("{t} IN ('true','false','object','array')"));
        prefix_array_checks(&p, &mut bad);
        select.push(e.clone());
        group_by = Some(e);
    }
    let mut names = Vec::new();
    for acc in &group.accumulators {
        let col = match acc.kind {
            Kind::Count => "count(*)".to_string(),
            Kind::Sum if acc.expr.as_literal().is_some() => {
                let c = acc.expr.as_literal()?.as_i64()?;
                format!("count(*) * {c}")
            }
            Kind::Sum | Kind::Avg | Kind::Min | Kind::Max => {
                let p = path_of(acc.expr.as_field_path()?)?;
                let (e, t) = (path_expr(&p)?, type_expr(&p)?);
                match acc.kind {
                    Kind::Sum => {
                        format!(
                            "coalesce(sum(CASE WHEN {t} IN ('integer','real') THEN {e} END), 0)"
                        )
                    }
                    Kind::Avg => format!("avg(CASE WHEN {t} IN ('integer','real') THEN {e} END)"),
                    _ => {
                        bad.push(format!("{t} IN ('true','false','object','array')"));
                        prefix_array_checks(&p, &mut bad);
                        let f = if acc.kind == Kind::Min { "min" } else { "max" };
                        format!("{f}({e})")
                    }
                }
            }
            _ => return None,
        };
        select.push(col);
        names.push(acc.name.clone());
    }
    let bad_col = if bad.is_empty() {
        "0".to_string()
    } else {
        format!("max({})", bad.join(" OR "))
    };
    select.push(bad_col);
    let mut sql = format!(
        "SELECT {} FROM {} WHERE {}",
        select.join(", "),
        table_name(collection),
        compiled.sql
    );
    match group_by {
        Some(g) => sql.push_str(&format!(" GROUP BY {g}")),
        // Without GROUP BY an empty input still yields one row; MongoDB yields no group.
        None => sql.push_str(" HAVING count(*) > 0"),
    }
    Some(SqlGroup {
        sql,
        params: compiled.params,
        constant_key,
        names,
    })
}

fn to_json(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::from(i),
        ValueRef::Real(f) => super::expr::float_value(f),
        ValueRef::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(_) => Value::Null,
    }
}

impl SqlGroup {
    /// Runs the statement. `Ok(None)` when a guard failed (or SQLite hit an integer
    /// overflow): the caller must group in Rust instead.
    pub(crate) fn run(&self, db: &Database, collection: &str) -> Result<Option<Vec<Value>>> {
        db.read(|conn| {
            if !db.has_collection(conn, collection)? {
                return Ok(Some(Vec::new()));
            }
            let mut stmt = conn.prepare_cached(&self.sql)?;
            let mut rows = stmt.query(rusqlite::params_from_iter(self.params.iter()))?;
            let mut out = Vec::new();
            let key_cols = usize::from(self.constant_key.is_none());
            loop {
                let row = match rows.next() {
                    Ok(Some(r)) => r,
                    Ok(None) => break,
                    Err(e) if is_overflow(&e) => return Ok(None),
                    Err(e) => return Err(Error::Sqlite(e)),
                };
                let bad: Option<i64> = row.get(key_cols + self.names.len())?;
                if bad == Some(1) {
                    return Ok(None);
                }
                let mut doc = Map::with_capacity(self.names.len() + 1);
                let key = match &self.constant_key {
                    Some(k) => k.clone(),
                    None => to_json(row.get_ref(0)?),
                };
                doc.insert("_id".to_string(), key);
                for (i, name) in self.names.iter().enumerate() {
                    doc.insert(name.clone(), to_json(row.get_ref(key_cols + i)?));
                }
                out.push(Value::Object(doc));
            }
            Ok(Some(out))
        })
    }
}

fn is_overflow(e: &rusqlite::Error) -> bool {
    e.to_string().contains("integer overflow")
}
