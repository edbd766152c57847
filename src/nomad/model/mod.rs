//! Typed models of Nomad's HTTP API payloads.

mod duration;
mod job;

pub use duration::{NomadDuration, parse_go_duration};
pub use job::*;
