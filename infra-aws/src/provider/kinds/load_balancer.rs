//! `aws_lb`: an ELBv2 load balancer.
//!
//! * **Read.** `DescribeLoadBalancers` (every page, 400 a page) lists the account's load
//!   balancers (ELBv2 has no tag filter), `DescribeTags` (20 ARNs a call) says which are the
//!   stack's, and `DescribeLoadBalancerAttributes` (one call per application load balancer of
//!   the stack: AWS has no batched form) reads `drop_invalid_header_fields`. The listing is
//!   shared with the listeners' read ([`Listings::load_balancers`]).
//! * **Create** carries the tags. Names are unique per account and region, but AWS answers a
//!   second create of a name with identical settings with the existing load balancer (and
//!   moto creates a duplicate): the name is looked up first, and a taken name is reported as
//!   `DuplicateLoadBalancerName`, which makes the provider converge the object when it is the
//!   stack's (a create whose response was lost) and fail naming the stack when it isn't.
//! * **Delete** waits until the load balancer is no longer listed (its network interfaces hold
//!   its subnets and security groups a little longer; their deletes retry on
//!   `DependencyViolation`).

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_elasticloadbalancingv2::types::{
    LoadBalancer as AwsLoadBalancer, LoadBalancerAttribute, LoadBalancerSchemeEnum,
    LoadBalancerTypeEnum,
};
use infra_core::dsl::{Address, KindSchema};
use infra_core::provider::{ErrorClass, Observed, OpContext, ProviderError, Resolved};
use infra_core::registry::KindHandler;
use infra_core::retry::{poll, Probe};
use infra_core::Value;

use super::{AwsKind, Listings};
use crate::kinds::elb::LOAD_BALANCER;
use crate::provider::common::{
    all_tags, observed_from, opt_bool, req_str, str_list, updated_from, Cx, Ownership, Props,
};
use crate::provider::elb_common::{adopt_elb, elb_tags, owned, tags_any, unowned, update_tags};
use crate::provider::errors::{AwsResult, ProviderResult};
use crate::provider::import::{discovered, observed_at, Discovery};

/// The `aws_lb` handler.
pub(super) struct LoadBalancer;

impl KindHandler for LoadBalancer {
    fn schema(&self) -> &'static KindSchema {
        &LOAD_BALANCER
    }
}

/// The attribute behind `drop_invalid_header_fields`.
const DROP_INVALID_HEADERS: &str = "routing.http.drop_invalid_header_fields.enabled";
/// DescribeLoadBalancers' largest page.
const LB_PAGE: i32 = 400;
/// The code a taken name is reported with (AWS's own).
const DUPLICATE: &str = "DuplicateLoadBalancerName";

/// One of the stack's load balancers, as listed, with its ownership.
#[derive(Clone, Debug)]
pub(crate) struct OwnedLb {
    pub(crate) arn: String,
    pub(crate) lb: AwsLoadBalancer,
    pub(crate) owner: Ownership,
}

/// Every load balancer of the account (paginated), or those of one name.
async fn describe(cx: &Cx<'_>, name: Option<&str>) -> Result<Vec<AwsLoadBalancer>, ProviderError> {
    let req = cx.c.elb_read.describe_load_balancers();
    match name {
        Some(n) => match req.names(n).send().await.aws("DescribeLoadBalancers") {
            Ok(out) => Ok(out.load_balancers().to_vec()),
            Err(e) if e.class == ErrorClass::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        },
        None => req
            .page_size(LB_PAGE)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .aws("DescribeLoadBalancers"),
    }
}

/// The stack's load balancers among `lbs`.
async fn owned_lbs(cx: &Cx<'_>, lbs: Vec<AwsLoadBalancer>) -> Result<Vec<OwnedLb>, ProviderError> {
    let items = lbs
        .into_iter()
        .filter_map(|lb| Some((lb.load_balancer_arn()?.to_string(), lb)))
        .collect();
    Ok(owned(cx, LOAD_BALANCER.kind, items)
        .await?
        .into_iter()
        .map(|(arn, lb, owner)| OwnedLb { arn, lb, owner })
        .collect())
}

/// The stack's load balancers (one listing, tags in batches of 20).
pub(crate) async fn stack_load_balancers(cx: &Cx<'_>) -> Result<Vec<OwnedLb>, ProviderError> {
    owned_lbs(cx, describe(cx, None).await?).await
}

fn is_application(lb: &AwsLoadBalancer) -> bool {
    lb.r#type() == Some(&LoadBalancerTypeEnum::Application)
}

/// `drop_invalid_header_fields` of an application load balancer; `None` when it is gone.
async fn drops_invalid_headers(cx: &Cx<'_>, arn: &str) -> Result<Option<bool>, ProviderError> {
    match cx
        .c
        .elb_read
        .describe_load_balancer_attributes()
        .load_balancer_arn(arn)
        .send()
        .await
        .aws("DescribeLoadBalancerAttributes")
    {
        Ok(out) => Ok(Some(out.attributes().iter().any(|a| {
            a.key() == Some(DROP_INVALID_HEADERS) && a.value() == Some("true")
        }))),
        Err(e) if e.class == ErrorClass::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The observation of one of the stack's load balancers, in the builder's shape.
async fn observe(cx: &Cx<'_>, o: OwnedLb) -> Result<Option<Observed>, ProviderError> {
    Ok(lb_props(cx, &o.lb, &o.arn, &o.owner.user)
        .await?
        .map(|p| p.observed(o.owner, o.arn)))
}

/// A load balancer's properties in the builder's shape (`None`: it is gone).
async fn lb_props(
    cx: &Cx<'_>,
    lb: &AwsLoadBalancer,
    arn: &str,
    user: &BTreeMap<String, String>,
) -> Result<Option<Props>, ProviderError> {
    let mut p = Props::default();
    p.set("type", lb.r#type().map(|t| t.as_str()))
        .set("scheme", lb.scheme().map(|s| s.as_str()))
        .strs(
            "subnet_ids",
            lb.availability_zones()
                .iter()
                .filter_map(|z| z.subnet_id().map(str::to_string)),
        )
        .strs("security_group_ids", lb.security_groups().iter().cloned())
        .set("arn", arn)
        .set("dns_name", lb.dns_name())
        .tags(user);
    if is_application(lb) {
        match drops_invalid_headers(cx, arn).await? {
            Some(on) => p.set("drop_invalid_header_fields", on),
            None => return Ok(None),
        };
    }
    Ok(Some(p))
}

async fn set_drop_invalid_headers(cx: &Cx<'_>, arn: &str, on: bool) -> Result<(), ProviderError> {
    cx.c.elb
        .modify_load_balancer_attributes()
        .load_balancer_arn(arn)
        .attributes(
            LoadBalancerAttribute::builder()
                .key(DROP_INVALID_HEADERS)
                .value(on.to_string())
                .build(),
        )
        .send()
        .await
        .aws("ModifyLoadBalancerAttributes")
        .map(drop)
}

#[async_trait]
impl AwsKind for LoadBalancer {
    /// Pages of 400 from DescribeLoadBalancers, their tags 20 ARNs a call; the `vpc` filter
    /// compares the load balancer's VPC. Gateway load balancers have no builder: listed as
    /// inexpressible.
    async fn discover(&self, cx: &Cx<'_>, pass: &mut Discovery<'_>) -> Result<(), ProviderError> {
        let mut pages =
            cx.c.elb_read
                .describe_load_balancers()
                .page_size(LB_PAGE)
                .into_paginator()
                .send();
        while let Some(page) = pages.next().await {
            let page = page.aws("DescribeLoadBalancers")?;
            let items = page
                .load_balancers()
                .iter()
                .filter(|lb| pass.in_vpc(lb.vpc_id()))
                .filter_map(|lb| Some((lb.load_balancer_arn()?.to_string(), lb.clone())))
                .collect();
            for (arn, lb, tags) in unowned(cx, items).await? {
                let lb_name = lb.load_balancer_name().unwrap_or_default();
                let name = tags.name.as_deref().unwrap_or(lb_name);
                if !pass.matches(name, &tags.all) {
                    continue;
                }
                if !matches!(
                    lb.r#type(),
                    Some(LoadBalancerTypeEnum::Application | LoadBalancerTypeEnum::Network)
                ) {
                    let t = lb.r#type().map_or("?", |t| t.as_str());
                    pass.inexpressible(
                        "ELBv2 load balancer",
                        &arn,
                        format!("its type is `{t}`: infra declares application and network load balancers"),
                    );
                    continue;
                }
                let Some(props) = lb_props(cx, &lb, &arn, &tags.user).await? else {
                    continue;
                };
                pass.load_balancers.push((arn.clone(), lb_name.to_string()));
                pass.object(discovered(&LOAD_BALANCER, &arn, Some(name), props));
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
            cx.c.elb_read
                .describe_load_balancers()
                .load_balancer_arns(id)
                .send()
                .await
                .aws("DescribeLoadBalancers")
                .or_not_found()?;
        let Some(lb) = out.as_ref().and_then(|o| o.load_balancers().first()) else {
            return Ok(None);
        };
        let Some(tags) = tags_any(cx, id).await? else {
            return Ok(None);
        };
        Ok(lb_props(cx, lb, id, &tags.user)
            .await?
            .map(|p| observed_at(address, id, p, &tags)))
    }

    /// AddTags: `infra:stack` and `infra:id`; nothing else changes.
    async fn adopt(
        &self,
        cx: &Cx<'_>,
        current: &Observed,
        to: &Address,
    ) -> Result<Observed, ProviderError> {
        adopt_elb(cx, current, to).await
    }

    async fn read(&self, cx: &Cx<'_>, listings: &Listings) -> Result<Vec<Observed>, ProviderError> {
        let mut out = Vec::new();
        for o in listings.load_balancers(cx).await? {
            out.extend(observe(cx, o.clone()).await?);
        }
        Ok(out)
    }

    async fn find(&self, cx: &Cx<'_>, a: &Address) -> Result<Option<Observed>, ProviderError> {
        let name = cx.physical_name(a);
        for o in owned_lbs(cx, describe(cx, Some(&name)).await?).await? {
            if &o.owner.address == a {
                return observe(cx, o).await;
            }
        }
        Ok(None)
    }

    async fn create(
        &self,
        cx: &Cx<'_>,
        _: &OpContext,
        d: &Resolved,
    ) -> Result<Observed, ProviderError> {
        let name = cx.physical_name(&d.address);
        if !describe(cx, Some(&name)).await?.is_empty() {
            return Err(ProviderError::fatal(
                DUPLICATE,
                format!("CreateLoadBalancer: a load balancer named `{name}` exists"),
            ));
        }
        let groups = str_list(d, "security_group_ids");
        let out =
            cx.c.elb
                .create_load_balancer()
                .name(&name)
                .r#type(LoadBalancerTypeEnum::from(req_str(d, "type")?.as_str()))
                .scheme(LoadBalancerSchemeEnum::from(req_str(d, "scheme")?.as_str()))
                .set_subnets(Some(str_list(d, "subnet_ids")))
                .set_security_groups((!groups.is_empty()).then_some(groups))
                .set_tags(Some(elb_tags(&all_tags(cx.stack, d))))
                .send()
                .await
                .aws("CreateLoadBalancer")?;
        let lb = out
            .load_balancers()
            .first()
            .ok_or_else(|| crate::provider::common::empty("CreateLoadBalancer"))?;
        let arn = lb
            .load_balancer_arn()
            .ok_or_else(|| crate::provider::common::empty("CreateLoadBalancer"))?
            .to_string();
        if let Some(on) = opt_bool(d, "drop_invalid_header_fields") {
            set_drop_invalid_headers(cx, &arn, on).await?;
        }
        Ok(observed_from(
            d,
            arn.clone(),
            &[
                ("arn", Value::from(arn)),
                ("dns_name", Value::from(lb.dns_name())),
            ],
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
        let arn = current.id.as_str();
        let has = |f: &str| changed.iter().any(|c| c == f);
        if has("subnet_ids") {
            cx.c.elb
                .set_subnets()
                .load_balancer_arn(arn)
                .set_subnets(Some(str_list(d, "subnet_ids")))
                .send()
                .await
                .aws("SetSubnets")?;
        }
        if has("security_group_ids") {
            cx.c.elb
                .set_security_groups()
                .load_balancer_arn(arn)
                .set_security_groups(Some(str_list(d, "security_group_ids")))
                .send()
                .await
                .aws("SetSecurityGroups")?;
        }
        if has("drop_invalid_header_fields") {
            set_drop_invalid_headers(
                cx,
                arn,
                opt_bool(d, "drop_invalid_header_fields").unwrap_or(false),
            )
            .await?;
        }
        update_tags(cx, arn, current, d).await?;
        Ok(updated_from(current, d))
    }

    async fn delete(&self, cx: &Cx<'_>, current: &Observed) -> Result<(), ProviderError> {
        let arn = current.id.as_str();
        cx.c.elb
            .delete_load_balancer()
            .load_balancer_arn(arn)
            .send()
            .await
            .aws_retrying("DeleteLoadBalancer", &["ResourceInUse"])?;
        let what = format!("load balancer {arn} to be deleted");
        poll(&what, cx.waits, || async {
            let listed =
                cx.c.elb_read
                    .describe_load_balancers()
                    .load_balancer_arns(arn)
                    .send()
                    .await
                    .aws("DescribeLoadBalancers");
            Ok(match listed {
                Err(e) if e.class == ErrorClass::NotFound => Probe::Done(()),
                Err(e) => return Err(e),
                Ok(out) if out.load_balancers().is_empty() => Probe::Done(()),
                Ok(out) => Probe::Waiting(
                    out.load_balancers()
                        .first()
                        .and_then(|l| l.state())
                        .and_then(|s| s.code())
                        .map_or("still listed".to_string(), |c| c.as_str().to_string()),
                ),
            })
        })
        .await
    }

    fn already_exists_codes(&self) -> &'static [&'static str] {
        &[DUPLICATE]
    }
}
