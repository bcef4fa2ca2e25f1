//! Snapshot tests of plans, text and JSON. Every snapshot is named; a snapshot file no test
//! asserts any more fails `.ci/test` (insta's snapshot references, as `cargo insta test
//! --unreferenced=reject`).

use infra::prelude::*;
use infra_core::render;

use crate::fixture::{apply, engine, plan, stack};

/// Asserts both renderings of a plan against `<name>.txt` and `<name>.json` snapshots.
macro_rules! assert_plan_snapshot {
    ($name:literal, $plan:expr) => {{
        let plan = $plan;
        insta::assert_snapshot!(concat!($name, ".txt"), render::plan_text(plan));
        insta::assert_snapshot!(concat!($name, ".json"), render::plan_json(plan));
    }};
}

fn edit(s: &mut Stack, address: &str, field: &str, value: impl Into<infra::core::Value>) {
    s.get_mut(&address.parse().unwrap())
        .unwrap_or_else(|| panic!("{address}"))
        .set(field, value);
}

#[tokio::test]
async fn plan_from_scratch() {
    let dir = tempfile::tempdir().unwrap();
    let p = plan(&engine(dir.path()), &stack()).await;
    assert_plan_snapshot!("from_scratch", &p.plan);
}

#[tokio::test]
async fn plan_after_apply_is_a_no_op() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    apply(&e, &stack()).await;
    let p = plan(&e, &stack()).await;
    assert!(p.plan.is_empty());
    assert_plan_snapshot!("no_op", &p.plan);
}

#[tokio::test]
async fn plan_of_an_in_place_update() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let mut s = stack();
    apply(&e, &s).await;
    edit(&mut s, "aws_autoscaling_group.web", "max_size", 6);
    edit(&mut s, "swarm_service.app", "replicas", 3);
    let sg = s
        .get_mut(&"aws_security_group.web".parse().unwrap())
        .unwrap();
    let mut rules = sg.get("ingress").unwrap().as_list().unwrap().to_vec();
    rules.pop();
    rules.push(infra::core::map! { "protocol" => "tcp", "from_port" => 22, "to_port" => 22, "cidr" => "198.51.100.0/25" });
    sg.set("ingress", infra::core::Value::List(rules));
    let p = plan(&e, &s).await;
    assert_eq!(p.plan.summary.change, 3);
    assert_plan_snapshot!("update", &p.plan);
}

#[tokio::test]
async fn plan_of_a_replacement() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let mut s = stack();
    apply(&e, &s).await;
    edit(&mut s, "aws_subnet.b", "cidr_block", "10.0.3.0/24");
    let p = plan(&e, &s).await;
    assert_eq!(
        p.plan.change("aws_subnet.b").unwrap().action,
        Action::DeleteThenCreate
    );
    assert_plan_snapshot!("replace", &p.plan);
}

#[tokio::test]
async fn plan_of_a_removed_resource() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path());
    let mut s = stack();
    apply(&e, &s).await;
    s.remove(&"aws_iam_policy.read".parse().unwrap());
    let p = plan(&e, &s).await;
    assert_eq!(p.plan.summary.destroy, 1);
    assert_plan_snapshot!("delete", &p.plan);
}

#[test]
fn validation_failure_lists_every_problem() {
    let mut s = Stack::new("broken");
    let vpc = s.add(Vpc::new("main").cidr("10.0.0.0/33"));
    let a = s.add(
        Subnet::new("a")
            .vpc(&vpc)
            .cidr("10.0.1.0/24")
            .az("us-east-1a"),
    );
    s.add(
        Subnet::new("a")
            .vpc(&vpc)
            .cidr("10.0.1.0/24")
            .az("us-east-1a"),
    );
    s.add(
        Subnet::new("b")
            .vpc(&vpc)
            .cidr("10.0.1.128/25")
            .az("nowhere"),
    );
    let sg = s.add(
        SecurityGroup::new("sg")
            .vpc(&vpc)
            .ingress(Rule::tcp_range(443, 80).cidr("0.0.0.0/0")),
    );
    let lt = s.add(
        LaunchTemplate::new("lt")
            .image("ami-1")
            .instance_type("t3.micro")
            .security_group(&sg),
    );
    s.add(
        Asg::new("asg")
            .launch_template(&lt)
            .subnets(&[&a])
            .size(3, 1, 2),
    );
    s.add(Asg::new("").launch_template(&lt).size(1, 2, 5));
    s.add(SwarmService::new("svc").replicas(1));
    let err = infra::core::graph::Graph::build(&s).unwrap_err();
    assert!(err.problems.len() >= 8, "{err}");
    insta::assert_snapshot!("validation_errors.txt", err.to_string());
}
