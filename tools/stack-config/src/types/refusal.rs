//! A type's own refusal, carried through serde to the loader with its rule and help.
//!
//! Serde errors are text. A newtype that refuses a value says which rule it broke by
//! encoding the rule (one of [`RULES`]) in front of the message; the loader decodes it
//! ([`decode`]) and reports the diagnostic under that rule, with its help, instead of the
//! generic `invalid-value`.

use std::fmt::Display;

use crate::diagnostic::Diagnostic;

/// The rules a type's refusal may name, with their help.
const RULES: &[(&str, Option<&str>)] = &[
    ("ratio-range", None),
    ("positive", None),
    ("redis-db", None),
    (
        "secret-key",
        Some("Kubernetes refuses a pod whose secretKeyRef names a key it could not hold"),
    ),
];

/// Separates the rule from the message; no message of ours holds it.
const MARK: char = '\u{1f}';

/// A serde error message that the loader reports under `rule`.
pub(crate) fn encode(rule: &'static str, message: impl Display) -> String {
    debug_assert!(RULES.iter().any(|(known, _)| *known == rule), "{rule}");
    format!("{MARK}{rule}{MARK}{message}")
}

/// The diagnostic at `path` for a serde error `message`: under the rule it names, or
/// `invalid-value`.
pub(crate) fn decode(path: &str, message: &str) -> Diagnostic {
    let decoded = message.strip_prefix(MARK).and_then(|rest| {
        let (rule, text) = rest.split_once(MARK)?;
        let &(rule, help) = RULES.iter().find(|(known, _)| *known == rule)?;
        Some((rule, help, text))
    });
    match decoded {
        Some((rule, help, text)) => {
            let diagnostic = Diagnostic::error(path, rule, text);
            match help {
                Some(help) => diagnostic.with_help(help),
                None => diagnostic,
            }
        }
        None => Diagnostic::error(path, "invalid-value", message),
    }
}
