//! `aws_iam_instance_profile`: holds one role, swapped in place. Owned by path and name (its
//! own listing, `ListInstanceProfiles` under the stack's path, returns no tags).

use async_trait::async_trait;
use infra_core::dsl::{Address, KindSchema};
use infra_core::provider::{Observed, OpContext, ProviderError, Resolved};
use infra_core::registry::KindHandler;
use infra_core::Value;

use super::{AwsKind, Listings};
use crate::kinds::iam::INSTANCE_PROFILE;
use crate::provider::common::{observed_from, req_str, updated_from, Cx, Props};
use crate::provider::errors::{AwsResult, ProviderResult};
use crate::provider::iam_common::{
    add_role, by_path, iam_tags, path_of, pick, prefix, sub_path, ENTITY_ALREADY_EXISTS,
};

/// The `aws_iam_instance_profile` handler.
pub(super) struct InstanceProfile;

impl KindHandler for InstanceProfile {
    fn schema(&self) -> &'static KindSchema {
        &INSTANCE_PROFILE
    }
}

/// The stack's instance profiles: one listing under the stack's path.
async fn list(cx: &Cx<'_>) -> Result<Vec<Observed>, ProviderError> {
    let profiles: Vec<_> =
        cx.c.iam_read
            .list_instance_profiles()
            .path_prefix(prefix(cx))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .aws("ListInstanceProfiles")?;
    Ok(profiles
        .iter()
        .filter_map(|ip| {
            let o = by_path(
                cx,
                INSTANCE_PROFILE.kind,
                ip.path(),
                ip.instance_profile_name(),
            )?;
            let mut p = Props::default();
            p.set("path", sub_path(cx, ip.path()))
                .set("role", ip.roles().first().map(|r| r.role_name()))
                .set("arn", ip.arn());
            Some(p.observed(o, ip.instance_profile_name()))
        })
        .collect())
}

#[async_trait]
impl AwsKind for InstanceProfile {
    async fn read(&self, cx: &Cx<'_>, _: &Listings) -> Result<Vec<Observed>, ProviderError> {
        list(cx).await
    }

    async fn find(&self, cx: &Cx<'_>, a: &Address) -> Result<Option<Observed>, ProviderError> {
        Ok(pick(list(cx).await?, a))
    }

    async fn create(
        &self,
        cx: &Cx<'_>,
        _: &OpContext,
        d: &Resolved,
    ) -> Result<Observed, ProviderError> {
        let name = cx.physical_name(&d.address);
        let out =
            cx.c.iam
                .create_instance_profile()
                .instance_profile_name(&name)
                .path(path_of(cx, d))
                .set_tags(Some(iam_tags(cx, d)))
                .send()
                .await
                .aws("CreateInstanceProfile")?;
        let arn = out.instance_profile().map(|p| p.arn().to_string());
        add_role(cx, &name, &req_str(d, "role")?).await?;
        Ok(observed_from(d, name, &[("arn", Value::from(arn))]))
    }

    async fn update(
        &self,
        cx: &Cx<'_>,
        _: &OpContext,
        current: &Observed,
        d: &Resolved,
        changed: &[String],
    ) -> Result<Observed, ProviderError> {
        if changed.iter().any(|c| c == "role") {
            if let Some(old) = current.props.get("role").and_then(Value::as_str) {
                cx.c.iam
                    .remove_role_from_instance_profile()
                    .instance_profile_name(&current.id)
                    .role_name(old)
                    .send()
                    .await
                    .aws("RemoveRoleFromInstanceProfile")
                    .ok_if(&["NoSuchEntity"])?;
            }
            add_role(cx, &current.id, &req_str(d, "role")?).await?;
        }
        Ok(updated_from(current, d))
    }

    async fn delete(&self, cx: &Cx<'_>, current: &Observed) -> Result<(), ProviderError> {
        let out =
            cx.c.iam_read
                .get_instance_profile()
                .instance_profile_name(&current.id)
                .send()
                .await
                .aws("GetInstanceProfile")?;
        if let Some(p) = out.instance_profile() {
            for r in p.roles() {
                cx.c.iam
                    .remove_role_from_instance_profile()
                    .instance_profile_name(&current.id)
                    .role_name(r.role_name())
                    .send()
                    .await
                    .aws("RemoveRoleFromInstanceProfile")
                    .ok_if(&["NoSuchEntity"])?;
            }
        }
        cx.c.iam
            .delete_instance_profile()
            .instance_profile_name(&current.id)
            .send()
            .await
            .aws_retrying("DeleteInstanceProfile", &["DeleteConflict"])?;
        Ok(())
    }

    fn already_exists_codes(&self) -> &'static [&'static str] {
        &[ENTITY_ALREADY_EXISTS]
    }
}
