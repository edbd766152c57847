//! The planner: a pure function from a pool, its override, the autoscaler's recommendation
//! and the observed cluster to the actions on Nomad and the status to report.

use std::time::Duration;

use jiff::Timestamp;

use super::observed::{Observed, ZoneCounts};
use super::render::{JobKey, render_job, template_differences};
use super::sizing::{self, AutoscalerRecommendation, OverrideState, SizingDecision, SizingSource};
use super::split::{failover_split, odd_even, step_toward};
use super::status::{
    ConditionReport, ConditionStatus, DecisionReport, Phase, Status, StatusReport, WorkerCounts,
    ZoneStatus, condition_type,
};
use crate::nomad::Job;
use crate::spec::{Override, WorkerPool};

/// Delay before a pool is reconciled again after a write or a deferred scale. Watches usually
/// requeue it earlier, so this only bounds the wait when no event arrives.
pub const RECHECK_AFTER: Duration = Duration::from_secs(30);

/// One write to Nomad.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Register a job that does not exist yet (`EnforceIndex` with `JobModifyIndex` 0).
    CreateJob(Job),
    /// Re-register the job after a template or version change, or to undo template drift.
    /// `enforce_index` is the live `JobModifyIndex`, so a concurrent edit fails instead of
    /// being overwritten. With `preserve_counts`, Nomad keeps the live counts of existing
    /// groups; counts change through [`Action::Scale`].
    RegisterJob {
        job: Job,
        enforce_index: u64,
        preserve_counts: bool,
    },
    /// Set one task group's count through the scale endpoint, which records `message` as a
    /// scaling event.
    Scale {
        group: String,
        count: u32,
        message: String,
    },
    /// Stop (deregister without purge) the job of a deleted pool.
    StopJob,
}

/// The result of planning one reconcile.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The job every action applies to.
    pub job: JobKey,
    /// Writes to perform in order. Empty when the cluster already matches.
    pub actions: Vec<Action>,
    pub status: StatusReport,
    /// When to reconcile again even without an event: an override's expiry, the next
    /// autoscaler cycle, or a recheck after a write or deferral.
    pub requeue_after: Option<Duration>,
}

/// Everything the planner reads.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    pub pool: &'a WorkerPool,
    /// The pool's override, active or expired.
    pub override_: Option<&'a Override>,
    /// The autoscaler's latest recommendation; `None` without autoscaling.
    pub autoscaler: Option<&'a AutoscalerRecommendation>,
    pub observed: &'a Observed,
    /// The stored status, used to tell hand-made count changes (drift) from new decisions.
    pub previous: Option<&'a Status>,
    pub now: Timestamp,
}

/// Plans a reconcile without an autoscaler or a stored status.
pub fn plan(
    pool: &WorkerPool,
    override_: Option<&Override>,
    observed: &Observed,
    now: Timestamp,
) -> Plan {
    plan_with(&PlanInput {
        pool,
        override_,
        autoscaler: None,
        observed,
        previous: None,
        now,
    })
}

/// Plans the deletion of a pool whose job is `job`: stop the job unless `orphan_on_delete`
/// is set or the job is missing or owned by another pool.
pub fn plan_delete(pool: &str, job: JobKey, observed: &Observed, orphan_on_delete: bool) -> Plan {
    let mut decisions = Vec::new();
    let mut actions = Vec::new();

    match observed.job.as_ref() {
        None => decisions.push(decision(
            "no change",
            format!("pool deleted and job {job} does not exist"),
        )),
        Some(live) if live.owner() != Some(pool) => decisions.push(decision(
            "no change",
            format!("pool deleted but job {job} is not marked steward.pool={pool}: left untouched"),
        )),
        Some(_) if orphan_on_delete => decisions.push(decision(
            "orphan job",
            format!("pool deleted and --orphan-on-delete is set: job {job} keeps running"),
        )),
        Some(_) => {
            actions.push(Action::StopJob);
            decisions.push(decision("stop job", format!("pool {pool} was deleted")));
        }
    }

    Plan {
        job,
        actions,
        status: StatusReport {
            phase: Phase::Ready,
            workers: WorkerCounts::default(),
            zones: Vec::new(),
            sizing: None,
            conditions: Vec::new(),
            decisions,
            last_error: None,
        },
        requeue_after: None,
    }
}

/// Plans one reconcile of a pool.
pub fn plan_with(input: &PlanInput<'_>) -> Plan {
    let pool = input.pool;
    let name = &pool.metadata.name;
    let zones = &pool.spec.zones;
    let observed = input.observed;
    let key = JobKey::of(pool);

    let mut planner = Planner::default();

    // Sizing and the split over zones.
    let sizing = sizing::decide(pool, input.override_, input.autoscaler, input.now);
    let available: Vec<bool> = zones.iter().map(|z| observed.zone_available(z)).collect();
    let target = if pool.spec.split.zone_failover {
        failover_split(sizing.desired, &available)
    } else {
        odd_even(sizing.desired, zones.len())
    };
    let zone_counts: Vec<ZoneCounts> = zones
        .iter()
        .map(|z| observed.zone_counts(&z.name))
        .collect();
    let running: Vec<u32> = zone_counts.iter().map(|c| c.running).collect();

    planner.note_zones(pool, &available, &target);
    planner.note_override(&sizing);

    // Ownership: never touch a job without this pool's mark.
    if let Some(live) = &observed.job
        && live.owner() != Some(name.as_str())
    {
        let message = match live.owner() {
            Some(owner) => format!("job {key} belongs to pool {owner}"),
            None => format!("job {key} exists without the steward.pool={name} meta"),
        };
        planner.condition(
            condition_type::JOB_OWNED,
            ConditionStatus::False,
            "ForeignJob",
            &message,
        );
        planner.decide("no change", format!("{message}: left untouched"));
        planner.degraded = true;
        return planner.finish(key, input, &sizing, &target, &zone_counts, &available);
    }
    planner.condition(
        condition_type::JOB_OWNED,
        ConditionStatus::True,
        "Owned",
        &format!("job {key} carries steward.pool={name}"),
    );

    // The counts to ask for now: straight to the target, or one step toward it.
    let current: Option<Vec<u32>> = observed.job.as_ref().map(|live| {
        zones
            .iter()
            .map(|zone| live.group_count(&zone.name).unwrap_or(0))
            .collect()
    });
    let counts = match &current {
        Some(current) => step_toward(&target, current, &running, &available),
        None => target.clone(),
    };
    planner.counts = counts.clone();

    let rendered = match render_job(pool, &counts) {
        Ok(job) => job,
        Err(error) => {
            planner.error = Some(error.to_string());
            planner.decide("no change", format!("cannot render the job: {error}"));
            return planner.finish(key, input, &sizing, &target, &zone_counts, &available);
        }
    };

    // Writes: create, re-register, or scale the groups whose count differs.
    match observed.job.as_ref().zip(current.as_ref()) {
        None => {
            planner.actions.push(Action::CreateJob(rendered));
            planner.decide(
                "create job",
                format!(
                    "job {key} does not exist; creating it with counts {counts:?} ({})",
                    sizing.reason
                ),
            );
        }
        Some((live, current)) => {
            let mut differences = template_differences(&rendered, &live.job);
            if live.job.stop == Some(true) {
                // A stopped job keeps its spec; registering it again starts it.
                differences.push("Stop".to_owned());
            }
            if differences.is_empty() {
                planner.plan_scales(input, &sizing, current, &counts, &target, &available);
            } else {
                let outdated = outdated_zones(live, pool);
                let reason = if !outdated.is_empty() {
                    planner.rolling_out = true;
                    format!(
                        "version changed from {} to {}",
                        outdated.join(", "),
                        pool.spec.version
                    )
                } else {
                    format!(
                        "template changed outside Steward or in the pool spec ({}); putting the \
                         pool spec back",
                        summarize(&differences)
                    )
                };
                planner.actions.push(Action::RegisterJob {
                    job: rendered,
                    enforce_index: live.job_modify_index,
                    preserve_counts: true,
                });
                planner.decide("register job", reason);
                if *current != counts {
                    planner.decide(
                        "scale deferred",
                        "counts change after the new job version is registered".to_owned(),
                    );
                }
                planner.recheck = true;
            }
        }
    }

    planner.finish(key, input, &sizing, &target, &zone_counts, &available)
}

/// Accumulates the decisions, conditions and actions of one plan.
#[derive(Default)]
struct Planner {
    actions: Vec<Action>,
    decisions: Vec<DecisionReport>,
    conditions: Vec<ConditionReport>,
    counts: Vec<u32>,
    error: Option<String>,
    degraded: bool,
    rolling_out: bool,
    deferred: bool,
    recheck: bool,
    zone_notes: Vec<String>,
}

impl Planner {
    fn decide(&mut self, action: &str, reason: String) {
        // The caller may still drop a decision (a rollout keeps back the job's writes), and it
        // logs the plan it carries out at info when that plan writes. So the planner logs at debug.
        tracing::debug!(action, %reason, "decision");
        self.decisions.push(decision(action, reason));
    }

    fn condition(
        &mut self,
        r#type: &'static str,
        status: ConditionStatus,
        reason: &str,
        message: &str,
    ) {
        self.conditions.push(ConditionReport {
            r#type,
            status,
            reason: reason.to_owned(),
            message: message.to_owned(),
        });
    }

    fn note_zones(&mut self, pool: &WorkerPool, available: &[bool], target: &[u32]) {
        let down: Vec<&str> = pool
            .spec
            .zones
            .iter()
            .zip(available)
            .filter(|(_, up)| !**up)
            .map(|(zone, _)| zone.name.as_str())
            .collect();

        if down.is_empty() {
            self.condition(
                condition_type::ZONES_AVAILABLE,
                ConditionStatus::True,
                "AllZonesAvailable",
                "every zone has a node that accepts work",
            );
            return;
        }

        self.degraded = true;
        let moved = if down.len() == pool.spec.zones.len() {
            "no zone is left to take their workers, so they stay pending until a node in one of \
             them accepts work; check each zone's datacenter and node constraint"
                .to_owned()
        } else if pool.spec.split.zone_failover {
            format!("their workers move to the other zones (target {target:?})")
        } else {
            "zone failover is off, so their workers stay pending".to_owned()
        };
        let message = format!(
            "zones {} have no eligible node (all down, ineligible or draining): {moved}",
            down.join(", ")
        );
        self.condition(
            condition_type::ZONES_AVAILABLE,
            ConditionStatus::False,
            "ZoneUnavailable",
            &message,
        );
        self.zone_notes.push(message);
    }

    fn note_override(&mut self, sizing: &SizingDecision) {
        match &sizing.r#override {
            Some(report) if report.state == OverrideState::Active => self.condition(
                condition_type::OVERRIDE_ACTIVE,
                ConditionStatus::True,
                "OverrideActive",
                &format!(
                    "{} workers until {} ({})",
                    report.workers, report.until, report.reason
                ),
            ),
            Some(report) => self.condition(
                condition_type::OVERRIDE_ACTIVE,
                ConditionStatus::False,
                "OverrideExpired",
                &format!("override of {} expired at {}", report.workers, report.until),
            ),
            None => self.condition(
                condition_type::OVERRIDE_ACTIVE,
                ConditionStatus::False,
                "NoOverride",
                "no override is set",
            ),
        }
    }

    fn plan_scales(
        &mut self,
        input: &PlanInput<'_>,
        sizing: &SizingDecision,
        current: &[u32],
        counts: &[u32],
        target: &[u32],
        available: &[bool],
    ) {
        let zones = &input.pool.spec.zones;
        let changes: Vec<usize> = (0..zones.len())
            .filter(|&i| current[i] != counts[i])
            .collect();
        if changes.is_empty() {
            return;
        }

        // Nomad blocks scales while a deployment runs, and the executor then sets the counts
        // in one register of the same template, which cancels that deployment. The template
        // is unchanged, so the new deployment carries on with whatever the cancelled one still
        // had to replace. A deployment that cannot place its workers, such as after an override above the
        // cluster's capacity, would otherwise hold every change until its progress deadline.
        // A deployment that a person paused stays paused: a register would cancel it and run
        // what it holds.
        if let Some(deployment) = input
            .observed
            .deployment
            .as_ref()
            .filter(|d| d.status == super::DeploymentStatus::Paused)
        {
            self.deferred = true;
            self.decide(
                "scale deferred",
                format!(
                    "deployment {} is paused; counts {current:?} -> {counts:?} wait until it is \
                     resumed and ends, or fails",
                    deployment.id
                ),
            );
            return;
        }
        if let Some(deployment) = input
            .observed
            .deployment
            .as_ref()
            .filter(|d| d.status.is_active())
        {
            self.decide(
                "replace deployment",
                format!(
                    "deployment {} in progress; counts {current:?} -> {counts:?} are set by a \
                     job register, which cancels it",
                    deployment.id
                ),
            );
        }

        for zone_index in changes {
            let zone = &zones[zone_index];
            let from = current[zone_index];
            let to = counts[zone_index];
            let reason = self.scale_reason(input, sizing, zone_index, from, to, target, available);
            let message = format!("steward: zone {} {from} -> {to}: {reason}", zone.name);
            self.decide(&format!("scale zone {} {from} -> {to}", zone.name), reason);
            self.actions.push(Action::Scale {
                group: zone.name.clone(),
                count: to,
                message,
            });
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn scale_reason(
        &self,
        input: &PlanInput<'_>,
        sizing: &SizingDecision,
        zone_index: usize,
        from: u32,
        to: u32,
        target: &[u32],
        available: &[bool],
    ) -> String {
        let zone = &input.pool.spec.zones[zone_index];

        if changed_outside(input, zone_index, to) {
            return format!("count changed outside Steward to {from}; putting back {to}");
        }
        if !available[zone_index] {
            return format!(
                "zone {} has no eligible node; its share moves to the other zones",
                zone.name
            );
        }
        if to != target[zone_index] {
            return format!(
                "moving workers between zones one at a time toward {target:?}, never below {} in total",
                sizing.desired
            );
        }
        format!("{} ({:?})", sizing.reason, sizing.source)
    }

    fn finish(
        mut self,
        key: JobKey,
        input: &PlanInput<'_>,
        sizing: &SizingDecision,
        target: &[u32],
        zone_counts: &[ZoneCounts],
        available: &[bool],
    ) -> Plan {
        let pool = input.pool;
        let observed = input.observed;
        // A deployment replaces workers only when some run an older job version. One that
        // only changes counts moves every worker to the new version in place.
        let replacing = observed.deployment_active()
            && observed.job.as_ref().is_some_and(|live| {
                let version = live.job.version.unwrap_or(0);
                observed
                    .allocations
                    .iter()
                    .any(|a| a.wants_to_run() && a.job_version != version)
            });
        let desired_counts = if self.counts.is_empty() {
            target.to_vec()
        } else {
            self.counts.clone()
        };

        // Deployment condition.
        match observed.deployment.as_ref() {
            Some(deployment) if deployment.status.is_active() => self.condition(
                condition_type::DEPLOYING,
                ConditionStatus::True,
                "DeploymentInProgress",
                &format!(
                    "deployment {} of job version {} is {:?}",
                    deployment.id, deployment.job_version, deployment.status
                ),
            ),
            _ => self.condition(
                condition_type::DEPLOYING,
                ConditionStatus::False,
                "NoActiveDeployment",
                "no deployment is in progress",
            ),
        }

        // Per-zone and total counts.
        let zones: Vec<ZoneStatus> = pool
            .spec
            .zones
            .iter()
            .enumerate()
            .map(|(index, zone)| ZoneStatus {
                name: zone.name.clone(),
                available: available[index],
                workers: WorkerCounts {
                    desired: target[index],
                    running: zone_counts[index].running,
                    healthy: zone_counts[index].healthy,
                },
            })
            .collect();
        let workers = WorkerCounts {
            desired: sizing.desired,
            running: zone_counts.iter().map(|c| c.running).sum(),
            healthy: zone_counts.iter().map(|c| c.healthy).sum(),
        };
        let converged = zones.iter().all(|z| {
            z.workers.healthy == z.workers.desired && z.workers.running == z.workers.desired
        }) && desired_counts == target;

        // Paused pools keep their status but change nothing.
        if pool.spec.paused {
            self.actions.clear();
            self.decisions.retain(|d| d.action == "no change");
            self.decide(
                "no change",
                "spec.paused is set: nothing is changed".to_owned(),
            );
        } else if self.actions.is_empty() && !self.deferred && self.decisions.is_empty() {
            let mut reasons = vec![explain_idle(sizing)];
            reasons.append(&mut self.zone_notes.clone());
            self.decide("no change", reasons.join("; "));
        }

        let ready = converged && self.error.is_none() && !self.degraded;
        self.condition(
            condition_type::READY,
            if ready {
                ConditionStatus::True
            } else {
                ConditionStatus::False
            },
            if ready {
                "WorkersReady"
            } else {
                "WorkersNotReady"
            },
            &ready_message(&workers, &zones, self.error.is_some()),
        );

        let phase = if self.error.is_some() {
            Phase::Error
        } else if pool.spec.paused {
            Phase::Paused
        } else if self.degraded {
            Phase::Degraded
        } else if self.rolling_out || replacing {
            Phase::RollingOut
        } else if !self.actions.is_empty() || self.deferred || !converged {
            Phase::Scaling
        } else {
            Phase::Ready
        };

        // When to look again.
        let mut requeue_after = sizing.revisit_after(input.now);
        // A cycle that is due already has its metric read running, and the read's end
        // requeues the pool. Waiting zero here would only repeat this reconcile until then.
        if let Some(next_cycle) = sizing.next_cycle.filter(|next| *next > input.now) {
            let nanos = next_cycle.as_nanosecond() - input.now.as_nanosecond();
            let wait = Duration::from_nanos(u64::try_from(nanos.max(0)).unwrap_or(u64::MAX));
            requeue_after = Some(requeue_after.map_or(wait, |r| r.min(wait)));
        }
        if !pool.spec.paused && (self.deferred || self.recheck || !self.actions.is_empty()) {
            requeue_after = Some(requeue_after.map_or(RECHECK_AFTER, |r| r.min(RECHECK_AFTER)));
        }

        Plan {
            job: key,
            actions: self.actions,
            status: StatusReport {
                phase,
                workers,
                zones,
                sizing: Some(sizing.clone()),
                conditions: self.conditions,
                decisions: self.decisions,
                last_error: self.error,
            },
            requeue_after,
        }
    }
}

/// Explains why a converged pool needs nothing: at max, override held, at min.
fn explain_idle(sizing: &SizingDecision) -> String {
    match sizing.source {
        SizingSource::Max => format!("at workers.max {}: {}", sizing.desired, sizing.reason),
        SizingSource::Override => format!("override active: {}", sizing.reason),
        _ => format!(
            "counts already match {} workers: {}",
            sizing.desired, sizing.reason
        ),
    }
}

fn decision(action: &str, reason: String) -> DecisionReport {
    DecisionReport {
        action: action.to_owned(),
        reason,
    }
}

/// Describes the zones whose live task group runs another version than `spec.version`, as
/// `<version>` when one version is involved or `zone a: <version>` per zone otherwise. The
/// version of a group is its `steward.version` group meta, else its first task's image,
/// `STEWARD_VERSION` or task meta.
fn outdated_zones(live: &super::ObservedJob, pool: &WorkerPool) -> Vec<String> {
    let mut outdated: Vec<(&str, &str)> = Vec::new();
    for zone in &pool.spec.zones {
        let Some(group) = live.job.group(&zone.name) else {
            continue;
        };
        let version = crate::rollout::group_version(group).unwrap_or("unknown");
        if version != pool.spec.version {
            outdated.push((zone.name.as_str(), version));
        }
    }

    let first = outdated.first().map(|(_, version)| *version);
    if outdated.iter().all(|(_, version)| Some(*version) == first) {
        return first.map(str::to_owned).into_iter().collect();
    }
    outdated
        .iter()
        .map(|(zone, version)| format!("zone {zone}: {version}"))
        .collect()
}

/// Returns the Ready condition's message: the counts, and what else keeps the pool from
/// being ready (a zone without nodes, a failed reconcile).
fn ready_message(workers: &WorkerCounts, zones: &[ZoneStatus], failed: bool) -> String {
    let mut message = format!(
        "{} workers healthy and {} running, {} desired",
        workers.healthy, workers.running, workers.desired
    );
    let unavailable: Vec<&str> = zones
        .iter()
        .filter(|zone| !zone.available)
        .map(|zone| zone.name.as_str())
        .collect();
    match unavailable.as_slice() {
        [] => {}
        [zone] => message.push_str(&format!("; zone {zone} has no eligible node")),
        zones => message.push_str(&format!(
            "; zones {} have no eligible node",
            zones.join(", ")
        )),
    }
    if failed {
        message.push_str("; the last reconcile failed");
    }
    message
}

/// Returns whether the zone's live count differs from `to` because someone changed it outside
/// Steward: the previous status wanted `to` for the available zone and had it running, and no
/// rollout owned the counts. A count Steward has not reached yet (a new job, a failed write,
/// one step of a move between zones) is not such a change. Nor is the count of a zone without
/// nodes, whose running workers tell nothing about its count.
fn changed_outside(input: &PlanInput<'_>, zone_index: usize, to: u32) -> bool {
    let zone = &input.pool.spec.zones[zone_index];
    let Some(previous) = input.previous else {
        return false;
    };
    let converged_at_to = previous
        .zones
        .iter()
        .find(|z| z.name == zone.name)
        .is_some_and(|z| z.available && z.workers.desired == to && z.workers.running == to);
    // A rollout sets counts itself (surge, rollback), so while one is active or after it
    // failed, the difference is not someone else's edit.
    let rollout_owned_counts = previous
        .rollout
        .as_ref()
        .and_then(|rollout| rollout.get("phase"))
        .and_then(serde_json::Value::as_str)
        .is_some_and(|phase| phase != "Complete");
    converged_at_to && !rollout_owned_counts
}

/// Lists at most five differing fields.
fn summarize(differences: &[String]) -> String {
    let shown: Vec<&str> = differences.iter().take(5).map(String::as_str).collect();
    let more = differences.len().saturating_sub(shown.len());
    if more == 0 {
        shown.join(", ")
    } else {
        format!("{} and {more} more", shown.join(", "))
    }
}
