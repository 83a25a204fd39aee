//! Document ids: generation of ObjectId-style ids and the canonical key under which an
//! `_id` is stored and made unique.

use crate::error::{Error, Result};
use serde_json::{Map, Number, Value};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

static COUNTER: OnceLock<AtomicU32> = OnceLock::new();
static PROCESS_RANDOM: OnceLock<[u8; 5]> = OnceLock::new();

/// A new 24-hex-digit id laid out like a MongoDB ObjectId: 4 bytes of seconds since the
/// epoch, 5 random bytes fixed per process, and a 3-byte counter starting at a random
/// value. Ids from one process increase monotonically within a second, which keeps
/// inserts into the `_id` index append-mostly.
pub fn new_object_id() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0);
    let random = PROCESS_RANDOM.get_or_init(rand::random::<[u8; 5]>);
    let counter = COUNTER
        .get_or_init(|| AtomicU32::new(rand::random::<u32>() & 0x00ff_ffff))
        .fetch_add(1, Ordering::Relaxed)
        & 0x00ff_ffff;
    let mut out = String::with_capacity(24);
    for b in secs.to_be_bytes().iter().chain(random.iter()) {
        out.push_str(&format!("{b:02x}"));
    }
    out.push_str(&format!("{counter:06x}"));
    out
}

/// Checks that a value may be an `_id`: any scalar, or a document without `$`-prefixed
/// keys. Arrays are rejected, as MongoDB does.
pub fn validate_id(id: &Value) -> Result<()> {
    match id {
        Value::Array(_) => Err(Error::InvalidDocument("_id cannot be an array".to_string())),
        Value::Object(map) => {
            if map.keys().any(|k| k.starts_with('$')) {
                return Err(Error::InvalidDocument(
                    "_id cannot be a document with '$'-prefixed fields".to_string(),
                ));
            }
            map.values().try_for_each(|v| match v {
                Value::Object(_) => validate_id(v),
                _ => Ok(()),
            })
        }
        _ => Ok(()),
    }
}

/// The canonical key of an `_id`: its JSON text with numbers normalised so that ids
/// MongoDB considers equal (`1`, `1.0`) get the same key. Objects keep their field order,
/// since MongoDB compares embedded documents field by field in order.
pub fn id_key(id: &Value) -> String {
    let mut out = String::new();
    write_canonical(id, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Number(n) => out.push_str(&canonical_number(n)),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_json_string(k, out);
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
        Value::String(s) => push_json_string(s, out),
        other => out.push_str(&other.to_string()),
    }
}

/// Appends `s` as a JSON string literal.
fn push_json_string(s: &str, out: &mut String) {
    // Plain strings (ids are mostly hex or ASCII words) need no escaping.
    if s.bytes()
        .all(|b| b >= 0x20 && b != b'"' && b != b'\\' && b < 0x7f)
    {
        out.reserve(s.len() + 2);
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        out.push_str(&Value::String(s.to_string()).to_string());
    }
}

/// A number's key: a float with an integral value in the range of `i64` or `u64` is
/// keyed as that integer, so numbers MongoDB holds equal (`1e17` and
/// `100000000000000000`, `2.0` and `2`) share a key. Such a float converts exactly (it
/// is integral), and an integer no float equals keeps its own digits.
fn canonical_number(n: &Number) -> String {
    if let Some(f) = n.as_f64().filter(|_| n.is_f64()) {
        // 2^63 and 2^64: the first floats outside each range.
        const I64_END: f64 = 9_223_372_036_854_775_808.0;
        const U64_END: f64 = 18_446_744_073_709_551_616.0;
        if f.fract() == 0.0 {
            if (-I64_END..I64_END).contains(&f) {
                return (f as i64).to_string();
            }
            if (0.0..U64_END).contains(&f) {
                return (f as u64).to_string();
            }
        }
    }
    n.to_string()
}

/// Makes sure `doc` has an `_id`, generating one when missing, and puts `_id` first in
/// field order as MongoDB does. Returns the `_id`.
pub fn ensure_id(doc: &mut Map<String, Value>) -> Result<Value> {
    let id = match doc.shift_remove("_id") {
        Some(id) => {
            validate_id(&id)?;
            id
        }
        None => Value::String(new_object_id()),
    };
    doc.shift_insert(0, "_id".to_string(), id.clone());
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn object_ids_are_unique_and_hex() {
        let a = new_object_id();
        let b = new_object_id();
        assert_eq!(a.len(), 24);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert!(a < b || a[..8] != b[..8]);
    }

    #[test]
    fn string_keys_are_json_text() {
        for s in [
            "abc",
            "",
            "a\"b",
            "back\\slash",
            "tab\t",
            "é",
            "\u{7f}",
            "x\u{1}",
        ] {
            let v = json!(s);
            assert_eq!(id_key(&v), v.to_string());
            let o = json!({ s: s });
            assert_eq!(id_key(&o), o.to_string());
        }
    }

    #[test]
    fn keys_identify_equal_ids() {
        assert_eq!(id_key(&json!(1)), id_key(&json!(1.0)));
        assert_ne!(id_key(&json!(1)), id_key(&json!("1")));
        assert_eq!(id_key(&json!({"a": 1.0})), "{\"a\":1}");
        assert_ne!(id_key(&json!(1.5)), id_key(&json!(1)));
        // Above 2^53, where every float is an integer, up to the ends of i64 and u64.
        assert_eq!(
            id_key(&json!(1e17)),
            id_key(&json!(100_000_000_000_000_000i64))
        );
        assert_eq!(
            id_key(&json!(-1e18)),
            id_key(&json!(-1_000_000_000_000_000_000i64))
        );
        assert_eq!(
            id_key(&json!(1e19)),
            id_key(&json!(10_000_000_000_000_000_000u64))
        );
        assert_eq!(id_key(&json!(i64::MIN as f64)), id_key(&json!(i64::MIN)));
        assert_ne!(
            id_key(&json!(1e17)),
            id_key(&json!(100_000_000_000_000_001i64))
        );
        assert_eq!(id_key(&json!(-0.0)), id_key(&json!(0)));
        // Past u64: the float's own text.
        assert_eq!(id_key(&json!(1e20)), json!(1e20).to_string());
    }

    #[test]
    fn ids_are_validated_and_placed_first() {
        assert!(validate_id(&json!([1])).is_err());
        assert!(validate_id(&json!({"$a": 1})).is_err());
        let mut doc = json!({"a": 1, "_id": 7}).as_object().cloned().unwrap();
        ensure_id(&mut doc).unwrap();
        assert_eq!(doc.keys().next().map(String::as_str), Some("_id"));
    }
}
