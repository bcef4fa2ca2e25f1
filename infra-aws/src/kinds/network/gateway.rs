//! `aws_internet_gateway`, `aws_eip` and `aws_nat_gateway`: the ways out of a VPC.

use infra_core::dsl::{KindSchema, Ref, ResourceSpec, Stack};
use infra_core::validate::{Checker, Problem, ValidationContext};
use infra_core::{kind, Value};

use super::{Subnet, Vpc};
use crate::kinds::check_tags;

pub(crate) static INTERNET_GATEWAY: KindSchema = KindSchema::new("aws_internet_gateway", "aws")
    .movable()
    .computed(&["id", "arn"])
    .validate(validate_internet_gateway)
    .codegen(crate::kinds::codegen::internet_gateway);

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
    for other in ctx.earlier_same(INTERNET_GATEWAY.kind, "vpc_id", spec) {
        if mine.is_some() {
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
    .movable()
    .force_new(&["domain"])
    .computed(&["id", "public_ip"])
    .validate(validate_elastic_ip)
    .codegen(crate::kinds::codegen::elastic_ip);

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
    .movable()
    .force_new(&["subnet_id", "allocation_id", "connectivity_type"])
    .computed(&["id"])
    .validate(validate_nat_gateway)
    .codegen(crate::kinds::codegen::nat_gateway);

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
    for other in ctx.earlier_same(NAT_GATEWAY.kind, "allocation_id", spec) {
        if mine.is_some() {
            c.problem(
                "allocation_id",
                format!("{} already uses this Elastic IP", other.address),
            );
        }
    }
    check_tags(&mut c, spec);
    c.finish()
}
