//! Wire payloads: the JSON shapes of Nomad's HTTP API (PascalCase, nanosecond integers for
//! `*Time` fields, RFC 3339 strings for `time.Time` fields).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::clock::rfc3339;
use super::state::{
    AllocHealth, ClientStatus, Cluster, JobEntry, JobKey, PlacementFailure, SimAlloc,
    SimDeployment, SimEval, SimNode,
};

fn health(status: &Option<AllocHealth>) -> Value {
    match status {
        None => Value::Null,
        Some(status) => json!({
            "Healthy": status.healthy,
            "Timestamp": rfc3339(status.timestamp_ns),
            "Canary": status.canary,
            "ModifyIndex": status.modify_index,
        }),
    }
}

fn task_states(alloc: &SimAlloc) -> Value {
    let state = match alloc.client_status {
        ClientStatus::Pending => "pending",
        ClientStatus::Running => "running",
        _ => "dead",
    };
    let failed = alloc.client_status == ClientStatus::Failed;
    let events: Vec<Value> = alloc
        .events
        .iter()
        .map(|event| {
            json!({
                "Type": event.kind,
                "Time": event.time_ns,
                "DisplayMessage": event.message,
                "Message": event.message,
                "DriverError": event.driver_error,
                "FailsTask": event.fails_task,
                "Details": {},
            })
        })
        .collect();
    let mut states = Map::new();
    for task in &alloc.task_names {
        states.insert(
            task.clone(),
            json!({
                "State": state,
                "Failed": failed,
                "Restarts": 0,
                "LastRestart": null,
                "StartedAt": alloc.running_since_ns.map(rfc3339),
                "FinishedAt": alloc.client_status.is_terminal().then(|| rfc3339(alloc.modify_time_ns)),
                "Events": events,
            }),
        );
    }
    Value::Object(states)
}

/// `AllocListStub`.
pub fn alloc_stub(alloc: &SimAlloc) -> Value {
    json!({
        "ID": alloc.id,
        "EvalID": alloc.eval_id,
        "Name": alloc.name,
        "Namespace": alloc.namespace,
        "NodeID": alloc.node_id,
        "NodeName": alloc.node_name,
        "JobID": alloc.job_id,
        "JobType": alloc.job_type,
        "JobVersion": alloc.job_version,
        "TaskGroup": alloc.task_group,
        "DesiredStatus": alloc.desired_status,
        "DesiredDescription": alloc.desired_description,
        "ClientStatus": alloc.client_status.as_str(),
        "ClientDescription": alloc.client_description,
        "DesiredTransition": {"Migrate": alloc.migrate, "Reschedule": null, "ForceReschedule": null},
        "TaskStates": task_states(alloc),
        "DeploymentStatus": health(&alloc.deployment_status),
        "FollowupEvalID": "",
        "NextAllocation": alloc.next_allocation,
        "RescheduleTracker": null,
        "PreemptedAllocations": null,
        "PreemptedByAllocation": "",
        "CreateIndex": alloc.create_index,
        "ModifyIndex": alloc.modify_index,
        "CreateTime": alloc.create_time_ns,
        "ModifyTime": alloc.modify_time_ns,
    })
}

/// Full `Allocation`.
pub fn alloc_full(alloc: &SimAlloc) -> Value {
    let mut value = alloc_stub(alloc);
    if let Value::Object(map) = &mut value {
        map.insert("Job".to_owned(), serde_json::to_value(&*alloc.job).unwrap_or(Value::Null));
        map.insert("DeploymentID".to_owned(), json!(alloc.deployment_id.clone().unwrap_or_default()));
        map.insert("PreviousAllocation".to_owned(), json!(alloc.previous_allocation));
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

fn summary(cluster: &Cluster, key: &JobKey, entry: &JobEntry) -> Value {
    let mut groups: BTreeMap<String, [u64; 7]> = BTreeMap::new();
    for group in entry.job.groups() {
        groups.insert(group.name.clone(), [0; 7]);
    }
    for alloc in cluster.job_allocs(key) {
        let counts = groups.entry(alloc.task_group.clone()).or_insert([0; 7]);
        match alloc.client_status {
            ClientStatus::Pending if alloc.desired_status == "run" => counts[4] += 1,
            ClientStatus::Running if alloc.desired_status == "run" => counts[3] += 1,
            ClientStatus::Pending | ClientStatus::Running | ClientStatus::Complete => counts[1] += 1,
            ClientStatus::Failed => counts[2] += 1,
            ClientStatus::Lost => counts[5] += 1,
        }
    }
    let blocked = cluster.evals_by_job.get(key).into_iter().flatten().filter_map(|id| cluster.evals.get(id)).find(|eval| eval.status == "blocked");
    if let Some(eval) = blocked {
        for (group, queued) in &eval.queued_allocations {
            if let Some(counts) = groups.get_mut(group) {
                counts[0] = *queued;
            }
        }
    }
    let summary: Map<String, Value> = groups
        .into_iter()
        .map(|(group, c)| {
            (
                group,
                json!({"Queued": c[0], "Complete": c[1], "Failed": c[2], "Running": c[3],
                    "Starting": c[4], "Lost": c[5], "Unknown": c[6]}),
            )
        })
        .collect();
    json!({
        "JobID": key.1,
        "Namespace": key.0,
        "Summary": summary,
        "Children": {"Pending": 0, "Running": 0, "Dead": 0},
        "CreateIndex": entry.job.create_index,
        "ModifyIndex": entry.summary_modify_index,
    })
}

/// `JobSummary` of one job.
pub fn job_summary(cluster: &Cluster, key: &JobKey) -> Option<Value> {
    cluster.jobs.get(key).map(|entry| summary(cluster, key, entry))
}

/// `JobListStub`.
pub fn job_stub(cluster: &Cluster, key: &JobKey, entry: &JobEntry) -> Value {
    let job = &entry.job;
    json!({
        "ID": job.id,
        "ParentID": job.parent_id.clone().unwrap_or_default(),
        "Name": job.name,
        "Namespace": job.namespace,
        "Datacenters": job.datacenters,
        "NodePool": job.node_pool,
        "Multiregion": null,
        "Type": job.r#type,
        "Priority": job.priority,
        "Periodic": job.periodic.is_some(),
        "ParameterizedJob": job.parameterized_job.is_some(),
        "Stop": job.stop.unwrap_or(false),
        "Status": job.status,
        "StatusDescription": job.status_description.clone().unwrap_or_default(),
        "JobSummary": summary(cluster, key, entry),
        "CreateIndex": job.create_index,
        "ModifyIndex": job.modify_index,
        "JobModifyIndex": job.job_modify_index,
        "SubmitTime": job.submit_time,
    })
}

fn failure(failure: &PlacementFailure) -> Value {
    json!({
        "NodesEvaluated": failure.nodes_evaluated,
        "NodesFiltered": failure.nodes_filtered,
        "NodesInPool": failure.nodes_in_pool,
        "NodesAvailable": failure.nodes_available,
        "ClassFiltered": null,
        "ConstraintFiltered": (!failure.constraint_filtered.is_empty()).then_some(&failure.constraint_filtered),
        "NodesExhausted": failure.nodes_exhausted,
        "ClassExhausted": null,
        "DimensionExhausted": (!failure.dimension_exhausted.is_empty()).then_some(&failure.dimension_exhausted),
        "QuotaExhausted": null,
        "ResourcesExhausted": null,
        "Scores": null,
        "ScoreMetaData": null,
        "AllocationTime": 0,
        "CoalescedFailures": failure.coalesced_failures,
    })
}

/// `Evaluation`.
pub fn eval(eval: &SimEval) -> Value {
    let failed: Map<String, Value> = eval
        .failed_tg_allocs
        .iter()
        .map(|(group, f)| (group.clone(), failure(f)))
        .collect();
    json!({
        "ID": eval.id,
        "Namespace": eval.namespace,
        "Priority": eval.priority,
        "Type": eval.job_type,
        "TriggeredBy": eval.triggered_by,
        "JobID": eval.job_id,
        "JobModifyIndex": eval.job_modify_index,
        "NodeID": eval.node_id,
        "DeploymentID": eval.deployment_id,
        "Status": eval.status,
        "StatusDescription": eval.status_description,
        "NextEval": "",
        "PreviousEval": eval.previous_eval,
        "BlockedEval": eval.blocked_eval,
        "FailedTGAllocs": (!failed.is_empty()).then_some(Value::Object(failed)),
        "QueuedAllocations": eval.queued_allocations,
        "SnapshotIndex": eval.create_index,
        "CreateIndex": eval.create_index,
        "ModifyIndex": eval.modify_index,
        "CreateTime": eval.create_time_ns,
        "ModifyTime": eval.modify_time_ns,
    })
}

/// `Deployment`.
pub fn deployment(deployment: &SimDeployment) -> Value {
    let groups: Map<String, Value> = deployment
        .task_groups
        .iter()
        .map(|(group, state)| {
            (
                group.clone(),
                json!({
                    "AutoRevert": state.auto_revert,
                    "AutoPromote": state.auto_promote,
                    "ProgressDeadline": state.progress_deadline_ns,
                    "RequireProgressBy": state.require_progress_by_ns.map(rfc3339),
                    "Promoted": state.promoted,
                    "PlacedCanaries": (!state.placed_canaries.is_empty()).then_some(&state.placed_canaries),
                    "DesiredCanaries": state.desired_canaries,
                    "DesiredTotal": state.desired_total,
                    "PlacedAllocs": state.placed_allocs,
                    "HealthyAllocs": state.healthy_allocs,
                    "UnhealthyAllocs": state.unhealthy_allocs,
                }),
            )
        })
        .collect();
    json!({
        "ID": deployment.id,
        "Namespace": deployment.namespace,
        "JobID": deployment.job_id,
        "JobVersion": deployment.job_version,
        "JobModifyIndex": deployment.job_modify_index,
        "JobSpecModifyIndex": deployment.job_modify_index,
        "JobCreateIndex": deployment.job_create_index,
        "IsMultiregion": false,
        "TaskGroups": groups,
        "Status": deployment.status.as_str(),
        "StatusDescription": deployment.status_description,
        "EvalPriority": 50,
        "CreateIndex": deployment.create_index,
        "ModifyIndex": deployment.modify_index,
        "CreateTime": deployment.create_time_ns,
        "ModifyTime": deployment.modify_time_ns,
    })
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

fn last_drain(node: &SimNode) -> Value {
    match &node.last_drain {
        None => Value::Null,
        Some(last) => json!({
            "Status": last.status,
            "StartedAt": rfc3339(last.started_at_ns),
            "UpdatedAt": rfc3339(last.updated_at_ns),
            "Meta": last.meta,
            "AccessorID": "",
        }),
    }
}

fn drivers() -> Value {
    let driver = |name: &str| {
        json!({"Attributes": {}, "Detected": true, "Healthy": true,
            "HealthDescription": format!("Driver {name} is detected: true"),
            "UpdateTime": "2026-01-01T00:00:00Z"})
    };
    json!({"docker": driver("docker"), "exec": driver("exec"), "raw_exec": driver("raw_exec")})
}

/// `NodeListStub`.
pub fn node_stub(node: &SimNode) -> Value {
    json!({
        "Address": node.attributes.get("unique.network.ip-address"),
        "ID": node.id,
        "Datacenter": node.datacenter,
        "Name": node.name,
        "NodePool": node.node_pool,
        "NodeClass": node.node_class,
        "Version": node.attributes.get("nomad.version"),
        "Drain": node.drain.is_some(),
        "SchedulingEligibility": node.eligibility,
        "Status": node.status,
        "StatusDescription": "",
        "Drivers": drivers(),
        "HostVolumes": {},
        "LastDrain": last_drain(node),
        "CreateIndex": node.create_index,
        "ModifyIndex": node.modify_index,
    })
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
