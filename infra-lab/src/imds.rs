//! The instance metadata service of one node (IMDSv2), as issue 11's contract fixes it: a token
//! from `PUT /latest/api/token` (header `X-aws-ec2-metadata-token-ttl-seconds: 1..=21600`), and
//! every `GET` carrying it in `X-aws-ec2-metadata-token` (401 without a valid one).
//!
//! Served on `127.0.0.1:<ephemeral port>` in the host's namespace, where the node's agent runs
//! (`INFRA_NODE_IMDS_ENDPOINT=http://127.0.0.1:<port>`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the metadata service says about its instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// `i-…`
    pub instance_id: String,
    /// The full zone name, e.g. `us-east-1b` (chosen by the lab: moto puts every ASG instance in
    /// the first subnet's zone).
    pub az: String,
    /// e.g. `us-east-1`
    pub region: String,
    /// The instance's private IPv4 address (moto's), e.g. `10.9.10.5`.
    pub ip: String,
}

/// A fault the metadata service plays, for bad-input tests of the agent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ImdsFault {
    /// Answers as the contract says.
    #[default]
    None,
    /// Accepts connections and requests, never answers (each request is held for up to an hour,
    /// or until the node stops).
    NeverAnswer,
    /// Answers every request, the token `PUT` included, with this HTTP status and an empty body.
    Status(u16),
}

/// The longest a token may live, as on EC2.
pub const MAX_TOKEN_TTL: u64 = 21_600;

struct State {
    identity: Identity,
    lifecycle: &'static str,
    fault: ImdsFault,
    tokens: HashMap<String, Instant>,
    requests: u64,
    unauthorized: u64,
}

/// One node's running metadata service. Stopping it (or dropping it) closes its listener and
/// ends every open connection, held ones included.
pub struct ImdsServer {
    state: Arc<Mutex<State>>,
    addr: SocketAddr,
    closed: watch::Sender<bool>,
    accept: JoinHandle<()>,
}

impl std::fmt::Debug for ImdsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImdsServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl ImdsServer {
    /// Binds `127.0.0.1:0` and serves `identity` (target lifecycle state `InService`).
    pub async fn start(identity: Identity, fault: ImdsFault) -> std::io::Result<ImdsServer> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State {
            identity,
            lifecycle: "InService",
            fault,
            tokens: HashMap::new(),
            requests: 0,
            unauthorized: 0,
        }));
        let (closed, closed_rx) = watch::channel(false);
        let st = state.clone();
        // runs until the server is stopped (the task is aborted, every connection told to close)
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let st = st.clone();
                let mut closed = closed_rx.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| handle(st.clone(), req));
                    let conn =
                        http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                    tokio::select! {
                        _ = conn => {}
                        _ = closed.wait_for(|c| *c) => {}
                    }
                });
            }
        });
        Ok(ImdsServer {
            state,
            addr,
            closed,
            accept,
        })
    }

    /// `http://127.0.0.1:<port>`, the agent's `INFRA_NODE_IMDS_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Plays `fault` from now on.
    pub fn set_fault(&self, fault: ImdsFault) {
        self.lock().fault = fault;
    }

    /// `autoscaling/target-lifecycle-state` answers `Terminated` from now on.
    pub fn set_terminating(&self) {
        self.lock().lifecycle = "Terminated";
    }

    /// What `autoscaling/target-lifecycle-state` answers now.
    pub fn lifecycle_state(&self) -> &'static str {
        self.lock().lifecycle
    }

    /// Requests served so far, and how many of them were refused for want of a valid token.
    pub fn request_counts(&self) -> (u64, u64) {
        let s = self.lock();
        (s.requests, s.unauthorized)
    }

    /// Closes the listener and every connection.
    pub fn stop(&self) {
        let _ = self.closed.send(true);
        self.accept.abort();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for ImdsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn new_token() -> String {
    static N: AtomicU64 = AtomicU64::new(1);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!(
        "AQAE{:016x}{:016x}",
        nanos.rotate_left(17) ^ u64::from(std::process::id()),
        n.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    )
}

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        "text/plain".parse().expect("static"),
    );
    r
}

async fn handle(
    state: Arc<Mutex<State>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let fault = {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        s.requests += 1;
        s.fault
    };
    match fault {
        ImdsFault::None => {}
        ImdsFault::NeverAnswer => {
            // held until the client gives up or the server stops (bounded: one hour)
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return Ok(reply(StatusCode::SERVICE_UNAVAILABLE, ""));
        }
        ImdsFault::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return Ok(reply(status, ""));
        }
    }
    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
    Ok(answer(&mut s, &req))
}

fn answer(s: &mut State, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    if path == "/latest/api/token" {
        if req.method() != Method::PUT {
            return reply(StatusCode::METHOD_NOT_ALLOWED, "");
        }
        let ttl = req
            .headers()
            .get("x-aws-ec2-metadata-token-ttl-seconds")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let Some(ttl) = ttl.filter(|t| (1..=MAX_TOKEN_TTL).contains(t)) else {
            return reply(StatusCode::BAD_REQUEST, "");
        };
        let now = Instant::now();
        s.tokens.retain(|_, exp| *exp > now);
        let token = new_token();
        s.tokens
            .insert(token.clone(), now + Duration::from_secs(ttl));
        let mut r = reply(StatusCode::OK, token);
        r.headers_mut().insert(
            "x-aws-ec2-metadata-token-ttl-seconds",
            ttl.to_string().parse().expect("digits"),
        );
        return r;
    }
    if req.method() != Method::GET {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "");
    }
    let valid = req
        .headers()
        .get("x-aws-ec2-metadata-token")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| s.tokens.get(t))
        .is_some_and(|exp| *exp > Instant::now());
    if !valid {
        s.unauthorized += 1;
        return reply(StatusCode::UNAUTHORIZED, "");
    }
    let id = &s.identity;
    let host = format!("ip-{}.ec2.internal", id.ip.replace('.', "-"));
    let body = match path {
        "/latest/meta-data/instance-id" => id.instance_id.clone(),
        "/latest/meta-data/placement/availability-zone" => id.az.clone(),
        "/latest/meta-data/placement/region" => id.region.clone(),
        "/latest/meta-data/local-ipv4" => id.ip.clone(),
        "/latest/meta-data/hostname" | "/latest/meta-data/local-hostname" => host,
        "/latest/meta-data/autoscaling/target-lifecycle-state" => s.lifecycle.to_string(),
        "/latest/meta-data" | "/latest/meta-data/" => {
            "autoscaling/\nhostname\ninstance-id\nlocal-hostname\nlocal-ipv4\nplacement/".into()
        }
        "/latest/meta-data/placement" | "/latest/meta-data/placement/" => {
            "availability-zone\nregion".into()
        }
        "/latest/meta-data/autoscaling" | "/latest/meta-data/autoscaling/" => {
            "target-lifecycle-state".into()
        }
        "/latest/dynamic/instance-identity/document" => serde_json::json!({
            "instanceId": id.instance_id,
            "availabilityZone": id.az,
            "region": id.region,
            "privateIp": id.ip,
            "accountId": "123456789012",
        })
        .to_string(),
        _ => return reply(StatusCode::NOT_FOUND, ""),
    };
    reply(StatusCode::OK, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn identity() -> Identity {
        Identity {
            instance_id: "i-0123456789abcdef0".into(),
            az: "us-east-1b".into(),
            region: "us-east-1".into(),
            ip: "10.9.10.5".into(),
        }
    }

    /// One raw HTTP/1.1 request: (status, body).
    async fn raw(
        endpoint: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, String) {
        let addr = endpoint.trim_start_matches("http://");
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("Content-Length: 0\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out))
            .await
            .expect("an answer")
            .unwrap();
        let status = out
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = out.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
        (status, body)
    }

    #[tokio::test]
    async fn serves_the_contract_to_the_sdk_client() {
        let server = ImdsServer::start(identity(), ImdsFault::None)
            .await
            .unwrap();
        let client = aws_config::imds::Client::builder()
            .endpoint(server.endpoint())
            .unwrap()
            .build();
        let get = |p: &'static str| {
            let c = client.clone();
            async move { c.get(p).await.map(|s| s.as_ref().to_string()).unwrap() }
        };
        assert_eq!(
            get("/latest/meta-data/instance-id").await,
            "i-0123456789abcdef0"
        );
        assert_eq!(
            get("/latest/meta-data/placement/availability-zone").await,
            "us-east-1b"
        );
        assert_eq!(get("/latest/meta-data/placement/region").await, "us-east-1");
        assert_eq!(get("/latest/meta-data/local-ipv4").await, "10.9.10.5");
        let state = "/latest/meta-data/autoscaling/target-lifecycle-state";
        assert_eq!(get(state).await, "InService");
        server.set_terminating();
        assert_eq!(get(state).await, "Terminated");
        assert!(client.get("/latest/meta-data/nothing-here").await.is_err());
        let (requests, unauthorized) = server.request_counts();
        assert!(
            requests >= 7 && unauthorized == 0,
            "{requests} {unauthorized}"
        );
    }

    #[tokio::test]
    async fn every_get_needs_a_valid_token() {
        let server = ImdsServer::start(identity(), ImdsFault::None)
            .await
            .unwrap();
        let ep = server.endpoint();
        let id = "/latest/meta-data/instance-id";
        assert_eq!(raw(&ep, "GET", id, &[]).await.0, 401);
        assert_eq!(
            raw(&ep, "GET", id, &[("X-aws-ec2-metadata-token", "forged")])
                .await
                .0,
            401
        );
        // the token PUT needs a TTL of 1..=21600 s, and is a PUT
        assert_eq!(raw(&ep, "PUT", "/latest/api/token", &[]).await.0, 400);
        let ttl = "X-aws-ec2-metadata-token-ttl-seconds";
        assert_eq!(
            raw(&ep, "PUT", "/latest/api/token", &[(ttl, "0")]).await.0,
            400
        );
        assert_eq!(
            raw(&ep, "PUT", "/latest/api/token", &[(ttl, "21601")])
                .await
                .0,
            400
        );
        assert_eq!(
            raw(&ep, "GET", "/latest/api/token", &[(ttl, "60")]).await.0,
            405
        );
        let (status, token) = raw(&ep, "PUT", "/latest/api/token", &[(ttl, "1")]).await;
        assert_eq!(status, 200);
        let (status, body) = raw(&ep, "GET", id, &[("X-aws-ec2-metadata-token", &token)]).await;
        assert_eq!((status, body.as_str()), (200, "i-0123456789abcdef0"));
        // tokens expire
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(
            raw(&ep, "GET", id, &[("X-aws-ec2-metadata-token", &token)])
                .await
                .0,
            401
        );
        assert_eq!(server.request_counts().1, 3);
    }

    #[tokio::test]
    async fn faults_are_played_and_stopping_ends_held_requests() {
        let server = ImdsServer::start(identity(), ImdsFault::Status(500))
            .await
            .unwrap();
        let ep = server.endpoint();
        let ttl = ("X-aws-ec2-metadata-token-ttl-seconds", "60");
        assert_eq!(raw(&ep, "PUT", "/latest/api/token", &[ttl]).await.0, 500);
        server.set_fault(ImdsFault::NeverAnswer);
        let client = aws_config::imds::Client::builder()
            .endpoint(&ep)
            .unwrap()
            .max_attempts(1)
            .read_timeout(Duration::from_millis(300))
            .build();
        let t = Instant::now();
        assert!(client.get("/latest/meta-data/instance-id").await.is_err());
        assert!(t.elapsed() < Duration::from_secs(5));
        // a held request ends when the server stops
        let held = tokio::spawn({
            let ep = ep.clone();
            async move {
                let addr = ep.trim_start_matches("http://").to_string();
                let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
                s.write_all(b"PUT /latest/api/token HTTP/1.1\r\nHost: x\r\nX-aws-ec2-metadata-token-ttl-seconds: 60\r\nContent-Length: 0\r\n\r\n")
                    .await
                    .unwrap();
                let mut buf = Vec::new();
                let _ = s.read_to_end(&mut buf).await;
                buf.len()
            }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        server.stop();
        let got = tokio::time::timeout(Duration::from_secs(5), held)
            .await
            .expect("the held connection closes when the server stops")
            .unwrap();
        assert_eq!(got, 0, "no answer, just closed");
    }
}
