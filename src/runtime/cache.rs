//! The reflector-style cache: the last complete list of every watched source, and which
//! pools each change affects.
//!
//! Every watch replaces its whole part of the cache with a complete list (Consul and Nomad
//! blocking queries return full lists, and each relist after a gap, reconnect or index reset
//! is authoritative). A source is ready once its first complete list arrived, and reconciles
//! start only when every source is ready.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tokio::sync::watch;

use crate::reconcile::{JobKey, Observed, ObservedAllocation, ObservedDeployment, ObservedJob};
use crate::reconcile::{NodeList, ObservedNode, Status};
use crate::spec::{Override, WorkerPool};

/// One watched source of the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    Pools,
    Overrides,
    Statuses,
    Jobs,
    Allocations,
    Deployments,
    Nodes,
}

impl Source {
    /// Every source, in the order they are reported.
    pub const ALL: [Source; 7] = [
        Source::Pools,
        Source::Overrides,
        Source::Statuses,
        Source::Jobs,
        Source::Allocations,
        Source::Deployments,
        Source::Nodes,
    ];
}

/// A pool key as last read from Consul.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolEntry {
    /// The key's `ModifyIndex`, reported as `observedGeneration`.
    pub modify_index: u64,
    /// The pool, or why its stored text is invalid.
    pub pool: Result<WorkerPool, String>,
}

/// An override key as last read from Consul.
#[derive(Debug, Clone, PartialEq)]
pub struct OverrideEntry {
    pub modify_index: u64,
    pub item: Result<Override, String>,
}

/// A status key as last read or written.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredStatus {
    /// The key's `ModifyIndex`, the check-and-set index of the next write.
    pub modify_index: u64,
    /// The parsed status, or `None` when the stored text is not a valid status.
    pub status: Option<Status>,
}

/// Everything one reconcile reads, copied out of the cache.
#[derive(Debug, Clone)]
pub struct PoolView {
    pub name: String,
    pub pool: Option<PoolEntry>,
    pub override_: Option<OverrideEntry>,
    pub status: Option<StoredStatus>,
    /// The job the pool owns (or would own); for a deleted pool, its still-running job.
    pub job_key: Option<JobKey>,
    pub observed: Observed,
}

/// A job as the cache keeps it: compact JSON, plus the few fields the cache reads without
/// decoding it. A decoded [`crate::nomad::Job`] with two task groups takes about 10 KB of
/// heap (measured with `massif`), mostly in wide structs of optional fields. Its JSON without
/// the unset fields is a fraction of that, so each reconcile view decodes the one job it
/// needs instead.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedJob {
    form: JobForm,
    owner: Option<String>,
    stopped: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum JobForm {
    /// `serde_json` text of the job and its `JobModifyIndex`.
    Encoded {
        json: Box<[u8]>,
        job_modify_index: u64,
    },
    /// A job whose JSON does not decode back to the same value, kept as it is.
    Decoded(Box<ObservedJob>),
}

impl CachedJob {
    /// Encodes `job`, keeping it decoded when the JSON does not read back to the same job
    /// (a model field that does not survive the round trip), so a view never differs from
    /// what Nomad returned.
    pub fn new(job: ObservedJob) -> Self {
        let owner = job.owner().map(str::to_owned);
        let stopped = job.job.stop == Some(true);
        let form = match serde_json::to_vec(&job.job) {
            Ok(json) if decode(&json, job.job_modify_index).as_ref() == Some(&job) => {
                JobForm::Encoded {
                    json: json.into_boxed_slice(),
                    job_modify_index: job.job_modify_index,
                }
            }
            _ => JobForm::Decoded(Box::new(job)),
        };
        Self {
            form,
            owner,
            stopped,
        }
    }

    /// Returns the pool named by the job's `steward.pool` meta.
    pub fn owner(&self) -> Option<&str> {
        self.owner.as_deref()
    }

    /// Reports whether the job is stopped (`Stop: true`).
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// Decodes the job.
    pub fn job(&self) -> ObservedJob {
        match &self.form {
            JobForm::Encoded {
                json,
                job_modify_index,
            } => decode(json, *job_modify_index)
                .expect("CachedJob::new kept only JSON that decodes to the job"),
            JobForm::Decoded(job) => ObservedJob::clone(job),
        }
    }
}

fn decode(json: &[u8], job_modify_index: u64) -> Option<ObservedJob> {
    let job = serde_json::from_slice(json).ok()?;
    let mut observed = ObservedJob::new(job);
    observed.job_modify_index = job_modify_index;
    Some(observed)
}

#[derive(Debug, Default)]
struct State {
    /// Shared with the pool watch's parse cache, so each pool is held once.
    pools: BTreeMap<String, Arc<PoolEntry>>,
    overrides: BTreeMap<String, OverrideEntry>,
    statuses: BTreeMap<String, StoredStatus>,
    jobs: HashMap<JobKey, CachedJob>,
    allocations: HashMap<JobKey, Vec<ObservedAllocation>>,
    deployments: HashMap<JobKey, ObservedDeployment>,
    nodes: BTreeMap<String, ObservedNode>,
    /// The values of `nodes`, shared by every view until the nodes change.
    node_list: NodeList,
    /// The declared pools by the job they own, kept in step with `pools`.
    pools_by_job: HashMap<JobKey, BTreeSet<String>>,
}

impl State {
    /// Pools whose job is `key`: by the pool's `spec.job`, and by the job's `steward.pool`
    /// meta.
    fn pools_of_job(&self, key: &JobKey, into: &mut BTreeSet<String>) {
        if let Some(names) = self.pools_by_job.get(key) {
            into.extend(names.iter().cloned());
        }
        if let Some(owner) = self.jobs.get(key).and_then(|job| job.owner()) {
            into.insert(owner.to_owned());
        }
    }

    /// Rebuilds `pools_by_job` from `pools`.
    fn index_pools(&mut self) {
        let mut index: HashMap<JobKey, BTreeSet<String>> = HashMap::new();
        for (name, entry) in &self.pools {
            if let Ok(pool) = &entry.pool {
                index
                    .entry(JobKey::of(pool))
                    .or_default()
                    .insert(name.clone());
            }
        }
        self.pools_by_job = index;
    }

    /// Pools with a zone that contains `node`.
    fn pools_on_node(&self, node: &ObservedNode, into: &mut BTreeSet<String>) {
        for (name, entry) in &self.pools {
            if let Ok(pool) = &entry.pool
                && pool.spec.zones.iter().any(|zone| node.in_zone(zone))
            {
                into.insert(name.clone());
            }
        }
    }
}

/// The shared cache. Reads copy what a reconcile needs, so no lock is held across an await.
#[derive(Debug)]
pub struct Cache {
    state: RwLock<State>,
    synced: watch::Sender<BTreeSet<Source>>,
}

impl Default for Cache {
    fn default() -> Self {
        Self::new()
    }
}

/// Returns the keys whose value differs between two maps, including added and removed keys.
fn changed_keys<K: Ord + Clone, V: PartialEq>(
    old: &BTreeMap<K, V>,
    new: &BTreeMap<K, V>,
) -> Vec<K> {
    let mut changed: Vec<K> = new
        .iter()
        .filter(|(key, value)| old.get(key) != Some(*value))
        .map(|(key, _)| key.clone())
        .collect();
    changed.extend(old.keys().filter(|key| !new.contains_key(key)).cloned());
    changed
}

impl Cache {
    /// Creates an empty cache with no source synced.
    pub fn new() -> Self {
        Self {
            state: RwLock::new(State::default()),
            synced: watch::channel(BTreeSet::new()).0,
        }
    }

    // A panic inside one of the short replace functions leaves maps that are each whole, so
    // a poisoned lock is still usable.
    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn mark_synced(&self, source: Source) {
        self.synced.send_if_modified(|synced| synced.insert(source));
    }

    /// Returns whether every source has delivered its first complete list.
    pub fn is_ready(&self) -> bool {
        self.synced.borrow().len() == Source::ALL.len()
    }

    /// Returns the sources that have not delivered a complete list yet.
    pub fn pending_sources(&self) -> Vec<Source> {
        let synced = self.synced.borrow();
        Source::ALL
            .into_iter()
            .filter(|source| !synced.contains(source))
            .collect()
    }

    /// Waits until every source is ready.
    pub async fn wait_ready(&self) {
        let mut receiver = self.synced.subscribe();
        // The sender lives in `self`, so the channel cannot close while this waits.
        let _ = receiver
            .wait_for(|synced| synced.len() == Source::ALL.len())
            .await;
    }

    /// Replaces every pool with a complete list. Returns the pools that changed.
    pub fn replace_pools(&self, pools: BTreeMap<String, PoolEntry>) -> BTreeSet<String> {
        let pools = pools
            .into_iter()
            .map(|(name, entry)| (name, Arc::new(entry)))
            .collect();
        self.replace_pool_entries(pools)
    }

    /// Replaces every pool with a complete list of shared entries. Returns the pools that
    /// changed.
    pub fn replace_pool_entries(
        &self,
        pools: BTreeMap<String, Arc<PoolEntry>>,
    ) -> BTreeSet<String> {
        let mut state = self.write();
        let changed = changed_keys(&state.pools, &pools);
        state.pools = pools;
        state.index_pools();
        drop(state);
        self.mark_synced(Source::Pools);
        changed.into_iter().collect()
    }

    /// Replaces every override with a complete list. Returns the pools whose override changed.
    pub fn replace_overrides(
        &self,
        overrides: BTreeMap<String, OverrideEntry>,
    ) -> BTreeSet<String> {
        let mut state = self.write();
        let changed = changed_keys(&state.overrides, &overrides);
        state.overrides = overrides;
        drop(state);
        self.mark_synced(Source::Overrides);
        changed.into_iter().collect()
    }

    /// Replaces every stored status, as read once at start.
    pub fn replace_statuses(&self, statuses: BTreeMap<String, StoredStatus>) {
        self.write().statuses = statuses;
        self.mark_synced(Source::Statuses);
    }

    /// Records a status this controller wrote, or removes it with `None`.
    pub fn set_status(&self, pool: &str, stored: Option<StoredStatus>) {
        let mut state = self.write();
        match stored {
            Some(stored) => state.statuses.insert(pool.to_owned(), stored),
            None => state.statuses.remove(pool),
        };
    }

    /// Applies a complete job list and returns the pools affected. `read` contains the jobs
    /// read again, and `present` the key of every job in the list, read again or not. Cached
    /// jobs missing from `present` are dropped, and the rest are kept as they are.
    pub fn update_jobs(
        &self,
        read: Vec<(JobKey, Option<CachedJob>)>,
        present: &std::collections::HashSet<JobKey>,
    ) -> BTreeSet<String> {
        let mut state = self.write();
        let mut affected = BTreeSet::new();
        let mut changed: Vec<(JobKey, Option<CachedJob>)> = read
            .into_iter()
            .filter(|(key, job)| state.jobs.get(key) != job.as_ref())
            .collect();
        changed.extend(
            state
                .jobs
                .keys()
                .filter(|key| !present.contains(key))
                .map(|key| (key.clone(), None)),
        );

        // Owners before and after the change both need a look.
        for (key, job) in changed {
            state.pools_of_job(&key, &mut affected);
            match job {
                Some(job) => state.jobs.insert(key.clone(), job),
                None => state.jobs.remove(&key),
            };
            state.pools_of_job(&key, &mut affected);
        }
        drop(state);
        self.mark_synced(Source::Jobs);
        affected
    }

    /// Replaces every owned job with a complete list. Returns the pools affected.
    pub fn replace_jobs(&self, jobs: HashMap<JobKey, ObservedJob>) -> BTreeSet<String> {
        let present = jobs.keys().cloned().collect();
        let read = jobs
            .into_iter()
            .map(|(key, job)| (key, Some(CachedJob::new(job))))
            .collect();
        self.update_jobs(read, &present)
    }

    /// Replaces every allocation with a complete list, grouped by job. Returns the pools
    /// affected.
    pub fn replace_allocations(
        &self,
        allocations: HashMap<JobKey, Vec<ObservedAllocation>>,
    ) -> BTreeSet<String> {
        let mut state = self.write();
        let mut affected = BTreeSet::new();
        let mut changed: Vec<JobKey> = allocations
            .iter()
            .filter(|(key, list)| state.allocations.get(key) != Some(list))
            .map(|(key, _)| key.clone())
            .collect();
        changed.extend(
            state
                .allocations
                .keys()
                .filter(|key| !allocations.contains_key(key))
                .cloned(),
        );
        for key in &changed {
            state.pools_of_job(key, &mut affected);
        }
        state.allocations = allocations;
        drop(state);
        self.mark_synced(Source::Allocations);
        affected
    }

    /// Replaces every job's latest deployment. Returns the pools affected.
    pub fn replace_deployments(
        &self,
        deployments: HashMap<JobKey, ObservedDeployment>,
    ) -> BTreeSet<String> {
        let mut state = self.write();
        let mut affected = BTreeSet::new();
        let mut changed: Vec<JobKey> = deployments
            .iter()
            .filter(|(key, deployment)| state.deployments.get(key) != Some(deployment))
            .map(|(key, _)| key.clone())
            .collect();
        changed.extend(
            state
                .deployments
                .keys()
                .filter(|key| !deployments.contains_key(key))
                .cloned(),
        );
        for key in &changed {
            state.pools_of_job(key, &mut affected);
        }
        state.deployments = deployments;
        drop(state);
        self.mark_synced(Source::Deployments);
        affected
    }

    /// Replaces every node. Returns the pools with a zone on a node that changed, judged by
    /// both the old and the new version of the node.
    pub fn replace_nodes(&self, nodes: BTreeMap<String, ObservedNode>) -> BTreeSet<String> {
        let mut state = self.write();
        let mut affected = BTreeSet::new();
        let changed = changed_keys(&state.nodes, &nodes);
        for id in &changed {
            if let Some(old) = state.nodes.get(id) {
                state.pools_on_node(old, &mut affected);
            }
            if let Some(new) = nodes.get(id) {
                state.pools_on_node(new, &mut affected);
            }
        }
        state.node_list = nodes.values().cloned().collect();
        state.nodes = nodes;
        drop(state);
        self.mark_synced(Source::Nodes);
        affected
    }

    /// Returns the node with this ID, if cached.
    pub fn node(&self, id: &str) -> Option<ObservedNode> {
        self.read().nodes.get(id).cloned()
    }

    /// Returns the cached job, if any.
    pub fn job(&self, key: &JobKey) -> Option<ObservedJob> {
        self.read().jobs.get(key).map(CachedJob::job)
    }

    /// Returns whether `key` is the job of a cached pool.
    pub fn is_pool_job(&self, key: &JobKey) -> bool {
        let state = self.read();
        let mut pools = BTreeSet::new();
        state.pools_of_job(key, &mut pools);
        !pools.is_empty()
    }

    /// Returns every pool name to reconcile after becoming leader: the declared pools, the
    /// owners of running jobs whose pool is gone, and the pools with a stored status.
    pub fn all_pool_names(&self) -> BTreeSet<String> {
        let state = self.read();
        let mut names: BTreeSet<String> = state.pools.keys().cloned().collect();
        names.extend(state.statuses.keys().cloned());
        for job in state.jobs.values() {
            if !job.is_stopped()
                && let Some(owner) = job.owner()
            {
                names.insert(owner.to_owned());
            }
        }
        names
    }

    /// Copies what a reconcile of `name` reads.
    pub fn view(&self, name: &str) -> PoolView {
        let state = self.read();
        let pool = state.pools.get(name).map(|entry| PoolEntry::clone(entry));
        let job_key = match pool.as_ref().map(|entry| &entry.pool) {
            Some(Ok(pool)) => Some(JobKey::of(pool)),
            // A deleted or invalid pool: the running job that carries its mark, if any.
            _ => state
                .jobs
                .iter()
                .filter(|(_, job)| job.owner() == Some(name) && !job.is_stopped())
                .map(|(key, _)| key.clone())
                .min_by(|a, b| (&a.namespace, &a.id).cmp(&(&b.namespace, &b.id))),
        };
        let observed = Observed {
            job: job_key
                .as_ref()
                .and_then(|key| state.jobs.get(key).map(CachedJob::job)),
            allocations: job_key
                .as_ref()
                .and_then(|key| state.allocations.get(key).cloned())
                .unwrap_or_default(),
            nodes: state.node_list.clone(),
            deployment: job_key
                .as_ref()
                .and_then(|key| state.deployments.get(key).cloned()),
        };
        PoolView {
            name: name.to_owned(),
            pool,
            override_: state.overrides.get(name).cloned(),
            status: state.statuses.get(name).cloned(),
            job_key,
            observed,
        }
    }

    /// Returns the number of cached pools, jobs, allocations and nodes.
    pub fn counts(&self) -> CacheCounts {
        let state = self.read();
        CacheCounts {
            pools: state.pools.len(),
            jobs: state.jobs.len(),
            allocations: state.allocations.values().map(Vec::len).sum(),
            nodes: state.nodes.len(),
        }
    }
}

/// Sizes of the cache, for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheCounts {
    pub pools: usize,
    pub jobs: usize,
    pub allocations: usize,
    pub nodes: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::{AllocHealth, ClientStatus, DesiredStatus, NodeStatus};
    use crate::spec::Document;

    fn pool(name: &str, job: &str, zones: &[&str]) -> PoolEntry {
        let zones: String = zones
            .iter()
            .map(|zone| format!("    - name: {zone}\n      datacenter: {zone}\n"))
            .collect();
        let text = format!(
            "apiVersion: steward/v1\nkind: WorkerPool\nmetadata:\n  name: {name}\nspec:\n  job: {{id: {job}}}\n  version: \"img:1\"\n  workers: {{min: 1, max: 5}}\n  zones:\n{zones}  template:\n    Tasks:\n      - Name: w\n        Driver: docker\n        Resources: {{CPU: 100, MemoryMB: 128}}\n"
        );
        let mut documents = crate::spec::parse_str(&text, name).expect("valid pool");
        let Document::WorkerPool(pool) = documents.remove(0).document else {
            panic!("not a pool");
        };
        PoolEntry {
            modify_index: 7,
            pool: Ok(pool),
        }
    }

    fn job(id: &str, owner: Option<&str>) -> ObservedJob {
        let meta = owner.map(|owner| serde_json::json!({"steward.pool": owner}));
        let job =
            serde_json::from_value(serde_json::json!({"ID": id, "Meta": meta})).expect("valid job");
        ObservedJob::new(job)
    }

    fn cached(id: &str, owner: Option<&str>) -> CachedJob {
        CachedJob::new(job(id, owner))
    }

    #[test]
    fn cached_job_round_trips_nomad_json() {
        let text = include_str!("../../tests/it/nomad_client/fixtures/job-read.json");
        let job: crate::nomad::Job = serde_json::from_str(text).expect("the fixture decodes");
        let observed = ObservedJob::new(job);
        let compact = serde_json::to_vec(
            &serde_json::from_str::<serde_json::Value>(text).expect("the fixture is JSON"),
        )
        .expect("encodes");

        let cached = CachedJob::new(observed.clone());

        let JobForm::Encoded { json, .. } = &cached.form else {
            panic!("Nomad's own job JSON survives the round trip, so it is kept encoded");
        };
        assert!(
            json.len() < compact.len(),
            "unset fields are left out: {} bytes, Nomad's compact JSON {}",
            json.len(),
            compact.len()
        );
        assert_eq!(cached.job(), observed);
        assert_eq!(cached.owner(), observed.owner());
        assert_eq!(cached.is_stopped(), observed.job.stop == Some(true));
    }

    #[test]
    fn cached_job_keeps_its_job_modify_index() {
        let mut observed = job("web", Some("web"));
        observed.job_modify_index = 42;
        assert_eq!(CachedJob::new(observed).job().job_modify_index, 42);
    }

    fn node(id: &str, datacenter: &str, status: NodeStatus) -> ObservedNode {
        ObservedNode {
            id: id.to_owned(),
            datacenter: datacenter.to_owned(),
            meta: BTreeMap::new(),
            attributes: BTreeMap::new(),
            status,
            eligible: true,
            draining: false,
        }
    }

    fn key(id: &str) -> JobKey {
        JobKey {
            id: id.to_owned(),
            namespace: "default".to_owned(),
        }
    }

    fn allocation(id: &str) -> ObservedAllocation {
        ObservedAllocation {
            id: id.to_owned(),
            task_group: "a".to_owned(),
            node_id: "n1".to_owned(),
            job_version: 0,
            client_status: ClientStatus::Running,
            desired_status: DesiredStatus::Run,
            health: AllocHealth::Healthy,
            canary: false,
        }
    }

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn ready_only_after_every_source() {
        let cache = Cache::new();
        cache.replace_pools(BTreeMap::new());
        cache.replace_overrides(BTreeMap::new());
        cache.replace_statuses(BTreeMap::new());
        cache.replace_jobs(HashMap::new());
        cache.replace_allocations(HashMap::new());
        cache.replace_deployments(HashMap::new());
        assert!(!cache.is_ready());
        assert_eq!(cache.pending_sources(), vec![Source::Nodes]);

        cache.replace_nodes(BTreeMap::new());
        assert!(cache.is_ready());
    }

    #[test]
    fn pool_change_reports_only_changed_pools() {
        let cache = Cache::new();
        let first = BTreeMap::from([
            ("web".to_owned(), pool("web", "web", &["a"])),
            ("api".to_owned(), pool("api", "api", &["a"])),
        ]);
        assert_eq!(cache.replace_pools(first.clone()), names(&["api", "web"]));

        let mut second = first;
        second.remove("api");
        second.get_mut("web").expect("web is present").modify_index = 8;
        assert_eq!(cache.replace_pools(second.clone()), names(&["api", "web"]));
        assert!(cache.replace_pools(second).is_empty());
    }

    #[test]
    fn allocation_change_maps_to_pool() {
        let cache = Cache::new();
        cache.replace_pools(BTreeMap::from([(
            "web".to_owned(),
            pool("web", "web-job", &["a"]),
        )]));
        // A job owned through its meta by a pool that is no longer declared.
        cache.replace_jobs(HashMap::from([
            (key("web-job"), job("web-job", Some("web"))),
            (key("old"), job("old", Some("gone"))),
        ]));

        let changed = cache.replace_allocations(HashMap::from([
            (key("web-job"), vec![allocation("1")]),
            (key("old"), vec![allocation("2")]),
            (key("foreign"), vec![allocation("3")]),
        ]));
        assert_eq!(changed, names(&["gone", "web"]));

        let unchanged = cache.replace_allocations(HashMap::from([
            (key("web-job"), vec![allocation("1")]),
            (key("old"), vec![allocation("2")]),
            (key("foreign"), vec![allocation("3")]),
        ]));
        assert!(unchanged.is_empty());
    }

    #[test]
    fn update_jobs_keeps_unread_drops_missing() {
        let cache = Cache::new();
        cache.replace_pools(BTreeMap::from([
            ("web".to_owned(), pool("web", "web", &["a"])),
            ("api".to_owned(), pool("api", "api", &["a"])),
        ]));
        let changed = cache.replace_jobs(HashMap::from([
            (key("web"), job("web", Some("web"))),
            (key("api"), job("api", Some("api"))),
        ]));
        assert_eq!(changed, names(&["api", "web"]));

        // The list still contains both jobs, and only `web` was read again, unchanged.
        let present = [key("web"), key("api")].into_iter().collect();
        let changed = cache.update_jobs(
            vec![(key("web"), Some(cached("web", Some("web"))))],
            &present,
        );
        assert!(changed.is_empty(), "{changed:?}");
        assert!(cache.job(&key("api")).is_some(), "an unread job is kept");

        // `api` left the list; a job of another owner took `web`'s ID.
        let present = [key("web")].into_iter().collect();
        let changed = cache.update_jobs(
            vec![(key("web"), Some(cached("web", Some("other"))))],
            &present,
        );
        assert_eq!(changed, names(&["api", "other", "web"]));
        assert!(cache.job(&key("api")).is_none());

        // A read that found nothing removes the job.
        let changed = cache.update_jobs(vec![(key("web"), None)], &present);
        assert_eq!(changed, names(&["other", "web"]));
        assert!(cache.job(&key("web")).is_none());
    }

    #[test]
    fn views_share_the_node_list_until_it_changes() {
        let cache = Cache::new();
        cache.replace_pools(BTreeMap::from([
            ("a".to_owned(), pool("a", "a", &["a"])),
            ("b".to_owned(), pool("b", "b", &["a"])),
        ]));
        cache.replace_nodes(BTreeMap::from([(
            "n1".to_owned(),
            node("n1", "a", NodeStatus::Ready),
        )]));

        let first = cache.view("a").observed.nodes;
        let mut second = cache.view("b").observed.nodes;
        assert!(
            std::ptr::eq(first.as_ptr(), second.as_ptr()),
            "one shared list"
        );

        second[0].status = NodeStatus::Down;
        assert_eq!(first[0].status, NodeStatus::Ready, "a write copies first");
        assert_eq!(cache.view("a").observed.nodes[0].status, NodeStatus::Ready);

        cache.replace_nodes(BTreeMap::from([(
            "n1".to_owned(),
            node("n1", "a", NodeStatus::Down),
        )]));
        assert_eq!(cache.view("a").observed.nodes[0].status, NodeStatus::Down);
    }

    #[test]
    fn node_change_queues_pools_with_zone_on_it() {
        let cache = Cache::new();
        cache.replace_pools(BTreeMap::from([
            ("ab".to_owned(), pool("ab", "ab", &["a", "b"])),
            ("b".to_owned(), pool("b", "b", &["b"])),
            ("c".to_owned(), pool("c", "c", &["c"])),
        ]));
        cache.replace_nodes(BTreeMap::from([
            ("n1".to_owned(), node("n1", "a", NodeStatus::Ready)),
            ("n2".to_owned(), node("n2", "b", NodeStatus::Ready)),
        ]));

        let changed = cache.replace_nodes(BTreeMap::from([
            ("n1".to_owned(), node("n1", "a", NodeStatus::Ready)),
            ("n2".to_owned(), node("n2", "b", NodeStatus::Down)),
        ]));
        assert_eq!(changed, names(&["ab", "b"]));
    }

    #[test]
    fn deleted_pool_view_finds_running_job() {
        let cache = Cache::new();
        cache.replace_pools(BTreeMap::new());
        cache.replace_jobs(HashMap::from([(
            key("gone-job"),
            job("gone-job", Some("gone")),
        )]));

        let view = cache.view("gone");
        assert!(view.pool.is_none());
        assert_eq!(view.job_key, Some(key("gone-job")));
        assert!(view.observed.job.is_some());
        assert!(cache.all_pool_names().contains("gone"));
    }
}
