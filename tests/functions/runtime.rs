//! The built functions run behind a Lambda Runtime API emulator written here, with a stand-in
//! Elasticsearch reached by the name `localhost`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::{built, extract_bootstrap, fixture};

const API: &str = "/2018-06-01/runtime";
/// How long a function may take to answer one event (the build is done before the clock starts).
const ANSWER_WITHIN: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// A small HTTP/1.1 server on 127.0.0.1

type Handler = Arc<dyn Fn(String, String, HashMap<String, String>, Bytes) -> Reply + Send + Sync>;

/// An answer: status, headers, body.
type Answer = (u16, Vec<(&'static str, String)>, String);

enum Reply {
    Now(u16, Vec<(&'static str, String)>, String),
    /// Answer once the future resolves (a long poll).
    Later(std::pin::Pin<Box<dyn std::future::Future<Output = Answer> + Send>>),
}

struct Server {
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(handler: Handler) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        while let Ok((stream, _)) = listener.accept().await {
            let handler = handler.clone();
            connections.spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let handler = handler.clone();
                        async move {
                            let method = req.method().to_string();
                            let path = req.uri().path().to_string();
                            let headers = req
                                .headers()
                                .iter()
                                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                                .collect();
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let (status, extra, text) = match handler(method, path, headers, body) {
                                Reply::Now(s, h, t) => (s, h, t),
                                Reply::Later(f) => f.await,
                            };
                            let mut resp = Response::builder().status(status);
                            for (k, v) in extra {
                                resp = resp.header(k, v);
                            }
                            Ok::<_, Infallible>(resp.body(Full::new(Bytes::from(text))).unwrap())
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Server { port, task }
}

// ---------------------------------------------------------------------------------------------
// The Runtime API (https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html)

#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Response(Value),
    Error {
        error_type: Option<String>,
        body: Value,
    },
}

#[derive(Default)]
struct ApiState {
    queue: VecDeque<(String, Value)>,
    outcomes: HashMap<String, Outcome>,
    init_errors: Vec<Value>,
    polls: usize,
    unknown: Vec<String>,
}

/// The Runtime API as Lambda serves it to a `bootstrap`: `GET /invocation/next` hands out the
/// queued events (and holds the poll open when there are none, as Lambda does between
/// invocations), `POST /invocation/{id}/response` and `/error` record the outcome,
/// `POST /init/error` records an initialisation failure.
pub(crate) struct RuntimeApi {
    state: Arc<Mutex<ApiState>>,
    changed: Arc<Notify>,
    server: Server,
}

impl RuntimeApi {
    async fn start(function: &str) -> RuntimeApi {
        let state = Arc::new(Mutex::new(ApiState::default()));
        let changed = Arc::new(Notify::new());
        let arn = format!("arn:aws:lambda:us-east-1:123456789012:function:{function}");
        let (s, c) = (state.clone(), changed.clone());
        let handler: Handler = Arc::new(
            move |method, path, headers: HashMap<String, String>, body| {
                let (state, changed, arn) = (s.clone(), c.clone(), arn.clone());
                let body_json = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let rest = path.strip_prefix(API).unwrap_or("");
                match (method.as_str(), rest) {
                    ("GET", "/invocation/next") => Reply::Later(Box::pin(async move {
                        state.lock().unwrap().polls += 1;
                        changed.notify_waiters();
                        loop {
                            let notified = changed.notified();
                            if let Some((id, event)) = state.lock().unwrap().queue.pop_front() {
                                let deadline = std::time::SystemTime::now()
                                    .duration_since(std::time::UNIX_EPOCH)
                                    .unwrap()
                                    .as_millis()
                                    + ANSWER_WITHIN.as_millis();
                                let headers = vec![
                                    ("Lambda-Runtime-Aws-Request-Id", id),
                                    ("Lambda-Runtime-Deadline-Ms", deadline.to_string()),
                                    ("Lambda-Runtime-Invoked-Function-Arn", arn.clone()),
                                    (
                                        "Lambda-Runtime-Trace-Id",
                                        "Root=1-5e9f0c65-1de4d666d4dd26aced652b6c".into(),
                                    ),
                                    ("Content-Type", "application/json".into()),
                                ];
                                return (200, headers, event.to_string());
                            }
                            // no event: hold the poll, as Lambda does (the test ends the process)
                            notified.await;
                        }
                    })),
                    ("POST", "/init/error") => {
                        state.lock().unwrap().init_errors.push(body_json);
                        changed.notify_waiters();
                        Reply::Now(202, vec![], r#"{"status":"OK"}"#.into())
                    }
                    ("POST", rest) if rest.starts_with("/invocation/") => {
                        let tail = &rest["/invocation/".len()..];
                        let outcome = if let Some(id) = tail.strip_suffix("/response") {
                            Some((id, Outcome::Response(body_json)))
                        } else {
                            tail.strip_suffix("/error").map(|id| {
                                let error_type =
                                    headers.get("lambda-runtime-function-error-type").cloned();
                                (
                                    id,
                                    Outcome::Error {
                                        error_type,
                                        body: body_json,
                                    },
                                )
                            })
                        };
                        match outcome {
                            Some((id, outcome)) => {
                                state
                                    .lock()
                                    .unwrap()
                                    .outcomes
                                    .insert(id.to_string(), outcome);
                                changed.notify_waiters();
                                Reply::Now(202, vec![], r#"{"status":"OK"}"#.into())
                            }
                            None => {
                                state
                                    .lock()
                                    .unwrap()
                                    .unknown
                                    .push(format!("{method} {path}"));
                                Reply::Now(404, vec![], String::new())
                            }
                        }
                    }
                    _ => {
                        state
                            .lock()
                            .unwrap()
                            .unknown
                            .push(format!("{method} {path}"));
                        Reply::Now(404, vec![], String::new())
                    }
                }
            },
        );
        let server = serve(handler).await;
        RuntimeApi {
            state,
            changed,
            server,
        }
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.server.port)
    }

    fn invoke(&self, id: &str, event: Value) {
        self.state
            .lock()
            .unwrap()
            .queue
            .push_back((id.to_string(), event));
        self.changed.notify_waiters();
    }

    /// Waits (at most [`ANSWER_WITHIN`]) until the function has asked for `n` events.
    async fn wait_for_polls(&self, n: usize) {
        let until = Instant::now() + ANSWER_WITHIN;
        loop {
            let notified = self.changed.notified();
            if self.state.lock().unwrap().polls >= n {
                return;
            }
            let left = until.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "fewer than {n} polls of /invocation/next within {ANSWER_WITHIN:?}"
            );
            let _ = tokio::time::timeout(left.min(Duration::from_millis(200)), notified).await;
        }
    }

    /// The outcome of invocation `id`, waiting at most [`ANSWER_WITHIN`].
    async fn outcome(&self, id: &str) -> Outcome {
        let until = Instant::now() + ANSWER_WITHIN;
        loop {
            let notified = self.changed.notified();
            if let Some(o) = self.state.lock().unwrap().outcomes.get(id) {
                return o.clone();
            }
            let left = until.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no answer to invocation {id} within {ANSWER_WITHIN:?}"
            );
            let _ = tokio::time::timeout(left.min(Duration::from_millis(200)), notified).await;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Elasticsearch's stand-in: PUT /<index>/_create/<id> answers 201, then 409

#[derive(Default)]
struct EsState {
    docs: Vec<(String, Option<String>, Value)>,
    ids: HashSet<String>,
}

struct FakeEs {
    state: Arc<Mutex<EsState>>,
    server: Server,
}

impl FakeEs {
    async fn start() -> FakeEs {
        let state = Arc::new(Mutex::new(EsState::default()));
        let s = state.clone();
        let handler: Handler = Arc::new(
            move |method, path, headers: HashMap<String, String>, body| {
                let mut st = s.lock().unwrap();
                if method != "PUT" || !path.contains("/_create/") {
                    return Reply::Now(400, vec![], r#"{"error":"unexpected request"}"#.into());
                }
                let doc = serde_json::from_slice(&body).unwrap_or(Value::Null);
                st.docs
                    .push((path.clone(), headers.get("authorization").cloned(), doc));
                if st.ids.insert(path) {
                    Reply::Now(201, vec![], r#"{"result":"created"}"#.into())
                } else {
                    Reply::Now(
                        409,
                        vec![],
                        r#"{"error":{"type":"version_conflict_engine_exception"}}"#.into(),
                    )
                }
            },
        );
        FakeEs {
            state,
            server: serve(handler).await,
        }
    }

    fn docs(&self) -> Vec<(String, Option<String>, Value)> {
        self.state.lock().unwrap().docs.clone()
    }
}

// ---------------------------------------------------------------------------------------------
// Running a bootstrap

const PASSWORD: &str = "hunter2-es-password";
/// A property value that must never reach the logs.
const PRIVATE: &str = "private-property-value-4711";

struct Function {
    child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

impl Function {
    /// Starts `bin`'s bootstrap as Lambda does: the Runtime API's address and the function's
    /// settings in the environment. Logging at TRACE is asked for: the functions cap it.
    async fn start(bin: &str, api: &RuntimeApi, es_url: Option<String>) -> Function {
        let zip = tokio::task::spawn_blocking({
            let bin = bin.to_string();
            move || built(&bin)
        })
        .await
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let exe = extract_bootstrap(&zip, dir.path());
        let mut cmd = tokio::process::Command::new(&exe);
        cmd.env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", api.address())
            .env("AWS_LAMBDA_FUNCTION_NAME", bin)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env(
                "AWS_LAMBDA_LOG_STREAM_NAME",
                "2024/05/01/[$LATEST]0123456789abcdef",
            )
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{bin}"))
            .env("AWS_LAMBDA_LOG_LEVEL", "TRACE")
            .env("AWS_REGION", "us-east-1")
            .env("LAMBDA_TASK_ROOT", dir.path())
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(url) = es_url {
            cmd.env("ES_URL", url);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", exe.display()));
        Function { child, _dir: dir }
    }

    /// Stops the process (it would poll for the next event forever) and returns its logs.
    async fn stop(mut self) -> String {
        let _ = self.child.start_kill();
        let out = tokio::time::timeout(Duration::from_secs(10), self.child.wait_with_output())
            .await
            .expect("the function stops within 10 s")
            .unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

/// AWS's HTTP API sample (payload 2.0), made the POST of an analytics event.
fn http_api_post(body: &Value) -> Value {
    let mut event = fixture("example-apigw-v2-request-no-authorizer.json");
    event["requestContext"]["http"]["method"] = json!("POST");
    event["rawPath"] = json!("/events");
    event["routeKey"] = json!("POST /events");
    event["headers"]["content-type"] = json!("application/json");
    event["body"] = json!(body.to_string());
    event
}

#[tokio::test]
async fn analytics_ingest_answers_an_http_api_event_and_indexes_it() {
    let api = RuntimeApi::start("analytics-ingest").await;
    let es = FakeEs::start().await;
    // `localhost`, not 127.0.0.1: the static binary resolves names itself (hickory)
    let es_url = format!("http://elastic:{PASSWORD}@localhost:{}", es.server.port);
    let function = Function::start("analytics-ingest", &api, Some(es_url)).await;

    let good = json!({"event": "signup", "session": "s-1", "properties": {"plan": PRIVATE}});
    api.invoke("inv-good", http_api_post(&good));
    api.invoke(
        "inv-bad",
        http_api_post(&json!({"evnt": "signup", "properties": [PRIVATE]})),
    );
    let answered = api.outcome("inv-good").await;
    let bad = api.outcome("inv-bad").await;
    // having answered both, it asks for the next event
    api.wait_for_polls(3).await;
    let logs = function.stop().await;

    let Outcome::Response(resp) = answered else {
        panic!("{answered:?}\n{logs}")
    };
    assert_eq!(resp["statusCode"], 202, "{resp}\n{logs}");
    assert_eq!(resp["headers"]["content-type"], "application/json");
    let body: Value = serde_json::from_str(resp["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        body,
        json!({"accepted": true, "id": "LV7fzho-PHcEJPw=", "stored": "created"})
    );

    let Outcome::Response(resp) = bad else {
        panic!("{bad:?}\n{logs}")
    };
    assert_eq!(resp["statusCode"], 400, "{resp}");
    let body: Value = serde_json::from_str(resp["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["error"], "invalid analytics event");
    let problems: Vec<&str> = body["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(
        problems.iter().any(|p| p.starts_with("event: missing")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("properties: must be an object")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("\"evnt\": unknown field")),
        "{problems:?}"
    );

    // the store received the one valid document, with the credentials from ES_URL
    let docs = es.docs();
    assert_eq!(docs.len(), 1, "{docs:?}");
    let (path, auth, doc) = &docs[0];
    assert_eq!(path, "/analytics-events/_create/LV7fzho-PHcEJPw%3D");
    assert!(auth.as_deref().is_some_and(|a| a.starts_with("Basic ")));
    assert_eq!(doc["event"], "signup");
    assert_eq!(doc["properties"]["plan"], PRIVATE);
    assert_eq!(doc["received_at"], "2020-04-21T15:08:21.067Z");

    let state = api.state.lock().unwrap();
    assert!(state.init_errors.is_empty() && state.unknown.is_empty());
    // the logs tell what happened, without the password or the event's contents
    assert!(
        logs.contains("indexed") && logs.contains("refused"),
        "{logs}"
    );
    assert!(
        !logs.contains(PASSWORD),
        "the ES password is in the logs:\n{logs}"
    );
    assert!(
        !logs.contains(PRIVATE),
        "event contents are in the logs:\n{logs}"
    );
    infra_test_support::say(&format!(
        "analytics-ingest behind the emulated Runtime API: 202 + indexed, 400 with {} problems",
        problems.len()
    ));
}

#[tokio::test]
async fn node_events_records_a_launch_and_reports_a_malformed_event_as_an_error() {
    let api = RuntimeApi::start("node-events").await;
    let es = FakeEs::start().await;
    let es_url = format!("http://localhost:{}/", es.server.port);
    let function = Function::start("node-events", &api, Some(es_url)).await;

    api.invoke(
        "inv-launch",
        fixture("example-autoscaling-event-launch-successful.json"),
    );
    let mut broken = fixture("example-autoscaling-event-terminate-successful.json");
    broken["detail"]
        .as_object_mut()
        .unwrap()
        .remove("EC2InstanceId");
    api.invoke("inv-broken", broken);
    let launch = api.outcome("inv-launch").await;
    let broken = api.outcome("inv-broken").await;
    let logs = function.stop().await;

    assert_eq!(
        launch,
        Outcome::Response(
            json!({"recorded": "12345678-1234-1234-1234-123456789012", "stored": "created"})
        ),
        "{logs}"
    );
    let Outcome::Error { error_type, body } = broken else {
        panic!("{broken:?}\n{logs}")
    };
    assert!(
        error_type.is_some(),
        "the error carries Lambda-Runtime-Function-Error-Type"
    );
    let message = body["errorMessage"].as_str().unwrap_or_default();
    assert!(message.contains("detail.EC2InstanceId: missing"), "{body}");
    let docs = es.docs();
    assert_eq!(docs.len(), 1);
    assert_eq!(
        docs[0].0,
        "/node-events/_create/12345678-1234-1234-1234-123456789012"
    );
    assert_eq!(docs[0].2["transition"], "launch");
    assert_eq!(docs[0].2["instance_id"], "i-1234567890abcdef0");
}

#[tokio::test]
async fn without_es_url_the_function_stops_with_a_clear_message() {
    let api = RuntimeApi::start("analytics-ingest").await;
    let mut function = Function::start("analytics-ingest", &api, None).await;
    let status = tokio::time::timeout(Duration::from_secs(10), function.child.wait())
        .await
        .expect("exits within 10 s")
        .unwrap();
    let logs = function.stop().await;
    assert!(!status.success());
    assert!(logs.contains("ES_URL: not set"), "{logs}");
    assert_eq!(
        api.state.lock().unwrap().polls,
        0,
        "it never asked for an event"
    );
}
