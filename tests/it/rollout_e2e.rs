//! Golden-first rollouts end to end: the rollout step driven in a loop against the Nomad
//! emulator over loopback HTTP, with invariants checked on every observation.
//!
//! The emulator runs at 1000× simulated speed, and the rollout reads the emulator's simulated
//! clock, so a 2-minute soak takes 0.12 wall seconds. Each loop has an iteration cap that only
//! turns a hang into a failure.

use std::net::SocketAddr;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::json;
use steward::nomad::{self, Client, Config, JobRegisterRequest, QueryOptions, ScalingRequest};
use steward::reconcile::{
    AllocHealth, ClientStatus, DesiredStatus, ExecError, Executor, GroupVersion, JobKey,
    NodeStatus, Observed, ObservedAllocation, ObservedJob, ObservedNode, render_job_versions,
};
use steward::rollout::{
    self, DeploymentView, PrefetchAllocation, PrefetchObserved, RolloutExecutor, RolloutPhase,
    RolloutState, StepInput, prefetch_key,
};
use steward::sim::nomad::{NomadEmulator, NomadEmulatorConfig, RunningNomad};
use steward::spec::WorkerPool;

const OLD: &str = "registry.local/face:1";
const NEW: &str = "registry.local/face:2";

/// Loop iterations before a rollout counts as hung; each sleeps `POLL`.
const MAX_ITERATIONS: usize = 1500;
const POLL: Duration = Duration::from_millis(20);

async fn start_emulator() -> (RunningNomad, Client) {
    let config = NomadEmulatorConfig {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        datacenters: vec!["dc-a".to_owned(), "dc-b".to_owned()],
        nodes_per_dc: 3,
        speed: 1000.0,
        ..NomadEmulatorConfig::default()
    };
    let emulator = NomadEmulator::start(config).await.expect("emulator starts");
    let client =
        Client::new(Config::new(&emulator.url()).expect("valid address")).expect("client builds");
    (emulator, client)
}

fn pool(version: &str) -> WorkerPool {
    serde_json::from_value(json!({
        "apiVersion": "steward/v1",
        "kind": "WorkerPool",
        "metadata": {"name": "face"},
        "spec": {
            "template": {"Name": "worker", "Tasks": [{
                "Name": "app", "Driver": "docker",
                "Resources": {"CPU": 200, "MemoryMB": 128}
            }]},
            "version": version,
            "workers": {"min": 6, "max": 6},
            "zones": [
                {"name": "a", "datacenter": "dc-a"},
                {"name": "b", "datacenter": "dc-b"}
            ],
            "rollout": {
                "goldenSoak": "2m",
                "healthyDeadline": "5m",
                "minHealthyTime": "10s",
                "surge": 1,
                "prefetch": {"timeout": "10m"}
            }
        }
    }))
    .expect("test pool is valid")
}

/// The rollout's writes through the Nomad client.
struct NomadWrites {
    client: Client,
}

fn exec_error(error: nomad::Error) -> ExecError {
    match error {
        nomad::Error::Conflict { body, .. } => ExecError::Conflict {
            expected: 0,
            message: body,
        },
        nomad::Error::DeploymentActive { .. } => ExecError::DeploymentActive,
        nomad::Error::NotFound { .. } => ExecError::NotFound,
        error => ExecError::Rejected(error.to_string()),
    }
}

impl Executor for NomadWrites {
    async fn get_job(&self, job: &JobKey) -> Result<Option<ObservedJob>, ExecError> {
        match self
            .client
            .read_job(&job.id, QueryOptions::immediate())
            .await
        {
            Ok(response) => Ok(Some(ObservedJob::new(response.value))),
            Err(error) if error.is_not_found() => Ok(None),
            Err(error) => Err(exec_error(error)),
        }
    }

    async fn register_job(
        &self,
        job: &nomad::Job,
        enforce_index: u64,
        preserve_counts: bool,
    ) -> Result<(), ExecError> {
        let request = JobRegisterRequest {
            job: job.clone(),
            enforce_index: true,
            job_modify_index: enforce_index,
            preserve_counts,
            ..JobRegisterRequest::default()
        };
        self.client
            .register_job(&request)
            .await
            .map(|_| ())
            .map_err(exec_error)
    }

    async fn scale(
        &self,
        job: &JobKey,
        group: &str,
        count: u32,
        message: &str,
    ) -> Result<(), ExecError> {
        let request = ScalingRequest::for_group(group, Some(count), message);
        self.client
            .scale_job(&job.id, &request)
            .await
            .map(|_| ())
            .map_err(exec_error)
    }

    async fn record_scaling_event(
        &self,
        job: &JobKey,
        group: &str,
        message: &str,
    ) -> Result<(), ExecError> {
        let request = ScalingRequest::for_group(group, None, message);
        self.client
            .scale_job(&job.id, &request)
            .await
            .map(|_| ())
            .map_err(exec_error)
    }

    async fn stop_job(&self, job: &JobKey) -> Result<(), ExecError> {
        self.client
            .deregister_job(&job.id, false)
            .await
            .map(|_| ())
            .map_err(exec_error)
    }
}

impl RolloutExecutor for NomadWrites {
    async fn promote_deployment(&self, id: &str) -> Result<(), ExecError> {
        self.client
            .promote_deployment(id, None)
            .await
            .map(|_| ())
            .map_err(exec_error)
    }

    async fn fail_deployment(&self, id: &str) -> Result<(), ExecError> {
        self.client
            .fail_deployment(id)
            .await
            .map(|_| ())
            .map_err(exec_error)
    }

    async fn pause_deployment(&self, id: &str, pause: bool) -> Result<(), ExecError> {
        self.client
            .pause_deployment(id, pause)
            .await
            .map(|_| ())
            .map_err(exec_error)
    }
}

/// Everything one step reads, fetched from the emulator.
struct Snapshot {
    observed: Observed,
    deployment: Option<DeploymentView>,
    prefetch: PrefetchObserved,
}

async fn read_job(client: &Client, id: &str) -> Option<ObservedJob> {
    match client.read_job(id, QueryOptions::immediate()).await {
        Ok(response) => Some(ObservedJob::new(response.value)),
        Err(error) if error.is_not_found() => None,
        Err(error) => panic!("reading job {id} failed: {error}"),
    }
}

async fn snapshot(client: &Client, pool: &WorkerPool) -> Snapshot {
    let job_id = JobKey::of(pool).id;
    let prefetch_id = prefetch_key(pool).id;

    let job = read_job(client, &job_id).await;
    let stubs = client
        .job_allocations(&job_id, false, QueryOptions::immediate())
        .await
        .expect("allocations read")
        .value;
    let allocations = stubs
        .iter()
        .map(|stub| ObservedAllocation {
            id: stub.id.clone(),
            task_group: stub.task_group.clone(),
            node_id: stub.node_id.clone(),
            job_version: stub.job_version,
            client_status: ClientStatus::from_nomad(stub.client_status.as_str()),
            desired_status: DesiredStatus::from_nomad(stub.desired_status.as_str()),
            health: AllocHealth::from_nomad(stub.health().to_option()),
            canary: stub.is_canary(),
        })
        .collect();
    let nodes = client
        .list_nodes(None, QueryOptions::immediate())
        .await
        .expect("nodes read")
        .value
        .iter()
        .map(|node| ObservedNode {
            id: node.id.clone(),
            datacenter: node.datacenter.clone(),
            meta: Default::default(),
            attributes: Default::default(),
            status: NodeStatus::from_nomad(node.status.as_str()),
            eligible: node.scheduling_eligibility.as_str() == "eligible",
            draining: node.drain,
        })
        .collect();
    let deployment = client
        .latest_deployment(&job_id, QueryOptions::immediate())
        .await
        .expect("deployment read")
        .value
        .as_ref()
        .map(DeploymentView::from_nomad);

    let prefetch_job = read_job(client, &prefetch_id).await;
    let prefetch_allocations = match &prefetch_job {
        Some(_) => client
            .job_allocations(&prefetch_id, false, QueryOptions::immediate())
            .await
            .expect("prefetch allocations read")
            .value
            .iter()
            .map(PrefetchAllocation::from_stub)
            .collect(),
        None => Vec::new(),
    };

    Snapshot {
        observed: Observed {
            job,
            allocations,
            nodes,
            deployment: None,
        },
        deployment,
        prefetch: PrefetchObserved {
            job: prefetch_job,
            allocations: prefetch_allocations,
        },
    }
}

fn healthy(observed: &Observed, group: &str) -> u32 {
    observed
        .allocations
        .iter()
        .filter(|a| a.task_group == group && a.is_healthy())
        .count() as u32
}

/// Sets how the emulator treats `image` through `PUT /_sim/images`.
async fn set_image(emulator: &RunningNomad, behaviour: serde_json::Value) {
    let response = reqwest::Client::new()
        .put(format!("{}/_sim/images", emulator.url()))
        .json(&behaviour)
        .send()
        .await
        .expect("image fault request sent");
    assert!(
        response.status().is_success(),
        "image fault rejected: {}",
        response.status()
    );
}

async fn fail_node(emulator: &RunningNomad, node: &str) {
    let response = reqwest::Client::new()
        .post(format!("{}/_sim/nodes/{node}/fail", emulator.url()))
        .send()
        .await
        .expect("node fault request sent");
    assert!(
        response.status().is_success(),
        "node fault rejected: {}",
        response.status()
    );
}

/// Returns each zone's registered version and count.
async fn zones(client: &Client, pool: &WorkerPool) -> Vec<(String, String, i64)> {
    let job = read_job(client, &JobKey::of(pool).id)
        .await
        .expect("job exists");
    job.job
        .groups()
        .iter()
        .map(|group| {
            (
                group.name.clone(),
                rollout::group_version(group).unwrap_or("").to_owned(),
                group.count.unwrap_or(0),
            )
        })
        .collect()
}

/// Registers the pool's job at `OLD` with 3 + 3 workers and waits until all are healthy.
async fn deploy_old(client: &Client) {
    let pool = pool(OLD);
    let groups = [
        GroupVersion {
            count: 3,
            version: OLD,
            canary: 0,
        },
        GroupVersion {
            count: 3,
            version: OLD,
            canary: 0,
        },
    ];
    let job = render_job_versions(&pool, &groups).expect("pool renders");
    let writes = NomadWrites {
        client: client.clone(),
    };
    writes
        .register_job(&job, 0, false)
        .await
        .expect("job registered");

    for _ in 0..MAX_ITERATIONS {
        let snapshot = snapshot(client, &pool).await;
        if healthy(&snapshot.observed, "a") == 3 && healthy(&snapshot.observed, "b") == 3 {
            return;
        }
        tokio::time::sleep(POLL).await;
    }
    panic!("the initial 3 + 3 workers never became healthy");
}

/// Counts running or starting workers of the live job version in groups registered with `NEW`.
fn new_version_workers(observed: &Observed) -> usize {
    let Some(job) = observed.job.as_ref() else {
        return 0;
    };
    let version = job.job.version.unwrap_or(0);
    let new_groups: Vec<&str> = job
        .job
        .groups()
        .iter()
        .filter(|group| rollout::group_version(group) == Some(NEW))
        .map(|group| group.name.as_str())
        .collect();
    observed
        .allocations
        .iter()
        .filter(|a| (a.is_running() || a.is_starting()) && a.job_version == version)
        .filter(|a| new_groups.contains(&a.task_group.as_str()))
        .count()
}

/// Counts workers that are meant to run but are not healthy yet: placed, starting, or running
/// before `minHealthyTime` passed. With `MaxParallel = 1` and the surge placed ahead of the
/// replacements, Nomad changes at most one worker at a time.
fn changing_workers(observed: &Observed) -> usize {
    observed
        .allocations
        .iter()
        .filter(|a| a.wants_to_run() && !a.is_healthy())
        .count()
}

/// What the loop saw over a whole rollout.
#[derive(Default)]
struct Record {
    /// Each observation's healthy workers per zone, with the phase it was taken in.
    samples: Vec<(RolloutPhase, u32, u32)>,
    /// Each observation's running or starting workers of the new version, with the phase.
    new_workers: Vec<(RolloutPhase, usize)>,
    /// Each observation's workers that are not healthy yet, with the phase.
    changing: Vec<(RolloutPhase, usize)>,
    actions: Vec<String>,
    /// Whether a step reported sizing counts held back until the rollout ends.
    pending_reported: bool,
    /// The node failed under the golden worker, if any.
    failed_node: Option<String>,
}

/// Returns the emulator's simulated time, which the rollout's deadlines and soak run on.
fn simulated_now(emulator: &RunningNomad) -> Timestamp {
    let nanos = emulator.shared().clock.now_ns();
    Timestamp::from_nanosecond(i128::from(nanos)).expect("emulator clock is a valid time")
}

/// Drives the rollout of `pool` until it is `Complete` or `Failed`.
async fn drive(
    emulator: &RunningNomad,
    client: &Client,
    pool: &WorkerPool,
) -> (RolloutState, Record) {
    drive_with_fault(emulator, client, pool, None).await
}

/// What sizing requests per zone: 3 + 3, or 5 + 5 once an override arrived.
fn sizing_counts(override_arrived: bool) -> [u32; 2] {
    if override_arrived { [5, 5] } else { [3, 3] }
}

/// Drives the rollout like [`drive`]; once an action described as `fault.0` was applied,
/// sends `fault.1` to `/_sim/images`.
async fn drive_with_fault(
    emulator: &RunningNomad,
    client: &Client,
    pool: &WorkerPool,
    mut fault: Option<(&str, serde_json::Value)>,
) -> (RolloutState, Record) {
    drive_full(emulator, client, pool, fault.take(), None, None, false).await
}

/// Drives the rollout like [`drive_with_fault`], from the state `stored` a previous rollout
/// left. Once an action described as `override_after` was applied, sizing requests 5 + 5
/// workers, as an override would. With `fail_golden_node`, the golden worker's node fails
/// once the soak begins.
async fn drive_full(
    emulator: &RunningNomad,
    client: &Client,
    pool: &WorkerPool,
    mut fault: Option<(&str, serde_json::Value)>,
    override_after: Option<&str>,
    mut stored: Option<RolloutState>,
    mut fail_golden_node: bool,
) -> (RolloutState, Record) {
    let writes = NomadWrites {
        client: client.clone(),
    };
    let job = JobKey::of(pool);
    let prefetch = prefetch_key(pool);
    let mut record = Record::default();

    for _ in 0..MAX_ITERATIONS {
        let snapshot = snapshot(client, pool).await;
        let result = rollout::step(&StepInput {
            pool,
            observed: &snapshot.observed,
            deployment: snapshot.deployment.as_ref(),
            prefetch: &snapshot.prefetch,
            stored: stored.as_ref(),
            control: None,
            generation: 1,
            analysis: None,
            sizing_counts: &sizing_counts(
                override_after.is_some_and(|after| record.actions.iter().any(|a| a == after)),
            ),
            now: simulated_now(emulator),
        });
        let state = result.state.clone().expect("a rollout is under way");
        record.samples.push((
            state.phase,
            healthy(&snapshot.observed, "a"),
            healthy(&snapshot.observed, "b"),
        ));
        record
            .new_workers
            .push((state.phase, new_version_workers(&snapshot.observed)));
        record
            .changing
            .push((state.phase, changing_workers(&snapshot.observed)));
        for action in &result.actions {
            record.actions.push(describe(action));
        }
        if result.pending_counts.is_some() {
            record.pending_reported = true;
        }

        rollout::apply(&writes, &job, &prefetch, &result.actions)
            .await
            .expect("rollout actions applied");
        let triggered = fault
            .as_ref()
            .is_some_and(|(after, _)| record.actions.iter().any(|a| a == after));
        if triggered && let Some((_, behaviour)) = fault.take() {
            set_image(emulator, behaviour).await;
        }
        if fail_golden_node
            && state.phase == RolloutPhase::Soaking
            && let Some(golden) = &state.golden
        {
            fail_node(emulator, &golden.node_id).await;
            record.failed_node = Some(golden.node_id.clone());
            fail_golden_node = false;
        }
        if !state.phase.is_active() {
            return (state, record);
        }
        stored = Some(state);
        tokio::time::sleep(POLL).await;
    }
    let last = stored.expect("a rollout state after the first step");
    panic!(
        "rollout did not end; last phase {} waiting for {:?}, actions {:?}",
        last.phase, last.waiting, record.actions
    );
}

fn describe(action: &rollout::RolloutAction) -> String {
    match action {
        rollout::RolloutAction::RegisterPrefetch { .. } => "register prefetch".to_owned(),
        rollout::RolloutAction::StopPrefetch => "stop prefetch".to_owned(),
        rollout::RolloutAction::RegisterJob { job, .. } => {
            let groups: Vec<String> = job
                .groups()
                .iter()
                .map(|g| {
                    let canary = g.update.as_ref().and_then(|u| u.canary).unwrap_or(0);
                    format!(
                        "{}={}x{}{}",
                        g.name,
                        rollout::group_version(g).unwrap_or("?"),
                        g.count.unwrap_or(0),
                        if canary > 0 { "+canary" } else { "" }
                    )
                })
                .collect();
            format!("register {}", groups.join(","))
        }
        rollout::RolloutAction::Scale { group, count, .. } => format!("scale {group} {count}"),
        rollout::RolloutAction::PromoteDeployment { .. } => "promote".to_owned(),
        rollout::RolloutAction::FailDeployment { .. } => "fail deployment".to_owned(),
        rollout::RolloutAction::PauseDeployment { pause, .. } => format!("pause {pause}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_replaces_workers_without_capacity_loss() {
    let (emulator, client) = start_emulator().await;
    deploy_old(&client).await;

    let pool = pool(NEW);
    let (state, record) = drive(&emulator, &client, &pool).await;

    assert_eq!(
        state.phase,
        RolloutPhase::Complete,
        "failure: {:?}; actions: {:?}",
        state.failure,
        record.actions
    );
    let expected = [
        "register prefetch",
        "stop prefetch",
        &format!("register a={NEW}x4+canary,b={OLD}x3"),
        "promote",
        "scale a 3",
        "scale b 4",
        &format!("register a={NEW}x3+canary,b={NEW}x4"),
        "scale b 3",
    ];
    assert_eq!(record.actions, expected);
    for (phase, a, b) in &record.samples {
        assert!(a + b >= 6, "healthy {a} + {b} below 6 in {phase}");
        assert!(*a >= 3, "zone a has {a} healthy workers in {phase}");
        assert!(*b >= 3, "zone b has {b} healthy workers in {phase}");
        assert!(
            a.abs_diff(*b) <= 1,
            "zones {a} and {b} differ by more than one in {phase}"
        );
    }
    for (phase, count) in &record.new_workers {
        match phase {
            RolloutPhase::Prefetching => {
                assert_eq!(*count, 0, "new-version workers while prefetching");
            }
            RolloutPhase::Golden | RolloutPhase::Soaking => {
                assert!(*count <= 1, "{count} new-version workers in {phase}");
            }
            _ => {}
        }
    }
    for (phase, count) in &record.changing {
        assert!(*count <= 1, "{count} workers changing at once in {phase}");
    }
    assert!(
        record
            .changing
            .iter()
            .any(|(phase, count)| *phase == RolloutPhase::Rolling && *count == 1),
        "no replacement was ever seen in progress"
    );
    assert!(
        record
            .new_workers
            .iter()
            .any(|(phase, count)| *phase == RolloutPhase::Soaking && *count == 1),
        "the golden worker was never seen soaking"
    );

    let last = snapshot(&client, &pool).await;
    let job = last.observed.job.expect("job exists");
    for group in job.job.groups() {
        assert_eq!(rollout::group_version(group), Some(NEW), "{}", group.name);
        assert_eq!(group.count, Some(3), "{}", group.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unhealthy_golden_rolls_back_alone() {
    let (emulator, client) = start_emulator().await;
    deploy_old(&client).await;
    set_image(&emulator, json!({"image": NEW, "healthy": false})).await;

    let pool = pool(NEW);
    let (state, record) = drive(&emulator, &client, &pool).await;

    assert_eq!(state.phase, RolloutPhase::Failed, "{:?}", record.actions);
    let failure = state.failure.clone().expect("failure reason");
    assert!(failure.contains("golden worker"), "{failure}");
    assert!(
        failure.contains(&format!("rolled back to {OLD}")),
        "{failure}"
    );
    assert!(
        !record
            .actions
            .iter()
            .any(|a| a.contains(&format!("b={NEW}"))),
        "zone b was touched: {:?}",
        record.actions
    );
    for (phase, a, b) in &record.samples {
        assert!(a + b >= 6, "healthy {a} + {b} below 6 in {phase}");
    }
    let expected = vec![
        ("a".to_owned(), OLD.to_owned(), 3),
        ("b".to_owned(), OLD.to_owned(), 3),
    ];
    assert_eq!(zones(&client, &pool).await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reverted_version_restores_after_failure_without_rollback() {
    let (emulator, client) = start_emulator().await;
    deploy_old(&client).await;
    set_image(&emulator, json!({"image": NEW, "healthy": false})).await;
    let mut failing = pool(NEW);
    failing.spec.rollout.auto_rollback = false;

    let (failed, _) = drive(&emulator, &client, &failing).await;
    assert_eq!(failed.phase, RolloutPhase::Failed);
    let left = zones(&client, &failing).await;
    assert_eq!(
        left[0].1, NEW,
        "zone a keeps the failed version registered: {left:?}"
    );

    // The operator puts spec.version back.
    let mut reverted = failing.clone();
    reverted.spec.version = OLD.to_owned();
    let (state, record) = drive_full(
        &emulator,
        &client,
        &reverted,
        None,
        None,
        Some(failed),
        false,
    )
    .await;

    assert_eq!(state.phase, RolloutPhase::Complete, "{:?}", record.actions);
    for (phase, a, b) in &record.samples {
        assert!(a + b >= 6, "healthy {a} + {b} below 6 in {phase}");
    }
    // The failed golden worker may still run when the restore starts; no other worker of
    // the failed version starts.
    let counts: Vec<usize> = record.new_workers.iter().map(|(_, count)| *count).collect();
    assert!(counts[0] <= 1, "{counts:?}");
    assert!(
        counts.windows(2).all(|pair| pair[1] <= pair[0]),
        "a worker of {NEW} started during the restore: {counts:?}"
    );
    assert_eq!(counts.last(), Some(&0), "{counts:?}");
    let expected = vec![
        ("a".to_owned(), OLD.to_owned(), 3),
        ("b".to_owned(), OLD.to_owned(), 3),
    ];
    assert_eq!(zones(&client, &reverted).await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_node_failure_gets_a_new_golden_worker() {
    let (emulator, client) = start_emulator().await;
    deploy_old(&client).await;

    let pool = pool(NEW);
    let (state, record) = drive_full(&emulator, &client, &pool, None, None, None, true).await;

    assert!(record.failed_node.is_some(), "the soak never began");
    assert_eq!(state.phase, RolloutPhase::Complete, "{:?}", record.actions);
    assert!(
        record.actions.iter().any(|a| a == "promote"),
        "{:?}",
        record.actions
    );
    let expected = vec![
        ("a".to_owned(), NEW.to_owned(), 3),
        ("b".to_owned(), NEW.to_owned(), 3),
    ];
    assert_eq!(zones(&client, &pool).await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_authorization_error_fails_in_prefetch() {
    let (emulator, client) = start_emulator().await;
    deploy_old(&client).await;
    set_image(
        &emulator,
        json!({"image": NEW, "pullError": "unauthorized: authentication required"}),
    )
    .await;

    let pool = pool(NEW);
    let (state, record) = drive(&emulator, &client, &pool).await;

    assert_eq!(state.phase, RolloutPhase::Failed, "{:?}", record.actions);
    let failure = state.failure.clone().expect("failure reason");
    assert!(failure.contains("authentication required"), "{failure}");
    assert!(failure.contains("no worker was changed"), "{failure}");
    assert!(state.phase_started_at <= state.started_at + jiff::SignedDuration::from_mins(10));
    assert_eq!(record.actions, ["register prefetch", "stop prefetch"]);
    let expected = vec![
        ("a".to_owned(), OLD.to_owned(), 3),
        ("b".to_owned(), OLD.to_owned(), 3),
    ];
    assert_eq!(zones(&client, &pool).await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_in_second_zone_rolls_back_both() {
    let (emulator, client) = start_emulator().await;
    deploy_old(&client).await;

    let pool = pool(NEW);
    let (state, record) = drive_with_fault(
        &emulator,
        &client,
        &pool,
        Some(("scale b 4", json!({"image": NEW, "healthy": false}))),
    )
    .await;

    // The image turns unhealthy once zone a runs it, so zone a's own workers may fail health
    // too; the check here is the order of the rollback, one zone at a time.
    assert_eq!(state.phase, RolloutPhase::Failed, "{:?}", record.actions);
    let failure = state.failure.clone().expect("failure reason");
    assert!(
        failure.contains(&format!("rolled back to {OLD}")),
        "{failure}"
    );
    let expected_tail = [
        format!("register a={NEW}x3+canary,b={NEW}x4"),
        format!("register a={NEW}x3+canary,b={OLD}x4"),
        "scale b 3".to_owned(),
        format!("register a={OLD}x4,b={OLD}x3"),
        "scale a 3".to_owned(),
    ];
    let tail = &record.actions[record.actions.len() - expected_tail.len()..];
    assert_eq!(tail, expected_tail, "{:?}", record.actions);
    let expected = vec![
        ("a".to_owned(), OLD.to_owned(), 3),
        ("b".to_owned(), OLD.to_owned(), 3),
    ];
    assert_eq!(zones(&client, &pool).await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn override_mid_rollout_waits_for_end() {
    let (emulator, client) = start_emulator().await;
    deploy_old(&client).await;

    let pool = pool(NEW);
    let (state, record) = drive_full(
        &emulator,
        &client,
        &pool,
        None,
        Some("promote"),
        None,
        false,
    )
    .await;

    assert_eq!(
        state.phase,
        RolloutPhase::Complete,
        "failure: {:?}; actions: {:?}",
        state.failure,
        record.actions
    );
    assert!(record.pending_reported);
    assert!(
        !record
            .actions
            .iter()
            .any(|a| a == "scale a 5" || a == "scale b 5"),
        "the override was applied during the rollout: {:?}",
        record.actions
    );
    for (phase, a, b) in &record.samples {
        assert!(a + b >= 6, "healthy {a} + {b} below 6 in {phase}");
    }
}
