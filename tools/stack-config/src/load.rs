//! Loading a stack: figment layers, structural errors collected all at once, then semantic
//! validation, every diagnostic located in the layer its value came from.
//!
//! Layers, later ones winning: built-in defaults ← `stack.yaml` ← the overlay
//! `environments.<NAME>` of the same file (`--env NAME`) ← environment variables
//! `TASKMANAGER__<KEY>__<SUBKEY>` ← `--set key=value`.
//!
//! Serde stops at the first error, and a user fixing a file one error per run is a poor
//! experience. So the merged value is deserialized, the offending key is recorded and
//! removed, and deserialization runs again, until it succeeds: every structural error (unknown
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

mod file;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use figment::providers::Serialized;
use figment::value::{Dict, Tag, Value};
use figment::{Figment, Metadata, Profile, Provider};

use crate::diagnostic::{Diagnostic, Origin, Report, suggest};
use crate::model::Stack;
use crate::source::{SourceFile, join, more_errors};
use crate::topology::Topology;
use crate::validate::validate;

/// Prefix of the environment variables that override settings.
///
/// The double underscore keeps Kubernetes' automatic Service variables out: a Service named
/// `taskmanager-server` injects `TASKMANAGER_SERVER_PORT`, which must not read as a setting.
pub const ENV_PREFIX: &str = "TASKMANAGER__";

/// Separator of key path segments in environment variable names.
pub const ENV_SEPARATOR: &str = "__";

/// Values deserialized in all while collecting structural errors, counting one full pass
/// over the merged settings per error: about a tenth of a second. A real stack (a few hundred
/// values) gets all `Loader::MAX_ERRORS` passes; a huge file gets fewer.
const EXTRACT_WORK: usize = 2_000_000;

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

/// The layer for `--env NAME`: the file's `environments.NAME` mapping.
fn overlay(file: Option<&Arc<SourceFile>>, environment: &str) -> Result<Layer, Box<Diagnostic>> {
    let argument = || Origin::Argument {
        arg: format!("--env {environment}"),
    };
    let environments = file
        .and_then(|file| file.dict.get("environments"))
        .and_then(Value::as_dict);
    let Some((file, dict)) = file.zip(environments.and_then(|envs| envs.get(environment))) else {
        let known: Vec<&str> = environments
            .map(|envs| envs.keys().map(String::as_str).collect())
            .unwrap_or_default();
        let mut diagnostic = Diagnostic::error(
            format!("environments.{environment}"),
            "unknown-environment",
            format!("environment `{environment}` is not defined under `environments`"),
        )
        .with_origin(argument());
        diagnostic.help = Some(match suggest(environment, &known) {
            Some(close) => format!("did you mean `{close}`?"),
            None if known.is_empty() => "the file defines no environments".to_owned(),
            None => format!("defined environments: {}", known.join(", ")),
        });
        return Err(Box::new(diagnostic));
    };
    let prefix = format!("environments.{environment}");
    let dict = match dict {
        Value::Dict(_, dict) => dict.clone(),
        Value::Empty(..) => Dict::new(),
        _ => {
            let origin = file.origin(&prefix, false).unwrap_or_else(argument);
            return Err(Box::new(
                Diagnostic::error(
                    prefix,
                    "type",
                    "an environment must be a mapping of settings",
                )
                .with_origin(origin),
            ));
        }
    };
    if dict.contains_key("environments") {
        let path = join(&prefix, "environments");
        let origin = file.origin(&path, true).unwrap_or_else(argument);
        return Err(Box::new(
            Diagnostic::error(
                path,
                "nested-environment",
                "an environment cannot define environments of its own",
            )
            .with_origin(origin),
        ));
    }
    Ok(Layer {
        name: format!("{}#{prefix}", file.name),
        dict,
        source: LayerSource::File {
            file: Arc::clone(file),
            prefix,
        },
    })
}

/// The layer of `TASKMANAGER__A__B=value` variables. Values stay text; see `source`.
fn env_layer(vars: &[(String, String)]) -> (Layer, Vec<Diagnostic>) {
    let mut dict = Dict::new();
    let mut names = BTreeMap::new();
    let mut errors = Vec::new();
    for (name, value) in vars {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if let Some(error) = oversized(value, rest.split(ENV_SEPARATOR)) {
            errors.push(error.with_origin(Origin::Env { var: shorten(name) }));
            continue;
        }
        let segments: Vec<String> = rest.split(ENV_SEPARATOR).map(str::to_lowercase).collect();
        if segments.iter().any(String::is_empty) {
            errors.push(
                Diagnostic::error(rest.to_lowercase(), "env-name", "the variable names no key")
                    .with_origin(Origin::Env { var: name.clone() })
                    .with_help(format!(
                        "name settings as {ENV_PREFIX}SECTION{ENV_SEPARATOR}KEY, for example \
                         {ENV_PREFIX}SERVER{ENV_SEPARATOR}PORT"
                    )),
            );
            continue;
        }
        let path = segments.join(".");
        insert(&mut dict, &segments, Value::from(value.clone()));
        names.insert(path, name.clone());
    }
    let layer = Layer {
        name: "environment variables".to_owned(),
        dict,
        source: LayerSource::Named {
            names,
            origin: |var| Origin::Env { var },
        },
    };
    (layer, errors)
}

/// The layer of `--set key=value` arguments. Values stay text; see `source`.
fn set_layer(sets: &[String]) -> (Layer, Vec<Diagnostic>) {
    let mut dict = Dict::new();
    let mut names = BTreeMap::new();
    let mut errors = Vec::new();
    for arg in sets {
        let Some((key, value)) = arg.split_once('=') else {
            errors.push(
                Diagnostic::error("", "set-syntax", "expected key=value")
                    .with_origin(Origin::Set { arg: shorten(arg) })
                    .with_help("for example --set server.port=50052"),
            );
            continue;
        };
        if let Some(error) = oversized(value, key.split('.')) {
            errors.push(error.with_origin(Origin::Set { arg: shorten(arg) }));
            continue;
        }
        let segments: Vec<String> = key.trim().split('.').map(str::to_owned).collect();
        if segments.iter().any(String::is_empty) {
            errors.push(
                Diagnostic::error(key, "set-syntax", "the key has an empty segment")
                    .with_origin(Origin::Set { arg: arg.clone() }),
            );
            continue;
        }
        insert(&mut dict, &segments, Value::from(value.to_owned()));
        names.insert(segments.join("."), arg.clone());
    }
    let layer = Layer {
        name: "--set".to_owned(),
        dict,
        source: LayerSource::Named {
            names,
            origin: |arg| Origin::Set { arg },
        },
    };
    (layer, errors)
}

/// The error for a variable or `--set` whose value or key path is past the limits.
fn oversized<'a>(value: &str, segments: impl Iterator<Item = &'a str>) -> Option<Diagnostic> {
    if value.len() > Loader::MAX_VALUE_BYTES {
        return Some(Diagnostic::error(
            "",
            "value-size",
            format!(
                "the value holds {} bytes; a setting may hold at most {} bytes (64 KiB)",
                value.len(),
                Loader::MAX_VALUE_BYTES
            ),
        ));
    }
    let mut count = 0;
    for segment in segments {
        count += 1;
        if segment.chars().count() > Loader::MAX_KEY_CHARS {
            return Some(Diagnostic::error(
                "",
                "key-size",
                format!(
                    "a key in the key path is longer than {} characters",
                    Loader::MAX_KEY_CHARS
                ),
            ));
        }
    }
    if count > Loader::MAX_DEPTH {
        return Some(Diagnostic::error(
            "",
            "nesting-depth",
            format!(
                "the key path has {count} segments; a key path may have at most {}",
                Loader::MAX_DEPTH
            ),
        ));
    }
    None
}

/// `text`, cut to 100 characters, to name a huge argument or variable in a message.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(100) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Sets `value` at `path` in `dict`, creating (or replacing scalars by) mappings on the way.
fn insert(dict: &mut Dict, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut current = dict;
    for segment in parents {
        let entry = current
            .entry(segment.clone())
            .or_insert_with(|| Value::Dict(Tag::Default, Dict::new()));
        if entry.as_dict().is_none() {
            *entry = Value::Dict(Tag::Default, Dict::new());
        }
        let Value::Dict(_, next) = entry else { return };
        current = next;
    }
    current.insert(last.clone(), value);
}

/// What `extract` found.
struct Extracted {
    /// The stack, built from what was left once the offending keys were removed.
    stack: Option<Stack>,
    diagnostics: Vec<Diagnostic>,
    /// The removed paths, as written.
    pruned: Vec<String>,
    /// Errors found but not built, past `Loader::MAX_ERRORS`.
    hidden: Hidden,
    /// The removed keys that the model does not know, as written.
    unknown: Vec<Vec<String>>,
}

/// Deserializes the merged value into a `Stack`, collecting every structural error: one pass
/// per error (all the unknown keys of a mapping count as one), within `Loader::MAX_ERRORS`
/// errors and `EXTRACT_WORK`.
fn extract(mut merged: Dict, figment: &Figment, layers: &Layers) -> Extracted {
    use figment::error::Kind;

    let mut out = Extracted {
        stack: None,
        diagnostics: Vec::new(),
        pruned: Vec::new(),
        hidden: Hidden::default(),
        unknown: Vec::new(),
    };
    let mut passes = (EXTRACT_WORK / count_values(&merged).max(1)).clamp(1, Loader::MAX_ERRORS);
    let mut removed = RemovedItems::default();
    let defaults = match Figment::from(Serialized::defaults(Stack::default())).find_value("") {
        Ok(Value::Dict(_, dict)) => dict,
        _ => Dict::new(),
    };
    loop {
        let attempt = Figment::from(Merged(merged.clone())).extract_lossy::<Stack>();
        let error = match attempt {
            Ok(stack) => {
                out.stack = Some(stack);
                return out;
            }
            Err(error) => error,
        };
        if passes == 0 || out.diagnostics.len() >= Loader::MAX_ERRORS {
            let path = removed.as_written(&error.path).join(".");
            let origin = layers.origin_of(figment, &path, false);
            out.diagnostics
                .push(stopped(out.diagnostics.len()).with_origin(origin));
            return out;
        }
        passes -= 1;
        let mut progressed = false;
        for error in error {
            if let (Kind::UnknownField(_, expected), Some((_, current))) =
                (&error.kind, error.path.split_last())
            {
                let parent = removed.as_written(current);
                if let Some(keys) = dict_at(&mut merged, current).map(|dict| {
                    let unknown: Vec<String> = dict
                        .keys()
                        .filter(|key| !expected.contains(&key.as_str()))
                        .cloned()
                        .collect();
                    for key in &unknown {
                        dict.remove(key);
                    }
                    unknown
                }) {
                    progressed |= !keys.is_empty();
                    for key in keys {
                        let path = join(&parent.join("."), &key);
                        if out.diagnostics.len() < Loader::MAX_ERRORS {
                            let origin = layers.origin_of(figment, &path, true);
                            let kind = Kind::UnknownField(key.clone(), expected);
                            out.diagnostics
                                .push(structural_diagnostic(&path, &kind).with_origin(origin));
                        } else {
                            let first = out.hidden.first.is_none();
                            out.hidden.add(Hidden {
                                count: 1,
                                first: first.then(|| layers.origin_of(figment, &path, true)),
                            });
                        }
                        out.pruned.push(path);
                        out.unknown
                            .push(parent.iter().cloned().chain([key]).collect());
                    }
                    continue;
                }
            }
            let written = removed.as_written(&error.path);
            let path = written.join(".");
            let at_key = matches!(error.kind, Kind::UnknownField(..));
            let origin = layers.origin_of(figment, &path, at_key);
            out.diagnostics
                .push(structural_diagnostic(&path, &error.kind).with_origin(origin));
            // The built-in default takes the refused value's place, where there is one: a
            // part that must be whole (a Secret reference's name and key) stays whole, and
            // its other errors are still found.
            if !path.is_empty()
                && (restore(&mut merged, &defaults, &error.path)
                    || remove(&mut merged, &error.path))
            {
                removed.record(&error.path, &written);
                out.pruned.push(path);
                progressed = true;
            }
        }
        if !progressed {
            return out;
        }
    }
}

/// The note that checking stopped, at the first error it did not describe.
fn stopped(reported: usize) -> Diagnostic {
    Diagnostic::error(
        "",
        "error-limit",
        format!(
            "there are more errors from here on: checking stopped after {reported} (at most {} \
             are reported, fewer from a very large file)",
            Loader::MAX_ERRORS
        ),
    )
    .with_help("fix the errors above and check again")
}

/// Values in `dict`, nested ones included.
fn count_values(dict: &Dict) -> usize {
    fn count(value: &Value) -> usize {
        match value {
            Value::Dict(_, dict) => 1 + count_values(dict),
            Value::Array(_, items) => 1 + items.iter().map(count).sum::<usize>(),
            _ => 1,
        }
    }
    dict.values().map(count).sum::<usize>() + dict.len()
}

/// The mapping at `path` in `dict` (`dict` itself for an empty path).
fn dict_at<'a>(dict: &'a mut Dict, path: &[String]) -> Option<&'a mut Dict> {
    let Some((first, rest)) = path.split_first() else {
        return Some(dict);
    };
    let mut value = dict.get_mut(first)?;
    for segment in rest {
        value = match value {
            Value::Dict(_, dict) => dict.get_mut(segment)?,
            Value::Array(_, items) => items.get_mut(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    match value {
        Value::Dict(_, dict) => Some(dict),
        _ => None,
    }
}

/// Items removed from lists, so that a later error in the same list names the item as
/// written: after `list.0` is removed, what deserializes as `list.0` was written as `list.1`.
#[derive(Default)]
struct RemovedItems {
    /// Indices as written, sorted, by the path of the list as written.
    by_list: BTreeMap<String, Vec<usize>>,
}

impl RemovedItems {
    /// `path`, as deserialized, as written.
    fn as_written(&self, path: &[String]) -> Vec<String> {
        let mut written: Vec<String> = Vec::with_capacity(path.len());
        for segment in path {
            let index = segment.parse::<usize>().ok();
            let removed = index.and(self.by_list.get(&written.join(".")));
            written.push(match (index, removed) {
                (Some(mut index), Some(removed)) => {
                    for &gone in removed {
                        if gone <= index {
                            index += 1;
                        }
                    }
                    index.to_string()
                }
                _ => segment.clone(),
            });
        }
        written
    }

    /// Records that the item at `path` (as deserialized; `written` as written) was removed.
    fn record(&mut self, path: &[String], written: &[String]) {
        let (Some((index, list)), Some(_)) = (
            written.split_last(),
            path.last().and_then(|i| i.parse::<usize>().ok()),
        ) else {
            return;
        };
        let Ok(index) = index.parse::<usize>() else {
            return;
        };
        let removed = self.by_list.entry(list.join(".")).or_default();
        let at = removed.partition_point(|&gone| gone < index);
        removed.insert(at, index);
    }
}

/// Removes the value at `path`; true when something was removed.
/// Puts the value of `defaults` at `path` in place of `dict`'s, through mappings only;
/// false when either has no value there, or they are the same.
fn restore(dict: &mut Dict, defaults: &Dict, path: &[String]) -> bool {
    match path {
        [] => false,
        [last] => match (dict.get_mut(last), defaults.get(last)) {
            (Some(value), Some(default)) if value != default => {
                *value = default.clone();
                true
            }
            _ => false,
        },
        [first, rest @ ..] => match (dict.get_mut(first), defaults.get(first)) {
            (Some(Value::Dict(_, child)), Some(Value::Dict(_, default))) => {
                restore(child, default, rest)
            }
            _ => false,
        },
    }
}

fn remove(dict: &mut Dict, path: &[String]) -> bool {
    match path {
        [] => false,
        [last] => dict.remove(last).is_some(),
        [first, rest @ ..] => match dict.get_mut(first) {
            Some(Value::Dict(_, child)) => remove(child, rest),
            Some(Value::Array(_, items)) => match rest {
                [index] => match index.parse::<usize>() {
                    Ok(index) if index < items.len() => {
                        items.remove(index);
                        true
                    }
                    _ => false,
                },
                _ => dict.remove(first).is_some(),
            },
            Some(_) => dict.remove(first).is_some(),
            None => false,
        },
    }
}

/// The tag of the value at the dotted `path` in `dict`, found as `figment::value::Value::find`
/// finds it (through mappings only).
fn tag_at(dict: &Dict, path: &str) -> Option<Tag> {
    let mut value: Option<&Value> = None;
    for segment in path.split('.') {
        if segment.is_empty() {
            break;
        }
        let dict = match value {
            None => dict,
            Some(Value::Dict(_, dict)) => dict,
            Some(_) => return None,
        };
        value = Some(dict.get(segment)?);
    }
    value.map(Value::tag)
}

/// True when one path is the other or lies below it.
fn overlaps(a: &str, b: &str) -> bool {
    let below = |long: &str, short: &str| {
        long == short || (long.starts_with(short) && long[short.len()..].starts_with('.'))
    };
    below(a, b) || below(b, a)
}

/// Turns a deserialization error into a diagnostic with a readable message.
fn structural_diagnostic(path: &str, kind: &figment::error::Kind) -> Diagnostic {
    use figment::error::Kind;
    match kind {
        Kind::UnknownField(field, expected) => {
            let diagnostic = Diagnostic::error(
                path,
                "unknown-key",
                format!("unknown key `{}`", shorten(field)),
            );
            // No key of the model is long: spare the edit distances of a huge key.
            let suggestion = match field.len() <= 64 {
                true => suggest(field, expected),
                false => None,
            };
            match suggestion {
                Some(close) => diagnostic.with_help(format!("did you mean `{close}`?")),
                None if expected.is_empty() => diagnostic,
                None => diagnostic.with_help(format!("expected one of: {}", expected.join(", "))),
            }
        }
        Kind::InvalidType(actual, expected) => Diagnostic::error(
            path,
            "type",
            format!("expected {}, found {actual}", readable_type(expected)),
        ),
        Kind::InvalidValue(actual, expected) => Diagnostic::error(
            path,
            "invalid-value",
            format!(
                "{actual} is out of range: expected {}",
                readable_type(expected)
            ),
        ),
        Kind::UnknownVariant(variant, expected) => Diagnostic::error(
            path,
            "unknown-variant",
            format!(
                "unknown value `{variant}`: expected one of {}",
                quoted(expected)
            ),
        ),
        Kind::Message(message) => crate::types::refusal::decode(path, message),
        other => Diagnostic::error(path, "invalid-value", other.to_string()),
    }
}

fn quoted(values: &[&str]) -> String {
    values
        .iter()
        .map(|v| format!("`{v}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Serde's type names as a person would say them.
fn readable_type(expected: &str) -> String {
    match expected {
        "u8" => "an integer from 0 to 255".into(),
        "u16" => "an integer from 0 to 65535".into(),
        "u32" => "a whole number from 0 to 4294967295".into(),
        "u64" => "a whole number".into(),
        "f64" | "f32" => "a number".into(),
        "a boolean" => "true or false".into(),
        other => other.to_owned(),
    }
}

/// A provider of an already-merged value, keeping the tags of its values.
struct Merged(Dict);

impl Provider for Merged {
    fn metadata(&self) -> Metadata {
        Metadata::named("merged")
    }

    fn data(&self) -> figment::Result<figment::value::Map<Profile, Dict>> {
        Ok(Profile::Default.collect(self.0.clone()))
    }
}

/// One layer of settings.
#[derive(Clone)]
struct Layer {
    name: String,
    dict: Dict,
    source: LayerSource,
}

#[derive(Clone)]
enum LayerSource {
    /// A YAML file; paths in the layer are below `prefix` in the file.
    File {
        file: Arc<SourceFile>,
        prefix: String,
    },
    /// Variables or arguments, by the key path each sets.
    Named {
        names: BTreeMap<String, String>,
        origin: fn(String) -> Origin,
    },
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.name.clone())
    }

    fn data(&self) -> figment::Result<figment::value::Map<Profile, Dict>> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}

/// The layers of one load, in order of precedence (lowest first), to trace a value back to
/// where it was written.
#[derive(Default)]
struct Layers {
    sources: Vec<(String, LayerSource)>,
    /// The merged settings, before any error is removed: each value's tag names its layer.
    merged: Dict,
}

impl Layers {
    fn add(&mut self, layer: Layer) -> Layer {
        self.sources
            .push((layer.name.clone(), layer.source.clone()));
        layer
    }

    fn source(&self, name: &str) -> Option<&LayerSource> {
        self.sources
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, source)| source)
    }

    /// Where a semantic diagnostic points: its key if a layer wrote it, else the first
    /// related key a layer wrote, else the nearest written ancestor of its key.
    fn locate(&self, figment: &Figment, diagnostic: &Diagnostic) -> Origin {
        let written = |path: &str| match self.origin_of(figment, path, false) {
            Origin::Default => None,
            origin => Some(origin),
        };
        let ancestors = std::iter::successors(Some(diagnostic.path.as_str()), |path| {
            path.rsplit_once('.').map(|(parent, _)| parent)
        })
        .skip(1);
        std::iter::once(diagnostic.path.as_str())
            .chain(diagnostic.related.iter().map(String::as_str))
            .find_map(written)
            .or_else(|| {
                ancestors
                    .into_iter()
                    .find_map(|path| self.written_by_user(path))
            })
            .unwrap_or(Origin::Default)
    }

    /// The position of `path` in the highest layer that wrote exactly that key.
    fn written_by_user(&self, path: &str) -> Option<Origin> {
        self.sources
            .iter()
            .rev()
            .find_map(|(_, source)| match source {
                LayerSource::File { file, prefix } => file.origin_exact(&join(prefix, path)),
                LayerSource::Named { names, origin } => names.get(path).map(|n| origin(n.clone())),
            })
    }

    /// Where the value at `path` came from: the layer that set it (or the nearest enclosing
    /// value that a layer set), and the position within that layer.
    fn origin_of(&self, figment: &Figment, path: &str, at_key: bool) -> Origin {
        let mut candidate = path;
        let metadata = loop {
            // As `figment.find_metadata`, without merging all the layers again per call.
            if let Some(metadata) =
                tag_at(&self.merged, candidate).and_then(|tag| figment.get_metadata(tag))
            {
                break Some(metadata);
            }
            match candidate.rsplit_once('.') {
                Some((parent, _)) => candidate = parent,
                None => break None,
            }
        };
        let Some(source) = metadata.and_then(|m| self.source(m.name.as_ref())) else {
            return Origin::Default;
        };
        match source {
            LayerSource::File { file, prefix } => file
                .origin(&join(prefix, path), at_key)
                .unwrap_or(Origin::Default),
            LayerSource::Named { names, origin } => {
                let mut candidate = path;
                loop {
                    if let Some(name) = names.get(candidate) {
                        return origin(name.clone());
                    }
                    // A variable that sets a parent key, or a child of the path.
                    if let Some((_, name)) = names.iter().find(|(key, _)| overlaps(key, path)) {
                        return origin(name.clone());
                    }
                    match candidate.rsplit_once('.') {
                        Some((parent, _)) => candidate = parent,
                        None => return Origin::Default,
                    }
                }
            }
        }
    }
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
    fn removes_paths() {
        let mut dict = Dict::new();
        insert(&mut dict, &["a".into(), "b".into()], Value::from("x"));
        insert(&mut dict, &["a".into(), "c".into()], Value::from("y"));
        assert!(remove(&mut dict, &["a".into(), "b".into()]));
        assert!(!remove(&mut dict, &["a".into(), "b".into()]));
        assert!(dict["a"].as_dict().is_some_and(|a| a.contains_key("c")));
    }

    #[test]
    fn names_list_items_as_written_after_removals() {
        let path = |text: &str| text.split('.').map(str::to_owned).collect::<Vec<_>>();
        let mut removed = RemovedItems::default();
        // `l.0` removed; what deserializes as `l.0` was written as `l.1`.
        removed.record(&path("l.0"), &path("l.0"));
        assert_eq!(removed.as_written(&path("l.0")), path("l.1"));
        // Then `l.1` as deserialized, `l.2` as written.
        let written = removed.as_written(&path("l.1"));
        assert_eq!(written, path("l.2"));
        removed.record(&path("l.1"), &written);
        assert_eq!(removed.as_written(&path("l.0")), path("l.1"));
        assert_eq!(removed.as_written(&path("l.1")), path("l.3"));
        assert_eq!(removed.as_written(&path("other.0")), path("other.0"));
    }

    #[test]
    fn finds_tags_as_figment_does() {
        let mut dict = Dict::new();
        insert(&mut dict, &["a".into(), "b".into()], Value::from("x"));
        let tag = |path| tag_at(&dict, path);
        assert_eq!(tag("a.b"), Some(Tag::Default));
        assert_eq!(tag("a.c"), None);
        assert_eq!(tag("a.b.c"), None);
        assert_eq!(tag(""), None);
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
