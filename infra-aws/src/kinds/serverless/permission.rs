//! `aws_lambda_permission`: one statement of a function's resource policy, letting a principal
//! (an AWS service, an account) invoke it.
//!
//! A statement can't be tagged: it belongs to its tagged function (DESIGN.md, "Sub-objects
//! that cannot be tagged"). Its statement id is `<stack>-<name>`, which is how a read tells the
//! stack's statements on the stack's functions from statements added by hand. A statement
//! can't be changed in place either (AWS has no update): every field forces a replacement.

use infra_core::dsl::{Arn, Id, Input, KindSchema, ResourceSpec};
use infra_core::validate::{Checker, Problem, ValidationContext};
use infra_core::{kind, Value};

use super::LambdaFunction;
use crate::kinds::check_physical_name;

pub(crate) static LAMBDA_PERMISSION: KindSchema = KindSchema::new("aws_lambda_permission", "aws")
    .force_new(&[
        "function_name",
        "action",
        "principal",
        "source_arn",
        "source_account",
    ])
    .validate(validate_permission)
    .codegen(crate::kinds::codegen::lambda_permission);

kind! {
    /// Lets `principal` call `action` (default `lambda:InvokeFunction`) on a function, from
    /// `source_arn` only:
    ///
    /// ```
    /// # use infra_aws::*;
    /// # let mut s = infra_core::Stack::new("prod");
    /// # let f = s.add(LambdaFunction::new("node-events"));
    /// # let rule = s.add(EventRule::new("node-events"));
    /// s.add(
    ///     LambdaPermission::new("node-events-from-rule")
    ///         .function(f.name())
    ///         .principal("events.amazonaws.com")
    ///         .source_arn(rule.arn()),
    /// );
    /// ```
    ///
    /// A service principal without a source ARN (any rule, any API of any account could
    /// invoke the function: the confused deputy) and a wildcard principal are policy findings
    /// (SEC020).
    pub struct LambdaPermission => LAMBDA_PERMISSION
}

impl LambdaPermission {
    /// A statement `<stack>-<name>` allowing `lambda:InvokeFunction`.
    pub fn new(name: &str) -> Self {
        let mut s = ResourceSpec::new(&LAMBDA_PERMISSION, name);
        s.set("action", "lambda:InvokeFunction");
        LambdaPermission(s)
    }
    /// The function: a function of the stack (`function.name()`) or a function's name.
    pub fn function(mut self, function: impl Into<Input<Id<LambdaFunction>>>) -> Self {
        self.0.set("function_name", function.into());
        self
    }
    /// Who may call it: a service (`apigateway.amazonaws.com`, `events.amazonaws.com`), an
    /// account id or ARN.
    pub fn principal(mut self, principal: &str) -> Self {
        self.0.set("principal", principal);
        self
    }
    /// The action (`lambda:InvokeFunction`, `lambda:InvokeFunctionUrl`).
    pub fn action(mut self, action: &str) -> Self {
        self.0.set("action", action);
        self
    }
    /// Only calls on behalf of this resource (an EventBridge rule's ARN, an HTTP API's
    /// `source_arn()`); an ARN pattern (`*`) is allowed, as `ArnLike` matches it.
    pub fn source_arn<T>(mut self, arn: impl Into<Input<Arn<T>>>) -> Self {
        self.0.set("source_arn", arn.into());
        self
    }
    /// Only calls on behalf of resources of this account.
    pub fn source_account(mut self, account: &str) -> Self {
        self.0.set("source_account", account);
        self
    }
}

/// Characters AWS allows in statement ids (`[a-zA-Z0-9-_.]`).
fn statement_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_.".contains(c)
}

fn validate_permission(spec: &ResourceSpec, ctx: &ValidationContext<'_>) -> Vec<Problem> {
    let mut c = Checker::new(spec);
    check_physical_name(&mut c, spec, ctx, "statement id", 100, statement_id_char);
    c.required_ref("function_name", "function");
    if let Some(p) = c.required_str("principal") {
        if p.contains(char::is_whitespace) {
            c.problem("principal", format!("`{p}` contains white space"));
        }
    }
    if let Some(a) = c.required_str("action") {
        if !a.starts_with("lambda:") {
            c.problem(
                "action",
                format!("`{a}` is not a Lambda action (`lambda:InvokeFunction`)"),
            );
        }
    }
    match spec.get("source_arn") {
        None | Some(Value::Ref(_)) => {}
        Some(Value::String(s)) if s.starts_with("arn:") => {}
        Some(other) => c.problem("source_arn", format!("{other} is not an ARN")),
    }
    if let Some(a) = spec.get_str("source_account") {
        if a.len() != 12 || !a.chars().all(|ch| ch.is_ascii_digit()) {
            c.problem(
                "source_account",
                format!("`{a}` is not an account id (12 digits)"),
            );
        }
    }
    c.finish()
}
