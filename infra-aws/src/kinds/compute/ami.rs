//! `aws_ami`: the AMI lookup (a data source) and the choice of the newest image.

use infra_core::dsl::{KindSchema, Name, Output, Ref, ResourceSpec};
use infra_core::validate::{Checker, Problem, ValidationContext};
use infra_core::{kind, Value};

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
/// timestamp), then the greatest id, so the choice is deterministic. The provider's (`live`).
#[cfg(feature = "live")]
pub(crate) fn newest<'a, T>(
    images: impl IntoIterator<Item = &'a T>,
    key: impl Fn(&'a T) -> (&'a str, &'a str, &'a str),
) -> Option<&'a T> {
    images.into_iter().max_by(|a, b| key(a).cmp(&key(b)))
}
