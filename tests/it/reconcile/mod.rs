//! The reconcile core: rendering, planning, the executor loop and status.

mod executor;
mod plan;
mod render;
mod status;

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde_json::{Value, json};
use steward::nomad::Job;
use steward::reconcile::{
    Action, AllocHealth, ClientStatus, DesiredStatus, NodeStatus, Observed, ObservedAllocation,
    ObservedJob, ObservedNode, Plan,
};
use steward::spec::{Override, WorkerPool};

/// A GPU pool over two datacenters, like the shipped example: docker task with pinned
/// cores, one GPU, a service with an HTTP check.
pub(crate) const EXAMPLE_POOL: &str = r#"
apiVersion: steward/v1
kind: WorkerPool
metadata:
  name: face-match
spec:
  version: registry.example.com/face-match:1.4.2
  workers: {min: 2, max: 10}
  zones:
    - name: a
      datacenter: dc-a
    - name: b
      datacenter: dc-b
  rollout:
    minHealthyTime: 45s
    healthyDeadline: 8m
  template:
    Tasks:
      - Name: worker
        Driver: docker
        Config:
          ports: [http]
        Resources:
          Cores: 4
          MemoryMB: 16384
          Devices:
            - Name: nvidia/gpu
              Count: 1
        Services:
          - Name: face-match
            PortLabel: http
            Checks:
              - Type: http
                Path: /healthz
                Interval: 10s
                Timeout: 2s
    Networks:
      - DynamicPorts:
          - Label: http
            To: 8080
    RestartPolicy: {Attempts: 3, Interval: 5m, Delay: 15s, Mode: delay}
"#;

pub(crate) fn example_pool() -> WorkerPool {
    serde_saphyr::from_str(EXAMPLE_POOL).expect("the example pool parses")
}

pub(crate) fn three_zone_pool() -> WorkerPool {
    let mut pool = example_pool();
    pool.spec.zones.push(steward::spec::Zone {
        name: "c".to_owned(),
        datacenter: Some("dc-c".to_owned()),
        constraint: None,
    });
    pool
}

pub(crate) fn time(text: &str) -> Timestamp {
    text.parse().expect("valid RFC 3339 timestamp")
}

pub(crate) fn override_of(workers: u32, until: &str, force: bool) -> Override {
    Override {
        api_version: "steward/v1".to_owned(),
        kind: "Override".to_owned(),
        metadata: steward::spec::ObjectMeta {
            name: "face-match".to_owned(),
            ..Default::default()
        },
        spec: steward::spec::OverrideSpec {
            workers,
            reason: "incident 42".to_owned(),
            until: time(until),
            by: Some("alice".to_owned()),
            force,
        },
    }
}

/// Builds one ready, eligible node per datacenter.
pub(crate) fn nodes(datacenters: &[&str]) -> Vec<ObservedNode> {
    datacenters
        .iter()
        .map(|dc| ObservedNode {
            id: format!("node-{dc}"),
            datacenter: (*dc).to_owned(),
            meta: BTreeMap::new(),
            attributes: BTreeMap::new(),
            status: NodeStatus::Ready,
            eligible: true,
            draining: false,
        })
        .collect()
}

/// Adds the defaults Nomad fills into a job it returns, so plans compare against a
/// realistic live job.
pub(crate) fn with_nomad_defaults(job: &Job, job_modify_index: u64) -> Job {
    let mut value = serde_json::to_value(job).expect("job serializes");
    let object = value.as_object_mut().expect("job is an object");
    object.insert("Region".into(), json!("global"));
    object.insert("Priority".into(), json!(50));
    object.insert("Status".into(), json!("running"));
    object.insert("Version".into(), json!(3));
    object.insert("JobModifyIndex".into(), json!(job_modify_index));
    object.insert("ModifyIndex".into(), json!(job_modify_index + 7));
    object.insert(
        "Update".into(),
        json!({"Stagger": 30_000_000_000i64, "MaxParallel": 1}),
    );
    for group in object["TaskGroups"].as_array_mut().expect("groups") {
        let group = group.as_object_mut().expect("group is an object");
        group.insert(
            "EphemeralDisk".into(),
            json!({"Sticky": false, "SizeMB": 300, "Migrate": false}),
        );
        group.insert(
            "ReschedulePolicy".into(),
            json!({"Attempts": 0, "Unlimited": true}),
        );
        group["Update"]["Stagger"] = json!(30_000_000_000i64);
        group["Update"]["Canary"] = json!(0);
        for task in group["Tasks"].as_array_mut().expect("tasks") {
            task["KillTimeout"] = json!(5_000_000_000i64);
            task["LogConfig"] = json!({"MaxFiles": 10, "MaxFileSizeMB": 10});
            task["Vault"] = Value::Null;
            if let Some(services) = task.get_mut("Services").and_then(Value::as_array_mut) {
                for service in services {
                    for check in service["Checks"].as_array_mut().into_iter().flatten() {
                        check["Args"] = Value::Null;
                        check["Protocol"] = json!("");
                    }
                }
            }
        }
        for network in group
            .get_mut("Networks")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            for port in network["DynamicPorts"].as_array_mut().into_iter().flatten() {
                port["Value"] = json!(0);
            }
        }
    }
    serde_json::from_value(value).expect("job with defaults parses")
}

/// A small in-memory Nomad: applies plan actions to the observed state the way Nomad would,
/// and marks every allocation running and healthy when `settle` is called.
pub(crate) struct FakeCluster {
    pub(crate) observed: Observed,
    next_index: u64,
}

impl FakeCluster {
    pub(crate) fn new(datacenters: &[&str]) -> Self {
        Self {
            observed: Observed {
                nodes: nodes(datacenters).into(),
                ..Observed::default()
            },
            next_index: 100,
        }
    }

    pub(crate) fn apply(&mut self, plan: &Plan) {
        for action in &plan.actions {
            self.next_index += 1;
            match action {
                Action::CreateJob(job) => {
                    self.observed.job =
                        Some(ObservedJob::new(with_nomad_defaults(job, self.next_index)));
                }
                Action::RegisterJob {
                    job,
                    preserve_counts,
                    ..
                } => {
                    let live = self.observed.job.as_ref().expect("register needs a job");
                    let mut job = job.clone();
                    if *preserve_counts {
                        for group in job.task_groups.iter_mut().flatten() {
                            if let Some(count) = live.group_count(&group.name) {
                                group.count = Some(i64::from(count));
                            }
                        }
                    }
                    self.observed.job =
                        Some(ObservedJob::new(with_nomad_defaults(&job, self.next_index)));
                }
                Action::Scale { group, count, .. } => {
                    let live = self.observed.job.as_mut().expect("scale needs a job");
                    for g in live.job.task_groups.iter_mut().flatten() {
                        if &g.name == group {
                            g.count = Some(i64::from(*count));
                        }
                    }
                    live.job_modify_index = self.next_index;
                    live.job.job_modify_index = Some(self.next_index);
                }
                Action::StopJob => {
                    if let Some(live) = self.observed.job.as_mut() {
                        live.job.stop = Some(true);
                    }
                }
            }
        }
    }

    /// Runs and marks healthy exactly the job's desired count per group.
    pub(crate) fn settle(&mut self) {
        let Some(live) = &self.observed.job else {
            return;
        };
        let mut allocations = Vec::new();
        for group in live.job.groups() {
            for index in 0..group.count.unwrap_or(0) {
                allocations.push(running_alloc(&group.name, index));
            }
        }
        self.observed.allocations = allocations;
    }

    pub(crate) fn set_count_by_hand(&mut self, group: &str, count: i64) {
        let live = self.observed.job.as_mut().expect("job exists");
        for g in live.job.task_groups.iter_mut().flatten() {
            if g.name == group {
                g.count = Some(count);
            }
        }
        live.job_modify_index += 1;
    }

    pub(crate) fn counts(&self) -> Vec<u32> {
        let live = self.observed.job.as_ref().expect("job exists");
        live.job
            .groups()
            .iter()
            .map(|g| u32::try_from(g.count.unwrap_or(0)).expect("count is positive"))
            .collect()
    }
}

pub(crate) fn running_alloc(group: &str, index: i64) -> ObservedAllocation {
    ObservedAllocation {
        id: format!("{group}-{index}"),
        task_group: group.to_owned(),
        node_id: format!("node-{group}"),
        job_version: 0,
        client_status: ClientStatus::Running,
        desired_status: DesiredStatus::Run,
        health: AllocHealth::Healthy,
        canary: false,
    }
}
