//! Loading templates (embedded, or from a directory) into a strict minijinja environment.

use std::path::{Path, PathBuf};

use minijinja::{Environment, UndefinedBehavior, Value};

use crate::RenderError;
use crate::filters::{self, Filters};

include!(concat!(env!("OUT_DIR"), "/embedded.rs"));

/// Where templates come from.
#[derive(Clone, Debug)]
pub enum Templates {
    /// The templates built into the binary.
    Embedded,
    /// A directory laid out like `templates/`; a template missing there falls back to the
    /// embedded one.
    Directory(PathBuf),
}

impl Templates {
    /// The built-in templates.
    pub fn embedded() -> Self {
        Self::Embedded
    }

    /// Templates from `dir`, over the built-in ones.
    pub fn directory(dir: impl Into<PathBuf>) -> Self {
        Self::Directory(dir.into())
    }

    /// Every template: name and source.
    fn sources(&self) -> Result<Vec<(String, String)>, RenderError> {
        let mut sources: Vec<(String, String)> = EMBEDDED
            .iter()
            .map(|(name, text)| ((*name).to_owned(), (*text).to_owned()))
            .collect();
        if let Self::Directory(dir) = self {
            let mut found = Vec::new();
            walk(dir, dir, &mut found).map_err(|error| RenderError::Io {
                path: dir.display().to_string(),
                error,
            })?;
            for (name, text) in found {
                match sources.iter_mut().find(|(existing, _)| *existing == name) {
                    Some(entry) => entry.1 = text,
                    None => sources.push((name, text)),
                }
            }
        }
        Ok(sources)
    }

    /// The version lines these templates declare (`versions.yaml`).
    pub fn version_lines(&self) -> Result<crate::VersionLines, RenderError> {
        crate::versions::declared(&self.sources()?)
    }

    /// A strict environment holding every template, with the project's filters (or their
    /// skeleton placeholders).
    pub(crate) fn environment(
        &self,
        filters: Filters,
    ) -> Result<Environment<'static>, RenderError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        filters::register(&mut env, filters);
        for (name, text) in self.sources()? {
            env.add_template_owned(name.clone(), text)
                .map_err(|error| template_error(&name, error))?;
        }
        Ok(env)
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(std::fs::DirEntry::path);
    for entry in entries {
        let path = entry.path();
        if path.is_dir() {
            walk(root, &path, out)?;
        } else if let Ok(relative) = path.strip_prefix(root) {
            let name = relative.to_string_lossy().replace('\\', "/");
            out.push((name, std::fs::read_to_string(&path)?));
        }
    }
    Ok(())
}

/// A template error, keeping minijinja's (kind, detail, template and line) as its source.
pub(crate) fn template_error(template: &str, error: minijinja::Error) -> RenderError {
    RenderError::Template {
        template: template.to_owned(),
        source: Box::new(error),
    }
}

/// Renders one template with `context`; the output ends with exactly one newline.
pub(crate) fn render_one(
    env: &Environment<'static>,
    name: &str,
    context: &impl serde::Serialize,
) -> Result<String, RenderError> {
    let template = env
        .get_template(name)
        .map_err(|error| template_error(name, error))?;
    let text = template
        .render(Value::from(minijinja::value::Serde(context)))
        .map_err(|error| template_error(name, error))?;
    let mut text = text.replace("\r\n", "\n");
    let kept = text.trim_end_matches('\n').len();
    text.truncate(kept);
    let text = text.trim_start_matches('\n').to_owned();
    Ok(format!("{text}\n"))
}
