//! The Nomad emulator end to end over HTTP on 127.0.0.1: scheduling, lifecycle,
//! deployments, drains, sysbatch, blocking queries and fault injection.

mod blocking;
mod deployments;
mod dev_defaults;
mod events;
mod indexes;
mod jobs;
mod nodes;
mod pagination;
mod validation;

use std::future::Future;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use steward::sim::nomad::{NomadEmulator, NomadEmulatorConfig, RunningNomad};

/// Simulated seconds per wall second in these tests: a 10 s MinHealthyTime takes 17 ms.
const SPEED: f64 = 600.0;
/// How long a test waits for a condition before failing, in wall time. Conditions are
/// expected within a fraction of this; it only bounds a broken run.
const PATIENCE: Duration = Duration::from_secs(30);

/// A started emulator and an HTTP client for it.
pub(crate) struct Harness {
    pub nomad: RunningNomad,
    pub client: reqwest::Client,
}

/// A response: status, headers and body text.
pub(crate) struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|error| panic!("body is not JSON ({error}): {}", self.text))
    }

    pub fn parse<T: DeserializeOwned>(&self) -> T {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|error| panic!("body does not parse ({error}): {}", self.text))
    }

    pub fn index(&self) -> u64 {
        self.headers
            .get("X-Nomad-Index")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("missing X-Nomad-Index: {:?}", self.headers))
    }
}

impl Harness {
    /// Starts an emulator with `nodes_per_dc` nodes in each datacenter.
    pub async fn start(datacenters: &[&str], nodes_per_dc: usize) -> Self {
        Self::start_with(NomadEmulatorConfig {
            datacenters: datacenters.iter().map(|dc| (*dc).to_owned()).collect(),
            nodes_per_dc,
            ..config()
        })
        .await
    }

    pub async fn start_with(config: NomadEmulatorConfig) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let nomad = NomadEmulator::start(config)
            .await
            .expect("emulator starts on 127.0.0.1:0");
        Self {
            nomad,
            client: reqwest::Client::new(),
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.client.get(format!("{}{path}", self.nomad.url())))
            .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send(
            self.client
                .post(format!("{}{path}", self.nomad.url()))
                .json(body),
        )
        .await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Reply {
        self.send(
            self.client
                .put(format!("{}{path}", self.nomad.url()))
                .json(body),
        )
        .await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(self.client.delete(format!("{}{path}", self.nomad.url())))
            .await
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("request reaches the emulator");
        Reply {
            status: response.status(),
            headers: response.headers().clone(),
            text: response.text().await.expect("body is readable"),
        }
    }

    /// Registers a job wrapped as `{"Job": …}` and asserts success.
    pub async fn register(&self, job: Value) -> Value {
        let reply = self.post("/v1/jobs", &json!({ "Job": job })).await;
        assert_eq!(reply.status, StatusCode::OK, "register: {}", reply.text);
        reply.json()
    }

    /// Returns the job's allocation stubs.
    pub async fn allocs(&self, job: &str) -> Vec<steward::nomad::AllocListStub> {
        self.get(&format!("/v1/job/{job}/allocations"))
            .await
            .parse()
    }

    /// Polls `check` until it returns `Some`, failing after [`PATIENCE`].
    pub async fn eventually<T, F, Fut>(&self, what: &str, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Some(value) = check().await {
                return value;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}; state: {:?}",
                self.nomad.state()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until `count` allocations of `job` are running, and returns the live ones.
    pub async fn running(&self, job: &str, count: usize) -> Vec<steward::nomad::AllocListStub> {
        self.eventually(&format!("{count} running allocations of {job}"), || async {
            let live: Vec<_> = self
                .allocs(job)
                .await
                .into_iter()
                .filter(|alloc| alloc.desired_status.as_str() == "run")
                .filter(|alloc| alloc.client_status.as_str() == "running")
                .collect();
            (live.len() == count).then_some(live)
        })
        .await
    }
}

pub(crate) fn config() -> NomadEmulatorConfig {
    NomadEmulatorConfig {
        addr: "127.0.0.1:0".parse().expect("valid address"),
        speed: SPEED,
        ..NomadEmulatorConfig::default()
    }
}

/// Builds a service job with one docker task.
pub(crate) fn service_job(id: &str, count: i64, image: &str) -> Value {
    json!({
        "ID": id,
        "Type": "service",
        "Datacenters": ["*"],
        "TaskGroups": [{
            "Name": "web",
            "Count": count,
            "Tasks": [{
                "Name": "app",
                "Driver": "docker",
                "Config": {"image": image},
                "Resources": {"CPU": 500, "MemoryMB": 256}
            }]
        }]
    })
}
