//! A real RabbitMQ (Debian's `rabbitmq-server`) with the management plugin, on private
//! loopback ports and a private epmd.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::process::{ProcessGroup, free_port};

/// RabbitMQ 3.10 serves the management API 10 to 20 s after start on an idle machine, and a
/// busy one needs more.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// A running RabbitMQ node, stopped on drop together with its epmd.
pub struct RabbitMq {
    /// Management API base URL such as `http://127.0.0.1:39123`.
    pub url: String,
    epmd_port: u16,
    process: Option<ProcessGroup>,
    _dir: tempfile::TempDir,
}

impl RabbitMq {
    /// Starts a node and waits until `GET /api/overview` succeeds for `guest`. Panics, failing
    /// the test, when it does not start.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let base = dir.path();
        for sub in ["mnesia", "log"] {
            std::fs::create_dir(base.join(sub)).expect("create a data directory");
        }
        std::fs::write(base.join("enabled_plugins"), "[rabbitmq_management].\n")
            .expect("write enabled_plugins");

        // The node runs as the `rabbitmq` user, so it must own its directories.
        let chown = Command::new("chown")
            .args(["-R", "rabbitmq:rabbitmq"])
            .arg(base)
            .status()
            .expect("run chown");
        assert!(chown.success(), "chown of {} failed", base.display());

        let (node_port, dist_port, http_port, epmd_port) =
            (free_port(), free_port(), free_port(), free_port());
        let node = format!("steward-test-{http_port}@localhost");
        // The Debian wrapper `/usr/sbin/rabbitmq-server` switches user with `su -c`, which
        // starts a new session that a process-group kill would miss, so the node runs
        // directly as `rabbitmq` in this test's process group.
        let mut command = Command::new("/usr/lib/rabbitmq/bin/rabbitmq-server");
        command
            .uid(user_id("-u"))
            .gid(user_id("-g"))
            .env("HOME", "/var/lib/rabbitmq")
            .env("RABBITMQ_MNESIA_BASE", base.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", base.join("log"))
            .env("RABBITMQ_FEATURE_FLAGS_FILE", base.join("feature_flags"))
            .env(
                "RABBITMQ_ENABLED_PLUGINS_FILE",
                base.join("enabled_plugins"),
            )
            .env("RABBITMQ_NODENAME", &node)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", node_port.to_string())
            .env("RABBITMQ_DIST_PORT", dist_port.to_string())
            .env("ERL_EPMD_PORT", epmd_port.to_string())
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .env(
                "RABBITMQ_SERVER_START_ARGS",
                format!(
                    "-rabbitmq_management listener [{{port,{http_port}}},{{ip,\"127.0.0.1\"}}] \
                     -kernel inet_dist_use_interface {{127,0,0,1}}"
                ),
            )
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let mut process = ProcessGroup::spawn("rabbitmq-server", command);

        let url = format!("http://127.0.0.1:{http_port}");
        wait_ready(&url, &mut process, base).await;
        Self {
            url,
            epmd_port,
            process: Some(process),
            _dir: dir,
        }
    }
}

impl Drop for RabbitMq {
    fn drop(&mut self) {
        // The node's process group goes first. epmd runs as a daemon outside the group and
        // refuses `-kill` until it has noticed that the node is gone, hence the retries.
        drop(self.process.take());
        for _ in 0..20 {
            let killed = Command::new("epmd")
                .args(["-port", &self.epmd_port.to_string(), "-kill"])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("Killed"));
            if killed {
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        eprintln!("epmd on port {} did not stop", self.epmd_port);
    }
}

/// Returns the `rabbitmq` user's uid (`flag` = `-u`) or gid (`-g`).
fn user_id(flag: &str) -> u32 {
    let output = Command::new("id")
        .args([flag, "rabbitmq"])
        .output()
        .expect("run id");
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no `rabbitmq` user; install the rabbitmq-server package"))
}

async fn wait_ready(url: &str, process: &mut ProcessGroup, dir: &Path) {
    let client = steward::autoscale::source::http_client().expect("client");
    let deadline = Instant::now() + READY_TIMEOUT;
    while Instant::now() < deadline {
        process.assert_running();
        let answer = client
            .get(format!("{url}/api/overview"))
            .basic_auth("guest", Some("guest"))
            .send()
            .await;
        if answer.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let logs = std::fs::read_dir(dir.join("log"))
        .map(|entries| {
            entries
                .flatten()
                .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default();
    panic!("RabbitMQ not ready at {url} after {READY_TIMEOUT:?}; logs:\n{logs}");
}
