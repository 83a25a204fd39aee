//! The plan cache: compiled plans kept per filter shape, so a query of a shape seen
//! before skips SQL compilation and only binds its values.
//!
//! A key is the hash of the collection name, the filter's shape
//! ([`crate::query::shape`]), the hint and the sort. An entry holds the plan's SQL (so
//! SQLite's statement cache, keyed by SQL text, hands back the same prepared statement),
//! the index chosen, the `ORDER BY` for the sort, and how to compute each parameter from
//! a new filter of the shape. An entry is only used with the index set it was compiled
//! against (the same `Arc`): the catalog cache replaces that set whenever the database's
//! `index_gen` changes (an index created or dropped, a multikey or mixed-type flag turned
//! on), so a stale entry is recompiled, never reused.
//!
//! The cache is per database and bounded ([`PLAN_CACHE_CAPACITY`] entries, least
//! recently used evicted first). Plans whose parameters cannot all be traced to the
//! filter's literals are not cached.

use super::plan::{Compiled, Plan, PlanTemplate};
use crate::error::Result;
use crate::index::IndexSet;
use crate::query::shape::{hash_json, shape};
use crate::query::{Filter, SortOrder, SortSpec};
use serde::Serialize;
use serde_json::Value;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Most plans a database keeps.
pub const PLAN_CACHE_CAPACITY: usize = 512;

/// Whether a query's plan came from the plan cache ([`crate::Explain::plan_cache`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PlanCacheUse {
    /// A plan of the same shape was reused; only the values were bound.
    Hit,
    /// The plan was compiled (and kept, when it can be reused).
    Miss,
    /// The cache was not consulted: a point read by `_id`, or reads while buffered
    /// writes are pending.
    Bypass,
}

/// Counters of a database's plan cache ([`crate::Database::plan_cache_stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PlanCacheStats {
    /// Plans reused.
    pub hits: u64,
    /// Plans compiled.
    pub misses: u64,
    /// Compiled plans that could not be kept (a parameter not traceable to the filter).
    pub uncacheable: u64,
    /// Entries found compiled against an older index set, and recompiled.
    pub invalidated: u64,
    /// Entries evicted to stay within the capacity.
    pub evicted: u64,
    /// Entries currently kept.
    pub entries: u64,
    /// Most entries kept.
    pub capacity: u64,
}

struct Entry {
    collection: Arc<str>,
    set: Arc<IndexSet>,
    template: Arc<PlanTemplate>,
    order_by: Option<Arc<str>>,
    used: u64,
}

/// A database's plan cache.
pub(crate) struct PlanCache {
    state: RandomState,
    entries: Mutex<Entries>,
    hits: AtomicU64,
    misses: AtomicU64,
    uncacheable: AtomicU64,
    invalidated: AtomicU64,
    evicted: AtomicU64,
}

#[derive(Default)]
struct Entries {
    map: HashMap<u64, Entry>,
    tick: u64,
}

impl Default for PlanCache {
    fn default() -> PlanCache {
        PlanCache {
            state: RandomState::new(),
            entries: Mutex::new(Entries::default()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            uncacheable: AtomicU64::new(0),
            invalidated: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
        }
    }
}

/// A plan for a read, with what the caller runs it with.
pub(crate) struct CachedPlan {
    pub plan: Plan,
    /// The `ORDER BY` that sorts in SQL (see [`Plan::sort_sql`]), for the sort given.
    pub order_by: Option<Arc<str>>,
    pub cache: PlanCacheUse,
}

impl PlanCache {
    /// The plan for `filter` on `collection` with index set `set`: reused when a plan of
    /// the same shape (and hint and sort) was compiled against the same set, compiled
    /// and kept otherwise.
    pub(crate) fn plan(
        &self,
        collection: &Arc<str>,
        set: &Arc<IndexSet>,
        filter: Filter,
        hint: Option<&Value>,
        sort: Option<&SortSpec>,
    ) -> Result<CachedPlan> {
        let shape = shape(&filter, &self.state, |mut h| {
            collection.hash(&mut h);
            match hint {
                Some(v) => {
                    h.write_u8(1);
                    hash_json(v, h);
                }
                None => h.write_u8(0),
            }
            match sort {
                Some(s) => {
                    h.write_usize(s.keys.len());
                    for (path, order) in &s.keys {
                        path.segments().hash(&mut h);
                        h.write_u8(u8::from(*order == SortOrder::Asc));
                    }
                }
                None => h.write_usize(usize::MAX),
            }
        });
        if let Some((template, order_by)) = self.lookup(shape.hash, collection, set) {
            let params = (template.slots == shape.lits.len())
                .then(|| shape.bind(&template.sources))
                .flatten();
            if let Some(params) = params {
                drop(shape);
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(CachedPlan {
                    plan: template.bind(filter, params),
                    order_by,
                    cache: PlanCacheUse::Hit,
                });
            }
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let compiled = Compiled::build(&filter, set, hint)?;
        let sources = shape.sources(&compiled.params, &compiled.srcs);
        let (key, slots) = (shape.hash, shape.lits.len());
        drop(shape);
        let plan = compiled.into_plan(filter);
        let order_by: Option<Arc<str>> = sort.and_then(|s| plan.sort_sql(set, s)).map(Arc::from);
        match sources {
            Some(sources) => self.insert(
                key,
                Entry {
                    collection: collection.clone(),
                    set: set.clone(),
                    template: Arc::new(PlanTemplate::of(&plan, sources, slots)),
                    order_by: order_by.clone(),
                    used: 0,
                },
            ),
            None => {
                self.uncacheable.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(CachedPlan {
            plan,
            order_by,
            cache: PlanCacheUse::Miss,
        })
    }

    fn lookup(
        &self,
        key: u64,
        collection: &str,
        set: &Arc<IndexSet>,
    ) -> Option<(Arc<PlanTemplate>, Option<Arc<str>>)> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.tick += 1;
        let tick = entries.tick;
        let entry = entries.map.get_mut(&key)?;
        if &*entry.collection != collection {
            return None;
        }
        if !Arc::ptr_eq(&entry.set, set) {
            self.invalidated.fetch_add(1, Ordering::Relaxed);
            entries.map.remove(&key);
            return None;
        }
        entry.used = tick;
        Some((entry.template.clone(), entry.order_by.clone()))
    }

    fn insert(&self, key: u64, mut entry: Entry) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.tick += 1;
        entry.used = entries.tick;
        if entries.map.len() >= PLAN_CACHE_CAPACITY && !entries.map.contains_key(&key) {
            let oldest = entries
                .map
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| *k);
            if let Some(k) = oldest {
                entries.map.remove(&k);
                self.evicted.fetch_add(1, Ordering::Relaxed);
            }
        }
        entries.map.insert(key, entry);
    }

    /// The counters.
    pub(crate) fn stats(&self) -> PlanCacheStats {
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map
            .len();
        PlanCacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            uncacheable: self.uncacheable.load(Ordering::Relaxed),
            invalidated: self.invalidated.load(Ordering::Relaxed),
            evicted: self.evicted.load(Ordering::Relaxed),
            entries: entries as u64,
            capacity: PLAN_CACHE_CAPACITY as u64,
        }
    }
}
