//! The `stack.yaml` reference in Markdown, generated from the JSON Schema (and so from the
//! model's doc comments).

use std::fmt::Write;

use serde_json::{Map, Value};

use crate::schema::schema;

/// Where the reference is published, relative to the repository root.
pub const REFERENCE_PATH: &str = "docs/stack-reference.md";

/// The reference: one table per section, then the value types.
pub fn reference_markdown() -> String {
    let root = schema();
    let defs = root["$defs"].as_object().cloned().unwrap_or_default();
    let mut out = String::from(
        "# stack.yaml reference\n\n\
         Generated from the model, like `docs/stack.schema.json`; do not edit by hand \
         (`UPDATE_SCHEMA=1 cargo test -p stack-config --test schema` rewrites both).\n\
         Every key is optional: a missing key takes the default shown. Environment variables \
         override any key as `TASKMANAGER__<SECTION>__<KEY>` (for example \
         `TASKMANAGER__SERVER__PORT`), and `--set section.key=value` overrides those.\n",
    );
    let properties = root["properties"].as_object().cloned().unwrap_or_default();
    let header = "| Key | Type | Default | Description |\n|---|---|---|---|\n";
    out.push_str("\n## Top-level keys\n\n");
    out.push_str(header);
    for (name, property) in &properties {
        if object_def(property, &defs).is_none() {
            row(&mut out, name, property, &defs);
        }
    }
    for (name, property) in &properties {
        if let Some(def) = object_def(property, &defs) {
            let _ = write!(out, "\n## `{name}`\n\n{}\n\n", description(property));
            out.push_str(header);
            rows(&mut out, name, def, &defs);
        }
    }
    out.push_str("\n## Value types\n\n| Type | Meaning |\n|---|---|\n");
    for (name, def) in &defs {
        if def.get("properties").is_none() && def.get("oneOf").is_none() && name != "Overlay" {
            let _ = writeln!(out, "| {name} | {} |", cell(&description(def)));
        }
    }
    out
}

/// The object definition a property refers to, when it is a nested section.
fn object_def<'a>(property: &'a Value, defs: &'a Map<String, Value>) -> Option<&'a Value> {
    let def = resolve(property, defs)?;
    def.get("properties").map(|_| def)
}

fn resolve<'a>(schema: &'a Value, defs: &'a Map<String, Value>) -> Option<&'a Value> {
    let name = schema.get("$ref")?.as_str()?.strip_prefix("#/$defs/")?;
    defs.get(name)
}

fn rows(out: &mut String, path: &str, def: &Value, defs: &Map<String, Value>) {
    let Some(properties) = def["properties"].as_object() else {
        return;
    };
    for (name, property) in properties {
        let child = format!("{path}.{name}");
        match object_def(property, defs) {
            Some(nested) => rows(out, &child, nested, defs),
            None => row(out, &child, property, defs),
        }
    }
}

fn row(out: &mut String, path: &str, property: &Value, defs: &Map<String, Value>) {
    let default = match property.get("default") {
        None => String::new(),
        Some(Value::Null) => "unset".to_owned(),
        Some(Value::Object(map)) if map.is_empty() => "`{}`".to_owned(),
        Some(Value::Array(items)) if items.is_empty() => "`[]`".to_owned(),
        Some(value) => format!("`{value}`"),
    };
    let _ = writeln!(
        out,
        "| `{path}` | {} | {} | {} |",
        type_name(property, defs),
        cell(&default),
        cell(&description(property))
    );
}

/// A short name for the type of `schema`.
fn type_name(schema: &Value, defs: &Map<String, Value>) -> String {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference.trim_start_matches("#/$defs/");
        return match defs.get(name) {
            Some(def) if def.get("oneOf").is_some() => type_name(def, defs),
            _ => name.to_owned(),
        };
    }
    if let Some(variants) = schema.get("oneOf").and_then(Value::as_array) {
        let names: Vec<String> = variants
            .iter()
            .filter_map(|v| {
                v.get("const")
                    .or_else(|| v.get("enum").and_then(|e| e.get(0)))
            })
            .map(|v| format!("`{}`", v.as_str().unwrap_or_default()))
            .collect();
        return format!("one of {}", names.join(", "));
    }
    if let Some(options) = schema.get("anyOf").and_then(Value::as_array) {
        let names: Vec<String> = options
            .iter()
            .filter(|o| o.get("type").and_then(Value::as_str) != Some("null"))
            .map(|o| type_name(o, defs))
            .collect();
        return format!("{} or unset", names.join(" or "));
    }
    match schema.get("type") {
        Some(Value::String(kind)) if kind == "array" => {
            format!("list of {}", type_name(&schema["items"], defs))
        }
        Some(Value::String(kind)) if kind == "object" => "map".to_owned(),
        Some(Value::String(kind)) if kind == "number" => "number".to_owned(),
        Some(Value::String(kind)) => kind.clone(),
        Some(Value::Array(kinds)) => kinds
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" or "),
        _ => "value".to_owned(),
    }
}

fn description(schema: &Value) -> String {
    schema["description"]
        .as_str()
        .unwrap_or_default()
        .replace('\n', " ")
}

/// Text safe inside a Markdown table cell: pipes escaped, and angle brackets outside code
/// spans escaped so that `<unit>` is not read as HTML.
fn cell(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_code = false;
    for c in text.chars() {
        match c {
            '`' => {
                in_code = !in_code;
                out.push(c);
            }
            '|' => out.push_str("\\|"),
            '<' if !in_code => out.push_str("&lt;"),
            '>' if !in_code => out.push_str("&gt;"),
            _ => out.push(c),
        }
    }
    out
}
