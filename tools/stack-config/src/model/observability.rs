//! Metrics, logs and traces.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ComponentImage, Resources, SecretRef};
use crate::types::{DnsSubdomain, Duration, Quantity, Ratio, SecretKey};

/// The observability stack: Prometheus and Mimir for metrics, Loki and a log shipper for
/// logs, Tempo for traces, Grafana to look at all three.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Observability {
    /// Prometheus: scrapes the server and forwards to Mimir.
    pub prometheus: Prometheus,
    /// Grafana, provisioned with a datasource per enabled backend.
    pub grafana: Grafana,
    /// Loki: log storage.
    pub loki: Loki,
    /// The log shipper that sends pod logs to Loki.
    pub logs: Logs,
    /// Tempo: trace storage.
    pub tempo: Tempo,
    /// Mimir: long-term metric storage.
    pub mimir: Mimir,
    /// Traces sent by the server and the client: a span per submitted task (client), per
    /// API call and per task attempt (server), in one trace.
    pub tracing: Tracing,
}

/// A persistent volume.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Storage {
    /// Size of the volume: more than 0, in whole bytes.
    pub size: Quantity,
    /// StorageClass of the volume; unset uses the cluster default.
    pub storage_class: Option<DnsSubdomain>,
}

impl Storage {
    fn of(size: &str) -> Self {
        Self {
            size: Quantity::parse(size).expect("valid default"),
            storage_class: None,
        }
    }
}

impl Default for Storage {
    fn default() -> Self {
        Self::of("10Gi")
    }
}

/// Prometheus.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Prometheus {
    /// Whether Prometheus is deployed.
    pub enabled: bool,
    /// Prometheus image.
    pub image: ComponentImage,
    /// How long samples are kept locally.
    pub retention: Duration,
    /// How often targets are scraped.
    pub scrape_interval: Duration,
    /// Forward every sample to Mimir (requires `mimir.enabled`).
    pub remote_write_to_mimir: bool,
    /// Local storage.
    pub storage: Storage,
    /// Resources of the Prometheus pod.
    pub resources: Resources,
    /// Alerting rules Prometheus evaluates (configs/alerts.yml).
    pub alerts: Alerts,
}

/// The alerting rules of the task manager, evaluated by Prometheus. Each alert fires once
/// its condition has held for `pending_for`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Alerts {
    /// Whether the rules are rendered and loaded.
    pub enabled: bool,
    /// How long a condition must hold before its alert fires (`for:`).
    pub pending_for: Duration,
    /// TaskManagerBacklogGrowing: tasks waiting to run, in the whole store, above which a
    /// backlog that keeps growing is an alert.
    pub backlog_tasks: u64,
    /// TaskManagerDeadTasksRising: tasks failed for good in the last hour, above which it
    /// fires.
    pub dead_tasks_per_hour: u64,
    /// TaskManagerErrorRatio and TaskManagerStreamsFailing: the fraction (0-1) of calls
    /// answered with a server-side error (UNAVAILABLE, INTERNAL, UNKNOWN, DATA_LOSS,
    /// DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED) above which they fire.
    pub error_ratio: Ratio,
}

impl Default for Alerts {
    fn default() -> Self {
        Self {
            enabled: true,
            pending_for: Duration::from_secs(5 * 60),
            backlog_tasks: 1000,
            dead_tasks_per_hour: 10,
            error_ratio: Ratio::known(0.05),
        }
    }
}

impl Default for Prometheus {
    fn default() -> Self {
        Self {
            enabled: true,
            image: ComponentImage::known("prom/prometheus", "v3.7.3"),
            retention: Duration::from_secs(15 * 86_400),
            scrape_interval: Duration::from_secs(15),
            remote_write_to_mimir: true,
            storage: Storage::of("10Gi"),
            resources: Resources::known(("200m", "512Mi"), ("1", "2Gi")),
            alerts: Alerts::default(),
        }
    }
}

/// Grafana.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Grafana {
    /// Whether Grafana is deployed.
    pub enabled: bool,
    /// Grafana image.
    pub image: ComponentImage,
    /// The admin account.
    pub admin: GrafanaAdmin,
    /// Storage for Grafana's own database.
    pub storage: Storage,
    /// Resources of the Grafana pod.
    pub resources: Resources,
}

impl Default for Grafana {
    fn default() -> Self {
        Self {
            enabled: true,
            image: ComponentImage::known("grafana/grafana", "12.3.10"),
            admin: GrafanaAdmin::default(),
            storage: Storage::of("1Gi"),
            resources: Resources::known(("100m", "128Mi"), ("500m", "512Mi")),
        }
    }
}

/// Grafana's admin account.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct GrafanaAdmin {
    /// Admin user name: 1-190 printable characters (Grafana's limit), without `${...}` or
    /// `$__word{...}`, which Grafana would expand.
    #[schemars(
        length(min = 1, max = 190),
        regex(pattern = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff]+$")
    )]
    pub user: String,
    /// The Secret holding the admin password.
    pub password_secret: SecretRef,
}

impl Default for GrafanaAdmin {
    fn default() -> Self {
        Self {
            user: "admin".to_owned(),
            password_secret: SecretRef {
                name: DnsSubdomain::new("taskmanager-grafana-admin").expect("valid default"),
                key: SecretKey::new("password").expect("valid default"),
            },
        }
    }
}

/// Loki.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Loki {
    /// Whether Loki is deployed.
    pub enabled: bool,
    /// Loki image (3.x: TSDB index, schema v13).
    pub image: ComponentImage,
    /// How long logs are kept.
    pub retention: Duration,
    /// Log storage.
    pub storage: Storage,
    /// Resources of the Loki pod.
    pub resources: Resources,
}

impl Default for Loki {
    fn default() -> Self {
        Self {
            enabled: true,
            image: ComponentImage::known("grafana/loki", "3.6.15"),
            retention: Duration::from_secs(7 * 86_400),
            storage: Storage::of("10Gi"),
            resources: Resources::known(("100m", "256Mi"), ("1", "1Gi")),
        }
    }
}

/// The log shipper.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Logs {
    /// Whether pod logs are shipped to Loki (requires `loki.enabled`).
    pub enabled: bool,
    /// Which shipper runs on every node. Promtail reached its end of life in March 2026;
    /// Grafana Alloy replaces it.
    pub shipper: LogShipper,
    /// Promtail settings, used with `shipper: promtail`.
    pub promtail: Promtail,
    /// Grafana Alloy settings, used with `shipper: alloy`.
    pub alloy: Alloy,
}

impl Default for Logs {
    fn default() -> Self {
        Self {
            enabled: true,
            shipper: LogShipper::Alloy,
            promtail: Promtail::default(),
            alloy: Alloy::default(),
        }
    }
}

/// A log shipper.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LogShipper {
    /// Grafana Alloy.
    Alloy,
    /// Promtail (end of life since March 2026).
    Promtail,
}

/// Promtail.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Promtail {
    /// Promtail image.
    pub image: ComponentImage,
    /// Resources of a Promtail pod.
    pub resources: Resources,
}

impl Default for Promtail {
    fn default() -> Self {
        Self {
            image: ComponentImage::known("grafana/promtail", "3.6.15"),
            resources: Resources::known(("50m", "64Mi"), ("200m", "256Mi")),
        }
    }
}

/// Grafana Alloy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Alloy {
    /// Alloy image.
    pub image: ComponentImage,
    /// Resources of an Alloy pod.
    pub resources: Resources,
}

impl Default for Alloy {
    fn default() -> Self {
        Self {
            image: ComponentImage::known("grafana/alloy", "v1.11.3"),
            resources: Resources::known(("50m", "128Mi"), ("500m", "512Mi")),
        }
    }
}

/// Tempo.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Tempo {
    /// Whether Tempo is deployed.
    pub enabled: bool,
    /// Tempo image.
    pub image: ComponentImage,
    /// How long traces are kept.
    pub retention: Duration,
    /// Trace storage.
    pub storage: Storage,
    /// Resources of the Tempo pod.
    pub resources: Resources,
}

impl Default for Tempo {
    fn default() -> Self {
        Self {
            enabled: true,
            image: ComponentImage::known("grafana/tempo", "2.10.8"),
            retention: Duration::from_secs(3 * 86_400),
            storage: Storage::of("10Gi"),
            resources: Resources::known(("100m", "256Mi"), ("1", "1Gi")),
        }
    }
}

/// Mimir, in monolithic mode.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Mimir {
    /// Whether Mimir is deployed.
    pub enabled: bool,
    /// Mimir image.
    pub image: ComponentImage,
    /// How long samples are kept.
    pub retention: Duration,
    /// Block storage.
    pub storage: Storage,
    /// Resources of the Mimir pod.
    pub resources: Resources,
}

impl Default for Mimir {
    fn default() -> Self {
        Self {
            enabled: true,
            image: ComponentImage::known("grafana/mimir", "3.0.2"),
            retention: Duration::from_secs(30 * 86_400),
            storage: Storage::of("20Gi"),
            resources: Resources::known(("200m", "512Mi"), ("2", "2Gi")),
        }
    }
}

/// Traces sent over OTLP/gRPC by the server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Tracing {
    /// Whether traces are sent.
    pub enabled: bool,
    /// OTLP/gRPC endpoint, `http(s)://host[:port]`, such as `http://otel-collector:4317`.
    /// Unset sends to the deployed Tempo (requires `tempo.enabled`).
    #[schemars(regex(
        pattern = r"^https?://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?(/([-A-Za-z0-9._~/]|%[0-9A-Fa-f]{2})*)?$"
    ))]
    pub endpoint: Option<String>,
    /// Fraction of traces kept (0-1).
    pub sampling_ratio: Ratio,
}

impl Default for Tracing {
    fn default() -> Self {
        Self {
            enabled: true,
            endpoint: None,
            sampling_ratio: Ratio::known(0.1),
        }
    }
}
