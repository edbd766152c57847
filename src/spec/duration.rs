//! Human-written durations in objects: `20m`, `90s`, `1h30m`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration as StdDuration;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// A non-negative duration written as `20m`, `90s`, `1h30m` or `1h 30m` (jiff's "friendly"
/// format; ISO 8601 such as `PT20M` is accepted too). It serializes in the compact form, `20m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub StdDuration);

impl Duration {
    /// Builds a duration from whole seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Self(StdDuration::from_secs(secs))
    }

    /// Builds a duration from whole minutes.
    pub const fn from_mins(mins: u64) -> Self {
        Self(StdDuration::from_secs(mins * 60))
    }

    /// Returns the standard library duration.
    pub const fn get(self) -> StdDuration {
        self.0
    }

    /// Returns the length in whole seconds.
    pub const fn as_secs(self) -> u64 {
        self.0.as_secs()
    }
}

impl From<StdDuration> for Duration {
    fn from(value: StdDuration) -> Self {
        Self(value)
    }
}

impl FromStr for Duration {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || {
            format!(
                "invalid duration {text:?}: write a duration such as \"90s\", \"20m\" or \"1h30m\""
            )
        };
        let signed = jiff::SignedDuration::from_str(text.trim()).map_err(|_| invalid())?;
        if signed.is_negative() {
            return Err(format!(
                "invalid duration {text:?}: a duration cannot be negative"
            ));
        }
        StdDuration::try_from(signed)
            .map(Self)
            .map_err(|_| invalid())
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match jiff::SignedDuration::try_from(self.0) {
            Ok(signed) => write!(f, "{signed:#}"),
            Err(_) => write!(f, "{}s", self.0.as_secs()),
        }
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
        text.parse().map_err(de::Error::custom)
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A duration such as \"90s\", \"20m\" or \"1h30m\".",
            "type": "string",
            "pattern": "^\\s*(P.*|([0-9]+(\\.[0-9]+)?\\s*(ns|us|µs|ms|s|sec|secs|second|seconds|m|min|mins|minute|minutes|h|hr|hrs|hour|hours|d|day|days)\\s*)+)$"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_parses_and_prints_compact() {
        let cases = [
            ("20m", 1200),
            ("90s", 90),
            ("1h30m", 5400),
            ("1h 30m", 5400),
            ("PT20M", 1200),
        ];
        for (text, secs) in cases {
            let parsed: Duration = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(parsed.as_secs(), secs, "{text}");
        }
        assert_eq!(Duration::from_mins(20).to_string(), "20m");
        assert_eq!(Duration::from_secs(5400).to_string(), "1h 30m");
    }

    #[test]
    fn duration_rejects_garbage_and_negative() {
        assert!("soon".parse::<Duration>().is_err());
        assert!("-5m".parse::<Duration>().is_err());
        assert!("".parse::<Duration>().is_err());
    }
}
