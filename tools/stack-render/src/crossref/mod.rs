//! Checks that the rendered stack holds together and is the deployment the [`Topology`]
//! describes: every file parses; the addresses the rendered configs dial are exactly the
//! endpoints the topology declares, and each resolves to a rendered Service and port;
//! selectors match pod labels; the rendered ConfigMaps are the declared ones; and every
//! ConfigMap, Secret and ServiceAccount a pod refers to exists (Secrets are created by the
//! operator, so they must be ones the topology declares).
//!
//! The manifests are read once into an [`inventory::Inventory`]; each rule is a function
//! over it and the topology that returns its [`Problem`]s.
//!
//! One concept: the rules of the cross-reference check, one function each, and their tests
//! (the inventory, the problems and the dialled addresses are their own files).

mod dialled;
mod inventory;
mod problem;

use std::collections::BTreeSet;

use serde_json::Value;
use stack_config::topology::{Target as Peer, Topology};
use yaml_rust2::{Yaml, YamlLoader};

use self::dialled::{FROM_CONFIGS, dialled};
use self::inventory::{Inventory, Target, subset};
pub use self::problem::Problem;
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

/// Every document of every rendered YAML file, parsed; problems for the files that do not
/// parse (YAML or JSON).
pub fn documents(rendered: &Rendered) -> (Vec<(String, Value)>, Vec<Problem>) {
    let mut docs = Vec::new();
    let mut problems = Vec::new();
    for (path, text) in &rendered.files {
        let unreadable = |format, error: String| Problem::Unreadable {
            file: path.clone(),
            format,
            error,
        };
        if path.ends_with(".yaml") || path.ends_with(".yml") {
            match YamlLoader::load_from_str(text) {
                Ok(parsed) => docs.extend(parsed.iter().map(|doc| (path.clone(), to_json(doc)))),
                Err(error) => problems.push(unreadable("YAML", error.to_string())),
            }
        } else if path.ends_with(".json")
            && let Err(error) = serde_json::from_str::<Value>(text)
        {
            problems.push(unreadable("JSON", error.to_string()));
        }
    }
    (docs, problems)
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

/// Checks the rendered stack against its topology; returns every problem found.
pub fn check(topology: &Topology, rendered: &Rendered) -> Vec<Problem> {
    let (docs, mut problems) = documents(rendered);
    let namespace = topology.namespace.as_str();
    let inventory = Inventory::read(&docs, namespace);
    problems.extend(objects_are_in_the_namespace(&inventory, namespace));
    problems.extend(workloads_select_their_pods(&inventory));
    problems.extend(references_resolve(&inventory, &topology.secrets));
    problems.extend(config_maps_are_the_declared_ones(&inventory, topology));
    problems.extend(services_select_pods_and_ports(&inventory));
    problems.extend(configs_dial_the_endpoints(
        topology,
        &dialled(rendered, &docs),
    ));
    problems.extend(endpoints_resolve(&inventory, topology));
    problems.extend(kustomization_lists_the_manifests(rendered));
    problems
}

/// Every namespaced object is in the stack's namespace.
fn objects_are_in_the_namespace(inventory: &Inventory, namespace: &str) -> Vec<Problem> {
    inventory
        .misplaced
        .iter()
        .map(|misplaced| Problem::Misplaced {
            what: misplaced.what.clone(),
            namespace: namespace.to_owned(),
        })
        .collect()
}

/// Every workload's selector selects its own pods.
fn workloads_select_their_pods(inventory: &Inventory) -> Vec<Problem> {
    inventory
        .unselected
        .iter()
        .map(|what| Problem::Unselected { what: what.clone() })
        .collect()
}

/// Every reference names a rendered object, a declared Secret, or pods that exist.
fn references_resolve(inventory: &Inventory, secrets: &BTreeSet<String>) -> Vec<Problem> {
    let mut problems = Vec::new();
    for reference in &inventory.references {
        let from = || reference.from.clone();
        let missing = |kind: &'static str, name: &String| Problem::Missing {
            from: from(),
            kind,
            name: name.clone(),
        };
        let problem = match &reference.to {
            Target::ConfigMap(name) if !inventory.config_maps.contains(name) => {
                missing("ConfigMap", name)
            }
            Target::ServiceAccount(name) if !inventory.accounts.contains(name) => {
                missing("ServiceAccount", name)
            }
            Target::Role(name) if !inventory.roles.contains(name) => missing("Role", name),
            Target::Deployment(name) if !inventory.deployments.contains(name) => {
                missing("Deployment", name)
            }
            Target::Secret(name) if !secrets.contains(name) => Problem::UndeclaredSecret {
                from: from(),
                name: name.clone(),
            },
            Target::Pods(selector)
                if selector.is_empty()
                    || !inventory
                        .workloads
                        .iter()
                        .any(|w| subset(selector, &w.labels)) =>
            {
                Problem::NoPods {
                    from: from(),
                    selector: selector.clone(),
                }
            }
            _ => continue,
        };
        problems.push(problem);
    }
    problems
}

/// Every Service selects rendered pods, and each of its target ports is one they name.
fn services_select_pods_and_ports(inventory: &Inventory) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (name, service) in &inventory.services {
        let backends: Vec<_> = inventory
            .workloads
            .iter()
            .filter(|w| !service.selector.is_empty() && subset(&service.selector, &w.labels))
            .collect();
        if backends.is_empty() {
            problems.push(Problem::ServiceWithoutPods {
                service: name.clone(),
            });
        }
        for (target, _) in &service.ports {
            if !backends.iter().any(|w| w.ports.contains(target)) {
                problems.push(Problem::UnnamedTargetPort {
                    service: name.clone(),
                    target: target.clone(),
                });
            }
        }
    }
    problems
}

/// The rendered ConfigMaps are the ones the topology declares.
fn config_maps_are_the_declared_ones(inventory: &Inventory, topology: &Topology) -> Vec<Problem> {
    let declared = &topology.config_maps;
    let rendered = &inventory.config_maps;
    let missing = declared
        .difference(rendered)
        .map(|name| Problem::NotRendered {
            kind: "ConfigMap",
            name: name.clone(),
        });
    let extra = rendered
        .difference(declared)
        .map(|name| Problem::UndeclaredConfigMap { name: name.clone() });
    missing.chain(extra).collect()
}

/// The addresses the rendered files make a deployed component dial are endpoints the
/// topology declares for it, and the configs of [`FROM_CONFIGS`] dial every one of theirs.
fn configs_dial_the_endpoints(
    topology: &Topology,
    dialled: &[(stack_config::Component, String)],
) -> Vec<Problem> {
    let mut problems = Vec::new();
    let declared = |from, url: &str| {
        topology
            .endpoints
            .iter()
            .any(|e| e.from == from && e.url == url)
    };
    for (from, url) in dialled {
        if !declared(*from, url) {
            problems.push(Problem::UndeclaredDial {
                who: from.title().to_owned(),
                address: url.clone(),
            });
        }
    }
    for endpoint in &topology.endpoints {
        let from = endpoint.from;
        if FROM_CONFIGS.contains(&from)
            && topology.deploys(from)
            && !dialled
                .iter()
                .any(|(who, url)| *who == from && *url == endpoint.url)
        {
            problems.push(Problem::NotDialled {
                who: from.title().to_owned(),
                address: endpoint.url.clone(),
            });
        }
    }
    problems
}

/// Every endpoint of a deployed component resolves: one to a Service of the stack is a
/// rendered Service with that port; an address set in `stack.yaml` that names a Service
/// of the cluster (`<service>`, `<service>.<namespace>.svc[.cluster.local]`) names one that
/// is rendered, in the stack's namespace, with that port. Other external addresses are the
/// operator's to check.
fn endpoints_resolve(inventory: &Inventory, topology: &Topology) -> Vec<Problem> {
    let mut problems = Vec::new();
    let ns = topology.namespace.as_str();
    for endpoint in &topology.endpoints {
        if !topology.deploys(endpoint.from) {
            continue;
        }
        let who = endpoint.from.title().to_owned();
        let address = endpoint.url.clone();
        let (service, port) = match &endpoint.target {
            Peer::Service { name, port } => (name.clone(), port.number),
            Peer::External => {
                let Some((host, port)) = host_port(&address) else {
                    problems.push(Problem::NoHostPort { who, address });
                    continue;
                };
                let mut labels = host.split('.');
                let service = labels.next().unwrap_or_default().to_owned();
                let namespace = labels.next();
                let rest: Vec<&str> = labels.collect();
                let in_cluster = matches!(
                    (namespace, rest.as_slice()),
                    (None, []) | (Some(_), ["svc"] | ["svc", "cluster", "local"])
                );
                if !in_cluster {
                    continue;
                }
                if let Some(namespace) = namespace.filter(|n| *n != ns) {
                    problems.push(Problem::WrongNamespace {
                        who,
                        address,
                        namespace: namespace.to_owned(),
                        expected: ns.to_owned(),
                    });
                    continue;
                }
                (service, port)
            }
        };
        match inventory.services.get(&service) {
            None => problems.push(Problem::NoService {
                who,
                address,
                service,
            }),
            Some(found) if !found.ports.iter().any(|(_, p)| *p == i64::from(port)) => {
                problems.push(Problem::NoServicePort {
                    who,
                    address,
                    service,
                    port,
                });
            }
            Some(_) => {}
        }
    }
    problems
}

/// The kustomization lists exactly the rendered manifests.
fn kustomization_lists_the_manifests(rendered: &Rendered) -> Option<Problem> {
    let kustomization = rendered.files.get("k8s/kustomization.yaml")?;
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
    (listed != files).then_some(Problem::Kustomization { listed, files })
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

#[cfg(test)]
mod rules {
    use stack_config::topology::NamedPort;
    use stack_config::{Component, Endpoint, Stack};

    use super::*;

    fn rendered(manifest: &str) -> Rendered {
        Rendered {
            files: [("k8s/app.yaml".to_owned(), manifest.to_owned())].into(),
        }
    }

    #[test]
    fn each_rule_reports_what_it_finds() {
        let manifest = "\
kind: Deployment
metadata: {name: app, namespace: shop}
spec:
  selector: {matchLabels: {app: other}}
  template:
    metadata: {labels: {app: app}}
    spec:
      serviceAccountName: ghost
      containers:
        - name: app
          ports: [{name: http, containerPort: 80}]
          env:
            - name: PASSWORD
              valueFrom: {secretKeyRef: {name: undeclared, key: password}}
      volumes:
        - name: config
          configMap: {name: missing}
---
kind: Service
metadata: {name: app, namespace: elsewhere}
spec:
  selector: {app: app}
  ports: [{port: 80, targetPort: grpc}]
---
kind: PodDisruptionBudget
metadata: {name: budget, namespace: shop}
spec:
  selector: {matchLabels: {app: nobody}}
---
kind: ConfigMap
metadata: {name: stray, namespace: shop}
";
        let (docs, problems) = documents(&rendered(manifest));
        assert!(problems.is_empty(), "{problems:?}");
        let inventory = Inventory::read(&docs, "shop");
        let deployment = "Deployment app (k8s/app.yaml)".to_owned();
        assert_eq!(
            objects_are_in_the_namespace(&inventory, "shop"),
            [Problem::Misplaced {
                what: "Service app (k8s/app.yaml)".into(),
                namespace: "shop".into()
            }]
        );
        assert_eq!(
            workloads_select_their_pods(&inventory),
            [Problem::Unselected {
                what: deployment.clone()
            }]
        );
        assert_eq!(
            references_resolve(&inventory, &BTreeSet::new()),
            [
                Problem::Missing {
                    from: deployment.clone(),
                    kind: "ConfigMap",
                    name: "missing".into()
                },
                Problem::UndeclaredSecret {
                    from: deployment.clone(),
                    name: "undeclared".into()
                },
                Problem::Missing {
                    from: deployment,
                    kind: "ServiceAccount",
                    name: "ghost".into()
                },
                Problem::NoPods {
                    from: "PodDisruptionBudget budget (k8s/app.yaml)".into(),
                    selector: [("app".to_owned(), "nobody".to_owned())].into()
                },
            ]
        );
        assert_eq!(
            services_select_pods_and_ports(&inventory),
            [Problem::UnnamedTargetPort {
                service: "app".into(),
                target: "grpc".into()
            }]
        );
        let mut topology = Topology::compile(&Stack::default()).expect("compiles");
        topology.namespace = "shop".into();
        topology.config_maps = ["declared".to_owned()].into();
        assert_eq!(
            config_maps_are_the_declared_ones(&inventory, &topology),
            [
                Problem::NotRendered {
                    kind: "ConfigMap",
                    name: "declared".into()
                },
                Problem::UndeclaredConfigMap {
                    name: "stray".into()
                },
            ]
        );
        let endpoint = |from, target, url: &str| Endpoint {
            from,
            to: Component::Redis,
            target,
            url: url.into(),
        };
        let service = |name: &str, number| Peer::Service {
            name: name.into(),
            port: NamedPort {
                name: "http",
                number,
            },
        };
        let server = Component::Server;
        topology.endpoints = vec![
            endpoint(server, service("app", 80), "http://app.shop.svc:80"),
            endpoint(server, service("app", 81), "http://app.shop.svc:81"),
            endpoint(server, service("db", 5432), "http://db.shop.svc:5432"),
            endpoint(server, Peer::External, "http://app.other.svc:80"),
            endpoint(server, Peer::External, "http://example.com:80"),
            endpoint(server, Peer::External, "http://ghost:80"),
            endpoint(server, Peer::External, "nohost"),
        ];
        let found: Vec<String> = endpoints_resolve(&inventory, &topology)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            found,
            [
                "the server dials http://app.shop.svc:81, but Service app has no port 81",
                "the server dials http://db.shop.svc:5432, but no Service db is rendered",
                "the server dials http://app.other.svc:80, in namespace other instead of shop",
                "the server dials http://ghost:80, but no Service ghost is rendered",
                "the server dials \"nohost\", which has no host:port",
            ]
        );
        topology.endpoints = vec![
            endpoint(Component::Prometheus, Peer::External, "http://a:1"),
            endpoint(Component::Grafana, Peer::External, "http://b:2"),
            endpoint(Component::Client, Peer::External, "http://c:3"),
        ];
        let dialled = [
            (Component::Prometheus, "http://a:1".to_owned()),
            (Component::Tempo, "http://d:4".to_owned()),
        ];
        assert_eq!(
            configs_dial_the_endpoints(&topology, &dialled),
            [
                Problem::UndeclaredDial {
                    who: "Tempo".into(),
                    address: "http://d:4".into()
                },
                Problem::NotDialled {
                    who: "Grafana".into(),
                    address: "http://b:2".into()
                },
            ]
        );
    }
}
