//! Node writes: creation from the configuration, failure and recovery, drain and
//! scheduling eligibility.

use std::collections::BTreeMap;

use super::events::{EventType, Subject};
use super::jobs::ApiError;
use super::lifecycle::last_drain_started;
use super::state::{ClientStatus, Cluster, DrainState, SimNode, Table, TaskEvent, Usage};

/// The shape of one emulated node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSpec {
    pub datacenter: String,
    pub node_class: String,
    pub node_pool: String,
    pub meta: BTreeMap<String, String>,
    pub cpu_mhz: i64,
    pub memory_mb: i64,
    pub cores: i64,
    pub gpus: i64,
}

/// Adds a node and returns its ID. Its name is `client-<n>` and its `zone` meta alternates
/// `odd` and `even` unless the spec sets it.
pub fn add_node(cluster: &mut Cluster, spec: &NodeSpec, now_ns: i64) -> String {
    cluster.begin();
    let number = cluster.nodes.len() + 1;
    let id = cluster.new_id();
    let name = format!("client-{number}");
    let mut meta = spec.meta.clone();
    meta.entry("zone".to_owned())
        .or_insert_with(|| if number % 2 == 1 { "odd" } else { "even" }.to_owned());
    let attributes: BTreeMap<String, String> = [
        ("kernel.name", "linux".to_owned()),
        ("os.name", "ubuntu".to_owned()),
        ("cpu.arch", "amd64".to_owned()),
        ("cpu.numcores", spec.cores.to_string()),
        ("cpu.totalcompute", spec.cpu_mhz.to_string()),
        (
            "memory.totalbytes",
            (spec.memory_mb * 1024 * 1024).to_string(),
        ),
        ("nomad.version", "1.10.2".to_owned()),
        ("unique.hostname", name.clone()),
        (
            "unique.network.ip-address",
            format!("10.0.{}.{}", number / 250, number % 250 + 1),
        ),
        ("driver.docker", "1".to_owned()),
        ("driver.exec", "1".to_owned()),
        ("driver.raw_exec", "1".to_owned()),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    .chain((spec.gpus > 0).then(|| ("device.nvidia.gpu.count".to_owned(), spec.gpus.to_string())))
    .collect();

    let index = cluster.touch(Table::Nodes);
    cluster.mark_event(
        index,
        EventType::NodeRegistration,
        Subject::Node(id.clone()),
    );
    cluster.nodes.insert(
        id.clone(),
        SimNode {
            id: id.clone(),
            name,
            datacenter: spec.datacenter.clone(),
            node_class: spec.node_class.clone(),
            node_pool: spec.node_pool.clone(),
            meta,
            attributes,
            capacity: Usage {
                cpu_mhz: spec.cpu_mhz,
                memory_mb: spec.memory_mb,
                cores: spec.cores,
                gpus: spec.gpus,
            },
            used: Usage::default(),
            status: "ready".to_owned(),
            eligibility: "eligible".to_owned(),
            drain: None,
            last_drain: None,
            image_cache: Default::default(),
            create_index: index,
            modify_index: index,
            status_updated_at: now_ns / 1_000_000_000,
        },
    );
    cluster.unblock_evals();
    id
}

/// Marks a node down: its live allocations become `lost` and are replaced elsewhere.
pub fn fail_node(cluster: &mut Cluster, node_id: &str, now_ns: i64) -> Result<(), ApiError> {
    cluster.begin();
    let index = cluster.touch(Table::Nodes);
    let Some(node) = cluster.nodes.get_mut(node_id) else {
        return Err(ApiError::not_found("node not found"));
    };
    node.status = "down".to_owned();
    node.modify_index = index;
    node.status_updated_at = now_ns / 1_000_000_000;
    cluster.mark_event(
        index,
        EventType::NodeStreamEvent,
        Subject::Node(node_id.to_owned()),
    );

    let live: Vec<String> = cluster
        .node_allocs(node_id)
        .filter(|alloc| alloc.is_live())
        .map(|alloc| alloc.id.clone())
        .collect();
    for id in live {
        cluster.update_alloc(&id, now_ns, |alloc| {
            alloc.client_status = ClientStatus::Lost;
            alloc.client_description = "alloc is lost since its node is down".to_owned();
            alloc.events.push(TaskEvent {
                kind: "Killed".to_owned(),
                time_ns: now_ns,
                message: "Node is down".to_owned(),
                driver_error: String::new(),
                fails_task: false,
            });
        });
    }
    // The lost allocations are desired to run, so the evaluations replace them.
    queue_node_evals(cluster, node_id, "node-update", now_ns);
    tracing::info!(node = %node_id, "node failed");
    Ok(())
}

/// Brings a node back to `ready` and retries blocked evaluations and system jobs.
pub fn recover_node(cluster: &mut Cluster, node_id: &str, now_ns: i64) -> Result<(), ApiError> {
    cluster.begin();
    let index = cluster.touch(Table::Nodes);
    let Some(node) = cluster.nodes.get_mut(node_id) else {
        return Err(ApiError::not_found("node not found"));
    };
    node.status = "ready".to_owned();
    node.modify_index = index;
    node.status_updated_at = now_ns / 1_000_000_000;
    cluster.mark_event(
        index,
        EventType::NodeStreamEvent,
        Subject::Node(node_id.to_owned()),
    );
    cluster.unblock_evals();
    queue_system_jobs(cluster);
    tracing::info!(node = %node_id, "node recovered");
    Ok(())
}

/// Creates one evaluation per job with allocations on a node, as Nomad does when a node
/// changes status or starts draining.
fn queue_node_evals(cluster: &mut Cluster, node_id: &str, triggered_by: &str, now_ns: i64) {
    let mut jobs: Vec<std::sync::Arc<crate::nomad::model::Job>> = Vec::new();
    for alloc in cluster.node_allocs(node_id) {
        if !jobs
            .iter()
            .any(|job| job.id == alloc.job_id && job.namespace == alloc.job.namespace)
        {
            jobs.push(std::sync::Arc::clone(&alloc.job));
        }
    }
    for job in jobs {
        let key = (job.namespace_or_default().to_owned(), job.id.clone());
        let current = cluster
            .jobs
            .get(&key)
            .map(|entry| std::sync::Arc::clone(&entry.job));
        if let Some(current) = current {
            cluster.create_eval(&current, triggered_by, node_id, "", now_ns);
        }
    }
}

/// Marks system and sysbatch jobs for reconciling, because the set of nodes changed.
pub fn queue_system_jobs(cluster: &mut Cluster) {
    let keys: Vec<_> = cluster
        .jobs
        .iter()
        .filter(|(_, entry)| matches!(entry.job.r#type.as_deref(), Some("system" | "sysbatch")))
        .map(|(key, _)| key.clone())
        .collect();
    cluster.dirty_jobs.extend(keys);
}

/// `POST /v1/node/:id/drain`. `deadline_ns` < 0 forces now, 0 means no deadline; `None`
/// cancels a drain. Returns the node's new modify index.
pub fn set_drain(
    cluster: &mut Cluster,
    node_id: &str,
    spec: Option<(i64, bool)>,
    mark_eligible: bool,
    meta: BTreeMap<String, String>,
    now_ns: i64,
) -> Result<u64, ApiError> {
    if !cluster.nodes.contains_key(node_id) {
        return Err(ApiError::internal("node not found"));
    }
    cluster.begin();
    let index = cluster.touch(Table::Nodes);
    cluster.mark_event(
        index,
        EventType::NodeDrain,
        Subject::Node(node_id.to_owned()),
    );
    let node = cluster
        .nodes
        .get_mut(node_id)
        .expect("presence was checked above under the same lock");
    node.modify_index = index;
    match spec {
        Some((deadline_ns, ignore_system_jobs)) => {
            let force_deadline_ns = match deadline_ns {
                d if d < 0 => Some(now_ns),
                0 => None,
                d => Some(now_ns + d),
            };
            node.drain = Some(DrainState {
                deadline_ns,
                ignore_system_jobs,
                force_deadline_ns,
                started_at_ns: now_ns,
            });
            node.eligibility = "ineligible".to_owned();
            node.last_drain = Some(last_drain_started(now_ns, meta));
            queue_node_evals(cluster, node_id, "node-drain", now_ns);
        }
        None => {
            if node.drain.take().is_some()
                && let Some(last) = node.last_drain.as_mut()
            {
                last.status = "canceled".to_owned();
                last.updated_at_ns = now_ns;
            }
            if mark_eligible {
                node.eligibility = "eligible".to_owned();
            }
            cluster.unblock_evals();
        }
    }
    Ok(index)
}

/// `POST /v1/node/:id/eligibility`.
pub fn set_eligibility(
    cluster: &mut Cluster,
    node_id: &str,
    eligibility: &str,
) -> Result<u64, ApiError> {
    if eligibility != "eligible" && eligibility != "ineligible" {
        return Err(ApiError::bad_request("invalid scheduling eligibility"));
    }
    let Some(node) = cluster.nodes.get(node_id) else {
        return Err(ApiError::internal("node not found"));
    };
    if node.drain.is_some() && eligibility == "eligible" {
        return Err(ApiError::internal(
            "can not set node's scheduling eligibility to eligible while it is draining",
        ));
    }
    cluster.begin();
    let index = cluster.touch(Table::Nodes);
    if let Some(node) = cluster.nodes.get_mut(node_id) {
        node.eligibility = eligibility.to_owned();
        node.modify_index = index;
    }
    cluster.mark_event(
        index,
        EventType::NodeEligibility,
        Subject::Node(node_id.to_owned()),
    );
    if eligibility == "eligible" {
        cluster.unblock_evals();
        queue_system_jobs(cluster);
    }
    Ok(index)
}
