//! Applying parsed operator entries to a document: the leaf operations, checked
//! arithmetic, `$push` modifiers, `$rename` and `$currentDate`'s date values.

use super::parse::{Action, Entry, PullCond, PushSort, PushSpec};
use super::path::{describe, Leaf, Seg, UpdatePath, Walker};
use super::positional;
use super::ApplyContext;
use crate::error::{Error, Result};
use crate::query::Filter;
use crate::value::{compare_values, equality_key, values_equal, BsonType, FieldPath};
use serde_json::{Map, Number, Value};
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};

/// The value `$currentDate` stores: extended JSON `{"$date": "YYYY-MM-DDTHH:MM:SS.mmmZ"}`
/// for `millis` milliseconds since the Unix epoch (UTC).
pub fn date_value(millis: i64) -> Value {
    let mut map = Map::new();
    map.insert(
        "$date".to_string(),
        Value::String(format_rfc3339_millis(millis)),
    );
    Value::Object(map)
}

fn format_rfc3339_millis(millis: i64) -> String {
    const DAY: i64 = 86_400_000;
    let days = millis.div_euclid(DAY);
    let rem = millis.rem_euclid(DAY);
    let (year, month, day) = civil_from_days(days);
    let hour = rem / 3_600_000;
    let minute = rem / 60_000 % 60;
    let second = rem / 1000 % 60;
    let milli = rem % 1000;
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{milli:03}Z")
}

/// Proleptic Gregorian (year, month, day) of a count of days since 1970-01-01, computed
/// through 400-year eras of 146 097 days counted from 0000-03-01.
pub(crate) fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let shifted = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Applies every entry, in order, to `doc`.
pub(super) fn apply_entries(
    doc: &mut Value,
    entries: &[Entry],
    array_filters: &BTreeMap<String, Filter>,
    ctx: &ApplyContext<'_>,
) -> Result<()> {
    // `$` designates the element the filter matched in the document as it was before
    // the update, so every positional path is resolved before anything changes.
    // `$setOnInsert` entries are skipped (not resolved) unless inserting.
    let active: Vec<&Entry> = entries
        .iter()
        .filter(|e| ctx.is_insert || !matches!(e.action, Action::SetOnInsert(_)))
        .collect();
    let resolved = active
        .iter()
        .map(|e| positional::resolve(e.op, &e.path, doc, ctx.filter))
        .collect::<Result<Vec<_>>>()?;
    for (entry, segs) in active.into_iter().zip(resolved) {
        let walker = Walker {
            op: entry.op,
            text: &entry.path.text,
            array_filters,
        };
        match &entry.action {
            Action::Rename(to) => rename(doc, &entry.path, to, array_filters)?,
            action => {
                let mut leaf = OpLeaf {
                    op: entry.op,
                    path: &entry.path.text,
                    action,
                    now_millis: ctx.now_millis,
                };
                walker.run(doc, &segs, &mut leaf)?;
            }
        }
    }
    Ok(())
}

/// One operator applied where its path leads.
struct OpLeaf<'a> {
    op: &'a str,
    path: &'a str,
    action: &'a Action,
    now_millis: i64,
}

impl OpLeaf<'_> {
    fn err(&self, message: impl Into<String>) -> Error {
        Error::update(self.op, self.path, message)
    }

    fn not_numeric(&self, value: &Value) -> Error {
        self.err(format!(
            "Cannot apply {} to a value of non-numeric type: field '{}' has non-numeric type {}",
            self.op,
            self.path,
            BsonType::of(value).name()
        ))
    }

    fn not_array(&self, value: &Value) -> Error {
        let ty = BsonType::of(value).name();
        let message = match self.action {
            Action::Push(_) => format!(
                "The field '{}' must be an array but is of type {ty}",
                self.path
            ),
            Action::AddToSet(_) => format!(
                "Cannot apply $addToSet to non-array field. Field named '{}' has non-array \
                 type {ty}",
                self.path
            ),
            Action::Pop { .. } => format!(
                "Path '{}' contains an element of non-array type '{ty}'",
                self.path
            ),
            _ => format!("Cannot apply {} to a non-array value", self.op),
        };
        self.err(message)
    }
}

impl Leaf for OpLeaf<'_> {
    fn creates(&self) -> bool {
        matches!(
            self.action,
            Action::Set(_)
                | Action::SetOnInsert(_)
                | Action::Inc(_)
                | Action::Mul(_)
                | Action::Min(_)
                | Action::Max(_)
                | Action::CurrentDate
                | Action::Push(_)
                | Action::AddToSet(_)
        )
    }

    fn removes(&self) -> bool {
        matches!(self.action, Action::Unset)
    }

    fn existing(&mut self, value: &mut Value) -> Result<()> {
        match self.action {
            Action::Set(v) | Action::SetOnInsert(v) => *value = v.clone(),
            Action::Inc(n) | Action::Mul(n) => {
                let Value::Number(current) = value else {
                    return Err(self.not_numeric(value));
                };
                let result = if matches!(self.action, Action::Inc(_)) {
                    arith(current, n, i128::checked_add, |a, b| a + b)
                } else {
                    arith(current, n, i128::checked_mul, |a, b| a * b)
                }
                .map_err(|m| self.err(m))?;
                *value = Value::Number(result);
            }
            Action::Min(v) => {
                if compare_values(v, value) == Ordering::Less {
                    *value = v.clone();
                }
            }
            Action::Max(v) => {
                if compare_values(v, value) == Ordering::Greater {
                    *value = v.clone();
                }
            }
            Action::CurrentDate => *value = date_value(self.now_millis),
            Action::Push(spec) => match value {
                Value::Array(arr) => push_into(arr, spec),
                other => return Err(self.not_array(other)),
            },
            Action::AddToSet(values) => match value {
                Value::Array(arr) => add_to_set(arr, values),
                other => return Err(self.not_array(other)),
            },
            Action::Pop { first } => match value {
                Value::Array(arr) => {
                    if *first {
                        if !arr.is_empty() {
                            arr.remove(0);
                        }
                    } else {
                        arr.pop();
                    }
                }
                other => return Err(self.not_array(other)),
            },
            Action::Pull(cond) => match value {
                Value::Array(arr) => arr.retain(|e| !pull_matches(cond, e)),
                other => return Err(self.not_array(other)),
            },
            Action::PullAll(values) => match value {
                Value::Array(arr) => pull_all(arr, values),
                other => return Err(self.not_array(other)),
            },
            Action::Unset | Action::Rename(_) => {}
        }
        Ok(())
    }

    fn missing(&mut self) -> Result<Option<Value>> {
        Ok(match self.action {
            Action::Set(v) | Action::SetOnInsert(v) | Action::Min(v) | Action::Max(v) => {
                Some(v.clone())
            }
            Action::Inc(n) => Some(Value::Number(n.clone())),
            Action::Mul(n) => Some(Value::Number(zero_like(n))),
            Action::CurrentDate => Some(date_value(self.now_millis)),
            Action::Push(spec) => {
                let mut arr = Vec::new();
                push_into(&mut arr, spec);
                Some(Value::Array(arr))
            }
            Action::AddToSet(values) => {
                let mut arr = Vec::new();
                add_to_set(&mut arr, values);
                Some(Value::Array(arr))
            }
            Action::Unset
            | Action::Rename(_)
            | Action::Pop { .. }
            | Action::Pull(_)
            | Action::PullAll(_) => None,
        })
    }
}

fn int_of(n: &Number) -> Option<i128> {
    n.as_i64()
        .map(i128::from)
        .or_else(|| n.as_u64().map(i128::from))
}

/// An integer result: `i64`, or `u64` only when an operand already was one (JSON from
/// elsewhere); anything else overflows, as MongoDB's 64-bit integers do.
fn number_from_i128(x: i128, allow_u64: bool) -> Option<Number> {
    i64::try_from(x).ok().map(Number::from).or_else(|| {
        allow_u64
            .then(|| u64::try_from(x).ok().map(Number::from))
            .flatten()
    })
}

/// `a ∘ b` with MongoDB's numeric typing: integers stay integers (checked), anything
/// with a float is a float.
fn arith(
    a: &Number,
    b: &Number,
    int_op: fn(i128, i128) -> Option<i128>,
    float_op: fn(f64, f64) -> f64,
) -> std::result::Result<Number, String> {
    if let (Some(x), Some(y)) = (int_of(a), int_of(b)) {
        let allow_u64 = a.as_i64().is_none() || b.as_i64().is_none();
        return int_op(x, y)
            .and_then(|r| number_from_i128(r, allow_u64))
            .ok_or_else(|| format!("integer overflow computing {a} and {b}"));
    }
    let (Some(x), Some(y)) = (a.as_f64(), b.as_f64()) else {
        return Err(format!("cannot compute with {a} and {b}"));
    };
    Number::from_f64(float_op(x, y))
        .ok_or_else(|| format!("the result of {a} and {b} is not a finite number"))
}

/// Zero with the numeric type of `n` (`$mul` on a missing field).
fn zero_like(n: &Number) -> Number {
    if n.is_f64() {
        Number::from_f64(0.0).unwrap_or_else(|| Number::from(0))
    } else {
        Number::from(0)
    }
}

/// Above this many element-value comparisons, `$addToSet` and `$pullAll` hash each value's
/// [`equality_key`] instead of comparing every pair.
const PAIRWISE_MAX: usize = 256;

fn add_to_set(arr: &mut Vec<Value>, values: &[Value]) {
    if arr
        .len()
        .saturating_add(values.len())
        .saturating_mul(values.len())
        <= PAIRWISE_MAX
    {
        for v in values {
            if !arr.iter().any(|e| values_equal(e, v)) {
                arr.push(v.clone());
            }
        }
        return;
    }
    let mut seen: HashSet<String> = arr.iter().map(key_of).collect();
    for v in values {
        if seen.insert(key_of(v)) {
            arr.push(v.clone());
        }
    }
}

fn pull_all(arr: &mut Vec<Value>, values: &[Value]) {
    if arr.len().saturating_mul(values.len()) <= PAIRWISE_MAX {
        arr.retain(|e| !values.iter().any(|v| values_equal(e, v)));
        return;
    }
    let pulled: HashSet<String> = values.iter().map(key_of).collect();
    arr.retain(|e| !pulled.contains(&key_of(e)));
}

fn key_of(v: &Value) -> String {
    let mut key = String::new();
    equality_key(v, &mut key);
    key
}

fn push_into(arr: &mut Vec<Value>, spec: &PushSpec) {
    let len = arr.len();
    let pos = match spec.position {
        None => len,
        Some(p) if p >= 0 => usize::try_from(p).unwrap_or(usize::MAX).min(len),
        Some(p) => {
            let from_end = usize::try_from(p.unsigned_abs()).unwrap_or(usize::MAX);
            len.saturating_sub(from_end)
        }
    };
    arr.splice(pos..pos, spec.each.iter().cloned());
    if let Some(sort) = &spec.sort {
        sort_elements(arr, sort);
    }
    if let Some(s) = spec.slice {
        let n = usize::try_from(s.unsigned_abs()).unwrap_or(usize::MAX);
        if s >= 0 {
            arr.truncate(n);
        } else if n < arr.len() {
            arr.drain(..arr.len() - n);
        }
    }
}

fn directed(o: Ordering, asc: bool) -> Ordering {
    if asc {
        o
    } else {
        o.reverse()
    }
}

fn sort_elements(arr: &mut [Value], sort: &PushSort) {
    match sort {
        PushSort::Whole(asc) => arr.sort_by(|a, b| directed(compare_values(a, b), *asc)),
        PushSort::Fields(keys) => arr.sort_by(|a, b| {
            for (path, asc) in keys {
                let o = compare_values(&sort_key(a, path, *asc), &sort_key(b, path, *asc));
                if o != Ordering::Equal {
                    return directed(o, *asc);
                }
            }
            Ordering::Equal
        }),
    }
}

/// The value an element sorts by under a field sort key: the value at `path` (numeric
/// segments index arrays), `null` when missing, and for an array its smallest element
/// (ascending) or largest (descending), as MongoDB sorts array fields.
fn sort_key(elem: &Value, path: &FieldPath, asc: bool) -> Value {
    let mut current = Some(elem);
    for seg in path.segments() {
        current = match current {
            Some(Value::Object(m)) => m.get(seg.as_str()),
            Some(Value::Array(a)) => FieldPath::as_index(seg).and_then(|i| a.get(i)),
            _ => None,
        };
    }
    match current {
        Some(Value::Array(items)) => {
            let pick = if asc {
                items.iter().min_by(|a, b| compare_values(a, b))
            } else {
                items.iter().max_by(|a, b| compare_values(a, b))
            };
            pick.cloned().unwrap_or(Value::Null)
        }
        Some(v) => v.clone(),
        None => Value::Null,
    }
}

fn pull_matches(cond: &PullCond, elem: &Value) -> bool {
    match cond {
        PullCond::Equal(v) => values_equal(elem, v),
        PullCond::Element(filter) => {
            let mut wrapper = Map::new();
            wrapper.insert("v".to_string(), elem.clone());
            filter.matches(&Value::Object(wrapper))
        }
        PullCond::Document(filter) => elem.is_object() && filter.matches(elem),
    }
}

/// `$rename`: MongoDB unsets source and target, then sets the target to the source's
/// value (so the target ends up last in its document). Neither path may run through an
/// array.
fn rename(
    doc: &mut Value,
    from: &UpdatePath,
    to: &UpdatePath,
    array_filters: &BTreeMap<String, Filter>,
) -> Result<()> {
    if lookup_no_array(doc, from, "source")?.is_none() {
        return Ok(());
    }
    lookup_no_array(doc, to, "destination")?;
    let Some(value) = remove_field(doc, &from.segs) else {
        return Ok(());
    };
    let walker = Walker {
        op: "$rename",
        text: &to.text,
        array_filters,
    };
    let unset = Action::Unset;
    walker.run(
        doc,
        &to.segs,
        &mut OpLeaf {
            op: "$rename",
            path: &to.text,
            action: &unset,
            now_millis: 0,
        },
    )?;
    let set = Action::Set(value);
    walker.run(
        doc,
        &to.segs,
        &mut OpLeaf {
            op: "$rename",
            path: &to.text,
            action: &set,
            now_millis: 0,
        },
    )
}

/// The value at a static path, `None` when missing or blocked by a scalar; an error when
/// the path runs through an array (`which` is "source" or "destination").
fn lookup_no_array<'d>(
    doc: &'d Value,
    path: &UpdatePath,
    which: &str,
) -> Result<Option<&'d Value>> {
    let mut current = doc;
    let mut name = "";
    for seg in &path.segs {
        let Seg::Field(field) = seg else {
            return Ok(None);
        };
        match current {
            Value::Object(m) => match m.get(field.as_str()) {
                Some(child) => {
                    current = child;
                    name = field;
                }
                None => return Ok(None),
            },
            Value::Array(_) => {
                return Err(Error::update(
                    "$rename",
                    &path.text,
                    format!(
                        "The {which} field cannot be an array element, '{}' in doc with {}",
                        path.text,
                        describe(name, current)
                    ),
                ))
            }
            _ => return Ok(None),
        }
    }
    Ok(Some(current))
}

/// Removes the field at a static path of objects, returning its value.
fn remove_field(doc: &mut Value, segs: &[Seg]) -> Option<Value> {
    let (last, parents) = segs.split_last()?;
    let mut current = doc;
    for seg in parents {
        let Seg::Field(field) = seg else {
            return None;
        };
        current = current.as_object_mut()?.get_mut(field.as_str())?;
    }
    let Seg::Field(field) = last else {
        return None;
    };
    current.as_object_mut()?.shift_remove(field.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_format_as_rfc3339_millis() {
        assert_eq!(format_rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_rfc3339_millis(1_700_000_000_123),
            "2023-11-14T22:13:20.123Z"
        );
        assert_eq!(
            format_rfc3339_millis(951_782_400_000),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(format_rfc3339_millis(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(
            format_rfc3339_millis(4_102_444_800_000),
            "2100-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn arithmetic_typing() {
        let n = |v: serde_json::Value| match v {
            Value::Number(n) => n,
            _ => unreachable!(),
        };
        let add = |a, b| arith(&n(a), &n(b), i128::checked_add, |x, y| x + y);
        assert_eq!(
            add(serde_json::json!(1), serde_json::json!(2))
                .unwrap()
                .as_i64(),
            Some(3)
        );
        assert!(add(serde_json::json!(1), serde_json::json!(0.5))
            .unwrap()
            .is_f64());
        assert!(add(serde_json::json!(i64::MAX), serde_json::json!(1)).is_err());
        assert!(add(serde_json::json!(u64::MAX - 1), serde_json::json!(1))
            .unwrap()
            .is_u64());
        assert!(add(serde_json::json!(u64::MAX), serde_json::json!(1)).is_err());
        assert!(add(serde_json::json!(i64::MIN), serde_json::json!(-1)).is_err());
        assert!(add(serde_json::json!(1e308), serde_json::json!(1e308)).is_err());
    }
}
