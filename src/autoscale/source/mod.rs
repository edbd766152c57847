//! Sources of the request rate: Prometheus, the RabbitMQ management API and CSV replay.

use std::future::Future;
use std::time::Duration;

use crate::spec;

use super::Sample;

mod csv;
mod prometheus;
mod rabbitmq;

pub use csv::{CsvSource, parse_trace};
pub use prometheus::PrometheusSource;
pub use rabbitmq::{QueueStats, RabbitmqSource};

/// How long one metric request may take before it fails with [`MetricError::Timeout`]. A
/// sizing cycle runs every few minutes, so a slow source must not hold it longer than this.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A failed metric read. Retryable errors are worth another try next cycle; permanent ones
/// need a fix to the pool's spec or the source.
#[derive(Debug, thiserror::Error)]
pub enum MetricError {
    /// Retryable: the server did not respond within the client's timeout.
    #[error("request to {url} timed out")]
    Timeout { url: String },
    /// Retryable: the connection failed.
    #[error("request to {url} failed: {source}")]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// Retryable for 5xx, permanent for 4xx (a bad query, wrong credentials, unknown queue).
    #[error("{url} returned HTTP {status}: {body}")]
    Http {
        url: String,
        status: u16,
        body: String,
    },
    /// Permanent until the query is fixed: Prometheus returned `status: error`.
    #[error("Prometheus query {query:?} failed ({error_type}): {message}")]
    Query {
        query: String,
        error_type: String,
        message: String,
    },
    /// Permanent: the response body is not what the API documents.
    #[error("invalid response from {url}: {message}")]
    InvalidResponse { url: String, message: String },
    /// Permanent until the query is fixed: it must return exactly one series.
    #[error(
        "query {query:?} returned {count} series; aggregate it (for example with sum()) to one"
    )]
    MultipleSeries { query: String, count: usize },
    /// Retryable: the value is NaN or infinite.
    #[error("{what} returned a non-finite value {value}")]
    NonFinite { what: String, value: f64 },
    /// Permanent: the source's settings are incomplete.
    #[error("invalid metric source: {0}")]
    Config(String),
    /// Permanent: the CSV trace cannot be read or parsed.
    #[error("trace {path}: {message}")]
    Trace { path: String, message: String },
}

impl MetricError {
    /// True when the same read may succeed next cycle without a change to the spec.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Timeout { .. } | Self::Transport { .. } | Self::NonFinite { .. } => true,
            Self::Http { status, .. } => *status >= 500,
            Self::Query { .. }
            | Self::InvalidResponse { .. }
            | Self::MultipleSeries { .. }
            | Self::Config(_)
            | Self::Trace { .. } => false,
        }
    }
}

/// A request-rate source. Rates are in requests per second, times in Unix seconds.
pub trait MetricSource: Send + Sync {
    /// Reads the rate over `[start, end]` at `step` resolution, sorted by time. Non-finite
    /// points are dropped.
    fn history(
        &self,
        start: i64,
        end: i64,
        step: Duration,
    ) -> impl Future<Output = Result<Vec<Sample>, MetricError>> + Send;

    /// Reads the current rate; `None` when the source has no value now.
    fn current(&self) -> impl Future<Output = Result<Option<f64>, MetricError>> + Send;
}

/// Any of the sources a pool can name, built from its spec.
#[derive(Debug, Clone)]
pub enum Source {
    Prometheus(PrometheusSource),
    Rabbitmq(RabbitmqSource),
    Csv(CsvSource),
}

impl Source {
    /// Builds the source a pool's spec names. The RabbitMQ password is read from the
    /// environment variable `passwordEnv` now.
    pub fn from_spec(spec: &spec::MetricSource) -> Result<Self, MetricError> {
        match spec {
            spec::MetricSource::Prometheus { address, query } => Ok(Self::Prometheus(
                PrometheusSource::new(address, query, http_client()?)?,
            )),
            spec::MetricSource::Rabbitmq {
                address,
                vhost,
                queue,
                username,
                password_env,
            } => {
                let password = match password_env {
                    Some(name) => Some(std::env::var(name).map_err(|_| {
                        MetricError::Config(format!(
                            "environment variable {name} (passwordEnv) is not set; export the RabbitMQ password in it"
                        ))
                    })?),
                    None => None,
                };
                let credentials = username.clone().map(|user| (user, password));
                Ok(Self::Rabbitmq(RabbitmqSource::new(
                    address,
                    vhost,
                    queue,
                    credentials,
                    http_client()?,
                )?))
            }
            spec::MetricSource::Csv { path } => Ok(Self::Csv(CsvSource::open(path)?)),
        }
    }
}

impl MetricSource for Source {
    async fn history(
        &self,
        start: i64,
        end: i64,
        step: Duration,
    ) -> Result<Vec<Sample>, MetricError> {
        match self {
            Self::Prometheus(s) => s.history(start, end, step).await,
            Self::Rabbitmq(s) => s.history(start, end, step).await,
            Self::Csv(s) => s.history(start, end, step).await,
        }
    }

    async fn current(&self) -> Result<Option<f64>, MetricError> {
        match self {
            Self::Prometheus(s) => s.current().await,
            Self::Rabbitmq(s) => s.current().await,
            Self::Csv(s) => s.current().await,
        }
    }
}

/// Builds the HTTP client the sources share, with the ring TLS provider and
/// [`REQUEST_TIMEOUT`].
pub fn http_client() -> Result<reqwest::Client, MetricError> {
    http_client_with_timeout(REQUEST_TIMEOUT)
}

/// Builds an HTTP client whose requests fail with [`MetricError::Timeout`] after `timeout`.
pub fn http_client_with_timeout(timeout: Duration) -> Result<reqwest::Client, MetricError> {
    // The crate enables rustls without a default provider. A second install fails harmlessly
    // (another provider is already in place), so its error is ignored.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|e| MetricError::Config(format!("cannot build the HTTP client: {e}")))
}

/// Sends a GET and returns the body, mapping timeouts, transport and HTTP errors.
async fn get_body(
    request: reqwest::RequestBuilder,
    url: &str,
) -> Result<(u16, String), MetricError> {
    let response = request.send().await.map_err(|e| map_reqwest(url, e))?;
    let status = response.status().as_u16();
    let body = response.text().await.map_err(|e| map_reqwest(url, e))?;
    Ok((status, body))
}

fn map_reqwest(url: &str, error: reqwest::Error) -> MetricError {
    if error.is_timeout() {
        MetricError::Timeout {
            url: url.to_owned(),
        }
    } else {
        MetricError::Transport {
            url: url.to_owned(),
            source: error,
        }
    }
}

/// Shortens a response body for an error message.
fn excerpt(body: &str) -> String {
    const MAX: usize = 300;
    match body.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &body[..cut]),
        None => body.to_owned(),
    }
}

/// Returns the base URL without a trailing slash, or a config error naming it.
fn base_url(address: &str) -> Result<String, MetricError> {
    let trimmed = address.trim_end_matches('/');
    if !(trimmed.starts_with("http://") || trimmed.starts_with("https://")) {
        return Err(MetricError::Config(format!(
            "address {address:?} must be an http:// or https:// URL such as http://127.0.0.1:9090"
        )));
    }
    Ok(trimmed.to_owned())
}
