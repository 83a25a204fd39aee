//! Turning a filter into the SQL that fetches candidate rows, and fetching them.
//!
//! Rows are read in pages keyed by `rid` (`rid > last ORDER BY rid LIMIT n`), so cursors
//! are lazy without holding a statement open across calls, and writes that scan (update
//! many, delete many) can modify rows between pages.

use crate::engine::schema::table_name;
use crate::error::{Error, Result};
use crate::id::id_key;
use crate::index::{prefix_range, side_bounds, Bounds, IndexDef, IndexSet};
use crate::query::shape::{conv_prefix_hi, conv_prefix_lo, Lit, ParamSource, Src};
use crate::query::sort::SortValue;
use crate::query::sql::{compile_filter_traced, json_text_expr, path_expr, CompileOptions};
use crate::query::{Cond, Filter, InItem, SortOrder, SortSpec};
use crate::value::{approx_size, FieldPath};
use rusqlite::types::Value as SqlValue;
use rusqlite::Connection;
use serde_json::Value;
use std::sync::{Arc, OnceLock};

/// A stored document with its bookkeeping.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub rid: i64,
    pub key: String,
    pub rev: i64,
    pub doc: Value,
}

/// How a filter is answered: SQL selecting candidates, and whether the matcher must
/// re-check them.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub filter: Filter,
    /// The `FROM` target: the quoted table, with `INDEXED BY` under a hint. Empty for
    /// plans built without index knowledge (the caller's collection table is used).
    pub from: Arc<str>,
    pub where_sql: Arc<str>,
    pub params: Vec<SqlValue>,
    /// True when every row the SQL returns matches the filter.
    pub exact: bool,
    /// The index pocketdb chose itself (a multikey side table, or a hint); SQLite's
    /// own choice among expression indexes is read from its plan by `explain`.
    pub chosen_index: Option<String>,
    /// True when an index should drive the query (a range or equality on an expression
    /// index, or a multikey side table): unsorted reads then collect matching `rid`s
    /// without `ORDER BY rid` (so SQLite seeks the index rather than walking the table in
    /// `rid` order, and does not re-prepare for every key) and fetch documents by `rid`.
    pub index_range: bool,
    /// The statement text [`Plan::fetch_few`] built first, shared by every plan bound
    /// from the same cached template: a point query does not format its SQL again.
    pub few_sql: Arc<OnceLock<FewSql>>,
}

/// A statement text of [`Plan::fetch_few`]: the collection and row limit it was built
/// for, and the SQL.
#[derive(Debug)]
pub(crate) struct FewSql {
    collection: String,
    limit: usize,
    sql: String,
}

impl Plan {
    /// A plan that knows nothing of secondary indexes (every path may hold arrays).
    pub(crate) fn new(filter: Filter) -> Plan {
        match Plan::with_indexes(filter.clone(), &IndexSet::default(), None) {
            Ok(plan) => plan,
            // Only a hint can fail; without one, fall back to checking every row.
            Err(_) => Plan {
                filter,
                from: Arc::from(""),
                where_sql: Arc::from("1"),
                params: Vec::new(),
                exact: false,
                chosen_index: None,
                index_range: false,
                few_sql: Arc::default(),
            },
        }
    }

    /// A plan using what the collection's indexes know: paths that never held an array
    /// compile without array branches (so SQLite's planner can use their expression
    /// indexes), a multikey index narrows candidates through its side table, a prefix
    /// regex on an indexed path becomes a range. `hint` (an index name, or a key
    /// specification) forces an index.
    pub(crate) fn with_indexes(
        filter: Filter,
        set: &IndexSet,
        hint: Option<&Value>,
    ) -> Result<Plan> {
        let compiled = Compiled::build(&filter, set, hint)?;
        Ok(compiled.into_plan(filter))
    }

    /// The `FROM` target for `collection`.
    pub(crate) fn target_sql(&self, collection: &str) -> String {
        if self.from.is_empty() {
            table_name(collection)
        } else {
            self.from.replace("{table}", &table_name(collection))
        }
    }

    /// `ORDER BY` text that sorts exactly as MongoDB would by `sort`, when every sort
    /// path is known (through an index) to hold only nulls, numbers and strings, and the
    /// SQL is exact. Ties are broken by `rid` in the direction an index serving the sort
    /// would scan, so SQLite needs no sort step.
    pub(crate) fn sort_sql(&self, set: &IndexSet, sort: &SortSpec) -> Option<String> {
        if !self.exact || sort.keys.is_empty() {
            return None;
        }
        let mut terms = Vec::with_capacity(sort.keys.len() + 1);
        for (path, order) in &sort.keys {
            if !set.sortable(path) {
                return None;
            }
            let expr = path_expr(path)?;
            terms.push(match order {
                SortOrder::Asc => expr,
                SortOrder::Desc => format!("{expr} DESC"),
            });
        }
        // An index serves the sort when its keys, after those the filter fixes by
        // equality, start with the sort's paths in the same or the opposite directions.
        let fixed: Vec<&FieldPath> = top_conjuncts(&self.filter)
            .into_iter()
            .filter(|(_, c)| matches!(c, Cond::Eq(v) if v.is_number() || v.is_string()))
            .map(|(p, _)| p)
            .collect();
        let mut best: Option<(usize, bool)> = None;
        for d in &set.defs {
            let stripped = d
                .keys
                .iter()
                .take_while(|(p, _)| fixed.contains(&p))
                .count();
            let rest = &d.keys[stripped..];
            if rest.len() < sort.keys.len()
                || !rest.iter().zip(&sort.keys).all(|((a, _), (b, _))| a == b)
            {
                continue;
            }
            let same = rest.iter().zip(&sort.keys).all(|((_, a), (_, b))| a == b);
            let opposite = rest.iter().zip(&sort.keys).all(|((_, a), (_, b))| a != b);
            if (same || opposite) && best.is_none_or(|(n, _)| stripped > n) {
                best = Some((stripped, opposite));
            }
        }
        let reversed = best.is_some_and(|(_, r)| r);
        terms.push(if reversed { "rid DESC" } else { "rid" }.to_string());
        Some(format!("ORDER BY {}", terms.join(", ")))
    }

    /// The rows in the order of `order_by` (from [`Plan::sort_sql`]), after skipping
    /// `skip`, at most `limit`.
    pub(crate) fn fetch_ordered(
        &self,
        conn: &Connection,
        collection: &str,
        order_by: &str,
        skip: u64,
        limit: Option<u64>,
    ) -> Result<Vec<Row>> {
        let sql = self.ordered_sql(collection, order_by, skip, limit);
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(self.params.iter()))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(Row {
                rid: r.get(0)?,
                key: r.get(1)?,
                rev: r.get(2)?,
                doc: stored_doc(conn, r.get_ref(3)?)?,
            });
        }
        Ok(out)
    }

    /// The SQL of [`Plan::fetch_ordered`] (parameters: the plan's; LIMIT and OFFSET are
    /// literals, see [`Plan::page_sql`]).
    pub(crate) fn ordered_sql(
        &self,
        collection: &str,
        order_by: &str,
        skip: u64,
        limit: Option<u64>,
    ) -> String {
        let limit = limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
        let skip = i64::try_from(skip).unwrap_or(i64::MAX);
        format!(
            "SELECT rid, id, rev, doc FROM {} WHERE {} {order_by} LIMIT {limit} OFFSET {skip}",
            self.target_sql(collection),
            self.where_sql
        )
    }

    /// Every matching row, in `rid` order, read with one statement when the SQL returns
    /// at most `page` rows; `None` when it returns more (the caller then collects row
    /// ids first). For index-driven plans ([`Plan::index_range`]).
    pub(crate) fn fetch_few(
        &self,
        conn: &Connection,
        collection: &str,
        page: usize,
    ) -> Result<Option<Vec<Row>>> {
        let limit = page.saturating_add(1);
        let built;
        let sql: &str = match self.few_sql.get() {
            Some(f) if f.limit == limit && f.collection == collection => &f.sql,
            _ => {
                built = format!(
                    "SELECT rid, id, rev, doc FROM {} WHERE {} LIMIT {}",
                    self.target_sql(collection),
                    self.where_sql,
                    i64::try_from(limit).unwrap_or(i64::MAX)
                );
                // The first text built stays; others are built each time.
                let _ = self.few_sql.set(FewSql {
                    collection: collection.to_string(),
                    limit,
                    sql: built.clone(),
                });
                &built
            }
        };
        let mut stmt = conn.prepare_cached(sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(self.params.iter()))?;
        // The stored forms are copied first and decoded only once the rows are known to
        // be few enough.
        let mut raw: Vec<(i64, String, i64, rusqlite::types::Value)> = Vec::new();
        while let Some(r) = rows.next()? {
            if raw.len() == page {
                return Ok(None);
            }
            raw.push((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?));
        }
        raw.sort_unstable_by_key(|r| r.0);
        let mut out = Vec::with_capacity(raw.len());
        for (rid, key, rev, stored) in raw {
            let doc = stored_doc(conn, (&stored).into())?;
            if self.exact || self.filter.matches(&doc) {
                out.push(Row { rid, key, rev, doc });
            }
        }
        Ok(Some(out))
    }

    /// The `rid`s of the candidate rows, ascending (see [`Plan::index_range`]).
    pub(crate) fn fetch_rids(&self, conn: &Connection, collection: &str) -> Result<Vec<i64>> {
        let mut stmt = conn.prepare_cached(&self.rids_sql(collection))?;
        let mut rids: Vec<i64> = stmt
            .query_map(rusqlite::params_from_iter(self.params.iter()), |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        rids.sort_unstable();
        Ok(rids)
    }

    /// The SQL of [`Plan::fetch_rids`].
    pub(crate) fn rids_sql(&self, collection: &str) -> String {
        format!(
            "SELECT rid FROM {} WHERE {}",
            self.target_sql(collection),
            self.where_sql
        )
    }

    /// The matching rows among `rids`, in `rid` order.
    pub(crate) fn fetch_by_rids(
        &self,
        conn: &Connection,
        collection: &str,
        rids: &[i64],
    ) -> Result<Vec<Row>> {
        let list = serde_json::to_string(rids)?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT rid, id, rev, doc FROM {} WHERE rid IN (SELECT value FROM json_each(?1)) ORDER BY rid",
            table_name(collection)
        ))?;
        let mut rows = stmt.query([list])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let doc = stored_doc(conn, r.get_ref(3)?)?;
            if self.exact || self.filter.matches(&doc) {
                out.push(Row {
                    rid: r.get(0)?,
                    key: r.get(1)?,
                    rev: r.get(2)?,
                    doc,
                });
            }
        }
        Ok(out)
    }

    /// The SQL of [`Plan::fetch_page`] (parameters: the plan's, then `after`). LIMIT is
    /// a literal: SQLite's planner reads a bound LIMIT, so rebinding one re-prepares the
    /// cached statement at every execution.
    pub(crate) fn page_sql(&self, collection: &str, limit: usize) -> String {
        format!(
            "SELECT rid, id, rev, doc FROM {} WHERE ({}) AND rid > ? ORDER BY rid LIMIT {}",
            self.target_sql(collection),
            self.where_sql,
            i64::try_from(limit).unwrap_or(i64::MAX)
        )
    }

    /// Reads up to `limit` matching rows with `rid > after`, in `rid` order. Returns the
    /// matching rows and the last `rid` examined (to continue from), `None` when no
    /// rows are left.
    pub(crate) fn fetch_page(
        &self,
        conn: &Connection,
        collection: &str,
        after: i64,
        limit: usize,
    ) -> Result<(Vec<Row>, Option<i64>)> {
        let sql = self.page_sql(collection, limit);
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut params: Vec<&dyn rusqlite::ToSql> = self
            .params
            .iter()
            .map(|p| p as &dyn rusqlite::ToSql)
            .collect();
        params.push(&after);
        let mut rows = stmt.query(params.as_slice())?;
        let mut out = Vec::new();
        let mut last = None;
        let mut examined = 0usize;
        while let Some(r) = rows.next()? {
            let rid: i64 = r.get(0)?;
            last = Some(rid);
            examined += 1;
            let doc = stored_doc(conn, r.get_ref(3)?)?;
            if self.exact || self.filter.matches(&doc) {
                out.push(Row {
                    rid,
                    key: r.get(1)?,
                    rev: r.get(2)?,
                    doc,
                });
            }
        }
        // A short page is the last one: saying so spares callers an empty query.
        if examined < limit {
            last = None;
        }
        Ok((out, last))
    }

    /// Counts matching rows.
    pub(crate) fn count(&self, conn: &Connection, collection: &str) -> Result<u64> {
        if self.exact {
            let sql = format!(
                "SELECT count(*) FROM {} WHERE {}",
                self.target_sql(collection),
                self.where_sql
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let n: i64 =
                stmt.query_row(rusqlite::params_from_iter(self.params.iter()), |r| r.get(0))?;
            return Ok(n as u64);
        }
        let mut n = 0u64;
        let mut after = 0;
        loop {
            let (rows, last) = self.fetch_page(conn, collection, after, 1024)?;
            n += rows.len() as u64;
            match last {
                Some(l) => after = l,
                None => return Ok(n),
            }
        }
    }

    /// Every matching row, in `rid` order.
    pub(crate) fn fetch_all(&self, conn: &Connection, collection: &str) -> Result<Vec<Row>> {
        let mut out = Vec::new();
        self.for_each_row(conn, collection, |row| {
            out.push(row);
            Ok(())
        })?;
        Ok(out)
    }

    /// Calls `f` with every matching row, in the order the plan reads them (as
    /// [`fetch_all`](Plan::fetch_all) returns them), 1,024 rows read at a time on `conn`
    /// (one snapshot when in a transaction).
    pub(crate) fn for_each_row(
        &self,
        conn: &Connection,
        collection: &str,
        mut f: impl FnMut(Row) -> Result<()>,
    ) -> Result<()> {
        if self.index_range {
            for chunk in self.fetch_rids(conn, collection)?.chunks(1024) {
                for row in self.fetch_by_rids(conn, collection, chunk)? {
                    f(row)?;
                }
            }
            return Ok(());
        }
        let mut after = 0;
        loop {
            let (rows, last) = self.fetch_page(conn, collection, after, 1024)?;
            for row in rows {
                f(row)?;
            }
            match last {
                Some(l) => after = l,
                None => return Ok(()),
            }
        }
    }
}

/// Largest `skip + limit` [`Plan::top_by_keys`] serves: it holds the winners' documents
/// at the end without the sorter's memory bound.
pub(crate) const TOP_BY_KEYS_MAX: usize = 1_000;

impl Plan {
    /// The best `keep` matching documents by `sort` (ties in `rid` order), reading only
    /// the top-level fields the sort looks at from each matching row and then the
    /// winners' documents: a top-k that decodes `keep` documents, not every match.
    /// Both reads see one snapshot. `None` where it does not apply: an inexact plan (the
    /// SQL selects a superset, so winners could fail the filter), `keep` over
    /// [`TOP_BY_KEYS_MAX`], a sort field SQLite's JSON paths cannot name, or winners
    /// larger than `memory` allows (the [`Sorter`](super::sorter::Sorter) then spills or
    /// fails as its options say).
    pub(crate) fn top_by_keys(
        &self,
        conn: &Connection,
        collection: &str,
        sort: &SortSpec,
        keep: usize,
        memory: super::sorter::SortMemory,
    ) -> Result<Option<Vec<Value>>> {
        if !self.exact || keep > TOP_BY_KEYS_MAX {
            return Ok(None);
        }
        // The sort key of a path depends only on the top-level field it starts with.
        let mut fields: Vec<&str> = Vec::new();
        for (path, _) in &sort.keys {
            if !fields.contains(&path.first()) {
                fields.push(path.first());
            }
        }
        let mut exprs = Vec::with_capacity(fields.len());
        for f in &fields {
            match json_text_expr(&FieldPath::from_segments(vec![(*f).to_string()])) {
                Some(e) => exprs.push(e),
                None => return Ok(None),
            }
        }
        if keep == 0 {
            return Ok(Some(Vec::new()));
        }
        let sql = format!(
            "SELECT rid, {} FROM {} WHERE {}",
            exprs.join(", "),
            self.target_sql(collection),
            self.where_sql
        );
        super::in_read_transaction(conn, true, || {
            let mut best: Vec<(Vec<SortValue>, i64)> = Vec::new();
            let order = |a: &(Vec<SortValue>, i64), b: &(Vec<SortValue>, i64)| {
                sort.compare_keys(&a.0, &b.0).then(a.1.cmp(&b.1))
            };
            {
                let mut stmt = conn.prepare_cached(&sql)?;
                let mut rows = stmt.query(rusqlite::params_from_iter(self.params.iter()))?;
                while let Some(r) = rows.next()? {
                    let rid: i64 = r.get(0)?;
                    let mut partial = serde_json::Map::with_capacity(fields.len());
                    for (i, f) in fields.iter().enumerate() {
                        // `->` gives JSON text, or NULL for a missing field.
                        if let rusqlite::types::ValueRef::Text(text) = r.get_ref(i + 1)? {
                            partial.insert((*f).to_string(), serde_json::from_slice(text)?);
                        }
                    }
                    best.push((sort.sort_key(&Value::Object(partial)), rid));
                    if best.len() >= keep.saturating_mul(2).max(1024) {
                        best.sort_unstable_by(order);
                        best.truncate(keep);
                    }
                }
            }
            best.sort_unstable_by(order);
            best.truncate(keep);
            let rids: Vec<i64> = best.iter().map(|(_, rid)| *rid).collect();
            let mut sorted = rids.clone();
            sorted.sort_unstable();
            let mut docs: std::collections::HashMap<i64, Value> = self
                .fetch_by_rids(conn, collection, &sorted)?
                .into_iter()
                .map(|row| (row.rid, row.doc))
                .collect();
            let out: Vec<Value> = rids.iter().filter_map(|rid| docs.remove(rid)).collect();
            let held = out
                .iter()
                .fold(0usize, |n, d| n.saturating_add(approx_size(d)));
            Ok((held <= memory.max_bytes).then_some(out))
        })
    }

    /// Calls `f` with `{field: value}` for every matching row (`{}` where the field is
    /// missing), reading only that top-level field: what a path under `field` needs.
    /// False, calling nothing, when the plan is inexact (rows need the matcher) or
    /// SQLite's JSON paths cannot name `field`.
    pub(crate) fn for_each_field(
        &self,
        conn: &Connection,
        collection: &str,
        field: &str,
        mut f: impl FnMut(Value) -> Result<()>,
    ) -> Result<bool> {
        if !self.exact {
            return Ok(false);
        }
        let Some(expr) = json_text_expr(&FieldPath::from_segments(vec![field.to_string()])) else {
            return Ok(false);
        };
        let sql = format!(
            "SELECT {expr} FROM {} WHERE {}",
            self.target_sql(collection),
            self.where_sql
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(self.params.iter()))?;
        while let Some(r) = rows.next()? {
            let mut partial = serde_json::Map::with_capacity(1);
            // `->` gives JSON text, or NULL for a missing field.
            if let rusqlite::types::ValueRef::Text(text) = r.get_ref(0)? {
                partial.insert(field.to_string(), serde_json::from_slice(text)?);
            }
            f(Value::Object(partial))?;
        }
        Ok(true)
    }
}

/// A plan before it is given its filter: SQL, parameters and where each came from.
#[derive(Debug)]
pub(crate) struct Compiled {
    pub from: String,
    pub where_sql: String,
    pub params: Vec<SqlValue>,
    /// Beside `params`: the literal of the filter each was computed from.
    pub srcs: Vec<Src>,
    pub exact: bool,
    pub chosen_index: Option<String>,
    pub index_range: bool,
}

impl Compiled {
    /// Compiles `filter` using what the collection's indexes know (see
    /// [`Plan::with_indexes`]).
    pub(crate) fn build(filter: &Filter, set: &IndexSet, hint: Option<&Value>) -> Result<Compiled> {
        let hinted = match hint {
            None => None,
            Some(h) => match resolve_hint(set, h)? {
                Hinted::Id => None,
                Hinted::Index(def) => Some(def),
            },
        };
        let (id_sql, id_params, id_only) = id_constraint(filter);
        if id_only && hinted.is_none() {
            let (params, srcs) = id_params.into_iter().unzip();
            return Ok(Compiled {
                from: String::new(),
                where_sql: id_sql.unwrap_or_else(|| "1".to_string()),
                params,
                srcs,
                exact: true,
                chosen_index: None,
                index_range: false,
            });
        }
        let options = CompileOptions {
            scalar_paths: set.scalar_paths(),
        };
        let (compiled, compiled_srcs) = compile_filter_traced(filter, &options);
        let mut parts: Vec<String> = Vec::new();
        let mut params: Vec<SqlValue> = Vec::new();
        let mut srcs: Vec<Src> = Vec::new();
        let has_id = id_sql.is_some();
        if let Some(id_sql) = id_sql {
            parts.push(id_sql);
            for (p, src) in id_params {
                params.push(p);
                srcs.push(src);
            }
        }
        let conjuncts = top_conjuncts(filter);
        let mut chosen_index = None;
        let mut from = String::new();
        // Prefix regexes on indexed scalar paths: a range SQLite can seek.
        let mut ranged = false;
        for (path, cond) in &conjuncts {
            if let Cond::Regex(re) = cond {
                if !options.scalar_paths.contains(*path) {
                    continue;
                }
                if let (Some(expr), Some((_, hi))) = (path_expr(path), prefix_range(re)) {
                    ranged = true;
                    let (lo, lo_src) = Src::param(Lit::Regex(re), conv_prefix_lo);
                    params.push(lo);
                    srcs.push(lo_src);
                    match hi {
                        Some(_) => {
                            parts.push(format!("({expr} >= ? AND {expr} < ?)"));
                            let (hi, hi_src) = Src::param(Lit::Regex(re), conv_prefix_hi);
                            params.push(hi);
                            srcs.push(hi_src);
                        }
                        None => parts.push(format!("{expr} >= ?")),
                    }
                }
            }
        }
        let mut side_table = false;
        match hinted {
            Some(def) if !def.is_multikey() || def.multikey & 1 == 0 => {
                from = format!("{} INDEXED BY {}", "{table}", def.sql_index());
                chosen_index = Some(def.name.clone());
            }
            Some(def) => {
                let leading = &def.keys[0].0;
                let bounds = conjuncts
                    .iter()
                    .filter(|(p, _)| *p == leading)
                    .filter_map(|(_, c)| side_bounds(c))
                    .min_by_key(|b| b.rank);
                match bounds {
                    Some(bounds) => {
                        parts.push(format!(
                            "rid IN (SELECT rid FROM {} WHERE {})",
                            def.side_table(),
                            bounds.sql
                        ));
                        params.extend(bounds.params);
                        srcs.extend(bounds.srcs);
                    }
                    // Nothing bounds the leading key: the whole index is scanned, as
                    // MongoDB does. Every document has at least one key (`null` when
                    // the field is missing), so this selects every row, each once.
                    None => parts.push(format!("rid IN (SELECT rid FROM {})", def.side_table())),
                }
                chosen_index = Some(def.name.clone());
                side_table = true;
            }
            None if !has_id && !served_by_expression_index(set, &conjuncts) && !ranged => {
                // The best multikey index whose leading path the filter bounds.
                let mut best: Option<(&IndexDef, Bounds)> = None;
                for def in set.defs.iter().filter(|d| d.multikey & 1 != 0) {
                    let leading = &def.keys[0].0;
                    for (_, cond) in conjuncts.iter().filter(|(p, _)| *p == leading) {
                        if let Some(b) = side_bounds(cond) {
                            if best.as_ref().is_none_or(|(_, cur)| b.rank < cur.rank) {
                                best = Some((def, b));
                            }
                        }
                    }
                }
                if let Some((def, b)) = best {
                    parts.push(format!(
                        "rid IN (SELECT rid FROM {} WHERE {})",
                        def.side_table(),
                        b.sql
                    ));
                    params.extend(b.params);
                    srcs.extend(b.srcs);
                    chosen_index = Some(def.name.clone());
                    side_table = true;
                }
            }
            None => {}
        }
        let where_sql = if parts.is_empty() {
            compiled.sql
        } else if compiled.sql == "1" {
            parts.join(" AND ")
        } else {
            format!("{} AND ({})", parts.join(" AND "), compiled.sql)
        };
        params.extend(compiled.params);
        srcs.extend(compiled_srcs);
        // Candidates are collected as row ids first (no ORDER BY) whenever an expression
        // index serves the filter: with `ORDER BY rid` SQLite (built with STAT4) reads
        // the bound key while planning and re-prepares the statement for every new
        // value, which costs more than the query itself.
        let index_range = !has_id
            && (side_table || chosen_index.is_none())
            && (side_table
                || served_by_expression_index(set, &conjuncts)
                || conjuncts.iter().any(|(path, cond)| {
                    let bounded = match cond {
                        Cond::Gt(v) | Cond::Gte(v) | Cond::Lt(v) | Cond::Lte(v) => {
                            v.is_number() || v.is_string()
                        }
                        Cond::Regex(re) => prefix_range(re).is_some(),
                        _ => false,
                    };
                    bounded
                        && set
                            .defs
                            .iter()
                            .any(|d| d.multikey & 1 == 0 && d.keys[0].0 == **path)
                }));
        Ok(Compiled {
            from,
            where_sql,
            params,
            srcs,
            exact: compiled.exact,
            chosen_index,
            index_range,
        })
    }

    /// The plan for `filter`, the filter this was compiled from.
    pub(crate) fn into_plan(self, filter: Filter) -> Plan {
        Plan {
            filter,
            from: Arc::from(self.from),
            where_sql: Arc::from(self.where_sql),
            params: self.params,
            exact: self.exact,
            chosen_index: self.chosen_index,
            index_range: self.index_range,
            few_sql: Arc::default(),
        }
    }
}

/// A compiled plan kept for a filter shape (see `plan_cache`): everything but the
/// filter and its parameters, and how to compute those parameters from a new filter of
/// the same shape.
#[derive(Debug)]
pub(crate) struct PlanTemplate {
    pub from: Arc<str>,
    pub where_sql: Arc<str>,
    pub exact: bool,
    pub chosen_index: Option<String>,
    pub index_range: bool,
    pub few_sql: Arc<OnceLock<FewSql>>,
    pub sources: Vec<ParamSource>,
    /// Number of literals in the shape (a cheap check against a hash collision).
    pub slots: usize,
}

impl PlanTemplate {
    /// The template of `plan`, whose parameters come from `sources`.
    pub(crate) fn of(plan: &Plan, sources: Vec<ParamSource>, slots: usize) -> PlanTemplate {
        PlanTemplate {
            from: plan.from.clone(),
            where_sql: plan.where_sql.clone(),
            exact: plan.exact,
            chosen_index: plan.chosen_index.clone(),
            index_range: plan.index_range,
            few_sql: plan.few_sql.clone(),
            sources,
            slots,
        }
    }

    /// The plan for `filter` (of the template's shape) with its parameters.
    pub(crate) fn bind(&self, filter: Filter, params: Vec<SqlValue>) -> Plan {
        Plan {
            filter,
            from: self.from.clone(),
            where_sql: self.where_sql.clone(),
            params,
            exact: self.exact,
            chosen_index: self.chosen_index.clone(),
            index_range: self.index_range,
            few_sql: self.few_sql.clone(),
        }
    }
}

/// True when the filter is only an `_id` equality or `$in`: the `id` column's unique
/// index answers it exactly and no secondary index can do better.
pub(crate) fn is_id_only(filter: &Filter) -> bool {
    id_constraint(filter).2
}

/// Finds an `_id` equality or `$in` among the filter's top-level conjuncts, which the
/// `id` column's unique index answers. Returns the SQL, its parameters, and whether that
/// constraint is the whole filter.
fn id_constraint(filter: &Filter) -> (Option<String>, Vec<(SqlValue, Src)>, bool) {
    let conjuncts: &[Filter] = match filter {
        Filter::And(children) => children,
        other => std::slice::from_ref(other),
    };
    for (i, c) in conjuncts.iter().enumerate() {
        if let Some((sql, params)) = id_sql(c) {
            return (Some(sql), params, conjuncts.len() == 1 && i == 0);
        }
    }
    (None, Vec::new(), false)
}

fn id_sql(filter: &Filter) -> Option<(String, Vec<(SqlValue, Src)>)> {
    let Filter::Field { path, cond } = filter else {
        return None;
    };
    if path.len() != 1 || path.first() != "_id" {
        return None;
    }
    match cond {
        // `_id` is never an array, so equality is exact key equality.
        Cond::Eq(v) if !v.is_array() => Some((
            "id = ?".to_string(),
            vec![Src::param(Lit::Value(v), conv_id_key)],
        )),
        Cond::In(items)
            if items
                .iter()
                .all(|i| matches!(i, InItem::Value(v) if !v.is_array())) =>
        {
            let keys: Vec<(SqlValue, Src)> = items
                .iter()
                .filter_map(|i| match i {
                    InItem::Value(v) => Some(Src::param(Lit::Value(v), conv_id_key)),
                    InItem::Regex(_) => None,
                })
                .collect();
            if keys.is_empty() {
                return Some(("0".to_string(), Vec::new()));
            }
            let marks = vec!["?"; keys.len()].join(",");
            Some((format!("id IN ({marks})"), keys))
        }
        _ => None,
    }
}

/// An `_id` operand as the `id` column's key.
fn conv_id_key(l: Lit<'_>) -> Option<SqlValue> {
    match l {
        Lit::Value(v) => Some(SqlValue::Text(id_key(v))),
        _ => None,
    }
}

/// The filter's top-level conjuncts that are conditions on a field.
fn top_conjuncts(filter: &Filter) -> Vec<(&FieldPath, &Cond)> {
    let mut out = Vec::new();
    collect_conjuncts(filter, &mut out);
    out
}

fn collect_conjuncts<'a>(filter: &'a Filter, out: &mut Vec<(&'a FieldPath, &'a Cond)>) {
    match filter {
        Filter::And(children) => children.iter().for_each(|c| collect_conjuncts(c, out)),
        Filter::Field { path, cond } => out.push((path, cond)),
        Filter::Or(_) | Filter::Nor(_) | Filter::Expr(_) => {}
    }
}

/// True when an equality or `$in` on numbers, strings or null, on the leading path of an
/// index without arrays there, lets SQLite seek the expression index (then no side
/// table is added).
fn served_by_expression_index(set: &IndexSet, conjuncts: &[(&FieldPath, &Cond)]) -> bool {
    conjuncts.iter().any(|(path, cond)| {
        let seekable = match cond {
            Cond::Eq(v) => v.is_null() || v.is_number() || v.is_string(),
            Cond::In(items) => items
                .iter()
                .all(|i| matches!(i, InItem::Value(v) if v.is_number() || v.is_string())),
            _ => false,
        };
        seekable
            && set
                .defs
                .iter()
                .any(|d| d.multikey & 1 == 0 && d.keys[0].0 == **path)
    })
}

enum Hinted<'a> {
    Id,
    Index(&'a IndexDef),
}

fn resolve_hint<'a>(set: &'a IndexSet, hint: &Value) -> Result<Hinted<'a>> {
    let not_found = || Error::IndexNotFound {
        collection: String::new(),
        name: hint
            .as_str()
            .map_or_else(|| hint.to_string(), str::to_string),
    };
    match hint {
        Value::String(name) if name == "_id_" => Ok(Hinted::Id),
        Value::String(name) => set.by_name(name).map(Hinted::Index).ok_or_else(not_found),
        Value::Object(m) if m.len() == 1 && m.contains_key("_id") => Ok(Hinted::Id),
        Value::Object(_) => set.by_keys(hint).map(Hinted::Index).ok_or_else(not_found),
        _ => Err(Error::InvalidArgument(format!(
            "hint must be an index name or a key specification, got {hint}"
        ))),
    }
}

pub(crate) use crate::value::jsonb::stored_doc;
