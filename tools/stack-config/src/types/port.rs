//! TCP ports.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// A TCP port, 1-65535.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Port(u16);

impl Port {
    /// Wraps `port`, rejecting 0 and anything above 65535.
    pub fn new(port: u64) -> Result<Self, String> {
        match u16::try_from(port) {
            Ok(port) if port != 0 => Ok(Self(port)),
            _ => Err(format!("{port} is not a valid port: use 1-65535")),
        }
    }

    /// The port number.
    pub fn get(self) -> u16 {
        self.0
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::new(u64::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for Port {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Port".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "integer",
            "minimum": 1,
            "maximum": 65535,
            "description": "A TCP port, 1-65535."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Port;

    #[test]
    fn range() {
        assert_eq!(Port::new(1).map(Port::get), Ok(1));
        assert_eq!(Port::new(65535).map(Port::get), Ok(65535));
        assert_eq!(
            Port::new(0),
            Err("0 is not a valid port: use 1-65535".to_owned())
        );
        assert_eq!(
            Port::new(70000),
            Err("70000 is not a valid port: use 1-65535".to_owned())
        );
    }
}
