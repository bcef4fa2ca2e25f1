//! `aws_autoscaling_policy`: a target-tracking scaling policy, put whole on create and update.
//!
//! Scaling policies can't be tagged: a policy is the stack's when its group is and its name is
//! `<stack>-<name>`, so a read needs the stack's groups (the listing the group kind makes).

use std::collections::BTreeSet;

use async_trait::async_trait;
use aws_sdk_autoscaling::types::{
    MetricType, PredefinedMetricSpecification, ScalingPolicy, TargetTrackingConfiguration,
};
use infra_core::dsl::{Address, KindSchema};
use infra_core::provider::{Observed, OpContext, ProviderError, Resolved};
use infra_core::registry::KindHandler;
use infra_core::Value;

use super::autoscaling_group::{describe_groups, owned_groups};
use super::{AwsKind, Listings};
use crate::kinds::compute::SCALING_POLICY;
use crate::provider::common::{observed_from, opt_bool, req_f64, req_str, Cx, Props};
use crate::provider::errors::AwsResult;
use crate::provider::import::{cannot_adopt, discovered, observed_at, Discovery, Unowned};

/// The `aws_autoscaling_policy` handler.
pub(super) struct AsgPolicy;

impl KindHandler for AsgPolicy {
    fn schema(&self) -> &'static KindSchema {
        &SCALING_POLICY
    }
}

/// The names of the stack's groups.
fn group_names(observed: Vec<Observed>) -> BTreeSet<String> {
    observed.into_iter().map(|o| o.id).collect()
}

fn observe_policy(cx: &Cx<'_>, p: &ScalingPolicy, groups: &BTreeSet<String>) -> Option<Observed> {
    let group = p.auto_scaling_group_name()?;
    let name = p.policy_name()?;
    let logical = name.strip_prefix(&format!("{}-", cx.stack))?;
    if !groups.contains(group) {
        return None;
    }
    let address = Address::new(SCALING_POLICY.kind, logical);
    Some(Observed {
        address,
        id: p.policy_arn().unwrap_or(name).to_string(),
        props: policy_props(p).0.into(),
        protect: false,
        declared: None,
    })
}

/// A policy's properties as a read gives them (owned read, discovery and adoption share it).
fn policy_props(p: &ScalingPolicy) -> Props {
    let group = p.auto_scaling_group_name();
    let tt = p.target_tracking_configuration();
    let mut props = Props::default();
    props
        .set("autoscaling_group_name", group)
        .set("policy_type", p.policy_type())
        .set(
            "metric",
            tt.and_then(|t| t.predefined_metric_specification())
                .and_then(|m| m.predefined_metric_type())
                .map(|t| t.as_str()),
        )
        .set("target_value", tt.and_then(|t| t.target_value()))
        .set(
            "disable_scale_in",
            tt.map(|t| t.disable_scale_in().unwrap_or(false)),
        )
        .set("arn", p.policy_arn());
    props
}

/// Why adoption is refused.
const REFUSAL: &str = "scaling policies can't be tagged, so infra owns a policy by its group \
     and its name <stack>-<name>, and AWS can't rename a policy; declare it without adopt (the \
     declared policy is put beside this one, which stays until deleted by hand)";

async fn describe_policies(
    cx: &Cx<'_>,
    group: Option<&str>,
    name: Option<&str>,
) -> Result<Vec<ScalingPolicy>, ProviderError> {
    cx.c.asg_read
        .describe_policies()
        .set_auto_scaling_group_name(group.map(str::to_string))
        .set_policy_names(name.map(|n| vec![n.to_string()]))
        .into_paginator()
        .page_size(100)
        .items()
        .send()
        .try_collect()
        .await
        .aws("DescribePolicies")
}

/// Creates or replaces the policy (PutScalingPolicy does both).
async fn put(cx: &Cx<'_>, d: &Resolved) -> Result<Observed, ProviderError> {
    let group = req_str(d, "autoscaling_group_name")?;
    let name = cx.physical_name(&d.address);
    let metric = req_str(d, "metric")?;
    let config = TargetTrackingConfiguration::builder()
        .predefined_metric_specification(
            PredefinedMetricSpecification::builder()
                .predefined_metric_type(MetricType::from(metric.as_str()))
                .build(),
        )
        .target_value(req_f64(d, "target_value")?)
        .disable_scale_in(opt_bool(d, "disable_scale_in").unwrap_or(false))
        .build();
    let out =
        cx.c.asg
            .put_scaling_policy()
            .auto_scaling_group_name(&group)
            .policy_name(&name)
            .policy_type(d.get_str("policy_type").unwrap_or("TargetTrackingScaling"))
            .target_tracking_configuration(config)
            .send()
            .await
            .aws("PutScalingPolicy")?;
    // Some endpoints (moto) leave PolicyARN out of the response: read it back then.
    let arn = match out.policy_arn() {
        Some(a) => a.to_string(),
        None => describe_policies(cx, Some(&group), Some(&name))
            .await?
            .iter()
            .find_map(|p| p.policy_arn().map(str::to_string))
            .unwrap_or_else(|| name.clone()),
    };
    Ok(observed_from(d, arn.clone(), &[("arn", Value::from(arn))]))
}

#[async_trait]
impl AwsKind for AsgPolicy {
    /// Pages of up to 100 policies (the API's largest), kept when their group was handed over
    /// (so the filters apply through the group). Step and simple scaling policies are listed
    /// as inexpressible.
    async fn discover(&self, cx: &Cx<'_>, pass: &mut Discovery<'_>) -> Result<(), ProviderError> {
        let mut pages =
            cx.c.asg_read
                .describe_policies()
                .max_records(100)
                .into_paginator()
                .send();
        while let Some(page) = pages.next().await {
            for p in page.aws("DescribePolicies")?.scaling_policies() {
                let (Some(group), Some(name)) = (p.auto_scaling_group_name(), p.policy_name())
                else {
                    continue;
                };
                if !pass.seen(group) {
                    continue;
                }
                let id = p.policy_arn().unwrap_or(name);
                if p.policy_type() != Some("TargetTrackingScaling")
                    || p.target_tracking_configuration()
                        .and_then(|t| t.predefined_metric_specification())
                        .is_none()
                {
                    pass.inexpressible(
                        "Auto Scaling policy",
                        id,
                        format!(
                            "`{name}` of group {group} is a {} policy; infra declares \
                             target-tracking policies on a predefined metric",
                            p.policy_type().unwrap_or("?")
                        ),
                    );
                    continue;
                }
                let mut found = discovered(&SCALING_POLICY, id, Some(name), policy_props(p));
                found.notes.push(format!("it can't be adopted: {REFUSAL}"));
                pass.object(found);
            }
        }
        Ok(())
    }

    /// `id` is the policy's ARN.
    async fn read_unowned(
        &self,
        cx: &Cx<'_>,
        id: &str,
        address: &Address,
    ) -> Result<Option<Observed>, ProviderError> {
        let policies = describe_policies(cx, None, None).await?;
        Ok(policies
            .iter()
            .find(|p| p.policy_arn() == Some(id))
            .map(|p| observed_at(address, id, policy_props(p), &Unowned::default())))
    }

    fn adoption_refusal(&self) -> Option<&'static str> {
        Some(REFUSAL)
    }

    async fn adopt(
        &self,
        _: &Cx<'_>,
        current: &Observed,
        to: &Address,
    ) -> Result<Observed, ProviderError> {
        Err(cannot_adopt(self.schema().kind, &current.id, to, REFUSAL))
    }
    /// The region's policies (one listing), kept when their group is the stack's.
    async fn read(&self, cx: &Cx<'_>, listings: &Listings) -> Result<Vec<Observed>, ProviderError> {
        let (groups, policies) =
            tokio::try_join!(listings.asg_groups(cx), describe_policies(cx, None, None))?;
        let names = group_names(owned_groups(cx, groups));
        Ok(policies
            .iter()
            .filter_map(|p| observe_policy(cx, p, &names))
            .collect())
    }

    async fn find(&self, cx: &Cx<'_>, a: &Address) -> Result<Option<Observed>, ProviderError> {
        let name = cx.physical_name(a);
        let (groups, policies) = tokio::try_join!(
            describe_groups(cx, None),
            describe_policies(cx, None, Some(&name))
        )?;
        let names = group_names(owned_groups(cx, &groups));
        Ok(policies.iter().find_map(|p| observe_policy(cx, p, &names)))
    }

    async fn create(
        &self,
        cx: &Cx<'_>,
        _: &OpContext,
        d: &Resolved,
    ) -> Result<Observed, ProviderError> {
        put(cx, d).await
    }

    async fn update(
        &self,
        cx: &Cx<'_>,
        _: &OpContext,
        _: &Observed,
        d: &Resolved,
        _: &[String],
    ) -> Result<Observed, ProviderError> {
        put(cx, d).await
    }

    async fn delete(&self, cx: &Cx<'_>, current: &Observed) -> Result<(), ProviderError> {
        let group = current
            .props
            .get("autoscaling_group_name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        cx.c.asg
            .delete_policy()
            .auto_scaling_group_name(group)
            .policy_name(cx.physical_name(&current.address))
            .send()
            .await
            .aws("DeletePolicy")?;
        Ok(())
    }
}
