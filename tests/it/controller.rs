//! The controller end to end: the Consul and Nomad emulators over HTTP on 127.0.0.1, and the
//! controller reconciling between them.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use steward::consul::{ConsulClient, Keys, SessionBehavior, SessionRequest, WriteMode};
use steward::nomad::{self, QueryOptions};
use steward::reconcile::{Phase, Status};
use steward::runtime::{Controller, ControllerConfig, ControllerHandle, QueueConfig, WorkQueue};
use steward::sim::consul::{ConsulEmulator, ConsulEmulatorConfig, RunningConsul};
use steward::sim::nomad::{NomadEmulator, NomadEmulatorConfig, RunningNomad};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::support::cluster_reads;

/// Upper bound on waiting for the controller to converge. It only bounds a failing test;
/// a passing run converges far sooner.
const CONVERGE: Duration = Duration::from_secs(60);

struct Cluster {
    consul: RunningConsul,
    nomad: RunningNomad,
    consul_client: ConsulClient,
    nomad_client: nomad::Client,
    keys: Keys,
}

impl Cluster {
    async fn start(datacenters: &[&str]) -> Self {
        let consul = ConsulEmulator::start(ConsulEmulatorConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            min_session_ttl: Duration::from_secs(1),
            session_ttl_multiplier: 1,
            ..ConsulEmulatorConfig::default()
        })
        .await
        .expect("consul emulator starts");
        let nomad = NomadEmulator::start(NomadEmulatorConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            datacenters: datacenters.iter().map(|dc| (*dc).to_owned()).collect(),
            nodes_per_dc: 2,
            speed: 50.0,
            ..NomadEmulatorConfig::default()
        })
        .await
        .expect("nomad emulator starts");
        let consul_client = ConsulClient::for_url(consul.url()).expect("consul client");
        let nomad_client =
            nomad::Client::new(nomad::Config::new(&nomad.url()).expect("nomad address"))
                .expect("nomad client");
        Self {
            consul,
            nomad,
            consul_client,
            nomad_client,
            keys: Keys::new("steward/").expect("valid prefix"),
        }
    }

    fn controller_config(&self, identity: &str) -> ControllerConfig {
        let mut config = ControllerConfig::new(
            self.consul_client.clone(),
            self.keys.clone(),
            self.nomad_client.clone(),
            identity,
        );
        config.leader_ttl = Duration::from_secs(2);
        config.lock_delay = Duration::from_secs(1);
        config.queue = QueueConfig {
            debounce: Duration::from_millis(20),
            max_debounce: Duration::from_millis(200),
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(2),
            ..QueueConfig::default()
        };
        config.consul_watch.wait = Duration::from_secs(10);
        config.consul_watch.min_interval = Duration::from_millis(10);
        config.nomad_watch.wait = Duration::from_secs(10);
        config.nomad_watch.min_interval = Duration::from_millis(10);
        config.nomad_watch.backoff_initial = Duration::from_millis(50);
        config.nomad_watch.backoff_max = Duration::from_millis(500);
        config
    }

    fn spawn(&self, identity: &str) -> Running {
        let controller = Controller::new(self.controller_config(identity)).expect("valid config");
        let handle = controller.handle();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(controller.run(shutdown.clone()));
        Running {
            handle,
            shutdown,
            task,
        }
    }

    /// Starts a controller on its own thread and single-threaded runtime, with its own
    /// clients, so that the test can kill it (every task of it, the lock renewal included)
    /// or freeze it.
    fn spawn_isolated(&self, identity: &str) -> Isolated {
        let mut config = self.controller_config(identity);
        config.consul = ConsulClient::for_url(self.consul.url()).expect("consul client");
        config.nomad = nomad::Client::new(nomad::Config::new(&self.nomad.url()).expect("address"))
            .expect("nomad client");
        let controller = Controller::new(config).expect("valid config");
        let handle = controller.handle();
        let (command_tx, mut command_rx) = tokio::sync::mpsc::unbounded_channel::<Command>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime builds");
            runtime.block_on(async move {
                let shutdown = CancellationToken::new();
                let run = tokio::spawn(controller.run(shutdown));
                while let Some(command) = command_rx.recv().await {
                    match command {
                        // Blocks the runtime's only thread: every task of the controller stops.
                        Command::Freeze(duration) => std::thread::sleep(duration),
                        Command::Kill => break,
                    }
                }
                drop(run);
            });
            // Dropping the runtime cancels every task without running any shutdown code.
            runtime.shutdown_background();
        });
        Isolated {
            handle,
            commands: command_tx,
            thread: Some(thread),
        }
    }

    async fn put(&self, key: &str, text: &str) {
        self.consul_client
            .kv_put(key, text.as_bytes(), None, &WriteMode::Plain)
            .await
            .expect("consul write");
    }

    async fn put_pool(&self, name: &str, zones: &[&str], workers: u32) {
        self.put(&self.keys.pool(name), &pool_yaml(name, zones, workers))
            .await;
    }

    /// Stores an override of `workers` until `until`, with `force` set so that any count
    /// applies, 0 included.
    async fn put_override(&self, name: &str, workers: u32, until: jiff::Timestamp) {
        let text = format!(
            "apiVersion: steward/v1\nkind: Override\nmetadata:\n  name: {name}\nspec:\n  workers: {workers}\n  reason: test\n  until: {until}\n  force: true\n"
        );
        self.put(&self.keys.override_(name), &text).await;
    }

    /// Returns the ID and status of every deployment of `job`, newest first.
    async fn deployments(&self, job: &str) -> Vec<(String, String)> {
        let list: Vec<serde_json::Value> = http_client()
            .get(format!("{}/v1/job/{job}/deployments", self.nomad.url()))
            .send()
            .await
            .expect("deployments")
            .json()
            .await
            .expect("deployment list");
        list.iter()
            .map(|d| {
                (
                    d["ID"].as_str().expect("id").to_owned(),
                    d["Status"].as_str().expect("status").to_owned(),
                )
            })
            .collect()
    }

    /// Starts pool `web` with 1 + 1 workers, then forces an override of 400 workers, far
    /// above what the nodes hold, so that the deployment placing them cannot finish.
    /// Returns the controller and the override's expiry.
    async fn stuck_deployment(&self) -> (Running, jiff::Timestamp) {
        self.put_pool("web", &["a", "b"], 2).await;
        let controller = self.spawn("one");
        self.wait_counts("web", &["a", "b"], &[1, 1]).await;
        let later = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1);
        self.put_override("web", 400, later).await;
        self.wait_counts("web", &["a", "b"], &[200, 200]).await;
        (controller, later)
    }

    async fn wait_counts(&self, job: &str, zones: &[&str], expected: &[i64]) {
        cluster_reads::wait_counts(&self.nomad_client, job, zones, expected, CONVERGE).await;
    }

    async fn wait_status(&self, name: &str, check: impl Fn(&Status) -> bool) -> Status {
        cluster_reads::wait_status(&self.consul_client, &self.keys, name, CONVERGE, check).await
    }

    async fn stop(self) {
        self.consul.shutdown().await;
        self.nomad.shutdown().await;
    }
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

struct Running {
    handle: ControllerHandle,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), steward::runtime::Error>>,
}

impl Running {
    async fn wait_leader(&self) {
        let deadline = tokio::time::Instant::now() + CONVERGE;
        while !self.handle.is_leader() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "never became leader"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.task
            .await
            .expect("controller task joins")
            .expect("controller stops cleanly");
    }
}

enum Command {
    Freeze(Duration),
    Kill,
}

/// A controller on its own thread; see [`Cluster::spawn_isolated`].
struct Isolated {
    handle: ControllerHandle,
    commands: tokio::sync::mpsc::UnboundedSender<Command>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Isolated {
    async fn wait_leader(&self) {
        let deadline = tokio::time::Instant::now() + CONVERGE;
        while !self.handle.is_leader() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "never became leader"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn freeze(&self, duration: Duration) {
        self.commands
            .send(Command::Freeze(duration))
            .expect("controller thread runs");
    }

    fn kill(mut self) {
        let _ = self.commands.send(Command::Kill);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("controller thread joins");
        }
    }
}

impl Drop for Isolated {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Kill);
    }
}

fn pool_yaml(name: &str, zones: &[&str], workers: u32) -> String {
    let zones: String = zones
        .iter()
        .map(|zone| format!("    - name: {zone}\n      datacenter: {zone}\n"))
        .collect();
    format!(
        "apiVersion: steward/v1
kind: WorkerPool
metadata:
  name: {name}
spec:
  version: \"registry.example/worker:1.0\"
  workers: {{min: {workers}, max: 50}}
  zones:
{zones}  template:
    Tasks:
      - Name: worker
        Driver: docker
        Resources: {{CPU: 100, MemoryMB: 128}}
"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_even_counts_applied() {
    let cluster = Cluster::start(&["a", "b", "c"]).await;
    cluster.put_pool("two", &["a", "b"], 5).await;
    cluster.put_pool("three", &["a", "b", "c"], 7).await;
    cluster.put_pool("even", &["a", "b"], 4).await;
    let controller = cluster.spawn("one");

    cluster.wait_counts("two", &["a", "b"], &[3, 2]).await;
    cluster
        .wait_counts("three", &["a", "b", "c"], &[3, 2, 2])
        .await;
    cluster.wait_counts("even", &["a", "b"], &[2, 2]).await;

    let job = cluster
        .nomad_client
        .read_job("two", QueryOptions::immediate())
        .await
        .expect("job exists")
        .value;
    assert_eq!(job.meta_value("steward.pool"), Some("two"));

    // A new total is applied as a scale of each zone.
    cluster.put_pool("two", &["a", "b"], 9).await;
    cluster.wait_counts("two", &["a", "b"], &[5, 4]).await;

    let status = cluster.wait_status("two", |s| s.workers.desired == 9).await;
    assert_eq!(status.written_by, "one");
    assert!(status.observed_generation > 0);

    // Requests to both systems are counted.
    let body = controller.handle.metrics().encode();
    for system in ["consul", "nomad"] {
        assert!(
            body.contains(&format!("steward_requests_total{{system=\"{system}\"")),
            "no {system} requests in:\n{body}"
        );
    }
    assert!(
        body.contains("endpoint=\"/v1/job/:id/scale\""),
        "the scale calls are counted by route:\n{body}"
    );

    controller.stop().await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn override_holds_then_clears() {
    let cluster = Cluster::start(&["a", "b"]).await;
    cluster.put_pool("web", &["a", "b"], 4).await;
    let controller = cluster.spawn("one");
    cluster.wait_counts("web", &["a", "b"], &[2, 2]).await;

    let later = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1);
    cluster.put_override("web", 0, later).await;
    cluster.wait_counts("web", &["a", "b"], &[0, 0]).await;
    let status = cluster.wait_status("web", |s| s.r#override.is_some()).await;
    assert_eq!(status.workers.desired, 0);

    cluster
        .consul_client
        .kv_delete(&cluster.keys.override_("web"), None)
        .await
        .expect("override deleted");
    cluster.wait_counts("web", &["a", "b"], &[2, 2]).await;

    controller.stop().await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_pool_leaves_no_gauges() {
    let cluster = Cluster::start(&["a", "b"]).await;
    cluster.put_pool("web", &["a", "b"], 4).await;
    let controller = cluster.spawn("one");
    cluster.wait_status("web", |s| s.workers.desired == 4).await;
    let pool_series = |body: &str| {
        body.lines()
            .filter(|line| {
                line.starts_with("steward_workers_desired{pool=\"web\"")
                    || line.starts_with("steward_pool_phase{pool=\"web\"")
            })
            .count()
    };
    // Two zones and the phase.
    assert_eq!(pool_series(&controller.handle.metrics().encode()), 3);

    cluster
        .consul_client
        .kv_delete(&cluster.keys.pool("web"), None)
        .await
        .expect("pool deleted");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let body = controller.handle.metrics().encode();
        if pool_series(&body) == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "series of the deleted pool remain:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    controller.stop().await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_leader_exports_unchanged_pools() {
    let cluster = Cluster::start(&["a", "b"]).await;
    cluster.put_pool("web", &["a", "b"], 4).await;
    let first = cluster.spawn("one");
    let written = cluster
        .wait_status("web", |s| s.phase == Phase::Ready)
        .await;
    first.stop().await;

    let second = cluster.spawn("two");
    second.wait_leader().await;
    let deadline = tokio::time::Instant::now() + CONVERGE;
    loop {
        let body = second.handle.metrics().encode();
        if body.contains("steward_workers_desired{pool=\"web\",zone=\"a\"} 2") {
            assert!(
                body.contains("steward_pool_phase{pool=\"web\",phase=\"Ready\"} 1"),
                "{body}"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new leader exports no series for the pool:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = cluster.wait_status("web", |_| true).await;
    assert_eq!(
        status.written_by, written.written_by,
        "the status was not rewritten, so only the reconcile can have set the gauges"
    );

    second.stop().await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lower_override_replaces_stuck_deployment() {
    let cluster = Cluster::start(&["a", "b"]).await;
    let (controller, later) = cluster.stuck_deployment().await;

    cluster.put_override("web", 4, later).await;
    cluster.wait_counts("web", &["a", "b"], &[2, 2]).await;

    let statuses: Vec<String> = cluster
        .deployments("web")
        .await
        .into_iter()
        .map(|(_, status)| status)
        .collect();
    assert!(
        statuses.iter().any(|s| s == "cancelled"),
        "the register cancels the stuck deployment: {statuses:?}"
    );
    assert!(
        !statuses.iter().any(|s| s == "failed"),
        "no deployment waited for its progress deadline: {statuses:?}"
    );
    let status = cluster.wait_status("web", |s| s.workers.desired == 4).await;
    assert!(
        status
            .decisions
            .iter()
            .any(|d| d.action == "replace deployment"),
        "{:?}",
        status.decisions
    );

    controller.stop().await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_deployment_is_left_paused() {
    let cluster = Cluster::start(&["a", "b"]).await;
    let (controller, later) = cluster.stuck_deployment().await;

    // An operator halts the deployment, as `nomad deployment pause` does.
    let running = cluster
        .deployments("web")
        .await
        .into_iter()
        .find(|(_, status)| status == "running")
        .expect("a running deployment")
        .0;
    let paused = http_client()
        .post(format!(
            "{}/v1/deployment/pause/{running}",
            cluster.nomad.url()
        ))
        .json(&serde_json::json!({"DeploymentID": running, "Pause": true}))
        .send()
        .await
        .expect("pause");
    assert!(paused.status().is_success(), "{:?}", paused.text().await);

    cluster.put_override("web", 4, later).await;
    let status = cluster
        .wait_status("web", |s| {
            s.decisions.iter().any(|d| d.action == "scale deferred")
        })
        .await;
    let deferred = status
        .decisions
        .iter()
        .find(|d| d.action == "scale deferred")
        .expect("deferred decision");
    assert!(deferred.reason.contains("is paused"), "{}", deferred.reason);
    let after = cluster.deployments("web").await;
    assert!(
        after
            .iter()
            .any(|(id, status)| *id == running && status == "paused"),
        "the paused deployment was cancelled: {after:?}"
    );

    controller.stop().await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn override_expiry_restores_size() {
    let cluster = Cluster::start(&["a", "b"]).await;
    cluster.put_pool("batch", &["a", "b"], 2).await;
    let controller = cluster.spawn("one");
    cluster.wait_counts("batch", &["a", "b"], &[1, 1]).await;

    let soon = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3);
    cluster.put_override("batch", 6, soon).await;
    cluster.wait_counts("batch", &["a", "b"], &[3, 3]).await;

    // No event arrives at expiry: the requeue at `until` brings the pool back.
    cluster.wait_counts("batch", &["a", "b"], &[1, 1]).await;

    controller.stop().await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_reverted_and_recorded() {
    let cluster = Cluster::start(&["a", "b"]).await;
    cluster.put_pool("api", &["a", "b"], 4).await;
    let controller = cluster.spawn("one");
    cluster.wait_counts("api", &["a", "b"], &[2, 2]).await;

    let request = nomad::ScalingRequest {
        count: Some(7),
        target: nomad::ScalingTarget {
            group: "a".to_owned(),
            ..nomad::ScalingTarget::default()
        },
        message: "by hand".to_owned(),
        ..nomad::ScalingRequest::default()
    };
    // Nomad refuses a scale while the creating deployment runs, so retry until it ends.
    let deadline = tokio::time::Instant::now() + CONVERGE;
    loop {
        match cluster.nomad_client.scale_job("api", &request).await {
            Ok(_) => break,
            Err(nomad::Error::DeploymentActive { .. }) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "deployment never ended"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => panic!("manual scale failed: {error}"),
        }
    }

    cluster.wait_counts("api", &["a", "b"], &[2, 2]).await;
    // The hand-made scale opened a deployment, which the scale back replaces.
    let status = cluster
        .wait_status("api", |s| {
            s.decisions
                .iter()
                .any(|d| d.action == "scale zone a 7 -> 2")
        })
        .await;
    let named = status
        .decisions
        .iter()
        .find(|d| d.reason.contains("changed outside Steward to 7"))
        .expect("the change outside Steward is recorded");
    assert_eq!(named.action, "scale zone a 7 -> 2", "{named:?}");

    controller.stop().await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_cluster_gets_no_writes() {
    let cluster = Cluster::start(&["a", "b"]).await;
    cluster.put_pool("idle", &["a", "b"], 2).await;
    let controller = cluster.spawn("one");
    cluster.wait_counts("idle", &["a", "b"], &[1, 1]).await;
    cluster
        .wait_status("idle", |s| s.workers.healthy == 2 && s.workers.running == 2)
        .await;

    // Let the allocations settle, then count writes over a quiet period.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let nomad_before = controller.handle.nomad_writes();
    let status_before = controller.handle.status_writes();
    let reconciles_before = controller.handle.reconciles();
    tokio::time::sleep(Duration::from_secs(3)).await;

    assert_eq!(controller.handle.nomad_writes(), nomad_before);
    assert_eq!(controller.handle.status_writes(), status_before);
    assert!(
        nomad_before > 0,
        "the pool was created through Nomad writes"
    );
    assert!(reconciles_before > 0);

    controller.stop().await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zone_failure_moves_workers() {
    let cluster = Cluster::start(&["a", "b"]).await;
    cluster.put_pool("fo", &["a", "b"], 4).await;
    let controller = cluster.spawn("one");
    cluster.wait_counts("fo", &["a", "b"], &[2, 2]).await;

    let http = reqwest::Client::new();
    let fail = http
        .post(format!("{}/_sim/datacenters/b/fail", cluster.nomad.url()))
        .send()
        .await
        .expect("fault injection");
    assert!(fail.status().is_success(), "{}", fail.status());
    cluster.wait_counts("fo", &["a", "b"], &[4, 0]).await;

    let recover = http
        .post(format!(
            "{}/_sim/datacenters/b/recover",
            cluster.nomad.url()
        ))
        .send()
        .await
        .expect("fault injection");
    assert!(recover.status().is_success(), "{}", recover.status());
    cluster.wait_counts("fo", &["a", "b"], &[2, 2]).await;

    controller.stop().await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standby_takes_over_killed_leader() {
    let cluster = Cluster::start(&["a", "b"]).await;
    cluster.put_pool("ha", &["a", "b"], 2).await;
    let first = cluster.spawn_isolated("first");
    first.wait_leader().await;
    cluster.wait_counts("ha", &["a", "b"], &[1, 1]).await;
    cluster.wait_status("ha", |s| s.workers.desired == 2).await;
    let second = cluster.spawn("second");
    second.handle.wait_ready().await;
    assert!(!second.handle.is_leader());

    // Kill the leader without releasing its lock: its session must expire first.
    first.kill();
    second.wait_leader().await;

    // The new leader finds the cluster converged and writes nothing to Nomad.
    cluster.wait_counts("ha", &["a", "b"], &[1, 1]).await;
    assert_eq!(second.handle.nomad_writes(), 0);

    // It acts on the next change.
    cluster.put_pool("ha", &["a", "b"], 4).await;
    cluster.wait_counts("ha", &["a", "b"], &[2, 2]).await;
    assert!(second.handle.nomad_writes() > 0);

    second.stop().await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_leader_writes_nothing_after_losing_lock() {
    let cluster = Cluster::start(&["a", "b"]).await;
    cluster.put_pool("fz", &["a", "b"], 2).await;
    let first = cluster.spawn_isolated("first");
    first.wait_leader().await;
    cluster.wait_counts("fz", &["a", "b"], &[1, 1]).await;
    let second = cluster.spawn("second");
    second.handle.wait_ready().await;

    // Freeze the leader past its TTL and lock delay; the standby takes over meanwhile.
    first.freeze(Duration::from_secs(8));
    second.wait_leader().await;
    cluster.put_pool("fz", &["a", "b"], 6).await;
    cluster.wait_counts("fz", &["a", "b"], &[3, 3]).await;
    let frozen_writes = first.handle.nomad_writes();
    let frozen_status_writes = first.handle.status_writes();

    // After thawing, the old leader receives the changed pool but must not act on it.
    cluster.put_pool("fz", &["a", "b"], 8).await;
    cluster.wait_counts("fz", &["a", "b"], &[4, 4]).await;
    let deadline = tokio::time::Instant::now() + CONVERGE;
    while first.handle.is_leader() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "old leader never stepped down"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(first.handle.nomad_writes(), frozen_writes);
    assert_eq!(first.handle.status_writes(), frozen_status_writes);
    assert!(second.handle.is_leader());

    first.kill();
    second.stop().await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_releases_lock_for_standby() {
    let cluster = Cluster::start(&["a"]).await;
    cluster.put_pool("solo", &["a"], 1).await;
    let first = cluster.spawn("first");
    first.wait_leader().await;
    let second = cluster.spawn("second");
    second.handle.wait_ready().await;

    first.stop().await;
    second.wait_leader().await;
    let holder = cluster
        .consul_client
        .kv_get(&cluster.keys.leader())
        .await
        .expect("consul read")
        .expect("leader key exists");
    assert_eq!(holder.value, b"second");

    second.stop().await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nomad_outage_survived() {
    let cluster = Cluster::start(&["a", "b"]).await;
    cluster.put_pool("out", &["a", "b"], 2).await;
    let controller = cluster.spawn("one");
    cluster.wait_counts("out", &["a", "b"], &[1, 1]).await;

    // 100 simulated seconds at speed 50: two seconds of wall time.
    let http = reqwest::Client::new();
    let response = http
        .post(format!("{}/_sim/unavailable", cluster.nomad.url()))
        .json(&serde_json::json!({"seconds": 100}))
        .send()
        .await
        .expect("fault injection");
    assert!(response.status().is_success());
    cluster.put_pool("out", &["a", "b"], 6).await;

    cluster.wait_counts("out", &["a", "b"], &[3, 3]).await;
    controller.stop().await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consul_index_reset_survived() {
    let cluster = Cluster::start(&["a", "b"]).await;
    cluster.put_pool("reset", &["a", "b"], 2).await;
    let http = reqwest::Client::new();
    let snapshot = http
        .post(format!("{}/_sim/snapshot", cluster.consul.url()))
        .send()
        .await
        .expect("snapshot");
    assert!(snapshot.status().is_success());

    let controller = cluster.spawn("one");
    cluster.wait_counts("reset", &["a", "b"], &[1, 1]).await;
    cluster.put_pool("reset", &["a", "b"], 8).await;
    cluster.wait_counts("reset", &["a", "b"], &[4, 4]).await;

    // Restoring the snapshot takes the pool back to 2 workers and the index backwards.
    let restore = http
        .post(format!("{}/_sim/restore", cluster.consul.url()))
        .send()
        .await
        .expect("restore");
    assert!(restore.status().is_success());
    cluster.wait_counts("reset", &["a", "b"], &[1, 1]).await;

    controller.stop().await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_runs_5000_pools_once() {
    let queue: WorkQueue<String> = WorkQueue::new(QueueConfig {
        concurrency: 8,
        ..QueueConfig::default()
    })
    .expect("valid config");
    let names: BTreeSet<String> = (0..5000).map(|i| format!("pool-{i:04}")).collect();
    for name in &names {
        queue.schedule(name.clone(), Duration::ZERO);
    }

    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let done = Arc::new(AtomicUsize::new(0));
    let cancel = CancellationToken::new();
    let runner = {
        let queue = queue.clone();
        let seen = Arc::clone(&seen);
        let done = Arc::clone(&done);
        let cancel = cancel.clone();
        tokio::spawn(async move {
            queue
                .run(cancel.clone(), move |name: String| {
                    let seen = Arc::clone(&seen);
                    let done = Arc::clone(&done);
                    let cancel = cancel.clone();
                    async move {
                        seen.lock().expect("not poisoned").push(name);
                        if done.fetch_add(1, Ordering::SeqCst) + 1 == 5000 {
                            cancel.cancel();
                        }
                        Ok::<_, std::convert::Infallible>(Some(Duration::from_secs(3600)))
                    }
                })
                .await;
        })
    };
    tokio::time::timeout(CONVERGE, runner)
        .await
        .expect("queue drains without deadlock")
        .expect("runner joins");

    let seen = seen.lock().expect("not poisoned").clone();
    assert_eq!(seen.len(), 5000, "each pool ran exactly once");
    let unique: BTreeSet<String> = seen.into_iter().collect();
    assert_eq!(unique, names);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_command_reports_pools() {
    let cluster = Cluster::start(&["a", "b"]).await;
    cluster.put_pool("shown", &["a", "b"], 2).await;
    let url = cluster.consul.url();

    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            assert_cmd::Command::cargo_bin("steward")
                .expect("binary built")
                .args(args)
                .output()
                .expect("steward runs")
        })
    };
    let before = run(vec!["status".into(), "--consul-addr".into(), url.clone()])
        .await
        .expect("joins");
    assert!(before.status.success(), "{before:?}");
    let text = String::from_utf8_lossy(&before.stdout);
    assert!(
        text.contains("pool shown exists but no controller has written its status yet"),
        "{text}"
    );

    let controller = cluster.spawn("one");
    cluster
        .wait_status("shown", |s| s.workers.desired == 2)
        .await;
    let after = run(vec![
        "status".into(),
        "shown".into(),
        "-o".into(),
        "json".into(),
        "--consul-addr".into(),
        url.clone(),
    ])
    .await
    .expect("joins");
    assert!(after.status.success(), "{after:?}");
    let status: Status = serde_json::from_slice(&after.stdout).expect("status JSON");
    assert_eq!(status.pool, "shown");
    assert_eq!(status.written_by, "one");

    let missing = run(vec![
        "status".into(),
        "absent".into(),
        "--consul-addr".into(),
        url.clone(),
    ])
    .await
    .expect("joins");
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("pool absent not found"));

    // With no controller running, no session holds the lock, and the table reports it.
    controller.stop().await;
    let leaderless = run(vec![
        "status".into(),
        "shown".into(),
        "--consul-addr".into(),
        url.clone(),
    ])
    .await
    .expect("joins");
    let text = String::from_utf8_lossy(&leaderless.stdout);
    assert!(
        text.contains("No controller holds the leader lock"),
        "{text}"
    );

    // Another controller takes the lock and has not rewritten the status yet.
    let session = cluster
        .consul_client
        .session_create(&SessionRequest {
            name: "standby".to_owned(),
            node: None,
            lock_delay: Duration::ZERO,
            behavior: SessionBehavior::Release,
            ttl: Some(Duration::from_secs(30)),
            node_checks: None,
        })
        .await
        .expect("session");
    let acquired = cluster
        .consul_client
        .kv_put(
            &cluster.keys.leader(),
            b"two",
            None,
            &WriteMode::Acquire(session),
        )
        .await
        .expect("acquire");
    assert!(acquired, "the lock is free after the stop");
    let table = run(vec![
        "status".into(),
        "shown".into(),
        "--consul-addr".into(),
        url.clone(),
    ])
    .await
    .expect("joins");
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("Written by:          one"), "{text}");
    assert!(text.contains("The leader is now two"), "{text}");
    let json = run(vec![
        "status".into(),
        "shown".into(),
        "-o".into(),
        "json".into(),
        "--consul-addr".into(),
        url,
    ])
    .await
    .expect("joins");
    let status: Status = serde_json::from_slice(&json.stdout).expect("JSON alone on stdout");
    assert_eq!(status.written_by, "one");

    cluster.stop().await;
}
