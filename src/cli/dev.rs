//! `steward dev [SUBCOMMAND]`: runs emulated servers for local work.

use clap::{Args as ClapArgs, Subcommand};

use super::{CliError, CliResult, dev_consul, dev_nomad};

/// Run emulated servers on loopback. Give a subcommand to run one emulator alone.
#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<DevCommand>,
}

#[derive(Debug, Subcommand)]
pub enum DevCommand {
    /// Run the emulated Consul alone.
    Consul(dev_consul::Args),
    /// Run the emulated Nomad alone.
    Nomad(dev_nomad::Args),
}

/// Runs the chosen emulator.
pub async fn run(args: Args) -> CliResult {
    match args.command {
        Some(DevCommand::Consul(consul)) => dev_consul::run(consul).await,
        Some(DevCommand::Nomad(nomad)) => dev_nomad::run(nomad).await,
        // TODO: plain `steward dev` runs the emulated Consul and Nomad, the traffic replay and
        // the controller together; until that exists, it requires a subcommand.
        None => Err(CliError::usage(anyhow::anyhow!(
            "`steward dev` without a subcommand is not available yet; run `steward dev consul` or `steward dev nomad`"
        ))),
    }
}
