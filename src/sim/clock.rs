//! Simulated time for `steward dev`: wall-clock time sped up by a constant factor.

use std::time::{Duration, Instant};

/// A clock that runs `speed` times faster than wall-clock time from a chosen origin.
///
/// At real instant `origin_real + d` it reads `origin_unix + d × speed`. With `speed = 1` it is
/// the wall clock. Cloning shares the origin, so every component of one `steward dev` agrees on
/// the time.
#[derive(Debug, Clone, Copy)]
pub struct SimClock {
    origin_real: Instant,
    /// Unix time in seconds at `origin_real`.
    origin_unix: f64,
    speed: f64,
}

impl SimClock {
    /// Starts a clock at the current wall-clock time.
    ///
    /// `speed` must be finite and positive; a non-positive value is treated as 1.
    pub fn starting_now(speed: f64) -> Self {
        let origin_unix = jiff::Timestamp::now().as_millisecond() as f64 / 1000.0;
        Self::new(origin_unix, speed)
    }

    /// Starts a clock that reads `origin_unix` (seconds) now.
    pub fn new(origin_unix: f64, speed: f64) -> Self {
        let speed = if speed.is_finite() && speed > 0.0 {
            speed
        } else {
            1.0
        };
        Self {
            origin_real: Instant::now(),
            origin_unix,
            speed,
        }
    }

    /// Returns how many simulated seconds pass per real second.
    pub fn speed(&self) -> f64 {
        self.speed
    }

    /// Returns the simulated Unix time in seconds.
    pub fn now_unix(&self) -> f64 {
        self.origin_unix + self.origin_real.elapsed().as_secs_f64() * self.speed
    }

    /// Returns the simulated Unix time in whole seconds.
    pub fn now_secs(&self) -> i64 {
        self.now_unix().floor() as i64
    }

    /// Converts a simulated duration into the real time it takes.
    pub fn real_duration(&self, simulated: Duration) -> Duration {
        simulated.div_f64(self.speed)
    }
}

impl crate::runtime::Clock for SimClock {
    fn now(&self) -> jiff::Timestamp {
        let millis = (self.now_unix() * 1000.0).round() as i64;
        jiff::Timestamp::from_millisecond(millis).unwrap_or(jiff::Timestamp::MAX)
    }

    fn to_wall(&self, duration: Duration) -> Duration {
        self.real_duration(duration)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sim_clock_scales_durations() {
        let clock = SimClock::new(1_000.0, 60.0);
        assert_eq!(
            clock.real_duration(Duration::from_secs(360)),
            Duration::from_secs(6)
        );
        assert!(clock.now_unix() >= 1_000.0);
        assert_eq!(SimClock::new(0.0, -3.0).speed(), 1.0);
    }
}
