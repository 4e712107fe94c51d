//! The rendered observability configs in the grammar of the programs that read them, checked
//! on the rendered text (each case is a defect a real program showed).
//!
//! One concept: the grammar of each observability program.

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

/// One relabelling rule of a log shipper: `target_label` becomes `replacement` (with `$n`
/// groups) when the `;`-joined `source_labels` match `regex` (anchored).
#[derive(Debug)]
struct Rule {
    sources: Vec<String>,
    regex: String,
    replacement: String,
    target: String,
}

impl Rule {
    /// The label this rule sets for a pod with `labels`, as Prometheus' relabelling does.
    fn apply(&self, labels: &std::collections::BTreeMap<String, String>) -> Option<String> {
        let joined: Vec<&str> = self
            .sources
            .iter()
            .map(|source| labels.get(source).map_or("", String::as_str))
            .collect();
        let regex = regex::Regex::new(&format!("^(?:{})$", self.regex)).expect("a regex");
        let joined = joined.join(";");
        let captures = regex.captures(&joined)?;
        let mut out = String::new();
        captures.expand(
            &self.replacement.replace("$1", "${1}").replace("$2", "${2}"),
            &mut out,
        );
        Some(out)
    }
}

/// The relabelling rules of Promtail's pod job.
fn promtail_rules(rendered: &stack_render::Rendered) -> Vec<Rule> {
    let promtail = yaml(rendered, "configs/promtail.yaml");
    promtail["scrape_configs"][0]["relabel_configs"]
        .as_sequence()
        .expect("relabel rules")
        .iter()
        .filter(|rule| rule["action"].is_null() && rule["target_label"].as_str().is_some())
        .map(|rule| Rule {
            sources: rule["source_labels"]
                .as_sequence()
                .expect("sources")
                .iter()
                .map(|s| s.as_str().expect("a label").to_owned())
                .collect(),
            regex: rule["regex"].as_str().unwrap_or("(.*)").to_owned(),
            replacement: rule["replacement"].as_str().unwrap_or("$1").to_owned(),
            target: rule["target_label"].as_str().expect("a label").to_owned(),
        })
        .collect()
}

/// The rules of Alloy's `discovery.relabel "pods"` (attributes are JSON strings and lists).
fn alloy_rules(rendered: &stack_render::Rendered) -> Vec<Rule> {
    let alloy = &rendered.files["configs/config.alloy"];
    let block = alloy
        .split("discovery.relabel \"pods\" {")
        .nth(1)
        .expect("the relabel block");
    let mut rules = Vec::new();
    for body in block.split("rule {").skip(1) {
        let body = body.split('}').next().unwrap_or_default();
        let attribute = |name: &str| -> serde_json::Value {
            body.lines()
                .find_map(|line| {
                    let (key, value) = line.split_once('=')?;
                    (key.trim() == name).then(|| serde_json::from_str(value.trim()).ok())?
                })
                .unwrap_or(serde_json::Value::Null)
        };
        rules.push(Rule {
            sources: serde_json::from_value(attribute("source_labels")).expect("sources"),
            regex: attribute("regex").as_str().unwrap_or("(.*)").to_owned(),
            replacement: attribute("replacement").as_str().unwrap_or("$1").to_owned(),
            target: attribute("target_label")
                .as_str()
                .expect("a label")
                .to_owned(),
        });
    }
    rules
}

/// The discovery meta labels of the pods of the rendered Deployment in `file`, as
/// Kubernetes service discovery names them.
fn pod_meta_labels(
    rendered: &stack_render::Rendered,
    file: &str,
) -> std::collections::BTreeMap<String, String> {
    let deployment = serde_yaml::Deserializer::from_str(&rendered.files[file])
        .map(|document| serde_yaml::Value::deserialize(document).expect("YAML"))
        .find(|document| document["kind"] == "Deployment")
        .expect("a Deployment");
    let labels = deployment["spec"]["template"]["metadata"]["labels"]
        .as_mapping()
        .expect("pod labels");
    labels
        .iter()
        .map(|(name, value)| {
            let name: String = name
                .as_str()
                .expect("a name")
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            (
                format!("__meta_kubernetes_pod_label_{name}"),
                value.as_str().expect("a value").to_owned(),
            )
        })
        .collect()
}

use serde::Deserialize as _;

/// Grafana's traces-to-logs query selects Loki streams by the labels that the span attributes
/// map to; each of those labels is one the shipper really sets, and on the server's and
/// client's lines its value is the span attribute's (`service.name`), with either shipper.
#[test]
fn traces_to_logs_queries_labels_the_log_shipper_sets() {
    for (shipper, rules) in [
        (
            "alloy",
            alloy_rules as fn(&stack_render::Rendered) -> Vec<Rule>,
        ),
        ("promtail", promtail_rules),
    ] {
        let rendered = rendered(&[&format!("observability.logs.shipper={shipper}")]);
        let rules = rules(&rendered);
        assert!(rules.len() >= 5, "{shipper}: {rules:?}");
        let datasources = yaml(&rendered, "configs/grafana-datasources.yaml");
        let tempo = datasources["datasources"]
            .as_sequence()
            .and_then(|list| list.iter().find(|d| d["uid"] == "tempo"))
            .expect("the Tempo datasource");
        let tags = tempo["jsonData"]["tracesToLogsV2"]["tags"]
            .as_sequence()
            .expect("traces-to-logs tags");
        assert!(!tags.is_empty());
        for tag in tags {
            let (attribute, label) = (
                tag["key"].as_str().expect("key"),
                tag["value"].as_str().expect("value"),
            );
            let rule = rules
                .iter()
                .find(|rule| rule.target == label)
                .unwrap_or_else(|| panic!("{shipper} sets no {label} label: {rules:?}"));
            assert_eq!(attribute, "service.name", "only service.name is mapped");
            for (file, service) in [
                ("k8s/server.yaml", taskmanager_telemetry::SERVER_SERVICE),
                ("k8s/client.yaml", taskmanager_telemetry::CLIENT_SERVICE),
            ] {
                let labels = pod_meta_labels(&rendered, file);
                assert_eq!(
                    rule.apply(&labels).as_deref(),
                    Some(service),
                    "{shipper}: {label} of {file}'s pods"
                );
            }
        }
    }
}

/// The other links: exemplars on every metrics datasource point at Tempo under the label the
/// server and Tempo's generator write (`trace_id`); the service map and traces-to-metrics
/// read Mimir, where Tempo's metrics generator writes, and are absent when nothing would.
#[test]
fn every_signal_links_to_the_others() {
    let shipped = rendered(&[]);
    let datasources = yaml(&shipped, "configs/grafana-datasources.yaml");
    let by_uid = |uid: &str| {
        datasources["datasources"]
            .as_sequence()
            .and_then(|list| list.iter().find(|d| d["uid"] == uid))
            .unwrap_or_else(|| panic!("datasource {uid}"))
            .clone()
    };
    for uid in ["mimir", "prometheus"] {
        let destination = &by_uid(uid)["jsonData"]["exemplarTraceIdDestinations"][0];
        assert_eq!(destination["name"], "trace_id", "{uid}");
        assert_eq!(destination["datasourceUid"], "tempo", "{uid}");
    }
    let tempo_ds = by_uid("tempo");
    assert_eq!(tempo_ds["jsonData"]["serviceMap"]["datasourceUid"], "mimir");
    assert_eq!(
        tempo_ds["jsonData"]["tracesToMetrics"]["datasourceUid"],
        "mimir"
    );
    let tempo = yaml(&shipped, "configs/tempo.yaml");
    let generator = &tempo["overrides"]["defaults"]["metrics_generator"];
    assert_eq!(
        generator["processors"],
        serde_yaml::from_str::<serde_yaml::Value>("[service-graphs, span-metrics]").expect("YAML")
    );
    assert_eq!(generator["trace_id_label_name"], "trace_id");
    let remote = &tempo["metrics_generator"]["storage"]["remote_write"][0];
    assert_eq!(
        remote["url"],
        "http://taskmanager-mimir.taskmanager.svc:9009/api/v1/push"
    );
    assert_eq!(remote["send_exemplars"], true);
    let prometheus = yaml(&shipped, "configs/prometheus.yml");
    assert_eq!(prometheus["remote_write"][0]["send_exemplars"], true);
    assert!(
        shipped.files["k8s/prometheus.yaml"].contains("\"--enable-feature=exemplar-storage\""),
        "Prometheus keeps exemplars"
    );
    let mimir = yaml(&shipped, "configs/mimir.yaml");
    assert!(
        mimir["limits"]["max_global_exemplars_per_user"]
            .as_u64()
            .is_some_and(|n| n > 0),
        "Mimir drops every exemplar at 0"
    );

    // Without Mimir, nothing generates span metrics: no generator, no links to empty views.
    let without = rendered(&[
        "observability.mimir.enabled=false",
        "observability.prometheus.remote_write_to_mimir=false",
    ]);
    let tempo = yaml(&without, "configs/tempo.yaml");
    assert!(tempo["metrics_generator"].is_null());
    let datasources = yaml(&without, "configs/grafana-datasources.yaml");
    let tempo_ds = datasources["datasources"]
        .as_sequence()
        .and_then(|list| list.iter().find(|d| d["uid"] == "tempo"))
        .expect("the Tempo datasource");
    assert!(tempo_ds["jsonData"]["serviceMap"].is_null());
    assert!(tempo_ds["jsonData"]["tracesToMetrics"].is_null());
}
