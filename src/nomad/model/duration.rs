//! Nomad's wire form for durations: integer nanoseconds.

use std::cell::Cell;
use std::fmt;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// A duration as Nomad's JSON API carries it: a signed count of nanoseconds (Go's
/// `time.Duration`).
///
/// It serializes as an integer, as Nomad does, except inside [`with_readable_durations`],
/// where it serializes as a Go duration string such as `"10m"` for YAML that people read. It
/// deserializes from an integer or, so that hand-written pool templates stay readable, from
/// a Go duration string such as `"10s"` or `"1h30m"`.
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

thread_local! {
    static READABLE: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with every [`NomadDuration`] serialized on this thread as a Go duration string
/// (`"10m"`) instead of integer nanoseconds. `serde::Serializer::is_human_readable` cannot
/// tell YAML for people from JSON for Nomad, because both serde_json and serde-saphyr return
/// true, so the YAML writer opts in here.
pub fn with_readable_durations<T>(f: impl FnOnce() -> T) -> T {
    /// Restores the previous setting even when `f` panics.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            READABLE.with(|readable| readable.set(self.0));
        }
    }

    let _restore = Restore(READABLE.with(|readable| readable.replace(true)));
    f()
}

impl Serialize for NomadDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if READABLE.with(Cell::get) {
            serializer.serialize_str(&format_go_duration(self.0))
        } else {
            serializer.serialize_i64(self.0)
        }
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
                { "type": "string", "pattern": GO_DURATION_PATTERN }
            ]
        })
    }
}

/// The JSON Schema pattern of a Go duration string: exactly the strings
/// [`parse_go_duration`] reads, except those beyond the range of `i64` nanoseconds.
pub const GO_DURATION_PATTERN: &str = "^[-+]?(0|([0-9]+(\\.[0-9]+)?(ns|us|µs|μs|ms|s|m|h))+)$";

/// Parses a Go duration string (`time.ParseDuration`): an optional sign, then `0` or a
/// sequence of decimal numbers, each with a unit (`ns`, `us`, `µs`, `ms`, `s`, `m`, `h`).
/// Returns nanoseconds. Unlike Go, a number needs digits on both sides of its `.`.
pub fn parse_go_duration(text: &str) -> Result<i64, String> {
    let invalid = || {
        format!(
            "invalid duration {text:?}: expected a Go duration such as \"10s\", \"5m\" or \"1h30m\""
        )
    };
    let out_of_range =
        || format!("duration {text:?} is out of range: Nomad durations must be below 292 years");
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

    let mut total: u128 = 0;
    while !rest.is_empty() {
        let whole_len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if whole_len == 0 {
            return Err(invalid());
        }
        let whole = &rest[..whole_len];
        rest = &rest[whole_len..];
        let mut fraction = "";
        if let Some(after_dot) = rest.strip_prefix('.') {
            let fraction_len = after_dot
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(after_dot.len());
            if fraction_len == 0 {
                return Err(invalid());
            }
            fraction = &after_dot[..fraction_len];
            rest = &after_dot[fraction_len..];
        }

        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale: u128 = match &rest[..unit_len] {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(invalid()),
        };
        rest = &rest[unit_len..];

        // Digits beyond what i64 nanoseconds can hold are out of range, not invalid.
        let whole: u128 = whole.parse().map_err(|_| out_of_range())?;
        let mut part = whole.checked_mul(scale).ok_or_else(out_of_range)?;
        // Fraction digits below a nanosecond are dropped, as Go does.
        let fraction = &fraction[..fraction.len().min(18)];
        if !fraction.is_empty() {
            let digits = u32::try_from(fraction.len()).map_err(|_| invalid())?;
            let value: u128 = fraction.parse().map_err(|_| invalid())?;
            part += value * scale / 10u128.pow(digits);
        }
        total = total.checked_add(part).ok_or_else(out_of_range)?;
    }

    let limit = if negative {
        i64::MIN.unsigned_abs() as u128
    } else {
        i64::MAX as u128
    };
    if total > limit {
        return Err(out_of_range());
    }
    let nanos = i128::try_from(total).map_err(|_| out_of_range())?;
    let signed = if negative { -nanos } else { nanos };
    i64::try_from(signed).map_err(|_| out_of_range())
}

/// Formats nanoseconds as a Go duration string that [`parse_go_duration`] reads back to the
/// same value: `10m`, `1h30m`, `1s500ms`, `-2m`, or `0s`.
pub fn format_go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".to_owned();
    }
    let mut text = String::new();
    if nanos < 0 {
        text.push('-');
    }
    let mut rest = u128::from(nanos.unsigned_abs());
    let units: [(&str, u128); 6] = [
        ("h", 3_600_000_000_000),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
        ("ns", 1),
    ];
    for (name, scale) in units {
        if rest < scale {
            continue;
        }
        text.push_str(&format!("{}{name}", rest / scale));
        rest %= scale;
    }
    text
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
    fn go_duration_range_and_grammar() {
        assert_eq!(parse_go_duration("2562047h47m16.854775807s"), Ok(i64::MAX));
        let huge = parse_go_duration("99999999999999999999h").expect_err("too large");
        assert!(huge.contains("out of range"), "{huge}");
        assert!(parse_go_duration("1.s").is_err());
        assert!(parse_go_duration(".5s").is_err());
        assert!(parse_go_duration("2 minutes").is_err());
        assert_eq!(parse_go_duration("1.000000001s"), Ok(1_000_000_001));
        let pattern = regex::Regex::new(GO_DURATION_PATTERN).expect("valid pattern");
        for text in ["10s", "1h30m", "+5s", "-2m", "0", "1.5s", "3µs", "3μs"] {
            assert!(pattern.is_match(text), "pattern rejects {text}");
            assert!(parse_go_duration(text).is_ok(), "parser rejects {text}");
        }
        for text in ["1.s", ".5s", "2 minutes", "10", "", "1d", "PT1M"] {
            assert!(!pattern.is_match(text), "pattern accepts {text}");
            assert!(parse_go_duration(text).is_err(), "parser accepts {text}");
        }
    }

    #[test]
    fn go_duration_format_round_trips() {
        for nanos in [
            0,
            600_000_000_000,
            5_400_000_000_000,
            1_500_000_000,
            -120_000_000_000,
            1,
            i64::MAX,
            i64::MIN + 1,
        ] {
            let text = format_go_duration(nanos);
            assert_eq!(parse_go_duration(&text), Ok(nanos), "{text}");
        }
        assert_eq!(format_go_duration(600_000_000_000), "10m");
        assert_eq!(format_go_duration(5_400_000_000_000), "1h30m");
    }

    #[test]
    fn readable_durations_only_inside_scope() {
        let ten_minutes = NomadDuration::from_secs(600);
        let readable = with_readable_durations(|| serde_json::to_string(&ten_minutes));
        assert_eq!(readable.expect("serialize"), "\"10m\"");
        assert_eq!(
            serde_json::to_string(&ten_minutes).expect("serialize"),
            "600000000000"
        );
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
