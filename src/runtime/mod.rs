//! Runtime: the machinery around reconciles. Watches over Consul and Nomad fill a
//! reflector-style cache, the work queue runs one reconcile per pool at a time, the leader
//! lock decides who writes, and [`Controller`] puts them together.

mod autoscaling;
pub mod cache;
pub mod clock;
pub mod controller;
pub mod error;
pub mod executor;
pub mod queue;
mod rollout;
pub mod watches;

pub use cache::{Cache, CacheCounts, CachedJob, Source};
pub use clock::{Clock, SystemClock};
pub use controller::{Controller, ControllerConfig, ControllerHandle};
pub use error::Error;
pub use executor::{Fence, NomadExecutor};
pub use queue::{QueueConfig, QueueConfigError, WorkQueue};
