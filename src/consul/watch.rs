//! Watches of a key or prefix built on blocking queries, yielding full snapshots.
//!
//! The loop follows Consul's blocking-query rules. The first read does not block, and the
//! next index is never below 1. An index that goes backwards resets to 0 and forces a full
//! re-read. A wakeup whose data equals the last snapshot yields nothing. Only such wakeups
//! can make the loop spin, so a token bucket (burst 2) limits the reads that follow them.
//! The read after a yielded snapshot goes at once, and a change right after another waits
//! for no token. Failures back off with jitter per failure episode.
//!
//! ```text
//!   Resync (index 0, non-blocking read)
//!     │ ok ─────────────► Blocking { index = max(returned, 1) }
//!     │ retryable error ─► same state after a backoff delay
//!   Blocking
//!     │ ok, index went backwards ─► Resync
//!     │ ok, same data ───────────► Blocking (nothing yielded)
//!     │ ok, new data ────────────► Blocking (snapshot yielded)
//!     │ retryable error ─────────► same state after a backoff delay
//! ```

use std::time::Duration;

use rand::Rng as _;
use tokio::time::Instant;

use super::client::{ConsulClient, KvPair, QueryOptions};
use super::error::{Error, Result};

/// The full state of the watched key or prefix at `index`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvSnapshot {
    /// The `X-Consul-Index` of the read (at least 1).
    pub index: u64,
    /// Every entry, sorted by key. Empty when nothing exists.
    pub pairs: Vec<KvPair>,
}

/// The key or prefix a watch follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchTarget {
    Key(String),
    Prefix(String),
}

/// Timing of a watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchConfig {
    /// `wait` of each blocking query (Consul caps it at 10 min).
    pub wait: Duration,
    /// The token bucket refills one token per this interval; its burst is 2.
    pub min_interval: Duration,
    /// First delay after a failure.
    pub backoff_base: Duration,
    /// Largest delay between retries within one failure episode.
    pub backoff_cap: Duration,
}

impl Default for WatchConfig {
    fn default() -> Self {
        Self {
            wait: Duration::from_secs(300),
            min_interval: Duration::from_millis(500),
            backoff_base: Duration::from_millis(200),
            backoff_cap: Duration::from_secs(30),
        }
    }
}

/// A token bucket with a burst of 2: two loop turns may run back to back, and after that one
/// per refill interval.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    tokens: f64,
    capacity: f64,
    refill: Duration,
    last: Instant,
}

impl TokenBucket {
    pub(crate) fn new(refill: Duration) -> Self {
        Self {
            tokens: 2.0,
            capacity: 2.0,
            refill,
            last: Instant::now(),
        }
    }

    /// Waits for a token and takes it.
    pub(crate) async fn acquire(&mut self) {
        loop {
            let now = Instant::now();
            if !self.refill.is_zero() {
                let earned =
                    now.duration_since(self.last).as_secs_f64() / self.refill.as_secs_f64();
                self.tokens = (self.tokens + earned).min(self.capacity);
            } else {
                self.tokens = self.capacity;
            }
            self.last = now;
            if self.tokens >= 1.0 {
                self.tokens -= 1.0;
                return;
            }
            let missing = (1.0 - self.tokens) * self.refill.as_secs_f64();
            tokio::time::sleep(Duration::from_secs_f64(missing)).await;
        }
    }
}

/// Exponential backoff for one failure episode: `base × 2^n` capped at `cap`, with jitter
/// between half and all of the delay. A new episode starts after a success.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    base: Duration,
    cap: Duration,
    failures: u32,
}

impl Backoff {
    pub(crate) fn new(base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap,
            failures: 0,
        }
    }

    /// Returns the delay before the next attempt and counts the failure.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let exp = self
            .base
            .saturating_mul(2u32.saturating_pow(self.failures.min(30)));
        self.failures = self.failures.saturating_add(1);
        let ceiling = exp.min(self.cap);
        let factor = rand::rng().random_range(0.5..=1.0);
        ceiling.mul_f64(factor)
    }

    /// Ends the failure episode.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }

    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }
}

/// The position of the watch loop.
#[derive(Debug, Clone, PartialEq, Eq)]
enum WatchState {
    /// The next read is a full non-blocking read at index 0.
    Resync,
    /// The next read blocks on `index`.
    Blocking { index: u64 },
}

/// A watch of a key or prefix. Call [`KvWatch::next`] in a loop; the first call returns the
/// current state at once.
#[derive(Debug)]
pub struct KvWatch {
    client: ConsulClient,
    target: WatchTarget,
    config: WatchConfig,
    state: WatchState,
    last: Option<Vec<KvPair>>,
    limiter: TokenBucket,
    /// The last call yielded a snapshot, so the next read needs no token: reads that return
    /// new data cannot outpace the writes that make it.
    after_change: bool,
    backoff: Backoff,
}

impl KvWatch {
    /// Builds a watch; nothing is sent until the first [`KvWatch::next`].
    pub fn new(client: ConsulClient, target: WatchTarget, config: WatchConfig) -> Self {
        Self {
            client,
            limiter: TokenBucket::new(config.min_interval),
            after_change: false,
            backoff: Backoff::new(config.backoff_base, config.backoff_cap),
            target,
            config,
            state: WatchState::Resync,
            last: None,
        }
    }

    /// Waits for the next snapshot that differs from the last one returned. Retryable errors
    /// are logged and retried with backoff. A permanent error (such as a denied token) is
    /// returned, and the next call starts over with a full read.
    pub async fn next(&mut self) -> Result<KvSnapshot> {
        loop {
            if !std::mem::take(&mut self.after_change) {
                self.limiter.acquire().await;
            }

            let options = match self.state {
                WatchState::Resync => QueryOptions::default(),
                WatchState::Blocking { index } => QueryOptions::blocking(index, self.config.wait),
            };
            let read = self.read(&options).await;

            let (pairs, index) = match read {
                Ok(read) => read,
                Err(error) if error.is_retryable() => {
                    let delay = self.backoff.next_delay();
                    tracing::warn!(target_key = ?self.target, %error, failures = self.backoff.failures(), ?delay, "consul watch failed; retrying");
                    tokio::time::sleep(delay).await;
                    continue;
                }
                Err(error) => {
                    self.state = WatchState::Resync;
                    return Err(error);
                }
            };
            if self.backoff.failures() > 0 {
                tracing::info!(target_key = ?self.target, failures = self.backoff.failures(), "consul watch recovered");
            }
            self.backoff.reset();

            if let WatchState::Blocking { index: previous } = self.state
                && index < previous
            {
                // The index went backwards (a snapshot restore, a reaped tombstone, another
                // server): the cached index means nothing now, so read everything again.
                tracing::info!(target_key = ?self.target, previous, index, "consul index went backwards; resyncing");
                self.state = WatchState::Resync;
                continue;
            }
            // Never block on index 0: it returns at once and would make a busy loop.
            self.state = WatchState::Blocking {
                index: index.max(1),
            };

            if self.last.as_ref() == Some(&pairs) {
                // The index moved for another reason (churn elsewhere, a same-value write).
                continue;
            }
            self.last = Some(pairs.clone());
            self.after_change = true;
            return Ok(KvSnapshot {
                index: index.max(1),
                pairs,
            });
        }
    }

    async fn read(&self, options: &QueryOptions) -> Result<(Vec<KvPair>, u64), Error> {
        match &self.target {
            WatchTarget::Key(key) => {
                let (pair, meta) = self.client.kv_get_with(key, options).await?;
                Ok((pair.into_iter().collect(), meta.index))
            }
            WatchTarget::Prefix(prefix) => {
                let (pairs, meta) = self.client.kv_list(prefix, options).await?;
                Ok((pairs, meta.index))
            }
        }
    }

    /// Turns the watch into a stream of snapshots; permanent errors appear as items.
    pub fn into_stream(self) -> impl futures::Stream<Item = Result<KvSnapshot>> {
        futures::stream::unfold(self, |mut watch| async move {
            let item = watch.next().await;
            Some((item, watch))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn token_bucket_allows_burst_of_two() {
        let mut bucket = TokenBucket::new(Duration::from_secs(1));
        let start = Instant::now();
        bucket.acquire().await;
        bucket.acquire().await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        bucket.acquire().await;
        assert!(
            start.elapsed() >= Duration::from_millis(999),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn backoff_caps_and_resets() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let delays: Vec<Duration> = (0..8).map(|_| backoff.next_delay()).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(1)));
        assert!(delays[7] >= Duration::from_millis(500));
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(100));
    }
}
