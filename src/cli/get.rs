//! `steward get [NAME] [-o yaml|json|table]`: shows pools as stored in Consul KV.

use clap::{Args as ClapArgs, ValueEnum};
use comfy_table::{Table, presets};

use super::objects::{self, Stored};
use super::{CliError, CliResult, output};
use crate::consul::ConsulArgs;
use crate::spec::{Override, WorkerPool};

/// Output format of `steward get`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// One row per pool.
    Table,
    /// The stored YAML of each valid pool, as one YAML stream of `---`-separated documents.
    Yaml,
    /// A JSON array of pools (one object when NAME is given).
    Json,
}

/// Show WorkerPools stored in Consul KV, with their active overrides.
#[derive(Debug, ClapArgs)]
#[command(after_long_help = "\
A stored value that is not a valid WorkerPool shows as `<invalid>` in the table and is left \
out of the YAML and JSON outputs. Each is reported on stderr with its key and the reason.

Exit status: 0 when every pool shown is valid; 1 when NAME is not found, a stored value is \
invalid, or Consul cannot be reached; 2 for bad usage.")]
pub struct Args {
    /// Show only this pool; it must exist.
    pub name: Option<String>,

    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Table)]
    pub output: Output,

    #[command(flatten)]
    pub consul: ConsulArgs,
}

/// Reads and prints the pools; see [`Args`].
pub async fn run(args: Args) -> CliResult {
    if let Some(name) = &args.name {
        objects::check_name(name)?;
    }
    let (client, keys) = objects::connect(&args.consul)?;

    let mut pools = objects::read_pools(&client, &keys).await?;
    let overrides = objects::read_overrides(&client, &keys).await?;
    if let Some(name) = &args.name {
        pools.retain(|pool, _| pool == name);
        if pools.is_empty() {
            return Err(CliError::failure(anyhow::anyhow!(
                "pool {name:?} not found at {}",
                keys.pool(name)
            )));
        }
    }
    if pools.is_empty() {
        // On stderr, as kubectl does, so that the table and YAML outputs stay parseable.
        eprintln!("no pools found under {}", keys.pools_prefix());
    }
    let mut invalid = 0usize;
    for stored in pools.values() {
        if let Err(problem) = &stored.object {
            invalid += 1;
            eprintln!(
                "error: {} does not hold a valid WorkerPool: {problem}",
                stored.key
            );
        }
    }

    match args.output {
        Output::Table => {
            let now = objects::CliClock::read(&client, &keys).await.now();
            output::print(table(&pools, &overrides, now))?
        }
        Output::Yaml => output::print(yaml_stream(&pools))?,
        Output::Json => {
            let valid: Vec<&WorkerPool> = pools
                .values()
                .filter_map(|s| s.object.as_ref().ok())
                .collect();
            let value = match (&args.name, valid.as_slice()) {
                (Some(_), [pool]) => serde_json::to_value(pool),
                _ => serde_json::to_value(&valid),
            }
            .map_err(anyhow::Error::from)?;
            output::println(serde_json::to_string_pretty(&value).map_err(anyhow::Error::from)?)?;
        }
    }

    if invalid > 0 {
        return Err(CliError::failure(anyhow::anyhow!(
            "{invalid} stored value{} not a valid WorkerPool; fix {} with `steward apply` or \
             remove {} with `steward delete`",
            if invalid == 1 { " is" } else { "s are" },
            if invalid == 1 { "it" } else { "them" },
            if invalid == 1 { "it" } else { "them" },
        )));
    }
    Ok(())
}

/// Joins the stored text of every valid pool into one YAML stream. Each document starts with
/// `---` on a line of its own and ends with a newline, even when the stored value lacks one.
fn yaml_stream(pools: &std::collections::BTreeMap<String, Stored<WorkerPool>>) -> String {
    let mut stream = String::new();
    for stored in pools.values().filter(|s| s.object.is_ok()) {
        let text = String::from_utf8_lossy(&stored.text);
        stream.push_str("---\n");
        stream.push_str(&text);
        if !text.ends_with('\n') {
            stream.push('\n');
        }
    }
    stream
}

fn table(
    pools: &std::collections::BTreeMap<String, Stored<WorkerPool>>,
    overrides: &std::collections::BTreeMap<String, Stored<Override>>,
    now: jiff::Timestamp,
) -> String {
    let mut table = Table::new();
    table.load_style(presets::NOTHING);
    table.set_header([
        "NAME",
        "VERSION",
        "MIN",
        "MAX",
        "ZONES",
        "AUTOSCALING",
        "OVERRIDE",
        "INDEX",
    ]);
    for (name, stored) in pools {
        let override_text = match overrides.get(name).map(|o| &o.object) {
            None => "-".to_string(),
            Some(Err(_)) => "invalid".to_string(),
            Some(Ok(item)) if item.is_active(now) => {
                format!("{} until {}", item.spec.workers, item.spec.until)
            }
            Some(Ok(item)) => format!("{} (expired)", item.spec.workers),
        };
        let row = match &stored.object {
            Ok(pool) => vec![
                name.clone(),
                pool.spec.version.clone(),
                pool.spec.workers.min.to_string(),
                pool.spec.workers.max.to_string(),
                pool.spec
                    .zones
                    .iter()
                    .map(|z| z.name.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
                match &pool.spec.autoscaling {
                    Some(a) => serde_json::to_value(a.predictor)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                    None => "off".to_string(),
                },
                override_text,
                stored.modify_index.to_string(),
            ],
            Err(_) => vec![
                name.clone(),
                "<invalid>".to_string(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                override_text,
                stored.modify_index.to_string(),
            ],
        };
        table.add_row(row);
    }
    let mut text = table.to_string();
    text.push('\n');
    text
}
