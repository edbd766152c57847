//! A change of leader in the middle of a golden-first rollout. Two controllers run against
//! the Consul and Nomad emulators over HTTP on 127.0.0.1. The leader is killed once the
//! golden worker is verified, and the standby finishes the rollout from the stored state.
//!
//! The Nomad emulator runs at 1000× simulated speed and both controllers read its simulated
//! clock, so the 2-minute soak takes 0.12 wall seconds. The Consul sessions run on wall time:
//! the 2-second leader TTL and 1-second lock delay are 3,000 simulated seconds, longer than
//! any step budget of the rollout.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use steward::consul::{ConsulClient, Keys};
use steward::nomad::{self, AllocListStub, QueryOptions};
use steward::reconcile::{Phase, Status};
use steward::rollout::RolloutPhase;
use steward::runtime::{Controller, ControllerConfig, ControllerHandle, QueueConfig};
use steward::sim::consul::{ConsulEmulator, ConsulEmulatorConfig, RunningConsul};
use steward::sim::nomad::{NomadEmulator, NomadEmulatorConfig, RunningNomad};
use tokio_util::sync::CancellationToken;

use crate::support::emulated_time::rollout_state;
use crate::support::face_pool;

const OLD: &str = "registry.local/face:1";
const NEW: &str = "registry.local/face:2";
const SPEED: f64 = 1000.0;
const ZONES: [&str; 2] = ["a", "b"];
const WORKERS_PER_ZONE: u32 = 3;

/// Upper bound on waiting for the controllers. It only bounds a failing test.
const CONVERGE: Duration = Duration::from_secs(90);

struct Cluster {
    consul: RunningConsul,
    nomad: RunningNomad,
    consul_client: ConsulClient,
    nomad_client: nomad::Client,
    keys: Keys,
}

impl Cluster {
    async fn start() -> Self {
        let consul = ConsulEmulator::start(ConsulEmulatorConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            min_session_ttl: Duration::from_secs(1),
            session_ttl_multiplier: 1,
            ..ConsulEmulatorConfig::default()
        })
        .await
        .expect("consul emulator starts");
        let nomad = NomadEmulator::start(NomadEmulatorConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            datacenters: vec!["dc-a".to_owned(), "dc-b".to_owned()],
            nodes_per_dc: 3,
            speed: SPEED,
            ..NomadEmulatorConfig::default()
        })
        .await
        .expect("nomad emulator starts");
        let consul_client = ConsulClient::for_url(consul.url()).expect("consul client");
        let nomad_client =
            nomad::Client::new(nomad::Config::new(&nomad.url()).expect("nomad address"))
                .expect("nomad client");
        Self {
            consul,
            nomad,
            consul_client,
            nomad_client,
            keys: Keys::new("steward/").expect("valid prefix"),
        }
    }

    /// Builds a controller configuration with its own Consul and Nomad clients.
    fn controller_config(&self, identity: &str) -> ControllerConfig {
        let consul = ConsulClient::for_url(self.consul.url()).expect("consul client");
        let nomad = nomad::Client::new(nomad::Config::new(&self.nomad.url()).expect("address"))
            .expect("nomad client");
        let mut config = ControllerConfig::new(consul, self.keys.clone(), nomad, identity);
        config.clock = Arc::new(self.nomad.shared().clock);
        config.leader_ttl = Duration::from_secs(2);
        config.lock_delay = Duration::from_secs(1);
        config.queue = QueueConfig {
            debounce: Duration::from_millis(5),
            max_debounce: Duration::from_millis(50),
            backoff_base: Duration::from_millis(20),
            backoff_max: Duration::from_millis(200),
            ..QueueConfig::default()
        };
        config.consul_watch.wait = Duration::from_secs(10);
        config.consul_watch.min_interval = Duration::from_millis(5);
        config.nomad_watch.wait = Duration::from_secs(10);
        config.nomad_watch.min_interval = Duration::from_millis(5);
        config
    }

    /// Starts a controller on its own thread and single-threaded runtime, so that the test
    /// can kill it: dropping the runtime ends every task of it, the session renewal included,
    /// without running any shutdown code.
    fn spawn_isolated(&self, identity: &str) -> Isolated {
        let controller = Controller::new(self.controller_config(identity)).expect("valid config");
        let handle = controller.handle();
        let (kill_tx, kill_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime builds");
            runtime.block_on(async move {
                let run = tokio::spawn(controller.run(CancellationToken::new()));
                let _ = kill_rx.await;
                drop(run);
            });
            runtime.shutdown_background();
        });
        Isolated {
            handle,
            kill: Some(kill_tx),
            thread: Some(thread),
        }
    }

    async fn put_pool(&self, version: &str) {
        let rollout = "    goldenSoak: 2m\n    healthyDeadline: 5m\n    minHealthyTime: 20s\n    surge: 1\n    prefetch: {timeout: 10m}\n";
        face_pool::put(&self.consul_client, &self.keys, version, rollout).await;
    }

    /// Polls the status until `check` accepts it, and returns it with every rollout phase
    /// seen on the way.
    async fn wait_status(&self, check: impl Fn(&Status) -> bool) -> (Status, Vec<RolloutPhase>) {
        face_pool::wait_status(&self.consul_client, &self.keys, CONVERGE, check).await
    }

    /// Returns each zone's registered version and count.
    async fn zones(&self) -> Vec<(String, String, i64)> {
        face_pool::zones(&self.nomad_client).await
    }

    async fn stop(self) {
        self.consul.shutdown().await;
        self.nomad.shutdown().await;
    }
}

async fn wait_leader(handle: &ControllerHandle) {
    let deadline = tokio::time::Instant::now() + CONVERGE;
    while !handle.is_leader() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never became leader"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A controller on its own thread, started by [`Cluster::spawn_isolated`].
struct Isolated {
    handle: ControllerHandle,
    kill: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Isolated {
    /// Ends every task of the controller at once, so its session stays until its TTL runs out.
    fn kill(&mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().expect("controller thread joins");
        }
    }
}

impl Drop for Isolated {
    fn drop(&mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
    }
}

fn ready_with_six(status: &Status) -> bool {
    status.phase == Phase::Ready && status.workers.healthy == 2 * WORKERS_PER_ZONE
}

/// The lowest healthy worker counts the observer saw, in total and per zone, and the most
/// workers it saw changing at once (meant to run but not healthy).
#[derive(Debug, Clone, Copy)]
struct Lowest {
    total: u32,
    zones: [u32; 2],
    max_changing: usize,
    observations: usize,
}

/// Follows the pool's allocations with blocking queries until `stop` fires, keeping the
/// lowest healthy counts seen once the first full set of healthy workers was seen.
fn observe_capacity(
    client: nomad::Client,
    stop: CancellationToken,
) -> (Arc<Mutex<Option<Lowest>>>, tokio::task::JoinHandle<()>) {
    let lowest = Arc::new(Mutex::new(None::<Lowest>));
    let shared = Arc::clone(&lowest);
    let task = tokio::spawn(async move {
        let mut index = 0;
        loop {
            let options = QueryOptions::blocking(index, Duration::from_secs(2));
            let response = tokio::select! {
                () = stop.cancelled() => return,
                response = client.job_allocations("face", false, options) => response,
            };
            let response = response.expect("allocations read");
            index = response.meta.next_index();
            let zones = ZONES.map(|zone| healthy(&response.value, zone));
            let total = zones.iter().sum::<u32>();
            let changing = response
                .value
                .iter()
                .filter(|a| a.desired_status.as_str() == "run" && !a.is_running_healthy())
                .count();
            let mut lowest = shared.lock().unwrap_or_else(PoisonError::into_inner);
            match lowest.as_mut() {
                None if total >= 2 * WORKERS_PER_ZONE => {
                    *lowest = Some(Lowest {
                        total,
                        zones,
                        max_changing: changing,
                        observations: 1,
                    });
                }
                None => {}
                Some(seen) => {
                    seen.total = seen.total.min(total);
                    for (low, now) in seen.zones.iter_mut().zip(zones) {
                        *low = (*low).min(now);
                    }
                    seen.max_changing = seen.max_changing.max(changing);
                    seen.observations += 1;
                }
            }
        }
    });
    (lowest, task)
}

fn healthy(allocations: &[AllocListStub], zone: &str) -> u32 {
    allocations
        .iter()
        .filter(|a| a.task_group == zone && a.is_running_healthy())
        .count() as u32
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standby_finishes_rollout_after_golden() {
    let cluster = Cluster::start().await;
    cluster.put_pool(OLD).await;
    let mut first = cluster.spawn_isolated("first");
    wait_leader(&first.handle).await;
    let second = cluster.spawn_isolated("second");
    second.handle.wait_ready().await;
    assert!(!second.handle.is_leader());
    cluster.wait_status(ready_with_six).await;

    let stop_observer = CancellationToken::new();
    let (lowest, observer) = observe_capacity(cluster.nomad_client.clone(), stop_observer.clone());
    cluster.put_pool(NEW).await;

    // Kill the leader once the status shows the golden worker verified and promoted. The kill
    // does not release its session, so the standby waits out the TTL and lock delay while
    // Nomad goes on, and may find a step the dead leader wrote to Nomad but not to the status.
    // A clean release is covered by `controller::shutdown_releases_lock_for_standby`.
    let (before, phases_before) = cluster
        .wait_status(|status| {
            rollout_state(status).is_some_and(|state| state.phase == RolloutPhase::Rolling)
        })
        .await;
    first.kill();
    let verified = rollout_state(&before).expect("rollout stored");
    let golden = verified.golden.clone().expect("golden worker recorded");
    let soak_until = verified.soak_until.expect("soak end recorded");
    assert!(
        phases_before.contains(&RolloutPhase::Soaking),
        "{phases_before:?}"
    );
    let zones_at_kill = cluster.zones().await;
    assert_eq!(
        zones_at_kill[1],
        ("b".to_owned(), OLD.to_owned(), 3),
        "zone b changed before the leader was killed, so the takeover has nothing to finish"
    );

    // The standby takes over once the killed leader's session expired.
    wait_leader(&second.handle).await;
    let (ended, mut phases_after) = cluster
        .wait_status(|status| rollout_state(status).is_some_and(|state| !state.phase.is_active()))
        .await;
    let state = rollout_state(&ended).expect("rollout stored");
    assert_eq!(
        state.phase,
        RolloutPhase::Complete,
        "failure: {:?}; phases after the takeover {phases_after:?}",
        state.failure
    );
    let (after, phases_ready) = cluster.wait_status(ready_with_six).await;
    phases_after.extend(phases_ready);
    stop_observer.cancel();
    observer.await.expect("observer joins");
    let state = rollout_state(&after).expect("rollout stored");
    assert_eq!(after.written_by, "second");
    assert!(
        second.handle.nomad_writes() > 0,
        "the standby wrote nothing"
    );
    for phase in &phases_after {
        assert!(
            matches!(phase, RolloutPhase::Rolling | RolloutPhase::Complete),
            "phase {phase} after the takeover; phases {phases_after:?}"
        );
    }
    assert_eq!(
        state.golden.as_ref(),
        Some(&golden),
        "golden worker changed"
    );
    assert_eq!(state.soak_until, Some(soak_until), "soak restarted");
    assert_eq!(state.started_at, verified.started_at, "rollout restarted");
    let expected: Vec<(String, String, i64)> = ZONES
        .iter()
        .map(|zone| ((*zone).to_owned(), NEW.to_owned(), 3))
        .collect();
    assert_eq!(cluster.zones().await, expected);

    // Nomad placed one golden canary, in one deployment, promoted once. Promotion clears
    // the allocation's canary flag, so the canaries are read from the deployments.
    let deployments = cluster
        .nomad_client
        .job_deployments("face", QueryOptions::immediate())
        .await
        .expect("deployments read")
        .value;
    let with_canaries = deployments
        .iter()
        .filter(|d| d.task_groups.values().any(|g| g.desired_canaries > 0))
        .count();
    assert_eq!(with_canaries, 1, "{deployments:#?}");
    let canaries: Vec<&str> = deployments
        .iter()
        .flat_map(|d| d.task_groups.values())
        .flat_map(|g| g.placed_canaries.iter().flatten())
        .map(String::as_str)
        .collect();
    assert_eq!(canaries, [golden.allocation_id.as_str()]);
    let promoted = deployments
        .iter()
        .filter(|d| d.task_groups.values().any(|g| g.promoted))
        .count();
    assert_eq!(promoted, 1, "{deployments:#?}");
    let allocations = cluster
        .nomad_client
        .job_allocations("face", true, QueryOptions::immediate())
        .await
        .expect("allocations read")
        .value;

    // Every worker runs the new version, and capacity never fell below the desired counts.
    let live: Vec<&AllocListStub> = allocations
        .iter()
        .filter(|a| a.desired_status.as_str() == "run")
        .collect();
    assert_eq!(live.len(), 6, "{live:#?}");
    let versions = cluster
        .nomad_client
        .job_versions("face", false, QueryOptions::immediate())
        .await
        .expect("versions read")
        .value
        .versions;
    let latest = versions
        .first()
        .and_then(|job| job.version)
        .expect("a job version");
    for allocation in &live {
        assert_eq!(allocation.job_version, latest, "{}", allocation.id);
        assert!(allocation.is_running_healthy(), "{}", allocation.id);
    }
    let lowest = lowest
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .expect("capacity observed");
    assert!(lowest.observations > 10, "{lowest:?}");
    assert!(lowest.total >= 2 * WORKERS_PER_ZONE, "{lowest:?}");
    for (zone, low) in ZONES.iter().zip(lowest.zones) {
        assert!(low >= WORKERS_PER_ZONE, "zone {zone}: {lowest:?}");
    }
    assert_eq!(
        lowest.max_changing, 1,
        "workers changing at once: {lowest:?}"
    );

    drop(second);
    cluster.stop().await;
}
