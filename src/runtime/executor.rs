//! [`NomadExecutor`]: the planner's and the rollout's writes performed through the Nomad
//! client, each fenced by a leadership check right before it is sent.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tracing::info;

use crate::nomad::{self, Client, Job, JobRegisterRequest, QueryOptions, ScalingRequest};
use crate::reconcile::{ExecError, Executor, JobKey, ObservedJob};

/// Whether this controller may write now. Checked right before every write.
pub trait Fence: Send + Sync {
    /// Returns true while this controller owns the leader lock and its term has not ended.
    fn may_write(&self) -> bool;
}

impl<F: Fn() -> bool + Send + Sync> Fence for F {
    fn may_write(&self) -> bool {
        self()
    }
}

/// The Nomad executor of one reconcile. `writes` counts the writes Nomad accepted.
pub struct NomadExecutor<'a> {
    client: Client,
    fence: &'a dyn Fence,
    writes: Arc<AtomicU64>,
}

impl<'a> NomadExecutor<'a> {
    /// Builds an executor for jobs in `namespace`.
    pub fn new(
        client: &Client,
        namespace: &str,
        fence: &'a dyn Fence,
        writes: Arc<AtomicU64>,
    ) -> Self {
        Self {
            client: client.with_namespace(namespace),
            fence,
            writes,
        }
    }

    fn check_fence(&self) -> Result<(), ExecError> {
        if self.fence.may_write() {
            Ok(())
        } else {
            Err(ExecError::NotLeader)
        }
    }

    fn accepted(&self) {
        self.writes.fetch_add(1, Ordering::Relaxed);
    }

    /// Sends one request to the scale endpoint, while this controller still leads.
    async fn send_scale(&self, job: &JobKey, request: &ScalingRequest) -> Result<(), ExecError> {
        self.check_fence()?;
        self.client
            .scale_job(&job.id, request)
            .await
            .map_err(|error| exec_error(error, 0))?;
        self.accepted();
        Ok(())
    }
}

/// Maps a Nomad client error onto the planner's write errors.
pub fn exec_error(error: nomad::Error, expected: u64) -> ExecError {
    match error {
        nomad::Error::Conflict { body, .. } => ExecError::Conflict {
            expected,
            message: body,
        },
        nomad::Error::DeploymentActive { .. } => ExecError::DeploymentActive,
        nomad::Error::NotFound { .. } => ExecError::NotFound,
        error @ (nomad::Error::Server { .. }
        | nomad::Error::Connect { .. }
        | nomad::Error::Timeout { .. }) => ExecError::Unavailable(error.to_string()),
        error => ExecError::Rejected(error.to_string()),
    }
}

impl Executor for NomadExecutor<'_> {
    async fn get_job(&self, job: &JobKey) -> Result<Option<ObservedJob>, ExecError> {
        match self
            .client
            .read_job(&job.id, QueryOptions::immediate())
            .await
        {
            Ok(response) => Ok(Some(ObservedJob::new(response.value))),
            Err(error) if error.is_not_found() => Ok(None),
            Err(error) => Err(exec_error(error, 0)),
        }
    }

    async fn register_job(
        &self,
        job: &Job,
        enforce_index: u64,
        preserve_counts: bool,
    ) -> Result<(), ExecError> {
        self.check_fence()?;
        let request = JobRegisterRequest {
            job: job.clone(),
            enforce_index: true,
            job_modify_index: enforce_index,
            preserve_counts,
            ..JobRegisterRequest::default()
        };
        let response = self
            .client
            .register_job(&request)
            .await
            .map_err(|error| exec_error(error, enforce_index))?;
        self.accepted();
        info!(job = %job.id, enforce_index, preserve_counts, eval = %response.eval_id, "job registered");
        Ok(())
    }

    async fn scale(
        &self,
        job: &JobKey,
        group: &str,
        count: u32,
        message: &str,
    ) -> Result<(), ExecError> {
        self.send_scale(job, &ScalingRequest::for_group(group, Some(count), message))
            .await?;
        info!(%job, group, count, message, "group scaled");
        Ok(())
    }

    async fn record_scaling_event(
        &self,
        job: &JobKey,
        group: &str,
        message: &str,
    ) -> Result<(), ExecError> {
        self.send_scale(job, &ScalingRequest::for_group(group, None, message))
            .await?;
        info!(%job, group, message, "scaling event recorded");
        Ok(())
    }

    async fn stop_job(&self, job: &JobKey) -> Result<(), ExecError> {
        self.check_fence()?;
        self.client
            .deregister_job(&job.id, false)
            .await
            .map_err(|error| exec_error(error, 0))?;
        self.accepted();
        info!(%job, "job stopped");
        Ok(())
    }
}

impl crate::rollout::RolloutExecutor for NomadExecutor<'_> {
    async fn promote_deployment(&self, deployment_id: &str) -> Result<(), ExecError> {
        self.check_fence()?;
        self.client
            .promote_deployment(deployment_id, None)
            .await
            .map_err(|error| exec_error(error, 0))?;
        self.accepted();
        info!(deployment = deployment_id, "deployment promoted");
        Ok(())
    }

    async fn fail_deployment(&self, deployment_id: &str) -> Result<(), ExecError> {
        self.check_fence()?;
        self.client
            .fail_deployment(deployment_id)
            .await
            .map_err(|error| exec_error(error, 0))?;
        self.accepted();
        info!(deployment = deployment_id, "deployment marked failed");
        Ok(())
    }

    async fn pause_deployment(&self, deployment_id: &str, pause: bool) -> Result<(), ExecError> {
        self.check_fence()?;
        self.client
            .pause_deployment(deployment_id, pause)
            .await
            .map_err(|error| exec_error(error, 0))?;
        self.accepted();
        info!(deployment = deployment_id, pause, "deployment pause set");
        Ok(())
    }
}
