//! Validation runs before anything is read: every problem of every resource at once, each naming
//! the address and the field. No moto needed.

use infra_aws::*;
use infra_core::dsl::{Resource, Stack};
use infra_core::graph::Graph;

fn problems(stack: &Stack) -> Vec<(String, String, String)> {
    match Graph::build(stack) {
        Ok(_) => Vec::new(),
        Err(e) => e
            .problems
            .into_iter()
            .map(|p| (p.address, p.field, p.message))
            .collect(),
    }
}

fn has(ps: &[(String, String, String)], address: &str, field: &str, needle: &str) -> bool {
    ps.iter()
        .any(|(a, f, m)| a == address && f == field && m.contains(needle))
}

#[test]
fn every_problem_is_reported_at_once_with_address_and_field() {
    let mut s = Stack::new("val");
    let vpc = s.add(Vpc::new("main").cidr("10.0.0.0/16"));
    s.add(Vpc::new("other").cidr("10.0.0.1/16"));
    let a = s.add(
        Subnet::new("a")
            .vpc(&vpc)
            .cidr("10.1.0.0/24")
            .az("us-east-1a"),
    );
    let b = s.add(Subnet::new("b").vpc(&vpc).cidr("10.1.0.0/25").az("useast"));
    s.add(
        SecurityGroup::new("web")
            .vpc(&vpc)
            .ingress(Rule::tcp_range(443, 80).cidr("0.0.0.0/0"))
            .ingress(Rule::tcp(22))
            .ingress(Rule::tcp(22).cidr("10.0.0.0/8"))
            .ingress(Rule::tcp(22).cidr("10.0.0.0/8").describe("again")),
    );
    let lt = s.add(
        LaunchTemplate::new("node")
            .image("img-1")
            .instance_type("large"),
    );
    s.add(
        Asg::new("nodes")
            .launch_template(&lt)
            .subnets(&[&a, &b])
            .size(3, 1, 2),
    );
    s.add(NatGateway::new("a").subnet(&a));
    s.add(
        RouteTable::new("private")
            .vpc(&vpc)
            .associate(&a)
            .associate(&a),
    );
    s.add(IamRole::new(&"r".repeat(61)).assumed_by_service("ec2.amazonaws.com"));
    s.add(IamRole::new("no-trust"));
    s.add(IamPolicy::new("bad").document_json(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Maybe","Action":"ec2"}]}"#,
    ));
    let ps = problems(&s);
    assert!(
        has(&ps, "aws_vpc.other", "cidr_block", "host bits"),
        "{ps:#?}"
    );
    assert!(
        has(&ps, "aws_subnet.a", "cidr_block", "outside the VPC"),
        "{ps:#?}"
    );
    assert!(has(
        &ps,
        "aws_subnet.b",
        "availability_zone",
        "not an availability zone"
    ));
    assert!(has(
        &ps,
        "aws_subnet.b",
        "cidr_block",
        "overlaps aws_subnet.a"
    ));
    assert!(has(&ps, "aws_security_group.web", "ingress[0]", "reversed"));
    assert!(has(
        &ps,
        "aws_security_group.web",
        "ingress[1]",
        "exactly one of cidr"
    ));
    assert!(has(
        &ps,
        "aws_security_group.web",
        "ingress[3]",
        "duplicates an earlier rule"
    ));
    assert!(has(
        &ps,
        "aws_launch_template.node",
        "image_id",
        "not an AMI id"
    ));
    assert!(has(
        &ps,
        "aws_launch_template.node",
        "instance_type",
        "not an instance type"
    ));
    assert!(has(
        &ps,
        "aws_autoscaling_group.nodes",
        "min_size",
        "greater than max_size"
    ));
    assert!(has(
        &ps,
        "aws_nat_gateway.a",
        "allocation_id",
        "is required"
    ));
    assert!(has(
        &ps,
        "aws_nat_gateway.a",
        "subnet_id",
        "not a public subnet"
    ));
    assert!(has(
        &ps,
        "aws_route_table.private",
        "subnet_ids[1]",
        "associated twice"
    ));
    let long = format!("aws_iam_role.{}", "r".repeat(61));
    assert!(has(&ps, &long, "name", "AWS allows 64"), "{ps:#?}");
    assert!(has(
        &ps,
        "aws_iam_role.no-trust",
        "assume_role_policy",
        "is required"
    ));
    assert!(has(
        &ps,
        "aws_iam_policy.bad",
        "document.Statement[0]",
        "Effect must be Allow or Deny"
    ));
    assert!(has(
        &ps,
        "aws_iam_policy.bad",
        "document.Statement[0]",
        "not of the form service:Action"
    ));
    assert!(has(
        &ps,
        "aws_iam_policy.bad",
        "document.Statement[0]",
        "needs a Resource"
    ));
}

#[test]
fn long_stack_names_make_names_too_long_for_aws() {
    let mut s = Stack::new("s".repeat(48));
    let vpc = s.add(Vpc::new("main").cidr("10.0.0.0/16"));
    let sg = s.add(SecurityGroup::new("web").vpc(&vpc));
    let lt = s.add(
        LaunchTemplate::new(&"t".repeat(64))
            .image("ami-12c6146b")
            .instance_type("t3.micro")
            .security_group(&sg),
    );
    let sub = s.add(
        Subnet::new("a")
            .vpc(&vpc)
            .cidr("10.0.1.0/24")
            .az("us-east-1a"),
    );
    s.add(
        Asg::new("ok")
            .launch_template(&lt)
            .subnets(&[&sub])
            .size(1, 1, 1),
    );
    s.add(IamUser::new("alice-the-administrator"));
    let ps = problems(&s);
    // 48 + 1 + 64 characters fit the 128 of launch templates; IAM users allow 64.
    assert!(
        !ps.iter()
            .any(|(a, _, _)| a.starts_with("aws_launch_template.")),
        "{ps:#?}"
    );
    assert!(
        has(
            &ps,
            "aws_iam_user.alice-the-administrator",
            "name",
            "AWS allows 64"
        ),
        "{ps:#?}"
    );
    assert!(
        !ps.iter().any(|(a, _, _)| a == "aws_autoscaling_group.ok"),
        "{ps:#?}"
    );
}

#[test]
fn a_scaling_policy_needs_the_group_to_ignore_desired_capacity() {
    let mut s = Stack::new("val");
    let vpc = s.add(Vpc::new("main").cidr("10.0.0.0/16"));
    let a = s.add(
        Subnet::new("a")
            .vpc(&vpc)
            .cidr("10.0.1.0/24")
            .az("us-east-1a"),
    );
    let lt = s.add(
        LaunchTemplate::new("n")
            .image("ami-12c6146b")
            .instance_type("t3.micro"),
    );
    let fixed = s.add(
        Asg::new("fixed")
            .launch_template(&lt)
            .subnets(&[&a])
            .size(1, 3, 1),
    );
    let free = s.add(
        Asg::new("free")
            .launch_template(&lt)
            .subnets(&[&a])
            .size(1, 3, 1)
            .ignore_changes(&["desired_capacity"]),
    );
    s.add(
        ScalingPolicy::target_tracking("cpu")
            .asg(&fixed)
            .cpu_target(150.0),
    );
    s.add(
        ScalingPolicy::target_tracking("cpu2")
            .asg(&free)
            .cpu_target(60.0),
    );
    let ps = problems(&s);
    assert!(
        has(
            &ps,
            "aws_autoscaling_policy.cpu",
            "autoscaling_group_name",
            "ignore_changes"
        ),
        "{ps:#?}"
    );
    assert!(has(
        &ps,
        "aws_autoscaling_policy.cpu",
        "target_value",
        "above 100"
    ));
    assert!(
        !ps.iter()
            .any(|(a, _, _)| a == "aws_autoscaling_policy.cpu2"),
        "{ps:#?}"
    );
}

#[test]
fn the_mfa_policy_denies_everything_but_self_service_without_mfa() {
    let doc = mfa_required_document().to_value();
    let json = doc.to_json();
    let deny = json["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Effect"] == "Deny")
        .expect("a Deny statement");
    assert_eq!(
        deny["Condition"]["BoolIfExists"]["aws:MultiFactorAuthPresent"],
        serde_json::json!(["false"])
    );
    let not_actions: Vec<&str> = deny["NotAction"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(not_actions.contains(&"iam:EnableMFADevice"));
    assert!(not_actions.contains(&"sts:GetSessionToken"));
    assert!(!not_actions.iter().any(|a| a.starts_with("ec2:")));
    // A valid document, and what AWS returns for it normalises to the same value.
    let mut s = Stack::new("val");
    s.add(IamPolicy::mfa_required("mfa"));
    assert!(problems(&s).is_empty());
    assert_eq!(normalise_document(&json), doc);
}

#[test]
fn trust_policies_normalise_like_aws_returns_them() {
    let built = PolicyDocument::assume_role_by_service("ec2.amazonaws.com").to_value();
    let from_aws = normalise_document(&serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]
    }));
    assert_eq!(built, from_aws);
}

#[test]
fn every_kind_is_served_by_the_aws_provider() {
    for s in schemas() {
        assert_eq!(s.provider, infra_aws::PROVIDER, "{}", s.kind);
        assert!(s.kind.starts_with("aws_"));
    }
    assert!(schemas()
        .iter()
        .any(|s| s.data_source && s.kind == "aws_ami"));
}

#[test]
fn protect_is_a_resource_option_on_every_kind() {
    // Protect comes from the core's Resource trait; a protected VPC is in the plan's errors when
    // it would be destroyed (checked by the core). Here: the option reaches the spec.
    let v = Vpc::new("main").cidr("10.0.0.0/16").protect();
    assert!(v.spec().options.protect);
}
