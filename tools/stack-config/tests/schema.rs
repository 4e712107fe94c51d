//! The JSON Schema and the reference in docs/ are the ones the model generates.

use std::path::Path;

/// Compares `generated` with the published file (rewriting it first under `UPDATE_SCHEMA=1`).
fn assert_published(relative: &str, generated: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(relative);
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, generated).expect("write the generated file");
    }
    let published = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        published == generated,
        "{relative} is stale: run `UPDATE_SCHEMA=1 cargo test -p stack-config --test schema` \
         and commit it",
    );
}

#[test]
fn the_published_schema_is_current() {
    assert_published(stack_config::SCHEMA_PATH, &stack_config::schema_json());
}

#[test]
fn the_published_reference_is_current() {
    let reference = stack_config::reference_markdown();
    for key in [
        "`server.lease.duration`",
        "`redis.auth.password`",
        "`observability.logs.shipper`",
    ] {
        assert!(reference.contains(key), "the reference lists {key}");
    }
    assert_published(stack_config::REFERENCE_PATH, &reference);
}

#[test]
fn every_field_is_documented() {
    fn walk(value: &serde_json::Value, path: &str, missing: &mut Vec<String>) {
        let Some(object) = value.as_object() else {
            return;
        };
        if let Some(properties) = object.get("properties").and_then(|p| p.as_object()) {
            for (name, property) in properties {
                if property.get("description").is_none() {
                    missing.push(format!("{path}.{name}"));
                }
            }
        }
        for (key, child) in object {
            walk(child, &format!("{path}/{key}"), missing);
        }
    }
    let mut missing = Vec::new();
    walk(&stack_config::schema(), "#", &mut missing);
    assert_eq!(
        missing,
        Vec::<String>::new(),
        "fields without a doc comment"
    );
}
