//! Free text in any field never changes the structure of a rendered file: every YAML file
//! holds the same documents as with harmless values, as libyaml (through serde_yaml, a
//! line-by-line port, the parser PyYAML and kubectl's Go port follow) and yaml-rust2 both
//! read it, every JSON file parses, and each value reads back exactly where it was put.
//!
//! The text is drawn on purpose from what YAML parsers treat as line breaks or indicators:
//! U+2028, U+2029, NEL, CR, LF, the byte order mark, C0 and C1 controls, DEL, quotes,
//! document markers, comment, anchor, alias, tag and directive indicators, flow brackets and
//! leading or trailing blanks.
//!
//! Values are assigned to a built stack directly, bypassing validation: the renderer must
//! hold up for any value, valid or not.

use std::collections::BTreeMap;

use proptest::prelude::*;
use stack_config::Stack;
use stack_config::types::{KeyPrefix, SecretKey};
use stack_render::{Rendered, Templates, render};
use yaml_rust2::{Yaml, YamlLoader};

/// Pieces of text that have broken YAML, JSON and shell generators before.
fn piece() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "\u{2028}",
        "\u{2029}",
        "\u{85}",
        "\r",
        "\n",
        "\r\n",
        "\u{feff}",
        "\0",
        "\u{1}",
        "\u{7}",
        "\u{8}",
        "\u{b}",
        "\u{c}",
        "\u{1b}",
        "\u{1f}",
        "\t",
        "\u{7f}",
        "\u{80}",
        "\u{9b}",
        "\u{9f}",
        "\u{fffe}",
        "\u{202e}",
        "'",
        "\"",
        "\\",
        "`",
        "---",
        "...",
        "#",
        ": ",
        "&",
        "*",
        "!",
        "%",
        "@",
        "{",
        "}",
        "[",
        "]",
        "|",
        ">",
        "- ",
        "? ",
        ",",
        " ",
        "  ",
        "$",
        "{{ x }}",
        "kind: ClusterRoleBinding",
        "yes",
        "null",
        "~",
        "0123",
        "a",
        "é",
        "🦀",
    ])
}

/// Hostile text: a run of pieces, a known troublemaker, or arbitrary Unicode.
fn nasty() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::collection::vec(piece(), 0..12).prop_map(|pieces| pieces.concat()),
        1 => prop::sample::select(vec![
            "yes", "0123", "~", "*alias", "&anchor", "# comment", "  leading spaces",
            "trailing: colon:", "multi\nline\n", "{{ not a template }}", "- item", "null",
            "\u{2028}---\u{2028}kind: ClusterRoleBinding\u{2028}metadata: {name: x}",
        ])
        .prop_map(str::to_owned),
        1 => "\\PC{0,40}",
        1 => any::<String>(),
    ]
}

/// A key prefix: anything without whitespace, at most 64 bytes.
/// Keys of a Secret, the YAML-tricky ones among them: only valid keys are representable.
fn secret_key() -> impl Strategy<Value = SecretKey> {
    prop_oneof![
        1 => prop::sample::select(vec!["yes", "0123", "null", "-", "1e3", "...", "~x", "-.-"])
            .prop_map(str::to_owned),
        3 => "[-._a-zA-Z0-9]{1,40}",
    ]
    .prop_filter_map("a key of a Secret", |key| SecretKey::new(key).ok())
}

fn prefix() -> impl Strategy<Value = String> {
    "[^\\s]{0,20}".prop_filter("fits a key prefix", |p| KeyPrefix::new(p.clone()).is_ok())
}

/// Every document of every YAML file as libyaml reads it.
fn libyaml(rendered: &Rendered) -> BTreeMap<String, Vec<serde_yaml::Value>> {
    use serde::Deserialize as _;
    rendered
        .files
        .iter()
        .filter(|(path, _)| path.ends_with(".yaml") || path.ends_with(".yml"))
        .map(|(path, text)| {
            let docs = serde_yaml::Deserializer::from_str(text)
                .map(|doc| {
                    serde_yaml::Value::deserialize(doc)
                        .unwrap_or_else(|error| panic!("libyaml reads {path}: {error}\n{text}"))
                })
                .collect();
            (path.clone(), docs)
        })
        .collect()
}

/// `(kind, name)` of every document of every YAML file.
fn shape(docs: &BTreeMap<String, Vec<serde_yaml::Value>>) -> Vec<(String, String, String)> {
    docs.iter()
        .flat_map(|(path, docs)| {
            docs.iter().map(move |doc| {
                (
                    path.clone(),
                    doc["kind"].as_str().unwrap_or("-").to_owned(),
                    doc["metadata"]["name"].as_str().unwrap_or("-").to_owned(),
                )
            })
        })
        .collect()
}

fn parse(text: &str) -> Vec<Yaml> {
    YamlLoader::load_from_str(text).unwrap_or_else(|error| panic!("parses: {error}\n{text}"))
}

/// The first document of `docs` whose `kind` is `kind`.
fn find<'a>(docs: &'a [serde_yaml::Value], kind: &str) -> &'a serde_yaml::Value {
    docs.iter()
        .find(|doc| doc["kind"].as_str() == Some(kind))
        .unwrap_or_else(|| panic!("a {kind}"))
}

/// The value of environment variable `name` of the first container of `workload`.
fn env<'a>(workload: &'a serde_yaml::Value, name: &str) -> &'a serde_yaml::Value {
    workload["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_sequence()
        .expect("env")
        .iter()
        .find(|e| e["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("{name} is set"))
}

/// The shape of a render with harmless values, to compare with.
fn baseline() -> Vec<(String, String, String)> {
    let rendered = render(&Stack::default(), &Templates::embedded()).expect("renders");
    shape(&libyaml(&rendered))
}

/// Runs `script` with bash and returns what it prints.
fn bash(script: &str) -> String {
    let output = std::process::Command::new("bash")
        .args(["-c", script])
        .output()
        .expect("bash runs");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn values_read_back_exactly(
        user in nasty(),
        key in secret_key(),
        grafana_key in secret_key(),
        path in nasty(),
        key_prefix in prefix(),
    ) {
        // The addresses keep a host and port that are not in the cluster (so the
        // cross-reference check lets them be) and carry the hostile text in their path.
        let endpoint = format!("http://otel.example.com:4317/{path}");
        let address = format!("http://server.example.com:50051/{path}");
        let mut stack = Stack::default();
        stack.observability.grafana.admin.user = user.clone();
        stack.observability.grafana.admin.password_secret.key = grafana_key.clone();
        stack.redis.auth.secret.key = key.clone();
        stack.observability.tracing.endpoint = Some(endpoint.clone());
        stack.client.address = Some(address.clone());
        stack.redis.key_prefix = KeyPrefix::new(key_prefix.clone()).expect("valid");
        let rendered = render(&stack, &Templates::embedded()).expect("renders");

        // Every file: no raw line break other than LF, no control other than TAB.
        for (file, text) in &rendered.files {
            let raw = text.chars().find(|&c| {
                matches!(c, '\r' | '\u{85}' | '\u{2028}' | '\u{2029}' | '\u{feff}')
                    || (c.is_control() && c != '\n' && c != '\t')
            });
            prop_assert_eq!(raw, None, "{} holds a raw {:?}", file, raw);
            if file.ends_with(".json") {
                serde_json::from_str::<serde_json::Value>(text).expect("JSON parses");
            }
        }

        // The same documents as with harmless values, as libyaml reads them.
        let docs = libyaml(&rendered);
        prop_assert_eq!(shape(&docs), baseline());
        for (file, text) in &rendered.files {
            if file.ends_with(".yaml") || file.ends_with(".yml") {
                prop_assert_eq!(parse(text).len(), docs[file].len(), "{}", file);
            }
        }

        // Each value reads back exactly, with libyaml ...
        let grafana = find(&docs["k8s/grafana.yaml"], "Deployment");
        prop_assert_eq!(env(grafana, "GF_SECURITY_ADMIN_USER")["value"].as_str(), Some(user.as_str()));
        prop_assert_eq!(
            env(grafana, "GF_SECURITY_ADMIN_PASSWORD")["valueFrom"]["secretKeyRef"]["key"].as_str(),
            Some(grafana_key.as_str())
        );
        let server = find(&docs["k8s/server.yaml"], "Deployment");
        prop_assert_eq!(
            env(server, "TASKMANAGER__REDIS__AUTH__PASSWORD")["valueFrom"]["secretKeyRef"]["key"].as_str(),
            Some(key.as_str())
        );
        let redis = find(&docs["k8s/redis.yaml"], "StatefulSet");
        prop_assert_eq!(
            redis["spec"]["template"]["spec"]["containers"][0]["env"][0]["valueFrom"]["secretKeyRef"]["key"].as_str(),
            Some(key.as_str())
        );
        let client = find(&docs["k8s/client.yaml"], "Deployment");
        prop_assert_eq!(
            client["spec"]["template"]["spec"]["containers"][0]["args"][3].as_str(),
            Some(address.as_str())
        );

        // ... and the ConfigMap holds the resolved stack byte for byte, which reads back.
        let config_map = find(&docs["k8s/server.yaml"], "ConfigMap");
        let embedded = config_map["data"]["stack.yaml"].as_str().expect("stack.yaml");
        prop_assert_eq!(embedded, rendered.files["configs/stack.yaml"].as_str());
        let resolved = &docs["configs/stack.yaml"][0];
        prop_assert_eq!(resolved["redis"]["key_prefix"].as_str(), Some(key_prefix.as_str()));
        prop_assert_eq!(resolved["redis"]["auth"]["secret"]["key"].as_str(), Some(key.as_str()));
        prop_assert_eq!(resolved["observability"]["grafana"]["admin"]["user"].as_str(), Some(user.as_str()));
        prop_assert_eq!(
            resolved["observability"]["tracing"]["endpoint"].as_str(),
            Some(endpoint.as_str())
        );
        prop_assert_eq!(resolved["client"]["address"].as_str(), Some(address.as_str()));

        // yaml-rust2 reads the same.
        let resolved = parse(&rendered.files["configs/stack.yaml"]);
        prop_assert_eq!(resolved[0]["observability"]["grafana"]["admin"]["user"].as_str(), Some(user.as_str()));
        prop_assert_eq!(
            resolved[0]["observability"]["tracing"]["endpoint"].as_str(),
            Some(endpoint.as_str())
        );

        // The docker run script assigns the prefix as one shell word.
        let script = &rendered.files["local/docker-run.sh"];
        let assignment = script
            .lines()
            .find(|line| line.starts_with("key_prefix="))
            .expect("the prefix is assigned")
            .to_owned();
        prop_assert_eq!(bash(&format!("{assignment}\nprintf %s \"$key_prefix\"")), key_prefix);
    }
}
