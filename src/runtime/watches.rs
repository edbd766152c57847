//! The watch tasks: Consul blocking queries on the pool and override prefixes, a one-time
//! read of the status prefix, and Nomad blocking queries on the jobs, allocations,
//! deployments and nodes. Each task replaces its part of the [`Cache`] with every complete
//! list it receives and queues the pools the change affects.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::cache::{Cache, CachedJob, OverrideEntry, PoolEntry, StoredStatus};
use crate::consul::{self, ConsulClient, Keys, KvPair, KvSnapshot, KvWatch, WatchTarget};
use crate::nomad::{self, AllocBrief, Client, JobListStub, NodeListStub, QueryOptions};
use crate::reconcile::{
    self, AllocHealth, ClientStatus, DeploymentStatus, DesiredStatus, JobKey, NodeStatus,
    ObservedAllocation, ObservedDeployment, ObservedJob, ObservedNode, Status,
};
use crate::spec::{self, Document};

/// Receives the pools a change affects, with a short reason for the logs.
pub type ChangeSink = Arc<dyn Fn(BTreeSet<String>, &'static str) + Send + Sync>;

/// Number of job or node reads sent at once after a list changed.
const READ_CONCURRENCY: usize = 16;

/// Settings shared by the watch tasks.
#[derive(Clone)]
pub struct WatchContext {
    pub cache: Arc<Cache>,
    pub sink: ChangeSink,
    pub consul: ConsulClient,
    pub keys: Keys,
    /// A Nomad client for every namespace (`namespace=*`).
    pub nomad: Client,
    pub consul_watch: consul::WatchConfig,
    pub nomad_watch: nomad::WatchConfig,
}

/// Sleeps for `delay` unless `cancel` fires first. Returns false when cancelled.
async fn pause(cancel: &CancellationToken, delay: Duration) -> bool {
    tokio::select! {
        // Shutdown or leadership change of the owner of the task.
        () = cancel.cancelled() => false,
        () = tokio::time::sleep(delay) => true,
    }
}

/// Watches the pool prefix until `cancel` fires.
pub async fn watch_pools(context: WatchContext, cancel: CancellationToken) {
    let mut parsed = ParsedPools::new();
    let prefix = context.keys.pools_prefix();
    watch_prefix(&context, &cancel, prefix, "pool changed", |snapshot| {
        let pools = parse_pools(&context.keys, &snapshot.pairs, &mut parsed);
        debug!(
            index = snapshot.index,
            pools = pools.len(),
            "pool list received"
        );
        context.cache.replace_pool_entries(pools)
    })
    .await;
}

/// Watches the override prefix until `cancel` fires.
pub async fn watch_overrides(context: WatchContext, cancel: CancellationToken) {
    let mut parsed = ParsedOverrides::new();
    let prefix = context.keys.overrides_prefix();
    watch_prefix(&context, &cancel, prefix, "override changed", |snapshot| {
        let overrides = parse_overrides(&context.keys, &snapshot.pairs, &mut parsed);
        context.cache.replace_overrides(overrides)
    })
    .await;
}

/// Watches a Consul `prefix` until `cancel` fires. `apply` stores each snapshot in the
/// cache and returns the pools it changed, which are queued with `reason`. After a permanent
/// error the watch waits `backoff_cap` and starts over with a full read.
async fn watch_prefix(
    context: &WatchContext,
    cancel: &CancellationToken,
    prefix: String,
    reason: &'static str,
    mut apply: impl FnMut(&KvSnapshot) -> BTreeSet<String>,
) {
    let mut watch = KvWatch::new(
        context.consul.clone(),
        WatchTarget::Prefix(prefix.clone()),
        context.consul_watch,
    );
    loop {
        let snapshot = tokio::select! {
            () = cancel.cancelled() => return,
            snapshot = watch.next() => snapshot,
        };
        match snapshot {
            Ok(snapshot) => {
                let changed = apply(&snapshot);
                (context.sink)(changed, reason);
            }
            Err(error) => {
                warn!(%prefix, %error, "prefix watch failed permanently; retrying with a full read");
                if !pause(cancel, context.consul_watch.backoff_cap).await {
                    return;
                }
            }
        }
    }
}

/// Reads the status prefix once, retrying until it succeeds or `cancel` fires.
pub async fn read_statuses(context: WatchContext, cancel: CancellationToken) {
    let prefix = context.keys.status_prefix();
    let mut delay = Duration::from_millis(200);
    loop {
        match context
            .consul
            .kv_list(&prefix, &consul::QueryOptions::default())
            .await
        {
            Ok((pairs, _)) => {
                let statuses = parse_statuses(&context.keys, &pairs);
                info!(statuses = statuses.len(), "stored statuses read");
                context.cache.replace_statuses(statuses);
                return;
            }
            Err(error) => {
                warn!(%prefix, %error, retry_in = ?delay, "status read failed");
                if !pause(&cancel, delay).await {
                    return;
                }
                delay = (delay * 2).min(context.consul_watch.backoff_cap);
            }
        }
    }
}

/// Returns the part of `key` after `prefix` when it is a direct child.
fn child_name<'k>(prefix: &str, key: &'k str) -> Option<&'k str> {
    key.strip_prefix(prefix)
        .filter(|name| !name.is_empty() && !name.contains('/'))
}

/// Pools parsed from earlier snapshots, by name: a digest of the stored text and what it
/// parsed to, shared with the cache.
pub type ParsedPools = HashMap<String, (u64, Arc<PoolEntry>)>;

/// Returns a 64-bit digest of a stored value, to tell whether it changed.
fn digest(value: &[u8]) -> u64 {
    use std::hash::{Hash as _, Hasher as _};

    let mut hasher = std::hash::DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

/// Parses the pool keys. A key whose text is not one valid WorkerPool named like the key is
/// kept as an error, so its status can report what is wrong. Keys whose text digest and
/// modify index match an entry of `parsed` reuse it without parsing, and `parsed` is updated
/// to this list.
pub fn parse_pools(
    keys: &Keys,
    pairs: &[KvPair],
    parsed: &mut ParsedPools,
) -> BTreeMap<String, Arc<PoolEntry>> {
    let prefix = keys.pools_prefix();
    let mut pools = BTreeMap::new();
    for pair in pairs {
        let Some(name) = child_name(&prefix, &pair.key) else {
            continue;
        };
        let text_digest = digest(&pair.value);
        if let Some((stored, entry)) = parsed.get(name)
            && *stored == text_digest
            && entry.modify_index == pair.modify_index
        {
            pools.insert(name.to_owned(), Arc::clone(entry));
            continue;
        }

        let pool = match parse_one(&pair.key, &pair.value) {
            Ok(Document::WorkerPool(pool)) if pool.metadata.name == name => Ok(pool),
            Ok(Document::WorkerPool(pool)) => Err(format!(
                "key {} holds the WorkerPool {}: store each pool under its own name",
                pair.key, pool.metadata.name
            )),
            Ok(other) => Err(format!(
                "key {} holds a {}, expected a WorkerPool",
                pair.key,
                other.kind()
            )),
            Err(message) => Err(message),
        };
        if let Err(message) = &pool {
            warn!(key = %pair.key, %message, "invalid pool in Consul");
        }
        let entry = Arc::new(PoolEntry {
            modify_index: pair.modify_index,
            pool,
        });
        parsed.insert(name.to_owned(), (text_digest, Arc::clone(&entry)));
        pools.insert(name.to_owned(), entry);
    }
    parsed.retain(|name, _| pools.contains_key(name));
    pools
}

/// Overrides parsed from earlier snapshots, by name: a digest of the stored text and what it
/// parsed to.
pub type ParsedOverrides = HashMap<String, (u64, OverrideEntry)>;

/// Parses the override keys, keeping invalid ones as errors. Keys whose text digest and
/// modify index match an entry of `parsed` reuse it without parsing, and `parsed` is updated
/// to this list.
pub fn parse_overrides(
    keys: &Keys,
    pairs: &[KvPair],
    parsed: &mut ParsedOverrides,
) -> BTreeMap<String, OverrideEntry> {
    let prefix = keys.overrides_prefix();
    let mut overrides = BTreeMap::new();
    for pair in pairs {
        let Some(name) = child_name(&prefix, &pair.key) else {
            continue;
        };
        let text_digest = digest(&pair.value);
        if let Some((stored, entry)) = parsed.get(name)
            && *stored == text_digest
            && entry.modify_index == pair.modify_index
        {
            overrides.insert(name.to_owned(), entry.clone());
            continue;
        }

        let item = match parse_one(&pair.key, &pair.value) {
            Ok(Document::Override(item)) if item.metadata.name == name => Ok(item),
            Ok(other) => Err(format!(
                "key {} holds the {} {}, expected the Override {name}",
                pair.key,
                other.kind(),
                other.name()
            )),
            Err(message) => Err(message),
        };
        if let Err(message) = &item {
            warn!(key = %pair.key, %message, "invalid override in Consul");
        }
        let entry = OverrideEntry {
            modify_index: pair.modify_index,
            item,
        };
        parsed.insert(name.to_owned(), (text_digest, entry.clone()));
        overrides.insert(name.to_owned(), entry);
    }
    parsed.retain(|name, _| overrides.contains_key(name));
    overrides
}

/// Parses the status keys. An unreadable status is kept without content, so the next write
/// replaces it with check-and-set.
pub fn parse_statuses(keys: &Keys, pairs: &[KvPair]) -> BTreeMap<String, StoredStatus> {
    let prefix = keys.status_prefix();
    let mut statuses = BTreeMap::new();
    for pair in pairs {
        let Some(name) = child_name(&prefix, &pair.key) else {
            continue;
        };
        let status = match serde_json::from_slice::<Status>(&pair.value) {
            Ok(status) => Some(status),
            Err(error) => {
                warn!(key = %pair.key, %error, "stored status is not valid JSON; it will be replaced");
                None
            }
        };
        statuses.insert(
            name.to_owned(),
            StoredStatus {
                modify_index: pair.modify_index,
                status,
            },
        );
    }
    statuses
}

fn parse_one(key: &str, value: &[u8]) -> Result<Document, String> {
    let text = std::str::from_utf8(value)
        .map_err(|error| format!("key {key} is not UTF-8 text: {error}"))?;
    let mut documents = spec::parse_stored(text, key).map_err(|report| report.to_string())?;
    if documents.len() != 1 {
        return Err(format!(
            "key {key} holds {} documents, expected exactly one",
            documents.len()
        ));
    }
    Ok(documents.remove(0).document)
}

/// Runs `read` until it succeeds, returns not found (`Ok(None)`), fails permanently, or
/// `cancel` fires. Retryable errors back off from 200 ms to 5 s.
async fn read_with_retry<T, F, Fut>(
    what: &str,
    cancel: &CancellationToken,
    mut read: F,
) -> Option<Option<T>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, nomad::Error>>,
{
    let mut delay = Duration::from_millis(200);
    loop {
        match read().await {
            Ok(value) => return Some(Some(value)),
            Err(error) if error.is_not_found() => return Some(None),
            Err(error) if error.is_retryable() => {
                debug!(what, %error, retry_in = ?delay, "read failed, retrying");
                if !pause(cancel, delay).await {
                    return None;
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(error) => {
                warn!(what, %error, "read failed permanently; leaving it out of the cache");
                return Some(None);
            }
        }
    }
}

fn stub_key(stub: &JobListStub) -> JobKey {
    JobKey {
        id: stub.id.clone(),
        namespace: stub
            .namespace
            .clone()
            .unwrap_or_else(|| spec::DEFAULT_NAMESPACE.to_owned()),
    }
}

/// Watches the job list. A job is read in full when its stub carries the `steward.pool` meta,
/// when it is a declared pool's job, or when the server did not return meta at all (Nomad
/// before `?meta=true`, and the emulator). Reads repeat only for jobs whose modify index
/// moved.
pub async fn watch_jobs(context: WatchContext, cancel: CancellationToken) {
    let client = context.nomad.clone();
    let watch = nomad::Watch::new("jobs", context.nomad_watch.clone(), move |options| {
        let client = client.clone();
        async move { client.list_jobs(None, true, options).await }
    });
    // Each pass compares modify indexes, which drops wake-ups that changed nothing here, so
    // the watch keeps no copy of the last list.
    let mut watch = match watch {
        Ok(watch) => watch.yield_every_change(),
        Err(error) => {
            warn!(%error, "job watch not started");
            return;
        }
    };

    // The modify index each cached job was read at.
    let mut versions: HashMap<JobKey, u64> = HashMap::new();
    loop {
        let stubs = tokio::select! {
            () = cancel.cancelled() => return,
            change = watch.next_change() => change,
        };
        let stubs = match stubs {
            Ok(response) => response.value,
            Err(error) => {
                warn!(%error, "job watch failed permanently; retrying");
                if !pause(&cancel, context.nomad_watch.backoff_max).await {
                    return;
                }
                continue;
            }
        };

        let wanted: Vec<&JobListStub> = stubs
            .iter()
            .filter(|stub| {
                stub.meta.is_none()
                    || stub.meta_value(reconcile::META_POOL).is_some()
                    || context.cache.is_pool_job(&stub_key(stub))
            })
            .collect();
        let present: std::collections::HashSet<JobKey> =
            wanted.iter().map(|stub| stub_key(stub)).collect();
        versions.retain(|key, _| present.contains(key));

        let stale: Vec<(JobKey, u64)> = wanted
            .iter()
            .map(|stub| (stub_key(stub), stub.modify_index))
            .filter(|(key, index)| versions.get(key) != Some(index))
            .collect();
        drop(stubs);
        let reads = futures::stream::iter(stale)
            .map(|(key, index)| {
                let client = context.nomad.with_namespace(key.namespace.clone());
                let cancel = cancel.clone();
                async move {
                    let job = read_with_retry("job", &cancel, || {
                        client.read_job(&key.id, QueryOptions::immediate())
                    })
                    .await;
                    // Encoded as soon as it arrives, so the pass keeps only compact jobs.
                    let job = job
                        .flatten()
                        .map(|response| CachedJob::new(ObservedJob::new(response.value)));
                    (key, index, job)
                }
            })
            .buffer_unordered(READ_CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        if cancel.is_cancelled() {
            return;
        }

        let mut read = Vec::with_capacity(reads.len());
        for (key, index, job) in reads {
            match job {
                Some(job) => {
                    versions.insert(key.clone(), index);
                    read.push((key, Some(job)));
                }
                None => {
                    versions.remove(&key);
                    read.push((key, None));
                }
            }
        }
        let present = present
            .into_iter()
            .filter(|key| versions.contains_key(key))
            .collect();
        let changed = context.cache.update_jobs(read, &present);
        (context.sink)(changed, "job changed");
    }
}

/// Maps an allocation stub into the planner's form.
pub fn observe_allocation(stub: &AllocBrief) -> ObservedAllocation {
    let status = stub.deployment_status.as_ref();
    ObservedAllocation {
        id: stub.id.clone(),
        task_group: stub.task_group.clone(),
        node_id: stub.node_id.clone(),
        job_version: stub.job_version,
        client_status: ClientStatus::from_nomad(stub.client_status.as_str()),
        desired_status: DesiredStatus::from_nomad(stub.desired_status.as_str()),
        health: match status.map(|s| s.healthy) {
            Some(nomad::Health::Healthy) => AllocHealth::Healthy,
            Some(nomad::Health::Unhealthy) => AllocHealth::Unhealthy,
            _ => AllocHealth::Unknown,
        },
        canary: status.is_some_and(|s| s.canary),
    }
}

/// Allocations grouped by job, decoded straight from a JSON list of allocation stubs, so the
/// list itself is never held.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AllocationsByJob(pub HashMap<JobKey, Vec<ObservedAllocation>>);

impl<'de> serde::Deserialize<'de> for AllocationsByJob {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = AllocationsByJob;

            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("a list of allocation stubs")
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<AllocationsByJob, A::Error> {
                let mut by_job: HashMap<JobKey, Vec<ObservedAllocation>> = HashMap::new();
                while let Some(stub) = seq.next_element::<AllocBrief>()? {
                    let namespace = if stub.namespace.is_empty() {
                        spec::DEFAULT_NAMESPACE.to_owned()
                    } else {
                        stub.namespace.clone()
                    };
                    let key = JobKey {
                        id: stub.job_id.clone(),
                        namespace,
                    };
                    by_job
                        .entry(key)
                        .or_default()
                        .push(observe_allocation(&stub));
                }
                for list in by_job.values_mut() {
                    list.sort_by(|a, b| a.id.cmp(&b.id));
                    list.shrink_to_fit();
                }
                Ok(AllocationsByJob(by_job))
            }
        }

        deserializer.deserialize_seq(Visitor)
    }
}

impl AllocationsByJob {
    /// Adds the groups of a later page, keeping each job's allocations in ID order.
    pub fn absorb(&mut self, page: AllocationsByJob) {
        for (key, mut allocations) in page.0 {
            match self.0.entry(key) {
                std::collections::hash_map::Entry::Vacant(entry) => {
                    entry.insert(allocations);
                }
                std::collections::hash_map::Entry::Occupied(mut entry) => {
                    let list = entry.get_mut();
                    list.append(&mut allocations);
                    // Two sorted runs: the stable sort merges them in linear time.
                    list.sort_by(|a, b| a.id.cmp(&b.id));
                }
            }
        }
    }
}

/// Allocation stubs per request when the allocation watch lists the cluster. A stub without
/// task states from the Nomad emulator is about 0.7 KB of JSON, so a page stays under about
/// 2 MB however large the cluster is. Real Nomad's stubs may be larger.
pub const ALLOCATION_PAGE: u32 = 2_000;

/// Watches every allocation of the cluster, without task states, and groups them by job
/// while the list is decoded, [`ALLOCATION_PAGE`] stubs per request.
///
/// The allocation table's index moves only when an allocation changes, so every wake-up is
/// a real change. The watch keeps no copy of the last list, and the cache diffs the groups.
///
/// NOTE: each change still transfers the whole list. The event stream would transfer only
/// the allocations that changed.
pub async fn watch_allocations(context: WatchContext, cancel: CancellationToken) {
    let client = context.nomad.clone();
    let watch = nomad::Watch::new("allocations", context.nomad_watch.clone(), move |options| {
        let client = client.clone();
        async move {
            client
                .list_allocations_paged(options, ALLOCATION_PAGE, AllocationsByJob::absorb)
                .await
        }
    });
    let mut watch = match watch {
        Ok(watch) => watch.yield_every_change(),
        Err(error) => {
            warn!(%error, "allocation watch not started");
            return;
        }
    };
    loop {
        let by_job = tokio::select! {
            () = cancel.cancelled() => return,
            change = watch.next_change() => change,
        };
        let by_job = match by_job {
            Ok(response) => response.value.0,
            Err(error) => {
                warn!(%error, "allocation watch failed permanently; retrying");
                if !pause(&cancel, context.nomad_watch.backoff_max).await {
                    return;
                }
                continue;
            }
        };
        let changed = context.cache.replace_allocations(by_job);
        (context.sink)(changed, "allocation changed");
    }
}

/// Watches every deployment and keeps the latest one per job (highest create index). The
/// watch keeps no copy of the last list: the cache diffs what it keeps.
pub async fn watch_deployments(context: WatchContext, cancel: CancellationToken) {
    let client = context.nomad.clone();
    let watch = nomad::Watch::new("deployments", context.nomad_watch.clone(), move |options| {
        let client = client.clone();
        async move { client.list_deployments(options).await }
    });
    // The deployment table's index moves only when a deployment changes.
    let mut watch = match watch {
        Ok(watch) => watch.yield_every_change(),
        Err(error) => {
            warn!(%error, "deployment watch not started");
            return;
        }
    };
    loop {
        let deployments = tokio::select! {
            () = cancel.cancelled() => return,
            change = watch.next_change() => change,
        };
        let deployments = match deployments {
            Ok(response) => response.value,
            Err(error) => {
                warn!(%error, "deployment watch failed permanently; retrying");
                if !pause(&cancel, context.nomad_watch.backoff_max).await {
                    return;
                }
                continue;
            }
        };
        let mut latest: HashMap<JobKey, (u64, ObservedDeployment)> = HashMap::new();
        for deployment in &deployments {
            let key = JobKey {
                id: deployment.job_id.clone(),
                namespace: deployment
                    .namespace
                    .clone()
                    .unwrap_or_else(|| spec::DEFAULT_NAMESPACE.to_owned()),
            };
            let observed = ObservedDeployment {
                id: deployment.id.clone(),
                status: DeploymentStatus::from_nomad(deployment.status.as_str()),
                job_version: deployment.job_version,
            };
            let newer = latest
                .get(&key)
                .is_none_or(|(index, _)| deployment.create_index > *index);
            if newer {
                latest.insert(key, (deployment.create_index, observed));
            }
        }
        let latest = latest
            .into_iter()
            .map(|(key, (_, deployment))| (key, deployment))
            .collect();
        let changed = context.cache.replace_deployments(latest);
        (context.sink)(changed, "deployment changed");
    }
}

/// Maps a full node read into the planner's form.
pub fn observe_node(node: &nomad::Node) -> ObservedNode {
    ObservedNode {
        id: node.id.clone(),
        datacenter: node.datacenter.clone(),
        meta: node.meta.clone().unwrap_or_default().into_iter().collect(),
        attributes: node
            .attributes
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        status: NodeStatus::from_nomad(node.status.as_str()),
        eligible: node.scheduling_eligibility == nomad::SchedulingEligibility::Eligible,
        draining: node.drain || node.drain_strategy.is_some(),
    }
}

/// Watches the node list and reads a node in full (for its `Meta`) when its modify index
/// moved.
pub async fn watch_nodes(context: WatchContext, cancel: CancellationToken) {
    let client = context.nomad.clone();
    let watch = nomad::Watch::new("nodes", context.nomad_watch.clone(), move |options| {
        let client = client.clone();
        async move { client.list_nodes(None, options).await }
    });
    let mut watch = match watch {
        Ok(watch) => watch,
        Err(error) => {
            warn!(%error, "node watch not started");
            return;
        }
    };
    let mut versions: HashMap<String, u64> = HashMap::new();
    let mut nodes: BTreeMap<String, ObservedNode> = BTreeMap::new();
    loop {
        let stubs = tokio::select! {
            () = cancel.cancelled() => return,
            change = watch.next_change() => change,
        };
        let stubs: Vec<NodeListStub> = match stubs {
            Ok(response) => response.value,
            Err(error) => {
                warn!(%error, "node watch failed permanently; retrying");
                if !pause(&cancel, context.nomad_watch.backoff_max).await {
                    return;
                }
                continue;
            }
        };
        let present: BTreeSet<&str> = stubs.iter().map(|stub| stub.id.as_str()).collect();
        nodes.retain(|id, _| present.contains(id.as_str()));
        versions.retain(|id, _| present.contains(id.as_str()));

        let stale: Vec<(String, u64)> = stubs
            .iter()
            .filter(|stub| versions.get(&stub.id) != Some(&stub.modify_index))
            .map(|stub| (stub.id.clone(), stub.modify_index))
            .collect();
        let reads = futures::stream::iter(stale)
            .map(|(id, index)| {
                let client = context.nomad.clone();
                let cancel = cancel.clone();
                async move {
                    let node = read_with_retry("node", &cancel, || {
                        client.read_node(&id, QueryOptions::immediate())
                    })
                    .await;
                    (id, index, node)
                }
            })
            .buffer_unordered(READ_CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        if cancel.is_cancelled() {
            return;
        }
        for (id, index, node) in reads {
            match node.flatten() {
                Some(response) => {
                    nodes.insert(id.clone(), observe_node(&response.value));
                    versions.insert(id, index);
                }
                None => {
                    nodes.remove(&id);
                    versions.remove(&id);
                }
            }
        }
        let changed = context.cache.replace_nodes(nodes.clone());
        (context.sink)(changed, "node changed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(key: &str, value: &str, modify_index: u64) -> KvPair {
        KvPair {
            key: key.to_owned(),
            value: value.as_bytes().to_vec(),
            flags: 0,
            create_index: 1,
            modify_index,
            lock_index: 0,
            session: None,
        }
    }

    fn override_text(name: &str, workers: u32) -> String {
        format!(
            "apiVersion: steward/v1\nkind: Override\nmetadata:\n  name: {name}\nspec:\n  workers: {workers}\n  reason: test\n  until: 2030-01-01T00:00:00Z\n"
        )
    }

    fn workers(entry: &OverrideEntry) -> u32 {
        entry.item.as_ref().expect("valid override").spec.workers
    }

    fn page(stubs: &[(&str, &str)]) -> AllocationsByJob {
        let list: Vec<serde_json::Value> = stubs
            .iter()
            .map(|(job, id)| serde_json::json!({"ID": id, "JobID": job, "Namespace": "default"}))
            .collect();
        serde_json::from_value(serde_json::Value::Array(list)).expect("stubs decode")
    }

    fn ids(groups: &AllocationsByJob, job: &str) -> Vec<String> {
        let key = JobKey {
            id: job.to_owned(),
            namespace: spec::DEFAULT_NAMESPACE.to_owned(),
        };
        groups.0[&key].iter().map(|a| a.id.clone()).collect()
    }

    #[test]
    fn absorbed_pages_keep_id_order() {
        let mut groups = page(&[("web", "c"), ("web", "a"), ("ocr", "x")]);
        groups.absorb(page(&[("web", "b"), ("face", "f")]));
        groups.absorb(page(&[("ocr", "w")]));

        assert_eq!(groups.0.len(), 3);
        assert_eq!(ids(&groups, "web"), ["a", "b", "c"]);
        assert_eq!(ids(&groups, "ocr"), ["w", "x"]);
        assert_eq!(ids(&groups, "face"), ["f"]);
    }

    #[test]
    fn overrides_reparsed_only_when_text_or_index_moves() {
        let keys = Keys::new("steward/").expect("valid prefix");
        let mut parsed = ParsedOverrides::new();
        let key = keys.override_("web");

        let first = parse_overrides(
            &keys,
            &[pair(&key, &override_text("web", 3), 5)],
            &mut parsed,
        );
        assert_eq!(workers(&first["web"]), 3);

        // The same index with other text (a restored snapshot) is parsed again.
        let second = parse_overrides(
            &keys,
            &[pair(&key, &override_text("web", 4), 5)],
            &mut parsed,
        );
        assert_eq!(workers(&second["web"]), 4);

        // Unchanged text and index reuse the earlier result.
        let third = parse_overrides(
            &keys,
            &[pair(&key, &override_text("web", 4), 5)],
            &mut parsed,
        );
        assert_eq!(third["web"], second["web"]);

        // A deleted key leaves the parse cache too.
        let empty = parse_overrides(&keys, &[], &mut parsed);
        assert!(empty.is_empty());
        assert!(parsed.is_empty());
    }

    #[test]
    fn pools_share_entries_between_snapshots() {
        let keys = Keys::new("steward/").expect("valid prefix");
        let mut parsed = ParsedPools::new();
        let text = "apiVersion: steward/v1\nkind: WorkerPool\nmetadata:\n  name: web\nspec:\n  version: \"img:1\"\n  workers: {min: 1, max: 5}\n  zones:\n    - name: a\n      datacenter: a\n  template:\n    Tasks:\n      - Name: w\n        Driver: docker\n";
        let key = keys.pool("web");

        let first = parse_pools(&keys, &[pair(&key, text, 9)], &mut parsed);
        let second = parse_pools(&keys, &[pair(&key, text, 9)], &mut parsed);
        assert!(
            Arc::ptr_eq(&first["web"], &second["web"]),
            "reused, not parsed again"
        );
        assert!(first["web"].pool.is_ok());

        let third = parse_pools(&keys, &[pair(&key, "not: [a pool", 9)], &mut parsed);
        assert!(third["web"].pool.is_err(), "changed text is parsed again");
    }
}
