//! Test helpers for your infrastructure's CI, needing no cloud: plan a stack on a throw-away
//! sandbox (or against a saved one), query the plan by kind and properties, assert the policy
//! report, and snapshot the plan with the project's redactions.
//!
//! ```
//! use infra::prelude::*;
//! use infra::testing::{self, assert_no_policy_errors};
//!
//! let mut stack = Stack::new("demo");
//! let vpc = stack.add(Vpc::new("main").cidr("10.0.0.0/16"));
//! stack.add(Subnet::new("a").vpc(&vpc).cidr("10.0.1.0/24").az("us-east-1a"));
//! stack.add(Subnet::new("b").vpc(&vpc).cidr("10.0.2.0/24").az("us-east-1b"));
//!
//! let plan = testing::plan(&stack);
//! assert_eq!(plan.resources::<Subnet>().len(), 2);
//! plan.resource("aws_subnet.a").assert_props(serde_json::json!({ "cidr_block": "10.0.1.0/24" }));
//! assert_no_policy_errors(&plan);
//! ```

use std::path::Path;
use std::sync::Arc;

use infra_core::dsl::{Address, Resource, Stack};
use infra_core::engine::{Engine, Planned};
use infra_core::plan::{Action, Change, Plan, PlanOptions};
use infra_core::policy::PolicyRule;
use infra_core::render;

/// The rules the deploy program runs: every built-in AWS and Swarm rule.
pub fn default_rules() -> Vec<Arc<dyn PolicyRule>> {
    crate::default_rules()
}

/// A plan made for a test, with query helpers.
#[derive(Debug)]
pub struct TestPlan {
    planned: Planned,
}

impl std::ops::Deref for TestPlan {
    type Target = Plan;
    fn deref(&self) -> &Plan {
        &self.planned.plan
    }
}

/// One resource of a plan: its change and its declared properties as JSON.
#[derive(Clone, Debug)]
pub struct PlannedResource {
    /// The change.
    pub change: Change,
    /// The declared (after) values; values known only after apply are
    /// `{"$known_after_apply": "<address>.<output>"}`, secrets `{"$sensitive": "sha256:…"}`.
    pub props: serde_json::Value,
}

impl PlannedResource {
    /// The address.
    pub fn address(&self) -> &Address {
        &self.change.address
    }
    /// The action.
    pub fn action(&self) -> Action {
        self.change.action
    }
    /// True when every key of `expected` is present in the resource's properties with an equal
    /// value; objects match recursively (extra keys allowed), arrays and scalars exactly.
    pub fn matches(&self, expected: &serde_json::Value) -> bool {
        partial_match(&self.props, expected)
    }
    /// Panics with both documents when [`matches`](Self::matches) is false.
    pub fn assert_props(&self, expected: serde_json::Value) {
        assert!(
            self.matches(&expected),
            "{} does not match.\nexpected (subset): {}\nactual: {}",
            self.address(),
            serde_json::to_string_pretty(&expected).unwrap_or_default(),
            serde_json::to_string_pretty(&self.props).unwrap_or_default()
        );
    }
}

fn partial_match(actual: &serde_json::Value, expected: &serde_json::Value) -> bool {
    match (actual, expected) {
        (serde_json::Value::Object(a), serde_json::Value::Object(e)) => e
            .iter()
            .all(|(k, ev)| a.get(k).is_some_and(|av| partial_match(av, ev))),
        (a, e) => a == e,
    }
}

impl TestPlan {
    /// The plan.
    pub fn plan(&self) -> &Plan {
        &self.planned.plan
    }
    /// The plan with what it came from (to apply it with an engine).
    pub fn planned(&self) -> &Planned {
        &self.planned
    }
    /// The plan as text.
    pub fn text(&self) -> String {
        render::plan_text(&self.planned.plan)
    }
    /// The plan as JSON text.
    pub fn json(&self) -> String {
        render::plan_json(&self.planned.plan)
    }
    /// Every planned resource of kind `T`, in plan order: `plan.resources::<Asg>()`.
    pub fn resources<T: Resource>(&self) -> Vec<PlannedResource> {
        self.planned
            .plan
            .changes
            .iter()
            .filter(|c| c.kind == T::SCHEMA.kind)
            .map(|c| self.planned_resource(c))
            .collect()
    }
    /// Resources of kind `T` whose properties match `expected` (see [`PlannedResource::matches`]).
    pub fn find<T: Resource>(&self, expected: serde_json::Value) -> Vec<PlannedResource> {
        self.resources::<T>()
            .into_iter()
            .filter(|r| r.matches(&expected))
            .collect()
    }
    /// The resource at `address`; panics (listing the plan's addresses) when absent.
    pub fn resource(&self, address: &str) -> PlannedResource {
        match self.planned.plan.change(address) {
            Some(c) => self.planned_resource(c),
            None => panic!(
                "{address} is not in the plan; it has: {}",
                self.planned
                    .plan
                    .changes
                    .iter()
                    .map(|c| c.address.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
    fn planned_resource(&self, c: &Change) -> PlannedResource {
        // Declared values from the graph (all of them, not only the changed ones), with the
        // plan's view of unknowns and secrets.
        let mut props = serde_json::Map::new();
        if let Some(spec) = self.planned.graph().get(&c.address) {
            for (k, v) in &spec.props {
                let v = if spec.schema.is_sensitive(k) {
                    v.clone().into_sensitive()
                } else {
                    v.clone()
                };
                props.insert(k.clone(), v.to_json());
            }
        }
        for f in &c.fields {
            if let Some(after) = &f.after {
                props.insert(f.name.clone(), after.to_json());
            }
        }
        PlannedResource {
            change: c.clone(),
            props: serde_json::Value::Object(props),
        }
    }
}

/// Plans `stack` from scratch on a throw-away sandbox with the default rules.
pub fn plan(stack: &Stack) -> TestPlan {
    let dir = std::env::temp_dir().join(format!(
        "infra-testing-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    let p = plan_against(stack, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    p
}

/// Plans `stack` against a saved sandbox directory (e.g. one a previous test applied to).
pub fn plan_against(stack: &Stack, sandbox_dir: &Path) -> TestPlan {
    let engine = engine(sandbox_dir);
    let planned = block_on(engine.plan(stack, &PlanOptions::default()))
        .unwrap_or_else(|e| panic!("planning failed: {e}"));
    TestPlan { planned }
}

/// Plans and applies `stack` on the sandbox at `sandbox_dir`; panics if the apply fails.
pub fn apply(stack: &Stack, sandbox_dir: &Path) -> TestPlan {
    let engine = engine(sandbox_dir);
    let planned = block_on(engine.plan(stack, &PlanOptions::default()))
        .unwrap_or_else(|e| panic!("planning failed: {e}"));
    let report = block_on(engine.apply(&planned, &infra_core::reconcile::NoObserver))
        .unwrap_or_else(|e| panic!("apply failed: {e}"));
    assert!(report.is_success(), "{}", render::report_text(&report));
    TestPlan { planned }
}

/// The sandbox engine the helpers use: `aws` and `swarm` sandboxes in `dir`, default rules.
pub fn engine(dir: &Path) -> Engine {
    let open = |name: &str| {
        crate::sandbox(dir, name).unwrap_or_else(|e| panic!("sandbox at {}: {e}", dir.display()))
    };
    Engine::new()
        .with_provider(open("aws"))
        .with_provider(open("swarm"))
        .with_rules(default_rules())
}

/// Panics, listing them, when the plan has unsuppressed policy errors.
pub fn assert_no_policy_errors(plan: &Plan) {
    let errors: Vec<String> = plan
        .policy
        .findings
        .iter()
        .filter(|f| f.severity == infra_core::policy::Severity::Error && f.suppressed.is_none())
        .map(|f| format!("{} {}: {} (fix: {})", f.rule, f.address, f.message, f.fix))
        .collect();
    assert!(
        errors.is_empty(),
        "policy errors:\n  {}",
        errors.join("\n  ")
    );
}

/// Panics unless the plan has an unsuppressed finding of `rule` on `address`.
pub fn assert_policy_finding(plan: &Plan, rule: &str, address: &str) {
    assert!(
        plan.policy.of_rule(rule).any(|f| f.address == address),
        "expected policy finding {rule} on {address}; findings: {:#?}",
        plan.policy.findings
    );
}

/// Text of a plan with provider ids and digests redacted, for snapshots of plans made against
/// real endpoints (sandbox ids are already deterministic).
pub fn redacted_text(plan: &Plan) -> String {
    redact(&render::plan_text(plan))
}

/// Replaces provider ids (`vpc-0abc…` → `vpc-[id]`, the account in ARNs) with placeholders.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for token in split_keep(text) {
        out.push_str(&redact_token(token));
    }
    out
}

fn split_keep(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if c == '"' || c.is_whitespace() || c == '(' || c == ')' || c == ',' {
            if start < i {
                parts.push(&text[start..i]);
            }
            parts.push(&text[i..i + c.len_utf8()]);
            start = i + c.len_utf8();
        }
    }
    if start < text.len() {
        parts.push(&text[start..]);
    }
    parts
}

fn redact_token(token: &str) -> String {
    if token.starts_with("arn:aws:") {
        // The account id is what changes between accounts and runs; the rest is declared.
        let mut parts: Vec<&str> = token.splitn(6, ':').collect();
        if parts.len() == 6 && parts[4].len() == 12 && parts[4].chars().all(|c| c.is_ascii_digit())
        {
            parts[4] = "[account]";
            return parts.join(":");
        }
        return token.to_string();
    }
    if let Some((prefix, rest)) = token.split_once('-') {
        let is_id = !prefix.is_empty()
            && prefix.len() <= 12
            && prefix.chars().all(|c| c.is_ascii_lowercase())
            && rest.len() >= 8
            && rest.chars().all(|c| c.is_ascii_hexdigit());
        if is_id {
            return format!("{prefix}-[id]");
        }
    }
    token.to_string()
}

/// Snapshots a plan's text (redacted) with insta: `assert_plan_snapshot!("name", &plan)`.
/// Review changes with `cargo insta review`; CI runs with `INSTA_UPDATE=no`.
#[macro_export]
macro_rules! assert_plan_snapshot {
    ($name:expr, $plan:expr) => {
        $crate::testing::insta::assert_snapshot!($name, $crate::testing::redacted_text($plan))
    };
}

pub use insta;

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    nanos ^ (N.fetch_add(1, Ordering::Relaxed) << 32)
}

fn block_on<F>(f: F) -> F::Output
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    // Usable from plain #[test]s and from inside a tokio runtime alike.
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime")
                .block_on(f)
        })
        .join()
        .expect("test helper thread panicked")
    })
}
