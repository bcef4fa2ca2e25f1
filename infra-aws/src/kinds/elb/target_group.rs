//! `aws_lb_target_group`: where a listener sends traffic, with its health check.

use infra_core::dsl::{Arn, Id, Input, KindSchema, Output, Ref, ResourceSpec};
use infra_core::kind;
use infra_core::validate::{Checker, Problem, ValidationContext};

use super::elb_name_char;
use crate::kinds::network::Vpc;
use crate::kinds::{check_physical_name, check_tags, physical_name};

pub(crate) static TARGET_GROUP: KindSchema = KindSchema::new("aws_lb_target_group", "aws")
    .move_replaces(
        "its AWS name is `<stack>-<name>`, from its address, and AWS can't rename a target group",
    )
    .force_new(&["protocol", "port", "vpc_id", "target_type"])
    .computed(&["id", "arn"])
    .validate(validate_target_group)
    .codegen(crate::kinds::codegen::target_group);

/// The longest target group name AWS allows.
const MAX_NAME: usize = 32;
/// `-` and four hex digits, appended to `<stack>-<name>` (see [`target_group_name`]).
const SUFFIX: usize = 5;

/// The protocol a target group's targets speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TargetProtocol {
    /// HTTP (application load balancers).
    Http,
    /// HTTPS (application load balancers).
    Https,
    /// TCP (network load balancers).
    Tcp,
    /// TLS (network load balancers).
    Tls,
    /// UDP (network load balancers).
    Udp,
    /// TCP and UDP on one port (network load balancers).
    TcpUdp,
}

impl TargetProtocol {
    /// The name AWS uses.
    pub fn api_name(self) -> &'static str {
        match self {
            TargetProtocol::Http => "HTTP",
            TargetProtocol::Https => "HTTPS",
            TargetProtocol::Tcp => "TCP",
            TargetProtocol::Tls => "TLS",
            TargetProtocol::Udp => "UDP",
            TargetProtocol::TcpUdp => "TCP_UDP",
        }
    }
    fn is_http(self) -> bool {
        matches!(self, TargetProtocol::Http | TargetProtocol::Https)
    }
}

kind! {
    /// A target group: the instances (here: an auto scaling group's, through
    /// [`crate::Asg::target_group`]) a listener forwards to, on a protocol and port, with a
    /// health check. Its id is its ARN.
    ///
    /// The health check (path, interval, timeout, thresholds, matcher) changes in place
    /// (`ModifyTargetGroup`); the protocol, the port and the VPC can't change in AWS, so a change
    /// replaces the group. Listeners and auto scaling groups keep forwarding during a
    /// replacement: target groups are replaced create-before-destroy, which is why the AWS name
    /// is `<stack>-<name>-<4 hex digits of protocol, port and VPC>` (names are unique per account
    /// and region, and the new group must exist beside the old one).
    ///
    /// Defaults are AWS's: an HTTP(S) group checks `/` over its own protocol every 30 s with a 5 s
    /// timeout, 5 successes to be healthy, 2 failures to be unhealthy, expecting `200`; a TCP,
    /// TLS or UDP group checks TCP connections (10 s timeout).
    pub struct TargetGroup => TARGET_GROUP
}

impl TargetGroup {
    /// A target group named `name` whose instance targets speak `protocol` on `port`.
    pub fn new(name: &str, protocol: TargetProtocol, port: u16) -> Self {
        let mut s = ResourceSpec::new(&TARGET_GROUP, name);
        s.set("protocol", protocol.api_name())
            .set("port", i64::from(port))
            .set("target_type", "instance")
            .set("health_check_port", "traffic-port")
            .set("health_check_interval", 30)
            .set("healthy_threshold", 5)
            .set("unhealthy_threshold", 2);
        if protocol.is_http() {
            s.set("health_check_protocol", protocol.api_name())
                .set("health_check_path", "/")
                .set("health_check_timeout", 5)
                .set("matcher", "200");
        } else {
            s.set("health_check_protocol", "TCP")
                .set("health_check_timeout", 10);
        }
        s.options.create_before_destroy = true;
        TargetGroup(s)
    }
    /// The VPC of the targets.
    pub fn vpc(self, vpc: &Ref<Vpc>) -> Self {
        self.vpc_id(vpc.id())
    }
    /// The VPC by id: a literal, or a [`Vpc`]'s `id()`.
    pub fn vpc_id(mut self, id: impl Into<Input<Id<Vpc>>>) -> Self {
        self.0.set("vpc_id", id.into());
        self
    }
    /// The HTTP path the health check requests (HTTP and HTTPS health checks only).
    pub fn health_check_path(mut self, path: &str) -> Self {
        self.0.set("health_check_path", path);
        self
    }
    /// The port the health check probes (default: the port traffic goes to).
    pub fn health_check_port(mut self, port: u16) -> Self {
        self.0.set("health_check_port", port.to_string());
        self
    }
    /// Seconds between two checks (5-300) and before one times out (2-120, less than the
    /// interval).
    pub fn health_check_timing(mut self, interval_seconds: u32, timeout_seconds: u32) -> Self {
        self.0
            .set("health_check_interval", interval_seconds)
            .set("health_check_timeout", timeout_seconds);
        self
    }
    /// Consecutive successes before a target is healthy, and failures before it is unhealthy
    /// (each 2-10).
    pub fn thresholds(mut self, healthy: u32, unhealthy: u32) -> Self {
        self.0
            .set("healthy_threshold", healthy)
            .set("unhealthy_threshold", unhealthy);
        self
    }
    /// The HTTP codes of a healthy answer: `200`, `200,204` or `200-299` (HTTP and HTTPS
    /// health checks only).
    pub fn matcher(mut self, codes: &str) -> Self {
        self.0.set("matcher", codes);
        self
    }
    /// A user tag.
    pub fn tag(mut self, key: &str, value: &str) -> Self {
        self.0.insert("tags", key, value);
        self
    }
}

/// Typed outputs of a target group.
pub trait TargetGroupOutputs {
    /// The target group's ARN (its id), for listeners and auto scaling groups.
    fn arn(&self) -> Output<Arn<TargetGroup>>;
}

impl TargetGroupOutputs for Ref<TargetGroup> {
    fn arn(&self) -> Output<Arn<TargetGroup>> {
        self.output("arn")
    }
}

/// The AWS name of a target group: `<stack>-<name>-<4 hex digits>`, the digits a digest of
/// what can't change in place (protocol, port, VPC, target type), so that a replacement's new
/// group has a name of its own while the old one still exists. The provider's (`live`), and
/// unit-tested here.
#[cfg(any(feature = "live", test))]
pub(crate) fn target_group_name(
    stack: &str,
    name: &str,
    protocol: &str,
    port: i64,
    vpc: &str,
    target_type: &str,
) -> String {
    let digest =
        infra_core::value::digest_of(format!("{protocol}|{port}|{vpc}|{target_type}").as_bytes());
    let hex = digest.trim_start_matches("sha256:");
    format!("{}-{}", physical_name(stack, name), &hex[..SUFFIX - 1])
}

fn is_http_protocol(p: Option<&str>) -> bool {
    matches!(p, Some("HTTP" | "HTTPS"))
}

/// `200`, `200,202`, `200-299`: codes from 200 to 499 (what an application load balancer's
/// matcher accepts).
fn matcher_ok(codes: &str) -> bool {
    let code = |s: &str| s.len() == 3 && s.parse::<u16>().is_ok_and(|n| (200..=499).contains(&n));
    !codes.is_empty()
        && codes.split(',').all(|part| match part.split_once('-') {
            Some((a, b)) => code(a) && code(b) && a <= b,
            None => code(part),
        })
}

fn validate_target_group(spec: &ResourceSpec, ctx: &ValidationContext<'_>) -> Vec<Problem> {
    let mut c = Checker::new(spec);
    check_physical_name(
        &mut c,
        spec,
        ctx,
        "target group (before its 5-character suffix)",
        MAX_NAME - SUFFIX,
        elb_name_char,
    );
    if physical_name(ctx.stack().name(), spec.address.name()).starts_with('-') {
        c.problem("name", "target group names may not begin with a hyphen");
    }
    check_tags(&mut c, spec);
    c.required_ref("vpc_id", "vpc");
    let protocol = spec.get_str("protocol");
    if !matches!(
        protocol,
        Some("HTTP" | "HTTPS" | "TCP" | "TLS" | "UDP" | "TCP_UDP")
    ) {
        c.problem(
            "protocol",
            format!("must be one of HTTP, HTTPS, TCP, TLS, UDP, TCP_UDP; got {protocol:?}"),
        );
    }
    c.int_in("port", 1, 65535);
    if spec.get_str("target_type") != Some("instance") {
        c.problem("target_type", "only `instance` targets are supported");
    }
    let hc = spec.get_str("health_check_protocol");
    if !matches!(hc, Some("HTTP" | "HTTPS" | "TCP")) {
        c.problem(
            "health_check_protocol",
            format!("must be HTTP, HTTPS or TCP; got {hc:?}"),
        );
    }
    match spec.get_str("health_check_port") {
        Some("traffic-port") => {}
        Some(p) if p.parse::<u16>().is_ok_and(|n| n > 0) => {}
        other => c.problem(
            "health_check_port",
            format!("must be `traffic-port` or a port 1-65535, got {other:?}"),
        ),
    }
    let http_check = is_http_protocol(hc);
    match spec.get_str("health_check_path") {
        Some(_) if !http_check => c.problem(
            "health_check_path",
            "only HTTP and HTTPS health checks have a path",
        ),
        Some(p) if !p.starts_with('/') || p.len() > 1024 => c.problem(
            "health_check_path",
            format!("`{p}` must start with `/` and be at most 1024 characters"),
        ),
        None if http_check => c.problem("health_check_path", "an HTTP health check needs a path"),
        _ => {}
    }
    match spec.get_str("matcher") {
        Some(_) if !http_check => c.problem(
            "matcher",
            "only HTTP and HTTPS health checks match response codes",
        ),
        Some(m) if !matcher_ok(m) => c.problem(
            "matcher",
            format!(
                "`{m}` is not a list or range of HTTP codes 200-499 (`200`, `200,204`, `200-299`)"
            ),
        ),
        _ => {}
    }
    let interval = c.int_in("health_check_interval", 5, 300);
    let timeout = c.int_in("health_check_timeout", 2, 120);
    if let (Some(i), Some(t)) = (interval, timeout) {
        if t >= i {
            c.problem(
                "health_check_interval",
                format!("the timeout ({t} s) must be shorter than the interval ({i} s)"),
            );
        }
    }
    for field in ["healthy_threshold", "unhealthy_threshold"] {
        if c.required(field).is_some() {
            c.int_in(field, 2, 10);
        }
    }
    c.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matchers() {
        for ok in ["200", "200,204", "200-299", "200-399,404"] {
            assert!(matcher_ok(ok), "{ok}");
        }
        for bad in ["", "ok", "600", "299-200", "20", "200,"] {
            assert!(!matcher_ok(bad), "{bad}");
        }
    }

    #[test]
    fn names_differ_with_what_forces_a_replacement() {
        let a = target_group_name("prod", "app", "HTTP", 8080, "vpc-1", "instance");
        let b = target_group_name("prod", "app", "HTTP", 8081, "vpc-1", "instance");
        assert!(
            a.starts_with("prod-app-") && a.len() == "prod-app-".len() + 4,
            "{a}"
        );
        assert_ne!(a, b);
        assert_eq!(
            a,
            target_group_name("prod", "app", "HTTP", 8080, "vpc-1", "instance")
        );
    }
}
