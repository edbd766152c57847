//! An emulator of the Consul HTTP API: KV, transactions, sessions and blocking queries.
//!
//! It serves the calls Steward makes with Consul's paths, JSON field names, headers and
//! status codes, so the same client works against it and against a real Consul 1.x agent.
//! Fault injection lives under `/_sim/`:
//!
//! - `POST /_sim/unavailable` with `{"seconds": N}`: every `/v1/` request gets 503 for N s.
//! - `POST /_sim/snapshot`, then `POST /_sim/restore`: restore the saved state. Indexes go
//!   backwards and blocked queries return at once, as after a Consul snapshot restore.
//! - `POST /_sim/reap-tombstones`: forget deleted keys, so list indexes can go backwards.

mod http;
mod store;
mod txn;
mod watch;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Settings of one emulated Consul agent.
#[derive(Debug, Clone)]
pub struct ConsulEmulatorConfig {
    /// Address to listen on; `127.0.0.1:0` picks a free port.
    pub addr: SocketAddr,
    /// Directory that keeps the state across restarts (`state.json`); memory only when `None`.
    pub data_dir: Option<PathBuf>,
    /// When set, every `/v1/` request except `/v1/status/*` must carry this token
    /// (`X-Consul-Token` or `Authorization: Bearer`), as with a management token under a
    /// default-deny ACL policy.
    pub acl_token: Option<String>,
    /// The transaction operation limit: 128 as in Consul 1.14 and later, 64 before.
    pub txn_max_ops: usize,
    /// The shortest session TTL accepted. Consul's is 10 s; tests may lower it.
    pub min_session_ttl: Duration,
    /// A session expires after TTL × this factor without renewal. Consul uses 2.
    pub session_ttl_multiplier: u32,
    /// The node name that sessions get when the request names none.
    pub node_name: String,
    /// The agent's datacenter. A request naming another one with `?dc=` fails with 500
    /// `No path to datacenter`, because the emulator has no WAN peers.
    pub datacenter: String,
}

impl Default for ConsulEmulatorConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8500)),
            data_dir: None,
            acl_token: None,
            txn_max_ops: 128,
            min_session_ttl: Duration::from_secs(10),
            session_ttl_multiplier: 2,
            node_name: "steward-dev".to_string(),
            datacenter: "dc1".to_string(),
        }
    }
}

/// Failure to start the emulator.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The address could not be bound (permanent for this address).
    #[error("failed to listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The state file in the data directory could not be read or parsed (permanent).
    #[error("failed to load state from {path}: {message}")]
    LoadState { path: PathBuf, message: String },
}

/// A running emulator. Dropping it leaves the server running until [`RunningConsul::shutdown`]
/// or the end of the runtime.
#[derive(Debug)]
pub struct RunningConsul {
    addr: SocketAddr,
    cancel: CancellationToken,
    server: JoinHandle<()>,
}

impl RunningConsul {
    /// Returns the bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Returns the base URL, such as `http://127.0.0.1:8500`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting requests and waits for the server task to end.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        if let Err(error) = self.server.await {
            tracing::warn!(%error, "consul emulator task failed");
        }
    }

    /// Waits until the server stops (after Ctrl-C handling by the caller cancels it).
    pub async fn wait(self) {
        if let Err(error) = self.server.await {
            tracing::warn!(%error, "consul emulator task failed");
        }
    }

    /// Returns a token that stops the server when cancelled.
    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }
}

/// The emulator entry point.
pub struct ConsulEmulator;

impl ConsulEmulator {
    /// Binds `config.addr`, loads the data directory if any, and serves in a background task.
    pub async fn start(config: ConsulEmulatorConfig) -> Result<RunningConsul, StartError> {
        let cancel = CancellationToken::new();
        let shared = Arc::new(http::Shared::load(config.clone(), cancel.clone())?);

        let listener = TcpListener::bind(config.addr)
            .await
            .map_err(|source| StartError::Bind {
                addr: config.addr,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.addr,
            source,
        })?;

        let reaper = tokio::spawn(http::expire_sessions_loop(shared.clone(), cancel.clone()));
        let router = http::router(shared);
        let shutdown = cancel.clone();
        let server = tokio::spawn(async move {
            let serve = axum::serve(listener, router)
                .with_graceful_shutdown(async move { shutdown.cancelled().await });
            if let Err(error) = serve.await {
                tracing::error!(%error, "consul emulator server failed");
            }
            reaper.abort();
        });
        tracing::info!(%addr, data_dir = ?config.data_dir, acl = config.acl_token.is_some(), "consul emulator started");
        Ok(RunningConsul {
            addr,
            cancel,
            server,
        })
    }
}
