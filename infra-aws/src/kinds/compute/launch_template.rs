//! `aws_launch_template`: the launch template builder and its typed outputs.

use infra_core::dsl::{Arn, Id, Input, KindSchema, Output, Ref, ResourceSpec};
use infra_core::validate::{Checker, Problem, ValidationContext};
use infra_core::{kind, map, Value};

use super::super::iam::InstanceProfile;
use super::super::network::SecurityGroup;
use super::super::{check_physical_name, check_tags, launch_template_name_char};
use super::{Ami, AmiOutputs};

/// The root device name used when none is given: Amazon Linux's. Images built from Ubuntu use
/// `/dev/sda1`; [`LaunchTemplate::image_from`] takes it from the AMI lookup.
pub const DEFAULT_ROOT_DEVICE: &str = "/dev/xvda";

pub(crate) static LAUNCH_TEMPLATE: KindSchema = KindSchema::new("aws_launch_template", "aws")
    .move_replaces("its AWS name is `<stack>-<name>`, from its address, and AWS can't rename a launch template")
    .computed(&["id", "latest_version"])
    .changes_on_update(&["latest_version"])
    .unordered(&["security_group_ids"])
    .sensitive(&["user_data"])
    .validate(validate_launch_template)
    .codegen(crate::kinds::codegen::launch_template);

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
        use super::super::iam::InstanceProfileOutputs;
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
