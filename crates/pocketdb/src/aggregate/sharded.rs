//! Aggregation over sharded and partitioned collections.
//!
//! The leading `$match`/`$skip`/`$limit` stages (and a `$sort` followed by a `$limit`)
//! become one scatter-gather [`ShardedCursor`](crate::shard::ShardedCursor) query: each
//! member compiles the filter to SQL and uses its indexes, only the members the filter
//! can match are read, and a sort is a k-way merge of the members' sorted results. Every
//! later stage runs in Rust over the merged stream, within the same memory limit as on a
//! single collection. `$lookup`, `$out` and `$merge` address collections of the sharded
//! collection's main database.

use super::pipeline::{parse_pipeline, run_stages, Ctx, Docs, Stage};
use super::{pushdown, AggregateCursor, AggregateOptions};
use crate::collection::Document;
use crate::error::Result;
use crate::shard::ShardedCollection;
use serde_json::Value;
use std::sync::Arc;

impl<T: Document> ShardedCollection<T> {
    /// Runs an aggregation pipeline over every member (the stages are those of
    /// [`Collection::aggregate`](crate::Collection::aggregate); the leading
    /// `$match`/`$skip`/`$limit`, and a `$sort` with a `$limit`, are pushed to the
    /// members).
    pub fn aggregate(&self, pipeline: Value) -> Result<AggregateCursor> {
        self.aggregate_with(pipeline, AggregateOptions::default())
    }

    /// [`aggregate`](ShardedCollection::aggregate) with options (memory limit, disk use).
    pub fn aggregate_with(
        &self,
        pipeline: Value,
        options: AggregateOptions,
    ) -> Result<AggregateCursor> {
        let stages = parse_pipeline(&pipeline, false)?;
        let ctx = Ctx {
            db: self.database().clone(),
            options,
            stats: Arc::default(),
        };
        let docs = execute_spread(&self.typed::<Value>(), &stages, &ctx)?;
        Ok(AggregateCursor {
            docs,
            stats: ctx.stats,
        })
    }
}

/// Runs parsed stages with the sharded or partitioned collection `coll` as the source
/// (also the source of a `$lookup` whose `from` names one).
pub(crate) fn execute_spread(
    coll: &ShardedCollection<Value>,
    stages: &[Stage],
    ctx: &Ctx,
) -> Result<Docs> {
    // A `$sort` goes to the members only with a `$limit` after it: each member
    // then returns at most `skip + limit` documents to the k-way merge, while an
    // unbounded sort stays in the pipeline, which keeps to the memory limit.
    let mut p = pushdown(stages, false);
    let with_sort = pushdown(stages, true);
    if with_sort.sort.is_some() && with_sort.limit.is_some() {
        p = with_sort;
    }
    let mut cursor = coll.find_filter(p.filter)?.skip(p.skip);
    if let Some(sort) = p.sort {
        cursor = cursor.sort_spec(sort);
    }
    let docs: Docs = match p.limit {
        Some(0) => Box::new(std::iter::empty()),
        Some(limit) => Box::new(cursor.limit(i64::try_from(limit).unwrap_or(i64::MAX))),
        None => Box::new(cursor),
    };
    run_stages(&stages[p.consumed..], docs, ctx)
}
