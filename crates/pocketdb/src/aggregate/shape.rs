//! Reshaping documents: `$project` (inclusion, exclusion, computed fields), `$addFields`
//! / `$set` and `$unset`, with MongoDB's rules for dotted paths and arrays:
//!
//! * an inclusion keeps the listed fields in the document's own order and appends
//!   computed fields in the specification's order; `_id` is kept unless excluded;
//! * a sub-specification (`{"a.b": 1}` or `{a: {b: 1}}`) applies to an embedded document,
//!   and to every document inside an array at that path (scalars in the array are dropped
//!   by inclusions, kept by exclusions);
//! * a computed field under a path that holds a scalar (or nothing) replaces it with a new
//!   document holding the computed fields; under an array it applies to every element.

use super::expr::{Env, Expr};
use crate::error::{Error, Result};
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq)]
enum Item {
    Include,
    Exclude,
    Compute(Expr),
    Sub(Node),
}

#[derive(Debug, Clone, PartialEq, Default)]
struct Node {
    fields: Vec<(String, Item)>,
}

impl Node {
    fn slot(&mut self, key: &str) -> Option<&mut Item> {
        self.fields
            .iter_mut()
            .find(|(k, _)| k == key)
            .map(|(_, i)| i)
    }

    fn insert(&mut self, stage: &str, segs: &[&str], item: Item, full: &str) -> Result<()> {
        let Some((head, rest)) = segs.split_first() else {
            return Err(Error::pipeline(stage, "empty field path"));
        };
        if rest.is_empty() {
            if self.slot(head).is_some() {
                return Err(Error::pipeline(
                    stage,
                    format!("path collision at '{full}'"),
                ));
            }
            self.fields.push((head.to_string(), item));
            return Ok(());
        }
        if self.slot(head).is_none() {
            self.fields
                .push((head.to_string(), Item::Sub(Node::default())));
        }
        match self.slot(head) {
            Some(Item::Sub(child)) => child.insert(stage, rest, item, full),
            _ => Err(Error::pipeline(
                stage,
                format!("path collision at '{full}'"),
            )),
        }
    }

    fn has_compute(&self) -> bool {
        self.fields.iter().any(|(_, i)| match i {
            Item::Compute(_) => true,
            Item::Sub(n) => n.has_compute(),
            _ => false,
        })
    }
}

/// A parsed `$project`, `$addFields`/`$set` or `$unset`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Shape {
    mode: Mode,
    root: Node,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Inclusion,
    Exclusion,
    AddFields,
}

fn check_name<'a>(stage: &str, key: &'a str) -> Result<Vec<&'a str>> {
    let segs: Vec<&str> = key.split('.').collect();
    if key.is_empty() || segs.iter().any(|s| s.is_empty() || s.starts_with('$')) {
        return Err(Error::pipeline(
            stage,
            format!("invalid field path '{key}'"),
        ));
    }
    Ok(segs)
}

/// True when `v` is `{"$op": …}` (an expression, not a nested specification).
fn is_expression_object(v: &Value) -> bool {
    matches!(v, Value::Object(m) if m.keys().next().is_some_and(|k| k.starts_with('$')))
}

impl Shape {
    /// Parses a `$project` specification.
    pub(crate) fn project(spec: &Value) -> Result<Shape> {
        let obj = spec
            .as_object()
            .ok_or_else(|| Error::pipeline("$project", "specification must be an object"))?;
        if obj.is_empty() {
            return Err(Error::pipeline(
                "$project",
                "specification must have at least one field",
            ));
        }
        let mut root = Node::default();
        let (mut includes, mut excludes) = (false, false);
        parse_project(obj, &mut root, "", &mut includes, &mut excludes)?;
        // `{_id: 1}` alone is an inclusion; `{_id: 0}` alone an exclusion.
        let id_only_included = !includes
            && !excludes
            && matches!(root.fields.first(), Some((k, Item::Include)) if k == "_id");
        if includes && excludes {
            return Err(Error::pipeline(
                "$project",
                "cannot mix inclusion (or computed fields) and exclusion of fields other than _id",
            ));
        }
        Ok(Shape {
            mode: if includes || id_only_included {
                Mode::Inclusion
            } else {
                Mode::Exclusion
            },
            root,
        })
    }

    /// Parses `$unset`: a field path or an array of them.
    pub(crate) fn unset(spec: &Value) -> Result<Shape> {
        let paths: Vec<&str> = match spec {
            Value::String(s) => vec![s.as_str()],
            Value::Array(items) if !items.is_empty() => items
                .iter()
                .map(|i| {
                    i.as_str()
                        .ok_or_else(|| Error::pipeline("$unset", "fields must be strings"))
                })
                .collect::<Result<_>>()?,
            _ => {
                return Err(Error::pipeline(
                    "$unset",
                    "specification must be a string or a non-empty array of strings",
                ))
            }
        };
        let mut root = Node::default();
        for p in paths {
            root.insert("$unset", &check_name("$unset", p)?, Item::Exclude, p)?;
        }
        Ok(Shape {
            mode: Mode::Exclusion,
            root,
        })
    }

    /// Parses `$addFields` / `$set` (`stage` names which).
    pub(crate) fn add_fields(stage: &str, spec: &Value) -> Result<Shape> {
        let obj = spec
            .as_object()
            .ok_or_else(|| Error::pipeline(stage, "specification must be an object"))?;
        let mut root = Node::default();
        parse_add_fields(stage, obj, &mut root, "")?;
        Ok(Shape {
            mode: Mode::AddFields,
            root,
        })
    }

    /// Applies the shape to a document.
    pub(crate) fn apply(&self, doc: &Value) -> Result<Value> {
        let env = Env::new(doc);
        let Value::Object(obj) = doc else {
            return Ok(doc.clone());
        };
        Ok(Value::Object(match self.mode {
            Mode::Inclusion => include_object(&self.root, obj, &env, true)?,
            Mode::Exclusion => exclude_object(&self.root, obj),
            Mode::AddFields => {
                let mut out = obj.clone();
                compute_into(&self.root, &mut out, &env)?;
                out
            }
        }))
    }
}

fn parse_project(
    obj: &Map<String, Value>,
    node: &mut Node,
    prefix: &str,
    includes: &mut bool,
    excludes: &mut bool,
) -> Result<()> {
    for (key, value) in obj {
        let full = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        let segs = check_name("$project", key)?;
        let is_id = full == "_id";
        let item = match value {
            Value::Bool(b) => flag(*b, is_id, includes, excludes),
            Value::Number(n) => flag(n.as_f64() != Some(0.0), is_id, includes, excludes),
            Value::Object(m) if !m.is_empty() && !is_expression_object(value) => {
                let mut child = Node::default();
                parse_project(m, &mut child, &full, includes, excludes)?;
                Item::Sub(child)
            }
            other => {
                *includes = true;
                Item::Compute(Expr::parse(other)?)
            }
        };
        node.insert("$project", &segs, item, &full)?;
    }
    Ok(())
}

fn flag(on: bool, is_id: bool, includes: &mut bool, excludes: &mut bool) -> Item {
    if on {
        if !is_id {
            *includes = true;
        }
        Item::Include
    } else {
        if !is_id {
            *excludes = true;
        }
        Item::Exclude
    }
}

fn parse_add_fields(
    stage: &str,
    obj: &Map<String, Value>,
    node: &mut Node,
    prefix: &str,
) -> Result<()> {
    for (key, value) in obj {
        let full = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        let segs = check_name(stage, key)?;
        let item = match value {
            Value::Object(m) if !m.is_empty() && !is_expression_object(value) => {
                let mut child = Node::default();
                parse_add_fields(stage, m, &mut child, &full)?;
                Item::Sub(child)
            }
            other => Item::Compute(Expr::parse(other)?),
        };
        node.insert(stage, &segs, item, &full)?;
    }
    Ok(())
}

fn include_object(
    node: &Node,
    obj: &Map<String, Value>,
    env: &Env<'_>,
    top: bool,
) -> Result<Map<String, Value>> {
    let mut out = Map::new();
    let id_excluded = top
        && matches!(
            node.fields.iter().find(|(k, _)| k == "_id"),
            Some((_, Item::Exclude))
        );
    for (k, v) in obj {
        match node.fields.iter().find(|(f, _)| f == k).map(|(_, i)| i) {
            Some(Item::Include) => {
                out.insert(k.clone(), v.clone());
            }
            Some(Item::Sub(child)) => {
                if let Some(kept) = include_value(child, v, env)? {
                    out.insert(k.clone(), kept);
                }
            }
            None if top && k == "_id" && !id_excluded => {
                out.insert(k.clone(), v.clone());
            }
            _ => {}
        }
    }
    compute_into(node, &mut out, env)?;
    Ok(out)
}

/// Inclusion under a sub-specification: documents are projected, arrays element-wise,
/// scalars dropped (computed fields then turn them into documents).
fn include_value(node: &Node, v: &Value, env: &Env<'_>) -> Result<Option<Value>> {
    Ok(match v {
        Value::Object(m) => Some(Value::Object(include_object(node, m, env, false)?)),
        Value::Array(items) => {
            let mut out = Vec::new();
            for i in items {
                if let Some(kept) = include_value(node, i, env)? {
                    out.push(kept);
                }
            }
            Some(Value::Array(out))
        }
        _ if node.has_compute() => {
            let mut m = Map::new();
            compute_into(node, &mut m, env)?;
            Some(Value::Object(m))
        }
        _ => None,
    })
}

fn exclude_object(node: &Node, obj: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::with_capacity(obj.len());
    for (k, v) in obj {
        match node.fields.iter().find(|(f, _)| f == k).map(|(_, i)| i) {
            Some(Item::Exclude) => {}
            Some(Item::Sub(child)) => {
                out.insert(k.clone(), exclude_value(child, v));
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    out
}

fn exclude_value(node: &Node, v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(exclude_object(node, m)),
        Value::Array(items) => Value::Array(items.iter().map(|i| exclude_value(node, i)).collect()),
        other => other.clone(),
    }
}

/// Sets the computed fields of `node` (recursively) into `out`, in specification order.
/// A computed value that is missing removes the field.
fn compute_into(node: &Node, out: &mut Map<String, Value>, env: &Env<'_>) -> Result<()> {
    for (k, item) in &node.fields {
        match item {
            Item::Compute(e) => match e.eval(env)? {
                Some(v) => {
                    if let Some(slot) = out.get_mut(k) {
                        *slot = v;
                    } else {
                        out.insert(k.clone(), v);
                    }
                }
                None => {
                    out.shift_remove(k);
                }
            },
            Item::Sub(child) if child.has_compute() => {
                let current = out.get(k).cloned();
                let updated = compute_value(child, current, env)?;
                if let Some(slot) = out.get_mut(k) {
                    *slot = updated;
                } else {
                    out.insert(k.clone(), updated);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn compute_value(node: &Node, v: Option<Value>, env: &Env<'_>) -> Result<Value> {
    match v {
        Some(Value::Object(mut m)) => {
            compute_into(node, &mut m, env)?;
            Ok(Value::Object(m))
        }
        Some(Value::Array(items)) => Ok(Value::Array(
            items
                .into_iter()
                .map(|i| compute_value(node, Some(i), env))
                .collect::<Result<_>>()?,
        )),
        _ => {
            let mut m = Map::new();
            compute_into(node, &mut m, env)?;
            Ok(Value::Object(m))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn project(spec: Value, doc: Value) -> Value {
        Shape::project(&spec)
            .and_then(|s| s.apply(&doc))
            .unwrap_or_else(|e| json!({"error": e.to_string()}))
    }

    #[test]
    fn inclusion_keeps_document_order_and_appends_computed() {
        let doc = json!({"_id": 1, "a": 1, "b": 2, "c": 3});
        assert_eq!(
            project(json!({"c": 1, "a": 1}), doc.clone()),
            json!({"_id": 1, "a": 1, "c": 3})
        );
        assert_eq!(
            project(json!({"x": "$a", "b": 1, "_id": 0}), doc.clone()),
            json!({"b": 2, "x": 1})
        );
        assert_eq!(
            project(json!({"a": 0, "_id": 0}), doc),
            json!({"b": 2, "c": 3})
        );
    }

    #[test]
    fn nested_paths_and_arrays() {
        let doc = json!({"_id": 1, "a": [{"b": 1, "c": 2}, 5, {"c": 3}], "d": {"e": 1, "f": 2}});
        assert_eq!(
            project(json!({"a.b": 1, "d.f": 1, "_id": 0}), doc.clone()),
            json!({"a": [{"b": 1}, {}], "d": {"f": 2}})
        );
        assert_eq!(
            project(json!({"a.c": 0, "d": {"e": 0}}), doc.clone()),
            json!({"_id": 1, "a": [{"b": 1}, 5, {}], "d": {"f": 2}})
        );
        let set = Shape::add_fields("$set", &json!({"a.z": 9, "n.m": "$d.e"}))
            .and_then(|s| s.apply(&doc));
        assert_eq!(
            set.ok(),
            Some(
                json!({"_id": 1, "a": [{"b": 1, "c": 2, "z": 9}, {"z": 9}, {"c": 3, "z": 9}], "d": {"e": 1, "f": 2}, "n": {"m": 1}})
            )
        );
    }

    #[test]
    fn errors() {
        assert!(Shape::project(&json!({})).is_err());
        assert!(Shape::project(&json!({"a": 1, "b": 0})).is_err());
        assert!(Shape::project(&json!({"a": 1, "a.b": 1})).is_err());
        assert!(Shape::unset(&json!([1])).is_err());
    }
}
