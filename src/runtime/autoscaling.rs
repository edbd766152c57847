//! The autoscaler inside the controller: when to run a sizing cycle or an emergency check,
//! reading metrics off the reconcile path, and turning the stored decision into the
//! planner's [`AutoscalerRecommendation`].
//!
//! One pool with `spec.autoscaling` moves through these steps on each reconcile:
//!
//! ```text
//!   cycle due (no last cycle, or lastCycle + interval <= now)?
//!     ├─ a finished read requested at or after the due time ──> decide ──> store decision
//!     └─ otherwise ──> start a read (unless one runs) ──> the read's end queues the pool
//!   else emergency check due (lastCheck + checkInterval <= now)?
//!     └─ same, with check_emergency on the live rate and its recent slope
//!   recommendation = the stored decision (Hold at the current count before the first one)
//! ```
//!
//! Metric reads take up to [`crate::autoscale::source::REQUEST_TIMEOUT`] per request, so they
//! run in their own task and never hold a reconcile. Every time comes from the controller's
//! clock, so a sped-up clock runs cycles every `interval / speed` of wall time.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tracing::{debug, warn};

use crate::autoscale::sizing::ActiveOverride;
use crate::autoscale::{
    Autoscaler, Decision, DecisionSource, MetricSource as _, Sample, SizingInput, Source,
};
use crate::reconcile::status::{ConditionReport, ConditionStatus, condition_type};
use crate::reconcile::{AutoscalerRecommendation, AutoscalerStatus, Observed, SizingSource};
use crate::spec::{self, Override, WorkerPool};

/// Resolution of the history read from the metric source.
const HISTORY_STEP: Duration = Duration::from_secs(60);

/// The purpose of a metric read: a full sizing cycle reads the history of its lookback and the
/// live rate, an emergency check the live rate and the history of the last startup time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadKind {
    Cycle,
    Check,
}

/// The values one metric read returned.
#[derive(Debug, Clone, Default)]
struct MetricValues {
    history: Vec<Sample>,
    live: Option<f64>,
}

/// A metric read that has finished, successfully or not.
#[derive(Debug, Clone)]
struct Reading {
    kind: ReadKind,
    /// Clock time at which the read started; the decision is made as of this time.
    requested_at: Timestamp,
    result: Result<MetricValues, String>,
}

#[derive(Default)]
struct PoolReads {
    /// The source and the spec it was built from; rebuilt when the spec changes. An error
    /// means the spec names a source that cannot be built (a missing trace, an unset
    /// password variable).
    source: Option<(spec::MetricSource, Result<Arc<Source>, String>)>,
    /// The read in progress, if any.
    in_flight: Option<(ReadKind, Timestamp)>,
    finished: Option<Reading>,
}

/// Metric reads of every autoscaled pool, shared between reconciles and the read tasks.
#[derive(Default)]
pub(crate) struct MetricReads {
    pools: Mutex<HashMap<String, PoolReads>>,
}

/// Queues a pool for a reconcile; called when its metric read ends.
pub(crate) type Requeue = Arc<dyn Fn(String) + Send + Sync>;

impl MetricReads {
    /// Returns the pool's metric source, built from `metric` unless the cached one was built
    /// from the same spec.
    fn source(&self, pool: &str, metric: &spec::MetricSource) -> Result<Arc<Source>, String> {
        let mut pools = self.pools.lock().unwrap_or_else(PoisonError::into_inner);
        let reads = pools.entry(pool.to_owned()).or_default();
        if let Some((built_from, source)) = &reads.source
            && built_from == metric
        {
            return source.clone();
        }
        let source = Source::from_spec(metric)
            .map(Arc::new)
            .map_err(|error| error.to_string());
        reads.source = Some((metric.clone(), source.clone()));
        source
    }

    /// Takes the finished read of `kind` requested at or after `due`, if there is one.
    fn take(&self, pool: &str, kind: ReadKind, due: Timestamp) -> Option<Reading> {
        let mut pools = self.pools.lock().unwrap_or_else(PoisonError::into_inner);
        let reads = pools.get_mut(pool)?;
        let usable = reads
            .finished
            .as_ref()
            .is_some_and(|r| r.kind == kind && r.requested_at >= due);
        if usable { reads.finished.take() } else { None }
    }

    /// Starts a read of `kind` from `source` at `now` unless one is already running. Its end
    /// stores the result and calls `requeue` with the pool.
    fn start(
        self: &Arc<Self>,
        pool: &str,
        source: Arc<Source>,
        kind: ReadKind,
        range: (i64, i64),
        now: Timestamp,
        requeue: &Requeue,
    ) {
        {
            let mut pools = self.pools.lock().unwrap_or_else(PoisonError::into_inner);
            let reads = pools.entry(pool.to_owned()).or_default();
            if reads.in_flight.is_some() {
                return;
            }
            reads.in_flight = Some((kind, now));
        }

        debug!(
            pool,
            ?kind,
            start = range.0,
            end = range.1,
            "reading metrics"
        );
        let reads = Arc::clone(self);
        let requeue = Arc::clone(requeue);
        let pool = pool.to_owned();
        tokio::spawn(async move {
            let result = read(&pool, &source, kind, range).await;
            {
                let mut pools = reads.pools.lock().unwrap_or_else(PoisonError::into_inner);
                let entry = pools.entry(pool.clone()).or_default();
                entry.in_flight = None;
                entry.finished = Some(Reading {
                    kind,
                    requested_at: now,
                    result,
                });
            }
            requeue(pool);
        });
    }

    /// Drops everything kept for a pool that no longer autoscales.
    pub(crate) fn forget(&self, pool: &str) {
        self.pools
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(pool);
    }
}

async fn read(
    pool: &str,
    source: &Source,
    kind: ReadKind,
    (start, end): (i64, i64),
) -> Result<MetricValues, String> {
    let history = match (kind, source.history(start, end, HISTORY_STEP).await) {
        (_, Ok(history)) => history,
        (ReadKind::Cycle, Err(error)) => return Err(describe(&error)),
        // The check still runs on the live rate alone when its short history is missing.
        (ReadKind::Check, Err(error)) => {
            debug!(
                pool,
                error = %describe(&error),
                "recent history read failed, so the emergency check uses the live rate alone"
            );
            Vec::new()
        }
    };
    let live = source.current().await.map_err(|e| describe(&e))?;
    Ok(MetricValues { history, live })
}

/// Describes a failed read with the whole chain of causes, so that a refused connection, a
/// DNS failure and a timeout read differently, and states whether the next cycle reads again.
fn describe(error: &crate::autoscale::MetricError) -> String {
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(current) = cause {
        let line = current.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        cause = current.source();
    }
    let next = if error.is_retryable() {
        "the next cycle reads again"
    } else {
        "fix the pool's metric source: reading again will not help"
    };
    format!("{text} ({next})")
}

/// Returns "1 failed cycle" or "N failed cycles".
fn failed_cycles(failures: u32) -> String {
    if failures == 1 {
        "1 failed cycle".to_owned()
    } else {
        format!("{failures} failed cycles")
    }
}

/// The autoscaler's contribution to one reconcile.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// For the planner; `None` leaves the pool at `workers.min` (only before the first
    /// decision of a pool whose job does not exist yet).
    pub recommendation: Option<AutoscalerRecommendation>,
    /// To store in `status.sizing.autoscaler`.
    pub status: Option<AutoscalerStatus>,
    pub conditions: Vec<ConditionReport>,
    /// A configuration error, for `lastError`.
    pub error: Option<String>,
    /// Clock time until the next cycle or check is due.
    pub requeue_after: Option<Duration>,
}

/// Everything [`evaluate`] reads.
pub(crate) struct Context<'a> {
    pub pool: &'a WorkerPool,
    pub override_: Option<&'a Override>,
    pub observed: &'a Observed,
    /// `status.sizing.autoscaler` as stored.
    pub stored: Option<&'a AutoscalerStatus>,
    /// The worker count an active rollout keeps, without its surge workers; `None` without
    /// a rollout. It replaces the live job's total as the count in force.
    pub rollout_base: Option<u32>,
    pub now: Timestamp,
    pub reads: &'a Arc<MetricReads>,
    pub requeue: &'a Requeue,
}

/// Runs the autoscaler's part of a reconcile: a cycle or an emergency check when one is due
/// and its metrics have been read, else starts the read. Returns `None` for a pool without
/// `spec.autoscaling`.
///
/// NOTE: the state lives in `status.sizing`, which an invalid pool's status lacks, so a
/// pool that is invalid for a while starts its cycles and cooldowns afresh.
pub(crate) fn evaluate(context: &Context<'_>) -> Option<Outcome> {
    let pool = context.pool;
    let name = pool.metadata.name.as_str();
    let Some(spec) = pool.spec.autoscaling.as_ref() else {
        context.reads.forget(name);
        return None;
    };
    let now = context.now;
    let mut counts = WorkerTotals::of(pool, context.observed);
    if let Some(base) = context.rollout_base {
        counts.desired = base;
    }

    let autoscaler = match Autoscaler::new(spec, pool.spec.workers) {
        Ok(autoscaler) => autoscaler,
        Err(error) => return Some(config_error(&error.to_string(), &counts, context.stored)),
    };
    let source = match context.reads.source(name, &spec.metric) {
        Ok(source) => source,
        Err(message) => {
            let message = format!("autoscaling.metric: {message}");
            return Some(config_error(&message, &counts, context.stored));
        }
    };

    let mut status = context.stored.cloned().unwrap_or_default();
    let interval = spec.interval.get();
    let override_workers =
        context
            .override_
            .filter(|o| now < o.spec.until)
            .map(|o| ActiveOverride {
                workers: o.spec.workers,
                force: o.spec.force,
            });

    // The first cycle is due at once, and any read finished since then serves it. A cycle
    // that an override decided keeps the override's count, so once the override has ended
    // (cleared or expired), any read after that cycle decides again without waiting for the
    // next interval.
    let override_ended = override_workers.is_none()
        && status
            .decision
            .as_ref()
            .is_some_and(|decision| decision.source == DecisionSource::Override);
    let cycle_due = match status.last_cycle {
        None => Timestamp::MIN,
        Some(last) if override_ended => add(last, Duration::from_nanos(1)),
        Some(last) => add(last, interval),
    };
    let check_due = spec
        .emergency
        .enabled
        .then(|| {
            let last = status.last_check.max(status.last_cycle)?;
            Some(add(last, spec.emergency.check_interval.get()))
        })
        .flatten();

    if now >= cycle_due {
        match context.reads.take(name, ReadKind::Cycle, cycle_due) {
            Some(reading) => {
                run_cycle(
                    &autoscaler,
                    &mut status,
                    &reading,
                    &counts,
                    override_workers,
                );
                status.last_cycle = Some(reading.requested_at);
                status.last_check = Some(reading.requested_at);
            }
            None => context.reads.start(
                name,
                source,
                ReadKind::Cycle,
                autoscaler.history_range(now.as_second()),
                now,
                context.requeue,
            ),
        }
    } else if let Some(check_due) = check_due.filter(|due| now >= *due) {
        match context.reads.take(name, ReadKind::Check, check_due) {
            Some(reading) => {
                run_check(
                    &autoscaler,
                    &mut status,
                    &reading,
                    &counts,
                    override_workers,
                );
                status.last_check = Some(reading.requested_at);
            }
            None => context.reads.start(
                name,
                source,
                ReadKind::Check,
                autoscaler.check_range(now.as_second()),
                now,
                context.requeue,
            ),
        }
    }

    let stored_decision = context.stored.and_then(|stored| stored.decision.as_ref());
    if let Some(decision) = status.decision.as_ref()
        && stored_decision != Some(decision)
    {
        decision.log(name);
    }

    // Due times after this reconcile's work.
    let next_cycle = status.last_cycle.map_or(now, |last| add(last, interval));
    status.next_cycle = Some(next_cycle);
    let next_check = spec
        .emergency
        .enabled
        .then(|| {
            status
                .last_check
                .map(|last| add(last, spec.emergency.check_interval.get()))
        })
        .flatten();
    let next_due = next_check.map_or(next_cycle, |check| check.min(next_cycle));
    let requeue_after = (next_due > now).then(|| until(now, next_due));

    let mut outcome = Outcome {
        recommendation: Some(recommendation(&status, &counts, spec, next_cycle)),
        conditions: vec![configured_condition()],
        requeue_after,
        ..Outcome::default()
    };
    if status.decision.is_none() && !counts.job_exists {
        // Before the first decision of a new pool, the planner starts it at workers.min.
        outcome.recommendation = None;
    }
    outcome.conditions.push(metrics_condition(&status, spec));
    outcome.status = Some(status);
    Some(outcome)
}

/// Runs one sizing cycle on a finished read. A failed read counts as a metric failure: the
/// count is held, or set to `fallback` after `fallbackAfter` failures.
fn run_cycle(
    autoscaler: &Autoscaler,
    status: &mut AutoscalerStatus,
    reading: &Reading,
    counts: &WorkerTotals,
    override_workers: Option<ActiveOverride>,
) {
    let empty = MetricValues::default();
    let values = match &reading.result {
        Ok(values) => {
            status.metric_error = None;
            values
        }
        Err(message) => {
            status.metric_error = Some(message.clone());
            &empty
        }
    };
    let input = counts.input(
        reading.requested_at,
        &values.history,
        values.live,
        override_workers,
        &status.state,
    );
    let (decision, state) = autoscaler.decide(&input);
    if let Err(message) = &reading.result {
        warn!(
            error = %message,
            consecutive_failures = state.consecutive_failures,
            held = decision.desired,
            "metric read failed; worker count held"
        );
    }
    status.state = state;
    status.decision = Some(decision);
}

/// Runs one emergency check on a finished read of the live rate. A failed read changes
/// nothing but the recorded error.
fn run_check(
    autoscaler: &Autoscaler,
    status: &mut AutoscalerStatus,
    reading: &Reading,
    counts: &WorkerTotals,
    override_workers: Option<ActiveOverride>,
) {
    let values = match &reading.result {
        Ok(values) => values,
        Err(message) => {
            warn!(error = %message, "live metric read failed; emergency check skipped");
            status.metric_error = Some(message.clone());
            return;
        }
    };
    let input = counts.input(
        reading.requested_at,
        &values.history,
        values.live,
        override_workers,
        &status.state,
    );
    let (decision, state) = autoscaler.check_emergency(&input);
    status.state = state;
    if let Some(decision) = decision {
        status.decision = Some(decision);
    }
}

/// Builds the planner's recommendation from the stored decision. A decision of
/// `forecast-only` mode, or no decision yet, keeps the current count.
fn recommendation(
    status: &AutoscalerStatus,
    counts: &WorkerTotals,
    spec: &spec::Autoscaling,
    next_cycle: Timestamp,
) -> AutoscalerRecommendation {
    let mut inputs = BTreeMap::new();
    inputs.insert("capacityPerWorker".to_owned(), spec.capacity_per_worker);
    inputs.insert("headroom".to_owned(), spec.headroom);

    let Some(decision) = status.decision.as_ref() else {
        return AutoscalerRecommendation {
            desired: counts.desired,
            source: SizingSource::Hold,
            reason: "waiting for the first metric read: count held".to_owned(),
            predicted_rps: None,
            inputs,
            last_cycle: status.last_cycle,
            next_cycle: Some(next_cycle),
        };
    };

    let used = &decision.inputs;
    if let Some(live) = used.live_rps {
        inputs.insert("currentRps".to_owned(), live);
    }
    if let Some(projected) = used.projected_rps {
        inputs.insert("projectedRps".to_owned(), projected);
    }
    inputs.insert("historySamples".to_owned(), used.history_samples as f64);
    inputs.insert("currentDesired".to_owned(), f64::from(used.current_desired));
    inputs.insert("readyWorkers".to_owned(), f64::from(used.ready_workers));
    inputs.insert(
        "startingWorkers".to_owned(),
        f64::from(used.starting_workers),
    );
    if let Some(recommended) = used.recommended {
        inputs.insert("recommended".to_owned(), f64::from(recommended));
    }

    let (desired, source, reason) = if !decision.act {
        (
            counts.desired,
            SizingSource::Hold,
            format!("forecast-only mode, count held: {decision}"),
        )
    } else {
        let source = match decision.source {
            DecisionSource::Fallback => SizingSource::Fallback,
            DecisionSource::Hold | DecisionSource::Override => SizingSource::Hold,
            DecisionSource::Autoscaler
            | DecisionSource::Min
            | DecisionSource::Max
            | DecisionSource::Emergency => SizingSource::Autoscaler,
        };
        (decision.desired, source, decision.to_string())
    };

    AutoscalerRecommendation {
        desired,
        source,
        reason,
        predicted_rps: decision.prediction.map(|p| p.peak_rps),
        inputs,
        last_cycle: status.last_cycle,
        next_cycle: Some(next_cycle),
    }
}

fn configured_condition() -> ConditionReport {
    ConditionReport {
        r#type: condition_type::AUTOSCALER_CONFIGURED,
        status: ConditionStatus::True,
        reason: "Valid".to_owned(),
        message: "spec.autoscaling is valid".to_owned(),
    }
}

fn metrics_condition(status: &AutoscalerStatus, spec: &spec::Autoscaling) -> ConditionReport {
    let failures = status.state.consecutive_failures;
    match (&status.metric_error, status.decision.as_ref()) {
        (Some(message), decision) => {
            let effect = held_or_fallback(decision, spec);
            ConditionReport {
                r#type: condition_type::METRICS_AVAILABLE,
                status: ConditionStatus::False,
                reason: "MetricReadFailed".to_owned(),
                // A failed check between cycles sets the error without counting a cycle.
                message: if failures > 0 {
                    format!("{message}; {} in a row, {effect}", failed_cycles(failures))
                } else {
                    format!("{message}; {effect}")
                },
            }
        }
        (None, decision @ Some(_)) if failures > 0 => ConditionReport {
            r#type: condition_type::METRICS_AVAILABLE,
            status: ConditionStatus::False,
            reason: "MetricsStale".to_owned(),
            message: format!(
                "the history is empty, stale or not finite; {} in a row, {}",
                failed_cycles(failures),
                held_or_fallback(decision, spec)
            ),
        },
        (None, Some(_)) => ConditionReport {
            r#type: condition_type::METRICS_AVAILABLE,
            status: ConditionStatus::True,
            reason: "MetricsRead".to_owned(),
            message: "the last metric read succeeded".to_owned(),
        },
        (None, None) => ConditionReport {
            r#type: condition_type::METRICS_AVAILABLE,
            status: ConditionStatus::Unknown,
            reason: "NotReadYet".to_owned(),
            message: "the first metric read has not finished".to_owned(),
        },
    }
}

/// Describes what a decision without usable metrics did: applied `fallback`, or held the
/// count (the fallback never lowers it).
fn held_or_fallback(decision: Option<&Decision>, spec: &spec::Autoscaling) -> String {
    match (decision.map(|d| d.source), spec.fallback) {
        (Some(DecisionSource::Fallback), Some(fallback)) => {
            format!("fallback count {fallback} applies")
        }
        _ => "worker count held".to_owned(),
    }
}

/// Reports an unusable `spec.autoscaling` and keeps the count in force.
fn config_error(
    message: &str,
    counts: &WorkerTotals,
    stored: Option<&AutoscalerStatus>,
) -> Outcome {
    warn!(error = %message, "spec.autoscaling is invalid; worker count held");
    let recommendation = counts.job_exists.then(|| AutoscalerRecommendation {
        desired: counts.desired,
        source: SizingSource::Hold,
        reason: format!("spec.autoscaling is invalid, count held: {message}"),
        predicted_rps: None,
        inputs: BTreeMap::new(),
        last_cycle: None,
        next_cycle: None,
    });
    Outcome {
        recommendation,
        status: stored.cloned(),
        conditions: vec![ConditionReport {
            r#type: condition_type::AUTOSCALER_CONFIGURED,
            status: ConditionStatus::False,
            reason: "InvalidAutoscaling".to_owned(),
            message: message.to_owned(),
        }],
        error: Some(format!("spec.autoscaling is invalid: {message}")),
        requeue_after: None,
    }
}

/// The pool's worker counts over its zones, as the autoscaler reads them.
#[derive(Debug, Clone, Copy)]
struct WorkerTotals {
    job_exists: bool,
    /// Sum of the live job's group counts; 0 without a job.
    desired: u32,
    ready: u32,
    starting: u32,
}

impl WorkerTotals {
    fn of(pool: &WorkerPool, observed: &Observed) -> Self {
        let mut totals = Self {
            job_exists: observed.job.is_some(),
            desired: 0,
            ready: 0,
            starting: 0,
        };
        for zone in &pool.spec.zones {
            let counts = observed.zone_counts(&zone.name);
            totals.ready += counts.healthy;
            // A running worker still loading its model is capacity on the way too, so the
            // cooldown of a scale-up starts only once it is healthy.
            // NOTE: workers Nomad has not placed yet (no allocation) are not counted.
            totals.starting += counts.becoming_ready;
            if let Some(job) = &observed.job {
                totals.desired += job.group_count(&zone.name).unwrap_or(0);
            }
        }
        totals
    }

    fn input<'a>(
        &self,
        at: Timestamp,
        history: &'a [Sample],
        live_rps: Option<f64>,
        override_workers: Option<ActiveOverride>,
        state: &'a crate::autoscale::SizingState,
    ) -> SizingInput<'a> {
        SizingInput {
            now: at.as_second(),
            history,
            live_rps,
            current_desired: self.desired,
            ready_workers: self.ready,
            starting_workers: self.starting,
            override_workers,
            state,
        }
    }
}

/// Returns `at + duration`, saturating at the end of time.
fn add(at: Timestamp, duration: Duration) -> Timestamp {
    let span = SignedDuration::try_from(duration).unwrap_or(SignedDuration::MAX);
    at.saturating_add(span).unwrap_or(Timestamp::MAX)
}

/// Returns the time from `now` to `later`, zero when `later` has passed.
fn until(now: Timestamp, later: Timestamp) -> Duration {
    let nanos = later.as_nanosecond() - now.as_nanosecond();
    Duration::from_nanos(u64::try_from(nanos.max(0)).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests;
