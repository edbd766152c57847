//! The controller's Prometheus metrics, kept in a registry owned by [`Metrics`] (no global).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::reconcile::{Phase, SizingSource, Status};

/// Receives one observation per HTTP request to Nomad or Consul. The clients call it; the
/// controller passes [`Metrics`].
pub trait RequestObserver: Send + Sync {
    /// Records a request to `system` (`nomad` or `consul`) on `endpoint` (a route template
    /// such as `/v1/job/:id`, never a concrete ID, to bound the label values) that ended
    /// with HTTP `status` (0 when no response arrived) after `seconds`.
    fn observe(&self, system: &str, endpoint: &str, status: u16, seconds: f64);
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    pool: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    pool: String,
    result: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    pool: String,
    kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ZoneLabels {
    pool: String,
    zone: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    pool: String,
    phase: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    pool: String,
    source: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WatchLabels {
    watch: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    system: String,
    endpoint: String,
    status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    system: String,
    endpoint: String,
}

/// Reconcile durations: 5 ms to about 82 s.
fn reconcile_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

/// Request latencies: 1 ms to about 16 s; blocking queries sit in the top buckets.
fn request_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// Every metric the controller exports. Metric handles are shared, so cloning is cheap.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ReconcileLabels, Counter>,
    reconcile_duration: Family<PoolLabels, Histogram, fn() -> Histogram>,
    reconcile_errors: Family<ErrorLabels, Counter>,
    queue_depth: Gauge,
    watch_restarts: Family<WatchLabels, Counter>,
    leader: Gauge,
    workers_desired: Family<ZoneLabels, Gauge>,
    workers_running: Family<ZoneLabels, Gauge>,
    workers_healthy: Family<ZoneLabels, Gauge>,
    pool_phase: Family<PhaseLabels, Gauge>,
    sizing_source: Family<SourceLabels, Gauge>,
    metric_failures: Family<PoolLabels, Gauge>,
    predicted_rps: Family<PoolLabels, Gauge<f64, AtomicU64>>,
    /// The zones whose series each pool has, so that a pool's series can be removed when
    /// it is deleted, loses a zone, or this instance stops leading.
    recorded: Mutex<HashMap<String, Vec<String>>>,
    requests: Family<RequestLabels, Counter>,
    request_duration: Family<EndpointLabels, Histogram, fn() -> Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates the metrics and registers them under the `steward_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("steward");
        let metrics = Self {
            reconciles: Family::default(),
            reconcile_duration: Family::new_with_constructor(reconcile_histogram),
            reconcile_errors: Family::default(),
            queue_depth: Gauge::default(),
            watch_restarts: Family::default(),
            leader: Gauge::default(),
            workers_desired: Family::default(),
            workers_running: Family::default(),
            workers_healthy: Family::default(),
            pool_phase: Family::default(),
            sizing_source: Family::default(),
            metric_failures: Family::default(),
            predicted_rps: Family::default(),
            recorded: Mutex::default(),
            requests: Family::default(),
            request_duration: Family::new_with_constructor(request_histogram),
            registry: Registry::default(),
        };

        registry.register(
            "reconciles",
            "Reconciles by pool and result (success or error)",
            metrics.reconciles.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time one reconcile took, in seconds",
            metrics.reconcile_duration.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Failed reconciles by pool and error kind",
            metrics.reconcile_errors.clone(),
        );
        registry.register(
            "queue_depth",
            "Pools waiting in the work queue",
            metrics.queue_depth.clone(),
        );
        registry.register(
            "watch_restarts",
            "Watches restarted after an error, by watch",
            metrics.watch_restarts.clone(),
        );
        registry.register(
            "leader",
            "1 while this instance holds the leader lock, else 0",
            metrics.leader.clone(),
        );
        registry.register(
            "workers_desired",
            "Desired workers by pool and zone",
            metrics.workers_desired.clone(),
        );
        registry.register(
            "workers_running",
            "Running workers by pool and zone",
            metrics.workers_running.clone(),
        );
        registry.register(
            "workers_healthy",
            "Healthy workers by pool and zone",
            metrics.workers_healthy.clone(),
        );
        registry.register(
            "pool_phase",
            "1, with the pool's current phase as label (Ready, Scaling, RollingOut, Degraded, \
             Paused, Error)",
            metrics.pool_phase.clone(),
        );
        registry.register(
            "pool_sizing_source",
            "1, with the origin of the pool's desired count as label (override, autoscaler, \
             min, max, fallback, hold)",
            metrics.sizing_source.clone(),
        );
        registry.register(
            "autoscaler_metric_failures",
            "Consecutive failed reads of the pool's metric source; 0 after a good read",
            metrics.metric_failures.clone(),
        );
        registry.register(
            "autoscaler_predicted_requests_per_second",
            "Peak request rate the autoscaler predicts for the pool's next cycle",
            metrics.predicted_rps.clone(),
        );
        registry.register(
            "requests",
            "HTTP requests to Nomad and Consul by endpoint and status (0: no response)",
            metrics.requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "HTTP request latency to Nomad and Consul, in seconds",
            metrics.request_duration.clone(),
        );

        Self {
            registry,
            ..metrics
        }
    }

    /// Records one reconcile of `pool` that took `seconds`, failed with an error of `kind`
    /// when `error_kind` is set.
    pub fn observe_reconcile(&self, pool: &str, seconds: f64, error_kind: Option<&str>) {
        let result = if error_kind.is_some() {
            "error"
        } else {
            "success"
        };
        self.reconciles
            .get_or_create(&ReconcileLabels {
                pool: pool.to_owned(),
                result: result.to_owned(),
            })
            .inc();
        self.reconcile_duration
            .get_or_create(&PoolLabels {
                pool: pool.to_owned(),
            })
            .observe(seconds);
        if let Some(kind) = error_kind {
            self.reconcile_errors
                .get_or_create(&ErrorLabels {
                    pool: pool.to_owned(),
                    kind: kind.to_owned(),
                })
                .inc();
        }
    }

    /// Sets the number of pools waiting in the work queue.
    pub fn set_queue_depth(&self, depth: usize) {
        self.queue_depth
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }

    /// Counts one restart of `watch` (such as `consul-pools` or `nomad-allocations`).
    pub fn inc_watch_restarts(&self, watch: &str) {
        self.watch_restarts
            .get_or_create(&WatchLabels {
                watch: watch.to_owned(),
            })
            .inc();
    }

    /// Sets whether this instance is the leader. Only the leader reports pool state, so a
    /// standby drops every pool's series: they would otherwise keep the values of its last
    /// term and duplicate the new leader's.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
        if !leader {
            let pools: Vec<String> = self.recorded().keys().cloned().collect();
            for pool in pools {
                self.forget_pool(&pool);
            }
        }
    }

    /// Sets a pool's gauges from its status: workers per zone, phase, sizing source, and for
    /// pools with an autoscaler the metric failures and the prediction. Series of zones the
    /// status no longer lists are removed.
    pub fn record_status(&self, status: &Status) {
        let pool = &status.pool;

        let zones: Vec<String> = status.zones.iter().map(|z| z.name.clone()).collect();
        let previous = self.recorded().insert(pool.clone(), zones.clone());
        for removed in previous
            .iter()
            .flatten()
            .filter(|zone| !zones.contains(zone))
        {
            self.remove_zone(pool, removed);
        }
        for zone in &status.zones {
            let labels = ZoneLabels {
                pool: pool.clone(),
                zone: zone.name.clone(),
            };
            self.workers_desired
                .get_or_create(&labels)
                .set(i64::from(zone.workers.desired));
            self.workers_running
                .get_or_create(&labels)
                .set(i64::from(zone.workers.running));
            self.workers_healthy
                .get_or_create(&labels)
                .set(i64::from(zone.workers.healthy));
        }

        // One series per pool, for the current value. A 0 series for each other value would
        // add ten series per pool, and no alert or panel needs them.
        for phase in Phase::ALL.into_iter().filter(|p| *p != status.phase) {
            self.pool_phase.remove(&phase_labels(pool, phase));
        }
        self.pool_phase
            .get_or_create(&phase_labels(pool, status.phase))
            .set(1);

        let source = status.sizing.as_ref().map(effective_source);
        for other in SizingSource::ALL.into_iter().filter(|s| Some(*s) != source) {
            self.sizing_source.remove(&source_labels(pool, other));
        }
        if let Some(source) = source {
            self.sizing_source
                .get_or_create(&source_labels(pool, source))
                .set(1);
        }

        let labels = PoolLabels { pool: pool.clone() };
        let autoscaler = status.sizing.as_ref().and_then(|s| s.autoscaler.as_ref());
        match autoscaler {
            Some(autoscaler) => {
                self.metric_failures
                    .get_or_create(&labels)
                    .set(i64::from(autoscaler.state.consecutive_failures));
            }
            None => {
                self.metric_failures.remove(&labels);
            }
        }
        match status.sizing.as_ref().and_then(|s| s.predicted_rps) {
            Some(rps) => {
                self.predicted_rps.get_or_create(&labels).set(rps);
            }
            None => {
                self.predicted_rps.remove(&labels);
            }
        }
    }

    /// Removes every series of `pool`, such as after the pool was deleted.
    pub fn forget_pool(&self, pool: &str) {
        let zones = self.recorded().remove(pool).unwrap_or_default();
        for zone in &zones {
            self.remove_zone(pool, zone);
        }
        for phase in Phase::ALL {
            self.pool_phase.remove(&phase_labels(pool, phase));
        }
        for source in SizingSource::ALL {
            self.sizing_source.remove(&source_labels(pool, source));
        }
        let labels = PoolLabels {
            pool: pool.to_owned(),
        };
        self.metric_failures.remove(&labels);
        self.predicted_rps.remove(&labels);
    }

    fn remove_zone(&self, pool: &str, zone: &str) {
        let labels = ZoneLabels {
            pool: pool.to_owned(),
            zone: zone.to_owned(),
        };
        self.workers_desired.remove(&labels);
        self.workers_running.remove(&labels);
        self.workers_healthy.remove(&labels);
    }

    fn recorded(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<String>>> {
        // A panic while the map was held leaves it consistent: every write is one insert
        // or remove.
        self.recorded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Encodes every metric in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing metrics into a String cannot fail");
        out
    }
}

/// Returns the source the metric reports: the autoscaler's own `min` or `max` rule counts as
/// `min` or `max`, so that a pool kept at `workers.max` by its traffic shows as such.
fn effective_source(sizing: &crate::reconcile::SizingDecision) -> SizingSource {
    use crate::autoscale::DecisionSource;

    let rule = sizing
        .autoscaler
        .as_ref()
        .and_then(|autoscaler| autoscaler.decision.as_ref())
        .map(|decision| decision.source);
    match (sizing.source, rule) {
        (SizingSource::Autoscaler, Some(DecisionSource::Max)) => SizingSource::Max,
        (SizingSource::Autoscaler, Some(DecisionSource::Min)) => SizingSource::Min,
        (source, _) => source,
    }
}

fn phase_labels(pool: &str, phase: Phase) -> PhaseLabels {
    PhaseLabels {
        pool: pool.to_owned(),
        phase: phase.to_string(),
    }
}

fn source_labels(pool: &str, source: SizingSource) -> SourceLabels {
    SourceLabels {
        pool: pool.to_owned(),
        source: source.as_str().to_owned(),
    }
}

impl RequestObserver for Metrics {
    fn observe(&self, system: &str, endpoint: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                system: system.to_owned(),
                endpoint: endpoint.to_owned(),
                status: status.to_string(),
            })
            .inc();
        self.request_duration
            .get_or_create(&EndpointLabels {
                system: system.to_owned(),
                endpoint: endpoint.to_owned(),
            })
            .observe(seconds);
    }
}

impl crate::nomad::RequestMetrics for Metrics {
    fn record(&self, request: &crate::nomad::RequestRecord<'_>) {
        let status = request.status.map_or(0, |status| status.as_u16());
        self.observe(
            "nomad",
            request.endpoint,
            status,
            request.elapsed.as_secs_f64(),
        );
    }
}
