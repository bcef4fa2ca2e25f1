//! The acceptance tests' view of a cluster: the deploy program against moto and a lab, and
//! what a person would check with `docker node ls` / `docker service ps` through a manager.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use bollard::query_parameters::{ListNodesOptions, ListTasksOptions};
use bollard::Docker;

/// One swarm node as `docker node ls` shows it, with its labels.
#[derive(Debug, Clone)]
#[allow(dead_code)] // id, hostname and availability are for the assertion messages (Debug)
pub(crate) struct NodeRow {
    pub(crate) id: String,
    pub(crate) hostname: String,
    pub(crate) manager: bool,
    pub(crate) ready: bool,
    pub(crate) active: bool,
    pub(crate) az: Option<String>,
    pub(crate) instance: Option<String>,
}

/// The cluster as seen through the lab's manager socket.
#[derive(Debug, Clone, Default)]
pub(crate) struct View {
    pub(crate) nodes: Vec<NodeRow>,
    /// service short name → AZ label of the node of each running task
    pub(crate) running: BTreeMap<String, Vec<String>>,
}

impl View {
    pub(crate) fn ready_managers(&self) -> Vec<&NodeRow> {
        self.nodes.iter().filter(|n| n.manager && n.ready).collect()
    }
    pub(crate) fn ready_workers(&self) -> Vec<&NodeRow> {
        self.nodes
            .iter()
            .filter(|n| !n.manager && n.ready)
            .collect()
    }
    pub(crate) fn manager_azs(&self) -> BTreeSet<String> {
        self.ready_managers()
            .iter()
            .filter_map(|n| n.az.clone())
            .collect()
    }
    pub(crate) fn down(&self) -> Vec<&NodeRow> {
        self.nodes.iter().filter(|n| !n.ready).collect()
    }
    pub(crate) fn replicas(&self, service: &str) -> usize {
        self.running.get(service).map_or(0, Vec::len)
    }
    pub(crate) fn service_azs(&self, service: &str) -> BTreeSet<String> {
        self.running
            .get(service)
            .map(|v| v.iter().cloned().collect())
            .unwrap_or_default()
    }
    /// Healthy: `managers` managers Ready in distinct labelled AZs, `workers` workers Ready and
    /// labelled, no node left down.
    pub(crate) fn healthy(&self, managers: usize, workers: usize) -> bool {
        self.ready_managers().len() == managers
            && self.manager_azs().len() == managers
            && self.ready_workers().len() == workers
            && self
                .nodes
                .iter()
                .all(|n| n.az.is_some() && n.instance.is_some())
            && self.down().is_empty()
    }
}

/// Reads nodes and running tasks of `stack` through `host` (one bounded attempt).
pub(crate) async fn view(host: &str, stack: &str) -> Result<View, String> {
    let docker = Docker::connect_with_unix(
        host.trim_start_matches("unix://"),
        10,
        bollard::API_DEFAULT_VERSION,
    )
    .map_err(|e| e.to_string())?;
    let nodes = docker
        .list_nodes(None::<ListNodesOptions>)
        .await
        .map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    let mut az_of = BTreeMap::new();
    for n in nodes {
        let spec = n.spec.clone().unwrap_or_default();
        let labels = spec.labels.clone().unwrap_or_default();
        let id = n.id.clone().unwrap_or_default();
        let az = labels.get("az").cloned();
        az_of.insert(id.clone(), az.clone().unwrap_or_default());
        rows.push(NodeRow {
            id,
            hostname: n
                .description
                .as_ref()
                .and_then(|d| d.hostname.clone())
                .unwrap_or_default(),
            manager: matches!(spec.role, Some(bollard::models::NodeSpecRoleEnum::MANAGER)),
            ready: matches!(
                n.status.as_ref().and_then(|s| s.state),
                Some(bollard::models::NodeState::READY)
            ),
            active: matches!(
                spec.availability,
                Some(bollard::models::NodeSpecAvailabilityEnum::ACTIVE)
            ),
            az,
            instance: labels.get("instance").cloned(),
        });
    }
    let mut filters = std::collections::HashMap::new();
    filters.insert("desired-state".to_string(), vec!["running".to_string()]);
    let tasks = docker
        .list_tasks(Some(ListTasksOptions {
            filters: Some(filters),
        }))
        .await
        .map_err(|e| e.to_string())?;
    let services = docker
        .list_services(None::<bollard::query_parameters::ListServicesOptions>)
        .await
        .map_err(|e| e.to_string())?;
    let name_of: BTreeMap<String, String> = services
        .iter()
        .filter_map(|s| {
            let name = s.spec.as_ref()?.name.clone()?;
            let short = name.strip_prefix(&format!("{stack}_"))?.to_string();
            Some((s.id.clone()?, short))
        })
        .collect();
    let mut running: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for t in tasks {
        let state = t.status.as_ref().and_then(|s| s.state);
        if state != Some(bollard::models::TaskState::RUNNING) {
            continue;
        }
        let Some(short) = t.service_id.as_ref().and_then(|s| name_of.get(s)) else {
            continue;
        };
        let az = t
            .node_id
            .as_ref()
            .and_then(|n| az_of.get(n))
            .cloned()
            .unwrap_or_default();
        running.entry(short.clone()).or_default().push(az);
    }
    Ok(View {
        nodes: rows,
        running,
    })
}

/// Polls [`view`] until `ok` holds, at most `timeout` (1 s apart). Returns the time it took and
/// the last view; the error carries the last view (or the last error) for the assertion message.
pub(crate) async fn wait_until(
    host: &str,
    stack: &str,
    timeout: Duration,
    what: &str,
    ok: impl Fn(&View) -> bool,
) -> Result<(Duration, View), String> {
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed() < timeout {
        match view(host, stack).await {
            Ok(v) if ok(&v) => return Ok((start.elapsed(), v)),
            Ok(v) => last = format!("{v:#?}"),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Err(format!(
        "{what}: not within {timeout:?}; last seen:\n{last}"
    ))
}

/// The deploy program (`--env lab`) against moto and the lab's manager socket.
pub(crate) fn deploy(
    dir: &std::path::Path,
    stack: &str,
    docker_host: &str,
    args: &[&str],
) -> Output {
    Command::new(infra_test_support::example_binary("production"))
        .args(["--target", "live", "--env", "lab", "--stack", stack])
        .args(args)
        .env("INFRA_AUDIT_LOG", dir.join("audit.jsonl"))
        .env("DOCKER_HOST", docker_host)
        .env_remove("INFRA_TARGET")
        .env_remove("INFRA_ENV")
        .output()
        .unwrap()
}
