//! What a rollout step reads besides the pool's [`Observed`](crate::reconcile::Observed)
//! cluster: the deployment's promotion state, the prefetch job and its allocations, and the
//! latest analysis sample.

use jiff::Timestamp;

use crate::nomad::{AllocListStub, Deployment};
use crate::reconcile::{ClientStatus, DeploymentStatus, ObservedJob};

/// The job's latest deployment with the promotion state the rollout steers by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentView {
    pub id: String,
    pub job_version: u64,
    pub status: DeploymentStatus,
    /// Such as "Deployment is running but requires manual promotion".
    pub description: String,
    /// Some group has unpromoted canaries and does not promote itself.
    pub requires_promotion: bool,
    /// The earliest `RequireProgressBy` of its groups: when Nomad fails the deployment unless
    /// it progresses, which a paused deployment does not.
    pub progress_deadline: Option<jiff::Timestamp>,
}

impl DeploymentView {
    /// Maps a deployment read from Nomad.
    pub fn from_nomad(deployment: &Deployment) -> Self {
        Self {
            id: deployment.id.clone(),
            job_version: deployment.job_version,
            status: DeploymentStatus::from_nomad(deployment.status.as_str()),
            description: deployment.status_description.clone(),
            requires_promotion: deployment.requires_promotion(),
            progress_deadline: deployment
                .task_groups
                .values()
                .filter_map(|group| group.require_progress_by)
                .min(),
        }
    }

    /// Whether the deployment is still in progress.
    pub fn is_active(&self) -> bool {
        self.status.is_active()
    }
}

/// One allocation of the prefetch job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefetchAllocation {
    pub id: String,
    pub node_id: String,
    pub client_status: ClientStatus,
    /// Messages of the task events (`DisplayMessage`, `DriverError`, `DownloadError`), oldest
    /// first, which is where Nomad reports image pull errors.
    pub events: Vec<String>,
    /// The prefetch job version the allocation runs; older versions pulled older images.
    pub job_version: u64,
    /// Orders the allocations of one node: the highest is the newest.
    pub create_index: u64,
}

impl PrefetchAllocation {
    /// Maps an allocation stub of the prefetch job, keeping its task event messages.
    pub fn from_stub(stub: &AllocListStub) -> Self {
        let mut events = Vec::new();
        for state in stub.task_states.iter().flat_map(|states| states.values()) {
            for event in state.events.iter().flatten() {
                let texts = [
                    &event.display_message,
                    &event.message,
                    &event.driver_error,
                    &event.download_error,
                ];
                for text in texts.into_iter().flatten() {
                    if !text.is_empty() && !events.contains(text) {
                        events.push(text.clone());
                    }
                }
            }
        }

        Self {
            id: stub.id.clone(),
            node_id: stub.node_id.clone(),
            client_status: ClientStatus::from_nomad(stub.client_status.as_str()),
            events,
            job_version: stub.job_version,
            create_index: stub.create_index,
        }
    }
}

/// The prefetch job and its allocations.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PrefetchObserved {
    /// The job under [`super::prefetch::prefetch_key`], or `None` when Nomad has none.
    pub job: Option<ObservedJob>,
    pub allocations: Vec<PrefetchAllocation>,
}

/// One evaluation of `spec.rollout.analysis.query`.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalysisSample {
    /// When the query was evaluated.
    pub at: Timestamp,
    /// The query's value, `Ok(None)` when the query returned no data, or the error text when
    /// the query failed.
    pub value: Result<Option<f64>, String>,
}
