//! The files under `examples/` beside the pools: alert rules, the Grafana dashboard, Steward's
//! own Nomad job and the GitOps sync script. Each is run against the real tool it is for
//! (promtool, the emulated Nomad, the steward binary on the emulated Consul).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;
use steward::consul::{ConsulClient, Keys, QueryOptions};
use steward::reconcile::{AutoscalerStatus, Status, plan};
use steward::sim::consul::{ConsulEmulator, ConsulEmulatorConfig};
use steward::sim::nomad::{NomadEmulator, NomadEmulatorConfig};
use steward::telemetry::{Metrics, RequestObserver as _};

use crate::reconcile::{FakeCluster, example_pool, time};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Runs `promtool ARGS` in `dir`. promtool comes with Debian's `prometheus` package, which
/// `scripts/install-test-servers` installs.
fn promtool(dir: &Path, args: &[&str]) -> Output {
    Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool runs (apt-get install prometheus, or scripts/install-test-servers)")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn alert_rules_pass_promtool_and_their_unit_tests() {
    let dir = examples().join("monitoring");

    let checked = promtool(&dir, &["check", "rules", "alerts.yml"]);
    assert!(checked.status.success(), "{}", text(&checked));

    let tested = promtool(&dir, &["test", "rules", "alerts.test.yml"]);
    assert!(tested.status.success(), "{}", text(&tested));
}

/// Returns the PromQL queries of the dashboard's panels, with Grafana's variables replaced by values
/// Prometheus accepts.
fn dashboard_queries() -> Vec<String> {
    let dashboard: Value =
        serde_json::from_str(&read(&examples().join("monitoring/grafana-dashboard.json")))
            .expect("the dashboard is JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(!panels.is_empty());
    panels
        .iter()
        .flat_map(|panel| panel["targets"].as_array().expect("targets").iter())
        .map(|target| {
            target["expr"]
                .as_str()
                .expect("expr")
                .replace("$pool", ".+")
                .replace("$__rate_interval", "5m")
        })
        .collect()
}

#[test]
fn dashboard_queries_parse() {
    let queries = dashboard_queries();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, query) in queries.iter().enumerate() {
        let quoted = serde_json::to_string(query).expect("a JSON string is a YAML string");
        rules.push_str(&format!(
            "      - record: dashboard:query{i}\n        expr: {quoted}\n"
        ));
    }
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("dashboard.yml"), rules).expect("write rules");

    let checked = promtool(dir.path(), &["check", "rules", "dashboard.yml"]);
    assert!(checked.status.success(), "{}", text(&checked));
    assert!(
        text(&checked).contains(&format!("{} rules found", queries.len())),
        "{}",
        text(&checked)
    );
}

/// Returns every series name the controller exports once each kind of metric has a value.
fn exported_series() -> BTreeSet<String> {
    let metrics = Metrics::new();
    metrics.set_leader(true);
    metrics.observe_reconcile("face-match", 0.02, Some("conflict"));
    metrics.set_queue_depth(1);
    metrics.inc_watch_restarts("consul-pools");
    metrics.observe("nomad", "/v1/jobs", 200, 0.004);

    let pool = example_pool();
    let cluster = FakeCluster::new(&["dc-a", "dc-b"]);
    let planned = plan(&pool, None, &cluster.observed, time("2026-12-04T20:00:00Z"));
    let mut status = Status::next(
        "face-match",
        None,
        &planned.status,
        1,
        "test",
        time("2026-12-04T20:00:00Z"),
    );
    let sizing = status.sizing.as_mut().expect("a sizing decision");
    sizing.predicted_rps = Some(10.0);
    sizing.autoscaler = Some(AutoscalerStatus::default());
    metrics.record_status(&status);

    metrics
        .encode()
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn alerts_and_dashboard_use_only_exported_metrics() {
    let exported = exported_series();
    let names = regex::Regex::new(r"steward_[a-z_]+").expect("valid pattern");

    for file in ["monitoring/alerts.yml", "monitoring/grafana-dashboard.json"] {
        let body = read(&examples().join(file));
        let used: BTreeSet<&str> = names.find_iter(&body).map(|m| m.as_str()).collect();
        assert!(!used.is_empty(), "{file} uses no Steward metric");
        for name in used {
            assert!(
                exported.contains(name),
                "{file} uses {name}, which the controller does not export; it exports {exported:?}"
            );
        }
    }
}

async fn get_list(http: &reqwest::Client, url: String) -> Vec<Value> {
    let response = http.get(&url).send().await.expect("GET answered");
    response
        .json()
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"))
}

#[tokio::test]
async fn nomad_job_spreads_three_replicas() {
    let nomad = NomadEmulator::start(NomadEmulatorConfig {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        datacenters: vec!["dc-a".to_owned(), "dc-b".to_owned()],
        nodes_per_dc: 2,
        speed: 50.0,
        ..NomadEmulatorConfig::default()
    })
    .await
    .expect("nomad emulator starts");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let job = read(&examples().join("nomad/steward.nomad.json"));

    let registered = http
        .post(format!("{}/v1/jobs", nomad.url()))
        .body(job)
        .send()
        .await
        .expect("register");
    assert_eq!(
        registered.status(),
        200,
        "{}",
        registered.text().await.unwrap_or_default()
    );

    let nodes = get_list(&http, format!("{}/v1/nodes", nomad.url())).await;
    let datacenter_of = |node: &str| {
        nodes
            .iter()
            .find(|n| n["ID"] == node)
            .and_then(|n| n["Datacenter"].as_str())
            .map(str::to_owned)
    };

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let running = loop {
        let allocations =
            get_list(&http, format!("{}/v1/job/steward/allocations", nomad.url())).await;
        let running: Vec<Value> = allocations
            .into_iter()
            .filter(|a| a["ClientStatus"] == "running")
            .collect();
        if running.len() == 3 {
            break running;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "3 running replicas expected, got {running:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    let hosts: BTreeSet<&str> = running
        .iter()
        .map(|a| a["NodeID"].as_str().expect("node"))
        .collect();
    assert_eq!(hosts.len(), 3, "replicas share a node: {running:?}");
    let zones: BTreeSet<String> = hosts.iter().filter_map(|n| datacenter_of(n)).collect();
    assert_eq!(
        zones.len(),
        2,
        "replicas not spread over both zones: {running:?}"
    );

    nomad.shutdown().await;
}

/// Runs `examples/gitops/sync.sh MODE DIR` with the built `steward` first on `PATH`.
async fn sync(consul_addr: &str, mode: &str, dir: &Path) -> Output {
    let script = examples().join("gitops/sync.sh");
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_steward"))
        .parent()
        .expect("bin dir")
        .to_owned();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let consul_addr = consul_addr.to_owned();
    let mode = mode.to_owned();
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || {
        Command::new("bash")
            .arg(script)
            .arg(mode)
            .arg(dir)
            .env("PATH", path)
            .env("CONSUL_HTTP_ADDR", consul_addr)
            .env_remove("CONSUL_HTTP_TOKEN")
            .env_remove("CONSUL_HTTP_TOKEN_FILE")
            .env_remove("STEWARD_PREFIX")
            .output()
            .expect("bash runs")
    })
    .await
    .expect("sync task")
}

async fn pool_names(consul: &ConsulClient, keys: &Keys) -> Vec<String> {
    let (pools, _) = consul
        .kv_list(&keys.pools_prefix(), &QueryOptions::default())
        .await
        .expect("list pools");
    pools
        .iter()
        .map(|pair| pair.key.trim_start_matches(&keys.pools_prefix()).to_owned())
        .collect()
}

#[tokio::test]
async fn gitops_sync_plans_applies_prunes() {
    let consul = ConsulEmulator::start(ConsulEmulatorConfig {
        addr: "127.0.0.1:0".parse().expect("address"),
        ..ConsulEmulatorConfig::default()
    })
    .await
    .expect("consul emulator starts");
    let addr = consul.addr().to_string();
    let client = ConsulClient::for_url(consul.url()).expect("consul client");
    let keys = Keys::new("steward/").expect("prefix");
    let repo = tempfile::tempdir().expect("temp dir");
    for pool in ["face-match.yaml", "ocr.yaml"] {
        std::fs::copy(examples().join("pools").join(pool), repo.path().join(pool))
            .expect("copy pool");
    }

    let planned = sync(&addr, "plan", repo.path()).await;
    assert!(planned.status.success(), "{}", text(&planned));
    assert!(text(&planned).contains("face-match"), "{}", text(&planned));
    assert!(pool_names(&client, &keys).await.is_empty(), "plan wrote");

    let applied = sync(&addr, "apply", repo.path()).await;
    assert!(applied.status.success(), "{}", text(&applied));
    assert_eq!(pool_names(&client, &keys).await, ["face-match", "ocr"]);

    std::fs::remove_file(repo.path().join("ocr.yaml")).expect("remove ocr");
    let pruned = sync(&addr, "apply", repo.path()).await;
    assert!(pruned.status.success(), "{}", text(&pruned));
    assert_eq!(pool_names(&client, &keys).await, ["face-match"]);

    std::fs::write(
        repo.path().join("broken.yaml"),
        "kind: WorkerPool\nspec: [\n",
    )
    .expect("write broken file");
    std::fs::remove_file(repo.path().join("face-match.yaml")).expect("remove face-match");
    let rejected = sync(&addr, "apply", repo.path()).await;
    assert_eq!(rejected.status.code(), Some(2), "{}", text(&rejected));
    assert!(
        text(&rejected).contains("broken.yaml"),
        "{}",
        text(&rejected)
    );
    assert_eq!(
        pool_names(&client, &keys).await,
        ["face-match"],
        "an invalid file must stop the sync before the prune"
    );

    let script = examples().join("gitops/sync.sh");
    let missing_dir = Command::new("bash")
        .arg(&script)
        .arg("plan")
        .output()
        .expect("bash runs");
    assert_eq!(missing_dir.status.code(), Some(2), "{}", text(&missing_dir));

    let unknown = sync(&addr, "destroy", repo.path()).await;
    assert_eq!(unknown.status.code(), Some(2), "{}", text(&unknown));
    assert!(text(&unknown).contains("plan|apply"), "{}", text(&unknown));

    consul.shutdown().await;
}
