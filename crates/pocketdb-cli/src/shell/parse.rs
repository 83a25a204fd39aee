//! The shell's statement syntax: `show …`, `use …`, `help`, `exit`, and method chains
//! `db.<coll>.<method>(<args>)(.<method>(<args>))*` whose arguments are relaxed JSON.
//!
//! Arguments are split at top-level commas by a scanner that respects brackets, strings,
//! comments and regex literals, so `find({a: 1, b: [1, 2]}, {a: 1})` has two arguments.

use crate::relaxed::{self, matching_close, read_regex, skip_comment, skip_string};
use serde_json::Value;

/// One statement typed at the shell.
#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    /// Blank line or comment.
    Empty,
    /// `help`.
    Help,
    /// `exit`, `quit`, `exit()`, `quit()`.
    Exit,
    /// `show collections`, `show dbs`, …
    Show(String),
    /// `use <name>`.
    Use(String),
    /// `db` alone: prints the current database's name.
    DbName,
    /// A method chain on `db` or on a collection.
    Chain(Chain),
}

/// What a chain starts from.
#[derive(Debug, Clone, PartialEq)]
pub enum Receiver {
    /// `db.<method>(…)`.
    Db,
    /// `db.<coll>.<method>(…)`.
    Collection(String),
}

/// `receiver.call(…).call(…)…`.
#[derive(Debug, Clone, PartialEq)]
pub struct Chain {
    /// What the first call applies to.
    pub receiver: Receiver,
    /// The calls, in order (at least one).
    pub calls: Vec<Call>,
}

/// One method call with its parsed arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// Method name.
    pub method: String,
    /// Arguments, parsed as relaxed JSON.
    pub args: Vec<Value>,
}

/// Methods called on `db` itself rather than on a collection.
pub const DB_METHODS: &[&str] = &[
    "getCollection",
    "getCollectionNames",
    "getName",
    "runCommand",
    "createCollection",
    "dropDatabase",
    "stats",
    "help",
];

/// True when the text has unclosed brackets or strings (the interactive shell then
/// reads a continuation line).
pub fn is_incomplete(text: &str) -> bool {
    let chars: Vec<char> = text.chars().collect();
    let mut depth = 0i32;
    let mut prev: Option<char> = None;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' => match skip_string(&chars, i) {
                Ok(end) => {
                    i = end;
                    prev = Some(c);
                    continue;
                }
                Err(_) => return true,
            },
            '/' if matches!(chars.get(i + 1), Some('/' | '*')) => match skip_comment(&chars, i) {
                Ok(end) => {
                    i = end;
                    continue;
                }
                Err(_) => return true,
            },
            '/' if matches!(prev, Some(':' | '[' | ',' | '(')) => match read_regex(&chars, i) {
                Ok((_, _, end)) => {
                    i = end;
                    prev = Some('/');
                    continue;
                }
                Err(_) => return false,
            },
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            _ => {}
        }
        if !c.is_whitespace() {
            prev = Some(c);
        }
        i += 1;
    }
    depth > 0
}

/// Parses one statement.
pub fn parse_statement(text: &str) -> Result<Statement, String> {
    let text = text.trim();
    let text = text.strip_suffix(';').unwrap_or(text).trim();
    if text.is_empty() || text.starts_with("//") {
        return Ok(Statement::Empty);
    }
    let mut words = text.split_whitespace();
    let first = words.next().unwrap_or_default();
    match first {
        "help" if text == "help" => return Ok(Statement::Help),
        "exit" | "quit" | "exit()" | "quit()" if words.next().is_none() => {
            return Ok(Statement::Exit)
        }
        "show" => {
            let what = words
                .next()
                .ok_or("show needs an argument: show collections | show dbs")?;
            if words.next().is_some() {
                return Err(format!("unexpected text after 'show {what}'"));
            }
            return Ok(Statement::Show(what.to_string()));
        }
        "use" => {
            let name = words.next().ok_or("use needs a database name")?;
            if words.next().is_some() {
                return Err(format!("unexpected text after 'use {name}'"));
            }
            return Ok(Statement::Use(name.to_string()));
        }
        _ => {}
    }
    if text == "db" {
        return Ok(Statement::DbName);
    }
    parse_chain(text).map(Statement::Chain)
}

/// A piece of a chain: `.name`, `["name"]` or `(args)`.
#[derive(Debug)]
enum Segment {
    Name(String),
    Args(Vec<Value>),
}

fn parse_chain(text: &str) -> Result<Chain, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut i = read_ident(&chars, 0).ok_or_else(|| unknown(text))?;
    let head: String = chars[..i].iter().collect();
    if head != "db" {
        return Err(unknown(text));
    }
    let mut segments = Vec::new();
    loop {
        i = skip_ws(&chars, i);
        let Some(&c) = chars.get(i) else { break };
        match c {
            '.' => {
                let start = skip_ws(&chars, i + 1);
                let end = read_ident(&chars, start)
                    .ok_or_else(|| format!("expected a name after '.' at column {}", i + 2))?;
                segments.push(Segment::Name(chars[start..end].iter().collect()));
                i = end;
            }
            '[' => {
                let close = matching_close(&chars, i)?;
                let inner: String = chars[i + 1..close].iter().collect();
                match relaxed::parse(&inner)? {
                    Value::String(name) => segments.push(Segment::Name(name)),
                    _ => return Err("db[...] needs a collection name string".to_string()),
                }
                i = close + 1;
            }
            '(' => {
                let close = matching_close(&chars, i)?;
                segments.push(Segment::Args(parse_args(&chars[i + 1..close])?));
                i = close + 1;
            }
            other => {
                return Err(format!(
                    "unexpected '{other}' at column {}: expected .method(...)",
                    i + 1
                ))
            }
        }
    }
    build_chain(segments)
}

fn build_chain(segments: Vec<Segment>) -> Result<Chain, String> {
    let mut names = Vec::new();
    let mut iter = segments.into_iter().peekable();
    // Names up to the first call: collection path then method.
    while let Some(Segment::Name(_)) = iter.peek() {
        if let Some(Segment::Name(n)) = iter.next() {
            names.push(n);
        }
    }
    let Some(Segment::Args(first_args)) = iter.next() else {
        return Err(match names.len() {
            0 => "expected db.<collection>.<method>(...)".to_string(),
            _ => format!(
                "'db.{}' is not a statement: call a method, e.g. db.{}.find()",
                names.join("."),
                names.join(".")
            ),
        });
    };
    let method = names
        .pop()
        .ok_or("expected db.<collection>.<method>(...)")?;
    let receiver = if names.is_empty() {
        if !DB_METHODS.contains(&method.as_str()) {
            return Err(format!(
                "db.{method}() is not a database method; to use collection '{method}', call a method on it: db.{method}.find()"
            ));
        }
        Receiver::Db
    } else {
        Receiver::Collection(names.join("."))
    };
    let mut calls = vec![Call {
        method,
        args: first_args,
    }];
    while let Some(segment) = iter.next() {
        match (segment, iter.next()) {
            (Segment::Name(method), Some(Segment::Args(args))) => calls.push(Call { method, args }),
            (Segment::Name(method), _) => {
                return Err(format!("'.{method}' must be called: .{method}(...)"))
            }
            (Segment::Args(_), _) => return Err("unexpected '(' in chain".to_string()),
        }
    }
    Ok(Chain { receiver, calls })
}

/// Splits the text between a call's parentheses at top-level commas and parses each
/// argument as relaxed JSON. A trailing comma is allowed.
fn parse_args(chars: &[char]) -> Result<Vec<Value>, String> {
    let mut args = Vec::new();
    let mut start = 0;
    let mut prev: Option<char> = None;
    let mut i = 0;
    while i <= chars.len() {
        let Some(&c) = chars.get(i) else {
            push_arg(&chars[start..], &mut args, true)?;
            break;
        };
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
            '/' if matches!(prev, None | Some(':' | '[' | ',' | '(')) => {
                i = read_regex(chars, i)?.2;
                prev = Some('/');
                continue;
            }
            '(' | '[' | '{' => {
                i = matching_close(chars, i)? + 1;
                prev = Some('}');
                continue;
            }
            ')' | ']' | '}' => return Err(format!("unexpected '{c}'")),
            ',' => {
                push_arg(&chars[start..i], &mut args, false)?;
                start = i + 1;
            }
            _ => {}
        }
        if !c.is_whitespace() {
            prev = Some(c);
        }
        i += 1;
    }
    Ok(args)
}

fn push_arg(chars: &[char], args: &mut Vec<Value>, last: bool) -> Result<(), String> {
    let text: String = chars.iter().collect();
    if text.trim().is_empty() {
        if last {
            return Ok(());
        }
        return Err("empty argument".to_string());
    }
    let value = relaxed::parse(&text).map_err(|e| format!("argument {}: {e}", args.len() + 1))?;
    args.push(value);
    Ok(())
}

fn read_ident(chars: &[char], start: usize) -> Option<usize> {
    let mut i = start;
    while chars
        .get(i)
        .is_some_and(|c| c.is_alphanumeric() || *c == '_' || *c == '$' || *c == '-')
    {
        i += 1;
    }
    (i > start).then_some(i)
}

fn skip_ws(chars: &[char], mut i: usize) -> usize {
    while chars.get(i).is_some_and(|c| c.is_whitespace()) {
        i += 1;
    }
    i
}

fn unknown(text: &str) -> String {
    let shown: String = text.chars().take(40).collect();
    format!("unknown statement '{shown}': try help")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chain(text: &str) -> Chain {
        match parse_statement(text).unwrap() {
            Statement::Chain(c) => c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn simple_statements() {
        assert_eq!(parse_statement("  ").unwrap(), Statement::Empty);
        assert_eq!(parse_statement("help").unwrap(), Statement::Help);
        assert_eq!(parse_statement("exit;").unwrap(), Statement::Exit);
        assert_eq!(
            parse_statement("show collections").unwrap(),
            Statement::Show("collections".into())
        );
        assert_eq!(
            parse_statement("use other").unwrap(),
            Statement::Use("other".into())
        );
        assert_eq!(parse_statement("db").unwrap(), Statement::DbName);
        assert!(parse_statement("show").is_err());
        assert!(parse_statement("select * from users").is_err());
    }

    #[test]
    fn chains_with_commas_inside_arguments() {
        let c = chain("db.users.find({age: {$gt: 30}, tags: ['a,b', \"c)\"]}, {name: 1}).sort({age: -1}).limit(5);");
        assert_eq!(c.receiver, Receiver::Collection("users".into()));
        assert_eq!(c.calls.len(), 3);
        assert_eq!(
            c.calls[0].args,
            vec![
                json!({"age": {"$gt": 30}, "tags": ["a,b", "c)"]}),
                json!({"name": 1})
            ]
        );
        assert_eq!(c.calls[1].method, "sort");
        assert_eq!(c.calls[2].args, vec![json!(5)]);
    }

    #[test]
    fn dotted_and_bracketed_collection_names() {
        assert_eq!(
            chain("db.app.logs.find()").receiver,
            Receiver::Collection("app.logs".into())
        );
        assert_eq!(
            chain("db['my coll'].countDocuments({})").receiver,
            Receiver::Collection("my coll".into())
        );
        let c = chain("db.getCollection('x').find()");
        assert_eq!(c.receiver, Receiver::Db);
        assert_eq!(c.calls[0].args, vec![json!("x")]);
        assert_eq!(chain("db.users.find( )").calls[0].args, Vec::<Value>::new());
        assert_eq!(chain("db.users.find({},)").calls[0].args, vec![json!({})]);
    }

    #[test]
    fn regex_arguments() {
        let c = chain("db.users.find({name: /^A(d|b)/i}, {name: 1})");
        assert_eq!(
            c.calls[0].args[0],
            json!({"name": {"$regex": "^A(d|b)", "$options": "i"}})
        );
        assert_eq!(c.calls[0].args.len(), 2);
    }

    #[test]
    fn errors() {
        assert!(parse_statement("db.users")
            .unwrap_err()
            .contains("call a method"));
        assert!(parse_statement("db.users.find(").is_err());
        assert!(parse_statement("db.users.find({a: 1)").is_err());
        assert!(parse_statement("db.users.find().limit").is_err());
        assert!(parse_statement("db.users.find({a: })")
            .unwrap_err()
            .contains("argument 1"));
        assert!(parse_statement("db.users.find(,{})").is_err());
        assert!(parse_statement("db.find()")
            .unwrap_err()
            .contains("not a database method"));
    }

    #[test]
    fn incomplete_input() {
        assert!(is_incomplete("db.users.insertOne({a: 1,"));
        assert!(is_incomplete("db.users.find({a: '}"));
        assert!(!is_incomplete("db.users.find({a: '{'})"));
        assert!(!is_incomplete("db.users.find({a: /[(]/})"));
    }
}
