//! Predictive autoscaling: traffic predictors, metric sources and the sizing rules.
//!
//! The controller calls [`Autoscaler::decide`] once per cycle with the request-rate history
//! read from a [`MetricSource`], and [`Autoscaler::check_emergency`] between cycles. Both are
//! pure: the state that must survive a restart travels in [`SizingState`].

pub mod predict;
pub mod sizing;
pub mod source;

pub use predict::{LinearSlopeParams, PredictParams, predict_peak};
pub use sizing::{Autoscaler, Decision, DecisionInputs, DecisionSource, SizingInput, SizingState};
pub use source::{MetricError, MetricSource, Source};

/// One point of a request-rate series.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Sample {
    /// Unix time in seconds.
    pub t: i64,
    /// Requests per second.
    pub rps: f64,
}

impl Sample {
    pub const fn new(t: i64, rps: f64) -> Self {
        Self { t, rps }
    }
}
