//! Rendering whole stacks: snapshots, determinism, retargeting, failures that leave the
//! previous output alone, and the cross-reference check.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use taskmanager_test_support::Scratch;

use stack_config::{Loader, Stack};
use stack_render::{Rendered, Templates, render};

fn shipped() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../stack.yaml")
}

fn stack(env: Option<&str>, sets: &[&str]) -> Stack {
    Loader::new()
        .file(shipped())
        .environment(env)
        .sets(sets.iter().copied())
        .load()
        .unwrap_or_else(|report| panic!("valid stack:\n{report}"))
        .stack
}

fn all_files(rendered: &Rendered) -> String {
    rendered
        .files
        .iter()
        .map(|(path, text)| format!("=== {path}\n{text}"))
        .collect()
}

const EXTERNAL_NO_OBSERVABILITY: &[&str] = &[
    "redis.mode=external",
    "redis.host=redis.example.internal",
    "observability.prometheus.enabled=false",
    "observability.grafana.enabled=false",
    "observability.loki.enabled=false",
    "observability.logs.enabled=false",
    "observability.tempo.enabled=false",
    "observability.mimir.enabled=false",
    "observability.tracing.enabled=false",
];

#[test]
fn snapshot_of_the_shipped_stack() {
    let rendered = render(&stack(None, &[]), &Templates::embedded()).expect("renders");
    insta::assert_snapshot!("shipped", all_files(&rendered));
}

#[test]
fn snapshot_of_an_external_redis_without_observability() {
    let rendered = render(
        &stack(None, EXTERNAL_NO_OBSERVABILITY),
        &Templates::embedded(),
    )
    .expect("renders");
    let paths: Vec<&str> = rendered.files.keys().map(String::as_str).collect();
    assert!(!paths.contains(&"k8s/redis.yaml") && !paths.contains(&"k8s/grafana.yaml"));
    insta::assert_snapshot!("external-redis-no-observability", all_files(&rendered));
}

#[test]
fn snapshot_of_the_prod_overlay() {
    let rendered = render(&stack(Some("prod"), &[]), &Templates::embedded()).expect("renders");
    insta::assert_snapshot!("prod", all_files(&rendered));
}

#[test]
fn snapshot_of_promtail_and_a_load_client() {
    let sets = ["observability.logs.shipper=promtail", "client.mode=load"];
    let rendered = render(&stack(None, &sets), &Templates::embedded()).expect("renders");
    assert!(rendered.files["k8s/namespace.yaml"].contains("enforce: \"privileged\""));
    assert!(rendered.files["k8s/client.yaml"].contains("kind: Job"));
    insta::assert_snapshot!("promtail-load", all_files(&rendered));
}

#[test]
fn rendering_is_deterministic() {
    let stack = stack(None, &[]);
    let first = render(&stack, &Templates::embedded()).expect("renders");
    let second = render(&stack, &Templates::embedded()).expect("renders");
    assert_eq!(first, second);
}

/// The lines that differ between two renders, per file: (old, new).
fn changed_lines(old: &Rendered, new: &Rendered) -> BTreeMap<String, Vec<(String, String)>> {
    assert_eq!(
        old.files.keys().collect::<Vec<_>>(),
        new.files.keys().collect::<Vec<_>>()
    );
    let mut out = BTreeMap::new();
    for (path, before) in &old.files {
        let after = &new.files[path];
        let pairs: Vec<(String, String)> = before
            .lines()
            .zip(after.lines())
            .filter(|(a, b)| a != b)
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .collect();
        assert_eq!(
            before.lines().count(),
            after.lines().count(),
            "{path} keeps its shape"
        );
        if !pairs.is_empty() {
            out.insert(path.clone(), pairs);
        }
    }
    out
}

#[test]
fn retargeting_the_registry_changes_only_image_references() {
    let old = render(&stack(None, &[]), &Templates::embedded()).expect("renders");
    let new = render(
        &stack(None, &["images.registry=ghcr.io/acme"]),
        &Templates::embedded(),
    )
    .expect("renders");
    let changed = changed_lines(&old, &new);
    for (path, lines) in &changed {
        for (before, after) in lines {
            let image = before.contains("localhost:5000") && after.contains("ghcr.io/acme");
            let checksum = before.contains("checksum/config") && after.contains("checksum/config");
            assert!(
                image || checksum,
                "{path}: unexpected change {before:?} -> {after:?}"
            );
        }
    }
    let files: Vec<&str> = changed.keys().map(String::as_str).collect();
    for expected in [
        "k8s/server.yaml",
        "k8s/client.yaml",
        "docker/server.Dockerfile",
        "local/docker-run.sh",
    ] {
        assert!(
            files.contains(&expected),
            "{expected} follows the registry: {files:?}"
        );
    }
    assert!(
        new.files["k8s/server.yaml"].contains("image: \"ghcr.io/acme/taskmanager-server:0.1.0\"")
    );
}

#[test]
fn retargeting_the_tag_changes_only_image_references_and_version_labels() {
    let old = render(&stack(None, &[]), &Templates::embedded()).expect("renders");
    let new = render(
        &stack(None, &["images.tag=2.0.0-rc.1"]),
        &Templates::embedded(),
    )
    .expect("renders");
    for (path, lines) in &changed_lines(&old, &new) {
        for (before, after) in lines {
            let tagged = before.contains("0.1.0") && after.contains("2.0.0-rc.1");
            let checksum = before.contains("checksum/config") && after.contains("checksum/config");
            assert!(
                tagged || checksum,
                "{path}: unexpected change {before:?} -> {after:?}"
            );
        }
    }
    let server = &new.files["k8s/server.yaml"];
    assert!(server.contains("image: \"localhost:5000/taskmanager-server:2.0.0-rc.1\""));
    assert!(server.contains("\"app.kubernetes.io/version\": \"2.0.0-rc.1\""));
    // Third-party components keep their own versions.
    assert!(new.files["k8s/loki.yaml"].contains("\"app.kubernetes.io/version\": \"3.6.15\""));
}

#[test]
fn retargeting_the_redis_host_changes_only_what_dials_it() {
    let base = ["redis.mode=external", "redis.host=redis-a.internal"];
    let moved = ["redis.mode=external", "redis.host=redis-b.internal"];
    let old = render(&stack(None, &base), &Templates::embedded()).expect("renders");
    let new = render(&stack(None, &moved), &Templates::embedded()).expect("renders");
    let changed = changed_lines(&old, &new);
    for (path, lines) in &changed {
        for (before, after) in lines {
            let host = before.contains("redis-a.internal") && after.contains("redis-b.internal");
            let checksum = before.contains("checksum/config") && after.contains("checksum/config");
            assert!(
                host || checksum,
                "{path}: unexpected change {before:?} -> {after:?}"
            );
        }
    }
    assert!(
        changed.contains_key("k8s/server.yaml"),
        "the server's configuration follows"
    );
    assert!(changed.contains_key("local/docker-run.sh"));
    assert!(
        !old.files.contains_key("k8s/redis.yaml"),
        "an external Redis is not deployed"
    );
}

#[test]
fn a_redis_cluster_is_dialled_not_deployed() {
    let stack = stack(
        None,
        &[
            "redis.mode=cluster",
            "redis.cluster.nodes=[redis-0.example.internal:6379, redis-1.example.internal:6379]",
            "redis.cluster.shards=9",
            "redis.wait.replicas=1",
        ],
    );
    let rendered = render(&stack, &Templates::embedded()).expect("renders");
    assert!(!rendered.files.contains_key("k8s/redis.yaml"));
    let kustomization = &rendered.files["k8s/kustomization.yaml"];
    assert!(!kustomization.contains("redis"), "{kustomization}");
    // The server's own settings carry the cluster; nothing else names a Redis host.
    let server = &rendered.files["k8s/server.yaml"];
    for line in [
        "mode: \"cluster\"",
        "- \"redis-0.example.internal:6379\"",
        "shards: 9",
        "replicas: 1",
    ] {
        assert!(server.contains(line), "{line} in:\n{server}");
    }
    let docker_run = &rendered.files["local/docker-run.sh"];
    assert!(!docker_run.contains("REDIS__HOST"), "{docker_run}");
    assert!(!docker_run.contains("redis-server"), "{docker_run}");
}

#[test]
fn a_failed_render_leaves_the_previous_output_intact() {
    let out = Scratch::new("out");
    let target = out.join("rendered");
    let good = render(&stack(None, &[]), &Templates::embedded()).expect("renders");
    stack_render::write_atomically(&target, &good, false).expect("writes");
    let before = std::fs::read_to_string(target.join("k8s/server.yaml")).expect("written");

    let broken = Scratch::new("templates");
    std::fs::create_dir_all(broken.join("k8s")).expect("dir");
    std::fs::write(
        broken.join("k8s/client.yaml"),
        "replicas: {{ stack.client.replicaz }}\n",
    )
    .expect("write");
    let error = render(
        &stack(None, &["images.tag=9.9.9"]),
        &Templates::directory(broken.path()),
    )
    .expect_err("an undefined variable fails the render");
    let message = stack_render::error_chain(&error);
    assert!(
        message.starts_with("template k8s/client.yaml:"),
        "{message}"
    );
    assert!(message.contains("replicaz"), "{message}");
    // Nothing was written: the previous output is untouched.
    assert_eq!(
        std::fs::read_to_string(target.join("k8s/server.yaml")).expect("kept"),
        before
    );
    assert!(stack_render::diff(&target, &good).expect("diff").is_empty());
}

#[test]
fn the_cross_reference_check_catches_a_missing_service() {
    let templates = Scratch::new("templates");
    std::fs::create_dir_all(templates.join("k8s")).expect("dir");
    let original = include_str!("../../../templates/k8s/server.yaml");
    let renamed = original.replace(
        r#"m.service("server", n.server, "#,
        r#"m.service("server", n.server ~ "-api", "#,
    );
    assert_ne!(original, renamed);
    std::fs::write(templates.join("k8s/server.yaml"), renamed).expect("write");
    let error = render(&stack(None, &[]), &Templates::directory(templates.path()))
        .expect_err("the client dials a Service that is not rendered");
    let message = error.to_string();
    assert!(
        message.contains(
            "the client dials http://taskmanager-server.taskmanager.svc:50051, but no Service \
             taskmanager-server is rendered"
        ),
        "{message}"
    );
}

#[test]
fn the_check_mode_reports_stale_files() {
    let out = Scratch::new("check");
    let target = out.join("rendered");
    let rendered = render(&stack(None, &[]), &Templates::embedded()).expect("renders");
    stack_render::write_atomically(&target, &rendered, false).expect("writes");
    assert!(
        stack_render::diff(&target, &rendered)
            .expect("diff")
            .is_empty()
    );
    std::fs::write(target.join("k8s/server.yaml"), "stale\n").expect("write");
    std::fs::write(target.join("k8s/leftover.yaml"), "old\n").expect("write");
    std::fs::remove_file(target.join("k8s/client.yaml")).expect("remove");
    let diffs = stack_render::diff(&target, &rendered).expect("diff");
    assert_eq!(diffs.len(), 3, "{diffs:?}");
    assert!(matches!(&diffs[0], stack_render::Diff::Missing(p) if p == "k8s/client.yaml"));
    match &diffs[1] {
        stack_render::Diff::Changed(path, unified) => {
            assert_eq!(path, "k8s/server.yaml");
            assert!(unified.contains("--- a/k8s/server.yaml\n+++ b/k8s/server.yaml\n"));
            assert!(unified.contains("-stale\n"));
        }
        other => panic!("expected a change, got {other:?}"),
    }
    assert!(matches!(&diffs[2], stack_render::Diff::Extra(p) if p == "k8s/leftover.yaml"));
}

#[test]
fn config_maps_hold_the_same_bytes_as_the_config_files() {
    let rendered = render(&stack(None, &[]), &Templates::embedded()).expect("renders");
    let (docs, problems) = stack_render::crossref::documents(&rendered);
    assert_eq!(problems, Vec::new());
    let mut checked = 0;
    for (_, doc) in &docs {
        if doc["kind"] != "ConfigMap" {
            continue;
        }
        for (key, value) in doc["data"].as_object().expect("data") {
            let file = format!(
                "configs/{}",
                if key == "datasources.yaml" {
                    "grafana-datasources.yaml"
                } else if key == "dashboards.yaml" {
                    "grafana-dashboards.yaml"
                } else if key == "taskmanager.json" {
                    "taskmanager-dashboard.json"
                } else {
                    key
                }
            );
            assert_eq!(
                value.as_str(),
                Some(rendered.files[&file].as_str()),
                "{file}"
            );
            checked += 1;
        }
    }
    let configs = rendered
        .files
        .keys()
        .filter(|p| p.starts_with("configs/"))
        .count();
    assert_eq!(checked, configs, "every config file is in a ConfigMap");
}

#[test]
fn no_credential_is_rendered() {
    let stack = Loader::new()
        .file(shipped())
        .env_vars([(
            "TASKMANAGER__REDIS__AUTH__PASSWORD".to_owned(),
            "s3cr3t-pa55".to_owned(),
        )])
        .load()
        .expect("valid")
        .stack;
    assert!(stack.redis.auth.password.is_some());
    let rendered = render(&stack, &Templates::embedded()).expect("renders");
    for (path, text) in &rendered.files {
        assert!(!text.contains("s3cr3t-pa55"), "{path} holds the password");
        assert!(
            !text.contains("<redacted>"),
            "{path} holds a redacted placeholder"
        );
    }
    assert!(rendered.files["k8s/server.yaml"].contains("secretKeyRef:"));
}

#[test]
fn a_raw_line_break_in_a_template_fails_the_read_back() {
    let templates = Scratch::new("templates");
    std::fs::create_dir_all(templates.join("k8s")).expect("dir");
    let original = include_str!("../../../templates/k8s/namespace.yaml");
    std::fs::write(
        templates.join("k8s/namespace.yaml"),
        format!("{original}# a comment\u{2028}kind: ClusterRoleBinding\n"),
    )
    .expect("write");
    let error = render(&stack(None, &[]), &Templates::directory(templates.path()))
        .expect_err("the read-back check refuses it");
    let message = error.to_string();
    assert!(
        message.starts_with("the rendered files do not read back as written"),
        "{message}"
    );
    assert!(
        message.contains("k8s/namespace.yaml, line ")
            && message.contains(": a raw U+2028, which some parsers read as a line break"),
        "{message}"
    );
}

#[test]
fn a_value_written_without_a_filter_fails_the_render() {
    let templates = Scratch::new("templates");
    std::fs::create_dir_all(templates.join("k8s")).expect("dir");
    std::fs::write(
        templates.join("k8s/namespace.yaml"),
        "kind: Namespace\nmetadata:\n  name: {{ ns }}\n",
    )
    .expect("write");
    let error = render(&stack(None, &[]), &Templates::directory(templates.path()))
        .expect_err("a raw string is refused");
    assert_eq!(
        stack_render::error_chain(&error),
        "template k8s/namespace.yaml: invalid operation: a string value (\"taskmanager\") is \
         written without a quoting filter; pass it through q, yaml, block or sh (in \
         k8s/namespace.yaml:3)"
    );
}
