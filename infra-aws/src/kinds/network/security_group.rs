//! `aws_security_group` and its rules.

use std::collections::{BTreeMap, BTreeSet};

use infra_core::dsl::{KindSchema, Ref, ResourceSpec};
use infra_core::validate::{Checker, Problem, ValidationContext};
use infra_core::{kind, Value};

use super::Vpc;
use crate::kinds::{check_physical_name, check_tags, physical_name, printable_char};

pub(crate) static SECURITY_GROUP: KindSchema = KindSchema::new("aws_security_group", "aws")
    .move_replaces(
        "its AWS name is `<stack>-<name>`, from its address, and AWS can't rename a security group",
    )
    .force_new(&["vpc_id", "description"])
    .computed(&["id", "arn"])
    .unordered(&["ingress", "egress"])
    .validate(validate_security_group)
    .codegen(crate::kinds::codegen::security_group);

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

/// The canonical form of a rule's protocol, as AWS reads it back: `tcp`, `udp` and `icmp` by
/// name (also when given as 6, 17 or 1), `-1` for every protocol (also `all`), `58` for ICMPv6
/// (also `icmpv6`), and any other IP protocol as its decimal number (`50` for ESP). Anything
/// else is kept as given, for validation to report.
pub(crate) fn canonical_protocol(protocol: &str) -> String {
    let lower = protocol.trim().to_ascii_lowercase();
    match lower.as_str() {
        "tcp" | "udp" | "icmp" => lower,
        "all" | "-1" => "-1".to_string(),
        "icmpv6" => "58".to_string(),
        other => match other.parse::<i64>() {
            Ok(6) => "tcp".to_string(),
            Ok(17) => "udp".to_string(),
            Ok(1) => "icmp".to_string(),
            Ok(n) if (0..=255).contains(&n) => n.to_string(),
            _ => protocol.to_string(),
        },
    }
}

/// Whether rules of this (canonical) protocol have no ports: every IP protocol but TCP, UDP,
/// ICMP and ICMPv6 (whose "ports" are the ICMP type and code), and `-1`. AWS allows such a
/// protocol on every port whatever ports are given; the rule's ports are kept as 0-0.
pub(crate) fn portless(protocol: &str) -> bool {
    !matches!(protocol, "tcp" | "udp" | "icmp" | "58")
}

impl Rule {
    fn new(protocol: &str, from: i64, to: i64) -> Self {
        // The forms AWS reads back: protocol names instead of numbers (for tcp, udp, icmp),
        // other protocols by number, and ports 0-0 for protocols without ports (AWS omits them).
        let protocol = canonical_protocol(protocol);
        let valid_number = protocol == "-1" || protocol.parse::<u8>().is_ok();
        let (from, to) = if portless(&protocol) && valid_number {
            (0, 0)
        } else {
            (from, to)
        };
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
    /// Every packet of one IP protocol, by its number (IANA's "Assigned Internet Protocol
    /// Numbers"): `Rule::protocol(50)` is ESP (IPsec, which Swarm's encrypted overlay networks
    /// use), `47` GRE, `4` IP-in-IP. Protocols without ports apply to all traffic of that
    /// protocol. The numbers of TCP (6), UDP (17) and ICMP (1) give those protocols on every port
    /// (every ICMP type and code); `58` is ICMPv6, every type and code.
    pub fn protocol(number: u8) -> Self {
        match number {
            6 => Rule::new("tcp", 0, 65535),
            17 => Rule::new("udp", 0, 65535),
            1 | 58 => Rule::new(&number.to_string(), -1, -1),
            n => Rule::new(&n.to_string(), 0, 0),
        }
    }
    /// ESP (IP protocol 50): IPsec's encrypted payloads, which Swarm's encrypted overlay
    /// networks (`SwarmNetwork::encrypted`) send between nodes.
    pub fn esp() -> Self {
        Rule::protocol(50)
    }
    /// A rule from raw parts: `protocol` is `tcp`, `udp`, `icmp`, `icmpv6`, `-1` (or `all`), or
    /// an IP protocol number `0`-`255`; validated like the rest (the ports of a protocol without
    /// ports are ignored).
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
    if physical_name(ctx.stack().name(), spec.address.name()).starts_with("sg-") {
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
                "icmp" | "58" => {
                    if !(-1..=255).contains(&from) || !(-1..=255).contains(&to) {
                        c.problem(&at, "ICMP type and code must be -1 (any) or 0-255");
                    }
                }
                "-1" => {}
                number if number.parse::<u8>().is_ok() => {}
                other => c.problem(
                    &at,
                    format!(
                        "protocol `{other}` is not one of tcp, udp, icmp, icmpv6, -1 (all), or an \
                         IP protocol number 0-255"
                    ),
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
