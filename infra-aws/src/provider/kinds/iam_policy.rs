//! `aws_iam_policy`: a customer managed policy; a changed document is a new default version
//! (the oldest non-default one makes room at five). Owned by path and name.

use async_trait::async_trait;
use infra_core::dsl::{Address, KindSchema};
use infra_core::provider::{Observed, OpContext, ProviderError, Resolved};
use infra_core::registry::KindHandler;
use infra_core::Value;

use super::{AwsKind, Listings};
use crate::kinds::iam::{IAM_GROUP, IAM_POLICY, IAM_ROLE, IAM_USER};
use crate::provider::common::{
    document_json, document_value, observed_from, tag_diff, updated_from, Cx, Props, Severed,
};
use crate::provider::errors::{AwsResult, ProviderResult};
use crate::provider::iam_common::{
    account_details, attach, by_path, declared_path, detach, each_details_page, iam_tags,
    importable_path, name_from_arn, path_of, pick, prefix, tags, DetailsPage,
    ENTITY_ALREADY_EXISTS,
};
use crate::provider::import::{cannot_adopt, discovered, observed_at, Discovery, Unowned};
use aws_sdk_iam::types::EntityType;

/// The `aws_iam_policy` handler.
pub(super) struct IamPolicy;

impl KindHandler for IamPolicy {
    fn schema(&self) -> &'static KindSchema {
        &IAM_POLICY
    }
}

/// The stack's managed policies among the account's details.
fn observe(cx: &Cx<'_>, pages: &[DetailsPage]) -> Vec<Observed> {
    let mut out = Vec::new();
    for m in pages.iter().flat_map(|p| p.policies()) {
        let (Some(path), Some(arn)) = (m.path(), m.arn()) else {
            continue;
        };
        let name = m.policy_name().unwrap_or_else(|| name_from_arn(arn));
        let Some(o) = by_path(cx, IAM_POLICY.kind, path, name) else {
            continue;
        };
        out.push(policy_props(cx, m, path).observed(o, arn));
    }
    out
}

/// A policy's properties as a read gives them (owned read, discovery and adoption share it).
fn policy_props(cx: &Cx<'_>, m: &aws_sdk_iam::types::ManagedPolicyDetail, path: &str) -> Props {
    let document = m
        .policy_version_list()
        .iter()
        .find(|v| v.is_default_version() || v.version_id() == m.default_version_id())
        .and_then(|v| v.document())
        .map(document_value);
    let mut p = Props::default();
    p.set("path", declared_path(cx, path))
        .set("description", m.description())
        .set("document", document)
        .set("arn", m.arn());
    p
}

/// Why adoption is refused: IAM lists managed policies without tags, so infra owns them by their path
/// `/infra/<stack>/` and name `<stack>-<name>`, and IAM can't move a policy to another path.
const REFUSAL: &str =
    "IAM lists managed policies without their tags, so infra owns managed policies by the path \
     /infra/<stack>/ and the name <stack>-<name>, and IAM can't change a policy's path; declare it \
     without adopt (a new policy is created beside the old one, which stays until deleted by hand)";

/// What the generated module says about it.
fn adoption_notes() -> Vec<String> {
    vec![format!("it can't be adopted: {REFUSAL}")]
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
            .page_size(1000)
            .send()
            .try_collect()
            .await
            .aws("ListEntitiesForPolicy")?;
    let mut out = Vec::new();
    for p in &pages {
        out.extend(
            p.policy_roles()
                .iter()
                .filter_map(|r| Some((IAM_ROLE.kind, r.role_name()?.to_string()))),
        );
        out.extend(
            p.policy_users()
                .iter()
                .filter_map(|u| Some((IAM_USER.kind, u.user_name()?.to_string()))),
        );
        out.extend(
            p.policy_groups()
                .iter()
                .filter_map(|g| Some((IAM_GROUP.kind, g.group_name()?.to_string()))),
        );
    }
    Ok(out)
}

#[async_trait]
impl AwsKind for IamPolicy {
    /// Pages of 1000 from GetAccountAuthorizationDetails (LocalManagedPolicy only); entities under
    /// `/infra/` paths are stacks' and left out, as are AWS's own (see
    /// [`importable_path`]). The `vpc` filter doesn't apply to IAM.
    async fn discover(&self, cx: &Cx<'_>, pass: &mut Discovery<'_>) -> Result<(), ProviderError> {
        each_details_page(cx, EntityType::LocalManagedPolicy, |page| {
            for m in page.policies() {
                let Some(path) = m.path().filter(|p| importable_path(p)) else {
                    continue;
                };
                let Some(tags) = Some(Unowned::default()) else {
                    continue;
                };
                let name = m
                    .policy_name()
                    .unwrap_or_else(|| name_from_arn(m.arn().unwrap_or_default()));
                if !pass.matches(name, &tags.all) {
                    continue;
                }
                let mut found = discovered(
                    &IAM_POLICY,
                    m.arn().unwrap_or_default(),
                    Some(name),
                    policy_props(cx, m, path),
                );
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
        for m in pages.iter().flat_map(|p| p.policies()) {
            let Some(path) = m.path() else {
                continue;
            };
            let name = m
                .policy_name()
                .unwrap_or_else(|| name_from_arn(m.arn().unwrap_or_default()));
            let this = m.arn().unwrap_or_default();
            if this != id && name != id {
                continue;
            }
            let tags = Unowned::default();
            return Ok(Some(observed_at(
                address,
                this,
                policy_props(cx, m, path),
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
        Ok(observed_from(d, arn.clone(), &[("arn", Value::from(arn))]))
    }

    async fn update(
        &self,
        cx: &Cx<'_>,
        _: &OpContext,
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
                    .page_size(1000)
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
                .set_tags(Some(tags(&diff.set)))
                .send()
                .await
                .aws("TagPolicy")?;
        }
        Ok(updated_from(current, d))
    }

    async fn delete(&self, cx: &Cx<'_>, current: &Observed) -> Result<(), ProviderError> {
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
                .page_size(1000)
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

    fn already_exists_codes(&self) -> &'static [&'static str] {
        &[ENTITY_ALREADY_EXISTS]
    }
}
