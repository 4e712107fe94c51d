//! Semantic rules: what a well-typed stack must also satisfy. Every rule runs and every
//! violation is returned; the loader locates each one.
//!
//! The rules on strings — what Kubernetes, a container runtime or the consuming program
//! would refuse — are in `strings`. What one value must be on its own (a fraction, a
//! positive count, a Redis database, a Secret's key) its type checks when it is read
//! (`types`); what an external Redis needs, `Topology::compile`.
//!
//! One concept: the rules across settings, one function per rule.

mod strings;

use crate::diagnostic::Diagnostic;
use crate::model::{LogShipper, Redis, RedisMode, Resources, Stack, StoreKind};
use crate::types::Duration;

/// Checks every rule and returns the violations (errors and warnings), unlocated.
pub fn validate(stack: &Stack) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    ports(stack, &mut out);
    replicas(stack, &mut out);
    durations(stack, &mut out);
    redis(stack, &mut out);
    rate(stack, &mut out);
    resources(stack, &mut out);
    references(stack, &mut out);
    strings::check(stack, &mut out);
    out
}

fn ports(stack: &Stack, out: &mut Vec<Diagnostic>) {
    let server = &stack.server;
    if server.port == server.metrics_port {
        out.push(
            Diagnostic::error(
                "server.metrics_port",
                "port-collision",
                format!(
                    "port {} is used twice in the server pod: by `server.port` and \
                     `server.metrics_port`",
                    server.port
                ),
            )
            .with_help("give the metrics endpoint its own port, for example 9090")
            .with_related("server.port"),
        );
    }
}

fn replicas(stack: &Stack, out: &mut Vec<Diagnostic>) {
    let scaling = &stack.server.autoscaling;
    if scaling.min_replicas == 0 {
        out.push(Diagnostic::error(
            "server.autoscaling.min_replicas",
            "replicas-range",
            "must be at least 1 (got 0)",
        ));
    }
    if scaling.min_replicas > scaling.max_replicas {
        out.push(
            Diagnostic::error(
                "server.autoscaling.max_replicas",
                "replicas-range",
                format!(
                    "max_replicas ({}) is less than min_replicas ({})",
                    scaling.max_replicas, scaling.min_replicas
                ),
            )
            .with_related("server.autoscaling.min_replicas"),
        );
    }
    if !(1..=100).contains(&scaling.target_cpu_utilization) {
        out.push(Diagnostic::error(
            "server.autoscaling.target_cpu_utilization",
            "percent-range",
            format!(
                "must be a percentage from 1 to 100 (got {})",
                scaling.target_cpu_utilization
            ),
        ));
    }
    if stack.server.store == StoreKind::Memory && (scaling.enabled || stack.server.replicas > 1) {
        out.push(
            Diagnostic::error(
                "server.store",
                "memory-store-replicas",
                "the memory store lives in one server process, so replicas would not share tasks",
            )
            .with_help("use `store: redis`, or one replica without autoscaling")
            .with_related("server.replicas"),
        );
    }
    // Kubernetes counts replicas in a 32-bit signed integer.
    for (path, replicas) in [
        ("server.replicas", stack.server.replicas),
        ("client.replicas", stack.client.replicas),
        ("server.autoscaling.max_replicas", scaling.max_replicas),
    ] {
        if i32::try_from(replicas).is_err() {
            out.push(Diagnostic::error(
                path,
                "replicas-range",
                format!(
                    "must be at most {} (got {replicas}): Kubernetes counts replicas in a 32-bit \
                     integer",
                    i32::MAX
                ),
            ));
        }
    }
    if !scaling.enabled && stack.server.replicas == 0 {
        out.push(
            Diagnostic::error(
                "server.replicas",
                "replicas-range",
                "must be at least 1 (got 0): with no server, no task runs",
            )
            .with_related("server.autoscaling.enabled"),
        );
    }
}

fn positive(out: &mut Vec<Diagnostic>, path: &str, duration: Duration) {
    if duration.is_zero() {
        out.push(Diagnostic::error(
            path,
            "positive-duration",
            "must be longer than 0s (got 0s)",
        ));
    }
}

fn durations(stack: &Stack, out: &mut Vec<Diagnostic>) {
    let server = &stack.server;
    let lease = &server.lease;
    for (path, duration) in [
        ("server.lease.duration", lease.duration),
        ("server.lease.renew_interval", lease.renew_interval),
        ("server.lease.reaper_interval", lease.reaper_interval),
        ("server.retention", server.retention),
        (
            "server.retries.backoff_initial",
            server.retries.backoff_initial,
        ),
        ("server.retries.backoff_max", server.retries.backoff_max),
        ("redis.connect_timeout", stack.redis.connect_timeout),
        ("redis.command_timeout", stack.redis.command_timeout),
        (
            "observability.prometheus.retention",
            stack.observability.prometheus.retention,
        ),
        (
            "observability.prometheus.scrape_interval",
            stack.observability.prometheus.scrape_interval,
        ),
        (
            "observability.loki.retention",
            stack.observability.loki.retention,
        ),
        (
            "observability.tempo.retention",
            stack.observability.tempo.retention,
        ),
        (
            "observability.mimir.retention",
            stack.observability.mimir.retention,
        ),
    ] {
        positive(out, path, duration);
    }
    if !lease.renew_interval.is_zero() && lease.renew_interval >= lease.duration {
        out.push(
            Diagnostic::error(
                "server.lease.renew_interval",
                "lease-renewal",
                format!(
                    "renew_interval ({}) must be shorter than the lease duration ({}), or leases \
                     expire while their tasks run",
                    lease.renew_interval, lease.duration
                ),
            )
            .with_help("renew at most every third of the lease duration")
            .with_related("server.lease.duration"),
        );
    }
    let retries = &server.retries;
    if retries.backoff_initial > retries.backoff_max {
        out.push(
            Diagnostic::error(
                "server.retries.backoff_max",
                "backoff-range",
                format!(
                    "backoff_max ({}) is shorter than backoff_initial ({})",
                    retries.backoff_max, retries.backoff_initial
                ),
            )
            .with_related("server.retries.backoff_initial"),
        );
    }
    if !(retries.backoff_multiplier >= 1.0 && retries.backoff_multiplier.is_finite()) {
        out.push(Diagnostic::error(
            "server.retries.backoff_multiplier",
            "backoff-range",
            format!("must be at least 1 (got {})", retries.backoff_multiplier),
        ));
    }
}

fn redis(stack: &Stack, out: &mut Vec<Diagnostic>) {
    let redis = &stack.redis;
    // An external Redis without a host is no topology: `Topology::compile` refuses it.
    if let (RedisMode::Managed, Some(host)) = (redis.mode, &redis.host) {
        out.push(
            Diagnostic::error(
                "redis.host",
                "redis-managed-host",
                format!(
                    "a managed Redis is reached through its own Service, so `redis.host` \
                     ({host}) would be ignored"
                ),
            )
            .with_help("remove redis.host, or set `redis.mode: external`"),
        );
    }
    if let (RedisMode::Cluster, Some(host)) = (redis.mode, &redis.host) {
        out.push(
            Diagnostic::error(
                "redis.host",
                "redis-cluster-host",
                format!(
                    "a Redis Cluster is reached through `redis.cluster.nodes`, so `redis.host` \
                     ({host}) would be ignored"
                ),
            )
            .with_help("list the node as host:port in redis.cluster.nodes")
            .with_related("redis.mode"),
        );
    }
    if redis.mode != RedisMode::Cluster && !redis.cluster.nodes.is_empty() {
        out.push(
            Diagnostic::error(
                "redis.cluster.nodes",
                "redis-cluster-unused",
                "`redis.cluster.nodes` is set but `redis.mode` is not `cluster`, so the \
                 nodes would be ignored",
            )
            .with_help("set `redis.mode: cluster`, or remove redis.cluster.nodes")
            .with_related("redis.mode"),
        );
    }
    if redis.mode == RedisMode::Cluster && redis.db.get() != 0 {
        out.push(
            Diagnostic::error(
                "redis.db",
                "redis-cluster-db",
                format!("a Redis Cluster has database 0 only (got {})", redis.db),
            )
            .with_related("redis.mode"),
        );
    }
    if redis.wait.replicas > 0 {
        // `WAIT n 0` blocks until the replicas answer, however long that takes.
        positive(out, "redis.wait.timeout", redis.wait.timeout);
    }
    maxmemory(redis, out);
}

/// The managed Redis's `maxmemory` must fit under its memory limit, or the kernel kills Redis
/// before Redis refuses a write; and it must be a real cap (Redis reads 0 as "no limit").
fn maxmemory(redis: &Redis, out: &mut Vec<Diagnostic>) {
    const LIMIT_PATH: &str = "redis.resources.limits.memory";
    const FLOOR: u64 = 1024 * 1024;
    if redis.mode != RedisMode::Managed {
        if let Some(maxmemory) = &redis.maxmemory {
            out.push(
                Diagnostic::warning(
                    "redis.maxmemory",
                    "redis-maxmemory-external",
                    format!(
                        "`redis.maxmemory` ({maxmemory}) applies to the managed Redis only, so an \
                         external Redis ignores it"
                    ),
                )
                .with_help("set maxmemory on the external Redis itself, or remove redis.maxmemory")
                .with_related("redis.mode"),
            );
        }
        return;
    }
    let limit = &redis.resources.limits.memory;
    let bytes = redis.maxmemory_bytes();
    match &redis.maxmemory {
        Some(maxmemory) if maxmemory.value() >= limit.value() => out.push(
            Diagnostic::error(
                "redis.maxmemory",
                "redis-maxmemory",
                format!(
                    "maxmemory ({maxmemory}) must be below the memory limit of the managed Redis \
                     ({limit}): at the limit the kernel kills Redis before Redis refuses a write"
                ),
            )
            .with_help(format!(
                "leave it unset (~) to use {}% of the limit, or raise \
                 redis.resources.limits.memory",
                Redis::MAXMEMORY_PERCENT_OF_LIMIT
            ))
            .with_related(LIMIT_PATH),
        ),
        Some(maxmemory) if bytes < FLOOR => out.push(Diagnostic::error(
            "redis.maxmemory",
            "redis-maxmemory",
            format!(
                "maxmemory ({maxmemory}, {bytes} bytes) must be at least 1Mi: Redis reads 0 as \
                 no limit at all, and an empty Redis already uses almost 1Mi"
            ),
        )),
        None if bytes < FLOOR => out.push(Diagnostic::error(
            LIMIT_PATH,
            "redis-maxmemory",
            format!(
                "the memory limit of the managed Redis ({limit}) leaves a maxmemory of {bytes} \
                 bytes ({}% of it): below 1Mi, as an empty Redis already uses almost that much",
                Redis::MAXMEMORY_PERCENT_OF_LIMIT
            ),
        )),
        _ => {}
    }
}

fn rate(stack: &Stack, out: &mut Vec<Diagnostic>) {
    let client = &stack.client;
    if !(client.rate > 0.0 && client.rate.is_finite()) {
        out.push(Diagnostic::error(
            "client.rate",
            "positive",
            format!(
                "must be a positive number of tasks per second (got {})",
                client.rate
            ),
        ));
    }
}

fn check_resources(out: &mut Vec<Diagnostic>, path: &str, resources: &Resources) {
    for (name, request, limit) in [
        ("cpu", &resources.requests.cpu, &resources.limits.cpu),
        (
            "memory",
            &resources.requests.memory,
            &resources.limits.memory,
        ),
    ] {
        if request.value() > limit.value() {
            out.push(Diagnostic::error(
                format!("{path}.limits.{name}"),
                "resources-range",
                format!("the {name} limit ({limit}) is below its request ({request})"),
            ));
        }
    }
}

/// Every component's resources, with the key path they are set at.
pub(crate) fn component_resources(stack: &Stack) -> Vec<(String, &Resources)> {
    crate::Component::ALL
        .iter()
        .map(|component| {
            let spec = component.spec();
            (
                format!("{}.resources", spec.section),
                (spec.resources)(stack),
            )
        })
        .collect()
}

fn resources(stack: &Stack, out: &mut Vec<Diagnostic>) {
    for (path, resources) in component_resources(stack) {
        check_resources(out, &path, resources);
    }
}

fn references(stack: &Stack, out: &mut Vec<Diagnostic>) {
    let o = &stack.observability;
    let mut requires = |path: &str, what: &str, needed: &str| {
        out.push(
            Diagnostic::error(
                path,
                "component-disabled",
                format!("{what} needs `{needed}`, which is disabled"),
            )
            .with_help(format!("enable {needed}, or turn this off"))
            .with_related(needed.split(' ').next().unwrap_or(needed)),
        );
    };
    if o.prometheus.enabled && o.prometheus.remote_write_to_mimir && !o.mimir.enabled {
        requires(
            "observability.prometheus.remote_write_to_mimir",
            "writing Prometheus samples to Mimir",
            "observability.mimir.enabled",
        );
    }
    if o.logs.enabled && !o.loki.enabled {
        requires(
            "observability.logs.enabled",
            "shipping logs",
            "observability.loki.enabled",
        );
    }
    if o.tracing.enabled && o.tracing.endpoint.is_none() && !o.tempo.enabled {
        requires(
            "observability.tracing.enabled",
            "sending traces without an explicit endpoint",
            "observability.tempo.enabled",
        );
    }
    if o.grafana.enabled && !(o.prometheus.enabled || o.mimir.enabled || o.loki.enabled) {
        requires(
            "observability.grafana.enabled",
            "Grafana",
            "observability.prometheus.enabled (or mimir or loki)",
        );
    }
    if o.logs.enabled && o.logs.shipper == LogShipper::Promtail {
        out.push(
            Diagnostic::warning(
                "observability.logs.shipper",
                "promtail-eol",
                "Promtail reached its end of life in March 2026 and receives no more fixes",
            )
            .with_help("switch to `shipper: alloy`"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(validate(&Stack::default()), Vec::new());
    }

    #[test]
    fn every_violation_is_reported() {
        let mut stack = Stack::default();
        stack.server.metrics_port = stack.server.port;
        stack.server.autoscaling.min_replicas = 5;
        stack.server.autoscaling.max_replicas = 3;
        stack.server.lease.renew_interval = Duration::from_secs(60);
        stack.redis.host = Some(crate::types::Host::new("redis.example.com").expect("host"));
        stack.observability.mimir.enabled = false;
        let rules: Vec<_> = validate(&stack)
            .iter()
            .map(|d| (d.path.clone(), d.rule))
            .collect();
        assert_eq!(
            rules,
            vec![
                ("server.metrics_port".to_owned(), "port-collision"),
                (
                    "server.autoscaling.max_replicas".to_owned(),
                    "replicas-range"
                ),
                ("server.lease.renew_interval".to_owned(), "lease-renewal"),
                ("redis.host".to_owned(), "redis-managed-host"),
                (
                    "observability.prometheus.remote_write_to_mimir".to_owned(),
                    "component-disabled"
                ),
            ]
        );
    }
}
