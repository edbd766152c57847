//! `steward apply -f FILE|DIR [-f …] [--dry-run] [--prune]`: writes WorkerPool and Override
//! objects to Consul KV with check-and-set, all in one transaction.

use std::collections::BTreeSet;
use std::path::PathBuf;

use clap::Args as ClapArgs;

use super::objects::{self, Stored};
use super::{CliError, CliResult, diff, output};
use crate::consul::{ConsulArgs, ConsulClient, Error as ConsulError, Keys, TxnOp};
use crate::spec::{self, Document, LoadedDocument, WorkerPool};

/// Apply WorkerPool and Override files to Consul KV. Every document is validated first; if
/// any is invalid, nothing is written (exit status 2). Each object is written with
/// check-and-set on the ModifyIndex read just before, so a concurrent apply fails with a
/// conflict (exit status 1) instead of overwriting.
#[derive(Debug, ClapArgs)]
#[command(
    override_usage = "steward apply -f <FILE|DIR> [-f <FILE|DIR>]... [OPTIONS]",
    after_long_help = "\
Exit status: 0 when every object was applied (or, with --dry-run, planned); 1 on a \
conflict or when Consul cannot be reached; 2 for bad usage or invalid input, in which case \
nothing was written."
)]
pub struct Args {
    /// A file, a directory (every *.yaml, *.yml and *.json below it) or `-` for standard
    /// input. Repeat to apply several together.
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "FILE|DIR",
        required = true
    )]
    pub paths: Vec<PathBuf>,

    /// Print what would change without writing anything, with a unified diff of each object
    /// that would be created or updated.
    #[arg(long)]
    pub dry_run: bool,

    /// Delete pools that exist in Consul but not in the input. Overrides are never pruned.
    #[arg(long)]
    pub prune: bool,

    #[command(flatten)]
    pub consul: ConsulArgs,
}

/// The effect of applying one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Created,
    Configured,
    Unchanged,
    Pruned,
}

impl Action {
    fn verb(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Configured => "configured",
            Self::Unchanged => "unchanged",
            Self::Pruned => "pruned",
        }
    }
}

/// One planned change: the object label (`pool/web`), the action and the txn op if any.
struct Change {
    label: String,
    action: Action,
    op: Option<TxnOp>,
    /// The unified diff with file headers from the stored text to the new one, which
    /// `--dry-run` prints. A creation diffs from no text.
    diff: Option<String>,
}

/// Validates, plans and applies; see [`Args`].
pub async fn run(args: Args) -> CliResult {
    let (client, keys) = objects::connect(&args.consul)?;
    // Under `steward dev` an override's `until` is checked against the dev clock, as the
    // controller will read it.
    let clock = objects::CliClock::read(&client, &keys).await;
    let documents = match spec::load_paths_at(&args.paths, Some(clock.now())) {
        Ok(documents) => documents,
        Err(report) => {
            for error in &report.errors {
                eprintln!("{error}");
            }
            return Err(CliError::usage(anyhow::anyhow!(
                "{} found; nothing was applied",
                plural(report.errors.len(), "error")
            )));
        }
    };

    let plan = plan(&client, &keys, &documents, args.prune).await?;
    if !plan.problems().is_empty() {
        for problem in plan.problems() {
            eprintln!("{problem}");
        }
        return Err(CliError::usage(anyhow::anyhow!(
            "{} found; nothing was applied",
            plural(plan.problems().len(), "error")
        )));
    }
    if !args.dry_run {
        execute(&client, &plan).await?;
    }
    for line in plan.lines(args.dry_run) {
        output::println(line)?;
    }
    warn_paused_rollouts(&client, &keys, &plan).await;
    Ok(())
}

/// Warns, on stderr, about each updated pool whose rollout is paused: the controller acts on
/// the change only after `steward rollout resume`. A status that cannot be read is skipped,
/// because the change is written already and the warning is only a hint.
async fn warn_paused_rollouts(client: &ConsulClient, keys: &Keys, plan: &Plan) {
    let updated = plan
        .changes
        .iter()
        .filter(|change| change.action == Action::Configured)
        .filter_map(|change| change.label.strip_prefix("pool/"));
    for name in updated {
        let Ok(Some(state)) = super::rollout::read_rollout(client, keys, name).await else {
            continue;
        };
        if state.paused.is_some() && state.phase.is_active() {
            eprintln!(
                "note: the rollout of pool {name} is paused, so this change waits; run \
                 `steward rollout resume {name}` to go on"
            );
        }
    }
}

/// The writes one apply makes, each checked against the ModifyIndex read when planning.
pub struct Plan {
    changes: Vec<Change>,
    /// Overrides in the input that break a rule of their pool as stored in Consul.
    problems: Vec<String>,
    /// Names of pruned pools whose override stays under its own key.
    kept_overrides: Vec<String>,
}

impl Plan {
    /// Returns the overrides in the input that exceed the max of their stored pool without
    /// `force`, one message each. A plan with problems must not be executed.
    pub fn problems(&self) -> &[String] {
        &self.problems
    }

    /// Formats one line per object, kubectl style: `pool/web created`. With `dry_run`, the
    /// line of an object to create or update is followed by its diff.
    pub fn lines(&self, dry_run: bool) -> Vec<String> {
        let suffix = if dry_run { " (dry run)" } else { "" };
        self.changes
            .iter()
            .map(|c| {
                let line = format!("{} {}{suffix}", c.label, c.action.verb());
                match &c.diff {
                    Some(diff) if dry_run => format!("{line}\n{}", diff.trim_end()),
                    _ => line,
                }
            })
            .chain(self.kept_overrides.iter().map(|name| {
                format!("override/{name} remains; remove it with `steward override clear {name}`")
            }))
            .collect()
    }

    fn ops(&self) -> Vec<TxnOp> {
        self.changes.iter().filter_map(|c| c.op.clone()).collect()
    }
}

/// Reads the stored objects and plans the writes for `documents`: create with CAS index 0,
/// update with CAS on the stored ModifyIndex, skip unchanged objects, and with `prune`
/// delete pools missing from `documents`.
pub async fn plan(
    client: &ConsulClient,
    keys: &Keys,
    documents: &[LoadedDocument],
    prune: bool,
) -> anyhow::Result<Plan> {
    let pools = objects::read_pools(client, keys).await?;
    let overrides = objects::read_overrides(client, keys).await?;

    let mut changes = Vec::new();
    let mut problems = Vec::new();
    let mut kept_overrides = Vec::new();
    let mut applied_pools = BTreeSet::new();
    let input_pools: BTreeSet<&str> = documents
        .iter()
        .filter(|d| matches!(d.document, Document::WorkerPool(_)))
        .map(|d| d.document.name())
        .collect();
    for loaded in documents {
        if let Some(problem) = spec::stored_size_problem(&loaded.document) {
            problems.push(format!("{}: {problem}", loaded.source));
        }
        let text = spec::to_yaml(&loaded.document).into_bytes();
        let name = loaded.document.name().to_string();
        let (label, key, stored) = match &loaded.document {
            Document::WorkerPool(pool) => {
                if let Some(problem) = job_claim_problem(pool, &pools, &input_pools, prune) {
                    problems.push(format!("{}: {problem}", loaded.source));
                }
                applied_pools.insert(name.clone());
                (
                    format!("pool/{name}"),
                    keys.pool(&name),
                    pools.get(&name).map(as_unit),
                )
            }
            Document::Override(item) => {
                // Loading checked overrides against pools in the same input. An override of a pool
                // that exists only in Consul is checked against the stored pool here.
                let stored_pool = pools.get(&name).and_then(|p| p.object.as_ref().ok());
                if !input_pools.contains(name.as_str()) && !pools.contains_key(&name) {
                    problems.push(format!(
                        "{}: override for pool {name:?}, which is neither in the input nor \
                         stored at {}; apply the pool first or fix metadata.name",
                        loaded.source,
                        keys.pool(&name)
                    ));
                }
                if let (false, Some(pool)) = (input_pools.contains(name.as_str()), stored_pool) {
                    for error in spec::validate_override_for_pool(item, pool) {
                        problems.push(format!(
                            "{}: {}: {}",
                            loaded.source, error.path, error.message
                        ));
                    }
                }
                (
                    format!("override/{name}"),
                    keys.override_(&name),
                    overrides.get(&name).map(as_unit),
                )
            }
        };
        changes.push(plan_write(label, key, text, stored, &loaded.source));
    }

    if prune {
        for (name, stored) in &pools {
            if !applied_pools.contains(name) {
                if overrides.contains_key(name) {
                    kept_overrides.push(name.clone());
                }
                changes.push(Change {
                    label: format!("pool/{name}"),
                    action: Action::Pruned,
                    op: Some(TxnOp::DeleteCas {
                        key: stored.key.clone(),
                        index: stored.modify_index,
                    }),
                    diff: None,
                });
            }
        }
    }
    let mut plan = Plan {
        changes,
        problems,
        kept_overrides,
    };
    check_transaction_sizes(&mut plan, client.txn_max_ops());
    Ok(plan)
}

/// Returns a message when `pool` names the Nomad job (namespace and ID) of a pool stored under
/// another name. A stored pool in the input too was compared when loading, and with `prune`
/// a stored pool missing from the input is deleted in the same write, as when a pool is
/// renamed. Two pools on one job would scale and roll out the same workers against each other.
fn job_claim_problem(
    pool: &WorkerPool,
    stored: &std::collections::BTreeMap<String, Stored<WorkerPool>>,
    input_pools: &BTreeSet<&str>,
    prune: bool,
) -> Option<String> {
    let job = (pool.job_namespace(), pool.job_id());
    let (owner, _) = stored.iter().find(|(name, entry)| {
        *name != &pool.metadata.name
            && !input_pools.contains(name.as_str())
            && !prune
            && entry
                .object
                .as_ref()
                .is_ok_and(|other| (other.job_namespace(), other.job_id()) == job)
    })?;
    let path = if pool.spec.job.id.is_some() {
        "spec.job.id"
    } else {
        "metadata.name"
    };
    Some(format!(
        "{path}: Nomad job `{}` in namespace `{}` is already claimed by pool `{owner}` in \
         Consul; each pool needs its own job: set a different spec.job.id",
        job.1, job.0
    ))
}

/// Adds a problem when the writes of one transaction would exceed Consul's request body
/// limit, so nothing is sent that Consul rejects with 413. The size is an estimate: base64
/// values and keys plus 128 bytes of JSON per operation.
fn check_transaction_sizes(plan: &mut Plan, max_ops: usize) {
    let ops = plan.ops();
    for batch in ops.chunks(max_ops.max(1)) {
        let size: usize = batch
            .iter()
            .map(|op| match op {
                TxnOp::Cas { key, value, .. } => key.len() + value.len().div_ceil(3) * 4 + 128,
                TxnOp::DeleteCas { key, .. } => key.len() + 128,
                _ => 256,
            })
            .sum();
        if size > spec::CONSUL_MAX_BODY_BYTES {
            plan.problems.push(format!(
                "the writes need about {size} bytes in one Consul transaction, above Consul's \
                 limit of {} bytes (512 KiB, values in base64); apply the files in smaller \
                 groups",
                spec::CONSUL_MAX_BODY_BYTES
            ));
        }
    }
}

fn as_unit<T>(stored: &Stored<T>) -> Stored<()> {
    Stored {
        key: stored.key.clone(),
        modify_index: stored.modify_index,
        text: stored.text.clone(),
        object: Ok(()),
    }
}

/// Plans one write: skipped when the stored bytes already equal the new ones, because an
/// unchanged write moves no index in Consul and would only hide real changes. `source` names
/// the input file in the diff of a creation or an update.
fn plan_write(
    label: String,
    key: String,
    text: Vec<u8>,
    stored: Option<Stored<()>>,
    source: &str,
) -> Change {
    match stored {
        Some(stored) if stored.text == text => Change {
            label,
            action: Action::Unchanged,
            op: None,
            diff: None,
        },
        Some(stored) => {
            let hunks = diff::unified(
                &String::from_utf8_lossy(&stored.text),
                &String::from_utf8_lossy(&text),
                diff::CONTEXT_LINES,
            );
            // Bytes that differ only in line endings or a final newline give no hunk.
            let diff = (!hunks.is_empty()).then(|| {
                format!(
                    "--- {label} in Consul ({key}, ModifyIndex {})\n+++ {label} from {source}\n{hunks}",
                    stored.modify_index
                )
            });
            Change {
                label,
                action: Action::Configured,
                op: Some(TxnOp::Cas {
                    key,
                    value: text,
                    flags: 0,
                    index: stored.modify_index,
                }),
                diff,
            }
        }
        None => {
            let hunks = diff::unified("", &String::from_utf8_lossy(&text), diff::CONTEXT_LINES);
            let diff =
                format!("--- {label} not in Consul ({key})\n+++ {label} from {source}\n{hunks}");
            Change {
                label,
                action: Action::Created,
                op: Some(TxnOp::Cas {
                    key,
                    value: text,
                    flags: 0,
                    index: 0,
                }),
                diff: Some(diff),
            }
        }
    }
}

/// Sends the planned writes in one transaction so that they apply together or not at all.
/// A write whose key changed since [`plan`] read it rolls everything back (exit status 1).
pub async fn execute(client: &ConsulClient, plan: &Plan) -> CliResult {
    let ops = plan.ops();
    if ops.is_empty() {
        return Ok(());
    }
    let single = ops.len() <= client.txn_max_ops();
    // NOTE: more writes than fit in one transaction go out in several transactions, and only
    // each batch is atomic then. Every write still checks its ModifyIndex.
    let result = if single {
        client.txn(&ops).await
    } else {
        client.txn_batched(&ops).await
    };
    match result {
        Ok(_) => Ok(()),
        Err(ConsulError::TxnRollback { errors }) => {
            let labels: Vec<&str> = plan
                .changes
                .iter()
                .filter(|c| c.op.is_some())
                .map(|c| c.label.as_str())
                .collect();
            // Operation indexes name objects only when everything went in one transaction.
            let conflicted: Vec<String> = errors
                .iter()
                .map(|e| match labels.get(e.op_index) {
                    Some(label) if single => (*label).to_string(),
                    _ => e.what.clone(),
                })
                .collect();
            Err(CliError::failure(anyhow::anyhow!(
                "conflict: {} changed in Consul since this apply read {}; nothing was applied; run apply again",
                conflicted.join(", "),
                if conflicted.len() == 1 { "it" } else { "them" }
            )))
        }
        Err(error) => Err(CliError::failure(
            anyhow::Error::new(error).context("failed to write to Consul"),
        )),
    }
}

fn plural(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}
