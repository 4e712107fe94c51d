//! `stackctl`: check, explain and render `stack.yaml`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use stack_config::cli::StackArgs;
use stack_config::{Loaded, Loader, Report};

/// Check, explain and render the task manager stack described by stack.yaml.
#[derive(Debug, Parser)]
#[command(name = "stackctl", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    source: StackArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate the stack; print every problem with its location. Without --env, the base
    /// file and every environment are checked.
    Check,
    /// Print the JSON Schema of stack.yaml.
    Schema,
    /// Print one resolved value, such as `server.port` or `derived.images.server`.
    Get {
        /// Dotted key path.
        key: String,
    },
    /// Render the Kubernetes manifests, observability configs, Dockerfiles and the
    /// `docker run` script into a directory, replacing it only when everything rendered and
    /// checked out, and only when it holds nothing but an earlier render's files.
    Render {
        /// Output directory.
        #[arg(long, short = 'o', default_value = "rendered")]
        out: PathBuf,
        /// Templates directory overriding the built-in templates.
        #[arg(long)]
        templates: Option<PathBuf>,
        /// Write nothing; print a diff and exit 1 when the output on disk is stale.
        #[arg(long)]
        check: bool,
        /// Replace the output directory even if it holds files stackctl did not write (it
        /// refuses otherwise, naming them).
        #[arg(long, conflicts_with = "check")]
        force: bool,
    },
    /// Print the fully resolved configuration (secrets redacted).
    Config {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Yaml)]
        format: Format,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    Yaml,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match real_main(cli) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

/// The loader of `source`, checking image tags against the version lines of `templates`.
fn loader(
    source: &StackArgs,
    env: Option<&str>,
    templates: &stack_render::Templates,
) -> Result<Loader, String> {
    let lines = templates
        .version_lines()
        .map_err(|error| format!("error: {}", stack_render::error_chain(&error)))?;
    Ok(source
        .loader_for(env)
        .rule(move |_, topology| lines.check(topology)))
}

/// Loads the stack, printing warnings to stderr.
fn load(source: &StackArgs, templates: &stack_render::Templates) -> Result<Loaded, String> {
    let loaded = loader(source, source.env.as_deref(), templates)?
        .load()
        .map_err(|report| report.to_string())?;
    for warning in &loaded.warnings {
        eprintln!("{warning}");
    }
    Ok(loaded)
}

fn real_main(cli: Cli) -> Result<ExitCode, String> {
    match cli.command {
        Command::Check => check(&cli.source),
        Command::Schema => {
            print!("{}", stack_config::schema_json());
            Ok(ExitCode::SUCCESS)
        }
        Command::Get { key } => {
            let loaded = load(&cli.source, &stack_render::Templates::embedded())?;
            let resolved = stack_config::resolved(&loaded);
            let value = stack_config::get(&resolved, &key).ok_or_else(|| {
                format!(
                    "error: no setting `{}` in the resolved stack",
                    stack_config::escape(&key)
                )
            })?;
            // Secrets are already redacted in `resolved`, environment overlays included.
            match value {
                // As written, for scripts; a control character (which validation keeps out of
                // every checked value, but an overlay that is not selected may hold) is escaped.
                serde_json::Value::String(text) => println!("{}", stack_config::escape(text)),
                serde_json::Value::Null => println!(),
                scalar @ (serde_json::Value::Bool(_) | serde_json::Value::Number(_)) => {
                    println!("{scalar}");
                }
                nested => print!("{}", stack_config::to_yaml(nested)),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Render {
            out,
            templates,
            check,
            force,
        } => render(&cli.source, &out, templates, check, force),
        Command::Config { format } => {
            let loaded = load(&cli.source, &stack_render::Templates::embedded())?;
            let mut resolved = serde_json::to_value(&loaded.stack).expect("a stack serializes");
            if let serde_json::Value::Object(map) = &mut resolved {
                // Already applied (or not selected): the result stands on its own.
                map.remove("environments");
            }
            match format {
                Format::Yaml => print!("{}", stack_config::to_yaml(&resolved)),
                Format::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&resolved).expect("JSON serializes")
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Checks the selected environment, or the base file and every environment.
fn check(source: &StackArgs) -> Result<ExitCode, String> {
    let templates = stack_render::Templates::embedded();
    let environments: Vec<Option<String>> = match &source.env {
        Some(env) => vec![Some(env.clone())],
        None => std::iter::once(None)
            .chain(
                loader(source, None, &templates)?
                    .environments()
                    .into_iter()
                    .map(Some),
            )
            .collect(),
    };
    let mut diagnostics = Vec::new();
    for env in &environments {
        match loader(source, env.as_deref(), &templates)?.load() {
            Ok(loaded) => diagnostics.extend(loaded.warnings),
            Err(report) => diagnostics.extend(report.diagnostics),
        }
    }
    // The same problem in the base file shows up once per environment: report it once.
    diagnostics.sort();
    diagnostics.dedup();
    // Each load reports at most Loader::MAX_ERRORS (then a note); so does the check of them
    // all, whatever the number of environments.
    let limit = stack_config::Loader::MAX_ERRORS;
    let (notes, mut diagnostics): (Vec<_>, Vec<_>) = diagnostics
        .into_iter()
        .partition(|diagnostic| diagnostic.rule == "error-limit");
    if diagnostics.len() > limit {
        let more = diagnostics.len() - limit;
        diagnostics.truncate(limit);
        diagnostics.push(stack_config::Diagnostic::error(
            "",
            "error-limit",
            format!(
                "{more} more problems across the environments are not shown (at most {limit} \
                 are reported at once)"
            ),
        ));
    }
    diagnostics.extend(notes);
    let report = Report { diagnostics };
    let checked = environments
        .iter()
        .map(|env| env.as_deref().unwrap_or("base"))
        .collect::<Vec<_>>()
        .join(", ");
    if report.errors().next().is_some() {
        eprintln!("{report}");
        return Ok(ExitCode::FAILURE);
    }
    for warning in &report.diagnostics {
        eprintln!("{warning}");
    }
    println!(
        "{}",
        stack_config::escape(&format!("{}: valid ({checked})", source.config))
    );
    Ok(ExitCode::SUCCESS)
}

/// Renders the stack into `out` (or, with `check`, compares with it).
fn render(
    source: &StackArgs,
    out: &std::path::Path,
    templates: Option<PathBuf>,
    check: bool,
    force: bool,
) -> Result<ExitCode, String> {
    let templates = match templates {
        Some(dir) => stack_render::Templates::directory(dir),
        None => stack_render::Templates::embedded(),
    };
    let loaded = load(source, &templates)?;
    let rendered = stack_render::render(&loaded.stack, &templates).map_err(|error| {
        format!(
            "error: {}\nnothing was written; {} is unchanged",
            stack_render::error_chain(&error),
            out.display()
        )
    })?;
    if check {
        let diffs = stack_render::diff(out, &rendered)
            .map_err(|error| format!("error: cannot read {}: {error}", out.display()))?;
        if diffs.is_empty() {
            println!(
                "{}: up to date ({} files)",
                out.display(),
                rendered.files.len()
            );
            return Ok(ExitCode::SUCCESS);
        }
        for diff in &diffs {
            match diff {
                stack_render::Diff::Missing(path) => println!("missing: {path}"),
                stack_render::Diff::Extra(path) => println!("no longer rendered: {path}"),
                stack_render::Diff::Changed(_, unified) => print!("{unified}"),
            }
        }
        eprintln!(
            "{}: stale ({} of {} files differ); run `stackctl render` to update it",
            out.display(),
            diffs.len(),
            rendered.files.len()
        );
        return Ok(ExitCode::FAILURE);
    }
    stack_render::write_atomically(out, &rendered, force)
        .map_err(|error| format!("error: {error}"))?;
    println!(
        "rendered {} files into {}",
        rendered.files.len(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}
