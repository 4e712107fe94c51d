//! The table of components: one entry per component of the deployment, holding everything
//! the toolkit knows about it — its names, role, image, ports, what it dials, the ConfigMaps
//! and Secrets it refers to and the templates that render it. Nothing outside this table
//! lists components; adding one is one entry here, its settings in the model and its
//! templates (docs/architecture.md, "Adding a component", walks through one).

use crate::Stack;
use crate::model::{ComponentImage, LogShipper, RedisMode, Resources};

/// What the toolkit knows about one component. Values that depend on the stack are
/// functions of it.
pub struct Spec {
    /// Its name in object names and labels: `server`, `tempo`, ...
    pub name: &'static str,
    /// Its name as people write it: `the server`, `Tempo`, ...
    pub title: &'static str,
    /// What it is for, as `app.kubernetes.io/component` says.
    pub role: &'static str,
    /// The key path of its settings in `stack.yaml` (`observability.tempo`).
    pub section: &'static str,
    /// Its pods' resources (at `<section>.resources`).
    pub resources: fn(&Stack) -> &Resources,
    /// Whether the stack deploys it.
    pub deployed: fn(&Stack) -> bool,
    /// Where its image comes from.
    pub image: ImageSource,
    /// The ports it listens on, by the names its Service gives them.
    pub ports: &'static [PortSpec],
    /// What it dials.
    pub dials: &'static [Dial],
    /// The ConfigMaps its templates render, by suffix of its object name (`""` is the
    /// object name itself, `-datasources` is `<name>-grafana-datasources`); the stack file
    /// every pod of ours mounts is [`STACK_CONFIG_MAP`].
    pub config_maps: &'static [&'static str],
    /// The Secrets its pods refer to (created by the operator), besides the image pull
    /// secrets of the project's own images.
    pub secrets: fn(&Stack) -> Vec<String>,
    /// Its templates, under `templates/`, each rendering the file of the same path.
    pub templates: &'static [Template],
}

/// The ConfigMap holding the resolved `stack.yaml` the server and the client read, by
/// suffix of the stack's name.
pub const STACK_CONFIG_MAP: &str = "config";

/// Where a component's image comes from.
pub enum ImageSource {
    /// One of the project's own images, under `images.registry` with `images.tag`.
    Own(fn(&Stack) -> String),
    /// A third-party image (at `<section>.image`), through `images.mirror` when one is set.
    ThirdParty(fn(&Stack) -> &ComponentImage),
}

/// A port a component listens on.
pub struct PortSpec {
    /// Its name (`http`, `otlp-grpc`, ...).
    pub name: &'static str,
    /// Its number: a setting of the stack, or the default of the component's image (which
    /// its config sets explicitly).
    pub number: fn(&Stack) -> u16,
}

/// An address a component dials.
pub struct Dial {
    /// What it dials.
    pub to: super::Component,
    /// The port, by name.
    pub port: &'static str,
    /// The URL scheme: `http` or `redis`.
    pub scheme: &'static str,
    /// The path appended to `scheme://host:port`.
    pub path: &'static str,
    /// Whether it dials at all, beyond both being deployed.
    pub when: fn(&Stack) -> bool,
    /// An address from the stack that replaces the in-cluster one (an external Redis, an
    /// explicit trace endpoint): then the target need not be deployed.
    pub instead: fn(&Stack) -> Option<String>,
}

impl Dial {
    const fn http(to: super::Component, port: &'static str, path: &'static str) -> Self {
        Self {
            to,
            port,
            scheme: "http",
            path,
            when: always,
            instead: nothing,
        }
    }
}

/// A template and when it renders (beyond its component being deployed).
pub struct Template {
    /// Its path under `templates/`.
    pub path: &'static str,
    /// Whether it renders.
    pub when: fn(&Stack) -> bool,
}

const fn template(path: &'static str) -> Template {
    Template { path, when: always }
}

const fn port(name: &'static str, number: fn(&Stack) -> u16) -> PortSpec {
    PortSpec { name, number }
}

fn always(_: &Stack) -> bool {
    true
}

fn nothing(_: &Stack) -> Option<String> {
    None
}

fn no_secrets(_: &Stack) -> Vec<String> {
    Vec::new()
}

fn redis_secret(stack: &Stack) -> Vec<String> {
    let auth = &stack.redis.auth;
    auth.enabled
        .then(|| auth.secret.name.to_string())
        .into_iter()
        .collect()
}

fn logs_through(stack: &Stack, shipper: LogShipper) -> bool {
    let o = &stack.observability;
    o.logs.enabled && o.loki.enabled && o.logs.shipper == shipper
}

fn traces(stack: &Stack) -> bool {
    stack.observability.tracing.enabled
}

fn trace_endpoint(stack: &Stack) -> Option<String> {
    stack.observability.tracing.endpoint.clone()
}

/// The trace endpoint of the server and the client: Tempo's OTLP/gRPC port.
const TRACES: Dial = Dial {
    to: super::Component::Tempo,
    port: "otlp-grpc",
    scheme: "http",
    path: "",
    when: traces,
    instead: trace_endpoint,
};

/// Declares [`Component`](super::Component) and its table from one list of entries.
macro_rules! components {
    ($( $(#[$doc:meta])* $variant:ident => $spec:expr, )+) => {
        /// A component of the deployment with an object name of its own.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Component {
            $( $(#[$doc])* $variant, )+
        }

        impl Component {
            /// Every component, in the table's order.
            pub const ALL: &'static [Self] = &[$( Self::$variant ),+];

            /// Its entry in the table.
            pub fn spec(self) -> &'static Spec {
                match self {
                    $( Self::$variant => {
                        const SPEC: Spec = $spec;
                        &SPEC
                    } )+
                }
            }
        }
    };
}

components! {
    /// The gRPC server.
    Server => Spec {
        name: "server",
        title: "the server",
        role: "api",
        section: "server",
        resources: |s| &s.server.resources,
        deployed: always,
        image: ImageSource::Own(Stack::server_image),
        ports: &[
            port("grpc", |s| s.server.port.get()),
            port("metrics", |s| s.server.metrics_port.get()),
        ],
        dials: &[
            Dial {
                to: Component::Redis,
                port: "redis",
                scheme: "redis",
                path: "",
                when: always,
                instead: |s| match s.redis.mode {
                    RedisMode::Managed => None,
                    // The client asks any seed node for the slots; the first names the cluster.
                    RedisMode::Cluster => s.redis.cluster.nodes.first().map(|node| {
                        format!("redis://{node}")
                    }),
                    RedisMode::External => s
                        .redis
                        .host
                        .as_ref()
                        .map(|host| super::redis_url(host.as_str(), s.redis.port.get())),
                },
            },
            TRACES,
        ],
        config_maps: &[],
        secrets: redis_secret,
        templates: &[template("k8s/namespace.yaml"), template("k8s/server.yaml")],
    },
    /// The client (demo or load).
    Client => Spec {
        name: "client",
        title: "the client",
        role: "load-generator",
        section: "client",
        resources: |s| &s.client.resources,
        deployed: |s| s.client.enabled,
        image: ImageSource::Own(Stack::client_image),
        ports: &[],
        dials: &[
            Dial {
                to: Component::Server,
                port: "grpc",
                scheme: "http",
                path: "",
                when: always,
                instead: |s| s.client.address.clone(),
            },
            TRACES,
        ],
        config_maps: &[],
        secrets: no_secrets,
        templates: &[template("k8s/client.yaml")],
    },
    /// The managed Redis.
    Redis => Spec {
        name: "redis",
        title: "Redis",
        role: "database",
        section: "redis",
        resources: |s| &s.redis.resources,
        deployed: |s| s.redis.mode == RedisMode::Managed,
        image: ImageSource::ThirdParty(|s| &s.redis.image),
        ports: &[port("redis", |s| s.redis.port.get())],
        dials: &[],
        config_maps: &[],
        secrets: redis_secret,
        templates: &[template("k8s/redis.yaml"), template("k8s/network-policies.yaml")],
    },
    /// Prometheus.
    Prometheus => Spec {
        name: "prometheus",
        title: "Prometheus",
        role: "metrics",
        section: "observability.prometheus",
        resources: |s| &s.observability.prometheus.resources,
        deployed: |s| s.observability.prometheus.enabled,
        image: ImageSource::ThirdParty(|s| &s.observability.prometheus.image),
        ports: &[port("http", |_| 9090)],
        dials: &[Dial {
            when: |s| s.observability.prometheus.remote_write_to_mimir,
            ..Dial::http(Component::Mimir, "http", "/api/v1/push")
        }],
        config_maps: &[""],
        secrets: no_secrets,
        templates: &[
            template("configs/prometheus.yml"),
            Template {
                path: "configs/alerts.yml",
                when: |s| s.observability.prometheus.alerts.enabled,
            },
            template("k8s/prometheus.yaml"),
        ],
    },
    /// Grafana.
    Grafana => Spec {
        name: "grafana",
        title: "Grafana",
        role: "dashboards",
        section: "observability.grafana",
        resources: |s| &s.observability.grafana.resources,
        deployed: |s| s.observability.grafana.enabled,
        image: ImageSource::ThirdParty(|s| &s.observability.grafana.image),
        ports: &[port("http", |_| 3000)],
        dials: &[
            Dial::http(Component::Mimir, "http", "/prometheus"),
            Dial::http(Component::Prometheus, "http", ""),
            Dial::http(Component::Loki, "http", ""),
            Dial::http(Component::Tempo, "http", ""),
        ],
        config_maps: &["-datasources", "-dashboard-provider", "-dashboards"],
        secrets: |s| vec![s.observability.grafana.admin.password_secret.name.to_string()],
        templates: &[
            template("configs/grafana-datasources.yaml"),
            template("configs/grafana-dashboards.yaml"),
            template("configs/taskmanager-dashboard.json"),
            template("k8s/grafana.yaml"),
        ],
    },
    /// Loki.
    Loki => Spec {
        name: "loki",
        title: "Loki",
        role: "logs",
        section: "observability.loki",
        resources: |s| &s.observability.loki.resources,
        deployed: |s| s.observability.loki.enabled,
        image: ImageSource::ThirdParty(|s| &s.observability.loki.image),
        ports: &[port("http", |_| 3100), port("grpc", |_| 9095)],
        dials: &[],
        config_maps: &[""],
        secrets: no_secrets,
        templates: &[template("configs/loki.yaml"), template("k8s/loki.yaml")],
    },
    /// Tempo.
    Tempo => Spec {
        name: "tempo",
        title: "Tempo",
        role: "traces",
        section: "observability.tempo",
        resources: |s| &s.observability.tempo.resources,
        deployed: |s| s.observability.tempo.enabled,
        image: ImageSource::ThirdParty(|s| &s.observability.tempo.image),
        ports: &[
            port("http", |_| 3200),
            port("otlp-grpc", |_| 4317),
            port("otlp-http", |_| 4318),
        ],
        // The metrics generator writes span metrics to Mimir.
        dials: &[Dial::http(Component::Mimir, "http", "/api/v1/push")],
        config_maps: &[""],
        secrets: no_secrets,
        templates: &[template("configs/tempo.yaml"), template("k8s/tempo.yaml")],
    },
    /// Mimir.
    Mimir => Spec {
        name: "mimir",
        title: "Mimir",
        role: "metrics",
        section: "observability.mimir",
        resources: |s| &s.observability.mimir.resources,
        deployed: |s| s.observability.mimir.enabled,
        image: ImageSource::ThirdParty(|s| &s.observability.mimir.image),
        ports: &[port("http", |_| 9009), port("grpc", |_| 9095)],
        dials: &[],
        config_maps: &[""],
        secrets: no_secrets,
        templates: &[template("configs/mimir.yaml"), template("k8s/mimir.yaml")],
    },
    /// Promtail.
    Promtail => Spec {
        name: "promtail",
        title: "Promtail",
        role: "logs",
        section: "observability.logs.promtail",
        resources: |s| &s.observability.logs.promtail.resources,
        deployed: |s| logs_through(s, LogShipper::Promtail),
        image: ImageSource::ThirdParty(|s| &s.observability.logs.promtail.image),
        ports: &[port("http", |_| 9080)],
        dials: &[Dial::http(Component::Loki, "http", "/loki/api/v1/push")],
        config_maps: &[""],
        secrets: no_secrets,
        templates: &[template("configs/promtail.yaml"), template("k8s/promtail.yaml")],
    },
    /// Alloy.
    Alloy => Spec {
        name: "alloy",
        title: "Alloy",
        role: "logs",
        section: "observability.logs.alloy",
        resources: |s| &s.observability.logs.alloy.resources,
        deployed: |s| logs_through(s, LogShipper::Alloy),
        image: ImageSource::ThirdParty(|s| &s.observability.logs.alloy.image),
        ports: &[port("http", |_| 12345)],
        dials: &[Dial::http(Component::Loki, "http", "/loki/api/v1/push")],
        config_maps: &[""],
        secrets: no_secrets,
        templates: &[template("configs/config.alloy"), template("k8s/alloy.yaml")],
    },
}

/// Templates of the stack as a whole, rendered whatever it deploys: the images of the
/// project (built whether or not the client runs in the cluster) and the `docker run` script.
pub const STACK_TEMPLATES: &[&str] = &[
    "docker/server.Dockerfile",
    "docker/client.Dockerfile",
    "local/docker-run.sh",
];
