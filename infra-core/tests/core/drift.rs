//! Drift told apart from change: each field of a plan says whether its difference comes from
//! the code or from outside, by the record the last apply wrote on the object.

use std::sync::Arc;

use infra_core::plan::drift::{self, Origin};
use infra_core::plan::Plan;
use infra_core::render;
use infra_core::sandbox::{SandboxObject, SandboxProvider};
use infra_core::{Stack, Value};

use crate::kinds::{Host, Network};
use crate::plan::{converge, plan};

use infra_core::engine::Engine;

fn stack(web_size: i64, ports: &[i64]) -> Stack {
    let mut s = Stack::new("drift");
    let net = s.add(Network::new("main", "10.0.0.0/16"));
    s.add(
        Host::new("web")
            .network(&net)
            .size(web_size)
            .ports(ports)
            .password("hunter2-secret"),
    );
    s
}

fn object(sandbox: &SandboxProvider, name: &str) -> SandboxObject {
    sandbox
        .objects()
        .unwrap()
        .into_iter()
        .find(|o| o.name == name)
        .unwrap()
}

fn origins(p: &Plan, address: &str) -> Vec<(String, Option<Origin>)> {
    p.change(address)
        .unwrap()
        .fields
        .iter()
        .map(|f| (f.name.clone(), f.origin))
        .collect()
}

#[tokio::test]
async fn a_change_made_by_hand_is_drift_and_a_change_in_code_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Arc::new(SandboxProvider::open(dir.path(), "test").unwrap());
    let e = Engine::new().with_provider_arc(sandbox.clone());
    converge(&e, &stack(2, &[80, 443])).await;
    let web = object(&sandbox, "web");
    let record = web.declared.clone().expect("the create wrote a record");
    assert!(record.starts_with("d1:") && record.len() <= 256, "{record}");
    assert!(!record.contains("hunter2"), "{record}");

    // By hand: the size. In code: the ports (a set-like field, declared in another order too).
    sandbox.tamper(&web.id, "size", Value::Int(7)).unwrap();
    let p = plan(&e, &stack(2, &[443, 8080])).await.plan;
    assert_eq!(
        origins(&p, "test_host.web"),
        vec![
            ("ports".to_string(), Some(Origin::Code)),
            ("size".to_string(), Some(Origin::Drift)),
        ]
    );
    assert_eq!(p.summary.drifted, 1);
    assert_eq!(p.drift.len(), 1);
    assert_eq!(p.drift[0].fields, vec!["size".to_string()]);
    let text = render::plan_text(&p);
    let (drift_part, actions) = text.split_once("infra will perform").unwrap();
    assert!(
        drift_part.contains("Drift: 1 object changed outside infra")
            && drift_part.contains("size is 7, declared and last applied 2")
            && !drift_part.contains("ports"),
        "{text}"
    );
    assert!(
        actions.contains("~ size  = 7 -> 2 # drift: changed outside infra"),
        "{text}"
    );
    let md = render::plan_markdown(&p, &Default::default());
    assert!(
        md.contains("### Drift") && md.contains("`size` is `7`, declared `2`"),
        "{md}"
    );
    let only = render::plan_drift_text(&p);
    assert!(
        only.starts_with("Drift: 1 object") && !only.contains("ports"),
        "{only}"
    );
    let json: serde_json::Value = serde_json::from_str(&render::plan_drift_json(&p)).unwrap();
    assert_eq!(json["drifted"], 1);
    assert_eq!(json["drift"][0]["fields"][0]["name"], "size");
    assert_eq!(json["drift"][0]["fields"][0]["origin"], "drift");

    // The apply writes the new record: the next plan is empty, and a later edit by hand of the
    // new value is drift again while the code's own change shows as code.
    converge(&e, &stack(2, &[443, 8080])).await;
    assert!(plan(&e, &stack(2, &[443, 8080])).await.plan.is_empty());
    let web = object(&sandbox, "web");
    sandbox
        .tamper(&web.id, "ports", Value::List(vec![Value::Int(22)]))
        .unwrap();
    let p = plan(&e, &stack(3, &[8080, 443])).await.plan;
    assert_eq!(
        origins(&p, "test_host.web"),
        vec![
            ("ports".to_string(), Some(Origin::Drift)),
            ("size".to_string(), Some(Origin::Code)),
        ]
    );
}

#[tokio::test]
async fn no_drift_says_so_and_an_object_without_a_record_is_of_unknown_origin() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Arc::new(SandboxProvider::open(dir.path(), "test").unwrap());
    let e = Engine::new().with_provider_arc(sandbox.clone());
    converge(&e, &stack(2, &[80])).await;
    let p = plan(&e, &stack(5, &[80])).await.plan;
    assert!(p.drift.is_empty(), "{p:?}");
    let only = render::plan_drift_text(&p);
    assert!(only.starts_with("No drift. The 2 objects"), "{only}");
    assert!(!render::plan_text(&p).contains("Drift"));
    assert!(!render::plan_json(&p).contains("\"drift\": ["));

    // A field declared now but not at the last apply (the peer's version, say) is code; a
    // field set by hand that the code never declared is drift.
    let web = object(&sandbox, "web");
    sandbox
        .tamper(&web.id, "note", Value::from("by hand"))
        .unwrap();
    let p = plan(&e, &stack(2, &[80])).await.plan;
    assert_eq!(
        origins(&p, "test_host.web"),
        vec![("note".to_string(), Some(Origin::Drift))]
    );

    // Without a record (an object an older version applied), nothing can be told.
    let obs = infra_core::provider::Observed {
        address: "test_host.web".parse().unwrap(),
        id: web.id.clone(),
        props: web.props.clone(),
        protect: false,
        declared: None,
    };
    assert_eq!(
        drift::origin(&crate::kinds::HOST, "size", Some(&Value::Int(9)), &obs),
        Origin::Unknown
    );
    let obs = infra_core::provider::Observed {
        declared: web.declared.clone(),
        ..obs
    };
    assert_eq!(
        drift::origin(&crate::kinds::HOST, "size", Some(&Value::Int(9)), &obs),
        Origin::Code
    );
    assert_eq!(
        drift::origin(&crate::kinds::HOST, "size", Some(&Value::Int(2)), &obs),
        Origin::Drift
    );
}

#[test]
fn the_record_holds_digests_of_every_field_and_tells_them_apart() {
    let props = |size: i64| {
        [
            ("size".to_string(), Value::Int(size)),
            ("name".to_string(), Value::from("web")),
            ("empty".to_string(), Value::List(vec![])),
        ]
        .into_iter()
        .collect()
    };
    let a = drift::record(&crate::kinds::HOST, &props(2));
    let b = drift::record(&crate::kinds::HOST, &props(3));
    assert_ne!(a, b);
    // Two fields, four bytes each, base64: `d1:` and 11 characters.
    assert_eq!(a.len(), 3 + 11, "{a}");
    // Integral floats and integers are one value, as diffing has them.
    let c = drift::record(
        &crate::kinds::HOST,
        &[
            ("size".to_string(), Value::Float(2.0)),
            ("name".to_string(), Value::from("web")),
        ]
        .into_iter()
        .collect(),
    );
    assert_eq!(a, c);
    // The most fields a record can hold fit an AWS tag value.
    let many = (0..drift::MAX_FIELDS + 5)
        .map(|i| {
            (
                format!("field_{i:02}"),
                Value::from("a long value, all the same"),
            )
        })
        .collect();
    assert!(drift::record(&crate::kinds::HOST, &many).len() <= 256);
}
