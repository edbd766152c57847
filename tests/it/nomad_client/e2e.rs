//! The Nomad client end to end against the Nomad emulator over loopback HTTP.
//!
//! The emulator runs at 1000× simulated speed, so an image pull of 20 simulated seconds takes
//! 20 ms. Each wait below has a 60-second wall-clock limit that only turns a hang into a
//! failure.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::json;
use steward::nomad::*;
use steward::sim::nomad::{NomadEmulator, NomadEmulatorConfig, RunningNomad};

const GROUP: &str = "zone-a";
const WAIT_LIMIT: Duration = Duration::from_secs(60);

async fn start_emulator() -> (RunningNomad, Client) {
    let config = NomadEmulatorConfig {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        datacenters: vec!["dc1".to_owned()],
        nodes_per_dc: 3,
        speed: 1000.0,
        ..NomadEmulatorConfig::default()
    };
    let emulator = NomadEmulator::start(config).await.expect("emulator starts");
    let client =
        Client::new(Config::new(&emulator.url()).expect("valid address")).expect("client builds");
    (emulator, client)
}

fn worker_job(id: &str, count: i64, image: &str) -> Job {
    serde_json::from_value(json!({
        "ID": id,
        "Name": id,
        "Type": "service",
        "Datacenters": ["dc1"],
        "Meta": {"steward.pool": id},
        "TaskGroups": [{
            "Name": GROUP,
            "Count": count,
            "Update": {"MaxParallel": 2, "MinHealthyTime": 1_000_000_000_i64,
                       "HealthyDeadline": 300_000_000_000_i64,
                       "ProgressDeadline": 600_000_000_000_i64},
            "Tasks": [{
                "Name": "worker",
                "Driver": "docker",
                "Config": {"image": image},
                "Resources": {"CPU": 500, "MemoryMB": 256}
            }]
        }]
    }))
    .expect("job JSON matches the model")
}

fn register(job: Job) -> JobRegisterRequest {
    JobRegisterRequest {
        job,
        ..JobRegisterRequest::default()
    }
}

fn scale_to(count: i64) -> ScalingRequest {
    ScalingRequest {
        count: Some(count),
        target: ScalingTarget {
            group: GROUP.to_owned(),
            ..ScalingTarget::default()
        },
        message: format!("test: scale to {count}"),
        ..ScalingRequest::default()
    }
}

fn fast_watch() -> WatchConfig {
    WatchConfig {
        wait: Duration::from_secs(5),
        min_interval: Duration::from_millis(5),
        ..WatchConfig::default()
    }
}

/// Watches `fetch` until `done` holds for a payload, and returns that payload.
async fn watch_until<T, F, Fut>(name: &str, fetch: F, done: impl Fn(&T) -> bool) -> T
where
    T: PartialEq + Clone + std::fmt::Debug,
    F: FnMut(QueryOptions) -> Fut,
    Fut: Future<Output = Result<Response<T>, Error>>,
{
    let mut watch = Watch::new(name, fast_watch(), fetch).expect("valid watch config");
    let mut last = None;
    let outcome = tokio::time::timeout(WAIT_LIMIT, async {
        loop {
            let response = watch.next_change().await.expect("watch read succeeds");
            if done(&response.value) {
                return response.value;
            }
            last = Some(response.value);
        }
    })
    .await;
    outcome.unwrap_or_else(|_| panic!("{name}: condition not reached; last payload: {last:?}"))
}

async fn wait_for_healthy(client: &Client, job_id: &str, count: usize) -> Vec<AllocListStub> {
    let fetch = |options| {
        let client = client.clone();
        let job_id = job_id.to_owned();
        async move { client.job_allocations(&job_id, false, options).await }
    };
    watch_until(
        "healthy allocations",
        fetch,
        |allocations: &Vec<AllocListStub>| {
            allocations
                .iter()
                .filter(|allocation| allocation.is_running_healthy())
                .count()
                == count
        },
    )
    .await
}

async fn wait_for_deployment_end(client: &Client, job_id: &str) -> Deployment {
    let fetch = |options| {
        let client = client.clone();
        let job_id = job_id.to_owned();
        async move { client.latest_deployment(&job_id, options).await }
    };
    let deployment = watch_until(
        "deployment end",
        fetch,
        |deployment: &Option<Deployment>| {
            deployment
                .as_ref()
                .is_some_and(|deployment| !deployment.is_active())
        },
    )
    .await;
    deployment.expect("the condition requires a deployment")
}

async fn live_count(client: &Client, job_id: &str) -> Option<i64> {
    let job = client
        .read_job(job_id, QueryOptions::immediate())
        .await
        .expect("job readable")
        .value;
    job.group(GROUP).and_then(|group| group.count)
}

#[tokio::test]
async fn register_places_running_allocations() {
    let (emulator, client) = start_emulator().await;

    let response = client
        .register_job(&register(worker_job("pool-a", 2, "worker:1")))
        .await
        .expect("register succeeds");
    assert!(
        !response.eval_id.is_empty(),
        "a service job register creates an evaluation"
    );

    let allocations = wait_for_healthy(&client, "pool-a", 2).await;
    for allocation in &allocations {
        assert_eq!(allocation.job_id, "pool-a");
        assert_eq!(allocation.task_group, GROUP);
        assert!(!allocation.node_id.is_empty());
    }

    let deployment = wait_for_deployment_end(&client, "pool-a").await;
    assert_eq!(deployment.status, DeploymentStatus::Successful);
    assert_eq!(deployment.task_groups[GROUP].healthy_allocs, 2);

    emulator.shutdown().await;
}

#[tokio::test]
async fn scale_changes_count_and_version() {
    let (emulator, client) = start_emulator().await;
    client
        .register_job(&register(worker_job("pool-b", 1, "worker:1")))
        .await
        .expect("register succeeds");
    wait_for_deployment_end(&client, "pool-b").await;
    let before = client
        .read_job("pool-b", QueryOptions::immediate())
        .await
        .expect("job readable")
        .value;

    client
        .scale_job("pool-b", &scale_to(3))
        .await
        .expect("scale succeeds");

    let after = client
        .read_job("pool-b", QueryOptions::immediate())
        .await
        .expect("job readable")
        .value;
    assert_eq!(after.group(GROUP).and_then(|group| group.count), Some(3));
    assert_eq!(after.version, before.version.map(|version| version + 1));
    assert!(after.job_modify_index > before.job_modify_index);
    wait_for_healthy(&client, "pool-b", 3).await;

    let status = client
        .job_scale_status("pool-b", QueryOptions::immediate())
        .await
        .expect("scale status readable")
        .value;
    assert_eq!(status.task_groups[GROUP].desired, 3);
    let events = status.task_groups[GROUP].events.clone().unwrap_or_default();
    assert!(
        events
            .iter()
            .any(|event| event.message == "test: scale to 3"),
        "scaling event recorded: {events:?}"
    );

    emulator.shutdown().await;
}

#[tokio::test]
async fn blocking_read_wakes_on_change() {
    let (emulator, client) = start_emulator().await;
    client
        .register_job(&register(worker_job("pool-c", 1, "worker:1")))
        .await
        .expect("register succeeds");
    wait_for_deployment_end(&client, "pool-c").await;
    let current = client
        .read_job("pool-c", QueryOptions::immediate())
        .await
        .expect("job readable");

    let blocked = {
        let client = client.clone();
        let index = current.meta.next_index();
        tokio::spawn(async move {
            client
                .read_job(
                    "pool-c",
                    QueryOptions::blocking(index, Duration::from_secs(120)),
                )
                .await
        })
    };
    client
        .scale_job("pool-c", &scale_to(2))
        .await
        .expect("scale succeeds");

    let woken = tokio::time::timeout(WAIT_LIMIT, blocked)
        .await
        .expect("the blocking read returns after the change")
        .expect("read task completes")
        .expect("read succeeds");
    assert!(
        woken.meta.index > current.meta.index,
        "{:?} vs {:?}",
        woken.meta,
        current.meta
    );
    assert_eq!(
        woken.value.group(GROUP).and_then(|group| group.count),
        Some(2)
    );

    emulator.shutdown().await;
}

#[tokio::test]
async fn stale_enforce_index_conflicts() {
    let (emulator, client) = start_emulator().await;
    client
        .register_job(&register(worker_job("pool-d", 1, "worker:1")))
        .await
        .expect("register succeeds");
    wait_for_deployment_end(&client, "pool-d").await;
    let read = client
        .read_job("pool-d", QueryOptions::immediate())
        .await
        .expect("job readable")
        .value;
    let stale_index = read.job_modify_index.expect("job has a JobModifyIndex");

    client
        .scale_job("pool-d", &scale_to(2))
        .await
        .expect("scale succeeds");

    let mut update = register(worker_job("pool-d", 2, "worker:2"));
    update.enforce_index = true;
    update.job_modify_index = stale_index;
    let error = client
        .register_job(&update)
        .await
        .expect_err("the job changed since it was read");
    assert!(error.is_conflict(), "{error:?}");
    assert_eq!(
        error.status(),
        Some(reqwest::StatusCode::INTERNAL_SERVER_ERROR)
    );

    let fresh = client
        .read_job("pool-d", QueryOptions::immediate())
        .await
        .expect("job readable")
        .value;
    update.job_modify_index = fresh.job_modify_index.expect("job has a JobModifyIndex");
    client
        .register_job(&update)
        .await
        .expect("register with the fresh index succeeds");

    let mut create_only = register(worker_job("pool-d", 1, "worker:1"));
    create_only.enforce_index = true;
    create_only.job_modify_index = 0;
    let error = client
        .register_job(&create_only)
        .await
        .expect_err("the job already exists");
    assert!(error.is_conflict(), "{error:?}");

    emulator.shutdown().await;
}

#[tokio::test]
async fn preserve_counts_keeps_scaled_count() {
    let (emulator, client) = start_emulator().await;
    client
        .register_job(&register(worker_job("pool-e", 2, "worker:1")))
        .await
        .expect("register succeeds");
    wait_for_deployment_end(&client, "pool-e").await;
    client
        .scale_job("pool-e", &scale_to(4))
        .await
        .expect("scale succeeds");
    assert_eq!(live_count(&client, "pool-e").await, Some(4));

    let mut preserving = register(worker_job("pool-e", 2, "worker:1"));
    preserving.preserve_counts = true;
    client
        .register_job(&preserving)
        .await
        .expect("register succeeds");
    assert_eq!(
        live_count(&client, "pool-e").await,
        Some(4),
        "PreserveCounts keeps 4"
    );

    client
        .register_job(&register(worker_job("pool-e", 2, "worker:1")))
        .await
        .expect("register succeeds");
    assert_eq!(
        live_count(&client, "pool-e").await,
        Some(2),
        "a plain register resets to 2"
    );

    emulator.shutdown().await;
}

#[tokio::test]
async fn scale_blocked_during_deployment() {
    let (emulator, client) = start_emulator().await;
    client
        .register_job(&register(worker_job("pool-f", 1, "worker:1")))
        .await
        .expect("register succeeds");
    wait_for_deployment_end(&client, "pool-f").await;

    // An image that takes about 11 simulated days to pull keeps the next deployment running.
    let http = reqwest::Client::new();
    let status = http
        .post(format!("{}/_sim/images", emulator.url()))
        .json(&json!({"image": "worker:slow", "pullSeconds": 1_000_000.0}))
        .send()
        .await
        .expect("fault injection request succeeds")
        .status();
    assert!(status.is_success(), "fault injection rejected: {status}");

    client
        .register_job(&register(worker_job("pool-f", 1, "worker:slow")))
        .await
        .expect("register succeeds");
    let version = client
        .read_job("pool-f", QueryOptions::immediate())
        .await
        .expect("job readable")
        .value
        .version
        .expect("job has a version");

    // The scheduler creates the deployment after it processes the evaluation, not within
    // the register call.
    let fetch = |options| {
        let client = client.clone();
        async move { client.latest_deployment("pool-f", options).await }
    };
    let deployment = watch_until(
        "new deployment",
        fetch,
        |deployment: &Option<Deployment>| {
            deployment
                .as_ref()
                .is_some_and(|deployment| deployment.job_version == version)
        },
    )
    .await
    .expect("the condition requires a deployment");
    assert!(deployment.is_active(), "{:?}", deployment.status);

    let error = client
        .scale_job("pool-f", &scale_to(3))
        .await
        .expect_err("scaling is blocked while the deployment runs");
    assert!(matches!(error, Error::DeploymentActive { .. }), "{error:?}");
    assert!(error.is_retryable());
    assert_eq!(live_count(&client, "pool-f").await, Some(1));

    // A register is not blocked: the live job with the new count, enforced on its index,
    // replaces the deployment with one for the new version.
    let mut live = client
        .read_job("pool-f", QueryOptions::immediate())
        .await
        .expect("job readable")
        .value;
    let enforced = live
        .job_modify_index
        .expect("a read job has JobModifyIndex");
    live.task_groups.as_mut().expect("groups")[0].count = Some(3);
    client
        .register_job(&JobRegisterRequest {
            job: live,
            enforce_index: true,
            job_modify_index: enforced,
            ..JobRegisterRequest::default()
        })
        .await
        .expect("a register during a deployment succeeds");
    assert_eq!(live_count(&client, "pool-f").await, Some(3));
    let fetch = |options| {
        let client = client.clone();
        async move { client.latest_deployment("pool-f", options).await }
    };
    let replaced = watch_until(
        "deployment of the registered version",
        fetch,
        |latest: &Option<Deployment>| latest.as_ref().is_some_and(|l| l.id != deployment.id),
    )
    .await
    .expect("the condition requires a deployment");
    assert_ne!(
        replaced.id, deployment.id,
        "the register opened a new deployment"
    );

    emulator.shutdown().await;
}

#[tokio::test]
async fn paged_allocation_list_reads_every_page() {
    let (emulator, client) = start_emulator().await;
    client
        .register_job(&register(worker_job("pool-a", 3, "worker:1")))
        .await
        .expect("register succeeds");
    client
        .register_job(&register(worker_job("pool-b", 2, "worker:1")))
        .await
        .expect("register succeeds");
    wait_for_healthy(&client, "pool-a", 3).await;
    wait_for_healthy(&client, "pool-b", 2).await;
    let whole = client
        .list_allocations_brief(QueryOptions::immediate())
        .await
        .expect("list succeeds");

    let mut pages = 0;
    let paged = client
        .list_allocations_paged::<Vec<AllocBrief>>(QueryOptions::immediate(), 2, |all, page| {
            pages += 1;
            all.extend(page);
        })
        .await
        .expect("paged list succeeds");

    assert_eq!(
        pages, 2,
        "five allocations two per page: two pages after the first"
    );
    assert_eq!(paged.meta.index, whole.meta.index);
    assert_eq!(paged.next_token, None);
    let ids = |list: &[AllocBrief]| list.iter().map(|a| a.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&paged.value), ids(&whole.value));

    emulator.shutdown().await;
}
