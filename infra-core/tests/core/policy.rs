//! Policies: findings in the plan, errors block apply, suppressions need a reason.

use std::sync::Arc;

use infra_core::dsl::{Resource, Stack};
use infra_core::engine::Engine;
use infra_core::graph::Graph;
use infra_core::plan::PlanOptions;
use infra_core::policy::{PolicyRule, Severity, Violation};
use infra_core::reconcile::NoObserver;
use infra_core::render;
use infra_core::sandbox::SandboxProvider;

use crate::kinds::{Host, Network};

/// Hosts bigger than 8 are an error; an example of a user-defined rule.
struct MaxSize;

impl PolicyRule for MaxSize {
    fn id(&self) -> &str {
        "USR001"
    }
    fn severity(&self) -> Severity {
        Severity::Error
    }
    fn summary(&self) -> &str {
        "hosts are at most size 8"
    }
    fn references(&self) -> &[&str] {
        &["CKV_DEMO_1"]
    }
    fn check(&self, graph: &Graph) -> Vec<Violation> {
        graph
            .in_order()
            .filter(|r| r.schema.kind == "test_host")
            .filter(|r| r.get("size").and_then(|v| v.as_i64()).unwrap_or(0) > 8)
            .map(|r| Violation::new(r, "size is above 8", "use size 8 or less"))
            .collect()
    }
}

fn stack(size: i64, suppress: Option<&str>) -> Stack {
    let mut s = Stack::new("pol");
    let n = s.add(Network::new("n", "10.0.0.0/16"));
    let mut h = Host::new("big").network(&n).size(size);
    if let Some(reason) = suppress {
        h = h.suppress("USR001", reason);
    }
    s.add(h);
    s
}

fn engine(dir: &std::path::Path) -> Engine {
    Engine::new()
        .with_provider(SandboxProvider::open(dir, "test").unwrap())
        .with_rules([Arc::new(MaxSize) as Arc<dyn PolicyRule>])
}

#[tokio::test]
async fn an_error_finding_is_shown_and_blocks_apply() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let p = e
        .plan(&stack(9, None), &PlanOptions::default())
        .await
        .unwrap();
    assert_eq!(p.plan.policy.errors, 1);
    let text = render::plan_text(&p.plan);
    assert!(
        text.contains(
            "Policy: 1 error, 0 warnings, 0 suppressed (1 rules checked). Errors block apply."
        ),
        "{text}"
    );
    assert!(text.contains("  [error] USR001 test_host.big: size is above 8\n      fix: use size 8 or less\n      see: CKV_DEMO_1"), "{text}");
    let json: serde_json::Value = serde_json::from_str(&render::plan_json(&p.plan)).unwrap();
    assert_eq!(json["policy"]["findings"][0]["rule"], "USR001");
    let err = e.apply(&p, &NoObserver).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("policy USR001 on test_host.big: size is above 8"),
        "{err}"
    );
    let read = infra_core::provider::Provider::read(
        &SandboxProvider::open(dir.path(), "test").unwrap(),
        "pol",
    )
    .await
    .unwrap();
    assert!(read.resources.is_empty(), "nothing was touched");
}

#[tokio::test]
async fn a_suppressed_finding_is_shown_with_its_reason_and_does_not_block() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let p = e
        .plan(
            &stack(9, Some("batch host, sized on purpose")),
            &PlanOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!((p.plan.policy.errors, p.plan.policy.suppressed), (0, 1));
    assert!(render::plan_text(&p.plan).contains("  [suppressed] USR001 test_host.big: size is above 8\n      reason: batch host, sized on purpose"));
    assert!(e.apply(&p, &NoObserver).await.unwrap().is_success());
}

#[tokio::test]
async fn a_suppression_without_reason_is_a_validation_problem_and_a_typo_is_a_warning() {
    let err = Graph::build(&stack(9, Some("  "))).unwrap_err();
    assert_eq!(
        err.problems[0].to_string(),
        "test_host.big: field `suppress`: suppressing `USR001` needs a reason"
    );

    let dir = tempfile::tempdir().unwrap();
    let mut s = stack(1, None);
    s.get_mut(&"test_network.n".parse().unwrap())
        .unwrap()
        .options
        .suppress
        .insert("USR01".into(), "typo".into());
    let p = engine(dir.path())
        .plan(&s, &PlanOptions::default())
        .await
        .unwrap();
    assert_eq!(p.plan.policy.warnings, 1);
    assert_eq!(p.plan.policy.findings[0].rule, "POLICY000");
    assert!(p.plan.blockers().is_empty());
}
