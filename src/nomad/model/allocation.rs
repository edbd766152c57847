//! Allocations: `Allocation` (`GET /v1/allocation/:id`) and `AllocListStub` (the lists), with
//! their deployment health and task states.
//!
//! The full `Allocation` leaves out zero-valued fields on the wire, while the stubs send
//! explicit `null`s, so every field here tolerates both "missing" and `null`.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::{ClientStatus, DesiredStatus, Job, NomadDuration, Resources, TaskStateKind, UnixNanos};

/// Health of an allocation in its deployment, as Nomad's `*bool` `Healthy` carries it.
///
/// A missing `DeploymentStatus`, a `null` one and `"Healthy": null` all mean [`Health::Unknown`]:
/// Nomad creates the status lazily on the first health report, and places canaries with
/// `{"Canary": true, "Healthy": null}`. `Unknown` serializes back as `null`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Health {
    /// No health report yet.
    #[default]
    Unknown,
    Healthy,
    Unhealthy,
}

impl Health {
    /// Converts Nomad's `*bool` form.
    pub fn from_option(healthy: Option<bool>) -> Self {
        match healthy {
            None => Self::Unknown,
            Some(true) => Self::Healthy,
            Some(false) => Self::Unhealthy,
        }
    }

    /// Converts to Nomad's `*bool` form.
    pub fn to_option(self) -> Option<bool> {
        match self {
            Self::Unknown => None,
            Self::Healthy => Some(true),
            Self::Unhealthy => Some(false),
        }
    }
}

impl Serialize for Health {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_option().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Health {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Option::<bool>::deserialize(deserializer).map(Self::from_option)
    }
}

/// An allocation's place in its deployment (`structs.AllocDeploymentStatus`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AllocDeploymentStatus {
    /// Three-state health, sent as `null` until the first health report.
    #[serde(default)]
    pub healthy: Health,
    /// When health was last set (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<jiff::Timestamp>,
    /// True for a canary until the deployment is promoted.
    #[serde(default)]
    pub canary: bool,
    #[serde(default)]
    pub modify_index: u64,
}

/// Pending migrate or reschedule requests for an allocation (`structs.DesiredTransition`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DesiredTransition {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrate: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reschedule: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_reschedule: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_shutdown_delay: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrate_disable_placement: Option<bool>,
}

/// The state of one task in an allocation (`structs.TaskState`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskState {
    #[serde(default)]
    pub state: TaskStateKind,
    #[serde(default)]
    pub failed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarts: Option<u64>,
    /// Go's zero time when the task never restarted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_restart: Option<jiff::Timestamp>,
    /// RFC 3339 time the task started, or Go's zero time before it starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<jiff::Timestamp>,
    /// RFC 3339 time the task finished, or Go's zero time while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<jiff::Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<TaskEvent>>,
    /// Fields this crate does not model, kept so that they serialize back unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One event in a task's history, such as `Received`, `Driver`, `Started` or `Terminated`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskEvent {
    #[serde(default)]
    pub r#type: String,
    #[serde(default)]
    pub time: UnixNanos,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fails_task: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_error: Option<String>,
    /// Fields this crate does not model, kept so that they serialize back unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Scheduler metrics of one placement attempt (`structs.AllocMetric`). An evaluation's
/// `FailedTGAllocs` maps each task group it could not place to one of these.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AllocMetric {
    #[serde(default)]
    pub nodes_evaluated: u64,
    #[serde(default)]
    pub nodes_filtered: u64,
    #[serde(default)]
    pub nodes_in_pool: u64,
    /// Eligible nodes per datacenter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes_available: Option<BTreeMap<String, u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_filtered: Option<BTreeMap<String, u64>>,
    /// Nodes rejected per constraint, keyed by the constraint's text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraint_filtered: Option<BTreeMap<String, u64>>,
    #[serde(default)]
    pub nodes_exhausted: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_exhausted: Option<BTreeMap<String, u64>>,
    /// Nodes out of a resource, keyed by dimension (`cpu`, `memory`, `devices: …`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimension_exhausted: Option<BTreeMap<String, u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_exhausted: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources_exhausted: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scores: Option<BTreeMap<String, f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_meta_data: Option<Value>,
    /// Time spent placing, in nanoseconds.
    #[serde(default)]
    pub allocation_time: NomadDuration,
    #[serde(default)]
    pub coalesced_failures: u64,
    /// Fields this crate does not model, kept so that they serialize back unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The placement and status fields of an allocation list stub, decoded from the same JSON
/// as [`AllocListStub`] while every other field is skipped, so a long list takes a fraction
/// of the memory of full stubs.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AllocBrief {
    #[serde(rename = "ID", default)]
    pub id: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(rename = "NodeID", default)]
    pub node_id: String,
    #[serde(rename = "JobID", default)]
    pub job_id: String,
    #[serde(default)]
    pub job_version: u64,
    #[serde(default)]
    pub task_group: String,
    #[serde(default)]
    pub desired_status: DesiredStatus,
    #[serde(default)]
    pub client_status: ClientStatus,
    /// `None` until health is first reported, except for canaries.
    #[serde(default)]
    pub deployment_status: Option<AllocDeploymentStatus>,
}

/// An allocation as the list endpoints return it (`structs.AllocListStub`): `/v1/allocations`,
/// `/v1/job/:id/allocations` and `/v1/deployment/allocations/:id`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AllocListStub {
    #[serde(rename = "ID", default)]
    pub id: String,
    #[serde(rename = "EvalID", default)]
    pub eval_id: String,
    /// `<job>.<group>[<index>]`.
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(rename = "NodeID", default)]
    pub node_id: String,
    #[serde(default)]
    pub node_name: String,
    #[serde(rename = "JobID", default)]
    pub job_id: String,
    #[serde(default)]
    pub job_type: String,
    /// The job version this allocation runs.
    #[serde(default)]
    pub job_version: u64,
    #[serde(default)]
    pub task_group: String,
    /// Only with `?resources=true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocated_resources: Option<Value>,
    #[serde(default)]
    pub desired_status: DesiredStatus,
    #[serde(default)]
    pub desired_description: String,
    #[serde(default)]
    pub client_status: ClientStatus,
    #[serde(default)]
    pub client_description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_transition: Option<DesiredTransition>,
    /// Left out with `?task_states=false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_states: Option<BTreeMap<String, TaskState>>,
    /// `None` until health is first reported, except for canaries.
    #[serde(default)]
    pub deployment_status: Option<AllocDeploymentStatus>,
    #[serde(rename = "FollowupEvalID", default)]
    pub followup_eval_id: String,
    #[serde(default)]
    pub next_allocation: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reschedule_tracker: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preempted_allocations: Option<Vec<String>>,
    #[serde(default)]
    pub preempted_by_allocation: String,
    #[serde(default)]
    pub create_index: u64,
    #[serde(default)]
    pub modify_index: u64,
    #[serde(default)]
    pub create_time: UnixNanos,
    #[serde(default)]
    pub modify_time: UnixNanos,
    /// Fields this crate does not model, kept so that they serialize back unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A full allocation (`structs.Allocation`), as `GET /v1/allocation/:id` and
/// `GET /v1/node/:id/allocations` return it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Allocation {
    #[serde(rename = "ID", default)]
    pub id: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(rename = "EvalID", default)]
    pub eval_id: String,
    #[serde(default)]
    pub name: String,
    #[serde(rename = "NodeID", default)]
    pub node_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    #[serde(rename = "JobID", default)]
    pub job_id: String,
    /// The job as it was when the allocation was placed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<Box<Job>>,
    #[serde(default)]
    pub task_group: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_resources: Option<Resources>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_resources: Option<BTreeMap<String, Resources>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocated_resources: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<AllocMetric>,
    #[serde(default)]
    pub desired_status: DesiredStatus,
    #[serde(default)]
    pub desired_description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_transition: Option<DesiredTransition>,
    #[serde(default)]
    pub client_status: ClientStatus,
    #[serde(default)]
    pub client_description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_states: Option<BTreeMap<String, TaskState>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alloc_states: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_allocation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_allocation: Option<String>,
    #[serde(
        rename = "DeploymentID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub deployment_id: Option<String>,
    /// `None` until health is first reported, except for canaries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_status: Option<AllocDeploymentStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reschedule_tracker: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_status: Option<Value>,
    #[serde(
        rename = "FollowupEvalID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub followup_eval_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preempted_allocations: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preempted_by_allocation: Option<String>,
    #[serde(
        rename = "SigningKeyID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub signing_key_id: Option<String>,
    #[serde(default)]
    pub create_index: u64,
    #[serde(default)]
    pub modify_index: u64,
    #[serde(default)]
    pub alloc_modify_index: u64,
    #[serde(default)]
    pub create_time: UnixNanos,
    #[serde(default)]
    pub modify_time: UnixNanos,
    /// Fields this crate does not model, kept so that they serialize back unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Health and status checks shared by the full allocation and its stub.
macro_rules! allocation_health {
    ($type:ty) => {
        impl $type {
            /// Returns the deployment health, which is [`Health::Unknown`] while no status exists.
            pub fn health(&self) -> Health {
                self.deployment_status
                    .as_ref()
                    .map_or(Health::Unknown, |status| status.healthy)
            }

            /// Reports whether the allocation is an unpromoted canary.
            pub fn is_canary(&self) -> bool {
                self.deployment_status
                    .as_ref()
                    .is_some_and(|status| status.canary)
            }

            /// Reports whether the allocation serves: the client runs it, the scheduler wants it
            /// running, and its deployment health is `Healthy`. An allocation whose health was
            /// never reported does not count, and neither does a failed one whose `Healthy`
            /// flag stayed true.
            pub fn is_running_healthy(&self) -> bool {
                self.client_status == ClientStatus::Running
                    && self.desired_status == DesiredStatus::Run
                    && self.health() == Health::Healthy
            }
        }
    };
}

allocation_health!(AllocListStub);
allocation_health!(Allocation);

#[cfg(test)]
mod tests {
    use super::*;

    fn stub_from(json: &str) -> AllocListStub {
        serde_json::from_str(json).expect("allocation stub parses")
    }

    #[test]
    fn health_missing_status_is_unknown() {
        let stub = stub_from(r#"{"ID":"a","ClientStatus":"running","DesiredStatus":"run"}"#);
        assert_eq!(stub.deployment_status, None);
        assert_eq!(stub.health(), Health::Unknown);
        assert!(!stub.is_running_healthy());
    }

    #[test]
    fn health_null_status_is_unknown() {
        let stub = stub_from(r#"{"ID":"a","DeploymentStatus":null}"#);
        assert_eq!(stub.health(), Health::Unknown);
    }

    #[test]
    fn health_null_healthy_is_unknown() {
        let stub = stub_from(r#"{"ID":"a","DeploymentStatus":{"Canary":true,"Healthy":null}}"#);
        assert_eq!(stub.health(), Health::Unknown);
        assert!(stub.is_canary());
    }

    #[test]
    fn health_missing_healthy_is_unknown() {
        let stub = stub_from(r#"{"ID":"a","DeploymentStatus":{"Canary":false,"ModifyIndex":4}}"#);
        assert_eq!(stub.health(), Health::Unknown);
    }

    #[test]
    fn health_true_and_false() {
        let healthy = stub_from(
            r#"{"ID":"a","ClientStatus":"running","DesiredStatus":"run",
                "DeploymentStatus":{"Healthy":true,"Timestamp":"2021-11-04T10:14:22.054814+01:00"}}"#,
        );
        assert_eq!(healthy.health(), Health::Healthy);
        assert!(healthy.is_running_healthy());

        let unhealthy = stub_from(r#"{"ID":"a","DeploymentStatus":{"Healthy":false}}"#);
        assert_eq!(unhealthy.health(), Health::Unhealthy);
    }

    #[test]
    fn failed_allocation_not_healthy() {
        let stub = stub_from(
            r#"{"ID":"a","ClientStatus":"failed","DesiredStatus":"run",
                "DeploymentStatus":{"Healthy":true}}"#,
        );
        assert_eq!(stub.health(), Health::Healthy);
        assert!(!stub.is_running_healthy());
    }

    #[test]
    fn unknown_health_serializes_as_null() {
        let status = AllocDeploymentStatus {
            canary: true,
            ..AllocDeploymentStatus::default()
        };
        let json = serde_json::to_value(&status).expect("serialize");
        assert_eq!(json["Healthy"], Value::Null);
        assert_eq!(json["Canary"], Value::Bool(true));

        let healthy = AllocDeploymentStatus {
            healthy: Health::Unhealthy,
            ..AllocDeploymentStatus::default()
        };
        let json = serde_json::to_value(&healthy).expect("serialize");
        assert_eq!(json["Healthy"], Value::Bool(false));
    }

    #[test]
    fn stub_without_status_serializes_null() {
        let json = serde_json::to_value(AllocListStub::default()).expect("serialize");
        assert_eq!(json["DeploymentStatus"], Value::Null);
    }
}
