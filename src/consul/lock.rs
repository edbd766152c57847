//! Leader election on a Consul session lock.
//!
//! A [`LeaderLock`] creates a session with a TTL and a lock delay, tries to acquire the leader
//! key with the holder's identity as value, renews the session at TTL/2 and watches the key.
//! It counts as leader only while the key shows its session and the last renewal succeeded
//! less than one TTL ago. A failed renewal ends leadership until a renewal succeeds. When the
//! session is lost, a new one is created and the acquire starts over.
//!
//! ```text
//!   Follower ── acquire returns true ──► Leader
//!   Leader ── renewal fails, TTL passed, or key shows another session ──► Follower
//!   Follower ── key free (after the lock delay) ──► acquire again
//! ```

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::client::{ConsulClient, QueryOptions, SessionBehavior, SessionRequest, WriteMode};
use super::error::{Error, Result};
use super::watch::{Backoff, TokenBucket};

/// Settings of a leader lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderLockConfig {
    /// The lock key, such as `steward/leader`.
    pub key: String,
    /// Stored as the key's value so that followers can show who leads.
    pub holder: String,
    /// Session TTL; the session is renewed every TTL/2. Consul accepts 10 s to 24 h.
    pub ttl: Duration,
    /// How long the key stays unavailable after the leader's session is invalidated, so
    /// that an old leader notices before a new one acts.
    pub lock_delay: Duration,
    /// `wait` of the blocking reads of the key.
    pub wait: Duration,
    /// Pause between acquire attempts while the key is free but the lock delay still runs.
    pub retry_interval: Duration,
}

impl LeaderLockConfig {
    /// Defaults: TTL 15 s, lock delay 15 s, wait 5 min, retry every second.
    pub fn new(key: impl Into<String>, holder: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            holder: holder.into(),
            ttl: Duration::from_secs(15),
            lock_delay: Duration::from_secs(15),
            wait: Duration::from_secs(300),
            retry_interval: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, Default)]
struct LockState {
    session: Option<String>,
    /// Until when the last successful renewal keeps the session alive.
    renewed_until: Option<Instant>,
    /// Whether the key showed this session at the last read or acquire.
    holds_key: bool,
    /// Set by [`LeaderLock::shutdown`]: leadership ends on purpose, not by loss.
    stepping_down: bool,
}

struct Shared {
    state: Mutex<LockState>,
    leader_tx: watch::Sender<bool>,
    session_changed: tokio::sync::Notify,
    /// Wakes the renewal task to create a new session at once.
    session_lost: tokio::sync::Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, LockState> {
        // The state is a few plain fields updated in one step, so a poisoned lock is usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn is_leader(&self) -> bool {
        let state = self.lock();
        state.holds_key
            && state.session.is_some()
            && state
                .renewed_until
                .is_some_and(|until| Instant::now() < until)
    }

    /// Publishes the leadership flag when it changed, and logs the transition.
    fn publish(&self, key: &str) {
        let leader = self.is_leader();
        let (session, stepping_down) = {
            let state = self.lock();
            (state.session.clone(), state.stepping_down)
        };
        self.leader_tx.send_if_modified(|current| {
            if *current == leader {
                return false;
            }
            *current = leader;
            if leader {
                tracing::info!(key, session = ?session, "acquired leadership");
            } else if stepping_down {
                tracing::info!(key, session = ?session, "stepping down: releasing leadership");
            } else {
                tracing::warn!(key, session = ?session, "lost leadership");
            }
            true
        });
    }
}

/// A running leader election. Drop does not release the lock: call
/// [`LeaderLock::shutdown`] so a successor need not wait for the TTL and lock delay.
pub struct LeaderLock {
    client: ConsulClient,
    config: LeaderLockConfig,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl LeaderLock {
    /// Creates the session and starts the renewal and acquire/watch tasks.
    pub async fn start(client: ConsulClient, config: LeaderLockConfig) -> Result<Self> {
        super::keys::validate_key(&config.key)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(LockState::default()),
            leader_tx: watch::channel(false).0,
            session_changed: tokio::sync::Notify::new(),
            session_lost: tokio::sync::Notify::new(),
        });
        let session = create_session(&client, &config).await?;
        {
            let mut state = shared.lock();
            state.session = Some(session);
            state.renewed_until = Some(Instant::now() + config.ttl);
        }
        let cancel = CancellationToken::new();
        let tasks = vec![
            tokio::spawn(renew_loop(
                client.clone(),
                config.clone(),
                shared.clone(),
                cancel.clone(),
            )),
            tokio::spawn(acquire_loop(
                client.clone(),
                config.clone(),
                shared.clone(),
                cancel.clone(),
            )),
        ];
        Ok(Self {
            client,
            config,
            shared,
            cancel,
            tasks,
        })
    }

    /// Returns whether this process leads now: the key shows its session, and the last renewal
    /// succeeded less than one TTL ago. Check it right before every write that only the leader
    /// may do.
    pub fn is_leader(&self) -> bool {
        self.shared.is_leader()
    }

    /// Returns a receiver that changes when leadership is gained or lost. NOTE: a TTL that runs out
    /// without a failed renewal shows here only after the next renewal attempt, while
    /// [`LeaderLock::is_leader`] turns false at once.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.shared.leader_tx.subscribe()
    }

    /// Waits until this process leads.
    pub async fn wait_for_leadership(&self) {
        let mut rx = self.subscribe();
        // The sender lives as long as `self`, so the channel cannot close here.
        let _ = rx.wait_for(|leader| *leader).await;
    }

    /// Returns the current session id, if one exists.
    pub fn session_id(&self) -> Option<String> {
        self.shared.lock().session.clone()
    }

    /// Reads the holder value stored in the key, which names the current leader, if any.
    pub async fn current_holder(&self) -> Result<Option<String>> {
        let pair = self.client.kv_get(&self.config.key).await?;
        Ok(pair
            .filter(|p| p.session.is_some())
            .map(|p| String::from_utf8_lossy(&p.value).into_owned()))
    }

    /// Stops the tasks, releases the key if held and destroys the session. The session is
    /// destroyed even when the release fails, and the first error is returned.
    pub async fn shutdown(self) -> Result<()> {
        self.cancel.cancel();
        for task in self.tasks {
            let _ = task.await;
        }

        let session = {
            let mut state = self.shared.lock();
            state.holds_key = false;
            state.stepping_down = true;
            state.session.clone()
        };
        self.shared.publish(&self.config.key);
        self.shared.lock().session = None;
        let Some(session) = session else {
            return Ok(());
        };

        let release = WriteMode::Release(session.clone());
        let released = self
            .client
            .kv_put(
                &self.config.key,
                self.config.holder.as_bytes(),
                None,
                &release,
            )
            .await;
        if let Err(error) = &released {
            tracing::warn!(key = %self.config.key, %session, %error, "failed to release the leader key");
        }
        let destroyed = self.client.session_destroy(&session).await;
        if let Err(error) = &destroyed {
            tracing::warn!(key = %self.config.key, %session, %error, "failed to destroy the leader session");
        }
        let was_holder = released?;
        destroyed?;
        if was_holder {
            tracing::info!(key = %self.config.key, %session, "released leader lock");
        } else {
            // A standby's session never held the key, so Consul returns false for the release.
            tracing::info!(key = %self.config.key, %session, "ended the session of a standby; the leader lock was not ours");
        }
        Ok(())
    }
}

async fn create_session(client: &ConsulClient, config: &LeaderLockConfig) -> Result<String> {
    let request = SessionRequest {
        name: format!("steward leader lock: {}", config.holder),
        node: None,
        lock_delay: config.lock_delay,
        behavior: SessionBehavior::Release,
        ttl: Some(config.ttl),
        // TTL only: the session must not die with the agent's serfHealth check when Steward
        // talks to a remote agent.
        node_checks: Some(Vec::new()),
    };
    let id = client.session_create(&request).await?;
    tracing::debug!(session = %id, key = %config.key, "created leader session");
    Ok(id)
}

/// Renews the session every TTL/2, following a longer TTL when Consul returns one, and
/// creates a new session when the old one is gone.
async fn renew_loop(
    client: ConsulClient,
    config: LeaderLockConfig,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) {
    let mut ttl = config.ttl;
    let mut backoff = Backoff::new(Duration::from_millis(200), ttl / 4);
    let mut delay = ttl / 2;
    loop {
        tokio::select! {
            // Shutdown releases the key itself.
            _ = cancel.cancelled() => return,
            // Time to renew, or to retry after a failure.
            _ = tokio::time::sleep(delay) => {}
            // The acquire task found the session gone: replace it now.
            _ = shared.session_lost.notified() => {}
        }

        let session = shared.lock().session.clone();
        let outcome = match &session {
            Some(id) => client.session_renew(id).await.map(Some),
            None => create_session(&client, &config).await.map(|id| {
                let mut state = shared.lock();
                state.session = Some(id);
                state.renewed_until = Some(Instant::now() + config.ttl);
                None
            }),
        };
        match outcome {
            Ok(info) => {
                backoff.reset();
                if let Some(returned) = info.and_then(|i| i.ttl_duration()) {
                    ttl = returned.max(config.ttl);
                }
                shared.lock().renewed_until = Some(Instant::now() + ttl);
                if session.is_none() {
                    shared.session_changed.notify_one();
                }
                delay = ttl / 2;
            }
            Err(Error::SessionNotFound { id }) => {
                tracing::warn!(key = %config.key, session = %id, "leader session expired or was destroyed");
                let mut state = shared.lock();
                state.session = None;
                state.holds_key = false;
                state.renewed_until = None;
                drop(state);
                delay = Duration::ZERO;
            }
            Err(error) => {
                // Without a renewal this process cannot prove that its session is alive, so
                // it stops leading until a renewal succeeds again.
                shared.lock().renewed_until = None;
                delay = backoff.next_delay();
                tracing::warn!(key = %config.key, %error, ?delay, "failed to renew leader session");
            }
        }
        shared.publish(&config.key);
    }
}

/// Watches the key, and tries to acquire it whenever it is free.
async fn acquire_loop(
    client: ConsulClient,
    config: LeaderLockConfig,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) {
    let mut limiter = TokenBucket::new(Duration::from_millis(200));
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    let mut index: u64 = 0;
    loop {
        limiter.acquire().await;
        let options = if index == 0 {
            QueryOptions::default()
        } else {
            QueryOptions::blocking(index, config.wait)
        };
        let read = tokio::select! {
            _ = cancel.cancelled() => return,
            // A new session after a loss: read the key at once instead of waiting on it.
            _ = shared.session_changed.notified() => { index = 0; continue; }
            read = client.kv_get_with(&config.key, &options) => read,
        };
        let (pair, meta) = match read {
            Ok(read) => read,
            Err(error) => {
                let delay = backoff.next_delay();
                tracing::warn!(key = %config.key, %error, ?delay, "failed to read the leader key");
                shared.lock().holds_key = false;
                shared.publish(&config.key);
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
                continue;
            }
        };
        backoff.reset();
        // Reset on a backwards index; never block on 0.
        index = if meta.index < index {
            0
        } else {
            meta.index.max(1)
        };

        let our_session = shared.lock().session.clone();
        let holder = pair.as_ref().and_then(|p| p.session.clone());
        let holds = holder.is_some() && holder == our_session;
        shared.lock().holds_key = holds;
        shared.publish(&config.key);

        if holder.is_none()
            && let Some(session) = our_session
        {
            let acquired = client
                .kv_put(
                    &config.key,
                    config.holder.as_bytes(),
                    None,
                    &WriteMode::Acquire(session.clone()),
                )
                .await;
            match acquired {
                Ok(true) => {
                    let mut state = shared.lock();
                    state.holds_key = state.session.as_deref() == Some(session.as_str());
                    drop(state);
                    shared.publish(&config.key);
                }
                Ok(false) => {
                    // The lock delay still runs, or another process was faster. Nothing will
                    // wake the blocking read when the delay ends, so read again after a pause.
                    tracing::debug!(key = %config.key, "leader key not acquired; retrying");
                    index = 0;
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(config.retry_interval) => {}
                    }
                }
                Err(Error::SessionNotFound { id }) => {
                    tracing::warn!(key = %config.key, session = %id, "leader session is gone; creating a new one");
                    let mut state = shared.lock();
                    if state.session.as_deref() == Some(id.as_str()) {
                        state.session = None;
                        state.holds_key = false;
                        state.renewed_until = None;
                    }
                    drop(state);
                    shared.publish(&config.key);
                    shared.session_lost.notify_one();
                    index = 0;
                }
                Err(error) => {
                    tracing::warn!(key = %config.key, %error, "failed to acquire the leader key");
                    index = 0;
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(backoff.next_delay()) => {}
                    }
                }
            }
        } else if holder.is_none() {
            // No session yet (the renewal task is creating one): look again shortly.
            index = 0;
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(config.retry_interval) => {}
            }
        }
    }
}
