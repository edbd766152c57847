//! Offline sizing simulator: replays a traffic trace minute by minute against a pool's sizing
//! policy, with startup time, cycles, step limits, stabilization and emergency scale-up, and
//! compares each predictor with the oracle.
//!
//! Time model: a trace row is the traffic of the minute starting at its timestamp, and its
//! rate becomes known when that minute ends. At the start of minute i the autoscaler reads
//! rows `..i`, and the workers ready then serve minute i's demand.

use std::time::Instant;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Poisson};
use serde::Serialize;

use crate::autoscale::sizing::ConfigError;
use crate::autoscale::{Autoscaler, Sample, SizingInput, SizingState};
use crate::spec::{Autoscaling, Predictor, WorkerBounds};

pub mod chart;

/// Step of the simulation and of the traces it reads, in seconds.
pub const STEP_SECS: i64 = 60;

/// An invalid trace or setting. Permanent: fix the input.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("the trace is empty; give a CSV with at least one `timestamp,requests` row")]
    EmptyTrace,
    #[error(
        "the trace has a row at {} that is not one minute after the previous one; simulate needs one row per minute, so fill a gap with rows of 0 requests",
        rfc3339(*at)
    )]
    UnevenTrace { at: i64 },
    #[error("--scale-to {0} is invalid; give requests per day greater than 0, such as 2000000/day")]
    Scale(f64),
    #[error("the trace has no requests, so it cannot be rescaled")]
    NoRequests,
    #[error(
        "the trace has a rate of {rps} requests per second at {}; every row needs a finite count of at least 0",
        rfc3339(*at)
    )]
    InvalidRate { at: i64, rps: f64 },
    #[error(
        "spec.workers.min ({min}) is greater than spec.workers.max ({max}); lower min or raise max"
    )]
    Bounds { min: u32, max: u32 },
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Formats Unix seconds as RFC 3339, as trace rows write them, or as the bare number when out
/// of range.
fn rfc3339(secs: i64) -> String {
    jiff::Timestamp::from_second(secs).map_or_else(|_| secs.to_string(), |t| t.to_string())
}

/// Checks that `bounds.min` is at most `bounds.max`, which the clamping below relies on.
fn check_bounds(bounds: WorkerBounds) -> Result<(), SimError> {
    if bounds.min > bounds.max {
        return Err(SimError::Bounds {
            min: bounds.min,
            max: bounds.max,
        });
    }
    Ok(())
}

/// Checks that `trace` has one row per minute without gaps, each a finite rate of at least 0.
pub fn check_trace(trace: &[Sample]) -> Result<(), SimError> {
    if trace.is_empty() {
        return Err(SimError::EmptyTrace);
    }
    if let Some(bad) = trace.iter().find(|s| !(s.rps.is_finite() && s.rps >= 0.0)) {
        return Err(SimError::InvalidRate {
            at: bad.t,
            rps: bad.rps,
        });
    }
    for pair in trace.windows(2) {
        if pair[1].t - pair[0].t != STEP_SECS {
            return Err(SimError::UnevenTrace { at: pair[1].t });
        }
    }
    Ok(())
}

/// Width, in minutes, of the centred window whose mean estimates the recorded service's rate
/// before it is rescaled.
///
/// A recorded minute is one noisy draw around that rate, so multiplying it would carry the
/// small service's relative noise into the large one. On the NASA trace (about 67,000
/// requests a day, 47 a minute) a minute differs from its 15-minute mean by 29 % (standard
/// deviation). A Poisson minute of a 2-million-a-day service differs from its mean by about
/// 3 %. The mean of 15 minutes at 47 a minute has a Poisson sampling error near 4 %, close to
/// the large service's own noise, and a wider window would flatten real surges.
pub const RATE_WINDOW_MINUTES: usize = 15;

/// Rescales a per-minute trace to `requests_per_day`, as the traffic of a larger service with
/// the same users' behaviour.
///
/// Each minute's rate is the mean of the [`RATE_WINDOW_MINUTES`] centred on it (fewer at the
/// ends of the trace), multiplied so that the whole trace averages `requests_per_day`. The
/// minute's count is drawn from a Poisson distribution with that mean. The noise is then that
/// of the larger service, not the recorded one's scaled up. The same `seed` gives the same
/// trace.
///
/// NOTE: a burst shorter than the window is spread over it. A larger service would keep
/// bursts that many of its users cause together (a launch, a batch client) and lose those of
/// single users, but the window cannot tell them apart.
pub fn rescale(
    trace: &[Sample],
    requests_per_day: f64,
    seed: u64,
) -> Result<Vec<Sample>, SimError> {
    if !(requests_per_day.is_finite() && requests_per_day > 0.0) {
        return Err(SimError::Scale(requests_per_day));
    }
    // The factor comes from the estimated rates, not the recorded counts, because the ends of
    // the trace weigh differently in the two.
    let rates = centred_means(trace, RATE_WINDOW_MINUTES);
    let total: f64 = rates.iter().map(|rps| rps * STEP_SECS as f64).sum();
    if !(total.is_finite() && total > 0.0) {
        return Err(SimError::NoRequests);
    }
    let days = trace.len() as f64 * STEP_SECS as f64 / 86_400.0;
    let factor = requests_per_day * days / total;

    let mut rng = StdRng::seed_from_u64(seed);
    let scaled = trace
        .iter()
        .zip(rates)
        .map(|(s, rate)| {
            let mean = rate * STEP_SECS as f64 * factor;
            // Poisson::new rejects a mean of 0, so a stretch without traffic stays without.
            let count = Poisson::new(mean).map_or(0.0, |p| p.sample(&mut rng));
            Sample::new(s.t, count / STEP_SECS as f64)
        })
        .collect();
    Ok(scaled)
}

/// Returns, for each sample, the mean rate of the `width` samples centred on it, cut at the
/// ends of the trace. Negative rates count as 0.
fn centred_means(trace: &[Sample], width: usize) -> Vec<f64> {
    let n = trace.len();
    let mut prefix = Vec::with_capacity(n + 1);
    prefix.push(0.0);
    for sample in trace {
        prefix.push(prefix.last().copied().unwrap_or(0.0) + sample.rps.max(0.0));
    }

    let before = width / 2;
    let after = width.saturating_sub(before);
    (0..n)
        .map(|i| {
            let (start, end) = (i.saturating_sub(before), (i + after).min(n));
            (prefix[end] - prefix[start]) / (end - start) as f64
        })
        .collect()
}

/// Worker counts over time, one entry per trace minute.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    pub ready: Vec<u32>,
    /// Ready plus starting.
    pub total: Vec<u32>,
}

/// The outcome of one predictor (or the oracle) over a trace.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    /// `linear-slope`, `seasonal`, `reactive` or `oracle`.
    pub predictor: String,
    /// Worker-hours paid for, starting workers included.
    pub worker_hours: f64,
    pub ratio_to_oracle: f64,
    /// Minutes whose demand exceeded the capacity of ready workers.
    pub underprovisioned_minutes: u64,
    pub underprovisioned_fraction: f64,
    /// The largest number of workers missing in one minute.
    pub peak_shortfall_workers: u32,
    /// Changes of the worker count.
    pub scaling_actions: u64,
    #[serde(skip)]
    pub timeline: Timeline,
    /// Wall-clock time the simulation of this predictor took.
    #[serde(skip)]
    pub elapsed: std::time::Duration,
}

/// Simulates the autoscaler over `trace` (one row per minute, checked by [`check_trace`]).
///
/// Fails with [`SimError::Bounds`] when `bounds.min` exceeds `bounds.max`.
pub fn simulate(
    autoscaler: &Autoscaler,
    bounds: WorkerBounds,
    trace: &[Sample],
) -> Result<RunResult, SimError> {
    check_bounds(bounds)?;
    let started = Instant::now();
    let spec = autoscaler.spec();
    let capacity = spec.capacity_per_worker;
    let startup = secs(spec.startup_time.as_secs());
    let interval = secs(spec.interval.as_secs()).max(STEP_SECS);
    let check_every = secs(spec.emergency.check_interval.as_secs()).max(STEP_SECS);
    let Some(first) = trace.first() else {
        return Ok(empty_result(autoscaler));
    };

    // The pool starts with enough ready workers for the first minute.
    let initial = autoscaler
        .recommend(first.rps)
        .clamp(bounds.min, bounds.max);
    let mut workers = Workers::new(initial, first.t);
    let mut state = SizingState::default();
    let mut result = empty_result(autoscaler);
    result.timeline.ready.reserve(trace.len());
    result.timeline.total.reserve(trace.len());
    let mut worker_minutes = 0u64;

    for (i, sample) in trace.iter().enumerate() {
        let now = sample.t;
        let elapsed = now - first.t;
        let known = &trace[..i];

        // Decide at cycle boundaries, check for an emergency in between.
        if i > 0 && (elapsed % interval == 0 || elapsed % check_every == 0) {
            let input = SizingInput {
                now,
                history: known,
                live_rps: known.last().map(|s| s.rps),
                current_desired: workers.total(),
                ready_workers: workers.ready(now),
                starting_workers: workers.starting(now),
                override_workers: None,
                state: &state,
            };
            let (decision, next) = if elapsed % interval == 0 {
                let (decision, next) = autoscaler.decide(&input);
                (Some(decision), next)
            } else {
                autoscaler.check_emergency(&input)
            };
            state = next;
            if let Some(decision) = decision.filter(|d| d.act && d.changes_count()) {
                workers.resize(decision.desired, now, startup);
                result.scaling_actions += 1;
            }
        }

        // Serve this minute with the workers ready at its start.
        let ready = workers.ready(now);
        let total = workers.total();
        worker_minutes += u64::from(total);
        let needed = needed_workers(sample.rps, capacity);
        if needed > ready {
            result.underprovisioned_minutes += 1;
            result.peak_shortfall_workers = result.peak_shortfall_workers.max(needed - ready);
        }
        result.timeline.ready.push(ready);
        result.timeline.total.push(total);
    }

    result.worker_hours = worker_minutes as f64 / 60.0;
    result.underprovisioned_fraction = result.underprovisioned_minutes as f64 / trace.len() as f64;
    result.elapsed = started.elapsed();
    Ok(result)
}

/// The least capacity that never falls short, knowing the future: every minute runs the most
/// workers any minute within the next startup time needs, because a worker must start that
/// long before it serves. Bounded by the pool's min and max like any other run, so a minute
/// whose demand exceeds the capacity of `max` workers counts as under-provisioned.
///
/// Fails with [`SimError::Bounds`] when `bounds.min` exceeds `bounds.max`.
pub fn oracle(
    trace: &[Sample],
    capacity: f64,
    startup_secs: i64,
    bounds: WorkerBounds,
) -> Result<RunResult, SimError> {
    check_bounds(bounds)?;
    let started = Instant::now();
    let demand: Vec<u32> = trace
        .iter()
        .map(|s| needed_workers(s.rps, capacity))
        .collect();
    let needed: Vec<u32> = demand
        .iter()
        .map(|&workers| workers.clamp(bounds.min, bounds.max))
        .collect();
    let lead = usize::try_from(startup_secs.div_euclid(STEP_SECS)).unwrap_or(0);

    let mut result = RunResult {
        predictor: "oracle".to_owned(),
        ratio_to_oracle: 1.0,
        ..empty_result_named("oracle")
    };
    let mut worker_minutes = 0u64;
    let mut previous: Option<u32> = None;
    for i in 0..needed.len() {
        let end = (i + lead + 1).min(needed.len());
        let running = needed[i..end].iter().copied().max().unwrap_or(0);
        worker_minutes += u64::from(running);
        if previous.is_some_and(|p| p != running) {
            result.scaling_actions += 1;
        }
        previous = Some(running);
        if demand[i] > running {
            result.underprovisioned_minutes += 1;
            result.peak_shortfall_workers = result.peak_shortfall_workers.max(demand[i] - running);
        }
        result.timeline.ready.push(running);
        result.timeline.total.push(running);
    }

    result.worker_hours = worker_minutes as f64 / 60.0;
    if !trace.is_empty() {
        result.underprovisioned_fraction =
            result.underprovisioned_minutes as f64 / trace.len() as f64;
    }
    result.elapsed = started.elapsed();
    Ok(result)
}

/// Returns the worker-hours of the oracle held for whole cycles: knowing the future, it may
/// change the count only at the start of each `interval`, as a predictor does without
/// emergency scale-ups. Each cycle runs the most workers any of its minutes needs, and the
/// next cycle's extra workers start `startup_secs` before it. No policy with this cycle that
/// never falls short pays less, so the ratio of this figure to [`oracle`]'s is the part of a
/// predictor's cost that the cycle length alone explains.
///
/// Fails with [`SimError::Bounds`] when `bounds.min` exceeds `bounds.max`.
pub fn cycle_oracle_worker_hours(
    trace: &[Sample],
    capacity: f64,
    startup_secs: i64,
    interval_secs: i64,
    bounds: WorkerBounds,
) -> Result<f64, SimError> {
    check_bounds(bounds)?;
    let cycle = usize::try_from(interval_secs.div_euclid(STEP_SECS).max(1)).unwrap_or(1);
    let lead = usize::try_from(startup_secs.div_euclid(STEP_SECS)).unwrap_or(0);
    let counts: Vec<u32> = trace
        .chunks(cycle)
        .map(|minutes| {
            minutes
                .iter()
                .map(|s| needed_workers(s.rps, capacity).clamp(bounds.min, bounds.max))
                .max()
                .unwrap_or(bounds.min)
        })
        .collect();

    let mut worker_minutes = 0u64;
    for (i, _) in trace.iter().enumerate() {
        let k = i / cycle;
        let next_start = (k + 1) * cycle;
        let mut running = counts[k];
        if next_start - i <= lead
            && let Some(&next) = counts.get(k + 1)
        {
            running = running.max(next);
        }
        worker_minutes += u64::from(running);
    }
    Ok(worker_minutes as f64 / 60.0)
}

/// Workers needed to serve `rps` with no headroom.
fn needed_workers(rps: f64, capacity: f64) -> u32 {
    // Saturating float-to-int cast: an absurd rate gives u32::MAX.
    (rps.max(0.0) / capacity).ceil() as u32
}

/// The simulated workers: the time each one is (or will be) ready, sorted.
struct Workers {
    ready_at: Vec<i64>,
}

impl Workers {
    fn new(count: u32, now: i64) -> Self {
        Self {
            ready_at: vec![now; count as usize],
        }
    }

    fn total(&self) -> u32 {
        u32::try_from(self.ready_at.len()).unwrap_or(u32::MAX)
    }

    fn ready(&self, now: i64) -> u32 {
        u32::try_from(self.ready_at.partition_point(|&t| t <= now)).unwrap_or(u32::MAX)
    }

    fn starting(&self, now: i64) -> u32 {
        self.total() - self.ready(now)
    }

    /// Starts new workers (ready after `startup`) or stops the newest ones first, so workers
    /// still starting go before ready ones.
    fn resize(&mut self, desired: u32, now: i64, startup: i64) {
        let desired = desired as usize;
        if desired > self.ready_at.len() {
            self.ready_at.resize(desired, now + startup);
        } else {
            self.ready_at.truncate(desired);
        }
    }
}

fn empty_result(autoscaler: &Autoscaler) -> RunResult {
    empty_result_named(predictor_name(autoscaler.predict_params().predictor))
}

fn empty_result_named(name: &str) -> RunResult {
    RunResult {
        predictor: name.to_owned(),
        worker_hours: 0.0,
        ratio_to_oracle: 0.0,
        underprovisioned_minutes: 0,
        underprovisioned_fraction: 0.0,
        peak_shortfall_workers: 0,
        scaling_actions: 0,
        timeline: Timeline::default(),
        elapsed: std::time::Duration::ZERO,
    }
}

/// Returns the predictor's name as written in a pool spec.
pub fn predictor_name(predictor: Predictor) -> &'static str {
    match predictor {
        Predictor::LinearSlope => "linear-slope",
        Predictor::Seasonal => "seasonal",
        Predictor::Reactive => "reactive",
    }
}

/// `report.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub trace: String,
    /// Requests per day the trace was rescaled to; `None` for the trace as recorded.
    pub scaled_requests_per_day: Option<f64>,
    pub startup_seconds: u64,
    pub oracle_worker_hours: f64,
    pub predictors: Vec<RunResult>,
}

/// Runs the oracle and each predictor over `trace` with the pool's policy (`predictor` in
/// `spec` is replaced by each of `predictors`), and fills the ratios to the oracle.
pub fn compare(
    spec: &Autoscaling,
    bounds: WorkerBounds,
    trace: &[Sample],
    predictors: &[Predictor],
) -> Result<(RunResult, Vec<RunResult>), SimError> {
    let oracle_run = oracle(
        trace,
        spec.capacity_per_worker,
        secs(spec.startup_time.as_secs()),
        bounds,
    )?;
    let mut runs = Vec::with_capacity(predictors.len());
    for &predictor in predictors {
        let mut spec = spec.clone();
        spec.predictor = predictor;
        let autoscaler = Autoscaler::new(&spec, bounds)?;
        runs.push(simulate(&autoscaler, bounds, trace)?);
    }
    set_ratios(&mut runs, oracle_run.worker_hours);
    Ok((oracle_run, runs))
}

/// Fills `ratio_to_oracle` of each run.
pub fn set_ratios(runs: &mut [RunResult], oracle_worker_hours: f64) {
    for run in runs {
        run.ratio_to_oracle = if oracle_worker_hours > 0.0 {
            run.worker_hours / oracle_worker_hours
        } else {
            f64::INFINITY
        };
    }
}

/// Converts a count of seconds to the signed form the simulator counts in, saturating.
pub fn secs(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX / 4)
}

#[cfg(test)]
mod tests;
