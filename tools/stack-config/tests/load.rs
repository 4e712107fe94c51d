//! Loading stacks: the shipped file, layer precedence, and bad input reported completely.
//!
//! One concept: loading, as a user runs it.

mod support;

use stack_config::model::RedisMode;
use stack_config::{Diagnostic, Loader, Origin, Report, Stack};
use support::{TempDir, shipped};

fn load_text(text: &str) -> Result<Stack, Report> {
    let dir = TempDir::new();
    let path = dir.write("stack.yaml", text);
    Loader::new().file(path).load().map(|loaded| loaded.stack)
}

/// (rule, path, "line:column") of every diagnostic, in order.
fn summary(report: &Report) -> Vec<(&'static str, String, String)> {
    report
        .diagnostics
        .iter()
        .map(|d: &Diagnostic| {
            let location = match &d.origin {
                Origin::File { line, column, .. } => format!("{line}:{column}"),
                Origin::Env { var } => format!("env {var}"),
                Origin::Set { arg } => format!("--set {arg}"),
                Origin::Argument { arg } => format!("arg {arg}"),
                Origin::Default => "default".to_owned(),
            };
            (d.rule, d.path.clone(), location)
        })
        .collect()
}

fn s(text: &str) -> String {
    text.to_owned()
}

#[test]
fn the_shipped_stack_loads_in_every_environment() {
    let loader = Loader::new().file(shipped());
    assert_eq!(loader.environments(), vec![s("local"), s("prod")]);

    let base = loader.load().expect("the shipped stack is valid");
    assert_eq!(base.warnings, Vec::new());
    assert_eq!(base.stack.server.port.get(), 50051);
    assert_eq!(base.stack.redis.mode, RedisMode::Managed);
    assert_eq!(base.stack.server.simulation.failure_rate.get(), 0.2);

    let local = loader
        .clone()
        .environment(Some("local"))
        .load()
        .expect("local is valid");
    assert!(!local.stack.redis.auth.enabled);
    assert!(!local.stack.server.autoscaling.enabled);
    // What the overlay does not mention keeps the file's value.
    assert_eq!(local.stack.server.workers.concurrency.get(), 8);

    let prod = loader
        .environment(Some("prod"))
        .load()
        .expect("prod is valid");
    assert_eq!(prod.stack.redis.mode, RedisMode::External);
    assert!(matches!(
        &prod.topology.redis,
        stack_config::topology::RedisTarget::Single(redis)
            if redis.host == "redis.prod.internal" && !redis.managed
    ));
    assert_eq!(prod.stack.server.autoscaling.max_replicas, 12);
    // A partial mapping in the overlay merges into the file's mapping.
    assert_eq!(prod.stack.server.autoscaling.target_cpu_utilization, 70);
}

#[test]
fn the_shipped_stack_round_trips_through_its_resolved_form() {
    let stack = Loader::new().file(shipped()).load().expect("valid").stack;
    let mut resolved = serde_json::to_value(&stack).expect("serializes");
    resolved
        .as_object_mut()
        .expect("an object")
        .remove("derived");
    let again = load_text(&stack_config::to_yaml(&resolved)).expect("the resolved form loads");
    assert_eq!(again, stack);
}

#[test]
fn an_empty_file_gives_the_defaults() {
    assert_eq!(load_text("").expect("valid"), Stack::default());
    assert_eq!(
        load_text("# only a comment\n").expect("valid"),
        Stack::default()
    );
}

#[test]
fn an_unknown_key_is_located_with_a_suggestion() {
    let report = load_text("server:\n  prot: 8080\n").expect_err("invalid");
    assert_eq!(
        summary(&report),
        vec![("unknown-key", s("server.prot"), s("2:3"))]
    );
    let diagnostic = &report.diagnostics[0];
    assert_eq!(diagnostic.message, "unknown key `prot`");
    assert_eq!(diagnostic.help.as_deref(), Some("did you mean `port`?"));
    assert_eq!(
        diagnostic
            .location()
            .as_deref()
            .map(|l| l.ends_with("stack.yaml:2:3")),
        Some(true)
    );
}

#[test]
fn a_wrong_type_is_located() {
    let report = load_text("server:\n  workers:\n    concurrency: many\n").expect_err("invalid");
    assert_eq!(
        summary(&report),
        vec![("type", s("server.workers.concurrency"), s("3:18"))]
    );
    assert_eq!(
        report.diagnostics[0].message,
        "expected a whole number from 0 to 4294967295, found string \"many\""
    );
}

#[test]
fn an_out_of_range_port_is_located() {
    let report = load_text("redis:\n  port: 70000\n").expect_err("invalid");
    assert_eq!(
        summary(&report),
        vec![("invalid-value", s("redis.port"), s("2:9"))]
    );
    assert_eq!(
        report.diagnostics[0].message,
        "70000 is not a valid port: use 1-65535"
    );
}

#[test]
fn an_invalid_name_is_located() {
    let report = load_text("namespace: Task_Manager\n").expect_err("invalid");
    assert_eq!(
        summary(&report),
        vec![("invalid-value", s("namespace"), s("1:12"))]
    );
    assert!(
        report.diagnostics[0]
            .message
            .starts_with("\"Task_Manager\" is not a DNS-1123 label"),
        "{}",
        report.diagnostics[0].message
    );
}

#[test]
fn min_above_max_replicas_is_located() {
    let text = "server:\n  autoscaling:\n    min_replicas: 5\n    max_replicas: 2\n";
    let report = load_text(text).expect_err("invalid");
    assert_eq!(
        summary(&report),
        vec![(
            "replicas-range",
            s("server.autoscaling.max_replicas"),
            s("4:19")
        )]
    );
    assert_eq!(
        report.diagnostics[0].message,
        "max_replicas (2) is less than min_replicas (5)"
    );
}

#[test]
fn every_error_in_a_file_is_reported_at_once() {
    let text = "\
name: Bad_Name
images:
  registry: ghcr.io/Acme
  tag: ok
  pul_policy: Always
redis:
  mode: external
  port: 0
server:
  port: 9090
  replicas: two
  lease:
    duration: 10s
    renew_interval: 30s
  retention: 0s
  autoscaling:
    min_replicas: 4
    max_replicas: 3
observability:
  mimir:
    enabled: false
  logs:
    shipper: syslog
";
    let report = load_text(text).expect_err("invalid");
    assert_eq!(
        summary(&report),
        vec![
            ("invalid-value", s("name"), s("1:7")),
            ("invalid-value", s("images.registry"), s("3:13")),
            ("unknown-key", s("images.pul_policy"), s("5:3")),
            ("redis-external-host", s("redis.host"), s("7:9")),
            ("invalid-value", s("redis.port"), s("8:9")),
            ("port-collision", s("server.metrics_port"), s("10:9")),
            ("type", s("server.replicas"), s("11:13")),
            (
                "lease-renewal",
                s("server.lease.renew_interval"),
                s("14:21")
            ),
            ("positive-duration", s("server.retention"), s("15:14")),
            (
                "replicas-range",
                s("server.autoscaling.max_replicas"),
                s("18:19")
            ),
            (
                "component-disabled",
                s("observability.prometheus.remote_write_to_mimir"),
                s("21:14")
            ),
            (
                "unknown-variant",
                s("observability.logs.shipper"),
                s("23:14")
            ),
        ]
    );
    assert!(report.to_string().ends_with("12 errors"), "{report}");
}

#[test]
fn syntax_errors_and_duplicate_keys_are_located() {
    let report = load_text("server:\n  port: [1, 2\n").expect_err("invalid");
    assert_eq!(report.diagnostics.len(), 1);
    assert_eq!(report.diagnostics[0].rule, "yaml-syntax");
    assert!(report.diagnostics[0].location().is_some());

    let report = load_text("server:\n  port: 1\n  port: 2\n").expect_err("invalid");
    assert_eq!(summary(&report), vec![("duplicate-key", s(""), s("3:3"))]);
}

#[test]
fn a_missing_file_is_an_error() {
    let dir = TempDir::new();
    let report = Loader::new()
        .file(dir.path().join("absent.yaml"))
        .load()
        .expect_err("no file");
    assert_eq!(report.diagnostics[0].rule, "read");
    assert!(report.diagnostics[0].message.starts_with("cannot read"));
}

const LAYERED: &str = "\
server:
  port: 1001
  metrics_port: 9100
environments:
  two:
    server:
      port: 1002
  broken:
    server:
      prot: 1
";

#[test]
fn later_layers_win() {
    let dir = TempDir::new();
    let path = dir.write("stack.yaml", LAYERED);
    let port = |loader: Loader| loader.load().expect("valid").stack.server.port.get();
    let var = |value: &str| vec![(s("TASKMANAGER__SERVER__PORT"), s(value))];

    assert_eq!(port(Loader::new()), 50051, "built-in default");
    assert_eq!(port(Loader::new().file(&path)), 1001, "file over defaults");
    assert_eq!(
        port(Loader::new().file(&path).environment(Some("two"))),
        1002,
        "overlay over file"
    );
    assert_eq!(
        port(
            Loader::new()
                .file(&path)
                .environment(Some("two"))
                .env_vars(var("1003"))
        ),
        1003,
        "environment variable over overlay"
    );
    assert_eq!(
        port(
            Loader::new()
                .file(&path)
                .environment(Some("two"))
                .env_vars(var("1003"))
                .sets(["server.port=1004"])
        ),
        1004,
        "--set over environment variable"
    );
    assert_eq!(
        port(
            Loader::new()
                .file(&path)
                .sets(["server.port=1004", "server.port=1005"])
        ),
        1005,
        "the last --set wins"
    );
    // Variables without the prefix, and Kubernetes' Service variables, are not settings.
    let service_vars = vec![
        (s("TASKMANAGER_SERVER_PORT"), s("tcp://10.0.0.1:50051")),
        (s("TASKMANAGER_SERVER_SERVICE_HOST"), s("10.0.0.1")),
        (s("SERVER__PORT"), s("1")),
    ];
    assert_eq!(port(Loader::new().file(&path).env_vars(service_vars)), 1001);
}

#[test]
fn numeric_looking_text_reaches_string_fields_intact() {
    let dir = TempDir::new();
    let path = dir.write("stack.yaml", "images:\n  tag: 0123\n");
    let tag = |loader: Loader| loader.load().expect("valid").stack.images.tag.to_string();
    assert_eq!(
        tag(Loader::new().file(&path)),
        "0123",
        "plain scalar in the file"
    );
    let vars = vec![(s("TASKMANAGER__IMAGES__TAG"), s("0777"))];
    assert_eq!(
        tag(Loader::new().file(&path).env_vars(vars)),
        "0777",
        "environment variable"
    );
    assert_eq!(
        tag(Loader::new().file(&path).sets(["images.tag=0999"])),
        "0999",
        "--set"
    );
    let vars = vec![(s("TASKMANAGER__REDIS__KEY_PREFIX"), s("1e3"))];
    let stack = Loader::new().env_vars(vars).load().expect("valid").stack;
    assert_eq!(stack.redis.key_prefix.as_str(), "1e3");
    // The same text still becomes a number where the model wants one.
    let vars = vec![(s("TASKMANAGER__SERVER__PORT"), s("08080"))];
    assert_eq!(
        Loader::new()
            .env_vars(vars)
            .load()
            .expect("valid")
            .stack
            .server
            .port
            .get(),
        8080
    );
}

#[test]
fn errors_from_variables_and_arguments_name_them() {
    let vars = vec![
        (s("TASKMANAGER__SERVER__PORT"), s("http")),
        (s("TASKMANAGER__SERVER__NOPE"), s("1")),
        (s("TASKMANAGER__"), s("1")),
    ];
    let report = Loader::new()
        .env_vars(vars)
        .sets(["client.rate=fast", "novalue"])
        .load()
        .expect_err("invalid");
    assert_eq!(
        summary(&report),
        vec![
            ("env-name", s(""), s("env TASKMANAGER__")),
            (
                "unknown-key",
                s("server.nope"),
                s("env TASKMANAGER__SERVER__NOPE")
            ),
            ("type", s("server.port"), s("env TASKMANAGER__SERVER__PORT")),
            ("type", s("client.rate"), s("--set client.rate=fast")),
            ("set-syntax", s(""), s("--set novalue")),
        ]
    );
}

#[test]
fn overlay_errors_point_into_the_overlay() {
    let dir = TempDir::new();
    let path = dir.write("stack.yaml", LAYERED);
    let report = Loader::new()
        .file(&path)
        .environment(Some("broken"))
        .load()
        .expect_err("invalid");
    assert_eq!(
        summary(&report),
        vec![("unknown-key", s("server.prot"), s("10:7"))]
    );

    let report = Loader::new()
        .file(&path)
        .environment(Some("tow"))
        .load()
        .expect_err("unknown environment");
    assert_eq!(
        summary(&report),
        vec![(
            "unknown-environment",
            s("environments.tow"),
            s("arg --env tow")
        )]
    );
    assert_eq!(
        report.diagnostics[0].help.as_deref(),
        Some("did you mean `two`?")
    );
}

#[test]
fn a_promtail_shipper_loads_with_a_warning() {
    let dir = TempDir::new();
    let path = dir.write(
        "stack.yaml",
        "observability:\n  logs:\n    shipper: promtail\n",
    );
    let loaded = Loader::new().file(path).load().expect("valid");
    let rules: Vec<_> = loaded
        .warnings
        .iter()
        .map(|w| (w.rule, w.location()))
        .collect();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].0, "promtail-eol");
    assert!(rules[0].1.as_deref().is_some_and(|l| l.ends_with(":3:14")));
}

#[test]
fn secrets_never_print() {
    let vars = vec![(s("TASKMANAGER__REDIS__AUTH__PASSWORD"), s("hunter2-0123"))];
    let loaded = Loader::new().env_vars(vars).load().expect("valid");
    let password = loaded.stack.redis.auth.password.as_ref().expect("set");
    assert_eq!(password.expose(), "hunter2-0123");
    assert!(!format!("{:?}", loaded.stack).contains("hunter2"));
    let resolved = stack_config::resolved(&loaded).to_string();
    assert!(!resolved.contains("hunter2"));
    assert!(resolved.contains("<redacted>"));
}

#[test]
fn derived_values_follow_the_settings() {
    let stack = Loader::new()
        .sets([
            "images.registry=ghcr.io/acme",
            "images.tag=1.2.3",
            "namespace=prod",
        ])
        .load()
        .expect("valid");
    let resolved = stack_config::resolved(&stack);
    let get = |key| {
        stack_config::get(&resolved, key)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    assert_eq!(
        get("derived.images.server"),
        Some(s("ghcr.io/acme/taskmanager-server:1.2.3"))
    );
    assert_eq!(
        get("derived.images.client"),
        Some(s("ghcr.io/acme/taskmanager-client:1.2.3"))
    );
    assert_eq!(
        get("derived.redis.host"),
        Some(s("taskmanager-redis.prod.svc"))
    );
    assert_eq!(get("images.pull_policy"), Some(s("IfNotPresent")));
    assert_eq!(get("no.such.key"), None);
}

#[test]
fn the_redis_memory_cap_is_derived_from_the_limit_or_set() {
    let loaded = Loader::new().file(shipped()).load().expect("valid");
    assert_eq!(loaded.stack.redis.maxmemory, None);
    // 70% of 512Mi, rounded down to whole bytes.
    assert_eq!(loaded.stack.redis.maxmemory_bytes(), 375_809_638);
    let resolved = stack_config::resolved(&loaded);
    assert_eq!(
        stack_config::get(&resolved, "derived.redis.maxmemory"),
        Some(&serde_json::json!(375_809_638))
    );

    let stack = load_text("redis:\n  maxmemory: 400Mi\n").expect("valid");
    assert_eq!(stack.redis.maxmemory_bytes(), 419_430_400);
    let stack = load_text("redis:\n  maxmemory: 300000000\n").expect("valid");
    assert_eq!(stack.redis.maxmemory_bytes(), 300_000_000);

    // An external Redis has its own cap.
    let prod = Loader::new()
        .file(shipped())
        .environment(Some("prod"))
        .load()
        .expect("valid");
    let resolved = stack_config::resolved(&prod);
    assert_eq!(
        stack_config::get(&resolved, "derived.redis.maxmemory"),
        Some(&serde_json::Value::Null)
    );
}

#[test]
fn a_redis_memory_cap_not_below_the_limit_is_located() {
    let text = "\
redis:
  maxmemory: 512Mi
  resources:
    requests: { cpu: 100m, memory: 128Mi }
    limits: { cpu: 500m, memory: 512Mi }
";
    let report = load_text(text).expect_err("invalid");
    assert_eq!(
        summary(&report),
        vec![("redis-maxmemory", s("redis.maxmemory"), s("2:14"))]
    );
    let diagnostic = &report.diagnostics[0];
    assert_eq!(
        diagnostic.message,
        "maxmemory (512Mi) must be below the memory limit of the managed Redis (512Mi): at the \
         limit the kernel kills Redis before Redis refuses a write"
    );
    assert_eq!(
        diagnostic.help.as_deref(),
        Some("leave it unset (~) to use 70% of the limit, or raise redis.resources.limits.memory")
    );
    assert_eq!(diagnostic.related, vec![s("redis.resources.limits.memory")]);

    // Redis reads 0 as no limit at all.
    let report = load_text("redis:\n  maxmemory: 0\n").expect_err("invalid");
    assert_eq!(
        summary(&report),
        vec![("redis-maxmemory", s("redis.maxmemory"), s("2:14"))]
    );
    assert_eq!(
        report.diagnostics[0].message,
        "maxmemory (0, 0 bytes) must be at least 1Mi: Redis reads 0 as no limit at all, and an \
         empty Redis already uses almost 1Mi"
    );

    // A limit so small that the derived cap is no cap points at the limit.
    let text = "\
redis:
  resources:
    requests: { cpu: 100m, memory: 1Mi }
    limits: { cpu: 500m, memory: 1Mi }
";
    let report = load_text(text).expect_err("invalid");
    assert_eq!(
        summary(&report),
        vec![(
            "redis-maxmemory",
            s("redis.resources.limits.memory"),
            s("4:34")
        )]
    );
}

#[test]
fn a_redis_memory_cap_for_an_external_redis_is_a_warning() {
    let text = "redis:\n  mode: external\n  host: redis.internal\n  maxmemory: 1Gi\n";
    let dir = TempDir::new();
    let path = dir.write("stack.yaml", text);
    let loaded = Loader::new().file(path).load().expect("valid");
    let warnings: Vec<_> = loaded
        .warnings
        .iter()
        .map(|w| (w.rule, w.path.as_str(), w.message.as_str()))
        .collect();
    assert_eq!(
        warnings,
        vec![(
            "redis-maxmemory-external",
            "redis.maxmemory",
            "`redis.maxmemory` (1Gi) applies to the managed Redis only, so an external Redis \
             ignores it"
        )]
    );
    assert!(
        loaded.warnings[0]
            .location()
            .is_some_and(|l| l.ends_with(":4:14"))
    );
}

#[test]
fn values_out_of_their_type_are_refused_under_their_rule_and_located() {
    let text = "\
server:
  workers:
    concurrency: 0
  simulation:
    failure_rate: 1.5
redis:
  db: 16
  auth:
    secret:
      name: redis
      key: \"a b\"
client:
  load:
    tasks: 0
";
    let report = load_text(text).expect_err("invalid");
    assert_eq!(
        summary(&report),
        vec![
            ("positive", s("server.workers.concurrency"), s("3:18")),
            (
                "ratio-range",
                s("server.simulation.failure_rate"),
                s("5:19")
            ),
            ("redis-db", s("redis.db"), s("7:7")),
            ("secret-key", s("redis.auth.secret.key"), s("11:12")),
            ("positive", s("client.load.tasks"), s("14:12")),
        ]
    );
    let messages: Vec<&str> = report
        .diagnostics
        .iter()
        .map(|d| d.message.as_str())
        .collect();
    assert_eq!(
        messages,
        [
            "must be at least 1 (got 0)",
            "must be a fraction from 0 to 1 (got 1.5)",
            "Redis has databases 0 to 15 (got 16)",
            "\"a b\" is not a key of a Secret: use 1-253 letters, digits, '-', '_' and '.', other \
             than \".\" and \"..\"",
            "must be at least 1 (got 0)",
        ]
    );
}

#[test]
fn an_external_redis_without_a_host_is_located() {
    let report = load_text("redis:\n  mode: external\n").expect_err("no host");
    assert_eq!(
        summary(&report),
        // Located at `redis.mode`, which asks for the host.
        vec![("redis-external-host", s("redis.host"), s("2:9"))]
    );
}

#[test]
fn cluster_settings_are_checked_together() {
    let text = "\
redis:
  mode: cluster
  host: redis.internal
  db: 3
  cluster:
    nodes: []
  wait:
    replicas: 1
    timeout: 0s
";
    let report = load_text(text).expect_err("invalid");
    assert_eq!(
        summary(&report),
        vec![
            ("redis-cluster-host", s("redis.host"), s("3:9")),
            ("redis-cluster-db", s("redis.db"), s("4:7")),
            ("redis-cluster-nodes", s("redis.cluster.nodes"), s("6:12")),
            ("positive-duration", s("redis.wait.timeout"), s("9:14")),
        ]
    );

    let text = "\
redis:
  mode: cluster
  cluster:
    nodes: [\"redis-0:6379\", \"[::1]:7000\", \"redis-1\"]
";
    let report = load_text(text).expect_err("invalid");
    assert_eq!(
        summary(&report),
        vec![("invalid-value", s("redis.cluster.nodes.2"), s("4:43"))]
    );
    assert!(
        report
            .to_string()
            .contains("\"redis-1\" is not a host and port"),
        "{report}"
    );

    let text = "\
redis:
  mode: external
  host: redis.internal
  cluster:
    nodes: [\"redis-0:6379\"]
";
    let report = load_text(text).expect_err("invalid");
    assert_eq!(
        summary(&report),
        vec![("redis-cluster-unused", s("redis.cluster.nodes"), s("5:12"))]
    );
}

#[test]
fn a_cluster_reaches_the_topology_with_its_nodes() {
    let text = "\
redis:
  mode: cluster
  cluster:
    nodes: [\"redis-0.internal:6379\", \"redis-1.internal:6379\"]
    shards: 12
  wait: { replicas: 1, timeout: 500ms }
";
    let dir = TempDir::new();
    let path = dir.write("stack.yaml", text);
    let loaded = Loader::new().file(path).load().expect("valid");
    assert_eq!(
        loaded.topology.redis,
        stack_config::topology::RedisTarget::Cluster {
            nodes: vec![s("redis-0.internal:6379"), s("redis-1.internal:6379")],
            shards: 12,
        }
    );
    assert_eq!(loaded.stack.redis.wait.replicas, 1);
    // Nothing is deployed for it, and the server dials the first seed node.
    assert!(
        loaded
            .topology
            .parts
            .iter()
            .all(|part| part.component != stack_config::Component::Redis || !part.deployed)
    );
}

#[test]
fn a_list_can_be_set_from_a_variable_or_an_argument() {
    let vars = vec![(
        s("TASKMANAGER__REDIS__CLUSTER__NODES"),
        s("[redis-0:6379, \"redis-1:6379\"]"),
    )];
    let loaded = Loader::new()
        .env_vars(vars)
        .sets(["redis.mode=cluster"])
        .load()
        .expect("valid");
    let nodes: Vec<String> = loaded
        .stack
        .redis
        .cluster
        .nodes
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(nodes, vec![s("redis-0:6379"), s("redis-1:6379")]);

    let report = Loader::new()
        .sets([
            "redis.mode=cluster",
            "redis.cluster.nodes=[redis-0:6379, redis-1]",
        ])
        .load()
        .expect_err("invalid");
    assert_eq!(
        summary(&report),
        vec![(
            "invalid-value",
            s("redis.cluster.nodes.1"),
            s("--set redis.cluster.nodes=[redis-0:6379, redis-1]")
        )]
    );
}
