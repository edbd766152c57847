//! `runtime::Error`: failures of the controller and of one reconcile.

use std::net::SocketAddr;

use super::queue::QueueConfigError;
use crate::{consul, reconcile};

/// A failure of the controller or of one reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The work queue settings are invalid. Permanent: fix the setting named.
    #[error(transparent)]
    Queue(#[from] QueueConfigError),

    /// The metrics address could not be bound. Permanent for this address.
    #[error(
        "failed to listen on {addr} for metrics: {source}; choose a free address with --listen"
    )]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },

    /// The leader lock key or the status keys are invalid. Permanent: fix `--prefix`.
    #[error("invalid Consul key: {0}")]
    Keys(#[source] consul::Error),

    /// Planning or a Nomad write of `pool` failed. Retryable when the source is.
    #[error("reconcile of pool {pool} failed: {source}")]
    Reconcile {
        pool: String,
        #[source]
        source: reconcile::Error,
    },

    /// This controller lost the leader lock during the reconcile of `pool`, so nothing more
    /// was written. Retryable by the current leader.
    #[error("reconcile of pool {pool} stopped: this controller is no longer the leader")]
    NotLeader { pool: String },

    /// Another writer changed the status of `pool` since it was read. Retryable: the stored
    /// status was read again.
    #[error(
        "status of pool {pool} changed concurrently (expected modify index {expected}); it was read again"
    )]
    StatusConflict { pool: String, expected: u64 },

    /// Writing or deleting the status of `pool` failed. Retryable when Consul was
    /// unavailable.
    #[error("failed to write the status of pool {pool}: {source}")]
    Status {
        pool: String,
        #[source]
        source: consul::Error,
    },
}

impl Error {
    /// Returns whether retrying later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Queue(_) | Self::Listen { .. } | Self::Keys(_) => false,
            Self::Reconcile { source, .. } => source.is_retryable(),
            Self::NotLeader { .. } | Self::StatusConflict { .. } => true,
            Self::Status { source, .. } => source.is_retryable(),
        }
    }

    /// Returns a short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Queue(_) | Self::Listen { .. } | Self::Keys(_) => "config",
            Self::Reconcile { source, .. } => source.kind(),
            Self::NotLeader { .. } => "not_leader",
            Self::StatusConflict { .. } => "status_conflict",
            Self::Status { .. } => "status",
        }
    }
}
