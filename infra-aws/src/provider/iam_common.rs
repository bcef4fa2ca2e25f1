//! What the IAM kinds share: ownership by the stack's IAM path, names and tags, the account's
//! authorization details (one listing for roles, users, groups and managed policies), and
//! attaching managed policies.
//!
//! A stack's IAM entities live under `/infra/<stack>/` and are named `<stack>-<name>`. A read is
//! two listings: `GetAccountAuthorizationDetails` (roles with their trust, inline and attached
//! policies and tags; users with their groups and tags; groups with their policies; local
//! managed policies with their documents), shared by those four kinds, and
//! `ListInstanceProfiles` under the stack's path. Entities outside the stack's path are never
//! returned; roles and users, whose tags that listing includes, must also carry the stack's tag.
//!
//! IAM returns no tags for policies, groups and instance profiles in any batched listing, so
//! their `infra:protect` tag can't be read back: their protection comes from the declaration.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_iam::operation::get_account_authorization_details::GetAccountAuthorizationDetailsOutput;
use aws_sdk_iam::types::{EntityType, Tag};
use infra_core::dsl::Address;
use infra_core::provider::{Observed, ProviderError, Resolved};
use infra_core::Value;

use super::common::{all_tags, document_json, document_value, ownership, Cx, Ownership};
use super::errors::{AwsResult, ProviderResult};
use crate::kinds::iam::{IAM_ROLE, IAM_USER};

/// IAM's answer to a create whose name is taken: a lost create's entity, if it is the stack's.
pub(crate) const ENTITY_ALREADY_EXISTS: &str = "EntityAlreadyExists";

/// One page of the account's authorization details.
pub(crate) type DetailsPage = GetAccountAuthorizationDetailsOutput;

/// The account's roles, users, groups and local managed policies with their policies and
/// (roles and users) tags: one paginated listing.
pub(crate) async fn account_details(cx: &Cx<'_>) -> Result<Vec<DetailsPage>, ProviderError> {
    cx.c.iam_read
        .get_account_authorization_details()
        .filter(EntityType::Role)
        .filter(EntityType::User)
        .filter(EntityType::Group)
        .filter(EntityType::LocalManagedPolicy)
        .into_paginator()
        .page_size(1000)
        .send()
        .try_collect()
        .await
        .aws("GetAccountAuthorizationDetails")
}

/// The account's authorization details of one entity type, in pages of 1000, each handed to
/// `each` as it arrives (import's discovery streams; [`account_details`] collects).
pub(crate) async fn each_details_page(
    cx: &Cx<'_>,
    entity: EntityType,
    mut each: impl FnMut(&DetailsPage),
) -> Result<(), ProviderError> {
    let mut pages =
        cx.c.iam_read
            .get_account_authorization_details()
            .filter(entity)
            .max_items(1000)
            .into_paginator()
            .send();
    while let Some(page) = pages.next().await {
        each(&page.aws("GetAccountAuthorizationDetails")?);
    }
    Ok(())
}

/// The object at `address` among `observed` (a look-up filters a listing).
pub(crate) fn pick(observed: Vec<Observed>, address: &Address) -> Option<Observed> {
    observed
        .into_iter()
        .filter(|o| &o.address == address)
        .last()
}

/// The stack's IAM path prefix, `/infra/<stack>/`.
pub(crate) fn prefix(cx: &Cx<'_>) -> String {
    crate::kinds::iam_path(cx.stack, "/")
}

/// The declared sub-path of an entity's path, if the entity is under the stack's path.
pub(crate) fn sub_path(cx: &Cx<'_>, path: &str) -> Option<String> {
    let p = prefix(cx);
    path.starts_with(&p)
        .then(|| path[p.len() - 1..].to_string())
}

/// Ownership of a path-owned entity (one whose tags the listing doesn't return): under the
/// stack's path and named `<stack>-<name>`.
pub(crate) fn by_path(cx: &Cx<'_>, kind: &str, path: &str, name: &str) -> Option<Ownership> {
    sub_path(cx, path)?;
    let logical = name.strip_prefix(&format!("{}-", cx.stack))?;
    Some(Ownership {
        address: Address::new(kind, logical),
        protect: false,
        declared: None,
        user: BTreeMap::new(),
    })
}

/// Ownership of a tagged entity (role, user): tagged with the stack. Those infra creates are
/// also under the stack's path; an adopted one keeps the path it had (IAM can't move a role).
pub(crate) fn by_tags(cx: &Cx<'_>, kind: &str, path: &str, tags: &[Tag]) -> Option<Ownership> {
    let _ = path;
    ownership(cx.stack, kind, tags.iter().map(|t| (t.key(), t.value())))
}

/// The `path` property of an entity: the declared sub-path under the stack's path, or the
/// whole path of an entity outside it (an adopted role or user, an unowned entity).
pub(crate) fn declared_path(cx: &Cx<'_>, path: &str) -> String {
    sub_path(cx, path).unwrap_or_else(|| path.to_string())
}

/// True for an entity no stack owns by its path (`/infra/…`) and that AWS doesn't own: roles
/// under `/aws-service-role/` (service-linked roles, made and deleted by their service) are
/// AWS's and left out quietly, as are AWS-managed policies (never listed: discovery asks for
/// local policies only).
pub(crate) fn importable_path(path: &str) -> bool {
    !path.starts_with("/infra/") && !path.starts_with("/aws-service-role/")
}

/// Adopts a role or user: its ownership tags (TagRole / TagUser), nothing else.
pub(crate) async fn tag_entity(
    cx: &Cx<'_>,
    kind: &str,
    name: &str,
    to: &Address,
) -> Result<(), ProviderError> {
    let tags = tags(&crate::provider::import::ownership_tags(cx, to));
    if kind == IAM_ROLE.kind {
        cx.c.iam
            .tag_role()
            .role_name(name)
            .set_tags(Some(tags))
            .send()
            .await
            .aws("TagRole")?;
    } else {
        cx.c.iam
            .tag_user()
            .user_name(name)
            .set_tags(Some(tags))
            .send()
            .await
            .aws("TagUser")?;
    }
    Ok(())
}

/// IAM tags of `(key, value)` pairs.
pub(crate) fn tags(pairs: &[(String, String)]) -> Vec<Tag> {
    pairs
        .iter()
        .filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok())
        .collect()
}

/// Every tag a new entity gets (see [`all_tags`]).
pub(crate) fn iam_tags(cx: &Cx<'_>, d: &Resolved) -> Vec<Tag> {
    tags(&all_tags(cx.stack, d))
}

/// The full IAM path of a declared entity.
pub(crate) fn path_of(cx: &Cx<'_>, d: &Resolved) -> String {
    crate::kinds::iam_path(cx.stack, d.get_str("path").unwrap_or("/"))
}

/// Inline policies of a listing, by name.
pub(crate) fn inline_map<'a>(
    items: impl Iterator<Item = (Option<&'a str>, Option<&'a str>)>,
) -> Value {
    Value::Map(
        items
            .filter_map(|(n, d)| Some((n?.to_string(), document_value(d?))))
            .collect(),
    )
}

/// The ARNs of a listing's attached policies.
pub(crate) fn arns<'a>(
    items: impl Iterator<Item = Option<&'a str>>,
) -> impl Iterator<Item = String> {
    items.flatten().map(str::to_string)
}

/// The last segment of an ARN's path (moto leaves `PolicyName` out of the listing).
pub(crate) fn name_from_arn(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// `(name, document)` of a map of inline policies.
pub(crate) fn inline_of(v: Option<&Value>) -> BTreeMap<String, Value> {
    v.and_then(Value::as_map).cloned().unwrap_or_default()
}

/// What to put and delete to take inline policies from `have` to `want`.
pub(crate) fn inline_diff(
    have: &BTreeMap<String, Value>,
    want: &BTreeMap<String, Value>,
) -> (Vec<(String, String)>, Vec<String>) {
    let put = want
        .iter()
        .filter(|(n, d)| !infra_core::plan::values_equal(have.get(*n), Some(d)))
        .map(|(n, d)| (n.clone(), document_json(d)))
        .collect();
    let delete = have
        .keys()
        .filter(|n| !want.contains_key(*n))
        .cloned()
        .collect();
    (put, delete)
}

/// What to add and remove to take a set from `have` to `want`.
pub(crate) fn set_diff(have: Vec<String>, want: Vec<String>) -> (Vec<String>, Vec<String>) {
    let h: BTreeSet<String> = have.into_iter().collect();
    let w: BTreeSet<String> = want.into_iter().collect();
    (
        w.difference(&h).cloned().collect(),
        h.difference(&w).cloned().collect(),
    )
}

/// Attaches managed policy `arn` to the role, user or group (`kind`) `name`.
pub(crate) async fn attach(
    cx: &Cx<'_>,
    kind: &str,
    name: &str,
    arn: &str,
) -> Result<(), ProviderError> {
    match kind {
        k if k == IAM_ROLE.kind => attach_role_policy(cx, name, arn).await,
        k if k == IAM_USER.kind => {
            cx.c.iam
                .attach_user_policy()
                .user_name(name)
                .policy_arn(arn)
                .send()
                .await
                .aws_retrying("AttachUserPolicy", &["NoSuchEntity"])
                .map(|_| ())
        }
        _ => {
            cx.c.iam
                .attach_group_policy()
                .group_name(name)
                .policy_arn(arn)
                .send()
                .await
                .aws_retrying("AttachGroupPolicy", &["NoSuchEntity"])
                .map(|_| ())
        }
    }
}

/// Detaches managed policy `arn` from the role, user or group (`kind`) `name`.
pub(crate) async fn detach(
    cx: &Cx<'_>,
    kind: &str,
    name: &str,
    arn: &str,
) -> Result<(), ProviderError> {
    match kind {
        k if k == IAM_ROLE.kind => {
            cx.c.iam
                .detach_role_policy()
                .role_name(name)
                .policy_arn(arn)
                .send()
                .await
                .aws("DetachRolePolicy")
                .ok_if(&["NoSuchEntity"])
        }
        k if k == IAM_USER.kind => {
            cx.c.iam
                .detach_user_policy()
                .user_name(name)
                .policy_arn(arn)
                .send()
                .await
                .aws("DetachUserPolicy")
                .ok_if(&["NoSuchEntity"])
        }
        _ => {
            cx.c.iam
                .detach_group_policy()
                .group_name(name)
                .policy_arn(arn)
                .send()
                .await
                .aws("DetachGroupPolicy")
                .ok_if(&["NoSuchEntity"])
        }
    }
}

/// Attaches managed policy `arn` to `role`.
pub(crate) async fn attach_role_policy(
    cx: &Cx<'_>,
    role: &str,
    arn: &str,
) -> Result<(), ProviderError> {
    // A policy created a moment ago may not be visible yet (IAM is eventually consistent).
    cx.c.iam
        .attach_role_policy()
        .role_name(role)
        .policy_arn(arn)
        .send()
        .await
        .aws_retrying("AttachRolePolicy", &["NoSuchEntity"])?;
    Ok(())
}

/// Puts `role` in instance profile `profile`.
pub(crate) async fn add_role(cx: &Cx<'_>, profile: &str, role: &str) -> Result<(), ProviderError> {
    cx.c.iam
        .add_role_to_instance_profile()
        .instance_profile_name(profile)
        .role_name(role)
        .send()
        .await
        .aws_retrying("AddRoleToInstanceProfile", &["NoSuchEntity"])?;
    Ok(())
}
