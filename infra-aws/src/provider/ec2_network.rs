//! EC2 networking: VPC, subnet, internet gateway, Elastic IP, NAT gateway and route table, plus
//! the EC2 tag helpers the other EC2 modules share.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{
    AttachmentStatus, AttributeBooleanValue, ConnectivityType, DomainType, Filter, NatGatewayState,
    ResourceType, RouteOrigin, RouteTableAssociationStateCode, Tag, TagSpecification,
    VpcAttributeName,
};
use infra_core::dsl::Address;
use infra_core::provider::{Observed, OpContext, ProviderError, Resolved};
use infra_core::Value;

use super::common::{
    all_tags, opt_bool, ownership, req_str, strings, tag_diff, Cx, Ownership, Props, TAG_ID,
    TAG_STACK,
};
use super::errors::{AwsResult, ProviderResult};

// ---------------------------------------------------------------------------------------------
// EC2 tags

/// The filters of a batched read: the stack's tag, and the address when looking one object up.
pub(super) fn owned_filters(cx: &Cx<'_>, address: Option<&Address>) -> Vec<Filter> {
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
pub(super) fn pairs(tags: &[Tag]) -> impl Iterator<Item = (&str, &str)> {
    tags.iter()
        .map(|t| (t.key().unwrap_or(""), t.value().unwrap_or("")))
}

/// Ownership of an EC2 object by the stack, also checking the address when looking one up
/// (endpoints that ignore filters — moto on NAT gateways — must not leak other objects in).
pub(super) fn owned(
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
pub(super) fn tag_spec(cx: &Cx<'_>, rt: ResourceType, d: &Resolved) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(rt)
        .set_tags(Some(ec2_tags(&all_tags(cx.stack, d))))
        .build()
}

/// Brings the user tags and the protection tag of an EC2 object to what is declared.
pub(super) async fn sync_tags(
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

/// Updates of kinds whose only mutable fields are tags.
pub(super) async fn update_tags_only(
    cx: &Cx<'_>,
    current: &Observed,
    d: &Resolved,
) -> Result<Observed, ProviderError> {
    sync_tags(cx, &current.id, current, d).await?;
    Ok(updated(current, d))
}

pub(super) use super::common::updated_from as updated;

fn arn(cx: &Cx<'_>, owner: Option<&str>, what: &str, id: &str) -> Value {
    match owner {
        Some(owner) => Value::from(format!("arn:aws:ec2:{}:{owner}:{what}/{id}", cx.c.region)),
        None => Value::Null,
    }
}

// ---------------------------------------------------------------------------------------------
// VPC

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
            .items()
            .send()
            .try_collect()
            .await
            .aws("DescribeVpcs")?;
    let owned: Vec<_> = vpcs
        .iter()
        .filter_map(|v| Some((v, owned(cx, "aws_vpc", v.tags(), address)?)))
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
            let mut p = Props::default();
            p.set("cidr_block", v.cidr_block())
                .set("enable_dns_support", support)
                .set("enable_dns_hostnames", hostnames)
                .set("arn", arn(cx, v.owner_id(), "vpc", id))
                .tags(&o.user);
            p.observed(o, id)
        })
        .collect())
}

pub(super) async fn find_vpc(cx: &Cx<'_>, a: &Address) -> Result<Option<Observed>, ProviderError> {
    Ok(read_vpcs(cx, Some(a)).await?.pop())
}

async fn set_vpc_attribute(
    cx: &Cx<'_>,
    id: &str,
    name: &str,
    on: bool,
) -> Result<(), ProviderError> {
    let v = AttributeBooleanValue::builder().value(on).build();
    let req = cx.c.ec2.modify_vpc_attribute().vpc_id(id);
    let req = if name == "enable_dns_support" {
        req.enable_dns_support(v)
    } else {
        req.enable_dns_hostnames(v)
    };
    req.send().await.aws("ModifyVpcAttribute")?;
    Ok(())
}

pub(super) async fn create_vpc(cx: &Cx<'_>, d: &Resolved) -> Result<Observed, ProviderError> {
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
    // A new VPC has DNS support on and DNS hostnames off; only differences are sent (support
    // first: hostnames need it).
    for (field, default) in [
        ("enable_dns_support", true),
        ("enable_dns_hostnames", false),
    ] {
        let want = opt_bool(d, field).unwrap_or(default);
        if want != default {
            set_vpc_attribute(cx, &id, field, want).await?;
        }
    }
    Ok(super::common::observed_from(
        d,
        id.clone(),
        &[("arn", arn(cx, vpc.owner_id(), "vpc", &id))],
    ))
}

pub(super) async fn update_vpc(
    cx: &Cx<'_>,
    current: &Observed,
    d: &Resolved,
    changed: &[String],
) -> Result<Observed, ProviderError> {
    // Turning hostnames off must precede turning support off, and support on precede
    // hostnames on.
    let mut fields: Vec<&str> = ["enable_dns_support", "enable_dns_hostnames"]
        .into_iter()
        .filter(|f| changed.iter().any(|c| c == f))
        .collect();
    if opt_bool(d, "enable_dns_support") == Some(false) {
        fields.reverse();
    }
    for f in fields {
        set_vpc_attribute(
            cx,
            &current.id,
            f,
            opt_bool(d, f).unwrap_or(f == "enable_dns_support"),
        )
        .await?;
    }
    sync_tags(cx, &current.id, current, d).await?;
    Ok(updated(current, d))
}

pub(super) async fn delete_vpc(cx: &Cx<'_>, current: &Observed) -> Result<(), ProviderError> {
    // DependencyViolation right after its subnets, gateways or groups went away is AWS settling.
    cx.c.ec2
        .delete_vpc()
        .vpc_id(&current.id)
        .send()
        .await
        .aws_retrying("DeleteVpc", &["DependencyViolation"])?;
    Ok(())
}

fn empty(op: &str) -> ProviderError {
    ProviderError::retryable(
        "EmptyResponse",
        format!("{op}: the response carried no object"),
    )
}

// ---------------------------------------------------------------------------------------------
// Subnet

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
            let o = owned(cx, "aws_subnet", s.tags(), address)?;
            let id = s.subnet_id().unwrap_or_default();
            let mut p = Props::default();
            p.set("vpc_id", s.vpc_id())
                .set("cidr_block", s.cidr_block())
                .set("availability_zone", s.availability_zone())
                .set(
                    "map_public_ip_on_launch",
                    s.map_public_ip_on_launch().unwrap_or(false),
                )
                .set("arn", s.subnet_arn())
                .tags(&o.user);
            Some(p.observed(o, id))
        })
        .collect())
}

pub(super) async fn find_subnet(
    cx: &Cx<'_>,
    a: &Address,
) -> Result<Option<Observed>, ProviderError> {
    Ok(read_subnets(cx, Some(a)).await?.pop())
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

pub(super) async fn create_subnet(cx: &Cx<'_>, d: &Resolved) -> Result<Observed, ProviderError> {
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
    if opt_bool(d, "map_public_ip_on_launch") == Some(true) {
        set_map_public_ip(cx, &id, true).await?;
    }
    Ok(super::common::observed_from(
        d,
        id,
        &[("arn", Value::from(s.subnet_arn()))],
    ))
}

pub(super) async fn update_subnet(
    cx: &Cx<'_>,
    current: &Observed,
    d: &Resolved,
    changed: &[String],
) -> Result<Observed, ProviderError> {
    if changed.iter().any(|c| c == "map_public_ip_on_launch") {
        set_map_public_ip(
            cx,
            &current.id,
            opt_bool(d, "map_public_ip_on_launch").unwrap_or(false),
        )
        .await?;
    }
    sync_tags(cx, &current.id, current, d).await?;
    Ok(updated(current, d))
}

pub(super) async fn delete_subnet(cx: &Cx<'_>, current: &Observed) -> Result<(), ProviderError> {
    // Network interfaces of terminated instances or a deleted NAT gateway linger for a while.
    cx.c.ec2
        .delete_subnet()
        .subnet_id(&current.id)
        .send()
        .await
        .aws_retrying("DeleteSubnet", &["DependencyViolation"])?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Internet gateway

async fn read_internet_gateways(
    cx: &Cx<'_>,
    address: Option<&Address>,
) -> Result<Vec<Observed>, ProviderError> {
    let igws =
        cx.c.ec2_read
            .describe_internet_gateways()
            .set_filters(Some(owned_filters(cx, address)))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .aws("DescribeInternetGateways")?;
    Ok(igws
        .iter()
        .filter_map(|g| {
            let o = owned(cx, "aws_internet_gateway", g.tags(), address)?;
            let id = g.internet_gateway_id().unwrap_or_default();
            let vpc = g
                .attachments()
                .iter()
                .find(|a| {
                    !matches!(
                        a.state(),
                        Some(AttachmentStatus::Detached | AttachmentStatus::Detaching)
                    )
                })
                .and_then(|a| a.vpc_id());
            let mut p = Props::default();
            p.set("vpc_id", vpc)
                .set("arn", arn(cx, g.owner_id(), "internet-gateway", id))
                .tags(&o.user);
            Some(p.observed(o, id))
        })
        .collect())
}

pub(super) async fn find_internet_gateway(
    cx: &Cx<'_>,
    a: &Address,
) -> Result<Option<Observed>, ProviderError> {
    Ok(read_internet_gateways(cx, Some(a)).await?.pop())
}

async fn attach_igw(cx: &Cx<'_>, id: &str, vpc: &str) -> Result<(), ProviderError> {
    cx.c.ec2
        .attach_internet_gateway()
        .internet_gateway_id(id)
        .vpc_id(vpc)
        .send()
        .await
        .aws("AttachInternetGateway")?;
    Ok(())
}

async fn detach_igw(cx: &Cx<'_>, id: &str, vpc: &str) -> Result<(), ProviderError> {
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

pub(super) async fn create_internet_gateway(
    cx: &Cx<'_>,
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
        attach_igw(cx, &id, vpc).await?;
    }
    Ok(super::common::observed_from(
        d,
        id.clone(),
        &[("arn", arn(cx, g.owner_id(), "internet-gateway", &id))],
    ))
}

pub(super) async fn update_internet_gateway(
    cx: &Cx<'_>,
    current: &Observed,
    d: &Resolved,
    changed: &[String],
) -> Result<Observed, ProviderError> {
    if changed.iter().any(|c| c == "vpc_id") {
        if let Some(old) = current.props.get("vpc_id").and_then(Value::as_str) {
            detach_igw(cx, &current.id, old).await?;
        }
        if let Some(new) = d.get_str("vpc_id") {
            attach_igw(cx, &current.id, new).await?;
        }
    }
    sync_tags(cx, &current.id, current, d).await?;
    Ok(updated(current, d))
}

pub(super) async fn delete_internet_gateway(
    cx: &Cx<'_>,
    current: &Observed,
) -> Result<(), ProviderError> {
    // Detach from whatever it is attached to now (not only what the plan saw).
    let Some(now) = find_internet_gateway(cx, &current.address).await? else {
        return Err(ProviderError::not_found(
            "InvalidInternetGatewayID.NotFound",
            format!("{} is gone", current.id),
        ));
    };
    if let Some(vpc) = now.props.get("vpc_id").and_then(Value::as_str) {
        detach_igw(cx, &now.id, vpc).await?;
    }
    cx.c.ec2
        .delete_internet_gateway()
        .internet_gateway_id(&now.id)
        .send()
        .await
        .aws_retrying("DeleteInternetGateway", &["DependencyViolation"])?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Elastic IP

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
            let o = owned(cx, "aws_eip", a.tags(), address)?;
            let id = a.allocation_id()?;
            let mut p = Props::default();
            p.set("domain", a.domain().map(|d| d.as_str()))
                .set("public_ip", a.public_ip())
                .tags(&o.user);
            Some(p.observed(o, id))
        })
        .collect())
}

pub(super) async fn find_eip(cx: &Cx<'_>, a: &Address) -> Result<Option<Observed>, ProviderError> {
    Ok(read_eips(cx, Some(a)).await?.pop())
}

pub(super) async fn create_eip(cx: &Cx<'_>, d: &Resolved) -> Result<Observed, ProviderError> {
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
    Ok(super::common::observed_from(
        d,
        id,
        &[("public_ip", Value::from(out.public_ip()))],
    ))
}

pub(super) async fn delete_eip(cx: &Cx<'_>, current: &Observed) -> Result<(), ProviderError> {
    // Still associated while the NAT gateway that used it finishes deleting.
    cx.c.ec2
        .release_address()
        .allocation_id(&current.id)
        .send()
        .await
        .aws_retrying("ReleaseAddress", &["InvalidIPAddress.InUse", "AuthFailure"])?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// NAT gateway

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
            let o = owned(cx, "aws_nat_gateway", n.tags(), address)?;
            let id = n.nat_gateway_id().unwrap_or_default();
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
                .tags(&o.user);
            Some(p.observed(o, id))
        })
        .collect())
}

pub(super) async fn find_nat_gateway(
    cx: &Cx<'_>,
    a: &Address,
) -> Result<Option<Observed>, ProviderError> {
    Ok(read_nat_gateways(cx, Some(a)).await?.pop())
}

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

pub(super) async fn create_nat_gateway(
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
    cx.wait_until(&format!("NAT gateway {id} to become available"), || async {
        match nat_state(cx, &id).await? {
            Some((NatGatewayState::Available, _)) => Ok(Some(())),
            Some((NatGatewayState::Failed, why)) => Err(ProviderError::fatal(
                "NatGatewayFailed",
                format!("NAT gateway {id} failed: {}", why.trim()),
            )),
            _ => Ok(None),
        }
    })
    .await?;
    Ok(super::common::observed_from(d, id, &[]))
}

pub(super) async fn delete_nat_gateway(
    cx: &Cx<'_>,
    current: &Observed,
) -> Result<(), ProviderError> {
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
    cx.wait_until(&format!("NAT gateway {id} to be deleted"), || async {
        Ok(match nat_state(cx, id).await? {
            None | Some((NatGatewayState::Deleted, _)) => Some(()),
            _ => None,
        })
    })
    .await?;
    // AWS releases the Elastic IP's association with the gateway's interface on deletion; an
    // endpoint that keeps it (moto) would make the address unusable for a replacement gateway.
    if !addresses.is_empty() {
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
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Route table

/// One declared route: its destination and target, in the builder's shape.
fn route_value(destination: &str, target_key: &str, target: &str) -> Value {
    let mut m = BTreeMap::new();
    m.insert("destination".to_string(), Value::from(destination));
    m.insert(target_key.to_string(), Value::from(target));
    Value::Map(m)
}

/// `(destination → (target key, target id))` of a routes list.
fn routes_of(v: Option<&Value>) -> BTreeMap<String, (String, String)> {
    v.and_then(Value::as_list)
        .unwrap_or(&[])
        .iter()
        .filter_map(Value::as_map)
        .filter_map(|m| {
            let dest = m.get("destination")?.as_str()?;
            let (k, t) = ["gateway_id", "nat_gateway_id"]
                .iter()
                .find_map(|k| Some((*k, m.get(*k)?.as_str()?)))?;
            Some((dest.to_string(), (k.to_string(), t.to_string())))
        })
        .collect()
}

/// The table's subnet associations: subnet id → association id.
fn associations(t: &aws_sdk_ec2::types::RouteTable) -> BTreeMap<String, String> {
    t.associations()
        .iter()
        .filter(|a| !a.main().unwrap_or(false))
        .filter(|a| {
            a.association_state()
                .and_then(|s| s.state())
                .is_none_or(|s| {
                    matches!(
                        s,
                        RouteTableAssociationStateCode::Associated
                            | RouteTableAssociationStateCode::Associating
                    )
                })
        })
        .filter_map(|a| {
            Some((
                a.subnet_id()?.to_string(),
                a.route_table_association_id()?.to_string(),
            ))
        })
        .collect()
}

async fn describe_route_tables(
    cx: &Cx<'_>,
    address: Option<&Address>,
) -> Result<Vec<aws_sdk_ec2::types::RouteTable>, ProviderError> {
    cx.c.ec2_read
        .describe_route_tables()
        .set_filters(Some(owned_filters(cx, address)))
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .aws("DescribeRouteTables")
}

fn observe_route_table(
    cx: &Cx<'_>,
    t: &aws_sdk_ec2::types::RouteTable,
    address: Option<&Address>,
) -> Option<Observed> {
    let o = owned(cx, "aws_route_table", t.tags(), address)?;
    let id = t.route_table_id().unwrap_or_default();
    // Only routes made with CreateRoute are declared ones (not the local route, not
    // propagated ones).
    let mut routes: Vec<Value> = t
        .routes()
        .iter()
        .filter(|r| r.origin() == Some(&RouteOrigin::CreateRoute))
        .filter_map(|r| {
            let dest = r
                .destination_cidr_block()
                .or(r.destination_ipv6_cidr_block())?;
            if let Some(nat) = r.nat_gateway_id() {
                Some(route_value(dest, "nat_gateway_id", nat))
            } else {
                r.gateway_id()
                    .filter(|g| *g != "local")
                    .map(|g| route_value(dest, "gateway_id", g))
            }
        })
        .collect();
    routes.sort_by_key(|v| v.to_json().to_string());
    let mut p = Props::default();
    p.set("vpc_id", t.vpc_id())
        .set("routes", Value::List(routes))
        .strs("subnet_ids", associations(t).into_keys())
        .tags(&o.user);
    Some(p.observed(o, id))
}

async fn read_route_tables(
    cx: &Cx<'_>,
    address: Option<&Address>,
) -> Result<Vec<Observed>, ProviderError> {
    Ok(describe_route_tables(cx, address)
        .await?
        .iter()
        .filter_map(|t| observe_route_table(cx, t, address))
        .collect())
}

pub(super) async fn find_route_table(
    cx: &Cx<'_>,
    a: &Address,
) -> Result<Option<Observed>, ProviderError> {
    Ok(read_route_tables(cx, Some(a)).await?.pop())
}

async fn create_route(
    cx: &Cx<'_>,
    table: &str,
    dest: &str,
    key: &str,
    target: &str,
    replace: bool,
) -> Result<(), ProviderError> {
    let v6 = dest.contains(':');
    macro_rules! send {
        ($req:expr, $name:literal) => {{
            let req = $req.route_table_id(table);
            let req = if v6 {
                req.destination_ipv6_cidr_block(dest)
            } else {
                req.destination_cidr_block(dest)
            };
            let req = if key == "nat_gateway_id" {
                req.nat_gateway_id(target)
            } else {
                req.gateway_id(target)
            };
            req.send().await.aws($name).map(|_| ())
        }};
    }
    if replace {
        send!(cx.c.ec2.replace_route(), "ReplaceRoute")
    } else {
        // A retried attempt may find the very same route there already.
        send!(cx.c.ec2.create_route(), "CreateRoute").ok_if(&["RouteAlreadyExists"])
    }
}

async fn delete_route(cx: &Cx<'_>, table: &str, dest: &str) -> Result<(), ProviderError> {
    let req = cx.c.ec2.delete_route().route_table_id(table);
    let req = if dest.contains(':') {
        req.destination_ipv6_cidr_block(dest)
    } else {
        req.destination_cidr_block(dest)
    };
    req.send()
        .await
        .aws("DeleteRoute")
        .ok_if(&["InvalidRoute.NotFound"])
}

/// Associates `subnet` with `table`. A subnet already associated with another table of this
/// stack (moving between tables in one apply) is moved with ReplaceRouteTableAssociation; one
/// associated with a table the stack doesn't own is an error, not something to take over.
async fn associate(cx: &Cx<'_>, table: &str, subnet: &str) -> Result<(), ProviderError> {
    let r =
        cx.c.ec2
            .associate_route_table()
            .route_table_id(table)
            .subnet_id(subnet)
            .send()
            .await
            .aws("AssociateRouteTable");
    match r {
        Ok(_) => Ok(()),
        Err(e) if e.code == "Resource.AlreadyAssociated" => {
            let tables =
                cx.c.ec2_read
                    .describe_route_tables()
                    .filters(
                        Filter::builder()
                            .name("association.subnet-id")
                            .values(subnet)
                            .build(),
                    )
                    // A filtered listing may answer an empty first page with a NextToken.
                    .into_paginator()
                    .items()
                    .send()
                    .try_collect()
                    .await
                    .aws("DescribeRouteTables")?;
            let other = tables.first();
            let assoc = other.and_then(|t| associations(t).get(subnet).cloned());
            match (other, assoc) {
                (Some(t), _) if t.route_table_id() == Some(table) => Ok(()),
                (Some(t), Some(assoc)) if ownership(cx.stack, "aws_route_table", pairs(t.tags())).is_some() => {
                    cx.c.ec2
                        .replace_route_table_association()
                        .association_id(assoc)
                        .route_table_id(table)
                        .send()
                        .await
                        .aws("ReplaceRouteTableAssociation")?;
                    Ok(())
                }
                _ => Err(ProviderError::fatal(
                    "Resource.AlreadyAssociated",
                    format!(
                        "AssociateRouteTable: subnet {subnet} is associated with route table {}, which this stack does not own",
                        other.and_then(|t| t.route_table_id()).unwrap_or("?")
                    ),
                )),
            }
        }
        Err(e) => Err(e),
    }
}

async fn disassociate(cx: &Cx<'_>, association: &str) -> Result<(), ProviderError> {
    cx.c.ec2
        .disassociate_route_table()
        .association_id(association)
        .send()
        .await
        .aws("DisassociateRouteTable")
        .ok_if(&["InvalidAssociationID.NotFound"])
}

pub(super) async fn create_route_table(
    cx: &Cx<'_>,
    op: &OpContext,
    d: &Resolved,
) -> Result<Observed, ProviderError> {
    let out =
        cx.c.ec2
            .create_route_table()
            .vpc_id(req_str(d, "vpc_id")?)
            .client_token(&op.idempotency_token)
            .tag_specifications(tag_spec(cx, ResourceType::RouteTable, d))
            .send()
            .await
            .aws("CreateRouteTable")?;
    let id = out
        .route_table()
        .and_then(|t| t.route_table_id())
        .ok_or_else(|| empty("CreateRouteTable"))?
        .to_string();
    for (dest, (key, target)) in routes_of(d.get("routes")) {
        create_route(cx, &id, &dest, &key, &target, false).await?;
    }
    for subnet in strings(d.get("subnet_ids")) {
        associate(cx, &id, &subnet).await?;
    }
    Ok(super::common::observed_from(d, id, &[]))
}

pub(super) async fn update_route_table(
    cx: &Cx<'_>,
    current: &Observed,
    d: &Resolved,
    changed: &[String],
) -> Result<Observed, ProviderError> {
    let id = &current.id;
    if changed.iter().any(|c| c == "routes") {
        let have = routes_of(current.props.get("routes"));
        let want = routes_of(d.get("routes"));
        // Route by route: a changed target is replaced in place, untouched routes stay.
        for (dest, target) in &want {
            match have.get(dest) {
                Some(t) if t == target => {}
                Some(_) => create_route(cx, id, dest, &target.0, &target.1, true).await?,
                None => create_route(cx, id, dest, &target.0, &target.1, false).await?,
            }
        }
        for dest in have.keys().filter(|d| !want.contains_key(*d)) {
            delete_route(cx, id, dest).await?;
        }
    }
    if changed.iter().any(|c| c == "subnet_ids") {
        // The association ids are not part of the observed properties: read them now.
        let tables =
            cx.c.ec2_read
                .describe_route_tables()
                .route_table_ids(id)
                .send()
                .await
                .aws("DescribeRouteTables")?;
        let have = tables
            .route_tables()
            .first()
            .map(associations)
            .unwrap_or_default();
        let want = strings(d.get("subnet_ids"));
        for s in &want {
            if !have.contains_key(s) {
                associate(cx, id, s).await?;
            }
        }
        for (s, assoc) in &have {
            if !want.contains(s) {
                disassociate(cx, assoc).await?;
            }
        }
    }
    sync_tags(cx, id, current, d).await?;
    Ok(updated(current, d))
}

pub(super) async fn delete_route_table(
    cx: &Cx<'_>,
    current: &Observed,
) -> Result<(), ProviderError> {
    let tables =
        cx.c.ec2_read
            .describe_route_tables()
            .route_table_ids(&current.id)
            .send()
            .await
            .aws("DescribeRouteTables")?;
    let Some(t) = tables.route_tables().first() else {
        return Err(ProviderError::not_found(
            "InvalidRouteTableID.NotFound",
            format!("{} is gone", current.id),
        ));
    };
    for assoc in associations(t).values() {
        disassociate(cx, assoc).await?;
    }
    cx.c.ec2
        .delete_route_table()
        .route_table_id(&current.id)
        .send()
        .await
        .aws_retrying("DeleteRouteTable", &["DependencyViolation"])?;
    Ok(())
}

/// Every network object the stack owns: one listing per object type.
pub(super) async fn read(cx: &Cx<'_>) -> Result<Vec<Observed>, ProviderError> {
    let (a, b, c, d, e, f) = tokio::try_join!(
        read_vpcs(cx, None),
        read_subnets(cx, None),
        read_internet_gateways(cx, None),
        read_eips(cx, None),
        read_nat_gateways(cx, None),
        read_route_tables(cx, None),
    )?;
    Ok([a, b, c, d, e, f].concat())
}
