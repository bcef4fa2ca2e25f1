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

#[test]
fn ssm_parameters_lifecycle_hooks_and_protocol_numbers_are_checked() {
    let secret = "do-not-print-3f9a1c";
    let mut s = Stack::new("val");
    let vpc = s.add(Vpc::new("main").cidr("10.0.0.0/16"));
    let a = s.add(
        Subnet::new("a")
            .vpc(&vpc)
            .cidr("10.0.1.0/24")
            .az("us-east-1a"),
    );
    s.add(
        SecurityGroup::new("ipsec")
            .vpc(&vpc)
            .ingress(Rule::esp().from_self())
            .ingress(Rule::protocol(47).cidr("10.0.0.0/8"))
            .ingress(Rule::raw("256", 0, 0).cidr("10.0.0.0/8"))
            .ingress(Rule::raw("-7", 0, 0).cidr("10.0.0.0/8"))
            .ingress(Rule::raw("esp", 0, 0).cidr("10.0.0.0/8"))
            // The same rule twice: by name and by number.
            .ingress(Rule::raw("50", 0, 0).from_self()),
    );
    let lt = s.add(
        LaunchTemplate::new("n")
            .image("ami-12c6146b")
            .instance_type("t3.micro"),
    );
    let group = s.add(
        Asg::new("nodes")
            .launch_template(&lt)
            .subnets(&[&a])
            .size(1, 3, 1),
    );
    s.add(
        LifecycleHook::on_terminate("drain")
            .asg(&group)
            .heartbeat(std::time::Duration::from_secs(300)),
    );
    s.add(
        LifecycleHook::on_terminate("short")
            .asg(&group)
            .heartbeat(std::time::Duration::from_secs(10)),
    );
    s.add(
        LifecycleHook::on_launch("fraction")
            .asg(&group)
            .heartbeat(std::time::Duration::from_millis(60_500)),
    );
    s.add(LifecycleHook::on_terminate("no-group").metadata(&"m".repeat(1024)));
    s.add(SsmParameter::string("ok", "/infra/val/ok").value("x"));
    s.add(SsmParameter::secure_string("relative", "infra/val/token").value(secret));
    s.add(SsmParameter::secure_string("empty", "/infra/val/empty").value(""));
    s.add(SsmParameter::string("bad-chars", "/infra/val/a b//c/").value("x"));
    s.add(SsmParameter::string("reserved", "/aws/thing").value("x"));
    s.add(SsmParameter::string("twin", "/infra/val/ok").value("y"));
    s.add(SsmParameter::string("missing", "/infra/val/missing"));
    s.add(SsmParameter::string_list("list", "/infra/val/list").values(["a,b", ""]));
    s.add(SsmParameter::secure_string("big", "/infra/val/big").value("x".repeat(4097)));
    s.add(
        SsmParameter::secure_string("from-env", "/infra/val/env")
            .from_env("INFRA_TEST_CERTAINLY_UNSET_VARIABLE"),
    );
    let ps = problems(&s);
    let sg = "aws_security_group.ipsec";
    assert!(
        has(&ps, sg, "ingress[2]", "protocol `256` is not one of"),
        "{ps:#?}"
    );
    assert!(
        has(&ps, sg, "ingress[3]", "protocol `-7` is not one of"),
        "{ps:#?}"
    );
    assert!(
        has(&ps, sg, "ingress[4]", "protocol `esp` is not one of"),
        "{ps:#?}"
    );
    assert!(
        has(&ps, sg, "ingress[5]", "duplicates an earlier rule"),
        "{ps:#?}"
    );
    assert!(
        !ps.iter()
            .any(|(a, f, _)| a == sg && (f == "ingress[0]" || f == "ingress[1]")),
        "{ps:#?}"
    );
    assert!(
        !ps.iter()
            .any(|(a, _, _)| a == "aws_autoscaling_lifecycle_hook.drain"),
        "{ps:#?}"
    );
    assert!(has(
        &ps,
        "aws_autoscaling_lifecycle_hook.short",
        "heartbeat_timeout",
        "out of range [30, 7200]"
    ));
    assert!(has(
        &ps,
        "aws_autoscaling_lifecycle_hook.fraction",
        "heartbeat_timeout",
        "whole number of seconds"
    ));
    assert!(has(
        &ps,
        "aws_autoscaling_lifecycle_hook.no-group",
        "autoscaling_group_name",
        ".asg(&"
    ));
    assert!(has(
        &ps,
        "aws_autoscaling_lifecycle_hook.no-group",
        "notification_metadata",
        "AWS allows 1023"
    ));
    assert!(
        !ps.iter().any(|(a, _, _)| a == "aws_ssm_parameter.ok"),
        "{ps:#?}"
    );
    assert!(has(
        &ps,
        "aws_ssm_parameter.relative",
        "name",
        "must start with `/`"
    ));
    assert!(has(
        &ps,
        "aws_ssm_parameter.empty",
        "secure_value",
        "must not be empty"
    ));
    assert!(has(
        &ps,
        "aws_ssm_parameter.bad-chars",
        "name",
        "contains ` `"
    ));
    assert!(has(
        &ps,
        "aws_ssm_parameter.bad-chars",
        "name",
        "empty level"
    ));
    assert!(has(&ps, "aws_ssm_parameter.reserved", "name", "reserved"));
    assert!(has(
        &ps,
        "aws_ssm_parameter.twin",
        "name",
        "also the name of aws_ssm_parameter.ok"
    ));
    assert!(has(
        &ps,
        "aws_ssm_parameter.missing",
        "value",
        "is required"
    ));
    assert!(has(
        &ps,
        "aws_ssm_parameter.list",
        "value",
        "item 0 contains `,`"
    ));
    assert!(has(
        &ps,
        "aws_ssm_parameter.list",
        "value",
        "item 1 is empty"
    ));
    assert!(has(
        &ps,
        "aws_ssm_parameter.big",
        "secure_value",
        "4097 bytes long"
    ));
    assert!(has(
        &ps,
        "aws_ssm_parameter.from-env",
        "secure_value",
        "INFRA_TEST_CERTAINLY_UNSET_VARIABLE` is not set"
    ));
    // No problem quotes a secret value.
    assert!(!ps.iter().any(|(_, _, m)| m.contains(secret)), "{ps:#?}");
}

#[test]
fn protocol_numbers_take_the_forms_aws_reads_back() {
    let value = |r: Rule| {
        let sg = SecurityGroup::new("g").ingress(r.cidr("10.0.0.0/8"));
        let rule = sg.spec().get("ingress").unwrap().as_list().unwrap()[0].clone();
        let m = rule.as_map().unwrap().clone();
        (
            m["protocol"].as_str().unwrap().to_string(),
            m["from_port"].as_i64().unwrap(),
            m["to_port"].as_i64().unwrap(),
        )
    };
    assert_eq!(value(Rule::esp()), ("50".into(), 0, 0));
    assert_eq!(value(Rule::protocol(50)), value(Rule::raw("050", 1, 2)));
    assert_eq!(value(Rule::protocol(6)), ("tcp".into(), 0, 65535));
    assert_eq!(value(Rule::protocol(17)), ("udp".into(), 0, 65535));
    assert_eq!(value(Rule::protocol(1)), ("icmp".into(), -1, -1));
    assert_eq!(value(Rule::protocol(58)), ("58".into(), -1, -1));
    assert_eq!(value(Rule::raw("icmpv6", 128, 0)), ("58".into(), 128, 0));
    assert_eq!(value(Rule::raw("6", 80, 80)), value(Rule::tcp(80)));
    assert_eq!(value(Rule::raw("ALL", 1, 2)), value(Rule::all()));
    assert_eq!(value(Rule::raw("-1", 0, 0)), ("-1".into(), 0, 0));
}

/// The checks against earlier resources of a kind (one internet gateway per VPC, one NAT gateway
/// per Elastic IP, one route table per subnet, no overlapping subnets in a VPC) go through the
/// validation context's per-kind index: each conflict is reported once, on the later resource,
/// and only within the same VPC / EIP / subnet.
#[test]
fn conflicts_with_earlier_resources_of_a_kind_are_found_per_vpc_eip_and_subnet() {
    let mut s = Stack::new("val");
    let v1 = s.add(Vpc::new("one").cidr("10.1.0.0/16"));
    let v2 = s.add(Vpc::new("two").cidr("10.1.0.0/16"));
    let a = s.add(
        Subnet::new("a")
            .vpc(&v1)
            .cidr("10.1.0.0/24")
            .public(true)
            .az("us-east-1a"),
    );
    let b = s.add(
        Subnet::new("b")
            .vpc(&v1)
            .cidr("10.1.0.0/25")
            .public(true)
            .az("us-east-1a"),
    );
    // Same CIDR as `a`, another VPC: no overlap.
    let c = s.add(
        Subnet::new("c")
            .vpc(&v2)
            .cidr("10.1.0.0/24")
            .public(true)
            .az("us-east-1a"),
    );
    s.add(InternetGateway::new("g1").vpc(&v1));
    s.add(InternetGateway::new("g2").vpc(&v2));
    s.add(InternetGateway::new("g3").vpc(&v1));
    let e1 = s.add(ElasticIp::new("e1"));
    let e2 = s.add(ElasticIp::new("e2"));
    s.add(NatGateway::new("n1").subnet(&a).eip(&e1));
    s.add(NatGateway::new("n2").subnet(&b).eip(&e2));
    s.add(NatGateway::new("n3").subnet(&c).eip(&e1));
    s.add(RouteTable::new("r1").vpc(&v1).associate(&a));
    s.add(RouteTable::new("r2").vpc(&v1).associate(&b));
    s.add(RouteTable::new("r3").vpc(&v1).associate(&b).associate(&a));
    let ps = problems(&s);
    let on = |address: &str| ps.iter().filter(|p| p.0 == address).count();
    assert!(
        has(&ps, "aws_subnet.b", "cidr_block", "overlaps aws_subnet.a"),
        "{ps:#?}"
    );
    assert!(
        has(
            &ps,
            "aws_internet_gateway.g3",
            "vpc_id",
            "aws_internet_gateway.g1 is attached"
        ),
        "{ps:#?}"
    );
    assert!(
        has(
            &ps,
            "aws_nat_gateway.n3",
            "allocation_id",
            "aws_nat_gateway.n1 already uses"
        ),
        "{ps:#?}"
    );
    assert!(
        has(
            &ps,
            "aws_route_table.r3",
            "subnet_ids[0]",
            "already associated with aws_route_table.r2"
        ),
        "{ps:#?}"
    );
    assert!(
        has(
            &ps,
            "aws_route_table.r3",
            "subnet_ids[1]",
            "already associated with aws_route_table.r1"
        ),
        "{ps:#?}"
    );
    for (address, n) in [
        ("aws_subnet.a", 0),
        ("aws_subnet.b", 1),
        ("aws_subnet.c", 0),
        ("aws_internet_gateway.g1", 0),
        ("aws_internet_gateway.g2", 0),
        ("aws_internet_gateway.g3", 1),
        ("aws_nat_gateway.n1", 0),
        ("aws_nat_gateway.n2", 0),
        ("aws_nat_gateway.n3", 1),
        ("aws_route_table.r1", 0),
        ("aws_route_table.r2", 0),
        ("aws_route_table.r3", 2),
    ] {
        assert_eq!(on(address), n, "{address}: {ps:#?}");
    }
}
