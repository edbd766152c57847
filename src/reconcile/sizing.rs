//! The sizing decision: how many workers a pool should run and why.
//!
//! Precedence: an active override, then the autoscaler's recommendation, then `workers.min`.
//! The result is bounded by `workers.min` and `workers.max`, except that an override is held
//! exactly (0 stays 0) and may exceed `max` only with `force`.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::spec::{Override, WorkerPool};

/// The origin of the desired worker count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SizingSource {
    /// An active override, held exactly.
    Override,
    /// The autoscaler's prediction, within the bounds.
    Autoscaler,
    /// `workers.min`: no autoscaler, or its value was below the minimum.
    Min,
    /// `workers.max`: the autoscaler or an unforced override asked for more.
    Max,
    /// The autoscaler's `fallback` count after repeated metric failures.
    Fallback,
    /// The count is held because the autoscaler could not decide (metric source failing).
    Hold,
}

impl SizingSource {
    /// Every source, in declaration order.
    pub const ALL: [Self; 6] = [
        Self::Override,
        Self::Autoscaler,
        Self::Min,
        Self::Max,
        Self::Fallback,
        Self::Hold,
    ];

    /// Returns the name used in status JSON and in metric labels, such as `override`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Override => "override",
            Self::Autoscaler => "autoscaler",
            Self::Min => "min",
            Self::Max => "max",
            Self::Fallback => "fallback",
            Self::Hold => "hold",
        }
    }
}

/// The autoscaler's recommendation for one pool. The planner only bounds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalerRecommendation {
    pub desired: u32,
    /// `Autoscaler`, `Fallback` or `Hold`.
    pub source: SizingSource,
    pub reason: String,
    /// The predicted peak request rate, in requests per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted_rps: Option<f64>,
    /// The numbers behind the prediction, such as `currentRps` or `capacityPerWorker`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_cycle: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cycle: Option<Timestamp>,
}

/// Whether the pool's override applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OverrideState {
    Active,
    Expired,
}

/// The override as reported in status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OverrideReport {
    pub state: OverrideState,
    pub workers: u32,
    pub until: Timestamp,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

/// How many workers the pool should run, where that number came from and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SizingDecision {
    pub desired: u32,
    pub source: SizingSource,
    /// One sentence an operator can read, such as "override 0 held until 2026-12-04T22:00Z".
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted_rps: Option<f64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_cycle: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cycle: Option<Timestamp>,
    /// The override, active or expired, when the pool has one. The status carries it at its
    /// top level, so it is not serialized here.
    #[serde(skip)]
    pub r#override: Option<OverrideReport>,
    /// When this decision must be revisited even if nothing changes: an override's `until`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revisit_at: Option<Timestamp>,
    /// The autoscaler's cycle times, latest decision and cooldown state; set by the controller
    /// for pools with `spec.autoscaling`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaler: Option<AutoscalerStatus>,
}

/// The autoscaler's progress, stored in the pool's status so that a restarted controller or
/// a new leader continues the same cycles and cooldowns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalerStatus {
    /// Start of the last sizing cycle: the time its metrics were read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_cycle: Option<Timestamp>,
    /// Time of the last emergency check of live traffic, or of the last cycle when later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_check: Option<Timestamp>,
    /// When the next sizing cycle is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cycle: Option<Timestamp>,
    /// The latest decision of a cycle or of an emergency check, with its inputs and
    /// prediction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<crate::autoscale::Decision>,
    /// The last failed metric read; cleared by a successful one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_error: Option<String>,
    /// Stabilization window, cooldown and failure count.
    #[serde(default)]
    pub state: crate::autoscale::SizingState,
}

impl SizingDecision {
    fn new(desired: u32, source: SizingSource, reason: String) -> Self {
        Self {
            desired,
            source,
            reason,
            predicted_rps: None,
            inputs: BTreeMap::new(),
            last_cycle: None,
            next_cycle: None,
            r#override: None,
            revisit_at: None,
            autoscaler: None,
        }
    }

    /// Returns how long from `now` until the decision must be revisited, if at all.
    pub fn revisit_after(&self, now: Timestamp) -> Option<Duration> {
        let at = self.revisit_at?;
        let nanos = at.as_nanosecond() - now.as_nanosecond();
        Some(Duration::from_nanos(
            u64::try_from(nanos.max(0)).unwrap_or(u64::MAX),
        ))
    }
}

/// Decides the pool's worker count at `now`.
///
/// An override is active while `now < until`; at `until` exactly it has expired. An active
/// override sets `revisit_at` to its `until`, so the caller requeues the pool then.
pub fn decide(
    pool: &WorkerPool,
    override_: Option<&Override>,
    autoscaler: Option<&AutoscalerRecommendation>,
    now: Timestamp,
) -> SizingDecision {
    let bounds = pool.spec.workers;

    let report = override_.map(|o| OverrideReport {
        state: if now < o.spec.until {
            OverrideState::Active
        } else {
            OverrideState::Expired
        },
        workers: o.spec.workers,
        until: o.spec.until,
        reason: o.spec.reason.clone(),
        by: o.spec.by.clone(),
    });

    let mut decision = match (override_, &report) {
        (Some(o), Some(r)) if r.state == OverrideState::Active => {
            decide_override(o, bounds.min, bounds.max)
        }
        _ => decide_without_override(
            bounds.min,
            bounds.max,
            autoscaler,
            pool.spec.autoscaling.is_some(),
        ),
    };

    if let Some(report) = &report
        && report.state == OverrideState::Expired
    {
        decision.reason = format!(
            "{} (override of {} expired at {})",
            decision.reason, report.workers, report.until
        );
    }
    decision.r#override = report;
    decision
}

/// Sizes the pool from an active override: its count within `min` and `max`, or any count
/// with `force`.
fn decide_override(override_: &Override, min: u32, max: u32) -> SizingDecision {
    let spec = &override_.spec;

    if spec.workers < min && !spec.force {
        let mut decision = SizingDecision::new(
            min,
            SizingSource::Min,
            format!(
                "override of {} is below workers.min {min} and force is not set: held at min \
                 (reason: {})",
                spec.workers, spec.reason
            ),
        );
        decision.revisit_at = Some(spec.until);
        return decision;
    }
    if spec.workers > max && !spec.force {
        let mut decision = SizingDecision::new(
            max,
            SizingSource::Max,
            format!(
                "override of {} exceeds workers.max {max} and force is not set: held at max \
                 (reason: {})",
                spec.workers, spec.reason
            ),
        );
        decision.revisit_at = Some(spec.until);
        return decision;
    }

    let mut decision = SizingDecision::new(
        spec.workers,
        SizingSource::Override,
        format!(
            "override of {} active until {} (reason: {})",
            spec.workers, spec.until, spec.reason
        ),
    );
    decision.revisit_at = Some(spec.until);
    decision
}

/// Sizes the pool from the autoscaler's recommendation within `min` and `max`. Without one,
/// the pool runs `min`: it has no `spec.autoscaling` (`autoscaled` false), or its autoscaler
/// has not decided yet.
fn decide_without_override(
    min: u32,
    max: u32,
    autoscaler: Option<&AutoscalerRecommendation>,
    autoscaled: bool,
) -> SizingDecision {
    let Some(recommendation) = autoscaler else {
        let reason = if autoscaled {
            format!("the autoscaler has not decided yet: running workers.min {min}")
        } else {
            format!("no autoscaler: running workers.min {min}")
        };
        return SizingDecision::new(min, SizingSource::Min, reason);
    };

    let (desired, source, reason) = if recommendation.desired < min {
        (
            min,
            SizingSource::Min,
            format!(
                "autoscaler recommends {} below workers.min {min}: {}",
                recommendation.desired, recommendation.reason
            ),
        )
    } else if recommendation.desired > max {
        (
            max,
            SizingSource::Max,
            format!(
                "autoscaler recommends {} above workers.max {max}: {}",
                recommendation.desired, recommendation.reason
            ),
        )
    } else {
        (
            recommendation.desired,
            recommendation.source,
            recommendation.reason.clone(),
        )
    };

    let mut decision = SizingDecision::new(desired, source, reason);
    decision.predicted_rps = recommendation.predicted_rps;
    decision.inputs = recommendation.inputs.clone();
    decision.last_cycle = recommendation.last_cycle;
    decision.next_cycle = recommendation.next_cycle;
    decision
}
