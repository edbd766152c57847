//! Shared pieces of the controller tests that run on the Nomad emulator's simulated time.

use std::time::Duration;

use jiff::Timestamp;
use steward::reconcile::Status;
use steward::rollout::RolloutState;
use steward::runtime::Clock;
use steward::sim::nomad::clock::SimClock;

/// The Nomad emulator's simulated clock, so controllers and the emulator agree on time.
pub struct EmulatorClock {
    pub clock: SimClock,
    /// Simulated seconds per wall second, as the emulator was started with.
    pub speed: f64,
}

impl Clock for EmulatorClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_nanosecond(i128::from(self.clock.now_ns())).expect("valid time")
    }

    fn to_wall(&self, duration: Duration) -> Duration {
        duration.div_f64(self.speed)
    }
}

/// Returns the rollout state stored in a pool's status, if any.
pub fn rollout_state(status: &Status) -> Option<RolloutState> {
    RolloutState::from_status(status).expect("stored rollout state parses")
}
