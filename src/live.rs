//! Live providers for `--target live`, and what to tell the user when an endpoint can't be used
//! at all (no credentials, nothing listening, not a swarm manager): one paragraph that says what
//! went wrong and what to do, instead of a library's error chain.

use std::sync::Arc;
use std::time::{Duration, Instant};

use infra_core::provider::{ErrorClass, Provider, ProviderError};
use infra_swarm::ConnectError;

use crate::cli::Error;

/// Connects the live provider `name` (`aws` or `swarm`). For Swarm, retries for up to `wait`
/// while the endpoint isn't reachable or not yet a swarm manager (a phased deploy waits for the
/// managers the AWS phase just made). A failure is an [`Error::Environment`] saying what to do.
pub(crate) async fn provider(name: &str, wait: Duration) -> Result<Arc<dyn Provider>, Error> {
    match name {
        // aws-config's default chain: credentials, region, and AWS_ENDPOINT_URL (e.g. moto).
        // Nothing is contacted here: credentials are resolved at the first request.
        "aws" => infra_aws::AwsProvider::from_env()
            .await
            .map(|p| Arc::new(p) as Arc<dyn Provider>)
            .map_err(|e| {
                Error::Environment(format!("--target live: {e}; nothing was read or changed"))
            }),
        // Docker from DOCKER_HOST or the local socket; swarm mode (a manager) is required.
        "swarm" => {
            let deadline = Instant::now() + wait;
            loop {
                match infra_swarm::SwarmProvider::connect().await {
                    Ok(p) => return Ok(Arc::new(p) as Arc<dyn Provider>),
                    Err(e) if Instant::now() < deadline => {
                        tracing::warn!(error = %e, "waiting for the Swarm endpoint");
                        eprintln!("Waiting for the Swarm endpoint ({e}); retrying in 5 s…");
                        tokio::time::sleep(Duration::from_secs(5)).await;
                    }
                    Err(e) => {
                        return Err(Error::Environment(format!(
                            "--target live: {}",
                            swarm_advice(&e)
                        )))
                    }
                }
            }
        }
        _ => Err(Error::Environment(format!(
            "--target live: there is no `{name}` provider (known: aws, swarm)"
        ))),
    }
}

/// A connection failure with what to do about it (the other refusals already say it).
fn swarm_advice(e: &ConnectError) -> String {
    match e {
        ConnectError::Unreachable { message, .. } if message.contains("DOCKER_HOST") => {
            format!("{e}; nothing was read or changed")
        }
        ConnectError::Unreachable { .. } => format!(
            "{e}. Start Docker there, or point DOCKER_HOST at a Swarm manager's endpoint \
             (unix:///var/run/docker.sock, tcp://HOST:2375); nothing was read or changed"
        ),
        _ => format!("{e}; nothing was read or changed"),
    }
}

/// Where the AWS SDK sends requests, for messages.
fn aws_endpoint() -> String {
    match std::env::var("AWS_ENDPOINT_URL") {
        Ok(url) if !url.trim().is_empty() => format!("{url} (AWS_ENDPOINT_URL)"),
        _ => "AWS's regional endpoint".to_string(),
    }
}

/// One paragraph for a provider error that means the endpoint could not be used at all (no
/// credentials, nothing listening, no answer), saying what to do; `None` for an API's own
/// error, which is shown as it is.
pub(crate) fn environment_advice(provider: &str, error: &ProviderError) -> Option<String> {
    if provider != "aws" {
        return None;
    }
    let detail = error
        .message
        .split_once(": ")
        .map_or(error.message.as_str(), |(_, rest)| rest);
    match error.code.as_str() {
        "NoCredentials" => Some(format!(
            "cannot use AWS: there are no usable AWS credentials. Set AWS_ACCESS_KEY_ID and \
             AWS_SECRET_ACCESS_KEY (plus AWS_SESSION_TOKEN for temporary ones), or AWS_PROFILE \
             naming a profile of ~/.aws/config (`aws configure`, `aws sso login`), or run where an \
             instance or container role is available; nothing was read or changed. (aws-config \
             tried: {})",
            detail
                .split_once("Attempted: ")
                .map_or(detail, |(_, tried)| tried)
        )),
        "DispatchFailure" => Some(format!(
            "cannot reach {}: {detail}. Check that the endpoint is up and reachable from here, \
             AWS_ENDPOINT_URL (unset it to use AWS itself) and any HTTPS_PROXY setting, then run \
             again; nothing was changed",
            aws_endpoint()
        )),
        "Timeout" if error.class == ErrorClass::Retryable => Some(format!(
            "{} accepted the connection but did not answer in time ({detail}). Check that \
             AWS_ENDPOINT_URL points at an AWS API endpoint and that it is not overloaded, then \
             run again; nothing was changed",
            aws_endpoint()
        )),
        _ => None,
    }
}
