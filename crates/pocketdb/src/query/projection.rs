//! Projections: inclusion, exclusion, nested paths and `_id` rules.

use crate::error::Result;
use serde_json::Value;

/// A parsed projection.
#[derive(Debug, Clone, PartialEq)]
pub struct Projection {
    _private: (),
}

impl Projection {
    /// Parses a projection document.
    pub fn parse(spec: &Value) -> Result<Projection> {
        let _ = spec;
        todo!("Projection::parse")
    }

    /// Applies the projection to a document.
    pub fn apply(&self, doc: &Value) -> Value {
        let _ = doc;
        todo!("Projection::apply")
    }
}
