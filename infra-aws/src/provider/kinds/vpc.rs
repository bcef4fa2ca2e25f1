//! `aws_vpc`: the VPC's CIDR block and its two DNS attributes, which AWS exposes only per VPC
//! (`DescribeVpcAttribute`): the one per-object read of the provider.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType, VpcAttributeName};
use infra_core::dsl::{Address, KindSchema};
use infra_core::provider::{Observed, OpContext, ProviderError, Resolved};
use infra_core::registry::KindHandler;

use super::{AwsKind, Listings};
use crate::kinds::network::VPC;
use crate::provider::common::{empty, observed_from, opt_bool, req_str, updated_from, Cx, Props};
use crate::provider::ec2_common::{arn, owned, owned_filters, sync_tags, tag_spec};
use crate::provider::errors::{AwsResult, ProviderResult};
use crate::provider::import::{adopt_ec2, discovered, observed_at, Discovery, Unowned};

/// DNS resolution in the VPC (on by default).
const DNS_SUPPORT: &str = "enable_dns_support";
/// DNS host names for instances (off by default; needs DNS support).
const DNS_HOSTNAMES: &str = "enable_dns_hostnames";

/// The `aws_vpc` handler.
pub(super) struct Vpc;

impl KindHandler for Vpc {
    fn schema(&self) -> &'static KindSchema {
        &VPC
    }
}

async fn vpc_attribute(
    cx: &Cx<'_>,
    id: &str,
    name: VpcAttributeName,
) -> Result<Option<bool>, ProviderError> {
    let out =
        cx.c.ec2_read
            .describe_vpc_attribute()
            .vpc_id(id)
            .attribute(name.clone())
            .send()
            .await
            .aws("DescribeVpcAttribute")?;
    let v = match name {
        VpcAttributeName::EnableDnsSupport => out.enable_dns_support(),
        _ => out.enable_dns_hostnames(),
    };
    Ok(v.and_then(AttributeBooleanValue::value))
}

async fn read_vpcs(cx: &Cx<'_>, address: Option<&Address>) -> Result<Vec<Observed>, ProviderError> {
    let vpcs =
        cx.c.ec2_read
            .describe_vpcs()
            .set_filters(Some(owned_filters(cx, address)))
            .into_paginator()
            .page_size(1000)
            .items()
            .send()
            .try_collect()
            .await
            .aws("DescribeVpcs")?;
    let owned: Vec<_> = vpcs
        .iter()
        .filter_map(|v| Some((v, owned(cx, VPC.kind, v.tags(), address)?)))
        .collect();
    // AWS has no batched read of these two attributes; they are read per VPC, concurrently.
    let attrs = futures::future::try_join_all(owned.iter().map(|(v, _)| async move {
        let id = v.vpc_id().unwrap_or_default();
        tokio::try_join!(
            vpc_attribute(cx, id, VpcAttributeName::EnableDnsSupport),
            vpc_attribute(cx, id, VpcAttributeName::EnableDnsHostnames)
        )
    }))
    .await?;
    Ok(owned
        .into_iter()
        .zip(attrs)
        .map(|((v, o), (support, hostnames))| {
            let id = v.vpc_id().unwrap_or_default();
            vpc_props(cx, v, (support, hostnames), &o.user).observed(o, id)
        })
        .collect())
}

/// A VPC's properties as a read gives them (owned read, discovery and adoption share it).
fn vpc_props(
    cx: &Cx<'_>,
    v: &aws_sdk_ec2::types::Vpc,
    (support, hostnames): (Option<bool>, Option<bool>),
    user: &BTreeMap<String, String>,
) -> Props {
    let id = v.vpc_id().unwrap_or_default();
    let mut p = Props::default();
    p.set("cidr_block", v.cidr_block())
        .set(DNS_SUPPORT, support)
        .set(DNS_HOSTNAMES, hostnames)
        .set("arn", arn(cx, v.owner_id(), "vpc", id))
        .tags(user);
    p
}

/// Both DNS attributes of a VPC.
async fn dns_attributes(
    cx: &Cx<'_>,
    id: &str,
) -> Result<(Option<bool>, Option<bool>), ProviderError> {
    tokio::try_join!(
        vpc_attribute(cx, id, VpcAttributeName::EnableDnsSupport),
        vpc_attribute(cx, id, VpcAttributeName::EnableDnsHostnames)
    )
}

/// The unowned VPC `v`, or why it can't be declared (`None`: owned, or filtered out).
async fn unowned_vpc(
    cx: &Cx<'_>,
    v: &aws_sdk_ec2::types::Vpc,
) -> Result<Option<(Unowned, Props)>, ProviderError> {
    let Some(tags) = Unowned::ec2(v.tags()) else {
        return Ok(None);
    };
    let id = v.vpc_id().unwrap_or_default();
    let attrs = dns_attributes(cx, id).await?;
    let props = vpc_props(cx, v, attrs, &tags.user);
    Ok(Some((tags, props)))
}

/// Why the default VPC isn't declared.
const DEFAULT_VPC: &str = "the region's default VPC, which AWS makes: a declaration would create \
     an ordinary VPC; its objects can still be adopted one by one";

async fn set_vpc_attribute(
    cx: &Cx<'_>,
    id: &str,
    name: &str,
    on: bool,
) -> Result<(), ProviderError> {
    let v = AttributeBooleanValue::builder().value(on).build();
    let req = cx.c.ec2.modify_vpc_attribute().vpc_id(id);
    let req = if name == DNS_SUPPORT {
        req.enable_dns_support(v)
    } else {
        req.enable_dns_hostnames(v)
    };
    req.send().await.aws("ModifyVpcAttribute")?;
    Ok(())
}

#[async_trait]
impl AwsKind for Vpc {
    async fn read(&self, cx: &Cx<'_>, _: &Listings) -> Result<Vec<Observed>, ProviderError> {
        read_vpcs(cx, None).await
    }

    async fn find(&self, cx: &Cx<'_>, a: &Address) -> Result<Option<Observed>, ProviderError> {
        Ok(read_vpcs(cx, Some(a)).await?.pop())
    }

    async fn create(
        &self,
        cx: &Cx<'_>,
        _: &OpContext,
        d: &Resolved,
    ) -> Result<Observed, ProviderError> {
        let out =
            cx.c.ec2
                .create_vpc()
                .cidr_block(req_str(d, "cidr_block")?)
                .tag_specifications(tag_spec(cx, ResourceType::Vpc, d))
                .send()
                .await
                .aws("CreateVpc")?;
        let vpc = out.vpc().ok_or_else(|| empty("CreateVpc"))?;
        let id = vpc.vpc_id().unwrap_or_default().to_string();
        // A new VPC has DNS support on and DNS hostnames off; only differences are sent
        // (support first: hostnames need it).
        for (field, default) in [(DNS_SUPPORT, true), (DNS_HOSTNAMES, false)] {
            let want = opt_bool(d, field).unwrap_or(default);
            if want != default {
                set_vpc_attribute(cx, &id, field, want).await?;
            }
        }
        Ok(observed_from(
            d,
            id.clone(),
            &[("arn", arn(cx, vpc.owner_id(), "vpc", &id))],
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
        // Turning hostnames off must precede turning support off, and support on precede
        // hostnames on.
        let mut fields: Vec<&str> = [DNS_SUPPORT, DNS_HOSTNAMES]
            .into_iter()
            .filter(|f| changed.iter().any(|c| c == f))
            .collect();
        if opt_bool(d, DNS_SUPPORT) == Some(false) {
            fields.reverse();
        }
        for f in fields {
            set_vpc_attribute(
                cx,
                &current.id,
                f,
                opt_bool(d, f).unwrap_or(f == DNS_SUPPORT),
            )
            .await?;
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

    /// Pages of up to 1000 VPCs (`vpc` filter: that one); the DNS attributes are read per
    /// VPC handed over (AWS has no batched read of them). The default VPC is listed as
    /// inexpressible.
    async fn discover(&self, cx: &Cx<'_>, pass: &mut Discovery<'_>) -> Result<(), ProviderError> {
        let req = cx.c.ec2_read.describe_vpcs();
        let req = match &pass.filter.vpc {
            Some(vpc) => req.vpc_ids(vpc),
            None => req.max_results(1000),
        };
        let mut pages = req.into_paginator().send();
        while let Some(page) = pages.next().await {
            // A `vpc` filter naming no VPC finds nothing.
            let Some(page) = page.aws("DescribeVpcs").or_not_found()? else {
                return Ok(());
            };
            for v in page.vpcs() {
                let Some(tags) = Unowned::ec2(v.tags()) else {
                    continue;
                };
                let id = v.vpc_id().unwrap_or_default();
                let name = tags.name.as_deref().unwrap_or(id);
                if !pass.matches(name, &tags.all) {
                    continue;
                }
                if v.is_default() == Some(true) {
                    pass.inexpressible("EC2 default VPC", id, DEFAULT_VPC);
                    continue;
                }
                if let Some((tags, props)) = unowned_vpc(cx, v).await? {
                    pass.object(discovered(&VPC, id, tags.name.as_deref(), props));
                }
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
                .describe_vpcs()
                .vpc_ids(id)
                .send()
                .await
                .aws("DescribeVpcs")
                .or_not_found()?;
        let Some(v) = out.as_ref().and_then(|o| o.vpcs().first()) else {
            return Ok(None);
        };
        let tags = Unowned::ec2_any(v.tags());
        let attrs = dns_attributes(cx, id).await?;
        let props = vpc_props(cx, v, attrs, &tags.user);
        Ok(Some(observed_at(address, id, props, &tags)))
    }

    async fn adopt(
        &self,
        cx: &Cx<'_>,
        current: &Observed,
        to: &Address,
    ) -> Result<Observed, ProviderError> {
        adopt_ec2(cx, current, to).await
    }

    async fn delete(&self, cx: &Cx<'_>, current: &Observed) -> Result<(), ProviderError> {
        // DependencyViolation right after its subnets, gateways or groups went away is AWS
        // settling.
        cx.c.ec2
            .delete_vpc()
            .vpc_id(&current.id)
            .send()
            .await
            .aws_retrying("DeleteVpc", &["DependencyViolation"])?;
        Ok(())
    }
}
