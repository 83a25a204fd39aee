//! The SQL back end: compiles a [`Filter`] into a `WHERE` clause over the collection
//! table's JSONB `doc` column.

use crate::query::ast::Filter;

/// A compiled `WHERE` clause.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlFilter {
    /// SQL boolean expression over the column `doc`; `1` when nothing could be pushed.
    pub sql: String,
    /// Values bound to the `?` placeholders, in order.
    pub params: Vec<rusqlite::types::Value>,
    /// True when the SQL answers the filter exactly; false when rows it returns must be
    /// re-checked with the in-memory matcher (the SQL then selects a superset).
    pub exact: bool,
}

/// Compiles a filter to SQL.
pub fn compile_filter(filter: &Filter) -> SqlFilter {
    let _ = filter;
    todo!("compile_filter")
}

/// Registers the SQL functions compiled filters may call.
pub fn register_functions(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    let _ = conn;
    Ok(())
}
