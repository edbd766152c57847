//! Every recorded Nomad payload parses into its model type and serializes back with the same
//! field names.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use steward::nomad::*;

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/it/nomad_client/fixtures")
        .join(name)
}

fn read_fixture(name: &str) -> String {
    let path = fixture_path(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read fixture {}: {error}", path.display()))
}

/// Key paths of a JSON value, where list elements share the path segment `[]`.
#[derive(Default)]
struct KeyPaths {
    all: BTreeSet<String>,
    non_null: BTreeSet<String>,
    non_zero: BTreeSet<String>,
}

fn is_zero_like(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(flag) => !flag,
        Value::Number(number) => number.as_f64() == Some(0.0),
        Value::String(text) => text.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.is_empty(),
    }
}

fn collect_paths(value: &Value, prefix: &str, paths: &mut KeyPaths) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let path = format!("{prefix}.{key}");
                paths.all.insert(path.clone());
                if !child.is_null() {
                    paths.non_null.insert(path.clone());
                }
                if !is_zero_like(child) {
                    paths.non_zero.insert(path.clone());
                }
                collect_paths(child, &path, paths);
            }
        }
        Value::Array(items) => {
            for item in items {
                collect_paths(item, &format!("{prefix}[]"), paths);
            }
        }
        _ => {}
    }
}

/// Parses `text` as `T`, serializes it again and checks the field names: every field the
/// input sets (not `null`) is still there, and every field the output adds with a non-zero
/// value was in the input. Returns the parsed value.
fn assert_round_trip<T: DeserializeOwned + Serialize>(name: &str, text: &str) -> T {
    let parsed: T = serde_json::from_str(text)
        .unwrap_or_else(|error| panic!("{name} does not parse as the model type: {error}"));
    let input: Value = serde_json::from_str(text).expect("fixture is valid JSON");
    let output = serde_json::to_value(&parsed).expect("model serializes");

    let mut input_paths = KeyPaths::default();
    collect_paths(&input, "", &mut input_paths);
    let mut output_paths = KeyPaths::default();
    collect_paths(&output, "", &mut output_paths);

    let dropped: Vec<_> = input_paths.non_null.difference(&output_paths.all).collect();
    assert!(
        dropped.is_empty(),
        "{name}: fields lost on re-serialization: {dropped:?}"
    );

    let invented: Vec<_> = output_paths.non_zero.difference(&input_paths.all).collect();
    assert!(
        invented.is_empty(),
        "{name}: fields added on re-serialization: {invented:?}"
    );

    if let Err(error) = serde_json::from_value::<T>(output) {
        panic!("{name}: re-serialized output does not parse again: {error}");
    }
    parsed
}

fn round_trip<T: DeserializeOwned + Serialize>(name: &str) -> T {
    assert_round_trip(name, &read_fixture(name))
}

macro_rules! fixture_tests {
    ($($test:ident: $file:literal => $type:ty;)+) => {
        $(
            #[test]
            fn $test() {
                let _: $type = round_trip($file);
            }
        )+
    };
}

fixture_tests! {
    allocation_read: "allocation-read.json" => Allocation;
    allocation_stop_response: "allocation-stop-response.json" => AllocStopResponse;
    allocations_list: "allocations-list.json" => Vec<AllocListStub>;
    deployment_alloc_health_request: "deployment-allocation-health-request.json" => DeploymentAllocHealthRequest;
    deployment_alloc_health_response: "deployment-allocation-health-response.json" => DeploymentUpdateResponse;
    deployment_allocations: "deployment-allocations.json" => Vec<AllocListStub>;
    deployment_fail_response: "deployment-fail-response.json" => DeploymentUpdateResponse;
    deployment_pause_request: "deployment-pause-request.json" => DeploymentPauseRequest;
    deployment_pause_response: "deployment-pause-response.json" => DeploymentUpdateResponse;
    deployment_promote_all: "deployment-promote-request-all.json" => DeploymentPromoteRequest;
    deployment_promote_groups: "deployment-promote-request-groups.json" => DeploymentPromoteRequest;
    deployment_promote_response: "deployment-promote-response.json" => DeploymentUpdateResponse;
    deployment_read: "deployment-read.json" => Deployment;
    deployments_list_docs: "deployments-list.docs-deployments.json" => Vec<Deployment>;
    deployments_list: "deployments-list.json" => Vec<Deployment>;
    evaluation_read: "evaluation-read.json" => Evaluation;
    evaluations_list: "evaluations-list.json" => Vec<Evaluation>;
    event_stream_frame: "event-stream-frame.json" => EventFrame;
    job_allocations: "job-allocations.json" => Vec<AllocListStub>;
    job_deployments: "job-deployments.json" => Vec<Deployment>;
    job_deregister_response: "job-deregister-response.json" => JobDeregisterResponse;
    job_dispatch_request: "job-dispatch-request.json" => JobDispatchRequest;
    job_dispatch_response: "job-dispatch-response.json" => JobDispatchResponse;
    job_evaluate_request: "job-evaluate-request.json" => JobEvaluateRequest;
    job_evaluations: "job-evaluations.json" => Vec<Evaluation>;
    job_latest_deployment: "job-latest-deployment.json" => Option<Deployment>;
    job_plan_response: "job-plan-response.json" => JobPlanResponse;
    job_read: "job-read.json" => Job;
    job_register_request_nulls: "job-register-request.api-client-nulls.json" => JobRegisterRequest;
    job_register_request: "job-register-request.json" => JobRegisterRequest;
    job_register_response: "job-register-response.json" => JobRegisterResponse;
    job_revert_request: "job-revert-request.json" => JobRevertRequest;
    job_revert_response: "job-revert-response.json" => JobRegisterResponse;
    job_scale_request: "job-scale-request.json" => ScalingRequest;
    job_scale_response: "job-scale-response.json" => JobRegisterResponse;
    job_scale_status: "job-scale-status.json" => JobScaleStatus;
    job_submission: "job-submission.json" => JobSubmission;
    job_summary: "job-summary.json" => JobSummary;
    job_update_response: "job-update-response.json" => JobRegisterResponse;
    job_versions_with_diffs: "job-versions-with-diffs.json" => JobVersionsResponse;
    jobs_list_docs: "jobs-list.docs-jobs.json" => Vec<JobListStub>;
    jobs_list: "jobs-list.json" => Vec<JobListStub>;
    jobs_parse_request: "jobs-parse-request.json" => JobsParseRequest;
    jobs_parse_response: "jobs-parse-response.json" => Job;
    node_allocations: "node-allocations.json" => Vec<Allocation>;
    node_drain_request: "node-drain-request.json" => NodeDrainRequest;
    node_drain_response: "node-drain-response.json" => NodeUpdateResponse;
    node_eligibility_request: "node-eligibility-request.json" => NodeEligibilityRequest;
    node_eligibility_response: "node-eligibility-response.json" => NodeUpdateResponse;
    node_read: "node-read.json" => Node;
    nodes_list: "nodes-list.json" => Vec<NodeListStub>;
}

#[test]
fn event_stream_sample_lines() {
    let text = read_fixture("event-stream-sample.ndjson");
    let mut frames = 0;
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let frame: EventFrame =
            assert_round_trip(&format!("event stream line {}", number + 1), line);
        if !frame.is_heartbeat() {
            frames += 1;
        }
    }
    assert!(frames > 0, "the sample holds no event frames");
}

#[test]
fn every_fixture_has_a_test() {
    let source = include_str!("models.rs");
    let directory = fixture_path("");
    for entry in std::fs::read_dir(&directory).expect("fixture directory exists") {
        let name = entry.expect("directory entry").file_name();
        let name = name.to_string_lossy();
        assert!(
            source.contains(&format!("\"{name}\"")),
            "fixture {name} has no parse test"
        );
    }
}

#[test]
fn allocation_stub_fields_typed() {
    let stubs: Vec<AllocListStub> = round_trip("allocations-list.json");
    let first = &stubs[0];
    assert_eq!(first.id, "5457f16d-0f87-8e6b-5e91-0c7da3a41eb7");
    assert_eq!(first.client_status, ClientStatus::Running);
    assert_eq!(first.desired_status, DesiredStatus::Run);
    assert_eq!(first.health(), Health::Healthy);
    assert!(first.is_running_healthy());
    assert_eq!(first.create_time, UnixNanos(1_636_017_249_798_459_000));

    let status = first
        .deployment_status
        .as_ref()
        .expect("deployment status present");
    let timestamp = status.timestamp.expect("health timestamp present");
    assert_eq!(timestamp.to_string(), "2021-11-04T09:14:22.054814Z");

    let task = &first.task_states.as_ref().expect("task states present")["redis"];
    assert_eq!(task.state, TaskStateKind::Running);
}

#[test]
fn job_allocations_health_unknown() {
    let stubs: Vec<AllocListStub> = round_trip("job-allocations.json");
    assert!(!stubs.is_empty());
    for stub in &stubs {
        assert_eq!(stub.deployment_status, None, "allocation {}", stub.id);
        assert_eq!(stub.health(), Health::Unknown, "allocation {}", stub.id);
    }
}

#[test]
fn deployment_state_typed() {
    let deployments: Vec<Deployment> = round_trip("deployments-list.json");
    let first = &deployments[0];
    assert!(!first.task_groups.is_empty());
    let state = first.task_groups.values().next().expect("one group");
    assert!(
        state.progress_deadline.0 > 0,
        "ProgressDeadline is in nanoseconds"
    );
}

#[test]
fn latest_deployment_null_is_none() {
    let none: Option<Deployment> = serde_json::from_str("null").expect("null parses");
    assert_eq!(none, None);
    let some: Option<Deployment> = round_trip("job-latest-deployment.json");
    assert!(some.is_some());
}

#[test]
fn node_fields_typed() {
    let node: Node = round_trip("node-read.json");
    assert_eq!(node.status, NodeStatus::Ready);
    assert_eq!(node.scheduling_eligibility, SchedulingEligibility::Eligible);
    assert!(!node.drain);
    assert_eq!(node.drain_strategy, None);
    let resources = node
        .node_resources
        .as_ref()
        .expect("node resources present");
    assert_eq!(resources.cpu.cpu_shares, 32000);
    assert!(resources.memory.memory_mb > 0);
    let devices = resources.devices.as_ref().expect("devices present");
    assert_eq!(devices[0].healthy_instances(), 1);
    let last_drain = node.last_drain.as_ref().expect("last drain present");
    assert_eq!(last_drain.status, DrainStatus::Complete);
    assert!(node.meta.is_some());
}

#[test]
fn drain_request_deadline_ns() {
    let request: NodeDrainRequest = round_trip("node-drain-request.json");
    let spec = request.drain_spec.expect("drain spec present");
    assert_eq!(spec.deadline, NomadDuration::from_secs(3600));
    assert!(spec.ignore_system_jobs);
}

#[test]
fn evaluation_failed_groups_typed() {
    let evaluation: Evaluation = round_trip("evaluation-read.json");
    let failed = evaluation
        .failed_tg_allocs
        .as_ref()
        .expect("failed groups present");
    let cache = &failed["cache"];
    assert_eq!(
        cache.nodes_available.as_ref().expect("nodes available")["dc1"],
        0
    );
    let related = evaluation
        .related_evals
        .as_ref()
        .expect("related evaluations");
    assert_eq!(related[0].status, EvalStatus::Complete);
}

#[test]
fn register_request_flags() {
    let request: JobRegisterRequest = round_trip("job-register-request.json");
    assert!(!request.job.id.is_empty());
    assert!(!request.enforce_index);

    let body = JobRegisterRequest {
        job: request.job.clone(),
        enforce_index: true,
        job_modify_index: 117,
        preserve_counts: true,
        ..JobRegisterRequest::default()
    };
    let json = serde_json::to_value(&body).expect("serialize");
    assert_eq!(json["EnforceIndex"], Value::Bool(true));
    assert_eq!(json["JobModifyIndex"], Value::from(117));
    assert_eq!(json["PreserveCounts"], Value::Bool(true));
    assert_eq!(json["Job"]["ID"], Value::from(request.job.id.as_str()));
}

#[test]
fn scale_status_typed() {
    let status: JobScaleStatus = round_trip("job-scale-status.json");
    assert_eq!(status.task_groups["cache"].desired, 1);
    assert_eq!(status.task_groups["cache"].events, None);
}

#[test]
fn jobs_list_summary_typed() {
    let jobs: Vec<JobListStub> = round_trip("jobs-list.json");
    let summary = jobs[0].job_summary.as_ref().expect("summary present");
    assert!(!summary.summary.is_empty());
    assert!(matches!(
        jobs[0].status,
        JobStatus::Running | JobStatus::Pending | JobStatus::Dead
    ));
}
