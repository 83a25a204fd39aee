//! The one public error type of pocketdb.
//!
//! Every fallible operation returns [`Result`]. Variants carry the context a caller
//! needs (the operator, path, index or key involved) and are `#[non_exhaustive]` so new
//! failure modes can be added without breaking matches.

use serde_json::Value;

/// Shorthand for `std::result::Result<T, pocketdb::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in pocketdb.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A write would store a second document with the same key in a unique index
    /// (`_id` always is one). Nothing of the failing write was stored.
    #[error("duplicate key in collection '{collection}', index '{index}': {key}")]
    DuplicateKey {
        /// Collection written to.
        collection: String,
        /// Name of the unique index, `_id_` for the primary key.
        index: String,
        /// The offending key, as JSON.
        key: String,
    },
    /// No index of that name exists on the collection (drop, hint).
    #[error("index '{name}' not found in collection '{collection}'")]
    IndexNotFound {
        /// Collection searched.
        collection: String,
        /// The index name (or key specification, as JSON) asked for.
        name: String,
    },
    /// An index cannot be created as asked: bad key specification or options, or an
    /// index with the same name or keys but different options exists.
    #[error("index '{name}' on collection '{collection}': {message}")]
    InvalidIndex {
        /// Collection of the index.
        collection: String,
        /// Name of the index (as given or generated).
        name: String,
        /// What was wrong.
        message: String,
    },
    /// A query filter is malformed: unknown operator, wrong operand type, bad regex…
    #[error("invalid filter{}: {message}", at_path(path))]
    InvalidFilter {
        /// Field path the problem was found at, empty at the top level.
        path: String,
        /// What was wrong.
        message: String,
    },
    /// An update document is malformed or cannot be applied to a document.
    #[error("invalid update: {operator}{}: {message}", at_path(path))]
    InvalidUpdate {
        /// Operator involved (`$inc`, `$set`, … or `replacement`).
        operator: String,
        /// Field path involved, empty when none.
        path: String,
        /// What was wrong.
        message: String,
    },
    /// A projection document is malformed.
    #[error("invalid projection{}: {message}", at_path(path))]
    InvalidProjection {
        /// Field path involved.
        path: String,
        /// What was wrong.
        message: String,
    },
    /// A sort specification is malformed.
    #[error("invalid sort{}: {message}", at_path(path))]
    InvalidSort {
        /// Field path involved.
        path: String,
        /// What was wrong.
        message: String,
    },
    /// A document is not acceptable for storage (not an object, bad field name, bad `_id`).
    #[error("invalid document: {0}")]
    InvalidDocument(String),
    /// A database, collection or index name is not allowed.
    #[error("invalid {kind} name '{name}': {reason}")]
    InvalidName {
        /// `database`, `collection`, `index` or `field`.
        kind: &'static str,
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A document exceeds the configured maximum size.
    #[error("document of {size} bytes exceeds the maximum of {max} bytes")]
    DocumentTooLarge {
        /// Size of the document's JSON text.
        size: usize,
        /// The configured limit ([`crate::Options::max_document_size`]).
        max: usize,
    },
    /// The named collection does not exist (for operations that require it).
    #[error("collection '{0}' does not exist")]
    CollectionNotFound(String),
    /// The named database does not exist.
    #[error("database '{0}' does not exist")]
    DatabaseNotFound(String),
    /// A collection with that name already exists.
    #[error("collection '{0}' already exists")]
    CollectionExists(String),
    /// A command given to the command layer is malformed or unknown.
    #[error("invalid command: {0}")]
    InvalidCommand(String),
    /// An argument is out of range or inconsistent (negative limit, …).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Several writes of a bulk operation failed; the ones that succeeded are reported.
    #[error("bulk write failed: {}", .0.summary())]
    BulkWrite(Box<BulkWriteFailure>),
    /// A typed collection could not convert between a document and the Rust type.
    #[error("serialization: {0}")]
    Serde(String),
    /// Malformed JSON text.
    #[error("malformed JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// An error from SQLite.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// An I/O error (creating directories, reading files).
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The database file is not a pocketdb database or is from an incompatible version.
    #[error("incompatible database file: {0}")]
    Incompatible(String),
    /// A change stream or live query fell behind: its bounded buffer filled up and it
    /// was dropped from fan-out so writers never wait. Everything up to `resume_token`
    /// was delivered; `watch_from(resume_token)` continues without gap or duplicate.
    #[error("change stream lagged behind; resume from token {resume_token}")]
    Lagged {
        /// The sequence to resume from (the last change delivered or skipped).
        resume_token: i64,
    },
    /// A resume token is older than the change log's retention: changes after it were
    /// trimmed, so resuming would leave a gap.
    #[error("resume token {token} is older than the change log's retention (oldest resumable token: {oldest_resumable})")]
    ResumeTokenExpired {
        /// The token asked for.
        token: i64,
        /// The oldest token that can still be resumed from.
        oldest_resumable: i64,
    },
    /// A resume token or change-set position lies past the end of this file's change
    /// log: it was taken from another file, or from a history this file does not have
    /// (a copy restored from an older backup). Resuming from it would skip changes.
    #[error("position {token} is past the end of the change log (newest: {newest}): it comes from another file or history")]
    ResumeTokenNotFound {
        /// The token or position asked for.
        token: i64,
        /// The newest position of the log.
        newest: i64,
    },
    /// A plugin hook rejected an operation; nothing of the write was stored.
    #[error("plugin '{plugin}' rejected the operation: {message}")]
    Plugin {
        /// Name of the plugin.
        plugin: String,
        /// The hook's message.
        message: String,
    },
    /// A document failed its collection's JSON Schema; nothing was stored.
    #[error("document failed validation in collection '{collection}': {}", .errors.join("; "))]
    Validation {
        /// Collection written to.
        collection: String,
        /// One entry per violation: `at '<path>': <rule>: <message>`.
        errors: Vec<String>,
    },
    /// Decryption failed: wrong key, or the ciphertext was tampered with.
    #[error("decryption failed: {0}")]
    Decryption(String),
    /// The transaction holding this write did not commit (group commit: another write of
    /// the same batch could not be made durable). Nothing of the write was stored.
    #[error("write not committed: {0}")]
    Commit(String),
    /// The buffer log of a buffered database is unusable, or the buffer was shut down.
    #[error("buffer log: {0}")]
    Buffer(String),
    /// An aggregation pipeline is malformed or cannot be evaluated: unknown stage or
    /// operator, wrong operand type, a value an operator cannot accept.
    #[error("invalid pipeline: {stage}: {message}")]
    InvalidPipeline {
        /// The stage (`$group`, …) or expression operator (`$add`, …) involved.
        stage: String,
        /// What was wrong.
        message: String,
    },
    /// A sharded or partitioned collection cannot do what was asked: its catalog entry or
    /// files are inconsistent, the operation does not apply to its layout, or a worker
    /// thread of a scatter-gather failed.
    #[error("sharded collection '{collection}': {message}")]
    Shard {
        /// The sharded or partitioned collection.
        collection: String,
        /// What was wrong.
        message: String,
    },
    /// A blocking aggregation stage needed more memory than allowed and spilling to disk
    /// was not allowed (MongoDB's `allowDiskUse`).
    #[error(
        "{stage} exceeded the memory limit of {limit} bytes; set allow_disk_use (allowDiskUse) to spill to disk"
    )]
    MemoryLimitExceeded {
        /// The stage that ran out of memory.
        stage: String,
        /// The configured limit in bytes.
        limit: usize,
    },
}

fn at_path(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!(" at '{path}'")
    }
}

/// One failed write of a bulk operation.
#[derive(Debug)]
pub struct WriteError {
    /// Position of the failed operation or document in the request.
    pub index: usize,
    /// Why it failed.
    pub error: Error,
}

/// What a partially failed `insert_many` / `bulk_write` did and did not do.
#[derive(Debug, Default)]
pub struct BulkWriteFailure {
    /// `_id`s of the documents inserted, by request position.
    pub inserted_ids: Vec<(usize, Value)>,
    /// Documents matched by updates that succeeded.
    pub matched_count: u64,
    /// Documents modified by updates that succeeded.
    pub modified_count: u64,
    /// Documents deleted by deletes that succeeded.
    pub deleted_count: u64,
    /// Upserted `_id`s, by request position.
    pub upserted_ids: Vec<(usize, Value)>,
    /// The failures, in request order.
    pub write_errors: Vec<WriteError>,
}

impl BulkWriteFailure {
    fn summary(&self) -> String {
        let first = self
            .write_errors
            .first()
            .map(|e| format!("; first at index {}: {}", e.index, e.error))
            .unwrap_or_default();
        format!(
            "{} write error(s), {} inserted{first}",
            self.write_errors.len(),
            self.inserted_ids.len()
        )
    }
}

impl Error {
    pub(crate) fn filter(path: impl Into<String>, message: impl Into<String>) -> Error {
        Error::InvalidFilter {
            path: path.into(),
            message: message.into(),
        }
    }

    pub(crate) fn pipeline(stage: impl Into<String>, message: impl Into<String>) -> Error {
        Error::InvalidPipeline {
            stage: stage.into(),
            message: message.into(),
        }
    }

    pub(crate) fn update(
        operator: impl Into<String>,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Error {
        Error::InvalidUpdate {
            operator: operator.into(),
            path: path.into(),
            message: message.into(),
        }
    }

    /// MongoDB's numeric error code for this error, as the command layer reports it.
    pub fn code(&self) -> i32 {
        match self {
            Error::DuplicateKey { .. } => 11000,
            Error::IndexNotFound { .. } => 27,
            Error::InvalidIndex { .. } => 67,
            Error::InvalidFilter { .. } => 2,
            Error::InvalidUpdate { message, .. } => update_code(message),
            Error::InvalidProjection { .. } => 2,
            Error::InvalidSort { .. } => 2,
            Error::InvalidDocument(_) => 2,
            Error::InvalidName { .. } => 73,
            Error::DocumentTooLarge { .. } => 10334,
            Error::CollectionNotFound(_) => 26,
            Error::DatabaseNotFound(_) => 26,
            Error::CollectionExists(_) => 48,
            Error::InvalidCommand(_) => 59,
            Error::InvalidArgument(_) => 2,
            Error::BulkWrite(_) => 65,
            Error::Serde(_) => 2,
            Error::Json(_) => 9,
            Error::Lagged { .. } => 286,
            Error::ResumeTokenExpired { .. } => 286,
            Error::ResumeTokenNotFound { .. } => 280,
            Error::Plugin { .. } => 8000,
            Error::Validation { .. } => 121,
            Error::Decryption(_) => 8001,
            Error::InvalidPipeline { .. } => 40324,
            Error::MemoryLimitExceeded { .. } => 292,
            Error::Shard { .. } => 1,
            Error::Sqlite(_)
            | Error::Io(_)
            | Error::Incompatible(_)
            | Error::Commit(_)
            | Error::Buffer(_) => 1,
        }
    }
}

/// MongoDB's code for an invalid update, told by its message (which follows MongoDB's
/// wording): `TypeMismatch`, `ImmutableField`, `ConflictingUpdateOperators`,
/// `PathNotViable`, `DollarPrefixedFieldName` or `BadValue`, `FailedToParse` otherwise.
fn update_code(message: &str) -> i32 {
    const CODES: [(&str, i32); 12] = [
        ("non-numeric", 14),
        ("immutable field", 66),
        ("_id field cannot be changed", 66),
        ("shard key cannot be changed", 66),
        ("would create a conflict at", 40),
        ("Cannot create field", 28),
        ("dollar ($) prefixed field", 52),
        ("must be an array but", 2),
        ("non-array", 2),
        ("positional operator did not find the match", 2),
        ("No array filter found", 2),
        ("cannot be an array element", 2),
    ];
    CODES
        .iter()
        .find(|(text, _)| message.contains(text))
        .map_or(9, |(_, code)| *code)
}
