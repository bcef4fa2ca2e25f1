//! Steps 6 and 7: the node's record and labels, then serving: the leader's duties, and
//! leaving when the instance terminates.

use std::collections::BTreeMap;
use std::time::Duration;

use infra_core::provider::ProviderError;
use infra_core::retry::{poll, Probe, RetryPolicy};
use tokio::time::Instant;
use tracing::{info, warn};

use super::{docker_failure, Agent, Outcome};
use crate::error::{Failure, FailureKind, Secret};
use crate::plan::{
    instances_to_check, is_last_manager, leader_actions_when, unbalanced, Action, NodeRecord,
    RecordState, Role, SpreadService,
};

/// The least time between two forced rebalancing updates of one service.
const REBALANCE_EVERY: Duration = Duration::from_secs(60);

impl Agent {
    pub(super) fn record(&self, node_id: &str, state: RecordState) -> NodeRecord {
        NodeRecord {
            node_id: node_id.to_string(),
            instance: self.id.instance_id.clone(),
            az: self.id.az.clone(),
            role: self.role,
            ip: self.id.ip.clone(),
            state,
        }
    }

    pub(super) async fn put_record(&self, record: &NodeRecord) -> Result<(), ProviderError> {
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
    pub(super) async fn register(&self) -> Result<String, Failure> {
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
    pub(super) async fn serve(&self, node_id: &str) -> Result<Outcome, Failure> {
        info!(
            step = "serve",
            poll_s = self.settings.poll.as_secs_f64(),
            "serving: watching the lifecycle state"
        );
        let mut leader = false;
        let mut last_imds_error: Option<String> = None;
        let mut last_leader_error: Option<String> = None;
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
                    Ok(now) => {
                        leader = now;
                        last_leader_error = None;
                    }
                    Err(e) => {
                        let e = e.to_string();
                        if last_leader_error.as_deref() != Some(e.as_str()) {
                            warn!(step = "leader", error = %e, "the leader's duties failed (retried every poll; logged again when the error changes)");
                        }
                        last_leader_error = Some(e);
                    }
                }
            }
            tokio::time::sleep(self.settings.poll).await;
        }
    }

    /// One round of the leader's duties; returns whether this manager is the leader.
    pub(super) async fn leader_tick(
        &self,
        node_id: &str,
        was_leader: bool,
    ) -> Result<bool, ProviderError> {
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
        // One reading of the services serves both duties. An engine that can't list services
        // and tasks (an error here) leaves the rule at one drain at a time and skips rebalancing;
        // the rest of the leader's duties go on.
        let services = match self.engine.services().await {
            Ok(services) => Some(services),
            Err(e) => {
                tracing::debug!(step = "leader", error = %e, "cannot tell whether the services run all their replicas");
                None
            }
        };
        let settled = services.as_ref().is_none_or(|s| s.settled);
        for action in leader_actions_when(node_id, &nodes, &records, &states, settled) {
            self.carry_out(&action).await;
        }
        if let Some(services) = services {
            self.rebalance(&services.spread, &nodes).await;
        }
        Ok(true)
    }

    /// Swarm never moves running tasks: a spread service whose replicas all started while only
    /// some AZs had nodes (a forming cluster, an AZ lost and replaced) is forced to be placed
    /// again (a rolling update, at most once a minute per service) once its AZs are uneven.
    async fn rebalance(&self, services: &[SpreadService], nodes: &[crate::plan::SwarmNode]) {
        for id in unbalanced(services, nodes) {
            let recent = {
                let mut last = self.rebalanced.lock().unwrap_or_else(|p| p.into_inner());
                let now = Instant::now();
                match last.get(&id) {
                    Some(t) if now.duration_since(*t) < REBALANCE_EVERY => true,
                    _ => {
                        last.insert(id.clone(), now);
                        false
                    }
                }
            };
            if recent {
                continue;
            }
            let name = services
                .iter()
                .find(|s| s.id == id)
                .map(|s| s.name.clone())
                .unwrap_or_default();
            match self.engine.force_update(&id).await {
                Ok(()) => {
                    info!(step = "rebalance", service = %name, "the service's tasks are uneven over its spread label: forced a rolling update so Swarm places them again")
                }
                Err(e) => {
                    warn!(step = "rebalance", service = %name, error = %e, "could not force the service's update (tried again next round)")
                }
            }
        }
    }

    pub(super) async fn carry_out(&self, action: &Action) {
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
    pub(super) async fn leave(&self, node_id: &str) -> Result<Outcome, Failure> {
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
        if self.in_swarm().await {
            warn!(
                step = "leave",
                "still in the swarm: the leader removes this node once its instance is gone"
            );
        } else {
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
