//! The typed model of `stack.yaml`.
//!
//! Every struct denies unknown fields and documents each field; the documentation becomes the
//! JSON Schema's descriptions. Every field has a default, so a partial file (or an
//! environment overlay) is complete once merged.

mod client;
mod images;
mod observability;
mod redis;
mod resources;
mod server;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use client::{Client, ClientMode, LoadSettings};
pub use images::{ComponentImage, Images, PullPolicy};
pub use observability::{
    Alerts, Alloy, Grafana, GrafanaAdmin, LogShipper, Logs, Loki, Mimir, Observability, Prometheus,
    Promtail, Storage, Tempo, Tracing,
};
pub use redis::{
    AppendFsync, Persistence, Redis, RedisAuth, RedisCluster, RedisMode, SecretRef, WaitForReplicas,
};
pub use resources::{ResourceList, Resources};
pub use server::{
    Autoscaling, Lease, Limits, LogFormat, LogLevel, Logging, Retries, Server, Simulation,
    StoreKind, Workers,
};

use crate::types::DnsLabel;

/// The whole stack: the task manager's server and client, Redis, and the observability
/// stack, from a laptop to a Kubernetes cluster.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
#[schemars(title = "stack.yaml")]
pub struct Stack {
    /// Instance name. Every Kubernetes object is named `<name>-<component>` and carries it as
    /// `app.kubernetes.io/instance`. It starts with a letter (Service names must), and is at
    /// most 46 characters with a managed Redis, 52 without.
    pub name: DnsLabel,
    /// Kubernetes namespace everything is deployed into.
    pub namespace: DnsLabel,
    /// Where the server and client images are built, pushed and pulled.
    pub images: Images,
    /// The Redis that stores and queues the tasks.
    pub redis: Redis,
    /// The gRPC server and its workers.
    pub server: Server,
    /// The client that submits example tasks and streams their status.
    pub client: Client,
    /// Metrics, logs and traces.
    pub observability: Observability,
    /// Named overlays, merged over the rest of the file by `--env NAME`. Each holds any part
    /// of this same structure (except `environments`).
    pub environments: BTreeMap<DnsLabel, Overlay>,
}

impl Default for Stack {
    fn default() -> Self {
        Self {
            name: DnsLabel::new("taskmanager").expect("valid default"),
            namespace: DnsLabel::new("taskmanager").expect("valid default"),
            images: Images::default(),
            redis: Redis::default(),
            server: Server::default(),
            client: Client::default(),
            observability: Observability::default(),
            environments: BTreeMap::new(),
        }
    }
}

/// An environment overlay: any part of the stack, kept as written (it is merged and checked
/// when selected with `--env`). It prints, serializes and debug-formats with its secrets
/// redacted: values of `Secret` fields, and of unknown keys that look secret (`passwrd`, any
/// key under `auth`).
#[derive(Clone, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct Overlay(serde_json::Value);

impl Overlay {
    /// The overlay as written, secrets included. Call it only where the values are used.
    pub fn expose(&self) -> &serde_json::Value {
        &self.0
    }

    /// The overlay with its secrets replaced by `<redacted>`.
    pub fn redacted(&self) -> serde_json::Value {
        crate::redact::overlay(&self.0)
    }
}

impl From<serde_json::Value> for Overlay {
    fn from(value: serde_json::Value) -> Self {
        Self(value)
    }
}

impl std::fmt::Debug for Overlay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Overlay({})", self.redacted())
    }
}

impl Serialize for Overlay {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.redacted().serialize(serializer)
    }
}

impl JsonSchema for Overlay {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Overlay".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Any part of the stack, merged over the rest of the file when this environment is selected.",
            "allOf": [{ "$ref": "#" }],
            "not": { "required": ["environments"] }
        })
    }
}

impl Stack {
    /// Name of the Kubernetes objects of `component`: `<name>-<component>`.
    pub fn object_name(&self, component: &str) -> String {
        format!("{}-{component}", self.name)
    }

    /// The full reference of the server image: `<registry>/<repository>:<tag>`.
    pub fn server_image(&self) -> String {
        self.images.reference(&self.images.server)
    }

    /// The full reference of the client image: `<registry>/<repository>:<tag>`.
    pub fn client_image(&self) -> String {
        self.images.reference(&self.images.client)
    }
}
