//! Values that Kubernetes, a container runtime or the consuming program would refuse are
//! refused by `check`, each with its rule, key path, message and location; secrets never
//! print; user text in diagnostics is escaped.
//!
//! One concept: values the consuming programs would refuse.

mod support;

use stack_config::{Loader, Report};
use support::{TempDir, shipped};

/// The report of loading `text` as a stack file, with the file's temporary path shown as
/// `stack.yaml`.
fn file_report(text: &str) -> String {
    let dir = TempDir::new();
    let path = dir.write("stack.yaml", text);
    let report = Loader::new().file(&path).load().expect_err("invalid");
    let shown = dir.path().join("stack.yaml");
    report
        .to_string()
        .replace(&shown.display().to_string(), "stack.yaml")
}

/// The report of loading the defaults with these `--set` arguments.
fn set_report(sets: &[&str]) -> Report {
    Loader::new()
        .sets(sets.iter().copied())
        .load()
        .expect_err("invalid")
}

/// (rule, path, message) of every diagnostic.
fn rules(report: &Report) -> Vec<(&'static str, String, String)> {
    report
        .diagnostics
        .iter()
        .map(|d| (d.rule, d.path.clone(), d.message.clone()))
        .collect()
}

fn s(text: &str) -> String {
    text.to_owned()
}

#[test]
fn the_shipped_stack_is_still_valid_everywhere() {
    let loader = Loader::new().file(shipped());
    for env in [None, Some("local"), Some("prod")] {
        let loaded = loader
            .clone()
            .environment(env)
            .load()
            .unwrap_or_else(|report| panic!("{env:?}: {report}"));
        assert_eq!(loaded.warnings, Vec::new(), "{env:?}");
    }
}

#[test]
fn secret_keys_must_be_valid_keys_of_a_secret() {
    let report = set_report(&["redis.auth.secret.key=$(id) x"]);
    assert_eq!(
        report.to_string(),
        "\
error[secret-key]: redis.auth.secret.key: \"$(id) x\" is not a key of a Secret: use 1-253 letters, digits, '-', '_' and '.', other than \".\" and \"..\"
  --> --set redis.auth.secret.key=$(id) x
  = help: Kubernetes refuses a pod whose secretKeyRef names a key it could not hold

1 error"
    );

    let text = "\
observability:
  grafana:
    admin:
      password_secret: { name: grafana-admin, key: \"\" }
";
    assert_eq!(
        file_report(text),
        "\
error[secret-key]: observability.grafana.admin.password_secret.key: \"\" is not a key of a Secret: use 1-253 letters, digits, '-', '_' and '.', other than \".\" and \"..\"
 --> stack.yaml:4:52
  |
4 |       password_secret: { name: grafana-admin, key: \"\" }
  |                                                    ^^
  = help: Kubernetes refuses a pod whose secretKeyRef names a key it could not hold

1 error"
    );

    let long = "k".repeat(254);
    let report = set_report(&[
        "redis.auth.secret.key=..",
        &format!("observability.grafana.admin.password_secret.key={long}"),
    ]);
    // In the order of the arguments' text.
    assert_eq!(
        rules(&report),
        vec![
            (
                "secret-key",
                s("observability.grafana.admin.password_secret.key"),
                format!(
                    "\"{}...\" (254 characters) is not a key of a Secret: use 1-253 letters, \
                     digits, '-', '_' and '.', other than \".\" and \"..\"",
                    "k".repeat(64)
                )
            ),
            (
                "secret-key",
                s("redis.auth.secret.key"),
                s(
                    "\"..\" is not a key of a Secret: use 1-253 letters, digits, '-', '_' and '.', \
                   other than \".\" and \"..\""
                )
            ),
        ]
    );
}

#[test]
fn addresses_must_be_plain_http_urls() {
    let report = set_report(&["client.address=http://a.example.com$(id)"]);
    assert_eq!(
        report.to_string(),
        "\
error[address]: client.address: \"http://a.example.com$(id)\" is not an http(s) address: it has a host that is not a DNS name (letters, digits, '-' and '.'), an IPv4 address or a bracketed IPv6 address
  --> --set client.address=http://a.example.com$(id)
  = help: use http://host:port or https://host:port, where host is a DNS name, an IPv4 address or an IPv6 address in brackets

1 error"
    );

    let text = "\
client:
  address: grpc://server:50051
observability:
  tracing:
    endpoint: \"http://tempo:4317/?x=$(id)\"
";
    assert_eq!(
        file_report(text),
        "\
error[address]: client.address: \"grpc://server:50051\" is not an http(s) address: it must start with http:// or https://
 --> stack.yaml:2:12
  |
2 |   address: grpc://server:50051
  |            ^^^^^^^^^^^^^^^^^^^
  = help: use http://host:port or https://host:port, where host is a DNS name, an IPv4 address or an IPv6 address in brackets

error[address]: observability.tracing.endpoint: \"http://tempo:4317/?x=$(id)\" is not an http(s) address: it has a character outside the host, port and path (a path holds letters, digits, '-', '.', '_', '~', '/' and %XX escapes; no user info, query or fragment)
 --> stack.yaml:5:15
  |
5 |     endpoint: \"http://tempo:4317/?x=$(id)\"
  |               ^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  = help: use http://host:port or https://host:port, where host is a DNS name, an IPv4 address or an IPv6 address in brackets

2 errors"
    );

    let report = set_report(&[
        "client.address=http://server:0",
        "observability.tracing.endpoint=http://user:pw@tempo:4317",
    ]);
    assert_eq!(
        rules(&report),
        vec![
            (
                "address",
                s("client.address"),
                s(
                    "\"http://server:0\" is not an http(s) address: it has a port that is not a \
                   number from 1 to 65535"
                )
            ),
            (
                "address",
                s("observability.tracing.endpoint"),
                s(
                    "\"http://user:pw@tempo:4317\" is not an http(s) address: it has user info \
                   before its host (user@host), which is not allowed"
                )
            ),
        ]
    );

    // What is valid stays valid.
    for address in [
        "http://[::1]:50051",
        "https://server.example.com",
        "http://10.0.0.7:50051/",
    ] {
        Loader::new()
            .sets([format!("client.address={address}")])
            .load()
            .unwrap_or_else(|report| panic!("{address}: {report}"));
    }
}

#[test]
fn image_registries_and_references_obey_the_reference_grammar() {
    let registry = "r".repeat(10_000);
    let report = set_report(&[&format!("images.registry={registry}")]);
    assert_eq!(
        rules(&report),
        vec![(
            "invalid-value",
            s("images.registry"),
            format!(
                "\"{}...\" (10000 characters) is not a registry: at most 255 characters, as an \
                 image name with its registry is at most 255",
                "r".repeat(64)
            )
        )]
    );

    // Each part is valid; the name they make is too long.
    let registry = format!("registry.example.com/{}", "a".repeat(220));
    let report = set_report(&[&format!("images.registry={registry}")]);
    let name = format!("{registry}/taskmanager-server");
    let message = format!(
        "the image reference \"{}...\" ({} characters) is invalid: the name is {} characters \
         long, and an image name (registry included) is at most 255",
        &name[..64],
        name.len() + ":0.1.0".len(),
        name.len()
    );
    assert_eq!(name.len(), 260);
    assert_eq!(
        rules(&report),
        vec![
            ("image-reference", s("images.client"), message.clone()),
            ("image-reference", s("images.server"), message),
        ]
    );
    // Both point at the registry, the key that was written.
    assert!(
        report
            .diagnostics
            .iter()
            .all(|d| d.location().is_none() && d.related == vec![s("images.registry")])
    );

    // Through a mirror, a repository with its own registry host is no longer a name.
    let text = "\
images:
  mirror: mirror.example.com
observability:
  loki:
    image: { repository: \"localhost:5000/loki\", tag: 3.6.0 }
";
    assert_eq!(
        file_report(text),
        "\
error[image-reference]: observability.loki.image.repository: the image reference \"mirror.example.com/localhost:5000/loki:3.6.0\" is invalid: path components use lowercase letters and digits separated by '.', '_', '__' or '-'
 --> stack.yaml:5:26
  |
5 |     image: { repository: \"localhost:5000/loki\", tag: 3.6.0 }
  |                          ^^^^^^^^^^^^^^^^^^^^^

1 error"
    );

    let report = set_report(&["images.registry=ghcr.io:99999/acme", "images.tag=-rc1"]);
    assert_eq!(
        rules(&report),
        vec![
            (
                "invalid-value",
                s("images.registry"),
                s(
                    "\"ghcr.io:99999/acme\" is not a registry: start with a host[:port] such as \
                   ghcr.io/acme or localhost:5000 (a port is 1-65535; path components use \
                   lowercase letters and digits separated by '.', '_', '__' or '-')"
                )
            ),
            (
                "invalid-value",
                s("images.tag"),
                s(
                    "\"-rc1\" is not an image tag: use 1-128 letters, digits, '_', '.' and '-', \
                   not starting with '.' or '-'"
                )
            ),
        ]
    );
}

#[test]
fn free_text_must_be_printable() {
    // YAML's "\e" is ESC.
    let text = "\
observability:
  grafana:
    admin:
      user: \"ad\\e[31mmin\"
";
    assert_eq!(
        file_report(text),
        "\
error[text]: observability.grafana.admin.user: \"ad\\u{1b}[31mmin\" contains U+001B (a control character): settings that reach manifests, environment variables and configuration files must be printable text
 --> stack.yaml:4:13
  |
4 |       user: \"ad\\e[31mmin\"
  |             ^^^^^^^^^^^^

1 error"
    );

    for (user, character) in [
        ("a\u{2028}b", "U+2028 (a line separator)"),
        ("a\u{2029}b", "U+2029 (a paragraph separator)"),
        ("a\u{85}b", "U+0085 (a control character)"),
        ("\u{feff}admin", "U+FEFF (a byte-order mark)"),
        ("admin\u{202e}", "U+202E (a bidirectional control)"),
        ("ad\nmin", "U+000A (a control character)"),
    ] {
        let report = set_report(&[&format!("observability.grafana.admin.user={user}")]);
        assert_eq!(
            rules(&report),
            vec![(
                "text",
                s("observability.grafana.admin.user"),
                format!(
                    "{user:?} contains {character}: settings that reach manifests, environment \
                     variables and configuration files must be printable text"
                )
            )],
            "{user:?}"
        );
    }

    let report = set_report(&["redis.key_prefix=tm\u{2028}"]);
    assert_eq!(
        rules(&report),
        vec![(
            "invalid-value",
            s("redis.key_prefix"),
            s(
                "\"tm\\u{2028}\" is not a valid key prefix: no whitespace, control characters, \
               byte-order marks or bidirectional controls"
            )
        )]
    );
}

#[test]
fn the_grafana_user_is_one_grafana_accepts_as_written() {
    let text = "\
observability:
  grafana:
    admin:
      user: \"${HOME}\"
";
    assert_eq!(
        file_report(text),
        "\
error[grafana-user]: observability.grafana.admin.user: \"${HOME}\" would not reach Grafana as written: Grafana replaces `${NAME}`, `$__env{NAME}` and `$__file{PATH}` in its settings with environment variables and file contents
 --> stack.yaml:4:13
  |
4 |       user: \"${HOME}\"
  |             ^^^^^^^^^
  = help: choose a user name without `${`, or a `$__` word followed by `{`

1 error"
    );

    let long = "u".repeat(191);
    let report = set_report(&[&format!("observability.grafana.admin.user={long}")]);
    assert_eq!(
        rules(&report),
        vec![(
            "grafana-user",
            s("observability.grafana.admin.user"),
            format!(
                "\"{}...\" (191 characters) is 191 characters long: Grafana stores logins of at \
                 most 190",
                "u".repeat(64)
            )
        )]
    );

    let report = set_report(&["observability.grafana.admin.user=$__file{/etc/passwd}"]);
    assert_eq!(report.diagnostics[0].rule, "grafana-user");
    let text = "observability:\n  grafana:\n    admin:\n      user: \"\"\n";
    assert_eq!(
        file_report(text),
        "\
error[grafana-user]: observability.grafana.admin.user: the admin user name is empty: Grafana cannot create a user without a login
 --> stack.yaml:4:13
  |
4 |       user: \"\"
  |             ^^

1 error"
    );
    // A `$` alone is no expansion.
    Loader::new()
        .sets(["observability.grafana.admin.user=ad$min"])
        .load()
        .expect("valid");
}

#[test]
fn the_redis_password_is_checked_without_being_shown() {
    let text = "\
redis:
  auth:
    password: \"hunter2\\nx\"
";
    assert_eq!(
        file_report(text),
        "\
error[text]: redis.auth.password: the password contains U+000A (a control character): it is passed in an environment variable and typed into redis-cli, so it must be printable text
 --> stack.yaml:3:15
  |
3 |     password: <redacted>
  |               ^^^^^^^^^^

1 error"
    );

    let vars = vec![(s("TASKMANAGER__REDIS__AUTH__PASSWORD"), s(""))];
    let report = Loader::new().env_vars(vars).load().expect_err("invalid");
    assert_eq!(
        report.to_string(),
        "\
error[redis-password]: redis.auth.password: the password is empty, and Redis reads an empty `requirepass` as no password at all
  --> environment variable TASKMANAGER__REDIS__AUTH__PASSWORD
  = help: set a password, or `redis.auth.enabled: false`

1 error"
    );
}

#[test]
fn object_names_fit_kubernetes() {
    let report = set_report(&["name=1taskmanager"]);
    assert_eq!(
        report.to_string(),
        "\
error[instance-name]: name: \"1taskmanager\" does not start with a letter: every Service is named `<name>-<component>`, and Kubernetes requires a Service name to start with a letter (RFC 1035)
  --> --set name=1taskmanager
  = help: for example `tm-1taskmanager`

1 error"
    );

    let name = "t".repeat(47);
    let report = set_report(&[&format!("name={name}")]);
    assert_eq!(
        rules(&report),
        vec![(
            "instance-name",
            s("name"),
            format!(
                "{name:?} is 47 characters long, and at most 46 fit: the managed Redis \
                 StatefulSet labels its pods `controller-revision-hash: <name>-redis-<10-character \
                 hash>`, and a label value is at most 63 characters"
            )
        )]
    );
    // Without the StatefulSet, the longest Service name is the limit.
    Loader::new()
        .sets([
            format!("name={name}"),
            s("redis.mode=external"),
            s("redis.host=redis.internal"),
        ])
        .load()
        .expect("valid");
    let name = "t".repeat(53);
    let report = set_report(&[
        &format!("name={name}"),
        "redis.mode=external",
        "redis.host=redis.internal",
    ]);
    assert_eq!(
        rules(&report),
        vec![(
            "instance-name",
            s("name"),
            format!(
                "{name:?} is 53 characters long, and at most 52 fit: the Service \
                 `<name>-prometheus` must be a DNS label of at most 63 characters"
            )
        )]
    );
}

#[test]
fn hosts_that_end_in_a_number_are_addresses() {
    let report = set_report(&["redis.mode=external", "redis.host=10.0.0.256"]);
    assert_eq!(
        rules(&report),
        vec![(
            "invalid-value",
            s("redis.host"),
            s(
                "\"10.0.0.256\" is not a host: use a DNS name (letters, digits, '-' and '.') or an \
               IP address"
            )
        )]
    );
}

#[test]
fn quantities_follow_kubernetes() {
    let text = "\
redis:
  persistence:
    size: 0Gi
server:
  resources:
    requests: { cpu: 250u, memory: 100m }
    limits: { cpu: \"1\", memory: 1.5Gi }
";
    assert_eq!(
        file_report(text),
        "\
error[storage-size]: redis.persistence.size: a volume of 0Gi holds nothing: Kubernetes requires a PersistentVolumeClaim to request more than 0 bytes of storage
 --> stack.yaml:3:11
  |
3 |     size: 0Gi
  |           ^^^

error[whole-bytes]: server.resources.requests.memory: 100m is not a whole number of bytes (0.1 bytes): memory and storage are counted in bytes
 --> stack.yaml:6:36
  |
6 |     requests: { cpu: 250u, memory: 100m }
  |                                    ^^^^
  = help: use a binary suffix such as 128Mi or 1Gi (`m` means thousandths)

2 errors"
    );
    let report = set_report(&[
        "observability.loki.storage.size=1e400",
        "observability.tempo.storage.size=1K",
    ]);
    assert_eq!(
        rules(&report),
        vec![
            (
                "invalid-value",
                s("observability.loki.storage.size"),
                s("\"1e400\" is too large a resource quantity")
            ),
            (
                "invalid-value",
                s("observability.tempo.storage.size"),
                s(
                    "\"1K\" is not a resource quantity: use a non-negative number with an optional \
                   suffix such as 100m, 0.5, 128Mi or 1Gi"
                )
            ),
        ]
    );
}

#[test]
fn replicas_fit_in_32_bits() {
    let report = set_report(&[
        "server.replicas=2147483648",
        "server.autoscaling.enabled=false",
    ]);
    assert_eq!(
        rules(&report),
        vec![(
            "replicas-range",
            s("server.replicas"),
            s(
                "must be at most 2147483647 (got 2147483648): Kubernetes counts replicas in a \
               32-bit integer"
            )
        )]
    );
}

#[test]
fn a_password_never_prints_in_a_snippet() {
    // A duplicate key shows its line: the password on it is redacted.
    let text = "\
redis:
  auth:
    password: hunter2
    password: hunter2
";
    let report = file_report(text);
    assert_eq!(
        report,
        "\
error[duplicate-key]: (document): key `redis.auth.password` appears more than once in the same mapping
 --> stack.yaml:4:5
  |
4 |     password: <redacted>
  |     ^^^^^^^^

1 error"
    );

    // A typo of a secret's name: the value is redacted too.
    let text = "redis:\n  auth:\n    passwrd: \"hunter2\"\n";
    assert_eq!(
        file_report(text),
        "\
error[unknown-key]: redis.auth.passwrd: unknown key `passwrd`
 --> stack.yaml:3:5
  |
3 |     passwrd: <redacted>
  |     ^^^^^^^
  = help: did you mean `password`?

1 error"
    );

    // A password in flow style, on the line of another error.
    let text = "redis:\n  auth: { enabled: maybe, password: hunter2 }\n";
    let report = file_report(text);
    assert!(!report.contains("hunter2"), "{report}");
    assert!(
        report.contains("2 |   auth: { enabled: maybe, password: <redacted>\n"),
        "{report}"
    );

    // A password given where its section belongs.
    let text = "redis:\n  auth: hunter2\n";
    assert_eq!(
        file_report(text),
        "\
error[type]: redis.auth: expected struct RedisAuth, found string \"<redacted>\"
 --> stack.yaml:2:9
  |
2 |   auth: <redacted>
  |         ^^^^^^^^^^

1 error"
    );
}

#[test]
fn a_password_never_prints_in_a_set_argument() {
    let report = set_report(&["redis.auth.passwrd=hunter2"]);
    assert_eq!(
        report.to_string(),
        "\
error[unknown-key]: redis.auth.passwrd: unknown key `passwrd`
  --> --set redis.auth.passwrd=<redacted>
  = help: did you mean `password`?

1 error"
    );
    let report = set_report(&["redis.auth=hunter2", "redis.auth.password:hunter2"]);
    let text = report.to_string();
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("--> --set redis.auth=<redacted>\n"), "{text}");
    assert!(
        text.contains("--> --set redis.auth.password:<redacted>\n"),
        "{text}"
    );
}

#[test]
fn control_characters_in_echoed_values_are_escaped() {
    let report = set_report(&["images.tag=v1\u{1b}[2J\nx"]);
    assert_eq!(
        report.to_string(),
        "\
error[invalid-value]: images.tag: \"v1\\u{1b}[2J\\nx\" is not an image tag: use 1-128 letters, digits, '_', '.' and '-', not starting with '.' or '-'
  --> --set images.tag=v1\\u{1b}[2J\\nx

1 error"
    );

    // In keys and messages that quote nothing (YAML's "\e" is ESC).
    let text = "server:\n  \"p\\e]0;x\\u2028\": 1\n";
    let report = file_report(text);
    assert!(
        report.starts_with(
            "error[unknown-key]: server.p\\u{1b}]0;x\\u{2028}: unknown key \
             `p\\u{1b}]0;x\\u{2028}`\n --> stack.yaml:2:3\n"
        ),
        "{report}"
    );

    // In snippets: characters YAML allows raw but a terminal obeys (NEL, a right-to-left
    // override) are shown escaped, and the caret still points under the value.
    let text = "images:\n  tag: \"v1\u{85}\u{202e}x\"\n";
    assert_eq!(
        file_report(text),
        "\
error[invalid-value]: images.tag: \"v1\\u{85}\\u{202e}x\" is not an image tag: use 1-128 letters, digits, '_', '.' and '-', not starting with '.' or '-'
 --> stack.yaml:2:8
  |
2 |   tag: \"v1\\u{85}\\u{202e}x\"
  |        ^^^^^^^^^^^^^^^^^^^

1 error"
    );
}

#[test]
fn environments_never_print_their_secrets() {
    let text = "\
environments:
  prod:
    redis:
      mode: external
      host: redis.prod
      auth:
        password: hunter2
        passwrd: hunter3
    server:
      api_token: t0k3n
";
    let dir = TempDir::new();
    let path = dir.write("stack.yaml", text);
    let loaded = Loader::new().file(&path).load().expect("valid");
    let resolved = stack_config::resolved(&loaded);
    let stack = loaded.stack;
    assert_eq!(
        stack_config::get(&resolved, "environments.prod"),
        Some(&serde_json::json!({
            "redis": {
                "mode": "external",
                "host": "redis.prod",
                "auth": { "password": "<redacted>", "passwrd": "<redacted>" },
            },
            "server": { "api_token": "<redacted>" },
        }))
    );
    let debug = format!("{stack:?}");
    assert!(
        !debug.contains("hunter") && !debug.contains("t0k3n"),
        "{debug}"
    );

    // Selected, the overlay's password is a Secret like any other.
    let report = Loader::new()
        .file(&path)
        .environment(Some("prod"))
        .load()
        .expect_err("passwrd is unknown");
    let text = report.to_string();
    assert!(
        !text.contains("hunter") && !text.contains("t0k3n"),
        "{text}"
    );
    assert!(text.contains("8 |         passwrd: <redacted>\n"), "{text}");
}
