use std::sync::Mutex;

use steward::nomad::Job;
use steward::reconcile::executor::MAX_CONFLICT_RETRIES;
use steward::reconcile::{Action, Error, ExecError, Executor, JobKey, ObservedJob, apply, plan};

use super::{FakeCluster, example_pool, override_of, time, with_nomad_defaults};

const NOW: &str = "2026-12-04T20:00:00Z";

/// An executor that returns a scripted result for each write and records the calls.
struct ScriptedExecutor {
    results: Mutex<Vec<Result<(), ExecError>>>,
    calls: Mutex<Vec<String>>,
    job: Option<ObservedJob>,
}

impl ScriptedExecutor {
    fn new(mut results: Vec<Result<(), ExecError>>, job: Option<ObservedJob>) -> Self {
        results.reverse();
        Self {
            results: Mutex::new(results),
            calls: Mutex::new(Vec::new()),
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

#[tokio::test]
async fn apply_treats_blocked_scale_as_deferred() {
    let pool = example_pool();
    let mut cluster = FakeCluster::new(&["dc-a", "dc-b"]);
    let created = plan(&pool, None, &cluster.observed, time(NOW));
    cluster.apply(&created);
    cluster.settle();
    let pinned = override_of(4, "2026-12-04T22:00:00Z", false);
    let scale = plan(&pool, Some(&pinned), &cluster.observed, time(NOW));
    let executor = ScriptedExecutor::new(vec![Err(ExecError::DeploymentActive)], None);

    let result = apply(&executor, scale, cluster.observed.clone(), |observed| {
        plan(&pool, Some(&pinned), observed, time(NOW))
    })
    .await;

    assert!(result.is_ok(), "blocked scale is not an error: {result:?}");
    assert_eq!(executor.calls(), vec!["scale default/face-match a=2"]);
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
