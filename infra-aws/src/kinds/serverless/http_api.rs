//! `aws_apigatewayv2_api`: an API Gateway HTTP API with its routes, their Lambda proxy
//! integrations and its stage, as one kind.
//!
//! Why one kind and not four (API, route, integration, stage): of these only the API and the
//! stage can be tagged; routes and integrations can't, so by DESIGN.md ("Sub-objects that
//! cannot be tagged") they belong to their tagged parent, and a route is meaningless without
//! its integration (one per route here). The stage of an HTTP API with auto-deploy is a
//! setting of the API in practice (`$default`), so it is a field too. The plan shows a changed
//! route as the API's `routes` field; the provider changes only the routes that differ.

use std::time::Duration;

use infra_core::dsl::{Arn, Id, Input, KindSchema, Output, Ref, ResourceSpec};
use infra_core::validate::{Checker, Problem, ValidationContext};
use infra_core::{kind, map, Value};

use super::LambdaFunction;
use crate::kinds::{check_physical_name, check_tags, printable_char};

pub(crate) static HTTP_API: KindSchema = KindSchema::new("aws_apigatewayv2_api", "aws")
    .computed(&["id", "api_endpoint", "source_arn"])
    .unordered(&["routes"])
    .validate(validate_api)
    .codegen(crate::kinds::codegen::http_api);

/// How callers of a route authenticate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RouteAuth {
    /// Anyone on the internet may call the route (policy finding SEC021 unless suppressed
    /// with a reason).
    None,
    /// Callers sign their requests with SigV4 and need `execute-api:Invoke` on the route.
    AwsIam,
}

impl RouteAuth {
    /// The name AWS uses (`NONE`, `AWS_IAM`).
    pub fn api_name(self) -> &'static str {
        match self {
            RouteAuth::None => "NONE",
            RouteAuth::AwsIam => "AWS_IAM",
        }
    }
}

/// The default integration timeout of an HTTP API (also its maximum), in milliseconds.
const DEFAULT_TIMEOUT_MS: i64 = 30_000;

kind! {
    /// An HTTP API named `<stack>-<name>` (its id is the API id), tagged with the stack, its
    /// routes each proxied to a Lambda function (payload format 2.0), and one stage
    /// (`$default`, auto-deployed) also tagged:
    ///
    /// ```
    /// # use infra_aws::*;
    /// # let mut s = infra_core::Stack::new("prod");
    /// # let f = s.add(LambdaFunction::new("ingest"));
    /// let api = s.add(HttpApi::new("ingest").route("POST /events", &f, RouteAuth::AwsIam));
    /// s.add(
    ///     LambdaPermission::new("ingest-from-api")
    ///         .function(f.name())
    ///         .principal("apigateway.amazonaws.com")
    ///         .source_arn(api.source_arn()),
    /// );
    /// ```
    ///
    /// An API serves HTTPS only (`https://<id>.execute-api.<region>.amazonaws.com`). The
    /// function needs a permission for `apigateway.amazonaws.com` from the API's
    /// `source_arn()`, declared as a [`LambdaPermission`](crate::LambdaPermission).
    pub struct HttpApi => HTTP_API
}

impl HttpApi {
    /// An HTTP API named `<stack>-<name>` with the `$default` stage, auto-deployed.
    pub fn new(name: &str) -> Self {
        let mut s = ResourceSpec::new(&HTTP_API, name);
        s.set("routes", Value::List(Vec::new()))
            .set("stage_name", "$default")
            .set("auto_deploy", true);
        HttpApi(s)
    }
    /// A route (`"POST /events"`, `"GET /items/{id}"`, `"$default"`) proxied to `function`
    /// with payload format 2.0 and a 30 s timeout.
    pub fn route(self, route_key: &str, function: &Ref<LambdaFunction>, auth: RouteAuth) -> Self {
        self.route_to(
            route_key,
            function.output::<Arn<LambdaFunction>>("arn"),
            auth,
        )
    }
    /// A route to a function by ARN (a function of the stack: its `arn()`).
    pub fn route_to(
        mut self,
        route_key: &str,
        function_arn: impl Into<Input<Arn<LambdaFunction>>>,
        auth: RouteAuth,
    ) -> Self {
        self.0.push(
            "routes",
            map! {
                "route_key" => route_key,
                "authorization_type" => auth.api_name(),
                "function_arn" => Value::from(function_arn.into()),
                "payload_format_version" => "2.0",
                "timeout_ms" => DEFAULT_TIMEOUT_MS,
            },
        );
        self
    }
    /// The integration timeout of the last route added (50 ms – 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        if let Some(Value::List(routes)) = self.0.props.get_mut("routes") {
            if let Some(Value::Map(last)) = routes.last_mut() {
                last.insert(
                    "timeout_ms".into(),
                    Value::Int(i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX)),
                );
            }
        }
        self
    }
    /// The stage's name (default `$default`, served at the API's root).
    pub fn stage(mut self, name: &str) -> Self {
        self.0.set("stage_name", name);
        self
    }
    /// Whether every change of routes is deployed to the stage at once (default: yes; without
    /// it nothing is served until a deployment is made by hand).
    pub fn auto_deploy(mut self, on: bool) -> Self {
        self.0.set("auto_deploy", on);
        self
    }
    /// The description.
    pub fn description(mut self, text: &str) -> Self {
        self.0.set("description", text);
        self
    }
    /// A user tag (on the API and its stage).
    pub fn tag(mut self, key: &str, value: &str) -> Self {
        self.0.insert("tags", key, value);
        self
    }
}

/// Typed outputs of an HTTP API.
pub trait HttpApiOutputs {
    /// The API's id.
    fn api_id(&self) -> Output<Id<HttpApi>>;
    /// `https://<id>.execute-api.<region>.amazonaws.com`.
    fn endpoint(&self) -> Output<String>;
    /// `arn:aws:execute-api:<region>:<account>:<id>/*`: every invocation through the API's
    /// stages and routes, the source ARN of the functions' permissions. The account is the one
    /// of the routes' functions.
    fn source_arn(&self) -> Output<Arn<HttpApi>>;
}

impl HttpApiOutputs for Ref<HttpApi> {
    fn api_id(&self) -> Output<Id<HttpApi>> {
        self.id()
    }
    fn endpoint(&self) -> Output<String> {
        self.output("api_endpoint")
    }
    fn source_arn(&self) -> Output<Arn<HttpApi>> {
        self.output("source_arn")
    }
}

/// Checks a route key: `$default`, or `METHOD /path` with a method API Gateway knows.
fn check_route_key(c: &mut Checker<'_>, i: usize, key: &str) {
    if key == "$default" {
        return;
    }
    let Some((method, path)) = key.split_once(' ') else {
        c.problem(
            "routes",
            format!("route {i}: `{key}` is not `$default` nor `METHOD /path`"),
        );
        return;
    };
    const METHODS: &[&str] = &[
        "ANY", "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS",
    ];
    if !METHODS.contains(&method) {
        c.problem(
            "routes",
            format!("route {i}: `{method}` is not one of {}", METHODS.join(", ")),
        );
    }
    if !path.starts_with('/') || path.contains(' ') {
        c.problem(
            "routes",
            format!("route {i}: the path `{path}` must start with `/` and have no spaces"),
        );
    }
}

fn validate_api(spec: &ResourceSpec, ctx: &ValidationContext<'_>) -> Vec<Problem> {
    let mut c = Checker::new(spec);
    check_physical_name(&mut c, spec, ctx, "API", 128, printable_char);
    check_tags(&mut c, spec);
    let routes = spec
        .get("routes")
        .and_then(Value::as_list)
        .unwrap_or_default();
    let mut keys = std::collections::BTreeSet::new();
    for (i, r) in routes.iter().enumerate() {
        let Some(r) = r.as_map() else {
            c.problem("routes", format!("route {i} is not a map"));
            continue;
        };
        match r.get("route_key").and_then(Value::as_str) {
            Some(k) => {
                check_route_key(&mut c, i, k);
                if !keys.insert(k) {
                    c.problem("routes", format!("route `{k}` is declared twice"));
                }
            }
            None => c.problem("routes", format!("route {i} has no route key")),
        }
        match r.get("authorization_type").and_then(Value::as_str) {
            Some("NONE" | "AWS_IAM") => {}
            other => c.problem(
                "routes",
                format!("route {i}: authorization {other:?} is not `NONE` or `AWS_IAM`"),
            ),
        }
        match r.get("function_arn") {
            Some(Value::Ref(_)) => {}
            Some(Value::String(s)) if s.starts_with("arn:") && s.contains(":function:") => {}
            other => c.problem(
                "routes",
                format!(
                    "route {i}: the target {} is not a Lambda function ARN",
                    other.map_or("(none)".to_string(), ToString::to_string)
                ),
            ),
        }
        match r.get("timeout_ms").and_then(Value::as_i64) {
            Some(50..=30_000) => {}
            other => c.problem(
                "routes",
                format!("route {i}: timeout {other:?} ms is outside 50-30,000 ms"),
            ),
        }
    }
    if let Some(stage) = c.required_str("stage_name") {
        let ok = stage == "$default"
            || (stage.len() <= 128
                && stage
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "-_".contains(ch)));
        if !ok {
            c.problem(
                "stage_name",
                format!("`{stage}` is not `$default` nor 1-128 of `[A-Za-z0-9-_]`"),
            );
        }
    }
    if let Some(d) = spec.get_str("description") {
        if d.chars().count() > 1024 {
            c.problem("description", "is longer than 1,024 characters");
        }
    }
    c.finish()
}
