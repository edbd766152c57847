//! The Consul client against the Consul emulator over real HTTP on loopback.

use std::time::Duration;

use steward::consul::{
    ConsulClient, Error, KvWatch, LeaderLock, LeaderLockConfig, QueryOptions, SessionBehavior,
    SessionRequest, TxnOp, WatchConfig, WatchTarget, WireKvPair, WriteMode,
};
use steward::sim::consul::{ConsulEmulator, ConsulEmulatorConfig, RunningConsul};

/// Fails a test that hangs instead of letting the suite stall.
const GUARD: Duration = Duration::from_secs(30);

async fn start_with(config: ConsulEmulatorConfig) -> (RunningConsul, ConsulClient) {
    let config = ConsulEmulatorConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        ..config
    };
    let consul = ConsulEmulator::start(config).await.unwrap();
    let client = ConsulClient::for_url(consul.url()).unwrap();
    (consul, client)
}

async fn start() -> (RunningConsul, ConsulClient) {
    start_with(ConsulEmulatorConfig::default()).await
}

/// Settings for session tests: TTLs from 1 s, expiring after exactly one TTL.
fn fast_sessions() -> ConsulEmulatorConfig {
    ConsulEmulatorConfig {
        min_session_ttl: Duration::from_secs(1),
        session_ttl_multiplier: 1,
        ..ConsulEmulatorConfig::default()
    }
}

fn fast_watch() -> WatchConfig {
    WatchConfig {
        wait: Duration::from_secs(5),
        min_interval: Duration::from_millis(10),
        backoff_base: Duration::from_millis(50),
        backoff_cap: Duration::from_millis(400),
    }
}

async fn post(url: &str, body: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(url)
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn kv_put_get_and_missing_key() {
    let (consul, client) = start().await;

    assert_eq!(client.kv_get("steward/pools/web").await.unwrap(), None);
    assert!(
        client
            .kv_put("steward/pools/web", b"a: 1\n", Some(42), &WriteMode::Plain)
            .await
            .unwrap()
    );
    let pair = client.kv_get("steward/pools/web").await.unwrap().unwrap();
    assert_eq!(pair.value, b"a: 1\n");
    assert_eq!(pair.flags, 42);
    assert_eq!(pair.create_index, pair.modify_index);
    assert_eq!(
        client
            .kv_get_raw("steward/pools/web")
            .await
            .unwrap()
            .unwrap(),
        b"a: 1\n"
    );

    let missing = reqwest::get(format!("{}/v1/kv/nope", consul.url()))
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert!(missing.headers().contains_key("x-consul-index"));
    assert_eq!(missing.text().await.unwrap(), "");
    consul.shutdown().await;
}

#[tokio::test]
async fn kv_cas_creates_updates_and_conflicts() {
    let (consul, client) = start().await;

    client.kv_put_cas("k", b"1", 0).await.unwrap();
    let first = client.kv_get("k").await.unwrap().unwrap();
    let again = client.kv_put_cas("k", b"x", 0).await.unwrap_err();
    assert!(matches!(again, Error::CasConflict { .. }), "{again:?}");
    client
        .kv_put_cas("k", b"2", first.modify_index)
        .await
        .unwrap();
    let stale = client
        .kv_put_cas("k", b"3", first.modify_index)
        .await
        .unwrap_err();
    assert!(stale.is_conflict());
    assert!(!stale.is_retryable());
    assert_eq!(client.kv_get("k").await.unwrap().unwrap().value, b"2");
    consul.shutdown().await;
}

#[tokio::test]
async fn same_value_write_moves_no_index() {
    let (consul, client) = start().await;

    client
        .kv_put("cfg/app", b"x", None, &WriteMode::Plain)
        .await
        .unwrap();
    let index = client
        .kv_get("cfg/app")
        .await
        .unwrap()
        .unwrap()
        .modify_index;
    let waiter = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .kv_get_with(
                    "cfg/app",
                    &QueryOptions::blocking(index, Duration::from_millis(300)),
                )
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        client
            .kv_put("cfg/app", b"x", None, &WriteMode::Plain)
            .await
            .unwrap()
    );
    assert!(
        client
            .kv_put("cfg/app", b"x", None, &WriteMode::Cas(index))
            .await
            .unwrap()
    );

    let (pair, meta) = waiter.await.unwrap().unwrap();
    assert_eq!(
        meta.index, index,
        "a same-value write must not wake the watcher"
    );
    assert_eq!(pair.unwrap().modify_index, index);
    consul.shutdown().await;
}

#[tokio::test]
async fn kv_recurse_keys_and_separator() {
    let (consul, client) = start().await;
    for key in [
        "web/bar",
        "web/foo",
        "web/subdir/x",
        "web/subdir/y",
        "other",
    ] {
        client
            .kv_put(key, key.as_bytes(), None, &WriteMode::Plain)
            .await
            .unwrap();
    }

    let (pairs, meta) = client
        .kv_list("web/", &QueryOptions::default())
        .await
        .unwrap();
    let keys: Vec<&str> = pairs.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["web/bar", "web/foo", "web/subdir/x", "web/subdir/y"]);
    assert_eq!(
        meta.index,
        pairs.iter().map(|p| p.modify_index).max().unwrap()
    );
    assert!(meta.known_leader);

    let (rolled, _) = client
        .kv_keys("web/", Some("/"), &QueryOptions::default())
        .await
        .unwrap();
    assert_eq!(rolled, ["web/bar", "web/foo", "web/subdir/"]);
    let (all, _) = client
        .kv_keys("web/", None, &QueryOptions::default())
        .await
        .unwrap();
    assert_eq!(all.len(), 4);
    let (none, _) = client
        .kv_list("absent/", &QueryOptions::default())
        .await
        .unwrap();
    assert!(none.is_empty());

    let no_key = reqwest::get(format!("{}/v1/kv/", consul.url()))
        .await
        .unwrap();
    assert_eq!(no_key.status(), 400);
    assert_eq!(no_key.text().await.unwrap(), "Missing key name");
    let root_keys = reqwest::get(format!("{}/v1/kv/?keys", consul.url()))
        .await
        .unwrap();
    assert_eq!(root_keys.status(), 200);
    consul.shutdown().await;
}

#[tokio::test]
async fn delete_with_cas_and_recurse() {
    let (consul, client) = start().await;
    client
        .kv_put("d/a", b"1", None, &WriteMode::Plain)
        .await
        .unwrap();
    client
        .kv_put("d/b", b"2", None, &WriteMode::Plain)
        .await
        .unwrap();
    let a = client.kv_get("d/a").await.unwrap().unwrap();

    let zero = client.kv_delete("d/a", Some(0)).await.unwrap_err();
    assert!(
        matches!(zero, Error::CasConflict { .. }),
        "cas=0 never deletes an existing key"
    );
    client.kv_delete("d/a", Some(a.modify_index)).await.unwrap();
    assert_eq!(client.kv_get("d/a").await.unwrap(), None);
    client.kv_delete("d/a", Some(99)).await.unwrap();

    let conflicting = reqwest::Client::new()
        .delete(format!("{}/v1/kv/d?recurse&cas=1", consul.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(conflicting.status(), 400);
    assert!(
        conflicting
            .text()
            .await
            .unwrap()
            .starts_with("Conflicting flags")
    );

    client.kv_delete_tree("d/").await.unwrap();
    assert!(
        client
            .kv_list("d/", &QueryOptions::default())
            .await
            .unwrap()
            .0
            .is_empty()
    );
    consul.shutdown().await;
}

#[tokio::test]
async fn list_index_counts_tombstones_then_goes_back() {
    let (consul, client) = start().await;
    client
        .kv_put("t/a", b"1", None, &WriteMode::Plain)
        .await
        .unwrap();
    client
        .kv_put("t/b", b"2", None, &WriteMode::Plain)
        .await
        .unwrap();
    let (_, before) = client
        .kv_list("t/", &QueryOptions::default())
        .await
        .unwrap();
    client.kv_delete("t/b", None).await.unwrap();
    let (_, after_delete) = client
        .kv_list("t/", &QueryOptions::default())
        .await
        .unwrap();
    assert!(
        after_delete.index > before.index,
        "a delete moves the list index forward"
    );

    post(&format!("{}/_sim/reap-tombstones", consul.url()), "").await;
    let (_, after_reap) = client
        .kv_list("t/", &QueryOptions::default())
        .await
        .unwrap();
    assert!(
        after_reap.index < after_delete.index,
        "reaping the tombstone moves it back"
    );
    consul.shutdown().await;
}

#[tokio::test]
async fn conflicting_write_flags_are_rejected() {
    let (consul, _client) = start().await;
    let response = reqwest::Client::new()
        .put(format!("{}/v1/kv/x?cas=0&acquire=abc", consul.url()))
        .body("v")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .starts_with("Conflicting flags")
    );
    consul.shutdown().await;
}

#[tokio::test]
async fn invalid_keys_and_large_values_are_permanent() {
    let (consul, client) = start().await;

    for bad in ["acme - host", "a/../b", "/lead", "a//b"] {
        let error = client.kv_get(bad).await.unwrap_err();
        assert!(
            matches!(error, Error::InvalidKey { .. }),
            "{bad:?}: {error:?}"
        );
        assert!(!error.is_retryable());
    }
    // Raw HTTP, because URL libraries resolve `..` segments before sending.
    for raw in ["a/../b", "%20key", "a/%2e%2e/b", "key%20"] {
        let status_line = raw_put(consul.addr(), &format!("/v1/kv/{raw}")).await;
        assert!(
            status_line.starts_with("HTTP/1.1 400"),
            "{raw}: {status_line}"
        );
    }

    let big = vec![b'x'; 512 * 1024 + 1];
    let error = client
        .kv_put("big", &big, None, &WriteMode::Plain)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::TooLarge { .. }), "{error:?}");
    let limit = vec![b'x'; 512 * 1024];
    assert!(
        client
            .kv_put("big", &limit, None, &WriteMode::Plain)
            .await
            .unwrap()
    );
    consul.shutdown().await;
}

/// Sends `PUT path` with a one-byte body exactly as written and returns the status line.
async fn raw_put(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "PUT {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 1\r\nConnection: close\r\n\r\nv"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer.lines().next().unwrap_or_default().to_string()
}

#[tokio::test]
async fn txn_applies_all_or_rolls_back() {
    let (consul, client) = start().await;
    client
        .kv_put("x/a", b"1", None, &WriteMode::Plain)
        .await
        .unwrap();
    let a = client.kv_get("x/a").await.unwrap().unwrap();

    let results = client
        .txn(&[
            TxnOp::CheckIndex {
                key: "x/a".into(),
                index: a.modify_index,
            },
            TxnOp::Set {
                key: "x/b".into(),
                value: b"2".to_vec(),
                flags: 0,
            },
            TxnOp::Get { key: "x/a".into() },
        ])
        .await
        .unwrap();
    assert_eq!(results.len(), 3);
    assert!(results[1].value.is_empty(), "set results carry no value");
    assert_eq!(results[2].value, b"1");

    let error = client
        .txn(&[
            TxnOp::Set {
                key: "x/c".into(),
                value: b"3".to_vec(),
                flags: 0,
            },
            TxnOp::CheckIndex {
                key: "x/a".into(),
                index: a.modify_index + 100,
            },
        ])
        .await
        .unwrap_err();
    match error {
        Error::TxnRollback { errors } => {
            assert_eq!(errors.len(), 1);
            assert_eq!(errors[0].op_index, 1);
            assert!(
                errors[0].what.contains("failed index check"),
                "{}",
                errors[0].what
            );
        }
        other => panic!("expected a rollback, got {other:?}"),
    }
    assert_eq!(
        client.kv_get("x/c").await.unwrap(),
        None,
        "nothing of a rolled-back txn applies"
    );

    let raw = reqwest::Client::new()
        .put(format!("{}/v1/txn", consul.url()))
        .body(r#"[{"KV":{"Verb":"check-index","Key":"x/a","Index":9999}}]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 409);
    let body: serde_json::Value = raw.json().await.unwrap();
    assert!(body["Results"].is_null());
    assert_eq!(body["Errors"][0]["OpIndex"], 0);
    consul.shutdown().await;
}

#[tokio::test]
async fn txn_operation_limits_and_batching() {
    let (consul, client) = start().await;
    let ops: Vec<TxnOp> = (0..129)
        .map(|i| TxnOp::Set {
            key: format!("many/{i}"),
            value: b"v".to_vec(),
            flags: 0,
        })
        .collect();

    let error = client.txn(&ops).await.unwrap_err();
    match &error {
        Error::TooLarge { message, .. } => assert!(message.contains("(129 > 128)"), "{message}"),
        other => panic!("expected 413, got {other:?}"),
    }
    assert!(client.txn(&ops[..128]).await.is_ok());

    assert_eq!(client.txn_max_ops(), 64);
    client.txn_batched(&ops).await.unwrap();
    assert_eq!(
        client
            .kv_keys("many/", None, &QueryOptions::default())
            .await
            .unwrap()
            .0
            .len(),
        129
    );
    consul.shutdown().await;

    let (old, client) = start_with(ConsulEmulatorConfig {
        txn_max_ops: 64,
        ..Default::default()
    })
    .await;
    let error = client.txn(&ops[..65]).await.unwrap_err();
    assert!(error.to_string().contains("(65 > 64)"), "{error}");
    client.txn_batched(&ops).await.unwrap();
    old.shutdown().await;
}

#[tokio::test]
async fn blocking_query_at_index_zero_returns_at_once() {
    let (consul, client) = start().await;
    // A blocking read with index 0 must not block; the guard fails the test if it does.
    let url = format!("{}/v1/kv/empty?index=0&wait=5m", consul.url());
    let response = tokio::time::timeout(GUARD, reqwest::get(url))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 404);
    let index: u64 = response.headers()["x-consul-index"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(index >= 1, "the index of a successful read is at least 1");

    let (_, meta) = client
        .kv_get_with("empty", &QueryOptions::default())
        .await
        .unwrap();
    assert!(meta.index >= 1);
    consul.shutdown().await;
}

#[tokio::test]
async fn blocking_query_wakes_on_change() {
    let (consul, client) = start().await;
    client
        .kv_put("w/k", b"1", None, &WriteMode::Plain)
        .await
        .unwrap();
    let (_, meta) = client
        .kv_get_with("w/k", &QueryOptions::default())
        .await
        .unwrap();

    let waiter = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .kv_get_with("w/k", &QueryOptions::blocking(meta.index, GUARD))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    client
        .kv_put("w/k", b"2", None, &WriteMode::Plain)
        .await
        .unwrap();
    let (pair, after) = tokio::time::timeout(GUARD, waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(after.index > meta.index);
    assert_eq!(pair.unwrap().value, b"2");
    consul.shutdown().await;
}

#[tokio::test]
async fn first_write_wakes_empty_list() {
    let (consul, client) = start().await;
    let (pairs, meta) = client
        .kv_list("pools/", &QueryOptions::default())
        .await
        .unwrap();
    assert!(pairs.is_empty());
    // Clients raise an index of 0 to 1 before blocking on it.
    let index = meta.index.max(1);

    let waiter = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .kv_list(
                    "pools/",
                    &QueryOptions::blocking(index, Duration::from_secs(60)),
                )
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    client
        .kv_put("pools/web", b"1", None, &WriteMode::Plain)
        .await
        .unwrap();

    let (pairs, after) = tokio::time::timeout(GUARD, waiter)
        .await
        .expect("the write wakes the list before its wait ends")
        .unwrap()
        .unwrap();
    assert_eq!(pairs.len(), 1);
    assert!(after.index > index, "{} > {index}", after.index);
    consul.shutdown().await;
}

#[tokio::test]
async fn acl_token_is_enforced() {
    let (consul, open) = start_with(ConsulEmulatorConfig {
        acl_token: Some("root-token".into()),
        ..Default::default()
    })
    .await;
    let error = open.kv_get("k").await.unwrap_err();
    assert!(matches!(error, Error::PermissionDenied { .. }), "{error:?}");
    assert!(!error.is_retryable());

    let mut args = steward::consul::ConsulArgs::for_addr(consul.url());
    args.token = Some("root-token".into());
    let client = args.client().unwrap();
    assert!(
        client
            .kv_put("k", b"v", None, &WriteMode::Plain)
            .await
            .unwrap()
    );
    assert_eq!(client.kv_get("k").await.unwrap().unwrap().value, b"v");

    args.token = Some("wrong".into());
    let wrong = args.client().unwrap().kv_get("k").await.unwrap_err();
    assert!(matches!(wrong, Error::PermissionDenied { .. }));
    consul.shutdown().await;
}

#[tokio::test]
async fn unavailable_server_is_retryable() {
    let (consul, client) = start().await;
    post(
        &format!("{}/_sim/unavailable", consul.url()),
        r#"{"seconds": 1}"#,
    )
    .await;
    let error = client.kv_get("k").await.unwrap_err();
    assert!(
        matches!(
            error,
            Error::Unavailable {
                status: Some(503),
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.is_retryable());
    consul.shutdown().await;

    let closed = ConsulClient::for_url("http://127.0.0.1:1").unwrap();
    assert!(closed.kv_get("k").await.unwrap_err().is_retryable());
}

#[tokio::test]
async fn sessions_create_renew_info_destroy() {
    let (consul, client) = start().await;
    let id = client
        .session_create(&SessionRequest {
            name: "test".into(),
            lock_delay: Duration::from_secs(15),
            ttl: Some(Duration::from_secs(30)),
            ..Default::default()
        })
        .await
        .unwrap();

    let info = client.session_info(&id).await.unwrap().unwrap();
    assert_eq!(
        info.lock_delay, 15_000_000_000,
        "LockDelay comes back in nanoseconds"
    );
    assert_eq!(info.ttl_duration(), Some(Duration::from_secs(30)));
    assert_eq!(info.behavior, SessionBehavior::Release);
    assert_eq!(client.session_renew(&id).await.unwrap().id, id);
    assert!(
        client
            .session_list()
            .await
            .unwrap()
            .iter()
            .any(|s| s.id == id)
    );

    client.session_destroy(&id).await.unwrap();
    client.session_destroy(&id).await.unwrap();
    assert_eq!(client.session_info(&id).await.unwrap(), None);
    let gone = client.session_renew(&id).await.unwrap_err();
    assert!(matches!(gone, Error::SessionNotFound { .. }), "{gone:?}");

    let numeric = reqwest::Client::new()
        .put(format!("{}/v1/session/create", consul.url()))
        .body(r#"{"LockDelay": 20}"#)
        .send()
        .await
        .unwrap();
    let numeric_id = numeric.json::<serde_json::Value>().await.unwrap()["ID"]
        .as_str()
        .unwrap()
        .to_string();
    let numeric_info = client.session_info(&numeric_id).await.unwrap().unwrap();
    assert_eq!(
        numeric_info.lock_delay, 20_000_000_000,
        "a number below 1000 means seconds"
    );

    let short = reqwest::Client::new()
        .put(format!("{}/v1/session/create", consul.url()))
        .body(r#"{"TTL": "5s"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(short.status(), 500, "Consul rejects a TTL under 10 s");
    assert_eq!(
        short.text().await.unwrap(),
        "Invalid Session TTL '5000000000', must be between [10s=24h0m0s]"
    );
    consul.shutdown().await;
}

#[tokio::test]
async fn session_expiry_releases_and_lock_delay_blocks() {
    let (consul, client) = start_with(fast_sessions()).await;
    let holder = client
        .session_create(&SessionRequest {
            lock_delay: Duration::from_secs(30),
            ttl: Some(Duration::from_secs(1)),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        client
            .kv_put("lk", b"a", None, &WriteMode::Acquire(holder.clone()))
            .await
            .unwrap()
    );
    let locked = client.kv_get("lk").await.unwrap().unwrap();
    assert_eq!(locked.session.as_deref(), Some(holder.as_str()));
    assert_eq!(locked.lock_index, 1);

    // Wait for the expiry through a blocking query on the key instead of a sleep.
    let (released, _) = client
        .kv_get_with("lk", &QueryOptions::blocking(locked.modify_index, GUARD))
        .await
        .unwrap();
    let released = released.unwrap();
    assert_eq!(
        released.session, None,
        "an expired release-session frees its locks"
    );
    assert_eq!(released.lock_index, 1);
    assert_eq!(client.session_info(&holder).await.unwrap(), None);

    let other = client
        .session_create(&SessionRequest::default())
        .await
        .unwrap();
    assert!(
        !client
            .kv_put("lk", b"b", None, &WriteMode::Acquire(other))
            .await
            .unwrap(),
        "acquire inside the lock delay answers false"
    );
    let invalid = client
        .kv_put(
            "lk",
            b"b",
            None,
            &WriteMode::Acquire("no-such-session".into()),
        )
        .await;
    assert!(invalid.is_err());
    consul.shutdown().await;
}

#[tokio::test]
async fn delete_behavior_removes_locked_keys() {
    let (consul, client) = start().await;
    let id = client
        .session_create(&SessionRequest {
            behavior: SessionBehavior::Delete,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        client
            .kv_put("eph", b"a", None, &WriteMode::Acquire(id.clone()))
            .await
            .unwrap()
    );
    assert!(
        !client
            .kv_put(
                "eph",
                b"a",
                None,
                &WriteMode::Release("someone-else".into())
            )
            .await
            .unwrap_or(false)
    );
    client.session_destroy(&id).await.unwrap();
    assert_eq!(client.kv_get("eph").await.unwrap(), None);
    consul.shutdown().await;
}

#[tokio::test]
async fn leader_lock_hands_over_when_session_destroyed() {
    hand_over_after_destroy(Duration::ZERO).await;
}

#[tokio::test]
async fn leader_lock_hands_over_after_lock_delay() {
    // Acquires inside the delay return false, so the lock must retry until it ends.
    hand_over_after_destroy(Duration::from_secs(1)).await;
}

/// Starts two leader locks, destroys the leader's session, and checks that exactly one of
/// them leads afterwards and that a release hands leadership to the other.
async fn hand_over_after_destroy(lock_delay: Duration) {
    let (consul, client) = start_with(fast_sessions()).await;
    let config = |holder: &str| LeaderLockConfig {
        ttl: Duration::from_secs(2),
        lock_delay,
        wait: Duration::from_secs(5),
        retry_interval: Duration::from_millis(50),
        ..LeaderLockConfig::new("steward/leader", holder)
    };

    let a = LeaderLock::start(client.clone(), config("a"))
        .await
        .unwrap();
    tokio::time::timeout(GUARD, a.wait_for_leadership())
        .await
        .unwrap();
    assert!(a.is_leader());
    assert_eq!(a.current_holder().await.unwrap().as_deref(), Some("a"));

    let b = LeaderLock::start(client.clone(), config("b"))
        .await
        .unwrap();
    assert!(!b.is_leader());

    let a_session = a.session_id().unwrap();
    let mut a_events = a.subscribe();
    client.session_destroy(&a_session).await.unwrap();
    tokio::time::timeout(GUARD, a_events.wait_for(|leader| !*leader))
        .await
        .unwrap()
        .unwrap();
    assert!(
        !a.is_leader(),
        "a holder whose session is gone stops leading"
    );

    tokio::time::timeout(GUARD, async {
        loop {
            if b.is_leader() || a.is_leader() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    assert!(
        !(a.is_leader() && b.is_leader()),
        "never two leaders at once"
    );

    let leader_is_b = b.is_leader();
    if leader_is_b {
        b.shutdown().await.unwrap();
        tokio::time::timeout(GUARD, a.wait_for_leadership())
            .await
            .unwrap();
        assert!(
            a.is_leader(),
            "a new session takes over after the leader releases"
        );
        a.shutdown().await.unwrap();
    } else {
        // The old holder recreated its session and re-acquired first: also a valid handover.
        a.shutdown().await.unwrap();
        tokio::time::timeout(GUARD, b.wait_for_leadership())
            .await
            .unwrap();
        assert!(b.is_leader());
        b.shutdown().await.unwrap();
    }
    assert_eq!(
        client
            .kv_get("steward/leader")
            .await
            .unwrap()
            .unwrap()
            .session,
        None
    );
    consul.shutdown().await;
}

#[tokio::test]
async fn watch_rate_limits_only_idle_wakeups() {
    let (consul, client) = start().await;
    // One token per hour: after the burst of two, only reads that follow a yielded change
    // may go without waiting.
    let config = WatchConfig {
        min_interval: Duration::from_secs(3600),
        ..fast_watch()
    };
    let mut watch = KvWatch::new(client.clone(), WatchTarget::Prefix("app/".into()), config);
    tokio::time::timeout(GUARD, watch.next())
        .await
        .unwrap()
        .unwrap();

    for value in ["1", "2", "3", "4"] {
        client
            .kv_put("app/a", value.as_bytes(), None, &WriteMode::Plain)
            .await
            .unwrap();
        let snapshot = tokio::time::timeout(GUARD, watch.next())
            .await
            .expect("a change right after a change is read without a token")
            .unwrap();
        assert_eq!(snapshot.pairs[0].value, value.as_bytes());
    }

    // A key added and deleted while no read is out moves the prefix index but not the data.
    // The next read returns that at once and yields nothing, and the read after it takes
    // the last token of the burst and blocks.
    client
        .kv_put("app/tmp", b"x", None, &WriteMode::Plain)
        .await
        .unwrap();
    client.kv_delete("app/tmp", None).await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), watch.next())
            .await
            .is_err(),
        "a wakeup without new data yields nothing"
    );

    // The bucket is empty now, and the last call yielded nothing: a real change waits for
    // a token, an hour away.
    client
        .kv_put("app/a", b"5", None, &WriteMode::Plain)
        .await
        .unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(500), watch.next())
            .await
            .is_err(),
        "a read after a wakeup without new data waits for its token"
    );
    consul.shutdown().await;
}

#[tokio::test]
async fn watch_yields_snapshots_without_false_changes() {
    let (consul, client) = start().await;
    let mut watch = KvWatch::new(
        client.clone(),
        WatchTarget::Prefix("app/".into()),
        fast_watch(),
    );

    let first = tokio::time::timeout(GUARD, watch.next())
        .await
        .unwrap()
        .unwrap();
    assert!(first.pairs.is_empty());
    assert!(first.index >= 1);

    client
        .kv_put("app/a", b"1", None, &WriteMode::Plain)
        .await
        .unwrap();
    let second = tokio::time::timeout(GUARD, watch.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.pairs.len(), 1);

    // Churn outside the prefix and a same-value write must not produce a snapshot; the
    // next one must be the real change.
    client
        .kv_put("elsewhere", b"x", None, &WriteMode::Plain)
        .await
        .unwrap();
    client
        .kv_put("app/a", b"1", None, &WriteMode::Plain)
        .await
        .unwrap();
    client
        .kv_put("app/b", b"2", None, &WriteMode::Plain)
        .await
        .unwrap();
    let third = tokio::time::timeout(GUARD, watch.next())
        .await
        .unwrap()
        .unwrap();
    let keys: Vec<&str> = third.pairs.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["app/a", "app/b"]);
    consul.shutdown().await;
}

#[tokio::test]
async fn watch_survives_unavailable_and_restore() {
    let (consul, client) = start().await;
    let mut watch = KvWatch::new(
        client.clone(),
        WatchTarget::Prefix("app/".into()),
        fast_watch(),
    );
    client
        .kv_put("app/a", b"1", None, &WriteMode::Plain)
        .await
        .unwrap();
    let first = tokio::time::timeout(GUARD, watch.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.pairs.len(), 1);

    post(&format!("{}/_sim/snapshot", consul.url()), "").await;
    for i in 0..5 {
        client
            .kv_put(&format!("pad/{i}"), b"x", None, &WriteMode::Plain)
            .await
            .unwrap();
    }
    client
        .kv_put("app/b", b"2", None, &WriteMode::Plain)
        .await
        .unwrap();
    let grown = tokio::time::timeout(GUARD, watch.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(grown.pairs.len(), 2);

    // While the server returns 503, the watch retries, and then it reports the later write.
    let outage = post(
        &format!("{}/_sim/unavailable", consul.url()),
        r#"{"seconds": 1}"#,
    )
    .await;
    assert_eq!(outage.status(), 200);
    let during = {
        let mut watch = watch;
        tokio::spawn(async move { (tokio::time::timeout(GUARD, watch.next()).await, watch) })
    };
    tokio::time::sleep(Duration::from_millis(1200)).await;
    client
        .kv_put("app/c", b"3", None, &WriteMode::Plain)
        .await
        .unwrap();
    let (after_outage, mut watch) = during.await.unwrap();
    let after_outage = after_outage.unwrap().unwrap();
    assert_eq!(
        after_outage.pairs.len(),
        3,
        "the change after the outage is not missed"
    );

    // Restore: the data and index go back to the snapshot. The watch must report the
    // restored state (one key) instead of waiting for the old, higher index.
    let restore = post(&format!("{}/_sim/restore", consul.url()), "").await;
    assert_eq!(restore.status(), 200);
    let restored = tokio::time::timeout(GUARD, watch.next())
        .await
        .unwrap()
        .unwrap();
    assert!(
        restored.index < after_outage.index,
        "the index went backwards"
    );
    let keys: Vec<&str> = restored.pairs.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["app/a"]);

    // A change after the restore is seen, and at an index below the pre-restore one.
    client
        .kv_put("app/z", b"9", None, &WriteMode::Plain)
        .await
        .unwrap();
    let next = tokio::time::timeout(GUARD, watch.next())
        .await
        .unwrap()
        .unwrap();
    let keys: Vec<&str> = next.pairs.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["app/a", "app/z"]);
    consul.shutdown().await;
}

#[tokio::test]
async fn data_dir_keeps_state_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    // A directory that does not exist yet is created on start.
    let config = || ConsulEmulatorConfig {
        data_dir: Some(dir.path().join("consul")),
        ..Default::default()
    };

    let (consul, client) = start_with(config()).await;
    client
        .kv_put("keep/me", b"v", Some(7), &WriteMode::Plain)
        .await
        .unwrap();
    let before = client.kv_get("keep/me").await.unwrap().unwrap();
    consul.shutdown().await;

    let (consul, client) = start_with(config()).await;
    assert_eq!(client.kv_get("keep/me").await.unwrap().unwrap(), before);
    consul.shutdown().await;
    assert!(dir.path().join("consul/state.json").exists());
    assert!(!dir.path().join("consul/state.json.tmp").exists());
}

fn fixture(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/it/consul_fixtures")
        .join(name);
    std::fs::read_to_string(path).unwrap()
}

fn field_names(value: &serde_json::Value) -> Vec<String> {
    let mut names: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
    names.sort();
    names
}

#[tokio::test]
async fn fixtures_parse_and_emulator_uses_same_fields() {
    let (consul, client) = start().await;

    for name in [
        "kv-get-response.json",
        "kv-leader-key-locked.json",
        "kv-leader-key-after-blocking-query.json",
    ] {
        let pairs: Vec<WireKvPair> = serde_json::from_str(&fixture(name)).unwrap();
        let pair = steward::consul::KvPair::try_from(pairs[0].clone()).unwrap();
        assert!(pair.session.is_some(), "{name}");
        assert!(!pair.value.is_empty(), "{name}");
    }
    let locked: Vec<WireKvPair> =
        serde_json::from_str(&fixture("kv-leader-key-locked.json")).unwrap();
    let holder = steward::consul::KvPair::try_from(locked[0].clone()).unwrap();
    let acquire_value: serde_json::Value =
        serde_json::from_str(&fixture("kv-leader-acquire-value.json")).unwrap();
    let holder_value: serde_json::Value = serde_json::from_slice(&holder.value).unwrap();
    assert!(holder_value.get("Node").is_some() && acquire_value.get("Node").is_some());

    let keys: Vec<String> = serde_json::from_str(&fixture("kv-keys-response.json")).unwrap();
    assert_eq!(keys.len(), 3);
    assert!(serde_json::from_str::<bool>(&fixture("kv-put-response.json")).unwrap());
    for name in [
        "session-info-response.json",
        "session-list-no-ttl.json",
        "session-renew-response.json",
    ] {
        let sessions: Vec<steward::consul::SessionInfo> =
            serde_json::from_str(&fixture(name)).unwrap();
        assert_eq!(sessions[0].lock_delay, 15_000_000_000, "{name}");
    }

    // The emulator's responses carry the fixtures' field names.
    let id = client
        .session_create(&SessionRequest {
            ttl: Some(Duration::from_secs(30)),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        client
            .kv_put("zip", b"test", None, &WriteMode::Acquire(id.clone()))
            .await
            .unwrap()
    );
    let real_kv: serde_json::Value =
        serde_json::from_str(&fixture("kv-get-response.json")).unwrap();
    let emu_kv: serde_json::Value = reqwest::get(format!("{}/v1/kv/zip", consul.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(field_names(&emu_kv[0]), field_names(&real_kv[0]));

    let real_session: serde_json::Value =
        serde_json::from_str(&fixture("session-info-response.json")).unwrap();
    let emu_session: serde_json::Value =
        reqwest::get(format!("{}/v1/session/info/{id}", consul.url()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(field_names(&emu_session[0]), field_names(&real_session[0]));

    let renewed: serde_json::Value = reqwest::Client::new()
        .put(format!("{}/v1/session/renew/{id}", consul.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let real_renewed: serde_json::Value =
        serde_json::from_str(&fixture("session-renew-response.json")).unwrap();
    assert_eq!(field_names(&renewed[0]), field_names(&real_renewed[0]));
    let listed: serde_json::Value = reqwest::get(format!("{}/v1/session/list", consul.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let real_listed: serde_json::Value =
        serde_json::from_str(&fixture("session-list-no-ttl.json")).unwrap();
    assert_eq!(field_names(&listed[0]), field_names(&real_listed[0]));

    let put = reqwest::Client::new()
        .put(format!("{}/v1/kv/web/bar", consul.url()))
        .body("x")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(put, fixture("kv-put-response.json").trim());

    let request_minimal = fixture("session-create-request-minimal.json");
    let request_full = fixture("session-create-request.json");
    for body in [request_minimal, request_full] {
        let response = reqwest::Client::new()
            .put(format!("{}/v1/session/create", consul.url()))
            .body(body)
            .send()
            .await
            .unwrap();
        let created: serde_json::Value = response.json().await.unwrap();
        let real: serde_json::Value =
            serde_json::from_str(&fixture("session-create-response.json")).unwrap();
        assert_eq!(field_names(&created), field_names(&real));
    }
    consul.shutdown().await;
}

/// Counts KV requests so a test can see that a watch woke up without yielding.
#[derive(Default)]
struct KvRequestCounter(std::sync::atomic::AtomicUsize);

impl steward::telemetry::RequestObserver for KvRequestCounter {
    fn observe(&self, system: &str, endpoint: &str, _status: u16, _seconds: f64) {
        assert_eq!(system, "consul");
        if endpoint == "/v1/kv/:key" {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

#[tokio::test]
async fn watch_ignores_index_churn() {
    let (consul, client) = start().await;
    let counter = std::sync::Arc::new(KvRequestCounter::default());
    let watched = client.clone().with_observer(counter.clone());
    let mut watch = KvWatch::new(watched, WatchTarget::Prefix("empty/".into()), fast_watch());
    let first = tokio::time::timeout(GUARD, watch.next())
        .await
        .unwrap()
        .unwrap();
    assert!(first.pairs.is_empty());

    // An empty prefix reports the whole table's index, so writes elsewhere wake the watch
    // with unchanged data. It must keep waiting instead of yielding a snapshot.
    let next = tokio::spawn(async move { tokio::time::timeout(GUARD, watch.next()).await });
    for i in 0..3 {
        let before = counter.0.load(std::sync::atomic::Ordering::SeqCst);
        client
            .kv_put(&format!("churn/{i}"), b"x", None, &WriteMode::Plain)
            .await
            .unwrap();
        tokio::time::timeout(GUARD, async {
            while counter.0.load(std::sync::atomic::Ordering::SeqCst) <= before {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap();
    }
    assert!(
        !next.is_finished(),
        "index churn alone must not yield a snapshot"
    );

    client
        .kv_put("empty/real", b"1", None, &WriteMode::Plain)
        .await
        .unwrap();
    let snapshot = next.await.unwrap().unwrap().unwrap();
    let keys: Vec<&str> = snapshot.pairs.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["empty/real"]);
    consul.shutdown().await;
}

#[tokio::test]
async fn batched_txn_splits_on_too_large() {
    let (old, _) = start_with(ConsulEmulatorConfig {
        txn_max_ops: 64,
        ..Default::default()
    })
    .await;
    // A client that assumes Consul 1.14 or later (128 ops) against a server that takes 64.
    let mut config = steward::consul::ClientConfig::new(old.url());
    config.txn_max_ops = 128;
    let client = ConsulClient::new(config).unwrap();
    let ops: Vec<TxnOp> = (0..100)
        .map(|i| TxnOp::Set {
            key: format!("split/{i}"),
            value: b"v".to_vec(),
            flags: 0,
        })
        .collect();
    let results = client.txn_batched(&ops).await.unwrap();
    assert_eq!(results.len(), 100);
    assert_eq!(
        client
            .kv_keys("split/", None, &QueryOptions::default())
            .await
            .unwrap()
            .0
            .len(),
        100
    );
    old.shutdown().await;
}

#[tokio::test]
async fn acquire_with_unknown_session_is_permanent() {
    let (consul, client) = start().await;
    let error = client
        .kv_put(
            "lk",
            b"v",
            None,
            &WriteMode::Acquire("00000000-0000-0000-0000-000000000000".into()),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, Error::SessionNotFound { .. }), "{error:?}");
    assert!(!error.is_retryable());
    consul.shutdown().await;
}

#[tokio::test]
async fn leader_lock_steps_down_when_renewal_fails() {
    let (consul, client) = start_with(fast_sessions()).await;
    let config = LeaderLockConfig {
        ttl: Duration::from_secs(2),
        lock_delay: Duration::ZERO,
        wait: Duration::from_secs(5),
        retry_interval: Duration::from_millis(50),
        ..LeaderLockConfig::new("steward/leader", "solo")
    };
    let lock = LeaderLock::start(client.clone(), config).await.unwrap();
    tokio::time::timeout(GUARD, lock.wait_for_leadership())
        .await
        .unwrap();
    let mut events = lock.subscribe();

    // The outage outlasts TTL/2, so at least one renewal fails inside it.
    post(
        &format!("{}/_sim/unavailable", consul.url()),
        r#"{"seconds": 3}"#,
    )
    .await;
    tokio::time::timeout(GUARD, events.wait_for(|leader| !*leader))
        .await
        .unwrap()
        .unwrap();
    assert!(!lock.is_leader(), "a failed renewal ends leadership");

    // After the outage the lock renews or replaces its session and leads again.
    tokio::time::timeout(GUARD, lock.wait_for_leadership())
        .await
        .unwrap();
    assert!(lock.is_leader());
    let holder = lock.current_holder().await.unwrap();
    assert_eq!(holder.as_deref(), Some("solo"));
    lock.shutdown().await.unwrap();
    consul.shutdown().await;
}

#[tokio::test]
async fn key_watch_streams_changes() {
    use futures::StreamExt as _;

    let (consul, client) = start().await;
    let watch = KvWatch::new(
        client.clone(),
        WatchTarget::Key("one/key".into()),
        fast_watch(),
    );
    let mut stream = Box::pin(watch.into_stream());

    let absent = tokio::time::timeout(GUARD, stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(absent.pairs.is_empty());

    client
        .kv_put("one/key", b"v1", None, &WriteMode::Plain)
        .await
        .unwrap();
    let written = tokio::time::timeout(GUARD, stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(written.pairs.len(), 1);
    assert_eq!(written.pairs[0].value, b"v1");

    client.kv_delete("one/key", None).await.unwrap();
    let deleted = tokio::time::timeout(GUARD, stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(deleted.pairs.is_empty());
    assert!(deleted.index > written.index);
    consul.shutdown().await;
}

/// Serves one HTTPS request on loopback with the test certificates, requiring a client
/// certificate signed by the test CA, and replies as `/v1/status/leader` does.
async fn serve_one_tls_request() -> (std::net::SocketAddr, tokio::task::JoinHandle<String>) {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/consul_tls");
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(dir.join("ca.pem")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider.clone())
            .build()
            .unwrap();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = acceptor.accept(tcp).await.unwrap();
        let mut request = Vec::new();
        let mut buffer = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let read = tls.read(&mut buffer).await.unwrap();
            assert!(read > 0, "the client closed the connection early");
            request.extend_from_slice(&buffer[..read]);
        }
        let body = "\"127.0.0.1:8300\"";
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        tls.write_all(response.as_bytes()).await.unwrap();
        tls.shutdown().await.unwrap();
        String::from_utf8_lossy(&request).into_owned()
    });
    (addr, server)
}

#[tokio::test]
async fn tls_settings_verify_server_and_present_client_cert() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/consul_tls");
    let (addr, server) = serve_one_tls_request().await;

    // The address has no scheme, so CONSUL_HTTP_SSL selects https.
    let mut args = steward::consul::ConsulArgs::for_addr(addr.to_string());
    args.http_ssl = Some(true);
    args.ca_cert = Some(dir.join("ca.pem"));
    args.client_cert = Some(dir.join("client.pem"));
    args.client_key = Some(dir.join("client.key"));
    args.token = Some("tls-token".into());
    let client = args.client().unwrap();
    assert!(client.base_url().starts_with("https://"));

    let leader = tokio::time::timeout(GUARD, client.status_leader())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(leader, "127.0.0.1:8300");
    let request = server.await.unwrap();
    assert!(request.starts_with("GET /v1/status/leader "), "{request}");
    assert!(
        request
            .to_ascii_lowercase()
            .contains("x-consul-token: tls-token"),
        "{request}"
    );
}

#[tokio::test]
async fn tls_without_ca_rejects_unknown_server() {
    let (addr, server) = serve_one_tls_request().await;
    let client = ConsulClient::for_url(format!("https://{addr}")).unwrap();
    let error = tokio::time::timeout(GUARD, client.status_leader())
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(error, Error::Unavailable { status: None, .. }),
        "{error:?}"
    );
    server.abort();
}

#[tokio::test]
async fn watch_resyncs_quietly_when_index_drops() {
    let (consul, client) = start().await;
    client
        .kv_put("drop/a", b"1", None, &WriteMode::Plain)
        .await
        .unwrap();
    client
        .kv_put("drop/b", b"2", None, &WriteMode::Plain)
        .await
        .unwrap();
    let counter = std::sync::Arc::new(KvRequestCounter::default());
    let config = WatchConfig {
        wait: Duration::from_millis(300),
        ..fast_watch()
    };
    let mut watch = KvWatch::new(
        client.clone().with_observer(counter.clone()),
        WatchTarget::Prefix("drop/".into()),
        config,
    );
    assert_eq!(
        tokio::time::timeout(GUARD, watch.next())
            .await
            .unwrap()
            .unwrap()
            .pairs
            .len(),
        2
    );

    // Deleting the newest key leaves a tombstone that keeps the list index at the delete.
    client.kv_delete("drop/b", None).await.unwrap();
    let after_delete = tokio::time::timeout(GUARD, watch.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after_delete.pairs.len(), 1);

    // Reaping it makes the list index drop below the one the watch blocks on. The watch
    // must reset and re-read, and the unchanged data must not count as a change.
    post(&format!("{}/_sim/reap-tombstones", consul.url()), "").await;
    let (_, dropped) = client
        .kv_list("drop/", &QueryOptions::default())
        .await
        .unwrap();
    assert!(dropped.index < after_delete.index);
    let next =
        tokio::spawn(async move { (tokio::time::timeout(GUARD, watch.next()).await, watch) });
    let before = counter.0.load(std::sync::atomic::Ordering::SeqCst);
    tokio::time::timeout(GUARD, async {
        // The blocking read times out with the lower index, then the resync read and a new
        // blocking read follow.
        while counter.0.load(std::sync::atomic::Ordering::SeqCst) < before + 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    assert!(
        !next.is_finished(),
        "a resync with unchanged data yields nothing"
    );

    client
        .kv_put("drop/c", b"3", None, &WriteMode::Plain)
        .await
        .unwrap();
    let (changed, _watch) = next.await.unwrap();
    let keys: Vec<String> = changed
        .unwrap()
        .unwrap()
        .pairs
        .into_iter()
        .map(|p| p.key)
        .collect();
    assert_eq!(keys, ["drop/a", "drop/c"]);
    consul.shutdown().await;
}

#[tokio::test]
async fn client_requests_reach_controller_metrics() {
    let (consul, client) = start().await;
    let metrics = std::sync::Arc::new(steward::telemetry::Metrics::new());
    let observed = client.with_observer(metrics.clone());
    observed
        .kv_put("m/k", b"v", None, &WriteMode::Plain)
        .await
        .unwrap();
    observed.kv_get("m/k").await.unwrap();
    observed.kv_get("m/missing").await.unwrap();

    let text = metrics.encode();
    let kv_lines: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.contains(r#"system="consul""#)
                && l.contains(r#"endpoint="/v1/kv/:key""#)
                && l.contains("requests_total")
        })
        .collect();
    assert!(
        kv_lines
            .iter()
            .any(|l| l.contains(r#"status="200""#) && l.ends_with(" 2")),
        "{text}"
    );
    assert!(
        kv_lines
            .iter()
            .any(|l| l.contains(r#"status="404""#) && l.ends_with(" 1")),
        "{text}"
    );
    consul.shutdown().await;
}

async fn get_raw(url: String) -> reqwest::Response {
    reqwest::Client::new().get(url).send().await.unwrap()
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_else(|| panic!("missing header {name}: {:?}", response.headers()))
        .to_owned()
}

#[tokio::test]
async fn effective_consistency_follows_query() {
    let (consul, client) = start().await;
    client
        .kv_put("steward/pools/web", b"a", None, &WriteMode::Plain)
        .await
        .unwrap();

    let cases = [
        ("", "leader"),
        ("?stale", "stale"),
        ("?stale=true", "stale"),
        ("?consistent", "consistent"),
        ("?leader", "leader"),
    ];
    for (query, expected) in cases {
        let response = get_raw(format!("{}/v1/kv/steward/pools/web{query}", consul.url())).await;
        assert_eq!(response.status(), 200, "{query}");
        assert_eq!(
            header(&response, "X-Consul-Effective-Consistency"),
            expected,
            "{query}"
        );
    }

    let sessions = get_raw(format!("{}/v1/session/list?stale", consul.url())).await;
    assert_eq!(header(&sessions, "X-Consul-Effective-Consistency"), "stale");
    let both = get_raw(format!("{}/v1/session/list?stale&consistent", consul.url())).await;
    assert_eq!(both.status(), 400);
    consul.shutdown().await;
}

#[tokio::test]
async fn other_datacenter_has_no_path() {
    let (consul, client) = start().await;
    client
        .kv_put("steward/pools/web", b"a", None, &WriteMode::Plain)
        .await
        .unwrap();

    let own = get_raw(format!("{}/v1/kv/steward/pools/web?dc=dc1", consul.url())).await;
    assert_eq!(own.status(), 200);

    let other = get_raw(format!("{}/v1/kv/steward/pools/web?dc=other", consul.url())).await;
    assert_eq!(other.status(), 500);
    assert_eq!(other.text().await.unwrap(), "No path to datacenter");

    let write = reqwest::Client::new()
        .put(format!("{}/v1/kv/steward/pools/web?dc=other", consul.url()))
        .body("b")
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), 500);
    assert_eq!(
        client
            .kv_get("steward/pools/web")
            .await
            .unwrap()
            .map(|pair| pair.value),
        Some(b"a".to_vec())
    );
    consul.shutdown().await;
}

#[tokio::test]
async fn configured_datacenter_is_accepted() {
    let (consul, _client) = start_with(ConsulEmulatorConfig {
        datacenter: "eu-west".to_owned(),
        ..ConsulEmulatorConfig::default()
    })
    .await;
    let own = get_raw(format!("{}/v1/session/list?dc=eu-west", consul.url())).await;
    assert_eq!(own.status(), 200);
    let default_name = get_raw(format!("{}/v1/session/list?dc=dc1", consul.url())).await;
    assert_eq!(default_name.status(), 500);
    consul.shutdown().await;
}

#[tokio::test]
async fn session_ttl_errors_match_consul() {
    let (consul, _client) = start().await;
    let cases = [
        (
            "bogus",
            "Session TTL 'bogus' invalid: time: invalid duration \"bogus\"",
        ),
        (
            "30",
            "Session TTL '30' invalid: time: missing unit in duration \"30\"",
        ),
        (
            "30x",
            "Session TTL '30x' invalid: time: unknown unit \"x\" in duration \"30x\"",
        ),
        (
            "25h",
            "Invalid Session TTL '90000000000000', must be between [10s=24h0m0s]",
        ),
    ];
    for (ttl, expected) in cases {
        let response = reqwest::Client::new()
            .put(format!("{}/v1/session/create", consul.url()))
            .body(serde_json::json!({ "TTL": ttl }).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 500, "{ttl}");
        assert_eq!(response.text().await.unwrap(), expected, "{ttl}");
    }

    let numeric = reqwest::Client::new()
        .put(format!("{}/v1/session/create", consul.url()))
        .body(r#"{"TTL": 30}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(numeric.status(), 400, "a TTL must be a string");
    consul.shutdown().await;
}
