//! `swarm_node_labels`: labels the stack manages on an existing node (e.g. its availability
//! zone, for `node.labels.az` constraints and spread preferences).
//!
//! Nodes are not created by the stack, so this kind owns label keys, not the node: the provider
//! records which keys it manages in one marker label on the node,
//! `infra.owner.<stack>.<name>` (JSON: the node selector, the managed keys, the protect flag,
//! and the values those keys had before the stack took them over). A read reports the current
//! values of exactly those keys, so a label removed or changed by hand shows as drift. Declaring
//! a key that already exists on the node takes it over; a delete (or dropping the key from the
//! declaration) puts back the value it had before, or removes it if it had none, and leaves every
//! other label alone.

use infra_core::dsl::{KindSchema, ResourceSpec};
use infra_core::kind;
use infra_core::validate::{Checker, Problem, ValidationContext};
use infra_core::Value;

pub(crate) static NODE_LABELS: KindSchema = KindSchema::new("swarm_node_labels", "swarm")
    .force_new(&["node"])
    .computed(&["id"])
    .validate(validate_node_labels);

kind! {
    /// Labels on one swarm node, managed by the stack.
    pub struct NodeLabels => NODE_LABELS
}

impl NodeLabels {
    /// Labels for the node chosen with [`NodeLabels::node`].
    pub fn new(name: &str) -> Self {
        NodeLabels(ResourceSpec::new(&NODE_LABELS, name))
    }
    /// The node: its hostname, its ID, or `self` for the node the provider is connected to.
    pub fn node(mut self, selector: &str) -> Self {
        self.0.set("node", selector);
        self
    }
    /// A label to set (`az` = `a` makes `node.labels.az == a` match).
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.0.insert("labels", key, value);
        self
    }
}

/// The marker label's key for a resource of a stack (the provider's, `live`).
#[cfg(feature = "live")]
pub(crate) fn marker_key(stack: &str, name: &str) -> String {
    format!("{MARKER_PREFIX}{stack}.{name}")
}

/// The prefix of every marker label (the provider's, `live`).
#[cfg(feature = "live")]
pub(crate) const MARKER_PREFIX: &str = "infra.owner.";

fn validate_node_labels(spec: &ResourceSpec, ctx: &ValidationContext<'_>) -> Vec<Problem> {
    let mut c = Checker::new(spec);
    let node = c.required_str("node");
    let labels = spec.get("labels").and_then(Value::as_map);
    match labels {
        None => c.problem(
            "labels",
            "declares no label: add one with `.label(key, value)`",
        ),
        Some(l) => {
            for k in l.keys() {
                if k.starts_with("infra.") {
                    c.problem(
                        "labels",
                        format!("`{k}`: labels starting with `infra.` are reserved for ownership"),
                    );
                }
                if k.trim().is_empty() {
                    c.problem("labels", "a label key is empty");
                }
            }
        }
    }
    // Two resources of the stack managing the same key on the same node would fight.
    if let (Some(node), Some(labels)) = (node, labels) {
        for other in ctx.of_kind(NODE_LABELS.kind) {
            if other.address >= spec.address || other.get_str("node") != Some(node) {
                continue;
            }
            let theirs = other.get("labels").and_then(Value::as_map);
            for k in labels.keys() {
                if theirs.is_some_and(|t| t.contains_key(k)) {
                    c.problem(
                        "labels",
                        format!(
                            "`{k}` on node `{node}` is also managed by {}",
                            other.address
                        ),
                    );
                }
            }
        }
    }
    c.finish()
}
