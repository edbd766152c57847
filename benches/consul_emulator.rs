//! Consul emulator with 10,000 KV keys under 100 prefixes and one blocked
//! `?recurse&index=N` watcher per prefix.
//!
//! Measures the latency of a KV write outside every watched prefix, and the time from a
//! write under one prefix until that prefix's watcher has its whole response. Run with
//! `cargo bench --profile dev --bench consul_emulator`.

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use steward::sim::consul::{ConsulEmulator, ConsulEmulatorConfig};

const PREFIXES: usize = 100;
const KEYS_PER_PREFIX: usize = 100;

/// Writes every key, 100 per transaction, and returns the highest index.
async fn fill(client: &reqwest::Client, base: &str) -> u64 {
    for prefix in 0..PREFIXES {
        let ops: Vec<_> = (0..KEYS_PER_PREFIX)
            .map(|key| {
                json!({"KV": {"Verb": "set", "Key": format!("pools/p{prefix:03}/k{key:03}"),
                    "Value": "eyJtaW4iOjEsIm1heCI6MTB9"}})
            })
            .collect();
        let response = client
            .put(format!("{base}/v1/txn"))
            .json(&ops)
            .send()
            .await
            .expect("transaction sent");
        assert!(response.status().is_success(), "transaction failed");
    }
    let response = client
        .get(format!("{base}/v1/kv/pools/?keys"))
        .send()
        .await
        .expect("list sent");
    response.headers()["x-consul-index"]
        .to_str()
        .expect("ASCII index")
        .parse()
        .expect("numeric index")
}

/// Parks one blocked recurse query per prefix except `skip`, at `index`.
fn park_watchers(
    client: &reqwest::Client,
    base: &str,
    index: u64,
    skip: Option<usize>,
) -> Vec<tokio::task::JoinHandle<usize>> {
    (0..PREFIXES)
        .filter(|prefix| Some(*prefix) != skip)
        .map(|prefix| {
            let client = client.clone();
            let url = format!("{base}/v1/kv/pools/p{prefix:03}/?recurse&index={index}&wait=10m");
            tokio::spawn(async move {
                let response = client.get(url).send().await.expect("watch sent");
                response.bytes().await.expect("watch body").len()
            })
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let config = ConsulEmulatorConfig {
        addr: "127.0.0.1:0".parse().expect("valid address"),
        ..ConsulEmulatorConfig::default()
    };
    let consul = runtime
        .block_on(ConsulEmulator::start(config))
        .expect("emulator starts");
    let base = consul.url();
    let client = reqwest::Client::new();
    let index = runtime.block_on(fill(&client, &base));
    let watchers = runtime.block_on(async {
        let watchers = park_watchers(&client, &base, index, Some(42));
        // Give the queries time to park before measuring.
        tokio::time::sleep(Duration::from_millis(500)).await;
        watchers
    });

    let mut group = c.benchmark_group("consul_emulator");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));

    let mut counter = 0_u64;
    group.bench_function("PUT elsewhere, 99 prefix watchers blocked", |b| {
        b.iter(|| {
            counter += 1;
            runtime.block_on(async {
                let response = client
                    .put(format!("{base}/v1/kv/status/s{}", counter % 10))
                    .body(counter.to_string())
                    .send()
                    .await
                    .expect("write sent");
                assert!(response.status().is_success());
            })
        })
    });
    assert!(
        watchers.iter().all(|watcher| !watcher.is_finished()),
        "a write outside every watched prefix woke a watcher"
    );

    // Time from a write under pools/p042/ until its watcher has the whole response.
    group.bench_function("wake one prefix watcher (100 keys)", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                total += runtime.block_on(async {
                    let index = prefix_index(&client, &base).await;
                    let url = format!("{base}/v1/kv/pools/p042/?recurse&index={index}&wait=10m");
                    let waiter = tokio::spawn({
                        let client = client.clone();
                        async move {
                            let response = client.get(url).send().await.expect("watch sent");
                            let body = response.bytes().await.expect("watch body");
                            (Instant::now(), body.len())
                        }
                    });
                    // Give the query time to park before the write.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    let written = Instant::now();
                    let response = client
                        .put(format!("{base}/v1/kv/pools/p042/k000"))
                        .body(index.to_string())
                        .send()
                        .await
                        .expect("write sent");
                    assert!(response.status().is_success());
                    let (answered, length) = waiter.await.expect("waiter");
                    assert!(length > 1_000);
                    answered.duration_since(written)
                });
            }
            total
        })
    });
    group.finish();
    runtime.block_on(consul.shutdown());
}

/// Returns the current list index of `pools/p042/`.
async fn prefix_index(client: &reqwest::Client, base: &str) -> u64 {
    let response = client
        .get(format!("{base}/v1/kv/pools/p042/?keys"))
        .send()
        .await
        .expect("list sent");
    response.headers()["x-consul-index"]
        .to_str()
        .expect("ASCII index")
        .parse()
        .expect("numeric index")
}

criterion_group!(benches, bench);
criterion_main!(benches);
