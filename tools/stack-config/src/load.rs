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
//! key, wrong type, malformed value) is reported in one run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::providers::Serialized;
use figment::value::{Dict, Tag, Value};
use figment::{Figment, Metadata, Profile, Provider};

use crate::diagnostic::{Diagnostic, Origin, Report, suggest};
use crate::model::Stack;
use crate::source::{SourceFile, join};
use crate::validate::validate;

/// Prefix of the environment variables that override settings.
///
/// The double underscore keeps Kubernetes' automatic Service variables out: a Service named
/// `taskmanager-server` injects `TASKMANAGER_SERVER_PORT`, which must not read as a setting.
pub const ENV_PREFIX: &str = "TASKMANAGER__";

/// Separator of key path segments in environment variable names.
pub const ENV_SEPARATOR: &str = "__";

/// Most structural errors reported from one load; past this, the file is probably not a stack.
const MAX_STRUCTURAL_ERRORS: usize = 100;

/// What to load, and from where.
#[derive(Clone, Debug, Default)]
pub struct Loader {
    file: Option<PathBuf>,
    environment: Option<String>,
    vars: Vec<(String, String)>,
    sets: Vec<String>,
}

/// A loaded, valid stack, and the warnings found on the way.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The stack.
    pub stack: Stack,
    /// Warnings (a loaded stack has no errors).
    pub warnings: Vec<Diagnostic>,
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

    /// The environments the file defines (empty without a file or when it cannot be read).
    pub fn environments(&self) -> Vec<String> {
        let Some(path) = &self.file else {
            return Vec::new();
        };
        let Ok(text) = std::fs::read_to_string(path) else {
            return Vec::new();
        };
        let Ok(file) = SourceFile::parse(&path.display().to_string(), &text) else {
            return Vec::new();
        };
        match file.dict.get("environments").and_then(Value::as_dict) {
            Some(environments) => environments.keys().cloned().collect(),
            None => Vec::new(),
        }
    }

    /// Loads and validates the stack. On failure, the report holds every error found.
    pub fn load(&self) -> Result<Loaded, Report> {
        let mut layers = Layers::default();
        let mut errors = Vec::new();

        let file = match &self.file {
            Some(path) => match read_file(path) {
                Ok(file) => Some(file),
                Err(diagnostics) => return Err(report(diagnostics)),
            },
            None => None,
        };

        let mut figment = Figment::from(Serialized::defaults(Stack::default()));
        if let Some(file) = &file {
            figment = figment.merge(layers.add(Layer {
                name: file.name.clone(),
                dict: file.dict.clone(),
                source: LayerSource::File {
                    file: file.clone(),
                    prefix: String::new(),
                },
            }));
        }
        if let Some(environment) = &self.environment {
            match overlay(file.as_ref(), environment) {
                Ok(layer) => figment = figment.merge(layers.add(layer)),
                Err(diagnostic) => errors.push(*diagnostic),
            }
        }
        let (env_layer, env_errors) = env_layer(&self.vars);
        errors.extend(env_errors);
        figment = figment.merge(layers.add(env_layer));
        let (set_layer, set_errors) = set_layer(&self.sets);
        errors.extend(set_errors);
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

        let (stack, structural, pruned) = extract(merged, &figment, &layers);
        errors.extend(structural);
        let mut diagnostics = errors;
        if let Some(stack) = &stack {
            for diagnostic in validate(stack) {
                if pruned.iter().any(|path| overlaps(path, &diagnostic.path)) {
                    continue;
                }
                let origin = layers.locate(&figment, &diagnostic);
                diagnostics.push(diagnostic.with_origin(origin));
            }
        }
        diagnostics.sort();
        diagnostics.dedup();

        match stack {
            Some(stack) if diagnostics.iter().all(|d| !d.is_error()) => Ok(Loaded {
                stack,
                warnings: diagnostics,
            }),
            _ => Err(report(diagnostics)),
        }
    }
}

fn report(mut diagnostics: Vec<Diagnostic>) -> Report {
    diagnostics.sort();
    Report { diagnostics }
}

fn read_file(path: &Path) -> Result<SourceFile, Vec<Diagnostic>> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|error| {
        vec![
            Diagnostic::error("", "read", format!("cannot read {name}: {error}"))
                .with_origin(Origin::Argument { arg: name.clone() }),
        ]
    })?;
    SourceFile::parse(&name, &text)
}

/// The layer for `--env NAME`: the file's `environments.NAME` mapping.
fn overlay(file: Option<&SourceFile>, environment: &str) -> Result<Layer, Box<Diagnostic>> {
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
            file: file.clone(),
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
                    .with_origin(Origin::Set { arg: arg.clone() })
                    .with_help("for example --set server.port=50052"),
            );
            continue;
        };
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

/// Deserializes the merged value into a `Stack`, collecting every structural error.
/// Returns the stack (built from what was left once the offending keys were removed), the
/// diagnostics, and the removed paths.
fn extract(
    mut merged: Dict,
    figment: &Figment,
    layers: &Layers,
) -> (Option<Stack>, Vec<Diagnostic>, Vec<String>) {
    let mut diagnostics = Vec::new();
    let mut pruned = Vec::new();
    loop {
        let attempt = Figment::from(Merged(merged.clone())).extract_lossy::<Stack>();
        let error = match attempt {
            Ok(stack) => return (Some(stack), diagnostics, pruned),
            Err(error) => error,
        };
        let mut progressed = false;
        for error in error {
            let path = error.path.join(".");
            let at_key = matches!(error.kind, figment::error::Kind::UnknownField(..));
            let origin = layers.origin_of(figment, &path, at_key);
            diagnostics.push(structural_diagnostic(&path, &error.kind).with_origin(origin));
            if !path.is_empty() && remove(&mut merged, &error.path) {
                pruned.push(path);
                progressed = true;
            }
        }
        if !progressed || diagnostics.len() >= MAX_STRUCTURAL_ERRORS {
            return (None, diagnostics, pruned);
        }
    }
}

/// Removes the value at `path`; true when something was removed.
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
            let diagnostic =
                Diagnostic::error(path, "unknown-key", format!("unknown key `{field}`"));
            match suggest(field, expected) {
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
        Kind::Message(message) => Diagnostic::error(path, "invalid-value", message.clone()),
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
    File { file: SourceFile, prefix: String },
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
            if let Some(metadata) = figment.find_metadata(candidate) {
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
    fn removes_paths() {
        let mut dict = Dict::new();
        insert(&mut dict, &["a".into(), "b".into()], Value::from("x"));
        insert(&mut dict, &["a".into(), "c".into()], Value::from("y"));
        assert!(remove(&mut dict, &["a".into(), "b".into()]));
        assert!(!remove(&mut dict, &["a".into(), "b".into()]));
        assert!(dict["a"].as_dict().is_some_and(|a| a.contains_key("c")));
    }

    #[test]
    fn overlapping_paths() {
        assert!(overlaps("server", "server.port"));
        assert!(overlaps("server.port", "server.port"));
        assert!(!overlaps("server.port", "server.portal"));
    }
}
