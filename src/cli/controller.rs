//! `steward controller`: runs the reconciliation controller until SIGTERM or SIGINT.

use std::net::SocketAddr;

use anyhow::Context as _;
use clap::Args as ClapArgs;
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::{CliError, CliResult};
use crate::consul::ConsulArgs;
use crate::nomad::{self, NomadArgs};
use crate::runtime::{Controller, ControllerConfig, QueueConfig};
use crate::telemetry::{self, LogFormat};

/// Run the controller: watch WorkerPools in Consul and the cluster in Nomad, and reconcile
/// them while holding the leader lock. Several replicas may run; one leads at a time.
#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(flatten)]
    pub consul: ConsulArgs,

    #[command(flatten)]
    pub nomad: NomadArgs,

    /// Address serving /metrics, /healthz and /readyz.
    #[arg(long, default_value = telemetry::DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    /// Log line format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter such as `info` or `steward=debug,info`; overrides RUST_LOG.
    #[arg(long)]
    pub log_level: Option<String>,

    /// This instance's name in the leader key and in the status it writes (default: the
    /// host name and the process ID).
    #[arg(long = "id")]
    pub identity: Option<String>,

    /// Leave the Nomad job of a deleted pool running instead of stopping it.
    #[arg(long)]
    pub orphan_on_delete: bool,

    /// Maximum reconciles running at once.
    #[arg(long, default_value_t = QueueConfig::default().concurrency)]
    pub concurrency: usize,
}

/// Returns `HOSTNAME-PID`, with `steward` when the host name is unknown.
fn default_identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|name| !name.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|name| name.trim().to_owned())
                .filter(|name| !name.is_empty())
        })
        .unwrap_or_else(|| "steward".to_owned());
    format!("{host}-{}", std::process::id())
}

/// Runs the controller; see [`Args`].
pub async fn run(args: Args) -> CliResult {
    telemetry::init_logging(args.log_format, args.log_level.as_deref()).map_err(CliError::usage)?;

    let consul = args.consul.client().map_err(CliError::usage)?;
    let keys = args.consul.keys().map_err(CliError::usage)?;
    let nomad_config = args.nomad.to_config().map_err(CliError::usage)?;
    let nomad = nomad::Client::new(nomad_config).map_err(CliError::usage)?;
    let identity = args.identity.unwrap_or_else(default_identity);

    let mut config = ControllerConfig::new(consul, keys, nomad, identity.clone());
    config.listen = Some(args.listen);
    config.orphan_on_delete = args.orphan_on_delete;
    config.queue.concurrency = args.concurrency;
    let controller = Controller::new(config).map_err(CliError::usage)?;

    let shutdown = CancellationToken::new();
    let signals = tokio::spawn(wait_for_signal(shutdown.clone()));
    info!(%identity, "controller starting");
    let result = controller.run(shutdown.clone()).await;
    signals.abort();
    result
        .context("controller failed")
        .map_err(CliError::failure)
}

/// Cancels `shutdown` on the first SIGTERM or SIGINT.
async fn wait_for_signal(shutdown: CancellationToken) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "SIGTERM handler not installed");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        // Interrupt from a terminal.
        _ = tokio::signal::ctrl_c() => info!("SIGINT received, shutting down"),
        // Stop from a supervisor such as Nomad or systemd.
        () = terminate => info!("SIGTERM received, shutting down"),
    }
    shutdown.cancel();
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use crate::cli::Cli;

    #[test]
    fn flags_have_unique_ids() {
        Cli::command().debug_assert();
    }

    #[test]
    fn controller_flags_parse() {
        let cli = <Cli as clap::Parser>::try_parse_from([
            "steward",
            "controller",
            "--consul-addr",
            "127.0.0.1:8500",
            "--nomad-addr",
            "http://127.0.0.1:4646",
            "--id",
            "a",
            "--concurrency",
            "8",
            "--orphan-on-delete",
        ])
        .expect("flags parse");
        let crate::cli::Command::Controller(args) = cli.command else {
            panic!("parsed another command");
        };
        assert_eq!(args.identity.as_deref(), Some("a"));
        assert_eq!(args.concurrency, 8);
        assert!(args.orphan_on_delete);
        assert_eq!(args.nomad.address, "http://127.0.0.1:4646");
    }
}
