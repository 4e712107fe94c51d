//! Kubernetes resource quantities (`100m`, `0.5`, `128Mi`, `1Gi`).

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A Kubernetes resource quantity: a non-negative decimal number with an optional suffix,
/// binary (`Ki`, `Mi`, `Gi`, `Ti`, `Pi`, `Ei`), decimal (`n`, `u`, `m`, `k`, `M`, `G`, `T`,
/// `P`, `E`) or an exponent (`1e3`): the grammar Kubernetes parses. CPU in cores (`100m` = 0.1 core), memory and storage in bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct Quantity {
    text: String,
    value: f64,
}

const SUFFIXES: [(&str, f64); 15] = [
    ("Ki", 1024.0),
    ("Mi", 1_048_576.0),
    ("Gi", 1_073_741_824.0),
    ("Ti", 1_099_511_627_776.0),
    ("Pi", 1_125_899_906_842_624.0),
    ("Ei", 1_152_921_504_606_846_976.0),
    ("n", 1e-9),
    ("u", 1e-6),
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
                "{} is not a resource quantity: use a non-negative number with an optional \
                 suffix such as 100m, 0.5, 128Mi or 1Gi",
                crate::escape::quoted(text)
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
        let value = base * multiplier;
        if !value.is_finite() {
            return Err(format!(
                "{} is too large a resource quantity",
                crate::escape::quoted(text)
            ));
        }
        Ok(Self {
            text: text.to_owned(),
            value,
        })
    }

    /// True when the quantity is a whole number of base units: `1.5Gi`, `1.3M`, `1000m` and
    /// `1e3` are, `100m`, `0.5` and `1.1Ki` (1126.4) are not. Exact: it is worked out on the
    /// decimal text, not on the `f64`.
    pub fn is_whole(&self) -> bool {
        let number_len = self
            .text
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'.')
            .count();
        let (number, suffix) = self.text.split_at(number_len);
        let (int, fraction) = number.split_once('.').unwrap_or((number, ""));
        let fraction = fraction.trim_end_matches('0');
        let joined = format!("{int}{fraction}");
        let digits = joined.trim_start_matches('0');
        if digits.is_empty() {
            return true;
        }
        let places = u32::try_from(fraction.len()).unwrap_or(u32::MAX);
        let binary = match suffix {
            "Ki" => 10,
            "Mi" => 20,
            "Gi" => 30,
            "Ti" => 40,
            "Pi" => 50,
            "Ei" => 60,
            _ => 0,
        };
        if binary > 0 {
            // digits / 10^places * 2^binary is whole when 5^places divides the digits and
            // 2^places divides digits * 2^binary.
            if places == 0 {
                return true;
            }
            let (Some(five), Ok(n)) = (5u128.checked_pow(places), digits.parse::<u128>()) else {
                return false;
            };
            let twos = places.saturating_sub(binary);
            return n % five == 0 && (twos == 0 || (twos < 128 && n % (1u128 << twos) == 0));
        }
        let exponent: i64 = match suffix {
            "" => 0,
            "n" => -9,
            "u" => -6,
            "m" => -3,
            "k" => 3,
            "M" => 6,
            "G" => 9,
            "T" => 12,
            "P" => 15,
            "E" => 18,
            exponent => exponent[1..].parse().unwrap_or(0),
        };
        let scale = exponent - i64::from(places);
        let trailing_zeros = digits.len() - digits.trim_end_matches('0').len();
        scale >= 0 || i64::try_from(trailing_zeros).unwrap_or(i64::MAX) >= -scale
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
            "pattern": "^([0-9]+(\\.[0-9]*)?|\\.[0-9]+)([eE][-+]?[0-9]+|[KMGTPE]i|[numkMGTPE])?$",
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
            ("5u", 5e-6),
            ("250n", 2.5e-7),
            (".5", 0.5),
        ] {
            let quantity = Quantity::parse(text).expect(text);
            assert!((quantity.value() - value).abs() < 1e-9, "{text}");
            assert_eq!(quantity.to_string(), text);
        }
    }

    #[test]
    fn whole_units() {
        for whole in [
            "0", "0.0", "1", "1.5Gi", "0.5Ki", "1.3M", "1000m", "1e3", "128Mi", "2.25Ki", "1.0",
        ] {
            assert!(Quantity::parse(whole).expect(whole).is_whole(), "{whole}");
        }
        for fractional in ["100m", "0.5", "1.1Ki", "1e-3", "1.5", "1n", "999u", "0.1Gi"] {
            assert!(
                !Quantity::parse(fractional).expect(fractional).is_whole(),
                "{fractional}"
            );
        }
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "", "-1", "1.2.3", "128MB", "Mi", "1 Gi", "abc", ".", "1K", "1e",
        ] {
            let error = Quantity::parse(bad).expect_err(bad);
            assert!(error.contains("is not a resource quantity"), "{error}");
        }
        assert_eq!(
            Quantity::parse("1e400"),
            Err("\"1e400\" is too large a resource quantity".to_owned())
        );
    }
}
