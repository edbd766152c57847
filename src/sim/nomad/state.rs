//! The emulated cluster's state store: tables of nodes, jobs, allocations, evaluations and
//! deployments, with the per-table Raft-style indexes that blocking queries wait on.
//!
//! Every write runs inside one transaction ([`Cluster::begin`]) that takes the next index.
//! Objects changed by it get that index as their `ModifyIndex`, and each table it touched
//! moves to it. Tables are indexed by job and by node so that list reads stay cheap with
//! 100,000 allocations.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::events::{EventType, Mark, Subject};
use crate::nomad::model::Job;

/// `(namespace, job ID)`: the key of a job.
pub type JobKey = (String, String);

/// A table whose index blocking queries wait on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    Jobs,
    JobSummary,
    Allocs,
    Nodes,
    Evals,
    Deployments,
}

impl Table {
    /// Every table, in the order of [`TableIndexes::get`].
    pub const ALL: [Table; 6] = [
        Table::Jobs,
        Table::JobSummary,
        Table::Allocs,
        Table::Nodes,
        Table::Evals,
        Table::Deployments,
    ];
}

/// The last index that wrote each table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableIndexes {
    pub jobs: u64,
    pub job_summary: u64,
    pub allocs: u64,
    pub nodes: u64,
    pub evals: u64,
    pub deployments: u64,
}

impl TableIndexes {
    /// Returns the index of one table.
    pub fn get(&self, table: Table) -> u64 {
        match table {
            Table::Jobs => self.jobs,
            Table::JobSummary => self.job_summary,
            Table::Allocs => self.allocs,
            Table::Nodes => self.nodes,
            Table::Evals => self.evals,
            Table::Deployments => self.deployments,
        }
    }

    fn set(&mut self, table: Table, index: u64) {
        match table {
            Table::Jobs => self.jobs = index,
            Table::JobSummary => self.job_summary = index,
            Table::Allocs => self.allocs = index,
            Table::Nodes => self.nodes = index,
            Table::Evals => self.evals = index,
            Table::Deployments => self.deployments = index,
        }
    }
}

/// Resources counted against a node's capacity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// CPU in MHz.
    pub cpu_mhz: i64,
    pub memory_mb: i64,
    /// Whole reserved cores.
    pub cores: i64,
    /// Devices by name are counted together; the emulated nodes only have `nvidia/gpu`.
    pub gpus: i64,
}

impl Usage {
    fn add(&mut self, other: Usage) {
        self.cpu_mhz += other.cpu_mhz;
        self.memory_mb += other.memory_mb;
        self.cores += other.cores;
        self.gpus += other.gpus;
    }

    fn sub(&mut self, other: Usage) {
        self.cpu_mhz -= other.cpu_mhz;
        self.memory_mb -= other.memory_mb;
        self.cores -= other.cores;
        self.gpus -= other.gpus;
    }
}

/// A node's drain in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrainState {
    /// `DrainSpec.Deadline` as sent, in nanoseconds (negative = force now, 0 = none).
    pub deadline_ns: i64,
    pub ignore_system_jobs: bool,
    /// When remaining allocations are stopped at once; `None` when there is no deadline.
    pub force_deadline_ns: Option<i64>,
    pub started_at_ns: i64,
}

/// `Node.LastDrain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastDrain {
    /// `draining`, `complete` or `canceled`.
    pub status: String,
    pub started_at_ns: i64,
    pub updated_at_ns: i64,
    pub meta: BTreeMap<String, String>,
}

/// An emulated client node.
#[derive(Debug, Clone)]
pub struct SimNode {
    pub id: String,
    pub name: String,
    pub datacenter: String,
    pub node_class: String,
    pub node_pool: String,
    pub meta: BTreeMap<String, String>,
    pub attributes: BTreeMap<String, String>,
    pub capacity: Usage,
    pub used: Usage,
    /// `ready` or `down`.
    pub status: String,
    /// `eligible` or `ineligible`.
    pub eligibility: String,
    pub drain: Option<DrainState>,
    pub last_drain: Option<LastDrain>,
    /// Images already pulled on this node.
    pub image_cache: HashSet<String>,
    pub create_index: u64,
    pub modify_index: u64,
    /// Unix seconds.
    pub status_updated_at: i64,
}

impl SimNode {
    /// Reports whether the scheduler may place new allocations here.
    pub fn schedulable(&self) -> bool {
        self.status == "ready" && self.eligibility == "eligible" && self.drain.is_none()
    }
}

/// The simulated behaviour of an image, set through `PUT /_sim/images`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageBehaviour {
    /// False makes allocations running this image fail their health check.
    pub healthy: bool,
    /// Simulated seconds a pull takes on a node without the image.
    pub pull_seconds: Option<f64>,
    /// Size in MB; without `pull_seconds` the pull takes `size / 20 MB/s`.
    pub size_mb: Option<f64>,
    /// The error a pull fails with, such as `unauthorized`.
    pub pull_error: Option<String>,
}

/// Pull time of an image without configured behaviour, in simulated seconds.
pub const DEFAULT_PULL_SECONDS: f64 = 20.0;
/// Download rate used to turn an image size into a pull time, in MB per simulated second.
pub const PULL_MB_PER_SECOND: f64 = 20.0;
/// Start time of a task whose image is cached, in simulated seconds.
pub const CACHED_START_SECONDS: f64 = 1.0;

impl ImageBehaviour {
    /// Returns the pull time in simulated seconds on a node without the image.
    pub fn pull_seconds(&self) -> f64 {
        match (self.pull_seconds, self.size_mb) {
            (Some(seconds), _) => seconds,
            (None, Some(size)) => size / PULL_MB_PER_SECOND,
            (None, None) => DEFAULT_PULL_SECONDS,
        }
    }
}

/// One task event (`TaskEvent`), shared by every task of the allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskEvent {
    /// `Received`, `Driver`, `Started`, `Driver Failure`, `Terminated`, `Killing`, `Killed`…
    pub kind: String,
    pub time_ns: i64,
    pub message: String,
    /// Set on `Driver Failure` events (an image pull error).
    pub driver_error: String,
    pub fails_task: bool,
}

/// `AllocDeploymentStatus`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocHealth {
    /// `None` until health is known.
    pub healthy: Option<bool>,
    pub timestamp_ns: i64,
    pub canary: bool,
    pub modify_index: u64,
}

/// Client-side state of an allocation.
///
/// ```text
/// pending --(image pulled)--> running --(batch work done)--> complete
///    |                          |  \--(node down)--> lost
///    \--(pull error)--> failed  \--(unhealthy image)--> failed
/// any non-terminal --(stopped)--> complete
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientStatus {
    Pending,
    Running,
    Complete,
    Failed,
    Lost,
}

impl ClientStatus {
    /// Returns Nomad's name for the status.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientStatus::Pending => "pending",
            ClientStatus::Running => "running",
            ClientStatus::Complete => "complete",
            ClientStatus::Failed => "failed",
            ClientStatus::Lost => "lost",
        }
    }

    /// Complete, failed and lost are terminal.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            ClientStatus::Complete | ClientStatus::Failed | ClientStatus::Lost
        )
    }
}

/// An allocation.
#[derive(Debug, Clone)]
pub struct SimAlloc {
    pub id: String,
    pub eval_id: String,
    pub name: String,
    pub namespace: String,
    pub node_id: String,
    pub node_name: String,
    pub job_id: String,
    pub job_type: String,
    pub job_version: u64,
    pub task_group: String,
    /// `run`, `stop` or `evict`.
    pub desired_status: String,
    pub desired_description: String,
    pub client_status: ClientStatus,
    pub client_description: String,
    pub migrate: Option<bool>,
    pub task_names: Vec<String>,
    pub events: Vec<TaskEvent>,
    pub deployment_id: Option<String>,
    pub deployment_status: Option<AllocHealth>,
    pub previous_allocation: String,
    pub next_allocation: String,
    pub create_index: u64,
    pub modify_index: u64,
    pub create_time_ns: i64,
    pub modify_time_ns: i64,
    pub resources: Usage,
    /// Hash of the group's spec without its count; equal hashes need no replacement.
    pub fingerprint: u64,
    pub images: Vec<String>,
    /// When the image pull finishes and the tasks start.
    pub start_at_ns: i64,
    pub pull_error: Option<String>,
    pub running_since_ns: Option<i64>,
    /// The `n` of the name `<job>.<group>[<n>]`.
    pub name_index: u32,
    /// How many failed allocations came before this one in its chain of replacements.
    pub reschedule_attempts: u32,
    /// The job as it was when the allocation was placed (served as `Allocation.Job`).
    pub job: Arc<Job>,
}

impl SimAlloc {
    /// Reports whether the allocation is meant to run and is not yet terminal.
    pub fn is_live(&self) -> bool {
        self.desired_status == "run" && !self.client_status.is_terminal()
    }

    /// Reports whether health has been reported as good.
    pub fn is_healthy(&self) -> bool {
        self.deployment_status
            .as_ref()
            .and_then(|status| status.healthy)
            == Some(true)
    }

    /// Reports whether this is an unpromoted canary.
    pub fn is_canary(&self) -> bool {
        self.deployment_status
            .as_ref()
            .is_some_and(|status| status.canary)
    }
}

/// The reasons a task group could not be placed (`AllocMetric` in `FailedTGAllocs`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlacementFailure {
    pub nodes_evaluated: u64,
    pub nodes_filtered: u64,
    pub nodes_exhausted: u64,
    pub nodes_in_pool: u64,
    pub nodes_available: BTreeMap<String, u64>,
    pub constraint_filtered: BTreeMap<String, u64>,
    pub dimension_exhausted: BTreeMap<String, u64>,
    /// Failures beyond the first one of the group.
    pub coalesced_failures: u64,
}

/// An evaluation.
#[derive(Debug, Clone)]
pub struct SimEval {
    pub id: String,
    pub namespace: String,
    pub priority: i64,
    pub job_type: String,
    pub triggered_by: String,
    pub job_id: String,
    pub job_modify_index: u64,
    pub node_id: String,
    pub deployment_id: String,
    /// `pending`, `blocked`, `complete`, `failed` or `canceled`.
    pub status: String,
    pub status_description: String,
    pub previous_eval: String,
    pub blocked_eval: String,
    pub failed_tg_allocs: BTreeMap<String, PlacementFailure>,
    pub queued_allocations: BTreeMap<String, u64>,
    pub create_index: u64,
    pub modify_index: u64,
    pub create_time_ns: i64,
    pub modify_time_ns: i64,
}

/// `DeploymentState` of one task group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupDeployment {
    pub auto_revert: bool,
    pub auto_promote: bool,
    pub progress_deadline_ns: i64,
    pub require_progress_by_ns: Option<i64>,
    pub promoted: bool,
    pub placed_canaries: Vec<String>,
    pub desired_canaries: u64,
    pub desired_total: u64,
    pub placed_allocs: u64,
    pub healthy_allocs: u64,
    pub unhealthy_allocs: u64,
    pub max_parallel: u64,
    pub min_healthy_time_ns: i64,
    pub healthy_deadline_ns: i64,
}

/// Deployment status.
///
/// ```text
/// running <--> paused
/// running --(all groups healthy, canaries promoted)--> successful
/// running|paused --(unhealthy alloc, progress deadline, /fail)--> failed
/// running|paused --(newer job version)--> cancelled
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeploymentStatus {
    Running,
    Paused,
    Successful,
    Failed,
    Cancelled,
}

impl DeploymentStatus {
    /// Returns Nomad's name for the status.
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentStatus::Running => "running",
            DeploymentStatus::Paused => "paused",
            DeploymentStatus::Successful => "successful",
            DeploymentStatus::Failed => "failed",
            DeploymentStatus::Cancelled => "cancelled",
        }
    }

    /// Running and paused deployments are active; the others are terminal.
    pub fn is_active(self) -> bool {
        matches!(self, DeploymentStatus::Running | DeploymentStatus::Paused)
    }
}

/// A deployment.
#[derive(Debug, Clone)]
pub struct SimDeployment {
    pub id: String,
    pub namespace: String,
    pub job_id: String,
    pub job_version: u64,
    pub job_modify_index: u64,
    pub job_create_index: u64,
    pub task_groups: BTreeMap<String, GroupDeployment>,
    pub status: DeploymentStatus,
    pub status_description: String,
    pub create_index: u64,
    pub modify_index: u64,
    pub create_time_ns: i64,
    pub modify_time_ns: i64,
}

/// A scaling event recorded by `POST /v1/job/:id/scale`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalingEvent {
    pub time_ns: i64,
    pub count: Option<i64>,
    pub previous_count: i64,
    pub message: String,
    pub error: bool,
    pub eval_id: Option<String>,
    pub create_index: u64,
}

/// A job with its tracked versions.
#[derive(Debug, Clone)]
pub struct JobEntry {
    /// The current version, with server fields (`Version`, indexes, `Status`) filled in.
    pub job: Arc<Job>,
    /// Tracked versions, newest first, at most [`TRACKED_VERSIONS`].
    pub versions: Vec<Arc<Job>>,
    pub scaling_events: BTreeMap<String, Vec<ScalingEvent>>,
    /// Index of this job's `JobSummary`.
    pub summary_modify_index: u64,
    /// The job's last encoded `JobListStub` (see `render::job_stub_json`).
    pub stub_cache: StubCache,
}

/// A job's `JobListStub` encoded as JSON, with the inputs it was built from.
///
/// The stub depends on the job version (`job`, held here so that its pointer cannot be
/// reused by another job version), on the allocations (every allocation insert or update
/// moves `summary_modify_index`) and on the job's blocked evaluation (its `ModifyIndex`
/// moves on every change to it).
#[derive(Debug)]
pub struct CachedStub {
    pub job: Arc<Job>,
    pub summary_modify_index: u64,
    pub blocked_eval_index: Option<u64>,
    pub json: Arc<str>,
}

/// Slot for a [`CachedStub`]. Reads fill it through `&Cluster`, so it has its own lock,
/// which is never contended because the cluster lock is held around it. A clone starts
/// empty.
#[derive(Debug, Default)]
pub struct StubCache(pub Mutex<Option<CachedStub>>);

impl Clone for StubCache {
    fn clone(&self) -> Self {
        Self::default()
    }
}

/// Something to look at again when its simulated time comes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Timer {
    /// An allocation's image pull finished, its health is due, or its batch work is done.
    Alloc(String),
    /// A job has a delayed reschedule due.
    Job(JobKey),
}

/// How many job versions Nomad keeps (`JobTrackedVersions`).
pub const TRACKED_VERSIONS: usize = 6;

/// The whole emulated cluster. Guarded by one mutex; every operation is short.
#[derive(Debug)]
pub struct Cluster {
    pub raft_index: u64,
    txn_index: u64,
    /// Whether [`Cluster::begin`] opened a transaction that [`Cluster::commit`] has not closed.
    txn_open: bool,
    pub tables: TableIndexes,
    pub nodes: BTreeMap<String, SimNode>,
    pub jobs: BTreeMap<JobKey, JobEntry>,
    pub allocs: BTreeMap<String, SimAlloc>,
    pub allocs_by_job: HashMap<JobKey, Vec<String>>,
    pub allocs_by_node: HashMap<String, BTreeSet<String>>,
    pub evals: BTreeMap<String, SimEval>,
    pub evals_by_job: HashMap<JobKey, Vec<String>>,
    pub deployments: BTreeMap<String, SimDeployment>,
    pub deployments_by_job: HashMap<JobKey, Vec<String>>,
    pub images: HashMap<String, ImageBehaviour>,
    /// Evaluations waiting for the scheduler, oldest first.
    pub pending_evals: VecDeque<String>,
    /// Jobs whose allocations changed and must be reconciled on the next tick.
    pub dirty_jobs: BTreeSet<JobKey>,
    /// Jobs with a blocked evaluation, retried when capacity may have appeared.
    pub blocked_jobs: BTreeSet<JobKey>,
    /// Allocations and jobs to look at again at a simulated time (Unix ns).
    pub timers: std::collections::BinaryHeap<std::cmp::Reverse<(i64, Timer)>>,
    /// End of the outage (simulated Unix ns) during which `/v1/` returns 500 "No cluster leader".
    pub unavailable_until_ns: i64,
    pub rng: StdRng,
    /// State changes since the last publish, moved to the event stream at the end of each
    /// write (see `EventHub::publish`).
    pub event_marks: Vec<Mark>,
}

impl Cluster {
    /// Creates an empty cluster whose IDs come from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            raft_index: 0,
            txn_index: 0,
            txn_open: false,
            tables: TableIndexes::default(),
            nodes: BTreeMap::new(),
            jobs: BTreeMap::new(),
            allocs: BTreeMap::new(),
            allocs_by_job: HashMap::new(),
            allocs_by_node: HashMap::new(),
            evals: BTreeMap::new(),
            evals_by_job: HashMap::new(),
            deployments: BTreeMap::new(),
            deployments_by_job: HashMap::new(),
            images: HashMap::new(),
            pending_evals: VecDeque::new(),
            dirty_jobs: BTreeSet::new(),
            blocked_jobs: BTreeSet::new(),
            timers: std::collections::BinaryHeap::new(),
            unavailable_until_ns: 0,
            rng: StdRng::seed_from_u64(seed),
            event_marks: Vec::new(),
        }
    }

    /// Opens a write transaction, the emulator's Raft entry: every table written until the
    /// next `begin` or [`Cluster::commit`] gets one index, taken at the first write.
    pub fn begin(&mut self) {
        self.txn_index = self.raft_index + 1;
        self.txn_open = true;
    }

    /// Closes the open transaction, so a later write outside one takes a new index.
    pub fn commit(&mut self) {
        self.txn_open = false;
    }

    /// Marks a table written and returns the index of the write: the open transaction's
    /// index, or a new index of its own when no transaction is open.
    pub fn touch(&mut self, table: Table) -> u64 {
        if !self.txn_open {
            self.txn_index = self.raft_index + 1;
        }
        self.raft_index = self.txn_index;
        self.tables.set(table, self.txn_index);
        self.txn_index
    }

    /// Records a state change for the event stream, at the index of the write that made it.
    pub fn mark_event(&mut self, index: u64, kind: EventType, subject: Subject) {
        self.event_marks.push(Mark {
            index,
            kind,
            subject,
        });
    }

    /// Generates a UUID from the seeded generator, so runs with one seed repeat.
    pub fn new_id(&mut self) -> String {
        let bytes: [u8; 16] = self.rng.random();
        uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .to_string()
    }

    /// Schedules a timer at a simulated time.
    pub fn add_timer(&mut self, due_ns: i64, timer: Timer) {
        self.timers.push(std::cmp::Reverse((due_ns, timer)));
    }

    /// Inserts an allocation and counts its resources against its node.
    pub fn insert_alloc(&mut self, alloc: SimAlloc) {
        let key = (alloc.namespace.clone(), alloc.job_id.clone());
        if alloc.is_live()
            && let Some(node) = self.nodes.get_mut(&alloc.node_id)
        {
            node.used.add(alloc.resources);
        }
        self.allocs_by_job
            .entry(key.clone())
            .or_default()
            .push(alloc.id.clone());
        self.allocs_by_node
            .entry(alloc.node_id.clone())
            .or_default()
            .insert(alloc.id.clone());
        let id = alloc.id.clone();
        self.allocs.insert(id.clone(), alloc);
        let index = self.touch(Table::Allocs);
        self.mark_event(index, EventType::AllocationCreated, Subject::Allocation(id));
        self.touch_summary(&key);
    }

    /// Applies `change` to an allocation, keeps node usage in step with its liveness, and
    /// marks its job for reconciling. Returns false when the allocation does not exist.
    pub fn update_alloc(
        &mut self,
        id: &str,
        now_ns: i64,
        change: impl FnOnce(&mut SimAlloc),
    ) -> bool {
        self.update_alloc_as(EventType::AllocationUpdated, id, now_ns, change)
    }

    /// Like [`Cluster::update_alloc`], publishing the change as an event of type `kind`.
    pub fn update_alloc_as(
        &mut self,
        kind: EventType,
        id: &str,
        now_ns: i64,
        change: impl FnOnce(&mut SimAlloc),
    ) -> bool {
        let index = self.touch(Table::Allocs);
        let Some(alloc) = self.allocs.get_mut(id) else {
            return false;
        };
        let was_live = alloc.is_live();
        change(alloc);
        alloc.modify_index = index;
        alloc.modify_time_ns = now_ns;
        let is_live = alloc.is_live();
        let resources = alloc.resources;
        let node_id = alloc.node_id.clone();
        let key = (alloc.namespace.clone(), alloc.job_id.clone());
        self.mark_event(index, kind, Subject::Allocation(id.to_owned()));

        if was_live != is_live
            && let Some(node) = self.nodes.get_mut(&node_id)
        {
            if is_live {
                node.used.add(resources);
            } else {
                node.used.sub(resources);
            }
        }
        self.touch_summary(&key);
        self.dirty_jobs.insert(key);
        true
    }

    /// Stops an allocation: desired `stop`, client `complete` unless already terminal.
    pub fn stop_alloc(&mut self, id: &str, now_ns: i64, description: &str) {
        let description = description.to_owned();
        self.update_alloc_as(
            EventType::AllocationUpdateDesiredStatus,
            id,
            now_ns,
            |alloc| {
                alloc.desired_status = "stop".to_owned();
                alloc.desired_description = description;
                if !alloc.client_status.is_terminal() {
                    alloc.client_status = ClientStatus::Complete;
                    alloc.client_description = "All tasks have completed".to_owned();
                    alloc.events.push(TaskEvent {
                        kind: "Killed".to_owned(),
                        time_ns: now_ns,
                        message: "Task successfully killed".to_owned(),
                        driver_error: String::new(),
                        fails_task: false,
                    });
                }
            },
        );
    }

    /// Moves the summary index of a job (and the `job_summary` table).
    pub fn touch_summary(&mut self, key: &JobKey) {
        let index = self.touch(Table::JobSummary);
        if let Some(entry) = self.jobs.get_mut(key) {
            entry.summary_modify_index = index;
        }
    }

    /// Returns the allocations of a job, in placement order.
    pub fn job_allocs(&self, key: &JobKey) -> impl Iterator<Item = &SimAlloc> {
        self.allocs_by_job
            .get(key)
            .into_iter()
            .flatten()
            .filter_map(|id| self.allocs.get(id))
    }

    /// Returns the allocations on a node, ordered by ID.
    pub fn node_allocs(&self, node_id: &str) -> impl Iterator<Item = &SimAlloc> {
        self.allocs_by_node
            .get(node_id)
            .into_iter()
            .flatten()
            .filter_map(|id| self.allocs.get(id))
    }

    /// Returns the newest deployment of a job.
    pub fn latest_deployment(&self, key: &JobKey) -> Option<&SimDeployment> {
        self.deployments_by_job
            .get(key)?
            .iter()
            .filter_map(|id| self.deployments.get(id))
            .max_by_key(|deployment| deployment.create_index)
    }

    /// Returns the active deployment of a job, if any.
    pub fn active_deployment_id(&self, key: &JobKey) -> Option<String> {
        self.latest_deployment(key)
            .filter(|deployment| deployment.status.is_active())
            .map(|deployment| deployment.id.clone())
    }

    /// Creates an evaluation and queues it for the scheduler. Returns its ID and index.
    pub fn create_eval(
        &mut self,
        job: &Job,
        triggered_by: &str,
        node_id: &str,
        deployment_id: &str,
        now_ns: i64,
    ) -> (String, u64) {
        let id = self.new_id();
        let index = self.touch(Table::Evals);
        self.mark_event(
            index,
            EventType::EvaluationUpdated,
            Subject::Evaluation(id.clone()),
        );
        let eval = SimEval {
            id: id.clone(),
            namespace: job.namespace_or_default().to_owned(),
            priority: job.priority.unwrap_or(50),
            job_type: job.r#type.clone().unwrap_or_else(|| "service".to_owned()),
            triggered_by: triggered_by.to_owned(),
            job_id: job.id.clone(),
            job_modify_index: job.job_modify_index.unwrap_or(0),
            node_id: node_id.to_owned(),
            deployment_id: deployment_id.to_owned(),
            status: "pending".to_owned(),
            status_description: String::new(),
            previous_eval: String::new(),
            blocked_eval: String::new(),
            failed_tg_allocs: BTreeMap::new(),
            queued_allocations: BTreeMap::new(),
            create_index: index,
            modify_index: index,
            create_time_ns: now_ns,
            modify_time_ns: now_ns,
        };
        self.evals_by_job
            .entry((eval.namespace.clone(), eval.job_id.clone()))
            .or_default()
            .push(id.clone());
        self.evals.insert(id.clone(), eval);
        self.pending_evals.push_back(id.clone());
        (id, index)
    }

    /// Queues every job that has a blocked evaluation, because capacity may have appeared.
    pub fn unblock_evals(&mut self) {
        let blocked = self.blocked_jobs.iter().cloned().collect::<Vec<_>>();
        self.dirty_jobs.extend(blocked);
    }
}
