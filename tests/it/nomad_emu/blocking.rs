//! Blocking queries: index semantics, query-parameter-only blocking, per-table wakeups.

use reqwest::StatusCode;
use serde_json::json;

use super::{Harness, service_job};

#[tokio::test]
async fn index_zero_answers_at_once() {
    let harness = Harness::start(&["dc1"], 1).await;
    let reply = harness.get("/v1/allocations?index=0&wait=300s").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.index(), 0, "an empty allocs table has index 0");
    assert_eq!(reply.text, "[]");
    assert_eq!(
        reply
            .headers
            .get("X-Nomad-KnownLeader")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    assert!(reply.headers.contains_key("X-Nomad-LastContact"));
    harness.nomad.shutdown().await;
}

#[tokio::test]
async fn index_header_is_ignored() {
    // At real-time speed a query that honoured the header would block for 300 s and hit the
    // client timeout below.
    let mut config = super::config();
    config.speed = 1.0;
    let harness = Harness::start_with(config).await;
    let first = harness.get("/v1/nodes").await;
    assert!(first.index() > 0);
    let reply = harness
        .send(
            harness
                .client
                .get(format!("{}/v1/nodes", harness.nomad.url()))
                .header("index", first.index().to_string())
                .timeout(std::time::Duration::from_secs(60)),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.index(), first.index());
    harness.nomad.shutdown().await;
}

#[tokio::test]
async fn blocked_query_wakes_on_change() {
    let harness = Harness::start(&["dc1"], 1).await;
    harness.register(service_job("web", 1, "app:1")).await;
    let first = harness.get("/v1/job/web").await;
    let index = first.index();

    let waiter = {
        let client = harness.client.clone();
        let url = format!("{}/v1/job/web?index={index}&wait=300s", harness.nomad.url());
        tokio::spawn(async move { client.get(url).send().await })
    };
    harness.register(service_job("web", 2, "app:1")).await;
    let response = waiter
        .await
        .expect("waiter task completes")
        .expect("blocked query answers");
    let new_index: u64 = response
        .headers()
        .get("X-Nomad-Index")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("index header");
    assert!(new_index > index);
    harness.nomad.shutdown().await;
}

#[tokio::test]
async fn job_allocations_wake_on_other_jobs() {
    let harness = Harness::start(&["dc1"], 2).await;
    harness.register(service_job("a", 1, "app:1")).await;
    harness.running("a", 1).await;
    harness.register(service_job("b", 1, "app:1")).await;
    harness.running("b", 1).await;
    let before = harness.get("/v1/job/a/allocations").await;
    // Settle: wait until health has been reported everywhere, so the table is quiet.
    harness
        .eventually("quiet allocs table", || async {
            let again = harness.get("/v1/job/a/allocations").await;
            let other = harness.get("/v1/job/b/allocations").await.json();
            let healthy = other[0]["DeploymentStatus"]["Healthy"] == json!(true);
            (healthy && again.json()[0]["DeploymentStatus"]["Healthy"] == json!(true)).then_some(())
        })
        .await;
    let index = harness.get("/v1/job/a/allocations").await.index();

    let waiter = {
        let client = harness.client.clone();
        let url = format!(
            "{}/v1/job/a/allocations?index={index}&wait=300s",
            harness.nomad.url()
        );
        tokio::spawn(async move {
            let response = client.get(url).send().await.expect("answer");
            let index: u64 = response.headers()["X-Nomad-Index"]
                .to_str()
                .expect("ascii")
                .parse()
                .expect("number");
            (index, response.text().await.expect("body"))
        })
    };
    let b_alloc = harness.allocs("b").await[0].id.clone();
    harness
        .post(&format!("/v1/allocation/{b_alloc}/stop"), &json!({}))
        .await;
    let (woken_index, body) = waiter.await.expect("waiter completes");
    assert!(
        woken_index > index,
        "a change to job b moves job a's allocations index"
    );
    let body: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        body.as_array().map(Vec::len),
        before.json().as_array().map(Vec::len)
    );
    harness.nomad.shutdown().await;
}

#[tokio::test]
async fn blocking_times_out_with_unchanged_index() {
    let harness = Harness::start(&["dc1"], 1).await;
    let first = harness.get("/v1/nodes").await;
    // 2 simulated seconds are a few milliseconds of wall time at this speed.
    let reply = harness
        .get(&format!("/v1/nodes?index={}&wait=2s", first.index()))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.index(), first.index());
    assert_eq!(reply.text, first.text);
    harness.nomad.shutdown().await;
}

#[tokio::test]
async fn invalid_blocking_parameters_are_400() {
    let harness = Harness::start(&["dc1"], 1).await;
    let wait = harness.get("/v1/jobs?index=1&wait=soon").await;
    assert_eq!(wait.status, StatusCode::BAD_REQUEST);
    assert_eq!(wait.text, "Invalid wait time");
    let index = harness.get("/v1/jobs?index=x").await;
    assert_eq!(index.status, StatusCode::BAD_REQUEST);
    assert_eq!(index.text, "Invalid index");
    harness.nomad.shutdown().await;
}

#[tokio::test]
async fn empty_lists_are_arrays() {
    let harness = Harness::start(&["dc1"], 1).await;
    for path in [
        "/v1/jobs",
        "/v1/allocations",
        "/v1/deployments",
        "/v1/job/nope/allocations",
        "/v1/job/nope/deployments",
    ] {
        let reply = harness.get(path).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        assert_eq!(reply.text, "[]", "{path}");
    }
    assert_eq!(harness.get("/v1/job/nope/deployment").await.text, "null");
    harness.nomad.shutdown().await;
}

#[tokio::test]
async fn list_endpoints_filter_by_id_prefix() {
    let harness = Harness::start(&["dc1"], 3).await;
    let nodes: Vec<steward::nomad::NodeListStub> = harness.get("/v1/nodes").await.parse();
    let prefix = &nodes[1].id[..8];
    let matching: Vec<steward::nomad::NodeListStub> = harness
        .get(&format!("/v1/nodes?prefix={prefix}"))
        .await
        .parse();
    assert_eq!(matching.len(), 1);
    assert_eq!(matching[0].id, nodes[1].id);
    harness.nomad.shutdown().await;
}
