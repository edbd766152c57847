//! `per_page` and `next_token` on `GET /v1/jobs` and `GET /v1/allocations`, with
//! `X-Nomad-NextToken` only when another page exists.

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

/// `(CreateIndex, ID)` of each allocation stub in a reply, in reply order.
fn alloc_keys(reply: &super::Reply) -> Vec<(u64, String)> {
    reply
        .json()
        .as_array()
        .expect("a list")
        .iter()
        .map(|stub| {
            (
                stub["CreateIndex"].as_u64().expect("CreateIndex"),
                stub["ID"].as_str().expect("ID").to_owned(),
            )
        })
        .collect()
}

/// Registers `jobs` jobs of `workers` each, one after another, so that their allocations
/// have increasing create indexes.
async fn allocations(jobs: usize, workers: i64) -> Harness {
    let harness = Harness::start(&["dc1"], 2).await;
    for job in 0..jobs {
        let mut spec = service_job(&format!("job-{job}"), workers, "app:1");
        // Small enough that every worker fits on the two nodes.
        spec["TaskGroups"][0]["Tasks"][0]["Resources"] = json!({"CPU": 10, "MemoryMB": 16});
        harness.register(spec).await;
    }
    let total = jobs * usize::try_from(workers).expect("a count");
    harness
        .eventually(&format!("{total} allocations"), || async {
            let stubs = harness.get("/v1/allocations").await.json();
            (stubs.as_array().map(Vec::len) == Some(total)).then_some(())
        })
        .await;
    harness
}

#[tokio::test]
async fn allocation_pages_follow_create_index_then_id() {
    let harness = allocations(6, 2).await;
    let whole = alloc_keys(&harness.get("/v1/allocations").await);
    assert_eq!(whole.len(), 12);
    let mut sorted = whole.clone();
    sorted.sort();
    assert_eq!(
        whole, sorted,
        "an unpaged list is in (CreateIndex, ID) order"
    );
    assert!(
        whole.first().expect("allocations").0 < 10 && whole.last().expect("allocations").0 >= 10,
        "the create indexes cross from one digit to two, so a text comparison of tokens \
         would misorder them: {whole:?}"
    );

    let mut paged = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let path = match &token {
            None => "/v1/allocations?per_page=5".to_owned(),
            Some(token) => format!("/v1/allocations?per_page=5&next_token={token}"),
        };
        let reply = harness.get(&path).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        let page = alloc_keys(&reply);
        assert!(page.len() <= 5, "a page holds at most per_page stubs");
        paged.extend(page);
        token = next_token(&reply);
        match &token {
            Some(token) => {
                let (index, id) = &whole[paged.len()];
                assert_eq!(
                    token,
                    &format!("{index}.{id}"),
                    "the token names the next stub"
                );
            }
            None => break,
        }
    }
    assert_eq!(
        paged, whole,
        "the pages together are the whole list, once each"
    );
}

#[tokio::test]
async fn allocation_prefix_pages_by_id() {
    let harness = allocations(9, 2).await;
    let whole = alloc_keys(&harness.get("/v1/allocations").await);
    // The first hex digit shared by the most IDs. With 18 IDs and 16 digits, two IDs share
    // one.
    let prefix = (0..16)
        .map(|digit| format!("{digit:x}"))
        .max_by_key(|digit| whole.iter().filter(|(_, id)| id.starts_with(digit)).count())
        .expect("16 digits");
    let mut matching: Vec<String> = whole
        .into_iter()
        .map(|(_, id)| id)
        .filter(|id| id.starts_with(&prefix))
        .collect();
    matching.sort();
    assert!(matching.len() >= 2, "two IDs share the prefix {prefix}");

    let mut paged = Vec::new();
    let mut path = format!("/v1/allocations?prefix={prefix}&per_page=1");
    loop {
        let reply = harness.get(&path).await;
        paged.extend(alloc_keys(&reply).into_iter().map(|(_, id)| id));
        let Some(token) = next_token(&reply) else {
            break;
        };
        assert_eq!(
            token,
            matching[paged.len()],
            "under a prefix the token is the next ID"
        );
        path = format!("/v1/allocations?prefix={prefix}&per_page=1&next_token={token}");
    }
    assert_eq!(paged, matching, "under a prefix the pages run in ID order");
}
