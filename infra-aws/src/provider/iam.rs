//! IAM: managed policies, roles, instance profiles, groups and users.
//!
//! A stack's IAM entities live under `/infra/<stack>/` and are named `<stack>-<name>`. A read is
//! two listings: `GetAccountAuthorizationDetails` (roles with their trust, inline and attached
//! policies and tags; users with their groups and tags; groups with their policies; local
//! managed policies with their documents) and `ListInstanceProfiles` under the stack's path.
//! Entities outside the stack's path are never returned; roles and users, whose tags that
//! listing includes, must also carry the stack's tag.
//!
//! IAM returns no tags for policies, groups and instance profiles in any batched listing, so
//! their `infra:protect` tag can't be read back: their protection comes from the declaration.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_iam::types::{EntityType, Tag};
use infra_core::dsl::Address;
use infra_core::provider::{Observed, ProviderError, Resolved};
use infra_core::Value;

use super::common::{
    all_tags, document_json, document_value, ownership, req_str, strings, tag_diff, updated_from,
    Cx, Ownership, Props, Severed,
};
use super::errors::{AwsResult, ProviderResult};

/// The stack's IAM path prefix, `/infra/<stack>/`.
fn prefix(cx: &Cx<'_>) -> String {
    crate::kinds::iam_path(cx.stack, "/")
}

/// The declared sub-path of an entity's path, if the entity is under the stack's path.
fn sub_path(cx: &Cx<'_>, path: &str) -> Option<String> {
    let p = prefix(cx);
    path.starts_with(&p)
        .then(|| path[p.len() - 1..].to_string())
}

/// Ownership of a path-owned entity (one whose tags the listing doesn't return): under the
/// stack's path and named `<stack>-<name>`.
fn by_path(cx: &Cx<'_>, kind: &str, path: &str, name: &str) -> Option<Ownership> {
    sub_path(cx, path)?;
    let logical = name.strip_prefix(&format!("{}-", cx.stack))?;
    Some(Ownership {
        address: Address::new(kind, logical),
        protect: false,
        user: BTreeMap::new(),
    })
}

/// Ownership of a tagged entity: under the stack's path and tagged with the stack.
fn by_tags(cx: &Cx<'_>, kind: &str, path: &str, tags: &[Tag]) -> Option<Ownership> {
    sub_path(cx, path)?;
    ownership(cx.stack, kind, tags.iter().map(|t| (t.key(), t.value())))
}

fn iam_tags(cx: &Cx<'_>, d: &Resolved) -> Vec<Tag> {
    all_tags(cx.stack, d)
        .into_iter()
        .filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok())
        .collect()
}

fn path_of(cx: &Cx<'_>, d: &Resolved) -> String {
    crate::kinds::iam_path(cx.stack, d.get_str("path").unwrap_or("/"))
}

fn inline_map<'a>(items: impl Iterator<Item = (Option<&'a str>, Option<&'a str>)>) -> Value {
    Value::Map(
        items
            .filter_map(|(n, d)| Some((n?.to_string(), document_value(d?))))
            .collect(),
    )
}

fn arns<'a>(items: impl Iterator<Item = Option<&'a str>>) -> impl Iterator<Item = String> {
    items.flatten().map(str::to_string)
}

/// The last segment of an ARN's path (moto leaves `PolicyName` out of the listing).
fn name_from_arn(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

#[derive(Default)]
struct Listing {
    observed: Vec<Observed>,
}

async fn list(cx: &Cx<'_>, address: Option<&Address>) -> Result<Vec<Observed>, ProviderError> {
    let wanted = |kinds: &[&str]| address.is_none_or(|a| kinds.contains(&a.kind()));
    let details = async {
        if !wanted(&[
            "aws_iam_role",
            "aws_iam_user",
            "aws_iam_group",
            "aws_iam_policy",
        ]) {
            return Ok(Vec::new());
        }
        cx.c.iam_read
            .get_account_authorization_details()
            .filter(EntityType::Role)
            .filter(EntityType::User)
            .filter(EntityType::Group)
            .filter(EntityType::LocalManagedPolicy)
            .into_paginator()
            .send()
            .try_collect()
            .await
            .aws("GetAccountAuthorizationDetails")
    };
    let profiles = async {
        if !wanted(&["aws_iam_instance_profile"]) {
            return Ok(Vec::new());
        }
        cx.c.iam_read
            .list_instance_profiles()
            .path_prefix(prefix(cx))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .aws("ListInstanceProfiles")
    };
    let (pages, profiles) = tokio::try_join!(details, profiles)?;
    let mut out = Listing::default();
    for page in &pages {
        for r in page.role_detail_list() {
            let (Some(path), Some(name)) = (r.path(), r.role_name()) else {
                continue;
            };
            let Some(o) = by_tags(cx, "aws_iam_role", path, r.tags()) else {
                continue;
            };
            let mut p = Props::default();
            p.set("path", sub_path(cx, path))
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
                .tags(&o.user);
            out.observed.push(p.observed(o, name));
        }
        for u in page.user_detail_list() {
            let (Some(path), Some(name)) = (u.path(), u.user_name()) else {
                continue;
            };
            let Some(o) = by_tags(cx, "aws_iam_user", path, u.tags()) else {
                continue;
            };
            let mut p = Props::default();
            p.set("path", sub_path(cx, path))
                .strs("groups", u.group_list().iter().cloned())
                .set("arn", u.arn())
                .tags(&o.user);
            out.observed.push(p.observed(o, name));
        }
        for g in page.group_detail_list() {
            let (Some(path), Some(name)) = (g.path(), g.group_name()) else {
                continue;
            };
            let Some(o) = by_path(cx, "aws_iam_group", path, name) else {
                continue;
            };
            let mut p = Props::default();
            p.set("path", sub_path(cx, path))
                .set(
                    "inline_policies",
                    inline_map(
                        g.group_policy_list()
                            .iter()
                            .map(|i| (i.policy_name(), i.policy_document())),
                    ),
                )
                .strs(
                    "managed_policy_arns",
                    arns(g.attached_managed_policies().iter().map(|a| a.policy_arn())),
                )
                .set("arn", g.arn());
            out.observed.push(p.observed(o, name));
        }
        for m in page.policies() {
            let (Some(path), Some(arn)) = (m.path(), m.arn()) else {
                continue;
            };
            let name = m.policy_name().unwrap_or_else(|| name_from_arn(arn));
            let Some(o) = by_path(cx, "aws_iam_policy", path, name) else {
                continue;
            };
            let document = m
                .policy_version_list()
                .iter()
                .find(|v| v.is_default_version() || v.version_id() == m.default_version_id())
                .and_then(|v| v.document())
                .map(document_value);
            let mut p = Props::default();
            p.set("path", sub_path(cx, path))
                .set("description", m.description())
                .set("document", document)
                .set("arn", arn);
            out.observed.push(p.observed(o, arn));
        }
    }
    for ip in &profiles {
        let Some(o) = by_path(
            cx,
            "aws_iam_instance_profile",
            ip.path(),
            ip.instance_profile_name(),
        ) else {
            continue;
        };
        let mut p = Props::default();
        p.set("path", sub_path(cx, ip.path()))
            .set("role", ip.roles().first().map(|r| r.role_name()))
            .set("arn", ip.arn());
        out.observed.push(p.observed(o, ip.instance_profile_name()));
    }
    Ok(match address {
        Some(a) => out
            .observed
            .into_iter()
            .filter(|o| &o.address == a)
            .collect(),
        None => out.observed,
    })
}

/// Every IAM entity the stack owns (two listings).
pub(super) async fn read(cx: &Cx<'_>) -> Result<Vec<Observed>, ProviderError> {
    list(cx, None).await
}

pub(super) async fn find(cx: &Cx<'_>, a: &Address) -> Result<Option<Observed>, ProviderError> {
    Ok(list(cx, Some(a)).await?.pop())
}

/// `(name, document)` of a map of inline policies.
fn inline_of(v: Option<&Value>) -> BTreeMap<String, Value> {
    v.and_then(Value::as_map).cloned().unwrap_or_default()
}

/// What to put and delete to take inline policies from `have` to `want`.
fn inline_diff(
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

fn set_diff(have: Vec<String>, want: Vec<String>) -> (Vec<String>, Vec<String>) {
    let h: BTreeSet<String> = have.into_iter().collect();
    let w: BTreeSet<String> = want.into_iter().collect();
    (
        w.difference(&h).cloned().collect(),
        h.difference(&w).cloned().collect(),
    )
}

// ---------------------------------------------------------------------------------------------
// Managed policy

pub(super) async fn create_policy(cx: &Cx<'_>, d: &Resolved) -> Result<Observed, ProviderError> {
    let doc = d.get("document").ok_or_else(|| {
        ProviderError::fatal(
            "MissingField",
            format!("{}: `document` is required", d.address),
        )
    })?;
    let out =
        cx.c.iam
            .create_policy()
            .policy_name(cx.physical_name(&d.address))
            .path(path_of(cx, d))
            .policy_document(document_json(doc))
            .set_description(d.get_str("description").map(str::to_string))
            .set_tags(Some(iam_tags(cx, d)))
            .send()
            .await
            .aws("CreatePolicy")?;
    let arn = out
        .policy()
        .and_then(|p| p.arn())
        .ok_or_else(|| ProviderError::retryable("EmptyResponse", "CreatePolicy: no ARN"))?
        .to_string();
    for s in cx.restore(&format!("policy:{arn}")) {
        if let Severed::Attachment(kind, name) = s {
            attach(cx, kind, &name, &arn).await?;
        }
    }
    Ok(super::common::observed_from(
        d,
        arn.clone(),
        &[("arn", Value::from(arn))],
    ))
}

pub(super) async fn update_policy(
    cx: &Cx<'_>,
    current: &Observed,
    d: &Resolved,
    changed: &[String],
) -> Result<Observed, ProviderError> {
    let arn = &current.id;
    if changed.iter().any(|c| c == "document") {
        // At most five versions: make room by deleting the oldest non-default one.
        let versions =
            cx.c.iam_read
                .list_policy_versions()
                .policy_arn(arn)
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .aws("ListPolicyVersions")?;
        if versions.len() >= 5 {
            if let Some(oldest) = versions
                .iter()
                .filter(|v| !v.is_default_version())
                .min_by_key(|v| v.create_date().map(|t| (t.secs(), t.subsec_nanos())))
            {
                cx.c.iam
                    .delete_policy_version()
                    .policy_arn(arn)
                    .set_version_id(oldest.version_id().map(str::to_string))
                    .send()
                    .await
                    .aws("DeletePolicyVersion")?;
            }
        }
        let doc = d.get("document").map(document_json).unwrap_or_default();
        cx.c.iam
            .create_policy_version()
            .policy_arn(arn)
            .policy_document(doc)
            .set_as_default(true)
            .send()
            .await
            .aws("CreatePolicyVersion")?;
    }
    let diff = tag_diff(current, d);
    if !diff.set.is_empty() {
        cx.c.iam
            .tag_policy()
            .policy_arn(arn)
            .set_tags(Some(
                diff.set
                    .iter()
                    .filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok())
                    .collect(),
            ))
            .send()
            .await
            .aws("TagPolicy")?;
    }
    Ok(updated_from(current, d))
}

pub(super) async fn delete_policy(cx: &Cx<'_>, current: &Observed) -> Result<(), ProviderError> {
    let arn = &current.id;
    // AWS refuses to delete an attached policy (moto doesn't, and then the attached role can't
    // be deleted any more). Attachments to the stack's own entities are cut here (and restored
    // if the policy comes back under the same ARN: a replacement); an attachment to anything
    // else blocks the deletion. Right after the stack detached it, IAM may still list it for a
    // moment, hence retryable.
    let all = entities_of(cx, arn, None).await?;
    let ours = entities_of(cx, arn, Some(prefix(cx))).await?;
    let foreign: Vec<String> = all
        .iter()
        .filter(|e| !ours.contains(e))
        .map(|(k, n)| format!("{} {n}", k.trim_start_matches("aws_iam_")))
        .collect();
    if !foreign.is_empty() {
        return Err(ProviderError::retryable(
            "DeleteConflict",
            format!(
                "DeletePolicy: {arn} is still attached to {}, outside stack `{}`",
                foreign.join(", "),
                cx.stack
            ),
        ));
    }
    for (kind, name) in &ours {
        detach(cx, kind, name, arn).await?;
    }
    cx.sever(
        format!("policy:{arn}"),
        ours.into_iter()
            .map(|(k, n)| Severed::Attachment(k, n))
            .collect(),
    );
    let versions =
        cx.c.iam_read
            .list_policy_versions()
            .policy_arn(arn)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .aws("ListPolicyVersions")?;
    for v in versions.iter().filter(|v| !v.is_default_version()) {
        cx.c.iam
            .delete_policy_version()
            .policy_arn(arn)
            .set_version_id(v.version_id().map(str::to_string))
            .send()
            .await
            .aws("DeletePolicyVersion")
            .ok_if(&["NoSuchEntity"])?;
    }
    cx.c.iam
        .delete_policy()
        .policy_arn(arn)
        .send()
        .await
        .aws_retrying("DeletePolicy", &["DeleteConflict"])?;
    Ok(())
}

/// The roles, users and groups a policy is attached to (under `path_prefix` if given).
async fn entities_of(
    cx: &Cx<'_>,
    arn: &str,
    path_prefix: Option<String>,
) -> Result<Vec<(&'static str, String)>, ProviderError> {
    let pages: Vec<_> =
        cx.c.iam_read
            .list_entities_for_policy()
            .policy_arn(arn)
            .set_path_prefix(path_prefix)
            .into_paginator()
            .send()
            .try_collect()
            .await
            .aws("ListEntitiesForPolicy")?;
    let mut out = Vec::new();
    for p in &pages {
        out.extend(
            p.policy_roles()
                .iter()
                .filter_map(|r| Some(("aws_iam_role", r.role_name()?.to_string()))),
        );
        out.extend(
            p.policy_users()
                .iter()
                .filter_map(|u| Some(("aws_iam_user", u.user_name()?.to_string()))),
        );
        out.extend(
            p.policy_groups()
                .iter()
                .filter_map(|g| Some(("aws_iam_group", g.group_name()?.to_string()))),
        );
    }
    Ok(out)
}

async fn attach(cx: &Cx<'_>, kind: &str, name: &str, arn: &str) -> Result<(), ProviderError> {
    match kind {
        "aws_iam_role" => attach_role_policy(cx, name, arn).await,
        "aws_iam_user" => {
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

async fn detach(cx: &Cx<'_>, kind: &str, name: &str, arn: &str) -> Result<(), ProviderError> {
    match kind {
        "aws_iam_role" => {
            cx.c.iam
                .detach_role_policy()
                .role_name(name)
                .policy_arn(arn)
                .send()
                .await
                .aws("DetachRolePolicy")
                .ok_if(&["NoSuchEntity"])
        }
        "aws_iam_user" => {
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

// ---------------------------------------------------------------------------------------------
// Role

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

async fn attach_role_policy(cx: &Cx<'_>, role: &str, arn: &str) -> Result<(), ProviderError> {
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

pub(super) async fn create_role(cx: &Cx<'_>, d: &Resolved) -> Result<Observed, ProviderError> {
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
    Ok(super::common::observed_from(
        d,
        name,
        &[("arn", Value::from(arn))],
    ))
}

pub(super) async fn update_role(
    cx: &Cx<'_>,
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
            .set_tags(Some(
                diff.set
                    .iter()
                    .filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok())
                    .collect(),
            ))
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

pub(super) async fn delete_role(cx: &Cx<'_>, current: &Observed) -> Result<(), ProviderError> {
    let role = &current.id;
    // Instance profiles of the stack that still hold the role let go of it; a profile outside
    // the stack is not the stack's to change, and AWS refuses the deletion then.
    let profiles =
        cx.c.iam_read
            .list_instance_profiles_for_role()
            .role_name(role)
            .into_paginator()
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

// ---------------------------------------------------------------------------------------------
// Instance profile

async fn add_role(cx: &Cx<'_>, profile: &str, role: &str) -> Result<(), ProviderError> {
    cx.c.iam
        .add_role_to_instance_profile()
        .instance_profile_name(profile)
        .role_name(role)
        .send()
        .await
        .aws_retrying("AddRoleToInstanceProfile", &["NoSuchEntity"])?;
    Ok(())
}

pub(super) async fn create_instance_profile(
    cx: &Cx<'_>,
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
    Ok(super::common::observed_from(
        d,
        name,
        &[("arn", Value::from(arn))],
    ))
}

pub(super) async fn update_instance_profile(
    cx: &Cx<'_>,
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

pub(super) async fn delete_instance_profile(
    cx: &Cx<'_>,
    current: &Observed,
) -> Result<(), ProviderError> {
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

// ---------------------------------------------------------------------------------------------
// Group

async fn converge_group_policies(
    cx: &Cx<'_>,
    group: &str,
    current: Option<&Observed>,
    d: &Resolved,
) -> Result<(), ProviderError> {
    let have_inline = inline_of(current.and_then(|c| c.props.get("inline_policies")));
    let (put, delete) = inline_diff(&have_inline, &inline_of(d.get("inline_policies")));
    for (n, doc) in put {
        cx.c.iam
            .put_group_policy()
            .group_name(group)
            .policy_name(n)
            .policy_document(doc)
            .send()
            .await
            .aws("PutGroupPolicy")?;
    }
    for n in delete {
        cx.c.iam
            .delete_group_policy()
            .group_name(group)
            .policy_name(n)
            .send()
            .await
            .aws("DeleteGroupPolicy")
            .ok_if(&["NoSuchEntity"])?;
    }
    let (attach, detach) = set_diff(
        strings(current.and_then(|c| c.props.get("managed_policy_arns"))),
        strings(d.get("managed_policy_arns")),
    );
    for arn in attach {
        cx.c.iam
            .attach_group_policy()
            .group_name(group)
            .policy_arn(arn)
            .send()
            .await
            .aws_retrying("AttachGroupPolicy", &["NoSuchEntity"])?;
    }
    for arn in detach {
        cx.c.iam
            .detach_group_policy()
            .group_name(group)
            .policy_arn(arn)
            .send()
            .await
            .aws("DetachGroupPolicy")
            .ok_if(&["NoSuchEntity"])?;
    }
    Ok(())
}

pub(super) async fn create_group(cx: &Cx<'_>, d: &Resolved) -> Result<Observed, ProviderError> {
    let name = cx.physical_name(&d.address);
    let out =
        cx.c.iam
            .create_group()
            .group_name(&name)
            .path(path_of(cx, d))
            .send()
            .await
            .aws("CreateGroup")?;
    let arn = out.group().map(|g| g.arn().to_string());
    converge_group_policies(cx, &name, None, d).await?;
    for s in cx.restore(&format!("group:{name}")) {
        if let Severed::Member(user) = s {
            cx.c.iam
                .add_user_to_group()
                .group_name(&name)
                .user_name(user)
                .send()
                .await
                .aws_retrying("AddUserToGroup", &["NoSuchEntity"])?;
        }
    }
    Ok(super::common::observed_from(
        d,
        name,
        &[("arn", Value::from(arn))],
    ))
}

pub(super) async fn update_group(
    cx: &Cx<'_>,
    current: &Observed,
    d: &Resolved,
    changed: &[String],
) -> Result<Observed, ProviderError> {
    if changed.iter().any(|c| c == "path") {
        cx.c.iam
            .update_group()
            .group_name(&current.id)
            .new_path(path_of(cx, d))
            .send()
            .await
            .aws("UpdateGroup")?;
    }
    converge_group_policies(cx, &current.id, Some(current), d).await?;
    Ok(updated_from(current, d))
}

pub(super) async fn delete_group(cx: &Cx<'_>, current: &Observed) -> Result<(), ProviderError> {
    let group = &current.id;
    // AWS deletes only an empty group without policies.
    let members =
        cx.c.iam_read
            .get_group()
            .group_name(group)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .aws("GetGroup")?;
    for u in &members {
        cx.c.iam
            .remove_user_from_group()
            .group_name(group)
            .user_name(u.user_name())
            .send()
            .await
            .aws("RemoveUserFromGroup")
            .ok_if(&["NoSuchEntity"])?;
    }
    cx.sever(
        format!("group:{group}"),
        members
            .iter()
            .map(|u| Severed::Member(u.user_name().to_string()))
            .collect(),
    );
    let none = Resolved {
        address: current.address.clone(),
        schema: &crate::kinds::iam::IAM_GROUP,
        props: BTreeMap::new(),
        protect: false,
    };
    let live =
        cx.c.iam_read
            .list_attached_group_policies()
            .group_name(group)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .aws("ListAttachedGroupPolicies")?;
    let inline =
        cx.c.iam_read
            .list_group_policies()
            .group_name(group)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .aws("ListGroupPolicies")?;
    let mut now = current.clone();
    now.props.insert(
        "managed_policy_arns".into(),
        Value::List(
            live.iter()
                .filter_map(|a| a.policy_arn())
                .map(Value::from)
                .collect(),
        ),
    );
    now.props.insert(
        "inline_policies".into(),
        Value::Map(inline.iter().map(|n| (n.clone(), Value::Null)).collect()),
    );
    converge_group_policies(cx, group, Some(&now), &none).await?;
    cx.c.iam
        .delete_group()
        .group_name(group)
        .send()
        .await
        .aws_retrying("DeleteGroup", &["DeleteConflict"])?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// User

pub(super) async fn create_user(cx: &Cx<'_>, d: &Resolved) -> Result<Observed, ProviderError> {
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
    Ok(super::common::observed_from(
        d,
        name,
        &[("arn", Value::from(arn))],
    ))
}

pub(super) async fn update_user(
    cx: &Cx<'_>,
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
            .set_tags(Some(
                diff.set
                    .iter()
                    .filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok())
                    .collect(),
            ))
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

pub(super) async fn delete_user(cx: &Cx<'_>, current: &Observed) -> Result<(), ProviderError> {
    let user = &current.id;
    let groups =
        cx.c.iam_read
            .list_groups_for_user()
            .user_name(user)
            .into_paginator()
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
