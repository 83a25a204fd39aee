//! Sort specifications (`{"age": -1, "name": 1}`) and MongoDB's sort order.

use crate::error::Result;
use crate::value::FieldPath;
use serde_json::Value;
use std::cmp::Ordering;

/// Direction of one sort key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortOrder {
    /// Ascending (`1`).
    Asc,
    /// Descending (`-1`).
    Desc,
}

/// A parsed sort specification.
#[derive(Debug, Clone, PartialEq)]
pub struct SortSpec {
    /// Keys in priority order.
    pub keys: Vec<(FieldPath, SortOrder)>,
}

impl SortSpec {
    /// Parses `{"field": 1 | -1, …}`.
    pub fn parse(spec: &Value) -> Result<SortSpec> {
        let _ = spec;
        todo!("SortSpec::parse")
    }

    /// Compares two documents under this spec, with MongoDB's rules (missing sorts as
    /// null; an array field sorts by its smallest element ascending, largest descending).
    pub fn compare(&self, a: &Value, b: &Value) -> Ordering {
        let _ = (a, b);
        todo!("SortSpec::compare")
    }
}
