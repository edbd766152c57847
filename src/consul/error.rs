//! Errors of the Consul client, each marked retryable or permanent.

/// One failed operation of a rolled-back transaction, as Consul reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TxnError {
    /// Position of the failed operation in the request.
    pub op_index: usize,
    /// Consul's description of the failure.
    pub what: String,
}

/// A failed Consul call. [`Error::is_retryable`] returns whether trying again can help.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The key does not exist (permanent).
    #[error("consul key {key:?} not found")]
    NotFound { key: String },

    /// A check-and-set write or delete found another ModifyIndex: someone else changed the key
    /// first (permanent until the caller re-reads the key).
    #[error(
        "conflict on consul key {key:?}: it changed since index {expected_index}; read it again and retry"
    )]
    CasConflict { key: String, expected_index: u64 },

    /// A transaction was rolled back (HTTP 409) and nothing was applied (permanent until the
    /// caller re-reads).
    #[error("consul transaction rolled back: {}", describe_txn_errors(.errors))]
    TxnRollback { errors: Vec<TxnError> },

    /// The token lacks permission or is unknown (HTTP 403; permanent).
    #[error(
        "permission denied by consul on {endpoint}: {message}; check CONSUL_HTTP_TOKEN or --consul-token"
    )]
    PermissionDenied { endpoint: String, message: String },

    /// Consul rejected the key name, or it is outside `[A-Za-z0-9._/-]` (permanent).
    #[error("invalid consul key {key:?}: {message}")]
    InvalidKey { key: String, message: String },

    /// The value or transaction body exceeds Consul's size or operation limit (HTTP 413;
    /// permanent for this request).
    #[error("request to consul {endpoint} is too large: {message}")]
    TooLarge { endpoint: String, message: String },

    /// The session does not exist or has expired (HTTP 404 on renew; permanent for this id).
    #[error("consul session {id} not found; it expired or was destroyed")]
    SessionNotFound { id: String },

    /// Consul could not be reached, or returned 429 or 5xx (retryable).
    #[error("consul unavailable at {endpoint}: {message}")]
    Unavailable {
        endpoint: String,
        status: Option<u16>,
        message: String,
    },

    /// The request got no response within its timeout (retryable).
    #[error("request to consul {endpoint} timed out after {timeout:?}")]
    Timeout {
        endpoint: String,
        timeout: std::time::Duration,
    },

    /// Consul rejected the request (another 4xx; permanent).
    #[error("consul rejected {endpoint} with status {status}: {message}")]
    Rejected {
        endpoint: String,
        status: u16,
        message: String,
    },

    /// The response could not be decoded (permanent, because the server does not speak
    /// Consul's API).
    #[error("failed to decode consul response from {endpoint}: {message}")]
    Decode { endpoint: String, message: String },

    /// The connection settings are invalid (permanent).
    #[error("invalid consul settings: {message}")]
    Config { message: String },
}

fn describe_txn_errors(errors: &[TxnError]) -> String {
    errors
        .iter()
        .map(|e| format!("operation {}: {}", e.op_index, e.what))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    /// Returns whether the same request may succeed later without any change by the caller.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::Timeout { .. })
    }

    /// Returns whether another writer changed the data first (a CAS failure or a rolled-back
    /// transaction whose check failed).
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::CasConflict { .. } | Self::TxnRollback { .. })
    }
}

/// Result of a Consul call.
pub type Result<T, E = Error> = std::result::Result<T, E>;
