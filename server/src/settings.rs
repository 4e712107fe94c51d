//! The server's settings, derived from the stack.

use std::net::SocketAddr;
use std::time::Duration;

use stack_config::model::{LogFormat, LogLevel, StoreKind};
use stack_config::topology::RedisTarget;
use stack_config::{Component, Stack, Topology};

use crate::api::ApiLimits;
use crate::store::{ClusterOptions, RedisOptions, WaitOptions};
use crate::telemetry::TraceSettings;
use crate::worker::WorkerSettings;
use crate::worker::handler::Simulation;

/// Everything the server needs, resolved from `stack.yaml`.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Address the gRPC server binds.
    pub listen: SocketAddr,
    /// Address the metrics endpoint binds.
    pub metrics_listen: SocketAddr,
    /// Which store to use.
    pub store: StoreKind,
    /// How to reach Redis (for `store: redis`).
    pub redis: RedisOptions,
    /// Workers.
    pub workers: WorkerSettings,
    /// Simulated work of the default handler.
    pub simulation: Simulation,
    /// Request limits.
    pub limits: ApiLimits,
    /// Largest gRPC message, bytes.
    pub max_message_bytes: usize,
    /// How often expired leases are looked for.
    pub reaper_interval: Duration,
    /// How long terminal tasks are kept.
    pub retention: Duration,
    /// How long running tasks may finish on shutdown.
    pub shutdown_grace: Duration,
    /// Run on a Redis whose eviction policy may delete live tasks.
    pub allow_evicting_policy: bool,
    /// Log level.
    pub log_level: LogLevel,
    /// Log format.
    pub log_format: LogFormat,
    /// Where traces go, when they are sent.
    pub traces: Option<TraceSettings>,
}

/// Why settings could not be derived.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// Redis requires a password that was not given.
    #[error(
        "redis.auth.enabled is true but no password was given: set the environment variable \
         TASKMANAGER__REDIS__AUTH__PASSWORD (or disable redis.auth)"
    )]
    MissingPassword,
    /// The stack does not compile (it was not loaded through the loader, which reports the
    /// same errors, located).
    #[error("invalid stack: {0}")]
    Invalid(String),
}

/// Percent-encodes a URL userinfo component.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Settings {
    /// Derives the settings from a stack, compiling its topology.
    pub fn from_stack(stack: &Stack) -> Result<Self, SettingsError> {
        let topology = Topology::compile(stack).map_err(|errors| {
            let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
            SettingsError::Invalid(errors.join("; "))
        })?;
        Self::new(stack, &topology)
    }

    /// Derives the settings from a loaded stack and its topology: Redis and the trace
    /// endpoint are where the topology says.
    pub fn new(stack: &Stack, topology: &Topology) -> Result<Self, SettingsError> {
        let server = &stack.server;
        let redis = &stack.redis;
        let auth = if redis.auth.enabled {
            let password = redis
                .auth
                .password
                .as_ref()
                .ok_or(SettingsError::MissingPassword)?;
            format!(":{}@", encode(password.expose()))
        } else {
            String::new()
        };
        let (url, cluster) = match &topology.redis {
            RedisTarget::Single(single) => {
                let host = stack_config::topology::bracketed(&single.host);
                let url = format!("redis://{auth}{host}:{}/{}", single.port, redis.db);
                (url, None)
            }
            RedisTarget::Cluster { nodes, shards } => {
                let cluster = ClusterOptions {
                    nodes: nodes
                        .iter()
                        .map(|node| format!("redis://{auth}{node}"))
                        .collect(),
                    shards: usize::try_from(*shards).unwrap_or(1),
                };
                (String::new(), Some(cluster))
            }
        };
        let usize_of = |n: u32| usize::try_from(n).unwrap_or(usize::MAX);
        Ok(Self {
            listen: SocketAddr::from(([0, 0, 0, 0], server.port.get())),
            metrics_listen: SocketAddr::from(([0, 0, 0, 0], server.metrics_port.get())),
            store: server.store,
            redis: RedisOptions {
                url,
                prefix: redis.key_prefix.to_string(),
                retention: server.retention.get(),
                connect_timeout: redis.connect_timeout.get(),
                command_timeout: redis.command_timeout.get(),
                max_queued: server.limits.max_queued_tasks.map(|cap| cap.get()),
                outage_gap: crate::maintenance::HEALTH_EVERY * 2 + redis.command_timeout.get(),
                reap_settle: server.lease.renew_interval.get() + redis.command_timeout.get(),
                cluster,
                wait: (redis.wait.replicas > 0).then(|| WaitOptions {
                    replicas: redis.wait.replicas,
                    timeout: redis.wait.timeout.get(),
                }),
            },
            workers: WorkerSettings {
                concurrency: server.workers.concurrency.get(),
                lease: server.lease.duration.get(),
                renew_interval: server.lease.renew_interval.get(),
                backoff_initial: server.retries.backoff_initial.get(),
                backoff_max: server.retries.backoff_max.get(),
                backoff_multiplier: server.retries.backoff_multiplier,
                jitter: server.retries.jitter.get(),
            },
            simulation: Simulation {
                duration: server.simulation.duration.get(),
                failure_rate: server.simulation.failure_rate.get(),
            },
            limits: ApiLimits {
                max_description_bytes: usize_of(server.limits.max_description_bytes.get()),
                max_payload_bytes: usize_of(server.limits.max_payload_bytes),
                max_key_bytes: usize_of(server.limits.max_key_bytes.get()),
                max_batch: usize_of(server.limits.max_batch.get()),
                default_max_attempts: server.retries.max_attempts.get(),
                max_streams: usize_of(server.limits.max_streams.get()),
                max_in_flight: usize_of(server.limits.max_in_flight.get()),
            },
            max_message_bytes: usize_of(server.limits.max_message_bytes.get()),
            reaper_interval: server.lease.reaper_interval.get(),
            retention: server.retention.get(),
            shutdown_grace: server.shutdown_grace.get(),
            allow_evicting_policy: redis.allow_evicting_policy,
            log_level: server.log.level,
            log_format: server.log.format,
            traces: TraceSettings::new(stack, topology, Component::Server),
        })
    }
}

#[cfg(test)]
mod tests {
    use stack_config::Loader;

    use super::*;

    #[test]
    fn builds_the_redis_address_without_leaking_the_password() {
        let stack = Loader::new()
            .sets([
                "redis.mode=external",
                "redis.host=cache.internal",
                "redis.db=3",
            ])
            .env_vars([(
                "TASKMANAGER__REDIS__AUTH__PASSWORD".to_owned(),
                "p@ss:w/rd".to_owned(),
            )])
            .load()
            .expect("valid")
            .stack;
        let settings = Settings::from_stack(&stack).expect("settings");
        assert_eq!(
            settings.redis.url,
            "redis://:p%40ss%3Aw%2Frd@cache.internal:6379/3"
        );
        assert!(!format!("{:?}", settings.redis).contains("p@ss"));
    }

    #[test]
    fn builds_the_cluster_seeds_with_the_password() {
        let stack = Loader::new()
            .sets([
                "redis.mode=cluster",
                "redis.cluster.nodes=[redis-0.internal:6379, [fd00::7]:7000]",
                "redis.cluster.shards=9",
                "redis.wait.replicas=1",
                "redis.wait.timeout=250ms",
            ])
            .env_vars([(
                "TASKMANAGER__REDIS__AUTH__PASSWORD".to_owned(),
                "p@ss".to_owned(),
            )])
            .load()
            .expect("valid")
            .stack;
        let settings = Settings::from_stack(&stack).expect("settings");
        let cluster = settings.redis.cluster.as_ref().expect("a cluster");
        assert_eq!(
            cluster.nodes,
            [
                "redis://:p%40ss@redis-0.internal:6379",
                "redis://:p%40ss@[fd00::7]:7000"
            ]
        );
        assert_eq!(cluster.shards, 9);
        assert_eq!(
            settings.redis.wait,
            Some(WaitOptions {
                replicas: 1,
                timeout: Duration::from_millis(250),
            })
        );
        assert!(!format!("{:?}", settings.redis).contains("p@ss"));
    }

    #[test]
    fn a_required_password_must_be_given() {
        let stack = stack_config::Stack::default();
        assert!(matches!(
            Settings::from_stack(&stack),
            Err(SettingsError::MissingPassword)
        ));
        let stack = Loader::new()
            .sets(["redis.auth.enabled=false"])
            .load()
            .expect("valid")
            .stack;
        let settings = Settings::from_stack(&stack).expect("settings");
        assert_eq!(
            settings.redis.url,
            "redis://taskmanager-redis.taskmanager.svc:6379/0"
        );
    }
}
