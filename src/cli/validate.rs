//! `steward validate -f FILE|DIR [-f …]`: checks object files without contacting Consul or
//! Nomad.

use std::path::PathBuf;

use clap::Args as ClapArgs;

use super::{CliError, CliResult, output};
use crate::spec::{self, Document, LoadedDocument};

/// Options of `steward validate`.
#[derive(Debug, ClapArgs)]
#[command(
    override_usage = "steward validate -f <FILE|DIR> [-f <FILE|DIR>]...",
    after_long_help = "\
Exit status: 0 when every document is valid; 2 when any is invalid or a file cannot be read."
)]
pub struct Args {
    /// A file, a directory (every *.yaml, *.yml and *.json below it, recursively) or `-` for
    /// standard input. Repeat it to check several. They are checked together, so two pools
    /// that claim the same Nomad job are caught across files.
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "FILE|DIR",
        required = true
    )]
    pub paths: Vec<PathBuf>,
}

/// Loads and checks every document, printing a summary or the errors.
pub async fn run(args: Args) -> CliResult {
    match spec::load_paths(&args.paths) {
        Ok(documents) => {
            for loaded in &documents {
                output::println(summary(loaded))?;
            }
            output::println(format_args!(
                "{} valid document{}",
                documents.len(),
                if documents.len() == 1 { "" } else { "s" }
            ))
        }
        Err(report) => {
            for error in &report.errors {
                eprintln!("{error}");
            }
            let count = report.errors.len();
            Err(CliError::usage(anyhow::anyhow!(
                "{count} error{} found",
                if count == 1 { "" } else { "s" }
            )))
        }
    }
}

/// Formats one line that describes a valid document.
fn summary(loaded: &LoadedDocument) -> String {
    let detail = match &loaded.document {
        Document::WorkerPool(pool) => {
            let zones: Vec<&str> = pool.spec.zones.iter().map(|z| z.name.as_str()).collect();
            let sizing = match &pool.spec.autoscaling {
                Some(autoscaling) => format!(
                    "autoscaling every {} with {}",
                    autoscaling.interval,
                    predictor_name(autoscaling.predictor)
                ),
                None => "fixed at min".to_owned(),
            };
            format!(
                "job {}/{}, version {}, workers {}..{}, zones {}, {sizing}",
                pool.job_namespace(),
                pool.job_id(),
                pool.spec.version,
                pool.spec.workers.min,
                pool.spec.workers.max,
                zones.join(",")
            )
        }
        Document::Override(item) => format!(
            "workers {} until {}{}",
            item.spec.workers,
            item.spec.until,
            if item.spec.force { " (force)" } else { "" }
        ),
    };
    // Only later documents of a file get a number, so the common one-object file reads plainly.
    let location = if loaded.index == 0 {
        loaded.source.clone()
    } else {
        format!("{} (document {})", loaded.source, loaded.index + 1)
    };
    format!(
        "{location}: {} {} is valid ({detail})",
        loaded.document.kind(),
        loaded.document.name()
    )
}

/// Returns the predictor's name as written in objects, such as `linear-slope`.
fn predictor_name(predictor: crate::spec::Predictor) -> String {
    match serde_json::to_value(predictor) {
        Ok(serde_json::Value::String(name)) => name,
        _ => format!("{predictor:?}"),
    }
}
