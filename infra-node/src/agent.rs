//! `infra-node run`: the steps of the contract (CONTRACT-11.md), in order. Decisions are in
//! [`crate::plan`]; AWS and Docker calls in [`crate::aws`] and [`crate::docker`]; this module
//! strings them together, bounds every wait, and logs one line per step.

use std::collections::BTreeMap;
use std::time::Duration;

use infra_core::provider::ProviderError;
use infra_core::retry::{poll, PollPolicy, Probe, RetryPolicy};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::aws::{is_access_denied, sdk_config, Aws, Params};
use crate::docker::{Engine, LocalState, SWARM_PORT};
use crate::error::{Failure, FailureKind, Secret};
use crate::imds::{Identity, Imds};
use crate::plan::{
    classify_join_error, init_race, instances_to_check, is_last_manager, judge_claim,
    leader_actions, Action, InitPut, InitRace, JoinFailure, NodeRecord, RecordState, Role,
    WaitVerdict,
};

/// The agent's settings (flags or environment, see the crate docs).
#[derive(Clone, Debug)]
pub struct Settings {
    /// The instance metadata endpoint (`INFRA_NODE_IMDS_ENDPOINT`).
    pub imds_endpoint: String,
    /// How long joining may take in all, from the start (`INFRA_NODE_JOIN_TIMEOUT`).
    pub join_timeout: Duration,
    /// The pause between checks (`INFRA_NODE_POLL`).
    pub poll: Duration,
    /// The longest wait for this node's tasks to move away when it terminates
    /// (`INFRA_NODE_DRAIN_TIMEOUT`; also at most 3/4 of the lifecycle hook's heartbeat).
    pub drain_timeout: Duration,
    /// The Docker engine (`DOCKER_HOST`).
    pub docker_host: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            imds_endpoint: "http://169.254.169.254".into(),
            join_timeout: Duration::from_secs(600),
            poll: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(240),
            docker_host: "unix:///var/run/docker.sock".into(),
        }
    }
}

/// How the agent ended without failing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The instance's group is not a swarm group (its `role` tag says so): nothing to do.
    NotSwarmNode,
    /// The instance is terminating: the node drained, left the swarm, and the lifecycle
    /// action was completed (or its completion logged as failed).
    Left,
}

/// How many times a manager re-runs the init race after clearing a stale claim.
const MAX_RACES: u32 = 3;

/// The retry policy of the agent's AWS and Docker calls.
pub fn call_policy() -> RetryPolicy {
    RetryPolicy::calls()
}

/// Runs the init race once: creates `init` holding `me` without overwrite and, if it existed,
/// reads who holds it.
pub async fn claim_init(aws: &Aws, params: &Params, me: &str) -> Result<InitRace, ProviderError> {
    let put = if aws.create(&params.init(), me).await? {
        InitPut::Created
    } else {
        InitPut::Exists(
            aws.get(&params.init())
                .await?
                .map(|v| v.expose().to_string()),
        )
    };
    Ok(init_race(me, put))
}

/// Clears a stale `init` claim held by `holder`, if this agent is the one allowed to: the one
/// that creates `init-reset/<holder>` (without overwrite). Returns whether it deleted the claim.
/// Only the marker's creator deletes, and only while `init` still names `holder`, so a fresh
/// claim made after the reset is never deleted by a slower agent.
pub async fn clear_stale_claim(
    aws: &Aws,
    params: &Params,
    holder: &str,
    me: &str,
) -> Result<bool, ProviderError> {
    let marker = params.init_reset(holder);
    if !aws.create(&marker, me).await? {
        // Someone made the marker: another agent, or this one (a retried create whose first
        // answer was lost; the marker holds the creator's instance ID).
        match aws.get(&marker).await? {
            Some(v) if v.expose() == me => {}
            _ => return Ok(false),
        }
    }
    match aws.get(&params.init()).await? {
        Some(v) if v.expose() == holder => {
            aws.delete(&params.init()).await?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Everything the steps after identification share.
struct Agent {
    settings: Settings,
    imds: Imds,
    id: Identity,
    aws: Aws,
    engine: Engine,
    group: String,
    stack: String,
    role: Role,
    params: Params,
    /// When joining must be done (start + join timeout).
    deadline: Instant,
}

fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// Runs the agent: identity, group, init or join, record, then the loop until the instance
/// terminates.
pub async fn run(settings: Settings) -> Result<Outcome, Failure> {
    let started = Instant::now();
    let deadline = started + settings.join_timeout;
    let share = settings.join_timeout / 4;
    info!(
        step = "start",
        version = env!("CARGO_PKG_VERSION"),
        imds = %settings.imds_endpoint,
        docker = %settings.docker_host,
        join_timeout_s = settings.join_timeout.as_secs_f64(),
        poll_s = settings.poll.as_secs_f64(),
        "infra-node starting"
    );

    // 1. Identity.
    let imds = Imds::new(&settings.imds_endpoint)?;
    let id = imds.identity(share).await?;
    info!(
        step = "identity",
        instance = %id.instance_id,
        az = %id.az,
        region = %id.region,
        ip = %id.ip,
        "identity from instance metadata"
    );

    // 2. Group, stack and role.
    let aws = Aws::new(&sdk_config(&id.region).await, call_policy());
    let group = find_group(&aws, &id.instance_id, share).await?;
    let Some(role) = Role::from_asg_tag(group.tags.get("role").map(String::as_str)) else {
        info!(
            step = "role",
            group = %group.name,
            role_tag = group.tags.get("role").map(String::as_str).unwrap_or(""),
            "not a swarm node: the group's role tag is neither swarm-manager nor swarm-worker; nothing to do"
        );
        return Ok(Outcome::NotSwarmNode);
    };
    let Some(stack) = group.tags.get("infra:stack").cloned() else {
        return Err(Failure::new(
            FailureKind::NoGroup,
            "group",
            format!(
                "the Auto Scaling group {} of instance {} has no infra:stack tag",
                group.name, id.instance_id
            ),
        ));
    };
    info!(step = "group", group = %group.name, stack = %stack, role = %role, "swarm role from the Auto Scaling group's tags");

    // 3. The engine, and whether it already is in a swarm.
    let engine = Engine::connect(
        &settings.docker_host,
        remaining(deadline).max(Duration::from_secs(5)),
        call_policy(),
    )
    .await?;
    let mut agent = Agent {
        params: Params::new(&stack),
        settings,
        imds,
        id,
        aws,
        engine,
        group: group.name,
        stack,
        role,
        deadline,
    };
    let state = agent.settled_state().await?;
    if state.active() {
        info!(
            step = "swarm",
            node_id = state.node_id.as_deref().unwrap_or(""),
            "already in a swarm: no init or join (restart or reboot)"
        );
    } else {
        info!(step = "swarm", state = %state.state, "not in a swarm yet");
        // 4 and 5.
        match agent.role {
            Role::Manager => agent.manager_start().await?,
            Role::Worker => {
                let token = agent.wait_token(Role::Worker).await?;
                agent.join(&token).await?;
            }
        }
    }

    // 6. Record and (manager) own labels.
    let node_id = agent.register().await?;

    // 7. Serve until the instance terminates.
    agent.serve(&node_id).await
}

/// Finds the instance's group, asking until `budget` runs out.
async fn find_group(
    aws: &Aws,
    instance: &str,
    budget: Duration,
) -> Result<crate::aws::Group, Failure> {
    let found = poll(
        "the instance's Auto Scaling group",
        &PollPolicy::new(budget, Duration::from_millis(500), Duration::from_secs(5)),
        || async {
            Ok(match aws.group(instance).await? {
                Some(g) => Probe::Done(g),
                None => Probe::Waiting(format!("{instance} is in no Auto Scaling group")),
            })
        },
    )
    .await;
    found.map_err(|e| {
        if e.code == infra_core::retry::WAIT_TIMEOUT {
            Failure::new(
                FailureKind::NoGroup,
                "group",
                format!(
                    "instance {instance} is in no Auto Scaling group after {} s: the agent only runs on swarm groups' instances",
                    budget.as_secs()
                ),
            )
        } else {
            Failure::call("group", e)
        }
    })
}

impl Agent {
    fn poll_policy(&self, timeout: Duration) -> PollPolicy {
        PollPolicy::new(timeout, self.settings.poll, self.settings.poll)
    }

    /// The local swarm state, once it is not `pending` (a join from before a restart still
    /// under way): waits for it a while, then cancels it with a forced leave.
    async fn settled_state(&self) -> Result<LocalState, Failure> {
        let state = self
            .engine
            .state()
            .await
            .map_err(|e| docker_failure("swarm", e))?;
        let state = if state.state == "pending" {
            info!(step = "swarm", "a join is under way: waiting for it");
            let settled = poll(
                "the pending join",
                &self.poll_policy(Duration::from_secs(30).min(remaining(self.deadline))),
                || async {
                    let s = self.engine.state().await?;
                    Ok(if s.state == "pending" {
                        Probe::Waiting("pending".into())
                    } else {
                        Probe::Done(s)
                    })
                },
            )
            .await;
            match settled {
                Ok(s) => s,
                Err(_) => {
                    warn!(
                        step = "swarm",
                        "the pending join did not finish: cancelling it"
                    );
                    self.engine
                        .leave(true)
                        .await
                        .map_err(|e| docker_failure("swarm", e))?;
                    self.engine
                        .state()
                        .await
                        .map_err(|e| docker_failure("swarm", e))?
                }
            }
        } else {
            state
        };
        match state.state.as_str() {
            "active" | "inactive" => Ok(state),
            other => Err(Failure::new(
                FailureKind::Docker,
                "swarm",
                format!(
                    "the Docker engine's swarm state is {other:?}{}: it needs a person (unlock or leave the swarm)",
                    state
                        .error
                        .as_deref()
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default()
                ),
            )),
        }
    }

    /// Step 4: the init race, then init or wait and join.
    async fn manager_start(&mut self) -> Result<(), Failure> {
        let me = self.id.instance_id.clone();
        let mut races = 0;
        loop {
            if races > MAX_RACES {
                return Err(Failure::new(
                    FailureKind::JoinTimeout,
                    "init-race",
                    format!(
                        "the init race was run {races} times without a live initialiser; giving up"
                    ),
                ));
            }
            races += 1;
            let race = claim_init(&self.aws, &self.params, &me)
                .await
                .map_err(|e| Failure::call("init-race", e))?;
            match race {
                InitRace::Won => {
                    info!(step = "init-race", parameter = %self.params.init(), "won the init race: this manager initialises the swarm");
                    return self.initialise().await;
                }
                InitRace::Again => continue,
                InitRace::Lost { holder } => {
                    info!(step = "init-race", holder = %holder, "lost the init race: waiting for the join tokens");
                    match self.wait_manager_token(&holder).await? {
                        Some(token) => return self.join(&token).await,
                        None => continue,
                    }
                }
            }
        }
    }

    /// `swarm init`, then the tokens in Parameter Store.
    async fn initialise(&self) -> Result<(), Failure> {
        if let Err(e) = self.engine.init(&self.id.ip).await {
            // A lost answer: the engine may be in the swarm all the same.
            let state = self
                .engine
                .state()
                .await
                .map_err(|e| docker_failure("swarm-init", e))?;
            if !state.active() {
                return Err(docker_failure("swarm-init", e));
            }
        }
        info!(step = "swarm-init", advertise = %self.id.ip, "initialised the swarm");
        self.write_tokens("swarm-init").await
    }

    /// Writes both join tokens (SecureString, overwriting).
    async fn write_tokens(&self, step: &'static str) -> Result<(), Failure> {
        let (worker, manager) = self
            .engine
            .join_tokens()
            .await
            .map_err(|e| docker_failure(step, e))?;
        for (name, token) in [
            (self.params.worker_token(), worker),
            (self.params.manager_token(), manager),
        ] {
            self.aws
                .put(&name, &token, true)
                .await
                .map_err(|e| Failure::call(step, e))?;
        }
        info!(step = step, worker = %self.params.worker_token(), manager = %self.params.manager_token(), "wrote the join tokens (SecureString)");
        Ok(())
    }

    /// Reads a token parameter: `Ok(None)` while it does not exist; access denied is final.
    async fn read_token(&self, role: Role) -> Result<Option<Secret>, Failure> {
        let name = self.params.token(role);
        match self.aws.get(&name).await {
            Ok(t) => Ok(t.filter(|t| !t.expose().is_empty())),
            Err(e) if e.is_retryable() => {
                warn!(step = "token", parameter = %name, error = %e, "cannot read the join token yet");
                Ok(None)
            }
            Err(e) if is_access_denied(&e) => Err(Failure::new(
                FailureKind::TokenUnreadable,
                "token",
                format!(
                    "cannot read the join token {name}: access denied ({e}); the node role needs ssm:GetParameter on /infra/{}/*",
                    self.stack
                ),
            )),
            Err(e) => Err(Failure::new(
                FailureKind::TokenUnreadable,
                "token",
                format!("cannot read the join token {name}: {e}"),
            )),
        }
    }

    /// A worker (or a manager that lost the race and found no stale claim): waits for the
    /// token until the join deadline.
    async fn wait_token(&self, role: Role) -> Result<Secret, Failure> {
        let name = self.params.token(role);
        info!(step = "token", parameter = %name, "waiting for the join token");
        loop {
            if let Some(t) = self.read_token(role).await? {
                info!(step = "token", parameter = %name, "read the join token");
                return Ok(t);
            }
            if remaining(self.deadline) < self.settings.poll {
                return Err(Failure::new(
                    FailureKind::JoinTimeout,
                    "token",
                    format!(
                        "no join token appeared at {name} within the join timeout ({} s): no manager initialised the swarm",
                        self.settings.join_timeout.as_secs()
                    ),
                ));
            }
            tokio::time::sleep(self.settings.poll).await;
        }
    }

    /// A manager that lost the race: waits for the manager token; `None` when the claim was
    /// stale and has been cleared (run the race again).
    async fn wait_manager_token(&self, holder: &str) -> Result<Option<Secret>, Failure> {
        let name = self.params.manager_token();
        let since = Instant::now();
        let grace = Duration::from_secs(30).min(self.settings.join_timeout / 4);
        loop {
            let token = self.read_token(Role::Manager).await?;
            let holder_state = if token.is_some() {
                crate::plan::InstanceState::Running
            } else {
                self.aws
                    .instance_states(&[holder.to_string()])
                    .await
                    .map_err(|e| Failure::call("init-race", e))?
                    .get(holder)
                    .copied()
                    .unwrap_or(crate::plan::InstanceState::NotFound)
            };
            match judge_claim(holder_state, token.is_some(), since.elapsed(), grace) {
                WaitVerdict::Join => {
                    info!(step = "token", parameter = %name, "read the join token");
                    return Ok(token);
                }
                WaitVerdict::Stale => {
                    let cleared =
                        clear_stale_claim(&self.aws, &self.params, holder, &self.id.instance_id)
                            .await
                            .map_err(|e| Failure::call("init-race", e))?;
                    warn!(
                        step = "init-race",
                        holder = %holder,
                        holder_state = ?holder_state,
                        cleared,
                        "the init claim is stale (its holder is not running and wrote no tokens): running the race again"
                    );
                    return Ok(None);
                }
                WaitVerdict::Wait => {}
            }
            if remaining(self.deadline) < self.settings.poll {
                return Err(Failure::new(
                    FailureKind::JoinTimeout,
                    "token",
                    format!(
                        "no join token appeared at {name} within the join timeout ({} s); the initialiser {holder} is {holder_state:?}",
                        self.settings.join_timeout.as_secs()
                    ),
                ));
            }
            tokio::time::sleep(self.settings.poll).await;
        }
    }

    /// The private addresses of the stack's in-service managers, this instance excluded.
    async fn manager_addresses(&self) -> Result<Vec<String>, ProviderError> {
        let ids: Vec<String> = self
            .aws
            .group_instances(&self.stack, "swarm-manager")
            .await?
            .into_iter()
            .filter(|i| *i != self.id.instance_id)
            .collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let found = self.aws.instances(&ids).await?;
        Ok(ids
            .iter()
            .filter_map(|i| found.get(i))
            .filter(|(state, _)| *state == crate::plan::InstanceState::Running)
            .filter_map(|(_, ip)| ip.clone())
            .map(|ip| format!("{ip}:{SWARM_PORT}"))
            .collect())
    }

    /// Step 5: joins through any manager, until the join deadline.
    async fn join(&self, token: &Secret) -> Result<(), Failure> {
        let mut last = String::from("no manager instance in service");
        let mut tried: Vec<String> = Vec::new();
        let mut said_waiting = false;
        loop {
            let peers = match self.manager_addresses().await {
                Ok(p) => p,
                Err(e) => {
                    warn!(step = "join", error = %e, "cannot list the managers");
                    last = e.to_string();
                    Vec::new()
                }
            };
            if peers.is_empty() && !said_waiting {
                info!(step = "join", "no manager in service yet: waiting");
                said_waiting = true;
            }
            for peer in peers {
                if remaining(self.deadline).is_zero() {
                    break;
                }
                if !tried.contains(&peer) {
                    tried.push(peer.clone());
                }
                info!(step = "join", manager = %peer, role = %self.role, "joining the swarm");
                let failure = self.engine.join(&peer, token, &self.id.ip).await.err();
                let joined = match failure.as_deref().map(classify_join_error) {
                    None => true,
                    Some(JoinFailure::BadToken) => {
                        return Err(Failure::new(
                            FailureKind::BadToken,
                            "join",
                            format!(
                                "the manager at {peer} refused the join token from {}: {}",
                                self.params.token(self.role),
                                failure.unwrap_or_default()
                            ),
                        ))
                    }
                    Some(JoinFailure::AlreadyJoined) => self.in_swarm().await,
                    Some(JoinFailure::StillJoining) => {
                        let joined = self.wait_joined().await;
                        if !joined {
                            warn!(step = "join", manager = %peer, "the join did not finish: cancelling it");
                            if let Err(e) = self.engine.leave(true).await {
                                warn!(step = "join", error = %e, "cannot cancel the join");
                            }
                        }
                        joined
                    }
                    Some(JoinFailure::Transient) => false,
                };
                if joined {
                    info!(step = "join", manager = %peer, role = %self.role, "joined the swarm");
                    return Ok(());
                }
                last = failure.unwrap_or_default();
                warn!(step = "join", manager = %peer, error = %last, "join failed");
            }
            if remaining(self.deadline) < self.settings.poll {
                return Err(Failure::new(
                    FailureKind::JoinTimeout,
                    "join",
                    format!(
                        "no manager let this node join within the join timeout ({} s); managers tried: [{}]; last error: {last}",
                        self.settings.join_timeout.as_secs(),
                        tried.join(", ")
                    ),
                ));
            }
            tokio::time::sleep(self.settings.poll).await;
        }
    }

    async fn in_swarm(&self) -> bool {
        self.engine.state().await.is_ok_and(|s| s.active())
    }

    /// After the engine said the join goes on in the background: waits (bounded) for it.
    async fn wait_joined(&self) -> bool {
        poll(
            "the join to finish",
            &self.poll_policy(Duration::from_secs(30).min(remaining(self.deadline))),
            || async {
                let s = self.engine.state().await?;
                Ok(if s.active() {
                    Probe::Done(())
                } else {
                    Probe::Waiting(s.state)
                })
            },
        )
        .await
        .is_ok()
    }

    fn record(&self, node_id: &str, state: RecordState) -> NodeRecord {
        NodeRecord {
            node_id: node_id.to_string(),
            instance: self.id.instance_id.clone(),
            az: self.id.az.clone(),
            role: self.role,
            ip: self.id.ip.clone(),
            state,
        }
    }

    async fn put_record(&self, record: &NodeRecord) -> Result<(), ProviderError> {
        let json = serde_json::to_string(record).unwrap_or_default();
        self.aws
            .put(
                &self.params.node(&self.id.instance_id),
                &Secret::new(json),
                false,
            )
            .await
    }

    /// Step 6: the node's record; a manager also labels itself, and writes the tokens if they
    /// are missing (an initialiser that stopped between init and writing them).
    async fn register(&self) -> Result<String, Failure> {
        let state = self
            .engine
            .state()
            .await
            .map_err(|e| docker_failure("record", e))?;
        let Some(node_id) = state.node_id.clone().filter(|_| state.active()) else {
            return Err(Failure::new(
                FailureKind::Docker,
                "record",
                format!(
                    "the engine is not in a swarm after joining (state {})",
                    state.state
                ),
            ));
        };
        let record = self.record(&node_id, RecordState::Ready);
        self.put_record(&record)
            .await
            .map_err(|e| Failure::call("record", e))?;
        info!(step = "record", parameter = %self.params.node(&self.id.instance_id), node_id = %node_id, "wrote this node's record");
        if self.role == Role::Manager {
            match self.engine.set_labels(&node_id, &record.labels()).await {
                Ok(_) => {
                    info!(step = "labels", node_id = %node_id, az = %record.az, instance = %record.instance, role = %record.role, "labelled this node")
                }
                Err(e) => {
                    warn!(step = "labels", error = %e, "cannot label this node yet (the leader will)")
                }
            }
            let missing = [self.params.worker_token(), self.params.manager_token()];
            let mut absent = false;
            for name in &missing {
                match self.aws.get(name).await {
                    Ok(None) => absent = true,
                    Ok(Some(_)) => {}
                    Err(e) => warn!(step = "tokens", error = %e, "cannot check the join tokens"),
                }
            }
            if absent {
                warn!(
                    step = "tokens",
                    "a join token parameter is missing: writing both"
                );
                if let Err(e) = self.write_tokens("tokens").await {
                    warn!(step = "tokens", error = %e, "cannot write the join tokens");
                }
            }
        }
        Ok(node_id)
    }

    /// Step 7: until the instance terminates, watch the lifecycle state; the leader manager
    /// also labels, drains and removes nodes.
    async fn serve(&self, node_id: &str) -> Result<Outcome, Failure> {
        info!(
            step = "serve",
            poll_s = self.settings.poll.as_secs_f64(),
            "serving: watching the lifecycle state"
        );
        let mut leader = false;
        let mut last_imds_error: Option<String> = None;
        loop {
            match self.imds.target_lifecycle_state().await {
                Ok(Some(s)) if s == "Terminated" => return self.leave(node_id).await,
                Ok(_) => last_imds_error = None,
                Err(e) => {
                    if last_imds_error.as_deref() != Some(e.as_str()) {
                        warn!(step = "serve", error = %e, "cannot read the target lifecycle state");
                    }
                    last_imds_error = Some(e);
                }
            }
            if self.role == Role::Manager {
                match self.leader_tick(node_id, leader).await {
                    Ok(now) => leader = now,
                    Err(e) => warn!(step = "leader", error = %e, "leader duties failed this round"),
                }
            }
            tokio::time::sleep(self.settings.poll).await;
        }
    }

    /// One round of the leader's duties; returns whether this manager is the leader.
    async fn leader_tick(&self, node_id: &str, was_leader: bool) -> Result<bool, ProviderError> {
        let nodes = self.engine.nodes().await?;
        let is_leader = nodes.iter().any(|n| n.id == node_id && n.leader);
        if is_leader != was_leader {
            if is_leader {
                info!(step = "leader", "this manager is the raft leader: it labels and drains nodes from their records and removes dead nodes");
            } else {
                info!(step = "leader", "this manager is no longer the raft leader");
            }
        }
        if !is_leader {
            return Ok(false);
        }
        let mut records = Vec::new();
        for (name, value) in self.aws.list(&self.params.nodes()).await? {
            match serde_json::from_str::<NodeRecord>(value.expose()) {
                Ok(r) => records.push(r),
                Err(e) => {
                    warn!(step = "leader", parameter = %name, error = %e, "ignoring an unreadable node record")
                }
            }
        }
        let check = instances_to_check(node_id, &nodes, &records);
        let states = if check.is_empty() {
            BTreeMap::new()
        } else {
            self.aws.instance_states(&check).await?
        };
        for action in leader_actions(node_id, &nodes, &records, &states) {
            self.carry_out(&action).await;
        }
        Ok(true)
    }

    async fn carry_out(&self, action: &Action) {
        let result = match action {
            Action::UpdateNode {
                node_id,
                labels,
                drain,
                why,
            } => self
                .engine
                .apply(node_id, labels, *drain)
                .await
                .map(|_| info!(step = "leader", node_id = %node_id, change = %why, "updated a node from its record")),
            Action::Demote { node_id, instance } => self
                .engine
                .demote(node_id)
                .await
                .map(|_| info!(step = "leader", node_id = %node_id, instance = %instance, "demoted a dead manager (its instance is gone)")),
            Action::Remove { node_id, instance } => self
                .engine
                .remove_node(node_id)
                .await
                .map(|_| info!(step = "leader", node_id = %node_id, instance = %instance, "removed a dead node (its instance is gone)")),
            Action::DeleteRecord { instance } => self
                .aws
                .delete(&self.params.node(instance))
                .await
                .map(|_| info!(step = "leader", instance = %instance, "deleted the record of a gone instance")),
        };
        if let Err(e) = result {
            warn!(step = "leader", action = ?action, error = %e, "a leader action failed (retried next round)");
        }
    }

    /// The instance terminates: drain, demote, leave, forget, complete the lifecycle action.
    async fn leave(&self, node_id: &str) -> Result<Outcome, Failure> {
        info!(
            step = "lifecycle",
            "the target lifecycle state is Terminated: leaving the swarm"
        );
        let hook = match self.aws.terminating_hook(&self.group).await {
            Ok(h) => h,
            Err(e) => {
                warn!(step = "lifecycle", error = %e, "cannot read the group's lifecycle hooks");
                None
            }
        };
        let mut drain_budget = self.settings.drain_timeout;
        if let Some(h) = &hook {
            drain_budget = drain_budget.min(h.heartbeat * 3 / 4);
        }

        // Announce it, drain (a manager itself, a worker through the leader).
        if let Err(e) = self
            .put_record(&self.record(node_id, RecordState::Draining))
            .await
        {
            warn!(step = "drain", error = %e, "cannot mark this node's record draining");
        }
        if self.role == Role::Manager {
            match self.engine.drain(node_id).await {
                Ok(_) => info!(step = "drain", "drained this node (availability drain)"),
                Err(e) => warn!(step = "drain", error = %e, "cannot drain this node"),
            }
        } else {
            info!(
                step = "drain",
                "marked this node's record draining: the leader drains it"
            );
        }
        let drained = poll(
            "this node's tasks to move away",
            &self.poll_policy(drain_budget),
            || async {
                let n = self.engine.running_tasks().await?;
                Ok(if n == 0 {
                    Probe::Done(())
                } else {
                    Probe::Waiting(format!("{n} task(s) running"))
                })
            },
        )
        .await;
        match drained {
            Ok(()) => info!(step = "drain", "no swarm task runs on this node any more"),
            Err(e) => warn!(step = "drain", error = %e, "tasks still run here; leaving anyway"),
        }

        // Demote (unless last), then leave.
        let mut force = false;
        if self.role == Role::Manager {
            let last = match self.engine.nodes().await {
                Ok(nodes) => is_last_manager(node_id, &nodes),
                Err(e) => {
                    // Try the demotion anyway: the engine refuses to demote the last manager.
                    warn!(step = "demote", error = %e, "cannot list the nodes");
                    false
                }
            };
            if last {
                info!(
                    step = "demote",
                    "the last manager: not demoting; leaving with force"
                );
                force = true;
            } else {
                match self.engine.demote(node_id).await {
                    Ok(_) => {
                        let demoted = poll(
                            "the demotion to take effect",
                            &self.poll_policy(Duration::from_secs(30)),
                            || async {
                                let s = self.engine.state().await?;
                                Ok(if s.control {
                                    Probe::Waiting("still a manager".into())
                                } else {
                                    Probe::Done(())
                                })
                            },
                        )
                        .await;
                        match demoted {
                            Ok(()) => info!(step = "demote", "demoted this manager"),
                            Err(e) => {
                                warn!(step = "demote", error = %e, "the demotion did not take effect; leaving with force");
                                force = true;
                            }
                        }
                    }
                    Err(e) => {
                        warn!(step = "demote", error = %e, "cannot demote this manager; leaving with force");
                        force = true;
                    }
                }
            }
        }
        if let Err(e) = self.engine.leave(force).await {
            if force {
                warn!(step = "leave", error = %e, "cannot leave the swarm");
            } else {
                warn!(step = "leave", error = %e, "cannot leave the swarm; trying with force");
                if let Err(e) = self.engine.leave(true).await {
                    warn!(step = "leave", error = %e, "cannot leave the swarm");
                }
            }
        }
        if !self.in_swarm().await {
            info!(step = "leave", force, "left the swarm");
        }

        if let Err(e) = self
            .aws
            .delete(&self.params.node(&self.id.instance_id))
            .await
        {
            warn!(step = "record", error = %e, "cannot delete this node's record (the leader will)");
        } else {
            info!(step = "record", "deleted this node's record");
        }

        match hook {
            None => {
                warn!(step = "complete-lifecycle", group = %self.group, "the group has no terminating lifecycle hook: nothing to complete")
            }
            Some(h) => {
                let policy =
                    RetryPolicy::new(4, Duration::from_millis(200), Duration::from_secs(2));
                match self
                    .aws
                    .complete_lifecycle(&self.group, &h.name, &self.id.instance_id, &policy)
                    .await
                {
                    Ok(()) => {
                        info!(step = "complete-lifecycle", hook = %h.name, "completed the lifecycle action (CONTINUE)")
                    }
                    Err(e) => warn!(
                        step = "complete-lifecycle",
                        hook = %h.name,
                        error = %e,
                        "cannot complete the lifecycle action; Auto Scaling continues after the hook's heartbeat timeout"
                    ),
                }
            }
        }
        info!(step = "exit", "done: this node left the swarm");
        Ok(Outcome::Left)
    }
}

fn docker_failure(step: &'static str, e: ProviderError) -> Failure {
    Failure::new(FailureKind::Docker, step, e.to_string())
}
