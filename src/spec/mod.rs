//! The declared objects: `WorkerPool` and `Override` (`apiVersion: steward/v1`).

mod duration;
mod types;

pub use duration::Duration;
pub use types::*;
