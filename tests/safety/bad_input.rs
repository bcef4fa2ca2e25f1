//! Bad input: malformed stacks are refused before anything is contacted, with every mistake
//! reported at once, each with its resource address and field.
//!
//! The providers are real (the AWS provider with its SDK clients, the Swarm provider after a real
//! handshake), but their endpoints are tripwires: the AWS endpoint and the instance metadata
//! endpoint count every connection, and the Docker endpoint is a fake engine that logs every
//! request after the handshake. A control case (the valid base stack) proves that the counters
//! do count. No moto or Docker needed, so these tests never skip.

use std::sync::Arc;

use aws_config::{BehaviorVersion, Region};
use infra::aws::{AwsProvider, IamPolicy, LifecycleHook, PolicyDocument, SsmParameter};
use infra::core::engine::{Engine, Error as EngineError};
use infra::core::provider::Provider;
use infra::prelude::*;
use infra::swarm::{SwarmNetwork, SwarmProvider, SwarmSecret};

use crate::support::{clean_env, example_binary, say, show, FakeEngine, FakeNode, Tripwire};

/// The valid stack every case breaks in one way.
struct Base {
    vpc: Ref<Vpc>,
    a: Ref<Subnet>,
    b: Ref<Subnet>,
    lt: Ref<LaunchTemplate>,
}

fn base() -> (Stack, Base) {
    let mut s = Stack::new("safe");
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
    let sg = s.add(
        SecurityGroup::new("web")
            .vpc(&vpc)
            .ingress(Rule::tcp(443).cidr("10.0.0.0/16"))
            .egress_all(),
    );
    let lt = s.add(
        LaunchTemplate::new("web")
            .image("ami-0123456789abcdef0")
            .instance_type("t3.micro")
            .security_group(&sg)
            .user_data("#!/bin/sh\necho hello\n"),
    );
    s.add(
        Asg::new("web")
            .launch_template(&lt)
            .subnets(&[&a, &b])
            .size(2, 4, 2),
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
    let net = s.add(SwarmNetwork::new("net"));
    let token = s.add(SwarmSecret::new("token").value(b"base-token".to_vec()));
    s.add(
        SwarmService::new("app")
            .image("sha256:1111")
            .replicas(2)
            .network(&net)
            .secret(&token, "token"),
    );
    (s, Base { vpc, a, b, lt })
}

/// One mistake: what it adds to the base stack, and the problems it must produce
/// (address, field, a fragment of the message). No other problem may appear.
struct Case {
    name: &'static str,
    apply: fn(&mut Stack, &Base),
    expect: &'static [(&'static str, &'static str, &'static str)],
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "malformed VPC CIDR",
            apply: |s, _| {
                s.add(Vpc::new("bad-cidr").cidr("10.0.0.0/33"));
            },
            expect: &[(
                "aws_vpc.bad-cidr",
                "cidr_block",
                "`10.0.0.0/33` is not a valid CIDR block",
            )],
        },
        Case {
            name: "CIDR with host bits",
            apply: |s, _| {
                s.add(Vpc::new("host-bits").cidr("10.1.0.1/16"));
            },
            expect: &[(
                "aws_vpc.host-bits",
                "cidr_block",
                "has host bits set; did you mean `10.1.0.0/16`?",
            )],
        },
        Case {
            name: "VPC prefix out of AWS's range",
            apply: |s, _| {
                s.add(Vpc::new("huge").cidr("10.0.0.0/8"));
            },
            expect: &[(
                "aws_vpc.huge",
                "cidr_block",
                "AWS allows prefixes from /16 to /28, got /8",
            )],
        },
        Case {
            name: "overlapping subnets",
            apply: |s, b| {
                s.add(
                    Subnet::new("c")
                        .vpc(&b.vpc)
                        .cidr("10.0.1.128/25")
                        .az("us-east-1c"),
                );
            },
            expect: &[(
                "aws_subnet.c",
                "cidr_block",
                "`10.0.1.128/25` overlaps aws_subnet.a (10.0.1.0/24) in the same VPC",
            )],
        },
        Case {
            name: "subnet outside its VPC",
            apply: |s, b| {
                s.add(
                    Subnet::new("d")
                        .vpc(&b.vpc)
                        .cidr("10.9.0.0/24")
                        .az("us-east-1c"),
                );
            },
            expect: &[(
                "aws_subnet.d",
                "cidr_block",
                "`10.9.0.0/24` is outside the VPC aws_vpc.main (10.0.0.0/16)",
            )],
        },
        Case {
            name: "availability zone of another region",
            apply: |s, b| {
                s.add(
                    Subnet::new("e")
                        .vpc(&b.vpc)
                        .cidr("10.0.5.0/24")
                        .az("eu-west-1a"),
                );
            },
            expect: &[(
                "aws_subnet.e",
                "availability_zone",
                "`eu-west-1a` is not in `us-east-1`, the region this stack is deployed to",
            )],
        },
        Case {
            name: "malformed availability zone",
            apply: |s, b| {
                s.add(
                    Subnet::new("f")
                        .vpc(&b.vpc)
                        .cidr("10.0.6.0/24")
                        .az("east"),
                );
            },
            expect: &[(
                "aws_subnet.f",
                "availability_zone",
                "`east` is not an availability zone name",
            )],
        },
        Case {
            name: "min > max",
            apply: |s, b| {
                s.add(
                    Asg::new("upside-down")
                        .launch_template(&b.lt)
                        .subnets(&[&b.a, &b.b])
                        .size(3, 1, 2),
                );
            },
            expect: &[(
                "aws_autoscaling_group.upside-down",
                "min_size",
                "min_size 3 is greater than max_size 1",
            )],
        },
        Case {
            name: "desired outside [min, max]",
            apply: |s, b| {
                s.add(
                    Asg::new("too-many")
                        .launch_template(&b.lt)
                        .subnets(&[&b.a, &b.b])
                        .size(1, 2, 5),
                );
            },
            expect: &[(
                "aws_autoscaling_group.too-many",
                "desired_capacity",
                "desired_capacity 5 is outside [min_size 1, max_size 2]",
            )],
        },
        Case {
            name: "duplicate names",
            apply: |s, _| {
                s.add(Vpc::new("main").cidr("10.1.0.0/16"));
            },
            expect: &[(
                "aws_vpc.main",
                "name",
                "`main` is declared 2 times; names must be unique within a kind",
            )],
        },
        Case {
            name: "dependency cycle",
            apply: |s, b| {
                let x = s.add(SecurityGroup::new("cycle-a").vpc(&b.vpc));
                let y = s.add(SecurityGroup::new("cycle-b").vpc(&b.vpc));
                s.add_dependency(&x, &y);
                s.add_dependency(&y, &x);
            },
            expect: &[(
                "aws_security_group.cycle-a",
                "depends_on",
                "dependency cycle: aws_security_group.cycle-a -> aws_security_group.cycle-b -> aws_security_group.cycle-a",
            )],
        },
        Case {
            name: "empty name",
            apply: |s, _| {
                s.add(SwarmNetwork::new(""));
            },
            expect: &[("swarm_network.", "name", "must not be empty")],
        },
        Case {
            name: "too-long name",
            apply: |s, _| {
                s.add(SwarmNetwork::new(&"n".repeat(65)));
            },
            expect: &[
                (
                    "swarm_network.nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn",
                    "name",
                    "is 65 characters long; the limit is 64",
                ),
                (
                    "swarm_network.nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn",
                    "name",
                    "characters; keep it within 64",
                ),
            ],
        },
        Case {
            name: "name with a space",
            apply: |s, _| {
                s.add(SwarmNetwork::new("my net"));
            },
            expect: &[(
                "swarm_network.my net",
                "name",
                "`my net` contains ` `; use letters, digits, `-` and `_`",
            )],
        },
        Case {
            name: "port outside 0-65535",
            apply: |s, b| {
                s.add(
                    SecurityGroup::new("ports")
                        .vpc(&b.vpc)
                        .ingress(Rule::raw("tcp", 70000, 70001).cidr("10.0.0.0/16")),
                );
            },
            expect: &[
                (
                    "aws_security_group.ports",
                    "ingress[0]",
                    "from port 70000 is outside 0-65535",
                ),
                (
                    "aws_security_group.ports",
                    "ingress[0]",
                    "to port 70001 is outside 0-65535",
                ),
            ],
        },
        Case {
            name: "reversed port range",
            apply: |s, b| {
                s.add(
                    SecurityGroup::new("reversed")
                        .vpc(&b.vpc)
                        .ingress(Rule::tcp_range(443, 80).cidr("10.0.0.0/16")),
                );
            },
            expect: &[(
                "aws_security_group.reversed",
                "ingress[0]",
                "port range 443-80 is reversed (from > to)",
            )],
        },
        Case {
            name: "unknown protocol",
            apply: |s, b| {
                s.add(
                    SecurityGroup::new("proto")
                        .vpc(&b.vpc)
                        .ingress(Rule::raw("tcpp", 1, 2).cidr("10.0.0.0/16")),
                );
            },
            expect: &[(
                "aws_security_group.proto",
                "ingress[0]",
                "protocol `tcpp` is not one of tcp, udp, icmp, icmpv6, -1 (all), or an IP protocol number 0-255",
            )],
        },
        Case {
            name: "IP protocol number out of range",
            apply: |s, b| {
                s.add(
                    SecurityGroup::new("proto-number")
                        .vpc(&b.vpc)
                        .ingress(Rule::esp().from_self())
                        .ingress(Rule::raw("256", 0, 0).cidr("10.0.0.0/16")),
                );
            },
            expect: &[(
                "aws_security_group.proto-number",
                "ingress[1]",
                "protocol `256` is not one of tcp, udp, icmp, icmpv6, -1 (all), or an IP protocol number 0-255",
            )],
        },
        Case {
            name: "SSM parameter name without a leading slash",
            apply: |s, _| {
                s.add(
                    SsmParameter::secure_string("token", "infra/safe/token")
                        .value("bad-input-secret-value"),
                );
            },
            expect: &[(
                "aws_ssm_parameter.token",
                "name",
                "`infra/safe/token` must start with `/`",
            )],
        },
        Case {
            name: "lifecycle hook heartbeat below AWS's minimum",
            apply: |s, b| {
                let group = s.add(
                    Asg::new("hooked")
                        .launch_template(&b.lt)
                        .subnets(&[&b.a, &b.b])
                        .size(1, 2, 1),
                );
                s.add(
                    LifecycleHook::on_terminate("drain")
                        .asg(&group)
                        .heartbeat(std::time::Duration::from_secs(5)),
                );
            },
            expect: &[(
                "aws_autoscaling_lifecycle_hook.drain",
                "heartbeat_timeout",
                "5 is out of range [30, 7200]",
            )],
        },
        Case {
            name: "published port 0",
            apply: |s, _| {
                s.add(SwarmService::new("zero-port").image("sha256:1").publish(0, 80));
            },
            expect: &[(
                "swarm_service.zero-port",
                "ports[0]",
                "published port Some(0) is outside 1-65535",
            )],
        },
        Case {
            name: "IAM document with an unknown effect",
            apply: |s, _| {
                s.add(IamPolicy::new("permit").document_json(
                    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Permit","Action":"s3:GetObject","Resource":"*"}]}"#,
                ));
            },
            expect: &[(
                "aws_iam_policy.permit",
                "document.Statement[0]",
                "Effect must be Allow or Deny, got `Permit`",
            )],
        },
        Case {
            name: "IAM document without an effect",
            apply: |s, _| {
                s.add(IamPolicy::new("no-effect").document_json(
                    r#"{"Version":"2012-10-17","Statement":[{"Action":"s3:GetObject","Resource":"*"}]}"#,
                ));
            },
            expect: &[(
                "aws_iam_policy.no-effect",
                "document.Statement[0]",
                "Effect must be Allow or Deny, got nothing",
            )],
        },
        Case {
            name: "IAM document without statements",
            apply: |s, _| {
                s.add(IamPolicy::new("empty").document(PolicyDocument::new()));
            },
            expect: &[("aws_iam_policy.empty", "document", "has no statements")],
        },
        Case {
            name: "secret file missing",
            apply: |s, _| {
                s.add(SwarmSecret::new("from-file").from_file("/nonexistent/infra-safety/secret.txt"));
            },
            expect: &[(
                "swarm_secret.from-file",
                "value",
                "cannot read `/nonexistent/infra-safety/secret.txt`",
            )],
        },
        Case {
            name: "secret variable unset",
            apply: |s, _| {
                s.add(SwarmSecret::new("from-env").from_env("INFRA_SAFETY_SURELY_UNSET_VARIABLE"));
            },
            expect: &[(
                "swarm_secret.from-env",
                "value",
                "the environment variable `INFRA_SAFETY_SURELY_UNSET_VARIABLE` is not set",
            )],
        },
        Case {
            name: "reference to a resource of another stack",
            apply: |s, _| {
                let mut other = Stack::new("other");
                let elsewhere = other.add(Vpc::new("elsewhere").cidr("10.5.0.0/16"));
                s.add(
                    Subnet::new("orphan")
                        .vpc(&elsewhere)
                        .cidr("10.5.1.0/24")
                        .az("us-east-1a"),
                );
            },
            expect: &[(
                "aws_subnet.orphan",
                "vpc_id",
                "references aws_vpc.elsewhere, which is not in the stack",
            )],
        },
        Case {
            name: "launch template image that is not an AMI",
            apply: |s, _| {
                s.add(
                    LaunchTemplate::new("no-ami")
                        .image("ubuntu-22.04")
                        .instance_type("t3.micro"),
                );
            },
            expect: &[(
                "aws_launch_template.no-ami",
                "image_id",
                "`ubuntu-22.04` is not an AMI id",
            )],
        },
        Case {
            name: "service without an image",
            apply: |s, _| {
                s.add(SwarmService::new("no-image").replicas(1));
            },
            expect: &[("swarm_service.no-image", "image", "is required")],
        },
        Case {
            name: "invalid stack name",
            apply: |s, _| s.rename("Safe_Stack"),
            expect: &[(
                "stack",
                "name",
                "`Safe_Stack` is not a valid stack name: use 1-48 lowercase letters, digits and `-`",
            )],
        },
    ]
}

/// The real providers with tripwire endpoints, and the counters to check.
struct Wired {
    engine: Engine,
    aws: Arc<AwsProvider>,
    swarm: Arc<SwarmProvider>,
    aws_endpoint: Tripwire,
    docker: FakeEngine,
    handshake: usize,
}

impl Wired {
    async fn new() -> Wired {
        let aws_endpoint = Tripwire::start();
        let config = aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(aws_endpoint.url())
            .region(Region::new("us-east-1"))
            .test_credentials()
            .load()
            .await;
        let aws = Arc::new(AwsProvider::from_sdk_config(&config).unwrap());
        let docker = FakeEngine::start(FakeNode::Manager);
        let swarm = Arc::new(SwarmProvider::connect_to(&docker.host()).await.unwrap());
        let handshake = docker.requests().len();
        let engine = Engine::new()
            .with_provider_arc(aws.clone())
            .with_provider_arc(swarm.clone())
            .with_rules(infra::default_rules());
        Wired {
            engine,
            aws,
            swarm,
            aws_endpoint,
            docker,
            handshake,
        }
    }

    /// Calls made through the providers since they were built: (AWS API calls counted by the
    /// provider, connections to the AWS endpoint, requests to the Docker endpoint after the
    /// handshake, calls counted by the Swarm provider).
    fn calls(&self) -> (u64, usize, usize, u64) {
        (
            self.aws.api_calls().unwrap_or(u64::MAX),
            self.aws_endpoint.hits(),
            self.docker.requests().len() - self.handshake,
            self.swarm.api_calls().unwrap_or(u64::MAX),
        )
    }

    async fn problems(&self, stack: &Stack) -> Vec<(String, String, String)> {
        match self.engine.plan(stack, &PlanOptions::default()).await {
            Err(EngineError::Validation(e)) => {
                let text = e.to_string();
                assert!(
                    text.contains("(nothing was read or changed)"),
                    "the message says nothing was touched:\n{text}"
                );
                for p in &e.problems {
                    assert!(
                        text.contains(&format!("  - {}: field `{}`: ", p.address, p.field)),
                        "every problem is listed with its address and field:\n{text}"
                    );
                }
                e.problems
                    .into_iter()
                    .map(|p| (p.address, p.field, p.message))
                    .collect()
            }
            Err(other) => panic!("expected a validation error, got: {other}"),
            Ok(_) => panic!("expected a validation error, the plan succeeded"),
        }
    }
}

fn check(case: &str, found: &[(String, String, String)], expect: &[(&str, &str, &str)]) {
    let listing = found
        .iter()
        .map(|(a, f, m)| format!("  {a}: field `{f}`: {m}"))
        .collect::<Vec<_>>()
        .join("\n");
    for (address, field, fragment) in expect {
        assert!(
            found
                .iter()
                .any(|(a, f, m)| a == address && f == field && m.contains(fragment)),
            "{case}: missing `{address}` / `{field}` / `{fragment}` in:\n{listing}"
        );
    }
    assert_eq!(
        found.len(),
        expect.len(),
        "{case}: exactly the expected problems:\n{listing}"
    );
    assert!(
        !listing.contains("bad-input-secret-value"),
        "{case}: a problem quotes a secret value:\n{listing}"
    );
}

#[tokio::test]
async fn each_malformed_stack_is_refused_with_address_and_field_and_no_api_call() {
    let wired = Wired::new().await;
    let (valid, _) = base();
    assert!(
        infra::core::graph::Graph::build(&valid).is_ok(),
        "the base stack is valid"
    );
    assert_eq!(
        wired.aws.preflight(&valid),
        Vec::new(),
        "and passes the preflight"
    );

    let cases = cases();
    for case in &cases {
        let (mut stack, handles) = base();
        (case.apply)(&mut stack, &handles);
        let found = wired.problems(&stack).await;
        check(case.name, &found, case.expect);
        assert_eq!(
            wired.calls(),
            (0, 0, 0, 0),
            "{}: no API call, no connection",
            case.name
        );
    }

    // Control: the valid stack does reach the endpoints, so the zeros above are measurements.
    let control = wired
        .engine
        .plan(&valid, &PlanOptions::default())
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    let (aws_calls, aws_connections, docker_requests, _) = wired.calls();
    assert!(
        aws_calls > 0 && aws_connections > 0 && docker_requests > 0,
        "the valid stack's plan contacts both endpoints (calls {:?}): {control}",
        wired.calls()
    );
    say(&format!(
        "bad input: {} malformed stacks refused with 0 API calls; the valid control made {aws_calls} AWS calls ({aws_connections} connections) and {docker_requests} Docker requests",
        cases.len()
    ));
}

#[tokio::test]
async fn every_mistake_is_reported_in_one_run() {
    let wired = Wired::new().await;
    let (mut stack, handles) = base();
    let cases = cases();
    for case in &cases {
        (case.apply)(&mut stack, &handles);
    }
    let found = wired.problems(&stack).await;
    let expect: Vec<(&str, &str, &str)> = cases
        .iter()
        .flat_map(|c| c.expect.iter().copied())
        .collect();
    check("all mistakes at once", &found, &expect);
    assert_eq!(wired.calls(), (0, 0, 0, 0), "no API call, no connection");
    say(&format!(
        "bad input: one stack with {} mistakes -> {} problems in one report, 0 API calls",
        cases.len(),
        found.len()
    ));
}

/// The deploy program with `--target live` and a broken stack: the production example with
/// `--env production` (its secret comes from `ES_PASSWORD`, unset here), an invalid `--stack`
/// name, and `AWS_REGION=eu-west-1` (its subnets are in us-east-1). Every command that would
/// contact an endpoint exits 1 listing the 8 problems, and no endpoint (AWS, instance metadata,
/// Docker) sees a single connection.
#[test]
fn the_deploy_program_refuses_a_broken_live_stack_before_contacting_anything() {
    let dir = tempfile::tempdir().unwrap();
    let aws = Tripwire::start();
    let imds = Tripwire::start();
    let docker = Tripwire::start();
    let run = |args: &[&str]| {
        let mut c = std::process::Command::new(example_binary());
        clean_env(&mut c, dir.path())
            .args([
                "--target",
                "live",
                "--env",
                "production",
                "--stack",
                "Bad_Name",
            ])
            .args(args)
            .env("AWS_ENDPOINT_URL", aws.url())
            .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url())
            .env_remove("AWS_EC2_METADATA_DISABLED")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "eu-west-1")
            .env("DOCKER_HOST", docker.tcp());
        c.output().unwrap()
    };
    let problems = [
        "  - stack: field `name`: `Bad_Name` is not a valid stack name",
        "  - swarm_secret.es-password: field `value`: the environment variable `ES_PASSWORD` is not set",
        "  - aws_subnet.public-a: field `availability_zone`: `us-east-1a` is not in `eu-west-1`",
        "  - aws_subnet.public-b: field `availability_zone`: `us-east-1b` is not in `eu-west-1`",
        "  - aws_subnet.public-c: field `availability_zone`: `us-east-1c` is not in `eu-west-1`",
        "  - aws_subnet.private-a: field `availability_zone`: `us-east-1a` is not in `eu-west-1`",
        "  - aws_subnet.private-b: field `availability_zone`: `us-east-1b` is not in `eu-west-1`",
        "  - aws_subnet.private-c: field `availability_zone`: `us-east-1c` is not in `eu-west-1`",
        "  - aws_lb.web: field `name`: the load balancer name `Bad_Name-web` contains `_`",
        "  - aws_lb_target_group.app: field `name`: the target group (before its 5-character suffix) name `Bad_Name-app` contains `_`",
        "  - aws_lb.es: field `name`: the load balancer name `Bad_Name-es` contains `_`",
        "  - aws_lb_target_group.es: field `name`: the target group (before its 5-character suffix) name `Bad_Name-es` contains `_`",
        "  - aws_lb_listener.https: field `certificate_arn`: the environment variable `CERTIFICATE_ARN` is not set",
        "  - aws_lambda_function.analytics-ingest: field `secret_environment`: `ES_PASSWORD`: the environment variable `ES_PASSWORD` is not set",
        "  - aws_lambda_function.node-events: field `secret_environment`: `ES_PASSWORD`: the environment variable `ES_PASSWORD` is not set",
    ];
    let commands: [&[&str]; 6] = [
        &["plan"],
        &["plan", "--detailed-exitcode"],
        &["plan", "--destroy"],
        &["apply", "--auto-approve"],
        &["destroy", "--auto-approve"],
        &["--only", "aws", "apply", "--auto-approve"],
    ];
    for args in commands {
        let o = run(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", show(&o));
        assert!(
            err.contains("Error: stack \"Bad_Name\" is invalid: 15 problems found (nothing was read or changed):"),
            "{args:?}: {}",
            show(&o)
        );
        for p in problems {
            assert!(err.contains(p), "{args:?}: missing `{p}`:\n{}", show(&o));
        }
        assert!(!err.contains("panicked"), "{}", show(&o));
    }
    // Only the Swarm phase: the AWS provider is not in scope, so its preflight (the zones) is
    // not either; the kinds' own checks still cover the whole stack.
    let o = run(&["--only", "swarm", "apply", "--auto-approve"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(
        err.contains("is invalid: 9 problems found") && err.contains(problems[1]),
        "{}",
        show(&o)
    );
    // --json: the problems as a JSON document on stdout.
    let o = run(&["plan", "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let first: serde_json::Value = serde_json::Deserializer::from_slice(&o.stdout)
        .into_iter()
        .next()
        .expect("a JSON document on stdout")
        .expect("valid JSON");
    assert_eq!(first["error"], "validation", "{first}");
    let listed = first["problems"].as_array().expect("problems");
    assert_eq!(listed.len(), 15, "{first}");
    assert!(listed
        .iter()
        .all(|p| p["address"].is_string() && p["field"].is_string() && p["message"].is_string()));

    assert_eq!(
        (aws.hits(), imds.hits(), docker.hits()),
        (0, 0, 0),
        "nothing was contacted: AWS endpoint, instance metadata, Docker"
    );
    say(&format!(
        "bad input (deploy program): {} broken live runs, exit 1, 0 connections to AWS, IMDS and Docker",
        commands.len() + 2
    ));
}
