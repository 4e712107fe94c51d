//! The Redis that stores and queues tasks.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ComponentImage, Resources};
use crate::types::{
    Count, DnsSubdomain, Duration, Host, HostPort, KeyPrefix, Port, Quantity, RedisDb, Secret,
    SecretKey,
};

/// The Redis that is the system of record for tasks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Redis {
    /// `managed`: a Redis StatefulSet is deployed with the stack. `external`: the server
    /// connects to `host`, and no Redis is deployed. `cluster`: the server runs on the Redis
    /// Cluster of `cluster.nodes`, and no Redis is deployed.
    pub mode: RedisMode,
    /// Host of an external Redis (required when `mode: external`). For a managed Redis leave
    /// it unset: the server dials the managed Redis Service.
    pub host: Option<Host>,
    /// The Redis Cluster of `mode: cluster`.
    pub cluster: RedisCluster,
    /// Replication every change waits for before the server answers.
    pub wait: WaitForReplicas,
    /// Redis port (of `host`, or of the managed Redis).
    pub port: Port,
    /// Redis logical database, 0-15 (0 on a cluster, which has no other).
    pub db: RedisDb,
    /// Prefix of every key the task manager writes (`<prefix>task:<id>`, `<prefix>tasks`,
    /// `<prefix>task_status:<id>`, ...). Empty keeps the original key names.
    pub key_prefix: KeyPrefix,
    /// Password authentication.
    pub auth: RedisAuth,
    /// How long to wait for a connection before reporting Redis unavailable.
    pub connect_timeout: Duration,
    /// How long to wait for one command before reporting Redis unavailable.
    pub command_timeout: Duration,
    /// Let the server run on a Redis whose `maxmemory-policy` evicts keys. An evicting
    /// policy can delete live tasks when memory runs out, so the server refuses it unless
    /// this is true. The managed Redis runs with `noeviction`.
    pub allow_evicting_policy: bool,
    /// `maxmemory` of the managed Redis, in bytes (`384Mi`, `400M`); `~` derives it as 70% of
    /// `resources.limits.memory`. The cap makes a full Redis answer writes with an OOM error
    /// (the server turns it into `RESOURCE_EXHAUSTED`) instead of growing until the kernel
    /// kills it, which with `appendfsync: everysec` drops the last second of acknowledged
    /// writes. The other 30% of the limit is headroom for what `maxmemory` does not count
    /// or cannot stop: pages copied on write while the AOF-rewrite child runs (this Redis is
    /// written to constantly, so many pages are), allocator fragmentation, client output
    /// buffers and the process itself. Must be below the memory limit and at least `1Mi`.
    pub maxmemory: Option<Quantity>,
    /// Durability of the managed Redis.
    pub persistence: Persistence,
    /// Image of the managed Redis.
    pub image: ComponentImage,
    /// Resources of the managed Redis.
    pub resources: Resources,
}

impl Default for Redis {
    fn default() -> Self {
        Self {
            mode: RedisMode::Managed,
            host: None,
            cluster: RedisCluster::default(),
            wait: WaitForReplicas::default(),
            port: Port::new(6379).expect("valid default"),
            db: RedisDb::known(0),
            key_prefix: KeyPrefix::new("taskmanager:").expect("valid default"),
            auth: RedisAuth::default(),
            connect_timeout: Duration::from_secs(2),
            command_timeout: Duration::from_secs(2),
            allow_evicting_policy: false,
            maxmemory: None,
            persistence: Persistence::default(),
            image: ComponentImage::known("redis", "7.4-alpine"),
            resources: Resources::known(("100m", "128Mi"), ("500m", "512Mi")),
        }
    }
}

impl Redis {
    /// Percentage of `resources.limits.memory` that becomes `maxmemory` when
    /// `redis.maxmemory` is unset. See [`Redis::maxmemory`] for the reasons.
    pub const MAXMEMORY_PERCENT_OF_LIMIT: u32 = 70;

    /// The `maxmemory` of the managed Redis in whole bytes: `redis.maxmemory` if set, else
    /// [`Self::MAXMEMORY_PERCENT_OF_LIMIT`] of the memory limit, rounded down.
    pub fn maxmemory_bytes(&self) -> u64 {
        let bytes = match &self.maxmemory {
            Some(maxmemory) => maxmemory.value(),
            None => {
                self.resources.limits.memory.value() * f64::from(Self::MAXMEMORY_PERCENT_OF_LIMIT)
                    / 100.0
            }
        };
        // Saturating: validation bounds it by the memory limit.
        bytes.floor() as u64
    }
}

/// Whether Redis is deployed with the stack or already exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RedisMode {
    /// Deploy a Redis StatefulSet with persistent storage.
    Managed,
    /// Use an existing Redis at `redis.host`.
    External,
    /// Use an existing Redis Cluster, seeded by `redis.cluster.nodes`.
    Cluster,
}

/// A Redis Cluster the server runs on. The queue is split into `shards`, each with its own
/// hash tag: one shard's keys, and its tasks' keys, live in one slot and so on one master.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RedisCluster {
    /// Seed nodes, `host:port`: the server asks them for the cluster's slots, so any
    /// reachable one will do; list several.
    pub nodes: Vec<HostPort>,
    /// How many shards the queue is split into. Each shard is one slot on one master, so
    /// use at least as many as the cluster has masters (a few per master spreads the load
    /// more evenly); every idle worker looks at every shard when woken, so do not use far
    /// more. The queue records it: a server with another count refuses to start, and
    /// changing it means draining the queue first (docs/operations.md, "Redis Cluster").
    pub shards: Count,
}

impl Default for RedisCluster {
    fn default() -> Self {
        Self {
            nodes: Vec::new(),
            shards: Count::known(6),
        }
    }
}

/// Waiting for replicas (Redis `WAIT`) after every change: submissions, claims, renewals,
/// progress and outcomes. With it, an answer means that the change reached `replicas`
/// replicas, so a failover to one of them loses no acknowledged task; without it Redis
/// replicates asynchronously and a failover may lose the last writes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct WaitForReplicas {
    /// How many replicas must have a change before it is answered; 0 does not wait.
    pub replicas: u32,
    /// How long to wait for them; a change not replicated in time is answered UNAVAILABLE
    /// (it may still be applied: retry with an idempotency key).
    pub timeout: Duration,
}

impl Default for WaitForReplicas {
    fn default() -> Self {
        Self {
            replicas: 0,
            timeout: Duration::from_secs(1),
        }
    }
}

/// Redis password authentication.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RedisAuth {
    /// Whether Redis requires a password.
    pub enabled: bool,
    /// The Kubernetes Secret holding the password. The manifests reference it; they never
    /// contain the password.
    pub secret: SecretRef,
    /// The password for runs outside Kubernetes. Prefer the environment variable
    /// `TASKMANAGER__REDIS__AUTH__PASSWORD` to writing it here. Never printed.
    pub password: Option<Secret>,
}

impl Default for RedisAuth {
    fn default() -> Self {
        Self {
            enabled: true,
            secret: SecretRef {
                name: DnsSubdomain::new("taskmanager-redis").expect("valid default"),
                key: SecretKey::new("password").expect("valid default"),
            },
            password: None,
        }
    }
}

/// A key of a Kubernetes Secret.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    /// Name of the Secret.
    pub name: DnsSubdomain,
    /// Key within the Secret: 1-253 letters, digits, `-`, `_` and `.` (not `.` or `..`), as
    /// Kubernetes requires of a Secret's keys.
    pub key: SecretKey,
}

/// Durability of the managed Redis.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Persistence {
    /// Append-only file persistence: with it, accepted tasks survive a Redis restart.
    pub enabled: bool,
    /// How often the append-only file is flushed to disk: `always` loses nothing,
    /// `everysec` at most one second of writes, `no` leaves it to the kernel.
    pub appendfsync: AppendFsync,
    /// Size of the persistent volume: more than 0, in whole bytes.
    pub size: Quantity,
    /// StorageClass of the persistent volume; unset uses the cluster default.
    pub storage_class: Option<DnsSubdomain>,
}

impl Default for Persistence {
    fn default() -> Self {
        Self {
            enabled: true,
            appendfsync: AppendFsync::Everysec,
            size: Quantity::parse("1Gi").expect("valid default"),
            storage_class: None,
        }
    }
}

/// Redis `appendfsync` policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AppendFsync {
    /// fsync after every write.
    Always,
    /// fsync once per second.
    Everysec,
    /// Let the operating system decide.
    No,
}
