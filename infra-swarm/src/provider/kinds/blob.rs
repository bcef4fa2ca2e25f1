//! What secrets and configs share: content stored under a name derived from it (so a change
//! of content is a new object, created before the old one is deleted), labels editable in
//! place, and a digest label standing for content Swarm never returns (a secret's).

use std::collections::HashMap;

use async_trait::async_trait;
use base64::Engine as _;
use bollard::errors::Error as DockerError;
use infra_core::dsl::KindSchema;
use infra_core::provider::{Observed, OpContext, ProviderError, Resolved};
use infra_core::registry::KindHandler;
use infra_core::value::digest_of;

use super::{Found, SwarmKind};
use crate::kinds::swarm_name;
use crate::provider::connect::Client;
use crate::provider::convert::{label_filter, label_map, owned_labels, with_record};
use crate::provider::errors::{api_error, in_use, is_404, is_409};
use crate::provider::wait::fresh_version;

/// Label on secrets and configs: the content digest (Swarm never returns secret data).
pub(crate) const LABEL_DIGEST: &str = "infra.digest";

/// A secret or config as inspected.
pub(crate) struct Inspected {
    /// `Version.Index`, for an update.
    pub(crate) version: u64,
    /// Its Swarm name.
    pub(crate) name: String,
    /// Its labels.
    pub(crate) labels: HashMap<String, String>,
    /// What it is as the stack's resource, if it carries the stack's labels.
    pub(crate) observed: Option<Observed>,
}

/// Where secrets and configs differ: the kind, where the content comes from, and the API
/// calls (bollard has a type per object). Calls are counted by the caller.
#[async_trait]
pub(crate) trait BlobApi: Send + Sync {
    /// The kind.
    fn schema(&self) -> &'static KindSchema;
    /// "secret" or "config".
    fn noun(&self) -> &'static str;
    /// The content a declaration stores.
    fn content(&self, desired: &Resolved) -> Result<Vec<u8>, ProviderError>;
    /// The objects matching `filters`, observed as `stack`'s, with their creation times.
    async fn list(
        &self,
        client: &Client,
        filters: HashMap<String, Vec<String>>,
        stack: &str,
    ) -> Result<Vec<Found>, DockerError>;
    /// Creates an object.
    async fn create(
        &self,
        client: &Client,
        name: String,
        labels: HashMap<String, String>,
        data: String,
    ) -> Result<(), DockerError>;
    /// The object with this id or name.
    async fn inspect(
        &self,
        client: &Client,
        id: &str,
        stack: &str,
    ) -> Result<Inspected, DockerError>;
    /// Replaces the object's labels (name unchanged).
    async fn set_labels(
        &self,
        client: &Client,
        id: &str,
        name: String,
        labels: HashMap<String, String>,
        version: u64,
    ) -> Result<(), DockerError>;
    /// Removes the object.
    async fn remove(&self, client: &Client, id: &str) -> Result<(), DockerError>;
}

/// The handler of a secret-like kind.
pub(crate) struct Blob<B>(pub(crate) B);

impl<B: BlobApi> KindHandler for Blob<B> {
    fn schema(&self) -> &'static KindSchema {
        self.0.schema()
    }
}

impl<B: BlobApi> Blob<B> {
    /// The object named `name`, if it is `stack`'s object for `desired`.
    async fn lookup(
        &self,
        client: &Client,
        stack: &str,
        name: &str,
        desired: &Resolved,
    ) -> Result<Option<Observed>, ProviderError> {
        client.count();
        match self.0.inspect(client, name, stack).await {
            Ok(i) => Ok(i.observed.filter(|o| o.address == desired.address)),
            Err(e) if is_404(&e) => Ok(None),
            Err(e) => Err(api_error(
                &format!("inspecting {} {name}", self.0.noun()),
                e,
            )),
        }
    }
}

#[async_trait]
impl<B: BlobApi> SwarmKind for Blob<B> {
    fn noun(&self) -> &'static str {
        self.0.noun()
    }

    async fn read(&self, client: &Client, stack: &str) -> Result<Vec<Found>, ProviderError> {
        client.count();
        self.0
            .list(client, label_filter(stack), stack)
            .await
            .map_err(|e| api_error(&format!("listing {}s", self.0.noun()), e))
    }

    async fn find(
        &self,
        client: &Client,
        stack: &str,
        desired: &Resolved,
    ) -> Result<Option<Observed>, ProviderError> {
        let digest = digest_of(&self.0.content(desired)?);
        let name = swarm_name(stack, desired.address.name(), &digest);
        self.lookup(client, stack, &name, desired).await
    }

    /// Creates the object under its content-derived name.
    async fn create(
        &self,
        client: &Client,
        ctx: &OpContext,
        desired: &Resolved,
    ) -> Result<Observed, ProviderError> {
        let bytes = self.0.content(desired)?;
        let digest = digest_of(&bytes);
        let name = swarm_name(&ctx.stack, desired.address.name(), &digest);
        let mut labels = owned_labels(
            &ctx.stack,
            &desired.address,
            desired.protect,
            desired.get("labels"),
        );
        with_record(&mut labels, desired.schema, &desired.props);
        labels.insert(LABEL_DIGEST.into(), digest.clone().into());
        let data = base64::engine::general_purpose::STANDARD.encode(&bytes);
        let what = self.0.noun();
        client.count();
        match self
            .0
            .create(client, name.clone(), label_map(labels), data)
            .await
        {
            Ok(()) => {}
            Err(e) if is_409(&e) => {}
            Err(e) => return Err(api_error(&format!("creating {what} {name}"), e)),
        }
        // Look it up by name: after a 409 this is the existing object, which we adopt only when
        // it is this stack's object for this address (same name = same content digest).
        match self.lookup(client, &ctx.stack, &name, desired).await? {
            Some(o) => Ok(o),
            None => Err(ProviderError::fatal(
                "NameConflict",
                format!(
                    "{}: a {what} named `{name}` exists and is not this stack's",
                    desired.address
                ),
            )),
        }
    }

    /// Secrets and configs can change their labels (and the protect flag) in place.
    async fn update(
        &self,
        client: &Client,
        ctx: &OpContext,
        current: &Observed,
        desired: &Resolved,
        _changed: &[String],
    ) -> Result<Observed, ProviderError> {
        let noun = self.0.noun();
        fresh_version(&current.address.to_string(), || async move {
            client.count();
            let i = self
                .0
                .inspect(client, &current.id, &ctx.stack)
                .await
                .map_err(|e| api_error(&format!("inspecting {noun} {}", current.id), e))?;
            let mut labels = owned_labels(
                &ctx.stack,
                &desired.address,
                desired.protect,
                desired.get("labels"),
            );
            with_record(&mut labels, desired.schema, &desired.props);
            if let Some(d) = i.labels.get(LABEL_DIGEST) {
                labels.insert(LABEL_DIGEST.into(), d.clone().into());
            }
            client.count();
            self.0
                .set_labels(client, &current.id, i.name, label_map(labels), i.version)
                .await
                .map_err(|e| api_error(&format!("updating {}", current.address), e))
        })
        .await?;
        client.count();
        let i = self
            .0
            .inspect(client, &current.id, &ctx.stack)
            .await
            .map_err(|e| api_error(&format!("inspecting {noun} {}", current.id), e))?;
        i.observed.ok_or_else(|| {
            ProviderError::fatal("NotOwned", format!("{} lost its labels", current.address))
        })
    }

    async fn delete(
        &self,
        client: &Client,
        _ctx: &OpContext,
        current: &Observed,
    ) -> Result<(), ProviderError> {
        client.count();
        self.0.remove(client, &current.id).await.map_err(|e| {
            in_use(
                &current.address,
                api_error(&format!("deleting {} {}", self.0.noun(), current.id), e),
            )
        })
    }
}
