//! The filter AST: the one representation of a query predicate.
//!
//! MongoDB-style JSON filters ([`crate::query::parse_filter`]) and the fluent builder
//! ([`crate::query::QueryBuilder`]) both produce a [`Filter`]. Two back ends consume it:
//! the SQL compiler ([`crate::query::sql`]) and the in-memory matcher
//! ([`Filter::matches`]). Both must agree on every document.

use crate::value::{BsonType, FieldPath};
use serde_json::Value;
use std::fmt;

/// A query predicate over one document.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// All of the filters match (the empty list matches every document).
    And(Vec<Filter>),
    /// At least one of the filters matches.
    Or(Vec<Filter>),
    /// None of the filters matches.
    Nor(Vec<Filter>),
    /// `$expr`: an aggregation expression evaluated against the whole document; matches
    /// when the result is truthy. The SQL back end cannot compile it and selects a
    /// superset (`1`, inexact) for the matcher to re-check.
    Expr(Box<crate::aggregate::Expr>),
    /// A condition on the values found at a path.
    Field {
        /// Where to look in the document (through arrays, as MongoDB does).
        path: FieldPath,
        /// What the value there must satisfy.
        cond: Cond,
    },
}

/// A condition on the value(s) at a field path, with MongoDB's array semantics applied by
/// the back ends: a condition on `tags` holds when it holds for the array as a whole or
/// (for most operators) for one of its elements.
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    /// `$eq` and implicit equality; `null` also matches a missing field.
    Eq(Value),
    /// `$ne`: not (`$eq`).
    Ne(Value),
    /// `$gt`: greater within the same type bracket.
    Gt(Value),
    /// `$gte`.
    Gte(Value),
    /// `$lt`.
    Lt(Value),
    /// `$lte`.
    Lte(Value),
    /// `$in`: equal to one of the values or matching one of the regexes.
    In(Vec<InItem>),
    /// `$nin`: not (`$in`).
    Nin(Vec<InItem>),
    /// `$exists`.
    Exists(bool),
    /// `$type` with one or more types (`"number"` expands to double, int, long).
    Type(Vec<BsonType>),
    /// `$regex` (also a bare regex literal in `$in`, `$not`).
    Regex(Regex),
    /// `$size`: an array of exactly this length.
    Size(u64),
    /// `$all`: an array holding every item (an `$elemMatch` item must match one element).
    All(Vec<AllItem>),
    /// `$elemMatch`.
    ElemMatch(ElemMatch),
    /// `$mod: [divisor, remainder]` on numbers (truncated toward zero, as MongoDB).
    Mod {
        /// Non-zero divisor.
        divisor: i64,
        /// Expected remainder.
        remainder: i64,
    },
    /// `$not: {…}` / `$not: /re/`: matches when the conditions (all together) do not,
    /// including when the field is missing.
    Not(Vec<Cond>),
}

/// An entry of `$in` / `$nin`.
#[derive(Debug, Clone, PartialEq)]
pub enum InItem {
    /// Equality with a value (with `$eq`'s rules).
    Value(Value),
    /// A regex matched against strings.
    Regex(Regex),
}

/// An entry of `$all`.
#[derive(Debug, Clone, PartialEq)]
pub enum AllItem {
    /// Behaves as `$eq` with this value.
    Value(Value),
    /// Behaves as `$regex`.
    Regex(Regex),
    /// `{$elemMatch: …}` inside `$all`.
    ElemMatch(ElemMatch),
}

/// The two forms of `$elemMatch`.
#[derive(Debug, Clone, PartialEq)]
pub enum ElemMatch {
    /// `{$elemMatch: {a: 1, b: {$gt: 2}}}`: an element that is a document matching the
    /// filter.
    Document(Box<Filter>),
    /// `{$elemMatch: {$gt: 1, $lt: 5}}`: an element satisfying every condition itself.
    Value(Vec<Cond>),
}

/// A compiled regular expression with MongoDB's options (`i m s x`).
#[derive(Clone)]
pub struct Regex {
    /// The pattern as given.
    pub pattern: String,
    /// The options as given (a subset of `imsx`, sorted).
    pub options: String,
    /// The compiled form.
    pub compiled: regex::Regex,
}

impl Regex {
    /// Compiles `pattern` with MongoDB options. Unknown options and patterns the regex
    /// engine does not support (backreferences, lookaround) are `InvalidFilter` errors.
    pub fn new(pattern: &str, options: &str) -> crate::Result<Regex> {
        let mut builder = regex::RegexBuilder::new(pattern);
        let mut opts: Vec<char> = Vec::new();
        for c in options.chars() {
            match c {
                'i' => builder.case_insensitive(true),
                'm' => builder.multi_line(true),
                's' => builder.dot_matches_new_line(true),
                'x' => builder.ignore_whitespace(true),
                'u' => &mut builder,
                other => {
                    return Err(crate::Error::filter(
                        "",
                        format!("$regex: unsupported option '{other}'"),
                    ))
                }
            };
            if c != 'u' && !opts.contains(&c) {
                opts.push(c);
            }
        }
        opts.sort_unstable();
        let compiled = builder.build().map_err(|e| {
            crate::Error::filter("", format!("$regex: invalid pattern '{pattern}': {e}"))
        })?;
        Ok(Regex {
            pattern: pattern.to_string(),
            options: opts.into_iter().collect(),
            compiled,
        })
    }

    /// True when the string matches.
    pub fn is_match(&self, s: &str) -> bool {
        self.compiled.is_match(s)
    }
}

impl PartialEq for Regex {
    fn eq(&self, other: &Regex) -> bool {
        self.pattern == other.pattern && self.options == other.options
    }
}

impl fmt::Debug for Regex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}/{}", self.pattern, self.options)
    }
}

impl Filter {
    /// The filter that matches every document.
    pub fn all() -> Filter {
        Filter::And(Vec::new())
    }

    /// True for the match-everything filter.
    pub fn is_all(&self) -> bool {
        matches!(self, Filter::And(v) if v.is_empty())
    }
}
