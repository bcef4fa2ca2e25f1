//! What the Elastic Load Balancing v2 handlers share: tags read in batches, ownership of listed
//! objects, tag changes and the tag shape of the API.
//!
//! ELBv2 has no tag filter on its listings (`DescribeLoadBalancers`, `DescribeTargetGroups`,
//! `DescribeListeners`): a read lists the objects (paginated) and asks `DescribeTags` for the
//! tags of at most 20 ARNs a call (AWS's limit), keeping the objects the stack's tags claim.

use std::collections::HashMap;

use aws_sdk_elasticloadbalancingv2::types::Tag;
use futures::stream::{StreamExt, TryStreamExt};
use infra_core::dsl::Address;
use infra_core::provider::{Observed, ProviderError, Resolved};

use super::common::{ownership, tag_diff, Cx, Ownership};
use super::errors::AwsResult;
use super::import::{ownership_tags, Unowned};

/// An object's tags, `(key, value)`.
pub(crate) type Tags = Vec<(String, String)>;

/// `DescribeTags` takes at most this many ARNs.
pub(crate) const TAG_BATCH: usize = 20;
/// At most this many `DescribeTags` calls at once.
const CONCURRENT_TAG_READS: usize = 4;

/// The tags of `arns`, by ARN (`DescribeTags`, 20 ARNs a call). An ARN whose object is gone
/// is simply missing from the answer.
pub(crate) async fn tags_of(
    cx: &Cx<'_>,
    arns: &[String],
) -> Result<HashMap<String, Tags>, ProviderError> {
    let batches: Vec<Vec<(String, Tags)>> = futures::stream::iter(
        arns.chunks(TAG_BATCH)
            .map(<[String]>::to_vec)
            .collect::<Vec<_>>(),
    )
    .map(|batch: Vec<String>| async move {
        let out =
            cx.c.elb_read
                .describe_tags()
                .set_resource_arns(Some(batch))
                .send()
                .await
                .aws("DescribeTags")?;
        Ok::<_, ProviderError>(
            out.tag_descriptions()
                .iter()
                .filter_map(|d| {
                    let arn = d.resource_arn()?.to_string();
                    let tags = d
                        .tags()
                        .iter()
                        .map(|t| {
                            (
                                t.key().unwrap_or_default().to_string(),
                                t.value().unwrap_or_default().to_string(),
                            )
                        })
                        .collect();
                    Some((arn, tags))
                })
                .collect(),
        )
    })
    .buffered(CONCURRENT_TAG_READS)
    .try_collect()
    .await?;
    Ok(batches.into_iter().flatten().collect())
}

/// The objects among `items` (by ARN) that the stack owns as `kind`, with their ownership.
pub(crate) async fn owned<T>(
    cx: &Cx<'_>,
    kind: &str,
    items: Vec<(String, T)>,
) -> Result<Vec<(String, T, Ownership)>, ProviderError> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let arns: Vec<String> = items.iter().map(|(a, _)| a.clone()).collect();
    let tags = tags_of(cx, &arns).await?;
    Ok(items
        .into_iter()
        .filter_map(|(arn, item)| {
            let t = tags.get(&arn)?;
            let o = ownership(
                cx.stack,
                kind,
                t.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            )?;
            Some((arn, item, o))
        })
        .collect())
}

/// The API's tags.
pub(crate) fn elb_tags(tags: &[(String, String)]) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// Takes the object's user tags and protection mark from `current` to `d`.
pub(crate) async fn update_tags(
    cx: &Cx<'_>,
    arn: &str,
    current: &Observed,
    d: &Resolved,
) -> Result<(), ProviderError> {
    let diff = tag_diff(current, d);
    if !diff.set.is_empty() {
        cx.c.elb
            .add_tags()
            .resource_arns(arn)
            .set_tags(Some(elb_tags(&diff.set)))
            .send()
            .await
            .aws("AddTags")?;
    }
    if !diff.remove.is_empty() {
        cx.c.elb
            .remove_tags()
            .resource_arns(arn)
            .set_tag_keys(Some(diff.remove))
            .send()
            .await
            .aws("RemoveTags")?;
    }
    Ok(())
}

/// The objects among `items` (by ARN) that belong to no stack, with their tags (import).
pub(crate) async fn unowned<T>(
    cx: &Cx<'_>,
    items: Vec<(String, T)>,
) -> Result<Vec<(String, T, Unowned)>, ProviderError> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let arns: Vec<String> = items.iter().map(|(a, _)| a.clone()).collect();
    let tags = tags_of(cx, &arns).await?;
    Ok(items
        .into_iter()
        .filter_map(|(arn, item)| {
            let t = tags.get(&arn)?;
            let u = Unowned::of(t.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
            Some((arn, item, u))
        })
        .collect())
}

/// The tags of one object, whoever owns it (`None`: it is gone).
pub(crate) async fn tags_any(cx: &Cx<'_>, arn: &str) -> Result<Option<Unowned>, ProviderError> {
    let tags = tags_of(cx, &[arn.to_string()]).await?;
    Ok(tags
        .get(arn)
        .map(|t| Unowned::parse(t.iter().map(|(k, v)| (k.as_str(), v.as_str())))))
}

/// Adopts an ELBv2 object: one AddTags call with the ownership tags, nothing else.
pub(crate) async fn adopt_elb(
    cx: &Cx<'_>,
    current: &Observed,
    to: &Address,
) -> Result<Observed, ProviderError> {
    cx.c.elb
        .add_tags()
        .resource_arns(&current.id)
        .set_tags(Some(elb_tags(&ownership_tags(cx, to))))
        .send()
        .await
        .aws("AddTags")?;
    Ok(Observed {
        address: to.clone(),
        ..current.clone()
    })
}
