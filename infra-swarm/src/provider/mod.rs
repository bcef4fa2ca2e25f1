//! The Swarm provider; see [`SwarmProvider`].
//!
//! One module per concern: `connect` (the bollard client, version negotiation), `errors`
//! (Docker errors as the reconciler needs them), `read` (a stack's objects in one pass),
//! `lock` (the apply lock's primitives), `wait` (retries and polls, on `infra_core::retry`),
//! `convert` (the ownership labels every kind shares) and `kinds`: one handler per kind,
//! listed once.

mod connect;
mod convert;
mod errors;
mod import;
mod kinds;
mod lock;
mod read;
mod wait;

use std::time::Duration;

use async_trait::async_trait;
use infra_core::dsl::{Address, KindSchema};
use infra_core::import::{Found, ImportFilter};
use infra_core::lock::Created;
use infra_core::provider::{
    LockInfo, Observed, OpContext, Provider, ProviderError, ReadResult, Resolved,
};
use infra_core::registry::Registry;

use connect::Client;
pub use connect::ConnectError;
use kinds::SwarmKind;

/// The Swarm provider: converges a real swarm through the Docker Engine API (bollard).
///
/// * **Connection.** [`SwarmProvider::connect`] uses `DOCKER_HOST` or the local socket and
///   negotiates the API version: bollard asks for its newest version first, and an older engine
///   answers "client version X is too new. Maximum supported API version is Y", which is parsed
///   and used (bollard's own `negotiate_version()` can't do this: its `/version` request already
///   fails on such an engine). Swarm mode and a manager node are required, with a message saying
///   how to get there.
/// * **Ownership.** Every object carries `infra.stack`, `infra.id` (the address) and
///   `infra.protect` labels, set in the create call. A read is one label-filtered list call per
///   object type (services, networks, secrets, configs) plus one node list; nothing without the
///   stack's labels is ever returned, updated or deleted. When two objects claim one address
///   (the new half of an interrupted secret rotation beside the old one), the newest is the
///   resource and the others are reported as `<address>~<id>` so the plan deletes them once
///   nothing uses them.
/// * **Updates** send the `Version.Index` just inspected; on "update out of sequence" the
///   provider re-inspects, re-diffs (the change may already be there) and retries.
/// * **Convergence.** After creating or updating a service the provider waits until every
///   replica runs the new task template and the rolling update is completed. A rollback or a
///   paused update fails that change with Swarm's reason and the failing task's error, which
///   `docker stack deploy` never reports (docker/cli#6752). While it waits, the operation's
///   status says what it waits for (the deploy program's heartbeat lines).
pub struct SwarmProvider {
    client: Client,
    endpoint: String,
    api_version: String,
    kinds: Registry<dyn SwarmKind>,
}

impl std::fmt::Debug for SwarmProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwarmProvider")
            .field("endpoint", &self.endpoint)
            .field("api_version", &self.api_version)
            .field("converge_timeout", &self.client.converge_timeout)
            .finish_non_exhaustive()
    }
}

impl SwarmProvider {
    /// How long a create or update waits for the service to converge before failing.
    pub fn with_converge_timeout(mut self, timeout: Duration) -> Self {
        self.client.converge_timeout = timeout;
        self
    }

    /// The Engine API version in use (negotiated).
    pub fn api_version(&self) -> &str {
        &self.api_version
    }

    /// The ID of the node the provider is connected to (`self` in [`crate::NodeLabels::node`]).
    pub fn node_id(&self) -> &str {
        &self.client.node_id
    }
}

#[async_trait]
impl Provider for SwarmProvider {
    fn name(&self) -> &str {
        crate::PROVIDER
    }

    /// `swarm <cluster id>`: the same swarm through any of its managers, and any endpoint
    /// (`DOCKER_HOST` differs between the machine that plans and the one that applies).
    async fn target(&self) -> Result<Option<String>, ProviderError> {
        Ok((!self.client.swarm_id.is_empty()).then(|| format!("swarm {}", self.client.swarm_id)))
    }

    async fn read(&self, stack: &str) -> Result<ReadResult, ProviderError> {
        let before = self.client.calls();
        let resources = read::read_stack(&self.client, &self.kinds, stack).await?;
        Ok(ReadResult {
            resources,
            api_calls: self.client.calls() - before,
        })
    }

    async fn create(&self, ctx: &OpContext, desired: &Resolved) -> Result<Observed, ProviderError> {
        self.kinds
            .get(desired.schema.kind)?
            .create(&self.client, ctx, desired)
            .await
    }

    async fn update(
        &self,
        ctx: &OpContext,
        current: &Observed,
        desired: &Resolved,
        changed: &[String],
    ) -> Result<Observed, ProviderError> {
        self.kinds
            .get(desired.schema.kind)?
            .update(&self.client, ctx, current, desired, changed)
            .await
    }

    async fn delete(&self, ctx: &OpContext, current: &Observed) -> Result<(), ProviderError> {
        self.kinds
            .get(current.address.kind())?
            .delete(&self.client, ctx, current)
            .await
    }

    /// The swarm-scoped networks, secrets, configs and services carrying no `infra.*` label,
    /// in that order; Docker's own networks are left out, node labels and what can't be
    /// declared are listed as inexpressible. A VPC filter is an error.
    async fn discover(
        &self,
        filter: &ImportFilter,
        sink: &mut (dyn FnMut(Found) + Send),
    ) -> Result<(), ProviderError> {
        import::discover(&self.client, filter, sink).await
    }

    async fn read_unowned(
        &self,
        kind: &'static KindSchema,
        id: &str,
        address: &Address,
    ) -> Result<Option<Observed>, ProviderError> {
        import::read_unowned(&self.client, kind, id, address).await
    }

    /// Writes the ownership labels and nothing else: a service is updated with its own spec
    /// and version (no task is replaced), a secret's or config's labels in place; a network,
    /// which Docker can't change, is owned through an adoption record (a Swarm config named
    /// `infra-adopted_<network id>`) that the owned read follows.
    async fn adopt(
        &self,
        ctx: &OpContext,
        current: &Observed,
        to: &Address,
    ) -> Result<Observed, ProviderError> {
        import::adopt(&self.client, ctx, current, to).await
    }

    /// The stack lock is a Swarm config: names are unique in the raft store.
    async fn lock_create(&self, stack: &str, info: &LockInfo) -> Result<Created, ProviderError> {
        lock::create(&self.client, stack, info).await
    }

    async fn lock_read(&self, stack: &str) -> Result<Option<LockInfo>, ProviderError> {
        lock::read(&self.client, stack).await
    }

    async fn lock_delete(&self, stack: &str) -> Result<(), ProviderError> {
        lock::delete(&self.client, stack).await
    }

    fn kinds(&self) -> Option<Vec<&'static KindSchema>> {
        Some(self.kinds.kinds())
    }

    fn api_calls(&self) -> Option<u64> {
        Some(self.client.calls())
    }
}
