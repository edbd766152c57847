//! Request shapes of the Nomad client, checked against a recording HTTP server on loopback.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response as HttpResponse};
use serde_json::{Value, json};
use steward::nomad::*;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One request as the server received it.
#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    path: String,
    query: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Recorded {
    fn query_pairs(&self) -> Vec<(String, String)> {
        let url = reqwest::Url::parse(&format!("http://127.0.0.1/?{}", self.query))
            .expect("query string parses");
        url.query_pairs()
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .collect()
    }

    fn query_value(&self, name: &str) -> Option<String> {
        self.query_pairs()
            .into_iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value)
    }

    fn json_body(&self) -> Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }
}

/// A canned reply: status, extra headers and body.
#[derive(Clone)]
struct Reply {
    status: StatusCode,
    headers: Vec<(&'static str, String)>,
    body: String,
    /// Never respond, to provoke a client timeout.
    hang: bool,
}

impl Reply {
    fn json(body: Value) -> Self {
        Self {
            status: StatusCode::OK,
            headers: vec![("Content-Type", "application/json".to_owned())],
            body: body.to_string(),
            hang: false,
        }
    }

    fn text(status: u16, body: &str) -> Self {
        Self {
            status: StatusCode::from_u16(status).expect("valid status"),
            headers: vec![("Content-Type", "text/plain; charset=utf-8".to_owned())],
            body: body.to_owned(),
            hang: false,
        }
    }

    fn with_header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }
}

#[derive(Clone)]
struct ServerState {
    recorded: Arc<Mutex<Vec<Recorded>>>,
    reply: Reply,
}

/// A recording server on 127.0.0.1 with an ephemeral port, stopped when dropped.
struct TestServer {
    address: String,
    recorded: Arc<Mutex<Vec<Recorded>>>,
    task: JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    async fn start(reply: Reply) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let address = format!("http://{}", listener.local_addr().expect("local address"));
        let recorded = Arc::new(Mutex::new(Vec::new()));
        let state = ServerState {
            recorded: recorded.clone(),
            reply,
        };
        let app = Router::new().fallback(record).with_state(state);
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("test server runs");
        });
        Self {
            address,
            recorded,
            task,
        }
    }

    fn client(&self) -> Client {
        Client::new(Config::new(&self.address).expect("valid address")).expect("client builds")
    }

    fn client_with(&self, configure: impl FnOnce(Config) -> Config) -> Client {
        let config = configure(Config::new(&self.address).expect("valid address"));
        Client::new(config).expect("client builds")
    }

    fn only_request(&self) -> Recorded {
        let recorded = self.recorded.lock().expect("lock");
        assert_eq!(
            recorded.len(),
            1,
            "expected exactly one request: {recorded:?}"
        );
        recorded[0].clone()
    }
}

async fn record(State(state): State<ServerState>, request: Request) -> HttpResponse {
    let (parts, body) = request.into_parts();
    let body = to_bytes(body, 1 << 20)
        .await
        .expect("request body readable");
    state.recorded.lock().expect("lock").push(Recorded {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        headers: parts.headers,
        body: body.to_vec(),
    });

    let reply = state.reply;
    if reply.hang {
        std::future::pending::<()>().await;
    }
    let mut response = (reply.status, Body::from(reply.body)).into_response();
    for (name, value) in reply.headers {
        response.headers_mut().insert(
            name,
            HeaderValue::from_str(&value).expect("valid header value"),
        );
    }
    response
}

fn job_json(id: &str) -> Value {
    json!({"ID": id, "Name": id, "Type": "service", "JobModifyIndex": 100, "ModifyIndex": 104,
           "TaskGroups": [{"Name": "zone-a", "Count": 2}]})
}

#[tokio::test]
async fn blocking_params_in_query_only() {
    let server = TestServer::start(
        Reply::json(json!([]))
            .with_header("X-Nomad-Index", "60")
            .with_header("X-Nomad-KnownLeader", "true")
            .with_header("X-Nomad-LastContact", "12"),
    )
    .await;

    let response = server
        .client()
        .list_jobs(
            None,
            false,
            QueryOptions::blocking(57, Duration::from_secs(30)),
        )
        .await
        .expect("list succeeds");

    let request = server.only_request();
    assert_eq!(request.method, "GET");
    assert_eq!(request.path, "/v1/jobs");
    assert_eq!(request.query_value("index").as_deref(), Some("57"));
    assert_eq!(request.query_value("wait").as_deref(), Some("30000ms"));
    assert!(
        request.headers.get("index").is_none(),
        "index must not be a header"
    );
    assert!(
        request.headers.get("wait").is_none(),
        "wait must not be a header"
    );

    assert!(response.value.is_empty());
    assert_eq!(response.meta.index, 60);
    assert!(response.meta.known_leader);
    assert_eq!(response.meta.last_contact, Duration::from_millis(12));
}

#[tokio::test]
async fn immediate_read_sends_no_index() {
    let server = TestServer::start(Reply::json(json!([])).with_header("X-Nomad-Index", "0")).await;

    let response = server
        .client()
        .list_allocations(None, QueryOptions::immediate())
        .await
        .expect("list succeeds");

    let request = server.only_request();
    assert_eq!(request.query_value("index"), None);
    assert_eq!(request.query_value("wait"), None);
    assert_eq!(response.meta.index, 0);
    assert_eq!(response.meta.next_index(), 1);
}

#[tokio::test]
async fn long_wait_clamped_to_five_minutes() {
    let server = TestServer::start(Reply::json(json!([])).with_header("X-Nomad-Index", "5")).await;

    server
        .client()
        .list_nodes(None, QueryOptions::blocking(4, Duration::from_secs(600)))
        .await
        .expect("list succeeds");

    let request = server.only_request();
    assert_eq!(request.query_value("wait").as_deref(), Some("300000ms"));
}

#[tokio::test]
async fn token_sent_as_header() {
    let server = TestServer::start(Reply::json(job_json("web"))).await;
    let client = server.client_with(|config| config.with_token(Some("s3cr3t-token".to_owned())));

    let debug = format!("{client:?}");
    assert!(
        !debug.contains("s3cr3t-token"),
        "token leaked into Debug: {debug}"
    );

    client
        .read_job("web", QueryOptions::immediate())
        .await
        .expect("read succeeds");

    let request = server.only_request();
    assert_eq!(
        request
            .headers
            .get("X-Nomad-Token")
            .map(|value| value.to_str().expect("ascii")),
        Some("s3cr3t-token")
    );
    assert!(
        request.query_value("token").is_none(),
        "token must not be a query parameter"
    );
}

#[tokio::test]
async fn no_token_no_header() {
    let server = TestServer::start(Reply::json(job_json("web"))).await;
    server
        .client()
        .read_job("web", QueryOptions::immediate())
        .await
        .expect("read succeeds");
    assert!(server.only_request().headers.get("X-Nomad-Token").is_none());
}

#[tokio::test]
async fn namespace_and_region_params() {
    let server = TestServer::start(Reply::json(job_json("web"))).await;
    let client = server.client_with(|config| {
        config
            .with_namespace(Some("workers".to_owned()))
            .with_region(Some("eu".to_owned()))
    });

    client
        .read_job("web", QueryOptions::immediate())
        .await
        .expect("read succeeds");
    client
        .with_namespace("other")
        .read_job("web", QueryOptions::immediate())
        .await
        .expect("read succeeds");

    let recorded = server.recorded.lock().expect("lock").clone();
    assert_eq!(
        recorded[0].query_value("namespace").as_deref(),
        Some("workers")
    );
    assert_eq!(recorded[0].query_value("region").as_deref(), Some("eu"));
    assert_eq!(
        recorded[1].query_value("namespace").as_deref(),
        Some("other")
    );
}

#[tokio::test]
async fn job_id_path_escaped() {
    let server = TestServer::start(Reply::json(job_json("batch/dispatch-1-ab"))).await;
    server
        .client()
        .read_job("batch/dispatch-1-ab", QueryOptions::immediate())
        .await
        .expect("read succeeds");
    assert_eq!(server.only_request().path, "/v1/job/batch%2Fdispatch-1-ab");
}

#[tokio::test]
async fn register_sends_enforce_index() {
    let server = TestServer::start(Reply::text(
        500,
        "Enforcing job modify index 100: job exists with conflicting job modify index: 117",
    ))
    .await;
    let job: Job = serde_json::from_value(job_json("web")).expect("job parses");
    let request = JobRegisterRequest {
        job,
        enforce_index: true,
        job_modify_index: 100,
        preserve_counts: true,
        ..JobRegisterRequest::default()
    };

    let error = server
        .client()
        .register_job(&request)
        .await
        .expect_err("the server reports a conflict");

    assert!(error.is_conflict(), "{error:?}");
    assert!(!error.is_retryable());
    assert_eq!(
        error.status(),
        Some(reqwest::StatusCode::INTERNAL_SERVER_ERROR)
    );
    assert!(
        error.body().is_some_and(|body| body.contains("117")),
        "{error:?}"
    );

    let recorded = server.only_request();
    assert_eq!(recorded.method, "POST");
    assert_eq!(recorded.path, "/v1/jobs");
    assert_eq!(
        recorded
            .headers
            .get("content-type")
            .map(|value| value.to_str().expect("ascii")),
        Some("application/json")
    );
    let body = recorded.json_body();
    assert_eq!(body["EnforceIndex"], json!(true));
    assert_eq!(body["JobModifyIndex"], json!(100));
    assert_eq!(body["PreserveCounts"], json!(true));
    assert_eq!(body["Job"]["ID"], json!("web"));
}

#[tokio::test]
async fn scale_blocked_is_deployment_active() {
    let server = TestServer::start(Reply::text(
        400,
        "job scaling blocked due to active deployment",
    ))
    .await;
    let request = ScalingRequest {
        count: Some(7),
        target: ScalingTarget {
            group: "zone-a".to_owned(),
            ..ScalingTarget::default()
        },
        message: "autoscaler: predicted load".to_owned(),
        ..ScalingRequest::default()
    };

    let error = server
        .client()
        .scale_job("web", &request)
        .await
        .expect_err("the server rejects the scale");

    assert!(matches!(error, Error::DeploymentActive { .. }), "{error:?}");
    assert!(error.is_retryable());

    let recorded = server.only_request();
    assert_eq!(recorded.path, "/v1/job/web/scale");
    let body = recorded.json_body();
    assert_eq!(body["Count"], json!(7));
    assert_eq!(body["Target"]["Group"], json!("zone-a"));
    assert_eq!(body["Message"], json!("autoscaler: predicted load"));
    assert!(
        body.get("JobModifyIndex").is_none(),
        "zero index means unconditional"
    );
}

#[tokio::test]
async fn read_missing_job_not_found() {
    let server = TestServer::start(Reply::text(404, "job not found")).await;
    let error = server
        .client()
        .read_job("ghost", QueryOptions::immediate())
        .await
        .expect_err("job is missing");
    assert!(error.is_not_found(), "{error:?}");
    assert_eq!(error.body(), Some("job not found"));
}

#[tokio::test]
async fn forbidden_is_permission_denied() {
    let server = TestServer::start(Reply::text(403, "Permission denied")).await;
    let error = server
        .client()
        .list_jobs(None, false, QueryOptions::immediate())
        .await
        .expect_err("token lacks permission");
    assert!(matches!(error, Error::PermissionDenied { .. }), "{error:?}");
}

#[tokio::test]
async fn latest_deployment_null_is_none() {
    let server =
        TestServer::start(Reply::json(Value::Null).with_header("X-Nomad-Index", "9")).await;
    let response = server
        .client()
        .latest_deployment("web", QueryOptions::immediate())
        .await
        .expect("read succeeds");
    assert_eq!(response.value, None);
    assert_eq!(server.only_request().path, "/v1/job/web/deployment");
}

#[tokio::test]
async fn jobs_list_prefix_and_meta() {
    let server = TestServer::start(Reply::json(json!([]))).await;
    server
        .client()
        .list_jobs(Some("pool-"), true, QueryOptions::immediate())
        .await
        .expect("list succeeds");
    let request = server.only_request();
    assert_eq!(request.query_value("prefix").as_deref(), Some("pool-"));
    assert_eq!(request.query_value("meta").as_deref(), Some("true"));
}

#[tokio::test]
async fn deregister_purge_param() {
    let server = TestServer::start(Reply::json(
        json!({"EvalID": "e1", "EvalCreateIndex": 5, "JobModifyIndex": 5}),
    ))
    .await;
    let response = server
        .client()
        .deregister_job("web", true)
        .await
        .expect("deregister succeeds");
    assert_eq!(response.eval_id, "e1");
    let request = server.only_request();
    assert_eq!(request.method, "DELETE");
    assert_eq!(request.path, "/v1/job/web");
    assert_eq!(request.query_value("purge").as_deref(), Some("true"));
}

#[tokio::test]
async fn promote_body_repeats_id() {
    let server = TestServer::start(Reply::json(
        json!({"EvalID": "e2", "EvalCreateIndex": 8, "DeploymentModifyIndex": 8, "Index": 8}),
    ))
    .await;
    let client = server.client();

    client
        .promote_deployment("d-1", None)
        .await
        .expect("promote succeeds");
    client
        .promote_deployment("d-1", Some(vec!["zone-a".to_owned()]))
        .await
        .expect("promote succeeds");

    let recorded = server.recorded.lock().expect("lock").clone();
    assert_eq!(recorded[0].path, "/v1/deployment/promote/d-1");
    assert_eq!(recorded[0].json_body()["DeploymentID"], json!("d-1"));
    assert_eq!(recorded[0].json_body()["All"], json!(true));
    assert_eq!(recorded[1].json_body()["All"], json!(false));
    assert_eq!(recorded[1].json_body()["Groups"], json!(["zone-a"]));
}

#[tokio::test]
async fn pause_fail_and_health_bodies() {
    let server = TestServer::start(Reply::json(
        json!({"EvalID": "", "EvalCreateIndex": 0, "DeploymentModifyIndex": 9, "Index": 9}),
    ))
    .await;
    let client = server.client();

    client
        .pause_deployment("d-1", true)
        .await
        .expect("pause succeeds");
    client.fail_deployment("d-1").await.expect("fail succeeds");
    client
        .set_allocation_health("d-1", vec!["a1".to_owned()], vec![])
        .await
        .expect("health succeeds");

    let recorded = server.recorded.lock().expect("lock").clone();
    assert_eq!(recorded[0].path, "/v1/deployment/pause/d-1");
    assert_eq!(
        recorded[0].json_body(),
        json!({"DeploymentID": "d-1", "Pause": true})
    );
    assert_eq!(recorded[1].path, "/v1/deployment/fail/d-1");
    assert_eq!(recorded[2].path, "/v1/deployment/allocation-health/d-1");
    assert_eq!(
        recorded[2].json_body()["HealthyAllocationIDs"],
        json!(["a1"])
    );
}

#[tokio::test]
async fn drain_and_eligibility_bodies() {
    let server = TestServer::start(Reply::json(
        json!({"NodeModifyIndex": 12, "EvalIDs": ["e3"], "EvalCreateIndex": 12, "Index": 12}),
    ))
    .await;
    let client = server.client();
    let request = NodeDrainRequest {
        drain_spec: Some(DrainSpec {
            deadline: NomadDuration::from_secs(3600),
            ignore_system_jobs: true,
        }),
        ..NodeDrainRequest::default()
    };

    let response = client
        .drain_node("n-1", &request)
        .await
        .expect("drain succeeds");
    client
        .set_node_eligibility("n-1", SchedulingEligibility::Ineligible)
        .await
        .expect("eligibility succeeds");

    assert_eq!(response.eval_ids, Some(vec!["e3".to_owned()]));
    let recorded = server.recorded.lock().expect("lock").clone();
    assert_eq!(recorded[0].path, "/v1/node/n-1/drain");
    assert_eq!(
        recorded[0].json_body()["DrainSpec"]["Deadline"],
        json!(3_600_000_000_000_i64)
    );
    assert_eq!(recorded[1].path, "/v1/node/n-1/eligibility");
    assert_eq!(
        recorded[1].json_body(),
        json!({"Eligibility": "ineligible"})
    );
}

#[tokio::test]
async fn metrics_hook_counts_requests() {
    let server = TestServer::start(Reply::text(404, "job not found")).await;
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = Arc::new(PrometheusRequestMetrics::register(&mut registry));
    let client = server.client().with_metrics(metrics);

    let _ = client.read_job("ghost", QueryOptions::immediate()).await;
    let _ = client.read_job("other", QueryOptions::immediate()).await;

    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    assert!(
        text.contains(r#"nomad_requests_total{endpoint="/v1/job/:id",method="GET",code="404"} 2"#),
        "{text}"
    );
}

#[tokio::test]
async fn connection_refused_is_retryable() {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let address = format!("http://{}", listener.local_addr().expect("local address"));
    drop(listener);

    let client = Client::new(Config::new(&address).expect("valid address")).expect("client builds");
    let error = client
        .list_jobs(None, false, QueryOptions::immediate())
        .await
        .expect_err("nothing listens");
    assert!(matches!(error, Error::Connect { .. }), "{error:?}");
    assert!(error.is_retryable());
}

#[tokio::test]
async fn silent_server_times_out() {
    let mut reply = Reply::json(json!([]));
    reply.hang = true;
    let server = TestServer::start(reply).await;
    let client = server.client_with(|mut config| {
        config.request_timeout = Duration::from_millis(200);
        config
    });

    let error = client
        .list_jobs(None, false, QueryOptions::immediate())
        .await
        .expect_err("the server never answers");
    assert!(matches!(error, Error::Timeout { .. }), "{error:?}");
    assert!(error.is_retryable());
}

#[tokio::test]
async fn invalid_json_is_decode_error() {
    let server = TestServer::start(Reply::text(200, "<html>proxy login</html>")).await;
    let error = server
        .client()
        .list_jobs(None, false, QueryOptions::immediate())
        .await
        .expect_err("the body is not JSON");
    assert!(matches!(error, Error::Decode { .. }), "{error:?}");
    assert!(!error.is_retryable());
}

/// The real allocation list fixture, repeated `copies` times with distinct IDs.
fn many_allocations(copies: usize) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/it/nomad_client/fixtures/allocations-list.json");
    let text = std::fs::read_to_string(&path).expect("fixture readable");
    let real: Vec<Value> = serde_json::from_str(&text).expect("fixture is a JSON list");
    let list: Vec<Value> = (0..copies)
        .map(|index| {
            let mut stub = real[index % real.len()].clone();
            stub["ID"] = json!(format!("alloc-{index:06}"));
            stub
        })
        .collect();
    Value::Array(list)
}

#[tokio::test]
async fn brief_list_omits_task_states() {
    let body = many_allocations(20_000);
    let full: Vec<AllocListStub> = serde_json::from_value(body.clone()).expect("stubs decode");
    let server = TestServer::start(Reply::json(body)).await;

    let response = server
        .client()
        .list_allocations_brief(QueryOptions::immediate())
        .await
        .expect("list decodes");

    let request = server.only_request();
    assert_eq!(request.path, "/v1/allocations");
    assert_eq!(request.query_value("task_states").as_deref(), Some("false"));
    assert_eq!(response.value.len(), full.len());
    for (brief, stub) in response.value.iter().zip(&full) {
        assert_eq!(brief.id, stub.id);
        assert_eq!(brief.job_id, stub.job_id);
        assert_eq!(brief.namespace, stub.namespace);
        assert_eq!(brief.node_id, stub.node_id);
        assert_eq!(brief.task_group, stub.task_group);
        assert_eq!(brief.job_version, stub.job_version);
        assert_eq!(brief.client_status, stub.client_status);
        assert_eq!(brief.desired_status, stub.desired_status);
        assert_eq!(brief.deployment_status, stub.deployment_status);
    }
}

#[tokio::test]
async fn brief_list_invalid_json_is_decode_error() {
    let mut reply = Reply::json(json!([]));
    reply.body = r#"[{"ID": "a", "JobID": 7}]"#.to_owned();
    let server = TestServer::start(reply).await;

    let error = server
        .client()
        .list_allocations_brief(QueryOptions::immediate())
        .await
        .expect_err("a number is not a job ID");

    assert!(matches!(error, Error::Decode { .. }), "{error:?}");
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn brief_list_cut_body_is_transport_error() {
    use tokio::io::AsyncWriteExt as _;

    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let address = format!("http://{}", listener.local_addr().expect("local address"));
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.expect("client connects");
        let mut request = [0_u8; 4096];
        let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut request).await;
        // Promises 1,000 bytes and closes after 20 of them.
        let head =
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n";
        socket.write_all(head.as_bytes()).await.expect("write head");
        socket
            .write_all(br#"[{"ID": "a"}, {"ID": "#)
            .await
            .expect("write part of the body");
    });
    let client = Client::new(Config::new(&address).expect("valid address")).expect("client");

    let error = client
        .list_allocations_brief(QueryOptions::immediate())
        .await
        .expect_err("the body is cut short");

    assert!(
        matches!(error, Error::Connect { .. }),
        "a cut body is a connection failure, not a decode error: {error:?}"
    );
    assert!(error.is_retryable());
    server.await.expect("server task ends");
}

#[tokio::test]
async fn event_stream_request_shape() {
    let frame = json!({"Index": 3, "Events": [{"Topic": "Job", "Type": "JobRegistered",
        "Key": "web", "Namespace": "prod", "FilterKeys": null, "Index": 3,
        "Payload": {"Job": job_json("web")}}]});
    let mut reply = Reply::json(Value::Null);
    reply.body = format!("{{}}\n{frame}\n");
    let server = TestServer::start(reply).await;
    let client = server.client_with(|config| config.with_token(Some("s3cr3t-token".to_owned())));
    let mut stream = EventStream::new(
        &client,
        EventStreamConfig {
            topics: vec![
                TopicFilter::all("Job"),
                TopicFilter::keyed("Allocation", "web"),
            ],
            namespace: Some("prod".to_owned()),
            start_index: 7,
            ..EventStreamConfig::default()
        },
    )
    .expect("valid settings");
    let debug = format!("{stream:?}");
    assert!(!debug.contains("s3cr3t-token"), "token leaked: {debug}");

    let item = stream.next().await.expect("a frame");
    let StreamItem::Events(received) = item else {
        panic!("expected a frame, got {item:?}");
    };
    assert_eq!(received.index, 3);
    let job = received.events[0]
        .job()
        .expect("Job payload")
        .expect("Job decodes");
    assert_eq!(job.id, "web");

    let request = server.only_request();
    assert_eq!(request.method, "GET");
    assert_eq!(request.path, "/v1/event/stream");
    assert_eq!(
        request.query_pairs(),
        vec![
            ("namespace".to_owned(), "prod".to_owned()),
            ("index".to_owned(), "7".to_owned()),
            ("topic".to_owned(), "Job:*".to_owned()),
            ("topic".to_owned(), "Allocation:web".to_owned()),
        ]
    );
    assert_eq!(
        request
            .headers
            .get("X-Nomad-Token")
            .map(|value| value.to_str().expect("ascii")),
        Some("s3cr3t-token")
    );
}

#[tokio::test]
async fn event_stream_forbidden_is_permanent() {
    let server = TestServer::start(Reply::text(403, "Permission denied")).await;
    let mut stream =
        EventStream::new(&server.client(), EventStreamConfig::default()).expect("valid settings");
    let error = stream.next().await.expect_err("token lacks permission");
    assert!(matches!(error, Error::PermissionDenied { .. }), "{error:?}");
    assert_eq!(stream.reconnects(), 0);
}

#[tokio::test]
async fn paged_list_self_token_fails() {
    // Every request gets the same page, whose token points back at itself.
    let server = TestServer::start(
        Reply::json(json!([]))
            .with_header("X-Nomad-Index", "7")
            .with_header("X-Nomad-NextToken", "12.a1"),
    )
    .await;

    let error = server
        .client()
        .list_allocations_paged::<Vec<AllocBrief>>(QueryOptions::immediate(), 3, |all, page| {
            all.extend(page)
        })
        .await
        .expect_err("a page that repeats its token ends the list with an error");

    assert!(!error.is_retryable(), "{error}");
    assert!(error.to_string().contains("12.a1"), "{error}");
    let recorded = server.recorded.lock().expect("lock").clone();
    assert_eq!(recorded.len(), 2, "the first page and the repeated one");
    assert_eq!(recorded[0].query_value("per_page").as_deref(), Some("3"));
    assert_eq!(
        recorded[1].query_value("next_token").as_deref(),
        Some("12.a1")
    );
}
