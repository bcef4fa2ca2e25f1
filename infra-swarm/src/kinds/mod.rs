//! Swarm kinds: typed builders with validation, one module per object type.
//!
//! Every kind declares what the planner must know: which fields force a replacement (a service's
//! mode; a network's settings; a secret's or config's content), which are computed (`id`, the
//! Swarm `name` of networks, secrets and configs), which are secret (a secret's `value`) and
//! which lists are sets (a service's networks, secrets, configs and ports).

mod network;
mod node;
mod secret;
mod service;

pub use network::SwarmNetwork;
pub use node::NodeLabels;
pub use secret::{SwarmConfig, SwarmSecret};
pub use service::{
    EndpointMode, FailureAction, RestartCondition, SwarmService, UpdateOrder, UpdatePolicy,
};

pub(crate) use node::{marker_key, MARKER_PREFIX};
pub(crate) use secret::swarm_name;
