//! HTTP handlers of the Consul emulator.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rand::Rng as _;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::store::{Behavior, Data, Entry, Session, Store, WriteMode};
use super::watch::PrefixWatches;
use super::{ConsulEmulatorConfig, StartError};
use crate::consul::parse_go_duration;
use crate::sim::nomad::validate::go_duration as go_duration_ns;

/// Largest KV value and transaction body: Consul's `kv_max_value_size` default, 512 KiB.
pub(crate) const MAX_VALUE_SIZE: usize = 512 * 1024;

/// Maximum blocking wait, Consul's `max_query_time` default.
const MAX_WAIT: Duration = Duration::from_secs(600);

/// Blocking wait when the request gives `index` without `wait`.
const DEFAULT_WAIT: Duration = Duration::from_secs(300);

/// Maximum lock delay; Consul clamps longer ones to this.
const MAX_LOCK_DELAY_NS: u64 = 60_000_000_000;

/// Maximum session TTL that Consul accepts.
const MAX_SESSION_TTL: Duration = Duration::from_secs(86_400);

/// State shared by the handlers.
pub(crate) struct Shared {
    store: Mutex<Store>,
    /// Bumped after every committed change. Session queries, and KV queries whose index is
    /// the whole KV table's, re-evaluate on it.
    changed: watch::Sender<u64>,
    /// Moved for each KV key a commit wrote or deleted. KV queries re-evaluate on the
    /// channel of their key or prefix.
    prefix_watches: PrefixWatches,
    /// Bumped on a snapshot restore; blocked queries return at once on it.
    abandoned: watch::Sender<u64>,
    config: ConsulEmulatorConfig,
    unavailable_until: Mutex<Option<Instant>>,
    snapshot: Mutex<Option<Data>>,
    cancel: CancellationToken,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A handler that panicked while holding the lock leaves consistent data behind, because
    // every mutation is applied to the store in one step.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The Raft index of a fresh emulated server before its first write.
const BOOTSTRAP_INDEX: u64 = 12;

impl Shared {
    pub(crate) fn load(
        config: ConsulEmulatorConfig,
        cancel: CancellationToken,
    ) -> Result<Self, StartError> {
        // A fresh server has already committed a few Raft entries (the leader's barrier and
        // configuration) before any KV write, so its first write does not carry index 1. A
        // blocking query on an empty prefix returns index 1 (raised from 0), and a first
        // write at index 1 would not wake it.
        let mut data = Data {
            index: BOOTSTRAP_INDEX,
            ..Data::default()
        };
        if let Some(dir) = &config.data_dir {
            std::fs::create_dir_all(dir).map_err(|e| StartError::LoadState {
                path: dir.clone(),
                message: format!("failed to create the data directory: {e}"),
            })?;
        }
        if let Some(path) = state_path(&config) {
            match std::fs::read(&path) {
                Ok(bytes) => {
                    data = serde_json::from_slice(&bytes).map_err(|e| StartError::LoadState {
                        path: path.clone(),
                        message: e.to_string(),
                    })?;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(StartError::LoadState {
                        path,
                        message: e.to_string(),
                    });
                }
            }
        }
        let store = Store::from_data(data, Instant::now(), config.session_ttl_multiplier);
        Ok(Self {
            store: Mutex::new(store),
            changed: watch::channel(0).0,
            prefix_watches: PrefixWatches::default(),
            abandoned: watch::channel(0).0,
            config,
            unavailable_until: Mutex::new(None),
            snapshot: Mutex::new(None),
            cancel,
        })
    }

    /// Applies `f` with the next index, then persists and wakes watchers if the index moved.
    fn mutate<T>(&self, f: impl FnOnce(&mut Store, u64, Instant) -> T) -> T {
        let mut store = lock(&self.store);
        let before = store.data.index;
        let out = f(&mut store, before + 1, Instant::now());
        let changed_keys = store.take_changed_keys();
        if store.data.index != before {
            self.persist(&store.data);
            self.prefix_watches.notify(&changed_keys);
            self.changed.send_modify(|generation| *generation += 1);
        }
        out
    }

    /// Writes the state file atomically (temp file, then rename). Errors are logged, because
    /// the in-memory state stays authoritative.
    fn persist(&self, data: &Data) {
        let Some(path) = state_path(&self.config) else {
            return;
        };
        let tmp = path.with_extension("json.tmp");
        let result = serde_json::to_vec(data)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(&tmp, bytes))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(error) = result {
            tracing::error!(%error, path = %path.display(), "failed to persist consul emulator state");
        }
    }

    /// Waits until the query's index passes `min_index`, the wait ends, a restore abandons
    /// the store, or the server stops, then evaluates `read`. `min_index` of `None` or 0
    /// never blocks.
    ///
    /// `index` returns the index that `read` would return, and whether it is the KV table
    /// index (a missing key or an empty prefix) rather than one computed from the keys under
    /// `prefix`. With a `prefix` and a computed index the query wakes only on commits that
    /// wrote or deleted a key under the prefix. Otherwise every commit wakes it. A wake
    /// computes only `index`, so `read` builds the body once per response.
    async fn block<T>(
        &self,
        min_index: Option<u64>,
        wait: Duration,
        prefix: Option<&str>,
        index: impl Fn(&Store) -> (u64, bool),
        read: impl Fn(&Store) -> (u64, T),
    ) -> (u64, T) {
        let mut changed = self.changed.subscribe();
        let mut prefix_changed = prefix.map(|prefix| self.prefix_watches.subscribe(prefix));
        let mut abandoned = self.abandoned.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        let min = min_index.unwrap_or(0);
        let read_now = || {
            let (index, value) = read(&lock(&self.store));
            // Consul makes every successful index at least 1, so clients never send 0 again.
            (index.max(1), value)
        };

        loop {
            changed.borrow_and_update();
            if let Some(receiver) = prefix_changed.as_mut() {
                receiver.borrow_and_update();
            }
            let follow_table = {
                let store = lock(&self.store);
                let (current, is_table_index) = index(&store);
                if min == 0 || current.max(1) > min {
                    let (index, value) = read(&store);
                    return (index.max(1), value);
                }
                is_table_index || prefix_changed.is_none()
            };

            let prefix_change = async {
                match prefix_changed.as_mut() {
                    Some(receiver) => receiver.changed().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                // Any commit may have moved an index that falls back to the table index.
                _ = changed.changed(), if follow_table => {}
                // A key under the prefix changed.
                _ = prefix_change => {}
                // A restore abandons the old state, so return at once with whatever is there.
                _ = abandoned.changed() => return read_now(),
                // The wait ran out. The index has not passed `min_index`, so the result is
                // the one the client has, read again under the lock.
                _ = tokio::time::sleep_until(deadline) => return read_now(),
                // The server is stopping: let graceful shutdown finish.
                _ = self.cancel.cancelled() => return read_now(),
            }
        }
    }
}

fn state_path(config: &ConsulEmulatorConfig) -> Option<PathBuf> {
    config.data_dir.as_ref().map(|dir| dir.join("state.json"))
}

/// Invalidates sessions whose TTL ran out, every 100 ms, until `cancel`.
pub(crate) async fn expire_sessions_loop(shared: Arc<Shared>, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        shared.mutate(|store, _, now| store.expire_sessions(now));
    }
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let v1 = Router::new()
        .route("/v1/kv", get(kv_get).put(kv_put).delete(kv_delete))
        .route("/v1/kv/", get(kv_get).put(kv_put).delete(kv_delete))
        .route("/v1/kv/{*key}", get(kv_get).put(kv_put).delete(kv_delete))
        .route("/v1/txn", put(super::txn::txn))
        .route("/v1/session/create", put(session_create))
        .route("/v1/session/renew/{id}", put(session_renew))
        .route("/v1/session/destroy/{id}", put(session_destroy))
        .route("/v1/session/info/{id}", get(session_info))
        .route("/v1/session/list", get(session_list))
        .layer(middleware::from_fn_with_state(
            shared.clone(),
            acl_and_faults,
        ));
    let status = Router::new()
        .route("/v1/status/leader", get(status_leader))
        .route("/v1/status/peers", get(status_peers))
        .layer(middleware::from_fn_with_state(shared.clone(), faults_only));
    let sim = Router::new()
        .route("/_sim/unavailable", post(sim_unavailable))
        .route("/_sim/snapshot", post(sim_snapshot))
        .route("/_sim/restore", post(sim_restore))
        .route("/_sim/reap-tombstones", post(sim_reap_tombstones));
    let agent = v1.merge(status).layer(middleware::from_fn_with_state(
        shared.clone(),
        datacenter_and_consistency,
    ));
    agent.merge(sim).with_state(shared)
}

// ---------------------------------------------------------------------------------------------
// Middleware

fn unavailable(shared: &Shared) -> Option<Response> {
    let until = *lock(&shared.unavailable_until);
    match until {
        Some(until) if Instant::now() < until => {
            Some(text(StatusCode::SERVICE_UNAVAILABLE, "No cluster leader"))
        }
        _ => None,
    }
}

async fn faults_only(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    if let Some(response) = unavailable(&shared) {
        return response;
    }
    next.run(request).await
}

async fn acl_and_faults(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(response) = unavailable(&shared) {
        return response;
    }
    if let Some(expected) = &shared.config.acl_token {
        let headers = request.headers();
        let presented = headers
            .get("x-consul-token")
            .and_then(|v| v.to_str().ok())
            .or_else(|| {
                headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
            });
        match presented {
            None | Some("") => return text(StatusCode::FORBIDDEN, "Permission denied"),
            Some(token) if token != expected => {
                return text(StatusCode::FORBIDDEN, "ACL not found");
            }
            Some(_) => {}
        }
    }
    next.run(request).await
}

/// Rejects a `?dc=` other than the agent's datacenter, as an agent without a WAN path to it
/// does, and sets `X-Consul-Effective-Consistency` from `?stale` or `?consistent` (`leader`
/// when neither is given). Consul reads both parameters by presence, whatever their value.
async fn datacenter_and_consistency(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let params = Query::<HashMap<String, String>>::try_from_uri(request.uri())
        .map(|Query(params)| params)
        .unwrap_or_default();

    if let Some(datacenter) = params.get("dc").filter(|dc| !dc.is_empty())
        && *datacenter != shared.config.datacenter
    {
        tracing::debug!(
            datacenter = %datacenter,
            agent_datacenter = %shared.config.datacenter,
            "request for another datacenter rejected"
        );
        return text(StatusCode::INTERNAL_SERVER_ERROR, "No path to datacenter");
    }
    let stale = has(&params, "stale");
    let consistent = has(&params, "consistent");
    if stale && consistent {
        return text(
            StatusCode::BAD_REQUEST,
            "Cannot specify ?stale with ?consistent, conflicting semantics.",
        );
    }

    let mut response = next.run(request).await;
    let effective = if stale {
        "stale"
    } else if consistent {
        "consistent"
    } else {
        "leader"
    };
    let headers = response.headers_mut();
    if headers.contains_key("x-consul-effective-consistency") {
        headers.insert(
            "x-consul-effective-consistency",
            HeaderValue::from_static(effective),
        );
    }
    response
}

// ---------------------------------------------------------------------------------------------
// Response helpers

pub(crate) fn text(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message.to_string(),
    )
        .into_response()
}

/// Builds the headers that every Consul read carries.
pub(crate) fn meta_headers(index: u64) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("x-consul-index", HeaderValue::from(index));
    headers.insert("x-consul-knownleader", HeaderValue::from_static("true"));
    headers.insert("x-consul-lastcontact", HeaderValue::from_static("0"));
    headers.insert(
        "x-consul-effective-consistency",
        HeaderValue::from_static("leader"),
    );
    headers
}

pub(crate) fn json_with_index(status: StatusCode, index: u64, body: &Value) -> Response {
    let mut headers = meta_headers(index);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    (status, headers, body.to_string()).into_response()
}

/// Converts an entry to Consul's JSON form. `with_value: false` gives `"Value": null`, as txn results
/// do for every verb except `get` and `get-tree`.
pub(crate) fn entry_json(entry: &Entry, with_value: bool) -> Value {
    let value = if with_value && !entry.value.is_empty() {
        Value::String(BASE64.encode(&entry.value))
    } else {
        Value::Null
    };
    let mut object = json!({
        "LockIndex": entry.lock_index,
        "Key": entry.key,
        "Flags": entry.flags,
        "Value": value,
        "CreateIndex": entry.create_index,
        "ModifyIndex": entry.modify_index,
    });
    if let Some(session) = &entry.session {
        object["Session"] = Value::String(session.clone());
    }
    object
}

fn session_json(session: &Session) -> Value {
    json!({
        "ID": session.id,
        "Name": session.name,
        "Node": session.node,
        "LockDelay": session.lock_delay_ns,
        "Behavior": match session.behavior { Behavior::Release => "release", Behavior::Delete => "delete" },
        "TTL": session.ttl,
        "NodeChecks": session.node_checks,
        "ServiceChecks": session.service_checks,
        "CreateIndex": session.create_index,
        "ModifyIndex": session.modify_index,
    })
}

// ---------------------------------------------------------------------------------------------
// Parameters

struct BlockingParams {
    index: Option<u64>,
    wait: Duration,
}

/// A 400 response with Consul's plain-text message.
struct BadRequest(String);

impl IntoResponse for BadRequest {
    fn into_response(self) -> Response {
        text(StatusCode::BAD_REQUEST, &self.0)
    }
}

fn blocking_params(params: &HashMap<String, String>) -> Result<BlockingParams, BadRequest> {
    let index = match params.get("index") {
        None => None,
        Some(raw) => Some(
            raw.parse::<u64>()
                .map_err(|_| BadRequest(format!("Invalid index: \"{raw}\" is not a number")))?,
        ),
    };
    let wait = match params.get("wait") {
        None => DEFAULT_WAIT,
        Some(raw) => parse_go_duration(raw)
            .ok_or_else(|| BadRequest(format!("Invalid wait time: \"{raw}\"")))?,
    };
    // Consul clamps the wait to max_query_time and adds up to wait/16 so that many
    // watchers do not return at the same instant.
    let wait = wait.min(MAX_WAIT);
    let jitter_ns = (wait.as_nanos() / 16) as u64;
    let jitter = if jitter_ns == 0 {
        Duration::ZERO
    } else {
        Duration::from_nanos(rand::rng().random_range(0..jitter_ns))
    };
    Ok(BlockingParams {
        index,
        wait: wait + jitter,
    })
}

/// Extracts and cleans the key from the raw request path, as Consul's HTTP layer does:
/// percent-decoding, then collapsing `//`. Returns a 400 for traversal segments or leading or
/// trailing spaces (Consul 1.21.6 and later with key validation on, the default).
fn key_from_path(path: &str) -> Result<String, BadRequest> {
    let raw = path
        .strip_prefix("/v1/kv")
        .unwrap_or(path)
        .trim_start_matches('/');
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| BadRequest("Invalid key: not valid UTF-8".to_string()))?
        .into_owned();
    let mut cleaned = String::with_capacity(decoded.len());
    for (i, segment) in decoded.split('/').enumerate() {
        if segment == ".." || segment == "." {
            return Err(BadRequest(format!(
                "invalid key name {decoded:?}: path traversal is not allowed"
            )));
        }
        if segment.is_empty() && i > 0 {
            continue;
        }
        if i > 0 && !cleaned.is_empty() {
            cleaned.push('/');
        }
        cleaned.push_str(segment);
    }
    if decoded.ends_with('/') && !cleaned.is_empty() {
        cleaned.push('/');
    }
    if cleaned.starts_with(' ') || cleaned.ends_with(' ') {
        return Err(BadRequest(format!(
            "invalid key name {decoded:?}: leading or trailing spaces are not allowed"
        )));
    }
    Ok(cleaned)
}

fn has(params: &HashMap<String, String>, name: &str) -> bool {
    params.contains_key(name)
}

fn parse_u64_param(
    params: &HashMap<String, String>,
    name: &str,
) -> Result<Option<u64>, BadRequest> {
    match params.get(name) {
        None => Ok(None),
        Some(raw) => raw.parse::<u64>().map(Some).map_err(|_| {
            BadRequest(format!(
                "Invalid {name}: \"{raw}\" is not an unsigned integer"
            ))
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// KV

enum KvRead {
    Missing,
    Entries(Vec<Value>),
    Keys(Vec<String>),
    Raw(bytes::Bytes),
}

async fn kv_get(
    State(shared): State<Arc<Shared>>,
    Query(params): Query<HashMap<String, String>>,
    request: Request,
) -> Response {
    let key = match key_from_path(request.uri().path()) {
        Ok(key) => key,
        Err(bad) => return bad.into_response(),
    };
    if has(&params, "stale") && has(&params, "consistent") {
        return text(
            StatusCode::BAD_REQUEST,
            "Cannot specify ?stale with ?consistent, conflicting semantics.",
        );
    }
    let keys = has(&params, "keys");
    let recurse = has(&params, "recurse") || keys;
    if key.is_empty() && !recurse {
        return text(StatusCode::BAD_REQUEST, "Missing key name");
    }
    let blocking = match blocking_params(&params) {
        Ok(b) => b,
        Err(bad) => return bad.into_response(),
    };
    let raw = has(&params, "raw");
    let separator = params
        .get("separator")
        .or_else(|| params.get("seperator"))
        .cloned()
        .filter(|s| !s.is_empty());

    let index_of = |store: &Store| {
        let own_index = if recurse {
            store.prefix_index(&key)
        } else {
            store.data.kv.get(&key).map(|entry| entry.modify_index)
        };
        match own_index {
            Some(index) => (index, false),
            None => (store.kv_table_index(), true),
        }
    };
    let (index, read) = shared
        .block(
            blocking.index,
            blocking.wait,
            Some(&key),
            index_of,
            |store| {
                if keys {
                    let (entries, index) = store.list(&key);
                    if entries.is_empty() && !key.is_empty() {
                        return (index, KvRead::Missing);
                    }
                    let mut names: Vec<String> = Vec::new();
                    for entry in entries {
                        let name = match &separator {
                            Some(sep) => match entry.key[key.len()..].find(sep.as_str()) {
                                Some(pos) => entry.key[..key.len() + pos + sep.len()].to_string(),
                                None => entry.key.clone(),
                            },
                            None => entry.key.clone(),
                        };
                        if names.last() != Some(&name) {
                            names.push(name);
                        }
                    }
                    (index, KvRead::Keys(names))
                } else if recurse {
                    let (entries, index) = store.list(&key);
                    if entries.is_empty() {
                        return (index, KvRead::Missing);
                    }
                    let values = entries.iter().map(|e| entry_json(e, true)).collect();
                    (index, KvRead::Entries(values))
                } else {
                    match store.data.kv.get(&key) {
                        None => (store.kv_table_index(), KvRead::Missing),
                        Some(entry) if raw => {
                            (entry.modify_index, KvRead::Raw(entry.value.clone()))
                        }
                        Some(entry) => (
                            entry.modify_index,
                            KvRead::Entries(vec![entry_json(entry, true)]),
                        ),
                    }
                }
            },
        )
        .await;

    match read {
        KvRead::Missing => (StatusCode::NOT_FOUND, meta_headers(index)).into_response(),
        KvRead::Entries(values) => json_with_index(StatusCode::OK, index, &Value::Array(values)),
        KvRead::Keys(names) => json_with_index(StatusCode::OK, index, &json!(names)),
        KvRead::Raw(bytes) => {
            let mut headers = meta_headers(index);
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            headers.insert(
                "x-content-type-options",
                HeaderValue::from_static("nosniff"),
            );
            headers.insert(
                "content-security-policy",
                HeaderValue::from_static("sandbox"),
            );
            (StatusCode::OK, headers, bytes).into_response()
        }
    }
}

fn bool_response(value: bool) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        if value { "true" } else { "false" },
    )
        .into_response()
}

async fn kv_put(
    State(shared): State<Arc<Shared>>,
    Query(params): Query<HashMap<String, String>>,
    request: Request,
) -> Response {
    let key = match key_from_path(request.uri().path()) {
        Ok(key) => key,
        Err(bad) => return bad.into_response(),
    };
    let body = match axum::body::to_bytes(request.into_body(), usize::MAX).await {
        Ok(body) => body,
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                &format!("Failed to read body: {e}"),
            );
        }
    };
    if key.is_empty() {
        return text(StatusCode::BAD_REQUEST, "Missing key name");
    }
    if body.len() > MAX_VALUE_SIZE {
        return text(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "Request body({} bytes) too large, max size: {MAX_VALUE_SIZE} bytes. See https://developer.hashicorp.com/docs/agent/config/config-files#kv_max_value_size.",
                body.len()
            ),
        );
    }
    let flags = match parse_u64_param(&params, "flags") {
        Ok(flags) => flags.unwrap_or(0),
        Err(bad) => return bad.into_response(),
    };
    let cas = match parse_u64_param(&params, "cas") {
        Ok(cas) => cas,
        Err(bad) => return bad.into_response(),
    };
    let acquire = params.get("acquire").cloned();
    let release = params.get("release").cloned();
    let modes = usize::from(cas.is_some())
        + usize::from(acquire.is_some())
        + usize::from(release.is_some());
    if modes > 1 {
        return text(
            StatusCode::BAD_REQUEST,
            "Conflicting flags: cas, acquire and release exclude each other",
        );
    }
    let mode = match (cas, acquire, release) {
        (Some(index), _, _) => WriteMode::Cas(index),
        (_, Some(session), _) => WriteMode::Acquire(session),
        (_, _, Some(session)) => WriteMode::Release(session),
        _ => WriteMode::Plain,
    };
    let result =
        shared.mutate(|store, index, now| store.set(&key, &body, flags, &mode, index, now));
    match result {
        Ok(done) => bool_response(done),
        Err(error) => text(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
    }
}

async fn kv_delete(
    State(shared): State<Arc<Shared>>,
    Query(params): Query<HashMap<String, String>>,
    request: Request,
) -> Response {
    let key = match key_from_path(request.uri().path()) {
        Ok(key) => key,
        Err(bad) => return bad.into_response(),
    };
    let recurse = has(&params, "recurse");
    let cas = match parse_u64_param(&params, "cas") {
        Ok(cas) => cas,
        Err(bad) => return bad.into_response(),
    };
    if recurse && cas.is_some() {
        return text(
            StatusCode::BAD_REQUEST,
            "Conflicting flags: cas and recurse exclude each other",
        );
    }
    if key.is_empty() && !recurse {
        return text(StatusCode::BAD_REQUEST, "Missing key name");
    }
    let done = shared.mutate(|store, index, _| store.delete(&key, recurse, cas, index));
    bool_response(done)
}

// ---------------------------------------------------------------------------------------------
// Transactions (the dispatch lives in `txn.rs`)

impl Shared {
    pub(crate) fn max_txn_ops(&self) -> usize {
        self.config.txn_max_ops
    }

    /// Runs `f` on a copy of the store and commits the copy only when `f` succeeds.
    /// NOTE: the copy takes time and memory in proportion to the whole store, not to the
    /// keys the transaction touches.
    pub(crate) fn transact<T, E>(
        &self,
        f: impl FnOnce(&mut Store, u64, Instant) -> Result<T, E>,
    ) -> Result<(u64, T), E> {
        self.mutate(|store, index, now| {
            let mut copy = store.clone();
            let out = f(&mut copy, index, now)?;
            *store = copy;
            Ok((store.data.index, out))
        })
    }
}

pub(crate) fn decode_base64(value: &str) -> Option<Vec<u8>> {
    BASE64.decode(value).ok()
}

// ---------------------------------------------------------------------------------------------
// Sessions

fn lock_delay_from_json(value: &Value) -> Result<u64, String> {
    match value {
        Value::Number(n) => {
            let n = n.as_u64().ok_or_else(|| format!("invalid LockDelay {n}"))?;
            // A number below 1000 is seconds, anything larger nanoseconds.
            Ok(if n < 1000 { n * 1_000_000_000 } else { n }.min(MAX_LOCK_DELAY_NS))
        }
        Value::String(s) => parse_go_duration(s)
            .map(|d| (d.as_nanos() as u64).min(MAX_LOCK_DELAY_NS))
            .ok_or_else(|| format!("invalid LockDelay {s:?}")),
        Value::Null => Ok(15_000_000_000),
        other => Err(format!("invalid LockDelay {other}")),
    }
}

fn string_list(value: Option<&Value>) -> Option<Vec<String>> {
    value.and_then(Value::as_array).map(|items| {
        items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    })
}

async fn session_create(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let request: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    &format!("Request decode failed: {e}"),
                );
            }
        }
    };

    let lock_delay_ns = match lock_delay_from_json(request.get("LockDelay").unwrap_or(&Value::Null))
    {
        Ok(ns) => ns,
        Err(message) => {
            return text(
                StatusCode::BAD_REQUEST,
                &format!("Request decode failed: {message}"),
            );
        }
    };
    let behavior = match request
        .get("Behavior")
        .and_then(Value::as_str)
        .unwrap_or("release")
    {
        "" | "release" => Behavior::Release,
        "delete" => Behavior::Delete,
        other => {
            return text(
                StatusCode::BAD_REQUEST,
                &format!("Invalid Behavior setting '{other}'"),
            );
        }
    };
    let ttl = match request.get("TTL") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(ttl)) => ttl.clone(),
        Some(other) => {
            let kind = match other {
                Value::Bool(_) => "bool",
                Value::Number(_) => "number",
                Value::Array(_) => "array",
                _ => "object",
            };
            return text(
                StatusCode::BAD_REQUEST,
                &format!(
                    "Request decode failed: json: cannot unmarshal {kind} into Go struct field Session.TTL of type string"
                ),
            );
        }
    };
    // The server checks the TTL (`Session.Apply`), so its errors come back as 500. A TTL that
    // parses to zero means no TTL.
    let parsed_ttl = match go_duration_error(&ttl) {
        None => parse_go_duration(&ttl),
        Some(_) => None,
    };
    let ttl_duration = if ttl.is_empty() {
        None
    } else {
        match parsed_ttl {
            Some(duration) if duration.is_zero() => None,
            Some(duration)
                if duration >= shared.config.min_session_ttl && duration <= MAX_SESSION_TTL =>
            {
                Some(duration)
            }
            Some(duration) => {
                return text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!(
                        "Invalid Session TTL '{}', must be between [{}={}]",
                        duration.as_nanos(),
                        go_duration(shared.config.min_session_ttl),
                        go_duration(MAX_SESSION_TTL)
                    ),
                );
            }
            None => {
                return text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!(
                        "Session TTL '{ttl}' invalid: {}",
                        go_duration_error(&ttl)
                            .unwrap_or_else(|| format!("time: invalid duration {ttl:?}"))
                    ),
                );
            }
        }
    };

    // Naming `Checks` at all replaces the default serfHealth check.
    let node_checks = string_list(request.get("NodeChecks"))
        .or_else(|| string_list(request.get("Checks")))
        .unwrap_or_else(|| vec!["serfHealth".to_string()]);
    let session = Session {
        id: uuid::Uuid::new_v4().to_string(),
        name: request
            .get("Name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        node: request
            .get("Node")
            .and_then(Value::as_str)
            .unwrap_or(&shared.config.node_name)
            .to_string(),
        lock_delay_ns,
        behavior,
        ttl,
        ttl_duration,
        node_checks,
        service_checks: string_list(request.get("ServiceChecks")),
        create_index: 0,
        modify_index: 0,
    };
    let multiplier = shared.config.session_ttl_multiplier;
    let id = shared.mutate(|store, index, now| {
        let mut session = session;
        session.create_index = index;
        session.modify_index = index;
        if let Some(ttl) = session.ttl_duration {
            store
                .session_deadlines
                .insert(session.id.clone(), now + ttl * multiplier);
        }
        let id = session.id.clone();
        store.data.sessions.insert(id.clone(), session);
        store.data.index = index;
        id
    });
    let index = lock(&shared.store).data.index;
    json_with_index(StatusCode::OK, index, &json!({ "ID": id }))
}

async fn session_renew(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let multiplier = shared.config.session_ttl_multiplier;
    let mut store = lock(&shared.store);
    let Some(session) = store.data.sessions.get(&id).cloned() else {
        return text(
            StatusCode::NOT_FOUND,
            &format!("Session id '{id}' not found"),
        );
    };
    if let Some(ttl) = session.ttl_duration {
        store
            .session_deadlines
            .insert(id, Instant::now() + ttl * multiplier);
    }
    let index = store.data.index;
    json_with_index(StatusCode::OK, index, &json!([session_json(&session)]))
}

async fn session_destroy(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    shared.mutate(|store, index, now| store.invalidate_session(&id, index, now));
    bool_response(true)
}

/// Index of a session query: the session table's, which every commit may move.
fn session_index(store: &Store) -> (u64, bool) {
    (store.session_table_index(), true)
}

async fn session_info(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let blocking = match blocking_params(&params) {
        Ok(b) => b,
        Err(bad) => return bad.into_response(),
    };
    let (index, sessions) = shared
        .block(
            blocking.index,
            blocking.wait,
            None,
            session_index,
            |store| {
                let list: Vec<Value> = store
                    .data
                    .sessions
                    .get(&id)
                    .map(session_json)
                    .into_iter()
                    .collect();
                (store.session_table_index(), list)
            },
        )
        .await;
    json_with_index(StatusCode::OK, index, &Value::Array(sessions))
}

async fn session_list(
    State(shared): State<Arc<Shared>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let blocking = match blocking_params(&params) {
        Ok(b) => b,
        Err(bad) => return bad.into_response(),
    };
    let (index, sessions) = shared
        .block(
            blocking.index,
            blocking.wait,
            None,
            session_index,
            |store| {
                let list: Vec<Value> = store.data.sessions.values().map(session_json).collect();
                (store.session_table_index(), list)
            },
        )
        .await;
    json_with_index(StatusCode::OK, index, &Value::Array(sessions))
}

// ---------------------------------------------------------------------------------------------
// Status

async fn status_leader() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        "\"127.0.0.1:8300\"",
    )
        .into_response()
}

async fn status_peers() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        "[\"127.0.0.1:8300\"]",
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------------
// Fault injection

async fn sim_unavailable(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let seconds = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("seconds").and_then(Value::as_f64));
    let Some(seconds) = seconds.filter(|s| s.is_finite() && *s >= 0.0) else {
        return text(
            StatusCode::BAD_REQUEST,
            "invalid body: expected {\"seconds\": N} with N a non-negative number",
        );
    };
    *lock(&shared.unavailable_until) = Some(Instant::now() + Duration::from_secs_f64(seconds));
    tracing::info!(seconds, "consul emulator unavailable");
    bool_response(true)
}

async fn sim_snapshot(State(shared): State<Arc<Shared>>) -> Response {
    let data = lock(&shared.store).data.clone();
    let index = data.index;
    *lock(&shared.snapshot) = Some(data);
    json_with_index(StatusCode::OK, index, &json!({ "Index": index }))
}

async fn sim_restore(State(shared): State<Arc<Shared>>) -> Response {
    let Some(data) = lock(&shared.snapshot).clone() else {
        return text(
            StatusCode::NOT_FOUND,
            "no snapshot saved: POST /_sim/snapshot first",
        );
    };
    let index = data.index;
    {
        let mut store = lock(&shared.store);
        *store = Store::from_data(data, Instant::now(), shared.config.session_ttl_multiplier);
        shared.persist(&store.data);
    }
    shared.abandoned.send_modify(|generation| *generation += 1);
    shared.changed.send_modify(|generation| *generation += 1);
    tracing::info!(index, "consul emulator restored a snapshot");
    json_with_index(StatusCode::OK, index, &json!({ "Index": index }))
}

async fn sim_reap_tombstones(State(shared): State<Arc<Shared>>) -> Response {
    lock(&shared.store).reap_tombstones();
    bool_response(true)
}

/// Formats a duration the way Go's `time.Duration.String` does (`10s`, `24h0m0s`).
fn go_duration(duration: Duration) -> String {
    go_duration_ns(i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX))
}

/// Returns the error text of Go's `time.ParseDuration` when it rejects `text`, or `None` when
/// the syntax is valid. Go requires a unit on every number except a lone `0`.
fn go_duration_error(text: &str) -> Option<String> {
    const UNITS: [&str; 8] = ["ns", "us", "µs", "μs", "ms", "s", "m", "h"];
    let quoted = format!("{text:?}");
    let invalid = Some(format!("time: invalid duration {quoted}"));
    let mut rest = text.strip_prefix(['-', '+']).unwrap_or(text);
    if rest == "0" {
        return None;
    }
    if rest.is_empty() {
        return invalid;
    }
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..number_end];
        if number.is_empty() || number == "." {
            return invalid;
        }
        rest = &rest[number_end..];

        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        if unit.is_empty() {
            return Some(format!("time: missing unit in duration {quoted}"));
        }
        if !UNITS.contains(&unit) {
            return Some(format!("time: unknown unit {unit:?} in duration {quoted}"));
        }
        rest = &rest[unit_end..];
    }
    None
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;

    use futures::poll;

    use super::*;

    fn memory_shared() -> Shared {
        Shared::load(ConsulEmulatorConfig::default(), CancellationToken::new())
            .expect("a memory-only store loads")
    }

    fn put(shared: &Shared, key: &str, value: &[u8]) -> u64 {
        shared.mutate(|store, index, now| {
            store
                .set(key, value, 0, &WriteMode::Plain, index, now)
                .expect("plain write");
            index
        })
    }

    /// A `?recurse&index=min` query on `prefix`, returning its index, as `kv_get` runs it.
    fn blocked_list<'a>(
        shared: &'a Shared,
        prefix: &'a str,
        min: u64,
    ) -> impl Future<Output = u64> + 'a {
        let index = move |store: &Store| match store.prefix_index(prefix) {
            Some(index) => (index, false),
            None => (store.kv_table_index(), true),
        };
        let read = move |store: &Store| (store.list_index(prefix), ());
        async move {
            let (index, ()) = shared
                .block(Some(min), MAX_WAIT, Some(prefix), index, read)
                .await;
            index
        }
    }

    #[tokio::test]
    async fn blocked_list_ignores_writes_elsewhere() {
        let shared = memory_shared();
        let start = put(&shared, "pools/a", b"1");
        let mut query = pin!(blocked_list(&shared, "pools/", start));
        assert!(poll!(query.as_mut()).is_pending());

        put(&shared, "status/a", b"1");
        assert!(poll!(query.as_mut()).is_pending());
        let written = put(&shared, "pools/b", b"1");

        assert_eq!(query.await, written);
    }

    #[tokio::test]
    async fn blocked_list_wakes_on_delete() {
        let shared = memory_shared();
        put(&shared, "pools/a", b"1");
        let start = put(&shared, "pools/b", b"1");
        let mut query = pin!(blocked_list(&shared, "pools/", start));
        assert!(poll!(query.as_mut()).is_pending());

        let deleted = shared.mutate(|store, index, _| {
            assert!(store.delete("pools/a", false, None, index));
            index
        });

        assert_eq!(query.await, deleted);
    }

    #[tokio::test]
    async fn blocked_empty_prefix_follows_table() {
        let shared = memory_shared();
        let start = put(&shared, "status/a", b"1");
        let mut query = pin!(blocked_list(&shared, "pools/", start));
        assert!(poll!(query.as_mut()).is_pending());

        // The prefix is empty, so its index is the KV table index, which this write moves.
        let written = put(&shared, "status/b", b"1");

        assert_eq!(query.await, written);
    }

    #[tokio::test]
    async fn blocked_list_wakes_on_session_release() {
        let shared = memory_shared();
        let session = Session {
            id: "session-1".to_string(),
            name: String::new(),
            node: "steward-dev".to_string(),
            lock_delay_ns: 0,
            behavior: Behavior::Release,
            ttl: String::new(),
            ttl_duration: None,
            node_checks: Vec::new(),
            service_checks: None,
            create_index: 1,
            modify_index: 1,
        };
        let start = shared.mutate(|store, index, now| {
            store
                .data
                .sessions
                .insert(session.id.clone(), session.clone());
            let acquire = WriteMode::Acquire(session.id.clone());
            assert_eq!(
                store.set("pools/lock", b"me", 0, &acquire, index, now),
                Ok(true)
            );
            index
        });
        let mut query = pin!(blocked_list(&shared, "pools/", start));
        assert!(poll!(query.as_mut()).is_pending());

        let released = shared.mutate(|store, index, now| {
            assert!(store.invalidate_session("session-1", index, now));
            index
        });

        assert_eq!(query.await, released);
    }

    #[test]
    fn key_paths_clean_and_reject() {
        assert_eq!(
            key_from_path("/v1/kv/foo//bar").ok(),
            Some("foo/bar".to_string())
        );
        assert_eq!(key_from_path("/v1/kv/a/b/").ok(), Some("a/b/".to_string()));
        assert_eq!(key_from_path("/v1/kv/a%2Fb").ok(), Some("a/b".to_string()));
        assert!(key_from_path("/v1/kv/a/../b").is_err());
        assert!(key_from_path("/v1/kv/a/%2e%2e/b").is_err());
        assert!(key_from_path("/v1/kv/%20key").is_err());
    }
}
