//! Shared pieces of the controller tests that run on the Nomad emulator's simulated time.
//! A controller reads the emulator's own clock (`RunningNomad::shared().clock`), so both
//! agree on time.

use steward::reconcile::Status;
use steward::rollout::RolloutState;

/// Returns the rollout state stored in a pool's status, if any.
pub fn rollout_state(status: &Status) -> Option<RolloutState> {
    RolloutState::from_status(status).expect("stored rollout state parses")
}
