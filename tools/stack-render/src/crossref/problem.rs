//! What the cross-reference check finds: one variant per way the rendered stack can fail to
//! hold together, each with what it names, and the sentence that says it.

use std::collections::BTreeSet;
use std::fmt;

/// One way the rendered stack does not hold together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// A rendered file does not parse.
    Unreadable {
        /// The file.
        file: String,
        /// `YAML` or `JSON`.
        format: &'static str,
        /// The parser's error.
        error: String,
    },
    /// A namespaced object is not in the stack's namespace.
    Misplaced {
        /// `<Kind> <name> (<file>)`.
        what: String,
        /// The stack's namespace.
        namespace: String,
    },
    /// A workload's selector does not select its own pods.
    Unselected {
        /// `<Kind> <name> (<file>)`.
        what: String,
    },
    /// An object refers to another that is not rendered.
    Missing {
        /// The referring object.
        from: String,
        /// The kind of the missing object.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// An object refers to a Secret that `stack.yaml` does not declare.
    UndeclaredSecret {
        /// The referring object.
        from: String,
        /// The Secret.
        name: String,
    },
    /// A selector matches no rendered pod.
    NoPods {
        /// The selecting object.
        from: String,
        /// The selector.
        selector: std::collections::BTreeMap<String, String>,
    },
    /// A Service selects no rendered pod.
    ServiceWithoutPods {
        /// The Service.
        service: String,
    },
    /// A Service targets a port name its pods do not have.
    UnnamedTargetPort {
        /// The Service.
        service: String,
        /// The target port.
        target: String,
    },
    /// An address has no host and port.
    NoHostPort {
        /// Who dials it.
        who: String,
        /// The address.
        address: String,
    },
    /// An in-cluster address is in another namespace.
    WrongNamespace {
        /// Who dials it.
        who: String,
        /// The address.
        address: String,
        /// Its namespace.
        namespace: String,
        /// The stack's.
        expected: String,
    },
    /// An in-cluster address names no rendered Service.
    NoService {
        /// Who dials it.
        who: String,
        /// The address.
        address: String,
        /// The Service it names.
        service: String,
    },
    /// An in-cluster address names a port its Service does not have.
    NoServicePort {
        /// Who dials it.
        who: String,
        /// The address.
        address: String,
        /// The Service.
        service: String,
        /// The port.
        port: u16,
    },
    /// A rendered file makes a component dial an address the topology does not declare.
    UndeclaredDial {
        /// Who dials it.
        who: String,
        /// The address.
        address: String,
    },
    /// The topology declares an endpoint the component's rendered config does not dial.
    NotDialled {
        /// Who should dial it.
        who: String,
        /// The address.
        address: String,
    },
    /// The topology declares an object that is not rendered.
    NotRendered {
        /// Its kind.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// A ConfigMap is rendered that no component declares.
    UndeclaredConfigMap {
        /// Its name.
        name: String,
    },
    /// The kustomization does not list exactly the rendered manifests.
    Kustomization {
        /// What it lists.
        listed: BTreeSet<String>,
        /// The manifests.
        files: BTreeSet<String>,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreadable {
                file,
                format,
                error,
            } => write!(f, "{file} is not valid {format}: {error}"),
            Self::Misplaced { what, namespace } => {
                write!(f, "{what} is not in namespace {namespace}")
            }
            Self::Unselected { what } => {
                write!(f, "{what}: its selector does not match its pod labels")
            }
            Self::Missing { from, kind, name } => {
                write!(f, "{from} refers to {kind} {name}, which is not rendered")
            }
            Self::UndeclaredSecret { from, name } => write!(
                f,
                "{from} refers to Secret {name}, which stack.yaml does not declare"
            ),
            Self::NoPods { from, selector } => {
                let selector: Vec<String> =
                    selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
                write!(
                    f,
                    "{from} selects {}, which matches no rendered pod",
                    selector.join(",")
                )
            }
            Self::ServiceWithoutPods { service } => {
                write!(f, "Service {service} selects no rendered pod")
            }
            Self::UnnamedTargetPort { service, target } => write!(
                f,
                "Service {service} targets port {target:?}, which its pods do not name"
            ),
            Self::NoHostPort { who, address } => {
                write!(f, "{who} dials {address:?}, which has no host:port")
            }
            Self::WrongNamespace {
                who,
                address,
                namespace,
                expected,
            } => write!(
                f,
                "{who} dials {address}, in namespace {namespace} instead of {expected}"
            ),
            Self::NoService {
                who,
                address,
                service,
            } => write!(
                f,
                "{who} dials {address}, but no Service {service} is rendered"
            ),
            Self::NoServicePort {
                who,
                address,
                service,
                port,
            } => write!(
                f,
                "{who} dials {address}, but Service {service} has no port {port}"
            ),
            Self::UndeclaredDial { who, address } => write!(
                f,
                "{who} dials {address}, which its component's entry does not declare \
                 (a template that writes an address of its own)"
            ),
            Self::NotDialled { who, address } => write!(
                f,
                "{who} should dial {address}, but its rendered config does not"
            ),
            Self::NotRendered { kind, name } => {
                write!(f, "{kind} {name} is declared but not rendered")
            }
            Self::UndeclaredConfigMap { name } => write!(
                f,
                "ConfigMap {name} is rendered, but no component declares it"
            ),
            Self::Kustomization { listed, files } => write!(
                f,
                "k8s/kustomization.yaml lists {listed:?}, but the manifests are {files:?}"
            ),
        }
    }
}
