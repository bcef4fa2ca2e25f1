//! `analytics-ingest`: an HTTP API (API Gateway, payload format 2.0) route that accepts one
//! analytics event per request and indexes it into Elasticsearch.
//!
//! The request body is a JSON object:
//!
//! ```text
//! { "event": "signup",                      required: 1–100 of A-Z a-z 0-9 _ . : -
//!   "timestamp": "2024-05-01T12:00:00Z",    optional: RFC 3339; else the time API Gateway received it
//!   "session": "s-42",                      optional: at most 128 characters
//!   "properties": { "plan": "pro" } }       optional: an object of at most 50 keys
//! ```
//!
//! Answers: 202 with the document's id once stored (a redelivered request finds its id taken and
//! is stored once); 400 listing every problem of a bad event at once; 405 for another method;
//! 413 past [`MAX_BODY`] bytes; 415 for a non-JSON content type; 502 when the store fails (the
//! caller may retry: the id is API Gateway's request id).

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use base64::Engine as _;
use serde_json::{json, Map, Value};

use crate::es::{EsClient, Indexed};

/// The index events go to unless `ANALYTICS_INDEX` says otherwise.
pub const DEFAULT_INDEX: &str = "analytics-events";
/// The largest body accepted, in bytes (after base64 decoding).
pub const MAX_BODY: usize = 64 * 1024;
const MAX_EVENT_NAME: usize = 100;
const MAX_SESSION: usize = 128;
const MAX_PROPERTIES: usize = 50;
const FIELDS: &str = "event, timestamp, session, properties";

/// A valid analytics event.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalyticsEvent {
    /// What happened (`signup`, `page.view`).
    pub event: String,
    /// When, as sent (RFC 3339, normalised to UTC), if sent.
    pub timestamp: Option<String>,
    /// The client's session, if sent.
    pub session: Option<String>,
    /// Free-form properties.
    pub properties: Map<String, Value>,
}

/// Why a request was refused: an HTTP status and every problem found.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// 400, 405, 413 or 415.
    pub status: u16,
    /// What is wrong, one problem per entry, each naming the field.
    pub problems: Vec<String>,
}

impl Rejection {
    fn one(status: u16, problem: impl Into<String>) -> Self {
        Rejection {
            status,
            problems: vec![problem.into()],
        }
    }
}

/// Validates the request and reads its event; all problems of a bad event at once.
pub fn parse(request: &ApiGatewayV2httpRequest) -> Result<AnalyticsEvent, Rejection> {
    let method = request.request_context.http.method.as_str();
    if method != "POST" {
        return Err(Rejection::one(
            405,
            format!("method {method} not allowed: POST one JSON analytics event"),
        ));
    }
    if let Some(ct) = request.headers.get(hyper::header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
        let essence = ct.split(';').next().unwrap_or("").trim();
        if essence != "application/json" {
            return Err(Rejection::one(
                415,
                format!("content-type {essence:?} not supported: send application/json"),
            ));
        }
    }
    let raw = match request.body.as_deref() {
        None | Some("") => {
            return Err(Rejection::one(
                400,
                "the request has no body: send one JSON analytics event",
            ))
        }
        Some(body) if request.is_base64_encoded => base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|e| {
                Rejection::one(
                    400,
                    format!("the body is marked base64 but does not decode: {e}"),
                )
            })?,
        Some(body) => body.as_bytes().to_vec(),
    };
    if raw.len() > MAX_BODY {
        return Err(Rejection::one(
            413,
            format!(
                "the body has {} bytes, more than the {MAX_BODY} allowed",
                raw.len()
            ),
        ));
    }
    // serde_json's messages give a line and column, never the content
    let value: Value = serde_json::from_slice(&raw)
        .map_err(|e| Rejection::one(400, format!("the body is not JSON: {e}")))?;
    let Value::Object(mut object) = value else {
        return Err(Rejection::one(
            400,
            format!("the body must be a JSON object with the fields {FIELDS}"),
        ));
    };
    let mut problems = Vec::new();

    let event = match object.remove("event") {
        None => {
            problems.push("event: missing (the event's name, e.g. \"signup\")".to_string());
            None
        }
        Some(Value::String(name)) => {
            if name.is_empty() || name.chars().count() > MAX_EVENT_NAME {
                problems.push(format!("event: must have 1 to {MAX_EVENT_NAME} characters"));
            } else if !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'))
            {
                problems.push("event: only letters, digits and _ . : - are allowed".to_string());
            }
            Some(name)
        }
        Some(other) => {
            problems.push(format!(
                "event: must be a string, not {}",
                type_name(&other)
            ));
            None
        }
    };
    let timestamp = match object.remove("timestamp") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) => match chrono::DateTime::parse_from_rfc3339(&t) {
            Ok(t) => Some(
                t.with_timezone(&chrono::Utc)
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            ),
            Err(e) => {
                problems.push(format!("timestamp: not an RFC 3339 time ({e})"));
                None
            }
        },
        Some(other) => {
            problems.push(format!(
                "timestamp: must be an RFC 3339 string, not {}",
                type_name(&other)
            ));
            None
        }
    };
    let session = match object.remove("session") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.chars().count() <= MAX_SESSION => Some(s),
        Some(Value::String(_)) => {
            problems.push(format!("session: at most {MAX_SESSION} characters"));
            None
        }
        Some(other) => {
            problems.push(format!(
                "session: must be a string, not {}",
                type_name(&other)
            ));
            None
        }
    };
    let properties = match object.remove("properties") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(p)) => {
            if p.len() > MAX_PROPERTIES {
                problems.push(format!(
                    "properties: {} keys, at most {MAX_PROPERTIES} allowed",
                    p.len()
                ));
            }
            p
        }
        Some(other) => {
            problems.push(format!(
                "properties: must be an object, not {}",
                type_name(&other)
            ));
            Map::new()
        }
    };
    let mut unknown: Vec<&String> = object.keys().collect();
    unknown.sort();
    for key in unknown {
        let shown: String = key.chars().take(40).collect();
        problems.push(format!(
            "{shown:?}: unknown field (the fields are {FIELDS})"
        ));
    }
    match event {
        Some(event) if problems.is_empty() => Ok(AnalyticsEvent {
            event,
            timestamp,
            session,
            properties,
        }),
        _ => Err(Rejection {
            status: 400,
            problems,
        }),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The document stored for `event` and its id: API Gateway's request id (else `fallback_id`,
/// the Lambda request id), so a redelivered request is stored once. It keeps where the request
/// came in (API, stage, route) and when, not the caller's address or headers.
pub fn document(
    event: &AnalyticsEvent,
    request: &ApiGatewayV2httpRequest,
    fallback_id: &str,
) -> (String, Value) {
    let ctx = &request.request_context;
    let id = ctx
        .request_id
        .clone()
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| fallback_id.to_string());
    let received_at = chrono::DateTime::from_timestamp_millis(ctx.time_epoch)
        .filter(|_| ctx.time_epoch > 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    let doc = json!({
        "event": event.event,
        "timestamp": event.timestamp.clone().or_else(|| received_at.clone()),
        "received_at": received_at,
        "session": event.session,
        "properties": event.properties,
        "request_id": id,
        "api": { "id": ctx.apiid, "stage": ctx.stage, "route": ctx.route_key },
    });
    (id, doc)
}

/// An HTTP API answer with a JSON body.
pub fn respond(status: u16, body: &Value) -> ApiGatewayV2httpResponse {
    let mut headers = hyper::HeaderMap::new();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    if status == 405 {
        headers.insert(
            hyper::header::ALLOW,
            hyper::header::HeaderValue::from_static("POST"),
        );
    }
    ApiGatewayV2httpResponse {
        status_code: i64::from(status),
        headers,
        body: Some(Body::Text(body.to_string())),
        ..Default::default()
    }
}

/// The answer to a refused request: `{"error": "...", "problems": [...]}`.
pub fn refused(rejection: &Rejection) -> ApiGatewayV2httpResponse {
    let error = match rejection.status {
        405 => "method not allowed",
        413 => "payload too large",
        415 => "unsupported media type",
        _ => "invalid analytics event",
    };
    respond(
        rejection.status,
        &json!({ "error": error, "problems": rejection.problems }),
    )
}

/// Handles one request: validate, index into `index` through `es`, answer.
pub async fn handle(
    request: &ApiGatewayV2httpRequest,
    es: &EsClient,
    index: &str,
    lambda_request_id: &str,
) -> ApiGatewayV2httpResponse {
    let event = match parse(request) {
        Ok(event) => event,
        Err(rejection) => {
            tracing::info!(
                status = rejection.status,
                problems = rejection.problems.len(),
                "refused"
            );
            return refused(&rejection);
        }
    };
    let (id, doc) = document(&event, request, lambda_request_id);
    match es.create(index, &id, &doc).await {
        Ok(stored) => {
            let stored = match stored {
                Indexed::Created => "created",
                Indexed::AlreadyThere => "already-there",
            };
            tracing::info!(event = %event.event, %id, stored, "indexed");
            respond(
                202,
                &json!({ "accepted": true, "id": id, "stored": stored }),
            )
        }
        Err(e) => {
            // the error names the store's host, never ES_URL's credentials
            tracing::error!(event = %event.event, %id, error = %e, "not stored");
            respond(
                502,
                &json!({ "error": "the event could not be stored; try again", "id": id }),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_es::FakeEs;

    /// AWS's HTTP API sample (payload 2.0, a GET without a body), made the POST the route takes.
    fn post(body: &str) -> ApiGatewayV2httpRequest {
        let mut req: ApiGatewayV2httpRequest = serde_json::from_str(include_str!(
            "../tests/fixtures/example-apigw-v2-request-no-authorizer.json"
        ))
        .unwrap();
        req.request_context.http.method = hyper::Method::POST;
        req.body = Some(body.to_string());
        req
    }

    fn body_json(resp: &ApiGatewayV2httpResponse) -> Value {
        match &resp.body {
            Some(Body::Text(t)) => serde_json::from_str(t).unwrap(),
            other => panic!("not a text body: {other:?}"),
        }
    }

    #[test]
    fn a_valid_event_is_read_and_normalised() {
        let req = post(
            r#"{"event":"signup","timestamp":"2024-05-01T14:00:00+02:00","session":"s-1","properties":{"plan":"pro"}}"#,
        );
        let ev = parse(&req).unwrap();
        assert_eq!(ev.event, "signup");
        assert_eq!(ev.timestamp.as_deref(), Some("2024-05-01T12:00:00.000Z"));
        assert_eq!(ev.session.as_deref(), Some("s-1"));
        assert_eq!(ev.properties["plan"], "pro");
    }

    #[test]
    fn the_document_comes_from_the_event_and_the_request_context() {
        let req = post(r#"{"event":"page.view"}"#);
        let (id, doc) = document(&parse(&req).unwrap(), &req, "lambda-id");
        // the sample's requestContext: requestId LV7fzho-PHcEJPw=, timeEpoch 1587481701067
        assert_eq!(id, "LV7fzho-PHcEJPw=");
        assert_eq!(doc["received_at"], "2020-04-21T15:08:21.067Z");
        assert_eq!(
            doc["timestamp"], doc["received_at"],
            "no timestamp sent: the received time"
        );
        assert_eq!(
            doc["api"],
            json!({"id": "aaaaaaaaaa", "stage": "$default", "route": "$default"})
        );
        // the caller's address and headers stay out of the store
        let text = doc.to_string();
        assert!(
            !text.contains("1.2.3.4") && !text.contains("curl"),
            "{text}"
        );

        let mut no_id = req.clone();
        no_id.request_context.request_id = None;
        assert_eq!(
            document(&parse(&no_id).unwrap(), &no_id, "lambda-id").0,
            "lambda-id"
        );
    }

    #[test]
    fn a_bad_event_lists_every_problem() {
        let req = post(
            r#"{"event":"sign up!","timestamp":"yesterday","session":7,"properties":[1],"user":"x","ip":"y"}"#,
        );
        let r = parse(&req).unwrap_err();
        assert_eq!(r.status, 400);
        assert_eq!(r.problems.len(), 6, "{:#?}", r.problems);
        for needle in [
            "event: only letters",
            "timestamp: not an RFC 3339",
            "session: must be a string, not a number",
            "properties: must be an object, not an array",
            "\"ip\": unknown field",
            "\"user\": unknown field",
        ] {
            assert!(
                r.problems.iter().any(|p| p.contains(needle)),
                "{needle} not in {:#?}",
                r.problems
            );
        }
        let r = parse(&post(r#"{"properties":{}}"#)).unwrap_err();
        assert_eq!(
            r.problems,
            vec!["event: missing (the event's name, e.g. \"signup\")"]
        );
    }

    #[test]
    fn bodies_that_are_not_events_are_refused_with_their_status() {
        // the unchanged AWS sample: a GET
        let get: ApiGatewayV2httpRequest = serde_json::from_str(include_str!(
            "../tests/fixtures/example-apigw-v2-request-no-authorizer.json"
        ))
        .unwrap();
        assert_eq!(parse(&get).unwrap_err().status, 405);
        let resp = refused(&parse(&get).unwrap_err());
        assert_eq!(resp.headers.get("allow").unwrap(), "POST");

        assert_eq!(parse(&post("")).unwrap_err().status, 400);
        let r = parse(&post("{\"event\": ")).unwrap_err();
        assert!(
            r.problems[0].starts_with("the body is not JSON: EOF while parsing"),
            "{r:?}"
        );
        assert!(parse(&post("[1]")).unwrap_err().problems[0].contains("must be a JSON object"));
        let big = format!(
            r#"{{"event":"x","properties":{{"p":"{}"}}}}"#,
            "a".repeat(MAX_BODY)
        );
        assert_eq!(parse(&post(&big)).unwrap_err().status, 413);
        let mut form = post(r#"{"event":"x"}"#);
        form.headers.insert(
            "content-type",
            "application/x-www-form-urlencoded".parse().unwrap(),
        );
        assert_eq!(parse(&form).unwrap_err().status, 415);
        form.headers.insert(
            "content-type",
            "application/json; charset=utf-8".parse().unwrap(),
        );
        assert!(parse(&form).is_ok());
    }

    #[test]
    fn base64_bodies_are_decoded() {
        // HTTP APIs base64-encode bodies they don't consider text
        let mut req =
            post(&base64::engine::general_purpose::STANDARD.encode(r#"{"event":"signup"}"#));
        req.is_base64_encoded = true;
        assert_eq!(parse(&req).unwrap().event, "signup");
        req.body = Some("%%%".into());
        assert!(parse(&req).unwrap_err().problems[0].contains("does not decode"));
    }

    #[tokio::test]
    async fn handle_indexes_once_and_answers_202() {
        let es = FakeEs::start().await;
        let client = EsClient::new(&format!("http://localhost:{}", es.port())).unwrap();
        let req = post(r#"{"event":"signup","properties":{"plan":"pro"}}"#);
        let resp = handle(&req, &client, "analytics-events", "lambda-id").await;
        assert_eq!(resp.status_code, 202);
        assert_eq!(
            body_json(&resp),
            json!({"accepted": true, "id": "LV7fzho-PHcEJPw=", "stored": "created"})
        );
        // redelivered: stored once
        let again = handle(&req, &client, "analytics-events", "lambda-id").await;
        assert_eq!(body_json(&again)["stored"], "already-there");
        let got = es.requests();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].path, "/analytics-events/_create/LV7fzho-PHcEJPw%3D");
        assert_eq!(got[0].body["event"], "signup");
        assert_eq!(got[0].body["properties"], json!({"plan": "pro"}));
    }

    #[tokio::test]
    async fn handle_refuses_without_calling_the_store_and_reports_its_failures() {
        let es = FakeEs::start().await;
        let client = EsClient::new(&format!("http://localhost:{}", es.port())).unwrap();
        let resp = handle(&post(r#"{"evnt":"x"}"#), &client, "a", "l").await;
        assert_eq!(resp.status_code, 400);
        let body = body_json(&resp);
        assert_eq!(body["error"], "invalid analytics event");
        assert_eq!(body["problems"].as_array().unwrap().len(), 2, "{body}");
        assert!(es.requests().is_empty());

        es.fail_with(500);
        let resp = handle(&post(r#"{"event":"x"}"#), &client, "a", "l").await;
        assert_eq!(resp.status_code, 502);
        assert_eq!(
            body_json(&resp)["error"],
            "the event could not be stored; try again"
        );
    }
}
