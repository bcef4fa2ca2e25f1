//! Swarm kinds: typed builders with validation.
//!
//! Durations are stored in milliseconds and every Swarm default is written out by the builders
//! (update parallelism 1, failure action pause, monitor 5 s, stop-first; restart on any
//! condition after 5 s), so that what the provider reads back compares equal and a no-op plan is
//! truly empty.

use std::collections::BTreeMap;
use std::time::Duration;

use infra_core::dsl::{KindSchema, ResourceSpec};
use infra_core::validate::{Checker, Problem, ValidationContext};
use infra_core::{kind, map, Input, Value};

pub(crate) static SERVICE: KindSchema = KindSchema::new("swarm_service", "swarm")
    .force_new(&["mode"])
    .computed(&["id"])
    .validate(validate_service);

kind! {
    /// A Swarm service: replicated or global, with rolling-update, rollback and restart policies
    /// (the seed talk's "rescheduling policies"), placement, resources, healthcheck and ports.
    pub struct SwarmService => SERVICE
}

/// What to do when an update's tasks fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
pub enum UpdateOrder {
    /// Stop the old task first (Swarm's default).
    StopFirst,
    /// Start the new task first: no capacity dip.
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
    /// How long to watch each task for failure.
    pub fn monitor(mut self, d: Duration) -> Self {
        self.monitor = d;
        self
    }
    /// The fraction of tasks that may fail.
    pub fn max_failure_ratio(mut self, r: f64) -> Self {
        self.max_failure_ratio = r;
        self
    }
    /// Start-first or stop-first.
    pub fn order(mut self, o: UpdateOrder) -> Self {
        self.order = o;
        self
    }
    fn to_value(&self) -> Value {
        map! {
            "parallelism" => self.parallelism,
            "delay_ms" => self.delay.as_millis() as i64,
            "failure_action" => self.failure_action.as_str(),
            "monitor_ms" => self.monitor.as_millis() as i64,
            "max_failure_ratio" => self.max_failure_ratio,
            "order" => match self.order { UpdateOrder::StopFirst => "stop-first", UpdateOrder::StartFirst => "start-first" },
        }
    }
}

/// When Swarm restarts a service's tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartCondition {
    /// Always (Swarm's default).
    Any,
    /// Only after a non-zero exit.
    OnFailure,
    /// Never.
    None,
}

impl SwarmService {
    /// A service named `name` (`<stack>_<name>` in Swarm), replicated with one replica and
    /// Swarm's default policies written out.
    pub fn new(name: &str) -> Self {
        let mut s = ResourceSpec::new(&SERVICE, name);
        s.set("mode", "replicated").set("replicas", 1);
        s.set("update_config", UpdatePolicy::default().to_value());
        s.set("rollback_config", UpdatePolicy::default().to_value());
        s.set("restart_policy", map! { "condition" => "any", "delay_ms" => 5000, "max_attempts" => 0, "window_ms" => 0 });
        SwarmService(s)
    }
    /// The image (an image ID such as `sha256:…`, or a reference resolvable by every node).
    pub fn image(mut self, image: impl Into<Input<String>>) -> Self {
        self.0.set("image", image.into());
        self
    }
    /// The command (entrypoint override).
    pub fn command<S: AsRef<str>>(mut self, cmd: impl IntoIterator<Item = S>) -> Self {
        self.0.set(
            "command",
            Value::List(cmd.into_iter().map(|c| Value::from(c.as_ref())).collect()),
        );
        self
    }
    /// Arguments.
    pub fn args<S: AsRef<str>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.0.set(
            "args",
            Value::List(args.into_iter().map(|c| Value::from(c.as_ref())).collect()),
        );
        self
    }
    /// An environment variable (not for secrets: use a secret reference).
    pub fn env(mut self, key: &str, value: impl Into<Input<String>>) -> Self {
        self.0.insert("env", key, value.into());
        self
    }
    /// A service label.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.0.insert("labels", key, value);
        self
    }
    /// Replicated with `n` replicas.
    pub fn replicas(mut self, n: u32) -> Self {
        self.0.set("mode", "replicated").set("replicas", n);
        self
    }
    /// One task on every node (log shippers, monitoring agents).
    pub fn global(mut self) -> Self {
        self.0.set("mode", "global");
        self.0.props.remove("replicas");
        self
    }
    /// The rolling update policy.
    pub fn update_policy(mut self, p: UpdatePolicy) -> Self {
        self.0.set("update_config", p.to_value());
        self
    }
    /// The rollback policy.
    pub fn rollback_policy(mut self, p: UpdatePolicy) -> Self {
        self.0.set("rollback_config", p.to_value());
        self
    }
    /// The restart policy: condition, delay between restarts, max attempts (0: unlimited), window.
    pub fn restart_policy(
        mut self,
        condition: RestartCondition,
        delay: Duration,
        max_attempts: u32,
        window: Duration,
    ) -> Self {
        let c = match condition {
            RestartCondition::Any => "any",
            RestartCondition::OnFailure => "on-failure",
            RestartCondition::None => "none",
        };
        self.0.set(
            "restart_policy",
            map! { "condition" => c, "delay_ms" => delay.as_millis() as i64, "max_attempts" => max_attempts, "window_ms" => window.as_millis() as i64 },
        );
        self
    }
    /// A placement constraint (`node.role == worker`, `node.labels.az == a`).
    pub fn constraint(mut self, c: &str) -> Self {
        self.placement(|p| push(p, "constraints", Value::from(c)));
        self
    }
    /// Spread tasks evenly over the values of a node label (`node.labels.az`).
    pub fn spread(mut self, label: &str) -> Self {
        self.placement(|p| push(p, "spread", Value::from(label)));
        self
    }
    /// At most `n` tasks of this service per node.
    pub fn max_replicas_per_node(mut self, n: u32) -> Self {
        self.placement(|p| {
            p.insert("max_replicas_per_node".into(), Value::from(n));
        });
        self
    }
    fn placement(&mut self, f: impl FnOnce(&mut BTreeMap<String, Value>)) {
        let mut placement = match self.0.props.remove("placement") {
            Some(Value::Map(m)) => m,
            _ => BTreeMap::new(),
        };
        f(&mut placement);
        self.0.set("placement", Value::Map(placement));
    }
    /// CPU and memory limits (cpus as a fraction of cores, memory in MiB).
    pub fn limits(mut self, cpus: f64, memory_mb: u32) -> Self {
        self.0.insert("resources", "limit_cpus", cpus);
        self.0.insert("resources", "limit_memory_mb", memory_mb);
        self
    }
    /// CPU and memory reservations.
    pub fn reservations(mut self, cpus: f64, memory_mb: u32) -> Self {
        self.0.insert("resources", "reserve_cpus", cpus);
        self.0.insert("resources", "reserve_memory_mb", memory_mb);
        self
    }
    /// A healthcheck command run with `/bin/sh -c` inside the container.
    pub fn healthcheck(
        mut self,
        shell: &str,
        interval: Duration,
        timeout: Duration,
        retries: u32,
    ) -> Self {
        self.0.set(
            "healthcheck",
            map! {
                "test" => vec!["CMD-SHELL".to_string(), shell.to_string()],
                "interval_ms" => interval.as_millis() as i64,
                "timeout_ms" => timeout.as_millis() as i64,
                "retries" => retries,
            },
        );
        self
    }
    /// Publish a TCP port in host mode (the container's `target` port on each node's `published`).
    pub fn publish(mut self, published: u16, target: u16) -> Self {
        self.0.push("ports", map! { "published" => published, "target" => target, "protocol" => "tcp", "mode" => "host" });
        self
    }
    /// Publish a TCP port through Swarm's ingress routing mesh.
    pub fn publish_ingress(mut self, published: u16, target: u16) -> Self {
        self.0.push("ports", map! { "published" => published, "target" => target, "protocol" => "tcp", "mode" => "ingress" });
        self
    }
    /// How long tasks get to stop before being killed.
    pub fn stop_grace_period(mut self, d: Duration) -> Self {
        self.0.set("stop_grace_period_ms", d.as_millis() as i64);
        self
    }
}

fn push(map: &mut BTreeMap<String, Value>, key: &str, v: Value) {
    match map
        .entry(key.to_string())
        .or_insert_with(|| Value::List(Vec::new()))
    {
        Value::List(l) => l.push(v),
        other => *other = Value::List(vec![v]),
    }
}

fn check_policy(c: &mut Checker<'_>, spec: &ResourceSpec, field: &str) {
    let Some(p) = spec.get(field).and_then(Value::as_map) else {
        return;
    };
    match p.get("failure_action").and_then(Value::as_str) {
        Some("pause" | "continue" | "rollback") => {}
        other => c.problem(
            field,
            format!("failure_action must be pause, continue or rollback, got {other:?}"),
        ),
    }
    if let Some(r) = p.get("max_failure_ratio").and_then(Value::as_f64) {
        if !(0.0..=1.0).contains(&r) {
            c.problem(field, format!("max_failure_ratio {r} is outside [0, 1]"));
        }
    }
}

fn validate_service(spec: &ResourceSpec, ctx: &ValidationContext<'_>) -> Vec<Problem> {
    let mut c = Checker::new(spec);
    c.required_str("image");
    let full = format!("{}_{}", ctx.stack().name(), spec.address.name());
    if full.len() > 63 {
        c.problem(
            "name",
            format!(
                "the service name `{full}` is {} characters; Swarm allows 63",
                full.len()
            ),
        );
    }
    match spec.get_str("mode") {
        Some("replicated") => {
            c.int_in("replicas", 0, 10_000);
        }
        Some("global") => {
            if spec.get("replicas").is_some() {
                c.problem(
                    "replicas",
                    "a global service runs one task per node; replicas can't be set",
                );
            }
        }
        other => c.problem(
            "mode",
            format!("must be replicated or global, got {other:?}"),
        ),
    }
    check_policy(&mut c, spec, "update_config");
    check_policy(&mut c, spec, "rollback_config");
    if let Some(rp) = spec.get("restart_policy").and_then(Value::as_map) {
        match rp.get("condition").and_then(Value::as_str) {
            Some("any" | "on-failure" | "none") => {}
            other => c.problem(
                "restart_policy",
                format!("condition must be any, on-failure or none, got {other:?}"),
            ),
        }
    }
    for (i, p) in spec
        .get("ports")
        .and_then(Value::as_list)
        .unwrap_or(&[])
        .iter()
        .enumerate()
    {
        let at = format!("ports[{i}]");
        let m = p.as_map();
        for key in ["published", "target"] {
            match m.and_then(|m| m.get(key)).and_then(Value::as_i64) {
                Some(n) if (1..=65535).contains(&n) => {}
                other => c.problem(&at, format!("{key} port {other:?} is outside 1-65535")),
            }
        }
    }
    c.finish()
}
