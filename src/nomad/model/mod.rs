//! Typed models of Nomad's HTTP API payloads.
//!
//! Field names follow Nomad's JSON (PascalCase, Go acronyms such as `ID`, `NodeID`, `JobID`).
//! Deserialization treats a missing field and `null` alike and tolerates unknown fields;
//! the read types keep unknown fields in an `extra` map so that they serialize back unchanged.

mod allocation;
mod deployment;
mod duration;
mod evaluation;
mod job;
mod job_api;
mod node;
mod status;
mod time;

pub use allocation::*;
pub use deployment::*;
pub use duration::{GO_DURATION_PATTERN, format_go_duration, with_readable_durations};
pub use duration::{NomadDuration, parse_go_duration};
pub use evaluation::*;
pub use job::*;
pub use job_api::*;
pub use node::*;
pub use status::*;
pub use time::{UnixNanos, is_go_zero_time};
