//! `aws_autoscaling_group`: follows a launch template version, with an instance refresh when
//! its instances run another one. Looked up before every create: a second
//! CreateAutoScalingGroup of a name fails on AWS but silently replaces the group on some
//! endpoints (moto), so "already exists" can't be relied on to find a lost create's group.
//! A delete waits for the group and its instances to be gone (their network interfaces hold
//! subnets and security groups).
//!
//! Load balancer target groups (`target_group_arns`) go in `CreateAutoScalingGroup`
//! (`TargetGroupARNs`) and change with `AttachLoadBalancerTargetGroups` /
//! `DetachLoadBalancerTargetGroups`; the group's listing carries them, so they cost no read.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_autoscaling::types::{
    AutoScalingGroup, Filter, LaunchTemplateSpecification, RefreshPreferences, Tag,
};
use infra_core::dsl::{Address, KindSchema};
use infra_core::provider::{Observed, OpContext, ProviderError, Resolved};
use infra_core::registry::KindHandler;
use infra_core::retry::{poll, Probe};
use infra_core::Value;

use super::{AwsKind, Listings};
use crate::kinds::compute::ASG;
use crate::provider::common::{
    all_tags, observed_from, ownership, req_i64, req_str, strings, tag_diff, updated_from, Cx,
    Props, TAG_DECLARED, TAG_ID, TAG_PROTECT, TAG_STACK,
};
use crate::provider::errors::AwsResult;
use crate::provider::import::{discovered, observed_at, ownership_tags, Discovery, Unowned};

/// The `aws_autoscaling_group` handler.
pub(super) struct Asg;

impl KindHandler for Asg {
    fn schema(&self) -> &'static KindSchema {
        &ASG
    }
}

const RESOURCE_TYPE: &str = "auto-scaling-group";

fn tag(group: &str, key: &str, value: &str) -> Result<Tag, ProviderError> {
    // Ownership and protection stay on the group; the stack's tag, the name and the user's tags
    // also go on the instances it launches.
    let propagate = key != TAG_ID && key != TAG_PROTECT && key != TAG_DECLARED;
    Ok(Tag::builder()
        .resource_id(group)
        .resource_type(RESOURCE_TYPE)
        .key(key)
        .value(value)
        .propagate_at_launch(propagate)
        .build())
}

fn is_live(g: &AutoScalingGroup) -> bool {
    g.status() != Some("Delete in progress")
}

fn observe_group(cx: &Cx<'_>, g: &AutoScalingGroup, address: Option<&Address>) -> Option<Observed> {
    let o = ownership(
        cx.stack,
        ASG.kind,
        g.tags()
            .iter()
            .map(|t| (t.key().unwrap_or(""), t.value().unwrap_or(""))),
    )?;
    if address.is_some_and(|a| a != &o.address) || !is_live(g) {
        return None;
    }
    let name = g.auto_scaling_group_name()?;
    Some(group_props(g, &o.user).observed(o, name))
}

/// A group's properties as a read gives them (owned read, discovery and adoption share it).
fn group_props(g: &AutoScalingGroup, user: &BTreeMap<String, String>) -> Props {
    let lt = g.launch_template();
    let version = lt
        .and_then(|l| l.version())
        .map(|v| match v.parse::<i64>() {
            Ok(n) => Value::Int(n),
            Err(_) => Value::from(v),
        });
    let subnets = g
        .vpc_zone_identifier()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let mut p = Props::default();
    p.set(
        "launch_template_id",
        lt.and_then(|l| l.launch_template_id()),
    )
    .set("launch_template_version", version)
    .strs("subnet_ids", subnets)
    .set("min_size", g.min_size())
    .set("max_size", g.max_size())
    .set("desired_capacity", g.desired_capacity())
    .set("health_check_type", g.health_check_type())
    .set("health_check_grace_period", g.health_check_grace_period())
    .set("arn", g.auto_scaling_group_arn())
    .strs("target_group_arns", g.target_group_arns().iter().cloned())
    .tags(user);
    p
}

/// The tags of a group as `(key, value)` pairs.
fn group_tags(g: &AutoScalingGroup) -> impl Iterator<Item = (&str, &str)> {
    g.tags()
        .iter()
        .map(|t| (t.key().unwrap_or(""), t.value().unwrap_or("")))
}

/// Notes on the parts of a group infra can't declare.
fn group_notes(g: &AutoScalingGroup) -> Vec<String> {
    let mut notes = Vec::new();
    if g.mixed_instances_policy().is_some() {
        notes.push("a mixed instances policy: infra declares one launch template".to_string());
    }
    if g.launch_configuration_name().is_some() {
        notes.push(format!(
            "the launch configuration `{}`: infra declares launch templates only",
            g.launch_configuration_name().unwrap_or_default()
        ));
    }
    if !g.load_balancer_names().is_empty() {
        notes.push("classic load balancers: infra declares target groups only".to_string());
    }
    notes
}

/// The stack's groups (tag-filtered), or the groups of these names.
pub(super) async fn describe_groups(
    cx: &Cx<'_>,
    names: Option<&str>,
) -> Result<Vec<AutoScalingGroup>, ProviderError> {
    let req = cx.c.asg_read.describe_auto_scaling_groups();
    let req = match names {
        Some(n) => req.auto_scaling_group_names(n),
        None => req.filters(
            Filter::builder()
                .name(format!("tag:{TAG_STACK}"))
                .values(cx.stack)
                .build(),
        ),
    };
    req.into_paginator()
        .page_size(100)
        .items()
        .send()
        .try_collect()
        .await
        .aws("DescribeAutoScalingGroups")
}

/// The stack's live groups among `groups`.
pub(super) fn owned_groups(cx: &Cx<'_>, groups: &[AutoScalingGroup]) -> Vec<Observed> {
    groups
        .iter()
        .filter_map(|g| observe_group(cx, g, None))
        .collect()
}

fn launch_template(d: &Resolved) -> Result<LaunchTemplateSpecification, ProviderError> {
    let version = match d.get("launch_template_version") {
        Some(Value::Int(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        _ => "$Latest".to_string(),
    };
    Ok(LaunchTemplateSpecification::builder()
        .launch_template_id(req_str(d, "launch_template_id")?)
        .version(version)
        .build())
}

const GROUP_FIELDS: &[&str] = &[
    "launch_template_id",
    "launch_template_version",
    "subnet_ids",
    "min_size",
    "max_size",
    "desired_capacity",
    "health_check_type",
    "health_check_grace_period",
];

/// Starts an instance refresh when some instance of the group runs another launch template or
/// version than the group's (after a template change, also on a retried update whose first
/// attempt changed the group but failed to start the refresh).
async fn refresh_if_outdated(cx: &Cx<'_>, name: &str, d: &Resolved) -> Result<(), ProviderError> {
    let groups = describe_groups(cx, Some(name)).await?;
    let Some(g) = groups.first() else {
        return Ok(());
    };
    let want = g.launch_template();
    let outdated = g.instances().iter().any(|i| {
        let have = i.launch_template();
        have.and_then(|l| l.launch_template_id()) != want.and_then(|l| l.launch_template_id())
            || have.and_then(|l| l.version()) != want.and_then(|l| l.version())
    });
    if !outdated {
        return Ok(());
    }
    let r =
        cx.c.asg
            .start_instance_refresh()
            .auto_scaling_group_name(name)
            .preferences(
                RefreshPreferences::builder()
                    .min_healthy_percentage(90)
                    .skip_matching(true)
                    .build(),
            )
            .send()
            .await
            .aws_retrying("StartInstanceRefresh", &["InstanceRefreshInProgress"]);
    match r {
        Ok(out) => {
            tracing::info!(address = %d.address, refresh = out.instance_refresh_id().unwrap_or(""), "instance refresh started");
            Ok(())
        }
        // An endpoint that answers with a bare HTTP 500 and no AWS error (moto: not
        // implemented) can't refresh; the group's configuration is right, and instances pick
        // the new version up when they are replaced.
        Err(e) if e.code.starts_with("HTTP5") => {
            tracing::warn!(address = %d.address, error = %e, "the endpoint does not support StartInstanceRefresh; instances keep their launch template version until replaced");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

#[async_trait]
impl AwsKind for Asg {
    /// Pages of up to 100 groups (the API's largest). A group lives in no VPC: the `vpc`
    /// filter keeps those with a subnet of the VPC.
    async fn discover(&self, cx: &Cx<'_>, pass: &mut Discovery<'_>) -> Result<(), ProviderError> {
        let mut pages =
            cx.c.asg_read
                .describe_auto_scaling_groups()
                .max_records(100)
                .into_paginator()
                .send();
        while let Some(page) = pages.next().await {
            for g in page.aws("DescribeAutoScalingGroups")?.auto_scaling_groups() {
                let Some(tags) = Unowned::of(group_tags(g)) else {
                    continue;
                };
                let Some(name) = g.auto_scaling_group_name() else {
                    continue;
                };
                let subnets = g.vpc_zone_identifier().unwrap_or("");
                if !is_live(g)
                    || !pass.matches(name, &tags.all)
                    || !pass.refers_to_seen(subnets.split(',').map(str::trim))
                {
                    continue;
                }
                let mut found = discovered(&ASG, name, Some(name), group_props(g, &tags.user));
                found
                    .aliases
                    .extend(g.auto_scaling_group_arn().map(str::to_string));
                found.notes = group_notes(g);
                pass.groups.push(name.to_string());
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
        let groups = describe_groups(cx, Some(id)).await?;
        Ok(groups.iter().find(|g| is_live(g)).map(|g| {
            let tags = Unowned::parse(group_tags(g));
            observed_at(address, id, group_props(g, &tags.user), &tags)
        }))
    }

    /// One CreateOrUpdateTags call: `infra:stack` (propagated to new instances, as on the
    /// groups infra creates) and `infra:id`.
    async fn adopt(
        &self,
        cx: &Cx<'_>,
        current: &Observed,
        to: &Address,
    ) -> Result<Observed, ProviderError> {
        let tags = ownership_tags(cx, to)
            .iter()
            .map(|(k, v)| tag(&current.id, k, v))
            .collect::<Result<Vec<_>, _>>()?;
        cx.c.asg
            .create_or_update_tags()
            .set_tags(Some(tags))
            .send()
            .await
            .aws("CreateOrUpdateTags")?;
        Ok(Observed {
            address: to.clone(),
            ..current.clone()
        })
    }
    async fn read(&self, cx: &Cx<'_>, listings: &Listings) -> Result<Vec<Observed>, ProviderError> {
        Ok(owned_groups(cx, listings.asg_groups(cx).await?))
    }

    async fn find(&self, cx: &Cx<'_>, a: &Address) -> Result<Option<Observed>, ProviderError> {
        let name = cx.physical_name(a);
        Ok(describe_groups(cx, Some(&name))
            .await?
            .iter()
            .find_map(|g| observe_group(cx, g, Some(a))))
    }

    async fn create(
        &self,
        cx: &Cx<'_>,
        _: &OpContext,
        d: &Resolved,
    ) -> Result<Observed, ProviderError> {
        let name = cx.physical_name(&d.address);
        // A second CreateAutoScalingGroup of a name fails on AWS but silently replaces the group on
        // some endpoints (moto): a group of that name that isn't the stack's must never be touched.
        if !describe_groups(cx, Some(&name)).await?.is_empty() {
            return Err(ProviderError::fatal(
                "AlreadyExists",
                format!(
                    "CreateAutoScalingGroup: a group named `{name}` exists and is not owned by stack `{}`",
                    cx.stack
                ),
            ));
        }
        let tags = all_tags(cx.stack, d)
            .iter()
            .map(|(k, v)| tag(&name, k, v))
            .collect::<Result<Vec<_>, _>>()?;
        cx.c.asg
            .create_auto_scaling_group()
            .auto_scaling_group_name(&name)
            .launch_template(launch_template(d)?)
            .min_size(req_i64(d, "min_size")? as i32)
            .max_size(req_i64(d, "max_size")? as i32)
            .set_desired_capacity(
                d.get("desired_capacity")
                    .and_then(Value::as_i64)
                    .map(|v| v as i32),
            )
            .vpc_zone_identifier(strings(d.get("subnet_ids")).join(","))
            .set_health_check_type(d.get_str("health_check_type").map(str::to_string))
            .set_health_check_grace_period(
                d.get("health_check_grace_period")
                    .and_then(Value::as_i64)
                    .map(|v| v as i32),
            )
            .set_target_group_arns({
                let tgs = strings(d.get("target_group_arns"));
                (!tgs.is_empty()).then_some(tgs)
            })
            .set_tags(Some(tags))
            .send()
            .await
            .aws("CreateAutoScalingGroup")?;
        // The ARN is not in the response.
        let arn = describe_groups(cx, Some(&name)).await.ok().and_then(|g| {
            g.first()
                .and_then(|g| g.auto_scaling_group_arn().map(str::to_string))
        });
        Ok(observed_from(d, name, &[("arn", Value::from(arn))]))
    }

    async fn update(
        &self,
        cx: &Cx<'_>,
        _: &OpContext,
        current: &Observed,
        d: &Resolved,
        changed: &[String],
    ) -> Result<Observed, ProviderError> {
        let name = current.id.clone();
        let has = |f: &str| changed.iter().any(|c| c == f);
        if GROUP_FIELDS.iter().any(|f| has(f)) {
            let mut req =
                cx.c.asg
                    .update_auto_scaling_group()
                    .auto_scaling_group_name(&name);
            if has("launch_template_id") || has("launch_template_version") {
                req = req.launch_template(launch_template(d)?);
            }
            if has("subnet_ids") {
                req = req.vpc_zone_identifier(strings(d.get("subnet_ids")).join(","));
            }
            // Sizes go together: AWS checks min <= desired <= max against the new values.
            if has("min_size") || has("max_size") || has("desired_capacity") {
                req = req
                    .min_size(req_i64(d, "min_size")? as i32)
                    .max_size(req_i64(d, "max_size")? as i32);
                if has("desired_capacity") {
                    req = req.set_desired_capacity(
                        d.get("desired_capacity")
                            .and_then(Value::as_i64)
                            .map(|v| v as i32),
                    );
                }
            }
            if has("health_check_type") {
                req = req.set_health_check_type(d.get_str("health_check_type").map(str::to_string));
            }
            if has("health_check_grace_period") {
                req = req.set_health_check_grace_period(
                    d.get("health_check_grace_period")
                        .and_then(Value::as_i64)
                        .map(|v| v as i32),
                );
            }
            req.send().await.aws("UpdateAutoScalingGroup")?;
        }
        if has("target_group_arns") {
            let want = strings(d.get("target_group_arns"));
            let have = strings(current.props.get("target_group_arns"));
            let attach: Vec<String> = want.iter().filter(|a| !have.contains(a)).cloned().collect();
            let detach: Vec<String> = have.iter().filter(|a| !want.contains(a)).cloned().collect();
            // Attach first: during a target group's replacement the instances stay registered
            // with one group or the other.
            if !attach.is_empty() {
                cx.c.asg
                    .attach_load_balancer_target_groups()
                    .auto_scaling_group_name(&name)
                    .set_target_group_arns(Some(attach))
                    .send()
                    .await
                    .aws("AttachLoadBalancerTargetGroups")?;
            }
            if !detach.is_empty() {
                cx.c.asg
                    .detach_load_balancer_target_groups()
                    .auto_scaling_group_name(&name)
                    .set_target_group_arns(Some(detach))
                    .send()
                    .await
                    .aws("DetachLoadBalancerTargetGroups")?;
            }
        }
        let diff = tag_diff(current, d);
        if !diff.set.is_empty() {
            let tags = diff
                .set
                .iter()
                .map(|(k, v)| tag(&name, k, v))
                .collect::<Result<Vec<_>, _>>()?;
            cx.c.asg
                .create_or_update_tags()
                .set_tags(Some(tags))
                .send()
                .await
                .aws("CreateOrUpdateTags")?;
        }
        if !diff.remove.is_empty() {
            let tags = diff
                .remove
                .iter()
                .map(|k| {
                    Ok(Tag::builder()
                        .resource_id(&name)
                        .resource_type(RESOURCE_TYPE)
                        .key(k)
                        .build())
                })
                .collect::<Result<Vec<_>, ProviderError>>()?;
            cx.c.asg
                .delete_tags()
                .set_tags(Some(tags))
                .send()
                .await
                .aws("DeleteTags")?;
        }
        refresh_if_outdated(cx, &name, d).await?;
        Ok(updated_from(current, d))
    }

    async fn delete(&self, cx: &Cx<'_>, current: &Observed) -> Result<(), ProviderError> {
        let name = &current.id;
        cx.c.asg
            .delete_auto_scaling_group()
            .auto_scaling_group_name(name)
            .force_delete(true)
            .send()
            .await
            .aws_retrying(
                "DeleteAutoScalingGroup",
                &["ResourceInUse", "ScalingActivityInProgress"],
            )?;
        // The group goes once its instances are terminated; subnets and security groups can be
        // deleted only after their network interfaces are released.
        let what = format!("auto scaling group {name} to be deleted");
        poll(&what, cx.waits, || async {
            Ok(match describe_groups(cx, Some(name)).await?.first() {
                None => Probe::Done(()),
                Some(g) => Probe::Waiting(g.status().unwrap_or("still listed").to_string()),
            })
        })
        .await?;
        let what = format!("the instances of {name} to terminate");
        poll(&what, cx.waits, || async {
            let out =
                cx.c.ec2_read
                    .describe_instances()
                    .filters(
                        aws_sdk_ec2::types::Filter::builder()
                            .name("tag:aws:autoscaling:groupName")
                            .values(name)
                            .build(),
                    )
                    .filters(
                        aws_sdk_ec2::types::Filter::builder()
                            .name("instance-state-name")
                            .set_values(Some(
                                ["pending", "running", "stopping", "stopped", "shutting-down"]
                                    .map(String::from)
                                    .to_vec(),
                            ))
                            .build(),
                    )
                    // Every page: a filtered listing may answer an empty page with a NextToken.
                    .into_paginator()
                    .page_size(1000)
                    .items()
                    .send()
                    .try_collect()
                    .await
                    .aws("DescribeInstances")?;
            let alive = out
                .iter()
                .flat_map(|r| r.instances())
                .filter(|i| {
                    i.state().and_then(|s| s.name()).is_some_and(|s| {
                        !matches!(s, aws_sdk_ec2::types::InstanceStateName::Terminated)
                    })
                })
                .count();
            Ok(if alive == 0 {
                Probe::Done(())
            } else {
                Probe::Waiting(format!("{alive} not terminated yet"))
            })
        })
        .await
    }

    fn lookup_before_create(&self) -> bool {
        true
    }
}
