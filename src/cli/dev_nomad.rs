//! `steward dev nomad`: runs the Nomad emulator until Ctrl-C.

use std::net::SocketAddr;

use anyhow::Context as _;
use clap::Args as ClapArgs;

use super::{CliError, CliResult};
use crate::sim::nomad::{NomadEmulator, NomadEmulatorConfig};

/// Run an emulated Nomad cluster (jobs, nodes, scheduler, deployments, blocking queries, and
/// fault injection under /_sim/).
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:4646")]
    pub addr: SocketAddr,

    /// Nodes in each datacenter.
    #[arg(long, default_value_t = 8)]
    pub nodes: usize,

    /// Comma-separated datacenter names.
    #[arg(long, value_delimiter = ',', default_value = "dc-a,dc-b")]
    pub datacenters: Vec<String>,

    /// Simulated seconds per wall second: at 60, a six-minute image pull takes six seconds.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,

    /// `nvidia/gpu` devices per node.
    #[arg(long, default_value_t = 0)]
    pub gpus_per_node: i64,

    /// CPU cores per node.
    #[arg(long, default_value_t = 16)]
    pub cores_per_node: i64,

    /// Memory per node, in MB.
    #[arg(long, default_value_t = 65_536)]
    pub memory_mb: i64,

    /// CPU per node, in MHz.
    #[arg(long, default_value_t = 32_000)]
    pub cpu_mhz: i64,

    /// Seed for generated IDs; the same seed gives the same node IDs.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Starts the emulator and serves until Ctrl-C.
pub async fn run(args: Args) -> CliResult {
    if args.nodes == 0 || args.datacenters.is_empty() {
        return Err(CliError::usage(anyhow::anyhow!(
            "--nodes {} with --datacenters {:?} creates no nodes: give at least one node and one datacenter",
            args.nodes,
            args.datacenters.join(",")
        )));
    }
    let config = NomadEmulatorConfig {
        addr: args.addr,
        datacenters: args.datacenters,
        nodes_per_dc: args.nodes,
        node_specs: Vec::new(),
        speed: args.speed,
        gpus: args.gpus_per_node,
        cores: args.cores_per_node,
        memory_mb: args.memory_mb,
        cpu_mhz: args.cpu_mhz,
        seed: args.seed,
    };
    let nomad = NomadEmulator::start(config)
        .await
        .map_err(|error| match error {
            crate::sim::nomad::EmulatorError::Config(_) => CliError::usage(error),
            crate::sim::nomad::EmulatorError::Bind { .. } => CliError::failure(error),
        })?;
    println!("nomad emulator listening on {}", nomad.url());

    tokio::signal::ctrl_c()
        .await
        .context("failed to wait for Ctrl-C")?;
    nomad.shutdown().await;
    Ok(())
}
