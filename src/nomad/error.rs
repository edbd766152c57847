//! `nomad::Error`: failures of Nomad API calls, classified from the status code and the
//! plain-text body that Nomad sends on errors.

use std::time::Duration;

use reqwest::StatusCode;

/// The body prefix of a failed check-and-set on a job (`EnforceIndex` on register, a non-zero
/// `JobModifyIndex` on scale). Nomad returns it as a plain HTTP 500, and its own CLI matches
/// on this text.
pub const ENFORCE_INDEX_ERROR_PREFIX: &str = "Enforcing job modify index";

/// The body Nomad returns (HTTP 400) when a scale request meets an active deployment.
pub const DEPLOYMENT_ACTIVE_ERROR: &str = "job scaling blocked due to active deployment";

/// A failed Nomad API call. Each HTTP variant keeps the request path (which names the job,
/// allocation, node or deployment involved), the status code and the response body.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The job changed since it was read: its `JobModifyIndex` no longer matches the one sent
    /// with `EnforceIndex` (or the job exists when creation was requested). Nomad sends this as
    /// HTTP 500. Permanent as sent: re-read the job, recompute and retry with the new index.
    #[error("conflict on {path}: the job changed since it was read ({body}). Re-read it and retry")]
    Conflict {
        path: String,
        status: StatusCode,
        body: String,
    },

    /// The job has an active deployment, so Nomad rejects the count change (HTTP 400).
    /// Retryable once the deployment is terminal; do not fall back to re-registering.
    #[error("scaling rejected on {path}: the job has an active deployment; retry after it ends")]
    DeploymentActive {
        path: String,
        status: StatusCode,
        body: String,
    },

    /// The token lacks a capability, or is unknown or expired (HTTP 403). Permanent.
    #[error("permission denied on {path} ({status}): {body}. Check NOMAD_TOKEN and its policies")]
    PermissionDenied {
        path: String,
        status: StatusCode,
        body: String,
    },

    /// The job, allocation, node, deployment or evaluation does not exist (HTTP 404). Permanent.
    #[error("not found: {path} ({status}): {body}")]
    NotFound {
        path: String,
        status: StatusCode,
        body: String,
    },

    /// Nomad rejected the request as invalid (HTTP 400, or another 4xx). Permanent.
    #[error("request to {path} rejected ({status}): {body}")]
    Rejected {
        path: String,
        status: StatusCode,
        body: String,
    },

    /// Nomad failed to serve the request (HTTP 5xx other than a conflict, or 429). Retryable.
    /// Nomad also reports some invalid requests as 500 (job validation errors, draining an
    /// unknown node), so retries must be capped.
    #[error("Nomad server error on {path} ({status}): {body}")]
    Server {
        path: String,
        status: StatusCode,
        body: String,
    },

    /// The request did not reach Nomad or the connection broke. Retryable.
    #[error("request to Nomad at {path} failed: {source}")]
    Connect {
        path: String,
        #[source]
        source: reqwest::Error,
    },

    /// No response arrived within the request timeout. Retryable.
    #[error("request to Nomad at {path} timed out after {timeout:?}")]
    Timeout { path: String, timeout: Duration },

    /// The response body is not the JSON this crate expects. Permanent: the server does not
    /// speak Nomad's API, or its version differs in a way the models do not cover.
    #[error("invalid response from Nomad at {path}: {source}")]
    Decode {
        path: String,
        #[source]
        source: serde_json::Error,
    },

    /// The Nomad connection settings are invalid. Permanent: fix the flag or variable named.
    #[error("invalid Nomad configuration: {0}")]
    Config(String),
}

impl Error {
    /// Classifies a non-success response from its status code and plain-text body.
    pub fn from_response(
        path: impl Into<String>,
        status: StatusCode,
        body: impl Into<String>,
    ) -> Self {
        let path = path.into();
        let body = body.into();

        if body.contains(ENFORCE_INDEX_ERROR_PREFIX) {
            return Self::Conflict { path, status, body };
        }
        if status == StatusCode::BAD_REQUEST && body.contains(DEPLOYMENT_ACTIVE_ERROR) {
            return Self::DeploymentActive { path, status, body };
        }

        match status {
            StatusCode::FORBIDDEN => Self::PermissionDenied { path, status, body },
            StatusCode::NOT_FOUND => Self::NotFound { path, status, body },
            StatusCode::TOO_MANY_REQUESTS => Self::Server { path, status, body },
            status if status.is_server_error() => Self::Server { path, status, body },
            _ => Self::Rejected { path, status, body },
        }
    }

    /// Reports whether repeating the same request later may succeed: connection failures,
    /// timeouts, server errors and an active deployment. A conflict needs a fresh read first,
    /// so it is not retryable as sent.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Server { .. }
            | Self::Connect { .. }
            | Self::Timeout { .. }
            | Self::DeploymentActive { .. } => true,
            Self::Conflict { .. }
            | Self::PermissionDenied { .. }
            | Self::NotFound { .. }
            | Self::Rejected { .. }
            | Self::Decode { .. }
            | Self::Config(_) => false,
        }
    }

    /// Reports whether the error is a check-and-set conflict on a job.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict { .. })
    }

    /// Reports whether the resource does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }

    /// Returns the HTTP status code, when Nomad responded.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Conflict { status, .. }
            | Self::DeploymentActive { status, .. }
            | Self::PermissionDenied { status, .. }
            | Self::NotFound { status, .. }
            | Self::Rejected { status, .. }
            | Self::Server { status, .. } => Some(*status),
            Self::Connect { .. } | Self::Timeout { .. } | Self::Decode { .. } | Self::Config(_) => {
                None
            }
        }
    }

    /// Returns the response body, when Nomad responded.
    pub fn body(&self) -> Option<&str> {
        match self {
            Self::Conflict { body, .. }
            | Self::DeploymentActive { body, .. }
            | Self::PermissionDenied { body, .. }
            | Self::NotFound { body, .. }
            | Self::Rejected { body, .. }
            | Self::Server { body, .. } => Some(body),
            Self::Connect { .. } | Self::Timeout { .. } | Self::Decode { .. } | Self::Config(_) => {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(status: u16, body: &str) -> Error {
        let status = StatusCode::from_u16(status).expect("valid status code");
        Error::from_response("/v1/jobs", status, body)
    }

    #[test]
    fn enforce_index_500_is_conflict() {
        let error = classify(
            500,
            "Enforcing job modify index 100: job exists with conflicting job modify index: 117",
        );
        assert!(error.is_conflict(), "{error:?}");
        assert!(!error.is_retryable());
        assert_eq!(error.status(), Some(StatusCode::INTERNAL_SERVER_ERROR));
        assert!(error.body().is_some_and(|body| body.contains("117")));
    }

    #[test]
    fn create_only_conflict() {
        let error = classify(500, "Enforcing job modify index 0: job already exists");
        assert!(error.is_conflict(), "{error:?}");
    }

    #[test]
    fn scale_blocked_is_deployment_active() {
        let error = classify(400, "job scaling blocked due to active deployment");
        assert!(matches!(error, Error::DeploymentActive { .. }), "{error:?}");
        assert!(error.is_retryable());
    }

    #[test]
    fn other_400_is_rejected() {
        let error = classify(400, "missing task group name for scaling action");
        assert!(matches!(error, Error::Rejected { .. }), "{error:?}");
        assert!(!error.is_retryable());
    }

    #[test]
    fn forbidden_is_permission_denied() {
        let error = classify(403, "Permission denied");
        assert!(matches!(error, Error::PermissionDenied { .. }), "{error:?}");
        assert!(!error.is_retryable());
    }

    #[test]
    fn missing_is_not_found() {
        let error = classify(404, "job not found");
        assert!(error.is_not_found(), "{error:?}");
        assert!(!error.is_retryable());
    }

    #[test]
    fn plain_500_is_retryable_server_error() {
        let error = classify(500, "No cluster leader");
        assert!(matches!(error, Error::Server { .. }), "{error:?}");
        assert!(error.is_retryable());
    }

    #[test]
    fn unavailable_and_throttled_are_retryable() {
        assert!(classify(503, "").is_retryable());
        assert!(classify(429, "rate limit exceeded").is_retryable());
    }

    #[test]
    fn timeout_is_retryable() {
        let error = Error::Timeout {
            path: "/v1/jobs".to_owned(),
            timeout: Duration::from_secs(1),
        };
        assert!(error.is_retryable());
        assert_eq!(error.status(), None);
    }
}
