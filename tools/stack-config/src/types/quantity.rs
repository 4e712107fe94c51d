//! Kubernetes resource quantities (`100m`, `0.5`, `128Mi`, `1Gi`).

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A Kubernetes resource quantity: a non-negative decimal number with an optional suffix,
/// binary (`Ki`, `Mi`, `Gi`, `Ti`, `Pi`, `Ei`), decimal (`m`, `k`, `M`, `G`, `T`, `P`, `E`)
/// or an exponent (`1e3`). CPU in cores (`100m` = 0.1 core), memory and storage in bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct Quantity {
    text: String,
    value: f64,
}

const SUFFIXES: [(&str, f64); 13] = [
    ("Ki", 1024.0),
    ("Mi", 1_048_576.0),
    ("Gi", 1_073_741_824.0),
    ("Ti", 1_099_511_627_776.0),
    ("Pi", 1_125_899_906_842_624.0),
    ("Ei", 1_152_921_504_606_846_976.0),
    ("m", 1e-3),
    ("k", 1e3),
    ("M", 1e6),
    ("G", 1e9),
    ("T", 1e12),
    ("P", 1e15),
    ("E", 1e18),
];

impl Quantity {
    /// Parses a quantity.
    pub fn parse(text: &str) -> Result<Self, String> {
        let invalid = || {
            format!(
                "{text:?} is not a resource quantity: use a non-negative number with an optional \
                 suffix such as 100m, 0.5, 128Mi or 1Gi"
            )
        };
        let number_len = text
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'.')
            .count();
        let (number, suffix) = text.split_at(number_len);
        let digits = number.bytes().filter(u8::is_ascii_digit).count();
        if digits == 0 || number.bytes().filter(|b| *b == b'.').count() > 1 {
            return Err(invalid());
        }
        let base: f64 = number.parse().map_err(|_| invalid())?;
        let multiplier = if suffix.is_empty() {
            1.0
        } else if let Some((_, factor)) = SUFFIXES.iter().find(|(name, _)| *name == suffix) {
            *factor
        } else if let Some(exponent) = suffix.strip_prefix(['e', 'E']) {
            let exponent: i32 = exponent.parse().map_err(|_| invalid())?;
            10f64.powi(exponent)
        } else {
            return Err(invalid());
        };
        Ok(Self {
            text: text.to_owned(),
            value: base * multiplier,
        })
    }

    /// The value in base units (cores, bytes).
    pub fn value(&self) -> f64 {
        self.value
    }

    /// The quantity as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct QuantityVisitor;
        impl Visitor<'_> for QuantityVisitor {
            type Value = Quantity;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a resource quantity such as 100m, 0.5, 128Mi or 1Gi")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Quantity, E> {
                Quantity::parse(text).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, number: u64) -> Result<Quantity, E> {
                self.visit_str(&number.to_string())
            }
            fn visit_i64<E: de::Error>(self, number: i64) -> Result<Quantity, E> {
                self.visit_str(&number.to_string())
            }
            fn visit_f64<E: de::Error>(self, number: f64) -> Result<Quantity, E> {
                self.visit_str(&number.to_string())
            }
        }
        deserializer.deserialize_any(QuantityVisitor)
    }
}

impl schemars::JsonSchema for Quantity {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Quantity".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": ["string", "number"],
            "pattern": "^([0-9]+(\\.[0-9]*)?|\\.[0-9]+)([eE][-+]?[0-9]+|[KMGTPE]i|[mkMGTPE])?$",
            "minimum": 0,
            "description": "A Kubernetes resource quantity: 100m or 0.5 (CPU cores), 128Mi or 1Gi (bytes)."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Quantity;

    #[test]
    fn values() {
        for (text, value) in [
            ("100m", 0.1),
            ("0.5", 0.5),
            ("2", 2.0),
            ("128Mi", 134_217_728.0),
            ("1Gi", 1_073_741_824.0),
            ("1k", 1000.0),
            ("1e3", 1000.0),
            (".5", 0.5),
        ] {
            let quantity = Quantity::parse(text).expect(text);
            assert!((quantity.value() - value).abs() < 1e-9, "{text}");
            assert_eq!(quantity.to_string(), text);
        }
    }

    #[test]
    fn rejects_malformed() {
        for bad in ["", "-1", "1.2.3", "128MB", "Mi", "1 Gi", "abc", "."] {
            let error = Quantity::parse(bad).expect_err(bad);
            assert!(error.contains("is not a resource quantity"), "{error}");
        }
    }
}
