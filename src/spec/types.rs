//! The Rust types of the objects, with their defaults. Field names are the YAML names
//! (camelCase); unknown fields are rejected.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Duration;
use crate::nomad::TaskGroup;

/// The only `apiVersion` this version of Steward reads and writes.
pub const API_VERSION: &str = "steward/v1";

/// `kind` of a [`WorkerPool`].
pub const KIND_WORKER_POOL: &str = "WorkerPool";

/// `kind` of an [`Override`].
pub const KIND_OVERRIDE: &str = "Override";

/// Name, labels and annotations of an object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectMeta {
    /// A DNS label: at most 63 characters of `a-z`, `0-9` and `-`, starting and ending with
    /// a letter or digit.
    pub name: String,
    /// Free-form string pairs for selecting and grouping objects, such as `team: vision`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Free-form string pairs for notes that tools and people read, such as an owner's
    /// address.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A pool of identical workers that Steward keeps running on Nomad.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkerPool {
    /// Always `steward/v1`.
    #[schemars(extend("const" = "steward/v1"))]
    pub api_version: String,
    /// Always `WorkerPool`.
    #[schemars(extend("const" = "WorkerPool"))]
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: WorkerPoolSpec,
}

/// What the operator declared for a pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkerPoolSpec {
    /// The Nomad job Steward owns for this pool.
    #[serde(default)]
    pub job: JobRef,
    /// The Nomad task group for one worker, in Nomad's JSON API form. Steward fills in
    /// `Name`, `Count`, the zone constraint, the image and the `Update` block.
    pub template: TaskGroup,
    /// The image (docker-style drivers) or artifact version that workers must run. Changing
    /// it starts a golden-first rollout.
    pub version: String,
    /// Bounds on the worker count, whatever the autoscaler or an override decides.
    pub workers: WorkerBounds,
    /// Availability zones the workers are spread over, in order: worker i goes to zone
    /// i mod zones.
    pub zones: Vec<Zone>,
    /// How workers are spread over the zones.
    #[serde(default)]
    pub split: Split,
    /// Predictive sizing. Without it the pool runs at `workers.min`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<Autoscaling>,
    /// How a new `version` is rolled out.
    #[serde(default)]
    pub rollout: Rollout,
    /// Stop acting on this pool but keep reporting its status.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
}

/// The Nomad job of a pool.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobRef {
    /// Job ID; defaults to the pool's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Nomad namespace; defaults to `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Lower and upper bound on the number of workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkerBounds {
    /// Minimum worker count, whatever the autoscaler predicts, unless an override sets
    /// `force: true`. At most `max`.
    pub min: u32,
    /// Maximum worker count, unless an override sets `force: true`.
    pub max: u32,
}

/// One availability zone and how its Nomad nodes are selected: by `datacenter`, or by a node
/// attribute or meta `constraint`. Exactly one of the two is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Zone {
    /// The zone's name; also the name of its task group in the Nomad job.
    pub name: String,
    /// The Nomad datacenter whose nodes form this zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacenter: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraint: Option<ZoneConstraint>,
}

/// A node attribute or meta key and the value that selects a zone's nodes, such as
/// `attribute: ${meta.zone}`, `value: a`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ZoneConstraint {
    /// A Nomad interpolation such as `${meta.zone}` or `${attr.platform.aws.placement.availability-zone}`.
    pub attribute: String,
    /// The attribute's value on this zone's nodes.
    pub value: String,
}

/// How workers are split over zones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Split {
    /// `odd-even` (the only strategy): worker i goes to zone i mod zones.
    #[serde(default)]
    pub strategy: SplitStrategy,
    /// Move a zone's share to the other zones while it has no eligible node, and back when it
    /// recovers.
    #[serde(default = "default_true")]
    pub zone_failover: bool,
}

impl Default for Split {
    fn default() -> Self {
        Self {
            strategy: SplitStrategy::OddEven,
            zone_failover: true,
        }
    }
}

/// Worker-to-zone assignment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SplitStrategy {
    /// Worker i goes to zone i mod zones, so with two zones zone 0 gets ceil(n/2).
    #[default]
    OddEven,
}

/// Predictive sizing of a pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Autoscaling {
    /// How often the autoscaler runs; at least one minute.
    #[serde(default = "default_interval")]
    pub interval: Duration,
    /// Where the request rate comes from.
    pub metric: MetricSource,
    /// `linear-slope` (default), `seasonal` or `reactive`.
    #[serde(default)]
    pub predictor: Predictor,
    /// How much history the predictor reads.
    #[serde(default = "default_lookback")]
    pub lookback: Duration,
    /// Requests per second one worker serves within its latency target; greater than 0.
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub capacity_per_worker: f64,
    /// Extra capacity on top of the prediction, as a fraction (0.2 = 20 %); 0 to 10.
    #[serde(default = "default_headroom")]
    #[schemars(range(min = 0, max = 10))]
    pub headroom: f64,
    /// How long a new worker takes to serve traffic (image pull, model load).
    #[serde(default = "default_startup_time")]
    pub startup_time: Duration,
    /// How fast the pool may shrink.
    #[serde(default)]
    pub scale_down: ScaleDown,
    /// Scaling up between cycles when live traffic exceeds capacity.
    #[serde(default)]
    pub emergency: Emergency,
    /// Minimum worker count to run after `fallbackAfter` failed metric reads in a row. A failing
    /// source never lowers the count, so a pool that runs more keeps its count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<u32>,
    /// Consecutive failed metric reads before `fallback` applies.
    #[serde(default = "default_fallback_after")]
    pub fallback_after: u32,
    /// `act` (default) resizes the pool; `forecast-only` records every decision without
    /// acting.
    #[serde(default)]
    pub mode: AutoscalingMode,
}

/// Whether the autoscaler acts on its decisions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AutoscalingMode {
    /// Resize the pool.
    #[default]
    Act,
    /// Record each decision in status without resizing the pool.
    ForecastOnly,
}

/// A source of the request rate, in requests per second.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "source", rename_all = "kebab-case", deny_unknown_fields)]
pub enum MetricSource {
    /// A PromQL query that returns one series of requests per second, read with
    /// `/api/v1/query_range` and `/api/v1/query`.
    #[serde(rename_all = "camelCase")]
    Prometheus {
        /// Base URL such as `http://prometheus.service.consul:9090`.
        address: String,
        /// For example `sum(rate(api_requests_total{service="face-match"}[5m]))`.
        query: String,
    },
    /// A RabbitMQ queue's publish rate, read from the management API.
    #[serde(rename_all = "camelCase")]
    Rabbitmq {
        /// Management API base URL such as `http://rabbitmq:15672`.
        address: String,
        #[serde(default = "default_vhost")]
        vhost: String,
        queue: String,
        /// User name; the password is read from the environment variable `passwordEnv`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        username: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password_env: Option<String>,
    },
    /// A CSV file `timestamp,requests` with one row per minute, replayed.
    #[serde(rename_all = "camelCase")]
    Csv { path: String },
}

/// The traffic predictor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Predictor {
    /// Least-squares line over the recent window, extrapolated to the end of the next cycle.
    #[default]
    LinearSlope,
    /// The same time one day and one week earlier, scaled by the recent level.
    Seasonal,
    /// The current rate only.
    Reactive,
}

/// Limits on scaling down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScaleDown {
    /// At most this many workers removed per cycle.
    #[serde(default = "default_max_step")]
    pub max_step: u32,
    /// A scale-down waits this long; the highest recommendation inside the window wins. At
    /// least `interval`.
    #[serde(default = "default_stabilization")]
    pub stabilization: Duration,
}

impl Default for ScaleDown {
    fn default() -> Self {
        Self {
            max_step: default_max_step(),
            stabilization: default_stabilization(),
        }
    }
}

/// Scaling up between cycles when live traffic exceeds the capacity of ready workers, or will
/// within `startupTime` at its recent slope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Emergency {
    /// Check live traffic between cycles and scale up at once when it exceeds the ready
    /// workers' capacity, now or by the time new workers would be ready.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// How often live traffic is checked between cycles.
    #[serde(default = "default_emergency_check")]
    pub check_interval: Duration,
}

impl Default for Emergency {
    fn default() -> Self {
        Self {
            enabled: true,
            check_interval: default_emergency_check(),
        }
    }
}

/// How a new version is rolled out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rollout {
    /// `golden-first` (the only strategy).
    #[serde(default)]
    pub strategy: RolloutStrategy,
    /// Pulling the image onto every node before any worker changes.
    #[serde(default)]
    pub prefetch: Prefetch,
    /// How long the golden worker must stay healthy before the rest are replaced.
    #[serde(default = "default_golden_soak")]
    pub golden_soak: Duration,
    /// How long a new worker may take to become healthy before the rollout fails.
    #[serde(default = "default_healthy_deadline")]
    pub healthy_deadline: Duration,
    /// How long a new worker must be healthy before it counts as healthy.
    #[serde(default = "default_min_healthy_time")]
    pub min_healthy_time: Duration,
    /// Extra workers during the rollout so capacity never drops below desired.
    #[serde(default = "default_surge")]
    pub surge: u32,
    /// Restore the previous version when the rollout fails.
    #[serde(default = "default_true")]
    pub auto_rollback: bool,
    /// A metric that must hold while the golden worker soaks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<Analysis>,
}

impl Default for Rollout {
    fn default() -> Self {
        Self {
            strategy: RolloutStrategy::GoldenFirst,
            prefetch: Prefetch::default(),
            golden_soak: default_golden_soak(),
            healthy_deadline: default_healthy_deadline(),
            min_healthy_time: default_min_healthy_time(),
            surge: default_surge(),
            auto_rollback: true,
            analysis: None,
        }
    }
}

/// Rollout strategy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RolloutStrategy {
    /// Prefetch, one golden worker, soak, then the rest one at a time.
    #[default]
    GoldenFirst,
}

/// Pulling the new image onto every node of the pool before any worker changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Prefetch {
    /// Pull the new image onto every node first, with a `sysbatch` job.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// The prefetch fails when the image is not on every node by then.
    #[serde(default = "default_prefetch_timeout")]
    pub timeout: Duration,
}

impl Default for Prefetch {
    fn default() -> Self {
        Self {
            enabled: true,
            timeout: default_prefetch_timeout(),
        }
    }
}

/// A Prometheus query that must stay on the right side of a threshold during the soak.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Analysis {
    /// Prometheus base URL.
    pub address: String,
    /// A PromQL query returning one number, such as the golden worker's error ratio.
    pub query: String,
    /// The value must stay below (`max`) or above (`min`) this threshold.
    pub threshold: f64,
    /// Whether the value must stay at most (`max`) or at least (`min`) the threshold.
    #[serde(default)]
    pub condition: AnalysisCondition,
    /// How often the query is evaluated during the soak.
    #[serde(default = "default_analysis_interval")]
    pub interval: Duration,
}

/// Which side of the threshold passes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AnalysisCondition {
    /// The value must be at most the threshold.
    #[default]
    Max,
    /// The value must be at least the threshold.
    Min,
}

/// A manual worker count for a pool, kept under its own key so that re-applying the pool
/// never erases it. `metadata.name` is the pool's name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Override {
    /// Always `steward/v1`.
    #[schemars(extend("const" = "steward/v1"))]
    pub api_version: String,
    /// Always `Override`.
    #[schemars(extend("const" = "Override"))]
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: OverrideSpec,
}

/// The pinned worker count and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OverrideSpec {
    /// The exact worker count to hold; 0 stops every worker.
    pub workers: u32,
    /// Why the count is pinned; required.
    pub reason: String,
    /// When the override expires (RFC 3339).
    #[schemars(with = "String", extend("format" = "date-time"))]
    pub until: jiff::Timestamp,
    /// Who set it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// Allow a count below `workers.min` or above `workers.max`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
}

fn default_true() -> bool {
    true
}

fn default_interval() -> Duration {
    Duration::from_mins(20)
}

fn default_lookback() -> Duration {
    Duration::from_mins(60)
}

fn default_headroom() -> f64 {
    0.2
}

fn default_startup_time() -> Duration {
    Duration::from_mins(6)
}

fn default_fallback_after() -> u32 {
    3
}

fn default_max_step() -> u32 {
    2
}

fn default_stabilization() -> Duration {
    Duration::from_mins(40)
}

fn default_emergency_check() -> Duration {
    Duration::from_mins(1)
}

fn default_vhost() -> String {
    "/".to_owned()
}

fn default_golden_soak() -> Duration {
    Duration::from_mins(10)
}

fn default_healthy_deadline() -> Duration {
    Duration::from_mins(10)
}

fn default_min_healthy_time() -> Duration {
    Duration::from_secs(30)
}

fn default_surge() -> u32 {
    1
}

fn default_prefetch_timeout() -> Duration {
    Duration::from_mins(30)
}

fn default_analysis_interval() -> Duration {
    Duration::from_mins(1)
}
