//! The `steward` command line.
//!
//! Each subcommand lives in its own module with an `Args` type and an async `run`. Exit status
//! follows the official CLIs: 0 on success, 1 on failure, 2 on bad usage or invalid input.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod apply;
pub mod controller;
pub mod delete;
pub mod dev;
pub mod dev_consul;
pub mod dev_nomad;
mod diff;
pub mod get;
mod objects;
pub mod output;
pub mod override_cmd;
pub mod rollout;
pub mod schema;
pub mod signal;
pub mod simulate;
pub mod status;
pub mod validate;

/// An error at the command line's edge, with the exit status it maps to.
#[derive(Debug)]
pub struct CliError {
    /// 1 for a failure, 2 for bad usage or invalid input.
    pub code: u8,
    pub error: anyhow::Error,
}

impl CliError {
    /// A failure (exit status 1).
    pub fn failure(error: impl Into<anyhow::Error>) -> Self {
        Self {
            code: 1,
            error: error.into(),
        }
    }

    /// Bad usage or invalid input (exit status 2).
    pub fn usage(error: impl Into<anyhow::Error>) -> Self {
        Self {
            code: 2,
            error: error.into(),
        }
    }
}

impl From<anyhow::Error> for CliError {
    fn from(error: anyhow::Error) -> Self {
        Self::failure(error)
    }
}

/// Result of one subcommand.
pub type CliResult = Result<(), CliError>;

/// Steward keeps Nomad worker pools the way operators declared them in Consul KV.
#[derive(Debug, Parser)]
#[command(name = "steward", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the JSON Schema of an object kind.
    Schema(schema::Args),
    /// Check WorkerPool and Override files without contacting Consul or Nomad.
    ///
    /// Checks syntax, the JSON Schema, and the rules Steward and Nomad enforce. Prints one
    /// line per valid document and exits with 0. Otherwise prints each error on stderr as
    /// `FILE:LINE:COL: field.path: message` and exits with 2.
    Validate(validate::Args),
    /// Replay a traffic trace against a pool's sizing policy and compare predictors.
    Simulate(simulate::Args),
    /// Run the controller.
    Controller(Box<controller::Args>),
    /// Show the status of pools as the controller wrote it.
    Status(status::Args),
    /// Write WorkerPool and Override files to Consul KV.
    Apply(apply::Args),
    /// Show the pools stored in Consul KV.
    Get(get::Args),
    /// Delete a pool, or every object that files define (`-f`), from Consul KV.
    Delete(delete::Args),
    /// Set or clear a manual override of a pool's worker count.
    Override(override_cmd::Args),
    /// Run emulated servers for local work.
    Dev(dev::Args),
    /// Show or steer a pool's golden-first rollout.
    Rollout(rollout::Args),
}

impl Cli {
    /// Runs the chosen subcommand and maps its result to an exit status.
    pub async fn run(self) -> ExitCode {
        let result: CliResult = match self.command {
            Command::Schema(args) => schema::run(args).await,
            Command::Validate(args) => validate::run(args).await,
            Command::Simulate(args) => simulate::run(args).await,
            Command::Controller(args) => controller::run(*args).await,
            Command::Status(args) => status::run(args).await,
            Command::Apply(args) => apply::run(args).await,
            Command::Get(args) => get::run(args).await,
            Command::Delete(args) => delete::run(args).await,
            Command::Override(args) => override_cmd::run(args).await,
            Command::Dev(args) => dev::run(args).await,
            Command::Rollout(args) => rollout::run(args).await,
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(CliError { code, error }) => {
                eprintln!("error: {error:#}");
                ExitCode::from(code)
            }
        }
    }
}
