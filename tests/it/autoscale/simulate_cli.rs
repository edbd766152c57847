//! `steward simulate` end to end: report keys, chart file and input errors.

use std::path::Path;

use assert_cmd::Command;

const POOL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/simulate-pool.yaml");
const TRACE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/traces/nasa_ksc_jul1995_1min.csv"
);

/// Writes the first three days of the NASA trace to `dir` and returns its path.
fn short_trace(dir: &Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(TRACE).expect("the NASA trace is in the repository");
    let head: Vec<&str> = text.lines().take(1 + 3 * 1440).collect();
    let path = dir.join("trace.csv");
    std::fs::write(&path, head.join("\n") + "\n").expect("write the short trace");
    path
}

#[test]
fn simulate_writes_report_and_chart() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let trace = short_trace(dir.path());
    let output = dir.path().join("out");

    let run = Command::cargo_bin("steward")
        .expect("the steward binary is built")
        .args([
            "simulate",
            "--pool",
            POOL,
            "--scale-to",
            "2000000/day",
            "--seed",
            "3",
        ])
        .arg("--trace")
        .arg(&trace)
        .arg("--output")
        .arg(&output)
        .output()
        .expect("run steward simulate");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("oracle"), "{stdout}");
    assert!(stdout.contains("seasonal"), "{stdout}");

    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(output.join("report.json")).expect("report.json written"),
    )
    .expect("report.json parses");
    let keys: Vec<&str> = report
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "trace",
            "scaled_requests_per_day",
            "startup_seconds",
            "oracle_worker_hours",
            "predictors"
        ]
    );
    assert_eq!(report["scaled_requests_per_day"], 2_000_000.0);
    assert_eq!(report["startup_seconds"], 360);
    let oracle_hours = report["oracle_worker_hours"].as_f64().expect("a number");
    assert!(oracle_hours > 0.0);

    let predictors = report["predictors"].as_array().expect("an array");
    let names: Vec<&str> = predictors
        .iter()
        .map(|p| p["predictor"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["linear-slope", "seasonal", "reactive"]);
    for p in predictors {
        let keys: Vec<&str> = p
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "predictor",
                "worker_hours",
                "ratio_to_oracle",
                "underprovisioned_minutes",
                "underprovisioned_fraction",
                "peak_shortfall_workers",
                "scaling_actions"
            ]
        );
        let hours = p["worker_hours"].as_f64().expect("a number");
        let ratio = p["ratio_to_oracle"].as_f64().expect("a number");
        assert!((ratio - hours / oracle_hours).abs() < 1e-9, "{p}");
        assert!(ratio >= 1.0, "no predictor can beat the oracle: {p}");
    }

    let chart = std::fs::read(output.join("chart.png")).expect("chart.png written");
    assert_eq!(&chart[..8], b"\x89PNG\r\n\x1a\n");
    assert!(chart.len() > 10_000, "chart is only {} bytes", chart.len());
}

#[test]
fn simulate_rejects_bad_input() {
    let dir = tempfile::tempdir().expect("temporary directory");

    let bad_rate = Command::cargo_bin("steward")
        .expect("the steward binary is built")
        .args(["simulate", "--pool", POOL, "--scale-to", "lots"])
        .output()
        .expect("run steward simulate");
    assert_eq!(bad_rate.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_rate.stderr).contains("2000000/day"));

    let pool = std::fs::read_to_string(POOL).expect("read the pool");
    let cut = pool
        .find("  autoscaling:")
        .expect("the pool has autoscaling");
    let without = dir.path().join("pool.yaml");
    std::fs::write(&without, &pool[..cut]).expect("write the pool");
    let no_autoscaling = Command::cargo_bin("steward")
        .expect("the steward binary is built")
        .args(["simulate", "--pool"])
        .arg(&without)
        .output()
        .expect("run steward simulate");
    assert_eq!(no_autoscaling.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&no_autoscaling.stderr);
    assert!(stderr.contains("no spec.autoscaling"), "{stderr}");
}
