//! Loading a stack: figment layers, structural errors collected all at once, then semantic
//! validation, every diagnostic located in the layer its value came from.
//!
//! Layers, later ones winning: built-in defaults ← `stack.yaml` ← the overlay
//! `environments.<NAME>` of the same file (`--env NAME`) ← environment variables
//! `TASKMANAGER__<KEY>__<SUBKEY>` ← `--set key=value`.
//!
//! Serde stops at the first error, and a user fixing a file one error per run is a poor
//! experience. So the merged value is deserialized, the offending key is recorded and
//! replaced by its built-in default (or removed, where there is none), and deserialization
//! runs again, until it succeeds: every structural error (unknown
//! key, wrong type, malformed value) is reported in one run. All unknown keys of one mapping
//! are found in one pass (the error names the keys the mapping accepts).
//!
//! Loading is bounded in time and memory for any input: the limits are the associated
//! constants of [`Loader`] (file size, values of variables and `--set`, nesting depth, key
//! length, values in the file, list length, what aliases copy, environments, errors
//! reported). The file's are checked while it is parsed, event by event, so nothing past a
//! limit is built; every limit reached is an error that names the rule and the limit, located
//! in the file. The retries above stop after `MAX_ERRORS` errors or a fixed amount of work,
//! whichever comes first. What does not depend on the other layers (parsing, unknown keys,
//! the environments) is done once per file: see `file`.
//!
//! The parts: `layers` builds the layers and traces a value back to where it was written,
//! `extract` deserializes the merged layers while collecting every structural error, and
//! `file` reads and parses the stack file. This file is one concept, the loader: its
//! documented limits and the order of its steps.

mod extract;
mod file;
mod layers;

use std::path::PathBuf;
use std::sync::Arc;

use figment::Figment;
use figment::providers::Serialized;
use figment::value::{Dict, Value};

use crate::diagnostic::{Diagnostic, Origin, Report};
use crate::model::Stack;
use crate::source::more_errors;
use crate::topology::Topology;
use crate::validate::validate;
use extract::{Extracted, extract};
use layers::{Layer, LayerSource, Layers, env_layer, overlay, set_layer};

/// Prefix of the environment variables that override settings.
///
/// The double underscore keeps Kubernetes' automatic Service variables out: a Service named
/// `taskmanager-server` injects `TASKMANAGER_SERVER_PORT`, which must not read as a setting.
pub const ENV_PREFIX: &str = "TASKMANAGER__";

/// Separator of key path segments in environment variable names.
pub const ENV_SEPARATOR: &str = "__";

/// What to load, and from where.
#[derive(Clone, Default)]
pub struct Loader {
    file: Option<PathBuf>,
    environment: Option<String>,
    vars: Vec<(String, String)>,
    sets: Vec<String>,
    rules: Vec<Rule>,
}

/// A check that a consumer adds to validation (`stackctl` adds the templates' version lines):
/// it runs on a stack that compiled, and returns errors with key paths, which the loader
/// locates like its own.
pub type Rule = std::sync::Arc<dyn Fn(&Stack, &Topology) -> Vec<Diagnostic> + Send + Sync>;

/// Names the sources, never their values: a variable or `--set` may carry a password.
impl std::fmt::Debug for Loader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = |items: Vec<&str>| items.join(", ");
        f.debug_struct("Loader")
            .field("file", &self.file)
            .field("environment", &self.environment)
            .field(
                "vars",
                &names(self.vars.iter().map(|(name, _)| name.as_str()).collect()),
            )
            .field(
                "sets",
                &names(
                    self.sets
                        .iter()
                        .map(|set| set.split_once('=').map_or(set.as_str(), |(key, _)| key))
                        .collect(),
                ),
            )
            .finish()
    }
}

/// A loaded, valid stack, and the warnings found on the way.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The stack.
    pub stack: Stack,
    /// Its compiled deployment.
    pub topology: Topology,
    /// Warnings (a loaded stack has no errors).
    pub warnings: Vec<Diagnostic>,
}

/// Limits that keep loading bounded for any input. Each is far above what a real stack needs
/// (the shipped `stack.yaml` is 8.5 KiB, nests 6 levels, holds about 540 values and two
/// environments).
impl Loader {
    /// Largest stack file, in bytes: 1 MiB, over a hundred times the shipped `stack.yaml`.
    /// Only this much (and one byte) is ever read.
    pub const MAX_FILE_BYTES: usize = 1 << 20;
    /// Largest value of one `TASKMANAGER__*` variable or `--set` argument, in bytes (64 KiB).
    pub const MAX_VALUE_BYTES: usize = 64 << 10;
    /// Deepest nesting of mappings and lists in the file, and most segments in the key path
    /// of a variable or a `--set`.
    pub const MAX_DEPTH: usize = 64;
    /// Longest key, in characters: the limit YAML itself sets on implicit keys, for the
    /// explicit ones (`? key`) and for each segment of a variable's or `--set`'s key path.
    pub const MAX_KEY_CHARS: usize = 1024;
    /// Most values in the file: keys, scalars, lists and mappings, counting what aliases copy.
    pub const MAX_NODES: usize = 50_000;
    /// Most items in one list (the longest list of a stack, `images.pull_secrets`, holds a
    /// few). Every load deserializes the lists again, so this keeps a check of every
    /// environment fast.
    pub const MAX_ITEMS: usize = 1_000;
    /// Most values that anchors keep and aliases copy, in all: a billion-laughs file stops
    /// here.
    pub const MAX_ALIAS_NODES: usize = 10_000;
    /// Most bytes of text (keys and scalars) that anchors keep and aliases copy, in all.
    pub const MAX_ALIAS_BYTES: usize = 1 << 20;
    /// Most environments under `environments` (`stackctl check` loads each one).
    pub const MAX_ENVIRONMENTS: usize = 100;
    /// Most errors reported by one load; past it they are counted, and the report says how
    /// many more there were.
    pub const MAX_ERRORS: usize = 100;
}

impl Loader {
    /// A loader with no file: built-in defaults, then variables and `--set`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads the stack from `path`.
    pub fn file(mut self, path: impl Into<PathBuf>) -> Self {
        self.file = Some(path.into());
        self
    }

    /// Merges the overlay `environments.<name>` of the file.
    pub fn environment(mut self, name: Option<impl Into<String>>) -> Self {
        self.environment = name.map(Into::into);
        self
    }

    /// Takes overrides from these environment variables; only those named
    /// `TASKMANAGER__...` are used. Pass `std::env::vars()` in programs; tests pass their own.
    pub fn env_vars(mut self, vars: impl IntoIterator<Item = (String, String)>) -> Self {
        self.vars = vars
            .into_iter()
            .filter(|(name, _)| name.starts_with(ENV_PREFIX))
            .collect();
        self.vars.sort();
        self
    }

    /// Takes overrides from this process' environment (variables that are not valid
    /// Unicode are skipped: they cannot be settings).
    pub fn process_env(self) -> Self {
        self.env_vars(std::env::vars_os().filter_map(|(name, value)| {
            Some((name.into_string().ok()?, value.into_string().ok()?))
        }))
    }

    /// Adds `key=value` overrides, applied last, in order.
    pub fn sets(mut self, sets: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.sets.extend(sets.into_iter().map(Into::into));
        self
    }

    /// The environments the file defines (empty without a file, when it cannot be read or
    /// parsed, or when it defines more than `MAX_ENVIRONMENTS`).
    pub fn environments(&self) -> Vec<String> {
        let Some(path) = &self.file else {
            return Vec::new();
        };
        let Ok(file) = file::read(path) else {
            return Vec::new();
        };
        match file
            .source
            .dict
            .get("environments")
            .and_then(Value::as_dict)
        {
            // Too many is an error of the base file; `load` reports it.
            Some(environments) if environments.len() <= Self::MAX_ENVIRONMENTS => {
                environments.keys().cloned().collect()
            }
            _ => Vec::new(),
        }
    }

    /// Adds a check that runs after validation and compilation, on every load.
    pub fn rule(
        mut self,
        rule: impl Fn(&Stack, &Topology) -> Vec<Diagnostic> + Send + Sync + 'static,
    ) -> Self {
        self.rules.push(std::sync::Arc::new(rule));
        self
    }

    /// Loads and validates the stack. On failure, the report holds every error found.
    pub fn load(&self) -> Result<Loaded, Report> {
        let mut layers = Layers::default();
        let mut errors = Vec::new();
        let mut hidden = Hidden::default();
        let mut pruned = Vec::new();

        let file = match &self.file {
            Some(path) => match file::read(path) {
                Ok(file) => Some(file),
                Err(diagnostics) => return Err(report(diagnostics)),
            },
            None => None,
        };
        let source = file.as_ref().map(|file| &file.source);
        if let Some(diagnostic) = source.and_then(|source| file::too_many_environments(source)) {
            errors.push(diagnostic);
        }
        let (env_layer, env_errors) = env_layer(&self.vars);
        errors.extend(env_errors);
        let (set_layer, set_errors) = set_layer(&self.sets);
        errors.extend(set_errors);
        // Variables and `--set` may (oddly) write environments: then the file's go through
        // the merge as well, and the shared ones are not used.
        let own_environments = env_layer.dict.contains_key("environments")
            || set_layer.dict.contains_key("environments");

        let mut figment = Figment::from(Serialized::defaults(Stack::default()));
        let shared = file.as_ref().map(|file| file.shared());
        if let (Some(source), Some(shared)) = (source, shared) {
            let mut dict = shared.dict.clone();
            if let Some(environments) = source.dict.get("environments")
                && own_environments
            {
                dict.insert("environments".to_owned(), environments.clone());
            }
            errors.extend(shared.diagnostics.iter().cloned());
            hidden.add(shared.hidden.clone());
            pruned.extend(shared.pruned.iter().cloned());
            figment = figment.merge(layers.add(Layer {
                name: source.name.clone(),
                dict,
                source: LayerSource::File {
                    file: Arc::clone(source),
                    prefix: String::new(),
                },
            }));
        }
        if let Some(environment) = &self.environment {
            match overlay(source, environment) {
                Ok(layer) => figment = figment.merge(layers.add(layer)),
                Err(diagnostic) => errors.push(*diagnostic),
            }
        }
        figment = figment.merge(layers.add(env_layer));
        figment = figment.merge(layers.add(set_layer));

        let merged = match figment.find_value("") {
            Ok(Value::Dict(_, dict)) => dict,
            Ok(_) => Dict::new(),
            Err(error) => {
                return Err(report(vec![Diagnostic::error(
                    "",
                    "load",
                    error.to_string(),
                )]));
            }
        };

        layers.merged = merged.clone();
        let extracted = extract(merged, &figment, &layers);
        let mut stack = extracted.stack;
        if let (Some(stack), Some(shared), false) = (&mut stack, shared, own_environments) {
            stack.environments = shared.environments.environments.clone();
        }
        pruned.extend(extracted.pruned);
        hidden.add(extracted.hidden);
        errors.extend(extracted.diagnostics);
        let mut diagnostics = errors;
        let mut topology = None;
        if let Some(stack) = &stack {
            let compiled = match Topology::compile(stack) {
                Ok(compiled) => {
                    let added = self.rules.iter().flat_map(|rule| rule(stack, &compiled));
                    let added: Vec<Diagnostic> = added.collect();
                    topology = Some(compiled);
                    added
                }
                Err(errors) => errors,
            };
            for diagnostic in validate(stack).into_iter().chain(compiled) {
                if pruned.iter().any(|path| overlaps(path, &diagnostic.path)) {
                    continue;
                }
                let origin = layers.locate(&figment, &diagnostic);
                diagnostics.push(diagnostic.with_origin(origin));
            }
        }
        diagnostics.sort();
        diagnostics.dedup();
        let diagnostics = limit_errors(diagnostics, hidden);

        match (stack, topology) {
            (Some(stack), Some(topology)) if diagnostics.iter().all(|d| !d.is_error()) => {
                Ok(Loaded {
                    stack,
                    topology,
                    warnings: diagnostics,
                })
            }
            _ => Err(report(diagnostics)),
        }
    }
}

fn report(mut diagnostics: Vec<Diagnostic>) -> Report {
    diagnostics.sort();
    Report { diagnostics }
}

/// Keeps the first `Loader::MAX_ERRORS` of sorted `diagnostics` and says how many more there
/// were (`hidden` were never built).
fn limit_errors(diagnostics: Vec<Diagnostic>, mut hidden: Hidden) -> Vec<Diagnostic> {
    // The notes that checking stopped early come last, whatever else is left out.
    let (notes, mut diagnostics): (Vec<_>, Vec<_>) = diagnostics
        .into_iter()
        .partition(|d| d.rule == "error-limit");
    if diagnostics.len() > Loader::MAX_ERRORS {
        for dropped in diagnostics.split_off(Loader::MAX_ERRORS) {
            hidden.add(Hidden {
                count: 1,
                first: Some(dropped.origin),
            });
        }
    }
    if hidden.count > 0 {
        let origin = hidden.first.unwrap_or(Origin::Default);
        diagnostics.push(more_errors(hidden.count).with_origin(origin));
    }
    diagnostics.extend(notes);
    diagnostics
}

/// Errors counted but not reported.
#[derive(Clone, Default)]
struct Hidden {
    count: usize,
    /// Where the first of them (in file order) stands.
    first: Option<Origin>,
}

impl Hidden {
    fn add(&mut self, other: Hidden) {
        self.count += other.count;
        self.first = match (self.first.take(), other.first) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
}

/// True when one path is the other or lies below it.
fn overlaps(a: &str, b: &str) -> bool {
    let below = |long: &str, short: &str| {
        long == short || (long.starts_with(short) && long[short.len()..].starts_with('.'))
    };
    below(a, b) || below(b, a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_names_sources_without_values() {
        let loader = Loader::new()
            .sets(["redis.auth.password=hunter2"])
            .env_vars([(
                "TASKMANAGER__REDIS__AUTH__PASSWORD".to_owned(),
                "hunter3".to_owned(),
            )]);
        let shown = format!("{loader:?}");
        assert!(shown.contains("redis.auth.password"), "{shown}");
        assert!(
            shown.contains("TASKMANAGER__REDIS__AUTH__PASSWORD"),
            "{shown}"
        );
        assert!(!shown.contains("hunter"), "{shown}");
    }

    #[test]
    fn keeps_the_first_errors_and_counts_the_rest() {
        let error = |line| {
            Diagnostic::error("", "r", "m").with_origin(Origin::File {
                file: "f".into(),
                line,
                column: 1,
                snippet: String::new(),
                width: 1,
            })
        };
        let diagnostics = (1..=Loader::MAX_ERRORS + 5).map(error).collect();
        let limited = limit_errors(diagnostics, Hidden::default());
        assert_eq!(limited.len(), Loader::MAX_ERRORS + 1);
        let note = &limited[Loader::MAX_ERRORS];
        assert_eq!(note.rule, "error-limit");
        assert!(note.message.starts_with("5 more errors not shown"));
        assert_eq!(note.origin, error(Loader::MAX_ERRORS + 1).origin);
    }

    #[test]
    fn overlapping_paths() {
        assert!(overlaps("server", "server.port"));
        assert!(overlaps("server.port", "server.port"));
        assert!(!overlaps("server.port", "server.portal"));
    }
}
