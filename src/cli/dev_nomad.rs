//! `steward dev nomad`: runs the Nomad emulator until Ctrl-C.

use std::net::SocketAddr;

use anyhow::Context as _;
use clap::Args as ClapArgs;

use super::dev_consul::{parse_listen_addr, warn_if_exposed};
use super::{CliError, CliResult};
use crate::sim::nomad::{NomadEmulator, NomadEmulatorConfig};

/// Run an emulated Nomad cluster (jobs, nodes, scheduler, deployments, blocking queries, and
/// fault injection under /_sim/).
///
/// The defaults place the example pools: two datacenters `eu-west-1a` and `eu-west-1b` as
/// `face-match.yaml` expects, two `nvidia/gpu` devices per node, and node meta
/// `zone=rack-1` in the first datacenter and `zone=rack-2` in the second, as `ocr.yaml`
/// selects.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Address to listen on (host:port, such as 127.0.0.1:4646 or localhost:0); port 0 picks a
    /// free port.
    #[arg(long, default_value = "127.0.0.1:4646", value_parser = parse_listen_addr)]
    pub addr: SocketAddr,

    /// Nodes in each datacenter. Plain `steward dev --nodes` is the total instead.
    #[arg(long, default_value_t = 6)]
    pub nodes: usize,

    /// Comma-separated datacenter names, each listed once. Nodes of the k-th datacenter
    /// (from 1) get node meta `zone=rack-<k>`.
    #[arg(long, value_delimiter = ',', default_value = "eu-west-1a,eu-west-1b")]
    pub datacenters: Vec<String>,

    /// Simulated seconds per wall second: at 60, a six-minute image pull takes six seconds.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,

    /// `nvidia/gpu` devices per node.
    #[arg(long, default_value_t = 2)]
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

/// Builds the emulator configuration from the arguments, or a usage error naming the value
/// to fix.
pub fn config(args: Args) -> Result<NomadEmulatorConfig, CliError> {
    if args.nodes == 0 || args.datacenters.is_empty() {
        return Err(CliError::usage(anyhow::anyhow!(
            "--nodes {} with --datacenters {:?} creates no nodes: give at least one node and one datacenter",
            args.nodes,
            args.datacenters.join(",")
        )));
    }
    Ok(NomadEmulatorConfig {
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
        node_class: String::new(),
        zone_meta: true,
        ..NomadEmulatorConfig::default()
    })
}

/// Starts the emulator and serves until Ctrl-C.
pub async fn run(args: Args) -> CliResult {
    let config = config(args)?;
    warn_if_exposed("Nomad", config.addr, false);
    let nomad = NomadEmulator::start(config)
        .await
        .map_err(|error| match error {
            crate::sim::nomad::EmulatorError::Config(_) => CliError::usage(error),
            crate::sim::nomad::EmulatorError::Bind { .. } => CliError::failure(error),
        })?;
    super::output::println(format!("nomad emulator listening on {}", nomad.url()))?;

    tokio::signal::ctrl_c()
        .await
        .context("failed to wait for Ctrl-C")?;
    nomad.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::sim::nomad::build_cluster;

    #[derive(Debug, Parser)]
    struct Command {
        #[command(flatten)]
        args: Args,
    }

    fn parse(arguments: &[&str]) -> Result<Args, clap::Error> {
        let mut argv = vec!["dev-nomad"];
        argv.extend_from_slice(arguments);
        Command::try_parse_from(argv).map(|command| command.args)
    }

    #[test]
    fn defaults_build_zoned_gpu_nodes() {
        let args = parse(&[]).expect("defaults parse");
        let config = config(args).expect("defaults are valid");
        let cluster = build_cluster(&config, 0).expect("defaults build a cluster");

        assert_eq!(cluster.nodes.len(), 12);
        for node in cluster.nodes.values() {
            let expected_zone = match node.datacenter.as_str() {
                "eu-west-1a" => "rack-1",
                "eu-west-1b" => "rack-2",
                other => panic!("unexpected datacenter {other}"),
            };
            assert_eq!(
                node.meta.get("zone").map(String::as_str),
                Some(expected_zone),
                "{}",
                node.name
            );
            assert_eq!(node.capacity.gpus, 2, "{}", node.name);
        }
    }

    #[test]
    fn duplicate_datacenters_are_rejected() {
        let args = parse(&["--datacenters", "dc-a,dc-a"]).expect("arguments parse");
        let config = config(args).expect("arguments are valid");
        let error = build_cluster(&config, 0).expect_err("duplicate datacenter");
        assert!(
            error.to_string().contains("\"dc-a\" is listed twice"),
            "{error}"
        );
    }

    #[test]
    fn localhost_addr_resolves_to_loopback() {
        let args = parse(&["--addr", "localhost:0"]).expect("localhost parses");
        assert!(args.addr.ip().is_loopback(), "{}", args.addr);
        assert_eq!(args.addr.port(), 0);
    }
}
