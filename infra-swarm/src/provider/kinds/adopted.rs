//! Adopted networks: Docker can't change a network after it is created, labels included, so an
//! existing network can't be given the stack's `infra.stack` / `infra.id` labels. Its adoption
//! is recorded beside it instead, in a Swarm config named `infra-adopted_<network id>` with the
//! labels `infra.adopted` = the stack, `infra.id` = the address, `infra.protect` and
//! `infra.network` = the network's id. The config's name makes the adoption atomic and
//! exclusive: Swarm names are unique in the raft store, so two stacks can't adopt one network.
//!
//! The owned read of networks reads these records too (one label-filtered config list, and one
//! network list by id when there are any) and reports each adopted network at its address. A
//! delete of the network removes its record after it. The record carries no `infra.stack`
//! label, so no read ever reports it as a `swarm_config`, and it is not an object import finds.

use std::collections::HashMap;

use base64::Engine as _;
use bollard::models::ConfigSpec;
use bollard::query_parameters::{ListConfigsOptions, ListNetworksOptions};
use infra_core::dsl::Address;
use infra_core::provider::{Observed, ProviderError};

use super::network::observe_network_as;
use super::Found;
use crate::provider::connect::Client;
use crate::provider::convert::{LABEL_ID, LABEL_PROTECT};
use crate::provider::errors::{api_error, is_404, is_409};

/// Label on an adoption record: the adopting stack.
pub(crate) const LABEL_ADOPTED: &str = "infra.adopted";
/// Label on an adoption record: the adopted network's id.
pub(crate) const LABEL_NETWORK: &str = "infra.network";

/// The name of the adoption record of the network `id`.
pub(crate) fn record_name(network_id: &str) -> String {
    format!("infra-adopted_{network_id}")
}

/// One adoption record: (network id, address, protect, stack).
struct Record {
    network: String,
    address: Address,
    protect: bool,
}

fn record_of(labels: &HashMap<String, String>) -> Option<Record> {
    Some(Record {
        network: labels.get(LABEL_NETWORK)?.clone(),
        address: labels.get(LABEL_ID)?.parse().ok()?,
        protect: labels.get(LABEL_PROTECT).map(String::as_str) == Some("true"),
    })
}

/// The adoption records matching `label` (`infra.adopted=<stack>`, or `infra.adopted` for
/// every stack's).
async fn records(client: &Client, label: String) -> Result<Vec<Record>, ProviderError> {
    client.count();
    let configs = client
        .docker
        .list_configs(Some(ListConfigsOptions {
            filters: Some(HashMap::from([("label".to_string(), vec![label])])),
        }))
        .await
        .map_err(|e| api_error("listing the adopted networks' records", e))?;
    Ok(configs
        .iter()
        .filter_map(|c| c.spec.as_ref()?.labels.as_ref())
        .filter_map(record_of)
        .collect())
}

/// The ids of every network some stack adopted (import leaves them out).
pub(crate) async fn adopted_by_any(client: &Client) -> Result<Vec<String>, ProviderError> {
    Ok(records(client, LABEL_ADOPTED.to_string())
        .await?
        .into_iter()
        .map(|r| r.network)
        .collect())
}

/// The networks `stack` adopted, observed at their addresses. A record whose network is gone
/// (removed by hand) reports nothing: the plan creates the network anew.
pub(crate) async fn read(client: &Client, stack: &str) -> Result<Vec<Found>, ProviderError> {
    let records = records(client, format!("{LABEL_ADOPTED}={stack}")).await?;
    if records.is_empty() {
        return Ok(Vec::new());
    }
    client.count();
    let ids: Vec<String> = records.iter().map(|r| r.network.clone()).collect();
    let networks = client
        .docker
        .list_networks(Some(ListNetworksOptions {
            filters: Some(HashMap::from([("id".to_string(), ids)])),
        }))
        .await
        .map_err(|e| api_error("listing the adopted networks", e))?;
    Ok(records
        .into_iter()
        .filter_map(|r| {
            let n = networks
                .iter()
                .find(|n| n.id.as_deref() == Some(r.network.as_str()))?;
            let o = observe_network_as(n, r.address, r.protect)?;
            Some((o, n.created.clone().unwrap_or_default()))
        })
        .collect())
}

/// Records that `stack` adopted the network `network_id` as `address`. Adopting it again as
/// the same address is a no-op (a retried adoption); a network another stack (or another
/// address) adopted is refused, naming it.
pub(crate) async fn create(
    client: &Client,
    stack: &str,
    network_id: &str,
    address: &Address,
) -> Result<(), ProviderError> {
    let name = record_name(network_id);
    let labels = HashMap::from([
        (LABEL_ADOPTED.to_string(), stack.to_string()),
        (LABEL_ID.to_string(), address.to_string()),
        (LABEL_PROTECT.to_string(), "false".to_string()),
        (LABEL_NETWORK.to_string(), network_id.to_string()),
    ]);
    let spec = ConfigSpec {
        name: Some(name.clone()),
        labels: Some(labels),
        data: Some(base64::engine::general_purpose::STANDARD.encode(network_id)),
        ..Default::default()
    };
    client.count();
    match client.docker.create_config(spec).await {
        Ok(_) => Ok(()),
        Err(e) if is_409(&e) => {
            client.count();
            let existing = client
                .docker
                .inspect_config(&name)
                .await
                .map_err(|e| api_error(&format!("inspecting config {name}"), e))?;
            let labels = existing.spec.and_then(|s| s.labels).unwrap_or_default();
            let owner = labels.get(LABEL_ADOPTED).cloned().unwrap_or_default();
            let at = labels.get(LABEL_ID).cloned().unwrap_or_default();
            if owner == stack && at == address.to_string() {
                Ok(())
            } else {
                Err(ProviderError::fatal(
                    "AlreadyAdopted",
                    format!(
                        "{address}: network {network_id} is already adopted by stack `{owner}` as {at} (config {name})"
                    ),
                ))
            }
        }
        Err(e) => Err(api_error(
            &format!("{address}: recording the adoption of network {network_id}"),
            e,
        )),
    }
}

/// Removes the adoption record of the network `network_id`, if there is one.
pub(crate) async fn remove(client: &Client, network_id: &str) -> Result<(), ProviderError> {
    let name = record_name(network_id);
    client.count();
    match client.docker.delete_config(&name).await {
        Ok(()) => Ok(()),
        Err(e) if is_404(&e) => Ok(()),
        Err(e) => Err(api_error(&format!("deleting config {name}"), e)),
    }
}

/// The network `id` as observed under `address` (import's read of one object).
pub(crate) async fn inspect_as(
    client: &Client,
    id: &str,
    address: &Address,
) -> Result<Option<Observed>, ProviderError> {
    client.count();
    match client.docker.inspect_network(id, None).await {
        Ok(n) => Ok(super::network::as_network(&n)
            .and_then(|n| observe_network_as(&n, address.clone(), false))),
        Err(e) if is_404(&e) => Ok(None),
        Err(e) => Err(api_error(&format!("inspecting network {id}"), e)),
    }
}
