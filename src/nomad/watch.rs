//! A watch over a blocking query that yields only when the payload really changed.
//!
//! Nomad's index moves on unrelated churn (the allocations of one job share the index of the
//! whole allocation table), so a blocking query that returns proves nothing by itself. The
//! watch compares each payload with the last one it yielded.
//!
//! ```text
//! Waiting(index) --fetch ok, payload equal--> Waiting(max(new index, 1))
//! Waiting(index) --fetch ok, payload differs--> yield, Waiting(max(new index, 1))
//! Waiting(index) --new index < index--> Waiting(0): one non-blocking full read
//! Waiting(index) --retryable error--> Backoff(attempt + 1) --sleep--> Waiting(index)
//! Waiting(index) --permanent error--> return the error, Waiting(index)
//! ```

use std::future::Future;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use futures::Stream;
use rand::Rng;
use tokio::time::Instant;

use super::{Error, MAX_WAIT, QueryOptions, Response};

/// Tuning of a [`Watch`]. Validate with [`WatchConfig::validate`].
#[derive(Debug, Clone, PartialEq)]
pub struct WatchConfig {
    /// How long each blocking query waits, at most [`MAX_WAIT`]. Each request subtracts a
    /// random part of up to 1/16 so that many watches do not fire together.
    pub wait: Duration,
    /// The rate limit refills one request per this interval, so a bad index cannot spin.
    pub min_interval: Duration,
    /// Requests allowed back to back before the rate limit applies.
    pub burst: u32,
    /// First delay after a retryable error.
    pub backoff_initial: Duration,
    /// Largest delay between retries within one failure episode.
    pub backoff_max: Duration,
}

impl Default for WatchConfig {
    fn default() -> Self {
        Self {
            wait: MAX_WAIT,
            min_interval: Duration::from_millis(250),
            burst: 2,
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
        }
    }
}

impl WatchConfig {
    /// Checks that the settings can work together.
    pub fn validate(&self) -> Result<(), Error> {
        if self.wait.is_zero() || self.wait > MAX_WAIT {
            return Err(Error::Config(format!(
                "watch wait {:?} is invalid: use more than 0 and at most {MAX_WAIT:?}",
                self.wait
            )));
        }
        if self.burst == 0 {
            return Err(Error::Config(
                "watch burst 0 is invalid: allow at least 1 request".to_owned(),
            ));
        }
        if self.backoff_initial.is_zero() || self.backoff_initial > self.backoff_max {
            return Err(Error::Config(format!(
                "watch backoff from {:?} to {:?} is invalid: the first delay must be more than 0 \
                 and at most the largest",
                self.backoff_initial, self.backoff_max
            )));
        }
        Ok(())
    }
}

/// A token bucket on tokio's clock.
#[derive(Debug)]
struct RateLimiter {
    capacity: f64,
    tokens: f64,
    refill_every: Duration,
    updated: Instant,
}

impl RateLimiter {
    fn new(burst: u32, refill_every: Duration) -> Self {
        Self {
            capacity: f64::from(burst),
            tokens: f64::from(burst),
            refill_every,
            updated: Instant::now(),
        }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        if self.refill_every.is_zero() {
            self.tokens = self.capacity;
        } else {
            let earned =
                now.duration_since(self.updated).as_secs_f64() / self.refill_every.as_secs_f64();
            self.tokens = (self.tokens + earned).min(self.capacity);
        }
        self.updated = now;
    }

    async fn acquire(&mut self) {
        self.refill();
        if self.tokens < 1.0 {
            let missing = 1.0 - self.tokens;
            tokio::time::sleep(self.refill_every.mul_f64(missing)).await;
            self.refill();
        }
        self.tokens = (self.tokens - 1.0).max(0.0);
    }
}

/// A watch over one blocking query. See the module documentation for its transitions.
pub struct Watch<T, F> {
    name: String,
    fetch: F,
    config: WatchConfig,
    index: u64,
    last: Option<T>,
    /// Compare each payload with the last one yielded; see [`Watch::yield_every_change`].
    compare: bool,
    limiter: RateLimiter,
    /// The backoff of the current failure episode, or `None` while requests succeed.
    backoff: Option<ExponentialBackoff>,
    failures: u32,
}

impl<T, F, Fut> Watch<T, F>
where
    T: PartialEq + Clone,
    F: FnMut(QueryOptions) -> Fut,
    Fut: Future<Output = Result<Response<T>, Error>>,
{
    /// Creates a watch named `name` (for logs) that reads with `fetch`. The first read does
    /// not block, and its result is always yielded.
    pub fn new(name: impl Into<String>, config: WatchConfig, fetch: F) -> Result<Self, Error> {
        config.validate()?;
        let limiter = RateLimiter::new(config.burst, config.min_interval);
        Ok(Self {
            name: name.into(),
            fetch,
            config,
            index: 0,
            last: None,
            compare: true,
            limiter,
            backoff: None,
            failures: 0,
        })
    }

    /// Yields every response whose index moved, without keeping the last payload to compare.
    ///
    /// For lists where the index moves only when the listed items change (the whole
    /// allocation table, for instance), the comparison would almost never drop a response and
    /// would keep a second copy of a large payload. The consumer then diffs what it cares
    /// about itself.
    pub fn yield_every_change(mut self) -> Self {
        self.compare = false;
        self.last = None;
        self
    }

    /// Returns the index the next blocking query will send.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// Waits until the payload differs from the last one yielded, and returns it. Retryable
    /// errors are retried with a capped, jittered backoff. A permanent error is returned, and
    /// the next call continues from the same index.
    pub async fn next_change(&mut self) -> Result<Response<T>, Error> {
        loop {
            self.limiter.acquire().await;

            let options = QueryOptions::blocking(self.index, self.jittered_wait());
            match (self.fetch)(options).await {
                Ok(response) => {
                    self.end_failure_episode();
                    let previous = self.index;
                    self.advance_index(response.meta.index);

                    if !self.compare {
                        // A blocking query that timed out returns the index it was sent.
                        if previous != 0 && self.index == previous {
                            continue;
                        }
                        return Ok(response);
                    }
                    if self.last.as_ref() == Some(&response.value) {
                        tracing::trace!(watch = %self.name, index = self.index, "watch woke without change");
                        continue;
                    }
                    self.last = Some(response.value.clone());
                    return Ok(response);
                }
                Err(error) if error.is_retryable() => {
                    let delay = self.next_backoff();
                    self.failures += 1;
                    if self.failures == 1 || self.failures.is_multiple_of(10) {
                        tracing::warn!(watch = %self.name, failures = self.failures, ?delay, %error, "watch request failed, retrying");
                    } else {
                        tracing::debug!(watch = %self.name, failures = self.failures, ?delay, %error, "watch request failed, retrying");
                    }
                    tokio::time::sleep(delay).await;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Turns the watch into a stream of changes. The stream ends after the first permanent
    /// error, which it yields.
    pub fn into_stream(self) -> impl Stream<Item = Result<Response<T>, Error>> {
        futures::stream::unfold(Some(self), |state| async move {
            let mut watch = state?;
            match watch.next_change().await {
                Ok(response) => Some((Ok(response), Some(watch))),
                Err(error) => Some((Err(error), None)),
            }
        })
    }

    fn advance_index(&mut self, returned: u64) {
        if returned < self.index {
            tracing::debug!(watch = %self.name, previous = self.index, returned, "index went backwards, reading again without blocking");
            self.index = 0;
            return;
        }
        self.index = returned.max(1);
    }

    fn jittered_wait(&self) -> Duration {
        let spread = self.config.wait / 16;
        if spread.is_zero() {
            return self.config.wait;
        }
        let cut = rand::rng().random_range(Duration::ZERO..spread);
        self.config.wait - cut
    }

    fn next_backoff(&mut self) -> Duration {
        next_retry_delay(
            &mut self.backoff,
            self.config.backoff_initial,
            self.config.backoff_max,
        )
    }

    fn end_failure_episode(&mut self) {
        if self.failures > 0 {
            tracing::info!(watch = %self.name, failures = self.failures, "watch recovered");
        }
        self.backoff = None;
        self.failures = 0;
    }
}

/// Returns the next delay of a failure episode: exponential from `initial`, with jitter, at
/// most `max`. `episode` starts a new sequence when `None`; set it to `None` after a success.
pub(crate) fn next_retry_delay(
    episode: &mut Option<ExponentialBackoff>,
    initial: Duration,
    max: Duration,
) -> Duration {
    let backoff = episode.get_or_insert_with(|| {
        ExponentialBuilder::default()
            .with_min_delay(initial)
            .with_max_delay(max)
            .with_jitter()
            .without_max_times()
            .build()
    });
    backoff.next().unwrap_or(max).min(max)
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    use reqwest::StatusCode;

    use super::*;
    use crate::nomad::QueryMeta;

    type Script = Arc<Mutex<VecDeque<Result<(u64, Vec<&'static str>), Error>>>>;
    type Seen = Arc<Mutex<Vec<QueryOptions>>>;
    type Reply = futures::future::Ready<Result<Response<Vec<&'static str>>, Error>>;

    /// Builds a fake query that plays back scripted results and records the options it receives.
    fn scripted(
        results: Vec<Result<(u64, Vec<&'static str>), Error>>,
    ) -> (Script, Seen, impl FnMut(QueryOptions) -> Reply) {
        let script: Script = Arc::new(Mutex::new(results.into()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let fetch = {
            let script = script.clone();
            let seen = seen.clone();
            move |options: QueryOptions| {
                seen.lock().expect("lock").push(options);
                let next = script
                    .lock()
                    .expect("lock")
                    .pop_front()
                    .expect("the test scripted enough results");
                futures::future::ready(next.map(|(index, value)| Response {
                    value,
                    meta: QueryMeta {
                        index,
                        known_leader: true,
                        last_contact: Duration::ZERO,
                    },
                    next_token: None,
                }))
            }
        };
        (script, seen, fetch)
    }

    fn server_error() -> Error {
        Error::from_response(
            "/v1/jobs",
            StatusCode::INTERNAL_SERVER_ERROR,
            "No cluster leader",
        )
    }

    #[tokio::test(start_paused = true)]
    async fn unchanged_payload_not_yielded() {
        let (_, seen, fetch) = scripted(vec![
            Ok((10, vec!["a"])),
            Ok((11, vec!["a"])),
            Ok((12, vec!["a"])),
            Ok((13, vec!["a", "b"])),
        ]);
        let mut watch = Watch::new("jobs", WatchConfig::default(), fetch).expect("valid config");

        let first = watch.next_change().await.expect("first read");
        assert_eq!(first.value, vec!["a"]);
        let second = watch.next_change().await.expect("change");
        assert_eq!(second.value, vec!["a", "b"]);
        assert_eq!(second.meta.index, 13);

        let seen = seen.lock().expect("lock");
        let indexes: Vec<u64> = seen.iter().map(|options| options.index).collect();
        assert_eq!(indexes, vec![0, 10, 11, 12]);
    }

    #[tokio::test(start_paused = true)]
    async fn yield_every_change_skips_only_timeouts() {
        let (_, seen, fetch) = scripted(vec![
            Ok((10, vec!["a"])),
            Ok((10, vec!["a"])),
            Ok((11, vec!["a"])),
            Ok((11, vec!["a"])),
            Ok((12, vec!["b"])),
        ]);
        let mut watch = Watch::new("allocations", WatchConfig::default(), fetch)
            .expect("valid config")
            .yield_every_change();

        let first = watch.next_change().await.expect("first read");
        assert_eq!(first.meta.index, 10);
        let second = watch.next_change().await.expect("index moved");
        assert_eq!(
            (second.meta.index, second.value),
            (11, vec!["a"]),
            "a moved index is yielded even with an equal payload"
        );
        let third = watch.next_change().await.expect("index moved");
        assert_eq!(third.meta.index, 12);

        let seen = seen.lock().expect("lock");
        let indexes: Vec<u64> = seen.iter().map(|options| options.index).collect();
        assert_eq!(indexes, vec![0, 10, 10, 11, 11]);
    }

    #[tokio::test(start_paused = true)]
    async fn zero_index_raised_to_one() {
        let (_, seen, fetch) = scripted(vec![Ok((0, vec![])), Ok((0, vec!["a"]))]);
        let mut watch = Watch::new("allocations", WatchConfig::default(), fetch).expect("valid");

        watch.next_change().await.expect("first read");
        watch.next_change().await.expect("change");

        let seen = seen.lock().expect("lock");
        assert_eq!(seen[1].index, 1, "index 0 must not be sent again");
        assert!(seen[1].effective_wait().is_some(), "the second read blocks");
    }

    #[tokio::test(start_paused = true)]
    async fn backwards_index_rereads_without_blocking() {
        let (_, seen, fetch) = scripted(vec![
            Ok((50, vec!["a"])),
            Ok((20, vec!["a"])),
            Ok((21, vec!["b"])),
        ]);
        let mut watch = Watch::new("nodes", WatchConfig::default(), fetch).expect("valid");

        watch.next_change().await.expect("first read");
        watch.next_change().await.expect("change");

        let seen = seen.lock().expect("lock");
        let indexes: Vec<u64> = seen.iter().map(|options| options.index).collect();
        assert_eq!(indexes, vec![0, 50, 0]);
    }

    #[tokio::test(start_paused = true)]
    async fn retryable_errors_back_off_capped() {
        let config = WatchConfig {
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(4),
            ..WatchConfig::default()
        };
        let mut results: Vec<_> = (0..6).map(|_| Err(server_error())).collect();
        results.push(Ok((5, vec!["a"])));
        let (_, seen, fetch) = scripted(results);
        let mut watch = Watch::new("jobs", config, fetch).expect("valid");

        let started = Instant::now();
        let response = watch.next_change().await.expect("recovers");
        let elapsed = started.elapsed();

        assert_eq!(response.value, vec!["a"]);
        assert_eq!(seen.lock().expect("lock").len(), 7);
        assert!(elapsed <= Duration::from_secs(6 * 4 + 2), "{elapsed:?}");
        assert!(elapsed >= Duration::from_secs(1), "{elapsed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_error_returned() {
        let (_, _, fetch) = scripted(vec![Err(Error::from_response(
            "/v1/job/x",
            StatusCode::FORBIDDEN,
            "Permission denied",
        ))]);
        let mut watch = Watch::new("job", WatchConfig::default(), fetch).expect("valid");
        let error = watch
            .next_change()
            .await
            .expect_err("permission denied is permanent");
        assert!(matches!(error, Error::PermissionDenied { .. }), "{error:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limit_spaces_requests() {
        let config = WatchConfig {
            min_interval: Duration::from_secs(1),
            burst: 2,
            ..WatchConfig::default()
        };
        let (_, _, fetch) = scripted(vec![
            Ok((1, vec!["a"])),
            Ok((1, vec!["a"])),
            Ok((1, vec!["a"])),
            Ok((1, vec!["a"])),
            Ok((2, vec!["b"])),
        ]);
        let mut watch = Watch::new("jobs", config, fetch).expect("valid");

        let started = Instant::now();
        watch.next_change().await.expect("first read");
        watch.next_change().await.expect("change");

        // Two requests pass at once, and the other three wait one interval each.
        assert!(
            started.elapsed() >= Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn config_rejects_long_wait() {
        let config = WatchConfig {
            wait: Duration::from_secs(600),
            ..WatchConfig::default()
        };
        let error = config
            .validate()
            .expect_err("10 minutes exceeds Nomad's cap");
        assert!(error.to_string().contains("300s"), "{error}");
    }

    #[test]
    fn config_rejects_zero_burst() {
        let config = WatchConfig {
            burst: 0,
            ..WatchConfig::default()
        };
        assert!(config.validate().is_err());
    }
}
