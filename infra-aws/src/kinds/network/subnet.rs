//! `aws_subnet`, and the availability zone checks.

use infra_core::dsl::{KindSchema, Ref, ResourceSpec, Stack};
use infra_core::kind;
use infra_core::validate::{check_cidr, overlaps, within, Checker, Problem, ValidationContext};

use super::vpc::{check_ipv4_block, Vpc};
use crate::kinds::check_tags;

pub(crate) static SUBNET: KindSchema = KindSchema::new("aws_subnet", "aws")
    .movable()
    .force_new(&["vpc_id", "cidr_block", "availability_zone"])
    .computed(&["id", "arn"])
    .validate(validate_subnet)
    .codegen(crate::kinds::codegen::subnet);

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
    for other in ctx.earlier_same(SUBNET.kind, "vpc_id", spec) {
        if other.address == spec.address {
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
