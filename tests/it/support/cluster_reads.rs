//! Reads of what a controller under test did: a pool's status in Consul and a job's group
//! counts in Nomad, once or polled until they match.

use std::time::Duration;

use steward::consul::{ConsulClient, Keys};
use steward::nomad::{self, QueryOptions};
use steward::reconcile::Status;

/// Time between two polls.
const POLL: Duration = Duration::from_millis(20);

/// Reads a pool's status, `None` before the controller wrote one.
pub async fn status(consul: &ConsulClient, keys: &Keys, pool: &str) -> Option<Status> {
    let pair = consul
        .kv_get(&keys.status(pool))
        .await
        .expect("consul read")?;
    Some(serde_json::from_slice(&pair.value).expect("status is valid JSON"))
}

/// Polls a pool's status until `check` accepts it. Fails the test after `limit`.
pub async fn wait_status(
    consul: &ConsulClient,
    keys: &Keys,
    pool: &str,
    limit: Duration,
    check: impl Fn(&Status) -> bool,
) -> Status {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let status = status(consul, keys, pool).await;
        if let Some(status) = status.as_ref().filter(|status| check(status)) {
            return status.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "status of {pool} never matched: {status:#?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Returns the counts of a job's `groups`, in that order, or `None` when the job is missing.
/// A missing group counts as `None` too.
pub async fn counts(nomad: &nomad::Client, job: &str, groups: &[&str]) -> Option<Vec<i64>> {
    let job = nomad
        .read_job(job, QueryOptions::immediate())
        .await
        .ok()?
        .value;
    groups
        .iter()
        .map(|group| job.group(group).map(|group| group.count.unwrap_or(0)))
        .collect()
}

/// Polls a job's group counts until they equal `expected`. Fails the test after `limit`.
pub async fn wait_counts(
    nomad: &nomad::Client,
    job: &str,
    groups: &[&str],
    expected: &[i64],
    limit: Duration,
) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let counts = counts(nomad, job, groups).await;
        if counts.as_deref() == Some(expected) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job {job}: counts {counts:?}, expected {expected:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}
