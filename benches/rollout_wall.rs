//! Whole golden-first rollouts run by the controller against the Consul and Nomad emulators
//! on 127.0.0.1, in simulated time. For each pool size it reports the rollout's simulated
//! duration against the expected `pull + soak + N × (start + minHealthyTime)`, the time spent
//! in each phase, the lowest healthy worker count seen against the desired count, and the
//! wall time of the run.
//!
//! Run with `cargo bench --bench rollout_wall` (or `--profile dev` to skip a release build).
//! `ROLLOUT_WORKERS` lists the pool sizes (default `6,60`, split evenly over two zones) and
//! `ROLLOUT_SPEED` sets the simulated seconds per wall second (default 100).
//! `ROLLOUT_HEALTHY_DEADLINE` sets `spec.rollout.healthyDeadline` (default `10m`).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use steward::consul::{ConsulClient, Keys, WriteMode};
use steward::nomad::{self, AllocListStub, QueryOptions};
use steward::reconcile::{Phase, Status};
use steward::rollout::{RolloutPhase, RolloutState};
use steward::runtime::{Controller, ControllerConfig, QueueConfig};
use steward::sim::consul::{ConsulEmulator, ConsulEmulatorConfig, RunningConsul};
use steward::sim::nomad::state::CACHED_START_SECONDS;
use steward::sim::nomad::{NomadEmulator, NomadEmulatorConfig, RunningNomad, TICK};
use tokio_util::sync::CancellationToken;

const OLD: &str = "registry.local/face:1";
const NEW: &str = "registry.local/face:2";
const ZONES: [&str; 2] = ["a", "b"];

/// Simulated seconds the emulator takes to pull `NEW` onto a node.
const PULL_SECONDS: f64 = 30.0;
/// `spec.rollout.goldenSoak`, in simulated seconds.
const SOAK_SECONDS: f64 = 120.0;
/// `spec.rollout.minHealthyTime`, in simulated seconds.
const MIN_HEALTHY_SECONDS: f64 = 10.0;

/// The default `spec.rollout.healthyDeadline`. The renderer sets each group's
/// `ProgressDeadline` to it plus `minHealthyTime`, `goldenSoak` and one minute (490 s).
const HEALTHY_DEADLINE: &str = "5m";

/// Upper bound on the wall time of one rollout. It only turns a hang into a failure.
const GIVE_UP: Duration = Duration::from_secs(600);

/// The figures of one rollout.
struct Report {
    workers: u32,
    /// Simulated seconds from the `spec.version` write until the rollout was complete.
    simulated: f64,
    /// Simulated seconds spent in each phase, in order.
    phases: Vec<(RolloutPhase, f64)>,
    lowest_healthy: u32,
    lowest_zones: [u32; 2],
    observations: usize,
    wall: Duration,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
    let speed: f64 = env_or("ROLLOUT_SPEED", 100.0);
    let healthy_deadline: String = env_or("ROLLOUT_HEALTHY_DEADLINE", HEALTHY_DEADLINE.to_owned());
    let sizes: Vec<u32> = std::env::var("ROLLOUT_WORKERS")
        .unwrap_or_else(|_| "6,60".to_owned())
        .split(',')
        .map(|size| {
            size.trim()
                .parse()
                .expect("ROLLOUT_WORKERS lists even worker counts, such as 6,60")
        })
        .collect();
    for size in &sizes {
        assert!(
            *size >= 2 && size % 2 == 0,
            "ROLLOUT_WORKERS: {size} is not an even count of at least 2; use counts such as 6,60"
        );
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime builds");
    println!(
        "speed {speed}× (emulator tick {:.1} simulated s), pull {PULL_SECONDS} s, soak \
         {SOAK_SECONDS} s, task start {CACHED_START_SECONDS} s, minHealthyTime \
         {MIN_HEALTHY_SECONDS} s, healthyDeadline {healthy_deadline}, surge 1",
        TICK.as_secs_f64() * speed
    );
    println!(
        "| workers | expected (s) | measured (s) | ratio | lowest healthy / desired | lowest per zone | observations | wall (s) |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    let mut breakdowns = Vec::new();
    for workers in sizes {
        let report = runtime.block_on(run(workers, speed, &healthy_deadline));
        let expected = expected_seconds(workers);
        println!(
            "| {} | {expected:.0} | {:.0} | {:.2} | {} / {} | {:?} | {} | {:.1} |",
            report.workers,
            report.simulated,
            report.simulated / expected,
            report.lowest_healthy,
            report.workers,
            report.lowest_zones,
            report.observations,
            report.wall.as_secs_f64()
        );
        breakdowns.push(report);
    }
    for report in &breakdowns {
        let phases: Vec<String> = report
            .phases
            .iter()
            .map(|(phase, seconds)| format!("{phase} {seconds:.0} s"))
            .collect();
        println!("{} workers: {}", report.workers, phases.join(", "));
    }
}

/// Returns `pull + soak + N × (start + minHealthyTime)` in simulated seconds.
fn expected_seconds(workers: u32) -> f64 {
    PULL_SECONDS + SOAK_SECONDS + f64::from(workers) * (CACHED_START_SECONDS + MIN_HEALTHY_SECONDS)
}

struct Scene {
    consul: RunningConsul,
    nomad: RunningNomad,
    consul_client: ConsulClient,
    nomad_client: nomad::Client,
    keys: Keys,
}

impl Scene {
    async fn start(speed: f64) -> Self {
        let consul = ConsulEmulator::start(ConsulEmulatorConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..ConsulEmulatorConfig::default()
        })
        .await
        .expect("consul emulator starts");
        let nomad = NomadEmulator::start(NomadEmulatorConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            datacenters: vec!["dc-a".to_owned(), "dc-b".to_owned()],
            nodes_per_dc: 3,
            speed,
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

    fn controller_config(&self) -> ControllerConfig {
        let mut config = ControllerConfig::new(
            self.consul_client.clone(),
            self.keys.clone(),
            self.nomad_client.clone(),
            "rollout-bench",
        );
        config.clock = Arc::new(self.nomad.shared().clock);
        config.queue = QueueConfig {
            debounce: Duration::from_millis(5),
            max_debounce: Duration::from_millis(50),
            backoff_base: Duration::from_millis(20),
            backoff_max: Duration::from_millis(200),
            ..QueueConfig::default()
        };
        config.consul_watch.min_interval = Duration::from_millis(5);
        config.nomad_watch.min_interval = Duration::from_millis(5);
        config
    }

    async fn put_pool(&self, version: &str, workers: u32, healthy_deadline: &str) {
        let text = format!(
            "apiVersion: steward/v1
kind: WorkerPool
metadata:
  name: face
spec:
  version: \"{version}\"
  workers: {{min: {workers}, max: {workers}}}
  zones:
    - name: a
      datacenter: dc-a
    - name: b
      datacenter: dc-b
  rollout:
    goldenSoak: {SOAK_SECONDS}s
    healthyDeadline: {healthy_deadline}
    minHealthyTime: {MIN_HEALTHY_SECONDS}s
    surge: 1
    prefetch: {{timeout: 10m}}
  template:
    Tasks:
      - Name: app
        Driver: docker
        Resources: {{CPU: 100, MemoryMB: 64}}
"
        );
        self.consul_client
            .kv_put(
                &self.keys.pool("face"),
                text.as_bytes(),
                None,
                &WriteMode::Plain,
            )
            .await
            .expect("consul write");
    }

    async fn status(&self) -> Option<Status> {
        let pair = self
            .consul_client
            .kv_get(&self.keys.status("face"))
            .await
            .expect("consul read")?;
        Some(serde_json::from_slice(&pair.value).expect("status is valid JSON"))
    }

    fn now(&self) -> Timestamp {
        let nanos = self.nomad.shared().clock.now_ns();
        Timestamp::from_nanosecond(i128::from(nanos)).expect("valid time")
    }

    async fn set_pull_time(&self) {
        let response = reqwest::Client::new()
            .put(format!("{}/_sim/images", self.nomad.url()))
            .json(&serde_json::json!({"image": NEW, "pullSeconds": PULL_SECONDS}))
            .send()
            .await
            .expect("image request sent");
        assert!(response.status().is_success(), "{}", response.status());
    }
}

fn rollout_state(status: &Status) -> Option<RolloutState> {
    RolloutState::from_status(status).expect("stored rollout state parses")
}

fn seconds(span: SignedDuration) -> f64 {
    span.as_secs_f64()
}

async fn run(workers: u32, speed: f64, healthy_deadline: &str) -> Report {
    let scene = Scene::start(speed).await;
    scene.set_pull_time().await;

    // The pool is written before the controller starts, so the rollout begins from a
    // converged pool.
    scene.put_pool(OLD, workers, healthy_deadline).await;
    let controller = Controller::new(scene.controller_config()).expect("valid config");
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(controller.run(shutdown.clone()));
    let give_up = Instant::now() + GIVE_UP;
    loop {
        let status = scene.status().await;
        if status
            .as_ref()
            .is_some_and(|s| s.phase == Phase::Ready && s.workers.healthy == workers)
        {
            break;
        }
        assert!(Instant::now() < give_up, "pool never ready: {status:#?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let stop = CancellationToken::new();
    let lowest = Arc::new(Mutex::new(Lowest::new()));
    let observer = tokio::spawn(observe(
        scene.nomad_client.clone(),
        Arc::clone(&lowest),
        stop.clone(),
    ));

    let wall_start = Instant::now();
    let simulated_start = scene.now();
    scene.put_pool(NEW, workers, healthy_deadline).await;
    let mut starts: Vec<(RolloutPhase, Timestamp)> = Vec::new();
    let end = loop {
        let state = scene.status().await.as_ref().and_then(rollout_state);
        if let Some(state) = state.filter(|s| s.to_version == NEW) {
            if starts.last().map(|(phase, _)| *phase) != Some(state.phase) {
                starts.push((state.phase, state.phase_started_at));
            }
            assert!(
                state.phase != RolloutPhase::Failed,
                "rollout failed: {:?}",
                state.failure
            );
            if state.phase == RolloutPhase::Complete {
                break state.phase_started_at;
            }
        }
        assert!(Instant::now() < give_up, "rollout never completed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let wall = wall_start.elapsed();
    stop.cancel();
    observer.await.expect("observer joins");

    let mut phases = Vec::new();
    let mut previous = simulated_start;
    let mut previous_phase = None;
    for (phase, started) in &starts {
        if let Some(earlier) = previous_phase {
            phases.push((earlier, seconds(started.duration_since(previous))));
        }
        previous = *started;
        previous_phase = Some(*phase);
    }
    let lowest = *lowest.lock().unwrap_or_else(PoisonError::into_inner);

    shutdown.cancel();
    task.await
        .expect("controller task joins")
        .expect("controller stops cleanly");
    scene.consul.shutdown().await;
    scene.nomad.shutdown().await;

    Report {
        workers,
        simulated: seconds(end.duration_since(simulated_start)),
        phases,
        lowest_healthy: lowest.total,
        lowest_zones: lowest.zones,
        observations: lowest.observations,
        wall,
    }
}

#[derive(Debug, Clone, Copy)]
struct Lowest {
    total: u32,
    zones: [u32; 2],
    observations: usize,
}

impl Lowest {
    fn new() -> Self {
        Self {
            total: u32::MAX,
            zones: [u32::MAX; 2],
            observations: 0,
        }
    }
}

/// Follows the pool's allocations with blocking queries until `stop` fires, keeping the
/// lowest healthy counts.
async fn observe(client: nomad::Client, lowest: Arc<Mutex<Lowest>>, stop: CancellationToken) {
    let mut index = 0;
    loop {
        let options = QueryOptions::blocking(index, Duration::from_secs(2));
        let response = tokio::select! {
            () = stop.cancelled() => return,
            response = client.job_allocations("face", false, options) => response,
        };
        let response = response.expect("allocations read");
        index = response.meta.next_index();
        let zones = ZONES.map(|zone| healthy(&response.value, zone));
        let mut lowest = lowest.lock().unwrap_or_else(PoisonError::into_inner);
        lowest.total = lowest.total.min(zones.iter().sum());
        for (low, now) in lowest.zones.iter_mut().zip(zones) {
            *low = (*low).min(now);
        }
        lowest.observations += 1;
    }
}

fn healthy(allocations: &[AllocListStub], zone: &str) -> u32 {
    allocations
        .iter()
        .filter(|a| a.task_group == zone && a.is_running_healthy())
        .count() as u32
}
