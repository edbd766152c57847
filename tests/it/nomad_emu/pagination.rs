//! `per_page` and `next_token` on `GET /v1/jobs`, with `X-Nomad-NextToken` only when another
//! page exists.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{Harness, service_job};

fn ids(reply: &super::Reply) -> Vec<String> {
    reply
        .json()
        .as_array()
        .expect("a list")
        .iter()
        .map(|stub| stub["ID"].as_str().expect("ID").to_owned())
        .collect()
}

fn next_token(reply: &super::Reply) -> Option<String> {
    reply
        .headers
        .get("X-Nomad-NextToken")
        .map(|value| value.to_str().expect("ASCII token").to_owned())
}

async fn five_jobs() -> Harness {
    let harness = Harness::start(&["dc1"], 1).await;
    for id in ["a", "b", "c", "d", "e"] {
        harness.register(service_job(id, 0, "app:1")).await;
    }
    harness
}

#[tokio::test]
async fn pages_follow_next_token() {
    let harness = five_jobs().await;

    let first = harness.get("/v1/jobs?per_page=2").await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(ids(&first), ["a", "b"]);
    assert_eq!(next_token(&first).as_deref(), Some("default.c"));

    let second = harness
        .get("/v1/jobs?per_page=2&next_token=default.c")
        .await;
    assert_eq!(ids(&second), ["c", "d"]);
    assert_eq!(next_token(&second).as_deref(), Some("default.e"));

    let last = harness
        .get("/v1/jobs?per_page=2&next_token=default.e")
        .await;
    assert_eq!(ids(&last), ["e"]);
    assert_eq!(next_token(&last), None, "no header on the last page");
}

#[tokio::test]
async fn exact_last_page_has_no_token() {
    let harness = five_jobs().await;
    let reply = harness.get("/v1/jobs?per_page=5").await;
    assert_eq!(ids(&reply).len(), 5);
    assert_eq!(next_token(&reply), None);
}

#[tokio::test]
async fn no_per_page_lists_all_without_token() {
    let harness = five_jobs().await;
    let reply = harness.get("/v1/jobs").await;
    assert_eq!(ids(&reply), ["a", "b", "c", "d", "e"]);
    assert_eq!(next_token(&reply), None);
}

#[tokio::test]
async fn next_token_between_items_starts_at_next() {
    let harness = five_jobs().await;
    // No job has the token `default.bb`, so the page starts at the next one in order.
    let reply = harness.get("/v1/jobs?next_token=default.bb").await;
    assert_eq!(ids(&reply), ["c", "d", "e"]);

    let past_end = harness.get("/v1/jobs?next_token=default.z").await;
    assert_eq!(past_end.status, StatusCode::OK);
    assert_eq!(past_end.json(), json!([]));
    assert_eq!(next_token(&past_end), None);
}

#[tokio::test]
async fn token_carries_namespace() {
    let harness = Harness::start(&["dc1"], 1).await;
    harness.register(service_job("web", 0, "app:1")).await;
    let reply = harness
        .post(
            "/v1/jobs?namespace=prod",
            &json!({"Job": service_job("api", 0, "app:1")}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);

    let first = harness.get("/v1/jobs?namespace=*&per_page=1").await;
    let stubs: Vec<Value> = first.json().as_array().expect("a list").clone();
    assert_eq!(stubs.len(), 1);
    assert_eq!(stubs[0]["Namespace"], "default");
    assert_eq!(next_token(&first).as_deref(), Some("prod.api"));

    let second = harness
        .get("/v1/jobs?namespace=*&per_page=1&next_token=prod.api")
        .await;
    assert_eq!(ids(&second), ["api"]);
    assert_eq!(next_token(&second), None);
}
