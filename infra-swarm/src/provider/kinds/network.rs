//! `swarm_network`: overlay networks. Docker can't change a network in place (the planner
//! replaces it); a network still used by tasks that are stopping is removed once they are gone.

use std::collections::BTreeMap;

use async_trait::async_trait;
use bollard::models::{Network as DockerNetwork, NetworkCreateRequest, NetworkInspect};
use bollard::query_parameters::{ListNetworksOptions, ListServicesOptions};
use infra_core::dsl::{Address, KindSchema, Resource};
use infra_core::provider::{ErrorClass, Observed, OpContext, ProviderError, Resolved};
use infra_core::registry::KindHandler;
use infra_core::Value;
use serde_json::json;

use super::{Found, SwarmKind};
use crate::provider::connect::Client;
use crate::provider::convert::{
    bad, label_filter, owned_labels, owner, stack_name, text, user_labels, with_record,
};
use crate::provider::errors::{api_error, is_404};
use crate::provider::wait::{poll, Look};
use crate::SwarmNetwork;

/// The `swarm_network` handler.
pub(crate) struct Network;

impl KindHandler for Network {
    fn schema(&self) -> &'static KindSchema {
        SwarmNetwork::SCHEMA
    }
}

/// A network's creation request.
fn network_request(
    stack: &str,
    address: &Address,
    props: &BTreeMap<String, Value>,
    protect: bool,
) -> Result<NetworkCreateRequest, ProviderError> {
    let flag = |k: &str| props.get(k).and_then(Value::as_bool) == Some(true);
    let mut labels = owned_labels(stack, address, protect, props.get("labels"));
    with_record(&mut labels, &crate::kinds::NETWORK, props);
    let mut req = json!({
        "Name": stack_name(stack, address),
        "Driver": props.get("driver").map(text).unwrap_or_else(|| "overlay".into()),
        "Scope": "swarm",
        "Attachable": flag("attachable"),
        "Internal": flag("internal"),
        "Labels": labels,
    });
    if flag("encrypted") {
        req["Options"] = json!({ "encrypted": "" });
    }
    serde_json::from_value(req).map_err(|e| bad(address, e))
}

/// A network as the builder would declare it, if it carries the stack's labels.
fn observe_network(n: &DockerNetwork, stack: &str) -> Option<Observed> {
    let (address, protect, _) = owner(n.labels.as_ref(), stack)?;
    observe_network_as(n, address, protect)
}

/// A network as the builder would declare it at `address`, whoever owns it (the owned read's
/// conversion, shared with import and with the read of adopted networks).
pub(crate) fn observe_network_as(
    n: &DockerNetwork,
    address: Address,
    protect: bool,
) -> Option<Observed> {
    let mut p = BTreeMap::new();
    p.insert(
        "driver".to_string(),
        Value::from(n.driver.clone().unwrap_or_default()),
    );
    if n.attachable == Some(true) {
        p.insert("attachable".into(), Value::Bool(true));
    }
    if n.internal == Some(true) {
        p.insert("internal".into(), Value::Bool(true));
    }
    if n.options
        .as_ref()
        .is_some_and(|o| o.contains_key("encrypted"))
    {
        p.insert("encrypted".into(), Value::Bool(true));
    }
    if let Some(l) = user_labels(n.labels.as_ref()) {
        p.insert("labels".into(), l);
    }
    p.insert(
        "name".into(),
        Value::from(n.name.clone().unwrap_or_default()),
    );
    Some(Observed {
        address,
        id: n.id.clone()?,
        props: p.into(),
        protect,
        declared: crate::provider::convert::declared_label(n.labels.as_ref()),
    })
}

/// An inspected network in the list shape (the same fields, plus some we don't read).
pub(crate) fn as_network(n: &NetworkInspect) -> Option<DockerNetwork> {
    serde_json::from_value(serde_json::to_value(n).ok()?).ok()
}

impl Network {
    /// The stack's network named `name`, if there is one; a failed look is an error, not "no".
    async fn inspect(
        &self,
        client: &Client,
        name: &str,
        stack: &str,
    ) -> Result<Option<Observed>, ProviderError> {
        client.count();
        match client.docker.inspect_network(name, None).await {
            Ok(n) => Ok(as_network(&n).and_then(|n| observe_network(&n, stack))),
            Err(e) if is_404(&e) => Ok(None),
            Err(e) => Err(api_error(&format!("inspecting network {name}"), e)),
        }
    }

    /// The names of the services (of any stack) attached to network `network_id`.
    async fn services_using(
        &self,
        client: &Client,
        network_id: &str,
    ) -> Result<Vec<String>, ProviderError> {
        client.count();
        let services = client
            .docker
            .list_services(None::<ListServicesOptions>)
            .await
            .map_err(|e| api_error("listing services", e))?;
        Ok(services
            .into_iter()
            .filter(|s| {
                let spec = s.spec.as_ref();
                let nets = spec
                    .and_then(|s| s.task_template.as_ref())
                    .and_then(|t| t.networks.clone())
                    .into_iter()
                    .chain(spec.and_then(|s| s.networks.clone()))
                    .flatten();
                nets.into_iter()
                    .any(|n| n.target.as_deref() == Some(network_id))
            })
            .filter_map(|s| s.spec.and_then(|s| s.name))
            .collect())
    }

    /// One attempt at removing the network: done, or still used by tasks that are stopping.
    async fn try_remove(
        &self,
        client: &Client,
        current: &Observed,
    ) -> Result<Look<()>, ProviderError> {
        client.count();
        let err = match client.docker.remove_network(&current.id).await {
            Ok(()) => return Ok(Look::Done(())),
            Err(e) => api_error(&format!("deleting network {}", current.id), e),
        };
        // Gone (an earlier attempt's response was lost): the engine says so with a 404, or
        // with a 500 "network … not found" while a local copy of it lingers.
        if err.class == ErrorClass::NotFound || err.message.ends_with("not found") {
            return Ok(Look::Done(()));
        }
        if !(err.message.contains("in use") || err.message.contains("active endpoints")) {
            return Err(err);
        }
        // Used by a service: permanent until someone changes that service. Used only by
        // tasks that are still stopping: wait for them.
        let users = self.services_using(client, &current.id).await?;
        if !users.is_empty() {
            return Err(ProviderError::fatal(
                "InUse",
                format!(
                    "{} is used by service(s) {}; a network can't change in place and can't be deleted while in use: detach those services, or declare the new network under a new name so services move to it before the old one is deleted",
                    current.address,
                    users.join(", ")
                ),
            ));
        }
        Ok(Look::Waiting {
            timeout: ProviderError::fatal(
                "Timeout",
                format!("{}: {}", current.address, err.message),
            ),
            status: err.message,
        })
    }
}

#[async_trait]
impl SwarmKind for Network {
    fn noun(&self) -> &'static str {
        "network"
    }

    async fn read(&self, client: &Client, stack: &str) -> Result<Vec<Found>, ProviderError> {
        client.count();
        let networks = client
            .docker
            .list_networks(Some(ListNetworksOptions {
                filters: Some(label_filter(stack)),
            }))
            .await
            .map_err(|e| api_error("listing networks", e))?;
        let mut found: Vec<Found> = networks
            .iter()
            // A worker-local copy of a swarm network has no labels; only swarm-scoped ones count.
            .filter(|n| n.scope.as_deref() == Some("swarm"))
            .filter_map(|n| {
                observe_network(n, stack).map(|o| (o, n.created.clone().unwrap_or_default()))
            })
            .collect();
        // Networks made outside infra and adopted: owned through a record beside them.
        found.extend(super::adopted::read(client, stack).await?);
        Ok(found)
    }

    async fn find(
        &self,
        client: &Client,
        stack: &str,
        desired: &Resolved,
    ) -> Result<Option<Observed>, ProviderError> {
        let name = stack_name(stack, &desired.address);
        Ok(self
            .inspect(client, &name, stack)
            .await?
            .filter(|o| o.address == desired.address))
    }

    async fn create(
        &self,
        client: &Client,
        ctx: &OpContext,
        desired: &Resolved,
    ) -> Result<Observed, ProviderError> {
        let req = network_request(
            &ctx.stack,
            &desired.address,
            &desired.props,
            desired.protect,
        )?;
        let name = req.name.clone();
        client.count();
        let id = match client.docker.create_network(req).await {
            Ok(r) => r.id,
            Err(e) => {
                // A retried create whose response was lost: the network is there and ours.
                if let Some(o) = self.find(client, &ctx.stack, desired).await? {
                    return Ok(o);
                }
                return Err(api_error(&format!("creating network {name}"), e));
            }
        };
        client.count();
        let n = client
            .docker
            .inspect_network(&id, None)
            .await
            .map_err(|e| api_error(&format!("inspecting network {name}"), e))?;
        as_network(&n)
            .and_then(|n| observe_network(&n, &ctx.stack))
            .ok_or_else(|| {
                ProviderError::fatal(
                    "NotOwned",
                    format!("network {name} came back without its labels"),
                )
            })
    }

    async fn delete(
        &self,
        client: &Client,
        _ctx: &OpContext,
        current: &Observed,
    ) -> Result<(), ProviderError> {
        let what = format!("the last tasks on {} to stop", current.address);
        poll(&client.poll_policy(), &what, || {
            self.try_remove(client, current)
        })
        .await?;
        // An adopted network's ownership record goes with it.
        super::adopted::remove(client, &current.id).await
    }
}
