//! The filter AST: the one representation of a query predicate.
//!
//! MongoDB-style JSON filters ([`crate::query::parse_filter`]) and the fluent builder
//! ([`crate::query::QueryBuilder`]) both produce a [`Filter`]. Two back ends consume it:
//! the SQL compiler ([`crate::query::sql`]) and the in-memory matcher
//! ([`Filter::matches`]). Both must agree on every document.

use crate::value::{BsonType, FieldPath};
use serde_json::Value;
use std::collections::HashSet;
use std::fmt;
use std::sync::OnceLock;

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
    In(InList),
    /// `$nin`: not (`$in`).
    Nin(InList),
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

/// The entries of `$in` / `$nin`: a list (it dereferences to `[InItem]`) that the
/// in-memory matcher looks values up in by hash once it is long, instead of comparing
/// each candidate with every entry.
#[derive(Clone, Default)]
pub struct InList {
    items: Vec<InItem>,
    /// Built on the first match against a long list.
    lookup: OnceLock<Option<InLookup>>,
}

/// The hashed form of a long [`InList`]: the equality keys of its values (see
/// [`crate::value::compare`]'s `equality_key`) and its regexes.
#[derive(Clone)]
pub(crate) struct InLookup {
    pub(crate) keys: HashSet<String, foldhash::fast::RandomState>,
    pub(crate) has_null: bool,
    /// Whether some value is an array / an embedded document: when none is, a
    /// candidate of that kind needs no key.
    pub(crate) has_array: bool,
    pub(crate) has_object: bool,
    pub(crate) regexes: Vec<Regex>,
}

/// Lists shorter than this are compared entry by entry: building a key costs about as
/// much as a few comparisons.
const IN_LOOKUP_MIN: usize = 12;

impl InList {
    /// A list of `$in` entries.
    pub fn new(items: Vec<InItem>) -> InList {
        InList {
            items,
            lookup: OnceLock::new(),
        }
    }

    /// The entries.
    pub fn items(&self) -> &[InItem] {
        &self.items
    }

    /// The hashed form, for a list long enough to be worth it.
    pub(crate) fn lookup(&self) -> Option<&InLookup> {
        self.lookup
            .get_or_init(|| {
                if self.items.len() < IN_LOOKUP_MIN {
                    return None;
                }
                let mut keys = HashSet::with_capacity_and_hasher(
                    self.items.len(),
                    foldhash::fast::RandomState::default(),
                );
                let mut has_null = false;
                let mut has_array = false;
                let mut has_object = false;
                let mut regexes = Vec::new();
                for item in &self.items {
                    match item {
                        InItem::Value(v) => {
                            has_null |= v.is_null();
                            has_array |= v.is_array();
                            has_object |= v.is_object();
                            let mut key = String::new();
                            crate::value::equality_key(v, &mut key);
                            keys.insert(key);
                        }
                        InItem::Regex(re) => regexes.push(re.clone()),
                    }
                }
                Some(InLookup {
                    keys,
                    has_null,
                    has_array,
                    has_object,
                    regexes,
                })
            })
            .as_ref()
    }
}

impl From<Vec<InItem>> for InList {
    fn from(items: Vec<InItem>) -> InList {
        InList::new(items)
    }
}

impl<'a> IntoIterator for &'a InList {
    type Item = &'a InItem;
    type IntoIter = std::slice::Iter<'a, InItem>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}

impl std::ops::Deref for InList {
    type Target = [InItem];

    fn deref(&self) -> &[InItem] {
        &self.items
    }
}

impl PartialEq for InList {
    fn eq(&self, other: &InList) -> bool {
        self.items == other.items
    }
}

impl fmt::Debug for InList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.items).finish()
    }
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
