//! The gRPC server and its workers.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Resources;
use crate::types::{Count, Duration, Port, Ratio, TaskCount};

/// The gRPC server: API, queue, workers and status streams.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Server {
    /// Where tasks are stored: `redis` (durable, shared by every replica) or `memory`
    /// (in-process, for a single local server without Redis; nothing survives a restart).
    pub store: StoreKind,
    /// gRPC port (the API, health and reflection).
    pub port: Port,
    /// Port of the Prometheus `/metrics` endpoint.
    pub metrics_port: Port,
    /// Number of server pods when autoscaling is off.
    pub replicas: u32,
    /// Horizontal pod autoscaling on CPU.
    pub autoscaling: Autoscaling,
    /// Resources of a server pod.
    pub resources: Resources,
    /// Task workers in each server process.
    pub workers: Workers,
    /// Leases held by running tasks.
    pub lease: Lease,
    /// Retries of failed attempts.
    pub retries: Retries,
    /// How long a finished (completed, failed or cancelled) task is kept before it expires.
    pub retention: Duration,
    /// On shutdown, how long running tasks may take to finish before they are handed back to
    /// the queue.
    pub shutdown_grace: Duration,
    /// Limits on requests.
    pub limits: Limits,
    /// Simulated work of the default handler. `duration: 5s` and `failure_rate: 0.2`
    /// reproduce the original demo.
    pub simulation: Simulation,
    /// Logging.
    pub log: Logging,
}

impl Default for Server {
    fn default() -> Self {
        Self {
            store: StoreKind::Redis,
            port: Port::new(50051).expect("valid default"),
            metrics_port: Port::new(9090).expect("valid default"),
            replicas: 2,
            autoscaling: Autoscaling::default(),
            resources: Resources::known(("100m", "128Mi"), ("1", "512Mi")),
            workers: Workers::default(),
            lease: Lease::default(),
            retries: Retries::default(),
            retention: Duration::from_secs(24 * 3600),
            shutdown_grace: Duration::from_secs(30),
            limits: Limits::default(),
            simulation: Simulation::default(),
            log: Logging::default(),
        }
    }
}

/// Where the server stores tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StoreKind {
    /// Redis: durable and shared by every replica.
    Redis,
    /// In the server process: one replica, nothing survives a restart.
    Memory,
}

/// Horizontal pod autoscaling of the server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Autoscaling {
    /// Whether a HorizontalPodAutoscaler manages the number of server pods.
    pub enabled: bool,
    /// Fewest server pods.
    pub min_replicas: u32,
    /// Most server pods; at least `min_replicas`.
    pub max_replicas: u32,
    /// Average CPU utilisation (percent of the request, 1-100) the autoscaler aims for.
    pub target_cpu_utilization: u32,
}

impl Default for Autoscaling {
    fn default() -> Self {
        Self {
            enabled: true,
            min_replicas: 2,
            max_replicas: 6,
            target_cpu_utilization: 70,
        }
    }
}

/// Task workers of one server process.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Workers {
    /// Number of tasks one server process runs at once.
    pub concurrency: Count,
}

impl Default for Workers {
    fn default() -> Self {
        Self {
            concurrency: Count::known(8),
        }
    }
}

/// Leases: a running task is owned by its worker only while the worker renews its lease.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Lease {
    /// How long a lease lasts without renewal. When it runs out (the worker's process died),
    /// the task goes back to the queue, or to the dead set after its last attempt.
    pub duration: Duration,
    /// How often a worker renews its leases; shorter than `duration`.
    pub renew_interval: Duration,
    /// How often each server looks for expired leases.
    pub reaper_interval: Duration,
}

impl Default for Lease {
    fn default() -> Self {
        Self {
            duration: Duration::from_secs(30),
            renew_interval: Duration::from_secs(10),
            reaper_interval: Duration::from_secs(5),
        }
    }
}

/// Retries of failed attempts, with exponential backoff and jitter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Retries {
    /// Attempts a task gets in all (1 means no retry), unless its request says otherwise.
    pub max_attempts: Count,
    /// Delay before the second attempt.
    pub backoff_initial: Duration,
    /// Longest delay between attempts.
    pub backoff_max: Duration,
    /// Factor the delay grows by after each failed attempt (at least 1).
    #[serde(deserialize_with = "crate::types::float")]
    pub backoff_multiplier: f64,
    /// Random spread of each delay, as a fraction of it (0-1).
    pub jitter: Ratio,
}

impl Default for Retries {
    fn default() -> Self {
        Self {
            max_attempts: Count::known(3),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            backoff_multiplier: 2.0,
            jitter: Ratio::known(0.2),
        }
    }
}

/// Limits on requests.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest gRPC message accepted, in bytes.
    pub max_message_bytes: Count,
    /// Longest `task_description`, in bytes.
    pub max_description_bytes: Count,
    /// Largest `payload`, in bytes.
    pub max_payload_bytes: u32,
    /// Longest `idempotency_key` and `kind`, in bytes.
    pub max_key_bytes: Count,
    /// Most tasks in one `SubmitTasks` call.
    pub max_batch: Count,
    /// Most status streams one server process keeps open at once; a stream beyond it is
    /// refused with `RESOURCE_EXHAUSTED`. An idle stream costs the server memory only (no
    /// Redis command): about 6 KB (measured: 10,000 idle streams, 58 MB).
    pub max_streams: Count,
    /// Most unary requests (submit, get, cancel) one server process handles at once; a
    /// request beyond it is refused with `RESOURCE_EXHAUSTED` instead of waiting in an
    /// unbounded queue.
    pub max_in_flight: Count,
    /// Most tasks waiting to run (queued or delayed) in the whole store; a submission beyond
    /// it is refused with `RESOURCE_EXHAUSTED`. `~` sets no cap: Redis's `maxmemory` is then
    /// the only bound.
    pub max_queued_tasks: Option<TaskCount>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: Count::known(4 * 1024 * 1024),
            max_description_bytes: Count::known(4096),
            max_payload_bytes: 1024 * 1024,
            max_key_bytes: Count::known(256),
            max_batch: Count::known(1000),
            max_streams: Count::known(20_000),
            max_in_flight: Count::known(1024),
            max_queued_tasks: None,
        }
    }
}

/// Simulated work of the default handler.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Simulation {
    /// How long each task works before it finishes, reporting progress along the way.
    pub duration: Duration,
    /// Fraction of attempts that fail (0-1).
    pub failure_rate: Ratio,
}

impl Default for Simulation {
    fn default() -> Self {
        Self {
            duration: Duration::from_secs(0),
            failure_rate: Ratio::known(0.0),
        }
    }
}

/// Logging of the server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Logging {
    /// Least severe level written.
    pub level: LogLevel,
    /// `json` for log shippers, `text` for people.
    pub format: LogFormat,
}

impl Default for Logging {
    fn default() -> Self {
        Self {
            level: LogLevel::Info,
            format: LogFormat::Json,
        }
    }
}

/// Log level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    /// Everything.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected that was handled.
    Warn,
    /// Something failed.
    Error,
}

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Text,
}
