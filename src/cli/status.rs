//! `steward status [NAME]`: prints the status the controller stored for each pool.

use std::time::Duration;

use anyhow::{Context as _, anyhow};
use clap::Args as ClapArgs;

use super::{CliError, CliResult};
use crate::consul::{ConsulArgs, ConsulClient, Keys, QueryOptions};
use crate::reconcile::Status;
use crate::reconcile::format::{OutputFormat, format_list, format_one};

/// Show the status of one pool, or a table of every pool, as the leading controller last
/// wrote it.
#[derive(Debug, ClapArgs)]
#[command(after_long_help = "\
Exit status: 0 when the status was shown; 1 when the pool is not found or Consul cannot be \
reached; 2 for bad usage.")]
pub struct Args {
    #[command(flatten)]
    pub consul: ConsulArgs,

    /// The pool to show; every pool when omitted.
    pub name: Option<String>,

    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,

    /// Print again each time a status changes, until interrupted.
    #[arg(short = 'w', long)]
    pub watch: bool,
}

/// One read of `steward status`: the stored statuses, the pools without one, and the Consul
/// index to block on for `--watch`.
struct Snapshot {
    statuses: Vec<Status>,
    without_status: Vec<String>,
    /// The identity of the controller that holds the leader lock, if one does.
    leader: Option<String>,
    index: u64,
}

async fn read(
    client: &ConsulClient,
    keys: &Keys,
    name: Option<&str>,
    index: u64,
) -> anyhow::Result<Snapshot> {
    let wait = QueryOptions {
        index: (index > 0).then_some(index),
        wait: (index > 0).then_some(Duration::from_secs(300)),
    };
    let (pairs, meta) = client
        .kv_list(&keys.status_prefix(), &wait)
        .await
        .context("failed to read statuses from Consul")?;
    let (pools, _) = client
        .kv_list(&keys.pools_prefix(), &QueryOptions::default())
        .await
        .context("failed to read pools from Consul")?;

    let mut statuses = Vec::new();
    for pair in &pairs {
        let Some(pool) = pair.key.strip_prefix(&keys.status_prefix()) else {
            continue;
        };
        if name.is_some_and(|name| name != pool) {
            continue;
        }
        let status: Status = serde_json::from_slice(&pair.value)
            .with_context(|| format!("status key {} does not hold a valid status", pair.key))?;
        statuses.push(status);
    }
    let leader = client
        .kv_get(&keys.leader())
        .await
        .context("failed to read the leader lock from Consul")?
        .filter(|pair| pair.session.is_some())
        .map(|pair| String::from_utf8_lossy(&pair.value).into_owned());
    let without_status = pools
        .iter()
        .filter_map(|pair| keys.pool_name(&pair.key))
        .filter(|pool| name.is_none_or(|name| name == *pool))
        .filter(|pool| !statuses.iter().any(|status| status.pool == *pool))
        .map(str::to_owned)
        .collect();
    Ok(Snapshot {
        statuses,
        without_status,
        leader,
        index: meta.index.max(1),
    })
}

fn render(
    snapshot: &Snapshot,
    name: Option<&str>,
    output: OutputFormat,
    now: jiff::Timestamp,
) -> Result<String, CliError> {
    let mut text = match (name, snapshot.statuses.as_slice()) {
        (Some(_), [status]) => format_one(status, output, now).map_err(CliError::failure)?,
        (Some(name), []) if snapshot.without_status.is_empty() => {
            return Err(CliError::failure(anyhow!(
                "pool {name} not found: no pool key and no status in Consul; list pools with `steward get`"
            )));
        }
        (Some(_), _) => String::new(),
        (None, statuses) => format_list(statuses, output, now).map_err(CliError::failure)?,
    };
    // A status is written only when it changes, so after a change of leader it can still
    // name the previous one. The table output adds a note, and JSON and YAML stay the stored object.
    if output == OutputFormat::Table {
        match &snapshot.leader {
            Some(leader) if snapshot.statuses.iter().any(|s| s.written_by != *leader) => {
                text.push_str(&format!(
                    "The leader is now {leader}; it rewrites a status when something in it \
                     changes.\n"
                ));
            }
            Some(_) => {}
            None if !snapshot.statuses.is_empty() => text.push_str(
                "No controller holds the leader lock, so no status is updated: start \
                 `steward controller`, or wait up to about 35 s for a standby to take over.\n",
            ),
            None => {}
        }
    }
    for pool in &snapshot.without_status {
        text.push_str(&format!(
            "pool {pool} exists but no controller has written its status yet: check that `steward controller` runs\n"
        ));
    }
    Ok(text)
}

/// Prints the statuses; see [`Args`].
pub async fn run(args: Args) -> CliResult {
    let client = args.consul.client().map_err(CliError::usage)?;
    let keys = args.consul.keys().map_err(CliError::usage)?;
    let name = args.name.as_deref();

    let mut snapshot = read(&client, &keys, name, 0).await?;
    let clock = super::objects::CliClock::read(&client, &keys).await;
    super::output::print(render(&snapshot, name, args.output, clock.now())?)?;
    if !args.watch {
        return Ok(());
    }
    loop {
        let next = read(&client, &keys, name, snapshot.index).await?;
        let changed = next.statuses != snapshot.statuses
            || next.without_status != snapshot.without_status
            || next.leader != snapshot.leader;
        // The index also moves for same-value writes and unrelated keys, so compare first.
        if next.index < snapshot.index {
            snapshot.index = 0;
            continue;
        }
        if changed {
            super::output::print(render(&next, name, args.output, clock.now())?)?;
        }
        snapshot = next;
    }
}
