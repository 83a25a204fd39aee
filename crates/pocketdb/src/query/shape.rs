//! Filter shapes: the structure of a [`Filter`] with its literal values abstracted, and
//! where each bound SQL parameter comes from.
//!
//! Two filters of the same shape compile to the same SQL text; only the values bound to
//! its `?` placeholders differ. The plan cache (`collection::plan_cache`) keys compiled
//! plans by [`Shape::hash`] and rebinds a cached plan to a new filter through
//! [`ParamSource`]s: each parameter is a constant, or a conversion ([`Conv`]) of one of
//! the filter's literals ([`Lit`], numbered in the order [`shape`] visits them).
//!
//! # What the shape holds
//!
//! Operators, field paths, list lengths (`$in`, `$all`, `$type`, `$and`…), `$exists`
//! and `$type` operands, and for each literal the part of it the compiled SQL depends
//! on: its *class* ([`value_class`]: null, `true`, `false`, an `i64` integer, an integer
//! beyond `i64`, a float, a string, an array, a document, a date), and for a regex its options
//! and whether it has a literal prefix usable as a string range. Everything else about a
//! literal (the number itself, the string's text, the contents of an array operand, a
//! regex's pattern) only ever reaches SQL as a bound parameter.
//!
//! The compiler records, for every parameter it emits, the address of the literal it
//! read; a parameter whose literal this walk did not visit makes the plan uncacheable
//! instead of wrong.
//!
//! This module is pure: no connection, no cache.

use crate::index::prefix_range;
use crate::query::ast::{AllItem, Cond, ElemMatch, Filter, InItem, Regex};
use rusqlite::types::Value as SqlValue;
use serde_json::Value;
use std::hash::{BuildHasher, Hash, Hasher};

/// A literal of a filter that a bound parameter can be computed from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Lit<'a> {
    /// An operand value (`$eq`, `$gt`, an `$in` item…).
    Value(&'a Value),
    /// A regex (`$regex`, a regex in `$in` or `$all`).
    Regex(&'a Regex),
    /// The divisor or remainder of `$mod`.
    Int(&'a i64),
    /// The length of `$size`.
    Size(&'a u64),
}

impl Lit<'_> {
    /// Identity of the literal inside the filter it was read from: its kind and address.
    pub(crate) fn key(self) -> (u8, usize) {
        match self {
            Lit::Value(v) => (0, v as *const Value as usize),
            Lit::Regex(r) => (1, r as *const Regex as usize),
            Lit::Int(i) => (2, i as *const i64 as usize),
            Lit::Size(n) => (3, n as *const u64 as usize),
        }
    }
}

/// Computes a parameter from a literal; `None` when the literal is not of the kind the
/// conversion expects.
pub(crate) type Conv = fn(Lit<'_>) -> Option<SqlValue>;

/// Where a parameter emitted while compiling came from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Src {
    /// A value fixed by the SQL text (a type tag): the same for every filter of the shape.
    Const,
    /// `conv` of the literal with this [`Lit::key`].
    Lit { key: (u8, usize), conv: Conv },
    /// Unknown: the plan must not be reused.
    Unknown,
}

impl Src {
    /// The parameter `conv(lit)` and its source.
    pub(crate) fn param(lit: Lit<'_>, conv: Conv) -> (SqlValue, Src) {
        match conv(lit) {
            Some(v) => (
                v,
                Src::Lit {
                    key: lit.key(),
                    conv,
                },
            ),
            None => (SqlValue::Null, Src::Unknown),
        }
    }
}

/// How a cached plan computes one parameter for a new filter of the same shape.
#[derive(Debug, Clone)]
pub(crate) enum ParamSource {
    /// Always this value.
    Const(SqlValue),
    /// `conv` of the filter's literal number `slot` (in [`Shape::lits`] order).
    Slot { slot: u32, conv: Conv },
}

/// A filter's shape.
#[derive(Debug)]
pub(crate) struct Shape<'a> {
    /// Hash of the structure (see the module docs).
    pub hash: u64,
    /// The literals, in visiting order.
    pub lits: Vec<Lit<'a>>,
}

impl<'a> Shape<'a> {
    /// The sources of `params` (emitted while compiling the filter this shape was taken
    /// from, with `srcs` beside them), as slots of this shape; `None` when a parameter
    /// came from somewhere this shape does not know.
    pub(crate) fn sources(&self, params: &[SqlValue], srcs: &[Src]) -> Option<Vec<ParamSource>> {
        if params.len() != srcs.len() {
            return None;
        }
        let slots: std::collections::HashMap<(u8, usize), u32> = self
            .lits
            .iter()
            .enumerate()
            .map(|(i, l)| (l.key(), i as u32))
            .collect();
        params
            .iter()
            .zip(srcs)
            .map(|(value, src)| match src {
                Src::Const => Some(ParamSource::Const(value.clone())),
                Src::Lit { key, conv } => Some(ParamSource::Slot {
                    slot: *slots.get(key)?,
                    conv: *conv,
                }),
                Src::Unknown => None,
            })
            .collect()
    }

    /// The parameters `sources` give for this shape's literals; `None` when one cannot
    /// be computed (the caller then compiles afresh).
    pub(crate) fn bind(&self, sources: &[ParamSource]) -> Option<Vec<SqlValue>> {
        sources
            .iter()
            .map(|s| match s {
                ParamSource::Const(v) => Some(v.clone()),
                ParamSource::Slot { slot, conv } => conv(*self.lits.get(*slot as usize)?),
            })
            .collect()
    }
}

/// The shape of `filter`, hashed with `state`; `extra` hashes what else the plan depends
/// on (hint, sort).
pub(crate) fn shape<'a>(
    filter: &'a Filter,
    state: &impl BuildHasher,
    extra: impl FnOnce(&mut dyn Hasher),
) -> Shape<'a> {
    let mut walker = Walker {
        hasher: state.build_hasher(),
        lits: Vec::new(),
    };
    walker.filter(filter);
    extra(&mut walker.hasher);
    Shape {
        hash: walker.hasher.finish(),
        lits: walker.lits,
    }
}

/// What the compiled SQL may depend on in a value operand.
pub(crate) fn value_class(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(false) => 1,
        Value::Bool(true) => 2,
        Value::Number(n) if n.is_i64() => 3,
        Value::Number(n) if n.is_u64() => 4,
        Value::Number(_) => 5,
        Value::String(_) => 6,
        Value::Array(_) => 7,
        // A date may be planned differently from an embedded document (index bounds).
        Value::Object(_) if crate::value::date_millis(v).is_some() => 9,
        Value::Object(_) => 8,
    }
}

/// What the compiled SQL may depend on in a regex: its options, and whether it has a
/// literal prefix (with an upper bound) that a range can seek.
fn regex_class(re: &Regex) -> (&str, u8) {
    let prefix = match prefix_range(re) {
        None => 0,
        Some((_, None)) => 1,
        Some((_, Some(_))) => 2,
    };
    (re.options.as_str(), prefix)
}

struct Walker<'a, H> {
    hasher: H,
    lits: Vec<Lit<'a>>,
}

impl<'a, H: Hasher> Walker<'a, H> {
    fn tag(&mut self, t: u8) {
        self.hasher.write_u8(t);
    }

    fn len(&mut self, n: usize) {
        self.hasher.write_usize(n);
    }

    fn filter(&mut self, filter: &'a Filter) {
        match filter {
            Filter::And(parts) | Filter::Or(parts) | Filter::Nor(parts) => {
                self.tag(match filter {
                    Filter::And(_) => 1,
                    Filter::Or(_) => 2,
                    _ => 3,
                });
                self.len(parts.len());
                parts.iter().for_each(|f| self.filter(f));
            }
            // Never compiled to SQL: the matcher evaluates it.
            Filter::Expr(_) => self.tag(4),
            Filter::Field { path, cond } => {
                self.tag(5);
                self.len(path.len());
                for seg in path.segments() {
                    seg.hash(&mut self.hasher);
                }
                self.cond(cond);
            }
        }
    }

    fn value(&mut self, v: &'a Value) {
        self.tag(value_class(v));
        self.lits.push(Lit::Value(v));
    }

    fn regex(&mut self, re: &'a Regex) {
        regex_class(re).hash(&mut self.hasher);
        self.lits.push(Lit::Regex(re));
    }

    fn cond(&mut self, cond: &'a Cond) {
        match cond {
            Cond::Eq(v) | Cond::Ne(v) | Cond::Gt(v) | Cond::Gte(v) | Cond::Lt(v) | Cond::Lte(v) => {
                self.tag(match cond {
                    Cond::Eq(_) => 10,
                    Cond::Ne(_) => 11,
                    Cond::Gt(_) => 12,
                    Cond::Gte(_) => 13,
                    Cond::Lt(_) => 14,
                    _ => 15,
                });
                self.value(v);
            }
            Cond::In(items) | Cond::Nin(items) => {
                self.tag(if matches!(cond, Cond::In(_)) { 16 } else { 17 });
                self.len(items.len());
                for item in items {
                    match item {
                        InItem::Value(v) => {
                            self.tag(0);
                            self.value(v);
                        }
                        InItem::Regex(re) => {
                            self.tag(1);
                            self.regex(re);
                        }
                    }
                }
            }
            Cond::Exists(b) => self.tag(if *b { 18 } else { 19 }),
            Cond::Type(types) => {
                self.tag(20);
                self.len(types.len());
                types.iter().for_each(|t| t.hash(&mut self.hasher));
            }
            Cond::Regex(re) => {
                self.tag(21);
                self.regex(re);
            }
            Cond::Size(n) => {
                self.tag(22);
                // Lengths beyond i64 compile to "matches nothing".
                self.tag(u8::from(i64::try_from(*n).is_ok()));
                self.lits.push(Lit::Size(n));
            }
            Cond::All(items) => {
                self.tag(23);
                self.len(items.len());
                for item in items {
                    match item {
                        AllItem::Value(v) => {
                            self.tag(0);
                            self.value(v);
                        }
                        AllItem::Regex(re) => {
                            self.tag(1);
                            self.regex(re);
                        }
                        AllItem::ElemMatch(em) => {
                            self.tag(2);
                            self.elem_match(em);
                        }
                    }
                }
            }
            Cond::ElemMatch(em) => {
                self.tag(24);
                self.elem_match(em);
            }
            Cond::Mod { divisor, remainder } => {
                self.tag(25);
                self.lits.push(Lit::Int(divisor));
                self.lits.push(Lit::Int(remainder));
            }
            Cond::Not(conds) => {
                self.tag(26);
                self.len(conds.len());
                conds.iter().for_each(|c| self.cond(c));
            }
        }
    }

    fn elem_match(&mut self, em: &'a ElemMatch) {
        match em {
            ElemMatch::Document(f) => {
                self.tag(0);
                self.filter(f);
            }
            ElemMatch::Value(conds) => {
                self.tag(1);
                self.len(conds.len());
                conds.iter().for_each(|c| self.cond(c));
            }
        }
    }
}

/// Hashes a JSON value completely (a hint's name or key specification).
pub(crate) fn hash_json(v: &Value, h: &mut dyn Hasher) {
    match v {
        Value::Null => h.write_u8(0),
        Value::Bool(b) => {
            h.write_u8(1);
            h.write_u8(u8::from(*b));
        }
        Value::Number(n) => {
            h.write_u8(2);
            h.write(n.to_string().as_bytes());
        }
        Value::String(s) => {
            h.write_u8(3);
            h.write(s.as_bytes());
            h.write_u8(0xff);
        }
        Value::Array(items) => {
            h.write_u8(4);
            h.write_usize(items.len());
            items.iter().for_each(|i| hash_json(i, h));
        }
        Value::Object(m) => {
            h.write_u8(5);
            h.write_usize(m.len());
            for (k, v) in m {
                h.write(k.as_bytes());
                h.write_u8(0xff);
                hash_json(v, h);
            }
        }
    }
}

// ----- conversions -------------------------------------------------------------------

/// A string operand as text.
pub(crate) fn conv_text(l: Lit<'_>) -> Option<SqlValue> {
    match l {
        Lit::Value(Value::String(s)) => Some(SqlValue::Text(s.clone())),
        _ => None,
    }
}

/// A value operand as JSON text (arrays and documents compared by `pocketdb_json_cmp`).
pub(crate) fn conv_json_text(l: Lit<'_>) -> Option<SqlValue> {
    match l {
        Lit::Value(v) => Some(SqlValue::Text(v.to_string())),
        _ => None,
    }
}

/// A regex's pattern.
pub(crate) fn conv_pattern(l: Lit<'_>) -> Option<SqlValue> {
    match l {
        Lit::Regex(re) => Some(SqlValue::Text(re.pattern.clone())),
        _ => None,
    }
}

/// A regex's options.
pub(crate) fn conv_options(l: Lit<'_>) -> Option<SqlValue> {
    match l {
        Lit::Regex(re) => Some(SqlValue::Text(re.options.clone())),
        _ => None,
    }
}

/// The low end of a prefix regex's string range.
pub(crate) fn conv_prefix_lo(l: Lit<'_>) -> Option<SqlValue> {
    match l {
        Lit::Regex(re) => prefix_range(re).map(|(lo, _)| SqlValue::Text(lo)),
        _ => None,
    }
}

/// The (exclusive) high end of a prefix regex's string range.
pub(crate) fn conv_prefix_hi(l: Lit<'_>) -> Option<SqlValue> {
    match l {
        Lit::Regex(re) => prefix_range(re).and_then(|(_, hi)| hi).map(SqlValue::Text),
        _ => None,
    }
}

/// A `$mod` divisor or remainder.
pub(crate) fn conv_int(l: Lit<'_>) -> Option<SqlValue> {
    match l {
        Lit::Int(i) => Some(SqlValue::Integer(*i)),
        _ => None,
    }
}

/// A `$size` length.
pub(crate) fn conv_size(l: Lit<'_>) -> Option<SqlValue> {
    match l {
        Lit::Size(n) => i64::try_from(*n).ok().map(SqlValue::Integer),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::parse_filter;
    use serde_json::json;
    use std::collections::hash_map::RandomState;

    fn hash_of(state: &RandomState, v: Value) -> u64 {
        let f = parse_filter(&v).unwrap();
        shape(&f, state, |_| {}).hash
    }

    #[test]
    fn values_do_not_change_the_shape_but_classes_do() {
        let s = RandomState::new();
        let a = hash_of(&s, json!({"a": 1, "b": {"$in": ["x", 2]}}));
        assert_eq!(a, hash_of(&s, json!({"a": 7, "b": {"$in": ["y", 3]}})));
        assert_ne!(a, hash_of(&s, json!({"a": 1.5, "b": {"$in": ["x", 2]}})));
        assert_ne!(a, hash_of(&s, json!({"a": "1", "b": {"$in": ["x", 2]}})));
        assert_ne!(a, hash_of(&s, json!({"a": 1, "b": {"$in": ["x", 2, 3]}})));
        assert_ne!(a, hash_of(&s, json!({"a": 1, "b": {"$in": [2, "x"]}})));
        assert_ne!(a, hash_of(&s, json!({"b": 1, "a": {"$in": ["x", 2]}})));
        assert_ne!(
            hash_of(&s, json!({"a": true})),
            hash_of(&s, json!({"a": false}))
        );
        assert_ne!(
            hash_of(&s, json!({"a": {"$regex": "^ab"}})),
            hash_of(&s, json!({"a": {"$regex": "ab"}}))
        );
        assert_eq!(
            hash_of(&s, json!({"a": {"$regex": "^ab"}})),
            hash_of(&s, json!({"a": {"$regex": "^cd"}}))
        );
    }

    #[test]
    fn literals_are_listed_in_visiting_order() {
        let s = RandomState::new();
        let f = parse_filter(&json!({"a": 1, "b": {"$mod": [3, 2]}, "c": {"$size": 4}})).unwrap();
        let shape = shape(&f, &s, |_| {});
        assert_eq!(shape.lits.len(), 4);
        assert!(matches!(shape.lits[0], Lit::Value(v) if *v == json!(1)));
        assert!(matches!(shape.lits[1], Lit::Int(3)));
        assert!(matches!(shape.lits[2], Lit::Int(2)));
        assert!(matches!(shape.lits[3], Lit::Size(4)));
    }
}
