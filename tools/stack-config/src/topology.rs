//! Where the deployment's components listen and how they are reached: the one table of
//! ports and the one address formula, read by the renderer, the server and the client.
//!
//! In the cluster, component `c` of instance `name` is the Service `<name>-<c>` in the stack's
//! namespace, reached at `http://<name>-<c>.<namespace>.svc:<port>`; [`Stack::service_url`]
//! is the only place that spells it.

use crate::Stack;

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
