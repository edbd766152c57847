//! The controller's clock: wall time for production and tests, or a sped-up clock for
//! `steward dev`.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use jiff::Timestamp;

/// A source of the current time and of sleeps. Durations given to [`Clock::sleep`] and
/// [`Clock::to_wall`] are in the clock's own time, which runs faster than wall time on a
/// sped-up clock.
pub trait Clock: Send + Sync + 'static {
    /// Returns the current time.
    fn now(&self) -> Timestamp;

    /// Converts a span of clock time into the wall time it takes to pass.
    fn to_wall(&self, duration: Duration) -> Duration {
        duration
    }

    /// Sleeps for `duration` of clock time.
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(tokio::time::sleep(self.to_wall(duration)))
    }
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that runs `speed` times faster than wall time from a starting point, as the
/// emulators in `steward dev` do.
#[derive(Debug, Clone, Copy)]
pub struct ScaledClock {
    start: Timestamp,
    started: std::time::Instant,
    speed: f64,
}

impl ScaledClock {
    /// Starts a clock at the current wall time that runs `speed` times faster.
    ///
    /// # Panics
    /// Panics when `speed` is not a finite positive number.
    pub fn new(speed: f64) -> Self {
        assert!(
            speed.is_finite() && speed > 0.0,
            "clock speed must be a finite positive number, got {speed}"
        );
        Self {
            start: Timestamp::now(),
            started: std::time::Instant::now(),
            speed,
        }
    }
}

impl Clock for ScaledClock {
    fn now(&self) -> Timestamp {
        let elapsed = self.started.elapsed().mul_f64(self.speed);
        let span = jiff::SignedDuration::try_from(elapsed).unwrap_or(jiff::SignedDuration::MAX);
        self.start.saturating_add(span).unwrap_or(Timestamp::MAX)
    }

    fn to_wall(&self, duration: Duration) -> Duration {
        duration.div_f64(self.speed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_clock_shortens_wall_time() {
        let clock = ScaledClock::new(60.0);
        assert_eq!(
            clock.to_wall(Duration::from_secs(60)),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn scaled_clock_runs_ahead_of_wall_time() {
        let clock = ScaledClock::new(1000.0);
        std::thread::sleep(Duration::from_millis(20));
        let ahead = clock.now().duration_since(Timestamp::now());
        assert!(
            ahead >= jiff::SignedDuration::from_secs(10),
            "ahead by {ahead:?}"
        );
    }
}
