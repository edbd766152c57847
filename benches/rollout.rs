//! Cost of one rollout step on a large pool: 2 zones of 250 workers each, soaking a golden
//! worker, with 20 nodes. The controller runs one step per reconcile of a rolling pool.

use std::collections::BTreeMap;

use criterion::{Criterion, criterion_group, criterion_main};
use jiff::Timestamp;
use serde_json::json;
use steward::reconcile::{
    AllocHealth, ClientStatus, DeploymentStatus, DesiredStatus, GroupVersion, NodeStatus, Observed,
    ObservedAllocation, ObservedJob, ObservedNode, render_job_versions,
};
use steward::rollout::{DeploymentView, PrefetchObserved, RolloutState, StepInput, step};
use steward::spec::WorkerPool;

const WORKERS_PER_ZONE: u32 = 250;

fn pool() -> WorkerPool {
    serde_json::from_value(json!({
        "apiVersion": "steward/v1",
        "kind": "WorkerPool",
        "metadata": {"name": "face"},
        "spec": {
            "template": {"Name": "worker", "Tasks": [{"Name": "app", "Driver": "docker"}]},
            "version": "face:2",
            "workers": {"min": 1, "max": 1000},
            "zones": [
                {"name": "a", "datacenter": "dc-a"},
                {"name": "b", "datacenter": "dc-b"}
            ]
        }
    }))
    .expect("bench pool is valid")
}

fn observed(pool: &WorkerPool) -> Observed {
    let groups = [
        GroupVersion {
            count: WORKERS_PER_ZONE + 1,
            version: "face:2",
            canary: 1,
        },
        GroupVersion {
            count: WORKERS_PER_ZONE,
            version: "face:1",
            canary: 0,
        },
    ];
    let mut job = render_job_versions(pool, &groups).expect("bench pool renders");
    job.version = Some(3);
    job.job_modify_index = Some(30);

    let mut allocations = Vec::new();
    for (group, datacenter) in [("a", "dc-a"), ("b", "dc-b")] {
        for index in 0..WORKERS_PER_ZONE {
            allocations.push(ObservedAllocation {
                id: format!("{group}-{index}"),
                task_group: group.to_owned(),
                node_id: format!("{datacenter}-{}", index % 10),
                job_version: 2,
                client_status: ClientStatus::Running,
                desired_status: DesiredStatus::Run,
                health: AllocHealth::Healthy,
                canary: false,
            });
        }
    }
    allocations.push(ObservedAllocation {
        id: "golden".to_owned(),
        task_group: "a".to_owned(),
        node_id: "dc-a-0".to_owned(),
        job_version: 3,
        client_status: ClientStatus::Running,
        desired_status: DesiredStatus::Run,
        health: AllocHealth::Healthy,
        canary: true,
    });

    let nodes = ["dc-a", "dc-b"]
        .iter()
        .flat_map(|datacenter| {
            (0..10).map(move |index| ObservedNode {
                id: format!("{datacenter}-{index}"),
                datacenter: (*datacenter).to_owned(),
                meta: BTreeMap::new(),
                attributes: BTreeMap::new(),
                status: NodeStatus::Ready,
                eligible: true,
                draining: false,
            })
        })
        .collect();

    Observed {
        job: Some(ObservedJob::new(job)),
        allocations,
        nodes,
        deployment: None,
    }
}

fn soaking_state(now: Timestamp) -> RolloutState {
    serde_json::from_value(json!({
        "phase": "Soaking",
        "fromVersion": "face:1",
        "toVersion": "face:2",
        "startedAt": now,
        "phaseStartedAt": now,
        "phaseDeadline": now.saturating_add(jiff::SignedDuration::from_hours(1)).expect("in range"),
        "counts": [WORKERS_PER_ZONE, WORKERS_PER_ZONE],
        "golden": {"allocationId": "golden", "nodeId": "dc-a-0", "zone": "a", "healthySince": now},
        "soakUntil": now.saturating_add(jiff::SignedDuration::from_mins(10)).expect("in range")
    }))
    .expect("bench state is valid")
}

fn bench_step(c: &mut Criterion) {
    let pool = pool();
    let observed = observed(&pool);
    let now: Timestamp = "2026-12-04T20:00:00Z".parse().expect("valid time");
    let state = soaking_state(now);
    let deployment = DeploymentView {
        id: "d3".to_owned(),
        job_version: 3,
        status: DeploymentStatus::Running,
        description: "Deployment is running but requires manual promotion".to_owned(),
        requires_promotion: true,
        progress_deadline: None,
    };
    let prefetch = PrefetchObserved::default();
    let sizing = [WORKERS_PER_ZONE, WORKERS_PER_ZONE];

    c.bench_function("rollout step, soaking, 500 workers", |b| {
        b.iter(|| {
            step(&StepInput {
                pool: &pool,
                observed: &observed,
                deployment: Some(&deployment),
                prefetch: &prefetch,
                stored: Some(&state),
                control: None,
                generation: 1,
                analysis: None,
                sizing_counts: &sizing,
                now,
            })
        })
    });
}

criterion_group!(benches, bench_step);
criterion_main!(benches);
