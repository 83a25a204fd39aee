//! Aggregation over sharded and partitioned collections.
//!
//! The leading `$match`/`$skip`/`$limit` stages become one scatter-gather
//! [`ShardedCursor`](crate::shard::ShardedCursor) query (each member compiles the filter
//! to SQL and uses its indexes; only the members the filter can match are read); every
//! later stage runs in Rust over the merged stream, within the same memory limit as on a
//! single collection. `$lookup`, `$out` and `$merge` address collections of the sharded
//! collection's main database.

use super::pipeline::{parse_pipeline, run_stages, Ctx};
use super::{pushdown, AggregateCursor, AggregateOptions};
use crate::collection::Document;
use crate::error::Result;
use crate::shard::ShardedCollection;
use serde_json::Value;

impl<T: Document> ShardedCollection<T> {
    /// Runs an aggregation pipeline over every member (see the module docs of
    /// `aggregate` for the stages; only the leading `$match`/`$skip`/`$limit` are
    /// pushed to the members).
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
        };
        let p = pushdown(&stages);
        let mut cursor = self.typed::<Value>().find_filter(p.filter)?.skip(p.skip);
        if let Some(limit) = p.limit {
            if limit == 0 {
                return Ok(AggregateCursor {
                    docs: Box::new(std::iter::empty()),
                });
            }
            cursor = cursor.limit(i64::try_from(limit).unwrap_or(i64::MAX));
        }
        let docs = run_stages(&stages[p.consumed..], Box::new(cursor), &ctx)?;
        Ok(AggregateCursor { docs })
    }
}
