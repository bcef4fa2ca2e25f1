//! Import and adoption (issue 14): the Swarm objects of no stack, read back in the owned read's
//! own normalised form, and their adoption by a stack.
//!
//! * **Discovery** lists, in dependency order, the swarm-scoped networks, then the secrets, the
//!   configs and the services that carry no `infra.*` label at all (no stack's, and none of
//!   infra's own bookkeeping: the stack locks, the adopted networks' records), narrowed by name
//!   prefix and labels. Docker's own objects are left out: the `ingress` network, and every
//!   local-scoped network (`bridge`, `host`, `none`, `docker_gwbridge`, a node's own bridges),
//!   which are not Swarm objects. A user's swarm network with another driver than overlay, and
//!   a job-mode service, are listed as [`Found::Inexpressible`]. Node labels are listed per node
//!   as inexpressible too, with why: declaring them takes them over, there is nothing to adopt.
//! * **Adoption** writes `infra.stack`, `infra.id` and `infra.protect` and changes nothing
//!   else: a service is updated with its own current spec and version (labels only, the task
//!   template untouched, so no task is replaced), a secret's or config's labels through their
//!   update endpoint; a network, which Docker can't change, gets an adoption record beside it
//!   (see `kinds::adopted`).

use std::collections::HashMap;

use bollard::models::{Network as DockerNetwork, ServiceSpec};
use bollard::query_parameters::{
    ListConfigsOptions, ListNetworksOptions, ListNodesOptions, ListSecretsOptions,
    ListServicesOptions, UpdateServiceOptions,
};
use infra_core::dsl::{Address, KindSchema, Resource};
use infra_core::import::{Discovered, Found, ImportFilter};
use infra_core::provider::{Observed, OpContext, ProviderError};
use serde_json::Value as Json;

use super::connect::Client;
use super::convert::{LABEL_ID, LABEL_PROTECT, LABEL_STACK};
use super::errors::{api_error, is_404};
use super::kinds::blob::BlobApi;
use super::kinds::{adopted, config, network, secret, service};
use super::wait::fresh_version;
use crate::kinds::MARKER_PREFIX;
use crate::{NodeLabels, SwarmConfig, SwarmNetwork, SwarmSecret, SwarmService};

/// True when labels mark an object as infra's: a stack's, or infra's own bookkeeping.
fn is_infra(labels: Option<&HashMap<String, String>>) -> bool {
    labels.is_some_and(|l| l.keys().any(|k| k.starts_with("infra.")))
}

/// True when the object passes the filter's name prefix and labels.
fn wanted(filter: &ImportFilter, name: &str, labels: Option<&HashMap<String, String>>) -> bool {
    filter.name_matches(name)
        && filter.tags_match(
            labels
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        )
}

/// A discovered object's address (its name as given; the engine derives the declared one).
fn address_of(schema: &KindSchema, name: &str) -> Address {
    Address::new(schema.kind, name)
}

/// The discovered object for an observation.
fn discovered(schema: &'static KindSchema, name: &str, o: Observed, notes: Vec<String>) -> Found {
    let mut props = o.props;
    // Outputs a declaration doesn't write.
    props.remove("id");
    Found::Object(Discovered {
        schema,
        id: o.id,
        name: name.to_string(),
        aliases: vec![name.to_string()],
        props: props.into(),
        notes,
    })
}

/// Reads the objects of no stack; see the [module docs](self).
pub(crate) async fn discover(
    client: &Client,
    filter: &ImportFilter,
    sink: &mut (dyn FnMut(Found) + Send),
) -> Result<(), ProviderError> {
    if let Some(vpc) = &filter.vpc {
        return Err(ProviderError::fatal(
            "UnknownFilter",
            format!("swarm: the VPC filter (`{vpc}`) means nothing to Swarm objects; narrow them by name prefix or label"),
        ));
    }
    discover_networks(client, filter, sink).await?;
    discover_blobs(client, filter, sink).await?;
    discover_services(client, filter, sink).await?;
    discover_nodes(client, filter, sink).await
}

async fn discover_networks(
    client: &Client,
    filter: &ImportFilter,
    sink: &mut (dyn FnMut(Found) + Send),
) -> Result<(), ProviderError> {
    let adopted = adopted::adopted_by_any(client).await?;
    client.count();
    let mut networks = client
        .docker
        .list_networks(None::<ListNetworksOptions>)
        .await
        .map_err(|e| api_error("listing networks", e))?;
    networks.sort_by(|a, b| a.name.cmp(&b.name));
    for n in networks {
        let name = n.name.clone().unwrap_or_default();
        let id = n.id.clone().unwrap_or_default();
        // Docker's own (ingress) and anything not swarm-scoped is no Swarm object of a user.
        if n.scope.as_deref() != Some("swarm") || n.ingress == Some(true) {
            continue;
        }
        if is_infra(n.labels.as_ref())
            || adopted.contains(&id)
            || !wanted(filter, &name, n.labels.as_ref())
        {
            continue;
        }
        let driver = n.driver.clone().unwrap_or_default();
        if driver != "overlay" {
            sink(Found::Inexpressible {
                what: format!("Swarm network `{name}` (driver {driver})"),
                id,
                reason: "infra declares overlay networks only".into(),
            });
            continue;
        }
        let notes = network_notes(&n);
        if let Some(o) =
            network::observe_network_as(&n, address_of(SwarmNetwork::SCHEMA, &name), false)
        {
            sink(discovered(SwarmNetwork::SCHEMA, &name, o, notes));
        }
    }
    Ok(())
}

/// What a network has that a declaration can't say.
fn network_notes(n: &DockerNetwork) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(ipam) = n.ipam.as_ref().and_then(|i| i.config.as_ref()) {
        let subnets: Vec<String> = ipam.iter().filter_map(|c| c.subnet.clone()).collect();
        if !subnets.is_empty() {
            notes.push(format!(
                "its subnet ({}) can't be declared: a re-created network gets one from Swarm's pool",
                subnets.join(", ")
            ));
        }
    }
    for k in n.options.iter().flatten().map(|(k, _)| k) {
        if k != "encrypted" && !k.starts_with("com.docker.network.driver.overlay.vxlanid_list") {
            notes.push(format!("its driver option `{k}` can't be declared"));
        }
    }
    notes
}

async fn discover_blobs(
    client: &Client,
    filter: &ImportFilter,
    sink: &mut (dyn FnMut(Found) + Send),
) -> Result<(), ProviderError> {
    client.count();
    let mut secrets = client
        .docker
        .list_secrets(None::<ListSecretsOptions>)
        .await
        .map_err(|e| api_error("listing secrets", e))?;
    secrets.sort_by_key(|s| s.spec.as_ref().and_then(|s| s.name.clone()));
    for s in secrets {
        let spec = s.spec.clone().unwrap_or_default();
        let name = spec.name.clone().unwrap_or_default();
        if is_infra(spec.labels.as_ref()) || !wanted(filter, &name, spec.labels.as_ref()) {
            continue;
        }
        let mut notes = Vec::new();
        if spec.driver.is_some() {
            notes.push("its secret driver can't be declared".to_string());
        }
        if let Some(o) =
            secret::observe_secret_as(&s, address_of(SwarmSecret::SCHEMA, &name), false)
        {
            sink(discovered(SwarmSecret::SCHEMA, &name, o, notes));
        }
    }
    client.count();
    let mut configs = client
        .docker
        .list_configs(None::<ListConfigsOptions>)
        .await
        .map_err(|e| api_error("listing configs", e))?;
    configs.sort_by_key(|c| c.spec.as_ref().and_then(|s| s.name.clone()));
    for c in configs {
        let spec = c.spec.clone().unwrap_or_default();
        let name = spec.name.clone().unwrap_or_default();
        if is_infra(spec.labels.as_ref()) || !wanted(filter, &name, spec.labels.as_ref()) {
            continue;
        }
        let mut notes = Vec::new();
        if spec.templating.is_some() {
            notes.push("its templating driver can't be declared".to_string());
        }
        if let Some(o) =
            config::observe_config_as(&c, address_of(SwarmConfig::SCHEMA, &name), false)
        {
            sink(discovered(SwarmConfig::SCHEMA, &name, o, notes));
        }
    }
    Ok(())
}

async fn discover_services(
    client: &Client,
    filter: &ImportFilter,
    sink: &mut (dyn FnMut(Found) + Send),
) -> Result<(), ProviderError> {
    client.count();
    let mut services = client
        .docker
        .list_services(None::<ListServicesOptions>)
        .await
        .map_err(|e| api_error("listing services", e))?;
    services.sort_by_key(|s| s.spec.as_ref().and_then(|s| s.name.clone()));
    for svc in services {
        let Some(spec) = svc.spec.as_ref() else {
            continue;
        };
        let name = spec.name.clone().unwrap_or_default();
        let id = svc.id.clone().unwrap_or_default();
        if is_infra(spec.labels.as_ref()) || !wanted(filter, &name, spec.labels.as_ref()) {
            continue;
        }
        let json = serde_json::to_value(spec).unwrap_or(Json::Null);
        if let Some(mode) = json
            .get("Mode")
            .and_then(Json::as_object)
            .and_then(|m| m.keys().find(|k| k.ends_with("Job")))
        {
            sink(Found::Inexpressible {
                what: format!("Swarm service `{name}` ({mode} mode)"),
                id,
                reason: "infra declares replicated and global services, not jobs".into(),
            });
            continue;
        }
        let address = address_of(SwarmService::SCHEMA, &name);
        if let Some(o) = service::observe_service_as(&svc, address, false, None) {
            sink(discovered(
                SwarmService::SCHEMA,
                &name,
                o,
                service_notes(&json),
            ));
        }
    }
    Ok(())
}

/// Said of every imported service: its healthcheck can't be read back.
pub(crate) const HEALTHCHECK_NOTE: &str = "a healthcheck set by hand can't be read through the Engine API client (it reads `HealthCheck`, the engine writes `Healthcheck`): if `docker service inspect` shows one, declare it with `.healthcheck(..)`, or the first change infra makes to the task template removes it";

/// What a service's spec has that the builder can't declare (and an update by infra would
/// therefore drop), each with where it is.
pub(crate) fn service_notes(spec: &Json) -> Vec<String> {
    // bollard 0.21 reads a service's healthcheck as `HealthCheck`, the engine writes
    // `Healthcheck`: one set by hand can't be seen (the provider's own are kept in a label).
    let mut notes = vec![HEALTHCHECK_NOTE.to_string()];
    let at = |path: &[&str]| path.iter().try_fold(spec, |j, k| j.get(k));
    let present = |j: Option<&Json>| {
        j.is_some_and(|j| match j {
            Json::Null => false,
            Json::Bool(b) => *b,
            Json::Array(a) => !a.is_empty(),
            Json::Object(o) => !o.is_empty(),
            Json::String(s) => !s.is_empty(),
            Json::Number(n) => n.as_f64() != Some(0.0),
        })
    };
    let cs = ["TaskTemplate", "ContainerSpec"];
    for key in [
        "Hostname",
        "Hosts",
        "DNSConfig",
        "Dir",
        "Groups",
        "Privileges",
        "TTY",
        "OpenStdin",
        "ReadOnly",
        "StopSignal",
        "CapabilityAdd",
        "CapabilityDrop",
        "Sysctls",
        "Ulimits",
        "Labels",
    ] {
        let mut path = cs.to_vec();
        path.push(key);
        if present(at(&path)) {
            notes.push(format!("its container setting `{key}` can't be declared"));
        }
    }
    for key in ["LogDriver", "Platforms"] {
        if present(at(&["TaskTemplate", key])) || present(at(&["TaskTemplate", "Placement", key])) {
            notes.push(format!("its task setting `{key}` can't be declared"));
        }
    }
    if let Some(prefs) = at(&["TaskTemplate", "Placement", "Preferences"]).and_then(Json::as_array)
    {
        if prefs.iter().any(|p| p.get("Spread").is_none()) {
            notes.push("a placement preference other than spread can't be declared".into());
        }
    }
    if let Some(ports) = at(&["EndpointSpec", "Ports"]).and_then(Json::as_array) {
        for p in ports {
            let mode = p
                .get("PublishMode")
                .and_then(Json::as_str)
                .unwrap_or("ingress");
            let proto = p.get("Protocol").and_then(Json::as_str).unwrap_or("tcp");
            if !(proto == "tcp" || (proto == "udp" && mode == "host"))
                || p.get("PublishedPort").is_none()
            {
                notes.push(format!(
                    "the port {} ({proto}, {mode} mode) can't be declared as it is",
                    p.get("TargetPort").and_then(Json::as_i64).unwrap_or(0)
                ));
            }
        }
    }
    for (key, what) in [("Secrets", "secret"), ("Configs", "config")] {
        for r in at(&["TaskTemplate", "ContainerSpec", key])
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
        {
            let f = r.get("File").cloned().unwrap_or(Json::Null);
            let default = f.get("UID").and_then(Json::as_str) == Some("0")
                && f.get("GID").and_then(Json::as_str) == Some("0")
                && f.get("Mode").and_then(Json::as_i64) == Some(0o444);
            if !default {
                notes.push(format!(
                    "the {what} mounted at `{}` has an owner or mode other than root and 0444, which can't be declared",
                    f.get("Name").and_then(Json::as_str).unwrap_or_default()
                ));
            }
        }
    }
    for m in at(&["TaskTemplate", "ContainerSpec", "Mounts"])
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
    {
        if m.get("Type").and_then(Json::as_str) == Some("volume") {
            notes.push(format!(
                "the volume `{}`: infra names a declared volume `<stack>_<name>`, so the first task-template change after adoption would mount a new, empty volume `<stack>_{}`",
                m.get("Source").and_then(Json::as_str).unwrap_or_default(),
                m.get("Source").and_then(Json::as_str).unwrap_or_default()
            ));
        }
    }
    notes
}

async fn discover_nodes(
    client: &Client,
    filter: &ImportFilter,
    sink: &mut (dyn FnMut(Found) + Send),
) -> Result<(), ProviderError> {
    if filter.name_prefix.is_some() || !filter.tags.is_empty() {
        return Ok(());
    }
    client.count();
    let nodes = client
        .docker
        .list_nodes(None::<ListNodesOptions>)
        .await
        .map_err(|e| api_error("listing nodes", e))?;
    for node in nodes {
        let spec = node.spec.clone().unwrap_or_default();
        let labels = spec.labels.unwrap_or_default();
        // Keys some stack manages are listed in its marker labels.
        let managed: Vec<String> = labels
            .iter()
            .filter(|(k, _)| k.starts_with(MARKER_PREFIX))
            .filter_map(|(_, v)| serde_json::from_str::<Json>(v).ok())
            .flat_map(|m| {
                m.get("keys")
                    .and_then(Json::as_array)
                    .cloned()
                    .unwrap_or_default()
            })
            .filter_map(|k| k.as_str().map(str::to_string))
            .collect();
        let mut free: Vec<&String> = labels
            .keys()
            .filter(|k| !k.starts_with("infra.") && !managed.contains(k))
            .collect();
        if free.is_empty() {
            continue;
        }
        free.sort();
        let host = node
            .description
            .as_ref()
            .and_then(|d| d.hostname.clone())
            .unwrap_or_default();
        let keys: Vec<String> = free.iter().map(|k| format!("`{k}`")).collect();
        sink(Found::Inexpressible {
            what: format!("labels {} of Swarm node `{host}`", keys.join(", ")),
            id: node.id.clone().unwrap_or_default(),
            reason: format!(
                "a node is no object of a stack; to manage these labels declare `{}::new(..).node({:?}).label(..)`, which takes the keys over with their current values (nothing to adopt)",
                NodeLabels::SCHEMA.kind,
                host
            ),
        });
    }
    Ok(())
}

/// The object `id` of `kind` observed under `address`, whoever owns it.
pub(crate) async fn read_unowned(
    client: &Client,
    kind: &'static KindSchema,
    id: &str,
    address: &Address,
) -> Result<Option<Observed>, ProviderError> {
    client.count();
    let not_found = |e: bollard::errors::Error, what: &str| {
        if is_404(&e) {
            Ok(None)
        } else {
            Err(api_error(&format!("{address}: inspecting {what} {id}"), e))
        }
    };
    match kind.kind {
        k if k == SwarmService::SCHEMA.kind => {
            match client.docker.inspect_service(id, None).await {
                Ok(svc) => Ok(service::observe_service_as(
                    &svc,
                    address.clone(),
                    false,
                    None,
                )),
                Err(e) => not_found(e, "service"),
            }
        }
        k if k == SwarmNetwork::SCHEMA.kind => adopted::inspect_as(client, id, address).await,
        k if k == SwarmSecret::SCHEMA.kind => match client.docker.inspect_secret(id).await {
            Ok(s) => Ok(secret::observe_secret_as(&s, address.clone(), false)),
            Err(e) => not_found(e, "secret"),
        },
        k if k == SwarmConfig::SCHEMA.kind => match client.docker.inspect_config(id).await {
            Ok(c) => Ok(config::observe_config_as(&c, address.clone(), false)),
            Err(e) => not_found(e, "config"),
        },
        other => Err(cannot_adopt(other, address)),
    }
}

fn cannot_adopt(kind: &str, address: &Address) -> ProviderError {
    ProviderError::fatal(
        "Unsupported",
        format!("{address}: {kind} can't be adopted: declare it, and the apply takes the node's existing labels over"),
    )
}

/// The labels of an object with the stack's ownership added.
fn owning(
    labels: Option<HashMap<String, String>>,
    stack: &str,
    to: &Address,
) -> HashMap<String, String> {
    let mut labels = labels.unwrap_or_default();
    labels.insert(LABEL_STACK.into(), stack.into());
    labels.insert(LABEL_ID.into(), to.to_string());
    labels.insert(LABEL_PROTECT.into(), "false".into());
    labels
}

/// Adopts `current` as `to`; see the [module docs](self).
pub(crate) async fn adopt(
    client: &Client,
    ctx: &OpContext,
    current: &Observed,
    to: &Address,
) -> Result<Observed, ProviderError> {
    let stack = ctx.stack.as_str();
    let id = current.id.as_str();
    let kind = to.kind();
    if kind == SwarmService::SCHEMA.kind {
        adopt_service(client, stack, id, to).await?;
        client.count();
        let svc = client
            .docker
            .inspect_service(id, None)
            .await
            .map_err(|e| api_error(&format!("{to}: inspecting service {id}"), e))?;
        return service::observe_service(&svc, stack).ok_or_else(|| lost(to, id));
    }
    if kind == SwarmNetwork::SCHEMA.kind {
        adopted::create(client, stack, id, to).await?;
        return adopted::inspect_as(client, id, to)
            .await?
            .ok_or_else(|| lost(to, id));
    }
    if kind == SwarmSecret::SCHEMA.kind {
        return adopt_blob(client, &secret::Secret, stack, id, to).await;
    }
    if kind == SwarmConfig::SCHEMA.kind {
        return adopt_blob(client, &config::Config, stack, id, to).await;
    }
    Err(cannot_adopt(kind, to))
}

fn lost(to: &Address, id: &str) -> ProviderError {
    ProviderError::fatal(
        "NotOwned",
        format!("{to}: {id} does not read back as the stack's after its adoption"),
    )
}

/// Writes the ownership labels on a service with its own current spec and version: nothing in
/// its task template changes, so Swarm replaces no task.
async fn adopt_service(
    client: &Client,
    stack: &str,
    id: &str,
    to: &Address,
) -> Result<(), ProviderError> {
    fresh_version(&to.to_string(), || async move {
        client.count();
        let svc = client
            .docker
            .inspect_service(id, None)
            .await
            .map_err(|e| api_error(&format!("{to}: inspecting service {id}"), e))?;
        let labels = svc.spec.as_ref().and_then(|s| s.labels.clone());
        if let Some(owner) = labels.as_ref().and_then(|l| l.get(LABEL_STACK)) {
            if owner != stack
                || labels.as_ref().and_then(|l| l.get(LABEL_ID)) != Some(&to.to_string())
            {
                return Err(ProviderError::fatal(
                    "AlreadyOwned",
                    format!("{to}: service {id} belongs to stack `{owner}`"),
                ));
            }
            return Ok(());
        }
        let spec = ServiceSpec {
            labels: Some(owning(labels, stack, to)),
            ..svc.spec.clone().unwrap_or_default()
        };
        let version = svc.version.as_ref().and_then(|v| v.index).unwrap_or(0);
        client.count();
        client
            .docker
            .update_service(
                id,
                spec,
                UpdateServiceOptions {
                    version: i32::try_from(version).unwrap_or(i32::MAX),
                    ..Default::default()
                },
                None,
            )
            .await
            .map(drop)
            .map_err(|e| api_error(&format!("{to}: adopting service {id}"), e))
    })
    .await
}

/// Writes the ownership labels on a secret or a config (their labels may change in place).
async fn adopt_blob<B: BlobApi>(
    client: &Client,
    api: &B,
    stack: &str,
    id: &str,
    to: &Address,
) -> Result<Observed, ProviderError> {
    let noun = api.noun();
    fresh_version(&to.to_string(), || async move {
        client.count();
        let i = api
            .inspect(client, id, stack)
            .await
            .map_err(|e| api_error(&format!("{to}: inspecting {noun} {id}"), e))?;
        if let Some(owner) = i.labels.get(LABEL_STACK) {
            if owner != stack || i.labels.get(LABEL_ID) != Some(&to.to_string()) {
                return Err(ProviderError::fatal(
                    "AlreadyOwned",
                    format!("{to}: {noun} {id} belongs to stack `{owner}`"),
                ));
            }
            return Ok(());
        }
        client.count();
        api.set_labels(
            client,
            id,
            i.name,
            owning(Some(i.labels), stack, to),
            i.version,
        )
        .await
        .map_err(|e| api_error(&format!("{to}: adopting {noun} {id}"), e))
    })
    .await?;
    client.count();
    api.inspect(client, id, stack)
        .await
        .map_err(|e| api_error(&format!("{to}: inspecting {noun} {id}"), e))?
        .observed
        .ok_or_else(|| lost(to, id))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use serde_json::json;

    #[test]
    fn infra_labels_mark_objects_import_leaves_alone() {
        let l = |k: &str| Some(HashMap::from([(k.to_string(), "x".to_string())]));
        assert!(is_infra(l("infra.stack").as_ref()));
        assert!(is_infra(l("infra.lock").as_ref()));
        assert!(is_infra(l("infra.adopted").as_ref()));
        assert!(!is_infra(l("team").as_ref()));
        assert!(!is_infra(None));
    }

    #[test]
    fn the_filter_narrows_by_name_prefix_and_labels() {
        let mut f = ImportFilter::all();
        f.name_prefix = Some("web".into());
        f.tags = BTreeMap::from([("team".to_string(), "core".to_string())]);
        let core = HashMap::from([("team".to_string(), "core".to_string())]);
        let other = HashMap::from([("team".to_string(), "ops".to_string())]);
        assert!(wanted(&f, "web-1", Some(&core)));
        assert!(!wanted(&f, "api", Some(&core)));
        assert!(!wanted(&f, "web-1", Some(&other)));
        assert!(!wanted(&f, "web-1", None));
    }

    #[test]
    fn what_a_service_spec_has_beyond_the_builder_is_noted() {
        let spec = json!({
            "TaskTemplate": {
                "ContainerSpec": {
                    "Image": "x",
                    "Hostname": "h",
                    "Secrets": [{ "File": { "Name": "t", "UID": "1000", "GID": "0", "Mode": 292 } }],
                    "Configs": [{ "File": { "Name": "c", "UID": "0", "GID": "0", "Mode": 292 } }],
                },
                "LogDriver": { "Name": "json-file" },
            },
            "EndpointSpec": { "Ports": [{ "Protocol": "sctp", "TargetPort": 9, "PublishedPort": 9 }] },
        });
        let notes = service_notes(&spec);
        assert_eq!(notes.len(), 5, "{notes:#?}");
        assert_eq!(notes[0], HEALTHCHECK_NOTE);
        assert!(notes[1].contains("`Hostname`"), "{notes:#?}");
        assert!(notes.iter().any(|n| n.contains("`LogDriver`")));
        assert!(notes.iter().any(|n| n.contains("port 9 (sctp")));
        assert!(notes.iter().any(|n| n.contains("secret mounted at `t`")));
        assert_eq!(
            service_notes(&json!({ "TaskTemplate": { "ContainerSpec": { "Image": "x" } } })),
            vec![HEALTHCHECK_NOTE.to_string()]
        );
    }
}
