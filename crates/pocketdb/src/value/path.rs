//! Dotted field paths (`a.b.0.c`), validated once and shared by every back end.

use crate::error::{Error, Result};
use std::fmt;

/// A validated dotted field path. Segments are non-empty and contain no NUL; a segment
/// may be numeric (an array index or an object key, decided by the document).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldPath {
    segments: Vec<String>,
}

impl FieldPath {
    /// Parses a dotted path used in a filter, sort or projection. Rejects empty paths,
    /// empty segments, NUL bytes and segments starting with `$`.
    pub fn parse(path: &str) -> Result<FieldPath> {
        Self::parse_with(path, false)
    }

    /// Like [`FieldPath::parse`], but allows `$`-prefixed segments (`$`, `$[]`,
    /// `$[id]`) as update paths need.
    pub fn parse_update(path: &str) -> Result<FieldPath> {
        Self::parse_with(path, true)
    }

    fn parse_with(path: &str, allow_dollar: bool) -> Result<FieldPath> {
        let bad = |reason: &str| Error::InvalidName {
            kind: "field",
            name: path.to_string(),
            reason: reason.to_string(),
        };
        if path.is_empty() {
            return Err(bad("field path is empty"));
        }
        if path.contains('\0') {
            return Err(bad("field path contains a NUL byte"));
        }
        let mut segments = Vec::new();
        for seg in path.split('.') {
            if seg.is_empty() {
                return Err(bad("field path has an empty segment"));
            }
            if seg.starts_with('$') && !allow_dollar {
                return Err(bad("field path segment starts with '$'"));
            }
            segments.push(seg.to_string());
        }
        Ok(FieldPath { segments })
    }

    /// Builds a path from segments already known to be valid.
    pub fn from_segments(segments: Vec<String>) -> FieldPath {
        FieldPath { segments }
    }

    /// The path's segments.
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// The first segment.
    pub fn first(&self) -> &str {
        self.segments.first().map_or("", String::as_str)
    }

    /// Number of segments (never zero).
    pub fn len(&self) -> usize {
        self.segments.len()
    }

    /// True only for a path built from no segments with [`FieldPath::from_segments`].
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// True when `self` is `other` or a prefix of it (`a` of `a.b`), segment-wise.
    pub fn is_prefix_of(&self, other: &FieldPath) -> bool {
        self.segments.len() <= other.segments.len()
            && self
                .segments
                .iter()
                .zip(&other.segments)
                .all(|(a, b)| a == b)
    }

    /// A new path with `segment` appended.
    pub fn child(&self, segment: &str) -> FieldPath {
        let mut segments = self.segments.clone();
        segments.push(segment.to_string());
        FieldPath { segments }
    }

    /// Parses a segment as an array index (`"0"`, `"12"`; not `"-1"` or `"01"`).
    pub fn as_index(segment: &str) -> Option<usize> {
        if segment.is_empty()
            || !segment.bytes().all(|b| b.is_ascii_digit())
            || (segment.len() > 1 && segment.starts_with('0'))
        {
            return None;
        }
        segment.parse().ok()
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.segments.join("."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        assert_eq!(FieldPath::parse("a.b.0").unwrap().len(), 3);
        assert!(FieldPath::parse("").is_err());
        assert!(FieldPath::parse("a..b").is_err());
        assert!(FieldPath::parse("a.$b").is_err());
        assert!(FieldPath::parse_update("a.$[].b").is_ok());
        assert_eq!(FieldPath::as_index("01"), None);
        assert_eq!(FieldPath::as_index("10"), Some(10));
    }

    #[test]
    fn prefixes() {
        let a = FieldPath::parse("a").unwrap();
        let ab = FieldPath::parse("a.b").unwrap();
        assert!(a.is_prefix_of(&ab));
        assert!(!ab.is_prefix_of(&a));
        assert!(!FieldPath::parse("ab").unwrap().is_prefix_of(&ab));
    }
}
