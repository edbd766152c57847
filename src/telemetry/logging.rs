//! Logging setup and the reconcile span.

use tracing::Span;
use tracing_subscriber::EnvFilter;

/// `--log-format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, with span fields.
    Json,
}

/// Logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// Permanent: fix the filter.
    #[error(
        "invalid log level {filter:?}: {message}; use a level such as \"info\" or a filter such as \"steward=debug,info\""
    )]
    InvalidFilter { filter: String, message: String },
    /// Permanent: logging is set up once per process.
    #[error("logging is already initialized")]
    AlreadyInitialized,
}

/// Installs the global subscriber writing to stderr. The filter is `level` when given,
/// else `RUST_LOG`, else `info`.
pub fn init_logging(format: LogFormat, level: Option<&str>) -> Result<(), LoggingError> {
    let filter_text = level
        .map(str::to_owned)
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info".to_owned());
    let filter = EnvFilter::try_new(&filter_text).map_err(|error| LoggingError::InvalidFilter {
        filter: filter_text.clone(),
        message: error.to_string(),
    })?;

    // Colour only for a person at a terminal, not for a file or a log collector. A failed
    // write (stderr piped to a reader that has exited) is dropped: by default the subscriber
    // reports it with `eprintln!`, which panics on the same closed pipe inside whichever task
    // logged, such as the one that handles SIGTERM.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    result.map_err(|_| LoggingError::AlreadyInitialized)
}

/// Opens the span of one reconcile: `pool`, the `reason` it was queued for, the pool key's
/// `spec_index` (Consul ModifyIndex) and a `reconcile_id` unique per reconcile. The empty
/// `job` and `version` fields are recorded with `Span::record` once the pool is read.
pub fn reconcile_span(pool: &str, reason: &str, spec_index: u64, reconcile_id: &str) -> Span {
    tracing::info_span!(
        "reconcile",
        pool,
        reason,
        spec_index,
        reconcile_id,
        job = tracing::field::Empty,
        version = tracing::field::Empty,
    )
}
