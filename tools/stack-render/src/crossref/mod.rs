//! Checks that the rendered stack holds together: every file parses, every address a
//! component dials is a rendered Service and port, selectors match pod labels, and every
//! ConfigMap, Secret and ServiceAccount a pod refers to exists (Secrets are created by the
//! operator, so they must be ones `stack.yaml` declares, see [`Stack::declared_secrets`]).
//!
//! The manifests are read once into an [`inventory::Inventory`]; each rule is a function
//! over it that returns its [`Problem`]s.

mod dialled;
mod inventory;
mod problem;

use std::collections::BTreeSet;

use serde_json::Value;
use stack_config::Stack;
use yaml_rust2::{Yaml, YamlLoader};

use self::dialled::dialled;
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

/// Checks the rendered stack; returns every problem found.
pub fn check(stack: &Stack, rendered: &Rendered) -> Vec<Problem> {
    let (docs, mut problems) = documents(rendered);
    let namespace = stack.namespace.as_str();
    let inventory = Inventory::read(&docs, namespace);
    problems.extend(objects_are_in_the_namespace(&inventory, namespace));
    problems.extend(workloads_select_their_pods(&inventory));
    problems.extend(references_resolve(&inventory, &stack.declared_secrets()));
    problems.extend(services_select_pods_and_ports(&inventory));
    problems.extend(addresses_resolve(
        &inventory,
        namespace,
        &dialled(stack, rendered, &docs),
    ));
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
                    selector: serde_json::to_string(selector).unwrap_or_default(),
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

/// Every in-cluster address a component dials is a rendered Service and one of its ports,
/// in the stack's namespace (addresses outside the cluster are the operator's to check).
fn addresses_resolve(
    inventory: &Inventory,
    ns: &str,
    dialled: &[(String, String)],
) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (who, address) in dialled {
        let (who, address) = (who.clone(), address.clone());
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
                    selector: "{\"app\":\"nobody\"}".into()
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
        let dialled = [
            ("a".to_owned(), "http://app.shop.svc:80".to_owned()),
            ("b".to_owned(), "http://app.shop.svc:81".to_owned()),
            ("c".to_owned(), "http://db.shop.svc:5432".to_owned()),
            ("d".to_owned(), "http://app.other.svc:80".to_owned()),
            ("e".to_owned(), "http://example.com:80".to_owned()),
        ];
        let found: Vec<String> = addresses_resolve(&inventory, "shop", &dialled)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            found,
            [
                "b dials http://app.shop.svc:81, but Service app has no port 81",
                "c dials http://db.shop.svc:5432, but no Service db is rendered",
                "d dials http://app.other.svc:80, in namespace other instead of shop",
            ]
        );
    }
}
