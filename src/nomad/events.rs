//! A reader of Nomad's event stream (`GET /v1/event/stream`) that survives silent deaths.
//!
//! Nomad sends newline-delimited JSON: the heartbeat line `{}` right after connecting and
//! every 30 s, and one frame per Raft index, `{"Index": N, "Events": [...]}`. Errors after the
//! 200 status simply end the body, and a half-dead connection just goes quiet. Resuming with
//! `index=N` starts at the entry with index N itself (inclusive), or at the oldest buffered
//! entry when N has already left the server's buffer, without any error.
//!
//! [`EventStream`] therefore reads with a timeout that every line resets. It reconnects after
//! an end of body, a transport error or a timeout, and drops frames it has already yielded.
//! After every reconnect it yields [`StreamItem::Resync`], because a gap can never be ruled
//! out from the stream alone, so the consumer must re-list state (a blocking-query snapshot).
//!
//! ```text
//! Disconnected --connect ok (first time)--> Connected
//! Disconnected --connect ok (again)--> yield Resync, Connected
//! Disconnected --retryable error--> sleep backoff --> Disconnected
//! Disconnected --permanent error (400, 403, 404)--> return the error, Disconnected
//! Connected --"{}"--> Connected (read timeout reset)
//! Connected --frame, Index <= last yielded--> Connected (dropped)
//! Connected --frame, Index > last yielded--> yield Events, Connected
//! Connected --end of body, error, undecodable line, read timeout--> sleep backoff --> Disconnected
//! ```

use std::time::Duration;

use backon::ExponentialBackoff;
use futures::Stream;
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use tokio::time::Instant;

use super::client::Call;
use super::{Allocation, Client, Deployment, Error, Evaluation, Job, Node, QueryOptions};

/// Default read timeout: Nomad's 30 s heartbeat interval plus a margin for a slow network.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(45);

/// One subscription topic with an optional filter key, sent as `topic=Topic:key`.
///
/// Nomad matches the key against an event's `Key` and its `FilterKeys`: an allocation's job
/// ID and deployment ID, a deployment's job ID, an evaluation's job ID and deployment ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicFilter {
    /// `Job`, `Allocation`, `Deployment`, `Evaluation`, `Node`, … or `*` for every topic.
    pub topic: String,
    /// `*` matches every key.
    pub key: String,
}

impl TopicFilter {
    /// Subscribes to every event of a topic.
    pub fn all(topic: impl Into<String>) -> Self {
        Self {
            topic: topic.into(),
            key: "*".to_owned(),
        }
    }

    /// Subscribes to the events of a topic whose key or filter keys include `key`.
    pub fn keyed(topic: impl Into<String>, key: impl Into<String>) -> Self {
        Self {
            topic: topic.into(),
            key: key.into(),
        }
    }

    fn to_param(&self) -> String {
        format!("{}:{}", self.topic, self.key)
    }
}

/// Settings of an [`EventStream`]. Check them with [`EventStreamConfig::validate`].
#[derive(Debug, Clone, PartialEq)]
pub struct EventStreamConfig {
    /// Topics to subscribe to. Empty subscribes to all topics, which Nomad allows only with a
    /// management token.
    pub topics: Vec<TopicFilter>,
    /// The namespace to stream (`*` for all); `None` uses the client's namespace.
    pub namespace: Option<String>,
    /// The first Raft index wanted (inclusive); 0 starts at the oldest buffered entry.
    pub start_index: u64,
    /// The maximum silence on a connection before it counts as dead. Every line, heartbeats
    /// included, resets it.
    pub read_timeout: Duration,
    /// First delay before reconnecting.
    pub backoff_initial: Duration,
    /// Largest delay between reconnects within one failure episode.
    pub backoff_max: Duration,
}

impl Default for EventStreamConfig {
    fn default() -> Self {
        Self {
            topics: Vec::new(),
            namespace: None,
            start_index: 0,
            read_timeout: DEFAULT_READ_TIMEOUT,
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
        }
    }
}

impl EventStreamConfig {
    /// Checks that the settings can work, naming the value to fix.
    pub fn validate(&self) -> Result<(), Error> {
        for filter in &self.topics {
            if filter.topic.is_empty() || filter.topic.contains(':') || filter.key.contains(':') {
                return Err(Error::Config(format!(
                    "event stream topic {:?} with key {:?} is invalid: give a topic such as \
                     Allocation and a key without ':'",
                    filter.topic, filter.key
                )));
            }
        }
        if self.read_timeout.is_zero() {
            return Err(Error::Config(
                "event stream read timeout 0 is invalid: use more than Nomad's 30 s heartbeat \
                 interval, such as 45 s"
                    .to_owned(),
            ));
        }
        if self.backoff_initial.is_zero() || self.backoff_initial > self.backoff_max {
            return Err(Error::Config(format!(
                "event stream backoff from {:?} to {:?} is invalid: the first delay must be more \
                 than 0 and at most the largest",
                self.backoff_initial, self.backoff_max
            )));
        }
        Ok(())
    }
}

fn null_as_empty<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(deserializer)?.unwrap_or_default())
}

/// One event of a frame, with its payload kept as JSON.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Event {
    pub topic: String,
    /// `JobRegistered`, `AllocationUpdated`, `NodeStreamEvent`, …
    pub r#type: String,
    /// The object's ID (the job ID for Job events).
    pub key: String,
    /// Empty for node events.
    #[serde(default)]
    pub namespace: String,
    /// Extra keys a topic filter matches; Nomad sends `null` for none.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub filter_keys: Vec<String>,
    /// The Raft index of the change.
    pub index: u64,
    /// `{"Job": …}`, `{"Allocation": …}`, `{"Deployment": …}`, `{"Evaluation": …}`,
    /// `{"Node": …}` or another topic's object.
    pub payload: Value,
}

impl Event {
    fn payload_as<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
    ) -> Option<Result<T, serde_json::Error>> {
        let value = self.payload.get(name).filter(|value| !value.is_null())?;
        Some(T::deserialize(value))
    }

    /// Decodes the payload's `Job`, or `None` when it has none.
    pub fn job(&self) -> Option<Result<Job, serde_json::Error>> {
        self.payload_as("Job")
    }

    /// Decodes the payload's `Allocation`, or `None` when it has none.
    pub fn allocation(&self) -> Option<Result<Allocation, serde_json::Error>> {
        self.payload_as("Allocation")
    }

    /// Decodes the payload's `Deployment`, or `None` when it has none.
    pub fn deployment(&self) -> Option<Result<Deployment, serde_json::Error>> {
        self.payload_as("Deployment")
    }

    /// Decodes the payload's `Evaluation`, or `None` when it has none.
    pub fn evaluation(&self) -> Option<Result<Evaluation, serde_json::Error>> {
        self.payload_as("Evaluation")
    }

    /// Decodes the payload's `Node`, or `None` when it has none.
    pub fn node(&self) -> Option<Result<Node, serde_json::Error>> {
        self.payload_as("Node")
    }
}

/// The events of one Raft index.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub index: u64,
    pub events: Vec<Event>,
}

/// One decoded line of the stream.
#[derive(Debug, Clone, PartialEq)]
pub enum EventLine {
    /// `{}`, or any object with `Index` 0 and no events, as Nomad's Go client decides.
    Heartbeat,
    Frame(Frame),
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawFrame {
    #[serde(default)]
    index: u64,
    #[serde(default)]
    events: Option<Vec<Event>>,
}

/// Decodes one line of the stream (without its newline).
pub fn decode_line(line: &[u8]) -> Result<EventLine, serde_json::Error> {
    let raw: RawFrame = serde_json::from_slice(line)?;
    let events = raw.events.unwrap_or_default();
    if raw.index == 0 && events.is_empty() {
        return Ok(EventLine::Heartbeat);
    }
    Ok(EventLine::Frame(Frame {
        index: raw.index,
        events,
    }))
}

/// An item of [`EventStream::next`].
#[derive(Debug, Clone, PartialEq)]
pub enum StreamItem {
    /// A frame with an index above every frame yielded before.
    Events(Frame),
    /// The stream reconnected, so events may have been missed: re-list the state you track,
    /// then continue applying the frames that follow. The first connection yields none,
    /// because the caller lists state before it starts the stream.
    Resync {
        /// The `index` the new connection asked for (frames at or below the last yielded
        /// index are dropped).
        resume_index: u64,
    },
}

/// The reason a connection was given up.
#[derive(Debug, thiserror::Error)]
enum ConnectionEnd {
    #[error("the server ended the stream")]
    EndOfBody,
    #[error("no line within the read timeout of {0:?}")]
    Silent(Duration),
    #[error("reading the stream failed: {0}")]
    Transport(#[source] reqwest::Error),
    #[error("undecodable line: {0}")]
    Decode(#[source] serde_json::Error),
}

/// An open connection with its unread bytes.
struct Connection {
    response: reqwest::Response,
    buffer: Vec<u8>,
    deadline: Instant,
}

impl Connection {
    /// Returns the next non-empty line, resetting the read deadline for each line.
    async fn next_line(&mut self, read_timeout: Duration) -> Result<Vec<u8>, ConnectionEnd> {
        loop {
            if let Some(end) = self.buffer.iter().position(|byte| *byte == b'\n') {
                let mut line: Vec<u8> = self.buffer.drain(..=end).collect();
                line.pop();
                self.deadline = Instant::now() + read_timeout;
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                tracing::trace!(bytes = line.len(), "event stream line");
                return Ok(line);
            }
            match tokio::time::timeout_at(self.deadline, self.response.chunk()).await {
                Err(_) => return Err(ConnectionEnd::Silent(read_timeout)),
                Ok(Err(error)) => return Err(ConnectionEnd::Transport(error)),
                Ok(Ok(None)) => return Err(ConnectionEnd::EndOfBody),
                Ok(Ok(Some(bytes))) => self.buffer.extend_from_slice(&bytes),
            }
        }
    }
}

/// A resilient reader of Nomad's event stream. See the module documentation for its states.
pub struct EventStream {
    client: Client,
    config: EventStreamConfig,
    /// The index of the last frame yielded; 0 before the first.
    last_index: u64,
    connection: Option<Connection>,
    connected_before: bool,
    /// The backoff of the current failure episode, or `None` while the stream is healthy.
    backoff: Option<ExponentialBackoff>,
    failures: u32,
    reconnects: u64,
    duplicates_dropped: u64,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream")
            .field("config", &self.config)
            .field("last_index", &self.last_index)
            .field("connected", &self.connection.is_some())
            .finish_non_exhaustive()
    }
}

impl EventStream {
    /// Creates a stream that connects through `client` (its address, token, TLS and region)
    /// on the first [`EventStream::next`].
    pub fn new(client: &Client, config: EventStreamConfig) -> Result<Self, Error> {
        config.validate()?;
        let client = match &config.namespace {
            Some(namespace) => client.with_namespace(namespace.clone()),
            None => client.clone(),
        };
        Ok(Self {
            client,
            config,
            last_index: 0,
            connection: None,
            connected_before: false,
            backoff: None,
            failures: 0,
            reconnects: 0,
            duplicates_dropped: 0,
        })
    }

    /// Returns the index of the last frame yielded, 0 before the first.
    pub fn last_index(&self) -> u64 {
        self.last_index
    }

    /// Returns how many times the stream reconnected.
    pub fn reconnects(&self) -> u64 {
        self.reconnects
    }

    /// Returns how many frames were dropped because their index was already yielded.
    pub fn duplicates_dropped(&self) -> u64 {
        self.duplicates_dropped
    }

    /// Waits for the next item. Connection losses are retried with a capped, jittered
    /// backoff and reported as [`StreamItem::Resync`]. A permanent error (an invalid topic,
    /// a denied token) is returned, and the next call tries to connect again.
    pub async fn next(&mut self) -> Result<StreamItem, Error> {
        loop {
            let Some(connection) = self.connection.as_mut() else {
                match self.connect().await {
                    Ok(connection) => {
                        self.connection = Some(connection);
                        if self.connected_before {
                            self.reconnects += 1;
                            return Ok(StreamItem::Resync {
                                resume_index: self.resume_index(),
                            });
                        }
                        self.connected_before = true;
                    }
                    Err(error) if error.is_retryable() => self.wait_before_retry(&error).await,
                    Err(error) => return Err(error),
                }
                continue;
            };

            let read = connection.next_line(self.config.read_timeout).await;
            let decoded = read.and_then(|line| decode_line(&line).map_err(ConnectionEnd::Decode));
            match decoded {
                Ok(EventLine::Heartbeat) => self.end_failure_episode(),
                Ok(EventLine::Frame(frame)) => {
                    self.end_failure_episode();
                    if frame.index <= self.last_index {
                        self.duplicates_dropped += 1;
                        tracing::debug!(
                            index = frame.index,
                            last_index = self.last_index,
                            "event frame already applied, dropped"
                        );
                        continue;
                    }
                    self.last_index = frame.index;
                    return Ok(StreamItem::Events(frame));
                }
                Err(end) => {
                    self.connection = None;
                    self.wait_before_retry(&end).await;
                }
            }
        }
    }

    /// Turns the stream into a [`Stream`]. It ends after the first permanent error, which it
    /// yields.
    pub fn into_stream(self) -> impl Stream<Item = Result<StreamItem, Error>> {
        futures::stream::unfold(Some(self), |state| async move {
            let mut stream = state?;
            match stream.next().await {
                Ok(item) => Some((Ok(item), Some(stream))),
                Err(error) => Some((Err(error), None)),
            }
        })
    }

    /// Returns the index a new connection requests: the last yielded one (Nomad sends it
    /// again and the stream drops it), or the configured start before any frame.
    fn resume_index(&self) -> u64 {
        if self.last_index > 0 {
            self.last_index
        } else {
            self.config.start_index
        }
    }

    async fn connect(&self) -> Result<Connection, Error> {
        let mut call = Call::get(
            "/v1/event/stream",
            &["event", "stream"],
            QueryOptions::immediate(),
        )
        .param("index", self.resume_index().to_string());
        for filter in &self.config.topics {
            call = call.param("topic", filter.to_param());
        }
        let response = self
            .client
            .open_stream(call, self.config.read_timeout)
            .await?;
        tracing::debug!(index = self.resume_index(), "event stream connected");
        Ok(Connection {
            response,
            buffer: Vec::new(),
            deadline: Instant::now() + self.config.read_timeout,
        })
    }

    async fn wait_before_retry(&mut self, cause: &dyn std::fmt::Display) {
        let delay = super::watch::next_retry_delay(
            &mut self.backoff,
            self.config.backoff_initial,
            self.config.backoff_max,
        );
        self.failures += 1;
        if self.failures == 1 || self.failures.is_multiple_of(10) {
            tracing::warn!(failures = self.failures, ?delay, last_index = self.last_index, error = %cause, "event stream lost, reconnecting");
        } else {
            tracing::debug!(failures = self.failures, ?delay, last_index = self.last_index, error = %cause, "event stream lost, reconnecting");
        }
        tokio::time::sleep(delay).await;
    }

    fn end_failure_episode(&mut self) {
        if self.failures > 0 {
            tracing::info!(
                failures = self.failures,
                last_index = self.last_index,
                "event stream recovered"
            );
        }
        self.backoff = None;
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: &str =
        include_str!("../../tests/it/nomad_client/fixtures/event-stream-frame.json");
    const SAMPLE: &str =
        include_str!("../../tests/it/nomad_client/fixtures/event-stream-sample.ndjson");

    #[test]
    fn fixture_frame_decodes_node_event() {
        let EventLine::Frame(frame) = decode_line(FRAME.as_bytes()).expect("fixture decodes")
        else {
            panic!("the fixture is a frame, not a heartbeat");
        };
        assert_eq!(frame.index, 7);
        assert_eq!(frame.events.len(), 1);
        let event = &frame.events[0];
        assert_eq!(event.topic, "Node");
        assert_eq!(event.r#type, "NodeRegistration");
        assert_eq!(event.key, "ccc4ce56-7f0a-4124-b8b1-a4015aa82c40");
        assert_eq!(event.namespace, "");
        assert!(event.filter_keys.is_empty());
        assert_eq!(event.index, 7);
        let node = event.node().expect("a Node payload").expect("node decodes");
        assert_eq!(node.id, event.key);
        assert!(event.job().is_none());
    }

    #[test]
    fn fixture_sample_starts_with_heartbeat() {
        let lines: Vec<EventLine> = SAMPLE
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| decode_line(line.as_bytes()).expect("sample line decodes"))
            .collect();
        assert_eq!(lines.first(), Some(&EventLine::Heartbeat));
        let frames: Vec<&Frame> = lines
            .iter()
            .filter_map(|line| match line {
                EventLine::Frame(frame) => Some(frame),
                EventLine::Heartbeat => None,
            })
            .collect();
        assert!(!frames.is_empty(), "the sample holds at least one frame");
        for frame in frames {
            assert!(frame.index > 0);
            assert!(frame.events.iter().all(|event| event.index == frame.index));
        }
    }

    #[test]
    fn empty_frame_with_index_zero_is_heartbeat() {
        assert_eq!(decode_line(b"{}").expect("valid"), EventLine::Heartbeat);
        assert_eq!(
            decode_line(br#"{"Index":0,"Events":null}"#).expect("valid"),
            EventLine::Heartbeat
        );
    }

    #[test]
    fn truncated_line_is_error() {
        assert!(decode_line(br#"{"Index":41,"Events":[{"Topic""#).is_err());
    }

    #[test]
    fn filter_keys_null_or_list() {
        let line = br#"{"Index":9,"Events":[{"Topic":"Allocation","Type":"AllocationUpdated","Key":"a1","Namespace":"default","FilterKeys":["web","d1"],"Index":9,"Payload":{"Allocation":null}}]}"#;
        let EventLine::Frame(frame) = decode_line(line).expect("valid") else {
            panic!("a frame");
        };
        assert_eq!(frame.events[0].filter_keys, vec!["web", "d1"]);
        assert!(frame.events[0].allocation().is_none());
    }

    #[test]
    fn config_rejects_topic_with_colon() {
        let config = EventStreamConfig {
            topics: vec![TopicFilter::keyed("Job", "a:b")],
            ..EventStreamConfig::default()
        };
        let error = config.validate().expect_err("invalid key");
        assert!(error.to_string().contains("a:b"), "{error}");
    }

    #[test]
    fn config_rejects_zero_read_timeout() {
        let config = EventStreamConfig {
            read_timeout: Duration::ZERO,
            ..EventStreamConfig::default()
        };
        assert!(config.validate().is_err());
    }
}
