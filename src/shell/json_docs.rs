//! docs/json.md: what every command that prints a report prints with `| json`, made from
//! the JSON Schema of its reply type ([`shapes`], derived with schemars from the same
//! types that are serialized) and the grammar's commands (a test fails when the file is
//! stale, and another checks real output against the schemas).

use std::collections::BTreeSet;
use std::fmt::Write;

use schemars::Schema;
use serde_json::Value;

use crate::grammar::Grammar;

/// Every command's reply schema, by handler name: the handlers' and the shell's own.
pub fn shapes() -> Vec<(&'static str, Schema)> {
    let mut all = crate::handlers::json_shapes();
    all.push(("show_terminal", schemars::schema_for!(super::modes::Line)));
    all
}

/// How deep nested objects are listed.
const DEPTH: usize = 8;

/// The JSON reference in Markdown.
pub fn json_markdown(g: &Grammar) -> String {
    let mut out = String::new();
    out.push_str("# coresh JSON output reference\n\n");
    out.push_str(
        "Generated from the reply types by `coresh docs json`; do not edit by hand. Every command below prints\n\
         this JSON when given `| json` (batch mode and consoles alike). A field marked *optional* may be\n\
         missing or `null`; fields may be added in later releases, never renamed or removed without notice.\n\
         Times are RFC 3339 in UTC.\n",
    );
    for (handler, schema) in shapes() {
        let specs: Vec<String> = g
            .commands
            .iter()
            .filter(|c| c.handler == handler)
            .map(|c| format!("`{}`", c.spec_text))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let title = if specs.is_empty() { format!("`{handler}`") } else { specs.join(", ") };
        let _ = write!(out, "\n## {title}\n\n");
        let root = schema.as_value();
        if let Some(d) = root.get("description").and_then(Value::as_str) {
            let _ = writeln!(out, "{}\n", one_line(d));
        }
        out.push_str("| Field | Type | Description |\n|---|---|---|\n");
        let mut rows = Vec::new();
        walk(root, root, "", true, 0, &mut Vec::new(), &mut rows);
        for (path, kind, doc) in rows {
            let path = if path.is_empty() { "(the reply)".to_string() } else { format!("`{path}`") };
            let _ = writeln!(out, "| {path} | {kind} | {doc} |");
        }
    }
    out
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ").replace('|', "\\|")
}

/// `schema` with its `$ref` followed (into `root`'s `$defs`), and the name followed.
fn resolve<'a>(root: &'a Value, schema: &'a Value) -> (&'a Value, Option<&'a str>) {
    match schema.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("#/$defs/")) {
        Some(name) => (root.get("$defs").and_then(|d| d.get(name)).unwrap_or(schema), Some(name)),
        None => (schema, None),
    }
}

/// The variants of an `anyOf`/`oneOf`, the null one left out; and whether there was one.
fn variants(schema: &Value) -> (Vec<&Value>, bool) {
    let list = schema.get("anyOf").or_else(|| schema.get("oneOf")).and_then(Value::as_array);
    match list {
        Some(list) => {
            let null = list.iter().any(|v| v.get("type").and_then(Value::as_str) == Some("null"));
            (list.iter().filter(|v| v.get("type").and_then(Value::as_str) != Some("null")).collect(), null)
        }
        None => (Vec::new(), false),
    }
}

/// A type's name in the table: `string`, `integer`, `one of a, b`, `object`, `array`.
fn kind(root: &Value, schema: &Value) -> (String, bool) {
    let (schema, _) = resolve(root, schema);
    if let Some(words) = schema.get("enum").and_then(Value::as_array) {
        let words: Vec<String> = words.iter().map(|w| format!("`{}`", w.as_str().unwrap_or("?"))).collect();
        return (format!("one of {}", words.join(", ")), false);
    }
    if let Some(c) = schema.get("const") {
        return (format!("`{}`", c.as_str().map_or(c.to_string(), str::to_string)), false);
    }
    let (vs, null) = variants(schema);
    if !vs.is_empty() {
        let consts: Vec<String> = vs
            .iter()
            .filter_map(|v| resolve(root, v).0.get("const").and_then(Value::as_str).map(|c| format!("`{c}`")))
            .collect();
        if consts.len() == vs.len() {
            return (format!("one of {}", consts.join(", ")), null);
        }
        if let [one] = vs.as_slice() {
            let (k, inner_null) = kind(root, one);
            return (k, null || inner_null);
        }
        return ("object (one of several forms)".into(), null);
    }
    match schema.get("type") {
        Some(Value::String(t)) => (t.clone(), false),
        Some(Value::Array(ts)) => {
            let null = ts.iter().any(|t| t == "null");
            let names: Vec<&str> = ts.iter().filter_map(Value::as_str).filter(|t| *t != "null").collect();
            (names.join(" or "), null)
        }
        _ => ("any".into(), false),
    }
}

/// Lists `schema`'s fields under `path` into `rows` (path, type, description).
fn walk(
    root: &Value,
    schema: &Value,
    path: &str,
    required: bool,
    depth: usize,
    seen: &mut Vec<String>,
    rows: &mut Vec<(String, String, String)>,
) {
    let (resolved, name) = resolve(root, schema);
    if let Some(name) = name {
        if seen.iter().any(|s| s == name) || depth > DEPTH {
            rows.push((path.to_string(), format!("{name} (as above)"), String::new()));
            return;
        }
        seen.push(name.to_string());
    }
    let doc = schema
        .get("description")
        .or_else(|| resolved.get("description"))
        .and_then(Value::as_str)
        .map(one_line)
        .unwrap_or_default();
    let (mut k, null) = kind(root, resolved);
    if !required || null {
        k.push_str(", *optional*");
    }
    let (vs, _) = variants(resolved);
    let object = vs.first().map_or(resolved, |v| resolve(root, v).0);
    let is_array = resolved.get("type").and_then(Value::as_str) == Some("array")
        || object.get("type").and_then(Value::as_str) == Some("array");
    if !path.is_empty() {
        rows.push((path.to_string(), k, doc));
    }
    if is_array {
        let items = object.get("items").or_else(|| resolved.get("items"));
        if let Some(items) = items {
            walk(root, items, &format!("{path}[]"), true, depth + 1, seen, rows);
        }
    } else if vs.len() > 1 {
        for v in &vs {
            walk_properties(root, resolve(root, v).0, path, depth, seen, rows);
        }
    } else {
        walk_properties(root, object, path, depth, seen, rows);
    }
    if name.is_some() {
        seen.pop();
    }
}

fn walk_properties(
    root: &Value,
    object: &Value,
    path: &str,
    depth: usize,
    seen: &mut Vec<String>,
    rows: &mut Vec<(String, String, String)>,
) {
    let Some(props) = object.get("properties").and_then(Value::as_object) else { return };
    let required: Vec<&str> = object
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for (field, sub) in props {
        let at = if path.is_empty() { field.clone() } else { format!("{path}.{field}") };
        if rows.iter().any(|(p, _, _)| *p == at) {
            continue;
        }
        walk(root, sub, &at, required.contains(&field.as_str()), depth + 1, seen, rows);
    }
}
