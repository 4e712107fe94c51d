//! Diagnostics: what is wrong, where, and why — and how they print.
//!
//! User text in a diagnostic never prints as it was written: secret values are replaced by
//! `<redacted>` when the diagnostic is made (see `redact`), and control characters are
//! escaped when it is displayed (see `escape`).

use std::fmt;

use crate::escape::escape;
use crate::redact::{self, Class};
use crate::types::Secret;

/// How bad a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The stack is invalid: nothing is loaded or rendered.
    Error,
    /// The stack is valid but something deserves attention.
    Warning,
}

/// Where a value came from.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Origin {
    /// A position in a YAML file.
    File {
        /// The file as given on the command line.
        file: String,
        /// Line, from 1.
        line: usize,
        /// Column, from 1.
        column: usize,
        /// The text of that line.
        snippet: String,
        /// How many characters of the line to underline, from `column`.
        width: usize,
    },
    /// An environment variable.
    Env {
        /// Its name.
        var: String,
    },
    /// A `--set key=value` argument.
    Set {
        /// The argument as given.
        arg: String,
    },
    /// A command-line option other than `--set`.
    Argument {
        /// The option and its value.
        arg: String,
    },
    /// The built-in default.
    Default,
}

/// One problem with the stack, located.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Diagnostic {
    /// Where the value came from. First, so that sorting diagnostics orders them by file
    /// position.
    pub origin: Origin,
    /// Error or warning.
    pub severity: Severity,
    /// Dotted key path of the offending value, such as `server.port`. Empty for the whole file.
    pub path: String,
    /// Short identifier of the broken rule, such as `unknown-key` or `replicas-range`.
    pub rule: &'static str,
    /// What is wrong, in a sentence that names the rule and the bad value.
    pub message: String,
    /// A hint at the fix.
    pub help: Option<String>,
    /// Other keys the rule involves. When the key itself was never written (its value is
    /// the default), the diagnostic points at the first of these that was.
    pub related: Vec<String>,
}

impl Diagnostic {
    /// An error at `path`, origin not yet known. When `path` may hold a secret, every quoted
    /// value in `message` is replaced by `"<redacted>"`.
    pub fn error(path: impl Into<String>, rule: &'static str, message: impl Into<String>) -> Self {
        let path = path.into();
        let message = message.into();
        let message = match redact::classify(&path) {
            Class::Plain => message,
            // A section that holds secrets: its own key names may show, values may not.
            Class::Holds => redact::scrub_quoted_except(&message, &path),
            Class::Secret => redact::scrub_quoted(&message),
        };
        Self {
            origin: Origin::Default,
            severity: Severity::Error,
            path,
            rule,
            message,
            help: None,
            related: Vec::new(),
        }
    }

    /// A warning at `path`, origin not yet known.
    pub fn warning(
        path: impl Into<String>,
        rule: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(path, rule, message)
        }
    }

    /// Adds a hint at the fix (quoted values redacted, as in the message).
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        let help = help.into();
        self.help = Some(match redact::classify(&self.path) {
            Class::Plain => help,
            Class::Holds => redact::scrub_quoted_except(&help, &self.path),
            Class::Secret => redact::scrub_quoted(&help),
        });
        self
    }

    /// Names another key the rule involves.
    pub fn with_related(mut self, path: impl Into<String>) -> Self {
        self.related.push(path.into());
        self
    }

    /// Sets where the value came from. A secret value in the origin (the snippet of a file
    /// line, a `--set` argument) is replaced by `<redacted>`, and so are the quoted values of
    /// the message and help when it was.
    pub fn with_origin(mut self, origin: Origin) -> Self {
        let mut redacted = false;
        self.origin = match origin {
            Origin::File {
                file,
                line,
                mut column,
                mut snippet,
                mut width,
            } => {
                if let Some((shown, start)) = redact::redact_line(&snippet, &self.path, column) {
                    redacted = true;
                    snippet = shown;
                    // Keep the caret on what is left: on `<redacted>` when it pointed into
                    // the value, to its end when it reached into it.
                    let at = column.saturating_sub(1);
                    if at >= start {
                        column = start + 1;
                        width = Secret::REDACTED.len();
                    } else if at + width > start {
                        width = start - at + Secret::REDACTED.len();
                    }
                }
                Origin::File {
                    file,
                    line,
                    column,
                    snippet,
                    width,
                }
            }
            Origin::Set { mut arg } => {
                if let Some(shown) = redact::redact_set(&arg) {
                    redacted = true;
                    arg = shown;
                }
                Origin::Set { arg }
            }
            other => other,
        };
        if redacted {
            self.message = redact::scrub_quoted(&self.message);
            self.help = self.help.map(|help| redact::scrub_quoted(&help));
        }
        self
    }

    /// True for an error.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// `file:line:column` for values from a file.
    pub fn location(&self) -> Option<String> {
        match &self.origin {
            Origin::File {
                file, line, column, ..
            } => Some(format!("{file}:{line}:{column}")),
            _ => None,
        }
    }
}

impl fmt::Display for Diagnostic {
    /// Prints the diagnostic with every piece of user text escaped (`\u{1b}`, `\n`), so that
    /// nothing in a value can drive the terminal or break a line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let path = if self.path.is_empty() {
            "(document)"
        } else {
            &self.path
        };
        writeln!(
            f,
            "{severity}[{}]: {}: {}",
            self.rule,
            escape(path),
            escape(&self.message)
        )?;
        match &self.origin {
            Origin::File {
                file,
                line,
                column,
                snippet,
                width,
            } => {
                let gutter = line.to_string().len();
                let pad = " ".repeat(gutter);
                writeln!(f, "{pad}--> {}:{line}:{column}", escape(file))?;
                writeln!(f, "{pad} |")?;
                writeln!(f, "{line} | {}", escape(snippet))?;
                // The caret lines up with the escaped text: count what escaping makes of the
                // characters before and under it.
                let chars: Vec<char> = snippet.chars().collect();
                let at = column.saturating_sub(1).min(chars.len());
                let under = (at + width).min(chars.len());
                let before: String = chars[..at].iter().collect();
                let marked: String = chars[at..under].iter().collect();
                let indent = escape(&before).chars().count();
                let carets = escape(&marked).chars().count() + (width - (under - at));
                writeln!(
                    f,
                    "{pad} | {}{}",
                    " ".repeat(indent),
                    "^".repeat(carets.max(1))
                )?;
            }
            Origin::Env { var } => writeln!(f, "  --> environment variable {}", escape(var))?,
            Origin::Set { arg } => writeln!(f, "  --> --set {}", escape(arg))?,
            Origin::Argument { arg } => writeln!(f, "  --> argument {}", escape(arg))?,
            Origin::Default => writeln!(f, "  --> built-in default")?,
        }
        if let Some(help) = &self.help {
            writeln!(f, "  = help: {}", escape(help))?;
        }
        Ok(())
    }
}

/// Every problem found while loading a stack. Its `Display` prints them all, then a summary.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct Report {
    /// The diagnostics, errors and warnings, in file order.
    pub diagnostics: Vec<Diagnostic>,
}

impl Report {
    /// The errors only.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.is_error())
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for diagnostic in &self.diagnostics {
            writeln!(f, "{diagnostic}")?;
        }
        let errors = self.errors().count();
        let warnings = self.diagnostics.len() - errors;
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        write!(f, "{errors} error{}", plural(errors))?;
        if warnings > 0 {
            write!(f, ", {warnings} warning{}", plural(warnings))?;
        }
        Ok(())
    }
}

/// Edit distance between two short strings (insertions, deletions, substitutions and
/// swaps of neighbours each count one), for "did you mean" hints.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// The candidate closest to `word`, if it is close enough to be a likely typo.
pub(crate) fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|candidate| (edit_distance(word, candidate), *candidate))
        .filter(|(distance, candidate)| *distance <= (candidate.len() / 3).max(1))
        .min()
        .map(|(_, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(edit_distance("prot", "port"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(suggest("prot", &["port", "metrics_port"]), Some("port"));
        assert_eq!(
            suggest("replica", &["replicas", "resources"]),
            Some("replicas")
        );
        assert_eq!(suggest("zzz", &["port", "replicas"]), None);
    }

    #[test]
    fn renders_a_located_error() {
        let diagnostic = Diagnostic::error("server.port", "invalid-value", "70000 is not a port")
            .with_origin(Origin::File {
                file: "stack.yaml".into(),
                line: 12,
                column: 9,
                snippet: "  port: 70000".into(),
                width: 5,
            })
            .with_help("use 1-65535");
        assert_eq!(
            diagnostic.to_string(),
            "error[invalid-value]: server.port: 70000 is not a port\n  \
             --> stack.yaml:12:9\n   |\n12 |   port: 70000\n   |         ^^^^^\n  \
             = help: use 1-65535\n"
        );
    }
}
