//! Compute kinds: launch template, auto scaling group, target-tracking scaling policy, and the
//! AMI lookup (a data source).

use infra_core::dsl::{Arn, Id, Input, KindSchema, Name, Output, Ref, ResourceSpec};
use infra_core::validate::{Checker, Problem, ValidationContext};
use infra_core::{kind, map, Value};

use super::iam::InstanceProfile;
use super::network::{SecurityGroup, Subnet};
use super::{check_physical_name, check_tags, launch_template_name_char, printable_char};

/// The root device name used when none is given: Amazon Linux's. Images built from Ubuntu use
/// `/dev/sda1`; [`LaunchTemplate::image_from`] takes it from the AMI lookup.
pub const DEFAULT_ROOT_DEVICE: &str = "/dev/xvda";

pub(crate) static LAUNCH_TEMPLATE: KindSchema = KindSchema::new("aws_launch_template", "aws")
    .computed(&["id", "latest_version"])
    .changes_on_update(&["latest_version"])
    .unordered(&["security_group_ids"])
    .sensitive(&["user_data"])
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
            map! { "device_name" => DEFAULT_ROOT_DEVICE, "size_gb" => 20, "type" => "gp3", "encrypted" => true },
        );
        s.set("security_group_ids", Value::List(Vec::new()));
        LaunchTemplate(s)
    }
    /// The AMI id: a literal, or the id of an [`Ami`] lookup. ([`LaunchTemplate::image_from`]
    /// also takes the image's root device name.)
    ///
    /// ```
    /// use infra_aws::{Ami, LaunchTemplate};
    /// use infra_core::Stack;
    /// let mut stack = Stack::new("demo");
    /// let ami = stack.add(Ami::lookup("node").name_pattern("swarm-node-*"));
    /// stack.add(LaunchTemplate::new("a").image(ami.id()).instance_type("t3.micro"));
    /// stack.add(LaunchTemplate::new("b").image("ami-0123456789abcdef0").instance_type("t3.micro"));
    /// ```
    ///
    /// The id of anything but an image does not compile:
    ///
    /// ```compile_fail,E0277
    /// use infra_aws::{LaunchTemplate, Vpc};
    /// use infra_core::Stack;
    /// let mut stack = Stack::new("demo");
    /// let vpc = stack.add(Vpc::new("main").cidr("10.0.0.0/16"));
    /// // the trait bound `Input<Id<Ami>>: From<Output<Id<Vpc>>>` is not satisfied
    /// stack.add(LaunchTemplate::new("node").image(vpc.id()));
    /// ```
    pub fn image(mut self, ami: impl Into<Input<Id<Ami>>>) -> Self {
        self.0.set("image_id", ami.into());
        self
    }
    /// The image found by an [`Ami`] lookup, with its root device name (so the encrypted root
    /// volume settings apply to the image's actual root device).
    pub fn image_from(mut self, ami: &Ref<Ami>) -> Self {
        self.0.set("image_id", ami.id());
        self.set_root("device_name", ami.root_device_name().into());
        self
    }
    fn set_root(&mut self, key: &str, value: Value) {
        let mut m = self
            .0
            .get("root_volume")
            .and_then(Value::as_map)
            .cloned()
            .unwrap_or_default();
        m.insert(key.to_string(), value);
        self.0.set("root_volume", Value::Map(m));
    }
    /// The instance type (`t3.micro`).
    pub fn instance_type(mut self, t: &str) -> Self {
        self.0.set("instance_type", t);
        self
    }
    /// User data (a cloud-init script), plain text; it is base64-encoded for the API. Treated as
    /// secret (it often carries join tokens): plans show only its digest.
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
        self.set_root("size_gb", size_gb.into());
        self.set_root("type", "gp3".into());
        self.set_root("encrypted", encrypted.into());
        self
    }
    /// The image's root device name (default `/dev/xvda`; `/dev/sda1` for Ubuntu images).
    pub fn root_device(mut self, device_name: &str) -> Self {
        self.set_root("device_name", device_name.into());
        self
    }
    /// Allow IMDSv1 (`optional` tokens). Not recommended: the policy report flags it.
    pub fn allow_imdsv1(mut self) -> Self {
        self.0.set("metadata_http_tokens", "optional");
        self
    }
    /// The IAM instance profile's ARN: a literal, or an instance profile's `arn()` (see
    /// [`LaunchTemplate::instance_profile`]). A role's ARN is not an instance profile's, and a
    /// subnet's id is not an ARN: neither compiles.
    ///
    /// ```compile_fail,E0277
    /// use infra_aws::{IamRole, IamRoleOutputs, LaunchTemplate};
    /// use infra_core::Stack;
    /// let mut stack = Stack::new("demo");
    /// let role = stack.add(IamRole::new("node").assumed_by_service("ec2.amazonaws.com"));
    /// // the trait bound `Input<Arn<InstanceProfile>>: From<Output<Arn<IamRole>>>` is not satisfied
    /// stack.add(LaunchTemplate::new("node").instance_profile_arn(role.arn()));
    /// ```
    ///
    /// ```compile_fail,E0277
    /// use infra_aws::{LaunchTemplate, Subnet};
    /// use infra_core::Stack;
    /// let mut stack = Stack::new("demo");
    /// let subnet = stack.add(Subnet::new("a").cidr("10.0.1.0/24").az("us-east-1a"));
    /// // the trait bound `Input<Arn<InstanceProfile>>: From<Output<Id<Subnet>>>` is not satisfied
    /// stack.add(LaunchTemplate::new("node").instance_profile_arn(subnet.id()));
    /// ```
    pub fn instance_profile_arn(mut self, arn: impl Into<Input<Arn<InstanceProfile>>>) -> Self {
        self.0.set("instance_profile_arn", arn.into());
        self
    }
    /// The IAM instance profile the instances run with.
    pub fn instance_profile(self, profile: &Ref<InstanceProfile>) -> Self {
        use super::iam::InstanceProfileOutputs;
        self.instance_profile_arn(profile.arn())
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
    fn latest_version(&self) -> Output<i64>;
}

impl LaunchTemplateOutputs for Ref<LaunchTemplate> {
    fn latest_version(&self) -> Output<i64> {
        self.output("latest_version")
    }
}

fn validate_launch_template(spec: &ResourceSpec, ctx: &ValidationContext<'_>) -> Vec<Problem> {
    let mut c = Checker::new(spec);
    check_physical_name(
        &mut c,
        spec,
        ctx,
        "launch template",
        128,
        launch_template_name_char,
    );
    check_tags(&mut c, spec);
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
    let root = spec.get("root_volume").and_then(Value::as_map);
    if let Some(size) = root.and_then(|m| m.get("size_gb")).and_then(Value::as_i64) {
        if !(1..=16384).contains(&size) {
            c.problem("root_volume", format!("size {size} GiB is outside 1-16384"));
        }
    }
    match root.and_then(|m| m.get("device_name")) {
        Some(Value::String(d)) if d.starts_with("/dev/") => {}
        Some(Value::Ref(_)) => {}
        other => c.problem(
            "root_volume",
            format!("device_name must be a device path such as /dev/xvda, got {other:?}"),
        ),
    }
    match root.and_then(|m| m.get("type")).and_then(Value::as_str) {
        Some("gp2" | "gp3" | "io1" | "io2" | "st1" | "sc1" | "standard") => {}
        other => c.problem(
            "root_volume",
            format!("volume type {other:?} is not an EBS volume type"),
        ),
    }
    if let Some(arn) = spec.get_str("instance_profile_arn") {
        if !arn.starts_with("arn:") || !arn.contains(":instance-profile/") {
            c.problem(
                "instance_profile_arn",
                format!(
                    "`{arn}` is not an instance profile ARN (arn:aws:iam::…:instance-profile/…)"
                ),
            );
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
    .force_new(&["autoscaling_group_name"])
    .computed(&["id", "arn"])
    .validate(validate_scaling_policy);

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

pub(crate) static AMI: KindSchema = KindSchema::new("aws_ami", "aws")
    .computed(&["id", "name", "creation_date", "root_device_name"])
    .validate(validate_ami)
    .data_source();

kind! {
    /// An AMI lookup (a data source, read-only): the newest available image whose name matches a
    /// pattern, e.g. one built by Packer. Its id is the image id.
    ///
    /// ```
    /// use infra_aws::{Ami, LaunchTemplate};
    /// use infra_core::Stack;
    /// let mut stack = Stack::new("demo");
    /// let ami = stack.add(Ami::lookup("node").name_pattern("swarm-node-*"));
    /// stack.add(LaunchTemplate::new("node").image_from(&ami).instance_type("t3.micro"));
    /// ```
    pub struct Ami => AMI
}

impl Ami {
    /// A lookup named `name`, of images owned by this account (`self`) by default.
    pub fn lookup(name: &str) -> Self {
        let mut s = ResourceSpec::new(&AMI, name);
        s.set("owners", Value::List(vec![Value::from("self")]));
        Ami(s)
    }
    /// The name pattern (`*` and `?` wildcards), e.g. `swarm-node-*`.
    pub fn name_pattern(mut self, pattern: &str) -> Self {
        self.0.set("name_pattern", pattern);
        self
    }
    /// The owners to search (`self`, `amazon`, an account id); replaces the default `self`.
    pub fn owners<S: AsRef<str>>(mut self, owners: impl IntoIterator<Item = S>) -> Self {
        self.0.set(
            "owners",
            Value::List(
                owners
                    .into_iter()
                    .map(|o| Value::from(o.as_ref()))
                    .collect(),
            ),
        );
        self
    }
    /// Only images of this architecture (`x86_64`, `arm64`).
    pub fn architecture(mut self, arch: &str) -> Self {
        self.0.set("architecture", arch);
        self
    }
}

/// Typed outputs of an AMI lookup.
pub trait AmiOutputs {
    /// The image's root device name (`/dev/xvda`, `/dev/sda1`).
    fn root_device_name(&self) -> Output<String>;
    /// The image's name.
    fn image_name(&self) -> Output<Name<Ami>>;
}

impl AmiOutputs for Ref<Ami> {
    fn root_device_name(&self) -> Output<String> {
        self.output("root_device_name")
    }
    fn image_name(&self) -> Output<Name<Ami>> {
        self.output("name")
    }
}

fn validate_ami(spec: &ResourceSpec, _: &ValidationContext<'_>) -> Vec<Problem> {
    let mut c = Checker::new(spec);
    c.required_str("name_pattern");
    if spec
        .get("owners")
        .and_then(Value::as_list)
        .is_none_or(<[Value]>::is_empty)
    {
        c.problem(
            "owners",
            "needs at least one owner (`self`, `amazon`, an account id)",
        );
    }
    if let Some(a) = spec.get_str("architecture") {
        if !["x86_64", "arm64", "i386", "x86_64_mac", "arm64_mac"].contains(&a) {
            c.problem("architecture", format!("`{a}` is not an EC2 architecture"));
        }
    }
    c.finish()
}

/// Picks the newest image: latest creation date, then the greatest name (Packer names end in a
/// timestamp), then the greatest id, so the choice is deterministic.
pub(crate) fn newest<'a, T>(
    images: impl IntoIterator<Item = &'a T>,
    key: impl Fn(&'a T) -> (&'a str, &'a str, &'a str),
) -> Option<&'a T> {
    images.into_iter().max_by(|a, b| key(a).cmp(&key(b)))
}

#[cfg(test)]
mod tests {
    use infra_core::value::Reference;
    use infra_core::{Resource, Stack, Value};

    use super::*;
    use crate::kinds::{IamPolicy, IamPolicyOutputs, IamRole, InstanceProfileOutputs, Vpc};

    fn reference<T>(r: &Ref<T>, attribute: &str) -> Value {
        Value::Ref(Reference {
            address: r.address().clone(),
            attribute: attribute.to_string(),
        })
    }

    #[test]
    fn typed_ids_and_arns_are_stored_as_the_same_values_as_before() {
        let mut s = Stack::new("demo");
        let ami = s.add(Ami::lookup("node").name_pattern("node-*"));
        let profile = s.add(InstanceProfile::new("node"));
        let from_lookup = LaunchTemplate::new("a")
            .image(ami.id())
            .instance_profile_arn(profile.arn());
        assert_eq!(
            from_lookup.spec().get("image_id"),
            Some(&reference(&ami, "id"))
        );
        assert_eq!(
            from_lookup.spec().get("instance_profile_arn"),
            Some(&reference(&profile, "arn"))
        );
        let with_profile = LaunchTemplate::new("a").instance_profile(&profile);
        assert_eq!(
            with_profile.spec().get("instance_profile_arn"),
            Some(&reference(&profile, "arn"))
        );
        let image_from = LaunchTemplate::new("a").image_from(&ami);
        assert_eq!(
            image_from.spec().get("image_id"),
            Some(&reference(&ami, "id"))
        );
        let arn = String::from("arn:aws:iam::123456789012:instance-profile/node");
        let literal = LaunchTemplate::new("b")
            .image("ami-0123456789abcdef0")
            .instance_profile_arn(&arn);
        assert_eq!(
            literal.spec().get("image_id"),
            Some(&Value::from("ami-0123456789abcdef0"))
        );
        assert_eq!(
            literal.spec().get("instance_profile_arn"),
            Some(&Value::from(arn))
        );
    }

    #[test]
    fn policy_arns_by_literal_or_output_and_ids_of_other_kinds_are_unchanged() {
        let mut s = Stack::new("demo");
        let policy = s.add(IamPolicy::new("read"));
        let role = IamRole::new("node")
            .attach(&policy)
            .attach_arn(policy.arn())
            .attach_arn("arn:aws:iam::aws:policy/ReadOnlyAccess");
        assert_eq!(
            role.spec().get("managed_policy_arns"),
            Some(&Value::List(vec![
                reference(&policy, "id"),
                reference(&policy, "arn"),
                Value::from("arn:aws:iam::aws:policy/ReadOnlyAccess"),
            ]))
        );
        let vpc = s.add(Vpc::new("main"));
        let subnet = s.add(Subnet::new("a").vpc(&vpc));
        let asg = Asg::new("web").subnets(&[&subnet]);
        assert_eq!(
            asg.spec().get("subnet_ids"),
            Some(&Value::List(vec![reference(&subnet, "id")]))
        );
        assert_eq!(s.resources()[2].get("vpc_id"), Some(&reference(&vpc, "id")));
    }
}
