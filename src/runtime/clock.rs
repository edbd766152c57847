//! The controller's clock: wall time for production and tests, or a sped-up clock
//! ([`crate::sim::clock::SimClock`]) for `steward dev`.

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
