//! Regression: a value holding a Unicode line break followed by `---` and a
//! ClusterRoleBinding once rendered a server manifest in which libyaml (PyYAML, kubectl) read
//! an extra document, because the resolved stack went into its ConfigMap as a block scalar
//! that U+2028 ended early. Each field that carried it, with each line break YAML parsers
//! disagree about, must now render the same documents as before and read back exactly.
//!
//! The values are assigned to a loaded stack directly, bypassing validation (which may refuse
//! them): the renderer must hold up for any value, valid or not.

use std::path::Path;

use serde::Deserialize as _;
use stack_config::{Loader, Stack};
use stack_render::{Rendered, Templates, render};

fn shipped() -> Stack {
    Loader::new()
        .file(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../stack.yaml"))
        .load()
        .unwrap_or_else(|report| panic!("valid stack:\n{report}"))
        .stack
}

/// The injection, with `brk` as the line break. It ends in a host:port outside the cluster,
/// so that the address fields still name one.
fn payload(brk: &str) -> String {
    format!(
        "http://a.example.com:4317/{brk}---{brk}apiVersion: rbac.authorization.k8s.io/v1{brk}\
         kind: ClusterRoleBinding{brk}metadata: {{name: pwn}}{brk}roleRef: {{kind: ClusterRole, \
         name: cluster-admin}}{brk}subjects: [{{kind: ServiceAccount, name: default, namespace: \
         taskmanager}}]{brk}"
    )
}

/// Every document of every YAML file, as libyaml reads it.
fn documents(rendered: &Rendered) -> Vec<(String, serde_yaml::Value)> {
    let mut out = Vec::new();
    for (path, text) in &rendered.files {
        if path.ends_with(".yaml") || path.ends_with(".yml") {
            for doc in serde_yaml::Deserializer::from_str(text) {
                let doc = serde_yaml::Value::deserialize(doc)
                    .unwrap_or_else(|error| panic!("libyaml reads {path}: {error}"));
                out.push((path.clone(), doc));
            }
        }
    }
    out
}

/// `(file, kind, name)` of every document.
fn shape(rendered: &Rendered) -> Vec<(String, String, String)> {
    documents(rendered)
        .into_iter()
        .map(|(path, doc)| {
            let kind = doc["kind"].as_str().unwrap_or("-").to_owned();
            let name = doc["metadata"]["name"].as_str().unwrap_or("-").to_owned();
            (path, kind, name)
        })
        .collect()
}

/// The one document of `file` with `kind`.
fn find(rendered: &Rendered, file: &str, kind: &str) -> serde_yaml::Value {
    documents(rendered)
        .into_iter()
        .find(|(path, doc)| path == file && doc["kind"].as_str() == Some(kind))
        .map(|(_, doc)| doc)
        .unwrap_or_else(|| panic!("a {kind} in {file}"))
}

fn env(workload: &serde_yaml::Value, name: &str) -> serde_yaml::Value {
    workload["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_sequence()
        .expect("env")
        .iter()
        .find(|e| e["name"].as_str() == Some(name))
        .cloned()
        .unwrap_or_else(|| panic!("{name} is set"))
}

const BREAKS: [(&str, &str); 6] = [
    ("U+2028", "\u{2028}"),
    ("U+2029", "\u{2029}"),
    ("NEL", "\u{85}"),
    ("CR", "\r"),
    ("LF", "\n"),
    ("CRLF", "\r\n"),
];

/// A field, how to set it, and where the value must read back in the render.
struct Field {
    key: &'static str,
    set: fn(&mut Stack, String),
    read: fn(&Rendered) -> Vec<Option<String>>,
}

fn resolved(rendered: &Rendered, pointer: &str) -> Option<String> {
    let docs = documents(rendered);
    let stack = &docs
        .iter()
        .find(|(path, _)| path == "configs/stack.yaml")
        .expect("the resolved stack")
        .1;
    let mut node = stack;
    for key in pointer.split('.') {
        node = &node[key];
    }
    node.as_str().map(str::to_owned)
}

const FIELDS: [Field; 3] = [
    Field {
        key: "observability.tracing.endpoint",
        set: |stack, value| stack.observability.tracing.endpoint = Some(value),
        read: |r| vec![resolved(r, "observability.tracing.endpoint")],
    },
    Field {
        key: "observability.grafana.admin.user",
        set: |stack, value| stack.observability.grafana.admin.user = value,
        read: |r| {
            let grafana = find(r, "k8s/grafana.yaml", "Deployment");
            vec![
                resolved(r, "observability.grafana.admin.user"),
                env(&grafana, "GF_SECURITY_ADMIN_USER")["value"]
                    .as_str()
                    .map(str::to_owned),
            ]
        },
    },
    Field {
        key: "client.address",
        set: |stack, value| stack.client.address = Some(value),
        read: |r| {
            let client = find(r, "k8s/client.yaml", "Deployment");
            vec![
                resolved(r, "client.address"),
                client["spec"]["template"]["spec"]["containers"][0]["args"][3]
                    .as_str()
                    .map(str::to_owned),
            ]
        },
    },
];

/// The keys of Secrets cannot hold a payload at all: their type refuses it when the stack is
/// read, so no stack carries one to the renderer.
#[test]
fn secret_keys_cannot_hold_a_payload() {
    for (name, brk) in BREAKS {
        let refused = stack_config::types::SecretKey::new(payload(brk));
        assert!(refused.is_err(), "a Secret key with {name}");
    }
}

#[test]
fn a_cluster_role_binding_cannot_be_injected_through_any_field() {
    let base = shipped();
    let expected = shape(&render(&base, &Templates::embedded()).expect("renders"));
    assert!(
        !expected
            .iter()
            .any(|(_, kind, _)| kind == "ClusterRoleBinding"),
        "the shipped stack renders no ClusterRoleBinding"
    );
    for field in &FIELDS {
        for (name, brk) in BREAKS {
            let value = payload(brk);
            let mut stack = base.clone();
            (field.set)(&mut stack, value.clone());
            let rendered = render(&stack, &Templates::embedded())
                .unwrap_or_else(|error| panic!("{} with {name}: {error}", field.key));
            assert_eq!(
                shape(&rendered),
                expected,
                "{} with {name} changes the documents",
                field.key
            );
            for read in (field.read)(&rendered) {
                assert_eq!(
                    read.as_deref(),
                    Some(value.as_str()),
                    "{} with {name} reads back",
                    field.key
                );
            }
            for (path, text) in &rendered.files {
                assert!(
                    !text.contains(brk) || brk == "\n",
                    "{path} holds a raw {name} from {}",
                    field.key
                );
            }
        }
    }
}

#[test]
fn the_server_manifest_keeps_its_documents() {
    // The exact report: the endpoint, through U+2028, in k8s/server.yaml.
    let mut stack = shipped();
    stack.observability.tracing.endpoint = Some(payload("\u{2028}"));
    let rendered = render(&stack, &Templates::embedded()).expect("renders");
    let kinds: Vec<String> = documents(&rendered)
        .into_iter()
        .filter(|(path, _)| path == "k8s/server.yaml")
        .map(|(_, doc)| doc["kind"].as_str().unwrap_or("-").to_owned())
        .collect();
    assert_eq!(
        kinds,
        [
            "ServiceAccount",
            "ConfigMap",
            "Deployment",
            "Service",
            "HorizontalPodAutoscaler",
            "PodDisruptionBudget"
        ]
    );
    assert!(
        rendered.files["configs/stack.yaml"]
            .contains(r#"endpoint: "http://a.example.com:4317/\u2028---\u2028apiVersion: rbac"#),
        "the line break is written as an escape"
    );
}
