//! The layers of a load (the `--env` overlay, variables, `--set`), and where a value of the
//! merged settings came from: the layer that wrote it and the position within that layer.
//! One concept: the layers, built and traced back.

use std::collections::BTreeMap;
use std::sync::Arc;

use figment::value::{Dict, Tag, Value};
use figment::{Figment, Metadata, Profile, Provider};

use super::{ENV_PREFIX, ENV_SEPARATOR, Loader, overlaps};
use crate::diagnostic::{Diagnostic, Origin, suggest};
use crate::source::{SourceFile, join};

/// The layer for `--env NAME`: the file's `environments.NAME` mapping.
pub(super) fn overlay(
    file: Option<&Arc<SourceFile>>,
    environment: &str,
) -> Result<Layer, Box<Diagnostic>> {
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

/// The layer of `TASKMANAGER__A__B=value` variables. Values stay text (or lists of text, see `text_value`).
pub(super) fn env_layer(vars: &[(String, String)]) -> (Layer, Vec<Diagnostic>) {
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
        insert(&mut dict, &segments, text_value(value));
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

/// The layer of `--set key=value` arguments. Values stay text (or lists of text, see `text_value`).
pub(super) fn set_layer(sets: &[String]) -> (Layer, Vec<Diagnostic>) {
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
        insert(&mut dict, &segments, text_value(value));
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
pub(super) fn shorten(text: &str) -> String {
    match text.char_indices().nth(100) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// The value of a variable or `--set`: its text, or a list of texts when it is written as
/// `[a, b, "c"]` (one level, items split at commas, surrounding quotes dropped), so that a
/// list such as `redis.cluster.nodes` can be set without a file.
fn text_value(value: &str) -> Value {
    let Some(items) = value
        .trim()
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
    else {
        return Value::from(value.to_owned());
    };
    if items.trim().is_empty() {
        return Value::from(Vec::<String>::new());
    }
    let unquote = |item: &str| {
        let item = item.trim();
        ['"', '\'']
            .into_iter()
            .find_map(|quote| item.strip_prefix(quote)?.strip_suffix(quote))
            .unwrap_or(item)
            .to_owned()
    };
    Value::from(items.split(',').map(unquote).collect::<Vec<String>>())
}

/// Sets `value` at `path` in `dict`, creating (or replacing scalars by) mappings on the way.
pub(super) fn insert(dict: &mut Dict, path: &[String], value: Value) {
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

/// A provider of an already-merged value, keeping the tags of its values.
pub(super) struct Merged(pub(super) Dict);

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
pub(super) struct Layer {
    pub(super) name: String,
    pub(super) dict: Dict,
    pub(super) source: LayerSource,
}

#[derive(Clone)]
pub(super) enum LayerSource {
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
pub(super) struct Layers {
    sources: Vec<(String, LayerSource)>,
    /// The merged settings, before any error is removed: each value's tag names its layer.
    pub(super) merged: Dict,
}

impl Layers {
    pub(super) fn add(&mut self, layer: Layer) -> Layer {
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
    pub(super) fn locate(&self, figment: &Figment, diagnostic: &Diagnostic) -> Origin {
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
    pub(super) fn origin_of(&self, figment: &Figment, path: &str, at_key: bool) -> Origin {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bracketed_text_is_a_list() {
        let texts = |value: &str| -> Option<Vec<String>> {
            let items = text_value(value).into_array()?;
            items.into_iter().map(|item| item.into_string()).collect()
        };
        assert_eq!(
            texts(r#"[a:1, "b:2",'c:3']"#),
            Some(vec!["a:1".to_owned(), "b:2".to_owned(), "c:3".to_owned()])
        );
        assert_eq!(texts(" [] "), Some(vec![]));
        assert_eq!(texts("a,b"), None);
        assert_eq!(text_value("[a").into_string().as_deref(), Some("[a"));
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
}
