//! Planning against the sandbox: actions, reasons, unknowns, protection, determinism, secrets.

use infra_core::dsl::{Resource, Stack};
use infra_core::engine::{Engine, Planned};
use infra_core::plan::{Action, PlanOptions};
use infra_core::reconcile::NoObserver;
use infra_core::render;
use infra_core::sandbox::SandboxProvider;

use crate::kinds::{small, Host, Network};

pub(crate) fn engine(dir: &std::path::Path) -> Engine {
    Engine::new().with_provider(SandboxProvider::open(dir, "test").unwrap())
}

pub(crate) async fn plan(engine: &Engine, stack: &Stack) -> Planned {
    engine.plan(stack, &PlanOptions::default()).await.unwrap()
}

pub(crate) async fn converge(engine: &Engine, stack: &Stack) {
    let p = plan(engine, stack).await;
    let r = engine.apply(&p, &NoObserver).await.unwrap();
    assert!(r.is_success(), "{}", render::report_text(&r));
}

fn action(p: &Planned, address: &str) -> Action {
    p.plan
        .change(address)
        .unwrap_or_else(|| panic!("{address} not in plan"))
        .action
}

#[tokio::test]
async fn from_scratch_everything_is_created_and_outputs_are_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let p = plan(&e, &small("s1")).await;
    assert_eq!(p.plan.summary.add, 3);
    let web = p.plan.change("test_host.web").unwrap();
    assert_eq!(web.action, Action::Create);
    let net_id = web.fields.iter().find(|f| f.name == "network_id").unwrap();
    assert_eq!(
        net_id.after.as_ref().unwrap().to_string(),
        "(known after apply)"
    );
    let text = render::plan_text(&p.plan);
    assert!(
        text.contains("      + id         = (known after apply)"),
        "{text}"
    );
    assert!(
        text.ends_with("Plan: 3 to add, 0 to change, 0 to destroy.\n"),
        "{text}"
    );
}

#[tokio::test]
async fn after_apply_a_replan_is_empty_and_references_are_resolved() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let s = small("s2");
    converge(&e, &s).await;
    let p = plan(&e, &s).await;
    assert!(p.plan.is_empty(), "{}", render::plan_text(&p.plan));
    assert_eq!(p.plan.summary.unchanged, 3);
    // The host's stored network_id is the network's real id.
    let net = &p.observed().resources[&"test_network.main".parse().unwrap()];
    let web = &p.observed().resources[&"test_host.web".parse().unwrap()];
    assert_eq!(web.props["network_id"].as_str(), Some(net.id.as_str()));
}

#[tokio::test]
async fn update_in_place_versus_replacement() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let mut s = small("s3");
    converge(&e, &s).await;

    s.get_mut(&"test_host.web".parse().unwrap())
        .unwrap()
        .set("size", 3);
    let p = plan(&e, &s).await;
    assert_eq!(action(&p, "test_host.web"), Action::Update);
    assert_eq!(p.plan.actionable().count(), 1);
    assert_eq!(
        p.plan.change("test_host.web").unwrap().reason,
        "`size` changed"
    );

    // A new CIDR replaces the network, and the hosts follow (their network_id is force-new and
    // now unknown).
    s.get_mut(&"test_network.main".parse().unwrap())
        .unwrap()
        .set("cidr", "10.5.0.0/16");
    let p = plan(&e, &s).await;
    assert_eq!(action(&p, "test_network.main"), Action::DeleteThenCreate);
    assert_eq!(action(&p, "test_host.db"), Action::DeleteThenCreate);
    assert_eq!(
        p.plan.change("test_network.main").unwrap().replace_because,
        vec!["cidr".to_string()]
    );
    assert_eq!(p.plan.summary.add, 3);
    assert_eq!(p.plan.summary.destroy, 3);
    let text = render::plan_text(&p.plan);
    assert!(
        text.contains("~ cidr = \"10.0.0.0/16\" -> \"10.5.0.0/16\" # forces replacement"),
        "{text}"
    );
    converge(&e, &s).await;
    assert!(plan(&e, &s).await.plan.is_empty());
}

#[tokio::test]
async fn create_before_destroy_is_inherited_by_replaced_dependencies() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let mut s = Stack::new("cbd");
    let net = s.add(Network::new("n", "10.0.0.0/16"));
    s.add(Host::new("h").network(&net).create_before_destroy());
    converge(&e, &s).await;
    s.get_mut(&"test_network.n".parse().unwrap())
        .unwrap()
        .set("cidr", "10.1.0.0/16");
    let p = plan(&e, &s).await;
    assert_eq!(action(&p, "test_host.h"), Action::CreateThenDelete);
    assert_eq!(
        action(&p, "test_network.n"),
        Action::CreateThenDelete,
        "{}",
        render::plan_text(&p.plan)
    );
    converge(&e, &s).await;
    assert!(plan(&e, &s).await.plan.is_empty());
}

#[tokio::test]
async fn removed_resources_are_deleted_and_protection_blocks_it() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let mut s = Stack::new("rm");
    let net = s.add(Network::new("n", "10.0.0.0/16").protect());
    s.add(Host::new("h").network(&net));
    converge(&e, &s).await;

    s.remove(&"test_host.h".parse().unwrap());
    let p = plan(&e, &s).await;
    assert_eq!(action(&p, "test_host.h"), Action::Delete);
    assert_eq!(
        p.plan.change("test_host.h").unwrap().reason,
        "no longer declared in the stack"
    );

    // Removing the protected network from the code: its infra:protect tag still protects it.
    s.remove(&"test_network.n".parse().unwrap());
    let p = plan(&e, &s).await;
    assert_eq!(action(&p, "test_network.n"), Action::Delete);
    assert_eq!(p.plan.errors.len(), 1, "{:?}", p.plan.errors);
    assert!(p.plan.errors[0].contains("test_network.n is protected and would be destroyed"));
    assert!(
        p.plan.errors[0].contains("marked `infra:protect`") && !p.plan.errors[0].contains("remove"),
        "no declaration to remove `.protect()` from: {}",
        p.plan.errors[0]
    );
    let err = e.apply(&p, &NoObserver).await.unwrap_err();
    assert!(err.to_string().contains("protected"), "{err}");
    assert_eq!(
        plan(&e, &s).await.plan.summary.destroy,
        2,
        "nothing was deleted"
    );

    let opts = PlanOptions {
        allow_destroy: ["test_network.n".to_string()].into(),
        ..PlanOptions::default()
    };
    let p = e.plan(&s, &opts).await.unwrap();
    assert!(p.plan.errors.is_empty());
    assert!(e.apply(&p, &NoObserver).await.unwrap().is_success());
    assert!(plan(&e, &s).await.plan.is_empty());
}

#[tokio::test]
async fn ignore_changes_and_unordered_fields_do_not_cause_updates() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let mut s = Stack::new("ign");
    let net = s.add(Network::new("n", "10.0.0.0/16"));
    s.add(
        Host::new("h")
            .network(&net)
            .ports(&[80, 443])
            .ignore_changes(&["size"]),
    );
    converge(&e, &s).await;
    let h = s.get_mut(&"test_host.h".parse().unwrap()).unwrap();
    h.set("size", 9);
    h.set(
        "ports",
        infra_core::Value::List(vec![443.into(), 80.into()]),
    );
    assert!(plan(&e, &s).await.plan.is_empty());
}

#[tokio::test]
async fn a_disruptive_field_says_what_its_update_does() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let mut s = Stack::new("dis");
    let net = s.add(Network::new("n", "10.0.0.0/16"));
    s.add(Host::new("h").network(&net).ports(&[80]));
    converge(&e, &s).await;

    // A quiet field: no effect.
    s.get_mut(&"test_host.h".parse().unwrap())
        .unwrap()
        .set("size", 2);
    let p = plan(&e, &s).await;
    let c = p.plan.change("test_host.h").unwrap();
    assert_eq!(c.reason, "`size` changed");
    assert!(c.fields.iter().all(|f| f.effect.is_none()), "{c:?}");
    assert!(!render::plan_json(&p.plan).contains("effect"));

    // A disruptive one: said beside the field, in the reason and in JSON.
    s.get_mut(&"test_host.h".parse().unwrap()).unwrap().set(
        "ports",
        infra_core::Value::List(vec![80.into(), 443.into()]),
    );
    let p = plan(&e, &s).await;
    let c = p.plan.change("test_host.h").unwrap();
    assert_eq!(c.action, Action::Update);
    assert_eq!(c.reason, "`ports`, `size` changed (restarts the host)");
    let ports = c.fields.iter().find(|f| f.name == "ports").unwrap();
    assert_eq!(ports.effect.as_deref(), Some("restarts the host"));
    let text = render::plan_text(&p.plan);
    assert!(text.contains("~ ports = [ # restarts the host"), "{text}");
    assert!(text.contains("~ size  = 1 -> 2\n"), "{text}");
    assert!(render::plan_json(&p.plan).contains(r#""effect": "restarts the host""#));
}

#[tokio::test]
async fn plans_are_byte_identical_for_the_same_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let s = small("det");
    let a = plan(&e, &s).await;
    let b = plan(&e, &s).await;
    assert_eq!(render::plan_text(&a.plan), render::plan_text(&b.plan));
    assert_eq!(render::plan_json(&a.plan), render::plan_json(&b.plan));
}

#[tokio::test]
async fn secrets_never_appear_in_text_json_or_state() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let mut s = small("sec");
    let p = plan(&e, &s).await;
    let text = render::plan_text(&p.plan);
    let json = render::plan_json(&p.plan);
    assert!(text.contains("password   = (sensitive, sha256:"), "{text}");
    converge(&e, &s).await;
    s.get_mut(&"test_host.db".parse().unwrap())
        .unwrap()
        .set("password", "another-secret-value");
    let p = plan(&e, &s).await;
    assert_eq!(action(&p, "test_host.db"), Action::Update);
    let text2 = render::plan_text(&p.plan);
    let state = std::fs::read_to_string(dir.path().join("test.jsonl")).unwrap();
    for blob in [
        &text,
        &json,
        &text2,
        &render::plan_json(&p.plan),
        &state,
        &format!("{:?}", p.plan),
    ] {
        assert!(!blob.contains("hunter2-secret"), "secret leaked:\n{blob}");
        assert!(
            !blob.contains("another-secret-value"),
            "secret leaked:\n{blob}"
        );
    }
}

#[tokio::test]
async fn outputs_that_change_on_update_are_unknown_for_dependents() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let mut s = Stack::new("ver");
    let net = s.add(Network::new("n", "10.0.0.0/16"));
    let a = s.add(Host::new("a").network(&net));
    s.add(Host::new("b").network(&net).peer(&a));
    converge(&e, &s).await;
    assert!(plan(&e, &s).await.plan.is_empty());
    s.get_mut(&"test_host.a".parse().unwrap())
        .unwrap()
        .set("size", 5);
    let p = plan(&e, &s).await;
    assert_eq!(action(&p, "test_host.a"), Action::Update);
    assert_eq!(
        action(&p, "test_host.b"),
        Action::Update,
        "b follows a's version"
    );
    converge(&e, &s).await;
    let p = plan(&e, &s).await;
    assert!(p.plan.is_empty(), "{}", render::plan_text(&p.plan));
    let b = &p.observed().resources[&"test_host.b".parse().unwrap()];
    assert_eq!(b.props["peer_version"].as_i64(), Some(2));
}

#[tokio::test]
async fn validation_fails_before_any_provider_call() {
    let dir = tempfile::tempdir().unwrap();
    let provider = std::sync::Arc::new(SandboxProvider::open(dir.path(), "test").unwrap());
    let e = Engine::new().with_provider_arc(provider.clone());
    let mut s = Stack::new("inv");
    s.add(Network::new("n", "nope"));
    s.add(Host::new("h"));
    let err = e.plan(&s, &PlanOptions::default()).await.unwrap_err();
    assert!(
        matches!(err, infra_core::engine::Error::Validation(ref v) if v.problems.len() == 2),
        "{err}"
    );
    assert_eq!(
        infra_core::provider::Provider::api_calls(&*provider),
        Some(0)
    );
}

#[tokio::test]
async fn kinds_without_a_provider_are_validation_problems() {
    let e = Engine::new();
    let err = e
        .plan(&small("nop"), &PlanOptions::default())
        .await
        .unwrap_err();
    let infra_core::engine::Error::Validation(v) = &err else {
        panic!("expected a validation error, got {err:?}");
    };
    let problems: Vec<String> = v.problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        problems,
        [
            "test_host.db: field `kind`: kind `test_host` needs provider `test`, which is not registered (no provider is registered)",
            "test_host.web: field `kind`: kind `test_host` needs provider `test`, which is not registered (no provider is registered)",
            "test_network.main: field `kind`: kind `test_network` needs provider `test`, which is not registered (no provider is registered)",
        ]
    );
}

/// A provider that doesn't list a declared kind: a validation problem naming the resource, the
/// kind and what the provider serves, before any call (today's alternative was an
/// `Unsupported` error half-way through an apply).
#[tokio::test]
async fn a_kind_the_provider_does_not_serve_is_a_validation_problem_with_no_call() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = std::sync::Arc::new(
        SandboxProvider::open(dir.path(), "test")
            .unwrap()
            .serving(vec![&crate::kinds::NETWORK]),
    );
    let e = Engine::new().with_provider_arc(sandbox.clone());
    let err = e
        .plan(&small("served"), &PlanOptions::default())
        .await
        .unwrap_err();
    let infra_core::engine::Error::Validation(v) = &err else {
        panic!("expected a validation error, got {err:?}");
    };
    assert_eq!(v.problems.len(), 2, "{err}");
    assert_eq!(v.problems[0].address, "test_host.db");
    assert_eq!(v.problems[0].field, "kind");
    assert_eq!(
        v.problems[0].message,
        "provider `test` does not serve kind `test_host` (it serves test_network); registered: test"
    );
    assert_eq!(
        infra_core::provider::Provider::api_calls(&*sandbox),
        Some(0),
        "nothing was read"
    );
    // Served kinds only: the same stack without hosts plans.
    let mut only_net = Stack::new("served");
    only_net.add(Network::new("main", "10.0.0.0/16"));
    assert_eq!(plan(&e, &only_net).await.plan.summary.add, 1);
}

#[tokio::test]
async fn destroying_a_stack_that_owns_nothing_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let p = e
        .plan(
            &small("gone"),
            &PlanOptions {
                destroy: true,
                ..PlanOptions::default()
            },
        )
        .await
        .unwrap();
    assert!(p.plan.is_empty());
    assert_eq!(
        render::plan_text(&p.plan).lines().next().unwrap(),
        "Nothing to destroy: stack \"gone\" owns no objects in provider `test`."
    );
}
