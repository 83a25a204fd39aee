//! MongoDB JSON filter → [`Filter`].

use crate::error::Result;
use crate::query::ast::Filter;
use serde_json::Value;

/// Parses a MongoDB-style filter document into the filter AST.
pub fn parse_filter(filter: &Value) -> Result<Filter> {
    let _ = filter;
    todo!("parse_filter")
}
