//! `aws_lb_target_group`: an ELBv2 target group and its health check.
//!
//! * **Read.** `DescribeTargetGroups` (every page, 400 a page; ELBv2 has no tag filter) and
//!   `DescribeTags` (20 ARNs a call) for the stack's.
//! * **Create** carries the tags, under the name `<stack>-<name>-<digest>` (see
//!   [`crate::kinds::elb::target_group_name`]). A taken name is reported as
//!   `DuplicateTargetGroupName` (what AWS answers a create of a taken name with other
//!   settings; with identical settings AWS returns the existing group, so the name is looked up
//!   first), which makes the provider converge the group when it is the stack's and fail naming
//!   the stack when it isn't.
//! * **Update**: the health check in place (`ModifyTargetGroup`, every health check field at
//!   once), tags with `AddTags` / `RemoveTags`.
//! * **Delete** retries `ResourceInUse` (a listener forwarding to it is being deleted).

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_elasticloadbalancingv2::types::{
    Matcher, ProtocolEnum, TargetGroup as AwsTargetGroup, TargetTypeEnum,
};
use infra_core::dsl::{Address, KindSchema};
use infra_core::provider::{ErrorClass, Observed, OpContext, ProviderError, Resolved};
use infra_core::registry::KindHandler;
use infra_core::Value;

use super::{AwsKind, Listings};
use crate::kinds::elb::{target_group_name, TARGET_GROUP};
use crate::provider::common::{
    all_tags, observed_from, opt_i64, opt_str, req_i64, req_str, updated_from, Cx, Props,
};
use crate::provider::elb_common::{adopt_elb, elb_tags, owned, tags_any, unowned, update_tags};
use crate::provider::errors::{AwsResult, ProviderResult};
use crate::provider::import::{discovered, observed_at, Discovery};

/// The `aws_lb_target_group` handler.
pub(super) struct TargetGroup;

impl KindHandler for TargetGroup {
    fn schema(&self) -> &'static KindSchema {
        &TARGET_GROUP
    }
}

/// DescribeTargetGroups' largest page.
const TG_PAGE: i32 = 400;
/// The code a taken name is reported with (AWS's own).
const DUPLICATE: &str = "DuplicateTargetGroupName";

/// The health check fields, changed together by `ModifyTargetGroup`.
const HEALTH_FIELDS: &[&str] = &[
    "health_check_protocol",
    "health_check_port",
    "health_check_path",
    "health_check_interval",
    "health_check_timeout",
    "healthy_threshold",
    "unhealthy_threshold",
    "matcher",
];

/// Every target group of the account (paginated), or the one of this name.
async fn describe(cx: &Cx<'_>, name: Option<&str>) -> Result<Vec<AwsTargetGroup>, ProviderError> {
    let req = cx.c.elb_read.describe_target_groups();
    match name {
        Some(n) => match req.names(n).send().await.aws("DescribeTargetGroups") {
            Ok(out) => Ok(out.target_groups().to_vec()),
            Err(e) if e.class == ErrorClass::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        },
        None => req
            .page_size(TG_PAGE)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .aws("DescribeTargetGroups"),
    }
}

fn is_http(p: Option<&ProtocolEnum>) -> bool {
    matches!(p, Some(ProtocolEnum::Http | ProtocolEnum::Https))
}

/// The stack's target groups, in the builder's shape.
async fn read_groups(cx: &Cx<'_>) -> Result<Vec<Observed>, ProviderError> {
    let items = describe(cx, None)
        .await?
        .into_iter()
        .filter_map(|g| Some((g.target_group_arn()?.to_string(), g)))
        .collect();
    Ok(owned(cx, TARGET_GROUP.kind, items)
        .await?
        .into_iter()
        .map(|(arn, g, o)| group_props(&g, &arn, &o.user).observed(o, arn))
        .collect())
}

/// A target group's properties in the builder's shape.
fn group_props(g: &AwsTargetGroup, arn: &str, user: &BTreeMap<String, String>) -> Props {
    let http_check = is_http(g.health_check_protocol());
    let mut p = Props::default();
    p.set("protocol", g.protocol().map(|p| p.as_str()))
        .set("port", g.port())
        .set("vpc_id", g.vpc_id())
        .set("target_type", g.target_type().map(|t| t.as_str()))
        .set(
            "health_check_protocol",
            g.health_check_protocol().map(|p| p.as_str()),
        )
        .set("health_check_port", g.health_check_port())
        .set("health_check_interval", g.health_check_interval_seconds())
        .set("health_check_timeout", g.health_check_timeout_seconds())
        .set("healthy_threshold", g.healthy_threshold_count())
        .set("unhealthy_threshold", g.unhealthy_threshold_count())
        .set("arn", arn)
        .tags(user);
    if http_check {
        p.set("health_check_path", g.health_check_path())
            .set("matcher", g.matcher().and_then(|m| m.http_code()));
    }
    p
}

fn i32_of(d: &Resolved, field: &str) -> Option<i32> {
    opt_i64(d, field).map(|v| v as i32)
}

#[async_trait]
impl AwsKind for TargetGroup {
    /// Pages of 400 from DescribeTargetGroups, their tags 20 ARNs a call; the `vpc` filter
    /// compares the group's VPC. Groups of other target types than `instance` (the builder's
    /// only one) are listed as inexpressible.
    async fn discover(&self, cx: &Cx<'_>, pass: &mut Discovery<'_>) -> Result<(), ProviderError> {
        let mut pages =
            cx.c.elb_read
                .describe_target_groups()
                .page_size(TG_PAGE)
                .into_paginator()
                .send();
        while let Some(page) = pages.next().await {
            let page = page.aws("DescribeTargetGroups")?;
            let items = page
                .target_groups()
                .iter()
                .filter(|g| pass.in_vpc(g.vpc_id()))
                .filter_map(|g| Some((g.target_group_arn()?.to_string(), g.clone())))
                .collect();
            for (arn, g, tags) in unowned(cx, items).await? {
                let name = tags
                    .name
                    .as_deref()
                    .unwrap_or(g.target_group_name().unwrap_or_default());
                if !pass.matches(name, &tags.all) {
                    continue;
                }
                match g.target_type() {
                    None | Some(TargetTypeEnum::Instance) => {}
                    Some(t) => {
                        pass.inexpressible(
                            "ELBv2 target group",
                            &arn,
                            format!(
                                "its targets are of type `{}`: infra declares `instance` target groups",
                                t.as_str()
                            ),
                        );
                        continue;
                    }
                }
                let props = group_props(&g, &arn, &tags.user);
                pass.object(discovered(&TARGET_GROUP, &arn, Some(name), props));
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
                .describe_target_groups()
                .target_group_arns(id)
                .send()
                .await
                .aws("DescribeTargetGroups")
                .or_not_found()?;
        let Some(g) = out.as_ref().and_then(|o| o.target_groups().first()) else {
            return Ok(None);
        };
        let Some(tags) = tags_any(cx, id).await? else {
            return Ok(None);
        };
        Ok(Some(observed_at(
            address,
            id,
            group_props(g, id, &tags.user),
            &tags,
        )))
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

    async fn read(&self, cx: &Cx<'_>, _: &Listings) -> Result<Vec<Observed>, ProviderError> {
        read_groups(cx).await
    }

    async fn find(&self, cx: &Cx<'_>, a: &Address) -> Result<Option<Observed>, ProviderError> {
        Ok(read_groups(cx).await?.into_iter().find(|o| &o.address == a))
    }

    async fn create(
        &self,
        cx: &Cx<'_>,
        _: &OpContext,
        d: &Resolved,
    ) -> Result<Observed, ProviderError> {
        let protocol = req_str(d, "protocol")?;
        let port = req_i64(d, "port")?;
        let vpc = req_str(d, "vpc_id")?;
        let target_type = req_str(d, "target_type")?;
        let name = target_group_name(
            cx.stack,
            d.address.name(),
            &protocol,
            port,
            &vpc,
            &target_type,
        );
        if !describe(cx, Some(&name)).await?.is_empty() {
            return Err(ProviderError::fatal(
                DUPLICATE,
                format!("CreateTargetGroup: a target group named `{name}` exists"),
            ));
        }
        let out =
            cx.c.elb
                .create_target_group()
                .name(&name)
                .protocol(ProtocolEnum::from(protocol.as_str()))
                .port(port as i32)
                .vpc_id(vpc)
                .target_type(TargetTypeEnum::from(target_type.as_str()))
                .set_health_check_protocol(
                    opt_str(d, "health_check_protocol").map(|p| ProtocolEnum::from(p.as_str())),
                )
                .set_health_check_port(opt_str(d, "health_check_port"))
                .set_health_check_path(opt_str(d, "health_check_path"))
                .set_health_check_interval_seconds(i32_of(d, "health_check_interval"))
                .set_health_check_timeout_seconds(i32_of(d, "health_check_timeout"))
                .set_healthy_threshold_count(i32_of(d, "healthy_threshold"))
                .set_unhealthy_threshold_count(i32_of(d, "unhealthy_threshold"))
                .set_matcher(opt_str(d, "matcher").map(|m| Matcher::builder().http_code(m).build()))
                .set_tags(Some(elb_tags(&all_tags(cx.stack, d))))
                .send()
                .await
                .aws("CreateTargetGroup")?;
        let arn = out
            .target_groups()
            .first()
            .and_then(|g| g.target_group_arn())
            .ok_or_else(|| crate::provider::common::empty("CreateTargetGroup"))?
            .to_string();
        Ok(observed_from(d, arn.clone(), &[("arn", Value::from(arn))]))
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
        if changed.iter().any(|c| HEALTH_FIELDS.contains(&c.as_str())) {
            cx.c.elb
                .modify_target_group()
                .target_group_arn(arn)
                .set_health_check_protocol(
                    opt_str(d, "health_check_protocol").map(|p| ProtocolEnum::from(p.as_str())),
                )
                .set_health_check_port(opt_str(d, "health_check_port"))
                .set_health_check_path(opt_str(d, "health_check_path"))
                .set_health_check_interval_seconds(i32_of(d, "health_check_interval"))
                .set_health_check_timeout_seconds(i32_of(d, "health_check_timeout"))
                .set_healthy_threshold_count(i32_of(d, "healthy_threshold"))
                .set_unhealthy_threshold_count(i32_of(d, "unhealthy_threshold"))
                .set_matcher(opt_str(d, "matcher").map(|m| Matcher::builder().http_code(m).build()))
                .send()
                .await
                .aws("ModifyTargetGroup")?;
        }
        update_tags(cx, arn, current, d).await?;
        Ok(updated_from(current, d))
    }

    async fn delete(&self, cx: &Cx<'_>, current: &Observed) -> Result<(), ProviderError> {
        cx.c.elb
            .delete_target_group()
            .target_group_arn(&current.id)
            .send()
            .await
            .aws_retrying("DeleteTargetGroup", &["ResourceInUse"])?;
        Ok(())
    }

    fn already_exists_codes(&self) -> &'static [&'static str] {
        &[DUPLICATE]
    }
}
