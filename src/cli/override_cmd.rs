//! `steward override set|clear NAME`: pins a pool's worker count for a while, or unpins it.

use clap::{Args as ClapArgs, Subcommand};

use super::objects;
use super::{CliError, CliResult};
use crate::consul::{ConsulArgs, Error as ConsulError};
use crate::spec::{self, Override, OverrideSpec};

/// Set or clear a manual override of a pool's worker count.
#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(subcommand)]
    pub command: OverrideCommand,
}

#[derive(Debug, Subcommand)]
pub enum OverrideCommand {
    /// Pin the worker count of a pool until a time.
    Set(SetArgs),
    /// Remove a pool's override.
    Clear(ClearArgs),
}

/// Arguments of `steward override set`.
#[derive(Debug, ClapArgs)]
pub struct SetArgs {
    /// The pool's name; the pool must exist.
    pub name: String,

    /// Worker count to hold; 0 stops every worker. At most the pool's max unless --force.
    #[arg(long, value_name = "N")]
    pub workers: u32,

    /// How long the override lasts, such as `2h` or `90m`.
    #[arg(
        long = "for",
        value_name = "DURATION",
        conflicts_with = "until",
        required_unless_present = "until"
    )]
    pub duration: Option<spec::Duration>,

    /// When the override ends (RFC 3339, such as 2026-12-04T18:00:00Z).
    #[arg(long, value_name = "TIME")]
    pub until: Option<jiff::Timestamp>,

    /// The reason for pinning the count.
    #[arg(long, value_name = "TEXT")]
    pub reason: String,

    /// Allow more workers than the pool's max.
    #[arg(long)]
    pub force: bool,

    /// The person or system setting the override (default: $USER).
    #[arg(long, value_name = "WHO")]
    pub by: Option<String>,

    #[command(flatten)]
    pub consul: ConsulArgs,
}

/// Arguments of `steward override clear`.
#[derive(Debug, ClapArgs)]
pub struct ClearArgs {
    /// The pool's name.
    pub name: String,

    #[command(flatten)]
    pub consul: ConsulArgs,
}

/// Runs `override set` or `override clear`.
pub async fn run(args: Args) -> CliResult {
    match args.command {
        OverrideCommand::Set(set) => run_set(set).await,
        OverrideCommand::Clear(clear) => run_clear(clear).await,
    }
}

async fn run_set(args: SetArgs) -> CliResult {
    objects::check_name(&args.name)?;
    let now = jiff::Timestamp::now();
    let until = match (args.until, args.duration) {
        (Some(until), _) => until,
        (None, Some(duration)) => {
            let span = jiff::SignedDuration::try_from(duration.get())
                .map_err(|e| CliError::usage(anyhow::anyhow!("invalid --for {duration}: {e}")))?;
            now.checked_add(span)
                .and_then(|until| until.round(jiff::Unit::Second))
                .map_err(|e| CliError::usage(anyhow::anyhow!("invalid --for {duration}: {e}")))?
        }
        (None, None) => {
            return Err(CliError::usage(anyhow::anyhow!(
                "set --for DURATION or --until TIME"
            )));
        }
    };
    if until <= now {
        return Err(CliError::usage(anyhow::anyhow!(
            "--until {until} is not in the future; give a later time or use --for"
        )));
    }

    let (client, keys) = objects::connect(&args.consul)?;
    let Some(stored) = objects::read_pool(&client, &keys, &args.name).await? else {
        return Err(CliError::usage(anyhow::anyhow!(
            "pool {:?} not found at {}; apply the pool first",
            args.name,
            keys.pool(&args.name)
        )));
    };
    let pool = stored.object.map_err(|problem| {
        CliError::failure(anyhow::anyhow!(
            "{} does not hold a valid WorkerPool: {problem}",
            stored.key
        ))
    })?;
    if args.workers > pool.spec.workers.max && !args.force {
        return Err(CliError::usage(anyhow::anyhow!(
            "--workers {} is above the pool's max of {}; lower it or add --force",
            args.workers,
            pool.spec.workers.max
        )));
    }

    let item = Override::new(
        args.name.clone(),
        OverrideSpec {
            workers: args.workers,
            reason: args.reason.clone(),
            until,
            by: args
                .by
                .clone()
                .or_else(|| std::env::var("USER").ok())
                .filter(|b| !b.is_empty()),
            force: args.force,
        },
    );
    let problems = spec::validate_override(&item, Some(now));
    if !problems.is_empty() {
        for problem in &problems {
            eprintln!("{problem}");
        }
        return Err(CliError::usage(anyhow::anyhow!(
            "the override is invalid; nothing was written"
        )));
    }

    let current = objects::read_override(&client, &keys, &args.name).await?;
    let index = current.map_or(0, |c| c.modify_index);
    let key = keys.override_(&args.name);
    match client
        .kv_put_cas(&key, item.to_yaml().as_bytes(), index)
        .await
    {
        Ok(()) => {
            println!(
                "override/{} set: {} workers until {until}",
                args.name, args.workers
            );
            Ok(())
        }
        Err(error @ ConsulError::CasConflict { .. }) => Err(CliError::failure(
            anyhow::Error::new(error)
                .context("another override was written at the same time; run the command again"),
        )),
        Err(error) => Err(CliError::failure(
            anyhow::Error::new(error).context(format!("failed to write {key}")),
        )),
    }
}

async fn run_clear(args: ClearArgs) -> CliResult {
    objects::check_name(&args.name)?;
    let (client, keys) = objects::connect(&args.consul)?;
    let Some(current) = objects::read_override(&client, &keys, &args.name).await? else {
        return Err(CliError::failure(anyhow::anyhow!(
            "no override for pool {:?} at {}",
            args.name,
            keys.override_(&args.name)
        )));
    };
    client
        .kv_delete(&current.key, Some(current.modify_index))
        .await
        .map_err(|e| {
            CliError::failure(
                anyhow::Error::new(e).context(format!("failed to delete {}", current.key)),
            )
        })?;
    println!("override/{} cleared", args.name);
    Ok(())
}
