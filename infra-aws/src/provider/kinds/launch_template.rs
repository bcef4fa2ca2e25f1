//! `aws_launch_template`: every change is a new version with the full data, made the default
//! (and `$Default`). A read takes the latest version of every template in one call.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_ec2::types::{
    InstanceType, LaunchTemplateBlockDeviceMappingRequest, LaunchTemplateEbsBlockDeviceRequest,
    LaunchTemplateHttpTokensState, LaunchTemplateIamInstanceProfileSpecificationRequest,
    LaunchTemplateInstanceMetadataEndpointState, LaunchTemplateInstanceMetadataOptionsRequest,
    LaunchTemplateTagSpecificationRequest, LaunchTemplateVersion, RequestLaunchTemplateData,
    ResourceType, ResponseLaunchTemplateData, Tag, VolumeType,
};
use infra_core::dsl::{Address, KindSchema};
use infra_core::provider::{Observed, OpContext, ProviderError, Resolved};
use infra_core::registry::KindHandler;
use infra_core::Value;

use super::{AwsKind, Listings};
use crate::kinds::compute::LAUNCH_TEMPLATE;
use crate::provider::common::{
    observed_from, opt_str, req_str, secret_bytes, sensitive, str_list, updated_from, user_tags,
    Cx, Ownership, Props, TAG_NAME, TAG_STACK,
};
use crate::provider::ec2_common::{owned, owned_filters, sync_tags, tag_spec};
use crate::provider::errors::{AwsResult, ProviderResult};
use crate::provider::import::{adopt_ec2, discovered, observed_at, Discovery, Unowned};

/// The `aws_launch_template` handler.
pub(super) struct LaunchTemplate;

impl KindHandler for LaunchTemplate {
    fn schema(&self) -> &'static KindSchema {
        &LAUNCH_TEMPLATE
    }
}

/// Instance metadata hop limit: 2, so containers on the instance (Swarm tasks) reach IMDSv2.
const METADATA_HOP_LIMIT: i32 = 2;

/// The version data of a launch template, in full (AWS doesn't copy a source version reliably
/// everywhere, and a complete version is what makes the template's history readable).
fn template_data(cx: &Cx<'_>, d: &Resolved) -> Result<RequestLaunchTemplateData, ProviderError> {
    let root = d.get("root_volume").and_then(Value::as_map);
    let root_str = |k: &str| root.and_then(|m| m.get(k)).and_then(Value::as_str);
    let ebs = LaunchTemplateEbsBlockDeviceRequest::builder()
        .set_volume_size(
            root.and_then(|m| m.get("size_gb"))
                .and_then(Value::as_i64)
                .map(|s| s as i32),
        )
        .set_volume_type(root_str("type").map(VolumeType::from))
        .set_encrypted(
            root.and_then(|m| m.get("encrypted"))
                .and_then(Value::as_bool),
        )
        .delete_on_termination(true)
        .build();
    // Instances and their volumes get the stack's tag, their name and the user's tags (not
    // `infra:id`: they are not objects the stack declares).
    let mut tags = vec![
        Tag::builder().key(TAG_STACK).value(cx.stack).build(),
        Tag::builder()
            .key(TAG_NAME)
            .value(cx.physical_name(&d.address))
            .build(),
    ];
    tags.extend(
        user_tags(d)
            .into_iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build()),
    );
    let tag_specs = [ResourceType::Instance, ResourceType::Volume]
        .into_iter()
        .map(|rt| {
            LaunchTemplateTagSpecificationRequest::builder()
                .resource_type(rt)
                .set_tags(Some(tags.clone()))
                .build()
        })
        .collect();
    Ok(RequestLaunchTemplateData::builder()
        .image_id(req_str(d, "image_id")?)
        .instance_type(InstanceType::from(req_str(d, "instance_type")?.as_str()))
        .set_key_name(opt_str(d, "key_name"))
        .set_user_data(secret_bytes(d, "user_data").map(aws_smithy_types::base64::encode))
        .set_security_group_ids(Some(str_list(d, "security_group_ids")))
        .block_device_mappings(
            LaunchTemplateBlockDeviceMappingRequest::builder()
                .set_device_name(root_str("device_name").map(str::to_string))
                .ebs(ebs)
                .build(),
        )
        .metadata_options(
            LaunchTemplateInstanceMetadataOptionsRequest::builder()
                .http_tokens(LaunchTemplateHttpTokensState::from(
                    d.get_str("metadata_http_tokens").unwrap_or("required"),
                ))
                .http_endpoint(LaunchTemplateInstanceMetadataEndpointState::Enabled)
                .http_put_response_hop_limit(METADATA_HOP_LIMIT)
                .build(),
        )
        .set_iam_instance_profile(opt_str(d, "instance_profile_arn").map(|arn| {
            LaunchTemplateIamInstanceProfileSpecificationRequest::builder()
                .arn(arn)
                .build()
        }))
        .set_tag_specifications(Some(tag_specs))
        .build())
}

/// The declared fields of a version's data, in the builder's shapes.
fn data_props(p: &mut Props, data: &ResponseLaunchTemplateData) {
    p.set("image_id", data.image_id())
        .set("instance_type", data.instance_type().map(|t| t.as_str()))
        .set("key_name", data.key_name())
        .set(
            "user_data",
            data.user_data()
                .and_then(|b| aws_smithy_types::base64::decode(b).ok())
                .map(sensitive),
        )
        .strs(
            "security_group_ids",
            data.security_group_ids().iter().cloned(),
        )
        .set(
            "instance_profile_arn",
            data.iam_instance_profile().and_then(|i| i.arn()),
        )
        .set(
            "metadata_http_tokens",
            data.metadata_options()
                .and_then(|m| m.http_tokens())
                .map(|t| t.as_str())
                .unwrap_or("optional"),
        );
    if let Some(m) = data.block_device_mappings().first() {
        let mut root = BTreeMap::new();
        if let Some(dn) = m.device_name() {
            root.insert("device_name".to_string(), Value::from(dn));
        }
        if let Some(ebs) = m.ebs() {
            if let Some(s) = ebs.volume_size() {
                root.insert("size_gb".to_string(), Value::from(s));
            }
            if let Some(t) = ebs.volume_type() {
                root.insert("type".to_string(), Value::from(t.as_str()));
            }
            root.insert(
                "encrypted".to_string(),
                Value::Bool(ebs.encrypted().unwrap_or(false)),
            );
        }
        p.set("root_volume", Value::Map(root));
    }
}

/// The page size of the launch template listings: AWS's maximum for both.
const LAUNCH_TEMPLATE_PAGE: i32 = 200;

async fn read_templates(
    cx: &Cx<'_>,
    address: Option<&Address>,
) -> Result<Vec<Observed>, ProviderError> {
    let templates =
        cx.c.ec2_read
            .describe_launch_templates()
            .set_filters(Some(owned_filters(cx, address)))
            .into_paginator()
            // The largest page AWS allows. Without a page size moto answers the first 15
            // templates and no NextToken: a stack with more would re-plan their creation.
            .page_size(LAUNCH_TEMPLATE_PAGE)
            .items()
            .send()
            .try_collect()
            .await
            .aws("DescribeLaunchTemplates")?;
    let owned: Vec<(&aws_sdk_ec2::types::LaunchTemplate, Ownership)> = templates
        .iter()
        .filter_map(|t| Some((t, owned(cx, LAUNCH_TEMPLATE.kind, t.tags(), address)?)))
        .collect();
    if owned.is_empty() {
        return Ok(Vec::new());
    }
    // The latest version of every template in one (paginated) call: AWS describes the latest
    // versions of all templates when no template is named. Looking one up names it.
    let req =
        cx.c.ec2_read
            .describe_launch_template_versions()
            .versions("$Latest");
    let req = match (address, owned.first()) {
        (Some(_), Some((t, _))) => {
            req.set_launch_template_id(t.launch_template_id().map(str::to_string))
        }
        _ => req,
    };
    let versions: Vec<LaunchTemplateVersion> = req
        .into_paginator()
        // As above: moto truncates to 15 versions (of all the region's templates) without one.
        .page_size(LAUNCH_TEMPLATE_PAGE)
        .items()
        .send()
        .try_collect()
        .await
        .aws("DescribeLaunchTemplateVersions")?;
    Ok(owned
        .into_iter()
        .filter_map(|(t, o)| {
            let id = t.launch_template_id()?;
            let latest = t.latest_version_number()?;
            let v = versions
                .iter()
                .find(|v| v.launch_template_id() == Some(id) && v.version_number() == Some(latest));
            Some(template_props(v, latest, &o.user).observed(o, id))
        })
        .collect())
}

/// A template's properties as a read gives them, from its latest version (owned read,
/// discovery and adoption share it).
fn template_props(
    latest_version: Option<&LaunchTemplateVersion>,
    latest: i64,
    user: &BTreeMap<String, String>,
) -> Props {
    let mut p = Props::default();
    if let Some(data) = latest_version.and_then(LaunchTemplateVersion::launch_template_data) {
        data_props(&mut p, data);
    }
    p.set("latest_version", latest).tags(user);
    p
}

/// The latest version of template `id`.
async fn latest_version(
    cx: &Cx<'_>,
    id: &str,
) -> Result<Option<LaunchTemplateVersion>, ProviderError> {
    let out =
        cx.c.ec2_read
            .describe_launch_template_versions()
            .launch_template_id(id)
            .versions("$Latest")
            .send()
            .await
            .aws("DescribeLaunchTemplateVersions")?;
    Ok(out.launch_template_versions().first().cloned())
}

/// Notes on the parts of a version infra can't declare.
fn template_notes(v: &LaunchTemplateVersion) -> Vec<String> {
    let mut notes = Vec::new();
    let Some(d) = v.launch_template_data() else {
        return notes;
    };
    if d.block_device_mappings().len() > 1 {
        notes.push(format!(
            "{} block device mappings: infra declares the root volume only",
            d.block_device_mappings().len()
        ));
    }
    if !d.network_interfaces().is_empty() {
        notes.push("network interfaces: infra declares security groups only".to_string());
    }
    if d.instance_market_options().is_some() {
        notes.push("instance market (spot) options".to_string());
    }
    notes
}

#[async_trait]
impl AwsKind for LaunchTemplate {
    /// Pages of the latest versions of every template (200, the API's largest), each page's
    /// templates then described together for their tags (another call per page). A template
    /// lives in no VPC: the `vpc` filter keeps those with a security group of the VPC.
    async fn discover(&self, cx: &Cx<'_>, pass: &mut Discovery<'_>) -> Result<(), ProviderError> {
        let mut pages =
            cx.c.ec2_read
                .describe_launch_template_versions()
                .versions("$Latest")
                .max_results(LAUNCH_TEMPLATE_PAGE)
                .into_paginator()
                .send();
        while let Some(page) = pages.next().await {
            let page = page.aws("DescribeLaunchTemplateVersions")?;
            let versions = page.launch_template_versions();
            let ids: Vec<String> = versions
                .iter()
                .filter_map(|v| v.launch_template_id().map(str::to_string))
                .collect();
            if ids.is_empty() {
                continue;
            }
            let templates =
                cx.c.ec2_read
                    .describe_launch_templates()
                    .set_launch_template_ids(Some(ids))
                    .send()
                    .await
                    .aws("DescribeLaunchTemplates")?;
            for t in templates.launch_templates() {
                let Some(tags) = Unowned::ec2(t.tags()) else {
                    continue;
                };
                let id = t.launch_template_id().unwrap_or_default();
                let name = t.launch_template_name().unwrap_or(id);
                let latest = t.latest_version_number().unwrap_or(1);
                let v = versions.iter().find(|v| v.launch_template_id() == Some(id));
                let groups = v
                    .and_then(|v| v.launch_template_data())
                    .map(|d| d.security_group_ids().to_vec())
                    .unwrap_or_default();
                if !pass.matches(name, &tags.all)
                    || !pass.refers_to_seen(groups.iter().map(String::as_str))
                {
                    continue;
                }
                let mut found = discovered(
                    &LAUNCH_TEMPLATE,
                    id,
                    Some(name),
                    template_props(v, latest, &tags.user),
                );
                found.notes = v.map(template_notes).unwrap_or_default();
                pass.object(found);
            }
        }
        Ok(())
    }

    async fn read_unowned(
        &self,
        cx: &Cx<'_>,
        id: &str,
        address: &Address,
    ) -> Result<Option<Observed>, ProviderError> {
        let out =
            cx.c.ec2_read
                .describe_launch_templates()
                .launch_template_ids(id)
                .send()
                .await
                .aws("DescribeLaunchTemplates")
                .or_not_found()?;
        let Some(t) = out.as_ref().and_then(|o| o.launch_templates().first()) else {
            return Ok(None);
        };
        let tags = Unowned::ec2_any(t.tags());
        let v = latest_version(cx, id).await?;
        let latest = t.latest_version_number().unwrap_or(1);
        Ok(Some(observed_at(
            address,
            id,
            template_props(v.as_ref(), latest, &tags.user),
            &tags,
        )))
    }

    async fn adopt(
        &self,
        cx: &Cx<'_>,
        current: &Observed,
        to: &Address,
    ) -> Result<Observed, ProviderError> {
        adopt_ec2(cx, current, to).await
    }
    async fn read(&self, cx: &Cx<'_>, _: &Listings) -> Result<Vec<Observed>, ProviderError> {
        read_templates(cx, None).await
    }

    async fn find(&self, cx: &Cx<'_>, a: &Address) -> Result<Option<Observed>, ProviderError> {
        Ok(read_templates(cx, Some(a)).await?.pop())
    }

    async fn create(
        &self,
        cx: &Cx<'_>,
        op: &OpContext,
        d: &Resolved,
    ) -> Result<Observed, ProviderError> {
        let out =
            cx.c.ec2
                .create_launch_template()
                .launch_template_name(cx.physical_name(&d.address))
                .client_token(&op.idempotency_token)
                .launch_template_data(template_data(cx, d)?)
                .tag_specifications(tag_spec(cx, ResourceType::LaunchTemplate, d))
                .send()
                .await
                .aws("CreateLaunchTemplate")?;
        let t = out.launch_template().ok_or_else(|| {
            ProviderError::retryable("EmptyResponse", "CreateLaunchTemplate: no template")
        })?;
        Ok(observed_from(
            d,
            t.launch_template_id().unwrap_or_default(),
            &[(
                "latest_version",
                Value::from(t.latest_version_number().unwrap_or(1)),
            )],
        ))
    }

    async fn update(
        &self,
        cx: &Cx<'_>,
        op: &OpContext,
        current: &Observed,
        d: &Resolved,
        changed: &[String],
    ) -> Result<Observed, ProviderError> {
        let mut obs = updated_from(current, d);
        // Tags are part of the version data too (they go on instances and volumes).
        if !changed.is_empty() {
            let out =
                cx.c.ec2
                    .create_launch_template_version()
                    .launch_template_id(&current.id)
                    .client_token(format!("{}-v", op.idempotency_token))
                    .launch_template_data(template_data(cx, d)?)
                    .send()
                    .await
                    .aws("CreateLaunchTemplateVersion")?;
            let version = out
                .launch_template_version()
                .and_then(LaunchTemplateVersion::version_number)
                .ok_or_else(|| {
                    ProviderError::retryable(
                        "EmptyResponse",
                        "CreateLaunchTemplateVersion: no version",
                    )
                })?;
            // `$Default` follows too, for anything launched without a version.
            cx.c.ec2
                .modify_launch_template()
                .launch_template_id(&current.id)
                .default_version(version.to_string())
                .send()
                .await
                .aws("ModifyLaunchTemplate")?;
            obs.props
                .insert("latest_version".to_string(), Value::from(version));
        }
        sync_tags(cx, &current.id, current, d).await?;
        Ok(obs)
    }

    async fn delete(&self, cx: &Cx<'_>, current: &Observed) -> Result<(), ProviderError> {
        cx.c.ec2
            .delete_launch_template()
            .launch_template_id(&current.id)
            .send()
            .await
            .aws("DeleteLaunchTemplate")?;
        Ok(())
    }
}
