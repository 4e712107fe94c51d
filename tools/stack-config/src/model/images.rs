//! Container images.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::types::{DnsSubdomain, ImageRepository, ImageTag, PinnedTag, Registry};

/// Where the project's own images (server and client) live, and how pods pull images.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Images {
    /// Registry the server and client images are pushed to and pulled from. Change this one
    /// line to retarget every image reference, `just build` and `just push`.
    pub registry: Registry,
    /// Tag of the server and client images.
    pub tag: ImageTag,
    /// Repository of the server image, under `registry`.
    pub server: ImageRepository,
    /// Repository of the client image, under `registry`.
    pub client: ImageRepository,
    /// When to pull images.
    pub pull_policy: PullPolicy,
    /// Secrets (of type `kubernetes.io/dockerconfigjson`) used to pull images.
    pub pull_secrets: Vec<DnsSubdomain>,
    /// Registry that mirrors third-party images (Redis and the observability stack). Unset
    /// pulls them from where their `repository` says.
    pub mirror: Option<Registry>,
}

impl Default for Images {
    fn default() -> Self {
        Self {
            registry: Registry::new("localhost:5000").expect("valid default"),
            tag: ImageTag::new(env!("CARGO_PKG_VERSION")).expect("valid default"),
            server: ImageRepository::new("taskmanager-server").expect("valid default"),
            client: ImageRepository::new("taskmanager-client").expect("valid default"),
            pull_policy: PullPolicy::IfNotPresent,
            pull_secrets: Vec::new(),
            mirror: None,
        }
    }
}

impl Images {
    /// `<registry>/<repository>:<tag>` for one of the project's own images.
    pub fn reference(&self, repository: &ImageRepository) -> String {
        format!("{}/{}:{}", self.registry, repository, self.tag)
    }

    /// The reference of a third-party image, through `mirror` when one is set.
    pub fn third_party(&self, image: &ComponentImage) -> String {
        match &self.mirror {
            Some(mirror) => format!("{mirror}/{}:{}", image.repository, image.tag),
            None => format!("{}:{}", image.repository, image.tag),
        }
    }
}

/// Kubernetes image pull policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum PullPolicy {
    /// Pull on every pod start.
    Always,
    /// Pull only when the node does not have the image.
    IfNotPresent,
    /// Never pull; the image must be on the node.
    Never,
}

/// A third-party image: repository and tag.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComponentImage {
    /// Image repository, for example `grafana/loki`.
    pub repository: ImageRepository,
    /// Image tag, within the version line the templates render this component for
    /// (`stackctl check` refuses others); `@sha256:<digest>` may follow it, and is kept.
    pub tag: PinnedTag,
}

impl ComponentImage {
    /// An image from a repository and tag known to be valid.
    pub(crate) fn known(repository: &str, tag: &str) -> Self {
        Self {
            repository: ImageRepository::new(repository).expect("valid default"),
            tag: PinnedTag::new(tag).expect("valid default"),
        }
    }
}
