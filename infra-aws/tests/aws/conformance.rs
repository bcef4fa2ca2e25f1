//! The core's provider conformance suite, run against the AWS provider on moto, and the same
//! case against the sandbox serving the AWS kinds (what `--target sandbox` runs).

use std::sync::Arc;
use std::time::Duration;

use infra_aws::*;
use infra_core::conformance::{run, Case};
use infra_core::dsl::Stack;
use infra_core::sandbox::SandboxProvider;

use crate::serverless::zip_with;
use crate::support::{moto, unique};

/// The code zips of the case's function (`v1`, `v2`), made once per stack name.
fn function_zip(stack: &str, version: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("infra-conformance-{stack}"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{version}.zip"));
    if path.exists() {
        path
    } else {
        zip_with(&dir, version, &format!("#!/bin/sh\necho {version}\n"))
    }
}

fn build(name: &str) -> Stack {
    let mut s = Stack::new(name);
    let vpc = s.add(
        Vpc::new("main")
            .cidr("10.20.0.0/16")
            .tag("suite", "conformance"),
    );
    let a = s.add(
        Subnet::new("a")
            .vpc(&vpc)
            .cidr("10.20.1.0/24")
            .az("us-east-1a"),
    );
    let web = s.add(
        SecurityGroup::new("web")
            .vpc(&vpc)
            .ingress(Rule::tcp(443).cidr("0.0.0.0/0"))
            .egress_all(),
    );
    let b = s.add(
        Subnet::new("b")
            .vpc(&vpc)
            .cidr("10.20.3.0/24")
            .az("us-east-1b"),
    );
    let lt = s.add(
        LaunchTemplate::new("node")
            .image("ami-12c6146b")
            .instance_type("t3.micro"),
    );
    let lb = s.add(
        LoadBalancer::application("web")
            .subnets(&[&a, &b])
            .security_group(&web)
            .tag("suite", "conformance"),
    );
    let app = s.add(
        TargetGroup::new("app", TargetProtocol::Http, 8080)
            .vpc(&vpc)
            .health_check_path("/health"),
    );
    s.add(Listener::http_redirect("http", &lb));
    s.add(
        Listener::https(
            "https",
            &lb,
            "arn:aws:iam::123456789012:server-certificate/conformance",
        )
        .forward(&app),
    );
    let nodes = s.add(
        Asg::new("nodes")
            .launch_template(&lt)
            .subnets(&[&b])
            .target_group(&app)
            .size(0, 1, 0),
    );
    s.add(
        LifecycleHook::on_terminate("nodes-drain")
            .asg(&nodes)
            .heartbeat(Duration::from_secs(300)),
    );
    s.add(
        SsmParameter::secure_string("token", &format!("/infra/{name}/token"))
            .value("conformance-secret-1")
            .tag("suite", "conformance"),
    );
    s.add(
        IamPolicy::new("read").document(
            PolicyDocument::new().statement(
                Statement::allow()
                    .actions(["ec2:DescribeInstances"])
                    .resources(["*"]),
            ),
        ),
    );
    let role = s.add(IamRole::new("fn").assumed_by_service("lambda.amazonaws.com"));
    let f = s.add(
        LambdaFunction::new("fn")
            .code(LambdaCode::zip_file(function_zip(name, "v1")))
            .role(role.arn())
            .env("SUITE", "conformance")
            .secret_env("TOKEN", "conformance-secret-1"),
    );
    let api = s.add(HttpApi::new("api").route("POST /events", &f, RouteAuth::AwsIam));
    s.add(
        LambdaPermission::new("fn-from-api")
            .function(f.name())
            .principal("apigateway.amazonaws.com")
            .source_arn(api.source_arn()),
    );
    let rule = s.add(
        EventRule::new("nodes")
            .asg_instance_events(&[&nodes])
            .target("fn", &f),
    );
    s.add(
        LambdaPermission::new("fn-from-rule")
            .function(f.name())
            .principal("events.amazonaws.com")
            .source_arn(rule.arn()),
    );
    s
}

/// Removes the zips of the suite's two stacks (`<prefix>-a`, `<prefix>-b`).
fn remove_zips(prefix: &str) {
    for stack in ["a", "b"] {
        let _ = std::fs::remove_dir_all(
            std::env::temp_dir().join(format!("infra-conformance-{prefix}-{stack}")),
        );
    }
}

/// The case: in-place updates of a rule, a tag, a secret's value, a hook's heartbeat, a target
/// group's health check, a listener's TLS policy, a function's code and memory and an API
/// route's timeout; replacements of a subnet, of a parameter (its name) and of a target group
/// (its port: create before destroy, the listener and the auto scaling group moving to the new
/// group).
fn case() -> Case {
    Case {
        build: Box::new(build),
        update: Box::new(|s: &mut Stack| {
            let a: infra_core::Address = "aws_security_group.web".parse().unwrap();
            let spec = s.get_mut(&a).unwrap();
            let mut rules = spec.get("ingress").unwrap().as_list().unwrap().to_vec();
            rules.push(infra_core::map! { "protocol" => "tcp", "from_port" => 80, "to_port" => 80, "cidr" => "0.0.0.0/0" });
            spec.set("ingress", infra_core::Value::List(rules));
            let v: infra_core::Address = "aws_vpc.main".parse().unwrap();
            s.get_mut(&v).unwrap().insert("tags", "suite", "updated");
            let t: infra_core::Address = "aws_ssm_parameter.token".parse().unwrap();
            s.get_mut(&t).unwrap().set(
                "secure_value",
                infra_core::Value::Sensitive(infra_core::value::Sensitive::new(
                    "conformance-secret-2",
                )),
            );
            let h: infra_core::Address = "aws_autoscaling_lifecycle_hook.nodes-drain"
                .parse()
                .unwrap();
            s.get_mut(&h).unwrap().set("heartbeat_timeout", 60);
            let tg: infra_core::Address = "aws_lb_target_group.app".parse().unwrap();
            s.get_mut(&tg)
                .unwrap()
                .set("health_check_path", "/ready")
                .set("healthy_threshold", 3);
            let l: infra_core::Address = "aws_lb_listener.https".parse().unwrap();
            s.get_mut(&l)
                .unwrap()
                .set("ssl_policy", "ELBSecurityPolicy-TLS13-1-2-Res-2021-06");
            // A new zip (in place: UpdateFunctionCode), memory, a route's authorization.
            let name = s.name().to_string();
            let f: infra_core::Address = "aws_lambda_function.fn".parse().unwrap();
            let code = LambdaCode::zip_file(function_zip(&name, "v2"));
            let spec = s.get_mut(&f).unwrap();
            spec.set("code_sha256", code.sha256().unwrap());
            spec.set("code_path", function_zip(&name, "v2").display().to_string());
            spec.set("memory_size", 256);
            let a: infra_core::Address = "aws_apigatewayv2_api.api".parse().unwrap();
            let spec = s.get_mut(&a).unwrap();
            let mut routes = spec.get("routes").unwrap().as_list().unwrap().to_vec();
            if let infra_core::Value::Map(r) = &mut routes[0] {
                r.insert("timeout_ms".into(), infra_core::Value::Int(10_000));
            }
            spec.set("routes", infra_core::Value::List(routes));
        }),
        replace: Some(Box::new(|s: &mut Stack| {
            let a: infra_core::Address = "aws_subnet.a".parse().unwrap();
            s.get_mut(&a).unwrap().set("cidr_block", "10.20.2.0/24");
            let t: infra_core::Address = "aws_ssm_parameter.token".parse().unwrap();
            let name = s.name().to_string();
            s.get_mut(&t)
                .unwrap()
                .set("name", format!("/infra/{name}/token-2"));
            let tg: infra_core::Address = "aws_lb_target_group.app".parse().unwrap();
            s.get_mut(&tg).unwrap().set("port", 8081);
        })),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn aws_provider_passes_the_conformance_suite() {
    let Some(m) = moto("conformance").await else {
        return;
    };
    let prefix = unique("conf");
    let out = run(m.provider.clone(), &case(), &prefix).await;
    remove_zips(&prefix);
    assert!(out.applies >= 5, "{out:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sandbox_passes_the_conformance_suite_with_the_aws_kinds() {
    let dir = std::env::temp_dir().join(unique("infra-aws-sandbox-conformance"));
    let provider = Arc::new(SandboxProvider::open(&dir, infra_aws::PROVIDER).unwrap());
    let prefix = unique("conf");
    let out = run(provider, &case(), &prefix).await;
    remove_zips(&prefix);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.resources, 19, "{out:?}");
    assert!(out.applies >= 5, "{out:?}");
}
