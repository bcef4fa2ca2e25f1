//! `swarm_secret`: see [`super::blob`] for what secrets share with configs.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use bollard::errors::Error as DockerError;
use bollard::models::{Secret as DockerSecret, SecretSpec};
use bollard::query_parameters::{ListSecretsOptions, UpdateSecretOptions};
use infra_core::dsl::{Address, KindSchema, Resource};
use infra_core::provider::{Observed, ProviderError, Resolved};
use infra_core::value::Sensitive;
use infra_core::Value;

use super::blob::{BlobApi, Inspected, LABEL_DIGEST};
use super::Found;
use crate::provider::connect::Client;
use crate::provider::convert::{owner, user_labels};
use crate::SwarmSecret;

/// The `swarm_secret` API.
pub(crate) struct Secret;

/// A secret as the builder would declare it: the value by its digest.
fn observe_secret(s: &DockerSecret, stack: &str) -> Option<Observed> {
    let spec = s.spec.as_ref()?;
    let (address, protect, _) = owner(spec.labels.as_ref(), stack)?;
    observe_secret_as(s, address, protect)
}

/// The same at `address`, whoever owns it (shared with import).
pub(crate) fn observe_secret_as(
    s: &DockerSecret,
    address: Address,
    protect: bool,
) -> Option<Observed> {
    let spec = s.spec.as_ref()?;
    let labels = spec.labels.clone().unwrap_or_default();
    let labels = &labels;
    let mut p = BTreeMap::new();
    if let Some(d) = labels.get(LABEL_DIGEST) {
        p.insert(
            "value".to_string(),
            Value::Sensitive(Sensitive::from_digest(d.clone())),
        );
    }
    if let Some(l) = user_labels(Some(labels)) {
        p.insert("labels".into(), l);
    }
    p.insert(
        "name".into(),
        Value::from(spec.name.clone().unwrap_or_default()),
    );
    Some(Observed {
        address,
        id: s.id.clone()?,
        props: p.into(),
        protect,
        declared: crate::provider::convert::declared_label(spec.labels.as_ref()),
    })
}

#[async_trait]
impl BlobApi for Secret {
    fn schema(&self) -> &'static KindSchema {
        SwarmSecret::SCHEMA
    }

    fn noun(&self) -> &'static str {
        "secret"
    }

    fn content(&self, desired: &Resolved) -> Result<Vec<u8>, ProviderError> {
        match desired.get("value") {
            Some(Value::Sensitive(s)) => s.expose().map(<[u8]>::to_vec).ok_or_else(|| {
                ProviderError::fatal(
                    "SecretUnknown",
                    format!("{}: only the digest of the value is known to this process; declare the value (bytes, file or variable)", desired.address),
                )
            }),
            Some(Value::String(s)) => Ok(s.clone().into_bytes()),
            _ => Err(ProviderError::fatal(
                "NoValue",
                format!("{}: no value", desired.address),
            )),
        }
    }

    async fn list(
        &self,
        client: &Client,
        filters: HashMap<String, Vec<String>>,
        stack: &str,
    ) -> Result<Vec<Found>, DockerError> {
        let secrets = client
            .docker
            .list_secrets(Some(ListSecretsOptions {
                filters: Some(filters),
            }))
            .await?;
        Ok(secrets
            .iter()
            .filter_map(|s| {
                observe_secret(s, stack).map(|o| (o, s.created_at.clone().unwrap_or_default()))
            })
            .collect())
    }

    async fn create(
        &self,
        client: &Client,
        name: String,
        labels: HashMap<String, String>,
        data: String,
    ) -> Result<(), DockerError> {
        client
            .docker
            .create_secret(SecretSpec {
                name: Some(name),
                labels: Some(labels),
                data: Some(data),
                ..Default::default()
            })
            .await
            .map(drop)
    }

    async fn inspect(
        &self,
        client: &Client,
        id: &str,
        stack: &str,
    ) -> Result<Inspected, DockerError> {
        let s = client.docker.inspect_secret(id).await?;
        let observed = observe_secret(&s, stack);
        let spec = s.spec.unwrap_or_default();
        Ok(Inspected {
            version: s.version.and_then(|v| v.index).unwrap_or(0),
            name: spec.name.unwrap_or_default(),
            labels: spec.labels.unwrap_or_default(),
            observed,
        })
    }

    async fn set_labels(
        &self,
        client: &Client,
        id: &str,
        name: String,
        labels: HashMap<String, String>,
        version: u64,
    ) -> Result<(), DockerError> {
        client
            .docker
            .update_secret(
                id,
                SecretSpec {
                    name: Some(name),
                    labels: Some(labels),
                    ..Default::default()
                },
                UpdateSecretOptions {
                    version: version as i64,
                },
            )
            .await
    }

    async fn remove(&self, client: &Client, id: &str) -> Result<(), DockerError> {
        client.docker.delete_secret(id).await
    }
}
