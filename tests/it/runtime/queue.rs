use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use steward::runtime::{QueueConfig, QueueConfigError, WorkQueue};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

type Log = Arc<Mutex<Vec<(String, Instant)>>>;

fn config(concurrency: usize) -> QueueConfig {
    QueueConfig {
        concurrency,
        debounce: Duration::from_millis(500),
        max_debounce: Duration::from_secs(5),
        backoff_base: Duration::from_secs(1),
        backoff_max: Duration::from_secs(60),
        safety_requeue: Duration::from_secs(300),
    }
}

/// Starts a runner whose reconcile records each call and takes `work` of virtual time.
fn start(
    queue: &WorkQueue<String>,
    work: Duration,
    fail: impl Fn(&str, usize) -> bool + Send + Sync + 'static,
) -> (Log, CancellationToken, tokio::task::JoinHandle<()>) {
    let log: Log = Arc::default();
    let cancel = CancellationToken::new();
    let runner_queue = queue.clone();
    let runner_log = Arc::clone(&log);
    let runner_cancel = cancel.clone();
    let fail = Arc::new(fail);
    let handle = tokio::spawn(async move {
        runner_queue
            .run(runner_cancel, move |key: String| {
                let log = Arc::clone(&runner_log);
                let fail = Arc::clone(&fail);
                async move {
                    let calls = {
                        let mut log = log.lock().expect("lock");
                        log.push((key.clone(), Instant::now()));
                        log.iter().filter(|(k, _)| *k == key).count()
                    };
                    tokio::time::sleep(work).await;
                    if fail(&key, calls) {
                        Err(format!("reconcile {calls} of {key} failed"))
                    } else {
                        Ok(None)
                    }
                }
            })
            .await;
    });
    (log, cancel, handle)
}

fn times_of(log: &Log, key: &str) -> Vec<Instant> {
    log.lock()
        .expect("lock")
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, at)| *at)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn runner_never_runs_one_pool_twice_at_once() {
    let queue = WorkQueue::new(config(8)).expect("valid config");
    let in_flight: Arc<Mutex<HashSet<String>>> = Arc::default();
    let overlaps = Arc::new(Mutex::new(0u32));
    let runs = Arc::new(Mutex::new(0u32));
    let cancel = CancellationToken::new();

    let runner = {
        let queue = queue.clone();
        let cancel = cancel.clone();
        let in_flight = Arc::clone(&in_flight);
        let overlaps = Arc::clone(&overlaps);
        let runs = Arc::clone(&runs);
        tokio::spawn(async move {
            queue
                .run(cancel, move |key: String| {
                    let in_flight = Arc::clone(&in_flight);
                    let overlaps = Arc::clone(&overlaps);
                    let runs = Arc::clone(&runs);
                    async move {
                        if !in_flight.lock().expect("lock").insert(key.clone()) {
                            *overlaps.lock().expect("lock") += 1;
                        }
                        *runs.lock().expect("lock") += 1;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        in_flight.lock().expect("lock").remove(&key);
                        Ok::<_, String>(Some(Duration::ZERO))
                    }
                })
                .await;
        })
    };

    // Request the same pool every 10 ms while it runs.
    for _ in 0..100 {
        queue.schedule("pool-a".to_owned(), Duration::ZERO);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cancel.cancel();
    runner.await.expect("runner ends");

    assert_eq!(*overlaps.lock().expect("lock"), 0);
    let runs = *runs.lock().expect("lock");
    assert!(
        runs >= 9,
        "the pool kept running back to back, ran {runs} times"
    );
    assert!(runs <= 11, "each run takes 100 ms of 1 s, ran {runs} times");
}

#[tokio::test(start_paused = true)]
async fn five_thousand_pools_all_run_once() {
    let queue = WorkQueue::new(config(16)).expect("valid config");
    let (log, cancel, runner) = start(&queue, Duration::from_millis(5), |_, _| false);
    let start_time = Instant::now();

    for index in 0..5000 {
        queue.schedule(format!("pool-{index:04}"), Duration::ZERO);
    }
    // 5,000 runs of 5 ms over 16 slots need about 1.6 s; the safety requeue is 300 s.
    tokio::time::sleep(Duration::from_secs(10)).await;
    cancel.cancel();
    runner.await.expect("runner ends");

    let log = log.lock().expect("lock");
    let mut per_pool: HashMap<&str, u32> = HashMap::new();
    for (key, at) in log.iter() {
        *per_pool.entry(key.as_str()).or_default() += 1;
        assert!(
            *at - start_time < Duration::from_secs(3),
            "{key} started late"
        );
    }
    assert_eq!(per_pool.len(), 5000, "no pool skipped");
    assert!(
        per_pool.values().all(|runs| *runs == 1),
        "no pool ran twice"
    );
    assert_eq!(
        queue.len(),
        5000,
        "every pool is requeued for its safety check"
    );
    assert_eq!(queue.running(), 0);
}

#[tokio::test(start_paused = true)]
async fn concurrency_cap_holds_and_order_is_fair() {
    let queue = WorkQueue::new(config(2)).expect("valid config");
    let active = Arc::new(Mutex::new((0usize, 0usize)));
    let order: Arc<Mutex<Vec<String>>> = Arc::default();
    let cancel = CancellationToken::new();

    let runner = {
        let queue = queue.clone();
        let cancel = cancel.clone();
        let active = Arc::clone(&active);
        let order = Arc::clone(&order);
        tokio::spawn(async move {
            queue
                .run(cancel, move |key: String| {
                    let active = Arc::clone(&active);
                    let order = Arc::clone(&order);
                    async move {
                        {
                            let mut active = active.lock().expect("lock");
                            active.0 += 1;
                            active.1 = active.1.max(active.0);
                        }
                        order.lock().expect("lock").push(key);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        active.lock().expect("lock").0 -= 1;
                        Ok::<_, String>(None)
                    }
                })
                .await;
        })
    };

    for index in 0..10 {
        queue.schedule(format!("pool-{index}"), Duration::from_millis(index));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    cancel.cancel();
    runner.await.expect("runner ends");

    assert_eq!(
        active.lock().expect("lock").1,
        2,
        "at most two at once, and two were used"
    );
    let expected: Vec<String> = (0..10).map(|i| format!("pool-{i}")).collect();
    assert_eq!(
        *order.lock().expect("lock"),
        expected,
        "pools start in due order"
    );
}

#[tokio::test(start_paused = true)]
async fn backoff_grows_and_resets() {
    let queue = WorkQueue::new(config(1)).expect("valid config");
    // Calls 1 to 4 fail, call 5 succeeds, call 6 fails again.
    let (log, cancel, runner) = start(&queue, Duration::ZERO, |_, call| call <= 4 || call == 6);

    queue.schedule("pool-a".to_owned(), Duration::ZERO);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(queue.failures(&"pool-a".to_owned()), 1);

    tokio::time::sleep(Duration::from_secs(400)).await;
    cancel.cancel();
    runner.await.expect("runner ends");

    let times = times_of(&log, "pool-a");
    assert!(times.len() >= 7, "calls: {}", times.len());
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(gaps[0], Duration::from_secs(1));
    assert_eq!(gaps[1], Duration::from_secs(2));
    assert_eq!(gaps[2], Duration::from_secs(4));
    assert_eq!(gaps[3], Duration::from_secs(8));
    assert_eq!(gaps[4], Duration::from_secs(300), "success: safety requeue");
    assert_eq!(
        gaps[5],
        Duration::from_secs(1),
        "the failure count was reset by the success"
    );
}

#[test]
fn backoff_is_capped() {
    let config = config(1);
    assert_eq!(config.backoff(1), Duration::from_secs(1));
    assert_eq!(config.backoff(6), Duration::from_secs(32));
    assert_eq!(config.backoff(7), Duration::from_secs(60));
    assert_eq!(config.backoff(u32::MAX), Duration::from_secs(60));
}

#[tokio::test(start_paused = true)]
async fn earliest_request_wins() {
    let queue = WorkQueue::new(config(1)).expect("valid config");
    let key = "pool-a".to_owned();
    let start_time = Instant::now();

    queue.schedule(key.clone(), Duration::from_secs(10));
    queue.schedule(key.clone(), Duration::from_secs(2));
    queue.schedule(key.clone(), Duration::from_secs(20));
    assert_eq!(
        queue.due_at(&key),
        Some(start_time + Duration::from_secs(2))
    );
    assert_eq!(queue.len(), 1, "one entry per pool");

    let (log, cancel, runner) = start(&queue, Duration::ZERO, |_, _| false);
    tokio::time::sleep(Duration::from_secs(60)).await;
    cancel.cancel();
    runner.await.expect("runner ends");

    assert_eq!(
        times_of(&log, "pool-a"),
        vec![start_time + Duration::from_secs(2)]
    );
}

#[tokio::test(start_paused = true)]
async fn request_while_running_reruns_after() {
    let queue = WorkQueue::new(config(4)).expect("valid config");
    let (log, cancel, runner) = start(&queue, Duration::from_secs(1), |_, _| false);
    let start_time = Instant::now();

    queue.schedule("pool-a".to_owned(), Duration::ZERO);
    tokio::time::sleep(Duration::from_millis(500)).await;
    queue.schedule("pool-a".to_owned(), Duration::ZERO);
    tokio::time::sleep(Duration::from_secs(5)).await;
    cancel.cancel();
    runner.await.expect("runner ends");

    assert_eq!(
        times_of(&log, "pool-a"),
        vec![start_time, start_time + Duration::from_secs(1)],
        "the second request runs when the first reconcile ends"
    );
}

#[tokio::test(start_paused = true)]
async fn notifications_are_debounced_up_to_max() {
    let queue = WorkQueue::new(config(1)).expect("valid config");
    let key = "pool-a".to_owned();
    let start_time = Instant::now();

    // A burst of notifications 100 ms apart for 10 s: the pool runs once 5 s in.
    queue.notify_changed(key.clone());
    assert_eq!(
        queue.due_at(&key),
        Some(start_time + Duration::from_millis(500))
    );
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        queue.notify_changed(key.clone());
    }
    assert_eq!(
        queue.due_at(&key),
        Some(start_time + Duration::from_millis(2500))
    );

    let (log, cancel, runner) = start(&queue, Duration::ZERO, |_, _| false);
    for _ in 0..80 {
        queue.notify_changed(key.clone());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cancel.cancel();
    runner.await.expect("runner ends");

    let times = times_of(&log, "pool-a");
    assert_eq!(
        times[0],
        start_time + Duration::from_secs(5),
        "capped at max debounce"
    );
}

#[tokio::test(start_paused = true)]
async fn cancel_waits_for_running_reconcile() {
    let queue = WorkQueue::new(config(1)).expect("valid config");
    let (log, cancel, runner) = start(&queue, Duration::from_secs(3), |_, _| false);

    queue.schedule("pool-a".to_owned(), Duration::ZERO);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(queue.running(), 1);
    cancel.cancel();
    runner.await.expect("runner ends");

    assert_eq!(
        queue.running(),
        0,
        "the running reconcile finished before run returned"
    );
    assert_eq!(times_of(&log, "pool-a").len(), 1);
}

#[test]
fn invalid_config_is_rejected() {
    let mut bad = config(0);
    assert_eq!(
        WorkQueue::<String>::new(bad).err(),
        Some(QueueConfigError::ZeroConcurrency)
    );

    bad = config(1);
    bad.max_debounce = Duration::from_millis(100);
    assert!(matches!(
        bad.validate(),
        Err(QueueConfigError::DebounceAboveMax { .. })
    ));

    bad = config(1);
    bad.backoff_max = Duration::from_millis(10);
    assert!(matches!(
        bad.validate(),
        Err(QueueConfigError::BackoffAboveMax { .. })
    ));

    bad = config(1);
    bad.safety_requeue = Duration::ZERO;
    assert_eq!(bad.validate(), Err(QueueConfigError::ZeroSafetyRequeue));
}

#[tokio::test(start_paused = true)]
async fn forgotten_pool_is_not_requeued() {
    let queue = WorkQueue::new(config(2)).expect("valid config");
    let (log, cancel, runner) = start(&queue, Duration::from_secs(1), |_, _| false);

    queue.schedule("pool-a".to_owned(), Duration::ZERO);
    queue.schedule("pool-b".to_owned(), Duration::from_secs(30));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(queue.running(), 1);

    // pool-a is forgotten while it runs, pool-b while it waits.
    queue.forget(&"pool-a".to_owned());
    queue.forget(&"pool-b".to_owned());
    tokio::time::sleep(Duration::from_secs(600)).await;
    cancel.cancel();
    runner.await.expect("runner ends");

    assert_eq!(
        times_of(&log, "pool-a").len(),
        1,
        "the running reconcile finished"
    );
    assert_eq!(times_of(&log, "pool-b").len(), 0);
    assert!(queue.is_empty(), "nothing was requeued");
}

#[tokio::test(start_paused = true)]
async fn request_after_forget_queues_again() {
    let queue = WorkQueue::new(config(1)).expect("valid config");
    let (log, cancel, runner) = start(&queue, Duration::from_secs(1), |_, _| false);
    let start_time = Instant::now();

    queue.schedule("pool-a".to_owned(), Duration::ZERO);
    tokio::time::sleep(Duration::from_millis(500)).await;
    queue.forget(&"pool-a".to_owned());
    queue.schedule("pool-a".to_owned(), Duration::ZERO);
    tokio::time::sleep(Duration::from_secs(5)).await;
    cancel.cancel();
    runner.await.expect("runner ends");

    assert_eq!(
        times_of(&log, "pool-a"),
        vec![start_time, start_time + Duration::from_secs(1)]
    );
}
