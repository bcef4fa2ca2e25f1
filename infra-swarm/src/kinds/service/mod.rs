//! `swarm_service`: a Swarm service.
//!
//! Durations are stored in milliseconds (`*_ms`). The update, rollback and restart policies are
//! always written out with Swarm's defaults (update parallelism 1, failure action pause, monitor
//! 5 s, stop-first; restart on any condition after 5 s), because Swarm fills them in and a read
//! must compare equal to the declaration. Optional settings whose Swarm default means "nothing"
//! (endpoint mode `vip`, `init` off, no healthcheck…) are left out by the builder and dropped by
//! the provider's read when they hold the default, so both sides normalise to the same shape and
//! a no-op plan is truly empty.

//!
//! The builder is here; the update, rollback and restart policy types are in `policy`, the
//! validation in `validate`.

mod mount;
mod policy;
mod validate;

use std::collections::BTreeMap;
use std::time::Duration;

use infra_core::dsl::{KindSchema, Name, Ref, ResourceSpec};
use infra_core::{kind, map, Input, Value};

pub use mount::Mount;
pub use policy::{EndpointMode, FailureAction, RestartCondition, UpdateOrder, UpdatePolicy};

use super::network::SwarmNetwork;
use super::secret::{SwarmConfig, SwarmSecret};
use validate::validate_service;

pub(crate) static SERVICE: KindSchema = KindSchema::new("swarm_service", "swarm")
    .move_replaces(
        "its Swarm name is `<stack>_<name>`, from its address, and Swarm can't rename a service \
         (\"renaming services is not supported\")",
    )
    .force_new(&["mode", "swarm_name"])
    .computed(&["id"])
    .unordered(&[
        "networks", "aliases", "secrets", "configs", "ports", "mounts",
    ])
    // Everything the provider's task-template digest covers (the task template and the endpoint
    // spec): a change of any of these makes Swarm replace every task.
    .disruptive(
        &[
            "image",
            "command",
            "args",
            "env",
            "user",
            "stop_grace_period_ms",
            "init",
            "healthcheck",
            "secrets",
            "configs",
            "mounts",
            "restart_policy",
            "placement",
            "resources",
            "networks",
            "aliases",
            "endpoint_mode",
            "ports",
        ],
        "task-template change: the tasks are replaced (rolling update)",
    )
    .validate(validate_service)
    .codegen(super::codegen::service);

kind! {
    /// A Swarm service (`<stack>_<name>` in Swarm, `<name>` on its networks): replicated or
    /// global, with rolling-update, rollback and restart policies (the seed talk's
    /// "rescheduling policies"), placement, resources, healthcheck, networks and aliases,
    /// secrets, configs, mounts (named volumes, bind mounts, tmpfs) and published ports.
    ///
    /// After a create or an update the provider waits until the service has converged: every
    /// replica running the new spec and the rolling update completed. A rolled-back or paused
    /// update is reported as a failure of that change.
    pub struct SwarmService => SERVICE
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
    /// The user (name or UID, optionally `:group`) the task's process runs as, instead of the
    /// image's (a log shipper reading the engine's root-only log directory runs as `root`).
    pub fn user(mut self, user: &str) -> Self {
        self.0.set("user", user);
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
    /// Attach the service to an overlay network of the stack. On every network it is attached
    /// to, the service is reachable by its declared name (`elasticsearch`, not Swarm's
    /// `<stack>_elasticsearch`), as `docker stack deploy` makes it: each attachment gets the
    /// network alias `<name>` (the `aliases` field, which lists it), plus any
    /// [`SwarmService::alias`].
    ///
    /// With the default endpoint mode the name resolves to the service's virtual IP, which
    /// needs IPVS on the nodes; `tasks.<name>` resolves to the tasks' own addresses, and so does
    /// `<name>` itself in [`EndpointMode::Dnsrr`].
    pub fn network(mut self, network: &Ref<SwarmNetwork>) -> Self {
        self.0.push("networks", network.id());
        self.default_alias();
        self
    }
    /// Another name the service is reachable by on its networks (`.alias("es")`), besides its
    /// declared name: a DNS label (letters, digits and `-`, at most 63 characters). Needs a
    /// [`SwarmService::network`]; every network attachment gets every alias.
    pub fn alias(mut self, alias: &str) -> Self {
        self.default_alias();
        let present = self
            .0
            .get("aliases")
            .and_then(Value::as_list)
            .is_some_and(|l| l.iter().any(|a| a.as_str() == Some(alias)));
        if !present {
            self.0.push("aliases", alias);
        }
        self
    }
    /// The service's name in Swarm, instead of `<stack>_<name>`: for a service made outside
    /// `infra` and adopted ([`Stack::adopt`](infra_core::Stack::adopt)), which keeps its name
    /// (Swarm can't rename a service; changing it replaces the service). Swarm's DNS answers to
    /// a service's own name on its networks, so such a service gets no default alias: only
    /// those given with [`SwarmService::alias`].
    pub fn swarm_name(mut self, name: &str) -> Self {
        self.0.set("swarm_name", name);
        let declared = self.0.address.name().to_string();
        if let Some(Value::List(l)) = self.0.props.get_mut("aliases") {
            if l.first().and_then(Value::as_str) == Some(declared.as_str()) {
                l.remove(0);
            }
            if l.is_empty() {
                self.0.props.remove("aliases");
            }
        }
        self
    }
    /// The declared name as the first alias, once the service has a network or an alias
    /// (none for a service with a [`SwarmService::swarm_name`]).
    fn default_alias(&mut self) {
        if self.0.get("aliases").is_none() && self.0.get("swarm_name").is_none() {
            let name = self.0.address.name().to_string();
            self.0.push("aliases", name.as_str());
        }
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
                "secret_name" => secret.output::<Name<SwarmSecret>>("name"),
                "target" => target,
                "uid" => "0",
                "gid" => "0",
                "mode" => 0o444,
            },
        );
        self
    }
    /// Mount a volume, a host path or a tmpfs into every task ([`Mount`]). Each target may be
    /// mounted once (secrets and configs included); the list is a set, compared whatever the
    /// order of the calls.
    pub fn mount(mut self, mount: Mount) -> Self {
        self.0.push("mounts", mount.into_value());
        self
    }
    /// Mount a config of the stack at `target` (an absolute path, or a name under `/`), owned by
    /// root, mode 0444. Rotated like secrets.
    pub fn config(mut self, config: &Ref<SwarmConfig>, target: &str) -> Self {
        self.0.push(
            "configs",
            map! {
                "config_id" => config.id(),
                "config_name" => config.output::<Name<SwarmConfig>>("name"),
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
