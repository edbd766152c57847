//! `steward rollout status|pause|resume|abort|retry` against a Consul emulator started by
//! each test.

use std::path::Path;
use std::process::Output;

use steward::consul::{ConsulClient, Keys, WriteMode};
use steward::rollout::{Control, ControlAction, RolloutState};
use steward::sim::consul::{ConsulEmulator, ConsulEmulatorConfig, RunningConsul};

async fn start() -> (RunningConsul, ConsulClient) {
    let config = ConsulEmulatorConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        ..ConsulEmulatorConfig::default()
    };
    let consul = ConsulEmulator::start(config).await.unwrap();
    let client = ConsulClient::for_url(consul.url()).unwrap();
    (consul, client)
}

/// Stores the example pool under `name`.
async fn put_pool(client: &ConsulClient, name: &str) {
    put_pool_at(client, name, "registry.example.com/vision/face-match:1.4.2").await;
}

/// Stores the example pool under `name` with `spec.version` set to `version`, and returns
/// the key's `ModifyIndex`.
async fn put_pool_at(client: &ConsulClient, name: &str, version: &str) -> u64 {
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/pools/face-match.yaml"),
    )
    .unwrap();
    let yaml = example
        .replace("name: face-match", &format!("name: {name}"))
        .replace("id: face-match", &format!("id: {name}"))
        .replace("registry.example.com/vision/face-match:1.4.2", version);
    let keys = Keys::new("steward/").unwrap();
    client
        .kv_put(&keys.pool(name), yaml.as_bytes(), None, &WriteMode::Plain)
        .await
        .unwrap();
    client
        .kv_get(&keys.pool(name))
        .await
        .unwrap()
        .expect("pool written")
        .modify_index
}

/// Reads the control command of pool `face`, which must be written.
async fn read_control(client: &ConsulClient) -> Control {
    let bytes = client
        .kv_get_raw("steward/rollouts/face/control")
        .await
        .unwrap()
        .expect("control key written");
    serde_json::from_slice(&bytes).unwrap()
}

async fn steward(consul: &RunningConsul, args: &[&str]) -> Output {
    let addr = consul.addr().to_string();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        assert_cmd::Command::cargo_bin("steward")
            .unwrap()
            .args(&args)
            .env("CONSUL_HTTP_ADDR", addr)
            .env_remove("CONSUL_HTTP_TOKEN")
            .env_remove("CONSUL_HTTP_TOKEN_FILE")
            .env_remove("STEWARD_PREFIX")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

/// Stores pool `face` at the rollout's target version, then its status with `phase` and the
/// rollout `state`, written after the controller read that spec.
async fn put_status(client: &ConsulClient, phase: &str, state: &RolloutState) {
    let generation = put_pool_at(client, "face", &state.to_version).await;
    put_status_for(client, generation, phase, state).await;
}

/// Stores the status of pool `face` for the spec at `generation`.
async fn put_status_for(client: &ConsulClient, generation: u64, phase: &str, state: &RolloutState) {
    let status = serde_json::json!({
        "phase": phase,
        "observedGeneration": generation,
        "rollout": state,
    });
    client
        .kv_put(
            "steward/status/face",
            serde_json::to_string_pretty(&status).unwrap().as_bytes(),
            None,
            &WriteMode::Plain,
        )
        .await
        .unwrap();
}

fn rollout_state() -> RolloutState {
    let at: jiff::Timestamp = "2026-12-04T20:00:00Z".parse().unwrap();
    serde_json::from_value(serde_json::json!({
        "phase": "RollingBack",
        "fromVersion": "face:1",
        "toVersion": "face:2",
        "startedAt": at,
        "phaseStartedAt": at,
        "phaseDeadline": at,
        "counts": [3, 3],
        "failure": "golden worker g1 on node n1 is unhealthy",
        "zones": [{"zone": "a", "desired": 3, "updated": 1, "healthy": 3, "version": "face:2"}]
    }))
    .unwrap()
}

#[tokio::test]
async fn status_prints_rollout_from_status_key() {
    let (consul, client) = start().await;
    put_status(&client, "RollingOut", &rollout_state()).await;

    let output = steward(&consul, &["rollout", "status", "face"]).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(
        stdout.contains("pool face: RollingBack face:1 -> face:2"),
        "{stdout}"
    );
    assert!(
        stdout.contains("failure: golden worker g1 on node n1 is unhealthy"),
        "{stdout}"
    );
    assert!(
        stdout.contains("zone a: [###-------] 1/3 updated"),
        "{stdout}"
    );
}

#[tokio::test]
async fn status_of_paused_rollout_names_nomad_deadline() {
    let (consul, client) = start().await;
    let mut state = rollout_state();
    state.phase = steward::rollout::RolloutPhase::Soaking;
    state.failure = None;
    state.paused = Some(steward::rollout::PauseState {
        reason: "paused by alice".to_owned(),
        since: "2026-12-04T20:00:00Z".parse().unwrap(),
        by: "alice".to_owned(),
        nomad_deadline: Some("2026-12-04T20:12:00Z".parse().unwrap()),
    });
    put_status(&client, "RollingOut", &state).await;

    let output = steward(&consul, &["rollout", "status", "face"]).await;
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("  resume before 2026-12-04T20:12:00Z: Nomad then fails the paused deployment at its progress deadline, and the rollout rolls back\n"),
        "{stdout}"
    );
}

#[tokio::test]
async fn status_shows_earlier_rollout_still_running() {
    let (consul, client) = start().await;
    // A rollback to face:1 of the rollout to face:2 is under way; then face:3 is applied and
    // the controller has read it.
    let state = rollout_state();
    let generation = put_pool_at(&client, "face", "face:3").await;
    put_status_for(&client, generation, "RollingOut", &state).await;

    let output = steward(&consul, &["rollout", "status", "face"]).await;
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("pool face: RollingBack face:1 -> face:2"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  spec.version is now face:3; its rollout starts when this one ends\n"),
        "{stdout}"
    );
}

#[tokio::test]
async fn status_waits_for_the_latest_spec() {
    let (consul, client) = start().await;
    let mut state = rollout_state();
    state.phase = steward::rollout::RolloutPhase::Complete;
    state.failure = None;
    put_status(&client, "Ready", &state).await;
    // A new version is applied; the stored status is still the completed rollout's.
    let generation = put_pool_at(&client, "face", "face:3").await;

    let output = steward(&consul, &["rollout", "status", "face"]).await;
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.starts_with(&format!(
            "pool face: waiting for the controller to read the latest spec (ModifyIndex \
             {generation}; its status is for ModifyIndex "
        )),
        "{stdout}"
    );
    assert!(!stdout.contains("Complete"), "{stdout}");

    // Once the controller has read it, with no rollout for the new version yet recorded.
    put_status_for(&client, generation, "Ready", &state).await;
    let output = steward(&consul, &["rollout", "status", "face", "--watch"]).await;
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        stdout,
        "pool face: no rollout in progress for spec.version face:3\n"
    );
}

#[tokio::test]
async fn status_without_rollout_says_so() {
    let (consul, client) = start().await;
    let generation = put_pool_at(&client, "face", "face:1").await;
    let status = serde_json::json!({"phase": "Ready", "observedGeneration": generation});
    client
        .kv_put(
            "steward/status/face",
            status.to_string().as_bytes(),
            None,
            &WriteMode::Plain,
        )
        .await
        .unwrap();

    let output = steward(&consul, &["rollout", "status", "face", "--watch"]).await;
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        stdout,
        "pool face: no rollout in progress for spec.version face:1\n"
    );
}

#[tokio::test]
async fn watch_ends_when_rollout_completes() {
    let (consul, client) = start().await;
    let mut state = rollout_state();
    state.phase = steward::rollout::RolloutPhase::Complete;
    state.failure = None;
    put_status(&client, "Ready", &state).await;

    let output = steward(&consul, &["rollout", "status", "face", "--watch"]).await;

    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("pool face: Complete"), "{stdout}");
}

#[tokio::test]
async fn status_of_unknown_pool_fails() {
    let (consul, _client) = start().await;
    let output = steward(&consul, &["rollout", "status", "nosuch"]).await;
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("pool \"nosuch\" not found"), "{stderr}");
    assert!(stderr.contains("steward get"), "{stderr}");
}

#[tokio::test]
async fn status_of_failed_rollout_fails() {
    let (consul, client) = start().await;
    let mut state = rollout_state();
    state.phase = steward::rollout::RolloutPhase::Failed;
    put_status(&client, "Degraded", &state).await;

    // With and without --watch: a failed rollout ends the command with status 1.
    for args in [
        &["rollout", "status", "face"][..],
        &["rollout", "status", "face", "--watch"][..],
    ] {
        let output = steward(&consul, args).await;
        assert_eq!(output.status.code(), Some(1), "{args:?}: {output:?}");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(stdout.contains("pool face: Failed"), "{stdout}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("rollout retry face"), "{stderr}");
    }
}

#[tokio::test]
async fn status_waits_for_retry() {
    let (consul, client) = start().await;
    let mut state = rollout_state();
    state.phase = steward::rollout::RolloutPhase::Failed;
    let generation = put_pool_at(&client, "face", &state.to_version).await;
    state.started_index = generation;
    put_status_for(&client, generation, "Degraded", &state).await;

    let retry = steward(&consul, &["rollout", "retry", "face", "--by", "bob"]).await;
    assert!(retry.status.success(), "{retry:?}");
    let output = steward(&consul, &["rollout", "status", "face"]).await;
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("waiting for the controller to act on `steward rollout retry`"),
        "{stdout}"
    );

    // The controller handled the command and the rollout failed again.
    let control = client
        .kv_get("steward/rollouts/face/control")
        .await
        .unwrap()
        .expect("control key written");
    state.last_control_index = Some(control.modify_index);
    put_status_for(&client, generation, "Degraded", &state).await;
    let output = steward(&consul, &["rollout", "status", "face"]).await;
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("pool face: Failed"), "{stdout}");
}

#[tokio::test]
async fn abort_of_a_restore_is_rejected() {
    let (consul, client) = start().await;
    let mut state = rollout_state();
    state.phase = steward::rollout::RolloutPhase::Rolling;
    state.restore = true;
    put_status(&client, "RollingOut", &state).await;

    let abort = steward(&consul, &["rollout", "abort", "face"]).await;
    assert_eq!(abort.status.code(), Some(1), "{abort:?}");
    let stderr = String::from_utf8_lossy(&abort.stderr);
    assert!(
        stderr.contains("restoring the previous version"),
        "{stderr}"
    );
    assert_eq!(
        client
            .kv_get_raw("steward/rollouts/face/control")
            .await
            .unwrap(),
        None,
        "nothing was written"
    );
}

#[tokio::test]
async fn control_commands_write_control_key() {
    let (consul, client) = start().await;
    put_pool(&client, "face").await;

    let cases = [
        ("pause", ControlAction::Pause),
        ("resume", ControlAction::Resume),
        ("abort", ControlAction::Abort),
        ("retry", ControlAction::Retry),
    ];
    for (command, action) in cases {
        let output = steward(&consul, &["rollout", command, "face", "--by", "alice"]).await;
        assert!(output.status.success(), "{command}: {output:?}");

        let control = read_control(&client).await;
        assert_eq!(control.action, action, "{command}");
        assert_eq!(control.by, "alice", "{command}");
        // No status yet: the controller has not read the pool, and a rollout may start.
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&format!(
                "the controller has not read the latest spec of pool face yet; the {command} \
                 applies to a rollout that starts from it"
            )),
            "{command}: {stderr}"
        );
    }
}

#[tokio::test]
async fn control_without_rollout_writes_nothing() {
    let (consul, client) = start().await;
    let mut state = rollout_state();
    state.phase = steward::rollout::RolloutPhase::Complete;
    state.failure = None;
    put_status(&client, "Ready", &state).await;

    for command in ["pause", "resume", "abort", "retry"] {
        let output = steward(&consul, &["rollout", command, "face"]).await;
        assert_eq!(output.status.code(), Some(1), "{command}: {output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&format!(
                "pool face has nothing for {command} to act on: its rollout is Complete; \
                 nothing was written"
            )),
            "{command}: {stderr}"
        );
        let written = client
            .kv_get_raw("steward/rollouts/face/control")
            .await
            .unwrap();
        assert_eq!(written, None, "{command}");
    }
}

#[tokio::test]
async fn control_during_rollout_warns_nothing() {
    let (consul, client) = start().await;
    put_status(&client, "RollingOut", &rollout_state()).await;

    let output = steward(&consul, &["rollout", "pause", "face", "--by", "alice"]).await;

    assert!(output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.is_empty(), "{stderr}");
    let written = client
        .kv_get_raw("steward/rollouts/face/control")
        .await
        .unwrap();
    assert!(written.is_some(), "the pause is written");
}

#[tokio::test]
async fn control_for_unknown_pool_fails() {
    let (consul, client) = start().await;
    let output = steward(&consul, &["rollout", "abort", "ghost"]).await;
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("pool \"ghost\" not found"), "{stderr}");
    let written = client
        .kv_get_raw("steward/rollouts/ghost/control")
        .await
        .unwrap();
    assert_eq!(written, None);
}

#[tokio::test]
async fn control_sender_falls_back_to_logname() {
    let (consul, client) = start().await;
    put_status(&client, "RollingOut", &rollout_state()).await;

    let addr = consul.addr().to_string();
    let output = tokio::task::spawn_blocking(move || {
        assert_cmd::Command::cargo_bin("steward")
            .unwrap()
            .args(["rollout", "pause", "face"])
            .env("CONSUL_HTTP_ADDR", addr)
            .env_remove("CONSUL_HTTP_TOKEN")
            .env_remove("CONSUL_HTTP_TOKEN_FILE")
            .env_remove("STEWARD_PREFIX")
            .env("USER", "")
            .env("LOGNAME", "bob")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(output.status.success(), "{output:?}");

    assert_eq!(read_control(&client).await.by, "bob");
}
