//! Incremental backup and replication through the change log.
//!
//! [`Database::export_changes`] turns the change-log entries after a sequence number
//! into a [`ChangeSet`]: per document, its **state** at export time (the whole document,
//! or a deletion), in change-log order, plus collection drops. [`Database::apply_changes`]
//! upserts and deletes those documents by `_id` in another database.
//!
//! Applying is idempotent: entries carry whole states, so applying one twice gives the
//! same documents, and the target also records, per source database, the last sequence
//! number applied (`_pocketdb_meta`, key `applied:<source id>`) and skips entries at or
//! below it, so an older change set applied after a newer one cannot roll documents
//! back. (Revisions alone cannot order states: a document deleted and inserted again
//! starts over at revision 1.)
//!
//! ```
//! use pocketdb::Database;
//! use serde_json::{json, Value};
//!
//! let primary = Database::memory()?;
//! let replica = Database::memory()?;
//! let users = primary.collection::<Value>("users");
//! users.insert_one(json!({"_id": 1, "name": "Ada"}))?;
//! let set = primary.export_changes(0)?;
//! replica.apply_changes(&set)?;
//! let again = replica.apply_changes(&set)?; // a no-op
//! assert_eq!(again.applied, 0);
//! assert_eq!(replica.collection::<Value>("users").count_documents(json!({}))?, 1);
//! # Ok::<(), pocketdb::Error>(())
//! ```

use crate::changes::{self, ChangeOp};
use crate::collection::WriteModel;
use crate::database::Database;
use crate::engine::schema::{table_name, validate_collection_name};
use crate::error::{Error, Result};
use crate::id::id_key;
use rusqlite::{Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;

/// Change-log entries of one database after a sequence number, as document states.
/// Serialisable (serde JSON) for files and transports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeSet {
    /// Identifier of the source database (stable for its file, see
    /// [`Database::database_id`]).
    pub source: String,
    /// Name of the source database.
    pub database: String,
    /// Entries after this sequence number were exported.
    pub since: i64,
    /// Sequence number of the last change-log entry covered; the `since` of the next
    /// export.
    pub until: i64,
    /// Document states and drops, in change-log order.
    pub entries: Vec<ChangeSetEntry>,
}

/// One entry of a [`ChangeSet`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeSetEntry {
    /// Sequence number of the change-log entry this state comes from.
    pub seq: i64,
    /// Collection.
    pub collection: String,
    /// `upsert`, `delete` or `drop`.
    pub op: String,
    /// `_id` of the document (null for `drop`).
    pub id: Value,
    /// Revision of the document in the source.
    pub rev: i64,
    /// The document for `upsert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doc: Option<Value>,
}

/// What [`Database::apply_changes`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct ApplyReport {
    /// Entries applied.
    pub applied: usize,
    /// Entries skipped because an equal or newer change set was applied before.
    pub skipped: usize,
    /// Documents inserted or replaced.
    pub upserted: usize,
    /// Documents deleted (absent ones count too: the state is reached).
    pub deleted: usize,
    /// Collections dropped.
    pub dropped: usize,
}

fn current_doc(conn: &Connection, collection: &str, key: &str) -> Result<Option<(Value, i64)>> {
    if validate_collection_name(collection).is_err() {
        return Ok(None);
    }
    let exists: bool = conn.query_row(
        "SELECT EXISTS(SELECT 1 FROM _pocketdb_collections WHERE name = ?1)",
        [collection],
        |r| r.get(0),
    )?;
    if !exists {
        return Ok(None);
    }
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT doc, rev FROM {} WHERE id = ?1",
        table_name(collection)
    ))?;
    let mut rows = stmt.query([key])?;
    match rows.next()? {
        Some(r) => Ok(Some((
            crate::value::jsonb::stored_doc(conn, r.get_ref(0)?)?,
            r.get(1)?,
        ))),
        None => Ok(None),
    }
}

/// True when a batch failed on a unique secondary index (not on `_id`).
fn secondary_key_clash(error: &Error) -> bool {
    let Error::BulkWrite(failure) = error else {
        return false;
    };
    failure
        .write_errors
        .iter()
        .any(|w| matches!(&w.error, Error::DuplicateKey { index, .. } if index != "_id_"))
}

/// A batch of `_id`-pinned replacements and deletes as one removal of every document
/// it names followed by an insert of each replacement (one transaction, like any
/// `bulk_write` of one collection).
fn removed_then_inserted(models: &[WriteModel]) -> Vec<WriteModel> {
    let ids: Vec<Value> = models
        .iter()
        .filter_map(|m| match m {
            WriteModel::ReplaceOne { filter, .. } | WriteModel::DeleteOne { filter } => {
                filter.get("_id").cloned()
            }
            _ => None,
        })
        .collect();
    let mut out = vec![WriteModel::DeleteMany {
        filter: json!({"_id": {"$in": ids}}),
    }];
    out.extend(models.iter().filter_map(|m| match m {
        WriteModel::ReplaceOne { replacement, .. } => Some(WriteModel::InsertOne {
            document: replacement.clone(),
        }),
        _ => None,
    }));
    out
}

impl Database {
    /// A stable identifier of this database file, created on first use and stored in
    /// `_pocketdb_meta` (a backup copy keeps it; a restore into a file keeps that file's).
    pub fn database_id(&self) -> Result<String> {
        let existing: Option<String> = self.read(|conn| {
            Ok(conn
                .query_row(
                    "SELECT value FROM _pocketdb_meta WHERE key = 'database_id'",
                    [],
                    |r| r.get(0),
                )
                .optional()?)
        })?;
        if let Some(id) = existing {
            return Ok(id);
        }
        self.write(|conn| {
            conn.execute(
                "INSERT OR IGNORE INTO _pocketdb_meta(key, value) VALUES ('database_id', ?1)",
                [crate::id::new_object_id()],
            )?;
            Ok(conn.query_row(
                "SELECT value FROM _pocketdb_meta WHERE key = 'database_id'",
                [],
                |r| r.get(0),
            )?)
        })
    }

    /// Every change after `since` as a [`ChangeSet`] (see the
    /// [module docs](self)).
    pub fn export_changes(&self, since: i64) -> Result<ChangeSet> {
        self.export_changes_limited(since, usize::MAX)
    }

    /// Like [`export_changes`](Database::export_changes), covering at most
    /// `max_log_entries` change-log entries; continue from the set's `until`.
    pub fn export_changes_limited(&self, since: i64, max_log_entries: usize) -> Result<ChangeSet> {
        let source = self.database_id()?;
        let (until, entries) = self.read(|conn| {
            // One read transaction: the log and the documents are one snapshot.
            let tx = conn.unchecked_transaction()?;
            // A position whose changes were trimmed, or one this log never reached,
            // would give a set that silently leaves changes out.
            changes::retention::check_token(&tx, since)?;
            let log = changes::read_since(&tx, None, since, max_log_entries)?;
            let until = log.last().map(|c| c.seq).unwrap_or(since);
            let mut last: HashMap<(String, String), usize> = HashMap::new();
            for (i, c) in log.iter().enumerate() {
                if c.op != ChangeOp::Drop {
                    last.insert((c.collection.clone(), id_key(&c.id)), i);
                }
            }
            let mut entries = Vec::new();
            for (i, c) in log.iter().enumerate() {
                if c.op == ChangeOp::Drop {
                    entries.push(ChangeSetEntry {
                        seq: c.seq,
                        collection: c.collection.clone(),
                        op: "drop".to_string(),
                        id: Value::Null,
                        rev: 0,
                        doc: None,
                    });
                    continue;
                }
                let key = id_key(&c.id);
                if last.get(&(c.collection.clone(), key.clone())) != Some(&i) {
                    continue;
                }
                let entry = match (c.op, current_doc(&tx, &c.collection, &key)?) {
                    (ChangeOp::Delete, _) | (_, None) => ChangeSetEntry {
                        seq: c.seq,
                        collection: c.collection.clone(),
                        op: "delete".to_string(),
                        id: c.id.clone(),
                        rev: c.rev,
                        doc: None,
                    },
                    (_, Some((doc, rev))) => ChangeSetEntry {
                        seq: c.seq,
                        collection: c.collection.clone(),
                        op: "upsert".to_string(),
                        id: c.id.clone(),
                        rev,
                        doc: Some(doc),
                    },
                };
                entries.push(entry);
            }
            drop(tx);
            Ok((until, entries))
        })?;
        Ok(ChangeSet {
            source,
            database: self.name().to_string(),
            since,
            until,
            entries,
        })
    }

    fn applied_watermark(&self, source: &str) -> Result<i64> {
        let key = format!("applied:{source}");
        self.read(|conn| {
            let v: Option<String> = conn
                .query_row(
                    "SELECT value FROM _pocketdb_meta WHERE key = ?1",
                    [&key],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(v.and_then(|v| v.parse().ok()).unwrap_or(0))
        })
    }

    /// Applies a change set exported from another database: upserts and deletes by
    /// `_id` through the normal write path (so this database's change log, indexes and
    /// watchers see them) and drops collections. Idempotent (see the
    /// [module docs](self)). Entries of one collection that follow each other are
    /// applied in one transaction.
    pub fn apply_changes(&self, set: &ChangeSet) -> Result<ApplyReport> {
        let mut report = ApplyReport::default();
        let watermark = self.applied_watermark(&set.source)?;
        // A set starting after what was applied from its source would leave the
        // changes in between out for good (the watermark then passes them).
        if set.since > watermark {
            return Err(Error::InvalidArgument(format!(
                "change set from {} starts after position {} but this database applied \
                 its changes only up to {watermark}: apply the sets in between first \
                 (export_changes({watermark}))",
                set.source, set.since
            )));
        }
        let mut pending: Vec<WriteModel> = Vec::new();
        let mut pending_coll: Option<String> = None;
        let flush = |coll: &Option<String>, models: &mut Vec<WriteModel>| -> Result<()> {
            if let (Some(name), false) = (coll, models.is_empty()) {
                let models = std::mem::take(models);
                let coll = self.collection::<Value>(name);
                match coll.bulk_write(models.clone(), true) {
                    Ok(_) => {}
                    // Documents that exchanged unique keys on the source: their final
                    // states, stored one by one, collide with each other's old ones.
                    // Stored together instead: the documents removed, then inserted.
                    Err(e) if secondary_key_clash(&e) => {
                        coll.bulk_write(removed_then_inserted(&models), true)?;
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        };
        for e in &set.entries {
            if e.seq <= watermark {
                report.skipped += 1;
                continue;
            }
            validate_collection_name(&e.collection)?;
            if pending_coll.as_deref() != Some(e.collection.as_str()) {
                flush(&pending_coll, &mut pending)?;
                pending_coll = Some(e.collection.clone());
            }
            match e.op.as_str() {
                "upsert" => {
                    let doc = e.doc.clone().ok_or_else(|| {
                        Error::InvalidArgument(format!(
                            "change {}: upsert without a document",
                            e.seq
                        ))
                    })?;
                    pending.push(WriteModel::ReplaceOne {
                        filter: json!({"_id": e.id}),
                        replacement: doc,
                        upsert: true,
                    });
                    report.upserted += 1;
                }
                "delete" => {
                    pending.push(WriteModel::DeleteOne {
                        filter: json!({"_id": e.id}),
                    });
                    report.deleted += 1;
                }
                "drop" => {
                    flush(&pending_coll, &mut pending)?;
                    self.drop_collection(&e.collection)?;
                    report.dropped += 1;
                }
                other => {
                    return Err(Error::InvalidArgument(format!(
                        "change {}: unknown operation '{other}'",
                        e.seq
                    )))
                }
            }
            report.applied += 1;
        }
        flush(&pending_coll, &mut pending)?;
        if set.until > watermark {
            self.write(|conn| {
                conn.execute(
                    "INSERT INTO _pocketdb_meta(key, value) VALUES (?1, ?2)
                     ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    [format!("applied:{}", set.source), set.until.to_string()],
                )?;
                Ok(())
            })?;
        }
        Ok(report)
    }
}
