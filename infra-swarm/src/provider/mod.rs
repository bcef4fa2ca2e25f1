//! The Swarm provider; see [`SwarmProvider`].

mod converge;
mod convert;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine as _;
use bollard::errors::Error as DockerError;
use bollard::models::{ConfigSpec, NodeSpec, SecretSpec};
use bollard::query_parameters::{
    ListConfigsOptions, ListNetworksOptions, ListNodesOptions, ListSecretsOptions,
    ListServicesOptions, UpdateConfigOptions, UpdateNodeOptions, UpdateSecretOptions,
    UpdateServiceOptions,
};
use bollard::{ClientVersion, Docker, API_DEFAULT_VERSION};
use infra_core::dsl::KindSchema;
use infra_core::dsl::{Address, Resource, ResourceSpec};
use infra_core::lock::Created;
use infra_core::plan::changed_fields;
use infra_core::provider::{
    LockInfo, Observed, OpContext, Provider, ProviderError, ReadResult, Resolved,
};
use infra_core::retry::{self, RetryPolicy};
use infra_core::value::digest_of;
use infra_core::Value;
use serde::{Deserialize, Serialize};

use crate::kinds::{marker_key, swarm_name, MARKER_PREFIX};
use convert::{
    label_map, observe_config, observe_network, observe_secret, observe_service, owned_labels,
    service_name, LABEL_DIGEST,
};

/// Seconds bollard waits for any one response.
const REQUEST_TIMEOUT_SECS: u64 = 120;
/// Seconds the connection handshake (`/version`, `/info`) waits for each answer: an endpoint
/// that accepts connections but never answers is reported in seconds, not minutes.
const HANDSHAKE_TIMEOUT_SECS: u64 = 10;
/// The oldest Engine API this provider works with (Docker 19.03: `MaxReplicas`, `Init`).
const MIN_API: ClientVersion = ClientVersion {
    major_version: 1,
    minor_version: 40,
};
/// Attempts at an update that keeps meeting "update out of sequence".
const SEQUENCE_ATTEMPTS: u32 = 5;

/// Why [`SwarmProvider::connect`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// No engine answered, or it answered with an error.
    #[error("cannot reach the Docker engine at {endpoint}: {message}")]
    Unreachable {
        /// `DOCKER_HOST` or the socket path.
        endpoint: String,
        /// What went wrong.
        message: String,
    },
    /// The engine's API is older than this provider needs.
    #[error("the Docker engine at {endpoint} speaks API {server}; infra's Swarm provider needs {MIN_API} or newer (Docker 19.03+)")]
    TooOld {
        /// The engine.
        endpoint: String,
        /// Its newest API version.
        server: String,
    },
    /// The engine is not part of a swarm.
    #[error("the Docker engine at {endpoint} is not in swarm mode (state: {state}); run `docker swarm init` on it (or `docker swarm join` it to a swarm) and retry")]
    NotSwarm {
        /// The engine.
        endpoint: String,
        /// The node's swarm state (`inactive`, `pending`, `error`, `locked`).
        state: String,
    },
    /// The engine is a worker: only managers serve the services API.
    #[error("the Docker engine at {endpoint} is a swarm worker; services can only be managed through a manager: point DOCKER_HOST at a manager node")]
    NotManager {
        /// The engine.
        endpoint: String,
    },
}

/// The Swarm provider: converges a real swarm through the Docker Engine API (bollard).
///
/// * **Connection.** [`SwarmProvider::connect`] uses `DOCKER_HOST` or the local socket and
///   negotiates the API version: bollard asks for its newest version first, and an older engine
///   answers "client version X is too new. Maximum supported API version is Y", which is parsed
///   and used (bollard's own `negotiate_version()` can't do this: its `/version` request already
///   fails on such an engine). Swarm mode and a manager node are required, with a message saying
///   how to get there.
/// * **Ownership.** Every object carries `infra.stack`, `infra.id` (the address) and
///   `infra.protect` labels, set in the create call. A read is one label-filtered list call per
///   object type (services, networks, secrets, configs) plus one node list; nothing without the
///   stack's labels is ever returned, updated or deleted. When two objects claim one address
///   (the new half of an interrupted secret rotation beside the old one), the newest is the
///   resource and the others are reported as `<address>~<id>` so the plan deletes them once
///   nothing uses them.
/// * **Updates** send the `Version.Index` just inspected; on "update out of sequence" the
///   provider re-inspects, re-diffs (the change may already be there) and retries.
/// * **Convergence.** After creating or updating a service the provider waits until every
///   replica runs the new task template and the rolling update is completed. A rollback or a
///   paused update fails that change with Swarm's reason and the failing task's error, which
///   `docker stack deploy` never reports (docker/cli#6752).
pub struct SwarmProvider {
    docker: Docker,
    endpoint: String,
    api_version: String,
    node_id: String,
    converge_timeout: Duration,
    poll_interval: Duration,
    calls: AtomicU64,
}

impl std::fmt::Debug for SwarmProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwarmProvider")
            .field("endpoint", &self.endpoint)
            .field("api_version", &self.api_version)
            .field("converge_timeout", &self.converge_timeout)
            .finish_non_exhaustive()
    }
}

fn parse_version(s: &str) -> Option<ClientVersion> {
    let (major, minor) = s.trim().trim_end_matches('.').split_once('.')?;
    Some(ClientVersion {
        major_version: major.parse().ok()?,
        minor_version: minor.parse().ok()?,
    })
}

/// The newest version an engine accepts, from its "too new" refusal.
fn max_version_from(message: &str) -> Option<ClientVersion> {
    let (_, rest) = message.split_once("Maximum supported API version is ")?;
    parse_version(rest.split_whitespace().next()?)
}

impl SwarmProvider {
    /// Connects to `DOCKER_HOST` (`unix://…`, `tcp://…`) or `/var/run/docker.sock`. The
    /// convergence timeout is `INFRA_SWARM_CONVERGE_TIMEOUT` seconds, 300 by default.
    pub async fn connect() -> Result<Self, ConnectError> {
        let host = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.trim().is_empty())
            .unwrap_or_else(|| "unix:///var/run/docker.sock".into());
        Self::connect_to(&host).await
    }

    /// Connects to an explicit endpoint (`unix:///path`, a socket path, or `tcp://host:port`).
    pub async fn connect_to(host: &str) -> Result<Self, ConnectError> {
        let unreachable = |message: String| ConnectError::Unreachable {
            endpoint: host.to_string(),
            message,
        };
        let client = |version: &ClientVersion| -> Result<Docker, ConnectError> {
            let r = if host.starts_with("unix://") || host.starts_with('/') {
                Docker::connect_with_socket(host, HANDSHAKE_TIMEOUT_SECS, version)
            } else if host.starts_with("tcp://") || host.starts_with("http://") {
                Docker::connect_with_http(host, HANDSHAKE_TIMEOUT_SECS, version)
            } else {
                return Err(unreachable(
                    "unsupported DOCKER_HOST scheme: use unix://, tcp:// or http:// (for TLS or ssh, forward the socket)".into(),
                ));
            };
            r.map_err(|e| unreachable(handshake_error(&e)))
        };

        let mut docker = client(API_DEFAULT_VERSION)?;
        let version = match docker.version().await {
            Ok(v) => v,
            Err(DockerError::DockerResponseServerError { message, .. })
                if max_version_from(&message).is_some() =>
            {
                let max = max_version_from(&message).unwrap_or(MIN_API);
                docker = client(&max)?;
                docker
                    .version()
                    .await
                    .map_err(|e| unreachable(handshake_error(&e)))?
            }
            Err(e) => return Err(unreachable(handshake_error(&e))),
        };
        let server = version.api_version.clone().unwrap_or_default();
        match parse_version(&server) {
            Some(v) if v >= MIN_API => {}
            _ => {
                return Err(ConnectError::TooOld {
                    endpoint: host.to_string(),
                    server,
                })
            }
        }
        // Our request version is now accepted; let bollard lower it if the engine is older still.
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|e| unreachable(handshake_error(&e)))?;
        let info = docker
            .info()
            .await
            .map_err(|e| unreachable(handshake_error(&e)))?;
        let swarm = info.swarm.unwrap_or_default();
        let state = swarm
            .local_node_state
            .as_ref()
            .and_then(|s| serde_json::to_value(s).ok())
            .and_then(|s| s.as_str().map(str::to_string))
            .unwrap_or_else(|| "unknown".into());
        if state != "active" {
            return Err(ConnectError::NotSwarm {
                endpoint: host.to_string(),
                state,
            });
        }
        if swarm.control_available != Some(true) {
            return Err(ConnectError::NotManager {
                endpoint: host.to_string(),
            });
        }
        let timeout = std::env::var("INFRA_SWARM_CONVERGE_TIMEOUT")
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(300);
        Ok(SwarmProvider {
            api_version: docker.client_version().to_string(),
            docker: docker.with_timeout(Duration::from_secs(REQUEST_TIMEOUT_SECS)),
            endpoint: host.to_string(),
            node_id: swarm.node_id.unwrap_or_default(),
            converge_timeout: Duration::from_secs(timeout),
            poll_interval: Duration::from_millis(200),
            calls: AtomicU64::new(0),
        })
    }

    /// How long a create or update waits for the service to converge before failing.
    pub fn with_converge_timeout(mut self, timeout: Duration) -> Self {
        self.converge_timeout = timeout;
        self
    }

    /// The Engine API version in use (negotiated).
    pub fn api_version(&self) -> &str {
        &self.api_version
    }

    /// The ID of the node the provider is connected to (`self` in [`crate::NodeLabels::node`]).
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    fn count(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }
}

/// A handshake failure in words: bollard's timeout says only "Timeout error".
fn handshake_error(e: &DockerError) -> String {
    match e {
        DockerError::RequestTimeoutError => format!(
            "it accepted the connection but did not answer within {HANDSHAKE_TIMEOUT_SECS} s (is it a Docker engine?)"
        ),
        e => e.to_string(),
    }
}

/// True for the error Swarm gives an update carrying a stale `Version.Index`.
fn out_of_sequence(e: &DockerError) -> bool {
    matches!(e, DockerError::DockerResponseServerError { message, .. } if message.contains("out of sequence"))
}

/// A Docker error as the reconciler needs it: not found, worth retrying, or final.
fn api_error(what: &str, e: DockerError) -> ProviderError {
    match e {
        DockerError::DockerResponseServerError {
            status_code: 404,
            message,
        } => ProviderError::not_found("NotFound", format!("{what}: {message}")),
        DockerError::DockerResponseServerError {
            status_code,
            message,
        } => {
            let transient = status_code == 503
                || [
                    "Unavailable",
                    "deadline exceeded",
                    "raft",
                    "leader",
                    "out of sequence",
                ]
                .iter()
                .any(|m| message.contains(m));
            let code = format!("Http{status_code}");
            let message = format!("{what}: {message}");
            if transient {
                ProviderError::retryable(code, message)
            } else {
                ProviderError::fatal(code, message)
            }
        }
        e @ (DockerError::RequestTimeoutError
        | DockerError::IOError { .. }
        | DockerError::HyperResponseError { .. }
        | DockerError::HyperLegacyError { .. }) => {
            ProviderError::retryable("Connection", format!("{what}: {e}"))
        }
        e => ProviderError::fatal("Docker", format!("{what}: {e}")),
    }
}

fn label_filter(stack: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([(
        "label".to_string(),
        vec![format!("{}={stack}", convert::LABEL_STACK)],
    )])
}

/// The marker a [`NodeLabels`](crate::NodeLabels) resource leaves on its node.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct NodeMarker {
    node: String,
    keys: Vec<String>,
    #[serde(default)]
    protect: bool,
    /// Values the managed keys had before the stack took them over, restored when the stack
    /// lets go of them (so `az=a` set by a provisioning script survives a destroy).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    previous: BTreeMap<String, String>,
}

/// Which of `changed` still differ between `desired` and a fresh observation.
fn still_changed(desired: &Resolved, observed: &Observed, changed: &[String]) -> Vec<String> {
    let spec = ResourceSpec::new(desired.schema, desired.address.name());
    let now = changed_fields(&spec, &desired.props, observed);
    changed
        .iter()
        .filter(|f| now.contains(f))
        .cloned()
        .collect()
}

/// The observed properties with the changed fields taken from the declaration: what an update
/// sends. Fields outside `changed` (such as those under `ignore_changes`) keep their live value.
fn merged(observed: &Observed, desired: &Resolved, changed: &[String]) -> BTreeMap<String, Value> {
    let mut props = observed.props.clone();
    for f in changed {
        match desired.get(f) {
            Some(v) => props.insert(f.clone(), v.clone()),
            None => props.remove(f),
        };
    }
    props
}

/// When several objects claim one address, the newest is the resource; the others (the old
/// half of an interrupted replacement) get `<address>~<id>` so the plan deletes them.
fn settle_duplicates(mut found: Vec<(Observed, String)>) -> Vec<Observed> {
    found.sort_by(|(a, ta), (b, tb)| {
        a.address
            .cmp(&b.address)
            .then_with(|| sortable_time(tb).cmp(&sortable_time(ta)))
            .then_with(|| a.id.cmp(&b.id))
    });
    let mut out: Vec<Observed> = Vec::with_capacity(found.len());
    let mut primary: Option<Address> = None;
    for (mut o, _) in found {
        if primary.as_ref() == Some(&o.address) {
            let short: String = o.id.chars().take(12).collect();
            o.address = Address::new(o.address.kind(), format!("{}~{short}", o.address.name()));
        } else {
            primary = Some(o.address.clone());
        }
        out.push(o);
    }
    out
}

/// Docker's RFC 3339 times trim trailing zeros from the fraction; pad it so that the strings
/// sort in time order.
fn sortable_time(t: &str) -> String {
    match t.split_once('.') {
        Some((head, rest)) => {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            format!("{head}.{digits:0<9}")
        }
        None => format!("{}.000000000", t.trim_end_matches('Z')),
    }
}

impl SwarmProvider {
    async fn read_all(&self, stack: &str) -> Result<Vec<Observed>, ProviderError> {
        let filters = label_filter(stack);
        let services = self.docker.list_services(Some(ListServicesOptions {
            filters: Some(filters.clone()),
            ..Default::default()
        }));
        let networks = self.docker.list_networks(Some(ListNetworksOptions {
            filters: Some(filters.clone()),
        }));
        let secrets = self.docker.list_secrets(Some(ListSecretsOptions {
            filters: Some(filters.clone()),
        }));
        let configs = self.docker.list_configs(Some(ListConfigsOptions {
            filters: Some(filters.clone()),
        }));
        let nodes = self.docker.list_nodes(None::<ListNodesOptions>);
        for _ in 0..5 {
            self.count();
        }
        let (services, networks, secrets, configs, nodes) =
            tokio::join!(services, networks, secrets, configs, nodes);
        let mut found: Vec<(Observed, String)> = Vec::new();
        for s in services.map_err(|e| api_error("listing services", e))? {
            if let Some(o) = observe_service(&s, stack) {
                found.push((o, s.created_at.clone().unwrap_or_default()));
            }
        }
        for n in networks.map_err(|e| api_error("listing networks", e))? {
            // A worker-local copy of a swarm network has no labels; only swarm-scoped ones count.
            if n.scope.as_deref() != Some("swarm") {
                continue;
            }
            if let Some(o) = observe_network(&n, stack) {
                found.push((o, n.created.clone().unwrap_or_default()));
            }
        }
        for s in secrets.map_err(|e| api_error("listing secrets", e))? {
            if let Some(o) = observe_secret(&s, stack) {
                found.push((o, s.created_at.clone().unwrap_or_default()));
            }
        }
        for c in configs.map_err(|e| api_error("listing configs", e))? {
            if let Some(o) = observe_config(&c, stack) {
                found.push((o, c.created_at.clone().unwrap_or_default()));
            }
        }
        let prefix = format!("{MARKER_PREFIX}{stack}.");
        for node in nodes.map_err(|e| api_error("listing nodes", e))? {
            let labels = node
                .spec
                .as_ref()
                .and_then(|s| s.labels.clone())
                .unwrap_or_default();
            for (key, value) in &labels {
                let Some(name) = key.strip_prefix(&prefix).filter(|n| !n.contains('.')) else {
                    continue;
                };
                let Ok(marker) = serde_json::from_str::<NodeMarker>(value) else {
                    tracing::warn!(label = %key, "ignoring a malformed node-labels marker");
                    continue;
                };
                let current: BTreeMap<String, Value> = marker
                    .keys
                    .iter()
                    .filter_map(|k| labels.get(k).map(|v| (k.clone(), Value::from(v.as_str()))))
                    .collect();
                let mut props = BTreeMap::new();
                props.insert("node".to_string(), Value::from(marker.node.as_str()));
                if !current.is_empty() {
                    props.insert("labels".to_string(), Value::Map(current));
                }
                found.push((
                    Observed {
                        address: Address::new(<crate::NodeLabels as Resource>::SCHEMA.kind, name),
                        id: node.id.clone().unwrap_or_default(),
                        props,
                        protect: marker.protect,
                    },
                    String::new(),
                ));
            }
        }
        Ok(settle_duplicates(found))
    }
}

#[async_trait]
impl Provider for SwarmProvider {
    fn name(&self) -> &str {
        crate::PROVIDER
    }

    async fn read(&self, stack: &str) -> Result<ReadResult, ProviderError> {
        // A read changes nothing, so a transient failure (a reset connection, a manager
        // without a leader for a moment) is retried here rather than failing the whole plan.
        let before = self.calls.load(Ordering::Relaxed);
        let resources = retry::retry(
            &RetryPolicy::calls().with_max_attempts(READ_ATTEMPTS),
            "reading the stack's swarm objects",
            || self.read_all(stack),
        )
        .await?;
        Ok(ReadResult {
            resources,
            api_calls: self.calls.load(Ordering::Relaxed) - before,
        })
    }

    async fn create(&self, ctx: &OpContext, desired: &Resolved) -> Result<Observed, ProviderError> {
        match desired.schema.kind {
            "swarm_service" => self.create_service(ctx, desired).await,
            "swarm_network" => self.create_network(ctx, desired).await,
            "swarm_secret" | "swarm_config" => self.create_blob(ctx, desired).await,
            "swarm_node_labels" => self.set_node_labels(ctx, desired, None).await,
            other => Err(unsupported(other)),
        }
    }

    async fn update(
        &self,
        ctx: &OpContext,
        current: &Observed,
        desired: &Resolved,
        changed: &[String],
    ) -> Result<Observed, ProviderError> {
        match desired.schema.kind {
            "swarm_service" => self.update_service(ctx, current, desired, changed).await,
            "swarm_secret" | "swarm_config" => self.update_blob_labels(ctx, current, desired).await,
            "swarm_node_labels" => self.set_node_labels(ctx, desired, Some(current)).await,
            "swarm_network" => Err(ProviderError::fatal(
                "Immutable",
                format!(
                    "{}: Docker networks can't be changed in place",
                    desired.address
                ),
            )),
            other => Err(unsupported(other)),
        }
    }

    async fn delete(&self, ctx: &OpContext, current: &Observed) -> Result<(), ProviderError> {
        match current.address.kind() {
            "swarm_service" => self.delete_service(ctx, current).await,
            "swarm_network" => self.delete_network(current).await,
            "swarm_secret" => {
                self.count();
                self.docker.delete_secret(&current.id).await.map_err(|e| {
                    in_use(
                        &current.address,
                        api_error(&format!("deleting secret {}", current.id), e),
                    )
                })
            }
            "swarm_config" => {
                self.count();
                self.docker.delete_config(&current.id).await.map_err(|e| {
                    in_use(
                        &current.address,
                        api_error(&format!("deleting config {}", current.id), e),
                    )
                })
            }
            "swarm_node_labels" => self.remove_node_labels(ctx, current).await,
            other => Err(unsupported(other)),
        }
    }

    /// The stack lock is a Swarm config (named by `lock_name`): names are unique in the raft store.
    async fn lock_create(&self, stack: &str, info: &LockInfo) -> Result<Created, ProviderError> {
        let data = base64::engine::general_purpose::STANDARD
            .encode(serde_json::to_vec(info).unwrap_or_default());
        let spec = ConfigSpec {
            name: Some(lock_name(stack)),
            labels: Some(HashMap::from([(
                "infra.lock".to_string(),
                stack.to_string(),
            )])),
            data: Some(data),
            ..Default::default()
        };
        self.count();
        match self.docker.create_config(spec).await {
            Ok(_) => Ok(Created::Created),
            Err(DockerError::DockerResponseServerError {
                status_code: 409, ..
            }) => Ok(Created::Exists),
            Err(e) => Err(lock_error(api_error("taking the stack lock", e))),
        }
    }

    async fn lock_read(&self, stack: &str) -> Result<Option<LockInfo>, ProviderError> {
        self.count();
        match self.docker.inspect_config(&lock_name(stack)).await {
            Ok(c) => {
                let data = c.spec.and_then(|s| s.data).unwrap_or_default();
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(data)
                    .unwrap_or_default();
                Ok(Some(serde_json::from_slice(&bytes).unwrap_or(LockInfo {
                    holder: "unknown (unreadable lock)".into(),
                    since_unix: 0,
                    operation: "unknown".into(),
                })))
            }
            Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(lock_error(api_error("reading the stack lock", e))),
        }
    }

    async fn lock_delete(&self, stack: &str) -> Result<(), ProviderError> {
        self.count();
        match self.docker.delete_config(&lock_name(stack)).await {
            Ok(())
            | Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(lock_error(api_error("releasing the stack lock", e))),
        }
    }

    fn kinds(&self) -> Option<Vec<&'static KindSchema>> {
        Some(crate::kinds::schemas())
    }

    fn api_calls(&self) -> Option<u64> {
        Some(self.calls.load(Ordering::Relaxed))
    }
}

/// An inspected network in the list shape (the same fields, plus some we don't read).
fn as_network(n: &bollard::models::NetworkInspect) -> Option<bollard::models::Network> {
    serde_json::from_value(serde_json::to_value(n).ok()?).ok()
}

fn unsupported(kind: &str) -> ProviderError {
    ProviderError::fatal(
        "Unsupported",
        format!("the swarm provider has no kind `{kind}`"),
    )
}

/// Turns Swarm's "in use" refusal into a message that says what to do.
fn in_use(address: &Address, e: ProviderError) -> ProviderError {
    if e.message.contains("in use") {
        ProviderError::fatal(
            "InUse",
            format!(
                "{address} is still used by a service outside the stack's plan ({}); detach it from that service first",
                e.message
            ),
        )
    } else {
        e
    }
}

/// The stack lock is a Swarm config: names are unique in the raft store, so creating it is an
/// atomic test-and-set that every manager agrees on. It carries no `infra.stack` label, so no
/// read ever reports it as a resource.
fn lock_name(stack: &str) -> String {
    format!("infra-lock_{stack}")
}

/// Attempts of a read on retryable errors.
const READ_ATTEMPTS: u32 = 4;

/// Lock calls are retried on any server-side error too: the lock is small and its calls are
/// checked (the holder is read back), and giving up leaves a stack locked.
fn lock_error(e: ProviderError) -> ProviderError {
    if e.code.starts_with("Http5") {
        ProviderError::retryable(e.code, e.message)
    } else {
        e
    }
}

impl SwarmProvider {
    async fn inspect_observed(&self, id: &str, stack: &str) -> Result<Observed, ProviderError> {
        self.count();
        let svc = self
            .docker
            .inspect_service(id, None)
            .await
            .map_err(|e| api_error(&format!("inspecting service {id}"), e))?;
        observe_service(&svc, stack).ok_or_else(|| {
            ProviderError::fatal(
                "NotOwned",
                format!("service {id} no longer carries the stack's labels"),
            )
        })
    }

    async fn create_service(
        &self,
        ctx: &OpContext,
        desired: &Resolved,
    ) -> Result<Observed, ProviderError> {
        let name = service_name(&ctx.stack, &desired.address);
        let (spec, _template) = convert::service_spec(
            &ctx.stack,
            &desired.address,
            &desired.props,
            desired.protect,
        )?;
        let started = Instant::now();
        self.count();
        let id = match self.docker.create_service(spec.clone(), None).await {
            Ok(r) => r.id.unwrap_or_default(),
            Err(DockerError::DockerResponseServerError {
                status_code: 409,
                message,
            }) => {
                // Ours already (a retried create whose response was lost)? Then converge it;
                // anything else by that name is not ours to touch.
                // A failed look is not a conflict: report it as what it is (often retryable).
                self.count();
                let existing = match self.docker.inspect_service(&name, None).await {
                    Ok(svc) => Some(svc),
                    Err(DockerError::DockerResponseServerError {
                        status_code: 404, ..
                    }) => None,
                    Err(e) => return Err(api_error(&format!("inspecting service {name}"), e)),
                };
                let ours = existing
                    .as_ref()
                    .and_then(|s| observe_service(s, &ctx.stack))
                    .filter(|o| o.address == desired.address);
                match (existing, ours) {
                    (Some(svc), Some(o)) => {
                        let version = svc.version.and_then(|v| v.index).unwrap_or(0);
                        self.send_service_update(&o.id, spec, version)
                            .await
                            .map_err(|e| api_error(&format!("updating service {name}"), e))?;
                        o.id
                    }
                    _ => {
                        return Err(ProviderError::fatal(
                            "NameConflict",
                            format!("{}: a service named `{name}` exists and is not this stack's ({message}); remove or rename it, or rename the declaration", desired.address),
                        ))
                    }
                }
            }
            Err(e) => return Err(api_error(&format!("creating service {name}"), e)),
        };
        self.wait_converged(&id, &name, started).await?;
        self.inspect_observed(&id, &ctx.stack).await
    }

    async fn send_service_update(
        &self,
        id: &str,
        spec: bollard::models::ServiceSpec,
        version: u64,
    ) -> Result<(), DockerError> {
        self.count();
        let options = UpdateServiceOptions {
            version: i32::try_from(version).unwrap_or(i32::MAX),
            ..Default::default()
        };
        let r = self.docker.update_service(id, spec, options, None).await?;
        for w in r.warnings.unwrap_or_default() {
            tracing::warn!(service = %id, warning = %w, "docker warned on service update");
        }
        Ok(())
    }

    async fn update_service(
        &self,
        ctx: &OpContext,
        current: &Observed,
        desired: &Resolved,
        changed: &[String],
    ) -> Result<Observed, ProviderError> {
        let name = service_name(&ctx.stack, &desired.address);
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.count();
            let svc = self
                .docker
                .inspect_service(&current.id, None)
                .await
                .map_err(|e| api_error(&format!("inspecting service {name}"), e))?;
            let version = svc.version.as_ref().and_then(|v| v.index).unwrap_or(0);
            let live = observe_service(&svc, &ctx.stack).ok_or_else(|| {
                ProviderError::fatal(
                    "NotOwned",
                    format!(
                        "{}: service {name} lost the stack's labels",
                        desired.address
                    ),
                )
            })?;
            let still = still_changed(desired, &live, changed);
            let props = merged(&live, desired, changed);
            let (spec, _template) =
                convert::service_spec(&ctx.stack, &desired.address, &props, desired.protect)?;
            if still.is_empty() && live.protect == desired.protect {
                // Someone (a concurrent run, or Swarm itself) already made this change.
                break;
            }
            match self.send_service_update(&current.id, spec, version).await {
                Ok(()) => break,
                Err(e) if out_of_sequence(&e) && attempt < SEQUENCE_ATTEMPTS => {
                    tracing::info!(service = %name, attempt, "update out of sequence; re-inspecting");
                    continue;
                }
                Err(e) => return Err(api_error(&format!("updating service {name}"), e)),
            }
        }
        self.wait_converged(&current.id, &name, started).await?;
        self.inspect_observed(&current.id, &ctx.stack).await
    }

    async fn delete_service(
        &self,
        ctx: &OpContext,
        current: &Observed,
    ) -> Result<(), ProviderError> {
        let name = service_name(&ctx.stack, &current.address);
        self.count();
        match self.docker.delete_service(&current.id).await {
            Ok(()) => {}
            // Gone already: an earlier attempt's response was lost. Its tasks may still be
            // stopping, so wait for them all the same.
            Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => {}
            Err(e) => return Err(api_error(&format!("deleting service {name}"), e)),
        }
        // Removal is asynchronous: tasks stop within their grace period. Networks and nodes
        // are only free once they have, so wait (bounded) for the tasks to go.
        self.wait_tasks_gone(&current.id, &name).await;
        Ok(())
    }

    async fn create_network(
        &self,
        ctx: &OpContext,
        desired: &Resolved,
    ) -> Result<Observed, ProviderError> {
        let req = convert::network_request(
            &ctx.stack,
            &desired.address,
            &desired.props,
            desired.protect,
        )?;
        let name = req.name.clone();
        self.count();
        let id = match self.docker.create_network(req).await {
            Ok(r) => r.id,
            Err(e) => {
                // A retried create whose response was lost: the network is there and ours.
                if let Some(o) = self.find_network(&name, &ctx.stack).await? {
                    if o.address == desired.address {
                        return Ok(o);
                    }
                }
                return Err(api_error(&format!("creating network {name}"), e));
            }
        };
        self.count();
        let n = self
            .docker
            .inspect_network(&id, None)
            .await
            .map_err(|e| api_error(&format!("inspecting network {name}"), e))?;
        as_network(&n)
            .and_then(|n| observe_network(&n, &ctx.stack))
            .ok_or_else(|| {
                ProviderError::fatal(
                    "NotOwned",
                    format!("network {name} came back without its labels"),
                )
            })
    }

    /// The stack's network of that name, if there is one; a failed look is an error, not "no".
    async fn find_network(
        &self,
        name: &str,
        stack: &str,
    ) -> Result<Option<Observed>, ProviderError> {
        self.count();
        match self.docker.inspect_network(name, None).await {
            Ok(n) => Ok(as_network(&n).and_then(|n| observe_network(&n, stack))),
            Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(api_error(&format!("inspecting network {name}"), e)),
        }
    }

    async fn delete_network(&self, current: &Observed) -> Result<(), ProviderError> {
        let deadline = Instant::now() + self.converge_timeout;
        loop {
            self.count();
            let err = match self.docker.remove_network(&current.id).await {
                Ok(()) => return Ok(()),
                Err(e) => api_error(&format!("deleting network {}", current.id), e),
            };
            // Gone (an earlier attempt's response was lost): the engine says so with a 404, or
            // with a 500 "network … not found" while a local copy of it lingers.
            if err.class == infra_core::provider::ErrorClass::NotFound
                || err.message.ends_with("not found")
            {
                return Ok(());
            }
            if !(err.message.contains("in use") || err.message.contains("active endpoints")) {
                return Err(err);
            }
            // Used by a service: permanent until someone changes that service. Used only by
            // tasks that are still stopping: wait for them.
            let users = self.services_using(&current.id).await?;
            if !users.is_empty() {
                return Err(ProviderError::fatal(
                    "InUse",
                    format!(
                        "{} is used by service(s) {}; a network can't change in place and can't be deleted while in use: detach those services, or declare the new network under a new name so services move to it before the old one is deleted",
                        current.address,
                        users.join(", ")
                    ),
                ));
            }
            if Instant::now() > deadline {
                return Err(ProviderError::fatal(
                    "Timeout",
                    format!("{}: {}", current.address, err.message),
                ));
            }
            tokio::time::sleep(self.poll_interval).await;
        }
    }

    async fn services_using(&self, network_id: &str) -> Result<Vec<String>, ProviderError> {
        self.count();
        let services = self
            .docker
            .list_services(None::<ListServicesOptions>)
            .await
            .map_err(|e| api_error("listing services", e))?;
        Ok(services
            .into_iter()
            .filter(|s| {
                let spec = s.spec.as_ref();
                let nets = spec
                    .and_then(|s| s.task_template.as_ref())
                    .and_then(|t| t.networks.clone())
                    .into_iter()
                    .chain(spec.and_then(|s| s.networks.clone()))
                    .flatten();
                nets.into_iter()
                    .any(|n| n.target.as_deref() == Some(network_id))
            })
            .filter_map(|s| s.spec.and_then(|s| s.name))
            .collect())
    }

    /// Creates a secret or a config under its content-derived name.
    async fn create_blob(
        &self,
        ctx: &OpContext,
        desired: &Resolved,
    ) -> Result<Observed, ProviderError> {
        let secret = desired.schema.kind == "swarm_secret";
        let bytes: Vec<u8> = if secret {
            match desired.get("value") {
                Some(Value::Sensitive(s)) => s.expose().map(<[u8]>::to_vec).ok_or_else(|| {
                    ProviderError::fatal(
                        "SecretUnknown",
                        format!("{}: only the digest of the value is known to this process; declare the value (bytes, file or variable)", desired.address),
                    )
                })?,
                Some(Value::String(s)) => s.clone().into_bytes(),
                _ => {
                    return Err(ProviderError::fatal(
                        "NoValue",
                        format!("{}: no value", desired.address),
                    ))
                }
            }
        } else {
            desired
                .get_str("data")
                .map(|s| s.as_bytes().to_vec())
                .unwrap_or_default()
        };
        let digest = digest_of(&bytes);
        let name = swarm_name(&ctx.stack, desired.address.name(), &digest);
        let mut labels = owned_labels(
            &ctx.stack,
            &desired.address,
            desired.protect,
            desired.get("labels"),
        );
        labels.insert(LABEL_DIGEST.into(), digest.clone().into());
        let labels = label_map(labels);
        let data = base64::engine::general_purpose::STANDARD.encode(&bytes);
        self.count();
        let created = if secret {
            self.docker
                .create_secret(SecretSpec {
                    name: Some(name.clone()),
                    labels: Some(labels),
                    data: Some(data),
                    ..Default::default()
                })
                .await
        } else {
            self.docker
                .create_config(ConfigSpec {
                    name: Some(name.clone()),
                    labels: Some(labels),
                    data: Some(data),
                    ..Default::default()
                })
                .await
        };
        let what = if secret { "secret" } else { "config" };
        match created {
            Ok(_)
            | Err(DockerError::DockerResponseServerError {
                status_code: 409, ..
            }) => {}
            Err(e) => return Err(api_error(&format!("creating {what} {name}"), e)),
        }
        // Inspect by name: after a 409 this is the existing object, which we adopt only when it
        // is this stack's object for this address (same name = same content digest).
        let observed = self.inspect_blob(secret, &name, &ctx.stack).await?;
        match observed {
            Some(o) if o.address == desired.address => Ok(o),
            _ => Err(ProviderError::fatal(
                "NameConflict",
                format!(
                    "{}: a {what} named `{name}` exists and is not this stack's",
                    desired.address
                ),
            )),
        }
    }

    async fn inspect_blob(
        &self,
        secret: bool,
        id: &str,
        stack: &str,
    ) -> Result<Option<Observed>, ProviderError> {
        self.count();
        if secret {
            let s = self
                .docker
                .inspect_secret(id)
                .await
                .map_err(|e| api_error(&format!("inspecting secret {id}"), e))?;
            Ok(observe_secret(&s, stack))
        } else {
            let c = self
                .docker
                .inspect_config(id)
                .await
                .map_err(|e| api_error(&format!("inspecting config {id}"), e))?;
            Ok(observe_config(&c, stack))
        }
    }

    /// Secrets and configs can change their labels (and the protect flag) in place.
    async fn update_blob_labels(
        &self,
        ctx: &OpContext,
        current: &Observed,
        desired: &Resolved,
    ) -> Result<Observed, ProviderError> {
        let secret = desired.schema.kind == "swarm_secret";
        for attempt in 1..=SEQUENCE_ATTEMPTS {
            self.count();
            let (version, name, digest) =
                if secret {
                    let s =
                        self.docker.inspect_secret(&current.id).await.map_err(|e| {
                            api_error(&format!("inspecting secret {}", current.id), e)
                        })?;
                    let spec = s.spec.unwrap_or_default();
                    (
                        s.version.and_then(|v| v.index).unwrap_or(0),
                        spec.name.unwrap_or_default(),
                        spec.labels.and_then(|l| l.get(LABEL_DIGEST).cloned()),
                    )
                } else {
                    let c =
                        self.docker.inspect_config(&current.id).await.map_err(|e| {
                            api_error(&format!("inspecting config {}", current.id), e)
                        })?;
                    let spec = c.spec.unwrap_or_default();
                    (
                        c.version.and_then(|v| v.index).unwrap_or(0),
                        spec.name.unwrap_or_default(),
                        spec.labels.and_then(|l| l.get(LABEL_DIGEST).cloned()),
                    )
                };
            let mut labels = owned_labels(
                &ctx.stack,
                &desired.address,
                desired.protect,
                desired.get("labels"),
            );
            if let Some(d) = digest {
                labels.insert(LABEL_DIGEST.into(), d.into());
            }
            let labels = Some(label_map(labels));
            self.count();
            let r = if secret {
                self.docker
                    .update_secret(
                        &current.id,
                        SecretSpec {
                            name: Some(name),
                            labels,
                            ..Default::default()
                        },
                        UpdateSecretOptions {
                            version: version as i64,
                        },
                    )
                    .await
            } else {
                self.docker
                    .update_config(
                        &current.id,
                        ConfigSpec {
                            name: Some(name),
                            labels,
                            ..Default::default()
                        },
                        UpdateConfigOptions {
                            version: version as i64,
                        },
                    )
                    .await
            };
            match r {
                Ok(()) => break,
                Err(e) if out_of_sequence(&e) && attempt < SEQUENCE_ATTEMPTS => continue,
                Err(e) => return Err(api_error(&format!("updating {}", current.address), e)),
            }
        }
        self.inspect_blob(secret, &current.id, &ctx.stack)
            .await?
            .ok_or_else(|| {
                ProviderError::fatal("NotOwned", format!("{} lost its labels", current.address))
            })
    }

    async fn resolve_node(&self, selector: &str) -> Result<String, ProviderError> {
        if selector == "self" {
            return Ok(self.node_id.clone());
        }
        self.count();
        let node = self
            .docker
            .inspect_node(selector)
            .await
            .map_err(|e| api_error(&format!("finding node `{selector}`"), e))?;
        node.id
            .ok_or_else(|| ProviderError::fatal("NotFound", format!("node `{selector}` has no id")))
    }

    /// Sets a [`NodeLabels`](crate::NodeLabels) resource's labels on its node, removing the keys
    /// it managed before and no longer declares.
    async fn set_node_labels(
        &self,
        ctx: &OpContext,
        desired: &Resolved,
        current: Option<&Observed>,
    ) -> Result<Observed, ProviderError> {
        let selector = desired.get_str("node").unwrap_or("self").to_string();
        let node_id = match current {
            Some(c) => c.id.clone(),
            None => self.resolve_node(&selector).await?,
        };
        let wanted: BTreeMap<String, String> = desired
            .get("labels")
            .and_then(Value::as_map)
            .into_iter()
            .flatten()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string()),
                )
            })
            .collect();
        let key = marker_key(&ctx.stack, desired.address.name());
        let selector_text = selector.clone();
        self.edit_node(&node_id, |labels| {
            let old = labels
                .get(&key)
                .and_then(|m| serde_json::from_str::<NodeMarker>(m).ok());
            let mut previous = old.as_ref().map(|o| o.previous.clone()).unwrap_or_default();
            let managed: Vec<String> = old.map(|o| o.keys).unwrap_or_default();
            // Let go of keys no longer declared: back to what they were before, or gone.
            for k in managed.iter().filter(|k| !wanted.contains_key(*k)) {
                match previous.remove(k) {
                    Some(v) => labels.insert(k.clone(), v),
                    None => labels.remove(k),
                };
            }
            for (k, v) in &wanted {
                if !managed.contains(k) {
                    if let Some(before) = labels.get(k) {
                        previous.insert(k.clone(), before.clone());
                    }
                }
                labels.insert(k.clone(), v.clone());
            }
            let marker = NodeMarker {
                node: selector_text.clone(),
                keys: wanted.keys().cloned().collect(),
                protect: desired.protect,
                previous,
            };
            labels.insert(
                key.clone(),
                serde_json::to_string(&marker).unwrap_or_default(),
            );
            true
        })
        .await?;
        let mut props = BTreeMap::new();
        props.insert("node".to_string(), Value::from(selector.as_str()));
        props.insert(
            "labels".to_string(),
            Value::Map(
                wanted
                    .into_iter()
                    .map(|(k, v)| (k, Value::from(v)))
                    .collect(),
            ),
        );
        Ok(Observed {
            address: desired.address.clone(),
            id: node_id,
            props,
            protect: desired.protect,
        })
    }

    async fn remove_node_labels(
        &self,
        ctx: &OpContext,
        current: &Observed,
    ) -> Result<(), ProviderError> {
        let key = marker_key(&ctx.stack, current.address.name());
        let found = self
            .edit_node(&current.id, |labels| {
                let Some(marker) = labels
                    .get(&key)
                    .and_then(|m| serde_json::from_str::<NodeMarker>(m).ok())
                else {
                    return false;
                };
                for k in &marker.keys {
                    match marker.previous.get(k) {
                        Some(v) => labels.insert(k.clone(), v.clone()),
                        None => labels.remove(k),
                    };
                }
                labels.remove(&key);
                true
            })
            .await?;
        if found {
            Ok(())
        } else {
            Err(ProviderError::not_found(
                "NotFound",
                format!("{}: no marker on node {}", current.address, current.id),
            ))
        }
    }

    /// Read-modify-write of a node's labels with its current version, retried when another
    /// writer got in between. `edit` returns false to write nothing.
    async fn edit_node(
        &self,
        node_id: &str,
        mut edit: impl FnMut(&mut HashMap<String, String>) -> bool,
    ) -> Result<bool, ProviderError> {
        for attempt in 1..=SEQUENCE_ATTEMPTS {
            self.count();
            let node = self
                .docker
                .inspect_node(node_id)
                .await
                .map_err(|e| api_error(&format!("inspecting node {node_id}"), e))?;
            let version = node.version.and_then(|v| v.index).unwrap_or(0);
            let spec = node.spec.unwrap_or_default();
            let mut labels = spec.labels.clone().unwrap_or_default();
            if !edit(&mut labels) {
                return Ok(false);
            }
            let spec = NodeSpec {
                labels: Some(labels),
                ..spec
            };
            self.count();
            match self
                .docker
                .update_node(
                    node_id,
                    spec,
                    UpdateNodeOptions {
                        version: version as i64,
                    },
                )
                .await
            {
                Ok(()) => return Ok(true),
                Err(e) if out_of_sequence(&e) && attempt < SEQUENCE_ATTEMPTS => continue,
                Err(e) => return Err(api_error(&format!("updating node {node_id}"), e)),
            }
        }
        Err(ProviderError::retryable(
            "OutOfSequence",
            format!("node {node_id} kept changing under us"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_engines_maximum_version_is_read_from_its_refusal() {
        let v = max_version_from(
            "client version 1.53 is too new. Maximum supported API version is 1.41",
        )
        .unwrap();
        assert_eq!(v.to_string(), "1.41");
        assert!(max_version_from("page not found").is_none());
    }

    fn obs(address: &str, id: &str) -> Observed {
        Observed {
            address: address.parse().unwrap(),
            id: id.into(),
            props: BTreeMap::new(),
            protect: false,
        }
    }

    #[test]
    fn the_newest_object_of_an_address_wins_and_older_ones_are_deposed() {
        let out = settle_duplicates(vec![
            (
                obs("swarm_secret.token", "old000000000000"),
                "2026-11-27T06:22:11.3995Z".into(),
            ),
            (
                obs("swarm_secret.token", "new000000000000"),
                "2026-11-27T06:22:11.39951Z".into(),
            ),
            (
                obs("swarm_service.app", "svc"),
                "2026-11-27T06:00:00Z".into(),
            ),
        ]);
        let names: Vec<(String, String)> = out
            .iter()
            .map(|o| (o.address.to_string(), o.id.clone()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("swarm_secret.token".into(), "new000000000000".into()),
                (
                    "swarm_secret.token~old000000000".into(),
                    "old000000000000".into()
                ),
                ("swarm_service.app".into(), "svc".into()),
            ]
        );
    }
}
