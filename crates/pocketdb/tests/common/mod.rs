//! Helpers shared by integration tests.

pub mod generators;

/// `field` of every document of `c`, in `_id` order.
#[allow(dead_code)]
pub fn field_by_id(c: &pocketdb::Collection, field: &str) -> Vec<serde_json::Value> {
    c.find(serde_json::json!({}))
        .unwrap()
        .sort(serde_json::json!({"_id": 1}))
        .to_vec()
        .unwrap()
        .into_iter()
        .map(|d| d[field].clone())
        .collect()
}
