//! Client nodes: `Node` (`GET /v1/node/:id`), `NodeListStub` (`GET /v1/nodes`), drain and
//! eligibility.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{DrainStatus, NodeStatus, NomadDuration, SchedulingEligibility, StringMap};

/// A client node as `GET /v1/node/:id` returns it (`structs.Node`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Node {
    #[serde(rename = "ID", default)]
    pub id: String,
    /// Always empty over the HTTP API.
    #[serde(rename = "SecretID", default, skip_serializing_if = "Option::is_none")]
    pub secret_id: Option<String>,
    #[serde(default)]
    pub datacenter: String,
    #[serde(default)]
    pub name: String,
    #[serde(rename = "HTTPAddr", default)]
    pub http_addr: String,
    #[serde(rename = "TLSEnabled", default)]
    pub tls_enabled: bool,
    /// Fingerprinted attributes such as `kernel.name`, `cpu.arch`, `nomad.version`,
    /// `unique.hostname`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<StringMap>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_resources: Option<NodeResources>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved_resources: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub links: Option<StringMap>,
    /// Operator-set metadata, which the list stub does not contain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<StringMap>,
    #[serde(default)]
    pub node_class: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_pool: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub computed_class: Option<String>,
    /// Added by Nomad's JSON encoder: true while `DrainStrategy` is set.
    #[serde(default)]
    pub drain: bool,
    /// The drain in progress, or `None` when the node is not draining.
    #[serde(default)]
    pub drain_strategy: Option<DrainStrategy>,
    #[serde(default)]
    pub scheduling_eligibility: SchedulingEligibility,
    #[serde(default)]
    pub status: NodeStatus,
    #[serde(default)]
    pub status_description: String,
    /// Unix seconds, unlike the nanosecond `*Time` fields elsewhere.
    #[serde(default)]
    pub status_updated_at: i64,
    /// The last ten node events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drivers: Option<BTreeMap<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_volumes: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_networks: Option<Value>,
    #[serde(default)]
    pub last_drain: Option<DrainMetadata>,
    #[serde(default)]
    pub create_index: u64,
    #[serde(default)]
    pub modify_index: u64,
    /// Fields this crate does not model, kept so that they serialize back unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Node {
    /// Returns one fingerprinted attribute, such as `unique.hostname`.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.as_ref()?.get(key).map(String::as_str)
    }

    /// Returns one entry of the node's `Meta`.
    pub fn meta_value(&self, key: &str) -> Option<&str> {
        self.meta.as_ref()?.get(key).map(String::as_str)
    }
}

/// A node as `GET /v1/nodes` returns it (`structs.NodeListStub`). It has no `Meta`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeListStub {
    /// The host part of the node's HTTP address.
    #[serde(default)]
    pub address: String,
    #[serde(rename = "ID", default)]
    pub id: String,
    /// Only with `?os=true`, and then only `os.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<StringMap>,
    #[serde(default)]
    pub datacenter: String,
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_pool: Option<String>,
    #[serde(default)]
    pub node_class: String,
    /// The Nomad version of the node's agent.
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub drain: bool,
    #[serde(default)]
    pub scheduling_eligibility: SchedulingEligibility,
    #[serde(default)]
    pub status: NodeStatus,
    #[serde(default)]
    pub status_description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drivers: Option<BTreeMap<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_volumes: Option<Value>,
    /// Only with `?resources=true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_resources: Option<NodeResources>,
    /// Only with `?resources=true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved_resources: Option<Value>,
    #[serde(default)]
    pub last_drain: Option<DrainMetadata>,
    #[serde(default)]
    pub create_index: u64,
    #[serde(default)]
    pub modify_index: u64,
    /// Fields this crate does not model, kept so that they serialize back unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Resources a node offers to the scheduler (`structs.NodeResources`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeResources {
    #[serde(default)]
    pub cpu: NodeCpuResources,
    #[serde(default)]
    pub memory: NodeMemoryResources,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<NodeDiskResources>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub networks: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_networks: Option<Vec<Value>>,
    /// Devices such as GPUs, grouped by vendor, type and model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devices: Option<Vec<NodeDeviceResource>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_dynamic_port: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_dynamic_port: Option<u64>,
    /// Fields this crate does not model, kept so that they serialize back unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A node's CPU (`structs.NodeCpuResources`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeCpuResources {
    /// Total compute in MHz.
    #[serde(default)]
    pub cpu_shares: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_cpu_cores: Option<u64>,
    /// Core IDs a task may reserve with `Cores`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservable_cpu_cores: Option<Vec<u64>>,
    /// Fields this crate does not model, kept so that they serialize back unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A node's memory (`structs.NodeMemoryResources`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeMemoryResources {
    #[serde(rename = "MemoryMB", default)]
    pub memory_mb: i64,
}

/// A node's disk (`structs.NodeDiskResources`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeDiskResources {
    #[serde(rename = "DiskMB", default)]
    pub disk_mb: i64,
}

/// One group of identical devices on a node (`structs.NodeDeviceResource`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeDeviceResource {
    /// Such as `nvidia`.
    #[serde(default)]
    pub vendor: String,
    /// Such as `gpu`.
    #[serde(default)]
    pub r#type: String,
    /// The model, such as `Tesla T4`.
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<Vec<NodeDevice>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<BTreeMap<String, Value>>,
}

impl NodeDeviceResource {
    /// Counts the device instances that report healthy.
    pub fn healthy_instances(&self) -> usize {
        self.instances
            .as_deref()
            .unwrap_or(&[])
            .iter()
            .filter(|device| device.healthy)
            .count()
    }
}

/// One device instance (`structs.NodeDevice`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeDevice {
    #[serde(rename = "ID", default)]
    pub id: String,
    #[serde(default)]
    pub healthy: bool,
    #[serde(default)]
    pub health_description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locality: Option<Value>,
}

/// A drain as stored on the node (`structs.DrainStrategy`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DrainStrategy {
    /// Negative: force now. Zero: no deadline. Positive: the time allowed.
    #[serde(default)]
    pub deadline: NomadDuration,
    #[serde(default)]
    pub ignore_system_jobs: bool,
    /// When remaining allocations are stopped (RFC 3339), or Go's zero time without a deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_deadline: Option<jiff::Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<jiff::Timestamp>,
}

/// A drain as requested (`api.DrainSpec`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DrainSpec {
    /// Negative: force now. Zero: no deadline. Positive: the time allowed before remaining
    /// allocations are stopped.
    #[serde(default)]
    pub deadline: NomadDuration,
    #[serde(default)]
    pub ignore_system_jobs: bool,
}

/// The record of a node's last drain (`structs.DrainMetadata`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DrainMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<jiff::Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<jiff::Timestamp>,
    #[serde(default)]
    pub status: DrainStatus,
    #[serde(
        rename = "AccessorID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub accessor_id: Option<String>,
    /// The `Meta` sent with the drain request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<StringMap>,
}

/// Body of `POST /v1/node/:id/drain`. A `DrainSpec` of `None` cancels the drain, and then
/// `MarkEligible` makes the node eligible again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeDrainRequest {
    #[serde(default)]
    pub drain_spec: Option<DrainSpec>,
    #[serde(default)]
    pub mark_eligible: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<StringMap>,
}

/// Body of `POST /v1/node/:id/eligibility`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeEligibilityRequest {
    pub eligibility: SchedulingEligibility,
}

/// Response of the node drain and eligibility endpoints.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeUpdateResponse {
    #[serde(default)]
    pub node_modify_index: u64,
    #[serde(rename = "EvalIDs", default)]
    pub eval_ids: Option<Vec<String>>,
    #[serde(default)]
    pub eval_create_index: u64,
    #[serde(default)]
    pub index: u64,
}
