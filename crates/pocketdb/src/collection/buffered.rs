//! Collections of a database in [`Durability::Buffered`](crate::Durability::Buffered)
//! mode: which operations are buffered, how reads merge the buffer with the stored
//! documents, and how the applier turns buffered writes into ordinary row writes.
//!
//! Buffered (acknowledged once in the buffer log):
//! - `insert_one` / `insert_many`. A given `_id` is checked against the buffer and the
//!   stored documents before the write is acknowledged, so `DuplicateKey` is reported as
//!   in `Sync` mode; generated ids are not checked (they are unique by construction).
//! - `update_one`, `replace_one` and `delete_one` whose filter pins one `_id` (`{_id: v}`
//!   alone or beside other conditions). The current document is read from the buffer or
//!   the store, the filter and the update are evaluated in memory, and the resulting
//!   whole document (or a delete) is buffered. An optimistic check under the buffer lock
//!   (the document's buffered version, and the applier's generation) makes concurrent
//!   read-modify-writes of one document serialise instead of losing updates.
//!
//! Everything else (`update_many`, `delete_many`, writes with other filters, the
//! find-and-modify family, `bulk_write`, collection and index management) waits until
//! the buffer is applied and runs synchronously while buffered writers wait: slower, never
//! wrong.
//!
//! Unique secondary indexes are checked before a write is acknowledged, as `Sync` mode
//! checks them: the document's keys in each unique index (sparse, partial and multikey
//! rules applied) are looked up among the stored documents (one snapshot, read before
//! the buffer lock, redone if the applier moved writes meanwhile) and claimed in the
//! buffer under its lock, where the other buffered documents' claims are. A stored
//! holder counts unless a buffered write replaces it (then its buffered version's
//! claims decide), so a key freed by a buffered update or delete can be taken at once.
//! The applier checks again; a write refused there (only possible when another process
//! wrote the file meanwhile, or for a document past the key limit of a compound index
//! over several arrays, not checked before) is dropped and reported through
//! [`BufferEvent::Error`](crate::BufferEvent) and `BufferStats::dropped`. What writers
//! check is remembered per collection; the applier reads the index catalog's generation
//! in every batch and, when another handle changed an index, makes writers look again.
//!
//! Reads (`find`, `find_one`, `count_documents`, `distinct`, `estimated_count`) merge the
//! buffered state of the collection over the stored documents: a buffered version of a
//! document shadows the stored one and a buffered delete hides it. A read by `_id` looks
//! up only those ids; other reads take a snapshot of the collection's buffered documents
//! (so they cost O(buffered documents of the collection) more).

use super::plan::{stored_doc, Plan, Row};
use super::{
    count_rows, in_read_transaction, is_document_error, Body, Collection, DeleteResult, Document,
    InsertManyResult, Inserter, PreparedDoc, UpdateResult, PAGE,
};
use crate::changes::{self, ChangeOp};
use crate::database::Database;
use crate::engine::buffer::{Appender, Buffer, Entry, Op, OpKind, WriteChecks};
use crate::engine::schema::table_name;
use crate::error::{BulkWriteFailure, Error, Result, WriteError};
use crate::id::id_key;
use crate::index::UniqueClaim;
use crate::query::{Cond, Filter, InItem};
use crate::update::{ApplyContext, Update};
use rusqlite::Connection;
use serde_json::Value;
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;

/// Keys per `IN` query of the duplicate check (SQLite allows 32,766 parameters).
const STORED_KEYS_CHUNK: usize = 1_000;

/// Up to this many keys to check, one lookup each rather than an `IN` query (whose text
/// depends on the count, so each count would be a statement of its own in the cache).
const FEW_KEYS: usize = 16;

/// What became of one document of a buffered insert.
#[derive(Clone, Copy)]
enum Outcome {
    Pushed,
    Duplicate,
    /// Another document holds its key of a unique secondary index (the claim at this
    /// position).
    Taken(usize),
    /// Its unique keys could not be computed (the error is in its claims).
    Invalid,
    /// Not attempted: an ordered insert stopped before it.
    Skipped,
}

/// A prepared document as the buffer keeps it.
pub(super) struct BufferedDoc {
    id: Value,
    key: Arc<str>,
    text: Arc<str>,
    id_given: bool,
}

impl TryFrom<PreparedDoc> for BufferedDoc {
    type Error = Error;

    fn try_from(p: PreparedDoc) -> Result<BufferedDoc> {
        Ok(BufferedDoc {
            id: p.id,
            key: p.key,
            // Prepared as text in a buffered database.
            text: p.body.into_text()?,
            id_given: p.id_given,
        })
    }
}

/// What a buffered read-modify-write does.
pub(super) enum Modify<'a> {
    /// Update operators or a replacement, with upsert.
    Update(&'a Update, bool),
    /// Delete the document.
    Delete,
}

/// What a read-modify-write reports.
pub(super) enum Modified {
    Update(UpdateResult),
    Delete(DeleteResult),
}

impl<T: Document> Collection<T> {
    /// True when the collection has buffered writes not yet applied (reads must merge).
    pub(crate) fn buffer_pending(&self) -> bool {
        self.db.buffer().is_some_and(|b| b.has_pending(&self.name))
    }

    /// Inserts in buffered mode, with `insert_many`'s ordered/unordered semantics. The
    /// documents were validated and serialised on the caller's thread; under the buffer
    /// lock each one costs an overlay lookup (given `_id`s only) and a push.
    ///
    /// A given `_id` is a duplicate when the buffer holds a live version of it, or when
    /// the buffer has no write to it and SQLite stores it. The SQLite side is read
    /// before taking the lock, with one `IN` query per request (keys the buffer already
    /// answers for are left out); the apply generation, compared under the lock, tells
    /// whether the applier moved writes from the buffer to SQLite in between, in which
    /// case the check is redone.
    pub(super) fn insert_buffered(
        &self,
        buffer: &Buffer,
        documents: Vec<Result<PreparedDoc>>,
        ordered: bool,
    ) -> Result<InsertManyResult> {
        crate::engine::schema::validate_collection_name(&self.name)?;
        self.refuse_spread()?;
        let mut failures: BTreeMap<usize, Error> = BTreeMap::new();
        let _shared = buffer.shared();
        // With a unique secondary index, each document claims its keys before it is
        // acknowledged: its parsed form is kept (parsed from the text only when the
        // preparation did not keep it); the stored holders are read on every attempt.
        // With an index over several fields, a document giving it too many keys is
        // refused here, as the applier would refuse it.
        let checks = self.write_checks(buffer)?;
        let unique = checks.unique;
        let expire = self.db.expire_after_ms(&self.name)?;
        let mut docs: Vec<Value> = Vec::new();
        let mut items: Vec<(usize, BufferedDoc)> = Vec::with_capacity(documents.len());
        for (index, prepared) in documents.into_iter().enumerate() {
            match prepared {
                Ok(mut p) => {
                    let kept = p.doc.take();
                    let d = BufferedDoc::try_from(p)?;
                    if unique || (checks.compound.is_some() && two_arrays(&d.text)) {
                        let doc = match kept {
                            Some(doc) => doc,
                            None => serde_json::from_str(&d.text)?,
                        };
                        if let Some(set) = &checks.compound {
                            if let Err(e) = crate::index::check_key_limit(set, &doc) {
                                failures.insert(index, e);
                                if ordered {
                                    break;
                                }
                                continue;
                            }
                        }
                        if unique {
                            docs.push(doc);
                        }
                    }
                    items.push((index, d));
                }
                Err(e) => {
                    failures.insert(index, e);
                    // Ordered inserts stop at the first document that cannot even be
                    // prepared.
                    if ordered {
                        break;
                    }
                }
            }
        }
        let name = self.name.clone();
        let any_given = items.iter().any(|(_, d)| d.id_given);
        let unique = unique.then_some(docs);
        let mut claims: Vec<Result<Vec<UniqueClaim>>> = Vec::new();
        let outcomes = loop {
            let (generation, unknown) = buffer.unbuffered_keys(
                &name,
                items
                    .iter()
                    .filter(|(_, d)| d.id_given)
                    .map(|(_, d)| &d.key),
            );
            let stored = match &unique {
                None => self.stored_keys(&unknown)?,
                Some(docs) => {
                    let keyed: Vec<(&str, &Value)> = items
                        .iter()
                        .zip(docs)
                        .map(|((_, d), doc)| (&*d.key, doc))
                        .collect();
                    let (stored, found) = self.stored_keys_and_claims(&unknown, &keyed)?;
                    claims = found;
                    stored
                }
            };
            let attempt = buffer.append(|tx| {
                if (any_given || unique.is_some()) && tx.apply_gen() != generation {
                    // Writes moved from the buffer to SQLite since the keys were read.
                    return Ok(None);
                }
                let now = changes::now_millis();
                let expires = expire.map(|ms| now.saturating_add(ms));
                let mut outcomes = vec![Outcome::Skipped; items.len()];
                for (i, ((_, d), outcome)) in items.iter().zip(outcomes.iter_mut()).enumerate() {
                    if d.id_given {
                        let taken = match tx.lookup(&name, &d.key) {
                            Some(entry) => entry.live_doc(now).is_some(),
                            None => stored.contains(&*d.key),
                        };
                        if taken {
                            *outcome = Outcome::Duplicate;
                            if ordered {
                                break;
                            }
                            continue;
                        }
                    }
                    let texts = match claims.get(i) {
                        None => Vec::new(),
                        Some(Err(_)) => {
                            *outcome = Outcome::Invalid;
                            if ordered {
                                break;
                            }
                            continue;
                        }
                        Some(Ok(c)) => {
                            if let Some(at) = taken(tx, &name, &d.key, c, now) {
                                *outcome = Outcome::Taken(at);
                                if ordered {
                                    break;
                                }
                                continue;
                            }
                            c.iter().map(|c| c.text.clone()).collect()
                        }
                    };
                    tx.push(
                        OpKind::Insert,
                        &name,
                        d.key.clone(),
                        Some(d.text.clone()),
                        expires,
                        texts,
                    );
                    *outcome = Outcome::Pushed;
                }
                Ok(Some(outcomes))
            })?;
            if let Some(done) = attempt {
                break done;
            }
        };
        // In index order: collected into the map at the end, which builds it in bulk
        // rather than by one search per insert.
        let mut inserted = Vec::with_capacity(items.len());
        let mut claims = claims.into_iter();
        for ((index, d), outcome) in items.into_iter().zip(outcomes) {
            let claim = claims.next();
            match outcome {
                Outcome::Taken(at) => {
                    if let Some(c) = claim
                        .and_then(|c| c.ok())
                        .and_then(|c| c.into_iter().nth(at))
                    {
                        failures.insert(index, self.taken_error(c));
                    }
                }
                Outcome::Invalid => {
                    if let Some(Err(e)) = claim {
                        failures.insert(index, e);
                    }
                }
                Outcome::Pushed => {
                    inserted.push((index, d.id));
                }
                Outcome::Duplicate => {
                    failures.insert(
                        index,
                        Error::DuplicateKey {
                            collection: self.name.to_string(),
                            index: "_id_".to_string(),
                            key: format!("{{ _id: {} }}", d.id),
                        },
                    );
                }
                Outcome::Skipped => {}
            }
        }
        if ordered {
            // Only the first failure of an ordered request is reported.
            let first = failures.keys().next().copied();
            failures.retain(|i, _| Some(*i) == first);
        }
        if failures.is_empty() {
            return Ok(InsertManyResult {
                inserted_ids: inserted.into_iter().collect(),
            });
        }
        Err(Error::BulkWrite(Box::new(BulkWriteFailure {
            inserted_ids: inserted.into_iter().collect(),
            write_errors: failures
                .into_iter()
                .map(|(index, error)| WriteError { index, error })
                .collect(),
            ..Default::default()
        })))
    }

    /// Runs a single-document write in buffered mode when the database buffers and the
    /// filter pins one `_id`; `None` otherwise (the caller runs it synchronously).
    pub(super) fn modify_buffered(
        &self,
        filter: &Filter,
        action: Modify<'_>,
    ) -> Result<Option<Modified>> {
        let Some(buffer) = self.db.buffer() else {
            return Ok(None);
        };
        let Some(id) = single_id(filter) else {
            return Ok(None);
        };
        crate::engine::schema::validate_collection_name(&self.name)?;
        self.refuse_spread()?;
        let key = id_key(id);
        let name = self.name.clone();
        let _shared = buffer.shared();
        let checks = match action {
            Modify::Update(..) => self.write_checks(buffer)?,
            Modify::Delete => WriteChecks::default(),
        };
        let unique = checks.unique;
        let expire = self.db.expire_after_ms(&self.name)?;
        loop {
            let (entry, generation) = buffer.lookup(&self.name, &key);
            let current = match &entry {
                // An expired buffered document is gone, as a stored one would be.
                Some(e) => e
                    .live_doc(changes::now_millis())
                    .map(|d| serde_json::from_str(d))
                    .transpose()?,
                None => self.stored_doc(&key)?,
            };
            // A document with this `_id` that the rest of the filter rejects is not
            // updated, and an upsert would collide with it.
            let exists = current.is_some();
            let current = current.filter(|d| filter.matches(d));
            let (result, op) = self.modified(filter, &action, &key, current, exists)?;
            let Some((kind, doc)) = op else {
                return Ok(Some(result));
            };
            let seen = entry.map(|e| e.seq);
            let claims = match &doc {
                Some(text) if unique || (checks.compound.is_some() && two_arrays(text)) => {
                    let new_doc: Value = serde_json::from_str(text)?;
                    if let Some(set) = &checks.compound {
                        crate::index::check_key_limit(set, &new_doc)?;
                    }
                    if unique {
                        let mut claims = self.claims(&[(key.as_str(), &new_doc)])?;
                        claims.pop().transpose()?.unwrap_or_default()
                    } else {
                        Vec::new()
                    }
                }
                _ => Vec::new(),
            };
            let done = buffer.append(|tx| {
                let now = tx.lookup(&name, &key).map(|e| e.seq);
                let moved = tx.apply_gen() != generation;
                if now != seen || (moved && (seen.is_none() || unique)) {
                    return Ok(false);
                }
                let now = changes::now_millis();
                if let Some(at) = taken(tx, &name, &key, &claims, now) {
                    return Err(self.taken_error(claims[at].clone()));
                }
                let texts = claims.iter().map(|c| c.text.clone()).collect();
                let expires = match (&doc, expire) {
                    (Some(_), Some(ms)) => Some(now.saturating_add(ms)),
                    _ => None,
                };
                tx.push(
                    kind,
                    &name,
                    Arc::from(key.as_str()),
                    doc.clone(),
                    expires,
                    texts,
                );
                Ok(true)
            })?;
            if done {
                return Ok(Some(result));
            }
        }
    }

    /// The outcome of `action` on the current matching document, and the write to buffer.
    #[allow(clippy::type_complexity)]
    fn modified(
        &self,
        filter: &Filter,
        action: &Modify<'_>,
        key: &str,
        current: Option<Value>,
        exists: bool,
    ) -> Result<(Modified, Option<(OpKind, Option<Arc<str>>)>)> {
        let now = changes::now_millis();
        match (action, current) {
            (Modify::Delete, None) => {
                Ok((Modified::Delete(DeleteResult { deleted_count: 0 }), None))
            }
            (Modify::Delete, Some(_)) => Ok((
                Modified::Delete(DeleteResult { deleted_count: 1 }),
                Some((OpKind::Delete, None)),
            )),
            (Modify::Update(update, upsert), None) => {
                if !*upsert {
                    return Ok((Modified::Update(UpdateResult::default()), None));
                }
                let doc = self.upsert_document(filter, update, now)?;
                let prepared = self.prepare_insert(doc)?;
                if &*prepared.key != key {
                    return Err(Error::update(
                        "update",
                        "_id",
                        "the _id field cannot be changed",
                    ));
                }
                if exists {
                    return Err(Error::DuplicateKey {
                        collection: self.name.to_string(),
                        index: "_id_".to_string(),
                        key: format!("{{ _id: {} }}", prepared.id),
                    });
                }
                Ok((
                    Modified::Update(UpdateResult {
                        upserted_id: Some(prepared.id),
                        ..Default::default()
                    }),
                    Some((OpKind::Insert, Some(prepared.body.into_text()?))),
                ))
            }
            (Modify::Update(update, _), Some(doc)) => {
                let ctx = ApplyContext {
                    filter,
                    is_insert: false,
                    now_millis: now,
                };
                let hooks = self.db.has_plugins();
                let before = (self.guard.is_some() || hooks).then(|| doc.clone());
                let mut new_doc = doc;
                self.db.reveal_for_update(&self.name, &mut new_doc)?;
                if !update.apply(&mut new_doc, &ctx)? {
                    return Ok((
                        Modified::Update(UpdateResult {
                            matched_count: 1,
                            ..Default::default()
                        }),
                        None,
                    ));
                }
                let (kind, operator) = if update.is_replacement() {
                    (OpKind::Replace, "replacement")
                } else {
                    (OpKind::Update, "update")
                };
                let new_id = new_doc.get("_id").cloned().unwrap_or(Value::Null);
                if id_key(&new_id) != key {
                    return Err(Error::update(
                        operator,
                        "_id",
                        "the _id field cannot be changed",
                    ));
                }
                if let Some(before) = &before {
                    // The plugins' hooks run now, as in `Sync` mode, so the buffer log
                    // holds what SQLite will (encrypted fields sealed, schemas checked
                    // before the write is acknowledged).
                    if hooks {
                        let change = if kind == OpKind::Replace {
                            ChangeOp::Replace
                        } else {
                            ChangeOp::Update
                        };
                        let hooked = self
                            .db
                            .before_update(&self.name, change, before, &new_doc)?;
                        if let Some(hooked) = hooked {
                            if crate::update::identical(&hooked, before) {
                                return Ok((
                                    Modified::Update(UpdateResult {
                                        matched_count: 1,
                                        ..Default::default()
                                    }),
                                    None,
                                ));
                            }
                            if hooked.get("_id").map(id_key).as_deref() != Some(key) {
                                return Err(Error::update(
                                    operator,
                                    "_id",
                                    "the _id field cannot be changed",
                                ));
                            }
                            new_doc = hooked;
                        }
                    }
                    if self.guard.is_some() {
                        self.check_guard(before, &new_doc)?;
                    }
                }
                self.check_document(&new_doc)?;
                let text = serde_json::to_string(&new_doc)?;
                let max = self.db.options().max_document_size;
                if text.len() > max {
                    return Err(Error::DocumentTooLarge {
                        size: text.len(),
                        max,
                    });
                }
                Ok((
                    Modified::Update(UpdateResult {
                        matched_count: 1,
                        modified_count: 1,
                        upserted_id: None,
                    }),
                    Some((kind, Some(Arc::from(text)))),
                ))
            }
        }
    }

    /// What buffered writes check before they are acknowledged: unique keys claimed
    /// when one of the collection's indexes is unique, the limit of keys per document
    /// when one spans several fields. The buffer remembers the answer until this handle
    /// changes an index.
    fn write_checks(&self, buffer: &Buffer) -> Result<WriteChecks> {
        buffer.write_checks(&self.name, || {
            let set = self.db.read(|conn| self.indexes(conn))?;
            Ok(WriteChecks {
                unique: crate::index::has_unique(&set),
                compound: crate::index::has_compound(&set).then_some(set),
            })
        })
    }

    /// The unique keys of each of `docs` (`_id` key, document), each with the stored
    /// documents holding it, read in one snapshot. A document whose keys cannot be
    /// computed gets its error.
    fn claims(&self, docs: &[(&str, &Value)]) -> Result<Vec<Result<Vec<UniqueClaim>>>> {
        let table = table_name(&self.name);
        self.db
            .read(|conn| in_read_transaction(conn, true, || self.claims_in(conn, &table, docs)))
    }

    /// [`claims`](Self::claims) on a connection, inside the caller's read snapshot.
    fn claims_in(
        &self,
        conn: &Connection,
        table: &str,
        docs: &[(&str, &Value)],
    ) -> Result<Vec<Result<Vec<UniqueClaim>>>> {
        // Read with the holders: the applier may have turned an index multikey since
        // the caller looked.
        let set = self.indexes(conn)?;
        let mut out = Vec::with_capacity(docs.len());
        for (key, doc) in docs {
            match crate::index::unique_claims(conn, table, &set, key, doc) {
                Err(e) if !is_document_error(&e) => return Err(e),
                claims => out.push(claims),
            }
        }
        Ok(out)
    }

    /// [`stored_keys`](Self::stored_keys) and [`claims`](Self::claims) in one read
    /// snapshot (one read lock, where each took its own).
    fn stored_keys_and_claims(
        &self,
        keys: &[Arc<str>],
        docs: &[(&str, &Value)],
    ) -> Result<StoredAndClaims> {
        let table = table_name(&self.name);
        self.read(
            |conn| {
                in_read_transaction(conn, true, || {
                    let stored = stored_keys_in(conn, &table, keys)?;
                    Ok((stored, self.claims_in(conn, &table, docs)?))
                })
            },
            // No collection: nothing stored, no index to claim keys of.
            || {
                (
                    HashSet::new(),
                    docs.iter().map(|_| Ok(Vec::new())).collect(),
                )
            },
        )
    }

    /// The error of a write whose unique key another document holds.
    fn taken_error(&self, claim: UniqueClaim) -> Error {
        Error::DuplicateKey {
            collection: self.name.to_string(),
            index: claim.index,
            key: claim.shown,
        }
    }

    /// The stored document with `_id` key `key`, ignoring the buffer.
    fn stored_doc(&self, key: &str) -> Result<Option<Value>> {
        let row = self.read(|conn| row_by_key(conn, &self.name, key), || None)?;
        Ok(row.map(|r| r.doc))
    }

    /// Which of `keys` are stored (ignoring the buffer), see [`stored_keys_in`].
    fn stored_keys(&self, keys: &[Arc<str>]) -> Result<HashSet<String>> {
        if keys.is_empty() {
            return Ok(HashSet::new());
        }
        let table = table_name(&self.name);
        self.read(
            |conn| {
                // One statement reads in its own snapshot; several share one.
                in_read_transaction(conn, keys.len() > 1, || stored_keys_in(conn, &table, keys))
            },
            HashSet::new,
        )
    }

    /// The number of documents matching `filter` with buffered writes merged in. When
    /// SQLite answers the filter exactly: stored rows counted in SQL, less those a
    /// buffered write replaces, plus the buffered documents that match (no stored
    /// document is read). Otherwise the merged rows are counted one by one.
    pub(super) fn count_merged(&self, filter: Filter) -> Result<u64> {
        let Some(buffer) = self.db.buffer() else {
            return count_rows(self.merged_rows(Plan::new(filter))?);
        };
        let overlay = buffer.snapshot(&self.name);
        let now = changes::now_millis();
        let keys = serde_json::to_string(&overlay.iter().map(|(k, _)| k).collect::<Vec<_>>())?;
        let stored = self.read(
            |conn| {
                in_read_transaction(conn, true, || {
                    let plan = self.plan(conn, filter.clone())?;
                    if !plan.exact {
                        return Ok(None);
                    }
                    let all = plan.count(conn, &self.name)?;
                    let sql = format!(
                        "SELECT count(*) FROM {} WHERE ({}) AND id IN (SELECT value FROM json_each(?))",
                        plan.target_sql(&self.name),
                        plan.where_sql
                    );
                    let mut params = plan.params.clone();
                    params.push(rusqlite::types::Value::Text(keys.clone()));
                    let shadowed: i64 = conn.prepare_cached(&sql)?.query_row(
                        rusqlite::params_from_iter(params.iter()),
                        |r| r.get(0),
                    )?;
                    Ok(Some(all.saturating_sub(u64::try_from(shadowed).unwrap_or(0))))
                })
            },
            || Some(0),
        )?;
        let Some(mut n) = stored else {
            return count_rows(self.merged_rows(Plan::new(filter))?);
        };
        for (_, entry) in overlay {
            let Some(text) = entry.live_doc(now) else {
                continue;
            };
            let doc: Value = serde_json::from_str(text)?;
            if filter.matches(&doc) {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Every matching row with buffered writes merged in (read-your-writes), as a lazy
    /// stream: stored rows, a page at a time as the stream is consumed, except those an
    /// unapplied write shadows; then the buffered documents that match, in write order.
    /// The buffered state is read when this is called.
    pub(super) fn merged_rows(&self, plan: Plan) -> Result<MergedRows<T>> {
        let Some(buffer) = self.db.buffer() else {
            return Ok(MergedRows {
                coll: self.clone(),
                plan,
                shadowed: HashSet::new(),
                overlay: Vec::new().into_iter(),
                now: 0,
                after: Some(0),
                page: VecDeque::new(),
            });
        };
        let (overlay, all_buffered): (Vec<(String, Entry)>, bool) = match id_keys(&plan.filter) {
            Some(keys) => {
                let total = keys.len();
                let mut found: Vec<(String, Entry)> = keys
                    .into_iter()
                    .filter_map(|k| buffer.lookup(&self.name, &k).0.map(|e| (k, e)))
                    .collect();
                let all = found.len() == total;
                // In write order, as the whole overlay is.
                found.sort_by_key(|(_, e)| e.seq);
                (found, all)
            }
            None => (buffer.snapshot(&self.name), false),
        };
        Ok(MergedRows {
            coll: self.clone(),
            plan,
            shadowed: overlay.iter().map(|(k, _)| k.clone()).collect(),
            overlay: overlay.into_iter(),
            now: changes::now_millis(),
            after: (!all_buffered).then_some(0),
            page: VecDeque::new(),
        })
    }
}

/// What [`Collection::stored_keys_and_claims`] reads: the stored keys, and each
/// document's unique claims.
type StoredAndClaims = (HashSet<String>, Vec<Result<Vec<UniqueClaim>>>);

/// Which of `keys` are stored in `table`. A few are looked up one by one; more are
/// first held against the largest stored key, which with increasing `_id`s (ObjectIds,
/// counters) leaves none to look up, and the rest are read with one `IN` query per
/// [`STORED_KEYS_CHUNK`] keys.
fn stored_keys_in(conn: &Connection, table: &str, keys: &[Arc<str>]) -> Result<HashSet<String>> {
    let mut found = HashSet::new();
    let lookup = |found: &mut HashSet<String>, candidates: &[&str]| -> Result<()> {
        let mut stmt = conn.prepare_cached(&format!("SELECT 1 FROM {table} WHERE id = ?1"))?;
        for key in candidates {
            if stmt.exists([key])? {
                found.insert(key.to_string());
            }
        }
        Ok(())
    };
    if keys.len() <= FEW_KEYS {
        let candidates: Vec<&str> = keys.iter().map(|k| &**k).collect();
        lookup(&mut found, &candidates)?;
        return Ok(found);
    }
    // The `id` column is TEXT with SQLite's binary collation: `max` orders keys
    // bytewise, as `str`'s `Ord` does.
    let max: Option<String> = conn
        .prepare_cached(&format!("SELECT max(id) FROM {table}"))?
        .query_row([], |r| r.get(0))?;
    let Some(max) = max else {
        return Ok(found);
    };
    let candidates: Vec<&str> = keys
        .iter()
        .map(|k| &**k)
        .filter(|k| *k <= max.as_str())
        .collect();
    if candidates.len() <= FEW_KEYS {
        lookup(&mut found, &candidates)?;
        return Ok(found);
    }
    for chunk in candidates.chunks(STORED_KEYS_CHUNK) {
        let marks = vec!["?"; chunk.len()].join(",");
        let mut stmt =
            conn.prepare_cached(&format!("SELECT id FROM {table} WHERE id IN ({marks})"))?;
        let params = rusqlite::params_from_iter(chunk.iter());
        let rows = stmt.query_map(params, |r| r.get::<_, String>(0))?;
        for row in rows {
            found.insert(row?);
        }
    }
    Ok(found)
}

/// False when the JSON text `text` holds fewer than two arrays (fewer than two `[`), so
/// it cannot give any index too many keys and need not be parsed to be checked.
fn two_arrays(text: &str) -> bool {
    text.find('[')
        .is_some_and(|at| text[at + 1..].contains('['))
}

/// The first of `claims` (of the document with `_id` key `own`) that another document
/// holds: a buffered one in its latest version, or a stored one that no buffered write
/// replaces (a replaced one holds what its buffered version claims).
fn taken(
    tx: &Appender<'_>,
    name: &str,
    own: &str,
    claims: &[UniqueClaim],
    now: i64,
) -> Option<usize> {
    claims.iter().position(|c| {
        tx.claimants(name, &c.text, now).any(|k| k != own)
            || c.stored.iter().any(|k| tx.lookup(name, k).is_none())
    })
}

/// The stream of [`Collection::merged_rows`].
pub(crate) struct MergedRows<T> {
    coll: Collection<T>,
    plan: Plan,
    /// Keys whose stored rows the buffered state replaces.
    shadowed: HashSet<String>,
    /// The buffered state read when the stream was made, in write order.
    overlay: std::vec::IntoIter<(String, Entry)>,
    /// When the buffered state was read (ms since the Unix epoch): buffered documents
    /// expired by then read as deleted.
    now: i64,
    /// Where the next page of stored rows starts; `None` once they are read.
    after: Option<i64>,
    page: VecDeque<Row>,
}

impl<T: Document> MergedRows<T> {
    fn next_row(&mut self) -> Result<Option<Row>> {
        loop {
            if let Some(row) = self.page.pop_front() {
                return Ok(Some(row));
            }
            if let Some(after) = self.after {
                let (page, last) = self.coll.read_rows(&self.plan, after, PAGE)?;
                let shadowed = &self.shadowed;
                self.page.extend(
                    page.into_iter()
                        .filter(|r| !shadowed.contains(r.key.as_str())),
                );
                self.after = last;
                continue;
            }
            for (key, entry) in self.overlay.by_ref() {
                let Some(text) = entry.live_doc(self.now) else {
                    continue;
                };
                let doc: Value = serde_json::from_str(text)?;
                if self.plan.filter.matches(&doc) {
                    return Ok(Some(Row {
                        rid: i64::MAX,
                        key,
                        rev: 0,
                        doc,
                    }));
                }
            }
            return Ok(None);
        }
    }
}

impl<T: Document> Iterator for MergedRows<T> {
    type Item = Result<Row>;

    fn next(&mut self) -> Option<Result<Row>> {
        match self.next_row() {
            Ok(row) => row.map(Ok),
            Err(e) => {
                // Nothing more after an error.
                self.after = None;
                self.page.clear();
                self.overlay = Vec::new().into_iter();
                Some(Err(e))
            }
        }
    }
}

/// Applies buffered writes in one transaction through the ordinary row writes, storing
/// `last` as the applied watermark. Writes refused by a unique secondary index are
/// dropped and returned; any other error fails the batch (nothing applied).
pub(crate) fn apply_buffered(
    db: &Database,
    ops: &[Arc<Op>],
    last: u64,
) -> Result<Vec<(u64, Error)>> {
    // Fast path: no savepoints. When a write is refused, redo the batch with one
    // savepoint per write so only the refused ones are left out.
    let fast = db.write_direct(|conn| {
        if let Some(buffer) = db.buffer() {
            buffer.catalog_seen(&crate::index::current_gen(conn)?);
        }
        let mut colls = Handles::default();
        let mut inserter: Option<Inserter<'_>> = None;
        for op in ops {
            if op.kind == OpKind::Insert && op.expires.is_none() {
                // Runs of inserts into one collection share one inserter (its
                // statements and index set); any other write ends the run.
                let reuse = inserter
                    .as_ref()
                    .is_some_and(|i| i.name() == &*op.collection);
                if !reuse {
                    db.ensure_collection(conn, &op.collection)?;
                    inserter = Some(Inserter::new(db, conn, &op.collection)?);
                }
                if let Some(ins) = inserter.as_mut() {
                    ins.insert(&buffered_insert(op)?)?;
                }
                continue;
            }
            inserter = None;
            apply_op(db, conn, colls.get(db, &op.collection), op)?;
        }
        drop(inserter);
        store_applied(conn, last)
    });
    match fast {
        Ok(()) => {
            mark_all(db, ops);
            return Ok(Vec::new());
        }
        Err(e) if !is_document_error(&e) => {
            forget_all(db, ops);
            return Err(e);
        }
        Err(_) => forget_all(db, ops),
    }
    let out = db.write_direct(|conn| {
        let mut colls = Handles::default();
        let mut dropped = Vec::new();
        for op in ops {
            conn.execute_batch("SAVEPOINT pocketdb_apply")?;
            match apply_op(db, conn, colls.get(db, &op.collection), op) {
                Ok(()) => conn.execute_batch("RELEASE pocketdb_apply")?,
                Err(e) if is_document_error(&e) => {
                    conn.execute_batch("ROLLBACK TO pocketdb_apply; RELEASE pocketdb_apply")?;
                    dropped.push((op.seq, e));
                }
                Err(e) => return Err(e),
            }
        }
        store_applied(conn, last)?;
        Ok(dropped)
    });
    match &out {
        Ok(_) => mark_all(db, ops),
        Err(_) => forget_all(db, ops),
    }
    out
}

fn mark_all(db: &Database, ops: &[Arc<Op>]) {
    let mut last: Option<&str> = None;
    for op in ops {
        if last != Some(&op.collection) {
            db.mark_known(&op.collection);
            last = Some(&op.collection);
        }
    }
}

/// Collection handles reused across a batch.
#[derive(Default)]
struct Handles {
    last: Option<Collection<Value>>,
}

impl Handles {
    fn get(&mut self, db: &Database, name: &str) -> &Collection<Value> {
        if self.last.as_ref().is_none_or(|c| c.name() != name) {
            self.last = Some(Collection::new(db.clone(), name));
        }
        // Set just above.
        self.last
            .get_or_insert_with(|| Collection::new(db.clone(), name))
    }
}

fn forget_all(db: &Database, ops: &[Arc<Op>]) {
    for op in ops {
        db.forget(&op.collection);
    }
}

fn apply_op(db: &Database, conn: &Connection, coll: &Collection<Value>, op: &Op) -> Result<()> {
    db.ensure_collection(conn, &op.collection)?;
    let Some(expires) = op.expires else {
        return store_op(conn, coll, op);
    };
    // A write to an expiring collection: the documents that had expired when it was
    // acknowledged go first (its check treated them as deleted, so its `_id` or unique
    // keys may repeat theirs), and its document expires `expire_after` from then, not
    // from now.
    let Some(ms) = db.expire_after_in(conn, &op.collection)? else {
        return store_op(conn, coll, op);
    };
    coll.purge_expired_at(conn, expires.saturating_sub(ms))?;
    store_op(conn, coll, op)?;
    if op.doc.is_some() {
        let sql = format!(
            "UPDATE {} SET expires_at = ?1 WHERE id = ?2",
            table_name(&op.collection)
        );
        conn.prepare_cached(&sql)?
            .execute(rusqlite::params![expires, &*op.key])?;
    }
    Ok(())
}

/// Stores one buffered write through the ordinary row writes.
fn store_op(conn: &Connection, coll: &Collection<Value>, op: &Op) -> Result<()> {
    let doc_text = || -> Result<&str> {
        op.doc
            .as_deref()
            .ok_or_else(|| Error::Buffer(format!("buffered write {} has no document", op.seq)))
    };
    let insert = || -> Result<()> {
        coll.insert_prepared(conn, &buffered_insert(op)?)
            .map(|_| ())
    };
    match op.kind {
        OpKind::Insert => insert(),
        OpKind::Update | OpKind::Replace => {
            let text = doc_text()?;
            match row_by_key(conn, &op.collection, &op.key)? {
                Some(row) => {
                    let change = if op.kind == OpKind::Replace {
                        ChangeOp::Replace
                    } else {
                        ChangeOp::Update
                    };
                    // The plugins' hooks ran when the write was acknowledged.
                    let doc: Value = serde_json::from_str(text)?;
                    coll.store_hooked(conn, &row, &doc, change)
                }
                None => insert(),
            }
        }
        OpKind::Delete => match row_by_key(conn, &op.collection, &op.key)? {
            Some(row) => coll.delete_row(conn, &row),
            None => Ok(()),
        },
    }
}

/// A buffered insert (or an update whose document is gone) as a prepared document.
fn buffered_insert(op: &Op) -> Result<PreparedDoc> {
    let text = op
        .doc
        .clone()
        .ok_or_else(|| Error::Buffer(format!("buffered write {} has no document", op.seq)))?;
    Ok(PreparedDoc {
        id: serde_json::from_str(&op.key)?,
        key: op.key.clone(),
        body: Body::Text(text),
        doc: None,
        id_given: true,
    })
}

fn store_applied(conn: &Connection, last: u64) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO _pocketdb_meta(key, value) VALUES ('buffer_applied_seq', ?1)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    )?;
    stmt.execute([last.to_string()])?;
    Ok(())
}

/// The stored row with `_id` key `key` (the collection's table may not exist).
fn row_by_key(conn: &Connection, collection: &str, key: &str) -> Result<Option<Row>> {
    let sql = format!(
        "SELECT rid, id, rev, doc FROM {} WHERE id = ?1",
        table_name(collection)
    );
    let mut stmt = match conn.prepare_cached(&sql) {
        Ok(s) => s,
        // The table does not exist yet: nothing stored.
        Err(rusqlite::Error::SqliteFailure(_, Some(m))) if m.contains("no such table") => {
            return Ok(None)
        }
        Err(e) => return Err(e.into()),
    };
    let mut rows = stmt.query([key])?;
    match rows.next()? {
        None => Ok(None),
        Some(r) => Ok(Some(Row {
            rid: r.get(0)?,
            key: r.get(1)?,
            rev: r.get(2)?,
            doc: stored_doc(conn, r.get_ref(3)?)?,
        })),
    }
}

/// The top-level conjuncts of a filter.
fn conjuncts(filter: &Filter) -> &[Filter] {
    match filter {
        Filter::And(children) => children,
        other => std::slice::from_ref(other),
    }
}

/// The `_id` a filter pins with a top-level equality, if any.
fn single_id(filter: &Filter) -> Option<&Value> {
    conjuncts(filter).iter().find_map(|c| match c {
        Filter::Field {
            path,
            cond: Cond::Eq(v),
        } if path.len() == 1 && path.first() == "_id" && !v.is_array() => Some(v),
        _ => None,
    })
}

/// The `_id` keys a filter is restricted to by a top-level equality or `$in`, if any,
/// each once (`{$in: [1, 1.0]}` names one document).
fn id_keys(filter: &Filter) -> Option<Vec<String>> {
    let mut keys = restricting_id_keys(filter)?;
    let mut seen = HashSet::with_capacity(keys.len());
    keys.retain(|k| seen.insert(k.clone()));
    Some(keys)
}

/// [`id_keys`] as the filter lists them, repeats included.
fn restricting_id_keys(filter: &Filter) -> Option<Vec<String>> {
    conjuncts(filter).iter().find_map(|c| match c {
        Filter::Field { path, cond } if path.len() == 1 && path.first() == "_id" => match cond {
            Cond::Eq(v) if !v.is_array() => Some(vec![id_key(v)]),
            Cond::In(items) => items
                .iter()
                .map(|i| match i {
                    InItem::Value(v) if !v.is_array() => Some(id_key(v)),
                    _ => None,
                })
                .collect(),
            _ => None,
        },
        _ => None,
    })
}
