//! Plugins: hooks around writes and reads, registered per database or per collection.
//!
//! | hook | when | may |
//! | --- | --- | --- |
//! | [`on_open`](Plugin::on_open) | at registration | fail the registration |
//! | [`before_write`](Plugin::before_write) | before a document is stored (insert, update, replace), inside the write's transaction for updates | change the document, or reject it: the write is aborted with the hook's error and leaves nothing behind |
//! | [`after_write`](Plugin::after_write) | right after the commit, on the writing thread, once per change-log entry | observe |
//! | [`before_read`](Plugin::before_read) | on the JSON filter given to `find`, `find_one`, `count_documents`, `distinct`, the update, replace and delete methods, find-and-modify, `bulk_write`, the fluent `query()` builder, an aggregation's leading `$match` stages and live queries (once, when opened); not on filters given parsed (`find_filter`, `LiveQuery::from_filter`) | rewrite the filter, or reject it |
//! | [`after_read`](Plugin::after_read) | for each document a cursor returns (`find`, `find_one`, aggregation), `distinct` reads, find-and-modify returns, a live query delivers, or a change event carries as `full_document`, before projection | transform the document |
//! | [`reveal_for_update`](Plugin::reveal_for_update) | on the stored document an update is about to apply its operators to (then `before_write` runs on the result) | undo what `before_write` did to values the operators read |
//! | [`on_close`](Plugin::on_close) | when the last handle on the database is dropped | clean up |
//!
//! Order: database-wide plugins first, then the collection's, each in registration
//! order; every hook sees the output of the previous one. `after_write` runs on the
//! thread that committed (it sees every committed change of the collection, including
//! writes of other handles on the same database; writes of other processes are not
//! seen by it). A failing `after_write` is logged: the write is already durable.
//!
//! ```
//! use pocketdb::plugin::{Plugin, WriteContext};
//! use pocketdb::{Database, Error};
//! use serde_json::{json, Value};
//!
//! struct NoEmptyNames;
//! impl Plugin for NoEmptyNames {
//!     fn name(&self) -> &str { "no-empty-names" }
//!     fn before_write(&self, _ctx: &WriteContext<'_>, doc: &mut Value) -> pocketdb::Result<()> {
//!         if doc.get("name").and_then(Value::as_str) == Some("") {
//!             return Err(Error::Plugin { plugin: self.name().into(), message: "name is empty".into() });
//!         }
//!         Ok(())
//!     }
//! }
//!
//! let db = Database::memory()?;
//! db.register_plugin(NoEmptyNames)?;
//! let users = db.collection::<Value>("users");
//! assert!(users.insert_one(json!({"name": ""})).is_err());
//! assert_eq!(users.count_documents(json!({}))?, 0);
//! # Ok::<(), pocketdb::Error>(())
//! ```

#[cfg(feature = "encryption")]
pub mod encryption;
#[cfg(feature = "schema")]
mod schema;
mod timestamps;
#[cfg(feature = "vector")]
pub mod vector;

#[cfg(feature = "encryption")]
pub use encryption::{Encryption, EncryptionKey, RotationReport};
#[cfg(feature = "schema")]
pub use schema::{SchemaValidation, ValidationAction, ValidationLevel};
pub use timestamps::Timestamps;
#[cfg(feature = "vector")]
pub use vector::{Metric, Neighbor, VectorField};

use crate::changes::hub::{build_events, Hub};
use crate::changes::{read_keyed, ChangeEvent, FullDocument};
use crate::database::Database;
use crate::error::Result;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

/// What kind of write a [`Plugin::before_write`] call is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOp {
    /// A new document (insert, or the insert of an upsert).
    Insert,
    /// A document changed by update operators.
    Update,
    /// A document replaced whole.
    Replace,
}

/// The context of a [`Plugin::before_write`] call.
#[derive(Debug, Clone, Copy)]
pub struct WriteContext<'a> {
    /// The collection written.
    pub collection: &'a str,
    /// The kind of write.
    pub op: WriteOp,
    /// The stored document before the write (`None` for inserts).
    pub previous: Option<&'a Value>,
}

/// A set of hooks; see the [module documentation](self) for when each runs. Every hook
/// has a default that does nothing.
pub trait Plugin: Send + Sync + 'static {
    /// The plugin's name, used in error messages.
    fn name(&self) -> &str;

    /// Called once when the plugin is registered.
    fn on_open(&self, _db: &Database) -> Result<()> {
        Ok(())
    }

    /// Called before a document is stored; may change it or reject the write.
    fn before_write(&self, _ctx: &WriteContext<'_>, _doc: &mut Value) -> Result<()> {
        Ok(())
    }

    /// Whether [`after_write`](Plugin::after_write) does anything (when no plugin needs
    /// it, commits skip reading the change log).
    fn wants_after_write(&self) -> bool {
        false
    }

    /// Called after the commit for every committed change (`full_document` is the
    /// document as of the commit).
    fn after_write(&self, _event: &ChangeEvent) -> Result<()> {
        Ok(())
    }

    /// Called with the filter of a read or write (see the [module documentation](self)
    /// for which operations); may rewrite it or reject it with an error.
    fn before_read(&self, _collection: &str, _filter: &mut Value) -> Result<()> {
        Ok(())
    }

    /// Whether [`after_read`](Plugin::after_read) may change documents, so that values
    /// as stored differ from what readers see (encryption does; timestamps, schema
    /// validation and vector checks do not). Work that reads stored values directly —
    /// an aggregation's SQL `GROUP BY` and SQL sort — is used only when no plugin of the
    /// database says yes. Defaults to `true`, the safe answer for unknown plugins.
    fn transforms_reads(&self) -> bool {
        true
    }

    /// Called for each document a cursor returns, `distinct` reads, find-and-modify
    /// returns, a live query delivers or a change event carries (before projection);
    /// may transform it.
    fn after_read(&self, _collection: &str, _doc: &mut Value) -> Result<()> {
        Ok(())
    }

    /// Called on a stored document before update operators compute from it (`$inc`,
    /// `$push`, `$set` of a path inside a field, ...): undoes what
    /// [`before_write`](Plugin::before_write) did to values the operators may read, so
    /// they see what the application wrote (encryption decrypts its fields here).
    /// `before_write` then runs on the result, with the stored document as `previous`,
    /// as for any update. Defaults to nothing.
    fn reveal_for_update(&self, _collection: &str, _stored: &mut Value) -> Result<()> {
        Ok(())
    }

    /// Called when the last handle on the database is dropped.
    fn on_close(&self) {}
}

struct Registered {
    collection: Option<String>,
    plugin: Arc<dyn Plugin>,
}

/// The plugins of one database.
#[derive(Default)]
pub(crate) struct Registry {
    any: AtomicBool,
    /// Some plugin's `transforms_reads` is true.
    transforms: AtomicBool,
    after_write: AtomicBool,
    plugins: RwLock<Vec<Registered>>,
    /// Change-log position up to which `after_write` was called.
    seen: Mutex<i64>,
}

impl Registry {
    fn for_collection(&self, collection: &str) -> Vec<Arc<dyn Plugin>> {
        let plugins = self.plugins.read().unwrap_or_else(PoisonError::into_inner);
        let global = plugins.iter().filter(|r| r.collection.is_none());
        let local = plugins
            .iter()
            .filter(|r| r.collection.as_deref() == Some(collection));
        global.chain(local).map(|r| Arc::clone(&r.plugin)).collect()
    }

    /// Runs `before_write` hooks on a document about to be stored.
    pub(crate) fn before_write(&self, ctx: &WriteContext<'_>, doc: &mut Value) -> Result<()> {
        if !self.any.load(Ordering::Acquire) {
            return Ok(());
        }
        for p in self.for_collection(ctx.collection) {
            p.before_write(ctx, doc)?;
        }
        Ok(())
    }

    /// Runs `before_read` hooks on a filter.
    pub(crate) fn before_read(&self, collection: &str, filter: &mut Value) -> Result<()> {
        if !self.any.load(Ordering::Acquire) {
            return Ok(());
        }
        for p in self.for_collection(collection) {
            p.before_read(collection, filter)?;
        }
        Ok(())
    }

    /// Runs `reveal_for_update` hooks on a stored document about to be updated.
    pub(crate) fn reveal_for_update(&self, collection: &str, doc: &mut Value) -> Result<()> {
        if !self.any.load(Ordering::Acquire) {
            return Ok(());
        }
        for p in self.for_collection(collection) {
            p.reveal_for_update(collection, doc)?;
        }
        Ok(())
    }

    /// Runs `after_read` hooks on a document read.
    pub(crate) fn after_read(&self, collection: &str, doc: &mut Value) -> Result<()> {
        if !self.any.load(Ordering::Acquire) {
            return Ok(());
        }
        for p in self.for_collection(collection) {
            p.after_read(collection, doc)?;
        }
        Ok(())
    }

    /// Runs `after_write` hooks for the change-log entries committed since the last
    /// call (on the committing thread, reading the committed log).
    pub(crate) fn committed(&self, db: &Database, database: &str) {
        if !self.after_write.load(Ordering::Acquire) {
            return;
        }
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let result = db.read(|conn| loop {
            let rows = read_keyed(conn, None, *seen, 1024)?;
            let Some(last) = rows.last().map(|(c, _)| c.seq) else {
                return Ok::<(), crate::Error>(());
            };
            let events = build_events(conn, rows, |_, _| true)?;
            for e in &events {
                let plugins = self.for_collection(&e.change.collection);
                if plugins.iter().all(|p| !p.wants_after_write()) {
                    continue;
                }
                let event = ChangeEvent::from_event(e, database, FullDocument::UpdateLookup);
                for p in plugins.iter().filter(|p| p.wants_after_write()) {
                    if let Err(err) = p.after_write(&event) {
                        tracing::warn!("plugin '{}' after_write: {err}", p.name());
                    }
                }
            }
            *seen = last;
        });
        if let Err(e) = result {
            tracing::warn!("plugins after_write: {e}");
        }
    }

    fn add(&self, db: &Database, collection: Option<&str>, plugin: Arc<dyn Plugin>) -> Result<()> {
        plugin.on_open(db)?;
        if plugin.transforms_reads() {
            self.transforms.store(true, Ordering::Release);
        }
        if plugin.wants_after_write() && !self.after_write.load(Ordering::Acquire) {
            *self.seen.lock().unwrap_or_else(PoisonError::into_inner) = db.last_change_seq()?;
            self.after_write.store(true, Ordering::Release);
        }
        self.plugins
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Registered {
                collection: collection.map(str::to_string),
                plugin,
            });
        self.any.store(true, Ordering::Release);
        Ok(())
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let plugins = self
            .plugins
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        for r in plugins.iter() {
            r.plugin.on_close();
        }
    }
}

impl Hub {
    pub(crate) fn plugins(&self) -> &Registry {
        &self.plugins
    }
}

impl Database {
    pub(crate) fn before_write(
        &self,
        collection: &str,
        op: WriteOp,
        previous: Option<&Value>,
        doc: &mut Value,
    ) -> Result<()> {
        let ctx = WriteContext {
            collection,
            op,
            previous,
        };
        self.inner.hub.plugins().before_write(&ctx, doc)
    }

    /// `before_write` for an update or replacement: `Some(doc)` when a hook ran.
    pub(crate) fn before_update(
        &self,
        collection: &str,
        op: crate::changes::ChangeOp,
        previous: &Value,
        doc: &Value,
    ) -> Result<Option<Value>> {
        let reg = self.inner.hub.plugins();
        if !reg.any.load(Ordering::Acquire) {
            return Ok(None);
        }
        let op = match op {
            crate::changes::ChangeOp::Replace => WriteOp::Replace,
            _ => WriteOp::Update,
        };
        let mut doc = doc.clone();
        self.before_write(collection, op, Some(previous), &mut doc)?;
        Ok(Some(doc))
    }

    pub(crate) fn before_read(&self, collection: &str, filter: &mut Value) -> Result<()> {
        self.inner.hub.plugins().before_read(collection, filter)
    }

    /// True once any plugin is registered (filters must then pass `before_read`).
    pub(crate) fn has_plugins(&self) -> bool {
        self.inner.hub.plugins().any.load(Ordering::Acquire)
    }

    /// True once a plugin that may change documents on read is registered (stored
    /// values then differ from what readers see).
    pub(crate) fn has_read_transforms(&self) -> bool {
        self.inner.hub.plugins().transforms.load(Ordering::Acquire)
    }

    pub(crate) fn after_read(&self, collection: &str, doc: &mut Value) -> Result<()> {
        self.inner.hub.plugins().after_read(collection, doc)
    }

    /// Turns a stored document into what update operators should see (see
    /// [`Plugin::reveal_for_update`]).
    pub(crate) fn reveal_for_update(&self, collection: &str, doc: &mut Value) -> Result<()> {
        self.inner.hub.plugins().reveal_for_update(collection, doc)
    }

    /// Registers a plugin for every collection of this database (after the plugins
    /// already registered). Calls its `on_open` hook.
    pub fn register_plugin(&self, plugin: impl Plugin) -> Result<()> {
        self.inner.hub.plugins().add(self, None, Arc::new(plugin))
    }

    /// Registers a plugin for one collection. Database-wide plugins run before the
    /// collection's.
    pub fn register_collection_plugin(&self, collection: &str, plugin: impl Plugin) -> Result<()> {
        crate::engine::schema::validate_collection_name(collection)?;
        self.inner
            .hub
            .plugins()
            .add(self, Some(collection), Arc::new(plugin))
    }

    /// Names of the registered plugins with their collection (`None`: all), in the
    /// order they run.
    pub fn plugins(&self) -> Vec<(String, Option<String>)> {
        let reg = self.inner.hub.plugins();
        let plugins = reg.plugins.read().unwrap_or_else(PoisonError::into_inner);
        plugins
            .iter()
            .map(|r| (r.plugin.name().to_string(), r.collection.clone()))
            .collect()
    }
}
