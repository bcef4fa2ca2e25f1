//! `swarm_node_labels`: labels the stack sets on a node it doesn't own. Which keys the stack
//! manages (and what they were before) is kept in a marker label on the node, so a read finds
//! them with the node list and a delete gives back what was there.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use bollard::models::{Node, NodeSpec};
use bollard::query_parameters::{ListNodesOptions, UpdateNodeOptions};
use infra_core::dsl::{Address, KindSchema, Resource};
use infra_core::provider::{Observed, OpContext, ProviderError, Resolved};
use infra_core::registry::KindHandler;
use infra_core::Value;
use serde::{Deserialize, Serialize};

use super::{Found, SwarmKind};
use crate::kinds::{marker_key, MARKER_PREFIX};
use crate::provider::connect::Client;
use crate::provider::errors::api_error;
use crate::provider::wait::fresh_version;

/// The `swarm_node_labels` handler.
pub(crate) struct Labels;

impl KindHandler for Labels {
    fn schema(&self) -> &'static KindSchema {
        crate::NodeLabels::SCHEMA
    }
}

/// The marker a [`NodeLabels`](crate::NodeLabels) resource leaves on its node.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct NodeMarker {
    node: String,
    keys: Vec<String>,
    #[serde(default)]
    protect: bool,
    /// Values the managed keys had before the stack took them over, restored when the stack
    /// lets go of them (so `az=a` set by a provisioning script survives a destroy).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    previous: BTreeMap<String, String>,
}

/// The stack's node-labels resources on `node`, read from their markers.
fn observe_node(node: &Node, stack: &str) -> Vec<Observed> {
    let prefix = format!("{MARKER_PREFIX}{stack}.");
    let labels = node
        .spec
        .as_ref()
        .and_then(|s| s.labels.clone())
        .unwrap_or_default();
    let mut found = Vec::new();
    for (key, value) in &labels {
        let Some(name) = key.strip_prefix(&prefix).filter(|n| !n.contains('.')) else {
            continue;
        };
        let Ok(marker) = serde_json::from_str::<NodeMarker>(value) else {
            tracing::warn!(label = %key, "ignoring a malformed node-labels marker");
            continue;
        };
        let current: BTreeMap<String, Value> = marker
            .keys
            .iter()
            .filter_map(|k| labels.get(k).map(|v| (k.clone(), Value::from(v.as_str()))))
            .collect();
        let mut props = BTreeMap::new();
        props.insert("node".to_string(), Value::from(marker.node.as_str()));
        if !current.is_empty() {
            props.insert("labels".to_string(), Value::Map(current));
        }
        found.push(Observed {
            address: Address::new(crate::NodeLabels::SCHEMA.kind, name),
            id: node.id.clone().unwrap_or_default(),
            props: props.into(),
            protect: marker.protect,
            declared: None,
        });
    }
    found
}

impl Labels {
    /// The ID of the node `selector` names (`self`: the node the provider is connected to).
    async fn resolve_node(&self, client: &Client, selector: &str) -> Result<String, ProviderError> {
        if selector == "self" {
            return Ok(client.node_id.clone());
        }
        client.count();
        let node = client
            .docker
            .inspect_node(selector)
            .await
            .map_err(|e| api_error(&format!("finding node `{selector}`"), e))?;
        node.id
            .ok_or_else(|| ProviderError::fatal("NotFound", format!("node `{selector}` has no id")))
    }

    /// Sets a resource's labels on its node, removing the keys it managed before and no
    /// longer declares.
    async fn set(
        &self,
        client: &Client,
        ctx: &OpContext,
        desired: &Resolved,
        current: Option<&Observed>,
    ) -> Result<Observed, ProviderError> {
        let selector = desired.get_str("node").unwrap_or("self").to_string();
        let node_id = match current {
            Some(c) => c.id.clone(),
            None => self.resolve_node(client, &selector).await?,
        };
        let wanted: BTreeMap<String, String> = desired
            .get("labels")
            .and_then(Value::as_map)
            .into_iter()
            .flatten()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string()),
                )
            })
            .collect();
        let key = marker_key(&ctx.stack, desired.address.name());
        let selector_text = selector.clone();
        edit_node(client, &node_id, |labels| {
            let old = labels
                .get(&key)
                .and_then(|m| serde_json::from_str::<NodeMarker>(m).ok());
            let mut previous = old.as_ref().map(|o| o.previous.clone()).unwrap_or_default();
            let managed: Vec<String> = old.map(|o| o.keys).unwrap_or_default();
            // Let go of keys no longer declared: back to what they were before, or gone.
            for k in managed.iter().filter(|k| !wanted.contains_key(*k)) {
                match previous.remove(k) {
                    Some(v) => labels.insert(k.clone(), v),
                    None => labels.remove(k),
                };
            }
            for (k, v) in &wanted {
                if !managed.contains(k) {
                    if let Some(before) = labels.get(k) {
                        previous.insert(k.clone(), before.clone());
                    }
                }
                labels.insert(k.clone(), v.clone());
            }
            let marker = NodeMarker {
                node: selector_text.clone(),
                keys: wanted.keys().cloned().collect(),
                protect: desired.protect,
                previous,
            };
            labels.insert(
                key.clone(),
                serde_json::to_string(&marker).unwrap_or_default(),
            );
            true
        })
        .await?;
        let mut props = BTreeMap::new();
        props.insert("node".to_string(), Value::from(selector.as_str()));
        props.insert(
            "labels".to_string(),
            Value::Map(
                wanted
                    .into_iter()
                    .map(|(k, v)| (k, Value::from(v)))
                    .collect(),
            ),
        );
        Ok(Observed {
            address: desired.address.clone(),
            id: node_id,
            props: props.into(),
            protect: desired.protect,
            declared: None,
        })
    }
}

/// Read-modify-write of a node's labels with its current version, tried again when another
/// writer got in between. `edit` returns false to write nothing.
async fn edit_node(
    client: &Client,
    node_id: &str,
    edit: impl Fn(&mut HashMap<String, String>) -> bool + Sync,
) -> Result<bool, ProviderError> {
    let edit = &edit;
    fresh_version(&format!("node {node_id}"), || async move {
        client.count();
        let node = client
            .docker
            .inspect_node(node_id)
            .await
            .map_err(|e| api_error(&format!("inspecting node {node_id}"), e))?;
        let version = node.version.and_then(|v| v.index).unwrap_or(0);
        let spec = node.spec.unwrap_or_default();
        let mut labels = spec.labels.clone().unwrap_or_default();
        if !edit(&mut labels) {
            return Ok(false);
        }
        let spec = NodeSpec {
            labels: Some(labels),
            ..spec
        };
        client.count();
        client
            .docker
            .update_node(
                node_id,
                spec,
                UpdateNodeOptions {
                    version: version as i64,
                },
            )
            .await
            .map_err(|e| api_error(&format!("updating node {node_id}"), e))?;
        Ok(true)
    })
    .await
}

#[async_trait]
impl SwarmKind for Labels {
    fn noun(&self) -> &'static str {
        "node labels"
    }

    /// Nodes carry no stack label to filter on: the one node list is read for markers.
    async fn read(&self, client: &Client, stack: &str) -> Result<Vec<Found>, ProviderError> {
        client.count();
        let nodes = client
            .docker
            .list_nodes(None::<ListNodesOptions>)
            .await
            .map_err(|e| api_error("listing nodes", e))?;
        Ok(nodes
            .iter()
            .flat_map(|n| observe_node(n, stack))
            .map(|o| (o, String::new()))
            .collect())
    }

    async fn find(
        &self,
        client: &Client,
        stack: &str,
        desired: &Resolved,
    ) -> Result<Option<Observed>, ProviderError> {
        let selector = desired.get_str("node").unwrap_or("self");
        let node_id = self.resolve_node(client, selector).await?;
        client.count();
        let node = client
            .docker
            .inspect_node(&node_id)
            .await
            .map_err(|e| api_error(&format!("inspecting node {node_id}"), e))?;
        Ok(observe_node(&node, stack)
            .into_iter()
            .find(|o| o.address == desired.address))
    }

    /// Setting labels is idempotent: a create whose response was lost is simply done again.
    async fn create(
        &self,
        client: &Client,
        ctx: &OpContext,
        desired: &Resolved,
    ) -> Result<Observed, ProviderError> {
        self.set(client, ctx, desired, None).await
    }

    async fn update(
        &self,
        client: &Client,
        ctx: &OpContext,
        current: &Observed,
        desired: &Resolved,
        _changed: &[String],
    ) -> Result<Observed, ProviderError> {
        self.set(client, ctx, desired, Some(current)).await
    }

    async fn delete(
        &self,
        client: &Client,
        ctx: &OpContext,
        current: &Observed,
    ) -> Result<(), ProviderError> {
        let key = marker_key(&ctx.stack, current.address.name());
        let found = edit_node(client, &current.id, |labels| {
            let Some(marker) = labels
                .get(&key)
                .and_then(|m| serde_json::from_str::<NodeMarker>(m).ok())
            else {
                return false;
            };
            for k in &marker.keys {
                match marker.previous.get(k) {
                    Some(v) => labels.insert(k.clone(), v.clone()),
                    None => labels.remove(k),
                };
            }
            labels.remove(&key);
            true
        })
        .await?;
        if found {
            Ok(())
        } else {
            Err(ProviderError::not_found(
                "NotFound",
                format!("{}: no marker on node {}", current.address, current.id),
            ))
        }
    }
}
