//! `steward delete NAME`: removes a pool's key from Consul KV.

use clap::Args as ClapArgs;

use super::objects;
use super::{CliError, CliResult, output};
use crate::consul::{ConsulArgs, Error as ConsulError};

/// Delete a WorkerPool from Consul KV. Its override, if any, stays under its own key.
#[derive(Debug, ClapArgs)]
#[command(after_long_help = "\
Exit status: 0 when the pool was deleted; 1 when it is not found, changed during the delete, \
or Consul cannot be reached; 2 for bad usage.")]
pub struct Args {
    /// The pool's name.
    pub name: String,

    #[command(flatten)]
    pub consul: ConsulArgs,
}

/// Deletes the pool with check-and-set on the index just read; see [`Args`].
pub async fn run(args: Args) -> CliResult {
    objects::check_name(&args.name)?;
    let (client, keys) = objects::connect(&args.consul)?;

    let Some(stored) = objects::read_pool(&client, &keys, &args.name).await? else {
        return Err(CliError::failure(anyhow::anyhow!(
            "pool {:?} not found at {}",
            args.name,
            keys.pool(&args.name)
        )));
    };
    match client
        .kv_delete(&stored.key, Some(stored.modify_index))
        .await
    {
        Ok(()) => output::println(format_args!("pool/{} deleted", args.name))?,
        Err(error @ ConsulError::CasConflict { .. }) => {
            return Err(CliError::failure(anyhow::Error::new(error).context(
                format!(
                    "pool/{} changed while it was being deleted; it was kept",
                    args.name
                ),
            )));
        }
        Err(error) => {
            return Err(CliError::failure(
                anyhow::Error::new(error).context("failed to delete the pool"),
            ));
        }
    }

    if objects::read_override(&client, &keys, &args.name)
        .await?
        .is_some()
    {
        output::println(format_args!(
            "override/{} remains; remove it with `steward override clear {}`",
            args.name, args.name
        ))?;
    }
    Ok(())
}
