//! `steward schema [KIND]`: prints the JSON Schema of an object kind.

use clap::{Args as ClapArgs, ValueEnum};

use super::{CliResult, output};
use crate::spec;

/// Object kinds that have a schema.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Kind {
    #[value(name = "WorkerPool", alias = "workerpool", alias = "pool")]
    WorkerPool,
    #[value(name = "Override", alias = "override")]
    Override,
}

/// Print the JSON Schema (draft-07) of an object kind.
#[derive(Debug, ClapArgs)]
#[command(
    after_long_help = "Exit status: 0 on success; 1 when standard output cannot be written; 2 for bad usage."
)]
pub struct Args {
    /// The kind whose schema to print.
    #[arg(value_enum, default_value = "WorkerPool")]
    pub kind: Kind,
}

/// Prints the schema as pretty JSON on stdout.
pub async fn run(args: Args) -> CliResult {
    let schema = match args.kind {
        Kind::WorkerPool => spec::workerpool_schema(),
        Kind::Override => spec::override_schema(),
    };
    let text = serde_json::to_string_pretty(&schema).map_err(anyhow::Error::from)?;
    output::println(text)
}
