//! The production stack (examples/production) under the test helpers of `infra::testing`: what a
//! team's CI would check about its own infrastructure, with no cloud.

#[allow(dead_code)]
#[path = "../../examples/production/stack.rs"]
mod example;

use infra::aws::LifecycleHook;
use infra::cli::{execute, Args, Context, Target};
use infra::core::Value;
use infra::prelude::*;
use infra::testing::{self, assert_no_policy_errors, assert_policy_finding};

fn production_stack(env: &str) -> Stack {
    example::stack(&Context {
        env: env.into(),
        target: Target::Sandbox,
        stack_name: None,
    })
}

#[test]
fn the_local_stack_plans_cleanly_with_the_expected_shape() {
    let plan = testing::plan(&production_stack("local"));
    assert_no_policy_errors(&plan);
    assert_eq!(plan.policy.warnings, 0, "{:#?}", plan.policy.findings);
    assert_eq!(plan.summary.add, plan.changes.len());

    // Three auto scaling groups; the managers are 3 over the private subnets of 3 AZs.
    assert_eq!(plan.resources::<Asg>().len(), 3);
    let managers = plan.resource("aws_autoscaling_group.managers");
    managers
        .assert_props(serde_json::json!({ "min_size": 3, "max_size": 3, "desired_capacity": 3 }));
    assert_eq!(managers.props["subnet_ids"].as_array().unwrap().len(), 3);
    // Subnets: a public and a private one per AZ, each in its own AZ.
    let public = plan.find::<Subnet>(serde_json::json!({ "map_public_ip_on_launch": true }));
    assert_eq!(public.len(), 3);
    // Every launch template requires IMDSv2 and encrypts its root volume.
    for lt in plan.resources::<LaunchTemplate>() {
        lt.assert_props(serde_json::json!({ "metadata_http_tokens": "required", "root_volume": { "encrypted": true } }));
    }
    // The app rolls start-first and rolls back on failure.
    plan.resource("swarm_service.app")
        .assert_props(serde_json::json!({
            "update_config": { "order": "start-first", "failure_action": "rollback" },
            "placement": { "spread": ["node.labels.az"] },
        }));
    // The log pipeline: Elasticsearch keeps its data on a named volume and is pinned to one
    // node (the local node's `az` label), updating stop-first; the shipper runs on every node
    // with the engine's container logs read-only and its registry on a per-node volume.
    plan.resource("swarm_service.elasticsearch")
        .assert_props(serde_json::json!({
            "mounts": [{ "type": "volume", "source": "es-data", "target": "/usr/share/elasticsearch/data" }],
            "placement": { "constraints": ["node.role == manager", "node.labels.az == a"] },
            "update_config": { "order": "stop-first" },
        }));
    plan.resource("swarm_service.log-shipper")
        .assert_props(serde_json::json!({
            "mode": "global",
            "user": "root",
            "mounts": [
                { "type": "bind", "source": "/var/lib/docker/containers", "target": "/var/lib/docker/containers", "read_only": true },
                { "type": "volume", "source": "log-shipper-data", "target": "/usr/share/filebeat/data" },
            ],
        }));
    // The secret is never in the plan in clear.
    assert!(!plan.text().contains("local-only-es-password"));
    assert!(!plan.json().contains("local-only-es-password"));
}

/// Runs `f` (a snapshot assertion) with the local plan's filters: what differs from machine to
/// machine.
fn with_local_plan_filters(f: impl FnOnce()) {
    let mut settings = insta::Settings::clone_current();
    for (re, with) in testing::snapshot_filters() {
        settings.add_filter(re, with);
    }
    // The locally built test image's id changes from machine to machine.
    settings.add_filter(&regex::escape(&example::local_image()), "[local-image]");
    // The functions' zips are built on each machine (their digests differ) under its checkout.
    settings.add_filter(&regex::escape(env!("CARGO_MANIFEST_DIR")), "[workspace]");
    settings.add_filter(
        r#"(code_sha256 +)= "[A-Za-z0-9+/]{43}=""#,
        r#"${1}= "[code digest]""#,
    );
    // The controller's record of the declaration: a digest of all of the above.
    settings.add_filter(r"sha256:[0-9a-f]{64}", "[declaration]");
    settings.bind(f);
}

#[test]
fn the_local_stack_plan_snapshot() {
    let plan = testing::plan(&production_stack("local"));
    let text = plan.text();
    with_local_plan_filters(|| insta::assert_snapshot!("production_local_plan.txt", text));
}

#[test]
fn the_local_stack_plan_in_markdown_snapshot() {
    let plan = testing::plan(&production_stack("local"));
    let md = infra::core::render::plan_markdown(&plan, &Default::default());
    assert!(!md.contains("local-only-es-password"));
    // Create-only and within GitHub's limit: every resource's diff is there, nothing cut.
    assert!(!md.contains("**Truncated**"), "{} bytes", md.len());
    assert_eq!(md.matches("\n<details>").count(), plan.changes.len());
    with_local_plan_filters(|| insta::assert_snapshot!("production_local_plan.md", md));
}

/// The controller runs on a manager with the engine's socket, and records the digest of the
/// declaration it belongs to (itself included, the record left out): a new declaration, a new
/// record.
#[test]
fn the_controller_records_the_declaration_it_belongs_to() {
    let stack = production_stack("local");
    let plan = testing::plan(&stack);
    plan.resource("swarm_service.controller")
        .assert_props(serde_json::json!({
            "replicas": 1,
            "placement": { "constraints": ["node.role == manager"] },
            "mounts": [{ "type": "bind", "source": "/var/run/docker.sock", "target": "/var/run/docker.sock" }],
            "restart_policy": { "condition": "on-failure", "max_attempts": 0 },
            "update_config": { "order": "stop-first", "failure_action": "pause" },
        }));
    let recorded = |s: &Stack| {
        let spec = s
            .resources()
            .iter()
            .find(|r| r.address.to_string() == "swarm_service.controller")
            .unwrap();
        let label =
            spec.props["labels"].as_map().unwrap()[infra::controller::DECLARATION_LABEL].clone();
        assert_eq!(
            Some(&label),
            spec.props["env"].as_map().unwrap().get("INFRA_DECLARATION")
        );
        label.as_str().unwrap().to_string()
    };
    let mut blank = stack.clone();
    edit(&mut blank, "swarm_service.controller", |r| {
        r.insert("labels", infra::controller::DECLARATION_LABEL, "");
        r.insert("env", "INFRA_DECLARATION", "");
    });
    assert_eq!(recorded(&stack), infra::core::declaration::digest(&blank));
    assert_eq!(
        recorded(&stack),
        recorded(&production_stack("local")),
        "deterministic"
    );
    let mut changed = stack.clone();
    edit(&mut changed, "swarm_service.app", |r| {
        r.set("replicas", 5);
    });
    let mut rebuilt = changed.clone();
    edit(&mut rebuilt, "swarm_service.controller", |r| {
        r.insert("labels", infra::controller::DECLARATION_LABEL, "");
        r.insert("env", "INFRA_DECLARATION", "");
    });
    assert_ne!(
        infra::core::declaration::digest(&rebuilt),
        recorded(&stack),
        "another declaration, another digest"
    );

    // Outside `local` the controller is the real one (here the image `production` names when
    // INFRA_CONTROLLER_IMAGE is unset): `watch` in controller mode, with the inputs of the
    // declaration it must rebuild.
    let prod = production_stack("production");
    let controller = prod
        .resources()
        .iter()
        .find(|r| r.address.to_string() == "swarm_service.controller")
        .unwrap();
    let json = serde_json::to_value(&controller.props).unwrap();
    if std::env::var_os("INFRA_CONTROLLER_IMAGE").is_none() {
        assert_eq!(json["image"], "registry.example.com/infra-controller:0.1.0");
    }
    assert_eq!(
        json["args"],
        serde_json::json!([
            "--only",
            "swarm",
            "watch",
            "--interval",
            "30",
            "--give-up-after",
            "5",
            "--controller",
            "controller"
        ])
    );
    for (k, v) in [
        ("INFRA_TARGET", "live"),
        ("INFRA_ENV", "production"),
        ("INFRA_STACK", "prod"),
        ("INFRA_LOG_FORMAT", "json"),
        ("ES_PASSWORD_FILE", "/run/secrets/es_password"),
    ] {
        assert_eq!(json["env"][k], v, "{k}");
    }
    assert_eq!(
        json["stop_grace_period_ms"], 120_000,
        "a run under way finishes when stopped"
    );
}

fn edit(stack: &mut Stack, address: &str, f: impl FnOnce(&mut infra::core::ResourceSpec)) {
    f(stack
        .get_mut(&address.parse().unwrap())
        .unwrap_or_else(|| panic!("{address} not in the stack")));
}

/// Plans `stack` through the deploy program's own code path and checks `apply` refuses it,
/// touching nothing.
async fn apply_is_blocked(stack: &Stack) -> String {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = dir.path().join("sandbox").display().to_string();
    let audit = dir.path().join("audit.jsonl").display().to_string();
    let args = |cmd: &[&str]| {
        let mut v = vec![
            "production",
            "--sandbox-dir",
            sandbox.as_str(),
            "--audit-log",
            audit.as_str(),
            "--target",
            "sandbox",
        ];
        v.extend_from_slice(cmd);
        <Args as clap::Parser>::parse_from(v)
    };
    let plan = execute(&args(&["plan"]), stack).await.unwrap_err();
    assert_eq!(plan.exit_code(), 1, "a plan with policy errors exits 1");
    assert!(
        plan.already_shown(),
        "the plan shows its errors; no `Error:` line is added"
    );
    let err = execute(&args(&["apply", "--auto-approve"]), stack)
        .await
        .unwrap_err();
    assert!(!err.already_shown(), "apply says why it refuses: {err}");
    let err = err.to_string();
    let engine = testing::engine(&dir.path().join("sandbox"));
    let p = engine.plan(stack, &PlanOptions::default()).await.unwrap();
    assert_eq!(
        p.plan.summary.add,
        p.plan.changes.len(),
        "nothing was created"
    );
    err
}

#[tokio::test]
async fn opening_the_bastion_to_the_world_is_sec001_and_blocks_apply() {
    let mut s = production_stack("local");
    edit(&mut s, "aws_security_group.bastion", |sg| {
        sg.set("ingress", Value::List(vec![infra::core::map! { "protocol" => "tcp", "from_port" => 22, "to_port" => 22, "cidr" => "0.0.0.0/0" }]));
    });
    let plan = testing::plan(&s);
    assert_policy_finding(&plan, "SEC001", "aws_security_group.bastion");
    let f = plan.policy.of_rule("SEC001").next().unwrap();
    assert_eq!(
        f.message,
        "allows tcp port 22 from 0.0.0.0/0, which includes SSH (port 22)"
    );
    assert!(f.references.contains(&"CKV_AWS_24".to_string()));
    let err = apply_is_blocked(&s).await;
    assert!(err.contains("the plan has errors"), "{err}");
}

#[tokio::test]
async fn dropping_a_manager_az_is_ha003_and_blocks_apply() {
    let mut s = production_stack("local");
    edit(&mut s, "aws_autoscaling_group.managers", |asg| {
        let mut subnets = asg.get("subnet_ids").unwrap().as_list().unwrap().to_vec();
        subnets.pop();
        asg.set("subnet_ids", Value::List(subnets));
    });
    let plan = testing::plan(&s);
    assert_policy_finding(&plan, "HA003", "aws_autoscaling_group.managers");
    assert!(plan
        .policy
        .of_rule("HA003")
        .any(|f| f.message.starts_with("managers span 2 availability zones")));
    apply_is_blocked(&s).await;
}

#[tokio::test]
async fn a_star_star_statement_is_sec003_and_blocks_apply() {
    let mut s = production_stack("local");
    edit(&mut s, "aws_iam_policy.node", |p| {
        let doc = PolicyDocument::new()
            .statement(
                Statement::allow()
                    .actions(["ec2:DescribeInstances"])
                    .resources(["*"]),
            )
            .statement(Statement::allow().actions(["*"]).resources(["*"]));
        p.set("document", doc.to_value());
    });
    let plan = testing::plan(&s);
    assert_policy_finding(&plan, "SEC003", "aws_iam_policy.node");
    assert!(
        plan.text().contains(
            "[error] SEC003 aws_iam_policy.node: document.Statement[1] allows every action (`*`)"
        ),
        "{}",
        plan.text()
    );
    apply_is_blocked(&s).await;
}

#[tokio::test]
async fn a_public_ingest_route_is_sec011_and_blocks_apply() {
    let mut s = production_stack("local");
    edit(&mut s, "aws_apigatewayv2_api.ingest", |api| {
        let mut routes = api.get("routes").unwrap().as_list().unwrap().to_vec();
        if let Value::Map(r) = &mut routes[0] {
            r.insert("authorization_type".into(), Value::from("NONE"));
        }
        api.set("routes", Value::List(routes));
    });
    let plan = testing::plan(&s);
    assert_policy_finding(&plan, "SEC021", "aws_apigatewayv2_api.ingest");
    assert!(
        plan.text().contains("route `POST /events` is public"),
        "{}",
        plan.text()
    );
    apply_is_blocked(&s).await;
}

#[tokio::test]
async fn an_unscoped_or_wildcard_lambda_permission_is_sec010_and_blocks_apply() {
    let mut s = production_stack("local");
    edit(&mut s, "aws_lambda_permission.node-events-from-rule", |p| {
        p.props.remove("source_arn");
    });
    edit(
        &mut s,
        "aws_lambda_permission.analytics-ingest-from-api",
        |p| {
            p.set("principal", "*");
        },
    );
    let plan = testing::plan(&s);
    assert_policy_finding(
        &plan,
        "SEC020",
        "aws_lambda_permission.node-events-from-rule",
    );
    assert_policy_finding(
        &plan,
        "SEC020",
        "aws_lambda_permission.analytics-ingest-from-api",
    );
    let text = plan.text();
    assert!(text.contains("confused deputy"), "{text}");
    assert!(text.contains("every principal (`*`)"), "{text}");
    apply_is_blocked(&s).await;
}

#[tokio::test]
async fn a_plain_password_in_a_function_is_sec022_and_blocks_apply() {
    let mut s = production_stack("local");
    edit(&mut s, "aws_lambda_function.node-events", |f| {
        f.insert("environment", "ES_API_TOKEN", "in-the-clear");
    });
    let plan = testing::plan(&s);
    assert_policy_finding(&plan, "SEC022", "aws_lambda_function.node-events");
    apply_is_blocked(&s).await;
}

#[test]
fn the_serverless_endpoint_and_the_node_events_trigger_are_wired() {
    let plan = testing::plan(&production_stack("local"));
    assert_no_policy_errors(&plan);
    for f in ["analytics-ingest", "node-events"] {
        let r = plan.resource(&format!("aws_lambda_function.{f}"));
        r.assert_props(serde_json::json!({ "runtime": "provided.al2023", "handler": "bootstrap" }));
        assert_eq!(
            r.props["subnet_ids"].as_array().unwrap().len(),
            3,
            "{f} in the private subnets"
        );
        // Only the password's digest is planned.
        assert!(!plan.text().contains("local-only-es-password"));
        assert!(
            r.props["secret_environment"]["ES_PASSWORD"].is_object(),
            "{f}: {:?}",
            r.props
        );
    }
    plan.resource("aws_apigatewayv2_api.ingest")
        .assert_props(serde_json::json!({
            "stage_name": "$default",
            "auto_deploy": true,
        }));
    let rule = plan.resource("aws_cloudwatch_event_rule.node-events");
    assert_eq!(
        rule.props["event_pattern"]["source"],
        serde_json::json!(["aws.autoscaling"])
    );
    assert_eq!(
        rule.props["event_pattern"]["detail"]["AutoScalingGroupName"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "the managers' and the workers' groups"
    );
    for p in ["analytics-ingest-from-api", "node-events-from-rule"] {
        assert!(
            plan.resource(&format!("aws_lambda_permission.{p}")).props["source_arn"].is_object(),
            "{p} is limited to its source (known after apply)"
        );
    }
}

#[test]
fn a_suppressed_finding_is_shown_with_its_reason() {
    let mut s = production_stack("local");
    edit(&mut s, "aws_autoscaling_group.bastion", |asg| {
        let mut subnets = asg.get("subnet_ids").unwrap().as_list().unwrap().to_vec();
        subnets.truncate(1);
        asg.set("subnet_ids", Value::List(subnets));
        asg.options.suppress.insert(
            "HA001".into(),
            "one bastion in one AZ is enough: it's replaced on failure".into(),
        );
    });
    let plan = testing::plan(&s);
    assert_no_policy_errors(&plan);
    assert_eq!(plan.policy.suppressed, 1);
    assert!(plan
        .text()
        .contains("[suppressed] HA001 aws_autoscaling_group.bastion"));
}

#[test]
fn every_environment_is_the_same_code_with_other_values() {
    let local = testing::plan(&production_stack("local"));
    // staging and production read the Elasticsearch password from the environment; without it
    // the stack is invalid and says which variable to set.
    let err = infra::core::graph::Graph::build(&production_stack("production"))
        .map(|_| ())
        .unwrap_err();
    if std::env::var_os("ES_PASSWORD").is_none() {
        assert!(
            err.to_string()
                .contains("the environment variable `ES_PASSWORD` is not set"),
            "{err}"
        );
    }
    let kinds = |p: &infra::testing::TestPlan| {
        let mut k: Vec<String> = p.changes.iter().map(|c| c.kind.clone()).collect();
        k.sort();
        k.dedup();
        k
    };
    assert!(kinds(&local).contains(&"swarm_node_labels".to_string()));
    // the app, Elasticsearch, Kibana, the log shipper and the controller
    assert_eq!(local.resources::<SwarmService>().len(), 5);
}

/// What the node agent relies on (issue 11's contract): drain hooks on both swarm groups, ESP
/// and VXLAN between cluster members, a least-privilege node policy, and user data that starts
/// the agent — in every environment.
#[test]
fn the_cluster_carries_what_the_node_agent_needs() {
    let local = testing::plan(&production_stack("local"));
    assert_no_policy_errors(&local);
    for (hook, group) in [("managers-drain", "managers"), ("workers-drain", "workers")] {
        local
            .resource(&format!("aws_autoscaling_lifecycle_hook.{hook}"))
            .assert_props(serde_json::json!({
                "lifecycle_transition": "autoscaling:EC2_INSTANCE_TERMINATING",
                "heartbeat_timeout": 60,
                "default_result": "CONTINUE",
            }));
        let change = local
            .resource(&format!("aws_autoscaling_lifecycle_hook.{hook}"))
            .change;
        assert!(
            change
                .depends_on
                .iter()
                .any(|a| a.to_string() == format!("aws_autoscaling_group.{group}")),
            "{hook} hangs off {group}: {:?}",
            change.depends_on
        );
    }
    assert_eq!(local.resources::<LifecycleHook>().len(), 2);

    for env in ["local", "staging", "production"] {
        let s = production_stack(env);
        let get = |address: &str| {
            s.resources()
                .iter()
                .find(|r| r.address.to_string() == address)
                .unwrap_or_else(|| panic!("{env}: {address}"))
                .clone()
        };
        let stack = s.name().to_string();
        let heartbeat = if env == "local" { 60 } else { 300 };
        for hook in ["managers-drain", "workers-drain"] {
            let h = get(&format!("aws_autoscaling_lifecycle_hook.{hook}"));
            assert_eq!(
                h.get("heartbeat_timeout").and_then(Value::as_i64),
                Some(heartbeat),
                "{env} {hook}"
            );
        }
        // ESP and VXLAN between members only.
        let sg = get("aws_security_group.cluster");
        let rules = sg.get("ingress").unwrap().as_list().unwrap();
        let has = |proto: &str, port: i64| {
            rules.iter().any(|r| {
                let m = r.as_map().unwrap();
                m["protocol"].as_str() == Some(proto)
                    && m["from_port"].as_i64() == Some(port)
                    && m.get("self") == Some(&Value::Bool(true))
            })
        };
        assert!(has("50", 0), "{env}: ESP from members");
        assert!(has("udp", 4789), "{env}: VXLAN from members");
        // The node policy: the stack's parameters only; writes only on the stack's groups.
        let doc = get("aws_iam_policy.node")
            .get("document")
            .unwrap()
            .to_json();
        let statements = doc["Statement"].as_array().unwrap();
        let find = |sid: &str| {
            statements
                .iter()
                .find(|st| st["Sid"] == sid)
                .unwrap_or_else(|| panic!("{env}: statement {sid} in {doc}"))
        };
        assert_eq!(
            find("ClusterParameters")["Resource"],
            serde_json::json!([format!("arn:aws:ssm:*:*:parameter/infra/{stack}/*")])
        );
        assert_eq!(
            find("CompleteLifecycleActions")["Resource"],
            serde_json::json!([
                format!("arn:aws:autoscaling:*:*:autoScalingGroup:*:autoScalingGroupName/{stack}-managers"),
                format!("arn:aws:autoscaling:*:*:autoScalingGroup:*:autoScalingGroupName/{stack}-workers"),
            ])
        );
        let actions: Vec<&str> = statements
            .iter()
            .flat_map(|st| st["Action"].as_array().unwrap())
            .filter_map(|a| a.as_str())
            .collect();
        for a in [
            "ssm:GetParameter",
            "ssm:GetParametersByPath",
            "ssm:PutParameter",
            "ssm:DeleteParameter",
            "ec2:DescribeInstances",
            "autoscaling:DescribeAutoScalingGroups",
            "autoscaling:DescribeAutoScalingInstances",
            "autoscaling:DescribeLifecycleHooks",
            "autoscaling:CompleteLifecycleAction",
            "autoscaling:RecordLifecycleActionHeartbeat",
        ] {
            assert!(actions.contains(&a), "{env}: {a} in {actions:?}");
        }
        assert_eq!(actions.len(), 10, "{env}: nothing more: {actions:?}");
        // The agent starts at boot on swarm nodes (not on the bastion), from the groups' roles.
        for lt in ["manager", "worker"] {
            let ud = get(&format!("aws_launch_template.{lt}"));
            let ud = ud.get_str("user_data").unwrap_or_default().to_string();
            assert!(
                ud.contains("/usr/local/bin/infra-node run"),
                "{env} {lt}: {ud}"
            );
            assert!(!ud.contains("swarm-join"), "{env} {lt}: {ud}");
        }
        let bastion = get("aws_launch_template.bastion");
        assert!(!bastion
            .get_str("user_data")
            .unwrap_or_default()
            .contains("infra-node"));
        assert_eq!(
            get("aws_autoscaling_group.workers")
                .get("tags")
                .and_then(|t| t.as_map())
                .and_then(|t| t.get("role"))
                .and_then(Value::as_str),
            Some("swarm-worker")
        );
        assert_eq!(
            get("aws_autoscaling_group.managers")
                .get("tags")
                .and_then(|t| t.as_map())
                .and_then(|t| t.get("role"))
                .and_then(Value::as_str),
            Some("swarm-manager")
        );
    }
}

/// The public entry point (issue 12): the internet reaches the app only through an
/// internet-facing application load balancer in the public subnets, HTTP redirected to HTTPS,
/// HTTPS forwarding to the workers' target group on the app's port; the workers admit that port
/// from the load balancer's group only — in every environment.
#[test]
fn the_internet_reaches_the_app_only_through_the_load_balancer() {
    for env in ["local", "lab", "staging", "production"] {
        let s = production_stack(env);
        let get = |address: &str| {
            s.resources()
                .iter()
                .find(|r| r.address.to_string() == address)
                .unwrap_or_else(|| panic!("{env}: {address}"))
                .clone()
        };
        let refers_to = |v: Option<&Value>, address: &str, attribute: &str| match v {
            Some(Value::Ref(r)) => r.address.to_string() == address && r.attribute == attribute,
            _ => false,
        };
        let lb = get("aws_lb.web");
        assert_eq!(lb.get_str("scheme"), Some("internet-facing"), "{env}");
        assert_eq!(lb.get_str("type"), Some("application"), "{env}");
        let subnets = lb.get("subnet_ids").unwrap().as_list().unwrap();
        assert_eq!(subnets.len(), 3, "{env}: one subnet per AZ");
        for sub in subnets {
            let Value::Ref(r) = sub else {
                panic!("{env}: {sub:?}")
            };
            assert!(
                r.address.name().starts_with("public-"),
                "{env}: the load balancer sits in the public subnets, not {}",
                r.address
            );
        }
        let groups = lb.get("security_group_ids").unwrap().as_list().unwrap();
        assert_eq!(groups.len(), 1, "{env}");
        assert!(
            refers_to(groups.first(), "aws_security_group.lb", "id"),
            "{env}"
        );

        let http = get("aws_lb_listener.http");
        assert_eq!(http.get("port").and_then(Value::as_i64), Some(80));
        let redirect = http
            .get("default_action")
            .unwrap()
            .as_map()
            .unwrap()
            .clone();
        assert_eq!(redirect["type"].as_str(), Some("redirect"), "{env}");
        assert_eq!(redirect["protocol"].as_str(), Some("HTTPS"), "{env}");
        assert_eq!(redirect["port"].as_str(), Some("443"), "{env}");
        let https = get("aws_lb_listener.https");
        assert_eq!(https.get_str("protocol"), Some("HTTPS"), "{env}");
        let forward = https
            .get("default_action")
            .unwrap()
            .as_map()
            .unwrap()
            .clone();
        assert!(
            refers_to(
                forward.get("target_group_arn"),
                "aws_lb_target_group.app",
                "arn"
            ),
            "{env}: {forward:?}"
        );
        let tg = get("aws_lb_target_group.app");
        assert_eq!(tg.get("port").and_then(Value::as_i64), Some(8080), "{env}");
        let workers = get("aws_autoscaling_group.workers");
        let tgs = workers.get("target_group_arns").unwrap().as_list().unwrap();
        assert!(
            refers_to(tgs.first(), "aws_lb_target_group.app", "arn"),
            "{env}"
        );

        // The workers' group: the app's port from the load balancer's group, nothing from a
        // CIDR, no declared public port.
        let web = get("aws_security_group.web");
        let rules = web.get("ingress").unwrap().as_list().unwrap();
        assert_eq!(rules.len(), 1, "{env}: {rules:?}");
        let rule = rules[0].as_map().unwrap();
        assert_eq!(rule["from_port"].as_i64(), Some(8080), "{env}");
        assert!(
            refers_to(rule.get("group_id"), "aws_security_group.lb", "id"),
            "{env}"
        );
        assert!(
            !web.options.annotations.contains_key("public_ports"),
            "{env}"
        );
        // The app publishes its port where a load balancer can reach it (not on the shared
        // local engine).
        let app = get("swarm_service.app");
        let ports = app.get("ports").and_then(Value::as_list).unwrap_or(&[]);
        if env == "local" {
            assert!(ports.is_empty(), "{env}: {ports:?}");
        } else {
            let p = ports[0].as_map().unwrap();
            assert_eq!(p["published"].as_i64(), Some(8080), "{env}");
            let mode = if env == "lab" { "host" } else { "ingress" };
            assert_eq!(p["mode"].as_str(), Some(mode), "{env}");
        }
    }
    // Production and staging take the certificate's ARN from the environment, and say so
    // when it is missing.
    if std::env::var_os("CERTIFICATE_ARN").is_none() {
        let err = infra::core::graph::Graph::build(&production_stack("production"))
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("aws_lb_listener.https: field `certificate_arn`: the environment variable `CERTIFICATE_ARN` is not set"),
            "{err}"
        );
    }
}

#[test]
fn an_http_listener_that_forwards_weak_tls_and_lax_headers_are_policy_errors() {
    let mut s = production_stack("local");
    edit(&mut s, "aws_lb_listener.http", |l| {
        let forward = infra::core::map! {
            "type" => "forward",
            "target_group_arn" => Value::from(infra::core::value::Reference {
                address: "aws_lb_target_group.app".parse().unwrap(),
                attribute: "arn".into(),
            }),
        };
        l.set("default_action", forward);
    });
    edit(&mut s, "aws_lb_listener.https", |l| {
        l.set("ssl_policy", "ELBSecurityPolicy-2016-08");
    });
    edit(&mut s, "aws_lb.web", |lb| {
        lb.set("drop_invalid_header_fields", false);
    });
    let plan = testing::plan(&s);
    assert_policy_finding(&plan, "SEC007", "aws_lb_listener.http");
    assert_policy_finding(&plan, "SEC008", "aws_lb.web");
    assert_policy_finding(&plan, "SEC009", "aws_lb_listener.https");
    let text = plan.text();
    assert!(text.contains("CKV2_AWS_20"), "{text}");
    assert!(text.contains("CKV_AWS_131"), "{text}");
    assert!(text.contains("CKV_AWS_103"), "{text}");
}
