//! Numbers with a range: fractions, positive counts, Redis database numbers.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use super::refusal;

/// A fraction from 0 to 1 (a ratio, a rate, a sampling probability).
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd, Serialize)]
#[serde(transparent)]
pub struct Ratio(f64);

impl Ratio {
    /// Wraps `value`, refusing anything outside 0-1 (and NaN).
    pub fn new(value: f64) -> Result<Self, String> {
        if (0.0..=1.0).contains(&value) {
            Ok(Self(value))
        } else {
            Err(format!("must be a fraction from 0 to 1 (got {value})"))
        }
    }

    /// A fraction known to be in range (a default).
    pub(crate) const fn known(value: f64) -> Self {
        assert!(value >= 0.0 && value <= 1.0);
        Self(value)
    }

    /// The fraction.
    pub fn get(self) -> f64 {
        self.0
    }
}

impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de> Deserialize<'de> for Ratio {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = super::float(deserializer)?;
        Self::new(value)
            .map_err(|error| serde::de::Error::custom(refusal::encode("ratio-range", error)))
    }
}

impl schemars::JsonSchema for Ratio {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Ratio".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "number",
            "minimum": 0,
            "maximum": 1,
            "description": "A fraction from 0 to 1."
        })
    }
}

/// Declares a positive integer newtype over `$int`.
macro_rules! positive {
    ($(#[$meta:meta])* $name:ident, $int:ty, $description:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name($int);

        impl $name {
            /// Wraps `value`, refusing 0.
            pub fn new(value: $int) -> Result<Self, String> {
                if value == 0 {
                    Err("must be at least 1 (got 0)".to_owned())
                } else {
                    Ok(Self(value))
                }
            }

            /// A count known to be positive (a default).
            pub(crate) const fn known(value: $int) -> Self {
                assert!(value != 0);
                Self(value)
            }

            /// The number.
            pub fn get(self) -> $int {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = <$int>::deserialize(deserializer)?;
                Self::new(value)
                    .map_err(|error| serde::de::Error::custom(refusal::encode("positive", error)))
            }
        }

        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({
                    "type": "integer",
                    "minimum": 1,
                    "maximum": <$int>::MAX,
                    "description": $description
                })
            }
        }
    };
}

positive!(
    /// A count of at least 1 that fits 32 bits (workers, attempts, bytes, streams, ...).
    Count,
    u32,
    "A count, at least 1."
);
positive!(
    /// A number of tasks, at least 1.
    TaskCount,
    u64,
    "A number of tasks, at least 1."
);

/// A Redis logical database: 0-15, the databases a default Redis has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct RedisDb(u8);

impl RedisDb {
    /// Databases a default Redis has (`databases 16`).
    pub const COUNT: u8 = 16;

    /// Wraps `db`, refusing 16 and above.
    pub fn new(db: u64) -> Result<Self, String> {
        match u8::try_from(db) {
            Ok(db) if db < Self::COUNT => Ok(Self(db)),
            _ => Err(format!("Redis has databases 0 to 15 (got {db})")),
        }
    }

    /// A database known to exist (a default).
    pub(crate) const fn known(db: u8) -> Self {
        assert!(db < Self::COUNT);
        Self(db)
    }

    /// The database number.
    pub fn get(self) -> u8 {
        self.0
    }
}

impl fmt::Display for RedisDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de> Deserialize<'de> for RedisDb {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let db = u64::deserialize(deserializer)?;
        Self::new(db).map_err(|error| serde::de::Error::custom(refusal::encode("redis-db", error)))
    }
}

impl schemars::JsonSchema for RedisDb {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "RedisDb".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "integer",
            "minimum": 0,
            "maximum": 15,
            "description": "A Redis logical database, 0-15."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(Ratio::new(0.0).map(Ratio::get), Ok(0.0));
        assert_eq!(Ratio::new(1.0).map(Ratio::get), Ok(1.0));
        assert_eq!(
            Ratio::new(1.5),
            Err("must be a fraction from 0 to 1 (got 1.5)".to_owned())
        );
        assert!(Ratio::new(f64::NAN).is_err());
        assert_eq!(Count::new(1).map(Count::get), Ok(1));
        assert_eq!(Count::new(0), Err("must be at least 1 (got 0)".to_owned()));
        assert_eq!(TaskCount::new(u64::MAX).map(TaskCount::get), Ok(u64::MAX));
        assert_eq!(RedisDb::new(15).map(RedisDb::get), Ok(15));
        assert_eq!(
            RedisDb::new(16),
            Err("Redis has databases 0 to 15 (got 16)".to_owned())
        );
        assert!(RedisDb::new(300).is_err());
    }
}
