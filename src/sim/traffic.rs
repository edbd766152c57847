//! A Prometheus-compatible endpoint that replays a traffic trace as a live request rate.
//!
//! `steward dev` serves it so the autoscaler reads traffic exactly as it would from a real
//! Prometheus: `GET|POST /api/v1/query_range` returns a matrix and `/api/v1/query` a vector,
//! in Prometheus's JSON envelope (`status`, `data.resultType`, `data.result`, values as
//! `[<unix seconds>, "<number>"]`). Every query returns the same single series, the
//! trace's request rate in requests per second averaged over the trailing five minutes, as
//! `sum(rate(requests_total[5m]))` would be.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Form, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::clock::SimClock;
use crate::autoscale::Sample;

/// The maximum number of points of one series in a `query_range` response, as in Prometheus 2.x.
const MAX_POINTS: f64 = 11_000.0;

/// Width of the trailing window the rate is averaged over, in seconds.
const RATE_WINDOW_SECS: i64 = 300;

/// A trace mapped onto simulated time.
///
/// Simulated time `clock origin + k` reads the trace at `trace start + start_minute + k`,
/// wrapping around at both ends, so history before the replay started exists too.
#[derive(Debug, Clone)]
pub struct TrafficReplay {
    /// Requests per second, one value per minute of the trace.
    per_minute: Arc<Vec<f64>>,
    /// Multiplies every rate (2,000,000 requests a day over a 68,600-a-day trace is 29.14).
    scale: f64,
    /// Minutes into the trace that simulated time `origin` reads.
    start_minute: i64,
    /// Simulated Unix time (seconds) of the clock's origin.
    origin_secs: i64,
    clock: SimClock,
}

impl TrafficReplay {
    /// Builds a replay of `samples` (one per minute, requests per second).
    ///
    /// Returns `None` when the trace is empty.
    pub fn new(samples: &[Sample], scale: f64, start_minute: i64, clock: SimClock) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        Some(Self {
            per_minute: Arc::new(samples.iter().map(|sample| sample.rps.max(0.0)).collect()),
            scale,
            start_minute,
            origin_secs: clock.now_secs(),
            clock,
        })
    }

    /// Returns the clock the replay follows.
    pub fn clock(&self) -> &SimClock {
        &self.clock
    }

    /// Returns the request rate (requests per second, scaled) of the minute that contains
    /// simulated Unix time `t`.
    pub fn instant_rate(&self, t: i64) -> f64 {
        let minutes = self.per_minute.len() as i64;
        let minute = self.start_minute + (t - self.origin_secs).div_euclid(60);
        self.per_minute[minute.rem_euclid(minutes) as usize] * self.scale
    }

    /// Returns the rate averaged over the five minutes before `t`, as `rate(x[5m])` does.
    pub fn rate(&self, t: i64) -> f64 {
        let steps = RATE_WINDOW_SECS / 60;
        let total: f64 = (0..steps).map(|i| self.instant_rate(t - i * 60)).sum();
        total / steps as f64
    }

    /// Returns the rate now.
    pub fn current_rate(&self) -> f64 {
        self.rate(self.clock.now_secs())
    }
}

/// A running replay server.
#[derive(Debug)]
pub struct RunningTraffic {
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl RunningTraffic {
    /// Returns the address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Returns the base URL, such as `http://127.0.0.1:9091`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the server and waits for it to finish.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}

/// Starts serving `replay` on `addr` (use port 0 for an ephemeral port).
pub async fn serve(addr: SocketAddr, replay: TrafficReplay) -> std::io::Result<RunningTraffic> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let shutdown = CancellationToken::new();
    let app = router(replay);
    let stop = shutdown.clone();
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        if let Err(error) = served {
            tracing::warn!(%error, "traffic replay server stopped");
        }
    });
    Ok(RunningTraffic {
        addr,
        shutdown,
        task,
    })
}

/// Builds the HTTP routes of the replay.
pub fn router(replay: TrafficReplay) -> Router {
    Router::new()
        .route("/api/v1/query", get(instant_query).post(instant_query_form))
        .route(
            "/api/v1/query_range",
            get(range_query).post(range_query_form),
        )
        .route(
            "/-/healthy",
            get(|| async { "Prometheus Server is Healthy.\n" }),
        )
        .route(
            "/-/ready",
            get(|| async { "Prometheus Server is Ready.\n" }),
        )
        .with_state(Arc::new(replay))
}

type Params = HashMap<String, String>;

async fn instant_query(
    State(replay): State<Arc<TrafficReplay>>,
    Query(params): Query<Params>,
) -> Response {
    answer_instant(&replay, &params)
}

async fn instant_query_form(
    State(replay): State<Arc<TrafficReplay>>,
    method: Method,
    Form(params): Form<Params>,
) -> Response {
    debug_assert_eq!(method, Method::POST);
    answer_instant(&replay, &params)
}

async fn range_query(
    State(replay): State<Arc<TrafficReplay>>,
    Query(params): Query<Params>,
) -> Response {
    answer_range(&replay, &params)
}

async fn range_query_form(
    State(replay): State<Arc<TrafficReplay>>,
    Form(params): Form<Params>,
) -> Response {
    answer_range(&replay, &params)
}

fn answer_instant(replay: &TrafficReplay, params: &Params) -> Response {
    if let Err(response) = require_query(params) {
        return *response;
    }
    let time = match params.get("time") {
        Some(text) => match parse_time(text) {
            Some(time) => time,
            None => {
                return bad_data(format!(
                    "invalid parameter \"time\": cannot parse {text:?} to a valid timestamp"
                ));
            }
        },
        None => replay.clock.now_unix(),
    };

    let value = replay.rate(time.floor() as i64);
    let body = json!({
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [{ "metric": {}, "value": [time, format_value(value)] }],
        },
    });
    Json(body).into_response()
}

fn answer_range(replay: &TrafficReplay, params: &Params) -> Response {
    if let Err(response) = require_query(params) {
        return *response;
    }
    let Some(start) = params.get("start").and_then(|text| parse_time(text)) else {
        return bad_data(format!(
            "invalid parameter \"start\": cannot parse {:?} to a valid timestamp",
            param(params, "start")
        ));
    };
    let Some(end) = params.get("end").and_then(|text| parse_time(text)) else {
        return bad_data(format!(
            "invalid parameter \"end\": cannot parse {:?} to a valid timestamp",
            param(params, "end")
        ));
    };
    if end < start {
        return bad_data("end timestamp must not be before start time".to_owned());
    }
    let Some(step) = params.get("step").and_then(|text| parse_step(text)) else {
        return bad_data(format!(
            "invalid parameter \"step\": cannot parse {:?} to a valid duration",
            param(params, "step")
        ));
    };
    if step <= 0.0 {
        return bad_data("zero or negative query resolution step widths are not accepted. Try a positive integer".to_owned());
    }
    if (end - start) / step > MAX_POINTS {
        return bad_data("exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)".to_owned());
    }

    let mut values = Vec::new();
    let mut t = start;
    while t <= end {
        values.push(json!([t, format_value(replay.rate(t.floor() as i64))]));
        t += step;
    }
    let body = json!({
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [{ "metric": {}, "values": values }],
        },
    });
    Json(body).into_response()
}

fn param<'a>(params: &'a Params, name: &str) -> &'a str {
    params.get(name).map(String::as_str).unwrap_or("")
}

/// Returns the error response when the request has no query expression.
fn require_query(params: &Params) -> Result<(), Box<Response>> {
    match params.get("query") {
        Some(query) if !query.trim().is_empty() => Ok(()),
        _ => Err(Box::new(bad_data(
            "invalid parameter \"query\": parse error: no expression found in input".to_owned(),
        ))),
    }
}

/// Formats a sample value as Prometheus does: a string, shortest round-trip form.
fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else {
        value.to_string()
    }
}

/// Parses a Prometheus timestamp: Unix seconds (fractions allowed) or RFC 3339.
fn parse_time(text: &str) -> Option<f64> {
    if let Ok(seconds) = text.parse::<f64>() {
        return seconds.is_finite().then_some(seconds);
    }
    let timestamp: jiff::Timestamp = text.parse().ok()?;
    Some(timestamp.as_millisecond() as f64 / 1000.0)
}

/// Parses a step: seconds as a number, or a Prometheus duration such as `60s` or `5m`.
fn parse_step(text: &str) -> Option<f64> {
    if let Ok(seconds) = text.parse::<f64>() {
        return seconds.is_finite().then_some(seconds);
    }
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit())?);
    let number: f64 = number.parse().ok()?;
    let scale = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        "w" => 604_800.0,
        "y" => 31_536_000.0,
        _ => return None,
    };
    Some(number * scale)
}

fn bad_data(message: String) -> Response {
    let body: Value = json!({ "status": "error", "errorType": "bad_data", "error": message });
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replay() -> TrafficReplay {
        // Minute k has k requests per second, for a 10-minute trace.
        let samples: Vec<Sample> = (0..10).map(|k| Sample::new(k * 60, k as f64)).collect();
        let clock = SimClock::new(6_000.0, 1.0);
        TrafficReplay::new(&samples, 2.0, 5, clock).expect("non-empty trace")
    }

    #[test]
    fn replay_maps_time_onto_trace_and_wraps() {
        let replay = replay();
        let origin = replay.origin_secs;

        assert_eq!(replay.instant_rate(origin), 10.0);
        assert_eq!(replay.instant_rate(origin + 60), 12.0);
        assert_eq!(replay.instant_rate(origin + 5 * 60), 0.0);
        assert_eq!(replay.instant_rate(origin - 60), 8.0);
        assert_eq!(replay.instant_rate(origin - 6 * 60), 18.0);
    }

    #[test]
    fn rate_averages_five_minutes() {
        let replay = replay();
        // Minutes 5, 4, 3, 2, 1 scaled by 2: (10 + 8 + 6 + 4 + 2) / 5.
        assert_eq!(replay.rate(replay.origin_secs), 6.0);
    }

    #[test]
    fn time_and_step_parsing() {
        assert_eq!(parse_time("1435781451.781"), Some(1435781451.781));
        assert_eq!(parse_time("2015-07-01T20:10:51Z"), Some(1435781451.0));
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_step("600"), Some(600.0));
        assert_eq!(parse_step("5m"), Some(300.0));
        assert_eq!(parse_step("5x"), None);
    }
}
