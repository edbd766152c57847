//! The sizing rules: from a predicted peak to a worker count, with immediate scale-up,
//! stabilized and step-limited scale-down, emergency scale-up, overrides and fallback.
//!
//! One cycle moves through these steps, each of which may settle the decision:
//!
//! ```text
//!   metrics ok? ──no──> failures += 1 ──> failures >= fallbackAfter? ──yes──> Fallback
//!       │                                          └──no──> Hold
//!      yes ──> predict ──> recommend ──> clamp (Min / Max)
//!                                           │
//!               rec >= current ──> scale up now (Autoscaler)
//!               rec <  current ──> workers starting or cooling down? ──> Hold
//!                                  else max(rec in stabilization window, current - maxStep)
//!   an active override replaces the result (Override); the prediction is still shown
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::spec::{Autoscaling, AutoscalingMode, WorkerBounds};

use super::Sample;
use super::predict::{LinearSlopeParams, PredictParams, Prediction, predict_peak, recent_growth};

/// Invalid autoscaling settings. Permanent: the pool's spec must be fixed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error(
        "autoscaling.capacityPerWorker is {0}; set it to a number of requests per second greater than 0"
    )]
    Capacity(f64),
    #[error("autoscaling.headroom is {0}; set it to a fraction from 0 to 10")]
    Headroom(f64),
    #[error("workers.min ({min}) is greater than workers.max ({max}); lower min or raise max")]
    Bounds { min: u32, max: u32 },
    #[error("autoscaling.interval is {0}s; set it to at least 60s")]
    Interval(u64),
}

/// The autoscaling policy of one pool, validated.
#[derive(Debug, Clone)]
pub struct Autoscaler {
    spec: Autoscaling,
    bounds: WorkerBounds,
    predict: PredictParams,
    /// History whose newest sample is older than this many seconds counts as stale.
    max_staleness_secs: i64,
}

/// The shortest history an emergency check fits its slope to, in seconds. A metric read once
/// a minute gives at least two samples in it, so a short `startupTime` still projects.
const MIN_SLOPE_WINDOW_SECS: i64 = 180;

/// An override that is in force: its worker count replaces the autoscaler's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveOverride {
    pub workers: u32,
    /// Allow more than `workers.max`.
    pub force: bool,
}

/// The controller's observations for one cycle.
#[derive(Debug, Clone, Copy)]
pub struct SizingInput<'a> {
    /// Unix time in seconds.
    pub now: i64,
    /// Request rate over the range given by [`Autoscaler::history_range`], sorted by time.
    pub history: &'a [Sample],
    /// The current request rate; `None` when the source returned no value.
    pub live_rps: Option<f64>,
    /// The worker count in force (ready plus starting).
    pub current_desired: u32,
    pub ready_workers: u32,
    /// Workers placed but not yet healthy; they count as capacity on the way.
    pub starting_workers: u32,
    pub override_workers: Option<ActiveOverride>,
    pub state: &'a SizingState,
}

/// State that must survive a controller restart; stored in the pool's status.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SizingState {
    /// Recommendations inside the scale-down stabilization window, oldest first.
    #[serde(default)]
    pub recommendations: Vec<Recommendation>,
    /// When the last scaling action was decided (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_at: Option<i64>,
    /// When the workers of the last scale-up were first seen all healthy (Unix seconds); the
    /// scale-down cooldown of one stabilization window starts here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_at: Option<i64>,
    /// A scale-up was decided and its workers have not all been seen healthy yet.
    #[serde(default)]
    pub scale_up_pending: bool,
    /// Consecutive cycles whose metric input was missing, empty, stale or NaN.
    #[serde(default)]
    pub consecutive_failures: u32,
}

/// One recommendation kept for the stabilization window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recommendation {
    /// Unix seconds.
    pub at: i64,
    pub workers: u32,
}

/// The origin of a decided worker count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DecisionSource {
    /// The predictor's recommendation, or a stabilized or step-limited scale-down towards it.
    Autoscaler,
    Override,
    /// Raised to `workers.min`.
    Min,
    /// Lowered to `workers.max`.
    Max,
    /// `fallback` after `fallbackAfter` consecutive metric failures.
    Fallback,
    /// The count in force is kept: metrics failed, or a scale-down waits.
    Hold,
    /// Live traffic exceeded the capacity of ready workers between cycles.
    Emergency,
}

impl fmt::Display for DecisionSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::Autoscaler => "autoscaler",
            Self::Override => "override",
            Self::Min => "min",
            Self::Max => "max",
            Self::Fallback => "fallback",
            Self::Hold => "hold",
            Self::Emergency => "emergency",
        };
        f.write_str(name)
    }
}

/// The inputs behind a decision, as shown in status.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DecisionInputs {
    pub history_samples: usize,
    pub live_rps: Option<f64>,
    /// The live rate plus the growth its recent slope adds over the startup time; emergency
    /// checks only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projected_rps: Option<f64>,
    pub current_desired: u32,
    pub ready_workers: u32,
    pub starting_workers: u32,
    /// The unclamped recommendation, ceil(peak × (1 + headroom) / capacityPerWorker).
    pub recommended: Option<u32>,
}

/// One sizing decision, for the controller to apply (unless `act` is false), log and show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// Unix seconds.
    pub at: i64,
    pub desired: u32,
    pub source: DecisionSource,
    pub prediction: Option<Prediction>,
    pub inputs: DecisionInputs,
    /// False in `forecast-only` mode: record the decision, change nothing.
    pub act: bool,
    /// Why, in words: `desired=8 source=autoscaler predicted_rps=190.4 …`.
    pub reason: String,
}

impl Decision {
    /// True when applying the decision changes the worker count.
    pub fn changes_count(&self) -> bool {
        self.desired != self.inputs.current_desired
    }

    /// Logs the decision for `pool` with structured fields: at `info` when it changes the
    /// count, at `debug` otherwise.
    pub fn log(&self, pool: &str) {
        let predicted_rps = self.prediction.map(|p| p.peak_rps);
        if self.changes_count() {
            tracing::info!(
                pool,
                desired = self.desired,
                current = self.inputs.current_desired,
                source = %self.source,
                predicted_rps,
                live_rps = self.inputs.live_rps,
                act = self.act,
                "sizing decision"
            );
        } else {
            tracing::debug!(
                pool,
                desired = self.desired,
                source = %self.source,
                predicted_rps,
                live_rps = self.inputs.live_rps,
                "sizing decision"
            );
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl Autoscaler {
    /// Validates the policy and the pool's bounds.
    pub fn new(spec: &Autoscaling, bounds: WorkerBounds) -> Result<Self, ConfigError> {
        if !(spec.capacity_per_worker.is_finite() && spec.capacity_per_worker > 0.0) {
            return Err(ConfigError::Capacity(spec.capacity_per_worker));
        }
        if !(spec.headroom.is_finite() && (0.0..=10.0).contains(&spec.headroom)) {
            return Err(ConfigError::Headroom(spec.headroom));
        }
        if bounds.min > bounds.max {
            return Err(ConfigError::Bounds {
                min: bounds.min,
                max: bounds.max,
            });
        }
        if spec.interval.as_secs() < 60 {
            return Err(ConfigError::Interval(spec.interval.as_secs()));
        }

        let interval = secs(spec.interval.as_secs());
        let predict = PredictParams {
            predictor: spec.predictor,
            lookback_secs: secs(spec.lookback.as_secs()).max(60),
            horizon_secs: interval + secs(spec.startup_time.as_secs()),
            linear: LinearSlopeParams::default(),
        };

        // NOTE: five minutes, or one interval when shorter, is a judgment call: it tolerates a
        // missed scrape or two of a 1-minute metric but not a source that stopped.
        let max_staleness_secs = interval.min(300);

        Ok(Self {
            spec: spec.clone(),
            bounds,
            predict,
            max_staleness_secs,
        })
    }

    /// Replaces the linear-slope limits (the defaults are tuned on the NASA trace).
    pub fn with_linear_params(mut self, linear: LinearSlopeParams) -> Self {
        self.predict.linear = linear;
        self
    }

    pub fn predict_params(&self) -> &PredictParams {
        &self.predict
    }

    pub fn spec(&self) -> &Autoscaling {
        &self.spec
    }

    /// Returns the `[start, end]` range of history (Unix seconds) the predictor reads at `now`:
    /// the lookback, plus a week for `seasonal`.
    pub fn history_range(&self, now: i64) -> (i64, i64) {
        let mut span = self.predict.lookback_secs;
        if self.predict.predictor == crate::spec::Predictor::Seasonal {
            span += super::predict::WEEK;
        }
        (now - span, now)
    }

    /// Returns the time range `(start, end)` in Unix seconds of the history an emergency
    /// check reads: the last `startupTime`, or 3 minutes when that is shorter, whose slope
    /// projects the live rate.
    pub fn check_range(&self, now: i64) -> (i64, i64) {
        (now - self.slope_window_secs(), now)
    }

    fn startup_secs(&self) -> i64 {
        secs(self.spec.startup_time.as_secs())
    }

    /// Seconds of history whose slope an emergency check projects: the startup time, but at
    /// least [`MIN_SLOPE_WINDOW_SECS`].
    fn slope_window_secs(&self) -> i64 {
        self.startup_secs().max(MIN_SLOPE_WINDOW_SECS)
    }

    /// Decides the worker count for one cycle and returns the state to store.
    pub fn decide(&self, input: &SizingInput<'_>) -> (Decision, SizingState) {
        let mut state = input.state.clone();
        let mut inputs = DecisionInputs {
            history_samples: input.history.len(),
            live_rps: input.live_rps,
            projected_rps: None,
            current_desired: input.current_desired,
            ready_workers: input.ready_workers,
            starting_workers: input.starting_workers,
            recommended: None,
        };

        observe_health(&mut state, input);

        let prediction = self
            .check_metrics(input)
            .and_then(|()| predict_peak(&self.predict, input.history, input.now));

        let (desired, source) = match prediction {
            None => {
                state.consecutive_failures = state.consecutive_failures.saturating_add(1);
                self.size_without_metrics(input, state.consecutive_failures)
            }
            Some(prediction) => {
                state.consecutive_failures = 0;
                let recommended = self.recommend(prediction.peak_rps);
                inputs.recommended = Some(recommended);
                self.size_from_recommendation(input, recommended, &mut state)
            }
        };

        let (desired, source) = match input.override_workers {
            Some(active) if active.force => (active.workers, DecisionSource::Override),
            Some(active) => (
                active.workers.clamp(self.bounds.min, self.bounds.max),
                DecisionSource::Override,
            ),
            None => (desired, source),
        };

        let act = self.spec.mode == AutoscalingMode::Act;
        if act && desired != input.current_desired {
            state.last_scale_at = Some(input.now);
            state.scale_up_pending |= desired > input.current_desired;
        }

        let decision = self.build_decision(input.now, desired, source, prediction, inputs, act);
        (decision, state)
    }

    /// Checks live traffic between cycles (every `emergency.checkInterval`) and returns the
    /// state to store, with an emergency scale-up when the projected rate exceeds the capacity
    /// of ready workers and the count in force (with workers starting) does not already cover
    /// it.
    ///
    /// The projected rate is the live rate plus the growth that the slope of `history` over
    /// the last `startupTime` (at least 3 minutes) adds over one more `startupTime`
    /// ([`recent_growth`]), at most half the live rate (the linear-slope growth cap). Workers
    /// started now serve only after that time, so a ramp gets them before it overtakes the
    /// ready workers, not a startup time after. Flat or falling traffic projects to the live
    /// rate, and an empty history gives the live rate alone.
    ///
    /// No decision when the check is disabled, an override is active or the live rate is
    /// missing or NaN. The state changes even then, because this call also notes when the
    /// workers of a scale-up become healthy.
    pub fn check_emergency(&self, input: &SizingInput<'_>) -> (Option<Decision>, SizingState) {
        let mut state = input.state.clone();
        observe_health(&mut state, input);

        if !self.spec.emergency.enabled || input.override_workers.is_some() {
            return (None, state);
        }
        let Some(live) = input.live_rps.filter(|r| r.is_finite() && *r >= 0.0) else {
            return (None, state);
        };

        // The growth is capped like the linear-slope extrapolation, because in the first
        // minutes of a step its steep slope would project it far above the level it reached.
        let growth = recent_growth(
            input.history,
            input.now,
            self.slope_window_secs(),
            self.startup_secs(),
        )
        .unwrap_or(0.0);
        let projected = live + growth.min(self.predict.linear.max_growth * live);
        let ready_capacity = f64::from(input.ready_workers) * self.spec.capacity_per_worker;
        if projected <= ready_capacity {
            return (None, state);
        }
        let needed = self.recommend(projected).min(self.bounds.max);
        if needed <= input.current_desired {
            return (None, state);
        }

        let act = self.spec.mode == AutoscalingMode::Act;
        if act {
            state.last_scale_at = Some(input.now);
            state.scale_up_pending = true;
        }
        let inputs = DecisionInputs {
            history_samples: input.history.len(),
            live_rps: Some(live),
            projected_rps: Some(projected),
            current_desired: input.current_desired,
            ready_workers: input.ready_workers,
            starting_workers: input.starting_workers,
            recommended: Some(needed),
        };
        let decision = self.build_decision(
            input.now,
            needed,
            DecisionSource::Emergency,
            None,
            inputs,
            act,
        );
        (Some(decision), state)
    }

    /// Returns ceil(rps × (1 + headroom) / capacityPerWorker), unclamped.
    pub fn recommend(&self, rps: f64) -> u32 {
        let workers =
            (rps.max(0.0) * (1.0 + self.spec.headroom) / self.spec.capacity_per_worker).ceil();
        // A float-to-int cast saturates, so an absurd rate gives u32::MAX and then `max`.
        workers as u32
    }

    /// Checks the history and the live rate: present, finite and fresh.
    fn check_metrics(&self, input: &SizingInput<'_>) -> Option<()> {
        let newest = input.history.iter().rev().find(|s| s.t <= input.now)?;
        if !newest.rps.is_finite() || input.now - newest.t > self.max_staleness_secs {
            return None;
        }
        let live = input.live_rps?;
        live.is_finite().then_some(())
    }

    /// Holds the count (never lower, never to 0 unless it is 0, but within the bounds), or
    /// applies the fallback after `fallbackAfter` consecutive failures.
    fn size_without_metrics(
        &self,
        input: &SizingInput<'_>,
        failures: u32,
    ) -> (u32, DecisionSource) {
        let held = input
            .current_desired
            .clamp(self.bounds.min, self.bounds.max);
        let fallback = self
            .spec
            .fallback
            .filter(|_| failures >= self.spec.fallback_after)
            .map(|count| count.clamp(self.bounds.min, self.bounds.max));
        match fallback {
            // Once applied, the fallback count is the held count, and it stays the source.
            Some(count) if count >= held => (count, DecisionSource::Fallback),
            _ if held > input.current_desired => (held, DecisionSource::Min),
            _ if held < input.current_desired => (held, DecisionSource::Max),
            _ => (held, DecisionSource::Hold),
        }
    }

    fn size_from_recommendation(
        &self,
        input: &SizingInput<'_>,
        recommended: u32,
        state: &mut SizingState,
    ) -> (u32, DecisionSource) {
        let (target, source) = if recommended < self.bounds.min {
            (self.bounds.min, DecisionSource::Min)
        } else if recommended > self.bounds.max {
            (self.bounds.max, DecisionSource::Max)
        } else {
            (recommended, DecisionSource::Autoscaler)
        };

        let window = secs(self.spec.scale_down.stabilization.as_secs());
        state
            .recommendations
            .retain(|r| r.at > input.now - window && r.at <= input.now);
        state.recommendations.push(Recommendation {
            at: input.now,
            workers: target,
        });

        if target >= input.current_desired {
            return (target, source);
        }

        // A count above `workers.max` (the max was lowered) drops to it at once: the bounds
        // apply whatever the stabilization window contains.
        if input.current_desired > self.bounds.max {
            return (self.bounds.max, DecisionSource::Max);
        }

        // Scale-down: wait for starting workers and for the cooldown after they became healthy.
        let cooling = state
            .healthy_at
            .is_some_and(|healthy| input.now < healthy + window);
        if input.starting_workers > 0 || state.scale_up_pending || cooling {
            return (input.current_desired, DecisionSource::Hold);
        }

        let stabilized = state
            .recommendations
            .iter()
            .map(|r| r.workers)
            .max()
            .unwrap_or(target);
        let step_floor = input
            .current_desired
            .saturating_sub(self.spec.scale_down.max_step.max(1));
        let desired = stabilized.max(step_floor).min(input.current_desired);
        if desired == input.current_desired {
            (desired, DecisionSource::Hold)
        } else if desired == self.bounds.min {
            (desired, source)
        } else {
            (desired, DecisionSource::Autoscaler)
        }
    }

    fn build_decision(
        &self,
        now: i64,
        desired: u32,
        source: DecisionSource,
        prediction: Option<Prediction>,
        inputs: DecisionInputs,
        act: bool,
    ) -> Decision {
        let mut reason = format!("desired={desired} source={source}");
        if let Some(p) = prediction {
            reason.push_str(&format!(" predicted_rps={:.1}", p.peak_rps));
        }
        if let Some(live) = inputs.live_rps {
            reason.push_str(&format!(" live_rps={live:.1}"));
        }
        if let Some(projected) = inputs.projected_rps {
            reason.push_str(&format!(" projected_rps={projected:.1}"));
        }
        reason.push_str(&format!(
            " current={} ready={} starting={}",
            inputs.current_desired, inputs.ready_workers, inputs.starting_workers
        ));
        if !act {
            reason.push_str(" mode=forecast-only");
        }

        Decision {
            at: now,
            desired,
            source,
            prediction,
            inputs,
            act,
            reason,
        }
    }
}

/// Notes when the workers of the pending scale-up are all healthy: the cooldown starts then.
fn observe_health(state: &mut SizingState, input: &SizingInput<'_>) {
    if state.scale_up_pending && input.starting_workers == 0 {
        state.scale_up_pending = false;
        state.healthy_at = Some(input.now);
    }
}

/// Seconds as i64; durations beyond i64 seconds do not occur in a validated spec.
fn secs(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX / 4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Duration, Emergency, MetricSource, Predictor, ScaleDown};

    fn spec() -> Autoscaling {
        Autoscaling {
            interval: Duration::from_mins(20),
            metric: MetricSource::Csv {
                path: "trace.csv".to_owned(),
            },
            predictor: Predictor::Reactive,
            lookback: Duration::from_mins(60),
            capacity_per_worker: 10.0,
            headroom: 0.2,
            startup_time: Duration::from_mins(6),
            scale_down: ScaleDown {
                max_step: 2,
                stabilization: Duration::from_mins(40),
            },
            emergency: Emergency::default(),
            fallback: None,
            fallback_after: 3,
            mode: AutoscalingMode::Act,
        }
    }

    fn bounds() -> WorkerBounds {
        WorkerBounds { min: 1, max: 20 }
    }

    const NOW: i64 = 1_000_000;

    fn flat(rps: f64) -> Vec<Sample> {
        (0..10)
            .map(|i| Sample::new(NOW - 540 + i * 60, rps))
            .collect()
    }

    fn input<'a>(history: &'a [Sample], current: u32, state: &'a SizingState) -> SizingInput<'a> {
        SizingInput {
            now: NOW,
            history,
            live_rps: history.last().map(|s| s.rps),
            current_desired: current,
            ready_workers: current,
            starting_workers: 0,
            override_workers: None,
            state,
        }
    }

    fn scaler(spec: &Autoscaling) -> Autoscaler {
        Autoscaler::new(spec, bounds()).expect("valid spec")
    }

    #[test]
    fn recommend_applies_headroom_and_ceil() {
        // 190.4 × 1.2 / 10 = 22.848 → 23.
        assert_eq!(scaler(&spec()).recommend(190.4), 23);
        assert_eq!(scaler(&spec()).recommend(0.0), 0);
        assert_eq!(scaler(&spec()).recommend(-5.0), 0);
    }

    #[test]
    fn scale_up_acts_at_once() {
        let history = flat(100.0);
        let state = SizingState::default();
        let (d, s) = scaler(&spec()).decide(&input(&history, 4, &state));
        assert_eq!(d.desired, 12);
        assert_eq!(d.source, DecisionSource::Autoscaler);
        assert!(d.act);
        assert_eq!(s.last_scale_at, Some(NOW));
        assert!(s.scale_up_pending);
        assert!(
            d.reason
                .starts_with("desired=12 source=autoscaler predicted_rps=100.0"),
            "{}",
            d.reason
        );
    }

    #[test]
    fn clamps_to_max_and_min() {
        let state = SizingState::default();
        let high = flat(1000.0);
        let (d, _) = scaler(&spec()).decide(&input(&high, 4, &state));
        assert_eq!((d.desired, d.source), (20, DecisionSource::Max));

        let low = flat(0.0);
        let (d, _) = scaler(&spec()).decide(&input(&low, 0, &state));
        assert_eq!((d.desired, d.source), (1, DecisionSource::Min));
    }

    #[test]
    fn scale_down_waits_for_stabilization_window() {
        let a = scaler(&spec());
        let state = SizingState {
            recommendations: vec![Recommendation {
                at: NOW - 1200,
                workers: 10,
            }],
            ..SizingState::default()
        };
        let history = flat(10.0);
        let (d, s) = a.decide(&input(&history, 10, &state));
        assert_eq!(d.desired, 10);
        assert_eq!(d.source, DecisionSource::Hold);
        assert_eq!(s.recommendations.len(), 2);

        // Once the high recommendation leaves the window, the step limit applies.
        let state = SizingState {
            recommendations: vec![Recommendation {
                at: NOW - 2400,
                workers: 10,
            }],
            ..SizingState::default()
        };
        let (d, s) = a.decide(&input(&history, 10, &state));
        assert_eq!(d.desired, 8, "{}", d.reason);
        assert_eq!(d.source, DecisionSource::Autoscaler);
        assert_eq!(s.recommendations.len(), 1, "old recommendation pruned");
    }

    #[test]
    fn scale_down_holds_while_workers_start() {
        let history = flat(10.0);
        let state = SizingState::default();
        let mut i = input(&history, 10, &state);
        i.ready_workers = 8;
        i.starting_workers = 2;
        let (d, _) = scaler(&spec()).decide(&i);
        assert_eq!((d.desired, d.source), (10, DecisionSource::Hold));
    }

    #[test]
    fn cooldown_starts_when_workers_healthy() {
        let a = scaler(&spec());
        let history = flat(10.0);
        let state = SizingState {
            scale_up_pending: true,
            ..SizingState::default()
        };
        let (d, s) = a.decide(&input(&history, 10, &state));
        assert_eq!(s.healthy_at, Some(NOW));
        assert!(!s.scale_up_pending);
        assert_eq!((d.desired, d.source), (10, DecisionSource::Hold));

        let state = SizingState {
            healthy_at: Some(NOW - 2401),
            ..SizingState::default()
        };
        let (d, _) = a.decide(&input(&history, 10, &state));
        assert_eq!(d.desired, 8);
    }

    #[test]
    fn missing_metrics_hold_then_fallback() {
        let mut spec = spec();
        spec.fallback = Some(6);
        let a = scaler(&spec);
        let empty: Vec<Sample> = Vec::new();
        let mut state = SizingState::default();

        for failures in 1..=2 {
            let (d, s) = a.decide(&input(&empty, 4, &state));
            assert_eq!((d.desired, d.source), (4, DecisionSource::Hold));
            assert_eq!(s.consecutive_failures, failures);
            state = s;
        }
        let (d, s) = a.decide(&input(&empty, 4, &state));
        assert_eq!((d.desired, d.source), (6, DecisionSource::Fallback));
        assert_eq!(s.consecutive_failures, 3);

        // The next failure finds the fallback count in force, and names it.
        let (d, s) = a.decide(&input(&empty, 6, &s));
        assert_eq!((d.desired, d.source), (6, DecisionSource::Fallback));

        // A pool that runs more than the fallback keeps its count.
        let (d, _) = a.decide(&input(&empty, 9, &s));
        assert_eq!((d.desired, d.source), (9, DecisionSource::Hold));

        let history = flat(10.0);
        let (_, s) = a.decide(&input(&history, 6, &s));
        assert_eq!(s.consecutive_failures, 0, "a good read clears the failures");
    }

    #[test]
    fn fallback_applies_from_zero() {
        let mut spec = spec();
        spec.fallback = Some(3);
        spec.fallback_after = 1;
        let a = Autoscaler::new(&spec, WorkerBounds { min: 0, max: 20 }).expect("valid");
        let empty: Vec<Sample> = Vec::new();
        let state = SizingState::default();
        let (d, _) = a.decide(&input(&empty, 0, &state));
        assert_eq!((d.desired, d.source), (3, DecisionSource::Fallback));
    }

    #[test]
    fn nan_stale_or_missing_live_counts_as_failure() {
        let a = scaler(&spec());
        let state = SizingState::default();

        let nan = vec![Sample::new(NOW - 60, f64::NAN)];
        let (d, s) = a.decide(&input(&nan, 5, &state));
        assert_eq!((d.desired, d.source), (5, DecisionSource::Hold));
        assert_eq!(s.consecutive_failures, 1);

        let stale = vec![Sample::new(NOW - 3600, 500.0)];
        let (d, s) = a.decide(&input(&stale, 5, &state));
        assert_eq!((d.desired, s.consecutive_failures), (5, 1));

        let history = flat(500.0);
        let mut i = input(&history, 5, &state);
        i.live_rps = None;
        let (d, s) = a.decide(&i);
        assert_eq!((d.desired, s.consecutive_failures), (5, 1));
        assert!(d.prediction.is_none());
    }

    #[test]
    fn override_replaces_but_shows_prediction() {
        let history = flat(100.0);
        let state = SizingState::default();
        let mut i = input(&history, 4, &state);
        i.override_workers = Some(ActiveOverride {
            workers: 2,
            force: false,
        });
        let (d, _) = scaler(&spec()).decide(&i);
        assert_eq!((d.desired, d.source), (2, DecisionSource::Override));
        let shown = d.prediction.expect("prediction still computed").peak_rps;
        assert_eq!(shown, 100.0);
        assert_eq!(d.inputs.recommended, Some(12));

        i.override_workers = Some(ActiveOverride {
            workers: 50,
            force: false,
        });
        assert_eq!(scaler(&spec()).decide(&i).0.desired, 20);
        i.override_workers = Some(ActiveOverride {
            workers: 50,
            force: true,
        });
        assert_eq!(scaler(&spec()).decide(&i).0.desired, 50);
    }

    #[test]
    fn forecast_only_records_without_acting() {
        let mut spec = spec();
        spec.mode = AutoscalingMode::ForecastOnly;
        let history = flat(100.0);
        let state = SizingState::default();
        let (d, s) = scaler(&spec).decide(&input(&history, 4, &state));
        assert_eq!(d.desired, 12);
        assert!(!d.act);
        assert!(d.reason.ends_with("mode=forecast-only"), "{}", d.reason);
        assert_eq!(s.last_scale_at, None);
    }

    #[test]
    fn emergency_fires_above_ready_capacity() {
        let a = scaler(&spec());
        let history = flat(55.0);
        let state = SizingState::default();
        let mut i = input(&history, 5, &state);

        // 55 rps > 5 ready × 10: scale to ceil(55 × 1.2 / 10) = 7.
        let (d, s) = a.check_emergency(&i);
        let d = d.expect("emergency fires");
        assert_eq!((d.desired, d.source), (7, DecisionSource::Emergency));
        assert!(s.scale_up_pending);

        // Workers already starting cover it.
        i.current_desired = 7;
        i.starting_workers = 2;
        assert!(a.check_emergency(&i).0.is_none());

        // Below ready capacity: nothing.
        i.live_rps = Some(40.0);
        i.current_desired = 5;
        i.starting_workers = 0;
        assert!(a.check_emergency(&i).0.is_none());

        // NaN live rate: nothing.
        i.live_rps = Some(f64::NAN);
        assert!(a.check_emergency(&i).0.is_none());
    }

    #[test]
    fn emergency_projects_a_ramp() {
        let a = scaler(&spec());
        let state = SizingState::default();

        // 36 to 45 rps, one more each minute: over the last 6 minutes the slope adds 6 rps in
        // the 6 minutes new workers take, so 45 live projects to 51, above 5 ready × 10.
        let rising: Vec<Sample> = (0..10)
            .map(|i| Sample::new(NOW - 540 + i * 60, 36.0 + i as f64))
            .collect();
        let mut i = input(&rising, 5, &state);
        i.live_rps = Some(45.0);
        let d = a.check_emergency(&i).0.expect("the ramp fires");
        // ceil(51 × 1.2 / 10) = 7.
        assert_eq!((d.desired, d.source), (7, DecisionSource::Emergency));
        let projected = d.inputs.projected_rps.expect("projection recorded");
        assert!((projected - 51.0).abs() < 1e-9, "projected {projected}");
        assert!(d.reason.contains("projected_rps=51.0"), "{}", d.reason);

        // The same live rate after a fall projects to itself: below capacity, nothing.
        let falling: Vec<Sample> = rising
            .iter()
            .rev()
            .enumerate()
            .map(|(k, s)| Sample::new(NOW - 540 + k as i64 * 60, s.rps))
            .collect();
        let mut i = input(&falling, 5, &state);
        i.live_rps = Some(45.0);
        assert!(a.check_emergency(&i).0.is_none());

        // Without history the live rate alone decides.
        let mut i = input(&[], 5, &state);
        i.live_rps = Some(45.0);
        assert!(a.check_emergency(&i).0.is_none());
    }

    #[test]
    fn emergency_ignores_a_levelled_step() {
        let a = scaler(&spec());
        let state = SizingState::default();

        // 10 rps, then 45 for the last 5 minutes: below 5 ready × 10, and flat since.
        let history: Vec<Sample> = (0..10)
            .map(|i| Sample::new(NOW - 540 + i * 60, if i < 5 { 10.0 } else { 45.0 }))
            .collect();
        let mut i = input(&history, 5, &state);
        i.live_rps = Some(45.0);
        assert!(a.check_emergency(&i).0.is_none());
    }

    #[test]
    fn emergency_projects_with_short_startup() {
        // With a 90-second startup the slope still comes from the last 3 minutes: 5 rps a
        // minute over 90 s adds 7.5, so 45 projects to 52.5, above 5 ready × 10.
        let mut short = spec();
        short.startup_time = Duration::from_secs(90);
        let a = scaler(&short);
        let state = SizingState::default();
        let history: Vec<Sample> = (0..4)
            .map(|i| Sample::new(NOW - 180 + i * 60, 30.0 + 5.0 * i as f64))
            .collect();
        assert_eq!(a.check_range(NOW), (NOW - 180, NOW));

        let mut i = input(&history, 5, &state);
        i.live_rps = Some(45.0);
        let d = a.check_emergency(&i).0.expect("the ramp fires");
        let projected = d.inputs.projected_rps.expect("projection recorded");
        assert!((projected - 52.5).abs() < 1e-9, "projected {projected}");
    }

    #[test]
    fn invalid_spec_is_rejected() {
        let mut bad = spec();
        bad.capacity_per_worker = 0.0;
        assert_eq!(
            Autoscaler::new(&bad, bounds()).err(),
            Some(ConfigError::Capacity(0.0))
        );
        let err = Autoscaler::new(&spec(), WorkerBounds { min: 5, max: 2 }).err();
        assert_eq!(err, Some(ConfigError::Bounds { min: 5, max: 2 }));
    }

    proptest::proptest! {
        /// Without an override the count stays within bounds, and a failed read never lowers
        /// it below the count in force (or `max`, when that is lower).
        #[test]
        fn decide_respects_bounds_and_holds_on_failure(
            rps in proptest::option::of(0.0f64..10_000.0),
            current in 0u32..40,
            starting in 0u32..5,
            failures in 0u32..5,
            fallback in proptest::option::of(0u32..30),
        ) {
            let mut spec = spec();
            spec.fallback = fallback;
            let a = scaler(&spec);
            let history = rps.map(flat).unwrap_or_default();
            let state = SizingState { consecutive_failures: failures, ..SizingState::default() };
            let mut i = input(&history, current, &state);
            i.starting_workers = starting.min(current);
            i.ready_workers = current - i.starting_workers;

            let (d, s) = a.decide(&i);
            let b = bounds();
            proptest::prop_assert!(d.desired >= b.min, "{}", d.reason);
            proptest::prop_assert!(d.desired <= b.max, "{}", d.reason);
            if rps.is_none() {
                proptest::prop_assert!(d.desired >= current.min(b.max), "{}", d.reason);
                proptest::prop_assert_eq!(s.consecutive_failures, failures + 1);
            } else {
                proptest::prop_assert_eq!(s.consecutive_failures, 0);
            }
        }
    }

    #[test]
    fn state_round_trips_as_json() {
        let state = SizingState {
            recommendations: vec![Recommendation { at: 5, workers: 3 }],
            last_scale_at: Some(7),
            healthy_at: None,
            scale_up_pending: true,
            consecutive_failures: 2,
        };
        let json = serde_json::to_string(&state).expect("serializes");
        assert!(json.contains("\"consecutiveFailures\":2"), "{json}");
        let back: SizingState = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, state);
    }
}
