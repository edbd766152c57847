//! Job validation on register: status 500 and the multi-error texts of Nomad 1.x.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{Harness, service_job};

/// A change that makes a valid job invalid.
type JobChange = fn(&mut Value);

/// Registers `job` and returns the error text, asserting a 500 in plain text.
async fn rejection(harness: &Harness, job: Value) -> String {
    let reply = harness.post("/v1/jobs", &json!({ "Job": job })).await;
    assert_eq!(
        reply.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "register: {}",
        reply.text
    );
    let content_type = reply
        .headers
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    reply.text
}

#[tokio::test]
async fn register_rejects_small_memory() {
    let harness = Harness::start(&["dc1"], 1).await;
    let mut job = service_job("web", 1, "app:1");
    job["TaskGroups"][0]["Tasks"][0]["Resources"] = json!({"CPU": 100, "MemoryMB": 5});

    let text = rejection(&harness, job).await;
    assert_eq!(
        text,
        "1 error occurred:\n\t* Task group web validation failed: 1 error occurred:\n\t\
         * Task app validation failed: 1 error occurred:\n\t* 1 error occurred:\n\t\
         * 1 error occurred:\n\t* minimum MemoryMB value is 10; got 5\n\n\n\n\n\n\n\n\n\n"
    );
    let jobs: Vec<Value> = harness.get("/v1/jobs").await.parse();
    assert!(jobs.is_empty(), "an invalid job is not stored: {jobs:?}");
    harness.nomad.shutdown().await;
}

#[tokio::test]
async fn register_rejects_each_invalid_field() {
    let harness = Harness::start(&["dc1"], 1).await;
    let cases: Vec<(&str, JobChange, &str)> = vec![
        (
            "cpu below 1",
            |job| job["TaskGroups"][0]["Tasks"][0]["Resources"]["CPU"] = json!(0),
            "minimum CPU value is 1; got 0",
        ),
        (
            "cpu and cores",
            |job| job["TaskGroups"][0]["Tasks"][0]["Resources"]["Cores"] = json!(2),
            "Task can only ask for 'cpu' or 'cores' resource, not both.",
        ),
        (
            "memory max below memory",
            |job| job["TaskGroups"][0]["Tasks"][0]["Resources"]["MemoryMaxMB"] = json!(100),
            "MemoryMaxMB value (100) should be larger than MemoryMB value (256)",
        ),
        (
            "group without tasks",
            |job| job["TaskGroups"][0]["Tasks"] = json!([]),
            "Missing tasks for task group",
        ),
        (
            "duplicate task names",
            |job| {
                let task = job["TaskGroups"][0]["Tasks"][0].clone();
                job["TaskGroups"][0]["Tasks"]
                    .as_array_mut()
                    .expect("tasks are a list")
                    .push(task);
            },
            "Task 2 redefines 'app' from task 1",
        ),
        (
            "empty task name",
            |job| job["TaskGroups"][0]["Tasks"][0]["Name"] = json!(""),
            "Task 1 missing name",
        ),
        (
            "restart mode",
            |job| job["TaskGroups"][0]["RestartPolicy"] = json!({"Mode": "bogus"}),
            "Unsupported restart mode: \"bogus\"",
        ),
        (
            "update health check",
            |job| job["TaskGroups"][0]["Update"] = json!({"HealthCheck": "bogus"}),
            "Invalid health check given: \"bogus\"",
        ),
        (
            "negative count",
            |job| job["TaskGroups"][0]["Count"] = json!(-1),
            "Task group count can't be negative",
        ),
        (
            "job type",
            |job| job["Type"] = json!("daemon"),
            "Invalid job type: \"daemon\"",
        ),
        (
            "empty datacenter name",
            |job| job["Datacenters"] = json!(["dc1", ""]),
            "datacenter must be non-empty string",
        ),
        (
            "duplicate group names",
            |job| {
                let group = job["TaskGroups"][0].clone();
                job["TaskGroups"]
                    .as_array_mut()
                    .expect("groups are a list")
                    .push(group);
            },
            "Job task group 2 redefines 'web' from group 1",
        ),
    ];

    for (case, change, expected) in cases {
        let mut job = service_job("web", 1, "app:1");
        change(&mut job);
        let text = rejection(&harness, job).await;
        assert!(
            text.contains(expected),
            "{case}: expected {expected:?} in {text:?}"
        );
    }
    harness.nomad.shutdown().await;
}

#[tokio::test]
async fn register_accepts_cores_without_cpu() {
    let harness = Harness::start(&["dc1"], 1).await;
    let mut job = service_job("web", 1, "app:1");
    job["TaskGroups"][0]["Tasks"][0]["Resources"] = json!({"Cores": 1, "MemoryMB": 10});
    job["TaskGroups"][0]["RestartPolicy"] = json!({"Mode": "delay", "Attempts": 1});
    job["TaskGroups"][0]["Update"] = json!({"HealthCheck": "task_states"});

    let reply = harness.register(job).await;
    assert!(reply["EvalID"].as_str().is_some_and(|id| !id.is_empty()));
    harness.nomad.shutdown().await;
}
