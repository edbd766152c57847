//! `steward dev [SUBCOMMAND]`: runs Steward and everything it talks to on this machine.
//!
//! Plain `steward dev` starts the emulated Consul and Nomad, a Prometheus-compatible replay of
//! a real traffic trace, applies the example pools, runs the controller against them over
//! HTTP, and prints a live view. `steward dev consul` and `steward dev nomad` run one emulator
//! alone.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args as ClapArgs, Subcommand};
use tokio_util::sync::CancellationToken;

use super::dev_consul::{parse_listen_addr, warn_if_exposed};
use super::{CliError, CliResult, apply, dev_consul, dev_nomad};
use crate::consul::{ConsulClient, Keys};
use crate::reconcile::status::Status;
use crate::runtime::{Controller, ControllerConfig};
use crate::sim::clock::SimClock;
use crate::sim::consul::{ConsulEmulator, ConsulEmulatorConfig};
use crate::sim::nomad::{NomadEmulator, NomadEmulatorConfig, RunningNomad, zone_node_spec};
use crate::sim::traffic::{self, TrafficReplay};
use crate::spec::{self, Document, LoadedDocument, MetricSource};

use crate::sim::traces::NASA_TRACE;

/// The example pools, built into the binary for the same reason.
const EXAMPLE_POOLS: [(&str, &str); 2] = [
    (
        "examples/pools/face-match.yaml",
        include_str!("../../examples/pools/face-match.yaml"),
    ),
    (
        "examples/pools/ocr.yaml",
        include_str!("../../examples/pools/ocr.yaml"),
    ),
];

/// Run Steward on emulated Consul and Nomad with replayed traffic, or one emulator alone.
#[derive(Debug, ClapArgs)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<DevCommand>,

    #[command(flatten)]
    pub all: AllArgs,
}

#[derive(Debug, Subcommand)]
pub enum DevCommand {
    /// Run the emulated Consul alone.
    Consul(dev_consul::Args),
    /// Run the emulated Nomad alone.
    Nomad(dev_nomad::Args),
}

/// Settings of plain `steward dev`.
#[derive(Debug, ClapArgs)]
pub struct AllArgs {
    /// Address of the emulated Consul.
    #[arg(long, default_value = "127.0.0.1:8500", value_parser = parse_listen_addr)]
    pub consul_addr: SocketAddr,

    /// Address of the emulated Nomad.
    #[arg(long, default_value = "127.0.0.1:4646", value_parser = parse_listen_addr)]
    pub nomad_addr: SocketAddr,

    /// Address of the Prometheus-compatible traffic replay the pools' autoscalers read.
    #[arg(long, default_value = "127.0.0.1:9091", value_parser = parse_listen_addr)]
    pub prometheus_addr: SocketAddr,

    /// Address of the controller's /metrics, /healthz and /readyz.
    #[arg(long, default_value = "127.0.0.1:9464", value_parser = parse_listen_addr)]
    pub listen: SocketAddr,

    /// Nomad client nodes in all, spread evenly over the datacenters.
    #[arg(long, default_value_t = 8)]
    pub nodes: usize,

    /// Datacenters (zones) of the emulated Nomad, comma-separated. The example face-match pool
    /// uses eu-west-1a and eu-west-1b. The nodes of datacenter k also get node meta
    /// `zone=rack-<k+1>`, which the example OCR pool selects its zones by.
    #[arg(long, value_delimiter = ',', default_value = "eu-west-1a,eu-west-1b")]
    pub datacenters: Vec<String>,

    /// `nvidia/gpu` devices per node.
    #[arg(long, default_value_t = 2)]
    pub gpus_per_node: i64,

    /// Simulated seconds per wall second for Nomad, the traffic and the controller: at 60, a
    /// 20-minute autoscaling cycle takes 20 seconds.
    #[arg(long, default_value_t = 60.0)]
    pub speed: f64,

    /// A `timestamp,requests` trace with one row per minute. Default: the NASA July 1995 trace
    /// built into the binary.
    #[arg(long)]
    pub trace: Option<PathBuf>,

    /// Requests per day the trace is rescaled to, such as 2000000/day (or 2000000).
    #[arg(long, value_parser = super::simulate::parse_per_day, default_value = "2000000/day")]
    pub scale_to: f64,

    /// Day of the trace the replay starts at, so earlier days serve as history.
    #[arg(long, default_value_t = 7)]
    pub start_day: u32,

    /// Pool files or directories to apply instead of the built-in examples.
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<PathBuf>,

    /// Run only the emulated cluster and the traffic replay, without the controller.
    #[arg(long)]
    pub no_controller: bool,

    /// Log filter for the controller and the emulators, written to stderr: a level such as
    /// `info`, or a filter such as `steward=debug,warn`. Default: `RUST_LOG`, else `warn`, so
    /// the live view on stdout stays readable.
    #[arg(long)]
    pub log_level: Option<String>,

    /// Seconds between two refreshes of the live view (wall time).
    #[arg(long, default_value_t = 2.0)]
    pub refresh: f64,
}

/// Runs the chosen emulator, or everything.
pub async fn run(args: Args) -> CliResult {
    match args.command {
        Some(DevCommand::Consul(consul)) => dev_consul::run(consul).await,
        Some(DevCommand::Nomad(nomad)) => dev_nomad::run(nomad).await,
        None => run_all(args.all).await,
    }
}

async fn run_all(args: AllArgs) -> CliResult {
    check_args(&args)?;
    let level = args
        .log_level
        .clone()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "warn".to_owned());
    crate::telemetry::init_logging(crate::telemetry::LogFormat::Text, Some(&level))
        .map_err(CliError::usage)?;
    let clock = SimClock::starting_now(args.speed);
    warn_if_exposed("Consul emulator", args.consul_addr, false);
    warn_if_exposed("Nomad emulator", args.nomad_addr, false);

    let samples = load_trace(args.trace.as_ref())?;
    let documents = load_pools(&args.files)?;

    let consul = ConsulEmulator::start(ConsulEmulatorConfig {
        addr: args.consul_addr,
        ..ConsulEmulatorConfig::default()
    })
    .await
    .context("the Consul emulator did not start; choose a free address with --consul-addr")?;

    let nomad = NomadEmulator::start(nomad_config(&args, clock))
        .await
        .context("the Nomad emulator did not start; choose a free address with --nomad-addr")?;

    let daily_total: f64 = samples.iter().map(|s| s.rps * 60.0).sum::<f64>() * 86_400.0
        / (samples.len() as f64 * 60.0);
    let scale = if daily_total > 0.0 {
        args.scale_to / daily_total
    } else {
        1.0
    };
    let start_minute = i64::from(args.start_day) * 24 * 60;
    let trace_days = samples.len() / (24 * 60);
    if start_minute >= samples.len() as i64 {
        return Err(CliError::usage(anyhow::anyhow!(
            "--start-day {} is past the end of the trace, which covers {trace_days} whole days: \
             give a day from 0 to {}",
            args.start_day,
            trace_days.saturating_sub(1)
        )));
    }
    let replay = TrafficReplay::new(&samples, scale, start_minute, clock)
        .ok_or_else(|| CliError::usage(anyhow::anyhow!("the trace has no rows")))?;
    let traffic = traffic::serve(args.prometheus_addr, replay.clone())
        .await
        .with_context(|| {
            format!(
                "failed to listen on {} for the traffic replay; choose a free address with \
                 --prometheus-addr",
                args.prometheus_addr
            )
        })?;

    super::output::println(format!("consul emulator   {}", consul.url()))?;
    super::output::println(format!(
        "nomad emulator    {} ({} nodes in {})",
        nomad.url(),
        args.nodes,
        args.datacenters.join(", ")
    ))?;
    super::output::println(format!(
        "traffic replay    {} (trace counts times {scale:.2}, about {:.0} requests a day)",
        traffic.url(),
        args.scale_to
    ))?;

    let consul_client = ConsulClient::for_url(consul.url()).map_err(CliError::failure)?;
    let keys = Keys::new("steward/").map_err(CliError::failure)?;
    let documents = point_metrics_at(documents, &traffic.url());
    apply_pools(&consul_client, &keys, &documents).await?;
    // The CLI reads this key, so that `override set --for` and the ages it prints follow the
    // sped-up clock of this run's controller. With --no-controller, a controller started by
    // hand runs on the wall clock, and so does the CLI.
    if !args.no_controller {
        let anchor = serde_json::to_vec(&clock.anchor()).map_err(CliError::failure)?;
        consul_client
            .kv_put(
                &keys.dev_clock(),
                &anchor,
                None,
                &crate::consul::WriteMode::Plain,
            )
            .await
            .map_err(CliError::failure)?;
    }

    let shutdown = CancellationToken::new();
    let controller = if args.no_controller {
        None
    } else {
        Some(start_controller(&args, &consul, &nomad, clock, shutdown.clone()).await?)
    };

    // Repeated in the view, which redraws over the start-up lines on a terminal.
    let addresses = format!(
        "consul {}   nomad {}   replay {}",
        consul.url(),
        nomad.url(),
        traffic.url()
    );
    let view = live_view(
        &consul_client,
        &keys,
        ViewSources {
            nomad: &nomad,
            replay: &replay,
            addresses: &addresses,
            with_controller: !args.no_controller,
        },
        args.refresh,
        shutdown.clone(),
    );
    let mut controller = controller;
    let controller_end = tokio::select! {
        // Ctrl-C or SIGTERM ends everything; the view never ends by itself.
        signal = super::signal::shutdown_signal() => {
            signal.context("failed to wait for a shutdown signal")?;
            None
        }
        () = view => None,
        // A controller that stops by itself (such as a busy --listen port) ends the run.
        end = controller_ended(&mut controller) => Some(end),
    };

    super::output::println("\nstopping")?;
    shutdown.cancel();
    if let Some(task) = controller
        && controller_end.is_none()
        && let Err(error) = task.await
    {
        tracing::warn!(%error, "controller task ended abnormally");
    }
    traffic.shutdown().await;
    nomad.shutdown().await;
    consul.shutdown().await;
    match controller_end {
        Some(Err(message)) => Err(CliError::failure(anyhow::anyhow!(
            "controller stopped: {message}"
        ))),
        Some(Ok(())) => Err(CliError::failure(anyhow::anyhow!(
            "controller stopped without an error before the shutdown signal"
        ))),
        None => Ok(()),
    }
}

/// Waits for the controller task to end and returns its error text. Without a controller it
/// never returns.
async fn controller_ended(
    task: &mut Option<tokio::task::JoinHandle<Result<(), crate::runtime::Error>>>,
) -> Result<(), String> {
    match task.as_mut() {
        Some(task) => match task.await {
            Ok(result) => result.map_err(|error| error.to_string()),
            Err(join) => Err(join.to_string()),
        },
        None => std::future::pending().await,
    }
}

fn check_args(args: &AllArgs) -> CliResult {
    if !(args.speed.is_finite() && args.speed > 0.0) {
        return Err(CliError::usage(anyhow::anyhow!(
            "--speed {} must be a positive number, such as 60",
            args.speed
        )));
    }
    if args.datacenters.is_empty() || args.datacenters.iter().any(|dc| dc.trim().is_empty()) {
        return Err(CliError::usage(anyhow::anyhow!(
            "--datacenters {:?} must list datacenter names, such as eu-west-1a,eu-west-1b",
            args.datacenters.join(",")
        )));
    }
    let mut seen = std::collections::BTreeSet::new();
    if let Some(duplicate) = args.datacenters.iter().find(|dc| !seen.insert(dc.as_str())) {
        return Err(CliError::usage(anyhow::anyhow!(
            "--datacenters lists {duplicate:?} twice: give each datacenter once"
        )));
    }
    if args.nodes < args.datacenters.len() {
        return Err(CliError::usage(anyhow::anyhow!(
            "--nodes {} leaves a datacenter empty: give at least one node per datacenter ({})",
            args.nodes,
            args.datacenters.len()
        )));
    }
    if !(args.scale_to.is_finite() && args.scale_to > 0.0) {
        return Err(CliError::usage(anyhow::anyhow!(
            "--scale-to {} must be a positive number of requests per day, such as 2000000",
            args.scale_to
        )));
    }
    if !(args.refresh.is_finite() && args.refresh > 0.0) {
        return Err(CliError::usage(anyhow::anyhow!(
            "--refresh {} must be a positive number of seconds",
            args.refresh
        )));
    }
    Ok(())
}

/// Builds the emulated cluster: `nodes` nodes spread over the datacenters, each with node
/// meta `zone=rack-<k+1>` for datacenter k.
fn nomad_config(args: &AllArgs, clock: SimClock) -> NomadEmulatorConfig {
    let mut config = NomadEmulatorConfig {
        addr: args.nomad_addr,
        clock: Some(clock),
        datacenters: args.datacenters.clone(),
        nodes_per_dc: 0,
        speed: args.speed,
        gpus: args.gpus_per_node,
        node_class: "gpu".to_owned(),
        zone_meta: true,
        ..NomadEmulatorConfig::default()
    };
    let zones = args.datacenters.len();
    config.node_specs = (0..args.nodes)
        .map(|i| zone_node_spec(&config, i % zones))
        .collect();
    config
}

fn load_trace(path: Option<&PathBuf>) -> Result<Vec<crate::autoscale::Sample>, CliError> {
    let (name, text) = match path {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("failed to read trace {}", path.display()))
                .map_err(CliError::usage)?;
            (path.display().to_string(), text)
        }
        None => (
            "nasa_ksc_jul1995_1min.csv (built in)".to_owned(),
            NASA_TRACE.to_owned(),
        ),
    };
    crate::autoscale::source::parse_trace(&name, &text).map_err(CliError::usage)
}

fn load_pools(files: &[PathBuf]) -> Result<Vec<LoadedDocument>, CliError> {
    if !files.is_empty() {
        return spec::load_paths(files)
            .map_err(|report| CliError::usage(anyhow::anyhow!("{report}")));
    }
    let mut documents = Vec::new();
    for (source, text) in EXAMPLE_POOLS {
        let parsed = spec::parse_str(text, source).map_err(|report| {
            CliError::failure(anyhow::anyhow!("built-in example is invalid:\n{report}"))
        })?;
        documents.extend(parsed);
    }
    Ok(documents)
}

/// Points every pool's autoscaling metric at the traffic replay, keeping its query, and drops
/// rollout analyses, because the addresses in the pool files name servers that do not exist on
/// this machine.
fn point_metrics_at(documents: Vec<LoadedDocument>, prometheus_url: &str) -> Vec<LoadedDocument> {
    documents
        .into_iter()
        .map(|mut loaded| {
            if let Document::WorkerPool(pool) = &mut loaded.document
                && pool.spec.rollout.analysis.take().is_some()
            {
                // The replay serves only a request rate, so an analysis query (an error ratio,
                // say) has nothing to read here and would hold every rollout for a person.
                tracing::warn!(
                    pool = %pool.metadata.name,
                    "rollout analysis left out, because the traffic replay serves no error metrics"
                );
            }
            if let Document::WorkerPool(pool) = &mut loaded.document
                && let Some(autoscaling) = &mut pool.spec.autoscaling
            {
                let query = match &autoscaling.metric {
                    MetricSource::Prometheus { query, .. } => query.clone(),
                    _ => "sum(rate(requests_total[5m]))".to_owned(),
                };
                autoscaling.metric = MetricSource::Prometheus {
                    address: prometheus_url.to_owned(),
                    query,
                };
            }
            loaded
        })
        .collect()
}

async fn apply_pools(
    client: &ConsulClient,
    keys: &Keys,
    documents: &[LoadedDocument],
) -> CliResult {
    let plan = apply::plan(client, keys, documents, false).await?;
    for line in plan.lines(false) {
        super::output::println(line)?;
    }
    apply::execute(client, &plan).await
}

/// Starts the controller on the emulators, over HTTP as against real servers, on the shared
/// sped-up clock, and returns its task.
async fn start_controller(
    args: &AllArgs,
    consul: &crate::sim::consul::RunningConsul,
    nomad: &RunningNomad,
    clock: SimClock,
    shutdown: CancellationToken,
) -> Result<tokio::task::JoinHandle<Result<(), crate::runtime::Error>>, CliError> {
    let consul_client = ConsulClient::for_url(consul.url()).map_err(CliError::failure)?;
    let keys = Keys::new("steward/").map_err(CliError::failure)?;
    let nomad_config = crate::nomad::Config::new(&nomad.url()).map_err(CliError::failure)?;
    let nomad_client = crate::nomad::Client::new(nomad_config).map_err(CliError::failure)?;

    let mut config = ControllerConfig::new(consul_client, keys, nomad_client, "steward-dev");
    config.listen = Some(args.listen);
    config.clock = Arc::new(clock);
    let controller = Controller::new(config).map_err(CliError::failure)?;
    super::output::println(format!(
        "controller        metrics on http://{}/metrics",
        args.listen
    ))?;

    Ok(tokio::spawn(controller.run(shutdown)))
}

/// The sources of the live view besides the pools' statuses.
#[derive(Clone, Copy)]
struct ViewSources<'a> {
    nomad: &'a RunningNomad,
    replay: &'a TrafficReplay,
    /// The emulators' and the replay's URLs, one line.
    addresses: &'a str,
    with_controller: bool,
}

/// Redraws a view of every pool until `shutdown`: traffic, desired, running and healthy
/// workers per zone, phase and the last decision.
async fn live_view(
    consul: &ConsulClient,
    keys: &Keys,
    sources: ViewSources<'_>,
    refresh_secs: f64,
    shutdown: CancellationToken,
) {
    let interactive = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(refresh_secs));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let statuses = read_statuses(consul, keys).await;
        let text = render_view(sources, &statuses);
        let mut stdout = std::io::stdout().lock();
        if interactive {
            // Clear the screen and move home, so the view redraws in place.
            let _ = write!(stdout, "\x1b[2J\x1b[H");
        }
        let _ = writeln!(stdout, "{text}");
        let _ = stdout.flush();
    }
}

async fn read_statuses(consul: &ConsulClient, keys: &Keys) -> Vec<Status> {
    let prefix = keys.status_prefix();
    match consul.kv_list(&prefix, &Default::default()).await {
        Ok((pairs, _)) => pairs
            .iter()
            .filter_map(|pair| serde_json::from_slice::<Status>(&pair.value).ok())
            .collect(),
        Err(error) => {
            tracing::debug!(%error, "no status to show yet");
            Vec::new()
        }
    }
}

fn render_view(sources: ViewSources<'_>, statuses: &[Status]) -> String {
    let ViewSources {
        nomad,
        replay,
        addresses,
        with_controller,
    } = sources;
    let now = replay.clock().now_secs();
    let time = jiff::Timestamp::from_second(now)
        .map(|t| t.strftime("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default();
    let state = nomad.state();
    let allocations = if state.allocations_by_status.is_empty() {
        "none".to_owned()
    } else {
        state
            .allocations_by_status
            .iter()
            .map(|(status, count)| format!("{count} {status}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut lines = vec![
        format!(
            "steward dev   simulated time {time} UTC   traffic {:.1} requests/s",
            replay.current_rate()
        ),
        addresses.to_owned(),
        format!(
            "nomad: {} of {} nodes ready, allocations: {allocations}",
            state.nodes.iter().filter(|n| n.status == "ready").count(),
            state.nodes.len(),
        ),
        String::new(),
    ];
    if statuses.is_empty() {
        let note = if with_controller {
            "no pool status yet: the controller writes it after its first reconcile"
        } else {
            "the controller is not running (--no-controller); Nomad jobs as they are:"
        };
        lines.push(note.to_owned());
        for job in &state.jobs {
            lines.push(format!(
                "job {}/{}  version {}  running {}  pending {}",
                job.namespace, job.id, job.version, job.running, job.pending
            ));
        }
        return lines.join("\n");
    }
    let now_ts = jiff::Timestamp::from_second(now).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    lines.push(crate::reconcile::format::table(statuses, now_ts));
    for status in statuses {
        if let Some(decision) = status.last_decision() {
            lines.push(format!(
                "{}: {} ({})",
                status.pool, decision.action, decision.reason
            ));
        }
    }
    lines.join("\n")
}
