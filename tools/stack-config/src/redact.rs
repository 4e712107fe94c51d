//! Secrets never print: not in `stackctl get` or `config`, not in a diagnostic's message,
//! snippet or `-->` line.
//!
//! Which values are secret is decided in two ways:
//!
//! - A key path the model knows is secret when its type is [`Secret`](crate::types::Secret),
//!   read from the JSON Schema (so a new `Secret` field is covered without a list to keep
//!   up to date). A path whose type *contains* a secret (`redis.auth`) is treated as secret
//!   when it is given a scalar: `--set redis.auth=hunter2` is a password in the wrong place.
//! - A key path the model does not know (a typo, an unvalidated overlay) is secret when it
//!   lies under an `auth` section, or when a segment looks like a secret's name: `password`,
//!   `secret`, `token`, `credential`, `apikey`, ..., or is one edit or two away from one
//!   (`passwrd`).
//!
//! A diagnostic's snippet is one line of the user's file: every key on it is classified
//! (its path guessed from the diagnostic's own path) and the value of the first secret one
//! is replaced, to the end of the line, by `<redacted>`.
//!
//! One concept: deciding what is secret and scrubbing it, with the tests that prove no path
//! prints one.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::Value;

use crate::diagnostic::edit_distance;
use crate::types::Secret;

/// What a key path may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    /// A secret: its value never prints.
    Secret,
    /// A section with secrets inside (`redis.auth`): a scalar written here is probably a
    /// secret in the wrong place, so a scalar never prints; a mapping is looked into.
    Holds,
    /// Nothing secret.
    Plain,
}

/// The model's key paths as a tree, built from the JSON Schema.
#[derive(Debug, Default)]
struct Node {
    /// The value is a `Secret`.
    secret: bool,
    /// The value is, or contains, a `Secret`.
    holds: bool,
    /// Named children (struct fields).
    children: BTreeMap<String, Node>,
    /// Items of a list, or values of a map.
    any: Option<Box<Node>>,
}

impl Node {
    fn merge(&mut self, other: Node) {
        self.secret |= other.secret;
        self.holds |= other.holds;
        self.children.extend(other.children);
        if self.any.is_none() {
            self.any = other.any;
        }
    }
}

fn model() -> &'static Node {
    static MODEL: OnceLock<Node> = OnceLock::new();
    MODEL.get_or_init(|| {
        let schema = crate::schema::schema();
        let defs = schema["$defs"].as_object().cloned().unwrap_or_default();
        let mut root = node_of(&schema, &defs, 0);
        // Overlays are classified from the root: `environments.<name>.` is stripped.
        root.children.remove("environments");
        root
    })
}

fn node_of(schema: &Value, defs: &serde_json::Map<String, Value>, depth: usize) -> Node {
    let mut node = Node::default();
    if depth > 32 {
        return node;
    }
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        match reference.strip_prefix("#/$defs/") {
            Some("Secret") => {
                node.secret = true;
                node.holds = true;
            }
            Some("Overlay") | None => {}
            Some(name) => {
                if let Some(def) = defs.get(name) {
                    node.merge(node_of(def, defs, depth + 1));
                }
            }
        }
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        for alternative in schema
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            node.merge(node_of(alternative, defs, depth + 1));
        }
    }
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (name, property) in properties {
            node.children
                .insert(name.clone(), node_of(property, defs, depth + 1));
        }
    }
    let items = schema
        .get("items")
        .or_else(|| schema.get("additionalProperties").filter(|v| v.is_object()))
        .or_else(|| {
            schema
                .get("patternProperties")
                .and_then(Value::as_object)
                .and_then(|p| p.values().next())
        });
    if let Some(items) = items {
        node.any = Some(Box::new(node_of(items, defs, depth + 1)));
    }
    node.holds |=
        node.children.values().any(|c| c.holds) || node.any.as_ref().is_some_and(|a| a.holds);
    node
}

/// Words that name secrets, compared with a key whose case, `_` and `-` are dropped.
const SECRET_WORDS: [&str; 9] = [
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "credential",
    "apikey",
    "privatekey",
    "accesskey",
];

/// Words whose near misses (`passwrd`, `secert`, `tokn`) are treated as secret too.
const NEAR_WORDS: [&str; 4] = ["password", "passwd", "secret", "token"];

/// True when a key's name looks like a secret's: it contains a secret word, is one of the
/// short forms `pass`, `pwd`, `pw`, or a part of it is a near miss of a secret word.
pub(crate) fn looks_secret(name: &str) -> bool {
    let normalized: String = name
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect();
    if SECRET_WORDS.iter().any(|word| normalized.contains(word)) {
        return true;
    }
    name.split(['_', '-', '.', ' '])
        .map(str::to_lowercase)
        .chain(std::iter::once(normalized))
        .any(|part| {
            matches!(part.as_str(), "pass" | "pwd" | "pw")
                || NEAR_WORDS
                    .iter()
                    .any(|word| edit_distance(&part, word) <= (word.len() / 4).max(1))
        })
}

/// The segments of a key path, with an `environments.<name>.` prefix removed. `None` for
/// `environments` itself or one environment: an overlay may hold anything.
fn segments(path: &str) -> Option<Vec<&str>> {
    let segments: Vec<&str> = path.split('.').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        ["environments"] | ["environments", _] => None,
        ["environments", _, rest @ ..] => Some(rest.to_vec()),
        _ => Some(segments),
    }
}

/// The model's node at `segments`, or where the walk left the model: the index of the first
/// unknown segment and whether the last known node was a secret.
fn lookup(segments: &[&str]) -> Result<&'static Node, (usize, bool)> {
    let mut node = model();
    for (i, segment) in segments.iter().enumerate() {
        match node.children.get(*segment).or(node.any.as_deref()) {
            Some(child) => node = child,
            None => return Err((i, node.secret)),
        }
    }
    Ok(node)
}

/// What the value at the dotted key `path` may hold.
pub(crate) fn classify(path: &str) -> Class {
    let Some(segments) = segments(path) else {
        return Class::Holds;
    };
    if segments.is_empty() {
        return Class::Plain;
    }
    match lookup(&segments) {
        Ok(node) if node.secret => Class::Secret,
        Ok(node) if node.holds => Class::Holds,
        Ok(_) => Class::Plain,
        Err((unknown, below_secret)) => {
            let under_auth = segments[..segments.len() - 1].contains(&"auth");
            if below_secret || under_auth || segments[unknown..].iter().any(|s| looks_secret(s)) {
                Class::Secret
            } else {
                Class::Plain
            }
        }
    }
}

/// The class of a key `name` written on the line of a diagnostic about `context`: the key is
/// taken to be a child of the nearest ancestor of `context` under which the model knows it,
/// or else a sibling of `context`.
fn classify_key(name: &str, context: &str) -> Class {
    let context: Vec<&str> = context.split('.').filter(|s| !s.is_empty()).collect();
    for depth in (0..=context.len()).rev() {
        let mut candidate = context[..depth].to_vec();
        candidate.push(name);
        let path = candidate.join(".");
        if let Some(segments) = segments(&path)
            && !segments.is_empty()
            && lookup(&segments).is_ok()
        {
            return classify(&path);
        }
    }
    let mut sibling = context[..context.len().saturating_sub(1)].to_vec();
    sibling.push(name);
    classify(&sibling.join("."))
}

/// A key on a YAML line: where it starts and where the value after its `:` starts (byte
/// offsets).
struct Key<'a> {
    name: &'a str,
    value_start: usize,
}

/// The `key:` pairs on one YAML line, block or flow style, in order.
fn keys(line: &str) -> Vec<Key<'_>> {
    let bytes = line.as_bytes();
    // The byte offset of the character after the one at `at` (offsets stay on char
    // boundaries: a line may hold any Unicode, U+2028 included).
    let next = |at: usize| at + line[at..].chars().next().map_or(1, char::len_utf8);
    let mut out = Vec::new();
    let mut i = 0;
    let mut boundary = true;
    while i < bytes.len() {
        let b = bytes[i];
        // Unicode white space counts too: YAML 1.1 parsers read U+2028 and NEL as line breaks.
        let c = line[i..].chars().next().unwrap_or(' ');
        let separator = c.is_whitespace() || "{[,-?".contains(c);
        if !boundary || separator {
            boundary = separator;
            i = next(i);
            continue;
        }
        // A candidate key starts here: quoted, or plain up to `:`.
        let (name, end) = if b == b'"' || b == b'\'' {
            match line[i + 1..].find(b as char) {
                Some(close) => (&line[i + 1..i + 1 + close], i + close + 2),
                None => break,
            }
        } else {
            let len = line[i..]
                .find(|c: char| c.is_whitespace() || ":,{}[]#".contains(c))
                .unwrap_or(line.len() - i);
            (&line[i..i + len], if len == 0 { next(i) } else { i + len })
        };
        let after = line[end.min(line.len())..].trim_start();
        let colon = line.len() - after.len();
        let is_key = after.starts_with(':')
            && after[1..]
                .chars()
                .next()
                .is_none_or(|c| c.is_whitespace() || ",}]".contains(c));
        if is_key && !name.is_empty() {
            let value_start = colon + 1 + (after.len() - 1 - after[1..].trim_start().len());
            out.push(Key { name, value_start });
            i = colon + 1;
        } else {
            i = end.max(next(i));
        }
        boundary = false;
    }
    out
}

/// `line` (a line of the user's file, shown in a diagnostic about `context`) with the value
/// of its first secret key replaced by `<redacted>` to the end of the line; or, when
/// `context` itself is secret and the line shows a bare value, everything from `column`
/// (counted in characters, from 1). Returns the new line and the character index where the
/// redaction starts, or `None` when nothing on the line is secret.
pub(crate) fn redact_line(line: &str, context: &str, column: usize) -> Option<(String, usize)> {
    let keys = keys(line);
    let secret = keys.iter().find(|key| {
        let value = line[key.value_start..].trim();
        let scalar = !value.is_empty() && !value.starts_with(['{', '[', '#']);
        match classify_key(key.name, context) {
            Class::Secret => !value.is_empty() && !value.starts_with('#'),
            Class::Holds => scalar,
            Class::Plain => false,
        }
    });
    let start = match secret {
        Some(key) => key.value_start,
        None if keys.is_empty() && classify(context) == Class::Secret => line
            .char_indices()
            .nth(column.saturating_sub(1))
            .map_or(line.len(), |(i, _)| i),
        None => return None,
    };
    if line[start..].trim().is_empty() {
        return None;
    }
    let chars = line[..start].chars().count();
    Some((format!("{}{}", &line[..start], Secret::REDACTED), chars))
}

/// A `--set` argument with its value redacted when its key is secret (or holds secrets).
/// An argument without `=` is split at its first `:` or space, the likely mistakes.
pub(crate) fn redact_set(arg: &str) -> Option<String> {
    let split = arg.find('=').or_else(|| arg.find([':', ' ']))?;
    let (key, value) = arg.split_at(split);
    let value = &value[1..];
    if value.is_empty() || classify(key.trim()) == Class::Plain {
        return None;
    }
    Some(format!("{key}{}{}", &arg[split..=split], Secret::REDACTED))
}

/// `text` with every double-quoted string in it (the form `{:?}` gives values in messages)
/// replaced by `"<redacted>"`.
pub(crate) fn scrub_quoted(text: &str) -> String {
    scrub_quoted_except(text, "")
}

/// Like [`scrub_quoted`], but a quoted value equal to one of the dot-separated segments of
/// `path` stays: it is a key name shown in the path anyway (an environment's name, say),
/// not a value.
pub(crate) fn scrub_quoted_except(text: &str, path: &str) -> String {
    let keep = |body: &str| !body.is_empty() && path.split('.').any(|segment| segment == body);
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('"') {
        out.push_str(&rest[..open]);
        let body = &rest[open + 1..];
        let mut escaped = false;
        let close = body.char_indices().find(|&(_, c)| {
            let end = c == '"' && !escaped;
            escaped = c == '\\' && !escaped;
            end
        });
        match close {
            Some((close, _)) => {
                out.push('"');
                if keep(&body[..close]) {
                    out.push_str(&body[..close]);
                } else {
                    out.push_str(Secret::REDACTED);
                }
                out.push('"');
                rest = &body[close + 1..];
            }
            None => {
                out.push('"');
                out.push_str(Secret::REDACTED);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// An environment overlay as it may print: secret values (by the rules above, with paths
/// taken from the stack's root) replaced by `<redacted>`. A null stays null: nothing is set.
pub(crate) fn overlay(value: &Value) -> Value {
    match value {
        Value::Object(_) => redact_tree(value, &mut Vec::new()),
        Value::Null => Value::Null,
        _ => Value::from(Secret::REDACTED),
    }
}

fn redact_tree(value: &Value, path: &mut Vec<String>) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, child)| {
                    path.push(key.clone());
                    let class = classify(&path.join("."));
                    let redacted = match (class, child) {
                        (_, Value::Null) => Value::Null,
                        (Class::Secret, _) => Value::from(Secret::REDACTED),
                        (Class::Holds, Value::Object(_) | Value::Array(_)) | (Class::Plain, _) => {
                            redact_tree(child, path)
                        }
                        (Class::Holds, _) => Value::from(Secret::REDACTED),
                    };
                    path.pop();
                    (key.clone(), redacted)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(index, item)| {
                    path.push(index.to_string());
                    let class = classify(&path.join("."));
                    let redacted = match (class, item) {
                        (Class::Secret, Value::String(_) | Value::Number(_) | Value::Bool(_)) => {
                            Value::from(Secret::REDACTED)
                        }
                        _ => redact_tree(item, path),
                    };
                    path.pop();
                    redacted
                })
                .collect(),
        ),
        scalar => scalar.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_with_any_unicode_are_read_on_char_boundaries() {
        // Found by the `load` fuzz target: U+2028 inside a plain scalar split a character.
        for line in [
            "nama\u{2028}---\u{2028}kindr",
            "\u{2028}: x",
            "a \u{2028}password: hunter2",
            "{ é: 1, password: \u{85}hunter2 }",
        ] {
            let _ = keys(line);
            let _ = redact_line(line, "redis.auth", 1);
        }
        let (redacted, _) = redact_line("\u{2028}password: hunter2", "redis.auth", 1)
            .expect("the password is found");
        assert!(!redacted.contains("hunter2"), "{redacted}");
    }

    #[test]
    fn classifies_model_paths_by_type() {
        assert_eq!(classify("redis.auth.password"), Class::Secret);
        assert_eq!(
            classify("environments.prod.redis.auth.password"),
            Class::Secret
        );
        assert_eq!(classify("redis.auth"), Class::Holds);
        assert_eq!(classify("redis"), Class::Holds);
        assert_eq!(classify("environments.prod"), Class::Holds);
        assert_eq!(classify("redis.auth.enabled"), Class::Plain);
        assert_eq!(classify("redis.auth.secret.key"), Class::Plain);
        assert_eq!(
            classify("observability.grafana.admin.password_secret"),
            Class::Plain
        );
        assert_eq!(classify("images.pull_secrets.0"), Class::Plain);
        assert_eq!(classify("server.port"), Class::Plain);
        assert_eq!(classify(""), Class::Plain);
    }

    #[test]
    fn classifies_unknown_paths_by_name() {
        for secret in [
            "redis.auth.passwrd",
            "redis.auth.pasword",
            "redis.auth.key",
            "redis.auth.anything",
            "redis.auth.password.nested",
            "server.api_token",
            "server.secret_key",
            "grafana.admin_pass",
            "x.client-secret",
            "x.Secert",
            "x.tokn",
        ] {
            assert_eq!(classify(secret), Class::Secret, "{secret}");
        }
        for plain in [
            "server.prot",
            "redis.hots",
            "redis.key",
            "x.passage",
            "x.keys",
        ] {
            assert_eq!(classify(plain), Class::Plain, "{plain}");
        }
    }

    #[test]
    fn redacts_secret_values_on_a_line() {
        let line = |text: &str, context: &str| redact_line(text, context, 1).map(|(l, _)| l);
        assert_eq!(
            line("    password: hunter2", "").as_deref(),
            Some("    password: <redacted>")
        );
        assert_eq!(
            line("    passwrd: \"hunter2\" # typo", "redis.auth.passwrd").as_deref(),
            Some("    passwrd: <redacted>")
        );
        assert_eq!(
            line(
                "  auth: { enabled: true, password: hunter2 }",
                "redis.auth.enabled"
            )
            .as_deref(),
            Some("  auth: { enabled: true, password: <redacted>")
        );
        assert_eq!(
            line("  auth: hunter2", "redis.auth").as_deref(),
            Some("  auth: <redacted>")
        );
        assert_eq!(
            line("- {token: abc}", "").as_deref(),
            Some("- {token: <redacted>")
        );
        assert_eq!(
            line("    password: ~", "redis.auth.password").as_deref(),
            Some("    password: <redacted>")
        );
        assert_eq!(line("    password:", "redis.auth.password"), None);
        assert_eq!(line("  auth: { enabled: false }", "redis.auth"), None);
        assert_eq!(line("      key: password", "redis.auth.secret.key"), None);
        assert_eq!(
            line(
                "      password_secret: { name: a, key: password }",
                "observability.grafana.admin.password_secret.key"
            ),
            None
        );
        assert_eq!(line("  port: 70000", "redis.port"), None);
        // A bare value of a secret (a continuation or block scalar line) is cut at the column.
        assert_eq!(
            redact_line("      hunter2", "redis.auth.password", 7),
            Some(("      <redacted>".to_owned(), 6))
        );
    }

    #[test]
    fn reads_any_line_without_panicking() {
        for text in [
            "",
            ":",
            "- : x",
            "\"",
            "'unterminated: x",
            "\"a\": \"b\"",
            "ä: ö",
            "  日本: 語, password: 秘密",
            "é\"password\": x",
            "{{[[,,::",
            "password:x",
            "password : x",
        ] {
            for column in 0..8 {
                let _ = redact_line(text, "redis.auth.password", column);
                let _ = redact_line(text, "", column);
            }
        }
        assert_eq!(
            redact_line("  日本: 語, password: 秘密", "", 1),
            Some(("  日本: 語, password: <redacted>".to_owned(), 19))
        );
        assert_eq!(
            redact_line("password : x", "", 1),
            Some(("password : <redacted>".to_owned(), 11))
        );
        // `password:x` is a plain scalar, not a key, in YAML.
        assert_eq!(redact_line("password:x", "", 1), None);
    }

    #[test]
    fn redacts_set_arguments() {
        assert_eq!(
            redact_set("redis.auth.password=hunter2").as_deref(),
            Some("redis.auth.password=<redacted>")
        );
        assert_eq!(
            redact_set("redis.auth.passwrd=hunter2").as_deref(),
            Some("redis.auth.passwrd=<redacted>")
        );
        assert_eq!(
            redact_set("redis.auth=hunter2").as_deref(),
            Some("redis.auth=<redacted>")
        );
        assert_eq!(
            redact_set("redis.auth.password:hunter2").as_deref(),
            Some("redis.auth.password:<redacted>")
        );
        assert_eq!(redact_set("server.port=1"), None);
        assert_eq!(redact_set("redis.auth.secret.key=password"), None);
        assert_eq!(redact_set("novalue"), None);
    }

    #[test]
    fn scrubs_quoted_values() {
        assert_eq!(
            scrub_quoted(r#"expected a string, found "a \"b\" c" and "d""#),
            r#"expected a string, found "<redacted>" and "<redacted>""#
        );
        assert_eq!(scrub_quoted("no quotes"), "no quotes");
        assert_eq!(scrub_quoted("open \"end"), "open \"<redacted>");
    }

    #[test]
    fn redacts_overlays() {
        let overlay = serde_json::json!({
            "redis": {
                "host": "redis.prod",
                "auth": { "password": "hunter2", "passwrd": "hunter3", "enabled": true },
            },
            "server": { "port": 1, "api_token": "t0k3n" },
            "client": { "address": null },
        });
        assert_eq!(
            super::overlay(&overlay),
            serde_json::json!({
                "redis": {
                    "host": "redis.prod",
                    "auth": { "password": "<redacted>", "passwrd": "<redacted>", "enabled": true },
                },
                "server": { "port": 1, "api_token": "<redacted>" },
                "client": { "address": null },
            })
        );
        assert_eq!(
            super::overlay(&serde_json::json!("hunter2")),
            serde_json::json!("<redacted>")
        );
    }
}
