//! Golden-first rollouts of a new version: prefetch, golden worker, soak, roll and rollback.
//!
//! [`step`] is pure. It reads the pool, the observed cluster, the prefetch job, the stored
//! [`RolloutState`], the control command and the latest analysis sample. It returns the
//! [`RolloutAction`]s to perform, the next state and the status to report. [`apply`] performs the actions through a [`RolloutExecutor`].
//! [`RolloutPhase`] draws the state machine.
//!
//! While [`RolloutStep::is_active`] holds, the rollout owns the pool's job: the regular
//! planner must neither register nor scale it, and sizing changes wait (reported as
//! [`RolloutStep::pending_counts`]) until the rollout ends.

pub mod analysis;
pub mod control;
pub mod executor;
mod live;
pub mod observe;
pub mod prefetch;
pub mod state;
pub mod step;

pub use analysis::{evaluate as evaluate_analysis, http_client as analysis_http_client};
pub use control::{Control, ControlAction, control_key};
pub use executor::{RolloutAction, RolloutExecutor, apply};
pub use live::group_version;
pub use observe::{AnalysisSample, DeploymentView, PrefetchAllocation, PrefetchObserved};
pub use prefetch::{prefetch_key, render_prefetch_job};
pub use state::{
    GoldenWorker, NodePrefetch, PauseState, PullState, RolloutPhase, RolloutState, ZoneProgress,
};
pub use step::{RolloutStep, StepInput, step};

#[cfg(test)]
mod tests;
