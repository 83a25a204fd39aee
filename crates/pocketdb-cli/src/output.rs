//! Printing JSON: compact lines for the data subcommands, and a readable one-line form
//! (`{"name": "Ada", "age": 36}`) for the shell.

use serde::Serialize;
use serde_json::ser::Formatter;
use serde_json::Value;
use std::io::{self, Write};

/// Compact JSON with a space after `:` and `,`: still valid JSON, one value per line.
struct Spaced;

impl Formatter for Spaced {
    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }
}

/// The shell's rendering of a value: one line, spaced.
pub fn spaced(value: &Value) -> String {
    let mut buf = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, Spaced);
    // Serializing a Value into memory cannot fail.
    if value.serialize(&mut ser).is_err() {
        return value.to_string();
    }
    String::from_utf8(buf).unwrap_or_else(|_| value.to_string())
}

/// Writes one line to `out`.
pub fn line(out: &mut impl Write, text: &str) -> io::Result<()> {
    out.write_all(text.as_bytes())?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn spaced_is_valid_json() {
        let v = json!({"a": 1, "b": [1, {"c": "x, y"}], "d": {}});
        let s = spaced(&v);
        assert_eq!(s, r#"{"a": 1, "b": [1, {"c": "x, y"}], "d": {}}"#);
        assert_eq!(serde_json::from_str::<Value>(&s).unwrap(), v);
    }
}
