//! `$group` compiled to SQL `GROUP BY` when SQLite computes exactly what MongoDB would.
//!
//! Accepted: an `_id` that is a constant scalar or a field path [`path_expr`] can spell,
//! and accumulators `$count`, `$sum` of an integer constant, `$sum`/`$avg`/`$min`/`$max`
//! of such a field path, over the documents selected by an exact SQL filter.
//!
//! Every JSON value the statement needs is read **once per row**: an inner query (kept
//! from being flattened into the aggregate by its `LIMIT -1`, so SQLite runs it as a
//! co-routine) selects the columns, the outer query groups them. Why each is exact:
//!
//! * group key: the JSON text of the value (`doc -> path`), so one lookup gives type and
//!   value; SQL groups equal texts, and Rust then parses each group's key and merges the
//!   groups MongoDB sees as one (`1` and `1.0`, `null` and missing) by [`equality_key`] —
//!   booleans, objects and arrays at the path group exactly too. Only an array at a
//!   *prefix* of the path (MongoDB collects values from each element) sets the per-group
//!   `bad` column, and the whole result is then discarded in favour of the Rust
//!   implementation;
//! * `$sum`/`$avg` see only values whose JSON text is a number (`GLOB '[-0-9]*'`; text
//!   `+ 0` gives SQLite's integer or real exactly as `json_extract` would) — MongoDB
//!   ignores every other type, arrays included, and a path through an array yields an
//!   array in MongoDB and `NULL` in SQLite, ignored by both. They are computed as a sum
//!   and a count of numeric values, so merged groups add up; an integer overflow in
//!   `sum()` is an SQLite error, which also falls back to Rust (MongoDB promotes);
//! * `$min`/`$max` skip `NULL` as MongoDB skips null and missing, and SQLite orders
//!   numbers before text as MongoDB does; booleans, objects and arrays at the path (or an
//!   array at a prefix) set `bad`.

use super::accum::Kind;
use super::pipeline::Group;
use crate::database::Database;
use crate::engine::schema::table_name;
use crate::error::{Error, Result};
use crate::query::sql::{compile_filter, json_text_expr, path_expr, type_expr};
use crate::query::Filter;
use crate::value::compare_values;
use crate::value::equality_key;
use crate::value::FieldPath;
use rusqlite::types::{Value as SqlValue, ValueRef};
use serde_json::{Map, Value};
use std::cmp::Ordering;
use std::collections::HashMap;

/// A `$group` compiled to one SQL statement.
#[derive(Debug, Clone)]
pub(crate) struct SqlGroup {
    /// The statement: the key column (unless constant), the accumulators' columns, then
    /// the `bad` flag.
    pub sql: String,
    params: Vec<SqlValue>,
    /// A constant `_id`, when the key is not a column.
    constant_key: Option<Value>,
    accs: Vec<(String, Kind, Cols)>,
}

/// The result columns of one accumulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cols {
    /// `count(*)` (times a constant).
    Count,
    /// Sum of the numeric values, and their number.
    Sum,
    /// `min` or `max`.
    Extreme,
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

/// Columns of the inner query, each evaluated once per row.
#[derive(Default)]
struct Inner {
    columns: Vec<String>,
}

impl Inner {
    /// The outer query's name for `expr`, adding it once.
    fn column(&mut self, expr: String) -> String {
        let i = match self.columns.iter().position(|c| *c == expr) {
            Some(i) => i,
            None => {
                self.columns.push(expr);
                self.columns.len() - 1
            }
        };
        format!("c{i}")
    }
}

/// Compiles `group` over the documents matching `filter`, or `None` when SQL would not
/// be exact.
pub(crate) fn compile(collection: &str, filter: &Filter, group: &Group) -> Option<SqlGroup> {
    let compiled = compile_filter(filter);
    if !compiled.exact {
        return None;
    }
    let mut inner = Inner::default();
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
        let k = inner.column(json_text_expr(&p)?);
        let mut checks = Vec::new();
        prefix_array_checks(&p, &mut checks);
        if !checks.is_empty() {
            bad.push(inner.column(checks.join(" OR ")));
        }
        select.push(k.clone());
        group_by = Some(k);
    }
    let mut accs = Vec::new();
    for acc in &group.accumulators {
        let shape = match acc.kind {
            Kind::Count => Cols::Count,
            Kind::Sum if acc.expr.as_literal().is_some() => Cols::Count,
            Kind::Sum | Kind::Avg => Cols::Sum,
            _ => Cols::Extreme,
        };
        let cols = match acc.kind {
            Kind::Count => "count(*)".to_string(),
            Kind::Sum if acc.expr.as_literal().is_some() => {
                let c = acc.expr.as_literal()?.as_i64()?;
                format!("count(*) * {c}")
            }
            Kind::Sum | Kind::Avg | Kind::Min | Kind::Max => {
                let p = path_of(acc.expr.as_field_path()?)?;
                match acc.kind {
                    Kind::Sum | Kind::Avg => {
                        let v = inner.column(json_text_expr(&p)?);
                        format!(
                            "sum(CASE WHEN {v} GLOB '[-0-9]*' THEN {v} + 0 END), \
                             count(CASE WHEN {v} GLOB '[-0-9]*' THEN 1 END)"
                        )
                    }
                    _ => {
                        let e = inner.column(path_expr(&p)?);
                        let t = type_expr(&p)?;
                        let mut checks = vec![format!("{t} IN ('true','false','object','array')")];
                        prefix_array_checks(&p, &mut checks);
                        bad.push(inner.column(checks.join(" OR ")));
                        let f = if acc.kind == Kind::Min { "min" } else { "max" };
                        format!("{f}({e})")
                    }
                }
            }
            _ => return None,
        };
        select.push(cols);
        accs.push((acc.name.clone(), acc.kind, shape));
    }
    let bad_col = if bad.is_empty() {
        "0".to_string()
    } else {
        format!("max({})", bad.join(" OR "))
    };
    select.push(bad_col);
    let columns: Vec<String> = if inner.columns.is_empty() {
        vec!["1 AS c0".to_string()]
    } else {
        inner
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c} AS c{i}"))
            .collect()
    };
    let mut sql = format!(
        "SELECT {} FROM (SELECT {} FROM {} WHERE {} LIMIT -1)",
        select.join(", "),
        columns.join(", "),
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
        accs,
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

/// One accumulator's result in one SQL group, mergeable with the same accumulator of
/// another SQL group that MongoDB sees as the same key.
#[derive(Debug, Clone)]
enum Part {
    Count(i64),
    /// A sum (integer while every input was) and the number of numeric inputs.
    Sum(SqlValue, i64),
    /// `$min`/`$max`: the value, `None` when every input was null or missing.
    Extreme(Option<Value>),
}

impl Part {
    fn read(cols: Cols, row: &rusqlite::Row<'_>, col: &mut usize) -> Result<Part> {
        let part = match cols {
            Cols::Sum => {
                let sum: SqlValue = row.get(*col)?;
                let n: i64 = row.get(*col + 1)?;
                *col += 1;
                Part::Sum(sum, n)
            }
            Cols::Extreme => match row.get_ref(*col)? {
                ValueRef::Null => Part::Extreme(None),
                v => Part::Extreme(Some(to_json(v))),
            },
            Cols::Count => match row.get_ref(*col)? {
                // `count(*) * c` past i64 is a real in SQLite.
                ValueRef::Real(f) => Part::Sum(SqlValue::Real(f), 1),
                _ => Part::Count(row.get(*col)?),
            },
        };
        *col += 1;
        Ok(part)
    }

    /// Folds `other` in; `None` on an integer overflow (the caller falls back to Rust).
    fn merge(&mut self, kind: Kind, other: Part) -> Option<()> {
        match (self, other) {
            (Part::Count(a), Part::Count(b)) => *a = a.checked_add(b)?,
            (Part::Sum(a, n), Part::Sum(b, m)) => {
                *n += m;
                *a = match (&*a, b) {
                    (SqlValue::Null, b) => b,
                    (_, SqlValue::Null) => a.clone(),
                    (SqlValue::Integer(x), SqlValue::Integer(y)) => {
                        SqlValue::Integer(x.checked_add(y)?)
                    }
                    (x, y) => SqlValue::Real(as_f64(x) + as_f64(&y)),
                };
            }
            (Part::Extreme(a), Part::Extreme(b)) => {
                if let Some(b) = b {
                    let replace = a.as_ref().is_none_or(|cur| {
                        let o = compare_values(&b, cur);
                        if kind == Kind::Min {
                            o == Ordering::Less
                        } else {
                            o == Ordering::Greater
                        }
                    });
                    if replace {
                        *a = Some(b);
                    }
                }
            }
            _ => return None,
        }
        Some(())
    }

    fn finish(self, kind: Kind) -> Value {
        match (self, kind) {
            (Part::Count(n), _) => Value::from(n),
            (Part::Sum(_, 0), Kind::Avg) => Value::Null,
            (Part::Sum(s, n), Kind::Avg) => super::expr::float_value(as_f64(&s) / n as f64),
            (Part::Sum(_, 0), _) => Value::from(0),
            (Part::Sum(SqlValue::Integer(i), _), _) => Value::from(i),
            (Part::Sum(s, _), _) => super::expr::float_value(as_f64(&s)),
            (Part::Extreme(v), _) => v.unwrap_or(Value::Null),
        }
    }
}

fn as_f64(v: &SqlValue) -> f64 {
    match v {
        SqlValue::Integer(i) => *i as f64,
        SqlValue::Real(f) => *f,
        _ => 0.0,
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
            let mut groups: Vec<(Value, Vec<Part>)> = Vec::new();
            let mut index: HashMap<String, usize> = HashMap::new();
            let mut key_text = String::new();
            loop {
                let row = match rows.next() {
                    Ok(Some(r)) => r,
                    Ok(None) => break,
                    Err(e) if is_overflow(&e) => return Ok(None),
                    Err(e) => return Err(Error::Sqlite(e)),
                };
                let mut col = usize::from(self.constant_key.is_none());
                let mut parts = Vec::with_capacity(self.accs.len());
                for (_, _, cols) in &self.accs {
                    parts.push(Part::read(*cols, row, &mut col)?);
                }
                let bad: Option<i64> = row.get(col)?;
                if bad == Some(1) {
                    return Ok(None);
                }
                let key = match &self.constant_key {
                    Some(k) => k.clone(),
                    None => match row.get_ref(0)? {
                        ValueRef::Text(t) => serde_json::from_slice(t)?,
                        _ => Value::Null,
                    },
                };
                key_text.clear();
                equality_key(&key, &mut key_text);
                match index.get(&key_text) {
                    Some(&i) => {
                        for ((part, other), (_, kind, _)) in
                            groups[i].1.iter_mut().zip(parts).zip(&self.accs)
                        {
                            if part.merge(*kind, other).is_none() {
                                return Ok(None);
                            }
                        }
                    }
                    None => {
                        index.insert(key_text.clone(), groups.len());
                        groups.push((key, parts));
                    }
                }
            }
            Ok(Some(
                groups
                    .into_iter()
                    .map(|(key, parts)| {
                        let mut doc = Map::with_capacity(self.accs.len() + 1);
                        doc.insert("_id".to_string(), key);
                        for (part, (name, kind, _)) in parts.into_iter().zip(&self.accs) {
                            doc.insert(name.clone(), part.finish(*kind));
                        }
                        Value::Object(doc)
                    })
                    .collect(),
            ))
        })
    }
}

fn is_overflow(e: &rusqlite::Error) -> bool {
    e.to_string().contains("integer overflow")
}
