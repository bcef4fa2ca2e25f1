//! `aws_subnet`: placement is fixed; public IPs on launch can change in place.

use async_trait::async_trait;
use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType};
use infra_core::dsl::{Address, KindSchema};
use infra_core::provider::{Observed, OpContext, ProviderError, Resolved};
use infra_core::registry::KindHandler;
use infra_core::Value;

use super::{AwsKind, Listings};
use crate::kinds::network::SUBNET;
use crate::provider::common::{empty, observed_from, opt_bool, req_str, updated_from, Cx, Props};
use crate::provider::ec2_common::{owned, owned_filters, sync_tags, tag_spec};
use crate::provider::errors::AwsResult;

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
            let mut p = Props::default();
            p.set("vpc_id", s.vpc_id())
                .set("cidr_block", s.cidr_block())
                .set("availability_zone", s.availability_zone())
                .set(MAP_PUBLIC_IP, s.map_public_ip_on_launch().unwrap_or(false))
                .set("arn", s.subnet_arn())
                .tags(&o.user);
            Some(p.observed(o, id))
        })
        .collect())
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
