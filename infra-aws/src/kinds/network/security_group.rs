//! `aws_security_group` and its rules.

use std::collections::{BTreeMap, BTreeSet};

use infra_core::dsl::{KindSchema, Ref, ResourceSpec};
use infra_core::validate::{Checker, Problem, ValidationContext};
use infra_core::{kind, Value};

use super::Vpc;
use crate::kinds::{check_physical_name, check_tags, physical_name, printable_char};

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
