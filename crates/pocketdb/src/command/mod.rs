//! The MongoDB command layer: database commands as documents in, MongoDB's reply
//! documents out.
//!
//! [`run_command`] is what a wire-protocol or HTTP server calls for each request, and
//! what the `pocketdb run` CLI subcommand exposes. The command name is the first key of
//! the command document and its value the collection (as in MongoDB):
//!
//! ```
//! use pocketdb::{command::run_command, Database};
//! use serde_json::json;
//!
//! let db = Database::memory()?;
//! let reply = run_command(&db, &json!({"ping": 1}));
//! assert_eq!(reply, json!({"ok": 1}));
//! let reply = run_command(&db, &json!({"frobnicate": "users"}));
//! assert_eq!(reply["code"], 59);
//! # Ok::<(), pocketdb::Error>(())
//! ```
//!
//! Supported: `insert`, `find`, `update`, `delete`, `count`, `distinct`,
//! `findAndModify`, `aggregate`, `create`, `drop`, `listCollections`, `renameCollection`
//! (within the database), `getMore` (always `CursorNotFound`, see below), `ping`, and the index
//! commands `createIndexes`, `listIndexes`, `dropIndexes` and `explain` (of a `find` or an
//! `aggregate`; the planner's [`crate::Explain`] as JSON). Failures of a whole
//! command become `{ok: 0, errmsg, code, codeName}`; failures of single statements of
//! `insert`, `update` and `delete` are reported in `writeErrors` with `ok: 1`, as MongoDB
//! does. There are no server-side cursors: `find` and `listCollections` return every
//! result in `firstBatch` with cursor id `0` (drivers accept a first batch larger than
//! `batchSize`).

mod args;
mod commands;
mod indexes;
#[cfg(test)]
mod tests;

use crate::database::Database;
use crate::error::Error;
use serde_json::{json, Map, Value};
use std::fmt;

pub(crate) use args::CommandDoc;

/// Executes one MongoDB database command against `db` and returns MongoDB's reply
/// document. Never panics on malformed input: every problem becomes an error reply.
pub fn run_command(db: &Database, command: &Value) -> Value {
    match execute(db, command) {
        Ok(mut reply) => {
            reply.insert("ok".to_string(), json!(1));
            Value::Object(reply)
        }
        Err(error) => error.to_reply(),
    }
}

fn execute(db: &Database, command: &Value) -> Result<Map<String, Value>, CommandError> {
    let cmd = CommandDoc::new(command)?;
    match cmd.name() {
        "ping" => commands::ping(&cmd),
        "insert" => commands::insert(db, &cmd),
        "find" => commands::find(db, &cmd),
        "update" => commands::update(db, &cmd),
        "delete" => commands::delete(db, &cmd),
        "count" => commands::count(db, &cmd),
        "distinct" => commands::distinct(db, &cmd),
        "findAndModify" | "findandmodify" => commands::find_and_modify(db, &cmd),
        "create" => commands::create(db, &cmd),
        "drop" => commands::drop(db, &cmd),
        "listCollections" => commands::list_collections(db, &cmd),
        "renameCollection" => commands::rename_collection(db, &cmd),
        "getMore" => commands::get_more(&cmd),
        "aggregate" => commands::aggregate(db, &cmd),
        "createIndexes" => indexes::create_indexes(db, &cmd),
        "listIndexes" => indexes::list_indexes(db, &cmd),
        "dropIndexes" | "deleteIndexes" => indexes::drop_indexes(db, &cmd),
        "explain" => indexes::explain(db, &cmd),
        other => Err(CommandError::new(59, format!("no such command: '{other}'"))),
    }
}

/// A failed command as MongoDB reports it: a numeric code, its name, and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandError {
    /// MongoDB's error code (`2` BadValue, `9` FailedToParse, `59` CommandNotFound, …).
    pub code: i32,
    /// The human-readable message (`errmsg`).
    pub errmsg: String,
}

impl CommandError {
    /// An error with a code and a message.
    pub fn new(code: i32, errmsg: impl Into<String>) -> CommandError {
        CommandError {
            code,
            errmsg: errmsg.into(),
        }
    }

    /// MongoDB's name for the code (`codeName`).
    pub fn code_name(&self) -> String {
        code_name(self.code)
    }

    /// The reply document `{ok: 0, errmsg, code, codeName}`.
    pub fn to_reply(&self) -> Value {
        json!({
            "ok": 0,
            "errmsg": self.errmsg,
            "code": self.code,
            "codeName": self.code_name(),
        })
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.errmsg)
    }
}

impl std::error::Error for CommandError {}

impl From<Error> for CommandError {
    fn from(error: Error) -> CommandError {
        CommandError::new(error.code(), error_message(&error))
    }
}

/// The message MongoDB users expect for an error: pocketdb's own text, except for
/// duplicate keys, which carry MongoDB's `E11000` prefix that tools look for.
pub fn error_message(error: &Error) -> String {
    match error {
        Error::DuplicateKey {
            collection,
            index,
            key,
        } => format!(
            "E11000 duplicate key error collection: {collection} index: {index} dup key: {key}"
        ),
        other => other.to_string(),
    }
}

/// MongoDB's `codeName` for an error code (`Location<code>` for codes without a name).
pub fn code_name(code: i32) -> String {
    let name = match code {
        1 => "InternalError",
        2 => "BadValue",
        9 => "FailedToParse",
        14 => "TypeMismatch",
        20 => "IllegalOperation",
        28 => "PathNotViable",
        40 => "ConflictingUpdateOperators",
        43 => "CursorNotFound",
        52 => "DollarPrefixedFieldName",
        66 => "ImmutableField",
        280 => "ChangeStreamFatalError",
        286 => "ChangeStreamHistoryLost",
        16 => "InvalidLength",
        26 => "NamespaceNotFound",
        27 => "IndexNotFound",
        48 => "NamespaceExists",
        59 => "CommandNotFound",
        115 => "CommandNotSupported",
        65 => "MultipleErrorsOccurred",
        67 => "CannotCreateIndex",
        72 => "InvalidOptions",
        85 => "IndexOptionsConflict",
        86 => "IndexKeySpecsConflict",
        197 => "InvalidIndexSpecificationOption",
        73 => "InvalidNamespace",
        10334 => "BSONObjectTooLarge",
        11000 => "DuplicateKey",
        292 => "QueryExceededMemoryLimitNoDiskUseAllowed",
        other => return format!("Location{other}"),
    };
    name.to_string()
}

/// The `{index, code, errmsg}` entry of `writeErrors` for a failed statement.
pub(crate) fn write_error(index: usize, error: &CommandError) -> Value {
    json!({"index": index, "code": error.code, "errmsg": error.errmsg})
}
