//! `GET /v1/event/stream`: framing, heartbeats, filters, resuming and the `/_sim/event-stream`
//! faults.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{Harness, PATIENCE, config, service_job};

/// Heartbeat interval in these tests, so that "the backlog is drained" shows as a heartbeat
/// line soon after the last frame.
const HEARTBEAT: Duration = Duration::from_millis(100);

const FIXTURE_FRAME: &str = include_str!("../nomad_client/fixtures/event-stream-frame.json");

async fn start(buffer: usize) -> Harness {
    Harness::start_with(steward::sim::nomad::NomadEmulatorConfig {
        event_buffer_size: buffer,
        event_heartbeat: HEARTBEAT,
        ..config()
    })
    .await
}

/// An open event stream read line by line.
struct Lines {
    response: reqwest::Response,
    buffer: Vec<u8>,
}

impl Lines {
    async fn open(harness: &Harness, query: &str) -> Self {
        let response = harness
            .client
            .get(format!("{}/v1/event/stream?{query}", harness.nomad.url()))
            .send()
            .await
            .expect("stream request reaches the emulator");
        assert_eq!(response.status(), StatusCode::OK, "stream ?{query}");
        Self {
            response,
            buffer: Vec::new(),
        }
    }

    /// Returns the next line, `Ok(None)` at a clean end of body, `Err` when the body broke.
    async fn next(&mut self) -> Result<Option<String>, reqwest::Error> {
        loop {
            if let Some(end) = self.buffer.iter().position(|byte| *byte == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                return Ok(Some(
                    String::from_utf8(line[..line.len() - 1].to_vec()).expect("UTF-8 line"),
                ));
            }
            let chunk = tokio::time::timeout(PATIENCE, self.response.chunk())
                .await
                .expect("a line within the patience limit")?;
            match chunk {
                Some(bytes) => self.buffer.extend_from_slice(&bytes),
                None => return Ok(None),
            }
        }
    }

    async fn line(&mut self) -> String {
        self.next()
            .await
            .expect("stream readable")
            .expect("stream still open")
    }

    /// Reads frames until a heartbeat follows at least `min_frames` frames, and returns the
    /// frames.
    async fn frames_until_idle(&mut self, min_frames: usize) -> Vec<Value> {
        let mut frames = Vec::new();
        loop {
            let line = self.line().await;
            if line == "{}" {
                if frames.len() >= min_frames {
                    return frames;
                }
                continue;
            }
            frames.push(serde_json::from_str(&line).expect("frame is JSON"));
        }
    }

    /// Reads frames until one contains an event that `accept` accepts, and returns the frame
    /// and that event.
    async fn event_where(&mut self, accept: impl Fn(&Value) -> bool) -> (Value, Value) {
        loop {
            let line = self.line().await;
            if line == "{}" {
                continue;
            }
            let frame: Value = serde_json::from_str(&line).expect("frame is JSON");
            if let Some(event) = events(&frame).iter().find(|event| accept(event)) {
                return (frame.clone(), event.clone());
            }
        }
    }
}

fn events(frame: &Value) -> Vec<Value> {
    frame["Events"].as_array().cloned().unwrap_or_default()
}

fn index(value: &Value) -> u64 {
    value["Index"].as_u64().expect("Index is a number")
}

fn keys(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .expect("an object")
        .keys()
        .cloned()
        .collect()
}

#[tokio::test]
async fn stream_headers_and_first_heartbeat() {
    let harness = start(100).await;
    let response = harness
        .client
        .get(format!("{}/v1/event/stream", harness.nomad.url()))
        .send()
        .await
        .expect("stream request reaches the emulator");
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers();
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["cache-control"], "no-cache");
    assert!(headers.get("X-Nomad-Index").is_none(), "{headers:?}");

    let mut lines = Lines {
        response,
        buffer: Vec::new(),
    };
    assert_eq!(lines.line().await, "{}");
}

#[tokio::test]
async fn heartbeat_repeats_without_traffic() {
    let harness = start(100).await;
    // No job exists, so the Job topic has nothing to send but heartbeats.
    let mut lines = Lines::open(&harness, "topic=Job").await;
    for _ in 0..3 {
        assert_eq!(lines.line().await, "{}");
    }
}

#[tokio::test]
async fn node_registrations_replayed_from_oldest() {
    let harness = start(100).await;
    let mut lines = Lines::open(&harness, "topic=Node&index=0").await;
    let frames = lines.frames_until_idle(3).await;
    let registered: BTreeSet<String> = frames
        .iter()
        .flat_map(events)
        .filter(|event| event["Type"] == "NodeRegistration")
        .map(|event| event["Key"].as_str().expect("Key").to_owned())
        .collect();
    let nodes: BTreeSet<String> = harness
        .nomad
        .state()
        .nodes
        .into_iter()
        .map(|node| node.id)
        .collect();
    assert_eq!(registered, nodes);
}

#[tokio::test]
async fn frames_have_fixture_field_names() {
    let harness = start(100).await;
    let mut lines = Lines::open(&harness, "").await;
    harness.register(service_job("web", 2, "app:1")).await;

    let (frame, job_event) = lines
        .event_where(|event| event["Type"] == "JobRegistered")
        .await;
    let fixture: Value = serde_json::from_str(FIXTURE_FRAME).expect("fixture is JSON");
    let fixture_event = &events(&fixture)[0];
    assert_eq!(keys(&frame), keys(&fixture));
    assert_eq!(keys(&job_event), keys(fixture_event));
    assert_eq!(job_event["Topic"], "Job");
    assert_eq!(job_event["Key"], "web");
    assert_eq!(job_event["Namespace"], "default");
    assert_eq!(index(&job_event), index(&frame));
    let job: steward::nomad::Job =
        serde_json::from_value(job_event["Payload"]["Job"].clone()).expect("Job payload parses");
    assert_eq!(job.id, "web");
    assert_eq!(job.modify_index, Some(index(&frame)));

    let (frame, alloc_event) = lines
        .event_where(|event| event["Type"] == "AllocationCreated")
        .await;
    assert_eq!(keys(&alloc_event), keys(fixture_event));
    assert_eq!(alloc_event["Topic"], "Allocation");
    assert_eq!(index(&alloc_event), index(&frame));
    let alloc: steward::nomad::Allocation =
        serde_json::from_value(alloc_event["Payload"]["Allocation"].clone())
            .expect("Allocation payload parses");
    assert_eq!(alloc_event["Key"], json!(alloc.id));
    assert_eq!(alloc_event["FilterKeys"][0], "web");
    assert_eq!(alloc_event["FilterKeys"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        alloc_event["Payload"]["Allocation"]["Job"],
        Value::Null,
        "allocation events carry no job"
    );
}

#[tokio::test]
async fn one_frame_per_index_in_order() {
    let harness = start(100).await;
    harness.register(service_job("web", 3, "app:1")).await;
    harness.running("web", 3).await;

    let mut lines = Lines::open(&harness, "index=0").await;
    let frames = lines.frames_until_idle(5).await;
    let indexes: Vec<u64> = frames.iter().map(index).collect();
    assert!(
        indexes.windows(2).all(|pair| pair[0] < pair[1]),
        "{indexes:?}"
    );
    for frame in &frames {
        for event in events(frame) {
            assert_eq!(index(&event), index(frame), "{event}");
        }
    }
    let types: BTreeSet<String> = frames
        .iter()
        .flat_map(events)
        .map(|event| event["Type"].as_str().expect("Type").to_owned())
        .collect();
    for expected in [
        "JobRegistered",
        "EvaluationUpdated",
        "AllocationCreated",
        "AllocationUpdated",
        "DeploymentStatusUpdate",
    ] {
        assert!(
            types.contains(expected),
            "{expected} missing from {types:?}"
        );
    }
}

#[tokio::test]
async fn topic_key_filters_by_job() {
    let harness = start(100).await;
    harness.register(service_job("alpha", 2, "app:1")).await;
    harness.register(service_job("beta", 2, "app:1")).await;
    harness.running("alpha", 2).await;
    harness.running("beta", 2).await;

    let mut lines = Lines::open(&harness, "topic=Allocation:alpha&index=0").await;
    let frames = lines.frames_until_idle(1).await;
    let events: Vec<Value> = frames.iter().flat_map(events).collect();
    assert!(!events.is_empty());
    for event in &events {
        assert_eq!(event["Topic"], "Allocation", "{event}");
        assert_eq!(event["FilterKeys"][0], "alpha", "{event}");
    }
}

#[tokio::test]
async fn repeated_topics_combine() {
    let harness = start(100).await;
    harness.register(service_job("web", 1, "app:1")).await;
    harness.running("web", 1).await;

    let mut lines = Lines::open(&harness, "topic=Job&topic=Node&index=0").await;
    let frames = lines.frames_until_idle(2).await;
    let topics: BTreeSet<String> = frames
        .iter()
        .flat_map(events)
        .map(|event| event["Topic"].as_str().expect("Topic").to_owned())
        .collect();
    assert_eq!(
        topics,
        BTreeSet::from(["Job".to_owned(), "Node".to_owned()])
    );
}

#[tokio::test]
async fn namespace_selects_job_events() {
    let harness = start(100).await;
    harness.register(service_job("web", 1, "app:1")).await;
    let reply = harness
        .post(
            "/v1/jobs?namespace=prod",
            &json!({"Job": service_job("api", 1, "app:1")}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    harness
        .eventually("both jobs stored", || async {
            (harness.nomad.state().jobs.len() == 2).then_some(())
        })
        .await;

    let job_keys = |frames: &[Value]| -> BTreeSet<String> {
        frames
            .iter()
            .flat_map(events)
            .filter(|event| event["Topic"] == "Job")
            .map(|event| event["Key"].as_str().expect("Key").to_owned())
            .collect()
    };
    let mut prod = Lines::open(&harness, "topic=Job&namespace=prod&index=0").await;
    assert_eq!(
        job_keys(&prod.frames_until_idle(1).await),
        BTreeSet::from(["api".to_owned()])
    );
    let mut default = Lines::open(&harness, "topic=Job&index=0").await;
    assert_eq!(
        job_keys(&default.frames_until_idle(1).await),
        BTreeSet::from(["web".to_owned()])
    );
    let mut all = Lines::open(&harness, "topic=Job&namespace=*&index=0").await;
    assert_eq!(
        job_keys(&all.frames_until_idle(2).await),
        BTreeSet::from(["api".to_owned(), "web".to_owned()])
    );

    // Node events carry no namespace, so every namespace filter lets them through.
    let mut nodes = Lines::open(&harness, "topic=Node&namespace=prod&index=0").await;
    assert!(!nodes.frames_until_idle(1).await.is_empty());
}

#[tokio::test]
async fn topic_with_two_colons_is_400() {
    let harness = start(100).await;
    let reply = harness.get("/v1/event/stream?topic=Job:web:extra").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.headers["content-type"], "text/plain; charset=utf-8");
    assert!(reply.text.contains("Job:web:extra"), "{}", reply.text);
}

#[tokio::test]
async fn resume_index_is_inclusive() {
    let harness = start(100).await;
    harness.register(service_job("web", 2, "app:1")).await;
    harness.running("web", 2).await;

    let mut first = Lines::open(&harness, "index=0").await;
    let frames = first.frames_until_idle(3).await;
    let resume = index(&frames[1]);

    let mut again = Lines::open(&harness, &format!("index={resume}")).await;
    let replayed = again.frames_until_idle(1).await;
    assert_eq!(index(&replayed[0]), resume);
    assert_eq!(replayed[0], frames[1]);
}

#[tokio::test]
async fn dropped_start_index_starts_at_oldest() {
    let harness = start(5).await;
    harness.register(service_job("web", 2, "app:1")).await;
    harness.running("web", 2).await;
    harness
        .eventually("the deployment to finish", || async {
            (harness.nomad.state().active_deployments == 0).then_some(())
        })
        .await;

    let mut oldest = Lines::open(&harness, "index=0").await;
    let frames = oldest.frames_until_idle(5).await;
    assert_eq!(frames.len(), 5, "the buffer keeps 5 indexes");
    let oldest_index = index(&frames[0]);
    assert!(oldest_index > 1, "index 1 has left the buffer");

    let mut resumed = Lines::open(&harness, "index=1").await;
    let replayed = resumed.frames_until_idle(1).await;
    assert_eq!(index(&replayed[0]), oldest_index);
}

#[tokio::test]
async fn close_fault_breaks_open_streams() {
    let harness = start(100).await;
    let mut lines = Lines::open(&harness, "topic=Node").await;
    assert_eq!(lines.line().await, "{}");

    let reply = harness.post("/_sim/event-stream/close", &json!({})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json()["closedStreams"], 1);

    let ended = loop {
        match lines.next().await {
            Ok(Some(_)) => continue,
            other => break other,
        }
    };
    assert!(
        ended.is_err(),
        "the body must break without its final chunk, got {ended:?}"
    );

    // The emulator keeps serving, and a new stream works.
    assert_eq!(harness.get("/v1/jobs").await.status, StatusCode::OK);
    let mut fresh = Lines::open(&harness, "topic=Node").await;
    assert_eq!(fresh.line().await, "{}");
}

#[tokio::test]
async fn silence_fault_holds_lines_until_recover() {
    let harness = start(100).await;
    let mut silenced = Lines::open(&harness, "topic=Job").await;
    assert_eq!(silenced.line().await, "{}");

    let reply = harness.post("/_sim/event-stream/silence", &json!({})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    harness.register(service_job("web", 1, "app:1")).await;

    // Several heartbeat intervals pass without a line, frames included.
    let quiet = tokio::time::timeout(HEARTBEAT * 5, silenced.next()).await;
    assert!(quiet.is_err(), "a silenced stream sent {quiet:?}");

    // A stream opened after the fault is served normally.
    let mut fresh = Lines::open(&harness, "topic=Job&index=0").await;
    let (_, event) = fresh.event_where(|event| event["Key"] == "web").await;
    assert_eq!(event["Type"], "JobRegistered");

    let reply = harness.post("/_sim/event-stream/recover", &json!({})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let (_, event) = silenced.event_where(|event| event["Key"] == "web").await;
    assert_eq!(event["Type"], "JobRegistered");
}
