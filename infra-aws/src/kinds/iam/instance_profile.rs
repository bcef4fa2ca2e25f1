//! `aws_iam_instance_profile`: the role an EC2 instance runs with.

use infra_core::dsl::{Arn, KindSchema, Output, Ref, ResourceSpec};
use infra_core::kind;
use infra_core::validate::{Checker, Problem, ValidationContext};

use super::{check_path, IamRole};
use crate::kinds::{check_physical_name, iam_name_char};

pub(crate) static INSTANCE_PROFILE: KindSchema = KindSchema::new("aws_iam_instance_profile", "aws")
    .move_replaces("its AWS name is `<stack>-<name>`, from its address, and AWS can't rename a instance profile")
    .force_new(&["path"])
    .computed(&["id", "arn"])
    .validate(validate_instance_profile)
    .codegen(crate::kinds::codegen::instance_profile);

kind! {
    /// An instance profile carrying one role, for EC2 instances (launch templates). Named
    /// `<stack>-<name>`; its id is the name. A just-created profile takes a few seconds to be
    /// usable by EC2: those errors are retried.
    pub struct InstanceProfile => INSTANCE_PROFILE
}

impl InstanceProfile {
    /// An instance profile named `name`, at the stack's IAM path.
    pub fn new(name: &str) -> Self {
        let mut s = ResourceSpec::new(&INSTANCE_PROFILE, name);
        s.set("path", "/");
        InstanceProfile(s)
    }
    /// The role.
    pub fn role(mut self, role: &Ref<IamRole>) -> Self {
        self.0.set("role", role.id());
        self
    }
    /// A sub-path below the stack's IAM path.
    pub fn path(mut self, path: &str) -> Self {
        self.0.set("path", path);
        self
    }
}

/// Typed outputs of an instance profile.
pub trait InstanceProfileOutputs {
    /// The profile's ARN (what launch templates take).
    fn arn(&self) -> Output<Arn<InstanceProfile>>;
}

impl InstanceProfileOutputs for Ref<InstanceProfile> {
    fn arn(&self) -> Output<Arn<InstanceProfile>> {
        self.output("arn")
    }
}

fn validate_instance_profile(spec: &ResourceSpec, ctx: &ValidationContext<'_>) -> Vec<Problem> {
    let mut c = Checker::new(spec);
    check_physical_name(&mut c, spec, ctx, "instance profile", 128, iam_name_char);
    check_path(&mut c, spec, ctx);
    c.required_ref("role", "role");
    c.finish()
}
