//! Accumulators of `$group` and `$bucket` (`$sum $avg $min $max $first $last $push
//! $addToSet $count`), also used by the array forms of `$sum`/`$avg`/`$min`/`$max` in
//! expressions.

use super::expr::{float_value, Expr, Num};
use crate::error::{Error, Result};
pub(crate) use crate::value::approx_size;
use crate::value::compare_values;
use crate::value::equality_key;
use serde_json::Value;
use std::cmp::Ordering;
use std::collections::HashSet;

/// Which accumulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Sum,
    Avg,
    Min,
    Max,
    First,
    Last,
    Push,
    AddToSet,
    Count,
}

impl Kind {
    fn parse(name: &str) -> Option<Kind> {
        Some(match name {
            "$sum" => Kind::Sum,
            "$avg" => Kind::Avg,
            "$min" => Kind::Min,
            "$max" => Kind::Max,
            "$first" => Kind::First,
            "$last" => Kind::Last,
            "$push" => Kind::Push,
            "$addToSet" => Kind::AddToSet,
            "$count" => Kind::Count,
            _ => return None,
        })
    }

    /// True when the result does not depend on the order of the input.
    pub(crate) fn order_insensitive(self) -> bool {
        !matches!(self, Kind::First | Kind::Last | Kind::Push)
    }
}

/// One output field of `$group`: `name: {$acc: expr}`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Accumulator {
    pub name: String,
    pub kind: Kind,
    pub expr: Expr,
}

impl Accumulator {
    /// Parses `{"$sum": <expr>}` for output field `name` of `stage`.
    pub(crate) fn parse(stage: &str, name: &str, spec: &Value) -> Result<Accumulator> {
        if name.contains('.') || name.starts_with('$') || name.is_empty() {
            return Err(Error::pipeline(
                stage,
                format!("the field name '{name}' cannot contain '.' or start with '$'"),
            ));
        }
        let obj = spec.as_object().filter(|o| o.len() == 1).ok_or_else(|| {
            Error::pipeline(
                stage,
                format!("the field '{name}' must be an accumulator object with one operator"),
            )
        })?;
        let (op, arg) = obj.iter().next().ok_or_else(|| {
            Error::pipeline(stage, format!("the field '{name}' has no accumulator"))
        })?;
        let kind = Kind::parse(op).ok_or_else(|| {
            Error::pipeline(
                stage,
                format!("unknown group operator '{op}' for field '{name}'"),
            )
        })?;
        let expr = if kind == Kind::Count {
            if !arg.as_object().is_some_and(|o| o.is_empty()) {
                return Err(Error::pipeline(
                    "$count",
                    "the accumulator takes an empty object {}",
                ));
            }
            Expr::literal(Value::from(1))
        } else {
            Expr::parse(arg)?
        };
        Ok(Accumulator {
            name: name.to_string(),
            kind,
            expr,
        })
    }
}

/// The running state of one accumulator in one group.
#[derive(Debug, Clone)]
pub(crate) struct State {
    kind: Kind,
    /// Exact integer sum while every input is an integer and nothing overflowed.
    int_sum: Option<i64>,
    /// Compensated (Neumaier) floating sum of every numeric input.
    float_sum: f64,
    compensation: f64,
    count: u64,
    value: Option<Value>,
    items: Vec<Value>,
    /// `$addToSet`: the group key ([`equality_key`]) of every item, so a new value is not
    /// compared with each item kept.
    seen: HashSet<String>,
    seen_first: bool,
}

impl State {
    pub(crate) fn new(kind: Kind) -> State {
        State {
            kind,
            int_sum: Some(0),
            float_sum: 0.0,
            compensation: 0.0,
            count: 0,
            value: None,
            items: Vec::new(),
            seen: HashSet::new(),
            seen_first: false,
        }
    }

    /// Feeds one value (`None` when the expression evaluated to missing). Returns the
    /// number of bytes the state grew by (for the memory limit).
    pub(crate) fn add(&mut self, v: Option<&Value>) -> usize {
        match self.kind {
            Kind::Sum | Kind::Avg => {
                if let Some(n) = v.and_then(Num::of) {
                    self.count += 1;
                    self.int_sum = match (self.int_sum, n) {
                        (Some(s), Num::Int(i)) => s.checked_add(i),
                        _ => None,
                    };
                    let f = n.f();
                    let t = self.float_sum + f;
                    if self.float_sum.abs() >= f.abs() {
                        self.compensation += (self.float_sum - t) + f;
                    } else {
                        self.compensation += (f - t) + self.float_sum;
                    }
                    self.float_sum = t;
                }
                0
            }
            Kind::Count => {
                self.count += 1;
                0
            }
            Kind::Min | Kind::Max => {
                let Some(v) = v.filter(|v| !v.is_null()) else {
                    return 0;
                };
                let better = match &self.value {
                    None => true,
                    Some(cur) => {
                        let o = compare_values(v, cur);
                        if self.kind == Kind::Min {
                            o == Ordering::Less
                        } else {
                            o == Ordering::Greater
                        }
                    }
                };
                if better {
                    let grow = approx_size(v);
                    self.value = Some(v.clone());
                    return grow;
                }
                0
            }
            Kind::First => {
                if !self.seen_first {
                    self.seen_first = true;
                    self.value = Some(v.cloned().unwrap_or(Value::Null));
                    return v.map_or(0, approx_size);
                }
                0
            }
            Kind::Last => {
                self.value = Some(v.cloned().unwrap_or(Value::Null));
                v.map_or(0, approx_size)
            }
            Kind::Push => match v {
                Some(v) => {
                    self.items.push(v.clone());
                    approx_size(v)
                }
                None => 0,
            },
            Kind::AddToSet => match v {
                Some(v) => {
                    let mut key = String::new();
                    equality_key(v, &mut key);
                    let grow = key.len();
                    if !self.seen.insert(key) {
                        return 0;
                    }
                    self.items.push(v.clone());
                    approx_size(v) + grow
                }
                None => 0,
            },
        }
    }

    /// Folds in the state of the same accumulator over inputs that came *after* this
    /// state's inputs (a later spilled run): `$first` keeps this side, `$last` takes the
    /// later one, `$push` appends in order, sums add exactly as `add` would have.
    pub(crate) fn merge(&mut self, later: State) {
        match self.kind {
            Kind::Sum | Kind::Avg => {
                self.count += later.count;
                self.int_sum = match (self.int_sum, later.int_sum) {
                    (Some(a), Some(b)) => a.checked_add(b),
                    _ => None,
                };
                let f = later.float_sum;
                let t = self.float_sum + f;
                if self.float_sum.abs() >= f.abs() {
                    self.compensation += (self.float_sum - t) + f;
                } else {
                    self.compensation += (f - t) + self.float_sum;
                }
                self.float_sum = t;
                self.compensation += later.compensation;
            }
            Kind::Count => self.count += later.count,
            Kind::Min | Kind::Max => {
                if let Some(v) = later.value {
                    self.add(Some(&v));
                }
            }
            Kind::First => {
                if !self.seen_first && later.seen_first {
                    self.seen_first = true;
                    self.value = later.value;
                }
            }
            Kind::Last => {
                if later.value.is_some() {
                    self.value = later.value;
                }
            }
            Kind::Push => self.items.extend(later.items),
            Kind::AddToSet => {
                for v in later.items {
                    self.add(Some(&v));
                }
            }
        }
    }

    /// The state as JSON, for a spilled `$group` (floats by their bits, so the round
    /// trip is exact, infinities included).
    pub(crate) fn to_json(&self) -> Value {
        let mut m = serde_json::Map::new();
        m.insert("i".into(), self.int_sum.map_or(Value::Null, Value::from));
        m.insert("f".into(), Value::from(self.float_sum.to_bits()));
        m.insert("c".into(), Value::from(self.compensation.to_bits()));
        m.insert("n".into(), Value::from(self.count));
        if let Some(v) = &self.value {
            m.insert("v".into(), v.clone());
        }
        m.insert("a".into(), Value::Array(self.items.clone()));
        m.insert("s".into(), Value::Bool(self.seen_first));
        Value::Object(m)
    }

    /// The inverse of [`State::to_json`].
    pub(crate) fn from_json(kind: Kind, v: Value) -> Result<State> {
        let Value::Object(mut m) = v else {
            return Err(Error::Serde("spilled $group state is not an object".into()));
        };
        let bits = |m: &serde_json::Map<String, Value>, k: &str| {
            m.get(k)
                .and_then(Value::as_u64)
                .map(f64::from_bits)
                .ok_or_else(|| Error::Serde(format!("spilled $group state lacks '{k}'")))
        };
        let items = match m.remove("a") {
            Some(Value::Array(items)) => items,
            _ => Vec::new(),
        };
        let seen = if kind == Kind::AddToSet {
            items
                .iter()
                .map(|v| {
                    let mut key = String::new();
                    equality_key(v, &mut key);
                    key
                })
                .collect()
        } else {
            HashSet::new()
        };
        Ok(State {
            kind,
            int_sum: m.get("i").and_then(Value::as_i64),
            float_sum: bits(&m, "f")?,
            compensation: bits(&m, "c")?,
            count: m.get("n").and_then(Value::as_u64).unwrap_or(0),
            value: m.remove("v"),
            items,
            seen,
            seen_first: m.get("s").and_then(Value::as_bool).unwrap_or(false),
        })
    }

    /// The accumulated result.
    pub(crate) fn finish(self) -> Value {
        match self.kind {
            Kind::Sum => match (self.int_sum, self.count) {
                (_, 0) => Value::from(0),
                (Some(i), _) => Value::from(i),
                (None, _) => float_value(self.float_sum + self.compensation),
            },
            Kind::Avg => {
                if self.count == 0 {
                    Value::Null
                } else {
                    float_value((self.float_sum + self.compensation) / self.count as f64)
                }
            }
            Kind::Count => Value::from(self.count),
            Kind::Min | Kind::Max | Kind::First | Kind::Last => self.value.unwrap_or(Value::Null),
            Kind::Push | Kind::AddToSet => Value::Array(self.items),
        }
    }
}
