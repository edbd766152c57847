//! Nodes: drain, eligibility, failure and recovery, sysbatch, pull errors, fault injection.

use reqwest::StatusCode;
use serde_json::json;
use steward::nomad::{Allocation, Node, NodeListStub};

use super::{Harness, service_job};

#[tokio::test]
async fn drain_migrates_allocations_and_completes() {
    let harness = Harness::start(&["dc1"], 3).await;
    harness.register(service_job("web", 4, "app:1")).await;
    let running = harness.running("web", 4).await;
    let drained = running[0].node_id.clone();

    let reply = harness
        .post(
            &format!("/v1/node/{drained}/drain"),
            &json!({"DrainSpec": {"Deadline": 3_600_000_000_000_i64, "IgnoreSystemJobs": false},
                "Meta": {"message": "maintenance"}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert!(reply.json()["NodeModifyIndex"].as_u64().is_some());

    let node: Node = harness
        .eventually("drain complete", || async {
            let node: Node = harness.get(&format!("/v1/node/{drained}")).await.parse();
            let complete = node
                .last_drain
                .as_ref()
                .is_some_and(|last| last.status.as_str() == "complete");
            complete.then_some(node)
        })
        .await;
    assert!(node.drain_strategy.is_none());
    assert_eq!(node.scheduling_eligibility.as_str(), "ineligible");
    let last = node.last_drain.expect("LastDrain is set");
    assert_eq!(
        last.meta
            .as_ref()
            .and_then(|m| m.get("message"))
            .map(String::as_str),
        Some("maintenance")
    );

    let running = harness.running("web", 4).await;
    assert!(running.iter().all(|alloc| alloc.node_id != drained));
    let migrated = harness
        .allocs("web")
        .await
        .into_iter()
        .filter(|alloc| alloc.node_id == drained)
        .all(|alloc| alloc.desired_transition.and_then(|t| t.migrate) == Some(true));
    assert!(
        migrated,
        "allocations left the node with DesiredTransition.Migrate"
    );
    harness.nomad.shutdown().await;
}

#[tokio::test]
async fn drain_of_unknown_node_is_500() {
    let harness = Harness::start(&["dc1"], 1).await;
    let reply = harness
        .post(
            "/v1/node/missing/drain",
            &json!({"DrainSpec": {"Deadline": -1}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(reply.text, "node not found");
    harness.nomad.shutdown().await;
}

#[tokio::test]
async fn eligibility_cannot_be_restored_while_draining() {
    let harness = Harness::start(&["dc1"], 1).await;
    let nodes: Vec<NodeListStub> = harness.get("/v1/nodes").await.parse();
    let id = &nodes[0].id;
    // A batch allocation stuck in a long pull keeps the drain (without deadline) going.
    harness
        .put(
            "/_sim/images",
            &json!({"image": "slow:1", "pullSeconds": 360000}),
        )
        .await;
    let mut job = service_job("batch", 1, "slow:1");
    job["Type"] = json!("batch");
    harness.register(job).await;
    harness
        .eventually("a batch allocation", || async {
            harness.allocs("batch").await.into_iter().next()
        })
        .await;

    harness
        .post(
            &format!("/v1/node/{id}/drain"),
            &json!({"DrainSpec": {"Deadline": 0}}),
        )
        .await;
    let reply = harness
        .post(
            &format!("/v1/node/{id}/eligibility"),
            &json!({"Eligibility": "eligible"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        reply.text,
        "can not set node's scheduling eligibility to eligible while it is draining"
    );
    let bad = harness
        .post(
            &format!("/v1/node/{id}/eligibility"),
            &json!({"Eligibility": "maybe"}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    harness.nomad.shutdown().await;
}

#[tokio::test]
async fn failed_node_allocations_are_lost_and_replaced() {
    let harness = Harness::start(&["dc1"], 3).await;
    harness.register(service_job("web", 3, "app:1")).await;
    let running = harness.running("web", 3).await;
    let failed_node = running[0].node_id.clone();

    let reply = harness
        .post(&format!("/_sim/nodes/{failed_node}/fail"), &json!({}))
        .await;
    assert_eq!(reply.status, StatusCode::OK);

    let replaced = harness.running("web", 3).await;
    assert!(replaced.iter().all(|alloc| alloc.node_id != failed_node));
    let lost: Vec<_> = harness
        .allocs("web")
        .await
        .into_iter()
        .filter(|alloc| alloc.client_status.as_str() == "lost")
        .collect();
    assert!(!lost.is_empty());
    assert!(lost.iter().all(|alloc| !alloc.next_allocation.is_empty()));
    let node: Node = harness
        .get(&format!("/v1/node/{failed_node}"))
        .await
        .parse();
    assert_eq!(node.status.as_str(), "down");

    harness
        .post(&format!("/_sim/nodes/{failed_node}/recover"), &json!({}))
        .await;
    let node: Node = harness
        .get(&format!("/v1/node/{failed_node}"))
        .await
        .parse();
    assert_eq!(node.status.as_str(), "ready");
    harness.nomad.shutdown().await;
}

#[tokio::test]
async fn datacenter_failure_moves_work_to_the_other() {
    let harness = Harness::start(&["dc-a", "dc-b"], 2).await;
    harness.register(service_job("web", 2, "app:1")).await;
    harness.running("web", 2).await;

    let reply = harness
        .post("/_sim/datacenters/dc-a/fail", &json!({}))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let nodes: Vec<NodeListStub> = harness.get("/v1/nodes").await.parse();
    let running = harness
        .eventually("two allocations in dc-b", || async {
            let running = harness.running("web", 2).await;
            running
                .iter()
                .all(|alloc| {
                    nodes
                        .iter()
                        .any(|n| n.id == alloc.node_id && n.datacenter == "dc-b")
                })
                .then_some(running)
        })
        .await;
    assert_eq!(running.len(), 2);
    let unknown = harness
        .post("/_sim/datacenters/nowhere/fail", &json!({}))
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    harness.nomad.shutdown().await;
}

#[tokio::test]
async fn sysbatch_runs_once_on_every_eligible_node() {
    let harness = Harness::start(&["dc1"], 3).await;
    let nodes: Vec<NodeListStub> = harness.get("/v1/nodes").await.parse();
    let ineligible = nodes[2].id.clone();
    harness
        .post(
            &format!("/v1/node/{ineligible}/eligibility"),
            &json!({"Eligibility": "ineligible"}),
        )
        .await;

    let mut job = service_job("prefetch", 1, "app:big");
    job["Type"] = json!("sysbatch");
    harness.register(job).await;

    let complete = harness
        .eventually("two complete allocations", || async {
            let allocs = harness.allocs("prefetch").await;
            let done = allocs
                .iter()
                .filter(|a| a.client_status.as_str() == "complete")
                .count();
            (done == 2 && allocs.len() == 2).then_some(allocs)
        })
        .await;
    assert!(complete.iter().all(|alloc| alloc.node_id != ineligible));
    harness
        .eventually("job dead", || async {
            let job: steward::nomad::Job = harness.get("/v1/job/prefetch").await.parse();
            (job.status.as_deref() == Some("dead")).then_some(())
        })
        .await;
    let state = harness.get("/_sim/state").await.json();
    let cached = state["nodes"]
        .as_array()
        .expect("node list")
        .iter()
        .filter(|node| {
            node["cachedImages"]
                .as_array()
                .is_some_and(|images| images.contains(&json!("app:big")))
        })
        .count();
    assert_eq!(cached, 2);
    harness.nomad.shutdown().await;
}

#[tokio::test]
async fn pull_error_fails_allocation_with_reason() {
    let harness = Harness::start(&["dc1"], 1).await;
    harness
        .put(
            "/_sim/images",
            &json!({"image": "private:1", "pullError": "unauthorized"}),
        )
        .await;
    let mut job = service_job("prefetch", 1, "private:1");
    job["Type"] = json!("sysbatch");
    harness.register(job).await;

    let failed = harness
        .eventually("a failed allocation", || async {
            harness
                .allocs("prefetch")
                .await
                .into_iter()
                .find(|alloc| alloc.client_status.as_str() == "failed")
        })
        .await;
    let alloc: Allocation = harness
        .get(&format!("/v1/allocation/{}", failed.id))
        .await
        .parse();
    let state = &alloc.task_states.as_ref().expect("task states")["app"];
    let errors: Vec<String> = state
        .events
        .iter()
        .flatten()
        .filter_map(|event| event.driver_error.clone())
        .filter(|error| !error.is_empty())
        .collect();
    assert_eq!(errors, ["Failed to pull `private:1`: unauthorized"]);
    harness.nomad.shutdown().await;
}

#[tokio::test]
async fn unavailable_answers_no_cluster_leader() {
    let harness = Harness::start(&["dc1"], 1).await;
    let reply = harness
        .post("/_sim/unavailable", &json!({"seconds": 3600}))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let down = harness.get("/v1/jobs").await;
    assert_eq!(down.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(down.text, "No cluster leader");
    let missing = harness.post("/_sim/unavailable", &json!({})).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    harness.nomad.shutdown().await;
}

#[tokio::test]
async fn slow_pull_keeps_allocation_pending() {
    let harness = Harness::start(&["dc1"], 1).await;
    // 70 GB at 20 MB/s is 3500 simulated seconds, about 6 s of wall time at speed 600.
    harness
        .put(
            "/_sim/images",
            &json!({"image": "model:7g", "sizeMB": 70000}),
        )
        .await;
    harness.register(service_job("infer", 1, "model:7g")).await;
    let pending = harness
        .eventually("a pending allocation", || async {
            harness.allocs("infer").await.into_iter().next()
        })
        .await;
    assert_eq!(pending.client_status.as_str(), "pending");
    assert!(pending.deployment_status.is_none());
    harness.running("infer", 1).await;
    harness.nomad.shutdown().await;
}

#[tokio::test]
async fn system_job_runs_everywhere_and_updates() {
    let harness = Harness::start(&["dc1"], 3).await;
    let mut job = service_job("agent", 1, "agent:1");
    job["Type"] = json!("system");
    harness.register(job.clone()).await;
    let running = harness.running("agent", 3).await;
    let mut nodes: Vec<&str> = running.iter().map(|alloc| alloc.node_id.as_str()).collect();
    nodes.sort();
    nodes.dedup();
    assert_eq!(nodes.len(), 3, "one allocation per node");

    job["TaskGroups"][0]["Tasks"][0]["Config"]["image"] = json!("agent:2");
    harness.register(job).await;
    harness
        .eventually("three allocations of version 1", || async {
            let running = harness.running("agent", 3).await;
            running
                .iter()
                .all(|alloc| alloc.job_version == 1)
                .then_some(())
        })
        .await;
    harness.nomad.shutdown().await;
}
