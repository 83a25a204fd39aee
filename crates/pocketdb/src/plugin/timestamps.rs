//! The timestamps plugin: `created_at` / `updated_at` maintained on every write (what
//! seed 001 did with SQLite triggers).

use super::{Plugin, WriteContext, WriteOp};
use crate::error::Result;
use crate::update::date_value;
use serde_json::Value;

/// Sets `created_at` on insert and `updated_at` on every write, as RFC 3339 UTC strings
/// with milliseconds (`"2026-01-02T03:04:05.678Z"`, which sort in time order). A
/// replacement or update keeps the stored `created_at`; one given on insert is kept.
///
/// ```
/// use pocketdb::plugin::Timestamps;
/// use pocketdb::Database;
/// use serde_json::{json, Value};
///
/// let db = Database::memory()?;
/// db.register_plugin(Timestamps::default())?;
/// let notes = db.collection::<Value>("notes");
/// notes.insert_one(json!({"_id": 1, "text": "hi"}))?;
/// let doc = notes.find_one(json!({"_id": 1}))?.expect("stored");
/// assert!(doc["created_at"].as_str().is_some_and(|s| s.ends_with('Z')));
/// assert_eq!(doc["created_at"], doc["updated_at"]);
/// # Ok::<(), pocketdb::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Timestamps {
    /// Field set on insert (default `created_at`).
    pub created: String,
    /// Field set on every write (default `updated_at`).
    pub updated: String,
}

impl Default for Timestamps {
    fn default() -> Self {
        Timestamps {
            created: "created_at".to_string(),
            updated: "updated_at".to_string(),
        }
    }
}

impl Plugin for Timestamps {
    fn name(&self) -> &str {
        "timestamps"
    }

    fn transforms_reads(&self) -> bool {
        false
    }

    fn before_write(&self, ctx: &WriteContext<'_>, doc: &mut Value) -> Result<()> {
        let now = match date_value(crate::changes::now_millis()) {
            Value::Object(mut m) => m.remove("$date").unwrap_or(Value::Null),
            other => other,
        };
        let Value::Object(map) = doc else {
            return Ok(());
        };
        match ctx.op {
            WriteOp::Insert => {
                if !map.contains_key(&self.created) {
                    map.insert(self.created.clone(), now.clone());
                }
            }
            WriteOp::Replace | WriteOp::Update => {
                if !map.contains_key(&self.created) {
                    if let Some(c) = ctx.previous.and_then(|p| p.get(&self.created)) {
                        map.insert(self.created.clone(), c.clone());
                    }
                }
            }
        }
        map.insert(self.updated.clone(), now);
        Ok(())
    }
}
