//! The reconciler: compares a job's groups with its allocations and places, replaces or
//! stops allocations, following the group's `Update` block when a deployment is running.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::events::{EventType, Subject};
use super::placement::{
    PlacementRequest, RegexCache, group_fingerprint, group_images, group_spreads, group_usage,
    merge_failure, select_node, spread_counts_for, start_delay, wants_distinct_hosts,
};
use super::state::{
    AllocHealth, ClientStatus, Cluster, DeploymentStatus, GroupDeployment, JobKey,
    PlacementFailure, SimAlloc, SimDeployment, Table, TaskEvent, Timer,
};
use crate::nomad::model::{Job, TaskGroup};

/// Most reschedules of a failed service allocation. Nomad's default is unlimited with an
/// exponential delay; the cap keeps a permanently broken image from looping forever.
pub const MAX_RESCHEDULES: u32 = 3;
/// First reschedule delay of a failed service allocation, doubled on every attempt.
const RESCHEDULE_DELAY_NS: i64 = 30_000_000_000;

/// The result of one reconcile of a job.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Groups that could not be fully placed.
    pub failures: BTreeMap<String, PlacementFailure>,
    /// Allocations per group still waiting for a node.
    pub queued: BTreeMap<String, u64>,
}

/// One allocation to create.
struct Placement {
    group: String,
    name_index: u32,
    canary: bool,
    previous: Option<(String, u32)>,
}

/// Reconciles one job and returns what could not be placed.
pub fn reconcile_job(cluster: &mut Cluster, key: &JobKey, now_ns: i64, eval_id: &str) -> Outcome {
    let mut outcome = Outcome::default();
    let job = cluster.jobs.get(key).map(|entry| Arc::clone(&entry.job));
    let live: Vec<String> = cluster
        .job_allocs(key)
        .filter(|alloc| alloc.is_live())
        .map(|alloc| alloc.id.clone())
        .collect();

    let Some(job) = job.filter(|job| job.stop != Some(true)) else {
        cancel_deployment(
            cluster,
            key,
            None,
            "Cancelled because job is stopped",
            now_ns,
        );
        for id in live {
            cluster.stop_alloc(&id, now_ns, "alloc not needed due to job update");
        }
        return outcome;
    };

    // Like Nomad's reconciler, every evaluation of a newer job version cancels the active
    // deployment of an older one.
    cancel_deployment(
        cluster,
        key,
        Some(job.version.unwrap_or(0)),
        NEWER_VERSION,
        now_ns,
    );

    let group_names: Vec<&str> = job
        .groups()
        .iter()
        .map(|group| group.name.as_str())
        .collect();
    for id in &live {
        let orphan = cluster
            .allocs
            .get(id)
            .is_some_and(|alloc| !group_names.contains(&alloc.task_group.as_str()));
        if orphan {
            cluster.stop_alloc(id, now_ns, "alloc not needed as task group was removed");
        }
    }

    let job_type = job.r#type.as_deref().unwrap_or("service");
    let mut regexes = RegexCache::default();
    for group in job.groups() {
        let placements = match job_type {
            "system" | "sysbatch" => {
                place_per_node(cluster, key, &job, group, now_ns, eval_id, &mut regexes)
            }
            _ => {
                let planned = plan_group(cluster, key, &job, group, now_ns);
                place(
                    cluster,
                    key,
                    &job,
                    group,
                    planned,
                    now_ns,
                    eval_id,
                    &mut regexes,
                )
            }
        };
        if let Some((failure, queued)) = placements {
            outcome.failures.insert(group.name.clone(), failure);
            outcome.queued.insert(group.name.clone(), queued);
        }
    }
    outcome
}

/// Decides the allocations of a service or batch group to create, and stops the ones that
/// must go. Returns the placements to make.
fn plan_group(
    cluster: &mut Cluster,
    key: &JobKey,
    job: &Arc<Job>,
    group: &TaskGroup,
    now_ns: i64,
) -> Vec<Placement> {
    let desired = u32::try_from(group.count.unwrap_or(1).max(0)).unwrap_or(u32::MAX);
    let fingerprint = group_fingerprint(job, group);
    let version = job.version.unwrap_or(0);
    let is_batch = job.r#type.as_deref() == Some("batch");

    // In-place update: allocations whose group spec did not change move to the new version.
    let in_place: Vec<String> = cluster
        .job_allocs(key)
        .filter(|alloc| {
            alloc.task_group == group.name
                && alloc.is_live()
                && alloc.fingerprint == fingerprint
                && alloc.job_version != version
        })
        .map(|alloc| alloc.id.clone())
        .collect();
    for id in in_place {
        let job = Arc::clone(job);
        cluster.update_alloc(&id, now_ns, |alloc| {
            alloc.job_version = version;
            alloc.job = job;
        });
    }

    let allocs: Vec<SimAlloc> = cluster
        .job_allocs(key)
        .filter(|alloc| alloc.task_group == group.name)
        .cloned()
        .collect();
    let live: Vec<&SimAlloc> = allocs.iter().filter(|alloc| alloc.is_live()).collect();
    let (current, mut old): (Vec<&SimAlloc>, Vec<&SimAlloc>) = live
        .iter()
        .partition(|alloc| alloc.fingerprint == fingerprint);
    let mut used_names: Vec<u32> = live.iter().map(|alloc| alloc.name_index).collect();
    let mut placements = Vec::new();

    if is_batch {
        let done = allocs
            .iter()
            .filter(|alloc| {
                alloc.desired_status == "run"
                    && matches!(
                        alloc.client_status,
                        ClientStatus::Complete | ClientStatus::Failed
                    )
            })
            .count();
        // NOTE: failed batch allocations are not rescheduled.
        let missing = (desired as usize).saturating_sub(live.len() + done);
        for _ in 0..missing {
            let name_index = next_name(&mut used_names);
            placements.push(Placement {
                group: group.name.clone(),
                name_index,
                canary: false,
                previous: None,
            });
        }
        return placements;
    }

    // Deployment bookkeeping for a destructive change.
    let update = group.update.clone().unwrap_or_default();
    let max_parallel = u32::try_from(update.max_parallel.unwrap_or(1).max(0)).unwrap_or(0);
    let latest = cluster.latest_deployment(key).cloned();
    let deployment = latest
        .as_ref()
        .filter(|deployment| deployment.job_version == version);
    let mut active = deployment
        .filter(|deployment| deployment.status.is_active())
        .cloned();
    let halted = deployment.is_some_and(|deployment| {
        !deployment.status.is_active() && deployment.status != DeploymentStatus::Successful
    });
    // Like Nomad, every new version of a service job that has work to do gets a deployment,
    // unless the group opts out with `MaxParallel: 0`.
    // NOTE: Nomad also opens one for a version that only changes counts: its in-place updates
    // count as updating the spec, and those workers report their health again. The emulator
    // opens none then, so after a scale-down the next scale is not blocked here as in Nomad.
    let needs_work = !old.is_empty() || current.len() < desired as usize;
    if needs_work && max_parallel > 0 && deployment.is_none() {
        active = Some(create_deployment(cluster, key, job, now_ns));
    }
    let group_state = active
        .as_ref()
        .and_then(|deployment| deployment.task_groups.get(&group.name).cloned());

    if let (Some(deployment), Some(state)) = (&active, &group_state) {
        if deployment.status == DeploymentStatus::Paused {
            return placements;
        }
        if state.desired_canaries > 0 && !state.promoted {
            let canaries = current.iter().filter(|alloc| alloc.is_canary()).count() as u64;
            for _ in canaries..state.desired_canaries {
                let name_index = next_name(&mut used_names);
                placements.push(Placement {
                    group: group.name.clone(),
                    name_index,
                    canary: true,
                    previous: None,
                });
            }
            return placements;
        }
    }

    // Replacements for failed, lost and migrated allocations; failed ones wait out the
    // reschedule delay. The replacement links back through `PreviousAllocation`.
    let mut missing = (desired as usize).saturating_sub(live.len());
    let mut due_later: Option<i64> = None;
    for failed in allocs.iter().filter(|alloc| {
        let lost_or_failed = alloc.desired_status == "run"
            && matches!(
                alloc.client_status,
                ClientStatus::Failed | ClientStatus::Lost
            );
        let migrated = alloc.desired_status == "stop" && alloc.migrate == Some(true);
        (lost_or_failed || migrated) && alloc.next_allocation.is_empty()
    }) {
        if missing == 0 {
            break;
        }
        if failed.client_status == ClientStatus::Failed {
            if failed.reschedule_attempts >= MAX_RESCHEDULES || halted {
                missing -= 1;
                continue;
            }
            let delay = RESCHEDULE_DELAY_NS << failed.reschedule_attempts.min(7);
            let due = failed.modify_time_ns + delay;
            if due > now_ns {
                due_later = Some(due_later.map_or(due, |at| at.min(due)));
                missing -= 1;
                continue;
            }
        }
        if used_names.contains(&failed.name_index) {
            continue;
        }
        used_names.push(failed.name_index);
        placements.push(Placement {
            group: group.name.clone(),
            name_index: failed.name_index,
            canary: false,
            previous: Some((failed.id.clone(), failed.reschedule_attempts + 1)),
        });
        missing -= 1;
    }
    if let Some(due) = due_later {
        cluster.add_timer(due, Timer::Job(key.clone()));
    }
    for _ in 0..missing {
        let name_index = next_name(&mut used_names);
        placements.push(Placement {
            group: group.name.clone(),
            name_index,
            canary: false,
            previous: None,
        });
    }
    let placed_now = placements.len();

    // Rolling replacement of allocations from an older spec, at most `MaxParallel`
    // unhealthy new allocations at a time while a deployment runs.
    if !halted {
        let in_flight = current.iter().filter(|alloc| !alloc.is_healthy()).count() + placed_now;
        let mut budget = if group_state.is_some() {
            (max_parallel as usize).saturating_sub(in_flight)
        } else {
            usize::MAX
        };
        old.sort_by_key(|alloc| std::cmp::Reverse(alloc.name_index));
        let mut new_total = current.len() + placed_now;
        while budget > 0 && new_total < desired as usize {
            let Some(replaced) = old.pop() else {
                break;
            };
            cluster.stop_alloc(
                &replaced.id,
                now_ns,
                "alloc is being updated due to job update",
            );
            placements.push(Placement {
                group: group.name.clone(),
                name_index: replaced.name_index,
                canary: false,
                previous: Some((replaced.id.clone(), 0)),
            });
            budget -= 1;
            new_total += 1;
        }
        if new_total >= desired as usize {
            for alloc in &old {
                cluster.stop_alloc(&alloc.id, now_ns, "alloc not needed due to job update");
            }
        }
    }

    // Scale down: stop the highest names first.
    let keep = desired as usize;
    let mut remaining: Vec<&SimAlloc> = live
        .iter()
        .copied()
        .filter(|alloc| cluster.allocs.get(&alloc.id).is_some_and(SimAlloc::is_live))
        .collect();
    if remaining.len() > keep {
        remaining.sort_by_key(|alloc| {
            (
                alloc.fingerprint == fingerprint,
                std::cmp::Reverse(alloc.name_index),
            )
        });
        let excess = remaining.len() - keep;
        for alloc in remaining.iter().take(excess) {
            cluster.stop_alloc(&alloc.id, now_ns, "alloc not needed due to job update");
        }
    }
    placements
}

/// Returns the lowest name index not in use and marks it used.
fn next_name(used: &mut Vec<u32>) -> u32 {
    let mut candidate = 0;
    while used.contains(&candidate) {
        candidate += 1;
    }
    used.push(candidate);
    candidate
}

/// Nomad's status description of a deployment cancelled by a newer job version.
const NEWER_VERSION: &str = "Cancelled due to newer version of job";

/// Cancels the job's active deployment with `description`. With `keep_version`, a
/// deployment of that job version is left running.
fn cancel_deployment(
    cluster: &mut Cluster,
    key: &JobKey,
    keep_version: Option<u64>,
    description: &str,
    now_ns: i64,
) {
    let Some(old_id) = cluster.active_deployment_id(key) else {
        return;
    };
    let current = cluster
        .deployments
        .get(&old_id)
        .is_some_and(|old| Some(old.job_version) == keep_version);
    if current {
        return;
    }

    let index = cluster.touch(Table::Deployments);
    if let Some(old) = cluster.deployments.get_mut(&old_id) {
        old.status = DeploymentStatus::Cancelled;
        old.status_description = description.to_owned();
        old.modify_index = index;
        old.modify_time_ns = now_ns;
    }
    cluster.mark_event(
        index,
        EventType::DeploymentStatusUpdate,
        Subject::Deployment(old_id),
    );
}

/// Creates a deployment for the job's current version and cancels any older active one.
pub fn create_deployment(
    cluster: &mut Cluster,
    key: &JobKey,
    job: &Job,
    now_ns: i64,
) -> SimDeployment {
    cancel_deployment(cluster, key, None, NEWER_VERSION, now_ns);

    let id = cluster.new_id();
    let index = cluster.touch(Table::Deployments);
    let mut task_groups = BTreeMap::new();
    for group in job.groups() {
        // Canaries are only placed when there are allocations of an older spec to replace.
        let fingerprint = group_fingerprint(job, group);
        let has_old = cluster.job_allocs(key).any(|alloc| {
            alloc.task_group == group.name && alloc.is_live() && alloc.fingerprint != fingerprint
        });
        let update = group.update.clone().unwrap_or_default();
        let progress_deadline_ns = update.progress_deadline.map_or(600_000_000_000, |d| d.0);
        task_groups.insert(
            group.name.clone(),
            GroupDeployment {
                auto_revert: update.auto_revert.unwrap_or(false),
                auto_promote: update.auto_promote.unwrap_or(false),
                progress_deadline_ns,
                require_progress_by_ns: (progress_deadline_ns > 0)
                    .then_some(now_ns + progress_deadline_ns),
                promoted: false,
                placed_canaries: Vec::new(),
                desired_canaries: if has_old {
                    u64::try_from(update.canary.unwrap_or(0).max(0)).unwrap_or(0)
                } else {
                    0
                },
                desired_total: u64::try_from(group.count.unwrap_or(1).max(0)).unwrap_or(0),
                placed_allocs: 0,
                healthy_allocs: 0,
                unhealthy_allocs: 0,
                max_parallel: u64::try_from(update.max_parallel.unwrap_or(1).max(0)).unwrap_or(0),
                min_healthy_time_ns: update.min_healthy_time.map_or(10_000_000_000, |d| d.0),
                // With `HealthCheck: manual` the client sets no health itself, so no
                // healthy deadline applies and only the progress deadline bounds the wait.
                // NOTE: the emulator still marks running allocations healthy after
                // MinHealthyTime under `manual`, where Nomad waits for the API call.
                healthy_deadline_ns: if update.health_check.as_deref() == Some("manual") {
                    0
                } else {
                    update.healthy_deadline.map_or(300_000_000_000, |d| d.0)
                },
            },
        );
    }
    let deployment = SimDeployment {
        id: id.clone(),
        namespace: key.0.clone(),
        job_id: key.1.clone(),
        job_version: job.version.unwrap_or(0),
        job_modify_index: job.job_modify_index.unwrap_or(0),
        job_create_index: job.create_index.unwrap_or(0),
        task_groups,
        status: DeploymentStatus::Running,
        status_description: "Deployment is running".to_owned(),
        create_index: index,
        modify_index: index,
        create_time_ns: now_ns,
        modify_time_ns: now_ns,
    };
    cluster
        .deployments_by_job
        .entry(key.clone())
        .or_default()
        .push(id.clone());
    cluster.deployments.insert(id.clone(), deployment.clone());
    cluster.mark_event(
        index,
        EventType::DeploymentStatusUpdate,
        Subject::Deployment(id),
    );
    tracing::debug!(job = %key.1, deployment = %deployment.id, version = deployment.job_version, "deployment created");
    deployment
}

/// Places one allocation of a system or sysbatch group on every feasible node that lacks
/// one. Sysbatch groups run once per node and job version, so a node that already ran the
/// version (even to failure) is skipped.
fn place_per_node(
    cluster: &mut Cluster,
    key: &JobKey,
    job: &Arc<Job>,
    group: &TaskGroup,
    now_ns: i64,
    eval_id: &str,
    regexes: &mut RegexCache,
) -> Option<(PlacementFailure, u64)> {
    let sysbatch = job.r#type.as_deref() == Some("sysbatch");
    let version = job.version.unwrap_or(0);
    let fingerprint = group_fingerprint(job, group);
    let mut covered: HashMap<String, u32> = HashMap::new();
    let mut outdated = Vec::new();
    for alloc in cluster.job_allocs(key) {
        if alloc.task_group != group.name {
            continue;
        }
        if alloc.is_live() && alloc.fingerprint != fingerprint {
            outdated.push(alloc.id.clone());
            continue;
        }
        if alloc.is_live()
            || (sysbatch && alloc.job_version == version && alloc.desired_status == "run")
        {
            covered.insert(alloc.node_id.clone(), 1);
        }
    }
    // NOTE: a changed system or sysbatch group replaces every node's allocation at once; the
    // group's `Update.MaxParallel` is not applied.
    for id in outdated {
        cluster.stop_alloc(&id, now_ns, "alloc is being updated due to job update");
    }

    let usage = match group_usage(group) {
        Ok(usage) => usage,
        Err(reason) => return Some((device_failure(&reason), 0)),
    };
    let node_ids: Vec<String> = cluster.nodes.keys().cloned().collect();
    let mut failure: Option<PlacementFailure> = None;
    let mut placed = Vec::new();
    for node_id in node_ids {
        if covered.contains_key(&node_id) {
            continue;
        }
        // Restrict the candidate set to this node by marking every other node as taken.
        let mut only_this: HashMap<String, u32> = HashMap::new();
        let mut spread = Vec::new();
        let mut group_counts: HashMap<String, u32> = cluster
            .nodes
            .keys()
            .filter(|id| **id != node_id)
            .map(|id| (id.clone(), 1))
            .collect();
        let mut request = PlacementRequest {
            job,
            group,
            usage,
            distinct_hosts: true,
            job_allocs_per_node: &mut only_this,
            spread_counts: &mut spread,
            group_allocs_per_node: &mut group_counts,
        };
        match select_node(cluster, &mut request, regexes) {
            Ok(chosen) => placed.push(chosen),
            Err(node_failure) => {
                // Only capacity shortages count as failures; filtered nodes are not eligible.
                if node_failure.nodes_exhausted > 0 {
                    match failure.as_mut() {
                        Some(existing) => merge_failure(existing, node_failure),
                        None => failure = Some(node_failure),
                    }
                }
            }
        }
    }
    let mut used_names = Vec::new();
    for node_id in placed {
        let name_index = next_name(&mut used_names);
        create_alloc(
            cluster, key, job, group, &node_id, usage, name_index, false, None, now_ns, eval_id,
        );
    }
    failure.map(|failure| (failure, 1))
}

fn device_failure(reason: &str) -> PlacementFailure {
    let mut failure = PlacementFailure::default();
    failure.constraint_filtered.insert(reason.to_owned(), 1);
    failure
}

/// Places the planned allocations of one group. Returns the failure and the number left
/// queued when some could not be placed.
#[allow(clippy::too_many_arguments)]
fn place(
    cluster: &mut Cluster,
    key: &JobKey,
    job: &Arc<Job>,
    group: &TaskGroup,
    placements: Vec<Placement>,
    now_ns: i64,
    eval_id: &str,
    regexes: &mut RegexCache,
) -> Option<(PlacementFailure, u64)> {
    if placements.is_empty() {
        return None;
    }
    let usage = match group_usage(group) {
        Ok(usage) => usage,
        Err(reason) => return Some((device_failure(&reason), placements.len() as u64)),
    };

    let mut job_allocs_per_node: HashMap<String, u32> = HashMap::new();
    let mut group_allocs_per_node: HashMap<String, u32> = HashMap::new();
    let mut group_nodes = Vec::new();
    for alloc in cluster.job_allocs(key).filter(|alloc| alloc.is_live()) {
        *job_allocs_per_node
            .entry(alloc.node_id.clone())
            .or_default() += 1;
        if alloc.task_group == group.name {
            *group_allocs_per_node
                .entry(alloc.node_id.clone())
                .or_default() += 1;
            group_nodes.push(alloc.node_id.clone());
        }
    }
    let spreads = group_spreads(job, group);
    let node_refs: Vec<&str> = group_nodes.iter().map(String::as_str).collect();
    let mut spread_counts = spread_counts_for(cluster, &spreads, &node_refs);
    let distinct_hosts = wants_distinct_hosts(job, group);

    let mut failure: Option<PlacementFailure> = None;
    let mut queued = 0;
    for placement in placements {
        let mut request = PlacementRequest {
            job,
            group,
            usage,
            distinct_hosts,
            job_allocs_per_node: &mut job_allocs_per_node,
            spread_counts: &mut spread_counts,
            group_allocs_per_node: &mut group_allocs_per_node,
        };
        match select_node(cluster, &mut request, regexes) {
            Ok(node_id) => {
                create_alloc(
                    cluster,
                    key,
                    job,
                    group,
                    &node_id,
                    usage,
                    placement.name_index,
                    placement.canary,
                    placement.previous,
                    now_ns,
                    eval_id,
                );
            }
            Err(node_failure) => {
                queued += 1;
                match failure.as_mut() {
                    Some(existing) => merge_failure(existing, node_failure),
                    None => failure = Some(node_failure),
                }
            }
        }
        let _ = &placement.group;
    }
    failure.map(|failure| (failure, queued))
}

/// Creates one allocation on a node and starts its image pull.
#[allow(clippy::too_many_arguments)]
fn create_alloc(
    cluster: &mut Cluster,
    key: &JobKey,
    job: &Arc<Job>,
    group: &TaskGroup,
    node_id: &str,
    usage: super::state::Usage,
    name_index: u32,
    canary: bool,
    previous: Option<(String, u32)>,
    now_ns: i64,
    eval_id: &str,
) {
    let Some(node) = cluster.nodes.get(node_id) else {
        return;
    };
    let images = group_images(job, group);
    let (delay_ns, pull_error) = start_delay(&images, node, &cluster.images);
    let node_name = node.name.clone();
    let pulling = images.iter().any(|image| !node.image_cache.contains(image));

    let id = cluster.new_id();
    let index = cluster.touch(Table::Allocs);
    let deployment_id = cluster
        .active_deployment_id(key)
        .filter(|_| job.r#type.as_deref().unwrap_or("service") == "service");
    let mut events = vec![TaskEvent {
        kind: "Received".to_owned(),
        time_ns: now_ns,
        message: "Task received by client".to_owned(),
        driver_error: String::new(),
        fails_task: false,
    }];
    if pulling {
        events.push(TaskEvent {
            kind: "Driver".to_owned(),
            time_ns: now_ns,
            message: format!("Downloading image {}", images.join(", ")),
            driver_error: String::new(),
            fails_task: false,
        });
    }

    let (previous_allocation, reschedule_attempts) = previous.clone().unwrap_or_default();
    let alloc = SimAlloc {
        id: id.clone(),
        eval_id: eval_id.to_owned(),
        name: format!("{}.{}[{}]", job.id, group.name, name_index),
        namespace: key.0.clone(),
        node_id: node_id.to_owned(),
        node_name,
        job_id: job.id.clone(),
        job_type: job.r#type.clone().unwrap_or_else(|| "service".to_owned()),
        job_version: job.version.unwrap_or(0),
        task_group: group.name.clone(),
        desired_status: "run".to_owned(),
        desired_description: String::new(),
        client_status: ClientStatus::Pending,
        client_description: "No tasks have started".to_owned(),
        migrate: None,
        task_names: group
            .task_list()
            .iter()
            .map(|task| task.name.clone())
            .collect(),
        events,
        deployment_id: deployment_id.clone(),
        deployment_status: canary.then_some(AllocHealth {
            healthy: None,
            timestamp_ns: now_ns,
            canary: true,
            modify_index: index,
        }),
        previous_allocation: previous_allocation.clone(),
        next_allocation: String::new(),
        create_index: index,
        modify_index: index,
        create_time_ns: now_ns,
        modify_time_ns: now_ns,
        resources: usage,
        fingerprint: group_fingerprint(job, group),
        images,
        start_at_ns: now_ns + delay_ns,
        pull_error,
        running_since_ns: None,
        name_index,
        reschedule_attempts,
        job: Arc::clone(job),
    };
    cluster.insert_alloc(alloc);
    cluster.add_timer(now_ns + delay_ns, Timer::Alloc(id.clone()));

    if !previous_allocation.is_empty() {
        let next = id.clone();
        cluster.update_alloc(&previous_allocation, now_ns, |alloc| {
            alloc.next_allocation = next;
        });
    }
    if let Some(deployment_id) = deployment_id {
        let index = cluster.touch(Table::Deployments);
        if let Some(deployment) = cluster.deployments.get_mut(&deployment_id)
            && let Some(state) = deployment.task_groups.get_mut(&group.name)
        {
            state.placed_allocs += 1;
            if canary {
                state.placed_canaries.push(id);
            }
            deployment.modify_index = index;
            deployment.modify_time_ns = now_ns;
        }
        // NOTE: Nomad publishes this change with the plan as type `PlanResult`; the emulator
        // uses `DeploymentStatusUpdate` for every deployment change outside promotion and
        // health updates.
        cluster.mark_event(
            index,
            EventType::DeploymentStatusUpdate,
            Subject::Deployment(deployment_id),
        );
    }
}
