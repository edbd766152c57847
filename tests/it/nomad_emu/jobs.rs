//! Job registration, versions, EnforceIndex, scaling and placement.

use reqwest::StatusCode;
use serde_json::{Value, json};
use steward::nomad::{Evaluation, Job, JobListStub, JobScaleStatus};
use steward::sim::nomad::NodeSpec;

use super::{Harness, service_job};

#[tokio::test]
async fn register_places_allocations_on_matching_nodes() {
    let harness = Harness::start(&["dc-a", "dc-b"], 2).await;
    let mut job = service_job("web", 2, "app:1");
    job["Constraints"] =
        json!([{"LTarget": "${node.datacenter}", "Operand": "=", "RTarget": "dc-b"}]);
    harness.register(job).await;

    let running = harness.running("web", 2).await;
    let nodes: Vec<steward::nomad::NodeListStub> = harness.get("/v1/nodes").await.parse();
    for alloc in &running {
        let node = nodes
            .iter()
            .find(|node| node.id == alloc.node_id)
            .expect("allocation's node is listed");
        assert_eq!(
            node.datacenter, "dc-b",
            "allocation {} placed outside dc-b",
            alloc.name
        );
    }
    let mut names: Vec<&str> = running.iter().map(|alloc| alloc.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["web.web[0]", "web.web[1]"]);

    let eval_id = &running[0].eval_id;
    let by_eval: Vec<steward::nomad::AllocListStub> = harness
        .get(&format!("/v1/evaluation/{eval_id}/allocations"))
        .await
        .parse();
    assert!(by_eval.iter().any(|alloc| alloc.id == running[0].id));

    let stubs: Vec<JobListStub> = harness.get("/v1/jobs").await.parse();
    assert_eq!(stubs.len(), 1);
    assert_eq!(stubs[0].id, "web");
    harness
        .eventually("job status running", || async {
            let job: Job = harness.get("/v1/job/web").await.parse();
            (job.status.as_deref() == Some("running")).then_some(())
        })
        .await;
    harness.nomad.shutdown().await;
}

#[tokio::test]
async fn register_canonicalizes_defaults() {
    let harness = Harness::start(&["dc1"], 1).await;
    harness.register(service_job("web", 1, "app:1")).await;

    let job: Job = harness.get("/v1/job/web").await.parse();
    assert_eq!(job.name.as_deref(), Some("web"));
    assert_eq!(job.namespace.as_deref(), Some("default"));
    assert_eq!(job.priority, Some(50));
    assert_eq!(job.region.as_deref(), Some("global"));
    assert_eq!(job.version, Some(0));
    assert!(
        job.job_modify_index <= job.modify_index,
        "status changes move ModifyIndex only"
    );
    let update = job.groups()[0]
        .update
        .clone()
        .expect("group update is filled in");
    assert_eq!(update.max_parallel, Some(1));
    harness.nomad.shutdown().await;
}

#[tokio::test]
async fn bare_job_and_mismatched_id_are_rejected() {
    let harness = Harness::start(&["dc1"], 1).await;

    let bare = harness
        .post("/v1/jobs", &service_job("web", 1, "app:1"))
        .await;
    assert_eq!(bare.status, StatusCode::BAD_REQUEST);
    assert_eq!(bare.text, "Job must be specified");
    assert_eq!(
        bare.headers
            .get("content-type")
            .map(|v| v.to_str().unwrap_or("")),
        Some("text/plain; charset=utf-8")
    );

    let mismatch = harness
        .post(
            "/v1/job/other",
            &json!({"Job": service_job("web", 1, "app:1")}),
        )
        .await;
    assert_eq!(mismatch.status, StatusCode::BAD_REQUEST);
    assert_eq!(mismatch.text, "Job ID does not match name");

    let missing = harness.get("/v1/job/nope").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.text, "job not found");
    harness.nomad.shutdown().await;
}

#[tokio::test]
async fn same_spec_register_makes_eval_without_version() {
    let harness = Harness::start(&["dc1"], 1).await;
    let first = harness.register(service_job("web", 1, "app:1")).await;
    let second = harness.register(service_job("web", 1, "app:1")).await;

    assert_ne!(first["EvalID"], second["EvalID"]);
    assert!(!second["EvalID"].as_str().unwrap_or("").is_empty());
    let versions = harness.get("/v1/job/web/versions").await.json();
    assert_eq!(versions["Versions"].as_array().map(Vec::len), Some(1));
    let evals: Vec<Evaluation> = harness.get("/v1/job/web/evaluations").await.parse();
    assert_eq!(evals.len(), 2);

    harness.register(service_job("web", 1, "app:2")).await;
    let job: Job = harness.get("/v1/job/web").await.parse();
    assert_eq!(job.version, Some(1));
    harness.nomad.shutdown().await;
}

#[tokio::test]
async fn enforce_index_conflict_is_plain_text_500() {
    let harness = Harness::start(&["dc1"], 1).await;
    harness.register(service_job("web", 1, "app:1")).await;
    let job: Job = harness.get("/v1/job/web").await.parse();
    let current = job
        .job_modify_index
        .expect("stored job has a JobModifyIndex");

    let stale = harness
        .post(
            "/v1/jobs",
            &json!({"Job": service_job("web", 2, "app:1"), "EnforceIndex": true, "JobModifyIndex": current + 5}),
        )
        .await;
    assert_eq!(stale.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        stale.text,
        format!(
            "Enforcing job modify index {}: job exists with conflicting job modify index: {current}",
            current + 5
        )
    );

    let create_only = harness
        .post(
            "/v1/jobs",
            &json!({"Job": service_job("web", 2, "app:1"), "EnforceIndex": true, "JobModifyIndex": 0}),
        )
        .await;
    assert_eq!(create_only.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        create_only.text,
        "Enforcing job modify index 0: job already exists"
    );

    let fresh = harness
        .post(
            "/v1/jobs",
            &json!({"Job": service_job("web", 2, "app:1"), "EnforceIndex": true, "JobModifyIndex": current}),
        )
        .await;
    assert_eq!(fresh.status, StatusCode::OK, "{}", fresh.text);
    harness.nomad.shutdown().await;
}

#[tokio::test]
async fn scale_changes_count_and_version() {
    let harness = Harness::start(&["dc1"], 2).await;
    harness.register(service_job("web", 2, "app:1")).await;
    harness.running("web", 2).await;
    wait_deployment_done(&harness, "web").await;

    let reply = harness
        .post(
            "/v1/job/web/scale",
            &json!({"Count": 4, "Target": {"Group": "web"}, "Message": "load"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    harness.running("web", 4).await;
    let job: Job = harness.get("/v1/job/web").await.parse();
    assert_eq!(job.version, Some(1));
    wait_deployment_done(&harness, "web").await;

    harness
        .post(
            "/v1/job/web/scale",
            &json!({"Count": 1, "Target": {"Group": "web"}}),
        )
        .await;
    harness.running("web", 1).await;
    let status: JobScaleStatus = harness.get("/v1/job/web/scale").await.parse();
    let group = &status.task_groups["web"];
    assert_eq!(group.desired, 1);
    assert!(
        group
            .events
            .as_ref()
            .is_some_and(|events| events.len() == 2)
    );
    harness.nomad.shutdown().await;
}

#[tokio::test]
async fn scale_errors_follow_nomad_order() {
    let harness = Harness::start(&["dc1"], 1).await;
    harness.register(service_job("web", 1, "app:1")).await;

    let cases = [
        (
            json!({"Count": 2, "Target": {}}),
            StatusCode::BAD_REQUEST,
            "missing task group name for scaling action",
        ),
        (
            json!({"Count": -1, "Target": {"Group": "web"}}),
            StatusCode::BAD_REQUEST,
            "scaling action count can't be negative",
        ),
        (
            json!({"Count": 1, "Error": true, "Target": {"Group": "web"}}),
            StatusCode::BAD_REQUEST,
            "scaling action should not contain count if error is true",
        ),
        (
            json!({"Count": 1, "Target": {"Group": "db"}}),
            StatusCode::BAD_REQUEST,
            "task group \"db\" specified for scaling does not exist in job",
        ),
    ];
    for (body, status, text) in cases {
        let reply = harness.post("/v1/job/web/scale", &body).await;
        assert_eq!(reply.status, status, "{body}");
        assert_eq!(reply.text, text, "{body}");
    }
    // The first deployment must finish, or the scale is rejected for it before the index check.
    wait_deployment_done(&harness, "web").await;
    let stale = harness
        .post(
            "/v1/job/web/scale",
            &json!({"Count": 2, "Target": {"Group": "web"}, "JobModifyIndex": 999_999}),
        )
        .await;
    assert_eq!(stale.status, StatusCode::INTERNAL_SERVER_ERROR);
    let prefix =
        "Enforcing job modify index 999999: job exists with conflicting job modify index: ";
    assert!(stale.text.starts_with(prefix), "{}", stale.text);

    // A scaling policy bounds the count, each bound with its own message.
    let mut bounded = service_job("bounded", 2, "app:1");
    bounded["TaskGroups"][0]["Scaling"] = json!({"Min": 1, "Max": 4, "Enabled": true});
    harness.register(bounded).await;
    wait_deployment_done(&harness, "bounded").await;
    let bounds = [
        (0, "group count was less than scaling policy minimum: 0 < 1"),
        (
            5,
            "group count was greater than scaling policy maximum: 5 > 4",
        ),
    ];
    for (count, text) in bounds {
        let reply = harness
            .post(
                "/v1/job/bounded/scale",
                &json!({"Count": count, "Target": {"Group": "web"}}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "count {count}");
        assert_eq!(reply.text, text);
    }

    let unknown = harness
        .post(
            "/v1/job/nope/scale",
            &json!({"Count": 1, "Target": {"Group": "web"}}),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.text, "job \"nope\" not found");
    harness.nomad.shutdown().await;
}

#[tokio::test]
async fn register_resets_scaled_count_unless_preserved() {
    let harness = Harness::start(&["dc1"], 2).await;
    harness.register(service_job("web", 2, "app:1")).await;
    wait_deployment_done(&harness, "web").await;
    harness
        .post(
            "/v1/job/web/scale",
            &json!({"Count": 7, "Target": {"Group": "web"}}),
        )
        .await;
    wait_deployment_done(&harness, "web").await;

    harness.register(service_job("web", 2, "app:1")).await;
    let job: Job = harness.get("/v1/job/web").await.parse();
    assert_eq!(job.version, Some(2));
    assert_eq!(job.groups()[0].count, Some(2));
    wait_deployment_done(&harness, "web").await;

    harness
        .post(
            "/v1/job/web/scale",
            &json!({"Count": 7, "Target": {"Group": "web"}}),
        )
        .await;
    wait_deployment_done(&harness, "web").await;
    let mut spec = service_job("web", 2, "app:1");
    let mut second = spec["TaskGroups"][0].clone();
    second["Name"] = json!("worker");
    second["Count"] = json!(3);
    spec["TaskGroups"]
        .as_array_mut()
        .expect("groups list")
        .push(second);
    let reply = harness
        .post("/v1/jobs", &json!({"Job": spec, "PreserveCounts": true}))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let job: Job = harness.get("/v1/job/web").await.parse();
    assert_eq!(job.group("web").and_then(|g| g.count), Some(7));
    assert_eq!(job.group("worker").and_then(|g| g.count), Some(3));
    harness.nomad.shutdown().await;
}

#[tokio::test]
async fn exhausted_resources_block_until_a_node_joins() {
    let mut config = super::config();
    config.datacenters = vec!["dc1".to_owned()];
    config.nodes_per_dc = 1;
    config.memory_mb = 1024;
    let harness = Harness::start_with(config).await;
    let mut job = service_job("big", 2, "app:1");
    job["TaskGroups"][0]["Tasks"][0]["Resources"]["MemoryMB"] = json!(800);
    harness.register(job).await;

    let blocked: Evaluation = harness
        .eventually("a blocked evaluation", || async {
            let evals: Vec<Evaluation> = harness.get("/v1/job/big/evaluations").await.parse();
            evals
                .into_iter()
                .find(|eval| eval.status.as_str() == "blocked")
        })
        .await;
    let failed = blocked
        .failed_tg_allocs
        .expect("blocked eval names the failed group");
    assert!(failed.contains_key("web"));
    let summary = harness.get("/v1/job/big/summary").await.json();
    assert_eq!(summary["Summary"]["web"]["Queued"], 1);
    harness.running("big", 1).await;

    harness.nomad.add_node(&NodeSpec {
        datacenter: "dc1".to_owned(),
        node_class: String::new(),
        node_pool: "default".to_owned(),
        meta: Default::default(),
        cpu_mhz: 32_000,
        memory_mb: 4096,
        cores: 8,
        gpus: 0,
    });
    harness.running("big", 2).await;
    let evals: Vec<Evaluation> = harness.get("/v1/job/big/evaluations").await.parse();
    assert!(evals.iter().all(|eval| eval.status.as_str() != "blocked"));
    harness.nomad.shutdown().await;
}

#[tokio::test]
async fn gpu_and_core_requests_limit_placement() {
    let mut config = super::config();
    config.datacenters = vec!["dc1".to_owned()];
    config.nodes_per_dc = 2;
    config.gpus = 1;
    config.cores = 4;
    let harness = Harness::start_with(config).await;
    let mut job = service_job("train", 3, "trainer:1");
    job["TaskGroups"][0]["Tasks"][0]["Resources"] =
        json!({"Cores": 2, "MemoryMB": 1024, "Devices": [{"Name": "nvidia/gpu", "Count": 1}]});
    harness.register(job).await;

    let running = harness.running("train", 2).await;
    assert_ne!(running[0].node_id, running[1].node_id, "one GPU per node");
    let evals: Vec<Evaluation> = harness.get("/v1/job/train/evaluations").await.parse();
    let blocked = evals
        .iter()
        .find(|eval| eval.status.as_str() == "blocked")
        .expect("third allocation is blocked");
    let metric = &blocked.failed_tg_allocs.as_ref().expect("failures")["web"];
    let metric = serde_json::to_value(metric).expect("serializable");
    assert_eq!(metric["DimensionExhausted"]["devices: nvidia/gpu"], 2);
    harness.nomad.shutdown().await;
}

#[tokio::test]
async fn stop_and_purge_job() {
    let harness = Harness::start(&["dc1"], 1).await;
    harness.register(service_job("web", 1, "app:1")).await;
    harness.running("web", 1).await;

    let stop = harness.delete("/v1/job/web").await;
    assert_eq!(stop.status, StatusCode::OK);
    let job: Job = harness.get("/v1/job/web").await.parse();
    assert_eq!(job.stop, Some(true));
    assert_eq!(job.version, Some(1));
    harness
        .eventually("job dead", || async {
            let job: Job = harness.get("/v1/job/web").await.parse();
            (job.status.as_deref() == Some("dead")).then_some(())
        })
        .await;

    let purge = harness.delete("/v1/job/web?purge=true").await;
    assert_eq!(purge.status, StatusCode::OK);
    assert_eq!(
        harness.get("/v1/job/web").await.status,
        StatusCode::NOT_FOUND
    );
    harness.nomad.shutdown().await;
}

/// Waits until every allocation the job wants runs its current version and is healthy, and
/// its latest deployment, if any, is no longer active.
pub(crate) async fn wait_deployment_done(harness: &Harness, job: &str) {
    harness
        .eventually("deployment to finish", || async {
            let spec: Job = harness.get(&format!("/v1/job/{job}")).await.parse();
            let desired: i64 = spec.groups().iter().map(|g| g.count.unwrap_or(1)).sum();
            let healthy = harness
                .allocs(job)
                .await
                .into_iter()
                .filter(|alloc| alloc.desired_status.as_str() == "run")
                .filter(|alloc| alloc.client_status.as_str() == "running")
                .filter(|alloc| Some(alloc.job_version) == spec.version)
                .filter(|alloc| {
                    alloc.deployment_status.as_ref().map(|s| s.healthy)
                        == Some(steward::nomad::Health::Healthy)
                })
                .count();
            let latest = harness
                .get(&format!("/v1/job/{job}/deployment"))
                .await
                .json();
            let status = latest["Status"].as_str().unwrap_or("none");
            let settled = !matches!(status, "running" | "paused");
            (settled && healthy as i64 == desired).then_some(())
        })
        .await;
}

#[tokio::test]
async fn dispatch_creates_child_job() {
    let harness = Harness::start(&["dc1"], 1).await;
    let mut job = service_job("render", 1, "renderer:1");
    job["Type"] = json!("batch");
    job["ParameterizedJob"] =
        json!({"Payload": "optional", "MetaRequired": [], "MetaOptional": []});
    let registered = harness.register(job).await;
    assert_eq!(
        registered["EvalID"], "",
        "a parameterized parent gets no evaluation"
    );

    let reply = harness
        .post(
            "/v1/job/render/dispatch",
            &json!({"Payload": "aGk=", "Meta": {"frame": "7"}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let child_id = reply.json()["DispatchedJobID"]
        .as_str()
        .expect("child ID")
        .to_owned();
    assert!(child_id.starts_with("render/dispatch-"), "{child_id}");

    let escaped = child_id.replace('/', "%2F");
    let child: Job = harness.get(&format!("/v1/job/{escaped}")).await.parse();
    assert_eq!(child.parent_id.as_deref(), Some("render"));
    assert_eq!(child.meta_value("frame"), Some("7"));
    harness
        .eventually("the child's allocation completes", || async {
            let allocs = harness.allocs(&escaped).await;
            allocs
                .iter()
                .any(|alloc| alloc.client_status.as_str() == "complete")
                .then_some(())
        })
        .await;

    let plain = harness.post("/v1/job/nope/dispatch", &json!({})).await;
    assert_eq!(plain.status, StatusCode::NOT_FOUND);
    harness.nomad.shutdown().await;
}

#[tokio::test]
async fn read_job_fills_group_and_task_defaults() {
    let harness = Harness::start(&["dc1"], 1).await;
    let mut job = service_job("web", 1, "app:1");
    job["TaskGroups"][0]["RestartPolicy"] = json!({"Attempts": 5});
    harness.register(job).await;

    let live = harness.get("/v1/job/web").await.json();
    let group = &live["TaskGroups"][0];
    assert_eq!(
        group["RestartPolicy"],
        json!({"Attempts": 5, "Interval": 1_800_000_000_000_i64, "Delay": 15_000_000_000_i64,
            "Mode": "fail", "RenderTemplates": false})
    );
    assert_eq!(
        group["ReschedulePolicy"],
        json!({"Attempts": 0, "Interval": 0, "Delay": 30_000_000_000_i64,
            "DelayFunction": "exponential", "MaxDelay": 3_600_000_000_000_i64, "Unlimited": true})
    );
    assert_eq!(
        group["EphemeralDisk"],
        json!({"Sticky": false, "SizeMB": 300, "Migrate": false})
    );
    let task = &group["Tasks"][0];
    assert_eq!(task["RestartPolicy"], group["RestartPolicy"]);
    assert_eq!(task["KillTimeout"], json!(5_000_000_000_i64));
    assert_eq!(
        task["LogConfig"],
        json!({"MaxFiles": 10, "MaxFileSizeMB": 10, "Disabled": false})
    );
    harness.nomad.shutdown().await;
}

#[tokio::test]
async fn batch_job_gets_batch_policies() {
    let harness = Harness::start(&["dc1"], 1).await;
    let mut job = service_job("report", 1, "app:1");
    job["Type"] = json!("batch");
    harness.register(job).await;

    let live = harness.get("/v1/job/report").await.json();
    let group = &live["TaskGroups"][0];
    assert_eq!(group["RestartPolicy"]["Attempts"], json!(3));
    assert_eq!(
        group["RestartPolicy"]["Interval"],
        json!(86_400_000_000_000_i64)
    );
    assert_eq!(group["ReschedulePolicy"]["Attempts"], json!(1));
    assert_eq!(
        group["ReschedulePolicy"]["DelayFunction"],
        json!("constant")
    );
    harness.nomad.shutdown().await;
}

#[tokio::test]
async fn allocation_list_leaves_task_states_out_on_request() {
    let harness = Harness::start(&["dc-a"], 1).await;
    harness.register(service_job("web", 2, "app:1")).await;
    harness.running("web", 2).await;

    let full = harness.get("/v1/allocations").await.json();
    let brief = harness
        .get("/v1/allocations?task_states=false")
        .await
        .json();

    let full = full.as_array().expect("a list");
    let brief = brief.as_array().expect("a list");
    assert_eq!(full.len(), 2);
    assert_eq!(brief.len(), 2);
    for (with, without) in full.iter().zip(brief) {
        assert!(with.get("TaskStates").is_some_and(Value::is_object));
        assert!(without.get("TaskStates").is_none(), "{without}");
        assert_eq!(with["ID"], without["ID"]);
        assert_eq!(with["ClientStatus"], without["ClientStatus"]);
    }
    harness.nomad.shutdown().await;
}
