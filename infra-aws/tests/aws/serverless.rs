//! The serverless kinds on moto: a Lambda function from a zip made here (moto stores functions
//! without Docker; it cannot run them, and nothing here invokes one), its permissions, an HTTP
//! API proxying to it and an EventBridge rule targeting it. What AWS holds after apply; a new
//! zip is `UpdateFunctionCode` in place (never a replacement), a configuration change
//! `UpdateFunctionConfiguration`; drift made by hand (memory, a secret variable: found by
//! digest, shown redacted); route, target and pattern changes; the delete of everything. Also
//! validation (all problems at once, before any call) and the code digest in plans.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use infra_aws::*;
use infra_core::dsl::Stack;
use infra_core::plan::Action;
use infra_core::render::{plan_json, plan_text, report_text};

use crate::support::{action, apply, assert_noop, destroy, fields, moto, plan, unique, Moto};

/// A zip holding a `bootstrap` with `content`, written under `dir`.
pub(crate) fn zip_with(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(format!("{name}.zip"));
    let file = std::fs::File::create(&path).unwrap();
    let mut z = zip::ZipWriter::new(file);
    let opts = zip::write::SimpleFileOptions::default().unix_permissions(0o755);
    z.start_file("bootstrap", opts).unwrap();
    z.write_all(content.as_bytes()).unwrap();
    z.finish().unwrap();
    path
}

struct Values {
    zip: PathBuf,
    memory: u32,
    level: &'static str,
    secret: String,
    routes: Vec<(&'static str, RouteAuth)>,
    detail_types: Vec<&'static str>,
    team: &'static str,
}

fn stack(name: &str, v: &Values) -> Stack {
    let mut s = Stack::new(name);
    let role = s.add(IamRole::new("fn").assumed_by_service("lambda.amazonaws.com"));
    let f = s.add(
        LambdaFunction::new("ingest")
            .code(LambdaCode::zip_file(&v.zip))
            .role(role.arn())
            .memory_mb(v.memory)
            .timeout(std::time::Duration::from_secs(10))
            .description("analytics ingest")
            .env("LOG_LEVEL", v.level)
            .secret_env("ES_PASSWORD", v.secret.clone())
            .tag("team", v.team),
    );
    let mut api = HttpApi::new("ingest").tag("team", v.team);
    for (key, auth) in &v.routes {
        api = api.route(key, &f, *auth);
    }
    let api = s.add(api);
    s.add(
        LambdaPermission::new("ingest-from-api")
            .function(f.name())
            .principal("apigateway.amazonaws.com")
            .source_arn(api.source_arn()),
    );
    let rule = s.add(
        EventRule::new("ingest")
            .event_pattern(serde_json::json!({
                "source": ["aws.autoscaling"],
                "detail-type": v.detail_types,
            }))
            .target("ingest", &f),
    );
    s.add(
        LambdaPermission::new("ingest-from-rule")
            .function(f.name())
            .principal("events.amazonaws.com")
            .source_arn(rule.arn()),
    );
    s
}

fn op_count(m: &Moto, op: &str) -> u64 {
    m.provider
        .calls_by_operation()
        .iter()
        .filter(|(k, _)| k.ends_with(&format!(".{op}")))
        .map(|(_, n)| *n)
        .sum()
}

async fn function(
    m: &Moto,
    name: &str,
) -> aws_sdk_lambda::operation::get_function::GetFunctionOutput {
    m.lambda
        .get_function()
        .function_name(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GetFunction {name}: {e:?}"))
}

async fn api_of(m: &Moto, stack: &str) -> aws_sdk_apigatewayv2::types::Api {
    let want = format!("{stack}-ingest");
    m.apigw
        .get_apis()
        .send()
        .await
        .unwrap()
        .items()
        .iter()
        .find(|a| a.name() == Some(want.as_str()))
        .cloned()
        .unwrap_or_else(|| panic!("no API {want}"))
}

/// The secret is in neither rendering of the plan, which shows the field redacted.
fn assert_redacted(p: &infra_core::engine::Planned, secret: &str, step: &str) {
    let text = plan_text(&p.plan);
    assert!(
        !text.contains(secret),
        "{step}: the secret is in the plan:\n{text}"
    );
    assert!(
        !plan_json(&p.plan).contains(secret),
        "{step}: the secret is in the JSON plan"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn serverless_kinds_are_created_updated_in_place_and_deleted() {
    let Some(m) = moto("serverless_kinds_are_created_updated_in_place_and_deleted").await else {
        return;
    };
    let engine = m.engine();
    let dir = tempfile_dir("serverless");
    let name = unique("sls");
    let mut v = Values {
        zip: zip_with(&dir, "v1", "#!/bin/sh\necho one\n"),
        memory: 256,
        level: "info",
        secret: format!("es-secret-{}", unique("pw")),
        routes: vec![("POST /events", RouteAuth::AwsIam)],
        detail_types: vec!["EC2 Instance Launch Successful"],
        team: "data",
    };
    let digest1 = code_sha256(&std::fs::read(&v.zip).unwrap());
    let s = stack(&name, &v);
    let p = plan(&engine, &s).await;
    assert_eq!(action(&p, "aws_lambda_function.ingest"), Action::Create);
    let text = plan_text(&p.plan);
    assert!(
        text.contains(&digest1),
        "the plan shows the code digest:\n{text}"
    );
    assert!(text.contains("secret_environment"), "{text}");
    assert_redacted(&p, &v.secret, "create");
    let (_, report) = apply(&engine, &s).await;
    assert!(!report_text(&report).contains(&v.secret));
    assert_noop(&engine, &s, "after create").await;

    // What a read costs: the listings, then per object of the stack only (other stacks'
    // functions, APIs and rules on this moto cost nothing past the listings).
    let _ = plan(&engine, &s).await;
    let calls = m.provider.last_read_calls();
    for (op, n) in [
        ("lambda.ListTags", 1),
        ("lambda.GetPolicy", 1),
        ("apigatewayv2.GetRoutes", 1),
        ("apigatewayv2.GetIntegrations", 1),
        ("apigatewayv2.GetStages", 1),
        ("eventbridge.ListTagsForResource", 1),
        ("eventbridge.ListTargetsByRule", 1),
    ] {
        assert_eq!(calls.get(op), Some(&n), "{op}: {calls:#?}");
    }
    assert!(
        calls.get("lambda.ListFunctions").is_some_and(|n| *n >= 1),
        "{calls:#?}"
    );

    // What AWS holds.
    let fname = format!("{name}-ingest");
    let f = function(&m, &fname).await;
    let c = f.configuration().unwrap();
    assert_eq!(c.code_sha256(), Some(digest1.as_str()));
    assert_eq!(c.runtime().map(|r| r.as_str()), Some("provided.al2023"));
    assert_eq!(c.handler(), Some("bootstrap"));
    assert_eq!(c.memory_size(), Some(256));
    assert_eq!(c.timeout(), Some(10));
    let vars = c.environment().and_then(|e| e.variables()).unwrap();
    assert_eq!(vars.get("LOG_LEVEL").map(String::as_str), Some("info"));
    assert_eq!(vars.get("ES_PASSWORD"), Some(&v.secret));
    let tags = f.tags().unwrap();
    assert_eq!(tags.get("infra:stack"), Some(&name));
    assert_eq!(
        tags.get("infra:id").map(String::as_str),
        Some("aws_lambda_function.ingest")
    );
    assert_eq!(
        tags.get("infra:secret-env").map(String::as_str),
        Some("ES_PASSWORD")
    );
    assert_eq!(tags.get("team").map(String::as_str), Some("data"));
    let policy = m
        .lambda
        .get_policy()
        .function_name(&fname)
        .send()
        .await
        .unwrap();
    let policy: serde_json::Value = serde_json::from_str(policy.policy().unwrap()).unwrap();
    let sids: Vec<&str> = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["Sid"].as_str())
        .collect();
    assert!(
        sids.contains(&format!("{name}-ingest-from-api").as_str()),
        "{sids:?}"
    );
    assert!(
        sids.contains(&format!("{name}-ingest-from-rule").as_str()),
        "{sids:?}"
    );
    let api = api_of(&m, &name).await;
    let api_id = api.api_id().unwrap().to_string();
    assert_eq!(
        api.tags()
            .and_then(|t| t.get("infra:id"))
            .map(String::as_str),
        Some("aws_apigatewayv2_api.ingest")
    );
    let routes = m.apigw.get_routes().api_id(&api_id).send().await.unwrap();
    let routes = routes.items();
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0].route_key(), Some("POST /events"));
    assert_eq!(
        routes[0].authorization_type().map(|a| a.as_str()),
        Some("AWS_IAM")
    );
    let integrations = m
        .apigw
        .get_integrations()
        .api_id(&api_id)
        .send()
        .await
        .unwrap();
    let integration = &integrations.items()[0];
    assert_eq!(integration.integration_uri(), c.function_arn());
    assert_eq!(integration.payload_format_version(), Some("2.0"));
    let stages = m.apigw.get_stages().api_id(&api_id).send().await.unwrap();
    assert_eq!(stages.items()[0].stage_name(), Some("$default"));
    assert_eq!(stages.items()[0].auto_deploy(), Some(true));
    let rule_name = format!("{name}-ingest");
    let targets = m
        .events
        .list_targets_by_rule()
        .rule(&rule_name)
        .send()
        .await
        .unwrap();
    assert_eq!(targets.targets().len(), 1);
    assert_eq!(Some(targets.targets()[0].arn()), c.function_arn());
    // The API's source ARN is what the permission holds.
    let observed = crate::support::observed(&m, &name, "aws_apigatewayv2_api.ingest").await;
    let source = observed.props["source_arn"].as_str().unwrap().to_string();
    assert!(
        source.starts_with("arn:aws:execute-api:us-east-1:")
            && source.ends_with(&format!(":{api_id}/*")),
        "{source}"
    );
    let perm = crate::support::observed(&m, &name, "aws_lambda_permission.ingest-from-api").await;
    assert_eq!(perm.props["source_arn"].as_str(), Some(source.as_str()));

    // A new zip: UpdateFunctionCode in place, never a replacement.
    let creates = op_count(&m, "CreateFunction");
    let code_updates = op_count(&m, "UpdateFunctionCode");
    let config_updates = op_count(&m, "UpdateFunctionConfiguration");
    v.zip = zip_with(&dir, "v2", "#!/bin/sh\necho two\n");
    let digest2 = code_sha256(&std::fs::read(&v.zip).unwrap());
    let s = stack(&name, &v);
    let p = plan(&engine, &s).await;
    assert_eq!(action(&p, "aws_lambda_function.ingest"), Action::Update);
    assert_eq!(fields(&p, "aws_lambda_function.ingest"), ["code_sha256"]);
    let text = plan_text(&p.plan);
    assert!(text.contains(&digest1) && text.contains(&digest2), "{text}");
    assert_eq!(p.plan.actionable().count(), 1, "{text}");
    apply(&engine, &s).await;
    assert_noop(&engine, &s, "after the new code").await;
    assert_eq!(op_count(&m, "UpdateFunctionCode"), code_updates + 1);
    assert_eq!(op_count(&m, "UpdateFunctionConfiguration"), config_updates);
    assert_eq!(op_count(&m, "CreateFunction"), creates);
    let f = function(&m, &fname).await;
    assert_eq!(
        f.configuration().unwrap().code_sha256(),
        Some(digest2.as_str())
    );

    // Configuration: UpdateFunctionConfiguration, code untouched.
    v.memory = 512;
    v.level = "debug";
    let s = stack(&name, &v);
    let p = plan(&engine, &s).await;
    assert_eq!(
        fields(&p, "aws_lambda_function.ingest"),
        ["environment", "memory_size"]
    );
    apply(&engine, &s).await;
    assert_noop(&engine, &s, "after the configuration change").await;
    assert_eq!(op_count(&m, "UpdateFunctionCode"), code_updates + 1);
    assert_eq!(
        op_count(&m, "UpdateFunctionConfiguration"),
        config_updates + 1
    );
    let c = function(&m, &fname).await.configuration().unwrap().clone();
    assert_eq!(c.memory_size(), Some(512));
    let vars = c.environment().and_then(|e| e.variables()).unwrap();
    assert_eq!(vars.get("LOG_LEVEL").map(String::as_str), Some("debug"));
    assert_eq!(
        vars.get("ES_PASSWORD"),
        Some(&v.secret),
        "the secret is kept"
    );

    // Drift by hand: memory and the secret (found by digest, shown redacted).
    let by_hand = format!("hand-made-{}", unique("x"));
    let mut vars: std::collections::HashMap<String, String> = vars.clone();
    vars.insert("ES_PASSWORD".into(), by_hand.clone());
    m.lambda
        .update_function_configuration()
        .function_name(&fname)
        .memory_size(1024)
        .environment(
            aws_sdk_lambda::types::Environment::builder()
                .set_variables(Some(vars))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let p = plan(&engine, &s).await;
    assert_eq!(
        fields(&p, "aws_lambda_function.ingest"),
        ["memory_size", "secret_environment"]
    );
    assert_redacted(&p, &by_hand, "drift");
    assert_redacted(&p, &v.secret, "drift");
    assert!(
        plan_text(&p.plan).contains("(sensitive"),
        "{}",
        plan_text(&p.plan)
    );
    apply(&engine, &s).await;
    assert_noop(&engine, &s, "after repairing the drift").await;
    let c = function(&m, &fname).await.configuration().unwrap().clone();
    assert_eq!(c.memory_size(), Some(512));
    assert_eq!(
        c.environment()
            .and_then(|e| e.variables())
            .unwrap()
            .get("ES_PASSWORD"),
        Some(&v.secret)
    );

    // Routes, the rule's pattern and tags change in place; the API and rule stay.
    v.routes = vec![
        ("POST /events", RouteAuth::AwsIam),
        ("GET /health", RouteAuth::AwsIam),
    ];
    v.detail_types = vec![
        "EC2 Instance Launch Successful",
        "EC2 Instance Terminate Successful",
    ];
    v.team = "platform";
    let s = stack(&name, &v);
    let p = plan(&engine, &s).await;
    assert_eq!(action(&p, "aws_apigatewayv2_api.ingest"), Action::Update);
    assert_eq!(
        fields(&p, "aws_apigatewayv2_api.ingest"),
        ["routes", "tags"]
    );
    assert_eq!(
        action(&p, "aws_cloudwatch_event_rule.ingest"),
        Action::Update
    );
    assert_eq!(
        fields(&p, "aws_cloudwatch_event_rule.ingest"),
        ["event_pattern"]
    );
    apply(&engine, &s).await;
    assert_noop(&engine, &s, "after the route and pattern changes").await;
    assert_eq!(api_of(&m, &name).await.api_id(), Some(api_id.as_str()));
    let routes = m.apigw.get_routes().api_id(&api_id).send().await.unwrap();
    let keys: BTreeMap<&str, &str> = routes
        .items()
        .iter()
        .map(|r| {
            (
                r.route_key().unwrap(),
                r.authorization_type().map_or("", |a| a.as_str()),
            )
        })
        .collect();
    assert_eq!(
        keys,
        BTreeMap::from([("GET /health", "AWS_IAM"), ("POST /events", "AWS_IAM")])
    );
    // A route removed by hand is drift, put back.
    let health = routes
        .items()
        .iter()
        .find(|r| r.route_key() == Some("GET /health"))
        .unwrap();
    m.apigw
        .delete_route()
        .api_id(&api_id)
        .route_id(health.route_id().unwrap())
        .send()
        .await
        .unwrap();
    let p = plan(&engine, &s).await;
    assert_eq!(fields(&p, "aws_apigatewayv2_api.ingest"), ["routes"]);
    apply(&engine, &s).await;
    assert_noop(&engine, &s, "after restoring the route").await;

    // A removed permission is deleted from the policy (the function stays).
    let mut fewer = stack(&name, &v);
    fewer.remove(&"aws_lambda_permission.ingest-from-rule".parse().unwrap());
    let p = plan(&engine, &fewer).await;
    assert_eq!(
        action(&p, "aws_lambda_permission.ingest-from-rule"),
        Action::Delete
    );
    assert_eq!(p.plan.actionable().count(), 1, "{}", plan_text(&p.plan));
    apply(&engine, &fewer).await;
    assert_noop(&engine, &fewer, "after removing a permission").await;

    // Delete everything, in dependency order (permissions, rule and API before the function,
    // the function before its role; moto would not refuse another order).
    destroy(&m, &engine, &fewer).await;
    assert!(m
        .lambda
        .get_function()
        .function_name(&fname)
        .send()
        .await
        .is_err());
    assert!(m
        .events
        .describe_rule()
        .name(&rule_name)
        .send()
        .await
        .is_err());
    assert!(m.apigw.get_api().api_id(&api_id).send().await.is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A temporary directory of this test run.
pub(crate) fn tempfile_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique(what));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_rule_name_taken_by_someone_else_is_refused_not_overwritten() {
    let Some(m) = moto("an_event_rule_name_taken_by_someone_else_is_refused_not_overwritten").await
    else {
        return;
    };
    let name = unique("slsrule");
    let pattern = r#"{"source":["by.hand"]}"#;
    m.events
        .put_rule()
        .name(format!("{name}-taken"))
        .event_pattern(pattern)
        .send()
        .await
        .unwrap();
    let mut s = Stack::new(&name);
    s.add(
        EventRule::new("taken").event_pattern(serde_json::json!({ "source": ["aws.autoscaling"] })),
    );
    let p = plan(&m.engine(), &s).await;
    let report = m
        .engine()
        .apply(&p, &infra_core::reconcile::NoObserver)
        .await
        .unwrap();
    assert!(!report.is_success());
    let text = report_text(&report);
    assert!(
        text.contains("RuleAlreadyExists") && text.contains(&name),
        "{text}"
    );
    let kept = m
        .events
        .describe_rule()
        .name(format!("{name}-taken"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        kept.event_pattern(),
        Some(pattern),
        "the rule is left alone"
    );
    m.events
        .delete_rule()
        .name(format!("{name}-taken"))
        .send()
        .await
        .unwrap();
}

#[test]
fn validation_reports_every_problem_with_resource_and_field() {
    let mut s = Stack::new("val");
    let f = s.add(
        LambdaFunction::new("ingest")
            .code(LambdaCode::zip_file(
                "/nonexistent/target/lambda/ingest/bootstrap.zip",
            ))
            .memory_mb(64)
            .env("AWS_REGION", "us-east-1")
            .env("ES_PASSWORD", "plain")
            .secret_env("ES_PASSWORD", "hunter2-secret"),
    );
    s.add(
        HttpApi::new("api")
            .route("FETCH /x", &f, RouteAuth::None)
            .route("FETCH /x", &f, RouteAuth::None),
    );
    s.add(EventRule::new("r").event_pattern(serde_json::json!({ "source": "aws.autoscaling" })));
    s.add(LambdaPermission::new("p").principal("events.amazonaws.com"));
    let text: Vec<String> = match infra_core::graph::Graph::build(&s) {
        Ok(_) => Vec::new(),
        Err(e) => e
            .problems
            .into_iter()
            .map(|p| format!("{} {}: {}", p.address, p.field, p.message))
            .collect(),
    };
    let has = |needle: &[&str]| {
        assert!(
            text.iter().any(|t| needle.iter().all(|n| t.contains(n))),
            "no problem with {needle:?} in:\n{}",
            text.join("\n")
        )
    };
    has(&[
        "aws_lambda_function.ingest",
        "code",
        "cargo run --example build-functions",
    ]);
    has(&["aws_lambda_function.ingest", "role", "required"]);
    has(&["aws_lambda_function.ingest", "memory_size", "64"]);
    has(&["aws_lambda_function.ingest", "environment", "AWS_REGION"]);
    has(&[
        "aws_lambda_function.ingest",
        "secret_environment",
        "ES_PASSWORD",
        "both",
    ]);
    has(&["aws_apigatewayv2_api.api", "routes", "FETCH"]);
    has(&["aws_apigatewayv2_api.api", "routes", "twice"]);
    has(&["aws_cloudwatch_event_rule.r", "event_pattern", "source"]);
    has(&["aws_lambda_permission.p", "function_name"]);
    assert!(
        !text.iter().any(|t| t.contains("hunter2-secret")),
        "no secret in problems"
    );
    let _ = f.address();
}

/// The writes whose lost responses and throttling the fault test injects.
const SERVERLESS_WRITES: &[&str] = &[
    "CreateFunction",
    "AddPermission",
    "CreateApi",
    "CreateIntegration",
    "CreateRoute",
    "CreateStage",
    "PutRule",
    "PutTargets",
    "DeleteFunction",
    "RemovePermission",
    "DeleteApi",
    "RemoveTargets",
    "DeleteRule",
];

#[tokio::test(flavor = "multi_thread")]
async fn lost_responses_and_throttling_on_creates_and_deletes_leave_no_duplicate() {
    use infra_test_support::proxy::{FaultConfig, FaultProxy};
    let Some(direct) =
        moto("lost_responses_and_throttling_on_creates_and_deletes_leave_no_duplicate").await
    else {
        return;
    };
    let proxy = FaultProxy::start(&crate::support::endpoint(), FaultConfig::transparent())
        .await
        .expect("proxy");
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(proxy.url())
        .region(aws_config::Region::new("us-east-1"))
        .test_credentials()
        .load()
        .await;
    let provider = AwsProvider::from_sdk_config(&config)
        .unwrap()
        .with_wait_timeout(std::time::Duration::from_secs(60))
        .with_max_poll_interval(std::time::Duration::from_millis(200));
    let m = Moto {
        provider: std::sync::Arc::new(provider),
        ..direct
    };
    // Enough attempts for every step of a create to lose its response once.
    let engine = infra_core::engine::Engine::new()
        .with_provider_arc(m.provider.clone())
        .with_options(infra_core::reconcile::ApplyOptions {
            concurrency: 10,
            retry: infra_core::reconcile::RetryPolicy {
                max_attempts: 10,
                base_delay: std::time::Duration::from_millis(20),
                max_delay: std::time::Duration::from_millis(200),
            },
            ..infra_core::reconcile::ApplyOptions::default()
        });
    let dir = tempfile_dir("serverless-faults");
    let name = unique("slsf");
    let v = Values {
        zip: zip_with(&dir, "v1", "#!/bin/sh\necho one\n"),
        memory: 128,
        level: "info",
        secret: format!("es-secret-{}", unique("pw")),
        routes: vec![
            ("POST /events", RouteAuth::AwsIam),
            ("GET /health", RouteAuth::AwsIam),
        ],
        detail_types: vec!["EC2 Instance Launch Successful"],
        team: "data",
    };
    let s = stack(&name, &v);
    let only = |rate_lost: f64, rate_throttle: f64| FaultConfig {
        seed: 12,
        lost_response_rate: rate_lost,
        throttle_rate: rate_throttle,
        only_actions: Some(SERVERLESS_WRITES.iter().map(|a| a.to_string()).collect()),
        ..FaultConfig::transparent()
    };

    // Every serverless write loses its response (the change happens, the client never
    // hears), then half of them are throttled: the apply still converges.
    proxy.set_config(only(1.0, 0.0));
    let p = plan(&engine, &s).await;
    let first = engine
        .apply(&p, &infra_core::reconcile::NoObserver)
        .await
        .unwrap();
    proxy.set_config(only(0.0, 0.5));
    if !first.is_success() {
        apply(&engine, &s).await;
    }
    proxy.set_config(FaultConfig::transparent());
    let stats = proxy.stats();
    for op in [
        "CreateFunction",
        "AddPermission",
        "CreateApi",
        "CreateRoute",
        "PutRule",
    ] {
        assert!(
            stats.action(op).lost_responses > 0,
            "{op} lost no response: {:?}",
            stats.action(op)
        );
    }
    assert_noop(&engine, &s, "after the faulty apply").await;

    // Exactly one of each, and no orphan integration.
    let fname = format!("{name}-ingest");
    let functions = m.lambda.list_functions().send().await.unwrap();
    assert_eq!(
        functions
            .functions()
            .iter()
            .filter(|f| f.function_name() == Some(fname.as_str()))
            .count(),
        1
    );
    let apis = m.apigw.get_apis().send().await.unwrap();
    let ours: Vec<_> = apis
        .items()
        .iter()
        .filter(|a| a.name() == Some(fname.as_str()))
        .collect();
    assert_eq!(ours.len(), 1, "one API, not a duplicate per lost CreateApi");
    assert!(
        ours[0].tags().is_some_and(|t| t.contains_key("infra:id")),
        "the API is tagged"
    );
    let api_id = ours[0].api_id().unwrap();
    let routes = m.apigw.get_routes().api_id(api_id).send().await.unwrap();
    let integrations = m
        .apigw
        .get_integrations()
        .api_id(api_id)
        .send()
        .await
        .unwrap();
    assert_eq!(routes.items().len(), 2);
    assert_eq!(
        integrations.items().len(),
        2,
        "one integration per route, no orphan left by a lost CreateIntegration"
    );
    let stages = m.apigw.get_stages().api_id(api_id).send().await.unwrap();
    assert_eq!(stages.items().len(), 1);
    let policy = m
        .lambda
        .get_policy()
        .function_name(&fname)
        .send()
        .await
        .unwrap();
    let policy: serde_json::Value = serde_json::from_str(policy.policy().unwrap()).unwrap();
    let mut sids: Vec<&str> = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["Sid"].as_str())
        .collect();
    sids.sort();
    let n = sids.len();
    sids.dedup();
    assert_eq!(n, sids.len(), "a statement twice: {sids:?}");
    assert_eq!(n, 2, "{sids:?}");
    let rules = m
        .events
        .list_rules()
        .name_prefix(&fname)
        .send()
        .await
        .unwrap();
    assert_eq!(rules.rules().len(), 1);

    // Deletes with lost responses and throttling: the destroy converges too.
    proxy.set_config(only(0.5, 0.3));
    let dp = engine
        .plan(
            &s,
            &infra_core::plan::PlanOptions {
                destroy: true,
                allow_destroy_all: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let _ = engine.apply(&dp, &infra_core::reconcile::NoObserver).await;
    proxy.set_config(FaultConfig::transparent());
    destroy(&m, &engine, &s).await;
    assert!(m
        .lambda
        .get_function()
        .function_name(&fname)
        .send()
        .await
        .is_err());
    let _ = std::fs::remove_dir_all(&dir);
}
