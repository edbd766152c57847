//! Raft indexes in write replies: one entry per register, stop and purge, three per scale.

use serde_json::{Value, json};

use super::jobs::wait_deployment_done;
use super::{Harness, service_job};

fn index_of(reply: &Value, field: &str) -> u64 {
    reply[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} is a number in {reply}"))
}

#[tokio::test]
async fn register_reply_has_one_index() {
    let harness = Harness::start(&["dc1"], 2).await;

    let first = harness.register(service_job("web", 1, "app:1")).await;
    let index = index_of(&first, "Index");
    assert_eq!(index_of(&first, "JobModifyIndex"), index, "{first}");
    assert_eq!(index_of(&first, "EvalCreateIndex"), index, "{first}");
    let job = harness.get("/v1/job/web").await.json();
    assert_eq!(index_of(&job, "JobModifyIndex"), index);

    // Let the scheduler write allocations, so later entries are not adjacent.
    harness.running("web", 1).await;
    let second = harness.register(service_job("web", 1, "app:2")).await;
    let index = index_of(&second, "Index");
    assert!(index > index_of(&first, "Index"));
    assert_eq!(index_of(&second, "JobModifyIndex"), index, "{second}");
    assert_eq!(index_of(&second, "EvalCreateIndex"), index, "{second}");
    harness.nomad.shutdown().await;
}

#[tokio::test]
async fn unchanged_register_keeps_job_modify_index() {
    let harness = Harness::start(&["dc1"], 1).await;
    let first = harness.register(service_job("web", 1, "app:1")).await;
    harness.running("web", 1).await;

    let again = harness.register(service_job("web", 1, "app:1")).await;
    assert_eq!(
        index_of(&again, "JobModifyIndex"),
        index_of(&first, "JobModifyIndex"),
        "{again}"
    );
    assert_eq!(
        index_of(&again, "EvalCreateIndex"),
        index_of(&again, "Index")
    );
    assert!(index_of(&again, "Index") > index_of(&first, "Index"));
    harness.nomad.shutdown().await;
}

#[tokio::test]
async fn stop_and_purge_replies_have_one_index() {
    let harness = Harness::start(&["dc1"], 1).await;
    harness.register(service_job("web", 1, "app:1")).await;
    harness.running("web", 1).await;

    for path in ["/v1/job/web", "/v1/job/web", "/v1/job/web?purge=true"] {
        let reply = harness.delete(path).await;
        let body = reply.json();
        let index = index_of(&body, "Index");
        assert_eq!(reply.index(), index, "{path}: {body}");
        assert_eq!(index_of(&body, "JobModifyIndex"), index, "{path}: {body}");
        assert_eq!(index_of(&body, "EvalCreateIndex"), index, "{path}: {body}");
    }
    harness.nomad.shutdown().await;
}

#[tokio::test]
async fn scale_reply_has_three_entries() {
    let harness = Harness::start(&["dc1"], 2).await;
    harness.register(service_job("web", 1, "app:1")).await;
    harness.running("web", 1).await;
    wait_deployment_done(&harness, "web").await;

    let scaled = harness
        .post(
            "/v1/job/web/scale",
            &json!({"Count": 2, "Target": {"Group": "web"}}),
        )
        .await
        .json();
    let job_modify = index_of(&scaled, "JobModifyIndex");
    assert_eq!(
        index_of(&scaled, "EvalCreateIndex"),
        job_modify + 1,
        "{scaled}"
    );
    assert_eq!(index_of(&scaled, "Index"), job_modify + 2, "{scaled}");
    let job = harness.get("/v1/job/web").await.json();
    assert_eq!(index_of(&job, "JobModifyIndex"), job_modify);

    // Without a count only the scaling event is written, also while the deployment of the
    // new count runs.
    let event = harness
        .post(
            "/v1/job/web/scale",
            &json!({"Target": {"Group": "web"}, "Message": "checked"}),
        )
        .await
        .json();
    assert_eq!(index_of(&event, "EvalCreateIndex"), 0, "{event}");
    assert!(index_of(&event, "Index") > index_of(&scaled, "Index"));
    harness.nomad.shutdown().await;
}

#[tokio::test]
async fn drain_reply_has_one_index() {
    let harness = Harness::start(&["dc1"], 2).await;
    let nodes = harness.get("/v1/nodes").await.json();
    let node_id = nodes[0]["ID"].as_str().expect("node has an ID").to_owned();

    let reply = harness
        .post(
            &format!("/v1/node/{node_id}/drain"),
            &json!({"DrainSpec": {"Deadline": 3_600_000_000_000_i64}}),
        )
        .await;
    let body = reply.json();
    let index = index_of(&body, "Index");
    assert_eq!(reply.index(), index, "{body}");
    assert_eq!(index_of(&body, "NodeModifyIndex"), index, "{body}");
    // The drain of an empty node completes at once, a later write to the node.
    let node = harness.get(&format!("/v1/node/{node_id}")).await.json();
    assert!(index_of(&node, "ModifyIndex") >= index, "{node}");
    harness.nomad.shutdown().await;
}
