//! `aws_lb_listener`: a port and protocol a load balancer listens on, and what it does with
//! the requests (forward to a target group, or redirect to HTTPS).

use infra_core::dsl::{Arn, Input, KindSchema, Ref, ResourceSpec};
use infra_core::validate::{Checker, Problem, ValidationContext};
use infra_core::{kind, map, Value};

use super::{LoadBalancer, LoadBalancerOutputs, TargetGroup, TargetGroupOutputs};
use crate::kinds::check_tags;

/// The TLS policy of HTTPS and TLS listeners unless another is given: TLS 1.3 and 1.2 only,
/// AWS's recommended policy for new listeners.
pub const DEFAULT_SSL_POLICY: &str = "ELBSecurityPolicy-TLS13-1-2-2021-06";

/// Where a problem with the source of the certificate ARN is kept until validation reports it
/// (the builders chain and can't fail).
const SOURCE_ERROR: &str = "source_error";

pub(crate) static LISTENER: KindSchema = KindSchema::new("aws_lb_listener", "aws")
    .force_new(&["load_balancer_arn"])
    .computed(&["id", "arn"])
    .validate(validate_listener)
    .codegen(crate::kinds::codegen::listener);

/// An ACM (or IAM server) certificate, declared outside the stack: only its ARN appears here,
/// as the type of [`Listener::https`]'s certificate (`Input<Arn<AcmCertificate>>`).
#[derive(Debug)]
pub enum AcmCertificate {}

kind! {
    /// A listener of a [`LoadBalancer`]: a protocol and port, and a default action: forward to
    /// a [`TargetGroup`], or redirect to HTTPS. HTTPS and TLS listeners take a certificate ARN
    /// and a TLS policy ([`DEFAULT_SSL_POLICY`] unless set). Its id is its ARN; everything but
    /// its load balancer changes in place (`ModifyListener`).
    ///
    /// ```
    /// use infra_aws::{Listener, LoadBalancer, TargetGroup, TargetProtocol};
    /// use infra_core::Stack;
    /// let mut s = Stack::new("demo");
    /// # let vpc = s.add(infra_aws::Vpc::new("main").cidr("10.0.0.0/16"));
    /// let lb = s.add(LoadBalancer::application("web"));
    /// let tg = s.add(TargetGroup::new("app", TargetProtocol::Http, 8080).vpc(&vpc));
    /// s.add(Listener::http_redirect("http", &lb));
    /// s.add(Listener::https("https", &lb, "arn:aws:acm:us-east-1:123456789012:certificate/abc").forward(&tg));
    /// ```
    pub struct Listener => LISTENER
}

impl Listener {
    fn new(name: &str, lb: &Ref<LoadBalancer>, protocol: &str, port: u16) -> Self {
        let mut s = ResourceSpec::new(&LISTENER, name);
        s.set("load_balancer_arn", lb.arn())
            .set("protocol", protocol)
            .set("port", i64::from(port));
        Listener(s)
    }
    /// An HTTP listener on `port`; give it an action (`.forward(..)`, `.redirect_to_https(..)`).
    pub fn http(name: &str, lb: &Ref<LoadBalancer>, port: u16) -> Self {
        Listener::new(name, lb, "HTTP", port)
    }
    /// An HTTP listener on port 80 that redirects every request to HTTPS on 443 (301,
    /// permanent), keeping host, path and query.
    pub fn http_redirect(name: &str, lb: &Ref<LoadBalancer>) -> Self {
        Listener::http(name, lb, 80).redirect_to_https(443)
    }
    /// An HTTPS listener on port 443 with a certificate (an ACM certificate's ARN, declared
    /// outside the stack) and [`DEFAULT_SSL_POLICY`]; give it an action (`.forward(..)`).
    pub fn https(
        name: &str,
        lb: &Ref<LoadBalancer>,
        certificate: impl Into<Input<Arn<AcmCertificate>>>,
    ) -> Self {
        let mut l = Listener::new(name, lb, "HTTPS", 443);
        l.0.set("certificate_arn", certificate.into())
            .set("ssl_policy", DEFAULT_SSL_POLICY);
        l
    }
    /// An HTTPS listener like [`Listener::https`], its certificate ARN read now from an
    /// environment variable of the deploy program. A missing variable is reported by
    /// validation, naming it.
    pub fn https_from_env(name: &str, lb: &Ref<LoadBalancer>, var: &str) -> Self {
        match std::env::var(var) {
            Ok(arn) => Listener::https(name, lb, arn),
            Err(_) => {
                let mut l = Listener::new(name, lb, "HTTPS", 443);
                l.0.set("ssl_policy", DEFAULT_SSL_POLICY).set(
                    SOURCE_ERROR,
                    format!("the environment variable `{var}` is not set (the certificate's ARN)"),
                );
                l
            }
        }
    }
    /// A TCP listener of a network load balancer on `port`.
    pub fn tcp(name: &str, lb: &Ref<LoadBalancer>, port: u16) -> Self {
        Listener::new(name, lb, "TCP", port)
    }
    /// The port (in place).
    pub fn port(mut self, port: u16) -> Self {
        self.0.set("port", i64::from(port));
        self
    }
    /// The TLS policy of an HTTPS or TLS listener (`ELBSecurityPolicy-…`).
    pub fn ssl_policy(mut self, policy: &str) -> Self {
        self.0.set("ssl_policy", policy);
        self
    }
    /// Forward every request to a target group.
    pub fn forward(self, target_group: &Ref<TargetGroup>) -> Self {
        self.forward_arn(target_group.arn())
    }
    /// Forward to a target group by ARN: a literal, or a [`TargetGroup`]'s `arn()`.
    pub fn forward_arn(mut self, arn: impl Into<Input<Arn<TargetGroup>>>) -> Self {
        let arn: Value = arn.into().into();
        self.0.set(
            "default_action",
            map! { "type" => "forward", "target_group_arn" => arn },
        );
        self
    }
    /// Redirect every request to HTTPS on `port` (301, permanent), keeping host, path and
    /// query.
    pub fn redirect_to_https(mut self, port: u16) -> Self {
        self.0.set(
            "default_action",
            map! {
                "type" => "redirect",
                "protocol" => "HTTPS",
                "port" => port.to_string(),
                "status_code" => "HTTP_301",
            },
        );
        self
    }
    /// A user tag.
    pub fn tag(mut self, key: &str, value: &str) -> Self {
        self.0.insert("tags", key, value);
        self
    }
}

/// Protocols of each load balancer type's listeners.
fn protocols_of(lb_type: &str) -> &'static [&'static str] {
    match lb_type {
        "application" => &["HTTP", "HTTPS"],
        _ => &["TCP", "TLS", "UDP", "TCP_UDP"],
    }
}

fn validate_listener(spec: &ResourceSpec, ctx: &ValidationContext<'_>) -> Vec<Problem> {
    let mut c = Checker::new(spec);
    check_tags(&mut c, spec);
    c.required_ref("load_balancer_arn", "load balancer");
    let port = match c.required("port") {
        Some(_) => c.int_in("port", 1, 65535),
        None => None,
    };
    let protocol = spec.get_str("protocol").unwrap_or_default();
    if !["HTTP", "HTTPS", "TCP", "TLS", "UDP", "TCP_UDP"].contains(&protocol) {
        c.problem(
            "protocol",
            format!("must be one of HTTP, HTTPS, TCP, TLS, UDP, TCP_UDP; got `{protocol}`"),
        );
    }
    let lb_type = ctx
        .referenced(spec, "load_balancer_arn")
        .and_then(|lb| lb.get_str("type"));
    if let Some(t) = lb_type {
        if !protocols_of(t).contains(&protocol) {
            c.problem(
                "protocol",
                format!(
                    "an {t} load balancer's listeners speak {}, not `{protocol}`",
                    protocols_of(t).join(", ")
                ),
            );
        }
    }
    let tls = matches!(protocol, "HTTPS" | "TLS");
    if let Some(why) = spec.get_str(SOURCE_ERROR) {
        c.problem("certificate_arn", why);
    }
    match spec.get("certificate_arn") {
        None if spec.get(SOURCE_ERROR).is_some() => {}
        None if tls => c.problem(
            "certificate_arn",
            format!("a {protocol} listener needs a certificate: `Listener::https(name, &lb, certificate_arn)`"),
        ),
        Some(_) if !tls => c.problem(
            "certificate_arn",
            format!("a {protocol} listener has no certificate (only HTTPS and TLS listeners do)"),
        ),
        Some(Value::String(arn))
            if !(arn.starts_with("arn:")
                && (arn.contains(":acm:") && arn.contains(":certificate/")
                    || arn.contains(":iam::") && arn.contains(":server-certificate/"))) =>
        {
            c.problem(
                "certificate_arn",
                format!("`{arn}` is not an ACM certificate ARN (arn:aws:acm:<region>:<account>:certificate/<id>)"),
            )
        }
        _ => {}
    }
    match spec.get("ssl_policy") {
        None if tls => c.problem("ssl_policy", "an HTTPS or TLS listener needs a TLS policy"),
        Some(_) if !tls => c.problem(
            "ssl_policy",
            "only HTTPS and TLS listeners have a TLS policy",
        ),
        Some(Value::String(p)) if !p.starts_with("ELBSecurityPolicy-") => c.problem(
            "ssl_policy",
            format!("`{p}` is not an ELB security policy (ELBSecurityPolicy-…)"),
        ),
        _ => {}
    }
    let action = spec.get("default_action").and_then(Value::as_map);
    match action.and_then(|a| a.get("type")).and_then(Value::as_str) {
        None => c.problem(
            "default_action",
            "is required: `.forward(&target_group)` or `.redirect_to_https(443)`",
        ),
        Some("forward") => {
            let tg = action.and_then(|a| a.get("target_group_arn"));
            match tg {
                Some(Value::Ref(r)) => {
                    let tg_protocol = ctx.get(&r.address).and_then(|t| t.get_str("protocol"));
                    if let (Some(t), Some(p)) = (lb_type, tg_protocol) {
                        if !protocols_of(t).contains(&p) {
                            c.problem(
                                "default_action",
                                format!("an {t} load balancer can't forward to a {p} target group"),
                            );
                        }
                    }
                }
                Some(Value::String(arn)) if arn.contains(":targetgroup/") => {}
                _ => c.problem(
                    "default_action",
                    "a forward needs a target group: `.forward(&target_group)`",
                ),
            }
        }
        Some("redirect") => {
            if !matches!(protocol, "HTTP" | "HTTPS") {
                c.problem(
                    "default_action",
                    format!("only HTTP and HTTPS listeners redirect; this one is `{protocol}`"),
                );
            }
            let to_port = action
                .and_then(|a| a.get("port"))
                .and_then(Value::as_str)
                .and_then(|p| p.parse::<i64>().ok());
            let to_protocol = action
                .and_then(|a| a.get("protocol"))
                .and_then(Value::as_str);
            if to_protocol == Some(protocol) && to_port.is_some() && to_port == port {
                c.problem(
                    "default_action",
                    "redirects to its own protocol and port: every request would loop",
                );
            }
        }
        Some(other) => c.problem(
            "default_action",
            format!("`{other}` is not an action this listener supports (forward, redirect)"),
        ),
    }
    c.finish()
}
