//! Every name the lab gives to what it makes on this machine, derived from the stack's name alone,
//! so that `down` finds all of it again after a crash (no state file needed).

use std::path::{Path, PathBuf};

use crate::LabError;

/// The longest stack name the lab takes: socket paths under the state directory must stay within
/// the 108 bytes of a unix socket address (containerd's `…/exec/containerd/containerd.sock.ttrpc`).
pub const MAX_STACK_LEN: usize = 32;

/// Checks a stack name: 1 to [`MAX_STACK_LEN`] characters of `[A-Za-z0-9_.-]`, not starting with
/// `-` or `.` (it becomes part of paths, namespace names, cgroup names and firewall comments).
pub fn check_stack(stack: &str) -> Result<(), LabError> {
    let ok = !stack.is_empty()
        && stack.len() <= MAX_STACK_LEN
        && !stack.starts_with(['-', '.'])
        && stack
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(LabError::Config(format!(
            "stack name {stack:?}: 1 to {MAX_STACK_LEN} characters of [A-Za-z0-9_.-], not starting with - or ."
        )))
    }
}

/// FNV-1a of the stack name, 24 bits as 6 hex digits: network interface names are limited to 15
/// characters, so the bridge and the veths carry this instead of the stack's name (the bridge's
/// and veths' `ifalias` carry the full name for people).
pub(crate) fn stack_hash(stack: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in stack.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{:06x}", (h ^ (h >> 24)) & 0x00ff_ffff)
}

/// What a stack's lab is called on this machine (for checks that nothing is left).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostNames {
    /// The bridge, `ilb-<hash>` (interface names are limited to 15 characters).
    pub bridge: String,
    /// The host ends of the nodes' veths start with this, `ilv-<hash>-`.
    pub veth_prefix: String,
    /// The nodes' network namespaces start with this, `infralab-<stack>-`.
    pub netns_prefix: String,
    /// The cgroup holding all of the lab's processes, in every hierarchy, `infralab-<stack>`.
    pub cgroup: String,
    /// The FORWARD rule's comment, `infra-lab:<stack>`.
    pub rule_comment: String,
}

/// The names a lab of `stack` gives to what it makes.
pub fn host_names(stack: &str) -> Result<HostNames, LabError> {
    let n = Names::new(stack, Path::new(crate::DEFAULT_STATE_ROOT))?;
    Ok(HostNames {
        bridge: n.bridge(),
        veth_prefix: n.veth_prefix(),
        netns_prefix: n.netns_prefix(),
        cgroup: n.cgroup(),
        rule_comment: n.rule_comment(),
    })
}

/// The names of one stack's lab.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    pub(crate) stack: String,
    pub(crate) hash: String,
    /// `<state_root>/<stack>`
    pub(crate) dir: PathBuf,
}

impl Names {
    pub(crate) fn new(stack: &str, state_root: &Path) -> Result<Self, LabError> {
        check_stack(stack)?;
        Ok(Names {
            stack: stack.to_string(),
            hash: stack_hash(stack),
            dir: state_root.join(stack),
        })
    }

    /// The Linux bridge all nodes' veths hang on: `ilb-<hash>`.
    pub(crate) fn bridge(&self) -> String {
        format!("ilb-{}", self.hash)
    }

    /// The prefix of the host ends of the nodes' veths: `ilv-<hash>-`.
    pub(crate) fn veth_prefix(&self) -> String {
        format!("ilv-{}-", self.hash)
    }

    /// The host end of node `n`'s veth (its other end is `eth0` in the node's namespace).
    pub(crate) fn veth(&self, n: u32) -> String {
        format!("{}{n}", self.veth_prefix())
    }

    /// The prefix of the nodes' network namespaces: `infralab-<stack>-`.
    pub(crate) fn netns_prefix(&self) -> String {
        format!("infralab-{}-", self.stack)
    }

    /// Node `n`'s network namespace: `infralab-<stack>-<n>`.
    pub(crate) fn netns(&self, n: u32) -> String {
        format!("{}{n}", self.netns_prefix())
    }

    /// Whether `name` is one of this stack's namespaces (the prefix, then digits only: the stack
    /// `a` must not claim the namespaces of the stack `a-1`).
    pub(crate) fn is_netns(&self, name: &str) -> bool {
        name.strip_prefix(&self.netns_prefix())
            .is_some_and(|rest| !rest.is_empty() && rest.chars().all(|c| c.is_ascii_digit()))
    }

    /// Whether `name` is one of this stack's veths (same rule as [`Names::is_netns`]).
    pub(crate) fn is_veth(&self, name: &str) -> bool {
        name.strip_prefix(&self.veth_prefix())
            .is_some_and(|rest| !rest.is_empty() && rest.chars().all(|c| c.is_ascii_digit()))
    }

    /// The firewall rule's comment: `infra-lab:<stack>`.
    pub(crate) fn rule_comment(&self) -> String {
        format!("infra-lab:{}", self.stack)
    }

    /// The cgroup (in every hierarchy) holding all of the stack's processes: `infralab-<stack>`.
    pub(crate) fn cgroup(&self) -> String {
        format!("infralab-{}", self.stack)
    }

    /// Node `n`'s cgroup, relative to a hierarchy's root: `infralab-<stack>/n<n>`.
    pub(crate) fn node_cgroup(&self, n: u32) -> String {
        format!("{}/n{n}", self.cgroup())
    }

    /// Node `n`'s directory: `<state>/<stack>/n<n>`.
    pub(crate) fn node_dir(&self, n: u32) -> PathBuf {
        self.dir.join(format!("n{n}"))
    }

    /// The Docker socket forwarded to a live manager: `<state>/<stack>/manager.sock`.
    pub(crate) fn manager_sock(&self) -> PathBuf {
        self.dir.join("manager.sock")
    }

    /// The node numbers that have a directory under the stack's directory.
    pub(crate) fn node_numbers(&self) -> Vec<u32> {
        let mut ns: Vec<u32> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|s| s.strip_prefix('n'))
                    .and_then(|s| s.parse().ok())
            })
            .collect();
        ns.sort_unstable();
        ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_and_do_not_overlap() {
        let a = Names::new("a", Path::new("/run/infra-lab")).unwrap();
        assert!(a.is_netns("infralab-a-3"));
        assert!(!a.is_netns("infralab-a-1-3"), "stack a-1's namespace");
        assert!(!a.is_netns("infralab-a-"));
        let long = "x".repeat(MAX_STACK_LEN);
        let l = Names::new(&long, Path::new("/run/infra-lab")).unwrap();
        assert!(l.bridge().len() <= 15);
        assert!(l.veth(9999).len() <= 15);
        assert!(l.is_veth(&l.veth(12)));
        let ttrpc = l
            .node_dir(9999)
            .join("exec/containerd/containerd.sock.ttrpc");
        assert!(ttrpc.as_os_str().len() < 108, "{}", ttrpc.display());
        assert_ne!(stack_hash("lab-1"), stack_hash("lab-2"));
    }

    #[test]
    fn bad_stack_names_are_refused() {
        for bad in [
            "",
            "-x",
            ".x",
            "a b",
            "a/b",
            "a;b",
            &"x".repeat(MAX_STACK_LEN + 1),
        ] {
            assert!(check_stack(bad).is_err(), "{bad:?}");
        }
        check_stack("lab-1a2b3c4_x.y").unwrap();
    }
}
