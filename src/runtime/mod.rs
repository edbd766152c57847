//! Runtime: the machinery around reconciles. The work queue lives here; watches over Consul
//! and Nomad and leader election come next.

pub mod queue;

pub use queue::{QueueConfig, QueueConfigError, WorkQueue};
