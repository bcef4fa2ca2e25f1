//! `aws_ssm_parameter`: a Parameter Store parameter.
//!
//! * **Read.** `DescribeParameters` filtered by the stack's tag (one paginated listing) gives the
//!   stack's parameters, but neither their tags nor their values: the `infra:id` tag (which
//!   declaration a parameter is) comes from `ListTagsForResource`, one call per parameter of the
//!   stack (SSM has no batched tag listing), and the values from `GetParameters` (decrypted, ten
//!   names a call). A `SecureString`'s value is digested at once and the plain text dropped: the
//!   plan compares digests, so a secret changed by hand is drift, shown redacted.
//! * **Create** is `PutParameter` without `Overwrite`, with all the tags in the same call: a name
//!   that is taken answers `ParameterAlreadyExists`, and the provider then looks the parameter
//!   up by its tags and converges it when it is the stack's (a create whose response was lost),
//!   or fails naming the stack when it isn't (it is never overwritten).
//! * **Update** is `PutParameter` with `Overwrite` (which can't carry tags) for the value and
//!   description, and `AddTagsToResource` / `RemoveTagsFromResource` for the tags.
//! * **Errors** never carry a secret: messages are AWS's (never request parameters), and any
//!   occurrence of the value in one is replaced by `(sensitive)` all the same.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_ssm::types::{
    Parameter, ParameterMetadata, ParameterStringFilter, ParameterType, ResourceTypeForTagging, Tag,
};
use futures::stream::{StreamExt, TryStreamExt};
use infra_core::dsl::{Address, KindSchema};
use infra_core::provider::{ErrorClass, Observed, OpContext, ProviderError, Resolved};
use infra_core::registry::KindHandler;
use infra_core::value::{digest_of, Sensitive};
use infra_core::Value;

use super::{AwsKind, Listings};
use crate::kinds::ssm::SSM_PARAMETER;
use crate::provider::common::{
    all_tags, observed_from, opt_str, ownership, req_str, tag_diff, updated_from, Cx, Ownership,
    Props, TAG_ID, TAG_STACK,
};
use crate::provider::errors::AwsResult;
use crate::provider::import::{discovered, observed_at, ownership_tags, Discovery, Unowned};

/// The `aws_ssm_parameter` handler.
pub(super) struct SsmParameter;

impl KindHandler for SsmParameter {
    fn schema(&self) -> &'static KindSchema {
        &SSM_PARAMETER
    }
}

/// At most this many `ListTagsForResource` calls at once.
const CONCURRENT_TAG_READS: usize = 8;
/// DescribeParameters' largest page.
const DESCRIBE_PAGE: i32 = 50;
/// `GetParameters` takes at most this many names.
const GET_BATCH: usize = 10;

/// The stack's parameters by their tags (and the address when looking one up).
async fn describe(
    cx: &Cx<'_>,
    address: Option<&Address>,
) -> Result<Vec<ParameterMetadata>, ProviderError> {
    let tag = |key: &str, value: String| {
        ParameterStringFilter::builder()
            .key(format!("tag:{key}"))
            .option("Equals")
            .values(value)
            .build()
            .map_err(|e| ProviderError::fatal("ClientError", e.to_string()))
    };
    let mut filters = vec![tag(TAG_STACK, cx.stack.to_string())?];
    if let Some(a) = address {
        filters.push(tag(TAG_ID, a.to_string())?);
    }
    let pages: Vec<_> =
        cx.c.ssm_read
            .describe_parameters()
            .set_parameter_filters(Some(filters))
            // AWS's largest page (its default is 10).
            .max_results(DESCRIBE_PAGE)
            .into_paginator()
            .send()
            .try_collect()
            .await
            .aws("DescribeParameters")?;
    Ok(pages
        .iter()
        .flat_map(|p| p.parameters().iter().cloned())
        .collect())
}

/// The tags of a parameter; `None` when it is gone.
async fn tags_of(cx: &Cx<'_>, name: &str) -> Result<Option<Vec<Tag>>, ProviderError> {
    match cx
        .c
        .ssm_read
        .list_tags_for_resource()
        .resource_type(ResourceTypeForTagging::Parameter)
        .resource_id(name)
        .send()
        .await
        .aws("ListTagsForResource")
    {
        Ok(out) => Ok(Some(out.tag_list().to_vec())),
        Err(e) if e.class == ErrorClass::NotFound || e.code == "InvalidResourceId" => Ok(None),
        Err(e) => Err(e),
    }
}

/// The current values of parameters (decrypted), by name; gone ones are left out.
async fn values_of(
    cx: &Cx<'_>,
    names: &[String],
) -> Result<BTreeMap<String, Parameter>, ProviderError> {
    let mut out = BTreeMap::new();
    for batch in names.chunks(GET_BATCH) {
        let got =
            cx.c.ssm_read
                .get_parameters()
                .set_names(Some(batch.to_vec()))
                .with_decryption(true)
                .send()
                .await
                .aws("GetParameters")?;
        for p in got.parameters() {
            if let Some(n) = p.name() {
                out.insert(n.to_string(), p.clone());
            }
        }
    }
    Ok(out)
}

/// The observation of a parameter, in the builder's shape: a secret's value by its digest only.
fn observe(o: Ownership, meta: &ParameterMetadata, p: &Parameter) -> Option<Observed> {
    let name = meta.name()?;
    let kind = p.r#type().or(meta.r#type())?;
    let mut props = Props::default();
    props
        .set("name", name)
        .set("type", kind.as_str())
        .set("description", meta.description().filter(|d| !d.is_empty()))
        .set("arn", p.arn().or(meta.arn()))
        .tags(&o.user);
    let value = p.value().unwrap_or_default();
    match kind {
        ParameterType::SecureString => {
            props.set(
                "secure_value",
                Value::Sensitive(Sensitive::from_digest(digest_of(value.as_bytes()))),
            );
        }
        ParameterType::StringList => {
            props.set(
                "value",
                Value::List(value.split(',').map(Value::from).collect()),
            );
        }
        _ => {
            props.set("value", value);
        }
    }
    Some(props.observed(o, name))
}

/// The stack's parameters (or the one at `address`), with their tags and values.
async fn read_parameters(
    cx: &Cx<'_>,
    address: Option<&Address>,
) -> Result<Vec<Observed>, ProviderError> {
    let listed = describe(cx, address).await?;
    let tagged: Vec<(ParameterMetadata, Option<Vec<Tag>>)> = futures::stream::iter(listed)
        .map(|meta| async move {
            let tags = match meta.name() {
                Some(n) => tags_of(cx, n).await?,
                None => None,
            };
            Ok::<_, ProviderError>((meta, tags))
        })
        .buffered(CONCURRENT_TAG_READS)
        .try_collect()
        .await?;
    let owned: Vec<(ParameterMetadata, Ownership)> = tagged
        .into_iter()
        .filter_map(|(meta, tags)| {
            let tags = tags?;
            let o = ownership(
                cx.stack,
                SSM_PARAMETER.kind,
                tags.iter().map(|t| (t.key(), t.value())),
            )?;
            match address {
                Some(a) if &o.address != a => None,
                _ => Some((meta, o)),
            }
        })
        .collect();
    let names: Vec<String> = owned
        .iter()
        .filter_map(|(m, _)| m.name().map(str::to_string))
        .collect();
    let values = values_of(cx, &names).await?;
    Ok(owned
        .into_iter()
        .filter_map(|(meta, o)| {
            let p = values.get(meta.name()?)?;
            observe(o, &meta, p)
        })
        .collect())
}

/// The value to send: the secret's plain text (known only to this process) or the plain
/// value, with the plain text to redact from errors.
fn value_of(d: &Resolved) -> Result<(String, Option<String>), ProviderError> {
    match (d.get("secure_value"), d.get("value")) {
        (Some(Value::Sensitive(s)), _) => {
            let plain = s.expose().ok_or_else(|| {
                ProviderError::fatal(
                    "SecretUnknown",
                    format!(
                        "{}: only the digest of the value is known to this process; declare the value",
                        d.address
                    ),
                )
            })?;
            let text = String::from_utf8(plain.to_vec()).map_err(|_| {
                ProviderError::fatal(
                    "InvalidValue",
                    format!("{}: the value is not UTF-8 text", d.address),
                )
            })?;
            Ok((text.clone(), Some(text)))
        }
        (Some(Value::String(s)), _) => Ok((s.clone(), Some(s.clone()))),
        (_, Some(Value::String(s))) => Ok((s.clone(), None)),
        (_, Some(Value::List(items))) => Ok((
            items
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(","),
            None,
        )),
        _ => Err(ProviderError::fatal(
            "NoValue",
            format!("{}: no value", d.address),
        )),
    }
}

/// An error with every occurrence of the secret replaced (AWS's messages carry no request
/// parameters, but a validation message echoing a value must not leak it either).
fn redacted(mut e: ProviderError, secret: Option<&str>) -> ProviderError {
    if let Some(s) = secret.filter(|s| !s.is_empty()) {
        e.message = e.message.replace(s, "(sensitive)");
        e.code = e.code.replace(s, "(sensitive)");
    }
    e
}

fn ssm_tags(tags: &[(String, String)]) -> Result<Vec<Tag>, ProviderError> {
    tags.iter()
        .map(|(k, v)| {
            Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| ProviderError::fatal("ClientError", e.to_string()))
        })
        .collect()
}

/// `PutParameter`: a create (no overwrite, with the tags) or an overwrite of the value.
async fn put(cx: &Cx<'_>, d: &Resolved, overwrite: bool) -> Result<(), ProviderError> {
    let name = req_str(d, "name")?;
    let kind = ParameterType::from(req_str(d, "type")?.as_str());
    let (value, secret) = value_of(d)?;
    let mut req =
        cx.c.ssm
            .put_parameter()
            .name(&name)
            .value(value)
            .r#type(kind)
            .overwrite(overwrite);
    if overwrite {
        // An overwrite keeps nothing it isn't given: send the description, even empty.
        req = req.description(opt_str(d, "description").unwrap_or_default());
    } else {
        req = req
            .set_description(opt_str(d, "description"))
            .set_tags(Some(ssm_tags(&all_tags(cx.stack, d))?));
    }
    req.send()
        .await
        .aws("PutParameter")
        .map(drop)
        .map_err(|e| redacted(e, secret.as_deref()))
}

/// What a parameter has that the builder can't declare (its tier, a customer KMS key, a data
/// type other than text, policies), for import.
fn import_notes(meta: &ParameterMetadata) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(tier) = meta.tier().filter(|t| t.as_str() != "Standard") {
        notes.push(format!(
            "its tier is `{}`: infra declares Standard parameters (an overwrite keeps the tier)",
            tier.as_str()
        ));
    }
    if let Some(key) = meta.key_id().filter(|k| *k != "alias/aws/ssm") {
        notes.push(format!(
            "it is encrypted with the KMS key `{key}`: infra declares no key (AWS's \
             `alias/aws/ssm`); an overwrite of the value would use that one"
        ));
    }
    if let Some(t) = meta.data_type().filter(|t| *t != "text") {
        notes.push(format!(
            "its data type is `{t}`: infra declares `text` parameters"
        ));
    }
    if !meta.policies().is_empty() {
        notes.push(
            "it has parameter policies (expiration, notification): infra declares none".into(),
        );
    }
    notes
}

/// A parameter's properties for import: a `SecureString`'s value is never read (not even
/// decrypted to digest it): the generated declaration reads it from the environment and
/// ignores its changes.
fn unowned_props(meta: &ParameterMetadata, value: Option<&Parameter>, tags: &Unowned) -> Props {
    let mut props = Props::default();
    props
        .set("name", meta.name())
        .set("type", meta.r#type().map(|t| t.as_str()))
        .set("description", meta.description().filter(|d| !d.is_empty()))
        .set("arn", meta.arn().or(value.and_then(|p| p.arn())))
        .tags(&tags.user);
    let text = value.and_then(|p| p.value());
    match meta.r#type() {
        Some(ParameterType::SecureString) => {}
        Some(ParameterType::StringList) => {
            props.set(
                "value",
                text.map(|v| Value::List(v.split(',').map(Value::from).collect())),
            );
        }
        _ => {
            props.set("value", text);
        }
    }
    props
}

/// The values of plain (`String`, `StringList`) parameters by name, never decrypted.
async fn plain_values(
    cx: &Cx<'_>,
    metas: &[&ParameterMetadata],
) -> Result<BTreeMap<String, Parameter>, ProviderError> {
    let names: Vec<String> = metas
        .iter()
        .filter(|m| m.r#type() != Some(&ParameterType::SecureString))
        .filter_map(|m| m.name().map(str::to_string))
        .collect();
    let mut out = BTreeMap::new();
    for batch in names.chunks(GET_BATCH) {
        let got =
            cx.c.ssm_read
                .get_parameters()
                .set_names(Some(batch.to_vec()))
                .with_decryption(false)
                .send()
                .await
                .aws("GetParameters")?;
        for p in got.parameters() {
            if let Some(n) = p.name() {
                out.insert(n.to_string(), p.clone());
            }
        }
    }
    Ok(out)
}

#[async_trait]
impl AwsKind for SsmParameter {
    /// Pages of 50 from DescribeParameters (AWS's largest), the tags of each parameter
    /// (ListTagsForResource, one call each: SSM has no batched form, 8 at once), the values of
    /// the plain ones (GetParameters, 10 names a call, never decrypted). The name filter
    /// applies to the parameter's name; the `vpc` filter doesn't apply to SSM.
    async fn discover(&self, cx: &Cx<'_>, pass: &mut Discovery<'_>) -> Result<(), ProviderError> {
        let mut pages =
            cx.c.ssm_read
                .describe_parameters()
                .max_results(DESCRIBE_PAGE)
                .into_paginator()
                .send();
        while let Some(page) = pages.next().await {
            let page = page.aws("DescribeParameters")?;
            let listed: Vec<ParameterMetadata> = page
                .parameters()
                .iter()
                .filter(|m| m.name().is_some_and(|n| pass.filter.name_matches(n)))
                .cloned()
                .collect();
            let tagged: Vec<(ParameterMetadata, Option<Vec<Tag>>)> = futures::stream::iter(listed)
                .map(|meta| async move {
                    let tags = tags_of(cx, meta.name().unwrap_or_default()).await?;
                    Ok::<_, ProviderError>((meta, tags))
                })
                .buffered(CONCURRENT_TAG_READS)
                .try_collect()
                .await?;
            let unowned: Vec<(ParameterMetadata, Unowned)> = tagged
                .into_iter()
                .filter_map(|(meta, tags)| {
                    let tags = Unowned::of(tags?.iter().map(|t| (t.key(), t.value())))?;
                    pass.matches(meta.name()?, &tags.all)
                        .then_some((meta, tags))
                })
                .collect();
            let metas: Vec<&ParameterMetadata> = unowned.iter().map(|(m, _)| m).collect();
            let values = plain_values(cx, &metas).await?;
            for (meta, tags) in unowned {
                let name = meta.name().unwrap_or_default();
                let props = unowned_props(&meta, values.get(name), &tags);
                let mut found = discovered(
                    &SSM_PARAMETER,
                    name,
                    tags.name.as_deref().or(Some(name)),
                    props,
                );
                found.notes = import_notes(&meta);
                pass.object(found);
            }
        }
        Ok(())
    }

    /// The parameter by name (DescribeParameters with a `Name` equals filter), its tags and,
    /// when plain, its value. A `SecureString`'s value is not read: the declaration import
    /// writes ignores its changes.
    async fn read_unowned(
        &self,
        cx: &Cx<'_>,
        id: &str,
        address: &Address,
    ) -> Result<Option<Observed>, ProviderError> {
        let filter = ParameterStringFilter::builder()
            .key("Name")
            .option("Equals")
            .values(id)
            .build()
            .map_err(|e| ProviderError::fatal("ClientError", e.to_string()))?;
        let out =
            cx.c.ssm_read
                .describe_parameters()
                .parameter_filters(filter)
                .send()
                .await
                .aws("DescribeParameters")?;
        let Some(meta) = out.parameters().iter().find(|m| m.name() == Some(id)) else {
            return Ok(None);
        };
        let Some(tags) = tags_of(cx, id).await? else {
            return Ok(None);
        };
        let tags = Unowned::parse(tags.iter().map(|t| (t.key(), t.value())));
        let values = plain_values(cx, &[meta]).await?;
        let props = unowned_props(meta, values.get(id), &tags);
        Ok(Some(observed_at(address, id, props, &tags)))
    }

    /// AddTagsToResource: `infra:stack` and `infra:id`; the value and other tags stay.
    async fn adopt(
        &self,
        cx: &Cx<'_>,
        current: &Observed,
        to: &Address,
    ) -> Result<Observed, ProviderError> {
        cx.c.ssm
            .add_tags_to_resource()
            .resource_type(ResourceTypeForTagging::Parameter)
            .resource_id(&current.id)
            .set_tags(Some(ssm_tags(&ownership_tags(cx, to))?))
            .send()
            .await
            .aws("AddTagsToResource")?;
        Ok(Observed {
            address: to.clone(),
            ..current.clone()
        })
    }

    async fn read(&self, cx: &Cx<'_>, _: &Listings) -> Result<Vec<Observed>, ProviderError> {
        read_parameters(cx, None).await
    }

    async fn find(&self, cx: &Cx<'_>, a: &Address) -> Result<Option<Observed>, ProviderError> {
        Ok(read_parameters(cx, Some(a)).await?.pop())
    }

    async fn create(
        &self,
        cx: &Cx<'_>,
        _: &OpContext,
        d: &Resolved,
    ) -> Result<Observed, ProviderError> {
        put(cx, d, false).await?;
        let name = req_str(d, "name")?;
        // The ARN holds the account id, which PutParameter doesn't return: read it back (a
        // failure here is retried, and the retry finds the parameter).
        let arn = values_of(cx, std::slice::from_ref(&name))
            .await?
            .get(&name)
            .and_then(|p| p.arn().map(str::to_string));
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
        if changed
            .iter()
            .any(|f| matches!(f.as_str(), "value" | "secure_value" | "description"))
        {
            put(cx, d, true).await?;
        }
        let diff = tag_diff(current, d);
        if !diff.set.is_empty() {
            cx.c.ssm
                .add_tags_to_resource()
                .resource_type(ResourceTypeForTagging::Parameter)
                .resource_id(&current.id)
                .set_tags(Some(ssm_tags(&diff.set)?))
                .send()
                .await
                .aws("AddTagsToResource")?;
        }
        if !diff.remove.is_empty() {
            cx.c.ssm
                .remove_tags_from_resource()
                .resource_type(ResourceTypeForTagging::Parameter)
                .resource_id(&current.id)
                .set_tag_keys(Some(diff.remove))
                .send()
                .await
                .aws("RemoveTagsFromResource")?;
        }
        Ok(updated_from(current, d))
    }

    async fn delete(&self, cx: &Cx<'_>, current: &Observed) -> Result<(), ProviderError> {
        cx.c.ssm
            .delete_parameter()
            .name(&current.id)
            .send()
            .await
            .aws("DeleteParameter")?;
        Ok(())
    }

    fn already_exists_codes(&self) -> &'static [&'static str] {
        &["ParameterAlreadyExists"]
    }
}
