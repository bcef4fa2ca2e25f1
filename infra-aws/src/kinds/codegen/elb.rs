//! Code generators of the Elastic Load Balancing v2 kinds.

use infra_core::import::{rust_str, Discovered, Generated, ImportNames};
use infra_core::Value;

use super::{map_of, strings, Chain};
use crate::kinds::elb::DEFAULT_SSL_POLICY;

/// `LoadBalancer::application(..)` / `network(..)` with its subnets and security groups
/// (typed), its scheme and header handling.
pub(crate) fn load_balancer(o: &Discovered, name: &str, names: &ImportNames) -> Generated {
    let application = o.props.get("type").and_then(Value::as_str) == Some("application");
    let constructor = if application {
        "application"
    } else {
        "network"
    };
    let mut c = Chain::new(
        o,
        names,
        "infra::aws::LoadBalancer",
        constructor,
        &rust_str(name),
    );
    if c.str("scheme") == Some("internal") {
        c.call("internal", "");
    }
    let mut subnets = Vec::new();
    for s in strings(c.get("subnet_ids")) {
        if let Some(r) = c.reference("subnets", "aws_subnet", "subnet", &s) {
            subnets.push(r);
        }
    }
    if !subnets.is_empty() {
        c.call("subnets", &format!("&[{}]", subnets.join(", ")));
    }
    for group in strings(c.get("security_group_ids")) {
        if let Some(r) = c.reference(
            "security_group",
            "aws_security_group",
            "security group",
            &group,
        ) {
            c.call("security_group", &r);
        }
    }
    let drops = c.get("drop_invalid_header_fields").and_then(Value::as_bool);
    if application && drops == Some(false) {
        c.call("drop_invalid_header_fields", "false");
    }
    c.tags().done()
}

/// The `TargetProtocol` variant of an API protocol.
fn target_protocol(p: &str) -> Option<&'static str> {
    Some(match p {
        "HTTP" => "Http",
        "HTTPS" => "Https",
        "TCP" => "Tcp",
        "TLS" => "Tls",
        "UDP" => "Udp",
        "TCP_UDP" => "TcpUdp",
        _ => return None,
    })
}

/// `TargetGroup::new(.., TargetProtocol::.., port).vpc(&vpc)` with its health check where it
/// differs from the builder's defaults.
pub(crate) fn target_group(o: &Discovered, name: &str, names: &ImportNames) -> Generated {
    let protocol = o
        .props
        .get("protocol")
        .and_then(Value::as_str)
        .unwrap_or("");
    let variant = target_protocol(protocol).unwrap_or("Http");
    let port = o.props.get("port").and_then(Value::as_i64).unwrap_or(0);
    let args = format!(
        "{}, infra::aws::TargetProtocol::{variant}, {port}",
        rust_str(name)
    );
    let mut c = Chain::new(o, names, "infra::aws::TargetGroup", "new", &args);
    if target_protocol(protocol).is_none() {
        c.comment(format!(
            "its protocol `{protocol}` has no `TargetProtocol`: written as HTTP"
        ));
    }
    c.reference_to("vpc", "aws_vpc", "VPC", "vpc_id");
    let http = matches!(protocol, "HTTP" | "HTTPS");
    let check = c.str("health_check_protocol").unwrap_or("");
    let builder_check = if http { protocol } else { "TCP" };
    if check != builder_check {
        c.comment(format!(
            "its health check speaks `{check}`; the builder's checks a {protocol} group over \
             {builder_check} (an apply would change it)"
        ));
    }
    match c.str("health_check_port") {
        Some("traffic-port") | None => {}
        Some(p) => {
            c.call("health_check_port", p);
        }
    }
    if check == "HTTP" || check == "HTTPS" {
        c.str_unless("health_check_path", "health_check_path", Some("/"));
    }
    let int = |f: &str| o.props.get(f).and_then(Value::as_i64);
    let default_timeout = if http { 5 } else { 10 };
    let (interval, timeout) = (
        int("health_check_interval").unwrap_or(30),
        int("health_check_timeout").unwrap_or(default_timeout),
    );
    if interval != 30 || timeout != default_timeout {
        c.call("health_check_timing", &format!("{interval}, {timeout}"));
    }
    let (healthy, unhealthy) = (
        int("healthy_threshold").unwrap_or(5),
        int("unhealthy_threshold").unwrap_or(2),
    );
    if healthy != 5 || unhealthy != 2 {
        c.call("thresholds", &format!("{healthy}, {unhealthy}"));
    }
    if check == "HTTP" || check == "HTTPS" {
        c.str_unless("matcher", "matcher", Some("200"));
    }
    c.tags().done()
}

/// `Listener::http(.., &lb, port)` / `https(.., &lb, "certificate")` / `tcp(..)` with its
/// default action (`.forward(&tg)` or `.redirect_to_https(port)`).
pub(crate) fn listener(o: &Discovered, name: &str, names: &ImportNames) -> Generated {
    let protocol = o
        .props
        .get("protocol")
        .and_then(Value::as_str)
        .unwrap_or("");
    let port = o.props.get("port").and_then(Value::as_i64).unwrap_or(0);
    let lb_id = o
        .props
        .get("load_balancer_arn")
        .and_then(Value::as_str)
        .unwrap_or("");
    // Listeners are only discovered for load balancers handed over before them.
    let lb = names
        .reference("aws_lb", lb_id)
        .unwrap_or_else(|| "&load_balancer".to_string());
    let (constructor, args) = match protocol {
        "HTTPS" => {
            let cert = o
                .props
                .get("certificate_arn")
                .and_then(Value::as_str)
                .unwrap_or("");
            (
                "https",
                format!("{}, {lb}, {}", rust_str(name), rust_str(cert)),
            )
        }
        "TCP" => ("tcp", format!("{}, {lb}, {port}", rust_str(name))),
        _ => ("http", format!("{}, {lb}, {port}", rust_str(name))),
    };
    let mut c = Chain::new(o, names, "infra::aws::Listener", constructor, &args);
    if names.reference("aws_lb", lb_id).is_none() {
        c.comment(format!(
            "its load balancer `{lb_id}` was not imported: declare it as `load_balancer`"
        ));
    }
    if protocol == "HTTPS" {
        if port != 443 {
            c.call("port", &port.to_string());
        }
        c.str_unless("ssl_policy", "ssl_policy", Some(DEFAULT_SSL_POLICY));
    }
    let action = map_of(c.get("default_action"));
    match action.get("type").and_then(|v| v.as_str()) {
        Some("forward") => {
            if let Some(tg) = action.get("target_group_arn").and_then(|v| v.as_str()) {
                match names.reference("aws_lb_target_group", tg) {
                    Some(r) => c.call("forward", &r),
                    None => c.call("forward_arn", &rust_str(tg)),
                };
            }
        }
        Some("redirect") => {
            let to = action
                .get("port")
                .and_then(|v| v.as_str())
                .and_then(|p| p.parse::<u16>().ok())
                .unwrap_or(443);
            c.call("redirect_to_https", &to.to_string());
        }
        _ => {}
    }
    c.tags().done()
}
