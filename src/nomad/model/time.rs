//! Nomad's two timestamp forms on the wire.
//!
//! Fields named `*Time` (`CreateTime`, `ModifyTime`, `SubmitTime`, task event `Time`) are int64
//! Unix nanoseconds: [`UnixNanos`]. Fields of Go type `time.Time` (`DeploymentStatus.Timestamp`,
//! `RequireProgressBy`, `DrainStrategy.ForceDeadline`, `TaskState.StartedAt`) are RFC 3339
//! strings, modelled as [`jiff::Timestamp`]. Go's zero time is `0001-01-01T00:00:00Z`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A point in time as int64 nanoseconds since the Unix epoch.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct UnixNanos(pub i64);

impl UnixNanos {
    /// Converts to a timestamp. Every `i64` nanosecond count is in `jiff`'s range.
    pub fn to_timestamp(self) -> jiff::Timestamp {
        jiff::Timestamp::from_nanosecond(i128::from(self.0))
            .expect("every i64 nanosecond count is within jiff's timestamp range")
    }

    /// Converts from a timestamp, saturating outside the `i64` nanosecond range (years 1677–2262).
    pub fn from_timestamp(timestamp: jiff::Timestamp) -> Self {
        let nanos = timestamp.as_nanosecond();
        Self(i64::try_from(nanos).unwrap_or(if nanos < 0 { i64::MIN } else { i64::MAX }))
    }
}

impl fmt::Display for UnixNanos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_timestamp())
    }
}

/// Reports whether a `time.Time` value is Go's zero time, which Nomad sends for "never".
pub fn is_go_zero_time(timestamp: &jiff::Timestamp) -> bool {
    timestamp.as_second() == GO_ZERO_TIME_SECONDS
}

/// `0001-01-01T00:00:00Z` in seconds since the Unix epoch.
const GO_ZERO_TIME_SECONDS: i64 = -62_135_596_800;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_nanos_converts() {
        let time = UnixNanos(1_636_017_249_798_459_000);
        assert_eq!(
            time.to_timestamp().to_string(),
            "2021-11-04T09:14:09.798459Z"
        );
        assert_eq!(UnixNanos::from_timestamp(time.to_timestamp()), time);
    }

    #[test]
    fn go_zero_time_detected() {
        let zero: jiff::Timestamp = "0001-01-01T00:00:00Z".parse().expect("parse");
        assert!(is_go_zero_time(&zero));
        let real: jiff::Timestamp = "2021-03-31T12:12:20Z".parse().expect("parse");
        assert!(!is_go_zero_time(&real));
    }
}
