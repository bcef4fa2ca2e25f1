//! Idempotent creates: a create retried after a lost response (the first attempt did create the
//! object) finds it by its ownership tags or name and converges it: no duplicate, whether the
//! API has an idempotency token or not. Errors carry the AWS code and are classified.

use infra_aws::*;
use infra_core::dsl::{Resource, ResourceSpec};
use infra_core::provider::{ErrorClass, OpContext, Provider, Resolved};
use infra_core::Value;

use crate::support::{moto, unique};

fn resolved(spec: ResourceSpec, set: &[(&str, Value)]) -> Resolved {
    let mut props = spec.props.clone();
    for (k, v) in set {
        props.insert((*k).to_string(), v.clone());
    }
    Resolved {
        address: spec.address.clone(),
        schema: spec.schema,
        props,
        protect: false,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retried_create_after_a_lost_response_makes_no_duplicate() {
    let Some(m) = moto("a_retried_create_after_a_lost_response_makes_no_duplicate").await else {
        return;
    };
    let p = m.provider.as_ref();
    let stack = unique("idem");
    let ctx = |attempt| OpContext {
        stack: stack.clone(),
        idempotency_token: format!("infra-test-{stack}"),
        attempt,
    };
    let vpc = resolved(Vpc::new("main").cidr("10.90.0.0/16").into_spec(), &[]);
    let first = p.create(&ctx(1), &vpc).await.unwrap();
    let again = p.create(&ctx(2), &vpc).await.unwrap();
    assert_eq!(
        first.id, again.id,
        "CreateVpc has no token: the retry found the first VPC"
    );
    let vpc_id = Value::from(first.id.as_str());

    let subnet = resolved(
        Subnet::new("a")
            .cidr("10.90.1.0/24")
            .az("us-east-1a")
            .public(true)
            .into_spec(),
        &[("vpc_id", vpc_id.clone())],
    );
    let igw = resolved(
        InternetGateway::new("main").into_spec(),
        &[("vpc_id", vpc_id.clone())],
    );
    let eip = resolved(ElasticIp::new("nat").into_spec(), &[]);
    let sg = resolved(
        SecurityGroup::new("web")
            .ingress(Rule::tcp(443).cidr("0.0.0.0/0"))
            .into_spec(),
        &[("vpc_id", vpc_id.clone())],
    );
    let role = resolved(
        IamRole::new("node")
            .assumed_by_service("ec2.amazonaws.com")
            .into_spec(),
        &[],
    );
    let lt = resolved(
        LaunchTemplate::new("node")
            .image("ami-12c6146b")
            .instance_type("t3.micro")
            .into_spec(),
        &[],
    );
    let mut made = Vec::new();
    for r in [&subnet, &igw, &eip, &sg, &role, &lt] {
        let a = p
            .create(&ctx(1), r)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", r.address));
        let b = p
            .create(&ctx(2), r)
            .await
            .unwrap_or_else(|e| panic!("{} retry: {e}", r.address));
        assert_eq!(a.id, b.id, "{}: the retry made another object", r.address);
        made.push((r.address.clone(), a));
    }
    // NAT gateway (with a ClientToken) in the subnet, with the Elastic IP.
    let subnet_id = made[0].1.id.clone();
    let eip_id = made[2].1.id.clone();
    let nat = resolved(
        NatGateway::new("nat").into_spec(),
        &[
            ("subnet_id", Value::from(subnet_id)),
            ("allocation_id", Value::from(eip_id)),
        ],
    );
    let a = p.create(&ctx(1), &nat).await.unwrap();
    let b = p.create(&ctx(2), &nat).await.unwrap();
    assert_eq!(a.id, b.id);
    made.push((nat.address.clone(), a));

    // One object per address, as the read sees it.
    let read = p.read(&stack).await.unwrap();
    let mut addresses: Vec<String> = read
        .resources
        .iter()
        .map(|o| o.address.to_string())
        .collect();
    addresses.sort();
    let n = addresses.len();
    addresses.dedup();
    assert_eq!(n, addresses.len(), "{addresses:?}");
    assert_eq!(n, made.len() + 1);

    // Clean up, in dependency order; a second delete is "not found", never a failure.
    let del = |o: infra_core::provider::Observed| {
        let ctx = ctx(1);
        async move { p.delete(&ctx, &o).await }
    };
    for (address, o) in made.into_iter().rev() {
        del(o.clone())
            .await
            .unwrap_or_else(|e| panic!("{address}: {e}"));
        if let Err(e) = del(o).await {
            assert_eq!(e.class, ErrorClass::NotFound, "{address}: {e}");
        }
    }
    p.delete(&ctx(1), &first).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn aws_errors_keep_their_code_and_are_classified() {
    let Some(m) = moto("aws_errors_keep_their_code_and_are_classified").await else {
        return;
    };
    let p = m.provider.as_ref();
    let stack = unique("err");
    let ctx = OpContext {
        stack: stack.clone(),
        idempotency_token: "t".into(),
        attempt: 1,
    };
    let vpc = p
        .create(
            &ctx,
            &resolved(Vpc::new("main").cidr("10.91.0.0/16").into_spec(), &[]),
        )
        .await
        .unwrap();
    // A subnet outside its VPC's range: fatal, with AWS's code and the operation.
    let bad = resolved(
        Subnet::new("a")
            .cidr("10.92.1.0/24")
            .az("us-east-1a")
            .into_spec(),
        &[("vpc_id", Value::from(vpc.id.as_str()))],
    );
    let e = p.create(&ctx, &bad).await.unwrap_err();
    assert_eq!(e.class, ErrorClass::Fatal, "{e}");
    assert!(e.code.starts_with("InvalidSubnet"), "{e}");
    assert!(e.message.contains("CreateSubnet"), "{e}");
    p.delete(&ctx, &vpc).await.unwrap();
    let e = p.delete(&ctx, &vpc).await.unwrap_err();
    assert_eq!(e.class, ErrorClass::NotFound, "{e}");
    assert_eq!(e.code, "InvalidVpcID.NotFound");
}
