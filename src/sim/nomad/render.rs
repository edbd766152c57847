//! Wire payloads: the JSON shapes of Nomad's HTTP API (PascalCase, nanosecond integers for
//! `*Time` fields, RFC 3339 strings for `time.Time` fields).
//!
//! Stubs, summaries, evaluations and deployments are built with the client's model types in
//! `crate::nomad::model`. Full allocations and nodes are built as JSON (they carry blocks the
//! model keeps free-form), and a test parses them with the model types and requires that no
//! field is unknown to them.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::clock::rfc3339;
use super::state::{
    AllocHealth, CachedStub, ClientStatus, Cluster, JobEntry, JobKey, PlacementFailure, SimAlloc,
    SimDeployment, SimEval, SimNode,
};
use crate::nomad::model::{self as wire, NomadDuration, UnixNanos};

fn timestamp(unix_ns: i64) -> Option<jiff::Timestamp> {
    jiff::Timestamp::from_nanosecond(i128::from(unix_ns)).ok()
}

fn health(status: &Option<AllocHealth>) -> Option<wire::AllocDeploymentStatus> {
    status.as_ref().map(|status| wire::AllocDeploymentStatus {
        healthy: wire::Health::from_option(status.healthy),
        timestamp: timestamp(status.timestamp_ns),
        canary: status.canary,
        modify_index: status.modify_index,
    })
}

fn task_states(alloc: &SimAlloc) -> BTreeMap<String, wire::TaskState> {
    let state = match alloc.client_status {
        ClientStatus::Pending => wire::TaskStateKind::Pending,
        ClientStatus::Running => wire::TaskStateKind::Running,
        _ => wire::TaskStateKind::Dead,
    };
    let events: Vec<wire::TaskEvent> = alloc
        .events
        .iter()
        .map(|event| wire::TaskEvent {
            r#type: event.kind.clone(),
            time: UnixNanos(event.time_ns),
            display_message: Some(event.message.clone()),
            message: Some(event.message.clone()),
            details: Some(BTreeMap::new()),
            fails_task: Some(event.fails_task),
            exit_code: None,
            driver_error: Some(event.driver_error.clone()),
            download_error: None,
            extra: Map::new(),
        })
        .collect();
    alloc
        .task_names
        .iter()
        .map(|task| {
            let task_state = wire::TaskState {
                state: state.clone(),
                failed: alloc.client_status == ClientStatus::Failed,
                restarts: Some(0),
                last_restart: None,
                started_at: alloc.running_since_ns.and_then(timestamp),
                finished_at: if alloc.client_status.is_terminal() {
                    timestamp(alloc.modify_time_ns)
                } else {
                    None
                },
                events: Some(events.clone()),
                extra: Map::new(),
            };
            (task.clone(), task_state)
        })
        .collect()
}

/// `AllocListStub`, built with the client's model so both spell every field alike.
pub fn alloc_stub_model(alloc: &SimAlloc) -> wire::AllocListStub {
    wire::AllocListStub {
        id: alloc.id.clone(),
        eval_id: alloc.eval_id.clone(),
        name: alloc.name.clone(),
        namespace: alloc.namespace.clone(),
        node_id: alloc.node_id.clone(),
        node_name: alloc.node_name.clone(),
        job_id: alloc.job_id.clone(),
        job_type: alloc.job_type.clone(),
        job_version: alloc.job_version,
        task_group: alloc.task_group.clone(),
        allocated_resources: None,
        desired_status: wire::DesiredStatus::from(alloc.desired_status.as_str()),
        desired_description: alloc.desired_description.clone(),
        client_status: wire::ClientStatus::from(alloc.client_status.as_str()),
        client_description: alloc.client_description.clone(),
        desired_transition: Some(wire::DesiredTransition {
            migrate: alloc.migrate,
            ..wire::DesiredTransition::default()
        }),
        task_states: Some(task_states(alloc)),
        deployment_status: health(&alloc.deployment_status),
        followup_eval_id: String::new(),
        next_allocation: alloc.next_allocation.clone(),
        reschedule_tracker: None,
        preempted_allocations: None,
        preempted_by_allocation: String::new(),
        create_index: alloc.create_index,
        modify_index: alloc.modify_index,
        create_time: UnixNanos(alloc.create_time_ns),
        modify_time: UnixNanos(alloc.modify_time_ns),
        extra: Map::new(),
    }
}

/// `AllocListStub` as JSON.
pub fn alloc_stub(alloc: &SimAlloc) -> Value {
    serde_json::to_value(alloc_stub_model(alloc)).unwrap_or(Value::Null)
}

/// Full `Allocation`.
pub fn alloc_full(alloc: &SimAlloc) -> Value {
    let mut value = alloc_stub(alloc);
    if let Value::Object(map) = &mut value {
        map.insert(
            "Job".to_owned(),
            serde_json::to_value(&*alloc.job).unwrap_or(Value::Null),
        );
        map.insert(
            "DeploymentID".to_owned(),
            json!(alloc.deployment_id.clone().unwrap_or_default()),
        );
        map.insert(
            "PreviousAllocation".to_owned(),
            json!(alloc.previous_allocation),
        );
        map.insert("AllocModifyIndex".to_owned(), json!(alloc.modify_index));
        map.insert(
            "AllocatedResources".to_owned(),
            json!({"Shared": {"DiskMB": 0}, "Tasks": {}, "Comparable": {
                "Flattened": {"Cpu": {"CpuShares": alloc.resources.cpu_mhz},
                    "Memory": {"MemoryMB": alloc.resources.memory_mb}}}}),
        );
        map.insert("Metrics".to_owned(), json!({}));
    }
    value
}

fn summary(cluster: &Cluster, key: &JobKey, entry: &JobEntry) -> wire::JobSummary {
    let mut groups: BTreeMap<String, wire::TaskGroupSummary> = BTreeMap::new();
    for group in entry.job.groups() {
        groups.insert(group.name.clone(), wire::TaskGroupSummary::default());
    }
    for alloc in cluster.job_allocs(key) {
        let counts = groups.entry(alloc.task_group.clone()).or_default();
        let desired_run = alloc.desired_status == "run";
        match alloc.client_status {
            ClientStatus::Pending if desired_run => counts.starting += 1,
            ClientStatus::Running if desired_run => counts.running += 1,
            ClientStatus::Pending | ClientStatus::Running | ClientStatus::Complete => {
                counts.complete += 1
            }
            ClientStatus::Failed => counts.failed += 1,
            ClientStatus::Lost => counts.lost += 1,
        }
    }
    if let Some(eval) = blocked_eval(cluster, key) {
        for (group, queued) in &eval.queued_allocations {
            if let Some(counts) = groups.get_mut(group) {
                counts.queued = *queued;
            }
        }
    }
    for counts in groups.values_mut() {
        counts.unknown = Some(0);
    }
    wire::JobSummary {
        job_id: key.1.clone(),
        namespace: Some(key.0.clone()),
        summary: groups,
        children: Some(wire::JobChildrenSummary::default()),
        create_index: entry.job.create_index.unwrap_or(0),
        modify_index: entry.summary_modify_index,
    }
}

/// Returns the job's blocked evaluation, whose queued allocations the summary reports.
fn blocked_eval<'a>(cluster: &'a Cluster, key: &JobKey) -> Option<&'a SimEval> {
    cluster
        .evals_by_job
        .get(key)
        .into_iter()
        .flatten()
        .filter_map(|id| cluster.evals.get(id))
        .find(|eval| eval.status == "blocked")
}

/// `JobSummary` of one job.
pub fn job_summary(cluster: &Cluster, key: &JobKey) -> Option<Value> {
    let entry = cluster.jobs.get(key)?;
    serde_json::to_value(summary(cluster, key, entry)).ok()
}

/// `JobListStub` as JSON.
pub fn job_stub(cluster: &Cluster, key: &JobKey, entry: &JobEntry) -> Value {
    serde_json::to_value(job_stub_model(cluster, key, entry)).unwrap_or(Value::Null)
}

/// Encodes the job's `JobListStub` as compact JSON, the bytes that `job_stub_model`
/// serializes to. The text is cached in the job entry and reused while the job version,
/// the summary index and the blocked evaluation's index are unchanged. A list of quiet
/// jobs then costs one comparison per job instead of a summary over its allocations.
pub fn job_stub_json(
    cluster: &Cluster,
    key: &JobKey,
    entry: &JobEntry,
) -> Result<Arc<str>, serde_json::Error> {
    let blocked_eval_index = blocked_eval(cluster, key).map(|eval| eval.modify_index);
    let mut slot = entry
        .stub_cache
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(cached) = slot.as_ref()
        && Arc::ptr_eq(&cached.job, &entry.job)
        && cached.summary_modify_index == entry.summary_modify_index
        && cached.blocked_eval_index == blocked_eval_index
    {
        return Ok(Arc::clone(&cached.json));
    }

    let json: Arc<str> = serde_json::to_string(&job_stub_model(cluster, key, entry))?.into();
    *slot = Some(CachedStub {
        job: Arc::clone(&entry.job),
        summary_modify_index: entry.summary_modify_index,
        blocked_eval_index,
        json: Arc::clone(&json),
    });
    Ok(json)
}

/// `JobListStub`, built with the client's model.
pub fn job_stub_model(cluster: &Cluster, key: &JobKey, entry: &JobEntry) -> wire::JobListStub {
    let job = &entry.job;
    wire::JobListStub {
        id: job.id.clone(),
        parent_id: job.parent_id.clone().unwrap_or_default(),
        name: job.name.clone().unwrap_or_default(),
        namespace: job.namespace.clone(),
        datacenters: job.datacenters.clone(),
        node_pool: job.node_pool.clone(),
        multiregion: Some(Value::Null),
        r#type: job.r#type.clone().unwrap_or_default(),
        priority: job.priority.unwrap_or(50),
        periodic: job.periodic.is_some(),
        parameterized_job: job.parameterized_job.is_some(),
        stop: job.stop.unwrap_or(false),
        status: wire::JobStatus::from(job.status.as_deref().unwrap_or("pending")),
        status_description: job.status_description.clone().unwrap_or_default(),
        job_summary: Some(summary(cluster, key, entry)),
        create_index: job.create_index.unwrap_or(0),
        modify_index: job.modify_index.unwrap_or(0),
        job_modify_index: job.job_modify_index.unwrap_or(0),
        submit_time: job.submit_time.map(UnixNanos),
        meta: None,
        extra: Map::new(),
    }
}

fn non_empty(map: &BTreeMap<String, u64>) -> Option<BTreeMap<String, u64>> {
    (!map.is_empty()).then(|| map.clone())
}

fn failure(failure: &PlacementFailure) -> wire::AllocMetric {
    wire::AllocMetric {
        nodes_evaluated: failure.nodes_evaluated,
        nodes_filtered: failure.nodes_filtered,
        nodes_in_pool: failure.nodes_in_pool,
        nodes_available: Some(failure.nodes_available.clone()),
        constraint_filtered: non_empty(&failure.constraint_filtered),
        nodes_exhausted: failure.nodes_exhausted,
        dimension_exhausted: non_empty(&failure.dimension_exhausted),
        coalesced_failures: failure.coalesced_failures,
        ..wire::AllocMetric::default()
    }
}

/// `Evaluation`, built with the client's model.
pub fn eval(eval: &SimEval) -> Value {
    let failed: BTreeMap<String, wire::AllocMetric> = eval
        .failed_tg_allocs
        .iter()
        .map(|(group, f)| (group.clone(), failure(f)))
        .collect();
    let model = wire::Evaluation {
        id: eval.id.clone(),
        namespace: Some(eval.namespace.clone()),
        priority: eval.priority,
        r#type: eval.job_type.clone(),
        triggered_by: eval.triggered_by.clone(),
        job_id: eval.job_id.clone(),
        job_modify_index: Some(eval.job_modify_index),
        node_id: Some(eval.node_id.clone()),
        deployment_id: Some(eval.deployment_id.clone()),
        status: wire::EvalStatus::from(eval.status.as_str()),
        status_description: eval.status_description.clone(),
        next_eval: Some(String::new()),
        previous_eval: Some(eval.previous_eval.clone()),
        blocked_eval: Some(eval.blocked_eval.clone()),
        failed_tg_allocs: (!failed.is_empty()).then_some(failed),
        queued_allocations: Some(eval.queued_allocations.clone()),
        snapshot_index: Some(eval.create_index),
        create_index: eval.create_index,
        modify_index: eval.modify_index,
        create_time: Some(UnixNanos(eval.create_time_ns)),
        modify_time: Some(UnixNanos(eval.modify_time_ns)),
        ..wire::Evaluation::default()
    };
    serde_json::to_value(model).unwrap_or(Value::Null)
}

/// `Deployment`, built with the client's model.
pub fn deployment(deployment: &SimDeployment) -> Value {
    let groups: BTreeMap<String, wire::DeploymentState> = deployment
        .task_groups
        .iter()
        .map(|(group, state)| {
            let model = wire::DeploymentState {
                auto_revert: state.auto_revert,
                auto_promote: state.auto_promote,
                progress_deadline: NomadDuration(state.progress_deadline_ns),
                require_progress_by: state.require_progress_by_ns.and_then(timestamp),
                promoted: state.promoted,
                placed_canaries: (!state.placed_canaries.is_empty())
                    .then(|| state.placed_canaries.clone()),
                desired_canaries: state.desired_canaries,
                desired_total: state.desired_total,
                placed_allocs: state.placed_allocs,
                healthy_allocs: state.healthy_allocs,
                unhealthy_allocs: state.unhealthy_allocs,
                extra: Map::new(),
            };
            (group.clone(), model)
        })
        .collect();
    let model = wire::Deployment {
        id: deployment.id.clone(),
        namespace: Some(deployment.namespace.clone()),
        job_id: deployment.job_id.clone(),
        job_version: deployment.job_version,
        job_modify_index: deployment.job_modify_index,
        job_spec_modify_index: Some(deployment.job_modify_index),
        job_create_index: deployment.job_create_index,
        is_multiregion: Some(false),
        task_groups: groups,
        status: wire::DeploymentStatus::from(deployment.status.as_str()),
        status_description: deployment.status_description.clone(),
        eval_priority: Some(50),
        create_index: deployment.create_index,
        modify_index: deployment.modify_index,
        create_time: Some(UnixNanos(deployment.create_time_ns)),
        modify_time: Some(UnixNanos(deployment.modify_time_ns)),
        extra: Map::new(),
    };
    serde_json::to_value(model).unwrap_or(Value::Null)
}

fn drain_strategy(node: &SimNode) -> Value {
    match &node.drain {
        None => Value::Null,
        Some(drain) => json!({
            "Deadline": drain.deadline_ns,
            "IgnoreSystemJobs": drain.ignore_system_jobs,
            "ForceDeadline": drain.force_deadline_ns.map_or_else(|| "0001-01-01T00:00:00Z".to_owned(), rfc3339),
            "StartedAt": rfc3339(drain.started_at_ns),
        }),
    }
}

fn last_drain(node: &SimNode) -> Option<wire::DrainMetadata> {
    node.last_drain.as_ref().map(|last| wire::DrainMetadata {
        started_at: timestamp(last.started_at_ns),
        updated_at: timestamp(last.updated_at_ns),
        status: wire::DrainStatus::from(last.status.as_str()),
        accessor_id: Some(String::new()),
        meta: Some(last.meta.clone()),
    })
}

fn drivers() -> Value {
    let driver = |name: &str| {
        json!({"Attributes": {}, "Detected": true, "Healthy": true,
            "HealthDescription": format!("Driver {name} is detected: true"),
            "UpdateTime": "2026-01-01T00:00:00Z"})
    };
    json!({"docker": driver("docker"), "exec": driver("exec"), "raw_exec": driver("raw_exec")})
}

/// `NodeListStub`, built with the client's model.
pub fn node_stub(node: &SimNode) -> Value {
    let drivers: BTreeMap<String, Value> = match drivers() {
        Value::Object(map) => map.into_iter().collect(),
        _ => BTreeMap::new(),
    };
    let model = wire::NodeListStub {
        address: node
            .attributes
            .get("unique.network.ip-address")
            .cloned()
            .unwrap_or_default(),
        id: node.id.clone(),
        attributes: None,
        datacenter: node.datacenter.clone(),
        name: node.name.clone(),
        node_pool: Some(node.node_pool.clone()),
        node_class: node.node_class.clone(),
        version: node
            .attributes
            .get("nomad.version")
            .cloned()
            .unwrap_or_default(),
        drain: node.drain.is_some(),
        scheduling_eligibility: wire::SchedulingEligibility::from(node.eligibility.as_str()),
        status: wire::NodeStatus::from(node.status.as_str()),
        status_description: String::new(),
        drivers: Some(drivers),
        host_volumes: Some(json!({})),
        node_resources: None,
        reserved_resources: None,
        last_drain: last_drain(node),
        create_index: node.create_index,
        modify_index: node.modify_index,
        extra: Map::new(),
    };
    serde_json::to_value(model).unwrap_or(Value::Null)
}

/// Full `Node`.
pub fn node_full(node: &SimNode) -> Value {
    let devices: Vec<Value> = (0..node.capacity.gpus)
        .map(|n| json!({"ID": format!("GPU-{}-{n}", &node.id[..8]), "Healthy": true, "HealthDescription": "", "Locality": null}))
        .collect();
    json!({
        "ID": node.id,
        "SecretID": "",
        "Datacenter": node.datacenter,
        "Name": node.name,
        "HTTPAddr": format!("{}:4646", node.attributes.get("unique.network.ip-address").map_or("127.0.0.1", String::as_str)),
        "TLSEnabled": false,
        "Attributes": node.attributes,
        "NodeResources": {
            "Cpu": {"CpuShares": node.capacity.cpu_mhz, "TotalCpuCores": node.capacity.cores},
            "Memory": {"MemoryMB": node.capacity.memory_mb},
            "Disk": {"DiskMB": 100_000},
            "Devices": if devices.is_empty() { Value::Null } else {
                json!([{"Vendor": "nvidia", "Type": "gpu", "Name": "emulated", "Instances": devices, "Attributes": {}}])
            },
        },
        "ReservedResources": {"Cpu": {"CpuShares": 0}, "Memory": {"MemoryMB": 0}, "Disk": {"DiskMB": 0}},
        "Links": {},
        "Meta": node.meta,
        "NodeClass": node.node_class,
        "NodePool": node.node_pool,
        "ComputedClass": "",
        "DrainStrategy": drain_strategy(node),
        "Drain": node.drain.is_some(),
        "SchedulingEligibility": node.eligibility,
        "Status": node.status,
        "StatusDescription": "",
        "StatusUpdatedAt": node.status_updated_at,
        "Events": [],
        "Drivers": drivers(),
        "HostVolumes": {},
        "LastDrain": last_drain(node),
        "CreateIndex": node.create_index,
        "ModifyIndex": node.modify_index,
    })
}

#[cfg(test)]
mod tests {
    use serde::de::DeserializeOwned;

    use super::*;
    use crate::sim::nomad::jobs::{RegisterRequest, register};
    use crate::sim::nomad::lifecycle::tick;
    use crate::sim::nomad::{NomadEmulatorConfig, build_cluster};

    /// Builds a cluster with one running service job, one blocked group and one deployment.
    fn busy_cluster() -> Cluster {
        let config = NomadEmulatorConfig {
            nodes_per_dc: 2,
            gpus: 1,
            ..NomadEmulatorConfig::default()
        };
        let mut cluster = build_cluster(&config, 0).expect("valid configuration");
        let job: crate::nomad::model::Job = serde_json::from_value(json!({
            "ID": "web",
            "TaskGroups": [
                {"Name": "web", "Count": 2, "Tasks": [{"Name": "app", "Driver": "docker",
                    "Config": {"image": "app:1"}}]},
                {"Name": "gpu", "Count": 3, "Tasks": [{"Name": "train", "Driver": "docker",
                    "Config": {"image": "app:1"},
                    "Resources": {"Devices": [{"Name": "nvidia/gpu"}]}}]}
            ]
        }))
        .expect("valid job");
        register(
            &mut cluster,
            RegisterRequest {
                job,
                ..RegisterRequest::default()
            },
            0,
        )
        .expect("register");
        for second in 0..60 {
            tick(&mut cluster, second * 1_000_000_000);
        }
        cluster
    }

    /// Parses a rendered payload with the client's model and returns the fields the model
    /// does not know, which must be none for the emulator and client to agree on names.
    fn unknown_fields<T: DeserializeOwned>(
        value: &Value,
        extra: impl Fn(&T) -> Vec<String>,
    ) -> Vec<String> {
        let parsed: T = serde_json::from_value(value.clone())
            .unwrap_or_else(|error| panic!("payload does not parse ({error}): {value}"));
        extra(&parsed)
    }

    fn keys(map: &serde_json::Map<String, Value>) -> Vec<String> {
        map.keys().cloned().collect()
    }

    #[test]
    fn payloads_use_client_field_names() {
        let cluster = busy_cluster();
        let key = ("default".to_owned(), "web".to_owned());

        let alloc = cluster.job_allocs(&key).next().expect("an allocation");
        assert_eq!(
            unknown_fields::<wire::AllocListStub>(&alloc_stub(alloc), |a| keys(&a.extra)),
            Vec::<String>::new()
        );
        let full = alloc_full(alloc);
        let parsed: wire::Allocation = serde_json::from_value(full).expect("allocation parses");
        assert_eq!(parsed.id, alloc.id);
        for state in parsed.task_states.iter().flat_map(|states| states.values()) {
            assert_eq!(keys(&state.extra), Vec::<String>::new());
            for event in state.events.iter().flatten() {
                assert_eq!(keys(&event.extra), Vec::<String>::new());
            }
        }

        let entry = &cluster.jobs[&key];
        assert_eq!(
            unknown_fields::<wire::JobListStub>(&job_stub(&cluster, &key, entry), |j| keys(
                &j.extra
            )),
            Vec::<String>::new()
        );
        for evaluation in cluster.evals.values() {
            let value = eval(evaluation);
            assert_eq!(
                unknown_fields::<wire::Evaluation>(&value, |e| keys(&e.extra)),
                Vec::<String>::new()
            );
            let parsed: wire::Evaluation = serde_json::from_value(value).expect("eval parses");
            for metric in parsed.failed_tg_allocs.iter().flat_map(|m| m.values()) {
                assert_eq!(keys(&metric.extra), Vec::<String>::new());
            }
        }
        assert!(
            cluster.evals.values().any(|e| e.status == "blocked"),
            "the gpu group blocks"
        );

        for item in cluster.deployments.values() {
            let value = deployment(item);
            let parsed: wire::Deployment =
                serde_json::from_value(value).expect("deployment parses");
            assert_eq!(keys(&parsed.extra), Vec::<String>::new());
            for state in parsed.task_groups.values() {
                assert_eq!(keys(&state.extra), Vec::<String>::new());
            }
        }
        assert!(!cluster.deployments.is_empty());

        for node in cluster.nodes.values() {
            assert_eq!(
                unknown_fields::<wire::NodeListStub>(&node_stub(node), |n| keys(&n.extra)),
                Vec::<String>::new()
            );
            let parsed: wire::Node = serde_json::from_value(node_full(node)).expect("node parses");
            assert_eq!(keys(&parsed.extra), Vec::<String>::new());
            assert_eq!(parsed.id, node.id);
        }
    }
}

#[cfg(test)]
mod stub_cache_tests {
    use super::*;
    use crate::sim::nomad::jobs::{RegisterRequest, register, update_job_status};
    use crate::sim::nomad::lifecycle::tick;
    use crate::sim::nomad::state::Table;
    use crate::sim::nomad::{NomadEmulatorConfig, build_cluster};

    /// Builds a cluster with one service job whose `gpu` group is blocked (one GPU node
    /// for three allocations), so the job has a blocked evaluation.
    fn cluster_with_blocked_job() -> Cluster {
        let config = NomadEmulatorConfig {
            nodes_per_dc: 2,
            gpus: 1,
            ..NomadEmulatorConfig::default()
        };
        let mut cluster = build_cluster(&config, 0).expect("valid configuration");
        let job: crate::nomad::model::Job = serde_json::from_value(json!({
            "ID": "web",
            "TaskGroups": [
                {"Name": "web", "Count": 2, "Tasks": [{"Name": "app", "Driver": "docker",
                    "Config": {"image": "app:1"}}]},
                {"Name": "gpu", "Count": 3, "Tasks": [{"Name": "train", "Driver": "docker",
                    "Config": {"image": "app:1"},
                    "Resources": {"Devices": [{"Name": "nvidia/gpu"}]}}]}
            ]
        }))
        .expect("valid job");
        let request = RegisterRequest {
            job,
            ..RegisterRequest::default()
        };
        register(&mut cluster, request, 0).expect("register");
        for second in 0..60 {
            tick(&mut cluster, second * 1_000_000_000);
        }
        cluster
    }

    /// Returns the cached stub text and the text of a stub built from scratch.
    fn cached_and_fresh(cluster: &Cluster, key: &JobKey) -> (Arc<str>, String) {
        let entry = &cluster.jobs[key];
        let cached = job_stub_json(cluster, key, entry).expect("stub encodes");
        let fresh =
            serde_json::to_string(&job_stub_model(cluster, key, entry)).expect("stub encodes");
        (cached, fresh)
    }

    #[test]
    fn cached_stub_reused_while_unchanged() {
        let cluster = cluster_with_blocked_job();
        let key = ("default".to_owned(), "web".to_owned());

        let (first, fresh) = cached_and_fresh(&cluster, &key);
        let (second, _) = cached_and_fresh(&cluster, &key);

        assert_eq!(&*first, fresh);
        assert!(
            Arc::ptr_eq(&first, &second),
            "second read re-encoded the stub"
        );
    }

    #[test]
    fn cached_stub_follows_alloc_update() {
        let mut cluster = cluster_with_blocked_job();
        let key = ("default".to_owned(), "web".to_owned());
        let (before, _) = cached_and_fresh(&cluster, &key);
        let alloc_id = cluster
            .job_allocs(&key)
            .next()
            .expect("an allocation")
            .id
            .clone();

        cluster.begin();
        cluster.update_alloc(&alloc_id, 1, |alloc| {
            alloc.client_status = ClientStatus::Failed;
        });
        cluster.commit();
        let (after, fresh) = cached_and_fresh(&cluster, &key);

        assert_eq!(&*after, fresh);
        assert_ne!(before, after);
        assert!(
            after.contains("\"Failed\":1"),
            "summary misses the failure: {after}"
        );
    }

    #[test]
    fn cached_stub_follows_job_update() {
        let mut cluster = cluster_with_blocked_job();
        let key = ("default".to_owned(), "web".to_owned());
        let (before, _) = cached_and_fresh(&cluster, &key);

        cluster.begin();
        update_job_status(&mut cluster, &key, |job| {
            job.status_description = Some("checked by a test".to_owned());
            true
        });
        cluster.commit();
        let (after, fresh) = cached_and_fresh(&cluster, &key);

        assert_eq!(&*after, fresh);
        assert_ne!(before, after);
        assert!(after.contains("checked by a test"));
    }

    #[test]
    fn cached_stub_follows_blocked_eval() {
        let mut cluster = cluster_with_blocked_job();
        let key = ("default".to_owned(), "web".to_owned());
        let (before, _) = cached_and_fresh(&cluster, &key);
        let blocked_id = blocked_eval(&cluster, &key)
            .expect("the gpu group is blocked")
            .id
            .clone();

        cluster.begin();
        let index = cluster.touch(Table::Evals);
        let eval = cluster
            .evals
            .get_mut(&blocked_id)
            .expect("blocked evaluation");
        eval.queued_allocations.insert("gpu".to_owned(), 7);
        eval.modify_index = index;
        cluster.commit();
        let (after, fresh) = cached_and_fresh(&cluster, &key);

        assert_eq!(&*after, fresh);
        assert_ne!(before, after);
        assert!(
            after.contains("\"Queued\":7"),
            "summary misses the queue: {after}"
        );
    }
}
