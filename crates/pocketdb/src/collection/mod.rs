//! Collections: CRUD with MongoDB's semantics over one table of JSONB documents.
//!
//! Every write runs in one transaction on the database's writer connection and appends
//! to the change log in that same transaction. Reads go through the reader pool.

mod buffered;
mod cursor;
pub(crate) mod expiry;
mod options;
mod plan;
mod plan_cache;
pub(crate) mod populate;
pub(crate) mod sorter;

pub(crate) use buffered::apply_buffered;
use buffered::{Modified, Modify};
pub(crate) use cursor::SORT_MEMORY;
pub use cursor::{Cursor, Explain};
pub use options::{
    BulkWriteResult, DeleteResult, FindAndModifyOutcome, FindOneAndModifyOptions,
    InsertManyOptions, InsertManyResult, InsertOneResult, Modification, ReturnDocument,
    UpdateOptions, UpdateResult, WriteModel,
};
pub(crate) use plan_cache::PlanCache;
pub use plan_cache::{PlanCacheStats, PlanCacheUse, PLAN_CACHE_CAPACITY};
pub use populate::{
    LookupOutput, LookupSpec, LookupStrategy, MissingReference, PopulateSpec, Populated,
    DEFAULT_POPULATE_PAGE,
};

use crate::changes::{self, Change, ChangeOp, UpdateDescription};
use crate::database::Database;
use crate::engine::schema::{table_name, validate_collection_name};
use crate::error::{BulkWriteFailure, Error, Result, WriteError};
use crate::id::{ensure_id, id_key, new_object_id, validate_id};
use crate::index::{self, IndexInfo, IndexModel, IndexOptions, IndexProgress, IndexSet};
use crate::plugin::WriteOp;
use crate::query::{parse_filter, Cond, Filter, Projection, QueryBuilder, SortSpec};
use crate::update::{upsert_seed, ApplyContext, Tracked, Update};
use crate::value::{jsonb, DistinctValues, FieldPath};
use plan::{Plan, Row};
use rusqlite::Connection;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};
use std::any::Any;
use std::borrow::{Borrow, Cow};
use std::marker::PhantomData;
use std::sync::Arc;

/// Runs `f` inside one read transaction on `conn` (unless a transaction is already
/// open): the statements `f` runs share one snapshot and one acquisition of SQLite's
/// read locks.
fn in_read_transaction<R>(
    conn: &Connection,
    transaction: bool,
    f: impl FnOnce() -> Result<R>,
) -> Result<R> {
    if !transaction || !conn.is_autocommit() {
        return f();
    }
    conn.prepare_cached("BEGIN")?.execute([])?;
    let out = f();
    if let Err(e) = conn
        .prepare_cached("COMMIT")
        .and_then(|mut s| s.execute([]))
    {
        // A read transaction has nothing to lose; make sure it is closed.
        let _ = conn.execute_batch("ROLLBACK");
        if out.is_ok() {
            return Err(e.into());
        }
    }
    out
}

/// Types that can be stored in a collection: anything serde can turn into a JSON object
/// and back. `serde_json::Value` is the untyped form.
pub trait Document: Serialize + DeserializeOwned + Send + Sync + 'static {}

impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> Document for T {}

/// A handle on a collection of documents of type `T`. Cheap to clone, `Send + Sync`.
///
/// ```
/// use pocketdb::Database;
/// use serde_json::{json, Value};
///
/// let db = Database::memory()?;
/// let users = db.collection::<Value>("users");
/// users.insert_many([
///     json!({"name": "Ada", "age": 36, "tags": ["math"]}),
///     json!({"name": "Linus", "age": 28, "tags": ["os", "git"]}),
/// ])?;
/// let found = users.find(json!({"tags": "git"}))?.to_vec()?;
/// assert_eq!(found[0]["name"], "Linus");
/// let res = users.update_one(json!({"name": "Ada"}), json!({"$inc": {"age": 1}}))?;
/// assert_eq!(res.modified_count, 1);
/// # Ok::<(), pocketdb::Error>(())
/// ```
pub struct Collection<T = Value> {
    pub(crate) db: Database,
    pub(crate) name: Arc<str>,
    /// A check every stored update must pass (a shard's key must not change).
    guard: Option<UpdateGuard>,
    /// The shard layer's handle on the empty table a sharded or partitioned collection
    /// has in its main database (other handles on such a name are refused).
    placeholder: bool,
    _type: PhantomData<fn() -> T>,
}

/// A check run on every update before it is stored, given the document before and after:
/// an error rejects the update (inside its transaction). The shard layer uses it to keep
/// a document's shard key fixed.
pub(crate) type UpdateGuard = Arc<dyn Fn(&Value, &Value) -> Result<()> + Send + Sync>;

impl<T> Clone for Collection<T> {
    fn clone(&self) -> Self {
        Collection {
            db: self.db.clone(),
            name: self.name.clone(),
            guard: self.guard.clone(),
            placeholder: self.placeholder,
            _type: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for Collection<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collection")
            .field("database", &self.db.name())
            .field("name", &self.name)
            .finish()
    }
}

const PAGE: usize = 512;

/// Counts a stream of rows without holding them.
pub(super) fn count_rows(rows: impl Iterator<Item = Result<Row>>) -> Result<u64> {
    let mut n = 0u64;
    for row in rows {
        row?;
        n += 1;
    }
    Ok(n)
}

impl<T: Document> Collection<T> {
    pub(crate) fn new(db: Database, name: &str) -> Collection<T> {
        Collection {
            db,
            name: Arc::from(name),
            guard: None,
            placeholder: false,
            _type: PhantomData,
        }
    }

    /// The same handle on the placeholder table of a sharded or partitioned collection,
    /// for the shard layer's own use of it.
    pub(crate) fn placeholder(mut self) -> Collection<T> {
        self.placeholder = true;
        self
    }

    /// `Error::Shard` when this name is a sharded or partitioned collection of its
    /// database: its documents live in member files, which this handle does not read or
    /// write (before, it silently read and wrote the empty placeholder table).
    pub(crate) fn refuse_spread(&self) -> Result<()> {
        if !self.placeholder && self.db.is_spread(&self.name)? {
            return Err(Error::Shard {
                collection: self.name.to_string(),
                message: "a sharded or partitioned collection: open it with Database::sharded, \
                          Database::partitioned or Database::resolve_collection"
                    .to_string(),
            });
        }
        Ok(())
    }

    /// The same handle, checking every update with `guard` before storing it.
    pub(crate) fn with_guard(mut self, guard: UpdateGuard) -> Collection<T> {
        self.guard = Some(guard);
        self
    }

    /// Runs the update guard, if any, on a document before and after an update.
    pub(crate) fn check_guard(&self, before: &Value, after: &Value) -> Result<()> {
        match &self.guard {
            Some(guard) => guard(before, after),
            None => Ok(()),
        }
    }

    /// The collection's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The database holding the collection.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// The same collection seen through another document type.
    pub fn typed<U: Document>(&self) -> Collection<U> {
        Collection::new(self.db.clone(), &self.name)
    }

    // ----- inserts ---------------------------------------------------------------------

    /// Inserts one document. An `_id` is generated when the document has none. Fails with
    /// `DuplicateKey` when the `_id` exists; nothing is stored then.
    pub fn insert_one(&self, document: impl Borrow<T>) -> Result<InsertOneResult> {
        let prepared = self.prepare_item(document.borrow())?;
        if let Some(buffer) = self.db.buffer() {
            return match self.insert_buffered(buffer, vec![Ok(prepared)], true) {
                Ok(mut r) => Ok(InsertOneResult {
                    inserted_id: r.inserted_ids.remove(&0).unwrap_or(Value::Null),
                }),
                Err(Error::BulkWrite(mut f)) if !f.write_errors.is_empty() => {
                    Err(f.write_errors.swap_remove(0).error)
                }
                Err(e) => Err(e),
            };
        }
        let inserted_id = prepared.id.clone();
        // The job owns what it needs, so that under group commit the thread holding the
        // connection can run it together with other writers' inserts.
        let coll = self.clone();
        self.write_owned(Box::new(move |conn| {
            coll.insert_prepared(conn, &prepared).map(|_| ())
        }))?;
        Ok(InsertOneResult { inserted_id })
    }

    /// Inserts documents in one transaction, ordered (see [`InsertManyOptions`]).
    pub fn insert_many<I>(&self, documents: I) -> Result<InsertManyResult>
    where
        I: IntoIterator,
        I::Item: Borrow<T>,
    {
        self.insert_many_with(documents, InsertManyOptions::default())
    }

    /// Inserts documents in one transaction. When some fail, the others (all before the
    /// first failure when ordered) are committed and `Error::BulkWrite` reports each
    /// failure with its position.
    pub fn insert_many_with<I>(
        &self,
        documents: I,
        options: InsertManyOptions,
    ) -> Result<InsertManyResult>
    where
        I: IntoIterator,
        I::Item: Borrow<T>,
    {
        let prepared = documents
            .into_iter()
            .map(|d| self.prepare_item(d.borrow()))
            .collect();
        self.insert_prepared_many(prepared, options)
    }

    /// [`insert_many_with`](Collection::insert_many_with) on documents a sharded
    /// collection routed: each either owned (converted from another type, `_id` set) or
    /// borrowed from the request with the `_id` generated for it when it had none. The
    /// documents are prepared (checked, serialised) on the calling thread, which for a
    /// sharded insert is the member's own.
    pub(crate) fn insert_routed(
        &self,
        docs: Vec<Routed<'_>>,
        options: InsertManyOptions,
    ) -> Result<InsertManyResult> {
        let prepared = docs
            .into_iter()
            .map(|(doc, generated)| match doc {
                Cow::Owned(map) => self.prepare_owned(map),
                Cow::Borrowed(map) => self.prepare_borrowed(map, generated),
            })
            .collect();
        self.insert_prepared_many(prepared, options)
    }

    /// Inserts documents prepared (validated, serialised) on the caller's thread.
    fn insert_prepared_many(
        &self,
        prepared: Vec<Result<PreparedDoc>>,
        options: InsertManyOptions,
    ) -> Result<InsertManyResult> {
        if let Some(buffer) = self.db.buffer() {
            return self.insert_buffered(buffer, prepared, options.ordered);
        }
        let (inserted, errors) = self.write(|conn| {
            let mut inserted = std::collections::BTreeMap::new();
            let mut errors = Vec::new();
            let mut inserter = Inserter::new(&self.db, conn, &self.name)?;
            for (index, p) in prepared.into_iter().enumerate() {
                let outcome = p.and_then(|p| inserter.insert(&p).map(|()| p.id));
                match outcome {
                    Ok(id) => {
                        inserted.insert(index, id);
                    }
                    Err(error) => {
                        if !is_document_error(&error) {
                            return Err(error);
                        }
                        errors.push(WriteError { index, error });
                        if options.ordered {
                            break;
                        }
                    }
                }
            }
            Ok((inserted, errors))
        })?;
        if errors.is_empty() {
            return Ok(InsertManyResult {
                inserted_ids: inserted,
            });
        }
        Err(Error::BulkWrite(Box::new(BulkWriteFailure {
            inserted_ids: inserted.into_iter().collect(),
            write_errors: errors,
            ..Default::default()
        })))
    }

    // ----- reads -----------------------------------------------------------------------

    /// A lazy cursor over the documents matching `filter`; chain `sort`, `skip`, `limit`
    /// and `projection` before iterating.
    pub fn find(&self, filter: Value) -> Result<Cursor<T>> {
        Ok(Cursor::new(self.clone(), self.user_filter(filter)?))
    }

    /// A cursor over the documents matching an already parsed filter.
    pub fn find_filter(&self, filter: Filter) -> Cursor<T> {
        Cursor::new(self.clone(), filter)
    }

    /// The first document matching `filter` (in storage order), if any.
    pub fn find_one(&self, filter: Value) -> Result<Option<T>> {
        if let Some(key) = self.point_read_key(&filter) {
            return self.find_by_key(&filter, &key);
        }
        self.find(filter)?.limit(1).next().transpose()
    }

    /// The `_id` key of a filter that is exactly `{_id: <string or number>}`, when nothing
    /// stands between the stored text and the caller: no plugin (they may rewrite the
    /// filter or the document) and no buffered write pending. Such a `find_one` is one
    /// lookup in the `_id` index, with no plan and no cursor.
    fn point_read_key(&self, filter: &Value) -> Option<String> {
        let Value::Object(map) = filter else {
            return None;
        };
        if map.len() != 1 || self.db.has_plugins() || self.buffer_pending() {
            return None;
        }
        let id = map.get("_id")?;
        (id.is_string() || id.is_number()).then(|| id_key(id))
    }

    /// [`find_one`](Self::find_one) of the document stored under `key` (see
    /// [`point_read_key`](Self::point_read_key)); `filter` is for the slow-query log.
    fn find_by_key(&self, filter: &Value, key: &str) -> Result<Option<T>> {
        let started = std::time::Instant::now();
        // An untyped document is read as stored and its JSONB decoded in place (see
        // `plan::stored_doc`); a typed one goes straight from the `json()` text into `T`
        // (the same `Deserialize` as through a `Value`).
        let untyped = std::any::TypeId::of::<T>() == std::any::TypeId::of::<Value>();
        let column = if untyped { "doc" } else { "json(doc)" };
        let found: Option<T> = self.read(
            |conn| {
                let mut stmt = conn.prepare_cached(&format!(
                    "SELECT {column} FROM {} WHERE id = ?1",
                    table_name(&self.name)
                ))?;
                let mut rows = stmt.query([key])?;
                let Some(r) = rows.next()? else {
                    return Ok(None);
                };
                if untyped {
                    return from_document(plan::stored_doc(conn, r.get_ref(0)?)?).map(Some);
                }
                let text: String = r.get(0)?;
                serde_json::from_str(&text)
                    .map(Some)
                    .map_err(|e| Error::Serde(e.to_string()))
            },
            || None,
        )?;
        if let Some(threshold) = self.db.options().slow_query_threshold {
            let elapsed = started.elapsed();
            if elapsed >= threshold {
                if let Ok(parsed) = parse_filter(filter) {
                    self.db.observe_read(&self.name, &parsed, elapsed);
                }
            }
        }
        Ok(found)
    }

    /// Number of documents matching `filter`.
    pub fn count_documents(&self, filter: Value) -> Result<u64> {
        let filter = self.user_filter(filter)?;
        if self.buffer_pending() {
            return self.count_merged(filter);
        }
        self.read(
            |conn| {
                in_read_transaction(conn, true, || {
                    self.plan(conn, filter)?.count(conn, &self.name)
                })
            },
            || 0,
        )
    }

    /// Number of documents in the collection, from the table without a filter.
    pub fn estimated_count(&self) -> Result<u64> {
        if self.buffer_pending() {
            return self.count_merged(Filter::all());
        }
        self.read(
            |conn| {
                let n: i64 = conn.query_row(
                    &format!("SELECT count(*) FROM {}", table_name(&self.name)),
                    [],
                    |r| r.get(0),
                )?;
                Ok(n as u64)
            },
            || 0,
        )
    }

    /// The distinct values of `field` among the documents matching `filter`. Array values
    /// contribute their elements, as in MongoDB. Sorted in MongoDB's order.
    pub fn distinct(&self, field: &str, filter: Value) -> Result<Vec<Value>> {
        let path = FieldPath::parse(field)?;
        let filter = self.user_filter(filter)?;
        let segments = path.segments();
        let collect = |doc: &Value, out: &mut DistinctValues| {
            let mut found = Vec::new();
            collect_path_values(doc, segments, &mut found);
            found.into_iter().for_each(|v| out.push(v));
        };
        if self.buffer_pending() {
            let mut out = DistinctValues::default();
            for row in self.merged_rows(Plan::new(filter))? {
                let mut doc = row?.doc;
                self.db.after_read(&self.name, &mut doc)?;
                collect(&doc, &mut out);
            }
            return Ok(out.finish());
        }
        // Without plugins (which see whole documents) an exact plan reads only the
        // field's top-level value from each row.
        let fields_only = !self.db.has_plugins();
        let out = self.read(
            |conn| {
                in_read_transaction(conn, true, || {
                    let plan = self.plan(conn, filter)?;
                    let mut out = DistinctValues::default();
                    if fields_only {
                        let read = plan.for_each_field(conn, &self.name, path.first(), |v| {
                            collect(&v, &mut out);
                            Ok(())
                        })?;
                        if read {
                            return Ok(out);
                        }
                    }
                    plan.for_each_row(conn, &self.name, |mut row| {
                        self.db.after_read(&self.name, &mut row.doc)?;
                        collect(&row.doc, &mut out);
                        Ok(())
                    })?;
                    Ok(out)
                })
            },
            DistinctValues::default,
        )?;
        Ok(out.finish())
    }

    // ----- updates ---------------------------------------------------------------------

    /// Updates the first document matching `filter` with update operators.
    pub fn update_one(&self, filter: Value, update: Value) -> Result<UpdateResult> {
        self.update_one_with(filter, update, &UpdateOptions::default())
    }

    /// `update_one` with upsert and array filters.
    pub fn update_one_with(
        &self,
        filter: Value,
        update: Value,
        options: &UpdateOptions,
    ) -> Result<UpdateResult> {
        let update = parse_operator_update(&update, options.array_filters.as_deref())?;
        let filter = self.user_filter(filter)?;
        if let Some(Modified::Update(r)) =
            self.modify_buffered(&filter, Modify::Update(&update, options.upsert))?
        {
            return Ok(r);
        }
        if let Some(id) = only_id(&filter) {
            return self
                .write(|conn| self.update_by_id(conn, &filter, id, &update, options.upsert));
        }
        self.write(|conn| self.update_in(conn, &filter, &update, options.upsert, false))
    }

    /// Updates every document matching `filter`, all or nothing: an update that fails on
    /// one document changes none.
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
        let update = parse_operator_update(&update, options.array_filters.as_deref())?;
        let filter = self.user_filter(filter)?;
        self.write(|conn| self.update_in(conn, &filter, &update, options.upsert, true))
    }

    /// Replaces the first document matching `filter`, keeping its `_id`.
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
        let update = parse_replacement(&Value::Object(to_document(replacement.borrow())?))?;
        let filter = self.user_filter(filter)?;
        if let Some(Modified::Update(r)) =
            self.modify_buffered(&filter, Modify::Update(&update, upsert))?
        {
            return Ok(r);
        }
        self.write(|conn| self.update_in(conn, &filter, &update, upsert, false))
    }

    // ----- deletes ---------------------------------------------------------------------

    /// Deletes the first document matching `filter`.
    pub fn delete_one(&self, filter: Value) -> Result<DeleteResult> {
        let filter = self.user_filter(filter)?;
        if let Some(Modified::Delete(r)) = self.modify_buffered(&filter, Modify::Delete)? {
            return Ok(r);
        }
        self.write(|conn| self.delete_in(conn, &filter, false))
    }

    /// Deletes every document matching `filter`.
    pub fn delete_many(&self, filter: Value) -> Result<DeleteResult> {
        let filter = self.user_filter(filter)?;
        self.write(|conn| self.delete_in(conn, &filter, true))
    }

    // ----- find and modify -------------------------------------------------------------

    /// Atomically updates the first document matching `filter` (in `sort` order) and
    /// returns it as it was before or after the update.
    pub fn find_one_and_update(
        &self,
        filter: Value,
        update: Value,
        options: &FindOneAndModifyOptions,
    ) -> Result<Option<T>> {
        let update = parse_operator_update(&update, options.array_filters.as_deref())?;
        Ok(self.modify_one(filter, Some(update), options)?.document)
    }

    /// Atomically replaces the first document matching `filter` and returns it as it was
    /// before or after.
    pub fn find_one_and_replace(
        &self,
        filter: Value,
        replacement: impl Borrow<T>,
        options: &FindOneAndModifyOptions,
    ) -> Result<Option<T>> {
        let update = parse_replacement(&Value::Object(to_document(replacement.borrow())?))?;
        Ok(self.modify_one(filter, Some(update), options)?.document)
    }

    /// Atomically deletes the first document matching `filter` and returns it.
    pub fn find_one_and_delete(
        &self,
        filter: Value,
        options: &FindOneAndModifyOptions,
    ) -> Result<Option<T>> {
        Ok(self.modify_one(filter, None, options)?.document)
    }

    /// The general find-and-modify (MongoDB's `findAndModify` command): applies the
    /// modification to the first document matching `filter` in `sort` order and reports
    /// whether an existing document was updated or a new one upserted.
    pub fn find_and_modify(
        &self,
        filter: Value,
        modification: Modification,
        options: &FindOneAndModifyOptions,
    ) -> Result<FindAndModifyOutcome<T>> {
        let update = match modification {
            Modification::Update(u) => {
                Some(parse_operator_update(&u, options.array_filters.as_deref())?)
            }
            Modification::Replace(r) => Some(parse_replacement(&r)?),
            Modification::Delete => None,
        };
        self.modify_one(filter, update, options)
    }

    // ----- bulk ------------------------------------------------------------------------

    /// Runs several writes in one transaction. Ordered: stops at the first failure
    /// (writes before it are kept). Unordered: attempts all. Failures are reported by
    /// `Error::BulkWrite` with the counts of what succeeded.
    pub fn bulk_write(&self, models: Vec<WriteModel>, ordered: bool) -> Result<BulkWriteResult> {
        let (result, errors) = self.write(|conn| {
            let mut result = BulkWriteResult::default();
            let mut errors = Vec::new();
            for (index, model) in models.iter().enumerate() {
                match self.bulk_one(conn, index, model, &mut result) {
                    Ok(()) => {}
                    Err(error) if is_document_error(&error) => {
                        errors.push(WriteError { index, error });
                        if ordered {
                            break;
                        }
                    }
                    Err(error) => return Err(error),
                }
            }
            Ok((result, errors))
        })?;
        if errors.is_empty() {
            return Ok(result);
        }
        Err(result.into_failure(errors))
    }

    // ----- collection-level ------------------------------------------------------------

    /// Change-log entries of this collection with `seq > since`, oldest first, at most
    /// `limit`.
    pub fn changes_since(&self, since: i64, limit: usize) -> Result<Vec<Change>> {
        validate_collection_name(&self.name)?;
        self.db
            .read(|conn| changes::read_since(conn, Some(&self.name), since, limit))
    }

    /// Drops the collection and its documents. Returns false when it did not exist.
    pub fn drop(&self) -> Result<bool> {
        self.db.drop_collection(&self.name)
    }

    /// Renames the collection; returns a handle under the new name.
    pub fn rename(&self, to: &str) -> Result<Collection<T>> {
        self.db.rename_collection(&self.name, to, false)?;
        Ok(Collection::new(self.db.clone(), to))
    }

    // ----- indexes ---------------------------------------------------------------------

    /// Creates an index on `keys` (MongoDB's key specification: `{"email": 1}`,
    /// `{"status": 1, "created_at": -1}`) and returns its name. Building reads every
    /// document in one transaction: when a unique index meets duplicates the build fails
    /// with `DuplicateKey` and leaves nothing behind. Creating an index identical to an
    /// existing one does nothing.
    ///
    /// ```
    /// use pocketdb::{Database, IndexOptions};
    /// use serde_json::{json, Value};
    ///
    /// let db = Database::memory()?;
    /// let users = db.collection::<Value>("users");
    /// users.insert_one(json!({"email": "ada@example.com"}))?;
    /// let name = users.create_index(json!({"email": 1}), IndexOptions::default().unique(true))?;
    /// assert_eq!(name, "email_1");
    /// assert!(users.insert_one(json!({"email": "ada@example.com"})).is_err());
    /// # Ok::<(), pocketdb::Error>(())
    /// ```
    pub fn create_index(&self, keys: Value, options: IndexOptions) -> Result<String> {
        self.create_index_with_progress(keys, options, |_| {})
    }

    /// [`create_index`](Collection::create_index), reporting progress to `progress`
    /// (every 10,000 documents and at each phase).
    pub fn create_index_with_progress(
        &self,
        keys: Value,
        options: IndexOptions,
        mut progress: impl FnMut(IndexProgress),
    ) -> Result<String> {
        let model = IndexModel { keys, options };
        let mut names = self.build_indexes(std::slice::from_ref(&model), &mut progress)?;
        names
            .pop()
            .ok_or_else(|| Error::InvalidArgument("no index created".to_string()))
    }

    /// Creates several indexes in one transaction (all or none); returns their names.
    pub fn create_indexes(&self, models: &[IndexModel]) -> Result<Vec<String>> {
        self.build_indexes(models, &mut |_| {})
    }

    fn build_indexes(
        &self,
        models: &[IndexModel],
        progress: &mut dyn FnMut(IndexProgress),
    ) -> Result<Vec<String>> {
        let table = table_name(&self.name);
        let names =
            self.write(|conn| index::create_indexes(conn, &self.name, &table, models, progress))?;
        if models
            .iter()
            .any(|m| m.options.expire_after_seconds.is_some())
        {
            self.db.inner.indexes.ttl.ensure_started(&self.db);
        }
        Ok(names)
    }

    /// The collection's indexes, `_id_` first (an absent collection has none).
    pub fn list_indexes(&self) -> Result<Vec<IndexInfo>> {
        self.read(
            |conn| {
                let mut out = vec![IndexInfo {
                    name: "_id_".to_string(),
                    keys: serde_json::json!({"_id": 1}),
                    unique: true,
                    sparse: false,
                    partial_filter_expression: None,
                    expire_after_seconds: None,
                    multikey: false,
                }];
                out.extend(self.indexes(conn)?.defs.iter().map(|d| d.info()));
                Ok(out)
            },
            Vec::new,
        )
    }

    /// Drops the index named `name` (or whose key specification, as JSON text, is
    /// `name`). `IndexNotFound` when there is none; `_id_` cannot be dropped.
    pub fn drop_index(&self, name: &str) -> Result<()> {
        validate_collection_name(&self.name)?;
        self.refuse_spread()?;
        self.db.write(|conn| {
            if !self.db.has_collection(conn, &self.name)? {
                return Err(Error::IndexNotFound {
                    collection: self.name.to_string(),
                    name: name.to_string(),
                });
            }
            index::drop_index(conn, &self.name, name)
        })
    }

    /// Drops every index but `_id_`; returns how many were dropped.
    pub fn drop_indexes(&self) -> Result<usize> {
        validate_collection_name(&self.name)?;
        self.refuse_spread()?;
        self.db.write(|conn| {
            if !self.db.has_collection(conn, &self.name)? {
                return Ok(0);
            }
            index::drop_all(conn, &self.name)
        })
    }

    /// Deletes the documents a TTL index says have expired, now; returns how many.
    /// Each deletion is logged in the change log like any delete.
    pub fn expire_now(&self) -> Result<u64> {
        validate_collection_name(&self.name)?;
        self.refuse_spread()?;
        self.db.write(|conn| {
            if !self.db.has_collection(conn, &self.name)? {
                return Ok(0);
            }
            let set = self.indexes(conn)?;
            let table = table_name(&self.name);
            index::expire_collection(conn, &set, &table, changes::now_millis(), |conn, rid| {
                match self.row_by_rid(conn, rid)? {
                    Some(row) => self.delete_row(conn, &row),
                    None => Ok(()),
                }
            })
        })
    }

    fn row_by_rid(&self, conn: &Connection, rid: i64) -> Result<Option<Row>> {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT id, rev, doc FROM {} WHERE rid = ?1",
            table_name(&self.name)
        ))?;
        let mut rows = stmt.query([rid])?;
        match rows.next()? {
            Some(r) => Ok(Some(Row {
                rid,
                key: r.get(0)?,
                rev: r.get(1)?,
                doc: plan::stored_doc(conn, r.get_ref(2)?)?,
            })),
            None => Ok(None),
        }
    }

    // ----- internals -------------------------------------------------------------------

    /// Rewrites, in one write transaction, the documents with a row id above `after` (at
    /// most `limit` of them, in row-id order): each one for which `rewrite` says true is
    /// stored again unchanged, as a replacement, so the plugins' `before_write` hooks
    /// see it (key rotation re-encrypts that way). Returns how many were rewritten and
    /// the last row id seen (`None` when there were no more rows).
    #[cfg(feature = "encryption")]
    pub(crate) fn rewrite_page(
        &self,
        after: i64,
        limit: usize,
        mut rewrite: impl FnMut(&Value) -> Result<bool>,
    ) -> Result<(usize, Option<i64>)> {
        validate_collection_name(&self.name)?;
        self.refuse_spread()?;
        self.db.write(|conn| {
            if !self.db.has_collection(conn, &self.name)? {
                return Ok((0, None));
            }
            let plan = Plan::new(Filter::all());
            let (rows, last) = plan.fetch_page(conn, &self.name, after, limit)?;
            let mut rewritten = 0;
            for row in &rows {
                if rewrite(&row.doc)? {
                    self.store_updated(conn, row, &row.doc, ChangeOp::Replace)?;
                    rewritten += 1;
                }
            }
            Ok((rewritten, last))
        })
    }

    /// A filter built by the fluent builder, re-parsed from its JSON form after the
    /// plugins' `before_read` hooks when plugins are registered (they rewrite JSON).
    fn plugin_filter(&self, filter: Filter, json: Value) -> Result<Filter> {
        if self.db.has_plugins() {
            self.user_filter(json)
        } else {
            Ok(filter)
        }
    }

    /// Parses a filter given by the caller, after the plugins' `before_read` hooks.
    pub(crate) fn user_filter(&self, mut filter: Value) -> Result<Filter> {
        self.db.before_read(&self.name, &mut filter)?;
        parse_filter(&filter)
    }

    fn read<R>(
        &self,
        f: impl FnOnce(&Connection) -> Result<R>,
        absent: impl FnOnce() -> R,
    ) -> Result<R> {
        validate_collection_name(&self.name)?;
        self.refuse_spread()?;
        self.db.expire_due(&self.name)?;
        self.db.read(|conn| {
            if !self.db.has_collection(conn, &self.name)? {
                return Ok(absent());
            }
            f(conn)
        })
    }

    pub(crate) fn read_rows(
        &self,
        plan: &Plan,
        after: i64,
        limit: usize,
    ) -> Result<(Vec<Row>, Option<i64>)> {
        let started = std::time::Instant::now();
        let out = self.read(
            |conn| plan.fetch_page(conn, &self.name, after, limit),
            || (Vec::new(), None),
        );
        self.db
            .observe_read(&self.name, &plan.filter, started.elapsed());
        out
    }

    /// The collection's indexes as `conn` sees them.
    pub(crate) fn indexes(&self, conn: &Connection) -> Result<Arc<IndexSet>> {
        self.db.inner.indexes.get(conn, &self.name)
    }

    /// A plan for `filter` using the collection's indexes (through the plan cache).
    pub(crate) fn plan(&self, conn: &Connection, filter: Filter) -> Result<Plan> {
        let set = self.indexes(conn)?;
        Ok(self
            .db
            .inner
            .plans
            .plan(&self.name, &set, filter, None, None)?
            .plan)
    }

    /// A plan for a read sorted by `sort` (through the plan cache), with the index set
    /// it was built from (empty when the collection does not exist).
    pub(crate) fn read_plan(
        &self,
        filter: Filter,
        hint: Option<&Value>,
        sort: Option<&SortSpec>,
    ) -> Result<(plan_cache::CachedPlan, Arc<IndexSet>)> {
        validate_collection_name(&self.name)?;
        self.refuse_spread()?;
        if hint.is_none() && plan::is_id_only(&filter) {
            // Point reads by `_id` skip the index catalog (a read transaction of its own).
            return Ok((
                plan_cache::CachedPlan {
                    plan: Plan::new(filter),
                    order_by: None,
                    cache: PlanCacheUse::Bypass,
                },
                Arc::new(IndexSet::default()),
            ));
        }
        self.db.read(|conn| {
            let set = if self.db.has_collection(conn, &self.name)? {
                self.indexes(conn)?
            } else {
                Arc::new(IndexSet::default())
            };
            let plan = self
                .db
                .inner
                .plans
                .plan(&self.name, &set, filter, hint, sort)
                .map_err(|e| self.name_index_error(e))?;
            Ok((plan, set))
        })
    }

    /// Plans `filter` (see [`Collection::read_plan`]) and runs `f` with the plan, in one
    /// read transaction on a reader connection: the plan and `f` see the same index
    /// catalog and data. `absent` answers when the collection does not exist.
    ///
    /// On a read-only reader that has read the catalog before, the plan is first built
    /// from the index set cached for the generation it read then and `f` runs at once,
    /// each statement in autocommit mode; SQLite's data version then tells whether they
    /// all read the snapshot the generation was read in (see [`index::DbIndexes::confirm`]).
    /// Only when the catalog may have changed is the result dropped and the query planned
    /// again and run in one read transaction. So `f` may run twice: it must only read, and
    /// read through `conn` at least once when it succeeds.
    pub(crate) fn read_planned<R>(
        &self,
        filter: Filter,
        hint: Option<&Value>,
        sort: Option<&SortSpec>,
        f: impl Fn(&Connection, plan_cache::CachedPlan) -> Result<R>,
        absent: impl FnOnce() -> R,
    ) -> Result<R> {
        validate_collection_name(&self.name)?;
        self.refuse_spread()?;
        self.db.expire_due(&self.name)?;
        let id_only = hint.is_none() && plan::is_id_only(&filter);
        // Point reads by `_id` need no catalog read: one statement, no transaction.
        let transaction = !id_only;
        self.db.read_stamped(|conn, mut stamp| {
            if let Some(st) = stamp.as_deref_mut() {
                if transaction && conn.is_autocommit() {
                    if let Some(out) = self.read_optimistic(conn, st, &filter, hint, sort, &f)? {
                        return Ok(out);
                    }
                }
            }
            in_read_transaction(conn, transaction, || {
                let exists = self.db.has_collection(conn, &self.name)?;
                if !exists && hint.is_none() {
                    return Ok(absent());
                }
                if id_only {
                    let cached = plan_cache::CachedPlan {
                        plan: Plan::new(filter),
                        order_by: None,
                        cache: PlanCacheUse::Bypass,
                    };
                    return f(conn, cached);
                }
                if !exists {
                    // Planned only to report a bad hint.
                    self.plan_with(&Arc::new(IndexSet::default()), filter, hint, sort)?;
                    return Ok(absent());
                }
                let indexes = &self.db.inner.indexes;
                let set = match stamp {
                    Some(st) => indexes.get_stamped(conn, &self.name, st)?,
                    None => indexes.get(conn, &self.name)?,
                };
                let cached = self.plan_with(&set, filter, hint, sort)?;
                f(conn, cached)
            })
        })
    }

    /// The fast path of [`Collection::read_planned`]: `None` when the collection is not
    /// known to exist, nothing is cached for `stamp`, the attempt failed (the plan may
    /// have been stale; the caller tries again and reports a lasting error), or the
    /// catalog may have changed.
    fn read_optimistic<R>(
        &self,
        conn: &Connection,
        stamp: &mut index::CatalogStamp,
        filter: &Filter,
        hint: Option<&Value>,
        sort: Option<&SortSpec>,
        f: &impl Fn(&Connection, plan_cache::CachedPlan) -> Result<R>,
    ) -> Result<Option<R>> {
        let Some(set) = self.db.inner.indexes.cached(&self.name, stamp) else {
            return Ok(None);
        };
        if !self.db.has_collection(conn, &self.name)? {
            return Ok(None);
        }
        let attempt = self
            .plan_with(&set, filter.clone(), hint, sort)
            .and_then(|cached| f(conn, cached));
        match attempt {
            Ok(out) if index::DbIndexes::confirm(conn, stamp)? => Ok(Some(out)),
            _ => Ok(None),
        }
    }

    /// The plan for `filter` against `set`, through the plan cache.
    fn plan_with(
        &self,
        set: &Arc<IndexSet>,
        filter: Filter,
        hint: Option<&Value>,
        sort: Option<&SortSpec>,
    ) -> Result<plan_cache::CachedPlan> {
        self.db
            .inner
            .plans
            .plan(&self.name, set, filter, hint, sort)
            .map_err(|e| self.name_index_error(e))
    }

    fn name_index_error(&self, e: Error) -> Error {
        match e {
            Error::IndexNotFound { name, .. } => Error::IndexNotFound {
                collection: self.name.to_string(),
                name,
            },
            other => other,
        }
    }

    /// Runs `f` on a reader connection when the collection exists.
    pub(crate) fn read_with<R>(
        &self,
        f: impl FnOnce(&Connection) -> Result<R>,
        absent: impl FnOnce() -> R,
    ) -> Result<R> {
        self.read(f, absent)
    }

    /// [`write`](Self::write) for a job owning its data (see [`Database::write_owned`]).
    fn write_owned(&self, job: crate::engine::OwnedJob) -> Result<()> {
        validate_collection_name(&self.name)?;
        self.refuse_spread()?;
        let coll = self.clone();
        let result = self.db.write_owned(Box::new(move |conn| {
            coll.db.ensure_collection(conn, &coll.name)?;
            coll.purge_expired_in(conn)?;
            job(conn)
        }));
        match &result {
            Ok(_) => self.db.mark_known(&self.name),
            Err(_) => self.db.forget(&self.name),
        }
        result
    }

    pub(crate) fn write<R>(&self, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        validate_collection_name(&self.name)?;
        self.refuse_spread()?;
        let result = self.db.write(|conn| {
            self.db.ensure_collection(conn, &self.name)?;
            self.purge_expired_in(conn)?;
            f(conn)
        });
        match &result {
            Ok(_) => self.db.mark_known(&self.name),
            // The transaction may have created the table and then rolled back.
            Err(_) => self.db.forget(&self.name),
        }
        result
    }

    /// Prepares a document of the collection's type for insertion, reading it in place
    /// when it is a `serde_json::Value` (no copy) and no plugin may rewrite it.
    fn prepare_item(&self, doc: &T) -> Result<PreparedDoc> {
        if !self.db.has_plugins() {
            if let Some(Value::Object(map)) = (doc as &dyn Any).downcast_ref::<Value>() {
                return self.prepare_ref(map);
            }
        }
        self.prepare_owned(to_document(doc)?)
    }

    /// Prepares a document given as an owned map.
    fn prepare_owned(&self, doc: Map<String, Value>) -> Result<PreparedDoc> {
        if self.db.has_plugins() {
            self.prepare_insert(doc)
        } else {
            self.prepare_ref(&doc)
        }
    }

    /// Prepares a borrowed document whose `_id`, when it has none, is `generated` (or a
    /// new ObjectId): read in place without plugins, copied for them.
    fn prepare_borrowed(
        &self,
        map: &Map<String, Value>,
        generated: Option<Value>,
    ) -> Result<PreparedDoc> {
        if !self.db.has_plugins() {
            return self.prepare_ref_with(map, generated);
        }
        let mut doc = map.clone();
        if let Some(id) = generated.filter(|_| !doc.contains_key("_id")) {
            doc.shift_insert(0, "_id".to_string(), id);
        }
        self.prepare_insert(doc)
    }

    /// [`prepare_insert`](Self::prepare_insert) without plugins, reading the document in
    /// place: the same checks, the same text, no copy of the document.
    fn prepare_ref(&self, map: &Map<String, Value>) -> Result<PreparedDoc> {
        self.prepare_ref_with(map, None)
    }

    /// [`prepare_ref`](Self::prepare_ref) with the `_id` to give a document that has
    /// none (a new ObjectId when `None`).
    fn prepare_ref_with(
        &self,
        map: &Map<String, Value>,
        generated: Option<Value>,
    ) -> Result<PreparedDoc> {
        // `_id` is usually the first field: look there before hashing.
        let given = match map.iter().next() {
            Some((k, v)) if k == "_id" => Some(v),
            _ => map.get("_id"),
        };
        let (id, id_given) = match given {
            Some(id) => {
                validate_id(id)?;
                (id.clone(), true)
            }
            None => (
                generated.unwrap_or_else(|| Value::String(new_object_id())),
                false,
            ),
        };
        // A buffered database logs the text; otherwise SQLite is handed its JSONB, so
        // that the writer does not parse text.
        if self.db.buffer().is_none() {
            let (blob, text_len) = checked_document_jsonb(&id, map)?;
            self.check_size(text_len)?;
            return Ok(PreparedDoc {
                key: Arc::from(id_key(&id)),
                id,
                body: Body::Jsonb(blob),
                doc: None,
                id_given,
            });
        }
        let (text, id_text) = checked_document_text(&id, map)?;
        self.check_size(text.len())?;
        // A string `_id`'s key is its JSON text, already written into the document's.
        let key = match (&id, id_text.and_then(|r| text.get(r))) {
            (Value::String(_), Some(key)) => Arc::from(key),
            _ => Arc::from(id_key(&id)),
        };
        Ok(PreparedDoc {
            key,
            id,
            body: Body::Text(text),
            doc: None,
            id_given,
        })
    }

    /// `DocumentTooLarge` when a document's text (`text_len` bytes) passes the
    /// configured maximum.
    fn check_size(&self, text_len: usize) -> Result<()> {
        let max = self.db.options().max_document_size;
        if text_len > max {
            return Err(Error::DocumentTooLarge {
                size: text_len,
                max,
            });
        }
        Ok(())
    }

    /// Prepares a document for insertion: `_id` checked or generated and put first, the
    /// plugins' `before_write` hooks run, field names checked, the text serialised.
    fn prepare_insert(&self, mut doc: Map<String, Value>) -> Result<PreparedDoc> {
        let id_given = doc.contains_key("_id");
        let id = ensure_id(&mut doc)?;
        let mut doc = Value::Object(doc);
        self.db
            .before_write(&self.name, WriteOp::Insert, None, &mut doc)?;
        let id = match doc.get("_id") {
            Some(v) if id_key(v) == id_key(&id) => id,
            _ => {
                return Err(Error::InvalidDocument(
                    "a plugin changed or removed _id".into(),
                ))
            }
        };
        self.check_document(&doc)?;
        let text: Arc<str> = Arc::from(serde_json::to_string(&doc)?);
        self.check_size(text.len())?;
        Ok(PreparedDoc {
            key: Arc::from(id_key(&id)),
            id,
            body: Body::Text(text),
            doc: Some(doc),
            id_given,
        })
    }

    fn check_document(&self, doc: &Value) -> Result<()> {
        validate_field_names(doc, 0)
    }

    fn insert_prepared(&self, conn: &Connection, p: &PreparedDoc) -> Result<Value> {
        Inserter::new(&self.db, conn, &self.name)?.insert(p)?;
        Ok(p.id.clone())
    }

    /// Writes the new version of a stored row after the plugins' hooks. False, writing
    /// nothing, when the hooks turned it back into the stored document (a value set to
    /// what an encrypted field already held).
    fn store_updated(
        &self,
        conn: &Connection,
        row: &Row,
        new_doc: &Value,
        op: ChangeOp,
    ) -> Result<bool> {
        let hooked = self.db.before_update(&self.name, op, &row.doc, new_doc)?;
        if hooked
            .as_ref()
            .is_some_and(|h| crate::update::identical(h, &row.doc))
        {
            return Ok(false);
        }
        self.store_hooked(conn, row, hooked.as_ref().unwrap_or(new_doc), op)?;
        Ok(true)
    }

    /// [`store_updated`](Self::store_updated) of a document the plugins' hooks already
    /// ran on (a buffered write, hooked when it was acknowledged).
    pub(crate) fn store_hooked(
        &self,
        conn: &Connection,
        row: &Row,
        new_doc: &Value,
        op: ChangeOp,
    ) -> Result<()> {
        let new_id = new_doc.get("_id").cloned().unwrap_or(Value::Null);
        if id_key(&new_id) != row.key {
            return Err(Error::update(
                if op == ChangeOp::Replace {
                    "replacement"
                } else {
                    "update"
                },
                "_id",
                "the _id field cannot be changed",
            ));
        }
        self.check_guard(&row.doc, new_doc)?;
        let body = self.updated_body(new_doc)?;
        let table = table_name(&self.name);
        let indexes = index::before_write(
            conn,
            &self.db.inner.indexes,
            &self.name,
            &table,
            Some(row.rid),
            new_doc,
        )?;
        write_row(conn, &table, row.rid, &body, row.rev + 1)?;
        if !indexes.is_empty() {
            index::after_write(conn, &indexes, row.rid, Some(&row.doc), Some(new_doc))?;
        }
        changes::record_rewrite(
            conn,
            &self.name,
            &row.key,
            op,
            row.rev + 1,
            changes::now_millis(),
            &row.doc,
            new_doc,
        )?;
        Ok(())
    }

    /// The JSONB of an updated document, checked as every stored document is.
    fn updated_body(&self, doc: &Value) -> Result<Body> {
        self.check_document(doc)?;
        let mut blob = Vec::new();
        let text_len = jsonb::encode_into(doc, &mut blob)?;
        self.check_size(text_len)?;
        Ok(Body::Jsonb(blob))
    }

    /// `update_one` with a filter that is one `_id` equality (see [`only_id`]): the row
    /// is read by its key with one statement, without planning. When no plugin hook,
    /// update guard or index needs the document as it was, the update runs on the
    /// document in place, copying only the fields it may change, and the change log's
    /// `updateDescription` is computed from those fields. The outcome (document,
    /// revision, change-log entry, counts) is the one [`update_in`](Self::update_in)
    /// gives.
    fn update_by_id(
        &self,
        conn: &Connection,
        filter: &Filter,
        id: &Value,
        update: &Update,
        upsert: bool,
    ) -> Result<UpdateResult> {
        let table = table_name(&self.name);
        let key = id_key(id);
        let found = {
            let mut stmt =
                conn.prepare_cached(&format!("SELECT rid, rev, doc FROM {table} WHERE id = ?1"))?;
            let mut rows = stmt.query([&key])?;
            match rows.next()? {
                Some(r) => Some((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    plan::stored_doc(conn, r.get_ref(2)?)?,
                )),
                None => None,
            }
        };
        let now = changes::now_millis();
        let Some((rid, rev, mut doc)) = found else {
            return self.upsert_if(conn, filter, update, upsert, now);
        };
        let ctx = ApplyContext {
            filter,
            is_insert: false,
            now_millis: now,
        };
        let matched = UpdateResult {
            matched_count: 1,
            ..UpdateResult::default()
        };
        let plain = !update.is_replacement()
            && self.guard.is_none()
            && !self.db.has_plugins()
            && self.indexes(conn)?.is_empty();
        if plain {
            match update.apply_tracked(&mut doc, &ctx)? {
                Tracked::Unchanged => return Ok(matched),
                Tracked::Changed(fields) => {
                    let body = self.updated_body(&doc)?;
                    write_row(conn, &table, rid, &body, rev + 1)?;
                    changes::record_update(
                        conn,
                        &self.name,
                        &key,
                        rev + 1,
                        changes::now_millis(),
                        &UpdateDescription::between_fields(&fields.before, &fields.after),
                    )?;
                    return Ok(UpdateResult {
                        modified_count: 1,
                        ..matched
                    });
                }
                Tracked::Untracked => {}
            }
        }
        let row = Row { rid, key, rev, doc };
        let mut new_doc = row.doc.clone();
        self.db.reveal_for_update(&self.name, &mut new_doc)?;
        if !update.apply(&mut new_doc, &ctx)? {
            return Ok(matched);
        }
        let op = if update.is_replacement() {
            ChangeOp::Replace
        } else {
            ChangeOp::Update
        };
        if !self.store_updated(conn, &row, &new_doc, op)? {
            return Ok(matched);
        }
        Ok(UpdateResult {
            modified_count: 1,
            ..matched
        })
    }

    /// What an update that matched nothing does: inserts the upsert document when
    /// `upsert` is set.
    fn upsert_if(
        &self,
        conn: &Connection,
        filter: &Filter,
        update: &Update,
        upsert: bool,
        now: i64,
    ) -> Result<UpdateResult> {
        let mut result = UpdateResult::default();
        if upsert {
            let doc = self.upsert_document(filter, update, now)?;
            let prepared = self.prepare_insert(doc)?;
            result.upserted_id = Some(self.insert_prepared(conn, &prepared)?);
        }
        Ok(result)
    }

    fn delete_row(&self, conn: &Connection, row: &Row) -> Result<()> {
        let mut stmt = conn.prepare_cached(&format!(
            "DELETE FROM {} WHERE rid = ?1",
            table_name(&self.name)
        ))?;
        stmt.execute([row.rid])?;
        let indexes = self.indexes(conn)?;
        if !indexes.is_empty() {
            index::after_write(conn, &indexes, row.rid, Some(&row.doc), None)?;
        }
        changes::record(
            conn,
            &self.name,
            &row.key,
            ChangeOp::Delete,
            row.rev,
            changes::now_millis(),
        )?;
        Ok(())
    }

    fn update_in(
        &self,
        conn: &Connection,
        filter: &Filter,
        update: &Update,
        upsert: bool,
        multi: bool,
    ) -> Result<UpdateResult> {
        let plan = self.plan(conn, filter.clone())?;
        let now = changes::now_millis();
        let ctx = ApplyContext {
            filter,
            is_insert: false,
            now_millis: now,
        };
        let op = if update.is_replacement() {
            ChangeOp::Replace
        } else {
            ChangeOp::Update
        };
        let mut result = UpdateResult::default();
        let mut after = 0;
        'pages: loop {
            let page = if multi || !plan.exact { PAGE } else { 1 };
            let (rows, last) = plan.fetch_page(conn, &self.name, after, page)?;
            for row in rows {
                result.matched_count += 1;
                let mut doc = row.doc.clone();
                self.db.reveal_for_update(&self.name, &mut doc)?;
                if update.apply(&mut doc, &ctx)? && self.store_updated(conn, &row, &doc, op)? {
                    result.modified_count += 1;
                }
                if !multi {
                    break 'pages;
                }
            }
            match last {
                Some(l) => after = l,
                None => break,
            }
        }
        if result.matched_count == 0 {
            return self.upsert_if(conn, filter, update, upsert, now);
        }
        Ok(result)
    }

    /// The document an upsert that matched nothing inserts: the seed the filter gives
    /// (every equality for an operator update, only `_id` for a replacement, as MongoDB
    /// does) with the update applied as on an insert.
    pub(crate) fn upsert_document(
        &self,
        filter: &Filter,
        update: &Update,
        now: i64,
    ) -> Result<Map<String, Value>> {
        let mut doc = if update.is_replacement() {
            crate::update::replacement_seed(filter)?
        } else {
            upsert_seed(filter)?
        };
        let ctx = ApplyContext {
            filter,
            is_insert: true,
            now_millis: now,
        };
        update.apply(&mut doc, &ctx)?;
        match doc {
            Value::Object(map) => Ok(map),
            _ => Err(Error::InvalidDocument(
                "upsert produced a non-document".to_string(),
            )),
        }
    }

    fn delete_in(&self, conn: &Connection, filter: &Filter, multi: bool) -> Result<DeleteResult> {
        let plan = self.plan(conn, filter.clone())?;
        let mut deleted = 0;
        let mut after = 0;
        loop {
            let page = if multi || !plan.exact { PAGE } else { 1 };
            let (rows, last) = plan.fetch_page(conn, &self.name, after, page)?;
            for row in rows {
                self.delete_row(conn, &row)?;
                deleted += 1;
                if !multi {
                    return Ok(DeleteResult { deleted_count: 1 });
                }
            }
            match last {
                Some(l) => after = l,
                None => {
                    return Ok(DeleteResult {
                        deleted_count: deleted,
                    })
                }
            }
        }
    }

    fn modify_one(
        &self,
        filter: Value,
        update: Option<Update>,
        options: &FindOneAndModifyOptions,
    ) -> Result<FindAndModifyOutcome<T>> {
        let filter = self.user_filter(filter)?;
        let sort = options.sort.as_ref().map(SortSpec::parse).transpose()?;
        let projection = options
            .projection
            .as_ref()
            .map(Projection::parse)
            .transpose()?;
        let out = self.write(|conn| {
            let plan = self.plan(conn, filter.clone())?;
            let target = match &sort {
                Some(sort) if !sort.keys.is_empty() => {
                    let mut rows = plan.fetch_all(conn, &self.name)?;
                    rows.sort_by(|a, b| sort.compare(&a.doc, &b.doc));
                    rows.into_iter().next()
                }
                _ => first_row(&plan, conn, &self.name)?,
            };
            let now = changes::now_millis();
            match (target, update.as_ref()) {
                (None, Some(update)) if options.upsert => {
                    let doc = self.upsert_document(&filter, update, now)?;
                    let prepared = self.prepare_insert(doc)?;
                    let id = self.insert_prepared(conn, &prepared)?;
                    let doc = match options.return_document {
                        ReturnDocument::Before => None,
                        ReturnDocument::After => Some(prepared.body.parse()?),
                    };
                    Ok((doc, false, Some(id)))
                }
                (None, _) => Ok((None, false, None)),
                (Some(row), None) => {
                    self.delete_row(conn, &row)?;
                    Ok((Some(row.doc), false, None))
                }
                (Some(row), Some(update)) => {
                    let ctx = ApplyContext {
                        filter: &filter,
                        is_insert: false,
                        now_millis: now,
                    };
                    let mut doc = row.doc.clone();
                    self.db.reveal_for_update(&self.name, &mut doc)?;
                    if update.apply(&mut doc, &ctx)? {
                        let op = if update.is_replacement() {
                            ChangeOp::Replace
                        } else {
                            ChangeOp::Update
                        };
                        self.store_updated(conn, &row, &doc, op)?;
                    }
                    let doc = match options.return_document {
                        ReturnDocument::Before => row.doc,
                        ReturnDocument::After => doc,
                    };
                    Ok((Some(doc), true, None))
                }
            }
        })?;
        let (doc, updated_existing, upserted_id) = out;
        let document = doc
            .map(|mut doc| {
                self.db.after_read(&self.name, &mut doc)?;
                let doc = match &projection {
                    Some(p) => p.apply(&doc),
                    None => doc,
                };
                from_document(doc)
            })
            .transpose()?;
        Ok(FindAndModifyOutcome {
            document,
            updated_existing,
            upserted_id,
        })
    }

    fn bulk_one(
        &self,
        conn: &Connection,
        index: usize,
        model: &WriteModel,
        result: &mut BulkWriteResult,
    ) -> Result<()> {
        let add = |r: UpdateResult, result: &mut BulkWriteResult| {
            result.matched_count += r.matched_count;
            result.modified_count += r.modified_count;
            if let Some(id) = r.upserted_id {
                result.upserted_count += 1;
                result.upserted_ids.insert(index, id);
            }
        };
        match model {
            WriteModel::InsertOne { document } => {
                let doc = match document {
                    Value::Object(map) => map.clone(),
                    _ => {
                        return Err(Error::InvalidDocument(
                            "a document must be a JSON object".to_string(),
                        ))
                    }
                };
                let prepared = self.prepare_insert(doc)?;
                let id = self.insert_prepared(conn, &prepared)?;
                result.inserted_count += 1;
                result.inserted_ids.insert(index, id);
            }
            WriteModel::UpdateOne {
                filter,
                update,
                options,
            }
            | WriteModel::UpdateMany {
                filter,
                update,
                options,
            } => {
                let multi = matches!(model, WriteModel::UpdateMany { .. });
                let update = parse_operator_update(update, options.array_filters.as_deref())?;
                let filter = self.user_filter(filter.clone())?;
                let r = self.update_in(conn, &filter, &update, options.upsert, multi)?;
                add(r, result);
            }
            WriteModel::ReplaceOne {
                filter,
                replacement,
                upsert,
            } => {
                let update = parse_replacement(replacement)?;
                let filter = self.user_filter(filter.clone())?;
                let r = self.update_in(conn, &filter, &update, *upsert, false)?;
                add(r, result);
            }
            WriteModel::DeleteOne { filter } | WriteModel::DeleteMany { filter } => {
                let multi = matches!(model, WriteModel::DeleteMany { .. });
                let filter = self.user_filter(filter.clone())?;
                result.deleted_count += self.delete_in(conn, &filter, multi)?.deleted_count;
            }
        }
        Ok(())
    }
}

/// Stores a new version of row `rid` of `table`.
fn write_row(conn: &Connection, table: &str, rid: i64, body: &Body, rev: i64) -> Result<()> {
    let mut stmt = conn.prepare_cached(&format!(
        "UPDATE {table} SET doc = jsonb(?1), rev = ?2 WHERE rid = ?3"
    ))?;
    stmt.execute(rusqlite::params![body, rev, rid])?;
    Ok(())
}

/// The `_id` of a filter that is exactly one `_id` equality (on a value other than an
/// array): the `id` column's unique index answers it exactly, with no plan.
fn only_id(filter: &Filter) -> Option<&Value> {
    match filter {
        Filter::Field {
            path,
            cond: Cond::Eq(v),
        } if path.len() == 1 && path.first() == "_id" && !v.is_array() => Some(v),
        Filter::And(children) if children.len() == 1 => only_id(&children[0]),
        _ => None,
    }
}

fn first_row(plan: &Plan, conn: &Connection, name: &str) -> Result<Option<Row>> {
    let mut after = 0;
    loop {
        let (rows, last) = plan.fetch_page(conn, name, after, if plan.exact { 1 } else { PAGE })?;
        if let Some(row) = rows.into_iter().next() {
            return Ok(Some(row));
        }
        match last {
            Some(l) => after = l,
            None => return Ok(None),
        }
    }
}

/// A document validated and serialised for insertion.
struct PreparedDoc {
    id: Value,
    /// The canonical key of `id` ([`id_key`]), shared with the buffer when buffered.
    key: Arc<str>,
    /// The document, `_id` first, as it is handed on.
    body: Body,
    /// The document as stored, when a plugin produced it; otherwise it is read back
    /// from `body` only if an index needs it.
    doc: Option<Value>,
    /// True when the caller gave the `_id` (a generated one needs no duplicate check).
    id_given: bool,
}

/// The serialised form of a prepared document.
pub(crate) enum Body {
    /// JSON text: what a buffer log holds (shared with the buffer), turned into JSONB
    /// by SQLite's `jsonb()` when it is stored.
    Text(Arc<str>),
    /// The JSONB SQLite stores, built on the preparing thread
    /// ([`jsonb::encode_into`]'s bytes), which `jsonb()` passes through unparsed.
    Jsonb(Vec<u8>),
}

impl Body {
    /// The document it holds.
    fn parse(&self) -> Result<Value> {
        match self {
            Body::Text(text) => Ok(serde_json::from_str(text)?),
            Body::Jsonb(blob) => jsonb::decode(blob).ok_or_else(|| {
                Error::Serde("a prepared document's JSONB does not decode".to_string())
            }),
        }
    }

    /// Its JSON text (written out for a JSONB body).
    fn into_text(self) -> Result<Arc<str>> {
        match self {
            Body::Text(text) => Ok(text),
            Body::Jsonb(_) => Ok(Arc::from(serde_json::to_string(&self.parse()?)?)),
        }
    }
}

impl rusqlite::ToSql for Body {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Body::Text(text) => ValueRef::Text(text.as_bytes()),
            Body::Jsonb(blob) => ValueRef::Blob(blob),
        }))
    }
}

/// Inserts into one collection inside one write transaction, sharing the work that does
/// not depend on the document: the statements, the index set and the timestamp of the
/// change-log entries. The index set is loaded once (and again after a refused
/// document, whose flags may have changed it), so an inserter may only be used while
/// nothing else writes the collection in the transaction (an update could turn an index
/// multikey behind its back).
pub(crate) struct Inserter<'c> {
    conn: &'c Connection,
    db: Database,
    name: Arc<str>,
    table: String,
    indexes: Arc<IndexSet>,
    insert: rusqlite::CachedStatement<'c>,
    /// Records the change-log entries ([`changes::recorder`]).
    change: rusqlite::CachedStatement<'c>,
    now: i64,
}

impl<'c> Inserter<'c> {
    /// An inserter into `name`, whose table must exist.
    fn new(db: &Database, conn: &'c Connection, name: &Arc<str>) -> Result<Inserter<'c>> {
        let table = table_name(name);
        let insert = conn.prepare_cached(&format!(
            "INSERT INTO {table}(id, doc, rev) VALUES (?1, jsonb(?2), 1)"
        ))?;
        Ok(Inserter {
            conn,
            db: db.clone(),
            name: name.clone(),
            indexes: db.inner.indexes.get(conn, name)?,
            insert,
            change: changes::recorder(conn)?,
            table,
            now: changes::now_millis(),
        })
    }

    /// The collection inserted into.
    fn name(&self) -> &str {
        &self.name
    }

    /// Inserts one document (its row, its index entries, its change-log entry).
    fn insert(&mut self, p: &PreparedDoc) -> Result<()> {
        let parsed;
        let doc = match (&p.doc, self.indexes.is_empty()) {
            (_, true) => None,
            (Some(doc), false) => Some(doc),
            (None, false) => {
                parsed = p.body.parse()?;
                Some(&parsed)
            }
        };
        let duplicate_id = || Error::DuplicateKey {
            collection: self.name.to_string(),
            index: "_id_".to_string(),
            key: format!("{{ _id: {} }}", p.id),
        };
        if let Some(doc) = doc {
            match index::before_write_with(
                self.conn,
                &self.db.inner.indexes,
                self.indexes.clone(),
                &self.name,
                &self.table,
                None,
                doc,
            ) {
                Ok(set) => self.indexes = set,
                Err(e) => {
                    // The flags are turned on before the checks that refused the
                    // document: it may have made an index multikey (and created its side
                    // table) in this transaction, which a batch going on after it (an
                    // unordered insert) must write the next documents' keys to.
                    self.indexes = self.db.inner.indexes.get(self.conn, &self.name)?;
                    if !matches!(e, Error::DuplicateKey { .. }) {
                        return Err(e);
                    }
                    // The `_id` index comes first, as in MongoDB: a document that repeats
                    // both its `_id` and a unique key is refused for its `_id`.
                    let taken = self
                        .conn
                        .prepare_cached(&format!("SELECT 1 FROM {} WHERE id = ?1", self.table))?
                        .exists([&*p.key])?;
                    return Err(if taken { duplicate_id() } else { e });
                }
            }
        }
        match self.insert.execute(rusqlite::params![&*p.key, &p.body]) {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => return Err(duplicate_id()),
            Err(e) => return Err(e.into()),
        }
        if let Some(doc) = doc {
            if !self.indexes.is_empty() {
                let rid = self.conn.last_insert_rowid();
                index::after_write(self.conn, &self.indexes, rid, None, Some(doc))?;
            }
        }
        changes::record_prepared(
            self.conn,
            &mut self.change,
            &self.name,
            &p.key,
            ChangeOp::Insert,
            1,
            self.now,
        )
    }
}

/// The JSON text of a document with `_id` first (as MongoDB stores it), `id` being the
/// `_id` to write: the map's own, or a generated one when it has none.
#[cfg(test)]
fn document_text(id: &Value, map: &Map<String, Value>) -> Result<String> {
    let (text, _) = checked_document_text(id, map)?;
    Ok(text.to_string())
}

/// Largest serialisation buffer a thread keeps between documents.
const MAX_KEPT_SCRATCH: usize = 1 << 20;

thread_local! {
    /// The buffer documents are serialised into before their text is copied out at its
    /// exact size (a fresh buffer per document would start small and grow).
    static TEXT_SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// [`validate_fields`] and the document's JSON text with `_id` first (serde_json's compact
/// text, byte for byte) in one pass over the document, which is the cost of preparing an
/// insert: the document is read once. Returns the text and where `_id`'s value is in it.
fn checked_document_text(
    id: &Value,
    map: &Map<String, Value>,
) -> Result<(Arc<str>, Option<std::ops::Range<usize>>)> {
    TEXT_SCRATCH.with(|scratch| {
        let mut fresh = Vec::new();
        // A re-entrant call (not expected: serialisation calls no user code) gets its own.
        let mut borrowed = scratch.try_borrow_mut();
        let out: &mut Vec<u8> = match borrowed.as_mut() {
            Ok(v) => v,
            Err(_) => &mut fresh,
        };
        out.clear();
        let id_text;
        if map.keys().next().is_some_and(|k| k == "_id") {
            id_text = write_checked_fields(map, 0, out)?;
        } else {
            out.extend_from_slice(b"{\"_id\":");
            let start = out.len();
            write_checked(id, 1, out)?;
            id_text = Some(start..out.len());
            for (k, v) in map {
                if k == "_id" {
                    continue;
                }
                out.push(b',');
                write_checked_field(k, v, 0, out)?;
            }
            out.push(b'}');
        }
        let text: Arc<str> =
            Arc::from(std::str::from_utf8(out).map_err(|e| Error::Serde(e.to_string()))?);
        // One very large document does not pin its buffer's size for the thread's life.
        if out.capacity() > MAX_KEPT_SCRATCH {
            *out = Vec::new();
        }
        Ok((text, id_text))
    })
}

/// Writes an object's fields as [`validate_fields`] checks them (the object at `depth`).
/// Returns where the value of a leading `_id` field is in `out`.
fn write_checked_fields(
    map: &Map<String, Value>,
    depth: usize,
    out: &mut Vec<u8>,
) -> Result<Option<std::ops::Range<usize>>> {
    check_depth(depth)?;
    out.push(b'{');
    let mut id_text = None;
    for (i, (k, v)) in map.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let value_start = write_checked_field(k, v, depth, out)?;
        if i == 0 && k == "_id" {
            id_text = Some(value_start..out.len());
        }
    }
    out.push(b'}');
    Ok(id_text)
}

/// Writes `"k":v` after checking the name; returns where the value starts.
fn write_checked_field(k: &str, v: &Value, depth: usize, out: &mut Vec<u8>) -> Result<usize> {
    check_field_name(k)?;
    serde_json::to_writer(&mut *out, k)?;
    out.push(b':');
    let start = out.len();
    write_checked(v, depth + 1, out)?;
    Ok(start)
}

/// Writes a value as [`validate_field_names`] checks it.
fn write_checked(value: &Value, depth: usize, out: &mut Vec<u8>) -> Result<()> {
    check_depth(depth)?;
    match value {
        Value::Object(map) => {
            // A `{$date: …}` value is the one object whose field may start with '$'.
            if is_date_object(map, value) {
                serde_json::to_writer(&mut *out, value)?;
                return Ok(());
            }
            write_checked_fields(map, depth, out).map(|_| ())
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_checked(item, depth + 1, out)?;
            }
            out.push(b']');
            Ok(())
        }
        scalar => Ok(serde_json::to_writer(&mut *out, scalar)?),
    }
}

/// [`checked_document_text`]'s checks with the document written as the JSONB SQLite
/// makes of that text ([`jsonb::encode_into`]) rather than as text: returns the blob
/// and the length the text would have (what the size limit counts).
fn checked_document_jsonb(id: &Value, map: &Map<String, Value>) -> Result<(Vec<u8>, usize)> {
    TEXT_SCRATCH.with(|scratch| {
        let mut fresh = Vec::new();
        let mut borrowed = scratch.try_borrow_mut();
        let out: &mut Vec<u8> = match borrowed.as_mut() {
            Ok(v) => v,
            Err(_) => &mut fresh,
        };
        out.clear();
        let text_len = if map.keys().next().is_some_and(|k| k == "_id") {
            jsonb_checked_fields(map, 0, out)?
        } else {
            let start = jsonb::begin_container(out);
            let mut len = 2 + jsonb::push_str("_id", out) + 1 + jsonb_checked(id, 1, out)?;
            for (k, v) in map {
                if k == "_id" {
                    continue;
                }
                len += 1 + jsonb_checked_field(k, v, 0, out)?;
            }
            jsonb::end_container(out, start, jsonb::OBJECT);
            len
        };
        let blob = out.clone();
        if out.capacity() > MAX_KEPT_SCRATCH {
            *out = Vec::new();
        }
        Ok((blob, text_len))
    })
}

/// [`write_checked_fields`] as JSONB; returns the length of the object's text.
fn jsonb_checked_fields(
    map: &Map<String, Value>,
    depth: usize,
    out: &mut Vec<u8>,
) -> Result<usize> {
    check_depth(depth)?;
    let start = jsonb::begin_container(out);
    let mut len = 2 + map.len().saturating_sub(1);
    for (k, v) in map {
        len += jsonb_checked_field(k, v, depth, out)?;
    }
    jsonb::end_container(out, start, jsonb::OBJECT);
    Ok(len)
}

/// [`write_checked_field`] as JSONB; returns the length of `"k":v`.
fn jsonb_checked_field(k: &str, v: &Value, depth: usize, out: &mut Vec<u8>) -> Result<usize> {
    check_field_name(k)?;
    Ok(jsonb::push_str(k, out) + 1 + jsonb_checked(v, depth + 1, out)?)
}

/// [`write_checked`] as JSONB; returns the length of the value's text.
fn jsonb_checked(value: &Value, depth: usize, out: &mut Vec<u8>) -> Result<usize> {
    check_depth(depth)?;
    match value {
        Value::Object(map) => {
            if is_date_object(map, value) {
                return jsonb::encode_into(value, out);
            }
            jsonb_checked_fields(map, depth, out)
        }
        Value::Array(items) => {
            let start = jsonb::begin_container(out);
            let mut len = 2 + items.len().saturating_sub(1);
            for item in items {
                len += jsonb_checked(item, depth + 1, out)?;
            }
            jsonb::end_container(out, start, jsonb::ARRAY);
            Ok(len)
        }
        scalar => jsonb::push_scalar(scalar, out),
    }
}

pub(crate) fn parse_operator_update(
    update: &Value,
    array_filters: Option<&[Value]>,
) -> Result<Update> {
    let parsed = Update::parse(update, array_filters)?;
    if parsed.is_replacement() {
        return Err(Error::update(
            "update",
            "",
            "update document requires update operators ($set, $inc, …); use replace_one to replace a document",
        ));
    }
    Ok(parsed)
}

pub(crate) fn parse_replacement(replacement: &Value) -> Result<Update> {
    let parsed = Update::parse(replacement, None)?;
    if !parsed.is_replacement() {
        return Err(Error::update(
            "replacement",
            "",
            "replacement document must not contain update operators",
        ));
    }
    Ok(parsed)
}

pub(crate) fn to_document<T: Serialize + 'static>(doc: &T) -> Result<Map<String, Value>> {
    // The untyped form needs no serde round trip: a clone is several times faster.
    let value = match (doc as &dyn Any).downcast_ref::<Value>() {
        Some(v) => v.clone(),
        None => serde_json::to_value(doc).map_err(|e| Error::Serde(e.to_string()))?,
    };
    match value {
        Value::Object(map) => Ok(map),
        other => Err(not_an_object(&other)),
    }
}

/// A document a sharded collection routed to a member: borrowed from the request (with
/// the `_id` generated for it when it had none) or, converted from another type, owned.
pub(crate) type Routed<'a> = (Cow<'a, Map<String, Value>>, Option<Value>);

/// The error for a document that is not a JSON object.
pub(crate) fn not_an_object(value: &Value) -> Error {
    Error::InvalidDocument(format!(
        "a document must be a JSON object, got {}",
        crate::value::BsonType::of(value).name()
    ))
}

pub(crate) fn from_document<T: DeserializeOwned + 'static>(doc: Value) -> Result<T> {
    let mut slot = Some(doc);
    if let Some(typed) = (&mut slot as &mut dyn Any).downcast_mut::<Option<T>>() {
        // `T` is `Value`: hand the document over as it is.
        if let Some(v) = typed.take() {
            return Ok(v);
        }
    }
    match slot {
        Some(doc) => serde_json::from_value(doc).map_err(|e| Error::Serde(e.to_string())),
        None => Err(Error::Serde("document already taken".to_string())),
    }
}

/// Field names may not start with `$`, contain `.` or NUL: queries could not address them.
/// The one exception is a MongoDB extended-JSON date, `{"$date": …}` (see
/// [`crate::parse_date_millis`]), stored as it is.
fn validate_field_names(value: &Value, depth: usize) -> Result<()> {
    check_depth(depth)?;
    match value {
        Value::Object(map) if is_date_object(map, value) => Ok(()),
        Value::Object(map) => validate_fields(map, depth),
        Value::Array(items) => items
            .iter()
            .try_for_each(|v| validate_field_names(v, depth + 1)),
        _ => Ok(()),
    }
}

/// `InvalidDocument` past the nesting MongoDB allows (100 levels).
fn check_depth(depth: usize) -> Result<()> {
    if depth > 100 {
        return Err(Error::InvalidDocument(
            "document nesting is deeper than 100 levels".to_string(),
        ));
    }
    Ok(())
}

/// True for the one object whose field may start with '$': an extended-JSON date,
/// `{"$date": …}` (`value` is `map` as a value).
fn is_date_object(map: &Map<String, Value>, value: &Value) -> bool {
    map.len() == 1
        && map.keys().all(|k| k.starts_with('$'))
        && crate::index::parse_date_millis(value).is_some()
}

/// [`validate_field_names`] on the fields of an object (not itself a `$date`).
fn validate_fields(map: &Map<String, Value>, depth: usize) -> Result<()> {
    check_depth(depth)?;
    for (k, v) in map {
        check_field_name(k)?;
        if matches!(v, Value::Object(_) | Value::Array(_)) {
            validate_field_names(v, depth + 1)?;
        }
    }
    Ok(())
}

/// A stored field name may not start with `$` nor contain `.` or NUL.
fn check_field_name(k: &str) -> Result<()> {
    let bytes = k.as_bytes();
    if bytes.first() == Some(&b'$') || bytes.iter().any(|&b| b == b'.' || b == 0) {
        return Err(Error::InvalidDocument(format!(
            "field name '{k}' may not start with '$' or contain '.' or NUL"
        )));
    }
    Ok(())
}

/// Values at a dotted path, descending into arrays as `distinct` does; array leaves
/// contribute their elements.
fn collect_path_values(value: &Value, path: &[String], out: &mut Vec<Value>) {
    let Some((head, rest)) = path.split_first() else {
        match value {
            Value::Array(items) => out.extend(items.iter().cloned()),
            other => out.push(other.clone()),
        }
        return;
    };
    match value {
        Value::Object(map) => {
            if let Some(v) = map.get(head) {
                collect_path_values(v, rest, out);
            }
        }
        Value::Array(items) => {
            if let Some(i) = FieldPath::as_index(head) {
                if let Some(v) = items.get(i) {
                    collect_path_values(v, rest, out);
                }
            }
            for item in items {
                if item.is_object() {
                    collect_path_values(item, path, out);
                }
            }
        }
        _ => {}
    }
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    )
}

/// Errors that concern one document of a bulk request (reported per document) rather
/// than the database as a whole (which abort the request).
pub(crate) fn is_document_error(e: &Error) -> bool {
    !matches!(
        e,
        Error::Sqlite(_)
            | Error::Io(_)
            | Error::Incompatible(_)
            | Error::Commit(_)
            | Error::Buffer(_)
    )
}

impl<T: Document> Collection<T> {
    /// A fluent query on this collection, compiling to the same filter AST as
    /// [`find`](Collection::find):
    ///
    /// ```
    /// use pocketdb::{Database, SortOrder};
    /// use serde_json::{json, Value};
    ///
    /// let db = Database::memory()?;
    /// let users = db.collection::<Value>("users");
    /// users.insert_many([json!({"name": "b", "age": 20}), json!({"name": "a", "age": 30})])?;
    /// let adults = users
    ///     .query()
    ///     .where_("age").gte(18)
    ///     .sort("name", SortOrder::Asc)
    ///     .limit(10)
    ///     .to_vec()?;
    /// assert_eq!(adults[0]["name"], "a");
    /// # Ok::<(), pocketdb::Error>(())
    /// ```
    pub fn query(&self) -> QueryBuilder<Collection<T>> {
        QueryBuilder::with_target(self.clone())
    }
}

impl<T: Document> QueryBuilder<Collection<T>> {
    /// Runs the query: a lazy cursor over the results.
    pub fn find(self) -> Result<Cursor<T>> {
        let json = self.filter_json();
        let (coll, q) = self.into_parts()?;
        let filter = coll.plugin_filter(q.filter, json)?;
        let mut cursor = Cursor::new(coll, filter).skip(q.skip);
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

    /// The first result, if any.
    pub fn first(self) -> Result<Option<T>> {
        self.limit(1).find()?.next().transpose()
    }

    /// Number of matching documents (skip and limit ignored).
    pub fn count(self) -> Result<u64> {
        let json = self.filter_json();
        let (coll, mut q) = self.into_parts()?;
        q.filter = coll.plugin_filter(q.filter, json)?;
        if coll.buffer_pending() {
            return coll.count_merged(q.filter);
        }
        coll.read(
            |conn| coll.plan(conn, q.filter)?.count(conn, &coll.name),
            || 0,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The text of the in-place preparation is the one of the owned path (`_id` moved
    /// or added first, then serialised).
    #[test]
    fn document_text_puts_id_first_like_ensure_id() {
        let docs = [
            json!({"_id": 1, "a": 1}),
            json!({"a": {"b": [1, "x\"y"]}, "_id": {"k": 2.5}, "z": null}),
            json!({"a": "é", "b": true}),
            json!({}),
        ];
        for doc in docs {
            let Value::Object(map) = doc else { panic!() };
            let mut owned = map.clone();
            let id = ensure_id(&mut owned).unwrap();
            let expected = serde_json::to_string(&owned).unwrap();
            assert_eq!(document_text(&id, &map).unwrap(), expected);
        }
    }

    /// The one-pass text and checks agree with serde_json's text and
    /// `validate_fields`, including the nesting limit and `$date` values.
    #[test]
    fn checked_text_is_serde_json_text_and_checks_as_validate_fields() {
        fn nested(levels: usize, leaf: Value) -> Value {
            (0..levels).fold(leaf, |v, i| {
                if i % 2 == 0 {
                    json!([v])
                } else {
                    json!({ "n": v })
                }
            })
        }
        let docs = [
            json!({"_id": "a\"b\u{1}é", "x": 1.5, "y": [1, -2, 3.25e100, null, true]}),
            json!({"x": {"$date": "2024-01-01T00:00:00Z"}, "_id": 7}),
            json!({"_id": {"k": [1, {"z": "w"}]}, "a": {"b": {"c": []}}, "e": {}}),
            json!({"x": {"$date": "not a date"}}),
            json!({"_id": 1, "x": {"$gt": 1}}),
            json!({"a.b": 1}),
            json!({"a": [{"b\u{0}": 1}]}),
            json!({"_id": {"a.b": 1}}),
            json!({"n": nested(99, json!(1))}),
            json!({"n": nested(100, json!(1))}),
            json!({"n": nested(100, json!({}))}),
            json!({"n": nested(101, json!([]))}),
            json!({"s": "\u{7f}\u{1f}/\\", "u": 18446744073709551615u64, "i": -9007199254740993i64}),
        ];
        for doc in docs {
            let Value::Object(map) = doc else { panic!() };
            let mut owned = map.clone();
            let id = ensure_id(&mut owned).unwrap();
            let expected =
                validate_fields(&map, 0).map(|()| serde_json::to_string(&owned).unwrap());
            let got = checked_document_text(&id, &map);
            // The JSONB form: what SQLite makes of the same text, the same errors.
            let blob = checked_document_jsonb(&id, &map);
            match (&expected, &blob) {
                (Ok(e), Ok((blob, len))) => {
                    assert_eq!(*len, e.len());
                    assert_eq!(blob, &jsonb::encode(&Value::Object(owned.clone())).unwrap());
                    let conn = Connection::open_in_memory().unwrap();
                    let sqlite: Vec<u8> = conn
                        .query_row("SELECT jsonb(?1)", [e], |r| r.get(0))
                        .unwrap();
                    assert_eq!(blob, &sqlite);
                }
                (Err(e), Err(g)) => assert_eq!(e.to_string(), g.to_string()),
                _ => panic!("{map:?}: {expected:?} vs {:?}", blob.map(|b| b.1)),
            }
            match (&expected, &got) {
                (Ok(e), Ok((text, id_range))) => {
                    assert_eq!(&**text, e.as_str());
                    let id_range = id_range.clone().unwrap();
                    assert_eq!(&text[id_range], serde_json::to_string(&id).unwrap());
                }
                (Err(e), Err(g)) => assert_eq!(e.to_string(), g.to_string()),
                _ => panic!("{map:?}: {expected:?} vs {:?}", got.map(|g| g.0)),
            }
        }
    }

    #[test]
    fn a_large_document_leaves_later_texts_intact() {
        let big = json!({"_id": "b", "s": "x".repeat(MAX_KEPT_SCRATCH + 10)});
        let small = json!({"_id": "s", "n": 1});
        for doc in [&small, &big, &small] {
            let Value::Object(map) = doc else { panic!() };
            let (text, _) = checked_document_text(&doc["_id"], map).unwrap();
            assert_eq!(&*text, serde_json::to_string(doc).unwrap());
        }
        let cap = TEXT_SCRATCH.with(|s| s.borrow().capacity());
        assert!(cap <= MAX_KEPT_SCRATCH, "{cap}");
    }

    #[test]
    fn in_place_preparation_checks_what_the_owned_one_checks() {
        let db = Database::memory().unwrap();
        let c = db.collection::<Value>("c");
        let bad = [
            json!({"_id": [1]}),
            json!({"_id": {"$a": 1}}),
            json!({"a.b": 1}),
            json!({"a": [{"$x": 1}]}),
            json!({"_id": {"a.b": 1}}),
        ];
        for doc in bad {
            let Value::Object(map) = doc else { panic!() };
            assert!(c.prepare_ref(&map).is_err(), "{map:?}");
            assert!(c.prepare_insert(map).is_err());
        }
        let ok = json!({"when": {"$date": "2024-01-01T00:00:00Z"}, "_id": 7});
        let Value::Object(map) = ok else { panic!() };
        let p = c.prepare_ref(&map).unwrap();
        let q = c.prepare_insert(map).unwrap();
        assert!(matches!(p.body, Body::Jsonb(_)));
        assert_eq!(p.body.parse().unwrap(), q.body.parse().unwrap());
        assert_eq!((p.key, p.id_given), (q.key, q.id_given));
        let big = json!({"s": "x".repeat(64)});
        let db = Database::memory_with(crate::Options::default().max_document_size(32)).unwrap();
        let Value::Object(map) = big else { panic!() };
        let c = db.collection::<Value>("c");
        assert!(matches!(
            c.prepare_ref(&map),
            Err(Error::DocumentTooLarge { .. })
        ));
    }
}
