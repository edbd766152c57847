//! The job specification: `Job`, `TaskGroup`, `Task` and the blocks inside them.
//!
//! Field names follow Nomad's JSON API (`nomad/structs/structs.go`), PascalCase with the
//! Go spelling of acronyms (`ID`, `CPU`, `MemoryMB`, `LTarget`). Every field is optional on
//! the wire because the official API client sends explicit `null`s; unset fields are left
//! out when serializing.
//!
//! Deserialization tolerates fields this crate does not model, so newer Nomad servers parse.
//! The JSON Schema of the task-group types rejects unknown fields instead, because those
//! types are also the `spec.template` of a WorkerPool, where a typo must not pass silently.
//! Blocks that Steward never reads (Vault, templates, volumes, Connect…) are kept as free-form
//! JSON values so that they pass through to Nomad unchanged.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::NomadDuration;

/// Free-form string map (`Meta`, `Env`).
pub type StringMap = BTreeMap<String, String>;

/// A Nomad job (`structs.Job`), as `GET /v1/job/:id` returns it and `POST /v1/jobs` takes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Job {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(rename = "ID", default)]
    pub id: String,
    #[serde(rename = "ParentID", default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `service`, `batch`, `system` or `sysbatch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all_at_once: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacenters: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_pool: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraints: Option<Vec<Constraint>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinities: Option<Vec<Affinity>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spreads: Option<Vec<Spread>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_groups: Option<Vec<TaskGroup>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<UpdateStrategy>,
    /// Job-level `migrate` block, merged into each group when the job is canonicalized.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrate: Option<MigrateStrategy>,
    /// Job-level `reschedule` block, merged into each group when the job is canonicalized.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reschedule: Option<ReschedulePolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiregion: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub periodic: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameterized_job: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispatched: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispatch_idempotency_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<StringMap>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consul_namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault_namespace: Option<String>,
    /// Vault token field that older Nomad API clients send with the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault_token: Option<String>,
    #[serde(
        rename = "NomadTokenID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub nomad_token_id: Option<String>,
    /// `pending`, `running` or `dead`; set by the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable: Option<bool>,
    /// Starts at 0 and goes up by one on every accepted spec change, scale and stop included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// Unix nanoseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submit_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_index: Option<u64>,
    /// Moves on any change to the job object, status changes included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modify_index: Option<u64>,
    /// Moves only when the spec changes; this is the value `EnforceIndex` checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_modify_index: Option<u64>,
    #[serde(rename = "UI", default, skip_serializing_if = "Option::is_none")]
    pub ui: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_tag: Option<Value>,
}

impl Job {
    /// Returns the job's task groups, or an empty slice when it has none.
    pub fn groups(&self) -> &[TaskGroup] {
        self.task_groups.as_deref().unwrap_or(&[])
    }

    /// Returns the task group with this name.
    pub fn group(&self, name: &str) -> Option<&TaskGroup> {
        self.groups().iter().find(|group| group.name == name)
    }

    /// Returns one entry of the job's `Meta`.
    pub fn meta_value(&self, key: &str) -> Option<&str> {
        self.meta.as_ref()?.get(key).map(String::as_str)
    }

    /// Returns the job's namespace, `default` when unset.
    pub fn namespace_or_default(&self) -> &str {
        self.namespace.as_deref().unwrap_or("default")
    }
}

/// A task group (`structs.TaskGroup`): the unit of scaling and placement.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase")]
#[schemars(deny_unknown_fields)]
pub struct TaskGroup {
    /// The group's name; Steward sets it to the zone name.
    // Left out when empty, so that a pool template (which has no name) is written back without
    // `Name: ""`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Desired number of allocations; Steward sets it from the zone split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<UpdateStrategy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrate: Option<MigrateStrategy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraints: Option<Vec<Constraint>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<RestartPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disconnect: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks: Option<Vec<Task>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral_disk: Option<EphemeralDisk>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<StringMap>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reschedule_policy: Option<ReschedulePolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinities: Option<Vec<Affinity>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spreads: Option<Vec<Spread>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub networks: Option<Vec<NetworkResource>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consul: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<Vec<Service>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shutdown_delay: Option<NomadDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_run_duration: Option<NomadDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_after_client_disconnect: Option<NomadDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_client_disconnect: Option<NomadDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prevent_reschedule_on_lost: Option<bool>,
}

impl TaskGroup {
    /// Returns the group's tasks, or an empty slice when it has none.
    pub fn task_list(&self) -> &[Task] {
        self.tasks.as_deref().unwrap_or(&[])
    }
}

/// A task (`structs.Task`): one process run by a driver.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase")]
#[schemars(deny_unknown_fields)]
pub struct Task {
    #[serde(default)]
    pub name: String,
    /// The task driver, such as `docker`, `exec` or `raw_exec`.
    #[serde(default)]
    pub driver: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Driver-specific configuration; for `docker` the image is `Config.image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<serde_json::Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<StringMap>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<Vec<Service>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consul: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub templates: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraints: Option<Vec<Constraint>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinities: Option<Vec<Affinity>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<RestartPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispatch_payload: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<StringMap>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_timeout: Option<NomadDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_config: Option<LogConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifacts: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shutdown_delay: Option<NomadDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_mounts: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling_policies: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(
        rename = "CSIPluginConfig",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub csi_plugin_config: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identities: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actions: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Value>,
}

/// Resources one task requests (`structs.Resources`). A task sets `CPU` or `Cores`, not both.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase")]
#[schemars(deny_unknown_fields)]
pub struct Resources {
    /// CPU shares in MHz; at least 1 unless `Cores` is set.
    #[serde(rename = "CPU", default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<i64>,
    /// Whole CPU cores reserved for this task alone (CPU pinning).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cores: Option<i64>,
    /// Memory in MiB; at least 10.
    #[serde(rename = "MemoryMB", default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<i64>,
    /// Memory limit in MiB when oversubscription is enabled; at least `MemoryMB`.
    #[serde(
        rename = "MemoryMaxMB",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub memory_max_mb: Option<i64>,
    #[serde(rename = "DiskMB", default, skip_serializing_if = "Option::is_none")]
    pub disk_mb: Option<i64>,
    #[serde(rename = "IOPS", default, skip_serializing_if = "Option::is_none")]
    pub iops: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub networks: Option<Vec<NetworkResource>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devices: Option<Vec<RequestedDevice>>,
    #[serde(rename = "NUMA", default, skip_serializing_if = "Option::is_none")]
    pub numa: Option<Value>,
    #[serde(rename = "SecretsMB", default, skip_serializing_if = "Option::is_none")]
    pub secrets_mb: Option<i64>,
}

/// A device request such as a GPU (`structs.RequestedDevice`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase")]
#[schemars(deny_unknown_fields)]
pub struct RequestedDevice {
    /// `type`, `vendor/type` or `vendor/type/model`, for example `nvidia/gpu`.
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraints: Option<Vec<Constraint>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinities: Option<Vec<Affinity>>,
}

/// A placement constraint (`structs.Constraint`), such as
/// `{LTarget: "${node.datacenter}", RTarget: "dc1", Operand: "="}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Constraint {
    #[serde(rename = "LTarget", default)]
    pub l_target: String,
    #[serde(rename = "RTarget", default)]
    pub r_target: String,
    /// `=`, `!=`, `>`, `<`, `regexp`, `set_contains`, `distinct_hosts`, `is_set`…; Nomad
    /// reads an empty operand as `=`.
    #[serde(rename = "Operand", default)]
    pub operand: String,
}

impl Constraint {
    /// Builds a constraint from its three parts.
    pub fn new(
        l_target: impl Into<String>,
        operand: impl Into<String>,
        r_target: impl Into<String>,
    ) -> Self {
        Self {
            l_target: l_target.into(),
            r_target: r_target.into(),
            operand: operand.into(),
        }
    }
}

/// A placement preference (`structs.Affinity`); `Weight` is -100..100.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Affinity {
    #[serde(rename = "LTarget", default)]
    pub l_target: String,
    #[serde(rename = "RTarget", default)]
    pub r_target: String,
    #[serde(rename = "Operand", default)]
    pub operand: String,
    #[serde(rename = "Weight", default)]
    pub weight: i64,
}

/// Spreads allocations over the values of a node attribute (`structs.Spread`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase")]
#[schemars(deny_unknown_fields)]
pub struct Spread {
    #[serde(default)]
    pub attribute: String,
    #[serde(default)]
    pub weight: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spread_target: Option<Vec<SpreadTarget>>,
}

/// One value of a spread and the share of allocations it should get, in percent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase")]
#[schemars(deny_unknown_fields)]
pub struct SpreadTarget {
    #[serde(default)]
    pub value: String,
    #[serde(default)]
    pub percent: u64,
}

/// Update strategy: how allocations are replaced when the spec changes (`structs.UpdateStrategy`).
///
/// Nomad's defaults: Stagger 30s, MaxParallel 1, HealthCheck `checks`, MinHealthyTime 10s,
/// HealthyDeadline 5m, ProgressDeadline 10m, AutoRevert and AutoPromote false, Canary 0.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase")]
#[schemars(deny_unknown_fields)]
pub struct UpdateStrategy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stagger: Option<NomadDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel: Option<i64>,
    /// `checks`, `task_states` or `manual`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_healthy_time: Option<NomadDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_deadline: Option<NomadDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline: Option<NomadDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_revert: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_promote: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<i64>,
}

/// Migration strategy for allocations leaving a draining node (`structs.MigrateStrategy`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase")]
#[schemars(deny_unknown_fields)]
pub struct MigrateStrategy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_healthy_time: Option<NomadDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_deadline: Option<NomadDuration>,
}

/// Local restarts of a failed task (`structs.RestartPolicy`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase")]
#[schemars(deny_unknown_fields)]
pub struct RestartPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<NomadDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<NomadDuration>,
    /// `fail` or `delay`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub render_templates: Option<bool>,
}

/// Rescheduling of failed allocations onto other nodes (`structs.ReschedulePolicy`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase")]
#[schemars(deny_unknown_fields)]
pub struct ReschedulePolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<NomadDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<NomadDuration>,
    /// `constant`, `exponential` or `fibonacci`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_function: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_delay: Option<NomadDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unlimited: Option<bool>,
}

/// The allocation's scratch disk (`structs.EphemeralDisk`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase")]
#[schemars(deny_unknown_fields)]
pub struct EphemeralDisk {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sticky: Option<bool>,
    #[serde(rename = "SizeMB", default, skip_serializing_if = "Option::is_none")]
    pub size_mb: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrate: Option<bool>,
}

/// Task log rotation (`structs.LogConfig`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase")]
#[schemars(deny_unknown_fields)]
pub struct LogConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_files: Option<i64>,
    #[serde(
        rename = "MaxFileSizeMB",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub max_file_size_mb: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
}

/// A network block (`structs.NetworkResource`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase")]
#[schemars(deny_unknown_fields)]
pub struct NetworkResource {
    /// `host`, `bridge`, `none` or `cni/<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    #[serde(rename = "CIDR", default, skip_serializing_if = "Option::is_none")]
    pub cidr: Option<String>,
    #[serde(rename = "IP", default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(rename = "MBits", default, skip_serializing_if = "Option::is_none")]
    pub mbits: Option<i64>,
    #[serde(rename = "DNS", default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved_ports: Option<Vec<Port>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamic_ports: Option<Vec<Port>>,
}

/// A port label, its static value (reserved ports) and the port it maps to inside the task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase")]
#[schemars(deny_unknown_fields)]
pub struct Port {
    #[serde(default)]
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_network: Option<String>,
}

/// A service registration with its health checks (`structs.Service`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase")]
#[schemars(deny_unknown_fields)]
pub struct Service {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_tag_override: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_tags: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checks: Option<Vec<ServiceCheck>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<StringMap>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_meta: Option<StringMap>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tagged_addresses: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_update: Option<String>,
    /// `consul` (default) or `nomad`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// A health check of a service (`structs.ServiceCheck`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "PascalCase")]
#[schemars(deny_unknown_fields)]
pub struct ServiceCheck {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `http`, `tcp`, `grpc` or `script`.
    #[serde(default)]
    pub r#type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expose: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<NomadDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<NomadDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    #[serde(
        rename = "TLSServerName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub tls_server_name: Option<String>,
    #[serde(
        rename = "TLSSkipVerify",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub tls_skip_verify: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<BTreeMap<String, Vec<String>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_restart: Option<Value>,
    #[serde(
        rename = "GRPCService",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub grpc_service: Option<String>,
    #[serde(
        rename = "GRPCUseTLS",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub grpc_use_tls: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_before_passing: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failures_before_critical: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failures_before_warning: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_update: Option<String>,
}
