//! `aws_autoscaling_policy`: the target-tracking scaling policy builder.

use infra_core::dsl::{KindSchema, Ref, ResourceSpec};
use infra_core::validate::{Checker, Problem, ValidationContext};
use infra_core::{kind, Value};

use super::super::{check_physical_name, printable_char};
use super::Asg;

/// The predefined metrics a target-tracking policy can follow without a load balancer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ScalingPolicyMetric {
    /// Average CPU utilisation of the group, in percent.
    AverageCpu,
    /// Average bytes received per instance.
    AverageNetworkIn,
    /// Average bytes sent per instance.
    AverageNetworkOut,
}

impl ScalingPolicyMetric {
    fn api_name(self) -> &'static str {
        match self {
            ScalingPolicyMetric::AverageCpu => "ASGAverageCPUUtilization",
            ScalingPolicyMetric::AverageNetworkIn => "ASGAverageNetworkIn",
            ScalingPolicyMetric::AverageNetworkOut => "ASGAverageNetworkOut",
        }
    }
}

pub(crate) static SCALING_POLICY: KindSchema = KindSchema::new("aws_autoscaling_policy", "aws")
    .move_replaces(
        "its AWS name is `<stack>-<name>`, from its address, and AWS can't rename a scaling policy",
    )
    .force_new(&["autoscaling_group_name"])
    .computed(&["id", "arn"])
    .validate(validate_scaling_policy)
    .codegen(crate::kinds::codegen::scaling_policy);

kind! {
    /// A target-tracking scaling policy of an auto scaling group (e.g. keep average CPU at 60 %).
    /// Scaling policies can't be tagged: a policy belongs to its (tagged) group and is named
    /// `<stack>-<name>`. Its id is its ARN.
    pub struct ScalingPolicy => SCALING_POLICY
}

impl ScalingPolicy {
    /// A target-tracking policy named `name`.
    pub fn target_tracking(name: &str) -> Self {
        let mut s = ResourceSpec::new(&SCALING_POLICY, name);
        s.set("policy_type", "TargetTrackingScaling")
            .set("disable_scale_in", false);
        ScalingPolicy(s)
    }
    /// The auto scaling group it scales.
    pub fn asg(mut self, asg: &Ref<Asg>) -> Self {
        self.0.set("autoscaling_group_name", asg.id());
        self
    }
    /// Keep the group's average CPU utilisation at `percent`.
    pub fn cpu_target(self, percent: f64) -> Self {
        self.target(ScalingPolicyMetric::AverageCpu, percent)
    }
    /// Keep a predefined metric at `value`.
    pub fn target(mut self, metric: ScalingPolicyMetric, value: f64) -> Self {
        self.0
            .set("metric", metric.api_name())
            .set("target_value", value);
        self
    }
    /// Only scale out; never remove instances.
    pub fn disable_scale_in(mut self) -> Self {
        self.0.set("disable_scale_in", true);
        self
    }
}

fn validate_scaling_policy(spec: &ResourceSpec, ctx: &ValidationContext<'_>) -> Vec<Problem> {
    let mut c = Checker::new(spec);
    check_physical_name(&mut c, spec, ctx, "scaling policy", 255, printable_char);
    c.required_ref("autoscaling_group_name", "asg");
    match c.required("metric").and_then(Value::as_str) {
        Some("ASGAverageCPUUtilization" | "ASGAverageNetworkIn" | "ASGAverageNetworkOut")
        | None => {}
        Some(other) => c.problem("metric", format!("`{other}` is not a supported metric")),
    }
    if let Some(v) = c.required("target_value").and_then(Value::as_f64) {
        if v <= 0.0 {
            c.problem("target_value", format!("must be positive, got {v}"));
        }
        if spec.get_str("metric") == Some("ASGAverageCPUUtilization") && v > 100.0 {
            c.problem(
                "target_value",
                format!("CPU utilisation {v} is above 100 %"),
            );
        }
    }
    if let Some(asg) = ctx.referenced(spec, "autoscaling_group_name") {
        if !asg.options.ignore_changes.contains("desired_capacity")
            && asg.get("desired_capacity").is_some()
        {
            c.problem(
                "autoscaling_group_name",
                format!(
                    "{} declares a desired capacity that this policy will move: add \
                     `.ignore_changes(&[\"desired_capacity\"])` to the group so plans don't undo the scaling",
                    asg.address
                ),
            );
        }
    }
    c.finish()
}
