//! A loopback HTTP proxy for tests that sits between an AWS SDK client and moto and injects the
//! faults real AWS produces: latency (constant, jitter, spikes), throttling errors, HTTP 500/503,
//! connections reset before the request reaches the service, and responses lost after the service
//! acted on the request.
//!
//! Why a proxy and not a mock: the code under test must be exercised through the real SDK stack
//! (signing, retry classifiers, connection pool) against a real endpoint whose state we can inspect
//! afterwards. A lost response is only meaningful if the create really happened upstream, and only a
//! proxy in front of a stateful server can produce that.
//!
//! Why one file over 600 lines: test support, not product code; the fault plan, the HTTP/1.1
//! forwarding and the statistics share one connection state, and splitting them would spread
//! that state across modules for no reader's benefit. How a call is named (operation, service,
//! protocol) is its own module, `operation`.
//!
//! Use it from a test binary (a dev-dependency on `infra-test-support`) like this:
//!
//! ```ignore
//! let proxy = FaultProxy::start("http://127.0.0.1:5599", FaultConfig::chaos(7, 0.15)).await?;
//! let ec2 = aws_sdk_ec2::Client::from_conf(
//!     aws_sdk_ec2::Config::builder().endpoint_url(proxy.url()) /* … */ .build(),
//! );
//! // … run the code under test …
//! proxy.set_config(FaultConfig::transparent()); // faults off for the converging re-run
//! assert!(proxy.stats().total.faults() > 0);
//! ```
//!
//! Semantics worth knowing:
//! - Every request draws the same number of random values from one seeded RNG, in arrival order, so
//!   a sequential request stream with a given seed always gets the same faults, and changing one rate
//!   does not shift the dice for the others. With concurrent requests arrival order decides which
//!   request gets which draw, so only the sequence of draws is reproducible.
//! - Faults (and spikes) are only injected into AWS API calls whose operation could be named: the
//!   `Action` parameter of the query protocols (EC2, Auto Scaling, IAM, ELBv2), the `X-Amz-Target`
//!   header of the JSON protocols (`AmazonSSM.PutParameter` → `PutParameter`; SSM, EventBridge),
//!   or, for the REST-JSON services this project calls (Lambda, API Gateway v2), the method and
//!   path matched against a table of their operations ([`rest_operation`]); optionally restricted
//!   to [`FaultConfig::only_actions`]. Anything else (e.g. `/moto-api/…`, a REST path not in the
//!   table) is forwarded untouched, apart from the base latency, which applies to every request.
//! - Error bodies follow the protocol of the target service so that the SDK parses the error code:
//!   EC2's `<Response><Errors>…` shape for `ec2`, the awsQuery `<ErrorResponse>` shape for the
//!   other query services, `{"__type": …}` for the JSON protocols and the `x-amzn-ErrorType`
//!   header with a JSON body for REST-JSON. Throttling is what each service really sends: EC2 503
//!   `RequestLimitExceeded`, awsQuery 400 `Throttling`, JSON 400 `ThrottlingException`, REST-JSON
//!   429 `TooManyRequestsException`.
//! - A reset or lost response closes the client connection with `SO_LINGER` 0, i.e. a TCP RST,
//!   which is what a load balancer or a crashed frontend produces; the SDK reports a dispatch (IO)
//!   failure in both cases and cannot tell whether the request took effect.
//!
//! Not supported (not needed by this project): HTTPS, REST-XML services (S3, Route 53), streaming
//! bodies (request and response bodies are buffered, AWS API calls here are small).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

mod operation;

pub use operation::rest_operation;
use operation::{operation, service_of, Protocol};

/// What to inject, per request. Rates are probabilities in `0.0..=1.0`; the four fault rates are
/// mutually exclusive outcomes of one draw, so their sum must not exceed 1.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultConfig {
    /// Seed of the RNG that decides faults, jitter and spikes; reapplied by
    /// [`FaultProxy::set_config`] so each phase of a test is reproducible on its own.
    pub seed: u64,
    /// Added to every request before it is answered or forwarded.
    pub latency: Duration,
    /// Uniformly random extra latency in `0..latency_jitter`, per request.
    pub latency_jitter: Duration,
    /// Probability that an eligible request additionally waits [`FaultConfig::spike`].
    pub spike_rate: f64,
    /// The extra wait of a latency spike.
    pub spike: Duration,
    /// Answer with the service's throttling error (`RequestLimitExceeded` for EC2, `Throttling`
    /// for the awsQuery services) without forwarding.
    pub throttle_rate: f64,
    /// Answer with 500 `InternalError` or 503 `ServiceUnavailable` (half each) without forwarding.
    pub error_5xx_rate: f64,
    /// Reset the connection without forwarding: the request had no effect.
    pub reset_before_rate: f64,
    /// Forward, wait for the upstream response, then reset the connection instead of answering:
    /// the request took effect but the client never hears about it.
    pub lost_response_rate: f64,
    /// If set, only these actions (e.g. `"CreateVpc"`) get faults and spikes; others only latency.
    pub only_actions: Option<Vec<String>>,
}

impl Default for FaultConfig {
    fn default() -> Self {
        Self::transparent()
    }
}

impl FaultConfig {
    /// No latency, no faults: the proxy only forwards (and counts).
    pub fn transparent() -> Self {
        Self {
            seed: 0,
            latency: Duration::ZERO,
            latency_jitter: Duration::ZERO,
            spike_rate: 0.0,
            spike: Duration::ZERO,
            throttle_rate: 0.0,
            error_5xx_rate: 0.0,
            reset_before_rate: 0.0,
            lost_response_rate: 0.0,
            only_actions: None,
        }
    }

    /// A constant added latency and nothing else (the apply-concurrency benchmark's setting).
    pub fn with_latency(latency: Duration) -> Self {
        Self {
            latency,
            ..Self::transparent()
        }
    }

    /// A total fault rate spread evenly over the four fault kinds, for "apply with 10–20 % faults"
    /// style tests.
    pub fn chaos(seed: u64, total_fault_rate: f64) -> Self {
        let each = total_fault_rate / 4.0;
        Self {
            seed,
            throttle_rate: each,
            error_5xx_rate: each,
            reset_before_rate: each,
            lost_response_rate: each,
            ..Self::transparent()
        }
    }

    /// Panics with a readable message on a rate outside `0..=1` or fault rates summing above 1:
    /// a misconfigured fault test would otherwise silently test something else.
    fn validate(&self) {
        let rates = [
            ("spike_rate", self.spike_rate),
            ("throttle_rate", self.throttle_rate),
            ("error_5xx_rate", self.error_5xx_rate),
            ("reset_before_rate", self.reset_before_rate),
            ("lost_response_rate", self.lost_response_rate),
        ];
        for (name, rate) in rates {
            assert!(
                (0.0..=1.0).contains(&rate),
                "FaultConfig::{name} = {rate} is not a probability in 0..=1"
            );
        }
        let sum = self.fault_rate_sum();
        assert!(
            sum <= 1.0 + 1e-9,
            "FaultConfig fault rates sum to {sum} > 1 (they are exclusive outcomes of one draw)"
        );
    }

    fn fault_rate_sum(&self) -> f64 {
        self.throttle_rate + self.error_5xx_rate + self.reset_before_rate + self.lost_response_rate
    }

    fn applies_to(&self, action: Option<&str>) -> bool {
        match (action, &self.only_actions) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(action), Some(only)) => only.iter().any(|a| a == action),
        }
    }
}

/// The fault injected into one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Forwarded and answered normally.
    None,
    /// Answered with the protocol's throttling error, not forwarded.
    Throttle,
    /// Answered with this 5xx status and a matching error body, not forwarded.
    ServerError(u16),
    /// Connection reset, not forwarded.
    ResetBefore,
    /// Forwarded, then the connection was reset instead of answering.
    LostResponse,
}

/// One request as the proxy saw and decided it, in arrival order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// 0-based arrival index since start or the last [`FaultProxy::set_config`].
    pub seq: u64,
    /// The API operation (`CreateVpc`, `PutParameter`), if the request was an AWS call the proxy
    /// could name (see the module docs).
    pub action: Option<String>,
    /// The signing name of the target service (`ec2`, `iam`, `autoscaling`), if known.
    pub service: Option<String>,
    /// What was injected.
    pub fault: Fault,
    /// Total delay added before answering or forwarding (latency + jitter + spike).
    pub delay: Duration,
    /// Whether this request got a latency spike.
    pub spiked: bool,
}

/// Counters, both overall and per action.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Requests received.
    pub requests: u64,
    /// Requests the proxy sent (or tried to send) upstream, including those whose response was
    /// then lost.
    pub forwarded: u64,
    /// Upstream responses passed back to the client.
    pub delivered: u64,
    /// Throttling errors injected.
    pub throttled: u64,
    /// 500/503 errors injected.
    pub server_errors: u64,
    /// Connections reset before forwarding.
    pub resets_before: u64,
    /// Responses dropped after the upstream served the request.
    pub lost_responses: u64,
    /// Latency spikes injected.
    pub spikes: u64,
    /// Upstream unreachable or failing at the HTTP level: answered 502, which the SDK retries as a
    /// transient error. Not an injected fault; a non-zero count means the upstream misbehaved.
    pub upstream_errors: u64,
}

impl Counts {
    /// Injected faults of every kind (spikes excluded: they slow a request, they don't fail it).
    pub fn faults(&self) -> u64 {
        self.throttled + self.server_errors + self.resets_before + self.lost_responses
    }
}

/// A snapshot of the proxy's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Client connections accepted (keep-alive reuse keeps this low).
    pub connections: u64,
    /// All requests.
    pub total: Counts,
    /// Requests with a parsed action, by action name.
    pub per_action: BTreeMap<String, Counts>,
}

impl ProxyStats {
    /// The counters of one action (zero if it was never seen).
    pub fn action(&self, action: &str) -> Counts {
        self.per_action.get(action).cloned().unwrap_or_default()
    }
}

/// A running proxy. Serves until dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    accept_task: JoinHandle<()>,
}

impl FaultProxy {
    /// Binds `127.0.0.1:0` and serves in tasks of the current tokio runtime, forwarding to
    /// `upstream` (`http://host:port`, e.g. moto's `AWS_ENDPOINT_URL`).
    ///
    /// Panics if `upstream` is not an `http://` URL or `config` is invalid (test bugs); returns the
    /// bind error otherwise.
    pub async fn start(upstream: &str, config: FaultConfig) -> io::Result<Self> {
        config.validate();
        let upstream_uri: Uri = upstream
            .parse()
            .unwrap_or_else(|e| panic!("FaultProxy upstream {upstream:?} is not a URL: {e}"));
        assert_eq!(
            upstream_uri.scheme_str(),
            Some("http"),
            "FaultProxy upstream must be http://host:port, got {upstream:?}"
        );
        let authority = upstream_uri
            .authority()
            .unwrap_or_else(|| panic!("FaultProxy upstream {upstream:?} has no host"))
            .clone();

        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let shared = Arc::new(Shared {
            upstream: authority,
            client: Client::builder(TokioExecutor::new()).build(connector),
            state: Mutex::new(State::new(config)),
        });
        let (shutdown, shutdown_rx) = watch::channel(false);
        let accept_task = tokio::spawn(accept_loop(listener, shared.clone(), shutdown_rx));
        Ok(Self {
            addr,
            shared,
            shutdown,
            accept_task,
        })
    }

    /// The endpoint to give the SDK (`endpoint_url`, `AWS_ENDPOINT_URL`): `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces the configuration for requests arriving from now on, reseeds the RNG from
    /// `config.seed` and restarts [`Event::seq`] and the event log (counters keep accumulating).
    /// Requests already in flight finish with the fault they were dealt.
    pub fn set_config(&self, config: FaultConfig) {
        config.validate();
        let mut state = self.shared.lock();
        state.rng = StdRng::seed_from_u64(config.seed);
        state.config = config;
        state.seq = 0;
        state.events.clear();
    }

    /// The current configuration.
    pub fn config(&self) -> FaultConfig {
        self.shared.lock().config.clone()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> ProxyStats {
        self.shared.lock().stats.clone()
    }

    /// The decisions taken since start or the last [`FaultProxy::set_config`], in arrival order.
    pub fn events(&self) -> Vec<Event> {
        self.shared.lock().events.clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // Stop accepting, and close open connections so that no task outlives the proxy.
        let _ = self.shutdown.send(true);
        self.accept_task.abort();
    }
}

struct Shared {
    upstream: http::uri::Authority,
    client: Client<HttpConnector, Full<Bytes>>,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock can only come from a bug here; the counters are still
        // usable, so don't poison every later call of a test that is already failing.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn count(&self, action: Option<&str>, bump: impl Fn(&mut Counts)) {
        let mut state = self.lock();
        bump(&mut state.stats.total);
        if let Some(action) = action {
            bump(state.stats.per_action.entry(action.to_owned()).or_default());
        }
    }
}

struct State {
    config: FaultConfig,
    rng: StdRng,
    seq: u64,
    events: Vec<Event>,
    stats: ProxyStats,
}

impl State {
    fn new(config: FaultConfig) -> Self {
        Self {
            rng: StdRng::seed_from_u64(config.seed),
            config,
            seq: 0,
            events: Vec::new(),
            stats: ProxyStats::default(),
        }
    }

    /// Deals the fate of one request. Always draws four values so the sequence of draws depends
    /// only on the seed and the number of requests, not on the rates or the actions.
    fn decide(&mut self, action: Option<&str>, service: Option<&str>) -> Event {
        let fault_draw: f64 = self.rng.random();
        let status_draw: bool = self.rng.random();
        let jitter_draw: f64 = self.rng.random();
        let spike_draw: f64 = self.rng.random();

        let config = &self.config;
        let eligible = config.applies_to(action);
        let fault = if eligible {
            let status = if status_draw { 503 } else { 500 };
            let outcomes = [
                (config.throttle_rate, Fault::Throttle),
                (config.error_5xx_rate, Fault::ServerError(status)),
                (config.reset_before_rate, Fault::ResetBefore),
                (config.lost_response_rate, Fault::LostResponse),
            ];
            let mut threshold = 0.0;
            outcomes
                .into_iter()
                .find(|(rate, _)| {
                    threshold += rate;
                    fault_draw < threshold
                })
                .map_or(Fault::None, |(_, fault)| fault)
        } else {
            Fault::None
        };
        let spiked = eligible && spike_draw < config.spike_rate;
        let mut delay = config.latency + config.latency_jitter.mul_f64(jitter_draw);
        if spiked {
            delay += config.spike;
        }

        let event = Event {
            seq: self.seq,
            action: action.map(str::to_owned),
            service: service.map(str::to_owned),
            fault,
            delay,
            spiked,
        };
        self.seq += 1;
        self.events.push(event.clone());

        let bump = |c: &mut Counts| {
            c.requests += 1;
            match fault {
                Fault::None => {}
                Fault::Throttle => c.throttled += 1,
                Fault::ServerError(_) => c.server_errors += 1,
                Fault::ResetBefore => c.resets_before += 1,
                Fault::LostResponse => c.lost_responses += 1,
            }
            if spiked {
                c.spikes += 1;
            }
        };
        bump(&mut self.stats.total);
        if let Some(action) = action {
            bump(self.stats.per_action.entry(action.to_owned()).or_default());
        }
        event
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, shutdown: watch::Receiver<bool>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // EMFILE and friends: back off instead of spinning; the client will see a timeout.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        shared.lock().stats.connections += 1;
        tokio::spawn(serve_connection(stream, shared.clone(), shutdown.clone()));
    }
}

/// A request handler's way to make its connection drop: set `reset`, then notify.
struct Kill {
    reset: std::sync::atomic::AtomicBool,
    notify: Notify,
}

async fn serve_connection(
    mut stream: TcpStream,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let kill = Arc::new(Kill {
        reset: false.into(),
        notify: Notify::new(),
    });
    {
        let kill_for_service = kill.clone();
        let service = service_fn(move |req| handle(req, shared.clone(), kill_for_service.clone()));
        // Borrow the stream so it outlives hyper's connection and can be reset below.
        let conn = hyper::server::conn::http1::Builder::new()
            .keep_alive(true)
            .serve_connection(TokioIo::new(&mut stream), service);
        tokio::select! {
            _ = conn => {}
            _ = kill.notify.notified() => {}
            _ = shutdown.wait_for(|stop| *stop) => {}
        }
    }
    if kill.reset.load(std::sync::atomic::Ordering::SeqCst) {
        // SO_LINGER 0 turns the close into a TCP RST: the client gets ECONNRESET, not a clean EOF.
        let _ = stream.set_zero_linger();
    }
    drop(stream);
}

type ProxyResponse = Response<Full<Bytes>>;

async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
    kill: Arc<Kill>,
) -> Result<ProxyResponse, Infallible> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        // The client went away mid-request: nothing to answer.
        Err(_) => return reset_connection(&kill).await,
    };
    let service = service_of(&parts.headers, &parts.uri, &body);
    let (protocol, action) = operation(&parts, &body, service.as_deref());
    let event = shared.lock().decide(action.as_deref(), service.as_deref());
    if !event.delay.is_zero() {
        tokio::time::sleep(event.delay).await;
    }
    let action = action.as_deref();
    let request_id = format!("fault-proxy-{:08}", event.seq);

    match event.fault {
        Fault::Throttle => Ok(throttle_response(protocol, &request_id)),
        Fault::ServerError(status) => Ok(server_error_response(protocol, status, &request_id)),
        Fault::ResetBefore => reset_connection(&kill).await,
        Fault::None | Fault::LostResponse => {
            let upstream = forward(&shared, parts, body, action).await;
            if event.fault == Fault::LostResponse {
                return reset_connection(&kill).await;
            }
            match upstream {
                Ok(response) => {
                    shared.count(action, |c| c.delivered += 1);
                    Ok(response)
                }
                Err(message) => {
                    shared.count(action, |c| c.upstream_errors += 1);
                    Ok(plain_response(StatusCode::BAD_GATEWAY, message))
                }
            }
        }
    }
}

/// Signals the connection task to reset the connection, then never answers (the task drops this
/// future together with the connection).
async fn reset_connection(kill: &Kill) -> Result<ProxyResponse, Infallible> {
    kill.reset.store(true, std::sync::atomic::Ordering::SeqCst);
    kill.notify.notify_one();
    std::future::pending().await
}

/// Sends the buffered request upstream and buffers the whole response, so that a "lost response"
/// is only dropped after the upstream has finished serving it.
async fn forward(
    shared: &Shared,
    mut parts: http::request::Parts,
    body: Bytes,
    action: Option<&str>,
) -> Result<ProxyResponse, String> {
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/");
    parts.uri = Uri::builder()
        .scheme("http")
        .authority(shared.upstream.clone())
        .path_and_query(path_and_query)
        .build()
        .map_err(|e| format!("fault proxy: bad upstream URI: {e}"))?;
    // The Host header stays as the client signed it (SigV4 covers it).
    strip_hop_by_hop(&mut parts.headers);
    let request = Request::from_parts(parts, Full::new(body));
    shared.count(action, |c| c.forwarded += 1);
    let response = shared
        .client
        .request(request)
        .await
        .map_err(|e| format!("fault proxy: upstream request failed: {e}"))?;
    let (mut parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| format!("fault proxy: upstream body failed: {e}"))?
        .to_bytes();
    strip_hop_by_hop(&mut parts.headers);
    Ok(Response::from_parts(parts, Full::new(body)))
}

/// Removes connection-scoped headers, and the body framing headers because bodies are re-framed
/// (hyper sets `content-length` from the buffered body).
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    const HOP_BY_HOP: [&str; 8] = [
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "upgrade",
    ];
    for name in HOP_BY_HOP {
        headers.remove(HeaderName::from_static(name));
    }
    headers.remove(header::TRANSFER_ENCODING);
    headers.remove(header::CONTENT_LENGTH);
}

fn throttle_response(protocol: Protocol, request_id: &str) -> ProxyResponse {
    // What the services really send: EC2 throttles with 503 RequestLimitExceeded, the awsQuery
    // services with 400 Throttling (a client-side "Sender" fault), the JSON services (SSM,
    // EventBridge) with 400 ThrottlingException, Lambda and API Gateway with 429.
    match protocol {
        Protocol::Ec2Query => error_response(
            protocol,
            StatusCode::SERVICE_UNAVAILABLE,
            "RequestLimitExceeded",
            "Request limit exceeded.",
            request_id,
        ),
        Protocol::AwsQuery => error_response(
            protocol,
            StatusCode::BAD_REQUEST,
            "Throttling",
            "Rate exceeded",
            request_id,
        ),
        Protocol::AwsJson => error_response(
            protocol,
            StatusCode::BAD_REQUEST,
            "ThrottlingException",
            "Rate exceeded",
            request_id,
        ),
        Protocol::RestJson => error_response(
            protocol,
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequestsException",
            "Rate exceeded",
            request_id,
        ),
    }
}

fn server_error_response(protocol: Protocol, status: u16, request_id: &str) -> ProxyResponse {
    if status == 503 {
        error_response(
            protocol,
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "The service is unavailable. Please try again shortly.",
            request_id,
        )
    } else {
        error_response(
            protocol,
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "An internal error has occurred.",
            request_id,
        )
    }
}

fn error_response(
    protocol: Protocol,
    status: StatusCode,
    code: &str,
    message: &str,
    request_id: &str,
) -> ProxyResponse {
    let body = match protocol {
        Protocol::Ec2Query => format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code>\
             <Message>{message}</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>"
        ),
        Protocol::AwsJson => format!("{{\"__type\":\"{code}\",\"message\":\"{message}\"}}"),
        Protocol::RestJson => format!("{{\"message\":\"{message}\"}}"),
        Protocol::AwsQuery => {
            let fault_type = if status.is_server_error() {
                "Receiver"
            } else {
                "Sender"
            };
            format!(
                "<ErrorResponse><Error>\
                 <Type>{fault_type}</Type><Code>{code}</Code><Message>{message}</Message></Error>\
                 <RequestId>{request_id}</RequestId></ErrorResponse>"
            )
        }
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    let content_type = match protocol {
        Protocol::Ec2Query | Protocol::AwsQuery => "text/xml",
        Protocol::AwsJson => "application/x-amz-json-1.1",
        Protocol::RestJson => "application/json",
    };
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if protocol == Protocol::RestJson {
        if let Ok(value) = HeaderValue::from_str(code) {
            headers.insert("x-amzn-errortype", value);
        }
    }
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-requestid", value);
    }
    response
}

fn plain_response(status: StatusCode, message: String) -> ProxyResponse {
    let mut response = Response::new(Full::new(Bytes::from(message)));
    *response.status_mut() = status;
    response
}
