//! The components of the deployment: which are deployed, their roles, images, ports, the
//! Secrets they need, and how they are reached: the one table of ports and the one address
//! formula, read by the renderer, the server and the client.
//!
//! In the cluster, component `c` of instance `name` is the Service `<name>-<c>` in the stack's
//! namespace, reached at `http://<name>-<c>.<namespace>.svc:<port>`; [`Stack::service_url`]
//! is the only place that spells it.

use std::collections::BTreeSet;

use crate::Stack;
use crate::model::{ComponentImage, LogShipper, RedisMode};

/// A component of the deployment with an object name of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Component {
    /// The gRPC server.
    Server,
    /// The client (demo or load).
    Client,
    /// The managed Redis.
    Redis,
    /// Prometheus.
    Prometheus,
    /// Grafana.
    Grafana,
    /// Loki.
    Loki,
    /// Tempo.
    Tempo,
    /// Mimir.
    Mimir,
    /// Promtail.
    Promtail,
    /// Alloy.
    Alloy,
}

impl Component {
    /// Every component.
    pub const ALL: [Self; 10] = [
        Self::Server,
        Self::Client,
        Self::Redis,
        Self::Prometheus,
        Self::Grafana,
        Self::Loki,
        Self::Tempo,
        Self::Mimir,
        Self::Promtail,
        Self::Alloy,
    ];

    /// The component of that name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|component| component.name() == name)
    }

    /// What it is for, as `app.kubernetes.io/component` says.
    pub fn role(self) -> &'static str {
        match self {
            Self::Server => "api",
            Self::Client => "load-generator",
            Self::Redis => "database",
            Self::Prometheus | Self::Mimir => "metrics",
            Self::Loki | Self::Promtail | Self::Alloy => "logs",
            Self::Tempo => "traces",
            Self::Grafana => "dashboards",
        }
    }

    /// Its name as people write it: `Tempo`, `Redis`, ...
    pub fn title(self) -> &'static str {
        match self {
            Self::Server => "the server",
            Self::Client => "the client",
            Self::Redis => "Redis",
            Self::Prometheus => "Prometheus",
            Self::Grafana => "Grafana",
            Self::Loki => "Loki",
            Self::Tempo => "Tempo",
            Self::Mimir => "Mimir",
            Self::Promtail => "Promtail",
            Self::Alloy => "Alloy",
        }
    }

    /// Its name in object names and labels: `server`, `tempo`, ...
    pub fn name(self) -> &'static str {
        match self {
            Self::Server => "server",
            Self::Client => "client",
            Self::Redis => "redis",
            Self::Prometheus => "prometheus",
            Self::Grafana => "grafana",
            Self::Loki => "loki",
            Self::Tempo => "tempo",
            Self::Mimir => "mimir",
            Self::Promtail => "promtail",
            Self::Alloy => "alloy",
        }
    }
}

/// A port a component listens on, by the name its Service gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NamedPort {
    /// The port's name (`http`, `otlp-grpc`, ...).
    pub name: &'static str,
    /// Its number.
    pub number: u16,
}

const fn port(name: &'static str, number: u16) -> NamedPort {
    NamedPort { name, number }
}

impl Stack {
    /// Whether this stack deploys `component` (the server always; Redis when managed; a log
    /// shipper when logs go to a deployed Loki through it).
    pub fn deploys(&self, component: Component) -> bool {
        let o = &self.observability;
        let logs_to = |shipper| o.logs.enabled && o.loki.enabled && o.logs.shipper == shipper;
        match component {
            Component::Server => true,
            Component::Client => self.client.enabled,
            Component::Redis => self.redis.mode == RedisMode::Managed,
            Component::Prometheus => o.prometheus.enabled,
            Component::Grafana => o.grafana.enabled,
            Component::Loki => o.loki.enabled,
            Component::Tempo => o.tempo.enabled,
            Component::Mimir => o.mimir.enabled,
            Component::Promtail => logs_to(LogShipper::Promtail),
            Component::Alloy => logs_to(LogShipper::Alloy),
        }
    }

    /// The image of a third-party component and the key path of its tag; `None` for the
    /// project's own server and client (`images.*`).
    pub fn third_party_image(
        &self,
        component: Component,
    ) -> Option<(&ComponentImage, &'static str)> {
        let o = &self.observability;
        Some(match component {
            Component::Server | Component::Client => return None,
            Component::Redis => (&self.redis.image, "redis.image.tag"),
            Component::Prometheus => (&o.prometheus.image, "observability.prometheus.image.tag"),
            Component::Grafana => (&o.grafana.image, "observability.grafana.image.tag"),
            Component::Loki => (&o.loki.image, "observability.loki.image.tag"),
            Component::Tempo => (&o.tempo.image, "observability.tempo.image.tag"),
            Component::Mimir => (&o.mimir.image, "observability.mimir.image.tag"),
            Component::Promtail => (
                &o.logs.promtail.image,
                "observability.logs.promtail.image.tag",
            ),
            Component::Alloy => (&o.logs.alloy.image, "observability.logs.alloy.image.tag"),
        })
    }

    /// The Secrets the manifests refer to and the operator creates, as `stack.yaml` names
    /// them: image pull secrets, the Redis password (with auth), Grafana's admin password.
    pub fn declared_secrets(&self) -> BTreeSet<String> {
        let mut secrets: BTreeSet<String> = self
            .images
            .pull_secrets
            .iter()
            .map(ToString::to_string)
            .collect();
        if self.redis.auth.enabled {
            secrets.insert(self.redis.auth.secret.name.to_string());
        }
        if self.deploys(Component::Grafana) {
            let admin = &self.observability.grafana.admin;
            secrets.insert(admin.password_secret.name.to_string());
        }
        secrets
    }

    /// The ports `component` listens on: the server's and Redis's from the stack, the
    /// others' the defaults of their images (the configs set them to these).
    pub fn ports(&self, component: Component) -> Vec<NamedPort> {
        match component {
            Component::Server => vec![
                port("grpc", self.server.port.get()),
                port("metrics", self.server.metrics_port.get()),
            ],
            Component::Client => Vec::new(),
            Component::Redis => vec![port("redis", self.redis.port.get())],
            Component::Prometheus => vec![port("http", 9090)],
            Component::Grafana => vec![port("http", 3000)],
            Component::Loki => vec![port("http", 3100), port("grpc", 9095)],
            Component::Tempo => vec![
                port("http", 3200),
                port("otlp-grpc", 4317),
                port("otlp-http", 4318),
            ],
            Component::Mimir => vec![port("http", 9009), port("grpc", 9095)],
            Component::Promtail => vec![port("http", 9080)],
            Component::Alloy => vec![port("http", 12345)],
        }
    }

    /// The number of `component`'s port `name`.
    ///
    /// # Panics
    ///
    /// When the component has no such port: a bug in the caller, which names ports from
    /// [`Stack::ports`].
    pub fn port(&self, component: Component, name: &str) -> u16 {
        self.ports(component)
            .iter()
            .find(|port| port.name == name)
            .map(|port| port.number)
            .unwrap_or_else(|| panic!("{} has no port {name} (a bug)", component.name()))
    }

    /// The DNS name of `component`'s Service: `<name>-<component>.<namespace>.svc`.
    pub fn service_host(&self, component: Component) -> String {
        format!(
            "{}.{}.svc",
            self.object_name(component.name()),
            self.namespace
        )
    }

    /// The address of `component`'s port `name` in the cluster:
    /// `http://<name>-<component>.<namespace>.svc:<port>`.
    pub fn service_url(&self, component: Component, name: &str) -> String {
        format!(
            "http://{}:{}",
            self.service_host(component),
            self.port(component, name)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_follow_the_object_names_and_the_ports() {
        let stack = Stack::default();
        assert_eq!(
            stack.service_url(Component::Tempo, "otlp-grpc"),
            "http://taskmanager-tempo.taskmanager.svc:4317"
        );
        assert_eq!(
            stack.service_url(Component::Server, "grpc"),
            "http://taskmanager-server.taskmanager.svc:50051"
        );
        assert_eq!(
            stack.service_host(Component::Redis),
            "taskmanager-redis.taskmanager.svc"
        );
        for component in Component::ALL {
            let ports = stack.ports(component);
            let mut names: Vec<&str> = ports.iter().map(|port| port.name).collect();
            names.dedup();
            assert_eq!(
                names.len(),
                ports.len(),
                "{component:?} names each port once"
            );
        }
    }
}
