//! The positional `$`: resolved to the index of the array element the query filter
//! matched, before the update changes anything.

use super::path::{Seg, UpdatePath};
use crate::error::{Error, Result};
use crate::query::Filter;
use crate::value::FieldPath;
use serde_json::Value;
use std::borrow::Cow;

/// `path`'s segments with `$` replaced by the matched index (borrowed when there is no
/// `$`). An error when the filter matched no element of the array.
pub(super) fn resolve<'p>(
    op: &str,
    path: &'p UpdatePath,
    doc: &Value,
    filter: &Filter,
) -> Result<Cow<'p, [Seg]>> {
    let Some(p) = path.segs.iter().position(|s| *s == Seg::Positional) else {
        return Ok(Cow::Borrowed(&path.segs));
    };
    let prefix: Vec<String> = path
        .segs
        .iter()
        .take(p)
        .filter_map(|s| match s {
            Seg::Field(name) => Some(name.clone()),
            _ => None,
        })
        .collect();
    let no_match = || {
        Error::update(
            op,
            &path.text,
            "The positional operator did not find the match needed from the query.",
        )
    };
    if prefix.is_empty() {
        return Err(no_match());
    }
    let array_path = FieldPath::from_segments(prefix);
    let index = first_matching_index(filter, doc, &array_path).ok_or_else(no_match)?;
    let mut segs = path.segs.clone();
    if let Some(slot) = segs.get_mut(p) {
        *slot = Seg::Field(index.to_string());
    }
    Ok(Cow::Owned(segs))
}

/// Temporary stand-in for `crate::query::matcher::first_matching_index`: the first
/// element `i` such that the document with the array at `array_path` reduced to its
/// element `i` matches the filter.
fn first_matching_index(filter: &Filter, doc: &Value, array_path: &FieldPath) -> Option<usize> {
    let mut current = doc;
    for seg in array_path.segments() {
        current = match current {
            Value::Object(m) => m.get(seg.as_str())?,
            Value::Array(a) => a.get(FieldPath::as_index(seg)?)?,
            _ => return None,
        };
    }
    let Value::Array(items) = current else {
        return None;
    };
    (0..items.len()).find(|&i| {
        let mut probe = doc.clone();
        let mut slot = &mut probe;
        for seg in array_path.segments() {
            let next = match slot {
                Value::Object(m) => m.get_mut(seg.as_str()),
                Value::Array(a) => FieldPath::as_index(seg).and_then(|k| a.get_mut(k)),
                _ => None,
            };
            match next {
                Some(v) => slot = v,
                None => return false,
            }
        }
        if let Value::Array(a) = slot {
            let elem = a.get(i).cloned().unwrap_or(Value::Null);
            *a = vec![elem];
        }
        filter.matches(&probe)
    })
}
