//! The writes a rollout makes, the executor trait that performs them, and [`apply`].

use std::future::Future;

use tracing::{debug, info};

use crate::nomad::Job;
use crate::reconcile::{ExecError, Executor, JobKey};

/// One write a rollout step requests, applied in order.
#[derive(Debug, Clone, PartialEq)]
pub enum RolloutAction {
    /// Register the prefetch job (`enforce_index` 0 creates it, otherwise the live prefetch
    /// job's `JobModifyIndex`).
    RegisterPrefetch { job: Job, enforce_index: u64 },
    /// Stop the prefetch job once it finished or the rollout failed.
    StopPrefetch,
    /// Re-register the pool's job with per-zone versions, counts and canaries.
    RegisterJob { job: Job, enforce_index: u64 },
    /// Set one group's count between deployments (surge up or down).
    Scale {
        group: String,
        count: u32,
        message: String,
    },
    /// Promote the canaries of a deployment (`All: true`).
    PromoteDeployment { deployment_id: String },
    /// Mark a deployment failed, which stops its placements.
    FailDeployment { deployment_id: String },
    /// Pause (`pause: true`) or resume a deployment.
    PauseDeployment { deployment_id: String, pause: bool },
}

/// The Nomad writes a rollout needs beyond [`Executor`]'s. The Nomad client implements it;
/// tests use fakes.
pub trait RolloutExecutor: Executor {
    /// Promotes every canary of the deployment (`POST /v1/deployment/promote/:id`).
    fn promote_deployment(
        &self,
        deployment_id: &str,
    ) -> impl Future<Output = Result<(), ExecError>> + Send;

    /// Marks the deployment failed (`POST /v1/deployment/fail/:id`).
    fn fail_deployment(
        &self,
        deployment_id: &str,
    ) -> impl Future<Output = Result<(), ExecError>> + Send;

    /// Pauses or resumes the deployment (`POST /v1/deployment/pause/:id`).
    fn pause_deployment(
        &self,
        deployment_id: &str,
        pause: bool,
    ) -> impl Future<Output = Result<(), ExecError>> + Send;
}

/// Performs `actions` in order on the pool's job `job` and its prefetch job `prefetch`.
///
/// A scale that Nomad rejects because a deployment is active ends the step without an error
/// and without side effects: the next step sees the deployment and waits for it. Any other
/// error stops at the failing action and is returned, so the caller retries the whole step
/// after re-reading the cluster (every action is idempotent or checked by the next step).
pub async fn apply<E: RolloutExecutor>(
    executor: &E,
    job: &JobKey,
    prefetch: &JobKey,
    actions: &[RolloutAction],
) -> Result<(), ExecError> {
    for action in actions {
        debug!(job = %job, ?action, "applying rollout action");
        let result = match action {
            RolloutAction::RegisterPrefetch { job, enforce_index } => {
                executor.register_job(job, *enforce_index, false).await
            }
            RolloutAction::StopPrefetch => executor.stop_job(prefetch).await,
            RolloutAction::RegisterJob { job, enforce_index } => {
                executor.register_job(job, *enforce_index, false).await
            }
            RolloutAction::Scale {
                group,
                count,
                message,
            } => executor.scale(job, group, *count, message).await,
            RolloutAction::PromoteDeployment { deployment_id } => {
                executor.promote_deployment(deployment_id).await
            }
            RolloutAction::FailDeployment { deployment_id } => {
                executor.fail_deployment(deployment_id).await
            }
            RolloutAction::PauseDeployment {
                deployment_id,
                pause,
            } => executor.pause_deployment(deployment_id, *pause).await,
        };

        match result {
            Ok(()) => {}
            Err(ExecError::DeploymentActive) => {
                info!(job = %job, ?action, "scale blocked by an active deployment, waiting for it");
                return Ok(());
            }
            Err(ExecError::NotFound) if matches!(action, RolloutAction::StopPrefetch) => {
                debug!(job = %prefetch, "prefetch job already gone");
            }
            Err(error) => return Err(error),
        }
    }
    Ok(())
}
