//! The host side: commands (`ip`, `iptables`) run with a time bound, cgroups, mounts, processes.
//! Synchronous on purpose: teardown must also work from `Drop` and from a plain CLI.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::LabError;

/// Runs a command to completion within `limit`, killing it when it overruns. `Ok(stdout)` when it
/// exits 0, else an error with its stderr.
pub(crate) fn run(program: &str, args: &[&str], limit: Duration) -> Result<String, LabError> {
    let shown = || format!("{program} {}", args.join(" "));
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| LabError::Command {
            cmd: shown(),
            msg: e.to_string(),
        })?;
    let deadline = Instant::now() + limit;
    // bounded: one check per 10 ms until the deadline
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(LabError::Command {
                    cmd: shown(),
                    msg: format!("no exit within {limit:?}"),
                });
            }
            Err(e) => {
                return Err(LabError::Command {
                    cmd: shown(),
                    msg: e.to_string(),
                })
            }
        }
    };
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    if status.success() {
        Ok(out)
    } else {
        Err(LabError::Command {
            cmd: shown(),
            msg: format!("{status}: {}", err.trim()),
        })
    }
}

/// [`run`] with the usual bound for quick system commands (10 s).
pub(crate) fn run_quick(program: &str, args: &[&str]) -> Result<String, LabError> {
    run(program, args, Duration::from_secs(10))
}

/// Whether this process runs as root (real and effective uid 0, from /proc).
pub(crate) fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// Whether a process with this pid exists (and is not a zombie).
pub(crate) fn alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // pid (comm) S ... : the state follows the last ')'
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next());
            !matches!(state, Some("Z") | Some("X") | None)
        }
        Err(_) => false,
    }
}

/// Sends SIGKILL, ignoring a process that is already gone.
pub(crate) fn sigkill(pid: i32) {
    if pid > 0 {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// Sends SIGTERM, ignoring a process that is already gone.
pub(crate) fn sigterm(pid: i32) {
    if pid > 0 {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
}

// ---------------------------------------------------------------------------------------------
// mounts

/// One line of /proc/self/mountinfo: mount point and file system type.
pub(crate) struct MountLine {
    pub(crate) point: PathBuf,
    pub(crate) fstype: String,
}

/// The mounts of this process's mount namespace (the nodes' daemons share it: they are started
/// with `nsenter --net` only).
pub(crate) fn mounts() -> Vec<MountLine> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let fields: Vec<&str> = l.split(' ').collect();
            let point = unescape_mount(fields.get(4)?);
            let sep = fields.iter().position(|f| *f == "-")?;
            let fstype = fields.get(sep + 1)?.to_string();
            Some(MountLine {
                point: PathBuf::from(point),
                fstype,
            })
        })
        .collect()
}

fn unescape_mount(s: &str) -> String {
    // mountinfo escapes space, tab, newline and backslash as \ooo
    let mut out = String::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let digits = std::str::from_utf8(&b[i + 1..i + 4]).unwrap_or("x");
            if let Ok(v) = u8::from_str_radix(digits, 8) {
                out.push(v as char);
                i += 4;
                continue;
            }
        }
        out.push(b[i] as char);
        i += 1;
    }
    out
}

/// Lazily unmounts everything mounted at or under `dir`, deepest first; returns how many.
/// Bounded: at most 10 passes (a mount can hide another at the same point).
pub(crate) fn umount_under(dir: &Path) -> usize {
    let mut count = 0;
    for _pass in 0..10 {
        let mut points: Vec<PathBuf> = mounts()
            .into_iter()
            .map(|m| m.point)
            .filter(|p| p.starts_with(dir))
            .collect();
        if points.is_empty() {
            break;
        }
        points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        points.dedup();
        for p in points {
            if nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH).is_ok() {
                count += 1;
            }
        }
    }
    count
}

// ---------------------------------------------------------------------------------------------
// cgroups

/// The cgroup hierarchies mounted on this machine: (mount point, is cgroup2).
pub(crate) fn cgroup_roots() -> Vec<(PathBuf, bool)> {
    let mut roots: Vec<(PathBuf, bool)> = mounts()
        .into_iter()
        .filter(|m| m.fstype == "cgroup" || m.fstype == "cgroup2")
        .map(|m| (m.point, m.fstype == "cgroup2"))
        .collect();
    roots.sort();
    roots.dedup();
    roots
}

/// The cgroup2 hierarchy (pure v2: /sys/fs/cgroup; hybrid: /sys/fs/cgroup/unified). Its
/// `cgroup.kill` ends a whole subtree in one write (kernel 5.14+).
pub(crate) fn cgroup2_root() -> Result<PathBuf, LabError> {
    cgroup_roots()
        .into_iter()
        .find(|(_, v2)| *v2)
        .map(|(p, _)| p)
        .ok_or_else(|| {
            LabError::Host(
                "no cgroup2 hierarchy is mounted (the lab kills nodes with cgroup.kill)".into(),
            )
        })
}

/// Every cgroup directory at or under `top` (depth first: children before parents).
fn cgroup_dirs(top: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![top.to_path_buf()];
    // bounded: a cgroup tree of the lab has a few hundred directories at most
    while let Some(d) = stack.pop() {
        if out.len() > 10_000 {
            break;
        }
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    stack.push(e.path());
                }
            }
            out.push(d);
        }
    }
    out.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    out
}

/// The pids in a cgroup subtree.
pub(crate) fn cgroup_pids(top: &Path) -> Vec<i32> {
    let mut pids: Vec<i32> = cgroup_dirs(top)
        .iter()
        .filter_map(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())
        .flat_map(|s| {
            s.lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// Kills every process of cgroup `rel` (relative to each hierarchy's root) in every hierarchy:
/// `cgroup.kill` in cgroup2, SIGKILL per pid elsewhere; waits (up to `limit`) until they are all
/// gone. Returns how many processes were seen.
pub(crate) fn cgroup_kill(rel: &str, limit: Duration) -> usize {
    let roots = cgroup_roots();
    let mut seen = std::collections::BTreeSet::new();
    let deadline = Instant::now() + limit;
    // bounded by the deadline; a fork racing the kill is caught by the next pass
    loop {
        let mut any = false;
        for (root, v2) in &roots {
            let top = root.join(rel);
            if !top.exists() {
                continue;
            }
            let pids = cgroup_pids(&top);
            if pids.is_empty() {
                continue;
            }
            any = true;
            seen.extend(pids.iter().copied());
            if *v2 {
                let _ = std::fs::write(top.join("cgroup.kill"), "1");
            }
            for pid in pids {
                sigkill(pid);
            }
        }
        if !any || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    seen.len()
}

/// Removes cgroup `rel` and everything under it from every hierarchy (after [`cgroup_kill`]).
/// Returns how many directories were removed.
pub(crate) fn cgroup_remove(rel: &str) -> usize {
    let mut n = 0;
    for (root, _) in cgroup_roots() {
        let top = root.join(rel);
        // a few passes: a just-killed process may hold its cgroup for a moment
        for _ in 0..20 {
            if !top.exists() {
                break;
            }
            for d in cgroup_dirs(&top) {
                if std::fs::remove_dir(&d).is_ok() {
                    n += 1;
                }
            }
            if top.exists() {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    n
}

// ---------------------------------------------------------------------------------------------
// processes

/// Pids of processes whose environment holds the entry `kv` (`KEY=value`), exactly or (when
/// `exact` is false) as a prefix, e.g. the `INFRA_LAB_NODE=<stack>/<n>` every process the lab
/// starts carries.
pub(crate) fn pids_with_env(kv: &str, exact: bool) -> Vec<i32> {
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        if let Ok(env) = std::fs::read(e.path().join("environ")) {
            let hit = env.split(|b| *b == 0).any(|entry| {
                if exact {
                    entry == kv.as_bytes()
                } else {
                    entry.starts_with(kv.as_bytes())
                }
            });
            if hit && alive(pid) {
                out.push(pid);
            }
        }
    }
    out
}

/// Pids of processes whose command line mentions `needle` (e.g. a node's directory).
pub(crate) fn pids_with_cmdline(needle: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) && alive(pid) {
                out.push(pid);
            }
        }
    }
    out
}

/// Resident memory of a process in KiB (VmRSS), if it exists.
pub(crate) fn rss_kib(pid: i32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// The command name of a process (`comm`).
pub(crate) fn comm(pid: i32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim().to_string())
}

/// Disk blocks used under `dir` in bytes (like `du`; hard links counted once), without following
/// symlinks or crossing into other file systems' mounts. Bounded to 200 000 entries.
pub(crate) fn disk_usage(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(top) = std::fs::symlink_metadata(dir) else {
        return 0;
    };
    let dev = top.dev();
    let mut seen = std::collections::HashSet::new();
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    let mut visited = 0usize;
    while let Some(d) = stack.pop() {
        visited += 1;
        if visited > 200_000 {
            break;
        }
        let Ok(md) = std::fs::symlink_metadata(&d) else {
            continue;
        };
        if md.dev() != dev {
            continue;
        }
        if seen.insert((md.dev(), md.ino())) {
            total += md.blocks() * 512;
        }
        if md.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&d) {
                stack.extend(rd.flatten().map(|e| e.path()));
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_bounds_and_reports() {
        assert_eq!(run_quick("sh", &["-c", "echo hi"]).unwrap(), "hi\n");
        let e = run_quick("sh", &["-c", "echo nope >&2; exit 3"]).unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
        let t = Instant::now();
        let e = run("sleep", &["5"], Duration::from_millis(200)).unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(2));
        assert!(e.to_string().contains("no exit within"), "{e}");
    }

    #[test]
    fn mount_points_unescape() {
        assert_eq!(unescape_mount("/a\\040b"), "/a b");
        assert_eq!(unescape_mount("/plain"), "/plain");
        assert!(mounts().iter().any(|m| m.point == Path::new("/")));
    }

    #[test]
    fn this_process_is_alive_and_measured() {
        let me = std::process::id() as i32;
        assert!(alive(me));
        assert!(rss_kib(me).unwrap() > 0);
        assert!(!alive(-1));
    }
}
