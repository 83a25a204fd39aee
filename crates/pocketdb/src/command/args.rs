//! Reading the fields of a command document with MongoDB's type rules and error codes.

use super::CommandError;
use crate::value::BsonType;
use serde_json::{Map, Value};

/// Fields every command may carry that do not change its result (sessions, write and
/// read concerns, timeouts, comments, hints). They are accepted and ignored, as are all
/// fields starting with `$` (`$db`, `$clusterTime`, …).
const GENERIC_FIELDS: &[&str] = &[
    "lsid",
    "txnNumber",
    "autocommit",
    "startTransaction",
    "writeConcern",
    "readConcern",
    "readPreference",
    "comment",
    "maxTimeMS",
    "apiVersion",
    "apiStrict",
    "apiDeprecationErrors",
    "bypassDocumentValidation",
];

/// A command document: its name (the first key), the value of that key (usually the
/// collection name) and its other fields.
#[derive(Debug, Clone)]
pub struct CommandDoc<'a> {
    name: &'a str,
    target: &'a Value,
    body: &'a Map<String, Value>,
    /// How error messages name this document (`find`, `update.updates`).
    prefix: String,
    /// Whether the first key is the command name (false for nested statements).
    skip_first: bool,
}

impl<'a> CommandDoc<'a> {
    /// Splits a command document; fails when it is not a non-empty object.
    pub fn new(command: &'a Value) -> Result<CommandDoc<'a>, CommandError> {
        let body = command.as_object().ok_or_else(|| {
            CommandError::new(
                9,
                format!(
                    "a command must be a document, got {}",
                    BsonType::of(command).name()
                ),
            )
        })?;
        let (name, target) = body
            .iter()
            .next()
            .ok_or_else(|| CommandError::new(59, "no such command: ''"))?;
        Ok(CommandDoc {
            name,
            target,
            body,
            prefix: name.to_string(),
            skip_first: true,
        })
    }

    /// A document nested in a command (a statement of `updates` or `deletes`), whose
    /// fields are read with the same rules; `field` names it in error messages.
    pub fn nested(&self, field: &str, value: &'a Value) -> Result<CommandDoc<'a>, CommandError> {
        let prefix = format!("{}.{field}", self.prefix);
        let body = value.as_object().ok_or_else(|| {
            CommandError::new(
                14,
                format!(
                    "BSON field '{prefix}' is the wrong type '{}', expected type 'object'",
                    BsonType::of(value).name()
                ),
            )
        })?;
        Ok(CommandDoc {
            name: self.name,
            target: self.target,
            body,
            prefix,
            skip_first: false,
        })
    }

    /// The command's name.
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// The collection the command addresses: the first key's value, which must be a
    /// string.
    pub fn collection(&self) -> Result<&'a str, CommandError> {
        match self.target {
            Value::String(s) => Ok(s),
            other => Err(CommandError::new(
                73,
                format!(
                    "collection name has invalid type {}",
                    BsonType::of(other).name()
                ),
            )),
        }
    }

    /// Rejects fields other than the command name, `allowed`, generic ones and
    /// `$`-prefixed ones, as MongoDB rejects unknown fields (code 40415).
    pub fn check_fields(&self, allowed: &[&str]) -> Result<(), CommandError> {
        for key in self.body.keys().skip(usize::from(self.skip_first)) {
            if key.starts_with('$')
                || GENERIC_FIELDS.contains(&key.as_str())
                || allowed.contains(&key.as_str())
            {
                continue;
            }
            return Err(CommandError::new(
                40415,
                format!("BSON field '{}.{key}' is an unknown field.", self.prefix),
            ));
        }
        Ok(())
    }

    /// A field's raw value (`None` when absent or null).
    pub fn get(&self, field: &str) -> Option<&'a Value> {
        match self.body.get(field) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    fn wrong_type(&self, field: &str, value: &Value, expected: &str) -> CommandError {
        CommandError::new(
            14,
            format!(
                "BSON field '{}.{field}' is the wrong type '{}', expected type '{expected}'",
                self.prefix,
                BsonType::of(value).name()
            ),
        )
    }

    /// A missing required field (code 40414).
    pub fn missing(&self, field: &str) -> CommandError {
        CommandError::new(
            40414,
            format!(
                "BSON field '{}.{field}' is missing but a required field",
                self.prefix
            ),
        )
    }

    /// An optional document field.
    pub fn document(&self, field: &str) -> Result<Option<&'a Value>, CommandError> {
        match self.get(field) {
            None => Ok(None),
            Some(v @ Value::Object(_)) => Ok(Some(v)),
            Some(v) => Err(self.wrong_type(field, v, "object")),
        }
    }

    /// An optional array field.
    pub fn array(&self, field: &str) -> Result<Option<&'a Vec<Value>>, CommandError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Array(items)) => Ok(Some(items)),
            Some(v) => Err(self.wrong_type(field, v, "array")),
        }
    }

    /// A required array field.
    pub fn required_array(&self, field: &str) -> Result<&'a Vec<Value>, CommandError> {
        self.array(field)?.ok_or_else(|| self.missing(field))
    }

    /// An optional string field.
    pub fn string(&self, field: &str) -> Result<Option<&'a str>, CommandError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(self.wrong_type(field, v, "string")),
        }
    }

    /// An optional boolean; numbers count as booleans (non-zero is true), as in MongoDB.
    pub fn bool(&self, field: &str, default: bool) -> Result<bool, CommandError> {
        match self.get(field) {
            None => Ok(default),
            Some(v) => as_bool(v).ok_or_else(|| self.wrong_type(field, v, "bool")),
        }
    }

    /// An optional non-negative integer (integral doubles are accepted).
    pub fn non_negative(&self, field: &str) -> Result<Option<u64>, CommandError> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => match as_integer(v) {
                Some(n) if n >= 0 => Ok(Some(n as u64)),
                // MongoDB's code for a field its IDL bounds below (`Location51024`).
                Some(n) => Err(CommandError::new(
                    51024,
                    format!(
                        "BSON field '{}.{field}' value must be >= 0, actual value '{n}'",
                        self.prefix
                    ),
                )),
                None => Err(self.wrong_type(field, v, "long")),
            },
        }
    }

    /// An optional integer of any sign (integral doubles are accepted).
    pub fn integer(&self, field: &str) -> Result<Option<i64>, CommandError> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => as_integer(v)
                .map(Some)
                .ok_or_else(|| self.wrong_type(field, v, "long")),
        }
    }
}

/// A boolean as MongoDB reads one: `true`/`false` or a number (non-zero is true).
pub(crate) fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_f64().map(|f| f != 0.0),
        _ => None,
    }
}

/// An integer, from an integer or an integral double.
pub(crate) fn as_integer(v: &Value) -> Option<i64> {
    let n = v.as_number()?;
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    let f = n.as_f64()?;
    (f.fract() == 0.0 && f.abs() < 9.0e18).then_some(f as i64)
}
