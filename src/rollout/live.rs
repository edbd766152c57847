//! The live job as a rollout reads it: each zone's registered version and count, and the
//! re-derivation of a rollout's state from Nomad when no stored state matches.

use jiff::Timestamp;

use super::observe::DeploymentView;
use super::state::{RolloutPhase, RolloutState};
use crate::nomad::TaskGroup;
use crate::reconcile::render::VERSION_ENV;
use crate::reconcile::{DeploymentStatus, META_VERSION, Observed, ObservedJob};
use crate::spec::WorkerPool;

/// Task drivers whose tasks run a container image set by `Config.image`.
const IMAGE_DRIVERS: &[&str] = &["docker", "podman", "containerd-driver"];

/// The pool's live job, zone by zone in `spec.zones` order.
#[derive(Debug, Clone)]
pub(super) struct LiveJob<'a> {
    pub job: &'a ObservedJob,
    /// The job's `Version`, which allocations and deployments refer to.
    pub version: u64,
    /// The version each zone's task group is registered with.
    pub versions: Vec<String>,
    /// Each zone's registered `Count`.
    pub counts: Vec<u32>,
}

impl<'a> LiveJob<'a> {
    /// Reads the live job of `pool`, or returns why it cannot: the job is missing, belongs to
    /// another pool, or lacks a zone's group or version.
    pub(super) fn read(pool: &WorkerPool, observed: &'a Observed) -> Result<Self, String> {
        let name = &pool.metadata.name;
        let Some(job) = observed.job.as_ref() else {
            return Err("the pool's job does not exist yet".to_owned());
        };
        if job.owner() != Some(name.as_str()) {
            return Err(format!("the job is not marked steward.pool={name}"));
        }

        let mut versions = Vec::with_capacity(pool.spec.zones.len());
        let mut counts = Vec::with_capacity(pool.spec.zones.len());
        for zone in &pool.spec.zones {
            let Some(group) = job.job.group(&zone.name) else {
                return Err(format!("the job has no task group for zone {}", zone.name));
            };
            let Some(version) = group_version(group) else {
                return Err(format!(
                    "task group {} has neither steward.version meta nor an image or {VERSION_ENV}",
                    zone.name
                ));
            };
            versions.push(version.to_owned());
            counts.push(job.group_count(&zone.name).unwrap_or(0));
        }

        Ok(Self {
            job,
            version: job.job.version.unwrap_or(0),
            versions,
            counts,
        })
    }

    /// Whether every zone is registered with `version`.
    pub(super) fn all_at(&self, version: &str) -> bool {
        self.versions.iter().all(|v| v == version)
    }
}

/// Returns the version a task group runs: its `steward.version` meta, else its first task's
/// image, `STEWARD_VERSION` environment variable or `steward.version` task meta.
pub fn group_version(group: &TaskGroup) -> Option<&str> {
    if let Some(version) = group.meta.as_ref().and_then(|m| m.get(META_VERSION)) {
        return Some(version);
    }
    let task = group.task_list().first()?;
    if IMAGE_DRIVERS.contains(&task.driver.as_str()) {
        return task
            .config
            .as_ref()
            .and_then(|config| config.get("image"))
            .and_then(|image| image.as_str());
    }
    task.env
        .as_ref()
        .and_then(|env| env.get(VERSION_ENV))
        .or_else(|| task.meta.as_ref().and_then(|meta| meta.get(META_VERSION)))
        .map(String::as_str)
}

/// Re-derives a rollout toward `target` from Nomad alone, for zones registered with mixed
/// versions and no stored state (a new leader that lost the status, or a status written by an
/// older controller). Returns the state and a sentence saying what was derived.
///
/// - A failed or cancelled deployment of the live job version: `RollingBack`.
/// - The first zone at `target`, the others not, and a deployment waiting for promotion: the
///   golden canary is out but not verified, so `Golden` (which checks it again and soaks it).
/// - Otherwise some zone beyond the golden one changed or the canary was promoted: `Rolling`,
///   so a promoted golden worker is never soaked again.
///
/// The version rolled back to is the most common zone version other than `target`. A zone's
/// count before the rollout is its sizing count when the live count exceeds that by at most
/// `surge` (the zone was caught surged), and its live count otherwise.
// NOTE: a sizing change made while the status was lost can make a surged zone look unsurged.
// Such a zone keeps `surge` extra workers until the planner sizes the pool after the rollout.
pub(super) fn derive_state(
    target: &str,
    live: &LiveJob<'_>,
    sizing_counts: &[u32],
    surge: u32,
    deployment: Option<&DeploymentView>,
    now: Timestamp,
    deadline: Timestamp,
) -> Option<(RolloutState, String)> {
    let from = most_common_other(&live.versions, target)?;
    let live_deployment = deployment.filter(|d| d.job_version == live.version);
    let first_at_target = live.versions.first().is_some_and(|v| v == target);
    let others_at_target = live.versions.iter().skip(1).any(|v| v == target);

    let mut state = RolloutState {
        phase: RolloutPhase::Rolling,
        from_version: from.clone(),
        to_version: target.to_owned(),
        started_at: now,
        phase_started_at: now,
        phase_deadline: deadline,
        counts: base_counts(&live.counts, sizing_counts, surge),
        golden: None,
        canary_requested_at: None,
        soak_until: None,
        prefetch: Vec::new(),
        zones: Vec::new(),
        paused: None,
        inconclusive_accepted: false,
        last_analysis_at: None,
        last_control_at: None,
        started_index: 0,
        last_control_index: None,
        failed_deployment_id: None,
        failure: None,
        waiting: None,
        restore: false,
    };

    let failed = live_deployment.filter(|d| {
        matches!(
            d.status,
            DeploymentStatus::Failed | DeploymentStatus::Cancelled
        )
    });
    let explanation = if let Some(failed) = failed {
        state.phase = RolloutPhase::RollingBack;
        state.failed_deployment_id = Some(failed.id.clone());
        state.failure = Some(format!(
            "deployment {} failed: {}",
            failed.id, failed.description
        ));
        format!(
            "deployment {} of job version {} failed, so rolling back to {from}",
            failed.id, live.version
        )
    } else if first_at_target
        && !others_at_target
        && live_deployment.is_some_and(|d| d.is_active() && d.requires_promotion)
    {
        state.phase = RolloutPhase::Golden;
        state.canary_requested_at = Some(now);
        "the golden canary is deployed but not promoted, so checking and soaking it".to_owned()
    } else {
        "zones run both versions past the golden step, so continuing zone by zone".to_owned()
    };

    Some((
        state,
        format!("rollout {from} -> {target} re-derived from Nomad: {explanation}"),
    ))
}

fn base_counts(live: &[u32], sizing: &[u32], surge: u32) -> Vec<u32> {
    live.iter()
        .enumerate()
        .map(|(index, &count)| match sizing.get(index) {
            Some(&wanted) if count > wanted && count - wanted <= surge => wanted,
            _ => count,
        })
        .collect()
}

fn most_common_other(versions: &[String], target: &str) -> Option<String> {
    let mut best: Option<(&String, usize)> = None;
    for version in versions.iter().filter(|v| *v != target) {
        let count = versions.iter().filter(|v| *v == version).count();
        if best.is_none_or(|(_, most)| count > most) {
            best = Some((version, count));
        }
    }
    best.map(|(version, _)| version.clone())
}
