//! `swarm_service`: a Swarm service.
//!
//! Durations are stored in milliseconds (`*_ms`). The update, rollback and restart policies are
//! always written out with Swarm's defaults (update parallelism 1, failure action pause, monitor
//! 5 s, stop-first; restart on any condition after 5 s), because Swarm fills them in and a read
//! must compare equal to the declaration. Optional settings whose Swarm default means "nothing"
//! (endpoint mode `vip`, `init` off, no healthcheck…) are left out by the builder and dropped by
//! the provider's read when they hold the default, so both sides normalise to the same shape and
//! a no-op plan is truly empty.

use std::collections::BTreeMap;
use std::time::Duration;

use infra_core::dsl::{KindSchema, Ref, ResourceSpec};
use infra_core::validate::{Checker, Problem, ValidationContext};
use infra_core::{kind, map, Input, Value};

use super::network::SwarmNetwork;
use super::secret::{SwarmConfig, SwarmSecret};

pub(crate) static SERVICE: KindSchema = KindSchema::new("swarm_service", "swarm")
    .force_new(&["mode"])
    .computed(&["id"])
    .unordered(&["networks", "secrets", "configs", "ports"])
    .validate(validate_service);

kind! {
    /// A Swarm service (`<stack>_<name>` in Swarm): replicated or global, with rolling-update,
    /// rollback and restart policies (the seed talk's "rescheduling policies"), placement,
    /// resources, healthcheck, networks, secrets, configs and published ports.
    ///
    /// After a create or an update the provider waits until the service has converged: every
    /// replica running the new spec and the rolling update completed. A rolled-back or paused
    /// update is reported as a failure of that change.
    pub struct SwarmService => SERVICE
}

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
    /// once the last batch's monitor has run, so this bounds how long an apply waits.
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
        self.0.set("command", strings(cmd));
        self
    }
    /// Arguments (the image's `CMD` override).
    pub fn args<S: AsRef<str>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.0.set("args", strings(args));
        self
    }
    /// An environment variable (not for secrets: use [`SwarmService::secret`]).
    pub fn env(mut self, key: &str, value: impl Into<Input<String>>) -> Self {
        self.0.insert("env", key, value.into());
        self
    }
    /// A service label (keys starting with `infra.` are reserved for ownership).
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
    /// The rollback policy (how Swarm rolls back a failed update).
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
    /// At most `n` tasks of this service per node (replicated services only).
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
    /// CPU and memory reservations: the scheduler places a task only where they are free.
    pub fn reservations(mut self, cpus: f64, memory_mb: u32) -> Self {
        self.0.insert("resources", "reserve_cpus", cpus);
        self.0.insert("resources", "reserve_memory_mb", memory_mb);
        self
    }
    /// A healthcheck command run with `/bin/sh -c` inside the container. With a healthcheck a
    /// task counts as running (for rolling updates and for the provider's convergence wait) only
    /// once it is healthy.
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
    /// The grace period before the first healthcheck failure counts (set after
    /// [`SwarmService::healthcheck`]).
    pub fn healthcheck_start_period(mut self, d: Duration) -> Self {
        if d.is_zero() {
            if let Some(Value::Map(m)) = self.0.props.get_mut("healthcheck") {
                m.remove("start_period_ms");
            }
        } else {
            self.0
                .insert("healthcheck", "start_period_ms", d.as_millis() as i64);
        }
        self
    }
    /// Publish a TCP port in host mode: the container's `target` port on `published` of each node
    /// running a task. Host mode is the default because it needs neither IPVS nor the ingress
    /// network.
    pub fn publish(self, published: u16, target: u16) -> Self {
        self.port(published, target, "tcp", "host")
    }
    /// Publish a UDP port in host mode.
    pub fn publish_udp(self, published: u16, target: u16) -> Self {
        self.port(published, target, "udp", "host")
    }
    /// Publish a TCP port through Swarm's ingress routing mesh (every node answers on
    /// `published`; needs IPVS on the nodes).
    pub fn publish_ingress(self, published: u16, target: u16) -> Self {
        self.port(published, target, "tcp", "ingress")
    }
    fn port(mut self, published: u16, target: u16, protocol: &str, mode: &str) -> Self {
        self.0.push(
            "ports",
            map! { "published" => published, "target" => target, "protocol" => protocol, "mode" => mode },
        );
        self
    }
    /// How tasks are reached: a virtual IP (default) or DNS round robin.
    pub fn endpoint_mode(mut self, mode: EndpointMode) -> Self {
        match mode {
            EndpointMode::Vip => self.0.set("endpoint_mode", Value::Null),
            EndpointMode::Dnsrr => self.0.set("endpoint_mode", "dnsrr"),
        };
        self
    }
    /// How long tasks get to stop (SIGTERM) before being killed (Swarm's default: 10 s).
    pub fn stop_grace_period(mut self, d: Duration) -> Self {
        self.0.set("stop_grace_period_ms", d.as_millis() as i64);
        self
    }
    /// Run an init process as PID 1 that forwards signals and reaps zombies, so that a process
    /// that ignores SIGTERM as PID 1 (most shells and busybox applets) still stops at once.
    pub fn init(mut self, on: bool) -> Self {
        self.0
            .set("init", if on { Value::Bool(true) } else { Value::Null });
        self
    }
    /// Attach the service to an overlay network of the stack.
    pub fn network(mut self, network: &Ref<SwarmNetwork>) -> Self {
        self.0.push("networks", network.id());
        self
    }
    /// Mount a secret of the stack at `target` (a file name under `/run/secrets/`, or an
    /// absolute path), owned by root, mode 0444. When the secret's value changes, the secret is
    /// replaced by a new object and the service is updated to it (a rolling update) before the old
    /// one is deleted.
    pub fn secret(mut self, secret: &Ref<SwarmSecret>, target: &str) -> Self {
        self.0.push(
            "secrets",
            map! {
                "secret_id" => secret.id(),
                "secret_name" => secret.output::<String>("name"),
                "target" => target,
                "uid" => "0",
                "gid" => "0",
                "mode" => 0o444,
            },
        );
        self
    }
    /// Mount a config of the stack at `target` (an absolute path, or a name under `/`), owned by
    /// root, mode 0444. Rotated like secrets.
    pub fn config(mut self, config: &Ref<SwarmConfig>, target: &str) -> Self {
        self.0.push(
            "configs",
            map! {
                "config_id" => config.id(),
                "config_name" => config.output::<String>("name"),
                "target" => target,
                "uid" => "0",
                "gid" => "0",
                "mode" => 0o444,
            },
        );
        self
    }
}

fn strings<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> Value {
    Value::List(items.into_iter().map(|c| Value::from(c.as_ref())).collect())
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
        Some("pause" | "continue") => {}
        Some("rollback") if field == "update_config" => {}
        Some("rollback") => c.problem(
            field,
            "a rollback can't itself be rolled back: its failure_action must be pause or continue",
        ),
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

/// Swarm's rule for service names (they are also DNS names on the stack's networks).
fn check_service_name(name: &str) -> Option<String> {
    if name.len() > 63 {
        return Some(format!(
            "the service name `{name}` is {} characters; Swarm allows 63",
            name.len()
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Some(format!(
            "the service name `{name}` must start with a letter or a digit"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Some(format!(
            "the service name `{name}` contains `{c}`; Swarm allows letters, digits, `-`, `_` and `.`"
        ));
    }
    None
}

fn validate_service(spec: &ResourceSpec, ctx: &ValidationContext<'_>) -> Vec<Problem> {
    let mut c = Checker::new(spec);
    c.required_str("image");
    let full = format!("{}_{}", ctx.stack().name(), spec.address.name());
    if let Some(problem) = check_service_name(&full) {
        c.problem("name", problem);
    }
    let mode = spec.get_str("mode");
    match mode {
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
    if let Some(labels) = spec.get("labels").and_then(Value::as_map) {
        for k in labels.keys().filter(|k| k.starts_with("infra.")) {
            c.problem(
                "labels",
                format!("`{k}`: labels starting with `infra.` are reserved for ownership"),
            );
        }
    }
    if let Some(env) = spec.get("env").and_then(Value::as_map) {
        for k in env.keys().filter(|k| k.is_empty() || k.contains('=')) {
            c.problem(
                "env",
                format!("`{k}` is not a valid variable name (empty or containing `=`)"),
            );
        }
    }
    if let Some(p) = spec.get("placement").and_then(Value::as_map) {
        for (i, con) in p
            .get("constraints")
            .and_then(Value::as_list)
            .unwrap_or(&[])
            .iter()
            .enumerate()
        {
            let text = con.as_str().unwrap_or_default();
            if !(text.contains("==") || text.contains("!=")) {
                c.problem(
                    &format!("placement.constraints[{i}]"),
                    format!("`{text}` is not a constraint: expected `<attribute> == <value>` or `<attribute> != <value>`"),
                );
            }
        }
        for (i, s) in p
            .get("spread")
            .and_then(Value::as_list)
            .unwrap_or(&[])
            .iter()
            .enumerate()
        {
            let text = s.as_str().unwrap_or_default();
            if !(text.starts_with("node.labels.") || text.starts_with("engine.labels.")) {
                c.problem(
                    &format!("placement.spread[{i}]"),
                    format!(
                        "`{text}` can't be spread over: use a node label such as `node.labels.az`"
                    ),
                );
            }
        }
        if p.contains_key("max_replicas_per_node") && mode == Some("global") {
            c.problem(
                "placement",
                "max_replicas_per_node applies to replicated services only",
            );
        }
    }
    if let Some(r) = spec.get("resources").and_then(Value::as_map) {
        for key in [
            "limit_cpus",
            "reserve_cpus",
            "limit_memory_mb",
            "reserve_memory_mb",
        ] {
            if let Some(v) = r.get(key).and_then(Value::as_f64) {
                if v <= 0.0 {
                    c.problem("resources", format!("{key} must be positive, got {v}"));
                }
            }
        }
        for (limit, reserve) in [
            ("limit_cpus", "reserve_cpus"),
            ("limit_memory_mb", "reserve_memory_mb"),
        ] {
            if let (Some(l), Some(r)) = (
                r.get(limit).and_then(Value::as_f64),
                r.get(reserve).and_then(Value::as_f64),
            ) {
                if r > l {
                    c.problem(
                        "resources",
                        format!(
                            "{reserve} {r} is more than {limit} {l}: the task could never start"
                        ),
                    );
                }
            }
        }
    }
    if let Some(h) = spec.get("healthcheck").and_then(Value::as_map) {
        let shell = h
            .get("test")
            .and_then(Value::as_list)
            .and_then(|t| t.get(1))
            .and_then(Value::as_str);
        if shell.is_none_or(|s| s.trim().is_empty()) {
            c.problem("healthcheck", "the healthcheck command is empty");
        }
        if h.get("interval_ms").and_then(Value::as_i64) == Some(0) {
            c.problem("healthcheck", "interval must be positive (at least 1 ms)");
        }
    }
    if let Some(ms) = spec.get("stop_grace_period_ms").and_then(Value::as_i64) {
        if ms < 0 {
            c.problem("stop_grace_period_ms", "must not be negative");
        }
    }
    let endpoint_mode = spec.get_str("endpoint_mode");
    if !matches!(endpoint_mode, None | Some("vip" | "dnsrr")) {
        c.problem(
            "endpoint_mode",
            format!("must be vip or dnsrr, got {endpoint_mode:?}"),
        );
    }
    let mut published = Vec::new();
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
        let protocol = m.and_then(|m| m.get("protocol")).and_then(Value::as_str);
        let mode = m.and_then(|m| m.get("mode")).and_then(Value::as_str);
        if mode == Some("ingress") && endpoint_mode == Some("dnsrr") {
            c.problem(
                &at,
                "an ingress-published port needs endpoint mode vip; publish it in host mode with dnsrr",
            );
        }
        let key = (
            m.and_then(|m| m.get("published")).and_then(Value::as_i64),
            protocol,
        );
        if published.contains(&key) {
            c.problem(
                &at,
                format!(
                    "port {}/{} is published twice",
                    key.0.unwrap_or_default(),
                    protocol.unwrap_or("tcp")
                ),
            );
        }
        published.push(key);
    }
    for (field, id_key) in [("secrets", "secret_id"), ("configs", "config_id")] {
        let mut targets = Vec::new();
        for (i, r) in spec
            .get(field)
            .and_then(Value::as_list)
            .unwrap_or(&[])
            .iter()
            .enumerate()
        {
            let m = r.as_map();
            let target = m
                .and_then(|m| m.get("target"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            if target.trim().is_empty() {
                c.problem(&format!("{field}[{i}]"), "the target path is empty");
            } else if targets.contains(&target) {
                c.problem(
                    &format!("{field}[{i}]"),
                    format!("`{target}` is mounted twice"),
                );
            }
            targets.push(target);
            if m.and_then(|m| m.get(id_key)).is_none() {
                c.problem(&format!("{field}[{i}]"), format!("`{id_key}` is missing"));
            }
        }
    }
    c.finish()
}
