//! The ticker's work: allocation lifecycle (pull, run, health, completion), evaluations,
//! the deployment watcher, drains and job status. One [`tick`] runs per wall interval.

use std::cmp::Reverse;
use std::collections::BTreeSet;
use std::sync::Arc;

use super::events::{EventType, Subject};
use super::jobs::{store_version, update_job_status};
use super::scheduler::reconcile_job;
use super::state::{
    AllocHealth, ClientStatus, Cluster, DeploymentStatus, JobKey, LastDrain, Table, TaskEvent,
    Timer,
};

/// Simulated run time of a batch or sysbatch task before it completes.
const BATCH_RUN_NS: i64 = 5_000_000_000;

/// Advances the cluster to simulated time `now_ns`.
pub fn tick(cluster: &mut Cluster, now_ns: i64) {
    cluster.begin();
    let mut touched: BTreeSet<JobKey> = BTreeSet::new();

    run_timers(cluster, now_ns);
    run_drains(cluster, now_ns);
    watch_deployments(cluster, now_ns);

    while let Some(eval_id) = cluster.pending_evals.pop_front() {
        let Some(eval) = cluster.evals.get(&eval_id).cloned() else {
            continue;
        };
        let key = (eval.namespace.clone(), eval.job_id.clone());
        process_eval(cluster, &key, &eval_id, now_ns);
        cluster.dirty_jobs.remove(&key);
        touched.insert(key);
    }

    let dirty: Vec<JobKey> = std::mem::take(&mut cluster.dirty_jobs)
        .into_iter()
        .collect();
    for key in dirty {
        let eval_id = cluster
            .evals_by_job
            .get(&key)
            .and_then(|ids| ids.last().cloned())
            .unwrap_or_default();
        let outcome = reconcile_job(cluster, &key, now_ns, &eval_id);
        update_blocked(cluster, &key, &eval_id, outcome, now_ns);
        touched.insert(key);
    }
    // Work done by the reconciles above (stops) marks jobs dirty again; they are clean now.
    let again: Vec<JobKey> = std::mem::take(&mut cluster.dirty_jobs)
        .into_iter()
        .collect();
    touched.extend(again);

    for key in touched {
        refresh_job_status(cluster, &key);
    }
}

/// Runs the scheduler for one evaluation and completes it.
fn process_eval(cluster: &mut Cluster, key: &JobKey, eval_id: &str, now_ns: i64) {
    let outcome = reconcile_job(cluster, key, now_ns, eval_id);
    let index = cluster.touch(Table::Evals);
    cluster.mark_event(
        index,
        EventType::EvaluationUpdated,
        Subject::Evaluation(eval_id.to_owned()),
    );
    if let Some(eval) = cluster.evals.get_mut(eval_id) {
        eval.status = "complete".to_owned();
        eval.failed_tg_allocs = outcome.failures.clone();
        eval.queued_allocations = outcome.queued.clone();
        eval.modify_index = index;
        eval.modify_time_ns = now_ns;
    }
    update_blocked(cluster, key, eval_id, outcome, now_ns);
}

/// Creates, refreshes or completes the job's blocked evaluation after a reconcile.
fn update_blocked(
    cluster: &mut Cluster,
    key: &JobKey,
    eval_id: &str,
    outcome: super::scheduler::Outcome,
    now_ns: i64,
) {
    let blocked_id = cluster
        .evals_by_job
        .get(key)
        .into_iter()
        .flatten()
        .find(|id| {
            cluster
                .evals
                .get(*id)
                .is_some_and(|eval| eval.status == "blocked")
        })
        .cloned();

    if outcome.failures.is_empty() {
        if let Some(blocked_id) = blocked_id {
            let index = cluster.touch(Table::Evals);
            cluster.mark_event(
                index,
                EventType::EvaluationUpdated,
                Subject::Evaluation(blocked_id.clone()),
            );
            if let Some(eval) = cluster.evals.get_mut(&blocked_id) {
                eval.status = "complete".to_owned();
                eval.status_description = String::new();
                eval.modify_index = index;
                eval.modify_time_ns = now_ns;
            }
        }
        cluster.blocked_jobs.remove(key);
        return;
    }

    cluster.blocked_jobs.insert(key.clone());
    let blocked_id = match blocked_id {
        Some(id) => id,
        None => {
            let Some(job) = cluster.jobs.get(key).map(|entry| Arc::clone(&entry.job)) else {
                return;
            };
            let (id, _) = cluster.create_eval(&job, "queued-allocs", "", "", now_ns);
            // The scheduler does not run blocked evaluations until capacity changes.
            cluster.pending_evals.retain(|pending| *pending != id);
            if let Some(parent) = cluster.evals.get_mut(eval_id) {
                parent.blocked_eval = id.clone();
            }
            id
        }
    };
    let index = cluster.touch(Table::Evals);
    cluster.mark_event(
        index,
        EventType::EvaluationUpdated,
        Subject::Evaluation(blocked_id.clone()),
    );
    if let Some(eval) = cluster.evals.get_mut(&blocked_id) {
        eval.status = "blocked".to_owned();
        eval.status_description = "created to place remaining allocations".to_owned();
        eval.previous_eval = eval_id.to_owned();
        eval.failed_tg_allocs = outcome.failures;
        eval.queued_allocations = outcome.queued;
        eval.modify_index = index;
        eval.modify_time_ns = now_ns;
    }
}

/// Pops every due timer and moves its allocation or job along.
fn run_timers(cluster: &mut Cluster, now_ns: i64) {
    while let Some(Reverse((due, _))) = cluster.timers.peek() {
        if *due > now_ns {
            break;
        }
        let Some(Reverse((_, timer))) = cluster.timers.pop() else {
            break;
        };
        match timer {
            Timer::Alloc(id) => advance_alloc(cluster, &id, now_ns),
            Timer::Job(key) => {
                cluster.dirty_jobs.insert(key);
            }
        }
    }
}

fn event(kind: &str, now_ns: i64, message: &str) -> TaskEvent {
    TaskEvent {
        kind: kind.to_owned(),
        time_ns: now_ns,
        message: message.to_owned(),
        driver_error: String::new(),
        fails_task: false,
    }
}

/// Moves one allocation to its next client state, when that state is due.
fn advance_alloc(cluster: &mut Cluster, id: &str, now_ns: i64) {
    let Some(alloc) = cluster.allocs.get(id) else {
        return;
    };
    if !alloc.is_live() {
        return;
    }
    let job_type = alloc.job_type.clone();
    let group = alloc.job.group(&alloc.task_group).cloned();
    let min_healthy_ns = group
        .as_ref()
        .and_then(|group| group.update.as_ref())
        .and_then(|update| update.min_healthy_time)
        .map_or(10_000_000_000, |duration| duration.0);
    let unhealthy_image = alloc.images.iter().any(|image| {
        cluster
            .images
            .get(image)
            .is_some_and(|behaviour| !behaviour.healthy)
    });

    match alloc.client_status {
        ClientStatus::Pending if alloc.start_at_ns <= now_ns => {
            if let Some(error) = alloc.pull_error.clone() {
                cluster.update_alloc(id, now_ns, |alloc| {
                    alloc.client_status = ClientStatus::Failed;
                    alloc.client_description = "Failed tasks".to_owned();
                    alloc.events.push(TaskEvent {
                        kind: "Driver Failure".to_owned(),
                        time_ns: now_ns,
                        message: error.clone(),
                        driver_error: error,
                        fails_task: true,
                    });
                    if alloc.deployment_id.is_some() {
                        mark_health(alloc, false, now_ns);
                    }
                });
                cluster.unblock_evals();
                return;
            }
            let images = alloc.images.clone();
            let node_id = alloc.node_id.clone();
            if let Some(node) = cluster.nodes.get_mut(&node_id) {
                node.image_cache.extend(images);
            }
            cluster.update_alloc(id, now_ns, |alloc| {
                alloc.client_status = ClientStatus::Running;
                alloc.client_description = "Tasks are running".to_owned();
                alloc.running_since_ns = Some(now_ns);
                alloc
                    .events
                    .push(event("Started", now_ns, "Task started by client"));
            });
            let next = if matches!(job_type.as_str(), "batch" | "sysbatch") {
                now_ns + BATCH_RUN_NS
            } else {
                now_ns + min_healthy_ns
            };
            cluster.add_timer(next, Timer::Alloc(id.to_owned()));
        }
        ClientStatus::Pending => {
            let due = alloc.start_at_ns;
            cluster.add_timer(due, Timer::Alloc(id.to_owned()));
        }
        ClientStatus::Running if matches!(job_type.as_str(), "batch" | "sysbatch") => {
            cluster.update_alloc(id, now_ns, |alloc| {
                alloc.client_status = ClientStatus::Complete;
                alloc.client_description = "All tasks have completed".to_owned();
                alloc
                    .events
                    .push(event("Terminated", now_ns, "Exit Code: 0"));
            });
            cluster.unblock_evals();
        }
        ClientStatus::Running if job_type == "service" => {
            let due = alloc.running_since_ns.unwrap_or(now_ns) + min_healthy_ns;
            if due > now_ns {
                cluster.add_timer(due, Timer::Alloc(id.to_owned()));
                return;
            }
            // Health set through `/v1/deployment/allocation-health` wins over the timer.
            let reported = alloc
                .deployment_status
                .as_ref()
                .is_some_and(|status| status.healthy.is_some());
            if reported {
                return;
            }
            if unhealthy_image {
                cluster.update_alloc(id, now_ns, |alloc| {
                    mark_health(alloc, false, now_ns);
                    alloc.client_status = ClientStatus::Failed;
                    alloc.client_description = "Failed tasks".to_owned();
                    alloc.events.push(TaskEvent {
                        kind: "Terminated".to_owned(),
                        time_ns: now_ns,
                        message: "Exit Code: 1, health checks failed".to_owned(),
                        driver_error: String::new(),
                        fails_task: true,
                    });
                });
                cluster.unblock_evals();
            } else {
                cluster.update_alloc(id, now_ns, |alloc| mark_health(alloc, true, now_ns));
            }
        }
        _ => {}
    }
}

/// Records a health result on an allocation's `DeploymentStatus`.
fn mark_health(alloc: &mut super::state::SimAlloc, healthy: bool, now_ns: i64) {
    let index = alloc.modify_index;
    let canary = alloc.is_canary();
    alloc.deployment_status = Some(AllocHealth {
        healthy: Some(healthy),
        timestamp_ns: now_ns,
        canary,
        modify_index: index,
    });
}

/// Runs the deployment watcher: counts health, promotes, fails (with auto-revert) and
/// completes deployments.
fn watch_deployments(cluster: &mut Cluster, now_ns: i64) {
    let active: Vec<String> = cluster
        .deployments
        .values()
        .filter(|deployment| deployment.status == DeploymentStatus::Running)
        .map(|deployment| deployment.id.clone())
        .collect();

    for id in active {
        let Some(deployment) = cluster.deployments.get(&id).cloned() else {
            continue;
        };
        let key = (deployment.namespace.clone(), deployment.job_id.clone());
        let Some(job) = cluster.jobs.get(&key).map(|entry| Arc::clone(&entry.job)) else {
            continue;
        };
        let mut updated = deployment.clone();
        let mut any_unhealthy = false;
        let mut all_done = true;
        let mut auto_promote_ready = true;
        let mut needs_promotion = false;

        for (group_name, state) in updated.task_groups.iter_mut() {
            let mut group_done = true;
            // An allocation without health after `HealthyDeadline` is unhealthy.
            let overdue: Vec<String> = cluster
                .job_allocs(&key)
                .filter(|alloc| alloc.deployment_id.as_deref() == Some(id.as_str()))
                .filter(|alloc| alloc.task_group == *group_name && alloc.is_live())
                .filter(|alloc| {
                    alloc
                        .deployment_status
                        .as_ref()
                        .and_then(|s| s.healthy)
                        .is_none()
                })
                .filter(|alloc| {
                    state.healthy_deadline_ns > 0
                        && alloc.create_time_ns + state.healthy_deadline_ns < now_ns
                })
                .map(|alloc| alloc.id.clone())
                .collect();
            for alloc_id in overdue {
                cluster.update_alloc(&alloc_id, now_ns, |alloc| mark_health(alloc, false, now_ns));
            }

            let members: Vec<_> = cluster
                .job_allocs(&key)
                .filter(|alloc| alloc.deployment_id.as_deref() == Some(id.as_str()))
                .filter(|alloc| alloc.task_group == *group_name)
                .collect();
            let healthy = members
                .iter()
                .filter(|alloc| alloc.is_healthy() && alloc.desired_status == "run")
                .count() as u64;
            let unhealthy = members
                .iter()
                .filter(|alloc| {
                    alloc.deployment_status.as_ref().and_then(|s| s.healthy) == Some(false)
                })
                .count() as u64;
            if healthy > state.healthy_allocs {
                state.require_progress_by_ns =
                    (state.progress_deadline_ns > 0).then_some(now_ns + state.progress_deadline_ns);
            }
            state.healthy_allocs = healthy;
            state.unhealthy_allocs = unhealthy;
            any_unhealthy |= unhealthy > 0;

            if state.desired_canaries > 0 && !state.promoted {
                needs_promotion = true;
                let healthy_canaries = members
                    .iter()
                    .filter(|alloc| state.placed_canaries.contains(&alloc.id) && alloc.is_healthy())
                    .count() as u64;
                if !(state.auto_promote && healthy_canaries >= state.desired_canaries) {
                    auto_promote_ready = false;
                }
                group_done = false;
            } else {
                let fingerprint = job
                    .group(group_name)
                    .map(|group| super::placement::group_fingerprint(&job, group));
                let old_left = cluster.job_allocs(&key).any(|alloc| {
                    alloc.task_group == *group_name
                        && alloc.is_live()
                        && Some(alloc.fingerprint) != fingerprint
                });
                // Allocations updated in place (a scale) count too, not only new ones.
                let healthy_current = cluster
                    .job_allocs(&key)
                    .filter(|alloc| {
                        alloc.task_group == *group_name
                            && alloc.is_live()
                            && alloc.is_healthy()
                            && Some(alloc.fingerprint) == fingerprint
                    })
                    .count() as u64;
                if healthy_current < state.desired_total || old_left {
                    group_done = false;
                }
            }
            all_done &= group_done;
            // Like Nomad's deployment watcher, only a group still in progress is held to its
            // progress deadline. A group that is done cannot fail the deployment.
            if let Some(deadline) = state.require_progress_by_ns
                && deadline < now_ns
                && !group_done
            {
                updated.status_description = "Failed due to progress deadline".to_owned();
                any_unhealthy = true;
            }
        }

        if any_unhealthy {
            updated.modify_index = cluster.touch(Table::Deployments);
            updated.modify_time_ns = now_ns;
            if updated.status_description != "Failed due to progress deadline" {
                updated.status_description = "Failed due to unhealthy allocations".to_owned();
            }
            fail_deployment(cluster, updated, now_ns);
            continue;
        }
        if needs_promotion && auto_promote_ready {
            updated.modify_index = cluster.touch(Table::Deployments);
            updated.modify_time_ns = now_ns;
            for state in updated.task_groups.values_mut() {
                state.promoted = true;
            }
            cluster.mark_event(
                updated.modify_index,
                EventType::DeploymentPromotion,
                Subject::Deployment(id.clone()),
            );
            cluster.deployments.insert(id.clone(), updated);
            promote_canaries(cluster, &id, now_ns);
            cluster.dirty_jobs.insert(key);
            continue;
        }
        if needs_promotion {
            updated.status_description =
                "Deployment is running but requires manual promotion".to_owned();
        }
        if all_done {
            updated.status = DeploymentStatus::Successful;
            updated.status_description = "Deployment completed successfully".to_owned();
            let version = updated.job_version;
            update_job_status(cluster, &key, |job| {
                let changed = job.version == Some(version) && job.stable != Some(true);
                job.stable = Some(true);
                changed
            });
            tracing::debug!(job = %key.1, deployment = %id, "deployment successful");
        }
        let changed = updated.status != deployment.status
            || updated.status_description != deployment.status_description
            || updated.task_groups != deployment.task_groups;
        if changed {
            updated.modify_index = cluster.touch(Table::Deployments);
            updated.modify_time_ns = now_ns;
            cluster.mark_event(
                updated.modify_index,
                EventType::DeploymentStatusUpdate,
                Subject::Deployment(id.clone()),
            );
            cluster.deployments.insert(id.clone(), updated);
            cluster.dirty_jobs.insert(key);
        }
    }
}

/// Clears the canary flag of a deployment's canaries, which is what promotion does.
pub fn promote_canaries(cluster: &mut Cluster, deployment_id: &str, now_ns: i64) {
    let canaries: Vec<String> = cluster
        .deployments
        .get(deployment_id)
        .map(|deployment| {
            deployment
                .task_groups
                .values()
                .flat_map(|state| state.placed_canaries.clone())
                .collect()
        })
        .unwrap_or_default();
    for id in canaries {
        cluster.update_alloc(&id, now_ns, |alloc| {
            if let Some(status) = alloc.deployment_status.as_mut() {
                status.canary = false;
            }
        });
    }
}

/// Marks a deployment failed, stops its unpromoted canaries and, with `AutoRevert`,
/// registers the last stable version again.
pub fn fail_deployment(
    cluster: &mut Cluster,
    mut deployment: super::state::SimDeployment,
    now_ns: i64,
) -> Option<u64> {
    let key = (deployment.namespace.clone(), deployment.job_id.clone());
    deployment.status = DeploymentStatus::Failed;
    let auto_revert = deployment
        .task_groups
        .values()
        .any(|state| state.auto_revert);
    let stable = cluster.jobs.get(&key).and_then(|entry| {
        entry
            .versions
            .iter()
            .find(|job| job.stable == Some(true) && job.version != Some(deployment.job_version))
            .cloned()
    });
    let mut reverted = None;
    if auto_revert && let Some(stable) = stable {
        let version = stable.version.unwrap_or(0);
        deployment.status_description = format!(
            "{} - rolling back to job version {version}",
            deployment.status_description
        );
        reverted = Some(version);
    }
    let canaries: Vec<String> = deployment
        .task_groups
        .values()
        .filter(|state| !state.promoted)
        .flat_map(|state| state.placed_canaries.clone())
        .collect();
    cluster
        .deployments
        .insert(deployment.id.clone(), deployment.clone());
    let index = cluster.touch(Table::Deployments);
    cluster.mark_event(
        index,
        EventType::DeploymentStatusUpdate,
        Subject::Deployment(deployment.id.clone()),
    );
    for id in canaries {
        cluster.stop_alloc(&id, now_ns, "alloc not needed as deployment failed");
    }

    if let Some(version) = reverted {
        let spec = cluster.jobs.get(&key).and_then(|entry| {
            entry
                .versions
                .iter()
                .find(|job| job.version == Some(version))
                .map(|job| (**job).clone())
        });
        if let Some(spec) = spec {
            let stored = store_version(cluster, &key, spec, now_ns);
            cluster.create_eval(&stored, "deployment-watcher", "", &deployment.id, now_ns);
            tracing::debug!(job = %key.1, version, "deployment failed, job reverted");
        }
    }
    cluster.dirty_jobs.insert(key);
    reverted
}

/// Moves allocations off draining nodes, respecting each group's `Migrate.MaxParallel`, and
/// completes drains whose nodes are empty.
fn run_drains(cluster: &mut Cluster, now_ns: i64) {
    let draining: Vec<String> = cluster
        .nodes
        .values()
        .filter(|node| node.drain.is_some())
        .map(|node| node.id.clone())
        .collect();

    for node_id in draining {
        let Some(drain) = cluster
            .nodes
            .get(&node_id)
            .and_then(|node| node.drain.clone())
        else {
            continue;
        };
        let forced = drain
            .force_deadline_ns
            .is_some_and(|deadline| deadline <= now_ns);
        let remaining: Vec<_> = cluster
            .node_allocs(&node_id)
            .filter(|alloc| alloc.is_live())
            .filter(|alloc| {
                !(drain.ignore_system_jobs
                    && matches!(alloc.job_type.as_str(), "system" | "sysbatch"))
            })
            .map(|alloc| {
                (
                    alloc.id.clone(),
                    (alloc.namespace.clone(), alloc.job_id.clone()),
                    alloc.task_group.clone(),
                    alloc.job_type.clone(),
                    alloc
                        .job
                        .group(&alloc.task_group)
                        .and_then(|group| group.migrate.clone()),
                )
            })
            .collect();

        if remaining.is_empty() {
            let index = cluster.touch(Table::Nodes);
            cluster.mark_event(index, EventType::NodeDrain, Subject::Node(node_id.clone()));
            if let Some(node) = cluster.nodes.get_mut(&node_id) {
                node.drain = None;
                node.modify_index = index;
                if let Some(last) = node.last_drain.as_mut() {
                    last.status = "complete".to_owned();
                    last.updated_at_ns = now_ns;
                }
            }
            tracing::debug!(node = %node_id, "drain complete");
            continue;
        }

        // System allocations leave last, once nothing else is left on the node.
        let only_system = remaining
            .iter()
            .all(|(_, _, _, job_type, _)| matches!(job_type.as_str(), "system" | "sysbatch"));
        for (alloc_id, key, group, job_type, migrate) in remaining {
            let system = matches!(job_type.as_str(), "system" | "sysbatch");
            let batch = job_type == "batch";
            if !forced && ((system && !only_system) || batch) {
                // Batch allocations run to completion or until the deadline.
                continue;
            }
            if !forced {
                let max_parallel =
                    migrate.and_then(|m| m.max_parallel).unwrap_or(1).max(1) as usize;
                let migrating = cluster
                    .job_allocs(&key)
                    .filter(|alloc| alloc.task_group == group && alloc.is_live())
                    .filter(|alloc| !alloc.previous_allocation.is_empty() && !alloc.is_healthy())
                    .filter(|alloc| {
                        cluster
                            .allocs
                            .get(&alloc.previous_allocation)
                            .is_some_and(|previous| previous.migrate == Some(true))
                    })
                    .count();
                if migrating >= max_parallel {
                    continue;
                }
            }
            cluster.update_alloc(&alloc_id, now_ns, |alloc| {
                alloc.migrate = Some(true);
            });
            cluster.stop_alloc(&alloc_id, now_ns, "alloc is being migrated");
            cluster.dirty_jobs.insert(key);
            // Migrate one allocation of a group per pass so MaxParallel is re-counted.
            break;
        }
    }
}

/// Sets `LastDrain` when a drain starts.
pub fn last_drain_started(
    now_ns: i64,
    meta: std::collections::BTreeMap<String, String>,
) -> LastDrain {
    LastDrain {
        status: "draining".to_owned(),
        started_at_ns: now_ns,
        updated_at_ns: now_ns,
        meta,
    }
}

/// Recomputes a job's `Status` (pending, running, dead) from its allocations.
pub fn refresh_job_status(cluster: &mut Cluster, key: &JobKey) {
    let Some(job) = cluster.jobs.get(key).map(|entry| Arc::clone(&entry.job)) else {
        return;
    };
    let mut live = 0;
    let mut any = 0;
    let mut queued = false;
    for alloc in cluster.job_allocs(key) {
        any += 1;
        if alloc.is_live() {
            live += 1;
        }
    }
    if cluster.blocked_jobs.contains(key) {
        queued = true;
    }
    let batch = matches!(job.r#type.as_deref(), Some("batch" | "sysbatch"));
    let status = if live > 0 {
        "running"
    } else if job.stop == Some(true) || (batch && any > 0 && !queued) {
        "dead"
    } else {
        "pending"
    };
    update_job_status(cluster, key, |job| {
        let changed = job.status.as_deref() != Some(status);
        job.status = Some(status.to_owned());
        changed
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::nomad::jobs::{RegisterRequest, register};
    use crate::sim::nomad::nodes::{add_node, set_drain};
    use crate::sim::nomad::{NodeSpec, NomadEmulatorConfig, build_cluster};

    const SECOND: i64 = 1_000_000_000;

    #[test]
    fn drain_respects_migrate_max_parallel() {
        let config = NomadEmulatorConfig {
            nodes_per_dc: 1,
            ..NomadEmulatorConfig::default()
        };
        let mut cluster = build_cluster(&config, 0).expect("valid configuration");
        let job = serde_json::from_value(serde_json::json!({
            "ID": "web",
            "TaskGroups": [{"Name": "web", "Count": 3, "Tasks": [{"Name": "app",
                "Driver": "docker", "Config": {"image": "app:1"}}]}]
        }))
        .expect("valid job");
        let request = RegisterRequest {
            job,
            ..RegisterRequest::default()
        };
        register(&mut cluster, request, 0).expect("register");
        for second in 0..60 {
            tick(&mut cluster, second * SECOND);
        }
        let drained = cluster.nodes.keys().next().cloned().expect("one node");
        let spare = NodeSpec {
            datacenter: "dc1".into(),
            node_class: String::new(),
            node_pool: "default".into(),
            meta: Default::default(),
            cpu_mhz: 32_000,
            memory_mb: 65_536,
            cores: 16,
            gpus: 0,
        };
        add_node(&mut cluster, &spare, 60 * SECOND);
        let deadline = Some((3600 * SECOND, false));
        set_drain(
            &mut cluster,
            &drained,
            deadline,
            false,
            Default::default(),
            60 * SECOND,
        )
        .expect("node exists");

        // A migration starts only while no replacement is still unhealthy.
        let mut most_in_flight = 0;
        for step in 0..400 {
            tick(&mut cluster, 61 * SECOND + step * SECOND / 4);
            let in_flight = cluster
                .allocs
                .values()
                .filter(|alloc| alloc.is_live() && !alloc.previous_allocation.is_empty())
                .filter(|alloc| !alloc.is_healthy())
                .count();
            most_in_flight = most_in_flight.max(in_flight);
        }
        assert_eq!(most_in_flight, 1);

        let node = &cluster.nodes[&drained];
        assert!(node.drain.is_none());
        let last_status = node.last_drain.as_ref().map(|last| last.status.as_str());
        assert_eq!(last_status, Some("complete"));
        let live_elsewhere = cluster
            .allocs
            .values()
            .filter(|alloc| alloc.is_live() && alloc.node_id != drained)
            .count();
        assert_eq!(live_elsewhere, 3);
    }
}
