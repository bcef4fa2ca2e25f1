//! `aws_iam_user`: a user and its group memberships.

use infra_core::dsl::{KindSchema, Ref, ResourceSpec};
use infra_core::validate::{Checker, Problem, ValidationContext};
use infra_core::{kind, Value};

use super::{check_path, IamGroup};
use crate::kinds::{check_physical_name, check_tags, iam_name_char};

pub(crate) static IAM_USER: KindSchema = KindSchema::new("aws_iam_user", "aws")
    .move_replaces(
        "its AWS name is `<stack>-<name>`, from its address, and AWS can't rename a user",
    )
    .computed(&["id", "arn"])
    .unordered(&["groups"])
    .validate(validate_user)
    .codegen(crate::kinds::codegen::iam_user);

kind! {
    /// An IAM user named `<stack>-<name>` (its id is the name) and its group memberships, changed
    /// one by one. Credentials (passwords, access keys, MFA devices) are the user's own business:
    /// deleting a user that has some fails with AWS's `DeleteConflict` rather than removing them.
    pub struct IamUser => IAM_USER
}

impl IamUser {
    /// A user named `name`, at the stack's IAM path.
    pub fn new(name: &str) -> Self {
        let mut s = ResourceSpec::new(&IAM_USER, name);
        s.set("path", "/").set("groups", Value::List(Vec::new()));
        IamUser(s)
    }
    /// Makes the user a member of a group.
    pub fn group(mut self, group: &Ref<IamGroup>) -> Self {
        self.0.push("groups", group.id());
        self
    }
    /// A sub-path below the stack's IAM path.
    pub fn path(mut self, path: &str) -> Self {
        self.0.set("path", path);
        self
    }
    /// A user tag.
    pub fn tag(mut self, key: &str, value: &str) -> Self {
        self.0.insert("tags", key, value);
        self
    }
}

fn validate_user(spec: &ResourceSpec, ctx: &ValidationContext<'_>) -> Vec<Problem> {
    let mut c = Checker::new(spec);
    check_physical_name(&mut c, spec, ctx, "IAM user", 64, iam_name_char);
    check_path(&mut c, spec, ctx);
    check_tags(&mut c, spec);
    let groups = spec.get("groups").and_then(Value::as_list).unwrap_or(&[]);
    if groups.len() > 10 {
        c.problem(
            "groups",
            format!("member of {} groups; AWS allows 10", groups.len()),
        );
    }
    c.finish()
}
