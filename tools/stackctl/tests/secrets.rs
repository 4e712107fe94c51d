//! `stackctl` never prints a secret, never echoes a control character raw, and refuses what
//! Kubernetes would refuse; driven through the real binary.

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

/// A stack whose `prod` overlay holds a password, a misspelt password and a token.
const PROD_WITH_PASSWORD: &str = "\
environments:
  prod:
    redis:
      mode: external
      host: redis.prod.internal
      auth:
        password: hunter2-0123
    client:
      enabled: false
  typo:
    redis:
      auth:
        passwrd: hunter3-0123
    server:
      api_token: t0k3n-0123
";

/// Asserts that nothing any secret of `PROD_WITH_PASSWORD` was printed.
fn assert_no_secret(output: &Output) {
    let all = format!("{}{}", stdout(output), stderr(output));
    for secret in ["hunter2", "hunter3", "t0k3n"] {
        assert!(!all.contains(secret), "{secret} printed:\n{all}");
    }
}

#[test]
fn get_never_prints_a_password_in_an_environment() {
    let dir = Scratch::with_stack(PROD_WITH_PASSWORD);

    let output = run(dir.path(), &["get", "environments"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_no_secret(&output);
    assert_eq!(
        stdout(&output),
        "\
prod:
  client:
    enabled: \"false\"
  redis:
    auth:
      password: \"<redacted>\"
    host: \"redis.prod.internal\"
    mode: \"external\"
typo:
  redis:
    auth:
      passwrd: \"<redacted>\"
  server:
    api_token: \"<redacted>\"
"
    );

    for (key, expected) in [
        ("environments.prod.redis.auth.password", "<redacted>\n"),
        ("environments.prod.redis.auth", "password: \"<redacted>\"\n"),
        ("environments.typo.redis.auth.passwrd", "<redacted>\n"),
        ("environments.typo.server.api_token", "<redacted>\n"),
        ("redis.auth.password", "\n"),
    ] {
        let output = run(dir.path(), &["get", key], &[]);
        assert_eq!(output.status.code(), Some(0), "{key}: {}", stderr(&output));
        assert_no_secret(&output);
        assert_eq!(stdout(&output), expected, "{key}");
    }
}

#[test]
fn get_and_config_never_print_the_selected_password() {
    let dir = Scratch::with_stack(PROD_WITH_PASSWORD);

    let output = run(
        dir.path(),
        &["get", "redis.auth.password", "--env", "prod"],
        &[],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), "<redacted>\n");

    let output = run(dir.path(), &["get", "redis.auth", "--env", "prod"], &[]);
    assert_eq!(
        stdout(&output),
        "\
enabled: true
secret:
  name: \"taskmanager-redis\"
  key: \"password\"
password: \"<redacted>\"
"
    );

    for args in [
        &["config", "--env", "prod"][..],
        &["config", "--env", "prod", "--format", "json"],
        &["config"],
        &["get", "redis", "--env", "prod"],
        &["get", ""],
    ] {
        let output = run(dir.path(), args, &[]);
        assert_no_secret(&output);
    }
    let output = run(dir.path(), &["config", "--env", "prod"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let yaml = stdout(&output);
    assert!(yaml.contains("    password: \"<redacted>\"\n"), "{yaml}");
    let output = run(
        dir.path(),
        &["config", "--env", "prod", "--format", "json"],
        &[],
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON output");
    assert_eq!(json["redis"]["auth"]["password"], "<redacted>");

    // From an environment variable, likewise.
    let output = run(
        dir.path(),
        &["get", "redis.auth.password"],
        &[("TASKMANAGER__REDIS__AUTH__PASSWORD", "hunter2-0123")],
    );
    assert_eq!(stdout(&output), "<redacted>\n");
}

#[test]
fn a_diagnostic_never_shows_a_password() {
    // A duplicate key in the file: the snippet shows the line, without its value.
    let dir = Scratch::with_stack(
        "redis:\n  auth:\n    password: hunter2-0123\n    password: hunter2-0123\n",
    );
    let output = run(dir.path(), &["check"], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stdout(&output), "");
    assert_eq!(
        stderr(&output),
        "\
error[duplicate-key]: (document): key `redis.auth.password` appears more than once in the same mapping
 --> stack.yaml:4:5
  |
4 |     password: <redacted>
  |     ^^^^^^^^

1 error
"
    );

    // A typo in a `--set` key near a secret's name.
    let output = run(
        &repo(),
        &[
            "check",
            "--env",
            "prod",
            "--set",
            "redis.auth.passwrd=hunter2-0123",
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(1));
    assert_no_secret(&output);
    assert_eq!(
        stderr(&output),
        "\
error[unknown-key]: redis.auth.passwrd: unknown key `passwrd`
  --> --set redis.auth.passwrd=<redacted>
  = help: did you mean `password`?

1 error
"
    );

    // Every environment of a file, checked at once: the overlay's typo is located, redacted.
    let dir = Scratch::with_stack(PROD_WITH_PASSWORD);
    let output = run(dir.path(), &["check"], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert_no_secret(&output);
    assert_eq!(
        stderr(&output),
        "\
error[unknown-key]: redis.auth.passwrd: unknown key `passwrd`
  --> stack.yaml:13:9
   |
13 |         passwrd: <redacted>
   |         ^^^^^^^
  = help: did you mean `password`?

error[unknown-key]: server.api_token: unknown key `api_token`
  --> stack.yaml:15:7
   |
15 |       api_token: <redacted>
   |       ^^^^^^^^^
  = help: expected one of: store, port, metrics_port, replicas, autoscaling, resources, workers, lease, retries, retention, shutdown_grace, limits, simulation, log

2 errors
"
    );

    // A password with a control character: the rule is named, the value is not.
    let output = run(
        &repo(),
        &["check", "--env", "prod"],
        &[("TASKMANAGER__REDIS__AUTH__PASSWORD", "hunter2\u{1b}[0m")],
    );
    assert_eq!(output.status.code(), Some(1));
    assert_no_secret(&output);
    assert_eq!(
        stderr(&output),
        "\
error[text]: redis.auth.password: the password contains U+001B (a control character): it is passed in an environment variable and typed into redis-cli, so it must be printable text
  --> environment variable TASKMANAGER__REDIS__AUTH__PASSWORD

1 error
"
    );
}

#[test]
fn control_characters_are_escaped_in_diagnostics_and_output() {
    let output = run(
        &repo(),
        &[
            "check",
            "--set",
            "images.tag=v1\u{1b}]0;pwned\u{7}\nerror: fake",
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(1));
    let errors = stderr(&output);
    assert!(
        !errors.contains('\u{1b}') && !errors.contains('\u{7}'),
        "{errors:?}"
    );
    assert_eq!(
        errors,
        "\
error[invalid-value]: images.tag: \"v1\\u{1b}]0;pwned\\u{7}\\nerror: fake\" is not an image tag: use 1-128 letters, digits, '_', '.' and '-', not starting with '.' or '-'
  --> --set images.tag=v1\\u{1b}]0;pwned\\u{7}\\nerror: fake

1 error
"
    );

    // An unknown `--set` key with a line separator in it.
    let output = run(&repo(), &["check", "--set", "server.p\u{2028}ort=1"], &[]);
    assert_eq!(
        stderr(&output),
        "\
error[unknown-key]: server.p\\u{2028}ort: unknown key `p\\u{2028}ort`
  --> --set server.p\\u{2028}ort=1
  = help: did you mean `port`?

1 error
"
    );

    // An overlay that is not selected is not validated; `get` still prints it escaped.
    let dir = Scratch::with_stack("environments:\n  odd:\n    images:\n      tag: \"a\\e[2Jb\"\n");
    let output = run(dir.path(), &["get", "environments.odd.images.tag"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), "a\\u{1b}[2Jb\n");
    let output = run(dir.path(), &["get", "no.such\u{1b}key"], &[]);
    assert_eq!(
        stderr(&output),
        "error: no setting `no.such\\u{1b}key` in the resolved stack\n"
    );
}

#[test]
fn check_refuses_what_kubernetes_would() {
    let output = run(
        &repo(),
        &[
            "check",
            "--env",
            "local",
            "--set",
            "redis.auth.secret.key=$(id) x",
            "--set",
            "client.address=http://a.example.com$(id)",
            "--set",
            "observability.grafana.admin.password_secret.key=",
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stdout(&output), "");
    assert_eq!(
        stderr(&output),
        "\
error[address]: client.address: \"http://a.example.com$(id)\" is not an http(s) address: it has a host that is not a DNS name (letters, digits, '-' and '.'), an IPv4 address or a bracketed IPv6 address
  --> --set client.address=http://a.example.com$(id)
  = help: use http://host:port or https://host:port, where host is a DNS name, an IPv4 address or an IPv6 address in brackets

error[secret-key]: observability.grafana.admin.password_secret.key: \"\" is not a key of a Secret: use 1-253 letters, digits, '-', '_' and '.', other than \".\" and \"..\"
  --> --set observability.grafana.admin.password_secret.key=
  = help: Kubernetes refuses a pod whose secretKeyRef names a key it could not hold

error[secret-key]: redis.auth.secret.key: \"$(id) x\" is not a key of a Secret: use 1-253 letters, digits, '-', '_' and '.', other than \".\" and \"..\"
  --> --set redis.auth.secret.key=$(id) x
  = help: Kubernetes refuses a pod whose secretKeyRef names a key it could not hold

3 errors
"
    );

    // The shipped stack and its environments stay valid.
    let output = run(&repo(), &["check"], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout(&output), "stack.yaml: valid (base, local, prod)\n");
}
