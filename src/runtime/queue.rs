//! The work queue: which pool to reconcile next, and when.
//!
//! - One entry per pool. Requesting a pool that is already queued keeps the earlier time.
//! - A pool is never reconciled twice at once. A request that arrives while the pool runs is
//!   remembered and applied when the reconcile ends.
//! - At most `concurrency` reconciles run at a time. Due entries start in order of their
//!   due time, ties in order of request, so no pool is starved or skipped.
//! - Change notifications are debounced: each one pushes the entry back by `debounce`, but
//!   never past `max_debounce` after the first notification of the burst.
//! - A failed reconcile is retried after an exponential backoff per pool (`backoff_base`
//!   doubled per consecutive failure, capped at `backoff_max`), reset by a success.
//! - Every successful reconcile is followed by a safety requeue after at most
//!   `safety_requeue`, sooner when the reconcile requests it.
//!
//! Each queued pool moves through these states:
//!
//! ```text
//!             schedule / notify_changed
//!   (absent) ───────────────────────────▶ Queued ──due, slot free──▶ Running
//!      ▲                                    ▲                          │
//!      │                                    └── requeue, backoff, ─────┘
//!      │                                        or request while running
//! ```
//!
//! Every reconcile ends in a requeue. A pool leaves the queue only through
//! [`WorkQueue::forget`] (its object was deleted) or at shutdown.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt::{Debug, Display};
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// Settings of a [`WorkQueue`]. Build them with [`QueueConfig::default`] and check with
/// [`QueueConfig::validate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueConfig {
    /// Maximum reconciles running at once; at least 1.
    pub concurrency: usize,
    /// Quiet time after a change notification before the pool runs.
    pub debounce: Duration,
    /// Maximum delay of a pool by a burst of notifications; at least `debounce`.
    pub max_debounce: Duration,
    /// Delay after the first consecutive failure.
    pub backoff_base: Duration,
    /// Maximum delay after repeated failures; at least `backoff_base`.
    pub backoff_max: Duration,
    /// Maximum time between two reconciles of a pool without any event.
    pub safety_requeue: Duration,
}

impl Default for QueueConfig {
    /// Four concurrent reconciles, 500 ms debounce up to 5 s, backoff from 1 s to 5 min, and
    /// a safety requeue every 5 min.
    fn default() -> Self {
        Self {
            concurrency: 4,
            debounce: Duration::from_millis(500),
            max_debounce: Duration::from_secs(5),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            safety_requeue: Duration::from_secs(300),
        }
    }
}

/// An invalid [`QueueConfig`]. Permanent: fix the setting named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueConfigError {
    #[error("invalid queue concurrency 0: set at least 1")]
    ZeroConcurrency,
    #[error("invalid max debounce {max:?}: set at least the debounce of {debounce:?}")]
    DebounceAboveMax { debounce: Duration, max: Duration },
    #[error("invalid backoff max {max:?}: set at least the backoff base of {base:?}")]
    BackoffAboveMax { base: Duration, max: Duration },
    #[error("invalid safety requeue 0s: set a positive interval")]
    ZeroSafetyRequeue,
}

impl QueueConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), QueueConfigError> {
        if self.concurrency == 0 {
            return Err(QueueConfigError::ZeroConcurrency);
        }
        if self.max_debounce < self.debounce {
            return Err(QueueConfigError::DebounceAboveMax {
                debounce: self.debounce,
                max: self.max_debounce,
            });
        }
        if self.backoff_max < self.backoff_base {
            return Err(QueueConfigError::BackoffAboveMax {
                base: self.backoff_base,
                max: self.backoff_max,
            });
        }
        if self.safety_requeue.is_zero() {
            return Err(QueueConfigError::ZeroSafetyRequeue);
        }
        Ok(())
    }

    /// Returns the delay after `failures` consecutive failures (1 or more).
    pub fn backoff(&self, failures: u32) -> Duration {
        let exponent = failures.saturating_sub(1).min(31);
        self.backoff_base
            .saturating_mul(1u32 << exponent)
            .min(self.backoff_max)
    }
}

/// The queue of pools to reconcile. Cloning shares the queue.
pub struct WorkQueue<K> {
    shared: Arc<Shared<K>>,
}

impl<K> Clone for WorkQueue<K> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

struct Shared<K> {
    config: QueueConfig,
    state: Mutex<State<K>>,
    /// Wakes the runner when an entry is added or moved earlier.
    wake: Notify,
}

struct Entry {
    at: Instant,
    seq: u64,
    /// When the current burst of change notifications began, if the entry comes from one.
    burst_start: Option<Instant>,
}

struct State<K> {
    /// Queued pools ordered by due time, then by request order.
    order: BTreeSet<(Instant, u64, K)>,
    queued: HashMap<K, Entry>,
    running: HashSet<K>,
    /// Earliest time requested for a pool while it was running.
    requested_while_running: HashMap<K, Instant>,
    failures: HashMap<K, u32>,
    /// Running pools that are not requeued when their reconcile ends.
    forgotten: HashSet<K>,
    next_seq: u64,
}

impl<K> State<K>
where
    K: Clone + Eq + Hash + Ord,
{
    fn insert(&mut self, key: K, at: Instant, burst_start: Option<Instant>) {
        if let Some(old) = self.queued.remove(&key) {
            self.order.remove(&(old.at, old.seq, key.clone()));
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.order.insert((at, seq, key.clone()));
        self.queued.insert(
            key,
            Entry {
                at,
                seq,
                burst_start,
            },
        );
    }

    /// Requests `key` at `at`, keeping an earlier request. Returns whether the queue changed.
    fn request(&mut self, key: K, at: Instant) -> bool {
        if self.running.contains(&key) {
            self.forgotten.remove(&key);
            let slot = self.requested_while_running.entry(key).or_insert(at);
            *slot = (*slot).min(at);
            return false;
        }
        match self.queued.get(&key) {
            Some(entry) if entry.at <= at => false,
            _ => {
                self.insert(key, at, None);
                true
            }
        }
    }

    fn pop_due(&mut self, now: Instant) -> Option<K> {
        let first = self.order.first()?;
        if first.0 > now {
            return None;
        }
        let (_, _, key) = self.order.pop_first()?;
        self.queued.remove(&key);
        Some(key)
    }
}

impl<K> WorkQueue<K>
where
    K: Clone + Eq + Hash + Ord + Debug + Display + Send + Sync + 'static,
{
    /// Creates an empty queue.
    pub fn new(config: QueueConfig) -> Result<Self, QueueConfigError> {
        config.validate()?;
        Ok(Self {
            shared: Arc::new(Shared {
                config,
                state: Mutex::new(State {
                    order: BTreeSet::new(),
                    queued: HashMap::new(),
                    running: HashSet::new(),
                    requested_while_running: HashMap::new(),
                    failures: HashMap::new(),
                    forgotten: HashSet::new(),
                    next_seq: 0,
                }),
                wake: Notify::new(),
            }),
        })
    }

    fn state(&self) -> MutexGuard<'_, State<K>> {
        // A panic while the lock is held leaves the maps consistent (each mutation is a
        // single insert or remove pair), so a poisoned lock is still usable.
        self.shared
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Requests a reconcile of `key` after `delay`. An earlier request wins.
    pub fn schedule(&self, key: K, delay: Duration) {
        self.schedule_at(key, Instant::now() + delay);
    }

    /// Requests a reconcile of `key` at `at`. An earlier request wins.
    pub fn schedule_at(&self, key: K, at: Instant) {
        if self.state().request(key, at) {
            self.shared.wake.notify_one();
        }
    }

    /// Requests a reconcile of `key` after a change, debounced: the pool runs `debounce`
    /// after the last notification of a burst, and at most `max_debounce` after the first.
    /// An earlier request that did not come from a notification wins.
    pub fn notify_changed(&self, key: K) {
        let config = self.shared.config;
        let now = Instant::now();
        let mut state = self.state();

        if state.running.contains(&key) {
            state.request(key, now + config.debounce);
            return;
        }

        let at = match state.queued.get(&key) {
            Some(entry) => match entry.burst_start {
                Some(start) => Some((
                    (now + config.debounce).min(start + config.max_debounce),
                    start,
                )),
                None if entry.at <= now + config.debounce => None,
                None => Some((now + config.debounce, now)),
            },
            None => Some((now + config.debounce, now)),
        };
        if let Some((at, start)) = at {
            state.insert(key, at, Some(start));
            drop(state);
            self.shared.wake.notify_one();
        }
    }

    /// Removes `key` from the queue and clears its failure count. A running reconcile of it
    /// finishes but is not requeued. A later request queues it again.
    pub fn forget(&self, key: &K) {
        let mut state = self.state();
        if let Some(entry) = state.queued.remove(key) {
            state.order.remove(&(entry.at, entry.seq, key.clone()));
        }
        state.failures.remove(key);
        state.requested_while_running.remove(key);
        if state.running.contains(key) {
            state.forgotten.insert(key.clone());
        }
    }

    /// Returns the number of queued pools, running ones excluded.
    pub fn len(&self) -> usize {
        self.state().queued.len()
    }

    /// Returns whether no pool is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Returns the number of reconciles running now.
    pub fn running(&self) -> usize {
        self.state().running.len()
    }

    /// Returns when `key` is due, if it is queued.
    pub fn due_at(&self, key: &K) -> Option<Instant> {
        self.state().queued.get(key).map(|entry| entry.at)
    }

    /// Returns the number of consecutive failed reconciles of `key`.
    pub fn failures(&self, key: &K) -> u32 {
        self.state().failures.get(key).copied().unwrap_or(0)
    }

    /// Runs due reconciles until `cancel` fires, then waits for the running ones to end.
    ///
    /// `reconcile` returns `Ok(Some(delay))` to be looked at again within `delay`,
    /// `Ok(None)` for the safety requeue, or an error to be retried after the backoff. A
    /// reconcile that panics counts as a failure.
    pub async fn run<F, Fut, E>(&self, cancel: CancellationToken, reconcile: F)
    where
        F: Fn(K) -> Fut,
        Fut: Future<Output = Result<Option<Duration>, E>> + Send + 'static,
        E: Display + Send + 'static,
    {
        let concurrency = self.shared.config.concurrency;
        let mut tasks: JoinSet<TaskOutput<K>> = JoinSet::new();
        let mut task_keys: HashMap<tokio::task::Id, K> = HashMap::new();

        loop {
            // Start every due pool while a slot is free. The reconcile futures are built
            // after the lock is released, so `reconcile` may call back into the queue.
            let (started, next_due) = {
                let mut state = self.state();
                let now = Instant::now();
                let mut started = Vec::new();
                while state.running.len() < concurrency {
                    let Some(key) = state.pop_due(now) else { break };
                    state.running.insert(key.clone());
                    started.push(key);
                }
                let slot_free = state.running.len() < concurrency;
                let next_due = state
                    .order
                    .first()
                    .filter(|_| slot_free)
                    .map(|entry| entry.0);
                (started, next_due)
            };
            for key in started {
                let future = reconcile(key.clone());
                let task_key = key.clone();
                let handle = tasks.spawn(async move {
                    let result = future.await.map_err(|error| error.to_string());
                    (task_key, result)
                });
                task_keys.insert(handle.id(), key);
            }

            tokio::select! {
                // Shutdown: stop starting work.
                () = cancel.cancelled() => break,
                // A reconcile ended: requeue its pool.
                Some(joined) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                    self.finish(&mut task_keys, joined);
                }
                // The earliest queued pool is due.
                () = sleep_until_opt(next_due), if next_due.is_some() => {}
                // A pool was queued or moved earlier.
                () = self.shared.wake.notified() => {}
            }
        }

        debug!(
            running = tasks.len(),
            "work queue stopping, waiting for running reconciles"
        );
        while let Some(joined) = tasks.join_next_with_id().await {
            self.finish(&mut task_keys, joined);
        }
    }

    fn finish(
        &self,
        task_keys: &mut HashMap<tokio::task::Id, K>,
        joined: Result<(tokio::task::Id, TaskOutput<K>), tokio::task::JoinError>,
    ) {
        let (key, result) = match joined {
            Ok((id, (key, result))) => {
                task_keys.remove(&id);
                (key, result)
            }
            Err(error) => {
                let Some(key) = task_keys.remove(&error.id()) else {
                    warn!(%error, "reconcile task ended without a known pool");
                    return;
                };
                (
                    key,
                    Err(format!("reconcile panicked or was cancelled: {error}")),
                )
            }
        };

        let config = self.shared.config;
        let now = Instant::now();
        let mut state = self.state();
        state.running.remove(&key);
        if state.forgotten.remove(&key) {
            debug!(pool = %key, "pool forgotten while running, not requeued");
            return;
        }

        let mut at = match result {
            Ok(requeue_after) => {
                state.failures.remove(&key);
                let delay =
                    requeue_after.map_or(config.safety_requeue, |d| d.min(config.safety_requeue));
                now + delay
            }
            Err(error) => {
                let failures = state.failures.entry(key.clone()).or_insert(0);
                *failures += 1;
                let delay = config.backoff(*failures);
                warn!(pool = %key, failures = *failures, retry_in = ?delay, %error, "reconcile failed");
                now + delay
            }
        };
        if let Some(requested) = state.requested_while_running.remove(&key) {
            at = at.min(requested);
        }
        state.insert(key, at, None);
    }
}

/// Output of a reconcile task: its pool, and the requested requeue delay or the error text.
type TaskOutput<K> = (K, Result<Option<Duration>, String>);

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
