//! `aws_nat_gateway`: created with the reconciler's idempotency token, then waited for until
//! available (routes to a pending gateway are refused); deleted and waited for until gone (its
//! Elastic IP and subnet can go only then). Only its tags change in place.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_ec2::types::{ConnectivityType, Filter, NatGatewayState, ResourceType};
use infra_core::dsl::{Address, KindSchema};
use infra_core::provider::{Observed, OpContext, ProviderError, Resolved};
use infra_core::registry::KindHandler;
use infra_core::retry::{poll, Probe};

use super::{AwsKind, Listings};
use crate::kinds::network::NAT_GATEWAY;
use crate::provider::common::{empty, observed_from, req_str, Cx, Props};
use crate::provider::ec2_common::{owned, owned_filters, tag_spec, update_tags_only};
use crate::provider::errors::{AwsResult, ProviderResult};
use crate::provider::import::{adopt_ec2, discovered, observed_at, Discovery, Unowned};

/// The `aws_nat_gateway` handler.
pub(super) struct NatGateway;

impl KindHandler for NatGateway {
    fn schema(&self) -> &'static KindSchema {
        &NAT_GATEWAY
    }
}

fn nat_live(state: Option<&NatGatewayState>) -> bool {
    matches!(
        state,
        Some(NatGatewayState::Pending | NatGatewayState::Available)
    )
}

async fn read_nat_gateways(
    cx: &Cx<'_>,
    address: Option<&Address>,
) -> Result<Vec<Observed>, ProviderError> {
    let mut filters = owned_filters(cx, address);
    filters.push(
        Filter::builder()
            .name("state")
            .values("pending")
            .values("available")
            .build(),
    );
    let nats =
        cx.c.ec2_read
            .describe_nat_gateways()
            .set_filter(Some(filters))
            .into_paginator()
            .page_size(1000)
            .items()
            .send()
            .try_collect()
            .await
            .aws("DescribeNatGateways")?;
    // Deleted gateways stay visible for about an hour: only live ones count.
    Ok(nats
        .iter()
        .filter(|n| nat_live(n.state()))
        .filter_map(|n| {
            let o = owned(cx, NAT_GATEWAY.kind, n.tags(), address)?;
            let id = n.nat_gateway_id().unwrap_or_default();
            Some(nat_props(n, &o.user).observed(o, id))
        })
        .collect())
}

/// A gateway's properties as a read gives them (owned read, discovery and adoption share it).
fn nat_props(n: &aws_sdk_ec2::types::NatGateway, user: &BTreeMap<String, String>) -> Props {
    let mut p = Props::default();
    p.set("subnet_id", n.subnet_id())
        .set(
            "allocation_id",
            n.nat_gateway_addresses()
                .iter()
                .find_map(|a| a.allocation_id()),
        )
        .set(
            "connectivity_type",
            n.connectivity_type()
                .map(|c| c.as_str())
                .unwrap_or("public"),
        )
        .tags(user);
    p
}

/// The gateway's state and, when it failed, why (`None`: no such gateway).
async fn nat_state(
    cx: &Cx<'_>,
    id: &str,
) -> Result<Option<(NatGatewayState, String)>, ProviderError> {
    let out =
        cx.c.ec2_read
            .describe_nat_gateways()
            .nat_gateway_ids(id)
            .send()
            .await
            .aws("DescribeNatGateways")
            .or_not_found()?;
    Ok(out.and_then(|o| {
        o.nat_gateways().first().and_then(|n| {
            n.state().map(|s| {
                (
                    s.clone(),
                    format!(
                        "{} {}",
                        n.failure_code().unwrap_or(""),
                        n.failure_message().unwrap_or("")
                    ),
                )
            })
        })
    }))
}

/// Releases what an endpoint kept of the gateway's addresses after its deletion: AWS drops
/// the Elastic IP's association with the gateway's interface; an endpoint that keeps it (moto)
/// would make the address unusable for a replacement gateway. `addresses` are the gateway's
/// (allocation id, network interface) pairs.
async fn release_stale_associations(
    cx: &Cx<'_>,
    addresses: &[(String, String)],
) -> Result<(), ProviderError> {
    if addresses.is_empty() {
        return Ok(());
    }
    let out =
        cx.c.ec2_read
            .describe_addresses()
            .set_allocation_ids(Some(addresses.iter().map(|(a, _)| a.clone()).collect()))
            .send()
            .await
            .aws("DescribeAddresses")
            .or_not_found()?;
    for a in out.iter().flat_map(|o| o.addresses()) {
        let stale = addresses.iter().any(|(alloc, eni)| {
            a.allocation_id() == Some(alloc.as_str())
                && a.network_interface_id() == Some(eni.as_str())
        });
        if let (true, Some(assoc)) = (stale, a.association_id()) {
            cx.c.ec2
                .disassociate_address()
                .association_id(assoc)
                .send()
                .await
                .aws("DisassociateAddress")
                .ok_if(&["InvalidAssociationID.NotFound"])?;
        }
    }
    Ok(())
}

#[async_trait]
impl AwsKind for NatGateway {
    /// Pages of up to 1000 live gateways (`vpc` filter: `vpc-id`).
    async fn discover(&self, cx: &Cx<'_>, pass: &mut Discovery<'_>) -> Result<(), ProviderError> {
        let mut req =
            cx.c.ec2_read
                .describe_nat_gateways()
                .max_results(1000)
                .filter(
                    Filter::builder()
                        .name("state")
                        .values("pending")
                        .values("available")
                        .build(),
                );
        if let Some(vpc) = &pass.filter.vpc {
            req = req.filter(Filter::builder().name("vpc-id").values(vpc).build());
        }
        let mut pages = req.into_paginator().send();
        while let Some(page) = pages.next().await {
            for n in page.aws("DescribeNatGateways")?.nat_gateways() {
                let Some(tags) = Unowned::ec2(n.tags()) else {
                    continue;
                };
                let id = n.nat_gateway_id().unwrap_or_default();
                if !nat_live(n.state())
                    || !pass.matches(tags.name.as_deref().unwrap_or(id), &tags.all)
                    || !pass.in_vpc(n.vpc_id())
                {
                    continue;
                }
                let props = nat_props(n, &tags.user);
                pass.object(discovered(&NAT_GATEWAY, id, tags.name.as_deref(), props));
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
                .describe_nat_gateways()
                .nat_gateway_ids(id)
                .send()
                .await
                .aws("DescribeNatGateways")
                .or_not_found()?;
        Ok(out
            .as_ref()
            .and_then(|o| o.nat_gateways().iter().find(|n| nat_live(n.state())))
            .map(|n| {
                let tags = Unowned::ec2_any(n.tags());
                observed_at(address, id, nat_props(n, &tags.user), &tags)
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
        read_nat_gateways(cx, None).await
    }

    async fn find(&self, cx: &Cx<'_>, a: &Address) -> Result<Option<Observed>, ProviderError> {
        Ok(read_nat_gateways(cx, Some(a)).await?.pop())
    }

    async fn create(
        &self,
        cx: &Cx<'_>,
        op: &OpContext,
        d: &Resolved,
    ) -> Result<Observed, ProviderError> {
        let connectivity = d.get_str("connectivity_type").unwrap_or("public");
        let out =
            cx.c.ec2
                .create_nat_gateway()
                .subnet_id(req_str(d, "subnet_id")?)
                .set_allocation_id(d.get_str("allocation_id").map(str::to_string))
                .connectivity_type(ConnectivityType::from(connectivity))
                .client_token(&op.idempotency_token)
                .tag_specifications(tag_spec(cx, ResourceType::Natgateway, d))
                .send()
                .await
                .aws("CreateNatGateway")?;
        let id = out
            .nat_gateway()
            .and_then(|n| n.nat_gateway_id())
            .ok_or_else(|| empty("CreateNatGateway"))?
            .to_string();
        // Routes to a gateway that is still pending are refused: wait until it is available.
        let what = format!("NAT gateway {id} to become available");
        poll(&what, cx.waits, || async {
            match nat_state(cx, &id).await? {
                Some((NatGatewayState::Available, _)) => Ok(Probe::Done(())),
                Some((NatGatewayState::Failed, why)) => Err(ProviderError::fatal(
                    "NatGatewayFailed",
                    format!("NAT gateway {id} failed: {}", why.trim()),
                )),
                Some((state, _)) => Ok(Probe::Waiting(state.as_str().to_string())),
                None => Ok(Probe::Waiting("not visible yet".to_string())),
            }
        })
        .await?;
        Ok(observed_from(d, id, &[]))
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
        let id = &current.id;
        // The gateway's addresses: (allocation id, its network interface).
        let before =
            cx.c.ec2_read
                .describe_nat_gateways()
                .nat_gateway_ids(id)
                .send()
                .await
                .aws("DescribeNatGateways")
                .or_not_found()?;
        let addresses: Vec<(String, String)> = before
            .iter()
            .flat_map(|o| o.nat_gateways())
            .flat_map(|n| n.nat_gateway_addresses())
            .filter_map(|a| {
                Some((
                    a.allocation_id()?.to_string(),
                    a.network_interface_id()?.to_string(),
                ))
            })
            .collect();
        cx.c.ec2
            .delete_nat_gateway()
            .nat_gateway_id(id)
            .send()
            .await
            .aws("DeleteNatGateway")?;
        // Its Elastic IP and subnet can go only once it is deleted (AWS: about a minute).
        let what = format!("NAT gateway {id} to be deleted");
        poll(&what, cx.waits, || async {
            Ok(match nat_state(cx, id).await? {
                None | Some((NatGatewayState::Deleted, _)) => Probe::Done(()),
                Some((state, _)) => Probe::Waiting(state.as_str().to_string()),
            })
        })
        .await?;
        release_stale_associations(cx, &addresses).await
    }
}
