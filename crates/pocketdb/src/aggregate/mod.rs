//! Aggregation pipelines: [`Collection::aggregate`] with MongoDB's stages, expression
//! language ([`Expr`]) and accumulators.
//!
//! What runs where:
//!
//! * a leading run of `$match` stages, then `$skip`/`$limit`, become one
//!   [`Cursor`](crate::Cursor) query: the filter compiles to SQL (indexes apply) and
//!   skip/limit ride along. The filters pass the plugins' `before_read` hooks, as
//!   `find`'s do. A `$sort` right after the `$match`es joins that query when SQLite
//!   answers it (an index serves the `ORDER BY`) and a `$limit` follows: `$match` +
//!   `$sort` + `$limit` is then one SQL statement reading `skip + limit` rows. Otherwise
//!   `$sort` runs in Rust within the pipeline's memory limit (top-k when a `$limit`
//!   follows), with the same sorter as a cursor's in-memory sort but the pipeline's
//!   `allow_disk_use` and `max_memory_bytes`;
//! * a `$group` right after the `$match` stages (optionally after a `$sort` when every
//!   accumulator ignores order) compiles to SQL `GROUP BY` when SQLite's result is exact
//!   (see `sqlgroup`), checked per query; otherwise it runs in Rust;
//! * every other stage runs in Rust over the stream of documents, lazily where the stage
//!   allows. Blocking stages hold at most [`AggregateOptions::max_memory_bytes`]; past it,
//!   `$sort` (external merge sort) and `$group` (partial groups written out and merged
//!   key by key) spill to a temporary SQLite file when
//!   [`AggregateOptions::allow_disk_use`] is set, and fail with
//!   [`Error::MemoryLimitExceeded`](crate::Error::MemoryLimitExceeded) otherwise; the
//!   other blocking stages (`$bucket`, `$facet`, `$sample`, `$lookup`'s foreign page)
//!   always fail past the limit.
//!
//! [`Collection::explain_aggregate`] reports which stages ran in SQL.
//!
//! This module reads collections only through their public query API (and the database's
//! reader pool for the `GROUP BY` statement); it owns no storage.

mod accum;
mod dates;
mod expr;
mod lookup;
mod output;
mod pipeline;
mod shape;
mod sharded;
mod spill;
mod sqlgroup;

pub(crate) use expr::truthy;
pub use expr::Expr;

use crate::collection::Cursor;
use crate::collection::{Collection, Document};
use crate::error::Result;
use crate::query::{Filter, SortSpec};
use pipeline::{parse_pipeline, run_stages, Ctx, Docs, RunStats, Stage};
use serde_json::{json, Value};
use std::sync::Arc;

/// Options of an aggregation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateOptions {
    /// Let `$sort` and `$group` spill to a temporary file past `max_memory_bytes`
    /// (MongoDB's `allowDiskUse`; on by default, as MongoDB 6's `allowDiskUseByDefault`
    /// and a `find`'s sort). Other blocking stages still fail past the limit.
    pub allow_disk_use: bool,
    /// Bytes (estimated) a blocking stage may hold in memory. Default 100 MiB.
    pub max_memory_bytes: usize,
}

impl Default for AggregateOptions {
    fn default() -> Self {
        AggregateOptions {
            allow_disk_use: true,
            max_memory_bytes: 100 * 1024 * 1024,
        }
    }
}

/// The results of an aggregation, as untyped documents. Iterate it, or collect with
/// [`to_vec`](AggregateCursor::to_vec).
pub struct AggregateCursor {
    docs: Docs,
    stats: Arc<RunStats>,
}

impl std::fmt::Debug for AggregateCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AggregateCursor").finish_non_exhaustive()
    }
}

impl AggregateCursor {
    /// Reads every remaining result.
    pub fn to_vec(self) -> Result<Vec<Value>> {
        self.collect()
    }

    /// Number of queries `$lookup` stages have run so far against foreign collections:
    /// the equality form costs one batched `$in` query per page of 256 input documents
    /// (more only past 10,000 distinct keys in a page), never one per document.
    pub fn lookup_queries(&self) -> usize {
        self.stats.lookup_queries()
    }
}

impl Iterator for AggregateCursor {
    type Item = Result<Value>;

    fn next(&mut self) -> Option<Result<Value>> {
        self.docs.next()
    }
}

/// The stages answered by the collection query: filter, and with an index serving it a
/// `$sort` followed by a `$limit`, then skip and limit.
///
/// A `$sort` right after the `$match`es is handed to the cursor when a `$limit` bounds
/// it: SQLite answers it when an index serves the `ORDER BY` (reading only `skip +
/// limit` rows); otherwise the cursor's top-k keeps the best `skip + limit`, reading
/// only the sort fields of each match when that is exact, within the pipeline's memory
/// limit and `allow_disk_use`.
struct Pushdown {
    filter: Filter,
    /// The `$match` stages as written, for plugins' `before_read` hooks.
    filters_json: Vec<Value>,
    sort: Option<SortSpec>,
    skip: u64,
    limit: Option<u64>,
    /// Number of pipeline stages folded in.
    consumed: usize,
}

/// Folds the leading `$match` stages, then (when `with_sort`) one `$sort`, then
/// `$skip`/`$limit` stages.
fn pushdown(stages: &[Stage], with_sort: bool) -> Pushdown {
    let mut p = Pushdown {
        filter: Filter::all(),
        filters_json: Vec::new(),
        sort: None,
        skip: 0,
        limit: None,
        consumed: 0,
    };
    let mut filters = Vec::new();
    for stage in stages {
        let fresh = p.skip == 0 && p.limit.is_none() && p.sort.is_none();
        match stage {
            // A filter does not commute with skip/limit.
            Stage::Match(f, json) if fresh => {
                filters.push(f.clone());
                p.filters_json.push(json.clone());
            }
            Stage::Sort(s) if fresh && with_sort => p.sort = Some(s.clone()),
            Stage::Skip(n) => {
                p.skip = p.skip.saturating_add(*n);
                p.limit = p.limit.map(|l| l.saturating_sub(*n));
            }
            Stage::Limit(n) => p.limit = Some(p.limit.map_or(*n, |l| l.min(*n))),
            _ => break,
        }
        p.consumed += 1;
    }
    p.filter = crate::query::parse::combine_and(filters);
    p
}

/// The `$group` after the pushed-down stages compiled to SQL, if it can be, with the
/// number of stages it answers (a `$sort` before a `$group` whose accumulators ignore
/// order is answered too).
fn sql_group(coll_name: &str, p: &Pushdown, rest: &[Stage]) -> Option<(sqlgroup::SqlGroup, usize)> {
    if p.skip != 0 || p.limit.is_some() || p.sort.is_some() {
        return None;
    }
    let (g, used) = match rest {
        [Stage::Group(g), ..] => (g, 1),
        [Stage::Sort(_), Stage::Group(g), ..]
            if g.accumulators.iter().all(|a| a.kind.order_insensitive()) =>
        {
            (g, 2)
        }
        _ => return None,
    };
    sqlgroup::compile(coll_name, &p.filter, g).map(|s| (s, used))
}

/// How the head of a pipeline is answered by the collection.
struct Source {
    /// The pushed-down stages, with the filter the collection's read path will run.
    p: Pushdown,
    /// A `$group` compiled to SQL, and the stages it answers after `p`.
    group: Option<(sqlgroup::SqlGroup, usize)>,
}

impl Source {
    fn plan(coll: &Collection<Value>, stages: &[Stage]) -> Result<Source> {
        let plugins = coll.database().has_plugins();
        let transformed = coll.database().has_read_transforms();
        let mut p = pushdown(stages, false);
        if plugins {
            // Plugins rewrite JSON filters (deterministic encryption turns a plaintext
            // equality into one on ciphertext): the pushed-down `$match`es go through
            // the same hooks as `find`. Later stages see documents after `after_read`.
            p.filter = coll.user_filter(match p.filters_json.as_slice() {
                [] => json!({}),
                [one] => one.clone(),
                many => json!({ "$and": many }),
            })?;
        }
        let rest = &stages[p.consumed..];
        // The SQL `GROUP BY` reads stored values, which plugins may have transformed,
        // and not the writes a buffered database has not applied yet (the cursor merges
        // them).
        if !transformed && !coll.buffer_pending() {
            if let Some(group) = sql_group(coll.name(), &p, rest) {
                return Ok(Source {
                    p,
                    group: Some(group),
                });
            }
        }
        // A `$sort` bounded by a following `$limit`: the cursor's top-k, in SQL when an
        // index serves it. Sorting by stored values is wrong when plugins transform them.
        if !transformed && p.skip == 0 && p.limit.is_none() && matches!(rest, [Stage::Sort(_), ..])
        {
            let mut with_sort = pushdown(stages, true);
            with_sort.filter = p.filter.clone();
            if with_sort.sort.is_some() && with_sort.limit.is_some() {
                p = with_sort;
            }
        }
        Ok(Source { p, group: None })
    }

    /// The cursor reading the pushed-down stages; a sort it does in memory keeps to
    /// `options` and reports itself as `$sort`.
    fn cursor(&self, coll: &Collection<Value>, options: &AggregateOptions) -> Cursor<Value> {
        let p = &self.p;
        let mut cursor = coll
            .find_filter(p.filter.clone())
            .skip(p.skip)
            .allow_disk_use(options.allow_disk_use)
            .max_sort_memory(options.max_memory_bytes)
            .sort_stage("$sort");
        if let Some(sort) = &p.sort {
            cursor = cursor.sort_spec(sort.clone());
        }
        if let Some(limit) = p.limit {
            cursor = cursor.limit(i64::try_from(limit).unwrap_or(i64::MAX));
        }
        cursor
    }
}

/// Runs parsed stages with `coll` as the source.
pub(crate) fn execute(coll: &Collection<Value>, stages: &[Stage], ctx: &Ctx) -> Result<Docs> {
    let source = Source::plan(coll, stages)?;
    let rest = &stages[source.p.consumed..];
    if let Some((group, used)) = &source.group {
        if let Some(docs) = group.run(coll.database(), coll.name())? {
            return run_stages(&rest[*used..], Box::new(docs.into_iter().map(Ok)), ctx);
        }
    }
    if source.p.limit == Some(0) {
        return Ok(Box::new(std::iter::empty()));
    }
    run_stages(rest, Box::new(source.cursor(coll, &ctx.options)), ctx)
}

impl<T: Document> Collection<T> {
    /// Runs an aggregation pipeline (a JSON array of stages) over the collection.
    ///
    /// ```
    /// use pocketdb::Database;
    /// use serde_json::{json, Value};
    ///
    /// let db = Database::memory()?;
    /// let orders = db.collection::<Value>("orders");
    /// orders.insert_many([
    ///     json!({"item": "a", "qty": 2}),
    ///     json!({"item": "b", "qty": 1}),
    ///     json!({"item": "a", "qty": 5}),
    /// ])?;
    /// let totals = orders
    ///     .aggregate(json!([
    ///         {"$group": {"_id": "$item", "total": {"$sum": "$qty"}}},
    ///         {"$sort": {"total": -1}},
    ///     ]))?
    ///     .to_vec()?;
    /// assert_eq!(totals[0], json!({"_id": "a", "total": 7}));
    /// # Ok::<(), pocketdb::Error>(())
    /// ```
    pub fn aggregate(&self, pipeline: Value) -> Result<AggregateCursor> {
        self.aggregate_with(pipeline, AggregateOptions::default())
    }

    /// Runs an aggregation pipeline with options (memory limit, disk use).
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
        let docs = execute(&self.typed::<Value>(), &stages, &ctx)?;
        Ok(AggregateCursor {
            docs,
            stats: ctx.stats,
        })
    }

    /// Describes how a pipeline would run: which stages are answered by SQL (the leading
    /// `$match` stages with `$skip`/`$limit`, a `$sort` + `$limit` an index serves, and a
    /// `$group` compiled to `GROUP BY`) and which run in Rust. `query` is the collection
    /// query's own [`explain`](crate::Cursor::explain) (SQL, SQLite's query plan, index)
    /// when the pipeline reads through it. A SQL `$group` falls back to Rust at run time
    /// when its guard finds values SQL cannot group exactly (an array above the key's
    /// path, booleans, objects or arrays under `$min`/`$max`).
    pub fn explain_aggregate(&self, pipeline: Value) -> Result<Value> {
        let stages = parse_pipeline(&pipeline, false)?;
        let raw = pipeline.as_array().cloned().unwrap_or_default();
        let coll = self.typed::<Value>();
        let source = Source::plan(&coll, &stages)?;
        let p = &source.p;
        let compiled = crate::query::sql::compile_filter(&p.filter);
        let group = &source.group;
        let sql_end = p.consumed + group.as_ref().map_or(0, |(_, used)| *used);
        let options = AggregateOptions::default();
        let query = source.cursor(&coll, &options).explain()?;
        let sorted_in_memory = query.sorted_in_memory;
        let mut out = Vec::new();
        // `$sortByCount` expands to two stages; walk the parsed stages and show the
        // written stage they came from.
        let mut raw_index = 0;
        let mut i = 0;
        while i < stages.len() {
            let written = raw.get(raw_index).cloned().unwrap_or(Value::Null);
            let is_sort_by_count = written.get("$sortByCount").is_some();
            let engine = match &stages[i] {
                // A pushed-down `$sort` runs in SQL only when an index serves it.
                // (and the `$skip`/`$limit` after it apply to its result).
                Stage::Sort(_) | Stage::Skip(_) | Stage::Limit(_)
                    if i < p.consumed && sorted_in_memory =>
                {
                    "rust"
                }
                _ if i < sql_end => "sql",
                _ => "rust",
            };
            let mut entry = json!({"name": stages[i].name(), "stage": written, "engine": engine});
            if engine == "rust" && i < p.consumed && matches!(stages[i], Stage::Sort(_)) {
                entry["note"] = json!("top-k by the collection query's in-memory sort");
            }
            if i < p.consumed && matches!(stages[i], Stage::Match(..)) && !compiled.exact {
                entry["note"] = json!("SQL selects a superset; the matcher re-checks each row");
            }
            if i + 1 == sql_end && i >= p.consumed {
                if let Some((g, _)) = group {
                    entry["sql"] = json!(g.sql);
                    entry["note"] = json!("falls back to rust if the guard finds an array above a grouped path, or booleans, objects or arrays under $min/$max");
                }
            }
            out.push(entry);
            i += if is_sort_by_count { 2 } else { 1 };
            raw_index += 1;
        }
        let mut report = json!({
            "collection": self.name(),
            "stages": out,
            "filter_sql": compiled.sql,
            "filter_exact": compiled.exact,
        });
        if group.is_none() {
            report["query"] = query.to_json();
        }
        Ok(report)
    }
}
