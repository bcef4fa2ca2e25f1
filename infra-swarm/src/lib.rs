//! `infra-swarm`: Docker Swarm kinds for `infra` and the provider that converges a real swarm
//! through the Docker Engine API (bollard).
//!
//! ```
//! use infra_swarm::{FailureAction, SwarmNetwork, SwarmSecret, SwarmService, UpdateOrder, UpdatePolicy};
//! use infra_core::Stack;
//!
//! let mut stack = Stack::new("demo");
//! let net = stack.add(SwarmNetwork::new("backend").attachable(true));
//! let token = stack.add(SwarmSecret::new("api-token").value(b"s3cr3t".to_vec()));
//! stack.add(
//!     SwarmService::new("app")
//!         .image("sha256:0123")
//!         .replicas(3)
//!         .network(&net)
//!         .secret(&token, "api-token")
//!         .spread("node.labels.az")
//!         .update_policy(UpdatePolicy::new().order(UpdateOrder::StartFirst).failure_action(FailureAction::Rollback)),
//! );
//! ```
//!
//! The `SwarmProvider` (feature `live`, on by default) serves every kind here. See its docs for
//! ownership (labels), the convergence wait after each change, and how secrets and configs are
//! rotated. Without `live` the crate is the kinds and the policy rules, free of bollard: what a
//! plan on the sandbox needs.

pub mod kinds;
pub mod policy;
#[cfg(feature = "live")]
mod provider;

pub use kinds::*;
#[cfg(feature = "live")]
pub use provider::{ConnectError, SwarmProvider};

/// The provider name every Swarm kind declares.
pub const PROVIDER: &str = "swarm";
