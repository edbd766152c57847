//! `steward override set|clear NAME`: pins a pool's worker count for a while, or unpins it.

use clap::{Args as ClapArgs, Subcommand};

use super::objects;
use super::{CliError, CliResult, output};
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
#[command(after_long_help = "\
Exactly one of --for or --until is required.

Exit status: 0 when the override was written; 1 when the pool is not found, Consul cannot be \
reached or another write raced this one; 2 for bad usage or an invalid override.")]
pub struct SetArgs {
    /// The pool's name; the pool must exist.
    pub name: String,

    /// Worker count to hold, within the pool's min and max unless --force. With --force, 0
    /// stops every worker.
    #[arg(long, value_name = "N")]
    pub workers: u32,

    /// How long the override lasts from now, such as `2h` or `90m`; must be positive.
    /// Exactly one of --for or --until is required.
    #[arg(
        long = "for",
        value_name = "DURATION",
        conflicts_with = "until",
        required_unless_present = "until",
        value_parser = parse_for
    )]
    pub duration: Option<spec::Duration>,

    /// When the override ends, in RFC 3339 such as 2026-12-04T18:00:00Z. Exactly one of
    /// --for or --until is required.
    #[arg(long, value_name = "TIME", value_parser = parse_until)]
    pub until: Option<jiff::Timestamp>,

    /// The reason for pinning the count.
    #[arg(long, value_name = "TEXT")]
    pub reason: String,

    /// Allow a count outside the pool's min and max.
    #[arg(long)]
    pub force: bool,

    /// The person or system setting the override (default: $USER, else $LOGNAME).
    #[arg(long, value_name = "WHO")]
    pub by: Option<String>,

    #[command(flatten)]
    pub consul: ConsulArgs,
}

/// Arguments of `steward override clear`.
#[derive(Debug, ClapArgs)]
#[command(after_long_help = "\
Exit status: 0 when the override was removed; 1 when the pool has no override or Consul \
cannot be reached; 2 for bad usage.")]
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
    let (client, keys) = objects::connect(&args.consul)?;
    let clock = objects::CliClock::read(&client, &keys).await;
    let now = clock.now();
    let until = match (args.until, args.duration) {
        (Some(until), _) => until,
        (None, Some(duration)) => until_after(now, duration).map_err(CliError::usage)?,
        (None, None) => {
            return Err(CliError::usage(anyhow::anyhow!(
                "set --for DURATION or --until TIME"
            )));
        }
    };
    if until <= now {
        let clock_note = if clock.is_dev() {
            " (this Consul belongs to a `steward dev`, whose sped-up clock is ahead of the wall \
             clock)"
        } else {
            ""
        };
        return Err(CliError::usage(anyhow::anyhow!(
            "--until {until} is not in the future: now is {now}{clock_note}; give a later time \
             or use --for"
        )));
    }

    let Some(stored) = objects::read_pool(&client, &keys, &args.name).await? else {
        return Err(CliError::failure(anyhow::anyhow!(
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
    if args.workers < pool.spec.workers.min && !args.force {
        return Err(CliError::usage(anyhow::anyhow!(
            "--workers {} is below the pool's min of {}; raise it or add --force (with \
             --force, 0 stops every worker)",
            args.workers,
            pool.spec.workers.min
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
                .filter(|b| !b.is_empty())
                .or_else(objects::login_name),
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
        Ok(()) => output::println(format_args!(
            "override/{} set: {} worker{} until {until}",
            args.name,
            args.workers,
            if args.workers == 1 { "" } else { "s" }
        )),
        Err(error @ ConsulError::CasConflict { .. }) => Err(CliError::failure(
            anyhow::Error::new(error)
                .context("another override was written at the same time; run the command again"),
        )),
        Err(error) => Err(CliError::failure(
            anyhow::Error::new(error).context(format!("failed to write {key}")),
        )),
    }
}

/// Returns `now + duration`, rounded to the second, or an error when that is past the
/// latest time a timestamp can hold (9999-12-31).
fn until_after(now: jiff::Timestamp, duration: spec::Duration) -> anyhow::Result<jiff::Timestamp> {
    let out_of_range = || {
        anyhow::anyhow!(
            "--for {duration} is out of range: the override would end after 9999-12-31; give \
             a shorter duration"
        )
    };
    let span = jiff::SignedDuration::try_from(duration.get()).map_err(|_| out_of_range())?;
    now.checked_add(span)
        .and_then(|until| until.round(jiff::Unit::Second))
        .map_err(|_| out_of_range())
}

/// Parses `--for`: a duration greater than zero.
fn parse_for(text: &str) -> Result<spec::Duration, String> {
    let duration: spec::Duration = text.parse()?;
    if duration.get().is_zero() {
        return Err(format!(
            "--for must be greater than zero, found {text:?}; give how long the override \
             lasts, such as 2h"
        ));
    }
    Ok(duration)
}

/// Parses `--until` as an RFC 3339 timestamp.
fn parse_until(text: &str) -> Result<jiff::Timestamp, String> {
    text.trim().parse().map_err(|_| {
        format!(
            "invalid time {text:?}: write an RFC 3339 time with a UTC offset, such as \
             2026-12-04T18:00:00Z or 2026-12-04T19:00:00+01:00"
        )
    })
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
    output::println(format_args!("override/{} cleared", args.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn for_must_be_positive() {
        let error = parse_for("0s").expect_err("zero is rejected");
        assert!(error.contains("greater than zero"), "{error}");
        assert!(parse_for("90m").is_ok());
    }

    #[test]
    fn until_error_shows_example() {
        let error = parse_until("tomorrow").expect_err("not a timestamp");
        assert!(error.contains("2026-12-04T18:00:00Z"), "{error}");
        assert!(error.contains("RFC 3339"), "{error}");
        assert!(parse_until("2026-12-04T18:00:00Z").is_ok());
    }

    #[test]
    fn huge_for_is_out_of_range() {
        let now = jiff::Timestamp::now();
        let huge: spec::Duration = "99999999h".parse().expect("a valid duration");
        let error = until_after(now, huge).expect_err("past 9999").to_string();
        assert!(error.contains("out of range"), "{error}");
        assert!(!error.contains("parameter"), "{error}");
        let until = until_after(now, spec::Duration::from_mins(90)).expect("in range");
        assert!(until > now);
    }
}
