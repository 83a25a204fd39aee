//! Turning a filter into the SQL that fetches candidate rows, and fetching them.
//!
//! Rows are read in pages keyed by `rid` (`rid > last ORDER BY rid LIMIT n`), so cursors
//! are lazy without holding a statement open across calls, and writes that scan (update
//! many, delete many) can modify rows between pages.

use crate::engine::schema::table_name;
use crate::error::Result;
use crate::id::id_key;
use crate::query::sql::compile_filter;
use crate::query::{Cond, Filter, InItem};
use rusqlite::types::Value as SqlValue;
use rusqlite::Connection;
use serde_json::Value;

/// A stored document with its bookkeeping.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub rid: i64,
    pub key: String,
    pub rev: i64,
    pub doc: Value,
}

/// How a filter is answered: SQL selecting candidates, and whether the matcher must
/// re-check them.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub filter: Filter,
    pub where_sql: String,
    pub params: Vec<SqlValue>,
    /// True when every row the SQL returns matches the filter.
    pub exact: bool,
}

impl Plan {
    pub(crate) fn new(filter: Filter) -> Plan {
        let (id_sql, id_params, id_only) = id_constraint(&filter);
        if id_only {
            return Plan {
                filter,
                where_sql: id_sql.unwrap_or_else(|| "1".to_string()),
                params: id_params,
                exact: true,
            };
        }
        let compiled = compile_filter(&filter);
        let (where_sql, params) = match id_sql {
            Some(id_sql) => {
                let mut params = id_params;
                params.extend(compiled.params);
                (format!("{id_sql} AND ({})", compiled.sql), params)
            }
            None => (compiled.sql, compiled.params),
        };
        Plan {
            filter,
            where_sql,
            params,
            exact: compiled.exact,
        }
    }

    /// Reads up to `limit` matching rows with `rid > after`, in `rid` order. Returns the
    /// matching rows and the last `rid` examined (to continue from).
    pub(crate) fn fetch_page(
        &self,
        conn: &Connection,
        collection: &str,
        after: i64,
        limit: usize,
    ) -> Result<(Vec<Row>, Option<i64>)> {
        // LIMIT is spliced as an integer literal, not bound: SQLite's planner reads a
        // bound LIMIT, so rebinding it (rusqlite clears bindings when a cached statement
        // is returned) forces a full re-prepare on every execution.
        let sql = format!(
            "SELECT rid, id, rev, json(doc) FROM {} WHERE ({}) AND rid > ? ORDER BY rid LIMIT {}",
            table_name(collection),
            self.where_sql,
            i64::try_from(limit).unwrap_or(i64::MAX)
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut params: Vec<&dyn rusqlite::ToSql> = self
            .params
            .iter()
            .map(|p| p as &dyn rusqlite::ToSql)
            .collect();
        params.push(&after);
        let mut rows = stmt.query(params.as_slice())?;
        let mut out = Vec::new();
        let mut last = None;
        while let Some(r) = rows.next()? {
            let rid: i64 = r.get(0)?;
            last = Some(rid);
            let text: String = r.get(3)?;
            let doc: Value = serde_json::from_str(&text)?;
            if self.exact || self.filter.matches(&doc) {
                out.push(Row {
                    rid,
                    key: r.get(1)?,
                    rev: r.get(2)?,
                    doc,
                });
            }
        }
        Ok((out, last))
    }

    /// Counts matching rows.
    pub(crate) fn count(&self, conn: &Connection, collection: &str) -> Result<u64> {
        if self.exact {
            let sql = format!(
                "SELECT count(*) FROM {} WHERE {}",
                table_name(collection),
                self.where_sql
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let n: i64 =
                stmt.query_row(rusqlite::params_from_iter(self.params.iter()), |r| r.get(0))?;
            return Ok(n as u64);
        }
        let mut n = 0u64;
        let mut after = 0;
        loop {
            let (rows, last) = self.fetch_page(conn, collection, after, 1024)?;
            n += rows.len() as u64;
            match last {
                Some(l) => after = l,
                None => return Ok(n),
            }
        }
    }

    /// Every matching row, in `rid` order.
    pub(crate) fn fetch_all(&self, conn: &Connection, collection: &str) -> Result<Vec<Row>> {
        let mut out = Vec::new();
        let mut after = 0;
        loop {
            let (rows, last) = self.fetch_page(conn, collection, after, 1024)?;
            out.extend(rows);
            match last {
                Some(l) => after = l,
                None => return Ok(out),
            }
        }
    }
}

/// Finds an `_id` equality or `$in` among the filter's top-level conjuncts, which the
/// `id` column's unique index answers. Returns the SQL, its parameters, and whether that
/// constraint is the whole filter.
fn id_constraint(filter: &Filter) -> (Option<String>, Vec<SqlValue>, bool) {
    let conjuncts: &[Filter] = match filter {
        Filter::And(children) => children,
        other => std::slice::from_ref(other),
    };
    for (i, c) in conjuncts.iter().enumerate() {
        if let Some((sql, params)) = id_sql(c) {
            return (Some(sql), params, conjuncts.len() == 1 && i == 0);
        }
    }
    (None, Vec::new(), false)
}

fn id_sql(filter: &Filter) -> Option<(String, Vec<SqlValue>)> {
    let Filter::Field { path, cond } = filter else {
        return None;
    };
    if path.len() != 1 || path.first() != "_id" {
        return None;
    }
    match cond {
        // `_id` is never an array, so equality is exact key equality.
        Cond::Eq(v) if !v.is_array() => Some(("id = ?".to_string(), vec![id_key(v).into()])),
        Cond::In(items)
            if items
                .iter()
                .all(|i| matches!(i, InItem::Value(v) if !v.is_array())) =>
        {
            let keys: Vec<SqlValue> = items
                .iter()
                .filter_map(|i| match i {
                    InItem::Value(v) => Some(id_key(v).into()),
                    InItem::Regex(_) => None,
                })
                .collect();
            if keys.is_empty() {
                return Some(("0".to_string(), Vec::new()));
            }
            let marks = vec!["?"; keys.len()].join(",");
            Some((format!("id IN ({marks})"), keys))
        }
        _ => None,
    }
}
