//! Characters that must never reach a terminal, a manifest or an environment variable as they
//! are, and how user text is escaped before it is printed.
//!
//! One definition serves both sides: validation rejects these characters in settings
//! ([`unsafe_char`]), and diagnostics escape them in whatever user text they echo
//! ([`escape`]), so that a value never moves a terminal's cursor, changes its colours or
//! starts a new line in the middle of an error message.

use std::borrow::Cow;
use std::fmt::Write;

/// What kind of unsafe character `c` is, or `None` for a printable one.
///
/// Unsafe are: C0 and C1 control characters (tab, newline, ESC, DEL, U+0085 NEL, ...), the
/// Unicode line and paragraph separators U+2028 and U+2029 (YAML 1.1 parsers break lines on
/// them), the byte-order mark U+FEFF, the bidirectional controls (which reorder the text a
/// reader sees) and the noncharacters U+FFFE and U+FFFF.
pub(crate) fn unsafe_kind(c: char) -> Option<&'static str> {
    match c {
        '\u{2028}' => Some("a line separator"),
        '\u{2029}' => Some("a paragraph separator"),
        '\u{feff}' => Some("a byte-order mark"),
        '\u{061c}'
        | '\u{200e}'
        | '\u{200f}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}' => Some("a bidirectional control"),
        '\u{fffe}' | '\u{ffff}' => Some("a noncharacter"),
        c if c.is_control() => Some("a control character"),
        _ => None,
    }
}

/// The first unsafe character of `text`, described as `U+001B (a control character)`.
pub(crate) fn unsafe_char(text: &str) -> Option<String> {
    text.chars()
        .find_map(|c| unsafe_kind(c).map(|kind| format!("{} ({kind})", code_point(c))))
}

/// `U+001B` for ESC.
pub(crate) fn code_point(c: char) -> String {
    format!("U+{:04X}", u32::from(c))
}

/// `text` with every unsafe character escaped the way Rust writes them: `\n`, `\r`, `\t`, and
/// `\u{1b}` for the rest. Everything else, quotes and backslashes included, is unchanged.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| unsafe_kind(c).is_some()) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if unsafe_kind(c).is_some() => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// `value` as a quoted string for a message: escaped like Rust's `{:?}`, and cut after 64
/// characters (with the full length given) so that a 10,000-character value does not fill the
/// screen.
pub(crate) fn quoted(value: &str) -> String {
    const MAX: usize = 64;
    let count = value.chars().count();
    if count <= MAX {
        return format!("{value:?}");
    }
    let head: String = value.chars().take(MAX).collect();
    let quoted = format!("{head:?}");
    format!("{}...\" ({count} characters)", &quoted[..quoted.len() - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_a_terminal_would_obey() {
        assert_eq!(escape("plain \"text\" \\ é"), "plain \"text\" \\ é");
        assert_eq!(
            escape("a\u{1b}[31mb\nc\rd\te\u{7f}"),
            "a\\u{1b}[31mb\\nc\\rd\\te\\u{7f}"
        );
        assert_eq!(
            escape("\u{85}\u{2028}\u{2029}\u{feff}\u{202e}"),
            "\\u{85}\\u{2028}\\u{2029}\\u{feff}\\u{202e}"
        );
    }

    #[test]
    fn names_the_first_unsafe_character() {
        assert_eq!(unsafe_char("admin"), None);
        assert_eq!(
            unsafe_char("ad\u{1b}m\nin").as_deref(),
            Some("U+001B (a control character)")
        );
        assert_eq!(
            unsafe_char("x\u{2028}").as_deref(),
            Some("U+2028 (a line separator)")
        );
        assert_eq!(
            unsafe_char("\u{feff}x").as_deref(),
            Some("U+FEFF (a byte-order mark)")
        );
    }

    #[test]
    fn quotes_and_shortens() {
        assert_eq!(quoted("a\u{1b}b"), "\"a\\u{1b}b\"");
        let long = "x".repeat(10_000);
        assert_eq!(
            quoted(&long),
            format!("\"{}...\" (10000 characters)", "x".repeat(64))
        );
    }
}
