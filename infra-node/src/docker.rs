//! The Docker Engine calls the agent makes (bollard), each one thin; reads and node updates are
//! retried with the project's backoff ([`infra_core::retry`]).

use std::collections::HashMap;
use std::time::Duration;

use bollard::errors::Error as DockerError;
use bollard::models::{
    LocalNodeState, Node, NodeSpec, NodeSpecAvailabilityEnum, NodeSpecRoleEnum, NodeState,
    Reachability, Service, ServiceUpdateStatusStateEnum, SwarmInitRequest, SwarmJoinRequest, Task,
    TaskState,
};
use bollard::query_parameters::{
    DeleteNodeOptionsBuilder, InspectServiceOptions, LeaveSwarmOptionsBuilder,
    ListContainersOptionsBuilder, ListServicesOptions, ListTasksOptions, UpdateNodeOptionsBuilder,
    UpdateServiceOptions,
};
use bollard::{ClientVersion, Docker, API_DEFAULT_VERSION};
use infra_core::provider::ProviderError;
use infra_core::retry::{poll, retry, PollPolicy, Probe, RetryPolicy};

use crate::error::{Failure, FailureKind, Secret};
use crate::plan::{Availability, NodeStatus, Role, SpreadService, SwarmNode};

/// The swarm port (managers listen on it; joins go to it).
pub const SWARM_PORT: u16 = 2377;
/// Seconds the handshake (`/version`) waits for an answer.
const HANDSHAKE_TIMEOUT_SECS: u64 = 10;
/// Seconds any other request may take (a join waits up to ~20 s inside the engine).
const REQUEST_TIMEOUT_SECS: u64 = 120;
/// The label Swarm puts on every task's container.
const TASK_LABEL: &str = "com.docker.swarm.task.id";

/// A Docker error as a [`ProviderError`]: connection problems, 503s and raft hiccups are
/// retryable (so is an update with a stale version), 404 is not-found, the rest fatal.
pub fn api_error(what: &str, e: DockerError) -> ProviderError {
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

/// The engine's message for a failed call (its own words for a refused request).
fn engine_message(e: &DockerError) -> String {
    match e {
        DockerError::DockerResponseServerError { message, .. } => message.clone(),
        e => e.to_string(),
    }
}

/// The local node's swarm state (`docker info`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalState {
    /// `inactive`, `pending`, `active`, `error`, `locked`.
    pub state: String,
    /// The node ID, once in a swarm.
    pub node_id: Option<String>,
    /// Whether this node is a manager (serves the swarm API).
    pub control: bool,
    /// The engine's swarm error, if any.
    pub error: Option<String>,
}

impl LocalState {
    /// In a swarm.
    pub fn active(&self) -> bool {
        self.state == "active"
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

/// A Docker engine (`DOCKER_HOST` or the local socket).
#[derive(Clone, Debug)]
pub struct Engine {
    docker: Docker,
    endpoint: String,
    policy: RetryPolicy,
}

fn client(host: &str, version: &ClientVersion) -> Result<Docker, String> {
    let r = if host.starts_with("unix://") || host.starts_with('/') {
        Docker::connect_with_socket(host, HANDSHAKE_TIMEOUT_SECS, version)
    } else if host.starts_with("tcp://") || host.starts_with("http://") {
        Docker::connect_with_http(host, HANDSHAKE_TIMEOUT_SECS, version)
    } else {
        return Err(format!(
            "unsupported DOCKER_HOST {host:?}: use unix://, tcp:// or http://"
        ));
    };
    r.map_err(|e| e.to_string())
}

/// One handshake: `/version`, with the API version lowered to what the engine speaks.
async fn handshake(host: &str) -> Result<Docker, String> {
    let docker = client(host, API_DEFAULT_VERSION)?;
    let docker = match docker.version().await {
        Ok(_) => docker,
        Err(DockerError::DockerResponseServerError { message, .. })
            if max_version_from(&message).is_some() =>
        {
            let max = max_version_from(&message).unwrap_or(*API_DEFAULT_VERSION);
            let docker = client(host, &max)?;
            docker.version().await.map_err(|e| engine_message(&e))?;
            docker
        }
        Err(DockerError::RequestTimeoutError) => {
            return Err(format!(
                "it accepted the connection but did not answer within {HANDSHAKE_TIMEOUT_SECS} s"
            ))
        }
        Err(e) => return Err(engine_message(&e)),
    };
    let docker = docker
        .negotiate_version()
        .await
        .map_err(|e| engine_message(&e))?;
    Ok(docker.with_timeout(Duration::from_secs(REQUEST_TIMEOUT_SECS)))
}

fn role_of(node: &Node) -> Role {
    match node.spec.as_ref().and_then(|s| s.role) {
        Some(NodeSpecRoleEnum::MANAGER) => Role::Manager,
        _ => Role::Worker,
    }
}

/// A node as the agent's decisions see it.
pub fn swarm_node(node: &Node) -> SwarmNode {
    let spec = node.spec.clone().unwrap_or_default();
    let manager = node.manager_status.clone().unwrap_or_default();
    SwarmNode {
        id: node.id.clone().unwrap_or_default(),
        role: role_of(node),
        availability: match spec.availability {
            Some(NodeSpecAvailabilityEnum::DRAIN) => Availability::Drain,
            Some(NodeSpecAvailabilityEnum::PAUSE) => Availability::Pause,
            _ => Availability::Active,
        },
        status: match node.status.as_ref().and_then(|s| s.state) {
            Some(NodeState::READY) => NodeStatus::Ready,
            Some(NodeState::DOWN) => NodeStatus::Down,
            _ => NodeStatus::Other,
        },
        labels: spec.labels.unwrap_or_default().into_iter().collect(),
        reachable: manager.reachability == Some(Reachability::REACHABLE),
        leader: manager.leader == Some(true),
        described: node
            .description
            .as_ref()
            .and_then(|d| d.hostname.as_deref())
            .is_some_and(|h| !h.is_empty()),
    }
}

impl Engine {
    /// Connects to `host` (`unix:///var/run/docker.sock`, `tcp://…`), trying until `budget`
    /// runs out (at boot the engine may still be starting): a [`FailureKind::Docker`] failure
    /// when it never answers.
    pub async fn connect(
        host: &str,
        budget: Duration,
        policy: RetryPolicy,
    ) -> Result<Self, Failure> {
        let last = std::sync::Mutex::new(String::new());
        let found = poll(
            "the Docker engine",
            &PollPolicy::new(budget, Duration::from_millis(500), Duration::from_secs(5)),
            || async {
                Ok(match handshake(host).await {
                    Ok(d) => Probe::Done(d),
                    Err(e) => {
                        *last.lock().unwrap_or_else(|p| p.into_inner()) = e.clone();
                        Probe::Waiting(e)
                    }
                })
            },
        )
        .await;
        match found {
            Ok(docker) => Ok(Engine {
                docker,
                endpoint: host.to_string(),
                policy,
            }),
            Err(_) => Err(Failure::new(
                FailureKind::Docker,
                "docker",
                format!(
                    "the Docker engine at {host} did not answer within {} s: {}",
                    budget.as_secs(),
                    last.lock().unwrap_or_else(|p| p.into_inner())
                ),
            )),
        }
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The local node's swarm state.
    pub async fn state(&self) -> Result<LocalState, ProviderError> {
        let info = retry(&self.policy, "docker info", || async {
            self.docker
                .info()
                .await
                .map_err(|e| api_error("docker info", e))
        })
        .await?;
        let swarm = info.swarm.unwrap_or_default();
        Ok(LocalState {
            state: swarm
                .local_node_state
                .unwrap_or(LocalNodeState::EMPTY)
                .to_string(),
            node_id: swarm.node_id.filter(|s| !s.is_empty()),
            control: swarm.control_available == Some(true),
            error: swarm.error.filter(|s| !s.is_empty()),
        })
    }

    /// `docker swarm init --advertise-addr <ip> --listen-addr 0.0.0.0:2377` (not retried: a
    /// lost answer is told by [`Engine::state`]).
    pub async fn init(&self, ip: &str) -> Result<(), ProviderError> {
        self.docker
            .init_swarm(SwarmInitRequest {
                advertise_addr: Some(ip.to_string()),
                listen_addr: Some(format!("0.0.0.0:{SWARM_PORT}")),
                ..Default::default()
            })
            .await
            .map(drop)
            .map_err(|e| api_error("docker swarm init", e))
    }

    /// The swarm's join tokens: (worker, manager).
    pub async fn join_tokens(&self) -> Result<(Secret, Secret), ProviderError> {
        let swarm = retry(&self.policy, "docker swarm inspect", || async {
            self.docker
                .inspect_swarm()
                .await
                .map_err(|e| api_error("docker swarm inspect", e))
        })
        .await?;
        let tokens = swarm.join_tokens.unwrap_or_default();
        match (tokens.worker, tokens.manager) {
            (Some(w), Some(m)) if !w.is_empty() && !m.is_empty() => {
                Ok((Secret::new(w), Secret::new(m)))
            }
            _ => Err(ProviderError::fatal(
                "NoTokens",
                "docker swarm inspect: the swarm reports no join tokens",
            )),
        }
    }

    /// `docker swarm join --token … --advertise-addr <ip> --listen-addr 0.0.0.0:2377 <remote>`:
    /// the engine's own message on failure (with the token, should it ever appear, redacted).
    pub async fn join(&self, remote: &str, token: &Secret, ip: &str) -> Result<(), String> {
        self.docker
            .join_swarm(SwarmJoinRequest {
                advertise_addr: Some(ip.to_string()),
                listen_addr: Some(format!("0.0.0.0:{SWARM_PORT}")),
                remote_addrs: Some(vec![remote.to_string()]),
                join_token: Some(token.expose().to_string()),
                ..Default::default()
            })
            .await
            .map_err(|e| {
                let m = engine_message(&e);
                if token.expose().is_empty() {
                    m
                } else {
                    m.replace(token.expose(), "<redacted>")
                }
            })
    }

    /// `docker swarm leave` (`--force` when `force`).
    pub async fn leave(&self, force: bool) -> Result<(), ProviderError> {
        let r = self
            .docker
            .leave_swarm(Some(LeaveSwarmOptionsBuilder::new().force(force).build()))
            .await;
        match r {
            // Not in a swarm (a retried leave whose first answer was lost): done.
            Err(DockerError::DockerResponseServerError {
                status_code: 503,
                ref message,
            }) if message.contains("not part of a swarm") => Ok(()),
            r => r.map_err(|e| api_error("docker swarm leave", e)),
        }
    }

    /// Every node of the swarm (managers only).
    pub async fn nodes(&self) -> Result<Vec<SwarmNode>, ProviderError> {
        let nodes = retry(&self.policy, "docker node ls", || async {
            self.docker
                .list_nodes(None)
                .await
                .map_err(|e| api_error("docker node ls", e))
        })
        .await?;
        Ok(nodes.iter().map(swarm_node).collect())
    }

    /// Changes a node's spec with `change` on its current spec (re-inspected on every attempt,
    /// so an update that met a concurrent one is redone on the new version). `change` returns
    /// whether anything changed; nothing is sent when not.
    pub async fn update_node<F>(&self, id: &str, change: F) -> Result<bool, ProviderError>
    where
        F: Fn(&mut NodeSpec) -> bool,
    {
        let what = format!("docker node update {id}");
        retry(&self.policy, &what, || async {
            let node = self
                .docker
                .inspect_node(id)
                .await
                .map_err(|e| api_error(&what, e))?;
            let version = node.version.and_then(|v| v.index).unwrap_or_default();
            let mut spec = node.spec.unwrap_or_default();
            if !change(&mut spec) {
                return Ok(false);
            }
            self.docker
                .update_node(
                    id,
                    spec,
                    UpdateNodeOptionsBuilder::new()
                        .version(version as i64)
                        .build(),
                )
                .await
                .map(|_| true)
                .map_err(|e| api_error(&what, e))
        })
        .await
    }

    /// Sets labels on a node (others are kept) and, with `drain`, drains it.
    pub async fn apply(
        &self,
        id: &str,
        labels: &std::collections::BTreeMap<String, String>,
        drain: bool,
    ) -> Result<bool, ProviderError> {
        self.update_node(id, |spec| {
            let current = spec.labels.get_or_insert_with(HashMap::new);
            let mut changed = false;
            for (k, v) in labels {
                if current.get(k) != Some(v) {
                    current.insert(k.clone(), v.clone());
                    changed = true;
                }
            }
            if drain && spec.availability != Some(NodeSpecAvailabilityEnum::DRAIN) {
                spec.availability = Some(NodeSpecAvailabilityEnum::DRAIN);
                changed = true;
            }
            changed
        })
        .await
    }

    /// Sets labels on a node (others are kept).
    pub async fn set_labels(
        &self,
        id: &str,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> Result<bool, ProviderError> {
        self.apply(id, labels, false).await
    }

    /// Drains a node.
    pub async fn drain(&self, id: &str) -> Result<bool, ProviderError> {
        self.apply(id, &Default::default(), true).await
    }

    /// Demotes a manager to a worker.
    pub async fn demote(&self, id: &str) -> Result<bool, ProviderError> {
        self.update_node(id, |spec| {
            let changed = spec.role != Some(NodeSpecRoleEnum::WORKER);
            spec.role = Some(NodeSpecRoleEnum::WORKER);
            changed
        })
        .await
    }

    /// `docker node rm --force`.
    pub async fn remove_node(&self, id: &str) -> Result<(), ProviderError> {
        let what = format!("docker node rm {id}");
        let r = retry(&self.policy, &what, || async {
            self.docker
                .delete_node(
                    id,
                    Some(DeleteNodeOptionsBuilder::new().force(true).build()),
                )
                .await
                .map_err(|e| api_error(&what, e))
        })
        .await;
        match r {
            Err(e) if e.class == infra_core::provider::ErrorClass::NotFound => Ok(()),
            r => r,
        }
    }

    /// One reading of the services and their running tasks (one `docker service ls`, one
    /// `docker service ps`), as the leader's duties need it (managers only).
    pub async fn services(&self) -> Result<ServiceSnapshot, ProviderError> {
        let services = retry(&self.policy, "docker service ls", || async {
            self.docker
                .list_services(None::<ListServicesOptions>)
                .await
                .map_err(|e| api_error("docker service ls", e))
        })
        .await?;
        let filters = HashMap::from([("desired-state".to_string(), vec!["running".to_string()])]);
        let tasks = retry(&self.policy, "docker service ps", || async {
            self.docker
                .list_tasks(Some(ListTasksOptions {
                    filters: Some(filters.clone()),
                }))
                .await
                .map_err(|e| api_error("docker service ps", e))
        })
        .await?;
        Ok(snapshot(&services, &tasks))
    }

    /// Forces a rolling update of a service (ForceUpdate + 1, as `docker service update --force`):
    /// Swarm places its tasks again, spreading them over the nodes there are now.
    pub async fn force_update(&self, id: &str) -> Result<(), ProviderError> {
        retry(&self.policy, "docker service update --force", || async {
            let svc = self
                .docker
                .inspect_service(id, None::<InspectServiceOptions>)
                .await
                .map_err(|e| api_error("docker service inspect", e))?;
            let version = svc.version.and_then(|v| v.index).unwrap_or(0);
            let mut spec = svc.spec.unwrap_or_default();
            if let Some(t) = spec.task_template.as_mut() {
                t.force_update = Some(t.force_update.unwrap_or(0) + 1);
            }
            let options = UpdateServiceOptions {
                version: i32::try_from(version).unwrap_or(i32::MAX),
                ..Default::default()
            };
            self.docker
                .update_service(id, spec, options, None)
                .await
                .map(drop)
                .map_err(|e| api_error("docker service update --force", e))
        })
        .await
    }

    /// How many swarm task containers run on this engine.
    pub async fn running_tasks(&self) -> Result<usize, ProviderError> {
        let filters = HashMap::from([("label", vec![TASK_LABEL]), ("status", vec!["running"])]);
        let list = retry(&self.policy, "docker ps", || async {
            self.docker
                .list_containers(Some(
                    ListContainersOptionsBuilder::new()
                        .filters(&filters)
                        .build(),
                ))
                .await
                .map_err(|e| api_error("docker ps", e))
        })
        .await?;
        Ok(list.len())
    }
}

/// What the leader needs to know of the services, from one reading.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceSnapshot {
    /// Every replicated service runs all its declared replicas (nothing is being rescheduled):
    /// the leader drains the next leaving node only then.
    pub settled: bool,
    /// The replicated services placed with a spread preference on a node label
    /// (`node.labels.<key>`), with the nodes of their running tasks.
    pub spread: Vec<SpreadService>,
}

/// Reads a [`ServiceSnapshot`] off a service list and the tasks whose desired state is running.
fn snapshot(services: &[Service], tasks: &[Task]) -> ServiceSnapshot {
    let mut out = ServiceSnapshot {
        settled: true,
        spread: Vec::new(),
    };
    for svc in services {
        let (Some(id), Some(spec)) = (svc.id.as_ref(), svc.spec.as_ref()) else {
            continue;
        };
        let Some(replicas) = spec
            .mode
            .as_ref()
            .and_then(|m| m.replicated.as_ref())
            .and_then(|r| r.replicas)
        else {
            continue;
        };
        let task_nodes: Vec<String> = tasks
            .iter()
            .filter(|t| t.service_id.as_ref() == Some(id))
            .filter(|t| t.status.as_ref().and_then(|s| s.state) == Some(TaskState::RUNNING))
            .filter_map(|t| t.node_id.clone())
            .collect();
        if (task_nodes.len() as i64) < replicas {
            out.settled = false;
        }
        let label = spec
            .task_template
            .as_ref()
            .and_then(|t| t.placement.as_ref())
            .and_then(|p| p.preferences.as_ref())
            .and_then(|prefs| {
                prefs.iter().find_map(|p| {
                    p.spread
                        .as_ref()
                        .and_then(|s| s.spread_descriptor.as_deref())
                        .and_then(|d| d.strip_prefix("node.labels."))
                        .map(str::to_string)
                })
            });
        let Some(label) = label else {
            continue;
        };
        let updating = matches!(
            svc.update_status.as_ref().and_then(|u| u.state),
            Some(
                ServiceUpdateStatusStateEnum::UPDATING
                    | ServiceUpdateStatusStateEnum::ROLLBACK_STARTED
            )
        );
        out.spread.push(SpreadService {
            id: id.clone(),
            name: spec.name.clone().unwrap_or_default(),
            label,
            replicas: u64::try_from(replicas).unwrap_or(0),
            updating,
            task_nodes,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{ManagerStatus, NodeStatus as DockerNodeStatus, ObjectVersion};

    fn service(id: &str, replicas: i64, spread: Option<&str>) -> Service {
        use bollard::models::{
            ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated, TaskSpec, TaskSpecPlacement,
            TaskSpecPlacementPreferences, TaskSpecPlacementSpread,
        };
        Service {
            id: Some(id.into()),
            spec: Some(ServiceSpec {
                name: Some(format!("s_{id}")),
                mode: Some(ServiceSpecMode {
                    replicated: Some(ServiceSpecModeReplicated {
                        replicas: Some(replicas),
                    }),
                    ..Default::default()
                }),
                task_template: Some(TaskSpec {
                    placement: Some(TaskSpecPlacement {
                        preferences: spread.map(|label| {
                            vec![TaskSpecPlacementPreferences {
                                spread: Some(TaskSpecPlacementSpread {
                                    spread_descriptor: Some(format!("node.labels.{label}")),
                                }),
                            }]
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn task(service: &str, node: &str, state: TaskState) -> Task {
        Task {
            service_id: Some(service.into()),
            node_id: Some(node.into()),
            status: Some(bollard::models::TaskStatus {
                state: Some(state),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn one_reading_tells_settled_and_the_spread_services() {
        let services = [
            service("app", 2, Some("az")),
            service("es", 1, None),
            Service {
                id: Some("shipper".into()),
                spec: Some(bollard::models::ServiceSpec::default()),
                ..Default::default()
            },
        ];
        let tasks = [
            task("app", "n1", TaskState::RUNNING),
            task("app", "n2", TaskState::RUNNING),
            task("es", "n1", TaskState::RUNNING),
            task("shipper", "n1", TaskState::RUNNING),
        ];
        let s = snapshot(&services, &tasks);
        assert!(s.settled);
        assert_eq!(s.spread.len(), 1, "only the service spread over a label");
        assert_eq!(
            (
                s.spread[0].label.as_str(),
                s.spread[0].replicas,
                s.spread[0].task_nodes.clone()
            ),
            ("az", 2, vec!["n1".to_string(), "n2".to_string()])
        );

        // a task still starting: not settled, and it isn't counted where it runs
        let tasks = [
            task("app", "n1", TaskState::RUNNING),
            task("app", "n2", TaskState::STARTING),
            task("es", "n1", TaskState::RUNNING),
        ];
        let s = snapshot(&services, &tasks);
        assert!(!s.settled);
        assert_eq!(s.spread[0].task_nodes, vec!["n1".to_string()]);

        // a replicated service without a spread preference counts for settled too
        let tasks = [
            task("app", "n1", TaskState::RUNNING),
            task("app", "n2", TaskState::RUNNING),
        ];
        assert!(!snapshot(&services, &tasks).settled);
    }

    #[test]
    fn a_too_new_refusal_names_the_version_to_use() {
        let v = max_version_from(
            "client version 1.52 is too new. Maximum supported API version is 1.41",
        )
        .unwrap();
        assert_eq!((v.major_version, v.minor_version), (1, 41));
        assert!(max_version_from("page not found").is_none());
    }

    #[test]
    fn nodes_are_read_as_the_decisions_need_them() {
        let node = Node {
            id: Some("n1".into()),
            version: Some(ObjectVersion { index: Some(9) }),
            spec: Some(NodeSpec {
                labels: Some(HashMap::from([("az".into(), "us-east-1a".into())])),
                role: Some(NodeSpecRoleEnum::MANAGER),
                availability: Some(NodeSpecAvailabilityEnum::DRAIN),
                ..Default::default()
            }),
            status: Some(DockerNodeStatus {
                state: Some(NodeState::DOWN),
                ..Default::default()
            }),
            manager_status: Some(ManagerStatus {
                leader: Some(true),
                reachability: Some(Reachability::REACHABLE),
                ..Default::default()
            }),
            ..Default::default()
        };
        let n = swarm_node(&node);
        assert_eq!(n.id, "n1");
        assert_eq!(n.role, Role::Manager);
        assert_eq!(n.availability, Availability::Drain);
        assert_eq!(n.status, NodeStatus::Down);
        assert_eq!(n.labels["az"], "us-east-1a");
        assert!(n.reachable && n.leader);
        let worker = swarm_node(&Node::default());
        assert_eq!(
            (worker.role, worker.status, worker.reachable, worker.leader),
            (Role::Worker, NodeStatus::Other, false, false)
        );
    }

    #[test]
    fn engine_refusals_are_classified() {
        let e = api_error(
            "x",
            DockerError::DockerResponseServerError {
                status_code: 500,
                message: "update out of sequence".into(),
            },
        );
        assert!(e.is_retryable());
        let e = api_error(
            "x",
            DockerError::DockerResponseServerError {
                status_code: 404,
                message: "node n1 not found".into(),
            },
        );
        assert_eq!(e.class, infra_core::provider::ErrorClass::NotFound);
        let e = api_error(
            "x",
            DockerError::DockerResponseServerError {
                status_code: 400,
                message: "invalid".into(),
            },
        );
        assert!(!e.is_retryable());
    }
}
