//! Network kinds: VPC, subnet, security group.

use std::collections::BTreeMap;

use infra_core::dsl::{KindSchema, Ref, ResourceSpec};
use infra_core::validate::{check_cidr, overlaps, within, Checker, Problem, ValidationContext};
use infra_core::{kind, Value};

pub(crate) static VPC: KindSchema = KindSchema::new("aws_vpc", "aws")
    .force_new(&["cidr_block"])
    .computed(&["id", "arn"])
    .validate(validate_vpc);

kind! {
    /// A VPC. `Vpc::new("main").cidr("10.0.0.0/16")`; DNS support and hostnames are on by default.
    pub struct Vpc => VPC
}

impl Vpc {
    /// A VPC named `name` (its `Name` tag is `<stack>-<name>`).
    pub fn new(name: &str) -> Self {
        let mut s = ResourceSpec::new(&VPC, name);
        s.set("enable_dns_support", true)
            .set("enable_dns_hostnames", true);
        Vpc(s)
    }
    /// The IPv4 CIDR block, /16 to /28. Changing it replaces the VPC.
    pub fn cidr(mut self, cidr: &str) -> Self {
        self.0.set("cidr_block", cidr);
        self
    }
    /// DNS resolution in the VPC (default on).
    pub fn dns_support(mut self, on: bool) -> Self {
        self.0.set("enable_dns_support", on);
        self
    }
    /// DNS hostnames for instances (default on).
    pub fn dns_hostnames(mut self, on: bool) -> Self {
        self.0.set("enable_dns_hostnames", on);
        self
    }
    /// A user tag.
    pub fn tag(mut self, key: &str, value: &str) -> Self {
        self.0.insert("tags", key, value);
        self
    }
}

fn check_ipv4_block(c: &mut Checker<'_>, field: &str, cidr: &str) -> Option<ipnet::IpNet> {
    let net = c.cidr(field, cidr)?;
    if !matches!(net, ipnet::IpNet::V4(_)) {
        c.problem(field, format!("`{cidr}` is not an IPv4 block"));
        return None;
    }
    if !(16..=28).contains(&net.prefix_len()) {
        c.problem(
            field,
            format!(
                "`{cidr}`: AWS allows prefixes from /16 to /28, got /{}",
                net.prefix_len()
            ),
        );
        return None;
    }
    Some(net)
}

fn validate_vpc(spec: &ResourceSpec, _: &ValidationContext<'_>) -> Vec<Problem> {
    let mut c = Checker::new(spec);
    if let Some(cidr) = c.required_str("cidr_block") {
        check_ipv4_block(&mut c, "cidr_block", cidr);
    }
    c.finish()
}

pub(crate) static SUBNET: KindSchema = KindSchema::new("aws_subnet", "aws")
    .force_new(&["vpc_id", "cidr_block", "availability_zone"])
    .computed(&["id", "arn"])
    .validate(validate_subnet);

kind! {
    /// A subnet of a VPC in one availability zone.
    pub struct Subnet => SUBNET
}

impl Subnet {
    /// A subnet named `name`.
    pub fn new(name: &str) -> Self {
        let mut s = ResourceSpec::new(&SUBNET, name);
        s.set("map_public_ip_on_launch", false);
        Subnet(s)
    }
    /// The VPC it belongs to.
    pub fn vpc(mut self, vpc: &Ref<Vpc>) -> Self {
        self.0.set("vpc_id", vpc.id());
        self
    }
    /// The IPv4 CIDR block; must lie within the VPC's and not overlap its siblings.
    pub fn cidr(mut self, cidr: &str) -> Self {
        self.0.set("cidr_block", cidr);
        self
    }
    /// The availability zone (`us-east-1a`).
    pub fn az(mut self, az: &str) -> Self {
        self.0.set("availability_zone", az);
        self
    }
    /// Give instances launched here a public IP (public subnets).
    pub fn public(mut self, on: bool) -> Self {
        self.0.set("map_public_ip_on_launch", on);
        self
    }
    /// A user tag.
    pub fn tag(mut self, key: &str, value: &str) -> Self {
        self.0.insert("tags", key, value);
        self
    }
}

/// True for a well-formed availability zone name (`us-east-1a`, `eu-central-1b`, `us-gov-west-1a`).
pub fn is_az_name(az: &str) -> bool {
    let Some((region, zone)) = az.len().checked_sub(1).map(|i| az.split_at(i)) else {
        return false;
    };
    let parts: Vec<&str> = region.split('-').collect();
    zone.chars().all(|c| c.is_ascii_lowercase())
        && parts.len() >= 3
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].chars().all(|c| c.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty()
}

fn validate_subnet(spec: &ResourceSpec, ctx: &ValidationContext<'_>) -> Vec<Problem> {
    let mut c = Checker::new(spec);
    c.required_ref("vpc_id", "vpc");
    if let Some(az) = c.required_str("availability_zone") {
        if !is_az_name(az) {
            c.problem(
                "availability_zone",
                format!("`{az}` is not an availability zone name (e.g. us-east-1a)"),
            );
        }
    }
    let Some(cidr) = c.required_str("cidr_block") else {
        return c.finish();
    };
    let Some(net) = check_ipv4_block(&mut c, "cidr_block", cidr) else {
        return c.finish();
    };
    let vpc = ctx.referenced(spec, "vpc_id");
    if let Some(vpc_net) = vpc
        .and_then(|v| v.get_str("cidr_block"))
        .and_then(|s| check_cidr(s).ok())
    {
        if !within(&net, &vpc_net) {
            let vpc = vpc.map(|v| v.address.to_string()).unwrap_or_default();
            c.problem(
                "cidr_block",
                format!("`{cidr}` is outside the VPC {vpc} ({vpc_net})"),
            );
        }
    }
    // Overlaps with earlier-declared siblings in the same VPC (each pair reported once).
    let my_vpc = spec.get("vpc_id");
    for other in ctx.of_kind(SUBNET.kind) {
        if std::ptr::eq(*other, spec) {
            break;
        }
        if other.address == spec.address || other.get("vpc_id") != my_vpc {
            continue;
        }
        if let Some(o) = other.get_str("cidr_block").and_then(|s| check_cidr(s).ok()) {
            if overlaps(&net, &o) {
                c.problem(
                    "cidr_block",
                    format!("`{cidr}` overlaps {} ({o}) in the same VPC", other.address),
                );
            }
        }
    }
    c.finish()
}

pub(crate) static SECURITY_GROUP: KindSchema = KindSchema::new("aws_security_group", "aws")
    .force_new(&["vpc_id", "description"])
    .computed(&["id", "arn"])
    .unordered(&["ingress", "egress"])
    .validate(validate_security_group);

kind! {
    /// A security group with its ingress and egress rules, diffed rule by rule: changing one
    /// rule never revokes the others.
    pub struct SecurityGroup => SECURITY_GROUP
}

impl SecurityGroup {
    /// A security group named `name` (its group name is `<stack>-<name>`). It starts with no
    /// rules at all: AWS's default allow-all egress is removed unless you declare it.
    pub fn new(name: &str) -> Self {
        let mut s = ResourceSpec::new(&SECURITY_GROUP, name);
        s.set("description", "Managed by infra");
        s.set("ingress", Value::List(Vec::new()))
            .set("egress", Value::List(Vec::new()));
        SecurityGroup(s)
    }
    /// The VPC it belongs to.
    pub fn vpc(mut self, vpc: &Ref<Vpc>) -> Self {
        self.0.set("vpc_id", vpc.id());
        self
    }
    /// The description (immutable in AWS: changing it replaces the group).
    pub fn description(mut self, text: &str) -> Self {
        self.0.set("description", text);
        self
    }
    /// An inbound rule.
    pub fn ingress(mut self, rule: Rule) -> Self {
        self.0.push("ingress", rule.into_value());
        self
    }
    /// An outbound rule.
    pub fn egress(mut self, rule: Rule) -> Self {
        self.0.push("egress", rule.into_value());
        self
    }
    /// Outbound to anywhere on every protocol (what AWS gives a new group by default).
    pub fn egress_all(self) -> Self {
        self.egress(Rule::all().cidr("0.0.0.0/0"))
    }
    /// A user tag.
    pub fn tag(mut self, key: &str, value: &str) -> Self {
        self.0.insert("tags", key, value);
        self
    }
}

/// One security group rule: a protocol and port range, and exactly one source (or destination):
/// a CIDR block, another group, or the group itself.
#[derive(Clone, Debug)]
pub struct Rule {
    fields: BTreeMap<String, Value>,
}

impl Rule {
    fn new(protocol: &str, from: i64, to: i64) -> Self {
        let mut fields = BTreeMap::new();
        fields.insert("protocol".to_string(), Value::from(protocol));
        fields.insert("from_port".to_string(), Value::Int(from));
        fields.insert("to_port".to_string(), Value::Int(to));
        Rule { fields }
    }
    /// TCP on one port.
    pub fn tcp(port: u16) -> Self {
        Rule::new("tcp", port.into(), port.into())
    }
    /// TCP on a port range.
    pub fn tcp_range(from: u16, to: u16) -> Self {
        Rule::new("tcp", from.into(), to.into())
    }
    /// UDP on one port.
    pub fn udp(port: u16) -> Self {
        Rule::new("udp", port.into(), port.into())
    }
    /// UDP on a port range.
    pub fn udp_range(from: u16, to: u16) -> Self {
        Rule::new("udp", from.into(), to.into())
    }
    /// Every protocol and port.
    pub fn all() -> Self {
        Rule::new("-1", 0, 0)
    }
    /// A rule from raw parts (`protocol` is `tcp`, `udp`, `icmp` or `-1`); validated like the rest.
    pub fn raw(protocol: &str, from: i64, to: i64) -> Self {
        Rule::new(protocol, from, to)
    }
    /// Source/destination: a CIDR block.
    pub fn cidr(mut self, cidr: &str) -> Self {
        self.fields.insert("cidr".into(), Value::from(cidr));
        self
    }
    /// Source/destination: another security group.
    pub fn group(mut self, group: &Ref<SecurityGroup>) -> Self {
        self.fields.insert("group_id".into(), group.id().into());
        self
    }
    /// Source/destination: members of this same group.
    pub fn from_self(mut self) -> Self {
        self.fields.insert("self".into(), Value::Bool(true));
        self
    }
    /// A description.
    pub fn describe(mut self, text: &str) -> Self {
        self.fields.insert("description".into(), Value::from(text));
        self
    }
    fn into_value(self) -> Value {
        Value::Map(self.fields)
    }
}

fn validate_security_group(spec: &ResourceSpec, _: &ValidationContext<'_>) -> Vec<Problem> {
    let mut c = Checker::new(spec);
    c.required_ref("vpc_id", "vpc");
    if let Some(d) = c.required_str("description") {
        if d.len() > 255 {
            c.problem(
                "description",
                format!("is {} characters long; AWS allows 255", d.len()),
            );
        }
    }
    for field in ["ingress", "egress"] {
        let rules = spec.get(field).and_then(Value::as_list).unwrap_or(&[]);
        for (i, rule) in rules.iter().enumerate() {
            let at = format!("{field}[{i}]");
            let Some(r) = rule.as_map() else {
                c.problem(&at, "must be a rule");
                continue;
            };
            let protocol = r.get("protocol").and_then(Value::as_str).unwrap_or("");
            let from = r.get("from_port").and_then(Value::as_i64).unwrap_or(-1);
            let to = r.get("to_port").and_then(Value::as_i64).unwrap_or(-1);
            match protocol {
                "tcp" | "udp" => {
                    c.port_range(&at, from, to);
                }
                "icmp" | "-1" => {}
                other => c.problem(
                    &at,
                    format!("protocol `{other}` is not one of tcp, udp, icmp, -1"),
                ),
            }
            let sources = ["cidr", "group_id", "self"]
                .iter()
                .filter(|k| r.contains_key(**k))
                .count();
            if sources != 1 {
                c.problem(
                    &at,
                    format!("needs exactly one of cidr, group or self; has {sources}"),
                );
            }
            if let Some(cidr) = r.get("cidr").and_then(Value::as_str) {
                c.cidr(&at, cidr);
            }
        }
    }
    c.finish()
}
