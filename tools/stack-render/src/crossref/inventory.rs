//! What the rendered manifests hold, read once: the objects by kind, the pods' labels and
//! port names, and every reference one object makes to another.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// Labels, as selectors and pods carry them.
pub(crate) type Labels = BTreeMap<String, String>;

/// A rendered Service: its selector and its `(target port name, port)` pairs.
pub(crate) struct Service {
    pub(crate) selector: Labels,
    pub(crate) ports: Vec<(String, i64)>,
}

/// A rendered workload's pods: their labels and the names of their container ports.
pub(crate) struct Workload {
    pub(crate) labels: Labels,
    pub(crate) ports: BTreeSet<String>,
}

/// What one object refers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// A ConfigMap (a volume, an environment variable).
    ConfigMap(String),
    /// A Secret (a volume, an environment variable, an image pull secret).
    Secret(String),
    /// A ServiceAccount (a pod's, a binding's subject).
    ServiceAccount(String),
    /// A Role or ClusterRole, as `<kind>/<name>`.
    Role(String),
    /// A Deployment (an autoscaler's target).
    Deployment(String),
    /// Pods, by a label selector (a disruption budget, a network policy and its peers).
    Pods(Labels),
}

/// One reference: who makes it, and to what.
pub(crate) struct Reference {
    /// `<Kind> <name> (<file>)`.
    pub(crate) from: String,
    pub(crate) to: Target,
}

/// An object whose namespace is not the stack's.
pub(crate) struct Misplaced {
    pub(crate) what: String,
}

/// Everything the checks read.
#[derive(Default)]
pub(crate) struct Inventory {
    pub(crate) services: BTreeMap<String, Service>,
    pub(crate) config_maps: BTreeSet<String>,
    pub(crate) accounts: BTreeSet<String>,
    pub(crate) roles: BTreeSet<String>,
    pub(crate) deployments: BTreeSet<String>,
    pub(crate) workloads: Vec<Workload>,
    pub(crate) references: Vec<Reference>,
    /// Workloads whose selector does not select their own pods.
    pub(crate) unselected: Vec<String>,
    pub(crate) misplaced: Vec<Misplaced>,
}

fn string_map(value: &Value) -> Labels {
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

/// True when every label of `small` is in `big`.
pub(crate) fn subset(small: &Labels, big: &Labels) -> bool {
    small.iter().all(|(k, v)| big.get(k) == Some(v))
}

fn strings<'a>(values: impl Iterator<Item = &'a Value>) -> impl Iterator<Item = String> {
    values.filter_map(|v| v.as_str().map(str::to_owned))
}

/// Kinds that live outside any namespace.
const CLUSTER_SCOPED: [&str; 4] = [
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "Kustomization",
];

impl Inventory {
    /// Reads the documents of the rendered `k8s/` files (`(file, document)`), expecting
    /// namespaced objects in `namespace`.
    pub(crate) fn read(docs: &[(String, Value)], namespace: &str) -> Self {
        let mut inventory = Self::default();
        for (file, doc) in docs.iter().filter(|(file, _)| file.starts_with("k8s/")) {
            inventory.add(file, doc, namespace);
        }
        inventory
    }

    fn refer(&mut self, from: &str, to: Target) {
        self.references.push(Reference {
            from: from.to_owned(),
            to,
        });
    }

    fn add(&mut self, file: &str, doc: &Value, namespace: &str) {
        let kind = doc["kind"].as_str().unwrap_or_default();
        let name = doc["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let what = format!("{kind} {name} ({file})");
        if !CLUSTER_SCOPED.contains(&kind)
            && doc["metadata"]["namespace"].as_str() != Some(namespace)
        {
            self.misplaced.push(Misplaced { what: what.clone() });
        }
        match kind {
            "Service" => {
                let ports = doc["spec"]["ports"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| {
                        let target = p["targetPort"]
                            .as_str()
                            .map_or_else(|| p["targetPort"].to_string(), str::to_owned);
                        (target, p["port"].as_i64().unwrap_or_default())
                    })
                    .collect();
                let selector = string_map(&doc["spec"]["selector"]);
                self.services.insert(name, Service { selector, ports });
            }
            "ConfigMap" => {
                self.config_maps.insert(name);
            }
            "ServiceAccount" => {
                self.accounts.insert(name);
            }
            "Role" | "ClusterRole" => {
                self.roles.insert(format!("{kind}/{name}"));
            }
            "Deployment" | "StatefulSet" | "DaemonSet" | "Job" => {
                if kind == "Deployment" {
                    self.deployments.insert(name.clone());
                }
                self.add_workload(&what, kind, doc);
            }
            "RoleBinding" | "ClusterRoleBinding" => {
                let role = format!(
                    "{}/{}",
                    doc["roleRef"]["kind"].as_str().unwrap_or_default(),
                    doc["roleRef"]["name"].as_str().unwrap_or_default()
                );
                self.refer(&what, Target::Role(role));
                for subject in doc["subjects"].as_array().into_iter().flatten() {
                    for name in strings([&subject["name"]].into_iter()) {
                        self.refer(&what, Target::ServiceAccount(name));
                    }
                }
            }
            "HorizontalPodAutoscaler" => {
                let target = doc["spec"]["scaleTargetRef"]["name"]
                    .as_str()
                    .unwrap_or_default();
                self.refer(&what, Target::Deployment(target.to_owned()));
            }
            "PodDisruptionBudget" | "NetworkPolicy" => {
                let own = if kind == "NetworkPolicy" {
                    &doc["spec"]["podSelector"]["matchLabels"]
                } else {
                    &doc["spec"]["selector"]["matchLabels"]
                };
                self.refer(&what, Target::Pods(string_map(own)));
                for rule in doc["spec"]["ingress"].as_array().into_iter().flatten() {
                    for peer in rule["from"].as_array().into_iter().flatten() {
                        let selector = string_map(&peer["podSelector"]["matchLabels"]);
                        self.refer(&what, Target::Pods(selector));
                    }
                }
            }
            _ => {}
        }
    }

    fn add_workload(&mut self, what: &str, kind: &str, doc: &Value) {
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
            for name in strings([&volume["configMap"]["name"]].into_iter()) {
                self.refer(what, Target::ConfigMap(name));
            }
            for name in strings([&volume["secret"]["secretName"]].into_iter()) {
                self.refer(what, Target::Secret(name));
            }
        }
        for container in &containers {
            for env in container["env"].as_array().into_iter().flatten() {
                let from = &env["valueFrom"];
                for name in strings([&from["configMapKeyRef"]["name"]].into_iter()) {
                    self.refer(what, Target::ConfigMap(name));
                }
                for name in strings([&from["secretKeyRef"]["name"]].into_iter()) {
                    self.refer(what, Target::Secret(name));
                }
            }
        }
        for secret in spec["imagePullSecrets"].as_array().into_iter().flatten() {
            for name in strings([&secret["name"]].into_iter()) {
                self.refer(what, Target::Secret(name));
            }
        }
        for name in strings([&spec["serviceAccountName"]].into_iter()) {
            self.refer(what, Target::ServiceAccount(name));
        }
        let selector = string_map(&doc["spec"]["selector"]["matchLabels"]);
        let labels = string_map(&pod["metadata"]["labels"]);
        if kind != "Job" && (selector.is_empty() || !subset(&selector, &labels)) {
            self.unselected.push(what.to_owned());
        }
        self.workloads.push(Workload { labels, ports });
    }
}
