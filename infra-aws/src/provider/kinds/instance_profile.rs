//! `aws_iam_instance_profile`: holds one role, swapped in place. Owned by path and name (its
//! own listing, `ListInstanceProfiles` under the stack's path, returns no tags).

use async_trait::async_trait;
use infra_core::dsl::{Address, KindSchema};
use infra_core::provider::{Observed, OpContext, ProviderError, Resolved};
use infra_core::registry::KindHandler;
use infra_core::Value;

use super::{AwsKind, Listings};
use crate::provider::import::{cannot_adopt, discovered, observed_at, Discovery, Unowned};

use crate::kinds::iam::INSTANCE_PROFILE;
use crate::provider::common::{observed_from, req_str, updated_from, Cx, Props};
use crate::provider::errors::{AwsResult, ProviderResult};
use crate::provider::iam_common::{
    add_role, by_path, declared_path, iam_tags, importable_path, path_of, pick, prefix,
    ENTITY_ALREADY_EXISTS,
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
            .page_size(1000)
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
            Some(profile_props(cx, ip).observed(o, ip.instance_profile_name()))
        })
        .collect())
}

/// A profile's properties as a read gives them (owned read, discovery and adoption share it).
fn profile_props(cx: &Cx<'_>, ip: &aws_sdk_iam::types::InstanceProfile) -> Props {
    let mut p = Props::default();
    p.set("path", declared_path(cx, ip.path()))
        .set("role", ip.roles().first().map(|r| r.role_name()))
        .set("arn", ip.arn());
    p
}

/// Why adoption is refused.
const REFUSAL: &str = "IAM lists instance profiles without their tags, so infra owns a \
     profile by the path /infra/<stack>/ and the name <stack>-<name>, and IAM can't change a \
     profile's path; declare it without adopt (a new profile is created beside the old one, \
     which stays until deleted by hand)";

#[async_trait]
impl AwsKind for InstanceProfile {
    /// Pages of 1000 from ListInstanceProfiles; profiles under `/infra/` paths are stacks'.
    async fn discover(&self, cx: &Cx<'_>, pass: &mut Discovery<'_>) -> Result<(), ProviderError> {
        let mut pages =
            cx.c.iam_read
                .list_instance_profiles()
                .max_items(1000)
                .into_paginator()
                .send();
        while let Some(page) = pages.next().await {
            for ip in page.aws("ListInstanceProfiles")?.instance_profiles() {
                let name = ip.instance_profile_name();
                let tags = Unowned::parse(ip.tags().iter().map(|t| (t.key(), t.value())));
                if !importable_path(ip.path())
                    || tags.owner.is_some()
                    || !pass.matches(name, &tags.all)
                {
                    continue;
                }
                // Its ARN is its id: a role of the same name (the console's habit) keeps its own.
                let mut found = discovered(
                    &INSTANCE_PROFILE,
                    ip.arn(),
                    Some(name),
                    profile_props(cx, ip),
                );
                if ip.roles().len() > 1 {
                    found
                        .notes
                        .push("more than one role: infra declares one".to_string());
                }
                found.notes.push(format!("it can't be adopted: {REFUSAL}"));
                pass.object(found);
            }
        }
        Ok(())
    }

    /// `id` is the profile's name (or its ARN).
    async fn read_unowned(
        &self,
        cx: &Cx<'_>,
        id: &str,
        address: &Address,
    ) -> Result<Option<Observed>, ProviderError> {
        let name = id.rsplit('/').next().unwrap_or(id);
        let out =
            cx.c.iam_read
                .get_instance_profile()
                .instance_profile_name(name)
                .send()
                .await
                .aws("GetInstanceProfile")
                .or_not_found()?;
        Ok(out.as_ref().and_then(|o| o.instance_profile()).map(|ip| {
            observed_at(
                address,
                ip.instance_profile_name(),
                profile_props(cx, ip),
                &Unowned::default(),
            )
        }))
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
