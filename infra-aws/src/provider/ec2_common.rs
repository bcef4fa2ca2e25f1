//! What the EC2 kinds share: the ownership filters of their batched reads, ownership from EC2
//! tags, creating with all tags in one call, converging tags, and ARNs.

use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};
use infra_core::dsl::Address;
use infra_core::provider::{Observed, ProviderError, Resolved};
use infra_core::Value;

use super::common::{
    all_tags, ownership, tag_diff, updated_from, Cx, Ownership, TAG_ID, TAG_NAME, TAG_STACK,
};
use super::errors::AwsResult;

/// The filters of a batched read: the stack's tag, and the address when looking one object up.
pub(crate) fn owned_filters(cx: &Cx<'_>, address: Option<&Address>) -> Vec<Filter> {
    let mut f = vec![Filter::builder()
        .name(format!("tag:{TAG_STACK}"))
        .values(cx.stack)
        .build()];
    if let Some(a) = address {
        f.push(
            Filter::builder()
                .name(format!("tag:{TAG_ID}"))
                .values(a.to_string())
                .build(),
        );
    }
    f
}

/// `(key, value)` pairs of EC2 tags.
pub(crate) fn pairs(tags: &[Tag]) -> impl Iterator<Item = (&str, &str)> {
    tags.iter()
        .map(|t| (t.key().unwrap_or(""), t.value().unwrap_or("")))
}

/// Ownership of an EC2 object by the stack, also checking the address when looking one up
/// (endpoints that ignore filters — moto on NAT gateways — must not leak other objects in).
pub(crate) fn owned(
    cx: &Cx<'_>,
    kind: &str,
    tags: &[Tag],
    address: Option<&Address>,
) -> Option<Ownership> {
    let o = ownership(cx.stack, kind, pairs(tags))?;
    match address {
        Some(a) if &o.address != a => None,
        _ => Some(o),
    }
}

fn ec2_tags(tags: &[(String, String)]) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// The tag specification that creates an object with all its tags in the same call.
pub(crate) fn tag_spec(cx: &Cx<'_>, rt: ResourceType, d: &Resolved) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(rt)
        .set_tags(Some(ec2_tags(&all_tags(cx.stack, d))))
        .build()
}

/// Brings the user tags and the protection tag of an EC2 object to what is declared.
pub(crate) async fn sync_tags(
    cx: &Cx<'_>,
    resource_id: &str,
    current: &Observed,
    d: &Resolved,
) -> Result<(), ProviderError> {
    let diff = tag_diff(current, d);
    if !diff.set.is_empty() {
        cx.c.ec2
            .create_tags()
            .resources(resource_id)
            .set_tags(Some(ec2_tags(&diff.set)))
            .send()
            .await
            .aws("CreateTags")?;
    }
    if !diff.remove.is_empty() {
        cx.c.ec2
            .delete_tags()
            .resources(resource_id)
            .set_tags(Some(
                diff.remove
                    .iter()
                    .map(|k| Tag::builder().key(k).build())
                    .collect(),
            ))
            .send()
            .await
            .aws("DeleteTags")?;
    }
    Ok(())
}

/// Re-owns an EC2 object under a new address (a declared move): its `infra:id` tag and its
/// `Name` tag (`<stack>-<name>`, which follows the address) are rewritten in one CreateTags
/// call; the object and its other tags stay as they are. A retry rewrites the same values.
pub(crate) async fn move_to(
    cx: &Cx<'_>,
    current: &Observed,
    to: &Address,
) -> Result<Observed, ProviderError> {
    let tags = [
        (TAG_ID.to_string(), to.to_string()),
        (
            TAG_NAME.to_string(),
            crate::kinds::physical_name(cx.stack, to.name()),
        ),
    ];
    cx.c.ec2
        .create_tags()
        .resources(&current.id)
        .set_tags(Some(ec2_tags(&tags)))
        .send()
        .await
        .aws("CreateTags")?;
    Ok(Observed {
        address: to.clone(),
        ..current.clone()
    })
}

/// Updates of kinds whose only mutable fields are tags.
pub(crate) async fn update_tags_only(
    cx: &Cx<'_>,
    current: &Observed,
    d: &Resolved,
) -> Result<Observed, ProviderError> {
    sync_tags(cx, &current.id, current, d).await?;
    Ok(updated_from(current, d))
}

/// The ARN of an EC2 object whose description carries its owner but no ARN.
pub(crate) fn arn(cx: &Cx<'_>, owner: Option<&str>, what: &str, id: &str) -> Value {
    match owner {
        Some(owner) => Value::from(format!("arn:aws:ec2:{}:{owner}:{what}/{id}", cx.c.region)),
        None => Value::Null,
    }
}
