use std::sync::Arc;

use steward::autoscale::{Decision, DecisionInputs, DecisionSource, SizingState};
use steward::reconcile::{AutoscalerStatus, Phase, SizingSource, Status, plan};
use steward::telemetry::{LogFormat, Metrics, Readiness, RequestObserver, router, serve};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::reconcile::{FakeCluster, example_pool, time};

struct Server {
    base: String,
    cancel: CancellationToken,
    handle: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(metrics: Arc<Metrics>, readiness: Readiness) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let base = format!("http://{}", listener.local_addr().expect("local address"));
    let cancel = CancellationToken::new();
    let handle = tokio::spawn(serve(listener, router(metrics, readiness), cancel.clone()));
    Server {
        base,
        cancel,
        handle,
    }
}

impl Server {
    async fn stop(self) {
        self.cancel.cancel();
        self.handle
            .await
            .expect("server task")
            .expect("server ends cleanly");
    }
}

fn client() -> reqwest::Client {
    // reqwest is built without a default TLS provider; another test may have installed one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

#[tokio::test]
async fn healthz_and_readyz_follow_readiness() {
    let readiness = Readiness::default();
    let server = start(Arc::new(Metrics::new()), readiness.clone()).await;
    let client = client();

    let health = client
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);

    let not_ready = client
        .get(format!("{}/readyz", server.base))
        .send()
        .await
        .expect("readyz");
    assert_eq!(not_ready.status(), 503);

    readiness.set(true);
    let ready = client
        .get(format!("{}/readyz", server.base))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 200);

    server.stop().await;
}

#[tokio::test]
async fn metrics_endpoint_exports_controller_metrics() {
    let metrics = Arc::new(Metrics::new());
    metrics.observe_reconcile("face-match", 0.02, None);
    metrics.observe_reconcile("face-match", 0.5, Some("conflict"));
    metrics.set_queue_depth(3);
    metrics.set_leader(true);
    metrics.inc_watch_restarts("consul-pools");
    metrics.observe("nomad", "/v1/job/:id", 200, 0.004);

    metrics.record_status(&planned_status());

    let server = start(Arc::clone(&metrics), Readiness::default()).await;
    let response = client()
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .expect("metrics");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let body = response.text().await.expect("body");
    server.stop().await;

    for line in [
        "steward_reconciles_total{pool=\"face-match\",result=\"success\"} 1",
        "steward_reconciles_total{pool=\"face-match\",result=\"error\"} 1",
        "steward_reconcile_errors_total{pool=\"face-match\",kind=\"conflict\"} 1",
        "steward_reconcile_duration_seconds_count{pool=\"face-match\"} 2",
        "steward_queue_depth 3",
        "steward_leader 1",
        "steward_watch_restarts_total{watch=\"consul-pools\"} 1",
        "steward_workers_desired{pool=\"face-match\",zone=\"a\"} 1",
        "steward_workers_running{pool=\"face-match\",zone=\"b\"} 0",
        "steward_requests_total{system=\"nomad\",endpoint=\"/v1/job/:id\",status=\"200\"} 1",
        "steward_request_duration_seconds_count{system=\"nomad\",endpoint=\"/v1/job/:id\"} 1",
    ] {
        assert!(body.contains(line), "missing {line:?} in:\n{body}");
    }
    assert!(body.ends_with("# EOF\n"));
}

fn planned_status() -> Status {
    let pool = example_pool();
    let cluster = FakeCluster::new(&["dc-a", "dc-b"]);
    let planned = plan(&pool, None, &cluster.observed, time("2026-12-04T20:00:00Z"));
    Status::next(
        "face-match",
        None,
        &planned.status,
        1,
        "test",
        time("2026-12-04T20:00:00Z"),
    )
}

/// Returns the value of the one series whose line starts with `series` followed by a space.
fn value(body: &str, series: &str) -> Option<String> {
    body.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(str::to_owned)
}

#[test]
fn pool_gauges_follow_the_status() {
    let metrics = Metrics::new();
    let mut status = planned_status();
    status.phase = Phase::Degraded;
    let sizing = status.sizing.as_mut().expect("the plan decides a count");
    sizing.source = SizingSource::Hold;
    sizing.predicted_rps = Some(412.5);
    sizing.autoscaler = Some(AutoscalerStatus {
        state: SizingState {
            consecutive_failures: 3,
            ..SizingState::default()
        },
        ..AutoscalerStatus::default()
    });
    metrics.record_status(&status);
    let body = metrics.encode();

    let phase = |p: &str| {
        value(
            &body,
            &format!("steward_pool_phase{{pool=\"face-match\",phase=\"{p}\"}}"),
        )
    };
    assert_eq!(phase("Degraded").as_deref(), Some("1"), "{body}");
    for other in ["Ready", "Scaling", "RollingOut", "Paused", "Error"] {
        assert_eq!(phase(other), None, "{other} in {body}");
    }
    let source = |s: &str| {
        value(
            &body,
            &format!("steward_pool_sizing_source{{pool=\"face-match\",source=\"{s}\"}}"),
        )
    };
    assert_eq!(source("hold").as_deref(), Some("1"), "{body}");
    assert_eq!(source("override"), None, "{body}");
    assert_eq!(
        value(
            &body,
            "steward_autoscaler_metric_failures{pool=\"face-match\"}"
        )
        .as_deref(),
        Some("3"),
        "{body}"
    );
    assert_eq!(
        value(
            &body,
            "steward_autoscaler_predicted_requests_per_second{pool=\"face-match\"}"
        )
        .as_deref(),
        Some("412.5"),
        "{body}"
    );
}

#[test]
fn phase_change_replaces_the_phase_series() {
    let metrics = Metrics::new();
    let mut status = planned_status();
    status.phase = Phase::Degraded;
    metrics.record_status(&status);

    status.phase = Phase::Ready;
    metrics.record_status(&status);
    let body = metrics.encode();
    let phases: Vec<&str> = body
        .lines()
        .filter(|line| line.starts_with("steward_pool_phase{"))
        .collect();
    assert_eq!(
        phases,
        ["steward_pool_phase{pool=\"face-match\",phase=\"Ready\"} 1"],
        "{body}"
    );
}

#[test]
fn autoscaler_held_at_max_reports_max() {
    let metrics = Metrics::new();
    let mut status = planned_status();
    let sizing = status.sizing.as_mut().expect("the plan decides a count");
    sizing.source = SizingSource::Autoscaler;
    sizing.autoscaler = Some(AutoscalerStatus {
        decision: Some(Decision {
            at: 0,
            desired: 4,
            source: DecisionSource::Max,
            prediction: None,
            inputs: DecisionInputs {
                history_samples: 60,
                live_rps: Some(90.0),
                projected_rps: None,
                current_desired: 4,
                ready_workers: 4,
                starting_workers: 0,
                recommended: Some(9),
            },
            act: true,
            reason: "desired=4 source=max".to_owned(),
        }),
        ..AutoscalerStatus::default()
    });
    metrics.record_status(&status);

    let body = metrics.encode();
    assert!(
        body.contains("steward_pool_sizing_source{pool=\"face-match\",source=\"max\"} 1"),
        "{body}"
    );
    assert!(!body.contains("source=\"autoscaler\""), "{body}");
}

#[test]
fn zone_series_removed_with_zone() {
    let metrics = Metrics::new();
    let mut status = planned_status();
    metrics.record_status(&status);
    assert!(metrics.encode().contains("zone=\"b\""));

    status.zones.retain(|z| z.name == "a");
    metrics.record_status(&status);
    let body = metrics.encode();
    assert!(body.contains("zone=\"a\""), "{body}");
    assert!(!body.contains("zone=\"b\""), "{body}");
}

#[test]
fn forget_pool_removes_its_series() {
    let metrics = Metrics::new();
    metrics.record_status(&planned_status());
    assert!(metrics.encode().contains("zone=\"a\""));

    metrics.forget_pool("face-match");
    assert!(!metrics.encode().contains("face-match"));
}

#[test]
fn standby_reports_no_pool_series() {
    let metrics = Metrics::new();
    metrics.set_leader(true);
    metrics.record_status(&planned_status());
    assert!(
        metrics
            .encode()
            .contains("steward_pool_phase{pool=\"face-match\"")
    );

    metrics.set_leader(false);
    let body = metrics.encode();
    assert!(!body.contains("face-match"), "{body}");
    assert!(body.contains("steward_leader 0"), "{body}");
}

#[test]
fn reconcile_span_carries_fields() {
    let subscriber = tracing_subscriber::fmt()
        .with_writer(std::io::sink)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let span = steward::telemetry::reconcile_span("face-match", "pool changed", 42, "r-1");
        let metadata = span.metadata().expect("span is enabled under a subscriber");
        let fields: Vec<&str> = metadata.fields().iter().map(|f| f.name()).collect();
        assert_eq!(
            fields,
            [
                "pool",
                "reason",
                "spec_index",
                "reconcile_id",
                "job",
                "version"
            ]
        );
        assert_eq!(metadata.name(), "reconcile");
    });
}

#[test]
fn invalid_log_level_is_rejected() {
    let error = steward::telemetry::init_logging(LogFormat::Json, Some("steward=loud"))
        .expect_err("loud is not a level");
    let message = error.to_string();
    assert!(
        message.contains("invalid log level \"steward=loud\""),
        "{message}"
    );
    assert!(message.contains("such as \"info\""), "{message}");
}

#[test]
fn source_labels_match_status_json() {
    for source in SizingSource::ALL {
        let json = serde_json::to_string(&source).expect("serializes");
        assert_eq!(json, format!("\"{}\"", source.as_str()));
    }
}
