//! Reading floating-point numbers exactly.

use std::fmt;

use serde::Deserializer;
use serde::de::{self, Visitor};

/// Deserializes an `f64` from a number or from text, parsing the text as `f64`.
///
/// Settings arrive as text (see `source`); figment's own text-to-number conversion goes
/// through `f32` first, which would turn `0.2` into `0.20000000298023224`.
pub(crate) fn float<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    struct FloatVisitor;
    impl Visitor<'_> for FloatVisitor {
        type Value = f64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a number")
        }
        fn visit_str<E: de::Error>(self, text: &str) -> Result<f64, E> {
            match text.trim().parse::<f64>() {
                Ok(number) if number.is_finite() => Ok(number),
                _ => Err(E::invalid_type(de::Unexpected::Str(text), &self)),
            }
        }
        fn visit_f64<E: de::Error>(self, number: f64) -> Result<f64, E> {
            Ok(number)
        }
        fn visit_u64<E: de::Error>(self, number: u64) -> Result<f64, E> {
            Ok(number as f64)
        }
        fn visit_i64<E: de::Error>(self, number: i64) -> Result<f64, E> {
            Ok(number as f64)
        }
    }
    deserializer.deserialize_any(FloatVisitor)
}
