//! `aws_route_table`: routes and subnet associations.

use std::collections::{BTreeMap, BTreeSet};

use infra_core::dsl::{KindSchema, Ref, ResourceSpec};
use infra_core::validate::{Checker, Problem, ValidationContext};
use infra_core::{kind, Value};

use super::{InternetGateway, NatGateway, Subnet, Vpc};
use crate::kinds::check_tags;

pub(crate) static ROUTE_TABLE: KindSchema = KindSchema::new("aws_route_table", "aws")
    .movable()
    .force_new(&["vpc_id"])
    .computed(&["id"])
    .unordered(&["routes", "subnet_ids"])
    .validate(validate_route_table)
    .codegen(crate::kinds::codegen::route_table);

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
        for other in ctx.earlier_containing(ROUTE_TABLE.kind, "subnet_ids", s, spec) {
            c.problem(
                &format!("subnet_ids[{i}]"),
                format!(
                    "the subnet is already associated with {}; a subnet has one route table",
                    other.address
                ),
            );
        }
    }
    c.finish()
}
