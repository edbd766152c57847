//! The writes a plan needs, as a trait the Nomad client implements, and [`apply`], which
//! performs a plan and re-plans on a job modify index conflict.

use std::future::Future;

use tracing::{debug, info, warn};

use super::Error;
use super::observed::{Observed, ObservedJob};
use super::plan::{Action, Plan};
use super::render::JobKey;
use crate::nomad::Job;

/// Maximum re-plans after a conflicting job modify index. Each conflict means another writer
/// changed the job in between. Three in a row point at a writer that fights Steward, and the
/// work queue's backoff handles that better than a tight loop.
pub const MAX_CONFLICT_RETRIES: u32 = 3;

/// A failed write to Nomad.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    /// The job's `JobModifyIndex` is no longer `expected` (Nomad returns 500 with
    /// "Enforcing job modify index"). Retryable after re-reading the job.
    #[error("job modify index {expected} is stale: {message}")]
    Conflict { expected: u64, message: String },

    /// Nomad refused a scale because a deployment is active. Retryable once it ends.
    #[error("scaling blocked by an active deployment")]
    DeploymentActive,

    /// The job does not exist. Retryable: the next reconcile creates it.
    #[error("job not found")]
    NotFound,

    /// Nomad could not be reached or returned 5xx. Retryable.
    #[error("Nomad unavailable: {0}")]
    Unavailable(String),

    /// Nomad rejected the request (4xx other than the above). Permanent until the pool or
    /// the cluster changes.
    #[error("Nomad rejected the request: {0}")]
    Rejected(String),

    /// This controller no longer holds the leader lock, so it must not write. Retryable: the
    /// leader, this one or another, reconciles the pool.
    #[error("not the leader: the write was not sent")]
    NotLeader,
}

impl ExecError {
    /// Returns whether retrying later may succeed.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, Self::Rejected(_))
    }

    /// Returns a short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Conflict { .. } => "conflict",
            Self::DeploymentActive => "deployment_active",
            Self::NotFound => "not_found",
            Self::Unavailable(_) => "unavailable",
            Self::Rejected(_) => "rejected",
            Self::NotLeader => "not_leader",
        }
    }
}

/// The Nomad operations a plan needs. The Nomad client implements it; tests use fakes.
///
/// Implementations map Nomad's responses onto [`ExecError`]: a 500 whose body contains
/// "Enforcing job modify index" is [`ExecError::Conflict`], and a 400 with "job scaling
/// blocked due to active deployment" is [`ExecError::DeploymentActive`].
pub trait Executor: Send + Sync {
    /// Reads the job, `None` when it does not exist.
    fn get_job(
        &self,
        job: &JobKey,
    ) -> impl Future<Output = Result<Option<ObservedJob>, ExecError>> + Send;

    /// Registers `job` with `EnforceIndex` set and `JobModifyIndex = enforce_index` (0 to
    /// create only).
    fn register_job(
        &self,
        job: &Job,
        enforce_index: u64,
        preserve_counts: bool,
    ) -> impl Future<Output = Result<(), ExecError>> + Send;

    /// Sets one group's count through the scale endpoint with `message` as the event text.
    fn scale(
        &self,
        job: &JobKey,
        group: &str,
        count: u32,
        message: &str,
    ) -> impl Future<Output = Result<(), ExecError>> + Send;

    /// Records a scaling event with `message` for one group through the scale endpoint
    /// without a count, which Nomad accepts during a deployment. The count stays as it is.
    fn record_scaling_event(
        &self,
        job: &JobKey,
        group: &str,
        message: &str,
    ) -> impl Future<Output = Result<(), ExecError>> + Send;

    /// Stops the job without purging it.
    fn stop_job(&self, job: &JobKey) -> impl Future<Output = Result<(), ExecError>> + Send;
}

/// Performs `plan`'s actions in order. On a conflicting job modify index, re-reads the job,
/// calls `replan` with the refreshed observation, and performs the new plan, at most
/// [`MAX_CONFLICT_RETRIES`] times. Returns the plan that was carried out.
///
/// Nomad blocks scales while a deployment runs. A blocked scale and the scales after it are
/// set in one register of the live job instead (see [`register_remaining_counts`]). A
/// scale of a service job opens a deployment itself, so a plan that scales two zones needs
/// this for its second call whenever the scheduler is quicker. A plan whose remaining
/// actions are not all scales ends without an error, and the next reconcile goes on.
pub async fn apply<E, F>(
    executor: &E,
    mut plan: Plan,
    mut observed: Observed,
    mut replan: F,
) -> Result<Plan, Error>
where
    E: Executor,
    F: FnMut(&Observed) -> Plan,
{
    let mut attempt = 0;
    loop {
        match perform(executor, &plan).await {
            Ok(()) => return Ok(plan),

            Err(ExecError::Conflict { expected, message }) => {
                attempt += 1;
                // Expected now and then: another writer, or this controller's own create
                // that the cache has not seen yet. Retries that run out are the error.
                info!(job = %plan.job, expected, attempt, %message, "job changed concurrently, re-planning");
                if attempt > MAX_CONFLICT_RETRIES {
                    return Err(Error::ConflictRetriesExhausted {
                        job: plan.job,
                        attempts: attempt,
                    });
                }

                observed.job =
                    executor
                        .get_job(&plan.job)
                        .await
                        .map_err(|source| Error::Nomad {
                            job: plan.job.clone(),
                            source,
                        })?;
                plan = replan(&observed);
            }

            Err(ExecError::DeploymentActive) => {
                info!(job = %plan.job, "scale blocked by an active deployment, deferred");
                return Ok(plan);
            }

            Err(source) => {
                return Err(Error::Nomad {
                    job: plan.job,
                    source,
                });
            }
        }
    }
}

async fn perform<E: Executor>(executor: &E, plan: &Plan) -> Result<(), ExecError> {
    for (position, action) in plan.actions.iter().enumerate() {
        debug!(job = %plan.job, ?action, "applying");
        match action {
            Action::CreateJob(job) => executor.register_job(job, 0, false).await?,
            Action::RegisterJob {
                job,
                enforce_index,
                preserve_counts,
            } => {
                executor
                    .register_job(job, *enforce_index, *preserve_counts)
                    .await?
            }
            Action::Scale {
                group,
                count,
                message,
            } => match executor.scale(&plan.job, group, *count, message).await {
                Ok(()) => {}
                Err(ExecError::DeploymentActive) => {
                    return register_remaining_counts(executor, plan, &plan.actions[position..])
                        .await;
                }
                Err(error) => return Err(error),
            },
            Action::StopJob => executor.stop_job(&plan.job).await?,
        }
    }
    Ok(())
}

/// Sets the counts of the scale actions in `remaining` with one register of the live job,
/// after Nomad blocked the first of them because a deployment runs: one that an earlier
/// scale of the same plan opened, or one that was open before.
///
/// Nomad accepts a register during a deployment: it cancels that deployment and opens one
/// for the new version, which places the workers of every changed group. The register uses
/// `EnforceIndex` on the job just read, so a concurrent edit is a conflict, and the caller
/// re-plans. A register leaves no scaling event, so each group then gets an event without a
/// count that carries the scale's message. When `remaining` holds anything but scales, the
/// plan stops as deferred, as for any blocked scale.
async fn register_remaining_counts<E: Executor>(
    executor: &E,
    plan: &Plan,
    remaining: &[Action],
) -> Result<(), ExecError> {
    let mut counts = Vec::with_capacity(remaining.len());
    for action in remaining {
        let Action::Scale {
            group,
            count,
            message,
        } = action
        else {
            return Err(ExecError::DeploymentActive);
        };
        counts.push((group.as_str(), *count, message.as_str()));
    }
    let Some(live) = executor.get_job(&plan.job).await? else {
        return Err(ExecError::NotFound);
    };

    let mut job = live.job;
    for (group, count, _) in &counts {
        let Some(task_group) = job
            .task_groups
            .iter_mut()
            .flatten()
            .find(|task_group| task_group.name == *group)
        else {
            // The group is gone since the plan was made: re-plan from the live job.
            return Err(ExecError::Conflict {
                expected: live.job_modify_index,
                message: format!("task group {group:?} is missing from the live job"),
            });
        };
        task_group.count = Some(i64::from(*count));
    }
    executor
        .register_job(&job, live.job_modify_index, false)
        .await?;

    for (group, count, message) in &counts {
        info!(
            job = %plan.job,
            group,
            count,
            "scale blocked by an active deployment; count set by register"
        );

        // The count is already set, so a missing event is logged and not retried.
        let event = format!(
            "{message} (count set by a job register: the scale call was blocked by an active deployment)"
        );
        if let Err(error) = executor
            .record_scaling_event(&plan.job, group, &event)
            .await
        {
            warn!(job = %plan.job, group, %error, "cannot record the scaling event of a register");
        }
    }
    Ok(())
}
