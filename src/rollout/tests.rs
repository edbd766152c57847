//! State-machine tests of [`step`] on synthetic observations: every transition, deadline and
//! failure path, control commands, and re-derivation after a restart.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::step::ROLLOUT_RECHECK;
use super::*;
use crate::reconcile::status::ConditionStatus;
use crate::reconcile::{
    AllocHealth, ClientStatus, DeploymentStatus, DesiredStatus, GroupVersion, NodeStatus, Observed,
    ObservedAllocation, ObservedJob, ObservedNode, Phase, render_job_versions,
};
use crate::spec::WorkerPool;

const OLD: &str = "registry.local/face:1";
const NEW: &str = "registry.local/face:2";

fn pool_with(rollout: serde_json::Value) -> WorkerPool {
    let json = serde_json::json!({
        "apiVersion": "steward/v1",
        "kind": "WorkerPool",
        "metadata": {"name": "face"},
        "spec": {
            "template": {"Name": "worker", "Tasks": [{"Name": "app", "Driver": "docker"}]},
            "version": NEW,
            "workers": {"min": 6, "max": 6},
            "zones": [
                {"name": "a", "datacenter": "dc-a"},
                {"name": "b", "datacenter": "dc-b"}
            ],
            "rollout": rollout
        }
    });
    serde_json::from_value(json).expect("test pool is valid")
}

fn pool() -> WorkerPool {
    pool_with(serde_json::json!({
        "goldenSoak": "10m",
        "healthyDeadline": "5m",
        "minHealthyTime": "10s",
        "surge": 1,
        "prefetch": {"timeout": "10m"}
    }))
}

fn t(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + seconds).expect("valid test time")
}

fn live_job(pool: &WorkerPool, versions: [&str; 2], counts: [u32; 2], version: u64) -> ObservedJob {
    let groups: Vec<GroupVersion<'_>> = versions
        .iter()
        .zip(counts)
        .map(|(version, count)| GroupVersion {
            count,
            version,
            canary: 0,
        })
        .collect();
    let mut job = render_job_versions(pool, &groups).expect("test pool renders");
    job.version = Some(version);
    job.job_modify_index = Some(100 + version);
    ObservedJob::new(job)
}

fn alloc(id: &str, group: &str, job_version: u64, health: AllocHealth) -> ObservedAllocation {
    ObservedAllocation {
        id: id.to_owned(),
        task_group: group.to_owned(),
        node_id: format!("node-{group}"),
        job_version,
        client_status: ClientStatus::Running,
        desired_status: DesiredStatus::Run,
        health,
        canary: false,
    }
}

/// `counts[i]` healthy workers of job version `job_version` in zone i.
fn workers(counts: [u32; 2], job_version: u64) -> Vec<ObservedAllocation> {
    let mut list = Vec::new();
    for (group, count) in ["a", "b"].into_iter().zip(counts) {
        for index in 0..count {
            list.push(alloc(
                &format!("{group}{index}-v{job_version}"),
                group,
                job_version,
                AllocHealth::Healthy,
            ));
        }
    }
    list
}

fn node(id: &str, datacenter: &str) -> ObservedNode {
    ObservedNode {
        id: id.to_owned(),
        datacenter: datacenter.to_owned(),
        meta: BTreeMap::new(),
        attributes: BTreeMap::new(),
        status: NodeStatus::Ready,
        eligible: true,
        draining: false,
    }
}

fn nodes() -> Vec<ObservedNode> {
    vec![node("n1", "dc-a"), node("n2", "dc-b")]
}

fn deployment(
    id: &str,
    job_version: u64,
    status: DeploymentStatus,
    requires_promotion: bool,
) -> DeploymentView {
    DeploymentView {
        id: id.to_owned(),
        job_version,
        status,
        description: format!("{status:?}"),
        requires_promotion,
        progress_deadline: None,
    }
}

/// A cluster snapshot and everything else a step reads, editable field by field.
struct Scene {
    pool: WorkerPool,
    observed: Observed,
    deployment: Option<DeploymentView>,
    prefetch: PrefetchObserved,
    stored: Option<RolloutState>,
    control: Option<Control>,
    /// The pool spec's `ModifyIndex`; 0 keeps the comparison of control commands by time.
    generation: u64,
    analysis: Option<AnalysisSample>,
    sizing: Vec<u32>,
    now: Timestamp,
}

impl Scene {
    /// Every zone runs `OLD` with 3 healthy workers at job version 1.
    fn before_rollout(pool: WorkerPool) -> Self {
        let observed = Observed {
            job: Some(live_job(&pool, [OLD, OLD], [3, 3], 1)),
            allocations: workers([3, 3], 1),
            nodes: nodes().into(),
            deployment: None,
        };
        Self {
            pool,
            observed,
            deployment: Some(deployment("d1", 1, DeploymentStatus::Successful, false)),
            prefetch: PrefetchObserved::default(),
            stored: None,
            control: None,
            generation: 0,
            analysis: None,
            sizing: vec![3, 3],
            now: t(0),
        }
    }

    fn step(&self) -> RolloutStep {
        step(&StepInput {
            pool: &self.pool,
            observed: &self.observed,
            deployment: self.deployment.as_ref(),
            prefetch: &self.prefetch,
            stored: self.stored.as_ref(),
            control: self.control.as_ref(),
            generation: self.generation,
            analysis: self.analysis.as_ref(),
            sizing_counts: &self.sizing,
            now: self.now,
        })
    }

    /// Runs a step and stores its state, as the controller does.
    fn advance(&mut self) -> RolloutStep {
        let result = self.step();
        self.stored = result.state.clone();
        result
    }

    fn set_live(&mut self, versions: [&str; 2], counts: [u32; 2], version: u64) {
        self.observed.job = Some(live_job(&self.pool, versions, counts, version));
    }

    /// Shows job `version` settled: its deployment `d<version>` successful and `counts`
    /// healthy workers of it per zone.
    fn settle(&mut self, versions: [&str; 2], counts: [u32; 2], version: u64) {
        self.set_live(versions, counts, version);
        let id = format!("d{version}");
        self.deployment = Some(deployment(
            &id,
            version,
            DeploymentStatus::Successful,
            false,
        ));
        self.observed.allocations = workers(counts, version);
    }

    fn prefetch_registered(&mut self) {
        let job = render_prefetch_job(&self.pool, NEW).expect("prefetch renders");
        self.prefetch.job = Some(ObservedJob::new(job));
    }
}

fn prefetch_alloc(
    id: &str,
    node: &str,
    status: ClientStatus,
    events: &[&str],
) -> PrefetchAllocation {
    PrefetchAllocation {
        id: id.to_owned(),
        node_id: node.to_owned(),
        client_status: status,
        events: events.iter().map(|e| (*e).to_owned()).collect(),
        job_version: 0,
        create_index: 10,
    }
}

fn phase(result: &RolloutStep) -> RolloutPhase {
    result.state.as_ref().expect("a rollout state").phase
}

/// Asserts the (zone, version, count, canaries) of every task group the step's job register
/// writes, in zone order.
fn assert_registered(result: &RolloutStep, expected: [(&str, &str, i64, i64); 2]) {
    let expected: Vec<(String, String, i64, i64)> = expected
        .iter()
        .map(|&(zone, version, count, canaries)| {
            (zone.to_owned(), version.to_owned(), count, canaries)
        })
        .collect();
    assert_eq!(registered_groups(result), expected);
}

fn registered_groups(result: &RolloutStep) -> Vec<(String, String, i64, i64)> {
    let job = result
        .actions
        .iter()
        .find_map(|a| match a {
            RolloutAction::RegisterJob { job, .. } => Some(job),
            _ => None,
        })
        .expect("a RegisterJob action");
    job.groups()
        .iter()
        .map(|g| {
            let update = g.update.clone().unwrap_or_default();
            (
                g.name.clone(),
                group_version(g).unwrap_or("").to_owned(),
                g.count.unwrap_or(0),
                update.canary.unwrap_or(0),
            )
        })
        .collect()
}

/// Returns the group and count of the step's only action, which must be a scale.
fn only_scale(result: &RolloutStep) -> (&str, u32) {
    let [RolloutAction::Scale { group, count, .. }] = result.actions.as_slice() else {
        panic!("expected one scale, got {:?}", result.actions);
    };
    (group.as_str(), *count)
}

fn has_condition(result: &RolloutStep, reason: &str) -> bool {
    result.conditions.iter().any(|c| c.reason == reason)
}

/// A scene in `Golden` with the golden canary registered: zone a at `NEW` with 4 workers
/// (3 + surge) at job version 3, and a deployment waiting for promotion.
fn golden_scene() -> Scene {
    let mut scene = Scene::before_rollout(pool());
    scene.prefetch_registered();
    scene.prefetch.allocations = vec![
        prefetch_alloc("p1", "n1", ClientStatus::Complete, &[]),
        prefetch_alloc("p2", "n2", ClientStatus::Complete, &[]),
    ];
    let result = scene.advance();
    assert_eq!(phase(&result), RolloutPhase::Golden);

    scene.now = t(60);
    scene.set_live([NEW, OLD], [4, 3], 3);
    scene.observed.allocations = workers([4, 3], 3);
    for allocation in &mut scene.observed.allocations {
        allocation.job_version = 2;
    }
    scene.deployment = Some(deployment("d3", 3, DeploymentStatus::Running, true));
    let mut state = scene.stored.clone().expect("state stored");
    state.canary_requested_at = Some(t(60));
    state.phase_deadline = t(60 + 5 * 60 + 10 + 60);
    scene.stored = Some(state);
    scene
}

fn add_canary(scene: &mut Scene, health: AllocHealth) {
    let mut canary = alloc("golden", "a", 3, health);
    canary.canary = true;
    scene.observed.allocations.push(canary);
}

/// A scene in `Soaking` whose golden worker became healthy at t(120).
fn soaking_scene() -> Scene {
    let mut scene = golden_scene();
    add_canary(&mut scene, AllocHealth::Healthy);
    scene.now = t(120);
    let result = scene.advance();
    assert_eq!(phase(&result), RolloutPhase::Soaking);
    scene
}

#[test]
fn no_rollout_when_every_zone_runs_spec_version() {
    let mut scene = Scene::before_rollout(pool());
    scene.set_live([NEW, NEW], [3, 3], 1);
    let result = scene.step();
    assert_eq!(result.state, None);
    assert!(result.actions.is_empty());
    assert_eq!(result.phase, None);
}

#[test]
fn version_change_starts_prefetch() {
    let scene = Scene::before_rollout(pool());
    let result = scene.step();

    let state = result.state.clone().expect("rollout started");
    assert_eq!(state.phase, RolloutPhase::Prefetching);
    assert_eq!(state.from_version, OLD);
    assert_eq!(state.to_version, NEW);
    assert_eq!(state.counts, vec![3, 3]);
    assert_eq!(state.phase_deadline, t(600));
    assert_eq!(result.phase, Some(Phase::RollingOut));

    let [RolloutAction::RegisterPrefetch { job, enforce_index }] = result.actions.as_slice() else {
        panic!("expected one RegisterPrefetch, got {:?}", result.actions);
    };
    assert_eq!(*enforce_index, 0);
    assert_eq!(job.id, "face-prefetch");
    assert_eq!(job.r#type.as_deref(), Some("sysbatch"));
    assert_eq!(job.meta_value("steward.pool"), Some("face"));
    assert_eq!(job.meta_value("steward.version"), Some(NEW));
    let names: Vec<&str> = job.groups().iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    let task = &job.groups()[0].task_list()[0];
    assert_eq!(
        task.config.as_ref().and_then(|c| c.get("image")),
        Some(&serde_json::Value::String(NEW.to_owned()))
    );
    let constraint = &job.groups()[1].constraints.as_ref().expect("constraint")[0];
    assert_eq!(constraint.r_target, "dc-b");
}

#[test]
fn prefetch_reports_progress_per_node() {
    let mut scene = Scene::before_rollout(pool());
    scene.advance();
    scene.prefetch_registered();
    scene.prefetch.allocations = vec![
        prefetch_alloc("p1", "n1", ClientStatus::Complete, &[]),
        prefetch_alloc("p2", "n2", ClientStatus::Running, &["Downloading image"]),
    ];
    scene.now = t(30);
    let result = scene.advance();

    let state = result.state.expect("state");
    assert_eq!(state.phase, RolloutPhase::Prefetching);
    assert_eq!(state.prefetch.len(), 2);
    assert_eq!(state.prefetch[0].state, PullState::Pulled);
    assert_eq!(state.prefetch[1].state, PullState::Pulling);
    assert_eq!(
        state.waiting.as_deref(),
        Some(format!("prefetching {NEW}: 1 of 2 nodes pulled").as_str())
    );
    assert!(result.actions.is_empty());
    assert_eq!(result.requeue_after, Some(ROLLOUT_RECHECK));
}

#[test]
fn prefetch_complete_registers_golden() {
    let mut scene = Scene::before_rollout(pool());
    scene.advance();
    scene.prefetch_registered();
    scene.prefetch.allocations = vec![
        prefetch_alloc("p1", "n1", ClientStatus::Complete, &[]),
        prefetch_alloc("p2", "n2", ClientStatus::Complete, &[]),
    ];
    scene.now = t(40);
    let result = scene.advance();

    assert_eq!(phase(&result), RolloutPhase::Golden);
    assert_eq!(result.actions.len(), 2, "{:?}", result.actions);
    assert_eq!(result.actions[0], RolloutAction::StopPrefetch);
    assert_registered(&result, [("a", NEW, 4, 1), ("b", OLD, 3, 0)]);
}

#[test]
fn prefetch_authorization_error_fails_at_once() {
    let mut scene = Scene::before_rollout(pool());
    scene.advance();
    scene.prefetch_registered();
    scene.prefetch.allocations = vec![
        prefetch_alloc("p1", "n1", ClientStatus::Pending, &["Downloading image"]),
        prefetch_alloc(
            "p2",
            "n2",
            ClientStatus::Failed,
            &["Failed to pull `registry.local/face:2`: unauthorized: authentication required"],
        ),
    ];
    scene.now = t(20);
    let result = scene.advance();

    let state = result.state.clone().expect("state");
    assert_eq!(state.phase, RolloutPhase::Failed);
    assert_eq!(result.phase, Some(Phase::Degraded));
    assert_eq!(result.actions, vec![RolloutAction::StopPrefetch]);
    let failure = state.failure.expect("failure reason");
    assert!(failure.contains("node n2"), "{failure}");
    assert!(failure.contains("authentication required"), "{failure}");
    assert!(has_condition(&result, "RolloutFailed"));
}

#[test]
fn prefetch_times_out_without_touching_workers() {
    let mut scene = Scene::before_rollout(pool());
    scene.advance();
    scene.prefetch_registered();
    scene.prefetch.allocations = vec![prefetch_alloc("p1", "n1", ClientStatus::Complete, &[])];
    scene.now = t(600);
    let result = scene.advance();

    let state = result.state.expect("state");
    assert_eq!(state.phase, RolloutPhase::Failed);
    assert_eq!(result.actions, vec![RolloutAction::StopPrefetch]);
    let failure = state.failure.expect("failure reason");
    assert!(failure.contains("timed out after 10m"), "{failure}");
    assert!(failure.contains("1 of 2 nodes pulled"), "{failure}");
}

#[test]
fn disabled_prefetch_goes_straight_to_golden() {
    let pool = pool_with(serde_json::json!({"prefetch": {"enabled": false}, "surge": 0}));
    let scene = Scene::before_rollout(pool);
    let result = scene.step();

    assert_eq!(phase(&result), RolloutPhase::Golden);
    assert_registered(&result, [("a", NEW, 3, 1), ("b", OLD, 3, 0)]);
}

#[test]
fn golden_register_carries_surge() {
    let mut scene = Scene::before_rollout(pool());
    let mut state = scene.step().state.expect("state");
    state.phase = RolloutPhase::Golden;
    state.phase_deadline = t(1000);
    scene.stored = Some(state);
    scene.set_live([OLD, OLD], [3, 3], 2);
    scene.observed.allocations = workers([3, 3], 2);
    scene.deployment = Some(deployment("d2", 2, DeploymentStatus::Successful, false));
    scene.now = t(100);
    let result = scene.step();

    assert_eq!(phase(&result), RolloutPhase::Golden);
    assert_eq!(result.actions.len(), 1);
    let RolloutAction::RegisterJob { job, enforce_index } = &result.actions[0] else {
        panic!("expected RegisterJob, got {:?}", result.actions);
    };
    assert_eq!(*enforce_index, 102);
    let update = job.groups()[0].update.clone().expect("update block");
    assert_eq!(update.canary, Some(1));
    assert_eq!(update.auto_promote, Some(false));
    assert_eq!(update.auto_revert, Some(false));
    assert_eq!(update.max_parallel, Some(1));
    assert_registered(&result, [("a", NEW, 4, 1), ("b", OLD, 3, 0)]);
    assert_eq!(
        result.state.expect("state").canary_requested_at,
        Some(t(100))
    );
}

#[test]
fn golden_waits_for_running_deployment() {
    let mut scene = Scene::before_rollout(pool());
    let mut state = scene.step().state.expect("state");
    state.phase = RolloutPhase::Golden;
    state.phase_deadline = t(1000);
    scene.stored = Some(state);
    scene.set_live([OLD, OLD], [4, 3], 2);
    scene.deployment = Some(deployment("d2", 2, DeploymentStatus::Running, false));
    let result = scene.step();

    assert!(result.actions.is_empty(), "{:?}", result.actions);
    let waiting = result
        .state
        .expect("state")
        .waiting
        .expect("waiting reason");
    assert!(waiting.contains("deployment d2"), "{waiting}");
}

#[test]
fn golden_without_room_waits_for_capacity() {
    let mut scene = golden_scene();
    scene.now = t(60 + 130);
    let result = scene.advance();

    assert_eq!(phase(&result), RolloutPhase::Golden);
    assert!(result.actions.is_empty());
    let condition = result
        .conditions
        .iter()
        .find(|c| c.reason == "WaitingForCapacity")
        .expect("waiting condition");
    assert_eq!(condition.status, ConditionStatus::True);
    assert!(
        condition.message.contains("for 2m 10s"),
        "{}",
        condition.message
    );
}

#[test]
fn golden_capacity_deadline_rolls_back() {
    let mut scene = golden_scene();
    scene.now = t(60 + 5 * 60 + 10 + 60);
    let result = scene.advance();

    assert_eq!(phase(&result), RolloutPhase::RollingBack);
    assert_eq!(
        result.actions[0],
        RolloutAction::FailDeployment {
            deployment_id: "d3".to_owned()
        }
    );
    let failure = result.state.expect("state").failure.expect("reason");
    assert!(failure.contains("no node had room"), "{failure}");
}

#[test]
fn golden_capacity_appears_and_continues() {
    let mut scene = golden_scene();
    scene.now = t(200);
    scene.advance();
    let mut canary = alloc("golden", "a", 3, AllocHealth::Unknown);
    canary.canary = true;
    canary.client_status = ClientStatus::Pending;
    scene.observed.allocations.push(canary);
    scene.now = t(210);
    let result = scene.advance();

    assert_eq!(phase(&result), RolloutPhase::Golden);
    let state = result.state.expect("state");
    assert_eq!(state.golden.expect("golden").allocation_id, "golden");
    assert!(state.waiting.expect("waiting").contains("starting"));
}

#[test]
fn healthy_golden_starts_soak() {
    let mut scene = golden_scene();
    add_canary(&mut scene, AllocHealth::Healthy);
    scene.now = t(120);
    let result = scene.advance();

    let state = result.state.expect("state");
    assert_eq!(state.phase, RolloutPhase::Soaking);
    assert_eq!(state.soak_until, Some(t(120 + 600)));
    let golden = state.golden.expect("golden");
    assert_eq!(golden.healthy_since, Some(t(120)));
    assert!(result.actions.is_empty(), "{:?}", result.actions);
}

#[test]
fn unhealthy_golden_rolls_back() {
    let mut scene = golden_scene();
    add_canary(&mut scene, AllocHealth::Unhealthy);
    scene.now = t(120);
    let result = scene.advance();

    assert_eq!(phase(&result), RolloutPhase::RollingBack);
    assert_eq!(
        result.actions,
        vec![RolloutAction::FailDeployment {
            deployment_id: "d3".to_owned()
        }]
    );
    let failure = result.state.expect("state").failure.expect("reason");
    assert!(failure.contains("golden worker golden"), "{failure}");
}

#[test]
fn soak_promotes_when_elapsed() {
    let mut scene = soaking_scene();
    scene.now = t(700);
    let early = scene.step();
    assert!(early.actions.is_empty());
    assert_eq!(early.requeue_after, Some(ROLLOUT_RECHECK));

    scene.now = t(720);
    let result = scene.advance();
    assert_eq!(phase(&result), RolloutPhase::Rolling);
    assert_eq!(
        result.actions,
        vec![RolloutAction::PromoteDeployment {
            deployment_id: "d3".to_owned()
        }]
    );
}

#[test]
fn golden_unhealthy_during_soak_rolls_back() {
    let mut scene = soaking_scene();
    for allocation in &mut scene.observed.allocations {
        if allocation.id == "golden" {
            allocation.health = AllocHealth::Unhealthy;
        }
    }
    scene.now = t(300);
    let result = scene.advance();
    assert_eq!(phase(&result), RolloutPhase::RollingBack);
    assert!(result.actions.contains(&RolloutAction::FailDeployment {
        deployment_id: "d3".to_owned()
    }));
}

#[test]
fn golden_lost_with_its_node_is_replaced() {
    for status in [ClientStatus::Lost, ClientStatus::Unknown] {
        golden_node_gone_is_replaced(status);
    }
}

fn golden_node_gone_is_replaced(status: ClientStatus) {
    let mut scene = soaking_scene();
    for allocation in &mut scene.observed.allocations {
        if allocation.id == "golden" {
            allocation.client_status = status;
        }
    }
    scene.now = t(300);
    let lost = scene.advance();
    assert_eq!(phase(&lost), RolloutPhase::Golden);
    assert!(lost.actions.is_empty(), "{:?}", lost.actions);
    assert!(
        lost.decisions
            .iter()
            .any(|d| d.action == "replace golden worker"),
        "{:?}",
        lost.decisions
    );

    // Nomad's new canary becomes healthy: a new soak starts.
    let mut replacement = alloc("golden-2", "a", 3, AllocHealth::Healthy);
    replacement.canary = true;
    scene.observed.allocations.push(replacement);
    scene.now = t(360);
    let soaking = scene.advance();
    assert_eq!(phase(&soaking), RolloutPhase::Soaking);
    let state = soaking.state.expect("state");
    let golden = state.golden.expect("golden worker");
    assert_eq!(golden.allocation_id, "golden-2");
    assert_eq!(golden.healthy_since, Some(t(360)));
}

fn analysis_pool() -> WorkerPool {
    pool_with(serde_json::json!({
        "goldenSoak": "10m",
        "healthyDeadline": "5m",
        "minHealthyTime": "10s",
        "surge": 1,
        "analysis": {
            "address": "http://127.0.0.1:9090",
            "query": "golden_error_ratio",
            "threshold": 0.05,
            "condition": "max",
            "interval": "1m"
        }
    }))
}

fn soaking_scene_with(pool: WorkerPool) -> Scene {
    let mut scene = soaking_scene();
    scene.pool = pool;
    scene
}

#[test]
fn failed_analysis_rolls_back() {
    let mut scene = soaking_scene_with(analysis_pool());
    scene.now = t(200);
    scene.analysis = Some(AnalysisSample {
        at: t(190),
        value: Ok(Some(0.2)),
    });
    let result = scene.advance();

    assert_eq!(phase(&result), RolloutPhase::RollingBack);
    let failure = result.state.expect("state").failure.expect("reason");
    assert!(
        failure.contains("0.2 is above the maximum 0.05"),
        "{failure}"
    );
}

#[test]
fn inconclusive_analysis_pauses_until_resume() {
    let mut scene = soaking_scene_with(analysis_pool());
    scene.now = t(200);
    scene.analysis = Some(AnalysisSample {
        at: t(190),
        value: Ok(None),
    });
    let paused = scene.advance();
    assert_eq!(phase(&paused), RolloutPhase::Soaking);
    assert!(paused.actions.is_empty());
    assert!(has_condition(&paused, "PausedForPerson"));
    let pause = paused.state.clone().expect("state").paused.expect("paused");
    assert!(pause.reason.contains("no data"), "{}", pause.reason);

    // Still paused later, even past the soak.
    scene.now = t(900);
    let still = scene.advance();
    assert!(still.actions.is_empty());
    assert!(still.state.expect("state").paused.is_some());

    // Resume: the deadline and the soak move by the paused time, then promotion follows.
    scene.control = Some(Control {
        action: ControlAction::Resume,
        by: "alice".to_owned(),
        at: t(1000),
        index: 0,
    });
    scene.now = t(1000);
    let resumed = scene.advance();
    let state = resumed.state.expect("state");
    assert!(state.paused.is_none());
    assert!(state.inconclusive_accepted);
    assert_eq!(state.soak_until, Some(t(720 + 800)));

    scene.now = t(1600);
    let promoted = scene.advance();
    assert_eq!(phase(&promoted), RolloutPhase::Rolling);
}

#[test]
fn passing_analysis_is_required_before_promotion() {
    let mut scene = soaking_scene_with(analysis_pool());
    scene.now = t(720);
    let waiting = scene.advance();
    assert!(waiting.actions.is_empty(), "{:?}", waiting.actions);
    assert!(
        waiting
            .state
            .expect("state")
            .waiting
            .expect("waiting")
            .contains("first analysis sample")
    );

    scene.analysis = Some(AnalysisSample {
        at: t(725),
        value: Ok(Some(0.01)),
    });
    scene.now = t(730);
    let result = scene.advance();
    assert_eq!(phase(&result), RolloutPhase::Rolling);
}

/// A scene in `Rolling` after promotion: zone a replaced (4 workers of `NEW` at job version
/// 3, deployment successful), zone b still at `OLD`.
fn rolling_scene() -> Scene {
    let mut scene = soaking_scene();
    scene.now = t(720);
    scene.advance();
    scene.deployment = Some(deployment("d3", 3, DeploymentStatus::Successful, false));
    scene.observed.allocations = workers([4, 3], 3);
    scene.now = t(800);
    scene
}

#[test]
fn rolling_removes_surge_then_surges_next_zone() {
    let mut scene = rolling_scene();
    let down = scene.advance();
    assert_eq!(only_scale(&down), ("a", 3));

    scene.settle([NEW, OLD], [3, 3], 4);
    scene.now = t(850);
    let up = scene.advance();
    assert_eq!(only_scale(&up), ("b", 4));

    scene.settle([NEW, OLD], [3, 4], 5);
    let replace = scene.advance();
    assert_registered(&replace, [("a", NEW, 3, 0), ("b", NEW, 4, 0)]);

    scene.set_live([NEW, NEW], [3, 4], 6);
    scene.deployment = Some(deployment("d6", 6, DeploymentStatus::Running, false));
    let during = scene.advance();
    assert!(during.actions.is_empty(), "{:?}", during.actions);

    scene.deployment = Some(deployment("d6", 6, DeploymentStatus::Successful, false));
    scene.observed.allocations = workers([3, 4], 6);
    let last_down = scene.advance();
    assert_eq!(only_scale(&last_down), ("b", 3));

    scene.settle([NEW, NEW], [3, 3], 7);
    let complete = scene.advance();
    assert_eq!(phase(&complete), RolloutPhase::Complete);
    assert!(complete.actions.is_empty());
    assert_eq!(complete.phase, None);
    assert!(!complete.is_active());
    assert!(!complete.holds_version());
    assert!(has_condition(&complete, "RolloutComplete"));
}

#[test]
fn zone_without_nodes_is_not_replaced() {
    let mut scene = rolling_scene();
    scene.advance();
    scene.settle([NEW, OLD], [3, 3], 4);
    scene.observed.nodes[1].eligible = false;
    scene.now = t(850);

    let waiting = scene.advance();
    assert!(waiting.actions.is_empty(), "{:?}", waiting.actions);
    let state = waiting.state.clone().expect("state");
    assert_eq!(state.phase, RolloutPhase::Rolling);
    let reason = state.waiting.expect("waiting reason");
    assert!(reason.contains("zone b has no eligible node"), "{reason}");

    // The deadline still applies: the zone already changed goes back.
    scene.now = state.phase_deadline + SignedDuration::from_secs(1);
    let rollback = scene.advance();
    assert_eq!(phase(&rollback), RolloutPhase::RollingBack);
    let failure = rollback.state.expect("state").failure.expect("reason");
    assert_eq!(
        failure,
        "the workers of zone b could not be replaced in time (zone b has no eligible node)"
    );
}

#[test]
fn failed_deployment_rolls_back_by_zone() {
    let mut scene = rolling_scene();
    // Zone b is being replaced and Nomad failed its deployment.
    let mut state = scene.stored.clone().expect("state");
    state.phase = RolloutPhase::Rolling;
    scene.stored = Some(state);
    scene.set_live([NEW, NEW], [3, 4], 6);
    scene.deployment = Some(deployment("d6", 6, DeploymentStatus::Failed, false));
    let mut allocations = workers([3, 2], 6);
    allocations.extend(workers([0, 2], 5));
    scene.observed.allocations = allocations;

    let result = scene.advance();
    assert_eq!(phase(&result), RolloutPhase::RollingBack);
    // Zone b (reverse order, already surged) goes back to OLD first, one register.
    assert_registered(&result, [("a", NEW, 3, 0), ("b", OLD, 4, 0)]);
    let state = result.state.expect("state");
    assert_eq!(state.failed_deployment_id.as_deref(), Some("d6"));

    // Zone b restored and its surge removed; zone a is restored with its surge in the same
    // register, so no worker of the failing version is added.
    scene.settle([NEW, OLD], [3, 3], 8);
    let restore = scene.advance();
    assert_registered(&restore, [("a", OLD, 4, 0), ("b", OLD, 3, 0)]);

    scene.settle([OLD, OLD], [4, 3], 10);
    let down = scene.advance();
    assert_eq!(only_scale(&down), ("a", 3));

    scene.settle([OLD, OLD], [3, 3], 11);
    let failed = scene.advance();
    assert_eq!(phase(&failed), RolloutPhase::Failed);
    assert_eq!(failed.phase, Some(Phase::Degraded));
    let failure = failed.state.expect("state").failure.expect("reason");
    assert!(
        failure.contains(&format!("rolled back to {OLD}")),
        "{failure}"
    );
    assert!(failure.contains("deployment d6 failed"), "{failure}");
}

#[test]
fn failure_names_a_zone_without_nodes() {
    let mut scene = rolling_scene();
    let mut state = scene.stored.clone().expect("state");
    state.phase = RolloutPhase::Rolling;
    scene.stored = Some(state);
    scene.set_live([NEW, NEW], [3, 4], 6);
    scene.deployment = Some(deployment("d6", 6, DeploymentStatus::Failed, false));
    scene.observed.nodes[1].eligible = false;

    let result = scene.advance();
    assert_eq!(phase(&result), RolloutPhase::RollingBack);
    let failure = result.state.expect("state").failure.expect("reason");
    assert!(
        failure.ends_with("(zone b has no eligible node)"),
        "{failure}"
    );
}

#[test]
fn failed_rollout_stays_failed_without_retry() {
    let mut scene = Scene::before_rollout(pool());
    let mut state = scene.step().state.expect("state");
    state.phase = RolloutPhase::Failed;
    state.failure = Some("golden worker unhealthy".to_owned());
    scene.stored = Some(state);
    let result = scene.step();
    assert_eq!(phase(&result), RolloutPhase::Failed);
    assert!(result.actions.is_empty());
    assert_eq!(result.phase, Some(Phase::Degraded));
    assert!(!result.is_active());
    assert!(result.holds_version());
}

/// Returns a scene after a rollout of `pool` to NEW failed without a rollback: its stored
/// state is `Failed` with base counts 3 + 3. Zone a keeps NEW registered with the golden
/// surge, its workers still run OLD, and the golden deployment `d5` failed.
fn failed_rollout_scene(pool: WorkerPool) -> Scene {
    let mut scene = Scene::before_rollout(pool);
    let mut state = scene.step().state.expect("state");
    state.phase = RolloutPhase::Failed;
    state.counts = vec![3, 3];
    scene.stored = Some(state);
    scene.set_live([NEW, OLD], [4, 3], 5);
    scene.deployment = Some(deployment("d5", 5, DeploymentStatus::Failed, true));
    scene.observed.allocations = workers([3, 3], 4);
    scene
}

#[test]
fn reverted_spec_restores_zones_after_failed_rollout() {
    let mut scene = failed_rollout_scene(pool());
    let state = scene.stored.as_mut().expect("stored state");
    state.failure = Some("golden worker unhealthy".to_owned());
    state.golden = Some(GoldenWorker {
        allocation_id: "g1".to_owned(),
        node_id: "n1".to_owned(),
        zone: "a".to_owned(),
        healthy_since: None,
    });
    scene.pool.spec.version = OLD.to_owned();

    let restore = scene.advance();
    assert_eq!(phase(&restore), RolloutPhase::Rolling);
    assert!(restore.state.as_ref().is_some_and(|s| s.golden.is_none()));
    assert!(
        restore
            .decisions
            .iter()
            .any(|d| d.action == "restore version"),
        "{:?}",
        restore.decisions
    );
    // One register puts OLD back on zone a with the surge in the same write; no scale of a
    // zone that still has NEW registered.
    assert_eq!(restore.actions.len(), 1, "{:?}", restore.actions);
    assert_registered(&restore, [("a", OLD, 4, 0), ("b", OLD, 3, 0)]);

    scene.settle([OLD, OLD], [4, 3], 6);
    let down = scene.advance();
    assert_eq!(only_scale(&down), ("a", 3));

    scene.settle([OLD, OLD], [3, 3], 7);
    let done = scene.advance();
    assert_eq!(phase(&done), RolloutPhase::Complete);
    assert!(!done.holds_version());
    assert_eq!(done.phase, None);
}

#[test]
fn retry_restores_zones_then_starts_again() {
    let mut scene = failed_rollout_scene(pool());
    scene.control = Some(Control {
        action: ControlAction::Retry,
        by: "bob".to_owned(),
        at: t(50),
        index: 0,
    });
    scene.now = t(60);

    let restore = scene.advance();
    assert_eq!(phase(&restore), RolloutPhase::Rolling);
    let retry = restore
        .decisions
        .iter()
        .find(|d| d.action == "retry rollout")
        .expect("retry decision");
    assert!(retry.reason.contains("restoring"), "{}", retry.reason);
    let groups = registered_groups(&restore);
    assert_eq!(groups[0], ("a".to_owned(), OLD.to_owned(), 4, 0));

    scene.settle([OLD, OLD], [4, 3], 6);
    let down = scene.advance();
    assert!(
        matches!(
            down.actions.as_slice(),
            [RolloutAction::Scale { count: 3, .. }]
        ),
        "{:?}",
        down.actions
    );

    scene.settle([OLD, OLD], [3, 3], 7);
    let again = scene.advance();
    let state = again.state.clone().expect("state");
    assert_eq!(state.phase, RolloutPhase::Prefetching);
    assert_eq!(
        (state.from_version.as_str(), state.to_version.as_str()),
        (OLD, NEW)
    );
    assert!(
        matches!(
            again.actions.as_slice(),
            [RolloutAction::RegisterPrefetch { .. }]
        ),
        "{:?}",
        again.actions
    );
    assert!(
        !again.decisions.iter().any(|d| d.action == "ignore control"),
        "{:?}",
        again.decisions
    );
}

#[test]
fn retry_restarts_a_failed_rollout() {
    let mut scene = Scene::before_rollout(pool());
    let mut state = scene.step().state.expect("state");
    state.phase = RolloutPhase::Failed;
    scene.stored = Some(state);
    scene.control = Some(Control {
        action: ControlAction::Retry,
        by: "bob".to_owned(),
        at: t(50),
        index: 0,
    });
    scene.now = t(60);
    let result = scene.advance();

    let state = result.state.clone().expect("state");
    assert_eq!(state.phase, RolloutPhase::Prefetching);
    assert_eq!(state.started_at, t(60));
    assert_eq!(state.last_control_at, Some(t(50)));
    assert!(matches!(
        result.actions.as_slice(),
        [RolloutAction::RegisterPrefetch { .. }]
    ));
}

#[test]
fn control_commands_compare_by_index() {
    let mut scene = rolling_scene();
    scene.deployment = Some(deployment("d3", 3, DeploymentStatus::Running, false));
    let mut state = scene.stored.clone().expect("a rolling state");
    state.started_index = 100;
    scene.stored = Some(state);
    let pause = |index: u64, at: Timestamp| Control {
        action: ControlAction::Pause,
        by: "alice".to_owned(),
        at,
        index,
    };

    // Written before the rollout started (a key left from an earlier one), although the
    // sender's clock is ahead: ignored.
    scene.control = Some(pause(90, t(10_000)));
    let stale = scene.step();
    assert!(stale.state.expect("state").paused.is_none());

    // Written after it started, although the sender's clock is behind: acted on once.
    scene.control = Some(pause(120, t(-10_000)));
    let paused = scene.advance();
    let state = paused.state.expect("state");
    assert!(state.paused.is_some());
    assert_eq!(state.last_control_index, Some(120));
    assert!(paused.decisions.iter().any(|d| d.action == "pause rollout"));

    let again = scene.advance();
    assert!(!again.decisions.iter().any(|d| d.action == "pause rollout"));
}

#[test]
fn pause_stops_acting_and_pauses_deployment() {
    let mut scene = rolling_scene();
    let mut running = deployment("d3", 3, DeploymentStatus::Running, false);
    running.progress_deadline = Some(t(1500));
    scene.deployment = Some(running);
    scene.control = Some(Control {
        action: ControlAction::Pause,
        by: "carol".to_owned(),
        at: t(790),
        index: 0,
    });
    let paused = scene.advance();
    assert_eq!(
        paused.actions,
        vec![RolloutAction::PauseDeployment {
            deployment_id: "d3".to_owned(),
            pause: true
        }]
    );
    assert!(has_condition(&paused, "PausedForPerson"));
    // The pause records when Nomad fails the paused deployment.
    let pause = paused.state.clone().expect("state").paused.expect("paused");
    assert_eq!(pause.nomad_deadline, Some(t(1500)));

    // The same command again does nothing more.
    scene.deployment = Some(deployment("d3", 3, DeploymentStatus::Successful, false));
    scene.now = t(900);
    let again = scene.advance();
    assert!(again.actions.is_empty(), "{:?}", again.actions);
}

#[test]
fn abort_rolls_back() {
    let mut scene = soaking_scene();
    scene.control = Some(Control {
        action: ControlAction::Abort,
        by: "dave".to_owned(),
        at: t(300),
        index: 0,
    });
    scene.now = t(300);
    let result = scene.advance();
    assert_eq!(phase(&result), RolloutPhase::RollingBack);
    assert_eq!(
        result.actions[0],
        RolloutAction::FailDeployment {
            deployment_id: "d3".to_owned()
        }
    );
    let failure = result.state.expect("state").failure.expect("reason");
    assert_eq!(failure, "aborted by dave");
}

#[test]
fn abort_ends_a_pause() {
    let mut scene = soaking_scene();
    let pause = |action, at| Control {
        action,
        by: "dave".to_owned(),
        at,
        index: 0,
    };
    scene.control = Some(pause(ControlAction::Pause, t(300)));
    scene.now = t(300);
    let paused = scene.advance();
    assert!(paused.state.expect("state").paused.is_some());

    scene.control = Some(pause(ControlAction::Abort, t(400)));
    scene.now = t(400);
    let aborted = scene.advance();
    assert_eq!(phase(&aborted), RolloutPhase::RollingBack);
    let state = aborted.state.expect("state");
    assert_eq!(state.paused, None);
    assert_eq!(state.failure.as_deref(), Some("aborted by dave"));
}

#[test]
fn stale_control_is_ignored() {
    let mut scene = soaking_scene();
    scene.control = Some(Control {
        action: ControlAction::Abort,
        by: "dave".to_owned(),
        at: t(-100),
        index: 0,
    });
    scene.now = t(300);
    let result = scene.advance();
    assert_eq!(phase(&result), RolloutPhase::Soaking);
    assert!(result.actions.is_empty());
}

#[test]
fn sizing_change_is_pending_during_rollout() {
    let mut scene = soaking_scene();
    scene.sizing = vec![5, 5];
    scene.now = t(300);
    let result = scene.advance();
    assert_eq!(result.pending_counts, Some(vec![5, 5]));
    assert!(
        !result
            .actions
            .iter()
            .any(|a| matches!(a, RolloutAction::Scale { .. })),
        "{:?}",
        result.actions
    );
    assert!(
        result
            .decisions
            .iter()
            .any(|d| d.action == "scale deferred")
    );
}

#[test]
fn version_change_mid_rollout_rolls_back() {
    let mut scene = soaking_scene();
    scene.pool.spec.version = "registry.local/face:3".to_owned();
    scene.now = t(300);
    let result = scene.advance();
    assert_eq!(phase(&result), RolloutPhase::RollingBack);
    let failure = result.state.expect("state").failure.expect("reason");
    assert!(failure.contains("spec.version changed"), "{failure}");
}

#[test]
fn restart_during_rolling_does_not_repeat_golden() {
    let mut scene = rolling_scene();
    scene.stored = None;
    scene.deployment = Some(deployment("d3", 3, DeploymentStatus::Running, false));
    let result = scene.advance();

    assert_eq!(phase(&result), RolloutPhase::Rolling);
    assert_eq!(result.state.clone().expect("state").from_version, OLD);
    assert!(result.actions.is_empty(), "{:?}", result.actions);
    assert!(
        result
            .decisions
            .iter()
            .any(|d| d.reason.contains("re-derived"))
    );
}

#[test]
fn restart_with_unpromoted_canary_soaks_again() {
    let mut scene = golden_scene();
    add_canary(&mut scene, AllocHealth::Healthy);
    scene.stored = None;
    scene.now = t(500);
    let result = scene.advance();

    let state = result.state.expect("state");
    assert_eq!(state.phase, RolloutPhase::Soaking);
    assert_eq!(state.soak_until, Some(t(500 + 600)));
    assert!(result.actions.is_empty(), "{:?}", result.actions);
}

#[test]
fn restart_after_failed_deployment_rolls_back() {
    let mut scene = golden_scene();
    scene.stored = None;
    scene.deployment = Some(deployment("d3", 3, DeploymentStatus::Failed, true));
    let result = scene.advance();

    let state = result.state.clone().expect("state");
    assert_eq!(state.phase, RolloutPhase::RollingBack);
    assert_eq!(state.failed_deployment_id.as_deref(), Some("d3"));
    let groups = registered_groups(&result);
    assert_eq!(groups[0], ("a".to_owned(), OLD.to_owned(), 4, 0));
}

#[test]
fn rollback_deadline_fails_loudly() {
    let mut scene = rolling_scene();
    let mut state = scene.stored.clone().expect("state");
    state.phase = RolloutPhase::RollingBack;
    state.failure = Some("golden worker unhealthy".to_owned());
    state.phase_deadline = t(700);
    scene.stored = Some(state);
    scene.deployment = Some(deployment("d3", 3, DeploymentStatus::Running, false));
    let result = scene.advance();

    assert_eq!(phase(&result), RolloutPhase::Failed);
    let failure = result.state.expect("state").failure.expect("reason");
    assert!(failure.contains("rollback timed out"), "{failure}");
}

#[test]
fn rollout_state_round_trips_as_json() {
    let scene = soaking_scene();
    let state = scene.stored.clone().expect("state");
    let json = serde_json::to_value(&state).expect("serializes");
    assert_eq!(json["phase"], "Soaking");
    assert_eq!(json["fromVersion"], OLD);
    assert_eq!(json["golden"]["allocationId"], "golden");
    let back: RolloutState = serde_json::from_value(json).expect("parses");
    assert_eq!(back, state);
}

#[test]
fn permanent_pull_errors_are_recognized() {
    let cases = [
        ("unauthorized: authentication required", true),
        (
            "pull access denied for face, repository does not exist",
            true,
        ),
        ("denied: requested access to the resource is denied", true),
        (
            "Get https://registry/v2/: net/http: TLS handshake timeout",
            false,
        ),
        ("Downloading image", false),
    ];
    for (message, permanent) in cases {
        assert_eq!(
            prefetch::is_permanent_pull_error(message),
            permanent,
            "{message}"
        );
    }
}

#[test]
fn group_version_reads_image_env_and_meta() {
    let scene = Scene::before_rollout(pool());
    let job = &scene.observed.job.as_ref().expect("job").job;
    assert_eq!(group_version(&job.groups()[0]), Some(OLD));

    let mut group = job.groups()[0].clone();
    group.meta = None;
    assert_eq!(group_version(&group), Some(OLD));

    let tasks = group.tasks.as_mut().expect("tasks");
    tasks[0].driver = "exec".to_owned();
    tasks[0].env = Some(BTreeMap::from([(
        "STEWARD_VERSION".to_owned(),
        "v7".to_owned(),
    )]));
    assert_eq!(group_version(&group), Some("v7"));
}

/// Records every call. With `block_scale`, `scale` fails as Nomad does during a deployment.
#[derive(Default)]
struct RecordingExecutor {
    calls: std::sync::Mutex<Vec<String>>,
    block_scale: bool,
}

impl RecordingExecutor {
    fn record(&self, call: String) {
        self.calls.lock().expect("calls lock").push(call);
    }
}

impl crate::reconcile::Executor for RecordingExecutor {
    async fn get_job(
        &self,
        _job: &crate::reconcile::JobKey,
    ) -> Result<Option<ObservedJob>, crate::reconcile::ExecError> {
        Ok(None)
    }

    async fn register_job(
        &self,
        job: &crate::nomad::Job,
        enforce_index: u64,
        _preserve_counts: bool,
    ) -> Result<(), crate::reconcile::ExecError> {
        self.record(format!("register {} {enforce_index}", job.id));
        Ok(())
    }

    async fn scale(
        &self,
        _job: &crate::reconcile::JobKey,
        group: &str,
        count: u32,
        _message: &str,
    ) -> Result<(), crate::reconcile::ExecError> {
        self.record(format!("scale {group} {count}"));
        if self.block_scale {
            return Err(crate::reconcile::ExecError::DeploymentActive);
        }
        Ok(())
    }

    async fn record_scaling_event(
        &self,
        _job: &crate::reconcile::JobKey,
        group: &str,
        _message: &str,
    ) -> Result<(), crate::reconcile::ExecError> {
        self.record(format!("event {group}"));
        Ok(())
    }

    async fn stop_job(
        &self,
        job: &crate::reconcile::JobKey,
    ) -> Result<(), crate::reconcile::ExecError> {
        self.record(format!("stop {}", job.id));
        Err(crate::reconcile::ExecError::NotFound)
    }
}

impl RolloutExecutor for RecordingExecutor {
    async fn promote_deployment(&self, id: &str) -> Result<(), crate::reconcile::ExecError> {
        self.record(format!("promote {id}"));
        Ok(())
    }

    async fn fail_deployment(&self, id: &str) -> Result<(), crate::reconcile::ExecError> {
        self.record(format!("fail {id}"));
        Ok(())
    }

    async fn pause_deployment(
        &self,
        id: &str,
        pause: bool,
    ) -> Result<(), crate::reconcile::ExecError> {
        self.record(format!("pause {id} {pause}"));
        Ok(())
    }
}

fn keys() -> (crate::reconcile::JobKey, crate::reconcile::JobKey) {
    let pool = pool();
    (crate::reconcile::JobKey::of(&pool), prefetch_key(&pool))
}

#[tokio::test]
async fn apply_performs_actions_in_order() {
    let executor = RecordingExecutor::default();
    let (job, prefetch) = keys();
    let actions = vec![
        RolloutAction::StopPrefetch,
        RolloutAction::FailDeployment {
            deployment_id: "d1".to_owned(),
        },
        RolloutAction::PauseDeployment {
            deployment_id: "d1".to_owned(),
            pause: false,
        },
        RolloutAction::PromoteDeployment {
            deployment_id: "d1".to_owned(),
        },
        RolloutAction::Scale {
            group: "a".to_owned(),
            count: 4,
            message: "surge".to_owned(),
        },
    ];
    apply(&executor, &job, &prefetch, &actions)
        .await
        .expect("a missing prefetch job is not an error");
    let calls = executor.calls.lock().expect("calls lock").clone();
    assert_eq!(
        calls,
        [
            "stop face-prefetch",
            "fail d1",
            "pause d1 false",
            "promote d1",
            "scale a 4"
        ]
    );
}

#[tokio::test]
async fn apply_treats_blocked_scale_as_no_op() {
    let executor = RecordingExecutor {
        block_scale: true,
        ..RecordingExecutor::default()
    };
    let (job, prefetch) = keys();
    let actions = vec![
        RolloutAction::Scale {
            group: "a".to_owned(),
            count: 4,
            message: "surge".to_owned(),
        },
        RolloutAction::PromoteDeployment {
            deployment_id: "d1".to_owned(),
        },
    ];
    let result = apply(&executor, &job, &prefetch, &actions).await;
    assert_eq!(result, Ok(()));
    let calls = executor.calls.lock().expect("calls lock").clone();
    assert_eq!(calls, ["scale a 4"]);
}

#[test]
fn requeue_never_exceeds_recheck() {
    let scene = soaking_scene();
    let result = scene.step();
    let requeue = result.requeue_after.expect("requeue while active");
    assert!(requeue <= ROLLOUT_RECHECK);
    assert!(requeue > Duration::ZERO);
}

#[test]
fn merge_into_sets_phase_and_conditions() {
    let scene = soaking_scene();
    let result = scene.step();
    let mut report = crate::reconcile::StatusReport {
        phase: Phase::Ready,
        workers: Default::default(),
        zones: Vec::new(),
        sizing: None,
        conditions: vec![crate::reconcile::status::ConditionReport {
            r#type: step::condition_type::ROLLOUT_PAUSED,
            status: ConditionStatus::True,
            reason: "Stale".to_owned(),
            message: "stale".to_owned(),
        }],
        decisions: Vec::new(),
        last_error: None,
    };
    result.merge_into(&mut report);

    assert_eq!(report.phase, Phase::RollingOut);
    let paused: Vec<_> = report
        .conditions
        .iter()
        .filter(|c| c.r#type == step::condition_type::ROLLOUT_PAUSED)
        .collect();
    assert_eq!(paused.len(), 1);
    assert_eq!(paused[0].reason, "NotPaused");
    assert!(
        report
            .conditions
            .iter()
            .any(|c| c.r#type == step::condition_type::ROLLOUT_PROGRESSING)
    );
}

#[test]
fn state_reads_back_from_status() {
    let scene = soaking_scene();
    let state = scene.stored.clone().expect("state");
    let status = crate::reconcile::Status {
        pool: "face".to_owned(),
        observed_generation: 1,
        phase: Phase::RollingOut,
        workers: Default::default(),
        zones: Vec::new(),
        sizing: None,
        rollout: Some(state.to_status_value()),
        conditions: Vec::new(),
        last_error: None,
        decisions: Vec::new(),
        r#override: None,
        written_by: "test".to_owned(),
        updated_at: t(0),
    };
    assert_eq!(
        RolloutState::from_status(&status).expect("parses"),
        Some(state)
    );

    let empty = crate::reconcile::Status {
        rollout: None,
        ..status.clone()
    };
    assert_eq!(RolloutState::from_status(&empty).expect("parses"), None);

    let invalid = crate::reconcile::Status {
        rollout: Some(serde_json::json!({"phase": "Sideways"})),
        ..status
    };
    assert!(RolloutState::from_status(&invalid).is_err());
}

#[test]
fn prefetch_ignores_older_job_versions() {
    let mut scene = Scene::before_rollout(pool());
    scene.advance();
    scene.prefetch_registered();
    let job = scene.prefetch.job.as_mut().expect("prefetch job");
    job.job.version = Some(2);
    let mut stale = prefetch_alloc("p0", "n1", ClientStatus::Complete, &[]);
    stale.job_version = 1;
    let mut current = prefetch_alloc("p1", "n2", ClientStatus::Complete, &[]);
    current.job_version = 2;
    scene.prefetch.allocations = vec![stale, current];
    scene.now = t(30);
    let result = scene.advance();

    let state = result.state.expect("state");
    assert_eq!(state.phase, RolloutPhase::Prefetching);
    assert_eq!(state.prefetch[0].state, PullState::Pending);
    assert_eq!(state.prefetch[1].state, PullState::Pulled);
}

#[test]
fn stopped_prefetch_job_is_registered_again() {
    let mut scene = Scene::before_rollout(pool());
    scene.advance();
    scene.prefetch_registered();
    let job = scene.prefetch.job.as_mut().expect("prefetch job");
    job.job.stop = Some(true);
    job.job_modify_index = 55;
    let result = scene.advance();

    let [RolloutAction::RegisterPrefetch { enforce_index, .. }] = result.actions.as_slice() else {
        panic!("expected RegisterPrefetch, got {:?}", result.actions);
    };
    assert_eq!(*enforce_index, 55);
}

#[test]
fn running_deployment_moves_the_deadline() {
    let mut scene = rolling_scene();
    let mut state = scene.stored.clone().expect("state");
    state.phase_deadline = t(810);
    scene.stored = Some(state);
    scene.deployment = Some(deployment("d3", 3, DeploymentStatus::Running, false));
    scene.now = t(805);
    let result = scene.advance();

    let state = result.state.expect("state");
    assert_eq!(state.phase, RolloutPhase::Rolling);
    assert_eq!(state.phase_deadline, t(805 + 5 * 60 + 10 + 60));
}

#[test]
fn late_step_after_settled_zone_continues() {
    // No step ran between t(720) and t(2000), as when the leader died and the standby took
    // over. Zone a's deployment finished meanwhile, so the rollout goes on.
    let mut scene = rolling_scene();
    scene.now = t(2000);
    let result = scene.advance();

    assert_eq!(phase(&result), RolloutPhase::Rolling, "{:?}", result.state);
    assert_eq!(only_scale(&result), ("a", 3));
    let state = result.state.expect("state");
    assert_eq!(state.phase_deadline, t(2000 + 5 * 60 + 10 + 60));
}

#[test]
fn late_step_with_unsettled_zone_rolls_back() {
    // The deadline is t(720 + 370); a running controller steps soon after it.
    let mut scene = rolling_scene();
    scene.observed.allocations = workers([3, 3], 3);
    scene.deployment = None;
    scene.now = t(1100);
    let result = scene.advance();

    assert_eq!(phase(&result), RolloutPhase::RollingBack);
    let failure = result.state.expect("state").failure.expect("reason");
    assert!(failure.contains("zone a made no progress"), "{failure}");
    assert!(failure.contains("3 healthy workers"), "{failure}");
}

#[test]
fn late_golden_register_after_settled_prefetch() {
    let mut scene = Scene::before_rollout(pool());
    scene.prefetch_registered();
    scene.prefetch.allocations = vec![
        prefetch_alloc("p1", "n1", ClientStatus::Complete, &[]),
        prefetch_alloc("p2", "n2", ClientStatus::Complete, &[]),
    ];
    let entered = scene.step();
    let mut state = entered.state.expect("state");
    assert_eq!(state.phase, RolloutPhase::Golden);
    state.phase_deadline = t(100);
    scene.stored = Some(state);
    scene.prefetch = PrefetchObserved::default();
    scene.now = t(3000);
    let result = scene.advance();

    assert_eq!(phase(&result), RolloutPhase::Golden, "{:?}", result.state);
    let groups = registered_groups(&result);
    assert_eq!(groups[0], ("a".to_owned(), NEW.to_owned(), 4, 1));
}

#[test]
fn soak_state_after_promotion_continues() {
    // The leader promoted at t(720) and stopped before it stored `Rolling`. When the next
    // step runs, zone a's deployment has already finished and the golden worker is no
    // longer a canary.
    let mut scene = soaking_scene();
    scene.deployment = Some(deployment("d3", 3, DeploymentStatus::Successful, false));
    scene.observed.allocations = workers([3, 3], 3);
    scene
        .observed
        .allocations
        .push(alloc("golden", "a", 3, AllocHealth::Healthy));
    scene.now = t(2000);
    let finished = scene.step();

    assert_eq!(
        phase(&finished),
        RolloutPhase::Rolling,
        "{:?}",
        finished.state
    );
    assert_eq!(only_scale(&finished), ("a", 3));

    // Still replacing zone a: the promoted deployment runs on, and the step waits for it.
    scene.deployment = Some(deployment("d3", 3, DeploymentStatus::Running, false));
    scene.observed.allocations.remove(0);
    let running = scene.step();

    assert_eq!(
        phase(&running),
        RolloutPhase::Rolling,
        "{:?}",
        running.state
    );
    assert!(running.actions.is_empty(), "{:?}", running.actions);
}

#[test]
fn unobserved_deadline_restarts_budget() {
    // No step ran from t(720) to t(2000), and the first read after the gap shows zone a
    // unsettled. The budget starts again instead of a rollback.
    let mut scene = rolling_scene();
    scene.observed.allocations = workers([3, 3], 3);
    scene.deployment = None;
    scene.now = t(2000);
    let waiting = scene.advance();

    assert_eq!(
        phase(&waiting),
        RolloutPhase::Rolling,
        "{:?}",
        waiting.state
    );
    assert!(waiting.actions.is_empty(), "{:?}", waiting.actions);
    let state = waiting.state.expect("state");
    assert_eq!(state.phase_deadline, t(2000 + 5 * 60 + 10 + 60));

    // Still unsettled when the new budget ends: now the rollout rolls back.
    scene.now = t(2000 + 5 * 60 + 10 + 60 + 5);
    let late = scene.advance();
    assert_eq!(phase(&late), RolloutPhase::RollingBack, "{:?}", late.state);
}

/// Registers of `result` that put `version` on a group, as (group, count).
fn groups_at(result: &RolloutStep, version: &str) -> Vec<(String, i64)> {
    result
        .actions
        .iter()
        .filter_map(|action| match action {
            RolloutAction::RegisterJob { job, .. } => Some(job),
            _ => None,
        })
        .flat_map(|job| job.groups().to_vec())
        .filter(|group| group_version(group) == Some(version))
        .map(|group| (group.name.clone(), group.count.unwrap_or(0)))
        .collect()
}

/// Returns the step after a restore failed: spec.version went back to OLD, the restore
/// registered OLD on zone a, and then the restore's deployment `d6` failed.
fn failed_restore_scene(auto_rollback: bool) -> (Scene, RolloutStep) {
    let mut scene = failed_rollout_scene(pool_with(serde_json::json!({
        "goldenSoak": "10m",
        "healthyDeadline": "5m",
        "minHealthyTime": "10s",
        "surge": 1,
        "autoRollback": auto_rollback,
        "prefetch": {"timeout": "10m"}
    })));
    scene.pool.spec.version = OLD.to_owned();
    let restore = scene.advance();
    assert_eq!(
        groups_at(&restore, OLD),
        [("a".to_owned(), 4), ("b".to_owned(), 3)]
    );

    scene.set_live([OLD, OLD], [4, 3], 6);
    scene.deployment = Some(deployment("d6", 6, DeploymentStatus::Failed, false));
    scene.now = t(30);
    let failed = scene.advance();
    (scene, failed)
}

#[test]
fn failed_restore_never_rolls_back() {
    for auto_rollback in [true, false] {
        let (_, failed) = failed_restore_scene(auto_rollback);
        assert!(groups_at(&failed, NEW).is_empty(), "{:?}", failed.actions);
        let state = failed.state.clone().expect("state");
        assert_eq!(state.phase, RolloutPhase::Failed);
        // Stored in the direction of the rollout that failed.
        assert_eq!(
            (state.from_version.as_str(), state.to_version.as_str()),
            (OLD, NEW)
        );
        assert!(
            state
                .failure
                .as_deref()
                .is_some_and(|f| f.starts_with("restoring")),
            "{:?}",
            state.failure
        );
        assert_eq!(failed.restored_version(OLD), None);
    }
}

#[test]
fn restored_zones_need_no_rollout() {
    let (mut scene, _) = failed_restore_scene(false);
    scene.now = t(40);
    let idle = scene.advance();
    assert!(idle.state.is_none(), "{:?}", idle.state);
    assert!(idle.actions.is_empty(), "{:?}", idle.actions);

    // spec.version at NEW again: a new rollout, golden worker first.
    scene.pool.spec.version = NEW.to_owned();
    let again = scene.advance();
    assert_eq!(phase(&again), RolloutPhase::Prefetching);
    assert!(groups_at(&again, NEW).is_empty(), "{:?}", again.actions);
}

#[test]
fn failed_restore_waits_for_retry() {
    // A restore that failed before its register: zone a still has NEW registered.
    let mut scene = failed_rollout_scene(pool());
    let state = scene.stored.as_mut().expect("stored state");
    state.restore = true;
    state.failure = Some("restoring OLD failed".to_owned());
    scene.pool.spec.version = OLD.to_owned();

    let idle = scene.advance();
    assert_eq!(phase(&idle), RolloutPhase::Failed);
    assert!(idle.actions.is_empty(), "{:?}", idle.actions);

    scene.control = Some(Control {
        action: ControlAction::Retry,
        by: "bob".to_owned(),
        at: t(50),
        index: 0,
    });
    scene.now = t(60);
    let retry = scene.advance();
    assert_eq!(phase(&retry), RolloutPhase::Rolling);
    assert!(groups_at(&retry, NEW).is_empty(), "{:?}", retry.actions);
    assert_eq!(
        groups_at(&retry, OLD),
        [("a".to_owned(), 4), ("b".to_owned(), 3)]
    );
}

#[test]
fn abort_does_not_apply_to_a_restore() {
    let mut scene = failed_rollout_scene(pool());
    scene.pool.spec.version = OLD.to_owned();
    scene.advance();
    scene.set_live([OLD, OLD], [4, 3], 6);
    scene.deployment = Some(deployment("d6", 6, DeploymentStatus::Running, false));
    scene.control = Some(Control {
        action: ControlAction::Abort,
        by: "dave".to_owned(),
        at: t(20),
        index: 0,
    });
    scene.now = t(30);

    let aborted = scene.advance();
    assert!(groups_at(&aborted, NEW).is_empty(), "{:?}", aborted.actions);
    assert_eq!(phase(&aborted), RolloutPhase::Rolling);
    assert!(
        aborted
            .decisions
            .iter()
            .any(|d| d.action == "ignore control" && d.reason.contains("restore")),
        "{:?}",
        aborted.decisions
    );
}
