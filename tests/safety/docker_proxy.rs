//! A loopback fault proxy in front of the Docker socket: the Swarm counterpart of the AWS fault
//! proxy (`test-support/src/proxy.rs`). The provider connects to `tcp://127.0.0.1:PORT`
//! ([`DockerProxy::host`]); each request is forwarded to the engine's unix socket, or not, as the
//! seeded dice say:
//!
//! * **500** with a Docker error body (`{"message": …}`): an error the provider treats as final;
//! * **503** `rpc error: code = Unavailable` (what a manager says while it has no raft leader):
//!   retryable;
//! * **reset before forwarding**: the connection is reset (TCP RST) and the engine never sees
//!   the request;
//! * **lost response**: the engine serves the request in full (the service *is* created), then
//!   the connection is reset, so the client can't know it happened;
//! * **latency spikes** on top of any of these.
//!
//! The engine is shared by every test, so it can't be paused; faulting its transport is what a
//! flaky network or an overloaded manager looks like to the provider. Faults are switched on
//! and off at run time ([`DockerProxy::set_faults`]), so a provider can connect cleanly first.
//! Like the AWS proxy, one RNG draws for every request in arrival order: with concurrent
//! requests only the sequence of draws is reproducible, not which request gets which.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderName};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::{TcpListener, TcpStream, UnixStream};
use tokio::sync::Notify;

/// What to inject. Rates are per request; the four fault rates are exclusive outcomes of one
/// draw.
#[derive(Clone, Debug)]
pub(crate) struct Faults {
    pub(crate) seed: u64,
    pub(crate) server_error: f64,
    pub(crate) unavailable: f64,
    pub(crate) reset_before: f64,
    pub(crate) lost_response: f64,
    pub(crate) spike_rate: f64,
    pub(crate) spike: Duration,
}

impl Faults {
    /// `rate` of the requests fail, spread evenly over the four kinds, plus 5 % latency spikes
    /// of 300 ms.
    pub(crate) fn chaos(seed: u64, rate: f64) -> Faults {
        Faults {
            seed,
            server_error: rate / 4.0,
            unavailable: rate / 4.0,
            reset_before: rate / 4.0,
            lost_response: rate / 4.0,
            spike_rate: 0.05,
            spike: Duration::from_millis(300),
        }
    }
}

/// What happened to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    None,
    ServerError,
    Unavailable,
    ResetBefore,
    LostResponse,
}

/// Counts, in total and by request kind (`POST /services/create`, with ids left out).
#[derive(Clone, Debug, Default)]
pub(crate) struct Stats {
    pub(crate) requests: u64,
    pub(crate) forwarded: u64,
    pub(crate) server_errors: u64,
    pub(crate) unavailable: u64,
    pub(crate) resets_before: u64,
    pub(crate) lost_responses: u64,
    pub(crate) spikes: u64,
    /// Faults by request kind.
    pub(crate) faults_by_kind: BTreeMap<String, u64>,
}

impl Stats {
    /// Requests that failed because of the proxy.
    pub(crate) fn faults(&self) -> u64 {
        self.server_errors + self.unavailable + self.resets_before + self.lost_responses
    }
    /// `self - earlier`, for one phase of a test.
    pub(crate) fn since(&self, earlier: &Stats) -> Stats {
        let mut by = self.faults_by_kind.clone();
        for (k, n) in &earlier.faults_by_kind {
            if let Some(v) = by.get_mut(k) {
                *v -= n;
            }
        }
        by.retain(|_, n| *n > 0);
        Stats {
            requests: self.requests - earlier.requests,
            forwarded: self.forwarded - earlier.forwarded,
            server_errors: self.server_errors - earlier.server_errors,
            unavailable: self.unavailable - earlier.unavailable,
            resets_before: self.resets_before - earlier.resets_before,
            lost_responses: self.lost_responses - earlier.lost_responses,
            spikes: self.spikes - earlier.spikes,
            faults_by_kind: by,
        }
    }
}

struct State {
    faults: Option<Faults>,
    rng: StdRng,
    stats: Stats,
}

struct Shared {
    socket: PathBuf,
    state: Mutex<State>,
}

/// The proxy; it runs until the test process ends.
pub(crate) struct DockerProxy {
    port: u16,
    shared: Arc<Shared>,
}

impl DockerProxy {
    /// Listens on a free loopback port, forwarding to the engine's unix socket (`DOCKER_HOST`
    /// when it is a `unix://` one, else `/var/run/docker.sock`). No faults until
    /// [`DockerProxy::set_faults`].
    pub(crate) async fn start() -> DockerProxy {
        let socket = std::env::var("DOCKER_HOST")
            .ok()
            .and_then(|h| h.strip_prefix("unix://").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("/var/run/docker.sock"));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            socket,
            state: Mutex::new(State {
                faults: None,
                rng: StdRng::seed_from_u64(0),
                stats: Stats::default(),
            }),
        });
        let s = shared.clone();
        tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        tokio::spawn(serve_connection(stream, s.clone()));
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
        });
        DockerProxy { port, shared }
    }

    /// `tcp://127.0.0.1:PORT`, for `SwarmProvider::connect_to` or `DOCKER_HOST`.
    pub(crate) fn host(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    /// Faults from now on (`None`: a transparent proxy). Reseeds the dice.
    pub(crate) fn set_faults(&self, faults: Option<Faults>) {
        let mut st = self.shared.state.lock().unwrap();
        st.rng = StdRng::seed_from_u64(faults.as_ref().map_or(0, |f| f.seed));
        st.faults = faults;
    }

    pub(crate) fn stats(&self) -> Stats {
        self.shared.state.lock().unwrap().stats.clone()
    }
}

/// `POST /v1.41/services/abc123/update?version=5` → `POST /services/{id}/update`.
fn kind_of(method: &str, path: &str) -> String {
    let mut parts: Vec<&str> = path
        .split('?')
        .next()
        .unwrap_or("")
        .split('/')
        .filter(|p| !p.is_empty())
        .collect();
    if parts.first().is_some_and(|p| p.starts_with('v')) {
        parts.remove(0);
    }
    let shaped: Vec<String> = parts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            if i == 1 && !["create", "prune"].contains(p) {
                "{id}".to_string()
            } else {
                p.to_string()
            }
        })
        .collect();
    format!("{method} /{}", shaped.join("/"))
}

impl Shared {
    fn decide(&self, kind: &str) -> (Fault, Duration) {
        let mut st = self.state.lock().unwrap();
        st.stats.requests += 1;
        let Some(f) = st.faults.clone() else {
            return (Fault::None, Duration::ZERO);
        };
        let u: f64 = st.rng.random();
        let spike: f64 = st.rng.random();
        let mut edge = 0.0;
        let mut fault = Fault::None;
        for (rate, kind) in [
            (f.server_error, Fault::ServerError),
            (f.unavailable, Fault::Unavailable),
            (f.reset_before, Fault::ResetBefore),
            (f.lost_response, Fault::LostResponse),
        ] {
            edge += rate;
            if u < edge {
                fault = kind;
                break;
            }
        }
        let delay = if spike < f.spike_rate {
            st.stats.spikes += 1;
            f.spike
        } else {
            Duration::ZERO
        };
        match fault {
            Fault::None => {}
            Fault::ServerError => st.stats.server_errors += 1,
            Fault::Unavailable => st.stats.unavailable += 1,
            Fault::ResetBefore => st.stats.resets_before += 1,
            Fault::LostResponse => st.stats.lost_responses += 1,
        }
        if fault != Fault::None {
            *st.stats.faults_by_kind.entry(kind.to_string()).or_default() += 1;
        }
        (fault, delay)
    }
}

struct Kill {
    reset: AtomicBool,
    notify: Notify,
}

async fn serve_connection(mut stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let kill = Arc::new(Kill {
        reset: AtomicBool::new(false),
        notify: Notify::new(),
    });
    {
        let k = kill.clone();
        let service = service_fn(move |req| handle(req, shared.clone(), k.clone()));
        let conn = hyper::server::conn::http1::Builder::new()
            .keep_alive(true)
            .serve_connection(TokioIo::new(&mut stream), service);
        tokio::select! {
            _ = conn => {}
            _ = kill.notify.notified() => {}
        }
    }
    if kill.reset.load(Ordering::SeqCst) {
        // SO_LINGER 0: the close is a TCP RST, the client sees ECONNRESET.
        let _ = stream.set_zero_linger();
    }
}

type Reply = Response<Full<Bytes>>;

async fn reset(kill: &Kill) -> Result<Reply, Infallible> {
    kill.reset.store(true, Ordering::SeqCst);
    kill.notify.notify_one();
    std::future::pending().await
}

fn docker_error(status: StatusCode, message: &str) -> Reply {
    let body = serde_json::json!({ "message": message }).to_string();
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
    kill: Arc<Kill>,
) -> Result<Reply, Infallible> {
    let (mut parts, body) = req.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return reset(&kill).await;
    };
    let kind = kind_of(parts.method.as_str(), parts.uri.path());
    let (fault, delay) = shared.decide(&kind);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    match fault {
        Fault::ServerError => {
            return Ok(docker_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "fault injected by the test proxy: internal server error",
            ))
        }
        Fault::Unavailable => {
            return Ok(docker_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "rpc error: code = Unavailable desc = fault injected by the test proxy",
            ))
        }
        Fault::ResetBefore => return reset(&kill).await,
        Fault::None | Fault::LostResponse => {}
    }
    for name in ["connection", "keep-alive", "te", "trailer", "upgrade"] {
        parts.headers.remove(HeaderName::from_static(name));
    }
    parts.headers.remove(header::TRANSFER_ENCODING);
    let upstream = forward(&shared.socket, parts, body).await;
    shared.state.lock().unwrap().stats.forwarded += 1;
    if fault == Fault::LostResponse {
        return reset(&kill).await;
    }
    Ok(upstream.unwrap_or_else(|e| docker_error(StatusCode::BAD_GATEWAY, &e)))
}

/// One request over a fresh unix-socket connection; the whole response is buffered, so a lost
/// response is dropped only after the engine has served it.
async fn forward(
    socket: &PathBuf,
    parts: http::request::Parts,
    body: Bytes,
) -> Result<Reply, String> {
    let stream = UnixStream::connect(socket)
        .await
        .map_err(|e| format!("proxy: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("proxy: {e}"))?;
    tokio::spawn(conn);
    let response = sender
        .send_request(Request::from_parts(parts, Full::new(body)))
        .await
        .map_err(|e| format!("proxy: {e}"))?;
    let (mut parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| format!("proxy: {e}"))?
        .to_bytes();
    parts.headers.remove(header::TRANSFER_ENCODING);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::CONNECTION);
    Ok(Response::from_parts(parts, Full::new(body)))
}

#[cfg(test)]
mod tests {
    use super::kind_of;

    #[test]
    fn request_kinds_leave_ids_out() {
        assert_eq!(
            kind_of("POST", "/v1.41/services/abc/update"),
            "POST /services/{id}/update"
        );
        assert_eq!(
            kind_of("POST", "/v1.41/services/create"),
            "POST /services/create"
        );
        assert_eq!(kind_of("GET", "/v1.41/services"), "GET /services");
        assert_eq!(
            kind_of("DELETE", "/v1.41/secrets/x"),
            "DELETE /secrets/{id}"
        );
    }
}
