//! Job validation on register, with the checks and error texts of Nomad's `Job.Validate`,
//! `TaskGroup.Validate`, `Task.Validate`, `Resources.Validate`, `RestartPolicy.Validate` and
//! `UpdateStrategy.Validate` (`nomad/structs/structs.go`, Nomad 1.x).
//!
//! Nomad collects these errors with `hashicorp/go-multierror`. A group's or a task's errors
//! are nested inside the parent's list as one item, so the text of an invalid task reads
//! `Task group web validation failed: 1 error occurred:` followed by the inner list. The HTTP
//! layer returns the whole text with status 500.
//!
//! NOTE: only the checks on fields that Steward and its users send are modelled. Periodic,
//! parameterized, constraint, network, service, volume and Vault checks are not.

use crate::nomad::model::{Job, Resources, RestartPolicy, Task, TaskGroup, UpdateStrategy};

use super::jobs::ApiError;

/// `RestartPolicyMinInterval` in `nomad/structs`: the shortest restart interval allowed.
const RESTART_MIN_INTERVAL_NS: i64 = 5_000_000_000;

/// Validates a canonical job. Returns a 500 with the multi-error text when a check fails.
pub fn validate_job(job: &Job) -> Result<(), ApiError> {
    let errors = job_errors(job);
    if errors.is_empty() {
        return Ok(());
    }
    Err(ApiError::internal(format_errors(&errors)))
}

/// Formats an error list the way `go-multierror`'s default `ListFormatFunc` does.
pub fn format_errors(errors: &[String]) -> String {
    if let [only] = errors {
        return format!("1 error occurred:\n\t* {only}\n\n");
    }
    let points: Vec<String> = errors.iter().map(|error| format!("* {error}")).collect();
    format!(
        "{} errors occurred:\n\t{}\n\n",
        errors.len(),
        points.join("\n\t")
    )
}

/// Formats nanoseconds the way Go's `time.Duration.String` does: `0s`, `500ms`, `1.5s`,
/// `5m0s`, `24h0m0s`.
pub fn go_duration(nanoseconds: i64) -> String {
    if nanoseconds == 0 {
        return "0s".to_owned();
    }
    let sign = if nanoseconds < 0 { "-" } else { "" };
    let magnitude = nanoseconds.unsigned_abs();
    let body = if magnitude < 1_000 {
        format!("{magnitude}ns")
    } else if magnitude < 1_000_000 {
        format!("{}µs", decimal(magnitude, 1_000))
    } else if magnitude < 1_000_000_000 {
        format!("{}ms", decimal(magnitude, 1_000_000))
    } else {
        let seconds = decimal(magnitude % 60_000_000_000, 1_000_000_000);
        let total_minutes = magnitude / 60_000_000_000;
        let (hours, minutes) = (total_minutes / 60, total_minutes % 60);
        if hours > 0 {
            format!("{hours}h{minutes}m{seconds}s")
        } else if minutes > 0 {
            format!("{minutes}m{seconds}s")
        } else {
            format!("{seconds}s")
        }
    };
    format!("{sign}{body}")
}

/// Writes `value / unit` as a decimal without trailing zeros (`1500, 1000` gives `1.5`).
fn decimal(value: u64, unit: u64) -> String {
    let whole = value / unit;
    let fraction = value % unit;
    if fraction == 0 {
        return whole.to_string();
    }
    let width = unit.ilog10() as usize;
    let digits = format!("{fraction:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// Quotes a string the way Go's `%q` does for printable text.
fn quote(text: &str) -> String {
    format!("{text:?}")
}

fn job_errors(job: &Job) -> Vec<String> {
    let mut errors = Vec::new();

    if job.id.contains(' ') {
        errors.push("Job ID contains a space".to_owned());
    }
    let job_type = job.r#type.as_deref().unwrap_or("");
    match job_type {
        "service" | "batch" | "system" | "sysbatch" => {}
        "" => errors.push("Missing job type".to_owned()),
        other => errors.push(format!("Invalid job type: {}", quote(other))),
    }
    let priority = job.priority.unwrap_or(50);
    if !(1..=100).contains(&priority) {
        errors.push("Job priority must be between [1, 100]".to_owned());
    }
    match job.datacenters.as_deref() {
        None | Some([]) => errors.push("Missing job datacenters".to_owned()),
        Some(datacenters) => {
            if datacenters.iter().any(String::is_empty) {
                errors.push("datacenter must be non-empty string".to_owned());
            }
        }
    }
    if job.groups().is_empty() {
        errors.push("Missing job task groups".to_owned());
    }

    let mut seen: Vec<&str> = Vec::new();
    for (position, group) in job.groups().iter().enumerate() {
        if group.name.is_empty() {
            errors.push(format!("Job task group {} missing name", position + 1));
        } else if let Some(first) = seen.iter().position(|name| *name == group.name) {
            errors.push(format!(
                "Job task group {} redefines '{}' from group {}",
                position + 1,
                group.name,
                first + 1
            ));
        }
        seen.push(&group.name);

        let count = group.count.unwrap_or(1);
        if job_type == "system" && count > 1 {
            errors.push(format!(
                "Job task group {} has count {count}. Count cannot exceed 1 with system scheduler",
                group.name
            ));
        }
    }

    for group in job.groups() {
        let group_errors = group_errors(job_type, group);
        if !group_errors.is_empty() {
            errors.push(format!(
                "Task group {} validation failed: {}",
                group.name,
                format_errors(&group_errors)
            ));
        }
    }
    errors
}

fn group_errors(job_type: &str, group: &TaskGroup) -> Vec<String> {
    let mut errors = Vec::new();

    if group.name.is_empty() {
        errors.push("Missing task group name".to_owned());
    }
    if group.count.unwrap_or(1) < 0 {
        errors.push("Task group count can't be negative".to_owned());
    }
    if group.task_list().is_empty() {
        errors.push("Missing tasks for task group".to_owned());
    }
    match &group.restart_policy {
        Some(policy) => {
            let policy_errors = restart_policy_errors(policy);
            if !policy_errors.is_empty() {
                errors.push(format_errors(&policy_errors));
            }
        }
        None => errors.push(format!(
            "Task Group {} should have a restart policy",
            group.name
        )),
    }
    if matches!(job_type, "service" | "system")
        && let Some(update) = &group.update
    {
        let update_errors = update_errors(update);
        if !update_errors.is_empty() {
            errors.push(format_errors(&update_errors));
        }
    }

    let mut seen: Vec<&str> = Vec::new();
    for (position, task) in group.task_list().iter().enumerate() {
        if task.name.is_empty() {
            errors.push(format!("Task {} missing name", position + 1));
        } else if let Some(first) = seen.iter().position(|name| *name == task.name) {
            errors.push(format!(
                "Task {} redefines '{}' from task {}",
                position + 1,
                task.name,
                first + 1
            ));
        }
        seen.push(&task.name);
    }

    for task in group.task_list() {
        let task_errors = task_errors(task);
        if !task_errors.is_empty() {
            errors.push(format!(
                "Task {} validation failed: {}",
                task.name,
                format_errors(&task_errors)
            ));
        }
    }
    errors
}

fn task_errors(task: &Task) -> Vec<String> {
    let mut errors = Vec::new();

    if task.name.is_empty() {
        errors.push("Missing task name".to_owned());
    }
    if task.driver.is_empty() {
        errors.push("Missing task driver".to_owned());
    }
    if task.kill_timeout.is_some_and(|timeout| timeout.0 < 0) {
        errors.push("KillTimeout must be a positive value".to_owned());
    }
    match &task.resources {
        Some(resources) => {
            let resource_errors = resource_errors(resources);
            if !resource_errors.is_empty() {
                errors.push(format_errors(&resource_errors));
            }
        }
        None => errors.push("Missing task resources".to_owned()),
    }
    errors
}

fn resource_errors(resources: &Resources) -> Vec<String> {
    let mut errors = Vec::new();
    let cpu = resources.cpu.unwrap_or(0);
    let cores = resources.cores.unwrap_or(0);
    let memory_mb = resources.memory_mb.unwrap_or(0);
    let memory_max_mb = resources.memory_max_mb.unwrap_or(0);

    if cores > 0 && cpu > 0 {
        errors.push("Task can only ask for 'cpu' or 'cores' resource, not both.".to_owned());
    }

    // `MeetsMinResources` returns its own list, nested as one item.
    let mut minimums = Vec::new();
    if cpu < 1 && cores == 0 {
        minimums.push(format!("minimum CPU value is 1; got {cpu}"));
    }
    if memory_mb < 10 {
        minimums.push(format!("minimum MemoryMB value is 10; got {memory_mb}"));
    }
    if !minimums.is_empty() {
        errors.push(format_errors(&minimums));
    }

    if resources.disk_mb.unwrap_or(0) > 0 {
        errors.push(
            "Task can't ask for disk resources, they have to be specified at the task group level."
                .to_owned(),
        );
    }
    // 0 and -1 mean "no upper limit".
    if memory_max_mb != 0 && memory_max_mb != -1 && memory_max_mb < memory_mb {
        errors.push(format!(
            "MemoryMaxMB value ({memory_max_mb}) should be larger than MemoryMB value ({memory_mb})"
        ));
    }
    errors
}

fn restart_policy_errors(policy: &RestartPolicy) -> Vec<String> {
    let mut errors = Vec::new();
    let mode = policy.mode.as_deref().unwrap_or("");
    let attempts = policy.attempts.unwrap_or(0);
    let interval = policy.interval.map_or(0, |interval| interval.0);
    let delay = policy.delay.map_or(0, |delay| delay.0);

    if !matches!(mode, "delay" | "fail") {
        errors.push(format!("Unsupported restart mode: {}", quote(mode)));
    }
    if attempts == 0 && mode != "fail" {
        errors.push(format!(
            "Restart policy {} with {attempts} attempts is ambiguous",
            quote(mode)
        ));
    }
    if interval < RESTART_MIN_INTERVAL_NS {
        errors.push(format!(
            "Interval can not be less than {} (got {})",
            go_duration(RESTART_MIN_INTERVAL_NS),
            go_duration(interval)
        ));
    }
    if attempts.saturating_mul(delay) > interval {
        errors.push(format!(
            "Nomad can't restart the TaskGroup {attempts} times in an interval of {} with a delay of {}",
            go_duration(interval),
            go_duration(delay)
        ));
    }
    errors
}

fn update_errors(update: &UpdateStrategy) -> Vec<String> {
    let mut errors = Vec::new();
    let health_check = update.health_check.as_deref().unwrap_or("");
    let max_parallel = update.max_parallel.unwrap_or(0);
    let canary = update.canary.unwrap_or(0);
    let min_healthy = update.min_healthy_time.map_or(0, |time| time.0);
    let healthy_deadline = update.healthy_deadline.map_or(0, |time| time.0);
    let progress_deadline = update.progress_deadline.map_or(0, |time| time.0);

    if !matches!(health_check, "checks" | "task_states" | "manual") {
        errors.push(format!(
            "Invalid health check given: {}",
            quote(health_check)
        ));
    }
    if max_parallel < 0 {
        errors.push(format!(
            "Max parallel can not be less than zero: {max_parallel} < 0"
        ));
    }
    if canary < 0 {
        errors.push(format!(
            "Canary count can not be less than zero: {canary} < 0"
        ));
    }
    if min_healthy < 0 {
        errors.push(format!(
            "Minimum healthy time may not be less than zero: {}",
            go_duration(min_healthy)
        ));
    }
    if healthy_deadline <= 0 {
        errors.push(format!(
            "Healthy deadline must be greater than zero: {}",
            go_duration(healthy_deadline)
        ));
    }
    if progress_deadline < 0 {
        errors.push(format!(
            "Progress deadline must be zero or greater: {}",
            go_duration(progress_deadline)
        ));
    }
    if min_healthy >= healthy_deadline {
        errors.push(format!(
            "Minimum healthy time must be less than healthy deadline: {} > {}",
            go_duration(min_healthy),
            go_duration(healthy_deadline)
        ));
    }
    if progress_deadline != 0 && healthy_deadline >= progress_deadline {
        errors.push(format!(
            "Healthy deadline must be less than progress deadline: {} > {}",
            go_duration(healthy_deadline),
            go_duration(progress_deadline)
        ));
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_duration_matches_go_format() {
        let cases = [
            (0, "0s"),
            (999, "999ns"),
            (1_500, "1.5µs"),
            (500_000_000, "500ms"),
            (1_500_000_000, "1.5s"),
            (5_000_000_000, "5s"),
            (300_000_000_000, "5m0s"),
            (86_400_000_000_000, "24h0m0s"),
            (-10_000_000_000, "-10s"),
        ];
        for (nanoseconds, expected) in cases {
            assert_eq!(go_duration(nanoseconds), expected, "{nanoseconds} ns");
        }
    }

    #[test]
    fn format_errors_single_and_many() {
        assert_eq!(
            format_errors(&["a".to_owned()]),
            "1 error occurred:\n\t* a\n\n"
        );
        assert_eq!(
            format_errors(&["a".to_owned(), "b".to_owned()]),
            "2 errors occurred:\n\t* a\n\t* b\n\n"
        );
    }
}
