//! The `face` pool of the controller rollout tests, and reads of what the controller did with
//! it: its status in Consul and its job's zones in Nomad.

use std::time::Duration;

use steward::consul::{ConsulClient, Keys, WriteMode};
use steward::nomad::{self, QueryOptions};
use steward::reconcile::Status;
use steward::rollout::{self, RolloutPhase};

use super::emulated_time::rollout_state;

/// The pool's name, which is also its job's ID.
pub const NAME: &str = "face";

/// Stores the `face` pool: 6 workers at `version` over zone `a` (`dc-a`) and zone `b`
/// (`dc-b`). `rollout` is the body of `spec.rollout`, each line indented by four spaces.
pub async fn put(consul: &ConsulClient, keys: &Keys, version: &str, rollout: &str) {
    let text = format!(
        "apiVersion: steward/v1
kind: WorkerPool
metadata:
  name: {NAME}
spec:
  version: \"{version}\"
  workers: {{min: 6, max: 6}}
  zones:
    - name: a
      datacenter: dc-a
    - name: b
      datacenter: dc-b
  rollout:
{rollout}  template:
    Tasks:
      - Name: app
        Driver: docker
        Resources: {{CPU: 200, MemoryMB: 128}}
"
    );
    consul
        .kv_put(&keys.pool(NAME), text.as_bytes(), None, &WriteMode::Plain)
        .await
        .expect("consul write");
}

/// Reads the pool's status, `None` before the controller wrote one.
pub async fn status(consul: &ConsulClient, keys: &Keys) -> Option<Status> {
    super::cluster_reads::status(consul, keys, NAME).await
}

/// Polls the status until `check` accepts it, and returns it with every rollout phase seen
/// on the way. Fails the test after `limit` of wall time.
pub async fn wait_status(
    consul: &ConsulClient,
    keys: &Keys,
    limit: Duration,
    check: impl Fn(&Status) -> bool,
) -> (Status, Vec<RolloutPhase>) {
    let deadline = tokio::time::Instant::now() + limit;
    let mut phases: Vec<RolloutPhase> = Vec::new();
    loop {
        let status = status(consul, keys).await;
        if let Some(state) = status.as_ref().and_then(rollout_state)
            && phases.last() != Some(&state.phase)
        {
            phases.push(state.phase);
        }
        if let Some(status) = status.as_ref().filter(|status| check(status)) {
            return (status.clone(), phases);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "status never matched; phases seen {phases:?}; last: {status:#?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Returns each zone's group name, registered version and count, from the live job.
pub async fn zones(nomad: &nomad::Client) -> Vec<(String, String, i64)> {
    let job = nomad
        .read_job(NAME, QueryOptions::immediate())
        .await
        .expect("job exists")
        .value;
    job.groups()
        .iter()
        .map(|group| {
            (
                group.name.clone(),
                rollout::group_version(group).unwrap_or("none").to_owned(),
                group.count.unwrap_or(0),
            )
        })
        .collect()
}
