//! Renders everything a deployment needs from a stack: Kubernetes manifests, the
//! observability configs (each rendered once; the same bytes go into its ConfigMap),
//! Dockerfiles and the `docker run` script.
//!
//! Templates live in the repository's `templates/` and are embedded in the binary
//! ([`Templates::embedded`]); a directory can override them ([`Templates::directory`]).
//! Undefined variables are errors, and values enter a file only through filters that cannot
//! change its structure (`q`: a JSON scalar, which YAML and Alloy read back exactly; `yaml`:
//! a nested value as block YAML whose strings are JSON-quoted; `block`: a file as an exact
//! YAML block scalar; `sh`: one bash word); a string written without one fails the render.
//! [`quote`](crate::quote) holds the rules per grammar, including Unicode line breaks.
//!
//! After rendering and before anything is written, [`readback`](crate::readback) reads every
//! file back with two independent YAML parsers (libyaml's and yaml-rust2's) and checks that
//! each holds the documents its template means to write, and [`crossref`] checks that every
//! address dialled, selector and reference resolves to something rendered. Writing
//! ([`write_atomically`]) replaces the output folder whole, and only a folder that holds
//! nothing but what an earlier render wrote (see [`MARKER`]).

mod context;
pub mod crossref;
mod filters;
#[doc(hidden)]
pub mod fuzzing;
mod marker;
mod output;
mod quote;
mod readback;
mod templates;
mod versions;

use std::collections::BTreeMap;

use sha2::Digest;
use stack_config::Stack;
use stack_config::topology::{STACK_TEMPLATES, Topology};

pub use marker::MARKER;
pub use output::{Diff, WriteError, diff, write_atomically};
pub use templates::Templates;
pub use versions::{Line, VERSIONS_FILE, VersionLines};

/// Why rendering failed.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A template could not be loaded or rendered; the source says why, and where (its
    /// message ends with `(in <template>:<line>)` when the line is known).
    #[error("template {template}")]
    Template {
        /// The template's path under `templates/`.
        template: String,
        /// minijinja's error.
        #[source]
        source: Box<minijinja::Error>,
    },
    /// A template (or the version lines next to them) does not say what it must.
    #[error("template {template}: {message}")]
    Invalid {
        /// The template's path under `templates/`.
        template: String,
        /// What is wrong.
        message: String,
    },
    /// A template directory could not be read.
    #[error("cannot read templates from {path}: {error}")]
    Io {
        /// The directory.
        path: String,
        /// The error.
        error: std::io::Error,
    },
    /// A rendered file does not read back as written: a value changed its structure.
    #[error(
        "the rendered files do not read back as written (with the built-in templates this is a \
         bug in stackctl; please report it):\n{}",
        .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n")
    )]
    ReadBack(Vec<String>),
    /// The stack does not compile into a topology (it was not validated: the loader reports
    /// the same errors, located).
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Stack(Vec<stack_config::Diagnostic>),
    /// An image tag lies outside the version line its component's templates render for.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Version(Vec<stack_config::Diagnostic>),
    /// The rendered manifests refer to things that were not rendered.
    #[error("the rendered stack does not hold together:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    CrossReference(Vec<crossref::Problem>),
}

/// `error` and its causes on one line, `: `-separated: how a render error is shown.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        text.push_str(": ");
        text.push_str(&next.to_string());
        cause = next.source();
    }
    text
}

/// Rendered files by path relative to the output directory, in a stable order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rendered {
    /// Path (`k8s/server.yaml`) to content.
    pub files: BTreeMap<String, String>,
}

/// Which templates render for this stack, in order: configs first (their checksums and bytes
/// feed the manifests), the kustomization last (it lists the rest).
fn selected(topology: &Topology) -> Vec<&'static str> {
    let deployed = topology
        .deployed()
        .flat_map(|part| part.templates.iter().copied());
    let (mut out, rest): (Vec<_>, Vec<_>) = deployed
        .chain(STACK_TEMPLATES.iter().copied())
        .partition(|template| template.starts_with("configs/"));
    out.extend(rest);
    out.push("k8s/kustomization.yaml");
    out
}

/// The hex SHA-256 of `text`.
fn sha256(text: &str) -> String {
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Renders every file for `stack`, then checks that every file reads back as written and
/// that the result holds together.
pub fn render(stack: &Stack, templates: &Templates) -> Result<Rendered, RenderError> {
    let topology = Topology::compile(stack).map_err(RenderError::Stack)?;
    let outside = templates.version_lines()?.check(&topology);
    if !outside.is_empty() {
        return Err(RenderError::Version(outside));
    }
    let env = templates.environment(filters::Filters::Quoting)?;
    let skeleton_env = templates.environment(filters::Filters::Skeleton)?;
    let mut context = context::Context::new(stack, &topology);
    let mut files = BTreeMap::new();
    // The kinds of the documents each YAML file is meant to hold.
    let mut intended = BTreeMap::new();
    let server_stack = context::server_stack_yaml(stack);
    files.insert("configs/stack.yaml".to_owned(), server_stack);
    intended.insert("configs/stack.yaml".to_owned(), vec![None]);
    let publish = |files: &BTreeMap<String, String>, context: &mut context::Context| {
        for (path, text) in files {
            if let Some(name) = path.strip_prefix("configs/") {
                context.configs.insert(name.to_owned(), text.clone());
                context.checksums.insert(name.to_owned(), sha256(text));
            }
        }
    };
    publish(&files, &mut context);
    for template in selected(&topology) {
        // Each template renders the file of the same path.
        let output = template;
        if template == "k8s/kustomization.yaml" {
            context.resources = files
                .keys()
                .filter_map(|path| path.strip_prefix("k8s/"))
                .map(str::to_owned)
                .collect();
        }
        let text = templates::render_one(&env, template, &context)?;
        if output.ends_with(".yaml") || output.ends_with(".yml") {
            let skeleton = templates::render_one(&skeleton_env, template, &context)?;
            let kinds =
                readback::intended_kinds(&skeleton).map_err(|error| RenderError::Invalid {
                    template: template.to_owned(),
                    message: format!("the template does not write valid YAML: {error}"),
                })?;
            intended.insert(output.to_owned(), kinds);
        }
        if !text.trim().is_empty() {
            files.insert(output.to_owned(), text);
        }
        if template.starts_with("configs/") {
            publish(&files, &mut context);
        }
    }
    let rendered = Rendered { files };
    let problems = readback::check(&rendered, &intended);
    if !problems.is_empty() {
        return Err(RenderError::ReadBack(problems));
    }
    let problems = crossref::check(&topology, &rendered);
    if problems.is_empty() {
        Ok(rendered)
    } else {
        Err(RenderError::CrossReference(problems))
    }
}
