//! Nomad emulator at scale: 10,000 jobs with 100,000 allocations on 500 nodes.
//!
//! Measures `GET /v1/jobs`, `GET /v1/job/:id/allocations`, and the delay from a write to a
//! blocked `GET /v1/job/:id/allocations?index=N` returning. Run with
//! `cargo bench --bench nomad_emulator`.

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use steward::nomad::model::Job;
use steward::sim::nomad::jobs::{RegisterRequest, register};
use steward::sim::nomad::lifecycle::tick;
use steward::sim::nomad::state::Table;
use steward::sim::nomad::{NomadEmulator, NomadEmulatorConfig, RunningNomad};

const JOBS: usize = 10_000;
const ALLOCS_PER_JOB: i64 = 10;
const DATACENTERS: usize = 5;
const NODES_PER_DC: usize = 100;
const HOUR_NS: i64 = 3_600_000_000_000;

fn job(index: usize) -> Job {
    serde_json::from_value(json!({
        "ID": format!("job-{index:05}"),
        "Type": "service",
        "Update": {"MaxParallel": 0},
        "TaskGroups": [{
            "Name": "web",
            "Count": ALLOCS_PER_JOB,
            "Tasks": [{"Name": "app", "Driver": "docker", "Config": {"image": "app:1"},
                "Resources": {"CPU": 100, "MemoryMB": 128}}]
        }]
    }))
    .expect("valid job")
}

/// Starts the emulator with every job placed and running.
fn start(runtime: &tokio::runtime::Runtime) -> RunningNomad {
    let config = NomadEmulatorConfig {
        addr: "127.0.0.1:0".parse().expect("valid address"),
        datacenters: (0..DATACENTERS).map(|dc| format!("dc-{dc}")).collect(),
        nodes_per_dc: NODES_PER_DC,
        speed: 1.0,
        ..NomadEmulatorConfig::default()
    };
    let started = Instant::now();
    let nomad = runtime
        .block_on(NomadEmulator::start_prepared(config, |cluster, now| {
            for index in 0..JOBS {
                let request = RegisterRequest {
                    job: job(index),
                    ..RegisterRequest::default()
                };
                register(cluster, request, now).expect("register");
            }
            // Far-future ticks finish pulls and health, so the state is quiet while measured.
            tick(cluster, now + HOUR_NS);
            tick(cluster, now + 2 * HOUR_NS);
        }))
        .expect("emulator starts");
    let state = nomad.state();
    eprintln!(
        "setup: {} jobs, {:?} allocations, {} nodes in {:.1?}",
        state.jobs.len(),
        state.allocations_by_status,
        state.nodes.len(),
        started.elapsed()
    );
    nomad
}

fn bench(c: &mut Criterion) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let nomad = start(&runtime);
    let client = reqwest::Client::new();
    let base = nomad.url();

    let mut group = c.benchmark_group("nomad_emulator");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));

    group.bench_function("GET /v1/jobs (10k jobs)", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let body = client
                    .get(format!("{base}/v1/jobs"))
                    .send()
                    .await
                    .expect("answer")
                    .bytes()
                    .await
                    .expect("body");
                assert!(body.len() > 1_000_000);
            })
        })
    });

    group.bench_function("GET /v1/job/:id/allocations (10 of 100k)", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let body = client
                    .get(format!("{base}/v1/job/job-04242/allocations"))
                    .send()
                    .await
                    .expect("answer")
                    .bytes()
                    .await
                    .expect("body");
                assert!(body.len() > 1_000);
            })
        })
    });

    // Time from a write to the allocs table until a blocked query on it gets its response.
    let shared = std::sync::Arc::clone(nomad.shared());
    group.bench_function("blocked query wake-up", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                total += runtime.block_on(async {
                    let index = shared.lock().tables.allocs;
                    let url =
                        format!("{base}/v1/job/job-00001/allocations?index={index}&wait=300s");
                    let waiter = tokio::spawn({
                        let client = client.clone();
                        async move {
                            let response = client.get(url).send().await.expect("answer");
                            let body = response.bytes().await.expect("body");
                            (Instant::now(), body.len())
                        }
                    });
                    // Give the query time to park on the allocs table before the write.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    let written = Instant::now();
                    shared.write(|cluster, _| {
                        cluster.begin();
                        cluster.touch(Table::Allocs);
                    });
                    let (answered, _) = waiter.await.expect("waiter");
                    answered.duration_since(written)
                });
            }
            total
        })
    });
    group.finish();
    runtime.block_on(nomad.shutdown());
}

criterion_group!(benches, bench);
criterion_main!(benches);
