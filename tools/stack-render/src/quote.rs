//! How a value is written in each grammar the renderer emits, so that no value can change
//! the structure of the file it lands in.
//!
//! One rule serves every grammar: a character that some parser treats as a line break, a
//! control or an invisible reordering is never written raw. [`must_escape`] names them: C0
//! controls (so CR, LF and TAB too), DEL, C1 controls (with NEL, U+0085, a line break to YAML
//! 1.1), U+2028 LINE SEPARATOR and U+2029 PARAGRAPH SEPARATOR (line breaks to YAML 1.1 and
//! to libyaml, PyYAML and Go's yaml packages), the byte order mark U+FEFF, the noncharacters
//! U+FFFE and U+FFFF (which YAML does not allow raw), and the bidirectional controls (which
//! make a reviewer read a line other than the one a parser reads).
//!
//! - JSON, YAML and Alloy strings ([`json_string`]): double-quoted with `\"`, `\\`, `\n`,
//!   `\t`, `\r` and `\uXXXX` for every other such character. A JSON string is a valid YAML
//!   1.1 and 1.2 double-quoted scalar and a valid Alloy string (Alloy takes Go's escapes),
//!   and each reads it back to the same text. Plain JSON allows U+2028 raw; we escape it
//!   anyway because JSON files are also embedded in YAML.
//! - YAML structure ([`yaml`]): block mappings and sequences whose keys and strings are
//!   JSON strings.
//! - YAML block scalars ([`block_scalar`]): whole config files, exact; text a block scalar
//!   cannot hold byte for byte is written as a JSON string instead.
//! - Shell words ([`shell_word`]): single-quoted; text with such characters becomes an ANSI-C
//!   `$'…'` word with `\xHH` byte escapes (bash, which `docker-run.sh` runs under). A NUL
//!   cannot be passed in a shell word at all, so it is refused.

use std::fmt::Write as _;

use serde_json::Value;

/// Whether `c` is never written raw into a rendered file: see the module documentation.
pub(crate) use stack_config::must_escape;

/// `text` as a double-quoted JSON string that is also a YAML and an Alloy string.
pub(crate) use stack_config::json_string;

/// `value` as compact JSON, every string (and key) through [`json_string`].
pub(crate) fn json(value: &Value) -> String {
    match value {
        Value::String(text) => json_string(text),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(json).collect();
            format!("[{}]", items.join(","))
        }
        Value::Object(map) => {
            let entries: Vec<String> = map
                .iter()
                .map(|(key, value)| format!("{}:{}", json_string(key), json(value)))
                .collect();
            format!("{{{}}}", entries.join(","))
        }
        scalar => scalar.to_string(),
    }
}

/// `value` as a block YAML document (keys and strings JSON-quoted through [`json_string`]),
/// ending with a newline: the same emitter `stackctl get` and `config` print with.
pub(crate) fn yaml(value: &Value) -> String {
    stack_config::to_yaml(value)
}

/// `text` as a literal block scalar whose lines are indented by `indent` spaces, or `None`
/// when a block scalar cannot hold it byte for byte.
///
/// The header's chomping keeps the trailing newlines as they are. The indentation is never
/// given by an indicator (YAML parsers disagree on what it is relative to): the first line
/// sets it, so text whose first line is empty or starts with a blank does not qualify, nor
/// does text with a character [`must_escape`] names other than LF and TAB (a CR, U+2028 or
/// NEL would end a line for some parsers and not others), nor a line ending in a blank
/// (parsers disagree about blank-only lines), nor text that is only newlines.
pub(crate) fn block_scalar(text: &str, indent: usize) -> Option<String> {
    let allowed = |c: char| c == '\n' || c == '\t' || !must_escape(c);
    let body = text.trim_end_matches('\n');
    if indent == 0
        || body.is_empty()
        || body.starts_with([' ', '\t', '\n'])
        || !text.chars().all(allowed)
        || body.split('\n').any(|line| line.ends_with([' ', '\t']))
    {
        return None;
    }
    let chomp = match text.len() - body.len() {
        0 => "-",
        1 => "",
        _ => "+",
    };
    let pad = " ".repeat(indent);
    let mut out = format!("|{chomp}");
    for line in text.strip_suffix('\n').unwrap_or(text).split('\n') {
        out.push('\n');
        if !line.is_empty() {
            out.push_str(&pad);
            out.push_str(line);
        }
    }
    Some(out)
}

/// Why a text cannot be one shell word.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("a shell word cannot hold a NUL character")]
pub(crate) struct NulInShellWord;

/// `text` as one bash word that reads back exactly: single-quoted, or, when it holds a
/// character [`must_escape`] names, ANSI-C quoted with each such character as `\xHH` bytes.
pub(crate) fn shell_word(text: &str) -> Result<String, NulInShellWord> {
    if text.contains('\0') {
        return Err(NulInShellWord);
    }
    if !text.chars().any(must_escape) {
        return Ok(format!("'{}'", text.replace('\'', "'\"'\"'")));
    }
    let mut out = String::from("$'");
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            c if must_escape(c) => {
                let mut bytes = [0; 4];
                for byte in c.encode_utf8(&mut bytes).bytes() {
                    let _ = write!(out, "\\x{byte:02x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('\'');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_escape_every_line_break_and_control() {
        assert_eq!(
            json_string("a\u{2028}b\u{2029}c\u{85}d\re\u{feff}f\u{7f}g\u{9b}h\u{1b}i\"j\\"),
            r#""a\u2028b\u2029c\u0085d\re\ufefff\u007fg\u009bh\u001bi\"j\\""#
        );
        assert_eq!(json_string("tab\tnl\n"), r#""tab\tnl\n""#);
        assert_eq!(json_string("ünïcödé 🦀"), "\"ünïcödé 🦀\"");
    }

    #[test]
    fn json_matches_serde_json_for_ordinary_values() {
        let value = serde_json::json!({"a": [1, 2.5, true, null, "x"], "b": {}, "c": []});
        assert_eq!(json(&value), value.to_string());
    }

    #[test]
    fn shell_words() {
        assert_eq!(shell_word("it's").as_deref(), Ok(r#"'it'"'"'s'"#));
        assert_eq!(
            shell_word("a\u{2028}'b\\\n").as_deref(),
            Ok(r"$'a\xe2\x80\xa8\'b\\\x0a'")
        );
        assert_eq!(shell_word("a\0b"), Err(NulInShellWord));
    }

    #[test]
    fn block_scalars_refuse_what_they_cannot_hold() {
        for text in [
            "",
            "\n\n",
            " lead",
            "\tlead",
            "\nlead",
            "a\u{2028}---\n",
            "a\r\n",
            "a\u{85}b\n",
            "trailing \n",
            "a\n  \nb\n",
        ] {
            assert_eq!(block_scalar(text, 2), None, "{text:?}");
        }
        assert_eq!(block_scalar("a", 0), None);
        assert_eq!(
            block_scalar("a\n\nb\n", 2).as_deref(),
            Some("|\n  a\n\n  b")
        );
    }

    /// Text from the characters YAML, JSON and shell parsers treat specially.
    fn hostile() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let piece = prop::sample::select(vec![
            "\u{2028}", "\u{2029}", "\u{85}", "\r", "\n", "\u{feff}", "\0", "\u{1}", "\u{1b}",
            "\t", "\u{7f}", "\u{80}", "\u{9f}", "\u{fffe}", "\u{202e}", "'", "\"", "\\", "`",
            "---", "...", "#", ": ", "&", "*", "!", "%", "@", "{", "}", "[", "]", "|", ">", "- ",
            " ", "$(x)", "a", "é", "🦀",
        ]);
        prop_oneof![
            3 => prop::collection::vec(piece, 0..16).prop_map(|pieces| pieces.concat()),
            1 => any::<String>(),
        ]
    }

    /// `text` as libyaml (serde_yaml) and yaml-rust2 read the value of `v` in `yaml`.
    fn read_both(yaml: &str) -> (String, String) {
        let libyaml: serde_yaml::Value = serde_yaml::from_str(yaml).expect("libyaml parses");
        let rust2 = yaml_rust2::YamlLoader::load_from_str(yaml).expect("yaml-rust2 parses");
        (
            libyaml["k"]["v"].as_str().expect("a string").to_owned(),
            rust2[0]["k"]["v"].as_str().expect("a string").to_owned(),
        )
    }

    proptest::proptest! {
        #[test]
        fn json_strings_read_back_in_json_and_yaml(text in hostile()) {
            let quoted = json_string(&text);
            proptest::prop_assert!(!quoted.chars().any(must_escape));
            let json: String = serde_json::from_str(&quoted).expect("JSON parses");
            proptest::prop_assert_eq!(&json, &text);
            let (libyaml, rust2) = read_both(&format!("k:\n  v: {quoted}\n"));
            proptest::prop_assert_eq!(&libyaml, &text);
            proptest::prop_assert_eq!(&rust2, &text);
        }

        #[test]
        fn block_scalars_read_back_or_refuse(lines in proptest::collection::vec(
            proptest::prop_oneof![hostile(), "[ a-z#:'\"{}\\[\\]|>&*!%@`\t-]{0,12}"],
            1..6,
        )) {
            let text = lines.join("\n");
            if let Some(block) = block_scalar(&text, 4) {
                let (libyaml, rust2) = read_both(&format!("k:\n  v: {block}\nafter: 1\n"));
                proptest::prop_assert_eq!(&libyaml, &text);
                proptest::prop_assert_eq!(&rust2, &text);
            }
        }

        #[test]
        fn shell_words_read_back_in_bash(text in hostile()) {
            match shell_word(&text) {
                Err(NulInShellWord) => proptest::prop_assert!(text.contains('\0')),
                Ok(word) => {
                    proptest::prop_assert!(!word.chars().any(must_escape));
                    let output = std::process::Command::new("bash")
                        .args(["-c", &format!("v={word}\nprintf %s \"$v\"")])
                        .output()
                        .expect("bash runs");
                    proptest::prop_assert_eq!(output.stdout, text.as_bytes());
                }
            }
        }
    }
}
