//! Writing values back out as YAML that cannot be misread.
//!
//! Every string is written double-quoted with JSON escaping (a JSON string is a valid YAML
//! double-quoted scalar), so no value — `yes`, `0123`, `~`, `a: b`, a newline — can change
//! type or structure when read back.

use serde_json::Value;

/// A YAML document for `value`.
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => write_map(&mut out, map, 0),
        Value::Array(items) if !items.is_empty() => write_seq(&mut out, items, 0),
        scalar => {
            out.push_str(&scalar_text(scalar));
            out.push('\n');
        }
    }
    out
}

/// One scalar as YAML: strings double-quoted, everything else as JSON writes it.
pub fn scalar_text(value: &Value) -> String {
    match value {
        Value::Object(map) if map.is_empty() => "{}".to_owned(),
        Value::Array(items) if items.is_empty() => "[]".to_owned(),
        Value::String(text) => json_string(text),
        other => other.to_string(),
    }
}

/// Whether `c` is never written raw: C0 controls (so CR, LF and TAB too), DEL, C1 controls
/// (with NEL, a line break to YAML 1.1), U+2028 and U+2029 (line breaks to YAML 1.1, libyaml,
/// PyYAML and Go's yaml packages), the byte order mark, the noncharacters U+FFFE and U+FFFF
/// (which YAML does not allow raw), and the bidirectional controls (which make a reviewer read
/// a line other than the one a parser reads). The renderer applies the same rule.
pub fn must_escape(c: char) -> bool {
    matches!(
        c,
        '\u{0}'..='\u{1f}'
            | '\u{7f}'..='\u{9f}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{feff}'
            | '\u{fffe}'
            | '\u{ffff}'
            | '\u{61c}'
            | '\u{200e}'
            | '\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
    )
}

/// `text` as a double-quoted JSON string that is also a YAML (1.1 and 1.2) and an Alloy
/// string, every character [`must_escape`] names written as an escape (`\n`, `\t`, `\r`,
/// `\uXXXX`). JSON itself would leave U+2028, NEL, DEL, C1 and the BOM raw.
pub fn json_string(text: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if must_escape(c) => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn is_block(value: &Value) -> bool {
    match value {
        Value::Object(map) => !map.is_empty(),
        Value::Array(items) => !items.is_empty(),
        _ => false,
    }
}

/// Keys are quoted unless they are plain identifiers.
fn key_text(key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        && key
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    let reserved = matches!(
        key.to_ascii_lowercase().as_str(),
        "y" | "n" | "yes" | "no" | "on" | "off" | "true" | "false" | "null"
    );
    if plain && !reserved {
        key.to_owned()
    } else {
        json_string(key)
    }
}

fn write_map(out: &mut String, map: &serde_json::Map<String, Value>, indent: usize) {
    for (key, value) in map {
        out.push_str(&" ".repeat(indent));
        out.push_str(&key_text(key));
        out.push(':');
        if is_block(value) {
            out.push('\n');
            match value {
                Value::Object(child) => write_map(out, child, indent + 2),
                Value::Array(items) => write_seq(out, items, indent + 2),
                _ => {}
            }
        } else {
            out.push(' ');
            out.push_str(&scalar_text(value));
            out.push('\n');
        }
    }
}

fn write_seq(out: &mut String, items: &[Value], indent: usize) {
    for item in items {
        out.push_str(&" ".repeat(indent));
        out.push('-');
        match item {
            Value::Object(child) if !child.is_empty() => {
                // The first key goes on the dash line; the rest align under it.
                let mut nested = String::new();
                write_map(&mut nested, child, indent + 2);
                out.push(' ');
                out.push_str(nested.trim_start());
            }
            Value::Array(inner) if !inner.is_empty() => {
                out.push('\n');
                write_seq(out, inner, indent + 2);
            }
            scalar => {
                out.push(' ');
                out.push_str(&scalar_text(scalar));
                out.push('\n');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceFile;

    #[test]
    fn quotes_every_string() {
        let value = serde_json::json!({
            "a": "yes", "b": "0123", "c": "x: y\nz", "n": 5, "t": true, "none": null,
            "list": ["~", {"k": "v", "l": 1}], "empty": {}, "on": "#", "key with space": "",
        });
        let yaml = to_yaml(&value);
        let parsed = SourceFile::parse("emitted.yaml", &yaml).expect("the output parses");
        let a = parsed.dict["a"].as_str();
        assert_eq!(a, Some("yes"));
        assert_eq!(parsed.dict["b"].as_str(), Some("0123"));
        assert_eq!(parsed.dict["c"].as_str(), Some("x: y\nz"));
        assert_eq!(parsed.dict["on"].as_str(), Some("#"));
        assert_eq!(parsed.dict["key with space"].as_str(), Some(""));
        let list = parsed.dict["list"].as_array().expect("a list");
        assert_eq!(list[0].as_str(), Some("~"));
        assert_eq!(list[1].as_dict().and_then(|d| d["l"].as_str()), Some("1"));
    }

    #[test]
    fn unicode_line_breaks_and_controls_are_escaped() {
        let hostile = "a\u{2028}---\u{2029}b\u{85}c\u{feff}d\u{7f}e\u{1b}f\u{202e}g";
        let value = serde_json::json!({ "v": hostile, hostile: 1 });
        let yaml = to_yaml(&value);
        assert!(yaml.is_ascii(), "{yaml:?}");
        let parsed = SourceFile::parse("emitted.yaml", &yaml).expect("the output parses");
        assert_eq!(parsed.dict["v"].as_str(), Some(hostile));
        assert_eq!(parsed.dict[hostile].as_str(), Some("1"));
    }
}
