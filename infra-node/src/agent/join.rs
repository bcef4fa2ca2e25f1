//! Steps 4 and 5: the init race (init, or wait for the tokens), and the join.

use std::collections::BTreeSet;
use std::time::Duration;

use infra_core::provider::ProviderError;
use infra_core::retry::{poll, Probe};
use tokio::time::Instant;
use tracing::{info, warn};

use super::{claim_init, clear_stale_claim, docker_failure, remaining, Agent, MAX_RACES};
use crate::aws::is_access_denied;
use crate::docker::SWARM_PORT;
use crate::error::{Failure, FailureKind, Secret};
use crate::plan::{
    classify_join_error, judge_claim, order_peers, InitRace, InstanceState, JoinFailure, Role,
    WaitVerdict,
};

impl Agent {
    /// Step 4: the init race, then init or wait and join.
    pub(super) async fn manager_start(&self) -> Result<(), Failure> {
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
    pub(super) async fn initialise(&self) -> Result<(), Failure> {
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
    pub(super) async fn write_tokens(&self, step: &'static str) -> Result<(), Failure> {
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
    pub(super) async fn read_token(&self, role: Role) -> Result<Option<Secret>, Failure> {
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

    /// A worker: waits for its token until the join deadline.
    pub(super) async fn wait_token(&self, role: Role) -> Result<Secret, Failure> {
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
    pub(super) async fn wait_manager_token(&self, holder: &str) -> Result<Option<Secret>, Failure> {
        let name = self.params.manager_token();
        let since = Instant::now();
        let grace = Duration::from_secs(30).min(self.settings.join_timeout / 4);
        loop {
            let token = self.read_token(Role::Manager).await?;
            let holder_state = if token.is_some() {
                InstanceState::Running
            } else {
                self.aws
                    .instance_states(&[holder.to_string()])
                    .await
                    .map_err(|e| Failure::call("init-race", e))?
                    .get(holder)
                    .copied()
                    .unwrap_or(InstanceState::NotFound)
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

    /// The addresses of the stack's in-service managers, this instance excluded, in the order
    /// to try them ([`order_peers`]).
    pub(super) async fn manager_addresses(&self) -> Result<Vec<String>, ProviderError> {
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
        let peers: Vec<(String, String)> = ids
            .iter()
            .filter_map(|i| found.get(i).map(|f| (i, f)))
            .filter(|(_, (state, _))| *state == InstanceState::Running)
            .filter_map(|(i, (_, ip))| Some((i.clone(), format!("{}:{SWARM_PORT}", ip.as_ref()?))))
            .collect();
        // Who is in the swarm already: a hint for the order only, so a failed read is no error.
        let holder = match self.aws.get(&self.params.init()).await {
            Ok(h) => h.map(|h| h.expose().to_string()),
            Err(_) => None,
        };
        let recorded: BTreeSet<String> = match self.aws.list(&self.params.nodes()).await {
            Ok(records) => records
                .into_iter()
                .filter_map(|(name, _)| name.rsplit('/').next().map(str::to_string))
                .collect(),
            Err(_) => BTreeSet::new(),
        };
        Ok(order_peers(peers, holder.as_deref(), &recorded))
    }

    /// Step 5: joins through any manager, until the join deadline.
    pub(super) async fn join(&self, token: &Secret) -> Result<(), Failure> {
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

    pub(super) async fn in_swarm(&self) -> bool {
        self.engine.state().await.is_ok_and(|s| s.active())
    }

    /// After the engine said the join goes on in the background: waits (bounded) for it.
    pub(super) async fn wait_joined(&self) -> bool {
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
}
