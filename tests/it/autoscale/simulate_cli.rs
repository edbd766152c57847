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
    assert!(
        stdout.contains("oracle held for whole 20m cycles: "),
        "{stdout}"
    );

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

/// Runs `steward simulate` with `args` from `dir` and returns its output.
fn simulate_in(dir: &Path, args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::cargo_bin("steward")
        .expect("the steward binary is built")
        .current_dir(dir)
        .arg("simulate")
        .args(args)
        .output()
        .expect("run steward simulate")
}

/// Writes the bench pool with `edit` applied to its text and returns the file's path.
fn write_pool(dir: &Path, file: &str, edit: impl Fn(&str) -> String) -> std::path::PathBuf {
    let pool = std::fs::read_to_string(POOL).expect("read the pool");
    let path = dir.join(file);
    std::fs::write(&path, edit(&pool)).expect("write the pool");
    path
}

#[test]
fn simulate_pool_min_above_max_is_usage_error() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let pool = write_pool(dir.path(), "pool.yaml", |p| p.replace("min: 2", "min: 300"));
    let run = simulate_in(dir.path(), &["--pool".as_ref(), pool.as_os_str()]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("spec.workers.min"), "{stderr}");
}

#[test]
fn simulate_pool_checked_like_validate() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let pool = write_pool(dir.path(), "pool.yaml", |p| {
        p.replace("lookback: 1h", "lookback: 0s")
    });
    let run = simulate_in(dir.path(), &["--pool".as_ref(), pool.as_os_str()]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("spec.autoscaling.lookback"), "{stderr}");
    assert!(stderr.contains("pool.yaml:"), "{stderr}");
}

#[test]
fn simulate_pool_file_needs_one_pool() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let two = write_pool(dir.path(), "two.yaml", |p| {
        let second = p
            .replace("name: nasa-web", "name: nasa-api")
            .replace("dc-a", "dc-c");
        format!("{p}---\n{second}")
    });
    let run = simulate_in(dir.path(), &["--pool".as_ref(), two.as_os_str()]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("2 WorkerPools (nasa-web, nasa-api)"),
        "{stderr}"
    );
    assert!(stderr.contains("--pool takes one pool"), "{stderr}");

    let override_file = dir.path().join("override.yaml");
    std::fs::write(
        &override_file,
        "apiVersion: steward/v1\nkind: Override\nmetadata:\n  name: nasa-web\nspec:\n  \
         workers: 3\n  reason: test\n  until: 2999-01-01T00:00:00Z\n",
    )
    .expect("write the override");
    let run = simulate_in(dir.path(), &["--pool".as_ref(), override_file.as_os_str()]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("contains no WorkerPool"), "{stderr}");
}

#[test]
fn simulate_default_trace_is_built_in() {
    // The working directory has no traces/ folder, so only the built-in trace can be read.
    let dir = tempfile::tempdir().expect("temporary directory");
    let run = simulate_in(
        dir.path(),
        &[
            "--pool".as_ref(),
            POOL.as_ref(),
            "--predictors".as_ref(),
            "reactive".as_ref(),
        ],
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{stderr}");
    assert!(stdout.contains("under-provisioned minutes"), "{stdout}");
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("simulate-report/report.json"))
            .expect("report.json written"),
    )
    .expect("report.json parses");
    assert_eq!(report["scaled_requests_per_day"], 2_000_000.0);
    assert!(
        report["trace"]
            .as_str()
            .is_some_and(|t| t.contains("built-in")),
        "{report}"
    );
}

#[test]
fn simulate_checks_output_and_predictors_first() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let file = dir.path().join("not-a-directory");
    std::fs::write(&file, "x").expect("write a file");
    let run = simulate_in(
        dir.path(),
        &[
            "--pool".as_ref(),
            POOL.as_ref(),
            "--output".as_ref(),
            file.join("out").as_os_str(),
        ],
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot create the output directory"),
        "{stderr}"
    );
    assert!(run.stdout.is_empty(), "nothing is simulated first");

    let run = simulate_in(
        dir.path(),
        &[
            "--pool".as_ref(),
            POOL.as_ref(),
            "--predictors".as_ref(),
            "seasonal,reactive,seasonal".as_ref(),
        ],
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("seasonal twice"), "{stderr}");
}

#[test]
fn simulate_warns_on_short_trace_and_low_max() {
    let dir = tempfile::tempdir().expect("temporary directory");
    // 30 minutes at 50 requests per second, where 5 workers serve 25.
    let rows: Vec<String> = (0..30)
        .map(|minute| format!("2024-01-01T00:{minute:02}:00Z,3000"))
        .collect();
    let trace = dir.path().join("flat.csv");
    std::fs::write(&trace, format!("timestamp,requests\n{}\n", rows.join("\n")))
        .expect("write the trace");
    let pool = write_pool(dir.path(), "pool.yaml", |p| p.replace("max: 200", "max: 5"));

    let run = simulate_in(
        dir.path(),
        &[
            "--pool".as_ref(),
            pool.as_os_str(),
            "--trace".as_ref(),
            trace.as_os_str(),
            "--scale-to".as_ref(),
            "recorded".as_ref(),
        ],
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(
        stderr.contains("the trace has 30 minutes, fewer than lookback + interval (80 minutes)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("in 30 minutes the demand exceeds workers.max (5)"),
        "{stderr}"
    );
    assert!(!stderr.contains("rescaled"), "{stderr}");
}

#[test]
fn simulate_notes_the_rescale() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let trace = short_trace(dir.path());
    let run = simulate_in(
        dir.path(),
        &[
            "--pool".as_ref(),
            POOL.as_ref(),
            "--trace".as_ref(),
            trace.as_os_str(),
            "--seed".as_ref(),
            "4".as_ref(),
        ],
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(
        stderr.contains("note: the trace is rescaled to 2000000 requests a day with seed 4"),
        "{stderr}"
    );
}
