//! The HTTP surface: `/v1/` routes with Nomad's paths, blocking queries and plain-text
//! errors, and the `/_sim/` fault-injection routes.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use rand::Rng;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::clock::SimClock;
use super::events::{
    DEFAULT_EVENT_BUFFER_SIZE, DEFAULT_EVENT_HEARTBEAT, EventHub, EventType, Subject, Subscription,
    stream_response,
};
use super::jobs::{self, ApiError, RegisterRequest, ScaleRequest};
use super::lifecycle::{fail_deployment, promote_canaries};
use super::nodes;
use super::render;
use super::state::{Cluster, DeploymentStatus, ImageBehaviour, JobKey, SimAlloc, Table};
use crate::nomad::model::{AllocListStub, Job, parse_go_duration};

/// Maximum blocking wait Nomad allows (`MaxBlockingRPCQueryTime`), in seconds.
pub const MAX_BLOCKING_SECONDS: u64 = 300;

/// State shared by the HTTP handlers and the ticker.
#[derive(Debug)]
pub struct Shared {
    pub cluster: Mutex<Cluster>,
    pub clock: SimClock,
    /// The event stream's buffer and subscriptions.
    pub events: EventHub,
    watches: Vec<watch::Sender<u64>>,
}

fn table_slot(table: Table) -> usize {
    Table::ALL
        .iter()
        .position(|candidate| *candidate == table)
        .expect("Table::ALL lists every table")
}

impl Shared {
    /// Wraps a cluster and starts one watch channel per table, with an event buffer of the
    /// default size and heartbeat interval.
    pub fn new(cluster: Cluster, clock: SimClock) -> Self {
        Self::with_events(
            cluster,
            clock,
            EventHub::new(DEFAULT_EVENT_BUFFER_SIZE, DEFAULT_EVENT_HEARTBEAT),
        )
    }

    /// Wraps a cluster with the given event hub, and publishes the changes made while the
    /// cluster was built.
    pub fn with_events(mut cluster: Cluster, clock: SimClock, events: EventHub) -> Self {
        events.publish(&mut cluster);
        let watches = Table::ALL
            .iter()
            .map(|table| watch::channel(cluster.tables.get(*table)).0)
            .collect();
        Self {
            cluster: Mutex::new(cluster),
            clock,
            events,
            watches,
        }
    }

    /// Locks the cluster. A poisoned lock still holds consistent tables, because every
    /// write finishes before it can panic, so the guard is taken back.
    pub fn lock(&self) -> MutexGuard<'_, Cluster> {
        self.cluster
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs a write under the lock, then wakes the waiters of every table it moved.
    pub fn write<T>(&self, change: impl FnOnce(&mut Cluster, i64) -> T) -> T {
        let now_ns = self.clock.now_ns();
        let mut cluster = self.lock();
        let result = change(&mut cluster, now_ns);
        cluster.commit();
        self.events.publish(&mut cluster);
        let tables = cluster.tables;
        drop(cluster);
        for table in Table::ALL {
            let index = tables.get(table);
            self.watches[table_slot(table)].send_if_modified(|current| {
                let moved = *current != index;
                *current = index;
                moved
            });
        }
        result
    }

    fn subscribe(&self, table: Table) -> watch::Receiver<u64> {
        self.watches[table_slot(table)].subscribe()
    }
}

type AppState = Arc<Shared>;
type Params = Query<HashMap<String, String>>;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.message).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        response
    }
}

fn json_response(index: u64, body: &impl serde::Serialize, read: bool) -> Response {
    encoded_json_response(index, serde_json::to_string(body), read)
}

/// Builds a JSON response from a body that is already encoded.
fn encoded_json_response(
    index: u64,
    text: Result<String, serde_json::Error>,
    read: bool,
) -> Response {
    let text = match text {
        Ok(text) => text,
        Err(error) => {
            tracing::error!(%error, "failed to encode a response body");
            return ApiError::internal(format!("failed to encode the response: {error}"))
                .into_response();
        }
    };
    let mut response = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        text,
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert("X-Nomad-Index", HeaderValue::from(index));
    if read {
        headers.insert("X-Nomad-KnownLeader", HeaderValue::from_static("true"));
        headers.insert("X-Nomad-LastContact", HeaderValue::from_static("0"));
    }
    response
}

/// Returns how long a blocking query waits: `wait` (300 s when missing or ≤ 0) capped at
/// 300 s, plus a random jitter of up to a sixteenth of it, as Nomad's `blockingRPC` does.
pub fn block_duration(wait: Option<Duration>, rng: &mut impl Rng) -> Duration {
    let cap = Duration::from_secs(MAX_BLOCKING_SECONDS);
    let wait = match wait {
        Some(wait) if !wait.is_zero() => wait.min(cap),
        _ => cap,
    };
    let jitter_ns = rng.random_range(0..=wait.as_nanos() as u64 / 16);
    wait + Duration::from_nanos(jitter_ns)
}

fn check_available(shared: &Shared) -> Result<(), ApiError> {
    let until = shared.lock().unavailable_until_ns;
    if shared.clock.now_ns() < until {
        return Err(ApiError::internal("No cluster leader"));
    }
    Ok(())
}

/// Serves a blocking read. `read` computes `(index, body)`, and the response waits while
/// the index is not above `?index=` and the wait has not run out. Only query parameters count.
async fn blocking<B: serde::Serialize>(
    shared: &Shared,
    params: &HashMap<String, String>,
    tables: &[Table],
    read: impl Fn(&Cluster) -> Result<(u64, B), (u64, ApiError)>,
) -> Response {
    blocking_encoded(shared, params, tables, read, |body| {
        serde_json::to_string(&body)
    })
    .await
}

/// Serves a blocking read like [`blocking`], with `encode` turning the body into JSON text
/// after the lock is released.
async fn blocking_encoded<B>(
    shared: &Shared,
    params: &HashMap<String, String>,
    tables: &[Table],
    read: impl Fn(&Cluster) -> Result<(u64, B), (u64, ApiError)>,
    encode: impl Fn(B) -> Result<String, serde_json::Error>,
) -> Response {
    if let Err(error) = check_available(shared) {
        return error.into_response();
    }
    let min_index = match params.get("index").map(|text| text.parse::<u64>()) {
        None => 0,
        Some(Ok(index)) => index,
        Some(Err(_)) => return ApiError::bad_request("Invalid index").into_response(),
    };
    let wait = match params.get("wait").map(|text| parse_go_duration(text)) {
        None => None,
        Some(Ok(ns)) => Some(Duration::from_nanos(u64::try_from(ns).unwrap_or(0))),
        Some(Err(_)) => return ApiError::bad_request("Invalid wait time").into_response(),
    };
    let simulated = block_duration(wait, &mut rand::rng());
    let deadline = tokio::time::Instant::now() + shared.clock.to_wall(simulated);
    let mut receivers: Vec<_> = tables
        .iter()
        .map(|table| shared.subscribe(*table))
        .collect();

    loop {
        for receiver in receivers.iter_mut() {
            receiver.borrow_and_update();
        }
        let result = read(&shared.lock());
        let (index, body) = match result {
            Ok(found) => found,
            Err((index, error)) => {
                let mut response = error.into_response();
                response
                    .headers_mut()
                    .insert("X-Nomad-Index", HeaderValue::from(index));
                return response;
            }
        };
        if min_index == 0 || index > min_index || tokio::time::Instant::now() >= deadline {
            return encoded_json_response(index, encode(body), true);
        }
        let changes = receivers
            .iter_mut()
            .map(|receiver| Box::pin(receiver.changed()))
            .collect::<Vec<_>>();
        tokio::select! {
            // A table this read depends on moved: read again.
            _ = futures::future::select_all(changes) => {}
            // The wait ran out: respond with the unchanged data.
            () = tokio::time::sleep_until(deadline) => {}
        }
    }
}

fn namespace(params: &HashMap<String, String>) -> String {
    params
        .get("namespace")
        .filter(|ns| !ns.is_empty())
        .cloned()
        .unwrap_or_else(|| "default".to_owned())
}

fn write_response(outcome: &jobs::WriteOutcome) -> Response {
    json_response(
        outcome.index,
        &json!({
            "EvalID": outcome.eval_id,
            "EvalCreateIndex": outcome.eval_create_index,
            "JobModifyIndex": outcome.job_modify_index,
            "Warnings": "",
            "Index": outcome.index,
            "LastContact": 0,
            "KnownLeader": false,
        }),
        false,
    )
}

fn parse_body(body: &Bytes) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Err(ApiError::bad_request("Request body is empty"));
    }
    serde_json::from_slice(body)
        .map_err(|error| ApiError::bad_request(format!("Failed to decode request body: {error}")))
}

/// Builds the router for a running emulator.
pub fn router(shared: AppState) -> Router {
    Router::new()
        .route(
            "/v1/jobs",
            get(list_jobs).post(register_job).put(register_job),
        )
        .route(
            "/v1/job/{id}",
            get(read_job)
                .post(register_job_at)
                .put(register_job_at)
                .delete(delete_job),
        )
        .route("/v1/job/{id}/versions", get(job_versions))
        .route("/v1/job/{id}/allocations", get(job_allocations))
        .route("/v1/job/{id}/evaluations", get(job_evaluations))
        .route("/v1/job/{id}/deployments", get(job_deployments))
        .route("/v1/job/{id}/deployment", get(job_latest_deployment))
        .route("/v1/job/{id}/summary", get(job_summary))
        .route(
            "/v1/job/{id}/scale",
            get(scale_status).post(scale_job).put(scale_job),
        )
        .route(
            "/v1/job/{id}/dispatch",
            post(dispatch_job).put(dispatch_job),
        )
        .route("/v1/nodes", get(list_nodes))
        .route("/v1/node/{id}", get(read_node))
        .route("/v1/node/{id}/allocations", get(node_allocations))
        .route("/v1/node/{id}/drain", post(drain_node).put(drain_node))
        .route(
            "/v1/node/{id}/eligibility",
            post(node_eligibility).put(node_eligibility),
        )
        .route("/v1/allocations", get(list_allocs))
        .route("/v1/allocation/{id}", get(read_alloc))
        .route("/v1/allocation/{id}/stop", post(stop_alloc).put(stop_alloc))
        .route("/v1/evaluations", get(list_evals))
        .route("/v1/evaluation/{id}", get(read_eval))
        .route("/v1/evaluation/{id}/allocations", get(eval_allocs))
        .route("/v1/deployments", get(list_deployments))
        .route("/v1/deployment/{id}", get(read_deployment))
        .route("/v1/deployment/allocations/{id}", get(deployment_allocs))
        .route("/v1/deployment/promote/{id}", post(promote).put(promote))
        .route("/v1/deployment/fail/{id}", post(fail).put(fail))
        .route("/v1/deployment/pause/{id}", post(pause).put(pause))
        .route(
            "/v1/deployment/allocation-health/{id}",
            post(allocation_health).put(allocation_health),
        )
        .route("/v1/status/leader", get(leader))
        .route("/v1/event/stream", get(event_stream))
        .route("/_sim/nodes/{id}/fail", post(sim_fail_node))
        .route("/_sim/nodes/{id}/recover", post(sim_recover_node))
        .route("/_sim/datacenters/{dc}/fail", post(sim_fail_dc))
        .route("/_sim/datacenters/{dc}/recover", post(sim_recover_dc))
        .route("/_sim/images", put(sim_image).post(sim_image))
        .route("/_sim/unavailable", post(sim_unavailable))
        .route("/_sim/state", get(sim_state))
        .route("/_sim/event-stream/close", post(sim_close_streams))
        .route("/_sim/event-stream/silence", post(sim_silence_streams))
        .route("/_sim/event-stream/recover", post(sim_recover_streams))
        .with_state(shared)
}

/// `GET /v1/event/stream`. Repeated `topic` parameters need the raw query, because the
/// map extractor keeps one value per name.
async fn event_stream(State(shared): State<AppState>, RawQuery(query): RawQuery) -> Response {
    if let Err(error) = check_available(&shared) {
        return error.into_response();
    }
    let pairs: Vec<(String, String)> = url_pairs(query.as_deref().unwrap_or(""));
    match Subscription::parse(&pairs) {
        Ok(subscription) => stream_response(shared, subscription),
        Err(error) => error.into_response(),
    }
}

/// Decodes `application/x-www-form-urlencoded` query pairs (`+` is a space).
fn url_pairs(query: &str) -> Vec<(String, String)> {
    let decode = |text: &str| {
        percent_encoding::percent_decode_str(&text.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(name), decode(value))
        })
        .collect()
}

async fn leader() -> Response {
    json_response(0, &json!("127.0.0.1:4647"), true)
}

// ---- jobs ----

async fn list_jobs(State(shared): State<AppState>, Query(params): Params) -> Response {
    let ns = namespace(&params);
    let prefix = params.get("prefix").cloned().unwrap_or_default();
    let page = Pagination::parse(&params);
    // The token of the first job of the next page, from the read that produced the response.
    let next_token: Mutex<Option<String>> = Mutex::new(None);
    let response = blocking_encoded(
        &shared,
        &params,
        &[Table::Jobs, Table::JobSummary],
        |cluster| {
            // Each stub comes from its job's cache, re-encoded only when the job, its
            // allocations or its blocked evaluation changed. The array is joined after
            // the lock is released.
            let jobs = cluster.jobs.iter().filter(|((job_ns, id), _)| {
                (ns == "*" || *job_ns == ns) && id.starts_with(&prefix)
            });
            let (jobs, next) = page.select(jobs, |((job_ns, id), _)| format!("{job_ns}.{id}"));
            *next_token
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = next;
            let stubs = jobs
                .into_iter()
                .map(|(key, entry)| render::job_stub_json(cluster, key, entry))
                .collect::<Result<Vec<_>, _>>();
            let index = cluster.tables.jobs.max(cluster.tables.job_summary);
            Ok((index, stubs))
        },
        |stubs| stubs.map(|stubs| join_json_array(&stubs)),
    )
    .await;

    with_next_token(response, next_token)
}

/// Adds `X-Nomad-NextToken` to a successful list response when the read left the token of a
/// next page in `next_token`.
fn with_next_token(mut response: Response, next_token: Mutex<Option<String>>) -> Response {
    let next = next_token
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if response.status() == StatusCode::OK
        && let Some(token) = next
        && let Ok(value) = HeaderValue::from_str(&token)
    {
        response.headers_mut().insert("X-Nomad-NextToken", value);
    }
    response
}

/// The `per_page` and `next_token` parameters of a list read.
///
/// A page starts at the first item whose token is not below `next_token` in string order.
/// It contains at most `per_page` items (0 means all). The token of the item after it becomes
/// `X-Nomad-NextToken`, sent only when that item exists. Tokens join their parts with `.`,
/// as Nomad's `nomad/state/paginator/tokenizer.go` does: `<namespace>.<ID>` for jobs.
// TODO: only `GET /v1/jobs` and `GET /v1/allocations` page. Evaluations and deployments are
// listed whole, in ID order, while Nomad pages them in create-index order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Pagination {
    per_page: usize,
    next_token: String,
}

impl Pagination {
    /// Reads the parameters.
    // NOTE: the emulator ignores a `per_page` that is not a number. This follows a reading of
    // Nomad's HTTP layer that was not checked against its source.
    fn parse(params: &HashMap<String, String>) -> Self {
        Self {
            per_page: params
                .get("per_page")
                .and_then(|value| value.parse::<i32>().ok())
                .and_then(|value| usize::try_from(value).ok())
                .unwrap_or(0),
            next_token: params.get("next_token").cloned().unwrap_or_default(),
        }
    }

    /// Returns the items of the page and the token of the first item after it, if any.
    fn select<T>(
        &self,
        items: impl Iterator<Item = T>,
        token: impl Fn(&T) -> String,
    ) -> (Vec<T>, Option<String>) {
        if self.per_page == 0 && self.next_token.is_empty() {
            return (items.collect(), None);
        }
        let mut page = Vec::new();
        let mut found = self.next_token.is_empty();
        for item in items {
            if !found {
                if token(&item) < self.next_token {
                    continue;
                }
                found = true;
            }
            if self.per_page > 0 && page.len() == self.per_page {
                return (page, Some(token(&item)));
            }
            page.push(item);
        }
        (page, None)
    }
}

/// Joins encoded JSON values into one compact array, the text `serde_json::to_string` gives
/// for a `Vec` of them.
fn join_json_array(items: &[Arc<str>]) -> String {
    let length = items.iter().map(|item| item.len() + 1).sum::<usize>() + 2;
    let mut text = String::with_capacity(length);
    text.push('[');
    for (position, item) in items.iter().enumerate() {
        if position > 0 {
            text.push(',');
        }
        text.push_str(item);
    }
    text.push(']');
    text
}

fn register_request(
    value: Value,
    params: &HashMap<String, String>,
) -> Result<RegisterRequest, ApiError> {
    let Some(job_value) = value.get("Job").filter(|job| !job.is_null()) else {
        return Err(ApiError::bad_request("Job must be specified"));
    };
    let mut job: Job = serde_json::from_value(job_value.clone())
        .map_err(|error| ApiError::bad_request(format!("Failed to decode job: {error}")))?;
    if job.id.is_empty() {
        return Err(ApiError::bad_request("Job ID hasn't been provided"));
    }
    let namespace = params
        .get("namespace")
        .cloned()
        .or_else(|| {
            value
                .get("Namespace")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .filter(|ns| !ns.is_empty())
        .or(job.namespace.clone())
        .unwrap_or_else(|| "default".to_owned());
    job.namespace = Some(namespace);
    let flag = |name: &str| value.get(name).and_then(Value::as_bool).unwrap_or(false);
    Ok(RegisterRequest {
        job,
        enforce_index: flag("EnforceIndex"),
        job_modify_index: value
            .get("JobModifyIndex")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        preserve_counts: flag("PreserveCounts"),
        preserve_resources: flag("PreserveResources"),
    })
}

async fn register_job(
    State(shared): State<AppState>,
    Query(params): Params,
    body: Bytes,
) -> Response {
    register_common(&shared, &params, None, &body)
}

async fn register_job_at(
    State(shared): State<AppState>,
    Path(id): Path<String>,
    Query(params): Params,
    body: Bytes,
) -> Response {
    register_common(&shared, &params, Some(id), &body)
}

fn register_common(
    shared: &Shared,
    params: &HashMap<String, String>,
    path_id: Option<String>,
    body: &Bytes,
) -> Response {
    let result = (|| {
        check_available(shared)?;
        let request = register_request(parse_body(body)?, params)?;
        if let Some(path_id) = path_id
            && path_id != request.job.id
        {
            return Err(ApiError::bad_request("Job ID does not match name"));
        }
        shared.write(|cluster, now| jobs::register(cluster, request, now))
    })();
    match result {
        Ok(outcome) => write_response(&outcome),
        Err(error) => error.into_response(),
    }
}

fn job_key(params: &HashMap<String, String>, id: String) -> JobKey {
    (namespace(params), id)
}

async fn read_job(
    State(shared): State<AppState>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Response {
    let key = job_key(&params, id);
    blocking(&shared, &params, &[Table::Jobs], |cluster| {
        match cluster.jobs.get(&key) {
            Some(entry) => Ok((
                entry.job.modify_index.unwrap_or(0),
                serde_json::to_value(&*entry.job).unwrap_or(Value::Null),
            )),
            None => Err((cluster.tables.jobs, ApiError::not_found("job not found"))),
        }
    })
    .await
}

async fn delete_job(
    State(shared): State<AppState>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Response {
    if let Err(error) = check_available(&shared) {
        return error.into_response();
    }
    let key = job_key(&params, id);
    let purge = params
        .get("purge")
        .is_some_and(|value| value == "true" || value.is_empty());
    match shared.write(|cluster, now| jobs::deregister(cluster, &key, purge, now)) {
        Ok(outcome) => json_response(
            outcome.index,
            &json!({"EvalID": outcome.eval_id, "EvalCreateIndex": outcome.eval_create_index,
                "JobModifyIndex": outcome.job_modify_index, "VolumeEvalID": "", "VolumeEvalIndex": 0,
                "Index": outcome.index, "LastContact": 0, "KnownLeader": false}),
            false,
        ),
        Err(error) => error.into_response(),
    }
}

async fn job_versions(
    State(shared): State<AppState>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Response {
    let key = job_key(&params, id);
    blocking(&shared, &params, &[Table::Jobs], |cluster| {
        match cluster.jobs.get(&key) {
            Some(entry) => {
                let versions: Vec<Value> = entry
                    .versions
                    .iter()
                    .map(|job| serde_json::to_value(&**job).unwrap_or(Value::Null))
                    .collect();
                Ok((
                    cluster.tables.jobs,
                    json!({"Versions": versions, "Diffs": null}),
                ))
            }
            None => Err((
                cluster.tables.jobs,
                ApiError::not_found("job versions not found"),
            )),
        }
    })
    .await
}

async fn job_allocations(
    State(shared): State<AppState>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Response {
    let key = job_key(&params, id);
    blocking(&shared, &params, &[Table::Allocs], |cluster| {
        let stubs: Vec<AllocListStub> = cluster
            .job_allocs(&key)
            .map(render::alloc_stub_model)
            .collect();
        Ok((cluster.tables.allocs, stubs))
    })
    .await
}

async fn job_evaluations(
    State(shared): State<AppState>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Response {
    let key = job_key(&params, id);
    blocking(&shared, &params, &[Table::Evals], |cluster| {
        let evals: Vec<Value> = cluster
            .evals_by_job
            .get(&key)
            .into_iter()
            .flatten()
            .filter_map(|id| cluster.evals.get(id))
            .map(render::eval)
            .collect();
        Ok((cluster.tables.evals, Value::Array(evals)))
    })
    .await
}

async fn job_deployments(
    State(shared): State<AppState>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Response {
    let key = job_key(&params, id);
    blocking(&shared, &params, &[Table::Deployments], |cluster| {
        let mut list: Vec<_> = cluster
            .deployments_by_job
            .get(&key)
            .into_iter()
            .flatten()
            .filter_map(|id| cluster.deployments.get(id))
            .collect();
        list.sort_by_key(|deployment| std::cmp::Reverse(deployment.create_index));
        let list: Vec<Value> = list.into_iter().map(render::deployment).collect();
        Ok((cluster.tables.deployments, Value::Array(list)))
    })
    .await
}

async fn job_latest_deployment(
    State(shared): State<AppState>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Response {
    let key = job_key(&params, id);
    blocking(&shared, &params, &[Table::Deployments], |cluster| {
        let latest = cluster
            .latest_deployment(&key)
            .map_or(Value::Null, render::deployment);
        Ok((cluster.tables.deployments, latest))
    })
    .await
}

async fn job_summary(
    State(shared): State<AppState>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Response {
    let key = job_key(&params, id);
    blocking(
        &shared,
        &params,
        &[Table::JobSummary],
        |cluster| match render::job_summary(cluster, &key) {
            Some(summary) => Ok((cluster.tables.job_summary, summary)),
            None => Err((
                cluster.tables.job_summary,
                ApiError::not_found("job not found"),
            )),
        },
    )
    .await
}

async fn scale_status(
    State(shared): State<AppState>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Response {
    let key = job_key(&params, id);
    blocking(&shared, &params, &[Table::Jobs, Table::Allocs], |cluster| {
        let Some(entry) = cluster.jobs.get(&key) else {
            return Err((cluster.tables.jobs, ApiError::not_found("job not found")));
        };
        let mut groups = serde_json::Map::new();
        for group in entry.job.groups() {
            let allocs: Vec<_> = cluster
                .job_allocs(&key)
                .filter(|alloc| alloc.task_group == group.name && alloc.is_live())
                .collect();
            let events: Vec<Value> = entry
                .scaling_events
                .get(&group.name)
                .into_iter()
                .flatten()
                .map(|event| json!({"Time": event.time_ns, "Count": event.count,
                    "PreviousCount": event.previous_count, "Message": event.message,
                    "Error": event.error, "Meta": null, "EvalID": event.eval_id,
                    "CreateIndex": event.create_index}))
                .collect();
            groups.insert(
                group.name.clone(),
                json!({
                    "Desired": group.count.unwrap_or(1),
                    "Placed": allocs.len(),
                    "Running": allocs.iter().filter(|a| a.client_status.as_str() == "running").count(),
                    "Healthy": allocs.iter().filter(|a| a.is_healthy()).count(),
                    "Unhealthy": allocs.iter().filter(|a| a.deployment_status.as_ref().and_then(|s| s.healthy) == Some(false)).count(),
                    "Events": if events.is_empty() { Value::Null } else { Value::Array(events) },
                }),
            );
        }
        let index = cluster.tables.jobs.max(cluster.tables.allocs);
        Ok((
            index,
            json!({
                "JobID": key.1, "Namespace": key.0,
                "JobCreateIndex": entry.job.create_index,
                "JobModifyIndex": entry.job.job_modify_index,
                "JobStopped": entry.job.stop.unwrap_or(false),
                "TaskGroups": groups,
            }),
        ))
    })
    .await
}

async fn scale_job(
    State(shared): State<AppState>,
    Path(id): Path<String>,
    Query(params): Params,
    body: Bytes,
) -> Response {
    let key = job_key(&params, id);
    let result = (|| {
        check_available(&shared)?;
        let value = parse_body(&body)?;
        let target = value.get("Target").cloned().unwrap_or(Value::Null);
        if let Some(job) = target.get("Job").and_then(Value::as_str)
            && job != key.1
        {
            return Err(ApiError::bad_request("job ID in payload did not match URL"));
        }
        if let Some(ns) = target.get("Namespace").and_then(Value::as_str)
            && ns != key.0
        {
            return Err(ApiError::bad_request(
                "namespace in payload did not match header",
            ));
        }
        let request = ScaleRequest {
            count: value.get("Count").and_then(Value::as_i64),
            group: target
                .get("Group")
                .and_then(Value::as_str)
                .map(str::to_owned),
            message: value
                .get("Message")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            error: value.get("Error").and_then(Value::as_bool).unwrap_or(false),
            job_modify_index: value
                .get("JobModifyIndex")
                .and_then(Value::as_u64)
                .unwrap_or(0),
        };
        shared.write(|cluster, now| jobs::scale(cluster, &key, request, now))
    })();
    match result {
        Ok(outcome) => write_response(&outcome),
        Err(error) => error.into_response(),
    }
}

async fn dispatch_job(
    State(shared): State<AppState>,
    Path(id): Path<String>,
    Query(params): Params,
    body: Bytes,
) -> Response {
    let key = job_key(&params, id);
    let result = (|| {
        check_available(&shared)?;
        let value = if body.is_empty() {
            json!({})
        } else {
            parse_body(&body)?
        };
        let payload = value
            .get("Payload")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let meta: BTreeMap<String, String> = value
            .get("Meta")
            .and_then(|meta| serde_json::from_value(meta.clone()).ok())
            .unwrap_or_default();
        shared.write(|cluster, now| jobs::dispatch(cluster, &key, payload, meta, now))
    })();
    match result {
        Ok((child_id, outcome)) => json_response(
            outcome.index,
            &json!({"Index": outcome.index, "JobCreateIndex": outcome.job_modify_index,
                "EvalCreateIndex": outcome.eval_create_index, "EvalID": outcome.eval_id,
                "DispatchedJobID": child_id}),
            false,
        ),
        Err(error) => error.into_response(),
    }
}

// ---- nodes ----

async fn list_nodes(State(shared): State<AppState>, Query(params): Params) -> Response {
    let prefix = params.get("prefix").cloned().unwrap_or_default();
    blocking(&shared, &params, &[Table::Nodes], |cluster| {
        let stubs: Vec<Value> = cluster
            .nodes
            .values()
            .filter(|node| node.id.starts_with(&prefix))
            .map(render::node_stub)
            .collect();
        Ok((cluster.tables.nodes, Value::Array(stubs)))
    })
    .await
}

async fn read_node(
    State(shared): State<AppState>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Response {
    blocking(&shared, &params, &[Table::Nodes], |cluster| {
        match cluster.nodes.get(&id) {
            Some(node) => Ok((node.modify_index, render::node_full(node))),
            None => Err((cluster.tables.nodes, ApiError::not_found("node not found"))),
        }
    })
    .await
}

async fn node_allocations(
    State(shared): State<AppState>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Response {
    blocking(&shared, &params, &[Table::Allocs], |cluster| {
        let allocs: Vec<Value> = cluster.node_allocs(&id).map(render::alloc_full).collect();
        Ok((cluster.tables.allocs, Value::Array(allocs)))
    })
    .await
}

fn node_write_response(index: u64) -> Response {
    json_response(
        index,
        &json!({"NodeModifyIndex": index, "EvalIDs": null, "EvalCreateIndex": 0, "Index": index}),
        false,
    )
}

async fn drain_node(
    State(shared): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let result = (|| {
        check_available(&shared)?;
        let value = parse_body(&body)?;
        let spec = value
            .get("DrainSpec")
            .filter(|spec| !spec.is_null())
            .map(|spec| {
                (
                    spec.get("Deadline").and_then(Value::as_i64).unwrap_or(0),
                    spec.get("IgnoreSystemJobs")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                )
            });
        let mark_eligible = value
            .get("MarkEligible")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let meta: BTreeMap<String, String> = value
            .get("Meta")
            .and_then(|meta| serde_json::from_value(meta.clone()).ok())
            .unwrap_or_default();
        shared.write(|cluster, now| nodes::set_drain(cluster, &id, spec, mark_eligible, meta, now))
    })();
    match result {
        Ok(index) => node_write_response(index),
        Err(error) => error.into_response(),
    }
}

async fn node_eligibility(
    State(shared): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let result = (|| {
        check_available(&shared)?;
        let value = parse_body(&body)?;
        let eligibility = value
            .get("Eligibility")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        shared.write(|cluster, _| nodes::set_eligibility(cluster, &id, &eligibility))
    })();
    match result {
        Ok(index) => node_write_response(index),
        Err(error) => error.into_response(),
    }
}

// ---- allocations and evaluations ----

async fn list_allocs(State(shared): State<AppState>, Query(params): Params) -> Response {
    let prefix = params.get("prefix").cloned().unwrap_or_default();
    // `task_states=false` leaves each stub's `TaskStates` out.
    let task_states = params
        .get("task_states")
        .is_none_or(|value| value != "false");
    let page = Pagination::parse(&params);
    let next_token: Mutex<Option<String>> = Mutex::new(None);
    let response = blocking(&shared, &params, &[Table::Allocs], |cluster| {
        // Nomad lists by ID (tokens are IDs) under a prefix, and otherwise in create-index
        // order with `<CreateIndex>.<ID>` tokens.
        let (allocs, next) = if prefix.is_empty() {
            page_by_create_index(cluster.allocs.values(), &page)
        } else {
            let matching = cluster
                .allocs
                .range(prefix.clone()..)
                .take_while(|(id, _)| id.starts_with(&prefix))
                .map(|(_, alloc)| alloc);
            page.select(matching, |alloc| alloc.id.clone())
        };
        *next_token
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = next;
        let stubs: Vec<AllocListStub> = allocs
            .into_iter()
            .map(|alloc| {
                let mut stub = render::alloc_stub_model(alloc);
                if !task_states {
                    stub.task_states = None;
                }
                stub
            })
            .collect();
        Ok((cluster.tables.allocs, stubs))
    })
    .await;

    with_next_token(response, next_token)
}

/// Selects one page of allocations in `(CreateIndex, ID)` order, the order Nomad lists every
/// allocation in, and returns it with the `<CreateIndex>.<ID>` token of the next allocation.
///
/// The token compares as Nomad's `CreateIndexAndIDTokenizer` does: the index as a number,
/// then the ID; a token without a numeric index compares as text. Costs O(n) for n
/// allocations plus O(p log p) for a page of p.
fn page_by_create_index<'a>(
    allocs: impl Iterator<Item = &'a SimAlloc>,
    page: &Pagination,
) -> (Vec<&'a SimAlloc>, Option<String>) {
    let token = |alloc: &SimAlloc| format!("{}.{}", alloc.create_index, alloc.id);
    let target = page
        .next_token
        .split_once('.')
        .and_then(|(index, id)| Some((index.parse::<u64>().ok()?, id)));
    let at_or_after = |alloc: &SimAlloc| match (&target, page.next_token.is_empty()) {
        (_, true) => true,
        (Some((index, id)), false) => (alloc.create_index, alloc.id.as_str()) >= (*index, *id),
        (None, false) => token(alloc) >= page.next_token,
    };
    let mut selected: Vec<&SimAlloc> = allocs.filter(|alloc| at_or_after(alloc)).collect();
    let order = |a: &&SimAlloc, b: &&SimAlloc| {
        (a.create_index, a.id.as_str()).cmp(&(b.create_index, b.id.as_str()))
    };

    if page.per_page == 0 || selected.len() <= page.per_page {
        selected.sort_unstable_by(order);
        return (selected, None);
    }
    // Keep the page plus the first allocation after it, whose token starts the next page.
    selected.select_nth_unstable_by(page.per_page, order);
    selected.truncate(page.per_page + 1);
    selected.sort_unstable_by(order);
    let next = selected.pop().map(token);
    (selected, next)
}

async fn read_alloc(
    State(shared): State<AppState>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Response {
    blocking(
        &shared,
        &params,
        &[Table::Allocs],
        |cluster| match cluster.allocs.get(&id) {
            Some(alloc) => Ok((alloc.modify_index, render::alloc_full(alloc))),
            None => Err((
                cluster.tables.allocs,
                ApiError::not_found("alloc not found"),
            )),
        },
    )
    .await
}

async fn stop_alloc(State(shared): State<AppState>, Path(id): Path<String>) -> Response {
    if let Err(error) = check_available(&shared) {
        return error.into_response();
    }
    let result = shared.write(|cluster, now| {
        let Some(alloc) = cluster.allocs.get(&id).cloned() else {
            return Err(ApiError::not_found("alloc not found"));
        };
        cluster.begin();
        cluster.update_alloc_as(
            EventType::AllocationUpdateDesiredStatus,
            &id,
            now,
            |alloc| alloc.migrate = Some(true),
        );
        cluster.stop_alloc(&id, now, "alloc was stopped by a user");
        let (eval_id, index) = cluster.create_eval(&alloc.job, "alloc-stop", "", "", now);
        cluster.unblock_evals();
        Ok((eval_id, index))
    });
    match result {
        Ok((eval_id, index)) => {
            json_response(index, &json!({"EvalID": eval_id, "Index": index}), false)
        }
        Err(error) => error.into_response(),
    }
}

async fn list_evals(State(shared): State<AppState>, Query(params): Params) -> Response {
    let prefix = params.get("prefix").cloned().unwrap_or_default();
    blocking(&shared, &params, &[Table::Evals], |cluster| {
        let evals: Vec<Value> = cluster
            .evals
            .values()
            .filter(|eval| eval.id.starts_with(&prefix))
            .map(render::eval)
            .collect();
        Ok((cluster.tables.evals, Value::Array(evals)))
    })
    .await
}

async fn read_eval(
    State(shared): State<AppState>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Response {
    blocking(&shared, &params, &[Table::Evals], |cluster| {
        match cluster.evals.get(&id) {
            Some(eval) => Ok((eval.modify_index, render::eval(eval))),
            None => Err((cluster.tables.evals, ApiError::not_found("eval not found"))),
        }
    })
    .await
}

async fn eval_allocs(
    State(shared): State<AppState>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Response {
    blocking(&shared, &params, &[Table::Allocs], |cluster| {
        let Some(eval) = cluster.evals.get(&id) else {
            return Ok((cluster.tables.allocs, Vec::new()));
        };
        let key = (eval.namespace.clone(), eval.job_id.clone());
        let stubs: Vec<AllocListStub> = cluster
            .job_allocs(&key)
            .filter(|alloc| alloc.eval_id == id)
            .map(render::alloc_stub_model)
            .collect();
        Ok((cluster.tables.allocs, stubs))
    })
    .await
}

// ---- deployments ----

async fn list_deployments(State(shared): State<AppState>, Query(params): Params) -> Response {
    let prefix = params.get("prefix").cloned().unwrap_or_default();
    blocking(&shared, &params, &[Table::Deployments], |cluster| {
        let list: Vec<Value> = cluster
            .deployments
            .values()
            .filter(|deployment| deployment.id.starts_with(&prefix))
            .map(render::deployment)
            .collect();
        Ok((cluster.tables.deployments, Value::Array(list)))
    })
    .await
}

async fn read_deployment(
    State(shared): State<AppState>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Response {
    blocking(
        &shared,
        &params,
        &[Table::Deployments],
        |cluster| match cluster.deployments.get(&id) {
            Some(deployment) => Ok((deployment.modify_index, render::deployment(deployment))),
            None => Err((
                cluster.tables.deployments,
                ApiError::not_found("deployment not found"),
            )),
        },
    )
    .await
}

async fn deployment_allocs(
    State(shared): State<AppState>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Response {
    blocking(&shared, &params, &[Table::Allocs], |cluster| {
        let Some(deployment) = cluster.deployments.get(&id) else {
            return Ok((cluster.tables.allocs, Vec::new()));
        };
        let key = (deployment.namespace.clone(), deployment.job_id.clone());
        let stubs: Vec<AllocListStub> = cluster
            .job_allocs(&key)
            .filter(|alloc| alloc.deployment_id.as_deref() == Some(id.as_str()))
            .map(render::alloc_stub_model)
            .collect();
        Ok((cluster.tables.allocs, stubs))
    })
    .await
}

/// Checks a deployment write's body: it must exist and repeat the path's ID.
fn deployment_body(body: &Bytes, id: &str) -> Result<Value, ApiError> {
    let value = parse_body(body)?;
    match value.get("DeploymentID").and_then(Value::as_str) {
        None | Some("") => Err(ApiError::bad_request("DeploymentID must be specified")),
        Some(given) if given != id => Err(ApiError::bad_request("Deployment ID does not match")),
        Some(_) => Ok(value),
    }
}

fn active_deployment(cluster: &Cluster, id: &str) -> Result<super::state::SimDeployment, ApiError> {
    let Some(deployment) = cluster.deployments.get(id) else {
        return Err(ApiError::not_found("deployment not found"));
    };
    if !deployment.status.is_active() {
        return Err(ApiError::internal(format!(
            "Deployment {id:?} has terminal status {:?}",
            deployment.status.as_str()
        )));
    }
    Ok(deployment.clone())
}

fn deployment_write_response(eval: Option<(String, u64)>, index: u64) -> Response {
    let (eval_id, eval_index) = eval.unwrap_or_default();
    json_response(
        index,
        &json!({"EvalID": eval_id, "EvalCreateIndex": eval_index,
            "DeploymentModifyIndex": index, "Index": index}),
        false,
    )
}

async fn promote(State(shared): State<AppState>, Path(id): Path<String>, body: Bytes) -> Response {
    let result = (|| {
        check_available(&shared)?;
        let value = deployment_body(&body, &id)?;
        let all = value.get("All").and_then(Value::as_bool).unwrap_or(false);
        let groups: Vec<String> = value
            .get("Groups")
            .and_then(|groups| serde_json::from_value(groups.clone()).ok())
            .unwrap_or_default();
        shared.write(|cluster, now| {
            let mut deployment = active_deployment(cluster, &id)?;
            let key = (deployment.namespace.clone(), deployment.job_id.clone());
            let mut errors = Vec::new();
            for (group, state) in deployment.task_groups.iter() {
                if !(all || groups.contains(group)) || state.desired_canaries == 0 {
                    continue;
                }
                let healthy = cluster
                    .job_allocs(&key)
                    .filter(|alloc| state.placed_canaries.contains(&alloc.id) && alloc.is_healthy())
                    .count();
                if (healthy as u64) < state.desired_canaries {
                    errors.push(format!(
                        "Task group {group:?} has {healthy}/{} healthy allocations",
                        state.desired_canaries
                    ));
                }
            }
            if !errors.is_empty() {
                let lines: Vec<String> =
                    errors.iter().map(|error| format!("\t* {error}")).collect();
                return Err(ApiError::internal(format!(
                    "{} error{} occurred:\n{}\n\n",
                    errors.len(),
                    if errors.len() == 1 { "" } else { "s" },
                    lines.join("\n")
                )));
            }
            cluster.begin();
            for (group, state) in deployment.task_groups.iter_mut() {
                if all || groups.contains(group) {
                    state.promoted = true;
                }
            }
            let index = cluster.touch(Table::Deployments);
            deployment.modify_index = index;
            deployment.status_description = "Deployment is running".to_owned();
            cluster.deployments.insert(id.clone(), deployment);
            cluster.mark_event(
                index,
                EventType::DeploymentPromotion,
                Subject::Deployment(id.clone()),
            );
            promote_canaries(cluster, &id, now);
            let job = cluster.jobs.get(&key).map(|entry| Arc::clone(&entry.job));
            let eval = job.map(|job| cluster.create_eval(&job, "deployment-watcher", "", &id, now));
            Ok((eval, index))
        })
    })();
    match result {
        Ok((eval, index)) => deployment_write_response(eval, index),
        Err(error) => error.into_response(),
    }
}

async fn fail(State(shared): State<AppState>, Path(id): Path<String>) -> Response {
    if let Err(error) = check_available(&shared) {
        return error.into_response();
    }
    let result = shared.write(|cluster, now| -> Result<_, ApiError> {
        let mut deployment = active_deployment(cluster, &id)?;
        cluster.begin();
        let index = cluster.touch(Table::Deployments);
        deployment.modify_index = index;
        deployment.status_description = "Deployment marked as failed".to_owned();
        cluster.mark_event(
            index,
            EventType::DeploymentStatusUpdate,
            Subject::Deployment(id.clone()),
        );
        let reverted = fail_deployment(cluster, deployment, now);
        Ok((reverted, index))
    });
    match result {
        Ok((reverted, index)) => json_response(
            index,
            &json!({"EvalID": "", "EvalCreateIndex": 0, "DeploymentModifyIndex": index,
                "RevertedJobVersion": reverted, "Index": index}),
            false,
        ),
        Err(error) => error.into_response(),
    }
}

async fn pause(State(shared): State<AppState>, Path(id): Path<String>, body: Bytes) -> Response {
    let result = (|| {
        check_available(&shared)?;
        let value = deployment_body(&body, &id)?;
        let paused = value.get("Pause").and_then(Value::as_bool).unwrap_or(false);
        shared.write(|cluster, now| -> Result<u64, ApiError> {
            let mut deployment = active_deployment(cluster, &id)?;
            cluster.begin();
            let index = cluster.touch(Table::Deployments);
            deployment.status = if paused {
                DeploymentStatus::Paused
            } else {
                DeploymentStatus::Running
            };
            deployment.status_description = if paused {
                "Deployment is paused".to_owned()
            } else {
                "Deployment is running".to_owned()
            };
            deployment.modify_index = index;
            deployment.modify_time_ns = now;
            let key = (deployment.namespace.clone(), deployment.job_id.clone());
            cluster.deployments.insert(id.clone(), deployment);
            cluster.mark_event(
                index,
                EventType::DeploymentStatusUpdate,
                Subject::Deployment(id.clone()),
            );
            cluster.dirty_jobs.insert(key);
            Ok(index)
        })
    })();
    match result {
        Ok(index) => deployment_write_response(None, index),
        Err(error) => error.into_response(),
    }
}

async fn allocation_health(
    State(shared): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let result = (|| {
        check_available(&shared)?;
        let value = deployment_body(&body, &id)?;
        let ids = |name: &str| -> Vec<String> {
            value
                .get(name)
                .and_then(|list| serde_json::from_value(list.clone()).ok())
                .unwrap_or_default()
        };
        let (healthy, unhealthy) = (ids("HealthyAllocationIDs"), ids("UnhealthyAllocationIDs"));
        shared.write(|cluster, now| -> Result<u64, ApiError> {
            active_deployment(cluster, &id)?;
            cluster.begin();
            for (list, verdict) in [(&healthy, true), (&unhealthy, false)] {
                for alloc_id in list {
                    cluster.update_alloc(alloc_id, now, |alloc| {
                        let canary = alloc.is_canary();
                        alloc.deployment_status = Some(super::state::AllocHealth {
                            healthy: Some(verdict),
                            timestamp_ns: now,
                            canary,
                            modify_index: alloc.modify_index,
                        });
                    });
                }
            }
            let index = cluster.touch(Table::Deployments);
            cluster.mark_event(
                index,
                EventType::DeploymentAllocHealth,
                Subject::Deployment(id.clone()),
            );
            Ok(index)
        })
    })();
    match result {
        Ok(index) => deployment_write_response(None, index),
        Err(error) => error.into_response(),
    }
}

// ---- fault injection ----

async fn sim_fail_node(State(shared): State<AppState>, Path(id): Path<String>) -> Response {
    match shared.write(|cluster, now| nodes::fail_node(cluster, &id, now)) {
        Ok(()) => json_response(0, &json!({"Node": id, "Status": "down"}), false),
        Err(error) => error.into_response(),
    }
}

async fn sim_recover_node(State(shared): State<AppState>, Path(id): Path<String>) -> Response {
    match shared.write(|cluster, now| nodes::recover_node(cluster, &id, now)) {
        Ok(()) => json_response(0, &json!({"Node": id, "Status": "ready"}), false),
        Err(error) => error.into_response(),
    }
}

fn nodes_in(cluster: &Cluster, datacenter: &str) -> Vec<String> {
    cluster
        .nodes
        .values()
        .filter(|node| node.datacenter == datacenter)
        .map(|node| node.id.clone())
        .collect()
}

async fn sim_fail_dc(State(shared): State<AppState>, Path(dc): Path<String>) -> Response {
    let changed = shared.write(|cluster, now| {
        let ids = nodes_in(cluster, &dc);
        for id in &ids {
            let _ = nodes::fail_node(cluster, id, now);
        }
        ids
    });
    if changed.is_empty() {
        return ApiError::not_found(format!("datacenter {dc:?} has no nodes")).into_response();
    }
    json_response(
        0,
        &json!({"Datacenter": dc, "Nodes": changed, "Status": "down"}),
        false,
    )
}

async fn sim_recover_dc(State(shared): State<AppState>, Path(dc): Path<String>) -> Response {
    let changed = shared.write(|cluster, now| {
        let ids = nodes_in(cluster, &dc);
        for id in &ids {
            let _ = nodes::recover_node(cluster, id, now);
        }
        ids
    });
    if changed.is_empty() {
        return ApiError::not_found(format!("datacenter {dc:?} has no nodes")).into_response();
    }
    json_response(
        0,
        &json!({"Datacenter": dc, "Nodes": changed, "Status": "ready"}),
        false,
    )
}

async fn sim_image(State(shared): State<AppState>, body: Bytes) -> Response {
    let result = (|| {
        let value = parse_body(&body)?;
        let Some(image) = value
            .get("image")
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
            return Err(ApiError::bad_request(
                "missing \"image\": send {\"image\": \"name:tag\", \"healthy\": false} or pullSeconds, sizeMB, pullError",
            ));
        };
        shared.write(|cluster, _| {
            let behaviour = cluster
                .images
                .entry(image.clone())
                .or_insert(ImageBehaviour {
                    healthy: true,
                    ..ImageBehaviour::default()
                });
            if let Some(healthy) = value.get("healthy").and_then(Value::as_bool) {
                behaviour.healthy = healthy;
            }
            if let Some(seconds) = value.get("pullSeconds").and_then(Value::as_f64) {
                behaviour.pull_seconds = Some(seconds);
            }
            if let Some(size) = value.get("sizeMB").and_then(Value::as_f64) {
                behaviour.size_mb = Some(size);
            }
            if let Some(error) = value.get("pullError") {
                behaviour.pull_error = error.as_str().map(str::to_owned);
            }
            Ok(json!({"image": image, "healthy": behaviour.healthy,
                "pullSeconds": behaviour.pull_seconds(), "pullError": behaviour.pull_error}))
        })
    })();
    match result {
        Ok(body) => json_response(0, &body, false),
        Err(error) => error.into_response(),
    }
}

async fn sim_unavailable(State(shared): State<AppState>, body: Bytes) -> Response {
    let result = (|| {
        let value = parse_body(&body)?;
        let Some(seconds) = value.get("seconds").and_then(Value::as_f64) else {
            return Err(ApiError::bad_request(
                "missing \"seconds\": send {\"seconds\": 30}",
            ));
        };
        shared.write(|cluster, now| {
            cluster.unavailable_until_ns = now + (seconds * 1e9) as i64;
        });
        Ok(json!({"unavailableSeconds": seconds}))
    })();
    match result {
        Ok(body) => json_response(0, &body, false),
        Err(error) => error.into_response(),
    }
}

async fn sim_close_streams(State(shared): State<AppState>) -> Response {
    let streams = shared.events.subscribers();
    shared.events.close_streams();
    json_response(0, &json!({"closedStreams": streams}), false)
}

async fn sim_silence_streams(State(shared): State<AppState>) -> Response {
    let streams = shared.events.subscribers();
    shared.events.silence_streams();
    json_response(0, &json!({"silencedStreams": streams}), false)
}

async fn sim_recover_streams(State(shared): State<AppState>) -> Response {
    shared.events.recover();
    json_response(0, &json!({"silenced": false}), false)
}

async fn sim_state(State(shared): State<AppState>) -> Response {
    let cluster = shared.lock();
    let summary = super::state_summary(&cluster, shared.clock.now_ns());
    drop(cluster);
    json_response(
        0,
        &serde_json::to_value(summary).unwrap_or(Value::Null),
        true,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_duration_caps_long_wait() {
        let mut rng = rand::rng();
        for _ in 0..100 {
            let waited = block_duration(Some(Duration::from_secs(600)), &mut rng);
            assert!(waited >= Duration::from_secs(300), "{waited:?}");
            assert!(waited <= Duration::from_millis(318_750), "{waited:?}");
        }
    }

    #[test]
    fn block_duration_defaults_missing_wait() {
        let waited = block_duration(None, &mut rand::rng());
        assert!(waited >= Duration::from_secs(300));
        let short = block_duration(Some(Duration::from_secs(16)), &mut rand::rng());
        assert!(short >= Duration::from_secs(16));
        assert!(short <= Duration::from_secs(17));
    }
}
