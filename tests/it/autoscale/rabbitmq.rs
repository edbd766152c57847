//! The RabbitMQ source against a real node. One test does every check, because a node takes
//! 10 to 20 s to start.

use std::time::{Duration, Instant};

use serde_json::json;
use steward::autoscale::source::{MetricError, MetricSource, RabbitmqSource, Source, http_client};
use steward::spec;

use crate::support::rabbitmq::RabbitMq;

const MESSAGES: u64 = 60;

#[tokio::test]
async fn rabbitmq_source_reads_rate_backlog_history() {
    let server = RabbitMq::start().await;
    let client = http_client().expect("client");

    let created = client
        .put(format!("{}/api/queues/%2F/jobs", server.url))
        .basic_auth("guest", Some("guest"))
        .json(&json!({"durable": false}))
        .send()
        .await
        .expect("create queue");
    assert!(
        created.status().is_success(),
        "create queue: {}",
        created.status()
    );

    // Ten messages a second for six seconds, through the default exchange.
    for i in 0..MESSAGES {
        let published = client
            .post(format!(
                "{}/api/exchanges/%2F/amq.default/publish",
                server.url
            ))
            .basic_auth("guest", Some("guest"))
            .json(&json!({
                "properties": {},
                "routing_key": "jobs",
                "payload": format!("job {i}"),
                "payload_encoding": "string"
            }))
            .send()
            .await
            .expect("publish");
        assert!(
            published.status().is_success(),
            "publish: {}",
            published.status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let credentials = Some(("guest".to_owned(), Some("guest".to_owned())));
    let source = RabbitmqSource::new(&server.url, "/", "jobs", credentials, client.clone())
        .expect("valid source");

    // The management API refreshes its statistics every 5 s.
    let deadline = Instant::now() + Duration::from_secs(30);
    let stats = loop {
        let stats = source.queue_stats().await.expect("queue stats");
        if stats.messages == MESSAGES && stats.publish_rate > 0.0 {
            break stats;
        }
        assert!(
            Instant::now() < deadline,
            "stats never caught up: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(stats.publish_rate <= 20.0, "rate {}", stats.publish_rate);

    let live = source.current().await.expect("current").expect("a rate");
    assert!(live.is_finite(), "live {live}");
    assert!(live >= 0.0, "live {live}");

    let now = jiff::Timestamp::now().as_second();
    let history = source
        .history(now - 60, now, Duration::from_secs(5))
        .await
        .expect("history");
    assert!(!history.is_empty(), "no history samples");
    assert!(history.iter().all(|s| s.rps.is_finite() && s.rps >= 0.0));
    assert!(history.iter().any(|s| s.rps > 0.0), "{history:?}");
    let published: f64 = history
        .windows(2)
        .map(|w| w[1].rps * (w[1].t - w[0].t) as f64)
        .sum();
    assert!(
        published <= MESSAGES as f64 * 1.5,
        "history counts {published} messages"
    );

    // The spec path reads the password from the environment variable it names. PATH is set
    // wherever tests run and is not guest's password, so the server must reject it.
    let from_spec = Source::from_spec(&spec::MetricSource::Rabbitmq {
        address: server.url.clone(),
        vhost: "/".to_owned(),
        queue: "jobs".to_owned(),
        username: Some("guest".to_owned()),
        password_env: Some("PATH".to_owned()),
    })
    .expect("builds");
    let err = from_spec
        .current()
        .await
        .expect_err("PATH is not guest's password");
    assert!(
        matches!(err, MetricError::Http { status: 401, .. }),
        "{err}"
    );
    assert!(!err.is_retryable());

    let unset = Source::from_spec(&spec::MetricSource::Rabbitmq {
        address: server.url.clone(),
        vhost: "/".to_owned(),
        queue: "jobs".to_owned(),
        username: Some("guest".to_owned()),
        password_env: Some("STEWARD_TEST_UNSET_VARIABLE".to_owned()),
    });
    let err = unset.expect_err("variable not set");
    assert!(
        err.to_string().contains("STEWARD_TEST_UNSET_VARIABLE"),
        "{err}"
    );

    let missing = RabbitmqSource::new(
        &server.url,
        "/",
        "no-such-queue",
        Some(("guest".to_owned(), Some("guest".to_owned()))),
        client,
    )
    .expect("valid source");
    let err = missing.current().await.expect_err("unknown queue");
    assert!(
        matches!(err, MetricError::Http { status: 404, .. }),
        "{err}"
    );
}
