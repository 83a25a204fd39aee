//! The positional `$`: resolved to the index of the array element the query filter
//! matched, before the update changes anything.

use super::path::{Seg, UpdatePath};
use crate::error::{Error, Result};
use crate::query::matcher::first_matching_index;
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
