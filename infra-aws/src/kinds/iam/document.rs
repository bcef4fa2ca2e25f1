//! Policy documents: a typed builder (statements, principals, conditions), the normalised value
//! form shared with what AWS reads back, the MFA-required document, and the document checks.

use std::collections::BTreeMap;

use infra_core::validate::Checker;
use infra_core::Value;

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

pub(super) fn document_from_json(json: &str) -> Value {
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
