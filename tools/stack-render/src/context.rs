//! What templates see: the resolved stack and the values derived from it.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use stack_config::Stack;
use stack_config::topology::{STACK_CONFIG_MAP, Topology};

/// A label the log shippers put on every log line, from the pod's Kubernetes metadata.
#[derive(Serialize)]
struct LogLabel {
    /// The Loki label.
    label: &'static str,
    /// The discovery meta labels it is made of, joined with `;`.
    sources: &'static [&'static str],
    /// What the joined sources must match (anchored), and what the label becomes.
    regex: &'static str,
    replacement: &'static str,
    /// The span attribute (resource or span) with the same value, for Grafana's traces-to-logs
    /// query.
    span_attribute: Option<&'static str>,
}

/// The labels of every log line, stated once: the shippers (Alloy, Promtail) write their
/// relabelling rules from this, and Grafana's Tempo datasource its traces-to-logs tags.
/// `service_name` is `<part-of>-<name>` of the pod (`taskmanager-server`), which is the
/// OpenTelemetry `service.name` of the server and the client; Loki keeps a `service_name`
/// label it is given instead of guessing one.
const LOG_LABELS: [LogLabel; 5] = [
    LogLabel {
        label: "namespace",
        sources: &["__meta_kubernetes_namespace"],
        regex: "(.*)",
        replacement: "$1",
        span_attribute: None,
    },
    LogLabel {
        label: "pod",
        sources: &["__meta_kubernetes_pod_name"],
        regex: "(.*)",
        replacement: "$1",
        span_attribute: None,
    },
    LogLabel {
        label: "container",
        sources: &["__meta_kubernetes_pod_container_name"],
        regex: "(.*)",
        replacement: "$1",
        span_attribute: None,
    },
    LogLabel {
        label: "app",
        sources: &["__meta_kubernetes_pod_label_app_kubernetes_io_name"],
        regex: "(.*)",
        replacement: "$1",
        span_attribute: None,
    },
    LogLabel {
        label: "service_name",
        sources: &[
            "__meta_kubernetes_pod_label_app_kubernetes_io_part_of",
            "__meta_kubernetes_pod_label_app_kubernetes_io_name",
        ],
        regex: "(.+);(.+)",
        replacement: "$1-$2",
        span_attribute: Some("service.name"),
    },
];

/// The resolved stack as JSON, without the overlays (already applied).
pub(crate) fn resolved(stack: &Stack) -> Value {
    let mut value = serde_json::to_value(stack).expect("a stack serializes");
    if let Some(map) = value.as_object_mut() {
        map.remove("environments");
    }
    value
}

/// The stack file the server and client pods read: the resolved settings, without the
/// Redis password (pods get it from the Secret through an environment variable).
pub(crate) fn server_stack_yaml(stack: &Stack) -> String {
    let mut value = resolved(stack);
    if let Some(auth) = value
        .pointer_mut("/redis/auth")
        .and_then(Value::as_object_mut)
    {
        auth.insert("password".into(), Value::Null);
    }
    format!(
        "# The resolved stack of instance {}, rendered by stackctl. Do not edit: edit \
         stack.yaml and render again.\n{}",
        crate::quote::json_string(stack.name.as_str()),
        crate::quote::yaml(&value)
    )
}

/// What every template sees. Everything about the deployment comes from the [`Topology`]:
/// object names, images, versions, ports and the addresses components dial; templates write
/// no name, address or port of their own.
#[derive(Serialize)]
pub(crate) struct Context {
    /// The resolved stack, without the overlays.
    stack: Value,
    /// The namespace.
    ns: String,
    /// Object names by component (`n.tempo`), and `n.config`, the ConfigMap of `stack.yaml`.
    n: BTreeMap<&'static str, String>,
    /// Image references by component.
    image: BTreeMap<&'static str, String>,
    /// Third-party image tags by component.
    versions: BTreeMap<&'static str, String>,
    /// Ports by component: `<component>` for its main (HTTP) port, `<component>_<port>`
    /// for the others (`tempo_otlp_grpc`, `mimir_grpc`).
    ports: BTreeMap<String, u16>,
    /// Addresses dialled: `dial.<from>.<to>` (`dial.prometheus.mimir`).
    dial: BTreeMap<&'static str, BTreeMap<&'static str, String>>,
    /// The server's shutdown grace in whole seconds (rounded up).
    grace_seconds: u64,
    /// The managed Redis's `maxmemory` in bytes.
    redis_maxmemory: u64,
    /// The labels of every log line.
    log_labels: &'static [LogLabel],
    /// The rendered configs by file name (`tempo.yaml`), as they are rendered.
    pub(crate) configs: BTreeMap<String, String>,
    /// Their SHA-256, for the pods' checksum annotations.
    pub(crate) checksums: BTreeMap<String, String>,
    /// The rendered manifests, for the kustomization.
    pub(crate) resources: Vec<String>,
    /// The version of stackctl.
    version: &'static str,
}

impl Context {
    /// The context of `stack`, compiled into `topology`.
    pub(crate) fn new(stack: &Stack, topology: &Topology) -> Self {
        let parts = || topology.parts.iter();
        let mut n: BTreeMap<_, _> = parts()
            .map(|part| (part.component.name(), part.object_name.clone()))
            .collect();
        n.insert(STACK_CONFIG_MAP, stack.object_name(STACK_CONFIG_MAP));
        let mut ports = BTreeMap::new();
        for part in parts() {
            for port in &part.ports {
                let name = part.component.name();
                let key = if port.name == "http" {
                    name.to_owned()
                } else {
                    format!("{name}_{}", port.name.replace('-', "_"))
                };
                ports.insert(key, port.number);
            }
        }
        let dial = topology
            .dials()
            .into_iter()
            .map(|(from, to)| {
                let to = to.into_iter().map(|(to, url)| (to, url.to_owned()));
                (from, to.collect())
            })
            .collect();
        Self {
            stack: resolved(stack),
            ns: topology.namespace.clone(),
            n,
            image: parts()
                .map(|part| (part.component.name(), part.image.clone()))
                .collect(),
            versions: parts()
                .filter_map(|part| Some((part.component.name(), part.tag.as_ref()?.tag.clone())))
                .collect(),
            ports,
            dial,
            grace_seconds: stack.server.shutdown_grace.get().as_secs_f64().ceil() as u64,
            redis_maxmemory: stack.redis.maxmemory_bytes(),
            log_labels: &LOG_LABELS,
            configs: BTreeMap::new(),
            checksums: BTreeMap::new(),
            resources: Vec::new(),
            version: env!("CARGO_PKG_VERSION"),
        }
    }
}
