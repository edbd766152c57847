//! The golden-first rollout inside the controller: when it applies, what it reads besides
//! the cache, and how it restricts the planner's writes.
//!
//! A reconcile runs [`crate::rollout::step`] when a zone of the live job runs another version
//! than `spec.version`, or when the stored status carries an unfinished rollout. While the
//! rollout keeps the version ([`RolloutStep::holds_version`]) the planner may not register
//! the job, and while it is active ([`RolloutStep::is_active`]) the planner may not scale it.
//!
//! During the soak, `spec.rollout.analysis` is evaluated every `analysis.interval` in its own
//! task ([`AnalysisSamples`]), because the query may take up to
//! [`crate::rollout::analysis::QUERY_TIMEOUT`].
//!
//! The deployment, the prefetch job and the control key are read afresh on each step. Changes
//! to them queue the pool at once: the prefetch job carries the pool's `steward.pool` meta, so
//! the job, allocation and deployment watches map it to the pool, and [`watch_controls`]
//! watches the control keys.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use jiff::{SignedDuration, Timestamp};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::watches::WatchContext;

use super::executor::exec_error;
use crate::consul::{ConsulClient, KvWatch, WatchTarget};
use crate::nomad::{self, QueryOptions};
use crate::reconcile::{self, Action, JobKey, Observed, ObservedJob, Plan, Status};
use crate::rollout::{
    AnalysisSample, Control, DeploymentView, PrefetchAllocation, PrefetchObserved, RolloutPhase,
    RolloutState, RolloutStep, control_key, group_version, prefetch_key,
};
use crate::spec::WorkerPool;

/// The inputs of a rollout step beyond the cache, fetched from Nomad and Consul.
#[derive(Debug, Default)]
pub(crate) struct Inputs {
    pub deployment: Option<DeploymentView>,
    pub prefetch: PrefetchObserved,
    pub control: Option<Control>,
}

/// Reads the rollout state stored in `status`. A state that does not parse (written by
/// another Steward version) is logged and treated as absent, so the step re-derives it from
/// Nomad.
pub(crate) fn stored_state(status: Option<&Status>) -> Option<RolloutState> {
    let status = status?;
    match RolloutState::from_status(status) {
        Ok(state) => state,
        Err(error) => {
            warn!(%error, "stored rollout state is invalid; deriving it from Nomad again");
            None
        }
    }
}

/// Returns whether the rollout step must run: a zone of the live job runs another version
/// than `spec.version`, or the stored rollout has not completed.
pub(crate) fn applies(
    pool: &WorkerPool,
    observed: &Observed,
    stored: Option<&RolloutState>,
) -> bool {
    if stored.is_some_and(|state| state.phase != RolloutPhase::Complete) {
        return true;
    }
    let Some(live) = observed.job.as_ref() else {
        return false;
    };
    if live.owner() != Some(pool.metadata.name.as_str()) || live.job.stop == Some(true) {
        return false;
    }
    pool.spec.zones.iter().any(|zone| {
        live.job
            .group(&zone.name)
            .is_some_and(|group| group_version(group) != Some(pool.spec.version.as_str()))
    })
}

/// Reads the job's latest deployment, the prefetch job with its allocations, and the control
/// command. A control value that does not parse is logged and ignored.
pub(crate) async fn gather(
    nomad: &nomad::Client,
    consul: &ConsulClient,
    prefix: &str,
    pool: &WorkerPool,
) -> Result<Inputs, reconcile::Error> {
    let job = JobKey::of(pool);
    let client = nomad.with_namespace(&job.namespace);
    let failed = |job: &JobKey, error: nomad::Error| reconcile::Error::Nomad {
        job: job.clone(),
        source: exec_error(error, 0),
    };

    let deployment = client
        .latest_deployment(&job.id, QueryOptions::immediate())
        .await
        .map_err(|e| failed(&job, e))?
        .value
        .as_ref()
        .map(DeploymentView::from_nomad);

    let prefetch_job = prefetch_key(pool);
    let prefetch = match client
        .read_job(&prefetch_job.id, QueryOptions::immediate())
        .await
    {
        Ok(response) => {
            let allocations = client
                .job_allocations(&prefetch_job.id, false, QueryOptions::immediate())
                .await
                .map_err(|e| failed(&prefetch_job, e))?
                .value
                .iter()
                .map(PrefetchAllocation::from_stub)
                .collect();
            PrefetchObserved {
                job: Some(ObservedJob::new(response.value)),
                allocations,
            }
        }
        Err(error) if error.is_not_found() => PrefetchObserved::default(),
        Err(error) => return Err(failed(&prefetch_job, error)),
    };

    let key = control_key(prefix, &pool.metadata.name);
    let control = match consul.kv_get(&key).await {
        Ok(Some(pair)) => match serde_json::from_slice::<Control>(&pair.value) {
            Ok(control) => Some(Control {
                index: pair.modify_index,
                ..control
            }),
            Err(error) => {
                warn!(%key, %error, "rollout control command is invalid JSON; ignored");
                None
            }
        },
        Ok(None) => None,
        Err(error) => {
            // NOTE: an unreadable control key delays a pause or an abort to the next step;
            // the rollout itself goes on.
            warn!(%key, %error, "rollout control key not read; stepping without it");
            None
        }
    };

    Ok(Inputs {
        deployment,
        prefetch,
        control,
    })
}

/// Removes the planner's writes that the rollout forbids now: registers while it keeps the
/// version, scales while it is active. The planner's decisions about them are replaced by
/// one that names the rollout and the counts that wait.
pub(crate) fn restrict(plan: &mut Plan, step: &RolloutStep) {
    let holds_version = step.holds_version();
    let active = step.is_active();
    if !holds_version && !active {
        return;
    }

    let before = plan.actions.len();
    plan.actions.retain(|action| match action {
        Action::RegisterJob { .. } => !holds_version,
        Action::Scale { .. } => !active,
        Action::CreateJob(_) | Action::StopJob => true,
    });
    if plan.actions.len() == before {
        return;
    }

    plan.status.decisions.retain(|decision| {
        let register = decision.action == "register job";
        let scale = decision.action.starts_with("scale ");
        !(register && holds_version || scale && active)
    });
    let reason = match &step.pending_counts {
        Some(counts) => format!("a rollout owns the job; counts {counts:?} wait until it ends"),
        None => "a rollout owns the job".to_owned(),
    };
    plan.status
        .decisions
        .push(reconcile::status::DecisionReport {
            action: "planner writes deferred".to_owned(),
            reason,
        });
}

#[derive(Default)]
struct PoolSamples {
    latest: Option<AnalysisSample>,
    in_flight: bool,
}

/// The latest analysis sample of every soaking pool, shared with the query tasks.
#[derive(Default)]
pub(crate) struct AnalysisSamples {
    pools: Mutex<HashMap<String, PoolSamples>>,
    client: std::sync::OnceLock<Result<reqwest::Client, String>>,
}

impl AnalysisSamples {
    /// Drops the samples kept for a pool without a rollout in progress.
    pub(crate) fn forget(&self, pool: &str) {
        self.pools
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(pool);
    }

    /// Returns the pool's latest analysis sample. While the stored rollout soaks and the
    /// latest sample is older than `analysis.interval` (or missing), starts a query at `now`
    /// whose end stores the sample and calls `requeue` with the pool. Drops the samples of a
    /// pool that does not soak.
    pub(crate) fn sample(
        self: &Arc<Self>,
        pool: &WorkerPool,
        stored: Option<&RolloutState>,
        now: Timestamp,
        requeue: &super::autoscaling::Requeue,
    ) -> Option<AnalysisSample> {
        let name = pool.metadata.name.clone();
        let soaking = stored.is_some_and(|state| state.phase == RolloutPhase::Soaking);
        let Some(analysis) = pool.spec.rollout.analysis.clone().filter(|_| soaking) else {
            self.pools
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&name);
            return None;
        };

        let mut pools = self.pools.lock().unwrap_or_else(PoisonError::into_inner);
        let samples = pools.entry(name.clone()).or_default();
        let interval =
            SignedDuration::try_from(analysis.interval.get()).unwrap_or(SignedDuration::MAX);
        let due = samples.latest.as_ref().is_none_or(|sample| {
            sample.at.saturating_add(interval).unwrap_or(Timestamp::MAX) <= now
        });
        if !due || samples.in_flight {
            return samples.latest.clone();
        }

        let client = self
            .client
            .get_or_init(|| crate::rollout::analysis_http_client().map_err(|e| e.to_string()))
            .clone();
        let client = match client {
            Ok(client) => client,
            Err(error) => {
                warn!(pool = %name, %error, "analysis HTTP client not built");
                samples.latest = Some(AnalysisSample {
                    at: now,
                    value: Err(format!("cannot build the HTTP client: {error}")),
                });
                return samples.latest.clone();
            }
        };
        samples.in_flight = true;
        let latest = samples.latest.clone();
        drop(pools);

        debug!(pool = %name, query = %analysis.query, "evaluating rollout analysis");
        let shared = Arc::clone(self);
        let requeue = Arc::clone(requeue);
        tokio::spawn(async move {
            let sample = crate::rollout::evaluate_analysis(&client, &analysis, now).await;
            {
                let mut pools = shared.pools.lock().unwrap_or_else(PoisonError::into_inner);
                let samples = pools.entry(name.clone()).or_default();
                samples.in_flight = false;
                samples.latest = Some(sample);
            }
            requeue(name);
        });
        latest
    }
}

/// Watches `<prefix>rollouts/` until `cancel` fires and queues the pool of every control key
/// (`<prefix>rollouts/<pool>/control`) that was written or deleted since the last snapshot.
pub(crate) async fn watch_controls(context: WatchContext, cancel: CancellationToken) {
    let prefix = format!("{}rollouts/", context.keys.prefix());
    let mut watch = KvWatch::new(
        context.consul.clone(),
        WatchTarget::Prefix(prefix.clone()),
        context.consul_watch,
    );
    let mut seen: HashMap<String, u64> = HashMap::new();
    loop {
        let snapshot = tokio::select! {
            () = cancel.cancelled() => return,
            snapshot = watch.next() => snapshot,
        };
        let snapshot = match snapshot {
            Ok(snapshot) => snapshot,
            Err(error) => {
                warn!(%prefix, %error, "rollout control watch failed permanently; retrying with a full read");
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(context.consul_watch.backoff_cap) => continue,
                }
            }
        };

        let current = control_indexes(&prefix, &snapshot.pairs);
        let mut changed: std::collections::BTreeSet<String> = current
            .iter()
            .filter(|(pool, index)| seen.get(*pool) != Some(*index))
            .map(|(pool, _)| pool.clone())
            .collect();
        changed.extend(
            seen.keys()
                .filter(|pool| !current.contains_key(*pool))
                .cloned(),
        );
        seen = current;
        (context.sink)(changed, "rollout control changed");
    }
}

/// Maps each pool with a control key under `prefix` (`<prefix><pool>/control`) to the key's
/// modify index. Other keys under the prefix are skipped.
fn control_indexes(prefix: &str, pairs: &[crate::consul::KvPair]) -> HashMap<String, u64> {
    let mut indexes = HashMap::new();
    for pair in pairs {
        let pool = pair
            .key
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix("/control"))
            .filter(|pool| !pool.is_empty() && !pool.contains('/'));
        if let Some(pool) = pool {
            indexes.insert(pool.to_owned(), pair.modify_index);
        }
    }
    indexes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(key: &str, modify_index: u64) -> crate::consul::KvPair {
        crate::consul::KvPair {
            key: key.to_owned(),
            value: Vec::new(),
            flags: 0,
            create_index: 1,
            modify_index,
            lock_index: 0,
            session: None,
        }
    }

    #[test]
    fn control_indexes_keep_only_control_keys() {
        let pairs = [
            pair("steward/rollouts/face/control", 7),
            pair("steward/rollouts/ocr/control", 9),
            pair("steward/rollouts/face/notes", 11),
            pair("steward/rollouts//control", 12),
            pair("steward/rollouts/a/b/control", 13),
        ];

        let indexes = control_indexes("steward/rollouts/", &pairs);

        assert_eq!(indexes.len(), 2, "{indexes:?}");
        assert_eq!(indexes.get("face"), Some(&7));
        assert_eq!(indexes.get("ocr"), Some(&9));
    }
}
