//! The Elastic Load Balancing v2 kinds on moto: a load balancer with an HTTP listener
//! redirecting to HTTPS and an HTTPS listener forwarding to a target group an auto scaling group
//! is attached to. What AWS holds after apply, a health check changed in place, the target
//! group replaced where AWS forces it (its port: create before destroy, the listener and the
//! group moving over), drift, deletion in dependency order, and creates and deletes whose
//! responses are lost or throttled (the fault proxy) converging without a duplicate.
//!
//! moto lets two load balancers share a name and two listeners share a port (AWS refuses
//! both): counting them after a lost response is what shows that no duplicate was made.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_sdk_elasticloadbalancingv2::types::{
    ActionTypeEnum, Listener as AwsListener, LoadBalancer as AwsLoadBalancer,
    TargetGroup as AwsTargetGroup,
};
use infra_aws::*;
use infra_core::dsl::Stack;
use infra_core::engine::Engine;
use infra_core::plan::Action;
use infra_core::reconcile::{ApplyOptions, RetryPolicy};
use infra_test_support::proxy::{FaultConfig, FaultProxy};

use crate::support::{
    action, apply, assert_noop, destroy, endpoint, fields, id_of, moto, plan, unique, Moto,
};

/// An IAM server certificate's ARN: moto checks that an ACM certificate exists, not an IAM one.
const CERT: &str = "arn:aws:iam::123456789012:server-certificate/elb-test";

/// The stack, with the target group as `tg` makes it.
fn build(name: &str, tg: impl FnOnce(TargetGroup) -> TargetGroup) -> Stack {
    let mut s = Stack::new(name);
    let vpc = s.add(Vpc::new("main").cidr("10.40.0.0/16"));
    let a = s.add(
        Subnet::new("a")
            .vpc(&vpc)
            .cidr("10.40.1.0/24")
            .az("us-east-1a")
            .public(true),
    );
    let b = s.add(
        Subnet::new("b")
            .vpc(&vpc)
            .cidr("10.40.2.0/24")
            .az("us-east-1b")
            .public(true),
    );
    let lb_sg = s.add(
        SecurityGroup::new("lb")
            .vpc(&vpc)
            .ingress(Rule::tcp(443).cidr("0.0.0.0/0"))
            .egress_all(),
    );
    let lb = s.add(
        LoadBalancer::application("web")
            .subnets(&[&a, &b])
            .security_group(&lb_sg),
    );
    let app = s.add(tg(TargetGroup::new("app", TargetProtocol::Http, 8080)
        .vpc(&vpc)
        .health_check_path("/health")));
    s.add(Listener::http_redirect("http", &lb));
    s.add(Listener::https("https", &lb, CERT).forward(&app));
    let lt = s.add(
        LaunchTemplate::new("node")
            .image("ami-12c6146b")
            .instance_type("t3.micro"),
    );
    s.add(
        Asg::new("nodes")
            .launch_template(&lt)
            .subnets(&[&a, &b])
            .size(0, 1, 0)
            .target_group(&app),
    );
    s
}

/// Every load balancer of the account named `name` (moto allows several).
async fn lbs_named(m: &Moto, name: &str) -> Vec<AwsLoadBalancer> {
    let all: Vec<AwsLoadBalancer> = m
        .elb
        .describe_load_balancers()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .unwrap();
    all.into_iter()
        .filter(|l| l.load_balancer_name() == Some(name))
        .collect()
}

/// Every target group of the account whose name starts with `prefix`.
async fn tgs_prefixed(m: &Moto, prefix: &str) -> Vec<AwsTargetGroup> {
    let all: Vec<AwsTargetGroup> = m
        .elb
        .describe_target_groups()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .unwrap();
    all.into_iter()
        .filter(|g| g.target_group_name().is_some_and(|n| n.starts_with(prefix)))
        .collect()
}

async fn listeners(m: &Moto, lb_arn: &str) -> Vec<AwsListener> {
    m.elb
        .describe_listeners()
        .load_balancer_arn(lb_arn)
        .send()
        .await
        .unwrap()
        .listeners()
        .to_vec()
}

async fn tags(m: &Moto, arn: &str) -> BTreeMap<String, String> {
    m.elb
        .describe_tags()
        .resource_arns(arn)
        .send()
        .await
        .unwrap()
        .tag_descriptions()
        .iter()
        .flat_map(|d| d.tags())
        .map(|t| {
            (
                t.key().unwrap_or_default().to_string(),
                t.value().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// The target group ARNs of the stack's `nodes` group.
async fn asg_target_groups(m: &Moto, stack: &str) -> Vec<String> {
    m.asg
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(format!("{stack}-nodes"))
        .send()
        .await
        .unwrap()
        .auto_scaling_groups()
        .first()
        .expect("the group")
        .target_group_arns()
        .to_vec()
}

/// Exactly one load balancer, one target group and two listeners of the stack exist, each
/// tagged with the stack and its address.
async fn assert_one_of_each(m: &Moto, stack: &str) -> (AwsLoadBalancer, AwsTargetGroup) {
    let lbs = lbs_named(m, &format!("{stack}-web")).await;
    assert_eq!(lbs.len(), 1, "one load balancer: {lbs:?}");
    let tgs = tgs_prefixed(m, &format!("{stack}-app-")).await;
    assert_eq!(tgs.len(), 1, "one target group: {tgs:?}");
    let lb_arn = lbs[0].load_balancer_arn().unwrap();
    let ls = listeners(m, lb_arn).await;
    assert_eq!(ls.len(), 2, "two listeners: {ls:?}");
    let mut tagged = vec![
        (lb_arn.to_string(), "aws_lb.web".to_string()),
        (
            tgs[0].target_group_arn().unwrap().to_string(),
            "aws_lb_target_group.app".to_string(),
        ),
    ];
    for l in &ls {
        let address = if l.port() == Some(80) {
            "aws_lb_listener.http"
        } else {
            "aws_lb_listener.https"
        };
        tagged.push((l.listener_arn().unwrap().to_string(), address.to_string()));
    }
    for (arn, address) in tagged {
        let t = tags(m, &arn).await;
        assert_eq!(
            t.get("infra:stack").map(String::as_str),
            Some(stack),
            "{arn}: {t:?}"
        );
        assert_eq!(t.get("infra:id"), Some(&address), "{arn}: {t:?}");
    }
    (lbs[0].clone(), tgs[0].clone())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_load_balancer_path_is_created_updated_in_place_replaced_and_deleted_in_order() {
    let Some(m) = moto("elb::a_load_balancer_path_is_created_updated_in_place_replaced").await
    else {
        return;
    };
    let e = m.engine();
    let name = unique("elb");
    let s = build(&name, |tg| tg);
    apply(&e, &s).await;

    // What AWS holds.
    let (lb, tg) = assert_one_of_each(&m, &name).await;
    assert_eq!(lb.scheme().map(|x| x.as_str()), Some("internet-facing"));
    assert_eq!(lb.r#type().map(|x| x.as_str()), Some("application"));
    assert_eq!(lb.availability_zones().len(), 2);
    let lb_sg = id_of(&m, &name, "aws_security_group.lb").await;
    assert_eq!(lb.security_groups(), [lb_sg]);
    let lb_arn = lb.load_balancer_arn().unwrap().to_string();
    let attrs = m
        .elb
        .describe_load_balancer_attributes()
        .load_balancer_arn(&lb_arn)
        .send()
        .await
        .unwrap();
    assert!(
        attrs.attributes().iter().any(|a| {
            a.key() == Some("routing.http.drop_invalid_header_fields.enabled")
                && a.value() == Some("true")
        }),
        "{attrs:?}"
    );
    let vpc = id_of(&m, &name, "aws_vpc.main").await;
    assert_eq!(tg.vpc_id(), Some(vpc.as_str()));
    assert_eq!(tg.port(), Some(8080));
    assert_eq!(tg.protocol().map(|p| p.as_str()), Some("HTTP"));
    assert_eq!(tg.health_check_path(), Some("/health"));
    assert_eq!(tg.health_check_interval_seconds(), Some(30));
    assert_eq!(tg.health_check_timeout_seconds(), Some(5));
    assert_eq!(tg.healthy_threshold_count(), Some(5));
    assert_eq!(tg.unhealthy_threshold_count(), Some(2));
    assert_eq!(tg.matcher().and_then(|m| m.http_code()), Some("200"));
    let tg_arn = tg.target_group_arn().unwrap().to_string();
    for l in listeners(&m, &lb_arn).await {
        let a = &l.default_actions()[0];
        match l.port() {
            Some(80) => {
                assert_eq!(l.protocol().map(|p| p.as_str()), Some("HTTP"));
                assert_eq!(a.r#type(), Some(&ActionTypeEnum::Redirect));
                let r = a.redirect_config().unwrap();
                assert_eq!(r.protocol(), Some("HTTPS"));
                assert_eq!(r.port(), Some("443"));
                assert_eq!(r.status_code().map(|c| c.as_str()), Some("HTTP_301"));
            }
            Some(443) => {
                assert_eq!(l.protocol().map(|p| p.as_str()), Some("HTTPS"));
                assert_eq!(l.ssl_policy(), Some(DEFAULT_SSL_POLICY));
                assert_eq!(l.certificates()[0].certificate_arn(), Some(CERT));
                assert_eq!(a.r#type(), Some(&ActionTypeEnum::Forward));
                assert_eq!(a.target_group_arn(), Some(tg_arn.as_str()));
            }
            other => panic!("unexpected listener port {other:?}"),
        }
    }
    assert_eq!(asg_target_groups(&m, &name).await, [tg_arn.as_str()]);
    assert_noop(&e, &s, "after create").await;

    // The health check changes in place: same target group.
    let s = build(&name, |tg| {
        tg.health_check_path("/ready")
            .health_check_timing(15, 6)
            .thresholds(3, 4)
            .matcher("200-299")
    });
    let p = plan(&e, &s).await;
    assert_eq!(action(&p, "aws_lb_target_group.app"), Action::Update);
    assert_eq!(
        p.plan.actionable().count(),
        1,
        "only the target group changes"
    );
    apply(&e, &s).await;
    let (_, tg) = assert_one_of_each(&m, &name).await;
    assert_eq!(tg.target_group_arn(), Some(tg_arn.as_str()));
    assert_eq!(tg.health_check_path(), Some("/ready"));
    assert_eq!(tg.health_check_interval_seconds(), Some(15));
    assert_eq!(tg.health_check_timeout_seconds(), Some(6));
    assert_eq!(tg.healthy_threshold_count(), Some(3));
    assert_eq!(tg.unhealthy_threshold_count(), Some(4));
    assert_eq!(tg.matcher().and_then(|m| m.http_code()), Some("200-299"));
    assert_noop(&e, &s, "after the health check update").await;

    // The port can't change in AWS: a new group beside the old one, the listener and the auto
    // scaling group move to it, then the old one goes.
    let replaced = |tg: TargetGroup| {
        tg.health_check_path("/ready")
            .health_check_timing(15, 6)
            .thresholds(3, 4)
            .matcher("200-299")
    };
    let s = build(&name, |tg| {
        let mut tg = replaced(tg);
        infra_core::dsl::Resource::spec_mut(&mut tg).set("port", 8081);
        tg
    });
    let p = plan(&e, &s).await;
    assert_eq!(
        action(&p, "aws_lb_target_group.app"),
        Action::CreateThenDelete
    );
    assert_eq!(action(&p, "aws_lb_listener.https"), Action::Update);
    assert_eq!(action(&p, "aws_autoscaling_group.nodes"), Action::Update);
    apply(&e, &s).await;
    let (lb, tg) = assert_one_of_each(&m, &name).await;
    let new_arn = tg.target_group_arn().unwrap().to_string();
    assert_ne!(new_arn, tg_arn, "a new target group");
    assert_eq!(tg.port(), Some(8081));
    let https = listeners(&m, lb.load_balancer_arn().unwrap())
        .await
        .into_iter()
        .find(|l| l.port() == Some(443))
        .unwrap();
    assert_eq!(
        https.default_actions()[0].target_group_arn(),
        Some(new_arn.as_str())
    );
    assert_eq!(asg_target_groups(&m, &name).await, [new_arn.as_str()]);
    assert_noop(&e, &s, "after the replacement").await;

    // Drift: a health check path, a TLS policy and a load balancer attribute changed by hand.
    m.elb
        .modify_target_group()
        .target_group_arn(&new_arn)
        .health_check_path("/by-hand")
        .send()
        .await
        .unwrap();
    m.elb
        .modify_listener()
        .listener_arn(https.listener_arn().unwrap())
        .ssl_policy("ELBSecurityPolicy-TLS13-1-2-Res-2021-06")
        .send()
        .await
        .unwrap();
    m.elb
        .modify_load_balancer_attributes()
        .load_balancer_arn(lb.load_balancer_arn().unwrap())
        .attributes(
            aws_sdk_elasticloadbalancingv2::types::LoadBalancerAttribute::builder()
                .key("routing.http.drop_invalid_header_fields.enabled")
                .value("false")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let p = plan(&e, &s).await;
    assert_eq!(action(&p, "aws_lb_target_group.app"), Action::Update);
    assert_eq!(fields(&p, "aws_lb_target_group.app"), ["health_check_path"]);
    assert_eq!(action(&p, "aws_lb_listener.https"), Action::Update);
    assert_eq!(fields(&p, "aws_lb_listener.https"), ["ssl_policy"]);
    assert_eq!(action(&p, "aws_lb.web"), Action::Update);
    assert_eq!(fields(&p, "aws_lb.web"), ["drop_invalid_header_fields"]);
    apply(&e, &s).await;
    assert_noop(&e, &s, "after correcting the drift").await;

    // Delete in order: listeners before the target group (AWS, and moto, refuse to delete a
    // target group a listener forwards to) and the load balancer; nothing is left.
    destroy(&m, &e, &s).await;
    assert!(lbs_named(&m, &format!("{name}-web")).await.is_empty());
    assert!(tgs_prefixed(&m, &format!("{name}-app-")).await.is_empty());
}

/// An engine whose provider reaches moto through `proxy`, applying one operation at a time
/// (so that [`each_faulted_once`] sees each action's first fault before the next action runs).
async fn engine_through(proxy: &FaultProxy) -> Engine {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(proxy.url())
        .region(aws_config::Region::new("us-east-1"))
        .test_credentials()
        .load()
        .await;
    let provider = AwsProvider::from_sdk_config(&config)
        .expect("region")
        .with_wait_timeout(Duration::from_secs(60))
        .with_max_poll_interval(Duration::from_millis(200));
    Engine::new()
        .with_provider_arc(Arc::new(provider))
        .with_options(ApplyOptions {
            concurrency: 1,
            retry: RetryPolicy {
                max_attempts: 10,
                base_delay: Duration::from_millis(50),
                max_delay: Duration::from_millis(200),
            },
            ..ApplyOptions::default()
        })
}

const CREATES: [&str; 3] = ["CreateLoadBalancer", "CreateTargetGroup", "CreateListener"];
const DELETES: [&str; 3] = ["DeleteLoadBalancer", "DeleteTargetGroup", "DeleteListener"];

fn only(actions: &[&str]) -> Option<Vec<String>> {
    Some(actions.iter().map(|a| a.to_string()).collect())
}

/// Runs `work` while the proxy injects `fault` (a config for the listed actions) into each of
/// `actions` until that action has had one fault: every action is hit at least once, and its
/// retries go through (a retried delete calls the API again, so a fault on every call would
/// never let it finish).
async fn each_faulted_once<F: std::future::Future>(
    proxy: &FaultProxy,
    fault: fn(Option<Vec<String>>) -> FaultConfig,
    actions: &[&str],
    work: F,
) -> F::Output {
    let done = AtomicBool::new(false);
    let watch = async {
        let mut remaining: Vec<&str> = actions.to_vec();
        proxy.set_config(fault(only(&remaining)));
        while !remaining.is_empty() && !done.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(2)).await;
            let stats = proxy.stats();
            let left: Vec<&str> = remaining
                .iter()
                .copied()
                .filter(|a| stats.action(a).faults() == 0)
                .collect();
            if left != remaining {
                remaining = left;
                proxy.set_config(if remaining.is_empty() {
                    FaultConfig::transparent()
                } else {
                    fault(only(&remaining))
                });
            }
        }
    };
    let work = async {
        let out = work.await;
        done.store(true, Ordering::SeqCst);
        out
    };
    tokio::join!(work, watch).0
}

fn lost(actions: Option<Vec<String>>) -> FaultConfig {
    FaultConfig {
        lost_response_rate: 1.0,
        only_actions: actions,
        ..FaultConfig::transparent()
    }
}

fn throttled(actions: Option<Vec<String>>) -> FaultConfig {
    FaultConfig {
        throttle_rate: 1.0,
        only_actions: actions,
        ..FaultConfig::transparent()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn lost_create_and_delete_responses_converge_without_a_duplicate() {
    let Some(m) = moto("elb::lost_create_and_delete_responses_converge").await else {
        return;
    };
    // Every create's response is lost (the object is made, the client hears nothing): the
    // retry looks the object up by its tags first and finds it instead of making a second one,
    // so no create is ever sent twice.
    let proxy = FaultProxy::start(&endpoint(), lost(only(&CREATES)))
        .await
        .unwrap();
    let e = engine_through(&proxy).await;
    let name = unique("elblost");
    let s = build(&name, |tg| tg);
    apply(&e, &s).await;
    let stats = proxy.stats();
    for a in CREATES {
        assert!(
            stats.action(a).lost_responses >= 1,
            "{a}: {:?}",
            stats.action(a)
        );
    }
    assert_eq!(
        stats.action("CreateLoadBalancer").forwarded,
        1,
        "created once"
    );
    assert_eq!(
        stats.action("CreateTargetGroup").forwarded,
        1,
        "created once"
    );
    assert_eq!(
        stats.action("CreateListener").forwarded,
        2,
        "each created once"
    );
    assert_one_of_each(&m, &name).await;
    assert_noop(&m.engine(), &s, "after the lost creates").await;

    // A delete's response is lost: the retry finds the object gone and moves on.
    each_faulted_once(&proxy, lost, &DELETES, destroy(&m, &e, &s)).await;
    let stats = proxy.stats();
    for a in DELETES {
        assert!(
            stats.action(a).lost_responses >= 1,
            "{a}: {:?}",
            stats.action(a)
        );
    }
    assert!(lbs_named(&m, &format!("{name}-web")).await.is_empty());
    assert!(tgs_prefixed(&m, &format!("{name}-app-")).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn throttled_creates_and_deletes_are_retried_to_convergence() {
    let Some(m) = moto("elb::throttled_creates_and_deletes_are_retried").await else {
        return;
    };
    let proxy = FaultProxy::start(&endpoint(), FaultConfig::transparent())
        .await
        .unwrap();
    let e = engine_through(&proxy).await;
    let name = unique("elbthr");
    let s = build(&name, |tg| tg);
    each_faulted_once(&proxy, throttled, &CREATES, apply(&e, &s)).await;
    let stats = proxy.stats();
    for a in CREATES {
        assert!(stats.action(a).throttled >= 1, "{a}: {:?}", stats.action(a));
    }
    assert_one_of_each(&m, &name).await;
    assert_noop(&m.engine(), &s, "after the throttled creates").await;

    each_faulted_once(&proxy, throttled, &DELETES, destroy(&m, &e, &s)).await;
    let stats = proxy.stats();
    for a in DELETES {
        assert!(stats.action(a).throttled >= 1, "{a}: {:?}", stats.action(a));
    }
    assert!(lbs_named(&m, &format!("{name}-web")).await.is_empty());
    assert!(tgs_prefixed(&m, &format!("{name}-app-")).await.is_empty());
}
