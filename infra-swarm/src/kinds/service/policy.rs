//! A service's update, rollback and restart policies, and its endpoint mode.

use std::time::Duration;

use infra_core::{map, Value};

/// What to do when an update's tasks fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureAction {
    /// Pause the update (Swarm's default).
    Pause,
    /// Carry on (not recommended: the policy report flags it).
    Continue,
    /// Roll back to the previous spec.
    Rollback,
}

impl FailureAction {
    fn as_str(self) -> &'static str {
        match self {
            FailureAction::Pause => "pause",
            FailureAction::Continue => "continue",
            FailureAction::Rollback => "rollback",
        }
    }
}

/// Start the new task before stopping the old one, or the reverse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UpdateOrder {
    /// Stop the old task first (Swarm's default).
    StopFirst,
    /// Start the new task first: no capacity dip. Not possible with host-mode ports on one node
    /// (the new task can't bind the port the old one holds).
    StartFirst,
}

/// A rolling update (or rollback) policy.
#[derive(Clone, Debug)]
pub struct UpdatePolicy {
    parallelism: u32,
    delay: Duration,
    failure_action: FailureAction,
    monitor: Duration,
    max_failure_ratio: f64,
    order: UpdateOrder,
}

impl Default for UpdatePolicy {
    fn default() -> Self {
        UpdatePolicy {
            parallelism: 1,
            delay: Duration::ZERO,
            failure_action: FailureAction::Pause,
            monitor: Duration::from_secs(5),
            max_failure_ratio: 0.0,
            order: UpdateOrder::StopFirst,
        }
    }
}

impl UpdatePolicy {
    /// Swarm's defaults.
    pub fn new() -> Self {
        UpdatePolicy::default()
    }
    /// Tasks updated at once (0: all).
    pub fn parallelism(mut self, n: u32) -> Self {
        self.parallelism = n;
        self
    }
    /// Wait between batches.
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
    /// What to do on failure.
    pub fn failure_action(mut self, a: FailureAction) -> Self {
        self.failure_action = a;
        self
    }
    /// How long to watch each updated task for failure. Swarm reports the update completed only
    /// once the last batch's monitor has run, so this bounds how long an apply waits. Zero
    /// means Swarm's default, 5 s (as in Swarm).
    pub fn monitor(mut self, d: Duration) -> Self {
        self.monitor = d;
        self
    }
    /// The fraction of tasks that may fail during an update before the failure action applies.
    pub fn max_failure_ratio(mut self, r: f64) -> Self {
        self.max_failure_ratio = r;
        self
    }
    /// Start-first or stop-first.
    pub fn order(mut self, o: UpdateOrder) -> Self {
        self.order = o;
        self
    }
    pub(super) fn to_value(&self) -> Value {
        map! {
            "parallelism" => self.parallelism,
            "delay_ms" => self.delay.as_millis() as i64,
            "failure_action" => self.failure_action.as_str(),
            "monitor_ms" => match self.monitor.as_millis() as i64 { 0 => 5000, ms => ms },
            "max_failure_ratio" => self.max_failure_ratio,
            "order" => match self.order { UpdateOrder::StopFirst => "stop-first", UpdateOrder::StartFirst => "start-first" },
        }
    }
}

/// When Swarm restarts a service's tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RestartCondition {
    /// Always (Swarm's default).
    Any,
    /// Only after a non-zero exit.
    OnFailure,
    /// Never.
    None,
}

/// How a service is reached on its networks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndpointMode {
    /// A virtual IP load-balanced by IPVS (Swarm's default).
    Vip,
    /// DNS round robin over the task IPs: no IPVS needed, no ingress-published ports.
    Dnsrr,
}
