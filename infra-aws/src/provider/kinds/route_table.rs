//! `aws_route_table`: routes diffed route by route (a changed target is replaced in place,
//! untouched routes stay) and subnet associations, which belong to the table.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_ec2::types::{Filter, ResourceType, RouteOrigin, RouteTableAssociationStateCode};
use infra_core::dsl::{Address, KindSchema};
use infra_core::provider::{Observed, OpContext, ProviderError, Resolved};
use infra_core::registry::KindHandler;
use infra_core::Value;

use super::{AwsKind, Listings};
use crate::kinds::network::ROUTE_TABLE;
use crate::provider::common::{
    empty, observed_from, ownership, req_str, strings, updated_from, Cx, Props,
};
use crate::provider::ec2_common::{owned, owned_filters, pairs, sync_tags, tag_spec};
use crate::provider::errors::{AwsResult, ProviderResult};
use crate::provider::import::{adopt_ec2, discovered, observed_at, Discovery, Unowned};

/// The `aws_route_table` handler.
pub(super) struct RouteTable;

impl KindHandler for RouteTable {
    fn schema(&self) -> &'static KindSchema {
        &ROUTE_TABLE
    }
}

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
        .page_size(100)
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
    let o = owned(cx, ROUTE_TABLE.kind, t.tags(), address)?;
    let id = t.route_table_id().unwrap_or_default();
    Some(table_props(t, &o.user).observed(o, id))
}

/// A table's properties as a read gives them (owned read, discovery and adoption share it).
fn table_props(t: &aws_sdk_ec2::types::RouteTable, user: &BTreeMap<String, String>) -> Props {
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
        .tags(user);
    p
}

/// The routes of a table that infra can't declare (made by CreateRoute to another target
/// than an internet or NAT gateway), as notes.
fn undeclarable_routes(t: &aws_sdk_ec2::types::RouteTable) -> Vec<String> {
    t.routes()
        .iter()
        .filter(|r| r.origin() == Some(&RouteOrigin::CreateRoute))
        .filter(|r| r.nat_gateway_id().is_none() && r.gateway_id().is_none_or(|g| g == "local"))
        .map(|r| {
            let dest = r
                .destination_cidr_block()
                .or(r.destination_ipv6_cidr_block())
                .or(r.destination_prefix_list_id())
                .unwrap_or("?");
            let target = r
                .transit_gateway_id()
                .or(r.vpc_peering_connection_id())
                .or(r.network_interface_id())
                .or(r.instance_id())
                .or(r.egress_only_internet_gateway_id())
                .or(r.local_gateway_id())
                .or(r.carrier_gateway_id())
                .unwrap_or("another target");
            format!(
                "a route {dest} -> {target}: infra declares routes to internet and NAT gateways only"
            )
        })
        .collect()
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
                    .page_size(100)
                    .items()
                    .send()
                    .try_collect()
                    .await
                    .aws("DescribeRouteTables")?;
            let other = tables.first();
            let assoc = other.and_then(|t| associations(t).get(subnet).cloned());
            match (other, assoc) {
                (Some(t), _) if t.route_table_id() == Some(table) => Ok(()),
                (Some(t), Some(assoc)) if ownership(cx.stack, ROUTE_TABLE.kind, pairs(t.tags())).is_some() => {
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

#[async_trait]
impl AwsKind for RouteTable {
    /// Pages of up to 100 tables (the API's largest; `vpc` filter: `vpc-id`). A VPC's main
    /// table is listed as inexpressible (AWS makes it with the VPC; infra declares additional
    /// tables); routes to other targets than internet and NAT gateways are noted.
    async fn discover(&self, cx: &Cx<'_>, pass: &mut Discovery<'_>) -> Result<(), ProviderError> {
        let mut req = cx.c.ec2_read.describe_route_tables().max_results(100);
        if let Some(vpc) = &pass.filter.vpc {
            req = req.filters(Filter::builder().name("vpc-id").values(vpc).build());
        }
        let mut pages = req.into_paginator().send();
        while let Some(page) = pages.next().await {
            for t in page.aws("DescribeRouteTables")?.route_tables() {
                let Some(tags) = Unowned::ec2(t.tags()) else {
                    continue;
                };
                let id = t.route_table_id().unwrap_or_default();
                if !pass.matches(tags.name.as_deref().unwrap_or(id), &tags.all) {
                    continue;
                }
                if t.associations().iter().any(|a| a.main() == Some(true)) {
                    pass.inexpressible(
                        "EC2 main route table",
                        id,
                        format!(
                            "the main route table of {}, which AWS makes with the VPC; infra \
                             declares additional tables and their subnet associations",
                            t.vpc_id().unwrap_or("its VPC")
                        ),
                    );
                    continue;
                }
                let mut found = discovered(
                    &ROUTE_TABLE,
                    id,
                    tags.name.as_deref(),
                    table_props(t, &tags.user),
                );
                found.notes = undeclarable_routes(t);
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
                .describe_route_tables()
                .route_table_ids(id)
                .send()
                .await
                .aws("DescribeRouteTables")
                .or_not_found()?;
        Ok(out
            .as_ref()
            .and_then(|o| o.route_tables().first())
            .map(|t| {
                let tags = Unowned::ec2_any(t.tags());
                observed_at(address, id, table_props(t, &tags.user), &tags)
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
        read_route_tables(cx, None).await
    }

    async fn find(&self, cx: &Cx<'_>, a: &Address) -> Result<Option<Observed>, ProviderError> {
        Ok(read_route_tables(cx, Some(a)).await?.pop())
    }

    async fn create(
        &self,
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
        Ok(observed_from(d, id, &[]))
    }

    async fn update(
        &self,
        cx: &Cx<'_>,
        _: &OpContext,
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
}
