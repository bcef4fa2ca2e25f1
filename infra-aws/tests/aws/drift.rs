//! Drift on the kinds the lifecycle tests don't drift: changes made with the SDK directly show
//! in the plan, and apply repairs them. Also: the protection tag is read back, so a protected
//! object stays protected after its declaration is removed.

use aws_sdk_ec2::types::InstanceType;
use infra_aws::*;
use infra_core::dsl::{Resource, Stack};
use infra_core::plan::drift::Origin;
use infra_core::plan::{Action, PlanOptions};

use crate::support::{
    action, apply, assert_noop, destroy, fields, id_of, moto, observed, plan, unique,
};

fn stack(name: &str, with_vpc: bool) -> Stack {
    let mut s = Stack::new(name);
    if with_vpc {
        let vpc = s.add(Vpc::new("main").cidr("10.110.0.0/16").protect());
        s.add(InternetGateway::new("main").vpc(&vpc));
    }
    s.add(
        LaunchTemplate::new("node")
            .image("ami-12c6146b")
            .instance_type("t3.micro"),
    );
    let policy = s.add(
        IamPolicy::new("read").document(
            PolicyDocument::new().statement(
                Statement::allow()
                    .actions(["ec2:DescribeInstances"])
                    .resources(["*"]),
            ),
        ),
    );
    let role = s.add(IamRole::new("node").assumed_by_service("ec2.amazonaws.com"));
    s.add(InstanceProfile::new("node").role(&role));
    s.add(IamGroup::new("readers").attach(&policy));
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn out_of_band_changes_show_in_the_plan_and_apply_repairs_them() {
    let Some(m) = moto("out_of_band_changes_show_in_the_plan_and_apply_repairs_them").await else {
        return;
    };
    let engine = m.engine();
    let name = unique("drift");
    let s = stack(&name, true);
    apply(&engine, &s).await;
    assert_noop(&engine, &s, "after create").await;

    let igw = id_of(&m, &name, "aws_internet_gateway.main").await;
    let vpc = id_of(&m, &name, "aws_vpc.main").await;
    m.ec2
        .detach_internet_gateway()
        .internet_gateway_id(&igw)
        .vpc_id(&vpc)
        .send()
        .await
        .unwrap();
    let lt = id_of(&m, &name, "aws_launch_template.node").await;
    m.ec2
        .create_launch_template_version()
        .launch_template_id(&lt)
        .launch_template_data(
            aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
                .image_id("ami-12c6146b")
                .instance_type(InstanceType::M5Large)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let policy = id_of(&m, &name, "aws_iam_policy.read").await;
    m.iam
        .create_policy_version()
        .policy_arn(&policy)
        .policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#)
        .set_as_default(true)
        .send()
        .await
        .unwrap();
    m.iam
        .detach_group_policy()
        .group_name(format!("{name}-readers"))
        .policy_arn(&policy)
        .send()
        .await
        .unwrap();
    m.iam
        .remove_role_from_instance_profile()
        .instance_profile_name(format!("{name}-node"))
        .role_name(format!("{name}-node"))
        .send()
        .await
        .unwrap();

    let p = plan(&engine, &s).await;
    assert_eq!(fields(&p, "aws_internet_gateway.main"), ["vpc_id"]);
    assert_eq!(action(&p, "aws_launch_template.node"), Action::Update);
    assert!(fields(&p, "aws_launch_template.node").contains(&"instance_type".to_string()));
    assert_eq!(fields(&p, "aws_iam_policy.read"), ["document"]);
    assert_eq!(fields(&p, "aws_iam_group.readers"), ["managed_policy_arns"]);
    assert_eq!(fields(&p, "aws_iam_instance_profile.node"), ["role"]);
    // Each of these is drift (the code did not change since the apply), told by the record
    // the apply wrote. IAM's listings carry no tags (the policy, group and instance profile
    // are found by path and name), so their origin can't be told without a call per object.
    let origin = |p: &infra_core::engine::Planned, a: &str, f: &str| {
        p.plan
            .change(a)
            .unwrap()
            .fields
            .iter()
            .find(|x| x.name == f)
            .unwrap()
            .origin
    };
    for (a, f) in [
        ("aws_internet_gateway.main", "vpc_id"),
        ("aws_launch_template.node", "instance_type"),
    ] {
        assert_eq!(origin(&p, a, f), Some(Origin::Drift), "{a} {f}");
    }
    for (a, f) in [
        ("aws_iam_policy.read", "document"),
        ("aws_iam_instance_profile.node", "role"),
    ] {
        assert_eq!(origin(&p, a, f), Some(Origin::Unknown), "{a} {f}");
    }
    let drifted: Vec<String> = p.plan.drift.iter().map(|d| d.address.to_string()).collect();
    assert_eq!(
        drifted,
        ["aws_launch_template.node", "aws_internet_gateway.main"]
    );
    apply(&engine, &s).await;
    assert_noop(&engine, &s, "after repairing drift").await;

    // The record is a tag of digests, within AWS's 256 characters.
    let tags = m
        .ec2
        .describe_vpcs()
        .vpc_ids(&vpc)
        .send()
        .await
        .unwrap()
        .vpcs()[0]
        .tags()
        .to_vec();
    let record = tags
        .iter()
        .find(|t| t.key() == Some(infra_aws::provider::TAG_DECLARED))
        .and_then(|t| t.value())
        .expect("the VPC carries its record");
    assert!(record.starts_with("d1:") && record.len() <= 256, "{record}");

    // Now a change in code (the template's instance type) and one by hand (the gateway
    // detached again): the plan tells them apart.
    let mut edited = stack(&name, true);
    edited
        .get_mut(&"aws_launch_template.node".parse().unwrap())
        .unwrap()
        .set("instance_type", "t3.small");
    m.ec2
        .detach_internet_gateway()
        .internet_gateway_id(&igw)
        .vpc_id(&vpc)
        .send()
        .await
        .unwrap();
    let p = plan(&engine, &edited).await;
    assert_eq!(
        origin(&p, "aws_launch_template.node", "instance_type"),
        Some(Origin::Code)
    );
    assert_eq!(
        origin(&p, "aws_internet_gateway.main", "vpc_id"),
        Some(Origin::Drift)
    );
    assert_eq!(p.plan.drift.len(), 1, "{:?}", p.plan.drift);
    apply(&engine, &s).await;
    assert_noop(&engine, &s, "after the second repair").await;
    let o = observed(&m, &name, "aws_launch_template.node").await;
    assert_eq!(o.props["latest_version"], infra_core::Value::Int(3));

    // The protection tag travels with the object: removing the declaration doesn't unprotect.
    assert!(observed(&m, &name, "aws_vpc.main").await.protect);
    let without = stack(&name, false);
    let p = engine
        .plan(&without, &PlanOptions::default())
        .await
        .unwrap();
    assert!(
        p.plan
            .errors
            .iter()
            .any(|e| e.contains("aws_vpc.main is protected")),
        "{:?}",
        p.plan.errors
    );

    destroy(&m, &engine, &s).await;
}
