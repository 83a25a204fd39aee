//! Update document → [`Kind`]: operator entries (validated, conflict-checked and sorted
//! in application order) or a replacement document.

use super::path::{valid_identifier, Seg, UpdatePath};
use super::Kind;
use crate::error::{Error, Result};
use crate::query::{parse_filter, Filter};
use crate::value::{BsonType, FieldPath};
use serde_json::{Map, Number, Value};
use std::collections::{BTreeMap, BTreeSet};

/// One `operator: {path: operand}` pair.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    /// The operator (`$set`, …).
    pub(super) op: &'static str,
    /// The field path (the source for `$rename`).
    pub(super) path: UpdatePath,
    /// What to do there.
    pub(super) action: Action,
}

/// A parsed operand.
#[derive(Debug, Clone)]
pub(super) enum Action {
    Set(Value),
    SetOnInsert(Value),
    Unset,
    Inc(Number),
    Mul(Number),
    Min(Value),
    Max(Value),
    CurrentDate,
    Rename(UpdatePath),
    Push(PushSpec),
    AddToSet(Vec<Value>),
    Pop { first: bool },
    Pull(PullCond),
    PullAll(Vec<Value>),
}

/// `$push` operand: the values and modifiers.
#[derive(Debug, Clone)]
pub(super) struct PushSpec {
    pub(super) each: Vec<Value>,
    pub(super) position: Option<i64>,
    pub(super) slice: Option<i64>,
    pub(super) sort: Option<PushSort>,
}

/// `$push`'s `$sort` modifier.
#[derive(Debug, Clone)]
pub(super) enum PushSort {
    /// `$sort: 1 | -1`: whole elements, ascending when true.
    Whole(bool),
    /// `$sort: {field: 1 | -1, …}`: by fields of the elements, ascending when true.
    Fields(Vec<(FieldPath, bool)>),
}

/// `$pull` operand.
#[derive(Debug, Clone)]
pub(super) enum PullCond {
    /// A non-document value: remove the elements equal to it.
    Equal(Value),
    /// `{$gte: 6}`: a condition on the element itself, as the filter `{v: cond}` matched
    /// against `{v: element}`.
    Element(Filter),
    /// `{qty: {$lt: 5}}`: a filter the (document) element must match.
    Document(Filter),
}

impl Entry {
    /// Every path the entry touches (source and target for `$rename`).
    pub(super) fn paths(&self) -> Vec<&UpdatePath> {
        match &self.action {
            Action::Rename(to) => vec![&self.path, to],
            _ => vec![&self.path],
        }
    }

    /// The path that decides the application order (the target for `$rename`).
    fn order_path(&self) -> &UpdatePath {
        match &self.action {
            Action::Rename(to) => to,
            _ => &self.path,
        }
    }
}

/// Operators MongoDB has that pocketdb does not.
const UNSUPPORTED: &[&str] = &["$bit"];

/// Operators that always modify their field, so they may never name `_id`.
const REJECTS_ID: &[&str] = &[
    "$unset",
    "$inc",
    "$mul",
    "$currentDate",
    "$rename",
    "$push",
    "$addToSet",
    "$pop",
    "$pull",
    "$pullAll",
];

/// Extended-JSON type wrappers allowed as `$`-keys inside replacement documents.
const EXTENDED_JSON: &[&str] = &[
    "$date",
    "$oid",
    "$numberLong",
    "$numberInt",
    "$numberDouble",
    "$numberDecimal",
    "$binary",
    "$timestamp",
    "$regularExpression",
    "$regex",
    "$uuid",
    "$minKey",
    "$maxKey",
    "$symbol",
    "$code",
    "$undefined",
    "$dbPointer",
];

fn type_name(v: &Value) -> &'static str {
    BsonType::of(v).name()
}

/// Parses an update document (see [`super::Update::parse`]).
pub(super) fn parse(update: &Value, array_filters: Option<&[Value]>) -> Result<Kind> {
    let obj = match update {
        Value::Object(map) => map,
        Value::Array(_) => {
            return Err(Error::update(
                "update",
                "",
                "update pipelines (arrays of stages) are not supported",
            ))
        }
        other => {
            return Err(Error::update(
                "update",
                "",
                format!("the update must be a document, not {}", type_name(other)),
            ))
        }
    };
    let is_operators = obj.keys().next().is_some_and(|k| k.starts_with('$'));
    if !is_operators {
        if array_filters.is_some_and(|af| !af.is_empty()) {
            return Err(Error::update(
                "replacement",
                "",
                "arrayFilters may not be specified for a replacement document",
            ));
        }
        validate_replacement(obj)?;
        return Ok(Kind::Replacement(update.clone()));
    }

    let filters = parse_array_filters(array_filters.unwrap_or(&[]))?;
    let mut entries = Vec::new();
    for (op, operand) in obj {
        let op = operator_name(op)?;
        let Value::Object(spec) = operand else {
            return Err(Error::update(
                op,
                "",
                format!(
                    "Modifiers operate on fields but we found type {} instead. For example: \
                     {{$mod: {{<field>: ...}}}} not {{{op}: {operand}}}",
                    type_name(operand)
                ),
            ));
        };
        // An empty operand (`{$set: {}}`) names no field: MongoDB 5.0+ accepts it and
        // does nothing, so it adds no entry.
        for (path, arg) in spec {
            entries.push(parse_entry(op, path, arg)?);
        }
    }
    check_conflicts(&entries)?;
    check_identifiers(&entries, &filters)?;
    entries.sort_by(|a, b| a.order_path().order(b.order_path()));
    Ok(Kind::Operators {
        entries,
        array_filters: filters,
    })
}

fn operator_name(op: &str) -> Result<&'static str> {
    Ok(match op {
        "$set" => "$set",
        "$setOnInsert" => "$setOnInsert",
        "$unset" => "$unset",
        "$inc" => "$inc",
        "$mul" => "$mul",
        "$min" => "$min",
        "$max" => "$max",
        "$rename" => "$rename",
        "$currentDate" => "$currentDate",
        "$push" => "$push",
        "$addToSet" => "$addToSet",
        "$pop" => "$pop",
        "$pull" => "$pull",
        "$pullAll" => "$pullAll",
        other if !other.starts_with('$') => {
            return Err(Error::update(
                "update",
                other,
                format!(
                    "Unknown modifier: {other}. Cannot mix update operators and plain fields \
                     in one update document"
                ),
            ))
        }
        other if UNSUPPORTED.contains(&other) => {
            return Err(Error::update(
                other,
                "",
                format!("{other} is not supported"),
            ))
        }
        other => {
            return Err(Error::update(
                other,
                "",
                format!("Unknown modifier: {other}. Expected a valid update modifier"),
            ))
        }
    })
}

fn parse_entry(op: &'static str, path_text: &str, arg: &Value) -> Result<Entry> {
    let path = UpdatePath::parse(op, path_text)?;
    let err = |message: String| Error::update(op, path_text, message);
    if REJECTS_ID.contains(&op) && path.first() == "_id" {
        return Err(immutable_id(op, path_text));
    }
    let action = match op {
        "$set" => Action::Set(arg.clone()),
        "$setOnInsert" => Action::SetOnInsert(arg.clone()),
        "$unset" => Action::Unset,
        "$inc" | "$mul" => {
            let Value::Number(n) = arg else {
                let verb = if op == "$inc" {
                    "increment"
                } else {
                    "multiply"
                };
                return Err(err(format!(
                    "Cannot {verb} with non-numeric argument: {{{path_text}: {arg}}}"
                )));
            };
            if op == "$inc" {
                Action::Inc(n.clone())
            } else {
                Action::Mul(n.clone())
            }
        }
        "$min" => Action::Min(arg.clone()),
        "$max" => Action::Max(arg.clone()),
        "$currentDate" => match arg {
            Value::Bool(_) => Action::CurrentDate,
            Value::Object(m)
                if m.len() == 1
                    && matches!(m.get("$type"), Some(Value::String(t)) if t == "date" || t == "timestamp") =>
            {
                Action::CurrentDate
            }
            _ => {
                return Err(err(format!(
                    "{arg} is not valid type for $currentDate. Please use a boolean ('true') or \
                     a $type expression ({{$type: 'timestamp'/'date'}})."
                )))
            }
        },
        "$rename" => Action::Rename(parse_rename(&path, arg)?),
        "$push" => Action::Push(parse_push(path_text, arg)?),
        "$addToSet" => Action::AddToSet(parse_add_to_set(path_text, arg)?),
        "$pop" => match sort_direction(arg) {
            Some(last) => Action::Pop { first: !last },
            None => return Err(err(format!("$pop expects 1 or -1, found: {arg}"))),
        },
        "$pull" => Action::Pull(parse_pull(path_text, arg)?),
        "$pullAll" => match arg {
            Value::Array(values) => Action::PullAll(values.clone()),
            other => {
                return Err(err(format!(
                    "$pullAll requires an array argument but was given a {}",
                    type_name(other)
                )))
            }
        },
        other => return Err(err(format!("Unknown modifier: {other}"))),
    };
    Ok(Entry { op, path, action })
}

fn immutable_id(op: &str, path: &str) -> Error {
    Error::update(
        op,
        path,
        "Performing an update on the path '_id' would modify the immutable field '_id'",
    )
}

fn parse_rename(from: &UpdatePath, arg: &Value) -> Result<UpdatePath> {
    let op = "$rename";
    let err = |message: String| Error::update(op, &from.text, message);
    if from.is_dynamic() {
        return Err(err(format!(
            "The source field for $rename may not be dynamic: {}",
            from.text
        )));
    }
    let Value::String(target) = arg else {
        return Err(err(format!(
            "The 'to' field for $rename must be a string: {}: {arg}",
            from.text
        )));
    };
    let to = UpdatePath::parse(op, target)?;
    if to.is_dynamic() {
        return Err(err(format!(
            "The destination field for $rename may not be dynamic: {target}"
        )));
    }
    if to.first() == "_id" {
        return Err(immutable_id(op, target));
    }
    if from.is_prefix_of(&to) && to.is_prefix_of(from) {
        return Err(err(format!(
            "The source and target field for $rename must differ: {}: \"{target}\"",
            from.text
        )));
    }
    if from.is_prefix_of(&to) || to.is_prefix_of(from) {
        return Err(err(format!(
            "The source and target field for $rename must not be on the same path: {}: \"{target}\"",
            from.text
        )));
    }
    Ok(to)
}

/// An integral number operand (`3`, `3.0`) as i64.
fn integer_operand(v: &Value) -> Option<i64> {
    if let Some(i) = v.as_i64() {
        return Some(i);
    }
    let f = v.as_f64()?;
    (f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64).then_some(f as i64)
}

/// `Some(true)` for the number 1, `Some(false)` for -1 (any representation).
fn sort_direction(v: &Value) -> Option<bool> {
    match v.as_f64() {
        Some(1.0) => Some(true),
        Some(-1.0) => Some(false),
        _ => None,
    }
}

fn parse_push(path: &str, arg: &Value) -> Result<PushSpec> {
    let op = "$push";
    let err = |message: String| Error::update(op, path, message);
    let modifiers = match arg {
        Value::Object(m) if m.keys().any(|k| k.starts_with('$')) => m,
        other => {
            return Ok(PushSpec {
                each: vec![other.clone()],
                position: None,
                slice: None,
                sort: None,
            })
        }
    };
    let each = match modifiers.get("$each") {
        Some(Value::Array(values)) => values.clone(),
        Some(other) => {
            return Err(err(format!(
                "The argument to $each in $push must be an array but it was of type: {}",
                type_name(other)
            )))
        }
        None => {
            return Err(err(format!(
                "$push modifiers require $each (found {arg}); a pushed document may not have \
                 '$'-prefixed fields"
            )))
        }
    };
    let mut spec = PushSpec {
        each,
        position: None,
        slice: None,
        sort: None,
    };
    for (key, value) in modifiers {
        match key.as_str() {
            "$each" => {}
            "$slice" => {
                spec.slice = Some(integer_operand(value).ok_or_else(|| {
                    err(format!(
                        "The value for $slice must be an integer value but was given type: {}",
                        type_name(value)
                    ))
                })?)
            }
            "$position" => {
                spec.position = Some(integer_operand(value).ok_or_else(|| {
                    err(format!(
                        "The value for $position must be an integer value, not of type: {}",
                        type_name(value)
                    ))
                })?)
            }
            "$sort" => spec.sort = Some(parse_push_sort(path, value)?),
            other => return Err(err(format!("Unrecognized clause in $push: {other}"))),
        }
    }
    Ok(spec)
}

fn parse_push_sort(path: &str, value: &Value) -> Result<PushSort> {
    let err = |message: String| Error::update("$push", path, message);
    let invalid = || {
        err(
            "The $sort is invalid: use 1/-1 to sort the whole element, or {field: 1/-1} to \
             sort embedded fields"
                .to_string(),
        )
    };
    match value {
        Value::Number(_) => sort_direction(value)
            .map(PushSort::Whole)
            .ok_or_else(invalid),
        Value::Object(m) if !m.is_empty() => {
            let mut keys = Vec::with_capacity(m.len());
            for (field, dir) in m {
                let fp = FieldPath::parse(field).map_err(|e| match e {
                    Error::InvalidName { reason, .. } => {
                        err(format!("The $sort field '{field}' is invalid: {reason}"))
                    }
                    other => other,
                })?;
                let asc = sort_direction(dir).ok_or_else(|| {
                    err(format!(
                        "The $sort element value must be either 1 or -1, found {field}: {dir}"
                    ))
                })?;
                keys.push((fp, asc));
            }
            Ok(PushSort::Fields(keys))
        }
        _ => Err(invalid()),
    }
}

fn parse_add_to_set(path: &str, arg: &Value) -> Result<Vec<Value>> {
    let err = |message: String| Error::update("$addToSet", path, message);
    match arg {
        Value::Object(m) if m.contains_key("$each") => {
            if m.len() != 1 {
                return Err(err(format!(
                    "Found unexpected fields after $each in $addToSet: {arg}"
                )));
            }
            match m.get("$each") {
                Some(Value::Array(values)) => Ok(values.clone()),
                Some(other) => Err(err(format!(
                    "The argument to $each in $addToSet must be an array but it was of type {}",
                    type_name(other)
                ))),
                None => Ok(Vec::new()),
            }
        }
        Value::Object(m) if m.keys().any(|k| k.starts_with('$')) => Err(err(format!(
            "Unrecognized $addToSet modifier in {arg}; only $each is allowed"
        ))),
        other => Ok(vec![other.clone()]),
    }
}

fn filter_error<'a>(op: &'a str, path: &'a str) -> impl Fn(Error) -> Error + 'a {
    move |e| match e {
        Error::InvalidFilter { path: p, message } => {
            let at = if p.is_empty() { path.to_string() } else { p };
            Error::update(op, at, message)
        }
        other => other,
    }
}

fn parse_pull(path: &str, arg: &Value) -> Result<PullCond> {
    match arg {
        Value::Object(m) => {
            let operator_form = m.keys().next().is_some_and(|k| {
                k.starts_with('$') && !matches!(k.as_str(), "$and" | "$or" | "$nor")
            });
            if operator_form {
                let mut wrapper = Map::new();
                wrapper.insert("v".to_string(), arg.clone());
                let f =
                    parse_filter(&Value::Object(wrapper)).map_err(filter_error("$pull", path))?;
                Ok(PullCond::Element(f))
            } else {
                let f = parse_filter(arg).map_err(filter_error("$pull", path))?;
                Ok(PullCond::Document(f))
            }
        }
        other => Ok(PullCond::Equal(other.clone())),
    }
}

fn parse_array_filters(list: &[Value]) -> Result<BTreeMap<String, Filter>> {
    let op = "arrayFilters";
    let mut out = BTreeMap::new();
    for af in list {
        if !af.is_object() {
            return Err(Error::update(
                op,
                "",
                format!("each array filter must be a document, found {af}"),
            ));
        }
        let filter = parse_filter(af).map_err(filter_error(op, ""))?;
        let mut ids = BTreeSet::new();
        top_level_fields(&filter, &mut ids);
        let mut iter = ids.into_iter();
        let (Some(id), None) = (iter.next(), iter.next()) else {
            return Err(Error::update(
                op,
                "",
                format!(
                    "each array filter must use exactly one top-level field name (the \
                     identifier), found {af}"
                ),
            ));
        };
        if !valid_identifier(&id) {
            return Err(Error::update(
                op,
                "",
                format!(
                    "The top-level field name must be an alphanumeric string beginning with a \
                     lowercase letter, found '{id}'"
                ),
            ));
        }
        if out.contains_key(&id) {
            return Err(Error::update(
                op,
                "",
                format!("Found multiple array filters with the same top-level field name {id}"),
            ));
        }
        out.insert(id, filter);
    }
    Ok(out)
}

fn top_level_fields(filter: &Filter, out: &mut BTreeSet<String>) {
    match filter {
        Filter::And(children) | Filter::Or(children) | Filter::Nor(children) => {
            for child in children {
                top_level_fields(child, out);
            }
        }
        Filter::Field { path, .. } => {
            if let Some(first) = path.segments().first() {
                out.insert(first.clone());
            }
        }
        Filter::Expr(_) => {}
    }
}

fn check_conflicts(entries: &[Entry]) -> Result<()> {
    let mut all: Vec<(&str, &UpdatePath)> = entries
        .iter()
        .flat_map(|e| e.paths().into_iter().map(move |p| (e.op, p)))
        .collect();
    all.sort_by(|a, b| a.1.order(b.1));
    for pair in all.windows(2) {
        if let [(_, a), (op, b)] = pair {
            if a.is_prefix_of(b) {
                return Err(Error::update(
                    *op,
                    &b.text,
                    format!(
                        "Updating the path '{}' would create a conflict at '{}'",
                        b.text, a.text
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn check_identifiers(entries: &[Entry], filters: &BTreeMap<String, Filter>) -> Result<()> {
    let mut used = BTreeSet::new();
    for entry in entries {
        for seg in &entry.path.segs {
            if let Seg::Filtered(id) = seg {
                if !filters.contains_key(id) {
                    return Err(Error::update(
                        entry.op,
                        &entry.path.text,
                        format!(
                            "No array filter found for identifier '{id}' in path '{}'",
                            entry.path.text
                        ),
                    ));
                }
                used.insert(id.as_str());
            }
        }
    }
    for id in filters.keys() {
        if !used.contains(id.as_str()) {
            return Err(Error::update(
                "arrayFilters",
                "",
                format!("The array filter for identifier '{id}' was not used in the update"),
            ));
        }
    }
    Ok(())
}

fn validate_replacement(obj: &Map<String, Value>) -> Result<()> {
    for (key, value) in obj {
        if key.starts_with('$') {
            return Err(Error::update(
                "replacement",
                key,
                format!(
                    "The dollar ($) prefixed field '{key}' is not valid in a replacement \
                     document (update operators and plain fields cannot be mixed)"
                ),
            ));
        }
        check_nested(key, value)?;
    }
    Ok(())
}

fn check_nested(path: &str, value: &Value) -> Result<()> {
    match value {
        Value::Object(m) => {
            if m.keys()
                .next()
                .is_some_and(|k| EXTENDED_JSON.contains(&k.as_str()))
            {
                return Ok(());
            }
            for (key, child) in m {
                let child_path = format!("{path}.{key}");
                if key.starts_with('$') {
                    return Err(Error::update(
                        "replacement",
                        &child_path,
                        format!(
                            "The dollar ($) prefixed field '{key}' in '{child_path}' is not valid \
                             for storage"
                        ),
                    ));
                }
                check_nested(&child_path, child)?;
            }
            Ok(())
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                check_nested(&format!("{path}.{i}"), item)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}
