//! Compute resources of a container.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::types::Quantity;

/// Requests and limits of a container.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// What the scheduler reserves for the container.
    pub requests: ResourceList,
    /// The most the container may use. Each limit must be at least its request.
    pub limits: ResourceList,
}

/// CPU and memory amounts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceList {
    /// CPU in cores: `100m` is a tenth of a core.
    pub cpu: Quantity,
    /// Memory in bytes: `128Mi`, `1Gi`.
    pub memory: Quantity,
}

impl Resources {
    /// Resources from quantities known to be valid.
    pub(crate) fn known(requests: (&str, &str), limits: (&str, &str)) -> Self {
        let list = |(cpu, memory): (&str, &str)| ResourceList {
            cpu: Quantity::parse(cpu).expect("valid default"),
            memory: Quantity::parse(memory).expect("valid default"),
        };
        Self {
            requests: list(requests),
            limits: list(limits),
        }
    }
}
