//! `aws_iam_group`: attached and inline policies for human users.

use std::collections::BTreeMap;

use infra_core::dsl::{Arn, Input, KindSchema, Ref, ResourceSpec};
use infra_core::validate::{Checker, Problem, ValidationContext};
use infra_core::{kind, Value};

use super::document::{document_from_json, PolicyDocument};
use super::{check_inline, check_path, check_policy_arns, IamPolicy};
use crate::kinds::{check_physical_name, iam_name_char};

pub(crate) static IAM_GROUP: KindSchema = KindSchema::new("aws_iam_group", "aws")
    .move_replaces(
        "its AWS name is `<stack>-<name>`, from its address, and AWS can't rename a group",
    )
    .computed(&["id", "arn"])
    .unordered(&["managed_policy_arns"])
    .validate(validate_group)
    .codegen(crate::kinds::codegen::iam_group);

kind! {
    /// An IAM group named `<stack>-<name>` (its id is the name) with attached and inline
    /// policies. IAM groups can't be tagged: ownership is the stack's IAM path.
    pub struct IamGroup => IAM_GROUP
}

impl IamGroup {
    /// An inline policy given as JSON (what `import` writes); normalised like a document read
    /// back from AWS.
    pub fn inline_policy_json(mut self, name: &str, json: &str) -> Self {
        self.0
            .insert("inline_policies", name, document_from_json(json));
        self
    }

    /// A group named `name`, at the stack's IAM path.
    pub fn new(name: &str) -> Self {
        let mut s = ResourceSpec::new(&IAM_GROUP, name);
        s.set("path", "/")
            .set("managed_policy_arns", Value::List(Vec::new()))
            .set("inline_policies", Value::Map(BTreeMap::new()));
        IamGroup(s)
    }
    /// Attaches a customer-managed policy of the stack.
    pub fn attach(mut self, policy: &Ref<IamPolicy>) -> Self {
        self.0.push("managed_policy_arns", policy.id());
        self
    }
    /// Attaches a managed policy by ARN: an AWS managed policy's, or a policy's `arn()`.
    pub fn attach_arn(mut self, arn: impl Into<Input<Arn<IamPolicy>>>) -> Self {
        self.0.push("managed_policy_arns", arn.into());
        self
    }
    /// An inline policy.
    pub fn inline_policy(mut self, name: &str, doc: PolicyDocument) -> Self {
        self.0.insert("inline_policies", name, doc.to_value());
        self
    }
    /// A sub-path below the stack's IAM path.
    pub fn path(mut self, path: &str) -> Self {
        self.0.set("path", path);
        self
    }
}

fn validate_group(spec: &ResourceSpec, ctx: &ValidationContext<'_>) -> Vec<Problem> {
    let mut c = Checker::new(spec);
    check_physical_name(&mut c, spec, ctx, "IAM group", 128, iam_name_char);
    check_path(&mut c, spec, ctx);
    check_inline(&mut c, spec);
    check_policy_arns(&mut c, spec);
    c.finish()
}
