//! Telemetry: Prometheus metrics, the `/metrics`, `/healthz` and `/readyz` endpoints, and
//! logging setup with one span per reconcile.

mod logging;
mod metrics;
mod server;

pub use logging::{LogFormat, LoggingError, init_logging, reconcile_span};
pub use metrics::{Metrics, RequestObserver};
pub use server::{DEFAULT_LISTEN, Readiness, TelemetryArgs, router, serve};
