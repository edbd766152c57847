use std::time::Duration;

use steward::reconcile::plan::RECHECK_AFTER;
use steward::reconcile::status::condition_type;
use steward::reconcile::{
    Action, ConditionStatus, DeploymentStatus, GroupVersion, ObservedDeployment, Phase, PlanInput,
    SizingSource, Status, plan, plan_delete, plan_with, render_job_versions,
};

use super::{FakeCluster, example_pool, override_of, three_zone_pool, time};

const NOW: &str = "2026-12-04T20:00:00Z";

fn condition(plan: &steward::reconcile::Plan, r#type: &str) -> ConditionStatus {
    plan.status
        .conditions
        .iter()
        .find(|c| c.r#type == r#type)
        .map(|c| c.status)
        .unwrap_or_else(|| panic!("condition {type} missing", type = r#type))
}

/// Plans and applies until no action is left, settling allocations after each step.
fn converge(
    cluster: &mut FakeCluster,
    pool: &steward::spec::WorkerPool,
    override_: Option<&steward::spec::Override>,
    now: &str,
) {
    for _ in 0..20 {
        let plan = plan(pool, override_, &cluster.observed, time(now));
        if plan.actions.is_empty() {
            return;
        }
        cluster.apply(&plan);
        cluster.settle();
    }
    panic!("no convergence after 20 plans");
}

#[test]
fn plan_creates_missing_job() {
    let pool = example_pool();
    let cluster = FakeCluster::new(&["dc-a", "dc-b"]);
    let plan = plan(&pool, None, &cluster.observed, time(NOW));

    assert_eq!(plan.actions.len(), 1);
    let Action::CreateJob(job) = &plan.actions[0] else {
        panic!("expected CreateJob, found {:?}", plan.actions[0]);
    };
    assert_eq!(job.groups()[0].count, Some(1));
    assert_eq!(job.groups()[1].count, Some(1));
    assert_eq!(plan.status.workers.desired, 2);
    assert_eq!(plan.status.phase, Phase::Scaling);
    assert_eq!(plan.status.decisions[0].action, "create job");
}

#[test]
fn plan_twice_on_converged_state_does_nothing() {
    let pool = example_pool();
    let mut cluster = FakeCluster::new(&["dc-a", "dc-b"]);
    converge(&mut cluster, &pool, None, NOW);

    let first = plan(&pool, None, &cluster.observed, time(NOW));
    let second = plan(&pool, None, &cluster.observed, time(NOW));

    assert_eq!(first.actions, Vec::new());
    assert_eq!(second.actions, Vec::new());
    assert_eq!(first.status.phase, Phase::Ready);
    assert_eq!(first.status.decisions[0].action, "no change");
    assert_eq!(first.requeue_after, None);
    assert_eq!(
        condition(&first, condition_type::READY),
        ConditionStatus::True
    );
}

#[test]
fn plan_odd_even_counts_two_and_three_zones() {
    for (pool, datacenters) in [
        (example_pool(), vec!["dc-a", "dc-b"]),
        (three_zone_pool(), vec!["dc-a", "dc-b", "dc-c"]),
    ] {
        let zones = pool.spec.zones.len();
        for workers in 1..=9u32 {
            let mut pool = pool.clone();
            pool.spec.workers.min = workers;
            let mut cluster = FakeCluster::new(&datacenters);
            converge(&mut cluster, &pool, None, NOW);

            let expected: Vec<u32> = (0..zones)
                .map(|zone| (0..workers as usize).filter(|w| w % zones == zone).count() as u32)
                .collect();
            assert_eq!(
                cluster.counts(),
                expected,
                "{workers} workers over {zones} zones"
            );
        }
    }
}

#[test]
fn plan_scales_through_scale_endpoint_with_message() {
    let pool = example_pool();
    let mut cluster = FakeCluster::new(&["dc-a", "dc-b"]);
    converge(&mut cluster, &pool, None, NOW);

    let pinned = override_of(5, "2026-12-04T22:00:00Z", false);
    let plan = plan(&pool, Some(&pinned), &cluster.observed, time(NOW));

    assert_eq!(plan.actions.len(), 2);
    let Action::Scale {
        group,
        count,
        message,
    } = &plan.actions[0]
    else {
        panic!("expected Scale, found {:?}", plan.actions[0]);
    };
    assert_eq!(group, "a");
    assert_eq!(*count, 3);
    assert!(message.contains("zone a 1 -> 3"), "message: {message}");
    assert!(
        message.contains("incident 42"),
        "message names the override reason: {message}"
    );
    assert!(matches!(&plan.actions[1], Action::Scale { group, count: 2, .. } if group == "b"));
}

#[test]
fn override_set_hold_zero_clear_min() {
    let pool = example_pool();
    let mut cluster = FakeCluster::new(&["dc-a", "dc-b"]);
    converge(&mut cluster, &pool, None, NOW);
    assert_eq!(cluster.counts(), vec![1, 1]);

    // Set: 6 workers.
    let six = override_of(6, "2026-12-04T22:00:00Z", false);
    converge(&mut cluster, &pool, Some(&six), NOW);
    assert_eq!(cluster.counts(), vec![3, 3]);

    // Hold: nothing more to do while the override is active.
    let holding = plan(
        &pool,
        Some(&six),
        &cluster.observed,
        time("2026-12-04T21:00:00Z"),
    );
    assert_eq!(holding.actions, Vec::new());
    assert_eq!(
        holding.status.sizing.as_ref().expect("sizing").source,
        SizingSource::Override
    );
    assert_eq!(
        condition(&holding, condition_type::OVERRIDE_ACTIVE),
        ConditionStatus::True
    );

    // Below workers.min without force: held at min.
    let below_min = override_of(1, "2026-12-04T22:00:00Z", false);
    let held_at_min = plan(&pool, Some(&below_min), &cluster.observed, time(NOW));
    let sizing = held_at_min.status.sizing.as_ref().expect("sizing");
    assert_eq!(sizing.desired, 2);
    assert_eq!(sizing.source, SizingSource::Min);
    assert!(
        sizing.reason.contains("below workers.min 2"),
        "{}",
        sizing.reason
    );

    // With force, 0 means 0.
    let zero = override_of(0, "2026-12-04T22:00:00Z", true);
    converge(&mut cluster, &pool, Some(&zero), NOW);
    assert_eq!(cluster.counts(), vec![0, 0]);

    // Cleared: back to workers.min.
    converge(&mut cluster, &pool, None, NOW);
    assert_eq!(cluster.counts(), vec![1, 1]);
}

#[test]
fn override_expires_exactly_at_until() {
    let pool = example_pool();
    let cluster = FakeCluster::new(&["dc-a", "dc-b"]);
    let pinned = override_of(6, "2026-12-04T22:00:00Z", false);

    let before = plan(
        &pool,
        Some(&pinned),
        &cluster.observed,
        time("2026-12-04T21:59:59.999999999Z"),
    );
    let sizing = before.status.sizing.as_ref().expect("sizing");
    assert_eq!(sizing.desired, 6);
    assert_eq!(sizing.source, SizingSource::Override);

    let at = plan(
        &pool,
        Some(&pinned),
        &cluster.observed,
        time("2026-12-04T22:00:00Z"),
    );
    let sizing = at.status.sizing.as_ref().expect("sizing");
    assert_eq!(sizing.desired, 2);
    assert_eq!(sizing.source, SizingSource::Min);
    assert!(
        sizing.reason.contains("expired"),
        "reason: {}",
        sizing.reason
    );
    assert_eq!(
        condition(&at, condition_type::OVERRIDE_ACTIVE),
        ConditionStatus::False
    );
}

#[test]
fn override_requeues_at_until() {
    let pool = example_pool();
    let mut cluster = FakeCluster::new(&["dc-a", "dc-b"]);
    let pinned = override_of(2, "2026-12-04T20:10:00Z", false);
    converge(&mut cluster, &pool, Some(&pinned), NOW);

    let plan = plan(&pool, Some(&pinned), &cluster.observed, time(NOW));
    assert_eq!(plan.actions, Vec::new());
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(600)));
}

#[test]
fn override_above_max_needs_force() {
    let pool = example_pool();
    let cluster = FakeCluster::new(&["dc-a", "dc-b"]);

    let unforced = override_of(14, "2026-12-04T22:00:00Z", false);
    let plan_unforced = plan(&pool, Some(&unforced), &cluster.observed, time(NOW));
    let sizing = plan_unforced.status.sizing.as_ref().expect("sizing");
    assert_eq!(sizing.desired, 10);
    assert_eq!(sizing.source, SizingSource::Max);

    let forced = override_of(14, "2026-12-04T22:00:00Z", true);
    let plan_forced = plan(&pool, Some(&forced), &cluster.observed, time(NOW));
    let sizing = plan_forced.status.sizing.as_ref().expect("sizing");
    assert_eq!(sizing.desired, 14);
    assert_eq!(sizing.source, SizingSource::Override);
}

#[test]
fn count_drift_is_put_back() {
    let pool = example_pool();
    let mut cluster = FakeCluster::new(&["dc-a", "dc-b"]);
    converge(&mut cluster, &pool, None, NOW);
    let converged = plan(&pool, None, &cluster.observed, time(NOW));
    let previous = Status::next("face-match", None, &converged.status, 7, "test", time(NOW));

    cluster.set_count_by_hand("b", 4);
    let plan = plan_with(&PlanInput {
        pool: &pool,
        override_: None,
        autoscaler: None,
        observed: &cluster.observed,
        previous: Some(&previous),
        now: time(NOW),
    });

    assert_eq!(plan.actions.len(), 1);
    assert!(matches!(&plan.actions[0], Action::Scale { group, count: 1, .. } if group == "b"));
    let decision = &plan.status.decisions[0];
    assert_eq!(decision.action, "scale zone b 4 -> 1");
    assert!(
        decision.reason.contains("changed outside Steward"),
        "reason: {}",
        decision.reason
    );
}

#[test]
fn pending_scale_is_not_drift() {
    let pool = example_pool();
    let mut cluster = FakeCluster::new(&["dc-a", "dc-b"]);
    converge(&mut cluster, &pool, None, NOW);
    let converged = plan(&pool, None, &cluster.observed, time(NOW));
    let first = Status::next("face-match", None, &converged.status, 7, "test", time(NOW));
    let six = override_of(6, "2026-12-04T22:00:00Z", false);
    let deployment = |status| {
        Some(ObservedDeployment {
            id: "d1".to_owned(),
            status,
            job_version: 0,
        })
    };

    // An override arrives while a deployment runs: a register replaces the deployment, and
    // nothing changed outside Steward.
    cluster.observed.deployment = deployment(DeploymentStatus::Running);
    let during = plan_with(&PlanInput {
        pool: &pool,
        override_: Some(&six),
        autoscaler: None,
        observed: &cluster.observed,
        previous: Some(&first),
        now: time(NOW),
    });
    assert_eq!(during.actions.len(), 2, "{:?}", during.actions);
    assert_eq!(during.status.decisions[0].action, "replace deployment");
    for decision in &during.status.decisions {
        assert!(
            !decision.reason.contains("outside Steward"),
            "{}",
            decision.reason
        );
    }
    let second = Status::next(
        "face-match",
        Some(&first),
        &during.status,
        8,
        "test",
        time(NOW),
    );

    // The write failed and the deployment ended: the count still pending is Steward's own.
    cluster.observed.deployment = deployment(DeploymentStatus::Successful);
    let scaled = plan_with(&PlanInput {
        pool: &pool,
        override_: Some(&six),
        autoscaler: None,
        observed: &cluster.observed,
        previous: Some(&second),
        now: time(NOW),
    });
    assert_eq!(scaled.actions.len(), 2, "{:?}", scaled.actions);
    for decision in &scaled.status.decisions {
        assert!(
            !decision.reason.contains("outside Steward"),
            "{}",
            decision.reason
        );
    }
}

#[test]
fn count_left_by_rollout_is_not_drift() {
    let pool = example_pool();
    let mut cluster = FakeCluster::new(&["dc-a", "dc-b"]);
    converge(&mut cluster, &pool, None, NOW);
    let converged = plan(&pool, None, &cluster.observed, time(NOW));
    cluster.set_count_by_hand("b", 4);

    // The same count difference after a failed rollout (its rollback left the surge), and
    // after a completed one.
    for (phase, drift) in [
        ("Failed", false),
        ("RollingBack", false),
        ("Complete", true),
    ] {
        let mut previous =
            Status::next("face-match", None, &converged.status, 7, "test", time(NOW));
        previous.rollout = Some(serde_json::json!({"phase": phase}));
        let plan = plan_with(&PlanInput {
            pool: &pool,
            override_: None,
            autoscaler: None,
            observed: &cluster.observed,
            previous: Some(&previous),
            now: time(NOW),
        });

        let decision = &plan.status.decisions[0];
        assert_eq!(decision.action, "scale zone b 4 -> 1", "{phase}");
        assert_eq!(
            decision.reason.contains("changed outside Steward"),
            drift,
            "{phase}: {}",
            decision.reason
        );
    }
}

#[test]
fn template_drift_reregisters_with_enforce_index() {
    let pool = example_pool();
    let mut cluster = FakeCluster::new(&["dc-a", "dc-b"]);
    converge(&mut cluster, &pool, None, NOW);

    let live = cluster.observed.job.as_mut().expect("job");
    let task = &mut live.job.task_groups.as_mut().expect("groups")[0]
        .tasks
        .as_mut()
        .expect("tasks")[0];
    task.resources.as_mut().expect("resources").memory_mb = Some(1024);
    let index = live.job_modify_index;

    let plan = plan(&pool, None, &cluster.observed, time(NOW));
    assert_eq!(plan.actions.len(), 1);
    let Action::RegisterJob {
        job,
        enforce_index,
        preserve_counts,
    } = &plan.actions[0]
    else {
        panic!("expected RegisterJob, found {:?}", plan.actions[0]);
    };
    assert_eq!(*enforce_index, index);
    assert!(*preserve_counts);
    let memory = job.groups()[0].task_list()[0]
        .resources
        .as_ref()
        .and_then(|r| r.memory_mb);
    assert_eq!(memory, Some(16384));
    assert!(
        plan.status.decisions[0].reason.contains("MemoryMB"),
        "{:?}",
        plan.status.decisions
    );
    assert_eq!(plan.requeue_after, Some(RECHECK_AFTER));

    cluster.apply(&plan);
    let after = super::plan::plan(&pool, None, &cluster.observed, time(NOW));
    assert_eq!(after.actions, Vec::new());
}

#[test]
fn stopped_job_is_registered_again() {
    let pool = example_pool();
    let mut cluster = FakeCluster::new(&["dc-a", "dc-b"]);
    converge(&mut cluster, &pool, None, NOW);
    cluster.observed.job.as_mut().expect("job").job.stop = Some(true);

    let plan = plan(&pool, None, &cluster.observed, time(NOW));

    assert!(
        matches!(plan.actions.as_slice(), [Action::RegisterJob { job, .. }] if job.stop.is_none())
    );
    assert!(
        plan.status.decisions[0].reason.contains("Stop"),
        "{:?}",
        plan.status.decisions
    );
}

#[test]
fn version_change_rolls_out() {
    let mut pool = example_pool();
    let mut cluster = FakeCluster::new(&["dc-a", "dc-b"]);
    converge(&mut cluster, &pool, None, NOW);

    pool.spec.version = "registry.example.com/face-match:1.5.0".to_owned();
    let plan = plan(&pool, None, &cluster.observed, time(NOW));

    assert!(matches!(
        plan.actions.as_slice(),
        [Action::RegisterJob { .. }]
    ));
    assert_eq!(plan.status.phase, Phase::RollingOut);
    assert!(
        plan.status.decisions[0]
            .reason
            .contains("1.4.2 to registry.example.com/face-match:1.5.0")
    );
}

#[test]
fn completed_rollout_is_converged() {
    let pool = example_pool();
    let mut cluster = FakeCluster::new(&["dc-a", "dc-b"]);
    converge(&mut cluster, &pool, None, NOW);

    // The job as a golden-first rollout leaves it: versions in group meta, the golden zone
    // with Canary = 1, and the job meta of the earlier register.
    let live = cluster.observed.job.as_mut().expect("job exists");
    let counts: Vec<u32> = ["a", "b"]
        .iter()
        .map(|zone| live.group_count(zone).expect("group exists"))
        .collect();
    let version = pool.spec.version.as_str();
    let mut rolled = render_job_versions(
        &pool,
        &[
            GroupVersion {
                count: counts[0],
                version,
                canary: 1,
            },
            GroupVersion {
                count: counts[1],
                version,
                canary: 0,
            },
        ],
    )
    .expect("renders");
    rolled.meta = live.job.meta.clone();
    rolled.job_modify_index = live.job.job_modify_index;
    live.job = rolled;

    let plan = plan(&pool, None, &cluster.observed, time(NOW));
    assert_eq!(plan.actions, Vec::new());
    assert_eq!(plan.status.phase, Phase::Ready);
}

#[test]
fn one_zone_behind_names_its_version() {
    let mut pool = example_pool();
    let mut cluster = FakeCluster::new(&["dc-a", "dc-b"]);
    converge(&mut cluster, &pool, None, NOW);
    let old = pool.spec.version.clone();
    let new = "registry.example.com/face-match:1.5.0";

    // Zone a already runs the new version; zone b still runs the old one.
    let live = cluster.observed.job.as_mut().expect("job exists");
    let counts: Vec<u32> = ["a", "b"]
        .iter()
        .map(|zone| live.group_count(zone).expect("group exists"))
        .collect();
    let mixed = render_job_versions(
        &pool,
        &[
            GroupVersion {
                count: counts[0],
                version: new,
                canary: 0,
            },
            GroupVersion {
                count: counts[1],
                version: &old,
                canary: 0,
            },
        ],
    )
    .expect("renders");
    live.job.task_groups = mixed.task_groups;
    pool.spec.version = new.to_owned();

    let plan = plan(&pool, None, &cluster.observed, time(NOW));
    assert!(matches!(
        plan.actions.as_slice(),
        [Action::RegisterJob { .. }]
    ));
    let reason = &plan.status.decisions[0].reason;
    assert_eq!(reason, &format!("version changed from {old} to {new}"));
}

#[test]
fn foreign_job_is_not_touched() {
    let pool = example_pool();
    let mut cluster = FakeCluster::new(&["dc-a", "dc-b"]);
    converge(&mut cluster, &pool, None, NOW);
    let live = cluster.observed.job.as_mut().expect("job");
    live.job
        .meta
        .as_mut()
        .expect("meta")
        .insert("steward.pool".to_owned(), "other".to_owned());
    live.job.task_groups.as_mut().expect("groups")[0].count = Some(9);

    let plan = plan(&pool, None, &cluster.observed, time(NOW));
    assert_eq!(plan.actions, Vec::new());
    assert_eq!(plan.status.phase, Phase::Degraded);
    assert_eq!(
        condition(&plan, condition_type::JOB_OWNED),
        ConditionStatus::False
    );
    assert!(
        plan.status.decisions[0]
            .reason
            .contains("belongs to pool other")
    );

    let live = cluster.observed.job.as_mut().expect("job");
    live.job.meta = None;
    let unmarked = super::plan::plan(&pool, None, &cluster.observed, time(NOW));
    assert_eq!(unmarked.actions, Vec::new());
    assert!(
        unmarked.status.decisions[0]
            .reason
            .contains("without the steward.pool=face-match")
    );
}

#[test]
fn paused_pool_reports_without_acting() {
    let mut pool = example_pool();
    let mut cluster = FakeCluster::new(&["dc-a", "dc-b"]);
    converge(&mut cluster, &pool, None, NOW);
    cluster.observed.allocations.pop();

    pool.spec.paused = true;
    let pinned = override_of(6, "2026-12-04T22:00:00Z", false);
    let plan = plan(&pool, Some(&pinned), &cluster.observed, time(NOW));

    assert_eq!(plan.actions, Vec::new());
    assert_eq!(plan.status.phase, Phase::Paused);
    assert_eq!(plan.status.workers.desired, 6);
    assert_eq!(plan.status.workers.running, 1);
    let last = plan.status.decisions.last().expect("decision");
    assert!(last.reason.contains("paused"), "reason: {}", last.reason);
}

#[test]
fn lower_counts_replace_active_deployment() {
    let pool = example_pool();
    let mut cluster = FakeCluster::new(&["dc-a", "dc-b"]);
    let eight = override_of(8, "2026-12-04T22:00:00Z", false);
    converge(&mut cluster, &pool, Some(&eight), NOW);
    cluster.observed.deployment = Some(ObservedDeployment {
        id: "d-9".to_owned(),
        status: DeploymentStatus::Running,
        job_version: 3,
    });

    let four = override_of(4, "2026-12-04T22:00:00Z", false);
    let plan = plan(&pool, Some(&four), &cluster.observed, time(NOW));

    let scales: Vec<(&str, u32)> = plan
        .actions
        .iter()
        .filter_map(|action| match action {
            Action::Scale { group, count, .. } => Some((group.as_str(), *count)),
            _ => None,
        })
        .collect();
    assert_eq!(scales, [("a", 2), ("b", 2)]);
    let replace = &plan.status.decisions[0];
    assert_eq!(replace.action, "replace deployment");
    assert!(
        replace.reason.contains("deployment d-9"),
        "{}",
        replace.reason
    );
}

#[test]
fn active_deployment_replaced_for_raised_counts() {
    let pool = example_pool();
    let mut cluster = FakeCluster::new(&["dc-a", "dc-b"]);
    converge(&mut cluster, &pool, None, NOW);
    cluster.observed.deployment = Some(ObservedDeployment {
        id: "d-1".to_owned(),
        status: DeploymentStatus::Running,
        job_version: 3,
    });
    // Every worker runs the live job version: the deployment only changes counts.
    let live_version = cluster
        .observed
        .job
        .as_ref()
        .and_then(|live| live.job.version)
        .expect("the live job has a version");
    for allocation in &mut cluster.observed.allocations {
        allocation.job_version = live_version;
    }

    let pinned = override_of(4, "2026-12-04T22:00:00Z", false);
    let scaling = plan(&pool, Some(&pinned), &cluster.observed, time(NOW));
    assert_eq!(scaling.actions.len(), 2, "{:?}", scaling.actions);
    assert_eq!(scaling.status.decisions[0].action, "replace deployment");
    assert!(
        scaling.status.decisions[0]
            .reason
            .contains("deployment d-1 in progress"),
        "{}",
        scaling.status.decisions[0].reason
    );
    assert_eq!(scaling.requeue_after, Some(RECHECK_AFTER));
    assert_eq!(scaling.status.phase, Phase::Scaling);

    // A worker of an older job version is being replaced: a new template rolls out.
    cluster.observed.allocations[0].job_version = live_version - 1;
    let replacing = plan(&pool, Some(&pinned), &cluster.observed, time(NOW));
    assert_eq!(replacing.status.phase, Phase::RollingOut);
}

#[test]
fn failover_then_stepwise_move_back() {
    let pool = example_pool();
    let pinned = override_of(4, "2026-12-04T22:00:00Z", false);
    let mut cluster = FakeCluster::new(&["dc-a", "dc-b"]);
    converge(&mut cluster, &pool, Some(&pinned), NOW);
    assert_eq!(cluster.counts(), vec![2, 2]);

    // Zone b loses its only node: its share moves to a at once.
    cluster.observed.nodes[1].draining = true;
    let failover = plan(&pool, Some(&pinned), &cluster.observed, time(NOW));
    assert_eq!(failover.status.phase, Phase::Degraded);
    let ready = failover
        .status
        .conditions
        .iter()
        .find(|c| c.r#type == condition_type::READY)
        .expect("Ready condition");
    assert!(
        ready.message.ends_with("; zone b has no eligible node"),
        "{}",
        ready.message
    );
    assert_eq!(
        condition(&failover, condition_type::ZONES_AVAILABLE),
        ConditionStatus::False
    );
    cluster.apply(&failover);
    cluster.settle();
    assert_eq!(cluster.counts(), vec![4, 0]);

    // Zone b recovers: add in b first, remove from a only once the new worker runs.
    cluster.observed.nodes[1].draining = false;
    let mut history = vec![cluster.counts()];
    for _ in 0..10 {
        let step = plan(&pool, Some(&pinned), &cluster.observed, time(NOW));
        if step.actions.is_empty() {
            break;
        }
        cluster.apply(&step);
        cluster.settle();
        history.push(cluster.counts());
    }
    assert_eq!(
        history,
        vec![vec![4, 0], vec![4, 1], vec![3, 1], vec![3, 2], vec![2, 2]]
    );
}

#[test]
fn failover_count_still_pending_is_not_drift() {
    let pool = example_pool();
    let pinned = override_of(4, "2026-12-04T22:00:00Z", false);
    let mut cluster = FakeCluster::new(&["dc-a", "dc-b"]);
    converge(&mut cluster, &pool, Some(&pinned), NOW);

    // Zone b loses its node and its workers; the failover's scale has not reached Nomad yet
    // when the next reconcile runs.
    cluster.observed.nodes[1].draining = true;
    cluster.observed.allocations.retain(|a| a.task_group != "b");
    let failover = plan(&pool, Some(&pinned), &cluster.observed, time(NOW));
    let written = Status::next("face-match", None, &failover.status, 7, "test", time(NOW));
    let zone_b = written
        .zones
        .iter()
        .find(|z| z.name == "b")
        .expect("zone b");
    assert_eq!((zone_b.workers.desired, zone_b.workers.running), (0, 0));

    let again = plan_with(&PlanInput {
        pool: &pool,
        override_: Some(&pinned),
        autoscaler: None,
        observed: &cluster.observed,
        previous: Some(&written),
        now: time(NOW),
    });
    assert!(!again.actions.is_empty(), "the failover is still pending");
    for decision in &again.status.decisions {
        assert!(
            !decision.reason.contains("outside Steward"),
            "{}",
            decision.reason
        );
    }
}

#[test]
fn move_back_waits_for_new_worker() {
    let pool = example_pool();
    let pinned = override_of(4, "2026-12-04T22:00:00Z", false);
    let mut cluster = FakeCluster::new(&["dc-a", "dc-b"]);
    converge(&mut cluster, &pool, Some(&pinned), NOW);
    cluster.set_count_by_hand("a", 4);
    cluster.set_count_by_hand("b", 1);
    cluster.observed.allocations.retain(|a| a.task_group == "a");
    for index in 2..4 {
        cluster
            .observed
            .allocations
            .push(super::running_alloc("a", index));
    }

    let plan = plan(&pool, Some(&pinned), &cluster.observed, time(NOW));
    assert_eq!(
        plan.actions,
        Vec::new(),
        "b's new worker is not running yet"
    );
}

#[test]
fn delete_stops_owned_job_unless_orphaned() {
    let pool = example_pool();
    let mut cluster = FakeCluster::new(&["dc-a", "dc-b"]);
    converge(&mut cluster, &pool, None, NOW);
    let key = steward::reconcile::JobKey::of(&pool);

    let stop = plan_delete("face-match", key.clone(), &cluster.observed, false);
    assert_eq!(stop.actions, vec![Action::StopJob]);

    let orphan = plan_delete("face-match", key.clone(), &cluster.observed, true);
    assert_eq!(orphan.actions, Vec::new());
    assert_eq!(orphan.status.decisions[0].action, "orphan job");

    let foreign = plan_delete("other", key, &cluster.observed, false);
    assert_eq!(foreign.actions, Vec::new());
}

#[test]
fn failover_off_keeps_split_and_degrades() {
    let mut pool = example_pool();
    pool.spec.split.zone_failover = false;
    let pinned = override_of(4, "2026-12-04T22:00:00Z", false);
    let mut cluster = FakeCluster::new(&["dc-a", "dc-b"]);
    converge(&mut cluster, &pool, Some(&pinned), NOW);
    cluster.observed.nodes[1].eligible = false;
    cluster.observed.allocations.retain(|a| a.task_group == "a");

    let plan = plan(&pool, Some(&pinned), &cluster.observed, time(NOW));

    assert_eq!(plan.actions, Vec::new());
    assert_eq!(plan.status.phase, Phase::Degraded);
    let zones = plan
        .status
        .conditions
        .iter()
        .find(|c| c.r#type == condition_type::ZONES_AVAILABLE)
        .expect("condition");
    assert!(
        zones.message.contains("zone failover is off"),
        "{}",
        zones.message
    );
    let decision = &plan.status.decisions[0];
    assert!(
        decision.reason.contains("zones b have no eligible node"),
        "{}",
        decision.reason
    );
}

#[test]
fn no_zone_left_says_workers_wait() {
    let pool = example_pool();
    let mut cluster = FakeCluster::new(&["dc-a", "dc-b"]);
    converge(&mut cluster, &pool, None, NOW);
    for node in cluster.observed.nodes.iter_mut() {
        node.eligible = false;
    }

    let plan = plan(&pool, None, &cluster.observed, time(NOW));

    let zones = plan
        .status
        .conditions
        .iter()
        .find(|c| c.r#type == condition_type::ZONES_AVAILABLE)
        .expect("condition");
    assert!(
        zones
            .message
            .contains("no zone is left to take their workers"),
        "{}",
        zones.message
    );
    assert!(
        !zones.message.contains("move to the other zones"),
        "{}",
        zones.message
    );
}

#[test]
fn three_zone_failover_spreads_share() {
    let pool = three_zone_pool();
    let pinned = override_of(7, "2026-12-04T22:00:00Z", false);
    let mut cluster = FakeCluster::new(&["dc-a", "dc-b", "dc-c"]);
    converge(&mut cluster, &pool, Some(&pinned), NOW);
    assert_eq!(cluster.counts(), vec![3, 2, 2]);

    cluster.observed.nodes[0].status = steward::reconcile::NodeStatus::Down;
    converge(&mut cluster, &pool, Some(&pinned), NOW);
    assert_eq!(cluster.counts(), vec![0, 4, 3]);
}

#[test]
fn autoscaler_recommendation_is_bounded() {
    let pool = example_pool();
    let cluster = FakeCluster::new(&["dc-a", "dc-b"]);
    let recommendation = steward::reconcile::AutoscalerRecommendation {
        desired: 25,
        source: SizingSource::Autoscaler,
        reason: "predicted 190.4 requests/s".to_owned(),
        predicted_rps: Some(190.4),
        inputs: [("capacityPerWorker".to_owned(), 8.0)].into(),
        last_cycle: Some(time("2026-12-04T19:55:00Z")),
        next_cycle: Some(time("2026-12-04T20:15:00Z")),
    };
    let input = PlanInput {
        pool: &pool,
        override_: None,
        autoscaler: Some(&recommendation),
        observed: &cluster.observed,
        previous: None,
        now: time(NOW),
    };

    let capped = plan_with(&input);
    let sizing = capped.status.sizing.as_ref().expect("sizing");
    assert_eq!(sizing.desired, 10);
    assert_eq!(sizing.source, SizingSource::Max);
    assert_eq!(sizing.predicted_rps, Some(190.4));
    assert_eq!(sizing.next_cycle, Some(time("2026-12-04T20:15:00Z")));
    assert_eq!(
        capped.requeue_after,
        Some(RECHECK_AFTER),
        "the create write rechecks first"
    );

    let within = steward::reconcile::AutoscalerRecommendation {
        desired: 7,
        ..recommendation.clone()
    };
    let planned = plan_with(&PlanInput {
        autoscaler: Some(&within),
        ..input
    });
    let sizing = planned.status.sizing.as_ref().expect("sizing");
    assert_eq!(sizing.desired, 7);
    assert_eq!(sizing.source, SizingSource::Autoscaler);

    let below = steward::reconcile::AutoscalerRecommendation {
        desired: 0,
        ..recommendation.clone()
    };
    let planned = plan_with(&PlanInput {
        autoscaler: Some(&below),
        ..input
    });
    assert_eq!(
        planned.status.sizing.as_ref().expect("sizing").source,
        SizingSource::Min
    );
    assert_eq!(planned.status.workers.desired, 2);
}

#[test]
fn converged_pool_requeues_at_next_cycle() {
    let pool = example_pool();
    let mut cluster = FakeCluster::new(&["dc-a", "dc-b"]);
    converge(&mut cluster, &pool, None, NOW);
    let recommendation = steward::reconcile::AutoscalerRecommendation {
        desired: 2,
        source: SizingSource::Autoscaler,
        reason: "predicted 10 requests/s".to_owned(),
        predicted_rps: Some(10.0),
        inputs: Default::default(),
        last_cycle: None,
        next_cycle: Some(time("2026-12-04T20:20:00Z")),
    };

    let planned = plan_with(&PlanInput {
        pool: &pool,
        override_: None,
        autoscaler: Some(&recommendation),
        observed: &cluster.observed,
        previous: None,
        now: time(NOW),
    });

    assert_eq!(planned.actions, Vec::new());
    assert_eq!(planned.requeue_after, Some(Duration::from_secs(1200)));
}

#[test]
fn autoscaled_pool_waits_for_first_decision_at_min() {
    let mut pool = example_pool();
    let sizing = steward::reconcile::sizing::decide(&pool, None, None, time(NOW));
    assert_eq!(sizing.source, SizingSource::Min);
    assert_eq!(sizing.reason, "no autoscaler: running workers.min 2");

    // With spec.autoscaling but no recommendation yet, the reason tells that the autoscaler
    // has not decided.
    pool.spec.autoscaling = Some(
        serde_saphyr::from_str("metric: {source: csv, path: trace.csv}\ncapacityPerWorker: 5\n")
            .expect("autoscaling parses"),
    );
    let sizing = steward::reconcile::sizing::decide(&pool, None, None, time(NOW));
    assert_eq!(sizing.source, SizingSource::Min);
    assert_eq!(
        sizing.reason,
        "the autoscaler has not decided yet: running workers.min 2"
    );
}
