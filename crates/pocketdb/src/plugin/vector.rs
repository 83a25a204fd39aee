//! Vector fields and nearest-neighbour search (cargo feature `vector`).
//!
//! [`VectorField`] declares that a field holds a vector of a fixed dimension: every
//! write is checked (an array of exactly that many finite numbers). [`Collection::near`]
//! returns the `k` documents nearest to a query vector, with their distance.
//!
//! **The search is exact brute force**: it reads every document the prefilter matches
//! (through the normal query path, so an index can narrow the prefilter) and computes
//! the distance to each in Rust, keeping the best `k` in a bounded heap. Its cost is one
//! scan of the prefiltered documents (decoding each one's JSON) plus `O(d)` arithmetic
//! per document and `O(log k)` per heap update: milliseconds for thousands of
//! documents, about as long as a full-scan query for hundreds of thousands. There is no
//! approximate index (HNSW, IVF): results are exact and reproducible, and ties are
//! broken by `_id` (MongoDB's order), so the same data gives the same answer.
//!
//! Vectors are stored as ordinary JSON arrays inside the documents, so they stay
//! consistent with every write path (buffered writes, bulk writes, sync) with no side
//! table to keep in step. Distances are computed in `f64`.
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

/// A plugin declaring a vector field: on every write, the field (when present) must be an
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

/// The value at a dotted path through documents only (no array traversal).
fn value_at<'a>(doc: &'a Value, path: &FieldPath) -> Option<&'a Value> {
    path.segments()
        .iter()
        .try_fold(doc, |v, seg| v.as_object().and_then(|m| m.get(seg)))
}

/// The value as a vector: an array of finite numbers.
fn as_vector(v: &Value) -> Option<Vec<f64>> {
    v.as_array()?
        .iter()
        .map(|x| x.as_f64().filter(|f| f.is_finite()))
        .collect()
}

impl Plugin for VectorField {
    fn name(&self) -> &str {
        "vector-field"
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

impl<T: Document> Collection<T> {
    /// The `k` documents matching `prefilter` whose vector at `field` is nearest to
    /// `query`, nearest first, ties broken by `_id`. Exact brute force over the
    /// prefiltered documents (see the [module documentation](crate::plugin::vector)).
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
        let cursor = self.typed::<Value>().find(prefilter)?;
        if k == 0 {
            return Ok(Vec::new());
        }
        let mut heap: BinaryHeap<Candidate> = BinaryHeap::with_capacity(k + 1);
        for doc in cursor {
            let doc = doc?;
            let Some(v) = value_at(&doc, &path).and_then(as_vector) else {
                continue;
            };
            if v.len() != query.len() {
                continue;
            }
            let Some(distance) = distance(metric, query, query_norm, &v) else {
                continue;
            };
            let candidate = Candidate {
                distance,
                id: doc.get("_id").cloned().unwrap_or(Value::Null),
                doc,
            };
            if heap.len() < k {
                heap.push(candidate);
            } else if heap
                .peek()
                .is_some_and(|worst| candidate.rank(worst) == Ordering::Less)
            {
                heap.pop();
                heap.push(candidate);
            }
        }
        heap.into_sorted_vec()
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
