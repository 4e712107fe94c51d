//! Durations written the way operators write them: `250ms`, `30s`, `5m`, `1h30m`, `7d`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A length of time: one or more `<integer><unit>` parts with units `ms`, `s`, `m`, `h`, `d`,
/// largest first (`1h30m`, `250ms`, `7d`). `0s` is a valid duration; rules that need a
/// positive one say so.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(std::time::Duration);

const UNITS: [(&str, u64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

impl Duration {
    /// A duration of `secs` seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Self(std::time::Duration::from_secs(secs))
    }

    /// A duration of `millis` milliseconds.
    pub const fn from_millis(millis: u64) -> Self {
        Self(std::time::Duration::from_millis(millis))
    }

    /// The duration as a `std::time::Duration`.
    pub fn get(self) -> std::time::Duration {
        self.0
    }

    /// True for a zero duration.
    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }

    /// Parses `1h30m`-style text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let invalid = || {
            format!(
                "{text:?} is not a duration: use <integer><unit> parts with units ms, s, m, h, d, \
                 largest first (for example 250ms, 30s, 1h30m)"
            )
        };
        if text.is_empty() {
            return Err(invalid());
        }
        let mut rest = text;
        let mut total: u64 = 0;
        let mut last_unit = usize::MAX;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(invalid());
            }
            let number: u64 = rest[..digits].parse().map_err(|_| invalid())?;
            rest = &rest[digits..];
            // `ms` must be tried before `m`.
            let (index, (unit, millis)) = UNITS
                .iter()
                .enumerate()
                .filter(|(_, (unit, _))| rest.starts_with(unit))
                .max_by_key(|(_, (unit, _))| unit.len())
                .ok_or_else(invalid)?;
            if last_unit != usize::MAX && index <= last_unit {
                return Err(invalid());
            }
            last_unit = index;
            rest = &rest[unit.len()..];
            total = number
                .checked_mul(*millis)
                .and_then(|part| total.checked_add(part))
                .ok_or_else(|| format!("{text:?} is too long a duration"))?;
        }
        Ok(Self::from_millis(total))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut millis = u64::try_from(self.0.as_millis()).unwrap_or(u64::MAX);
        if millis == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in UNITS {
            if millis >= size {
                write!(f, "{}{unit}", millis / size)?;
                millis %= size;
            }
        }
        Ok(())
    }
}

impl std::str::FromStr for Duration {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        Self::parse(text)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for Duration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?([0-9]+ms)?$",
            "minLength": 2,
            "description": "A duration: <integer><unit> parts with units ms, s, m, h, d, largest first (250ms, 30s, 1h30m, 7d)."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Duration;

    #[test]
    fn parses_and_prints() {
        for (text, millis, canonical) in [
            ("250ms", 250, "250ms"),
            ("30s", 30_000, "30s"),
            ("90s", 90_000, "1m30s"),
            ("1h30m", 5_400_000, "1h30m"),
            ("7d", 604_800_000, "7d"),
            ("0s", 0, "0s"),
            ("1m1s1ms", 61_001, "1m1s1ms"),
        ] {
            let duration = Duration::parse(text).expect(text);
            assert_eq!(duration, Duration::from_millis(millis), "{text}");
            assert_eq!(duration.to_string(), canonical, "{text}");
        }
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "", "5", "s", "5 s", "-5s", "1.5s", "5sec", "30m1h", "1s1s", "5S",
        ] {
            let error = Duration::parse(bad).expect_err(bad);
            assert!(error.contains("is not a duration"), "{bad}: {error}");
        }
        assert!(Duration::parse("99999999999999999999d").is_err());
    }
}
