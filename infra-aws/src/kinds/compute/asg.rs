//! `aws_autoscaling_group`: the auto scaling group builder.

use infra_core::dsl::{Arn, Input, KindSchema, Ref, ResourceSpec};
use infra_core::validate::{Checker, Problem, ValidationContext};
use infra_core::{kind, Value};

use super::super::elb::{TargetGroup, TargetGroupOutputs};
use super::super::network::Subnet;
use super::super::{check_physical_name, check_tags, printable_char};
use super::{LaunchTemplate, LaunchTemplateOutputs};

pub(crate) static ASG: KindSchema = KindSchema::new("aws_autoscaling_group", "aws")
    .move_replaces("its AWS name is `<stack>-<name>`, from its address, and AWS can't rename a auto scaling group")
    .computed(&["id", "arn"])
    .unordered(&["subnet_ids", "target_group_arns"])
    .validate(validate_asg)
    .codegen(crate::kinds::codegen::asg);

kind! {
    /// An auto scaling group across subnets (availability zones), following a launch template.
    /// Its id is its name, `<stack>-<name>`. When the launch template (or its version) changes,
    /// the group follows and an instance refresh rolls the instances. Tags are propagated to the
    /// instances at launch (with `infra:stack` and `Name`).
    ///
    /// With a [`ScalingPolicy`], the desired capacity moves at run time: declare
    /// `.ignore_changes(&["desired_capacity"])` so plans don't fight the policy.
    pub struct Asg => ASG
}

impl Asg {
    /// An auto scaling group named `name` (`<stack>-<name>` in AWS), EC2 health checks with a
    /// 300 s grace period by default.
    pub fn new(name: &str) -> Self {
        let mut s = ResourceSpec::new(&ASG, name);
        s.set("health_check_type", "EC2")
            .set("health_check_grace_period", 300);
        s.set("subnet_ids", Value::List(Vec::new()));
        Asg(s)
    }
    /// The launch template; the group follows its latest version (an instance refresh rolls
    /// instances when it changes).
    pub fn launch_template(mut self, lt: &Ref<LaunchTemplate>) -> Self {
        self.0.set("launch_template_id", lt.id());
        self.0.set("launch_template_version", lt.latest_version());
        self
    }
    /// The subnets to launch into, one per availability zone for HA.
    pub fn subnets(mut self, subnets: &[&Ref<Subnet>]) -> Self {
        self.0.set(
            "subnet_ids",
            Value::List(subnets.iter().map(|s| s.id().into()).collect()),
        );
        self
    }
    /// Minimum, maximum and desired instance counts.
    pub fn size(mut self, min: u32, max: u32, desired: u32) -> Self {
        self.0
            .set("min_size", min)
            .set("max_size", max)
            .set("desired_capacity", desired);
        self
    }
    /// Health check type (`EC2` or `ELB`) and grace period in seconds.
    pub fn health_check(mut self, kind: &str, grace_seconds: u32) -> Self {
        self.0
            .set("health_check_type", kind)
            .set("health_check_grace_period", grace_seconds);
        self
    }
    /// Registers the group's instances with a load balancer target group: on create in
    /// `CreateAutoScalingGroup` (`TargetGroupARNs`), later with
    /// `AttachLoadBalancerTargetGroups` / `DetachLoadBalancerTargetGroups` (changing the target
    /// groups never replaces the group). Instances launched later are registered by Auto
    /// Scaling itself.
    pub fn target_group(self, target_group: &Ref<TargetGroup>) -> Self {
        self.target_group_arn(target_group.arn())
    }
    /// A target group by ARN: a literal, or a [`TargetGroup`]'s `arn()`.
    pub fn target_group_arn(mut self, arn: impl Into<Input<Arn<TargetGroup>>>) -> Self {
        self.0.push("target_group_arns", arn.into());
        self
    }
    /// A tag propagated to the group's instances at launch.
    pub fn tag(mut self, key: &str, value: &str) -> Self {
        self.0.insert("tags", key, value);
        self
    }
}

fn validate_asg(spec: &ResourceSpec, ctx: &ValidationContext<'_>) -> Vec<Problem> {
    let mut c = Checker::new(spec);
    check_physical_name(&mut c, spec, ctx, "auto scaling group", 255, printable_char);
    check_tags(&mut c, spec);
    c.required_ref("launch_template_id", "launch_template");
    let min = c.required("min_size").and_then(Value::as_i64);
    let max = c.required("max_size").and_then(Value::as_i64);
    let desired = spec.get("desired_capacity").and_then(Value::as_i64);
    if let (Some(min), Some(max)) = (min, max) {
        if min > max {
            c.problem(
                "min_size",
                format!("min_size {min} is greater than max_size {max}"),
            );
        } else if let Some(d) = desired {
            if d < min || d > max {
                c.problem(
                    "desired_capacity",
                    format!("desired_capacity {d} is outside [min_size {min}, max_size {max}]"),
                );
            }
        }
    }
    if spec
        .get("subnet_ids")
        .and_then(Value::as_list)
        .is_none_or(<[Value]>::is_empty)
    {
        c.problem(
            "subnet_ids",
            "needs at least one subnet: set them with `.subnets(&[…])`",
        );
    }
    match spec.get_str("health_check_type") {
        Some("EC2" | "ELB") => {}
        other => c.problem(
            "health_check_type",
            format!("must be EC2 or ELB, got {other:?}"),
        ),
    }
    c.int_in("health_check_grace_period", 0, 7200);
    for (i, arn) in spec
        .get("target_group_arns")
        .and_then(Value::as_list)
        .unwrap_or(&[])
        .iter()
        .enumerate()
    {
        if let Value::String(s) = arn {
            if !s.starts_with("arn:") || !s.contains(":targetgroup/") {
                c.problem(
                    &format!("target_group_arns[{i}]"),
                    format!("`{s}` is not a target group ARN (arn:aws:elasticloadbalancing:…:targetgroup/…)"),
                );
            }
        }
    }
    // Subnets in one AZ give no HA: warn through validation only when every subnet is declared
    // in the stack and they share one zone.
    let zones: Vec<Option<&str>> = spec
        .get("subnet_ids")
        .and_then(Value::as_list)
        .unwrap_or(&[])
        .iter()
        .map(|v| {
            v.as_ref()
                .and_then(|r| ctx.get(&r.address))
                .and_then(|s| s.get_str("availability_zone"))
        })
        .collect();
    if zones.len() > 1 && zones.iter().all(Option::is_some) {
        let mut distinct: Vec<&str> = zones.iter().flatten().copied().collect();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() < zones.len() {
            c.problem(
                "subnet_ids",
                format!(
                    "{} subnets in {} availability zone(s): use one subnet per zone",
                    zones.len(),
                    distinct.len()
                ),
            );
        }
    }
    c.finish()
}
