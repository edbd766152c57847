//! The group and task defaults Nomad's API canonicalization fills in (`api/tasks.go`,
//! `api/jobs.go` and the matching `nomad/structs` defaults, Nomad 1.x): restart and
//! reschedule policies by job type, ephemeral disk, log config and kill timeout.
//!
//! A field the job sets keeps its value. Only unset (`None`) fields take the default.

use crate::nomad::model::{
    EphemeralDisk, Job, LogConfig, NomadDuration, ReschedulePolicy, RestartPolicy, TaskGroup,
};

/// `KillTimeout` of a task that sets none.
pub const KILL_TIMEOUT: NomadDuration = NomadDuration(5_000_000_000);

/// Returns the restart policy of a group in a job of this type: 2 attempts in 30 minutes
/// for service and system jobs, 3 in 24 hours for batch and sysbatch, 15 s delay, mode `fail`.
pub fn restart_policy(job_type: &str) -> RestartPolicy {
    let batch = matches!(job_type, "batch" | "sysbatch");
    RestartPolicy {
        attempts: Some(if batch { 3 } else { 2 }),
        interval: Some(if batch {
            NomadDuration::from_secs(24 * 3600)
        } else {
            NomadDuration::from_secs(30 * 60)
        }),
        delay: Some(NomadDuration::from_secs(15)),
        mode: Some("fail".to_owned()),
        render_templates: Some(false),
    }
}

/// Returns the reschedule policy of a group in a job of this type. Service jobs reschedule
/// without limit with an exponential delay from 30 s up to 1 h. Batch jobs reschedule once a
/// day after 5 s. System and sysbatch jobs have none.
pub fn reschedule_policy(job_type: &str) -> Option<ReschedulePolicy> {
    match job_type {
        "service" => Some(ReschedulePolicy {
            attempts: Some(0),
            interval: Some(NomadDuration(0)),
            delay: Some(NomadDuration::from_secs(30)),
            delay_function: Some("exponential".to_owned()),
            max_delay: Some(NomadDuration::from_secs(3600)),
            unlimited: Some(true),
        }),
        "batch" => Some(ReschedulePolicy {
            attempts: Some(1),
            interval: Some(NomadDuration::from_secs(24 * 3600)),
            delay: Some(NomadDuration::from_secs(5)),
            delay_function: Some("constant".to_owned()),
            max_delay: Some(NomadDuration(0)),
            unlimited: Some(false),
        }),
        _ => None,
    }
}

/// Lays `over`'s set fields on top of `base`.
pub fn merge_restart(base: &RestartPolicy, over: &RestartPolicy) -> RestartPolicy {
    RestartPolicy {
        attempts: over.attempts.or(base.attempts),
        interval: over.interval.or(base.interval),
        delay: over.delay.or(base.delay),
        mode: over.mode.clone().or_else(|| base.mode.clone()),
        render_templates: over.render_templates.or(base.render_templates),
    }
}

/// Lays `over`'s set fields on top of `base`.
fn merge_reschedule(base: &ReschedulePolicy, over: &ReschedulePolicy) -> ReschedulePolicy {
    ReschedulePolicy {
        attempts: over.attempts.or(base.attempts),
        interval: over.interval.or(base.interval),
        delay: over.delay.or(base.delay),
        delay_function: over
            .delay_function
            .clone()
            .or_else(|| base.delay_function.clone()),
        max_delay: over.max_delay.or(base.max_delay),
        unlimited: over.unlimited.or(base.unlimited),
    }
}

/// Fills the group's restart, reschedule and disk defaults, then each task's restart
/// policy (the group's, overlaid with the task's own), log config and kill timeout.
pub fn fill_group_defaults(job: &Job, group: &mut TaskGroup) {
    let job_type = job.r#type.as_deref().unwrap_or("service");

    let restart = merge_restart(
        &restart_policy(job_type),
        &group.restart_policy.clone().unwrap_or_default(),
    );
    group.restart_policy = Some(restart.clone());

    // The job-level `reschedule` block applies under the group's own.
    if let Some(base) = reschedule_policy(job_type) {
        let base = match &job.reschedule {
            Some(job_level) => merge_reschedule(&base, job_level),
            None => base,
        };
        let over = group.reschedule_policy.clone().unwrap_or_default();
        group.reschedule_policy = Some(merge_reschedule(&base, &over));
    }

    let disk = group
        .ephemeral_disk
        .get_or_insert_with(EphemeralDisk::default);
    disk.sticky.get_or_insert(false);
    disk.migrate.get_or_insert(false);
    disk.size_mb.get_or_insert(300);

    for task in group.tasks.iter_mut().flatten() {
        let over = task.restart_policy.clone().unwrap_or_default();
        task.restart_policy = Some(merge_restart(&restart, &over));
        task.kill_timeout.get_or_insert(KILL_TIMEOUT);
        let log = task.log_config.get_or_insert_with(LogConfig::default);
        log.max_files.get_or_insert(10);
        log.max_file_size_mb.get_or_insert(10);
        log.disabled.get_or_insert(false);
    }
}
