//! Human-written durations in objects: `20m`, `90s`, `1h30m`, `1d`.
//!
//! One grammar, [`duration_pattern`], is both the JSON Schema pattern and the parser's
//! first check, so the schema accepts exactly the strings the parser accepts.

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration as StdDuration;

use regex::Regex;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// A non-negative duration written as a number and a unit per part, larger units first and
/// each unit at most once: `20m`, `90s`, `1h30m`, `1h 30m`, `1.5h` or `1d`. A day is 24
/// hours. ISO 8601 such as `PT20M` or `P1DT2H` is accepted too, but without years, months
/// or weeks, whose length varies. It serializes in the compact form, `1h30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub StdDuration);

/// The units of the friendly form in the required order, with their spellings and length in
/// nanoseconds.
const UNITS: [(&[&str], u128); 7] = [
    (&["days", "day", "d"], 86_400_000_000_000),
    (&["hours", "hour", "hrs", "hr", "h"], 3_600_000_000_000),
    (&["minutes", "minute", "mins", "min", "m"], 60_000_000_000),
    (&["seconds", "second", "secs", "sec", "s"], 1_000_000_000),
    (&["ms"], 1_000_000),
    (&["us", "µs"], 1_000),
    (&["ns"], 1),
];

/// One number of a duration: up to 9 digits and an optional fraction of up to 9 digits. The
/// limit keeps every duration the grammar accepts within `std::time::Duration`.
const NUMBER: &str = "[0-9]{1,9}(?:\\.[0-9]{1,9})?";

/// Returns the regular expression (JSON Schema dialect, also valid for the `regex` crate)
/// that matches every valid duration and nothing else.
pub(crate) fn duration_pattern() -> String {
    // Friendly form: one alternative per first unit, so at least one part is present and
    // units appear in order, each at most once.
    let parts: Vec<String> = UNITS
        .iter()
        .map(|(names, _)| format!("{NUMBER}\\s*(?:{})\\s*", names.join("|")))
        .collect();
    let friendly: Vec<String> = (0..parts.len())
        .map(|first| {
            let rest: String = parts[first + 1..]
                .iter()
                .map(|part| format!("(?:{part})?"))
                .collect();
            format!("{}{rest}", parts[first])
        })
        .collect();

    // ISO 8601: days, then T and hours, minutes, seconds; T needs at least one of them.
    let seconds = format!("{NUMBER}S");
    let time = format!(
        "T(?:[0-9]{{1,9}}H(?:[0-9]{{1,9}}M)?(?:{seconds})?|[0-9]{{1,9}}M(?:{seconds})?|{seconds})"
    );
    let iso = format!("P(?:[0-9]{{1,9}}D(?:{time})?|{time})");

    format!("^\\s*(?:{}|{iso})$", friendly.join("|"))
}

static PATTERN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&duration_pattern()).expect("the duration pattern is a valid regex")
});

static PART: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new("([0-9]+)(?:\\.([0-9]+))?\\s*([a-zA-Zµ]+)")
        .expect("the part pattern is a valid regex")
});

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

/// Returns the length in nanoseconds of a unit as written in the friendly form or ISO 8601.
fn unit_nanos(unit: &str, iso: bool) -> Option<u128> {
    if iso {
        return match unit {
            "D" => Some(UNITS[0].1),
            "H" => Some(UNITS[1].1),
            "M" => Some(UNITS[2].1),
            "S" => Some(UNITS[3].1),
            _ => None,
        };
    }
    UNITS
        .iter()
        .find(|(names, _)| names.contains(&unit))
        .map(|(_, nanos)| *nanos)
}

impl FromStr for Duration {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || {
            format!(
                "invalid duration {text:?}: write a number and a unit per part, larger units \
                 first, such as \"90s\", \"20m\", \"1h30m\" or \"1d\""
            )
        };
        let trimmed = text.trim();
        if trimmed.starts_with('-') {
            return Err(format!(
                "invalid duration {text:?}: a duration cannot be negative"
            ));
        }
        if !PATTERN.is_match(text) {
            return Err(invalid());
        }

        // The pattern admits only what is summed below, with at most 9 digits per number, so
        // the total stays far below the range of `std::time::Duration`.
        let iso = trimmed.starts_with('P');
        let body = if iso { &trimmed[1..] } else { trimmed };
        let mut nanos: u128 = 0;
        for part in PART.captures_iter(&body.replace('T', "")) {
            let whole: u128 = part[1].parse().map_err(|_| invalid())?;
            let unit = unit_nanos(&part[3], iso).ok_or_else(invalid)?;
            nanos += whole * unit;
            if let Some(fraction) = part.get(2) {
                let digits = u32::try_from(fraction.as_str().len()).map_err(|_| invalid())?;
                let value: u128 = fraction.as_str().parse().map_err(|_| invalid())?;
                nanos += value * unit / 10u128.pow(digits);
            }
        }
        let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| invalid())?;
        let subsec = u32::try_from(nanos % 1_000_000_000).map_err(|_| invalid())?;
        Ok(Self(StdDuration::new(secs, subsec)))
    }
}

impl fmt::Display for Duration {
    /// Formats the compact form that [`FromStr`] reads back: `1h30m`, `90ms`, `0s`. Hours
    /// are not folded into days unless they exceed what one number may hold.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0.as_nanos();
        if rest == 0 {
            return f.write_str("0s");
        }
        let hour = UNITS[1].1;
        let use_days = rest / hour > 999_999_999;
        let units: [(&str, u128); 7] = [
            ("d", if use_days { UNITS[0].1 } else { 0 }),
            ("h", hour),
            ("m", UNITS[2].1),
            ("s", UNITS[3].1),
            ("ms", UNITS[4].1),
            ("us", UNITS[5].1),
            ("ns", UNITS[6].1),
        ];
        for (name, nanos) in units {
            if nanos == 0 || rest < nanos {
                continue;
            }
            write!(f, "{}{name}", rest / nanos)?;
            rest %= nanos;
        }
        Ok(())
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
            "description": "A duration such as \"90s\", \"20m\", \"1h30m\" or \"1d\" (larger units first, each at most once), or ISO 8601 such as \"PT20M\" without years, months or weeks.",
            "type": "string",
            "pattern": duration_pattern()
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
        assert_eq!(Duration::from_secs(5400).to_string(), "1h30m");
    }

    #[test]
    fn duration_accepts_days_and_fractions() {
        let cases = [
            ("1d", 86_400),
            ("2 days", 172_800),
            ("1d12h", 129_600),
            ("P1D", 86_400),
            ("P1DT2H", 93_600),
            ("PT1.5S", 1),
            ("1.5h", 5400),
        ];
        for (text, secs) in cases {
            let parsed: Duration = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(parsed.as_secs(), secs, "{text}");
        }
        let half: Duration = "0.5s".parse().expect("a fraction");
        assert_eq!(half.get(), StdDuration::from_millis(500));
    }

    #[test]
    fn pattern_matches_exactly_what_parses() {
        let pattern = Regex::new(&duration_pattern()).expect("valid pattern");
        let accepted = [
            "20m",
            "90s",
            "1h30m",
            "1h 30m",
            " 1h ",
            "1d",
            "1 day",
            "PT20M",
            "P1DT1H",
            "1.5h",
            "250ms",
            "1s500ms",
            "0s",
            "999999999h",
        ];
        let rejected = [
            "",
            "soon",
            "-5m",
            "P1Y",
            "P1M",
            "P1W",
            "PT",
            "P",
            "1",
            "30m1h",
            "1h1h",
            "1 hour day",
            "99999999999999999999h",
            "1.h",
            "1.1234567891s",
            "1h,30m",
            "PT1D",
            "P1D2H",
        ];
        for text in accepted {
            assert!(pattern.is_match(text), "pattern rejects {text:?}");
            assert!(text.parse::<Duration>().is_ok(), "parser rejects {text:?}");
        }
        for text in rejected {
            assert!(!pattern.is_match(text), "pattern accepts {text:?}");
            assert!(text.parse::<Duration>().is_err(), "parser accepts {text:?}");
        }
    }

    #[test]
    fn display_round_trips_compact() {
        for text in ["1h30m", "20m", "1m30s", "1s500ms", "36h", "0s", "1h0m1s"] {
            let parsed: Duration = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            let printed = parsed.to_string();
            assert!(!printed.contains(' '), "{printed}");
            let again: Duration = printed.parse().unwrap_or_else(|e| panic!("{printed}: {e}"));
            assert_eq!(again, parsed, "{text} printed as {printed}");
        }
        assert_eq!(Duration::from_secs(90).to_string(), "1m30s");
        assert_eq!(Duration::from_secs(36 * 3600).to_string(), "36h");
    }

    #[test]
    fn duration_rejects_garbage_and_negative() {
        assert!("soon".parse::<Duration>().is_err());
        assert!("-5m".parse::<Duration>().is_err());
        assert!("".parse::<Duration>().is_err());
    }
}
