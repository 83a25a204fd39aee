//! The fluent query builder: the second way to write a query, producing the same AST as
//! [`crate::query::parse_filter`].
//!
//! ```
//! use pocketdb::query::{parse_filter, QueryBuilder, SortOrder};
//! use serde_json::json;
//!
//! let q = QueryBuilder::new()
//!     .where_("age").gte(18)
//!     .where_("status").eq("active")
//!     .sort("name", SortOrder::Asc)
//!     .limit(10)
//!     .build()
//!     .unwrap();
//! let same = parse_filter(&json!({"age": {"$gte": 18}, "status": "active"})).unwrap();
//! assert_eq!(q.filter, same);
//! assert_eq!(q.limit, Some(10));
//! ```
//!
//! Every condition goes through the same operator parser as JSON filters, so both forms
//! accept and reject the same things. Errors (a bad path, a bad regex, a bad operand) are
//! kept and reported by [`QueryBuilder::build`].

use crate::error::{Error, Result};
use crate::query::ast::Filter;
use crate::query::parse::{combine_and, parse_operator_object, parse_top_level_entry};
use crate::query::projection::Projection;
use crate::query::sort::{SortOrder, SortSpec};
use crate::value::FieldPath;
use serde_json::{Map, Value};

/// A query under construction: filter conditions, sort, skip, limit and projection.
///
/// `C` is what the query runs against: `()` for a free-standing query (finish it with
/// [`build`](QueryBuilder::build)), or a collection for `coll.query()` (finish it with
/// `find`, `to_vec`, `first` or `count`).
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct QueryBuilder<C = ()> {
    target: C,
    parts: Vec<Filter>,
    /// The same conditions as MongoDB JSON, one document per part, for plugins whose
    /// `before_read` hooks rewrite JSON filters.
    json: Vec<Value>,
    sort: Vec<(String, SortOrder)>,
    skip: u64,
    limit: Option<u64>,
    projection: Option<Value>,
    deferred: Option<Box<ErrorSlot>>,
}

/// Holds the first deferred error (boxed to keep the builder small).
#[derive(Debug)]
struct ErrorSlot(Error);

impl Clone for ErrorSlot {
    fn clone(&self) -> ErrorSlot {
        // `Error` is not `Clone`; keep an equivalent filter error with the same text.
        ErrorSlot(match &self.0 {
            Error::InvalidFilter { path, message } => Error::filter(path.clone(), message.clone()),
            Error::InvalidName { kind, name, reason } => Error::InvalidName {
                kind,
                name: name.clone(),
                reason: reason.clone(),
            },
            other => Error::InvalidArgument(other.to_string()),
        })
    }
}

/// A finished query, ready for a collection to run.
#[derive(Debug, Clone, PartialEq)]
pub struct BuiltQuery {
    /// The predicate.
    pub filter: Filter,
    /// The sort order, if any keys were given.
    pub sort: Option<SortSpec>,
    /// Documents to skip.
    pub skip: u64,
    /// Maximum number of documents to return.
    pub limit: Option<u64>,
    /// The projection, if one was given.
    pub projection: Option<Projection>,
}

/// A condition being written on one field path; each operator method adds the condition
/// and returns the [`QueryBuilder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct FieldClause<C = ()> {
    builder: QueryBuilder<C>,
    path: String,
}

impl QueryBuilder {
    /// An empty query: matches every document, no sort, skip or limit.
    pub fn new() -> QueryBuilder {
        QueryBuilder::default()
    }
}

impl<C> QueryBuilder<C> {
    /// An empty query bound to `target` (a collection, for `coll.query()`).
    pub fn with_target(target: C) -> QueryBuilder<C> {
        QueryBuilder {
            target,
            parts: Vec::new(),
            json: Vec::new(),
            sort: Vec::new(),
            skip: 0,
            limit: None,
            projection: None,
            deferred: None,
        }
    }

    /// What the query is bound to.
    pub fn target(&self) -> &C {
        &self.target
    }

    /// Starts a condition on a dotted field path (`"address.city"`).
    pub fn where_(self, path: impl Into<String>) -> FieldClause<C> {
        FieldClause {
            builder: self,
            path: path.into(),
        }
    }

    /// Adds a MongoDB-style JSON filter (`{"a": {"$gt": 1}}`), ANDed with the rest.
    pub fn filter(mut self, filter: Value) -> QueryBuilder<C> {
        let Some(obj) = filter.as_object() else {
            self.fail(Error::filter(
                "",
                "a filter must be a document (JSON object)",
            ));
            return self;
        };
        for (key, value) in obj {
            let mut entry = Map::new();
            entry.insert(key.clone(), value.clone());
            self.json.push(Value::Object(entry));
            if let Err(e) = parse_top_level_entry(key, value, &mut self.parts) {
                self.fail(e);
                break;
            }
        }
        self
    }

    /// Adds `$or` over the filters of the given builders (their sort, skip, limit and
    /// projection are ignored). An empty list is an error, as in JSON.
    pub fn or(self, alternatives: Vec<QueryBuilder>) -> QueryBuilder<C> {
        self.logical("$or", alternatives, Filter::Or)
    }

    /// Adds `$and` over the filters of the given builders.
    pub fn and(self, all: Vec<QueryBuilder>) -> QueryBuilder<C> {
        self.logical("$and", all, Filter::And)
    }

    /// Adds `$nor` over the filters of the given builders.
    pub fn nor(self, none: Vec<QueryBuilder>) -> QueryBuilder<C> {
        self.logical("$nor", none, Filter::Nor)
    }

    fn logical(
        mut self,
        op: &str,
        children: Vec<QueryBuilder>,
        make: fn(Vec<Filter>) -> Filter,
    ) -> QueryBuilder<C> {
        if children.is_empty() {
            self.fail(Error::filter("", format!("{op} needs a non-empty array")));
            return self;
        }
        let mut filters = Vec::with_capacity(children.len());
        let mut json = Vec::with_capacity(children.len());
        for child in children {
            json.push(child.filter_json());
            match child.into_filter() {
                Ok(f) => filters.push(f),
                Err(e) => {
                    self.fail(e);
                    return self;
                }
            }
        }
        self.parts.push(make(filters));
        let mut entry = Map::new();
        entry.insert(op.to_string(), Value::Array(json));
        self.json.push(Value::Object(entry));
        self
    }

    /// Adds a sort key (keys apply in the order they are added).
    pub fn sort(mut self, path: impl Into<String>, order: SortOrder) -> QueryBuilder<C> {
        self.sort.push((path.into(), order));
        self
    }

    /// Skips the first `n` matching documents.
    pub fn skip(mut self, n: u64) -> QueryBuilder<C> {
        self.skip = n;
        self
    }

    /// Returns at most `n` documents.
    pub fn limit(mut self, n: u64) -> QueryBuilder<C> {
        self.limit = Some(n);
        self
    }

    /// Sets the projection (`{"name": 1, "_id": 0}`), parsed by [`Projection::parse`].
    pub fn project(mut self, projection: Value) -> QueryBuilder<C> {
        self.projection = Some(projection);
        self
    }

    /// The query's conditions as one MongoDB JSON filter (`{"$and": [...]}`, or `{}`).
    pub fn filter_json(&self) -> Value {
        match self.json.as_slice() {
            [] => Value::Object(Map::new()),
            [one] => one.clone(),
            all => {
                let mut m = Map::new();
                m.insert("$and".to_string(), Value::Array(all.to_vec()));
                Value::Object(m)
            }
        }
    }

    /// Finishes the query, reporting the first error met while building it.
    pub fn build(self) -> Result<BuiltQuery> {
        self.into_parts().map(|(_, q)| q)
    }

    /// Finishes the query and hands back its target.
    pub fn into_parts(self) -> Result<(C, BuiltQuery)> {
        if let Some(slot) = self.deferred {
            return Err(slot.0);
        }
        let sort = if self.sort.is_empty() {
            None
        } else {
            let mut keys = Vec::with_capacity(self.sort.len());
            for (path, order) in self.sort {
                let parsed = FieldPath::parse(&path).map_err(|e| Error::InvalidSort {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
                keys.push((parsed, order));
            }
            Some(SortSpec::new(keys))
        };
        let projection = self
            .projection
            .as_ref()
            .map(Projection::parse)
            .transpose()?;
        Ok((
            self.target,
            BuiltQuery {
                filter: combine_and(self.parts),
                sort,
                skip: self.skip,
                limit: self.limit,
                projection,
            },
        ))
    }

    fn into_filter(self) -> Result<Filter> {
        if let Some(slot) = self.deferred {
            return Err(slot.0);
        }
        Ok(combine_and(self.parts))
    }

    fn fail(&mut self, e: Error) {
        if self.deferred.is_none() {
            self.deferred = Some(Box::new(ErrorSlot(e)));
        }
    }
}

impl<C> FieldClause<C> {
    fn op(self, op: &str, arg: Value) -> QueryBuilder<C> {
        let mut m = Map::new();
        m.insert(op.to_string(), arg);
        self.ops(m)
    }

    /// Adds the conditions of an operator object, through the JSON operator parser.
    fn ops(self, m: Map<String, Value>) -> QueryBuilder<C> {
        let FieldClause { mut builder, path } = self;
        let mut entry = Map::new();
        entry.insert(path.clone(), Value::Object(m.clone()));
        builder.json.push(Value::Object(entry));
        let parsed =
            FieldPath::parse(&path).and_then(|fp| Ok((fp, parse_operator_object(&path, &m)?)));
        match parsed {
            Ok((fp, conds)) => builder
                .parts
                .extend(conds.into_iter().map(|cond| Filter::Field {
                    path: fp.clone(),
                    cond,
                })),
            Err(e) => builder.fail(e),
        }
        builder
    }

    /// `$eq`: equal to the value (or, for an array field, holding it).
    pub fn eq(self, value: impl Into<Value>) -> QueryBuilder<C> {
        self.op("$eq", value.into())
    }

    /// `$ne`: not equal (also matches a missing field).
    pub fn ne(self, value: impl Into<Value>) -> QueryBuilder<C> {
        self.op("$ne", value.into())
    }

    /// `$gt`: greater, within the same type bracket.
    pub fn gt(self, value: impl Into<Value>) -> QueryBuilder<C> {
        self.op("$gt", value.into())
    }

    /// `$gte`: greater or equal, within the same type bracket.
    pub fn gte(self, value: impl Into<Value>) -> QueryBuilder<C> {
        self.op("$gte", value.into())
    }

    /// `$lt`: less, within the same type bracket.
    pub fn lt(self, value: impl Into<Value>) -> QueryBuilder<C> {
        self.op("$lt", value.into())
    }

    /// `$lte`: less or equal, within the same type bracket.
    pub fn lte(self, value: impl Into<Value>) -> QueryBuilder<C> {
        self.op("$lte", value.into())
    }

    /// `$in`: equal to one of the values (`{"$regex": …}` objects act as regexes).
    pub fn in_<V: Into<Value>>(self, values: impl IntoIterator<Item = V>) -> QueryBuilder<C> {
        self.op("$in", values.into_iter().map(Into::into).collect())
    }

    /// `$nin`: equal to none of the values.
    pub fn nin<V: Into<Value>>(self, values: impl IntoIterator<Item = V>) -> QueryBuilder<C> {
        self.op("$nin", values.into_iter().map(Into::into).collect())
    }

    /// `$exists`.
    pub fn exists(self, exists: bool) -> QueryBuilder<C> {
        self.op("$exists", Value::Bool(exists))
    }

    /// `$regex` with MongoDB options (a subset of `imsx`, may be empty).
    pub fn regex(self, pattern: impl Into<String>, options: impl Into<String>) -> QueryBuilder<C> {
        let options: String = options.into();
        let mut m = Map::new();
        m.insert("$regex".to_string(), Value::String(pattern.into()));
        if !options.is_empty() {
            m.insert("$options".to_string(), Value::String(options));
        }
        self.ops(m)
    }

    /// `$size`: an array of exactly `n` elements.
    pub fn size(self, n: u64) -> QueryBuilder<C> {
        self.op("$size", Value::from(n))
    }

    /// `$all`: an array holding every value.
    pub fn all<V: Into<Value>>(self, values: impl IntoIterator<Item = V>) -> QueryBuilder<C> {
        self.op("$all", values.into_iter().map(Into::into).collect())
    }

    /// `$elemMatch` with a JSON argument (`{"qty": {"$gt": 5}}` or `{"$gte": 80}`).
    pub fn elem_match(self, spec: Value) -> QueryBuilder<C> {
        self.op("$elemMatch", spec)
    }

    /// `$mod: [divisor, remainder]`.
    pub fn mod_(self, divisor: i64, remainder: i64) -> QueryBuilder<C> {
        self.op(
            "$mod",
            Value::Array(vec![Value::from(divisor), Value::from(remainder)]),
        )
    }

    /// `$type` with an alias (`"string"`, `"number"`), a BSON type number, or an array of
    /// them.
    pub fn type_(self, types: impl Into<Value>) -> QueryBuilder<C> {
        self.op("$type", types.into())
    }

    /// `$not` with an operator object (`{"$gt": 5}` or `{"$regex": "^a"}`).
    pub fn not(self, ops: Value) -> QueryBuilder<C> {
        self.op("$not", ops)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::parse_filter;
    use serde_json::json;

    fn same(b: QueryBuilder, filter: Value) {
        let json = b.filter_json();
        let built = b.build().unwrap_or_else(|e| panic!("{filter}: {e}"));
        assert_eq!(built.filter, parse_filter(&filter).unwrap(), "{filter}");
        // The JSON mirror handed to plugins means the same thing.
        let reparsed = parse_filter(&json).unwrap_or_else(|e| panic!("{json}: {e}"));
        let doc = serde_json::json!({"a": 1, "b": 2, "c": [1, 2], "t": ["a", "b"]});
        assert_eq!(reparsed.matches(&doc), built.filter.matches(&doc), "{json}");
    }

    #[test]
    fn builder_matches_parser() {
        same(QueryBuilder::new(), json!({}));
        same(QueryBuilder::new().where_("a").eq(1), json!({"a": 1}));
        same(
            QueryBuilder::new().where_("a").eq(json!({"b": 1})),
            json!({"a": {"b": 1}}),
        );
        same(
            QueryBuilder::new()
                .where_("age")
                .gte(18)
                .where_("status")
                .eq("active"),
            json!({"age": {"$gte": 18}, "status": "active"}),
        );
        same(
            QueryBuilder::new().where_("a").gt(1).where_("a").lt(5),
            json!({"a": {"$gt": 1, "$lt": 5}}),
        );
        same(
            QueryBuilder::new()
                .where_("a")
                .ne(Value::Null)
                .where_("b")
                .lte(2.5)
                .where_("c")
                .in_([1, 2])
                .where_("d")
                .nin(vec!["x"])
                .where_("e")
                .exists(false),
            json!({"a": {"$ne": null}, "b": {"$lte": 2.5}, "c": {"$in": [1, 2]},
                   "d": {"$nin": ["x"]}, "e": {"$exists": false}}),
        );
        same(
            QueryBuilder::new()
                .where_("n")
                .regex("^a", "i")
                .where_("m")
                .regex("b", ""),
            json!({"n": {"$regex": "^a", "$options": "i"}, "m": {"$regex": "b"}}),
        );
        same(
            QueryBuilder::new()
                .where_("t")
                .size(2)
                .where_("t")
                .all(["a", "b"])
                .where_("t.x")
                .type_("number"),
            json!({"t": {"$size": 2, "$all": ["a", "b"]}, "t.x": {"$type": "number"}}),
        );
        same(
            QueryBuilder::new()
                .where_("r")
                .elem_match(json!({"q": {"$gt": 5}}))
                .where_("s")
                .elem_match(json!({"$gte": 80}))
                .where_("k")
                .mod_(4, 1)
                .where_("z")
                .not(json!({"$gt": 3})),
            json!({"r": {"$elemMatch": {"q": {"$gt": 5}}}, "s": {"$elemMatch": {"$gte": 80}},
                   "k": {"$mod": [4, 1]}, "z": {"$not": {"$gt": 3}}}),
        );
        same(
            QueryBuilder::new().where_("a").eq(1).or(vec![
                QueryBuilder::new().where_("b").eq(2),
                QueryBuilder::new().where_("c").gt(3).where_("d").eq(4),
            ]),
            json!({"a": 1, "$or": [{"b": 2}, {"c": {"$gt": 3}, "d": 4}]}),
        );
        same(
            QueryBuilder::new()
                .and(vec![QueryBuilder::new().where_("a").eq(1)])
                .nor(vec![QueryBuilder::new()]),
            json!({"$and": [{"a": 1}], "$nor": [{}]}),
        );
        same(
            QueryBuilder::new()
                .filter(json!({"a": 1, "b": {"$gt": 2}}))
                .where_("c")
                .eq(3),
            json!({"a": 1, "b": {"$gt": 2}, "c": 3}),
        );
    }

    #[test]
    fn sort_skip_limit_projection() {
        let q = QueryBuilder::new()
            .sort("name", SortOrder::Asc)
            .sort("age", SortOrder::Desc)
            .skip(5)
            .limit(10)
            .project(json!({"name": 1, "_id": 0}))
            .build()
            .unwrap();
        assert_eq!(
            q.sort,
            Some(SortSpec::parse(&json!({"name": 1, "age": -1})).unwrap())
        );
        assert_eq!(q.skip, 5);
        assert_eq!(q.limit, Some(10));
        assert_eq!(
            q.projection,
            Some(Projection::parse(&json!({"name": 1, "_id": 0})).unwrap())
        );
        assert!(q.filter.is_all());
        let q = QueryBuilder::new().build().unwrap();
        assert_eq!(
            (q.sort, q.skip, q.limit, q.projection),
            (None, 0, None, None)
        );
    }

    #[test]
    fn errors_are_deferred_to_build() {
        let cases = [
            QueryBuilder::new().where_("a..b").eq(1),
            QueryBuilder::new().where_("").eq(1),
            QueryBuilder::new().where_("a").regex("(", ""),
            QueryBuilder::new().where_("a").regex("x", "q"),
            QueryBuilder::new().where_("a").mod_(0, 1),
            QueryBuilder::new().where_("a").type_("nope"),
            QueryBuilder::new().where_("a").elem_match(json!(1)),
            QueryBuilder::new().where_("a").not(json!(5)),
            QueryBuilder::new().or(vec![]),
            QueryBuilder::new().or(vec![QueryBuilder::new().where_("$x").eq(1)]),
            QueryBuilder::new().filter(json!({"$where": "x"})),
            QueryBuilder::new().sort("a..b", SortOrder::Asc),
            QueryBuilder::new().project(json!({"a": 1, "b": 0})),
        ];
        for (i, b) in cases.into_iter().enumerate() {
            assert!(b.clone().build().is_err(), "case {i}");
        }
        let err = QueryBuilder::new()
            .where_("a")
            .mod_(0, 1)
            .where_("b")
            .eq(1)
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("divisor"), "{err}");
        assert!(matches!(
            QueryBuilder::new().sort("", SortOrder::Asc).build(),
            Err(Error::InvalidSort { .. })
        ));
    }

    #[test]
    fn built_filter_matches() {
        let q = QueryBuilder::new()
            .where_("tags")
            .eq("x")
            .where_("n")
            .gt(2)
            .build()
            .unwrap();
        assert!(q.filter.matches(&json!({"tags": ["x", "y"], "n": [1, 3]})));
        assert!(!q.filter.matches(&json!({"tags": ["y"], "n": 3})));
    }
}
