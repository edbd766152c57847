//! Golden-first rollouts driven by the controller: a `spec.version` change is written to the
//! Consul emulator and the rollout runs on the Nomad emulator at 1000× simulated speed. The
//! controller reads the emulator's simulated clock, so a 2-minute soak takes 0.12 s.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;

use serde_json::json;
use steward::consul::{ConsulClient, Keys, WriteMode};
use steward::nomad;
use steward::reconcile::{Phase, Status};
use steward::rollout::{self, RolloutPhase};
use steward::runtime::{Controller, ControllerConfig, ControllerHandle, QueueConfig};
use steward::sim::consul::{ConsulEmulator, ConsulEmulatorConfig, RunningConsul};
use steward::sim::nomad::{NomadEmulator, NomadEmulatorConfig, RunningNomad};
use tokio_util::sync::CancellationToken;

use crate::support::emulated_time::rollout_state;
use crate::support::face_pool;

const OLD: &str = "registry.local/face:1";
const NEW: &str = "registry.local/face:2";
const SPEED: f64 = 1000.0;

/// Upper bound on waiting for the controller. It only bounds a failing test.
const CONVERGE: Duration = Duration::from_secs(90);

struct Scene {
    consul: RunningConsul,
    nomad: RunningNomad,
    consul_client: ConsulClient,
    nomad_client: nomad::Client,
    keys: Keys,
    handle: ControllerHandle,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), steward::runtime::Error>>,
}

impl Scene {
    async fn start() -> Self {
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
            datacenters: vec!["dc-a".to_owned(), "dc-b".to_owned()],
            nodes_per_dc: 3,
            speed: SPEED,
            ..NomadEmulatorConfig::default()
        })
        .await
        .expect("nomad emulator starts");
        let consul_client = ConsulClient::for_url(consul.url()).expect("consul client");
        let nomad_client =
            nomad::Client::new(nomad::Config::new(&nomad.url()).expect("nomad address"))
                .expect("nomad client");
        let keys = Keys::new("steward/").expect("valid prefix");

        let mut config = ControllerConfig::new(
            consul_client.clone(),
            keys.clone(),
            nomad_client.clone(),
            "rollout-test",
        );
        config.clock = Arc::new(nomad.shared().clock);
        config.leader_ttl = Duration::from_secs(2);
        config.lock_delay = Duration::from_secs(1);
        config.queue = QueueConfig {
            debounce: Duration::from_millis(5),
            max_debounce: Duration::from_millis(50),
            backoff_base: Duration::from_millis(20),
            backoff_max: Duration::from_millis(200),
            ..QueueConfig::default()
        };
        config.consul_watch.wait = Duration::from_secs(10);
        config.consul_watch.min_interval = Duration::from_millis(5);
        config.nomad_watch.wait = Duration::from_secs(10);
        config.nomad_watch.min_interval = Duration::from_millis(5);
        let controller = Controller::new(config).expect("valid config");
        let handle = controller.handle();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(controller.run(shutdown.clone()));

        Self {
            consul,
            nomad,
            consul_client,
            nomad_client,
            keys,
            handle,
            shutdown,
            task,
        }
    }

    async fn put_pool(&self, version: &str) {
        self.put_pool_with(version, "").await;
    }

    /// Writes the pool with `extra` appended to its `spec.rollout` block (indented by four
    /// spaces). The soak lasts 2 minutes unless `extra` sets `goldenSoak`.
    async fn put_pool_with(&self, version: &str, extra: &str) {
        let soak = if extra.contains("goldenSoak") {
            ""
        } else {
            "    goldenSoak: 2m\n"
        };
        let rollout = format!(
            "{soak}    healthyDeadline: 5m\n    minHealthyTime: 10s\n    surge: 1\n    prefetch: {{timeout: 10m}}\n{extra}"
        );
        face_pool::put(&self.consul_client, &self.keys, version, &rollout).await;
    }

    /// Polls the status until `check` accepts it, and returns every rollout phase seen on
    /// the way.
    async fn wait_status(&self, check: impl Fn(&Status) -> bool) -> (Status, Vec<RolloutPhase>) {
        face_pool::wait_status(&self.consul_client, &self.keys, CONVERGE, check).await
    }

    /// Returns each zone's version and count.
    async fn zones(&self) -> Vec<(String, String, i64)> {
        face_pool::zones(&self.nomad_client).await
    }

    async fn set_image(&self, behaviour: serde_json::Value) {
        let response = reqwest::Client::new()
            .put(format!("{}/_sim/images", self.nomad.url()))
            .json(&behaviour)
            .send()
            .await
            .expect("image fault request sent");
        assert!(response.status().is_success(), "{}", response.status());
    }

    /// Runs the pool on `OLD`, then rolls out `NEW` with an unhealthy image, and returns the
    /// first status whose rollout is Failed.
    async fn fail_rollout_to_unhealthy_new(&self) -> Status {
        self.put_pool(OLD).await;
        self.wait_status(ready_with_six).await;
        self.set_image(json!({"image": NEW, "healthy": false}))
            .await;
        self.put_pool(NEW).await;
        let (status, _) = self
            .wait_status(|status| {
                rollout_state(status).is_some_and(|state| state.phase == RolloutPhase::Failed)
            })
            .await;
        status
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.task
            .await
            .expect("controller task joins")
            .expect("controller stops cleanly");
        self.consul.shutdown().await;
        self.nomad.shutdown().await;
    }
}

fn ready_with_six(status: &Status) -> bool {
    status.phase == Phase::Ready && status.workers.healthy == 6
}

fn expected_zones(version: &str) -> Vec<(String, String, i64)> {
    vec![
        ("a".to_owned(), version.to_owned(), 3),
        ("b".to_owned(), version.to_owned(), 3),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_change_rolls_out_golden_first() {
    let scene = Scene::start().await;
    scene.put_pool(OLD).await;
    scene.wait_status(ready_with_six).await;
    assert_eq!(scene.zones().await, expected_zones(OLD));

    scene.put_pool(NEW).await;
    let (status, phases) = scene
        .wait_status(|status| {
            ready_with_six(status)
                && rollout_state(status).is_some_and(|state| state.phase == RolloutPhase::Complete)
        })
        .await;

    // Golden canary, soak, then the zones one at a time.
    for phase in [
        RolloutPhase::Golden,
        RolloutPhase::Soaking,
        RolloutPhase::Rolling,
    ] {
        assert!(phases.contains(&phase), "{phase} not seen in {phases:?}");
    }
    let state = rollout_state(&status).expect("rollout stored");
    assert_eq!(state.to_version, NEW);
    assert_eq!(state.from_version, OLD);
    assert!(state.golden.is_some(), "golden worker recorded");
    let actions: Vec<&str> = status.decisions.iter().map(|d| d.action.as_str()).collect();
    assert!(actions.contains(&"promote"), "decisions: {actions:?}");
    assert!(
        actions.contains(&"rollout complete"),
        "decisions: {actions:?}"
    );
    assert_eq!(scene.zones().await, expected_zones(NEW));

    // Converged: 500 simulated seconds later, nothing more was written to Nomad.
    let writes = scene.handle.nomad_writes();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        scene.handle.nomad_writes(),
        writes,
        "writes after completion"
    );
    assert_eq!(scene.zones().await, expected_zones(NEW));

    scene.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unhealthy_golden_rolls_back() {
    let scene = Scene::start().await;
    let status = scene.fail_rollout_to_unhealthy_new().await;

    assert_eq!(status.phase, Phase::Degraded);
    let state = rollout_state(&status).expect("rollout stored");
    let failure = state.failure.clone().expect("failure reason");
    assert!(failure.contains("golden worker"), "{failure}");
    scene
        .wait_status(|status| status.workers.healthy == 6)
        .await;
    assert_eq!(scene.zones().await, expected_zones(OLD));

    scene.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_rollout_still_follows_override() {
    let scene = Scene::start().await;
    scene.fail_rollout_to_unhealthy_new().await;
    scene
        .wait_status(|status| status.workers.healthy == 6)
        .await;

    // `spec.version` still names the failed version. The pool is sized on the restored one.
    let until = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24 * 365);
    let text = format!(
        "apiVersion: steward/v1\nkind: Override\nmetadata:\n  name: face\nspec:\n  workers: 4\n  reason: test\n  until: {until}\n  force: true\n"
    );
    scene
        .consul_client
        .kv_put(
            &scene.keys.override_("face"),
            text.as_bytes(),
            None,
            &WriteMode::Plain,
        )
        .await
        .expect("consul write");
    scene
        .wait_status(|status| status.workers.desired == 4 && status.workers.healthy == 4)
        .await;

    assert_eq!(
        scene.zones().await,
        vec![
            ("a".to_owned(), OLD.to_owned(), 2),
            ("b".to_owned(), OLD.to_owned(), 2),
        ]
    );
    let (status, _) = scene.wait_status(|_| true).await;
    let state = rollout_state(&status).expect("rollout stored");
    assert_eq!(
        state.phase,
        RolloutPhase::Failed,
        "the failure stays visible"
    );
    for decision in &status.decisions {
        assert!(
            !decision.reason.contains("outside Steward"),
            "the rollback's own counts are not drift: {decision:?}"
        );
    }

    scene.stop().await;
}

/// Serves `/api/v1/query` with `value` as one vector sample and counts the requests.
async fn serve_analysis(value: f64) -> (String, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&requests);
    let router = Router::new().route(
        "/api/v1/query",
        get(move || {
            let counter = Arc::clone(&counter);
            async move {
                counter.fetch_add(1, Ordering::Relaxed);
                axum::Json(json!({
                    "status": "success",
                    "data": {"resultType": "vector", "result": [{"metric": {}, "value": [0, value.to_string()]}]}
                }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the analysis stub");
    let address = format!("http://{}", listener.local_addr().expect("local address"));
    let task = tokio::spawn(async move {
        axum::serve(listener, router).await.expect("stub serves");
    });
    (address, requests, task)
}

fn analysis_block(address: &str) -> String {
    format!(
        "    analysis:\n      address: {address}\n      query: sum(rate(errors_total[1m]))\n      threshold: 0.05\n      interval: 30s\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passing_analysis_completes() {
    let (address, requests, stub) = serve_analysis(0.01).await;
    let scene = Scene::start().await;
    scene.put_pool(OLD).await;
    scene.wait_status(ready_with_six).await;

    scene.put_pool_with(NEW, &analysis_block(&address)).await;
    let (status, _) = scene
        .wait_status(|status| rollout_state(status).is_some_and(|state| !state.phase.is_active()))
        .await;

    let state = rollout_state(&status).expect("rollout stored");
    assert_eq!(
        state.phase,
        RolloutPhase::Complete,
        "failure: {:?}",
        state.failure
    );
    assert!(
        state.last_analysis_at.is_some(),
        "an analysis sample was used"
    );
    assert!(requests.load(Ordering::Relaxed) >= 1);
    assert_eq!(scene.zones().await, expected_zones(NEW));

    scene.stop().await;
    stub.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_analysis_rolls_back() {
    let (address, _requests, stub) = serve_analysis(0.5).await;
    let scene = Scene::start().await;
    scene.put_pool(OLD).await;
    scene.wait_status(ready_with_six).await;

    scene.put_pool_with(NEW, &analysis_block(&address)).await;
    let (status, _) = scene
        .wait_status(|status| rollout_state(status).is_some_and(|state| !state.phase.is_active()))
        .await;

    let state = rollout_state(&status).expect("rollout stored");
    assert_eq!(state.phase, RolloutPhase::Failed);
    let failure = state.failure.clone().expect("failure reason");
    assert!(failure.contains("analysis failed"), "{failure}");
    assert_eq!(status.phase, Phase::Degraded);
    scene
        .wait_status(|status| status.workers.healthy == 6)
        .await;
    assert_eq!(scene.zones().await, expected_zones(OLD));

    scene.stop().await;
    stub.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_pool_waits_to_roll_out() {
    let scene = Scene::start().await;
    scene.put_pool(OLD).await;
    scene.wait_status(ready_with_six).await;

    // `extra` ends the rollout block, so two spaces put `paused` at the spec level.
    scene.put_pool_with(NEW, "  paused: true\n").await;
    let (status, _) = scene
        .wait_status(|status| {
            status.phase == Phase::Paused
                && status
                    .decisions
                    .iter()
                    .any(|d| d.reason.contains("spec.paused"))
        })
        .await;
    assert!(rollout_state(&status).is_none(), "{:?}", status.rollout);
    // 300 ms is 5 simulated minutes at this speed: a prefetch, a soak and more.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(scene.zones().await, expected_zones(OLD));
    let (status, _) = scene
        .wait_status(|status| status.phase == Phase::Paused)
        .await;
    assert!(rollout_state(&status).is_none(), "{:?}", status.rollout);

    scene.put_pool(NEW).await;
    let (status, _) = scene
        .wait_status(|status| {
            rollout_state(status).is_some_and(|state| state.phase == RolloutPhase::Complete)
        })
        .await;
    assert_eq!(status.phase, Phase::Ready);
    assert_eq!(scene.zones().await, expected_zones(NEW));

    scene.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_key_pauses_and_resumes() {
    let scene = Scene::start().await;
    scene.put_pool(OLD).await;
    scene.wait_status(ready_with_six).await;

    let control = rollout::control_key(scene.keys.prefix(), "face");
    let write = |action: &'static str, at: &'static str| {
        let body = json!({"action": action, "by": "test", "at": at}).to_string();
        let client = scene.consul_client.clone();
        let key = control.clone();
        async move {
            client
                .kv_put(&key, body.as_bytes(), None, &WriteMode::Plain)
                .await
                .expect("consul write");
        }
    };

    // A pause written once the rollout has started applies at the next step, whatever time
    // the writer's clock gives, and then nothing moves until the resume.
    scene.put_pool(NEW).await;
    scene
        .wait_status(|status| rollout_state(status).is_some_and(|state| state.phase.is_active()))
        .await;
    write("pause", "2000-01-01T00:00:00Z").await;
    let (status, _) = scene
        .wait_status(|status| rollout_state(status).is_some_and(|state| state.paused.is_some()))
        .await;
    let paused = status
        .condition("RolloutPaused")
        .expect("RolloutPaused condition");
    assert_eq!(paused.status, steward::reconcile::ConditionStatus::True);
    let state = rollout_state(&status).expect("rollout stored");
    assert!(state.phase.is_active(), "{}", state.phase);
    let zones_when_paused = scene.zones().await;
    // 300 ms is 5 simulated minutes at this speed: more than a soak and several replacements.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        scene.zones().await,
        zones_when_paused,
        "a worker moved while paused"
    );

    // The resume is read at the next step: the control key watch queues the pool, and a
    // paused rollout is rechecked every few seconds of clock time anyway.
    write("resume", "2030-01-01T00:01:00Z").await;
    let (status, _) = scene
        .wait_status(|status| rollout_state(status).is_some_and(|state| !state.phase.is_active()))
        .await;
    let state = rollout_state(&status).expect("rollout stored");
    assert_eq!(
        state.phase,
        RolloutPhase::Complete,
        "failure: {:?}",
        state.failure
    );
    assert_eq!(state.paused, None);
    assert_eq!(scene.zones().await, expected_zones(NEW));

    scene.stop().await;
}
