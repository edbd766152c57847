//! `steward apply/get/delete/override` and `steward dev consul` against an emulator started
//! by each test.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use steward::cli::apply;
use steward::consul::{ConsulClient, Keys, WriteMode};
use steward::sim::consul::{ConsulEmulator, ConsulEmulatorConfig, RunningConsul};
use steward::spec;

async fn start() -> (RunningConsul, ConsulClient) {
    let config = ConsulEmulatorConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        ..ConsulEmulatorConfig::default()
    };
    let consul = ConsulEmulator::start(config).await.unwrap();
    let client = ConsulClient::for_url(consul.url()).unwrap();
    (consul, client)
}

/// Returns the example pool, renamed to `name` and set to `version`.
fn pool_yaml(name: &str, version: &str) -> String {
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/pools/face-match.yaml"),
    )
    .unwrap();
    example
        .replace("name: face-match", &format!("name: {name}"))
        .replace("id: face-match", &format!("id: {name}"))
        .replace("registry.example.com/vision/face-match:1.4.2", version)
}

fn write_file(dir: &Path, file: &str, text: &str) -> PathBuf {
    let path = dir.join(file);
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `steward ARGS` against `consul` on a blocking thread, with no Consul settings
/// inherited from the environment.
async fn steward(consul: &RunningConsul, args: &[&str]) -> Output {
    steward_at(&consul.addr().to_string(), args).await
}

/// Runs `steward ARGS` on a blocking thread with `CONSUL_HTTP_ADDR` set to `addr` and no
/// other Consul settings from the environment.
async fn steward_at(addr: &str, args: &[&str]) -> Output {
    let addr = addr.to_owned();
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

/// Writes pool `name` at `version` to `NAME.yaml` in `dir` and applies it, which must succeed.
/// Returns the file and the command's output.
async fn apply_pool(
    consul: &RunningConsul,
    dir: &Path,
    name: &str,
    version: &str,
) -> (PathBuf, Output) {
    let file = write_file(dir, &format!("{name}.yaml"), &pool_yaml(name, version));
    let applied = steward(consul, &["apply", "-f", file.to_str().unwrap()]).await;
    assert!(applied.status.success(), "{}", stderr(&applied));
    (file, applied)
}

/// Writes `value` under `key` as it is, as a hand edit in the Consul UI would.
async fn put_raw(client: &ConsulClient, key: &str, value: &[u8]) {
    client
        .kv_put(key, value, None, &WriteMode::Plain)
        .await
        .unwrap();
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_creates_skips_and_configures() {
    let (consul, client) = start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "web.yaml", &pool_yaml("web", "img:1"));
    let file = file.to_str().unwrap();

    let first = steward(&consul, &["apply", "-f", file]).await;
    assert!(first.status.success(), "{}", stderr(&first));
    assert_eq!(stdout(&first), "pool/web created\n");
    let stored = client.kv_get("steward/pools/web").await.unwrap().unwrap();
    assert!(
        String::from_utf8(stored.value.clone())
            .unwrap()
            .contains("img:1")
    );

    let second = steward(&consul, &["apply", "-f", file]).await;
    assert_eq!(stdout(&second), "pool/web unchanged\n");
    let after = client.kv_get("steward/pools/web").await.unwrap().unwrap();
    assert_eq!(
        after.modify_index, stored.modify_index,
        "an unchanged pool is not written"
    );

    write_file(dir.path(), "web.yaml", &pool_yaml("web", "img:2"));
    let third = steward(&consul, &["apply", "-f", file]).await;
    assert_eq!(stdout(&third), "pool/web configured\n");
    let updated = client.kv_get("steward/pools/web").await.unwrap().unwrap();
    assert!(String::from_utf8(updated.value).unwrap().contains("img:2"));
    consul.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_invalid_input_writes_nothing() {
    let (consul, client) = start().await;
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "a.yaml", &pool_yaml("good", "img:1"));
    write_file(
        dir.path(),
        "b.yaml",
        &pool_yaml("bad", "img:1").replace("max: 24", "max: many"),
    );

    let output = steward(&consul, &["apply", "-f", dir.path().to_str().unwrap()]).await;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("b.yaml"), "{}", stderr(&output));
    assert!(stderr(&output).contains("nothing was applied"));
    let (pairs, _) = client
        .kv_list("steward/", &Default::default())
        .await
        .unwrap();
    assert!(pairs.is_empty(), "no key may be written: {pairs:?}");
    consul.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_rejects_job_of_stored_pool() {
    let (consul, client) = start().await;
    let dir = tempfile::tempdir().unwrap();
    apply_pool(&consul, dir.path(), "ocr", "img:1").await;

    // Another name, the same Nomad job.
    let copy = pool_yaml("ocr", "img:1").replace("name: ocr", "name: ocr-copy");
    let second = write_file(dir.path(), "copy.yaml", &copy);
    let output = steward(&consul, &["apply", "-f", second.to_str().unwrap()]).await;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(
        text.contains("spec.job.id: Nomad job `ocr` in namespace `default` is already claimed by pool `ocr` in Consul"),
        "{text}"
    );
    assert!(text.contains("nothing was applied"), "{text}");
    assert_eq!(client.kv_get("steward/pools/ocr-copy").await.unwrap(), None);

    // Renamed with --prune: the old pool goes in the same write.
    let renamed = steward(
        &consul,
        &["apply", "--prune", "-f", second.to_str().unwrap()],
    )
    .await;
    assert!(renamed.status.success(), "{}", stderr(&renamed));
    assert_eq!(stdout(&renamed), "pool/ocr-copy created\npool/ocr pruned\n");
    consul.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_rejects_override_without_pool() {
    let (consul, client) = start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(
        dir.path(),
        "ghost.yaml",
        "apiVersion: steward/v1\nkind: Override\nmetadata:\n  name: ghost\nspec:\n  workers: 2\n  until: \"2099-01-01T00:00:00Z\"\n  reason: test\n",
    );

    let output = steward(&consul, &["apply", "-f", file.to_str().unwrap()]).await;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(
        text.contains("override for pool \"ghost\", which is neither in the input nor stored at steward/pools/ghost"),
        "{text}"
    );
    assert_eq!(
        client.kv_get("steward/overrides/ghost").await.unwrap(),
        None
    );
    consul.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_notes_paused_rollout() {
    let (consul, client) = start().await;
    let dir = tempfile::tempdir().unwrap();
    let (file, applied) = apply_pool(&consul, dir.path(), "web", "img:2").await;
    assert!(!stderr(&applied).contains("paused"), "{}", stderr(&applied));

    // The controller paused the rollout to img:2; then img:3 is applied.
    let at = "2026-12-04T20:00:00Z";
    let status = serde_json::json!({
        "phase": "RollingOut",
        "rollout": {
            "phase": "Rolling",
            "fromVersion": "img:1",
            "toVersion": "img:2",
            "startedAt": at,
            "phaseStartedAt": at,
            "phaseDeadline": at,
            "counts": [1, 1],
            "paused": {"reason": "paused by alice", "since": at, "by": "alice"},
        },
    });
    put_raw(&client, "steward/status/web", status.to_string().as_bytes()).await;
    write_file(dir.path(), "web.yaml", &pool_yaml("web", "img:3"));
    let changed = steward(&consul, &["apply", "-f", file.to_str().unwrap()]).await;
    assert!(changed.status.success(), "{}", stderr(&changed));
    assert_eq!(stdout(&changed), "pool/web configured\n");
    assert!(
        stderr(&changed).contains("the rollout of pool web is paused, so this change waits; run `steward rollout resume web`"),
        "{}",
        stderr(&changed)
    );
    consul.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_dry_run_and_prune() {
    let (consul, client) = start().await;
    let dir = tempfile::tempdir().unwrap();
    let both = dir.path().join("both");
    std::fs::create_dir(&both).unwrap();
    write_file(&both, "a.yaml", &pool_yaml("alpha", "img:1"));
    write_file(&both, "b.yaml", &pool_yaml("beta", "img:1"));

    let dry = steward(
        &consul,
        &["apply", "--dry-run", "-f", both.to_str().unwrap()],
    )
    .await;
    assert!(dry.status.success(), "{}", stderr(&dry));
    let text = stdout(&dry);
    assert!(text.contains("pool/alpha created (dry run)\n--- pool/alpha not in Consul (steward/pools/alpha)\n+++ pool/alpha from "), "{text}");
    assert!(text.contains("\n+apiVersion: steward/v1\n"), "{text}");
    assert_eq!(client.kv_get("steward/pools/alpha").await.unwrap(), None);

    let applied = steward(&consul, &["apply", "-f", both.to_str().unwrap()]).await;
    assert!(applied.status.success(), "{}", stderr(&applied));

    // A dry run of a changed pool shows the diff from the stored text and writes nothing.
    let before = client.kv_get("steward/pools/beta").await.unwrap().unwrap();
    let changed = write_file(&both, "b.yaml", &pool_yaml("beta", "img:2"));
    let dry = steward(
        &consul,
        &["apply", "--dry-run", "-f", both.to_str().unwrap()],
    )
    .await;
    assert!(dry.status.success(), "{}", stderr(&dry));
    let text = stdout(&dry);
    let diff_header = format!(
        "pool/beta configured (dry run)\n--- pool/beta in Consul (steward/pools/beta, ModifyIndex {})\n+++ pool/beta from {}\n@@ ",
        before.modify_index,
        changed.display()
    );
    assert!(text.contains(&diff_header), "{text}");
    assert!(
        text.contains("\n-  version: img:1\n+  version: img:2\n"),
        "{text}"
    );
    assert!(text.contains("pool/alpha unchanged (dry run)\n"), "{text}");
    let after = client.kv_get("steward/pools/beta").await.unwrap().unwrap();
    assert_eq!(
        after.modify_index, before.modify_index,
        "a dry run writes nothing"
    );
    write_file(&both, "b.yaml", &pool_yaml("beta", "img:1"));

    let only = write_file(dir.path(), "alpha.yaml", &pool_yaml("alpha", "img:1"));
    let pruned = steward(&consul, &["apply", "--prune", "-f", only.to_str().unwrap()]).await;
    assert!(pruned.status.success(), "{}", stderr(&pruned));
    assert_eq!(stdout(&pruned), "pool/alpha unchanged\npool/beta pruned\n");
    assert_eq!(client.kv_get("steward/pools/beta").await.unwrap(), None);
    assert!(
        client
            .kv_get("steward/pools/alpha")
            .await
            .unwrap()
            .is_some()
    );
    consul.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_apply_loses_nothing() {
    let (consul, client) = start().await;
    let keys = Keys::new("steward/").unwrap();
    let first = spec::parse_str(&pool_yaml("race", "img:first"), "first.yaml").unwrap();
    let second = spec::parse_str(&pool_yaml("race", "img:second"), "second.yaml").unwrap();

    // Both pipelines read before either writes.
    let plan_first = apply::plan(&client, &keys, &first, false).await.unwrap();
    let plan_second = apply::plan(&client, &keys, &second, false).await.unwrap();
    apply::execute(&client, &plan_first).await.unwrap();
    let loser = apply::execute(&client, &plan_second).await.unwrap_err();
    assert_eq!(loser.code, 1);
    let message = format!("{:#}", loser.error);
    assert!(
        message.contains("conflict") && message.contains("pool/race"),
        "{message}"
    );
    let stored = client.kv_get("steward/pools/race").await.unwrap().unwrap();
    assert!(
        String::from_utf8(stored.value)
            .unwrap()
            .contains("img:first"),
        "the winner's write is kept"
    );

    // The same race between processes: each run either applies or fails with a conflict,
    // and the stored pool is one that a successful run wrote.
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<String> = (0..4)
        .map(|i| {
            write_file(
                dir.path(),
                &format!("p{i}.yaml"),
                &pool_yaml("proc", &format!("img:{i}")),
            )
            .to_str()
            .unwrap()
            .to_string()
        })
        .collect();
    let runs = futures::future::join_all(
        files
            .iter()
            .map(|f| async { steward(&consul, &["apply", "-f", f]).await }),
    )
    .await;
    let mut winners = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        match run.status.code() {
            Some(0) => winners.push(format!("img:{i}")),
            Some(1) => assert!(stderr(run).contains("conflict"), "{}", stderr(run)),
            other => panic!("unexpected exit status {other:?}: {}", stderr(run)),
        }
    }
    assert!(!winners.is_empty());
    let stored = String::from_utf8(
        client
            .kv_get("steward/pools/proc")
            .await
            .unwrap()
            .unwrap()
            .value,
    )
    .unwrap();
    assert!(
        winners.iter().any(|w| stored.contains(w.as_str())),
        "stored pool comes from a successful run"
    );
    consul.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn get_prints_table_yaml_and_json() {
    let (consul, _client) = start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "web.yaml", &pool_yaml("web", "img:7"));
    assert!(
        steward(&consul, &["apply", "-f", file.to_str().unwrap()])
            .await
            .status
            .success()
    );

    let table = stdout(&steward(&consul, &["get"]).await);
    let header = table.lines().next().unwrap();
    for column in [
        "NAME",
        "VERSION",
        "MIN",
        "MAX",
        "ZONES",
        "AUTOSCALING",
        "OVERRIDE",
    ] {
        assert!(header.contains(column), "{header}");
    }
    assert!(table.contains("web") && table.contains("img:7"), "{table}");

    let yaml = stdout(&steward(&consul, &["get", "web", "-o", "yaml"]).await);
    let reparsed = spec::parse_stored(&yaml, "get.yaml").unwrap();
    assert_eq!(reparsed[0].document.name(), "web");

    let json: serde_json::Value = serde_json::from_str(&stdout(
        &steward(&consul, &["get", "web", "-o", "json"]).await,
    ))
    .unwrap();
    assert_eq!(json["metadata"]["name"], "web");
    assert_eq!(json["spec"]["version"], "img:7");

    let missing = steward(&consul, &["get", "nope"]).await;
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("not found"));
    consul.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn override_set_validates_and_clear_removes() {
    let (consul, client) = start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "web.yaml", &pool_yaml("web", "img:1"));
    assert!(
        steward(&consul, &["apply", "-f", file.to_str().unwrap()])
            .await
            .status
            .success()
    );

    let unknown = steward(
        &consul,
        &[
            "override",
            "set",
            "ghost",
            "--workers",
            "2",
            "--for",
            "1h",
            "--reason",
            "test",
        ],
    )
    .await;
    // Not found exits with 1 in every command, as kubectl does for NotFound.
    assert_eq!(unknown.status.code(), Some(1));
    assert!(stderr(&unknown).contains("not found"));

    let above = steward(
        &consul,
        &[
            "override",
            "set",
            "web",
            "--workers",
            "30",
            "--for",
            "1h",
            "--reason",
            "peak",
        ],
    )
    .await;
    assert_eq!(above.status.code(), Some(2));
    assert!(stderr(&above).contains("--force"), "{}", stderr(&above));

    let below = steward(
        &consul,
        &[
            "override",
            "set",
            "web",
            "--workers",
            "0",
            "--for",
            "1h",
            "--reason",
            "quiet",
        ],
    )
    .await;
    assert_eq!(below.status.code(), Some(2));
    assert!(
        stderr(&below)
            .contains("--workers 0 is below the pool's min of 2; raise it or add --force"),
        "{}",
        stderr(&below)
    );

    let past = steward(
        &consul,
        &[
            "override",
            "set",
            "web",
            "--workers",
            "3",
            "--until",
            "2020-01-01T00:00:00Z",
            "--reason",
            "old",
        ],
    )
    .await;
    assert_eq!(past.status.code(), Some(2));
    assert!(stderr(&past).contains("not in the future"));

    let both = steward(
        &consul,
        &[
            "override",
            "set",
            "web",
            "--workers",
            "3",
            "--for",
            "1h",
            "--until",
            "2099-01-01T00:00:00Z",
            "--reason",
            "x",
        ],
    )
    .await;
    assert_eq!(
        both.status.code(),
        Some(2),
        "--for and --until exclude each other"
    );

    let forced = steward(
        &consul,
        &[
            "override",
            "set",
            "web",
            "--workers",
            "30",
            "--for",
            "2h",
            "--reason",
            "launch",
            "--force",
            "--by",
            "ops",
        ],
    )
    .await;
    assert!(forced.status.success(), "{}", stderr(&forced));
    let stored = client
        .kv_get("steward/overrides/web")
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8(stored.value).unwrap();
    let parsed = spec::parse_stored(&text, "override").unwrap();
    match &parsed[0].document {
        spec::Document::Override(item) => {
            assert_eq!(item.spec.workers, 30);
            assert!(item.spec.force);
            assert_eq!(item.spec.by.as_deref(), Some("ops"));
            let remaining = item.spec.until.duration_since(jiff::Timestamp::now());
            assert!(
                remaining > jiff::SignedDuration::from_mins(110),
                "{remaining:?}"
            );
        }
        other => panic!("expected an override, got {other:?}"),
    }
    assert!(stdout(&steward(&consul, &["get"]).await).contains("30 until"));

    let cleared = steward(&consul, &["override", "clear", "web"]).await;
    assert!(cleared.status.success(), "{}", stderr(&cleared));
    assert_eq!(client.kv_get("steward/overrides/web").await.unwrap(), None);
    let again = steward(&consul, &["override", "clear", "web"]).await;
    assert_eq!(again.status.code(), Some(1));
    consul.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_reports_remaining_override() {
    let (consul, client) = start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "web.yaml", &pool_yaml("web", "img:1"));
    assert!(
        steward(&consul, &["apply", "-f", file.to_str().unwrap()])
            .await
            .status
            .success()
    );
    let set = steward(
        &consul,
        &[
            "override",
            "set",
            "web",
            "--workers",
            "4",
            "--for",
            "30m",
            "--reason",
            "hold",
        ],
    )
    .await;
    assert!(set.status.success(), "{}", stderr(&set));

    let deleted = steward(&consul, &["delete", "web"]).await;
    assert!(deleted.status.success(), "{}", stderr(&deleted));
    assert!(stdout(&deleted).contains("pool/web deleted"));
    assert!(stdout(&deleted).contains("override/web remains"));
    assert_eq!(client.kv_get("steward/pools/web").await.unwrap(), None);
    assert!(
        client
            .kv_get("steward/overrides/web")
            .await
            .unwrap()
            .is_some()
    );

    let missing = steward(&consul, &["delete", "web"]).await;
    assert_eq!(missing.status.code(), Some(1));
    consul.shutdown().await;
}

#[tokio::test]
async fn delete_by_file_removes_all_or_nothing() {
    let (consul, client) = start().await;
    let dir = tempfile::tempdir().unwrap();
    let web = write_file(dir.path(), "web.yaml", &pool_yaml("web", "img:1"));
    let api = write_file(dir.path(), "api.yaml", &pool_yaml("api", "img:1"));
    let applied = steward(&consul, &["apply", "-f", dir.path().to_str().unwrap()]).await;
    assert!(applied.status.success(), "{}", stderr(&applied));
    let override_file = write_file(
        dir.path(),
        "override.yaml",
        "apiVersion: steward/v1\nkind: Override\nmetadata:\n  name: web\nspec:\n  workers: 3\n  \
         reason: test\n  until: 2099-01-01T00:00:00Z\n",
    );
    let set = steward(&consul, &["apply", "-f", override_file.to_str().unwrap()]).await;
    assert!(set.status.success(), "{}", stderr(&set));

    // One object of the files is not stored: nothing is deleted.
    let other = tempfile::tempdir().unwrap();
    let ghost = write_file(other.path(), "ghost.yaml", &pool_yaml("ghost", "img:1"));
    let rejected = steward(
        &consul,
        &[
            "delete",
            "-f",
            web.to_str().unwrap(),
            "-f",
            ghost.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(rejected.status.code(), Some(1), "{}", stderr(&rejected));
    assert!(
        stderr(&rejected).contains("pool/ghost"),
        "{}",
        stderr(&rejected)
    );
    assert!(client.kv_get("steward/pools/web").await.unwrap().is_some());

    let deleted = steward(
        &consul,
        &[
            "delete",
            "-f",
            web.to_str().unwrap(),
            "-f",
            override_file.to_str().unwrap(),
        ],
    )
    .await;
    assert!(deleted.status.success(), "{}", stderr(&deleted));
    assert!(
        stdout(&deleted).contains("pool/web deleted"),
        "{}",
        stdout(&deleted)
    );
    assert!(
        stdout(&deleted).contains("override/web deleted"),
        "{}",
        stdout(&deleted)
    );
    assert_eq!(client.kv_get("steward/pools/web").await.unwrap(), None);
    assert_eq!(client.kv_get("steward/overrides/web").await.unwrap(), None);
    assert!(
        client.kv_get("steward/pools/api").await.unwrap().is_some(),
        "a pool the files do not name stays: {}",
        api.display()
    );

    let both = steward(&consul, &["delete", "api", "-f", api.to_str().unwrap()]).await;
    assert_eq!(both.status.code(), Some(2), "{}", stderr(&both));
    consul.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_settings_exit_with_usage_status() {
    let (consul, _client) = start().await;
    let output = tokio::task::spawn_blocking(|| {
        assert_cmd::Command::cargo_bin("steward")
            .unwrap()
            .args(["get", "--consul-addr", "ftp://127.0.0.1:1"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("unsupported scheme"),
        "{}",
        stderr(&output)
    );

    let bad_name = steward(&consul, &["delete", "Not_A_Label"]).await;
    assert_eq!(bad_name.status.code(), Some(2));
    consul.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_consul_serves_kv() {
    let bin = assert_cmd::cargo::cargo_bin("steward");
    let mut child = std::process::Command::new(bin)
        .args(["dev", "consul", "--addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    let url = line.trim().rsplit(' ').next().unwrap().to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{line}");

    let client = ConsulClient::for_url(&url).unwrap();
    let written = client
        .kv_put("dev/check", b"ok", None, &steward::consul::WriteMode::Plain)
        .await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(written.unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn token_settings_come_from_environment() {
    let config = ConsulEmulatorConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        acl_token: Some("mgmt-token".into()),
        ..ConsulEmulatorConfig::default()
    };
    let consul = ConsulEmulator::start(config).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let token_file = write_file(dir.path(), "token", "mgmt-token\n");

    let run = |envs: Vec<(&'static str, String)>| {
        let addr = consul.addr().to_string();
        tokio::task::spawn_blocking(move || {
            let mut command = assert_cmd::Command::cargo_bin("steward").unwrap();
            command
                .args(["get"])
                .env("CONSUL_HTTP_ADDR", format!("http://{addr}"))
                .env_remove("CONSUL_HTTP_TOKEN")
                .env_remove("CONSUL_HTTP_TOKEN_FILE");
            for (name, value) in envs {
                command.env(name, value);
            }
            command.output().unwrap()
        })
    };

    let denied = run(vec![]).await.unwrap();
    assert_eq!(denied.status.code(), Some(1));
    assert!(
        stderr(&denied).contains("permission denied"),
        "{}",
        stderr(&denied)
    );

    let with_token = run(vec![("CONSUL_HTTP_TOKEN", "mgmt-token".to_string())])
        .await
        .unwrap();
    assert!(with_token.status.success(), "{}", stderr(&with_token));

    let with_file = run(vec![(
        "CONSUL_HTTP_TOKEN_FILE",
        token_file.to_str().unwrap().to_string(),
    )])
    .await
    .unwrap();
    assert!(with_file.status.success(), "{}", stderr(&with_file));
    assert!(
        !stderr(&with_file).contains("mgmt-token"),
        "the token is never printed"
    );
    consul.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_checks_override_against_stored_pool() {
    let (consul, client) = start().await;
    let dir = tempfile::tempdir().unwrap();
    let pool = write_file(dir.path(), "web.yaml", &pool_yaml("web", "img:1"));
    assert!(
        steward(&consul, &["apply", "-f", pool.to_str().unwrap()])
            .await
            .status
            .success()
    );

    let text = |force: bool| {
        format!(
            "apiVersion: steward/v1\nkind: Override\nmetadata:\n  name: web\nspec:\n  workers: 30\n  reason: launch\n  until: 2099-01-01T00:00:00Z\n{}",
            if force { "  force: true\n" } else { "" }
        )
    };
    let over = write_file(dir.path(), "override.yaml", &text(false));
    let rejected = steward(&consul, &["apply", "-f", over.to_str().unwrap()]).await;
    assert_eq!(rejected.status.code(), Some(2), "{}", stderr(&rejected));
    assert!(
        stderr(&rejected).contains("spec.workers"),
        "{}",
        stderr(&rejected)
    );
    assert_eq!(client.kv_get("steward/overrides/web").await.unwrap(), None);

    // Below min the same way.
    let zero = text(false).replace("workers: 30", "workers: 0");
    write_file(dir.path(), "override.yaml", &zero);
    let rejected = steward(&consul, &["apply", "-f", over.to_str().unwrap()]).await;
    assert_eq!(rejected.status.code(), Some(2), "{}", stderr(&rejected));
    assert!(
        stderr(&rejected).contains("0 is less than the pool's spec.workers.min (2)"),
        "{}",
        stderr(&rejected)
    );

    write_file(dir.path(), "override.yaml", &text(true));
    let forced = steward(&consul, &["apply", "-f", over.to_str().unwrap()]).await;
    assert!(forced.status.success(), "{}", stderr(&forced));
    assert_eq!(stdout(&forced), "override/web created\n");
    consul.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn get_json_applies_back() {
    let (consul, _client) = start().await;
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "a.yaml", &pool_yaml("alpha", "img:1"));
    write_file(dir.path(), "b.yaml", &pool_yaml("beta", "img:1"));
    let applied = steward(&consul, &["apply", "-f", dir.path().to_str().unwrap()]).await;
    assert!(applied.status.success(), "{}", stderr(&applied));

    let listed = steward(&consul, &["get", "-o", "json"]).await;
    assert!(listed.status.success(), "{}", stderr(&listed));
    let exported = write_file(dir.path(), "all.json", &stdout(&listed));
    let again = steward(
        &consul,
        &["apply", "--dry-run", "-f", exported.to_str().unwrap()],
    )
    .await;
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(
        stdout(&again),
        "pool/alpha unchanged (dry run)\npool/beta unchanged (dry run)\n"
    );
    consul.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn get_yaml_is_valid_stream() {
    let (consul, client) = start().await;
    let valid = pool_yaml("web", "img:1");
    put_raw(&client, "steward/pools/web", valid.trim_end().as_bytes()).await;
    put_raw(&client, "steward/pools/broken", b"not: [valid").await;

    let output = steward(&consul, &["get", "-o", "yaml"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let yaml = stdout(&output);
    assert!(!yaml.contains("not: [valid"), "{yaml}");
    let reparsed = spec::parse_stored(&yaml, "get.yaml").unwrap_or_else(|r| panic!("{r}\n{yaml}"));
    assert_eq!(reparsed.len(), 1);
    assert_eq!(reparsed[0].document.name(), "web");
    let errors = stderr(&output);
    assert!(errors.contains("steward/pools/broken"), "{errors}");
    assert!(errors.contains("not a valid WorkerPool"), "{errors}");

    let table = steward(&consul, &["get"]).await;
    assert_eq!(table.status.code(), Some(1));
    assert!(stdout(&table).contains("<invalid>"), "{}", stdout(&table));
    consul.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn prune_reports_remaining_override() {
    let (consul, _client) = start().await;
    let dir = tempfile::tempdir().unwrap();
    let both = write_file(
        dir.path(),
        "both.yaml",
        &format!(
            "{}---\n{}",
            pool_yaml("alpha", "img:1"),
            pool_yaml("beta", "img:1")
        ),
    );
    let applied = steward(&consul, &["apply", "-f", both.to_str().unwrap()]).await;
    assert!(applied.status.success(), "{}", stderr(&applied));
    let set = steward(
        &consul,
        &[
            "override",
            "set",
            "beta",
            "--workers",
            "3",
            "--for",
            "1h",
            "--reason",
            "hold",
        ],
    )
    .await;
    assert!(set.status.success(), "{}", stderr(&set));

    let only = write_file(dir.path(), "alpha.yaml", &pool_yaml("alpha", "img:1"));
    let pruned = steward(&consul, &["apply", "--prune", "-f", only.to_str().unwrap()]).await;
    assert!(pruned.status.success(), "{}", stderr(&pruned));
    let lines = stdout(&pruned);
    assert!(lines.contains("pool/beta pruned"), "{lines}");
    assert!(lines.contains("override/beta remains"), "{lines}");
    consul.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn override_set_rejects_zero_for() {
    let (consul, _client) = start().await;
    let zero = steward(
        &consul,
        &[
            "override",
            "set",
            "web",
            "--workers",
            "1",
            "--for",
            "0s",
            "--reason",
            "x",
        ],
    )
    .await;
    assert_eq!(zero.status.code(), Some(2));
    assert!(
        stderr(&zero).contains("greater than zero"),
        "{}",
        stderr(&zero)
    );

    let help = steward(&consul, &["override", "set", "--help"]).await;
    let text = stdout(&help);
    assert!(
        text.contains("Exactly one of --for or --until is required"),
        "{text}"
    );
    assert!(text.contains("Exit status"), "{text}");
    let usage = text.lines().find(|l| l.starts_with("Usage:")).unwrap();
    assert!(!usage.contains("--consul-addr"), "{usage}");
    consul.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_consul_and_empty_prefix_explained() {
    // A port that was just free: nothing listens there, so the connection is refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let refused = tokio::task::spawn_blocking(move || {
        assert_cmd::Command::cargo_bin("steward")
            .unwrap()
            .args(["get"])
            .env("CONSUL_HTTP_ADDR", format!("127.0.0.1:{port}"))
            .env_remove("CONSUL_HTTP_SSL")
            .env_remove("STEWARD_PREFIX")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    let message = stderr(&refused);
    assert!(message.contains("check CONSUL_HTTP_ADDR"), "{message}");
    assert!(message.contains("steward dev consul"), "{message}");

    let (consul, _client) = start().await;
    let empty = steward(&consul, &["get", "--prefix", ""]).await;
    assert_eq!(empty.status.code(), Some(2));
    let message = stderr(&empty);
    assert!(message.contains("--prefix"), "{message}");
    assert!(message.contains("STEWARD_PREFIX"), "{message}");
    consul.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_rejects_oversized_pool() {
    let (consul, client) = start().await;
    let dir = tempfile::tempdir().unwrap();
    let big = "x".repeat(spec::MAX_STORED_BYTES);
    let text = pool_yaml("web", "img:1").replacen(
        "metadata:\n",
        &format!("metadata:\n  annotations:\n    note: {big}\n"),
        1,
    );
    let file = write_file(dir.path(), "web.yaml", &text);
    let applied = steward(&consul, &["apply", "-f", file.to_str().unwrap()]).await;
    assert_eq!(applied.status.code(), Some(2), "{}", stderr(&applied));
    assert!(
        stderr(&applied).contains("above the limit"),
        "{}",
        stderr(&applied)
    );
    assert_eq!(client.kv_get("steward/pools/web").await.unwrap(), None);
    consul.shutdown().await;
}

#[tokio::test]
async fn override_for_follows_dev_clock() {
    let (consul, client) = start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "web.yaml", &pool_yaml("web", "img:1"));
    assert!(
        steward(&consul, &["apply", "-f", file.to_str().unwrap()])
            .await
            .status
            .success()
    );
    // A `steward dev` whose simulated clock is 10 days ahead of the wall clock.
    let ahead = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(240);
    let anchor = serde_json::json!({
        "wallUnixNs": jiff::Timestamp::now().as_nanosecond() as i64,
        "simUnixNs": ahead.as_nanosecond() as i64,
        "speed": 1.0,
    });
    put_raw(&client, "steward/dev/clock", anchor.to_string().as_bytes()).await;

    let set = steward(
        &consul,
        &[
            "override",
            "set",
            "web",
            "--workers",
            "2",
            "--for",
            "2h",
            "--reason",
            "test",
        ],
    )
    .await;
    assert!(set.status.success(), "{}", stderr(&set));

    let stored = client
        .kv_get("steward/overrides/web")
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8(stored.value).unwrap();
    let until: jiff::Timestamp = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("until: "))
        .expect("the override has until")
        .trim_matches('"')
        .parse()
        .unwrap();
    let expected = ahead + jiff::SignedDuration::from_hours(2);
    let skew = until.duration_since(expected).abs();
    assert!(
        skew < jiff::SignedDuration::from_secs(60),
        "until {until} is not 2 h after the dev clock's {ahead}"
    );

    // A wall-clock --until an hour ahead is in the dev clock's past, and the error explains it.
    let wall_later = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1)).to_string();
    let past = steward(
        &consul,
        &[
            "override",
            "set",
            "web",
            "--workers",
            "2",
            "--until",
            &wall_later,
            "--reason",
            "test",
        ],
    )
    .await;
    assert_eq!(past.status.code(), Some(2), "{}", stderr(&past));
    assert!(
        stderr(&past).contains("whose sped-up clock is ahead of the wall clock"),
        "{}",
        stderr(&past)
    );

    // `apply` checks an Override file's `until` against the same clock.
    let override_file = |until: &str| {
        format!(
            "apiVersion: steward/v1\nkind: Override\nmetadata:\n  name: web\nspec:\n  \
             workers: 3\n  reason: test\n  until: {until}\n"
        )
    };
    let stale = write_file(dir.path(), "stale.yaml", &override_file(&wall_later));
    let rejected = steward(&consul, &["apply", "-f", stale.to_str().unwrap()]).await;
    assert_eq!(rejected.status.code(), Some(2), "{}", stderr(&rejected));
    assert!(
        stderr(&rejected).contains("not in the future"),
        "{}",
        stderr(&rejected)
    );
    let dev_later = (ahead + jiff::SignedDuration::from_hours(3)).to_string();
    let fresh = write_file(dir.path(), "fresh.yaml", &override_file(&dev_later));
    let accepted = steward(&consul, &["apply", "-f", fresh.to_str().unwrap()]).await;
    assert!(accepted.status.success(), "{}", stderr(&accepted));
    consul.shutdown().await;
}

#[tokio::test]
async fn non_consul_address_is_an_error() {
    // A server that returns a bare 404 for every request, as Nomad or a metrics port does.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let server = tokio::spawn(async move {
        let app = axum::Router::new().fallback(|| async { axum::http::StatusCode::NOT_FOUND });
        axum::serve(listener, app).await.unwrap();
    });

    for args in [&["get"][..], &["status"][..]] {
        let output = steward_at(&address, args).await;
        assert_eq!(output.status.code(), Some(1), "{args:?}: {output:?}");
        let text = stderr(&output);
        assert!(text.contains("not a Consul agent"), "{args:?}: {text}");
        assert!(text.contains("CONSUL_HTTP_ADDR"), "{args:?}: {text}");
    }
    server.abort();
}

#[tokio::test]
async fn get_without_pools_says_so() {
    let (consul, _client) = start().await;
    let output = steward(&consul, &["get"]).await;
    assert!(output.status.success(), "{output:?}");
    assert!(
        stderr(&output).contains("no pools found under steward/pools/"),
        "{}",
        stderr(&output)
    );
    let yaml = steward(&consul, &["get", "-o", "yaml"]).await;
    assert!(
        !String::from_utf8_lossy(&yaml.stdout).contains("no pools"),
        "the note stays off stdout"
    );
}
