//! Network kinds on moto: VPC, subnet, internet gateway, Elastic IP, NAT gateway and route
//! tables through create → no-op → drift repaired → in-place update → replacement → deletion →
//! destroy.

use aws_sdk_ec2::types::{AttributeBooleanValue, Tag};
use infra_aws::*;
use infra_core::dsl::Stack;
use infra_core::plan::Action;
use infra_core::Value;

use crate::support::{
    action, apply, assert_noop, destroy, fields, id_of, moto, observed, plan, unique,
};

fn vpc_stack(name: &str, b_public: bool, b_az: &str, env: &str, with_b: bool) -> Stack {
    let mut s = Stack::new(name);
    let vpc = s.add(Vpc::new("main").cidr("10.30.0.0/16").tag("env", env));
    s.add(
        Subnet::new("a")
            .vpc(&vpc)
            .cidr("10.30.1.0/24")
            .az("us-east-1a")
            .public(true),
    );
    if with_b {
        s.add(
            Subnet::new("b")
                .vpc(&vpc)
                .cidr("10.30.2.0/24")
                .az(b_az)
                .public(b_public),
        );
    }
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn vpc_and_subnet_lifecycle() {
    let Some(m) = moto("vpc_and_subnet_lifecycle").await else {
        return;
    };
    let engine = m.engine();
    let name = unique("net");
    let stack = vpc_stack(&name, false, "us-east-1b", "dev", true);
    apply(&engine, &stack).await;
    assert_noop(&engine, &stack, "after create").await;

    // Drift made with the SDK directly shows in the plan; apply repairs it.
    let vpc_id = id_of(&m, &name, "aws_vpc.main").await;
    let a_id = id_of(&m, &name, "aws_subnet.a").await;
    m.ec2
        .modify_vpc_attribute()
        .vpc_id(&vpc_id)
        .enable_dns_hostnames(AttributeBooleanValue::builder().value(false).build())
        .send()
        .await
        .unwrap();
    m.ec2
        .delete_tags()
        .resources(&vpc_id)
        .tags(Tag::builder().key("env").build())
        .send()
        .await
        .unwrap();
    m.ec2
        .modify_subnet_attribute()
        .subnet_id(&a_id)
        .map_public_ip_on_launch(AttributeBooleanValue::builder().value(false).build())
        .send()
        .await
        .unwrap();
    let p = plan(&engine, &stack).await;
    assert_eq!(action(&p, "aws_vpc.main"), Action::Update);
    let mut f = fields(&p, "aws_vpc.main");
    f.sort();
    assert_eq!(f, ["enable_dns_hostnames", "tags"]);
    assert_eq!(action(&p, "aws_subnet.a"), Action::Update);
    assert_eq!(fields(&p, "aws_subnet.a"), ["map_public_ip_on_launch"]);
    assert_eq!(action(&p, "aws_subnet.b"), Action::NoOp);
    apply(&engine, &stack).await;
    assert_noop(&engine, &stack, "after repairing drift").await;
    assert_eq!(
        id_of(&m, &name, "aws_vpc.main").await,
        vpc_id,
        "repaired in place"
    );

    // In-place update.
    let stack = vpc_stack(&name, true, "us-east-1b", "prod", true);
    let p = plan(&engine, &stack).await;
    assert!(
        p.plan.actionable().all(|c| c.action == Action::Update),
        "{:?}",
        p.plan.summary
    );
    assert_eq!(p.plan.summary.change, 2);
    apply(&engine, &stack).await;
    assert_noop(&engine, &stack, "after update").await;
    let vpc = observed(&m, &name, "aws_vpc.main").await;
    assert_eq!(vpc.props["tags"], infra_core::map! { "env" => "prod" });

    // Replacement: the availability zone is force-new.
    let b_before = id_of(&m, &name, "aws_subnet.b").await;
    let stack = vpc_stack(&name, true, "us-east-1c", "prod", true);
    let p = plan(&engine, &stack).await;
    assert!(action(&p, "aws_subnet.b").is_replace());
    apply(&engine, &stack).await;
    assert_noop(&engine, &stack, "after replace").await;
    let b_after = observed(&m, &name, "aws_subnet.b").await;
    assert_ne!(b_after.id, b_before);
    assert_eq!(
        b_after.props["availability_zone"],
        Value::from("us-east-1c")
    );

    // Deletion of a removed resource.
    let stack = vpc_stack(&name, true, "us-east-1c", "prod", false);
    let p = plan(&engine, &stack).await;
    assert_eq!(action(&p, "aws_subnet.b"), Action::Delete);
    assert_eq!(p.plan.actionable().count(), 1);
    apply(&engine, &stack).await;
    assert_noop(&engine, &stack, "after removal").await;
    let gone = m
        .ec2
        .describe_subnets()
        .subnet_ids(&b_after.id)
        .send()
        .await;
    assert!(
        gone.map(|o| o.subnets().is_empty()).unwrap_or(true),
        "the removed subnet still exists"
    );

    destroy(&m, &engine, &stack).await;
}

struct NetShape {
    nat_subnet: &'static str,
    extra_route: bool,
    with_nat: bool,
}

fn gateway_stack(name: &str, shape: &NetShape) -> Stack {
    let mut s = Stack::new(name);
    let vpc = s.add(Vpc::new("main").cidr("10.40.0.0/16"));
    let pub_a = s.add(
        Subnet::new("public-a")
            .vpc(&vpc)
            .cidr("10.40.1.0/24")
            .az("us-east-1a")
            .public(true),
    );
    let pub_b = s.add(
        Subnet::new("public-b")
            .vpc(&vpc)
            .cidr("10.40.2.0/24")
            .az("us-east-1b")
            .public(true),
    );
    let priv_a = s.add(
        Subnet::new("private-a")
            .vpc(&vpc)
            .cidr("10.40.11.0/24")
            .az("us-east-1a"),
    );
    let igw = s.add(InternetGateway::new("main").vpc(&vpc));
    let mut public = RouteTable::new("public")
        .vpc(&vpc)
        .default_route_to_internet(&igw)
        .associate(&pub_a)
        .associate(&pub_b);
    if shape.extra_route {
        public = public.route_to_internet_gateway("10.99.0.0/16", &igw);
    }
    s.add(public);
    let mut private = RouteTable::new("private").vpc(&vpc).associate(&priv_a);
    if shape.with_nat {
        let subnet = if shape.nat_subnet == "a" {
            &pub_a
        } else {
            &pub_b
        };
        let nat = nat_gateway_with_eip(&mut s, "nat", subnet);
        private = private.default_route_to_nat(&nat);
    }
    s.add(private);
    s
}

fn route_target(o: &infra_core::provider::Observed, dest: &str) -> Option<(String, String)> {
    o.props["routes"].as_list()?.iter().find_map(|r| {
        let m = r.as_map()?;
        if m.get("destination")?.as_str()? != dest {
            return None;
        }
        m.iter()
            .find(|(k, _)| k.ends_with("_id"))
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn gateways_nat_and_route_tables_lifecycle() {
    let Some(m) = moto("gateways_nat_and_route_tables_lifecycle").await else {
        return;
    };
    let engine = m.engine();
    let name = unique("gw");
    let mut shape = NetShape {
        nat_subnet: "a",
        extra_route: false,
        with_nat: true,
    };
    let stack = gateway_stack(&name, &shape);
    apply(&engine, &stack).await;
    assert_noop(&engine, &stack, "after create").await;

    let public = observed(&m, &name, "aws_route_table.public").await;
    let private = observed(&m, &name, "aws_route_table.private").await;
    let nat = observed(&m, &name, "aws_nat_gateway.nat").await;
    let igw = observed(&m, &name, "aws_internet_gateway.main").await;
    assert_eq!(
        igw.props["vpc_id"],
        Value::from(id_of(&m, &name, "aws_vpc.main").await)
    );
    assert_eq!(
        route_target(&private, "0.0.0.0/0"),
        Some(("nat_gateway_id".into(), nat.id.clone()))
    );
    assert_eq!(
        nat.props["allocation_id"],
        Value::from(id_of(&m, &name, "aws_eip.nat-eip").await)
    );

    // Drift: a route deleted and an association removed by hand are repaired, item by item.
    m.ec2
        .delete_route()
        .route_table_id(&private.id)
        .destination_cidr_block("0.0.0.0/0")
        .send()
        .await
        .unwrap();
    let tables = m
        .ec2
        .describe_route_tables()
        .route_table_ids(&public.id)
        .send()
        .await
        .unwrap();
    let pub_b = id_of(&m, &name, "aws_subnet.public-b").await;
    let assoc = tables.route_tables()[0]
        .associations()
        .iter()
        .find(|a| a.subnet_id() == Some(pub_b.as_str()))
        .and_then(|a| a.route_table_association_id())
        .unwrap()
        .to_string();
    m.ec2
        .disassociate_route_table()
        .association_id(assoc)
        .send()
        .await
        .unwrap();
    let p = plan(&engine, &stack).await;
    assert_eq!(action(&p, "aws_route_table.private"), Action::Update);
    assert_eq!(fields(&p, "aws_route_table.private"), ["routes"]);
    assert_eq!(fields(&p, "aws_route_table.public"), ["subnet_ids"]);
    apply(&engine, &stack).await;
    assert_noop(&engine, &stack, "after repairing drift").await;

    // In-place update: one more route; the table and its default route stay.
    shape.extra_route = true;
    let stack = gateway_stack(&name, &shape);
    let p = plan(&engine, &stack).await;
    assert_eq!(p.plan.actionable().count(), 1);
    apply(&engine, &stack).await;
    assert_noop(&engine, &stack, "after update").await;
    let public2 = observed(&m, &name, "aws_route_table.public").await;
    assert_eq!(public2.id, public.id);
    assert_eq!(
        route_target(&public2, "10.99.0.0/16"),
        Some(("gateway_id".into(), igw.id.clone()))
    );
    assert_eq!(
        route_target(&public2, "0.0.0.0/0"),
        route_target(&public, "0.0.0.0/0")
    );

    // Replacement: the NAT gateway moves to the other public subnet (force-new); the private
    // table's route follows it in place.
    shape.nat_subnet = "b";
    let stack = gateway_stack(&name, &shape);
    let p = plan(&engine, &stack).await;
    assert!(action(&p, "aws_nat_gateway.nat").is_replace());
    assert_eq!(action(&p, "aws_route_table.private"), Action::Update);
    apply(&engine, &stack).await;
    assert_noop(&engine, &stack, "after replacing the NAT gateway").await;
    let nat2 = observed(&m, &name, "aws_nat_gateway.nat").await;
    assert_ne!(nat2.id, nat.id);
    let private2 = observed(&m, &name, "aws_route_table.private").await;
    assert_eq!(private2.id, private.id);
    assert_eq!(
        route_target(&private2, "0.0.0.0/0"),
        Some(("nat_gateway_id".into(), nat2.id.clone()))
    );

    // Deletion: the NAT gateway and its Elastic IP go (the delete waits for the gateway).
    shape.with_nat = false;
    let stack = gateway_stack(&name, &shape);
    let p = plan(&engine, &stack).await;
    assert_eq!(action(&p, "aws_nat_gateway.nat"), Action::Delete);
    assert_eq!(action(&p, "aws_eip.nat-eip"), Action::Delete);
    apply(&engine, &stack).await;
    assert_noop(&engine, &stack, "after removing the NAT gateway").await;
    let addrs = m.ec2.describe_addresses().send().await.unwrap();
    let eip = nat2.props["allocation_id"].as_str().unwrap().to_string();
    assert!(
        !addrs
            .addresses()
            .iter()
            .any(|a| a.allocation_id() == Some(eip.as_str())),
        "the Elastic IP was not released"
    );

    destroy(&m, &engine, &stack).await;
}

/// A VPC, a security group and a public subnet named `subnet` (`public`: its public IPs on
/// launch), the group named `sg`.
fn rename_stack(name: &str, subnet: &str, public: bool, sg: &str) -> Stack {
    let mut s = Stack::new(name);
    let vpc = s.add(Vpc::new("main").cidr("10.31.0.0/16"));
    s.add(
        Subnet::new(subnet)
            .vpc(&vpc)
            .cidr("10.31.1.0/24")
            .az("us-east-1a")
            .public(public),
    );
    s.add(SecurityGroup::new(sg).vpc(&vpc).egress_all());
    s
}

/// The tags of a subnet, read with the SDK.
async fn subnet_tags(
    m: &crate::support::Moto,
    id: &str,
) -> std::collections::BTreeMap<String, String> {
    let out = m
        .ec2
        .describe_subnets()
        .subnet_ids(id)
        .send()
        .await
        .unwrap();
    out.subnets()[0]
        .tags()
        .iter()
        .map(|t| {
            (
                t.key().unwrap_or("").to_string(),
                t.value().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_renamed_subnet_keeps_its_id() {
    use infra_core::dsl::Ref;
    use infra_core::reconcile::{NoObserver, OpKind};
    let Some(m) = moto("a_renamed_subnet_keeps_its_id").await else {
        return;
    };
    let engine = m.engine();
    let name = unique("mv");
    apply(&engine, &rename_stack(&name, "a", true, "web")).await;
    let id = id_of(&m, &name, "aws_subnet.a").await;

    // Renamed in code without a move: destroy + create, and a hint naming the move.
    let renamed = rename_stack(&name, "public-a", true, "web");
    let p = plan(&engine, &renamed).await;
    assert_eq!(action(&p, "aws_subnet.a"), Action::Delete);
    assert_eq!(action(&p, "aws_subnet.public-a"), Action::Create);
    assert_eq!(p.plan.hints.len(), 1, "{:?}", p.plan.hints);
    assert!(
        p.plan.hints[0].starts_with(&format!(
            "aws_subnet.a is destroyed and aws_subnet.public-a created with identical inputs: \
             if it was renamed, declare the move to keep its object ({id})"
        )),
        "{}",
        p.plan.hints[0]
    );

    // With the move: the object is re-owned, its tags rewritten in one call, its id kept.
    let mut moved = renamed.clone();
    moved.moved(Ref::<Subnet>::named("a"), &Ref::named("public-a"));
    let p = plan(&engine, &moved).await;
    assert_eq!(action(&p, "aws_subnet.public-a"), Action::Move);
    assert!(p.plan.change("aws_subnet.a").is_none());
    assert!(p.plan.hints.is_empty());
    let s = p.plan.summary;
    assert_eq!((s.add, s.change, s.destroy, s.moved), (0, 0, 0, 1));
    let report = engine.apply(&p, &NoObserver).await.unwrap();
    assert!(
        report.is_success(),
        "{}",
        infra_core::render::report_text(&report)
    );
    let ops: Vec<(String, OpKind)> = report
        .outcomes
        .iter()
        .map(|o| (o.address.clone(), o.op))
        .collect();
    assert_eq!(ops, [("aws_subnet.public-a".to_string(), OpKind::Move)]);
    assert_eq!(id_of(&m, &name, "aws_subnet.public-a").await, id);
    let tags = subnet_tags(&m, &id).await;
    assert_eq!(tags["infra:id"], "aws_subnet.public-a");
    assert_eq!(tags["Name"], format!("{name}-public-a"));
    assert_eq!(tags["infra:stack"], name);
    assert_noop(&engine, &moved, "after the move (declaration kept)").await;

    // A move with a changed field: re-owned, then updated in place; the same subnet still.
    let mut again = rename_stack(&name, "pub-a", false, "web");
    again.moved(Ref::<Subnet>::named("a"), &Ref::named("public-a"));
    again.moved(Ref::<Subnet>::named("public-a"), &Ref::named("pub-a"));
    let p = plan(&engine, &again).await;
    assert_eq!(action(&p, "aws_subnet.pub-a"), Action::Update);
    let c = p.plan.change("aws_subnet.pub-a").unwrap();
    assert_eq!(
        c.moved_from.as_ref().map(|a| a.to_string()).as_deref(),
        Some("aws_subnet.public-a")
    );
    assert_eq!(fields(&p, "aws_subnet.pub-a"), ["map_public_ip_on_launch"]);
    let report = engine.apply(&p, &NoObserver).await.unwrap();
    assert!(
        report.is_success(),
        "{}",
        infra_core::render::report_text(&report)
    );
    assert_eq!(id_of(&m, &name, "aws_subnet.pub-a").await, id);
    let o = observed(&m, &name, "aws_subnet.pub-a").await;
    assert_eq!(o.props["map_public_ip_on_launch"], Value::Bool(false));
    assert_noop(&engine, &again, "after the move and update").await;

    // A security group is named after its address: a move replaces it, and the plan says why.
    let mut sg = rename_stack(&name, "pub-a", false, "frontend");
    sg.moved(Ref::<SecurityGroup>::named("web"), &Ref::named("frontend"));
    let p = plan(&engine, &sg).await;
    assert_eq!(
        action(&p, "aws_security_group.frontend"),
        Action::CreateThenDelete
    );
    let reason = &p.plan.change("aws_security_group.frontend").unwrap().reason;
    assert!(
        reason.contains(
            "moved from aws_security_group.web, but its AWS name is `<stack>-<name>`, from its \
             address, and AWS can't rename a security group"
        ),
        "{reason}"
    );
    apply(&engine, &sg).await;
    assert_noop(&engine, &sg, "after the security group's replacement").await;
    destroy(&m, &engine, &sg).await;
}
