//! The stack file: read within the size limit, parsed once, and the work that every load of
//! it shares done once.
//!
//! `stackctl check` loads the file once per environment. Parsing it, finding the keys the
//! model does not know and reading `environments` do not depend on the environment, so they
//! are done once per file content and kept (one file at a time). A load then merges only
//! the known settings of the file: its cost no longer grows with the unknown keys or with
//! the other environments, and checking every environment stays linear.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use figment::Figment;
use figment::providers::Serialized;
use figment::value::{Dict, Value};

use super::{Extracted, Hidden, Layer, LayerSource, Layers, extract};
use crate::diagnostic::{Diagnostic, Origin};
use crate::load::Loader;
use crate::model::Stack;
use crate::source::{SourceFile, join};

/// A parsed stack file and what every load of it shares.
pub(super) struct StackFile {
    pub(super) source: Arc<SourceFile>,
    shared: OnceLock<Shared>,
}

/// What every load of one file shares.
pub(super) struct Shared {
    /// The file's settings without `environments` and without the keys the model does not
    /// know: what a load merges.
    pub(super) dict: Dict,
    /// A default stack holding the file's environments, deserialized.
    pub(super) environments: Stack,
    /// The unknown keys and the errors in `environments`, located in the file.
    pub(super) diagnostics: Vec<Diagnostic>,
    /// Errors counted but not built.
    pub(super) hidden: Hidden,
    /// Paths removed from the file's settings.
    pub(super) pruned: Vec<String>,
}

impl StackFile {
    /// What every load of this file shares, worked out on first use.
    pub(super) fn shared(&self) -> &Shared {
        self.shared.get_or_init(|| Shared::new(&self.source))
    }
}

impl Shared {
    fn new(source: &Arc<SourceFile>) -> Self {
        let mut dict = source.dict.clone();
        let environments = dict.remove("environments");

        // The keys the model does not know, found as a load finds them, over the defaults
        // alone. Other errors may be fixed by a later layer, so each load looks for them.
        let settings = only_file(source, dict.clone());
        let mut diagnostics = Vec::new();
        let mut pruned = Vec::new();
        for path in &settings.unknown {
            remove_written(&mut dict, path);
            pruned.push(path.join("."));
        }
        diagnostics.extend(
            settings
                .diagnostics
                .into_iter()
                .filter(|d| d.rule == "unknown-key"),
        );
        let mut hidden = settings.hidden;

        let environments = match environments {
            Some(environments) => {
                let only = Dict::from([("environments".to_owned(), environments)]);
                let extracted = only_file(source, only);
                diagnostics.extend(extracted.diagnostics);
                pruned.extend(extracted.pruned);
                hidden.add(extracted.hidden);
                extracted.stack.unwrap_or_default()
            }
            None => Stack::default(),
        };
        Self {
            dict,
            environments,
            diagnostics,
            hidden,
            pruned,
        }
    }
}

/// The structural errors of `dict`, a part of `source`, over the defaults alone.
fn only_file(source: &Arc<SourceFile>, dict: Dict) -> Extracted {
    let mut layers = Layers::default();
    let layer = layers.add(Layer {
        name: source.name.clone(),
        dict: dict.clone(),
        source: LayerSource::File {
            file: Arc::clone(source),
            prefix: String::new(),
        },
    });
    let figment = Figment::from(Serialized::defaults(Stack::default())).merge(layer);
    let merged = match figment.find_value("") {
        Ok(Value::Dict(_, merged)) => merged,
        _ => dict,
    };
    layers.merged = merged.clone();
    extract(merged, &figment, &layers)
}

/// Removes the value at `path` (as written) from `dict`.
fn remove_written(dict: &mut Dict, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut current = dict;
    for segment in parents {
        match current.get_mut(segment) {
            Some(Value::Dict(_, child)) => current = child,
            _ => return,
        }
    }
    current.remove(last);
}

/// The last file parsed, by path and exact content; one entry, so it holds one file.
static LAST: Mutex<Option<Cached>> = Mutex::new(None);

struct Cached {
    path: PathBuf,
    bytes: Vec<u8>,
    result: Result<Arc<StackFile>, Vec<Diagnostic>>,
}

/// Reads and parses the stack file at `path`, at most `Loader::MAX_FILE_BYTES` of it; the
/// same file read again (same path, same bytes) is not parsed again.
pub(super) fn read(path: &Path) -> Result<Arc<StackFile>, Vec<Diagnostic>> {
    let name = path.display().to_string();
    let argument = || Origin::Argument { arg: name.clone() };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| {
            file.take(Loader::MAX_FILE_BYTES as u64 + 1)
                .read_to_end(&mut bytes)
        })
        .map_err(|error| {
            vec![
                Diagnostic::error("", "read", format!("cannot read {name}: {error}"))
                    .with_origin(argument()),
            ]
        })?;
    if bytes.len() > Loader::MAX_FILE_BYTES {
        let size = match std::fs::metadata(path) {
            Ok(metadata) if metadata.len() > Loader::MAX_FILE_BYTES as u64 => {
                let size = metadata.len();
                format!("{size} bytes ({:.1} MiB)", size as f64 / f64::from(1 << 20))
            }
            _ => format!("more than {} bytes", Loader::MAX_FILE_BYTES),
        };
        return Err(vec![
            Diagnostic::error(
                "",
                "file-size",
                format!(
                    "{name} holds {size}; a stack file may hold at most {} bytes (1 MiB)",
                    Loader::MAX_FILE_BYTES
                ),
            )
            .with_origin(argument())
            .with_help("a stack file is a few KiB: is this the right file?"),
        ]);
    }
    let mut last = LAST.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(cached) = last.as_ref().filter(|c| c.path == path && c.bytes == bytes) {
        return cached.result.clone();
    }
    let result = SourceFile::from_bytes(&name, bytes.clone()).map(|source| {
        Arc::new(StackFile {
            source: Arc::new(source),
            shared: OnceLock::new(),
        })
    });
    *last = Some(Cached {
        path: path.to_owned(),
        bytes,
        result: result.clone(),
    });
    result
}

/// The error for a file with more than `Loader::MAX_ENVIRONMENTS` environments, at the first
/// one past the limit.
pub(super) fn too_many_environments(file: &SourceFile) -> Option<Diagnostic> {
    let environments = file.dict.get("environments")?.as_dict()?;
    if environments.len() <= Loader::MAX_ENVIRONMENTS {
        return None;
    }
    let mut origins: Vec<Origin> = environments
        .keys()
        .filter_map(|name| file.origin_exact(&join("environments", name)))
        .collect();
    origins.sort();
    let origin = origins
        .into_iter()
        .nth(Loader::MAX_ENVIRONMENTS)
        .or_else(|| file.origin("environments", true))
        .unwrap_or(Origin::Default);
    Some(
        Diagnostic::error(
            "environments",
            "environment-count",
            format!(
                "the file defines {} environments; a stack may define at most {}",
                environments.len(),
                Loader::MAX_ENVIRONMENTS
            ),
        )
        .with_origin(origin)
        .with_help("keep one stack file per group of environments"),
    )
}
