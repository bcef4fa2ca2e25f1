//! `aws_lb`: an Elastic Load Balancing v2 load balancer (application or network).

use infra_core::dsl::{Arn, Id, Input, KindSchema, Output, Ref, ResourceSpec};
use infra_core::validate::{Checker, Problem, ValidationContext};
use infra_core::{kind, Value};

use super::elb_name_char;
use crate::kinds::network::{SecurityGroup, Subnet};
use crate::kinds::{check_physical_name, check_tags, physical_name};

pub(crate) static LOAD_BALANCER: KindSchema = KindSchema::new("aws_lb", "aws")
    .move_replaces(
        "its AWS name is `<stack>-<name>`, from its address, and AWS can't rename a load balancer",
    )
    .force_new(&["type", "scheme"])
    .computed(&["id", "arn", "dns_name"])
    .unordered(&["subnet_ids", "security_group_ids"])
    .validate(validate_load_balancer)
    .codegen(crate::kinds::codegen::load_balancer);

/// AWS's limit of security groups on one load balancer.
const MAX_SECURITY_GROUPS: usize = 5;

kind! {
    /// An Elastic Load Balancing v2 load balancer: an application load balancer (HTTP and HTTPS,
    /// layer 7) or a network load balancer (TCP, TLS, UDP, layer 4), internet-facing (the
    /// default) or internal, in a set of subnets (one per availability zone), with its own
    /// security groups. Its name is `<stack>-<name>` (at most 32 characters, letters, digits
    /// and hyphens); its id is its ARN. Changing its type or scheme replaces it (AWS can't change
    /// either); its subnets and security groups change in place.
    ///
    /// ```
    /// use infra_aws::{LoadBalancer, LoadBalancerOutputs, SecurityGroup, Subnet, Vpc};
    /// use infra_core::Stack;
    /// let mut s = Stack::new("demo");
    /// let vpc = s.add(Vpc::new("main").cidr("10.0.0.0/16"));
    /// let a = s.add(Subnet::new("a").vpc(&vpc).cidr("10.0.1.0/24").az("us-east-1a").public(true));
    /// let b = s.add(Subnet::new("b").vpc(&vpc).cidr("10.0.2.0/24").az("us-east-1b").public(true));
    /// let sg = s.add(SecurityGroup::new("lb").vpc(&vpc));
    /// let lb = s.add(LoadBalancer::application("web").subnets(&[&a, &b]).security_group(&sg));
    /// let _dns = lb.dns_name();
    /// ```
    pub struct LoadBalancer => LOAD_BALANCER
}

impl LoadBalancer {
    fn typed(name: &str, kind: &str) -> Self {
        let mut s = ResourceSpec::new(&LOAD_BALANCER, name);
        s.set("type", kind)
            .set("scheme", "internet-facing")
            .set("subnet_ids", Value::List(Vec::new()))
            .set("security_group_ids", Value::List(Vec::new()));
        LoadBalancer(s)
    }
    /// An application load balancer (HTTP/HTTPS). It drops HTTP headers that are not valid
    /// (`routing.http.drop_invalid_header_fields.enabled`), as the policy report expects; undo
    /// with `.drop_invalid_header_fields(false)`.
    pub fn application(name: &str) -> Self {
        let mut lb = LoadBalancer::typed(name, "application");
        lb.0.set("drop_invalid_header_fields", true);
        lb
    }
    /// A network load balancer (TCP, TLS, UDP).
    pub fn network(name: &str) -> Self {
        LoadBalancer::typed(name, "network")
    }
    /// Internal: reachable from inside the VPC only (the default is internet-facing). Changing
    /// the scheme replaces the load balancer.
    pub fn internal(mut self) -> Self {
        self.0.set("scheme", "internal");
        self
    }
    /// The subnets, one per availability zone (an application load balancer needs at least
    /// two zones). An internet-facing load balancer belongs in public subnets.
    pub fn subnets(mut self, subnets: &[&Ref<Subnet>]) -> Self {
        self.0.set(
            "subnet_ids",
            Value::List(subnets.iter().map(|s| s.id().into()).collect()),
        );
        self
    }
    /// A security group of the load balancer's own (what may reach its listeners).
    pub fn security_group(self, group: &Ref<SecurityGroup>) -> Self {
        self.security_group_id(group.id())
    }
    /// A security group by id: a literal, or a [`SecurityGroup`]'s `id()`.
    pub fn security_group_id(mut self, id: impl Into<Input<Id<SecurityGroup>>>) -> Self {
        self.0.push("security_group_ids", id.into());
        self
    }
    /// Whether an application load balancer drops HTTP headers that are not valid (on by
    /// default; network load balancers have no such setting).
    pub fn drop_invalid_header_fields(mut self, on: bool) -> Self {
        self.0.set("drop_invalid_header_fields", on);
        self
    }
    /// A user tag.
    pub fn tag(mut self, key: &str, value: &str) -> Self {
        self.0.insert("tags", key, value);
        self
    }
}

/// Typed outputs of a load balancer.
pub trait LoadBalancerOutputs {
    /// The load balancer's ARN (its id), for listeners.
    fn arn(&self) -> Output<Arn<LoadBalancer>>;
    /// The DNS name clients resolve (for a CNAME or an alias record).
    fn dns_name(&self) -> Output<String>;
}

impl LoadBalancerOutputs for Ref<LoadBalancer> {
    fn arn(&self) -> Output<Arn<LoadBalancer>> {
        self.output("arn")
    }
    fn dns_name(&self) -> Output<String> {
        self.output("dns_name")
    }
}

fn validate_load_balancer(spec: &ResourceSpec, ctx: &ValidationContext<'_>) -> Vec<Problem> {
    let mut c = Checker::new(spec);
    check_physical_name(&mut c, spec, ctx, "load balancer", 32, elb_name_char);
    let full = physical_name(ctx.stack().name(), spec.address.name());
    if full.starts_with('-') || full.ends_with('-') {
        c.problem(
            "name",
            format!("the load balancer name `{full}` may not begin or end with a hyphen"),
        );
    }
    if full.starts_with("internal-") {
        c.problem(
            "name",
            format!("the load balancer name `{full}` may not begin with `internal-`"),
        );
    }
    check_tags(&mut c, spec);
    let kind = spec.get_str("type");
    match kind {
        Some("application" | "network") => {}
        other => c.problem(
            "type",
            format!("must be `application` or `network`, got {other:?}"),
        ),
    }
    match spec.get_str("scheme") {
        Some("internet-facing" | "internal") => {}
        other => c.problem(
            "scheme",
            format!("must be `internet-facing` or `internal`, got {other:?}"),
        ),
    }
    let subnets = spec
        .get("subnet_ids")
        .and_then(Value::as_list)
        .unwrap_or(&[]);
    let application = kind == Some("application");
    if subnets.is_empty() {
        c.problem(
            "subnet_ids",
            "needs at least one subnet: set them with `.subnets(&[…])`",
        );
    } else if application && subnets.len() < 2 {
        c.problem(
            "subnet_ids",
            "an application load balancer needs subnets in at least two availability zones",
        );
    } else {
        // One subnet per zone: AWS refuses two subnets of one zone.
        let zones: Vec<&str> = subnets
            .iter()
            .filter_map(|v| {
                v.as_ref()
                    .and_then(|r| ctx.get(&r.address))
                    .and_then(|s| s.get_str("availability_zone"))
            })
            .collect();
        let mut distinct = zones.clone();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() < zones.len() {
            c.problem(
                "subnet_ids",
                format!(
                    "{} subnets in {} availability zone(s): AWS takes one subnet per zone",
                    zones.len(),
                    distinct.len()
                ),
            );
        }
    }
    let groups = spec
        .get("security_group_ids")
        .and_then(Value::as_list)
        .unwrap_or(&[]);
    if application && groups.is_empty() {
        c.problem(
            "security_group_ids",
            "an application load balancer needs a security group of its own: `.security_group(&sg)`",
        );
    }
    if groups.len() > MAX_SECURITY_GROUPS {
        c.problem(
            "security_group_ids",
            format!(
                "{} security groups; AWS allows {MAX_SECURITY_GROUPS} per load balancer",
                groups.len()
            ),
        );
    }
    if !application && spec.get("drop_invalid_header_fields").is_some() {
        c.problem(
            "drop_invalid_header_fields",
            "only application load balancers parse HTTP headers",
        );
    }
    c.finish()
}
