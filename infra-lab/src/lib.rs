//! The cluster lab: moto's instances become real Docker nodes on this machine (issue 11, section 3;
//! the interface is fixed by `CONTRACT-11.md`, "The lab" and "IMDS").
//!
//! For every running instance of the stack's auto scaling groups (tag `infra:stack=<stack>`) the
//! lab boots a **node**: a network namespace `infralab-<stack>-<n>` on the stack's bridge
//! `ilb-<hash>` with the instance's private IP, its own `dockerd` (own data and exec roots, vfs,
//! `unix://<node dir>/docker.sock`), the test images loaded, an IMDSv2 endpoint for that instance
//! ([`imds`]) and the node agent started as user data would (`<agent> run`, in the host's network
//! namespace so it reaches moto on loopback). A supervisor task follows moto every
//! [`LabConfig::poll`]:
//!
//! * a new running instance → boot a node, its AZ balanced over the ASG's AZs (moto puts every ASG
//!   instance in the first subnet's AZ: **the lab plays AZ placement**);
//! * an instance terminated in moto while its ASG has an `EC2_INSTANCE_TERMINATING` lifecycle hook
//!   → the node's IMDS answers `target-lifecycle-state = Terminated`, the lab waits for the agent
//!   to exit (bounded by the hook's heartbeat timeout), then stops the node (moto never holds an
//!   instance in `Terminating:Wait` and answers `CompleteLifecycleAction` with HTTP 500: **the lab
//!   plays the terminate → wait → complete sequence**); without a hook the node stops at once;
//! * a node that died (chaos: [`Lab::kill`]) while its instance runs → what EC2 health checks do:
//!   `TerminateInstanceInAutoScalingGroup(ShouldDecrementDesiredCapacity=false)`; moto launches a
//!   replacement and the lab boots it.
//!
//! `<state_root>/<stack>/manager.sock` forwards to a live manager node's Docker socket; the deploy
//! program's Swarm phase uses `DOCKER_HOST=`[`Lab::manager_host`]. In production the same part is
//! played by an SSH tunnel through the bastion to a manager's socket:
//! `ssh -N -J ec2-user@<bastion> -L /tmp/manager.sock:/var/run/docker.sock ec2-user@<manager
//! private ip>`, then `DOCKER_HOST=unix:///tmp/manager.sock`.
//!
//! Everything the lab makes is named after the stack and removed by [`Lab::down`], or after a crash
//! by [`teardown`] (idempotent): namespaces, veths, the bridge, the `iptables` FORWARD rule
//! (comment `infra-lab:<stack>`), daemons, containerd shims and containers (all of a node's
//! processes live in the cgroup `infralab-<stack>/n<n>`, ended with `cgroup.kill`), mounts and
//! the state directory. Root only; traffic stays inside the namespaces the lab made.
//!
//! **The agent's environment**: `DOCKER_HOST=unix://<node dir>/docker.sock`,
//! `INFRA_NODE_IMDS_ENDPOINT=http://127.0.0.1:<port>`, `INFRA_NODE_POLL=1`,
//! `AWS_ENDPOINT_URL=`[`LabConfig::agent_aws_endpoint`], the lab's `AWS_ACCESS_KEY_ID` and
//! `AWS_SECRET_ACCESS_KEY` (else `test`); no `AWS_REGION` (the region comes from IMDS, as on EC2)
//! and no `AWS_EC2_METADATA_DISABLED`; for information `INFRA_LAB_ROLE`, `INFRA_LAB_ASG`,
//! `INFRA_LAB_STATE_DIR` and the marker [`NODE_MARKER_VAR`]; then [`LabConfig::agent_env`].
//!
//! **Limits of this machine** (Debian 12, kernel 6.18 without ESP): an encrypted overlay network
//! (`--opt encrypted`) is created, but its traffic between nodes is dropped (the kernel cannot
//! hold the ESP security associations: `ip xfrm state add … proto esp` fails with "Requested type
//! not found"); tasks on one node still talk. The engine has no IPVS: connect to `tasks.<name>` or
//! use `dnsrr`. A node costs about 125–140 MiB of RSS (dockerd and containerd), ~30 MiB more with
//! the agent, and on disk ~130 MiB for a manager (the raft log is preallocated), under 10 MiB for
//! a worker, plus its copies of the images (vfs).

mod aws;
pub mod imds;
mod lab;
mod names;
mod node;
mod supervisor;
mod sys;
mod teardown;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use imds::{Identity, ImdsFault, ImdsServer};
pub use lab::{node_usage, Lab};
pub use names::{check_stack, host_names, HostNames, MAX_STACK_LEN};
pub use teardown::{kill_node, read_status, teardown, teardown_stale, LabStatus, TeardownReport};

/// Where labs keep their state unless told otherwise: `/run/infra-lab/<stack>/`.
pub const DEFAULT_STATE_ROOT: &str = "/run/infra-lab";

/// The environment variable every process the lab starts carries, `<stack>/<n>`: teardown finds
/// a node's agent and daemons by it even when their cgroup is gone.
pub const NODE_MARKER_VAR: &str = "INFRA_LAB_NODE";

/// What a lab runs against and with.
#[derive(Debug, Clone)]
pub struct LabConfig {
    /// The stack: the ASGs tagged `infra:stack=<stack>` become nodes; every name the lab makes
    /// derives from it ([`check_stack`]: 1 to 32 of `[A-Za-z0-9_.-]`).
    pub stack: String,
    /// The lab's own AWS calls (moto).
    pub aws_endpoint: String,
    /// The agents' `AWS_ENDPOINT_URL` (may be a fault proxy in front of moto).
    pub agent_aws_endpoint: String,
    /// The agent program; started as `<agent_binary> <agent_args…>` (user data: `infra-node run`).
    pub agent_binary: PathBuf,
    /// The agent's arguments, `["run"]` by default.
    pub agent_args: Vec<String>,
    /// Extra environment for every agent (after the lab's own; e.g. `INFRA_NODE_JOIN_TIMEOUT`).
    pub agent_env: Vec<(String, String)>,
    /// Image IDs to load into every node (`docker save | docker -H <node> load`).
    pub images: Vec<String>,
    /// The state root, [`DEFAULT_STATE_ROOT`] by default.
    pub state_root: PathBuf,
    /// The supervisor's interval (1 s by default).
    pub poll: Duration,
    /// The region the IMDS serves and the lab's clients use (`AWS_REGION`, else `us-east-1`).
    pub region: String,
    /// ASG `role` tag values whose instances get no node (none by default: every ASG of the stack
    /// boots nodes, a bastion's agent then logs "not a swarm node" and exits 0).
    pub skip_roles: Vec<String>,
    /// The longest a node's boot may take (daemon up, images loaded, agent started): 120 s.
    pub boot_timeout: Duration,
    /// The supervisor stops following moto after this long (4 h), a bound on its loop.
    pub max_lifetime: Duration,
}

impl LabConfig {
    /// A configuration with the defaults: the agent's AWS endpoint is the lab's, agent arguments
    /// `run`, no images, state under [`DEFAULT_STATE_ROOT`], polling every second.
    pub fn new(
        stack: impl Into<String>,
        aws_endpoint: impl Into<String>,
        agent_binary: impl Into<PathBuf>,
    ) -> LabConfig {
        let aws_endpoint = aws_endpoint.into();
        LabConfig {
            stack: stack.into(),
            agent_aws_endpoint: aws_endpoint.clone(),
            aws_endpoint,
            agent_binary: agent_binary.into(),
            agent_args: vec!["run".into()],
            agent_env: Vec::new(),
            images: Vec::new(),
            state_root: PathBuf::from(DEFAULT_STATE_ROOT),
            poll: Duration::from_secs(1),
            region: std::env::var("AWS_REGION")
                .ok()
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| "us-east-1".into()),
            skip_roles: Vec::new(),
            boot_timeout: Duration::from_secs(120),
            max_lifetime: Duration::from_secs(4 * 3600),
        }
    }
}

/// Where a node is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    /// Namespace, daemon, images, IMDS and agent being set up.
    Booting,
    /// Up, its agent started.
    Running,
    /// Its instance is terminating: IMDS says `Terminated`, the lab waits for the agent to exit.
    Draining,
    /// Gone (terminated, drained, killed or failed to boot); its logs stay in its directory.
    Stopped,
}

/// One node as the lab sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeView {
    /// The node's number in this lab (`infralab-<stack>-<n>`).
    pub n: u32,
    /// The moto instance it plays.
    pub instance_id: String,
    /// Its auto scaling group.
    pub asg: String,
    /// The ASG's `role` tag (`swarm-manager`, `swarm-worker`, `bastion`, or empty).
    pub role: String,
    /// The availability zone its IMDS serves (chosen by the lab).
    pub az: String,
    /// The instance's private IP (moto's), the node's address on the bridge.
    pub ip: String,
    /// `unix://<node dir>/docker.sock`
    pub docker_host: String,
    /// `http://127.0.0.1:<port>` once serving.
    pub imds_endpoint: String,
    /// The node's network namespace.
    pub netns: String,
    /// The node's directory (daemon and agent logs: `dockerd.log`, `agent.log`).
    pub dir: PathBuf,
    /// Where it is.
    pub state: NodeState,
    /// The agent's exit status once it exited (128 + signal number when killed by a signal).
    pub agent_exit: Option<i32>,
    /// Killed by [`Lab::kill`] (chaos).
    pub killed: bool,
    /// Why it stopped, when it was not a plain termination (boot failure, death, drain timeout).
    pub error: Option<String>,
    /// From the lab seeing the instance to the agent started.
    pub boot_time: Option<Duration>,
}

impl NodeView {
    /// Booting, running or draining.
    pub fn is_live(&self) -> bool {
        self.state != NodeState::Stopped
    }
}

/// Something the lab did, for logs and timings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabEvent {
    /// Seconds since the lab came up.
    pub at: f64,
    /// The instance concerned (empty for the lab itself).
    pub instance: String,
    /// What happened: `boot`, `running`, `boot-failed`, `terminating`, `agent-exited`, `stopped`,
    /// `died`, `replace`, `killed`, `aws-error`, `manager`…
    pub what: String,
    /// Details.
    pub detail: String,
}

/// Memory and disk of one node, measured now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeUsage {
    /// RSS of the node's dockerd and containerd, KiB.
    pub daemons_rss_kib: u64,
    /// RSS of every process in the node's cgroup (daemons, shims, containers, agent), KiB.
    pub total_rss_kib: u64,
    /// Disk used by the node's directory (data root with the vfs image copies, exec root, logs).
    pub disk_bytes: u64,
}

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// Not root.
    #[error("the lab needs root (network namespaces, a bridge, iptables, cgroups)")]
    NotRoot,
    /// A bad configuration.
    #[error("lab configuration: {0}")]
    Config(String),
    /// This machine lacks something the lab needs.
    #[error("this machine cannot host the lab: {0}")]
    Host(String),
    /// Another live process runs a lab for this stack.
    #[error("stack {stack}: a lab owned by pid {pid} is running (stop it with `lab down`)")]
    Busy {
        /// The stack.
        stack: String,
        /// Its owner.
        pid: i32,
    },
    /// A command failed or overran its bound.
    #[error("`{cmd}` failed: {msg}")]
    Command {
        /// The command line.
        cmd: String,
        /// Why.
        msg: String,
    },
    /// An AWS call failed.
    #[error("AWS {op}: {msg}")]
    Aws {
        /// The operation.
        op: String,
        /// Why.
        msg: String,
    },
    /// A Docker call failed.
    #[error("docker: {0}")]
    Docker(String),
    /// A file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// No node plays this instance.
    #[error("no live node plays instance {0}")]
    UnknownInstance(String),
    /// A bounded wait ran out.
    #[error("timed out after {0:?}: {1}")]
    Timeout(Duration, String),
}

impl LabError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LabError {
        let what = what.into();
        move |source| LabError::Io { what, source }
    }
}

// ---------------------------------------------------------------------------------------------
// shared state

pub(crate) struct NodeRec {
    pub(crate) view: NodeView,
    pub(crate) imds: Option<Arc<ImdsServer>>,
    pub(crate) docker: Option<bollard::Docker>,
    pub(crate) dockerd_exited: bool,
    /// a stop or drain is under way (the daemon's exit is then expected)
    pub(crate) stopping: bool,
    pub(crate) seen: Instant,
}

pub(crate) struct LabState {
    pub(crate) nodes: BTreeMap<u32, NodeRec>,
    pub(crate) next_n: u32,
    pub(crate) default_fault: ImdsFault,
    pub(crate) faults: HashMap<String, ImdsFault>,
    pub(crate) events: Vec<LabEvent>,
}

pub(crate) struct Inner {
    pub(crate) cfg: LabConfig,
    pub(crate) names: names::Names,
    pub(crate) aws: aws::Aws,
    pub(crate) state: Mutex<LabState>,
    pub(crate) stop: AtomicBool,
    pub(crate) started: Instant,
    pub(crate) cgroup2: PathBuf,
    pub(crate) images_tar: tokio::sync::OnceCell<Result<PathBuf, String>>,
    pub(crate) manager_target: Mutex<Option<PathBuf>>,
}

impl Inner {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, LabState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Records an event (and appends it to `<state>/<stack>/events.jsonl`).
    pub(crate) fn event(&self, instance: &str, what: &str, detail: impl Into<String>) {
        let ev = LabEvent {
            at: self.started.elapsed().as_secs_f64(),
            instance: instance.to_string(),
            what: what.to_string(),
            detail: detail.into(),
        };
        tracing::info!(instance, what, detail = %ev.detail, "lab");
        if let Ok(line) = serde_json::to_string(&ev) {
            use std::io::Write;
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.names.dir.join("events.jsonl"))
            {
                let _ = writeln!(f, "{line}");
            }
        }
        self.lock().events.push(ev);
    }

    pub(crate) fn views(&self) -> Vec<NodeView> {
        self.lock().nodes.values().map(|r| r.view.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_lab_can_move_between_tasks() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<super::Lab>();
        send_sync::<super::ImdsServer>();
    }
}
