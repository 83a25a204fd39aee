//! References across collections and databases: [`Cursor::populate`] replaces stored
//! references with the documents they point to, and [`Collection::lookup`] is a left
//! outer join on a local/foreign field pair.
//!
//! Both work a page of documents at a time: the references (or join keys) of the page
//! are collected and answered by **one** batched query on the target (`{_id: {$in:
//! [...]}}` for populate, `{<foreign>: {$in: [...]}}` for lookup), never one query per
//! document. The target may live in any database (any `Collection<Value>` carries its
//! `Database`), so references cross database files of one `Client` freely. A target
//! whose name is a sharded or partitioned collection (`db.collection("users")` for one
//! made with `create_sharded_collection`) is read through its member files.
//!
//! ```
//! use pocketdb::{Client, PopulateSpec};
//! use serde_json::{json, Value};
//!
//! let dir = tempfile::tempdir()?;
//! let client = Client::open(dir.path())?;
//! let users = client.database("base")?.collection::<Value>("users");
//! let orders = client.database("shop")?.collection::<Value>("orders");
//! users.insert_one(json!({"_id": "u1", "name": "Ada"}))?;
//! orders.insert_one(json!({"_id": 1, "user_id": "u1"}))?;
//! let rows = orders
//!     .find(json!({}))?
//!     .populate_with(PopulateSpec::new("user_id", &users).projection(json!({"name": 1, "_id": 0})))
//!     .to_vec()?;
//! assert_eq!(rows[0]["user_id"], json!({"name": "Ada"}));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use super::plan::Plan;
use super::{from_document, Collection, Cursor, Document};
use crate::error::{Error, Result};
use crate::id::{id_key, validate_id};
use crate::query::matcher::{lookup as reach_path, Found};
use crate::query::{parse_filter, Cond, Filter, InItem, Projection};
use crate::shard::{member_kind, ShardedCollection};
use crate::value::FieldPath;
use serde_json::{json, Map, Value};
use std::any::Any;
use std::collections::{HashMap, HashSet, VecDeque};
use std::marker::PhantomData;

/// Default number of documents resolved per batched lookup.
pub const DEFAULT_POPULATE_PAGE: usize = 256;

/// Largest number of keys sent in one `$in` (SQLite's bound-parameter limit is 32,766).
pub(crate) const MAX_IN_KEYS: usize = 10_000;

/// What to populate: the dotted `path` holding a reference (a single `_id` or an array
/// of them), the collection it refers to, and how to shape the result.
#[derive(Debug, Clone)]
pub struct PopulateSpec {
    /// Dotted path of the reference field (`user_id`, `items.product`). Arrays met along
    /// the path are entered, as in queries.
    pub path: String,
    /// The referenced collection (any database).
    pub from: Collection<Value>,
    /// Projection applied to each referenced document.
    pub projection: Option<Value>,
    /// Name of the field receiving the referenced document(s), a sibling of the
    /// reference field; `None` replaces the reference in place.
    pub as_field: Option<String>,
    /// Collect the references that point to no document (see
    /// [`Populated::missing_references`]).
    pub report_missing: bool,
}

impl PopulateSpec {
    /// Populates `path` from `from`, in place, without projection.
    pub fn new(path: impl Into<String>, from: &Collection<Value>) -> PopulateSpec {
        PopulateSpec {
            path: path.into(),
            from: from.clone(),
            projection: None,
            as_field: None,
            report_missing: false,
        }
    }

    /// Applies a MongoDB projection to the referenced documents.
    pub fn projection(mut self, projection: Value) -> PopulateSpec {
        self.projection = Some(projection);
        self
    }

    /// Writes the referenced document(s) into the sibling field `name` and keeps the
    /// reference.
    pub fn as_field(mut self, name: impl Into<String>) -> PopulateSpec {
        self.as_field = Some(name.into());
        self
    }

    /// Records references that point to no document.
    pub fn report_missing(mut self, yes: bool) -> PopulateSpec {
        self.report_missing = yes;
        self
    }
}

/// A reference that pointed to no document (it was replaced by `null`).
#[derive(Debug, Clone, PartialEq)]
pub struct MissingReference {
    /// `_id` of the document holding the reference (`null` when it has none).
    pub document_id: Value,
    /// The populated path.
    pub path: String,
    /// The reference value that was not found.
    pub reference: Value,
    /// Database of the referenced collection.
    pub database: String,
    /// The referenced collection.
    pub collection: String,
}

struct Compiled {
    path_text: String,
    path: FieldPath,
    from: Collection<Value>,
    /// What `from`'s name stands for (a sharded collection is read through its members).
    target: NamedCollection,
    projection: Option<Projection>,
    as_field: Option<String>,
    report_missing: bool,
}

impl Compiled {
    fn new(spec: PopulateSpec) -> Result<Compiled> {
        let path = FieldPath::parse(&spec.path)?;
        let projection = spec
            .projection
            .as_ref()
            .map(Projection::parse)
            .transpose()?;
        if let Some(name) = &spec.as_field {
            if name.is_empty() || name.starts_with('$') || name.contains(['.', '\0']) {
                return Err(Error::InvalidArgument(format!(
                    "populate: as_field '{name}' must be a plain field name"
                )));
            }
        }
        let target = NamedCollection::resolve(&spec.from)?;
        Ok(Compiled {
            path_text: spec.path,
            path,
            from: spec.from,
            target,
            projection,
            as_field: spec.as_field,
            report_missing: spec.report_missing,
        })
    }
}

type Source = Box<dyn Iterator<Item = Result<Value>> + Send>;

/// A cursor whose documents have their references replaced by the referenced
/// documents. Made by [`Cursor::populate`], [`Cursor::populate_with`] or
/// [`Cursor::populate_many`]; yields `serde_json::Value` unless retyped with
/// [`typed`](Populated::typed).
///
/// Each page of [`page_size`](Populated::page_size) documents costs one query per
/// populated path (see [`lookups`](Populated::lookups)). Missing references become
/// `null`, keeping the positions of array elements.
pub struct Populated<T = Value> {
    source: Source,
    specs: Vec<Compiled>,
    error: Option<Error>,
    page_size: usize,
    buffer: VecDeque<Value>,
    pending_error: Option<Error>,
    source_done: bool,
    missing: Vec<MissingReference>,
    lookups: usize,
    _type: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for Populated<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Populated")
            .field(
                "paths",
                &self.specs.iter().map(|s| &s.path_text).collect::<Vec<_>>(),
            )
            .field("page_size", &self.page_size)
            .field("lookups", &self.lookups)
            .finish()
    }
}

impl<T: Document> Cursor<T> {
    /// Replaces the reference at `path` (an `_id` or an array of `_id`s) with the
    /// document(s) of `from`, which may belong to another database. See
    /// [`PopulateSpec`] for projection, target field and missing-reference reports.
    pub fn populate(self, path: &str, from: &Collection<Value>) -> Populated<Value> {
        self.populate_with(PopulateSpec::new(path, from))
    }

    /// Populates one path as described by `spec`.
    pub fn populate_with(self, spec: PopulateSpec) -> Populated<Value> {
        self.populate_many([spec])
    }

    /// Populates several paths; each costs one batched query per page.
    pub fn populate_many(self, specs: impl IntoIterator<Item = PopulateSpec>) -> Populated<Value> {
        let source: Source = Box::new(self.map(|r| r.and_then(into_value)));
        let mut populated = Populated {
            source,
            specs: Vec::new(),
            error: None,
            page_size: DEFAULT_POPULATE_PAGE,
            buffer: VecDeque::new(),
            pending_error: None,
            source_done: false,
            missing: Vec::new(),
            lookups: 0,
            _type: PhantomData,
        };
        for spec in specs {
            populated = populated.populate_with(spec);
        }
        populated
    }
}

impl<T: Document> Populated<T> {
    /// Also populates `path` from `from`.
    pub fn populate(self, path: &str, from: &Collection<Value>) -> Populated<T> {
        self.populate_with(PopulateSpec::new(path, from))
    }

    /// Also populates what `spec` describes. Specs apply in order, so a later spec may
    /// follow a path inside documents an earlier one brought in.
    pub fn populate_with(mut self, spec: PopulateSpec) -> Populated<T> {
        match Compiled::new(spec) {
            Ok(c) => self.specs.push(c),
            Err(e) => self.error = self.error.or(Some(e)),
        }
        self
    }

    /// Number of documents resolved per batched query (default 256, at least 1).
    pub fn page_size(mut self, n: usize) -> Populated<T> {
        self.page_size = n.max(1);
        self
    }

    /// The same results deserialised as `U`.
    pub fn typed<U: Document>(self) -> Populated<U> {
        Populated {
            source: self.source,
            specs: self.specs,
            error: self.error,
            page_size: self.page_size,
            buffer: self.buffer,
            pending_error: self.pending_error,
            source_done: self.source_done,
            missing: self.missing,
            lookups: self.lookups,
            _type: PhantomData,
        }
    }

    /// References found missing so far by specs with `report_missing` set.
    pub fn missing_references(&self) -> &[MissingReference] {
        &self.missing
    }

    /// Number of batched queries run so far against referenced collections.
    pub fn lookups(&self) -> usize {
        self.lookups
    }

    /// Reads every remaining result.
    pub fn to_vec(self) -> Result<Vec<T>> {
        self.collect()
    }

    /// Reads every remaining result and returns them with the missing references.
    pub fn to_vec_with_missing(mut self) -> Result<(Vec<T>, Vec<MissingReference>)> {
        let mut out = Vec::new();
        for item in self.by_ref() {
            out.push(item?);
        }
        Ok((out, std::mem::take(&mut self.missing)))
    }

    fn fill(&mut self) -> Result<()> {
        let mut page = Vec::with_capacity(self.page_size.min(4096));
        while page.len() < self.page_size {
            match self.source.next() {
                Some(Ok(doc)) => page.push(doc),
                Some(Err(e)) => {
                    if page.is_empty() {
                        self.source_done = true;
                        return Err(e);
                    }
                    self.pending_error = Some(e);
                    self.source_done = true;
                    break;
                }
                None => {
                    self.source_done = true;
                    break;
                }
            }
        }
        for spec in &self.specs {
            if resolve_page(spec, &mut page, &mut self.missing)? {
                self.lookups += 1;
            }
        }
        self.buffer.extend(page);
        Ok(())
    }
}

impl<T: Document> Iterator for Populated<T> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        if let Some(e) = self.error.take() {
            self.source_done = true;
            self.buffer.clear();
            return Some(Err(e));
        }
        if self.buffer.is_empty() {
            if let Some(e) = self.pending_error.take() {
                return Some(Err(e));
            }
            if self.source_done {
                return None;
            }
            if let Err(e) = self.fill() {
                self.source_done = true;
                self.buffer.clear();
                return Some(Err(e));
            }
        }
        self.buffer.pop_front().map(from_document)
    }
}

/// Moves a document into a `Value` without a serde round trip when it already is one.
fn into_value<T: Document>(doc: T) -> Result<Value> {
    let mut slot = Some(doc);
    if let Some(v) = (&mut slot as &mut dyn Any).downcast_mut::<Option<Value>>() {
        return Ok(v.take().unwrap_or(Value::Null));
    }
    serde_json::to_value(slot.take()).map_err(|e| Error::Serde(e.to_string()))
}

/// Calls `f` with every object holding the last segment of `segs` under `value`
/// (entering arrays met along the way, as queries do) and the last segment, or with an
/// array and a numeric last segment.
fn for_each_parent(value: &mut Value, segs: &[String], f: &mut dyn FnMut(&mut Value, &str)) {
    let Some((head, rest)) = segs.split_first() else {
        return;
    };
    if rest.is_empty() {
        match value {
            Value::Object(_) => f(value, head),
            Value::Array(items) => {
                if FieldPath::as_index(head).is_some() {
                    f(value, head);
                } else {
                    for item in items.iter_mut().filter(|i| i.is_object()) {
                        f(item, head);
                    }
                }
            }
            _ => {}
        }
        return;
    }
    match value {
        Value::Object(map) => {
            if let Some(child) = map.get_mut(head) {
                for_each_parent(child, rest, f);
            }
        }
        Value::Array(items) => match FieldPath::as_index(head) {
            Some(i) => {
                if let Some(child) = items.get_mut(i) {
                    for_each_parent(child, rest, f);
                }
            }
            None => {
                for item in items.iter_mut().filter(|i| i.is_object()) {
                    for_each_parent(item, segs, f);
                }
            }
        },
        _ => {}
    }
}

fn child<'a>(parent: &'a Value, key: &str) -> Option<&'a Value> {
    match parent {
        Value::Object(m) => m.get(key),
        Value::Array(items) => items.get(FieldPath::as_index(key)?),
        _ => None,
    }
}

/// A reference that can be looked up: a valid `_id` value.
fn usable_reference(v: &Value) -> bool {
    !v.is_null() && validate_id(v).is_ok()
}

/// A collection as its name resolves in its database's catalog: its own table, or the
/// member files of the sharded or partitioned collection the name stands for (whose own
/// table is an empty placeholder that must not be read in its place).
#[derive(Debug, Clone)]
pub(crate) enum NamedCollection {
    /// A collection stored in its database's own file.
    Table(Collection<Value>),
    /// A sharded or partitioned collection, read and written through its members.
    Spread(ShardedCollection<Value>),
}

impl NamedCollection {
    /// What `coll`'s name stands for in its database's catalog.
    pub(crate) fn resolve(coll: &Collection<Value>) -> Result<NamedCollection> {
        let db = coll.database();
        let kind = db
            .collection_options(coll.name())?
            .and_then(|o| member_kind(&o.options));
        Ok(match kind {
            None => NamedCollection::Table(coll.clone()),
            Some("shards") => NamedCollection::Spread(db.sharded(coll.name())?),
            Some(_) => NamedCollection::Spread((*db.partitioned::<Value>(coll.name())?).clone()),
        })
    }

    /// The documents matching `filter`, read as the collection's own `find` reads them
    /// (a sharded collection only from the members the filter can match).
    pub(crate) fn find_filter(&self, filter: Filter) -> Result<Source> {
        Ok(match self {
            NamedCollection::Table(c) => Box::new(c.find_filter(filter)),
            NamedCollection::Spread(s) => Box::new(s.find_filter(filter)?),
        })
    }
}

/// The batched read shared by populate, [`Collection::lookup`] and the aggregation
/// `$lookup`: calls `each` with every document of `from` whose `path` equals one of
/// `keys` (an array field by element, as queries match), once each, in storage order
/// (member by member for a sharded collection).
/// One `{path: {$in: keys}}` query — SQL, so an index on `path` serves it — per
/// [`MAX_IN_KEYS`] keys (SQLite's parameter limit); on a plain collection the filter
/// passes `from`'s plugins' `before_read` hooks like any `find`, on a sharded one it
/// reaches the members as the sharded collection's `find` sends it. Returns the number
/// of queries run.
pub(crate) fn fetch_in(
    from: &NamedCollection,
    path: &FieldPath,
    keys: &[Value],
    each: &mut dyn FnMut(Value) -> Result<()>,
) -> Result<usize> {
    let chunked = keys.len() > MAX_IN_KEYS;
    let mut seen: HashSet<String> = HashSet::new();
    let mut queries = 0;
    for chunk in keys.chunks(MAX_IN_KEYS) {
        let filter = Filter::Field {
            path: path.clone(),
            cond: Cond::In(
                chunk
                    .iter()
                    .cloned()
                    .map(InItem::Value)
                    .collect::<Vec<_>>()
                    .into(),
            ),
        };
        let filter = match from {
            NamedCollection::Table(c) if c.database().has_plugins() => {
                let mut json = Map::new();
                json.insert(path.to_string(), json!({ "$in": chunk }));
                c.user_filter(Value::Object(json))?
            }
            _ => filter,
        };
        queries += 1;
        for doc in from.find_filter(filter)? {
            let doc = doc?;
            // A document can match keys of two chunks; keep it once.
            if chunked && !seen.insert(doc.get("_id").map(id_key).unwrap_or_default()) {
                continue;
            }
            each(doc)?;
        }
    }
    Ok(queries)
}

/// Resolves one spec over a page. Returns whether a query was run.
fn resolve_page(
    spec: &Compiled,
    page: &mut [Value],
    missing: &mut Vec<MissingReference>,
) -> Result<bool> {
    // 1. Collect the distinct references of the page.
    let mut wanted: Vec<Value> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    for doc in page.iter_mut() {
        for_each_parent(doc, spec.path.segments(), &mut |parent, key| {
            let refs: Vec<&Value> = match child(parent, key) {
                Some(Value::Array(items)) => items.iter().collect(),
                Some(v) => vec![v],
                None => Vec::new(),
            };
            for r in refs.into_iter().filter(|r| usable_reference(r)) {
                if seen.insert(id_key(r)) {
                    wanted.push(r.clone());
                }
            }
        });
    }
    if wanted.is_empty() && !page.iter().any(|_| spec.as_field.is_some()) {
        return Ok(false);
    }
    // 2. One batched query (chunked only beyond SQLite's parameter limit).
    let mut found: HashMap<String, Value> = HashMap::with_capacity(wanted.len());
    let id_path = FieldPath::parse("_id")?;
    fetch_in(&spec.target, &id_path, &wanted, &mut |doc| {
        let key = doc.get("_id").map(id_key).unwrap_or_default();
        let shaped = match &spec.projection {
            Some(p) => p.apply(&doc),
            None => doc,
        };
        found.insert(key, shaped);
        Ok(())
    })?;
    let queried = !wanted.is_empty();
    // 3. Substitute.
    for doc in page.iter_mut() {
        let doc_id = doc.get("_id").cloned().unwrap_or(Value::Null);
        let mut lost: Vec<Value> = Vec::new();
        for_each_parent(doc, spec.path.segments(), &mut |parent, key| {
            let Some(reference) = child(parent, key) else {
                return;
            };
            let mut resolve = |r: &Value| -> Value {
                if r.is_null() {
                    return Value::Null;
                }
                match usable_reference(r).then(|| found.get(&id_key(r))).flatten() {
                    Some(d) => d.clone(),
                    None => {
                        lost.push(r.clone());
                        Value::Null
                    }
                }
            };
            let replacement = match reference {
                Value::Array(items) => Value::Array(items.iter().map(&mut resolve).collect()),
                single => resolve(single),
            };
            match (&spec.as_field, parent) {
                (Some(name), Value::Object(map)) => {
                    map.insert(name.clone(), replacement);
                }
                (None, Value::Object(map)) => {
                    map.insert(key.to_string(), replacement);
                }
                (None, Value::Array(items)) => {
                    if let Some(slot) = FieldPath::as_index(key).and_then(|i| items.get_mut(i)) {
                        *slot = replacement;
                    }
                }
                _ => {}
            }
        });
        if spec.report_missing {
            missing.extend(lost.into_iter().map(|reference| MissingReference {
                document_id: doc_id.clone(),
                path: spec.path_text.clone(),
                reference,
                database: spec.from.database().name().to_string(),
                collection: spec.from.name().to_string(),
            }));
        }
    }
    Ok(queried)
}

// ----- lookup ---------------------------------------------------------------------------

/// How [`Collection::lookup`] answers a join.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LookupStrategy {
    /// One SQL join when both collections are reachable from one connection (same
    /// database, or the foreign database attached with [`crate::Client::attach`]), both
    /// fields are single top-level names, the foreign collection is not sharded or
    /// partitioned and neither collection has buffered writes pending (see
    /// [`crate::Durability::Buffered`]); batched otherwise.
    #[default]
    Auto,
    /// A page of local documents, then one `$in` query on the foreign collection.
    Batched,
    /// One SQL join. Pending buffered writes of either collection are flushed first
    /// (SQL reads only what SQLite stores). Fails with `InvalidArgument` when not
    /// possible (paths, databases, or a sharded or partitioned foreign collection).
    SqlJoin,
}

/// A left outer join from one collection to another, as MongoDB's `$lookup` with
/// `localField` / `foreignField`: every local document gets an array field `as_field`
/// holding the foreign documents whose `foreign_field` equals its `local_field` (arrays
/// on either side match by element; a missing field matches null).
#[derive(Debug, Clone)]
pub struct LookupSpec {
    /// The foreign collection (any database).
    pub from: Collection<Value>,
    /// Dotted path in the local documents.
    pub local_field: String,
    /// Dotted path in the foreign documents.
    pub foreign_field: String,
    /// Field receiving the array of matches.
    pub as_field: String,
    /// How to run the join.
    pub strategy: LookupStrategy,
}

impl LookupSpec {
    /// A join on `local_field == from.foreign_field` into `as_field`.
    pub fn new(
        from: &Collection<Value>,
        local_field: impl Into<String>,
        foreign_field: impl Into<String>,
        as_field: impl Into<String>,
    ) -> LookupSpec {
        LookupSpec {
            from: from.clone(),
            local_field: local_field.into(),
            foreign_field: foreign_field.into(),
            as_field: as_field.into(),
            strategy: LookupStrategy::Auto,
        }
    }

    /// Chooses the strategy.
    pub fn strategy(mut self, strategy: LookupStrategy) -> LookupSpec {
        self.strategy = strategy;
        self
    }
}

/// The result of a lookup with the strategy that answered it.
#[derive(Debug, Clone, PartialEq)]
pub struct LookupOutput {
    /// The local documents, each with its array of matches.
    pub documents: Vec<Value>,
    /// `Batched` or `SqlJoin`.
    pub strategy: LookupStrategy,
}

/// The join keys of a document at a path: each reached value and, for arrays, each
/// element; a missing path gives `null`.
fn join_keys(doc: &Value, path: &FieldPath) -> Vec<Value> {
    let mut out = Vec::new();
    let mut missing = false;
    for f in reach_path(doc, path.segments()) {
        match f {
            Found::Missing => missing = true,
            Found::Value(Value::Array(items)) => {
                out.extend(items.iter().cloned());
                out.push(Value::Array(items.clone()));
            }
            Found::Value(v) => out.push(v.clone()),
        }
    }
    if missing || out.is_empty() {
        out.push(Value::Null);
    }
    out
}

fn join_matches(local: &[Value], foreign: &[Value], keys: &mut HashSet<String>) -> bool {
    keys.clear();
    keys.extend(local.iter().map(id_key));
    foreign.iter().any(|v| keys.contains(&id_key(v)))
}

/// Keys safe to send in `$in` (objects with `$` fields would be read as operators).
fn in_operand(v: &Value) -> bool {
    match v {
        Value::Object(m) => !m.keys().any(|k| k.starts_with('$')),
        _ => true,
    }
}

impl<T: Document> Collection<T> {
    /// Joins the documents matching `filter` with `spec.from` (see [`LookupSpec`]).
    pub fn lookup(&self, filter: Value, spec: &LookupSpec) -> Result<Vec<Value>> {
        Ok(self.lookup_explained(filter, spec)?.documents)
    }

    /// Like [`lookup`](Collection::lookup), also telling which strategy answered.
    pub fn lookup_explained(&self, filter: Value, spec: &LookupSpec) -> Result<LookupOutput> {
        let local = FieldPath::parse(&spec.local_field)?;
        let foreign = FieldPath::parse(&spec.foreign_field)?;
        if spec.as_field.is_empty()
            || spec.as_field.starts_with('$')
            || spec.as_field.contains(['.', '\0'])
        {
            return Err(Error::InvalidArgument(format!(
                "lookup: as_field '{}' must be a plain field name",
                spec.as_field
            )));
        }
        let filter = parse_filter(&filter)?;
        let target = NamedCollection::resolve(&spec.from)?;
        // SQL reads only what SQLite stores in the two tables: not the members of a
        // sharded collection, nor writes a buffered database has not applied yet.
        let pending = self.buffer_pending() || spec.from.buffer_pending();
        let sql_schema = match (spec.strategy, &target) {
            (LookupStrategy::Batched, _) => None,
            (LookupStrategy::SqlJoin, NamedCollection::Spread(s)) => {
                return Err(Error::InvalidArgument(format!(
                    "lookup: an SQL join cannot read '{}', a sharded or partitioned collection \
                     (use the batched strategy)",
                    s.name()
                )))
            }
            (_, NamedCollection::Spread(_)) => None,
            (LookupStrategy::Auto, _) if pending => None,
            _ => {
                let simple = local.len() == 1 && foreign.len() == 1;
                let schema = self.db.join_schema(spec.from.database())?;
                match (simple, schema) {
                    (true, Some(s)) => Some(s),
                    _ if spec.strategy == LookupStrategy::SqlJoin => {
                        return Err(Error::InvalidArgument(
                            "lookup: an SQL join needs single-field paths and the foreign database \
                             attached to (or equal to) the local one"
                                .to_string(),
                        ))
                    }
                    _ => None,
                }
            }
        };
        match sql_schema {
            Some(schema) => {
                // Only an explicit `SqlJoin` gets here with writes pending.
                if self.buffer_pending() {
                    self.db.flush()?;
                }
                if spec.from.buffer_pending() {
                    spec.from.database().flush()?;
                }
                let documents =
                    self.lookup_sql(filter, &schema, spec, &target, &local, &foreign)?;
                Ok(LookupOutput {
                    documents,
                    strategy: LookupStrategy::SqlJoin,
                })
            }
            None => Ok(LookupOutput {
                documents: self.lookup_batched(filter, spec, &target, &local, &foreign)?,
                strategy: LookupStrategy::Batched,
            }),
        }
    }

    fn lookup_batched(
        &self,
        filter: crate::query::Filter,
        spec: &LookupSpec,
        target: &NamedCollection,
        local: &FieldPath,
        foreign: &FieldPath,
    ) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        let mut source = self.typed::<Value>().find_filter(filter);
        let mut scratch = HashSet::new();
        loop {
            let mut page = Vec::new();
            for doc in source.by_ref().take(DEFAULT_POPULATE_PAGE) {
                page.push(doc?);
            }
            if page.is_empty() {
                return Ok(out);
            }
            let page_keys: Vec<Vec<Value>> = page.iter().map(|d| join_keys(d, local)).collect();
            let mut wanted = Vec::new();
            let mut seen = HashSet::new();
            for k in page_keys.iter().flatten() {
                if in_operand(k) && seen.insert(id_key(k)) {
                    wanted.push(k.clone());
                }
            }
            let mut candidates: Vec<(Vec<Value>, Value)> = Vec::new();
            fetch_in(target, foreign, &wanted, &mut |doc| {
                candidates.push((join_keys(&doc, foreign), doc));
                Ok(())
            })?;
            for (mut doc, keys) in page.into_iter().zip(page_keys) {
                let matched: Vec<Value> = candidates
                    .iter()
                    .filter(|(fk, _)| join_matches(&keys, fk, &mut scratch))
                    .map(|(_, d)| d.clone())
                    .collect();
                if let Value::Object(m) = &mut doc {
                    m.insert(spec.as_field.clone(), Value::Array(matched));
                }
                out.push(doc);
            }
        }
    }

    fn lookup_sql(
        &self,
        filter: crate::query::Filter,
        schema: &str,
        spec: &LookupSpec,
        target: &NamedCollection,
        local: &FieldPath,
        foreign: &FieldPath,
    ) -> Result<Vec<Value>> {
        use crate::engine::schema::{table_name, validate_collection_name};
        validate_collection_name(&self.name)?;
        self.refuse_spread()?;
        validate_collection_name(spec.from.name())?;
        self.db.expire_due(&self.name)?;
        spec.from.database().expire_due(spec.from.name())?;
        let plan = Plan::new(filter);
        let lpath = json_path(local.first());
        let fpath = json_path(foreign.first());
        let foreign_table = format!("{}.{}", quote_ident(schema), table_name(spec.from.name()));
        let sql = format!(
            "SELECT a.rid, json(a.doc), json(b.doc)
             FROM (SELECT rid, doc FROM main.{local_table} WHERE ({where_sql}) AND rid > ?
                   ORDER BY rid LIMIT ?) AS a
             LEFT JOIN {foreign_table} AS b ON (
               EXISTS (SELECT 1 FROM json_each(a.doc, ?) AS l, json_each(b.doc, ?) AS f
                       WHERE l.type IN ('object', 'array') OR f.type IN ('object', 'array')
                          OR (l.atom = f.atom AND (l.type = f.type
                              OR (l.type IN ('integer', 'real') AND f.type IN ('integer', 'real')))))
               OR ((coalesce(json_type(a.doc, ?), 'null') = 'null'
                    OR EXISTS (SELECT 1 FROM json_each(a.doc, ?) AS l WHERE l.type = 'null'))
                   AND (coalesce(json_type(b.doc, ?), 'null') = 'null'
                    OR EXISTS (SELECT 1 FROM json_each(b.doc, ?) AS f WHERE f.type = 'null')))
               OR (json_type(a.doc, ?) = 'array' AND json_type(b.doc, ?) = 'array'))
             ORDER BY a.rid, b.rid",
            local_table = table_name(&self.name),
            where_sql = plan.where_sql,
        );
        let exists_local = self
            .db
            .read(|conn| self.db.has_collection(conn, &self.name))?;
        if !exists_local {
            return Ok(Vec::new());
        }
        let foreign_exists = spec
            .from
            .database()
            .read(|conn| spec.from.database().has_collection(conn, spec.from.name()))?;
        if !foreign_exists {
            return self.lookup_batched(plan.filter.clone(), spec, target, local, foreign);
        }
        let mut out = Vec::new();
        let mut after = 0i64;
        let mut scratch = HashSet::new();
        loop {
            let page: Vec<(i64, String, Option<String>)> = self.db.read_joined(|conn| {
                let mut stmt = conn.prepare_cached(&sql)?;
                let mut params: Vec<&dyn rusqlite::ToSql> = plan
                    .params
                    .iter()
                    .map(|p| p as &dyn rusqlite::ToSql)
                    .collect();
                let limit = DEFAULT_POPULATE_PAGE as i64;
                params.push(&after);
                params.push(&limit);
                for p in [
                    &lpath, &fpath, &lpath, &lpath, &fpath, &fpath, &lpath, &fpath,
                ] {
                    params.push(p);
                }
                let rows =
                    stmt.query_map(params.as_slice(), |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })?;
            let Some(last) = page.last().map(|r| r.0) else {
                return Ok(out);
            };
            after = last;
            let mut current: Option<(i64, Value, Vec<Value>, Vec<Value>)> = None;
            let finish = |entry: Option<(i64, Value, Vec<Value>, Vec<Value>)>,
                          out: &mut Vec<Value>| {
                if let Some((_, mut doc, _, matched)) = entry {
                    if plan.exact || plan.filter.matches(&doc) {
                        if let Value::Object(m) = &mut doc {
                            m.insert(spec.as_field.clone(), Value::Array(matched));
                        }
                        out.push(doc);
                    }
                }
            };
            for (rid, ltext, ftext) in page {
                if current.as_ref().map(|c| c.0) != Some(rid) {
                    finish(current.take(), &mut out);
                    let doc: Value = serde_json::from_str(&ltext)?;
                    let keys = join_keys(&doc, local);
                    current = Some((rid, doc, keys, Vec::new()));
                }
                if let (Some(text), Some(entry)) = (ftext, current.as_mut()) {
                    let fdoc: Value = serde_json::from_str(&text)?;
                    if join_matches(&entry.2, &join_keys(&fdoc, foreign), &mut scratch) {
                        entry.3.push(fdoc);
                    }
                }
            }
            finish(current.take(), &mut out);
        }
    }
}

/// A JSON path naming one top-level field, quoted for any key.
fn json_path(field: &str) -> String {
    format!("$.{}", Value::String(field.to_string()))
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
