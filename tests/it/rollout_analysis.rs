//! The rollout analysis query against an in-process Prometheus-compatible endpoint on
//! loopback.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Query, State};
use axum::routing::get;
use serde_json::{Value, json};
use steward::rollout::{analysis_http_client, evaluate_analysis};
use steward::spec::Analysis;

/// The query parameters of every request the fake endpoint received.
type Seen = Arc<Mutex<Vec<Vec<(String, String)>>>>;

/// Serves `/api/v1/query` with `answer`, recording each request's parameters.
async fn serve(answer: Value) -> (String, Seen) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let state = (answer, seen.clone());
    let app = Router::new()
        .route(
            "/api/v1/query",
            get(
                |State((answer, seen)): State<(Value, Seen)>,
                 Query(params): Query<Vec<(String, String)>>| async move {
                    seen.lock().unwrap().push(params);
                    axum::Json(answer)
                },
            ),
        )
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), seen)
}

fn analysis(address: &str) -> Analysis {
    serde_json::from_value(json!({
        "address": address,
        "query": "sum(rate(errors_total[1m]))",
        "threshold": 0.05
    }))
    .unwrap()
}

#[tokio::test]
async fn analysis_reads_single_value() {
    let (address, seen) = serve(json!({
        "status": "success",
        "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1.0, "0.01"]}]}
    }))
    .await;
    let now: jiff::Timestamp = "2026-12-04T20:00:00Z".parse().unwrap();
    let sample =
        evaluate_analysis(&analysis_http_client().unwrap(), &analysis(&address), now).await;

    assert_eq!(sample.at, now);
    assert_eq!(sample.value, Ok(Some(0.01)));
    let params = seen.lock().unwrap().clone();
    assert_eq!(params.len(), 1);
    assert!(params[0].contains(&("query".to_owned(), "sum(rate(errors_total[1m]))".to_owned())));
    assert!(params[0].contains(&("time".to_owned(), "1796414400.000".to_owned())));
}

#[tokio::test]
async fn analysis_error_is_reported() {
    let (address, _seen) = serve(json!({
        "status": "error", "errorType": "bad_data", "error": "parse error at char 4"
    }))
    .await;
    let now = jiff::Timestamp::now();
    let sample =
        evaluate_analysis(&analysis_http_client().unwrap(), &analysis(&address), now).await;
    let error = sample.value.expect_err("query error");
    assert!(error.contains("parse error at char 4"), "{error}");
}

#[tokio::test]
async fn analysis_unreachable_is_reported() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let sample = evaluate_analysis(
        &analysis_http_client().unwrap(),
        &analysis(&address),
        jiff::Timestamp::now(),
    )
    .await;
    let error = sample.value.expect_err("nothing listens");
    assert!(error.contains("request to"), "{error}");
}
