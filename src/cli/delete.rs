//! `steward delete NAME` and `steward delete -f FILE`: remove objects from Consul KV.

use std::path::PathBuf;

use clap::Args as ClapArgs;

use super::objects;
use super::{CliError, CliResult, output};
use crate::consul::{ConsulArgs, ConsulClient, Error as ConsulError, Keys, TxnOp};
use crate::spec::{self, Document};

/// Delete a WorkerPool from Consul KV, or every object that files define, as `kubectl delete
/// -f` does. A pool's override stays under its own key unless a file lists it too.
#[derive(Debug, ClapArgs)]
#[command(after_long_help = "\
Exit status: 0 when everything named was deleted; 1 when an object is not found, changed \
during the delete, or Consul cannot be reached (nothing is deleted then); 2 for bad usage or \
an invalid file.")]
pub struct Args {
    /// The pool's name.
    #[arg(required_unless_present = "paths", conflicts_with = "paths")]
    pub name: Option<String>,

    /// A file, a directory (every *.yaml, *.yml and *.json below it) or `-` for standard
    /// input: delete the WorkerPools and Overrides it defines. Repeat to name several.
    #[arg(short = 'f', long = "filename", value_name = "FILE|DIR")]
    pub paths: Vec<PathBuf>,

    #[command(flatten)]
    pub consul: ConsulArgs,
}

/// Deletes the pool, or the objects of the files, with check-and-set on the indexes just
/// read; see [`Args`].
pub async fn run(args: Args) -> CliResult {
    match &args.name {
        Some(name) => delete_pool(&args, name).await,
        None => delete_files(&args).await,
    }
}

async fn delete_pool(args: &Args, name: &str) -> CliResult {
    objects::check_name(name)?;
    let (client, keys) = objects::connect(&args.consul)?;

    let Some(stored) = objects::read_pool(&client, &keys, name).await? else {
        return Err(CliError::failure(anyhow::anyhow!(
            "pool {name:?} not found at {}",
            keys.pool(name)
        )));
    };
    match client
        .kv_delete(&stored.key, Some(stored.modify_index))
        .await
    {
        Ok(()) => output::println(format_args!("pool/{name} deleted"))?,
        Err(error @ ConsulError::CasConflict { .. }) => {
            return Err(CliError::failure(anyhow::Error::new(error).context(
                format!("pool/{name} changed while it was being deleted; it was kept"),
            )));
        }
        Err(error) => {
            return Err(CliError::failure(
                anyhow::Error::new(error).context("failed to delete the pool"),
            ));
        }
    }

    if objects::read_override(&client, &keys, name)
        .await?
        .is_some()
    {
        output::println(format_args!(
            "override/{name} remains; remove it with `steward override clear {name}`"
        ))?;
    }
    Ok(())
}

/// One object a file names: its label (`pool/web`) and its key.
struct Target {
    label: String,
    key: String,
}

async fn delete_files(args: &Args) -> CliResult {
    // An override whose `until` has passed is still a key to delete.
    let documents = match spec::load_paths_at(&args.paths, None) {
        Ok(documents) => documents,
        Err(report) => {
            for error in &report.errors {
                eprintln!("{error}");
            }
            return Err(CliError::usage(anyhow::anyhow!(
                "{} error{} found; nothing was deleted",
                report.errors.len(),
                if report.errors.len() == 1 { "" } else { "s" }
            )));
        }
    };
    let (client, keys) = objects::connect(&args.consul)?;

    let targets: Vec<Target> = documents
        .iter()
        .map(|loaded| target(&keys, &loaded.document))
        .collect();
    let (ops, missing) = read_indexes(&client, &targets).await?;
    if !missing.is_empty() {
        return Err(CliError::failure(anyhow::anyhow!(
            "not found: {}; nothing was deleted",
            missing.join(", ")
        )));
    }

    // NOTE: more deletes than fit in one transaction go out in several, and only each
    // batch is atomic then. Every delete still checks its ModifyIndex.
    let result = if ops.len() <= client.txn_max_ops() {
        client.txn(&ops).await
    } else {
        client.txn_batched(&ops).await
    };
    match result {
        Ok(_) => {}
        Err(error @ ConsulError::TxnRollback { .. }) => {
            return Err(CliError::failure(anyhow::Error::new(error).context(
                "an object changed while it was being deleted; nothing was deleted",
            )));
        }
        Err(error) => {
            return Err(CliError::failure(
                anyhow::Error::new(error).context("failed to delete the objects"),
            ));
        }
    }
    for target in &targets {
        output::println(format_args!("{} deleted", target.label))?;
    }
    Ok(())
}

fn target(keys: &Keys, document: &Document) -> Target {
    match document {
        Document::WorkerPool(pool) => Target {
            label: format!("pool/{}", pool.metadata.name),
            key: keys.pool(&pool.metadata.name),
        },
        Document::Override(item) => Target {
            label: format!("override/{}", item.metadata.name),
            key: keys.override_(&item.metadata.name),
        },
    }
}

/// Returns a check-and-set delete for each stored target, and the labels of the targets
/// that are not stored.
async fn read_indexes(
    client: &ConsulClient,
    targets: &[Target],
) -> Result<(Vec<TxnOp>, Vec<String>), CliError> {
    let mut ops = Vec::with_capacity(targets.len());
    let mut missing = Vec::new();
    for target in targets {
        let stored = client.kv_get(&target.key).await.map_err(|error| {
            CliError::failure(
                anyhow::Error::new(error).context(format!("failed to read {}", target.key)),
            )
        })?;
        match stored {
            Some(pair) => ops.push(TxnOp::DeleteCas {
                key: target.key.clone(),
                index: pair.modify_index,
            }),
            None => missing.push(format!("{} (at {})", target.label, target.key)),
        }
    }
    Ok((ops, missing))
}
