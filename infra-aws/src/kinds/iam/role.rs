//! `aws_iam_role`: trust policy, inline and attached policies.

use std::collections::BTreeMap;

use infra_core::dsl::{Arn, Input, KindSchema, Output, Ref, ResourceSpec};
use infra_core::validate::{Checker, Problem, ValidationContext};
use infra_core::{kind, Value};

use super::document::{check_document, document_from_json, PolicyDocument};
use super::{check_inline, check_path, check_policy_arns, IamPolicy};
use crate::kinds::{check_physical_name, check_tags, iam_name_char};

pub(crate) static IAM_ROLE: KindSchema = KindSchema::new("aws_iam_role", "aws")
    .move_replaces(
        "its AWS name is `<stack>-<name>`, from its address, and AWS can't rename a role",
    )
    .force_new(&["path"])
    .computed(&["id", "arn"])
    .unordered(&["managed_policy_arns"])
    .validate(validate_role)
    .codegen(crate::kinds::codegen::iam_role);

kind! {
    /// An IAM role named `<stack>-<name>` (its id is the name): a trust (assume-role) policy,
    /// inline policies and attached managed policies, each changed one by one.
    ///
    /// ```
    /// use infra_aws::{IamPolicy, IamRole, InstanceProfile, PolicyDocument, Statement};
    /// use infra_core::Stack;
    /// let mut stack = Stack::new("demo");
    /// let policy = stack.add(IamPolicy::new("read").document(
    ///     PolicyDocument::new().statement(Statement::allow().actions(["ec2:Describe*"]).resources(["*"])),
    /// ));
    /// let role = stack.add(
    ///     IamRole::new("node")
    ///         .assume_role_policy(PolicyDocument::assume_role_by_service("ec2.amazonaws.com"))
    ///         .attach(&policy),
    /// );
    /// stack.add(InstanceProfile::new("node").role(&role));
    /// ```
    pub struct IamRole => IAM_ROLE
}

impl IamRole {
    /// The trust policy as JSON (what `import` writes for a document the typed builder
    /// doesn't cover); normalised like a document read back from AWS.
    pub fn assume_role_policy_json(mut self, json: &str) -> Self {
        self.0.set("assume_role_policy", document_from_json(json));
        self
    }

    /// An inline policy given as JSON (see [`IamRole::assume_role_policy_json`]).
    pub fn inline_policy_json(mut self, name: &str, json: &str) -> Self {
        self.0
            .insert("inline_policies", name, document_from_json(json));
        self
    }

    /// A role named `name`, at the stack's IAM path.
    pub fn new(name: &str) -> Self {
        let mut s = ResourceSpec::new(&IAM_ROLE, name);
        s.set("path", "/")
            .set("managed_policy_arns", Value::List(Vec::new()))
            .set("inline_policies", Value::Map(BTreeMap::new()));
        IamRole(s)
    }
    /// The trust policy: who may assume the role.
    pub fn assume_role_policy(mut self, doc: PolicyDocument) -> Self {
        self.0.set("assume_role_policy", doc.to_value());
        self
    }
    /// Shorthand for a trust policy letting one AWS service assume the role.
    pub fn assumed_by_service(self, service: &str) -> Self {
        self.assume_role_policy(PolicyDocument::assume_role_by_service(service))
    }
    /// An inline policy.
    pub fn inline_policy(mut self, name: &str, doc: PolicyDocument) -> Self {
        self.0.insert("inline_policies", name, doc.to_value());
        self
    }
    /// Attaches a customer-managed policy of the stack.
    pub fn attach(mut self, policy: &Ref<IamPolicy>) -> Self {
        self.0.push("managed_policy_arns", policy.id());
        self
    }
    /// Attaches a managed policy by ARN: an AWS managed policy's
    /// (`"arn:aws:iam::aws:policy/ReadOnlyAccess"`), or a policy's `arn()`.
    pub fn attach_arn(mut self, arn: impl Into<Input<Arn<IamPolicy>>>) -> Self {
        self.0.push("managed_policy_arns", arn.into());
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

/// Typed outputs of a role.
pub trait IamRoleOutputs {
    /// The role's ARN (what trust policies and services that assume the role name).
    fn arn(&self) -> Output<Arn<IamRole>>;
}

impl IamRoleOutputs for Ref<IamRole> {
    fn arn(&self) -> Output<Arn<IamRole>> {
        self.output("arn")
    }
}

fn validate_role(spec: &ResourceSpec, ctx: &ValidationContext<'_>) -> Vec<Problem> {
    let mut c = Checker::new(spec);
    check_physical_name(&mut c, spec, ctx, "IAM role", 64, iam_name_char);
    check_path(&mut c, spec, ctx);
    check_tags(&mut c, spec);
    if let Some(doc) = c.required("assume_role_policy") {
        check_document(&mut c, "assume_role_policy", doc);
        let statements = doc
            .as_map()
            .and_then(|m| m.get("Statement"))
            .and_then(Value::as_list)
            .unwrap_or(&[]);
        for (i, s) in statements.iter().enumerate() {
            if s.as_map().is_some_and(|m| !m.contains_key("Principal")) {
                c.problem(
                    &format!("assume_role_policy.Statement[{i}]"),
                    "a trust policy statement needs a Principal",
                );
            }
        }
    }
    check_inline(&mut c, spec);
    check_policy_arns(&mut c, spec);
    c.finish()
}
