//! A real Prometheus (Debian's `prometheus` and `promtool`) loaded with backfilled history.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::process::{ProcessGroup, free_port};

/// How long Prometheus may take before `/-/ready` returns 200. It usually takes a few seconds.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running Prometheus on 127.0.0.1, stopped (with its data directory removed) on drop.
pub struct Prometheus {
    /// Base URL such as `http://127.0.0.1:39123`.
    pub url: String,
    // Field order matters: the process stops before its directory is removed.
    _process: ProcessGroup,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Backfills `openmetrics` (an OpenMetrics text ending in `# EOF`) with
    /// `promtool tsdb create-blocks-from openmetrics`, then starts Prometheus on the blocks.
    /// Panics, failing the test, when either step fails.
    pub fn start_with(openmetrics: &str) -> Self {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let data = dir.path().join("data");
        let input = dir.path().join("history.om");
        std::fs::write(&input, openmetrics).expect("write the OpenMetrics file");
        backfill(&input, &data);

        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, "global: {}\nscrape_configs: []\n").expect("write the config");

        let port = free_port();
        let mut command = Command::new("prometheus");
        command
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // Backfilled blocks older than the retention would be deleted at once.
            .arg("--storage.tsdb.retention.time=100y")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("prometheus.log")).expect("log file"));
        let mut process = ProcessGroup::spawn("prometheus", command);

        let url = format!("http://127.0.0.1:{port}");
        wait_ready(&format!("{url}/-/ready"), &mut process, dir.path());
        Self {
            url,
            _process: process,
            _dir: dir,
        }
    }
}

fn backfill(input: &Path, data: &Path) {
    let output = Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(input)
        .arg(data)
        .output()
        .unwrap_or_else(|e| panic!("cannot run promtool: {e}"));
    assert!(
        output.status.success(),
        "promtool failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn wait_ready(url: &str, process: &mut ProcessGroup, dir: &Path) {
    let deadline = Instant::now() + READY_TIMEOUT;
    while Instant::now() < deadline {
        process.assert_running();
        if let Ok(response) = http_status(url)
            && response == 200
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default();
    panic!("Prometheus not ready at {url} after {READY_TIMEOUT:?}; log:\n{log}");
}

/// A blocking GET returning the status code, over a plain TCP socket so the helper needs no
/// runtime.
fn http_status(url: &str) -> std::io::Result<u16> {
    use std::io::{Read, Write};

    let rest = url.strip_prefix("http://").unwrap_or(url);
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut stream = std::net::TcpStream::connect(host)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(stream, "GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n")?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head)?;
    let code = std::str::from_utf8(&head[9..12])
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok(code)
}

/// Renders per-minute request counts as an OpenMetrics counter
/// `api_requests_total{service="…"}`, one cumulative point per minute.
pub fn counter_openmetrics(series: &[(&str, &[(i64, f64)])]) -> String {
    let mut text = String::from("# TYPE api_requests counter\n");
    for (service, rows) in series {
        let mut total = 0.0;
        for (t, count) in *rows {
            total += count;
            text.push_str(&format!(
                "api_requests_total{{service=\"{service}\"}} {total} {t}\n"
            ));
        }
    }
    text.push_str("# EOF\n");
    text
}
