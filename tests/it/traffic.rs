//! The traffic replay behind `steward dev`, read over HTTP by the Prometheus metric source.

use std::net::SocketAddr;
use std::time::Duration;

use steward::autoscale::Sample;
use steward::autoscale::source::{MetricSource, PrometheusSource, http_client};
use steward::sim::clock::SimClock;
use steward::sim::traffic::{TrafficReplay, serve};

const QUERY: &str = "sum(rate(http_requests_total[5m]))";

/// A 20-minute trace whose minute k carries k requests per second.
fn ramp() -> Vec<Sample> {
    (0..20).map(|k| Sample::new(k * 60, k as f64)).collect()
}

#[tokio::test]
async fn replay_serves_history_to_prometheus_source() {
    let origin = 1_800_000_000.0;
    let clock = SimClock::new(origin, 1.0);
    let replay = TrafficReplay::new(&ramp(), 3.0, 10, clock).expect("non-empty trace");
    let server = serve(SocketAddr::from(([127, 0, 0, 1], 0)), replay.clone())
        .await
        .expect("bind the replay");
    let source = PrometheusSource::new(&server.url(), QUERY, http_client().expect("client"))
        .expect("source");

    let start = origin as i64;
    let history = source
        .history(start, start + 240, Duration::from_secs(60))
        .await
        .expect("query_range");

    // Minutes 10..=14 at the scale of 3, each averaged over its five trailing minutes.
    assert_eq!(history.len(), 5);
    for (i, sample) in history.iter().enumerate() {
        let t = start + 60 * i as i64;
        assert_eq!(sample.t, t);
        assert_eq!(sample.rps, replay.rate(t), "sample at {t}");
    }
    assert_eq!(history[0].rps, 3.0 * (10.0 + 9.0 + 8.0 + 7.0 + 6.0) / 5.0);

    let current = source.current().await.expect("query").expect("a value");
    assert!(current > 0.0, "current rate {current}");

    server.shutdown().await;
}

#[tokio::test]
async fn replay_rejects_bad_range_like_prometheus() {
    let replay = TrafficReplay::new(&ramp(), 1.0, 0, SimClock::new(0.0, 1.0)).expect("trace");
    let server = serve(SocketAddr::from(([127, 0, 0, 1], 0)), replay)
        .await
        .expect("bind the replay");
    let client = http_client().expect("client");

    let cases = [
        (
            "start=100&end=50&step=60",
            "end timestamp must not be before start time",
        ),
        (
            "start=0&end=100&step=0",
            "zero or negative query resolution step",
        ),
        (
            "start=0&end=100000000&step=1",
            "exceeded maximum resolution of 11,000 points",
        ),
        ("start=soon&end=100&step=60", "invalid parameter \"start\""),
    ];
    for (params, expected) in cases {
        let url = format!("{}/api/v1/query_range?query={QUERY}&{params}", server.url());
        let response = client.get(&url).send().await.expect("request");
        assert_eq!(response.status(), 400, "{params}");
        let body: serde_json::Value = response.json().await.expect("JSON error body");
        assert_eq!(body["status"], "error", "{params}");
        assert_eq!(body["errorType"], "bad_data", "{params}");
        let message = body["error"].as_str().unwrap_or_default();
        assert!(message.contains(expected), "{params}: {message}");
    }

    let missing_query = client
        .get(format!("{}/api/v1/query", server.url()))
        .send()
        .await
        .expect("request");
    assert_eq!(missing_query.status(), 400);

    server.shutdown().await;
}
