//! The runtime: work queue and the telemetry endpoints.

mod queue;
mod telemetry;
