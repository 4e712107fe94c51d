//! What templates see: the resolved stack and the values derived from it.

use serde_json::{Value, json};
use stack_config::{Component, Stack};

/// A label the log shippers put on every log line, from the pod's Kubernetes metadata.
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

/// [`LOG_LABELS`] for templates.
fn log_labels() -> Value {
    LOG_LABELS
        .iter()
        .map(|l| {
            json!({
                "label": l.label,
                "sources": l.sources,
                "regex": l.regex,
                "replacement": l.replacement,
                "span_attribute": l.span_attribute,
            })
        })
        .collect()
}

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

/// The template context.
pub(crate) fn build(stack: &Stack) -> Value {
    let o = &stack.observability;
    let ns = stack.namespace.to_string();
    let mut names = serde_json::Map::new();
    for component in Component::ALL {
        names.insert(
            component.name().into(),
            stack.object_name(component.name()).into(),
        );
    }
    names.insert("config".into(), stack.object_name("config").into());
    let images = &stack.images;
    let image = json!({
        "server": stack.server_image(),
        "client": stack.client_image(),
        "redis": images.third_party(&stack.redis.image),
        "prometheus": images.third_party(&o.prometheus.image),
        "grafana": images.third_party(&o.grafana.image),
        "loki": images.third_party(&o.loki.image),
        "tempo": images.third_party(&o.tempo.image),
        "mimir": images.third_party(&o.mimir.image),
        "promtail": images.third_party(&o.logs.promtail.image),
        "alloy": images.third_party(&o.logs.alloy.image),
    });
    let versions = json!({
        "redis": stack.redis.image.tag.tag(),
        "prometheus": o.prometheus.image.tag.tag(),
        "grafana": o.grafana.image.tag.tag(),
        "loki": o.loki.image.tag.tag(),
        "tempo": o.tempo.image.tag.tag(),
        "mimir": o.mimir.image.tag.tag(),
        "promtail": o.logs.promtail.image.tag.tag(),
        "alloy": o.logs.alloy.image.tag.tag(),
    });
    let ports = ports(stack);
    let urls: serde_json::Map<String, Value> = [
        Component::Prometheus,
        Component::Grafana,
        Component::Loki,
        Component::Tempo,
        Component::Mimir,
    ]
    .into_iter()
    .map(|c| (c.name().to_owned(), stack.service_url(c, "http").into()))
    .collect();
    let grace = stack.server.shutdown_grace.get().as_secs_f64().ceil() as u64;
    json!({
        "stack": resolved(stack),
        "ns": ns,
        "n": names,
        "image": image,
        "versions": versions,
        "ports": ports,
        "urls": urls,
        "grace_seconds": grace,
        "redis_maxmemory": stack.redis.maxmemory_bytes(),
        "addresses": addresses(stack),
        "log_labels": log_labels(),
        "configs": {},
        "checksums": {},
        "resources": [],
        "version": env!("CARGO_PKG_VERSION"),
    })
}

/// The ports templates write, by the names they use: `<component>` for a component's main
/// (HTTP) port, `<component>_<port>` for the others (`tempo_otlp_grpc`, `mimir_grpc`).
fn ports(stack: &Stack) -> serde_json::Map<String, Value> {
    let mut out = serde_json::Map::new();
    for component in Component::ALL {
        for port in stack.ports(component) {
            let key = if port.name == "http" {
                component.name().to_owned()
            } else {
                format!("{}_{}", component.name(), port.name.replace('-', "_"))
            };
            out.insert(key, port.number.into());
        }
    }
    out
}

/// The addresses components dial, as the manifests and configs write them.
pub(crate) fn addresses(stack: &Stack) -> Value {
    json!({
        "client_to_server": stack
            .client
            .address
            .clone()
            .unwrap_or_else(|| stack.service_url(Component::Server, "grpc")),
        "otlp": stack
            .observability
            .tracing
            .endpoint
            .clone()
            .unwrap_or_else(|| stack.service_url(Component::Tempo, "otlp-grpc")),
    })
}
