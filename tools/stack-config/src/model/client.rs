//! The task manager client.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Resources;
use crate::types::{Count, TaskCount};

/// The client that submits tasks and streams their status. In the cluster it runs as a
/// Deployment; locally it is the `taskmanager-client` command.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Client {
    /// Whether the client is deployed.
    pub enabled: bool,
    /// Number of client pods.
    pub replicas: u32,
    /// What a deployed client does.
    pub mode: ClientMode,
    /// Tasks submitted per second in `demo` mode.
    #[serde(deserialize_with = "crate::types::float")]
    pub rate: f64,
    /// Settings of `load` mode and of `taskmanager-client load`.
    pub load: LoadSettings,
    /// Server address to dial, `http(s)://host[:port]`, such as `http://127.0.0.1:50051`.
    /// Unset dials the server Service in the cluster, or the local server when run locally.
    #[schemars(regex(
        pattern = r"^https?://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?(/([-A-Za-z0-9._~/]|%[0-9A-Fa-f]{2})*)?$"
    ))]
    pub address: Option<String>,
    /// Resources of a client pod.
    pub resources: Resources,
}

impl Default for Client {
    fn default() -> Self {
        Self {
            enabled: true,
            replicas: 1,
            mode: ClientMode::Demo,
            rate: 1.0,
            load: LoadSettings::default(),
            address: None,
            resources: Resources::known(("50m", "32Mi"), ("200m", "128Mi")),
        }
    }
}

/// What a deployed client does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClientMode {
    /// Submit random example tasks at `rate` and stream each one's status.
    Demo,
    /// Submit `load.tasks` tasks at `load.concurrency` and report throughput and latency.
    Load,
}

/// A load run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct LoadSettings {
    /// Number of tasks to submit.
    pub tasks: TaskCount,
    /// Number of tasks in flight at once.
    pub concurrency: Count,
}

impl Default for LoadSettings {
    fn default() -> Self {
        Self {
            tasks: TaskCount::known(1000),
            concurrency: Count::known(32),
        }
    }
}
