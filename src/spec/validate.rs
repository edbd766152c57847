//! Semantic checks on typed objects: the rules a JSON Schema cannot express (bounds that
//! depend on each other, uniqueness, what Nomad would reject in a template).
//!
//! These functions check objects from any source (files, Consul KV), so their errors carry
//! only a field path. The loader adds the file, line and column.

use std::collections::{BTreeMap, HashSet};

use jiff::Timestamp;

use super::Duration;
use super::document::Document;
use super::error::ValidationError;
use super::types::{
    API_VERSION, Autoscaling, KIND_OVERRIDE, KIND_WORKER_POOL, MetricSource, ObjectMeta, Override,
    Rollout, WorkerPool,
};
use crate::nomad::TaskGroup;

/// Shortest autoscaling interval, because a shorter cycle would act on noise and load Nomad.
pub const MIN_INTERVAL: Duration = Duration::from_mins(1);

/// Largest `headroom` (a fraction: 10 = 1000 % extra capacity).
pub const MAX_HEADROOM: f64 = 10.0;

/// Longest Nomad job ID, as Nomad's job validation allows.
pub const MAX_JOB_ID_LEN: usize = 128;

/// Smallest `MemoryMB` Nomad accepts for a task.
pub const MIN_MEMORY_MB: i64 = 10;

/// Checks a pool and returns every problem found.
pub fn validate_pool(pool: &WorkerPool) -> Vec<ValidationError> {
    let mut errors = Vec::new();
    check_header(&pool.api_version, &pool.kind, KIND_WORKER_POOL, &mut errors);
    check_metadata(&pool.metadata, &mut errors);

    let spec = &pool.spec;
    if let Some(id) = &spec.job.id {
        check_job_id(id, &mut errors);
    }
    if let Some(namespace) = &spec.job.namespace
        && namespace.trim().is_empty()
    {
        errors.push(ValidationError::new(
            "spec.job.namespace",
            "must not be empty; leave it out to use the namespace `default`",
        ));
    }

    if spec.version.trim().is_empty() {
        errors.push(ValidationError::new(
            "spec.version",
            "must not be empty: set the image (for docker) or artifact version workers run, \
             such as `registry.example.com/face-match:1.4.2`",
        ));
    }

    if spec.workers.min > spec.workers.max {
        errors.push(ValidationError::new(
            "spec.workers.min",
            format!(
                "must be at most spec.workers.max ({}), found {}",
                spec.workers.max, spec.workers.min
            ),
        ));
    }

    check_zones(pool, &mut errors);
    check_template(&spec.template, &mut errors);
    if let Some(autoscaling) = &spec.autoscaling {
        check_autoscaling(autoscaling, pool, &mut errors);
    }
    check_rollout(&spec.rollout, &mut errors);
    errors
}

/// Checks an override. With `now`, an override whose `until` is not after `now` is rejected:
/// pass it when applying an override. Without it, an expired override still passes, which
/// suits reading one back from Consul KV after it may have expired.
pub fn validate_override(item: &Override, now: Option<Timestamp>) -> Vec<ValidationError> {
    let mut errors = Vec::new();
    check_header(&item.api_version, &item.kind, KIND_OVERRIDE, &mut errors);
    check_metadata(&item.metadata, &mut errors);

    if item.spec.reason.trim().is_empty() {
        errors.push(ValidationError::new(
            "spec.reason",
            "must not be empty: say why the worker count is pinned, such as \
             `product launch, INC-123`",
        ));
    }
    if let Some(now) = now
        && item.spec.until <= now
    {
        errors.push(ValidationError::new(
            "spec.until",
            format!(
                "{} is not in the future (now is {now}): set a later time, or use \
                 `--for 2h` on the command line",
                item.spec.until
            ),
        ));
    }
    if let Some(by) = &item.spec.by
        && by.trim().is_empty()
    {
        errors.push(ValidationError::new(
            "spec.by",
            "must not be empty; leave it out or name who set the override",
        ));
    }
    errors
}

/// Checks one document, and checks an override's `until` against `now` when given.
pub fn validate_document(document: &Document, now: Option<Timestamp>) -> Vec<ValidationError> {
    match document {
        Document::WorkerPool(pool) => validate_pool(pool),
        Document::Override(item) => validate_override(item, now),
    }
}

/// Checks an override against the pool it applies to: a count below `workers.min` or above
/// `workers.max` needs `force: true`.
pub fn validate_override_for_pool(item: &Override, pool: &WorkerPool) -> Vec<ValidationError> {
    let mut errors = Vec::new();
    if item.spec.workers < pool.spec.workers.min && !item.spec.force {
        errors.push(ValidationError::new(
            "spec.workers",
            format!(
                "{} is less than the pool's spec.workers.min ({}); set `force: true` to go \
                 below it on purpose (0 with force stops every worker)",
                item.spec.workers, pool.spec.workers.min
            ),
        ));
    }
    if item.spec.workers > pool.spec.workers.max && !item.spec.force {
        errors.push(ValidationError::new(
            "spec.workers",
            format!(
                "{} is more than the pool's spec.workers.max ({}); set `force: true` to \
                 exceed it on purpose",
                item.spec.workers, pool.spec.workers.max
            ),
        ));
    }
    errors
}

/// Checks rules that span documents: two pools that claim the same Nomad job, two objects
/// of one kind with the same name (they would overwrite each other's Consul key), and an
/// override outside the min and max of a pool in the same input.
/// Returns `(document index, error)` pairs, each reported on the later of the two documents
/// (for an override, on the override).
/// An earlier document is named as `document N`, counting from 1 in input order.
pub fn validate_set<'a>(
    documents: impl IntoIterator<Item = &'a Document>,
) -> Vec<(usize, ValidationError)> {
    let documents: Vec<&Document> = documents.into_iter().collect();
    let locations: Vec<String> = (1..=documents.len())
        .map(|number| format!("document {number}"))
        .collect();
    validate_set_at(&documents, &locations)
}

/// Does the work of [`validate_set`], naming an earlier document by `locations[index]`, such
/// as `pools/a.yaml:4:3 (document 1)`.
pub(crate) fn validate_set_at(
    documents: &[&Document],
    locations: &[String],
) -> Vec<(usize, ValidationError)> {
    let mut errors = Vec::new();
    let mut jobs: BTreeMap<(String, String), (usize, String)> = BTreeMap::new();
    let mut names: BTreeMap<(&'static str, String), usize> = BTreeMap::new();

    let pools: BTreeMap<&str, &WorkerPool> = documents
        .iter()
        .filter_map(|document| match document {
            Document::WorkerPool(pool) => Some((pool.metadata.name.as_str(), pool)),
            Document::Override(_) => None,
        })
        .collect();
    for (index, document) in documents.iter().enumerate() {
        if let Document::Override(item) = document
            && let Some(pool) = pools.get(item.metadata.name.as_str())
        {
            for error in validate_override_for_pool(item, pool) {
                errors.push((index, error));
            }
        }
    }

    for (index, document) in documents.iter().enumerate() {
        let name_key = (document.kind(), document.name().to_owned());
        if let Some(first) = names.get(&name_key) {
            errors.push((
                index,
                ValidationError::new(
                    "metadata.name",
                    format!(
                        "another {} named `{}` is defined earlier, at {}; names must be \
                         unique per kind, so rename or remove one of them",
                        document.kind(),
                        document.name(),
                        locations
                            .get(*first)
                            .map_or("an earlier document", String::as_str)
                    ),
                ),
            ));
        } else {
            names.insert(name_key, index);
        }

        let Document::WorkerPool(pool) = document else {
            continue;
        };
        let job_key = (pool.job_namespace().to_owned(), pool.job_id().to_owned());
        if let Some((_, owner)) = jobs.get(&job_key) {
            let path = if pool.spec.job.id.is_some() {
                "spec.job.id"
            } else {
                "metadata.name"
            };
            errors.push((
                index,
                ValidationError::new(
                    path,
                    format!(
                        "Nomad job `{}` in namespace `{}` is already claimed by pool `{owner}`; \
                         each pool needs its own job: set a different spec.job.id",
                        job_key.1, job_key.0
                    ),
                ),
            ));
        } else {
            jobs.insert(job_key, (index, pool.metadata.name.clone()));
        }
    }
    errors
}

/// Returns an error message when `name` is not a DNS label (RFC 1123): 1 to 63 characters
/// of `a-z`, `0-9` and `-`, starting and ending with a letter or digit.
pub fn dns_label_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty: use a DNS label such as `face-match`".to_owned());
    }
    if name.len() > 63 {
        return Some(format!(
            "{name:?} is {} characters long; a DNS label has at most 63",
            name.len()
        ));
    }
    let valid_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let valid_ends = !name.starts_with('-') && !name.ends_with('-');
    if !valid_chars || !valid_ends {
        return Some(format!(
            "{name:?} is not a DNS label: use lowercase letters, digits and `-`, starting and \
             ending with a letter or digit, such as `face-match`"
        ));
    }
    None
}

fn check_header(
    api_version: &str,
    kind: &str,
    expected_kind: &str,
    out: &mut Vec<ValidationError>,
) {
    if api_version != API_VERSION {
        out.push(ValidationError::new(
            "apiVersion",
            format!("must be `{API_VERSION}`, found {api_version:?}"),
        ));
    }
    if kind != expected_kind {
        out.push(ValidationError::new(
            "kind",
            format!("must be `{expected_kind}`, found {kind:?}"),
        ));
    }
}

fn check_metadata(metadata: &ObjectMeta, out: &mut Vec<ValidationError>) {
    if let Some(problem) = dns_label_problem(&metadata.name) {
        out.push(ValidationError::new("metadata.name", problem));
    }
}

fn check_job_id(id: &str, out: &mut Vec<ValidationError>) {
    if id.is_empty() {
        out.push(ValidationError::new(
            "spec.job.id",
            "must not be empty; leave it out to use the pool's name",
        ));
    } else if id.len() > MAX_JOB_ID_LEN {
        out.push(ValidationError::new(
            "spec.job.id",
            format!(
                "is {} characters long; Nomad accepts at most {MAX_JOB_ID_LEN}",
                id.len()
            ),
        ));
    } else if id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        out.push(ValidationError::new(
            "spec.job.id",
            format!("{id:?} contains whitespace, which Nomad rejects in a job ID"),
        ));
    }
}

fn check_zones(pool: &WorkerPool, out: &mut Vec<ValidationError>) {
    let zones = &pool.spec.zones;
    if zones.is_empty() {
        out.push(ValidationError::new(
            "spec.zones",
            "must list at least one zone, each with a `name` and a `datacenter` or `constraint`",
        ));
        return;
    }

    let mut names = HashSet::new();
    let mut datacenters = HashSet::new();
    let mut constraints = HashSet::new();
    for (i, zone) in zones.iter().enumerate() {
        let path = format!("spec.zones[{i}]");
        if let Some(problem) = dns_label_problem(&zone.name) {
            out.push(ValidationError::new(format!("{path}.name"), problem));
        }
        if !names.insert(zone.name.as_str()) {
            out.push(ValidationError::new(
                format!("{path}.name"),
                format!(
                    "zone name `{}` is used twice; each zone needs its own name",
                    zone.name
                ),
            ));
        }

        match (&zone.datacenter, &zone.constraint) {
            (Some(_), Some(_)) => out.push(ValidationError::new(
                path.clone(),
                "sets both `datacenter` and `constraint`; set exactly one of them",
            )),
            (None, None) => out.push(ValidationError::new(
                path.clone(),
                "sets neither `datacenter` nor `constraint`; set exactly one of them",
            )),
            _ => {}
        }
        if let Some(datacenter) = &zone.datacenter {
            if datacenter.trim().is_empty() {
                out.push(ValidationError::new(
                    format!("{path}.datacenter"),
                    "must not be empty",
                ));
            } else if !datacenters.insert(datacenter.as_str()) {
                out.push(ValidationError::new(
                    format!("{path}.datacenter"),
                    format!(
                        "datacenter `{datacenter}` is used by an earlier zone; each zone needs \
                         its own datacenter"
                    ),
                ));
            }
        }
        if let Some(constraint) = &zone.constraint {
            if constraint.attribute.trim().is_empty() {
                out.push(ValidationError::new(
                    format!("{path}.constraint.attribute"),
                    "must not be empty: use a node attribute such as `${meta.zone}`",
                ));
            } else if !constraint.attribute.starts_with("${")
                || !constraint.attribute.ends_with('}')
            {
                out.push(ValidationError::new(
                    format!("{path}.constraint.attribute"),
                    format!(
                        "{:?} is not a Nomad interpolation: write it as `${{meta.zone}}` or \
                         `${{attr.unique.platform.aws.placement.availability-zone}}`",
                        constraint.attribute
                    ),
                ));
            }
            if !constraints.insert((constraint.attribute.as_str(), constraint.value.as_str())) {
                out.push(ValidationError::new(
                    format!("{path}.constraint"),
                    "selects the same nodes as an earlier zone; each zone needs its own value",
                ));
            }
        }
    }
}

/// `RestartPolicy.Mode` values Nomad 1.x accepts.
const RESTART_MODES: [&str; 2] = ["delay", "fail"];

/// `ReschedulePolicy.DelayFunction` values Nomad 1.x accepts.
const DELAY_FUNCTIONS: [&str; 3] = ["constant", "exponential", "fibonacci"];

/// `Migrate.HealthCheck` values Nomad 1.x accepts.
const HEALTH_CHECKS: [&str; 2] = ["checks", "task_states"];

/// Rejects a value that Nomad would reject when the job is registered.
fn check_enum(path: String, value: Option<&str>, allowed: &[&str], out: &mut Vec<ValidationError>) {
    let Some(value) = value else {
        return;
    };
    if !allowed.contains(&value) {
        out.push(ValidationError::new(
            path,
            format!("must be one of `{}`, found {value:?}", allowed.join("`, `")),
        ));
    }
}

fn check_template(template: &TaskGroup, out: &mut Vec<ValidationError>) {
    let path = "spec.template";
    if !template.name.is_empty() {
        out.push(ValidationError::new(
            format!("{path}.Name"),
            "Steward names each task group after its zone; remove `Name`",
        ));
    }
    if template.count.is_some() {
        out.push(ValidationError::new(
            format!("{path}.Count"),
            "Steward sets the count from spec.workers and the autoscaler; remove `Count`",
        ));
    }
    if template.update.is_some() {
        out.push(ValidationError::new(
            format!("{path}.Update"),
            "Steward sets the Update block from spec.rollout; remove `Update`",
        ));
    }

    check_enum(
        format!("{path}.RestartPolicy.Mode"),
        template
            .restart_policy
            .as_ref()
            .and_then(|p| p.mode.as_deref()),
        &RESTART_MODES,
        out,
    );
    check_enum(
        format!("{path}.ReschedulePolicy.DelayFunction"),
        template
            .reschedule_policy
            .as_ref()
            .and_then(|p| p.delay_function.as_deref()),
        &DELAY_FUNCTIONS,
        out,
    );
    check_enum(
        format!("{path}.Migrate.HealthCheck"),
        template
            .migrate
            .as_ref()
            .and_then(|m| m.health_check.as_deref()),
        &HEALTH_CHECKS,
        out,
    );

    let tasks = template.task_list();
    if tasks.is_empty() {
        out.push(ValidationError::new(
            format!("{path}.Tasks"),
            "must list at least one task, with `Name`, `Driver` and `Resources`",
        ));
    }
    let mut task_names = HashSet::new();
    for (i, task) in tasks.iter().enumerate() {
        let task_path = format!("{path}.Tasks[{i}]");
        if task.name.trim().is_empty() {
            out.push(ValidationError::new(
                format!("{task_path}.Name"),
                "missing: every task needs a name",
            ));
        } else if !task_names.insert(task.name.as_str()) {
            out.push(ValidationError::new(
                format!("{task_path}.Name"),
                format!("task name `{}` is used twice in the group", task.name),
            ));
        }
        check_enum(
            format!("{task_path}.RestartPolicy.Mode"),
            task.restart_policy.as_ref().and_then(|p| p.mode.as_deref()),
            &RESTART_MODES,
            out,
        );
        if task.driver.trim().is_empty() {
            out.push(ValidationError::new(
                format!("{task_path}.Driver"),
                "missing: set the task driver, such as `docker` or `exec`",
            ));
        }
        if task.driver == "docker"
            && let Some(image) = task.config.as_ref().and_then(|c| c.get("image"))
        {
            out.push(ValidationError::new(
                format!("{task_path}.Config.image"),
                format!(
                    "Steward sets the docker image from spec.version; remove `image` \
                     (found {image})"
                ),
            ));
        }

        let Some(resources) = &task.resources else {
            continue;
        };
        let resources_path = format!("{task_path}.Resources");
        if resources.cpu.is_some() && resources.cores.is_some() {
            out.push(ValidationError::new(
                format!("{resources_path}.Cores"),
                "set either `CPU` (MHz shares) or `Cores` (pinned whole cores), not both",
            ));
        }
        if let Some(cpu) = resources.cpu
            && cpu < 1
        {
            out.push(ValidationError::new(
                format!("{resources_path}.CPU"),
                format!("must be at least 1 MHz, found {cpu}"),
            ));
        }
        if let Some(cores) = resources.cores
            && cores < 1
        {
            out.push(ValidationError::new(
                format!("{resources_path}.Cores"),
                format!("must be at least 1, found {cores}; leave it out to use `CPU`"),
            ));
        }
        if let Some(memory) = resources.memory_mb
            && memory < MIN_MEMORY_MB
        {
            out.push(ValidationError::new(
                format!("{resources_path}.MemoryMB"),
                format!("must be at least {MIN_MEMORY_MB} MiB (Nomad's minimum), found {memory}"),
            ));
        }
        if let (Some(memory), Some(memory_max)) = (resources.memory_mb, resources.memory_max_mb)
            && memory_max < memory
        {
            out.push(ValidationError::new(
                format!("{resources_path}.MemoryMaxMB"),
                format!("must be at least MemoryMB ({memory}), found {memory_max}"),
            ));
        }
        for (d, device) in resources.devices.iter().flatten().enumerate() {
            let device_path = format!("{resources_path}.Devices[{d}]");
            if device.name.trim().is_empty() {
                out.push(ValidationError::new(
                    format!("{device_path}.Name"),
                    "missing: name the device as `type`, `vendor/type` or \
                     `vendor/type/model`, such as `nvidia/gpu`",
                ));
            }
            if device.count == Some(0) {
                out.push(ValidationError::new(
                    format!("{device_path}.Count"),
                    "must be at least 1; remove the device to request none",
                ));
            }
        }
    }
}

fn check_autoscaling(autoscaling: &Autoscaling, pool: &WorkerPool, out: &mut Vec<ValidationError>) {
    let path = "spec.autoscaling";
    if autoscaling.interval < MIN_INTERVAL {
        out.push(ValidationError::new(
            format!("{path}.interval"),
            format!(
                "must be at least {MIN_INTERVAL}, found {}",
                autoscaling.interval
            ),
        ));
    }
    if autoscaling.lookback < MIN_INTERVAL {
        out.push(ValidationError::new(
            format!("{path}.lookback"),
            format!(
                "must be at least {MIN_INTERVAL}, found {}",
                autoscaling.lookback
            ),
        ));
    }
    if !(autoscaling.capacity_per_worker.is_finite() && autoscaling.capacity_per_worker > 0.0) {
        out.push(ValidationError::new(
            format!("{path}.capacityPerWorker"),
            format!(
                "must be greater than 0 (requests per second one worker serves), found {}",
                autoscaling.capacity_per_worker
            ),
        ));
    }
    if !(0.0..=MAX_HEADROOM).contains(&autoscaling.headroom) {
        out.push(ValidationError::new(
            format!("{path}.headroom"),
            format!(
                "must be a fraction from 0 to {MAX_HEADROOM} (0.2 = 20 % extra), found {}",
                autoscaling.headroom
            ),
        ));
    }
    if autoscaling.scale_down.stabilization < autoscaling.interval {
        out.push(ValidationError::new(
            format!("{path}.scaleDown.stabilization"),
            format!(
                "must be at least the interval ({}), found {}",
                autoscaling.interval, autoscaling.scale_down.stabilization
            ),
        ));
    }
    if autoscaling.scale_down.max_step == 0 {
        out.push(ValidationError::new(
            format!("{path}.scaleDown.maxStep"),
            "must be at least 1, or the pool could never scale down",
        ));
    }
    if autoscaling.emergency.enabled
        && autoscaling.emergency.check_interval < Duration::from_secs(10)
    {
        out.push(ValidationError::new(
            format!("{path}.emergency.checkInterval"),
            format!(
                "must be at least 10s, found {}",
                autoscaling.emergency.check_interval
            ),
        ));
    }
    if let Some(fallback) = autoscaling.fallback
        && !(pool.spec.workers.min..=pool.spec.workers.max).contains(&fallback)
    {
        out.push(ValidationError::new(
            format!("{path}.fallback"),
            format!(
                "must be between spec.workers.min ({}) and spec.workers.max ({}), found {fallback}",
                pool.spec.workers.min, pool.spec.workers.max
            ),
        ));
    }
    if autoscaling.fallback_after == 0 {
        out.push(ValidationError::new(
            format!("{path}.fallbackAfter"),
            "must be at least 1 failed read",
        ));
    }

    let metric_path = format!("{path}.metric");
    match &autoscaling.metric {
        MetricSource::Prometheus { address, query } => {
            check_http_address(address, &format!("{metric_path}.address"), out);
            check_not_empty(query, &format!("{metric_path}.query"), out);
        }
        MetricSource::Rabbitmq { address, queue, .. } => {
            check_http_address(address, &format!("{metric_path}.address"), out);
            check_not_empty(queue, &format!("{metric_path}.queue"), out);
        }
        MetricSource::Csv { path } => {
            check_not_empty(path, &format!("{metric_path}.path"), out);
        }
    }
}

fn check_rollout(rollout: &Rollout, out: &mut Vec<ValidationError>) {
    let path = "spec.rollout";
    if rollout.healthy_deadline <= rollout.min_healthy_time {
        out.push(ValidationError::new(
            format!("{path}.healthyDeadline"),
            format!(
                "must be longer than minHealthyTime ({}), found {}",
                rollout.min_healthy_time, rollout.healthy_deadline
            ),
        ));
    }
    if rollout.prefetch.enabled && rollout.prefetch.timeout.get().is_zero() {
        out.push(ValidationError::new(
            format!("{path}.prefetch.timeout"),
            "must be longer than 0s",
        ));
    }
    if let Some(analysis) = &rollout.analysis {
        check_http_address(&analysis.address, &format!("{path}.analysis.address"), out);
        check_not_empty(&analysis.query, &format!("{path}.analysis.query"), out);
        if !analysis.threshold.is_finite() {
            out.push(ValidationError::new(
                format!("{path}.analysis.threshold"),
                format!("must be a finite number, found {}", analysis.threshold),
            ));
        }
        if analysis.interval < Duration::from_secs(1) {
            out.push(ValidationError::new(
                format!("{path}.analysis.interval"),
                format!("must be at least 1s, found {}", analysis.interval),
            ));
        }
    }
}

fn check_http_address(address: &str, path: &str, out: &mut Vec<ValidationError>) {
    let scheme_ok = address.starts_with("http://") || address.starts_with("https://");
    let host = address
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    if !scheme_ok || host.is_empty() {
        out.push(ValidationError::new(
            path,
            format!(
                "{address:?} is not an HTTP URL: write it as `http://host:port`, such as \
                 `http://prometheus.service.consul:9090`"
            ),
        ));
    }
}

fn check_not_empty(text: &str, path: &str, out: &mut Vec<ValidationError>) {
    if text.trim().is_empty() {
        out.push(ValidationError::new(path, "must not be empty"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::types::OverrideSpec;

    fn example_pool() -> WorkerPool {
        serde_saphyr::from_str(include_str!("../../examples/pools/face-match.yaml"))
            .expect("the example pool parses")
    }

    fn paths(errors: &[ValidationError]) -> Vec<&str> {
        errors.iter().map(|e| e.path.as_str()).collect()
    }

    #[test]
    fn example_pool_passes() {
        assert_eq!(validate_pool(&example_pool()), []);
    }

    #[test]
    fn dns_label_cases() {
        for valid in ["a", "face-match", "ocr2", &"a".repeat(63)] {
            assert_eq!(dns_label_problem(valid), None, "{valid}");
        }
        for invalid in ["", "-a", "a-", "Face", "a_b", "a.b", &"a".repeat(64)] {
            assert!(dns_label_problem(invalid).is_some(), "{invalid:?}");
        }
    }

    #[test]
    fn typed_pool_reports_every_problem() {
        let mut pool = example_pool();
        pool.api_version = "steward/v2".to_owned();
        pool.spec.workers.min = 30;
        pool.spec.zones[1].datacenter = None;
        let autoscaling = pool
            .spec
            .autoscaling
            .as_mut()
            .expect("the example autoscales");
        autoscaling.capacity_per_worker = f64::NAN;
        autoscaling.headroom = -0.1;
        autoscaling.interval = Duration::from_secs(30);

        assert_eq!(
            paths(&validate_pool(&pool)),
            [
                "apiVersion",
                "spec.workers.min",
                "spec.zones[1]",
                "spec.autoscaling.interval",
                "spec.autoscaling.capacityPerWorker",
                "spec.autoscaling.headroom",
            ]
        );
    }

    #[test]
    fn zone_constraint_must_be_interpolation() {
        let mut pool = example_pool();
        pool.spec.zones[0].datacenter = None;
        pool.spec.zones[0].constraint = Some(crate::spec::ZoneConstraint {
            attribute: "meta.zone".to_owned(),
            value: "a".to_owned(),
        });
        let errors = validate_pool(&pool);
        assert_eq!(paths(&errors), ["spec.zones[0].constraint.attribute"]);
        assert!(errors[0].message.contains("${meta.zone}"), "{}", errors[0]);
    }

    fn override_of(pool: &str, workers: u32, force: bool) -> Override {
        Override::new(
            pool,
            OverrideSpec {
                workers,
                reason: "load test".to_owned(),
                until: "2099-01-01T00:00:00Z".parse().expect("valid timestamp"),
                by: None,
                force,
            },
        )
    }

    #[test]
    fn override_until_checked_only_with_now() {
        let item = override_of("face-match", 3, false);
        let after_until: Timestamp = "2100-01-01T00:00:00Z".parse().expect("valid timestamp");
        assert_eq!(validate_override(&item, None), []);
        assert_eq!(
            paths(&validate_override(&item, Some(after_until))),
            ["spec.until"]
        );
        assert!(!item.is_active(after_until));
        assert!(item.is_active(Timestamp::UNIX_EPOCH));
    }

    #[test]
    fn set_rejects_override_above_max_without_force() {
        let pool = Document::WorkerPool(example_pool());
        let above = Document::Override(override_of("face-match", 30, false));
        let forced = Document::Override(override_of("face-match", 30, true));
        let other_pool = Document::Override(override_of("ocr", 30, false));

        let errors = validate_set([&pool, &above]);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].0, 1);
        assert_eq!(errors[0].1.path, "spec.workers");
        assert_eq!(validate_set([&pool, &forced]), []);
        assert_eq!(validate_set([&pool, &other_pool]), []);
    }

    #[test]
    fn set_rejects_duplicate_names_per_kind() {
        let pool = Document::WorkerPool(example_pool());
        let mut copy = example_pool();
        copy.spec.job.id = Some("face-match-copy".to_owned());
        let copy = Document::WorkerPool(copy);
        let item = Document::Override(override_of("face-match", 2, false));

        let errors = validate_set([&pool, &item, &copy]);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].0, 2);
        assert_eq!(errors[0].1.path, "metadata.name");
    }
}
