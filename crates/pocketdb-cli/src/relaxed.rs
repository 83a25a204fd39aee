//! Relaxed JSON as mongosh users type it: JSON5 (unquoted keys, single quotes, trailing
//! commas, comments) plus regex literals (`/^A/i` → `{"$regex": "^A", "$options": "i"}`)
//! and the wrappers `ObjectId("…")`, `ISODate("…")`, `NumberInt(…)`, `NumberLong(…)`,
//! `NumberDecimal(…)`, which stand for their argument (`ObjectId()` makes a new id).

use serde_json::Value;

/// Parses relaxed JSON text into a value.
pub fn parse(text: &str) -> Result<Value, String> {
    let rewritten = rewrite(text, 0)?;
    if rewritten.trim().is_empty() {
        return Err("expected a JSON value, found nothing".to_string());
    }
    check_depth(&rewritten)?;
    json5::from_str::<Value>(&rewritten).map_err(|e| format!("malformed JSON: {e}"))
}

/// Parses relaxed JSON that must be a document (`{…}`); `what` names it in errors.
pub fn parse_document(text: &str, what: &str) -> Result<Value, String> {
    match parse(text) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(other) => Err(format!(
            "{what} must be a JSON object, got {}",
            type_name(&other)
        )),
        Err(e) => Err(format!("{what}: {e}")),
    }
}

/// A short name of a value's JSON type, for messages.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

const WRAPPERS: &[&str] = &[
    "ObjectId",
    "ISODate",
    "NumberInt",
    "NumberLong",
    "NumberDecimal",
];

/// True when `prev` (the last significant character before a `/`) means a value is
/// expected there, so the `/` starts a regex literal.
fn value_expected(prev: Option<char>) -> bool {
    matches!(prev, None | Some(':' | '[' | ',' | '('))
}

/// Deepest nesting of arrays and documents accepted (the JSON5 parser recurses).
const MAX_DEPTH: usize = 200;

/// Rejects text nested deeper than [`MAX_DEPTH`] before it reaches the parser.
fn check_depth(text: &str) -> Result<(), String> {
    let chars: Vec<char> = text.chars().collect();
    let mut depth = 0usize;
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '"' | '\'' => {
                // An unterminated string is left for the parser to report.
                i = skip_string(&chars, i).unwrap_or(chars.len());
                continue;
            }
            '/' if matches!(chars.get(i + 1), Some('/' | '*')) => {
                i = skip_comment(&chars, i).unwrap_or(chars.len());
                continue;
            }
            '[' | '{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(format!("nesting deeper than {MAX_DEPTH} levels"));
                }
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// Rewrites regex literals and wrapper calls into JSON5 that json5 understands.
fn rewrite(text: &str, nesting: usize) -> Result<String, String> {
    if nesting > 8 {
        return Err(format!("{} nested too deeply", WRAPPERS.join("/")));
    }
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut prev: Option<char> = None;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' => {
                let end = skip_string(&chars, i)?;
                out.extend(&chars[i..end]);
                prev = Some(c);
                i = end;
            }
            '/' if matches!(chars.get(i + 1), Some('/' | '*')) => {
                let end = skip_comment(&chars, i)?;
                out.extend(&chars[i..end]);
                i = end;
            }
            '/' if value_expected(prev) => {
                let (pattern, options, end) = read_regex(&chars, i)?;
                let mut regex = serde_json::Map::new();
                regex.insert("$regex".to_string(), Value::String(pattern));
                if !options.is_empty() {
                    regex.insert("$options".to_string(), Value::String(options));
                }
                out.push_str(&Value::Object(regex).to_string());
                prev = Some('}');
                i = end;
            }
            c if c.is_alphabetic() || c == '_' || c == '$' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
                {
                    i += 1;
                }
                let ident: String = chars[start..i].iter().collect();
                if ident == "new" {
                    // `new ObjectId(…)`: drop the `new`.
                    let next = skip_ws(&chars, i);
                    if WRAPPERS.iter().any(|w| starts_with_at(&chars, next, w)) {
                        i = next;
                        continue;
                    }
                }
                let open = skip_ws(&chars, i);
                if WRAPPERS.contains(&ident.as_str()) && chars.get(open) == Some(&'(') {
                    let close = matching_close(&chars, open)?;
                    let inner: String = chars[open + 1..close].iter().collect();
                    let inner = inner.trim();
                    if inner.is_empty() {
                        if ident != "ObjectId" {
                            return Err(format!("{ident}() needs an argument"));
                        }
                        out.push('"');
                        out.push_str(&pocketdb::id::new_object_id());
                        out.push('"');
                    } else {
                        out.push_str(&rewrite(inner, nesting + 1)?);
                    }
                    prev = Some(')');
                    i = close + 1;
                    continue;
                }
                out.push_str(&ident);
                prev = chars.get(i - 1).copied();
            }
            c => {
                out.push(c);
                if !c.is_whitespace() {
                    prev = Some(c);
                }
                i += 1;
            }
        }
    }
    Ok(out)
}

fn starts_with_at(chars: &[char], at: usize, word: &str) -> bool {
    let mut n = 0;
    for w in word.chars() {
        if chars.get(at + n) != Some(&w) {
            return false;
        }
        n += 1;
    }
    !chars
        .get(at + n)
        .is_some_and(|c| c.is_alphanumeric() || *c == '_' || *c == '$')
}

fn skip_ws(chars: &[char], mut i: usize) -> usize {
    while chars.get(i).is_some_and(|c| c.is_whitespace()) {
        i += 1;
    }
    i
}

/// `chars[start]` is a quote; returns the index just past the closing quote.
pub(crate) fn skip_string(chars: &[char], start: usize) -> Result<usize, String> {
    let quote = chars[start];
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            c if c == quote => return Ok(i + 1),
            _ => i += 1,
        }
    }
    Err("unterminated string".to_string())
}

/// `chars[start..]` starts `//` or `/*`; returns the index just past the comment.
pub(crate) fn skip_comment(chars: &[char], start: usize) -> Result<usize, String> {
    if chars.get(start + 1) == Some(&'/') {
        let mut i = start + 2;
        while i < chars.len() && chars[i] != '\n' {
            i += 1;
        }
        return Ok(i);
    }
    let mut i = start + 2;
    while i + 1 < chars.len() {
        if chars[i] == '*' && chars[i + 1] == '/' {
            return Ok(i + 2);
        }
        i += 1;
    }
    Err("unterminated comment".to_string())
}

/// `chars[start]` is the `/` opening a regex literal; returns pattern, flags and the
/// index past the flags.
pub(crate) fn read_regex(chars: &[char], start: usize) -> Result<(String, String, usize), String> {
    let mut pattern = String::new();
    let mut in_class = false;
    let mut i = start + 1;
    loop {
        let Some(&c) = chars.get(i) else {
            return Err("unterminated regular expression".to_string());
        };
        match c {
            '\n' => return Err("unterminated regular expression".to_string()),
            '\\' => {
                pattern.push('\\');
                match chars.get(i + 1) {
                    // `\/` is just a slash in the pattern.
                    Some('/') => {
                        pattern.pop();
                        pattern.push('/');
                    }
                    Some(&n) => pattern.push(n),
                    None => return Err("unterminated regular expression".to_string()),
                }
                i += 2;
                continue;
            }
            '[' => in_class = true,
            ']' => in_class = false,
            '/' if !in_class => break,
            _ => {}
        }
        pattern.push(c);
        i += 1;
    }
    i += 1;
    let mut options = String::new();
    while let Some(&c) = chars.get(i) {
        if !c.is_ascii_alphabetic() {
            break;
        }
        options.push(c);
        i += 1;
    }
    Ok((pattern, options, i))
}

/// `chars[open]` is an opening bracket; returns the index of the matching close,
/// skipping strings, comments and regex literals.
pub(crate) fn matching_close(chars: &[char], open: usize) -> Result<usize, String> {
    let mut stack = vec![closer(chars[open])];
    let mut prev = Some(chars[open]);
    let mut i = open + 1;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' => {
                i = skip_string(chars, i)?;
                prev = Some(c);
                continue;
            }
            '/' if matches!(chars.get(i + 1), Some('/' | '*')) => {
                i = skip_comment(chars, i)?;
                continue;
            }
            '/' if value_expected(prev) => {
                i = read_regex(chars, i)?.2;
                prev = Some('/');
                continue;
            }
            '(' | '[' | '{' => stack.push(closer(c)),
            ')' | ']' | '}' => {
                if stack.pop() != Some(c) {
                    return Err(format!("unexpected '{c}'"));
                }
                if stack.is_empty() {
                    return Ok(i);
                }
            }
            _ => {}
        }
        if !c.is_whitespace() {
            prev = Some(c);
        }
        i += 1;
    }
    Err(format!(
        "missing '{}'",
        stack.last().copied().unwrap_or(')')
    ))
}

fn closer(open: char) -> char {
    match open {
        '(' => ')',
        '[' => ']',
        _ => '}',
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// Pieces of what people type into the shell, valid or not.
    const PIECES: &[&str] = &[
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "'",
        "\"",
        "/",
        "\\",
        "a",
        "$gt",
        "1",
        "-",
        ".",
        "e9",
        "/^A/i",
        "ObjectId(",
        "ISODate(",
        "NumberLong(",
        ")",
        "(",
        "//",
        "/*",
        "*/",
        "\n",
        " ",
        "null",
        "true",
        "é",
        "\u{0}",
        "`",
        "${",
        "0x1F",
        "Infinity",
        "NaN",
    ];

    proptest! {
        #[test]
        fn arbitrary_text_is_parsed_or_refused(pieces in prop::collection::vec(
            prop::sample::select(PIECES), 0..24,
        ), raw in any::<String>()) {
            let _ = parse(&pieces.concat());
            let _ = parse(&raw);
            let _ = parse_document(&raw, "filter");
        }

        #[test]
        fn plain_json_reads_as_json(v in prop::collection::vec(
            (any::<i32>(), "[a-z]{0,6}", any::<bool>()), 0..4,
        )) {
            let value = json!(v);
            let text = value.to_string();
            prop_assert_eq!(parse(&text), Ok(value));
        }
    }

    #[test]
    fn mongosh_style_documents() {
        assert_eq!(
            parse("{name: 'Ada', age: {$gt: 30,}, tags: ['a', \"b\",],}").unwrap(),
            json!({"name": "Ada", "age": {"$gt": 30}, "tags": ["a", "b"]})
        );
        assert_eq!(parse("36").unwrap(), json!(36));
        assert_eq!(parse("-5").unwrap(), json!(-5));
        assert_eq!(parse("1.5").unwrap(), json!(1.5));
        assert_eq!(
            parse("9007199254740993").unwrap(),
            json!(9007199254740993_i64)
        );
    }

    #[test]
    fn keeps_field_order() {
        let v = parse("{b: 1, a: 2, c: 3}").unwrap();
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["b", "a", "c"]);
    }

    #[test]
    fn regex_literals() {
        assert_eq!(
            parse("{name: /^A[/]d\\/a/i}").unwrap(),
            json!({"name": {"$regex": "^A[/]d/a", "$options": "i"}})
        );
        assert_eq!(
            parse("{n: {$in: [/x/, 'y/z']}}").unwrap(),
            json!({"n": {"$in": [{"$regex": "x"}, "y/z"]}})
        );
        assert!(parse("{n: /abc}").is_err());
    }

    #[test]
    fn wrappers_and_comments() {
        assert_eq!(
            parse("{_id: ObjectId('65f0a1b2c3d4e5f601234567'), n: NumberInt(5)} // c").unwrap(),
            json!({"_id": "65f0a1b2c3d4e5f601234567", "n": 5})
        );
        let v = parse("{_id: new ObjectId()}").unwrap();
        assert_eq!(v["_id"].as_str().unwrap().len(), 24);
        assert!(parse("{a: NumberInt()}").is_err());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!("{{a: {}{}}}", "[".repeat(50_000), "]".repeat(50_000));
        assert!(parse(&deep).unwrap_err().contains("nesting deeper"));
        let ok = format!("{{a: {}{}}}", "[".repeat(100), "]".repeat(100));
        assert!(parse(&ok).is_ok());
        let wrapped = format!("{}1{}", "NumberInt(".repeat(5000), ")".repeat(5000));
        assert!(parse(&wrapped).is_err());
        assert!(parse("{a: '[[[[', b: \"{{{\"}").is_ok());
    }

    #[test]
    fn errors_are_one_line() {
        for bad in ["{a: ", "{a: 1", "{a: 'x}", "", "{a b}"] {
            let e = parse(bad).unwrap_err();
            assert!(!e.contains('\n'), "{e}");
        }
        assert!(parse_document("[1]", "filter")
            .unwrap_err()
            .contains("filter must be a JSON object"));
    }

    #[test]
    fn matching_close_skips_strings_and_regexes() {
        let chars: Vec<char> = "({a: ')', b: /\\)/}, 2) x".chars().collect();
        assert_eq!(matching_close(&chars, 0).unwrap(), 21);
        let chars: Vec<char> = "({a: 1)".chars().collect();
        assert!(matching_close(&chars, 0).is_err());
    }
}
