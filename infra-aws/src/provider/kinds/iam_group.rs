//! `aws_iam_group`: inline and attached policies; its members are the users' (`groups`), and
//! are cut before a delete and restored when the group comes back in the same apply. Owned by
//! path and name (IAM groups can't be tagged).

use std::collections::BTreeMap;

use async_trait::async_trait;
use infra_core::dsl::{Address, KindSchema};
use infra_core::provider::{Observed, OpContext, ProviderError, Resolved};
use infra_core::registry::KindHandler;
use infra_core::Value;

use super::{AwsKind, Listings};
use crate::kinds::iam::IAM_GROUP;
use crate::provider::common::{observed_from, strings, updated_from, Cx, Props, Severed};
use crate::provider::errors::{AwsResult, ProviderResult};
use crate::provider::iam_common::{
    account_details, arns, by_path, declared_path, each_details_page, importable_path, inline_diff,
    inline_map, inline_of, path_of, pick, set_diff, DetailsPage, ENTITY_ALREADY_EXISTS,
};
use crate::provider::import::{cannot_adopt, discovered, observed_at, Discovery, Unowned};
use aws_sdk_iam::types::EntityType;

/// The `aws_iam_group` handler.
pub(super) struct IamGroup;

impl KindHandler for IamGroup {
    fn schema(&self) -> &'static KindSchema {
        &IAM_GROUP
    }
}

/// The stack's groups among the account's details.
fn observe(cx: &Cx<'_>, pages: &[DetailsPage]) -> Vec<Observed> {
    let mut out = Vec::new();
    for g in pages.iter().flat_map(|p| p.group_detail_list()) {
        let (Some(path), Some(name)) = (g.path(), g.group_name()) else {
            continue;
        };
        let Some(o) = by_path(cx, IAM_GROUP.kind, path, name) else {
            continue;
        };
        out.push(group_props(cx, g, path).observed(o, name));
    }
    out
}

/// A group's properties as a read gives them (owned read, discovery and adoption share it).
fn group_props(cx: &Cx<'_>, g: &aws_sdk_iam::types::GroupDetail, path: &str) -> Props {
    let mut p = Props::default();
    p.set("path", declared_path(cx, path))
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
    p
}

/// Why adoption is refused: IAM groups can't be tagged, so infra owns them by their path
/// `/infra/<stack>/` and name `<stack>-<name>`, and IAM can't move a group to another path.
const REFUSAL: &str = "IAM groups can't be tagged, so infra owns groups by the path \
     /infra/<stack>/ and the name <stack>-<name>, and adopting it would mean renaming it; declare it \
     without adopt (a new group is created beside the old one, which stays until deleted by hand)";

/// What the generated module says about it.
fn adoption_notes() -> Vec<String> {
    vec![format!("it can't be adopted: {REFUSAL}")]
}

/// Takes the group's inline and attached policies from `current` (none: a new group) to `d`.
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

#[async_trait]
impl AwsKind for IamGroup {
    /// Pages of 1000 from GetAccountAuthorizationDetails (Group only); entities under
    /// `/infra/` paths are stacks' and left out, as are AWS's own (see
    /// [`importable_path`]). The `vpc` filter doesn't apply to IAM.
    async fn discover(&self, cx: &Cx<'_>, pass: &mut Discovery<'_>) -> Result<(), ProviderError> {
        each_details_page(cx, EntityType::Group, |page| {
            for g in page.group_detail_list() {
                let Some(path) = g.path().filter(|p| importable_path(p)) else {
                    continue;
                };
                let Some(tags) = Some(Unowned::default()) else {
                    continue;
                };
                let name = g.group_name().unwrap_or_default();
                if !pass.matches(name, &tags.all) {
                    continue;
                }
                let mut found = discovered(
                    &IAM_GROUP,
                    g.group_name().unwrap_or_default(),
                    Some(name),
                    group_props(cx, g, path),
                );
                found.aliases.extend(g.arn().map(str::to_string));
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
        for g in pages.iter().flat_map(|p| p.group_detail_list()) {
            let Some(path) = g.path() else {
                continue;
            };
            let this = g.group_name().unwrap_or_default();
            if this != id {
                continue;
            }
            let tags = Unowned::default();
            return Ok(Some(observed_at(
                address,
                this,
                group_props(cx, g, path),
                &tags,
            )));
        }
        Ok(None)
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

    async fn delete(&self, cx: &Cx<'_>, current: &Observed) -> Result<(), ProviderError> {
        let group = &current.id;
        // AWS deletes only an empty group without policies.
        let members =
            cx.c.iam_read
                .get_group()
                .group_name(group)
                .into_paginator()
                .page_size(1000)
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
            schema: &IAM_GROUP,
            props: BTreeMap::new(),
            protect: false,
        };
        let live =
            cx.c.iam_read
                .list_attached_group_policies()
                .group_name(group)
                .into_paginator()
                .page_size(1000)
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
                .page_size(1000)
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

    fn already_exists_codes(&self) -> &'static [&'static str] {
        &[ENTITY_ALREADY_EXISTS]
    }
}
