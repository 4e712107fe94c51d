//! The rendered observability configs in the grammar of the programs that read them, checked
//! on the rendered text (each case is a defect a real program showed).

use std::path::Path;

use stack_config::Loader;
use stack_render::{Templates, render};

/// The render of the shipped stack with `sets`.
fn rendered(sets: &[&str]) -> stack_render::Rendered {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../stack.yaml");
    let stack = Loader::new()
        .file(shipped)
        .sets(sets.iter().copied())
        .load()
        .unwrap_or_else(|report| panic!("valid:\n{report}"))
        .stack;
    render(&stack, &Templates::embedded()).expect("renders")
}

fn yaml(rendered: &stack_render::Rendered, file: &str) -> serde_yaml::Value {
    serde_yaml::from_str(&rendered.files[file]).expect("parses")
}

/// Tempo decodes `compactor.compaction.block_retention` into a Go `time.Duration` (yaml.v2
/// with `time.ParseDuration`), which has no day unit: `3d` made Tempo 2.10 refuse to start.
#[test]
fn tempo_block_retention_is_a_go_duration() {
    for (retention, expected) in [
        ("3d", "72h"),
        ("72h", "72h"),
        ("1d12h", "36h"),
        ("90m", "1h30m"),
    ] {
        let set = format!("observability.tempo.retention={retention}");
        let tempo = yaml(&rendered(&[&set]), "configs/tempo.yaml");
        let written = tempo["compactor"]["compaction"]["block_retention"]
            .as_str()
            .expect("a string");
        assert_eq!(written, expected, "{retention}");
    }
}

/// Grafana's provisioning (`pkg/services/provisioning/values`) splits every string on `$$`,
/// expands `$NAME`, `${NAME}` and `$__file{…}`-style expanders in each part, and joins the
/// parts with `$`. This is that, with an empty environment.
fn grafana_interpolate(text: &str) -> String {
    text.split("$$")
        .map(|part| {
            let mut out = String::new();
            let mut rest = part;
            while let Some(dollar) = rest.find('$') {
                out.push_str(&rest[..dollar]);
                let after = &rest[dollar + 1..];
                rest = if let Some(braced) = after.strip_prefix('{') {
                    braced.find('}').map_or("", |close| &braced[close + 1..])
                } else {
                    let name = after
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or(after.len());
                    &after[name..]
                };
            }
            out.push_str(rest);
            out
        })
        .collect::<Vec<_>>()
        .join("$")
}

fn strings<'a>(value: &'a serde_yaml::Value, out: &mut Vec<&'a str>) {
    match value {
        serde_yaml::Value::String(text) => out.push(text),
        serde_yaml::Value::Sequence(items) => items.iter().for_each(|item| strings(item, out)),
        serde_yaml::Value::Mapping(map) => map.values().for_each(|item| strings(item, out)),
        _ => {}
    }
}

/// Every string of the Grafana provisioning files survives Grafana's interpolation as meant
/// (`$$` is the only `$` written); the log-to-trace link keeps Grafana's own `${__value.raw}`,
/// which an unescaped `${…}` turned into an empty string.
#[test]
fn grafana_provisioning_survives_interpolation() {
    let rendered = rendered(&[]);
    for file in [
        "configs/grafana-datasources.yaml",
        "configs/grafana-dashboards.yaml",
    ] {
        let document = yaml(&rendered, file);
        let mut texts = Vec::new();
        strings(&document, &mut texts);
        for text in texts {
            assert_eq!(
                grafana_interpolate(text),
                text.replace("$$", "$"),
                "{file}: {text:?} would change under Grafana's interpolation"
            );
        }
    }
    let datasources = yaml(&rendered, "configs/grafana-datasources.yaml");
    let loki = datasources["datasources"]
        .as_sequence()
        .and_then(|list| list.iter().find(|d| d["uid"] == "loki"))
        .expect("the Loki datasource");
    let url = loki["jsonData"]["derivedFields"][0]["url"]
        .as_str()
        .expect("a derived field");
    assert_eq!(grafana_interpolate(url), "${__value.raw}");
}

#[test]
fn the_interpolation_model_matches_grafana() {
    assert_eq!(grafana_interpolate("${__value.raw}"), "");
    assert_eq!(grafana_interpolate("$${__value.raw}"), "${__value.raw}");
    assert_eq!(grafana_interpolate("a $HOME b"), "a  b");
    assert_eq!(grafana_interpolate("cost: $$5"), "cost: $5");
}

/// Prometheus adds an external label to a series only where the series lacks it; every
/// scraped series has `instance`, so an external `instance` label never applied.
#[test]
fn prometheus_external_labels_do_not_collide_with_target_labels() {
    let prometheus = yaml(&rendered(&[]), "configs/prometheus.yml");
    let external = prometheus["global"]["external_labels"]
        .as_mapping()
        .expect("external labels");
    for name in ["instance", "job", "__address__", "__name__"] {
        assert!(
            external.get(name).is_none(),
            "external label {name} never applies"
        );
    }
    assert_eq!(
        external.get("stack").and_then(|v| v.as_str()),
        Some("taskmanager")
    );
}

/// Mimir runs on a read-only root filesystem with its data volume at /data; the paths it
/// writes default to relative ones (`./metrics-activity.log`, opened at start-up), so each is
/// set under /data, and no path in the file points anywhere else.
#[test]
fn mimir_writes_only_under_its_data_volume() {
    let mimir = yaml(&rendered(&[]), "configs/mimir.yaml");
    assert_eq!(
        mimir["activity_tracker"]["filepath"].as_str(),
        Some("/data/metrics-activity.log")
    );
    assert_eq!(
        mimir["blocks_storage"]["bucket_store"]["sync_dir"].as_str(),
        Some("/data/tsdb-sync")
    );
    assert_eq!(mimir["ruler"]["rule_path"].as_str(), Some("/data/ruler"));
    fn paths<'a>(value: &'a serde_yaml::Value, key: &str, out: &mut Vec<(String, &'a str)>) {
        match value {
            serde_yaml::Value::Mapping(map) => {
                for (name, child) in map {
                    let name = name.as_str().unwrap_or_default();
                    paths(child, name, out);
                }
            }
            serde_yaml::Value::String(text) if key.ends_with("dir") || key.ends_with("path") => {
                out.push((key.to_owned(), text));
            }
            _ => {}
        }
    }
    let mut found = Vec::new();
    paths(&mimir, "", &mut found);
    assert!(found.len() >= 6, "{found:?}");
    for (key, path) in found {
        assert!(
            path.starts_with("/data/"),
            "{key}: {path} is not on the data volume"
        );
    }
}
