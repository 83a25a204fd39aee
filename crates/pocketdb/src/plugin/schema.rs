//! Schema validation (cargo feature `schema`): a JSON Schema per collection, checked by
//! the `jsonschema` crate before every write, with MongoDB's `validationLevel` and
//! `validationAction`.

use super::{Plugin, WriteContext, WriteOp};
use crate::error::{Error, Result};
use serde_json::Value;
use std::collections::HashMap;

/// Which writes are validated (MongoDB's `validationLevel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ValidationLevel {
    /// Every insert and update (the default).
    #[default]
    Strict,
    /// Inserts, and updates of documents that were valid before; documents already
    /// invalid can still be updated.
    Moderate,
}

/// What happens to an invalid document (MongoDB's `validationAction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ValidationAction {
    /// Reject the write with [`Error::Validation`] (the default).
    #[default]
    Error,
    /// Store it and log a warning (`tracing`).
    Warn,
}

struct Rule {
    validator: jsonschema::Validator,
    level: ValidationLevel,
    action: ValidationAction,
}

/// A plugin validating documents against a JSON Schema per collection. Errors name the
/// document path, the rule and what was wrong.
///
/// ```
/// use pocketdb::plugin::{SchemaValidation, ValidationAction, ValidationLevel};
/// use pocketdb::{Database, Error};
/// use serde_json::{json, Value};
///
/// let db = Database::memory()?;
/// let schema = json!({"type": "object", "required": ["name"],
///                     "properties": {"age": {"type": "integer", "minimum": 0}}});
/// db.register_plugin(SchemaValidation::new().collection(
///     "users", &schema, ValidationLevel::Strict, ValidationAction::Error)?)?;
/// let users = db.collection::<Value>("users");
/// match users.insert_one(json!({"name": "Ada", "age": -1})) {
///     Err(Error::Validation { errors, .. }) => assert!(errors[0].contains("/age")),
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), pocketdb::Error>(())
/// ```
#[derive(Default)]
pub struct SchemaValidation {
    rules: HashMap<String, Rule>,
}

impl std::fmt::Debug for SchemaValidation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaValidation")
            .field("collections", &self.rules.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl SchemaValidation {
    /// A plugin without rules.
    pub fn new() -> SchemaValidation {
        SchemaValidation::default()
    }

    /// Validates `collection` against `schema`. An invalid schema is an
    /// `InvalidArgument` error.
    pub fn collection(
        mut self,
        collection: &str,
        schema: &Value,
        level: ValidationLevel,
        action: ValidationAction,
    ) -> Result<SchemaValidation> {
        crate::engine::schema::validate_collection_name(collection)?;
        let validator = jsonschema::validator_for(schema)
            .map_err(|e| Error::InvalidArgument(format!("invalid JSON Schema: {e}")))?;
        self.rules.insert(
            collection.to_string(),
            Rule {
                validator,
                level,
                action,
            },
        );
        Ok(self)
    }
}

fn describe(e: &jsonschema::ValidationError<'_>) -> String {
    let path = e.instance_path().as_str();
    let path = if path.is_empty() { "/" } else { path };
    let schema_path = e.schema_path().as_str();
    let rule = schema_path.rsplit('/').next().unwrap_or(schema_path);
    format!("at '{path}': rule '{rule}' ({schema_path}): {e}")
}

impl Plugin for SchemaValidation {
    fn name(&self) -> &str {
        "schema-validation"
    }

    fn transforms_reads(&self) -> bool {
        false
    }

    fn before_write(&self, ctx: &WriteContext<'_>, doc: &mut Value) -> Result<()> {
        let Some(rule) = self.rules.get(ctx.collection) else {
            return Ok(());
        };
        if rule.level == ValidationLevel::Moderate && ctx.op != WriteOp::Insert {
            if let Some(previous) = ctx.previous {
                if !rule.validator.is_valid(previous) {
                    return Ok(());
                }
            }
        }
        let errors: Vec<String> = rule
            .validator
            .iter_errors(doc)
            .map(|e| describe(&e))
            .collect();
        if errors.is_empty() {
            return Ok(());
        }
        match rule.action {
            ValidationAction::Error => Err(Error::Validation {
                collection: ctx.collection.to_string(),
                errors,
            }),
            ValidationAction::Warn => {
                tracing::warn!(
                    "document failed validation in collection '{}': {}",
                    ctx.collection,
                    errors.join("; ")
                );
                Ok(())
            }
        }
    }
}
