//! Import of the ELBv2 and SSM kinds (the serverless ones: `import_serverless.rs`): objects
//! made by hand with the SDK are discovered after what they refer to, with the props a read gives and the exact
//! builder chains; `read_unowned` + `adopt` make the owned read find them with their other tags
//! untouched. A `SecureString`'s value never reaches the generated text.
//!
//! moto is shared with other tests: every object's name starts with a unique prefix and every
//! discovery is narrowed by it.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::ResourceType;
use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, FixedResponseActionConfig, LoadBalancerSchemeEnum,
    LoadBalancerTypeEnum, Matcher, ProtocolEnum, RedirectActionConfig,
    RedirectActionStatusCodeEnum, Tag as ElbTag,
};
use aws_sdk_ssm::types::{ParameterType, ResourceTypeForTagging, Tag as SsmTag};
use infra_core::dsl::Address;
use infra_core::import::Found;
use infra_core::provider::{OpContext, Provider};

use crate::import::{by_id, discover, generate, objects, position, prefix_filter, s};
use crate::support::{moto, unique, Moto};

/// The ids of what [`elb_and_ssm_by_hand`] made.
#[derive(Debug, Default)]
struct Hand {
    vpc: String,
    subnet_a: String,
    subnet_b: String,
    group: String,
    tg: String,
    lb: String,
    forward: String,
    redirect: String,
    fixed: String,
    url: String,
    hosts: String,
    pass: String,
    owned: String,
}

fn ec2_tags(rt: ResourceType, name: &str) -> aws_sdk_ec2::types::TagSpecification {
    aws_sdk_ec2::types::TagSpecification::builder()
        .resource_type(rt)
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key("Name")
                .value(name)
                .build(),
        )
        .build()
}

fn ssm_tag(k: &str, v: &str) -> SsmTag {
    SsmTag::builder().key(k).value(v).build().unwrap()
}

/// A VPC with two subnets and a group; a target group, an application load balancer and three
/// listeners on it (a forward, a redirect to HTTPS, a fixed response); three SSM parameters
/// (String, StringList, SecureString) and one another stack owns. All named `<p>-…`.
async fn elb_and_ssm_by_hand(m: &Moto, p: &str, team: &str, secret: &str) -> Hand {
    let n = |s: &str| format!("{p}-{s}");
    let mut h = Hand::default();
    let vpc = m
        .ec2
        .create_vpc()
        .cidr_block("10.62.0.0/16")
        .tag_specifications(ec2_tags(ResourceType::Vpc, &n("net")))
        .send()
        .await
        .expect("CreateVpc");
    h.vpc = vpc.vpc().unwrap().vpc_id().unwrap().to_string();
    for (cidr, az, name) in [
        ("10.62.1.0/24", "us-east-1a", "a"),
        ("10.62.2.0/24", "us-east-1b", "b"),
    ] {
        let s = m
            .ec2
            .create_subnet()
            .vpc_id(&h.vpc)
            .cidr_block(cidr)
            .availability_zone(az)
            .tag_specifications(ec2_tags(ResourceType::Subnet, &n(name)))
            .send()
            .await
            .expect("CreateSubnet");
        let id = s.subnet().unwrap().subnet_id().unwrap().to_string();
        if name == "a" {
            h.subnet_a = id;
        } else {
            h.subnet_b = id;
        }
    }
    h.group = m
        .ec2
        .create_security_group()
        .group_name(n("lb"))
        .description("lb")
        .vpc_id(&h.vpc)
        .tag_specifications(ec2_tags(ResourceType::SecurityGroup, &n("lb")))
        .send()
        .await
        .expect("CreateSecurityGroup")
        .group_id()
        .unwrap()
        .to_string();
    let team_tag = ElbTag::builder().key("team").value(team).build();
    h.tg = m
        .elb
        .create_target_group()
        .name(n("app"))
        .protocol(ProtocolEnum::Http)
        .port(8080)
        .vpc_id(&h.vpc)
        .health_check_protocol(ProtocolEnum::Http)
        .health_check_path("/health")
        .health_check_interval_seconds(15)
        .health_check_timeout_seconds(5)
        .healthy_threshold_count(3)
        .unhealthy_threshold_count(2)
        .matcher(Matcher::builder().http_code("200-299").build())
        .tags(team_tag.clone())
        .send()
        .await
        .expect("CreateTargetGroup")
        .target_groups()[0]
        .target_group_arn()
        .unwrap()
        .to_string();
    h.lb = m
        .elb
        .create_load_balancer()
        .name(n("web"))
        .r#type(LoadBalancerTypeEnum::Application)
        .scheme(LoadBalancerSchemeEnum::InternetFacing)
        .subnets(&h.subnet_a)
        .subnets(&h.subnet_b)
        .security_groups(&h.group)
        .tags(team_tag.clone())
        .send()
        .await
        .expect("CreateLoadBalancer")
        .load_balancers()[0]
        .load_balancer_arn()
        .unwrap()
        .to_string();
    let listener = |port: i32, action: Action| {
        m.elb
            .create_listener()
            .load_balancer_arn(&h.lb)
            .protocol(ProtocolEnum::Http)
            .port(port)
            .default_actions(action)
            .send()
    };
    let arn =
        |o: aws_sdk_elasticloadbalancingv2::operation::create_listener::CreateListenerOutput| {
            o.listeners()[0].listener_arn().unwrap().to_string()
        };
    h.forward = arn(listener(
        80,
        Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .target_group_arn(&h.tg)
            .build(),
    )
    .await
    .expect("CreateListener forward"));
    m.elb
        .add_tags()
        .resource_arns(&h.forward)
        .tags(team_tag.clone())
        .send()
        .await
        .expect("AddTags listener");
    h.redirect = arn(listener(
        8081,
        Action::builder()
            .r#type(ActionTypeEnum::Redirect)
            .redirect_config(
                RedirectActionConfig::builder()
                    .protocol("HTTPS")
                    .port("443")
                    .status_code(RedirectActionStatusCodeEnum::Http301)
                    .build(),
            )
            .build(),
    )
    .await
    .expect("CreateListener redirect"));
    h.fixed = arn(listener(
        8082,
        Action::builder()
            .r#type(ActionTypeEnum::FixedResponse)
            .fixed_response_config(
                FixedResponseActionConfig::builder()
                    .status_code("200")
                    .content_type("text/plain")
                    .build(),
            )
            .build(),
    )
    .await
    .expect("CreateListener fixed"));

    h.url = n("url");
    h.hosts = n("hosts");
    h.pass = n("pass");
    h.owned = n("owned");
    let put = |name: &str, value: &str, kind: ParameterType| {
        m.ssm.put_parameter().name(name).value(value).r#type(kind)
    };
    put(&h.url, "https://example.test/x", ParameterType::String)
        .tags(ssm_tag("team", team))
        .send()
        .await
        .expect("PutParameter url");
    put(&h.hosts, "a,b", ParameterType::StringList)
        .send()
        .await
        .expect("PutParameter hosts");
    put(&h.pass, secret, ParameterType::SecureString)
        .description("db password")
        .tags(ssm_tag("team", team))
        .send()
        .await
        .expect("PutParameter pass");
    put(&h.owned, "x", ParameterType::String)
        .tags(ssm_tag("infra:stack", "someone-else"))
        .tags(ssm_tag("infra:id", "aws_ssm_parameter.x"))
        .send()
        .await
        .expect("PutParameter owned");
    h
}

#[tokio::test(flavor = "multi_thread")]
async fn elb_and_ssm_objects_are_discovered_after_what_they_refer_to_with_their_code() {
    let Some(m) =
        moto("elb_and_ssm_objects_are_discovered_after_what_they_refer_to_with_their_code").await
    else {
        return;
    };
    let p = unique("imq");
    let team = unique("team");
    let secret = unique("hunter2");
    let h = elb_and_ssm_by_hand(&m, &p, &team, &secret).await;
    let found = discover(&m, &prefix_filter(&p, Some(&h.vpc))).await;

    // Order: what an object refers to comes first.
    let at = |id: &str| position(&found, id);
    assert!(at(&h.vpc) < at(&h.tg) && at(&h.subnet_a) < at(&h.lb) && at(&h.group) < at(&h.lb));
    assert!(at(&h.tg) < at(&h.forward) && at(&h.lb) < at(&h.forward));
    assert!(at(&h.lb) < at(&h.redirect));

    // Props as a read gives them.
    let lb = by_id(&found, &h.lb);
    assert_eq!(lb.name, format!("{p}-web"));
    assert_eq!(s(lb, "type").as_deref(), Some("application"));
    assert_eq!(s(lb, "scheme").as_deref(), Some("internet-facing"));
    let tg = by_id(&found, &h.tg);
    assert_eq!(s(tg, "vpc_id"), Some(h.vpc.clone()));
    assert_eq!(s(tg, "matcher").as_deref(), Some("200-299"));
    let fwd = by_id(&found, &h.forward);
    assert_eq!(fwd.name, format!("{p}-web-80"));
    assert_eq!(s(fwd, "load_balancer_arn"), Some(h.lb.clone()));
    let url = by_id(&found, &h.url);
    assert_eq!(s(url, "value").as_deref(), Some("https://example.test/x"));
    let pass = by_id(&found, &h.pass);
    assert!(
        !pass.props.contains_key("secure_value") && !pass.props.contains_key("value"),
        "a SecureString's value is never read: {pass:?}"
    );
    assert!(!format!("{found:?}").contains(&secret), "the secret leaked");

    // The fixed-response listener is listed, with the reason; the other stack's parameter isn't.
    let fixed = found.iter().find_map(|f| match f {
        Found::Inexpressible { what, id, reason } if *id == h.fixed => Some((what, reason)),
        _ => None,
    });
    let (what, reason) = fixed.expect("the fixed-response listener is listed");
    assert_eq!(what, "ELBv2 listener");
    assert!(reason.contains("fixed-response"), "{reason}");
    assert!(!objects(&found).iter().any(|d| d.id == h.owned));
    // The kinds built here are no longer "not built yet".
    for kind in [
        "aws_lb",
        "aws_lb_target_group",
        "aws_lb_listener",
        "aws_ssm_parameter",
    ] {
        assert!(
            !found.iter().any(|f| matches!(f,
                Found::Inexpressible { what, .. } if what == &format!("{kind} objects"))),
            "{kind} still listed as not built"
        );
    }

    // Filters: another VPC leaves the load balancer, its listeners and the target group out
    // (SSM parameters are in no VPC); a tag keeps only what carries it.
    let other = discover(&m, &prefix_filter(&p, Some("vpc-00000000"))).await;
    for id in [&h.lb, &h.tg, &h.forward, &h.redirect, &h.fixed] {
        assert!(
            !other.iter().any(|f| match f {
                Found::Object(d) => &d.id == id,
                Found::Inexpressible { id: i, .. } => i == id,
                _ => false,
            }),
            "{id} found outside its VPC"
        );
    }
    by_id(&other, &h.url);
    let mut tagged = prefix_filter(&p, None);
    tagged.tags.insert("team".to_string(), team.clone());
    let tagged = discover(&m, &tagged).await;
    let ids: Vec<&str> = objects(&tagged).iter().map(|d| d.id.as_str()).collect();
    for id in [&h.lb, &h.tg, &h.forward, &h.url, &h.pass] {
        assert!(
            ids.contains(&id.as_str()),
            "{id} not found by its tag: {ids:?}"
        );
    }
    for id in [&h.redirect, &h.hosts, &h.vpc] {
        assert!(!ids.contains(&id.as_str()), "{id} found without the tag");
    }

    // The exact generated chains, with typed references.
    let code = generate(&found);
    let text = code.values().cloned().collect::<Vec<_>>().join("\n");
    assert!(!text.contains(&secret), "the secret is in the module");
    let mut subnets = [(&h.subnet_a, "&subnet_a"), (&h.subnet_b, "&subnet_b")];
    subnets.sort();
    assert_eq!(
        code[&h.lb],
        format!(
            "LoadBalancer::application(\"lb_web\").subnets(&[{}, {}])\
             .security_group(&security_group_lb).drop_invalid_header_fields(false)\
             .tag(\"team\", \"{team}\")",
            subnets[0].1, subnets[1].1
        )
    );
    assert_eq!(
        code[&h.tg],
        format!(
            "TargetGroup::new(\"lb_target_group_app\", infra::aws::TargetProtocol::Http, 8080)\
             .vpc(&vpc_net).health_check_path(\"/health\").health_check_timing(15, 5)\
             .thresholds(3, 2).matcher(\"200-299\").tag(\"team\", \"{team}\")"
        )
    );
    assert_eq!(
        code[&h.forward],
        format!(
            "Listener::http(\"lb_listener_80\", &lb_web, 80).forward(&lb_target_group_app)\
             .tag(\"team\", \"{team}\")"
        )
    );
    assert_eq!(
        code[&h.redirect],
        "Listener::http(\"lb_listener_8081\", &lb_web, 8081).redirect_to_https(443)"
    );
    assert_eq!(
        code[&h.url],
        format!(
            "SsmParameter::string(\"ssm_parameter_url\", \"{p}-url\")\
             .value(\"https://example.test/x\").tag(\"team\", \"{team}\")"
        )
    );
    assert_eq!(
        code[&h.hosts],
        format!("SsmParameter::string_list(\"ssm_parameter_hosts\", \"{p}-hosts\").values([\"a\", \"b\"])")
    );
    assert_eq!(
        code[&h.pass],
        format!(
            "// its value is a secret and was not read: set `INFRA_SECRET_SSM_PARAMETER_PASS` \
             to the value of `{p}-pass` when planning\n\
             // `ignore_changes` keeps the adopted value, which import can't compare; remove it \
             to overwrite the parameter with the declared value\n\
             SsmParameter::secure_string(\"ssm_parameter_pass\", \"{p}-pass\")\
             .from_env(\"INFRA_SECRET_SSM_PARAMETER_PASS\").description(\"db password\")\
             .tag(\"team\", \"{team}\").ignore_changes(&[\"secure_value\"])"
        )
    );
}

/// The chains asserted above, as a user's crate would compile them (the builders' signatures).
#[allow(dead_code)]
fn generated_chains_compile(stack: &mut infra_core::Stack) {
    use infra_aws::{
        Listener, LoadBalancer, SecurityGroup, SsmParameter, Subnet, TargetGroup, Vpc,
    };
    use infra_core::dsl::Resource;
    let vpc_net = stack.add(Vpc::new("net"));
    let subnet_a = stack.add(Subnet::new("a"));
    let subnet_b = stack.add(Subnet::new("b"));
    let security_group_lb = stack.add(SecurityGroup::new("lb"));
    let lb_web = stack.add(
        LoadBalancer::application("lb_web")
            .subnets(&[&subnet_a, &subnet_b])
            .security_group(&security_group_lb)
            .drop_invalid_header_fields(false)
            .tag("team", "t"),
    );
    let lb_target_group_app = stack.add(
        TargetGroup::new("lb_target_group_app", infra_aws::TargetProtocol::Http, 8080)
            .vpc(&vpc_net)
            .health_check_path("/health")
            .health_check_timing(15, 5)
            .thresholds(3, 2)
            .matcher("200-299")
            .tag("team", "t"),
    );
    stack.add(Listener::http("lb_listener_80", &lb_web, 80).forward(&lb_target_group_app));
    stack.add(Listener::http("lb_listener_8081", &lb_web, 8081).redirect_to_https(443));
    let iam_role_fnrole = stack.add(infra_aws::IamRole::new("fnrole"));
    let lambda_function_hook = stack.add(
        infra_aws::LambdaFunction::new("lambda_function_hook")
            .code(infra_aws::LambdaCode::zip_file("lambda/x.zip"))
            .role(infra_aws::IamRoleOutputs::arn(&iam_role_fnrole))
            .memory_mb(256)
            .timeout(std::time::Duration::from_secs(10))
            .env("MODE", "fast")
            .secret_env_from_env("API_TOKEN", "INFRA_SECRET_X")
            .tag("team", "t"),
    );
    stack.add(
        infra_aws::LambdaPermission::new("lambda_permission_events")
            .function(infra_aws::LambdaFunctionOutputs::name(
                &lambda_function_hook,
            ))
            .principal("events.amazonaws.com")
            .source_arn::<()>("arn:aws:events:us-east-1:123456789012:rule/nightly"),
    );
    stack.add(
        infra_aws::HttpApi::new("apigatewayv2_api_api")
            .route(
                "POST /events",
                &lambda_function_hook,
                infra_aws::RouteAuth::AwsIam,
            )
            .timeout(std::time::Duration::from_millis(10000))
            .tag("team", "t"),
    );
    stack.add(
        infra_aws::EventRule::new("cloudwatch_event_rule_ec2events")
            .event_pattern(
                serde_json::from_str(r#"{"source":["aws.ec2"]}"#)
                    .expect("the imported event pattern"),
            )
            .target("hook", &lambda_function_hook)
            .tag("team", "t"),
    );
    stack.add(SsmParameter::string("u", "/u").value("x").tag("team", "t"));
    stack.add(SsmParameter::string_list("h", "/h").values(["a", "b"]));
    stack.add(
        SsmParameter::secure_string("p", "/p")
            .from_env("INFRA_SECRET_P")
            .description("d")
            .tag("team", "t")
            .ignore_changes(&["secure_value"]),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn adopted_elb_and_ssm_objects_are_read_as_the_stacks_with_their_other_tags() {
    let Some(m) =
        moto("adopted_elb_and_ssm_objects_are_read_as_the_stacks_with_their_other_tags").await
    else {
        return;
    };
    let p = unique("imr");
    let team = unique("team");
    let secret = unique("hunter2");
    let h = elb_and_ssm_by_hand(&m, &p, &team, &secret).await;
    let stack = unique("adopter");
    let op = OpContext {
        stack: stack.clone(),
        idempotency_token: "t".into(),
        attempt: 1,
    };
    let adopt = [
        ("aws_lb_target_group", h.tg.clone(), "app"),
        ("aws_lb", h.lb.clone(), "web"),
        ("aws_lb_listener", h.forward.clone(), "http"),
        ("aws_ssm_parameter", h.url.clone(), "url"),
        ("aws_ssm_parameter", h.pass.clone(), "pass"),
    ];
    let schemas = infra_aws::kinds::schemas();
    for (kind, id, name) in &adopt {
        let schema = *schemas.iter().find(|s| s.kind == *kind).unwrap();
        let address = Address::new(*kind, *name);
        let current = m
            .provider
            .read_unowned(schema, id, &address)
            .await
            .expect("read_unowned")
            .unwrap_or_else(|| panic!("{kind} {id} not found"));
        assert_eq!(current.address, address);
        assert!(
            !format!("{current:?}").contains(&secret),
            "the secret leaked"
        );
        let adopted = m
            .provider
            .adopt(&op, &current, &address)
            .await
            .expect("adopt");
        assert_eq!(
            adopted.props, current.props,
            "{kind}: adoption changed nothing else"
        );
    }
    let read = m.provider.read(&stack).await.expect("read");
    for (kind, id, name) in &adopt {
        let o = read
            .resources
            .iter()
            .find(|o| o.address == Address::new(*kind, *name))
            .unwrap_or_else(|| panic!("{kind}.{name} not read as the stack's: {read:#?}"));
        assert_eq!(&o.id, id);
    }
    // Other tags untouched.
    let t = m
        .elb
        .describe_tags()
        .resource_arns(&h.lb)
        .send()
        .await
        .unwrap();
    let t: BTreeMap<&str, &str> = t.tag_descriptions()[0]
        .tags()
        .iter()
        .map(|t| (t.key().unwrap(), t.value().unwrap()))
        .collect();
    assert_eq!(t.get("team"), Some(&team.as_str()));
    assert_eq!(t.get("infra:stack"), Some(&stack.as_str()));
    assert_eq!(t.get("infra:id"), Some(&"aws_lb.web"));
    let t = m
        .ssm
        .list_tags_for_resource()
        .resource_type(ResourceTypeForTagging::Parameter)
        .resource_id(&h.pass)
        .send()
        .await
        .unwrap();
    let t: BTreeMap<&str, &str> = t.tag_list().iter().map(|t| (t.key(), t.value())).collect();
    assert_eq!(t.get("team"), Some(&team.as_str()));
    assert_eq!(t.get("infra:id"), Some(&"aws_ssm_parameter.pass"));
    // The secret's value is as it was.
    let v = m
        .ssm
        .get_parameter()
        .name(&h.pass)
        .with_decryption(true)
        .send()
        .await
        .unwrap();
    assert_eq!(v.parameter().unwrap().value(), Some(secret.as_str()));

    // Adopted objects are no longer discovered; the rest still are.
    let found = discover(&m, &prefix_filter(&p, Some(&h.vpc))).await;
    for (kind, id, _) in &adopt {
        assert!(
            !objects(&found).iter().any(|d| &d.id == id),
            "{kind} {id} discovered after adoption"
        );
    }
    // The redirect listener's load balancer is now the stack's: its listeners are not listed.
    by_id(&found, &h.hosts);
}
