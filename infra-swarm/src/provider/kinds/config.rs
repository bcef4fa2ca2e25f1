//! `swarm_config`: see [`super::blob`] for what configs share with secrets.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use base64::Engine as _;
use bollard::errors::Error as DockerError;
use bollard::models::{Config as DockerConfig, ConfigSpec};
use bollard::query_parameters::{ListConfigsOptions, UpdateConfigOptions};
use infra_core::dsl::{Address, KindSchema, Resource};
use infra_core::provider::{Observed, ProviderError, Resolved};
use infra_core::Value;

use super::blob::{BlobApi, Inspected};
use super::Found;
use crate::provider::connect::Client;
use crate::provider::convert::{owner, user_labels};
use crate::SwarmConfig;

/// The `swarm_config` API.
pub(crate) struct Config;

/// A config as the builder would declare it: its data as text.
fn observe_config(c: &DockerConfig, stack: &str) -> Option<Observed> {
    let spec = c.spec.as_ref()?;
    let (address, protect, _) = owner(spec.labels.as_ref(), stack)?;
    observe_config_as(c, address, protect)
}

/// The same at `address`, whoever owns it (shared with import).
pub(crate) fn observe_config_as(
    c: &DockerConfig,
    address: Address,
    protect: bool,
) -> Option<Observed> {
    let spec = c.spec.as_ref()?;
    let mut p = BTreeMap::new();
    if let Some(data) = spec.data.as_deref() {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap_or_default();
        p.insert(
            "data".to_string(),
            Value::from(String::from_utf8_lossy(&bytes).into_owned()),
        );
    }
    if let Some(l) = user_labels(spec.labels.as_ref()) {
        p.insert("labels".into(), l);
    }
    p.insert(
        "name".into(),
        Value::from(spec.name.clone().unwrap_or_default()),
    );
    Some(Observed {
        address,
        id: c.id.clone()?,
        props: p.into(),
        protect,
        declared: crate::provider::convert::declared_label(spec.labels.as_ref()),
    })
}

#[async_trait]
impl BlobApi for Config {
    fn schema(&self) -> &'static KindSchema {
        SwarmConfig::SCHEMA
    }

    fn noun(&self) -> &'static str {
        "config"
    }

    fn content(&self, desired: &Resolved) -> Result<Vec<u8>, ProviderError> {
        Ok(desired
            .get_str("data")
            .map(|s| s.as_bytes().to_vec())
            .unwrap_or_default())
    }

    async fn list(
        &self,
        client: &Client,
        filters: HashMap<String, Vec<String>>,
        stack: &str,
    ) -> Result<Vec<Found>, DockerError> {
        let configs = client
            .docker
            .list_configs(Some(ListConfigsOptions {
                filters: Some(filters),
            }))
            .await?;
        Ok(configs
            .iter()
            .filter_map(|s| {
                observe_config(s, stack).map(|o| (o, s.created_at.clone().unwrap_or_default()))
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
            .create_config(ConfigSpec {
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
        let s = client.docker.inspect_config(id).await?;
        let observed = observe_config(&s, stack);
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
            .update_config(
                id,
                ConfigSpec {
                    name: Some(name),
                    labels: Some(labels),
                    ..Default::default()
                },
                UpdateConfigOptions {
                    version: version as i64,
                },
            )
            .await
    }

    async fn remove(&self, client: &Client, id: &str) -> Result<(), DockerError> {
        client.docker.delete_config(id).await
    }
}
