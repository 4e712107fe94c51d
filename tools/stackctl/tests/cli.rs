//! `stackctl` driven through the real binary.

use std::path::{Path, PathBuf};
use std::process::Output;
use taskmanager_test_support::{Scratch, stderr, stdout};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `stackctl` in `dir` with `args` and `vars`, isolated from the caller's environment.
fn run(dir: &Path, args: &[&str], vars: &[(&str, &str)]) -> Output {
    taskmanager_test_support::run_in(env!("CARGO_BIN_EXE_stackctl"), dir, args, vars)
}

#[test]
fn check_accepts_the_shipped_stack_in_every_environment() {
    let output = run(&repo(), &["check"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), "stack.yaml: valid (base, local, prod)\n");
    assert_eq!(stderr(&output), "");

    let output = run(&repo(), &["check", "--env", "prod"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), "stack.yaml: valid (prod)\n");
}

#[test]
fn check_prints_every_error_located_and_exits_1() {
    let dir = Scratch::new("test");
    dir.write(
        "stack.yaml",
        "server:\n  prot: 8080\n  autoscaling:\n    min_replicas: 3\n    max_replicas: 1\nredis:\n  port: 70000\n",
    );
    let output = run(dir.path(), &["check"], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stdout(&output), "");
    assert_eq!(
        stderr(&output),
        "\
error[unknown-key]: server.prot: unknown key `prot`
 --> stack.yaml:2:3
  |
2 |   prot: 8080
  |   ^^^^
  = help: did you mean `port`?

error[replicas-range]: server.autoscaling.max_replicas: max_replicas (1) is less than min_replicas (3)
 --> stack.yaml:5:19
  |
5 |     max_replicas: 1
  |                   ^

error[invalid-value]: redis.port: 70000 is not a valid port: use 1-65535
 --> stack.yaml:7:9
  |
7 |   port: 70000
  |         ^^^^^

3 errors
"
    );
}

#[test]
fn check_refuses_image_tags_outside_the_templates_version_lines() {
    let dir = Scratch::new("test");
    let digest = format!("sha256:{}", "0123456789abcdef".repeat(4));
    dir.write(
        "stack.yaml",
        format!(
            "observability:\n  tempo:\n    image: {{ repository: grafana/tempo, tag: 3.0.1 }}\n  \
             mimir:\n    image: {{ repository: grafana/mimir, tag: \"3.0.2@{digest}\" }}\n  \
             grafana:\n    image: {{ repository: grafana/grafana, tag: latest }}\n"
        ),
    );
    let output = run(dir.path(), &["check"], &[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert_eq!(
        stderr(&output),
        "\
error[version-line]: observability.tempo.image.tag: the tag \"3.0.1\" is outside the version line the templates render Tempo for: Tempo 2.10.x
 --> stack.yaml:3:46
  |
3 |     image: { repository: grafana/tempo, tag: 3.0.1 }
  |                                              ^^^^^
  = help: pick a tag of that line (with an optional @sha256 digest), or add templates for the new line (docs/operations.md, \"Version lines\"); Tempo's config grammar changes between lines

error[version-line]: observability.grafana.image.tag: the tag \"latest\" is outside the version line the templates render Grafana for: Grafana 12.3.x
 --> stack.yaml:7:48
  |
7 |     image: { repository: grafana/grafana, tag: latest }
  |                                                ^^^^^^
  = help: pick a tag of that line (with an optional @sha256 digest), or add templates for the new line (docs/operations.md, \"Version lines\"); Grafana's config grammar changes between lines

2 errors
"
    );

    // A pinned digest is accepted, and kept in the image reference.
    let get = run(dir.path(), &["get", "observability.mimir.image.tag"], &[]);
    assert_eq!(
        get.status.code(),
        Some(1),
        "every command refuses the stack"
    );
    let fixed = dir.join("fixed.yaml");
    std::fs::write(
        &fixed,
        format!(
            "observability:\n  mimir:\n    image: {{ repository: grafana/mimir, tag: \"3.0.2@{digest}\" }}\n"
        ),
    )
    .expect("write");
    let out = dir.join("out");
    let output = run(
        dir.path(),
        &[
            "--config",
            "fixed.yaml",
            "render",
            "--out",
            out.to_str().expect("utf-8"),
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let manifest = std::fs::read_to_string(out.join("k8s/mimir.yaml")).expect("rendered");
    assert!(
        manifest.contains(&format!("image: \"grafana/mimir:3.0.2@{digest}\"")),
        "{manifest}"
    );
    assert!(
        manifest.contains("\"app.kubernetes.io/version\": \"3.0.2\""),
        "{manifest}"
    );
}

#[test]
fn check_finds_errors_in_every_environment() {
    let dir = Scratch::new("test");
    dir.write(
        "stack.yaml",
        "environments:\n  ok: {}\n  bad:\n    server:\n      log: { level: loud }\n",
    );
    let output = run(dir.path(), &["check"], &[]);
    assert_eq!(output.status.code(), Some(1));
    let errors = stderr(&output);
    assert!(errors.contains("error[unknown-variant]: server.log.level: unknown value `loud`"));
    assert!(errors.contains("--> stack.yaml:5:21"), "{errors}");
    assert!(errors.ends_with("1 error\n"), "{errors}");

    let output = run(dir.path(), &["check", "--env", "ok"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}

#[test]
fn check_reports_bad_overrides_by_variable_and_argument() {
    let output = run(
        &repo(),
        &[
            "check",
            "--env",
            "local",
            "--set",
            "server.metrics_port=50051",
        ],
        &[("TASKMANAGER__SERVER__WORKERS__CONCURRENCY", "eight")],
    );
    assert_eq!(output.status.code(), Some(1));
    let errors = stderr(&output);
    assert!(
        errors.contains(
            "error[type]: server.workers.concurrency: expected a whole number from 0 to \
             4294967295, found string \"eight\"\n  --> environment variable \
             TASKMANAGER__SERVER__WORKERS__CONCURRENCY"
        ),
        "{errors}"
    );
    assert!(
        errors.contains("error[port-collision]: server.metrics_port: port 50051 is used twice"),
        "{errors}"
    );
    assert!(
        errors.contains("--> --set server.metrics_port=50051"),
        "{errors}"
    );
}

#[test]
fn check_rejects_an_unknown_environment() {
    let output = run(&repo(), &["check", "--env", "prd"], &[]);
    assert_eq!(output.status.code(), Some(1));
    let errors = stderr(&output);
    assert!(
        errors.contains("environment `prd` is not defined"),
        "{errors}"
    );
    assert!(errors.contains("help: did you mean `prod`?"), "{errors}");
}

#[test]
fn check_warns_about_promtail() {
    let dir = Scratch::new("test");
    dir.write(
        "stack.yaml",
        "observability:\n  logs:\n    shipper: promtail\n",
    );
    let output = run(dir.path(), &["check"], &[]);
    assert_eq!(output.status.code(), Some(0));
    assert!(
        stderr(&output).starts_with("warning[promtail-eol]"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn schema_prints_the_published_schema() {
    let output = run(&repo(), &["schema"], &[]);
    assert_eq!(output.status.code(), Some(0));
    let published = std::fs::read_to_string(repo().join("docs/stack.schema.json")).expect("read");
    assert_eq!(stdout(&output), published);
}

#[test]
fn get_prints_resolved_values() {
    let get = |args: &[&str], vars: &[(&str, &str)]| {
        let output = run(&repo(), args, vars);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        stdout(&output)
    };
    assert_eq!(get(&["get", "server.port"], &[]), "50051\n");
    assert_eq!(
        get(&["get", "redis.auth.enabled", "--env", "local"], &[]),
        "false\n"
    );
    assert_eq!(
        get(&["get", "derived.images.server"], &[]),
        "localhost:5000/taskmanager-server:0.1.0\n"
    );
    assert_eq!(
        get(
            &[
                "get",
                "derived.images.client",
                "--set",
                "images.registry=ghcr.io/acme"
            ],
            &[("TASKMANAGER__IMAGES__TAG", "0123")]
        ),
        "ghcr.io/acme/taskmanager-client:0123\n"
    );
    assert_eq!(
        get(&["get", "derived.redis.host", "--env", "prod"], &[]),
        "redis.prod.internal\n"
    );
    assert_eq!(
        get(&["get", "server.autoscaling"], &[]),
        "enabled: true\nmin_replicas: 2\nmax_replicas: 6\ntarget_cpu_utilization: 70\n"
    );

    let output = run(&repo(), &["get", "server.prot"], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "error: no setting `server.prot` in the resolved stack\n"
    );
}

#[test]
fn config_prints_the_resolved_stack_without_secrets() {
    let password = [("TASKMANAGER__REDIS__AUTH__PASSWORD", "s3cr3t-0123")];
    let output = run(&repo(), &["config", "--env", "prod"], &password);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let yaml = stdout(&output);
    assert!(!yaml.contains("s3cr3t"));
    assert!(yaml.contains("    password: \"<redacted>\"\n"), "{yaml}");
    assert!(yaml.contains("  host: \"redis.prod.internal\"\n"), "{yaml}");
    assert!(!yaml.contains("environments"));

    // The printed configuration is itself a valid stack that resolves to the same thing.
    let dir = Scratch::new("test");
    dir.write("stack.yaml", &yaml);
    let again = run(dir.path(), &["config"], &password);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert_eq!(stdout(&again), yaml);

    let output = run(&repo(), &["config", "--format", "json"], &[]);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON output");
    assert_eq!(json["server"]["port"], 50051);
}

#[test]
fn a_missing_file_is_reported() {
    let dir = Scratch::new("test");
    let output = run(dir.path(), &["check"], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).starts_with("error[read]: (document): cannot read stack.yaml"));
}

#[test]
fn render_writes_checks_and_keeps_the_old_output_on_failure() {
    let dir = Scratch::new("test");
    let stack = std::fs::read_to_string(repo().join("stack.yaml")).expect("read");
    dir.write("stack.yaml", &stack);

    let output = run(dir.path(), &["render", "--out", "out"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stdout(&output).starts_with("rendered 25 files into out"),
        "{}",
        stdout(&output)
    );
    let server = dir.join("out/k8s/server.yaml");
    let before = std::fs::read_to_string(&server).expect("rendered");

    let output = run(dir.path(), &["render", "--out", "out", "--check"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), "out: up to date (25 files)\n");

    // A change in stack.yaml makes the output stale; --check shows the diff.
    let output = run(
        dir.path(),
        &[
            "render",
            "--out",
            "out",
            "--check",
            "--set",
            "images.tag=2.0.0",
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(1));
    let diff = stdout(&output);
    assert!(
        diff.contains("--- a/k8s/server.yaml\n+++ b/k8s/server.yaml\n"),
        "{diff}"
    );
    assert!(
        diff.contains("+          image: \"localhost:5000/taskmanager-server:2.0.0\""),
        "{diff}"
    );
    assert!(stderr(&output).contains("stale"), "{}", stderr(&output));

    // A template error renders nothing and leaves the previous output as it was.
    std::fs::create_dir_all(dir.join("templates/k8s")).expect("dir");
    std::fs::write(
        dir.join("templates/k8s/server.yaml"),
        "{{ no_such_value }}\n",
    )
    .expect("write");
    let output = run(
        dir.path(),
        &["render", "--out", "out", "--templates", "templates"],
        &[],
    );
    assert_eq!(output.status.code(), Some(1));
    let errors = stderr(&output);
    assert!(
        errors.starts_with("error: template k8s/server.yaml:"),
        "{errors}"
    );
    assert!(errors.contains("no_such_value"), "{errors}");
    assert!(
        errors.contains("nothing was written; out is unchanged"),
        "{errors}"
    );
    assert_eq!(std::fs::read_to_string(&server).expect("kept"), before);

    // So does an invalid stack.
    let output = run(
        dir.path(),
        &["render", "--out", "out", "--set", "server.port=0"],
        &[],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("error[invalid-value]: server.port"),
        "{}",
        stderr(&output)
    );
    assert_eq!(std::fs::read_to_string(&server).expect("kept"), before);
}

#[test]
fn the_committed_rendered_output_is_current() {
    let output = run(&repo(), &["render", "--check"], &[]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "rendered/ is stale: run `just render` (or `cargo run -p stackctl -- render`) and \
         commit it\n{}",
        stdout(&output)
    );
}
