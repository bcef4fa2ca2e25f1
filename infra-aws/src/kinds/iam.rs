//! IAM kinds: managed policies with a typed document builder.

use std::collections::BTreeMap;

use infra_core::dsl::{KindSchema, ResourceSpec};
use infra_core::validate::{Checker, Problem, ValidationContext};
use infra_core::{kind, Value};

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
        }
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

/// Parses a JSON policy document into the normalised value form (single strings become lists),
/// as written by hand or read back from AWS.
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
    /// A customer-managed IAM policy. A document change publishes a new default version.
    pub struct IamPolicy => IAM_POLICY
}

impl IamPolicy {
    /// A policy named `name` (`<stack>-<name>` in AWS), path `/`.
    pub fn new(name: &str) -> Self {
        let mut s = ResourceSpec::new(&IAM_POLICY, name);
        s.set("path", "/").set("description", "Managed by infra");
        IamPolicy(s)
    }
    /// The typed document.
    pub fn document(mut self, doc: PolicyDocument) -> Self {
        self.0.set("document", doc.to_value());
        self
    }
    /// A hand-written JSON document; malformed JSON or statements are validation problems.
    pub fn document_json(mut self, json: &str) -> Self {
        match serde_json::from_str::<serde_json::Value>(json) {
            Ok(v) => self.0.set("document", normalise_document(&v)),
            Err(e) => self
                .0
                .set("document", Value::from(format!("(invalid JSON: {e})"))),
        };
        self
    }
    /// The description (immutable in AWS).
    pub fn description(mut self, text: &str) -> Self {
        self.0.set("description", text);
        self
    }
    /// The path (`/`, `/infra/`).
    pub fn path(mut self, path: &str) -> Self {
        self.0.set("path", path);
        self
    }
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

fn validate_policy(spec: &ResourceSpec, _: &ValidationContext<'_>) -> Vec<Problem> {
    let mut c = Checker::new(spec);
    if let Some(doc) = c.required("document") {
        check_document(&mut c, "document", doc);
    }
    if let Some(p) = spec.get_str("path") {
        if !p.starts_with('/') || !p.ends_with('/') {
            c.problem("path", format!("`{p}` must start and end with `/`"));
        }
    }
    c.finish()
}
