//! Import of the serverless kinds: a Lambda function (with its role), a permission, an
//! EventBridge rule and an HTTP API made with the SDK are discovered after what they refer to,
//! with their exact builder chains (a secret-looking environment value never in them); the
//! permission's adoption is refused, the others are adopted and read as the stack's.
//!
//! moto is shared with other tests: every object's name starts with a unique prefix and every
//! discovery is narrowed by it.

use infra_core::dsl::Address;
use infra_core::import::Found;
use infra_core::provider::{OpContext, Provider};

use crate::import::{by_id, discover, generate, objects, position, prefix_filter, s};
use crate::support::{moto, unique, Moto};

/// A Lambda function made with the SDK (its role too) with a plain and a secret-looking
/// environment variable, and a permission letting EventBridge invoke it.
struct Serverless {
    role_arn: String,
    function: String,
    digest: String,
    permission: String,
    rule: String,
    scheduled: String,
    api: String,
}

async fn serverless_by_hand(m: &Moto, p: &str, team: &str, secret: &str) -> Serverless {
    let n = |s: &str| format!("{p}-{s}");
    let role = m
        .iam
        .create_role()
        .role_name(n("fnrole"))
        .assume_role_policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
        )
        .send()
        .await
        .expect("CreateRole");
    let role_arn = role.role().unwrap().arn().to_string();
    let dir = crate::serverless::tempfile_dir("import-fn");
    let zip = crate::serverless::zip_with(&dir, "hook", "#!/bin/sh\necho hook\n");
    let bytes = std::fs::read(&zip).unwrap();
    let digest = infra_aws::code_sha256(&bytes);
    let function = n("hook");
    m.lambda
        .create_function()
        .function_name(&function)
        .runtime(aws_sdk_lambda::types::Runtime::Providedal2023)
        .handler("bootstrap")
        .role(&role_arn)
        .memory_size(256)
        .timeout(10)
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(aws_sdk_lambda::primitives::Blob::new(bytes))
                .build(),
        )
        .environment(
            aws_sdk_lambda::types::Environment::builder()
                .variables("MODE", "fast")
                .variables("API_TOKEN", secret)
                .build(),
        )
        .tags("team", team)
        .send()
        .await
        .expect("CreateFunction");
    m.lambda
        .add_permission()
        .function_name(&function)
        .statement_id("from-events")
        .action("lambda:InvokeFunction")
        .principal("events.amazonaws.com")
        .source_arn("arn:aws:events:us-east-1:123456789012:rule/nightly")
        .send()
        .await
        .expect("AddPermission");
    let arn = m
        .lambda
        .get_function()
        .function_name(&function)
        .send()
        .await
        .expect("GetFunction")
        .configuration()
        .unwrap()
        .function_arn()
        .unwrap()
        .to_string();
    let rule = n("ec2events");
    m.events
        .put_rule()
        .name(&rule)
        .event_pattern(r#"{"source":["aws.ec2"]}"#)
        .tags(
            aws_sdk_eventbridge::types::Tag::builder()
                .key("team")
                .value(team)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("PutRule");
    m.events
        .put_targets()
        .rule(&rule)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("hook")
                .arn(&arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("PutTargets");
    let scheduled = n("nightly");
    m.events
        .put_rule()
        .name(&scheduled)
        .schedule_expression("rate(1 day)")
        .send()
        .await
        .expect("PutRule scheduled");
    let api = m
        .apigw
        .create_api()
        .name(n("api"))
        .protocol_type(aws_sdk_apigatewayv2::types::ProtocolType::Http)
        .tags("team", team)
        .send()
        .await
        .expect("CreateApi")
        .api_id()
        .unwrap()
        .to_string();
    let integration = m
        .apigw
        .create_integration()
        .api_id(&api)
        .integration_type(aws_sdk_apigatewayv2::types::IntegrationType::AwsProxy)
        .integration_uri(&arn)
        .payload_format_version("2.0")
        .timeout_in_millis(10_000)
        .send()
        .await
        .expect("CreateIntegration")
        .integration_id()
        .unwrap()
        .to_string();
    m.apigw
        .create_route()
        .api_id(&api)
        .route_key("POST /events")
        .authorization_type(aws_sdk_apigatewayv2::types::AuthorizationType::AwsIam)
        .target(format!("integrations/{integration}"))
        .send()
        .await
        .expect("CreateRoute");
    m.apigw
        .create_stage()
        .api_id(&api)
        .stage_name("$default")
        .auto_deploy(true)
        .send()
        .await
        .expect("CreateStage");
    Serverless {
        role_arn,
        api,
        rule,
        scheduled,
        permission: format!("{function}/from-events"),
        function,
        digest,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn lambda_functions_and_permissions_are_imported_and_permissions_never_adopted() {
    let Some(m) =
        moto("lambda_functions_and_permissions_are_imported_and_permissions_never_adopted").await
    else {
        return;
    };
    let p = unique("ims");
    let team = unique("team");
    let secret = unique("tok");
    let h = serverless_by_hand(&m, &p, &team, &secret).await;
    let found = discover(&m, &prefix_filter(&p, None)).await;
    assert!(!format!("{found:?}").contains(&secret), "the secret leaked");

    // The role before the function, the function before its permission.
    let role = objects(&found)
        .into_iter()
        .find(|d| d.aliases.contains(&h.role_arn))
        .expect("the role is discovered");
    assert!(position(&found, &role.id) < position(&found, &h.function));
    assert!(position(&found, &h.function) < position(&found, &h.rule));
    assert!(position(&found, &h.rule) < position(&found, &h.permission));
    assert!(position(&found, &h.function) < position(&found, &h.api));
    let scheduled = found.iter().find_map(|f| match f {
        Found::Inexpressible { what, id, reason } if *id == h.scheduled => Some((what, reason)),
        _ => None,
    });
    let (what, reason) = scheduled.expect("the scheduled rule is listed");
    assert_eq!(what, "EventBridge rule");
    assert!(reason.contains("schedule"), "{reason}");
    let f = by_id(&found, &h.function);
    assert!(f
        .aliases
        .iter()
        .any(|a| a.ends_with(&format!(":function:{}", h.function))));
    assert_eq!(s(f, "role"), Some(h.role_arn.clone()));
    assert_eq!(
        f.notes,
        [format!(
            "its code can't be read back into the module: build the function's zip (CodeSha256 \
             `{}`) and point `.code(…)` at it; a zip with other content is uploaded as new code",
            h.digest
        )]
    );
    let perm = by_id(&found, &h.permission);
    assert_eq!(perm.name, format!("{}-from-events", h.function));
    assert_eq!(
        s(perm, "principal").as_deref(),
        Some("events.amazonaws.com")
    );

    let code = generate(&found);
    let text = code.values().cloned().collect::<Vec<_>>().join("\n");
    assert!(!text.contains(&secret), "the secret is in the module");
    let var = "INFRA_SECRET_LAMBDA_FUNCTION_HOOK_API_TOKEN";
    assert_eq!(
        code[&h.function],
        format!(
            "// `lambda/{f}.zip` is a placeholder: put the function's zip there (or change the \
             path)\n\
             // its environment variable `API_TOKEN` is kept as a secret (not read into the \
             module): set `{var}` to its value when planning\n\
             LambdaFunction::new(\"lambda_function_hook\")\
             .code(infra::aws::LambdaCode::zip_file(\"lambda/{f}.zip\"))\
             .role(infra::aws::IamRoleOutputs::arn(&iam_role_fnrole)).memory_mb(256)\
             .timeout(std::time::Duration::from_secs(10)).env(\"MODE\", \"fast\")\
             .secret_env_from_env(\"API_TOKEN\", \"{var}\").tag(\"team\", \"{team}\")",
            f = h.function
        )
    );
    assert_eq!(
        code[&h.permission],
        format!(
            "// a permission can't be adopted (it can't be tagged): applying this adds the \
             stack's own statement; then remove `{}` (`aws lambda remove-permission`)\n\
             LambdaPermission::new(\"lambda_permission_events\")\
             .function(infra::aws::LambdaFunctionOutputs::name(&lambda_function_hook))\
             .principal(\"events.amazonaws.com\")\
             .source_arn::<()>(\"arn:aws:events:us-east-1:123456789012:rule/nightly\")",
            h.permission
        )
    );

    assert_eq!(
        code[&h.rule],
        format!(
            "// its event pattern is parsed by `serde_json` (a dependency this module needs)\n\
             EventRule::new(\"cloudwatch_event_rule_ec2events\")\
             .event_pattern(serde_json::from_str(r#\"{{\"source\":[\"aws.ec2\"]}}\"#)\
             .expect(\"the imported event pattern\"))\
             .target(\"hook\", &lambda_function_hook).tag(\"team\", \"{team}\")"
        )
    );

    assert_eq!(
        code[&h.api],
        format!(
            "HttpApi::new(\"apigatewayv2_api_api\")\
             .route(\"POST /events\", &lambda_function_hook, infra::aws::RouteAuth::AwsIam)\
             .timeout(std::time::Duration::from_millis(10000)).tag(\"team\", \"{team}\")"
        )
    );

    // The permission: read, but its adoption is refused with the reason.
    let schemas = infra_aws::kinds::schemas();
    let stack = unique("adopter");
    let op = OpContext {
        stack: stack.clone(),
        idempotency_token: "t".into(),
        attempt: 1,
    };
    let schema = *schemas
        .iter()
        .find(|s| s.kind == "aws_lambda_permission")
        .unwrap();
    let address = Address::new("aws_lambda_permission", "from_events");
    let current = m
        .provider
        .read_unowned(schema, &h.permission, &address)
        .await
        .unwrap()
        .expect("the permission is read");
    assert_eq!(current.props, perm.props);
    let e = m.provider.adopt(&op, &current, &address).await.unwrap_err();
    assert!(
        e.message.contains("aws_lambda_permission.from_events")
            && e.message.contains("can't be tagged"),
        "{e}"
    );

    // A function whose name isn't `<stack>-…` is refused (the stack's read lists its
    // functions by that prefix); under a stack named after its prefix it is adopted by
    // TagResource, its other tags untouched, and read as the stack's with its secret digested.
    let schema = *schemas
        .iter()
        .find(|s| s.kind == "aws_lambda_function")
        .unwrap();
    let address = Address::new("aws_lambda_function", "hook");
    let current = m
        .provider
        .read_unowned(schema, &h.function, &address)
        .await
        .unwrap()
        .expect("the function is read");
    assert!(
        !format!("{current:?}").contains(&secret),
        "the secret leaked"
    );
    let e = m.provider.adopt(&op, &current, &address).await.unwrap_err();
    assert!(e.message.contains("name prefix"), "{e}");
    let op = OpContext {
        stack: p.clone(),
        idempotency_token: "t".into(),
        attempt: 1,
    };
    m.provider
        .adopt(&op, &current, &address)
        .await
        .expect("adopt");
    let schema = *schemas
        .iter()
        .find(|s| s.kind == "aws_cloudwatch_event_rule")
        .unwrap();
    let rule_at = Address::new("aws_cloudwatch_event_rule", "ec2events");
    let rule = m
        .provider
        .read_unowned(schema, &h.rule, &rule_at)
        .await
        .unwrap()
        .expect("the rule is read");
    assert_eq!(rule.props, by_id(&found, &h.rule).props);
    m.provider
        .adopt(&op, &rule, &rule_at)
        .await
        .expect("adopt the rule");
    let schema = *schemas
        .iter()
        .find(|s| s.kind == "aws_apigatewayv2_api")
        .unwrap();
    let api_at = Address::new("aws_apigatewayv2_api", "api");
    let api = m
        .provider
        .read_unowned(schema, &h.api, &api_at)
        .await
        .unwrap()
        .expect("the API is read");
    assert_eq!(api.props, by_id(&found, &h.api).props);
    m.provider
        .adopt(&op, &api, &api_at)
        .await
        .expect("adopt the API");
    let read = m.provider.read(&p).await.expect("read");
    let a = read
        .resources
        .iter()
        .find(|o| o.address == api_at)
        .unwrap_or_else(|| panic!("the API is not read as the stack's: {read:#?}"));
    assert_eq!(a.props, api.props);
    let r = read
        .resources
        .iter()
        .find(|o| o.address == rule_at)
        .unwrap_or_else(|| panic!("the rule is not read as the stack's: {read:#?}"));
    assert_eq!(r.props, rule.props);
    let o = read
        .resources
        .iter()
        .find(|o| o.address == address)
        .unwrap_or_else(|| panic!("the function is not read as the stack's: {read:#?}"));
    assert_eq!(o.id, h.function);
    assert_eq!(
        o.props.get("secret_environment"),
        current.props.get("secret_environment")
    );
    assert!(o.props.contains_key("secret_environment"));
    let t = m
        .lambda
        .list_tags()
        .resource(s(f, "arn").unwrap())
        .send()
        .await
        .unwrap();
    let t = t.tags().unwrap();
    assert_eq!(t.get("team"), Some(&team));
    assert_eq!(
        t.get("infra:id").map(String::as_str),
        Some("aws_lambda_function.hook")
    );
}
