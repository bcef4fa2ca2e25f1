//! Classifying AWS errors for the reconciler: retryable (throttling, 5xx, timeouts, IAM eventual
//! consistency), not found, or fatal with the AWS code and message.
//!
//! Messages name the API operation and carry AWS's own message, never request parameters, so
//! no secret value (user data, …) can end up in a plan, a report or a log.

use std::error::Error as StdError;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use infra_core::provider::{ErrorClass, ProviderError};

/// Error codes that mean "slow down and try again".
const THROTTLING: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "RequestThrottled",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
    "BandwidthLimitExceeded",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// Error codes of transient server-side or concurrency problems.
const TRANSIENT: &[&str] = &[
    "InternalError",
    "InternalFailure",
    "ServiceUnavailable",
    "Unavailable",
    "ServiceFailure",
    "ConcurrentModification",
    "ConcurrentModificationException",
    "ResourceContention",
    "IncorrectInstanceState",
    // SSM: concurrent updates of one parameter.
    "TooManyUpdates",
    // Lambda: the function is still being created (State Pending).
    "ResourceNotReadyException",
    // Lambda: the service or an ENI in the function's VPC is momentarily unavailable.
    "ServiceException",
    "EC2ThrottledException",
    "ENILimitReachedException",
];

/// Codes that mean the object doesn't exist (besides every `*.NotFound` / `*NotFound` code).
const NOT_FOUND: &[&str] = &["NoSuchEntity", "NatGatewayNotFound"];

/// The code of a call that failed because aws-config's credential chain found no credentials.
pub(crate) const NO_CREDENTIALS: &str = "NoCredentials";

/// An error and its causes on one line, `outer: inner: …`, without the debug dump that
/// `DisplayErrorContext` appends (the causes carry every useful word).
fn causes(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        // One line: the credential chain reports one provider per line.
        let mut text = String::new();
        for line in e
            .to_string()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
        {
            if !text.is_empty() {
                text.push_str(if text.ends_with(':') { " " } else { "; " });
            }
            text.push_str(&line.split_whitespace().collect::<Vec<_>>().join(" "));
        }
        // Wrappers often repeat their cause's text; keep each piece once.
        if !text.is_empty() && !parts.last().is_some_and(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

/// Classifies an error code and message. `also_retryable` lists codes that are transient in the
/// calling context only (e.g. `DependencyViolation` while deleting: an ENI still being released).
pub(crate) fn classify(code: &str, message: &str, also_retryable: &[&str]) -> ErrorClass {
    let lower = message.to_ascii_lowercase();
    if THROTTLING.contains(&code) || TRANSIENT.contains(&code) || also_retryable.contains(&code) {
        return ErrorClass::Retryable;
    }
    // IAM is eventually consistent: a just-created instance profile or role is not usable by EC2
    // / Auto Scaling for a few seconds, and a new role is not yet a valid principal.
    if (code == "InvalidParameterValue" || code == "ValidationError")
        && (lower.contains("instance profile") || lower.contains("iaminstanceprofile"))
    {
        return ErrorClass::Retryable;
    }
    if code == "MalformedPolicyDocument" && lower.contains("invalid principal") {
        return ErrorClass::Retryable;
    }
    // Lambda: a just-created role can't be assumed yet, or its just-attached VPC permissions
    // aren't effective yet (IAM propagation, seconds).
    if code == "InvalidParameterValueException"
        && (lower.contains("cannot be assumed") || lower.contains("does not have permissions"))
    {
        return ErrorClass::Retryable;
    }
    // Lambda answers ResourceConflictException both for "already exists" (a create: the
    // provider looks the object up) and for an update still in progress (a retry succeeds).
    if code == "ResourceConflictException"
        && (lower.contains("in progress") || lower.contains("concurrent"))
    {
        return ErrorClass::Retryable;
    }
    if code.ends_with(".NotFound")
        || code.ends_with("NotFound")
        || code.ends_with("NotFoundException")
        || NOT_FOUND.contains(&code)
    {
        return ErrorClass::NotFound;
    }
    // Auto Scaling reports a missing group as a validation error.
    if code == "ValidationError" && lower.contains("not found") {
        return ErrorClass::NotFound;
    }
    ErrorClass::Fatal
}

/// The `<Code>` and `<Message>` of an XML error body, if it has a code.
fn xml_error(body: &[u8]) -> Option<(String, String)> {
    let text = std::str::from_utf8(body).ok()?;
    let element = |tag: &str| {
        let open = format!("<{tag}>");
        let start = text.find(&open)? + open.len();
        let end = start + text[start..].find(&format!("</{tag}>"))?;
        Some(
            text[start..end]
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&amp;", "&"),
        )
    };
    let code = element("Code").filter(|c| !c.is_empty())?;
    Some((code, element("Message").unwrap_or_default()))
}

/// Converts an SDK error of operation `op`.
pub(crate) fn from_sdk<E>(
    op: &str,
    err: SdkError<E, HttpResponse>,
    also_retryable: &[&str],
) -> ProviderError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    let (class, code, message) = match &err {
        SdkError::TimeoutError(_) => (
            ErrorClass::Retryable,
            "Timeout".to_string(),
            "the request timed out".to_string(),
        ),
        // No credentials anywhere in aws-config's chain: retrying can't help, and the chain's
        // own report says what was tried.
        SdkError::DispatchFailure(d) if d.is_other() && causes(&err).contains("credentials") => (
            ErrorClass::Fatal,
            NO_CREDENTIALS.to_string(),
            format!("no usable AWS credentials: {}", causes(&err)),
        ),
        SdkError::DispatchFailure(_) => (
            ErrorClass::Retryable,
            "DispatchFailure".to_string(),
            format!("the request could not be sent: {}", causes(&err)),
        ),
        SdkError::ResponseError(e) => {
            let status = e.raw().status().as_u16();
            let class = if status >= 500 {
                ErrorClass::Retryable
            } else {
                ErrorClass::Fatal
            };
            (
                class,
                format!("HTTP{status}"),
                format!("the response could not be read (HTTP {status})"),
            )
        }
        SdkError::ServiceError(ctx) => {
            let status = ctx.raw().status().as_u16();
            // A body the SDK's parser didn't read (moto answers IAM's query API in EC2's
            // `<Errors><Error>` wrapping) still names its code.
            let unparsed = match ctx.err().code() {
                Some(_) => None,
                None => ctx.raw().body().bytes().and_then(xml_error),
            };
            let code = ctx
                .err()
                .code()
                .or(unparsed.as_ref().map(|(c, _)| c.as_str()));
            match code {
                Some(code) => {
                    let message = match &unparsed {
                        Some((_, m)) => m.clone(),
                        None => ctx.err().message().unwrap_or("").to_string(),
                    };
                    let mut class = classify(code, &message, also_retryable);
                    if class == ErrorClass::Fatal && status >= 500 {
                        class = ErrorClass::Retryable;
                    }
                    (class, code.to_string(), message)
                }
                None => (
                    if status >= 500 {
                        ErrorClass::Retryable
                    } else {
                        ErrorClass::Fatal
                    },
                    format!("HTTP{status}"),
                    format!("an error response without an error code (HTTP {status})"),
                ),
            }
        }
        other => (
            ErrorClass::Fatal,
            "ClientError".to_string(),
            DisplayErrorContext(other).to_string(),
        ),
    };
    ProviderError {
        class,
        code,
        message: format!("{op}: {message}"),
        retry_after: None,
    }
}

/// `?`-friendly conversion of SDK results.
pub(crate) trait AwsResult<T> {
    /// Classifies an error of operation `op`.
    fn aws(self, op: &str) -> Result<T, ProviderError>;
    /// Classifies an error of operation `op`, treating `codes` as retryable too.
    fn aws_retrying(self, op: &str, codes: &[&str]) -> Result<T, ProviderError>;
}

impl<T, E> AwsResult<T> for Result<T, SdkError<E, HttpResponse>>
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    fn aws(self, op: &str) -> Result<T, ProviderError> {
        self.map_err(|e| from_sdk(op, e, &[]))
    }
    fn aws_retrying(self, op: &str, codes: &[&str]) -> Result<T, ProviderError> {
        self.map_err(|e| from_sdk(op, e, codes))
    }
}

/// Helpers on classified results.
pub(crate) trait ProviderResult<T> {
    /// `Ok(None)` when the object is not found.
    fn or_not_found(self) -> Result<Option<T>, ProviderError>;
    /// Success when the error has one of `codes` (an idempotent step already done).
    fn ok_if(self, codes: &[&str]) -> Result<(), ProviderError>;
}

impl<T> ProviderResult<T> for Result<T, ProviderError> {
    fn or_not_found(self) -> Result<Option<T>, ProviderError> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.class == ErrorClass::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
    fn ok_if(self, codes: &[&str]) -> Result<(), ProviderError> {
        match self {
            Ok(_) => Ok(()),
            Err(e) if codes.contains(&e.code.as_str()) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unparsed_xml_error_body_still_names_its_code() {
        let body = br#"<?xml version="1.0" encoding="utf-8"?>
<ErrorResponse><Errors><Error><Code>AccessDenied</Code><Message>User: a is not authorized to perform: iam:Get&amp;List</Message><Type>Sender</Type></Error></Errors></ErrorResponse>"#;
        assert_eq!(
            xml_error(body),
            Some((
                "AccessDenied".to_string(),
                "User: a is not authorized to perform: iam:Get&List".to_string()
            ))
        );
        assert_eq!(xml_error(b"<html>403</html>"), None);
        assert_eq!(xml_error(b"<Code></Code>"), None);
    }

    #[test]
    fn throttling_and_transient_codes_are_retryable() {
        for code in [
            "Throttling",
            "RequestLimitExceeded",
            "TooManyRequestsException",
            "InternalError",
            "TooManyUpdates",
            "ResourceNotReadyException",
        ] {
            assert_eq!(classify(code, "", &[]), ErrorClass::Retryable, "{code}");
        }
    }

    #[test]
    fn iam_eventual_consistency_is_retryable() {
        assert_eq!(
            classify(
                "InvalidParameterValue",
                "Value (arn:aws:iam::1:instance-profile/x) for parameter iamInstanceProfile.arn is invalid. Invalid IAM Instance Profile ARN",
                &[]
            ),
            ErrorClass::Retryable
        );
        assert_eq!(
            classify(
                "MalformedPolicyDocument",
                "Invalid principal in policy",
                &[]
            ),
            ErrorClass::Retryable
        );
        assert_eq!(
            classify("MalformedPolicyDocument", "Syntax errors in policy", &[]),
            ErrorClass::Fatal
        );
    }

    #[test]
    fn lambda_conflicts_and_role_propagation() {
        assert_eq!(
            classify(
                "ResourceConflictException",
                "The operation cannot be performed at this time. An update is in progress for resource: arn:aws:lambda:us-east-1:1:function:f",
                &[]
            ),
            ErrorClass::Retryable
        );
        assert_eq!(
            classify(
                "ResourceConflictException",
                "Function already exist: f",
                &[]
            ),
            ErrorClass::Fatal
        );
        assert_eq!(
            classify(
                "InvalidParameterValueException",
                "The role defined for the function cannot be assumed by Lambda.",
                &[]
            ),
            ErrorClass::Retryable
        );
        assert_eq!(
            classify("ResourceNotFoundException", "Function not found", &[]),
            ErrorClass::NotFound
        );
    }

    #[test]
    fn not_found_codes() {
        for code in [
            "InvalidVpcID.NotFound",
            "InvalidGroup.NotFound",
            "NoSuchEntity",
            "InvalidLaunchTemplateId.NotFound",
            "InvalidLaunchTemplateName.NotFoundException",
            "NatGatewayNotFound",
            "ParameterNotFound",
        ] {
            assert_eq!(classify(code, "", &[]), ErrorClass::NotFound, "{code}");
        }
        assert_eq!(
            classify(
                "ValidationError",
                "AutoScalingGroup name not found - x",
                &[]
            ),
            ErrorClass::NotFound
        );
    }

    #[test]
    fn elbv2_codes() {
        // Missing objects end in `NotFound`; throttling is the awsQuery `Throttling`.
        for code in [
            "LoadBalancerNotFound",
            "TargetGroupNotFound",
            "ListenerNotFound",
        ] {
            assert_eq!(classify(code, "", &[]), ErrorClass::NotFound, "{code}");
        }
        assert_eq!(
            classify("Throttling", "Rate exceeded", &[]),
            ErrorClass::Retryable
        );
        // A target group a listener still forwards to: retried while deleting only.
        assert_eq!(classify("ResourceInUse", "", &[]), ErrorClass::Fatal);
        assert_eq!(
            classify("ResourceInUse", "", &["ResourceInUse"]),
            ErrorClass::Retryable
        );
        // Taken names are conflicts, for the provider's already-exists handling.
        for code in [
            "DuplicateLoadBalancerName",
            "DuplicateTargetGroupName",
            "DuplicateListener",
        ] {
            assert_eq!(classify(code, "", &[]), ErrorClass::Fatal, "{code}");
        }
    }

    #[test]
    fn context_retryable_and_fatal() {
        assert_eq!(classify("DependencyViolation", "", &[]), ErrorClass::Fatal);
        assert_eq!(
            classify("DependencyViolation", "", &["DependencyViolation"]),
            ErrorClass::Retryable
        );
        assert_eq!(
            classify("InvalidParameterValue", "bad cidr", &[]),
            ErrorClass::Fatal
        );
    }
}
