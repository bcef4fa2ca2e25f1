//! The agent's decisions as pure functions, with no AWS or Docker call in them: what the
//! leader's loop does to the swarm's nodes, how the init race's outcome is read, when an `init`
//! claim is stale, what a failed join means, and whether this node is the last manager.
//!
//! The agent gathers the inputs through thin AWS and Docker wrappers, calls these, and carries
//! out what they return; everything here is unit-tested.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A node's role in the swarm (and the `role` label and record field: `manager` / `worker`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A swarm manager (raft member).
    Manager,
    /// A swarm worker.
    Worker,
}

impl Role {
    /// `manager` or `worker`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Manager => "manager",
            Role::Worker => "worker",
        }
    }

    /// The role an Auto Scaling group's `role` tag gives its instances: `swarm-manager`,
    /// `swarm-worker`; anything else (`bastion`, missing) is not a swarm node.
    pub fn from_asg_tag(tag: Option<&str>) -> Option<Role> {
        match tag {
            Some("swarm-manager") => Some(Role::Manager),
            Some("swarm-worker") => Some(Role::Worker),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state a node's record announces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordState {
    /// Joined and serving.
    Ready,
    /// Terminating: the managers drain it.
    Draining,
}

/// What every node writes to `/infra/<stack>/swarm/nodes/<instance-id>` after joining (String
/// JSON): who it is, so that the leader manager can label and drain it (a worker cannot update
/// its own swarm node).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// The swarm node ID.
    pub node_id: String,
    /// The EC2 instance ID.
    pub instance: String,
    /// The availability zone's full name (`us-east-1b`).
    pub az: String,
    /// Manager or worker.
    pub role: Role,
    /// The private IPv4 address.
    pub ip: String,
    /// Ready or draining.
    pub state: RecordState,
}

impl NodeRecord {
    /// The labels the node must carry: `az`, `instance`, `role`.
    pub fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("az".to_string(), self.az.clone()),
            ("instance".to_string(), self.instance.clone()),
            ("role".to_string(), self.role.as_str().to_string()),
        ])
    }
}

/// A node's availability, as Swarm reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Availability {
    /// Takes tasks.
    Active,
    /// Keeps its tasks, takes no new ones.
    Pause,
    /// Its tasks are moved elsewhere.
    Drain,
}

/// A node's status, as Swarm reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeStatus {
    /// Heartbeating.
    Ready,
    /// Gone: no heartbeat (crashed, or left the swarm).
    Down,
    /// Unknown or disconnected.
    Other,
}

/// A swarm node as the leader sees it (`docker node ls` plus its spec).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwarmNode {
    /// The node ID.
    pub id: String,
    /// Its role in the spec.
    pub role: Role,
    /// Its availability in the spec.
    pub availability: Availability,
    /// Its status.
    pub status: NodeStatus,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// For a manager: whether it is reachable (raft).
    pub reachable: bool,
    /// For a manager: whether it is the raft leader.
    pub leader: bool,
    /// Whether its engine ever described it (a hostname). A join cancelled before it finished
    /// (the agent leaves and joins again) can leave a node registered that never did: Down, with
    /// no instance, it is nobody's and is removed.
    pub described: bool,
}

/// An EC2 instance's state, as far as the agent cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstanceState {
    /// Booting.
    Pending,
    /// Running.
    Running,
    /// Stopping or stopped.
    Stopped,
    /// Shutting down (being terminated).
    ShuttingDown,
    /// Terminated.
    Terminated,
    /// DescribeInstances does not know it (terminated long ago, or never existed).
    NotFound,
}

impl InstanceState {
    /// From EC2's state name.
    pub fn from_ec2(name: &str) -> InstanceState {
        match name {
            "pending" => InstanceState::Pending,
            "running" => InstanceState::Running,
            "stopping" | "stopped" => InstanceState::Stopped,
            "shutting-down" => InstanceState::ShuttingDown,
            "terminated" => InstanceState::Terminated,
            _ => InstanceState::NotFound,
        }
    }

    /// Gone for good: terminated, shutting down or unknown (what makes a `down` node dead).
    pub fn gone(self) -> bool {
        matches!(
            self,
            InstanceState::ShuttingDown | InstanceState::Terminated | InstanceState::NotFound
        )
    }

    /// Pending or running: it may still be working on something.
    pub fn alive(self) -> bool {
        matches!(self, InstanceState::Pending | InstanceState::Running)
    }
}

/// One thing the leader does to the swarm or the records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Update a node's spec: set these labels (others are kept) and/or drain it.
    UpdateNode {
        /// The node.
        node_id: String,
        /// The labels to set (those that differ from the record's).
        labels: BTreeMap<String, String>,
        /// Drain it (from a `draining` record).
        drain: bool,
        /// What changes, for the log (`labels az, instance`, `drain`).
        why: String,
    },
    /// Demote a dead manager (before it can be removed).
    Demote {
        /// The node.
        node_id: String,
        /// Its instance, for the log.
        instance: String,
    },
    /// Remove a dead node (`node rm --force`).
    Remove {
        /// The node.
        node_id: String,
        /// Its instance, for the log.
        instance: String,
    },
    /// Delete the record of an instance that is gone.
    DeleteRecord {
        /// The instance.
        instance: String,
    },
}

/// The instance a node belongs to: its `instance` label, else the record naming the node.
fn instance_of<'a>(node: &'a SwarmNode, records: &'a [NodeRecord]) -> Option<&'a str> {
    node.labels
        .get("instance")
        .map(String::as_str)
        .or_else(|| {
            records
                .iter()
                .find(|r| r.node_id == node.id)
                .map(|r| r.instance.as_str())
        })
        .filter(|i| !i.is_empty())
}

/// The instance named in the log for a node that never described itself.
pub const GHOST: &str = "none (a join that never finished)";

/// What the raft leader's loop does, from the swarm's nodes, the nodes' records and the states
/// of the instances they name (an instance missing from `instances` counts as not found):
///
/// * a node whose record is known gets the record's labels (`az`, `instance`, `role`; other
///   labels are kept) and is drained if the record says `draining`;
/// * a node that is `down` and whose instance is gone (shutting down, terminated, unknown) is
///   demoted if it is a manager, removed, and its record deleted; `self_id` is never touched;
/// * a node that is `down`, never described itself and names no instance (label or record) is
///   what a cancelled join leaves behind: demoted if it is a manager, and removed;
/// * a record whose instance is gone and whose node is not in the swarm is deleted.
///
/// A node is matched to its record by node ID (a rebooted instance keeps its node). Actions are
/// ordered by node, then by instance, so the same input always gives the same list.
pub fn leader_actions(
    self_id: &str,
    nodes: &[SwarmNode],
    records: &[NodeRecord],
    instances: &BTreeMap<String, InstanceState>,
) -> Vec<Action> {
    leader_actions_when(self_id, nodes, records, instances, true)
}

/// [`leader_actions`], where `settled` says whether every replicated service runs all its
/// replicas: while one is short (a drained node's tasks are still being replaced), no further
/// leaving node is drained, so two drains never take two replicas down together.
pub fn leader_actions_when(
    self_id: &str,
    nodes: &[SwarmNode],
    records: &[NodeRecord],
    instances: &BTreeMap<String, InstanceState>,
    settled: bool,
) -> Vec<Action> {
    let state = |instance: &str| {
        instances
            .get(instance)
            .copied()
            .unwrap_or(InstanceState::NotFound)
    };
    let mut actions = Vec::new();
    let mut deleted: BTreeSet<String> = BTreeSet::new();
    // One leaving node drains at a time: a drain stops a node's tasks before their replacements
    // start, so two at once could take two replicas of a service down together. A node counts
    // while it is drained, still Ready, and its record says it is leaving.
    let mut draining_now = !settled
        || nodes.iter().any(|n| {
            n.availability == Availability::Drain
                && n.status == NodeStatus::Ready
                && records
                    .iter()
                    .any(|r| r.node_id == n.id && r.state == RecordState::Draining)
        });
    let mut sorted: Vec<&SwarmNode> = nodes.iter().collect();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    for node in sorted {
        let instance = instance_of(node, records);
        // a join that never finished: Down, never described, no instance (label or record)
        let ghost = node.id != self_id
            && node.status == NodeStatus::Down
            && !node.described
            && instance.is_none();
        if ghost {
            retire(&mut actions, node, GHOST);
            continue;
        }
        let dead = node.id != self_id
            && node.status == NodeStatus::Down
            && instance.is_some_and(|i| state(i).gone());
        if dead {
            let instance = instance.unwrap_or_default().to_string();
            retire(&mut actions, node, &instance);
            if records.iter().any(|r| r.instance == instance) && deleted.insert(instance.clone()) {
                actions.push(Action::DeleteRecord { instance });
            }
            continue;
        }
        let Some(record) = records
            .iter()
            .filter(|r| r.node_id == node.id)
            // Two records naming one node (should not happen): the one its label names wins.
            .max_by_key(|r| Some(r.instance.as_str()) == instance)
        else {
            continue;
        };
        let labels: BTreeMap<String, String> = record
            .labels()
            .into_iter()
            .filter(|(k, v)| node.labels.get(k) != Some(v))
            .collect();
        let changed: Vec<&str> = labels.keys().map(String::as_str).collect();
        let drain = record.state == RecordState::Draining
            && node.availability != Availability::Drain
            && !draining_now;
        draining_now |= drain;
        if !changed.is_empty() || drain {
            let mut why = Vec::new();
            if !changed.is_empty() {
                why.push(format!("labels {}", changed.join(", ")));
            }
            if drain {
                why.push("drain".to_string());
            }
            actions.push(Action::UpdateNode {
                node_id: node.id.clone(),
                labels: labels.clone(),
                drain,
                why: why.join(", "),
            });
        }
    }
    let in_swarm: BTreeSet<&str> = nodes.iter().map(|n| n.id.as_str()).collect();
    let mut orphans: Vec<&NodeRecord> = records
        .iter()
        .filter(|r| !in_swarm.contains(r.node_id.as_str()) && state(&r.instance).gone())
        .collect();
    orphans.sort_by(|a, b| a.instance.cmp(&b.instance));
    for r in orphans {
        if deleted.insert(r.instance.clone()) {
            actions.push(Action::DeleteRecord {
                instance: r.instance.clone(),
            });
        }
    }
    actions
}

/// Takes a Down node out of the swarm: demoted first when it is a manager (a manager that is
/// gone still counts in raft's quorum), then removed; `instance` names it in the actions.
fn retire(actions: &mut Vec<Action>, node: &SwarmNode, instance: &str) {
    if node.role == Role::Manager {
        actions.push(Action::Demote {
            node_id: node.id.clone(),
            instance: instance.to_string(),
        });
    }
    actions.push(Action::Remove {
        node_id: node.id.clone(),
        instance: instance.to_string(),
    });
}

/// The instances whose state [`leader_actions`] needs: those of `down` nodes (other than
/// `self_id`) and of records whose node is not in the swarm. Empty when every node is fine, so
/// a healthy cluster costs no DescribeInstances call.
pub fn instances_to_check(
    self_id: &str,
    nodes: &[SwarmNode],
    records: &[NodeRecord],
) -> Vec<String> {
    let in_swarm: BTreeSet<&str> = nodes.iter().map(|n| n.id.as_str()).collect();
    let mut ids: BTreeSet<String> = nodes
        .iter()
        .filter(|n| n.id != self_id && n.status == NodeStatus::Down)
        .filter_map(|n| instance_of(n, records).map(str::to_string))
        .collect();
    ids.extend(
        records
            .iter()
            .filter(|r| !in_swarm.contains(r.node_id.as_str()))
            .map(|r| r.instance.clone()),
    );
    ids.into_iter().collect()
}

/// Whether this manager is the last one: no other manager is reachable. The last manager is not
/// demoted before leaving, and leaves with `force`.
pub fn is_last_manager(self_id: &str, nodes: &[SwarmNode]) -> bool {
    !nodes
        .iter()
        .any(|n| n.id != self_id && n.role == Role::Manager && n.reachable)
}

/// What `PutParameter init` (without overwrite) said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InitPut {
    /// The parameter was created: this instance holds it.
    Created,
    /// It exists already, holding this value (`None`: it vanished before it could be read,
    /// e.g. a stale claim was just deleted).
    Exists(Option<String>),
}

/// What an init race decided for this manager.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InitRace {
    /// This instance initialises the swarm (it created `init`, or `init` already names it: a
    /// restart after winning).
    Won,
    /// Another instance holds `init`: wait for the tokens and join.
    Lost {
        /// The holder's instance ID.
        holder: String,
    },
    /// `init` vanished between the put and the read: run the race again.
    Again,
}

/// Reads the init race's outcome.
pub fn init_race(me: &str, put: InitPut) -> InitRace {
    match put {
        InitPut::Created => InitRace::Won,
        InitPut::Exists(Some(holder)) if holder == me => InitRace::Won,
        InitPut::Exists(Some(holder)) => InitRace::Lost { holder },
        InitPut::Exists(None) => InitRace::Again,
    }
}

/// What a manager that lost the race does next, while it waits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WaitVerdict {
    /// The tokens are there: join.
    Join,
    /// Keep waiting (the holder is alive and may still be initialising).
    Wait,
    /// The claim is stale: the holder is not running and wrote no tokens within the grace
    /// period. The claim may be cleared and the race run again.
    Stale,
}

/// Judges an `init` claim while waiting for the tokens: `waited` is how long this agent has
/// waited for them.
pub fn judge_claim(
    holder: InstanceState,
    tokens_present: bool,
    waited: Duration,
    grace: Duration,
) -> WaitVerdict {
    if tokens_present {
        WaitVerdict::Join
    } else if !holder.alive() && waited >= grace {
        WaitVerdict::Stale
    } else {
        WaitVerdict::Wait
    }
}

/// The order in which to try the managers (instance ID, address): the initialiser (`init`'s
/// holder) first, then the managers that wrote a record (they are in the swarm), then the
/// others (still booting: a join through one of them can only time out), each group by
/// instance ID.
pub fn order_peers(
    mut peers: Vec<(String, String)>,
    holder: Option<&str>,
    recorded: &BTreeSet<String>,
) -> Vec<String> {
    peers.sort_by_key(|(instance, _)| {
        let rank = if Some(instance.as_str()) == holder {
            0
        } else if recorded.contains(instance) {
            1
        } else {
            2
        };
        (rank, instance.clone())
    });
    peers.into_iter().map(|(_, addr)| addr).collect()
}

/// What a failed `swarm join` means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinFailure {
    /// The token is wrong (malformed, another swarm's, revoked): retrying cannot help.
    BadToken,
    /// The engine gave up waiting but keeps trying in the background (its state is `pending`).
    StillJoining,
    /// The engine is already in a swarm (a join that went through after all).
    AlreadyJoined,
    /// Anything else (manager not reachable yet, raft busy): try another manager, later.
    Transient,
}

/// Classifies the engine's answer to a failed `swarm join`.
pub fn classify_join_error(message: &str) -> JoinFailure {
    let m = message.to_ascii_lowercase();
    if m.contains("already part of a swarm") {
        JoinFailure::AlreadyJoined
    } else if m.contains("join token")
        || m.contains("invalid token")
        || m.contains("token is invalid")
        || m.contains("does not match fingerprint")
        || m.contains("certificate signed by unknown authority")
    {
        JoinFailure::BadToken
    } else if m.contains("continue in the background") || m.contains("timeout was reached") {
        JoinFailure::StillJoining
    } else {
        JoinFailure::Transient
    }
}

#[cfg(test)]
mod tests;

/// A replicated service placed with a spread preference on a node label, as the leader's
/// rebalancing sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpreadService {
    /// The service ID.
    pub id: String,
    /// Its name (for the log).
    pub name: String,
    /// The node label it spreads over (`az` for `node.labels.az`).
    pub label: String,
    /// Declared replicas.
    pub replicas: u64,
    /// An update (or rollback) is under way: leave it alone.
    pub updating: bool,
    /// The nodes its running tasks are on (one entry per task).
    pub task_nodes: Vec<String>,
}

/// The spread services to rebalance (force a rolling update of, so that Swarm places the tasks
/// again): Swarm spreads tasks when it places them and never moves running ones, so replicas
/// started while only some AZs had nodes (a cluster still forming, an AZ lost and replaced) stay
/// where they are. A service is uneven when, over the label values of the Ready, active nodes,
/// its running tasks differ by more than one between two values. Services mid-update, with
/// fewer running tasks than declared (Swarm is still placing them) or fewer than two values to
/// spread over are left alone.
pub fn unbalanced(services: &[SpreadService], nodes: &[SwarmNode]) -> Vec<String> {
    let mut out = Vec::new();
    for s in services {
        if s.updating || (s.task_nodes.len() as u64) < s.replicas || s.replicas < 2 {
            continue;
        }
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for n in nodes
            .iter()
            .filter(|n| n.status == NodeStatus::Ready && n.availability == Availability::Active)
        {
            if let Some(v) = n.labels.get(&s.label) {
                counts.entry(v.as_str()).or_insert(0);
            }
        }
        if counts.len() < 2 {
            continue;
        }
        for task_node in &s.task_nodes {
            let value = nodes
                .iter()
                .find(|n| &n.id == task_node)
                .and_then(|n| n.labels.get(&s.label));
            if let Some(c) = value.and_then(|v| counts.get_mut(v.as_str())) {
                *c += 1;
            }
        }
        let max = counts.values().copied().max().unwrap_or(0);
        let min = counts.values().copied().min().unwrap_or(0);
        if max > min + 1 {
            out.push(s.id.clone());
        }
    }
    out
}
