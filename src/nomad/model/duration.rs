//! Nomad's wire form for durations: integer nanoseconds.

use std::fmt;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// A duration as Nomad's JSON API carries it: a signed count of nanoseconds (Go's
/// `time.Duration`).
///
/// It serializes as an integer, as Nomad does. It deserializes from an integer or, so that
/// hand-written pool templates stay readable, from a Go duration string such as `"10s"` or
/// `"1h30m"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct NomadDuration(pub i64);

impl NomadDuration {
    /// Builds a duration from whole seconds.
    pub const fn from_secs(secs: i64) -> Self {
        Self(secs * 1_000_000_000)
    }

    /// Converts to a `std::time::Duration`; negative values become zero.
    pub fn to_std(self) -> Duration {
        Duration::from_nanos(u64::try_from(self.0).unwrap_or(0))
    }

    /// Converts from a `std::time::Duration`, saturating at `i64::MAX` nanoseconds.
    pub fn from_std(duration: Duration) -> Self {
        Self(i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX))
    }
}

impl fmt::Display for NomadDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ns", self.0)
    }
}

impl Serialize for NomadDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_i64(self.0)
    }
}

impl<'de> Deserialize<'de> for NomadDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl de::Visitor<'_> for Visitor {
            type Value = NomadDuration;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("nanoseconds as an integer, or a duration string such as \"10s\"")
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(NomadDuration(v))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                i64::try_from(v)
                    .map(NomadDuration)
                    .map_err(|_| E::custom(format!("duration {v}ns is out of range")))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                parse_go_duration(v).map(NomadDuration).map_err(E::custom)
            }
        }

        deserializer.deserialize_any(Visitor)
    }
}

impl JsonSchema for NomadDuration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "NomadDuration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A duration: integer nanoseconds as in Nomad's JSON API, or a Go duration string such as \"10s\" or \"1h30m\".",
            "oneOf": [
                { "type": "integer" },
                { "type": "string", "pattern": "^-?([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$" }
            ]
        })
    }
}

/// Parses a Go duration string (`time.ParseDuration`): a sequence of decimal numbers with a
/// unit (`ns`, `us`, `µs`, `ms`, `s`, `m`, `h`), optionally signed. Returns nanoseconds.
pub fn parse_go_duration(text: &str) -> Result<i64, String> {
    let invalid = || {
        format!(
            "invalid duration {text:?}: expected a Go duration such as \"10s\", \"5m\" or \"1h30m\""
        )
    };
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }

    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        if number_len == 0 {
            return Err(invalid());
        }
        let number: f64 = rest[..number_len].parse().map_err(|_| invalid())?;
        rest = &rest[number_len..];

        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(invalid()),
        };
        rest = &rest[unit_len..];
        total += number * scale;
    }

    if total > i64::MAX as f64 {
        return Err(format!("duration {text:?} is out of range"));
    }
    let nanos = total.round() as i64;
    Ok(if negative { -nanos } else { nanos })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse_go_duration("10s"), Ok(10_000_000_000));
        assert_eq!(parse_go_duration("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(parse_go_duration("300000ms"), Ok(300_000_000_000));
        assert_eq!(parse_go_duration("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse_go_duration("-2m"), Ok(-120_000_000_000));
        assert_eq!(parse_go_duration("0"), Ok(0));
        assert!(parse_go_duration("10").is_err());
        assert!(parse_go_duration("soon").is_err());
        assert!(parse_go_duration("").is_err());
    }

    #[test]
    fn duration_reads_integer_and_string() {
        let from_int: NomadDuration = serde_json::from_str("30000000000").expect("integer");
        let from_text: NomadDuration = serde_json::from_str("\"30s\"").expect("string");
        assert_eq!(from_int, from_text);
        assert_eq!(
            serde_json::to_string(&from_text).expect("serialize"),
            "30000000000"
        );
    }
}
