//! `nomad::EventStream` against the Nomad emulator over loopback HTTP: the three ways an event
//! stream fails silently (an abrupt close, a connection that goes quiet, a start index that
//! has left the buffer), filtering and typed payloads.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::json;
use steward::nomad::*;
use steward::sim::nomad::{NomadEmulator, NomadEmulatorConfig, RunningNomad};

/// Bounds every wait, so a hang fails instead of blocking the suite.
const WAIT_LIMIT: Duration = Duration::from_secs(60);

async fn start_emulator(buffer: usize) -> (RunningNomad, Client) {
    let config = NomadEmulatorConfig {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        datacenters: vec!["dc1".to_owned()],
        nodes_per_dc: 3,
        speed: 1000.0,
        event_buffer_size: buffer,
        event_heartbeat: Duration::from_millis(100),
        ..NomadEmulatorConfig::default()
    };
    let emulator = NomadEmulator::start(config).await.expect("emulator starts");
    let client =
        Client::new(Config::new(&emulator.url()).expect("valid address")).expect("client builds");
    (emulator, client)
}

/// Settings with short delays, so reconnects happen within milliseconds.
fn stream_config(topics: Vec<TopicFilter>) -> EventStreamConfig {
    EventStreamConfig {
        topics,
        read_timeout: Duration::from_millis(500),
        backoff_initial: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        ..EventStreamConfig::default()
    }
}

fn job(id: &str, count: i64) -> Job {
    serde_json::from_value(json!({
        "ID": id,
        "Type": "service",
        "Datacenters": ["dc1"],
        "TaskGroups": [{
            "Name": "web",
            "Count": count,
            "Tasks": [{
                "Name": "app",
                "Driver": "docker",
                "Config": {"image": "app:1"},
                "Resources": {"CPU": 100, "MemoryMB": 64}
            }]
        }]
    }))
    .expect("job JSON matches the model")
}

async fn register(client: &Client, id: &str, count: i64) {
    client
        .register_job(&JobRegisterRequest {
            job: job(id, count),
            ..JobRegisterRequest::default()
        })
        .await
        .expect("job registers");
}

async fn next(stream: &mut EventStream) -> StreamItem {
    tokio::time::timeout(WAIT_LIMIT, stream.next())
        .await
        .expect("an item within the wait limit")
        .expect("the stream yields no permanent error")
}

async fn next_frame(stream: &mut EventStream) -> Frame {
    match next(stream).await {
        StreamItem::Events(frame) => frame,
        StreamItem::Resync { resume_index } => {
            panic!("unexpected resync at {resume_index}")
        }
    }
}

async fn post(emulator: &RunningNomad, path: &str) {
    let response = reqwest::Client::new()
        .post(format!("{}{path}", emulator.url()))
        .send()
        .await
        .expect("fault request reaches the emulator");
    assert!(response.status().is_success(), "{path}: {response:?}");
}

#[tokio::test]
async fn abrupt_close_reconnects_and_drops_repeat() {
    let (emulator, client) = start_emulator(100).await;
    let mut stream = EventStream::new(
        &client,
        stream_config(vec![
            TopicFilter::all("Job"),
            TopicFilter::all("Allocation"),
        ]),
    )
    .expect("valid settings");
    register(&client, "web", 2).await;

    let first = next_frame(&mut stream).await;
    let second = next_frame(&mut stream).await;
    assert!(second.index > first.index);
    let last = stream.last_index();
    assert_eq!(last, second.index);

    post(&emulator, "/_sim/event-stream/close").await;

    // Frames already queued before the close may still arrive; the resync must follow.
    let resume_index = loop {
        match next(&mut stream).await {
            StreamItem::Events(frame) => assert!(frame.index > last),
            StreamItem::Resync { resume_index } => break resume_index,
        }
    };
    assert_eq!(stream.reconnects(), 1);
    assert!(resume_index >= last);

    // The emulator replays the frame at the resume index itself; the stream drops it.
    register(&client, "web", 3).await;
    let after = next_frame(&mut stream).await;
    assert!(
        after.index > resume_index,
        "{} <= {resume_index}",
        after.index
    );
    assert!(stream.duplicates_dropped() >= 1);
    emulator.shutdown().await;
}

#[tokio::test]
async fn silent_stream_times_out_and_reconnects() {
    let (emulator, client) = start_emulator(100).await;
    let mut stream = EventStream::new(&client, stream_config(vec![TopicFilter::all("Job")]))
        .expect("valid settings");
    register(&client, "web", 1).await;
    let first = next_frame(&mut stream).await;
    assert!(first.events.iter().any(|event| event.key == "web"));

    post(&emulator, "/_sim/event-stream/silence").await;
    register(&client, "api", 1).await;

    // No line arrives on the silenced connection, so the read timeout ends it. Frames sent
    // before the fault may come first. The new connection is served normally and brings the
    // job registered meanwhile.
    while let StreamItem::Events(frame) = next(&mut stream).await {
        assert!(
            frame.events.iter().all(|event| event.key == "web"),
            "{frame:?}"
        );
    }
    assert_eq!(stream.reconnects(), 1);
    let frame = loop {
        let frame = next_frame(&mut stream).await;
        if frame.events.iter().any(|event| event.key == "api") {
            break frame;
        }
    };
    assert!(frame.index > first.index);
    emulator.shutdown().await;
}

#[tokio::test]
async fn dropped_start_index_starts_at_oldest() {
    let (emulator, client) = start_emulator(5).await;
    register(&client, "web", 2).await;
    register(&client, "api", 2).await;
    // The placements and task starts come from the emulator's ticks. Once four workers run,
    // more entries have been written than the 5-entry buffer keeps.
    tokio::time::timeout(WAIT_LIMIT, async {
        loop {
            let allocations = client
                .list_allocations(None, QueryOptions::immediate())
                .await
                .expect("allocations listed");
            let running = allocations
                .value
                .iter()
                .filter(|stub| stub.client_status == ClientStatus::Running)
                .count();
            if running == 4 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("four allocations running within the wait limit");

    let mut stream = EventStream::new(
        &client,
        EventStreamConfig {
            start_index: 1,
            ..stream_config(Vec::new())
        },
    )
    .expect("valid settings");
    let frame = next_frame(&mut stream).await;
    assert!(
        frame.index > 1,
        "index 1 left the 5-entry buffer, got {}",
        frame.index
    );
    assert_eq!(stream.reconnects(), 0);
    emulator.shutdown().await;
}

#[tokio::test]
async fn keyed_topic_and_typed_payloads() {
    let (emulator, client) = start_emulator(100).await;
    register(&client, "alpha", 1).await;
    register(&client, "beta", 1).await;

    let mut stream = EventStream::new(
        &client,
        stream_config(vec![
            TopicFilter::keyed("Allocation", "beta"),
            TopicFilter::keyed("Job", "beta"),
        ]),
    )
    .expect("valid settings");

    let mut saw_job = false;
    let mut saw_allocation = false;
    while !(saw_job && saw_allocation) {
        let frame = next_frame(&mut stream).await;
        for event in &frame.events {
            assert_eq!(event.index, frame.index);
            match event.topic.as_str() {
                "Job" => {
                    let job = event.job().expect("Job payload").expect("Job decodes");
                    assert_eq!(job.id, "beta");
                    saw_job = true;
                }
                "Allocation" => {
                    let alloc = event
                        .allocation()
                        .expect("Allocation payload")
                        .expect("Allocation decodes");
                    assert_eq!(alloc.job_id, "beta");
                    assert_eq!(event.key, alloc.id);
                    saw_allocation = true;
                }
                other => panic!("unexpected topic {other}"),
            }
        }
    }
    emulator.shutdown().await;
}

#[tokio::test]
async fn node_events_decode() {
    let (emulator, client) = start_emulator(100).await;
    let mut stream = EventStream::new(&client, stream_config(vec![TopicFilter::all("Node")]))
        .expect("valid settings");
    let frame = next_frame(&mut stream).await;
    let event = &frame.events[0];
    assert_eq!(event.r#type, "NodeRegistration");
    assert_eq!(event.namespace, "");
    let node = event.node().expect("Node payload").expect("Node decodes");
    assert_eq!(node.id, event.key);
    emulator.shutdown().await;
}

#[tokio::test]
async fn unknown_namespace_streams_nothing_but_heartbeats() {
    let (emulator, client) = start_emulator(100).await;
    register(&client, "web", 1).await;
    let mut stream = EventStream::new(
        &client,
        EventStreamConfig {
            namespace: Some("other".to_owned()),
            ..stream_config(vec![TopicFilter::all("Job")])
        },
    )
    .expect("valid settings");

    // Heartbeats keep the connection alive past several read timeouts without any item.
    let waited = tokio::time::timeout(Duration::from_millis(1500), stream.next()).await;
    assert!(waited.is_err(), "got {waited:?}");
    assert_eq!(stream.reconnects(), 0);
    emulator.shutdown().await;
}
