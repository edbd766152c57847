//! Node selection: feasibility (datacenter, node pool, constraints, devices, resources) and
//! ranking (job anti-affinity, best-effort spread, then bin packing).

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};

use regex::Regex;

use super::state::{Cluster, ImageBehaviour, PlacementFailure, SimNode, Usage};
use crate::nomad::model::{Constraint, Job, Spread, TaskGroup};

/// Compiled `regexp` constraints, reused across placements.
#[derive(Debug, Default)]
pub struct RegexCache {
    compiled: HashMap<String, Option<Regex>>,
}

impl RegexCache {
    fn is_match(&mut self, pattern: &str, text: &str) -> bool {
        self.compiled
            .entry(pattern.to_owned())
            .or_insert_with(|| Regex::new(pattern).ok())
            .as_ref()
            .is_some_and(|regex| regex.is_match(text))
    }
}

/// Resolves a constraint target such as `${node.datacenter}` or `${meta.zone}` on a node.
/// A target without `${…}` is a literal. Returns `None` for an attribute the node lacks.
pub fn resolve_target<'a>(target: &'a str, node: &'a SimNode) -> Option<&'a str> {
    let Some(inner) = target
        .strip_prefix("${")
        .and_then(|rest| rest.strip_suffix('}'))
    else {
        return Some(target);
    };
    match inner {
        "node.datacenter" => Some(&node.datacenter),
        "node.class" => Some(&node.node_class),
        "node.unique.name" => Some(&node.name),
        "node.unique.id" => Some(&node.id),
        "node.pool" => Some(&node.node_pool),
        "node.region" => Some("global"),
        _ => {
            if let Some(key) = inner.strip_prefix("meta.") {
                node.meta.get(key).map(String::as_str)
            } else if let Some(key) = inner.strip_prefix("attr.") {
                node.attributes.get(key).map(String::as_str)
            } else {
                None
            }
        }
    }
}

/// Compares two values as numbers when both parse, otherwise as strings.
fn compare_values(left: &str, right: &str) -> std::cmp::Ordering {
    match (left.parse::<f64>(), right.parse::<f64>()) {
        (Ok(left), Ok(right)) => left
            .partial_cmp(&right)
            .unwrap_or(std::cmp::Ordering::Equal),
        _ => left.cmp(right),
    }
}

/// Compares dotted versions part by part (`1.10.2` > `1.9`); missing parts count as 0.
fn compare_versions(left: &str, right: &str) -> std::cmp::Ordering {
    let parse = |text: &str| -> Vec<u64> {
        text.trim()
            .trim_start_matches('v')
            .split(['.', '-', '+'])
            .map_while(|part| part.parse().ok())
            .collect()
    };
    let (left, right) = (parse(left), parse(right));
    let length = left.len().max(right.len());
    for position in 0..length {
        let ordering = left
            .get(position)
            .unwrap_or(&0)
            .cmp(right.get(position).unwrap_or(&0));
        if ordering.is_ne() {
            return ordering;
        }
    }
    std::cmp::Ordering::Equal
}

/// Checks a `version` constraint such as `>= 1.2.0, < 2.0`.
fn version_matches(value: &str, requirement: &str) -> bool {
    requirement.split(',').all(|clause| {
        let clause = clause.trim();
        let operator_len = clause
            .find(|c: char| c.is_ascii_digit() || c == 'v')
            .unwrap_or(0);
        let (operator, version) = clause.split_at(operator_len);
        let ordering = compare_versions(value, version);
        match operator.trim() {
            "" | "=" | "==" => ordering.is_eq(),
            "!=" => ordering.is_ne(),
            ">" => ordering.is_gt(),
            ">=" => ordering.is_ge(),
            "<" => ordering.is_lt(),
            "<=" => ordering.is_le(),
            // NOTE: pessimistic `~>` is read as `>=`; the upper bound is not checked.
            "~>" => ordering.is_ge(),
            _ => false,
        }
    })
}

/// Returns whether a node satisfies one constraint. `distinct_hosts` and
/// `distinct_property` are checked by the caller and pass here.
pub fn constraint_holds(constraint: &Constraint, node: &SimNode, regexes: &mut RegexCache) -> bool {
    let left = resolve_target(&constraint.l_target, node);
    let right = resolve_target(&constraint.r_target, node);
    let set = |text: &str| -> Vec<String> {
        text.split(',').map(|part| part.trim().to_owned()).collect()
    };

    match constraint.operand.as_str() {
        "" | "=" | "==" | "is" => left.is_some() && left == right,
        "!=" | "not" => left != right,
        "<" | "<=" | ">" | ">=" => {
            let (Some(left), Some(right)) = (left, right) else {
                return false;
            };
            let ordering = compare_values(left, right);
            match constraint.operand.as_str() {
                "<" => ordering.is_lt(),
                "<=" => ordering.is_le(),
                ">" => ordering.is_gt(),
                _ => ordering.is_ge(),
            }
        }
        "regexp" => match (left, right) {
            (Some(left), Some(right)) => regexes.is_match(right, left),
            _ => false,
        },
        "set_contains" | "set_contains_all" => match (left, right) {
            (Some(left), Some(right)) => {
                let have = set(left);
                set(right).iter().all(|item| have.contains(item))
            }
            _ => false,
        },
        "set_contains_any" => match (left, right) {
            (Some(left), Some(right)) => {
                let have = set(left);
                set(right).iter().any(|item| have.contains(item))
            }
            _ => false,
        },
        "is_set" => left.is_some(),
        "is_not_set" => left.is_none(),
        "version" | "semver" => match (left, right) {
            (Some(left), Some(right)) => version_matches(left, right),
            _ => false,
        },
        // NOTE: `distinct_property` is not enforced; it always passes.
        "distinct_hosts" | "distinct_property" => true,
        _ => false,
    }
}

/// Formats a constraint the way Nomad's `ConstraintFiltered` keys do.
pub fn constraint_text(constraint: &Constraint) -> String {
    format!(
        "{} {} {}",
        constraint.l_target, constraint.operand, constraint.r_target
    )
    .trim()
    .to_owned()
}

/// Returns every constraint that applies to a group: job, group and task level.
pub fn group_constraints<'a>(job: &'a Job, group: &'a TaskGroup) -> Vec<&'a Constraint> {
    let mut all: Vec<&Constraint> = job.constraints.iter().flatten().collect();
    all.extend(group.constraints.iter().flatten());
    for task in group.task_list() {
        all.extend(task.constraints.iter().flatten());
    }
    all
}

/// Reports whether a group requests at most one allocation per node.
pub fn wants_distinct_hosts(job: &Job, group: &TaskGroup) -> bool {
    group_constraints(job, group)
        .iter()
        .any(|constraint| constraint.operand == "distinct_hosts")
}

/// Reports whether a requested device name (`gpu`, `nvidia/gpu`, `nvidia/gpu/<model>`) is one the
/// emulated nodes have. They have only `nvidia/gpu` devices.
fn is_gpu_request(name: &str) -> bool {
    name == "gpu" || name == "nvidia/gpu" || name.starts_with("nvidia/gpu/")
}

/// Sums the resources a group requests. Tasks without `Resources` get the API client's
/// defaults (100 MHz, 300 MB). Returns an error naming a device the nodes do not have.
pub fn group_usage(group: &TaskGroup) -> Result<Usage, String> {
    let mut usage = Usage::default();
    for task in group.task_list() {
        let resources = task.resources.clone().unwrap_or_default();
        let cores = resources.cores.unwrap_or(0);
        usage.cores += cores;
        if cores == 0 {
            usage.cpu_mhz += resources.cpu.unwrap_or(100);
        }
        usage.memory_mb += resources.memory_mb.unwrap_or(300);
        for device in resources.devices.iter().flatten() {
            if !is_gpu_request(&device.name) {
                return Err(format!("missing devices: {}", device.name));
            }
            usage.gpus += i64::try_from(device.count.unwrap_or(1)).unwrap_or(i64::MAX);
        }
    }
    Ok(usage)
}

/// Returns the images a group's tasks run: `Config.image` for container drivers, otherwise
/// the `STEWARD_VERSION` environment variable or meta of the task, group or job.
pub fn group_images(job: &Job, group: &TaskGroup) -> Vec<String> {
    let mut images = Vec::new();
    for task in group.task_list() {
        let from_config = task
            .config
            .as_ref()
            .and_then(|config| config.get("image"))
            .and_then(|image| image.as_str())
            .map(str::to_owned);
        let from_env = || {
            task.env
                .as_ref()
                .and_then(|env| env.get("STEWARD_VERSION"))
                .or_else(|| task.meta.as_ref()?.get("STEWARD_VERSION"))
                .or_else(|| group.meta.as_ref()?.get("STEWARD_VERSION"))
                .or_else(|| job.meta.as_ref()?.get("STEWARD_VERSION"))
                .cloned()
        };
        if let Some(image) = from_config.or_else(from_env)
            && !images.contains(&image)
        {
            images.push(image);
        }
    }
    images
}

/// Hashes the parts of a job that, when changed, replace a group's allocations: the group
/// without its count, and the job's datacenters, node pool, constraints and meta.
pub fn group_fingerprint(job: &Job, group: &TaskGroup) -> u64 {
    let mut group = group.clone();
    group.count = None;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(&group)
        .unwrap_or_default()
        .hash(&mut hasher);
    serde_json::to_string(&(
        &job.datacenters,
        &job.node_pool,
        &job.constraints,
        &job.meta,
    ))
    .unwrap_or_default()
    .hash(&mut hasher);
    hasher.finish()
}

/// Reports whether a node's datacenter matches one of the job's datacenters (`*` globs allowed).
fn datacenter_matches(patterns: &[String], datacenter: &str) -> bool {
    patterns.iter().any(|pattern| {
        if let Some(prefix) = pattern.strip_suffix('*') {
            datacenter.starts_with(prefix)
        } else {
            pattern == datacenter
        }
    })
}

/// The placement state of one group while its allocations are placed.
pub struct PlacementRequest<'a> {
    pub job: &'a Job,
    pub group: &'a TaskGroup,
    pub usage: Usage,
    pub distinct_hosts: bool,
    /// Live allocations of this job per node, updated as allocations are placed.
    pub job_allocs_per_node: &'a mut HashMap<String, u32>,
    /// Live allocations of this group per spread value, one map per spread.
    pub spread_counts: &'a mut Vec<HashMap<String, u32>>,
    /// Live allocations of this group per node (for `distinct_hosts`).
    pub group_allocs_per_node: &'a mut HashMap<String, u32>,
}

/// Returns the spreads of a group: its own, or the job's.
pub fn group_spreads<'a>(job: &'a Job, group: &'a TaskGroup) -> Vec<&'a Spread> {
    let own: Vec<&Spread> = group.spreads.iter().flatten().collect();
    if own.is_empty() {
        job.spreads.iter().flatten().collect()
    } else {
        own
    }
}

/// Picks the best feasible node for one allocation, or explains why none fits.
///
/// Ranking, best first: the least used spread value, then the fewest allocations of the same
/// job on the node (as Nomad's job anti-affinity), then the most used node (bin packing).
pub fn select_node(
    cluster: &Cluster,
    request: &mut PlacementRequest<'_>,
    regexes: &mut RegexCache,
) -> Result<String, PlacementFailure> {
    let mut failure = PlacementFailure::default();
    let default_dcs = vec!["*".to_owned()];
    let datacenters = request.job.datacenters.as_ref().unwrap_or(&default_dcs);
    let pool = request.job.node_pool.as_deref().unwrap_or("default");
    let constraints = group_constraints(request.job, request.group);
    let spreads = group_spreads(request.job, request.group);
    let mut best: Option<(u32, u32, i64, &SimNode)> = None;

    for node in cluster.nodes.values() {
        if !datacenter_matches(datacenters, &node.datacenter)
            || (pool != "all" && node.node_pool != pool)
        {
            continue;
        }
        failure.nodes_in_pool += 1;
        if !node.schedulable() {
            continue;
        }
        *failure
            .nodes_available
            .entry(node.datacenter.clone())
            .or_default() += 1;
        failure.nodes_evaluated += 1;

        if let Some(failed) = constraints
            .iter()
            .find(|constraint| !constraint_holds(constraint, node, regexes))
        {
            failure.nodes_filtered += 1;
            *failure
                .constraint_filtered
                .entry(constraint_text(failed))
                .or_default() += 1;
            continue;
        }
        if request.distinct_hosts
            && request
                .group_allocs_per_node
                .get(&node.id)
                .is_some_and(|count| *count > 0)
        {
            failure.nodes_filtered += 1;
            *failure
                .constraint_filtered
                .entry("distinct_hosts".to_owned())
                .or_default() += 1;
            continue;
        }

        let free = |capacity: i64, used: i64| capacity - used;
        let exhausted = if free(node.capacity.cpu_mhz, node.used.cpu_mhz) < request.usage.cpu_mhz {
            Some("cpu")
        } else if free(node.capacity.memory_mb, node.used.memory_mb) < request.usage.memory_mb {
            Some("memory")
        } else if free(node.capacity.cores, node.used.cores) < request.usage.cores {
            Some("cores")
        } else if free(node.capacity.gpus, node.used.gpus) < request.usage.gpus {
            Some("devices: nvidia/gpu")
        } else {
            None
        };
        if let Some(dimension) = exhausted {
            failure.nodes_exhausted += 1;
            *failure
                .dimension_exhausted
                .entry(dimension.to_owned())
                .or_default() += 1;
            continue;
        }

        let same_job = request
            .job_allocs_per_node
            .get(&node.id)
            .copied()
            .unwrap_or(0);
        let spread_load = spreads
            .iter()
            .zip(request.spread_counts.iter())
            .map(|(spread, counts)| {
                resolve_target(&spread.attribute, node)
                    .and_then(|value| counts.get(value))
                    .copied()
                    .unwrap_or(0)
            })
            .sum::<u32>();
        let free_mhz = free(node.capacity.cpu_mhz, node.used.cpu_mhz);
        let candidate = (spread_load, same_job, free_mhz, node);
        let better = match &best {
            None => true,
            Some(current) => {
                (candidate.0, candidate.1, candidate.2) < (current.0, current.1, current.2)
            }
        };
        if better {
            best = Some(candidate);
        }
    }

    let Some((_, _, _, node)) = best else {
        return Err(failure);
    };

    *request
        .job_allocs_per_node
        .entry(node.id.clone())
        .or_default() += 1;
    *request
        .group_allocs_per_node
        .entry(node.id.clone())
        .or_default() += 1;
    for (spread, counts) in spreads.iter().zip(request.spread_counts.iter_mut()) {
        if let Some(value) = resolve_target(&spread.attribute, node) {
            *counts.entry(value.to_owned()).or_default() += 1;
        }
    }
    Ok(node.id.clone())
}

/// Computes when an allocation's tasks start on a node and whether the pull fails: a
/// cached image starts in [`super::state::CACHED_START_SECONDS`], a missing one after its
/// pull time. Returns `(start delay in simulated ns, pull error)`.
pub fn start_delay(
    images: &[String],
    node: &SimNode,
    behaviours: &HashMap<String, ImageBehaviour>,
) -> (i64, Option<String>) {
    let mut seconds = super::state::CACHED_START_SECONDS;
    let mut error = None;
    for image in images {
        if node.image_cache.contains(image) {
            continue;
        }
        let behaviour = behaviours.get(image).cloned().unwrap_or(ImageBehaviour {
            healthy: true,
            ..ImageBehaviour::default()
        });
        seconds = seconds.max(behaviour.pull_seconds());
        if let Some(reason) = behaviour.pull_error {
            error = Some(format!("Failed to pull `{image}`: {reason}"));
        }
    }
    ((seconds * 1e9) as i64, error)
}

/// Counts live allocations of one group per spread value.
pub fn spread_counts_for(
    cluster: &Cluster,
    spreads: &[&Spread],
    node_ids: &[&str],
) -> Vec<HashMap<String, u32>> {
    spreads
        .iter()
        .map(|spread| {
            let mut counts = HashMap::new();
            for node_id in node_ids {
                if let Some(node) = cluster.nodes.get(*node_id)
                    && let Some(value) = resolve_target(&spread.attribute, node)
                {
                    *counts.entry(value.to_owned()).or_default() += 1;
                }
            }
            counts
        })
        .collect()
}

/// Merges two placement failures of one group into the first.
pub fn merge_failure(into: &mut PlacementFailure, other: PlacementFailure) {
    if into.nodes_evaluated == 0 && into.nodes_in_pool == 0 {
        *into = other;
    } else {
        into.coalesced_failures += 1;
    }
}

/// Sums nodes per datacenter, as `NodesAvailable`.
pub fn nodes_per_datacenter(cluster: &Cluster) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for node in cluster.nodes.values() {
        *counts.entry(node.datacenter.clone()).or_default() += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> SimNode {
        SimNode {
            id: "n1".into(),
            name: "client-1".into(),
            datacenter: "dc-a".into(),
            node_class: "gpu".into(),
            node_pool: "default".into(),
            meta: [("zone".to_owned(), "odd".to_owned())].into(),
            attributes: [
                ("kernel.name".to_owned(), "linux".to_owned()),
                ("nomad.version".to_owned(), "1.10.2".to_owned()),
                ("driver.docker".to_owned(), "1".to_owned()),
                ("unique.storage.tags".to_owned(), "ssd,nvme".to_owned()),
            ]
            .into(),
            capacity: Usage::default(),
            used: Usage::default(),
            status: "ready".into(),
            eligibility: "eligible".into(),
            drain: None,
            last_drain: None,
            image_cache: Default::default(),
            create_index: 1,
            modify_index: 1,
            status_updated_at: 0,
        }
    }

    #[test]
    fn constraint_operands_match_node() {
        let node = node();
        let mut regexes = RegexCache::default();
        let cases = [
            ("${node.datacenter}", "=", "dc-a", true),
            ("${node.datacenter}", "==", "dc-b", false),
            ("${node.class}", "!=", "cpu", true),
            ("${node.unique.name}", "regexp", "^client-[0-9]+$", true),
            ("${meta.zone}", "=", "odd", true),
            ("${meta.missing}", "is_set", "", false),
            ("${attr.driver.docker}", "is_set", "", true),
            ("${attr.unique.storage.tags}", "set_contains", "nvme", true),
            (
                "${attr.unique.storage.tags}",
                "set_contains",
                "nvme,hdd",
                false,
            ),
            ("${attr.nomad.version}", "version", ">= 1.9.0", true),
            ("${attr.nomad.version}", "version", "< 1.10", false),
        ];
        for (left, operand, right, expected) in cases {
            let constraint = Constraint::new(left, operand, right);
            assert_eq!(
                constraint_holds(&constraint, &node, &mut regexes),
                expected,
                "{left} {operand} {right}"
            );
        }
    }

    #[test]
    fn group_usage_counts_cores_and_gpus() {
        let group: TaskGroup = serde_json::from_value(serde_json::json!({
            "Name": "g",
            "Tasks": [{"Name": "t", "Driver": "docker", "Resources": {
                "Cores": 2, "MemoryMB": 1024,
                "Devices": [{"Name": "nvidia/gpu", "Count": 1}]}}]
        }))
        .expect("valid group");
        let usage = group_usage(&group).expect("gpu is known");
        assert_eq!(usage.cores, 2);
        assert_eq!(usage.cpu_mhz, 0);
        assert_eq!(usage.memory_mb, 1024);
        assert_eq!(usage.gpus, 1);
    }

    #[test]
    fn unknown_device_is_rejected() {
        let group: TaskGroup = serde_json::from_value(serde_json::json!({
            "Name": "g",
            "Tasks": [{"Name": "t", "Driver": "docker", "Resources": {
                "Devices": [{"Name": "amd/fpga"}]}}]
        }))
        .expect("valid group");
        assert_eq!(
            group_usage(&group),
            Err("missing devices: amd/fpga".to_owned())
        );
    }
}
