//! Control commands for a running rollout: the key `steward rollout pause|resume|abort|retry`
//! writes and the controller reads.
//!
//! The key is `<prefix>rollouts/<pool>/control` (by default `steward/rollouts/<pool>/control`)
//! and holds one JSON object, such as
//! `{"action": "pause", "by": "alice", "at": "2026-12-04T20:00:00Z"}`. Each write replaces the
//! previous command. The controller acts on a command once. It identifies commands by the
//! key's `ModifyIndex` in Consul, not by `at`, so the clocks of the CLI's host and the
//! controller's need not agree. A command is new when its index is above that of the last
//! one acted on. The first command of a rollout must be above the index it started at.
//! A stale key left from an earlier rollout therefore does nothing.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// A command for a pool's rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ControlAction {
    /// Stop acting (and pause the Nomad deployment) until `resume`.
    Pause,
    /// Continue a paused rollout, including one paused by an inconclusive analysis.
    Resume,
    /// Roll back to the previous version.
    Abort,
    /// Start a failed rollout again from the prefetch.
    Retry,
}

impl std::fmt::Display for ControlAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self {
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Abort => "abort",
            Self::Retry => "retry",
        };
        f.write_str(text)
    }
}

/// The value stored under the control key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Control {
    pub action: ControlAction,
    /// Sender of the command, for the decision log.
    pub by: String,
    /// When the command was sent, by the sender's clock; shown, and compared only when the
    /// index is unknown.
    pub at: Timestamp,
    /// The control key's `ModifyIndex`, set when the key is read from Consul; 0 when unknown.
    #[serde(skip)]
    pub index: u64,
}

/// Returns the control key of `pool` under `prefix` (such as `steward/`, with its slash).
pub fn control_key(prefix: &str, pool: &str) -> String {
    format!("{prefix}rollouts/{pool}/control")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_round_trips_as_json() {
        let control = Control {
            action: ControlAction::Abort,
            by: "alice".to_owned(),
            at: "2026-12-04T20:00:00Z".parse().expect("valid timestamp"),
            index: 0,
        };
        let json = serde_json::to_string(&control).expect("serializes");
        assert_eq!(
            json,
            r#"{"action":"abort","by":"alice","at":"2026-12-04T20:00:00Z"}"#
        );
        let back: Control = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, control);
    }

    #[test]
    fn control_rejects_unknown_action() {
        let result = serde_json::from_str::<Control>(
            r#"{"action":"restart","by":"alice","at":"2026-12-04T20:00:00Z"}"#,
        );
        assert!(result.is_err());
    }

    #[test]
    fn control_key_sits_under_prefix() {
        assert_eq!(
            control_key("steward/", "face-match"),
            "steward/rollouts/face-match/control"
        );
    }
}
