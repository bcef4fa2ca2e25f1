//! `infra-swarm`: Docker Swarm kinds for `infra` and the provider that converges a real swarm
//! through the Docker Engine API.
//!
//! ```
//! use infra_swarm::{FailureAction, SwarmService, UpdateOrder, UpdatePolicy};
//! use infra_core::Stack;
//!
//! let mut stack = Stack::new("demo");
//! stack.add(
//!     SwarmService::new("app")
//!         .image("sha256:0123")
//!         .replicas(3)
//!         .spread("node.labels.az")
//!         .update_policy(UpdatePolicy::new().order(UpdateOrder::StartFirst).failure_action(FailureAction::Rollback)),
//! );
//! ```

pub mod kinds;

pub use kinds::*;

/// The provider name every Swarm kind declares.
pub const PROVIDER: &str = "swarm";
