//! The prefetch: a `sysbatch` job that pulls the new image onto every node of the pool's
//! zones before any worker changes, and the per-node progress read from its allocations.

use std::collections::BTreeMap;

use serde_json::Value;

use super::observe::PrefetchAllocation;
use super::state::{NodePrefetch, PullState};
use crate::nomad::{Job, Resources, RestartPolicy, Task, TaskGroup};
use crate::reconcile::render::{VERSION_ENV, zone_constraint};
use crate::reconcile::{JobKey, META_POOL, META_VERSION, ObservedNode, RenderError};
use crate::spec::WorkerPool;

/// Suffix of the prefetch job's ID after the pool's job ID.
pub const PREFETCH_SUFFIX: &str = "-prefetch";

/// Task drivers whose tasks run a container image set by `Config.image`.
const IMAGE_DRIVERS: &[&str] = &["docker", "podman", "containerd-driver"];

/// Lowercase fragments of the pull errors that retrying cannot fix: the registry rejected
/// the credentials or the image does not exist for them. Docker reports "pull access
/// denied", "unauthorized: authentication required" and "denied: requested access to the
/// resource is denied"; registries return 401 or 403.
const PERMANENT_PULL_ERRORS: &[&str] = &[
    "unauthorized",
    "authentication required",
    "access denied",
    "access to the resource is denied",
    "no basic auth credentials",
    "401 unauthorized",
    "403 forbidden",
];

/// Returns the job key of a pool's prefetch job: `<job id>-prefetch` in the job's namespace.
pub fn prefetch_key(pool: &WorkerPool) -> JobKey {
    let job = JobKey::of(pool);
    JobKey {
        id: format!("{}{PREFETCH_SUFFIX}", job.id),
        namespace: job.namespace,
    }
}

/// Renders the `sysbatch` prefetch job for `version`: one group per zone, constrained to the
/// zone's nodes, whose task uses the template's first task's driver with the new image and
/// exits at once. Nomad runs it once on every eligible node, which pulls the image there.
///
/// The job carries `steward.pool` and `steward.version` meta, so a prefetch job left from an
/// earlier version is recognized and replaced.
// NOTE: the task runs `true` inside the image. An image without a `true` binary fails after
// the pull, which Nomad reports as a failed task rather than a pull error, so the node
// counts as failed and the prefetch waits for its deadline.
pub fn render_prefetch_job(pool: &WorkerPool, version: &str) -> Result<Job, RenderError> {
    let name = &pool.metadata.name;
    let spec = &pool.spec;
    if spec.zones.is_empty() {
        return Err(RenderError::NoZones { pool: name.clone() });
    }
    let Some(template_task) = spec.template.task_list().first() else {
        return Err(RenderError::NoTasks { pool: name.clone() });
    };

    let mut groups = Vec::with_capacity(spec.zones.len());
    for zone in &spec.zones {
        let task = prefetch_task(&template_task.driver, version);
        groups.push(TaskGroup {
            name: zone.name.clone(),
            count: Some(1),
            constraints: Some(vec![zone_constraint(name, zone)?]),
            // A failed pull is reported once and not retried: the rollout decides what a
            // failure means, and the deadline bounds the wait.
            restart_policy: Some(RestartPolicy {
                attempts: Some(0),
                mode: Some("fail".to_owned()),
                ..RestartPolicy::default()
            }),
            tasks: Some(vec![task]),
            ..TaskGroup::default()
        });
    }

    let key = prefetch_key(pool);
    let live = JobKey::of(pool);
    let datacenters = crate::reconcile::render_job(pool, &vec![0; spec.zones.len()])?
        .datacenters
        .unwrap_or_default();
    Ok(Job {
        id: key.id.clone(),
        name: Some(key.id),
        namespace: Some(live.namespace),
        r#type: Some("sysbatch".to_owned()),
        datacenters: Some(datacenters),
        meta: Some(BTreeMap::from([
            (META_POOL.to_owned(), name.clone()),
            (META_VERSION.to_owned(), version.to_owned()),
        ])),
        task_groups: Some(groups),
        ..Job::default()
    })
}

fn prefetch_task(driver: &str, version: &str) -> Task {
    let mut config = serde_json::Map::new();
    let mut env = BTreeMap::new();
    if IMAGE_DRIVERS.contains(&driver) {
        config.insert("image".to_owned(), Value::String(version.to_owned()));
        config.insert("command".to_owned(), Value::String("true".to_owned()));
    } else {
        config.insert("command".to_owned(), Value::String("true".to_owned()));
        env.insert(VERSION_ENV.to_owned(), version.to_owned());
    }

    Task {
        name: "prefetch".to_owned(),
        driver: driver.to_owned(),
        config: Some(config),
        env: Some(env),
        // The smallest reservation Nomad accepts keeps the prefetch from competing with
        // workers for room on the node.
        resources: Some(Resources {
            cpu: Some(20),
            memory_mb: Some(16),
            ..Resources::default()
        }),
        ..Task::default()
    }
}

/// Returns whether a pull error message means retrying cannot help (an authorization
/// failure), as opposed to a transient network or registry error.
pub fn is_permanent_pull_error(message: &str) -> bool {
    let lower = message.to_lowercase();
    PERMANENT_PULL_ERRORS
        .iter()
        .any(|fragment| lower.contains(fragment))
}

/// The prefetch's progress over the pool's eligible nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefetchProgress {
    /// One entry per node of the pool's zones that accepts work, in node ID order.
    pub nodes: Vec<NodePrefetch>,
    /// The first permanent pull error, with its node.
    pub permanent_failure: Option<(String, String)>,
}

impl PrefetchProgress {
    /// Whether every eligible node pulled the image. False when the pool has no eligible node.
    pub fn is_complete(&self) -> bool {
        !self.nodes.is_empty() && self.nodes.iter().all(|n| n.state == PullState::Pulled)
    }

    /// Counts the nodes that pulled the image.
    pub fn pulled(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| n.state == PullState::Pulled)
            .count()
    }
}

/// Computes the pull state of every node of the pool's zones that accepts work, from the
/// newest prefetch allocation on each node.
pub fn prefetch_progress(
    pool: &WorkerPool,
    nodes: &[ObservedNode],
    allocations: &[PrefetchAllocation],
) -> PrefetchProgress {
    let mut progress = PrefetchProgress {
        nodes: Vec::new(),
        permanent_failure: None,
    };

    let mut eligible: Vec<(&ObservedNode, &str)> = nodes
        .iter()
        .filter(|node| node.accepts_work())
        .filter_map(|node| {
            let zone = pool.spec.zones.iter().find(|zone| node.in_zone(zone))?;
            Some((node, zone.name.as_str()))
        })
        .collect();
    eligible.sort_by(|a, b| a.0.id.cmp(&b.0.id));

    for (node, zone) in eligible {
        let newest = allocations
            .iter()
            .filter(|a| a.node_id == node.id)
            .max_by_key(|a| a.create_index);
        let permanent = newest.and_then(|a| {
            a.events
                .iter()
                .find(|message| is_permanent_pull_error(message))
        });

        let (state, message) = match (newest, permanent) {
            (None, _) => (PullState::Pending, None),
            (Some(_), Some(message)) => (PullState::Failed, Some(message.clone())),
            (Some(allocation), None) => match allocation.client_status {
                crate::reconcile::ClientStatus::Complete => (PullState::Pulled, None),
                crate::reconcile::ClientStatus::Failed | crate::reconcile::ClientStatus::Lost => {
                    (PullState::Failed, allocation.events.last().cloned())
                }
                _ => (PullState::Pulling, None),
            },
        };

        if let (Some(message), None) = (permanent, &progress.permanent_failure) {
            progress.permanent_failure = Some((node.id.clone(), message.clone()));
        }
        progress.nodes.push(NodePrefetch {
            node_id: node.id.clone(),
            zone: zone.to_owned(),
            state,
            message,
        });
    }
    progress
}
