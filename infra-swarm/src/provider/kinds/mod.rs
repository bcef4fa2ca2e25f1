//! One handler per Swarm kind, listed once in [`handlers`].
//!
//! A handler reads the stack's objects of its kind (one label-filtered list call), finds the
//! object a lost create made, and creates, updates and deletes. The provider dispatches by a
//! lookup in the [`Registry`](infra_core::registry::Registry) built from the list, and answers
//! `Provider::kinds()` from it. Adding a kind is its builder in `crate::kinds` (listed in
//! [`crate::kinds::schemas`]), a handler module here, and one line in [`handlers`]; a unit test
//! checks that the two lists agree.

pub(crate) mod adopted;
pub(crate) mod blob;
pub(crate) mod config;
pub(crate) mod network;
pub(crate) mod node_labels;
pub(crate) mod secret;
pub(crate) mod service;

use async_trait::async_trait;
use infra_core::provider::{Observed, OpContext, ProviderError, Resolved};
use infra_core::registry::KindHandler;

use super::connect::Client;

/// An object a read found, with its creation time (the newest of two objects claiming one
/// address is the resource).
pub(crate) type Found = (Observed, String);

/// What the provider needs from each kind. Every call gets the connection; none is made
/// without the stack's ownership labels.
#[async_trait]
pub(crate) trait SwarmKind: KindHandler + Send + Sync {
    /// What Docker calls the object ("service", "network"), in messages.
    fn noun(&self) -> &'static str;

    /// The stack's objects of this kind: one label-filtered list call.
    async fn read(&self, client: &Client, stack: &str) -> Result<Vec<Found>, ProviderError>;

    /// The object a create of `desired` makes, when it exists and carries the stack's labels
    /// for `desired.address` (a create whose response was lost made it). `None` when there is
    /// none or it is not this address's; a failed look is an error, never `None`.
    async fn find(
        &self,
        client: &Client,
        stack: &str,
        desired: &Resolved,
    ) -> Result<Option<Observed>, ProviderError>;

    /// Creates the object with the stack's labels in the same call; converges before
    /// returning when Swarm does the work in the background.
    async fn create(
        &self,
        client: &Client,
        ctx: &OpContext,
        desired: &Resolved,
    ) -> Result<Observed, ProviderError>;

    /// Changes the `changed` fields in place. Kinds that Docker can't change in place keep
    /// this default, which refuses (the planner replaces them instead).
    async fn update(
        &self,
        _client: &Client,
        _ctx: &OpContext,
        _current: &Observed,
        desired: &Resolved,
        _changed: &[String],
    ) -> Result<Observed, ProviderError> {
        Err(ProviderError::fatal(
            "Immutable",
            format!(
                "{}: Docker {}s can't be changed in place",
                desired.address,
                self.noun()
            ),
        ))
    }

    /// Deletes the object; one that is gone already counts as deleted where Docker allows
    /// telling.
    async fn delete(
        &self,
        client: &Client,
        ctx: &OpContext,
        current: &Observed,
    ) -> Result<(), ProviderError>;
}

/// Every Swarm kind's handler: the one list.
pub(crate) fn handlers() -> Vec<Box<dyn SwarmKind>> {
    vec![
        Box::new(service::Service),
        Box::new(network::Network),
        Box::new(blob::Blob(secret::Secret)),
        Box::new(blob::Blob(config::Config)),
        Box::new(node_labels::Labels),
    ]
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use infra_core::dsl::Resource;
    use infra_core::registry::Registry;

    use super::*;
    use crate::{NodeLabels, SwarmConfig, SwarmNetwork, SwarmSecret, SwarmService};

    #[test]
    fn every_kind_has_one_handler() {
        // Registry::new panics on two handlers for one kind or a kind of another provider.
        // A new kind needs no line here: this only checks that none of these goes missing.
        let registry: Registry<dyn SwarmKind> = Registry::new(crate::PROVIDER, handlers());
        let served: BTreeSet<&str> = registry.kinds().iter().map(|s| s.kind).collect();
        let declared: BTreeSet<&str> = [
            SwarmService::SCHEMA,
            SwarmNetwork::SCHEMA,
            SwarmSecret::SCHEMA,
            SwarmConfig::SCHEMA,
            NodeLabels::SCHEMA,
        ]
        .iter()
        .map(|s| s.kind)
        .collect();
        assert!(served.is_superset(&declared), "{served:?}");
        for kind in &declared {
            assert_eq!(registry.get(kind).unwrap().schema().kind, *kind);
        }
        // crate::kinds::schemas (what the sandbox serves without `live`) lists the same kinds,
        // each once.
        let listed: Vec<&str> = crate::kinds::schemas().iter().map(|s| s.kind).collect();
        assert_eq!(listed.len(), served.len(), "{listed:?}");
        assert_eq!(listed.into_iter().collect::<BTreeSet<_>>(), served);
        let e = registry.get("swarm_volume").err().unwrap();
        assert_eq!(e.code, "Unsupported");
        assert_eq!(e.message, "the swarm provider has no kind `swarm_volume`");
    }
}
