//! The connection: the bollard client, API version negotiation, and the checks that the engine
//! is a swarm manager.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bollard::errors::Error as DockerError;
use bollard::{ClientVersion, Docker, API_DEFAULT_VERSION};
use infra_core::registry::Registry;

use super::kinds::handlers;
use super::SwarmProvider;

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

/// What every kind handler works through, handed to each call: the engine, the node the
/// provider is connected to, how long changes may take to converge, and the API call count.
pub(crate) struct Client {
    pub(crate) docker: Docker,
    /// The connected node's ID (`self` in [`crate::NodeLabels::node`]).
    pub(crate) node_id: String,
    /// The swarm's (cluster's) ID.
    pub(crate) swarm_id: String,
    /// How long a change may take to converge (and a removal to finish).
    pub(crate) converge_timeout: Duration,
    /// The first pause of a poll.
    pub(crate) poll_interval: Duration,
    calls: AtomicU64,
}

impl Client {
    /// Counts one API call (reported by reads and [`infra_core::provider::Provider::api_calls`]).
    pub(crate) fn count(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    /// API calls made so far.
    pub(crate) fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
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

/// A handshake failure in words: bollard's timeout says only "Timeout error".
fn handshake_error(e: &DockerError) -> String {
    match e {
        DockerError::RequestTimeoutError => format!(
            "it accepted the connection but did not answer within {HANDSHAKE_TIMEOUT_SECS} s (is it a Docker engine?)"
        ),
        e => e.to_string(),
    }
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
            endpoint: host.to_string(),
            client: Client {
                docker: docker.with_timeout(Duration::from_secs(REQUEST_TIMEOUT_SECS)),
                node_id: swarm.node_id.unwrap_or_default(),
                swarm_id: swarm.cluster.and_then(|c| c.id).unwrap_or_default(),
                converge_timeout: Duration::from_secs(timeout),
                poll_interval: Duration::from_millis(200),
                calls: AtomicU64::new(0),
            },
            kinds: Registry::new(crate::PROVIDER, handlers()),
        })
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
}
