//! Newtypes for the values `stack.yaml` holds: names, ports, durations, image references,
//! resource quantities, hosts, secrets and their keys, fractions and counts.
//!
//! Each type checks its value when it is deserialized, so a `Stack` never holds a malformed
//! one, and each describes itself in the JSON Schema (pattern and description), so editors
//! flag the same mistakes.

mod duration;
mod float;
mod host;
mod image;
mod name;
mod number;
mod port;
mod quantity;
pub(crate) mod refusal;
mod secret;
mod text;
mod url;

pub use duration::Duration;
pub(crate) use float::float;
pub use host::{Host, HostPort};
pub(crate) use image::check_reference;
pub use image::{ImageRepository, ImageTag, PinnedTag, Registry};
pub use name::{DnsLabel, DnsSubdomain, KeyPrefix};
pub use number::{Count, Ratio, RedisDb, TaskCount};
pub use port::Port;
pub use quantity::Quantity;
pub use secret::Secret;
pub use text::SecretKey;
pub(crate) use text::check_text;
pub(crate) use url::check_http_url;

/// Declares a string newtype that is checked by `$check` (a `fn(&str) -> Result<(), String>`)
/// when it is created or deserialized, and described in the JSON Schema. With `rule`, the
/// loader reports a refused value under that rule (see `refusal`).
macro_rules! checked_string {
    (
        $(#[$meta:meta])*
        $name:ident, check = $check:path $(, rule = $rule:literal)?, schema = { $($schema:tt)* }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Checks `value` and wraps it.
            pub fn new(value: impl Into<String>) -> Result<Self, String> {
                let value = value.into();
                $check(&value)
                    .map_err(|rule| format!("{} {rule}", $crate::escape::quoted(&value)))?;
                Ok(Self(value))
            }

            /// The value as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(value: &str) -> Result<Self, String> {
                Self::new(value)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = String::deserialize(deserializer)?;
                Self::new(value).map_err(|error| {
                    $( let error = $crate::types::refusal::encode($rule, error); )?
                    serde::de::Error::custom(error)
                })
            }
        }

        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({ "type": "string", $($schema)* })
            }
        }
    };
}
pub(crate) use checked_string;
