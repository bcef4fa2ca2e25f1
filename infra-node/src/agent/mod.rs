//! `infra-node run`: the steps of the contract (CONTRACT-11.md), in order. Decisions are in
//! [`crate::plan`]; AWS and Docker calls in [`crate::aws`] and [`crate::docker`]; this module
//! strings them together, bounds every wait, and logs one line per step.
//!
//! Steps 1 to 3 are here; `join` holds 4 and 5 (the init race, the join), `serve` 6
//! and 7 (record, labels, the leader's duties, leaving on termination).

mod join;
mod serve;

use std::time::Duration;

use infra_core::provider::ProviderError;
use infra_core::retry::{poll, PollPolicy, Probe, RetryPolicy};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::aws::{sdk_config, Aws, Params};
use crate::docker::{Engine, LocalState};
use crate::error::{Failure, FailureKind};
use crate::imds::{Identity, Imds};
use crate::plan::{init_race, InitPut, InitRace, Role};

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
    /// When the leader last forced each spread service to be placed again (at most once a
    /// minute per service).
    rebalanced: std::sync::Mutex<std::collections::BTreeMap<String, Instant>>,
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
    let agent = Agent {
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
        rebalanced: std::sync::Mutex::default(),
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
}

fn docker_failure(step: &'static str, e: ProviderError) -> Failure {
    Failure::new(FailureKind::Docker, step, e.to_string())
}
