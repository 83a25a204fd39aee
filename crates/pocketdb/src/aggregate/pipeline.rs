//! Pipeline stages: parsing a pipeline into [`Stage`]s and running them in Rust over a
//! stream of documents. Streaming stages (`$match`, `$project`, `$unwind`, …) transform
//! the stream lazily; blocking stages (`$group`, `$sort`, `$bucket`, `$facet`, `$sample`,
//! `$count`) consume it, within the memory limit of [`AggregateOptions`].

use super::accum::{approx_size, Accumulator, Kind, State};
use super::expr::{Expr, Num};
use super::lookup::Lookup;
use super::output::{Merge, Target};
use super::shape::Shape;
use super::spill::{sort_with_spill, GroupEntry, GroupSpill};
use super::AggregateOptions;
use crate::database::Database;
use crate::error::{Error, Result};
use crate::query::{parse_filter, Filter, SortSpec};
use crate::value::{compare_values, equality_key, BsonType};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A stream of documents between stages.
pub(crate) type Docs = Box<dyn Iterator<Item = Result<Value>> + Send>;

/// One parsed stage.
#[derive(Debug, Clone)]
pub(crate) enum Stage {
    /// The parsed filter and the filter as written (plugins' `before_read` hooks rewrite
    /// the JSON form when the stage is answered by the collection's read path).
    Match(Filter, Value),
    Shape(&'static str, Shape),
    Group(Group),
    Sort(SortSpec),
    Limit(u64),
    Skip(u64),
    Count(String),
    Unwind(Unwind),
    Lookup(Box<Lookup>),
    ReplaceRoot(&'static str, Expr),
    Bucket(Bucket),
    Facet(Vec<(String, Vec<Stage>)>),
    Sample(u64),
    Out(Target),
    Merge(Box<Merge>),
}

impl Stage {
    /// The stage's name as written in the pipeline.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Stage::Match(..) => "$match",
            Stage::Shape(name, _) | Stage::ReplaceRoot(name, _) => name,
            Stage::Group(_) => "$group",
            Stage::Sort(_) => "$sort",
            Stage::Limit(_) => "$limit",
            Stage::Skip(_) => "$skip",
            Stage::Count(_) => "$count",
            Stage::Unwind(_) => "$unwind",
            Stage::Lookup(_) => "$lookup",
            Stage::Bucket(_) => "$bucket",
            Stage::Facet(_) => "$facet",
            Stage::Sample(_) => "$sample",
            Stage::Out(_) => "$out",
            Stage::Merge(_) => "$merge",
        }
    }
}

/// `$group`.
#[derive(Debug, Clone)]
pub(crate) struct Group {
    pub id: Expr,
    pub accumulators: Vec<Accumulator>,
}

/// `$unwind`.
#[derive(Debug, Clone)]
pub(crate) struct Unwind {
    path: Vec<String>,
    index_field: Option<String>,
    preserve: bool,
}

/// `$bucket`.
#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    group_by: Expr,
    boundaries: Vec<Value>,
    default: Option<Value>,
    accumulators: Vec<Accumulator>,
}

fn non_negative(stage: &str, v: &Value, positive: bool) -> Result<u64> {
    let n = super::expr::whole(v)
        .filter(|n| *n >= i64::from(positive))
        .ok_or_else(|| {
            Error::pipeline(
                stage,
                format!(
                    "expects a {} integer, got {v}",
                    if positive { "positive" } else { "non-negative" }
                ),
            )
        })?;
    Ok(n as u64)
}

fn object<'a>(stage: &str, v: &'a Value) -> Result<&'a Map<String, Value>> {
    v.as_object()
        .ok_or_else(|| Error::pipeline(stage, "specification must be an object"))
}

fn unknown_keys(stage: &str, spec: &Map<String, Value>, allowed: &[&str]) -> Result<()> {
    match spec.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(Error::pipeline(stage, format!("unknown option '{k}'"))),
        None => Ok(()),
    }
}

fn field_name(stage: &str, v: &Value) -> Result<String> {
    match v {
        Value::String(s) if !s.is_empty() && !s.starts_with('$') && !s.contains('.') => {
            Ok(s.clone())
        }
        other => Err(Error::pipeline(
            stage,
            format!("field name must be a non-empty string without '$' or '.', got {other}"),
        )),
    }
}

/// Parses a pipeline (a JSON array of one-key stage objects).
pub(crate) fn parse_pipeline(pipeline: &Value, nested: bool) -> Result<Vec<Stage>> {
    let items = pipeline
        .as_array()
        .ok_or_else(|| Error::pipeline("pipeline", "a pipeline must be an array of stages"))?;
    let mut stages = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let obj = item.as_object().filter(|o| o.len() == 1).ok_or_else(|| {
            Error::pipeline(
                "pipeline",
                format!("stage {i} must be an object with exactly one field"),
            )
        })?;
        let Some((name, spec)) = obj.iter().next() else {
            continue;
        };
        let last = i + 1 == items.len();
        if matches!(name.as_str(), "$out" | "$merge") && (!last || nested) {
            return Err(Error::pipeline(
                name,
                "must be the last stage of a top-level pipeline",
            ));
        }
        parse_stage(name, spec, nested, &mut stages)?;
    }
    Ok(stages)
}

fn parse_stage(name: &str, spec: &Value, nested: bool, out: &mut Vec<Stage>) -> Result<()> {
    let stage = match name {
        "$match" => {
            object(name, spec)?;
            let filter = parse_filter(spec).map_err(|e| Error::pipeline(name, e.to_string()))?;
            Stage::Match(filter, spec.clone())
        }
        "$project" => Stage::Shape("$project", Shape::project(spec)?),
        "$addFields" => Stage::Shape("$addFields", Shape::add_fields(name, spec)?),
        "$set" => Stage::Shape("$set", Shape::add_fields(name, spec)?),
        "$unset" => Stage::Shape("$unset", Shape::unset(spec)?),
        "$group" => Stage::Group(parse_group(spec)?),
        "$sort" => {
            let sort = SortSpec::parse(spec).map_err(|e| Error::pipeline(name, e.to_string()))?;
            if sort.is_empty() {
                return Err(Error::pipeline(
                    name,
                    "specification must have at least one key",
                ));
            }
            Stage::Sort(sort)
        }
        "$limit" => Stage::Limit(non_negative(name, spec, true)?),
        "$skip" => Stage::Skip(non_negative(name, spec, false)?),
        "$count" => Stage::Count(field_name(name, spec)?),
        "$unwind" => Stage::Unwind(parse_unwind(spec)?),
        "$lookup" => Stage::Lookup(Box::new(Lookup::parse(spec)?)),
        "$replaceRoot" => {
            let spec = object(name, spec)?;
            unknown_keys(name, spec, &["newRoot"])?;
            let root = spec
                .get("newRoot")
                .ok_or_else(|| Error::pipeline(name, "missing 'newRoot'"))?;
            Stage::ReplaceRoot("$replaceRoot", Expr::parse(root)?)
        }
        "$replaceWith" => Stage::ReplaceRoot("$replaceWith", Expr::parse(spec)?),
        "$sortByCount" => {
            let id = Expr::parse(spec)?;
            if !matches!(spec, Value::String(s) if s.starts_with('$'))
                && !matches!(spec, Value::Object(m) if m.keys().next().is_some_and(|k| k.starts_with('$')))
            {
                return Err(Error::pipeline(
                    name,
                    "the argument must be a field path or an expression object",
                ));
            }
            out.push(Stage::Group(Group {
                id,
                accumulators: vec![Accumulator {
                    name: "count".to_string(),
                    kind: Kind::Sum,
                    expr: Expr::literal(Value::from(1)),
                }],
            }));
            Stage::Sort(SortSpec::parse(&serde_json::json!({"count": -1}))?)
        }
        "$bucket" => Stage::Bucket(parse_bucket(spec)?),
        "$facet" => {
            if nested {
                return Err(Error::pipeline(
                    name,
                    "cannot be used inside $facet or $lookup",
                ));
            }
            let spec = object(name, spec)?;
            if spec.is_empty() {
                return Err(Error::pipeline(name, "needs at least one output field"));
            }
            let mut facets = Vec::with_capacity(spec.len());
            for (k, p) in spec {
                field_name(name, &Value::String(k.clone()))?;
                facets.push((k.clone(), parse_pipeline(p, true)?));
            }
            Stage::Facet(facets)
        }
        "$sample" => {
            let spec = object(name, spec)?;
            unknown_keys(name, spec, &["size"])?;
            let size = spec
                .get("size")
                .ok_or_else(|| Error::pipeline(name, "missing 'size'"))?;
            Stage::Sample(non_negative(name, size, false)?)
        }
        "$out" => Stage::Out(Target::parse(name, spec)?),
        "$merge" => Stage::Merge(Box::new(Merge::parse(spec)?)),
        other => return Err(Error::pipeline(other, "unrecognized pipeline stage name")),
    };
    out.push(stage);
    Ok(())
}

fn parse_group(spec: &Value) -> Result<Group> {
    let spec = object("$group", spec)?;
    let id = spec
        .get("_id")
        .ok_or_else(|| Error::pipeline("$group", "a group specification must include an _id"))?;
    let mut accumulators = Vec::with_capacity(spec.len());
    for (k, v) in spec {
        if k != "_id" {
            accumulators.push(Accumulator::parse("$group", k, v)?);
        }
    }
    Ok(Group {
        id: Expr::parse(id)?,
        accumulators,
    })
}

fn parse_unwind(spec: &Value) -> Result<Unwind> {
    let name = "$unwind";
    let (path, index_field, preserve) = match spec {
        Value::String(s) => (s.as_str(), None, false),
        Value::Object(m) => {
            unknown_keys(
                name,
                m,
                &["path", "includeArrayIndex", "preserveNullAndEmptyArrays"],
            )?;
            let path = m
                .get("path")
                .and_then(Value::as_str)
                .ok_or_else(|| Error::pipeline(name, "'path' must be a string"))?;
            let index = m
                .get("includeArrayIndex")
                .map(|v| field_path_text(name, v))
                .transpose()?;
            let preserve = match m.get("preserveNullAndEmptyArrays") {
                None => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => {
                    return Err(Error::pipeline(
                        name,
                        "'preserveNullAndEmptyArrays' must be a boolean",
                    ))
                }
            };
            (path, index, preserve)
        }
        _ => return Err(Error::pipeline(name, "expects a string or an object")),
    };
    let Some(rest) = path.strip_prefix('$') else {
        return Err(Error::pipeline(
            name,
            "path must be a field path prefixed with '$'",
        ));
    };
    let segs: Vec<String> = rest.split('.').map(str::to_string).collect();
    if segs.iter().any(|s| s.is_empty() || s.starts_with('$')) {
        return Err(Error::pipeline(
            name,
            format!("invalid field path '{path}'"),
        ));
    }
    Ok(Unwind {
        path: segs,
        index_field,
        preserve,
    })
}

fn field_path_text(stage: &str, v: &Value) -> Result<String> {
    match v {
        Value::String(s)
            if !s.is_empty() && !s.starts_with('$') && s.split('.').all(|p| !p.is_empty()) =>
        {
            Ok(s.clone())
        }
        other => Err(Error::pipeline(
            stage,
            format!("invalid field name {other}"),
        )),
    }
}

fn parse_bucket(spec: &Value) -> Result<Bucket> {
    let name = "$bucket";
    let spec = object(name, spec)?;
    unknown_keys(name, spec, &["groupBy", "boundaries", "default", "output"])?;
    let group_by = spec
        .get("groupBy")
        .ok_or_else(|| Error::pipeline(name, "missing 'groupBy'"))?;
    let boundaries = spec
        .get("boundaries")
        .and_then(Value::as_array)
        .filter(|b| b.len() >= 2)
        .ok_or_else(|| Error::pipeline(name, "'boundaries' must be an array of at least 2 values"))?
        .clone();
    for w in boundaries.windows(2) {
        let same_type = Num::of(&w[0]).is_some() == Num::of(&w[1]).is_some()
            && (Num::of(&w[0]).is_some() || BsonType::of(&w[0]) == BsonType::of(&w[1]));
        if !same_type {
            return Err(Error::pipeline(
                name,
                "all boundaries must have the same type",
            ));
        }
        if compare_values(&w[0], &w[1]) != std::cmp::Ordering::Less {
            return Err(Error::pipeline(
                name,
                "boundaries must be sorted in ascending order",
            ));
        }
    }
    let default = spec.get("default").cloned();
    if let Some(d) = &default {
        let first = &boundaries[0];
        let last = &boundaries[boundaries.len() - 1];
        let same_bracket = crate::value::type_rank(d) == crate::value::type_rank(first);
        if same_bracket
            && compare_values(d, first) != std::cmp::Ordering::Less
            && compare_values(d, last) == std::cmp::Ordering::Less
        {
            return Err(Error::pipeline(
                name,
                "the default must be less than the lowest boundary or greater than or equal to the highest",
            ));
        }
    }
    let accumulators = match spec.get("output") {
        None => vec![Accumulator {
            name: "count".to_string(),
            kind: Kind::Sum,
            expr: Expr::literal(Value::from(1)),
        }],
        Some(out) => object(name, out)?
            .iter()
            .map(|(k, v)| Accumulator::parse(name, k, v))
            .collect::<Result<_>>()?,
    };
    Ok(Bucket {
        group_by: Expr::parse(group_by)?,
        boundaries,
        default,
        accumulators,
    })
}

// ----- execution -------------------------------------------------------------------------

/// What stages need beyond their input.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub db: Database,
    pub options: AggregateOptions,
    pub stats: Arc<RunStats>,
}

/// Counters of one aggregation, shared by its stages (nested pipelines included).
#[derive(Debug, Default)]
pub(crate) struct RunStats {
    lookup_queries: AtomicUsize,
}

impl RunStats {
    pub(crate) fn add_lookup_queries(&self, n: usize) {
        self.lookup_queries.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn lookup_queries(&self) -> usize {
        self.lookup_queries.load(Ordering::Relaxed)
    }
}

/// Counts the bytes a blocking stage holds and fails past the limit.
pub(crate) struct Budget {
    stage: &'static str,
    limit: usize,
    used: usize,
}

impl Budget {
    pub(crate) fn new(stage: &'static str, options: &AggregateOptions) -> Budget {
        Budget {
            stage,
            limit: options.max_memory_bytes,
            used: 0,
        }
    }

    /// Adds `bytes`; `Err` past the limit.
    pub(crate) fn add(&mut self, bytes: usize) -> Result<()> {
        self.used = self.used.saturating_add(bytes);
        if self.used > self.limit {
            return Err(Error::MemoryLimitExceeded {
                stage: self.stage.to_string(),
                limit: self.limit,
            });
        }
        Ok(())
    }

    /// The error reported when the limit is passed.
    pub(crate) fn exceeded(&self) -> Error {
        Error::MemoryLimitExceeded {
            stage: self.stage.to_string(),
            limit: self.limit,
        }
    }

    /// True when `bytes` more would pass the limit (without adding them).
    pub(crate) fn would_exceed(&self, bytes: usize) -> bool {
        self.used.saturating_add(bytes) > self.limit
    }

    pub(crate) fn reset(&mut self) {
        self.used = 0;
    }
}

/// Runs `stages` over `input`.
pub(crate) fn run_stages(stages: &[Stage], mut input: Docs, ctx: &Ctx) -> Result<Docs> {
    let mut i = 0;
    while i < stages.len() {
        // `$sort` directly followed by `$limit` keeps only the top documents.
        if let (Stage::Sort(sort), Some(Stage::Limit(n))) = (&stages[i], stages.get(i + 1)) {
            let k = usize::try_from(*n).unwrap_or(usize::MAX);
            input = sort_with_spill(sort, Some(k), input, &ctx.options)?;
            i += 2;
            continue;
        }
        input = run_stage(&stages[i], input, ctx)?;
        i += 1;
    }
    Ok(input)
}

fn vec_docs(docs: Vec<Value>) -> Docs {
    Box::new(docs.into_iter().map(Ok))
}

fn run_stage(stage: &Stage, input: Docs, ctx: &Ctx) -> Result<Docs> {
    Ok(match stage {
        Stage::Match(filter, _) => {
            let filter = filter.clone();
            Box::new(input.filter(move |d| d.as_ref().map_or(true, |d| filter.matches(d))))
        }
        Stage::Shape(_, shape) => {
            let shape = shape.clone();
            Box::new(input.map(move |d| d.and_then(|d| shape.apply(&d))))
        }
        Stage::ReplaceRoot(name, expr) => {
            let (name, expr) = (*name, expr.clone());
            Box::new(input.map(move |d| {
                let d = d?;
                match expr.evaluate(&d)? {
                    Some(v @ Value::Object(_)) => Ok(v),
                    other => Err(Error::pipeline(
                        name,
                        format!(
                            "'newRoot' must evaluate to an object, but resulting value was: {}",
                            other.map_or("MISSING".to_string(), |v| v.to_string())
                        ),
                    )),
                }
            }))
        }
        Stage::Limit(n) => Box::new(input.take(usize::try_from(*n).unwrap_or(usize::MAX))),
        Stage::Skip(n) => {
            let mut left = *n;
            Box::new(input.filter(move |d| {
                if d.is_ok() && left > 0 {
                    left -= 1;
                    return false;
                }
                true
            }))
        }
        Stage::Unwind(u) => {
            let u = u.clone();
            Box::new(input.flat_map(move |d| match d {
                Ok(d) => unwind(&u, d).into_iter().map(Ok).collect::<Vec<_>>(),
                Err(e) => vec![Err(e)],
            }))
        }
        Stage::Count(name) => {
            let mut n: u64 = 0;
            for d in input {
                d?;
                n += 1;
            }
            if n == 0 {
                vec_docs(Vec::new())
            } else {
                let mut m = Map::new();
                m.insert(name.clone(), Value::from(n));
                vec_docs(vec![Value::Object(m)])
            }
        }
        Stage::Group(g) => run_group(g, input, &ctx.options)?,
        Stage::Sort(sort) => sort_with_spill(sort, None, input, &ctx.options)?,
        Stage::Bucket(b) => vec_docs(run_bucket(b, input, &ctx.options)?),
        Stage::Sample(n) => vec_docs(sample(*n, input, &ctx.options)?),
        Stage::Facet(facets) => {
            let mut budget = Budget::new("$facet", &ctx.options);
            let mut docs = Vec::new();
            for d in input {
                let d = d?;
                budget.add(approx_size(&d))?;
                docs.push(d);
            }
            let mut out = Map::new();
            for (name, stages) in facets {
                let results =
                    run_stages(stages, vec_docs(docs.clone()), ctx)?.collect::<Result<Vec<_>>>()?;
                out.insert(name.clone(), Value::Array(results));
            }
            vec_docs(vec![Value::Object(out)])
        }
        Stage::Lookup(l) => l.run(input, ctx)?,
        Stage::Out(target) => {
            target.write(input, ctx)?;
            vec_docs(Vec::new())
        }
        Stage::Merge(m) => {
            m.write(input, ctx)?;
            vec_docs(Vec::new())
        }
    })
}

fn unwind(u: &Unwind, doc: Value) -> Vec<Value> {
    let value = crate::query::matcher::get_path(&doc, &u.path);
    let with_index = |mut d: Value, idx: Value| {
        if let Some(f) = &u.index_field {
            set_path(&mut d, f, idx);
        }
        d
    };
    match value {
        Some(Value::Array(items)) if !items.is_empty() => {
            let items = items.clone();
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| {
                    let mut d = doc.clone();
                    set_path_segs(&mut d, &u.path, item);
                    with_index(d, Value::from(i))
                })
                .collect()
        }
        Some(Value::Array(_)) => {
            if u.preserve {
                let mut d = doc.clone();
                remove_path(&mut d, &u.path);
                vec![with_index(d, Value::Null)]
            } else {
                Vec::new()
            }
        }
        None | Some(Value::Null) => {
            if u.preserve {
                vec![with_index(doc, Value::Null)]
            } else {
                Vec::new()
            }
        }
        Some(_) => vec![with_index(doc, Value::Null)],
    }
}

/// Sets a dotted path in a document, creating embedded documents as needed (a
/// non-document in the way is replaced).
pub(crate) fn set_path(doc: &mut Value, path: &str, value: Value) {
    let segs: Vec<String> = path.split('.').map(str::to_string).collect();
    set_path_segs(doc, &segs, value);
}

fn set_path_segs(doc: &mut Value, segs: &[String], value: Value) {
    let Some((head, rest)) = segs.split_first() else {
        *doc = value;
        return;
    };
    if !doc.is_object() {
        *doc = Value::Object(Map::new());
    }
    if let Value::Object(m) = doc {
        if rest.is_empty() {
            m.insert(head.clone(), value);
        } else {
            let child = m.entry(head.clone()).or_insert(Value::Null);
            set_path_segs(child, rest, value);
        }
    }
}

fn remove_path(doc: &mut Value, segs: &[String]) {
    let Some((head, rest)) = segs.split_first() else {
        return;
    };
    if let Value::Object(m) = doc {
        if rest.is_empty() {
            m.shift_remove(head);
        } else if let Some(child) = m.get_mut(head) {
            remove_path(child, rest);
        }
    }
}

/// `$group` in Rust: a hash aggregation within the memory limit. Past the limit it
/// spills every partial group to disk and starts over when `allow_disk_use` is set (see
/// [`GroupSpill`]), and fails with `MemoryLimitExceeded` otherwise.
fn run_group(g: &Group, input: Docs, options: &AggregateOptions) -> Result<Docs> {
    let mut budget = Budget::new("$group", options);
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut groups: Vec<GroupEntry> = Vec::new();
    let mut spill: Option<GroupSpill> = None;
    let mut key_text = String::new();
    for d in input {
        let d = d?;
        let key = g.id.evaluate(&d)?.unwrap_or(Value::Null);
        key_text.clear();
        equality_key(&key, &mut key_text);
        let mut grew = 0;
        let slot = match index.get(&key_text) {
            Some(i) => *i,
            None => {
                grew += approx_size(&key) + 2 * key_text.len() + 64 * (1 + g.accumulators.len());
                index.insert(key_text.clone(), groups.len());
                groups.push((
                    key_text.clone(),
                    key,
                    g.accumulators.iter().map(|a| State::new(a.kind)).collect(),
                ));
                groups.len() - 1
            }
        };
        let states = &mut groups[slot].2;
        for (acc, state) in g.accumulators.iter().zip(states.iter_mut()) {
            let v = acc.expr.evaluate(&d)?;
            grew += state.add(v.as_ref());
        }
        if budget.would_exceed(grew) {
            if !options.allow_disk_use {
                return Err(budget.exceeded());
            }
            let s = match spill.as_mut() {
                Some(s) => s,
                None => spill.insert(GroupSpill::new()?),
            };
            index.clear();
            s.write_run(std::mem::take(&mut groups))?;
            budget.reset();
        } else {
            budget.add(grew)?;
        }
    }
    Ok(match spill {
        None => vec_docs(
            groups
                .into_iter()
                .map(|(_, key, states)| group_output(key, &g.accumulators, states))
                .collect(),
        ),
        Some(mut s) => {
            if !groups.is_empty() {
                s.write_run(groups)?;
            }
            s.merge(g.accumulators.clone(), options)
        }
    })
}

pub(crate) fn group_output(key: Value, accs: &[Accumulator], states: Vec<State>) -> Value {
    let mut out = Map::with_capacity(accs.len() + 1);
    out.insert("_id".to_string(), key);
    for (acc, state) in accs.iter().zip(states) {
        out.insert(acc.name.clone(), state.finish());
    }
    Value::Object(out)
}

fn run_bucket(b: &Bucket, input: Docs, options: &AggregateOptions) -> Result<Vec<Value>> {
    let mut budget = Budget::new("$bucket", options);
    let n = b.boundaries.len() - 1;
    let mut buckets: Vec<Option<Vec<State>>> = vec![None; n + 1];
    let fresh = || {
        b.accumulators
            .iter()
            .map(|a| State::new(a.kind))
            .collect::<Vec<_>>()
    };
    for d in input {
        let d = d?;
        let v = b.group_by.evaluate(&d)?.unwrap_or(Value::Null);
        let same_bracket = crate::value::type_rank(&v) == crate::value::type_rank(&b.boundaries[0]);
        let slot = if same_bracket {
            b.boundaries.windows(2).position(|w| {
                compare_values(&w[0], &v) != std::cmp::Ordering::Greater
                    && compare_values(&v, &w[1]) == std::cmp::Ordering::Less
            })
        } else {
            None
        };
        let slot = match (slot, &b.default) {
            (Some(i), _) => i,
            (None, Some(_)) => n,
            (None, None) => {
                return Err(Error::pipeline(
                    "$bucket",
                    format!("$switch could not find a matching branch for an input, and no default was specified (value {v})"),
                ))
            }
        };
        let states = buckets[slot].get_or_insert_with(fresh);
        for (acc, state) in b.accumulators.iter().zip(states.iter_mut()) {
            let v = acc.expr.evaluate(&d)?;
            budget.add(state.add(v.as_ref()))?;
        }
    }
    let mut out = Vec::new();
    for (i, states) in buckets.into_iter().enumerate() {
        if let Some(states) = states {
            let key = if i < n {
                b.boundaries[i].clone()
            } else {
                b.default.clone().unwrap_or(Value::Null)
            };
            out.push(group_output(key, &b.accumulators, states));
        }
    }
    Ok(out)
}

fn sample(n: u64, input: Docs, options: &AggregateOptions) -> Result<Vec<Value>> {
    use rand::Rng;
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    let mut budget = Budget::new("$sample", options);
    let mut rng = rand::rng();
    let mut reservoir: Vec<Value> = Vec::new();
    for (seen, d) in input.enumerate() {
        let d = d?;
        if reservoir.len() < n {
            budget.add(approx_size(&d))?;
            reservoir.push(d);
        } else {
            let j = rng.random_range(0..=seen);
            if j < n {
                reservoir[j] = d;
            }
        }
    }
    // Reservoir order is biased towards input order; shuffle like MongoDB's random output.
    for i in (1..reservoir.len()).rev() {
        let j = rng.random_range(0..=i);
        reservoir.swap(i, j);
    }
    Ok(reservoir)
}
