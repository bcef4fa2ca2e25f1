//! Elastic Load Balancing (v2) kinds: load balancers (application or network), target groups
//! with their health checks, and listeners. The attachment of a target group to an auto
//! scaling group is a property of the group ([`crate::Asg::target_group`]).
//!
//! One module per kind; this module re-exports them.

mod listener;
mod load_balancer;
mod target_group;

pub use listener::{AcmCertificate, Listener, DEFAULT_SSL_POLICY};
pub use load_balancer::{LoadBalancer, LoadBalancerOutputs};
pub use target_group::{TargetGroup, TargetGroupOutputs, TargetProtocol};

pub(crate) use listener::LISTENER;
pub(crate) use load_balancer::LOAD_BALANCER;
#[cfg(feature = "live")]
pub(crate) use target_group::target_group_name;
pub(crate) use target_group::TARGET_GROUP;

/// Characters ELBv2 allows in load balancer and target group names: ASCII letters, digits and
/// hyphens.
pub(crate) fn elb_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-'
}

#[cfg(test)]
mod tests {
    use infra_core::dsl::Resource;
    use infra_core::validate::ValidationContext;
    use infra_core::{Stack, Value};

    use super::*;
    use crate::kinds::{Asg, LaunchTemplate, SecurityGroup, Subnet, Vpc};

    fn problems(s: &Stack) -> Vec<String> {
        let ctx = ValidationContext::new(s);
        s.resources()
            .iter()
            .flat_map(|r| (r.schema.validate)(r, &ctx))
            .map(|p| format!("{}: {}: {}", p.address, p.field, p.message))
            .collect()
    }

    #[test]
    fn a_complete_entry_point_validates_and_keeps_typed_references() {
        let mut s = Stack::new("demo");
        let vpc = s.add(Vpc::new("main").cidr("10.0.0.0/16"));
        let a = s.add(
            Subnet::new("a")
                .vpc(&vpc)
                .cidr("10.0.1.0/24")
                .az("us-east-1a"),
        );
        let b = s.add(
            Subnet::new("b")
                .vpc(&vpc)
                .cidr("10.0.2.0/24")
                .az("us-east-1b"),
        );
        let sg = s.add(SecurityGroup::new("lb").vpc(&vpc));
        let lb = s.add(
            LoadBalancer::application("web")
                .subnets(&[&a, &b])
                .security_group(&sg),
        );
        let tg = s.add(
            TargetGroup::new("app", TargetProtocol::Http, 8080)
                .vpc(&vpc)
                .health_check_path("/health"),
        );
        s.add(Listener::http_redirect("http", &lb));
        s.add(
            Listener::https(
                "https",
                &lb,
                "arn:aws:acm:us-east-1:123456789012:certificate/x",
            )
            .forward(&tg),
        );
        let lt = s.add(
            LaunchTemplate::new("node")
                .image("ami-12c6146b")
                .instance_type("t3.micro"),
        );
        let asg = Asg::new("workers")
            .launch_template(&lt)
            .subnets(&[&a, &b])
            .size(1, 2, 1)
            .target_group(&tg);
        assert_eq!(
            asg.spec().get("target_group_arns"),
            Some(&Value::List(vec![tg.arn().into()]))
        );
        s.add(asg);
        assert_eq!(problems(&s), Vec::<String>::new());
    }

    #[test]
    fn every_problem_is_reported_at_once_naming_resource_and_field() {
        let mut s = Stack::new("demo");
        let vpc = s.add(Vpc::new("main").cidr("10.0.0.0/16"));
        let a = s.add(
            Subnet::new("a")
                .vpc(&vpc)
                .cidr("10.0.1.0/24")
                .az("us-east-1a"),
        );
        let lb = s.add(LoadBalancer::application("web").subnets(&[&a]));
        s.add(
            TargetGroup::new("app", TargetProtocol::Http, 0)
                .vpc(&vpc)
                .health_check_path("health")
                .thresholds(1, 11)
                .health_check_timing(4, 5)
                .matcher("ok"),
        );
        let mut https = Listener::https("https", &lb, "not-an-arn");
        https = https.ssl_policy("");
        s.add(https);
        let mut plain = Listener::http_redirect("plain", &lb);
        plain.spec_mut().props.remove("default_action");
        s.add(plain);
        s.add(
            LoadBalancer::network("nlb")
                .subnets(&[&a])
                .drop_invalid_header_fields(true),
        );
        let all = problems(&s).join("\n");
        for expected in [
            "aws_lb.web: subnet_ids",
            "aws_lb.web: security_group_ids",
            "aws_lb_target_group.app: port",
            "aws_lb_target_group.app: health_check_path",
            "aws_lb_target_group.app: healthy_threshold",
            "aws_lb_target_group.app: unhealthy_threshold",
            "aws_lb_target_group.app: health_check_interval",
            "aws_lb_target_group.app: matcher",
            "aws_lb_listener.https: certificate_arn",
            "aws_lb_listener.https: ssl_policy",
            "aws_lb_listener.https: default_action",
            "aws_lb_listener.plain: default_action",
            "aws_lb.nlb: drop_invalid_header_fields",
        ] {
            assert!(all.contains(expected), "missing `{expected}` in:\n{all}");
        }
    }
}
