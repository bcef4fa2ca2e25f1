//! Setting a stack's lab up and tearing it down by name, also after a crash; what other
//! processes (the `lab` CLI) read and do: status, kill.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::names::Names;
use crate::{node, sys, LabError, NodeState, NodeView, NODE_MARKER_VAR};

/// What [`teardown`] removed. Empty when there was nothing left (a second `down`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeardownReport {
    /// The pid of another live process owning the lab, asked to stop (SIGTERM, then SIGKILL after
    /// 60 s).
    pub owner_stopped: Option<i32>,
    /// Processes killed (daemons, shims, containers, agents).
    pub processes: usize,
    /// containerd shim sockets removed from `/run/containerd/s`.
    pub shim_sockets: usize,
    /// Mounts lazily unmounted under the state directory.
    pub mounts: usize,
    /// Network namespaces deleted.
    pub namespaces: Vec<String>,
    /// Network interfaces deleted (veths, the bridge).
    pub links: Vec<String>,
    /// `iptables` FORWARD rules deleted.
    pub firewall_rules: usize,
    /// cgroup directories removed (all hierarchies).
    pub cgroups: usize,
    /// Whether the state directory existed and was removed.
    pub state_dir: bool,
}

impl TeardownReport {
    /// Nothing was left.
    pub fn is_empty(&self) -> bool {
        *self == TeardownReport::default()
    }
}

impl std::fmt::Display for TeardownReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_empty() {
            return write!(f, "nothing to remove");
        }
        if let Some(pid) = self.owner_stopped {
            write!(f, "stopped owner pid {pid}; ")?;
        }
        write!(
            f,
            "{} processes, {} shim sockets, {} mounts, namespaces [{}], links [{}], {} firewall rules, {} cgroups, state dir {}",
            self.processes,
            self.shim_sockets,
            self.mounts,
            self.namespaces.join(" "),
            self.links.join(" "),
            self.firewall_rules,
            self.cgroups,
            if self.state_dir { "removed" } else { "absent" }
        )
    }
}

/// What a running lab publishes in `<state>/<stack>/status.json` (every poll).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabStatus {
    /// The stack.
    pub stack: String,
    /// The process running the lab.
    pub owner_pid: i32,
    /// Whether that process still runs (computed by [`read_status`]).
    #[serde(default)]
    pub owner_alive: bool,
    /// `unix://…/manager.sock`
    pub manager_host: String,
    /// The node socket `manager.sock` forwards to.
    pub manager_target: Option<String>,
    /// Seconds since the lab came up.
    pub uptime_secs: f64,
    /// The nodes.
    pub nodes: Vec<NodeView>,
}

/// The lab's ownership record, `<state>/<stack>/lab.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Owner {
    stack: String,
    pid: i32,
    /// the process's start time (clock ticks since boot): a reused pid is not the owner
    start: u64,
}

fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit(')').next()?;
    // fields after "pid (comm)": state is field 3, starttime field 22
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn owner(names: &Names) -> Option<Owner> {
    let text = std::fs::read_to_string(names.dir.join("lab.json")).ok()?;
    serde_json::from_str(&text).ok()
}

fn owner_alive(o: &Owner) -> bool {
    sys::alive(o.pid) && start_time(o.pid) == Some(o.start)
}

/// Before a lab comes up: refuses a live lab of the stack, tears a dead one down, then makes the
/// state directory (with the ownership record), the bridge and the FORWARD rule.
pub(crate) fn prepare(names: &Names) -> Result<(), LabError> {
    let me = std::process::id() as i32;
    if let Some(o) = owner(names) {
        if o.pid != me && owner_alive(&o) {
            return Err(LabError::Busy {
                stack: names.stack.clone(),
                pid: o.pid,
            });
        }
    }
    let root = names
        .dir
        .parent()
        .ok_or_else(|| LabError::Config("state directory has no parent".into()))?;
    let left = teardown(&names.stack, root)?;
    if !left.is_empty() {
        tracing::info!(stack = %names.stack, %left, "removed a previous lab's leftovers");
    }
    let made = make(names, me);
    if made.is_err() {
        let _ = teardown(&names.stack, root);
    }
    made
}

fn make(names: &Names, me: i32) -> Result<(), LabError> {
    std::fs::create_dir_all(&names.dir)
        .map_err(LabError::io(format!("create {}", names.dir.display())))?;
    let record = Owner {
        stack: names.stack.clone(),
        pid: me,
        start: start_time(me).unwrap_or(0),
    };
    std::fs::write(
        names.dir.join("lab.json"),
        serde_json::to_string_pretty(&record).unwrap_or_default(),
    )
    .map_err(LabError::io("write lab.json"))?;
    let br = names.bridge();
    let q = sys::run_quick;
    q("ip", &["link", "add", "name", &br, "type", "bridge"])?;
    q(
        "ip",
        &["link", "set", "dev", &br, "alias", &names.rule_comment()],
    )?;
    q("ip", &["link", "set", "dev", &br, "up"])?;
    // the host's FORWARD chain drops bridged traffic (Docker set its policy)
    q(
        "iptables",
        &[
            "-I",
            "FORWARD",
            "-i",
            &br,
            "-o",
            &br,
            "-m",
            "comment",
            "--comment",
            &names.rule_comment(),
            "-j",
            "ACCEPT",
        ],
    )?;
    Ok(())
}

/// Removes everything a lab of `stack` made under `state_root` and on this machine, found by
/// name: a live owner (another process) is asked to stop first; then every process of the stack's
/// cgroup (`cgroup.kill`) or carrying its marker, containerd shim sockets, mounts under the state
/// directory, namespaces `infralab-<stack>-<n>`, veths `ilv-<hash>-<n>`, the bridge `ilb-<hash>`,
/// FORWARD rules with comment `infra-lab:<stack>`, the stack's cgroups and the state directory.
/// Idempotent: a second call returns an empty report. Root only.
pub fn teardown(stack: &str, state_root: &Path) -> Result<TeardownReport, LabError> {
    if !sys::is_root() {
        return Err(LabError::NotRoot);
    }
    let names = Names::new(stack, state_root)?;
    let mut report = TeardownReport::default();
    let me = std::process::id() as i32;

    // 1. a live owner elsewhere tears down itself when asked
    if let Some(o) = owner(&names) {
        if o.pid != me && owner_alive(&o) {
            sys::sigterm(o.pid);
            let deadline = Instant::now() + Duration::from_secs(60);
            while owner_alive(&o) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            if owner_alive(&o) {
                sys::sigkill(o.pid);
                std::thread::sleep(Duration::from_millis(200));
            }
            report.owner_stopped = Some(o.pid);
        }
    }

    // 2. processes: the cgroup, then the marker and the state directory in command lines
    report.processes += sys::cgroup_kill(&names.cgroup(), Duration::from_secs(15));
    let dir_arg = format!("{}/", names.dir.display());
    for _pass in 0..3 {
        let mut pids = sys::pids_with_env(&format!("{NODE_MARKER_VAR}={}/", names.stack), false);
        // a daemon started outside the cgroup (never by this version; by hand, say)
        pids.extend(sys::pids_with_cmdline(&dir_arg).into_iter().filter(|p| {
            matches!(
                sys::comm(*p).as_deref(),
                Some("dockerd" | "containerd" | "containerd-shim" | "runc" | "docker-proxy")
            )
        }));
        pids.sort_unstable();
        pids.dedup();
        pids.retain(|p| *p != me);
        if pids.is_empty() {
            break;
        }
        for pid in &pids {
            sys::sigkill(*pid);
        }
        report.processes += pids.len();
        std::thread::sleep(Duration::from_millis(200));
    }

    // 3. containerd shim sockets (outside the state directory)
    for n in names.node_numbers() {
        report.shim_sockets += node::remove_shim_sockets(&names.node_dir(n));
    }

    // 4. mounts
    report.mounts = sys::umount_under(&names.dir);

    // 5. namespaces
    let mut namespaces: Vec<String> = std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| names.is_netns(n))
        .collect();
    namespaces.sort();
    for ns in namespaces {
        if sys::run_quick("ip", &["netns", "delete", &ns]).is_ok() {
            report.namespaces.push(ns);
        }
    }

    // 6. links
    let links = sys::run_quick("ip", &["-o", "link", "show"])?;
    for line in links.lines() {
        let Some(name) = line.split(": ").nth(1) else {
            continue;
        };
        let name = name.split('@').next().unwrap_or(name);
        if (names.is_veth(name) || name == names.bridge())
            && sys::run_quick("ip", &["link", "delete", name]).is_ok()
        {
            report.links.push(name.to_string());
        }
    }

    // 7. firewall rules
    let comment = names.rule_comment();
    for _pass in 0..50 {
        let rules = sys::run_quick("iptables", &["-S", "FORWARD"])?;
        let ours: Vec<Vec<String>> = rules
            .lines()
            .map(|l| {
                l.split_whitespace()
                    .map(|t| t.trim_matches('"').to_string())
                    .collect::<Vec<_>>()
            })
            .filter(|t| {
                t.first().map(String::as_str) == Some("-A")
                    && t.windows(2).any(|w| w[0] == "--comment" && w[1] == comment)
            })
            .collect();
        if ours.is_empty() {
            break;
        }
        for rule in ours {
            let mut args: Vec<&str> = vec!["-D"];
            args.extend(rule.iter().skip(1).map(String::as_str));
            if sys::run_quick("iptables", &args).is_ok() {
                report.firewall_rules += 1;
            }
        }
    }

    // 8. cgroups
    report.cgroups = sys::cgroup_remove(&names.cgroup());

    // 9. the state directory
    if names.dir.exists() {
        std::fs::remove_dir_all(&names.dir)
            .map_err(LabError::io(format!("remove {}", names.dir.display())))?;
        report.state_dir = true;
    }
    // the shims' socket directory, when the lab's shims made it and left it empty
    let _ = std::fs::remove_dir("/run/containerd/s");
    let _ = std::fs::remove_dir("/run/containerd");
    // the state root, when this was its last lab
    let _ = std::fs::remove_dir(state_root);
    Ok(report)
}

/// Tears down every lab under `state_root` whose owner process is gone (crashed tests, a killed
/// `lab up`). Labs with a live owner are left alone.
pub fn teardown_stale(state_root: &Path) -> Vec<(String, Result<TeardownReport, LabError>)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(state_root) else {
        return out;
    };
    for e in rd.flatten() {
        let Some(stack) = e.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let Ok(names) = Names::new(&stack, state_root) else {
            continue;
        };
        match owner(&names) {
            Some(o) if owner_alive(&o) => {}
            Some(_) => out.push((stack.clone(), teardown(&stack, state_root))),
            None => {}
        }
    }
    out
}

/// The status a running lab publishes (see [`LabStatus`]), with `owner_alive` checked now.
pub fn read_status(stack: &str, state_root: &Path) -> Result<LabStatus, LabError> {
    let names = Names::new(stack, state_root)?;
    let path = names.dir.join("status.json");
    let text =
        std::fs::read_to_string(&path).map_err(LabError::io(format!("read {}", path.display())))?;
    let mut status: LabStatus = serde_json::from_str(&text).map_err(|e| LabError::Io {
        what: format!("parse {}", path.display()),
        source: std::io::Error::other(e),
    })?;
    status.owner_alive = owner(&names).is_some_and(|o| owner_alive(&o));
    Ok(status)
}

/// Chaos from another process (the `lab kill` CLI): SIGKILLs every process of the live node
/// playing `instance_id`; the lab's supervisor then replaces it. Returns the node's number.
pub fn kill_node(stack: &str, state_root: &Path, instance_id: &str) -> Result<u32, LabError> {
    if !sys::is_root() {
        return Err(LabError::NotRoot);
    }
    let names = Names::new(stack, state_root)?;
    let status = read_status(stack, state_root).ok();
    let n = status
        .iter()
        .flat_map(|s| s.nodes.iter())
        .filter(|v| v.instance_id == instance_id && v.state != NodeState::Stopped)
        .map(|v| v.n)
        .max()
        .ok_or_else(|| LabError::UnknownInstance(instance_id.to_string()))?;
    // tells the lab's supervisor that this death is chaos, not a crash of the daemon
    let _ = std::fs::write(names.node_dir(n).join("killed"), "");
    sys::cgroup_kill(&names.node_cgroup(n), Duration::from_secs(10));
    Ok(n)
}
