//! Instance metadata (IMDSv2) through `aws_config::imds::Client`, with a configurable
//! endpoint (`INFRA_NODE_IMDS_ENDPOINT`: the lab serves one per node).

use std::error::Error as StdError;
use std::time::Duration;

use aws_config::imds::client::error::ImdsError;
use aws_config::imds::Client;
use infra_core::retry::{poll, PollPolicy, Probe};
use tokio::time::Instant;

use crate::error::{Failure, FailureKind};

/// Who this instance is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// `i-…`
    pub instance_id: String,
    /// The availability zone (`us-east-1b`).
    pub az: String,
    /// The region (`us-east-1`).
    pub region: String,
    /// The private IPv4 address.
    pub ip: String,
}

/// The longest one metadata request may take before it counts as unanswered.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// The instance metadata service.
#[derive(Clone, Debug)]
pub struct Imds {
    client: Client,
    endpoint: String,
}

/// A metadata request that failed, in one line.
fn describe(e: &ImdsError) -> String {
    if let ImdsError::ErrorResponse(r) = e {
        return format!("HTTP {}", r.response().status().as_u16());
    }
    let mut parts: Vec<String> = Vec::new();
    let mut next: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = next {
        let text = err.to_string();
        if !parts.last().is_some_and(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = err.source();
    }
    parts.join(": ")
}

impl Imds {
    /// A client for the service at `endpoint` (`http://169.254.169.254`).
    pub fn new(endpoint: &str) -> Result<Self, Failure> {
        let client = Client::builder()
            .endpoint(endpoint)
            .map_err(|e| {
                Failure::new(
                    FailureKind::Usage,
                    "identity",
                    format!("invalid instance metadata endpoint {endpoint:?}: {e}"),
                )
            })?
            .max_attempts(2)
            .connect_timeout(Duration::from_secs(1))
            .read_timeout(Duration::from_secs(2))
            .operation_timeout(CALL_TIMEOUT)
            .build();
        Ok(Imds {
            client,
            endpoint: endpoint.to_string(),
        })
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// One metadata value (`/latest/meta-data/<path>`): `Ok(None)` on 404.
    pub async fn get(&self, path: &str) -> Result<Option<String>, String> {
        let full = format!("/latest/meta-data/{path}");
        match tokio::time::timeout(CALL_TIMEOUT, self.client.get(full)).await {
            Err(_) => Err(format!("no answer within {} s", CALL_TIMEOUT.as_secs())),
            Ok(Ok(v)) => Ok(Some(v.as_ref().trim().to_string())),
            Ok(Err(ImdsError::ErrorResponse(r))) if r.response().status().as_u16() == 404 => {
                Ok(None)
            }
            Ok(Err(e)) => Err(describe(&e)),
        }
    }

    /// One metadata value that must exist.
    async fn need(&self, path: &str) -> Result<String, String> {
        match self.get(path).await? {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(format!("{path}: not found")),
        }
    }

    /// The instance's identity, asked for until `budget` runs out: a service that never
    /// answers is a [`FailureKind::Imds`] failure with the last error in its message.
    pub async fn identity(&self, budget: Duration) -> Result<Identity, Failure> {
        let started = Instant::now();
        let policy = PollPolicy::new(budget, Duration::from_millis(200), Duration::from_secs(2));
        let last = std::sync::Mutex::new(String::from("no request completed"));
        let ask = poll("instance metadata", &policy, || async {
            let read = async {
                Ok::<_, String>(Identity {
                    instance_id: self.need("instance-id").await?,
                    az: self.need("placement/availability-zone").await?,
                    region: self.need("placement/region").await?,
                    ip: self.need("local-ipv4").await?,
                })
            };
            Ok(match read.await {
                Ok(id) => Probe::Done(id),
                Err(e) => {
                    *last.lock().unwrap_or_else(|p| p.into_inner()) = e.clone();
                    Probe::Waiting(e)
                }
            })
        });
        let result = tokio::time::timeout(budget + CALL_TIMEOUT, ask).await;
        match result {
            Ok(Ok(id)) => Ok(id),
            _ => {
                let detail = last.lock().unwrap_or_else(|p| p.into_inner()).clone();
                Err(Failure::new(
                    FailureKind::Imds,
                    "identity",
                    format!(
                        "the instance metadata service at {} gave no identity within {} s (last error: {detail}); is this an EC2 instance with IMDSv2, and is INFRA_NODE_IMDS_ENDPOINT right?",
                        self.endpoint,
                        budget.as_secs().max(started.elapsed().as_secs())
                    ),
                ))
            }
        }
    }

    /// `autoscaling/target-lifecycle-state` (`InService`, `Terminated`, …); `None` when the
    /// service does not serve it.
    pub async fn target_lifecycle_state(&self) -> Result<Option<String>, String> {
        self.get("autoscaling/target-lifecycle-state").await
    }
}
