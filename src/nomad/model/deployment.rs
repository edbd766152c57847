//! Deployments and the requests that steer them: promote, pause, fail, allocation health.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{DeploymentStatus, NomadDuration, UnixNanos};

/// A deployment of one job version (`structs.Deployment`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Deployment {
    #[serde(rename = "ID", default)]
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(rename = "JobID", default)]
    pub job_id: String,
    #[serde(default)]
    pub job_version: u64,
    #[serde(default)]
    pub job_modify_index: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_spec_modify_index: Option<u64>,
    #[serde(default)]
    pub job_create_index: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_multiregion: Option<bool>,
    /// Progress per task group.
    #[serde(default)]
    pub task_groups: BTreeMap<String, DeploymentState>,
    #[serde(default)]
    pub status: DeploymentStatus,
    /// Such as "Deployment is running but requires manual promotion" or "Failed due to
    /// unhealthy allocations - rolling back to job version 3".
    #[serde(default)]
    pub status_description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_priority: Option<i64>,
    #[serde(default)]
    pub create_index: u64,
    #[serde(default)]
    pub modify_index: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_time: Option<UnixNanos>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modify_time: Option<UnixNanos>,
    /// Fields this crate does not model, kept so that they serialize back unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Deployment {
    /// Reports whether the deployment still runs. While it does, Nomad rejects scaling the job.
    pub fn is_active(&self) -> bool {
        self.status.is_active()
    }

    /// Reports whether some group waits for manual promotion: it has canaries, is not yet
    /// promoted and does not promote itself.
    pub fn requires_promotion(&self) -> bool {
        self.task_groups
            .values()
            .any(|state| state.desired_canaries > 0 && !state.promoted && !state.auto_promote)
    }
}

/// A deployment's progress in one task group (`structs.DeploymentState`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeploymentState {
    #[serde(default)]
    pub auto_revert: bool,
    #[serde(default)]
    pub auto_promote: bool,
    #[serde(default)]
    pub progress_deadline: NomadDuration,
    /// The time by which the next allocation must be healthy (RFC 3339), or `None` before the
    /// first placement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_progress_by: Option<jiff::Timestamp>,
    #[serde(default)]
    pub promoted: bool,
    /// IDs of the canaries placed so far, sent as `null` when there are none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placed_canaries: Option<Vec<String>>,
    #[serde(default)]
    pub desired_canaries: u64,
    #[serde(default)]
    pub desired_total: u64,
    #[serde(default)]
    pub placed_allocs: u64,
    #[serde(default)]
    pub healthy_allocs: u64,
    #[serde(default)]
    pub unhealthy_allocs: u64,
    /// Fields this crate does not model, kept so that they serialize back unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Body of `POST /v1/deployment/promote/:id`: promote all groups, or the named ones.
/// `DeploymentID` must repeat the ID in the path.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeploymentPromoteRequest {
    #[serde(rename = "DeploymentID")]
    pub deployment_id: String,
    #[serde(default)]
    pub all: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
}

/// Body of `POST /v1/deployment/pause/:id`. `Pause: false` resumes the deployment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeploymentPauseRequest {
    #[serde(rename = "DeploymentID")]
    pub deployment_id: String,
    pub pause: bool,
}

/// Body of `POST /v1/deployment/fail/:id`. Nomad needs no body for this endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeploymentFailRequest {
    #[serde(rename = "DeploymentID")]
    pub deployment_id: String,
}

/// Body of `POST /v1/deployment/allocation-health/:id`: marks allocations healthy or
/// unhealthy by hand (for `HealthCheck: manual`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeploymentAllocHealthRequest {
    #[serde(rename = "DeploymentID")]
    pub deployment_id: String,
    #[serde(
        rename = "HealthyAllocationIDs",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub healthy_allocation_ids: Option<Vec<String>>,
    #[serde(
        rename = "UnhealthyAllocationIDs",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub unhealthy_allocation_ids: Option<Vec<String>>,
}

/// Response of the deployment promote, pause, fail and allocation-health endpoints.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeploymentUpdateResponse {
    #[serde(rename = "EvalID", default)]
    pub eval_id: String,
    #[serde(default)]
    pub eval_create_index: u64,
    #[serde(default)]
    pub deployment_modify_index: u64,
    /// The job version restored by auto-revert, when failing the deployment triggered one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reverted_job_version: Option<u64>,
    #[serde(default)]
    pub index: u64,
}
