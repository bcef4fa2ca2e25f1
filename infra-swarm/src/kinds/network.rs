//! `swarm_network`: an overlay network of the stack (`<stack>_<name>` in Swarm).
//!
//! Docker networks can't be changed after creation, so every setting forces a replacement. The
//! Swarm name stays `<stack>_<name>` (what operators type in `docker run --network`), which means
//! the old and the new network can't exist side by side: a replacement deletes first, and the
//! provider refuses to delete a network that a service still uses, naming the services. To move
//! services to a network with other settings without downtime, declare it under a new logical
//! name: the new network is created, the services are updated onto it, then the old one goes.

use infra_core::dsl::{KindSchema, ResourceSpec};
use infra_core::kind;
use infra_core::validate::{Checker, Problem, ValidationContext};
use infra_core::Value;

pub(crate) static NETWORK: KindSchema = KindSchema::new("swarm_network", "swarm")
    .move_replaces(
        "its Docker name is `<stack>_<name>`, from its address, and Docker can't rename a network",
    )
    .force_new(&["driver", "attachable", "encrypted", "internal", "labels"])
    .computed(&["id", "name"])
    .validate(validate_network)
    .codegen(super::codegen::network);

kind! {
    /// An overlay network (`docker network create -d overlay`), optionally attachable by plain
    /// containers and with encrypted data traffic (IPsec between nodes).
    pub struct SwarmNetwork => NETWORK
}

impl SwarmNetwork {
    /// An overlay network, not attachable, not encrypted.
    pub fn new(name: &str) -> Self {
        let mut s = ResourceSpec::new(&NETWORK, name);
        s.set("driver", "overlay");
        SwarmNetwork(s)
    }
    /// Let standalone containers (`docker run --network`) attach to it as well as services.
    pub fn attachable(mut self, on: bool) -> Self {
        self.0.set(
            "attachable",
            if on { Value::Bool(true) } else { Value::Null },
        );
        self
    }
    /// Encrypt the VXLAN traffic between nodes (IPsec; costs CPU, needs ESP allowed between nodes).
    pub fn encrypted(mut self, on: bool) -> Self {
        self.0.set(
            "encrypted",
            if on { Value::Bool(true) } else { Value::Null },
        );
        self
    }
    /// No route out of the network (no external connectivity).
    pub fn internal(mut self, on: bool) -> Self {
        self.0
            .set("internal", if on { Value::Bool(true) } else { Value::Null });
        self
    }
    /// A network label (immutable in Docker: changing it replaces the network).
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.0.insert("labels", key, value);
        self
    }
}

fn validate_network(spec: &ResourceSpec, ctx: &ValidationContext<'_>) -> Vec<Problem> {
    let mut c = Checker::new(spec);
    match spec.get_str("driver") {
        Some("overlay") => {}
        other => c.problem(
            "driver",
            format!("only overlay networks are supported, got {other:?}"),
        ),
    }
    let full = format!("{}_{}", ctx.stack().name(), spec.address.name());
    if full.len() > 64 {
        c.problem(
            "name",
            format!(
                "the network name `{full}` is {} characters; keep it within 64",
                full.len()
            ),
        );
    }
    if let Some(labels) = spec.get("labels").and_then(Value::as_map) {
        for k in labels.keys().filter(|k| k.starts_with("infra.")) {
            c.problem(
                "labels",
                format!("`{k}`: labels starting with `infra.` are reserved for ownership"),
            );
        }
    }
    c.finish()
}
