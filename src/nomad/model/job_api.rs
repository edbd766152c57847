//! Job endpoint payloads other than the job itself: list stubs, summaries, register, scale,
//! versions, dispatch, revert, parse and plan.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{AllocMetric, Evaluation, Job, JobStatus, StringMap, UnixNanos};

/// A job as `GET /v1/jobs` returns it (`structs.JobListStub`).
///
/// `Periodic` and `ParameterizedJob` are booleans here but objects in the full `Job`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobListStub {
    #[serde(rename = "ID", default)]
    pub id: String,
    #[serde(rename = "ParentID", default)]
    pub parent_id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacenters: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_pool: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiregion: Option<Value>,
    #[serde(default)]
    pub r#type: String,
    #[serde(default)]
    pub priority: i64,
    #[serde(default)]
    pub periodic: bool,
    #[serde(default)]
    pub parameterized_job: bool,
    #[serde(default)]
    pub stop: bool,
    #[serde(default)]
    pub status: JobStatus,
    #[serde(default)]
    pub status_description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_summary: Option<JobSummary>,
    #[serde(default)]
    pub create_index: u64,
    #[serde(default)]
    pub modify_index: u64,
    #[serde(default)]
    pub job_modify_index: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submit_time: Option<UnixNanos>,
    /// Only with `?meta=true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<StringMap>,
    /// Fields this crate does not model, kept so that they serialize back unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl JobListStub {
    /// Returns one entry of the job's `Meta` (present only when listed with `?meta=true`).
    pub fn meta_value(&self, key: &str) -> Option<&str> {
        self.meta.as_ref()?.get(key).map(String::as_str)
    }
}

/// Allocation counts of a job per task group (`structs.JobSummary`, `GET /v1/job/:id/summary`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobSummary {
    #[serde(rename = "JobID", default)]
    pub job_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default)]
    pub summary: BTreeMap<String, TaskGroupSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub children: Option<JobChildrenSummary>,
    #[serde(default)]
    pub create_index: u64,
    #[serde(default)]
    pub modify_index: u64,
}

/// Allocation counts of one task group by client status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskGroupSummary {
    #[serde(default)]
    pub queued: u64,
    #[serde(default)]
    pub complete: u64,
    #[serde(default)]
    pub failed: u64,
    #[serde(default)]
    pub running: u64,
    #[serde(default)]
    pub starting: u64,
    #[serde(default)]
    pub lost: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown: Option<u64>,
}

/// Child job counts of a periodic or parameterized job.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobChildrenSummary {
    #[serde(default)]
    pub pending: u64,
    #[serde(default)]
    pub running: u64,
    #[serde(default)]
    pub dead: u64,
}

/// Body of `POST /v1/jobs` and `POST /v1/job/:id`.
///
/// With `EnforceIndex`, the job's current `JobModifyIndex` (not `ModifyIndex`) must equal
/// `JobModifyIndex`, and 0 means "only if the job does not exist yet". `PreserveCounts` keeps the
/// live `Count` of every task group that already exists, so a re-register does not undo scaling.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobRegisterRequest {
    pub job: Job,
    #[serde(default)]
    pub enforce_index: bool,
    #[serde(default)]
    pub job_modify_index: u64,
    #[serde(default)]
    pub preserve_counts: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preserve_resources: Option<bool>,
    #[serde(default)]
    pub policy_override: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_priority: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submission: Option<Value>,
    /// Fields this crate does not model, kept so that they serialize back unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Response of a job register.
///
/// When the spec did not change, `JobModifyIndex` is the job's `ModifyIndex`, which is not
/// always its stored `JobModifyIndex`: re-read the job before the next `EnforceIndex`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobRegisterResponse {
    /// Empty for periodic and parameterized parent jobs, which get no evaluation.
    #[serde(rename = "EvalID", default)]
    pub eval_id: String,
    #[serde(default)]
    pub eval_create_index: u64,
    #[serde(default)]
    pub job_modify_index: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warnings: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_contact: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_leader: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// Response of `DELETE /v1/job/:id`, of a job revert and of other job writes that create an
/// evaluation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobDeregisterResponse {
    #[serde(rename = "EvalID", default)]
    pub eval_id: String,
    #[serde(default)]
    pub eval_create_index: u64,
    #[serde(default)]
    pub job_modify_index: u64,
    #[serde(
        rename = "VolumeEvalID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub volume_eval_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_eval_index: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
}

/// Response of `GET /v1/job/:id/versions`: newest version first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobVersionsResponse {
    #[serde(default)]
    pub versions: Vec<Job>,
    /// Only with `?diffs=true`: the difference of each version from the one before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diffs: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_contact: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_leader: Option<bool>,
}

/// Response of `GET /v1/job/:id/scale` (`structs.JobScaleStatus`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobScaleStatus {
    #[serde(rename = "JobID", default)]
    pub job_id: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub job_create_index: u64,
    #[serde(default)]
    pub job_modify_index: u64,
    #[serde(default)]
    pub job_stopped: bool,
    #[serde(default)]
    pub task_groups: BTreeMap<String, TaskGroupScaleStatus>,
}

/// Scale status of one task group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskGroupScaleStatus {
    /// The group's `Count`.
    #[serde(default)]
    pub desired: i64,
    #[serde(default)]
    pub placed: i64,
    #[serde(default)]
    pub running: i64,
    #[serde(default)]
    pub healthy: i64,
    #[serde(default)]
    pub unhealthy: i64,
    /// Recent scaling events, newest first, or `null` when there are none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<ScalingEvent>>,
}

/// One scaling action recorded on a task group (`structs.ScalingEvent`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ScalingEvent {
    #[serde(default)]
    pub time: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_count: Option<i64>,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub error: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Map<String, Value>>,
    #[serde(rename = "EvalID", default, skip_serializing_if = "Option::is_none")]
    pub eval_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_index: Option<u64>,
}

/// Body of `POST /v1/job/:id/scale` (`api.ScalingRequest`).
///
/// A non-zero `JobModifyIndex` makes the write conditional, as `EnforceIndex` does for
/// register. `Count: None` records an event without changing the job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ScalingRequest {
    #[serde(default)]
    pub count: Option<i64>,
    pub target: ScalingTarget,
    #[serde(default)]
    pub message: String,
    /// Marks the event as an error. Nomad's server type is a bool, although its docs say string.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub error: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub policy_override: bool,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub job_modify_index: u64,
}

impl ScalingRequest {
    /// Builds a request for one task group: a new `count` with `message` as the event text,
    /// or, with no count, a scaling event only.
    pub fn for_group(group: &str, count: Option<u32>, message: &str) -> Self {
        Self {
            count: count.map(i64::from),
            target: ScalingTarget {
                group: group.to_owned(),
                ..ScalingTarget::default()
            },
            message: message.to_owned(),
            ..Self::default()
        }
    }
}

/// The task group a scaling request changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ScalingTarget {
    pub group: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// Body of `POST /v1/job/:id/dispatch`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobDispatchRequest {
    /// Base64 of at most 16 KiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<StringMap>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_prefix_template: Option<String>,
}

/// Response of a job dispatch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobDispatchResponse {
    /// `<parent>/dispatch-<unix seconds>-<8 hex>`.
    #[serde(rename = "DispatchedJobID", default)]
    pub dispatched_job_id: String,
    #[serde(rename = "EvalID", default)]
    pub eval_id: String,
    #[serde(default)]
    pub eval_create_index: u64,
    #[serde(default)]
    pub job_create_index: u64,
    #[serde(default)]
    pub index: u64,
}

/// Response of `POST /v1/allocation/:id/stop`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AllocStopResponse {
    #[serde(rename = "EvalID", default)]
    pub eval_id: String,
    #[serde(default)]
    pub index: u64,
}

/// Body of `POST /v1/job/:id/revert`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobRevertRequest {
    #[serde(rename = "JobID")]
    pub job_id: String,
    pub job_version: u64,
    /// Revert only if the current version is this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforce_prior_version: Option<u64>,
}

/// Body of `POST /v1/job/:id/evaluate`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobEvaluateRequest {
    #[serde(rename = "JobID")]
    pub job_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_options: Option<EvalOptions>,
}

/// Options of a forced evaluation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EvalOptions {
    #[serde(default)]
    pub force_reschedule: bool,
}

/// Body of `POST /v1/jobs/parse`. The response is a bare `Job` with no wrapper.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobsParseRequest {
    #[serde(rename = "JobHCL")]
    pub job_hcl: String,
    #[serde(default)]
    pub canonicalize: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variables: Option<String>,
}

/// The source a job version was submitted with (`GET /v1/job/:id/submission`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobSubmission {
    #[serde(default)]
    pub source: String,
    /// `hcl2` or `json`.
    #[serde(default)]
    pub format: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variable_flags: Option<StringMap>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variables: Option<String>,
    #[serde(default)]
    pub namespace: String,
    #[serde(rename = "JobID", default)]
    pub job_id: String,
    #[serde(default)]
    pub version: u64,
    #[serde(default)]
    pub job_index: u64,
}

/// Response of `POST /v1/job/:id/plan`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobPlanResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Value>,
    #[serde(
        rename = "FailedTGAllocs",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub failed_tg_allocs: Option<BTreeMap<String, AllocMetric>>,
    #[serde(default)]
    pub job_modify_index: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_evals: Option<Vec<Evaluation>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_periodic_launch: Option<jiff::Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warnings: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
}

/// One line of `GET /v1/event/stream`. A frame with index 0 and no events is a heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EventFrame {
    #[serde(default)]
    pub index: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<Event>>,
}

impl EventFrame {
    /// Reports whether the frame is a heartbeat (`{}`).
    pub fn is_heartbeat(&self) -> bool {
        self.index == 0 && self.events.as_deref().unwrap_or(&[]).is_empty()
    }
}

/// One event of the event stream.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Event {
    /// `Job`, `Allocation`, `Deployment`, `Evaluation`, `Node`…
    #[serde(default)]
    pub topic: String,
    /// `JobRegistered`, `AllocationUpdated`, `NodeDrain`…
    #[serde(default)]
    pub r#type: String,
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_keys: Option<Vec<String>>,
    #[serde(default)]
    pub index: u64,
    /// The object under its type name, such as `{"Allocation": {…}}`.
    #[serde(default)]
    pub payload: Map<String, Value>,
}
