use infra::prelude::*;
use infra::testing::{self, assert_no_policy_errors};

fn my_stack() -> Stack {
    let mut s = Stack::new("shop");
    let vpc = s.add(Vpc::new("main").cidr("10.0.0.0/16"));
    let a = s.add(Subnet::new("a").vpc(&vpc).cidr("10.0.1.0/24").az("us-east-1a"));
    let b = s.add(Subnet::new("b").vpc(&vpc).cidr("10.0.2.0/24").az("us-east-1b"));
    let sg = s.add(SecurityGroup::new("web").vpc(&vpc).egress_all());
    let lt = s.add(LaunchTemplate::new("web").image("ami-0123456789abcdef0").instance_type("t3.micro").security_group(&sg));
    s.add(Asg::new("web").launch_template(&lt).subnets(&[&a, &b]).size(2, 4, 2));
    s
}

#[test]
fn my_stack_is_highly_available_and_passes_the_policies() {
    let plan = testing::plan(&my_stack());
    assert_no_policy_errors(&plan);
    assert_eq!(plan.resources::<Asg>().len(), 1);
    plan.resource("aws_autoscaling_group.web").assert_props(serde_json::json!({ "min_size": 2 }));
}

#[test]
fn my_stack_plan_is_reviewed() {
    infra::assert_plan_snapshot!("shop_plan", &testing::plan(&my_stack()));
}
