//! `steward dev` and `steward controller` as processes: how they end.

use std::io::{BufRead as _, BufReader};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use steward::consul::{ConsulClient, Keys};

use crate::support::process::{ProcessGroup, free_port};

/// Upper bound on the wait for the process to exit. It only turns a hang into a failure.
const EXIT_LIMIT: Duration = Duration::from_secs(60);

/// Builds `steward dev` with every address on a free loopback port, except `flag`, which
/// gets `address`.
fn dev_with(flag: &str, address: &str) -> Command {
    let mut command = Command::new(assert_cmd::cargo::cargo_bin("steward"));
    command.arg("dev");
    for name in [
        "--consul-addr",
        "--nomad-addr",
        "--prometheus-addr",
        "--listen",
    ] {
        let value = if name == flag { address } else { "127.0.0.1:0" };
        command.args([name, value]);
    }
    command
}

#[test]
fn dev_exits_when_listen_port_is_busy() {
    let occupied = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let busy = occupied.local_addr().expect("local address").to_string();
    let mut child = dev_with("--listen", &busy)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("steward dev starts");

    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("process status") {
            break status;
        }
        if started.elapsed() > EXIT_LIMIT {
            child.kill().expect("kill");
            child.wait().expect("reap");
            panic!("steward dev kept running without its controller");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = child.wait_with_output().expect("stderr readable");
    let stderr = String::from_utf8_lossy(&output.stderr);

    assert_eq!(status.code(), Some(1), "stderr: {stderr}");
    assert!(stderr.contains("controller stopped"), "stderr: {stderr}");
    assert!(stderr.contains(&busy), "stderr names the address: {stderr}");
    assert!(
        stderr.contains("--listen"),
        "stderr names the flag: {stderr}"
    );
    drop(occupied);
}

#[test]
fn dev_scale_to_takes_per_day_form() {
    let bad = Command::new(assert_cmd::cargo::cargo_bin("steward"))
        .args(["dev", "--scale-to", "lots/day"])
        .output()
        .expect("steward runs");
    assert_eq!(bad.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("such as 2000000/day"), "{stderr}");
    assert!(
        !stderr.contains("recorded"),
        "dev has no recorded mode: {stderr}"
    );

    // The form `steward simulate` takes parses: the run gets past its arguments and stops on
    // the bad --speed instead.
    let good = Command::new(assert_cmd::cargo::cargo_bin("steward"))
        .args(["dev", "--scale-to", "2000000/day", "--speed", "0"])
        .output()
        .expect("steward runs");
    let stderr = String::from_utf8_lossy(&good.stderr);
    assert!(stderr.contains("--speed 0"), "{stderr}");
    assert!(!stderr.contains("--scale-to"), "{stderr}");
}

#[test]
fn busy_emulator_port_names_its_flag() {
    let occupied = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let busy = occupied.local_addr().expect("local address").to_string();
    for flag in ["--consul-addr", "--nomad-addr", "--prometheus-addr"] {
        let output = dev_with(flag, &busy).output().expect("steward runs");

        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{flag}: {stderr}");
        assert!(stderr.contains(&busy), "{flag}: {stderr}");
        assert!(
            stderr.contains(&format!("choose a free address with {flag}")),
            "{flag}: {stderr}"
        );
    }
    drop(occupied);
}

/// Starts `steward dev` on free loopback ports with `extra` flags. Returns it with a client of
/// its Consul once it has written a pool status (`wait_for_status`) or its pools.
async fn dev_running(extra: &[&str], wait_for_status: bool) -> (ProcessGroup, ConsulClient) {
    let consul_addr = format!("127.0.0.1:{}", free_port());
    let mut command = dev_with("--consul-addr", &consul_addr);
    command
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut process = ProcessGroup::spawn("steward dev", command);
    let client = ConsulClient::for_url(format!("http://{consul_addr}")).expect("client");
    let keys = Keys::new("steward/").expect("prefix");

    let started = Instant::now();
    loop {
        process.assert_running();
        let prefix = if wait_for_status {
            keys.status_prefix()
        } else {
            keys.pools_prefix()
        };
        if let Ok((pairs, _)) = client.kv_list(&prefix, &Default::default()).await
            && !pairs.is_empty()
        {
            return (process, client);
        }
        assert!(
            started.elapsed() < EXIT_LIMIT,
            "steward dev never wrote {prefix}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn dev_clock_key_only_with_controller() {
    let keys = Keys::new("steward/").expect("prefix");

    let (with_controller, client) = dev_running(&[], true).await;
    let anchor = client.kv_get_raw(&keys.dev_clock()).await.expect("read");
    assert!(
        anchor.is_some(),
        "a dev run with its controller stores its clock"
    );
    drop(with_controller);

    let (without, client) = dev_running(&["--no-controller"], false).await;
    // The pools are applied just before the key would be written; give that moment to pass.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let anchor = client.kv_get_raw(&keys.dev_clock()).await.expect("read");
    assert_eq!(
        anchor, None,
        "an external controller runs on the wall clock"
    );
    drop(without);
}

#[test]
fn sigterm_stops_controller_with_closed_log() {
    // The emulated cluster alone, for the controller to connect to.
    let consul = format!("127.0.0.1:{}", free_port());
    let nomad = format!("127.0.0.1:{}", free_port());
    let mut cluster = Command::new(assert_cmd::cargo::cargo_bin("steward"));
    cluster
        .args(["dev", "--no-controller", "--consul-addr", &consul])
        .args(["--nomad-addr", &nomad, "--prometheus-addr", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _cluster = ProcessGroup::spawn("steward dev --no-controller", cluster);

    let mut command = Command::new(assert_cmd::cargo::cargo_bin("steward"));
    command
        .args(["controller", "--id", "piped", "--listen", "127.0.0.1:0"])
        .env("CONSUL_HTTP_ADDR", &consul)
        .env("NOMAD_ADDR", format!("http://{nomad}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut controller = ProcessGroup::spawn("steward controller", command);

    // Read the log until the caches are synced, then close the pipe as
    // `steward controller 2>&1 | head` does once `head` has its lines.
    let mut stderr = BufReader::new(controller.child().stderr.take().expect("stderr piped"));
    let mut line = String::new();
    while !line.contains("caches synced") {
        line.clear();
        let read = stderr.read_line(&mut line).expect("stderr readable");
        assert!(read > 0, "the controller stopped before its caches synced");
    }
    drop(stderr);

    let pid = controller.child().id().to_string();
    let sent = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(sent.success());

    let started = Instant::now();
    let status = loop {
        if let Some(status) = controller.child().try_wait().expect("process status") {
            break status;
        }
        assert!(
            started.elapsed() < EXIT_LIMIT,
            "the controller ignored SIGTERM once its stderr pipe had closed"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0), "{status}");
}
