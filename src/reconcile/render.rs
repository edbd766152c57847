//! Rendering a pool into the Nomad job Steward owns, and comparing a rendered job with the
//! one Nomad returns.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{META_POOL, META_VERSION, RenderError};
use crate::nomad::{Constraint, Job, NomadDuration, Task, TaskGroup, UpdateStrategy};
use crate::spec::{WorkerPool, Zone};

/// Task drivers whose image is `Config.image`.
const IMAGE_DRIVERS: &[&str] = &["docker", "podman", "containerd-driver"];

/// Environment variable that carries `spec.version` for drivers without an image.
pub const VERSION_ENV: &str = "STEWARD_VERSION";

/// `Update` fields that the golden-first rollout sets per zone, so drift detection skips them.
const ROLLOUT_UPDATE_FIELDS: &[&str] = &["Canary", "AutoPromote", "AutoRevert"];

/// Nomad namespace used when `spec.job.namespace` is unset.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The job ID and namespace of a pool's job.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JobKey {
    pub id: String,
    pub namespace: String,
}

impl JobKey {
    /// Returns the job key of a pool: `spec.job.id` (default: the pool's name) and
    /// `spec.job.namespace` (default: `default`).
    pub fn of(pool: &WorkerPool) -> Self {
        Self {
            id: pool
                .spec
                .job
                .id
                .clone()
                .unwrap_or_else(|| pool.metadata.name.clone()),
            namespace: pool
                .spec
                .job
                .namespace
                .clone()
                .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned()),
        }
    }
}

impl std::fmt::Display for JobKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.id)
    }
}

/// Renders the pool's Nomad job with `counts[i]` workers in zone i.
///
/// The job is a `service` job with one task group per zone, named after the zone. Each group
/// is `spec.template` plus the zone's constraint and an `Update` block from `spec.rollout`.
/// `spec.version` becomes the image, or for drivers without an image the `STEWARD_VERSION`
/// environment variable and `steward.version` task meta. Each group carries it as
/// `steward.version` group meta too. The job meta carries only `steward.pool`, because Nomad
/// folds job meta into every task, so a version in job meta would replace the workers of every
/// zone at once whenever one zone's version changes.
pub fn render_job(pool: &WorkerPool, counts: &[u32]) -> Result<Job, RenderError> {
    let name = &pool.metadata.name;
    let spec = &pool.spec;

    if spec.zones.is_empty() {
        return Err(RenderError::NoZones { pool: name.clone() });
    }
    if counts.len() != spec.zones.len() {
        return Err(RenderError::CountsMismatch {
            pool: name.clone(),
            zones: spec.zones.len(),
            counts: counts.len(),
        });
    }
    if spec.template.task_list().is_empty() {
        return Err(RenderError::NoTasks { pool: name.clone() });
    }

    let mut groups = Vec::with_capacity(spec.zones.len());
    for (zone, count) in spec.zones.iter().zip(counts) {
        groups.push(render_group(pool, zone, *count)?);
    }

    let key = JobKey::of(pool);
    let meta = BTreeMap::from([(META_POOL.to_owned(), name.clone())]);

    Ok(Job {
        id: key.id.clone(),
        name: Some(key.id),
        namespace: Some(key.namespace),
        r#type: Some("service".to_owned()),
        datacenters: Some(datacenters(&spec.zones)),
        meta: Some(meta),
        task_groups: Some(groups),
        ..Job::default()
    })
}

/// Lists the zones' datacenters in zone order without repeats, or `["*"]` when any zone
/// selects its nodes by constraint, because such a zone may span datacenters.
fn datacenters(zones: &[Zone]) -> Vec<String> {
    let mut list: Vec<String> = Vec::new();
    for zone in zones {
        let Some(datacenter) = &zone.datacenter else {
            return vec!["*".to_owned()];
        };
        if !list.contains(datacenter) {
            list.push(datacenter.clone());
        }
    }
    list
}

/// Returns the constraint that keeps a zone's task group on the zone's nodes.
pub fn zone_constraint(pool: &str, zone: &Zone) -> Result<Constraint, RenderError> {
    match (&zone.datacenter, &zone.constraint) {
        (Some(datacenter), None) => Ok(Constraint::new("${node.datacenter}", "=", datacenter)),
        (None, Some(constraint)) => Ok(Constraint::new(
            &constraint.attribute,
            "=",
            &constraint.value,
        )),
        _ => Err(RenderError::ZoneSelector {
            pool: pool.to_owned(),
            zone: zone.name.clone(),
        }),
    }
}

fn render_group(pool: &WorkerPool, zone: &Zone, count: u32) -> Result<TaskGroup, RenderError> {
    let mut group: TaskGroup = pool.spec.template.clone();
    group.name = zone.name.clone();
    group.count = Some(i64::from(count));

    let constraint = zone_constraint(&pool.metadata.name, zone)?;
    group
        .constraints
        .get_or_insert_with(Vec::new)
        .push(constraint);

    group.update = Some(render_update(pool));

    for task in group.tasks.get_or_insert_with(Vec::new) {
        set_version(task, &pool.spec.version);
    }
    group
        .meta
        .get_or_insert_with(BTreeMap::new)
        .insert(META_VERSION.to_owned(), pool.spec.version.clone());
    Ok(group)
}

/// Builds the `Update` block from `spec.rollout`.
///
/// `ProgressDeadline` must be greater than `HealthyDeadline` (Nomad rejects the job
/// otherwise). It is `HealthyDeadline` plus `MinHealthyTime` plus `goldenSoak` plus one minute,
/// so a golden canary can soak before promotion without the deployment failing on its progress
/// deadline. `AutoRevert` stays off: on a failed rollout Steward restores the previous version
/// itself, one worker at a time, where Nomad would revert every group at once. The rollout
/// engine sets `Canary` on the group it updates.
fn render_update(pool: &WorkerPool) -> UpdateStrategy {
    let rollout = &pool.spec.rollout;
    let healthy_deadline = NomadDuration::from_std(rollout.healthy_deadline.get());
    let min_healthy_time = NomadDuration::from_std(rollout.min_healthy_time.get());
    let golden_soak = NomadDuration::from_std(rollout.golden_soak.get());
    let progress_deadline = NomadDuration(
        healthy_deadline.0 + min_healthy_time.0 + golden_soak.0 + NomadDuration::from_secs(60).0,
    );

    UpdateStrategy {
        max_parallel: Some(1),
        health_check: Some("checks".to_owned()),
        min_healthy_time: Some(min_healthy_time),
        healthy_deadline: Some(healthy_deadline),
        progress_deadline: Some(progress_deadline),
        auto_revert: Some(false),
        ..UpdateStrategy::default()
    }
}

fn set_version(task: &mut Task, version: &str) {
    if IMAGE_DRIVERS.contains(&task.driver.as_str()) {
        task.config
            .get_or_insert_with(serde_json::Map::new)
            .insert("image".to_owned(), Value::String(version.to_owned()));
        return;
    }

    task.env
        .get_or_insert_with(BTreeMap::new)
        .insert(VERSION_ENV.to_owned(), version.to_owned());
    task.meta
        .get_or_insert_with(BTreeMap::new)
        .insert(META_VERSION.to_owned(), version.to_owned());
}

/// Lists the fields where the live job differs from the rendered one, ignoring task-group
/// `Count`s (they are compared separately) and every field Steward does not render.
///
/// Nomad fills defaults into the job it returns, so the comparison is one-sided: each value
/// present in `rendered` must be present and equal in `live`. An empty operand in a rendered
/// constraint matches `=`, which is how Nomad reads it.
///
/// `Update.Canary`, `Update.AutoPromote` and `Update.AutoRevert` are not compared either. The
/// golden-first rollout sets them per zone (the golden zone keeps `Canary = 1` after it
/// completes), and they only steer the deployment of the next register, which writes the
/// rendered values anyway.
// NOTE: a field removed from `spec.template` is not detected, because the live job still
// carries it and the rendered job has nothing to compare it with.
pub fn template_differences(rendered: &Job, live: &Job) -> Vec<String> {
    let mut differences = Vec::new();

    compare_field("Type", &rendered.r#type, &live.r#type, &mut differences);
    compare_field(
        "Datacenters",
        &rendered.datacenters,
        &live.datacenters,
        &mut differences,
    );
    for (key, value) in rendered.meta.iter().flatten() {
        if live.meta_value(key) != Some(value.as_str()) {
            differences.push(format!("Meta.{key}"));
        }
    }

    let rendered_names: Vec<&str> = rendered.groups().iter().map(|g| g.name.as_str()).collect();
    let live_names: Vec<&str> = live.groups().iter().map(|g| g.name.as_str()).collect();
    if rendered_names != live_names {
        differences.push(format!(
            "TaskGroups: expected {rendered_names:?}, found {live_names:?}"
        ));
        return differences;
    }

    for (rendered_group, live_group) in rendered.groups().iter().zip(live.groups()) {
        let path = format!("TaskGroups[{}]", rendered_group.name);
        let mut expected = to_value(rendered_group);
        let mut found = to_value(live_group);
        for value in [&mut expected, &mut found] {
            if let Value::Object(map) = value {
                map.remove("Count");
                if let Some(Value::Object(update)) = map.get_mut("Update") {
                    for field in ROLLOUT_UPDATE_FIELDS {
                        update.remove(*field);
                    }
                }
            }
        }
        compare_values(&path, &expected, &found, &mut differences);
    }
    differences
}

fn to_value<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

fn compare_field<T: PartialEq>(
    name: &str,
    rendered: &Option<T>,
    live: &Option<T>,
    out: &mut Vec<String>,
) {
    if rendered.is_some() && rendered != live {
        out.push(name.to_owned());
    }
}

fn compare_values(path: &str, expected: &Value, found: &Value, out: &mut Vec<String>) {
    match (expected, found) {
        (Value::Object(expected), Value::Object(found)) => {
            for (key, value) in expected {
                let child = format!("{path}.{key}");
                match found.get(key) {
                    Some(found_value) => compare_values(&child, value, found_value, out),
                    None if is_empty(value) => {}
                    None => out.push(child),
                }
            }
        }
        (Value::Array(expected), Value::Array(found)) => {
            if expected.len() != found.len() {
                out.push(format!(
                    "{path} (length {} vs {})",
                    expected.len(),
                    found.len()
                ));
                return;
            }
            for (index, (e, f)) in expected.iter().zip(found).enumerate() {
                compare_values(&format!("{path}[{index}]"), e, f, out);
            }
        }
        (Value::String(e), Value::String(f))
            if e.is_empty() && f == "=" && path.ends_with(".Operand") => {}
        (expected, found) if expected == found => {}
        (expected, Value::Null) if is_empty(expected) => {}
        _ => out.push(path.to_owned()),
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.is_empty(),
        _ => false,
    }
}

/// One task group of a job rendered mid-rollout: its worker count, the version its tasks run
/// and how many canaries its `Update` block requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupVersion<'a> {
    pub count: u32,
    pub version: &'a str,
    pub canary: u32,
}

/// Renders the pool's job with a version per zone, for golden-first rollouts: group i gets
/// `groups[i].count` workers running `groups[i].version`, and `Update.Canary =
/// groups[i].canary` with `AutoPromote` and `AutoRevert` off, because the rollout promotes and
/// rolls back by itself. Each group also carries its version as `steward.version` group meta,
/// so the version of every zone can be read back from the live job.
pub fn render_job_versions(
    pool: &WorkerPool,
    groups: &[GroupVersion<'_>],
) -> Result<Job, RenderError> {
    let counts: Vec<u32> = groups.iter().map(|group| group.count).collect();
    let mut job = render_job(pool, &counts)?;

    let rendered = job.task_groups.get_or_insert_with(Vec::new);
    for (group, wanted) in rendered.iter_mut().zip(groups) {
        for task in group.tasks.get_or_insert_with(Vec::new) {
            set_version(task, wanted.version);
        }
        group
            .meta
            .get_or_insert_with(BTreeMap::new)
            .insert(META_VERSION.to_owned(), wanted.version.to_owned());
        let update = group.update.get_or_insert_with(UpdateStrategy::default);
        update.canary = Some(i64::from(wanted.canary));
        update.auto_promote = Some(false);
        update.auto_revert = Some(false);
    }
    Ok(job)
}
