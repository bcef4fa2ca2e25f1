//! The supervisor: follows moto every poll interval and boots, drains, stops and replaces nodes;
//! and the `manager.sock` forwarder.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::node::{self, BootPlan};
use crate::teardown::LabStatus;
use crate::{Inner, LabError, NodeRec, NodeState, NodeView};

/// ASG lifecycle states in which an instance is (becoming) in service.
const STARTING: &[&str] = &["Pending", "Pending:Wait", "Pending:Proceed", "InService"];

pub(crate) async fn run(inner: Arc<Inner>, mut stop: watch::Receiver<bool>) {
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut cidrs: HashMap<String, String> = HashMap::new();
    let mut last_error: Option<String> = None;
    let deadline = inner.started + inner.cfg.max_lifetime;
    // bounded by the lab's lifetime (and ended by `down`)
    loop {
        if inner.stopping() || *stop.borrow() {
            break;
        }
        if Instant::now() >= deadline {
            inner.event("", "lifetime", "the supervisor stops following moto");
            break;
        }
        while tasks.try_join_next().is_some() {}
        let ticked = tokio::select! {
            r = tick(&inner, &mut tasks, &mut cidrs) => r,
            _ = stop.changed() => break,
        };
        match ticked {
            Ok(()) => last_error = None,
            Err(e) => {
                let msg = e.to_string();
                if last_error.as_deref() != Some(msg.as_str()) {
                    inner.event("", "aws-error", msg.clone());
                }
                last_error = Some(msg);
            }
        }
        update_manager(&inner).await;
        write_status(&inner);
        tokio::select! {
            _ = tokio::time::sleep(inner.cfg.poll) => {}
            _ = stop.changed() => {}
        }
    }
    tasks.shutdown().await;
}

async fn tick(
    inner: &Arc<Inner>,
    tasks: &mut JoinSet<()>,
    cidrs: &mut HashMap<String, String>,
) -> Result<(), LabError> {
    let groups = inner.aws.groups(&inner.names.stack).await?;
    let live: Vec<NodeView> = inner.views().into_iter().filter(|v| v.is_live()).collect();
    let known: HashSet<String> = inner.views().into_iter().map(|v| v.instance_id).collect();
    // in service (or on its way) according to its ASG: running, no need to ask EC2
    let in_service: HashSet<&str> = groups
        .iter()
        .flat_map(|g| g.instances.iter())
        .filter(|(_, lifecycle)| STARTING.contains(&lifecycle.as_str()))
        .map(|(id, _)| id.as_str())
        .collect();
    // held by its ASG on the way out (AWS: Terminating:Wait while a hook waits; moto never)
    let leaving: HashSet<&str> = groups
        .iter()
        .flat_map(|g| g.instances.iter())
        .filter(|(_, lifecycle)| lifecycle.starts_with("Terminating"))
        .map(|(id, _)| id.as_str())
        .collect();
    // EC2 is asked about new instances (their addresses) and about nodes whose instance left
    // its ASG's service (terminated?): one DescribeAutoScalingGroups per quiet tick, as moto
    // answers one request at a time
    let ask: BTreeSet<String> = in_service
        .iter()
        .filter(|id| !known.contains(**id))
        .map(|id| id.to_string())
        .chain(
            live.iter()
                .filter(|v| !in_service.contains(v.instance_id.as_str()))
                .map(|v| v.instance_id.clone()),
        )
        .collect();
    let insts = if ask.is_empty() {
        HashMap::new()
    } else {
        inner
            .aws
            .instances(&ask.into_iter().collect::<Vec<_>>())
            .await?
    };

    // live nodes: died, or their instance terminated
    for v in &live {
        let (exited, stopping) = {
            let st = inner.lock();
            match st.nodes.get(&v.n) {
                Some(r) => (r.dockerd_exited, r.stopping),
                None => continue,
            }
        };
        if stopping || v.state == NodeState::Booting {
            continue;
        }
        let running = in_service.contains(v.instance_id.as_str())
            || (!leaving.contains(v.instance_id.as_str())
                && insts.get(&v.instance_id).is_some_and(|i| i.running()));
        if exited {
            mark_stopping(inner, v.n);
            tasks.spawn(died(inner.clone(), v.clone(), running));
        } else if !running {
            mark_stopping(inner, v.n);
            tasks.spawn(terminate(inner.clone(), v.clone()));
        }
    }

    // new instances
    let mut known = known;
    for g in &groups {
        if inner.cfg.skip_roles.contains(&g.role) {
            continue;
        }
        for (id, lifecycle) in &g.instances {
            if known.contains(id) || !STARTING.contains(&lifecycle.as_str()) {
                continue;
            }
            let Some(inst) = insts.get(id).filter(|i| i.running()) else {
                continue;
            };
            let (Some(ip), Some(subnet)) = (inst.ip.clone(), inst.subnet.clone()) else {
                continue;
            };
            let subnet_cidr = match cidrs.get(&subnet) {
                Some(c) => c.clone(),
                None => {
                    let c = inner.aws.subnet_cidr(&subnet).await?;
                    cidrs.insert(subnet.clone(), c.clone());
                    c
                }
            };
            let vpc_cidr = match &inst.vpc {
                Some(vpc) => match cidrs.get(vpc) {
                    Some(c) => Some(c.clone()),
                    None => {
                        let c = inner.aws.vpc_cidr(vpc).await?;
                        cidrs.insert(vpc.clone(), c.clone());
                        Some(c)
                    }
                },
                None => None,
            };
            let prefix: u8 = subnet_cidr
                .split('/')
                .nth(1)
                .and_then(|p| p.parse().ok())
                .filter(|p| (8..=30).contains(p))
                .ok_or_else(|| LabError::Aws {
                    op: "DescribeSubnets".into(),
                    msg: format!("subnet {subnet}: unusable CIDR {subnet_cidr}"),
                })?;
            known.insert(id.clone());
            let plan = {
                let mut st = inner.lock();
                let az = choose_az(&st.nodes, &g.name, &g.zones, inst.az.as_deref());
                let n = st.next_n;
                st.next_n += 1;
                let fault = st.faults.get(id).copied().unwrap_or(st.default_fault);
                let dir = inner.names.node_dir(n);
                st.nodes.insert(
                    n,
                    NodeRec {
                        view: NodeView {
                            n,
                            instance_id: id.clone(),
                            asg: g.name.clone(),
                            role: g.role.clone(),
                            az: az.clone(),
                            ip: ip.clone(),
                            docker_host: format!("unix://{}", dir.join("docker.sock").display()),
                            imds_endpoint: String::new(),
                            netns: inner.names.netns(n),
                            dir,
                            state: NodeState::Booting,
                            agent_exit: None,
                            killed: false,
                            error: None,
                            boot_time: None,
                        },
                        imds: None,
                        docker: None,
                        dockerd_exited: false,
                        stopping: false,
                        seen: Instant::now(),
                    },
                );
                BootPlan {
                    n,
                    instance_id: id.clone(),
                    az,
                    ip,
                    prefix,
                    vpc_cidr: vpc_cidr.filter(|c| *c != subnet_cidr),
                    role: g.role.clone(),
                    asg: g.name.clone(),
                    fault,
                }
            };
            inner.event(
                id,
                "boot",
                format!(
                    "n{} {} {}/{} {} ({})",
                    plan.n, g.name, plan.ip, plan.prefix, plan.az, g.role
                ),
            );
            tasks.spawn(node::boot(inner.clone(), plan));
        }
    }
    Ok(())
}

/// The ASG's zone with the fewest live nodes of that ASG (first in the ASG's order on a tie);
/// the instance's own zone when the ASG lists none.
fn choose_az(
    nodes: &std::collections::BTreeMap<u32, NodeRec>,
    asg: &str,
    zones: &[String],
    own: Option<&str>,
) -> String {
    if zones.is_empty() {
        return own.unwrap_or("us-east-1a").to_string();
    }
    let count = |z: &str| {
        nodes
            .values()
            .filter(|r| r.view.is_live() && r.view.asg == asg && r.view.az == z)
            .count()
    };
    zones
        .iter()
        .min_by_key(|z| count(z))
        .cloned()
        .unwrap_or_default()
}

fn mark_stopping(inner: &Inner, n: u32) {
    if let Some(r) = inner.lock().nodes.get_mut(&n) {
        r.stopping = true;
    }
}

/// Stops the node and marks it stopped (with `error` when given).
async fn stop_node(inner: &Arc<Inner>, v: &NodeView, error: Option<String>) {
    let names = inner.names.clone();
    let n = v.n;
    let r = tokio::task::spawn_blocking(move || node::stop_sync(&names, n)).await;
    let detail = match r {
        Ok(s) => format!(
            "n{n}: {} processes, {} mounts, {} shim sockets",
            s.processes, s.mounts, s.shim_sockets
        ),
        Err(e) => format!("n{n}: stop task: {e}"),
    };
    {
        let mut st = inner.lock();
        if let Some(rec) = st.nodes.get_mut(&n) {
            if let Some(imds) = rec.imds.take() {
                imds.stop();
            }
            rec.docker = None;
            rec.view.state = NodeState::Stopped;
            if error.is_some() {
                rec.view.error = error;
            }
        }
    }
    inner.event(&v.instance_id, "stopped", detail);
}

/// The node's daemon is gone while its instance may still run: what an EC2 health check does.
async fn died(inner: Arc<Inner>, v: NodeView, running: bool) {
    let killed = {
        let mut st = inner.lock();
        match st.nodes.get_mut(&v.n) {
            Some(r) => {
                // `lab kill` in another process leaves a mark in the node's directory
                r.view.killed |= r.view.dir.join("killed").exists();
                r.view.killed
            }
            None => false,
        }
    };
    let why = if killed {
        "killed (chaos)"
    } else {
        "dockerd exited unexpectedly"
    };
    inner.event(&v.instance_id, "died", format!("n{}: {why}", v.n));
    if running {
        match inner.aws.replace(&v.instance_id).await {
            Ok(()) => inner.event(
                &v.instance_id,
                "replace",
                "TerminateInstanceInAutoScalingGroup(ShouldDecrementDesiredCapacity=false)",
            ),
            Err(e) => inner.event(&v.instance_id, "aws-error", e.to_string()),
        }
    }
    stop_node(&inner, &v, Some(why.to_string())).await;
}

/// The instance is terminated in moto: with a terminating lifecycle hook, let the agent drain
/// (bounded by the hook's heartbeat timeout), then stop the node.
async fn terminate(inner: Arc<Inner>, v: NodeView) {
    let hook = match inner.aws.terminating_hook(&v.asg).await {
        Ok(h) => h,
        Err(e) => {
            inner.event(&v.instance_id, "aws-error", e.to_string());
            None
        }
    };
    let mut error = None;
    match hook {
        Some(timeout) => {
            let has_agent = {
                let mut st = inner.lock();
                match st.nodes.get_mut(&v.n) {
                    Some(rec) => {
                        rec.view.state = NodeState::Draining;
                        if let Some(imds) = &rec.imds {
                            imds.set_terminating();
                        }
                        rec.view.agent_exit.is_none()
                    }
                    None => false,
                }
            };
            inner.event(
                &v.instance_id,
                "terminating",
                format!(
                    "n{}: lifecycle hook: target-lifecycle-state=Terminated, waiting up to {}s for the agent",
                    v.n,
                    timeout.as_secs()
                ),
            );
            if has_agent {
                let deadline = Instant::now() + timeout;
                // bounded by the hook's heartbeat timeout
                loop {
                    let exited = inner
                        .lock()
                        .nodes
                        .get(&v.n)
                        .is_none_or(|r| r.view.agent_exit.is_some());
                    if exited {
                        break;
                    }
                    if Instant::now() >= deadline || inner.stopping() {
                        error = Some(format!(
                            "the agent did not exit within the hook's heartbeat timeout ({}s)",
                            timeout.as_secs()
                        ));
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        None => inner.event(
            &v.instance_id,
            "terminating",
            format!("n{}: no terminating lifecycle hook: stopping at once", v.n),
        ),
    }
    stop_node(&inner, &v, error).await;
}

// ---------------------------------------------------------------------------------------------
// manager.sock

/// Whether the engine is a swarm manager: `None` when it did not say within 2 s (busy electing
/// a leader, say).
async fn control_available(docker: &bollard::Docker) -> Option<bool> {
    match tokio::time::timeout(Duration::from_secs(2), docker.info()).await {
        Ok(Ok(info)) => Some(info.swarm.as_ref().and_then(|s| s.control_available) == Some(true)),
        Ok(Err(_)) => Some(false),
        Err(_) => None,
    }
}

/// Points `manager.sock` at a running manager-role node whose engine is a swarm manager (the
/// current one while it stays one); before the swarm forms, at the first running manager-role
/// node (any running node when no ASG has the manager role).
async fn update_manager(inner: &Arc<Inner>) {
    let candidates: Vec<(PathBuf, Option<bollard::Docker>)> = {
        let st = inner.lock();
        let running: Vec<&NodeRec> = st
            .nodes
            .values()
            .filter(|r| r.view.state == NodeState::Running && !r.dockerd_exited)
            .collect();
        let any_manager_role = st.nodes.values().any(|r| r.view.role == "swarm-manager");
        running
            .into_iter()
            .filter(|r| !any_manager_role || r.view.role == "swarm-manager")
            .map(|r| (r.view.dir.join("docker.sock"), r.docker.clone()))
            .collect()
    };
    let current = inner
        .manager_target
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let mut ordered: Vec<&(PathBuf, Option<bollard::Docker>)> = Vec::new();
    if let Some(cur) = &current {
        ordered.extend(candidates.iter().filter(|(p, _)| p == cur));
    }
    ordered.extend(
        candidates
            .iter()
            .filter(|(p, _)| Some(p) != current.as_ref()),
    );
    let mut chosen = None;
    for (path, docker) in &ordered {
        if let Some(d) = docker {
            match control_available(d).await {
                Some(true) => {}
                // the current target stays unless it says it is no manager
                None if Some(path) == current.as_ref() => {}
                _ => continue,
            }
            chosen = Some(path.clone());
            break;
        }
    }
    let chosen = chosen.or_else(|| ordered.first().map(|(p, _)| p.clone()));
    if chosen != current {
        *inner
            .manager_target
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = chosen.clone();
        inner.event(
            "",
            "manager",
            match &chosen {
                Some(p) => format!("manager.sock → {}", p.display()),
                None => "manager.sock → none".into(),
            },
        );
    }
}

/// Listens on `<state>/<stack>/manager.sock` and copies each connection to the current manager
/// node's Docker socket (waiting up to 10 s for one).
pub(crate) async fn start_forwarder(
    inner: Arc<Inner>,
    mut stop: watch::Receiver<bool>,
) -> Result<JoinHandle<()>, LabError> {
    let path = inner.names.manager_sock();
    let _ = std::fs::remove_file(&path);
    let listener =
        UnixListener::bind(&path).map_err(LabError::io(format!("bind {}", path.display())))?;
    Ok(tokio::spawn(async move {
        // until the lab stops
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = stop.changed() => break,
            };
            let Ok((mut client, _)) = accepted else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let inner = inner.clone();
            tokio::spawn(async move {
                let mut target = None;
                for _ in 0..50 {
                    target = inner
                        .manager_target
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .clone();
                    if target.is_some() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                let Some(target) = target else { return };
                let Ok(Ok(mut upstream)) =
                    tokio::time::timeout(Duration::from_secs(5), UnixStream::connect(&target))
                        .await
                else {
                    return;
                };
                let _ = tokio::time::timeout(
                    Duration::from_secs(3600),
                    tokio::io::copy_bidirectional(&mut client, &mut upstream),
                )
                .await;
            });
        }
    }))
}

/// `<state>/<stack>/status.json`, for `lab status` in another process.
fn write_status(inner: &Inner) {
    let status = LabStatus {
        stack: inner.names.stack.clone(),
        owner_pid: std::process::id() as i32,
        owner_alive: true,
        manager_host: format!("unix://{}", inner.names.manager_sock().display()),
        manager_target: inner
            .manager_target
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|p| p.display().to_string()),
        uptime_secs: inner.started.elapsed().as_secs_f64(),
        nodes: inner.views(),
    };
    if let Ok(json) = serde_json::to_string_pretty(&status) {
        let tmp = inner.names.dir.join("status.json.tmp");
        if std::fs::write(&tmp, json).is_ok() {
            let _ = std::fs::rename(&tmp, inner.names.dir.join("status.json"));
        }
    }
}
