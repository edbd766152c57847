//! The emulator's simulated clock: wall time since start, multiplied by the speed-up.

use std::time::{Duration, Instant};

/// Simulated time. At speed 60, one wall second is one simulated minute, so a six-minute image
/// pull takes six wall seconds. Every timestamp and timer in the emulator reads this clock.
#[derive(Debug, Clone)]
pub struct SimClock {
    origin_wall: Instant,
    origin_unix_ns: i64,
    speed: f64,
}

impl SimClock {
    /// Starts a clock at the current Unix time that runs `speed` times faster than wall time.
    pub fn start(speed: f64) -> Self {
        let origin_unix_ns = jiff::Timestamp::now().as_nanosecond();
        Self {
            origin_wall: Instant::now(),
            origin_unix_ns: i64::try_from(origin_unix_ns).unwrap_or(i64::MAX),
            speed,
        }
    }

    /// Returns the simulated time in Unix nanoseconds.
    pub fn now_ns(&self) -> i64 {
        let elapsed = self.origin_wall.elapsed().as_secs_f64() * self.speed * 1e9;
        self.origin_unix_ns.saturating_add(elapsed as i64)
    }

    /// Returns the speed-up factor.
    pub fn speed(&self) -> f64 {
        self.speed
    }

    /// Converts a simulated duration into the wall time it takes at this speed.
    pub fn to_wall(&self, simulated: Duration) -> Duration {
        Duration::from_secs_f64(simulated.as_secs_f64() / self.speed)
    }
}

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
    fn wall_time_scales_by_speed() {
        let clock = SimClock::start(60.0);
        assert_eq!(
            clock.to_wall(Duration::from_secs(360)),
            Duration::from_secs(6)
        );
    }

    #[test]
    fn rfc3339_formats_unix_nanoseconds() {
        assert_eq!(rfc3339(1_000_000_000), "1970-01-01T00:00:01Z");
    }
}
