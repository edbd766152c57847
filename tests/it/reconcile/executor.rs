use std::sync::Mutex;

use steward::nomad::Job;
use steward::reconcile::executor::MAX_CONFLICT_RETRIES;
use steward::reconcile::{
    Action, Error, ExecError, Executor, JobKey, ObservedJob, Phase, Plan, ReconcileInput, apply,
    plan, reconcile_pool,
};
use steward::spec::{Override, WorkerPool};

use super::{FakeCluster, example_pool, override_of, time, with_nomad_defaults};

const NOW: &str = "2026-12-04T20:00:00Z";

/// An executor that returns a scripted result for each write and records the calls.
struct ScriptedExecutor {
    results: Mutex<Vec<Result<(), ExecError>>>,
    calls: Mutex<Vec<String>>,
    /// Every job sent to `register_job`, in order.
    registered: Mutex<Vec<Job>>,
    job: Option<ObservedJob>,
}

impl ScriptedExecutor {
    fn new(mut results: Vec<Result<(), ExecError>>, job: Option<ObservedJob>) -> Self {
        results.reverse();
        Self {
            results: Mutex::new(results),
            calls: Mutex::new(Vec::new()),
            registered: Mutex::new(Vec::new()),
            job,
        }
    }

    fn next(&self, call: String) -> Result<(), ExecError> {
        self.calls.lock().expect("lock").push(call);
        self.results.lock().expect("lock").pop().unwrap_or(Ok(()))
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().expect("lock").clone()
    }
}

impl Executor for ScriptedExecutor {
    async fn get_job(&self, job: &JobKey) -> Result<Option<ObservedJob>, ExecError> {
        self.calls.lock().expect("lock").push(format!("get {job}"));
        Ok(self.job.clone())
    }

    async fn register_job(
        &self,
        job: &Job,
        enforce_index: u64,
        preserve_counts: bool,
    ) -> Result<(), ExecError> {
        self.registered.lock().expect("lock").push(job.clone());
        self.next(format!(
            "register {} index={enforce_index} preserve={preserve_counts}",
            job.id
        ))
    }

    async fn scale(
        &self,
        job: &JobKey,
        group: &str,
        count: u32,
        _message: &str,
    ) -> Result<(), ExecError> {
        self.next(format!("scale {job} {group}={count}"))
    }

    async fn record_scaling_event(
        &self,
        job: &JobKey,
        group: &str,
        message: &str,
    ) -> Result<(), ExecError> {
        self.next(format!("event {job} {group}: {message}"))
    }

    async fn stop_job(&self, job: &JobKey) -> Result<(), ExecError> {
        self.next(format!("stop {job}"))
    }
}

fn conflict() -> ExecError {
    ExecError::Conflict {
        expected: 0,
        message: "Enforcing job modify index 0: job exists with conflicting job modify index: 117"
            .to_owned(),
    }
}

#[tokio::test]
async fn apply_replans_after_conflict() {
    let pool = example_pool();
    let cluster = FakeCluster::new(&["dc-a", "dc-b"]);
    let first = plan(&pool, None, &cluster.observed, time(NOW));
    assert!(matches!(first.actions[0], Action::CreateJob(_)));

    // Someone else created the job meanwhile, with other counts.
    let rendered = steward::reconcile::render_job(&pool, &[2, 2]).expect("renders");
    let concurrent = ObservedJob::new(with_nomad_defaults(&rendered, 117));
    let executor = ScriptedExecutor::new(vec![Err(conflict())], Some(concurrent));

    let done = apply(&executor, first, cluster.observed.clone(), |observed| {
        plan(&pool, None, observed, time(NOW))
    })
    .await
    .expect("apply succeeds after re-planning");

    assert_eq!(
        executor.calls(),
        vec![
            "register face-match index=0 preserve=false",
            "get default/face-match",
            "scale default/face-match a=1",
            "scale default/face-match b=1",
        ]
    );
    assert_eq!(done.actions.len(), 2);
}

#[tokio::test]
async fn apply_gives_up_after_repeated_conflicts() {
    let pool = example_pool();
    let cluster = FakeCluster::new(&["dc-a", "dc-b"]);
    let first = plan(&pool, None, &cluster.observed, time(NOW));
    let executor = ScriptedExecutor::new(vec![Err(conflict()); 10], None);

    let error = apply(&executor, first, cluster.observed.clone(), |observed| {
        plan(&pool, None, observed, time(NOW))
    })
    .await
    .expect_err("conflicts never stop");

    assert!(
        matches!(error, Error::ConflictRetriesExhausted { attempts, .. } if attempts == MAX_CONFLICT_RETRIES + 1)
    );
    assert!(error.is_retryable());
    assert_eq!(error.kind(), "conflict");
}

/// Returns a settled job of the example pool (1 + 1 workers), an override to 4, and the plan
/// that scales both zones to 2.
fn override_to_four() -> (WorkerPool, FakeCluster, Override, Plan) {
    let pool = example_pool();
    let mut cluster = FakeCluster::new(&["dc-a", "dc-b"]);
    let created = plan(&pool, None, &cluster.observed, time(NOW));
    cluster.apply(&created);
    cluster.settle();
    let pinned = override_of(4, "2026-12-04T22:00:00Z", false);
    let scale = plan(&pool, Some(&pinned), &cluster.observed, time(NOW));
    (pool, cluster, pinned, scale)
}

#[tokio::test]
async fn scale_blocked_by_own_deployment_registers() {
    let (pool, cluster, pinned, scale) = override_to_four();
    // Nomad after the first scale: zone a at 2, zone b still at 1, and a deployment open.
    let rendered = steward::reconcile::render_job(&pool, &[2, 1]).expect("renders");
    let live = ObservedJob::new(with_nomad_defaults(&rendered, 130));
    let executor =
        ScriptedExecutor::new(vec![Ok(()), Err(ExecError::DeploymentActive)], Some(live));

    let result = apply(&executor, scale, cluster.observed.clone(), |observed| {
        plan(&pool, Some(&pinned), observed, time(NOW))
    })
    .await;

    assert!(result.is_ok(), "{result:?}");
    assert_eq!(
        executor.calls(),
        vec![
            "scale default/face-match a=2",
            "scale default/face-match b=2",
            "get default/face-match",
            "register face-match index=130 preserve=false",
            "event default/face-match b: steward: zone b 1 -> 2: override of 4 active until \
             2026-12-04T22:00:00Z (reason: incident 42) (Override) (count set by a job register: \
             the scale call was blocked by an active deployment)",
        ]
    );
    let registered = executor.registered.lock().expect("lock").clone();
    let counts: Vec<(String, Option<i64>)> = registered[0]
        .groups()
        .iter()
        .map(|group| (group.name.clone(), group.count))
        .collect();
    assert_eq!(
        counts,
        [("a".to_owned(), Some(2)), ("b".to_owned(), Some(2))],
        "the register carries the first scale and the blocked one"
    );
}

#[tokio::test]
async fn first_scale_blocked_by_deployment_registers() {
    let (pool, cluster, pinned, scale) = override_to_four();
    let rendered = steward::reconcile::render_job(&pool, &[1, 1]).expect("renders");
    let live = ObservedJob::new(with_nomad_defaults(&rendered, 140));
    let executor = ScriptedExecutor::new(vec![Err(ExecError::DeploymentActive)], Some(live));

    let result = apply(&executor, scale, cluster.observed.clone(), |observed| {
        plan(&pool, Some(&pinned), observed, time(NOW))
    })
    .await;

    assert!(result.is_ok(), "{result:?}");
    let calls = executor.calls();
    assert_eq!(
        calls[..3],
        [
            "scale default/face-match a=2",
            "get default/face-match",
            "register face-match index=140 preserve=false",
        ]
    );
    assert_eq!(calls.len(), 5, "one event per zone: {calls:?}");
    let registered = executor.registered.lock().expect("lock").clone();
    let counts: Vec<Option<i64>> = registered[0].groups().iter().map(|g| g.count).collect();
    assert_eq!(counts, [Some(2), Some(2)]);
}

#[tokio::test]
async fn apply_reports_rejection_as_permanent() {
    let pool = example_pool();
    let cluster = FakeCluster::new(&["dc-a", "dc-b"]);
    let first = plan(&pool, None, &cluster.observed, time(NOW));
    let executor = ScriptedExecutor::new(
        vec![Err(ExecError::Rejected("invalid job".to_owned()))],
        None,
    );

    let error = apply(&executor, first, cluster.observed.clone(), |observed| {
        plan(&pool, None, observed, time(NOW))
    })
    .await
    .expect_err("rejected");

    assert!(!error.is_retryable());
    assert_eq!(error.kind(), "rejected");
    assert!(
        error.to_string().contains("default/face-match"),
        "error names the job: {error}"
    );
}

fn input<'a>(
    pool: &'a steward::spec::WorkerPool,
    observed: &'a steward::reconcile::Observed,
    previous: Option<&'a steward::reconcile::Status>,
) -> ReconcileInput<'a> {
    ReconcileInput {
        pool,
        override_: None,
        autoscaler: None,
        observed,
        previous,
        observed_generation: 12,
        written_by: "steward-0",
        now: time(NOW),
    }
}

#[tokio::test]
async fn reconcile_pool_reports_failed_write() {
    let pool = example_pool();
    let cluster = FakeCluster::new(&["dc-a", "dc-b"]);
    let executor = ScriptedExecutor::new(
        vec![Err(ExecError::Unavailable("connection refused".to_owned()))],
        None,
    );

    let outcome = reconcile_pool(&executor, input(&pool, &cluster.observed, None)).await;

    let error = outcome.error.expect("the write failed");
    assert!(error.is_retryable());
    assert_eq!(outcome.status.phase, Phase::Error);
    let last_error = outcome.status.last_error.as_deref().expect("lastError set");
    assert!(last_error.contains("connection refused"), "{last_error}");
    assert!(last_error.contains("default/face-match"), "{last_error}");
    assert_eq!(outcome.status.observed_generation, 12);
    assert!(outcome.status_changed);
}

#[tokio::test]
async fn reconcile_pool_skips_unchanged_status() {
    let pool = example_pool();
    let mut cluster = FakeCluster::new(&["dc-a", "dc-b"]);
    let executor = ScriptedExecutor::new(Vec::new(), None);

    let created = reconcile_pool(&executor, input(&pool, &cluster.observed, None)).await;
    assert!(created.error.is_none());
    assert!(created.status_changed, "first status is always written");
    cluster.apply(&created.plan);
    cluster.settle();

    let converged = reconcile_pool(
        &executor,
        input(&pool, &cluster.observed, Some(&created.status)),
    )
    .await;
    assert!(
        converged.status_changed,
        "phase moved from Scaling to Ready"
    );
    assert_eq!(converged.status.phase, Phase::Ready);
    assert_eq!(converged.status.last_error, None);

    let again = reconcile_pool(
        &executor,
        input(&pool, &cluster.observed, Some(&converged.status)),
    )
    .await;
    assert!(
        !again.status_changed,
        "nothing changed since the last write"
    );
    assert_eq!(again.plan.actions, Vec::new());
    assert_eq!(
        executor.calls(),
        vec!["register face-match index=0 preserve=false"]
    );
}
