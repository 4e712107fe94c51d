//! The JSON Schema of `stack.yaml`, generated from the model's types and doc comments.

use crate::model::Stack;

/// Where the schema is published, relative to the repository root.
pub const SCHEMA_PATH: &str = "docs/stack.schema.json";

/// The JSON Schema (draft 2020-12) of `stack.yaml`.
pub fn schema() -> serde_json::Value {
    let mut schema = schemars::generate::SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<Stack>();
    schema.insert(
        "$id".to_owned(),
        "https://taskmanager.invalid/stack.schema.json".into(),
    );
    schema.to_value()
}

/// The schema as pretty JSON with a trailing newline, as committed in `docs/`.
pub fn schema_json() -> String {
    let mut text = serde_json::to_string_pretty(&schema()).expect("a schema serializes");
    text.push('\n');
    text
}
