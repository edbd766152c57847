//! Reconcile: turns one WorkerPool and the observed cluster into actions on Nomad and a status.
//!
//! [`plan::plan_with`] is pure: it reads a pool, its override, the autoscaler's
//! recommendation and the [`observed::Observed`] cluster, and returns the writes to make and
//! the status to report. [`executor::apply`] performs a plan through an [`executor::Executor`]
//! and re-plans when Nomad reports a conflicting job modify index. [`driver::reconcile_pool`]
//! runs both and builds the status to store.

pub mod driver;
pub mod executor;
pub mod format;
pub mod observed;
pub mod plan;
pub mod render;
pub mod sizing;
pub mod split;
pub mod status;

pub use driver::{ReconcileInput, ReconcileOutcome, reconcile_pool};
pub use executor::{ExecError, Executor, apply};
pub use observed::*;
pub use plan::{Action, Plan, PlanInput, plan, plan_delete, plan_with};
pub use render::{GroupVersion, render_job_versions};
pub use render::{JobKey, render_job, template_differences};
pub use sizing::{
    AutoscalerRecommendation, AutoscalerStatus, OverrideReport, OverrideState, SizingDecision,
    SizingSource,
};
pub use status::{Condition, ConditionStatus, Decision, Phase, Status, StatusReport};

/// Job meta key that marks a job as owned by a pool; its value is the pool's name.
pub const META_POOL: &str = "steward.pool";

/// Job and task meta key that records `spec.version`.
pub const META_VERSION: &str = "steward.version";

/// A pool that cannot be rendered into a Nomad job. Permanent: the pool spec must change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("pool {pool} has no zones: add at least one entry to spec.zones")]
    NoZones { pool: String },

    #[error("pool {pool} has no tasks in spec.template: add at least one task to Tasks")]
    NoTasks { pool: String },

    #[error("zone {zone} of pool {pool} must set exactly one of datacenter and constraint")]
    ZoneSelector { pool: String, zone: String },

    #[error("pool {pool} has {zones} zones but {counts} counts were given")]
    CountsMismatch {
        pool: String,
        zones: usize,
        counts: usize,
    },
}

/// A reconcile that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The pool cannot be rendered. Permanent until the pool changes.
    #[error(transparent)]
    Render(#[from] RenderError),

    /// A write to Nomad failed. [`ExecError::is_retryable`] decides whether to retry.
    #[error("job {job}: {source}")]
    Nomad {
        job: JobKey,
        #[source]
        source: ExecError,
    },

    /// The job changed under every one of `attempts` consecutive registers. Retryable: the
    /// work queue backs off and tries again.
    #[error("job {job}: job modify index changed under {attempts} consecutive attempts")]
    ConflictRetriesExhausted { job: JobKey, attempts: u32 },
}

impl Error {
    /// Returns whether retrying the reconcile later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Render(_) => false,
            Self::Nomad { source, .. } => source.is_retryable(),
            Self::ConflictRetriesExhausted { .. } => true,
        }
    }

    /// Returns a short label for metrics: `render`, `conflict`, or the [`ExecError::kind`]
    /// of a failed write.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Render(_) => "render",
            Self::Nomad { source, .. } => source.kind(),
            Self::ConflictRetriesExhausted { .. } => "conflict",
        }
    }
}
