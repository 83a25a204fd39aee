//! Connections and storage layout: opening SQLite files with the configured pragmas,
//! the pool of one writer and several readers, and the schema of the catalog, change log
//! and collection tables. Knows nothing of queries or documents.

pub(crate) mod buffer;
mod checkpoint;
mod options;
mod pool;
pub(crate) mod schema;
mod writer;

pub use writer::CommitStats;
pub(crate) use writer::OwnedJob;

pub use buffer::{BufferEvent, BufferStats};
pub use checkpoint::{CheckpointOptions, CheckpointStats};
pub use options::{BufferOptions, Durability, FsyncPolicy, JournalMode, Options, Synchronous};
pub(crate) use pool::Pool;
