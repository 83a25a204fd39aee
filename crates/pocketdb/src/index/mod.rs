//! Secondary indexes: the catalog, building and dropping, keeping them in step with
//! writes, unique constraints, and TTL expiry.
//!
//! An index on `keys` (MongoDB's key specification, `{"status": 1, "created_at": -1}`) is
//!
//! * an SQLite **expression index** `"pocketdb_x<ident>"` on the collection table whose
//!   columns are exactly [`crate::query::sql::path_expr`] of each key path, so SQLite uses
//!   it for the SQL the query compiler emits on paths that never held an array;
//! * a **multikey side table** `"pocketdb_m<ident>"(t0, v0, t1, v1, …, rid)` with one row
//!   per index key of each document (every array element), created and filled the first
//!   time a document holds an array on one of the key paths, then maintained by every
//!   write in the write's transaction. Queries then narrow candidates with
//!   `rid IN (SELECT rid FROM … WHERE <bounds>)` (see `bounds`);
//! * a row of `_pocketdb_indexes` holding the spec, the options, and two per-key bit
//!   sets: `multikey` (a document held an array at the path or a prefix) and `mixed` (a
//!   document held a value SQLite orders differently from MongoDB: a boolean, a
//!   document, an integer beyond `i64`). Both only ever turn on, as in MongoDB. A path is
//!   compiled without array branches while its multikey bit is off, and sorts are pushed
//!   into SQL only on paths with both bits off.
//!
//! Unique indexes are enforced by the write path with MongoDB's rules (a missing field
//! is `null`; `1` and `1.0` collide, `true` and `1` do not; sparse and partial indexes
//! skip the documents they do not index), looking the key up through the index itself.
//!
//! This module owns the SQL objects above and nothing else: it never changes documents,
//! except TTL expiry, which deletes through the collection's delete path.

mod bounds;
mod build;
mod keys;
pub(crate) mod ttl;
pub(crate) mod vector;

pub(crate) use bounds::{prefix_range, side_bounds, Bounds};
pub(crate) use build::{
    create_indexes, drop_all, drop_index, on_drop_collection, on_rename_collection,
};
pub use ttl::parse_date_millis;
pub(crate) use ttl::{expire_collection, TtlMonitor};

use crate::error::{Error, Result};
use crate::query::{parse_filter, Filter, SortOrder};
use crate::value::FieldPath;
use keys::{
    describe_key, has_any_field, has_array_on_path, key_tuples, scalar_value, sorts_differently,
    tuple_text, KeyPart,
};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

/// Options of [`crate::Collection::create_index`], as MongoDB names them.
///
/// ```
/// use pocketdb::IndexOptions;
/// let o = IndexOptions::default().unique(true).name("by_email");
/// assert!(o.unique);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IndexOptions {
    /// Name of the index; MongoDB's default (`email_1`, `status_1_created_at_-1`) when
    /// `None`. A chosen name is at most 1024 bytes, holds no control character, `"` or
    /// `\`, and is not `*` (see [`validate_index_name`]).
    pub name: Option<String>,
    /// Reject a second document with the same key (missing fields count as `null`).
    pub unique: bool,
    /// Skip documents lacking every key field (for uniqueness; queries are unaffected).
    pub sparse: bool,
    /// Index only documents matching this filter (for uniqueness; queries are
    /// unaffected).
    pub partial_filter_expression: Option<Value>,
    /// TTL: delete documents whose date at the (single) key path is older than this many
    /// seconds. See [`parse_date_millis`] for the accepted date forms.
    pub expire_after_seconds: Option<i64>,
}

impl IndexOptions {
    /// Sets the name.
    pub fn name(mut self, name: impl Into<String>) -> IndexOptions {
        self.name = Some(name.into());
        self
    }

    /// Sets `unique`.
    pub fn unique(mut self, unique: bool) -> IndexOptions {
        self.unique = unique;
        self
    }

    /// Sets `sparse`.
    pub fn sparse(mut self, sparse: bool) -> IndexOptions {
        self.sparse = sparse;
        self
    }

    /// Sets the partial filter expression.
    pub fn partial_filter_expression(mut self, filter: Value) -> IndexOptions {
        self.partial_filter_expression = Some(filter);
        self
    }

    /// Sets the TTL in seconds.
    pub fn expire_after_seconds(mut self, seconds: i64) -> IndexOptions {
        self.expire_after_seconds = Some(seconds);
        self
    }

    /// Reads options from a MongoDB-style document (`{"unique": true, "name": "x",
    /// "sparse": false, "partialFilterExpression": {…}, "expireAfterSeconds": 60}`;
    /// snake_case names are accepted too).
    pub fn from_json(doc: &Value) -> Result<IndexOptions> {
        let obj = doc.as_object().ok_or_else(|| {
            Error::InvalidArgument("index options must be a document".to_string())
        })?;
        let mut out = IndexOptions::default();
        for (k, v) in obj {
            let bad = || Error::InvalidArgument(format!("index option '{k}': unexpected {v}"));
            match k.as_str() {
                "name" => out.name = Some(v.as_str().ok_or_else(bad)?.to_string()),
                "unique" => out.unique = option_flag(v).ok_or_else(bad)?,
                "sparse" => out.sparse = option_flag(v).ok_or_else(bad)?,
                "partialFilterExpression" | "partial_filter_expression" => {
                    out.partial_filter_expression = Some(v.clone())
                }
                "expireAfterSeconds" | "expire_after_seconds" => {
                    out.expire_after_seconds = Some(whole_seconds(v).ok_or_else(bad)?)
                }
                "v" | "background" => {}
                _ => {
                    return Err(Error::InvalidArgument(format!(
                        "unknown index option '{k}'"
                    )))
                }
            }
        }
        Ok(out)
    }
}

/// A boolean index option as MongoDB reads it: `true`/`false`, or a number (non-zero is
/// true, as the shell's and drivers' `unique: 1` means). `None` for anything else.
fn option_flag(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_f64().filter(|f| !f.is_nan()).map(|f| f != 0.0),
        _ => None,
    }
}

/// A TTL in seconds: an integer, or a double with no fractional part (`3600.0`, as
/// JavaScript clients send it). `None` for anything else.
fn whole_seconds(v: &Value) -> Option<i64> {
    if let Some(i) = v.as_i64() {
        return Some(i);
    }
    let f = v.as_f64()?;
    // `i64::MAX as f64` rounds up to 2^63, itself out of range: hence `<`.
    (f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64).then_some(f as i64)
}

/// One index to create with [`crate::Collection::create_indexes`].
#[derive(Debug, Clone, PartialEq)]
pub struct IndexModel {
    /// The key specification, `{"field": 1 | -1, …}`.
    pub keys: Value,
    /// The options.
    pub options: IndexOptions,
}

impl IndexModel {
    /// An index on `keys` with default options.
    pub fn new(keys: Value) -> IndexModel {
        IndexModel {
            keys,
            options: IndexOptions::default(),
        }
    }

    /// The same model with `options`.
    pub fn with_options(mut self, options: IndexOptions) -> IndexModel {
        self.options = options;
        self
    }
}

/// An index as [`crate::Collection::list_indexes`] reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IndexInfo {
    /// The index name (`_id_` for the primary key).
    pub name: String,
    /// The key specification.
    pub keys: Value,
    /// Whether the index rejects duplicate keys.
    pub unique: bool,
    /// Whether the index skips documents lacking every key field.
    pub sparse: bool,
    /// The partial filter, if any.
    pub partial_filter_expression: Option<Value>,
    /// The TTL in seconds, if any.
    pub expire_after_seconds: Option<i64>,
    /// Whether some document held an array on a key path (the index has a side table).
    pub multikey: bool,
}

impl IndexInfo {
    /// The index in MongoDB's `listIndexes` shape: `{"v": 2, "key": …, "name": …, …}`.
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        out.insert("v".into(), json!(2));
        out.insert("key".into(), self.keys.clone());
        out.insert("name".into(), json!(self.name));
        // MongoDB lists the `_id` index without the flag (it is always unique).
        if self.unique && self.name != "_id_" {
            out.insert("unique".into(), json!(true));
        }
        if self.sparse {
            out.insert("sparse".into(), json!(true));
        }
        if let Some(p) = &self.partial_filter_expression {
            out.insert("partialFilterExpression".into(), p.clone());
        }
        if let Some(s) = self.expire_after_seconds {
            out.insert("expireAfterSeconds".into(), json!(s));
        }
        if self.multikey {
            out.insert("multikey".into(), json!(true));
        }
        Value::Object(out)
    }
}

/// What an index build is doing, reported to the progress callback of
/// [`crate::Collection::create_index_with_progress`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexBuildPhase {
    /// Reading every document: keys, multikey detection, uniqueness.
    Scanning,
    /// Filling the multikey side table.
    Multikey,
    /// SQLite is sorting keys into the expression index (reported once, at the start).
    Sorting,
    /// Done.
    Done,
}

/// Progress of an index build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexProgress {
    /// Current phase.
    pub phase: IndexBuildPhase,
    /// Documents processed in this phase.
    pub done: u64,
    /// Documents in the collection.
    pub total: u64,
}

/// An index as the engine uses it.
#[derive(Debug, Clone)]
pub(crate) struct IndexDef {
    pub name: String,
    pub ident: i64,
    pub keys: Vec<(FieldPath, SortOrder)>,
    pub key_spec: Value,
    pub unique: bool,
    pub sparse: bool,
    pub partial: Option<Filter>,
    pub partial_json: Option<Value>,
    pub ttl: Option<i64>,
    /// Bit `i` set: key `i`'s path held an array.
    pub multikey: u64,
    /// Bit `i` set: key `i`'s path held a value SQLite orders unlike MongoDB.
    pub mixed: u64,
}

impl IndexDef {
    /// Quoted name of the SQLite expression index.
    pub(crate) fn sql_index(&self) -> String {
        format!("\"pocketdb_x{}\"", self.ident)
    }

    /// Quoted name of the multikey side table.
    pub(crate) fn side_table(&self) -> String {
        format!("\"pocketdb_m{}\"", self.ident)
    }

    /// True once any key path held an array.
    pub(crate) fn is_multikey(&self) -> bool {
        self.multikey != 0
    }

    pub(crate) fn paths(&self) -> Vec<&FieldPath> {
        self.keys.iter().map(|(p, _)| p).collect()
    }

    /// True when the index holds `doc` for uniqueness (sparse and partial rules).
    fn indexes(&self, doc: &Value) -> bool {
        if self.sparse && !has_any_field(doc, &self.paths()) {
            return false;
        }
        match &self.partial {
            Some(f) => f.matches(doc),
            None => true,
        }
    }

    /// The public description.
    pub(crate) fn info(&self) -> IndexInfo {
        IndexInfo {
            name: self.name.clone(),
            keys: self.key_spec.clone(),
            unique: self.unique,
            sparse: self.sparse,
            partial_filter_expression: self.partial_json.clone(),
            expire_after_seconds: self.ttl,
            multikey: self.is_multikey(),
        }
    }

    fn options_json(&self) -> Value {
        let mut o = Map::new();
        if self.unique {
            o.insert("unique".into(), json!(true));
        }
        if self.sparse {
            o.insert("sparse".into(), json!(true));
        }
        if let Some(p) = &self.partial_json {
            o.insert("partialFilterExpression".into(), p.clone());
        }
        if let Some(t) = self.ttl {
            o.insert("expireAfterSeconds".into(), json!(t));
        }
        Value::Object(o)
    }
}

/// The indexes of one collection, as of one catalog generation.
#[derive(Debug, Default)]
pub(crate) struct IndexSet {
    pub defs: Vec<IndexDef>,
    /// The collection's vector indexes (see [`vector`]).
    pub vectors: Vec<vector::VectorDef>,
    /// Compiled lookups of the stored holders of unique keys (see [`unique_holders`]).
    holders: HolderPlans,
}

/// The compiled statements that find the stored holders of a unique key, by index and
/// shape of the key (see [`crate::query::shape`]): a unique check compiles its filter
/// once per shape and index set instead of once per write.
#[derive(Debug, Default)]
struct HolderPlans {
    state: foldhash::quality::RandomState,
    plans: Mutex<HashMap<u64, Arc<HolderPlan>>>,
}

#[derive(Debug)]
struct HolderPlan {
    sql: String,
    sources: Vec<crate::query::shape::ParamSource>,
    slots: usize,
    exact: bool,
}

/// Most holder lookups an index set keeps compiled (a handful per unique index: one per
/// combination of its key values' types).
const MAX_HOLDER_PLANS: usize = 64;

impl HolderPlans {
    /// The statement selecting `rid, id, doc` of the rows of `table` matching
    /// `filter` (the holder filter of index `def`), other than the row bound last (with
    /// whether it answers the filter exactly), and its parameters but the last.
    fn query(
        &self,
        set: &IndexSet,
        def: &IndexDef,
        table: &str,
        filter: &Filter,
    ) -> (Arc<HolderPlan>, Vec<SqlValue>) {
        use std::hash::Hash;
        let shape = crate::query::shape::shape(filter, &self.state, |mut h| {
            def.ident.hash(&mut h);
            table.hash(&mut h);
        });
        let cached = self
            .plans
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&shape.hash)
            .cloned();
        if let Some(plan) = cached.filter(|p| p.slots == shape.lits.len()) {
            if let Some(params) = shape.bind(&plan.sources) {
                return (plan, params);
            }
        }
        let options = crate::query::sql::CompileOptions {
            scalar_paths: set.scalar_paths(),
        };
        let (compiled, srcs) = crate::query::sql::compile_filter_traced(filter, &options);
        let sql = format!(
            "SELECT rid, id, doc FROM {table} WHERE ({}) AND rid <> ?",
            compiled.sql
        );
        let sources = shape.sources(&compiled.params, &srcs);
        let reusable = sources.is_some();
        let plan = Arc::new(HolderPlan {
            sql,
            sources: sources.unwrap_or_default(),
            slots: shape.lits.len(),
            exact: compiled.exact,
        });
        if reusable {
            let mut plans = self.plans.lock().unwrap_or_else(PoisonError::into_inner);
            if plans.len() < MAX_HOLDER_PLANS {
                plans.insert(shape.hash, plan.clone());
            }
        }
        (plan, compiled.params)
    }
}

impl IndexSet {
    /// True when the collection has no secondary index (the write path then has nothing
    /// to maintain).
    pub(crate) fn is_empty(&self) -> bool {
        self.defs.is_empty() && self.vectors.is_empty()
    }

    /// Key paths known to hold no array (in any document, at the path or a prefix).
    pub(crate) fn scalar_paths(&self) -> HashSet<FieldPath> {
        let mut out = HashSet::new();
        for d in &self.defs {
            for (i, (p, _)) in d.keys.iter().enumerate() {
                if d.multikey & (1 << i) == 0 {
                    out.insert(p.clone());
                }
            }
        }
        out
    }

    /// True when sorting by `path` in SQL (`ORDER BY json_extract(…)`) gives MongoDB's
    /// order: an index knows the path holds neither arrays nor values SQLite orders
    /// differently.
    pub(crate) fn sortable(&self, path: &FieldPath) -> bool {
        self.defs.iter().any(|d| {
            d.keys.iter().enumerate().any(|(i, (p, _))| {
                p == path && d.multikey & (1 << i) == 0 && d.mixed & (1 << i) == 0
            })
        })
    }

    /// The index with this name.
    pub(crate) fn by_name(&self, name: &str) -> Option<&IndexDef> {
        self.defs.iter().find(|d| d.name == name)
    }

    /// The index whose key specification equals `spec`.
    pub(crate) fn by_keys(&self, spec: &Value) -> Option<&IndexDef> {
        let wanted = parse_keys(spec).ok()?;
        self.defs.iter().find(|d| d.keys == wanted)
    }

    /// The index a SQLite plan line mentions (expression index or side table).
    pub(crate) fn mentioned_in(&self, plan_line: &str) -> Option<&IndexDef> {
        self.defs.iter().find(|d| {
            [
                format!("pocketdb_x{}", d.ident),
                format!("pocketdb_m{}", d.ident),
            ]
            .iter()
            .any(|needle| mentions(plan_line, needle))
        })
    }
}

fn mentions(line: &str, needle: &str) -> bool {
    line.match_indices(needle).any(|(at, _)| {
        !line[at + needle.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit())
    })
}

/// Parses a key specification into paths and directions.
pub(crate) fn parse_keys(spec: &Value) -> Result<Vec<(FieldPath, SortOrder)>> {
    let bad = |message: String| Error::InvalidArgument(format!("index keys: {message}"));
    let obj = spec.as_object().ok_or_else(|| {
        bad(format!(
            "expected a document like {{\"field\": 1}}, got {spec}"
        ))
    })?;
    if obj.is_empty() {
        return Err(bad("at least one key is required".to_string()));
    }
    if obj.len() > 32 {
        return Err(bad("at most 32 keys are allowed".to_string()));
    }
    let mut keys = Vec::with_capacity(obj.len());
    for (k, v) in obj {
        let path = FieldPath::parse(k)?;
        if crate::query::sql::path_expr(&path).is_none() {
            return Err(Error::InvalidName {
                kind: "field",
                name: k.clone(),
                reason:
                    "index paths may not have numeric segments or '\"', '\\' or control characters"
                        .to_string(),
            });
        }
        let order = match v.as_f64() {
            Some(1.0) => SortOrder::Asc,
            Some(-1.0) => SortOrder::Desc,
            _ => {
                return Err(bad(format!(
                    "'{k}': direction must be 1 or -1 (text, hashed and geo indexes are not supported), got {v}"
                )))
            }
        };
        keys.push((path, order));
    }
    Ok(keys)
}

/// MongoDB's default index name: `a_1_b_-1`.
pub(crate) fn default_name(keys: &[(FieldPath, SortOrder)]) -> String {
    keys.iter()
        .map(|(p, o)| format!("{p}_{}", if *o == SortOrder::Asc { 1 } else { -1 }))
        .collect::<Vec<_>>()
        .join("_")
}

/// Longest index name a caller may choose, in bytes. MongoDB's generated default names
/// (`field_1`) are not limited: MongoDB (4.2 on) limits neither.
pub const MAX_INDEX_NAME_LEN: usize = 1024;

/// Checks an index name a caller chose: not empty, at most [`MAX_INDEX_NAME_LEN`] bytes,
/// not `*` (which `dropIndexes` reads as "every index"), and free of control characters,
/// `"` and `\`. Any other character is allowed (`first name_1`, `ñame_1`, `a:b_1`): the
/// name is only ever bound as an SQL parameter, never written into SQL text (the SQL
/// objects of an index are named by its numeric ident). Field paths refuse the same
/// characters, so MongoDB's default name of any index passes too, as drivers send it.
pub fn validate_index_name(name: &str) -> Result<()> {
    if name.len() > MAX_INDEX_NAME_LEN {
        return Err(bad_index_name(name, "name is longer than 1024 bytes"));
    }
    if name == "*" {
        return Err(bad_index_name(
            name,
            "'*' stands for every index in dropIndexes",
        ));
    }
    validate_default_name(name)
}

/// Checks a name [`default_name`] generated (or a chosen one, after its own checks): not
/// empty and free of control characters, `"` and `\`. A generated name always passes
/// (its key paths passed [`parse_keys`]); the check keeps that true if paths change.
pub(crate) fn validate_default_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(bad_index_name(name, "name is empty"));
    }
    if name
        .chars()
        .any(|c| c.is_control() || c == '"' || c == '\\')
    {
        return Err(bad_index_name(
            name,
            "control characters, '\"' and '\\' are not allowed",
        ));
    }
    Ok(())
}

fn bad_index_name(name: &str, reason: &str) -> Error {
    Error::InvalidName {
        kind: "index",
        name: name.to_string(),
        reason: reason.to_string(),
    }
}

/// The current catalog generation (changes with every index catalog change).
pub(crate) fn current_gen(conn: &Connection) -> Result<String> {
    let mut stmt =
        conn.prepare_cached("SELECT value FROM _pocketdb_meta WHERE key = 'index_gen'")?;
    Ok(stmt
        .query_row([], |r| r.get::<_, String>(0))
        .optional()?
        .unwrap_or_default())
}

/// Marks the catalog changed: a fresh random generation, so a cache filled inside a
/// transaction that rolled back can never be mistaken for a later state.
pub(crate) fn bump_gen(conn: &Connection) -> Result<()> {
    conn.execute(
        "INSERT OR REPLACE INTO _pocketdb_meta(key, value) VALUES ('index_gen', CAST(random() AS TEXT))",
        [],
    )?;
    Ok(())
}

/// True when some collection has a TTL index (the monitor is then started on open).
pub(crate) fn has_ttl_index(conn: &Connection) -> Result<bool> {
    let mut stmt = conn.prepare_cached(
        "SELECT 1 FROM _pocketdb_indexes WHERE json_extract(options, '$.expireAfterSeconds') IS NOT NULL",
    )?;
    Ok(stmt.exists([])?)
}

/// Reads a collection's indexes from the catalog.
pub(crate) fn load(conn: &Connection, collection: &str) -> Result<IndexSet> {
    let mut stmt = conn.prepare_cached(
        "SELECT name, ident, keys, options, multikey, mixed FROM _pocketdb_indexes
         WHERE collection = ?1 ORDER BY ident",
    )?;
    let rows = stmt.query_map([collection], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, i64>(4)?,
            r.get::<_, i64>(5)?,
        ))
    })?;
    let mut defs = Vec::new();
    for row in rows {
        let (name, ident, keys, options, multikey, mixed) = row?;
        let key_spec: Value = serde_json::from_str(&keys)?;
        let options: Value = serde_json::from_str(&options)?;
        let partial_json = options.get("partialFilterExpression").cloned();
        defs.push(IndexDef {
            keys: parse_keys(&key_spec)?,
            key_spec,
            unique: options
                .get("unique")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            sparse: options
                .get("sparse")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            partial: partial_json.as_ref().map(parse_filter).transpose()?,
            partial_json,
            ttl: options.get("expireAfterSeconds").and_then(Value::as_i64),
            name,
            ident,
            multikey: multikey as u64,
            mixed: mixed as u64,
        });
    }
    Ok(IndexSet {
        defs,
        vectors: vector::load(conn, collection)?,
        holders: HolderPlans::default(),
    })
}

/// What one read-only connection last learned of the catalog: the generation it read
/// and SQLite's data version of the main database in that read transaction.
///
/// The data version ([`data_version`]) changes whenever the file changes, through any
/// connection of any process, and a read-only connection changes nothing itself: while
/// a later read transaction of the same connection reports the same data version, it
/// reads the same snapshot, so `index_gen` is still the one recorded and the catalog
/// `SELECT` can be skipped. (The counter is 32 bits; a wrap to exactly the recorded
/// value between two reads would take 2^32 commits seen by this connection.)
#[derive(Debug, Default)]
pub(crate) struct CatalogStamp {
    seen: Option<(u32, String)>,
}

/// SQLite's data version of `conn`'s main database as of the read transaction open on
/// it; `None` when none is open.
fn data_version(conn: &Connection) -> Result<Option<u32>> {
    if conn.transaction_state(Some(rusqlite::MAIN_DB))? == rusqlite::TransactionState::None {
        return Ok(None);
    }
    last_data_version(conn).map(Some)
}

/// SQLite's data version of `conn`'s main database as of the connection's latest read
/// transaction: the counter is refreshed when a read transaction starts (and by the
/// connection's own commits), not when another connection commits.
fn last_data_version(conn: &Connection) -> Result<u32> {
    let mut version: std::ffi::c_uint = 0;
    conn.file_control(
        Some(rusqlite::MAIN_DB),
        rusqlite::FileControl::DataVersion(&mut version),
    )?;
    Ok(version)
}

/// Per-database index state: the catalog cache and the TTL monitor.
#[derive(Default)]
pub(crate) struct DbIndexes {
    cache: Mutex<HashMap<String, (String, Arc<IndexSet>)>>,
    pub(crate) ttl: TtlMonitor,
}

impl DbIndexes {
    /// The collection's indexes as `conn` sees them, from the cache when the catalog
    /// generation is unchanged.
    pub(crate) fn get(&self, conn: &Connection, collection: &str) -> Result<Arc<IndexSet>> {
        let gen = current_gen(conn)?;
        self.get_at(conn, collection, gen)
    }

    /// [`get`](Self::get) on a read-only connection, recording in `stamp` the generation
    /// read and the data version of the read transaction it was read in.
    pub(crate) fn get_stamped(
        &self,
        conn: &Connection,
        collection: &str,
        stamp: &mut CatalogStamp,
    ) -> Result<Arc<IndexSet>> {
        let gen = current_gen(conn)?;
        // Inside a transaction the SELECT above left the read transaction open, so the
        // version is that snapshot's; in autocommit mode nothing is recorded.
        stamp.seen = data_version(conn)?.map(|v| (v, gen.clone()));
        self.get_at(conn, collection, gen)
    }

    /// The cached index set of the generation `stamp` recorded, without reading the
    /// catalog; `None` when nothing is recorded or the cache moved to another
    /// generation. Only valid once [`DbIndexes::confirm`] confirms it for the statements
    /// that used it.
    pub(crate) fn cached(&self, collection: &str, stamp: &CatalogStamp) -> Option<Arc<IndexSet>> {
        let (_, gen) = stamp.seen.as_ref()?;
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        match cache.get(collection) {
            Some((g, set)) if g == gen => Some(set.clone()),
            _ => None,
        }
    }

    /// After statements run in autocommit mode with the index set of
    /// [`DbIndexes::cached`]: true when the catalog those statements read had the
    /// generation `stamp` recorded.
    ///
    /// Each statement ran in its own read transaction, and the data version stays as the
    /// last of them left it; versions only grow, so an unchanged version means every
    /// statement read the recorded snapshot. Otherwise `index_gen` is read again (one
    /// more read transaction, later than theirs): generations are random and a rolled
    /// back one is never seen by a reader, so finding the recorded one again means no
    /// catalog change committed in between. The stamp then records the newer snapshot.
    pub(crate) fn confirm(conn: &Connection, stamp: &mut CatalogStamp) -> Result<bool> {
        let Some((version, gen)) = &stamp.seen else {
            return Ok(false);
        };
        if last_data_version(conn)? == *version {
            return Ok(true);
        }
        let now = current_gen(conn)?;
        let same = now == *gen;
        stamp.seen = Some((last_data_version(conn)?, now));
        Ok(same)
    }

    fn get_at(&self, conn: &Connection, collection: &str, gen: String) -> Result<Arc<IndexSet>> {
        {
            let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((g, set)) = cache.get(collection) {
                if *g == gen {
                    return Ok(set.clone());
                }
            }
        }
        let set = Arc::new(load(conn, collection)?);
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(collection.to_string(), (gen, set.clone()));
        Ok(set)
    }
}

// ----- write path ------------------------------------------------------------------------

/// Called before a document is stored (inserted, or as the new version of `rid`): turns
/// on multikey / mixed flags the document requires (filling side tables), and enforces
/// unique indexes. Returns the index set to maintain (reloaded when flags changed).
pub(crate) fn before_write(
    conn: &Connection,
    cache: &DbIndexes,
    collection: &str,
    table: &str,
    rid: Option<i64>,
    doc: &Value,
) -> Result<Arc<IndexSet>> {
    let set = cache.get(conn, collection)?;
    before_write_with(conn, cache, set, collection, table, rid, doc)
}

/// [`before_write`] with the collection's index set already loaded in this transaction
/// (by a caller writing many documents).
pub(crate) fn before_write_with(
    conn: &Connection,
    cache: &DbIndexes,
    mut set: Arc<IndexSet>,
    collection: &str,
    table: &str,
    rid: Option<i64>,
    doc: &Value,
) -> Result<Arc<IndexSet>> {
    if set.is_empty() {
        return Ok(set);
    }
    let mut changed = false;
    for def in &set.defs {
        let mut multikey = def.multikey;
        let mut mixed = def.mixed;
        for (i, (path, _)) in def.keys.iter().enumerate() {
            let bit = 1u64 << i;
            if multikey & bit == 0 && has_array_on_path(doc, path) {
                multikey |= bit;
            }
            if multikey & bit == 0 && mixed & bit == 0 {
                if let Some(v) = scalar_value(doc, path) {
                    if sorts_differently(v) {
                        mixed |= bit;
                    }
                }
            }
        }
        if multikey != def.multikey || mixed != def.mixed {
            if def.multikey == 0 && multikey != 0 {
                build::create_side_table(conn, def, table, None)?;
            }
            conn.execute(
                "UPDATE _pocketdb_indexes SET multikey = ?1, mixed = ?2 WHERE ident = ?3",
                rusqlite::params![multikey as i64, mixed as i64, def.ident],
            )?;
            changed = true;
        }
    }
    if changed {
        bump_gen(conn)?;
        set = cache.get(conn, collection)?;
    }
    // Refused here, before the row is written: a bulk write goes on after a failed
    // document without a savepoint, so a failure after the row would leave it stored.
    for def in set.defs.iter().filter(|d| d.is_multikey()) {
        if exceeds_key_limit(def, doc) {
            return Err(too_many_keys(def));
        }
    }
    for def in set.defs.iter().filter(|d| d.unique) {
        check_unique(conn, collection, table, &set, def, rid, doc)?;
    }
    Ok(set)
}

/// Side-table maintenance after a row was written (`old` and `new` versions of `rid`;
/// `None` for an insert or a delete).
pub(crate) fn after_write(
    conn: &Connection,
    set: &IndexSet,
    rid: i64,
    old: Option<&Value>,
    new: Option<&Value>,
) -> Result<()> {
    for def in set.defs.iter().filter(|d| d.is_multikey()) {
        let paths = def.paths();
        let old_keys = old
            .map(|d| key_tuples(d, &paths))
            .unwrap_or(Some(Vec::new()));
        let new_keys = new
            .map(|d| key_tuples(d, &paths))
            .unwrap_or(Some(Vec::new()));
        let new_keys = new_keys.ok_or_else(|| too_many_keys(def))?;
        if old_keys.as_ref() == Some(&new_keys) {
            continue;
        }
        match (old, old_keys) {
            (Some(_), Some(old_keys)) if old_keys.len() > DIFF_KEYS => {
                // Only the keys that came or went: a `$push` onto a long array is one
                // insert, not a rewrite of every element's key.
                let (gone, came) = key_changes(&old_keys, &new_keys);
                if !gone.is_empty() {
                    let cond: Vec<String> = (0..def.keys.len())
                        .map(|i| format!("t{i}=? AND v{i}=?"))
                        .collect();
                    let mut del = conn.prepare_cached(&format!(
                        "DELETE FROM {} WHERE {} AND rid = ?",
                        def.side_table(),
                        cond.join(" AND ")
                    ))?;
                    build::execute_per_tuple(&mut del, rid, &gone)?;
                }
                build::insert_keys(conn, def, rid, &came)?;
            }
            (None, _) => build::insert_keys(conn, def, rid, &new_keys)?,
            (Some(_), _) => {
                let mut del = conn
                    .prepare_cached(&format!("DELETE FROM {} WHERE rid = ?1", def.side_table()))?;
                del.execute([rid])?;
                build::insert_keys(conn, def, rid, &new_keys)?;
            }
        }
    }
    if !set.vectors.is_empty() {
        vector::after_write(conn, &set.vectors, rid, old, new)?;
    }
    Ok(())
}

/// Above this many keys in a document's old version, its side-table rows are updated
/// by difference rather than deleted and written again.
const DIFF_KEYS: usize = 16;

/// The key tuples only in `old` (to delete) and only in `new` (to insert), compared as
/// the side table's primary key compares them.
fn key_changes(
    old: &[Vec<KeyPart>],
    new: &[Vec<KeyPart>],
) -> (Vec<Vec<KeyPart>>, Vec<Vec<KeyPart>>) {
    let old_texts: Vec<String> = old.iter().map(|t| tuple_text(t)).collect();
    let new_texts: Vec<String> = new.iter().map(|t| tuple_text(t)).collect();
    let old_set: HashSet<&str> = old_texts.iter().map(String::as_str).collect();
    let new_set: HashSet<&str> = new_texts.iter().map(String::as_str).collect();
    let gone = old
        .iter()
        .zip(&old_texts)
        .filter(|(_, text)| !new_set.contains(text.as_str()))
        .map(|(t, _)| t.clone())
        .collect();
    let came = new
        .iter()
        .zip(&new_texts)
        .filter(|(_, text)| !old_set.contains(text.as_str()))
        .map(|(t, _)| t.clone())
        .collect();
    (gone, came)
}

/// True when `doc` gives `def` more keys than a document may (a product of arrays on
/// several of its fields).
fn exceeds_key_limit(def: &IndexDef, doc: &Value) -> bool {
    if def.keys.len() < 2 {
        return false;
    }
    let paths = def.paths();
    paths.iter().filter(|p| has_array_on_path(doc, p)).count() > 1
        && keys::exceeds_limit(doc, &paths)
}

/// Refuses `doc` when it gives one of the indexes of `set` more keys than a document
/// may, as the write itself would be refused (checked before a buffered write is
/// acknowledged).
pub(crate) fn check_key_limit(set: &IndexSet, doc: &Value) -> Result<()> {
    match set.defs.iter().find(|d| exceeds_key_limit(d, doc)) {
        Some(def) => Err(too_many_keys(def)),
        None => Ok(()),
    }
}

/// True when one of the indexes spans several fields (the only kind a document can give
/// too many keys).
pub(crate) fn has_compound(set: &IndexSet) -> bool {
    set.defs.iter().any(|d| d.keys.len() > 1)
}

fn too_many_keys(def: &IndexDef) -> Error {
    Error::InvalidDocument(format!(
        "document produces more than {} keys for index '{}'",
        keys::MAX_KEYS_PER_DOCUMENT,
        def.name
    ))
}

fn check_unique(
    conn: &Connection,
    collection: &str,
    table: &str,
    set: &IndexSet,
    def: &IndexDef,
    rid: Option<i64>,
    doc: &Value,
) -> Result<()> {
    if !def.indexes(doc) {
        return Ok(());
    }
    let paths = def.paths();
    let own = rid.unwrap_or(0);
    let tuples = if def.is_multikey() {
        key_tuples(doc, &paths).ok_or_else(|| too_many_keys(def))?
    } else {
        // No array on any key path: one key, found through the expression index.
        vec![paths
            .iter()
            .map(|p| KeyPart::Value(scalar_value(doc, p).cloned().unwrap_or(Value::Null)))
            .collect()]
    };
    for tuple in &tuples {
        if !unique_holders(conn, table, set, def, tuple, own, true)?.is_empty() {
            return Err(Error::DuplicateKey {
                collection: collection.to_string(),
                index: def.name.clone(),
                key: describe_key(&paths, tuple),
            });
        }
    }
    Ok(())
}

/// One key of a document in a unique index, as a buffered write claims it before it is
/// acknowledged ([`unique_claims`]).
#[derive(Debug, Clone)]
pub(crate) struct UniqueClaim {
    /// Equal for two claims exactly when SQLite's check would call them the same key of
    /// the same index.
    pub text: String,
    /// The index's name.
    pub index: String,
    /// The key as MongoDB shows it (`{ email: "a@x.io" }`).
    pub shown: String,
    /// `_id` keys of the stored documents other than the claimant that hold the key.
    pub stored: Vec<String>,
}

/// The keys `doc` (whose `_id` key is `own`) takes in the unique indexes of `set`, each
/// with the stored documents that already hold it. A document that would become the
/// first array in a path of a unique index that is not multikey yet gets one claim per
/// element, as it will once the write turns the index multikey.
pub(crate) fn unique_claims(
    conn: &Connection,
    table: &str,
    set: &IndexSet,
    own: &str,
    doc: &Value,
) -> Result<Vec<UniqueClaim>> {
    let mut out = Vec::new();
    for def in set.defs.iter().filter(|d| d.unique && d.indexes(doc)) {
        let paths = def.paths();
        let tuples = key_tuples(doc, &paths).ok_or_else(|| too_many_keys(def))?;
        for tuple in tuples {
            let stored = unique_holders(conn, table, set, def, &tuple, 0, false)?
                .into_iter()
                .map(|(_, id)| id)
                .filter(|id| id != own)
                .collect();
            out.push(UniqueClaim {
                text: format!("{}:{}", def.ident, tuple_text(&tuple)),
                index: def.name.clone(),
                shown: describe_key(&paths, &tuple),
                stored,
            });
        }
    }
    Ok(out)
}

/// True when the collection has a unique secondary index.
pub(crate) fn has_unique(set: &IndexSet) -> bool {
    set.defs.iter().any(|d| d.unique)
}

/// The stored documents other than row `own` that hold `tuple` in the unique index
/// `def` (sparse and partial rules applied): row ids and `_id` keys; only the first
/// with `first_only`.
fn unique_holders(
    conn: &Connection,
    table: &str,
    set: &IndexSet,
    def: &IndexDef,
    tuple: &[KeyPart],
    own: i64,
    first_only: bool,
) -> Result<Vec<(i64, String)>> {
    let mut out = Vec::new();
    if def.is_multikey() {
        let cond: Vec<String> = (0..tuple.len())
            .map(|i| format!("s.t{i}=? AND s.v{i}=?"))
            .collect();
        let sql = format!(
            "SELECT s.rid, c.id FROM {} s JOIN {table} c ON c.rid = s.rid WHERE {} AND s.rid <> ?",
            def.side_table(),
            cond.join(" AND ")
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut params: Vec<SqlValue> = Vec::new();
        keys::push_tuple_params(tuple, &mut params);
        params.push(SqlValue::Integer(own));
        let rows: Vec<(i64, String)> = stmt
            .query_map(rusqlite::params_from_iter(params.iter()), |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        // The side table holds an integer beyond `i64` as an approximate REAL, so
        // distinct large numbers may meet there: the holder's keys then decide.
        let inexact = tuple
            .iter()
            .any(|k| matches!(k, KeyPart::Value(v) if may_meet_inexact(v)));
        let wanted = if inexact {
            tuple_text(tuple)
        } else {
            String::new()
        };
        let paths = def.paths();
        for (rid, id) in rows {
            if def.sparse || def.partial.is_some() || inexact {
                let Some(d) = load_doc(conn, table, rid)? else {
                    continue;
                };
                if !def.indexes(&d) {
                    continue;
                }
                if inexact && !holds_key(&d, &paths, &wanted) {
                    continue;
                }
            }
            out.push((rid, id));
            if first_only {
                break;
            }
        }
        return Ok(out);
    }
    // Stored documents hold no array on the key paths (nor the empty array's key).
    let mut parts: Vec<Filter> = Vec::with_capacity(tuple.len() + 2);
    for (p, k) in def.keys.iter().map(|(p, _)| p).zip(tuple) {
        let KeyPart::Value(v) = k else {
            return Ok(out);
        };
        parts.push(Filter::Field {
            path: p.clone(),
            cond: crate::query::Cond::Eq(v.clone()),
        });
    }
    if def.sparse {
        parts.push(Filter::Or(
            def.keys
                .iter()
                .map(|(p, _)| Filter::Field {
                    path: p.clone(),
                    cond: crate::query::Cond::Exists(true),
                })
                .collect(),
        ));
    }
    if let Some(p) = &def.partial {
        parts.push(p.clone());
    }
    let filter = Filter::And(parts);
    let (plan, mut params) = set.holders.query(set, def, table, &filter);
    let exact = plan.exact;
    let mut stmt = conn.prepare_cached(&plan.sql)?;
    params.push(SqlValue::Integer(own));
    let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
    while let Some(r) = rows.next()? {
        if !exact {
            let other = crate::value::jsonb::stored_doc(conn, r.get_ref(2)?)?;
            if !filter.matches(&other) {
                continue;
            }
        }
        out.push((r.get(0)?, r.get(1)?));
        if first_only {
            break;
        }
    }
    Ok(out)
}

/// True when `v` may equal, in the side table, a key it differs from: a number from
/// 2^63 up, where the side table holds integers beyond `i64` as approximate REALs.
fn may_meet_inexact(v: &Value) -> bool {
    const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
    match v {
        Value::Number(n) => n.as_i64().is_none() && n.as_f64().is_some_and(|f| f >= TWO_POW_63),
        _ => false,
    }
}

/// True when one of the key tuples of `doc` on `paths` is the key whose
/// [`tuple_text`] is `wanted` (the exact comparison a unique index makes in memory).
fn holds_key(doc: &Value, paths: &[&FieldPath], wanted: &str) -> bool {
    key_tuples(doc, paths).is_some_and(|tuples| tuples.iter().any(|t| tuple_text(t) == wanted))
}

fn load_doc(conn: &Connection, table: &str, rid: i64) -> Result<Option<Value>> {
    let mut stmt = conn.prepare_cached(&format!("SELECT doc FROM {table} WHERE rid = ?1"))?;
    let mut rows = stmt.query([rid])?;
    match rows.next()? {
        Some(r) => Ok(Some(crate::value::jsonb::stored_doc(conn, r.get_ref(0)?)?)),
        None => Ok(None),
    }
}
