//! The compiled deployment: what a valid stack deploys, and how its parts reach each other.
//!
//! [`Topology::compile`] runs after loading and validation and turns the settings into facts
//! that every consumer reads instead of working them out again: for each component (from the
//! one table in `components`) its object name, role, image, ports, the ConfigMaps and
//! Secrets it refers to and its templates; every endpoint one component dials; the Redis the
//! server uses. The renderer writes its templates' context from it, the cross-reference
//! check compares the rendered objects with it, the server takes its Redis and trace
//! endpoint from it and the client its default server address.
//!
//! In the cluster, component `c` of instance `name` is the Service `<name>-<c>` in the
//! stack's namespace, reached at `<scheme>://<name>-<c>.<namespace>.svc:<port><path>`;
//! [`service_host`] and [`Topology::compile`] are the only places that spell it.
//!
//! One concept: the compiled topology (the table it compiles is `components`); about a
//! third of the file is its tests.

mod components;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Serialize, Serializer};

pub use self::components::{
    Component, Dial, ImageSource, PortSpec, STACK_CONFIG_MAP, STACK_TEMPLATES, Spec, Template,
};
use crate::Stack;
use crate::diagnostic::Diagnostic;
use crate::model::RedisMode;

impl Component {
    /// The component of that name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|component| component.name() == name)
    }

    /// Its name in object names and labels: `server`, `tempo`, ...
    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// Its name as people write it: `the server`, `Tempo`, ...
    pub fn title(self) -> &'static str {
        self.spec().title
    }

    /// What it is for, as `app.kubernetes.io/component` says.
    pub fn role(self) -> &'static str {
        self.spec().role
    }
}

impl Serialize for Component {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// A port a component listens on, by the name its Service gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct NamedPort {
    /// The port's name (`http`, `otlp-grpc`, ...).
    pub name: &'static str,
    /// Its number.
    pub number: u16,
}

/// A component as this stack has it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Part {
    /// Which component.
    pub component: Component,
    /// Whether the stack deploys it.
    pub deployed: bool,
    /// The name of its objects (and its Service): `<name>-<component>`.
    pub object_name: String,
    /// Its image reference, as pods pull it.
    pub image: String,
    /// The tag of a third-party image and its key path; `None` for the project's own.
    pub tag: Option<Tag>,
    /// The ports it listens on.
    pub ports: Vec<NamedPort>,
    /// The ConfigMaps its templates render.
    pub config_maps: Vec<String>,
    /// The Secrets its pods refer to.
    pub secrets: Vec<String>,
    /// The templates that render it, when it is deployed.
    pub templates: Vec<&'static str>,
}

/// The tag of a third-party image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Tag {
    /// The tag, without a digest (`2.10.1`).
    pub tag: String,
    /// Where `stack.yaml` sets it (`observability.tempo.image.tag`).
    pub key: String,
}

/// What an endpoint reaches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Target {
    /// A Service of the stack, at one of its ports.
    Service {
        /// The Service's name.
        name: String,
        /// The port.
        port: NamedPort,
    },
    /// An address outside the stack, set in `stack.yaml`.
    External,
}

/// An address one component dials.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    /// Who dials.
    pub from: Component,
    /// What it dials.
    pub to: Component,
    /// Where that is.
    pub target: Target,
    /// The address, as the dialling component's config writes it.
    pub url: String,
}

/// The Redis the server uses: one Redis, which always has a host (an external Redis without
/// one is not a topology), or a Redis Cluster, which always has seed nodes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum RedisTarget {
    /// One Redis.
    Single(RedisAddress),
    /// A Redis Cluster.
    Cluster {
        /// Its seed nodes, `host:port`.
        nodes: Vec<String>,
        /// How many shards the queue is split into.
        shards: u32,
    },
}

/// One Redis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RedisAddress {
    /// Its host: the managed Redis's Service or the external host.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// Whether it is the managed Redis.
    pub managed: bool,
}

/// The compiled deployment of a stack. See the module documentation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Topology {
    /// The stack's namespace.
    pub namespace: String,
    /// Every component, in the table's order, deployed or not.
    pub parts: Vec<Part>,
    /// Every address a component dials (whether or not the dialling component is deployed:
    /// the client run from a laptop dials what the deployed client would).
    pub endpoints: Vec<Endpoint>,
    /// The Redis the server uses.
    pub redis: RedisTarget,
    /// Every ConfigMap the rendered manifests hold.
    pub config_maps: BTreeSet<String>,
    /// Every Secret the deployed pods refer to; the operator creates them.
    pub secrets: BTreeSet<String>,
}

/// The DNS name of `component`'s Service: `<name>-<component>.<namespace>.svc`.
fn service_host(stack: &Stack, component: Component) -> String {
    format!(
        "{}.{}.svc",
        stack.object_name(component.name()),
        stack.namespace
    )
}

/// `redis://host:port`, with an IPv6 host in brackets.
pub(crate) fn redis_url(host: &str, port: u16) -> String {
    format!("redis://{}:{port}", bracketed(host))
}

/// `host`, in brackets when it is an IPv6 address (as URLs write one).
pub fn bracketed(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

impl Topology {
    /// Compiles a stack that passed validation. Fails only on what the types of the
    /// settings cannot rule out and a topology cannot hold: an external Redis without a
    /// host.
    pub fn compile(stack: &Stack) -> Result<Self, Vec<Diagnostic>> {
        let single = |host: String, managed| {
            RedisTarget::Single(RedisAddress {
                host,
                port: stack.redis.port.get(),
                managed,
            })
        };
        let redis = match (stack.redis.mode, &stack.redis.host) {
            (RedisMode::External, None) => {
                return Err(vec![
                    Diagnostic::error(
                        "redis.host",
                        "redis-external-host",
                        "an external Redis needs a host: `redis.mode` is `external` but \
                         `redis.host` is not set",
                    )
                    .with_help(
                        "set redis.host, or use `mode: managed` to deploy Redis with the stack",
                    )
                    .with_related("redis.mode"),
                ]);
            }
            (RedisMode::External, Some(host)) => single(host.to_string(), false),
            (RedisMode::Managed, _) => single(service_host(stack, Component::Redis), true),
            (RedisMode::Cluster, _) if stack.redis.cluster.nodes.is_empty() => {
                return Err(vec![
                    Diagnostic::error(
                        "redis.cluster.nodes",
                        "redis-cluster-nodes",
                        "a Redis Cluster needs seed nodes: `redis.mode` is `cluster` but \
                         `redis.cluster.nodes` is empty",
                    )
                    .with_help("list a few of the cluster's nodes as host:port")
                    .with_related("redis.mode"),
                ]);
            }
            (RedisMode::Cluster, _) => RedisTarget::Cluster {
                nodes: stack
                    .redis
                    .cluster
                    .nodes
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
                shards: stack.redis.cluster.shards.get(),
            },
        };
        let parts: Vec<Part> = Component::ALL
            .iter()
            .map(|&component| part(stack, component))
            .collect();
        let deployed = |component: Component| parts[component as usize].deployed;
        let mut endpoints = Vec::new();
        for &from in Component::ALL {
            for dial in from.spec().dials {
                if !(dial.when)(stack) {
                    continue;
                }
                let endpoint = if let Some(url) = (dial.instead)(stack) {
                    Endpoint {
                        from,
                        to: dial.to,
                        target: Target::External,
                        url,
                    }
                } else if deployed(dial.to) {
                    let target = &parts[dial.to as usize];
                    let Some(&port) = target.ports.iter().find(|port| port.name == dial.port)
                    else {
                        panic!(
                            "{} dials port {} of {}, which has none (a bug in the component \
                             table)",
                            from.name(),
                            dial.port,
                            dial.to.name()
                        );
                    };
                    Endpoint {
                        from,
                        to: dial.to,
                        url: format!(
                            "{}://{}:{}{}",
                            dial.scheme,
                            service_host(stack, dial.to),
                            port.number,
                            dial.path
                        ),
                        target: Target::Service {
                            name: target.object_name.clone(),
                            port,
                        },
                    }
                } else {
                    continue;
                };
                endpoints.push(endpoint);
            }
        }
        let mut config_maps = BTreeSet::from([stack.object_name(STACK_CONFIG_MAP)]);
        let mut secrets: BTreeSet<String> = stack
            .images
            .pull_secrets
            .iter()
            .map(ToString::to_string)
            .collect();
        for part in parts.iter().filter(|part| part.deployed) {
            config_maps.extend(part.config_maps.iter().cloned());
            secrets.extend(part.secrets.iter().cloned());
        }
        Ok(Self {
            namespace: stack.namespace.to_string(),
            parts,
            endpoints,
            redis,
            config_maps,
            secrets,
        })
    }

    /// `component` as this stack has it.
    pub fn part(&self, component: Component) -> &Part {
        &self.parts[component as usize]
    }

    /// Whether this stack deploys `component`.
    pub fn deploys(&self, component: Component) -> bool {
        self.part(component).deployed
    }

    /// The components this stack deploys.
    pub fn deployed(&self) -> impl Iterator<Item = &Part> {
        self.parts.iter().filter(|part| part.deployed)
    }

    /// The address `from` dials to reach `to`, if it dials it.
    pub fn endpoint(&self, from: Component, to: Component) -> Option<&Endpoint> {
        self.endpoints
            .iter()
            .find(|endpoint| endpoint.from == from && endpoint.to == to)
    }

    /// The number of `component`'s port `name`.
    ///
    /// # Panics
    ///
    /// When the component has no such port: a bug in the caller, which names ports from
    /// the component table.
    pub fn port(&self, component: Component, name: &str) -> u16 {
        self.part(component)
            .ports
            .iter()
            .find(|port| port.name == name)
            .map(|port| port.number)
            .unwrap_or_else(|| panic!("{} has no port {name} (a bug)", component.name()))
    }

    /// The endpoints by dialling component and target, as templates read them:
    /// `dial.<from>.<to>`.
    pub fn dials(&self) -> BTreeMap<&'static str, BTreeMap<&'static str, &str>> {
        let mut out: BTreeMap<_, BTreeMap<_, _>> = BTreeMap::new();
        for endpoint in &self.endpoints {
            out.entry(endpoint.from.name())
                .or_default()
                .insert(endpoint.to.name(), endpoint.url.as_str());
        }
        out
    }

    /// Values computed from the rest of the stack, as `stackctl get derived.*` shows them.
    pub fn derived(&self, stack: &Stack) -> serde_json::Value {
        let server = self.part(Component::Server);
        serde_json::json!({
            "images": {
                "server": server.image,
                "client": self.part(Component::Client).image,
                "redis": self.part(Component::Redis).image,
            },
            "redis": match &self.redis {
                RedisTarget::Single(redis) => serde_json::json!({
                    "host": redis.host,
                    "port": redis.port,
                    "service": self.part(Component::Redis).object_name,
                    // The managed Redis's memory cap in bytes; an external Redis sets its own.
                    "maxmemory": redis.managed.then(|| stack.redis.maxmemory_bytes()),
                }),
                RedisTarget::Cluster { nodes, shards } => serde_json::json!({
                    "nodes": nodes,
                    "shards": shards,
                    "maxmemory": null,
                }),
            },
            "server": {
                "service": server.object_name,
                "address": self
                    .endpoint(Component::Client, Component::Server)
                    .map(|endpoint| endpoint.url.as_str()),
            },
        })
    }
}

/// `component` as `stack` has it.
fn part(stack: &Stack, component: Component) -> Part {
    let spec = component.spec();
    let object_name = stack.object_name(spec.name);
    let (image, tag) = match &spec.image {
        ImageSource::Own(reference) => (reference(stack), None),
        ImageSource::ThirdParty(image) => {
            let image = image(stack);
            (
                stack.images.third_party(image),
                Some(Tag {
                    tag: image.tag.tag().to_owned(),
                    key: format!("{}.image.tag", spec.section),
                }),
            )
        }
    };
    let mut secrets = (spec.secrets)(stack);
    if matches!(spec.image, ImageSource::Own(_)) {
        secrets.extend(stack.images.pull_secrets.iter().map(ToString::to_string));
    }
    Part {
        component,
        deployed: (spec.deployed)(stack),
        ports: spec
            .ports
            .iter()
            .map(|port| NamedPort {
                name: port.name,
                number: (port.number)(stack),
            })
            .collect(),
        config_maps: spec
            .config_maps
            .iter()
            .map(|suffix| format!("{object_name}{suffix}"))
            .collect(),
        secrets,
        templates: spec
            .templates
            .iter()
            .filter(|template| (template.when)(stack))
            .map(|template| template.path)
            .collect(),
        object_name,
        image,
        tag,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topology(stack: &Stack) -> Topology {
        Topology::compile(stack).expect("compiles")
    }

    #[test]
    fn addresses_follow_the_object_names_and_the_ports() {
        let t = topology(&Stack::default());
        let url = |from, to| t.endpoint(from, to).map(|e| e.url.as_str());
        assert_eq!(
            url(Component::Server, Component::Tempo),
            Some("http://taskmanager-tempo.taskmanager.svc:4317")
        );
        assert_eq!(
            url(Component::Client, Component::Server),
            Some("http://taskmanager-server.taskmanager.svc:50051")
        );
        assert_eq!(
            url(Component::Prometheus, Component::Mimir),
            Some("http://taskmanager-mimir.taskmanager.svc:9009/api/v1/push")
        );
        assert!(matches!(
            &t.redis,
            RedisTarget::Single(redis) if redis.host == "taskmanager-redis.taskmanager.svc"
        ));
        assert_eq!(
            url(Component::Server, Component::Redis),
            Some("redis://taskmanager-redis.taskmanager.svc:6379")
        );
    }

    #[test]
    fn the_table_is_consistent() {
        for (index, &component) in Component::ALL.iter().enumerate() {
            assert_eq!(component as usize, index, "ALL is in declaration order");
            assert_eq!(Component::from_name(component.name()), Some(component));
            let spec = component.spec();
            let names: BTreeSet<&str> = spec.ports.iter().map(|port| port.name).collect();
            assert_eq!(
                names.len(),
                spec.ports.len(),
                "{component:?} names each port once"
            );
            for dial in spec.dials {
                assert!(
                    dial.to
                        .spec()
                        .ports
                        .iter()
                        .any(|port| port.name == dial.port),
                    "{component:?} dials a port {:?} has",
                    dial.to
                );
            }
        }
    }

    #[test]
    fn a_disabled_target_is_not_dialled_and_an_explicit_address_replaces_it() {
        let mut stack = Stack::default();
        stack.observability.mimir.enabled = false;
        stack.observability.tracing.endpoint = Some("http://collector:4317".to_owned());
        stack.observability.tempo.enabled = false;
        let t = topology(&stack);
        assert_eq!(t.endpoint(Component::Prometheus, Component::Mimir), None);
        assert_eq!(t.endpoint(Component::Grafana, Component::Mimir), None);
        let traces = t
            .endpoint(Component::Server, Component::Tempo)
            .expect("traces");
        assert_eq!(traces.target, Target::External);
        assert_eq!(traces.url, "http://collector:4317");
    }

    #[test]
    fn an_external_redis_needs_a_host() {
        let mut stack = Stack::default();
        stack.redis.mode = RedisMode::External;
        let errors = Topology::compile(&stack).expect_err("no host");
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].path, "redis.host");
        assert_eq!(errors[0].rule, "redis-external-host");
        stack.redis.host = Some(crate::types::Host::new("::1").expect("host"));
        let t = topology(&stack);
        assert_eq!(
            t.endpoint(Component::Server, Component::Redis)
                .map(|e| &e.target),
            Some(&Target::External)
        );
        assert_eq!(
            t.endpoint(Component::Server, Component::Redis)
                .map(|e| e.url.as_str()),
            Some("redis://[::1]:6379")
        );
        assert!(!t.deploys(Component::Redis));
    }

    #[test]
    fn secrets_and_config_maps_follow_what_is_deployed() {
        let mut stack = Stack::default();
        stack.redis.auth.enabled = true;
        let t = topology(&stack);
        assert!(t.secrets.contains(stack.redis.auth.secret.name.as_str()));
        assert!(t.config_maps.contains("taskmanager-config"));
        assert!(t.config_maps.contains("taskmanager-grafana-datasources"));
        stack.observability.grafana.enabled = false;
        let t = topology(&stack);
        assert!(!t.config_maps.contains("taskmanager-grafana-datasources"));
        let admin = &stack.observability.grafana.admin.password_secret.name;
        assert!(!t.secrets.contains(admin.as_str()));
    }
}
