//! `aws_iam_user`: path, group memberships and tags (its ownership is read from its tags).
//! Passwords, access keys and MFA devices are the user's own, never managed here.

use async_trait::async_trait;
use aws_sdk_iam::types::EntityType;
use infra_core::dsl::{Address, KindSchema};
use infra_core::provider::{Observed, OpContext, ProviderError, Resolved};
use infra_core::registry::KindHandler;
use infra_core::Value;

use super::{AwsKind, Listings};
use crate::kinds::iam::IAM_USER;
use crate::provider::common::{observed_from, strings, tag_diff, updated_from, Cx, Props};
use crate::provider::errors::{AwsResult, ProviderResult};
use crate::provider::import::{discovered, observed_at, Discovery, Unowned};

use crate::provider::iam_common::{
    account_details, by_tags, declared_path, each_details_page, iam_tags, importable_path, path_of,
    pick, set_diff, tag_entity, tags, DetailsPage, ENTITY_ALREADY_EXISTS,
};

/// The `aws_iam_user` handler.
pub(super) struct IamUser;

impl KindHandler for IamUser {
    fn schema(&self) -> &'static KindSchema {
        &IAM_USER
    }
}

/// The stack's users among the account's details.
fn observe(cx: &Cx<'_>, pages: &[DetailsPage]) -> Vec<Observed> {
    let mut out = Vec::new();
    for u in pages.iter().flat_map(|p| p.user_detail_list()) {
        let (Some(path), Some(name)) = (u.path(), u.user_name()) else {
            continue;
        };
        let Some(o) = by_tags(cx, IAM_USER.kind, path, u.tags()) else {
            continue;
        };
        out.push(user_props(cx, u, path, &o.user).observed(o, name));
    }
    out
}

/// A user's properties as a read gives them (owned read, discovery and adoption share it).
fn user_props(
    cx: &Cx<'_>,
    u: &aws_sdk_iam::types::UserDetail,
    path: &str,
    user: &std::collections::BTreeMap<String, String>,
) -> Props {
    let mut p = Props::default();
    p.set("path", declared_path(cx, path))
        .strs("groups", u.group_list().iter().cloned())
        .set("arn", u.arn())
        .tags(user);
    p
}

/// What import can't carry over for a user.
fn adoption_notes() -> Vec<String> {
    vec![
        "its passwords, access keys, MFA devices and inline/attached policies are not declared \
         by infra (they stay as they are when adopted)"
            .to_string(),
    ]
}

#[async_trait]
impl AwsKind for IamUser {
    /// Pages of 1000 from GetAccountAuthorizationDetails (User only); entities under
    /// `/infra/` paths are stacks' and left out, as are AWS's own (see
    /// [`importable_path`]). The `vpc` filter doesn't apply to IAM.
    async fn discover(&self, cx: &Cx<'_>, pass: &mut Discovery<'_>) -> Result<(), ProviderError> {
        each_details_page(cx, EntityType::User, |page| {
            for u in page.user_detail_list() {
                let Some(path) = u.path().filter(|p| importable_path(p)) else {
                    continue;
                };
                let Some(tags) = Unowned::of(u.tags().iter().map(|t| (t.key(), t.value()))) else {
                    continue;
                };
                let name = u.user_name().unwrap_or_default();
                if !pass.matches(name, &tags.all) {
                    continue;
                }
                let mut found = discovered(
                    &IAM_USER,
                    u.user_name().unwrap_or_default(),
                    Some(name),
                    user_props(cx, u, path, &tags.user),
                );
                found.aliases.extend(u.arn().map(str::to_string));
                found.notes = adoption_notes();
                pass.object(found);
            }
        })
        .await
    }

    /// The entity among the account's details (one listing of its type: adoption is rare).
    async fn read_unowned(
        &self,
        cx: &Cx<'_>,
        id: &str,
        address: &Address,
    ) -> Result<Option<Observed>, ProviderError> {
        let pages = account_details(cx).await?;
        for u in pages.iter().flat_map(|p| p.user_detail_list()) {
            let Some(path) = u.path() else {
                continue;
            };
            let this = u.user_name().unwrap_or_default();
            if this != id {
                continue;
            }
            let tags = Unowned::parse(u.tags().iter().map(|t| (t.key(), t.value())));
            return Ok(Some(observed_at(
                address,
                this,
                user_props(cx, u, path, &tags.user),
                &tags,
            )));
        }
        Ok(None)
    }

    /// TagUser: `infra:stack` and `infra:id`; the entity keeps its name and path.
    async fn adopt(
        &self,
        cx: &Cx<'_>,
        current: &Observed,
        to: &Address,
    ) -> Result<Observed, ProviderError> {
        tag_entity(cx, self.schema().kind, &current.id, to).await?;
        Ok(Observed {
            address: to.clone(),
            ..current.clone()
        })
    }
    async fn read(&self, cx: &Cx<'_>, listings: &Listings) -> Result<Vec<Observed>, ProviderError> {
        Ok(observe(cx, listings.iam_details(cx).await?))
    }

    async fn find(&self, cx: &Cx<'_>, a: &Address) -> Result<Option<Observed>, ProviderError> {
        Ok(pick(observe(cx, &account_details(cx).await?), a))
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
                .create_user()
                .user_name(&name)
                .path(path_of(cx, d))
                .set_tags(Some(iam_tags(cx, d)))
                .send()
                .await
                .aws("CreateUser")?;
        let arn = out.user().map(|u| u.arn().to_string());
        for g in strings(d.get("groups")) {
            cx.c.iam
                .add_user_to_group()
                .group_name(g)
                .user_name(&name)
                .send()
                .await
                .aws_retrying("AddUserToGroup", &["NoSuchEntity"])?;
        }
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
        let user = &current.id;
        if changed.iter().any(|c| c == "path") {
            cx.c.iam
                .update_user()
                .user_name(user)
                .new_path(path_of(cx, d))
                .send()
                .await
                .aws("UpdateUser")?;
            // Tags survive a path change on AWS; moto drops them, which would orphan the user
            // (its ownership tags are how a read finds it). Re-stating them is a no-op on AWS.
            cx.c.iam
                .tag_user()
                .user_name(user)
                .set_tags(Some(iam_tags(cx, d)))
                .send()
                .await
                .aws("TagUser")?;
        }
        if changed.iter().any(|c| c == "groups") {
            let (add, remove) = set_diff(
                strings(current.props.get("groups")),
                strings(d.get("groups")),
            );
            for g in add {
                cx.c.iam
                    .add_user_to_group()
                    .group_name(g)
                    .user_name(user)
                    .send()
                    .await
                    .aws_retrying("AddUserToGroup", &["NoSuchEntity"])?;
            }
            for g in remove {
                cx.c.iam
                    .remove_user_from_group()
                    .group_name(g)
                    .user_name(user)
                    .send()
                    .await
                    .aws("RemoveUserFromGroup")
                    .ok_if(&["NoSuchEntity"])?;
            }
        }
        let diff = tag_diff(current, d);
        if !diff.set.is_empty() {
            cx.c.iam
                .tag_user()
                .user_name(user)
                .set_tags(Some(tags(&diff.set)))
                .send()
                .await
                .aws("TagUser")?;
        }
        if !diff.remove.is_empty() {
            cx.c.iam
                .untag_user()
                .user_name(user)
                .set_tag_keys(Some(diff.remove.clone()))
                .send()
                .await
                .aws("UntagUser")?;
        }
        Ok(updated_from(current, d))
    }

    async fn delete(&self, cx: &Cx<'_>, current: &Observed) -> Result<(), ProviderError> {
        let user = &current.id;
        let groups =
            cx.c.iam_read
                .list_groups_for_user()
                .user_name(user)
                .into_paginator()
                .page_size(1000)
                .items()
                .send()
                .try_collect()
                .await
                .aws("ListGroupsForUser")?;
        for g in &groups {
            cx.c.iam
                .remove_user_from_group()
                .group_name(g.group_name())
                .user_name(user)
                .send()
                .await
                .aws("RemoveUserFromGroup")
                .ok_if(&["NoSuchEntity"])?;
        }
        let attached =
            cx.c.iam_read
                .list_attached_user_policies()
                .user_name(user)
                .into_paginator()
                .page_size(1000)
                .items()
                .send()
                .try_collect()
                .await
                .aws("ListAttachedUserPolicies")?;
        for a in &attached {
            cx.c.iam
                .detach_user_policy()
                .user_name(user)
                .set_policy_arn(a.policy_arn().map(str::to_string))
                .send()
                .await
                .aws("DetachUserPolicy")
                .ok_if(&["NoSuchEntity"])?;
        }
        let inline =
            cx.c.iam_read
                .list_user_policies()
                .user_name(user)
                .into_paginator()
                .page_size(1000)
                .items()
                .send()
                .try_collect()
                .await
                .aws("ListUserPolicies")?;
        for n in &inline {
            cx.c.iam
                .delete_user_policy()
                .user_name(user)
                .policy_name(n)
                .send()
                .await
                .aws("DeleteUserPolicy")
                .ok_if(&["NoSuchEntity"])?;
        }
        // Passwords, access keys and MFA devices are the user's: AWS's DeleteConflict says so.
        cx.c.iam
            .delete_user()
            .user_name(user)
            .send()
            .await
            .aws("DeleteUser")?;
        Ok(())
    }

    fn already_exists_codes(&self) -> &'static [&'static str] {
        &[ENTITY_ALREADY_EXISTS]
    }
}
