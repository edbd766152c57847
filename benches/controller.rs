//! Controller at scale, against the Consul and Nomad emulators on 127.0.0.1.
//!
//! 1. Reaction: with `REACT_POOLS` pools (default 1,000) converged, the time from an
//!    override written to Consul until Nomad accepted the resulting scale call, over
//!    `REACT_SAMPLES` sequential overrides (default 200): p50 and p99.
//! 2. Idle: Consul and Nomad requests per minute while nothing changes, split into blocking
//!    queries and other requests, over `IDLE_SECS` (default 30).
//! 3. Resync: a `steward controller` process starts against `RESYNC_POOLS` pools (default
//!    10,000) of `RESYNC_WORKERS` workers each (default 10, so 100,000 allocations). The
//!    benchmark reports the time until `/readyz` returns 200 (caches synced), how many pools
//!    have a status after at most `RESYNC_STATUS_SECS` more (default 120), and the process's
//!    peak RSS (`VmHWM`).
//!
//! Run with `cargo bench --bench controller` (or `--profile dev` to skip a release build).
//! The variables above change the sizes, and `SKIP=reaction` or `SKIP=resync` leaves a
//! phase out. `RESYNC_WRAP` runs the resync controller under a profiler (see `resync`).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use steward::consul::{ConsulClient, Keys, TxnOp, WriteMode};
use steward::nomad::{self, RequestMetrics, RequestRecord};
use steward::reconcile::render_job;
use steward::runtime::{Controller, ControllerConfig};
use steward::sim::consul::{ConsulEmulator, ConsulEmulatorConfig, RunningConsul};
use steward::sim::nomad::jobs::{RegisterRequest, register};
use steward::sim::nomad::lifecycle::tick;
use steward::sim::nomad::{NomadEmulator, NomadEmulatorConfig, RunningNomad};
use steward::spec::{self, Document, WorkerPool};
use steward::telemetry::RequestObserver;
use tokio_util::sync::CancellationToken;

const HOUR_NS: i64 = 3_600_000_000_000;
const ZONES: [&str; 2] = ["dc-0", "dc-1"];

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn pool(name: &str, workers: u32) -> WorkerPool {
    let text = format!(
        "apiVersion: steward/v1
kind: WorkerPool
metadata:
  name: {name}
spec:
  version: \"registry.example/worker:1.0\"
  workers: {{min: {workers}, max: 1000}}
  zones:
    - name: dc-0
      datacenter: dc-0
    - name: dc-1
      datacenter: dc-1
  template:
    Tasks:
      - Name: worker
        Driver: docker
        Resources: {{CPU: 100, MemoryMB: 128}}
"
    );
    let mut documents = spec::parse_str(&text, name).expect("valid pool");
    match documents.remove(0).document {
        Document::WorkerPool(pool) => pool,
        Document::Override(_) => unreachable!("the text is a WorkerPool"),
    }
}

/// Counts requests, split into blocking queries and the rest.
#[derive(Default)]
struct Counter {
    blocking: AtomicU64,
    other: AtomicU64,
    /// When each job's first scale call was accepted, by job ID.
    first_scale: std::sync::Mutex<HashMap<String, Instant>>,
}

impl RequestObserver for Counter {
    fn observe(&self, _system: &str, endpoint: &str, _status: u16, seconds: f64) {
        // The observer has no blocking flag: KV reads held longer than 1 s are counted as
        // blocking queries.
        if endpoint.contains("kv") && seconds > 1.0 {
            self.blocking.fetch_add(1, Ordering::Relaxed);
        } else {
            self.other.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl RequestMetrics for Counter {
    fn record(&self, request: &RequestRecord<'_>) {
        if request.blocking {
            self.blocking.fetch_add(1, Ordering::Relaxed);
        } else {
            self.other.fetch_add(1, Ordering::Relaxed);
        }
        if request.endpoint == "/v1/job/:id/scale"
            && request.status.is_some_and(|status| status.is_success())
            && let Some(job) = request
                .path
                .strip_prefix("/v1/job/")
                .and_then(|rest| rest.strip_suffix("/scale"))
        {
            self.first_scale
                .lock()
                .expect("lock")
                .entry(job.to_owned())
                .or_insert_with(Instant::now);
        }
    }
}

impl Counter {
    /// When the first scale call of `job` was accepted, if it was.
    fn first_scale(&self, job: &str) -> Option<Instant> {
        self.first_scale.lock().expect("lock").get(job).copied()
    }

    fn read(&self) -> (u64, u64) {
        (
            self.blocking.load(Ordering::Relaxed),
            self.other.load(Ordering::Relaxed),
        )
    }
}

/// Starts both emulators with `pools` pools of `workers` workers stored in Consul and their
/// jobs already placed and running in Nomad.
async fn prepare(pools: usize, workers: u32) -> (RunningConsul, RunningNomad, Keys) {
    let started = Instant::now();
    let capacity_per_node = 300;
    let nodes_per_dc = (pools * workers as usize).div_ceil(ZONES.len() * capacity_per_node) + 2;
    let objects: Vec<WorkerPool> = (0..pools)
        .map(|index| pool(&format!("pool-{index:05}"), workers))
        .collect();

    let jobs = objects.clone();
    let nomad = NomadEmulator::start_prepared(
        NomadEmulatorConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            datacenters: ZONES.iter().map(|zone| (*zone).to_owned()).collect(),
            nodes_per_dc,
            // Real time, so blocking queries wait their full 5 minutes while idle.
            speed: 1.0,
            ..NomadEmulatorConfig::default()
        },
        move |cluster, now| {
            for pool in &jobs {
                let half = pool.spec.workers.min / 2;
                let counts = [pool.spec.workers.min - half, half];
                let job = render_job(pool, &counts).expect("pool renders");
                let request = RegisterRequest {
                    job,
                    ..RegisterRequest::default()
                };
                register(cluster, request, now).expect("job registers");
            }
            // Far-future ticks finish pulls, health checks and deployments.
            tick(cluster, now + HOUR_NS);
            tick(cluster, now + 2 * HOUR_NS);
        },
    )
    .await
    .expect("nomad emulator starts");

    let consul = ConsulEmulator::start(ConsulEmulatorConfig {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..ConsulEmulatorConfig::default()
    })
    .await
    .expect("consul emulator starts");
    let keys = Keys::new("steward/").expect("valid prefix");
    let client = ConsulClient::for_url(consul.url()).expect("consul client");
    let ops: Vec<TxnOp> = objects
        .iter()
        .map(|pool| TxnOp::Set {
            key: keys.pool(&pool.metadata.name),
            value: pool.to_yaml().into_bytes(),
            flags: 0,
        })
        .collect();
    client.txn_batched(&ops).await.expect("pools stored");

    let state = nomad.state();
    eprintln!(
        "setup: {pools} pools, {:?} allocations, {} nodes in {:.1?}",
        state.allocations_by_status,
        state.nodes.len(),
        started.elapsed()
    );
    (consul, nomad, keys)
}

async fn status_count(client: &ConsulClient, keys: &Keys) -> usize {
    client
        .kv_keys(&keys.status_prefix(), None, &Default::default())
        .await
        .map(|(keys, _)| keys.len())
        .unwrap_or(0)
}

async fn wait_statuses(client: &ConsulClient, keys: &Keys, expected: usize, limit: Duration) {
    let deadline = Instant::now() + limit;
    while status_count(client, keys).await < expected {
        assert!(
            Instant::now() < deadline,
            "statuses not written within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let index = ((sorted.len() as f64 * fraction).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

async fn reaction_and_idle() {
    let pools = env_usize("REACT_POOLS", 1000);
    let samples = env_usize("REACT_SAMPLES", 200).min(pools);
    let idle_secs = env_usize("IDLE_SECS", 30);
    let (consul, nomad, keys) = prepare(pools, 2).await;

    let consul_counter = Arc::new(Counter::default());
    let nomad_counter = Arc::new(Counter::default());
    let consul_client = ConsulClient::for_url(consul.url())
        .expect("consul client")
        .with_observer(consul_counter.clone());
    let nomad_client = nomad::Client::new(nomad::Config::new(&nomad.url()).expect("address"))
        .expect("nomad client")
        .with_metrics(nomad_counter.clone());
    let mut config =
        ControllerConfig::new(consul_client.clone(), keys.clone(), nomad_client, "bench");
    config.leader_ttl = Duration::from_secs(10);
    let controller = Controller::new(config).expect("valid config");
    let handle = controller.handle();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(controller.run(shutdown.clone()));

    let started = Instant::now();
    wait_statuses(&consul_client, &keys, pools, Duration::from_secs(600)).await;
    eprintln!("first pass over {pools} pools: {:.2?}", started.elapsed());
    tokio::time::sleep(Duration::from_secs(5)).await;

    // Idle: nothing changes.
    let (consul_blocking, consul_other) = consul_counter.read();
    let (nomad_blocking, nomad_other) = nomad_counter.read();
    let writes = handle.nomad_writes();
    tokio::time::sleep(Duration::from_secs(idle_secs as u64)).await;
    let per_minute = |now: u64, before: u64| (now - before) as f64 * 60.0 / idle_secs as f64;
    let (consul_blocking_now, consul_other_now) = consul_counter.read();
    let (nomad_blocking_now, nomad_other_now) = nomad_counter.read();
    println!(
        "idle over {idle_secs} s: consul {:.1}/min blocking + {:.1}/min other \
         (session renewals included), nomad {:.1}/min blocking + {:.1}/min other, \
         nomad writes {}",
        per_minute(consul_blocking_now, consul_blocking),
        per_minute(consul_other_now, consul_other),
        per_minute(nomad_blocking_now, nomad_blocking),
        per_minute(nomad_other_now, nomad_other),
        handle.nomad_writes() - writes,
    );

    // Reaction: one override at a time, each on a different pool, timed to the first scale
    // call of that pool's job. An override to 4 workers scales both zones. The second call of
    // one pool may land while the next sample runs, and is not counted for it.
    let until = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(2);
    let mut latencies = Vec::with_capacity(samples);
    for index in 0..samples {
        let name = format!("pool-{index:05}");
        let text = format!(
            "apiVersion: steward/v1\nkind: Override\nmetadata:\n  name: {name}\nspec:\n  workers: 4\n  reason: bench\n  until: {until}\n"
        );
        let sent = Instant::now();
        consul_client
            .kv_put(
                &keys.override_(&name),
                text.as_bytes(),
                None,
                &WriteMode::Plain,
            )
            .await
            .expect("override stored");
        let scaled = loop {
            if let Some(at) = nomad_counter.first_scale(&name) {
                break at;
            }
            assert!(
                sent.elapsed() < Duration::from_secs(60),
                "no scale for {name}"
            );
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        latencies.push(scaled.duration_since(sent));
    }
    latencies.sort();
    println!(
        "reaction over {samples} overrides with {pools} pools: p50 {:.1?}, p99 {:.1?}, max {:.1?}",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies[latencies.len() - 1],
    );

    shutdown.cancel();
    task.await
        .expect("joins")
        .expect("controller stops cleanly");
    consul.shutdown().await;
    nomad.shutdown().await;
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

async fn resync() {
    let pools = env_usize("RESYNC_POOLS", 10_000);
    let workers = env_usize("RESYNC_WORKERS", 10) as u32;
    let (consul, nomad, keys) = prepare(pools, workers).await;
    let consul_client = ConsulClient::for_url(consul.url()).expect("consul client");

    let listen = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port");
    let started = Instant::now();
    // `RESYNC_WRAP` runs the controller under a profiler, e.g.
    // `RESYNC_WRAP="valgrind --tool=massif --massif-out-file=/tmp/massif.out"`.
    let wrap = std::env::var("RESYNC_WRAP").unwrap_or_default();
    let mut words = wrap.split_whitespace();
    let mut command = match words.next() {
        Some(program) => {
            let mut command = std::process::Command::new(program);
            command.args(words).arg(env!("CARGO_BIN_EXE_steward"));
            command
        }
        None => std::process::Command::new(env!("CARGO_BIN_EXE_steward")),
    };
    let mut child = command
        .args([
            "controller",
            "--consul-addr",
            &consul.url(),
            "--nomad-addr",
            &nomad.url(),
        ])
        .args([
            "--listen",
            &listen.to_string(),
            "--id",
            "resync",
            "--log-level",
            "warn",
        ])
        .spawn()
        .expect("controller starts");

    let http = reqwest::Client::new();
    let readyz = format!("http://{listen}/readyz");
    loop {
        let ready = http
            .get(&readyz)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ready {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(600), "never ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ready_after = started.elapsed();
    let ready_rss = peak_rss_kib(child.id());
    println!(
        "resync of {pools} pools, {} allocations: caches synced after {ready_after:.2?}, \
         peak RSS by then {} MiB",
        pools * workers as usize,
        ready_rss.map_or("unknown".to_owned(), |kib| format!(
            "{:.0}",
            kib as f64 / 1024.0
        )),
    );

    // The first pass writes one status per pool. It is bounded so the run ends even when
    // the emulator slows down under many blocked list queries.
    let limit = Duration::from_secs(env_usize("RESYNC_STATUS_SECS", 120) as u64);
    let deadline = Instant::now() + limit;
    let mut written = status_count(&consul_client, &keys).await;
    while written < pools && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        written = status_count(&consul_client, &keys).await;
    }
    let statuses_after = started.elapsed();
    let rss = peak_rss_kib(child.id());

    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    println!(
        "first pass: {written} of {pools} statuses written after {statuses_after:.2?}, \
         peak RSS {} MiB",
        rss.map_or("unknown".to_owned(), |kib| format!(
            "{:.0}",
            kib as f64 / 1024.0
        )),
    );
    consul.shutdown().await;
    nomad.shutdown().await;
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let phases: BTreeMap<&str, bool> = ["reaction", "resync"]
        .into_iter()
        .map(|phase| {
            let skip = std::env::var("SKIP").unwrap_or_default();
            (phase, !skip.split(',').any(|s| s == phase))
        })
        .collect();
    if phases["reaction"] {
        runtime.block_on(reaction_and_idle());
    }
    if phases["resync"] {
        runtime.block_on(resync());
    }
}
