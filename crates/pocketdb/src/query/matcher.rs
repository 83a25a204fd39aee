//! The in-memory back end: evaluates a [`Filter`] against a document.

use crate::query::ast::Filter;
use serde_json::Value;

impl Filter {
    /// True when `doc` matches, with MongoDB's semantics.
    pub fn matches(&self, doc: &Value) -> bool {
        let _ = doc;
        todo!("Filter::matches")
    }
}
