//! `aws_eip`: an Elastic IP in the VPC domain; only its tags change in place.

use async_trait::async_trait;
use aws_sdk_ec2::types::{DomainType, ResourceType};
use infra_core::dsl::{Address, KindSchema};
use infra_core::provider::{Observed, OpContext, ProviderError, Resolved};
use infra_core::registry::KindHandler;
use infra_core::Value;

use super::{AwsKind, Listings};
use crate::kinds::network::ELASTIC_IP;
use crate::provider::common::{empty, observed_from, Cx, Props};
use crate::provider::ec2_common::{owned, owned_filters, tag_spec, update_tags_only};
use crate::provider::errors::AwsResult;

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
            let mut p = Props::default();
            p.set("domain", a.domain().map(|d| d.as_str()))
                .set("public_ip", a.public_ip())
                .tags(&o.user);
            Some(p.observed(o, id))
        })
        .collect())
}

#[async_trait]
impl AwsKind for ElasticIp {
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
