//! Network kinds: VPC, subnet, internet gateway, Elastic IP, NAT gateway, route table and
//! security group.
//!
//! Sub-objects that AWS cannot tag (routes, route table associations, the internet gateway's
//! attachment, security group rules) are properties of their tagged parent and are changed item
//! by item: one changed rule or route never touches the others.

use std::collections::{BTreeMap, BTreeSet};

use infra_core::dsl::{KindSchema, Ref, ResourceSpec, Stack};
use infra_core::validate::{check_cidr, overlaps, within, Checker, Problem, ValidationContext};
use infra_core::{kind, Value};

use super::{check_physical_name, check_tags, printable_char};

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
    if spec.get("enable_dns_hostnames") == Some(&Value::Bool(true))
        && spec.get("enable_dns_support") == Some(&Value::Bool(false))
    {
        c.problem(
            "enable_dns_hostnames",
            "DNS hostnames need DNS support: AWS rejects enable_dns_hostnames without enable_dns_support",
        );
    }
    check_tags(&mut c, spec);
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

/// Availability zones of the stack that are not in `region`: `us-east-1a` in a stack deployed
/// with the region `eu-west-1`. The region is known only where the stack is deployed, so this is
/// the AWS provider's [preflight](infra_core::provider::Provider::preflight) check, made before
/// any API call: a zone of another region would otherwise fail halfway through an apply.
/// Malformed zone names are left to the subnet's own validation.
pub fn availability_zone_problems(stack: &Stack, region: &str) -> Vec<Problem> {
    stack
        .resources()
        .iter()
        .filter(|r| r.schema.kind == SUBNET.kind)
        .filter_map(|r| {
            let az = r.get_str("availability_zone")?;
            let in_region = az.strip_suffix(|c: char| c.is_ascii_lowercase()) == Some(region);
            (is_az_name(az) && !in_region).then(|| {
                Problem::new(
                    &r.address,
                    "availability_zone",
                    format!(
                        "`{az}` is not in `{region}`, the region this stack is deployed to \
                         (AWS_REGION or the profile's region): use a zone of {region} \
                         ({region}a, …) or deploy to the zone's region"
                    ),
                )
            })
        })
        .collect()
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
    check_tags(&mut c, spec);
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
        // The forms AWS reads back: protocol names instead of numbers, and ports 0-0 for "all
        // protocols" (AWS omits them).
        let protocol = match protocol.to_ascii_lowercase().as_str() {
            "6" => "tcp".to_string(),
            "17" => "udp".to_string(),
            "1" => "icmp".to_string(),
            "all" | "-1" => "-1".to_string(),
            other => other.to_string(),
        };
        let (from, to) = if protocol == "-1" { (0, 0) } else { (from, to) };
        let protocol = protocol.as_str();
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
    /// ICMP of one type and code (`-1` for any).
    pub fn icmp(icmp_type: i32, code: i32) -> Self {
        Rule::new("icmp", icmp_type.into(), code.into())
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

fn validate_security_group(spec: &ResourceSpec, ctx: &ValidationContext<'_>) -> Vec<Problem> {
    let mut c = Checker::new(spec);
    check_physical_name(&mut c, spec, ctx, "security group", 255, printable_char);
    if super::physical_name(ctx.stack().name(), spec.address.name()).starts_with("sg-") {
        c.problem("name", "security group names may not start with `sg-`");
    }
    check_tags(&mut c, spec);
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
                "icmp" => {
                    if !(-1..=255).contains(&from) || !(-1..=255).contains(&to) {
                        c.problem(&at, "ICMP type and code must be -1 (any) or 0-255");
                    }
                }
                "-1" => {}
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
            if let Some(d) = r.get("description").and_then(Value::as_str) {
                if d.len() > 255 {
                    c.problem(&at, "the description is longer than 255 characters");
                }
            }
        }
        // AWS keeps one rule per (protocol, ports, source): a duplicate would be reported as
        // a permanent difference, so it is a declaration mistake.
        let mut seen = BTreeSet::new();
        for (i, rule) in rules.iter().enumerate() {
            if let Some(r) = rule.as_map() {
                let mut key = r.clone();
                key.remove("description");
                if !seen.insert(Value::Map(key).to_json().to_string()) {
                    c.problem(
                        &format!("{field}[{i}]"),
                        "duplicates an earlier rule (same protocol, ports and source)",
                    );
                }
            }
        }
    }
    c.finish()
}

pub(crate) static INTERNET_GATEWAY: KindSchema = KindSchema::new("aws_internet_gateway", "aws")
    .computed(&["id", "arn"])
    .validate(validate_internet_gateway);

kind! {
    /// An internet gateway attached to a VPC. The attachment belongs to the gateway: moving it to
    /// another VPC detaches and re-attaches it in place.
    pub struct InternetGateway => INTERNET_GATEWAY
}

impl InternetGateway {
    /// An internet gateway named `name`.
    pub fn new(name: &str) -> Self {
        InternetGateway(ResourceSpec::new(&INTERNET_GATEWAY, name))
    }
    /// The VPC it is attached to.
    pub fn vpc(mut self, vpc: &Ref<Vpc>) -> Self {
        self.0.set("vpc_id", vpc.id());
        self
    }
    /// A user tag.
    pub fn tag(mut self, key: &str, value: &str) -> Self {
        self.0.insert("tags", key, value);
        self
    }
}

fn validate_internet_gateway(spec: &ResourceSpec, ctx: &ValidationContext<'_>) -> Vec<Problem> {
    let mut c = Checker::new(spec);
    c.required_ref("vpc_id", "vpc");
    check_tags(&mut c, spec);
    // AWS allows one internet gateway per VPC.
    let mine = spec.get("vpc_id");
    for other in ctx.of_kind(INTERNET_GATEWAY.kind) {
        if std::ptr::eq(*other, spec) {
            break;
        }
        if mine.is_some() && other.get("vpc_id") == mine {
            c.problem(
                "vpc_id",
                format!(
                    "{} is attached to the same VPC; a VPC has at most one internet gateway",
                    other.address
                ),
            );
        }
    }
    c.finish()
}

pub(crate) static ELASTIC_IP: KindSchema = KindSchema::new("aws_eip", "aws")
    .force_new(&["domain"])
    .computed(&["id", "public_ip"])
    .validate(validate_elastic_ip);

kind! {
    /// An Elastic IP address (VPC domain), e.g. for a NAT gateway. Its id is the allocation id.
    pub struct ElasticIp => ELASTIC_IP
}

impl ElasticIp {
    /// An Elastic IP named `name`.
    pub fn new(name: &str) -> Self {
        let mut s = ResourceSpec::new(&ELASTIC_IP, name);
        s.set("domain", "vpc");
        ElasticIp(s)
    }
    /// A user tag.
    pub fn tag(mut self, key: &str, value: &str) -> Self {
        self.0.insert("tags", key, value);
        self
    }
}

fn validate_elastic_ip(spec: &ResourceSpec, _: &ValidationContext<'_>) -> Vec<Problem> {
    let mut c = Checker::new(spec);
    if spec.get_str("domain") != Some("vpc") {
        c.problem("domain", "only `vpc` Elastic IPs are supported");
    }
    check_tags(&mut c, spec);
    c.finish()
}

pub(crate) static NAT_GATEWAY: KindSchema = KindSchema::new("aws_nat_gateway", "aws")
    .force_new(&["subnet_id", "allocation_id", "connectivity_type"])
    .computed(&["id"])
    .validate(validate_nat_gateway);

kind! {
    /// A NAT gateway in a public subnet with an Elastic IP. For high availability declare one per
    /// availability zone ([`nat_gateway_with_eip`] adds the pair). Creating one waits until it
    /// is available and deleting one waits until it is gone (bounded), as routes and the Elastic
    /// IP's release depend on it.
    pub struct NatGateway => NAT_GATEWAY
}

impl NatGateway {
    /// A public NAT gateway named `name`.
    pub fn new(name: &str) -> Self {
        let mut s = ResourceSpec::new(&NAT_GATEWAY, name);
        s.set("connectivity_type", "public");
        NatGateway(s)
    }
    /// The (public) subnet it lives in.
    pub fn subnet(mut self, subnet: &Ref<Subnet>) -> Self {
        self.0.set("subnet_id", subnet.id());
        self
    }
    /// Its Elastic IP.
    pub fn eip(mut self, eip: &Ref<ElasticIp>) -> Self {
        self.0.set("allocation_id", eip.id());
        self
    }
    /// A user tag.
    pub fn tag(mut self, key: &str, value: &str) -> Self {
        self.0.insert("tags", key, value);
        self
    }
}

/// Adds a NAT gateway named `name` in `subnet` together with its Elastic IP (named
/// `<name>-eip`), the usual pair; returns the gateway.
pub fn nat_gateway_with_eip(
    stack: &mut Stack,
    name: &str,
    subnet: &Ref<Subnet>,
) -> Ref<NatGateway> {
    let eip = stack.add(ElasticIp::new(&format!("{name}-eip")));
    stack.add(NatGateway::new(name).subnet(subnet).eip(&eip))
}

fn validate_nat_gateway(spec: &ResourceSpec, ctx: &ValidationContext<'_>) -> Vec<Problem> {
    let mut c = Checker::new(spec);
    c.required_ref("subnet_id", "subnet");
    match spec.get_str("connectivity_type") {
        Some("public") => {
            c.required_ref("allocation_id", "eip");
        }
        Some("private") => {}
        other => c.problem(
            "connectivity_type",
            format!("must be `public` or `private`, got {other:?}"),
        ),
    }
    if let Some(subnet) = ctx.referenced(spec, "subnet_id") {
        if subnet.get("map_public_ip_on_launch") == Some(&Value::Bool(false))
            && spec.get_str("connectivity_type") == Some("public")
        {
            c.problem(
                "subnet_id",
                format!(
                    "{} is not a public subnet (`.public(true)`); a public NAT gateway belongs in one",
                    subnet.address
                ),
            );
        }
    }
    // An Elastic IP can back one NAT gateway only.
    let mine = spec.get("allocation_id");
    for other in ctx.of_kind(NAT_GATEWAY.kind) {
        if std::ptr::eq(*other, spec) {
            break;
        }
        if mine.is_some() && other.get("allocation_id") == mine {
            c.problem(
                "allocation_id",
                format!("{} already uses this Elastic IP", other.address),
            );
        }
    }
    check_tags(&mut c, spec);
    c.finish()
}

pub(crate) static ROUTE_TABLE: KindSchema = KindSchema::new("aws_route_table", "aws")
    .force_new(&["vpc_id"])
    .computed(&["id"])
    .unordered(&["routes", "subnet_ids"])
    .validate(validate_route_table);

kind! {
    /// A route table with its routes and subnet associations. Routes and associations are
    /// changed one by one (a changed route is replaced in place; the others are not touched).
    /// The VPC's local route is implicit and never listed.
    pub struct RouteTable => ROUTE_TABLE
}

impl RouteTable {
    /// A route table named `name`.
    pub fn new(name: &str) -> Self {
        let mut s = ResourceSpec::new(&ROUTE_TABLE, name);
        s.set("routes", Value::List(Vec::new()))
            .set("subnet_ids", Value::List(Vec::new()));
        RouteTable(s)
    }
    /// The VPC.
    pub fn vpc(mut self, vpc: &Ref<Vpc>) -> Self {
        self.0.set("vpc_id", vpc.id());
        self
    }
    /// A route from `destination` (a CIDR block) to an internet gateway.
    pub fn route_to_internet_gateway(
        mut self,
        destination: &str,
        igw: &Ref<InternetGateway>,
    ) -> Self {
        let mut m = BTreeMap::new();
        m.insert("destination".to_string(), Value::from(destination));
        m.insert("gateway_id".to_string(), igw.id().into());
        self.0.push("routes", Value::Map(m));
        self
    }
    /// A route from `destination` (a CIDR block) to a NAT gateway.
    pub fn route_to_nat_gateway(mut self, destination: &str, nat: &Ref<NatGateway>) -> Self {
        let mut m = BTreeMap::new();
        m.insert("destination".to_string(), Value::from(destination));
        m.insert("nat_gateway_id".to_string(), nat.id().into());
        self.0.push("routes", Value::Map(m));
        self
    }
    /// The default route (`0.0.0.0/0`) to an internet gateway: a public route table.
    pub fn default_route_to_internet(self, igw: &Ref<InternetGateway>) -> Self {
        self.route_to_internet_gateway("0.0.0.0/0", igw)
    }
    /// The default route (`0.0.0.0/0`) to a NAT gateway: a private route table.
    pub fn default_route_to_nat(self, nat: &Ref<NatGateway>) -> Self {
        self.route_to_nat_gateway("0.0.0.0/0", nat)
    }
    /// Associates a subnet with this table.
    pub fn associate(mut self, subnet: &Ref<Subnet>) -> Self {
        self.0.push("subnet_ids", subnet.id());
        self
    }
    /// A user tag.
    pub fn tag(mut self, key: &str, value: &str) -> Self {
        self.0.insert("tags", key, value);
        self
    }
}

fn validate_route_table(spec: &ResourceSpec, ctx: &ValidationContext<'_>) -> Vec<Problem> {
    let mut c = Checker::new(spec);
    c.required_ref("vpc_id", "vpc");
    check_tags(&mut c, spec);
    let routes = spec.get("routes").and_then(Value::as_list).unwrap_or(&[]);
    let mut destinations = BTreeSet::new();
    for (i, route) in routes.iter().enumerate() {
        let at = format!("routes[{i}]");
        let Some(r) = route.as_map() else {
            c.problem(&at, "must be a route");
            continue;
        };
        match r.get("destination").and_then(Value::as_str) {
            Some(d) => {
                c.cidr(&at, d);
                if !destinations.insert(d.to_string()) {
                    c.problem(
                        &at,
                        format!("a second route for `{d}`; a table has one route per destination"),
                    );
                }
            }
            None => c.problem(&at, "needs a destination CIDR block"),
        }
        let targets = ["gateway_id", "nat_gateway_id"]
            .iter()
            .filter(|k| r.contains_key(**k))
            .count();
        if targets != 1 {
            c.problem(
                &at,
                format!("needs exactly one target (internet or NAT gateway); has {targets}"),
            );
        }
    }
    // A subnet is associated with at most one route table.
    let subnets = spec
        .get("subnet_ids")
        .and_then(Value::as_list)
        .unwrap_or(&[]);
    let mut seen = BTreeSet::new();
    for (i, s) in subnets.iter().enumerate() {
        let key = s.to_json().to_string();
        if !seen.insert(key) {
            c.problem(
                &format!("subnet_ids[{i}]"),
                "the subnet is associated twice",
            );
        }
        for other in ctx.of_kind(ROUTE_TABLE.kind) {
            if std::ptr::eq(*other, spec) {
                break;
            }
            if other
                .get("subnet_ids")
                .and_then(Value::as_list)
                .is_some_and(|l| l.contains(s))
            {
                c.problem(
                    &format!("subnet_ids[{i}]"),
                    format!(
                        "the subnet is already associated with {}; a subnet has one route table",
                        other.address
                    ),
                );
            }
        }
    }
    c.finish()
}
