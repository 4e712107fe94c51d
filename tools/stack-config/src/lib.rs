//! The `stack.yaml` model shared by the server, the client and `stackctl`.
//!
//! - [`model`]: the typed settings, every field documented, unknown keys denied.
//! - [`Loader`]: figment layers (defaults ← file ← `--env` overlay ← `TASKMANAGER__*`
//!   variables ← `--set`), with every error reported at once, located by key path and, for
//!   values from a file, by line and column.
//! - [`schema`]: the JSON Schema generated from the same types.
//! - [`Topology`]: what a loaded stack deploys and how its parts reach each other, compiled
//!   once and read by the renderer, the cross-reference check, the server and the client.
//!
//! This crate does no rendering and no networking.

#[cfg(feature = "cli")]
pub mod cli;
pub mod diagnostic;
mod emit;
mod escape;
mod load;
pub mod model;
mod redact;
mod reference;
mod schema;
mod source;
pub mod topology;
pub mod types;
mod validate;

pub use diagnostic::{Diagnostic, Origin, Report, Severity};
pub use emit::{json_string, must_escape, scalar_text, to_yaml};
pub use escape::escape;
pub use load::{ENV_PREFIX, ENV_SEPARATOR, Loaded, Loader, Rule};
pub use model::Stack;
pub use reference::{REFERENCE_PATH, reference_markdown};
pub use schema::{SCHEMA_PATH, schema, schema_json};
pub use topology::{Component, Endpoint, NamedPort, Topology};
pub use validate::validate;

/// The resolved configuration as JSON, with the computed values under `derived`. Secrets are
/// redacted: `Secret` values, and in the environment overlays (which are not validated until
/// selected) every value whose key looks secret.
pub fn resolved(loaded: &Loaded) -> serde_json::Value {
    let mut value = serde_json::to_value(&loaded.stack).expect("a stack serializes");
    if let serde_json::Value::Object(map) = &mut value {
        map.insert("derived".to_owned(), loaded.topology.derived(&loaded.stack));
    }
    value
}

/// The value at a dotted `key` (`server.port`, `derived.images.server`,
/// `images.pull_secrets.0`) of the resolved configuration.
pub fn get<'a>(resolved: &'a serde_json::Value, key: &str) -> Option<&'a serde_json::Value> {
    key.split('.')
        .try_fold(resolved, |value, segment| match value {
            serde_json::Value::Object(map) => map.get(segment),
            serde_json::Value::Array(items) => items.get(segment.parse::<usize>().ok()?),
            _ => None,
        })
}
