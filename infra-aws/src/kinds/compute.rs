//! Compute kinds: launch template and auto scaling group.

use infra_core::dsl::{Input, KindSchema, Ref, ResourceSpec};
use infra_core::validate::{Checker, Problem, ValidationContext};
use infra_core::{kind, map, Value};

use super::network::{SecurityGroup, Subnet};

pub(crate) static LAUNCH_TEMPLATE: KindSchema = KindSchema::new("aws_launch_template", "aws")
    .computed(&["id", "arn", "latest_version"])
    .changes_on_update(&["latest_version"])
    .unordered(&["security_group_ids"])
    .validate(validate_launch_template);

kind! {
    /// A launch template. Secure by default: IMDSv2 required and the root volume encrypted. A
    /// change makes a new version with the full data, and auto scaling groups that use the
    /// template follow its latest version.
    pub struct LaunchTemplate => LAUNCH_TEMPLATE
}

impl LaunchTemplate {
    /// A launch template named `name` (`<stack>-<name>` in AWS).
    pub fn new(name: &str) -> Self {
        let mut s = ResourceSpec::new(&LAUNCH_TEMPLATE, name);
        s.set("metadata_http_tokens", "required");
        s.set(
            "root_volume",
            map! { "size_gb" => 20, "type" => "gp3", "encrypted" => true },
        );
        s.set("security_group_ids", Value::List(Vec::new()));
        LaunchTemplate(s)
    }
    /// The AMI id (a literal, or the output of an AMI lookup).
    pub fn image(mut self, ami: impl Into<Input<String>>) -> Self {
        self.0.set("image_id", ami.into());
        self
    }
    /// The instance type (`t3.micro`).
    pub fn instance_type(mut self, t: &str) -> Self {
        self.0.set("instance_type", t);
        self
    }
    /// User data (a cloud-init script), plain text; it is base64-encoded for the API.
    pub fn user_data(mut self, script: &str) -> Self {
        self.0.set("user_data", script);
        self
    }
    /// Security groups of the instances.
    pub fn security_group(mut self, group: &Ref<SecurityGroup>) -> Self {
        self.0.push("security_group_ids", group.id());
        self
    }
    /// The SSH key pair's name.
    pub fn key_name(mut self, key: &str) -> Self {
        self.0.set("key_name", key);
        self
    }
    /// The root volume: size and whether it is encrypted (default 20 GiB gp3, encrypted).
    pub fn root_volume(mut self, size_gb: u32, encrypted: bool) -> Self {
        self.0.set(
            "root_volume",
            map! { "size_gb" => size_gb, "type" => "gp3", "encrypted" => encrypted },
        );
        self
    }
    /// Allow IMDSv1 (`optional` tokens). Not recommended: the policy report flags it.
    pub fn allow_imdsv1(mut self) -> Self {
        self.0.set("metadata_http_tokens", "optional");
        self
    }
    /// The IAM instance profile's ARN (or the output of an instance profile).
    pub fn instance_profile_arn(mut self, arn: impl Into<Input<String>>) -> Self {
        self.0.set("instance_profile_arn", arn.into());
        self
    }
    /// A user tag, applied to the template and propagated to instances and volumes.
    pub fn tag(mut self, key: &str, value: &str) -> Self {
        self.0.insert("tags", key, value);
        self
    }
}

/// Typed outputs of a launch template.
pub trait LaunchTemplateOutputs {
    /// The latest version number, which changes on every update.
    fn latest_version(&self) -> infra_core::Output<i64>;
}

impl LaunchTemplateOutputs for Ref<LaunchTemplate> {
    fn latest_version(&self) -> infra_core::Output<i64> {
        self.output("latest_version")
    }
}

fn validate_launch_template(spec: &ResourceSpec, _: &ValidationContext<'_>) -> Vec<Problem> {
    let mut c = Checker::new(spec);
    if let Some(ami) = c.required_str("image_id") {
        if !ami.starts_with("ami-") {
            c.problem("image_id", format!("`{ami}` is not an AMI id (ami-…)"));
        }
    }
    if let Some(t) = c.required_str("instance_type") {
        if !t.contains('.') {
            c.problem(
                "instance_type",
                format!("`{t}` is not an instance type (e.g. t3.micro)"),
            );
        }
    }
    match spec.get_str("metadata_http_tokens") {
        Some("required" | "optional") => {}
        other => c.problem(
            "metadata_http_tokens",
            format!("must be `required` or `optional`, got {other:?}"),
        ),
    }
    if let Some(size) = spec
        .get("root_volume")
        .and_then(Value::as_map)
        .and_then(|m| m.get("size_gb"))
        .and_then(Value::as_i64)
    {
        if !(1..=16384).contains(&size) {
            c.problem("root_volume", format!("size {size} GiB is outside 1-16384"));
        }
    }
    if let Some(ud) = spec.get_str("user_data") {
        if ud.len() > 12 * 1024 {
            c.problem(
                "user_data",
                format!(
                    "is {} bytes; AWS allows 16 KiB after base64 (about 12 KiB of text)",
                    ud.len()
                ),
            );
        }
    }
    c.finish()
}

pub(crate) static ASG: KindSchema = KindSchema::new("aws_autoscaling_group", "aws")
    .computed(&["id", "arn"])
    .unordered(&["subnet_ids"])
    .validate(validate_asg);

kind! {
    /// An auto scaling group across subnets (availability zones), following a launch template.
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
    /// A tag propagated to the group's instances at launch.
    pub fn tag(mut self, key: &str, value: &str) -> Self {
        self.0.insert("tags", key, value);
        self
    }
}

fn validate_asg(spec: &ResourceSpec, _: &ValidationContext<'_>) -> Vec<Problem> {
    let mut c = Checker::new(spec);
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
    c.finish()
}
