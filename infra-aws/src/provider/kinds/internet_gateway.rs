//! `aws_internet_gateway`: attached to at most one VPC, re-attached in place.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_ec2::types::{AttachmentStatus, Filter, ResourceType};
use infra_core::dsl::{Address, KindSchema};
use infra_core::provider::{Observed, OpContext, ProviderError, Resolved};
use infra_core::registry::KindHandler;
use infra_core::Value;

use super::{AwsKind, Listings};
use crate::kinds::network::INTERNET_GATEWAY;
use crate::provider::common::{empty, observed_from, updated_from, Cx, Props};
use crate::provider::ec2_common::{arn, owned, owned_filters, sync_tags, tag_spec};
use crate::provider::errors::{AwsResult, ProviderResult};
use crate::provider::import::{adopt_ec2, discovered, observed_at, Discovery, Unowned};

/// The `aws_internet_gateway` handler.
pub(super) struct InternetGateway;

impl KindHandler for InternetGateway {
    fn schema(&self) -> &'static KindSchema {
        &INTERNET_GATEWAY
    }
}

async fn read_internet_gateways(
    cx: &Cx<'_>,
    address: Option<&Address>,
) -> Result<Vec<Observed>, ProviderError> {
    let igws =
        cx.c.ec2_read
            .describe_internet_gateways()
            .set_filters(Some(owned_filters(cx, address)))
            .into_paginator()
            .page_size(1000)
            .items()
            .send()
            .try_collect()
            .await
            .aws("DescribeInternetGateways")?;
    Ok(igws
        .iter()
        .filter_map(|g| {
            let o = owned(cx, INTERNET_GATEWAY.kind, g.tags(), address)?;
            let id = g.internet_gateway_id().unwrap_or_default();
            Some(igw_props(cx, g, &o.user).observed(o, id))
        })
        .collect())
}

/// The VPC a gateway is attached to.
fn attached_vpc(g: &aws_sdk_ec2::types::InternetGateway) -> Option<&str> {
    g.attachments()
        .iter()
        .find(|a| {
            !matches!(
                a.state(),
                Some(AttachmentStatus::Detached | AttachmentStatus::Detaching)
            )
        })
        .and_then(|a| a.vpc_id())
}

/// A gateway's properties as a read gives them (owned read, discovery and adoption share it).
fn igw_props(
    cx: &Cx<'_>,
    g: &aws_sdk_ec2::types::InternetGateway,
    user: &BTreeMap<String, String>,
) -> Props {
    let id = g.internet_gateway_id().unwrap_or_default();
    let mut p = Props::default();
    p.set("vpc_id", attached_vpc(g))
        .set("arn", arn(cx, g.owner_id(), "internet-gateway", id))
        .tags(user);
    p
}

async fn attach(cx: &Cx<'_>, id: &str, vpc: &str) -> Result<(), ProviderError> {
    cx.c.ec2
        .attach_internet_gateway()
        .internet_gateway_id(id)
        .vpc_id(vpc)
        .send()
        .await
        .aws("AttachInternetGateway")?;
    Ok(())
}

async fn detach(cx: &Cx<'_>, id: &str, vpc: &str) -> Result<(), ProviderError> {
    // "has some mapped public address(es)" is a DependencyViolation while instances and NAT
    // gateways in the VPC release their public IPs.
    cx.c.ec2
        .detach_internet_gateway()
        .internet_gateway_id(id)
        .vpc_id(vpc)
        .send()
        .await
        .aws_retrying("DetachInternetGateway", &["DependencyViolation"])
        .ok_if(&["Gateway.NotAttached"])
}

#[async_trait]
impl AwsKind for InternetGateway {
    /// Pages of up to 1000 gateways (`vpc` filter: `attachment.vpc-id`).
    async fn discover(&self, cx: &Cx<'_>, pass: &mut Discovery<'_>) -> Result<(), ProviderError> {
        let mut req = cx.c.ec2_read.describe_internet_gateways().max_results(1000);
        if let Some(vpc) = &pass.filter.vpc {
            req = req.filters(
                Filter::builder()
                    .name("attachment.vpc-id")
                    .values(vpc)
                    .build(),
            );
        }
        let mut pages = req.into_paginator().send();
        while let Some(page) = pages.next().await {
            for g in page.aws("DescribeInternetGateways")?.internet_gateways() {
                let Some(tags) = Unowned::ec2(g.tags()) else {
                    continue;
                };
                let id = g.internet_gateway_id().unwrap_or_default();
                if !pass.matches(tags.name.as_deref().unwrap_or(id), &tags.all)
                    || !pass.in_vpc(attached_vpc(g))
                {
                    continue;
                }
                let props = igw_props(cx, g, &tags.user);
                pass.object(discovered(
                    &INTERNET_GATEWAY,
                    id,
                    tags.name.as_deref(),
                    props,
                ));
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
                .describe_internet_gateways()
                .internet_gateway_ids(id)
                .send()
                .await
                .aws("DescribeInternetGateways")
                .or_not_found()?;
        Ok(out
            .as_ref()
            .and_then(|o| o.internet_gateways().first())
            .map(|g| {
                let tags = Unowned::ec2_any(g.tags());
                observed_at(address, id, igw_props(cx, g, &tags.user), &tags)
            }))
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
        read_internet_gateways(cx, None).await
    }

    async fn find(&self, cx: &Cx<'_>, a: &Address) -> Result<Option<Observed>, ProviderError> {
        Ok(read_internet_gateways(cx, Some(a)).await?.pop())
    }

    async fn create(
        &self,
        cx: &Cx<'_>,
        _: &OpContext,
        d: &Resolved,
    ) -> Result<Observed, ProviderError> {
        let out =
            cx.c.ec2
                .create_internet_gateway()
                .tag_specifications(tag_spec(cx, ResourceType::InternetGateway, d))
                .send()
                .await
                .aws("CreateInternetGateway")?;
        let g = out
            .internet_gateway()
            .ok_or_else(|| empty("CreateInternetGateway"))?;
        let id = g.internet_gateway_id().unwrap_or_default().to_string();
        if let Some(vpc) = d.get_str("vpc_id") {
            attach(cx, &id, vpc).await?;
        }
        Ok(observed_from(
            d,
            id.clone(),
            &[("arn", arn(cx, g.owner_id(), "internet-gateway", &id))],
        ))
    }

    async fn update(
        &self,
        cx: &Cx<'_>,
        _: &OpContext,
        current: &Observed,
        d: &Resolved,
        changed: &[String],
    ) -> Result<Observed, ProviderError> {
        if changed.iter().any(|c| c == "vpc_id") {
            if let Some(old) = current.props.get("vpc_id").and_then(Value::as_str) {
                detach(cx, &current.id, old).await?;
            }
            if let Some(new) = d.get_str("vpc_id") {
                attach(cx, &current.id, new).await?;
            }
        }
        sync_tags(cx, &current.id, current, d).await?;
        Ok(updated_from(current, d))
    }

    async fn move_to(
        &self,
        cx: &Cx<'_>,
        current: &Observed,
        to: &Address,
    ) -> Result<Observed, ProviderError> {
        crate::provider::ec2_common::move_to(cx, current, to).await
    }

    async fn delete(&self, cx: &Cx<'_>, current: &Observed) -> Result<(), ProviderError> {
        // Detach from whatever it is attached to now (not only what the plan saw).
        let Some(now) = read_internet_gateways(cx, Some(&current.address))
            .await?
            .pop()
        else {
            return Err(ProviderError::not_found(
                "InvalidInternetGatewayID.NotFound",
                format!("{} is gone", current.id),
            ));
        };
        if let Some(vpc) = now.props.get("vpc_id").and_then(Value::as_str) {
            detach(cx, &now.id, vpc).await?;
        }
        cx.c.ec2
            .delete_internet_gateway()
            .internet_gateway_id(&now.id)
            .send()
            .await
            .aws_retrying("DeleteInternetGateway", &["DependencyViolation"])?;
        Ok(())
    }
}
