//! `aws_iam_policy`: a customer-managed policy.

use infra_core::dsl::{Arn, KindSchema, Output, Ref, ResourceSpec};
use infra_core::kind;
use infra_core::validate::{Checker, Problem, ValidationContext};

use super::check_path;
use super::document::{check_document, document_from_json, mfa_required_document, PolicyDocument};
use crate::kinds::{check_physical_name, check_tags, iam_name_char};

pub(crate) static IAM_POLICY: KindSchema = KindSchema::new("aws_iam_policy", "aws")
    .move_replaces(
        "its AWS name is `<stack>-<name>`, from its address, and AWS can't rename a managed policy",
    )
    .force_new(&["path", "description"])
    .computed(&["id", "arn"])
    .validate(validate_policy)
    .codegen(crate::kinds::codegen::iam_policy);

kind! {
    /// A customer-managed IAM policy, named `<stack>-<name>`; its id is its ARN. A document
    /// change publishes a new default version (the oldest non-default version is deleted first
    /// when the limit of five is reached). Deleting it deletes its non-default versions first and
    /// refuses while it is still attached anywhere.
    pub struct IamPolicy => IAM_POLICY
}

impl IamPolicy {
    /// A policy named `name`, at the stack's IAM path.
    pub fn new(name: &str) -> Self {
        let mut s = ResourceSpec::new(&IAM_POLICY, name);
        s.set("path", "/").set("description", "Managed by infra");
        IamPolicy(s)
    }
    /// The MFA-required policy of [`mfa_required_document`], for the human users' group.
    pub fn mfa_required(name: &str) -> Self {
        IamPolicy::new(name)
            .description("Deny everything but MFA self-service unless signed in with MFA")
            .document(mfa_required_document())
    }
    /// The typed document.
    pub fn document(mut self, doc: PolicyDocument) -> Self {
        self.0.set("document", doc.to_value());
        self
    }
    /// A hand-written JSON document; malformed JSON or statements are validation problems.
    pub fn document_json(mut self, json: &str) -> Self {
        self.0.set("document", document_from_json(json));
        self
    }
    /// The description (immutable in AWS: changing it replaces the policy).
    pub fn description(mut self, text: &str) -> Self {
        self.0.set("description", text);
        self
    }
    /// A sub-path below the stack's IAM path (`/`, `/team/`): the policy lives at
    /// `/infra/<stack>/team/`.
    pub fn path(mut self, path: &str) -> Self {
        self.0.set("path", path);
        self
    }
}

/// Typed outputs of a managed policy.
pub trait IamPolicyOutputs {
    /// The policy's ARN (also its id), for [`IamRole::attach_arn`](super::IamRole::attach_arn)
    /// and [`IamGroup::attach_arn`](super::IamGroup::attach_arn).
    fn arn(&self) -> Output<Arn<IamPolicy>>;
}

impl IamPolicyOutputs for Ref<IamPolicy> {
    fn arn(&self) -> Output<Arn<IamPolicy>> {
        self.output("arn")
    }
}

fn validate_policy(spec: &ResourceSpec, ctx: &ValidationContext<'_>) -> Vec<Problem> {
    let mut c = Checker::new(spec);
    check_physical_name(&mut c, spec, ctx, "IAM policy", 128, iam_name_char);
    if let Some(doc) = c.required("document") {
        check_document(&mut c, "document", doc);
        if let Some(len) = doc.as_map().map(|_| doc.to_json().to_string().len()) {
            if len > 6144 {
                c.problem(
                    "document",
                    format!("is {len} characters long; AWS allows 6,144 for a managed policy"),
                );
            }
        }
    }
    if let Some(d) = spec.get_str("description") {
        if d.len() > 1000 {
            c.problem("description", "is longer than 1,000 characters");
        }
    }
    check_path(&mut c, spec, ctx);
    check_tags(&mut c, spec);
    c.finish()
}
