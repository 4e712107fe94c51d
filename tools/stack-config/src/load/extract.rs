//! Deserializing the merged layers into a `Stack` while collecting every structural error:
//! one pass per error, the offending value removed (or restored to its default) each time.

use std::collections::BTreeMap;

use figment::Figment;
use figment::providers::Serialized;
use figment::value::{Dict, Value};

use super::layers::{Layers, Merged, shorten};
use super::{Hidden, Loader};
use crate::diagnostic::{Diagnostic, suggest};
use crate::model::Stack;
use crate::source::join;

/// Values deserialized in all while collecting structural errors, counting one full pass
/// over the merged settings per error: about a tenth of a second. A real stack (a few hundred
/// values) gets all `Loader::MAX_ERRORS` passes; a huge file gets fewer.
const EXTRACT_WORK: usize = 2_000_000;

/// What `extract` found.
pub(super) struct Extracted {
    /// The stack, built from what was left once the offending keys were removed.
    pub(super) stack: Option<Stack>,
    pub(super) diagnostics: Vec<Diagnostic>,
    /// The removed paths, as written.
    pub(super) pruned: Vec<String>,
    /// Errors found but not built, past `Loader::MAX_ERRORS`.
    pub(super) hidden: Hidden,
    /// The removed keys that the model does not know, as written.
    pub(super) unknown: Vec<Vec<String>>,
}

/// Deserializes the merged value into a `Stack`, collecting every structural error: one pass
/// per error (all the unknown keys of a mapping count as one), within `Loader::MAX_ERRORS`
/// errors and `EXTRACT_WORK`.
pub(super) fn extract(mut merged: Dict, figment: &Figment, layers: &Layers) -> Extracted {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::layers::insert;

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
}
