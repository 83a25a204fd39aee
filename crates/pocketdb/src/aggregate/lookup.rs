//! `$lookup`: the equality form (`localField`/`foreignField`), the pipeline form (`let` +
//! `pipeline`, correlated or not) and both combined; `from` names a collection of the
//! same database or, as in MongoDB 8, `{db, coll}` in another database of the same
//! [`crate::Client`].
//!
//! The equality form is batched: the input is read in pages of [`PAGE`] documents, the
//! local values of a page are gathered and the foreign collection is queried once per
//! page with `{foreignField: {$in: [...]}}` (SQL, indexes apply) through the same
//! batched read as populate (`collection::populate::fetch_in`, which also applies the
//! foreign collection's plugins); foreign documents are then matched to local ones
//! through a hash of their keys — never one query per document.
//! [`AggregateCursor::lookup_queries`](super::AggregateCursor::lookup_queries) counts
//! the foreign queries.
//!
//! A `from` naming a sharded or partitioned collection is read through its members (its
//! own table in the main file is an empty placeholder): the batched `$in` query, the
//! whole-collection read of a correlated pipeline and an uncorrelated pipeline (run as
//! the sharded collection's own aggregation) all go to the members.

use super::accum::approx_size;
use super::expr::{field_path, Expr};
use super::pipeline::{parse_pipeline, run_stages, Budget, Ctx, Docs, Stage};
use crate::collection::populate::{fetch_in, NamedCollection};
use crate::database::Database;
use crate::error::{Error, Result};
use crate::query::matcher::{lookup as query_lookup, Found};
use crate::query::Filter;
use crate::value::equality_key;
use crate::value::FieldPath;
use serde_json::{Map, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Input documents handled per foreign query.
pub(crate) const PAGE: usize = 256;

/// Where `from` points.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Source {
    pub db: Option<String>,
    pub coll: String,
}

impl Source {
    pub(crate) fn parse(stage: &str, v: &Value) -> Result<Source> {
        match v {
            Value::String(s) => Ok(Source {
                db: None,
                coll: s.clone(),
            }),
            Value::Object(m) => {
                let get = |k: &str| {
                    m.get(k)
                        .and_then(Value::as_str)
                        .map(str::to_string)
                        .ok_or_else(|| Error::pipeline(stage, format!("'{k}' must be a string")))
                };
                if m.keys().any(|k| k != "db" && k != "coll") {
                    return Err(Error::pipeline(stage, "expects {db, coll}"));
                }
                Ok(Source {
                    db: Some(get("db")?),
                    coll: get("coll")?,
                })
            }
            _ => Err(Error::pipeline(
                stage,
                "expects a collection name or {db, coll}",
            )),
        }
    }

    /// The database holding the source: the pipeline's own, or another one of the same
    /// client.
    pub(crate) fn database(&self, stage: &str, db: &Database) -> Result<Database> {
        match &self.db {
            None => Ok(db.clone()),
            Some(name) if name == db.name() => Ok(db.clone()),
            Some(name) => {
                let client = db.client().ok_or_else(|| {
                    Error::pipeline(
                        stage,
                        format!("database '{name}' is reachable only from a database opened through a Client"),
                    )
                })?;
                client.database(name)
            }
        }
    }
}

/// A parsed `$lookup`.
#[derive(Debug, Clone)]
pub(crate) struct Lookup {
    from: Source,
    local: Option<Vec<String>>,
    foreign: Option<FieldPath>,
    as_field: String,
    vars: Vec<(String, Expr)>,
    /// The pipeline as written (re-parsed per document when correlated).
    pipeline_json: Option<Value>,
    /// The pipeline parsed, when it uses no `let` variable.
    uncorrelated: Option<Vec<Stage>>,
}

impl Lookup {
    pub(crate) fn parse(spec: &Value) -> Result<Lookup> {
        let name = "$lookup";
        let m = spec
            .as_object()
            .ok_or_else(|| Error::pipeline(name, "specification must be an object"))?;
        if let Some(k) = m.keys().find(|k| {
            !matches!(
                k.as_str(),
                "from" | "localField" | "foreignField" | "as" | "let" | "pipeline"
            )
        }) {
            return Err(Error::pipeline(name, format!("unknown argument '{k}'")));
        }
        let from = Source::parse(
            name,
            m.get("from")
                .ok_or_else(|| Error::pipeline(name, "missing 'from'"))?,
        )?;
        let as_field = m
            .get("as")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty() && !s.starts_with('$'))
            .ok_or_else(|| Error::pipeline(name, "'as' must be a field path string"))?
            .to_string();
        let path = |k: &str| -> Result<Option<String>> {
            match m.get(k) {
                None => Ok(None),
                Some(Value::String(s)) if !s.is_empty() && !s.starts_with('$') => {
                    Ok(Some(s.clone()))
                }
                Some(_) => Err(Error::pipeline(
                    name,
                    format!("'{k}' must be a field path string"),
                )),
            }
        };
        let local = path("localField")?;
        let foreign = path("foreignField")?;
        if local.is_some() != foreign.is_some() {
            return Err(Error::pipeline(
                name,
                "'localField' and 'foreignField' must be given together",
            ));
        }
        let pipeline_json = m.get("pipeline").cloned();
        if local.is_none() && pipeline_json.is_none() {
            return Err(Error::pipeline(
                name,
                "needs 'localField'/'foreignField' or 'pipeline'",
            ));
        }
        let mut vars = Vec::new();
        if let Some(l) = m.get("let") {
            let l = l
                .as_object()
                .ok_or_else(|| Error::pipeline(name, "'let' must be an object"))?;
            for (k, v) in l {
                if k.is_empty() || !k.chars().all(|c| c.is_alphanumeric() || c == '_') {
                    return Err(Error::pipeline(
                        name,
                        format!("invalid variable name '{k}'"),
                    ));
                }
                vars.push((k.clone(), Expr::parse(v)?));
            }
        }
        // Parse once to report errors early; keep the parse when no variable is used.
        let parsed = pipeline_json
            .as_ref()
            .map(|p| parse_pipeline(p, true))
            .transpose()?;
        let uncorrelated = if vars.is_empty() || !mentions_vars(pipeline_json.as_ref(), &vars) {
            parsed
        } else {
            None
        };
        Ok(Lookup {
            from,
            local: local.map(|l| l.split('.').map(str::to_string).collect()),
            foreign: foreign.map(|f| FieldPath::parse(&f)).transpose()?,
            as_field,
            vars,
            pipeline_json,
            uncorrelated,
        })
    }

    /// Runs the lookup over `input`, lazily, one page at a time.
    pub(crate) fn run(&self, input: Docs, ctx: &Ctx) -> Result<Docs> {
        let db = self.from.database("$lookup", &ctx.db)?;
        let foreign = NamedCollection::resolve(&db.collection::<Value>(&self.from.coll))?;
        Ok(Box::new(Paged {
            lookup: Arc::new(self.clone()),
            foreign,
            ctx: Ctx {
                db,
                options: ctx.options.clone(),
                stats: ctx.stats.clone(),
            },
            input,
            out: VecDeque::new(),
            cache: None,
            done: false,
        }))
    }
}

fn mentions_vars(v: Option<&Value>, vars: &[(String, Expr)]) -> bool {
    match v {
        Some(Value::String(s)) => s
            .strip_prefix("$$")
            .map(|rest| rest.split('.').next().unwrap_or_default())
            .is_some_and(|name| vars.iter().any(|(k, _)| k == name)),
        Some(Value::Array(items)) => items.iter().any(|i| mentions_vars(Some(i), vars)),
        Some(Value::Object(m)) => m.values().any(|i| mentions_vars(Some(i), vars)),
        _ => false,
    }
}

/// Replaces `"$$var.path"` strings by `{"$literal": value}` (or `"$$REMOVE"` when
/// missing), leaving `$literal` operands alone.
fn substitute(v: &Value, vars: &[(String, Value)]) -> Value {
    match v {
        Value::String(s) => {
            if let Some(rest) = s.strip_prefix("$$") {
                let mut parts = rest.splitn(2, '.');
                let name = parts.next().unwrap_or_default();
                if let Some((_, value)) = vars.iter().find(|(k, _)| k == name) {
                    let segs: Vec<String> = parts
                        .next()
                        .map(|p| p.split('.').map(str::to_string).collect())
                        .unwrap_or_default();
                    return match field_path(value, &segs) {
                        Some(found) => {
                            let mut m = Map::new();
                            m.insert("$literal".to_string(), found);
                            Value::Object(m)
                        }
                        None => Value::String("$$REMOVE".to_string()),
                    };
                }
            }
            v.clone()
        }
        Value::Array(items) => Value::Array(items.iter().map(|i| substitute(i, vars)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| {
                    let x = if k == "$literal" {
                        x.clone()
                    } else {
                        substitute(x, vars)
                    };
                    (k.clone(), x)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// In a `$match` stage only `$expr` operands are expressions.
fn substitute_pipeline(pipeline: &Value, vars: &[(String, Value)]) -> Value {
    let Value::Array(stages) = pipeline else {
        return pipeline.clone();
    };
    Value::Array(
        stages
            .iter()
            .map(|stage| match stage.get("$match") {
                Some(m) => serde_json::json!({"$match": substitute_match(m, vars)}),
                None => substitute(stage, vars),
            })
            .collect(),
    )
}

fn substitute_match(m: &Value, vars: &[(String, Value)]) -> Value {
    match m {
        Value::Object(obj) => Value::Object(
            obj.iter()
                .map(|(k, v)| {
                    let v = match k.as_str() {
                        "$expr" => substitute(v, vars),
                        "$and" | "$or" | "$nor" => match v {
                            Value::Array(items) => Value::Array(
                                items.iter().map(|i| substitute_match(i, vars)).collect(),
                            ),
                            other => other.clone(),
                        },
                        _ => v.clone(),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The keys a foreign document is found under for an equality match on `path`: each
/// value reached (arrays also by element), and `null` for a missing field.
fn foreign_keys(doc: &Value, path: &FieldPath, out: &mut Vec<String>) {
    let mut push = |v: &Value| {
        let mut k = String::new();
        equality_key(v, &mut k);
        if !out.contains(&k) {
            out.push(k);
        }
    };
    for f in query_lookup(doc, path.segments()) {
        match f {
            Found::Missing => push(&Value::Null),
            Found::Value(v) => {
                if let Value::Array(items) = v {
                    items.iter().for_each(&mut push);
                }
                push(v);
            }
        }
    }
}

/// The values a local document matches on: the field's value, an array's elements, and
/// `null` when missing.
fn local_values(doc: &Value, path: &[String]) -> Vec<Value> {
    match field_path(doc, path) {
        None | Some(Value::Null) => vec![Value::Null],
        Some(Value::Array(items)) => items,
        Some(v) => vec![v],
    }
}

struct Paged {
    lookup: Arc<Lookup>,
    /// The `from` collection as its name resolves (a sharded one through its members).
    foreign: NamedCollection,
    ctx: Ctx,
    input: Docs,
    out: VecDeque<Value>,
    /// Results of an uncorrelated pipeline, or the whole foreign collection for a
    /// correlated pipeline without an equality match.
    cache: Option<Vec<Value>>,
    done: bool,
}

impl Paged {
    fn next_page(&mut self) -> Result<()> {
        let mut page = Vec::with_capacity(PAGE);
        while page.len() < PAGE {
            match self.input.next() {
                Some(d) => page.push(d?),
                None => {
                    self.done = true;
                    break;
                }
            }
        }
        if page.is_empty() {
            return Ok(());
        }
        let l = self.lookup.clone();
        // Candidate foreign documents per local document, in foreign storage order.
        let matched: Vec<Vec<Value>> = match (&l.local, &l.foreign) {
            (Some(local), Some(foreign)) => self.equality_matches(&page, local, foreign)?,
            _ => {
                if l.uncorrelated.is_some() {
                    let results = self.uncorrelated_results()?;
                    for mut d in page {
                        super::pipeline::set_path(
                            &mut d,
                            &l.as_field,
                            Value::Array(results.clone()),
                        );
                        self.out.push_back(d);
                    }
                    return Ok(());
                }
                let all = self.all_foreign()?;
                page.iter().map(|_| all.clone()).collect()
            }
        };
        for (mut d, candidates) in page.into_iter().zip(matched) {
            let joined = match &l.pipeline_json {
                None => candidates,
                Some(p) => {
                    let stages = match &l.uncorrelated {
                        Some(stages) => stages.clone(),
                        None => {
                            let mut bound = Vec::with_capacity(l.vars.len());
                            for (k, e) in &l.vars {
                                bound.push((k.clone(), e.evaluate(&d)?.unwrap_or(Value::Null)));
                            }
                            parse_pipeline(&substitute_pipeline(p, &bound), true)?
                        }
                    };
                    let docs: Docs = Box::new(candidates.into_iter().map(Ok));
                    run_stages(&stages, docs, &self.ctx)?.collect::<Result<Vec<_>>>()?
                }
            };
            super::pipeline::set_path(&mut d, &l.as_field, Value::Array(joined));
            self.out.push_back(d);
        }
        Ok(())
    }

    fn equality_matches(
        &self,
        page: &[Value],
        local: &[String],
        foreign: &FieldPath,
    ) -> Result<Vec<Vec<Value>>> {
        let per_doc: Vec<Vec<Value>> = page.iter().map(|d| local_values(d, local)).collect();
        let mut seen: HashMap<String, ()> = HashMap::new();
        let mut items = Vec::new();
        for v in per_doc.iter().flatten() {
            let mut k = String::new();
            equality_key(v, &mut k);
            if seen.insert(k, ()).is_none() {
                items.push(v.clone());
            }
        }
        let mut budget = Budget::new("$lookup", &self.ctx.options);
        let mut found: Vec<Value> = Vec::new();
        let mut by_key: HashMap<String, Vec<usize>> = HashMap::new();
        let queries = fetch_in(&self.foreign, foreign, &items, &mut |f| {
            budget.add(approx_size(&f))?;
            let mut keys = Vec::new();
            foreign_keys(&f, foreign, &mut keys);
            for k in keys {
                by_key.entry(k).or_default().push(found.len());
            }
            found.push(f);
            Ok(())
        })?;
        self.ctx.stats.add_lookup_queries(queries);
        Ok(per_doc
            .iter()
            .map(|values| {
                let mut hits: Vec<usize> = Vec::new();
                for v in values {
                    let mut k = String::new();
                    equality_key(v, &mut k);
                    if let Some(ix) = by_key.get(&k) {
                        hits.extend(ix);
                    }
                }
                hits.sort_unstable();
                hits.dedup();
                hits.into_iter().map(|i| found[i].clone()).collect()
            })
            .collect())
    }

    fn uncorrelated_results(&mut self) -> Result<Vec<Value>> {
        if let Some(c) = &self.cache {
            return Ok(c.clone());
        }
        let stages = self.lookup.uncorrelated.clone().unwrap_or_default();
        let docs = match &self.foreign {
            NamedCollection::Table(c) => super::execute(c, &stages, &self.ctx)?,
            NamedCollection::Spread(s) => super::sharded::execute_spread(s, &stages, &self.ctx)?,
        };
        let results = docs.collect::<Result<Vec<_>>>()?;
        self.cache = Some(results.clone());
        Ok(results)
    }

    fn all_foreign(&mut self) -> Result<Vec<Value>> {
        if let Some(c) = &self.cache {
            return Ok(c.clone());
        }
        let mut budget = Budget::new("$lookup", &self.ctx.options);
        let mut all = Vec::new();
        for f in self.foreign.find_filter(Filter::all())? {
            let f = f?;
            budget.add(approx_size(&f))?;
            all.push(f);
        }
        self.cache = Some(all.clone());
        Ok(all)
    }
}

impl Iterator for Paged {
    type Item = Result<Value>;

    fn next(&mut self) -> Option<Result<Value>> {
        loop {
            if let Some(d) = self.out.pop_front() {
                return Some(Ok(d));
            }
            if self.done {
                return None;
            }
            if let Err(e) = self.next_page() {
                self.done = true;
                return Some(Err(e));
            }
        }
    }
}
