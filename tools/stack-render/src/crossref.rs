//! Checks that the rendered stack holds together: every file parses, every address a
//! component dials is a rendered Service and port, selectors match pod labels, and every
//! ConfigMap, Secret and ServiceAccount a pod refers to exists (Secrets are created by the
//! operator, so they must be ones `stack.yaml` declares).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use stack_config::Stack;
use yaml_rust2::{Yaml, YamlLoader};

use crate::Rendered;

/// A YAML document as JSON (strings stay strings, as YAML 1.2 reads them).
fn to_json(yaml: &Yaml) -> Value {
    match yaml {
        Yaml::Hash(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Yaml::String(s) => s.clone(),
                        other => format!("{other:?}"),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
        Yaml::Array(items) => Value::Array(items.iter().map(to_json).collect()),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Integer(i) => Value::from(*i),
        Yaml::Real(r) => r
            .parse::<f64>()
            .map_or(Value::String(r.clone()), Value::from),
        Yaml::Boolean(b) => Value::Bool(*b),
        _ => Value::Null,
    }
}

/// Every document of every rendered YAML file, parsed; problems for those that do not parse.
pub fn documents(rendered: &Rendered) -> (Vec<(String, Value)>, Vec<String>) {
    let mut docs = Vec::new();
    let mut problems = Vec::new();
    for (path, text) in &rendered.files {
        if path.ends_with(".yaml") || path.ends_with(".yml") {
            match YamlLoader::load_from_str(text) {
                Ok(parsed) => docs.extend(parsed.iter().map(|doc| (path.clone(), to_json(doc)))),
                Err(error) => problems.push(format!("{path} is not valid YAML: {error}")),
            }
        } else if path.ends_with(".json")
            && let Err(error) = serde_json::from_str::<Value>(text)
        {
            problems.push(format!("{path} is not valid JSON: {error}"));
        }
    }
    (docs, problems)
}

/// A rendered Service: its selector and its (target port name, port) pairs.
type Service = (BTreeMap<String, String>, Vec<(String, i64)>);

struct Workload {
    labels: BTreeMap<String, String>,
    ports: BTreeSet<String>,
}

fn string_map(value: &Value) -> BTreeMap<String, String> {
    value
        .as_object()
        .map(|map| {
            map.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn subset(small: &BTreeMap<String, String>, big: &BTreeMap<String, String>) -> bool {
    small.iter().all(|(k, v)| big.get(k) == Some(v))
}

fn strings<'a>(values: impl Iterator<Item = &'a Value>) -> impl Iterator<Item = String> {
    values.filter_map(|v| v.as_str().map(str::to_owned))
}

/// `(host, port)` of `http://host:port/path`, `redis://host:port` or `host:port`; an http
/// or https address without a port dials its scheme's (80, 443), and a bracketed IPv6 host
/// keeps its colons.
fn host_port(address: &str) -> Option<(String, u16)> {
    let (scheme, rest) = address.split_once("://").unwrap_or(("", address));
    let authority = rest.split('/').next()?;
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let default = match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    };
    let (host, port) = match authority.strip_prefix('[') {
        Some(bracketed) => {
            let (host, rest) = bracketed.split_once(']')?;
            (host, rest.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    let port = match port {
        Some(port) => port.parse().ok()?,
        None => default?,
    };
    (!host.is_empty()).then(|| (host.to_owned(), port))
}

/// Checks the rendered stack; returns every problem found.
pub fn check(stack: &Stack, rendered: &Rendered) -> Vec<String> {
    let (docs, mut problems) = documents(rendered);
    let ns = stack.namespace.as_str();
    let mut services: BTreeMap<String, Service> = BTreeMap::new();
    let mut config_maps = BTreeSet::new();
    let mut accounts = BTreeSet::new();
    let mut roles = BTreeSet::new();
    let mut workloads = Vec::new();
    let mut deployments = BTreeSet::new();
    let mut wanted: Vec<(String, &'static str, String)> = Vec::new();

    for (file, doc) in docs.iter().filter(|(file, _)| file.starts_with("k8s/")) {
        let kind = doc["kind"].as_str().unwrap_or_default();
        let name = doc["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let what = format!("{kind} {name} ({file})");
        if kind != "Namespace"
            && kind != "ClusterRole"
            && kind != "ClusterRoleBinding"
            && kind != "Kustomization"
            && doc["metadata"]["namespace"].as_str() != Some(ns)
        {
            problems.push(format!("{what} is not in namespace {ns}"));
        }
        match kind {
            "Service" => {
                let ports = doc["spec"]["ports"]
                    .as_array()
                    .map(|ports| {
                        ports
                            .iter()
                            .map(|p| {
                                let target = p["targetPort"]
                                    .as_str()
                                    .map_or_else(|| p["targetPort"].to_string(), str::to_owned);
                                (target, p["port"].as_i64().unwrap_or_default())
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                services.insert(name, (string_map(&doc["spec"]["selector"]), ports));
            }
            "ConfigMap" => {
                config_maps.insert(name);
            }
            "ServiceAccount" => {
                accounts.insert(name);
            }
            "Role" | "ClusterRole" => {
                roles.insert(format!("{kind}/{name}"));
            }
            "Deployment" | "StatefulSet" | "DaemonSet" | "Job" => {
                if kind == "Deployment" {
                    deployments.insert(name.clone());
                }
                let pod = &doc["spec"]["template"];
                let spec = &pod["spec"];
                let containers: Vec<&Value> = spec["containers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .chain(spec["initContainers"].as_array().into_iter().flatten())
                    .collect();
                let ports = containers
                    .iter()
                    .flat_map(|c| c["ports"].as_array().into_iter().flatten())
                    .filter_map(|p| p["name"].as_str().map(str::to_owned))
                    .collect();
                for volume in spec["volumes"].as_array().into_iter().flatten() {
                    wanted.extend(
                        strings([&volume["configMap"]["name"]].into_iter())
                            .map(|n| (what.clone(), "ConfigMap", n)),
                    );
                    wanted.extend(
                        strings([&volume["secret"]["secretName"]].into_iter())
                            .map(|n| (what.clone(), "Secret", n)),
                    );
                }
                for container in &containers {
                    for env in container["env"].as_array().into_iter().flatten() {
                        let from = &env["valueFrom"];
                        wanted.extend(
                            strings([&from["configMapKeyRef"]["name"]].into_iter())
                                .map(|n| (what.clone(), "ConfigMap", n)),
                        );
                        wanted.extend(
                            strings([&from["secretKeyRef"]["name"]].into_iter())
                                .map(|n| (what.clone(), "Secret", n)),
                        );
                    }
                }
                for secret in spec["imagePullSecrets"].as_array().into_iter().flatten() {
                    wanted.extend(
                        strings([&secret["name"]].into_iter()).map(|n| (what.clone(), "Secret", n)),
                    );
                }
                wanted.extend(
                    strings([&spec["serviceAccountName"]].into_iter())
                        .map(|n| (what.clone(), "ServiceAccount", n)),
                );
                let selector = string_map(&doc["spec"]["selector"]["matchLabels"]);
                let labels = string_map(&pod["metadata"]["labels"]);
                if kind != "Job" && (selector.is_empty() || !subset(&selector, &labels)) {
                    problems.push(format!(
                        "{what}: its selector does not match its pod labels"
                    ));
                }
                workloads.push(Workload { labels, ports });
            }
            "RoleBinding" | "ClusterRoleBinding" => {
                let role = format!(
                    "{}/{}",
                    doc["roleRef"]["kind"].as_str().unwrap_or_default(),
                    doc["roleRef"]["name"].as_str().unwrap_or_default()
                );
                wanted.push((what.clone(), "Role", role));
                for subject in doc["subjects"].as_array().into_iter().flatten() {
                    wanted.extend(
                        strings([&subject["name"]].into_iter())
                            .map(|n| (what.clone(), "ServiceAccount", n)),
                    );
                }
            }
            "HorizontalPodAutoscaler" => {
                let target = doc["spec"]["scaleTargetRef"]["name"]
                    .as_str()
                    .unwrap_or_default();
                wanted.push((what.clone(), "Deployment", target.to_owned()));
            }
            "PodDisruptionBudget" | "NetworkPolicy" => {
                let selector = if kind == "NetworkPolicy" {
                    string_map(&doc["spec"]["podSelector"]["matchLabels"])
                } else {
                    string_map(&doc["spec"]["selector"]["matchLabels"])
                };
                wanted.push((
                    what.clone(),
                    "pods",
                    serde_json::to_string(&selector).unwrap_or_default(),
                ));
                for rule in doc["spec"]["ingress"].as_array().into_iter().flatten() {
                    for peer in rule["from"].as_array().into_iter().flatten() {
                        let selector = string_map(&peer["podSelector"]["matchLabels"]);
                        wanted.push((
                            what.clone(),
                            "pods",
                            serde_json::to_string(&selector).unwrap_or_default(),
                        ));
                    }
                }
            }
            _ => {}
        }
    }

    let secrets = stack.declared_secrets();
    for (what, kind, name) in &wanted {
        let found = match *kind {
            "ConfigMap" => config_maps.contains(name),
            "ServiceAccount" => accounts.contains(name),
            "Role" => roles.contains(name),
            "Deployment" => deployments.contains(name),
            "Secret" => secrets.contains(name),
            _ => {
                let selector: BTreeMap<String, String> =
                    serde_json::from_str(name).unwrap_or_default();
                !selector.is_empty() && workloads.iter().any(|w| subset(&selector, &w.labels))
            }
        };
        if !found {
            let problem = match *kind {
                "Secret" => {
                    format!("{what} refers to Secret {name}, which stack.yaml does not declare")
                }
                "pods" => format!("{what} selects {name}, which matches no rendered pod"),
                _ => format!("{what} refers to {kind} {name}, which is not rendered"),
            };
            problems.push(problem);
        }
    }

    for (name, (selector, ports)) in &services {
        let backends: Vec<&Workload> = workloads
            .iter()
            .filter(|w| !selector.is_empty() && subset(selector, &w.labels))
            .collect();
        if backends.is_empty() {
            problems.push(format!("Service {name} selects no rendered pod"));
        }
        for (target, _) in ports {
            if !backends.iter().any(|w| w.ports.contains(target)) {
                problems.push(format!(
                    "Service {name} targets port {target:?}, which its pods do not name"
                ));
            }
        }
    }

    for (who, address) in dialled(stack, rendered) {
        let Some((host, port)) = host_port(&address) else {
            problems.push(format!("{who} dials {address:?}, which has no host:port"));
            continue;
        };
        let mut labels = host.split('.');
        let service = labels.next().unwrap_or_default();
        let namespace = labels.next();
        let rest: Vec<&str> = labels.collect();
        let in_cluster = matches!(
            (namespace, rest.as_slice()),
            (None, []) | (Some(_), ["svc"] | ["svc", "cluster", "local"])
        );
        if !in_cluster {
            continue;
        }
        if namespace.is_some_and(|n| n != ns) {
            problems.push(format!(
                "{who} dials {address}, in namespace {} instead of {ns}",
                namespace.unwrap_or_default()
            ));
            continue;
        }
        match services.get(service) {
            None => problems.push(format!(
                "{who} dials {address}, but no Service {service} is rendered"
            )),
            Some((_, ports)) if !ports.iter().any(|(_, p)| *p == i64::from(port)) => problems.push(
                format!("{who} dials {address}, but Service {service} has no port {port}"),
            ),
            Some(_) => {}
        }
    }

    if let Some(kustomization) = rendered.files.get("k8s/kustomization.yaml") {
        let listed: BTreeSet<String> = YamlLoader::load_from_str(kustomization)
            .ok()
            .and_then(|docs| docs.first().map(to_json))
            .and_then(|doc| doc["resources"].as_array().cloned())
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        let files: BTreeSet<String> = rendered
            .files
            .keys()
            .filter_map(|p| p.strip_prefix("k8s/"))
            .filter(|p| *p != "kustomization.yaml")
            .map(str::to_owned)
            .collect();
        if listed != files {
            problems.push(format!(
                "k8s/kustomization.yaml lists {listed:?}, but the manifests are {files:?}"
            ));
        }
    }
    problems
}

/// Every address a rendered component dials: `(who, address)`.
fn dialled(stack: &Stack, rendered: &Rendered) -> Vec<(String, String)> {
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
    let (docs, _) = documents(rendered);
    for (file, doc) in &docs {
        match file.as_str() {
            "configs/prometheus.yml" => {
                for target in doc["remote_write"].as_array().into_iter().flatten() {
                    out.extend(
                        strings([&target["url"]].into_iter())
                            .map(|u| ("Prometheus remote_write".to_owned(), u)),
                    );
                }
            }
            "configs/tempo.yaml" => {
                let generator = &doc["metrics_generator"]["storage"]["remote_write"];
                for target in generator.as_array().into_iter().flatten() {
                    out.extend(
                        strings([&target["url"]].into_iter())
                            .map(|u| ("Tempo's metrics generator".to_owned(), u)),
                    );
                }
            }
            "configs/grafana-datasources.yaml" => {
                for source in doc["datasources"].as_array().into_iter().flatten() {
                    let who = format!(
                        "Grafana datasource {}",
                        source["name"].as_str().unwrap_or_default()
                    );
                    out.extend(strings([&source["url"]].into_iter()).map(|u| (who.clone(), u)));
                }
            }
            "configs/promtail.yaml" => {
                for client in doc["clients"].as_array().into_iter().flatten() {
                    out.extend(
                        strings([&client["url"]].into_iter()).map(|u| ("Promtail".to_owned(), u)),
                    );
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

#[cfg(test)]
mod tests {
    use super::host_port;

    #[test]
    fn addresses() {
        assert_eq!(
            host_port("http://a.b.svc:9009/api/v1/push"),
            Some(("a.b.svc".into(), 9009))
        );
        assert_eq!(host_port("redis://:pw@r:6379"), Some(("r".into(), 6379)));
        assert_eq!(host_port("nohost"), None);
        assert_eq!(
            host_port("http://server.example.com"),
            Some(("server.example.com".into(), 80))
        );
        assert_eq!(
            host_port("https://server.example.com/x"),
            Some(("server.example.com".into(), 443))
        );
        assert_eq!(host_port("http://[::1]:50051"), Some(("::1".into(), 50051)));
        assert_eq!(host_port("http://[::1]"), Some(("::1".into(), 80)));
        assert_eq!(host_port("redis://r"), None);
    }
}
