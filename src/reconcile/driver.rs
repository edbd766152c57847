//! One reconcile of one pool from start to end: plan, apply with conflict retries, and build
//! the status to store, including the error when the writes failed.

use jiff::Timestamp;
use tracing::{info, warn};

use super::Error;
use super::executor::{Executor, apply};
use super::observed::Observed;
use super::plan::{Plan, PlanInput, plan_with};
use super::sizing::AutoscalerRecommendation;
use super::status::{Phase, Status};
use crate::spec::{Override, WorkerPool};

/// Everything one reconcile of a pool reads.
#[derive(Debug, Clone, Copy)]
pub struct ReconcileInput<'a> {
    pub pool: &'a WorkerPool,
    pub override_: Option<&'a Override>,
    pub autoscaler: Option<&'a AutoscalerRecommendation>,
    pub observed: &'a Observed,
    /// The stored status, if any.
    pub previous: Option<&'a Status>,
    /// The Consul `ModifyIndex` of the pool's key.
    pub observed_generation: u64,
    /// This controller instance, recorded as the status writer.
    pub written_by: &'a str,
    pub now: Timestamp,
}

/// The result of one reconcile.
#[derive(Debug)]
pub struct ReconcileOutcome {
    /// The plan that was carried out, or attempted when `error` is set.
    pub plan: Plan,
    /// The status to store.
    pub status: Status,
    /// Whether `status` differs from the stored one in more than timestamps, so it must be
    /// written.
    pub status_changed: bool,
    /// The failure, if the writes failed. The status then has phase `Error` and `lastError`.
    pub error: Option<Error>,
}

/// Plans the pool, performs the plan through `executor` (re-planning after conflicts), and
/// builds the status. A failed write is reported in the status, not only returned.
pub async fn reconcile_pool<E: Executor>(
    executor: &E,
    input: ReconcileInput<'_>,
) -> ReconcileOutcome {
    let plan_input = PlanInput {
        pool: input.pool,
        override_: input.override_,
        autoscaler: input.autoscaler,
        observed: input.observed,
        previous: input.previous,
        now: input.now,
    };
    let first = plan_with(&plan_input);

    let replan = |observed: &Observed| {
        plan_with(&PlanInput {
            observed,
            ..plan_input
        })
    };
    let (plan, error) = match apply(executor, first.clone(), input.observed.clone(), replan).await {
        Ok(plan) => {
            if !plan.actions.is_empty() {
                info!(job = %plan.job, actions = plan.actions.len(), "applied plan");
            }
            (plan, None)
        }
        Err(error) => {
            warn!(job = %first.job, %error, retryable = error.is_retryable(), "applying plan failed");
            (first, Some(error))
        }
    };

    let mut report = plan.status.clone();
    if let Some(error) = &error {
        report.phase = Phase::Error;
        report.last_error = Some(error.to_string());
    }

    let status = Status::next(
        &input.pool.metadata.name,
        input.previous,
        &report,
        input.observed_generation,
        input.written_by,
        input.now,
    );
    let status_changed = input
        .previous
        .is_none_or(|previous| status.differs_from(previous));

    ReconcileOutcome {
        plan,
        status,
        status_changed,
        error,
    }
}
