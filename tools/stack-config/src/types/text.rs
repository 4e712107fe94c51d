//! Free text and key names that end up in manifests, environment variables and configs.

use crate::escape::unsafe_char;

/// Checks free text: no control character (newline, ESC, U+0085, ...), no U+2028/U+2029, no
/// byte-order mark, no bidirectional control. The error names the character, never the text.
pub(crate) fn check_text(value: &str) -> Result<(), String> {
    match unsafe_char(value) {
        None => Ok(()),
        Some(character) => Err(format!(
            "contains {character}: settings that reach manifests, environment variables and \
             configuration files must be printable text"
        )),
    }
}

/// Most characters in a key of a Secret or ConfigMap (Kubernetes' `IsConfigMapKey`).
pub(crate) const CONFIG_KEY_MAX: usize = 253;

/// Checks a key of a Kubernetes Secret or ConfigMap: `[-._a-zA-Z0-9]+`, at most 253
/// characters, not `.` or `..` (what `IsConfigMapKey` accepts, and so what a
/// `secretKeyRef.key` may be).
pub(crate) fn check_config_key(value: &str) -> Result<(), String> {
    let ok = !value.is_empty()
        && value.len() <= CONFIG_KEY_MAX
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        && value != "."
        && value != "..";
    if ok {
        Ok(())
    } else {
        Err(format!(
            "is not a key of a Secret: use 1-{CONFIG_KEY_MAX} letters, digits, '-', '_' and '.', \
             other than \".\" and \"..\""
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text() {
        for good in ["admin", "Zoë Ω 管理者", "a b", "$x", ""] {
            assert_eq!(check_text(good), Ok(()), "{good}");
        }
        for bad in [
            "a\nb",
            "\u{1b}[2J",
            "a\u{85}",
            "a\u{2028}",
            "\u{feff}a",
            "a\u{202e}b",
        ] {
            assert!(check_text(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn config_keys() {
        for good in [
            "password",
            "redis.password",
            "a-b_c.D9",
            ".env",
            "..a",
            &"k".repeat(253),
        ] {
            assert_eq!(check_config_key(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "$(id) x",
            "a/b",
            "a b",
            "ä",
            &"k".repeat(254),
        ] {
            assert!(check_config_key(bad).is_err(), "{bad}");
        }
    }
}

super::checked_string!(
    /// The key of a value in a Secret, as a `secretKeyRef.key` names it:
    /// `[-._a-zA-Z0-9]+`, at most 253 characters, not `.` or `..`.
    SecretKey,
    check = check_config_key,
    rule = "secret-key",
    schema = {
        "minLength": 1,
        "maxLength": 253,
        "pattern": r"^[-._a-zA-Z0-9]+$",
        "description": "A key of a Secret: 1-253 letters, digits, '-', '_' and '.' (not '.' or '..')."
    }
);
