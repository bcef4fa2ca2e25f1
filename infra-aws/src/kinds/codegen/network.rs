//! Code generators of the network kinds.

use infra_core::import::{rust_str, Discovered, Generated, ImportNames};
use infra_core::Value;

use super::{strings, Chain};

/// `Vpc::new(..).cidr(..)`; DNS hostnames off is written (the builder turns both DNS
/// attributes on).
pub(crate) fn vpc(o: &Discovered, name: &str, names: &ImportNames) -> Generated {
    let mut c = Chain::named(o, names, "infra::aws::Vpc", name);
    c.str_unless("cidr", "cidr_block", None);
    for (method, field) in [
        ("dns_support", "enable_dns_support"),
        ("dns_hostnames", "enable_dns_hostnames"),
    ] {
        if c.get(field).and_then(Value::as_bool) == Some(false) {
            c.call(method, "false");
        }
    }
    c.tags().done()
}

/// `Subnet::new(..).vpc(&vpc).cidr(..).az(..)`.
pub(crate) fn subnet(o: &Discovered, name: &str, names: &ImportNames) -> Generated {
    let mut c = Chain::named(o, names, "infra::aws::Subnet", name);
    c.reference_to("vpc", "aws_vpc", "VPC", "vpc_id")
        .str_unless("cidr", "cidr_block", None)
        .str_unless("az", "availability_zone", None);
    if c.get("map_public_ip_on_launch").and_then(Value::as_bool) == Some(true) {
        c.call("public", "true");
    }
    c.tags().done()
}

/// `InternetGateway::new(..).vpc(&vpc)`.
pub(crate) fn internet_gateway(o: &Discovered, name: &str, names: &ImportNames) -> Generated {
    let mut c = Chain::named(o, names, "infra::aws::InternetGateway", name);
    c.reference_to("vpc", "aws_vpc", "VPC", "vpc_id")
        .tags()
        .done()
}

/// `ElasticIp::new(..)`.
pub(crate) fn elastic_ip(o: &Discovered, name: &str, names: &ImportNames) -> Generated {
    let mut c = Chain::named(o, names, "infra::aws::ElasticIp", name);
    if c.str("domain").is_some_and(|d| d != "vpc") {
        c.comment("an EC2-Classic address: infra declares VPC addresses only");
    }
    c.tags().done()
}

/// `NatGateway::new(..).subnet(&subnet).eip(&eip)`.
pub(crate) fn nat_gateway(o: &Discovered, name: &str, names: &ImportNames) -> Generated {
    let mut c = Chain::named(o, names, "infra::aws::NatGateway", name);
    c.reference_to("subnet", "aws_subnet", "subnet", "subnet_id")
        .reference_to("eip", "aws_eip", "Elastic IP", "allocation_id");
    if c.str("connectivity_type").is_some_and(|t| t != "public") {
        c.comment("a private NAT gateway: infra declares public ones (with an Elastic IP)");
    }
    c.tags().done()
}

/// `RouteTable::new(..).vpc(&vpc)` with its routes to gateways and its subnet associations.
pub(crate) fn route_table(o: &Discovered, name: &str, names: &ImportNames) -> Generated {
    let mut c = Chain::named(o, names, "infra::aws::RouteTable", name);
    c.reference_to("vpc", "aws_vpc", "VPC", "vpc_id");
    for route in c.get("routes").and_then(Value::as_list).unwrap_or(&[]) {
        let Some(m) = route.as_map() else { continue };
        let Some(dest) = m.get("destination").and_then(Value::as_str) else {
            continue;
        };
        let (target, kind, what, to_default, to_any) = if let Some(t) = m.get("gateway_id") {
            (
                t,
                "aws_internet_gateway",
                "internet gateway",
                "default_route_to_internet",
                "route_to_internet_gateway",
            )
        } else if let Some(t) = m.get("nat_gateway_id") {
            (
                t,
                "aws_nat_gateway",
                "NAT gateway",
                "default_route_to_nat",
                "route_to_nat_gateway",
            )
        } else {
            continue;
        };
        let Some(target) = target.as_str() else {
            continue;
        };
        let method = if dest == "0.0.0.0/0" {
            to_default
        } else {
            to_any
        };
        if let Some(r) = c.reference(method, kind, what, target) {
            if dest == "0.0.0.0/0" {
                c.call(method, &r);
            } else {
                let args = format!("{}, {r}", rust_str(dest));
                c.call(method, &args);
            }
        }
    }
    for subnet in strings(c.get("subnet_ids")) {
        if let Some(r) = c.reference("associate", "aws_subnet", "subnet", &subnet) {
            c.call("associate", &r);
        }
    }
    c.tags().done()
}

/// `Rule::…` for one rule of a group, or `None` (with a comment) when it can't be written.
fn rule(c: &mut Chain<'_>, direction: &str, r: &Value) -> Option<String> {
    let m = r.as_map()?;
    let protocol = m.get("protocol").and_then(Value::as_str).unwrap_or("-1");
    let from = m.get("from_port").and_then(Value::as_i64).unwrap_or(0);
    let to = m.get("to_port").and_then(Value::as_i64).unwrap_or(0);
    let mut expr = match (protocol, from, to) {
        ("-1", _, _) => "infra::aws::Rule::all()".to_string(),
        ("tcp" | "udp", f, t) if f == t => format!("infra::aws::Rule::{protocol}({f})"),
        ("tcp" | "udp", f, t) => format!("infra::aws::Rule::{protocol}_range({f}, {t})"),
        ("icmp", f, t) => format!("infra::aws::Rule::icmp({f}, {t})"),
        (p, f, t) => format!("infra::aws::Rule::raw({}, {f}, {t})", rust_str(p)),
    };
    if let Some(cidr) = m.get("cidr").and_then(Value::as_str) {
        expr.push_str(&format!(".cidr({})", rust_str(cidr)));
    } else if m.get("self").and_then(Value::as_bool) == Some(true) {
        expr.push_str(".from_self()");
    } else if let Some(group) = m.get("group_id").and_then(Value::as_str) {
        let r = c.reference(direction, "aws_security_group", "security group", group)?;
        expr.push_str(&format!(".group({r})"));
    } else {
        // A prefix list: the discovery's notes say so.
        return None;
    }
    if let Some(d) = m.get("description").and_then(Value::as_str) {
        expr.push_str(&format!(".describe({})", rust_str(d)));
    }
    Some(expr)
}

/// `SecurityGroup::new(..).vpc(&vpc).description(..)` with its rules; a rule from another group
/// is `.group(&sg)` (cross-group rules need both groups imported: the group is written after
/// the groups it refers to when discovery handed them over first, else the rule is a comment).
pub(crate) fn security_group(o: &Discovered, name: &str, names: &ImportNames) -> Generated {
    let mut c = Chain::named(o, names, "infra::aws::SecurityGroup", name);
    c.reference_to("vpc", "aws_vpc", "VPC", "vpc_id")
        .str_unless("description", "description", Some("Managed by infra"));
    for direction in ["ingress", "egress"] {
        let rules: Vec<Value> = c
            .get(direction)
            .and_then(Value::as_list)
            .map(<[Value]>::to_vec)
            .unwrap_or_default();
        for r in &rules {
            let Some(expr) = rule(&mut c, direction, r) else {
                continue;
            };
            if direction == "egress" && expr == "infra::aws::Rule::all().cidr(\"0.0.0.0/0\")" {
                c.call("egress_all", "");
            } else {
                c.call(direction, &expr);
            }
        }
    }
    c.tags().done()
}
