//! Sharded and partitioned collections: one logical collection spread over several
//! SQLite files ("members") beside its database's file.
//!
//! - **Hash shards** ([`ShardedCollection`]): `N` files fixed at creation; a document
//!   goes to shard `crc32(id_key(key)) % N` where the key is its `_id` or a chosen field
//!   (seed 000). Files: `<dir>/<db>.shards/<collection>/shard-<i>.sqlite`.
//! - **Partitions** ([`PartitionedCollection`], seed 002): one file per time bucket or
//!   key prefix, created on demand, pruned by queries, dropped whole.
//!   Files: `<dir>/<db>.parts/<collection>/part-<name>.sqlite`.
//!
//! The main database's catalog records the layout in the collection's options
//! (`{"sharded": {"shards": 4, "key": "_id"}}` or `{"partitioned": {…}}`), so reopening
//! the database finds the members; the collection's own table in the main file stays
//! empty. Each member is an ordinary pocketdb database holding a collection of the same
//! name, so every single-member operation keeps its usual guarantees.
//!
//! **Cross-member writes are not atomic.** A write that touches several members
//! (`insert_many`, `update_many`, `delete_many`) commits on each member separately and
//! in parallel: a failure or crash can leave some members written and others not, and a
//! concurrent reader can see one member's part before another's. `update_one`,
//! `delete_one` and `find_one_and_*` with a filter that does not pin the shard key first
//! look for a match on every member, then write on the member holding it; an upsert
//! that finds nothing inserts on the member its new document routes to, which can race
//! with a concurrent upsert of an equal document on another member. An `update_one` or
//! `replace_one` upsert whose filter reaches only the member its new document routes
//! to (it pins the shard key) runs there in one step, as on a plain collection. Unique
//! indexes must start with the shard (or partition) key, so that equal keys share a
//! member.
//! The shard key of a stored document cannot be changed by an update (as in MongoDB
//! before 4.2); a partitioned document may change its partition field only within its
//! partition.
//!
//! This module owns routing, member files and scatter-gather; it must not reach into a
//! member's tables except through [`Collection`].

mod bulk;
mod cursor;
mod ops;
pub mod partition;
mod route;
pub mod watch;

pub use cursor::ShardedCursor;
pub use ops::{CollectionKind, CollectionOps, DocumentStream, FindSpec};
pub use partition::{PartitionBy, PartitionStats, PartitionedCollection, TimeBucket};
pub use watch::{ShardChangeEvent, ShardResumeToken, ShardedChangeStream};

use crate::client::Client;
use crate::collection::{
    from_document, not_an_object, parse_operator_update, parse_replacement, to_document,
    Collection, Document, Routed, UpdateGuard,
};
use crate::database::{CollectionOptions, Database};
use crate::engine::schema::validate_collection_name;
use crate::error::{BulkWriteFailure, Error, Result, WriteError};
use crate::id::{ensure_id, id_key, new_object_id, validate_id};
use crate::index::{IndexInfo, IndexModel, IndexOptions};
use crate::query::{parse_filter, Filter, QueryBuilder, SortSpec};
use crate::update::{replacement_seed, upsert_seed, Update};
use crate::value::FieldPath;
use crate::{
    DeleteResult, FindOneAndModifyOptions, InsertManyOptions, InsertManyResult, InsertOneResult,
    UpdateOptions, UpdateResult,
};
use partition::{decode_label, encode_label, Partitioner};
use route::{key_value, key_value_given_id, key_value_in, shard_index, Layout};
use serde_json::{json, Map, Value};
use std::any::Any;
use std::borrow::{Borrow, Cow};
use std::collections::{BTreeMap, HashMap};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// The most shards a collection may have.
pub const MAX_SHARDS: usize = 1024;

/// Which value of a document picks its shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardKey {
    /// The document's `_id` (the default).
    Id,
    /// The value at a dotted field path; a missing field counts as `null`, and arrays
    /// are not allowed there.
    Field(String),
}

impl ShardKey {
    fn path_text(&self) -> &str {
        match self {
            ShardKey::Id => "_id",
            ShardKey::Field(f) => f,
        }
    }
}

/// How a sharded collection is created: the number of shards (fixed for the life of
/// the collection) and the shard key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardOptions {
    /// Number of shard files, 1 to [`MAX_SHARDS`].
    pub shards: usize,
    /// What routes a document.
    pub key: ShardKey,
}

impl ShardOptions {
    /// `shards` shards keyed by `_id`.
    pub fn new(shards: usize) -> ShardOptions {
        ShardOptions {
            shards,
            key: ShardKey::Id,
        }
    }

    /// Sets the shard key.
    pub fn key(mut self, key: ShardKey) -> ShardOptions {
        self.key = key;
        self
    }
}

/// The member databases opened for a database's sharded and partitioned collections,
/// shared by every handle so each file has one writer.
///
/// Each open member costs a writer connection, its readers, a checkpoint thread and
/// their file descriptors, and a partitioned collection can have thousands of
/// partitions: the registry keeps at most [`Options::max_open_members`] members open
/// for later use, closing the least recently used beyond that. A member still in use
/// elsewhere (a cursor, a change stream, another thread's write) stays open with its
/// users and is found again through a weak reference, so a file never has two open
/// instances in the process.
///
/// [`Options::max_open_members`]: crate::Options::max_open_members
#[derive(Default)]
pub(crate) struct Registry {
    open: Mutex<Members>,
}

#[derive(Default)]
struct Members {
    by_path: HashMap<PathBuf, MemberEntry>,
    /// Ticks at every open, to tell the least recently used member.
    clock: u64,
    /// The flag every open handle on a collection shares, by the collection's member
    /// directory: set when the directory is removed (the collection dropped).
    dropped: HashMap<PathBuf, std::sync::Weak<AtomicBool>>,
}

struct MemberEntry {
    /// Kept open by the registry.
    held: Option<Database>,
    /// The open instance while anything uses it.
    weak: std::sync::Weak<crate::database::DbInner>,
    /// Alive until that instance has finished closing.
    closing: std::sync::Weak<()>,
    used: u64,
}

/// What [`Registry::open`] did.
struct Opened {
    db: Database,
    /// The file was opened now (not found open in the process).
    opened: bool,
    /// The file did not exist before.
    created: bool,
}

impl Members {
    /// Stops holding the least recently used members beyond `keep`, and forgets entries
    /// nothing uses any more. Returns the handles let go: the caller drops them (closing
    /// the members nothing else uses) *before* releasing the registry's lock, so no
    /// other thread opens a second instance of a file while the first is still closing
    /// (a buffered member applies its log as it closes).
    fn trim(&mut self, keep: usize) -> Vec<Database> {
        let mut held: Vec<(u64, PathBuf)> = self
            .by_path
            .iter()
            .filter(|(_, e)| e.held.is_some())
            .map(|(p, e)| (e.used, p.clone()))
            .collect();
        let mut released = Vec::new();
        if held.len() > keep {
            held.sort_unstable();
            for (_, path) in &held[..held.len() - keep] {
                if let Some(db) = self.by_path.get_mut(path).and_then(|e| e.held.take()) {
                    released.push(db);
                }
            }
        }
        self.by_path.retain(|_, e| {
            e.held.is_some() || e.weak.strong_count() > 0 || e.closing.strong_count() > 0
        });
        released
    }
}

impl Registry {
    /// Opens the member file at `path` (creating it when `create`), or finds it open.
    /// `None` when the file does not exist and `create` is false.
    fn open(&self, path: &Path, options: &crate::Options, create: bool) -> Result<Option<Opened>> {
        let mut members = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        members.clock += 1;
        let now = members.clock;
        let found = members.by_path.get_mut(path).and_then(|e| {
            let db = e
                .held
                .clone()
                .or_else(|| e.weak.upgrade().map(|inner| Database { inner }))?;
            e.held = Some(db.clone());
            e.used = now;
            Some(db)
        });
        let opened = match found {
            Some(db) => Opened {
                db,
                opened: false,
                created: false,
            },
            None => {
                // The last user of an earlier instance may be closing it on its own
                // thread (outside this lock): wait for it to finish before the file is
                // opened again, so that two instances never overlap.
                if let Some(e) = members.by_path.get(path) {
                    while e.closing.strong_count() > 0 {
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                }
                let exists = path.exists();
                if !exists && !create {
                    return Ok(None);
                }
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                let db = Database::open_with(path, options.clone())?;
                let closing = Arc::new(());
                let watch = Arc::downgrade(&closing);
                let _ = db.inner.closing.set(closing);
                members.by_path.insert(
                    path.to_path_buf(),
                    MemberEntry {
                        held: Some(db.clone()),
                        weak: Arc::downgrade(&db.inner),
                        closing: watch,
                        used: now,
                    },
                );
                Opened {
                    db,
                    opened: true,
                    created: !exists,
                }
            }
        };
        drop(members.trim(options.max_open_members));
        drop(members);
        Ok(Some(opened))
    }

    /// Opens (creating if needed) the member file at `path`.
    pub(crate) fn open_member(&self, path: &Path, options: &crate::Options) -> Result<Database> {
        match self.open(path, options, true)? {
            Some(opened) => Ok(opened.db),
            None => Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("member file {} could not be created", path.display()),
            ))),
        }
    }

    /// Forgets every member under `dir` and runs `remove` (which deletes their files)
    /// under the registry's lock: a member being opened meanwhile either is opened
    /// before (and forgotten here) or finds its file gone, never a half-deleted one
    /// recreated empty.
    ///
    /// Handles on a collection whose member directory is under `dir` see it dropped
    /// from then on.
    fn remove_under(&self, dir: &Path, remove: impl FnOnce() -> Result<()>) -> Result<()> {
        let mut members = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        members.dropped.retain(|path, flag| {
            if !path.starts_with(dir) {
                return flag.strong_count() > 0;
            }
            if let Some(flag) = flag.upgrade() {
                flag.store(true, Ordering::Release);
            }
            false
        });
        let mut released = Vec::new();
        members.by_path.retain(|path, e| {
            let keep = !path.starts_with(dir);
            if !keep {
                released.extend(e.held.take());
            }
            keep
        });
        // Closed under the lock, as in `open`.
        drop(released);
        let removed = remove();
        drop(members);
        removed
    }

    /// The dropped flag shared by the handles on the collection whose members live in
    /// `dir` (a new one when no handle is open).
    fn dropped_flag(&self, dir: &Path) -> Arc<AtomicBool> {
        let mut members = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(flag) = members.dropped.get(dir).and_then(std::sync::Weak::upgrade) {
            return flag;
        }
        let flag = Arc::new(AtomicBool::new(false));
        members.dropped.retain(|_, f| f.strong_count() > 0);
        members
            .dropped
            .insert(dir.to_path_buf(), Arc::downgrade(&flag));
        flag
    }

    /// Members the registry holds open now.
    pub(crate) fn held(&self) -> usize {
        let members = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        members
            .by_path
            .values()
            .filter(|e| e.held.is_some())
            .count()
    }
}

/// A handle on a sharded collection: the [`Collection`] method set (`insert_one`,
/// `insert_many`, `find` with `sort`/`skip`/`limit`/`projection`, `find_one`,
/// `count_documents`, `distinct`, `update_*`, `replace_one`, `delete_*`,
/// `find_one_and_*`, indexes, `drop`) over documents spread across several SQLite files.
/// It is a separate type from [`Collection`]: get it from
/// [`Client::sharded`] / [`Database::sharded`], not from `db.collection()`. Cheap to
/// clone, `Send + Sync`. See the [module docs](crate::shard) for what is not atomic.
///
/// ```
/// use pocketdb::{Client, ShardKey, ShardOptions};
/// use serde_json::json;
///
/// let dir = tempfile::tempdir()?;
/// let client = Client::open(dir.path())?;
/// let users = client.create_sharded_collection(
///     "app",
///     "users",
///     ShardOptions::new(4).key(ShardKey::Field("team".into())),
/// )?;
/// users.insert_many((0..100).map(|i| json!({"_id": i, "team": i % 7, "score": i})))?;
/// let top = users
///     .find(json!({"score": {"$gte": 50}}))?
///     .sort(json!({"score": -1}))
///     .limit(3)
///     .to_vec()?;
/// assert_eq!(top[0]["score"], 99);
/// assert_eq!(users.count_documents(json!({"team": 3}))?, 14);
/// // Reopened from the catalog:
/// let again = client.sharded::<serde_json::Value>("app", "users")?;
/// assert_eq!(again.count_documents(json!({}))?, 100);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ShardedCollection<T = Value> {
    inner: Arc<Spread>,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for ShardedCollection<T> {
    fn clone(&self) -> Self {
        ShardedCollection {
            inner: self.inner.clone(),
            _type: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for ShardedCollection<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardedCollection")
            .field("database", &self.inner.db.name())
            .field("name", &self.inner.name)
            .field("layout", &self.inner.layout)
            .finish()
    }
}

type Member = (String, Collection<Value>);

/// Documents bound for one member, with their positions in the request.
struct Batch<'a> {
    /// The member, opened (created if needed) by the thread that inserts the batch.
    label: String,
    positions: Vec<usize>,
    /// Taken by the thread that inserts them.
    docs: Mutex<Vec<Routed<'a>>>,
}

/// The state shared by a sharded or partitioned collection's handles.
pub(crate) struct Spread {
    /// The database whose catalog records the collection.
    db: Database,
    name: String,
    /// Where the member files live.
    dir: PathBuf,
    layout: Layout,
    /// Keeps the routing key of stored documents fixed.
    guard: Option<UpdateGuard>,
    /// Hash shards, opened with the handle (empty for partitions).
    shards: Vec<Collection<Value>>,
    opened: AtomicU64,
    visited: AtomicU64,
    /// Set (for every handle) when the collection is dropped: a handle opened before
    /// then must not write into member files that are gone.
    dropped: Arc<AtomicBool>,
}

/// Most threads one scatter-gather operation runs members on.
const MAX_MEMBER_THREADS: usize = 8;

const SHARDED: &str = "sharded";
const PARTITIONED: &str = "partitioned";

impl Spread {
    fn open(db: &Database, name: &str, layout: Layout, create: bool) -> Result<Spread> {
        let kind = match layout {
            Layout::Hash { .. } => "shards",
            Layout::Partition(_) => "parts",
        };
        let dir = member_dir(db, name, kind)?;
        let guard: Option<UpdateGuard> = match &layout {
            Layout::Hash { path, .. } if path.segments() == ["_id"] => None,
            Layout::Hash { path, .. } => {
                let path = path.clone();
                Some(Arc::new(move |before: &Value, after: &Value| {
                    let old = key_value(before, &path)?;
                    let new = key_value(after, &path)?;
                    if id_key(&old) != id_key(&new) {
                        return Err(Error::update(
                            "update",
                            path.to_string(),
                            "the shard key cannot be changed (the document would move to another shard)",
                        ));
                    }
                    Ok(())
                }))
            }
            Layout::Partition(p) => {
                let p = p.clone();
                Some(Arc::new(move |before: &Value, after: &Value| {
                    let old = p.label_of_key(&key_value(before, p.path())?)?;
                    let new = p.label_of_key(&key_value(after, p.path())?)?;
                    if old != new {
                        return Err(Error::update(
                            "update",
                            p.path().to_string(),
                            format!(
                                "the partition field cannot move a document to another partition ('{old}' to '{new}')"
                            ),
                        ));
                    }
                    Ok(())
                }))
            }
        };
        let dropped = db.inner.shards.dropped_flag(&dir);
        let mut spread = Spread {
            db: db.clone(),
            name: name.to_string(),
            dir,
            layout,
            guard,
            shards: Vec::new(),
            opened: AtomicU64::new(0),
            visited: AtomicU64::new(0),
            dropped,
        };
        if let Layout::Hash { shards, .. } = spread.layout {
            for i in 0..shards {
                let path = spread.dir.join(format!("shard-{i}.sqlite"));
                let opened = spread
                    .db
                    .inner
                    .shards
                    .open(&path, spread.db.options(), create)
                    .map_err(|e| spread.error(format!("shard {i}: {e}")))?
                    .ok_or_else(|| {
                        spread.error(format!("shard {i}: file {} is missing", path.display()))
                    })?;
                if opened.opened {
                    spread.opened.fetch_add(1, Ordering::Relaxed);
                }
                if opened.created {
                    ensure_member_collection(&opened.db, name)?;
                }
                let coll = spread.member_collection(&opened.db);
                spread.shards.push(coll);
            }
        }
        Ok(spread)
    }

    pub(crate) fn error(&self, message: impl Into<String>) -> Error {
        Error::Shard {
            collection: self.name.clone(),
            message: message.into(),
        }
    }

    fn member_collection(&self, db: &Database) -> Collection<Value> {
        let coll = db.collection::<Value>(&self.name);
        match &self.guard {
            Some(guard) => coll.with_guard(guard.clone()),
            None => coll,
        }
    }

    pub(crate) fn partitioner(&self) -> Result<&Partitioner> {
        match &self.layout {
            Layout::Partition(p) => Ok(p),
            Layout::Hash { .. } => {
                Err(self.error("the collection is hash-sharded, not partitioned"))
            }
        }
    }

    fn partition_path(&self, label: &str) -> PathBuf {
        self.dir
            .join(format!("part-{}.sqlite", encode_label(label)))
    }

    /// Opens (creating when asked) a partition's file; `None` when it does not exist
    /// (dropped since its label was listed) and `create` is false.
    fn open_partition(&self, label: &str, create: bool) -> Result<Option<Collection<Value>>> {
        let Some(opened) =
            self.db
                .inner
                .shards
                .open(&self.partition_path(label), self.db.options(), create)?
        else {
            return Ok(None);
        };
        if opened.opened {
            self.opened.fetch_add(1, Ordering::Relaxed);
        }
        let coll = self.member_collection(&opened.db);
        if opened.created {
            ensure_member_collection(&opened.db, &self.name)?;
            let models = self.catalog_indexes()?;
            if !models.is_empty() {
                coll.create_indexes(&models)?;
            }
        }
        Ok(Some(coll))
    }

    /// Names of the existing partitions, sorted.
    pub(crate) fn partition_labels(&self) -> Result<Vec<String>> {
        let partitioner = self.partitioner()?;
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut labels = Vec::new();
        for entry in entries {
            let file = entry?.file_name();
            let Some(file) = file.to_str() else { continue };
            let Some(encoded) = file
                .strip_prefix("part-")
                .and_then(|f| f.strip_suffix(".sqlite"))
            else {
                continue;
            };
            if let Some(label) = decode_label(encoded) {
                if partitioner.is_label(&label) {
                    labels.push(label);
                }
            }
        }
        labels.sort();
        Ok(labels)
    }

    /// The labels of the members a filter can match documents in.
    pub(crate) fn labels_for(&self, filter: &Filter) -> Result<Vec<String>> {
        Ok(match &self.layout {
            Layout::Hash { shards, path } => match route::pinned_shards(filter, path, *shards) {
                Some(set) => set.into_iter().map(|i| i.to_string()).collect(),
                None => (0..*shards).map(|i| i.to_string()).collect(),
            },
            Layout::Partition(p) => self
                .partition_labels()?
                .into_iter()
                .filter(|label| p.may_contain(filter, label))
                .collect(),
        })
    }

    /// The members a filter can match documents in, opened (partitions dropped since
    /// they were listed are left out).
    fn members_for(&self, filter: &Filter) -> Result<Vec<Member>> {
        let mut members = Vec::new();
        for label in self.visit(filter)? {
            if let Some(coll) = self.read_member(&label)? {
                members.push((label, coll));
            }
        }
        Ok(members)
    }

    fn all_members(&self) -> Result<Vec<Member>> {
        self.members_for(&Filter::all())
    }

    /// Runs `f` on every member `filter` can match, in parallel, each member opened when
    /// a thread takes it (see [`in_parallel`](Spread::in_parallel)): a fan-out over
    /// hundreds of partitions holds only those being worked on open. Results come in
    /// member order; a partition dropped since it was listed has none (its documents
    /// are gone, as if the operation had run after the drop).
    fn fan_out_for<R: Send>(
        &self,
        filter: &Filter,
        f: impl Fn(&Collection<Value>) -> Result<R> + Sync,
    ) -> Result<Vec<R>> {
        let labels = self.visit(filter)?;
        let results = self.in_parallel(&labels, |label| {
            self.read_member(label)?.map(|c| f(&c)).transpose()
        })?;
        Ok(results.into_iter().flatten().collect())
    }

    /// `CollectionNotFound` once the collection was dropped through any handle.
    fn check_not_dropped(&self) -> Result<()> {
        if self.dropped.load(Ordering::Acquire) {
            return Err(Error::CollectionNotFound(self.name.clone()));
        }
        Ok(())
    }

    /// The labels of the members an operation with `filter` reads, counted as visited.
    /// `CollectionNotFound` once the collection was dropped.
    fn visit(&self, filter: &Filter) -> Result<Vec<String>> {
        self.check_not_dropped()?;
        let labels = self.labels_for(filter)?;
        self.visited
            .fetch_add(labels.len() as u64, Ordering::Relaxed);
        Ok(labels)
    }

    /// A member by label (a partition is created when `create`), to write in.
    /// `CollectionNotFound` once the collection was dropped.
    fn member(&self, label: &str, create: bool) -> Result<Collection<Value>> {
        self.check_not_dropped()?;
        self.member_if_present(label, create)?
            .ok_or_else(|| self.error(format!("partition '{label}' does not exist")))
    }

    /// A member to read, by label: `None` for a partition dropped since its label was
    /// listed, which a read treats as empty.
    pub(crate) fn read_member(&self, label: &str) -> Result<Option<Collection<Value>>> {
        self.member_if_present(label, false)
    }

    fn member_if_present(&self, label: &str, create: bool) -> Result<Option<Collection<Value>>> {
        match &self.layout {
            Layout::Hash { .. } => label
                .parse::<usize>()
                .ok()
                .and_then(|i| self.shards.get(i))
                .cloned()
                .map(Some)
                .ok_or_else(|| self.error(format!("no shard '{label}'"))),
            Layout::Partition(_) => self.open_partition(label, create),
        }
    }

    /// The member a document belongs to (a new partition is created).
    fn member_for_doc(&self, doc: &Value) -> Result<Member> {
        self.member_for_key(&key_value(doc, self.layout.path())?)
    }

    /// The label of the member a document given as its map belongs to, without opening
    /// the member.
    fn label_for_map(&self, doc: &Map<String, Value>) -> Result<String> {
        self.label_for_key(&key_value_in(doc, self.layout.path())?)
    }

    fn label_for_key(&self, key: &Value) -> Result<String> {
        match &self.layout {
            Layout::Hash { shards, .. } => Ok(shard_index(key, *shards).to_string()),
            Layout::Partition(_) => self.layout.label_of_key(key),
        }
    }

    fn member_for_key(&self, key: &Value) -> Result<Member> {
        let label = self.label_for_key(key)?;
        let coll = self.member(&label, true)?;
        Ok((label, coll))
    }

    /// Deletes one partition's files.
    pub(crate) fn remove_partition(&self, label: &str) -> Result<()> {
        let path = self.partition_path(label);
        self.db
            .inner
            .shards
            .remove_under(&path, || remove_database_files(&path))
    }

    pub(crate) fn stats(&self) -> PartitionStats {
        PartitionStats {
            opened: self.opened.load(Ordering::Relaxed),
            visited: self.visited.load(Ordering::Relaxed),
            open_members: self.db.inner.shards.held(),
        }
    }

    /// Runs `f` on every member in parallel (one thread each; inline for one member).
    /// Returns the results in member order, or the first member's error.
    fn fan_out<R: Send>(
        &self,
        members: &[Member],
        f: impl Fn(&Collection<Value>) -> Result<R> + Sync,
    ) -> Result<Vec<R>> {
        self.in_parallel(members, |(_, c)| f(c))
    }

    /// Runs `f` on every item in parallel, inline for one item. At most
    /// [`MAX_MEMBER_THREADS`] scoped threads take items in turn, so a query over hundreds
    /// of partitions does not start hundreds of threads. Results come in item order.
    fn in_parallel<I: Sync, R: Send>(
        &self,
        items: &[I],
        f: impl Fn(&I) -> Result<R> + Sync,
    ) -> Result<Vec<R>> {
        if items.len() <= 1 {
            return items.iter().map(&f).collect();
        }
        let next = std::sync::atomic::AtomicUsize::new(0);
        let slots: Vec<Mutex<Option<Result<R>>>> = items.iter().map(|_| Mutex::new(None)).collect();
        let work = || loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else { break };
            let out = f(item);
            *slots[i].lock().unwrap_or_else(PoisonError::into_inner) = Some(out);
        };
        let work = &work;
        let workers = items.len().min(MAX_MEMBER_THREADS);
        let panicked = std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers).map(|_| s.spawn(work)).collect();
            // Every handle is joined: one left unjoined would make `scope` panic.
            let mut panicked = false;
            for h in handles {
                panicked |= h.join().is_err();
            }
            panicked
        });
        if panicked {
            return Err(self.error("a member thread panicked"));
        }
        slots
            .into_iter()
            .map(|slot| {
                slot.into_inner()
                    .unwrap_or_else(PoisonError::into_inner)
                    .unwrap_or_else(|| Err(self.error("a member thread panicked")))
            })
            .collect()
    }

    /// Applies `op` on the first member (in member order) holding a document that
    /// matches `filter`; `op` returns `None` when it found nothing after all (the
    /// document went away meanwhile), and the next candidate is tried.
    fn first_match<R>(
        &self,
        members: &[Member],
        filter: &Value,
        op: impl Fn(&Collection<Value>) -> Result<Option<R>>,
    ) -> Result<Option<R>> {
        if let [(_, only)] = members {
            return op(only);
        }
        let hits = self.fan_out(members, |c| {
            Ok(c.find(filter.clone())?
                .projection(json!({"_id": 1}))
                .limit(1)
                .next()
                .transpose()?
                .is_some())
        })?;
        for ((_, coll), hit) in members.iter().zip(hits) {
            if hit {
                if let Some(r) = op(coll)? {
                    return Ok(Some(r));
                }
            }
        }
        Ok(None)
    }

    /// The filter an upsert (a `replacement` or operators) runs on its target member.
    fn upsert_filter(
        filter_value: &Value,
        filter: &Filter,
        id: Value,
        replacement: bool,
    ) -> Result<Value> {
        // A replacement takes only `_id` from the filter, as its member's upsert does.
        let seeded = if replacement {
            replacement_seed(filter)?
        } else {
            upsert_seed(filter)?
        };
        Ok(if seeded.get("_id").is_some() {
            filter_value.clone()
        } else {
            json!({"$and": [filter_value, {"_id": id}]})
        })
    }

    /// Index models recorded for partitions created later.
    fn catalog_indexes(&self) -> Result<Vec<IndexModel>> {
        let options = self.db.collection_options(&self.name)?.unwrap_or_default();
        let models = options
            .options
            .get(PARTITIONED)
            .and_then(|p| p.get("indexes"))
            .and_then(Value::as_array)
            .map(|list| list.iter().filter_map(index_from_json).collect())
            .unwrap_or_default();
        Ok(models)
    }

    /// Changes the recorded index models inside one catalog write.
    fn update_catalog_indexes(&self, f: impl FnOnce(&mut Vec<Value>)) -> Result<()> {
        self.db.write(|conn| {
            let text: String = conn.query_row(
                "SELECT options FROM _pocketdb_collections WHERE name = ?1",
                [&self.name],
                |r| r.get(0),
            )?;
            let mut options: Value = serde_json::from_str(&text)?;
            let Some(part) = options.get_mut(PARTITIONED).and_then(Value::as_object_mut) else {
                return Err(self.error("catalog entry lost its partitioning"));
            };
            let list = part
                .entry("indexes")
                .or_insert_with(|| Value::Array(Vec::new()));
            if !list.is_array() {
                *list = Value::Array(Vec::new());
            }
            if let Value::Array(items) = list {
                f(items);
            }
            conn.execute(
                "UPDATE _pocketdb_collections SET options = ?2 WHERE name = ?1",
                rusqlite::params![self.name, options.to_string()],
            )?;
            Ok(())
        })
    }
}

/// Creates the collection's table in a new member file.
fn ensure_member_collection(db: &Database, name: &str) -> Result<()> {
    match db.create_collection(name, CollectionOptions::default()) {
        Ok(_) | Err(Error::CollectionExists(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// `<dir>/<db>.<kind>/<collection>` for a database at `<dir>/<db>.sqlite`.
fn member_dir(db: &Database, name: &str, kind: &str) -> Result<PathBuf> {
    let path = db.path().ok_or_else(|| {
        Error::InvalidArgument(
            "sharded and partitioned collections need a database file (their members live beside it)"
                .to_string(),
        )
    })?;
    let parent = path.parent().unwrap_or_else(|| Path::new("."));
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(parent.join(format!("{stem}.{kind}")).join(name))
}

/// The directory kind of a collection's member files (`"shards"`, `"parts"`) from its
/// catalog options; `None` for a collection stored in its database's own file.
pub(crate) fn member_kind(options: &Map<String, Value>) -> Option<&'static str> {
    if options.contains_key(SHARDED) {
        Some("shards")
    } else if options.contains_key(PARTITIONED) {
        Some("parts")
    } else {
        None
    }
}

/// Closes and deletes the member files of the dropped collection `name` of `db`
/// (`kind` from [`member_kind`]).
pub(crate) fn remove_members(db: &Database, name: &str, kind: &str) -> Result<()> {
    let dir = member_dir(db, name, kind)?;
    db.inner.shards.remove_under(&dir, || remove_dir(&dir))
}

/// Removes a directory and everything in it; nothing to do when it does not exist.
fn remove_dir(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// Deletes a database file with its WAL, shared-memory and buffer-log companions.
fn remove_database_files(path: &Path) -> Result<()> {
    let Some(dir) = path.parent() else {
        return Ok(());
    };
    let Some(file) = path.file_name().and_then(|f| f.to_str()) else {
        return Ok(());
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    for entry in entries {
        let entry = entry?;
        if entry
            .file_name()
            .to_str()
            .is_some_and(|name| name.starts_with(file))
        {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

fn index_to_json(model: &IndexModel, name: &str) -> Value {
    let o = &model.options;
    json!({
        "keys": model.keys,
        "name": name,
        "unique": o.unique,
        "sparse": o.sparse,
        "partialFilterExpression": o.partial_filter_expression,
        "expireAfterSeconds": o.expire_after_seconds,
    })
}

fn index_from_json(v: &Value) -> Option<IndexModel> {
    let options = IndexOptions {
        name: v.get("name").and_then(Value::as_str).map(str::to_string),
        unique: v.get("unique").and_then(Value::as_bool).unwrap_or(false),
        sparse: v.get("sparse").and_then(Value::as_bool).unwrap_or(false),
        partial_filter_expression: v
            .get("partialFilterExpression")
            .filter(|f| !f.is_null())
            .cloned(),
        expire_after_seconds: v.get("expireAfterSeconds").and_then(Value::as_i64),
    };
    Some(IndexModel {
        keys: v.get("keys")?.clone(),
        options,
    })
}

// ----- opening -----------------------------------------------------------------------

impl Database {
    /// Creates a hash-sharded collection of `options.shards` member files beside this
    /// database's file, recorded in the catalog. Fails with `CollectionExists` when the
    /// name is taken, and for in-memory databases.
    pub fn create_sharded_collection(
        &self,
        name: &str,
        options: ShardOptions,
    ) -> Result<ShardedCollection<Value>> {
        validate_collection_name(name)?;
        if options.shards == 0 || options.shards > MAX_SHARDS {
            return Err(Error::InvalidArgument(format!(
                "a sharded collection needs 1 to {MAX_SHARDS} shards, got {}",
                options.shards
            )));
        }
        let path = FieldPath::parse(options.key.path_text())?;
        let layout = Layout::Hash {
            shards: options.shards,
            path,
        };
        let catalog = json!({"shards": options.shards, "key": options.key.path_text()});
        self.create_spread(name, SHARDED, catalog, layout)
            .map(ShardedCollection::from_spread)
    }

    /// Opens a sharded collection recorded in the catalog. `CollectionNotFound` when it
    /// does not exist; `Error::Shard` when it is not hash-sharded or a shard file is
    /// missing.
    pub fn sharded<T: Document>(&self, name: &str) -> Result<ShardedCollection<T>> {
        let spread = self.open_spread(name)?;
        if !matches!(spread.layout, Layout::Hash { .. }) {
            return Err(spread.error("the collection is partitioned: open it with partitioned()"));
        }
        Ok(ShardedCollection::from_spread(spread))
    }

    /// Creates a partitioned collection routed by `by`, recorded in the catalog; the
    /// partition files are created as documents arrive.
    pub fn create_partitioned_collection(
        &self,
        name: &str,
        by: PartitionBy,
    ) -> Result<PartitionedCollection<Value>> {
        validate_collection_name(name)?;
        let partitioner = Partitioner::new(by)?;
        let catalog = partitioner.to_json();
        self.create_spread(name, PARTITIONED, catalog, Layout::Partition(partitioner))
            .map(|s| PartitionedCollection::new(ShardedCollection::from_spread(s)))
    }

    /// Opens a partitioned collection recorded in the catalog.
    pub fn partitioned<T: Document>(&self, name: &str) -> Result<PartitionedCollection<T>> {
        let spread = self.open_spread(name)?;
        spread.partitioner()?;
        Ok(PartitionedCollection::new(ShardedCollection::from_spread(
            spread,
        )))
    }

    fn create_spread(
        &self,
        name: &str,
        kind: &str,
        catalog: Value,
        layout: Layout,
    ) -> Result<Spread> {
        // Fail before touching the catalog when the database has no file.
        let dir = member_dir(self, name, if kind == SHARDED { "shards" } else { "parts" })?;
        let mut options = Map::new();
        options.insert(kind.to_string(), catalog);
        self.create_collection(name, CollectionOptions { options })?;
        self.forget_spreads();
        // Files left by an earlier collection of that name (dropped outside this
        // module) are not this collection's.
        self.inner.shards.remove_under(&dir, || remove_dir(&dir))?;
        match Spread::open(self, name, layout, true) {
            Ok(spread) => Ok(spread),
            Err(e) => {
                let _ = self.drop_collection(name);
                Err(e)
            }
        }
    }

    fn open_spread(&self, name: &str) -> Result<Spread> {
        let options = self
            .collection_options(name)?
            .ok_or_else(|| Error::CollectionNotFound(name.to_string()))?;
        let bad = |message: &str| Error::Shard {
            collection: name.to_string(),
            message: message.to_string(),
        };
        let layout = if let Some(s) = options.options.get(SHARDED) {
            let shards = s
                .get("shards")
                .and_then(Value::as_u64)
                .and_then(|n| usize::try_from(n).ok())
                .filter(|n| (1..=MAX_SHARDS).contains(n))
                .ok_or_else(|| bad("the catalog's shard count is invalid"))?;
            let key = s
                .get("key")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("the catalog's shard key is invalid"))?;
            Layout::Hash {
                shards,
                path: FieldPath::parse(key)?,
            }
        } else if let Some(p) = options.options.get(PARTITIONED) {
            Layout::Partition(
                Partitioner::from_json(p)
                    .ok_or_else(|| bad("the catalog's partitioning is invalid"))?,
            )
        } else {
            return Err(bad("the collection is neither sharded nor partitioned"));
        };
        Spread::open(self, name, layout, false)
    }
}

impl Client {
    /// Creates a hash-sharded collection in database `db`: see
    /// [`Database::create_sharded_collection`].
    pub fn create_sharded_collection(
        &self,
        db: &str,
        name: &str,
        options: ShardOptions,
    ) -> Result<ShardedCollection<Value>> {
        self.database(db)?.create_sharded_collection(name, options)
    }

    /// Opens a sharded collection of database `db`: see [`Database::sharded`].
    pub fn sharded<T: Document>(&self, db: &str, name: &str) -> Result<ShardedCollection<T>> {
        self.database(db)?.sharded(name)
    }

    /// Creates a partitioned collection in database `db`: see
    /// [`Database::create_partitioned_collection`].
    pub fn create_partitioned_collection(
        &self,
        db: &str,
        name: &str,
        by: PartitionBy,
    ) -> Result<PartitionedCollection<Value>> {
        self.database(db)?.create_partitioned_collection(name, by)
    }

    /// Opens a partitioned collection of database `db`: see [`Database::partitioned`].
    pub fn partitioned<T: Document>(
        &self,
        db: &str,
        name: &str,
    ) -> Result<PartitionedCollection<T>> {
        self.database(db)?.partitioned(name)
    }
}

// ----- the collection API ------------------------------------------------------------

impl<T: Document> ShardedCollection<T> {
    fn from_spread(spread: Spread) -> ShardedCollection<T> {
        ShardedCollection {
            inner: Arc::new(spread),
            _type: PhantomData,
        }
    }

    pub(crate) fn spread(&self) -> &Spread {
        &self.inner
    }

    /// The collection's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The database whose catalog records the collection.
    pub fn database(&self) -> &Database {
        &self.inner.db
    }

    /// The same collection seen through another document type.
    pub fn typed<U: Document>(&self) -> ShardedCollection<U> {
        ShardedCollection {
            inner: self.inner.clone(),
            _type: PhantomData,
        }
    }

    /// The number of hash shards; `None` for a partitioned collection.
    pub fn shard_count(&self) -> Option<usize> {
        match &self.inner.layout {
            Layout::Hash { shards, .. } => Some(*shards),
            Layout::Partition(_) => None,
        }
    }

    /// The member (shard number or partition name) `document` would be stored in.
    pub fn member_of(&self, document: impl Borrow<T>) -> Result<String> {
        let doc = Value::Object(to_document(document.borrow())?);
        self.inner.layout.label_of(&doc)
    }

    /// The members (shard numbers or partition names) a query with `filter` reads:
    /// equality or `$in` on the shard key pins hash shards; partitions are pruned by
    /// their field (see [`partition`]).
    pub fn members_for(&self, filter: Value) -> Result<Vec<String>> {
        self.inner.labels_for(&parse_filter(&filter)?)
    }

    /// Counters of member files opened and members visited through this handle.
    pub fn member_stats(&self) -> PartitionStats {
        self.inner.stats()
    }

    // ----- inserts -------------------------------------------------------------------

    /// Inserts one document into its shard. An `_id` is generated when it has none.
    pub fn insert_one(&self, document: impl Borrow<T>) -> Result<InsertOneResult> {
        let mut map = to_document(document.borrow())?;
        ensure_id(&mut map)?;
        let doc = Value::Object(map);
        let (_, coll) = self.inner.member_for_doc(&doc)?;
        self.inner.visited.fetch_add(1, Ordering::Relaxed);
        coll.insert_one(doc)
    }

    /// Inserts documents: grouped by shard, one `insert_many` per shard, all shards in
    /// parallel. Ordered (the default) stops each shard at its first failure; see
    /// [`insert_many_with`](ShardedCollection::insert_many_with).
    pub fn insert_many<I>(&self, documents: I) -> Result<InsertManyResult>
    where
        I: IntoIterator,
        I::Item: Borrow<T>,
    {
        self.insert_many_with(documents, InsertManyOptions::default())
    }

    /// Inserts documents, one transaction per shard, shards in parallel. A document that
    /// cannot be routed (bad `_id` or shard key) fails before anything is written (when
    /// ordered, the documents after it are not attempted). `ordered` then applies within
    /// each shard: a shard stops at its first failing document while the other shards
    /// carry on, so documents after the first failure in request order may be stored.
    /// Failures are reported by `Error::BulkWrite` with request positions.
    pub fn insert_many_with<I>(
        &self,
        documents: I,
        options: InsertManyOptions,
    ) -> Result<InsertManyResult>
    where
        I: IntoIterator,
        I::Item: Borrow<T>,
    {
        let mut errors: Vec<WriteError> = Vec::new();
        let mut groups: BTreeMap<String, Batch> = BTreeMap::new();
        // Documents are routed where they lie; each member's thread checks and
        // serialises its own (only documents of another type than `Value` are converted
        // here).
        let documents: Vec<I::Item> = documents.into_iter().collect();
        for (index, d) in documents.iter().enumerate() {
            let routed = self.route(d.borrow());
            match routed {
                Ok((label, doc)) => {
                    let batch = groups.entry(label.clone()).or_insert_with(|| Batch {
                        label,
                        positions: Vec::new(),
                        docs: Mutex::new(Vec::new()),
                    });
                    batch.positions.push(index);
                    batch
                        .docs
                        .get_mut()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(doc);
                }
                Err(error) => {
                    errors.push(WriteError { index, error });
                    if options.ordered {
                        break;
                    }
                }
            }
        }
        self.inner
            .visited
            .fetch_add(groups.len() as u64, Ordering::Relaxed);
        let batches: Vec<Batch> = groups.into_values().collect();
        // Members are opened as threads take their batches, so a batch spanning hundreds
        // of partitions never holds them all open at once.
        let outcomes = self.inner.in_parallel(&batches, |batch| {
            let docs =
                std::mem::take(&mut *batch.docs.lock().unwrap_or_else(PoisonError::into_inner));
            Ok(self
                .inner
                .member(&batch.label, true)
                .and_then(|coll| coll.insert_routed(docs, options)))
        })?;
        let mut inserted = BTreeMap::new();
        let mut fatal = None;
        for (batch, outcome) in batches.iter().zip(outcomes) {
            let global = |local: usize| batch.positions.get(local).copied().unwrap_or(local);
            match outcome {
                Ok(r) => {
                    for (local, id) in r.inserted_ids {
                        inserted.insert(global(local), id);
                    }
                }
                Err(Error::BulkWrite(f)) => {
                    for (local, id) in f.inserted_ids {
                        inserted.insert(global(local), id);
                    }
                    for e in f.write_errors {
                        errors.push(WriteError {
                            index: global(e.index),
                            error: e.error,
                        });
                    }
                }
                Err(e) => {
                    fatal.get_or_insert(e);
                }
            }
        }
        if let Some(e) = fatal {
            return Err(e);
        }
        if errors.is_empty() {
            return Ok(InsertManyResult {
                inserted_ids: inserted,
            });
        }
        errors.sort_by_key(|e| e.index);
        if options.ordered {
            // Members insert their documents in parallel, each stopping at its own first
            // failure: documents after the request's first failure, which an ordered
            // insert never reaches, may have been inserted on other members. Take them
            // back, so the outcome is the one of a single collection.
            errors.truncate(1);
            let first = errors.first().map_or(usize::MAX, |e| e.index);
            let late = inserted.split_off(&first.saturating_add(1));
            self.take_back(&batches, late)?;
        }
        Err(Error::BulkWrite(Box::new(BulkWriteFailure {
            inserted_ids: inserted.into_iter().collect(),
            write_errors: errors,
            ..Default::default()
        })))
    }

    /// The member label of a document to insert and the document as it will be handed
    /// to the member: a `Value` object is borrowed, its `_id` (when missing) generated
    /// here so it can route the document; another type is converted, `_id` set.
    fn route<'a>(&self, document: &'a T) -> Result<(String, Routed<'a>)> {
        if let Some(value) = (document as &dyn Any).downcast_ref::<Value>() {
            let Value::Object(map) = value else {
                return Err(not_an_object(value));
            };
            let (key, generated) = match map.get("_id") {
                Some(id) => {
                    validate_id(id)?;
                    (key_value_in(map, self.inner.layout.path())?, None)
                }
                None => {
                    let id = Value::String(new_object_id());
                    let key = key_value_given_id(map, &id, self.inner.layout.path())?;
                    (key, Some(id))
                }
            };
            let label = self.inner.label_for_key(&key)?;
            return Ok((label, (Cow::Borrowed(map), generated)));
        }
        let mut map = to_document(document)?;
        ensure_id(&mut map)?;
        let label = self.inner.label_for_map(&map)?;
        Ok((label, (Cow::Owned(map), None)))
    }

    /// Deletes documents an ordered `insert_many` inserted past its first failure
    /// (request position -> `_id`), each on the member its batch went to.
    fn take_back(&self, batches: &[Batch], late: BTreeMap<usize, Value>) -> Result<()> {
        for batch in batches {
            let ids: Vec<&Value> = batch
                .positions
                .iter()
                .filter_map(|position| late.get(position))
                .collect();
            if ids.is_empty() {
                continue;
            }
            let member = self.inner.member(&batch.label, false)?;
            member.delete_many(serde_json::json!({"_id": {"$in": ids}}))?;
        }
        Ok(())
    }

    // ----- reads ---------------------------------------------------------------------

    /// A lazy scatter-gather cursor over the documents matching `filter`; chain `sort`,
    /// `skip`, `limit` and `projection` before iterating. Only the members the filter
    /// can match are read, in parallel.
    pub fn find(&self, filter: Value) -> Result<ShardedCursor<T>> {
        let filter = parse_filter(&filter)?;
        self.find_filter(filter)
    }

    /// A cursor over the documents matching an already parsed filter.
    pub fn find_filter(&self, filter: Filter) -> Result<ShardedCursor<T>> {
        let labels = self.inner.visit(&filter)?;
        Ok(ShardedCursor::new(self.inner.clone(), labels, filter))
    }

    /// The first document matching `filter`, if any (no order across shards is implied).
    pub fn find_one(&self, filter: Value) -> Result<Option<T>> {
        self.find(filter)?.limit(1).next().transpose()
    }

    /// Number of documents matching `filter`, counted on every member in parallel.
    pub fn count_documents(&self, filter: Value) -> Result<u64> {
        let counts = self.inner.fan_out_for(&parse_filter(&filter)?, |c| {
            c.count_documents(filter.clone())
        })?;
        Ok(counts.into_iter().sum())
    }

    /// Number of documents in the collection, from every member's table.
    pub fn estimated_count(&self) -> Result<u64> {
        let counts = self
            .inner
            .fan_out_for(&Filter::all(), Collection::estimated_count)?;
        Ok(counts.into_iter().sum())
    }

    /// The distinct values of `field` among the documents matching `filter`, merged
    /// from every member and sorted in MongoDB's order.
    pub fn distinct(&self, field: &str, filter: Value) -> Result<Vec<Value>> {
        let parts = self.inner.fan_out_for(&parse_filter(&filter)?, |c| {
            c.distinct(field, filter.clone())
        })?;
        let mut values = crate::value::DistinctValues::default();
        parts.into_iter().flatten().for_each(|v| values.push(v));
        Ok(values.finish())
    }

    // ----- updates -------------------------------------------------------------------

    /// Updates the first document matching `filter` found on any member.
    pub fn update_one(&self, filter: Value, update: Value) -> Result<UpdateResult> {
        self.update_one_with(filter, update, &UpdateOptions::default())
    }

    /// `update_one` with upsert and array filters. An upsert that matches nothing
    /// inserts on the member its new document routes to.
    pub fn update_one_with(
        &self,
        filter: Value,
        update: Value,
        options: &UpdateOptions,
    ) -> Result<UpdateResult> {
        let parsed_update = parse_operator_update(&update, options.array_filters.as_deref())?;
        self.update_single(filter, update, parsed_update, options, false)
    }

    /// Updates every matching document, on every member in parallel (each member all
    /// or nothing; members independently).
    pub fn update_many(&self, filter: Value, update: Value) -> Result<UpdateResult> {
        self.update_many_with(filter, update, &UpdateOptions::default())
    }

    /// `update_many` with upsert and array filters.
    pub fn update_many_with(
        &self,
        filter: Value,
        update: Value,
        options: &UpdateOptions,
    ) -> Result<UpdateResult> {
        let parsed_update = parse_operator_update(&update, options.array_filters.as_deref())?;
        let parsed = parse_filter(&filter)?;
        let plain = UpdateOptions {
            upsert: false,
            ..options.clone()
        };
        let results = self.inner.fan_out_for(&parsed, |c| {
            c.update_many_with(filter.clone(), update.clone(), &plain)
        })?;
        let mut total = UpdateResult::default();
        for r in results {
            total.matched_count += r.matched_count;
            total.modified_count += r.modified_count;
        }
        if total.matched_count > 0 || !options.upsert {
            return Ok(total);
        }
        let (coll, target_filter) = self.upsert_route(&filter, &parsed, &parsed_update)?;
        coll.update_many_with(target_filter, update, options)
    }

    /// Replaces the first document matching `filter`, keeping its `_id` (and its shard
    /// key: a replacement that changes it is rejected).
    pub fn replace_one(&self, filter: Value, replacement: impl Borrow<T>) -> Result<UpdateResult> {
        self.replace_one_with(filter, replacement, false)
    }

    /// `replace_one`, inserting the replacement when nothing matches and `upsert` is set.
    pub fn replace_one_with(
        &self,
        filter: Value,
        replacement: impl Borrow<T>,
        upsert: bool,
    ) -> Result<UpdateResult> {
        let replacement = Value::Object(to_document(replacement.borrow())?);
        let parsed_update = parse_replacement(&replacement)?;
        let options = UpdateOptions {
            upsert,
            array_filters: None,
        };
        self.update_single(filter, replacement, parsed_update, &options, true)
    }

    fn update_single(
        &self,
        filter: Value,
        update: Value,
        parsed_update: Update,
        options: &UpdateOptions,
        replace: bool,
    ) -> Result<UpdateResult> {
        let parsed = parse_filter(&filter)?;
        let members = self.inner.members_for(&parsed)?;
        let run = |c: &Collection<Value>, f: Value, o: &UpdateOptions| {
            if replace {
                c.replace_one_with(f, update.clone(), o.upsert)
            } else {
                c.update_one_with(f, update.clone(), o)
            }
        };
        if options.upsert {
            // One member that is also where an upsert would go: it does it all, atomically,
            // with the request's own filter (so it updates an existing match).
            if let [(label, coll)] = members.as_slice() {
                let target = self.upsert_target(&filter, &parsed, &parsed_update)?;
                if target.label == *label && target.routes_alike {
                    return run(coll, filter, options);
                }
            }
        }
        let plain = UpdateOptions {
            upsert: false,
            ..options.clone()
        };
        let found = self.inner.first_match(&members, &filter, |c| {
            let r = run(c, filter.clone(), &plain)?;
            Ok((r.matched_count > 0).then_some(r))
        })?;
        if let Some(r) = found {
            return Ok(r);
        }
        if !options.upsert {
            return Ok(UpdateResult::default());
        }
        let (coll, target_filter) = self.upsert_route(&filter, &parsed, &parsed_update)?;
        run(&coll, target_filter, options)
    }

    /// Where an upsert of `filter_value` (parsed: `filter`) with `update` that matches
    /// nothing inserts its document, without opening that member.
    fn upsert_target(
        &self,
        filter_value: &Value,
        filter: &Filter,
        update: &Update,
    ) -> Result<UpsertTarget> {
        // The placeholder builds the document exactly as a member's upsert does.
        let builder = self
            .inner
            .db
            .collection::<Value>(&self.inner.name)
            .placeholder();
        let mut map = builder.upsert_document(filter, update, crate::changes::now_millis())?;
        let generated = !map.contains_key("_id");
        let id = ensure_id(&mut map)?;
        let path = self.inner.layout.path();
        let key = key_value_in(&map, path)?;
        let label = self.inner.label_for_key(&key)?;
        let keyed_by_id = path.segments().first().is_some_and(|s| s == "_id");
        // A member generates its own `_id`, and reads its own clock (`$currentDate`): the
        // key must depend on neither. The clock is probed with an instant far from now.
        let routes_alike = !(generated && keyed_by_id)
            && builder
                .upsert_document(filter, update, 0)
                .and_then(|other| key_value_in(&other, path))
                .is_ok_and(|other| other == key);
        let filter = Spread::upsert_filter(filter_value, filter, id, update.is_replacement())?;
        Ok(UpsertTarget {
            label,
            filter,
            routes_alike,
        })
    }

    /// The member an upsert that matches nothing inserts on (created if needed), and the
    /// filter to run it with there.
    fn upsert_route(
        &self,
        filter_value: &Value,
        filter: &Filter,
        update: &Update,
    ) -> Result<(Collection<Value>, Value)> {
        let target = self.upsert_target(filter_value, filter, update)?;
        let coll = self.inner.member(&target.label, true)?;
        Ok((coll, target.filter))
    }

    // ----- deletes -------------------------------------------------------------------

    /// Deletes the first document matching `filter` found on any member.
    pub fn delete_one(&self, filter: Value) -> Result<DeleteResult> {
        let members = self.inner.members_for(&parse_filter(&filter)?)?;
        let found = self.inner.first_match(&members, &filter, |c| {
            let r = c.delete_one(filter.clone())?;
            Ok((r.deleted_count > 0).then_some(r))
        })?;
        Ok(found.unwrap_or_default())
    }

    /// Deletes every matching document, on every member in parallel.
    pub fn delete_many(&self, filter: Value) -> Result<DeleteResult> {
        let counts = self
            .inner
            .fan_out_for(&parse_filter(&filter)?, |c| c.delete_many(filter.clone()))?;
        Ok(DeleteResult {
            deleted_count: counts.iter().map(|r| r.deleted_count).sum(),
        })
    }

    // ----- find and modify -----------------------------------------------------------

    /// Updates the first document matching `filter` (in `sort` order across every
    /// member) and returns it as it was before or after. Atomic on the member that holds
    /// the document; see the module docs for the cross-member case.
    pub fn find_one_and_update(
        &self,
        filter: Value,
        update: Value,
        options: &FindOneAndModifyOptions,
    ) -> Result<Option<T>> {
        let parsed = parse_operator_update(&update, options.array_filters.as_deref())?;
        Ok(self
            .modify_one(filter, Modify::Update(update, parsed), options)?
            .document)
    }

    /// Replaces the first document matching `filter` and returns it as it was before or
    /// after.
    pub fn find_one_and_replace(
        &self,
        filter: Value,
        replacement: impl Borrow<T>,
        options: &FindOneAndModifyOptions,
    ) -> Result<Option<T>> {
        let replacement = Value::Object(to_document(replacement.borrow())?);
        let parsed = parse_replacement(&replacement)?;
        Ok(self
            .modify_one(filter, Modify::Replace(replacement, parsed), options)?
            .document)
    }

    /// Deletes the first document matching `filter` (in `sort` order) and returns it.
    pub fn find_one_and_delete(
        &self,
        filter: Value,
        options: &FindOneAndModifyOptions,
    ) -> Result<Option<T>> {
        Ok(self.modify_one(filter, Modify::Delete, options)?.document)
    }

    /// The general find-and-modify (MongoDB's `findAndModify` command) across members:
    /// as [`Collection::find_and_modify`], with the first document in `sort` order over
    /// every member, and an upsert that matches nothing going to the member its new
    /// document routes to.
    pub fn find_and_modify(
        &self,
        filter: Value,
        modification: crate::Modification,
        options: &FindOneAndModifyOptions,
    ) -> Result<crate::FindAndModifyOutcome<T>> {
        let modify = match modification {
            crate::Modification::Update(u) => {
                let parsed = parse_operator_update(&u, options.array_filters.as_deref())?;
                Modify::Update(u, parsed)
            }
            crate::Modification::Replace(r) => {
                let r = Value::Object(to_document(&r)?);
                let parsed = parse_replacement(&r)?;
                Modify::Replace(r, parsed)
            }
            crate::Modification::Delete => Modify::Delete,
        };
        self.modify_one(filter, modify, options)
    }

    fn modify_one(
        &self,
        filter: Value,
        modify: Modify,
        options: &FindOneAndModifyOptions,
    ) -> Result<crate::FindAndModifyOutcome<T>> {
        let parsed = parse_filter(&filter)?;
        let members = self.inner.members_for(&parsed)?;
        let modification = match &modify {
            Modify::Update(u, _) => crate::Modification::Update(u.clone()),
            Modify::Replace(r, _) => crate::Modification::Replace(r.clone()),
            Modify::Delete => crate::Modification::Delete,
        };
        // `Some` when the member held a matching document.
        let run = |c: &Collection<Value>, f: Value, o: &FindOneAndModifyOptions| {
            let outcome = c.find_and_modify(f, modification.clone(), o)?;
            let hit = outcome.updated_existing
                || outcome.upserted_id.is_some()
                || (matches!(modify, Modify::Delete) && outcome.document.is_some());
            Ok(hit.then_some(outcome))
        };
        let plain = FindOneAndModifyOptions {
            upsert: false,
            ..options.clone()
        };
        let sort = options
            .sort
            .as_ref()
            .map(SortSpec::parse)
            .transpose()?
            .filter(|s| !s.is_empty());
        let found = match (&sort, &options.sort) {
            (Some(spec), Some(sort_value)) if members.len() > 1 => {
                let mut found = None;
                // Retried when the chosen document changes before it is written.
                for _ in 0..8 {
                    let firsts = self.inner.fan_out(&members, |c| {
                        c.find(filter.clone())?
                            .sort(sort_value.clone())
                            .limit(1)
                            .next()
                            .transpose()
                    })?;
                    let best = firsts
                        .into_iter()
                        .enumerate()
                        .filter_map(|(i, d)| d.map(|d| (i, d)))
                        .reduce(|a, b| {
                            if spec.compare(&b.1, &a.1) == std::cmp::Ordering::Less {
                                b
                            } else {
                                a
                            }
                        });
                    let Some((i, doc)) = best else { break };
                    let id = doc.get("_id").cloned().unwrap_or(Value::Null);
                    let pinned = json!({"$and": [filter, {"_id": id}]});
                    if let Some(r) = run(&members[i].1, pinned, &plain)? {
                        found = Some(r);
                        break;
                    }
                }
                found
            }
            _ => self
                .inner
                .first_match(&members, &filter, |c| run(c, filter.clone(), &plain))?,
        };
        let outcome = match (found, &modify) {
            (Some(outcome), _) => Some(outcome),
            (None, Modify::Delete) => None,
            (None, Modify::Update(_, parsed_update) | Modify::Replace(_, parsed_update)) => {
                if options.upsert {
                    let (coll, target_filter) =
                        self.upsert_route(&filter, &parsed, parsed_update)?;
                    Some(coll.find_and_modify(target_filter, modification.clone(), options)?)
                } else {
                    None
                }
            }
        };
        let Some(outcome) = outcome else {
            return Ok(crate::FindAndModifyOutcome {
                document: None,
                updated_existing: false,
                upserted_id: None,
            });
        };
        Ok(crate::FindAndModifyOutcome {
            document: outcome.document.map(from_document).transpose()?,
            updated_existing: outcome.updated_existing,
            upserted_id: outcome.upserted_id,
        })
    }

    // ----- indexes and lifetime ------------------------------------------------------

    /// Creates an index on every member (and, for partitions, records it so partitions
    /// created later get it too); returns its name. A unique index must start with the
    /// shard or partition key (otherwise uniqueness could only hold per member). A build
    /// that fails on one member may leave the index on others: drop it to clean up.
    pub fn create_index(&self, keys: Value, options: IndexOptions) -> Result<String> {
        if options.unique {
            let first = keys.as_object().and_then(|k| k.keys().next().cloned());
            let key_path = self.inner.layout.path().to_string();
            if first.as_deref() != Some(key_path.as_str()) {
                return Err(Error::InvalidIndex {
                    collection: self.inner.name.clone(),
                    name: options.name.clone().unwrap_or_default(),
                    message: format!(
                        "a unique index on a sharded collection must start with the shard key '{key_path}'"
                    ),
                });
            }
        }
        let model = IndexModel { keys, options };
        let partitioned = matches!(self.inner.layout, Layout::Partition(_));
        let mut recorded = None;
        if partitioned {
            // Recorded first, so a partition created meanwhile builds it itself.
            let name = self.placeholder_index_name(&model)?;
            let entry = index_to_json(&model, &name);
            self.inner.update_catalog_indexes(|list| {
                list.retain(|v| v.get("name").and_then(Value::as_str) != Some(name.as_str()));
                list.push(entry);
            })?;
            recorded = Some(name);
        }
        let built = self.inner.fan_out_for(&Filter::all(), |c| {
            c.create_indexes(std::slice::from_ref(&model))
        });
        match built {
            Ok(names) => Ok(names
                .into_iter()
                .flatten()
                .next()
                .or(recorded)
                .unwrap_or_default()),
            Err(e) => {
                if let Some(name) = recorded {
                    let _ = self.inner.update_catalog_indexes(|list| {
                        list.retain(|v| {
                            v.get("name").and_then(Value::as_str) != Some(name.as_str())
                        });
                    });
                }
                Err(e)
            }
        }
    }

    /// The name an index will get, found by building it on the (empty) placeholder
    /// table of the main database and dropping it again.
    fn placeholder_index_name(&self, model: &IndexModel) -> Result<String> {
        let placeholder = self
            .inner
            .db
            .collection::<Value>(&self.inner.name)
            .placeholder();
        let mut names = placeholder.create_indexes(std::slice::from_ref(model))?;
        let name = names
            .pop()
            .ok_or_else(|| self.inner.error("no index name"))?;
        placeholder.drop_index(&name)?;
        Ok(name)
    }

    /// The indexes, as the first member has them (`_id_` first). A partitioned
    /// collection also lists the indexes recorded for partitions created later, so an
    /// index created before the first partition is listed too.
    pub fn list_indexes(&self) -> Result<Vec<IndexInfo>> {
        let mut list = match self.inner.all_members()?.first() {
            Some((_, c)) => c.list_indexes()?,
            None => self
                .inner
                .db
                .collection::<Value>(&self.inner.name)
                .placeholder()
                .list_indexes()?,
        };
        if matches!(self.inner.layout, Layout::Partition(_)) {
            for model in self.inner.catalog_indexes()? {
                let Some(name) = model.options.name else {
                    continue;
                };
                if list.iter().any(|info| info.name == name) {
                    continue;
                }
                list.push(IndexInfo {
                    name,
                    keys: model.keys,
                    unique: model.options.unique,
                    sparse: model.options.sparse,
                    partial_filter_expression: model.options.partial_filter_expression,
                    expire_after_seconds: model.options.expire_after_seconds,
                    multikey: false,
                });
            }
        }
        Ok(list)
    }

    /// Drops the index named `name` on every member (and, for partitions, from the
    /// indexes recorded for partitions created later). `IndexNotFound` when neither a
    /// member nor that record has it.
    pub fn drop_index(&self, name: &str) -> Result<()> {
        let mut recorded = false;
        if matches!(self.inner.layout, Layout::Partition(_)) {
            self.inner.update_catalog_indexes(|list| {
                let before = list.len();
                list.retain(|v| v.get("name").and_then(Value::as_str) != Some(name));
                recorded = list.len() != before;
            })?;
        }
        let outcomes = self
            .inner
            .fan_out_for(&Filter::all(), |c| match c.drop_index(name) {
                Ok(()) => Ok(true),
                Err(Error::IndexNotFound { .. }) => Ok(false),
                Err(e) => Err(e),
            })?;
        if recorded || outcomes.contains(&true) {
            Ok(())
        } else {
            Err(Error::IndexNotFound {
                collection: self.inner.name.clone(),
                name: name.to_string(),
            })
        }
    }

    /// Drops the collection: its catalog entry and every member file. Returns false
    /// when it did not exist. Other handles on it fail with `CollectionNotFound`
    /// afterwards (a handle opened on a collection recreated under the name works).
    pub fn drop(&self) -> Result<bool> {
        // Not the collection recreated under the name since.
        if self.inner.dropped.load(Ordering::Acquire) {
            return Ok(false);
        }
        let existed = self.inner.db.drop_collection(&self.inner.name)?;
        let dir = &self.inner.dir;
        self.inner
            .db
            .inner
            .shards
            .remove_under(dir, || remove_dir(dir))?;
        Ok(existed)
    }

    /// Waits until every member's buffered writes are applied (see [`Database::flush`]).
    pub fn flush(&self) -> Result<()> {
        self.inner
            .fan_out_for(&Filter::all(), |c| c.database().flush())?;
        Ok(())
    }

    /// A fluent query, compiling to the same filter AST as [`find`](ShardedCollection::find).
    pub fn query(&self) -> QueryBuilder<ShardedCollection<T>> {
        QueryBuilder::with_target(self.clone())
    }
}

enum Modify {
    Update(Value, Update),
    Replace(Value, Update),
    Delete,
}

/// Where an upsert that matches nothing inserts its document.
struct UpsertTarget {
    /// The member the new document routes to.
    label: String,
    /// The filter to upsert with on that member: the request's, pinned to the new
    /// document's `_id` when the filter does not give one (so the member inserts the
    /// document that was routed).
    filter: Value,
    /// The member's own upsert with the request's filter would insert a document that
    /// routes there too: its routing key depends neither on an `_id` generated for it
    /// nor on the clock.
    routes_alike: bool,
}

impl<T: Document> QueryBuilder<ShardedCollection<T>> {
    /// Runs the query: a scatter-gather cursor over the results.
    pub fn find(self) -> Result<ShardedCursor<T>> {
        let (coll, q) = self.into_parts()?;
        let mut cursor = coll.find_filter(q.filter)?.skip(q.skip);
        if let Some(sort) = q.sort {
            cursor = cursor.sort_spec(sort);
        }
        if let Some(limit) = q.limit {
            cursor = cursor.limit(i64::try_from(limit).unwrap_or(i64::MAX));
        }
        if let Some(p) = q.projection {
            cursor = cursor.projection_spec(p);
        }
        Ok(cursor)
    }

    /// Runs the query and collects the results.
    pub fn to_vec(self) -> Result<Vec<T>> {
        self.find()?.to_vec()
    }

    /// Number of matching documents (skip and limit ignored).
    pub fn count(self) -> Result<u64> {
        let (coll, q) = self.into_parts()?;
        let filter = &q.filter;
        let counts = coll
            .inner
            .fan_out_for(filter, |c| Ok(c.find_filter(filter.clone()).count() as u64))?;
        Ok(counts.into_iter().sum())
    }
}

/// The member files of `db`'s sharded and partitioned collections that exist on disk,
/// opened through the database's registry (so their writers are the ones writes use),
/// each with its path relative to the database's directory
/// (`<db>.shards/<coll>/shard-<i>.sqlite`, `<db>.parts/<coll>/part-<name>.sqlite`).
pub(crate) fn member_databases(db: &Database) -> Result<Vec<(PathBuf, Database)>> {
    let Some(path) = db.path() else {
        return Ok(Vec::new());
    };
    let base = path
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .to_path_buf();
    let mut files = Vec::new();
    for kind in ["shards", "parts"] {
        let Ok(root) = member_dir(db, "", kind) else {
            continue;
        };
        collect_sqlite_files(&root, &mut files)?;
    }
    files.sort();
    let mut out = Vec::with_capacity(files.len());
    for file in files {
        // A file removed since the directory was listed is not a member any more.
        let Some(opened) = db.inner.shards.open(&file, db.options(), false)? else {
            continue;
        };
        let relative = file.strip_prefix(&base).unwrap_or(&file).to_path_buf();
        out.push((relative, opened.db));
    }
    Ok(out)
}

fn collect_sqlite_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            collect_sqlite_files(&path, out)?;
        } else if path.extension().and_then(|e| e.to_str()) == Some("sqlite") {
            out.push(path);
        }
    }
    Ok(())
}
