//! Every address a rendered component dials: from the stack (the server's Redis and trace
//! endpoint, the client's server) and from the rendered configs (remote writes, datasources,
//! log shippers).

use serde_json::Value;
use stack_config::Stack;

use crate::Rendered;

fn urls(value: &Value) -> impl Iterator<Item = String> {
    value.as_str().map(str::to_owned).into_iter()
}

/// Every address a rendered component dials: `(who, address)`.
pub(super) fn dialled(
    stack: &Stack,
    rendered: &Rendered,
    docs: &[(String, Value)],
) -> Vec<(String, String)> {
    let o = &stack.observability;
    let mut out = Vec::new();
    if stack.redis.mode == stack_config::model::RedisMode::Managed {
        out.push((
            "the server".to_owned(),
            format!("redis://{}:{}", stack.redis_host(), stack.redis.port),
        ));
    }
    let addresses = crate::context::addresses(stack);
    if stack.client.enabled {
        out.push((
            "the client".to_owned(),
            addresses["client_to_server"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        ));
    }
    if o.tracing.enabled {
        out.push((
            "the server's traces".to_owned(),
            addresses["otlp"].as_str().unwrap_or_default().to_owned(),
        ));
    }
    for (file, doc) in docs {
        match file.as_str() {
            "configs/prometheus.yml" => {
                for target in doc["remote_write"].as_array().into_iter().flatten() {
                    out.extend(
                        urls(&target["url"]).map(|u| ("Prometheus remote_write".to_owned(), u)),
                    );
                }
            }
            "configs/tempo.yaml" => {
                let generator = &doc["metrics_generator"]["storage"]["remote_write"];
                for target in generator.as_array().into_iter().flatten() {
                    out.extend(
                        urls(&target["url"]).map(|u| ("Tempo's metrics generator".to_owned(), u)),
                    );
                }
            }
            "configs/grafana-datasources.yaml" => {
                for source in doc["datasources"].as_array().into_iter().flatten() {
                    let who = format!(
                        "Grafana datasource {}",
                        source["name"].as_str().unwrap_or_default()
                    );
                    out.extend(urls(&source["url"]).map(|u| (who.clone(), u)));
                }
            }
            "configs/promtail.yaml" => {
                for client in doc["clients"].as_array().into_iter().flatten() {
                    out.extend(urls(&client["url"]).map(|u| ("Promtail".to_owned(), u)));
                }
            }
            _ => {}
        }
    }
    if let Some(alloy) = rendered.files.get("configs/config.alloy") {
        for line in alloy.lines() {
            if let Some(rest) = line.trim().strip_prefix("url") {
                let url = rest.trim_start_matches([' ', '=']).trim().trim_matches('"');
                out.push(("Alloy".to_owned(), url.to_owned()));
            }
        }
    }
    out
}
