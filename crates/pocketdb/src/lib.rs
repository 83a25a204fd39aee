//! pocketdb: an embedded, local-first document database on SQLite with MongoDB's query
//! and update semantics.

#![warn(missing_docs)]

pub mod error;
pub mod query;
pub mod update;
pub mod value;

pub use error::{BulkWriteFailure, Error, Result, WriteError};
