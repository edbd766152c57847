//! Nomad: typed models of its HTTP API and a client for the endpoints Steward uses.

mod client;
mod config;
mod endpoints;
mod error;
mod events;
mod metrics;
pub mod model;
mod watch;

pub use client::{
    BLOCKING_TIMEOUT_MARGIN, Client, MAX_WAIT, QueryMeta, QueryOptions, Response, TOKEN_HEADER,
};
pub use config::{Config, DEFAULT_ADDRESS, NomadArgs, SecretToken};
pub use error::{DEPLOYMENT_ACTIVE_ERROR, ENFORCE_INDEX_ERROR_PREFIX, Error};
pub use events::{
    DEFAULT_READ_TIMEOUT, Event, EventLine, EventStream, EventStreamConfig, Frame, StreamItem,
    TopicFilter, decode_line,
};
pub use metrics::{PrometheusRequestMetrics, RequestMetrics, RequestRecord};
pub use model::*;
pub use watch::{Watch, WatchConfig};
