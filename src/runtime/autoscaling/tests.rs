//! Regression tests of the autoscaler wiring: override end, workers on the way, the
//! metrics condition and the requeue while a read runs.

use super::*;
use crate::autoscale::SizingState;
use crate::reconcile::{
    AllocHealth, ClientStatus, DesiredStatus, ObservedAllocation, ObservedJob, render_job,
};

const NOW: i64 = 1_800_000_000;

/// Two zones, 1 to 20 workers, 10 rps per worker, 20 % headroom, reactive predictor.
fn pool(fallback: Option<u32>) -> WorkerPool {
    let mut autoscaling = serde_json::json!({
        "metric": {"source": "csv", "path": "trace.csv"},
        "predictor": "reactive",
        "capacityPerWorker": 10.0,
        "fallbackAfter": 1
    });
    if let Some(fallback) = fallback {
        autoscaling["fallback"] = serde_json::json!(fallback);
    }
    serde_json::from_value(serde_json::json!({
        "apiVersion": "steward/v1",
        "kind": "WorkerPool",
        "metadata": {"name": "web"},
        "spec": {
            "template": {"Tasks": [{"Name": "app", "Driver": "docker"}]},
            "version": "registry.local/web:1",
            "workers": {"min": 1, "max": 20},
            "zones": [
                {"name": "a", "datacenter": "dc-a"},
                {"name": "b", "datacenter": "dc-b"}
            ],
            "autoscaling": autoscaling
        }
    }))
    .expect("test pool is valid")
}

fn flat(rps: f64) -> Vec<Sample> {
    (0..10)
        .map(|i| Sample::new(NOW - 540 + i * 60, rps))
        .collect()
}

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(seconds).expect("valid test time")
}

fn allocation(id: &str, health: AllocHealth) -> ObservedAllocation {
    ObservedAllocation {
        id: id.to_owned(),
        task_group: "a".to_owned(),
        node_id: "n1".to_owned(),
        job_version: 0,
        client_status: ClientStatus::Running,
        desired_status: DesiredStatus::Run,
        health,
        canary: false,
    }
}

/// Returns the totals of a job of `workers` workers, all healthy.
fn settled(workers: u32) -> WorkerTotals {
    WorkerTotals {
        job_exists: true,
        desired: workers,
        ready: workers,
        starting: 0,
    }
}

/// Returns a finished cycle read requested at `at`.
fn cycle_read(at: Timestamp, result: Result<MetricValues, String>) -> Reading {
    Reading {
        kind: ReadKind::Cycle,
        requested_at: at,
        result,
    }
}

/// Returns `pool` reading from a Prometheus on a closed loopback port, so a read that starts
/// fails at once and contacts nothing else.
fn with_closed_prometheus(mut pool: WorkerPool) -> WorkerPool {
    let spec = pool.spec.autoscaling.as_mut().expect("autoscaling");
    spec.metric = spec::MetricSource::Prometheus {
        address: "http://127.0.0.1:9".to_owned(),
        query: "rate".to_owned(),
    };
    pool
}

/// Returns a cluster where the pool's job runs one worker per zone.
fn one_per_zone(pool: &WorkerPool) -> Observed {
    let job = render_job(pool, &[1, 1]).expect("renders");
    Observed {
        job: Some(ObservedJob::new(job)),
        ..Observed::default()
    }
}

/// Runs the autoscaler's part of a reconcile at `now`, with no override.
fn evaluate_at(
    pool: &WorkerPool,
    observed: &Observed,
    stored: &AutoscalerStatus,
    reads: &Arc<MetricReads>,
    now: Timestamp,
) -> Outcome {
    evaluate_during(pool, observed, stored, reads, now, None)
}

/// Runs the autoscaler's part of a reconcile at `now` with `rollout_base` as a rollout's
/// count without surge.
fn evaluate_during(
    pool: &WorkerPool,
    observed: &Observed,
    stored: &AutoscalerStatus,
    reads: &Arc<MetricReads>,
    now: Timestamp,
    rollout_base: Option<u32>,
) -> Outcome {
    let requeue: Requeue = Arc::new(|_pool: String| {});
    evaluate(&Context {
        pool,
        override_: None,
        observed,
        stored: Some(stored),
        rollout_base,
        now,
        reads,
        requeue: &requeue,
    })
    .expect("autoscaled pool")
}

/// After an override ends, the next read decides again instead of holding the override's
/// count until the next interval.
#[test]
fn cleared_override_resumes_sizing() {
    let pool = with_closed_prometheus(pool(None));
    let spec = pool.spec.autoscaling.as_ref().expect("autoscaling");
    let autoscaler = Autoscaler::new(spec, pool.spec.workers).expect("valid");
    let counts = settled(2);
    let traffic = || MetricValues {
        history: flat(100.0),
        live: Some(100.0),
    };
    let reading = cycle_read(at(NOW), Ok(traffic()));
    let mut stored = AutoscalerStatus::default();
    let held_by_override = Some(ActiveOverride {
        workers: 2,
        force: false,
    });
    run_cycle(
        &autoscaler,
        &mut stored,
        &reading,
        &counts,
        held_by_override,
    );
    stored.last_cycle = Some(at(NOW));
    assert_eq!(
        stored.decision.as_ref().map(|d| d.source),
        Some(DecisionSource::Override)
    );

    // One minute later the override is gone, 19 minutes before the next cycle. A read that
    // finished after the override's cycle serves a new decision.
    let reads = Arc::new(MetricReads::default());
    reads.pools.lock().expect("lock").insert(
        "web".to_owned(),
        PoolReads {
            finished: Some(cycle_read(at(NOW + 30), Ok(traffic()))),
            ..PoolReads::default()
        },
    );
    let observed = one_per_zone(&pool);
    let outcome = evaluate_at(&pool, &observed, &stored, &reads, at(NOW + 60));

    // 100 rps × 1.2 headroom / 10 rps per worker = 12 workers.
    let recommendation = outcome.recommendation.expect("a recommendation");
    assert_eq!(recommendation.desired, 12, "{}", recommendation.reason);
    assert_eq!(recommendation.source, SizingSource::Autoscaler);
}

/// A running worker that Nomad has not marked healthy yet is still on its way: it must
/// count as starting, so the scale-down cooldown does not start before it is healthy.
#[test]
fn unhealthy_running_worker_is_starting() {
    let pool = pool(None);
    let spec = pool.spec.autoscaling.as_ref().expect("autoscaling");
    let autoscaler = Autoscaler::new(spec, pool.spec.workers).expect("valid");
    let job = render_job(&pool, &[2, 0]).expect("renders");
    let observed = Observed {
        job: Some(ObservedJob::new(job)),
        allocations: vec![
            allocation("1", AllocHealth::Healthy),
            allocation("2", AllocHealth::Unknown),
        ],
        ..Observed::default()
    };

    let totals = WorkerTotals::of(&pool, &observed);
    let state = SizingState {
        scale_up_pending: true,
        ..SizingState::default()
    };
    let history = flat(15.0);
    let input = totals.input(at(NOW), &history, Some(15.0), None, &state);
    let (_, state) = autoscaler.decide(&input);
    assert_eq!(totals.ready + totals.starting, totals.desired);
    assert!(
        state.scale_up_pending,
        "cooldown started before worker 2 is healthy"
    );
    assert_eq!(state.healthy_at, None);
}

/// The MetricsAvailable condition must not claim the fallback applies when the decision
/// held a higher count instead.
#[test]
fn failed_read_condition_names_held_count() {
    let pool = pool(Some(4));
    let spec = pool.spec.autoscaling.as_ref().expect("autoscaling");
    let autoscaler = Autoscaler::new(spec, pool.spec.workers).expect("valid");
    let counts = settled(10);
    let reading = cycle_read(at(NOW), Err("connection refused (retryable)".to_owned()));
    let mut status = AutoscalerStatus::default();
    run_cycle(&autoscaler, &mut status, &reading, &counts, None);

    let decision = status.decision.as_ref().expect("decided");
    let condition = metrics_condition(&status, spec);
    assert_eq!(decision.desired, 10);
    assert!(
        !condition.message.contains("fallback count 4 applies"),
        "{}",
        condition.message
    );
    assert!(
        condition
            .message
            .contains("; 1 failed cycle in a row, worker count held"),
        "{}",
        condition.message
    );
}

/// While a due cycle's metric read is in flight, the read's end requeues the pool, so the
/// reconcile must not ask to run again at once (that spins until the read ends).
#[tokio::test]
async fn pending_read_requeues_not_at_once() {
    let pool = with_closed_prometheus(pool(None));
    let now = at(NOW);
    let stored = AutoscalerStatus {
        last_cycle: Some(at(NOW - 1260)),
        ..AutoscalerStatus::default()
    };
    let observed = one_per_zone(&pool);
    let reads = Arc::new(MetricReads::default());
    let outcome = evaluate_at(&pool, &observed, &stored, &reads, now);
    let plan = crate::reconcile::plan_with(&crate::reconcile::PlanInput {
        pool: &pool,
        override_: None,
        autoscaler: outcome.recommendation.as_ref(),
        observed: &observed,
        previous: None,
        now,
    });
    assert_ne!(plan.requeue_after, Some(Duration::ZERO));
}

/// A count held during a rollout is the rollout's count without its surge worker, so the
/// surge does not outlive the rollout.
#[test]
fn held_count_leaves_out_rollout_surge() {
    let mut pool = with_closed_prometheus(pool(None));
    pool.spec.autoscaling.as_mut().expect("autoscaling").mode = spec::AutoscalingMode::ForecastOnly;
    // Zone a carries the rollout's surge worker: 2 + 1 live, 2 without it.
    let job = render_job(&pool, &[2, 1]).expect("renders");
    let observed = Observed {
        job: Some(ObservedJob::new(job)),
        ..Observed::default()
    };
    let reads = Arc::new(MetricReads::default());
    reads.pools.lock().expect("lock").insert(
        "web".to_owned(),
        PoolReads {
            finished: Some(cycle_read(
                at(NOW),
                Ok(MetricValues {
                    history: flat(10.0),
                    live: Some(10.0),
                }),
            )),
            ..PoolReads::default()
        },
    );
    let stored = AutoscalerStatus::default();

    let outcome = evaluate_during(&pool, &observed, &stored, &reads, at(NOW), Some(2));
    let recommendation = outcome.recommendation.expect("a recommendation");
    assert_eq!(recommendation.source, SizingSource::Hold);
    assert_eq!(recommendation.desired, 2, "{}", recommendation.reason);
}

#[tokio::test]
async fn refused_connection_names_its_cause() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let url = format!(
        "http://{}/api/v1/query",
        listener.local_addr().expect("address")
    );
    drop(listener);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let source = client.get(&url).send().await.expect_err("nothing listens");
    let error = crate::autoscale::MetricError::Transport { url, source };

    let text = super::describe(&error);
    assert!(text.contains("Connection refused"), "{text}");
    assert!(text.ends_with("(the next cycle reads again)"), "{text}");
}

#[test]
fn one_failed_cycle_is_singular() {
    assert_eq!(super::failed_cycles(1), "1 failed cycle");
    assert_eq!(super::failed_cycles(3), "3 failed cycles");
}
