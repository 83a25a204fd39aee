//! Vector fields and nearest-neighbour search (cargo feature `vector`).
//!
//! [`VectorField`] declares that a field holds a vector of a fixed dimension: every
//! write is checked (an array of exactly that many finite numbers). [`Collection::near`]
//! returns the `k` documents nearest to a query vector, with their distance.
//!
//! Results are always **exact** (distances in `f64`, ties broken by `_id`, MongoDB's
//! order), by one of two paths:
//!
//! * **Vector index** ([`Collection::create_vector_index`]): a sqlite-vec `vec0`
//!   virtual table (the `sqlite-vec` crate, its C source compiled with `cc` and linked
//!   against rusqlite's bundled SQLite, registered with `sqlite3_auto_extension` when
//!   the first database is opened), rowid = the document's storage id, kept in step in
//!   the same transaction as every insert, update, replace and delete (bulk and
//!   buffered writes included, as they end in the same write path), dropped and renamed
//!   with the collection. `near` uses it when one exists for the field, metric and
//!   dimension, no buffered write is pending, and the prefilter is empty or matches
//!   more than [`BRUTE_FORCE_MAX`] documents. It asks `vec0` for the nearest
//!   `2k × (documents / matching)` (+16), re-scores each candidate exactly from its
//!   document after the prefilter, and accepts the answer only when the `k`-th exact
//!   distance is below what any document not fetched can have (the last `f32` distance
//!   minus a bound on `f32` rounding); otherwise it fetches four times more, up to
//!   sqlite-vec's limit of 4,096, then falls back to brute force. So the result is the
//!   brute-force result, which the tests check on random data.
//! * **Brute force** (the reference, and the fallback): every document the prefilter
//!   matches is read through the normal query path (an index can narrow the prefilter)
//!   and scored in Rust, keeping the best `k` in a bounded heap: one scan of the
//!   prefiltered documents plus `O(d)` per document. Used without a vector index, for
//!   selective prefilters, while buffered writes are pending, when the index is stale,
//!   and by [`Collection::near_brute_force`].
//!
//! Vectors stay ordinary JSON arrays inside the documents (the source of truth); the
//! `vec0` table is a copy in `f32`. An index is marked **stale** (and ignored until
//! `create_vector_index` rebuilds it) when a value does not fit in an `f32`, or when a
//! build of pocketdb without the `vector` feature writes the collection (it cannot write
//! a `vec0` table). The index path assumes `after_read` hooks leave the vector field as
//! stored: do not index an encrypted vector field. A file with a vector index opened by
//! a plain `sqlite3` shell reads fine, but writing the `vec0` table there needs the
//! sqlite-vec extension loaded.
//!
//! ```
//! use pocketdb::plugin::{Metric, VectorField};
//! use pocketdb::Database;
//! use serde_json::{json, Value};
//!
//! let db = Database::memory()?;
//! db.register_collection_plugin("docs", VectorField::new("embedding", 3)?)?;
//! let docs = db.collection::<Value>("docs");
//! docs.insert_many([
//!     json!({"_id": 1, "lang": "en", "embedding": [1.0, 0.0, 0.0]}),
//!     json!({"_id": 2, "lang": "en", "embedding": [0.0, 1.0, 0.0]}),
//!     json!({"_id": 3, "lang": "fr", "embedding": [0.9, 0.1, 0.0]}),
//! ])?;
//! assert!(docs.insert_one(json!({"embedding": [1.0, 2.0]})).is_err()); // wrong dimension
//!
//! let hits = docs.near("embedding", &[1.0, 0.0, 0.0], 2, Metric::Cosine, json!({"lang": "en"}))?;
//! assert_eq!(hits[0].document["_id"], 1);
//! assert_eq!(hits[0].distance, 0.0);
//! assert_eq!(hits[1].document["_id"], 2);
//! # Ok::<(), pocketdb::Error>(())
//! ```

use super::{Plugin, WriteContext};
use crate::collection::{from_document, Collection, Document};
use crate::error::{Error, Result};
use crate::query::Filter;
use crate::value::{compare_values, FieldPath};
use serde_json::Value;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// How distance between vectors is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Cosine distance, `1 − (a·b) / (|a| |b|)`: 0 for the same direction, 2 for
    /// opposite ones. Documents whose vector is all zeros are skipped.
    Cosine,
    /// Euclidean distance, `√Σ(aᵢ − bᵢ)²`.
    L2,
}

/// One result of [`Collection::near`].
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbor<T> {
    /// The document (after the plugins' `after_read` hooks).
    pub document: T,
    /// Its distance to the query vector under the chosen metric.
    pub distance: f64,
}

/// A plugin declaring a vector field (it does not create a vector index: see
/// [`Collection::create_vector_index`]): on every write, the field (when present) must be an
/// array of exactly `dimension` finite numbers, or the write fails with
/// [`Error::Validation`]. Register it per collection with
/// [`Database::register_collection_plugin`](crate::Database::register_collection_plugin).
#[derive(Debug, Clone)]
pub struct VectorField {
    path: FieldPath,
    dimension: usize,
    required: bool,
}

impl VectorField {
    /// Declares `path` (dotted) as a vector of `dimension` numbers (at least 1).
    pub fn new(path: &str, dimension: usize) -> Result<VectorField> {
        if dimension == 0 {
            return Err(Error::InvalidArgument(
                "a vector field needs a dimension of at least 1".to_string(),
            ));
        }
        Ok(VectorField {
            path: FieldPath::parse(path)?,
            dimension,
            required: false,
        })
    }

    /// Also rejects documents without the field.
    pub fn required(mut self) -> VectorField {
        self.required = true;
        self
    }

    /// The declared dimension.
    pub fn dimension(&self) -> usize {
        self.dimension
    }
}

use crate::index::vector::{as_vector, value_at};

impl Plugin for VectorField {
    fn name(&self) -> &str {
        "vector-field"
    }

    fn transforms_reads(&self) -> bool {
        false
    }

    fn before_write(&self, ctx: &WriteContext<'_>, doc: &mut Value) -> Result<()> {
        let problem = match value_at(doc, &self.path) {
            None if self.required => Some("is missing".to_string()),
            None => None,
            Some(v) => match as_vector(v) {
                None => Some("is not an array of finite numbers".to_string()),
                Some(vec) if vec.len() != self.dimension => Some(format!(
                    "has {} dimensions, expected {}",
                    vec.len(),
                    self.dimension
                )),
                Some(_) => None,
            },
        };
        match problem {
            None => Ok(()),
            Some(p) => Err(Error::Validation {
                collection: ctx.collection.to_string(),
                errors: vec![format!("at '{}': vector field {p}", self.path)],
            }),
        }
    }
}

/// A candidate in the bounded heap: the worst (largest distance, then largest `_id`)
/// is on top so it can be evicted.
struct Candidate {
    distance: f64,
    id: Value,
    doc: Value,
}

impl Candidate {
    fn rank(&self, other: &Candidate) -> Ordering {
        self.distance
            .total_cmp(&other.distance)
            .then_with(|| compare_values(&self.id, &other.id))
    }
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.rank(other) == Ordering::Equal
    }
}
impl Eq for Candidate {}
impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        self.rank(other)
    }
}

/// The distance between `query` (with its precomputed norm) and `v`; `None` when the
/// cosine distance is undefined (`v` all zeros).
pub(crate) fn distance(metric: Metric, query: &[f64], query_norm: f64, v: &[f64]) -> Option<f64> {
    match metric {
        Metric::L2 => Some(
            query
                .iter()
                .zip(v)
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f64>()
                .sqrt(),
        ),
        Metric::Cosine => {
            let dot: f64 = query.iter().zip(v).map(|(a, b)| a * b).sum();
            let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
            if norm == 0.0 {
                return None;
            }
            Some(1.0 - dot / (query_norm * norm))
        }
    }
}

/// The `k` best candidates seen so far (a bounded max-heap: the worst on top).
struct TopK {
    k: usize,
    heap: BinaryHeap<Candidate>,
}

impl TopK {
    fn new(k: usize) -> TopK {
        TopK {
            k,
            heap: BinaryHeap::with_capacity(k + 1),
        }
    }

    /// Scores `doc` (as a read returns it) and keeps it when it is among the best `k`.
    fn offer(
        &mut self,
        doc: Value,
        path: &FieldPath,
        query: &[f64],
        query_norm: f64,
        metric: Metric,
    ) {
        let Some(v) = value_at(&doc, path).and_then(as_vector) else {
            return;
        };
        if v.len() != query.len() {
            return;
        }
        let Some(distance) = distance(metric, query, query_norm, &v) else {
            return;
        };
        let candidate = Candidate {
            distance,
            id: doc.get("_id").cloned().unwrap_or(Value::Null),
            doc,
        };
        if self.heap.len() < self.k {
            self.heap.push(candidate);
        } else if self
            .heap
            .peek()
            .is_some_and(|worst| candidate.rank(worst) == Ordering::Less)
        {
            self.heap.pop();
            self.heap.push(candidate);
        }
    }

    /// The `k`-th best distance, when `k` candidates are held.
    fn bound(&self) -> Option<f64> {
        (self.heap.len() == self.k)
            .then(|| self.heap.peek().map(|c| c.distance))
            .flatten()
    }

    fn into_neighbors<T: Document>(self) -> Result<Vec<Neighbor<T>>> {
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|c| {
                Ok(Neighbor {
                    document: from_document(c.doc)?,
                    distance: c.distance,
                })
            })
            .collect()
    }
}

/// A prefilter matching at most this many documents is answered by brute force over
/// them (cheaper than asking the index for enough neighbours to find `k` of them).
pub const BRUTE_FORCE_MAX: u64 = 512;

/// sqlite-vec's largest `k` in one KNN query; a search that would need more falls back
/// to brute force.
const KNN_MAX: usize = 4096;

/// How far sqlite-vec's `f32` distance may be from the exact `f64` one: `f32`
/// rounding of every component (relative `2⁻²⁴`, which moves an L2 distance by at
/// most `2⁻²⁴ (|q| + |v|)` with `|v| ≤ |q| + d`) and of the `dimension`-term sums,
/// with a safety factor of 8.
fn f32_error_bound(metric: Metric, dimension: usize, query_norm: f64, distance: f64) -> f64 {
    let unit = f64::from(f32::EPSILON) / 2.0;
    let terms = dimension as f64 + 4.0;
    match metric {
        Metric::L2 => 8.0 * unit * terms * (2.0 * query_norm + distance.abs() + 1.0),
        Metric::Cosine => 8.0 * unit * terms * 4.0,
    }
}

fn metric_name(metric: Metric) -> &'static str {
    match metric {
        Metric::Cosine => "cosine",
        Metric::L2 => "l2",
    }
}

impl<T: Document> Collection<T> {
    /// Creates a vector index on `field` for `metric`: a sqlite-vec `vec0` table of the
    /// documents whose field holds `dimension` finite numbers, kept in step by every
    /// write, which [`near`](Collection::near) then uses (see the
    /// [module documentation](crate::plugin::vector)). Returns false when it already
    /// existed. Rebuilds an index marked stale. Fails with [`Error::InvalidArgument`]
    /// when an index on the same field and metric has another dimension.
    pub fn create_vector_index(
        &self,
        field: &str,
        dimension: usize,
        metric: Metric,
    ) -> Result<bool> {
        let path = FieldPath::parse(field)?;
        if dimension == 0 || dimension > 8192 {
            return Err(Error::InvalidArgument(format!(
                "a vector index needs a dimension between 1 and 8192, not {dimension}"
            )));
        }
        let table = crate::engine::schema::table_name(self.name());
        self.write(|conn| {
            crate::index::vector::create(
                conn,
                self.name(),
                &table,
                &path,
                dimension,
                metric_name(metric),
            )
        })
    }

    /// The `k` documents matching `prefilter` whose vector at `field` is nearest to
    /// `query`, nearest first, ties broken by `_id`. Exact: through the field's vector
    /// index when there is one for `metric` and the prefilter is not too selective,
    /// by brute force otherwise, with the same result (see the
    /// [module documentation](crate::plugin::vector)).
    /// Documents without the field, or whose field is not an array of `query.len()`
    /// finite numbers, are skipped; so are all-zero vectors under [`Metric::Cosine`].
    /// The prefilter goes through the plugins' `before_read` hooks like any `find`.
    ///
    /// Errors: [`Error::InvalidArgument`] for an empty query, a non-finite component, or
    /// an all-zero query under cosine; the errors of `find` for a bad prefilter.
    pub fn near(
        &self,
        field: &str,
        query: &[f64],
        k: usize,
        metric: Metric,
        prefilter: Value,
    ) -> Result<Vec<Neighbor<T>>> {
        self.near_with(field, query, k, metric, prefilter, true)
    }

    /// [`near`](Collection::near) by brute force only, never through a vector index: the
    /// reference the index path is tested against, and its fallback.
    pub fn near_brute_force(
        &self,
        field: &str,
        query: &[f64],
        k: usize,
        metric: Metric,
        prefilter: Value,
    ) -> Result<Vec<Neighbor<T>>> {
        self.near_with(field, query, k, metric, prefilter, false)
    }

    fn near_with(
        &self,
        field: &str,
        query: &[f64],
        k: usize,
        metric: Metric,
        prefilter: Value,
        use_index: bool,
    ) -> Result<Vec<Neighbor<T>>> {
        let path = FieldPath::parse(field)?;
        if query.is_empty() {
            return Err(Error::InvalidArgument(
                "the query vector is empty".to_string(),
            ));
        }
        if query.iter().any(|x| !x.is_finite()) {
            return Err(Error::InvalidArgument(
                "the query vector holds a non-finite number".to_string(),
            ));
        }
        let query_norm = query.iter().map(|x| x * x).sum::<f64>().sqrt();
        if metric == Metric::Cosine && query_norm == 0.0 {
            return Err(Error::InvalidArgument(
                "cosine distance is undefined for an all-zero query vector".to_string(),
            ));
        }
        let filter = self.user_filter(prefilter)?;
        if k == 0 {
            return Ok(Vec::new());
        }
        // Buffered writes not yet applied are not in the index: only `find` sees them.
        if use_index && !self.buffer_pending() {
            if let Some(top) = self.near_indexed(&path, query, query_norm, k, metric, &filter)? {
                return top.into_neighbors();
            }
        }
        let mut top = TopK::new(k);
        for doc in self.typed::<Value>().find_filter(filter) {
            top.offer(doc?, &path, query, query_norm, metric);
        }
        top.into_neighbors()
    }

    /// The search through a vector index: `None` when there is no usable index (none
    /// for this field, metric and dimension, or stale), when the prefilter matches at
    /// most [`BRUTE_FORCE_MAX`] documents, or when proving the answer would need more
    /// than sqlite-vec's largest `k`.
    ///
    /// sqlite-vec ranks by `f32` distances; the answer is made exact by re-scoring every
    /// candidate in `f64` from its document and stopping only when the `k`-th exact
    /// distance is below the smallest distance any document not yet fetched can have
    /// (the last fetched `f32` distance minus [`f32_error_bound`]); otherwise it fetches
    /// four times more neighbours and tries again.
    fn near_indexed(
        &self,
        path: &FieldPath,
        query: &[f64],
        query_norm: f64,
        k: usize,
        metric: Metric,
        filter: &Filter,
    ) -> Result<Option<TopK>> {
        let Some(blob) = crate::index::vector::query_blob(query) else {
            return Ok(None);
        };
        let name = metric_name(metric);
        let table = crate::engine::schema::table_name(self.name());
        self.read_with(
            |conn| {
                let set = self.indexes(conn)?;
                let Some(def) = set.vectors.iter().find(|d| {
                    !d.stale && d.path == *path && d.metric == name && d.dimension == query.len()
                }) else {
                    return Ok(None);
                };
                let total: i64 = conn
                    .prepare_cached(&format!("SELECT count(*) FROM {table}"))?
                    .query_row([], |r| r.get(0))?;
                let total = u64::try_from(total).unwrap_or(0);
                let matching = if filter.is_all() {
                    total
                } else {
                    let n = self.plan(conn, filter.clone())?.count(conn, self.name())?;
                    if n <= BRUTE_FORCE_MAX {
                        return Ok(None);
                    }
                    n
                };
                // expect the prefilter to keep `matching / total` of the neighbours
                let ratio = usize::try_from(total / matching.max(1)).unwrap_or(KNN_MAX);
                let mut fetch = k
                    .saturating_mul(ratio.max(1))
                    .saturating_mul(2)
                    .saturating_add(16)
                    .min(KNN_MAX);
                let mut knn = conn.prepare_cached(&format!(
                    "SELECT rowid, distance FROM {} WHERE embedding MATCH ?1 AND k = ?2 ORDER BY distance",
                    def.table()
                ))?;
                let mut by_rid =
                    conn.prepare_cached(&format!("SELECT doc FROM {table} WHERE rid = ?1"))?;
                loop {
                    let rows: Vec<(i64, f64)> = knn
                        .query_map(rusqlite::params![blob, fetch as i64], |r| {
                            Ok((r.get(0)?, r.get(1)?))
                        })?
                        .collect::<rusqlite::Result<_>>()?;
                    let mut top = TopK::new(k);
                    for (rid, _) in &rows {
                        let mut found = by_rid.query([rid])?;
                        let Some(r) = found.next()? else { continue };
                        let mut doc = crate::value::jsonb::stored_doc(conn, r.get_ref(0)?)?;
                        drop(found);
                        // the prefilter is evaluated on stored documents, as in SQL
                        if !filter.matches(&doc) {
                            continue;
                        }
                        self.database().after_read(self.name(), &mut doc)?;
                        top.offer(doc, path, query, query_norm, metric);
                    }
                    // every indexed document was fetched: exact
                    if rows.len() < fetch {
                        return Ok(Some(top));
                    }
                    let last = rows.last().map_or(f64::INFINITY, |r| r.1);
                    let unseen = last - f32_error_bound(metric, query.len(), query_norm, last);
                    if top.bound().is_some_and(|b| b < unseen) {
                        return Ok(Some(top));
                    }
                    if fetch >= KNN_MAX {
                        return Ok(None);
                    }
                    fetch = fetch.saturating_mul(4).min(KNN_MAX);
                }
            },
            || None,
        )
    }
}
