//! `steward rollout status|pause|resume|abort|retry NAME`: show a pool's rollout from its
//! status in Consul KV, and steer it through the control key the controller reads.

use std::time::Duration;

use anyhow::Context as _;
use clap::{Args as ClapArgs, Subcommand};
use jiff::Timestamp;

use super::objects;
use super::{CliError, CliResult};
use crate::consul::{ConsulArgs, ConsulClient, Keys, WriteMode};
use crate::rollout::{Control, ControlAction, PullState, RolloutPhase, RolloutState, control_key};

/// How often `status --watch` reads the status again.
const WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// Show or steer a pool's golden-first rollout.
#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(subcommand)]
    pub command: RolloutCommand,
}

#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// Show the phase, the golden worker, per-node prefetch and per-zone progress.
    Status(StatusArgs),
    /// Stop the rollout (and pause its Nomad deployment) until `resume`.
    Pause(ControlArgs),
    /// Continue a paused rollout, including one paused by an inconclusive analysis.
    Resume(ControlArgs),
    /// Roll back to the version the pool ran before the rollout.
    Abort(ControlArgs),
    /// Start a failed rollout again from the prefetch, after restoring the previous version
    /// on a zone that still has the failed one registered.
    Retry(ControlArgs),
}

/// Arguments of `steward rollout status`.
#[derive(Debug, ClapArgs)]
#[command(after_long_help = "\
Exit status: 0 when the rollout is in progress or Complete, or no rollout is in progress; 1 \
when it Failed, the pool is not found or Consul cannot be reached; 2 for bad usage.")]
pub struct StatusArgs {
    /// The pool's name.
    pub name: String,

    /// Print the status again whenever it changes, until the rollout of the current
    /// `spec.version` is Complete (exit 0) or Failed (exit 1). It first waits for the
    /// controller to read the latest spec, so it can follow `steward apply` at once, and it
    /// ends at once when no rollout is in progress.
    #[arg(long)]
    pub watch: bool,

    #[command(flatten)]
    pub consul: ConsulArgs,
}

/// Arguments of the commands that write the control key.
#[derive(Debug, ClapArgs)]
#[command(after_long_help = "\
Exit status: 0 when the request was written; 1 when the pool is not found, Consul cannot be \
reached, or the pool's rollout cannot act on the request (then nothing is written); 2 for bad \
usage.")]
pub struct ControlArgs {
    /// The pool's name.
    pub name: String,

    /// The sender of the command, recorded in the pool's decisions (default: `$USER`, else
    /// `$LOGNAME`, else `unknown`).
    #[arg(long, value_name = "WHO")]
    pub by: Option<String>,

    #[command(flatten)]
    pub consul: ConsulArgs,
}

/// Runs one `steward rollout` subcommand.
pub async fn run(args: Args) -> CliResult {
    match args.command {
        RolloutCommand::Status(args) => status(args).await,
        RolloutCommand::Pause(args) => send(args, ControlAction::Pause).await,
        RolloutCommand::Resume(args) => send(args, ControlAction::Resume).await,
        RolloutCommand::Abort(args) => send(args, ControlAction::Abort).await,
        RolloutCommand::Retry(args) => send(args, ControlAction::Retry).await,
    }
}

async fn status(args: StatusArgs) -> CliResult {
    objects::check_name(&args.name)?;
    let (client, keys) = objects::connect(&args.consul)?;

    let clock = objects::CliClock::read(&client, &keys).await;
    let mut last_shown = String::new();
    loop {
        let progress = read_progress(&client, &keys, &args.name)
            .await
            .map_err(CliError::failure)?;
        // As `kubectl rollout status` does, wait until the controller has read the latest
        // spec and acted on the last command, so that a status from before them is not taken
        // for their result.
        let waiting = match &progress {
            Progress::NotObserved { spec, observed } => Some(format!(
                "pool {}: waiting for the controller to read the latest spec (ModifyIndex \
                 {spec}; its status is for {observed})\n",
                args.name
            )),
            Progress::ControlPending { action } => Some(format!(
                "pool {}: waiting for the controller to act on `steward rollout {action}`\n",
                args.name
            )),
            Progress::Observed { .. } => None,
        };
        if let Some(text) = waiting {
            show(&mut last_shown, text)?;
            if !args.watch {
                return Ok(());
            }
            tokio::time::sleep(WATCH_INTERVAL).await;
            continue;
        }

        let state = match progress {
            Progress::NotObserved { .. } | Progress::ControlPending { .. } => continue,
            Progress::Observed {
                state,
                version,
                paused,
            } => {
                let state = state.map(|state| *state);
                // An earlier rollout still running (a rollback paused by a person, say) ends
                // before the rollout of the new version starts, so it is shown and waited for.
                if let Some(earlier) = state
                    .as_ref()
                    .filter(|state| state.to_version != version && state.phase.is_active())
                {
                    let mut text = render_status(&args.name, earlier, clock.now());
                    text.push_str(&format!(
                        "  spec.version is now {version}; its rollout starts when this one ends\n"
                    ));
                    show(&mut last_shown, text)?;
                    if !args.watch {
                        return Ok(());
                    }
                    tokio::time::sleep(WATCH_INTERVAL).await;
                    continue;
                }
                let current = state.filter(|state| state.to_version == version);
                if current.is_none() {
                    let note = if paused {
                        "; spec.paused is set, so none starts until it is cleared"
                    } else {
                        ""
                    };
                    show(
                        &mut last_shown,
                        format!(
                            "pool {}: no rollout in progress for spec.version {version}{note}\n",
                            args.name
                        ),
                    )?;
                    if !paused || !args.watch {
                        return Ok(());
                    }
                    tokio::time::sleep(WATCH_INTERVAL).await;
                    continue;
                }
                current
            }
        };

        if let Some(state) = &state {
            show(
                &mut last_shown,
                render_status(&args.name, state, clock.now()),
            )?;
        }

        // As `kubectl rollout status` does: a failed rollout is a failed command.
        match state.as_ref().map(|state| state.phase) {
            Some(RolloutPhase::Failed) => {
                return Err(CliError::failure(anyhow::anyhow!(
                    "the rollout of pool {} failed; see the failure above, then change \
                     spec.version or run `steward rollout retry {}`",
                    args.name,
                    args.name
                )));
            }
            Some(RolloutPhase::Complete) => return Ok(()),
            _ if !args.watch => return Ok(()),
            _ => {}
        }
        tokio::time::sleep(WATCH_INTERVAL).await;
    }
}

/// Prints `text` unless it is what was printed last. A closed pipe ends the process quietly,
/// as with `steward rollout status NAME --watch | head -1`.
fn show(last_shown: &mut String, text: String) -> CliResult {
    if text != *last_shown {
        super::output::print(&text)?;
        *last_shown = text;
    }
    Ok(())
}

/// The progress `rollout status` reports: whether the controller has read the pool's latest spec,
/// and then the stored rollout.
enum Progress {
    /// The status was written for an older spec (or not yet): `spec` is the spec key's
    /// `ModifyIndex`, `observed` the status's `observedGeneration`.
    NotObserved { spec: u64, observed: String },
    /// A `retry`, `abort`, `pause` or `resume` was written after the stored rollout last
    /// handled one, so the stored rollout is from before it.
    ControlPending { action: ControlAction },
    /// The status is for the latest spec.
    Observed {
        state: Option<Box<RolloutState>>,
        version: String,
        paused: bool,
    },
}

/// Reads the pool and its status. Fails with a not-found error when the pool is not stored,
/// and when its spec does not parse.
async fn read_progress(client: &ConsulClient, keys: &Keys, name: &str) -> anyhow::Result<Progress> {
    let pool = objects::read_pool(client, keys, name)
        .await?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "pool {name:?} not found at {}; check the name with `steward get`",
                keys.pool(name)
            )
        })?;
    let spec_index = pool.modify_index;
    let pool = pool.object.map_err(|reason| {
        anyhow::anyhow!(
            "the pool at {} is invalid: {reason}; fix it and run `steward apply` again",
            keys.pool(name)
        )
    })?;

    let status = read_status_value(client, keys, name).await?;
    let observed = status
        .as_ref()
        .and_then(|status| status.get("observedGeneration"))
        .and_then(serde_json::Value::as_u64);
    if observed.is_none_or(|observed| observed < spec_index) {
        return Ok(Progress::NotObserved {
            spec: spec_index,
            observed: observed
                .map_or_else(|| "no spec yet".to_owned(), |o| format!("ModifyIndex {o}")),
        });
    }
    let state = rollout_of(status.as_ref(), &keys.status(name))?;
    if let Some(state) = &state
        && let Some(action) = pending_control(client, keys, name, state).await?
    {
        return Ok(Progress::ControlPending { action });
    }
    Ok(Progress::Observed {
        state: state.map(Box::new),
        version: pool.spec.version,
        paused: pool.spec.paused,
    })
}

/// Returns the action of a control command that the controller has not handled yet: one
/// whose key's `ModifyIndex` is above the last command the rollout handled and the index
/// that started it. An unreadable command counts as handled, because the controller skips it.
async fn pending_control(
    client: &ConsulClient,
    keys: &Keys,
    name: &str,
    state: &RolloutState,
) -> anyhow::Result<Option<ControlAction>> {
    let key = control_key(keys.prefix(), name);
    let Some(pair) = client
        .kv_get(&key)
        .await
        .with_context(|| format!("failed to read the rollout command at {key}"))?
    else {
        return Ok(None);
    };
    let handled = state
        .last_control_index
        .unwrap_or(0)
        .max(state.started_index);
    if handled == 0 || pair.modify_index <= handled {
        return Ok(None);
    }
    Ok(serde_json::from_slice::<Control>(&pair.value)
        .ok()
        .map(|control| control.action))
}

/// Reads the pool's status as JSON, `None` when it is missing.
async fn read_status_value(
    client: &ConsulClient,
    keys: &Keys,
    name: &str,
) -> anyhow::Result<Option<serde_json::Value>> {
    let key = keys.status(name);
    let Some(bytes) = client
        .kv_get_raw(&key)
        .await
        .with_context(|| format!("failed to read the status at {key}"))?
    else {
        return Ok(None);
    };
    let status = serde_json::from_slice(&bytes)
        .with_context(|| format!("the status at {key} is not valid JSON"))?;
    Ok(Some(status))
}

/// Returns the `rollout` field of a status, `None` when the status or the field is missing.
fn rollout_of(
    status: Option<&serde_json::Value>,
    key: &str,
) -> anyhow::Result<Option<RolloutState>> {
    let Some(rollout) = status
        .and_then(|status| status.get("rollout"))
        .filter(|value| !value.is_null())
    else {
        return Ok(None);
    };
    let state = serde_json::from_value(rollout.clone())
        .with_context(|| format!("the rollout field of the status at {key} is invalid"))?;
    Ok(Some(state))
}

/// Reads the `rollout` field of the pool's status, `None` when the status or the field is
/// missing.
pub async fn read_rollout(
    client: &ConsulClient,
    keys: &Keys,
    name: &str,
) -> anyhow::Result<Option<RolloutState>> {
    let status = read_status_value(client, keys, name).await?;
    rollout_of(status.as_ref(), &keys.status(name))
}

async fn send(args: ControlArgs, action: ControlAction) -> CliResult {
    objects::check_name(&args.name)?;
    let by = args
        .by
        .clone()
        .filter(|by| !by.is_empty())
        .or_else(objects::login_name)
        .unwrap_or_else(|| "unknown".to_owned());
    let (client, keys) = objects::connect(&args.consul)?;

    // Until the controller has read the pool's latest spec, a rollout may be starting from
    // it, so the request is written for that rollout. Afterwards, a request that nothing can
    // act on is rejected, because a later rollout ignores it.
    let progress = read_progress(&client, &keys, &args.name)
        .await
        .map_err(CliError::failure)?;
    match progress {
        Progress::NotObserved { .. } => eprintln!(
            "note: the controller has not read the latest spec of pool {} yet; the {action} \
             applies to a rollout that starts from it",
            args.name
        ),
        Progress::ControlPending { action: pending } => eprintln!(
            "note: the controller has not acted on `steward rollout {pending}` for pool {} yet; \
             this {action} replaces it",
            args.name
        ),
        Progress::Observed { state, .. } => {
            let phase = state.as_ref().map(|state| state.phase);
            let restoring = state
                .as_ref()
                .is_some_and(|state| state.restore && state.phase.is_active());
            let acted_on = match action {
                ControlAction::Retry => phase == Some(RolloutPhase::Failed),
                // A restore already puts the previous version back.
                ControlAction::Abort if restoring => false,
                _ => phase.is_some_and(RolloutPhase::is_active),
            };
            if !acted_on {
                let now = match phase {
                    Some(_) if restoring => "it is restoring the previous version".to_owned(),
                    Some(phase) => format!("its rollout is {phase}"),
                    None => "it has no rollout recorded".to_owned(),
                };
                return Err(CliError::failure(anyhow::anyhow!(
                    "pool {} has nothing for {action} to act on: {now}; nothing was written",
                    args.name
                )));
            }
        }
    }

    // `steward dev` runs its controller on a sped-up clock, and its decision log shows the
    // command's time, so the command carries that clock's time there too.
    let clock = objects::CliClock::read(&client, &keys).await;
    let control = Control {
        action,
        by: by.clone(),
        at: clock.now(),
        index: 0,
    };
    let key = control_key(keys.prefix(), &args.name);
    let body = serde_json::to_vec(&control).map_err(CliError::failure)?;
    client
        .kv_put(&key, &body, None, &WriteMode::Plain)
        .await
        .with_context(|| format!("failed to write {action} to {key}"))
        .map_err(CliError::failure)?;
    super::output::println(format!(
        "rollout/{} {action} requested by {}; the controller acts on it at its next reconcile",
        args.name, by
    ))?;
    Ok(())
}

/// Renders a compact text view of a rollout: phase, versions, what it waits for, the golden
/// worker, per-zone progress and per-node prefetch.
pub fn render_status(name: &str, state: &RolloutState, now: Timestamp) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "pool {name}: {} {} -> {} (started {} ago)\n",
        state.phase,
        state.from_version,
        state.to_version,
        crate::reconcile::format::age(state.started_at, now)
    ));

    if let Some(paused) = &state.paused {
        out.push_str(&format!(
            "  paused: {} since {} (steward rollout resume {name})\n",
            paused.reason, paused.since
        ));
        if let Some(deadline) = paused.nomad_deadline {
            out.push_str(&format!(
                "  resume before {deadline}: Nomad then fails the paused deployment at its \
                 progress deadline, and the rollout rolls back\n"
            ));
        }
    }
    if let Some(waiting) = &state.waiting {
        out.push_str(&format!("  waiting: {waiting}\n"));
    }
    if let Some(failure) = &state.failure {
        out.push_str(&format!("  failure: {failure}\n"));
    }
    if state.phase.is_active() {
        out.push_str(&format!("  phase deadline: {}\n", state.phase_deadline));
    }

    if let Some(golden) = &state.golden {
        let health = match (golden.healthy_since, state.soak_until) {
            (Some(since), Some(until)) => format!("healthy since {since}, soak until {until}"),
            (Some(since), None) => format!("healthy since {since}"),
            // The golden worker stays recorded after the rollout failed on it.
            _ if !state.phase.is_active() => "never became healthy".to_owned(),
            _ => "not healthy yet".to_owned(),
        };
        out.push_str(&format!(
            "  golden: {} on node {} in zone {}: {health}\n",
            golden.allocation_id, golden.node_id, golden.zone
        ));
    }

    for zone in &state.zones {
        // Surge workers run on top of the zone's count, so more can be updated than desired.
        let surge = zone.updated.saturating_sub(zone.desired);
        let surge = if surge > 0 {
            format!(" (+{surge} surge)")
        } else {
            String::new()
        };
        out.push_str(&format!(
            "  zone {}: {} {}/{} updated{surge}, {} healthy, registered {}\n",
            zone.zone,
            bar(zone.updated.min(zone.desired), zone.desired),
            zone.updated.min(zone.desired),
            zone.desired,
            zone.healthy,
            zone.version
        ));
    }

    if !state.prefetch.is_empty() {
        let pulled = state
            .prefetch
            .iter()
            .filter(|node| node.state == PullState::Pulled)
            .count();
        out.push_str(&format!(
            "  prefetch: {pulled}/{} nodes pulled\n",
            state.prefetch.len()
        ));
        for node in &state.prefetch {
            let message = node
                .message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default();
            out.push_str(&format!(
                "    {} (zone {}): {:?}{message}\n",
                node.node_id, node.zone, node.state
            ));
        }
    }
    out
}

/// Draws `done` of `total` as a ten-cell bar such as `[#####-----]`.
fn bar(done: u32, total: u32) -> String {
    let cells = 10u32;
    let filled = (done.min(total) * cells)
        .checked_div(total)
        .unwrap_or(cells);
    let filled = filled as usize;
    format!(
        "[{}{}]",
        "#".repeat(filled),
        "-".repeat(cells as usize - filled)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::{GoldenWorker, NodePrefetch, RolloutPhase, ZoneProgress};

    fn state() -> RolloutState {
        let at: Timestamp = "2026-12-04T20:00:00Z".parse().expect("valid timestamp");
        RolloutState {
            phase: RolloutPhase::Soaking,
            from_version: "face:1".to_owned(),
            to_version: "face:2".to_owned(),
            started_at: at,
            phase_started_at: at,
            phase_deadline: at,
            counts: vec![3, 3],
            golden: Some(GoldenWorker {
                allocation_id: "alloc-1".to_owned(),
                node_id: "n1".to_owned(),
                zone: "a".to_owned(),
                healthy_since: Some(at),
            }),
            canary_requested_at: None,
            soak_until: Some(at),
            prefetch: vec![
                NodePrefetch {
                    node_id: "n1".to_owned(),
                    zone: "a".to_owned(),
                    state: PullState::Pulled,
                    message: None,
                },
                NodePrefetch {
                    node_id: "n2".to_owned(),
                    zone: "b".to_owned(),
                    state: PullState::Failed,
                    message: Some("unauthorized".to_owned()),
                },
            ],
            zones: vec![ZoneProgress {
                zone: "a".to_owned(),
                desired: 4,
                updated: 2,
                healthy: 4,
                version: "face:2".to_owned(),
            }],
            paused: None,
            inconclusive_accepted: false,
            last_analysis_at: None,
            last_control_at: None,
            started_index: 0,
            last_control_index: None,
            failed_deployment_id: None,
            failure: None,
            waiting: Some("soaking".to_owned()),
            restore: false,
        }
    }

    #[test]
    fn status_view_shows_every_part() {
        let now: Timestamp = "2026-12-04T20:01:30Z".parse().expect("valid timestamp");
        let text = render_status("face", &state(), now);
        assert!(text.starts_with("pool face: Soaking face:1 -> face:2 (started 90s ago)\n"));
        assert!(text.contains("  waiting: soaking\n"), "{text}");
        assert!(
            text.contains("golden: alloc-1 on node n1 in zone a"),
            "{text}"
        );
        assert!(
            text.contains("zone a: [#####-----] 2/4 updated, 4 healthy"),
            "{text}"
        );
        assert!(text.contains("prefetch: 1/2 nodes pulled"), "{text}");
        assert!(text.contains("n2 (zone b): Failed: unauthorized"), "{text}");
    }

    #[test]
    fn surge_worker_shown_apart() {
        let now: Timestamp = "2026-12-04T20:01:30Z".parse().expect("valid timestamp");
        let mut state = state();
        state.zones[0].desired = 1;
        state.zones[0].updated = 2;
        let text = render_status("face", &state, now);
        assert!(
            text.contains("zone a: [##########] 1/1 updated (+1 surge), 4 healthy"),
            "{text}"
        );
    }

    #[test]
    fn failed_golden_worker_and_hours_shown() {
        let now: Timestamp = "2026-12-04T23:00:00Z".parse().expect("valid timestamp");
        let mut state = state();
        state.phase = RolloutPhase::Failed;
        if let Some(golden) = state.golden.as_mut() {
            golden.healthy_since = None;
        }
        state.soak_until = None;
        let text = render_status("face", &state, now);
        assert!(text.starts_with("pool face: Failed face:1 -> face:2 (started 3h ago)\n"));
        assert!(text.contains("in zone a: never became healthy"), "{text}");
    }

    #[test]
    fn bar_handles_empty_and_full() {
        assert_eq!(bar(0, 0), "[##########]");
        assert_eq!(bar(0, 4), "[----------]");
        assert_eq!(bar(5, 4), "[##########]");
    }
}
