//! The status object written to `steward/status/<name>`: pretty-printed camelCase JSON.
//!
//! The planner produces a [`StatusReport`] (what it observed and decided); [`Status::next`]
//! merges it into the previously stored status, keeping condition transition times and the
//! last [`MAX_DECISIONS`] decisions. [`Status::differs_from`] decides whether the result is worth
//! writing.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::sizing::{OverrideReport, SizingDecision};

/// How many decisions a status keeps, newest last.
pub const MAX_DECISIONS: usize = 20;

/// The pool's overall state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Every zone runs its desired count of healthy workers.
    Ready,
    /// Counts are changing or workers are starting.
    Scaling,
    /// A new version or template is being deployed.
    RollingOut,
    /// The pool runs but something needs attention: a zone without nodes, a job owned by
    /// another pool, a failed deployment.
    Degraded,
    /// `spec.paused` is set: status is reported, nothing is changed.
    Paused,
    /// The last reconcile failed.
    Error,
}

impl Phase {
    /// Every phase, in declaration order.
    pub const ALL: [Self; 6] = [
        Self::Ready,
        Self::Scaling,
        Self::RollingOut,
        Self::Degraded,
        Self::Paused,
        Self::Error,
    ];
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self {
            Self::Ready => "Ready",
            Self::Scaling => "Scaling",
            Self::RollingOut => "RollingOut",
            Self::Degraded => "Degraded",
            Self::Paused => "Paused",
            Self::Error => "Error",
        };
        f.write_str(text)
    }
}

/// Kubernetes-style condition status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

/// Condition types Steward sets.
pub mod condition_type {
    /// Every zone runs its desired count of healthy workers.
    pub const READY: &str = "Ready";
    /// Steward owns the job under the pool's job ID (its `steward.pool` meta names the pool).
    pub const JOB_OWNED: &str = "JobOwned";
    /// Every zone has at least one node that accepts work.
    pub const ZONES_AVAILABLE: &str = "ZonesAvailable";
    /// An override sets the worker count.
    pub const OVERRIDE_ACTIVE: &str = "OverrideActive";
    /// A deployment of the job is in progress.
    pub const DEPLOYING: &str = "Deploying";
    /// The last metric read of the autoscaler succeeded.
    pub const METRICS_AVAILABLE: &str = "MetricsAvailable";
    /// `spec.autoscaling` is valid and its metric source could be built.
    pub const AUTOSCALER_CONFIGURED: &str = "AutoscalerConfigured";
}

/// One condition with the time its status last flipped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    pub r#type: String,
    pub status: ConditionStatus,
    /// A CamelCase word for machines, such as `ZoneUnavailable`.
    pub reason: String,
    pub message: String,
    /// Changes only when `status` changes.
    pub last_transition_time: Timestamp,
}

/// A condition as the planner observed it, without a transition time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionReport {
    pub r#type: &'static str,
    pub status: ConditionStatus,
    pub reason: String,
    pub message: String,
}

/// One thing the controller decided, including deciding to do nothing, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub time: Timestamp,
    /// The decided action, such as `scale zone a 2 -> 3` or `no change`.
    pub action: String,
    pub reason: String,
}

/// A decision as the planner made it, without a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionReport {
    pub action: String,
    pub reason: String,
}

/// Desired, running and healthy worker counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerCounts {
    pub desired: u32,
    pub running: u32,
    pub healthy: u32,
}

/// Worker counts of one zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ZoneStatus {
    pub name: String,
    /// Whether the zone has at least one node that accepts work.
    pub available: bool,
    #[serde(flatten)]
    pub workers: WorkerCounts,
}

/// The planner's observations and decisions of one reconcile.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusReport {
    pub phase: Phase,
    pub workers: WorkerCounts,
    pub zones: Vec<ZoneStatus>,
    pub sizing: Option<SizingDecision>,
    pub conditions: Vec<ConditionReport>,
    pub decisions: Vec<DecisionReport>,
    pub last_error: Option<String>,
}

/// The stored status of one pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// The pool's name.
    pub pool: String,
    /// The Consul `ModifyIndex` of the pool's key that this status was computed from.
    pub observed_generation: u64,
    pub phase: Phase,
    /// Totals over every zone.
    pub workers: WorkerCounts,
    pub zones: Vec<ZoneStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sizing: Option<SizingDecision>,
    /// Progress of the golden-first rollout.
    // TODO: replace with the rollout module's typed progress once it exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<serde_json::Value>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The last decisions, oldest first, at most [`MAX_DECISIONS`].
    #[serde(default)]
    pub decisions: Vec<Decision>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#override: Option<OverrideReport>,
    /// The controller instance that wrote the status.
    pub written_by: String,
    pub updated_at: Timestamp,
}

impl Status {
    /// Builds the status to store after a reconcile from the planner's report and the
    /// previously stored status.
    ///
    /// A condition keeps its `lastTransitionTime` while its status stays the same. A decision
    /// is appended only when it differs from the newest stored one. Nothing is appended when
    /// the reconcile repeats the decisions of the one before it. So a converged or waiting
    /// pool neither churns its status nor pushes older decisions out. Beyond [`MAX_DECISIONS`], the oldest decisions are dropped. The rollout
    /// progress is carried over from `previous`.
    pub fn next(
        pool: &str,
        previous: Option<&Status>,
        report: &StatusReport,
        observed_generation: u64,
        written_by: &str,
        now: Timestamp,
    ) -> Status {
        let conditions = report
            .conditions
            .iter()
            .map(|condition| {
                let earlier = previous.and_then(|p| p.condition(condition.r#type));
                let last_transition_time = match earlier {
                    Some(earlier) if earlier.status == condition.status => {
                        earlier.last_transition_time
                    }
                    _ => now,
                };
                Condition {
                    r#type: condition.r#type.to_owned(),
                    status: condition.status,
                    reason: condition.reason.clone(),
                    message: condition.message.clone(),
                    last_transition_time,
                }
            })
            .collect();

        let mut decisions = previous.map(|p| p.decisions.clone()).unwrap_or_default();
        let count = report.decisions.len();
        let repeats_last_reconcile = count > 0
            && decisions.len() >= count
            && decisions[decisions.len() - count..]
                .iter()
                .zip(&report.decisions)
                .all(|(stored, new)| stored.action == new.action && stored.reason == new.reason);
        let new_decisions = if repeats_last_reconcile {
            &[][..]
        } else {
            &report.decisions[..]
        };
        for decision in new_decisions {
            let repeated = decisions.last().is_some_and(|last| {
                last.action == decision.action && last.reason == decision.reason
            });
            if !repeated {
                decisions.push(Decision {
                    time: now,
                    action: decision.action.clone(),
                    reason: decision.reason.clone(),
                });
            }
        }
        if decisions.len() > MAX_DECISIONS {
            decisions.drain(..decisions.len() - MAX_DECISIONS);
        }

        Status {
            pool: pool.to_owned(),
            observed_generation,
            phase: report.phase,
            workers: report.workers,
            zones: report.zones.clone(),
            sizing: report.sizing.clone(),
            rollout: previous.and_then(|p| p.rollout.clone()),
            conditions,
            last_error: report.last_error.clone(),
            decisions,
            r#override: report.sizing.as_ref().and_then(|s| s.r#override.clone()),
            written_by: written_by.to_owned(),
            updated_at: now,
        }
    }

    /// Returns the condition of this type, if set.
    pub fn condition(&self, r#type: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.r#type == r#type)
    }

    /// Returns the newest decision.
    pub fn last_decision(&self) -> Option<&Decision> {
        self.decisions.last()
    }

    /// Whether this status differs from `stored` in anything but `updatedAt` and
    /// `writtenBy`. Status is written only when this holds.
    pub fn differs_from(&self, stored: &Status) -> bool {
        let mut left = self.clone();
        let mut right = stored.clone();
        for status in [&mut left, &mut right] {
            status.updated_at = Timestamp::UNIX_EPOCH;
            status.written_by.clear();
        }
        left != right
    }

    /// Serializes the status as the pretty-printed JSON stored in Consul.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a Status always serializes to JSON")
    }
}
