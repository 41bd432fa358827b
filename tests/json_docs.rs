//! docs/json.md is generated from the reply types, every `show` command has a documented
//! shape, and what the commands really print with `| json` on a node matches the
//! documented schema: every field documented, every required field there, every value of
//! its type.

mod common;

use common::TestNode;
use coresh::grammar::{Grammar, SpecToken};
use coresh::shell::json_docs::{json_markdown, shapes};
use serde_json::Value;

#[test]
fn docs_json_md_is_generated_from_the_reply_types() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/json.md");
    let expected = json_markdown(Grammar::builtin());
    let actual = std::fs::read_to_string(path).unwrap_or_default();
    assert!(actual == expected, "docs/json.md is stale: regenerate it with `cargo run -- docs json > docs/json.md`");
}

#[test]
fn every_show_command_has_a_documented_shape() {
    let g = Grammar::builtin();
    let documented: Vec<&str> = shapes().iter().map(|(h, _)| *h).collect();
    for c in g.commands.iter().filter(|c| c.spec_text.starts_with("show ")) {
        assert!(documented.contains(&&*c.handler), "`{}` ({}) has no JSON shape", c.spec_text, c.handler);
    }
    for h in &documented {
        assert!(g.commands.iter().any(|c| c.handler == *h), "a shape for {h}, which no command reaches");
    }
}

/// `value` against `schema` (resolved in `root`): the problems, each with its path.
fn check(root: &Value, schema: &Value, value: &Value, path: &str, problems: &mut Vec<String>) {
    let schema = match schema.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("#/$defs/")) {
        Some(name) => &root["$defs"][name],
        None => schema,
    };
    if let Some(variants) = schema.get("anyOf").or_else(|| schema.get("oneOf")).and_then(Value::as_array) {
        let fits = variants.iter().any(|v| {
            let mut mine = Vec::new();
            check(root, v, value, path, &mut mine);
            mine.is_empty()
        });
        if !fits {
            problems.push(format!("{path}: {value} fits none of its forms"));
        }
        return;
    }
    if let Some(words) = schema.get("enum").and_then(Value::as_array) {
        if !words.contains(value) {
            problems.push(format!("{path}: {value} is not one of {words:?}"));
        }
        return;
    }
    if let Some(c) = schema.get("const") {
        if c != value {
            problems.push(format!("{path}: {value} is not {c}"));
        }
        return;
    }
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => return,
    };
    let fits = types.iter().any(|t| match *t {
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => true,
    });
    if !fits {
        problems.push(format!("{path}: {value} is not {types:?}"));
        return;
    }
    if let (Some(map), Some(props)) = (value.as_object(), schema.get("properties").and_then(Value::as_object)) {
        for (key, v) in map {
            match props.get(key) {
                Some(sub) => check(root, sub, v, &format!("{path}.{key}"), problems),
                None => problems.push(format!("{path}.{key}: not documented")),
            }
        }
        for key in schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
            if !map.contains_key(key) {
                problems.push(format!("{path}.{key}: required, missing"));
            }
        }
    }
    if let (Some(items), Some(list)) = (value.as_array(), schema.get("items")) {
        for (i, v) in items.iter().enumerate() {
            check(root, list, v, &format!("{path}[{i}]"), problems);
        }
    }
}

#[test]
fn what_the_commands_print_matches_the_documented_shapes() {
    let node = TestNode::new();
    common::generate(&node, "20", "20");
    node.ha(&["event-hook fenced command /bin/true", "notify email ops@example.com"]).expect_code(0);
    node.run(&["enable", "configure terminal", "logging host 10.0.0.9 tcp"]).expect_code(0);
    node.run(&["enable", "failover mode secondary", "failover mode primary"]).expect_code(0);
    let g = Grammar::builtin();
    let mut checked = Vec::new();
    for (handler, schema) in shapes() {
        // A command of this handler that needs no argument, in a mode a session reaches
        // with `enable`, its optional parts left out.
        let plain = g.commands.iter().filter(|c| c.handler == handler).find(|c| {
            c.modes.iter().any(|m| m == "user" || m == "enable")
                && c.spec.iter().all(|t| matches!(t, SpecToken::Keyword(_) | SpecToken::Optional(_)))
        });
        let Some(command) = plain else { continue };
        let words: Vec<&str> = command
            .spec
            .iter()
            .filter_map(|t| match t {
                SpecToken::Keyword(w) => Some(&**w),
                _ => None,
            })
            .collect();
        let line = words.join(" ");
        let run = node.run(&["enable", &format!("{line} | json")]);
        if run.code != 0 {
            // Needs a peer or a mate: its shape is still documented, checked elsewhere.
            continue;
        }
        let value: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{line}: {e}"));
        let mut problems = Vec::new();
        check(schema.as_value(), schema.as_value(), &value, "", &mut problems);
        assert!(problems.is_empty(), "`{line} | json` does not match docs/json.md:\n{}", problems.join("\n"));
        checked.push(line);
    }
    eprintln!("checked against their shapes: {checked:?}");
    assert!(checked.len() >= 20, "only {} commands checked: {checked:?}", checked.len());
}

#[test]
fn the_shape_check_catches_an_undocumented_field_a_missing_one_and_a_wrong_type() {
    let (_, schema) = shapes().into_iter().find(|(h, _)| *h == "show_clock").unwrap();
    let root = schema.as_value();
    let mut problems = Vec::new();
    check(root, root, &serde_json::json!({"surprise": 1}), "", &mut problems);
    assert!(problems.iter().any(|p| p.contains(".surprise: not documented")), "{problems:?}");
    assert!(problems.iter().any(|p| p.contains("required, missing")), "{problems:?}");
    let props = root["properties"].as_object().unwrap();
    let (field, _) = props.iter().find(|(_, s)| s["type"] == "string").unwrap();
    let mut problems = Vec::new();
    check(root, root, &serde_json::json!({ field.as_str(): 5 }), "", &mut problems);
    assert!(problems.iter().any(|p| p.contains(&format!(".{field}: 5 is not"))), "{problems:?}");
}
