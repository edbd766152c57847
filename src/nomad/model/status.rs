//! Status values that Nomad sends as strings, as enums that keep unknown values.
//!
//! Each enum has an `Other` variant holding any value this crate does not know, so a newer
//! Nomad server never fails to parse and the value serializes back unchanged.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Declares a string enum with an `Other(String)` fallback, `as_str`, `Display` and serde.
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$variant_meta:meta])* $variant:ident => $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$variant_meta])* $variant, )+
            /// A value this crate does not know, kept as sent.
            Other(String),
        }

        impl $name {
            /// Returns the value as Nomad spells it.
            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$variant => $text, )+
                    Self::Other(text) => text,
                }
            }
        }

        impl From<&str> for $name {
            fn from(text: &str) -> Self {
                match text {
                    $( $text => Self::$variant, )+
                    other => Self::Other(other.to_owned()),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                Ok(Self::from(text.as_str()))
            }
        }
    };
}

string_enum! {
    /// Client status of an allocation, as its node reports it (`Allocation.ClientStatus`).
    pub enum ClientStatus {
        Pending => "pending",
        Running => "running",
        /// Terminal: every task finished successfully.
        Complete => "complete",
        /// Terminal.
        Failed => "failed",
        /// Terminal: the node was lost.
        Lost => "lost",
        /// The node is disconnected and the allocation's fate is not yet known.
        Unknown => "unknown",
    }
}

impl ClientStatus {
    /// Reports whether the allocation has stopped for good (complete, failed or lost).
    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::Complete | Self::Failed | Self::Lost)
    }
}

string_enum! {
    /// Desired status of an allocation, as the scheduler sets it (`Allocation.DesiredStatus`).
    pub enum DesiredStatus {
        Run => "run",
        Stop => "stop",
        Evict => "evict",
    }
}

string_enum! {
    /// The lifecycle of a job (`Job.Status`).
    pub enum JobStatus {
        Pending => "pending",
        Running => "running",
        Dead => "dead",
    }
}

string_enum! {
    /// The state of a deployment (`Deployment.Status`).
    pub enum DeploymentStatus {
        Running => "running",
        Paused => "paused",
        Failed => "failed",
        Successful => "successful",
        Cancelled => "cancelled",
        Initializing => "initializing",
        Pending => "pending",
        Blocked => "blocked",
        Unblocking => "unblocking",
    }
}

impl DeploymentStatus {
    /// Reports whether the deployment still runs, as Nomad's `Deployment.Active()` does: while it
    /// is active, the scale endpoint rejects count changes for the job.
    pub fn is_active(&self) -> bool {
        matches!(
            self,
            Self::Running
                | Self::Paused
                | Self::Blocked
                | Self::Unblocking
                | Self::Initializing
                | Self::Pending
        )
    }
}

string_enum! {
    /// The state of an evaluation (`Evaluation.Status`). Nomad spells `canceled` with one `l` here.
    pub enum EvalStatus {
        Blocked => "blocked",
        Pending => "pending",
        Complete => "complete",
        Failed => "failed",
        Canceled => "canceled",
    }
}

string_enum! {
    /// The state of a client node (`Node.Status`).
    pub enum NodeStatus {
        Initializing => "initializing",
        Ready => "ready",
        Down => "down",
        Disconnected => "disconnected",
    }
}

string_enum! {
    /// Whether the scheduler may place new allocations on a node. A draining node is always
    /// `ineligible`.
    pub enum SchedulingEligibility {
        Eligible => "eligible",
        Ineligible => "ineligible",
    }
}

string_enum! {
    /// The state of one task inside an allocation (`TaskState.State`).
    pub enum TaskStateKind {
        Pending => "pending",
        Running => "running",
        Dead => "dead",
    }
}

string_enum! {
    /// The outcome of a node's last drain (`LastDrain.Status`).
    pub enum DrainStatus {
        Draining => "draining",
        Complete => "complete",
        Canceled => "canceled",
    }
}

/// Declares each enum's default: the value Nomad gives a new object of that kind.
macro_rules! default_value {
    ($($name:ident => $variant:ident,)+) => {
        $(
            impl Default for $name {
                fn default() -> Self {
                    Self::$variant
                }
            }
        )+
    };
}

default_value! {
    ClientStatus => Pending,
    DesiredStatus => Run,
    JobStatus => Pending,
    DeploymentStatus => Running,
    EvalStatus => Pending,
    NodeStatus => Initializing,
    SchedulingEligibility => Eligible,
    TaskStateKind => Pending,
    DrainStatus => Draining,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_value_round_trips() {
        let status: ClientStatus = serde_json::from_str("\"running\"").expect("parse");
        assert_eq!(status, ClientStatus::Running);
        assert_eq!(
            serde_json::to_string(&status).expect("serialize"),
            "\"running\""
        );
    }

    #[test]
    fn unknown_value_kept() {
        let status: NodeStatus = serde_json::from_str("\"rebooting\"").expect("parse");
        assert_eq!(status, NodeStatus::Other("rebooting".to_owned()));
        assert_eq!(
            serde_json::to_string(&status).expect("serialize"),
            "\"rebooting\""
        );
    }

    #[test]
    fn active_deployment_statuses() {
        assert!(DeploymentStatus::Running.is_active());
        assert!(DeploymentStatus::Paused.is_active());
        assert!(!DeploymentStatus::Successful.is_active());
        assert!(!DeploymentStatus::Failed.is_active());
        assert!(!DeploymentStatus::Cancelled.is_active());
    }

    #[test]
    fn terminal_client_statuses() {
        assert!(ClientStatus::Failed.is_terminal());
        assert!(ClientStatus::Lost.is_terminal());
        assert!(!ClientStatus::Running.is_terminal());
        assert!(!ClientStatus::Unknown.is_terminal());
    }
}
