//! Declared moves on the sandbox: a renamed resource keeps its object (re-owned under its new
//! address), chains resolve, a move with changed fields is a move and an update, kinds that
//! can't be re-owned are replaced with the reason, bad moves are validation problems, and a
//! rename without a move gets a hint.

use infra_core::dsl::{Address, Ref, Stack};
use infra_core::engine::Error;
use infra_core::plan::{Action, PlanOptions};
use infra_core::reconcile::{NoObserver, OpKind};
use infra_core::render;

use crate::kinds::{Host, Network};
use crate::plan::{converge, engine, plan};

fn addr(s: &str) -> Address {
    s.parse().unwrap()
}

/// A network and a host `web` of size 2 on it, the host named `host`.
fn stack(host: &str, size: i64) -> Stack {
    let mut s = Stack::new("moves");
    let net = s.add(Network::new("main", "10.0.0.0/16"));
    s.add(Host::new(host).network(&net).size(size));
    s
}

fn host_id(p: &infra_core::engine::Planned, address: &str) -> String {
    p.observed().resources[&addr(address)].id.clone()
}

#[tokio::test]
async fn a_renamed_host_keeps_its_object_and_the_move_stays_harmless() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    converge(&e, &stack("web", 2)).await;
    let before = plan(&e, &stack("web", 2)).await;
    let id = host_id(&before, "test_host.web");

    let mut renamed = stack("frontend", 2);
    let frontend = Ref::<Host>::named("frontend");
    renamed.moved(Ref::named("web"), &frontend);
    let p = plan(&e, &renamed).await;
    let c = p.plan.change("test_host.frontend").unwrap();
    assert_eq!(c.action, Action::Move);
    assert_eq!(c.moved_from, Some(addr("test_host.web")));
    assert_eq!(c.id.as_deref(), Some(id.as_str()));
    assert!(
        p.plan.change("test_host.web").is_none(),
        "{:?}",
        p.plan.changes
    );
    let s = p.plan.summary;
    assert_eq!((s.add, s.change, s.destroy, s.moved), (0, 0, 0, 1));
    let text = render::plan_text(&p.plan);
    assert!(
        text.contains("  # test_host.frontend has moved from test_host.web\n"),
        "{text}"
    );
    assert!(
        text.contains("  > move: re-owned under its new address\n"),
        "{text}"
    );
    assert!(
        text.contains("Plan: 0 to add, 0 to change, 0 to destroy, 1 to move."),
        "{text}"
    );
    let json = serde_json::to_value(&p.plan).unwrap();
    let change = json["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["address"] == "test_host.frontend")
        .unwrap();
    assert_eq!(change["action"], "move");
    assert_eq!(change["moved_from"], "test_host.web");
    assert_eq!(json["summary"]["moved"], 1);
    let md = render::plan_markdown(&p.plan, &Default::default());
    assert!(
        md.contains("| Provider | Kind | Add | Change | Replace | Delete | Move |"),
        "{md}"
    );
    assert!(md.contains("### Moves"), "{md}");
    assert!(
        md.contains("- **move** `test_host.web` to `test_host.frontend`: the object"),
        "{md}"
    );

    let report = e.apply(&p, &NoObserver).await.unwrap();
    assert!(report.is_success(), "{}", render::report_text(&report));
    let ops: Vec<OpKind> = report.outcomes.iter().map(|o| o.op).collect();
    assert_eq!(ops, [OpKind::Move]);
    assert_eq!(report.counts().moved, 1);
    assert!(render::report_text(&report).contains("1 moved"));

    // The same object, now owned at the new address; the move declaration, kept, does nothing.
    let after = plan(&e, &renamed).await;
    assert!(after.plan.is_empty(), "{}", render::plan_text(&after.plan));
    assert_eq!(host_id(&after, "test_host.frontend"), id);
    assert!(!after
        .observed()
        .resources
        .contains_key(&addr("test_host.web")));
}

#[tokio::test]
async fn a_move_with_changed_fields_is_a_move_and_an_update() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    converge(&e, &stack("web", 2)).await;
    let id = host_id(&plan(&e, &stack("web", 2)).await, "test_host.web");
    let mut s = stack("frontend", 5);
    s.moved(Ref::<Host>::named("web"), &Ref::named("frontend"));
    let p = plan(&e, &s).await;
    let c = p.plan.change("test_host.frontend").unwrap();
    assert_eq!(c.action, Action::Update);
    assert_eq!(c.moved_from, Some(addr("test_host.web")));
    assert!(
        c.reason
            .starts_with("moved from test_host.web; `size` changed"),
        "{}",
        c.reason
    );
    let s2 = p.plan.summary;
    assert_eq!((s2.add, s2.change, s2.destroy, s2.moved), (0, 1, 0, 1));
    let text = render::plan_text(&p.plan);
    assert!(
        text.contains("  # test_host.frontend will be updated in place (moved from test_host.web)"),
        "{text}"
    );
    let report = e.apply(&p, &NoObserver).await.unwrap();
    assert!(report.is_success(), "{}", render::report_text(&report));
    let ops: Vec<OpKind> = report.outcomes.iter().map(|o| o.op).collect();
    assert_eq!(ops, [OpKind::Move, OpKind::Update]);
    let after = plan(&e, &s).await;
    assert!(after.plan.is_empty(), "{}", render::plan_text(&after.plan));
    assert_eq!(host_id(&after, "test_host.frontend"), id);
    assert_eq!(
        after.observed().resources[&addr("test_host.frontend")].props["size"],
        infra_core::Value::Int(5)
    );
}

#[tokio::test]
async fn chains_of_moves_resolve_from_any_old_address() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    converge(&e, &stack("web", 2)).await;
    let id = host_id(&plan(&e, &stack("web", 2)).await, "test_host.web");
    // web → www (an intermediate name never applied here) → frontend.
    let mut s = stack("frontend", 2);
    s.moved(Ref::<Host>::named("web"), &Ref::named("www"));
    s.moved(Ref::<Host>::named("www"), &Ref::named("frontend"));
    let p = plan(&e, &s).await;
    let c = p.plan.change("test_host.frontend").unwrap();
    assert_eq!(c.action, Action::Move);
    assert_eq!(c.moved_from, Some(addr("test_host.web")));
    assert_eq!(
        e.graph_moves(&s),
        [
            ("test_host.web", "test_host.frontend"),
            ("test_host.www", "test_host.frontend")
        ]
    );
    converge(&e, &s).await;
    let after = plan(&e, &s).await;
    assert!(after.plan.is_empty());
    assert_eq!(host_id(&after, "test_host.frontend"), id);
}

/// A helper over the validated graph: the resolved moves as text pairs.
trait GraphMoves {
    fn graph_moves(&self, s: &Stack) -> Vec<(&'static str, &'static str)>;
}
impl GraphMoves for infra_core::engine::Engine {
    fn graph_moves(&self, s: &Stack) -> Vec<(&'static str, &'static str)> {
        let g = self.validate(s, &Default::default()).unwrap();
        g.moves()
            .iter()
            .map(|m| {
                (
                    &*Box::leak(m.from.to_string().into_boxed_str()),
                    &*Box::leak(m.to.to_string().into_boxed_str()),
                )
            })
            .collect()
    }
}

#[tokio::test]
async fn a_kind_that_cant_be_re_owned_is_replaced_and_the_plan_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    converge(&e, &stack("web", 2)).await;
    let mut s = Stack::new("moves");
    let core = s.add(Network::new("core", "10.0.0.0/16"));
    s.add(Host::new("web").network(&core).size(2));
    s.moved(Ref::<Network>::named("main"), &core);
    let p = plan(&e, &s).await;
    let c = p.plan.change("test_network.core").unwrap();
    assert_eq!(c.action, Action::CreateThenDelete);
    assert_eq!(c.moved_from, Some(addr("test_network.main")));
    assert!(
        c.reason.contains(
            "moved from test_network.main, but a network is named after its address, and \
             networks can't be renamed: a new object replaces it"
        ),
        "{}",
        c.reason
    );
    assert!(p.plan.change("test_network.main").is_none());
    assert_eq!(p.plan.summary.moved, 0);
    let text = render::plan_text(&p.plan);
    assert!(
        text.contains("  # test_network.core must be replaced (moved from test_network.main)"),
        "{text}"
    );
    converge(&e, &s).await;
    let after = plan(&e, &s).await;
    assert!(after.plan.is_empty(), "{}", render::plan_text(&after.plan));
    assert_eq!(after.observed().resources.len(), 2);
}

#[tokio::test]
async fn bad_moves_are_all_reported_before_anything_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let mut s = stack("web", 2);
    s.add(Host::new("db").network(&Ref::named("main")));
    // The old address is still declared.
    s.moved(Ref::<Host>::named("db"), &Ref::named("web"));
    // Across kinds.
    s.move_address(addr("test_network.old"), addr("test_host.web"));
    // To nothing declared, through a chain.
    s.moved(Ref::<Host>::named("a"), &Ref::named("b"));
    s.moved(Ref::<Host>::named("b"), &Ref::named("c"));
    // In a circle.
    s.moved(Ref::<Host>::named("x"), &Ref::named("y"));
    s.moved(Ref::<Host>::named("y"), &Ref::named("x"));
    let Err(Error::Validation(v)) = e.plan(&s, &PlanOptions::default()).await else {
        panic!("expected validation problems");
    };
    let text = v.to_string();
    let lines: Vec<String> = v
        .problems
        .iter()
        .map(|p| format!("{}.{}: {}", p.address, p.field, p.message))
        .collect();
    for want in [
        "test_host.db.moved: test_host.db is moved to test_host.web but is still declared",
        "test_network.old.moved: test_network.old is moved to test_host.web: a move keeps the object, so it can't change the kind (`test_network` to `test_host`)",
        "test_host.a.moved: test_host.a is moved to test_host.b, and on to test_host.c, which is not declared",
        "test_host.b.moved: test_host.b is moved to test_host.c, which is not declared",
        "test_host.x.moved: the moves starting at test_host.x go round in a circle",
    ] {
        assert!(lines.iter().any(|l| l.starts_with(want)), "missing {want:?} in {text}");
    }
    // Nothing was read: the sandbox has no objects and no API call was made.
    assert_eq!(e.provider("test").unwrap().api_calls(), Some(0));
}

#[tokio::test]
async fn a_move_onto_an_address_that_has_an_object_is_refused_before_anything_changes() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    // Both web and frontend have objects.
    let mut both = stack("web", 2);
    both.add(Host::new("frontend").network(&Ref::named("main")));
    converge(&e, &both).await;
    let mut s = stack("frontend", 2);
    s.moved(Ref::<Host>::named("web"), &Ref::named("frontend"));
    let Err(Error::Validation(v)) = e.plan(&s, &PlanOptions::default()).await else {
        panic!("expected a validation problem");
    };
    assert_eq!(v.problems.len(), 1, "{v}");
    let p = &v.problems[0];
    assert_eq!(p.address, "test_host.web");
    assert!(
        p.message
            .starts_with("test_host.web is moved to test_host.frontend, but both have an object ("),
        "{}",
        p.message
    );
    // Untouched: the old declaration still plans empty.
    assert!(plan(&e, &both).await.plan.is_empty());
}

#[tokio::test]
async fn a_rename_without_a_move_gets_a_hint_naming_the_move() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    converge(&e, &stack("web", 2)).await;
    let p = plan(&e, &stack("frontend", 2)).await;
    assert_eq!(
        p.plan.change("test_host.frontend").unwrap().action,
        Action::Create
    );
    assert_eq!(
        p.plan.change("test_host.web").unwrap().action,
        Action::Delete
    );
    assert_eq!(p.plan.hints.len(), 1, "{:?}", p.plan.hints);
    let hint = &p.plan.hints[0];
    assert!(
        hint.starts_with(
            "test_host.web is destroyed and test_host.frontend created with identical inputs: \
             if it was renamed, declare the move to keep its object ("
        ),
        "{hint}"
    );
    assert!(
        hint.contains("stack.moved(Ref::named(\"web\"), &<the handle of test_host.frontend>)"),
        "{hint}"
    );
    let text = render::plan_text(&p.plan);
    assert!(text.contains(&format!("\nHint: {hint}\n")), "{text}");
    assert!(render::plan_markdown(&p.plan, &Default::default()).contains("### Hints"));
    // Different inputs: no hint.
    let p = plan(&e, &stack("frontend", 3)).await;
    assert!(p.plan.hints.is_empty(), "{:?}", p.plan.hints);
}

#[tokio::test]
async fn destroying_a_stack_with_a_declared_move_destroys_the_moved_object() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    converge(&e, &stack("web", 2)).await;
    let mut s = stack("frontend", 2);
    s.moved(Ref::<Host>::named("web"), &Ref::named("frontend"));
    let opts = PlanOptions {
        destroy: true,
        ..PlanOptions::default()
    };
    let p = e.plan(&s, &opts).await.unwrap();
    assert_eq!(p.plan.summary.destroy, 2, "{}", render::plan_text(&p.plan));
    let r = e.apply(&p, &NoObserver).await.unwrap();
    assert!(r.is_success(), "{}", render::report_text(&r));
    assert_eq!(r.counts().destroyed, 2);
    let after = e.plan(&s, &opts).await.unwrap();
    assert!(after.plan.is_empty());
}
