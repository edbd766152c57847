//! The event stream (`GET /v1/event/stream`): events published from every state change, kept
//! in a ring buffer of Raft-index entries, and served as newline-delimited JSON frames.
//!
//! Writes only record a cheap [`Mark`] (event type, index, object ID) on the cluster.
//! [`EventHub::publish`] groups the marks of one write by index into buffer entries. While a
//! stream is open, it also copies the changed objects so that each frame shows the object as
//! that write left it. Without a subscriber it keeps the marks alone, so a later subscriber
//! that replays the backlog gets the objects as they are when it reads them.
//! JSON is encoded once per entry, on the first read, outside the cluster lock.
//!
//! Frame line: `{"Index":N,"Events":[{"Topic","Type","Key","Namespace","FilterKeys","Index",
//! "Payload"}]}`, with the heartbeat line `{}` right after connecting and then every
//! heartbeat interval (30 s in Nomad, whose `nomad/stream/ndjson.go` also sends one on connect).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use super::http::Shared;
use super::jobs::ApiError;
use super::render;
use super::state::{Cluster, JobKey, SimAlloc, SimDeployment, SimEval, SimNode};
use crate::nomad::model::Job;

/// Raft-index entries the buffer keeps by default (Nomad's `event_buffer_size` default).
pub const DEFAULT_EVENT_BUFFER_SIZE: usize = 100;

/// Time between two heartbeat lines by default (Nomad sends one every 30 s).
pub const DEFAULT_EVENT_HEARTBEAT: Duration = Duration::from_secs(30);

/// Frames a stream may have encoded but not yet written to its connection. A reader slower
/// than this falls behind the buffer and is cut off, as Nomad cuts off slow subscribers.
const STREAM_QUEUE: usize = 64;

/// The event topics the emulator publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    Job,
    Allocation,
    Deployment,
    Evaluation,
    Node,
}

impl Topic {
    /// Returns Nomad's name for the topic.
    pub fn as_str(self) -> &'static str {
        match self {
            Topic::Job => "Job",
            Topic::Allocation => "Allocation",
            Topic::Deployment => "Deployment",
            Topic::Evaluation => "Evaluation",
            Topic::Node => "Node",
        }
    }
}

/// The event types the emulator publishes, with Nomad's spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    JobRegistered,
    JobDeregistered,
    AllocationCreated,
    AllocationUpdated,
    AllocationUpdateDesiredStatus,
    DeploymentStatusUpdate,
    DeploymentPromotion,
    DeploymentAllocHealth,
    EvaluationUpdated,
    NodeRegistration,
    NodeDrain,
    NodeEligibility,
    /// A node status change (down, ready). The docs call it "NodeEvent", but the source
    /// constant is `NodeStreamEvent`.
    NodeStreamEvent,
}

impl EventType {
    /// Returns Nomad's name for the type.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::JobRegistered => "JobRegistered",
            EventType::JobDeregistered => "JobDeregistered",
            EventType::AllocationCreated => "AllocationCreated",
            EventType::AllocationUpdated => "AllocationUpdated",
            EventType::AllocationUpdateDesiredStatus => "AllocationUpdateDesiredStatus",
            EventType::DeploymentStatusUpdate => "DeploymentStatusUpdate",
            EventType::DeploymentPromotion => "DeploymentPromotion",
            EventType::DeploymentAllocHealth => "DeploymentAllocHealth",
            EventType::EvaluationUpdated => "EvaluationUpdated",
            EventType::NodeRegistration => "NodeRegistration",
            EventType::NodeDrain => "NodeDrain",
            EventType::NodeEligibility => "NodeEligibility",
            EventType::NodeStreamEvent => "NodeStreamEvent",
        }
    }
}

/// The object an event is about.
#[derive(Debug, Clone)]
pub enum Subject {
    Job(JobKey),
    /// A purged job, which is no longer in the cluster, so the mark carries it.
    PurgedJob(Arc<Job>),
    Allocation(String),
    Deployment(String),
    Evaluation(String),
    Node(String),
}

impl Subject {
    /// Returns the identity used to merge marks of one object within one index.
    fn identity(&self) -> (Topic, &str, &str) {
        match self {
            Subject::Job((namespace, id)) => (Topic::Job, namespace, id),
            Subject::PurgedJob(job) => (Topic::Job, job.namespace_or_default(), &job.id),
            Subject::Allocation(id) => (Topic::Allocation, "", id),
            Subject::Deployment(id) => (Topic::Deployment, "", id),
            Subject::Evaluation(id) => (Topic::Evaluation, "", id),
            Subject::Node(id) => (Topic::Node, "", id),
        }
    }
}

/// A state change recorded by a write: which object changed, how, and at which index.
#[derive(Debug, Clone)]
pub struct Mark {
    pub index: u64,
    pub kind: EventType,
    pub subject: Subject,
}

/// A copy of a changed object, taken under the cluster lock.
#[derive(Debug, Clone)]
enum Snapshot {
    Job { job: Arc<Job>, purged: bool },
    Allocation(Box<SimAlloc>),
    Deployment(Box<SimDeployment>),
    Evaluation(Box<SimEval>),
    Node(Box<SimNode>),
}

/// An event with its object copied, not yet encoded.
#[derive(Debug, Clone)]
struct PendingEvent {
    kind: EventType,
    snapshot: Snapshot,
}

/// An encoded event with the fields that subscriptions filter on.
#[derive(Debug)]
struct EncodedEvent {
    topic: Topic,
    key: String,
    namespace: String,
    filter_keys: Vec<String>,
    json: String,
}

/// The content of a buffer entry, from the cheapest form to the form ready to send.
#[derive(Debug)]
enum Content {
    Marks(Vec<Mark>),
    Snapshots(Vec<PendingEvent>),
    Encoded(Arc<[EncodedEvent]>),
}

/// The events of one Raft index.
#[derive(Debug)]
struct Entry {
    index: u64,
    /// Position in the sequence of all entries ever published, to detect dropped entries.
    sequence: u64,
    content: Mutex<Content>,
}

/// The fault state streams obey, set through `/_sim/event-stream/*`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamFaults {
    /// Raised by each close request. A stream opened under a lower value ends abruptly.
    pub close_epoch: u64,
    /// Raised by each silence request. A stream opened under a lower value goes silent.
    pub silence_epoch: u64,
    /// Cleared by a recover request, which lets silenced streams continue.
    pub silenced: bool,
    /// Set when the emulator shuts down: every stream ends cleanly.
    pub shut_down: bool,
}

/// The ring buffer of Raft-index entries.
#[derive(Debug, Default)]
struct Buffer {
    entries: VecDeque<Arc<Entry>>,
    /// The sequence number the next published entry gets.
    next_sequence: u64,
}

/// Buffer and subscriptions of the event stream.
#[derive(Debug)]
pub struct EventHub {
    capacity: usize,
    heartbeat: Duration,
    buffer: Mutex<Buffer>,
    /// The sequence number of the newest entry plus one, for streams to wait on.
    published: watch::Sender<u64>,
    faults: watch::Sender<StreamFaults>,
    subscribers: AtomicUsize,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section below completes its change before anything can panic.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl EventHub {
    /// Creates a hub that keeps `capacity` Raft-index entries and sends a heartbeat line every
    /// `heartbeat` of wall time.
    pub fn new(capacity: usize, heartbeat: Duration) -> Self {
        Self {
            capacity: capacity.max(1),
            heartbeat,
            buffer: Mutex::new(Buffer::default()),
            published: watch::channel(0).0,
            faults: watch::channel(StreamFaults::default()).0,
            subscribers: AtomicUsize::new(0),
        }
    }

    /// Moves the cluster's marks into the buffer, one entry per index. Runs under the cluster
    /// lock at the end of every write, and costs one check when the write changed nothing.
    pub fn publish(&self, cluster: &mut Cluster) {
        if cluster.event_marks.is_empty() {
            return;
        }
        let mut marks = std::mem::take(&mut cluster.event_marks);
        marks.sort_by_key(|mark| mark.index);

        // Only the newest `capacity` indexes can stay in the buffer.
        let mut groups: Vec<Vec<Mark>> = Vec::new();
        for mark in marks {
            match groups.last_mut() {
                Some(group) if group[0].index == mark.index => group.push(mark),
                _ => groups.push(vec![mark]),
            }
        }
        let skip = groups.len().saturating_sub(self.capacity);
        let copy_now = self.subscribers.load(Ordering::Acquire) > 0;

        let mut buffer = lock(&self.buffer);
        for group in groups.into_iter().skip(skip) {
            let index = group[0].index;
            let content = if copy_now {
                Content::Snapshots(snapshot(cluster, &group))
            } else {
                Content::Marks(group_marks(group))
            };
            let sequence = buffer.next_sequence;
            buffer.next_sequence += 1;
            buffer.entries.push_back(Arc::new(Entry {
                index,
                sequence,
                content: Mutex::new(content),
            }));
            while buffer.entries.len() > self.capacity {
                buffer.entries.pop_front();
            }
        }
        let published = buffer.next_sequence;
        drop(buffer);
        self.published.send_replace(published);
    }

    /// Ends every open stream abruptly, without the final chunk of the response body.
    pub fn close_streams(&self) {
        self.faults.send_modify(|faults| faults.close_epoch += 1);
    }

    /// Makes every open stream stop sending, heartbeats included, until [`Self::recover`].
    /// Streams opened afterwards are served normally.
    pub fn silence_streams(&self) {
        self.faults.send_modify(|faults| {
            faults.silence_epoch += 1;
            faults.silenced = true;
        });
    }

    /// Ends every stream cleanly, so that the server's graceful shutdown does not wait on
    /// streams that never end by themselves.
    pub fn end_streams(&self) {
        self.faults.send_modify(|faults| faults.shut_down = true);
    }

    /// Lets silenced streams continue.
    pub fn recover(&self) {
        self.faults.send_modify(|faults| faults.silenced = false);
    }

    /// Returns the number of open streams.
    pub fn subscribers(&self) -> usize {
        self.subscribers.load(Ordering::Acquire)
    }

    /// Returns the entries from sequence `from` on, or from the entry with the closest index
    /// at or above `start_index` when `from` is `None`, with the sequence to continue from.
    /// `Err` means entries after `from` were already dropped from the buffer.
    fn entries_after(
        &self,
        from: Option<u64>,
        start_index: u64,
    ) -> Result<(Vec<Arc<Entry>>, u64), ()> {
        let buffer = lock(&self.buffer);
        let entries: Vec<Arc<Entry>> = match from {
            Some(sequence) => {
                if buffer
                    .entries
                    .front()
                    .is_some_and(|oldest| oldest.sequence > sequence)
                {
                    return Err(());
                }
                buffer
                    .entries
                    .iter()
                    .filter(|entry| entry.sequence >= sequence)
                    .cloned()
                    .collect()
            }
            None => buffer
                .entries
                .iter()
                .filter(|entry| entry.index >= start_index)
                .cloned()
                .collect(),
        };
        let next = entries
            .last()
            .map_or(from.unwrap_or(buffer.next_sequence), |entry| {
                entry.sequence + 1
            });
        Ok((entries, next))
    }
}

/// Merges the marks of one object within one index into one event, keeping the first type
/// (an allocation created and updated by one write is reported as created).
fn group_marks(group: Vec<Mark>) -> Vec<Mark> {
    let mut seen = HashSet::with_capacity(group.len());
    let mut merged = Vec::with_capacity(group.len());
    for mark in group {
        let (topic, namespace, id) = mark.subject.identity();
        if seen.insert((topic, namespace.to_owned(), id.to_owned())) {
            merged.push(mark);
        }
    }
    merged
}

/// Copies the objects the marks name. An object that no longer exists is left out.
fn snapshot(cluster: &Cluster, group: &[Mark]) -> Vec<PendingEvent> {
    group_marks(group.to_vec())
        .into_iter()
        .filter_map(|mark| {
            let snapshot = match &mark.subject {
                Subject::Job(key) => Snapshot::Job {
                    job: Arc::clone(&cluster.jobs.get(key)?.job),
                    purged: false,
                },
                Subject::PurgedJob(job) => Snapshot::Job {
                    job: Arc::clone(job),
                    purged: true,
                },
                Subject::Allocation(id) => {
                    Snapshot::Allocation(Box::new(cluster.allocs.get(id)?.clone()))
                }
                Subject::Deployment(id) => {
                    Snapshot::Deployment(Box::new(cluster.deployments.get(id)?.clone()))
                }
                Subject::Evaluation(id) => {
                    Snapshot::Evaluation(Box::new(cluster.evals.get(id)?.clone()))
                }
                Subject::Node(id) => Snapshot::Node(Box::new(cluster.nodes.get(id)?.clone())),
            };
            Some(PendingEvent {
                kind: mark.kind,
                snapshot,
            })
        })
        .collect()
}

/// Encodes one event. Keys, filter keys and payloads follow Nomad's `nomad/state/events.go`
/// `eventFromChange`: an allocation is filtered by its job and deployment and sent without its
/// `Job`, a deployment is filtered by its job, an evaluation by its job and deployment, and a
/// node event has no namespace.
// NOTE: Nomad gives every event of one Raft entry the type of that entry's message, so the
// scheduler's placements arrive as `PlanResult`. The emulator types each event after the
// change to its own object (`AllocationCreated`, `AllocationUpdated`, …).
fn encode(event: &PendingEvent, index: u64) -> EncodedEvent {
    let (topic, key, namespace, filter_keys, payload) = match &event.snapshot {
        Snapshot::Job { job, purged } => {
            let mut payload = json!({"Job": serde_json::to_value(&**job).unwrap_or(Value::Null)});
            // NOTE: only a purge removes the job from the state store, so only a purge marks
            // the payload `Deleted`, and a stop publishes the stopped job. The `eventFromChange`
            // of one Nomad version read here publishes no Job event at all for a deleted job,
            // so whether real purges produce this event depends on the Nomad version.
            if *purged {
                payload["Deleted"] = Value::Bool(true);
            }
            (
                Topic::Job,
                job.id.clone(),
                job.namespace_or_default().to_owned(),
                Vec::new(),
                payload,
            )
        }
        Snapshot::Allocation(alloc) => {
            // Nomad drops the job from allocation events to keep them small.
            let mut allocation = render::alloc_full(alloc);
            if let Some(job) = allocation.get_mut("Job") {
                *job = Value::Null;
            }
            (
                Topic::Allocation,
                alloc.id.clone(),
                alloc.namespace.clone(),
                vec![
                    alloc.job_id.clone(),
                    alloc.deployment_id.clone().unwrap_or_default(),
                ],
                json!({"Allocation": allocation}),
            )
        }
        Snapshot::Deployment(deployment) => (
            Topic::Deployment,
            deployment.id.clone(),
            deployment.namespace.clone(),
            vec![deployment.job_id.clone()],
            json!({"Deployment": render::deployment(deployment)}),
        ),
        Snapshot::Evaluation(eval) => (
            Topic::Evaluation,
            eval.id.clone(),
            eval.namespace.clone(),
            vec![eval.job_id.clone(), eval.deployment_id.clone()],
            json!({"Evaluation": render::eval(eval)}),
        ),
        Snapshot::Node(node) => (
            Topic::Node,
            node.id.clone(),
            String::new(),
            Vec::new(),
            json!({"Node": render::node_full(node)}),
        ),
    };
    let value = json!({
        "Topic": topic.as_str(),
        "Type": event.kind.as_str(),
        "Key": key,
        "Namespace": namespace,
        "FilterKeys": if filter_keys.is_empty() { Value::Null } else { json!(filter_keys) },
        "Index": index,
        "Payload": payload,
    });
    EncodedEvent {
        topic,
        key,
        namespace,
        filter_keys,
        json: value.to_string(),
    }
}

impl Entry {
    /// Returns the encoded events, copying the objects first when only marks were kept.
    fn encoded(&self, cluster: &Mutex<Cluster>) -> Arc<[EncodedEvent]> {
        let mut content = lock(&self.content);
        let pending = match &mut *content {
            Content::Encoded(events) => return Arc::clone(events),
            Content::Snapshots(events) => std::mem::take(events),
            Content::Marks(marks) => snapshot(&lock(cluster), marks),
        };
        let events: Arc<[EncodedEvent]> = pending
            .iter()
            .map(|event| encode(event, self.index))
            .collect();
        *content = Content::Encoded(Arc::clone(&events));
        events
    }
}

/// A parsed subscription: topics with their filter keys, and the namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// Filter keys by topic. Without a `topic` parameter it is `{"*": ["*"]}`, every topic.
    pub topics: HashMap<String, Vec<String>>,
    /// `*` matches every namespace.
    pub namespace: String,
    /// The first index to send; 0 starts at the oldest buffered entry.
    pub index: u64,
}

impl Subscription {
    /// Parses the query pairs of `GET /v1/event/stream` with the rules and 400 messages of
    /// Nomad's `command/agent/event_endpoint.go`: a `topic` without `:` means `Topic:*`, and
    /// one with more than one `:` or an `index` that is not an integer is rejected.
    pub fn parse(pairs: &[(String, String)]) -> Result<Self, ApiError> {
        let mut topics: HashMap<String, Vec<String>> = HashMap::new();
        let mut namespace = "default".to_owned();
        let mut index = 0;
        for (name, value) in pairs {
            match name.as_str() {
                "topic" => {
                    let parts: Vec<&str> = value.split(':').collect();
                    let (topic, key) = match parts.as_slice() {
                        [topic] => (*topic, "*"),
                        [topic, key] => (*topic, *key),
                        _ => {
                            return Err(ApiError::bad_request(format!(
                                "Invalid topic query: error parsing topics: Invalid key value \
                                 pair for topic, topic: {value}"
                            )));
                        }
                    };
                    topics
                        .entry(topic.to_owned())
                        .or_default()
                        .push(key.to_owned());
                }
                "namespace" if !value.is_empty() => namespace = value.clone(),
                "index" => {
                    // A negative index starts at the oldest entry, like 0.
                    let parsed: i64 = value.parse().map_err(|_| {
                        ApiError::bad_request(format!(
                            "Unable to parse index: strconv.Atoi: parsing {value:?}: invalid syntax"
                        ))
                    })?;
                    index = u64::try_from(parsed).unwrap_or(0);
                }
                _ => {}
            }
        }
        if topics.is_empty() {
            topics.insert("*".to_owned(), vec!["*".to_owned()]);
        }
        Ok(Self {
            topics,
            namespace,
            index,
        })
    }

    /// Reports whether the subscription wants an event, with the rules of Nomad's
    /// `nomad/stream/subscription.go` `filter`. An event without a namespace (node events)
    /// passes every namespace filter. The key `*` is a wildcard only when it is the one key
    /// that applies to the event's topic (from `*` and the topic together). Otherwise each key
    /// must equal the event's `Key` or one of its `FilterKeys`.
    // NOTE: Nomad appends an event once per matching key, so a subscription with two keys
    // that both match gets the event twice. The emulator sends it once.
    fn matches(&self, event: &EncodedEvent) -> bool {
        if self.namespace != "*" && !event.namespace.is_empty() && event.namespace != self.namespace
        {
            return false;
        }
        let wildcard = |keys: &[&String]| keys.len() == 1 && keys[0] == "*";
        let all_topics: Vec<&String> = self.topics.get("*").into_iter().flatten().collect();
        if wildcard(&all_topics) {
            return true;
        }
        let mut keys = all_topics;
        keys.extend(self.topics.get(event.topic.as_str()).into_iter().flatten());
        if wildcard(&keys) {
            return true;
        }
        keys.iter()
            .any(|key| **key == event.key || event.filter_keys.contains(key))
    }
}

/// Builds the frame line for the events a subscription wants, or `None` when it wants none.
fn frame_line(index: u64, events: &[EncodedEvent], subscription: &Subscription) -> Option<Bytes> {
    let mut line = String::new();
    for event in events.iter().filter(|event| subscription.matches(event)) {
        if line.is_empty() {
            line.push_str(&format!("{{\"Index\":{index},\"Events\":["));
        } else {
            line.push(',');
        }
        line.push_str(&event.json);
    }
    if line.is_empty() {
        return None;
    }
    line.push_str("]}\n");
    Some(Bytes::from(line))
}

const HEARTBEAT_LINE: &[u8] = b"{}\n";

/// Counts an open stream for as long as it lives.
struct SubscriberGuard<'a>(&'a AtomicUsize);

impl<'a> SubscriberGuard<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Self(count)
    }
}

impl Drop for SubscriberGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

type Chunk = Result<Bytes, std::io::Error>;

/// Starts a stream for a subscription and returns the response: 200 with
/// `Content-Type: application/json`, `Cache-Control: no-cache` and no `X-Nomad-Index`.
pub fn stream_response(shared: Arc<Shared>, subscription: Subscription) -> Response {
    let (sender, mut receiver) = mpsc::channel::<Chunk>(STREAM_QUEUE);
    tokio::spawn(async move {
        let result = run_stream(&shared, &subscription, &sender).await;
        if let Err(reason) = result {
            tracing::debug!(reason, "event stream ended abruptly");
            let _ = sender
                .send(Err(std::io::Error::other(reason.to_owned())))
                .await;
        }
    });
    let body = Body::from_stream(futures::stream::poll_fn(move |context| {
        receiver.poll_recv(context)
    }));
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// Serves one subscription until the client goes away (`Ok`) or the stream must end
/// abruptly (`Err` with the reason).
///
/// ```text
/// Sending --new entries--> Sending (frames written)
/// Sending --heartbeat interval--> Sending ("{}" written)
/// Sending --silence--> Silent --recover--> Sending
/// Sending|Silent --close, or fell behind the buffer--> ended abruptly
/// Sending|Silent --emulator shutdown, or the client went away--> ended
/// ```
async fn run_stream(
    shared: &Shared,
    subscription: &Subscription,
    sender: &mpsc::Sender<Chunk>,
) -> Result<(), &'static str> {
    let hub = &shared.events;
    let _guard = SubscriberGuard::new(&hub.subscribers);
    let mut published = hub.published.subscribe();
    let mut faults = hub.faults.subscribe();
    let opened = *faults.borrow_and_update();
    let mut next_sequence: Option<u64> = None;
    let mut heartbeat =
        tokio::time::interval_at(tokio::time::Instant::now() + hub.heartbeat, hub.heartbeat);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    if sender
        .send(Ok(Bytes::from_static(HEARTBEAT_LINE)))
        .await
        .is_err()
    {
        return Ok(());
    }

    loop {
        let state = *faults.borrow_and_update();
        if state.shut_down {
            return Ok(());
        }
        if state.close_epoch != opened.close_epoch {
            return Err("closed through /_sim/event-stream/close");
        }
        let silent = state.silenced && state.silence_epoch != opened.silence_epoch;

        if !silent {
            published.borrow_and_update();
            let Ok((entries, next)) = hub.entries_after(next_sequence, subscription.index) else {
                return Err("event dropped from buffer");
            };
            next_sequence = Some(next);
            for entry in entries {
                // A start index above every buffered entry waits for entries that reach it.
                if entry.index < subscription.index {
                    continue;
                }
                let events = entry.encoded(&shared.cluster);
                if let Some(line) = frame_line(entry.index, &events, subscription)
                    && sender.send(Ok(line)).await.is_err()
                {
                    return Ok(());
                }
            }
        }

        tokio::select! {
            // The client went away.
            () = sender.closed() => return Ok(()),
            // A fault was injected or lifted.
            changed = faults.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
            }
            // New entries were published (ignored while silent).
            changed = published.changed(), if !silent => {
                if changed.is_err() {
                    return Ok(());
                }
            }
            // Time for a heartbeat (none while silent).
            _ = heartbeat.tick(), if !silent => {
                if sender.send(Ok(Bytes::from_static(HEARTBEAT_LINE))).await.is_err() {
                    return Ok(());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect()
    }

    fn event(topic: Topic, key: &str, namespace: &str, filter_keys: &[&str]) -> EncodedEvent {
        EncodedEvent {
            topic,
            key: key.to_owned(),
            namespace: namespace.to_owned(),
            filter_keys: filter_keys.iter().map(|k| (*k).to_owned()).collect(),
            json: "{}".to_owned(),
        }
    }

    #[test]
    fn topic_without_key_means_any_key() {
        let subscription = Subscription::parse(&pairs(&[("topic", "Job")])).expect("valid");
        assert_eq!(subscription.topics.len(), 1);
        assert_eq!(subscription.topics.get("Job"), Some(&vec!["*".to_owned()]));
    }

    #[test]
    fn topic_with_two_colons_rejected() {
        let error = Subscription::parse(&pairs(&[("topic", "Job:a:b")])).expect_err("invalid");
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
        assert!(error.message.contains("Job:a:b"), "{}", error.message);
    }

    #[test]
    fn missing_topic_subscribes_to_all() {
        let subscription = Subscription::parse(&pairs(&[("index", "7")])).expect("valid");
        let everything = HashMap::from([("*".to_owned(), vec!["*".to_owned()])]);
        assert_eq!(subscription.topics, everything);
        assert_eq!(subscription.index, 7);
        assert_eq!(subscription.namespace, "default");
    }

    #[test]
    fn filter_key_matches_job_of_allocation() {
        let subscription =
            Subscription::parse(&pairs(&[("topic", "Allocation:web")])).expect("valid");
        assert!(subscription.matches(&event(Topic::Allocation, "a1", "default", &["web", ""])));
        assert!(!subscription.matches(&event(Topic::Allocation, "a2", "default", &["db", ""])));
        assert!(!subscription.matches(&event(Topic::Job, "web", "default", &[])));
    }

    #[test]
    fn star_key_with_another_key_is_literal() {
        let subscription =
            Subscription::parse(&pairs(&[("topic", "Job"), ("topic", "Job:web")])).expect("valid");
        assert!(subscription.matches(&event(Topic::Job, "web", "default", &[])));
        assert!(!subscription.matches(&event(Topic::Job, "api", "default", &[])));
    }

    #[test]
    fn index_not_integer_rejected() {
        let error = Subscription::parse(&pairs(&[("index", "x")])).expect_err("invalid");
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
        assert!(
            error.message.starts_with("Unable to parse index"),
            "{}",
            error.message
        );
    }

    #[test]
    fn namespace_filter_passes_node_events() {
        let subscription = Subscription::parse(&pairs(&[("namespace", "prod")])).expect("valid");
        assert!(subscription.matches(&event(Topic::Node, "n1", "", &[])));
        assert!(subscription.matches(&event(Topic::Job, "web", "prod", &[])));
        assert!(!subscription.matches(&event(Topic::Job, "web", "default", &[])));
    }

    /// Publishes one node mark at each index, one write per index.
    fn publish_indexes(hub: &EventHub, indexes: &[u64]) {
        let mut cluster = Cluster::new(1);
        for index in indexes {
            cluster.mark_event(*index, EventType::NodeDrain, Subject::Node("n1".to_owned()));
            hub.publish(&mut cluster);
        }
    }

    fn entry_indexes(entries: &[Arc<Entry>]) -> Vec<u64> {
        entries.iter().map(|entry| entry.index).collect()
    }

    #[test]
    fn buffer_keeps_newest_indexes() {
        let hub = EventHub::new(3, DEFAULT_EVENT_HEARTBEAT);
        publish_indexes(&hub, &[1, 2, 3, 4, 5]);
        let (entries, next) = hub
            .entries_after(None, 0)
            .expect("a fresh start never fails");
        assert_eq!(entry_indexes(&entries), [3, 4, 5]);
        assert_eq!(next, 5);
    }

    #[test]
    fn start_index_between_entries_takes_next() {
        let hub = EventHub::new(10, DEFAULT_EVENT_HEARTBEAT);
        publish_indexes(&hub, &[2, 4, 6]);
        let (entries, _) = hub
            .entries_after(None, 3)
            .expect("a fresh start never fails");
        assert_eq!(entry_indexes(&entries), [4, 6]);
        let (entries, _) = hub
            .entries_after(None, 4)
            .expect("a fresh start never fails");
        assert_eq!(
            entry_indexes(&entries),
            [4, 6],
            "the start index is inclusive"
        );
    }

    #[test]
    fn reader_behind_buffer_is_cut_off() {
        let hub = EventHub::new(2, DEFAULT_EVENT_HEARTBEAT);
        publish_indexes(&hub, &[1]);
        let (_, next) = hub
            .entries_after(None, 0)
            .expect("a fresh start never fails");
        publish_indexes(&hub, &[2, 3, 4]);
        assert!(hub.entries_after(Some(next), 0).is_err());
    }

    #[test]
    fn marks_of_one_object_merge_per_index() {
        let marks = vec![
            Mark {
                index: 7,
                kind: EventType::AllocationCreated,
                subject: Subject::Allocation("a1".to_owned()),
            },
            Mark {
                index: 7,
                kind: EventType::AllocationUpdated,
                subject: Subject::Allocation("a1".to_owned()),
            },
            Mark {
                index: 7,
                kind: EventType::AllocationUpdated,
                subject: Subject::Allocation("a2".to_owned()),
            },
        ];
        let merged = group_marks(marks);
        let kinds: Vec<EventType> = merged.iter().map(|mark| mark.kind).collect();
        assert_eq!(
            kinds,
            [EventType::AllocationCreated, EventType::AllocationUpdated]
        );
    }

    #[test]
    fn frame_line_skips_unwanted_events() {
        let subscription = Subscription::parse(&pairs(&[("topic", "Node")])).expect("valid");
        let events = [event(Topic::Job, "web", "default", &[])];
        assert_eq!(frame_line(5, &events, &subscription), None);
        let events = [
            event(Topic::Node, "n1", "", &[]),
            event(Topic::Node, "n2", "", &[]),
        ];
        let line = frame_line(5, &events, &subscription).expect("two node events");
        assert_eq!(&line[..], b"{\"Index\":5,\"Events\":[{},{}]}\n");
    }
}
