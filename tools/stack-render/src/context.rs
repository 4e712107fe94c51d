//! What templates see: the resolved stack and the values derived from it.

use serde_json::{Value, json};
use stack_config::Stack;

/// Ports of the observability components (their images' defaults).
pub(crate) const PORTS: [(&str, u16); 9] = [
    ("prometheus", 9090),
    ("grafana", 3000),
    ("loki", 3100),
    ("tempo", 3200),
    ("otlp_grpc", 4317),
    ("otlp_http", 4318),
    ("mimir", 9009),
    ("promtail", 9080),
    ("alloy", 12345),
];

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

/// The components with an object name of their own.
const COMPONENTS: [&str; 10] = [
    "server",
    "client",
    "redis",
    "prometheus",
    "grafana",
    "loki",
    "tempo",
    "mimir",
    "promtail",
    "alloy",
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

/// The template context.
pub(crate) fn build(stack: &Stack) -> Value {
    let o = &stack.observability;
    let ns = stack.namespace.to_string();
    let mut names = serde_json::Map::new();
    for component in COMPONENTS {
        names.insert(component.into(), stack.object_name(component).into());
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
    let ports: serde_json::Map<String, Value> = PORTS
        .iter()
        .map(|(name, port)| ((*name).to_owned(), (*port).into()))
        .collect();
    let grace = stack.server.shutdown_grace.get().as_secs_f64().ceil() as u64;
    json!({
        "stack": resolved(stack),
        "ns": ns,
        "n": names,
        "image": image,
        "versions": versions,
        "ports": ports,
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

/// The addresses components dial, as the manifests and configs write them.
pub(crate) fn addresses(stack: &Stack) -> Value {
    let svc = |component: &str, port: u16| {
        format!(
            "http://{}.{}.svc:{port}",
            stack.object_name(component),
            stack.namespace
        )
    };
    let port = |name: &str| {
        PORTS
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0, |(_, p)| *p)
    };
    json!({
        "client_to_server": stack.client.address.clone().unwrap_or_else(|| svc("server", stack.server.port.get())),
        "otlp": stack.observability.tracing.endpoint.clone().unwrap_or_else(|| svc("tempo", port("otlp_grpc"))),
    })
}
