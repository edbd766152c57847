//! The autoscaler inside the controller, over HTTP: a Prometheus-compatible stub serves the
//! request rate, the Consul and Nomad emulators hold the pool and its job, and a clock that
//! the test moves by hand decides when sizing cycles are due.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jiff::Timestamp;
use steward::consul::{ConsulClient, Keys, WriteMode};
use steward::nomad;
use steward::reconcile::{ConditionStatus, Status};
use steward::runtime::{Clock, Controller, ControllerConfig, QueueConfig};
use steward::sim::consul::{ConsulEmulator, ConsulEmulatorConfig, RunningConsul};
use steward::sim::nomad::{NomadEmulator, NomadEmulatorConfig, RunningNomad};
use tokio_util::sync::CancellationToken;

use crate::support::cluster_reads;

/// Upper bound on waiting for the controller. It only bounds a failing test.
const CONVERGE: Duration = Duration::from_secs(60);

/// How long a requeue of any length waits in wall time: the test moves the clock itself, so
/// the controller only needs to look again soon after each move.
const POLL: Duration = Duration::from_millis(20);

/// A clock that does not move until the test advances it.
struct ManualClock {
    now: Mutex<Timestamp>,
}

impl ManualClock {
    fn new(start: Timestamp) -> Arc<Self> {
        Arc::new(Self {
            now: Mutex::new(start),
        })
    }

    fn advance(&self, by: Duration) -> Timestamp {
        let mut now = self.now.lock().expect("clock lock");
        *now = now
            .checked_add(jiff::SignedDuration::try_from(by).expect("small duration"))
            .expect("time in range");
        *now
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.now.lock().expect("clock lock")
    }

    fn to_wall(&self, duration: Duration) -> Duration {
        duration.min(POLL)
    }
}

/// The request rate the stub serves; `None` makes every query fail with HTTP 503. Each range
/// query also moves `clock` one second on, so the controller's clock runs while a read is in
/// flight, as a real clock does. The third field is the slope of the history, in requests per
/// second gained per second, that ends at the current rate.
#[derive(Clone)]
struct Rate(Arc<Mutex<Option<f64>>>, Arc<ManualClock>, Arc<Mutex<f64>>);

impl Rate {
    fn set(&self, rate: Option<f64>) {
        *self.0.lock().expect("rate lock") = rate;
    }

    fn set_slope(&self, per_second: f64) {
        *self.2.lock().expect("slope lock") = per_second;
    }

    fn get(&self) -> Option<f64> {
        *self.0.lock().expect("rate lock")
    }
}

#[derive(serde::Deserialize)]
struct RangeParams {
    start: f64,
    end: f64,
    step: f64,
}

/// `/api/v1/query_range`: one series at every step of the range, on the line of the set slope
/// that reaches the current rate at the range's end.
async fn query_range(State(rate): State<Rate>, Query(params): Query<RangeParams>) -> Response {
    rate.1.advance(Duration::from_secs(1));
    let Some(value) = rate.get() else {
        return unavailable();
    };
    let slope = *rate.2.lock().expect("slope lock");
    let mut values = Vec::new();
    let mut t = params.start;
    while t <= params.end {
        let at = value - slope * (params.end - t);
        values.push(serde_json::json!([t, at.to_string()]));
        t += params.step.max(1.0);
    }
    axum::Json(serde_json::json!({
        "status": "success",
        "data": {"resultType": "matrix", "result": [{"metric": {}, "values": values}]}
    }))
    .into_response()
}

/// `/api/v1/query`: one sample with the current rate.
async fn query(State(rate): State<Rate>) -> Response {
    let Some(value) = rate.get() else {
        return unavailable();
    };
    let now = Timestamp::now().as_second();
    axum::Json(serde_json::json!({
        "status": "success",
        "data": {"resultType": "vector", "result": [{"metric": {}, "value": [now, value.to_string()]}]}
    }))
    .into_response()
}

fn unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "stub is failing on purpose",
    )
        .into_response()
}

struct Scene {
    consul: RunningConsul,
    nomad: RunningNomad,
    consul_client: ConsulClient,
    nomad_client: nomad::Client,
    keys: Keys,
    clock: Arc<ManualClock>,
    rate: Rate,
    prometheus: String,
    prometheus_task: tokio::task::JoinHandle<()>,
    shutdown: CancellationToken,
    controller: Option<tokio::task::JoinHandle<Result<(), steward::runtime::Error>>>,
}

impl Scene {
    async fn start(rate: f64) -> Self {
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
            datacenters: vec!["a".to_owned(), "b".to_owned()],
            nodes_per_dc: 2,
            speed: 50.0,
            ..NomadEmulatorConfig::default()
        })
        .await
        .expect("nomad emulator starts");

        let clock = ManualClock::new("2026-12-04T12:00:00Z".parse().expect("timestamp"));
        let rate = Rate(
            Arc::new(Mutex::new(Some(rate))),
            Arc::clone(&clock),
            Arc::new(Mutex::new(0.0)),
        );
        let router = Router::new()
            .route("/api/v1/query_range", get(query_range))
            .route("/api/v1/query", get(query))
            .with_state(rate.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the Prometheus stub");
        let prometheus = format!("http://{}", listener.local_addr().expect("local address"));
        let prometheus_task = tokio::spawn(async move {
            axum::serve(listener, router).await.expect("stub serves");
        });

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
            clock,
            rate,
            prometheus,
            prometheus_task,
            shutdown: CancellationToken::new(),
            controller: None,
        }
    }

    fn spawn_controller(&mut self) {
        let mut config = ControllerConfig::new(
            self.consul_client.clone(),
            self.keys.clone(),
            self.nomad_client.clone(),
            "autoscale-test",
        );
        config.clock = self.clock.clone();
        config.leader_ttl = Duration::from_secs(2);
        config.lock_delay = Duration::from_secs(1);
        config.queue = QueueConfig {
            debounce: Duration::from_millis(10),
            max_debounce: Duration::from_millis(100),
            backoff_base: Duration::from_millis(50),
            backoff_max: Duration::from_millis(500),
            ..QueueConfig::default()
        };
        config.consul_watch.wait = Duration::from_secs(10);
        config.consul_watch.min_interval = Duration::from_millis(10);
        config.nomad_watch.wait = Duration::from_secs(10);
        config.nomad_watch.min_interval = Duration::from_millis(10);
        let controller = Controller::new(config).expect("valid config");
        self.shutdown = CancellationToken::new();
        self.controller = Some(tokio::spawn(controller.run(self.shutdown.clone())));
    }

    async fn stop_controller(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.controller.take() {
            task.await
                .expect("controller task joins")
                .expect("controller stops cleanly");
        }
    }

    /// Writes a pool whose metric source is the Prometheus stub; `autoscaling` contains the
    /// other `spec.autoscaling` fields, indented by four spaces.
    async fn put_pool(&self, name: &str, autoscaling: &str) {
        let metric = format!(
            "    metric:\n      source: prometheus\n      address: {}\n      query: sum(rate(api_requests_total[5m]))\n",
            self.prometheus
        );
        self.put_pool_with(name, &format!("{metric}{autoscaling}"))
            .await;
    }

    /// Writes a pool whose `spec.autoscaling` block (indented by four spaces) is `autoscaling`.
    async fn put_pool_with(&self, name: &str, autoscaling: &str) {
        let text = format!(
            "apiVersion: steward/v1
kind: WorkerPool
metadata:
  name: {name}
spec:
  version: \"registry.example/worker:1.0\"
  workers: {{min: 2, max: 20}}
  zones:
    - name: a
      datacenter: a
    - name: b
      datacenter: b
  autoscaling:
{autoscaling}  template:
    Tasks:
      - Name: worker
        Driver: docker
        Resources: {{CPU: 100, MemoryMB: 128}}
"
        );
        self.consul_client
            .kv_put(
                &self.keys.pool(name),
                text.as_bytes(),
                None,
                &WriteMode::Plain,
            )
            .await
            .expect("consul write");
    }

    async fn counts(&self, job: &str) -> Option<Vec<i64>> {
        cluster_reads::counts(&self.nomad_client, job, &["a", "b"]).await
    }

    async fn wait_counts(&self, job: &str, expected: &[i64]) {
        cluster_reads::wait_counts(&self.nomad_client, job, &["a", "b"], expected, CONVERGE).await;
    }

    async fn status(&self, name: &str) -> Option<Status> {
        cluster_reads::status(&self.consul_client, &self.keys, name).await
    }

    async fn wait_status(&self, name: &str, check: impl Fn(&Status) -> bool) -> Status {
        cluster_reads::wait_status(&self.consul_client, &self.keys, name, CONVERGE, check).await
    }

    /// Waits for the sizing cycle that read its metrics at `at` to be stored.
    async fn wait_cycle(&self, name: &str, at: Timestamp) -> Status {
        self.wait_status(name, |status| last_cycle(status) == Some(at))
            .await
    }

    async fn stop(mut self) {
        self.stop_controller().await;
        self.prometheus_task.abort();
        self.consul.shutdown().await;
        self.nomad.shutdown().await;
    }
}

fn autoscaler(status: &Status) -> &steward::reconcile::AutoscalerStatus {
    status
        .sizing
        .as_ref()
        .and_then(|sizing| sizing.autoscaler.as_ref())
        .expect("status.sizing.autoscaler is set")
}

fn last_cycle(status: &Status) -> Option<Timestamp> {
    status
        .sizing
        .as_ref()
        .and_then(|sizing| sizing.autoscaler.as_ref())
        .and_then(|autoscaler| autoscaler.last_cycle)
}

fn decision_source(status: &Status) -> String {
    autoscaler(status)
        .decision
        .as_ref()
        .expect("a decision is stored")
        .source
        .to_string()
}

/// Reactive predictor (the newest rate), 10 requests per second per worker and no headroom,
/// so the desired count is ceil(rate / 10). Emergency checks are off so that only the
/// five-minute cycles change the count.
const REACTIVE: &str = "    interval: 5m
    predictor: reactive
    lookback: 10m
    capacityPerWorker: 10
    headroom: 0
    startupTime: 1m
    scaleDown: {maxStep: 10, stabilization: 10m}
    emergency: {enabled: false}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autoscaler_follows_traffic() {
    let mut scene = Scene::start(100.0).await;
    scene.put_pool("api", REACTIVE).await;
    scene.spawn_controller();
    let t0 = scene.clock.now();

    // High traffic: the first cycle runs at once and sizes the pool to 100 / 10 workers.
    let status = scene.wait_cycle("api", t0).await;
    scene.wait_counts("api", &[5, 5]).await;
    let stored = autoscaler(&status);
    let decision = stored.decision.as_ref().expect("decision stored");
    assert_eq!(decision.desired, 10);
    assert_eq!(decision.source.to_string(), "autoscaler");
    assert_eq!(decision.inputs.live_rps, Some(100.0));
    assert_eq!(
        decision.prediction.map(|p| p.peak_rps),
        Some(100.0),
        "reactive predicts the newest rate"
    );
    let next_cycle = t0
        .checked_add(jiff::SignedDuration::from_mins(5))
        .expect("time in range");
    assert_eq!(stored.next_cycle, Some(next_cycle));
    let metrics = status
        .condition("MetricsAvailable")
        .expect("MetricsAvailable condition");
    assert_eq!(metrics.status, ConditionStatus::True);
    assert_eq!(status.sizing.as_ref().map(|s| s.desired), Some(10));

    // The ten workers become healthy before traffic drops.
    scene
        .wait_status("api", |status| status.workers.healthy == 10)
        .await;

    // Low traffic: the first cycles after the scale-up hold, because the scale-down waits
    // one stabilization window (10 min) after the new workers became healthy.
    scene.rate.set(Some(30.0));
    let t5 = scene.clock.advance(Duration::from_secs(300));
    let status = scene.wait_cycle("api", t5).await;
    assert_eq!(decision_source(&status), "hold");
    assert_eq!(
        autoscaler(&status).state.healthy_at,
        Some(t5.as_second()),
        "cooldown starts when the scale-up is seen healthy"
    );
    assert_eq!(scene.counts("api").await, Some(vec![5, 5]));

    let t10 = scene.clock.advance(Duration::from_secs(300));
    let status = scene.wait_cycle("api", t10).await;
    assert_eq!(decision_source(&status), "hold");
    assert_eq!(scene.counts("api").await, Some(vec![5, 5]));

    // The window has passed: down to ceil(30 / 10) = 3 workers.
    let t15 = scene.clock.advance(Duration::from_secs(300));
    let status = scene.wait_cycle("api", t15).await;
    assert_eq!(decision_source(&status), "autoscaler");
    scene.wait_counts("api", &[2, 1]).await;

    // Between cycles nothing is read or decided.
    scene.clock.advance(Duration::from_secs(60));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let status = scene.status("api").await.expect("status stored");
    assert_eq!(last_cycle(&status), Some(t15));

    scene.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metric_failure_holds_then_falls_back() {
    let mut scene = Scene::start(20.0).await;
    let spec = format!("{REACTIVE}    fallback: 6\n    fallbackAfter: 2\n");
    scene.put_pool("batch", &spec).await;
    scene.spawn_controller();
    let t0 = scene.clock.now();

    scene.wait_cycle("batch", t0).await;
    scene.wait_counts("batch", &[1, 1]).await;

    // The endpoint fails: the first failed cycle holds the count and sets the condition.
    scene.rate.set(None);
    let t5 = scene.clock.advance(Duration::from_secs(300));
    let status = scene.wait_cycle("batch", t5).await;
    let metrics = status
        .condition("MetricsAvailable")
        .expect("MetricsAvailable condition");
    assert_eq!(metrics.status, ConditionStatus::False);
    assert_eq!(metrics.reason, "MetricReadFailed");
    assert!(
        metrics.message.contains("503"),
        "message names the HTTP status: {}",
        metrics.message
    );
    assert_eq!(autoscaler(&status).state.consecutive_failures, 1);
    assert_eq!(decision_source(&status), "hold");
    assert_eq!(scene.counts("batch").await, Some(vec![1, 1]));

    // The second failure reaches fallbackAfter: the pool runs the fallback count.
    let t10 = scene.clock.advance(Duration::from_secs(300));
    let status = scene.wait_cycle("batch", t10).await;
    assert_eq!(autoscaler(&status).state.consecutive_failures, 2);
    assert_eq!(decision_source(&status), "fallback");
    scene.wait_counts("batch", &[3, 3]).await;

    // The endpoint recovers: the condition clears and the failure count resets.
    scene.rate.set(Some(20.0));
    let t15 = scene.clock.advance(Duration::from_secs(300));
    let status = scene.wait_cycle("batch", t15).await;
    let metrics = status
        .condition("MetricsAvailable")
        .expect("MetricsAvailable condition");
    assert_eq!(metrics.status, ConditionStatus::True);
    assert_eq!(autoscaler(&status).state.consecutive_failures, 0);

    scene.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_cycle_and_cooldown() {
    let mut scene = Scene::start(100.0).await;
    scene.put_pool("web", REACTIVE).await;
    scene.spawn_controller();
    let t0 = scene.clock.now();
    scene.wait_cycle("web", t0).await;
    scene.wait_counts("web", &[5, 5]).await;
    scene
        .wait_status("web", |status| status.workers.healthy == 10)
        .await;

    // A cycle starts the cooldown, then the controller restarts within the window.
    scene.rate.set(Some(30.0));
    let t5 = scene.clock.advance(Duration::from_secs(300));
    scene.wait_cycle("web", t5).await;
    scene.stop_controller().await;
    scene.spawn_controller();

    // Before the next cycle is due, the new controller runs none.
    scene.clock.advance(Duration::from_secs(60));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = scene.status("web").await.expect("status stored");
    assert_eq!(last_cycle(&status), Some(t5));

    // The next cycle still reads the stored cooldown and keeps the count.
    let t10 = scene.clock.advance(Duration::from_secs(240));
    let status = scene.wait_cycle("web", t10).await;
    assert_eq!(decision_source(&status), "hold");
    assert_eq!(autoscaler(&status).state.healthy_at, Some(t5.as_second()));
    assert_eq!(scene.counts("web").await, Some(vec![5, 5]));

    scene.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_metric_source_reported() {
    let mut scene = Scene::start(100.0).await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let missing = dir.path().join("missing-trace.csv");
    let spec = format!(
        "    metric:\n      source: csv\n      path: {}\n{REACTIVE}",
        missing.display()
    );
    scene.put_pool_with("bad", &spec).await;
    scene.spawn_controller();

    let status = scene
        .wait_status("bad", |status| status.last_error.is_some())
        .await;
    let condition = status
        .condition("AutoscalerConfigured")
        .expect("AutoscalerConfigured condition");
    assert_eq!(condition.status, ConditionStatus::False);
    assert!(
        condition.message.contains("missing-trace.csv"),
        "message names the trace: {}",
        condition.message
    );
    assert!(
        status
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("missing-trace.csv")),
        "lastError: {:?}",
        status.last_error
    );
    assert_eq!(status.phase.to_string(), "Degraded");
    // A new pool without a decision starts at workers.min.
    scene.wait_counts("bad", &[1, 1]).await;

    scene.stop().await;
}

/// Starts a controller on one pool of [`REACTIVE`] with emergency checks every minute and the
/// given startup time, at 100 requests per second. Returns once its first cycle has run and
/// its ten workers are healthy, with the time of that cycle.
async fn start_with_emergency(pool: &str, startup: &str) -> (Scene, Timestamp) {
    let mut scene = Scene::start(100.0).await;
    let spec = REACTIVE
        .replace(
            "emergency: {enabled: false}",
            "emergency: {enabled: true, checkInterval: 1m}",
        )
        .replace("startupTime: 1m", &format!("startupTime: {startup}"));
    scene.put_pool(pool, &spec).await;
    scene.spawn_controller();
    let t0 = scene.clock.now();
    scene.wait_cycle(pool, t0).await;
    scene.wait_counts(pool, &[5, 5]).await;
    scene
        .wait_status(pool, |status| status.workers.healthy == 10)
        .await;
    (scene, t0)
}

/// Waits for the emergency check requested at `at` and returns the status it wrote.
async fn wait_check(scene: &Scene, pool: &str, at: Timestamp) -> Status {
    scene
        .wait_status(pool, |status| {
            status
                .sizing
                .as_ref()
                .and_then(|sizing| sizing.autoscaler.as_ref())
                .is_some_and(|autoscaler| autoscaler.last_check == Some(at))
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emergency_check_scales_between_cycles() {
    let (scene, t0) = start_with_emergency("burst", "1m").await;

    // Live traffic triples one minute into the cycle: the check scales up at once, to
    // ceil(300 / 10) = 30 bounded by workers.max 20, without waiting for the next cycle.
    scene.rate.set(Some(300.0));
    let t1 = scene.clock.advance(Duration::from_secs(60));
    let status = wait_check(&scene, "burst", t1).await;
    assert_eq!(decision_source(&status), "emergency");
    assert_eq!(last_cycle(&status), Some(t0), "no cycle ran");
    scene.wait_counts("burst", &[10, 10]).await;

    scene.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emergency_check_projects_a_ramp() {
    let (scene, _) = start_with_emergency("ramp", "3m").await;

    // 95 requests per second, below the 100 the ten ready workers serve, but climbing 2 a
    // minute. The check reads the last 3 minutes (the startup time): the slope adds 6 over
    // the next 3, so 95 projects to 101 and the pool grows to ceil(101 / 10) = 11 now.
    scene.rate.set(Some(95.0));
    scene.rate.set_slope(2.0 / 60.0);
    let t1 = scene.clock.advance(Duration::from_secs(60));
    let status = wait_check(&scene, "ramp", t1).await;
    assert_eq!(decision_source(&status), "emergency");
    let decision = autoscaler(&status)
        .decision
        .clone()
        .expect("decision stored");
    assert_eq!(decision.inputs.live_rps, Some(95.0));
    let projected = decision.inputs.projected_rps.expect("projection stored");
    assert!((projected - 101.0).abs() < 1e-6, "projected {projected}");
    assert_eq!(decision.desired, 11);
    scene.wait_counts("ramp", &[6, 5]).await;

    scene.stop().await;
}
