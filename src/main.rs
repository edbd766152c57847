#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use steward::cli::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    Cli::parse().run().await
}
