//! `aws_subnet`: placement is fixed; public IPs on launch can change in place.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_ec2::types::{AttributeBooleanValue, Filter, ResourceType};
use infra_core::dsl::{Address, KindSchema};
use infra_core::provider::{Observed, OpContext, ProviderError, Resolved};
use infra_core::registry::KindHandler;
use infra_core::Value;

use super::{AwsKind, Listings};
use crate::kinds::network::SUBNET;
use crate::provider::common::{empty, observed_from, opt_bool, req_str, updated_from, Cx, Props};
use crate::provider::ec2_common::{owned, owned_filters, sync_tags, tag_spec};
use crate::provider::errors::{AwsResult, ProviderResult};
use crate::provider::import::{adopt_ec2, discovered, observed_at, Discovery, Unowned};

const MAP_PUBLIC_IP: &str = "map_public_ip_on_launch";

/// The `aws_subnet` handler.
pub(super) struct Subnet;

impl KindHandler for Subnet {
    fn schema(&self) -> &'static KindSchema {
        &SUBNET
    }
}

async fn read_subnets(
    cx: &Cx<'_>,
    address: Option<&Address>,
) -> Result<Vec<Observed>, ProviderError> {
    let subnets =
        cx.c.ec2_read
            .describe_subnets()
            .set_filters(Some(owned_filters(cx, address)))
            .into_paginator()
            .page_size(1000)
            .items()
            .send()
            .try_collect()
            .await
            .aws("DescribeSubnets")?;
    Ok(subnets
        .iter()
        .filter_map(|s| {
            let o = owned(cx, SUBNET.kind, s.tags(), address)?;
            let id = s.subnet_id().unwrap_or_default();
            Some(subnet_props(s, &o.user).observed(o, id))
        })
        .collect())
}

/// A subnet's properties as a read gives them (owned read, discovery and adoption share it).
fn subnet_props(s: &aws_sdk_ec2::types::Subnet, user: &BTreeMap<String, String>) -> Props {
    let mut p = Props::default();
    p.set("vpc_id", s.vpc_id())
        .set("cidr_block", s.cidr_block())
        .set("availability_zone", s.availability_zone())
        .set(MAP_PUBLIC_IP, s.map_public_ip_on_launch().unwrap_or(false))
        .set("arn", s.subnet_arn())
        .tags(user);
    p
}

async fn set_map_public_ip(cx: &Cx<'_>, id: &str, on: bool) -> Result<(), ProviderError> {
    cx.c.ec2
        .modify_subnet_attribute()
        .subnet_id(id)
        .map_public_ip_on_launch(AttributeBooleanValue::builder().value(on).build())
        .send()
        .await
        .aws("ModifySubnetAttribute")?;
    Ok(())
}

#[async_trait]
impl AwsKind for Subnet {
    async fn read(&self, cx: &Cx<'_>, _: &Listings) -> Result<Vec<Observed>, ProviderError> {
        read_subnets(cx, None).await
    }

    async fn find(&self, cx: &Cx<'_>, a: &Address) -> Result<Option<Observed>, ProviderError> {
        Ok(read_subnets(cx, Some(a)).await?.pop())
    }

    async fn create(
        &self,
        cx: &Cx<'_>,
        _: &OpContext,
        d: &Resolved,
    ) -> Result<Observed, ProviderError> {
        let out =
            cx.c.ec2
                .create_subnet()
                .vpc_id(req_str(d, "vpc_id")?)
                .cidr_block(req_str(d, "cidr_block")?)
                .availability_zone(req_str(d, "availability_zone")?)
                .tag_specifications(tag_spec(cx, ResourceType::Subnet, d))
                .send()
                .await
                .aws("CreateSubnet")?;
        let s = out.subnet().ok_or_else(|| empty("CreateSubnet"))?;
        let id = s.subnet_id().unwrap_or_default().to_string();
        if opt_bool(d, MAP_PUBLIC_IP) == Some(true) {
            set_map_public_ip(cx, &id, true).await?;
        }
        Ok(observed_from(
            d,
            id,
            &[("arn", Value::from(s.subnet_arn()))],
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
        if changed.iter().any(|c| c == MAP_PUBLIC_IP) {
            set_map_public_ip(cx, &current.id, opt_bool(d, MAP_PUBLIC_IP).unwrap_or(false)).await?;
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

    /// Pages of up to 1000 subnets (`vpc` filter: the `vpc-id` filter). A default VPC's
    /// default subnets are listed as inexpressible.
    async fn discover(&self, cx: &Cx<'_>, pass: &mut Discovery<'_>) -> Result<(), ProviderError> {
        let mut req = cx.c.ec2_read.describe_subnets().max_results(1000);
        if let Some(vpc) = &pass.filter.vpc {
            req = req.filters(Filter::builder().name("vpc-id").values(vpc).build());
        }
        let mut pages = req.into_paginator().send();
        while let Some(page) = pages.next().await {
            for s in page.aws("DescribeSubnets")?.subnets() {
                let Some(tags) = Unowned::ec2(s.tags()) else {
                    continue;
                };
                let id = s.subnet_id().unwrap_or_default();
                if !pass.matches(tags.name.as_deref().unwrap_or(id), &tags.all) {
                    continue;
                }
                if s.default_for_az() == Some(true) {
                    pass.inexpressible(
                        "EC2 default subnet",
                        id,
                        "a default VPC's subnet, which AWS makes with it",
                    );
                    continue;
                }
                let props = subnet_props(s, &tags.user);
                pass.object(discovered(&SUBNET, id, tags.name.as_deref(), props));
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
                .describe_subnets()
                .subnet_ids(id)
                .send()
                .await
                .aws("DescribeSubnets")
                .or_not_found()?;
        Ok(out.as_ref().and_then(|o| o.subnets().first()).map(|s| {
            let tags = Unowned::ec2_any(s.tags());
            observed_at(address, id, subnet_props(s, &tags.user), &tags)
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

    async fn delete(&self, cx: &Cx<'_>, current: &Observed) -> Result<(), ProviderError> {
        // Network interfaces of terminated instances or a deleted NAT gateway linger for a
        // while.
        cx.c.ec2
            .delete_subnet()
            .subnet_id(&current.id)
            .send()
            .await
            .aws_retrying("DeleteSubnet", &["DependencyViolation"])?;
        Ok(())
    }
}
