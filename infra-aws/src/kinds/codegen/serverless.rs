//! Code generators of the serverless kinds. A function's code can't be read back: the chain
//! points `.code(…)` at a zip path to fill in, with a comment giving the code's digest.

use infra_core::import::{rust_str, Discovered, Generated, ImportNames};
use infra_core::Value;

use super::{env_var, json, map_of, raw_str, strings, Chain};

/// `LambdaFunction::new(..).code(..)` with its settings where they differ from the builder's
/// defaults, its role (typed when imported), environment (secrets from the environment) and
/// VPC (typed).
pub(crate) fn lambda_function(o: &Discovered, name: &str, names: &ImportNames) -> Generated {
    let mut c = Chain::named(o, names, "infra::aws::LambdaFunction", name);
    let zip = format!("lambda/{}.zip", o.id);
    c.comment(format!(
        "`{zip}` is a placeholder: put the function's zip there (or change the path)"
    ));
    c.call(
        "code",
        &format!("infra::aws::LambdaCode::zip_file({})", rust_str(&zip)),
    );
    c.str_unless("runtime", "runtime", Some("provided.al2023"))
        .str_unless("handler", "handler", Some("bootstrap"));
    if let Some(role) = c.str("role") {
        match names.var("aws_iam_role", role) {
            Some(v) => c.call("role", &format!("infra::aws::IamRoleOutputs::arn(&{v})")),
            None => c.call("role", &rust_str(role)),
        };
    }
    let int = |f: &str| o.props.get(f).and_then(Value::as_i64);
    if let Some(mb) = int("memory_size").filter(|m| *m != 128) {
        c.call("memory_mb", &mb.to_string());
    }
    if let Some(t) = int("timeout").filter(|t| *t != 3) {
        c.call("timeout", &format!("std::time::Duration::from_secs({t})"));
    }
    if c.str("architecture") == Some("arm64") {
        c.call("architecture", "infra::aws::LambdaArchitecture::Arm64");
    }
    c.str_unless("description", "description", None);
    for (k, v) in map_of(c.get("environment")) {
        if let Some(v) = v.as_str() {
            let args = format!("{}, {}", rust_str(k), rust_str(v));
            c.call("env", &args);
        }
    }
    for k in map_of(c.get("secret_environment")).keys() {
        let var = env_var(&format!("INFRA_SECRET_{name}"), k);
        c.comment(format!(
            "its environment variable `{k}` is kept as a secret (not read into the module): set \
             `{var}` to its value when planning"
        ));
        let args = format!("{}, {}", rust_str(k), rust_str(&var));
        c.call("secret_env_from_env", &args);
    }
    let subnet_ids = strings(c.get("subnet_ids"));
    if !subnet_ids.is_empty() {
        let mut subnets = Vec::new();
        for s in subnet_ids {
            subnets.extend(c.reference("vpc", "aws_subnet", "subnet", &s));
        }
        let mut groups = Vec::new();
        for g in strings(c.get("security_group_ids")) {
            groups.extend(c.reference("vpc", "aws_security_group", "security group", &g));
        }
        c.call(
            "vpc",
            &format!("&[{}], &[{}]", subnets.join(", "), groups.join(", ")),
        );
    }
    c.tags().done()
}

/// `LambdaPermission::new(..).function(..).principal(..)` with its action, source ARN and
/// account; a comment says it can't be adopted.
pub(crate) fn lambda_permission(o: &Discovered, name: &str, names: &ImportNames) -> Generated {
    let mut c = Chain::named(o, names, "infra::aws::LambdaPermission", name);
    c.comment(format!(
        "a permission can't be adopted (it can't be tagged): applying this adds the stack's own \
         statement; then remove `{}` (`aws lambda remove-permission`)",
        o.id
    ));
    if let Some(f) = c.str("function_name") {
        match names.var("aws_lambda_function", f) {
            Some(v) => c.call(
                "function",
                &format!("infra::aws::LambdaFunctionOutputs::name(&{v})"),
            ),
            None => c.call("function", &rust_str(f)),
        };
    }
    c.str_unless("principal", "principal", None).str_unless(
        "action",
        "action",
        Some("lambda:InvokeFunction"),
    );
    if let Some(arn) = c.str("source_arn") {
        let arg = rust_str(arn);
        c.call("source_arn::<()>", &arg);
    }
    c.str_unless("source_account", "source_account", None);
    c.done()
}

/// `EventRule::new(..).event_pattern(..)` with its targets (typed when the function was
/// imported), state, description and tags.
pub(crate) fn event_rule(o: &Discovered, name: &str, names: &ImportNames) -> Generated {
    let mut c = Chain::named(o, names, "infra::aws::EventRule", name);
    if let Some(pattern) = c.get("event_pattern") {
        c.comment("its event pattern is parsed by `serde_json` (a dependency this module needs)");
        c.call(
            "event_pattern",
            &format!(
                "serde_json::from_str({}).expect(\"the imported event pattern\")",
                raw_str(&json(pattern))
            ),
        );
    }
    let targets = c
        .get("targets")
        .and_then(Value::as_list)
        .unwrap_or(&[])
        .to_vec();
    for t in targets {
        let t = map_of(Some(&t));
        let (Some(id), Some(arn)) = (
            t.get("id").and_then(|v| v.as_str()),
            t.get("arn").and_then(|v| v.as_str()),
        ) else {
            continue;
        };
        match names.reference("aws_lambda_function", arn) {
            Some(r) => c.call("target", &format!("{}, {r}", rust_str(id))),
            None => {
                if !arn.contains(":lambda:") {
                    c.comment(format!(
                        "its target `{id}` is not a Lambda function (`{arn}`): infra's rules \
                         target functions"
                    ));
                }
                c.call(
                    "target_arn",
                    &format!("{}, {}", rust_str(id), rust_str(arn)),
                )
            }
        };
    }
    if c.str("state") == Some("DISABLED") {
        c.call("disabled", "");
    }
    c.str_unless("description", "description", None);
    c.tags().done()
}

/// `HttpApi::new(..).route(..)` for each route (typed when its function was imported), with
/// its timeout, stage and description where they differ from the builder's defaults.
pub(crate) fn http_api(o: &Discovered, name: &str, names: &ImportNames) -> Generated {
    let mut c = Chain::named(o, names, "infra::aws::HttpApi", name);
    let routes = c
        .get("routes")
        .and_then(Value::as_list)
        .unwrap_or(&[])
        .to_vec();
    for r in routes {
        let r = map_of(Some(&r));
        let s = |k: &str| r.get(k).and_then(|v| v.as_str()).unwrap_or_default();
        let key = s("route_key");
        let auth = match s("authorization_type") {
            "AWS_IAM" => "infra::aws::RouteAuth::AwsIam",
            "NONE" => "infra::aws::RouteAuth::None",
            other => {
                c.comment(format!(
                    "its route `{key}` is authorized by `{other}`: infra declares NONE and \
                     AWS_IAM (written as AWS_IAM)"
                ));
                "infra::aws::RouteAuth::AwsIam"
            }
        };
        if s("payload_format_version") != "2.0" {
            c.comment(format!(
                "its route `{key}` uses payload format {}: infra's routes use 2.0",
                s("payload_format_version")
            ));
        }
        let arn = s("function_arn");
        match names.reference("aws_lambda_function", arn) {
            Some(f) => c.call("route", &format!("{}, {f}, {auth}", rust_str(key))),
            None => c.call(
                "route_to",
                &format!("{}, {}, {auth}", rust_str(key), rust_str(arn)),
            ),
        };
        let ms = r
            .get("timeout_ms")
            .and_then(|v| v.as_i64())
            .unwrap_or(30_000);
        if ms != 30_000 {
            c.call(
                "timeout",
                &format!("std::time::Duration::from_millis({ms})"),
            );
        }
    }
    c.str_unless("stage", "stage_name", Some("$default"));
    if c.get("auto_deploy").and_then(Value::as_bool) == Some(false) {
        c.call("auto_deploy", "false");
    }
    c.str_unless("description", "description", None);
    c.tags().done()
}
