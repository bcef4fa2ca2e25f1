//! Declared adoptions on the sandbox: objects made by hand (that belong to no stack) are
//! planned as adoptions, adopted by the apply, and owned from then on; a declaration that
//! differs is an adoption and an update; bad adoptions are problems naming the address and id,
//! before anything is touched.

use std::collections::BTreeMap;
use std::sync::Arc;

use infra_core::dsl::{Address, Ref, Stack};
use infra_core::engine::{Engine, Error};
use infra_core::plan::{Action, PlanOptions};
use infra_core::provider::{OpContext, Provider};
use infra_core::reconcile::{NoObserver, OpKind};
use infra_core::render;
use infra_core::sandbox::SandboxProvider;
use infra_core::Value;

use crate::kinds::{Host, Network, HOST, NETWORK};
use crate::plan::{converge, plan};

fn addr(s: &str) -> Address {
    s.parse().unwrap()
}

fn props(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// A sandbox with a network and a host made by hand; the engine on it; their ids.
fn by_hand(dir: &std::path::Path) -> (Engine, Arc<SandboxProvider>, String, String) {
    let sandbox = Arc::new(SandboxProvider::open(dir, "test").unwrap());
    let net = sandbox
        .insert_unowned(
            &NETWORK,
            "main",
            props(&[("cidr", Value::from("10.0.0.0/16"))]),
        )
        .unwrap();
    let host = sandbox
        .insert_unowned(
            &HOST,
            "web",
            props(&[
                ("network_id", Value::from(net.as_str())),
                ("size", Value::Int(2)),
            ]),
        )
        .unwrap();
    let engine = Engine::new().with_provider_arc(sandbox.clone());
    (engine, sandbox, net, host)
}

/// The network and the host declared as they were made, adopted; the host's size given.
fn declared(net_id: &str, host_id: &str, size: i64) -> Stack {
    let mut s = Stack::new("adopt");
    let net = s.add(Network::new("main", "10.0.0.0/16"));
    let host = s.add(Host::new("web").network(&net).size(size));
    s.adopt(&net, net_id);
    s.adopt(&host, host_id);
    s
}

fn owners(sandbox: &SandboxProvider) -> Vec<(String, Option<String>, String)> {
    let mut v: Vec<_> = sandbox
        .objects()
        .unwrap()
        .into_iter()
        .map(|o| (o.id, o.stack, o.name))
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn objects_made_by_hand_are_adopted_and_nothing_else_changes() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, sandbox, net, host) = by_hand(dir.path());
    let stack = declared(&net, &host, 2);
    let p = plan(&engine, &stack).await;
    for (address, id) in [("test_network.main", &net), ("test_host.web", &host)] {
        let c = p.plan.change(address).unwrap();
        assert_eq!(c.action, Action::Adopt, "{address}: {c:?}");
        assert_eq!(c.adopted.as_deref(), Some(id.as_str()));
        assert_eq!(c.id.as_deref(), Some(id.as_str()));
        assert!(c.fields.is_empty(), "{address}: {:?}", c.fields);
    }
    let s = p.plan.summary;
    assert_eq!((s.add, s.change, s.destroy, s.adopted), (0, 0, 0, 2));
    let text = render::plan_text(&p.plan);
    assert!(
        text.contains("  < adopt: the stack's ownership written"),
        "{text}"
    );
    assert!(
        text.contains("  # test_host.web will be adopted (it belongs to no stack"),
        "{text}"
    );
    assert!(
        text.contains(&format!("  < test_host.web ({host})\n")),
        "{text}"
    );
    assert!(
        text.contains("Plan: 0 to add, 0 to change, 0 to destroy, 2 to adopt."),
        "{text}"
    );
    let json = serde_json::to_value(&p.plan).unwrap();
    assert_eq!(json["summary"]["adopted"], 2);
    let change = &json["changes"][1];
    assert_eq!(change["action"], "adopt");
    assert_eq!(change["adopted"], host.as_str());
    let md = render::plan_markdown(&p.plan, &Default::default());
    assert!(md.contains("| Delete | Adopt |"), "{md}");
    assert!(md.contains("### Adoptions"), "{md}");
    assert!(
        md.contains(&format!("- **adopt** `{host}` as `test_host.web`")),
        "{md}"
    );
    // Nothing was touched by planning.
    assert!(owners(&sandbox).iter().all(|(_, stack, _)| stack.is_none()));

    let report = engine.adopt(&p, &NoObserver).await.unwrap();
    assert!(report.is_success(), "{}", render::report_text(&report));
    assert!(report.outcomes.iter().all(|o| o.op == OpKind::Adopt));
    assert_eq!(report.counts().adopted, 2);
    assert!(
        render::report_text(&report).contains("0 added, 0 changed, 0 destroyed, 2 adopted."),
        "{}",
        render::report_text(&report)
    );
    // Owned now, under the declared addresses, with the same ids and fields.
    let mut expected = vec![
        (net.clone(), Some("adopt".to_string()), "main".to_string()),
        (host.clone(), Some("adopt".to_string()), "web".to_string()),
    ];
    expected.sort();
    assert_eq!(owners(&sandbox), expected);
    // The declaration may stay: it does nothing once the objects are owned.
    let again = plan(&engine, &stack).await;
    assert!(again.plan.is_empty(), "{}", render::plan_text(&again.plan));
    assert_eq!(again.plan.summary.adopted, 0);
    // And destroy removes them.
    let gone = engine
        .plan(
            &stack,
            &PlanOptions {
                destroy: true,
                ..PlanOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(gone.plan.summary.destroy, 2);
    assert!(engine.apply(&gone, &NoObserver).await.unwrap().is_success());
    assert!(sandbox.objects().unwrap().is_empty());
}

#[tokio::test]
async fn a_declaration_that_differs_adopts_and_updates_and_adopt_refuses_it() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, sandbox, net, host) = by_hand(dir.path());
    let stack = declared(&net, &host, 3);
    let p = plan(&engine, &stack).await;
    let c = p.plan.change("test_host.web").unwrap();
    assert_eq!(c.action, Action::Update);
    assert_eq!(c.adopted.as_deref(), Some(host.as_str()));
    assert!(
        c.reason.starts_with(&format!("adopts {host}")),
        "{}",
        c.reason
    );
    let s = p.plan.summary;
    assert_eq!((s.change, s.adopted), (1, 2));
    let text = render::plan_text(&p.plan);
    assert!(
        text.contains(&format!(
            "  # test_host.web will be updated in place (adopting {host}"
        )),
        "{text}"
    );
    // `adopt` applies only adoptions: refused, naming the change, nothing touched.
    match engine.adopt(&p, &NoObserver).await {
        Err(Error::NotOnlyAdoptions(list)) => {
            assert_eq!(
                list,
                vec!["test_host.web (adopted and updated in place)".to_string()]
            )
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(owners(&sandbox).iter().all(|(_, stack, _)| stack.is_none()));
    // `apply` adopts, then updates.
    let report = engine.apply(&p, &NoObserver).await.unwrap();
    assert!(report.is_success(), "{}", render::report_text(&report));
    let ops: Vec<(String, OpKind)> = report
        .outcomes
        .iter()
        .map(|o| (o.address.clone(), o.op))
        .collect();
    let adopt = ops
        .iter()
        .position(|o| *o == ("test_host.web".into(), OpKind::Adopt));
    let update = ops
        .iter()
        .position(|o| *o == ("test_host.web".into(), OpKind::Update));
    assert!(adopt.unwrap() < update.unwrap(), "{ops:?}");
    let stored = sandbox.objects().unwrap();
    let h = stored.iter().find(|o| o.id == host).unwrap();
    assert_eq!(h.props["size"], Value::Int(3));
    assert!(plan(&engine, &stack).await.plan.is_empty());
}

#[tokio::test]
async fn adopting_must_not_replace_the_object() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, sandbox, net, host) = by_hand(dir.path());
    let mut stack = Stack::new("adopt");
    let n = stack.add(Network::new("main", "10.9.0.0/16"));
    stack.add(Host::new("web").network(&n).size(2));
    stack.adopt(&n, &net);
    stack.adopt(&Ref::<Host>::named("web"), &host);
    let p = plan(&engine, &stack).await;
    assert!(
        p.plan.errors.iter().any(|e| e.starts_with(&format!(
            "test_network.main adopts {net}, but its declaration differs in `cidr`"
        ))),
        "{:?}",
        p.plan.errors
    );
    assert!(engine.apply(&p, &NoObserver).await.is_err());
    assert!(owners(&sandbox).iter().all(|(_, stack, _)| stack.is_none()));
}

#[tokio::test]
async fn bad_adoptions_are_problems_naming_the_address_and_id_all_at_once() {
    let mut stack = Stack::new("adopt");
    let net = stack.add(Network::new("main", "10.0.0.0/16"));
    let other = stack.add(Network::new("other", "10.1.0.0/16"));
    stack.adopt(&Ref::<Network>::named("ghost"), "network-1");
    stack.adopt(&net, "network-2");
    stack.adopt(&net, "network-3");
    stack.adopt(&other, "network-2");
    let dir = tempfile::tempdir().unwrap();
    let engine = crate::plan::engine(dir.path());
    let err = engine
        .plan(&stack, &PlanOptions::default())
        .await
        .unwrap_err()
        .to_string();
    for needle in [
        "test_network.ghost adopts network-1, but test_network.ghost is not declared",
        "test_network.main adopts two objects, network-2 and network-3",
        "network-2 is adopted twice, as test_network.main and as test_network.other",
    ] {
        assert!(err.contains(needle), "missing `{needle}` in:\n{err}");
    }
    // A declared adoption of the same id twice at one address is one adoption.
    let mut twice = Stack::new("adopt");
    let net = twice.add(Network::new("main", "10.0.0.0/16"));
    twice.adopt(&net, "network-2");
    twice.adopt(&net, "network-2");
    assert_eq!(
        infra_core::graph::Graph::build(&twice)
            .unwrap()
            .adoptions()
            .len(),
        1
    );
}

#[tokio::test]
async fn a_missing_object_or_one_owned_elsewhere_stops_the_plan() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, sandbox, net, _host) = by_hand(dir.path());
    // No such object.
    let mut stack = Stack::new("adopt");
    let n = stack.add(Network::new("main", "10.0.0.0/16"));
    stack.adopt(&n, "network-0000");
    let err = engine
        .plan(&stack, &PlanOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("test_network.main adopts network-0000, but provider `test` has no test_network with that id"),
        "{err}"
    );
    // Owned by another stack: an error naming it.
    let mut mine = Stack::new("other");
    let m = mine.add(Network::new("main", "10.0.0.0/16"));
    mine.adopt(&m, &net);
    converge(&engine, &mine).await;
    let mut stack = Stack::new("adopt");
    let n = stack.add(Network::new("main", "10.0.0.0/16"));
    stack.adopt(&n, &net);
    let err = engine
        .plan(&stack, &PlanOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!(
            "test_network.main: reading {net}, the object it adopts"
        )) && err.contains("belongs to stack \"other\""),
        "{err}"
    );
    // Owned by this stack at another address: declare a move instead.
    let mut renamed = Stack::new("other");
    let m = renamed.add(Network::new("main", "10.0.0.0/16"));
    let n2 = renamed.add(Network::new("second", "10.0.0.0/16"));
    renamed.adopt(&n2, &net);
    let _ = m;
    let err = engine
        .plan(&renamed, &PlanOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!(
            "test_network.second adopts {net}, but the stack owns that object already, as test_network.main"
        )),
        "{err}"
    );
    let _ = sandbox;
}

#[tokio::test]
async fn adopting_is_idempotent_on_retry() {
    let dir = tempfile::tempdir().unwrap();
    let (_engine, sandbox, net, _host) = by_hand(dir.path());
    let address = addr("test_network.main");
    let current = sandbox
        .read_unowned(&NETWORK, &net, &address)
        .await
        .unwrap()
        .unwrap();
    let ctx = OpContext {
        stack: "adopt".into(),
        idempotency_token: "t".into(),
        attempt: 1,
    };
    let first = sandbox.adopt(&ctx, &current, &address).await.unwrap();
    let second = sandbox.adopt(&ctx, &current, &address).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(first.address, address);
    // Another stack can't take it.
    let other = OpContext {
        stack: "other".into(),
        ..ctx
    };
    let err = sandbox.adopt(&other, &current, &address).await.unwrap_err();
    assert_eq!(err.code, "OwnedByAnotherStack");
}

#[tokio::test]
async fn the_sandbox_passes_the_adoption_contract() {
    let dir = tempfile::tempdir().unwrap();
    let (_engine, sandbox, net, host) = by_hand(dir.path());
    let out = infra_core::conformance::adoption(
        sandbox.clone(),
        &declared(&net, &host, 2),
        &infra_core::import::ImportFilter::all(),
    )
    .await;
    assert_eq!((out.resources, out.applies), (2, 2));
    assert!(sandbox.objects().unwrap().is_empty());
}

#[tokio::test]
async fn a_saved_plan_of_adoptions_applies_and_is_refused_once_applied() {
    use infra_core::plan::saved::SavedPlan;
    let dir = tempfile::tempdir().unwrap();
    let (engine, sandbox, net, host) = by_hand(dir.path());
    let stack = declared(&net, &host, 2);
    let (_, phase) = engine
        .plan_to_save(&stack, &PlanOptions::default())
        .await
        .unwrap();
    let saved = SavedPlan::new(&stack, Default::default(), vec![phase]);
    let text = saved.to_json();
    assert!(text.contains("\"adopted\""), "{text}");
    let saved = SavedPlan::from_json(&text).unwrap();
    let planned = engine
        .verify_saved(&stack, &saved, &Default::default())
        .await
        .unwrap();
    let report = engine.apply(&planned[0], &NoObserver).await.unwrap();
    assert_eq!(report.counts().adopted, 2);
    assert!(owners(&sandbox)
        .iter()
        .all(|(_, s, _)| s.as_deref() == Some("adopt")));
    // Applied once: the objects are owned now, not what the plan read.
    assert!(engine
        .verify_saved(&stack, &saved, &Default::default())
        .await
        .is_err());
}
