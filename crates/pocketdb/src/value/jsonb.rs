//! Reading SQLite's JSONB straight into a [`serde_json::Value`].
//!
//! Documents are stored as JSONB. Reading one as SQL `json(doc)` makes SQLite write it
//! out as JSON text, which serde then parses again; decoding the binary form skips both
//! the text and its lexing. The format (<https://sqlite.org/jsonb.html>): each element
//! is a header (element type in the low four bits of the first byte, payload size in
//! the high four bits or in the 1, 2, 4 or 8 big-endian bytes they announce) followed
//! by its payload; arrays and objects hold their elements, objects as label/value
//! pairs; numbers are kept as their text, strings as their UTF-8 bytes (with or without
//! JSON escapes).
//!
//! [`decode`] gives exactly what `serde_json::from_str` gives for the `json()` text of
//! the same blob, or `None` where it does not handle an element (the JSON5 forms, which
//! documents written through pocketdb never hold, a malformed blob, nesting deeper
//! than serde's limit); the caller then asks SQLite for the text.

use crate::error::Result;
use serde_json::{Map, Number, Value};

/// serde_json's default recursion limit: deeper documents fail to parse as text, and
/// are left to that path so that they fail the same way.
const MAX_DEPTH: usize = 128;

pub(crate) const NULL: u8 = 0;
pub(crate) const TRUE: u8 = 1;
pub(crate) const FALSE: u8 = 2;
pub(crate) const INT: u8 = 3;
pub(crate) const FLOAT: u8 = 5;
pub(crate) const TEXT: u8 = 7;
pub(crate) const TEXTJ: u8 = 8;
pub(crate) const TEXTRAW: u8 = 10;
pub(crate) const ARRAY: u8 = 11;
pub(crate) const OBJECT: u8 = 12;

/// A stored document read from its `doc` column: JSONB decoded in place ([`decode`]),
/// or, for what that does not decode, the `json()` text SQLite makes of it, parsed.
pub(crate) fn stored_doc(
    conn: &rusqlite::Connection,
    doc: rusqlite::types::ValueRef<'_>,
) -> Result<Value> {
    if let rusqlite::types::ValueRef::Blob(blob) = doc {
        if let Some(value) = decode(blob) {
            return Ok(value);
        }
    }
    let text: String = conn
        .prepare_cached("SELECT json(?1)")?
        .query_row([rusqlite::types::ToSqlOutput::Borrowed(doc)], |r| r.get(0))?;
    Ok(serde_json::from_str(&text)?)
}

/// The value a JSONB blob holds; `None` when the blob is not one whole element this
/// decoder handles (see the module docs).
pub(crate) fn decode(blob: &[u8]) -> Option<Value> {
    let (value, end) = element(blob, 0, 0)?;
    (end == blob.len()).then_some(value)
}

/// What [`lookup`] found.
pub(crate) enum Found<'b> {
    /// Nothing at the path (a label missing, or a value on the way that is no object):
    /// what SQLite's `->` reads as NULL.
    Missing,
    /// The element at the path: its type, its payload, and where its header starts.
    At {
        kind: u8,
        payload: &'b [u8],
        at: usize,
    },
    /// The blob holds something this reader does not follow (a malformed blob, a JSON5
    /// label).
    Unknown,
}

/// The element at the object labels `segs` in `blob`, as SQLite's `doc -> '$."a"."b"'`
/// finds it (the first of repeated labels), without decoding anything on the way.
pub(crate) fn lookup<'b>(blob: &'b [u8], segs: &[String]) -> Found<'b> {
    let Some((mut kind, mut start, mut end)) = header(blob, 0) else {
        return Found::Unknown;
    };
    let mut elem_at = 0;
    for seg in segs {
        if kind != OBJECT {
            return Found::Missing;
        }
        let mut at = start;
        let mut next = None;
        while at < end {
            let Some((label_kind, label_start, label_end)) = header(blob, at) else {
                return Found::Unknown;
            };
            let label = &blob[label_start..label_end];
            let same = match label_kind {
                TEXT | TEXTRAW => label == seg.as_bytes(),
                TEXTJ => match text(label_kind, label) {
                    Some(t) => t == *seg,
                    None => return Found::Unknown,
                },
                _ => return Found::Unknown,
            };
            let Some((value_kind, value_start, value_end)) = header(blob, label_end) else {
                return Found::Unknown;
            };
            if same {
                next = Some((label_end, value_kind, value_start, value_end));
                break;
            }
            at = value_end;
        }
        match next {
            Some((at, k, s, e)) => {
                (elem_at, kind, start, end) = (at, k, s, e);
            }
            None => return Found::Missing,
        }
    }
    Found::At {
        kind,
        payload: &blob[start..end],
        at: elem_at,
    }
}

/// The value of the element whose header is at `at` (see [`decode`]).
pub(crate) fn decode_at(blob: &[u8], at: usize) -> Option<Value> {
    element(blob, at, 0).map(|(value, _)| value)
}

/// The element's type, the start of its payload and the end of the element.
fn header(blob: &[u8], at: usize) -> Option<(u8, usize, usize)> {
    let first = *blob.get(at)?;
    let kind = first & 0x0f;
    let (size, start) = match first >> 4 {
        n @ 0..=11 => (usize::from(n), at + 1),
        12 => (usize::from(*blob.get(at + 1)?), at + 2),
        13 => {
            let b = blob.get(at + 1..at + 3)?;
            (usize::from(u16::from_be_bytes([b[0], b[1]])), at + 3)
        }
        14 => {
            let b = blob.get(at + 1..at + 5)?;
            let n = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
            (usize::try_from(n).ok()?, at + 5)
        }
        _ => {
            let b: [u8; 8] = blob.get(at + 1..at + 9)?.try_into().ok()?;
            (usize::try_from(u64::from_be_bytes(b)).ok()?, at + 9)
        }
    };
    let end = start.checked_add(size)?;
    (end <= blob.len()).then_some((kind, start, end))
}

/// The element at `at` and where it ends.
fn element(blob: &[u8], at: usize, depth: usize) -> Option<(Value, usize)> {
    let (kind, start, end) = header(blob, at)?;
    let payload = &blob[start..end];
    let value = match kind {
        NULL => Value::Null,
        TRUE => Value::Bool(true),
        FALSE => Value::Bool(false),
        INT | FLOAT => Value::Number(number(payload)?),
        TEXT | TEXTJ | TEXTRAW => Value::String(text(kind, payload)?),
        ARRAY => {
            if depth >= MAX_DEPTH {
                return None;
            }
            let mut items = Vec::with_capacity(count(blob, start, end)?);
            let mut at = start;
            while at < end {
                let (item, next) = element(blob, at, depth + 1)?;
                items.push(item);
                at = next;
            }
            (at == end).then_some(())?;
            Value::Array(items)
        }
        OBJECT => {
            if depth >= MAX_DEPTH {
                return None;
            }
            let mut map = Map::with_capacity(count(blob, start, end)? / 2);
            let mut at = start;
            while at < end {
                let (label_kind, label_start, label_end) = header(blob, at)?;
                if !matches!(label_kind, TEXT | TEXTJ | TEXTRAW) {
                    return None;
                }
                let label = text(label_kind, &blob[label_start..label_end])?;
                let (value, next) = element(blob, label_end, depth + 1)?;
                // As serde builds a map from text: a repeated label keeps its first
                // position and takes the last value.
                map.insert(label, value);
                at = next;
            }
            (at == end).then_some(())?;
            Value::Object(map)
        }
        // INT5, FLOAT5, TEXT5 (JSON5) and the reserved types.
        _ => return None,
    };
    Some((value, end))
}

/// The number of elements between `start` and `end` (headers only, not decoded), so
/// that containers are allocated once.
fn count(blob: &[u8], start: usize, end: usize) -> Option<usize> {
    let mut n = 0;
    let mut at = start;
    while at < end {
        at = header(blob, at)?.2;
        n += 1;
    }
    Some(n)
}

/// A number from its JSON text, as serde reads it: plain non-negative integers directly,
/// everything else through serde's own number parser.
fn number(payload: &[u8]) -> Option<Number> {
    if !payload.is_empty() && payload.len() <= 19 && payload.iter().all(u8::is_ascii_digit) {
        // Up to 19 digits always fit a u64; serde reads "01" as an error, so leading
        // zeros go the slow way.
        if payload.len() == 1 || payload[0] != b'0' {
            let n = payload
                .iter()
                .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
            return Some(Number::from(n));
        }
    }
    let text = std::str::from_utf8(payload).ok()?;
    serde_json::from_str::<Number>(text).ok()
}

/// A string from its payload: literal UTF-8 (`TEXT`, `TEXTRAW`) or with JSON escapes
/// (`TEXTJ`).
fn text(kind: u8, payload: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(payload).ok()?;
    if kind != TEXTJ {
        return Some(s.to_string());
    }
    let mut quoted = String::with_capacity(s.len() + 2);
    quoted.push('"');
    quoted.push_str(s);
    quoted.push('"');
    serde_json::from_str::<String>(&quoted).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rusqlite::Connection;
    use serde_json::json;

    /// What SQLite's `json()` text of the blob parses to.
    fn through_text(conn: &Connection, blob: &[u8]) -> Option<Value> {
        let text: String = conn
            .query_row("SELECT json(?1)", [blob], |r| r.get(0))
            .ok()?;
        serde_json::from_str(&text).ok()
    }

    fn jsonb(conn: &Connection, sql: &str) -> Vec<u8> {
        conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    fn agree(conn: &Connection, blob: &[u8]) {
        let decoded = decode(blob);
        match (&decoded, through_text(conn, blob)) {
            (Some(d), Some(t)) => {
                assert_eq!(d, &t);
                // Same numbers (u64 / i64 / f64), not only equal ones.
                assert_eq!(d.to_string(), t.to_string());
            }
            // Not decoded: the caller falls back to the text.
            (None, _) => {}
            (Some(d), None) => panic!("decoded {d} where the text does not parse"),
        }
    }

    #[test]
    fn documents_decode_as_their_text_parses() {
        let conn = Connection::open_in_memory().unwrap();
        for text in [
            r#"{"_id":"a","n":1,"neg":-5,"big":18446744073709551615,"bigger":18446744073709551616}"#,
            r#"{"f":1.5,"e":1e300,"z":-0.0,"zi":-0,"small":5e-324,"zero":0,"int_float":2.0}"#,
            r#"{"s":"plain","q":"say \"hi\"\n\ttab","u":"é中🎉","esc":"\u00e9\ud83c\udf89","sl":"a\/b"}"#,
            r#"{"a":[1,[2,[3,{"b":null}]],true,false],"o":{},"arr":[],"dup":1,"dup":2}"#,
            r#"[1,"x",{"k":[]}]"#,
            r#""top""#,
            "null",
            "12345678901234567890",
            "-9223372036854775808",
        ] {
            let blob = jsonb(
                &conn,
                &format!("SELECT jsonb('{}')", text.replace('\'', "''")),
            );
            let decoded = decode(&blob).unwrap_or_else(|| panic!("{text} not decoded"));
            assert_eq!(decoded, through_text(&conn, &blob).unwrap(), "{text}");
            agree(&conn, &blob);
        }
    }

    #[test]
    fn sql_built_values_and_long_payloads_decode() {
        let conn = Connection::open_in_memory().unwrap();
        // TEXTRAW (SQL text put into JSONB unescaped), SQL numbers, nested JSONB.
        for sql in [
            "SELECT jsonb_set(jsonb('{\"a\":1}'), '$.s', 'line\nbreak \"quoted\" \\ back')",
            "SELECT jsonb_set(jsonb('{\"a\":1}'), '$.r', 2.5e10, '$.i', -42, '$.n', NULL)",
            "SELECT jsonb_object('k', jsonb_array(1, 'two', 3.0), 'nested', jsonb('{\"x\":[]}'))",
            "SELECT jsonb_set(jsonb('{}'), '$.long', printf('%.*c', 70000, 'y'))",
            "SELECT jsonb_group_array(value) FROM generate_series(1, 3000)",
            "SELECT jsonb_insert(jsonb('[1]'), '$[#]', 9223372036854775807)",
        ] {
            let Ok(blob) = conn.query_row(sql, [], |r| r.get::<_, Vec<u8>>(0)) else {
                // generate_series is an extension; skip where it is missing.
                continue;
            };
            assert!(decode(&blob).is_some(), "{sql}");
            agree(&conn, &blob);
        }
        let big = "x".repeat(70_000);
        let blob = jsonb(&conn, &format!("SELECT jsonb('{{\"s\":\"{big}\"}}')"));
        assert_eq!(decode(&blob), Some(json!({ "s": big })));
    }

    #[test]
    fn json5_malformed_and_too_deep_blobs_are_left_to_the_text() {
        let conn = Connection::open_in_memory().unwrap();
        // JSON5 numbers and escapes are not decoded; JSON5 that JSONB stores in the
        // plain forms (a single-quoted string without escapes) is.
        for (text, decoded) in [
            ("{a:0x1F}", false),
            ("[.5, +1]", false),
            ("['it\\'s']", false),
            ("[Infinity]", false),
            ("['single']", true),
        ] {
            let blob = jsonb(
                &conn,
                &format!("SELECT jsonb('{}')", text.replace('\'', "''")),
            );
            assert_eq!(decode(&blob).is_some(), decoded, "{text}");
            agree(&conn, &blob);
        }
        let blob = jsonb(&conn, "SELECT jsonb('[1,2,3]')");
        assert_eq!(decode(&blob[..blob.len() - 1]), None);
        let mut longer = blob.clone();
        longer.push(0);
        assert_eq!(decode(&longer), None);
        assert_eq!(decode(&[]), None);
        assert_eq!(decode(&[0x0d]), None);
        assert_eq!(decode(&[0xf0]), None);
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let blob = jsonb(&conn, &format!("SELECT jsonb('{deep}')"));
        assert_eq!(decode(&blob), None);
        let ok = format!("{}{}", "[".repeat(100), "]".repeat(100));
        let blob = jsonb(&conn, &format!("SELECT jsonb('{ok}')"));
        assert!(decode(&blob).is_some());
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            ".{0,12}".prop_map(Value::from),
            "[a-z\"\\\\\n\u{e9}\u{1F389}]{0,8}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 40, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec(("[a-z_\"]{0,6}", inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_document_decodes_as_its_text_parses(v in arb_value()) {
            let conn = Connection::open_in_memory().unwrap();
            let text = serde_json::to_string(&v).unwrap();
            let blob: Vec<u8> = conn
                .query_row("SELECT jsonb(?1)", [&text], |r| r.get(0))
                .unwrap();
            let decoded = decode(&blob);
            prop_assert!(decoded.is_some(), "{}", text);
            let expected = through_text(&conn, &blob).unwrap();
            prop_assert_eq!(decoded.as_ref().unwrap().to_string(), expected.to_string());
            prop_assert_eq!(decoded.unwrap(), expected);
        }
    }
}
