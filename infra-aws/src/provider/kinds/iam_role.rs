//! `aws_iam_role`: trust policy, inline policies and attached managed policies, each diffed on
//! update; tagged, so its ownership is read from its tags.

use async_trait::async_trait;
use aws_sdk_iam::types::EntityType;
use infra_core::dsl::{Address, KindSchema};
use infra_core::provider::{Observed, OpContext, ProviderError, Resolved};
use infra_core::registry::KindHandler;
use infra_core::Value;

use super::{AwsKind, Listings};
use crate::kinds::iam::IAM_ROLE;
use crate::provider::common::{
    document_json, document_value, observed_from, strings, tag_diff, updated_from, Cx, Props,
    Severed,
};
use crate::provider::errors::{AwsResult, ProviderResult};
use crate::provider::import::{discovered, observed_at, Discovery, Unowned};

use crate::provider::iam_common::{
    account_details, add_role, arns, attach_role_policy, by_tags, declared_path, each_details_page,
    iam_tags, importable_path, inline_diff, inline_map, inline_of, path_of, pick, set_diff,
    sub_path, tag_entity, tags, DetailsPage, ENTITY_ALREADY_EXISTS,
};

/// The `aws_iam_role` handler.
pub(super) struct IamRole;

impl KindHandler for IamRole {
    fn schema(&self) -> &'static KindSchema {
        &IAM_ROLE
    }
}

/// The stack's roles among the account's details.
fn observe(cx: &Cx<'_>, pages: &[DetailsPage]) -> Vec<Observed> {
    let mut out = Vec::new();
    for r in pages.iter().flat_map(|p| p.role_detail_list()) {
        let (Some(path), Some(name)) = (r.path(), r.role_name()) else {
            continue;
        };
        let Some(o) = by_tags(cx, IAM_ROLE.kind, path, r.tags()) else {
            continue;
        };
        out.push(role_props(cx, r, path, &o.user).observed(o, name));
    }
    out
}

/// A role's properties as a read gives them (owned read, discovery and adoption share it).
fn role_props(
    cx: &Cx<'_>,
    r: &aws_sdk_iam::types::RoleDetail,
    path: &str,
    user: &std::collections::BTreeMap<String, String>,
) -> Props {
    let mut p = Props::default();
    p.set("path", declared_path(cx, path))
        .set(
            "assume_role_policy",
            r.assume_role_policy_document().map(document_value),
        )
        .set(
            "inline_policies",
            inline_map(
                r.role_policy_list()
                    .iter()
                    .map(|i| (i.policy_name(), i.policy_document())),
            ),
        )
        .strs(
            "managed_policy_arns",
            arns(r.attached_managed_policies().iter().map(|a| a.policy_arn())),
        )
        .set("arn", r.arn())
        .tags(user);
    p
}

/// Roles are adopted by their tags.
fn adoption_notes() -> Vec<String> {
    Vec::new()
}

async fn put_role_policy(
    cx: &Cx<'_>,
    role: &str,
    name: &str,
    doc: &str,
) -> Result<(), ProviderError> {
    cx.c.iam
        .put_role_policy()
        .role_name(role)
        .policy_name(name)
        .policy_document(doc)
        .send()
        .await
        .aws("PutRolePolicy")?;
    Ok(())
}

#[async_trait]
impl AwsKind for IamRole {
    /// Pages of 1000 from GetAccountAuthorizationDetails (Role only); entities under
    /// `/infra/` paths are stacks' and left out, as are AWS's own (see
    /// [`importable_path`]). The `vpc` filter doesn't apply to IAM.
    async fn discover(&self, cx: &Cx<'_>, pass: &mut Discovery<'_>) -> Result<(), ProviderError> {
        each_details_page(cx, EntityType::Role, |page| {
            for r in page.role_detail_list() {
                let Some(path) = r.path().filter(|p| importable_path(p)) else {
                    continue;
                };
                let Some(tags) = Unowned::of(r.tags().iter().map(|t| (t.key(), t.value()))) else {
                    continue;
                };
                let name = r.role_name().unwrap_or_default();
                if !pass.matches(name, &tags.all) {
                    continue;
                }
                let mut found = discovered(
                    &IAM_ROLE,
                    r.role_name().unwrap_or_default(),
                    Some(name),
                    role_props(cx, r, path, &tags.user),
                );
                found.aliases.extend(r.arn().map(str::to_string));
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
        for r in pages.iter().flat_map(|p| p.role_detail_list()) {
            let Some(path) = r.path() else {
                continue;
            };
            let this = r.role_name().unwrap_or_default();
            if this != id {
                continue;
            }
            let tags = Unowned::parse(r.tags().iter().map(|t| (t.key(), t.value())));
            return Ok(Some(observed_at(
                address,
                this,
                role_props(cx, r, path, &tags.user),
                &tags,
            )));
        }
        Ok(None)
    }

    /// TagRole: `infra:stack` and `infra:id`; the entity keeps its name and path.
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
        let trust = d
            .get("assume_role_policy")
            .map(document_json)
            .ok_or_else(|| {
                ProviderError::fatal(
                    "MissingField",
                    format!("{}: `assume_role_policy` is required", d.address),
                )
            })?;
        let out =
            cx.c.iam
                .create_role()
                .role_name(&name)
                .path(path_of(cx, d))
                .assume_role_policy_document(trust)
                .set_tags(Some(iam_tags(cx, d)))
                .send()
                .await
                .aws("CreateRole")?;
        let arn = out.role().map(|r| r.arn().to_string());
        for (n, doc) in inline_of(d.get("inline_policies")) {
            put_role_policy(cx, &name, &n, &document_json(&doc)).await?;
        }
        for arn in strings(d.get("managed_policy_arns")) {
            attach_role_policy(cx, &name, &arn).await?;
        }
        for s in cx.restore(&format!("role:{name}")) {
            if let Severed::ProfileRole(profile) = s {
                add_role(cx, &profile, &name).await?;
            }
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
        let role = &current.id;
        let has = |f: &str| changed.iter().any(|c| c == f);
        if has("assume_role_policy") {
            cx.c.iam
                .update_assume_role_policy()
                .role_name(role)
                .policy_document(
                    d.get("assume_role_policy")
                        .map(document_json)
                        .unwrap_or_default(),
                )
                .send()
                .await
                .aws("UpdateAssumeRolePolicy")?;
        }
        if has("inline_policies") {
            let (put, delete) = inline_diff(
                &inline_of(current.props.get("inline_policies")),
                &inline_of(d.get("inline_policies")),
            );
            for (n, doc) in put {
                put_role_policy(cx, role, &n, &doc).await?;
            }
            for n in delete {
                cx.c.iam
                    .delete_role_policy()
                    .role_name(role)
                    .policy_name(n)
                    .send()
                    .await
                    .aws("DeleteRolePolicy")
                    .ok_if(&["NoSuchEntity"])?;
            }
        }
        if has("managed_policy_arns") {
            let (attach, detach) = set_diff(
                strings(current.props.get("managed_policy_arns")),
                strings(d.get("managed_policy_arns")),
            );
            for arn in attach {
                attach_role_policy(cx, role, &arn).await?;
            }
            for arn in detach {
                cx.c.iam
                    .detach_role_policy()
                    .role_name(role)
                    .policy_arn(arn)
                    .send()
                    .await
                    .aws("DetachRolePolicy")
                    .ok_if(&["NoSuchEntity"])?;
            }
        }
        let diff = tag_diff(current, d);
        if !diff.set.is_empty() {
            cx.c.iam
                .tag_role()
                .role_name(role)
                .set_tags(Some(tags(&diff.set)))
                .send()
                .await
                .aws("TagRole")?;
        }
        if !diff.remove.is_empty() {
            cx.c.iam
                .untag_role()
                .role_name(role)
                .set_tag_keys(Some(diff.remove.clone()))
                .send()
                .await
                .aws("UntagRole")?;
        }
        Ok(updated_from(current, d))
    }

    async fn delete(&self, cx: &Cx<'_>, current: &Observed) -> Result<(), ProviderError> {
        let role = &current.id;
        // Instance profiles of the stack that still hold the role let go of it; a profile outside
        // the stack is not the stack's to change, and AWS refuses the deletion then.
        let profiles =
            cx.c.iam_read
                .list_instance_profiles_for_role()
                .role_name(role)
                .into_paginator()
                .page_size(1000)
                .items()
                .send()
                .try_collect()
                .await
                .aws("ListInstanceProfilesForRole")?;
        let mut cut = Vec::new();
        for p in &profiles {
            if sub_path(cx, p.path()).is_none() {
                return Err(ProviderError::fatal(
                    "DeleteConflict",
                    format!(
                        "DeleteRole: role {role} is in instance profile {}, which stack `{}` does not own",
                        p.instance_profile_name(),
                        cx.stack
                    ),
                ));
            }
            cx.c.iam
                .remove_role_from_instance_profile()
                .instance_profile_name(p.instance_profile_name())
                .role_name(role)
                .send()
                .await
                .aws("RemoveRoleFromInstanceProfile")
                .ok_if(&["NoSuchEntity"])?;
            cut.push(Severed::ProfileRole(p.instance_profile_name().to_string()));
        }
        cx.sever(format!("role:{role}"), cut);
        let attached =
            cx.c.iam_read
                .list_attached_role_policies()
                .role_name(role)
                .into_paginator()
                .page_size(1000)
                .items()
                .send()
                .try_collect()
                .await
                .aws("ListAttachedRolePolicies")?;
        for a in &attached {
            cx.c.iam
                .detach_role_policy()
                .role_name(role)
                .set_policy_arn(a.policy_arn().map(str::to_string))
                .send()
                .await
                .aws("DetachRolePolicy")
                .ok_if(&["NoSuchEntity"])?;
        }
        let inline =
            cx.c.iam_read
                .list_role_policies()
                .role_name(role)
                .into_paginator()
                .page_size(1000)
                .items()
                .send()
                .try_collect()
                .await
                .aws("ListRolePolicies")?;
        for n in &inline {
            cx.c.iam
                .delete_role_policy()
                .role_name(role)
                .policy_name(n)
                .send()
                .await
                .aws("DeleteRolePolicy")
                .ok_if(&["NoSuchEntity"])?;
        }
        cx.c.iam
            .delete_role()
            .role_name(role)
            .send()
            .await
            .aws_retrying("DeleteRole", &["DeleteConflict"])?;
        Ok(())
    }

    fn already_exists_codes(&self) -> &'static [&'static str] {
        &[ENTITY_ALREADY_EXISTS]
    }
}
