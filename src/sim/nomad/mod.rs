//! An emulator of Nomad's HTTP API (`steward dev nomad`): nodes, jobs, a scheduler,
//! allocation lifecycle with image pulls and health, deployments with canaries, drains,
//! blocking queries and fault injection under `/_sim/`.
//!
//! Time is simulated ([`clock::SimClock`]): at `speed` N, N simulated seconds pass per wall
//! second. A ticker advances the state machine every [`TICK`] of wall time.

pub mod clock;
pub mod defaults;
pub mod events;
pub mod http;
pub mod jobs;
pub mod lifecycle;
pub mod nodes;
pub mod placement;
pub mod render;
pub mod scheduler;
pub mod state;
pub mod validate;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use clock::SimClock;
pub use http::Shared;
pub use nodes::NodeSpec;
pub use state::Cluster;

/// Wall time between two ticks of the state machine.
pub const TICK: Duration = Duration::from_millis(10);

/// Errors starting the emulator. Both are permanent for the given configuration.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// The listen address could not be bound (in use, or not a local address).
    #[error("failed to bind the Nomad emulator to {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The configuration is invalid; the message names the value and the fix.
    #[error("invalid Nomad emulator configuration: {0}")]
    Config(String),
}

/// How to build the emulated cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct NomadEmulatorConfig {
    /// Listen address; port 0 picks a free one.
    pub addr: SocketAddr,
    /// Datacenter names; `nodes_per_dc` nodes are created in each.
    pub datacenters: Vec<String>,
    pub nodes_per_dc: usize,
    /// Extra nodes with their own shapes, added after the uniform ones.
    pub node_specs: Vec<NodeSpec>,
    /// Simulated seconds per wall second; must be positive.
    pub speed: f64,
    /// `nvidia/gpu` devices per node.
    pub gpus: i64,
    /// CPU cores per node.
    pub cores: i64,
    pub memory_mb: i64,
    /// CPU per node in MHz.
    pub cpu_mhz: i64,
    /// Seed of the ID generator.
    pub seed: u64,
    /// Node class of the uniform nodes; empty for none.
    pub node_class: String,
    /// Gives the uniform nodes of datacenter k (counting from 0 in `datacenters` order) the
    /// node meta `zone=rack-<k+1>`. Without it, `zone` alternates `odd` and `even`.
    pub zone_meta: bool,
    /// Raft-index entries the event stream keeps for resuming (Nomad's `event_buffer_size`,
    /// default 100); at least 1.
    pub event_buffer_size: usize,
    /// Wall time between two heartbeat lines on an event stream (30 s in Nomad); more than 0.
    pub event_heartbeat: Duration,
    /// A clock to share with other components, such as the controller and the traffic replay
    /// of `steward dev`, so that all of them read the same simulated time. `None` starts a
    /// clock at `speed`; a given clock's own speed wins over `speed`.
    pub clock: Option<SimClock>,
}

impl Default for NomadEmulatorConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 4646)),
            datacenters: vec!["dc1".to_owned()],
            nodes_per_dc: 3,
            node_specs: Vec::new(),
            speed: 1.0,
            gpus: 0,
            cores: 16,
            memory_mb: 65_536,
            cpu_mhz: 32_000,
            seed: 1,
            node_class: String::new(),
            zone_meta: false,
            event_buffer_size: events::DEFAULT_EVENT_BUFFER_SIZE,
            event_heartbeat: events::DEFAULT_EVENT_HEARTBEAT,
            clock: None,
        }
    }
}

/// Returns the shape of a uniform node in datacenter `zone` (an index into
/// `config.datacenters`): the configured CPU, memory, cores, GPUs and node class, in node
/// pool `default`, with meta `zone=rack-<zone+1>` when `config.zone_meta` is set.
///
/// `steward dev` spreads its nodes over the datacenters with
/// `(0..nodes).map(|i| zone_node_spec(&config, i % config.datacenters.len()))`.
///
/// # Panics
///
/// Panics if `zone` is not an index into `config.datacenters`.
pub fn zone_node_spec(config: &NomadEmulatorConfig, zone: usize) -> NodeSpec {
    let mut meta = BTreeMap::new();
    if config.zone_meta {
        meta.insert("zone".to_owned(), format!("rack-{}", zone + 1));
    }
    NodeSpec {
        datacenter: config.datacenters[zone].clone(),
        node_class: config.node_class.clone(),
        node_pool: "default".to_owned(),
        meta,
        cpu_mhz: config.cpu_mhz,
        memory_mb: config.memory_mb,
        cores: config.cores,
        gpus: config.gpus,
    }
}

/// Builds the cluster a configuration describes, without starting a server.
pub fn build_cluster(config: &NomadEmulatorConfig, now_ns: i64) -> Result<Cluster, EmulatorError> {
    if !(config.speed.is_finite() && config.speed > 0.0) {
        return Err(EmulatorError::Config(format!(
            "speed {} must be a positive number, such as 60",
            config.speed
        )));
    }
    if config.datacenters.iter().any(String::is_empty) {
        return Err(EmulatorError::Config(
            "a datacenter name is empty: list names such as dc-a,dc-b".to_owned(),
        ));
    }
    if config.event_buffer_size == 0 {
        return Err(EmulatorError::Config(
            "event buffer size 0 is invalid: keep at least 1 index, such as the default 100"
                .to_owned(),
        ));
    }
    if config.event_heartbeat.is_zero() {
        return Err(EmulatorError::Config(
            "event heartbeat interval 0 is invalid: use a positive duration, such as 30 s"
                .to_owned(),
        ));
    }
    for (position, datacenter) in config.datacenters.iter().enumerate() {
        if config.datacenters[..position].contains(datacenter) {
            return Err(EmulatorError::Config(format!(
                "datacenter {datacenter:?} is listed twice: list each datacenter once"
            )));
        }
    }

    let mut cluster = Cluster::new(config.seed);
    for zone in 0..config.datacenters.len() {
        let spec = zone_node_spec(config, zone);
        for _ in 0..config.nodes_per_dc {
            nodes::add_node(&mut cluster, &spec, now_ns);
        }
    }
    for spec in &config.node_specs {
        nodes::add_node(&mut cluster, spec, now_ns);
    }
    Ok(cluster)
}

/// The emulator's entry point.
pub struct NomadEmulator;

impl NomadEmulator {
    /// Builds the cluster, binds the listener and starts the HTTP server and the ticker.
    pub async fn start(config: NomadEmulatorConfig) -> Result<RunningNomad, EmulatorError> {
        Self::start_prepared(config, |_, _| {}).await
    }

    /// Like [`NomadEmulator::start`], but first lets `prepare` fill the cluster directly
    /// (given the simulated time in Unix ns), for benchmarks that need large states quickly.
    pub async fn start_prepared(
        config: NomadEmulatorConfig,
        prepare: impl FnOnce(&mut Cluster, i64),
    ) -> Result<RunningNomad, EmulatorError> {
        let clock = config
            .clock
            .unwrap_or_else(|| SimClock::starting_now(config.speed));
        let mut cluster = build_cluster(&config, clock.now_ns())?;
        prepare(&mut cluster, clock.now_ns());
        let events = events::EventHub::new(config.event_buffer_size, config.event_heartbeat);
        let shared = Arc::new(Shared::with_events(cluster, clock, events));

        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .map_err(|source| EmulatorError::Bind {
                addr: config.addr,
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| EmulatorError::Bind {
                addr: config.addr,
                source,
            })?;
        let cancel = CancellationToken::new();

        let server_cancel = cancel.clone();
        let app = http::router(Arc::clone(&shared));
        let server = tokio::spawn(async move {
            let result = axum::serve(listener, app)
                .with_graceful_shutdown(server_cancel.cancelled_owned())
                .await;
            if let Err(error) = result {
                tracing::error!(%error, "nomad emulator server stopped");
            }
        });

        let ticker_shared = Arc::clone(&shared);
        let ticker_cancel = cancel.clone();
        let ticker = tokio::spawn(async move {
            let mut interval = tokio::time::interval(TICK);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    // Shutdown requested.
                    () = ticker_cancel.cancelled() => break,
                    // Next step of the state machine.
                    _ = interval.tick() => {
                        ticker_shared.write(lifecycle::tick);
                    }
                }
            }
        });

        tracing::info!(%addr, speed = clock.speed(), "nomad emulator started");
        Ok(RunningNomad {
            addr,
            shared,
            cancel,
            tasks: vec![server, ticker],
        })
    }
}

/// A running emulator. Dropping it without [`RunningNomad::shutdown`] leaves the tasks
/// running until the runtime stops.
pub struct RunningNomad {
    addr: SocketAddr,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningNomad {
    /// Returns the bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Returns the base URL, such as `http://127.0.0.1:4646`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Direct access to the cluster state, for tests and the live view.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Returns a summary of the cluster (what `GET /_sim/state` serves).
    pub fn state(&self) -> StateSummary {
        state_summary(&self.shared.lock(), self.shared.clock.now_ns())
    }

    /// Adds a node, as a new client joining the cluster, and returns its ID.
    pub fn add_node(&self, spec: &NodeSpec) -> String {
        self.shared
            .write(|cluster, now| nodes::add_node(cluster, spec, now))
    }

    /// Stops the server and the ticker and waits for them.
    pub async fn shutdown(self) {
        self.shared.events.end_streams();
        self.cancel.cancel();
        for task in self.tasks {
            if let Err(error) = task.await {
                tracing::warn!(%error, "nomad emulator task ended abnormally");
            }
        }
    }
}

/// A compact view of the cluster for tests and `steward dev`'s live view.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StateSummary {
    /// Simulated Unix time in nanoseconds.
    pub now_ns: i64,
    pub index: u64,
    pub nodes: Vec<NodeSummary>,
    pub jobs: Vec<JobSummaryView>,
    pub allocations_by_status: BTreeMap<String, u64>,
    pub active_deployments: u64,
    pub blocked_evaluations: u64,
}

/// One node in [`StateSummary`].
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodeSummary {
    pub id: String,
    pub name: String,
    pub datacenter: String,
    pub status: String,
    pub eligibility: String,
    pub draining: bool,
    pub live_allocations: u64,
    pub cached_images: Vec<String>,
}

/// One job in [`StateSummary`].
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JobSummaryView {
    pub id: String,
    pub namespace: String,
    pub version: u64,
    pub status: String,
    pub running: u64,
    pub pending: u64,
}

/// Summarizes the cluster.
pub fn state_summary(cluster: &Cluster, now_ns: i64) -> StateSummary {
    let mut allocations_by_status = BTreeMap::new();
    for alloc in cluster.allocs.values() {
        *allocations_by_status
            .entry(alloc.client_status.as_str().to_owned())
            .or_default() += 1;
    }
    let nodes = cluster
        .nodes
        .values()
        .map(|node| {
            let mut cached_images: Vec<String> = node.image_cache.iter().cloned().collect();
            cached_images.sort();
            NodeSummary {
                id: node.id.clone(),
                name: node.name.clone(),
                datacenter: node.datacenter.clone(),
                status: node.status.clone(),
                eligibility: node.eligibility.clone(),
                draining: node.drain.is_some(),
                live_allocations: cluster
                    .node_allocs(&node.id)
                    .filter(|a| a.is_live())
                    .count() as u64,
                cached_images,
            }
        })
        .collect();
    let jobs = cluster
        .jobs
        .iter()
        .map(|(key, entry)| {
            let allocs: Vec<_> = cluster.job_allocs(key).filter(|a| a.is_live()).collect();
            JobSummaryView {
                id: key.1.clone(),
                namespace: key.0.clone(),
                version: entry.job.version.unwrap_or(0),
                status: entry.job.status.clone().unwrap_or_default(),
                running: allocs
                    .iter()
                    .filter(|a| a.client_status == state::ClientStatus::Running)
                    .count() as u64,
                pending: allocs
                    .iter()
                    .filter(|a| a.client_status == state::ClientStatus::Pending)
                    .count() as u64,
            }
        })
        .collect();
    StateSummary {
        now_ns,
        index: cluster.raft_index,
        nodes,
        jobs,
        allocations_by_status,
        active_deployments: cluster
            .deployments
            .values()
            .filter(|d| d.status.is_active())
            .count() as u64,
        blocked_evaluations: cluster.blocked_jobs.len() as u64,
    }
}
