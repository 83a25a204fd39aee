//! Tunables of a database: pragmas (seed 001's defaults) and limits.

use super::checkpoint::CheckpointOptions;
use std::time::Duration;

/// SQLite's `synchronous` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synchronous {
    /// No syncs: fastest, a power loss may lose recent commits or corrupt the file.
    Off,
    /// In WAL mode: durable against application crashes, a power loss may roll back the
    /// last commits. The default.
    Normal,
    /// Sync the WAL at every commit: durable against power loss.
    Full,
    /// Like `Full`, also syncing the directory.
    Extra,
}

impl Synchronous {
    pub(crate) fn pragma(self) -> &'static str {
        match self {
            Synchronous::Off => "OFF",
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
            Synchronous::Extra => "EXTRA",
        }
    }
}

/// SQLite's `journal_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JournalMode {
    /// Write-ahead log: readers run beside the writer. The default.
    Wal,
    /// Rollback journal, deleted after each transaction.
    Delete,
    /// Rollback journal, truncated after each transaction.
    Truncate,
    /// Journal kept in memory (unsafe on crash).
    Memory,
    /// No journal (unsafe on crash; for bulk loads only).
    Off,
}

impl JournalMode {
    pub(crate) fn pragma(self) -> &'static str {
        match self {
            JournalMode::Wal => "WAL",
            JournalMode::Delete => "DELETE",
            JournalMode::Truncate => "TRUNCATE",
            JournalMode::Memory => "MEMORY",
            JournalMode::Off => "OFF",
        }
    }
}

/// How a database is opened. `Options::default()` gives seed 001's tuning: WAL,
/// `synchronous=NORMAL`, a 64 MiB page cache, 256 MiB of mmap, temp tables in memory.
#[derive(Debug, Clone)]
pub struct Options {
    /// Journal mode (default WAL).
    pub journal_mode: JournalMode,
    /// Durability of commits (default NORMAL).
    pub synchronous: Synchronous,
    /// Page cache per connection, in KiB (default 65,536).
    pub cache_size_kib: u32,
    /// Bytes of the file to memory-map (default 256 MiB; 0 disables).
    pub mmap_size: u64,
    /// Keep temporary tables and indexes in memory (default true).
    pub temp_store_memory: bool,
    /// How long a connection waits for a lock held by another process.
    pub busy_timeout: Duration,
    /// Maximum number of reader connections kept open (default 4). Readers run beside
    /// the single writer thanks to WAL.
    pub max_readers: usize,
    /// Largest document accepted, in bytes of JSON text (default 16 MiB, as MongoDB).
    pub max_document_size: usize,
    /// How writes are made durable and acknowledged (default [`Durability::Sync`]).
    pub durability: Durability,
    /// How often the background TTL pass deletes expired documents (default 60 s, as
    /// MongoDB). The thread starts only once a TTL index exists.
    pub ttl_interval: Duration,
    /// Reads slower than this are logged with `tracing::warn!` (target
    /// `pocketdb::slow_query`) and kept for `Database::stats` (default `None`: off).
    pub slow_query_threshold: Option<Duration>,
    /// How often the background thread deletes expired documents of collections with
    /// `expire_after` (default 1 s).
    pub expiry_interval: Duration,
    /// When and where the WAL is checkpointed (default: in a background thread from
    /// 1,000 pages on).
    pub checkpoint: CheckpointOptions,
    /// Member files of sharded and partitioned collections kept open for later use
    /// (default 64). Each open member holds a writer, its readers, a checkpoint thread
    /// and their file descriptors; beyond this many, the least recently used are closed
    /// (and reopened when needed again). Members in use stay open while they are.
    pub max_open_members: usize,
}

/// How writes are committed and when they are acknowledged.
///
/// | mode | acknowledged after | a process crash (`kill -9`) loses | a power loss loses |
/// | --- | --- | --- | --- |
/// | `Sync` | its own transaction commits | nothing | with `synchronous=NORMAL`, the last commits; nothing with `FULL` |
/// | `GroupCommit` | the shared transaction holding it commits | nothing | as `Sync` |
/// | `Buffered` + `EveryWrite` | appended to the buffer log and fsynced | nothing | nothing |
/// | `Buffered` + `Interval(ms)` | appended to the buffer log | nothing | up to `ms` of writes |
/// | `Buffered` + `Never` | appended to the buffer log | nothing | what the OS had not written back |
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Durability {
    /// Each write is its own transaction and returns after it commits. The default.
    #[default]
    Sync,
    /// Concurrent writes share transactions: each returns after the commit that holds it,
    /// with the durability of `Sync` and, under contention, the throughput of batches.
    /// A lone writer pays what it pays under `Sync` (plus a savepoint).
    GroupCommit,
    /// Writes are acknowledged once appended to a log next to the database file and applied
    /// to SQLite in the background (see [`BufferOptions`]); reads see them at once.
    Buffered(BufferOptions),
}

/// When the buffer log is flushed to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// `fdatasync` before each write is acknowledged: survives power loss.
    EveryWrite,
    /// `fdatasync` every this many milliseconds in the background.
    Interval(u64),
    /// Never `fdatasync` (the OS writes back when it likes).
    Never,
}

/// Tunables of [`Durability::Buffered`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BufferOptions {
    /// When the log is synced (default every 100 ms).
    pub fsync: FsyncPolicy,
    /// Most writes held in the buffer, not yet applied; further writes block until the
    /// applier catches up (default 100,000).
    pub max_buffered: usize,
    /// Most writes applied to SQLite in one transaction (default 10,000).
    pub batch_size: usize,
    /// Longest time a write waits in the buffer before the applier runs (default 50 ms).
    pub flush_interval: Duration,
}

impl Default for BufferOptions {
    fn default() -> BufferOptions {
        BufferOptions {
            fsync: FsyncPolicy::Interval(100),
            max_buffered: 100_000,
            batch_size: 10_000,
            flush_interval: Duration::from_millis(50),
        }
    }
}

impl BufferOptions {
    /// Sets the fsync policy.
    pub fn fsync(mut self, value: FsyncPolicy) -> BufferOptions {
        self.fsync = value;
        self
    }

    /// Sets the most writes held in the buffer (at least 1).
    pub fn max_buffered(mut self, value: usize) -> BufferOptions {
        self.max_buffered = value.max(1);
        self
    }

    /// Sets the most writes applied per transaction (at least 1).
    pub fn batch_size(mut self, value: usize) -> BufferOptions {
        self.batch_size = value.max(1);
        self
    }

    /// Sets the longest wait before buffered writes are applied.
    pub fn flush_interval(mut self, value: Duration) -> BufferOptions {
        self.flush_interval = value;
        self
    }
}

impl Default for Options {
    fn default() -> Options {
        Options {
            journal_mode: JournalMode::Wal,
            synchronous: Synchronous::Normal,
            cache_size_kib: 64 * 1024,
            mmap_size: 256 * 1024 * 1024,
            temp_store_memory: true,
            busy_timeout: Duration::from_secs(5),
            max_readers: 4,
            max_document_size: 16 * 1024 * 1024,
            durability: Durability::Sync,
            ttl_interval: Duration::from_secs(60),
            slow_query_threshold: None,
            expiry_interval: Duration::from_secs(1),
            checkpoint: CheckpointOptions::default(),
            max_open_members: 64,
        }
    }
}

impl Options {
    /// Sets the `synchronous` pragma.
    pub fn synchronous(mut self, value: Synchronous) -> Options {
        self.synchronous = value;
        self
    }

    /// Sets the journal mode.
    pub fn journal_mode(mut self, value: JournalMode) -> Options {
        self.journal_mode = value;
        self
    }

    /// Sets the page cache size per connection, in KiB.
    pub fn cache_size_kib(mut self, value: u32) -> Options {
        self.cache_size_kib = value;
        self
    }

    /// Sets the mmap size in bytes.
    pub fn mmap_size(mut self, value: u64) -> Options {
        self.mmap_size = value;
        self
    }

    /// Sets how many member files of sharded and partitioned collections are kept open
    /// for later use (at least 1).
    pub fn max_open_members(mut self, value: usize) -> Options {
        self.max_open_members = value.max(1);
        self
    }

    /// Sets the maximum number of pooled reader connections (at least 1).
    pub fn max_readers(mut self, value: usize) -> Options {
        self.max_readers = value.max(1);
        self
    }

    /// Sets the largest accepted document size in bytes.
    pub fn max_document_size(mut self, value: usize) -> Options {
        self.max_document_size = value;
        self
    }

    /// Sets the interval of the background TTL pass.
    pub fn ttl_interval(mut self, value: Duration) -> Options {
        self.ttl_interval = value;
        self
    }

    /// Logs reads slower than `value` (`None` turns the log off).
    pub fn slow_query_threshold(mut self, value: Option<Duration>) -> Options {
        self.slow_query_threshold = value;
        self
    }

    /// Sets how often expired documents are swept in the background.
    pub fn expiry_interval(mut self, value: Duration) -> Options {
        self.expiry_interval = value;
        self
    }

    /// Sets how writes are committed and acknowledged.
    pub fn durability(mut self, value: Durability) -> Options {
        self.durability = value;
        self
    }

    /// Sets when and where the WAL is checkpointed.
    pub fn checkpoint(mut self, value: CheckpointOptions) -> Options {
        self.checkpoint = value;
        self
    }

    /// Sets the busy timeout.
    pub fn busy_timeout(mut self, value: Duration) -> Options {
        self.busy_timeout = value;
        self
    }
}
