//! The HTTP client: request plumbing, KV reads and writes, transactions and sessions.

use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use super::config::ClientConfig;
use super::duration::format_go_duration;
use super::error::{Error, Result, TxnError};
use super::keys::{encode_key_path, validate_key};
use crate::telemetry::RequestObserver;

/// The index and leader headers of a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueryMeta {
    /// `X-Consul-Index`.
    pub index: u64,
    /// `X-Consul-KnownLeader`.
    pub known_leader: bool,
    /// `X-Consul-LastContact` in milliseconds.
    pub last_contact_ms: u64,
}

/// Blocking-query parameters. `index: None` (or 0) returns at once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueryOptions {
    pub index: Option<u64>,
    /// How long the server may hold the request; Consul caps it at 10 minutes.
    pub wait: Option<Duration>,
}

impl QueryOptions {
    /// A blocking query that returns once the index passes `index` or `wait` ends.
    pub fn blocking(index: u64, wait: Duration) -> Self {
        Self {
            index: Some(index),
            wait: Some(wait),
        }
    }
}

/// One KV entry. An empty value (`"Value": null` on the wire) is an empty vector.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KvPair {
    pub key: String,
    pub value: Vec<u8>,
    pub flags: u64,
    pub create_index: u64,
    pub modify_index: u64,
    pub lock_index: u64,
    /// The session holding the lock on the key, if any.
    pub session: Option<String>,
}

/// A KV entry exactly as Consul's JSON carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WireKvPair {
    pub key: String,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub flags: u64,
    #[serde(default)]
    pub create_index: u64,
    #[serde(default)]
    pub modify_index: u64,
    #[serde(default)]
    pub lock_index: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
}

impl TryFrom<WireKvPair> for KvPair {
    type Error = String;

    fn try_from(wire: WireKvPair) -> std::result::Result<Self, String> {
        let value = match wire.value {
            Some(encoded) => BASE64
                .decode(encoded.as_bytes())
                .map_err(|e| format!("value of {:?} is not valid base64: {e}", wire.key))?,
            None => Vec::new(),
        };
        Ok(Self {
            key: wire.key,
            value,
            flags: wire.flags,
            create_index: wire.create_index,
            modify_index: wire.modify_index,
            lock_index: wire.lock_index,
            session: wire.session.filter(|s| !s.is_empty()),
        })
    }
}

/// The condition a KV write must meet to be applied.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum WriteMode {
    /// Write unconditionally (locks are advisory and do not stop it).
    #[default]
    Plain,
    /// Write only if the key's ModifyIndex equals this; 0 writes only if the key is absent.
    Cas(u64),
    /// Take the lock with this session; the write fails while another session holds it.
    Acquire(String),
    /// Give up the lock held by this session.
    Release(String),
}

/// One KV operation of a transaction. Verbs and fields follow `PUT /v1/txn`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOp {
    Set {
        key: String,
        value: Vec<u8>,
        flags: u64,
    },
    Cas {
        key: String,
        value: Vec<u8>,
        flags: u64,
        index: u64,
    },
    Lock {
        key: String,
        value: Vec<u8>,
        session: String,
    },
    Unlock {
        key: String,
        value: Vec<u8>,
        session: String,
    },
    Get {
        key: String,
    },
    GetTree {
        key: String,
    },
    CheckIndex {
        key: String,
        index: u64,
    },
    CheckSession {
        key: String,
        session: String,
    },
    CheckNotExists {
        key: String,
    },
    Delete {
        key: String,
    },
    DeleteTree {
        key: String,
    },
    DeleteCas {
        key: String,
        index: u64,
    },
}

impl TxnOp {
    fn key(&self) -> &str {
        match self {
            Self::Set { key, .. }
            | Self::Cas { key, .. }
            | Self::Lock { key, .. }
            | Self::Unlock { key, .. }
            | Self::Get { key }
            | Self::GetTree { key }
            | Self::CheckIndex { key, .. }
            | Self::CheckSession { key, .. }
            | Self::CheckNotExists { key }
            | Self::Delete { key }
            | Self::DeleteTree { key }
            | Self::DeleteCas { key, .. } => key,
        }
    }

    fn to_wire(&self) -> serde_json::Value {
        let (verb, value, flags, index, session) = match self {
            Self::Set { value, flags, .. } => ("set", Some(value), *flags, 0, None),
            Self::Cas {
                value,
                flags,
                index,
                ..
            } => ("cas", Some(value), *flags, *index, None),
            Self::Lock { value, session, .. } => ("lock", Some(value), 0, 0, Some(session)),
            Self::Unlock { value, session, .. } => ("unlock", Some(value), 0, 0, Some(session)),
            Self::Get { .. } => ("get", None, 0, 0, None),
            Self::GetTree { .. } => ("get-tree", None, 0, 0, None),
            Self::CheckIndex { index, .. } => ("check-index", None, 0, *index, None),
            Self::CheckSession { session, .. } => ("check-session", None, 0, 0, Some(session)),
            Self::CheckNotExists { .. } => ("check-not-exists", None, 0, 0, None),
            Self::Delete { .. } => ("delete", None, 0, 0, None),
            Self::DeleteTree { .. } => ("delete-tree", None, 0, 0, None),
            Self::DeleteCas { index, .. } => ("delete-cas", None, 0, *index, None),
        };
        let mut kv = serde_json::json!({ "Verb": verb, "Key": self.key() });
        if let Some(value) = value {
            kv["Value"] = serde_json::Value::String(BASE64.encode(value));
        }
        if flags != 0 {
            kv["Flags"] = flags.into();
        }
        if index != 0 {
            kv["Index"] = index.into();
        }
        if let Some(session) = session {
            kv["Session"] = session.clone().into();
        }
        serde_json::json!({ "KV": kv })
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TxnResponse {
    results: Option<Vec<TxnResult>>,
    errors: Option<Vec<TxnError>>,
}

#[derive(Debug, Deserialize)]
struct TxnResult {
    #[serde(rename = "KV")]
    kv: Option<WireKvPair>,
}

/// The fate of a session's locks when the session is invalidated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionBehavior {
    /// Locks are released and the keys stay.
    #[default]
    Release,
    /// The locked keys are deleted.
    Delete,
}

/// The body of `PUT /v1/session/create`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionRequest {
    pub name: String,
    /// Defaults to the agent's node.
    pub node: Option<String>,
    /// How long the locks of an invalidated session stay unavailable (0 to 60 s).
    pub lock_delay: Duration,
    pub behavior: SessionBehavior,
    /// Between 10 s and 24 h; `None` for a session that lives until destroyed or its checks fail.
    pub ttl: Option<Duration>,
    /// Node checks; `None` keeps Consul's default (`serfHealth`).
    pub node_checks: Option<Vec<String>>,
}

/// A session as `/v1/session/info` and `/v1/session/renew` return it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SessionInfo {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub node: String,
    /// Nanoseconds.
    #[serde(default)]
    pub lock_delay: u64,
    #[serde(default)]
    pub behavior: SessionBehavior,
    /// Such as `"30s"`; empty without a TTL.
    #[serde(rename = "TTL", default)]
    pub ttl: String,
    #[serde(default)]
    pub node_checks: Option<Vec<String>>,
    #[serde(default)]
    pub service_checks: Option<Vec<serde_json::Value>>,
    #[serde(default)]
    pub create_index: u64,
    #[serde(default)]
    pub modify_index: u64,
}

impl SessionInfo {
    /// Returns the TTL as a duration, if the session has one and it parses.
    pub fn ttl_duration(&self) -> Option<Duration> {
        super::duration::parse_go_duration(&self.ttl)
    }
}

/// A Consul HTTP API client. Cheap to clone; clones share the connection pool.
#[derive(Clone)]
pub struct ConsulClient {
    http: reqwest::Client,
    config: Arc<ClientConfig>,
    observer: Option<Arc<dyn RequestObserver>>,
}

impl std::fmt::Debug for ConsulClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsulClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

static INSTALL_CRYPTO_PROVIDER: Once = Once::new();

/// Installs rustls' ring provider, which reqwest's `rustls-no-provider` feature expects.
fn install_crypto_provider() {
    INSTALL_CRYPTO_PROVIDER.call_once(|| {
        // An error means another provider is already installed, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The parts of a response that callers need.
struct Answer {
    status: StatusCode,
    meta: QueryMeta,
    body: bytes::Bytes,
}

impl ConsulClient {
    /// Builds a client. No client-wide timeout is set, because a blocking query may
    /// legitimately last `wait × 17/16`; every request gets its own timeout instead.
    pub fn new(config: ClientConfig) -> Result<Self> {
        install_crypto_provider();
        let mut builder = reqwest::Client::builder().connect_timeout(config.connect_timeout);
        if let Some(pem) = &config.ca_cert_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| Error::Config {
                message: format!("invalid CA certificate PEM: {e}"),
            })?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        if let Some(pem) = &config.identity_pem {
            let identity = reqwest::Identity::from_pem(pem).map_err(|e| Error::Config {
                message: format!("invalid client certificate or key PEM: {e}"),
            })?;
            builder = builder.identity(identity);
        }
        let http = builder.build().map_err(|e| Error::Config {
            message: format!("failed to build the HTTP client: {e}"),
        })?;
        Ok(Self {
            http,
            config: Arc::new(config),
            observer: None,
        })
    }

    /// Builds a client for `base_url` with default settings.
    pub fn for_url(base_url: impl Into<String>) -> Result<Self> {
        Self::new(ClientConfig::new(base_url))
    }

    /// Reports every request to `observer`.
    pub fn with_observer(mut self, observer: Arc<dyn RequestObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Returns whether an observer is set.
    pub fn has_observer(&self) -> bool {
        self.observer.is_some()
    }

    /// Returns the base URL.
    pub fn base_url(&self) -> &str {
        &self.config.base_url
    }

    /// Returns the largest number of operations this client sends in one transaction.
    pub fn txn_max_ops(&self) -> usize {
        self.config.txn_max_ops
    }

    /// Sends one request and maps transport failures and 403, 413, 429 and 5xx to errors.
    /// Other statuses are returned for the caller to interpret.
    async fn send(
        &self,
        method: Method,
        endpoint: &'static str,
        path: &str,
        query: &[(&str, String)],
        body: Option<Vec<u8>>,
        wait: Option<Duration>,
    ) -> Result<Answer> {
        let url = format!("{}{}", self.config.base_url, path);
        let timeout = match wait {
            // Consul holds a blocking query up to `wait` plus `wait/16` of jitter.
            Some(wait) => wait + wait / 16 + self.config.blocking_margin,
            None => self.config.request_timeout,
        };
        let mut request = self
            .http
            .request(method.clone(), &url)
            .query(query)
            .timeout(timeout);
        if let Some(token) = &self.config.token {
            request = request.header("X-Consul-Token", &token.0);
        }
        if let Some(body) = body {
            request = request.body(body);
        }

        let started = Instant::now();
        let result = request.send().await;
        let response = match result {
            Ok(response) => response,
            Err(e) => {
                self.observe(endpoint, None, started);
                return Err(if e.is_timeout() {
                    Error::Timeout {
                        endpoint: path.to_string(),
                        timeout,
                    }
                } else {
                    Error::Unavailable {
                        endpoint: path.to_string(),
                        status: None,
                        message: error_chain(&e),
                    }
                });
            }
        };
        let status = response.status();
        let meta = query_meta(response.headers());
        // Consul returns 404 for a missing key and still sends X-Consul-Index, and never
        // returns 404 for a transaction. A 404 without the header comes from another server at
        // this address (Nomad, a metrics port), and read as "no keys" it would make every
        // pool look deleted.
        if status == StatusCode::NOT_FOUND
            && (endpoint == "/v1/kv/:key" || endpoint == "/v1/txn")
            && !response.headers().contains_key("x-consul-index")
        {
            self.observe(endpoint, Some(status.as_u16()), started);
            return Err(Error::Decode {
                endpoint: path.to_string(),
                message: format!(
                    "the server at {} answered 404 without an X-Consul-Index header, so it is \
                     not a Consul agent; check CONSUL_HTTP_ADDR or --consul-addr",
                    self.config.base_url
                ),
            });
        }
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(e) => {
                self.observe(endpoint, Some(status.as_u16()), started);
                return Err(if e.is_timeout() {
                    Error::Timeout {
                        endpoint: path.to_string(),
                        timeout,
                    }
                } else {
                    Error::Unavailable {
                        endpoint: path.to_string(),
                        status: Some(status.as_u16()),
                        message: error_chain(&e),
                    }
                });
            }
        };
        self.observe(endpoint, Some(status.as_u16()), started);
        tracing::trace!(%method, endpoint, status = status.as_u16(), index = meta.index, "consul request");

        let message = || String::from_utf8_lossy(&body).trim().to_string();
        match status {
            StatusCode::FORBIDDEN => Err(Error::PermissionDenied {
                endpoint: path.to_string(),
                message: message(),
            }),
            StatusCode::PAYLOAD_TOO_LARGE => Err(Error::TooLarge {
                endpoint: path.to_string(),
                message: message(),
            }),
            s if s == StatusCode::TOO_MANY_REQUESTS || s.is_server_error() => {
                let text = message();
                if text.contains("invalid key name") {
                    // Consul 1.21.5 returned 500 for key names it rejected.
                    return Err(Error::InvalidKey {
                        key: path.to_string(),
                        message: text,
                    });
                }
                Err(Error::Unavailable {
                    endpoint: path.to_string(),
                    status: Some(s.as_u16()),
                    message: text,
                })
            }
            _ => Ok(Answer { status, meta, body }),
        }
    }

    /// Reports one request to the observer as system `consul`, with status 0 when no
    /// response arrived.
    fn observe(&self, endpoint: &'static str, status: Option<u16>, started: Instant) {
        if let Some(observer) = &self.observer {
            let seconds = started.elapsed().as_secs_f64();
            observer.observe("consul", endpoint, status.unwrap_or(0), seconds);
        }
    }

    fn kv_path(key: &str) -> String {
        format!("/v1/kv/{}", encode_key_path(key))
    }

    fn blocking_query(options: &QueryOptions) -> (Vec<(&'static str, String)>, Option<Duration>) {
        let mut query = Vec::new();
        let mut wait = None;
        if let Some(index) = options.index.filter(|i| *i > 0) {
            query.push(("index", index.to_string()));
            let w = options.wait.unwrap_or(Duration::from_secs(300));
            query.push(("wait", format_go_duration(w)));
            wait = Some(w);
        }
        (query, wait)
    }

    // -----------------------------------------------------------------------------------------
    // KV

    /// Reads one key. A missing key is `Ok(None)`.
    pub async fn kv_get(&self, key: &str) -> Result<Option<KvPair>> {
        Ok(self.kv_get_with(key, &QueryOptions::default()).await?.0)
    }

    /// Reads one key, blocking per `options`, and returns the index headers too.
    pub async fn kv_get_with(
        &self,
        key: &str,
        options: &QueryOptions,
    ) -> Result<(Option<KvPair>, QueryMeta)> {
        validate_key(key)?;
        let path = Self::kv_path(key);
        let (query, wait) = Self::blocking_query(options);
        let answer = self
            .send(Method::GET, "/v1/kv/:key", &path, &query, None, wait)
            .await?;
        match answer.status {
            StatusCode::NOT_FOUND => Ok((None, answer.meta)),
            StatusCode::OK => {
                let mut pairs = decode_pairs(&path, &answer.body)?;
                Ok((pairs.drain(..).next(), answer.meta))
            }
            status => Err(rejected(&path, status, &answer.body)),
        }
    }

    /// Reads every entry under `prefix` (`?recurse`). No entry is an empty list.
    pub async fn kv_list(
        &self,
        prefix: &str,
        options: &QueryOptions,
    ) -> Result<(Vec<KvPair>, QueryMeta)> {
        validate_key(prefix)?;
        let path = Self::kv_path(prefix);
        let (mut query, wait) = Self::blocking_query(options);
        query.push(("recurse", String::new()));
        let answer = self
            .send(Method::GET, "/v1/kv/:key", &path, &query, None, wait)
            .await?;
        match answer.status {
            StatusCode::NOT_FOUND => Ok((Vec::new(), answer.meta)),
            StatusCode::OK => Ok((decode_pairs(&path, &answer.body)?, answer.meta)),
            status => Err(rejected(&path, status, &answer.body)),
        }
    }

    /// Lists the key names under `prefix` (`?keys`), rolled up at `separator` if given.
    pub async fn kv_keys(
        &self,
        prefix: &str,
        separator: Option<&str>,
        options: &QueryOptions,
    ) -> Result<(Vec<String>, QueryMeta)> {
        validate_key(prefix)?;
        let path = Self::kv_path(prefix);
        let (mut query, wait) = Self::blocking_query(options);
        query.push(("keys", String::new()));
        if let Some(separator) = separator {
            query.push(("separator", separator.to_string()));
        }
        let answer = self
            .send(Method::GET, "/v1/kv/:key", &path, &query, None, wait)
            .await?;
        match answer.status {
            StatusCode::NOT_FOUND => Ok((Vec::new(), answer.meta)),
            StatusCode::OK => {
                let keys = serde_json::from_slice(&answer.body).map_err(|e| Error::Decode {
                    endpoint: path.clone(),
                    message: e.to_string(),
                })?;
                Ok((keys, answer.meta))
            }
            status => Err(rejected(&path, status, &answer.body)),
        }
    }

    /// Reads one key's value bytes (`?raw`). A missing key is `Ok(None)`.
    pub async fn kv_get_raw(&self, key: &str) -> Result<Option<Vec<u8>>> {
        validate_key(key)?;
        let path = Self::kv_path(key);
        let answer = self
            .send(
                Method::GET,
                "/v1/kv/:key",
                &path,
                &[("raw", String::new())],
                None,
                None,
            )
            .await?;
        match answer.status {
            StatusCode::NOT_FOUND => Ok(None),
            StatusCode::OK => Ok(Some(answer.body.to_vec())),
            status => Err(rejected(&path, status, &answer.body)),
        }
    }

    /// Writes `value` under `key`. Returns Consul's result: always `true` for a plain write,
    /// and whether the CAS, acquire or release succeeded otherwise. An unchanged value moves
    /// no ModifyIndex and wakes no watcher.
    pub async fn kv_put(
        &self,
        key: &str,
        value: &[u8],
        flags: Option<u64>,
        mode: &WriteMode,
    ) -> Result<bool> {
        validate_key(key)?;
        let path = Self::kv_path(key);
        let mut query = Vec::new();
        if let Some(flags) = flags {
            query.push(("flags", flags.to_string()));
        }
        match mode {
            WriteMode::Plain => {}
            WriteMode::Cas(index) => query.push(("cas", index.to_string())),
            WriteMode::Acquire(session) => query.push(("acquire", session.clone())),
            WriteMode::Release(session) => query.push(("release", session.clone())),
        }
        let sent = self
            .send(
                Method::PUT,
                "/v1/kv/:key",
                &path,
                &query,
                Some(value.to_vec()),
                None,
            )
            .await;
        let answer = match (sent, mode) {
            // Consul returns 500 "invalid session" when the acquiring or releasing session
            // does not exist; that is permanent for this session id.
            (
                Err(Error::Unavailable { message, .. }),
                WriteMode::Acquire(session) | WriteMode::Release(session),
            ) if message.contains("invalid session") => {
                return Err(Error::SessionNotFound {
                    id: session.clone(),
                });
            }
            (sent, _) => sent?,
        };
        decode_bool(&path, key, answer)
    }

    /// Writes `value` only if the key's ModifyIndex is `index` (0: only if absent).
    /// A mismatch is [`Error::CasConflict`].
    pub async fn kv_put_cas(&self, key: &str, value: &[u8], index: u64) -> Result<()> {
        if self
            .kv_put(key, value, None, &WriteMode::Cas(index))
            .await?
        {
            Ok(())
        } else {
            Err(Error::CasConflict {
                key: key.to_string(),
                expected_index: index,
            })
        }
    }

    /// Deletes one key. With `cas`, deletes only if its ModifyIndex matches (a mismatch is
    /// [`Error::CasConflict`]); a key that is already gone counts as deleted.
    pub async fn kv_delete(&self, key: &str, cas: Option<u64>) -> Result<()> {
        validate_key(key)?;
        let path = Self::kv_path(key);
        let query: Vec<(&str, String)> = cas.iter().map(|i| ("cas", i.to_string())).collect();
        let answer = self
            .send(Method::DELETE, "/v1/kv/:key", &path, &query, None, None)
            .await?;
        if decode_bool(&path, key, answer)? {
            Ok(())
        } else {
            Err(Error::CasConflict {
                key: key.to_string(),
                expected_index: cas.unwrap_or(0),
            })
        }
    }

    /// Deletes every key under `prefix`.
    pub async fn kv_delete_tree(&self, prefix: &str) -> Result<()> {
        validate_key(prefix)?;
        let path = Self::kv_path(prefix);
        let answer = self
            .send(
                Method::DELETE,
                "/v1/kv/:key",
                &path,
                &[("recurse", String::new())],
                None,
                None,
            )
            .await?;
        decode_bool(&path, prefix, answer).map(|_| ())
    }

    // -----------------------------------------------------------------------------------------
    // Transactions

    /// Runs `ops` atomically. Returns the result entries (values only for `get` and
    /// `get-tree`). A rollback is [`Error::TxnRollback`]; more operations than the server
    /// accepts is [`Error::TooLarge`].
    pub async fn txn(&self, ops: &[TxnOp]) -> Result<Vec<KvPair>> {
        for op in ops {
            validate_key(op.key())?;
        }
        let body: Vec<serde_json::Value> = ops.iter().map(TxnOp::to_wire).collect();
        let body = serde_json::to_vec(&body).map_err(|e| Error::Decode {
            endpoint: "/v1/txn".to_string(),
            message: e.to_string(),
        })?;
        let answer = self
            .send(Method::PUT, "/v1/txn", "/v1/txn", &[], Some(body), None)
            .await?;
        match answer.status {
            StatusCode::OK | StatusCode::CONFLICT => {
                let response: TxnResponse =
                    serde_json::from_slice(&answer.body).map_err(|e| Error::Decode {
                        endpoint: "/v1/txn".to_string(),
                        message: e.to_string(),
                    })?;
                if let Some(errors) = response.errors.filter(|e| !e.is_empty()) {
                    return Err(Error::TxnRollback { errors });
                }
                let mut pairs = Vec::new();
                for result in response.results.unwrap_or_default() {
                    if let Some(wire) = result.kv {
                        pairs.push(KvPair::try_from(wire).map_err(|message| Error::Decode {
                            endpoint: "/v1/txn".to_string(),
                            message,
                        })?);
                    }
                }
                Ok(pairs)
            }
            status => Err(rejected("/v1/txn", status, &answer.body)),
        }
    }

    /// Runs `ops` in consecutive transactions of at most [`ConsulClient::txn_max_ops`]
    /// operations, halving a batch that the server still rejects as too large (HTTP 413).
    /// NOTE: only each batch is atomic, so put operations that must apply together in one
    /// call to [`ConsulClient::txn`] instead.
    pub async fn txn_batched(&self, ops: &[TxnOp]) -> Result<Vec<KvPair>> {
        let mut pairs = Vec::new();
        let mut pending: Vec<&[TxnOp]> = ops.chunks(self.config.txn_max_ops.max(1)).rev().collect();
        while let Some(batch) = pending.pop() {
            match self.txn(batch).await {
                Ok(results) => pairs.extend(results),
                Err(Error::TooLarge { message, .. }) if batch.len() > 1 => {
                    tracing::debug!(ops = batch.len(), %message, "consul transaction too large; splitting it");
                    let (first, second) = batch.split_at(batch.len() / 2);
                    pending.push(second);
                    pending.push(first);
                }
                Err(error) => return Err(error),
            }
        }
        Ok(pairs)
    }

    // -----------------------------------------------------------------------------------------
    // Sessions

    /// Creates a session and returns its id.
    pub async fn session_create(&self, request: &SessionRequest) -> Result<String> {
        let mut body = serde_json::json!({
            "Name": request.name,
            "LockDelay": format_go_duration(request.lock_delay),
            "Behavior": request.behavior,
        });
        if let Some(node) = &request.node {
            body["Node"] = node.clone().into();
        }
        if let Some(ttl) = request.ttl {
            body["TTL"] = format!("{}s", ttl.as_secs()).into();
        }
        if let Some(checks) = &request.node_checks {
            body["NodeChecks"] = checks.clone().into();
        }
        let path = "/v1/session/create";
        let answer = self
            .send(
                Method::PUT,
                "/v1/session/create",
                path,
                &[],
                Some(body.to_string().into_bytes()),
                None,
            )
            .await?;
        if answer.status != StatusCode::OK {
            return Err(rejected(path, answer.status, &answer.body));
        }
        #[derive(Deserialize)]
        struct Created {
            #[serde(rename = "ID")]
            id: String,
        }
        let created: Created = serde_json::from_slice(&answer.body).map_err(|e| Error::Decode {
            endpoint: path.to_string(),
            message: e.to_string(),
        })?;
        Ok(created.id)
    }

    /// Renews a session's TTL. Consul may return a longer TTL than requested, and callers
    /// must then renew on the returned one. An unknown or expired session is
    /// [`Error::SessionNotFound`].
    pub async fn session_renew(&self, id: &str) -> Result<SessionInfo> {
        let path = format!("/v1/session/renew/{}", encode_key_path(id));
        let answer = self
            .send(Method::PUT, "/v1/session/renew/:id", &path, &[], None, None)
            .await?;
        match answer.status {
            StatusCode::NOT_FOUND => Err(Error::SessionNotFound { id: id.to_string() }),
            StatusCode::OK => {
                let mut sessions: Vec<SessionInfo> = decode_json(&path, &answer.body)?;
                sessions
                    .pop()
                    .ok_or_else(|| Error::SessionNotFound { id: id.to_string() })
            }
            status => Err(rejected(&path, status, &answer.body)),
        }
    }

    /// Destroys a session, releasing or deleting its locks. Destroying an unknown id succeeds.
    pub async fn session_destroy(&self, id: &str) -> Result<()> {
        let path = format!("/v1/session/destroy/{}", encode_key_path(id));
        let answer = self
            .send(
                Method::PUT,
                "/v1/session/destroy/:id",
                &path,
                &[],
                None,
                None,
            )
            .await?;
        decode_bool(&path, id, answer).map(|_| ())
    }

    /// Reads a session; `Ok(None)` when it does not exist.
    pub async fn session_info(&self, id: &str) -> Result<Option<SessionInfo>> {
        let path = format!("/v1/session/info/{}", encode_key_path(id));
        let answer = self
            .send(Method::GET, "/v1/session/info/:id", &path, &[], None, None)
            .await?;
        if answer.status != StatusCode::OK {
            return Err(rejected(&path, answer.status, &answer.body));
        }
        let mut sessions: Vec<SessionInfo> = decode_json(&path, &answer.body)?;
        Ok(sessions.pop())
    }

    /// Lists every session.
    pub async fn session_list(&self) -> Result<Vec<SessionInfo>> {
        let path = "/v1/session/list";
        let answer = self
            .send(Method::GET, "/v1/session/list", path, &[], None, None)
            .await?;
        if answer.status != StatusCode::OK {
            return Err(rejected(path, answer.status, &answer.body));
        }
        decode_json(path, &answer.body)
    }

    /// Returns the Raft leader's address (`/v1/status/leader`); empty when there is none.
    pub async fn status_leader(&self) -> Result<String> {
        let path = "/v1/status/leader";
        let answer = self
            .send(Method::GET, "/v1/status/leader", path, &[], None, None)
            .await?;
        if answer.status != StatusCode::OK {
            return Err(rejected(path, answer.status, &answer.body));
        }
        decode_json(path, &answer.body)
    }
}

fn query_meta(headers: &reqwest::header::HeaderMap) -> QueryMeta {
    let number = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    QueryMeta {
        index: number("x-consul-index"),
        known_leader: headers
            .get("x-consul-knownleader")
            .and_then(|v| v.to_str().ok())
            == Some("true"),
        last_contact_ms: number("x-consul-lastcontact"),
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

fn rejected(path: &str, status: StatusCode, body: &[u8]) -> Error {
    let message = String::from_utf8_lossy(body).trim().to_string();
    if status == StatusCode::BAD_REQUEST
        && (message.contains("invalid key") || message.contains("Missing key name"))
    {
        return Error::InvalidKey {
            key: path.to_string(),
            message,
        };
    }
    Error::Rejected {
        endpoint: path.to_string(),
        status: status.as_u16(),
        message,
    }
}

fn decode_json<T: serde::de::DeserializeOwned>(path: &str, body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| Error::Decode {
        endpoint: path.to_string(),
        message: e.to_string(),
    })
}

fn decode_pairs(path: &str, body: &[u8]) -> Result<Vec<KvPair>> {
    let wire: Vec<WireKvPair> = decode_json(path, body)?;
    wire.into_iter()
        .map(|w| {
            KvPair::try_from(w).map_err(|message| Error::Decode {
                endpoint: path.to_string(),
                message,
            })
        })
        .collect()
}

fn decode_bool(path: &str, key: &str, answer: Answer) -> Result<bool> {
    match answer.status {
        StatusCode::OK => decode_json(path, &answer.body),
        StatusCode::BAD_REQUEST => {
            let message = String::from_utf8_lossy(&answer.body).trim().to_string();
            if message.contains("Conflicting flags") {
                Err(rejected(path, answer.status, &answer.body))
            } else {
                Err(Error::InvalidKey {
                    key: key.to_string(),
                    message,
                })
            }
        }
        status => Err(rejected(path, status, &answer.body)),
    }
}
