//! Metric sources against real Prometheus and RabbitMQ servers started by the tests.

use std::time::Duration;

use steward::autoscale::source::{
    MetricError, MetricSource, PrometheusSource, http_client, http_client_with_timeout, parse_trace,
};

use crate::support::prometheus::{Prometheus, counter_openmetrics};

mod rabbitmq;
mod simulate_cli;

/// Returns the first `minutes` rows of the NASA trace as (unix seconds, requests in that minute).
fn nasa_minutes(minutes: usize) -> Vec<(i64, f64)> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/traces/nasa_ksc_jul1995_1min.csv"
    );
    let text = std::fs::read_to_string(path).expect("the NASA trace is in the repository");
    parse_trace(path, &text)
        .expect("the NASA trace parses")
        .into_iter()
        .take(minutes)
        .map(|s| (s.t, s.rps * 60.0))
        .collect()
}

const QUERY: &str = r#"sum(rate(api_requests_total{service="face-match"}[5m]))"#;

#[tokio::test]
async fn prometheus_history_follows_trace() {
    let rows = nasa_minutes(6 * 60);
    let other: Vec<(i64, f64)> = rows.iter().map(|&(t, _)| (t, 1.0)).collect();
    let server = Prometheus::start_with(&counter_openmetrics(&[
        ("face-match", &rows),
        ("other", &other),
    ]));
    let source = PrometheusSource::new(&server.url, QUERY, http_client().expect("client"))
        .expect("valid source");

    let start = rows[30].0;
    let end = rows[rows.len() - 1].0;
    let history = source
        .history(start, end, Duration::from_secs(60))
        .await
        .expect("history reads");

    assert_eq!(history.len(), rows.len() - 30, "one point a minute");
    assert_eq!(history[0].t, start);

    // rate() over 5 minutes is the mean of the last five minutes' counts per second.
    let by_time: std::collections::HashMap<i64, usize> =
        rows.iter().enumerate().map(|(i, r)| (r.0, i)).collect();
    let mut worst = 0.0_f64;
    for sample in &history {
        let i = by_time[&sample.t];
        let expected: f64 = rows[i - 4..=i].iter().map(|r| r.1).sum::<f64>() / 300.0;
        let relative = (sample.rps - expected).abs() / expected.max(1.0);
        worst = worst.max(relative);
    }
    assert!(worst < 0.35, "worst relative error {worst}");
    let total_expected: f64 = rows[26..].iter().map(|r| r.1).sum::<f64>() / 60.0;
    let total_got: f64 = history.iter().map(|s| s.rps).sum();
    let relative = (total_got - total_expected).abs() / total_expected;
    assert!(relative < 0.05, "mean rate off by {relative}");
}

#[tokio::test]
async fn prometheus_errors_are_typed() {
    let rows = nasa_minutes(60);
    let other: Vec<(i64, f64)> = rows.iter().map(|&(t, _)| (t, 1.0)).collect();
    let server = Prometheus::start_with(&counter_openmetrics(&[
        ("face-match", &rows),
        ("other", &other),
    ]));
    let client = http_client().expect("client");
    let (start, end) = (rows[10].0, rows[59].0);
    let step = Duration::from_secs(60);

    // Two series without aggregation.
    let both = PrometheusSource::new(&server.url, "rate(api_requests_total[5m])", client.clone())
        .expect("valid source");
    let err = both
        .history(start, end, step)
        .await
        .expect_err("two series");
    assert!(
        matches!(err, MetricError::MultipleSeries { count: 2, .. }),
        "{err}"
    );

    // A PromQL syntax error comes back as `status: error`.
    let broken = PrometheusSource::new(&server.url, "sum(rate(", client.clone()).expect("valid");
    let err = broken
        .history(start, end, step)
        .await
        .expect_err("bad query");
    assert!(
        matches!(err, MetricError::Query { ref error_type, .. } if error_type == "bad_data"),
        "{err}"
    );
    assert!(!err.is_retryable());

    // An empty result is no data, not zero.
    let none = PrometheusSource::new(
        &server.url,
        r#"api_requests_total{service="none"}"#,
        client.clone(),
    )
    .expect("valid");
    assert!(
        none.history(start, end, step)
            .await
            .expect("reads")
            .is_empty()
    );
    assert_eq!(none.current().await.expect("reads"), None);

    // The live value: a number, NaN and +Inf.
    let live = PrometheusSource::new(&server.url, "vector(42)", client.clone()).expect("valid");
    assert_eq!(live.current().await.expect("reads"), Some(42.0));
    for query in ["vector(0) / 0", "vector(1) / 0"] {
        let source = PrometheusSource::new(&server.url, query, client.clone()).expect("valid");
        let err = source.current().await.expect_err("non-finite");
        assert!(
            matches!(err, MetricError::NonFinite { .. }),
            "{query}: {err}"
        );
    }

    // A path that is not the API: HTTP 404 without a JSON body.
    let wrong =
        PrometheusSource::new(&format!("{}/nothing", server.url), "up", client).expect("valid");
    let err = wrong.current().await.expect_err("404");
    assert!(
        matches!(err, MetricError::Http { status: 404, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn prometheus_timeout_is_typed() {
    // A listener that accepts connections and never responds.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });

    let client = http_client_with_timeout(Duration::from_millis(300)).expect("client");
    let source = PrometheusSource::new(&url, "up", client).expect("valid");
    let err = source.current().await.expect_err("times out");
    assert!(matches!(err, MetricError::Timeout { .. }), "{err}");
    assert!(err.is_retryable());
    hold.abort();
}
