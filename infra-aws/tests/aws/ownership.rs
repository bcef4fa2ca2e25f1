//! Ownership: objects without the stack's tags — made by hand, the default VPC, another stack's
//! — are never returned by a read, never changed, and survive apply and destroy. A name taken
//! by an object the stack doesn't own is an error, never a takeover.

use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};
use infra_aws::*;
use infra_core::dsl::Stack;

use crate::support::{apply, assert_noop, destroy, moto, plan, unique, Moto};

fn stack(name: &str) -> Stack {
    let mut s = Stack::new(name);
    let vpc = s.add(Vpc::new("main").cidr("10.80.0.0/16"));
    s.add(
        Subnet::new("a")
            .vpc(&vpc)
            .cidr("10.80.1.0/24")
            .az("us-east-1a"),
    );
    s.add(
        SecurityGroup::new("web")
            .vpc(&vpc)
            .ingress(Rule::tcp(443).cidr("0.0.0.0/0")),
    );
    s.add(IamRole::new("node").assumed_by_service("ec2.amazonaws.com"));
    s
}

fn tags(rt: ResourceType, pairs: &[(&str, &str)]) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(rt)
        .set_tags(Some(
            pairs
                .iter()
                .map(|(k, v)| Tag::builder().key(*k).value(*v).build())
                .collect(),
        ))
        .build()
}

async fn vpc_exists(m: &Moto, id: &str) -> bool {
    m.ec2
        .describe_vpcs()
        .vpc_ids(id)
        .send()
        .await
        .map(|o| !o.vpcs().is_empty())
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread")]
async fn objects_without_the_stack_tags_survive_apply_and_destroy() {
    let Some(m) = moto("objects_without_the_stack_tags_survive_apply_and_destroy").await else {
        return;
    };
    let engine = m.engine();
    let name = unique("own");
    let default_vpc = m
        .ec2
        .describe_vpcs()
        .filters(Filter::builder().name("is-default").values("true").build())
        .send()
        .await
        .unwrap()
        .vpcs()
        .first()
        .and_then(|v| v.vpc_id())
        .map(str::to_string);

    // Made by hand: same CIDR and the stack's Name, but no ownership tags.
    let by_hand = m
        .ec2
        .create_vpc()
        .cidr_block("10.80.0.0/16")
        .tag_specifications(tags(
            ResourceType::Vpc,
            &[("Name", &format!("{name}-main"))],
        ))
        .send()
        .await
        .unwrap();
    let by_hand_vpc = by_hand.vpc().unwrap().vpc_id().unwrap().to_string();
    let by_hand_sg = m
        .ec2
        .create_security_group()
        .group_name(format!("{name}-web"))
        .description("made by hand")
        .vpc_id(&by_hand_vpc)
        .send()
        .await
        .unwrap()
        .group_id()
        .unwrap()
        .to_string();
    // Another stack's object with the same logical address.
    let other = m
        .ec2
        .create_vpc()
        .cidr_block("10.80.0.0/16")
        .tag_specifications(tags(
            ResourceType::Vpc,
            &[
                ("infra:stack", &format!("{name}-other")),
                ("infra:id", "aws_vpc.main"),
            ],
        ))
        .send()
        .await
        .unwrap();
    let other_vpc = other.vpc().unwrap().vpc_id().unwrap().to_string();
    // An IAM role of the stack's name pattern but outside its IAM path.
    m.iam
        .create_role()
        .role_name(format!("{name}-stray"))
        .assume_role_policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#)
        .send()
        .await
        .unwrap();

    let s = stack(&name);
    let p = plan(&engine, &s).await;
    assert!(
        p.plan
            .changes
            .iter()
            .all(|c| c.action == infra_core::plan::Action::Create),
        "nothing of the hand-made objects is read as the stack's"
    );
    apply(&engine, &s).await;
    assert_noop(&engine, &s, "after create").await;
    destroy(&m, &engine, &s).await;

    assert!(
        vpc_exists(&m, &by_hand_vpc).await,
        "the hand-made VPC was touched"
    );
    assert!(
        vpc_exists(&m, &other_vpc).await,
        "another stack's VPC was touched"
    );
    if let Some(d) = default_vpc {
        assert!(vpc_exists(&m, &d).await, "the default VPC was touched");
    }
    let sg = m
        .ec2
        .describe_security_groups()
        .group_ids(&by_hand_sg)
        .send()
        .await
        .unwrap();
    assert_eq!(sg.security_groups()[0].description(), Some("made by hand"));
    assert!(m
        .iam
        .get_role()
        .role_name(format!("{name}-stray"))
        .send()
        .await
        .is_ok());

    // Clean up what this test made by hand.
    m.ec2
        .delete_security_group()
        .group_id(&by_hand_sg)
        .send()
        .await
        .unwrap();
    m.ec2
        .delete_vpc()
        .vpc_id(&by_hand_vpc)
        .send()
        .await
        .unwrap();
    m.ec2.delete_vpc().vpc_id(&other_vpc).send().await.unwrap();
    m.iam
        .delete_role()
        .role_name(format!("{name}-stray"))
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_name_taken_by_an_unowned_object_is_an_error_not_a_takeover() {
    let Some(m) = moto("a_name_taken_by_an_unowned_object_is_an_error_not_a_takeover").await else {
        return;
    };
    let engine = m.engine();
    let name = unique("taken");
    // A group and a role made by hand with the names the stack would use.
    let vpc = m
        .ec2
        .create_vpc()
        .cidr_block("10.81.0.0/16")
        .send()
        .await
        .unwrap();
    let vpc = vpc.vpc().unwrap().vpc_id().unwrap().to_string();
    let subnet = m
        .ec2
        .create_subnet()
        .vpc_id(&vpc)
        .cidr_block("10.81.1.0/24")
        .availability_zone("us-east-1a")
        .send()
        .await
        .unwrap();
    let subnet = subnet.subnet().unwrap().subnet_id().unwrap().to_string();
    let lt = m
        .ec2
        .create_launch_template()
        .launch_template_name(format!("{name}-by-hand"))
        .launch_template_data(
            aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
                .image_id("ami-12c6146b")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let lt = lt
        .launch_template()
        .unwrap()
        .launch_template_id()
        .unwrap()
        .to_string();
    m.asg
        .create_auto_scaling_group()
        .auto_scaling_group_name(format!("{name}-nodes"))
        .launch_template(
            aws_sdk_autoscaling::types::LaunchTemplateSpecification::builder()
                .launch_template_id(&lt)
                .version("1")
                .build(),
        )
        .min_size(0)
        .max_size(4)
        .vpc_zone_identifier(&subnet)
        .send()
        .await
        .unwrap();
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    m.iam
        .create_role()
        .role_name(format!("{name}-svc"))
        .assume_role_policy_document(trust)
        .send()
        .await
        .unwrap();

    let mut s = Stack::new(&name);
    let v = s.add(Vpc::new("main").cidr("10.82.0.0/16"));
    let a = s.add(
        Subnet::new("a")
            .vpc(&v)
            .cidr("10.82.1.0/24")
            .az("us-east-1a"),
    );
    let t = s.add(
        LaunchTemplate::new("node")
            .image("ami-12c6146b")
            .instance_type("t3.micro"),
    );
    s.add(
        Asg::new("nodes")
            .launch_template(&t)
            .subnets(&[&a])
            .size(1, 1, 1),
    );
    s.add(IamRole::new("svc").assumed_by_service("ec2.amazonaws.com"));
    let planned = plan(&engine, &s).await;
    let report = engine
        .apply(&planned, &infra_core::reconcile::NoObserver)
        .await
        .unwrap();
    let errors: Vec<String> = report
        .outcomes
        .iter()
        .filter_map(|o| match &o.status {
            infra_core::reconcile::OpStatus::Failed { error } => {
                Some(format!("{}: {error}", o.address))
            }
            _ => None,
        })
        .collect();
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("aws_autoscaling_group.nodes")
                && e.contains("AlreadyExists")
                && e.contains("not owned")),
        "{errors:#?}"
    );
    assert!(
        errors.iter().any(|e| e.starts_with("aws_iam_role.svc")
            && e.contains("EntityAlreadyExists")
            && e.contains("not owned")),
        "{errors:#?}"
    );
    // The hand-made objects are as they were.
    let g = m
        .asg
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(format!("{name}-nodes"))
        .send()
        .await
        .unwrap();
    let g = &g.auto_scaling_groups()[0];
    assert_eq!((g.min_size(), g.max_size()), (Some(0), Some(4)));
    assert_eq!(
        g.launch_template().and_then(|l| l.launch_template_id()),
        Some(lt.as_str())
    );
    let role = m
        .iam
        .get_role()
        .role_name(format!("{name}-svc"))
        .send()
        .await
        .unwrap();
    let doc = role
        .role()
        .unwrap()
        .assume_role_policy_document()
        .unwrap_or_default()
        .to_string();
    assert!(doc.contains("lambda"), "{doc}");

    destroy(&m, &engine, &s).await;
    m.asg
        .delete_auto_scaling_group()
        .auto_scaling_group_name(format!("{name}-nodes"))
        .force_delete(true)
        .send()
        .await
        .unwrap();
    m.iam
        .delete_role()
        .role_name(format!("{name}-svc"))
        .send()
        .await
        .unwrap();
    m.ec2
        .delete_launch_template()
        .launch_template_id(&lt)
        .send()
        .await
        .unwrap();
    m.ec2
        .delete_subnet()
        .subnet_id(&subnet)
        .send()
        .await
        .unwrap();
    m.ec2.delete_vpc().vpc_id(&vpc).send().await.unwrap();
}

/// The VPCs carrying the stack's tags for `infra:id = aws_vpc.main`.
async fn vpcs_claiming(m: &Moto, stack: &str, address: &str) -> Vec<String> {
    let out = m
        .ec2
        .describe_vpcs()
        .filters(
            Filter::builder()
                .name("tag:infra:stack")
                .values(stack)
                .build(),
        )
        .filters(
            Filter::builder()
                .name("tag:infra:id")
                .values(address)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let mut ids: Vec<String> = out
        .vpcs()
        .iter()
        .filter_map(|v| v.vpc_id().map(str::to_string))
        .collect();
    ids.sort();
    ids
}

/// An interrupted create-before-destroy leaves two objects with one `infra:id` (the new one
/// made, the old one not yet deleted). The next plan keeps one and deletes the other
/// ("deposed", `<address>~<id>`) after what refers to it has moved: the run converges to
/// exactly one object, without a hand-made repair.
#[tokio::test(flavor = "multi_thread")]
async fn two_objects_claiming_one_address_converge_to_one() {
    let Some(m) = moto("two_objects_claiming_one_address_converge_to_one").await else {
        return;
    };
    let engine = m.engine();
    let name = unique("twice");
    let mut s = Stack::new(&name);
    let vpc = s.add(Vpc::new("main").cidr("10.83.0.0/16"));
    s.add(
        Subnet::new("a")
            .vpc(&vpc)
            .cidr("10.83.1.0/24")
            .az("us-east-1a"),
    );
    apply(&engine, &s).await;
    let first = vpcs_claiming(&m, &name, "aws_vpc.main").await;
    assert_eq!(first.len(), 1);

    // The new half of a replacement, as create-before-destroy makes it: same tags.
    m.ec2
        .create_vpc()
        .cidr_block("10.83.0.0/16")
        .tag_specifications(tags(
            ResourceType::Vpc,
            &[
                ("infra:stack", &name),
                ("infra:id", "aws_vpc.main"),
                ("Name", &format!("{name}-main")),
            ],
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(vpcs_claiming(&m, &name, "aws_vpc.main").await.len(), 2);

    let p = plan(&engine, &s).await;
    let deposed: Vec<String> = p
        .plan
        .changes
        .iter()
        .filter(|c| c.address.kind() == "aws_vpc" && c.address.name().starts_with("main~"))
        .map(|c| c.address.to_string())
        .collect();
    assert_eq!(
        deposed.len(),
        1,
        "{}",
        infra_core::render::plan_text(&p.plan)
    );
    assert_eq!(
        p.plan.change(&deposed[0]).unwrap().action,
        infra_core::plan::Action::Delete
    );
    apply(&engine, &s).await;
    assert_eq!(vpcs_claiming(&m, &name, "aws_vpc.main").await.len(), 1);
    assert_noop(&engine, &s, "after the extra object was deleted").await;
    destroy(&m, &engine, &s).await;
    assert!(vpcs_claiming(&m, &name, "aws_vpc.main").await.is_empty());
}
