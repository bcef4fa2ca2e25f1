//! IAM kinds: managed policies with a typed document builder, roles (assume-role policy, inline
//! and attached policies), instance profiles, groups and users with group membership, and the
//! MFA-required policy.
//!
//! A stack's IAM entities live under the IAM path `/infra/<stack>/` (plus an optional declared
//! sub-path) and are named `<stack>-<name>`. IAM groups can't be tagged, and IAM's batched
//! listing returns no tags for policies and instance profiles: the path is what marks them as
//! owned, and is what a read lists.

use std::collections::BTreeMap;

use infra_core::dsl::{KindSchema, Ref, ResourceSpec};
use infra_core::validate::{Checker, Problem, ValidationContext};
use infra_core::{kind, Value};

use super::{check_physical_name, check_tags, iam_name_char};

/// Who a statement applies to (trust policies): a service, an AWS account or role ARN, a
/// federated provider, or anyone.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Principal {
    /// An AWS service (`ec2.amazonaws.com`).
    Service(String),
    /// An account id, account root or role/user ARN.
    Aws(String),
    /// A federated identity provider.
    Federated(String),
    /// Anyone (`"*"`).
    Any,
}

impl Principal {
    /// An AWS service principal.
    pub fn service(name: &str) -> Self {
        Principal::Service(name.to_string())
    }
}

/// Allow or deny.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// `Allow`.
    Allow,
    /// `Deny`.
    Deny,
}

/// One statement of a policy document.
#[derive(Clone, Debug)]
pub struct Statement {
    sid: Option<String>,
    effect: Effect,
    actions: Vec<String>,
    not_actions: Vec<String>,
    resources: Vec<String>,
    conditions: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    principals: Vec<Principal>,
}

impl Statement {
    fn new(effect: Effect) -> Self {
        Statement {
            sid: None,
            effect,
            actions: Vec::new(),
            not_actions: Vec::new(),
            resources: Vec::new(),
            conditions: BTreeMap::new(),
            principals: Vec::new(),
        }
    }
    /// A principal (trust policies): who may assume the role.
    pub fn principal(mut self, p: Principal) -> Self {
        self.principals.push(p);
        self
    }
    /// An `Allow` statement.
    pub fn allow() -> Self {
        Statement::new(Effect::Allow)
    }
    /// A `Deny` statement.
    pub fn deny() -> Self {
        Statement::new(Effect::Deny)
    }
    /// A statement id.
    pub fn sid(mut self, sid: &str) -> Self {
        self.sid = Some(sid.to_string());
        self
    }
    /// Actions (`ec2:DescribeInstances`, `s3:Get*`).
    pub fn actions<S: AsRef<str>>(mut self, actions: impl IntoIterator<Item = S>) -> Self {
        self.actions
            .extend(actions.into_iter().map(|a| a.as_ref().to_string()));
        self
    }
    /// Every action except these (`NotAction`).
    pub fn not_actions<S: AsRef<str>>(mut self, actions: impl IntoIterator<Item = S>) -> Self {
        self.not_actions
            .extend(actions.into_iter().map(|a| a.as_ref().to_string()));
        self
    }
    /// Resources (ARNs or `*`).
    pub fn resources<S: AsRef<str>>(mut self, resources: impl IntoIterator<Item = S>) -> Self {
        self.resources
            .extend(resources.into_iter().map(|a| a.as_ref().to_string()));
        self
    }
    /// A condition: `operator` (`Bool`, `StringEquals`, `BoolIfExists`, …), key, values.
    pub fn condition<S: AsRef<str>>(
        mut self,
        operator: &str,
        key: &str,
        values: impl IntoIterator<Item = S>,
    ) -> Self {
        self.conditions
            .entry(operator.to_string())
            .or_default()
            .insert(
                key.to_string(),
                values.into_iter().map(|v| v.as_ref().to_string()).collect(),
            );
        self
    }

    fn to_value(&self) -> Value {
        let mut m = BTreeMap::new();
        if let Some(sid) = &self.sid {
            m.insert("Sid".to_string(), Value::from(sid.as_str()));
        }
        m.insert(
            "Effect".into(),
            Value::from(if self.effect == Effect::Allow {
                "Allow"
            } else {
                "Deny"
            }),
        );
        if !self.actions.is_empty() {
            m.insert("Action".into(), Value::from(self.actions.clone()));
        }
        if !self.not_actions.is_empty() {
            m.insert("NotAction".into(), Value::from(self.not_actions.clone()));
        }
        if !self.resources.is_empty() {
            m.insert("Resource".into(), Value::from(self.resources.clone()));
        }
        if !self.principals.is_empty() {
            m.insert("Principal".into(), principal_value(&self.principals));
        }
        if !self.conditions.is_empty() {
            let cond = self
                .conditions
                .iter()
                .map(|(op, kv)| {
                    (
                        op.clone(),
                        Value::Map(
                            kv.iter()
                                .map(|(k, v)| (k.clone(), Value::from(v.clone())))
                                .collect(),
                        ),
                    )
                })
                .collect();
            m.insert("Condition".into(), Value::Map(cond));
        }
        Value::Map(m)
    }
}

/// The normalised form of a `Principal`: `"*"` for anyone, else a map of type to a list.
fn principal_value(ps: &[Principal]) -> Value {
    if ps.contains(&Principal::Any) {
        return Value::from("*");
    }
    let mut m: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for p in ps {
        let (k, v) = match p {
            Principal::Service(s) => ("Service", s),
            Principal::Aws(s) => ("AWS", s),
            Principal::Federated(s) => ("Federated", s),
            Principal::Any => continue,
        };
        m.entry(k.to_string())
            .or_default()
            .push(Value::from(v.as_str()));
    }
    Value::Map(m.into_iter().map(|(k, v)| (k, Value::List(v))).collect())
}

/// A policy document (`Version` 2012-10-17) built from statements.
#[derive(Clone, Debug, Default)]
pub struct PolicyDocument {
    statements: Vec<Statement>,
}

impl PolicyDocument {
    /// An empty document.
    pub fn new() -> Self {
        PolicyDocument::default()
    }
    /// Adds a statement.
    pub fn statement(mut self, s: Statement) -> Self {
        self.statements.push(s);
        self
    }
    /// A trust policy letting an AWS service (`ec2.amazonaws.com`) assume the role.
    pub fn assume_role_by_service(service: &str) -> Self {
        PolicyDocument::new().statement(
            Statement::allow()
                .principal(Principal::service(service))
                .actions(["sts:AssumeRole"]),
        )
    }
    /// The statements.
    pub fn statements(&self) -> &[Statement] {
        &self.statements
    }
    /// The document as a value (`{"Version": …, "Statement": […]}`), lists always as lists.
    pub fn to_value(&self) -> Value {
        let mut m = BTreeMap::new();
        m.insert("Version".to_string(), Value::from("2012-10-17"));
        m.insert(
            "Statement".to_string(),
            Value::List(self.statements.iter().map(Statement::to_value).collect()),
        );
        Value::Map(m)
    }
}

/// Parses a JSON policy document into the normalised value form (single strings become lists,
/// also inside `Principal` and `Condition`), as written by hand or read back from AWS.
pub fn normalise_document(json: &serde_json::Value) -> Value {
    fn list(v: &serde_json::Value) -> Value {
        match v {
            serde_json::Value::String(s) => Value::List(vec![Value::from(s.as_str())]),
            other => Value::from_json(other.clone()),
        }
    }
    let mut m = BTreeMap::new();
    if let Some(v) = json.get("Version") {
        m.insert("Version".to_string(), Value::from_json(v.clone()));
    }
    let statements = match json.get("Statement") {
        Some(serde_json::Value::Array(a)) => a.clone(),
        Some(one) => vec![one.clone()],
        None => Vec::new(),
    };
    let statements = statements
        .iter()
        .map(|s| {
            let mut st = BTreeMap::new();
            if let serde_json::Value::Object(o) = s {
                for (k, v) in o {
                    let v = match k.as_str() {
                        "Action" | "NotAction" | "Resource" | "NotResource" => list(v),
                        "Principal" | "NotPrincipal" => match v {
                            serde_json::Value::Object(kinds) => Value::Map(
                                kinds.iter().map(|(k, v)| (k.clone(), list(v))).collect(),
                            ),
                            other => Value::from_json(other.clone()),
                        },
                        "Condition" => match v {
                            serde_json::Value::Object(ops) => Value::Map(
                                ops.iter()
                                    .map(|(op, kv)| {
                                        let inner = match kv {
                                            serde_json::Value::Object(kv) => Value::Map(
                                                kv.iter()
                                                    .map(|(k, v)| (k.clone(), list(v)))
                                                    .collect(),
                                            ),
                                            other => Value::from_json(other.clone()),
                                        };
                                        (op.clone(), inner)
                                    })
                                    .collect(),
                            ),
                            other => Value::from_json(other.clone()),
                        },
                        _ => Value::from_json(v.clone()),
                    };
                    st.insert(k.clone(), v);
                }
            }
            Value::Map(st)
        })
        .collect();
    m.insert("Statement".to_string(), Value::List(statements));
    Value::Map(m)
}

pub(crate) static IAM_POLICY: KindSchema = KindSchema::new("aws_iam_policy", "aws")
    .force_new(&["path", "description"])
    .computed(&["id", "arn"])
    .validate(validate_policy);

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

fn document_from_json(json: &str) -> Value {
    match serde_json::from_str::<serde_json::Value>(json) {
        Ok(v) => normalise_document(&v),
        Err(e) => Value::from(format!("(invalid JSON: {e})")),
    }
}

/// The MFA-required policy (after AWS's "self-manage MFA" example): users may see their account
/// settings and manage their own virtual MFA device; every other action is denied unless the
/// request was signed in with MFA (`aws:MultiFactorAuthPresent`).
pub fn mfa_required_document() -> PolicyDocument {
    const SELF_SERVICE: [&str; 9] = [
        "iam:CreateVirtualMFADevice",
        "iam:EnableMFADevice",
        "iam:GetUser",
        "iam:ListMFADevices",
        "iam:ListVirtualMFADevices",
        "iam:ResyncMFADevice",
        "iam:ChangePassword",
        "iam:GetAccountPasswordPolicy",
        "sts:GetSessionToken",
    ];
    PolicyDocument::new()
        .statement(
            Statement::allow()
                .sid("AllowViewAccountInfo")
                .actions(["iam:GetAccountPasswordPolicy", "iam:ListVirtualMFADevices"])
                .resources(["*"]),
        )
        .statement(
            Statement::allow()
                .sid("AllowManageOwnVirtualMFADevice")
                .actions(["iam:CreateVirtualMFADevice", "iam:DeleteVirtualMFADevice"])
                .resources(["arn:aws:iam::*:mfa/${aws:username}"]),
        )
        .statement(
            Statement::allow()
                .sid("AllowManageOwnUserMFA")
                .actions([
                    "iam:DeactivateMFADevice",
                    "iam:EnableMFADevice",
                    "iam:GetUser",
                    "iam:ListMFADevices",
                    "iam:ResyncMFADevice",
                    "iam:ChangePassword",
                ])
                .resources(["arn:aws:iam::*:user/${aws:username}"]),
        )
        .statement(
            Statement::deny()
                .sid("DenyAllExceptListedIfNoMFA")
                .not_actions(SELF_SERVICE)
                .resources(["*"])
                .condition("BoolIfExists", "aws:MultiFactorAuthPresent", ["false"]),
        )
}

/// Checks a policy document value, recording problems against `field`.
pub fn check_document(c: &mut Checker<'_>, field: &str, doc: &Value) {
    let Some(m) = doc.as_map() else {
        match doc.as_str() {
            Some(s) => c.problem(field, s.to_string()),
            None => c.problem(field, "must be a policy document"),
        }
        return;
    };
    match m.get("Version").and_then(Value::as_str) {
        Some("2012-10-17" | "2008-10-17") => {}
        other => c.problem(field, format!("Version must be 2012-10-17, got {other:?}")),
    }
    let statements = m.get("Statement").and_then(Value::as_list).unwrap_or(&[]);
    if statements.is_empty() {
        c.problem(field, "has no statements");
    }
    for (i, s) in statements.iter().enumerate() {
        let at = format!("{field}.Statement[{i}]");
        let Some(s) = s.as_map() else {
            c.problem(&at, "must be an object");
            continue;
        };
        match s.get("Effect").and_then(Value::as_str) {
            Some("Allow" | "Deny") => {}
            other => c.problem(
                &at,
                format!(
                    "Effect must be Allow or Deny, got {}",
                    other.map_or("nothing".to_string(), |o| format!("`{o}`"))
                ),
            ),
        }
        let actions: Vec<&str> = ["Action", "NotAction"]
            .iter()
            .filter_map(|k| s.get(*k).and_then(Value::as_list))
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if actions.is_empty() {
            c.problem(&at, "needs at least one Action (or NotAction)");
        }
        for a in actions {
            let ok = a == "*"
                || a.split_once(':').is_some_and(|(svc, act)| {
                    !svc.is_empty()
                        && !act.is_empty()
                        && svc
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                });
            if !ok {
                c.problem(
                    &at,
                    format!("action `{a}` is not of the form service:Action"),
                );
            }
        }
        if !s.contains_key("Resource")
            && !s.contains_key("NotResource")
            && !s.contains_key("Principal")
        {
            c.problem(&at, "needs a Resource (or NotResource)");
        }
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

/// Checks the declared IAM sub-path (`/`, `/team/`).
fn check_path(c: &mut Checker<'_>, spec: &ResourceSpec, ctx: &ValidationContext<'_>) {
    let Some(p) = spec.get_str("path") else {
        c.problem("path", "is required");
        return;
    };
    if !p.starts_with('/') || !p.ends_with('/') {
        c.problem("path", format!("`{p}` must start and end with `/`"));
    }
    if p.contains("//") || p.chars().any(|ch| !ch.is_ascii_graphic()) {
        c.problem("path", format!("`{p}` is not a valid IAM path"));
    }
    let full = super::iam_path(ctx.stack().name(), p);
    if full.len() > 512 {
        c.problem(
            "path",
            format!("the IAM path `{full}` is longer than 512 characters"),
        );
    }
}

/// Checks a map of inline policies (name → document).
fn check_inline(c: &mut Checker<'_>, spec: &ResourceSpec) {
    let Some(m) = spec.get("inline_policies").and_then(Value::as_map) else {
        return;
    };
    for (name, doc) in m {
        if name.is_empty() || name.len() > 128 || !name.chars().all(iam_name_char) {
            c.problem(
                "inline_policies",
                format!(
                    "`{name}` is not a valid policy name (1-128 of letters, digits and _+=,.@-)"
                ),
            );
        }
        check_document(c, &format!("inline_policies.{name}"), doc);
    }
}

/// Checks a list of managed policy ARNs.
fn check_policy_arns(c: &mut Checker<'_>, spec: &ResourceSpec) {
    let arns = spec
        .get("managed_policy_arns")
        .and_then(Value::as_list)
        .unwrap_or(&[]);
    if arns.len() > 20 {
        c.problem(
            "managed_policy_arns",
            format!("{} policies attached; AWS allows at most 20", arns.len()),
        );
    }
    for a in arns.iter().filter_map(Value::as_str) {
        if !a.starts_with("arn:") || !a.contains(":policy/") {
            c.problem(
                "managed_policy_arns",
                format!("`{a}` is not a managed policy ARN (arn:aws:iam::…:policy/…)"),
            );
        }
    }
    let mut seen: Vec<String> = arns.iter().map(|v| v.to_json().to_string()).collect();
    let n = seen.len();
    seen.sort();
    seen.dedup();
    if seen.len() != n {
        c.problem("managed_policy_arns", "a policy is attached twice");
    }
}

pub(crate) static IAM_ROLE: KindSchema = KindSchema::new("aws_iam_role", "aws")
    .force_new(&["path"])
    .computed(&["id", "arn"])
    .unordered(&["managed_policy_arns"])
    .validate(validate_role);

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
    /// Attaches a managed policy by ARN (e.g. an AWS managed policy).
    pub fn attach_arn(mut self, arn: &str) -> Self {
        self.0.push("managed_policy_arns", arn);
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

pub(crate) static INSTANCE_PROFILE: KindSchema = KindSchema::new("aws_iam_instance_profile", "aws")
    .force_new(&["path"])
    .computed(&["id", "arn"])
    .validate(validate_instance_profile);

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
    fn arn(&self) -> infra_core::Output<String>;
}

impl InstanceProfileOutputs for Ref<InstanceProfile> {
    fn arn(&self) -> infra_core::Output<String> {
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

pub(crate) static IAM_GROUP: KindSchema = KindSchema::new("aws_iam_group", "aws")
    .computed(&["id", "arn"])
    .unordered(&["managed_policy_arns"])
    .validate(validate_group);

kind! {
    /// An IAM group named `<stack>-<name>` (its id is the name) with attached and inline
    /// policies. IAM groups can't be tagged: ownership is the stack's IAM path.
    pub struct IamGroup => IAM_GROUP
}

impl IamGroup {
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
    /// Attaches a managed policy by ARN.
    pub fn attach_arn(mut self, arn: &str) -> Self {
        self.0.push("managed_policy_arns", arn);
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

pub(crate) static IAM_USER: KindSchema = KindSchema::new("aws_iam_user", "aws")
    .computed(&["id", "arn"])
    .unordered(&["groups"])
    .validate(validate_user);

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
