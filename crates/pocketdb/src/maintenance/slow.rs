//! Slow-query tracking: reads slower than [`crate::Options::slow_query_threshold`] are
//! logged through `tracing` (target `pocketdb::slow_query`) and the most recent ones are
//! kept for [`Database::stats`].

use crate::database::Database;
use crate::query::Filter;
use serde::Serialize;
use std::sync::PoisonError;
use std::time::Duration;

/// How many slow queries are kept per database.
const KEPT: usize = 32;

/// A read that took longer than the configured threshold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlowQuery {
    /// Collection read.
    pub collection: String,
    /// The filter, as parsed.
    pub filter: String,
    /// How long the read took, in milliseconds.
    pub duration_ms: f64,
    /// When it finished, in milliseconds since the Unix epoch.
    pub at_millis: i64,
}

impl Database {
    /// Reports a read of `collection` with `filter` that took `elapsed` when it exceeds
    /// the threshold.
    pub(crate) fn observe_read(&self, collection: &str, filter: &Filter, elapsed: Duration) {
        let Some(threshold) = self.options().slow_query_threshold else {
            return;
        };
        if elapsed < threshold {
            return;
        }
        let entry = SlowQuery {
            collection: collection.to_string(),
            filter: format!("{filter:?}"),
            duration_ms: elapsed.as_secs_f64() * 1000.0,
            at_millis: crate::changes::now_millis(),
        };
        tracing::warn!(
            target: "pocketdb::slow_query",
            database = self.name(),
            collection = %entry.collection,
            filter = %entry.filter,
            duration_ms = entry.duration_ms,
            "slow query"
        );
        let mut kept = self
            .inner
            .extras
            .slow
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if kept.len() == KEPT {
            kept.pop_front();
        }
        kept.push_back(entry);
    }

    /// The most recent slow queries, oldest first (at most 32).
    pub fn slow_queries(&self) -> Vec<SlowQuery> {
        self.inner
            .extras
            .slow
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }
}
