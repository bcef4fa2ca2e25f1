//! The cluster lab's own tests (crate `infra-lab`, CLI `examples/lab.rs`): moto's ASG instances
//! become Docker nodes in network namespaces, form a swarm (with a stand-in agent,
//! `standin-agent.sh`, until the real agent lands), run a service across nodes over the overlay;
//! a killed node is replaced as an EC2 health check would; a scale-in drains through the lifecycle
//! hook; `down` leaves nothing, also after a crash, and a second `down` is a no-op. With the real
//! agent (`infra-node`): the production stack's HA claims (`ha`), and a cluster that forms exactly
//! once while the agents' AWS calls fail (`faults`).
//!
//! Needs root, the local Docker engine with the test image, and moto (`eval "$(.ci/test-env)"`):
//! otherwise each test prints SKIPPED, or fails under `INFRA_REQUIRE_ENDPOINTS=1`. The tests run
//! one at a time (a lock): every lab costs real daemons. moto is shared: every test uses its own
//! stack name and VPC, and deletes its ASGs at the end.

mod cluster;
mod faults;
mod fixture;
mod ha;
mod life;
mod view;

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;
use std::time::{Duration, Instant};

use infra_lab::{NodeState, NodeView};
use infra_test_support::skip_or_fail;

use fixture::docker;

/// One lab at a time.
static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn standin() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lab/standin-agent.sh")
}

/// moto's URL when this machine can host a lab (root, Docker with the test image, moto), else
/// `None` after SKIPPED (or a failure when the endpoints are required).
fn preconditions(test: &str) -> Option<String> {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false);
    if !root {
        skip_or_fail(test, "the cluster lab needs root");
        return None;
    }
    let docker_ok = StdCommand::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !docker_ok {
        skip_or_fail(test, "Docker is not reachable");
        return None;
    }
    if infra_test_support::test_image().is_none() {
        skip_or_fail(
            test,
            "INFRA_TEST_IMAGE is not set (the locally built test image)",
        );
        return None;
    }
    match infra_test_support::moto() {
        Ok(url) => Some(url),
        Err(why) => {
            skip_or_fail(test, &why);
            None
        }
    }
}

fn running(nodes: &[NodeView]) -> Vec<&NodeView> {
    nodes
        .iter()
        .filter(|v| v.state == NodeState::Running)
        .collect()
}

/// What is left on this machine of a lab of `stack`, checked with the system's own tools (not
/// the lab's teardown code): processes, namespaces, interfaces, firewall rules, mounts, cgroups,
/// the state directory.
fn leftovers(stack: &str, state_root: &Path) -> Vec<String> {
    let names = infra_lab::host_names(stack).unwrap();
    let dir = state_root.join(stack);
    let mut left = Vec::new();
    let sh = |cmd: &str| {
        let o = StdCommand::new("sh").args(["-c", cmd]).output().unwrap();
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    for l in sh("ip netns list").lines() {
        if l.starts_with(&names.netns_prefix) {
            left.push(format!("netns {l}"));
        }
    }
    for l in sh("ip -o link show").lines() {
        if l.contains(&names.bridge) || l.contains(&names.veth_prefix) {
            left.push(format!("link {l}"));
        }
    }
    for l in sh("iptables -S FORWARD").lines() {
        if l.contains(&names.rule_comment) {
            left.push(format!("rule {l}"));
        }
    }
    for l in sh("ps -eo pid,args").lines() {
        if l.contains(&format!("{}/", dir.display())) && !l.contains("ps -eo") {
            left.push(format!("process {l}"));
        }
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    for l in mountinfo.lines() {
        if l.contains(&dir.display().to_string()) || l.contains(&names.netns_prefix) {
            left.push(format!("mount {l}"));
        }
    }
    for hierarchy in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        let p = hierarchy.path().join(&names.cgroup);
        if p.exists() {
            left.push(format!("cgroup {}", p.display()));
        }
    }
    if dir.exists() {
        left.push(format!("dir {}", dir.display()));
    }
    left
}

/// Nodes `Ready` in `docker node ls` on `host`.
async fn ready_nodes(host: &str) -> Vec<String> {
    docker(
        host,
        &["node", "ls", "--format", "{{.Hostname}} {{.Status}}"],
    )
    .await
    .unwrap_or_default()
    .lines()
    .filter(|l| l.ends_with(" Ready"))
    .map(|l| l.split(' ').next().unwrap_or_default().to_string())
    .collect()
}

/// Polls `check` every 500 ms until it returns `Some`, at most `limit`.
async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
