//! Job writes: register (with canonicalization, versions and `EnforceIndex`), scale, stop
//! and purge, with the error texts and status codes of Nomad's HTTP API.

use std::sync::Arc;

use http::StatusCode;

use super::defaults::fill_group_defaults;
use super::events::{EventType, Subject};
use super::state::{Cluster, JobEntry, JobKey, ScalingEvent, TRACKED_VERSIONS, Table};
use super::validate::validate_job;
use crate::nomad::model::{Job, MigrateStrategy, NomadDuration, Resources, UpdateStrategy};

/// An error returned as plain text with a status code, as Nomad's HTTP layer does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    /// Builds a 400 error.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    /// Builds a 404 error.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    /// Builds a 500 error, the status Nomad uses for every uncoded error.
    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
        }
    }
}

/// `JobRegisterRequest` minus the parts the emulator ignores.
#[derive(Debug, Clone, Default)]
pub struct RegisterRequest {
    pub job: Job,
    pub enforce_index: bool,
    pub job_modify_index: u64,
    pub preserve_counts: bool,
    pub preserve_resources: bool,
}

/// The response of a job write (`JobRegisterResponse`, `JobDeregisterResponse`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOutcome {
    pub eval_id: String,
    pub eval_create_index: u64,
    pub job_modify_index: u64,
    pub index: u64,
}

fn default_update() -> UpdateStrategy {
    UpdateStrategy {
        stagger: Some(NomadDuration::from_secs(30)),
        max_parallel: Some(1),
        health_check: Some("checks".to_owned()),
        min_healthy_time: Some(NomadDuration::from_secs(10)),
        healthy_deadline: Some(NomadDuration::from_secs(300)),
        progress_deadline: Some(NomadDuration::from_secs(600)),
        auto_revert: Some(false),
        auto_promote: Some(false),
        canary: Some(0),
    }
}

/// Lays `over`'s set fields on top of `base`.
fn merge_update(base: &UpdateStrategy, over: &UpdateStrategy) -> UpdateStrategy {
    UpdateStrategy {
        stagger: over.stagger.or(base.stagger),
        max_parallel: over.max_parallel.or(base.max_parallel),
        health_check: over.health_check.clone().or(base.health_check.clone()),
        min_healthy_time: over.min_healthy_time.or(base.min_healthy_time),
        healthy_deadline: over.healthy_deadline.or(base.healthy_deadline),
        progress_deadline: over.progress_deadline.or(base.progress_deadline),
        auto_revert: over.auto_revert.or(base.auto_revert),
        auto_promote: over.auto_promote.or(base.auto_promote),
        canary: over.canary.or(base.canary),
    }
}

/// Fills in the defaults Nomad's `Canonicalize` sets: Name = ID, namespace `default`,
/// priority 50, region `global`, type `service`, node pool `default`, datacenters `*`,
/// group count 1, the `Update` block merged into each service group, task resources, and the
/// restart, reschedule, disk, log and kill-timeout defaults of [`fill_group_defaults`].
pub fn canonicalize(job: &mut Job) {
    if job.name.as_deref().unwrap_or("").is_empty() {
        job.name = Some(job.id.clone());
    }
    if job.namespace.as_deref().unwrap_or("").is_empty() {
        job.namespace = Some("default".to_owned());
    }
    job.priority = Some(job.priority.filter(|priority| *priority > 0).unwrap_or(50));
    if job.region.as_deref().unwrap_or("").is_empty() {
        job.region = Some("global".to_owned());
    }
    if job.r#type.as_deref().unwrap_or("").is_empty() {
        job.r#type = Some("service".to_owned());
    }
    if job.node_pool.as_deref().unwrap_or("").is_empty() {
        job.node_pool = Some("default".to_owned());
    }
    if job.datacenters.as_ref().is_none_or(Vec::is_empty) {
        job.datacenters = Some(vec!["*".to_owned()]);
    }
    job.stop.get_or_insert(false);
    job.all_at_once.get_or_insert(false);
    job.meta.get_or_insert_with(Default::default);
    job.parent_id.get_or_insert_with(String::new);

    let job_update = job.update.clone().unwrap_or_default();
    job.update = Some(UpdateStrategy {
        stagger: job_update.stagger.or(Some(NomadDuration::from_secs(30))),
        max_parallel: job_update.max_parallel.or(Some(1)),
        health_check: job_update.health_check.clone().or(Some(String::new())),
        min_healthy_time: job_update.min_healthy_time.or(Some(NomadDuration(0))),
        healthy_deadline: job_update.healthy_deadline.or(Some(NomadDuration(0))),
        progress_deadline: job_update.progress_deadline.or(Some(NomadDuration(0))),
        auto_revert: job_update.auto_revert.or(Some(false)),
        auto_promote: job_update.auto_promote.or(Some(false)),
        canary: job_update.canary.or(Some(0)),
    });
    let is_service = job.r#type.as_deref() == Some("service");
    let is_system = job.r#type.as_deref() == Some("system");

    let mut groups = job.task_groups.take();
    for group in groups.iter_mut().flatten() {
        fill_group_defaults(job, group);
    }
    job.task_groups = groups;

    for group in job.task_groups.iter_mut().flatten() {
        group.count.get_or_insert(1);
        if is_service || is_system {
            let over = group.update.clone().unwrap_or_default();
            let base = merge_update(&default_update(), &job_update);
            group.update = Some(merge_update(&base, &over));
        }
        if is_service {
            group.migrate.get_or_insert(MigrateStrategy {
                max_parallel: Some(1),
                health_check: Some("checks".to_owned()),
                min_healthy_time: Some(NomadDuration::from_secs(10)),
                healthy_deadline: Some(NomadDuration::from_secs(300)),
            });
        }
        for task in group.tasks.iter_mut().flatten() {
            let resources = task.resources.get_or_insert_with(Resources::default);
            if resources.cores.unwrap_or(0) == 0 {
                resources.cpu.get_or_insert(100);
            }
            resources.memory_mb.get_or_insert(300);
        }
    }
}

/// Clears the fields the server owns, so two jobs compare by spec alone.
fn spec_only(job: &Job) -> Job {
    let mut spec = job.clone();
    spec.status = None;
    spec.status_description = None;
    spec.stable = None;
    spec.version = None;
    spec.submit_time = None;
    spec.create_index = None;
    spec.modify_index = None;
    spec.job_modify_index = None;
    spec
}

/// Registers or updates a job (`POST /v1/jobs`) and queues an evaluation.
pub fn register(
    cluster: &mut Cluster,
    request: RegisterRequest,
    now_ns: i64,
) -> Result<WriteOutcome, ApiError> {
    let mut job = request.job;
    canonicalize(&mut job);
    validate_job(&job)?;
    let key: JobKey = (job.namespace_or_default().to_owned(), job.id.clone());
    let existing = cluster.jobs.get(&key).map(|entry| Arc::clone(&entry.job));

    // EnforceIndex: check-and-set on JobModifyIndex.
    if request.enforce_index {
        let expected = request.job_modify_index;
        match (&existing, expected) {
            (Some(_), 0) => {
                return Err(ApiError::internal(
                    "Enforcing job modify index 0: job already exists",
                ));
            }
            (None, 0) => {}
            (None, n) => {
                return Err(ApiError::internal(format!(
                    "Enforcing job modify index {n}: job does not exist"
                )));
            }
            (Some(current), n) => {
                let have = current.job_modify_index.unwrap_or(0);
                if have != n {
                    return Err(ApiError::internal(format!(
                        "Enforcing job modify index {n}: job exists with conflicting job modify index: {have}"
                    )));
                }
            }
        }
    }

    if let Some(current) = &existing {
        if current.r#type != job.r#type {
            return Err(ApiError::internal(format!(
                "cannot update job from type {:?} to {:?}",
                current.r#type.as_deref().unwrap_or(""),
                job.r#type.as_deref().unwrap_or("")
            )));
        }
        for group in job.task_groups.iter_mut().flatten() {
            let Some(stored) = current.group(&group.name) else {
                continue;
            };
            if request.preserve_counts {
                group.count = stored.count;
            }
            if request.preserve_resources {
                for task in group.tasks.iter_mut().flatten() {
                    if let Some(stored_task) =
                        stored.task_list().iter().find(|t| t.name == task.name)
                    {
                        task.resources = stored_task.resources.clone();
                    }
                }
            }
        }
    }

    cluster.begin();
    let spec_changed = existing
        .as_ref()
        .is_none_or(|current| spec_only(current) != spec_only(&job));
    if !spec_changed {
        // Nothing is written for the job, and the evaluation is a Raft entry of its own.
        // Nomad 1.x (`nomad/job_endpoint.go` `Register`) replies with the stored
        // JobModifyIndex. Older releases replied with the job's ModifyIndex.
        let current = existing.expect("an unchanged spec implies an existing job");
        let (eval_id, eval_index) = cluster.create_eval(&current, "job-register", "", "", now_ns);
        return Ok(WriteOutcome {
            eval_id,
            eval_create_index: eval_index,
            job_modify_index: current.job_modify_index.unwrap_or(0),
            index: eval_index,
        });
    }

    // The job, its summary and its evaluation form one Raft entry, so all three indexes
    // in the reply are equal.

    let job = store_version(cluster, &key, job, now_ns);
    let is_parent = job.periodic.is_some() || job.parameterized_job.is_some();
    let (eval_id, eval_create_index) = if is_parent {
        (String::new(), 0)
    } else {
        cluster.create_eval(&job, "job-register", "", "", now_ns)
    };
    let job_modify_index = job.job_modify_index.unwrap_or(0);
    Ok(WriteOutcome {
        eval_id,
        eval_create_index,
        job_modify_index,
        index: job_modify_index,
    })
}

/// Stores a changed spec as the job's next version and returns it with server fields set.
pub fn store_version(cluster: &mut Cluster, key: &JobKey, job: Job, now_ns: i64) -> Arc<Job> {
    store_version_as(EventType::JobRegistered, cluster, key, job, now_ns)
}

/// Like [`store_version`], publishing the change as an event of type `kind`.
pub fn store_version_as(
    kind: EventType,
    cluster: &mut Cluster,
    key: &JobKey,
    mut job: Job,
    now_ns: i64,
) -> Arc<Job> {
    let index = cluster.touch(Table::Jobs);
    cluster.mark_event(index, kind, Subject::Job(key.clone()));
    let previous = cluster.jobs.get(key).map(|entry| Arc::clone(&entry.job));
    job.version = Some(previous.as_ref().map_or(0, |p| p.version.unwrap_or(0) + 1));
    job.create_index = Some(
        previous
            .as_ref()
            .map_or(index, |p| p.create_index.unwrap_or(index)),
    );
    job.modify_index = Some(index);
    job.job_modify_index = Some(index);
    job.submit_time = Some(now_ns);
    job.stable = Some(false);
    job.status = Some(match &previous {
        Some(previous) => previous
            .status
            .clone()
            .unwrap_or_else(|| "pending".to_owned()),
        None => "pending".to_owned(),
    });
    job.status_description.get_or_insert_with(String::new);
    let job = Arc::new(job);

    let summary_index = cluster.touch(Table::JobSummary);
    let entry = cluster.jobs.entry(key.clone()).or_insert_with(|| JobEntry {
        job: Arc::clone(&job),
        versions: Vec::new(),
        scaling_events: Default::default(),
        summary_modify_index: summary_index,
        stub_cache: Default::default(),
    });
    entry.job = Arc::clone(&job);
    entry.versions.insert(0, Arc::clone(&job));
    entry.versions.truncate(TRACKED_VERSIONS);
    tracing::debug!(job = %key.1, version = job.version.unwrap_or(0), "job version stored");
    job
}

/// Changes a stored job without a new version (status, stability): moves `ModifyIndex` only.
pub fn update_job_status(
    cluster: &mut Cluster,
    key: &JobKey,
    change: impl FnOnce(&mut Job) -> bool,
) {
    let Some(entry) = cluster.jobs.get(key) else {
        return;
    };
    let mut job = (*entry.job).clone();
    if !change(&mut job) {
        return;
    }
    let index = cluster.touch(Table::Jobs);
    cluster.mark_event(index, EventType::JobRegistered, Subject::Job(key.clone()));
    job.modify_index = Some(index);
    let job = Arc::new(job);
    if let Some(entry) = cluster.jobs.get_mut(key) {
        let version = job.version;
        for stored in entry.versions.iter_mut() {
            if stored.version == version {
                *stored = Arc::clone(&job);
            }
        }
        entry.job = job;
    }
}

/// `ScalingRequest`.
#[derive(Debug, Clone, Default)]
pub struct ScaleRequest {
    pub count: Option<i64>,
    pub group: Option<String>,
    pub message: String,
    pub error: bool,
    pub job_modify_index: u64,
}

/// Scales a group (`POST /v1/job/:id/scale`), checking in Nomad's order.
pub fn scale(
    cluster: &mut Cluster,
    key: &JobKey,
    request: ScaleRequest,
    now_ns: i64,
) -> Result<WriteOutcome, ApiError> {
    let Some(group_name) = request.group.filter(|group| !group.is_empty()) else {
        return Err(ApiError::bad_request(
            "missing task group name for scaling action",
        ));
    };
    if request.count.is_some_and(|count| count < 0) {
        return Err(ApiError::bad_request(
            "scaling action count can't be negative",
        ));
    }
    if request.count.is_some() && request.error {
        return Err(ApiError::bad_request(
            "scaling action should not contain count if error is true",
        ));
    }
    let Some(job) = cluster.jobs.get(key).map(|entry| Arc::clone(&entry.job)) else {
        return Err(ApiError::not_found(format!("job {:?} not found", key.1)));
    };
    if job.r#type.as_deref() == Some("system") && request.count.is_some_and(|count| count > 1) {
        return Err(ApiError::bad_request(
            "jobs of type \"system\" can only be scaled between 0 and 1",
        ));
    }
    let Some(group) = job.group(&group_name) else {
        return Err(ApiError::bad_request(format!(
            "task group {group_name:?} specified for scaling does not exist in job"
        )));
    };
    if let (Some(count), Some(scaling)) = (request.count, &group.scaling) {
        let min = scaling.get("Min").and_then(serde_json::Value::as_i64);
        let max = scaling.get("Max").and_then(serde_json::Value::as_i64);
        if let Some(min) = min.filter(|&min| count < min) {
            return Err(ApiError::bad_request(format!(
                "group count was less than scaling policy minimum: {count} < {min}"
            )));
        }
        if let Some(max) = max.filter(|&max| count > max) {
            return Err(ApiError::bad_request(format!(
                "group count was greater than scaling policy maximum: {count} > {max}"
            )));
        }
    }
    // Nomad 1.x checks the deployment and the JobModifyIndex only when the request sets a
    // count, so a scaling event without one is recorded during a deployment.
    let changes_count = request.count.is_some();
    if changes_count && cluster.active_deployment_id(key).is_some() {
        return Err(ApiError::bad_request(
            "job scaling blocked due to active deployment",
        ));
    }
    let have = job.job_modify_index.unwrap_or(0);
    if changes_count && request.job_modify_index != 0 && request.job_modify_index != have {
        return Err(ApiError::internal(format!(
            "Enforcing job modify index {}: job exists with conflicting job modify index: {have}",
            request.job_modify_index
        )));
    }

    // Nomad applies three Raft entries here: the job with its new count, then the
    // evaluation, then the scaling event. The reply carries one index from each.
    cluster.begin();
    let previous_count = group.count.unwrap_or(1);
    let mut outcome = WriteOutcome {
        job_modify_index: job.modify_index.unwrap_or(0),
        ..WriteOutcome::default()
    };
    if let Some(count) = request.count {
        let mut spec = (*job).clone();
        for group in spec.task_groups.iter_mut().flatten() {
            if group.name == group_name {
                group.count = Some(count);
            }
        }
        let stored = store_version(cluster, key, spec, now_ns);

        cluster.begin();
        let (eval_id, eval_index) = cluster.create_eval(&stored, "job-scaling", "", "", now_ns);
        outcome = WriteOutcome {
            eval_id,
            eval_create_index: eval_index,
            job_modify_index: stored.job_modify_index.unwrap_or(0),
            index: 0,
        };
        cluster.begin();
    }
    // NOTE: Nomad keeps scaling events in a table of their own. The emulator moves the
    // jobs table index, so job watchers also wake on an event without a count.
    let index = cluster.touch(Table::Jobs);
    outcome.index = index;
    let event = ScalingEvent {
        time_ns: now_ns,
        count: request.count,
        previous_count,
        message: request.message,
        error: request.error,
        eval_id: (!outcome.eval_id.is_empty()).then(|| outcome.eval_id.clone()),
        create_index: index,
    };
    if let Some(entry) = cluster.jobs.get_mut(key) {
        entry
            .scaling_events
            .entry(group_name)
            .or_default()
            .insert(0, event);
    }
    Ok(outcome)
}

/// Stops a job (`DELETE /v1/job/:id`): a new version with `Stop: true`, or removal with
/// `purge`.
pub fn deregister(
    cluster: &mut Cluster,
    key: &JobKey,
    purge: bool,
    now_ns: i64,
) -> Result<WriteOutcome, ApiError> {
    let Some(job) = cluster.jobs.get(key).map(|entry| Arc::clone(&entry.job)) else {
        return Err(ApiError::not_found("job not found"));
    };
    cluster.begin();
    if purge {
        cluster.jobs.remove(key);
        let index = cluster.touch(Table::Jobs);
        cluster.mark_event(
            index,
            EventType::JobDeregistered,
            Subject::PurgedJob(Arc::clone(&job)),
        );
        cluster.touch(Table::JobSummary);
        let (eval_id, eval_index) = cluster.create_eval(&job, "job-deregister", "", "", now_ns);
        return Ok(WriteOutcome {
            eval_id,
            eval_create_index: eval_index,
            job_modify_index: index,
            index: eval_index,
        });
    }

    // The stopped job and its evaluation form one Raft entry, so the reply carries one index
    // three times, also when the job was already stopped.
    let mut spec = (*job).clone();
    spec.stop = Some(true);
    let stored = if job.stop == Some(true) {
        job
    } else {
        store_version_as(EventType::JobDeregistered, cluster, key, spec, now_ns)
    };
    let (eval_id, eval_index) = cluster.create_eval(&stored, "job-deregister", "", "", now_ns);
    Ok(WriteOutcome {
        eval_id,
        eval_create_index: eval_index,
        job_modify_index: eval_index,
        index: eval_index,
    })
}

/// Dispatches a parameterized job (`POST /v1/job/:id/dispatch`): registers a child job
/// `<parent>/dispatch-<unix seconds>-<8 hex>` carrying the payload and meta, and queues its
/// evaluation. Returns the child's ID with the write outcome.
pub fn dispatch(
    cluster: &mut Cluster,
    key: &JobKey,
    payload: Option<String>,
    meta: std::collections::BTreeMap<String, String>,
    now_ns: i64,
) -> Result<(String, WriteOutcome), ApiError> {
    let Some(parent) = cluster.jobs.get(key).map(|entry| Arc::clone(&entry.job)) else {
        return Err(ApiError::not_found("job not found"));
    };
    if parent.parameterized_job.is_none() {
        return Err(ApiError::bad_request(
            "Specified job is not a parameterized job",
        ));
    }
    if parent.stop == Some(true) {
        return Err(ApiError::bad_request("Specified job is stopped"));
    }

    cluster.begin();
    let suffix: u32 = rand::Rng::random(&mut cluster.rng);
    let child_id = format!(
        "{}/dispatch-{}-{suffix:08x}",
        parent.id,
        now_ns / 1_000_000_000
    );
    let mut child = spec_only(&parent);
    child.id = child_id.clone();
    child.name = Some(child_id.clone());
    child.parent_id = Some(parent.id.clone());
    child.parameterized_job = None;
    child.dispatched = Some(true);
    child.payload = payload.map(serde_json::Value::String);
    child.meta.get_or_insert_with(Default::default).extend(meta);
    let child_key = (key.0.clone(), child_id.clone());
    let stored = store_version(cluster, &child_key, child, now_ns);
    let (eval_id, eval_create_index) = cluster.create_eval(&stored, "job-register", "", "", now_ns);
    Ok((
        child_id,
        WriteOutcome {
            eval_id,
            eval_create_index,
            job_modify_index: stored.job_modify_index.unwrap_or(0),
            index: eval_create_index,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(count: i64) -> Job {
        serde_json::from_value(serde_json::json!({
            "ID": "web",
            "TaskGroups": [{"Name": "web", "Count": count,
                "Tasks": [{"Name": "app", "Driver": "docker", "Config": {"image": "app:1"}}]}]
        }))
        .expect("valid job")
    }

    #[test]
    fn canonicalize_fills_defaults() {
        let mut job = job(2);
        canonicalize(&mut job);
        assert_eq!(job.name.as_deref(), Some("web"));
        assert_eq!(job.priority, Some(50));
        assert_eq!(job.region.as_deref(), Some("global"));
        assert_eq!(job.namespace.as_deref(), Some("default"));
        let update = job.groups()[0]
            .update
            .clone()
            .expect("service group update");
        assert_eq!(update.max_parallel, Some(1));
        assert_eq!(update.min_healthy_time, Some(NomadDuration::from_secs(10)));
        assert_eq!(
            job.update.clone().and_then(|u| u.health_check),
            Some(String::new())
        );
    }

    #[test]
    fn unchanged_spec_makes_no_version() {
        let mut cluster = Cluster::new(1);
        let request = RegisterRequest {
            job: job(2),
            ..RegisterRequest::default()
        };
        let first = register(&mut cluster, request.clone(), 0).expect("register");
        let second = register(&mut cluster, request, 0).expect("register again");
        let key = ("default".to_owned(), "web".to_owned());
        assert_eq!(cluster.jobs[&key].job.version, Some(0));
        assert_ne!(first.eval_id, second.eval_id);
        assert_eq!(cluster.jobs[&key].versions.len(), 1);
    }

    #[test]
    fn enforce_index_conflict_names_both_indexes() {
        let mut cluster = Cluster::new(1);
        let stored = register(
            &mut cluster,
            RegisterRequest {
                job: job(2),
                ..RegisterRequest::default()
            },
            0,
        )
        .expect("register");
        let error = register(
            &mut cluster,
            RegisterRequest {
                job: job(3),
                enforce_index: true,
                job_modify_index: stored.job_modify_index + 7,
                ..RegisterRequest::default()
            },
            0,
        )
        .expect_err("stale index");
        assert_eq!(error.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            error.message,
            format!(
                "Enforcing job modify index {}: job exists with conflicting job modify index: {}",
                stored.job_modify_index + 7,
                stored.job_modify_index
            )
        );
    }
}
