//! `aws_eip`: an Elastic IP in the VPC domain; only its tags change in place.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use aws_sdk_ec2::types::{DomainType, Filter, ResourceType};
use infra_core::dsl::{Address, KindSchema};
use infra_core::provider::{Observed, OpContext, ProviderError, Resolved};
use infra_core::registry::KindHandler;
use infra_core::Value;

use super::{AwsKind, Listings};
use crate::kinds::network::ELASTIC_IP;
use crate::provider::common::{empty, observed_from, Cx, Props};
use crate::provider::ec2_common::{owned, owned_filters, tag_spec, update_tags_only};
use crate::provider::errors::{AwsResult, ProviderResult};
use crate::provider::import::{adopt_ec2, discovered, observed_at, Discovery, Unowned};

/// The `aws_eip` handler.
pub(super) struct ElasticIp;

impl KindHandler for ElasticIp {
    fn schema(&self) -> &'static KindSchema {
        &ELASTIC_IP
    }
}

async fn read_eips(cx: &Cx<'_>, address: Option<&Address>) -> Result<Vec<Observed>, ProviderError> {
    // DescribeAddresses is not paginated: one call returns every address of the region.
    let out =
        cx.c.ec2_read
            .describe_addresses()
            .set_filters(Some(owned_filters(cx, address)))
            .send()
            .await
            .aws("DescribeAddresses")?;
    Ok(out
        .addresses()
        .iter()
        .filter_map(|a| {
            let o = owned(cx, ELASTIC_IP.kind, a.tags(), address)?;
            let id = a.allocation_id()?;
            Some(eip_props(a, &o.user).observed(o, id))
        })
        .collect())
}

/// An address's properties as a read gives them (owned read, discovery and adoption share it).
fn eip_props(a: &aws_sdk_ec2::types::Address, user: &BTreeMap<String, String>) -> Props {
    let mut p = Props::default();
    p.set("domain", a.domain().map(|d| d.as_str()))
        .set("public_ip", a.public_ip())
        .tags(user);
    p
}

/// The allocation ids of the NAT gateways in `vpc`: the addresses the `vpc` filter keeps.
async fn nat_allocations(cx: &Cx<'_>, vpc: &str) -> Result<BTreeSet<String>, ProviderError> {
    let mut ids = BTreeSet::new();
    let mut pages =
        cx.c.ec2_read
            .describe_nat_gateways()
            .filter(Filter::builder().name("vpc-id").values(vpc).build())
            .max_results(1000)
            .into_paginator()
            .send();
    while let Some(page) = pages.next().await {
        for n in page.aws("DescribeNatGateways")?.nat_gateways() {
            ids.extend(
                n.nat_gateway_addresses()
                    .iter()
                    .filter_map(|a| a.allocation_id().map(str::to_string)),
            );
        }
    }
    Ok(ids)
}

#[async_trait]
impl AwsKind for ElasticIp {
    /// One DescribeAddresses call (it has no pages). With the `vpc` filter: the addresses of
    /// the VPC's NAT gateways (an address lives in no VPC). EC2-Classic addresses are listed
    /// as inexpressible.
    async fn discover(&self, cx: &Cx<'_>, pass: &mut Discovery<'_>) -> Result<(), ProviderError> {
        let keep = match &pass.filter.vpc {
            Some(vpc) => Some(nat_allocations(cx, vpc).await?),
            None => None,
        };
        let out =
            cx.c.ec2_read
                .describe_addresses()
                .send()
                .await
                .aws("DescribeAddresses")?;
        for a in out.addresses() {
            let Some(tags) = Unowned::ec2(a.tags()) else {
                continue;
            };
            let Some(id) = a.allocation_id() else {
                pass.inexpressible(
                    "EC2-Classic Elastic IP",
                    a.public_ip().unwrap_or("?"),
                    "infra declares VPC addresses only",
                );
                continue;
            };
            if !pass.matches(tags.name.as_deref().unwrap_or(id), &tags.all)
                || keep.as_ref().is_some_and(|k| !k.contains(id))
            {
                continue;
            }
            let mut found = discovered(
                &ELASTIC_IP,
                id,
                tags.name.as_deref(),
                eip_props(a, &tags.user),
            );
            if let Some(ip) = a.public_ip() {
                found.aliases.push(ip.to_string());
            }
            pass.object(found);
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
                .describe_addresses()
                .allocation_ids(id)
                .send()
                .await
                .aws("DescribeAddresses")
                .or_not_found()?;
        Ok(out.as_ref().and_then(|o| o.addresses().first()).map(|a| {
            let tags = Unowned::ec2_any(a.tags());
            observed_at(address, id, eip_props(a, &tags.user), &tags)
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
        read_eips(cx, None).await
    }

    async fn find(&self, cx: &Cx<'_>, a: &Address) -> Result<Option<Observed>, ProviderError> {
        Ok(read_eips(cx, Some(a)).await?.pop())
    }

    async fn create(
        &self,
        cx: &Cx<'_>,
        _: &OpContext,
        d: &Resolved,
    ) -> Result<Observed, ProviderError> {
        let out =
            cx.c.ec2
                .allocate_address()
                .domain(DomainType::Vpc)
                .tag_specifications(tag_spec(cx, ResourceType::ElasticIp, d))
                .send()
                .await
                .aws("AllocateAddress")?;
        let id = out
            .allocation_id()
            .ok_or_else(|| empty("AllocateAddress"))?
            .to_string();
        Ok(observed_from(
            d,
            id,
            &[("public_ip", Value::from(out.public_ip()))],
        ))
    }

    async fn update(
        &self,
        cx: &Cx<'_>,
        _: &OpContext,
        current: &Observed,
        d: &Resolved,
        _: &[String],
    ) -> Result<Observed, ProviderError> {
        update_tags_only(cx, current, d).await
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
        // Still associated while the NAT gateway that used it finishes deleting.
        cx.c.ec2
            .release_address()
            .allocation_id(&current.id)
            .send()
            .await
            .aws_retrying("ReleaseAddress", &["InvalidIPAddress.InUse", "AuthFailure"])?;
        Ok(())
    }
}
