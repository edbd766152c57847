//! The observed cluster as the planner reads it: the owned job, its allocations, the nodes and
//! the latest deployment. The watch layer maps the Nomad client's models into these types.

use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::nomad::Job;
use crate::spec::Zone;

/// Everything the planner reads about one pool's part of the cluster.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// The job under the pool's job ID, or `None` when Nomad has no such job.
    pub job: Option<ObservedJob>,
    /// Allocations of that job, of every version and status.
    pub allocations: Vec<ObservedAllocation>,
    /// Every node of the cluster (the planner filters them by zone).
    pub nodes: NodeList,
    /// The job's latest deployment, if it ever had one.
    pub deployment: Option<ObservedDeployment>,
}

/// The cluster's nodes, shared between the views of every pool.
///
/// Cloning is one reference-count increment, so a reconcile copies no node. Mutable access
/// (tests, fakes) copies the list first when another view still shares it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeList(Arc<Vec<ObservedNode>>);

impl Deref for NodeList {
    type Target = Vec<ObservedNode>;

    fn deref(&self) -> &Vec<ObservedNode> {
        &self.0
    }
}

impl DerefMut for NodeList {
    fn deref_mut(&mut self) -> &mut Vec<ObservedNode> {
        Arc::make_mut(&mut self.0)
    }
}

impl From<Vec<ObservedNode>> for NodeList {
    fn from(nodes: Vec<ObservedNode>) -> Self {
        Self(Arc::new(nodes))
    }
}

impl FromIterator<ObservedNode> for NodeList {
    fn from_iter<I: IntoIterator<Item = ObservedNode>>(iter: I) -> Self {
        Self(Arc::new(iter.into_iter().collect()))
    }
}

/// A job as `GET /v1/job/:id` returned it.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedJob {
    pub job: Job,
    /// The job's `JobModifyIndex`: the value `EnforceIndex` checks on register. It moves only
    /// when the spec changes (a scale counts), unlike `ModifyIndex`.
    pub job_modify_index: u64,
}

impl ObservedJob {
    /// Wraps a job read from Nomad, taking `JobModifyIndex` from the job itself (0 when unset).
    /// The group and task lists are trimmed to their length, because a decoded list keeps
    /// spare capacity and the cache stores one job per pool.
    pub fn new(mut job: Job) -> Self {
        if let Some(groups) = job.task_groups.as_mut() {
            groups.shrink_to_fit();
            for tasks in groups.iter_mut().filter_map(|group| group.tasks.as_mut()) {
                tasks.shrink_to_fit();
            }
        }
        let job_modify_index = job.job_modify_index.unwrap_or(0);
        Self {
            job,
            job_modify_index,
        }
    }

    /// Returns Nomad's desired `Count` of one task group, or `None` when the group is missing.
    pub fn group_count(&self, group: &str) -> Option<u32> {
        let count = self.job.group(group)?.count.unwrap_or(0);
        Some(u32::try_from(count.max(0)).unwrap_or(u32::MAX))
    }

    /// Returns the pool named by the job's `steward.pool` meta, if the job carries it.
    pub fn owner(&self) -> Option<&str> {
        self.job.meta_value(super::META_POOL)
    }
}

/// An allocation's `ClientStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientStatus {
    Pending,
    Running,
    Complete,
    Failed,
    Lost,
    Unknown,
}

impl ClientStatus {
    /// Parses Nomad's wire value; anything unrecognized is `Unknown`.
    pub fn from_nomad(value: &str) -> Self {
        match value {
            "pending" => Self::Pending,
            "running" => Self::Running,
            "complete" => Self::Complete,
            "failed" => Self::Failed,
            "lost" => Self::Lost,
            _ => Self::Unknown,
        }
    }
}

/// An allocation's `DesiredStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DesiredStatus {
    Run,
    Stop,
    Evict,
}

impl DesiredStatus {
    /// Parses Nomad's wire value; anything but `run` and `evict` counts as `Stop`.
    pub fn from_nomad(value: &str) -> Self {
        match value {
            "run" => Self::Run,
            "evict" => Self::Evict,
            _ => Self::Stop,
        }
    }
}

/// `DeploymentStatus.Healthy` of an allocation, which is null until Nomad has a health result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AllocHealth {
    #[default]
    Unknown,
    Healthy,
    Unhealthy,
}

impl AllocHealth {
    /// Maps Nomad's nullable `Healthy` flag.
    pub fn from_nomad(healthy: Option<bool>) -> Self {
        match healthy {
            None => Self::Unknown,
            Some(true) => Self::Healthy,
            Some(false) => Self::Unhealthy,
        }
    }
}

/// One allocation of the owned job.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedAllocation {
    pub id: String,
    /// The task group, which is the zone's name.
    pub task_group: String,
    pub node_id: String,
    pub job_version: u64,
    pub client_status: ClientStatus,
    pub desired_status: DesiredStatus,
    pub health: AllocHealth,
    /// Whether the allocation is a canary of the current deployment.
    pub canary: bool,
}

impl ObservedAllocation {
    /// Returns whether Nomad intends this allocation to run.
    pub fn wants_to_run(&self) -> bool {
        self.desired_status == DesiredStatus::Run
    }

    /// Returns whether the allocation is running and meant to keep running.
    pub fn is_running(&self) -> bool {
        self.wants_to_run() && self.client_status == ClientStatus::Running
    }

    /// Returns whether the allocation is on its way to running (placed, not yet started).
    pub fn is_starting(&self) -> bool {
        self.wants_to_run() && self.client_status == ClientStatus::Pending
    }

    /// Returns whether the allocation is meant to run and may still become healthy: placed
    /// and not yet started, or running while Nomad has not yet judged its health.
    pub fn is_becoming_ready(&self) -> bool {
        self.is_starting() || (self.is_running() && self.health == AllocHealth::Unknown)
    }

    /// Whether the allocation is running and Nomad marked it healthy. A running allocation
    /// whose health is unknown is not counted as healthy.
    pub fn is_healthy(&self) -> bool {
        self.is_running() && self.health == AllocHealth::Healthy
    }
}

/// A node's `Status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeStatus {
    Initializing,
    Ready,
    Down,
    Disconnected,
}

impl NodeStatus {
    /// Parses Nomad's wire value; anything unrecognized counts as `Down`.
    pub fn from_nomad(value: &str) -> Self {
        match value {
            "ready" => Self::Ready,
            "initializing" => Self::Initializing,
            "disconnected" => Self::Disconnected,
            _ => Self::Down,
        }
    }
}

/// One Nomad node. `meta` comes from `GET /v1/node/:id`, because the node list has no `Meta`.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedNode {
    pub id: String,
    pub datacenter: String,
    pub meta: BTreeMap<String, String>,
    pub attributes: BTreeMap<String, String>,
    pub status: NodeStatus,
    /// `SchedulingEligibility == "eligible"`.
    pub eligible: bool,
    /// Whether a drain strategy is set.
    pub draining: bool,
}

impl ObservedNode {
    /// Returns whether the scheduler may place new allocations on the node.
    pub fn accepts_work(&self) -> bool {
        self.status == NodeStatus::Ready && self.eligible && !self.draining
    }

    /// Resolves a Nomad interpolation target such as `${meta.zone}`, `${attr.unique.hostname}`
    /// or `${node.datacenter}` against this node. Returns `None` for targets the node lacks or
    /// that this function does not resolve.
    pub fn resolve(&self, target: &str) -> Option<&str> {
        let inner = target.strip_prefix("${")?.strip_suffix('}')?;
        if let Some(key) = inner.strip_prefix("meta.") {
            return self.meta.get(key).map(String::as_str);
        }
        if let Some(key) = inner.strip_prefix("attr.") {
            return self.attributes.get(key).map(String::as_str);
        }
        match inner {
            "node.datacenter" => Some(&self.datacenter),
            "node.unique.id" => Some(&self.id),
            _ => None,
        }
    }

    /// Whether the node belongs to the zone: its datacenter matches, or its attribute or meta
    /// value equals the zone constraint's value.
    pub fn in_zone(&self, zone: &Zone) -> bool {
        if let Some(datacenter) = &zone.datacenter {
            return &self.datacenter == datacenter;
        }
        match &zone.constraint {
            Some(constraint) => self.resolve(&constraint.attribute) == Some(&constraint.value),
            None => false,
        }
    }
}

/// A deployment's `Status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeploymentStatus {
    Initializing,
    Running,
    Pending,
    Blocked,
    Unblocking,
    Paused,
    Successful,
    Failed,
    Cancelled,
}

impl DeploymentStatus {
    /// Parses Nomad's wire value; anything unrecognized counts as `Running`, so a scale is
    /// deferred rather than sent into an unknown deployment state.
    pub fn from_nomad(value: &str) -> Self {
        match value {
            "initializing" => Self::Initializing,
            "pending" => Self::Pending,
            "blocked" => Self::Blocked,
            "unblocking" => Self::Unblocking,
            "paused" => Self::Paused,
            "successful" => Self::Successful,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            _ => Self::Running,
        }
    }

    /// Whether the deployment is still in progress. Nomad rejects a scale of a job with an
    /// active deployment ("job scaling blocked due to active deployment").
    pub fn is_active(self) -> bool {
        !matches!(self, Self::Successful | Self::Failed | Self::Cancelled)
    }
}

/// The job's latest deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedDeployment {
    pub id: String,
    pub status: DeploymentStatus,
    pub job_version: u64,
}

/// Per-zone worker counts derived from the allocations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ZoneCounts {
    pub running: u32,
    pub starting: u32,
    pub healthy: u32,
    /// Starting, or running while Nomad has not yet judged their health.
    pub becoming_ready: u32,
}

impl Observed {
    /// Counts running, starting and healthy allocations of one task group.
    pub fn zone_counts(&self, group: &str) -> ZoneCounts {
        let mut counts = ZoneCounts::default();
        for allocation in self.allocations.iter().filter(|a| a.task_group == group) {
            counts.running += u32::from(allocation.is_running());
            counts.starting += u32::from(allocation.is_starting());
            counts.healthy += u32::from(allocation.is_healthy());
            counts.becoming_ready += u32::from(allocation.is_becoming_ready());
        }
        counts
    }

    /// Returns whether the zone has at least one node that accepts work.
    pub fn zone_available(&self, zone: &Zone) -> bool {
        self.nodes
            .iter()
            .any(|node| node.in_zone(zone) && node.accepts_work())
    }

    /// Returns whether the latest deployment is still in progress.
    pub fn deployment_active(&self) -> bool {
        self.deployment
            .as_ref()
            .is_some_and(|deployment| deployment.status.is_active())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::ZoneConstraint;

    fn node(datacenter: &str) -> ObservedNode {
        ObservedNode {
            id: "n1".to_owned(),
            datacenter: datacenter.to_owned(),
            meta: BTreeMap::from([("zone".to_owned(), "a".to_owned())]),
            attributes: BTreeMap::from([(
                "platform.aws.placement.availability-zone".to_owned(),
                "eu-west-1a".to_owned(),
            )]),
            status: NodeStatus::Ready,
            eligible: true,
            draining: false,
        }
    }

    fn zone(datacenter: Option<&str>, constraint: Option<(&str, &str)>) -> Zone {
        Zone {
            name: "a".to_owned(),
            datacenter: datacenter.map(str::to_owned),
            constraint: constraint.map(|(attribute, value)| ZoneConstraint {
                attribute: attribute.to_owned(),
                value: value.to_owned(),
            }),
        }
    }

    #[test]
    fn resolve_node_targets() {
        let node = node("dc1");
        assert_eq!(node.resolve("${meta.zone}"), Some("a"));
        assert_eq!(
            node.resolve("${attr.platform.aws.placement.availability-zone}"),
            Some("eu-west-1a")
        );
        assert_eq!(node.resolve("${node.datacenter}"), Some("dc1"));
        assert_eq!(node.resolve("${node.unique.id}"), Some("n1"));
        assert_eq!(node.resolve("${meta.missing}"), None);
        assert_eq!(node.resolve("meta.zone"), None);
    }

    #[test]
    fn node_zone_membership() {
        let node = node("dc1");
        assert!(node.in_zone(&zone(Some("dc1"), None)));
        assert!(!node.in_zone(&zone(Some("dc2"), None)));
        assert!(node.in_zone(&zone(None, Some(("${meta.zone}", "a")))));
        assert!(!node.in_zone(&zone(None, Some(("${meta.zone}", "b")))));
        assert!(!node.in_zone(&zone(None, None)));
    }

    #[test]
    fn zone_unavailable_when_no_node_accepts_work() {
        let zone = zone(Some("dc1"), None);
        let mut observed = Observed {
            nodes: vec![node("dc1")].into(),
            ..Observed::default()
        };
        assert!(observed.zone_available(&zone));

        observed.nodes[0].draining = true;
        assert!(!observed.zone_available(&zone), "draining");

        observed.nodes[0].draining = false;
        observed.nodes[0].eligible = false;
        assert!(!observed.zone_available(&zone), "ineligible");

        observed.nodes[0].eligible = true;
        observed.nodes[0].status = NodeStatus::Down;
        assert!(!observed.zone_available(&zone), "down");

        observed.nodes.push(node("dc2"));
        assert!(
            !observed.zone_available(&zone),
            "a node elsewhere does not count"
        );
    }

    #[test]
    fn zone_counts_by_status() {
        let allocation =
            |id: &str, client: ClientStatus, desired: DesiredStatus, health| ObservedAllocation {
                id: id.to_owned(),
                task_group: "a".to_owned(),
                node_id: "n1".to_owned(),
                job_version: 1,
                client_status: client,
                desired_status: desired,
                health,
                canary: false,
            };
        let observed = Observed {
            allocations: vec![
                allocation(
                    "1",
                    ClientStatus::Running,
                    DesiredStatus::Run,
                    AllocHealth::Healthy,
                ),
                allocation(
                    "2",
                    ClientStatus::Running,
                    DesiredStatus::Run,
                    AllocHealth::Unknown,
                ),
                allocation(
                    "3",
                    ClientStatus::Pending,
                    DesiredStatus::Run,
                    AllocHealth::Unknown,
                ),
                allocation(
                    "4",
                    ClientStatus::Running,
                    DesiredStatus::Stop,
                    AllocHealth::Healthy,
                ),
                allocation(
                    "5",
                    ClientStatus::Failed,
                    DesiredStatus::Run,
                    AllocHealth::Unhealthy,
                ),
            ],
            ..Observed::default()
        };

        let counts = observed.zone_counts("a");
        assert_eq!(counts.running, 2);
        assert_eq!(counts.starting, 1);
        assert_eq!(counts.healthy, 1);
        assert_eq!(observed.zone_counts("b"), ZoneCounts::default());
    }

    #[test]
    fn wire_values_parse() {
        assert_eq!(ClientStatus::from_nomad("running"), ClientStatus::Running);
        assert_eq!(ClientStatus::from_nomad("bogus"), ClientStatus::Unknown);
        assert_eq!(DesiredStatus::from_nomad("evict"), DesiredStatus::Evict);
        assert_eq!(
            NodeStatus::from_nomad("disconnected"),
            NodeStatus::Disconnected
        );
        assert_eq!(AllocHealth::from_nomad(None), AllocHealth::Unknown);
        assert!(DeploymentStatus::from_nomad("paused").is_active());
        assert!(DeploymentStatus::from_nomad("bogus").is_active());
        assert!(!DeploymentStatus::from_nomad("successful").is_active());
        assert!(!DeploymentStatus::from_nomad("cancelled").is_active());
    }
}
