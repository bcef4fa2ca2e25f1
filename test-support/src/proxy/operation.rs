//! How the proxy names an AWS call (its operation and target service) and which wire protocol
//! it speaks, so that faults go to named operations only and error bodies take the protocol's
//! shape: query `Action`, JSON `X-Amz-Target`, REST-JSON method + path (a table of the
//! operations this project calls), the service from the SigV4 credential scope.

use http::header::{self, HeaderMap};
use http::Uri;

/// The wire protocols of the project's SDK clients, by their error shapes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Protocol {
    /// EC2: `<Response><Errors><Error>…</Error></Errors><RequestID>…</RequestID></Response>`.
    Ec2Query,
    /// IAM, Auto Scaling, STS, ELBv2…: `<ErrorResponse><Error><Type>…</Type>…</Error><RequestId>…`.
    AwsQuery,
    /// SSM, EventBridge… (`X-Amz-Target`): `{"__type": "Code", "message": "…"}`.
    AwsJson,
    /// Lambda, API Gateway v2… (method + path): `x-amzn-ErrorType: Code` and `{"message": "…"}`.
    RestJson,
}

/// The request's protocol and the name of its operation, when it is an AWS API call this proxy
/// can name (see the module docs).
pub(super) fn operation(
    parts: &http::request::Parts,
    body: &[u8],
    service: Option<&str>,
) -> (Protocol, Option<String>) {
    if let Some(action) = parse_param(&parts.uri, body, "Action") {
        let protocol = if service == Some("ec2") {
            Protocol::Ec2Query
        } else {
            Protocol::AwsQuery
        };
        return (protocol, Some(action));
    }
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok());
    if let Some(target) = target {
        let action = target
            .rsplit('.')
            .next()
            .filter(|a| !a.is_empty() && a.bytes().all(|b| b.is_ascii_alphanumeric()))
            .map(str::to_owned);
        return (Protocol::AwsJson, action);
    }
    let action = service.and_then(|service| {
        rest_operation(service, parts.method.as_str(), parts.uri.path()).map(str::to_owned)
    });
    let protocol = if action.is_some() {
        Protocol::RestJson
    } else {
        Protocol::AwsQuery
    };
    (protocol, action)
}

/// The REST-JSON operations of the services this project calls, as (signing name, method, path
/// pattern, operation); `{}` in a pattern stands for one path segment (a name, an id or an
/// escaped ARN).
const REST_OPERATIONS: &[(&str, &str, &str, &str)] = &[
    ("lambda", "POST", "/2015-03-31/functions", "CreateFunction"),
    ("lambda", "GET", "/2015-03-31/functions", "ListFunctions"),
    ("lambda", "GET", "/2015-03-31/functions/{}", "GetFunction"),
    (
        "lambda",
        "DELETE",
        "/2015-03-31/functions/{}",
        "DeleteFunction",
    ),
    (
        "lambda",
        "PUT",
        "/2015-03-31/functions/{}/code",
        "UpdateFunctionCode",
    ),
    (
        "lambda",
        "GET",
        "/2015-03-31/functions/{}/configuration",
        "GetFunctionConfiguration",
    ),
    (
        "lambda",
        "PUT",
        "/2015-03-31/functions/{}/configuration",
        "UpdateFunctionConfiguration",
    ),
    (
        "lambda",
        "POST",
        "/2015-03-31/functions/{}/policy",
        "AddPermission",
    ),
    (
        "lambda",
        "GET",
        "/2015-03-31/functions/{}/policy",
        "GetPolicy",
    ),
    (
        "lambda",
        "DELETE",
        "/2015-03-31/functions/{}/policy/{}",
        "RemovePermission",
    ),
    ("lambda", "GET", "/2017-03-31/tags/{}", "ListTags"),
    ("lambda", "POST", "/2017-03-31/tags/{}", "TagResource"),
    ("lambda", "DELETE", "/2017-03-31/tags/{}", "UntagResource"),
    ("apigateway", "POST", "/v2/apis", "CreateApi"),
    ("apigateway", "GET", "/v2/apis", "GetApis"),
    ("apigateway", "GET", "/v2/apis/{}", "GetApi"),
    ("apigateway", "PATCH", "/v2/apis/{}", "UpdateApi"),
    ("apigateway", "DELETE", "/v2/apis/{}", "DeleteApi"),
    ("apigateway", "POST", "/v2/apis/{}/routes", "CreateRoute"),
    ("apigateway", "GET", "/v2/apis/{}/routes", "GetRoutes"),
    ("apigateway", "GET", "/v2/apis/{}/routes/{}", "GetRoute"),
    (
        "apigateway",
        "PATCH",
        "/v2/apis/{}/routes/{}",
        "UpdateRoute",
    ),
    (
        "apigateway",
        "DELETE",
        "/v2/apis/{}/routes/{}",
        "DeleteRoute",
    ),
    (
        "apigateway",
        "POST",
        "/v2/apis/{}/integrations",
        "CreateIntegration",
    ),
    (
        "apigateway",
        "GET",
        "/v2/apis/{}/integrations",
        "GetIntegrations",
    ),
    (
        "apigateway",
        "GET",
        "/v2/apis/{}/integrations/{}",
        "GetIntegration",
    ),
    (
        "apigateway",
        "PATCH",
        "/v2/apis/{}/integrations/{}",
        "UpdateIntegration",
    ),
    (
        "apigateway",
        "DELETE",
        "/v2/apis/{}/integrations/{}",
        "DeleteIntegration",
    ),
    ("apigateway", "POST", "/v2/apis/{}/stages", "CreateStage"),
    ("apigateway", "GET", "/v2/apis/{}/stages", "GetStages"),
    ("apigateway", "GET", "/v2/apis/{}/stages/{}", "GetStage"),
    (
        "apigateway",
        "PATCH",
        "/v2/apis/{}/stages/{}",
        "UpdateStage",
    ),
    (
        "apigateway",
        "DELETE",
        "/v2/apis/{}/stages/{}",
        "DeleteStage",
    ),
    ("apigateway", "GET", "/v2/tags/{}", "GetTags"),
    ("apigateway", "POST", "/v2/tags/{}", "TagResource"),
    ("apigateway", "DELETE", "/v2/tags/{}", "UntagResource"),
];

/// The operation a REST-JSON request calls (`CreateFunction` for `POST /2015-03-31/functions` to
/// `lambda`), from the table of the operations this project calls; `None` when not listed.
pub fn rest_operation(service: &str, method: &str, path: &str) -> Option<&'static str> {
    let path = path.trim_end_matches('/');
    let segments: Vec<&str> = path.split('/').collect();
    REST_OPERATIONS
        .iter()
        .find(|(s, m, pattern, _)| {
            *s == service && *m == method && {
                let pattern: Vec<&str> = pattern.split('/').collect();
                pattern.len() == segments.len()
                    && pattern
                        .iter()
                        .zip(&segments)
                        .all(|(p, seg)| *p == *seg || (*p == "{}" && !seg.is_empty()))
            }
        })
        .map(|(_, _, _, op)| *op)
}

/// Finds a query-protocol parameter (`Action`, `Version`) in the form-encoded body or the query
/// string. Only plain alphanumeric values are accepted, which is what action names and API versions
/// are, so no percent-decoding is needed and anything odd is treated as "not an AWS call".
fn parse_param(uri: &Uri, body: &[u8], name: &str) -> Option<String> {
    let body = std::str::from_utf8(body).unwrap_or("");
    [body, uri.query().unwrap_or("")]
        .into_iter()
        .flat_map(|s| s.split('&'))
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .map(str::to_owned)
}

/// The target service's signing name: from the SigV4 credential scope
/// (`Credential=AKID/20250101/us-east-1/ec2/aws4_request`), else from the API `Version` parameter.
pub(super) fn service_of(headers: &HeaderMap, uri: &Uri, body: &[u8]) -> Option<String> {
    let from_scope = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|auth| auth.split("Credential=").nth(1))
        .and_then(|cred| {
            let scope: Vec<&str> = cred.split([',', ' ']).next()?.split('/').collect();
            // AKID / date / region / service / aws4_request
            (scope.len() == 5 && scope[4] == "aws4_request").then(|| scope[3].to_owned())
        });
    from_scope.or_else(|| {
        let service = match parse_param(uri, body, "Version")?.as_str() {
            "2016-11-15" => "ec2",
            "2011-01-01" => "autoscaling",
            "2010-05-08" => "iam",
            "2011-06-15" => "sts",
            "2015-12-01" => "elasticloadbalancing",
            _ => return None,
        };
        Some(service.to_owned())
    })
}
