//! Policies: rules checked on every plan, before anything is applied.
//!
//! A rule ([`PolicyRule`]) looks at the validated graph and reports violations. Each finding has
//! the rule's id, a severity ([`Severity::Error`] blocks apply, [`Severity::Warning`] informs),
//! the resource address and a fix hint. A finding can be suppressed per resource with a
//! mandatory reason (`.suppress("SEC001", "why")` on the builder); the suppression shows in the
//! plan. Rules live next to the kinds they inspect (`infra_aws::policy`, `infra_swarm::policy`);
//! users add their own by implementing [`PolicyRule`].

use std::collections::BTreeSet;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::dsl::{Address, ResourceSpec};
use crate::graph::Graph;
use crate::validate::Problem;

/// How serious a finding is.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Severity {
    /// Blocks apply unless suppressed.
    Error,
    /// Shown, never blocks.
    Warning,
}

/// A violation a rule reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The resource at fault.
    pub address: Address,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub fix: String,
}

impl Violation {
    /// A violation on `spec`.
    pub fn new(spec: &ResourceSpec, message: impl Into<String>, fix: impl Into<String>) -> Self {
        Violation {
            address: spec.address.clone(),
            message: message.into(),
            fix: fix.into(),
        }
    }
}

/// A policy rule.
pub trait PolicyRule: Send + Sync {
    /// A stable id (`SEC001`), used to suppress it.
    fn id(&self) -> &str;
    /// Its severity.
    fn severity(&self) -> Severity;
    /// One line on what it checks.
    fn summary(&self) -> &str;
    /// The equivalent checkov / cdk-nag rules (`CKV_AWS_24`, `AwsSolutions-EC23`).
    fn references(&self) -> &[&str] {
        &[]
    }
    /// The violations in a graph.
    fn check(&self, graph: &Graph) -> Vec<Violation>;
}

/// One finding in a plan.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
pub struct Finding {
    /// The rule id.
    pub rule: String,
    /// Its severity.
    pub severity: Severity,
    /// The resource at fault.
    pub address: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub fix: String,
    /// Equivalent checkov / cdk-nag rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<String>,
    /// Set when suppressed on the resource: the reason given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suppressed: Option<String>,
}

/// Every finding of a plan, sorted (errors first, then by address and rule).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PolicyReport {
    /// The findings.
    pub findings: Vec<Finding>,
    /// Unsuppressed errors (they block apply).
    pub errors: usize,
    /// Unsuppressed warnings.
    pub warnings: usize,
    /// Suppressed findings.
    pub suppressed: usize,
    /// The rules that ran.
    pub rules: Vec<String>,
}

impl PolicyReport {
    /// True when nothing blocks apply.
    pub fn passes(&self) -> bool {
        self.errors == 0
    }
    /// Unsuppressed findings of one rule.
    pub fn of_rule<'a>(&'a self, rule: &'a str) -> impl Iterator<Item = &'a Finding> + 'a {
        self.findings
            .iter()
            .filter(move |f| f.rule == rule && f.suppressed.is_none())
    }
}

/// A shared set of rules.
pub type Rules = Vec<Arc<dyn PolicyRule>>;

/// Runs the rules on a graph and applies the resources' suppressions.
pub fn evaluate(graph: &Graph, rules: &[Arc<dyn PolicyRule>]) -> PolicyReport {
    let mut findings = Vec::new();
    let known: BTreeSet<&str> = rules.iter().map(|r| r.id()).collect();
    for rule in rules {
        for v in rule.check(graph) {
            let suppressed = graph
                .get(&v.address)
                .and_then(|s| s.options.suppress.get(rule.id()))
                .cloned();
            findings.push(Finding {
                rule: rule.id().to_string(),
                severity: rule.severity(),
                address: v.address.to_string(),
                message: v.message,
                fix: v.fix,
                references: rule.references().iter().map(|r| r.to_string()).collect(),
                suppressed,
            });
        }
    }
    // A suppression naming no registered rule is almost always a typo: say so.
    for spec in graph.in_order() {
        for id in spec
            .options
            .suppress
            .keys()
            .filter(|id| !known.contains(id.as_str()))
        {
            findings.push(Finding {
                rule: "POLICY000".into(),
                severity: Severity::Warning,
                address: spec.address.to_string(),
                message: format!("suppresses `{id}`, which is not a registered rule"),
                fix: "check the rule id (the plan's policy report lists the rules that ran)".into(),
                references: Vec::new(),
                suppressed: None,
            });
        }
    }
    findings.sort_by(|a, b| {
        (
            a.suppressed.is_some(),
            a.severity,
            &a.address,
            &a.rule,
            &a.message,
        )
            .cmp(&(
                b.suppressed.is_some(),
                b.severity,
                &b.address,
                &b.rule,
                &b.message,
            ))
    });
    findings.dedup();
    let count = |sev: Severity| {
        findings
            .iter()
            .filter(|f| f.severity == sev && f.suppressed.is_none())
            .count()
    };
    let mut ids: Vec<String> = known.iter().map(|s| s.to_string()).collect();
    ids.sort();
    PolicyReport {
        errors: count(Severity::Error),
        warnings: count(Severity::Warning),
        suppressed: findings.iter().filter(|f| f.suppressed.is_some()).count(),
        findings,
        rules: ids,
    }
}

/// Validation of suppressions themselves: a reason is mandatory.
pub(crate) fn check_suppressions(spec: &ResourceSpec) -> Vec<Problem> {
    spec.options
        .suppress
        .iter()
        .filter(|(_, reason)| reason.trim().is_empty())
        .map(|(id, _)| {
            Problem::new(
                &spec.address,
                "suppress",
                format!("suppressing `{id}` needs a reason"),
            )
        })
        .collect()
}
