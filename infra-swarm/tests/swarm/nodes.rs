//! Node labels managed by the stack: set, repaired after a hand edit, removed on destroy (a
//! label the stack took over gets its previous value back), and labels the stack doesn't manage
//! left alone.

use infra_core::plan::Action;
use infra_core::{Resource, Stack};
use infra_swarm::NodeLabels;

use crate::common::*;

fn node_labels() -> String {
    docker(&[
        "node",
        "inspect",
        "self",
        "--format",
        "{{json .Spec.Labels}}",
    ])
}

#[tokio::test(flavor = "multi_thread")]
async fn node_labels_are_set_repaired_and_removed() {
    let Some(p) = provider("node_labels").await else {
        return;
    };
    let name = unique("nl");
    let _guard = Cleanup::new(&name);
    let engine = engine(&p);
    let key = format!("zone-{name}");
    let node_id = p.node_id().to_string();

    // A label set by hand (or by a provisioning script) that the stack takes over.
    let taken = format!("taken-{name}");
    docker(&[
        "node",
        "update",
        "--label-add",
        &format!("{taken}=by-hand"),
        &node_id,
    ]);
    let _unlabel = RemoveLabel(node_id.clone(), taken.clone());
    let build = |value: &str| {
        let mut s = Stack::new(&name);
        s.add(
            NodeLabels::new("here")
                .node("self")
                .label(&key, value)
                .label(&taken, "by-stack"),
        );
        // A service placed by the managed label: the label exists before the service.
        let mut svc =
            quick_service("pinned", &image()).constraint(&format!("node.labels.{key} == {value}"));
        svc = svc.depends_on(&infra_core::Ref::<NodeLabels>::named("here"));
        s.add(svc);
        s
    };
    let s = build("a");
    converge(&engine, &s).await;
    assert!(
        node_labels().contains(&format!("\"{key}\":\"a\"")),
        "{}",
        node_labels()
    );
    assert_eq!(running(&format!("{name}_pinned")).len(), 1);
    assert_no_changes(&engine, &s, "after create").await;

    // Removed by hand: drift, repaired by the next apply.
    docker(&["node", "update", "--label-rm", &key, &node_id]);
    let planned = plan(&engine, &s).await;
    assert_eq!(
        planned
            .plan
            .change("swarm_node_labels.here")
            .unwrap()
            .action,
        Action::Update
    );
    converge(&engine, &s).await;
    assert!(node_labels().contains(&format!("\"{key}\":\"a\"")));

    // Destroy removes the managed key and the marker, and nothing else.
    let before_az = node_labels().contains("\"az\":");
    let d = destroy_plan(&engine, &s).await;
    assert!(apply_planned(&engine, &d).await.is_success());
    let after = node_labels();
    assert!(!after.contains(&key), "{after}");
    assert!(!after.contains(&format!("infra.owner.{name}.")), "{after}");
    assert_eq!(
        after.contains("\"az\":"),
        before_az,
        "other labels untouched: {after}"
    );
    assert!(
        after.contains(&format!("\"{taken}\":\"by-hand\"")),
        "a taken-over label gets its previous value back: {after}"
    );
}

/// Removes a hand-set node label when the test ends, pass or fail.
struct RemoveLabel(String, String);

impl Drop for RemoveLabel {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker")
            .args(["node", "update", "--label-rm", &self.1, &self.0])
            .output();
    }
}
