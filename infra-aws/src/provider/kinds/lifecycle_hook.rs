//! `aws_autoscaling_lifecycle_hook`: a lifecycle hook of an auto scaling group, put whole on
//! create and update (PutLifecycleHook does both).
//!
//! Lifecycle hooks can't be tagged: a hook is the stack's when its group is and its name is
//! `<stack>-<name>`. AWS lists hooks only per group (`DescribeLifecycleHooks` requires the
//! group's name), so a read makes one call per group of the stack, on the groups listing the
//! group kind makes (shared through [`Listings`]). Endpoints that keep a group's hooks after the
//! group is deleted (moto does) don't matter: only live groups of the stack are asked.

use std::collections::BTreeSet;

use async_trait::async_trait;
use aws_sdk_autoscaling::types::LifecycleHook;
use infra_core::dsl::{Address, KindSchema};
use infra_core::provider::{ErrorClass, Observed, OpContext, ProviderError, Resolved};
use infra_core::registry::KindHandler;
use infra_core::Value;

use super::autoscaling_group::{describe_groups, owned_groups};
use super::{AwsKind, Listings};
use crate::provider::import::{cannot_adopt, discovered, observed_at, Discovery, Unowned};

use crate::kinds::compute::LIFECYCLE_HOOK;
use crate::provider::common::{observed_from, opt_str, req_i64, req_str, Cx, Props};
use crate::provider::errors::AwsResult;

/// The `aws_autoscaling_lifecycle_hook` handler.
pub(super) struct Hook;

impl KindHandler for Hook {
    fn schema(&self) -> &'static KindSchema {
        &LIFECYCLE_HOOK
    }
}

/// At most this many groups are asked for their hooks at once.
const CONCURRENT_GROUPS: usize = 8;

fn observe_hook(cx: &Cx<'_>, h: &LifecycleHook) -> Option<Observed> {
    h.auto_scaling_group_name()?;
    let name = h.lifecycle_hook_name()?;
    let logical = name.strip_prefix(&format!("{}-", cx.stack))?;
    let address = Address::new(LIFECYCLE_HOOK.kind, logical);
    Some(Observed {
        address,
        id: name.to_string(),
        props: hook_props(h).0.into(),
        protect: false,
        declared: None,
    })
}

/// A hook's properties as a read gives them (owned read, discovery and adoption share it).
fn hook_props(h: &LifecycleHook) -> Props {
    let group = h.auto_scaling_group_name();
    let mut props = Props::default();
    props
        .set("autoscaling_group_name", group)
        .set("lifecycle_transition", h.lifecycle_transition())
        .set("heartbeat_timeout", h.heartbeat_timeout())
        .set("default_result", h.default_result())
        .set(
            "notification_metadata",
            h.notification_metadata().filter(|m| !m.is_empty()),
        );
    // Notification targets and their role are not declarable (the instance completes the
    // action itself), so they are not read either.
    props
}

/// Why adoption is refused.
const REFUSAL: &str = "lifecycle hooks can't be tagged, so infra owns a hook by its group and \
     its name <stack>-<name>, and AWS can't rename a hook; declare it without adopt (the \
     declared hook is put beside this one, which stays until deleted by hand)";

/// The hooks of one group (all of them, or the one named `name`); none when the group is gone.
async fn describe_hooks(
    cx: &Cx<'_>,
    group: &str,
    name: Option<&str>,
) -> Result<Vec<LifecycleHook>, ProviderError> {
    let out =
        cx.c.asg_read
            .describe_lifecycle_hooks()
            .auto_scaling_group_name(group)
            .set_lifecycle_hook_names(name.map(|n| vec![n.to_string()]))
            .send()
            .await
            .aws("DescribeLifecycleHooks");
    match out {
        Ok(o) => Ok(o.lifecycle_hooks().to_vec()),
        // The group went away between the listing and this call.
        Err(e) if e.class == ErrorClass::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// The stack's hooks on the stack's groups `groups` (optionally only the one named `name`).
async fn hooks_of(
    cx: &Cx<'_>,
    groups: BTreeSet<String>,
    name: Option<&str>,
) -> Result<Vec<Observed>, ProviderError> {
    use futures::stream::{StreamExt, TryStreamExt};
    let per_group: Vec<Vec<LifecycleHook>> = futures::stream::iter(groups)
        .map(|g| async move { describe_hooks(cx, &g, name).await })
        .buffered(CONCURRENT_GROUPS)
        .try_collect()
        .await?;
    Ok(per_group
        .iter()
        .flatten()
        .filter_map(|h| observe_hook(cx, h))
        .collect())
}

/// Creates or replaces the hook.
async fn put(cx: &Cx<'_>, d: &Resolved) -> Result<Observed, ProviderError> {
    let group = req_str(d, "autoscaling_group_name")?;
    let name = cx.physical_name(&d.address);
    let timeout = i32::try_from(req_i64(d, "heartbeat_timeout")?).map_err(|_| {
        ProviderError::fatal(
            "InvalidHeartbeat",
            format!("{}: heartbeat_timeout is out of range", d.address),
        )
    })?;
    cx.c.asg
        .put_lifecycle_hook()
        .auto_scaling_group_name(&group)
        .lifecycle_hook_name(&name)
        .lifecycle_transition(req_str(d, "lifecycle_transition")?)
        .heartbeat_timeout(timeout)
        .default_result(req_str(d, "default_result")?)
        .set_notification_metadata(opt_str(d, "notification_metadata"))
        .send()
        .await
        .aws("PutLifecycleHook")?;
    Ok(observed_from(d, name, &[]))
}

async fn delete_hook(cx: &Cx<'_>, group: &str, name: &str) -> Result<(), ProviderError> {
    match cx
        .c
        .asg
        .delete_lifecycle_hook()
        .auto_scaling_group_name(group)
        .lifecycle_hook_name(name)
        .send()
        .await
        .aws("DeleteLifecycleHook")
    {
        Ok(_) => Ok(()),
        // Gone already: the group is gone (its hooks with it), or the hook is.
        Err(e) if e.class == ErrorClass::NotFound => Ok(()),
        Err(e)
            if e.code == "ValidationError"
                && e.message.to_ascii_lowercase().contains("no lifecycle hook") =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

#[async_trait]
impl AwsKind for Hook {
    /// The hooks of each group handed over (AWS lists hooks per group only). The id of a
    /// hook is `<group>/<hook name>`.
    async fn discover(&self, cx: &Cx<'_>, pass: &mut Discovery<'_>) -> Result<(), ProviderError> {
        for group in std::mem::take(&mut pass.groups) {
            for h in describe_hooks(cx, &group, None).await? {
                let Some(name) = h.lifecycle_hook_name() else {
                    continue;
                };
                let id = format!("{group}/{name}");
                let mut found = discovered(&LIFECYCLE_HOOK, &id, Some(name), hook_props(&h));
                if h.notification_target_arn().is_some() {
                    found.notes.push(
                        "a notification target and role: infra declares hooks the instance \
                         completes itself"
                            .to_string(),
                    );
                }
                found.notes.push(format!("it can't be adopted: {REFUSAL}"));
                pass.object(found);
            }
        }
        Ok(())
    }

    /// `id` is `<group>/<hook name>`.
    async fn read_unowned(
        &self,
        cx: &Cx<'_>,
        id: &str,
        address: &Address,
    ) -> Result<Option<Observed>, ProviderError> {
        let Some((group, name)) = id.split_once('/') else {
            return Ok(None);
        };
        Ok(describe_hooks(cx, group, Some(name))
            .await?
            .first()
            .map(|h| observed_at(address, id, hook_props(h), &Unowned::default())))
    }

    fn adoption_refusal(&self) -> Option<&'static str> {
        Some(REFUSAL)
    }

    async fn adopt(
        &self,
        _: &Cx<'_>,
        current: &Observed,
        to: &Address,
    ) -> Result<Observed, ProviderError> {
        Err(cannot_adopt(self.schema().kind, &current.id, to, REFUSAL))
    }
    /// The hooks of the stack's groups (one call per group), kept when named `<stack>-…`.
    async fn read(&self, cx: &Cx<'_>, listings: &Listings) -> Result<Vec<Observed>, ProviderError> {
        let groups = listings.asg_groups(cx).await?;
        let names = owned_groups(cx, groups).into_iter().map(|o| o.id).collect();
        hooks_of(cx, names, None).await
    }

    async fn find(&self, cx: &Cx<'_>, a: &Address) -> Result<Option<Observed>, ProviderError> {
        let name = cx.physical_name(a);
        let groups = describe_groups(cx, None).await?;
        let names = owned_groups(cx, &groups)
            .into_iter()
            .map(|o| o.id)
            .collect();
        Ok(hooks_of(cx, names, Some(&name)).await?.pop())
    }

    async fn create(
        &self,
        cx: &Cx<'_>,
        _: &OpContext,
        d: &Resolved,
    ) -> Result<Observed, ProviderError> {
        put(cx, d).await
    }

    async fn update(
        &self,
        cx: &Cx<'_>,
        _: &OpContext,
        current: &Observed,
        d: &Resolved,
        _: &[String],
    ) -> Result<Observed, ProviderError> {
        // PutLifecycleHook keeps what a call leaves out, and notification metadata can't be
        // set empty: removing it takes a delete and a new put (a moment without the hook).
        let had_metadata = current
            .props
            .get("notification_metadata")
            .is_some_and(|v| !v.is_empty_like());
        if had_metadata && opt_str(d, "notification_metadata").is_none() {
            let group = current
                .props
                .get("autoscaling_group_name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            delete_hook(cx, group, &current.id).await?;
        }
        put(cx, d).await
    }

    async fn delete(&self, cx: &Cx<'_>, current: &Observed) -> Result<(), ProviderError> {
        let group = current
            .props
            .get("autoscaling_group_name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        delete_hook(cx, group, &current.id).await
    }
}
