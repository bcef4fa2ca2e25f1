//! `aws_vpc`.

use infra_core::dsl::{KindSchema, ResourceSpec};
use infra_core::validate::{Checker, Problem, ValidationContext};
use infra_core::{kind, Value};

use crate::kinds::check_tags;

pub(crate) static VPC: KindSchema = KindSchema::new("aws_vpc", "aws")
    .movable()
    .force_new(&["cidr_block"])
    .computed(&["id", "arn"])
    .validate(validate_vpc)
    .codegen(crate::kinds::codegen::vpc);

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

pub(super) fn check_ipv4_block(
    c: &mut Checker<'_>,
    field: &str,
    cidr: &str,
) -> Option<ipnet::IpNet> {
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
