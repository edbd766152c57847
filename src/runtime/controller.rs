//! [`Controller`]: watches, caches, leader election and the reconcile loop put together.
//!
//! A controller runs through these states:
//!
//! ```text
//!   Syncing ── every cache has its first complete list ──▶ Standby
//!   Standby ── leader lock acquired ──▶ Leading (every pool queued)
//!   Leading ── lock lost ──▶ Standby (in-flight reconciles cancelled)
//!   any ── shutdown ──▶ lock released, session destroyed, tasks stopped
//! ```
//!
//! Standbys keep their caches warm, so a new leader acts at once.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, debug, info, warn};

use super::autoscaling::{self, MetricReads};
use super::cache::{Cache, PoolEntry, PoolView, StoredStatus};
use super::clock::{Clock, SystemClock};
use super::error::Error;
use super::executor::{Fence, NomadExecutor};
use super::queue::{QueueConfig, WorkQueue};
use super::rollout;
use super::watches::{self, ChangeSink, WatchContext};
use crate::consul::{self, ConsulClient, Keys, LeaderLock, LeaderLockConfig, TxnOp};
use crate::nomad;
use crate::reconcile::status::WorkerCounts;
use crate::reconcile::{
    self, ExecError, JobKey, Phase, Plan, PlanInput, Status, StatusReport, plan_delete, plan_with,
};
use crate::rollout::StepInput;
use crate::telemetry::{self, Metrics, Readiness};

/// Everything a controller needs. Build with [`ControllerConfig::new`] and adjust fields.
#[derive(Clone)]
pub struct ControllerConfig {
    pub consul: ConsulClient,
    pub keys: Keys,
    pub nomad: nomad::Client,
    /// Address serving `/metrics`, `/healthz` and `/readyz`; none when `None`.
    pub listen: Option<SocketAddr>,
    /// This instance's name in the leader key and in `writtenBy`.
    pub identity: String,
    /// Leave the job of a deleted pool running instead of stopping it.
    pub orphan_on_delete: bool,
    pub clock: Arc<dyn Clock>,
    pub queue: QueueConfig,
    /// Session TTL of the leader lock; renewed every TTL/2. Consul accepts 10 s to 24 h.
    pub leader_ttl: Duration,
    /// How long the leader key stays locked after the leader's session ends, so an old
    /// leader notices before a new one acts.
    pub lock_delay: Duration,
    pub consul_watch: consul::WatchConfig,
    pub nomad_watch: nomad::WatchConfig,
}

impl ControllerConfig {
    /// Defaults: wall clock, no metrics listener, jobs stopped on delete, the default queue
    /// with a 10 ms debounce (up to 1 s per burst), leader TTL 15 s and lock delay 5 s.
    pub fn new(
        consul: ConsulClient,
        keys: Keys,
        nomad: nomad::Client,
        identity: impl Into<String>,
    ) -> Self {
        Self {
            consul,
            keys,
            nomad,
            listen: None,
            identity: identity.into(),
            orphan_on_delete: false,
            clock: Arc::new(SystemClock),
            // A short debounce still merges the bursts one scheduler pass produces, and keeps
            // the reaction to an override or a pool change fast.
            queue: QueueConfig {
                debounce: Duration::from_millis(10),
                max_debounce: Duration::from_secs(1),
                ..QueueConfig::default()
            },
            leader_ttl: Duration::from_secs(15),
            lock_delay: Duration::from_secs(5),
            // Two back-to-back reads, then one per 20 ms: a changed pool or override is seen
            // within milliseconds, and a bad index still cannot make a busy loop.
            consul_watch: consul::WatchConfig {
                min_interval: Duration::from_millis(20),
                ..consul::WatchConfig::default()
            },
            nomad_watch: nomad::WatchConfig::default(),
        }
    }
}

/// Counters of what a controller did, for tests and the benchmark.
#[derive(Debug, Default)]
struct Counters {
    reconciles: AtomicU64,
    nomad_writes: Arc<AtomicU64>,
    status_writes: AtomicU64,
}

struct Inner {
    config: ControllerConfig,
    cache: Arc<Cache>,
    queue: WorkQueue<String>,
    /// The reason each queued pool was queued, for the reconcile span.
    reasons: Mutex<HashMap<String, &'static str>>,
    counters: Counters,
    leading: AtomicBool,
    metrics: Arc<Metrics>,
    readiness: Readiness,
    /// Metric reads of the autoscaled pools, which run outside reconciles.
    metric_reads: Arc<MetricReads>,
    /// Analysis samples of the soaking rollouts, which run outside reconciles.
    analysis_samples: Arc<rollout::AnalysisSamples>,
}

impl Inner {
    fn queue_changed(&self, pools: BTreeSet<String>, reason: &'static str) {
        if pools.is_empty() {
            return;
        }
        let mut reasons = self.reasons.lock().unwrap_or_else(PoisonError::into_inner);
        for pool in pools {
            reasons.entry(pool.clone()).or_insert(reason);
            self.queue.notify_changed(pool);
        }
    }

    fn take_reason(&self, pool: &str) -> &'static str {
        self.reasons
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(pool)
            .unwrap_or("requeue")
    }
}

/// A view of a running controller for tests, `steward dev` and the benchmark. Cloning
/// shares it.
#[derive(Clone)]
pub struct ControllerHandle {
    inner: Arc<Inner>,
}

impl ControllerHandle {
    /// Returns whether every cache has its first complete list.
    pub fn is_ready(&self) -> bool {
        self.inner.cache.is_ready()
    }

    /// Waits until every cache has its first complete list.
    pub async fn wait_ready(&self) {
        self.inner.cache.wait_ready().await;
    }

    /// Returns whether this controller is acting as leader now.
    pub fn is_leader(&self) -> bool {
        self.inner.leading.load(Ordering::Acquire)
    }

    /// Returns the number of reconciles that ran.
    pub fn reconciles(&self) -> u64 {
        self.inner.counters.reconciles.load(Ordering::Relaxed)
    }

    /// Returns the number of writes Nomad accepted from this controller.
    pub fn nomad_writes(&self) -> u64 {
        self.inner.counters.nomad_writes.load(Ordering::Relaxed)
    }

    /// Returns the number of status writes Consul accepted from this controller.
    pub fn status_writes(&self) -> u64 {
        self.inner.counters.status_writes.load(Ordering::Relaxed)
    }

    /// Returns the cache, to inspect what the controller observed.
    pub fn cache(&self) -> &Cache {
        &self.inner.cache
    }

    /// Returns the number of pools queued and not running.
    pub fn queued(&self) -> usize {
        self.inner.queue.len()
    }

    /// Returns the controller's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }
}

/// The controller. [`Controller::run`] runs it until the shutdown token fires.
pub struct Controller {
    inner: Arc<Inner>,
}

/// One leadership term: the lock that granted it and the token cancelled when it ends.
struct Term {
    lock: Arc<LeaderLock>,
    leading: CancellationToken,
}

impl Term {
    fn may_write(&self) -> bool {
        !self.leading.is_cancelled() && self.lock.is_leader()
    }
}

impl Controller {
    /// Validates the settings and builds a controller; nothing runs until [`Controller::run`].
    pub fn new(mut config: ControllerConfig) -> Result<Self, Error> {
        consul::keys::validate_key(&config.keys.leader()).map_err(Error::Keys)?;
        let queue = WorkQueue::new(config.queue)?;

        // Every request to Consul and Nomad is counted in `steward_requests_total`, unless
        // the caller attached its own observer to a client (a benchmark does).
        let metrics = Arc::new(Metrics::new());
        if !config.consul.has_observer() {
            config.consul = config.consul.clone().with_observer(metrics.clone());
        }
        if !config.nomad.has_metrics() {
            config.nomad = config.nomad.clone().with_metrics(metrics.clone());
        }

        Ok(Self {
            inner: Arc::new(Inner {
                config,
                cache: Arc::new(Cache::new()),
                queue,
                reasons: Mutex::new(HashMap::new()),
                counters: Counters::default(),
                leading: AtomicBool::new(false),
                metrics,
                readiness: Readiness::default(),
                metric_reads: Arc::new(MetricReads::default()),
                analysis_samples: Arc::new(rollout::AnalysisSamples::default()),
            }),
        })
    }

    /// Returns a handle to observe the controller while it runs.
    pub fn handle(&self) -> ControllerHandle {
        ControllerHandle {
            inner: Arc::clone(&self.inner),
        }
    }

    /// Runs the controller until `shutdown` fires: serves telemetry, starts the watches,
    /// campaigns for the leader lock and reconciles while leading. On shutdown it stops
    /// starting reconciles, waits for running ones, releases the lock and destroys its
    /// session so a standby takes over without waiting for the TTL.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), Error> {
        let inner = self.inner;
        let config = &inner.config;
        let background = shutdown.child_token();
        let mut tasks = JoinSet::new();

        // Telemetry endpoints.
        if let Some(addr) = config.listen {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| Error::Listen { addr, source })?;
            let router = telemetry::router(Arc::clone(&inner.metrics), inner.readiness.clone());
            let cancel = background.clone();
            info!(addr = %listener.local_addr().unwrap_or(addr), "serving /metrics, /healthz and /readyz");
            tasks.spawn(async move {
                if let Err(error) = telemetry::serve(listener, router, cancel).await {
                    warn!(%error, "telemetry server stopped");
                }
            });
        }

        // Watches fill the cache and queue the pools each change affects.
        let sink_inner = Arc::clone(&inner);
        let sink: ChangeSink =
            Arc::new(move |pools, reason| sink_inner.queue_changed(pools, reason));
        let context = WatchContext {
            cache: Arc::clone(&inner.cache),
            sink,
            consul: config.consul.clone(),
            keys: config.keys.clone(),
            nomad: config.nomad.with_namespace("*"),
            consul_watch: config.consul_watch,
            nomad_watch: config.nomad_watch.clone(),
        };
        tasks.spawn(watches::watch_pools(context.clone(), background.clone()));
        tasks.spawn(watches::watch_overrides(
            context.clone(),
            background.clone(),
        ));
        tasks.spawn(watches::read_statuses(context.clone(), background.clone()));
        tasks.spawn(watches::watch_jobs(context.clone(), background.clone()));
        tasks.spawn(watches::watch_allocations(
            context.clone(),
            background.clone(),
        ));
        tasks.spawn(watches::watch_deployments(
            context.clone(),
            background.clone(),
        ));
        tasks.spawn(rollout::watch_controls(context.clone(), background.clone()));
        tasks.spawn(watches::watch_nodes(context, background.clone()));

        let result = Self::campaign(&inner, &shutdown).await;

        background.cancel();
        while tasks.join_next().await.is_some() {}
        inner.readiness.set(false);
        info!(identity = %config.identity, "controller stopped");
        result
    }

    /// Waits for the caches, then alternates between standby and leading until shutdown.
    async fn campaign(inner: &Arc<Inner>, shutdown: &CancellationToken) -> Result<(), Error> {
        let config = &inner.config;

        tokio::select! {
            // Shutdown before the caches were ready.
            () = shutdown.cancelled() => return Ok(()),
            () = inner.cache.wait_ready() => {}
        }
        inner.readiness.set(true);
        let counts = inner.cache.counts();
        info!(
            pools = counts.pools,
            jobs = counts.jobs,
            allocations = counts.allocations,
            nodes = counts.nodes,
            "caches synced"
        );

        // The lock session; retried while Consul is unreachable.
        let mut lock_config = LeaderLockConfig::new(config.keys.leader(), &config.identity);
        lock_config.ttl = config.leader_ttl;
        lock_config.lock_delay = config.lock_delay;
        let mut delay = Duration::from_millis(200);
        let lock = loop {
            match LeaderLock::start(config.consul.clone(), lock_config.clone()).await {
                Ok(lock) => break Arc::new(lock),
                Err(error) if error.is_retryable() => {
                    warn!(%error, retry_in = ?delay, "leader session not created; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => return Ok(()),
                        () = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
                Err(error) => return Err(Error::Keys(error)),
            }
        };

        while !shutdown.is_cancelled() {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = lock.wait_for_leadership() => {}
            }
            let term = Arc::new(Term {
                lock: Arc::clone(&lock),
                leading: shutdown.child_token(),
            });
            Self::lead(inner, &term).await;
        }

        drop(lock.subscribe());
        match Arc::try_unwrap(lock) {
            Ok(lock) => match lock.shutdown().await {
                Ok(()) => info!("leader lock released"),
                Err(error) => {
                    warn!(%error, "leader lock not released; a standby waits for the TTL")
                }
            },
            Err(_) => warn!("leader lock still in use at shutdown; a standby waits for the TTL"),
        }
        Ok(())
    }

    /// Reconciles every pool until the lock is lost or shutdown fires.
    async fn lead(inner: &Arc<Inner>, term: &Arc<Term>) {
        inner.leading.store(true, Ordering::Release);
        inner.metrics.set_leader(true);
        info!(identity = %inner.config.identity, "leading: reconciling every pool");

        // Ends the term as soon as the lock reports a loss, or its TTL runs out unrenewed.
        let guard_term = Arc::clone(term);
        let guard = tokio::spawn(async move {
            let mut changes = guard_term.lock.subscribe();
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tokio::select! {
                    // The term ended for another reason (shutdown).
                    () = guard_term.leading.cancelled() => return,
                    // The lock task saw a loss.
                    changed = changes.changed() => {
                        if changed.is_err() || !*changes.borrow() {
                            break;
                        }
                    }
                    // A renewal older than the TTL shows only in `is_leader`.
                    _ = tick.tick() => {
                        if !guard_term.lock.is_leader() {
                            break;
                        }
                    }
                }
            }
            guard_term.leading.cancel();
        });

        let names = inner.cache.all_pool_names();
        {
            let mut reasons = inner.reasons.lock().unwrap_or_else(PoisonError::into_inner);
            for name in &names {
                reasons.insert(name.clone(), "leader elected");
            }
        }
        for name in names {
            inner.queue.schedule(name, Duration::ZERO);
        }

        let run_inner = Arc::clone(inner);
        let run_term = Arc::clone(term);
        inner
            .queue
            .run(term.leading.clone(), move |name| {
                reconcile(Arc::clone(&run_inner), Arc::clone(&run_term), name)
            })
            .await;

        term.leading.cancel();
        let _ = guard.await;
        inner.leading.store(false, Ordering::Release);
        inner.metrics.set_leader(false);
        if term.lock.is_leader() {
            info!(identity = %inner.config.identity, "stopped leading for shutdown");
        } else {
            warn!(identity = %inner.config.identity, "lost the leader lock: stopped writing");
        }
    }
}

/// Reconciles one pool inside its span, abandoning it the moment the term ends.
async fn reconcile(
    inner: Arc<Inner>,
    term: Arc<Term>,
    name: String,
) -> Result<Option<Duration>, Error> {
    let reason = inner.take_reason(&name);
    let view = inner.cache.view(&name);
    let spec_index = view.pool.as_ref().map_or(0, |entry| entry.modify_index);
    let reconcile_id = uuid::Uuid::new_v4().simple().to_string();
    let span = telemetry::reconcile_span(&name, reason, spec_index, &reconcile_id[..12]);
    let started = Instant::now();

    let result = tokio::select! {
        biased;
        // The term ended: drop the reconcile between two awaits, before its next write. At
        // shutdown the lock is still held and the pool is simply left for the next leader.
        () = term.leading.cancelled() => if term.lock.is_leader() {
            Ok(None)
        } else {
            Err(Error::NotLeader { pool: name.clone() })
        },
        result = reconcile_view(&inner, &term, view).instrument(span) => result,
    };

    inner.counters.reconciles.fetch_add(1, Ordering::Relaxed);
    let error_kind = result.as_ref().err().map(Error::kind);
    inner
        .metrics
        .observe_reconcile(&name, started.elapsed().as_secs_f64(), error_kind);
    inner.metrics.set_queue_depth(inner.queue.len());
    result
}

async fn reconcile_view(
    inner: &Arc<Inner>,
    term: &Term,
    view: PoolView,
) -> Result<Option<Duration>, Error> {
    let config = &inner.config;
    let name = view.name.clone();
    let now = config.clock.now();
    let fence = || term.may_write();

    let (pool, generation) = match &view.pool {
        Some(PoolEntry {
            pool: Ok(pool),
            modify_index,
        }) => (pool, *modify_index),

        Some(PoolEntry {
            pool: Err(message),
            modify_index,
        }) => {
            warn!(%message, "pool is invalid; nothing changed in Nomad");
            let report = StatusReport {
                phase: Phase::Error,
                workers: WorkerCounts::default(),
                zones: Vec::new(),
                sizing: None,
                conditions: Vec::new(),
                decisions: Vec::new(),
                last_error: Some(message.clone()),
            };
            write_status(
                inner,
                term,
                &name,
                &report,
                *modify_index,
                view.status.as_ref(),
            )
            .await?;
            return Ok(None);
        }

        None => return reconcile_deleted(inner, term, view).await,
    };

    let override_ = view
        .override_
        .as_ref()
        .and_then(|entry| entry.item.as_ref().ok());
    let previous = view
        .status
        .as_ref()
        .and_then(|stored| stored.status.as_ref());
    let requeue_inner = Arc::clone(inner);
    let requeue: autoscaling::Requeue = Arc::new(move |pool: String| {
        requeue_inner.queue_changed(BTreeSet::from([pool]), "metric or analysis read");
    });
    // During a rollout the live counts include its surge workers, which the autoscaler must
    // not take for the count in force and keep after the rollout.
    let stored_rollout = rollout::stored_state(previous);
    let rollout_base = stored_rollout
        .as_ref()
        .filter(|state| state.phase.is_active())
        .map(|state| state.counts.iter().sum());
    let scaling = autoscaling::evaluate(&autoscaling::Context {
        pool,
        override_,
        observed: &view.observed,
        stored: previous
            .and_then(|status| status.sizing.as_ref())
            .and_then(|sizing| sizing.autoscaler.as_ref()),
        rollout_base,
        now,
        reads: &inner.metric_reads,
        requeue: &requeue,
    });
    let input = PlanInput {
        pool,
        override_,
        autoscaler: scaling
            .as_ref()
            .and_then(|outcome| outcome.recommendation.as_ref()),
        observed: &view.observed,
        previous,
        now,
    };
    let mut plan = plan_with(&input);
    let job = JobKey::of(pool);

    // The golden-first rollout, when a zone runs another version or a rollout is stored.
    let rollout_step = step_rollout(
        inner,
        pool,
        generation,
        &view.observed,
        stored_rollout,
        &mut plan,
        now,
        &requeue,
    )
    .await?;

    // After a failed rollout, the planner sizes the job on the version the rollback restored,
    // not on the `spec.version` that failed, so its count changes are not held back behind
    // a register that the rollout forbids.
    let restored_pool = rollout_step
        .as_ref()
        .and_then(|step| step.restored_version(&pool.spec.version))
        .map(|version| {
            let mut restored = pool.clone();
            restored.spec.version = version.to_owned();
            restored
        });
    let input = match &restored_pool {
        Some(restored) => {
            let input = PlanInput {
                pool: restored,
                ..input
            };
            plan = plan_with(&input);
            if let Some(step) = &rollout_step {
                rollout::restrict(&mut plan, step);
            }
            input
        }
        None => input,
    };
    log_plan(&plan);

    let executor = NomadExecutor::new(
        &config.nomad,
        &job.namespace,
        &fence,
        Arc::clone(&inner.counters.nomad_writes),
    );
    let planned_status = plan.status.clone();
    let mut applied = reconcile::apply(&executor, plan, view.observed.clone(), |observed| {
        let mut replanned = plan_with(&PlanInput { observed, ..input });
        if let Some(step) = &rollout_step {
            rollout::restrict(&mut replanned, step);
        }
        replanned
    })
    .await;
    if let (Ok(_), Some(step)) = (&applied, &rollout_step) {
        let prefetch = crate::rollout::prefetch_key(pool);
        if let Err(source) = crate::rollout::apply(&executor, &job, &prefetch, &step.actions).await
        {
            applied = Err(reconcile::Error::Nomad {
                job: job.clone(),
                source,
            });
        }
    }
    let rollout_value = rollout_step.as_ref().map(|step| {
        step.state
            .as_ref()
            .map(crate::rollout::RolloutState::to_status_value)
    });

    match applied {
        Ok(mut done) => {
            let mut requeue_after = done.requeue_after;
            if let Some(outcome) = &scaling {
                requeue_after = earliest(requeue_after, outcome.requeue_after);
                merge_autoscaler(&mut done.status, outcome);
            }
            if let Some(step) = &rollout_step {
                requeue_after = earliest(requeue_after, step.requeue_after);
                step.merge_into(&mut done.status);
            }
            write_status_with(
                inner,
                term,
                &name,
                &done.status,
                generation,
                view.status.as_ref(),
                rollout_value,
            )
            .await?;
            Ok(requeue_after.map(|after| config.clock.to_wall(after)))
        }
        Err(reconcile::Error::Nomad {
            source: ExecError::NotLeader,
            ..
        }) => Err(Error::NotLeader { pool: name }),
        Err(source) => {
            warn!(error = %source, retryable = source.is_retryable(), "reconcile failed");
            let mut report = planned_status;
            if let Some(outcome) = &scaling {
                merge_autoscaler(&mut report, outcome);
            }
            report.phase = Phase::Error;
            report.last_error = Some(source.to_string());
            write_status(
                inner,
                term,
                &name,
                &report,
                generation,
                view.status.as_ref(),
            )
            .await?;
            Err(Error::Reconcile { pool: name, source })
        }
    }
}

/// Runs the golden-first rollout's step from the `stored` state when it applies, and removes
/// the planner's writes that it forbids from `plan`. Returns `None` when no rollout applies.
#[allow(clippy::too_many_arguments)]
async fn step_rollout(
    inner: &Inner,
    pool: &crate::spec::WorkerPool,
    generation: u64,
    observed: &reconcile::Observed,
    stored: Option<crate::rollout::RolloutState>,
    plan: &mut Plan,
    now: jiff::Timestamp,
    requeue: &autoscaling::Requeue,
) -> Result<Option<crate::rollout::RolloutStep>, Error> {
    let config = &inner.config;
    let name = &pool.metadata.name;
    if !rollout::applies(pool, observed, stored.as_ref()) {
        inner.analysis_samples.forget(name);
        return Ok(None);
    }
    // A paused pool changes nothing, so a rollout neither starts nor steps. Its stored state
    // stays in the status, and the planner reports the pause.
    // NOTE: a Nomad deployment already running for one zone goes on by itself.
    if pool.spec.paused {
        debug!(pool = %name, "spec.paused is set; the rollout waits");
        return Ok(None);
    }

    let inputs =
        match rollout::gather(&config.nomad, &config.consul, config.keys.prefix(), pool).await {
            Ok(inputs) => inputs,
            Err(source) => {
                warn!(error = %source, "rollout inputs not read");
                return Err(Error::Reconcile {
                    pool: name.clone(),
                    source,
                });
            }
        };
    let sizing_counts: Vec<u32> = plan
        .status
        .zones
        .iter()
        .map(|zone| zone.workers.desired)
        .collect();
    let analysis = inner
        .analysis_samples
        .sample(pool, stored.as_ref(), now, requeue);

    let step = crate::rollout::step(&StepInput {
        pool,
        observed,
        deployment: inputs.deployment.as_ref(),
        prefetch: &inputs.prefetch,
        stored: stored.as_ref(),
        control: inputs.control.as_ref(),
        generation,
        analysis: analysis.as_ref(),
        sizing_counts: &sizing_counts,
        now,
    });
    rollout::restrict(plan, &step);
    Ok(Some(step))
}

/// Adds the autoscaler's state, conditions and configuration error to the planner's report.
fn merge_autoscaler(report: &mut StatusReport, outcome: &autoscaling::Outcome) {
    if let Some(sizing) = report.sizing.as_mut() {
        sizing.autoscaler = outcome.status.clone();
    }
    report.conditions.extend(outcome.conditions.iter().cloned());
    if let Some(error) = &outcome.error {
        // An unusable autoscaler needs the operator more than a rollout or a scale does.
        if !matches!(report.phase, Phase::Error | Phase::Paused) {
            report.phase = Phase::Degraded;
        }
        report.last_error.get_or_insert_with(|| error.clone());
    }
}

/// Returns the earlier of two optional delays.
fn earliest(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Stops the job of a pool that no longer exists (unless orphaned) and deletes its status.
async fn reconcile_deleted(
    inner: &Inner,
    term: &Term,
    view: PoolView,
) -> Result<Option<Duration>, Error> {
    let config = &inner.config;
    let name = view.name.clone();
    let fence = || term.may_write();
    inner.metric_reads.forget(&name);
    inner.analysis_samples.forget(&name);

    if let Some(job) = view.job_key.clone() {
        let plan = plan_delete(&name, job.clone(), &view.observed, config.orphan_on_delete);
        log_plan(&plan);
        let executor = NomadExecutor::new(
            &config.nomad,
            &job.namespace,
            &fence,
            Arc::clone(&inner.counters.nomad_writes),
        );
        let orphan = config.orphan_on_delete;
        let applied = reconcile::apply(&executor, plan, view.observed.clone(), |observed| {
            plan_delete(&name, job.clone(), observed, orphan)
        })
        .await;
        match applied {
            Ok(_) => {}
            Err(reconcile::Error::Nomad {
                source: ExecError::NotLeader,
                ..
            }) => return Err(Error::NotLeader { pool: name }),
            Err(source) => return Err(Error::Reconcile { pool: name, source }),
        }
    }

    if let Some(stored) = &view.status {
        if !term.may_write() {
            return Err(Error::NotLeader { pool: name });
        }
        let session = term
            .lock
            .session_id()
            .ok_or_else(|| Error::NotLeader { pool: name.clone() })?;
        let ops = [
            TxnOp::CheckSession {
                key: config.keys.leader(),
                session,
            },
            TxnOp::DeleteCas {
                key: config.keys.status(&name),
                index: stored.modify_index,
            },
        ];
        txn_fenced(inner, &name, &ops, stored.modify_index).await?;
        inner.cache.set_status(&name, None);
        info!("pool deleted: status removed");
    }
    inner.metrics.forget_pool(&name);

    // Nothing is left to watch for: a new pool, job or status under this name queues it again.
    let view = inner.cache.view(&name);
    if view.pool.is_none() && view.job_key.is_none() && view.status.is_none() {
        inner.queue.forget(&name);
    }
    Ok(None)
}

/// Logs the plan's sizing and decisions: at info when it writes, else at debug.
fn log_plan(plan: &Plan) {
    let acting = !plan.actions.is_empty();
    if let Some(sizing) = &plan.status.sizing {
        if acting {
            info!(desired = sizing.desired, source = ?sizing.source, predicted_rps = ?sizing.predicted_rps, reason = %sizing.reason, "sizing");
        } else {
            debug!(desired = sizing.desired, source = ?sizing.source, predicted_rps = ?sizing.predicted_rps, reason = %sizing.reason, "sizing");
        }
    }
    for decision in &plan.status.decisions {
        if acting {
            info!(action = %decision.action, reason = %decision.reason, "decision");
        } else {
            debug!(action = %decision.action, reason = %decision.reason, "decision");
        }
    }
}

/// Writes the pool's status when it differs from the stored one. One transaction checks that
/// this controller's session still owns the leader key and writes the status key with
/// check-and-set.
async fn write_status(
    inner: &Inner,
    term: &Term,
    name: &str,
    report: &StatusReport,
    generation: u64,
    stored: Option<&StoredStatus>,
) -> Result<(), Error> {
    write_status_with(inner, term, name, report, generation, stored, None).await
}

/// Writes the status like [`write_status`]; `rollout`, when set, replaces the stored rollout
/// state (`Some(None)` clears it) instead of carrying it over.
async fn write_status_with(
    inner: &Inner,
    term: &Term,
    name: &str,
    report: &StatusReport,
    generation: u64,
    stored: Option<&StoredStatus>,
    rollout: Option<Option<serde_json::Value>>,
) -> Result<(), Error> {
    let config = &inner.config;
    let previous = stored.and_then(|stored| stored.status.as_ref());
    let mut next = Status::next(
        name,
        previous,
        report,
        generation,
        &config.identity,
        config.clock.now(),
    );
    if let Some(rollout) = rollout {
        next.rollout = rollout;
    }
    if let Some(previous) = previous
        && !next.differs_from(previous)
    {
        // A new leader, or a restarted one, rewrites no unchanged status, but its gauges
        // start empty.
        if term.may_write() {
            inner.metrics.record_status(&next);
        }
        return Ok(());
    }

    if !term.may_write() {
        return Err(Error::NotLeader {
            pool: name.to_owned(),
        });
    }
    let session = term.lock.session_id().ok_or_else(|| Error::NotLeader {
        pool: name.to_owned(),
    })?;
    let key = config.keys.status(name);
    let expected = stored.map_or(0, |stored| stored.modify_index);
    let ops = [
        TxnOp::CheckSession {
            key: config.keys.leader(),
            session,
        },
        TxnOp::Cas {
            key: key.clone(),
            value: next.to_json().into_bytes(),
            flags: 0,
            index: expected,
        },
    ];
    let pairs = txn_fenced(inner, name, &ops, expected).await?;

    let modify_index = match pairs.iter().find(|pair| pair.key == key) {
        Some(pair) => pair.modify_index,
        None => read_status_index(inner, name).await?,
    };
    inner.metrics.record_status(&next);
    inner.cache.set_status(
        name,
        Some(StoredStatus {
            modify_index,
            status: Some(next),
        }),
    );
    inner.counters.status_writes.fetch_add(1, Ordering::Relaxed);
    debug!(modify_index, "status written");
    Ok(())
}

/// Runs a transaction whose first operation checks the leader session. A failed first
/// operation means the lock is lost; a failed later one is a check-and-set conflict, after
/// which the stored status is read again.
async fn txn_fenced(
    inner: &Inner,
    name: &str,
    ops: &[TxnOp],
    expected: u64,
) -> Result<Vec<consul::KvPair>, Error> {
    match inner.config.consul.txn(ops).await {
        Ok(pairs) => Ok(pairs),
        Err(consul::Error::TxnRollback { errors }) => {
            if errors.iter().any(|error| error.op_index == 0) {
                warn!(
                    ?errors,
                    "leader key no longer held by this session; status not written"
                );
                return Err(Error::NotLeader {
                    pool: name.to_owned(),
                });
            }
            refresh_status(inner, name).await?;
            Err(Error::StatusConflict {
                pool: name.to_owned(),
                expected,
            })
        }
        Err(source) => Err(Error::Status {
            pool: name.to_owned(),
            source,
        }),
    }
}

/// Reads one status key again into the cache.
async fn refresh_status(inner: &Inner, name: &str) -> Result<(), Error> {
    let key = inner.config.keys.status(name);
    let pair = inner
        .config
        .consul
        .kv_get(&key)
        .await
        .map_err(|source| Error::Status {
            pool: name.to_owned(),
            source,
        })?;
    let stored = pair.map(|pair| StoredStatus {
        modify_index: pair.modify_index,
        status: serde_json::from_slice(&pair.value).ok(),
    });
    inner.cache.set_status(name, stored);
    Ok(())
}

async fn read_status_index(inner: &Inner, name: &str) -> Result<u64, Error> {
    refresh_status(inner, name).await?;
    Ok(inner
        .cache
        .view(name)
        .status
        .map_or(0, |stored| stored.modify_index))
}

impl Fence for Term {
    fn may_write(&self) -> bool {
        Term::may_write(self)
    }
}
