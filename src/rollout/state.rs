//! The rollout state kept in the pool's status under `rollout`, as camelCase JSON.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::reconcile::Status;

/// The phase of a golden-first rollout.
///
/// ```text
///                 spec.version differs from the version every zone runs
///                                    │
///                                    ▼
///   ┌───────────────────────── Prefetching ──── prefetch.enabled: false ──┐
///   │ pull authorization error,      │ every eligible node pulled          │
///   │ prefetch.timeout               ▼                                     │
///   │                              Golden ◀────────────────────────────────┘
///   │                 (surge the first zone, then one canary of the new version)
///   │                                │ canary healthy
///   │                                ▼
///   │                             Soaking ──── analysis without data ──▶ paused
///   │                                │         (same phase, until `resume`)
///   │                                │ ─── golden worker lost with its node ──▶ Golden
///   │                                │     (Nomad places a new canary; it soaks anew)
///   │                                │ healthy for goldenSoak, analysis held
///   │                                ▼
///   │                             Rolling  (promote, then zone by zone:
///   │                                │      surge up, replace, surge down)
///   │                                │ every zone runs the new version
///   │                                ▼
///   │                             Complete
///   │
///   │   Golden, Soaking, Rolling: canary or deployment unhealthy, analysis
///   │   failed, a deadline passed, `abort`, or spec.version changed again
///   │                                │
///   │                                ▼ (autoRollback; otherwise straight to Failed)
///   │                            RollingBack (fail the deployment, then zone by
///   │                                │        zone back to the previous version)
///   │                                ▼ every zone runs the previous version, or
///   │                                │ the rollback's own deadline passed
///   └──────────────────────────────▶ Failed ──── `retry` ──▶ Prefetching
///                                      │
///     spec.version back at the version │ `retry` while a zone keeps the failed
///     the rollout started from         │ version registered (no autoRollback)
///                                      ▼
///                            Rolling (a restore: zone by zone back, no golden step)
///                                      │
///                                      ▼ Complete, or Prefetching again after a `retry`
/// ```
///
/// `Complete` and `Failed` are terminal: the state stays in the status until `spec.version`
/// changes again (or `retry` restarts a failed rollout), so the reason remains visible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RolloutPhase {
    Prefetching,
    Golden,
    Soaking,
    Rolling,
    Complete,
    RollingBack,
    Failed,
}

impl RolloutPhase {
    /// Whether the rollout still acts on Nomad.
    pub fn is_active(self) -> bool {
        !matches!(self, Self::Complete | Self::Failed)
    }
}

impl std::fmt::Display for RolloutPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self {
            Self::Prefetching => "Prefetching",
            Self::Golden => "Golden",
            Self::Soaking => "Soaking",
            Self::Rolling => "Rolling",
            Self::Complete => "Complete",
            Self::RollingBack => "RollingBack",
            Self::Failed => "Failed",
        };
        f.write_str(text)
    }
}

/// Progress of the image pull on one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PullState {
    /// No prefetch allocation on the node yet.
    Pending,
    /// The prefetch allocation is placed or running.
    Pulling,
    /// The prefetch allocation completed: the image is on the node.
    Pulled,
    /// The prefetch allocation failed.
    Failed,
}

/// The image pull on one eligible node of the pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodePrefetch {
    pub node_id: String,
    pub zone: String,
    pub state: PullState,
    /// The failure message from the task events, when the pull failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The golden worker: the one canary of the new version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GoldenWorker {
    pub allocation_id: String,
    pub node_id: String,
    pub zone: String,
    /// When the golden worker was first seen healthy; the soak counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_since: Option<Timestamp>,
}

/// Progress of one zone: how many of its workers run the target version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ZoneProgress {
    pub zone: String,
    /// The zone's worker count when the rollout started; surge adds to it temporarily.
    pub desired: u32,
    /// Running workers of the zone's live job version whose group runs the target version.
    pub updated: u32,
    /// Healthy workers of the zone, of any version.
    pub healthy: u32,
    /// The version the zone's task group is registered with now.
    pub version: String,
}

/// A pause that waits for a person: its reason, start and sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PauseState {
    pub reason: String,
    pub since: Timestamp,
    /// The sender: a `steward rollout pause` user, or `steward` for an inconclusive analysis.
    pub by: String,
    /// When Nomad fails the paused deployment at its progress deadline, which a pause does
    /// not move. The rollout then rolls back when it resumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nomad_deadline: Option<Timestamp>,
}

/// The stored state of one rollout. The controller keeps it in the pool's status and passes
/// it back to [`super::step`]; when it is missing (a new controller without status), `step`
/// re-derives it from the live job, the deployment and the allocations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutState {
    pub phase: RolloutPhase,
    /// The version every zone ran before the rollout, and the one a rollback restores.
    pub from_version: String,
    pub to_version: String,
    pub started_at: Timestamp,
    pub phase_started_at: Timestamp,
    /// The phase fails when it makes no progress by then. Moves on every step that acts, and
    /// by the time spent paused.
    pub phase_deadline: Timestamp,
    /// Each zone's worker count when the rollout started, in `spec.zones` order. The rollout
    /// keeps these counts (plus surge) until it ends, whatever sizing requests meanwhile.
    pub counts: Vec<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub golden: Option<GoldenWorker>,
    /// When the golden canary was registered; the wait for capacity counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_requested_at: Option<Timestamp>,
    /// When the golden worker's soak ends, set once it is healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soak_until: Option<Timestamp>,
    #[serde(default)]
    pub prefetch: Vec<NodePrefetch>,
    #[serde(default)]
    pub zones: Vec<ZoneProgress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<PauseState>,
    /// Set by `resume` after an inconclusive analysis: missing data no longer pauses the
    /// rollout, but a failed analysis still rolls it back.
    #[serde(default)]
    pub inconclusive_accepted: bool,
    /// When the last analysis sample that was acted on was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_analysis_at: Option<Timestamp>,
    /// `at` of the last control command acted on, so that each command applies once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_control_at: Option<Timestamp>,
    /// The Consul index at which the rollout started: the pool spec's `ModifyIndex`, or the
    /// `retry` command's. A control command written at a higher index is meant for this
    /// rollout. 0 in a state stored before indexes were kept, which compares `at` instead.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub started_index: u64,
    /// The control key's `ModifyIndex` of the last command acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_control_index: Option<u64>,
    /// The deployment a rollback failed (or found failed), which counts as finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_deployment_id: Option<String>,
    /// The reason the rollout is rolling back or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// The event the rollout waits for now, such as "waiting for capacity for 2m 10s".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
    /// Whether this roll restores the version a failed rollout started from
    /// (`to_version`) in place of the failed one (`from_version`). A restore never rolls
    /// back: that would put the failed version on zones again. In a `Failed` state, it
    /// marks a restore that failed, which waits for `retry`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restore: bool,
}

impl RolloutState {
    /// Reads the rollout state stored in a pool's status (`rollout` field), `Ok(None)` when
    /// the status has none. A field that does not parse (written by an incompatible
    /// controller) is an error, and the caller then re-derives the state from Nomad.
    pub fn from_status(status: &Status) -> Result<Option<Self>, serde_json::Error> {
        match &status.rollout {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(value) => serde_json::from_value(value.clone()).map(Some),
        }
    }

    /// Converts the state into the JSON stored in the status's `rollout` field.
    pub fn to_status_value(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("a rollout state always serializes to JSON")
    }

    /// Moves to `phase` at `now` with a new phase deadline.
    pub(super) fn enter(&mut self, phase: RolloutPhase, now: Timestamp, deadline: Timestamp) {
        self.phase = phase;
        self.phase_started_at = now;
        self.phase_deadline = deadline;
        self.waiting = None;
    }
}

/// Serde helper: leaves an unknown index out of the stored state.
fn is_zero(value: &u64) -> bool {
    *value == 0
}
