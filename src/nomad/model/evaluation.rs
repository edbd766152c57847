//! Evaluations: the scheduler's unit of work (`structs.Evaluation`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{AllocMetric, EvalStatus, NomadDuration, UnixNanos};

/// An evaluation as `GET /v1/evaluation/:id` and the evaluation lists return it.
///
/// Like `Allocation`, Nomad may leave zero-valued fields out of the JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Evaluation {
    #[serde(rename = "ID", default)]
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default)]
    pub priority: i64,
    /// The scheduler: `service`, `batch`, `system`, `sysbatch` or `_core`.
    #[serde(default)]
    pub r#type: String,
    /// What created it: `job-register`, `job-scaling`, `node-drain`, `deployment-watcher`…
    #[serde(default)]
    pub triggered_by: String,
    #[serde(rename = "JobID", default)]
    pub job_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_modify_index: Option<u64>,
    #[serde(rename = "NodeID", default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_modify_index: Option<u64>,
    #[serde(
        rename = "DeploymentID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub deployment_id: Option<String>,
    #[serde(default)]
    pub status: EvalStatus,
    #[serde(default)]
    pub status_description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<NomadDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_until: Option<jiff::Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_eval: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_eval: Option<String>,
    /// The blocked evaluation created for groups that could not be placed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_eval: Option<String>,
    /// Only with `?related=true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub related_evals: Option<Vec<Evaluation>>,
    /// Scheduler metrics per task group that could not be placed.
    #[serde(
        rename = "FailedTGAllocs",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub failed_tg_allocs: Option<BTreeMap<String, AllocMetric>>,
    /// Allocations still waiting for placement, per task group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued_allocations: Option<BTreeMap<String, u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_index: Option<u64>,
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
