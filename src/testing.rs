//! Test helpers for your infrastructure's CI, needing no cloud: plan a stack on a throw-away
//! sandbox (or against a saved one), query the plan by kind and properties, assert the policy
//! report, and snapshot the plan with the project's redactions (insta filters).
//!
//! Behind the `testing` feature (it brings insta and regex), for dev-dependencies:
//! `infra = { version = "…", default-features = false, features = ["testing"] }` (without the
//! default `live` feature: the sandbox needs no AWS SDK and no bollard, and a first build takes
//! about a minute instead of several).
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

/// Text of a plan with provider ids and account numbers redacted ([`redact`]), for plans made
/// against real endpoints (sandbox ids are already deterministic).
pub fn redacted_text(plan: &Plan) -> String {
    redact(&render::plan_text(plan))
}

/// A provider id: a token of 1 to 12 lowercase letters, `-`, and 8 or more hex digits. A token
/// ends at whitespace, `"`, `(`, `)` or `,`; the pattern takes the delimiter on either side, so
/// an id right after a redacted one (their one delimiter went to the first match) needs a second
/// pass.
const ID: &str = r#"(^|[\s"(),])([a-z]{1,12})-[0-9a-fA-F]{8,}([\s"(),]|$)"#;
/// An ARN's account: `arn:aws:<service>:<region>:<12 digits>:…` at the start of a token.
const ARN: &str = r#"(^|[\s"(),])arn:aws:([^:\s"(),]*):([^:\s"(),]*):[0-9]{12}:"#;

/// The redactions of [`redact`] and [`assert_plan_snapshot!`](crate::assert_plan_snapshot) as
/// insta filters (`(regex, replacement)`, applied in order): provider ids (`vpc-0abc…` →
/// `vpc-[id]`) and the account in ARNs (`arn:aws:iam::123456789012:role/x` →
/// `arn:aws:iam::[account]:role/x`). Extend them for your own snapshots:
///
/// ```
/// let mut filters = infra::testing::snapshot_filters();
/// filters.push((r"sha256:[0-9a-f]+", "[digest]"));
/// let text = "image sha256:3f2a09 in vpc-0123456789abcdef0";
/// infra::testing::insta::with_settings!({ filters => filters }, {
///     infra::testing::insta::assert_snapshot!(text, @"image [digest] in vpc-[id]");
/// });
/// ```
pub fn snapshot_filters() -> Vec<(&'static str, &'static str)> {
    vec![
        (ARN, "${1}arn:aws:${2}:${3}:[account]:"),
        (ID, "${1}${2}-[id]${3}"),
        (ID, "${1}${2}-[id]${3}"),
    ]
}

/// Replaces provider ids (`vpc-0abc…` → `vpc-[id]`) and the account in ARNs with placeholders:
/// [`snapshot_filters`] applied to `text`.
pub fn redact(text: &str) -> String {
    static FILTERS: std::sync::OnceLock<Vec<(regex::Regex, &'static str)>> =
        std::sync::OnceLock::new();
    let filters = FILTERS.get_or_init(|| {
        snapshot_filters()
            .into_iter()
            .map(|(re, with)| (regex::Regex::new(re).expect("a valid filter"), with))
            .collect()
    });
    filters.iter().fold(text.to_string(), |text, (re, with)| {
        re.replace_all(&text, *with).into_owned()
    })
}

/// Snapshots a plan's text with insta, redacted by [`snapshot_filters`]:
/// `assert_plan_snapshot!("name", &plan)`. Review changes with `cargo insta review`; CI runs with
/// `INSTA_UPDATE=no`.
#[macro_export]
macro_rules! assert_plan_snapshot {
    ($name:expr, $plan:expr) => {
        $crate::testing::insta::with_settings!({ filters => $crate::testing::snapshot_filters() }, {
            let plan_text = $crate::core::render::plan_text($plan);
            $crate::testing::insta::assert_snapshot!($name, plan_text)
        })
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

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn ids_and_accounts_are_redacted_token_by_token() {
        let cases = [
            ("vpc-0123abcd", "vpc-[id]"),
            (
                r#"id = "subnet-0a1b2c3d4e5f6a7b8""#,
                r#"id = "subnet-[id]""#,
            ),
            // Adjacent ids share one delimiter.
            (
                "vpc-01234567 sg-89abcdef,igw-DEADBEEF",
                "vpc-[id] sg-[id],igw-[id]",
            ),
            ("(vpc-01234567)(vpc-89abcdef)", "(vpc-[id])(vpc-[id])"),
            (
                "arn:aws:iam::123456789012:role/x arn:aws:s3:us-east-1:123456789012:",
                "arn:aws:iam::[account]:role/x arn:aws:s3:us-east-1:[account]:",
            ),
            // Not ids: too short, not hex, a prefix that isn't 1-12 lowercase letters, more after
            // the hex digits, a prefix inside a longer token.
            ("vpc-0123abc", "vpc-0123abc"),
            ("vpc-0123abcz", "vpc-0123abcz"),
            ("Vpc-0123abcd", "Vpc-0123abcd"),
            ("abcdefghijklm-0123abcd", "abcdefghijklm-0123abcd"),
            ("sg-0123abcd-x", "sg-0123abcd-x"),
            ("a.sg-0123abcd", "a.sg-0123abcd"),
            ("x/sg-0123abcd", "x/sg-0123abcd"),
            // Not an account: 11 digits, or no sixth part.
            (
                "arn:aws:iam::12345678901:role/x",
                "arn:aws:iam::12345678901:role/x",
            ),
            ("arn:aws:iam::123456789012", "arn:aws:iam::123456789012"),
        ];
        for (text, want) in cases {
            assert_eq!(redact(text), want, "{text}");
        }
    }
}
