//! `steward validate -f FILE|DIR [-f …]`: checks object files without contacting Consul or
//! Nomad.

use std::path::PathBuf;

use clap::Args as ClapArgs;

use super::{CliError, CliResult};
use crate::spec::{self, Document, LoadedDocument};

/// Check WorkerPool and Override files: syntax, schema, and the rules Steward and Nomad
/// enforce. Prints one line per valid document; on errors, prints each as
/// `FILE:LINE:COL: field.path: message` on stderr and exits with status 2.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// A file, a directory (every *.yaml, *.yml and *.json below it, recursively) or `-` for
    /// standard input. Repeat to check several; all are checked together, so two pools that
    /// claim the same Nomad job are caught across files.
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "FILE|DIR",
        required = true
    )]
    pub paths: Vec<PathBuf>,
}

/// Loads and checks every document; see [`Args`].
pub async fn run(args: Args) -> CliResult {
    match spec::load_paths(&args.paths) {
        Ok(documents) => {
            for loaded in &documents {
                println!("{}", summary(loaded));
            }
            println!(
                "{} valid document{}",
                documents.len(),
                if documents.len() == 1 { "" } else { "s" }
            );
            Ok(())
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

/// One line describing a valid document.
fn summary(loaded: &LoadedDocument) -> String {
    let detail = match &loaded.document {
        Document::WorkerPool(pool) => {
            let zones: Vec<&str> = pool.spec.zones.iter().map(|z| z.name.as_str()).collect();
            let sizing = match &pool.spec.autoscaling {
                Some(autoscaling) => format!(
                    "autoscaling every {} ({:?})",
                    autoscaling.interval, autoscaling.predictor
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
    format!(
        "{}#{}: {} {}: ok ({detail})",
        loaded.source,
        loaded.index,
        loaded.document.kind(),
        loaded.document.name()
    )
}
