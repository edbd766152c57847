//! The emulator's simulated clock, shared with the rest of `steward dev`, and the form of
//! Nomad's timestamps.

pub use crate::sim::clock::SimClock;

/// Formats Unix nanoseconds as RFC 3339, the form of Nomad's `time.Time` fields.
pub fn rfc3339(unix_ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(unix_ns))
        .map(|timestamp| timestamp.to_string())
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_unix_nanoseconds() {
        assert_eq!(rfc3339(1_000_000_000), "1970-01-01T00:00:01Z");
    }
}
