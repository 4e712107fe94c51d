//! The addresses the rendered files make components dial, read back from the files: remote
//! writes, datasources, log shippers' pushes and the client's `--address`. The server reads
//! its Redis and trace endpoint from the topology in its `stack.yaml`, so it has none here.

use serde_json::Value;
use stack_config::Component;

use crate::Rendered;

/// The components whose rendered configs hold every address they dial: each of their
/// declared endpoints must be found here. (The client's `--address` is read too, but it
/// sends its traces where its `stack.yaml` says.)
pub(super) const FROM_CONFIGS: [Component; 5] = [
    Component::Prometheus,
    Component::Tempo,
    Component::Grafana,
    Component::Promtail,
    Component::Alloy,
];

fn text(value: &Value) -> impl Iterator<Item = String> {
    value.as_str().map(str::to_owned).into_iter()
}

fn items(value: &Value) -> impl Iterator<Item = &Value> {
    value.as_array().into_iter().flatten()
}

/// Every address a rendered file makes a component dial: `(who, address)`.
pub(super) fn dialled(rendered: &Rendered, docs: &[(String, Value)]) -> Vec<(Component, String)> {
    let mut out = Vec::new();
    for (file, doc) in docs {
        let (who, urls): (Component, Vec<String>) = match file.as_str() {
            "configs/prometheus.yml" => (
                Component::Prometheus,
                items(&doc["remote_write"])
                    .flat_map(|t| text(&t["url"]))
                    .collect(),
            ),
            "configs/tempo.yaml" => (
                Component::Tempo,
                items(&doc["metrics_generator"]["storage"]["remote_write"])
                    .flat_map(|t| text(&t["url"]))
                    .collect(),
            ),
            "configs/grafana-datasources.yaml" => (
                Component::Grafana,
                items(&doc["datasources"])
                    .flat_map(|s| text(&s["url"]))
                    .collect(),
            ),
            "configs/promtail.yaml" => (
                Component::Promtail,
                items(&doc["clients"])
                    .flat_map(|c| text(&c["url"]))
                    .collect(),
            ),
            "k8s/client.yaml" if doc["kind"] == "Deployment" => {
                let containers = &doc["spec"]["template"]["spec"]["containers"];
                let args: Vec<&str> = items(containers)
                    .flat_map(|c| items(&c["args"]))
                    .filter_map(Value::as_str)
                    .collect();
                let address = args
                    .windows(2)
                    .filter(|pair| pair[0] == "--address")
                    .map(|pair| pair[1].to_owned());
                (Component::Client, address.collect())
            }
            _ => continue,
        };
        out.extend(urls.into_iter().map(|url| (who, url)));
    }
    if let Some(alloy) = rendered.files.get("configs/config.alloy") {
        for line in alloy.lines() {
            if let Some(rest) = line.trim().strip_prefix("url") {
                let url = rest.trim_start_matches([' ', '=']).trim().trim_matches('"');
                out.push((Component::Alloy, url.to_owned()));
            }
        }
    }
    out
}
