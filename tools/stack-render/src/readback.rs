//! Reads every rendered file back, the way the programs that consume it will, before anything
//! is written: the last line of defence should a quoting filter or a template ever let a
//! value change a file's structure.
//!
//! - No file holds a raw character that [`crate::quote::must_escape`] names (other than LF
//!   and TAB): line breaks only some parsers honour (U+2028, U+2029, NEL, CR), controls, a
//!   byte order mark, bidirectional controls.
//! - Every YAML file is parsed by two independent parsers: libyaml (through `serde_yaml`,
//!   whose parser is a line-by-line port of the C libyaml that PyYAML, Ruby and, in Go's
//!   port, kubectl and the Prometheus/Loki/Tempo/Mimir config loaders follow; it honours
//!   YAML 1.1's Unicode line breaks) and yaml-rust2 (YAML 1.2; it does not). Both must read
//!   the same documents, key for key and scalar for scalar, so a value that one of them would
//!   split, fold or reinterpret fails the render.
//! - The documents libyaml reads have the kinds, in order, that the template writes when
//!   every value is replaced by a placeholder (its "skeleton", rendered with
//!   [`crate::filters::Filters::Skeleton`]): no value can add, drop or retype a document.
//! - Every JSON file parses.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize as _;
use yaml_rust2::{Yaml, YamlLoader};

use crate::Rendered;
use crate::quote::must_escape;

/// A parsed YAML node, comparable across parsers.
#[derive(Clone, Debug, PartialEq)]
enum Node {
    Null,
    Bool(bool),
    Int(i128),
    /// A float, as Rust's debug format writes it (so that NaN equals NaN).
    Float(String),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
    /// A node with an explicit tag (libyaml keeps it; yaml-rust2 drops most).
    Tagged(String, Box<Node>),
    /// A value yaml-rust2 could not represent.
    Bad,
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Self::Null => "null".to_owned(),
            Self::Bool(b) => b.to_string(),
            Self::Int(i) => i.to_string(),
            Self::Float(x) => x.clone(),
            Self::Str(s) => crate::quote::json_string(s),
            Self::Seq(items) => format!("a list of {}", items.len()),
            Self::Map(entries) => format!("a mapping of {} keys", entries.len()),
            Self::Tagged(tag, node) => format!("{tag} {node}"),
            Self::Bad => "an invalid value".to_owned(),
        };
        if text.chars().count() > 80 {
            let cut: String = text.chars().take(77).collect();
            write!(f, "{cut}...")
        } else {
            f.write_str(&text)
        }
    }
}

impl Node {
    /// The `kind` of a document (a Kubernetes object), if it has one.
    fn kind(&self) -> Option<String> {
        let Self::Map(entries) = self else {
            return None;
        };
        entries.iter().find_map(|(key, value)| match (key, value) {
            (Self::Str(key), Self::Str(kind)) if key == "kind" => Some(kind.clone()),
            _ => None,
        })
    }
}

fn from_libyaml(value: serde_yaml::Value) -> Node {
    use serde_yaml::Value;
    match value {
        Value::Null => Node::Null,
        Value::Bool(b) => Node::Bool(b),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Node::Int(i.into()),
            (None, Some(u), _) => Node::Int(u.into()),
            (None, None, Some(x)) => Node::Float(format!("{x:?}")),
            (None, None, None) => Node::Bad,
        },
        Value::String(s) => Node::Str(s),
        Value::Sequence(items) => Node::Seq(items.into_iter().map(from_libyaml).collect()),
        Value::Mapping(map) => Node::Map(
            map.into_iter()
                .map(|(k, v)| (from_libyaml(k), from_libyaml(v)))
                .collect(),
        ),
        Value::Tagged(tagged) => {
            Node::Tagged(tagged.tag.to_string(), Box::new(from_libyaml(tagged.value)))
        }
    }
}

fn from_yaml_rust2(yaml: &Yaml) -> Node {
    match yaml {
        Yaml::Null => Node::Null,
        Yaml::Boolean(b) => Node::Bool(*b),
        Yaml::Integer(i) => Node::Int((*i).into()),
        Yaml::Real(_) => yaml
            .as_f64()
            .map_or(Node::Bad, |x| Node::Float(format!("{x:?}"))),
        Yaml::String(s) => Node::Str(s.clone()),
        Yaml::Array(items) => Node::Seq(items.iter().map(from_yaml_rust2).collect()),
        Yaml::Hash(map) => Node::Map(
            map.iter()
                .map(|(k, v)| (from_yaml_rust2(k), from_yaml_rust2(v)))
                .collect(),
        ),
        Yaml::Alias(_) | Yaml::BadValue => Node::Bad,
    }
}

/// The documents of `text` as libyaml reads them.
fn libyaml_documents(text: &str) -> Result<Vec<Node>, String> {
    serde_yaml::Deserializer::from_str(text)
        .map(|document| {
            serde_yaml::Value::deserialize(document)
                .map(from_libyaml)
                .map_err(|error| error.to_string())
        })
        .collect()
}

/// The documents of `text` as yaml-rust2 reads them.
fn yaml_rust2_documents(text: &str) -> Result<Vec<Node>, String> {
    YamlLoader::load_from_str(text)
        .map(|docs| docs.iter().map(from_yaml_rust2).collect())
        .map_err(|error| error.to_string())
}

/// The kind of each document a template's skeleton writes (`None` for a document without
/// one, such as a config file).
pub(crate) fn intended_kinds(skeleton: &str) -> Result<Vec<Option<String>>, String> {
    Ok(yaml_rust2_documents(skeleton)?
        .iter()
        .map(Node::kind)
        .collect())
}

fn kinds_text(kinds: &[Option<String>]) -> String {
    let named: Vec<&str> = kinds
        .iter()
        .map(|kind| kind.as_deref().unwrap_or("(no kind)"))
        .collect();
    format!("{} document(s): {}", kinds.len(), named.join(", "))
}

/// Where two parses first differ: a path like `data."stack.yaml"` or `spec.ports[0]`, and
/// the two nodes there.
fn first_difference(a: &Node, b: &Node, path: &str) -> Option<(String, Node, Node)> {
    let here = || Some((path.to_owned(), a.clone(), b.clone()));
    match (a, b) {
        (Node::Seq(xs), Node::Seq(ys)) => {
            for (i, (x, y)) in xs.iter().zip(ys).enumerate() {
                if let Some(found) = first_difference(x, y, &format!("{path}[{i}]")) {
                    return Some(found);
                }
            }
            (xs.len() != ys.len()).then(here).flatten()
        }
        (Node::Map(xs), Node::Map(ys)) => {
            for ((kx, vx), (ky, vy)) in xs.iter().zip(ys) {
                let key = match kx {
                    Node::Str(s)
                        if s.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
                    {
                        s.clone()
                    }
                    other => other.to_string(),
                };
                let sub = if path.is_empty() {
                    key
                } else {
                    format!("{path}.{key}")
                };
                if kx != ky {
                    return Some((sub, kx.clone(), ky.clone()));
                }
                if let Some(found) = first_difference(vx, vy, &sub) {
                    return Some(found);
                }
            }
            (xs.len() != ys.len()).then(here).flatten()
        }
        _ => (a != b).then(here).flatten(),
    }
}

/// A raw character that must not be in a rendered file: its line and a description.
fn raw_character(text: &str) -> Option<(usize, String)> {
    text.split('\n').enumerate().find_map(|(i, line)| {
        line.chars()
            .find(|&c| c != '\t' && must_escape(c))
            .map(|c| (i + 1, format!("U+{:04X}", u32::from(c))))
    })
}

/// Checks `rendered`; `intended` holds, for each YAML file, the kinds of the documents it is
/// meant to hold. Returns every problem found.
pub(crate) fn check(
    rendered: &Rendered,
    intended: &BTreeMap<String, Vec<Option<String>>>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for (path, text) in &rendered.files {
        if let Some((line, character)) = raw_character(text) {
            problems.push(format!(
                "{path}, line {line}: a raw {character}, which some parsers read as a line \
                 break or a control character; values must be written through a quoting filter"
            ));
            continue;
        }
        if path.ends_with(".json") {
            if let Err(error) = serde_json::from_str::<serde_json::Value>(text) {
                problems.push(format!("{path} is not valid JSON: {error}"));
            }
            continue;
        }
        if !(path.ends_with(".yaml") || path.ends_with(".yml")) {
            continue;
        }
        let libyaml = match libyaml_documents(text) {
            Ok(docs) => docs,
            Err(error) => {
                problems.push(format!("{path}: libyaml cannot read it: {error}"));
                continue;
            }
        };
        let rust2 = match yaml_rust2_documents(text) {
            Ok(docs) => docs,
            Err(error) => {
                problems.push(format!("{path}: yaml-rust2 cannot read it: {error}"));
                continue;
            }
        };
        let kinds: Vec<Option<String>> = libyaml.iter().map(Node::kind).collect();
        if let Some(meant) = intended.get(path)
            && *meant != kinds
        {
            problems.push(format!(
                "{path}: the template writes {}, but libyaml reads {}: a value changed the \
                 file's structure",
                kinds_text(meant),
                kinds_text(&kinds)
            ));
            continue;
        }
        if libyaml.len() != rust2.len() {
            let other: Vec<Option<String>> = rust2.iter().map(Node::kind).collect();
            problems.push(format!(
                "{path}: libyaml reads {}, yaml-rust2 reads {}",
                kinds_text(&kinds),
                kinds_text(&other)
            ));
            continue;
        }
        for (i, (a, b)) in libyaml.iter().zip(&rust2).enumerate() {
            if let Some((at, x, y)) = first_difference(a, b, "") {
                let at = if at.is_empty() {
                    "the top".to_owned()
                } else {
                    at
                };
                problems.push(format!(
                    "{path}, document {}: at {at}, libyaml reads {x} but yaml-rust2 reads {y}",
                    i + 1
                ));
                break;
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(path: &str, text: &str) -> Rendered {
        Rendered {
            files: [(path.to_owned(), text.to_owned())].into(),
        }
    }

    #[test]
    fn a_unicode_line_break_in_a_block_scalar_is_caught() {
        // What `block` wrote before it refused U+2028: libyaml ends the line there.
        let text = "kind: ConfigMap\ndata:\n  stack.yaml: |\n    a: \"x\u{2028}---\u{2028}kind: ClusterRoleBinding\"\n";
        let problems = check(&one("k8s/x.yaml", text), &BTreeMap::new());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("k8s/x.yaml, line 4: a raw U+2028"),
            "{problems:?}"
        );
    }

    #[test]
    fn parsers_must_agree() {
        // No raw character, but the parsers disagree: compare without the raw check.
        let a = libyaml_documents("a: \"x\"\n").expect("parses");
        let b = yaml_rust2_documents("a: \"y\"\n").expect("parses");
        let (at, x, y) = first_difference(&a[0], &b[0], "").expect("a difference");
        assert_eq!(
            (at.as_str(), x.to_string(), y.to_string()),
            ("a", "\"x\"".into(), "\"y\"".into())
        );
        // Escapes decode alike in both.
        let text = "a: \"\\u2028\\u0085\\ufeff\\t\\r\"\n";
        assert_eq!(
            libyaml_documents(text).expect("parses"),
            yaml_rust2_documents(text).expect("parses")
        );
    }

    #[test]
    fn the_documents_must_be_the_intended_ones() {
        let text = "kind: ConfigMap\n---\nkind: ClusterRoleBinding\n";
        let intended = [("k8s/x.yaml".to_owned(), vec![Some("ConfigMap".to_owned())])].into();
        let problems = check(&one("k8s/x.yaml", text), &intended);
        assert_eq!(
            problems,
            [
                "k8s/x.yaml: the template writes 1 document(s): ConfigMap, but libyaml reads 2 \
              document(s): ConfigMap, ClusterRoleBinding: a value changed the file's structure"
            ]
        );
    }
}
