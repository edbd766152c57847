//! `steward dev consul`: runs the Consul emulator until Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args as ClapArgs;

use super::{CliError, CliResult};
use crate::sim::consul::{ConsulEmulator, ConsulEmulatorConfig};

/// Run an emulated Consul agent (KV, transactions, sessions, blocking queries).
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8500")]
    pub addr: SocketAddr,

    /// Directory that keeps the KV and sessions across restarts; memory only without it.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,

    /// Require this ACL token on every request, as a management token under a default-deny
    /// policy.
    #[arg(long, env = "STEWARD_DEV_CONSUL_ACL_TOKEN", hide_env_values = true)]
    pub acl_token: Option<String>,
}

/// Starts the emulator and serves until Ctrl-C.
pub async fn run(args: Args) -> CliResult {
    let config = ConsulEmulatorConfig {
        addr: args.addr,
        data_dir: args.data_dir,
        acl_token: args.acl_token,
        ..ConsulEmulatorConfig::default()
    };
    let consul = ConsulEmulator::start(config)
        .await
        .map_err(CliError::failure)?;
    println!("consul emulator listening on {}", consul.url());

    let cancel = consul.cancel_token();
    tokio::select! {
        // Ctrl-C stops the server gracefully.
        result = tokio::signal::ctrl_c() => {
            result.context("failed to wait for Ctrl-C")?;
            cancel.cancel();
        }
        // The token is also cancelled if the server stops by itself.
        _ = cancel.cancelled() => {}
    }
    consul.shutdown().await;
    Ok(())
}
