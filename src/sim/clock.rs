//! Simulated time for `steward dev` and the emulators: wall-clock time sped up by a constant
//! factor.

use std::time::{Duration, Instant};

/// A clock that runs `speed` times faster than wall-clock time from a chosen origin.
///
/// At real instant `origin_real + d` it reads `origin + d × speed`. With `speed = 1` it is the
/// wall clock. At speed 60, one wall second is one simulated minute, so a six-minute image pull
/// takes six wall seconds. Copies share the origin, so every component with a copy agrees on
/// the time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimClock {
    origin_real: Instant,
    /// Unix time in nanoseconds at `origin_real`.
    origin_unix_ns: i64,
    speed: f64,
}

impl SimClock {
    /// Starts a clock at the current wall-clock time.
    ///
    /// `speed` must be finite and positive; a non-positive value is treated as 1.
    pub fn starting_now(speed: f64) -> Self {
        let now = jiff::Timestamp::now().as_nanosecond();
        Self::at_unix_ns(i64::try_from(now).unwrap_or(i64::MAX), speed)
    }

    /// Starts a clock that reads `origin_unix` (seconds) now.
    pub fn new(origin_unix: f64, speed: f64) -> Self {
        // Saturating float-to-int cast: an absurd origin gives the end of the range.
        Self::at_unix_ns((origin_unix * 1e9) as i64, speed)
    }

    fn at_unix_ns(origin_unix_ns: i64, speed: f64) -> Self {
        let speed = if speed.is_finite() && speed > 0.0 {
            speed
        } else {
            1.0
        };
        Self {
            origin_real: Instant::now(),
            origin_unix_ns,
            speed,
        }
    }

    /// Returns how many simulated seconds pass per real second.
    pub fn speed(&self) -> f64 {
        self.speed
    }

    /// Returns the simulated time in Unix nanoseconds.
    pub fn now_ns(&self) -> i64 {
        let elapsed = self.origin_real.elapsed().as_secs_f64() * self.speed * 1e9;
        self.origin_unix_ns.saturating_add(elapsed as i64)
    }

    /// Returns the simulated Unix time in seconds.
    pub fn now_unix(&self) -> f64 {
        self.origin_unix_ns as f64 / 1e9 + self.origin_real.elapsed().as_secs_f64() * self.speed
    }

    /// Returns the simulated Unix time in whole seconds.
    pub fn now_secs(&self) -> i64 {
        self.now_unix().floor() as i64
    }

    /// Converts a simulated duration into the wall time it takes at this speed.
    pub fn to_wall(&self, simulated: Duration) -> Duration {
        simulated.div_f64(self.speed)
    }
}

impl SimClock {
    /// Returns the clock's reading together with the wall time it was taken at, from which
    /// another process can follow the clock.
    pub fn anchor(&self) -> ClockAnchor {
        let wall = jiff::Timestamp::now().as_nanosecond();
        ClockAnchor {
            wall_unix_ns: i64::try_from(wall).unwrap_or(i64::MAX),
            sim_unix_ns: self.now_ns(),
            speed: self.speed,
        }
    }
}

/// A [`SimClock`] reading and the wall time it was taken at, stored as JSON so that another
/// process (the CLI next to `steward dev`) computes the same simulated time.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClockAnchor {
    /// Wall-clock Unix time of the reading, in nanoseconds.
    pub wall_unix_ns: i64,
    /// Simulated Unix time at that moment, in nanoseconds.
    pub sim_unix_ns: i64,
    /// Simulated seconds per wall second.
    pub speed: f64,
}

impl ClockAnchor {
    /// Returns the simulated time now, by the wall clock of this process.
    pub fn now(&self) -> jiff::Timestamp {
        let wall_now = i64::try_from(jiff::Timestamp::now().as_nanosecond()).unwrap_or(i64::MAX);
        let elapsed = (wall_now.saturating_sub(self.wall_unix_ns)) as f64 * self.speed;
        let sim = self.sim_unix_ns.saturating_add(elapsed as i64);
        jiff::Timestamp::from_nanosecond(i128::from(sim)).unwrap_or(jiff::Timestamp::MAX)
    }
}

impl crate::runtime::Clock for SimClock {
    fn now(&self) -> jiff::Timestamp {
        jiff::Timestamp::from_nanosecond(i128::from(self.now_ns())).unwrap_or(jiff::Timestamp::MAX)
    }

    fn to_wall(&self, duration: Duration) -> Duration {
        SimClock::to_wall(self, duration)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::Clock;

    #[test]
    fn sim_clock_scales_durations() {
        let clock = SimClock::new(1_000.0, 60.0);
        assert_eq!(
            clock.to_wall(Duration::from_secs(360)),
            Duration::from_secs(6)
        );
        assert!(clock.now_unix() >= 1_000.0);
        assert!(clock.now_ns() >= 1_000_000_000_000);
        assert_eq!(SimClock::new(0.0, -3.0).speed(), 1.0);
    }

    #[test]
    fn anchor_follows_the_clock() {
        let clock = SimClock::new(1_000_000.0, 600.0);
        let anchor = clock.anchor();
        std::thread::sleep(Duration::from_millis(10));

        let followed = anchor.now().as_nanosecond() as f64 / 1e9;
        let direct = clock.now_unix();
        // Both read at nearly the same wall instant; 600× turns 50 ms of skew into 30 s.
        assert!((followed - direct).abs() < 30.0, "{followed} vs {direct}");
        assert!(followed >= 1_000_006.0, "10 ms at 600× is 6 s: {followed}");
    }

    #[test]
    fn sim_clock_runs_ahead_of_wall_time() {
        let clock = SimClock::starting_now(1000.0);
        std::thread::sleep(Duration::from_millis(20));
        let ahead = clock.now().duration_since(jiff::Timestamp::now());
        assert!(
            ahead >= jiff::SignedDuration::from_secs(10),
            "ahead by {ahead:?}"
        );
    }
}
