//! The provider conformance suite: the lifecycle every provider (sandbox, AWS, Swarm) must get
//! right, driven through the real engine so that normalisation mistakes (a no-op plan that isn't
//! empty) show up. Provider crates call [`run`] from their integration tests with a [`Case`] of
//! their own kinds.
//!
//! [`adoption`] is the import contract: objects made by hand are discovered, adopted, owned.
//!
//! The suite panics with a message naming the step on the first failure, like any test.

use std::sync::Arc;

use crate::dsl::Stack;
use crate::engine::Engine;
use crate::import::{Found, ImportFilter};
use crate::plan::{Action, Plan, PlanOptions};
use crate::provider::{ErrorClass, OpContext, Provider};
use crate::reconcile::NoObserver;
use crate::render::plan_text;

/// An edit of a stack.
pub type Edit = Box<dyn Fn(&mut Stack) + Send + Sync>;

/// A stack to exercise, with the edits the suite applies to it.
pub struct Case {
    /// Builds the stack under a given stack name.
    pub build: Box<dyn Fn(&str) -> Stack + Send + Sync>,
    /// An edit that must plan as in-place updates only (at least one).
    pub update: Edit,
    /// An edit that must plan at least one replacement, when the kinds have force-new fields.
    pub replace: Option<Edit>,
}

/// What the suite observed, for the caller's report.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// Resources in the case's stack.
    pub resources: usize,
    /// Plans checked.
    pub plans: usize,
    /// Applies made.
    pub applies: usize,
}

async fn plan(engine: &Engine, stack: &Stack, destroy: bool, step: &str) -> crate::engine::Planned {
    let opts = PlanOptions {
        destroy,
        ..PlanOptions::default()
    };
    match engine.plan(stack, &opts).await {
        Ok(p) => p,
        Err(e) => panic!("conformance step `{step}`: plan failed: {e}"),
    }
}

async fn converge(
    engine: &Engine,
    stack: &Stack,
    destroy: bool,
    step: &str,
    out: &mut Outcome,
) -> Plan {
    let planned = plan(engine, stack, destroy, step).await;
    out.plans += 1;
    let report = match engine.apply(&planned, &NoObserver).await {
        Ok(r) => r,
        Err(e) => panic!("conformance step `{step}`: apply failed: {e}"),
    };
    out.applies += 1;
    assert!(
        report.is_success(),
        "conformance step `{step}`: apply did not succeed:\n{}",
        crate::render::report_text(&report)
    );
    planned.plan
}

async fn assert_empty(engine: &Engine, stack: &Stack, step: &str, out: &mut Outcome) {
    let p = plan(engine, stack, false, step).await;
    out.plans += 1;
    assert!(
        p.plan.is_empty(),
        "conformance step `{step}`: expected a no-op plan, got:\n{}",
        plan_text(&p.plan)
    );
}

/// Runs the suite against `provider`, using stack names starting with `prefix` (make them unique
/// per run when the backend is shared).
pub async fn run(provider: Arc<dyn Provider>, case: &Case, prefix: &str) -> Outcome {
    let engine = Engine::new().with_provider_arc(provider.clone());
    let mut out = Outcome::default();
    let name = format!("{prefix}-a");
    let bystander_name = format!("{prefix}-b");

    // A second stack of the same shape must never be touched by the first one's runs.
    let bystander = (case.build)(&bystander_name);
    converge(&engine, &bystander, false, "bystander create", &mut out).await;

    let mut stack = (case.build)(&name);
    out.resources = stack.len();
    let first = plan(&engine, &stack, false, "initial plan").await;
    out.plans += 1;
    let declared = first.plan.changes.len();
    assert!(
        declared > 0,
        "conformance: the case's stack must declare resources"
    );
    assert!(
        first.plan.changes.iter().all(|c| c.action == Action::Create),
        "conformance step `initial plan`: a fresh stack must plan only creates (another stack's objects leaked into the read?):\n{}",
        plan_text(&first.plan)
    );
    converge(&engine, &stack, false, "create", &mut out).await;

    let read = provider
        .read(&name)
        .await
        .unwrap_or_else(|e| panic!("conformance step `read after create`: {e}"));
    let mut addresses: Vec<String> = read
        .resources
        .iter()
        .map(|o| o.address.to_string())
        .collect();
    let n = addresses.len();
    addresses.sort();
    addresses.dedup();
    assert_eq!(
        n,
        addresses.len(),
        "conformance step `read after create`: an address appears twice (duplicate objects)"
    );
    assert_eq!(n, declared, "conformance step `read after create`: expected {declared} owned objects, read {n}: {addresses:?}");

    assert_empty(&engine, &stack, "no-op re-plan after create", &mut out).await;

    (case.update)(&mut stack);
    let p = plan(&engine, &stack, false, "update plan").await;
    out.plans += 1;
    assert!(
        p.plan.actionable().count() > 0 && p.plan.actionable().all(|c| c.action == Action::Update),
        "conformance step `update plan`: expected only in-place updates:\n{}",
        plan_text(&p.plan)
    );
    converge(&engine, &stack, false, "update", &mut out).await;
    assert_empty(&engine, &stack, "no-op re-plan after update", &mut out).await;

    if let Some(replace) = &case.replace {
        replace(&mut stack);
        let p = plan(&engine, &stack, false, "replace plan").await;
        out.plans += 1;
        assert!(
            p.plan.actionable().any(|c| c.action.is_replace()),
            "conformance step `replace plan`: expected a replacement:\n{}",
            plan_text(&p.plan)
        );
        converge(&engine, &stack, false, "replace", &mut out).await;
        assert_empty(&engine, &stack, "no-op re-plan after replace", &mut out).await;
    }

    // Remove the last resource in dependency order (nothing depends on it).
    let last = first
        .graph()
        .in_order()
        .last()
        .map(|r| r.address.clone())
        .expect("non-empty");
    stack.remove(&last);
    let p = plan(&engine, &stack, false, "removal plan").await;
    out.plans += 1;
    let c = p
        .plan
        .change(&last.to_string())
        .unwrap_or_else(|| panic!("conformance step `removal plan`: {last} missing from the plan"));
    assert_eq!(
        c.action,
        Action::Delete,
        "conformance step `removal plan`: {last} should be deleted:\n{}",
        plan_text(&p.plan)
    );
    assert_eq!(
        p.plan.actionable().count(),
        1,
        "conformance step `removal plan`: only {last} should change:\n{}",
        plan_text(&p.plan)
    );
    let gone = p
        .observed()
        .resources
        .get(&last)
        .cloned()
        .expect("observed");
    converge(&engine, &stack, false, "removal", &mut out).await;
    assert_empty(&engine, &stack, "no-op re-plan after removal", &mut out).await;

    // Deleting what is already gone is "not found" (or success), never a hard failure.
    let ctx = OpContext {
        stack: name.clone(),
        idempotency_token: format!("{prefix}-redelete"),
        attempt: 1,
    };
    if let Err(e) = provider.delete(&ctx, &gone).await {
        assert_eq!(
            e.class,
            ErrorClass::NotFound,
            "conformance step `delete twice`: expected NotFound, got {e}"
        );
    }

    converge(&engine, &stack, true, "destroy", &mut out).await;
    let read = provider
        .read(&name)
        .await
        .unwrap_or_else(|e| panic!("conformance step `read after destroy`: {e}"));
    assert!(
        read.resources.is_empty(),
        "conformance step `read after destroy`: objects left: {:?}",
        read.resources
            .iter()
            .map(|o| o.address.to_string())
            .collect::<Vec<_>>()
    );

    // The bystander is untouched.
    assert_empty(&engine, &bystander, "bystander untouched", &mut out).await;
    converge(&engine, &bystander, true, "bystander destroy", &mut out).await;
    out
}

/// The ids `provider` discovers with `filter`: those it can declare, and those it lists as
/// inexpressible.
async fn discovered(
    provider: &dyn Provider,
    filter: &ImportFilter,
    step: &str,
) -> (Vec<String>, Vec<String>) {
    let mut objects = Vec::new();
    let mut others = Vec::new();
    let mut sink = |f: Found| match f {
        Found::Object(o) => objects.push(o.id),
        Found::Inexpressible { id, .. } => others.push(id),
    };
    if let Err(e) = provider.discover(filter, &mut sink).await {
        panic!("conformance step `{step}`: discover failed: {e}");
    }
    (objects, others)
}

/// The adoption contract (issue 14), for a stack that declares objects made by hand (outside
/// `infra`, owned by no stack) exactly as they are, each with its `stack.adopt`: discovery
/// (with `filter`) finds every adopted id as an object it can declare; the plan only adopts,
/// one adoption per declared adoption; [`Engine::adopt`] succeeds; the plan after it is empty;
/// discovery no longer finds the adopted objects (they belong to the stack now); destroying
/// the stack removes them. Provider crates call it from their tests with objects made through
/// their API; the sandbox passes it too.
pub async fn adoption(
    provider: Arc<dyn Provider>,
    stack: &Stack,
    filter: &ImportFilter,
) -> Outcome {
    let engine = Engine::new().with_provider_arc(provider.clone());
    let mut out = Outcome {
        resources: stack.len(),
        ..Outcome::default()
    };
    let ids: Vec<&str> = stack.adoptions().iter().map(|a| a.id.as_str()).collect();
    assert!(
        !ids.is_empty(),
        "conformance: the adoption case must declare adoptions"
    );
    let (objects, _) = discovered(provider.as_ref(), filter, "discover before adopt").await;
    for id in &ids {
        assert!(
            objects.iter().any(|o| o == id),
            "conformance step `discover before adopt`: {id} was not discovered as an object (found: {objects:?})"
        );
    }
    let p = plan(&engine, stack, false, "adoption plan").await;
    out.plans += 1;
    assert!(
        p.plan.actionable().count() == ids.len()
            && p.plan.actionable().all(|c| c.action == Action::Adopt),
        "conformance step `adoption plan`: expected {} adoptions and nothing else:\n{}",
        ids.len(),
        plan_text(&p.plan)
    );
    let report = match engine.adopt(&p, &NoObserver).await {
        Ok(r) => r,
        Err(e) => panic!("conformance step `adopt`: {e}"),
    };
    out.applies += 1;
    assert!(
        report.is_success() && report.counts().adopted == ids.len(),
        "conformance step `adopt`: expected {} adoptions:\n{}",
        ids.len(),
        crate::render::report_text(&report)
    );
    assert_empty(&engine, stack, "no-op re-plan after adopt", &mut out).await;
    let (objects, others) = discovered(provider.as_ref(), filter, "discover after adopt").await;
    for id in &ids {
        assert!(
            !objects.iter().chain(&others).any(|o| o == id),
            "conformance step `discover after adopt`: {id} belongs to the stack now and must not be discovered"
        );
    }
    converge(&engine, stack, true, "destroy adopted", &mut out).await;
    let read = provider
        .read(stack.name())
        .await
        .unwrap_or_else(|e| panic!("conformance step `read after destroy`: {e}"));
    assert!(
        read.resources.is_empty(),
        "conformance step `read after destroying the adopted objects`: objects left"
    );
    out
}
