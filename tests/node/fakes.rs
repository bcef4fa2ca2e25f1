//! Loopback stand-ins for what the agent talks to besides moto, each a tiny HTTP server:
//!
//! * [`Imds`]: an IMDSv2 endpoint for one instance (token PUT, token-checked GETs, a target
//!   lifecycle state the test can switch to `Terminated`), or one that accepts connections and
//!   never answers ([`silent`]);
//! * [`Engine`]: a fake Docker Engine API with one node (swarm init / join / leave, node list,
//!   inspect, update, rm, containers) that records every call, so that the agent's Docker steps
//!   run without a second dockerd (the cluster lab brings real ones);
//! * [`deny_ssm`]: an SSM endpoint refusing every call with `AccessDeniedException` (what the
//!   node role's policy does to a parameter outside `/infra/<stack>/*`).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Method, Response};
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;

/// What a handler answers: status, content type, body.
pub(crate) type Answer = (u16, &'static str, String);

/// An answer with extra response headers.
type Reply = (Answer, Vec<(&'static str, String)>);

type Handler = Arc<dyn Fn(&Method, &str, &HeaderMap, &[u8]) -> Reply + Send + Sync>;

/// Serves `handler` on a fresh loopback port until the test's runtime ends.
async fn serve(handler: Handler) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let handler = handler.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let ((status, content_type, text), headers) =
                            handler(&parts.method, &parts.uri.to_string(), &parts.headers, &body);
                        let mut response = Response::builder()
                            .status(status)
                            .header("content-type", content_type);
                        for (name, value) in headers {
                            response = response.header(name, value);
                        }
                        Ok::<_, Infallible>(
                            response
                                .body(Full::new(Bytes::from(text)))
                                .expect("response"),
                        )
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// An endpoint that accepts connections and never answers (they are held open).
pub(crate) async fn silent() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    format!("http://{addr}")
}

/// A loopback port nothing listens on (bound, then released).
pub(crate) fn closed() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    format!("http://127.0.0.1:{port}")
}

// ---------------------------------------------------------------------------------------------
// IMDS

/// The IMDSv2 session token this fake hands out.
const IMDS_TOKEN: &str = "imds-session-7f3a";

/// An IMDSv2 endpoint serving one instance's metadata.
#[derive(Clone)]
pub(crate) struct Imds {
    /// `http://127.0.0.1:<port>`.
    pub(crate) url: String,
    values: Arc<Mutex<BTreeMap<String, String>>>,
    /// Requests without a valid session token (answered 401).
    pub(crate) unauthorised: Arc<Mutex<u32>>,
}

impl Imds {
    /// Serves `instance` in `az` with private IP `ip`, target lifecycle state `InService`.
    pub(crate) async fn start(instance: &str, az: &str, ip: &str) -> Imds {
        let region = az.trim_end_matches(|c: char| c.is_ascii_alphabetic());
        let values = Arc::new(Mutex::new(BTreeMap::from([
            ("instance-id".to_string(), instance.to_string()),
            ("placement/availability-zone".to_string(), az.to_string()),
            ("placement/region".to_string(), region.to_string()),
            ("local-ipv4".to_string(), ip.to_string()),
            (
                "autoscaling/target-lifecycle-state".to_string(),
                "InService".to_string(),
            ),
        ])));
        let unauthorised = Arc::new(Mutex::new(0));
        let (v, u) = (values.clone(), unauthorised.clone());
        let addr = serve(Arc::new(move |method, path, headers, _body| {
            if *method == Method::PUT && path == "/latest/api/token" {
                // As EC2 does: the token's TTL comes back in a header (the SDK requires it).
                return match headers
                    .get("x-aws-ec2-metadata-token-ttl-seconds")
                    .and_then(|t| t.to_str().ok())
                {
                    Some(ttl) => (
                        (200, "text/plain", IMDS_TOKEN.to_string()),
                        vec![("x-aws-ec2-metadata-token-ttl-seconds", ttl.to_string())],
                    ),
                    None => (
                        (400, "text/plain", "missing TTL header".to_string()),
                        vec![],
                    ),
                };
            }
            let token = headers
                .get("x-aws-ec2-metadata-token")
                .and_then(|t| t.to_str().ok());
            if token != Some(IMDS_TOKEN) {
                *u.lock().unwrap() += 1;
                return ((401, "text/plain", String::new()), vec![]);
            }
            let answer = match path
                .strip_prefix("/latest/meta-data/")
                .and_then(|p| v.lock().unwrap().get(p).cloned())
            {
                Some(value) if *method == Method::GET => (200, "text/plain", value),
                _ => (404, "text/plain", "Not Found".to_string()),
            };
            (answer, vec![])
        }))
        .await;
        Imds {
            url: format!("http://{addr}"),
            values,
            unauthorised,
        }
    }

    /// Sets the target lifecycle state (`Terminated` tells the agent to leave).
    pub(crate) fn set_lifecycle(&self, state: &str) {
        self.values.lock().unwrap().insert(
            "autoscaling/target-lifecycle-state".to_string(),
            state.to_string(),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Docker Engine

/// How the fake engine answers `swarm join`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum JoinMode {
    /// The join goes through.
    Ok,
    /// The managers refuse the token (what dockerd says for a wrong token).
    BadToken,
    /// The first join fails as an unreachable manager does; later ones go through.
    UnreachableFirst,
}

/// The fake engine's state.
#[derive(Debug)]
pub(crate) struct EngineState {
    /// `inactive` or `active`.
    pub(crate) state: String,
    /// This node's ID (once in a swarm).
    pub(crate) node_id: String,
    /// Whether this node is a manager.
    pub(crate) manager: bool,
    /// This node's spec: labels, role, availability; and its version.
    pub(crate) labels: BTreeMap<String, String>,
    /// `active` / `drain`.
    pub(crate) availability: String,
    /// Spec version.
    pub(crate) version: u64,
    /// How `swarm join` is answered.
    pub(crate) join: JoinMode,
    /// Other nodes of the swarm (as the API shows them), e.g. a dead one.
    pub(crate) others: Vec<Value>,
    /// Every call: `METHOD /path?query` (API version stripped).
    pub(crate) calls: Vec<String>,
    /// Bodies of `swarm init` and `swarm join` and node updates, in order: (call, body).
    pub(crate) bodies: Vec<(String, Value)>,
    /// The tokens `swarm inspect` reports: (worker, manager).
    pub(crate) tokens: (String, String),
}

/// A fake Docker Engine API (one node) over TCP.
#[derive(Clone)]
pub(crate) struct Engine {
    /// `tcp://127.0.0.1:<port>` (for `DOCKER_HOST`).
    pub(crate) host: String,
    /// Its state, for the test to read and change.
    pub(crate) state: Arc<Mutex<EngineState>>,
}

fn strip_version(path: &str) -> &str {
    // /v1.41/info → /info
    match path.strip_prefix("/v") {
        Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => {
            rest.find('/').map(|i| &rest[i..]).unwrap_or(path)
        }
        _ => path,
    }
}

fn error(status: u16, message: &str) -> Answer {
    (
        status,
        "application/json",
        json!({ "message": message }).to_string(),
    )
}

fn ok(v: Value) -> Answer {
    (200, "application/json", v.to_string())
}

impl EngineState {
    fn own_node(&self) -> Value {
        json!({
            "ID": self.node_id,
            "Version": {"Index": self.version},
            "Spec": {
                "Labels": self.labels,
                "Role": if self.manager { "manager" } else { "worker" },
                "Availability": self.availability,
            },
            "Status": {"State": "ready", "Addr": "127.0.0.1"},
            "ManagerStatus": if self.manager {
                json!({"Leader": true, "Reachability": "reachable", "Addr": "127.0.0.1:2377"})
            } else {
                Value::Null
            },
        })
    }

    fn handle(&mut self, method: &Method, path: &str, body: &[u8]) -> Answer {
        let path = strip_version(path).to_string();
        self.calls.push(format!("{method} {path}"));
        let (route, _query) = path.split_once('?').unwrap_or((&path, ""));
        let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let active = self.state == "active";
        match (method.as_str(), route) {
            ("GET", "/version") => ok(json!({
                "ApiVersion": "1.41", "MinAPIVersion": "1.12", "Version": "20.10.24"
            })),
            ("GET", "/_ping") => (200, "text/plain", "OK".into()),
            ("GET", "/info") => ok(json!({"Swarm": {
                "LocalNodeState": self.state,
                "NodeID": if active { self.node_id.clone() } else { String::new() },
                "ControlAvailable": active && self.manager,
            }})),
            ("POST", "/swarm/init") => {
                self.bodies.push(("init".into(), body));
                if active {
                    return error(503, "This node is already part of a swarm. Use \"docker swarm leave\" to leave this swarm and join another one.");
                }
                self.state = "active".into();
                self.manager = true;
                ok(json!(self.node_id))
            }
            ("POST", "/swarm/join") => {
                self.bodies.push(("join".into(), body.clone()));
                if active {
                    return error(503, "This node is already part of a swarm. Use \"docker swarm leave\" to leave this swarm and join another one.");
                }
                match self.join {
                    JoinMode::UnreachableFirst if self.bodies.iter().filter(|(n, _)| n == "join").count() == 1 => {
                        error(500, "rpc error: code = Unavailable desc = connection error: desc = \"transport: Error while dialing dial tcp 10.77.10.9:2377: connect: connection refused\"")
                    }
                    JoinMode::Ok | JoinMode::UnreachableFirst => {
                        // The fake tokens say their role (SWMTKN-1-<node>-manager-secret).
                        self.manager = body["JoinToken"]
                            .as_str()
                            .is_some_and(|t| t.contains("-manager-"));
                        self.state = "active".into();
                        (200, "text/plain", String::new())
                    }
                    JoinMode::BadToken => error(500, "rpc error: code = InvalidArgument desc = A valid join token is necessary to join this cluster"),
                }
            }
            ("POST", "/swarm/leave") => {
                if !active {
                    return error(503, "This node is not part of a swarm");
                }
                self.state = "inactive".into();
                self.manager = false;
                (200, "text/plain", String::new())
            }
            ("GET", "/swarm") if active && self.manager => ok(json!({
                "ID": "fake-swarm",
                "JoinTokens": {"Worker": self.tokens.0, "Manager": self.tokens.1},
            })),
            ("GET", "/nodes") if active && self.manager => {
                let mut nodes = vec![self.own_node()];
                nodes.extend(self.others.iter().cloned());
                ok(Value::Array(nodes))
            }
            ("GET", "/containers/json") => ok(json!([])),
            (_, r) if r.starts_with("/nodes/") && active && self.manager => {
                let rest = &r["/nodes/".len()..];
                let (id, update) = match rest.strip_suffix("/update") {
                    Some(id) => (id, true),
                    None => (rest, false),
                };
                let own = id == self.node_id;
                match (method.as_str(), update) {
                    ("GET", false) if own => ok(self.own_node()),
                    ("GET", false) => match self.others.iter().find(|n| n["ID"] == id) {
                        Some(n) => ok(n.clone()),
                        None => error(404, &format!("node {id} not found")),
                    },
                    ("POST", true) => {
                        self.bodies.push((format!("update {id}"), body.clone()));
                        if own {
                            self.labels = serde_json::from_value(body["Labels"].clone())
                                .unwrap_or_default();
                            self.availability =
                                body["Availability"].as_str().unwrap_or("active").into();
                            self.manager = body["Role"] != "worker";
                            self.version += 1;
                            return (200, "text/plain", String::new());
                        }
                        match self.others.iter_mut().find(|n| n["ID"] == id) {
                            Some(n) => {
                                n["Spec"] = body;
                                (200, "text/plain", String::new())
                            }
                            None => error(404, &format!("node {id} not found")),
                        }
                    }
                    ("DELETE", false) => {
                        let before = self.others.len();
                        self.others.retain(|n| n["ID"] != id);
                        if self.others.len() < before {
                            (200, "text/plain", String::new())
                        } else {
                            error(404, &format!("node {id} not found"))
                        }
                    }
                    _ => error(400, "unexpected node call"),
                }
            }
            (_, r) if r.starts_with("/nodes") || r == "/swarm" => error(
                503,
                "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.",
            ),
            _ => error(404, &format!("page not found: {method} {route}")),
        }
    }
}

impl Engine {
    /// An engine not in a swarm, whose node (once in one) is `node_id`, with distinct tokens.
    pub(crate) async fn start(node_id: &str, join: JoinMode) -> Engine {
        let state = Arc::new(Mutex::new(EngineState {
            state: "inactive".into(),
            node_id: node_id.into(),
            manager: false,
            labels: BTreeMap::new(),
            availability: "active".into(),
            version: 1,
            join,
            others: Vec::new(),
            calls: Vec::new(),
            bodies: Vec::new(),
            tokens: (
                format!("SWMTKN-1-{node_id}-worker-secret"),
                format!("SWMTKN-1-{node_id}-manager-secret"),
            ),
        }));
        let s = state.clone();
        let addr = serve(Arc::new(move |method, path, _headers, body| {
            (s.lock().unwrap().handle(method, path, body), vec![])
        }))
        .await;
        Engine {
            host: format!("tcp://{addr}"),
            state,
        }
    }

    /// Calls made so far matching `prefix` (`POST /swarm/init`).
    pub(crate) fn calls(&self, prefix: &str) -> Vec<String> {
        self.state
            .lock()
            .unwrap()
            .calls
            .iter()
            .filter(|c| c.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// Bodies of calls named `name` (`init`, `join`, `update <id>`).
    pub(crate) fn bodies(&self, name: &str) -> Vec<Value> {
        self.state
            .lock()
            .unwrap()
            .bodies
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, b)| b.clone())
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// SSM refusing everything

/// An SSM endpoint (awsJson 1.1) that refuses every call: what the node role's policy does to a
/// parameter it does not cover. Returns its URL and the `X-Amz-Target`s it was sent.
pub(crate) async fn deny_ssm() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let addr = serve(Arc::new(move |_method, _path, headers, body| {
        let target = headers
            .get("x-amz-target")
            .and_then(|t| t.to_str().ok())
            .unwrap_or("")
            .to_string();
        let name = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|b| b["Name"].as_str().map(str::to_string))
            .unwrap_or_default();
        s.lock().unwrap().push(format!("{target} {name}"));
        let answer = (
            400,
            "application/x-amz-json-1.1",
            json!({
                "__type": "AccessDeniedException",
                "message": format!("User: arn:aws:sts::123456789012:assumed-role/infra-node/i-0 is not authorized to perform: ssm:GetParameter on resource: arn:aws:ssm:us-east-1:123456789012:parameter{name} because no identity-based policy allows the ssm:GetParameter action"),
            })
            .to_string(),
        );
        (answer, vec![])
    }))
    .await;
    (format!("http://{addr}"), seen)
}
