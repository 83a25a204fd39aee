//! Update paths (`a.b`, `a.0`, `a.$`, `a.$[]`, `a.$[x].b`) and the walk that applies a
//! leaf operation at every place a path designates.

use crate::error::{Error, Result};
use crate::query::Filter;
use crate::value::FieldPath;
use serde_json::{Map, Value};
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// Largest number of `null`s MongoDB pads an array with when a path indexes past its end.
const MAX_PADDING: usize = 1_500_000;

/// One segment of an update path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Seg {
    /// A field name, or an array index when the value there is an array.
    Field(String),
    /// `$`: the element the query filter matched.
    Positional,
    /// `$[]`: every element.
    All,
    /// `$[id]`: the elements matching array filter `id`.
    Filtered(String),
}

/// A parsed update path: its text (for messages) and segments.
#[derive(Debug, Clone)]
pub(super) struct UpdatePath {
    pub(super) text: String,
    pub(super) segs: Vec<Seg>,
    /// The literal segments, for ordering and conflict detection.
    literal: Vec<String>,
}

/// True for a valid array filter identifier: a lowercase ASCII letter, then ASCII
/// letters and digits.
pub(super) fn valid_identifier(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_alphanumeric())
}

impl UpdatePath {
    /// Parses the path `text` used with operator `op`.
    pub(super) fn parse(op: &str, text: &str) -> Result<UpdatePath> {
        let fp = FieldPath::parse_update(text).map_err(|e| match e {
            Error::InvalidName { reason, .. } => Error::update(op, text, reason),
            other => other,
        })?;
        let mut segs = Vec::with_capacity(fp.len());
        let mut positional = 0;
        for (i, seg) in fp.segments().iter().enumerate() {
            let parsed = if seg == "$" {
                positional += 1;
                Seg::Positional
            } else if seg == "$[]" {
                Seg::All
            } else if let Some(id) = seg.strip_prefix("$[").and_then(|s| s.strip_suffix(']')) {
                if !valid_identifier(id) {
                    return Err(Error::update(
                        op,
                        text,
                        format!(
                            "The array filter identifier '{id}' must begin with a lowercase \
                             letter and contain only alphanumeric characters"
                        ),
                    ));
                }
                Seg::Filtered(id.to_string())
            } else if seg.starts_with('$') {
                return Err(Error::update(
                    op,
                    text,
                    format!("The dollar ($) prefixed field '{seg}' in '{text}' is not valid"),
                ));
            } else {
                Seg::Field(seg.clone())
            };
            if i == 0 && parsed != Seg::Field(seg.clone()) {
                return Err(Error::update(
                    op,
                    text,
                    format!(
                        "Cannot have a positional element ('{seg}') in the first position \
                         of path '{text}'"
                    ),
                ));
            }
            segs.push(parsed);
        }
        if positional > 1 {
            return Err(Error::update(
                op,
                text,
                format!("Too many positional (i.e. '$') elements found in path '{text}'"),
            ));
        }
        if let Some(p) = segs.iter().position(|s| *s == Seg::Positional) {
            if segs.iter().take(p).any(|s| !matches!(s, Seg::Field(_))) {
                return Err(Error::update(
                    op,
                    text,
                    format!(
                        "The positional operator '$' cannot follow an array update operator \
                         in path '{text}'"
                    ),
                ));
            }
        }
        Ok(UpdatePath {
            text: text.to_string(),
            segs,
            literal: fp.segments().to_vec(),
        })
    }

    /// True when any segment is positional (`$`, `$[]`, `$[id]`).
    pub(super) fn is_dynamic(&self) -> bool {
        self.segs.iter().any(|s| !matches!(s, Seg::Field(_)))
    }

    /// The first segment as written.
    pub(super) fn first(&self) -> &str {
        self.literal.first().map(String::as_str).unwrap_or("")
    }

    /// The top-level field the path starts with, unless it starts with a positional
    /// segment (which the top level, a document, cannot have anyway).
    pub(super) fn top_field(&self) -> Option<&str> {
        match self.segs.first() {
            Some(Seg::Field(name)) => Some(name),
            _ => None,
        }
    }

    /// The path cut before its first positional segment.
    pub(super) fn static_prefix(&self) -> Option<FieldPath> {
        let n = self
            .segs
            .iter()
            .position(|s| !matches!(s, Seg::Field(_)))
            .unwrap_or(self.segs.len());
        (n > 0).then(|| FieldPath::from_segments(self.literal.iter().take(n).cloned().collect()))
    }

    /// True when `self` equals `other` or is a prefix of it, segment-wise.
    pub(super) fn is_prefix_of(&self, other: &UpdatePath) -> bool {
        self.literal.len() <= other.literal.len()
            && self.literal.iter().zip(&other.literal).all(|(a, b)| a == b)
    }

    /// The application order of paths: segment by segment, numeric segments first and
    /// numerically, then the others byte-wise; a prefix before its extensions.
    pub(super) fn order(&self, other: &UpdatePath) -> Ordering {
        for (a, b) in self.literal.iter().zip(&other.literal) {
            let o = segment_order(a, b);
            if o != Ordering::Equal {
                return o;
            }
        }
        self.literal.len().cmp(&other.literal.len())
    }
}

fn segment_order(a: &str, b: &str) -> Ordering {
    match (FieldPath::as_index(a), FieldPath::as_index(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.as_bytes().cmp(b.as_bytes()),
    }
}

/// What to do where a path leads.
pub(super) trait Leaf {
    /// Whether missing fields on the way are created (`$set`-like) or the operation is a
    /// no-op on a missing path (`$unset`-like).
    fn creates(&self) -> bool;
    /// Whether the leaf removes the field (`$unset`); array elements become `null`.
    fn removes(&self) -> bool {
        false
    }
    /// Operates on an existing value.
    fn existing(&mut self, value: &mut Value) -> Result<()>;
    /// The value to store where the path leads to nothing, if any.
    fn missing(&mut self) -> Result<Option<Value>>;
}

/// Walks an update path through a document, calling a [`Leaf`] where it leads.
pub(super) struct Walker<'a> {
    /// Operator name, for messages.
    pub(super) op: &'a str,
    /// The path as written, for messages.
    pub(super) text: &'a str,
    /// Parsed `arrayFilters` by identifier.
    pub(super) array_filters: &'a BTreeMap<String, Filter>,
}

impl Walker<'_> {
    fn err(&self, message: impl Into<String>) -> Error {
        Error::update(self.op, self.text, message)
    }

    /// Applies `leaf` along `segs` (the path with `$` already resolved) from the root
    /// document `doc`.
    pub(super) fn run(&self, doc: &mut Value, segs: &[Seg], leaf: &mut dyn Leaf) -> Result<()> {
        self.walk(doc, "", segs, 0, leaf)
    }

    fn walk(
        &self,
        node: &mut Value,
        node_name: &str,
        segs: &[Seg],
        i: usize,
        leaf: &mut dyn Leaf,
    ) -> Result<()> {
        let Some(seg) = segs.get(i) else {
            return leaf.existing(node);
        };
        let last = i + 1 == segs.len();
        match seg {
            Seg::Field(name) => match node {
                Value::Object(map) => {
                    if last && leaf.removes() {
                        map.shift_remove(name.as_str());
                        return Ok(());
                    }
                    match map.get_mut(name.as_str()) {
                        Some(child) => self.walk(child, name, segs, i + 1, leaf),
                        None => {
                            if let Some(v) = self.build_missing(segs, i + 1, leaf)? {
                                map.insert(name.clone(), v);
                            }
                            Ok(())
                        }
                    }
                }
                Value::Array(arr) => match FieldPath::as_index(name) {
                    Some(idx) => {
                        if last && leaf.removes() {
                            if let Some(slot) = arr.get_mut(idx) {
                                *slot = Value::Null;
                            }
                            return Ok(());
                        }
                        match arr.get_mut(idx) {
                            Some(child) => self.walk(child, name, segs, i + 1, leaf),
                            None => {
                                if let Some(v) = self.build_missing(segs, i + 1, leaf)? {
                                    let pad = idx - arr.len();
                                    if pad > MAX_PADDING {
                                        return Err(self.err(format!(
                                            "can't backfill array to more than {MAX_PADDING} \
                                             elements"
                                        )));
                                    }
                                    arr.resize(idx, Value::Null);
                                    arr.push(v);
                                }
                                Ok(())
                            }
                        }
                    }
                    None => self.cannot_create(name, node_name, node, leaf),
                },
                _ => self.cannot_create(name, node_name, node, leaf),
            },
            Seg::All | Seg::Filtered(_) => {
                let Value::Array(arr) = node else {
                    return Err(self.err(format!(
                        "Cannot apply array updates to non-array element {}",
                        describe(node_name, node)
                    )));
                };
                let filter = match seg {
                    Seg::Filtered(id) => Some((
                        id.as_str(),
                        self.array_filters.get(id).ok_or_else(|| {
                            self.err(format!(
                                "No array filter found for identifier '{id}' in path '{}'",
                                self.text
                            ))
                        })?,
                    )),
                    _ => None,
                };
                for (k, elem) in arr.iter_mut().enumerate() {
                    if let Some((id, f)) = filter {
                        if !element_matches(id, f, elem) {
                            continue;
                        }
                    }
                    if last && leaf.removes() {
                        *elem = Value::Null;
                    } else {
                        self.walk(elem, &k.to_string(), segs, i + 1, leaf)?;
                    }
                }
                Ok(())
            }
            Seg::Positional => {
                Err(self
                    .err("The positional operator did not find the match needed from the query."))
            }
        }
    }

    /// The value to insert where segment `from - 1` was missing: the leaf's value wrapped
    /// in one embedded document per remaining segment.
    fn build_missing(
        &self,
        segs: &[Seg],
        from: usize,
        leaf: &mut dyn Leaf,
    ) -> Result<Option<Value>> {
        let rest = segs.get(from..).unwrap_or(&[]);
        if rest.iter().any(|s| !matches!(s, Seg::Field(_))) {
            let prefix: Vec<String> = segs.iter().take(from).map(seg_text).collect();
            return Err(self.err(format!(
                "The path '{}' must exist in the document in order to apply array updates.",
                prefix.join(".")
            )));
        }
        if !leaf.creates() || leaf.removes() {
            return Ok(None);
        }
        let Some(mut value) = leaf.missing()? else {
            return Ok(None);
        };
        for seg in rest.iter().rev() {
            if let Seg::Field(name) = seg {
                let mut map = Map::new();
                map.insert(name.clone(), value);
                value = Value::Object(map);
            }
        }
        Ok(Some(value))
    }

    fn cannot_create(
        &self,
        name: &str,
        node_name: &str,
        node: &Value,
        leaf: &mut dyn Leaf,
    ) -> Result<()> {
        if leaf.creates() && !leaf.removes() {
            Err(self.err(format!(
                "Cannot create field '{name}' in element {}",
                describe(node_name, node)
            )))
        } else {
            Ok(())
        }
    }
}

/// True when array element `elem` matches the array filter declared for `id`.
pub(super) fn element_matches(id: &str, filter: &Filter, elem: &Value) -> bool {
    let mut wrapper = Map::new();
    wrapper.insert(id.to_string(), elem.clone());
    filter.matches(&Value::Object(wrapper))
}

fn seg_text(seg: &Seg) -> String {
    match seg {
        Seg::Field(name) => name.clone(),
        Seg::Positional => "$".to_string(),
        Seg::All => "$[]".to_string(),
        Seg::Filtered(id) => format!("$[{id}]"),
    }
}

/// `{name: value}` as MongoDB shows an element in messages, shortened when long.
pub(super) fn describe(name: &str, value: &Value) -> String {
    let mut text = value.to_string();
    if text.len() > 120 {
        let mut cut = 117;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("...");
    }
    if name.is_empty() {
        text
    } else {
        format!("{{{name}: {text}}}")
    }
}
