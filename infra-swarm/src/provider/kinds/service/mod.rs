//! `swarm_service`: create, update with the current `Version.Index`, delete, and wait for the
//! change to take effect ([`converge`]).

mod converge;
mod observe;
mod spec;

use std::collections::BTreeMap;

use async_trait::async_trait;
use bollard::models::ServiceSpec;
use bollard::query_parameters::{ListServicesOptions, UpdateServiceOptions};
use infra_core::dsl::{KindSchema, Resource, ResourceSpec};
use infra_core::plan::changed_fields;
use infra_core::provider::{Observed, OpContext, ProviderError, Resolved};
use infra_core::registry::KindHandler;
use infra_core::Value;

use super::{Found, SwarmKind};
use crate::provider::connect::Client;
use crate::provider::convert::label_filter;
use crate::provider::errors::{api_error, is_404, is_409};
use crate::provider::wait::fresh_version;
use crate::SwarmService;

pub(crate) use observe::{observe_service, observe_service_as, task_template};
pub(crate) use spec::{service_name, service_spec};

/// The `swarm_service` handler.
pub(crate) struct Service;

impl KindHandler for Service {
    fn schema(&self) -> &'static KindSchema {
        SwarmService::SCHEMA
    }
}

/// Which of `changed` still differ between `desired` and a fresh observation.
fn still_changed(desired: &Resolved, observed: &Observed, changed: &[String]) -> Vec<String> {
    let spec = ResourceSpec::new(desired.schema, desired.address.name());
    let now = changed_fields(&spec, &desired.props, observed);
    changed
        .iter()
        .filter(|f| now.contains(f))
        .cloned()
        .collect()
}

/// The observed properties with the changed fields taken from the declaration: what an update
/// sends. Fields outside `changed` (such as those under `ignore_changes`) keep their live value.
fn merged(observed: &Observed, desired: &Resolved, changed: &[String]) -> BTreeMap<String, Value> {
    let mut props = observed.props.clone();
    for f in changed {
        match desired.get(f) {
            Some(v) => props.insert(f.clone(), v.clone()),
            None => props.remove(f),
        };
    }
    props.into()
}

impl Service {
    /// The stack's service for `desired.address` (by its Swarm name) with its current version,
    /// if there is one.
    async fn find_versioned(
        &self,
        client: &Client,
        stack: &str,
        desired: &Resolved,
    ) -> Result<Option<(u64, Observed)>, ProviderError> {
        let name = service_name(stack, &desired.address, &desired.props);
        client.count();
        let svc = match client.docker.inspect_service(&name, None).await {
            Ok(svc) => svc,
            Err(e) if is_404(&e) => return Ok(None),
            Err(e) => return Err(api_error(&format!("inspecting service {name}"), e)),
        };
        let version = svc.version.as_ref().and_then(|v| v.index).unwrap_or(0);
        Ok(observe_service(&svc, stack)
            .filter(|o| o.address == desired.address)
            .map(|o| (version, o)))
    }

    /// The service `id` as observed now; it must still be the stack's.
    async fn inspect_observed(
        &self,
        client: &Client,
        id: &str,
        stack: &str,
    ) -> Result<Observed, ProviderError> {
        client.count();
        let svc = client
            .docker
            .inspect_service(id, None)
            .await
            .map_err(|e| api_error(&format!("inspecting service {id}"), e))?;
        observe_service(&svc, stack).ok_or_else(|| {
            ProviderError::fatal(
                "NotOwned",
                format!("service {id} no longer carries the stack's labels"),
            )
        })
    }

    async fn send_update(
        &self,
        client: &Client,
        id: &str,
        spec: ServiceSpec,
        version: u64,
    ) -> Result<(), bollard::errors::Error> {
        client.count();
        let options = UpdateServiceOptions {
            version: i32::try_from(version).unwrap_or(i32::MAX),
            ..Default::default()
        };
        let r = client
            .docker
            .update_service(id, spec, options, None)
            .await?;
        for w in r.warnings.unwrap_or_default() {
            tracing::warn!(service = %id, warning = %w, "docker warned on service update");
        }
        Ok(())
    }
}

#[async_trait]
impl SwarmKind for Service {
    fn noun(&self) -> &'static str {
        "service"
    }

    async fn read(&self, client: &Client, stack: &str) -> Result<Vec<Found>, ProviderError> {
        client.count();
        let services = client
            .docker
            .list_services(Some(ListServicesOptions {
                filters: Some(label_filter(stack)),
                ..Default::default()
            }))
            .await
            .map_err(|e| api_error("listing services", e))?;
        Ok(services
            .iter()
            .filter_map(|s| {
                observe_service(s, stack).map(|o| (o, s.created_at.clone().unwrap_or_default()))
            })
            .collect())
    }

    async fn find(
        &self,
        client: &Client,
        stack: &str,
        desired: &Resolved,
    ) -> Result<Option<Observed>, ProviderError> {
        Ok(self
            .find_versioned(client, stack, desired)
            .await?
            .map(|(_, o)| o))
    }

    async fn create(
        &self,
        client: &Client,
        ctx: &OpContext,
        desired: &Resolved,
    ) -> Result<Observed, ProviderError> {
        let name = service_name(&ctx.stack, &desired.address, &desired.props);
        let (spec, _template) = service_spec(
            &ctx.stack,
            &desired.address,
            &desired.props,
            desired.protect,
        )?;
        client.count();
        let id = match client.docker.create_service(spec.clone(), None).await {
            Ok(r) => r.id.unwrap_or_default(),
            Err(e) if is_409(&e) => {
                // Ours already (a retried create whose response was lost)? Then converge it;
                // anything else by that name is not ours to touch. A failed look is not a
                // conflict: it is reported as what it is (often retryable).
                match self.find_versioned(client, &ctx.stack, desired).await? {
                    Some((version, o)) => {
                        self.send_update(client, &o.id, spec, version)
                            .await
                            .map_err(|e| api_error(&format!("updating service {name}"), e))?;
                        o.id
                    }
                    None => {
                        let message = match e {
                            bollard::errors::Error::DockerResponseServerError {
                                message, ..
                            } => message,
                            e => e.to_string(),
                        };
                        return Err(ProviderError::fatal(
                            "NameConflict",
                            format!("{}: a service named `{name}` exists and is not this stack's ({message}); remove or rename it, or rename the declaration", desired.address),
                        ));
                    }
                }
            }
            Err(e) => return Err(api_error(&format!("creating service {name}"), e)),
        };
        converge::wait_converged(client, &id, &name).await?;
        self.inspect_observed(client, &id, &ctx.stack).await
    }

    async fn update(
        &self,
        client: &Client,
        ctx: &OpContext,
        current: &Observed,
        desired: &Resolved,
        changed: &[String],
    ) -> Result<Observed, ProviderError> {
        let name = &service_name(&ctx.stack, &desired.address, &desired.props);
        let what = format!("service {name}");
        fresh_version(&what, || async move {
            client.count();
            let svc = client
                .docker
                .inspect_service(&current.id, None)
                .await
                .map_err(|e| api_error(&format!("inspecting service {name}"), e))?;
            let version = svc.version.as_ref().and_then(|v| v.index).unwrap_or(0);
            let live = observe_service(&svc, &ctx.stack).ok_or_else(|| {
                ProviderError::fatal(
                    "NotOwned",
                    format!(
                        "{}: service {name} lost the stack's labels",
                        desired.address
                    ),
                )
            })?;
            let still = still_changed(desired, &live, changed);
            let props = merged(&live, desired, changed);
            let (spec, _template) =
                service_spec(&ctx.stack, &desired.address, &props, desired.protect)?;
            if still.is_empty() && live.protect == desired.protect {
                // Someone (a concurrent run, or Swarm itself) already made this change.
                return Ok(());
            }
            self.send_update(client, &current.id, spec, version)
                .await
                .map_err(|e| api_error(&format!("updating service {name}"), e))
        })
        .await?;
        converge::wait_converged(client, &current.id, name).await?;
        self.inspect_observed(client, &current.id, &ctx.stack).await
    }

    async fn delete(
        &self,
        client: &Client,
        ctx: &OpContext,
        current: &Observed,
    ) -> Result<(), ProviderError> {
        let name = service_name(&ctx.stack, &current.address, &current.props);
        client.count();
        match client.docker.delete_service(&current.id).await {
            Ok(()) => {}
            // Gone already: an earlier attempt's response was lost. Its tasks may still be
            // stopping, so wait for them all the same.
            Err(e) if is_404(&e) => {}
            Err(e) => return Err(api_error(&format!("deleting service {name}"), e)),
        }
        // Removal is asynchronous: tasks stop within their grace period. Networks and nodes
        // are only free once they have, so wait (bounded) for the tasks to go.
        converge::wait_tasks_gone(client, &current.id, &name).await;
        Ok(())
    }
}
