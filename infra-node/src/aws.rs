//! The AWS calls the agent makes, each one thin and retried with the project's backoff
//! ([`infra_core::retry`]); the SDK's own retries are off so that one policy decides.
//!
//! Parameter names live here too ([`Params`]): everything under `/infra/<stack>/swarm/`.

use std::collections::BTreeMap;
use std::error::Error as StdError;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_ssm::types::ParameterType;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use infra_core::provider::{ErrorClass, ProviderError};
use infra_core::retry::{retry, RetryPolicy};

use crate::error::Secret;
use crate::plan::InstanceState;

/// The SSM parameter names of a stack's swarm, under `/infra/<stack>/swarm/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    prefix: String,
}

impl Params {
    /// The names for `stack`.
    pub fn new(stack: &str) -> Self {
        Params {
            prefix: format!("/infra/{stack}/swarm/"),
        }
    }
    /// `/infra/<stack>/swarm/` (ends with `/`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
    /// `init`: the instance ID of the initialiser (String; created without overwrite).
    pub fn init(&self) -> String {
        format!("{}init", self.prefix)
    }
    /// `init-reset/<holder>`: created without overwrite by the one agent allowed to clear a
    /// stale `init` claim held by `holder` (so that two agents can never both clear it and
    /// both win the next race).
    pub fn init_reset(&self, holder: &str) -> String {
        format!("{}init-reset/{holder}", self.prefix)
    }
    /// `manager-token` (SecureString).
    pub fn manager_token(&self) -> String {
        format!("{}manager-token", self.prefix)
    }
    /// `worker-token` (SecureString).
    pub fn worker_token(&self) -> String {
        format!("{}worker-token", self.prefix)
    }
    /// The token parameter for a role.
    pub fn token(&self, role: crate::plan::Role) -> String {
        match role {
            crate::plan::Role::Manager => self.manager_token(),
            crate::plan::Role::Worker => self.worker_token(),
        }
    }
    /// `nodes/` (the records' folder, ends with `/`).
    pub fn nodes(&self) -> String {
        format!("{}nodes/", self.prefix)
    }
    /// `nodes/<instance-id>`: a node's record (String JSON).
    pub fn node(&self, instance: &str) -> String {
        format!("{}nodes/{instance}", self.prefix)
    }
}

/// Error codes that mean "slow down and try again".
const THROTTLING: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "ThrottledException",
    "RequestThrottled",
    "SlowDown",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// Transient server-side codes.
const TRANSIENT: &[&str] = &[
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "ServiceUnavailable",
    "Unavailable",
    "ServiceFailure",
    "ResourceContention",
];

/// The code AWS gives a call the caller's policy does not allow (SSM says
/// `AccessDeniedException`, the query APIs `AccessDenied` / `UnauthorizedOperation`).
pub fn is_access_denied(e: &ProviderError) -> bool {
    matches!(
        e.code.as_str(),
        "AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation"
    )
}

/// An error and its causes on one line.
fn causes(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        let text = e
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        if !text.is_empty() && !parts.last().is_some_and(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

/// An SDK error of operation `op` as a [`ProviderError`]: throttling, 5xx, timeouts and
/// connection failures are retryable, `*NotFound` codes are not-found, the rest fatal. The
/// message names the operation and carries AWS's message, never a request parameter.
pub fn aws_error<E>(op: &str, err: SdkError<E, HttpResponse>) -> ProviderError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    let (class, code, message) = match &err {
        SdkError::TimeoutError(_) => (
            ErrorClass::Retryable,
            "Timeout".to_string(),
            "the request timed out".to_string(),
        ),
        SdkError::DispatchFailure(d) if d.is_other() && causes(&err).contains("credentials") => (
            ErrorClass::Fatal,
            "NoCredentials".to_string(),
            format!("no usable AWS credentials: {}", causes(&err)),
        ),
        SdkError::DispatchFailure(_) => (
            ErrorClass::Retryable,
            "DispatchFailure".to_string(),
            format!("the request could not be sent: {}", causes(&err)),
        ),
        SdkError::ResponseError(e) => {
            let status = e.raw().status().as_u16();
            (
                if status >= 500 {
                    ErrorClass::Retryable
                } else {
                    ErrorClass::Fatal
                },
                format!("HTTP{status}"),
                format!("the response could not be read (HTTP {status})"),
            )
        }
        SdkError::ServiceError(ctx) => {
            let status = ctx.raw().status().as_u16();
            let code = ctx
                .err()
                .code()
                .map(str::to_string)
                .unwrap_or_else(|| format!("HTTP{status}"));
            let message = ctx
                .err()
                .message()
                .map(str::to_string)
                .unwrap_or_else(|| format!("an error response (HTTP {status})"));
            let class = if THROTTLING.contains(&code.as_str())
                || TRANSIENT.contains(&code.as_str())
                || status >= 500
            {
                ErrorClass::Retryable
            } else if code.ends_with("NotFound") || code.ends_with("NotFoundException") {
                ErrorClass::NotFound
            } else {
                ErrorClass::Fatal
            };
            (class, code, message)
        }
        other => (ErrorClass::Fatal, "ClientError".to_string(), causes(other)),
    };
    ProviderError {
        class,
        code,
        message: format!("{op}: {message}"),
        retry_after: None,
    }
}

/// The SDK configuration the agent uses: the standard environment (`AWS_ENDPOINT_URL`,
/// credentials), the region from `AWS_REGION` / `AWS_DEFAULT_REGION` or else `region` (the
/// instance's, from IMDS), no SDK retries (the agent retries with [`infra_core::retry`]), and
/// bounded connect and attempt timeouts.
pub async fn sdk_config(region: &str) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(Duration::from_secs(30))
                .build(),
        );
    let env_region = ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|r| !r.trim().is_empty()));
    if !env_region {
        loader = loader.region(Region::new(region.to_string()));
    }
    loader.load().await
}

/// The AWS clients and the retry policy every call goes through.
#[derive(Clone, Debug)]
pub struct Aws {
    /// Parameter Store.
    pub ssm: aws_sdk_ssm::Client,
    /// Auto Scaling.
    pub asg: aws_sdk_autoscaling::Client,
    /// EC2.
    pub ec2: aws_sdk_ec2::Client,
    /// The policy of every call.
    pub policy: RetryPolicy,
}

/// An instance of an Auto Scaling group, as [`Aws::group`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    /// The group's name.
    pub name: String,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
}

/// A lifecycle hook of a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hook {
    /// Its name.
    pub name: String,
    /// Its heartbeat timeout.
    pub heartbeat: Duration,
}

impl Aws {
    /// One SDK call under the agent's retry policy, its error classified by [`aws_error`].
    async fn call<T, E, F, Fut>(&self, op: &str, send: F) -> Result<T, ProviderError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    {
        self.call_with(&self.policy, op, send).await
    }

    /// [`Aws::call`] under another retry policy.
    async fn call_with<T, E, F, Fut>(
        &self,
        policy: &RetryPolicy,
        op: &str,
        send: F,
    ) -> Result<T, ProviderError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    {
        retry(policy, op, || async {
            send().await.map_err(|e| aws_error(op, e))
        })
        .await
    }

    /// Clients from an SDK configuration, with the given retry policy.
    pub fn new(config: &SdkConfig, policy: RetryPolicy) -> Self {
        Aws {
            ssm: aws_sdk_ssm::Client::new(config),
            asg: aws_sdk_autoscaling::Client::new(config),
            ec2: aws_sdk_ec2::Client::new(config),
            policy,
        }
    }

    /// The Auto Scaling group `instance` belongs to, with its tags; `None` when no group has it
    /// (yet).
    pub async fn group(&self, instance: &str) -> Result<Option<Group>, ProviderError> {
        let op = "DescribeAutoScalingInstances";
        let found = self
            .call(op, || {
                self.asg
                    .describe_auto_scaling_instances()
                    .instance_ids(instance)
                    .send()
            })
            .await?;
        let Some(name) = found
            .auto_scaling_instances()
            .iter()
            .find(|i| i.instance_id() == Some(instance))
            .and_then(|i| i.auto_scaling_group_name())
            .map(str::to_string)
        else {
            return Ok(None);
        };
        let op = "DescribeAutoScalingGroups";
        let groups = self
            .call(op, || {
                self.asg
                    .describe_auto_scaling_groups()
                    .auto_scaling_group_names(&name)
                    .send()
            })
            .await?;
        Ok(groups
            .auto_scaling_groups()
            .iter()
            .find(|g| g.auto_scaling_group_name() == Some(name.as_str()))
            .map(|g| Group {
                name: name.clone(),
                tags: g
                    .tags()
                    .iter()
                    .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
                    .collect(),
            }))
    }

    /// The in-service instances of the stack's groups tagged `role=<role_tag>`.
    pub async fn group_instances(
        &self,
        stack: &str,
        role_tag: &str,
    ) -> Result<Vec<String>, ProviderError> {
        use aws_sdk_autoscaling::types::Filter;
        let op = "DescribeAutoScalingGroups";
        let pages = self
            .call(op, || {
                self.asg
                    .describe_auto_scaling_groups()
                    .filters(
                        Filter::builder()
                            .name("tag:infra:stack")
                            .values(stack)
                            .build(),
                    )
                    .filters(Filter::builder().name("tag:role").values(role_tag).build())
                    .into_paginator()
                    .send()
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?;
        let mut ids: Vec<String> = pages
            .iter()
            .flat_map(|p| p.auto_scaling_groups())
            // The filters are the API's; check the tags again (moto and AWS agree today).
            .filter(|g| {
                let tag = |k: &str| {
                    g.tags()
                        .iter()
                        .find(|t| t.key() == Some(k))
                        .and_then(|t| t.value())
                };
                tag("infra:stack") == Some(stack) && tag("role") == Some(role_tag)
            })
            .flat_map(|g| g.instances())
            .filter(|i| i.lifecycle_state().map(|s| s.as_str()) == Some("InService"))
            .filter_map(|i| i.instance_id().map(str::to_string))
            .collect();
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    /// State and private IP of each of `ids` that EC2 knows (the others are absent: not found).
    pub async fn instances(
        &self,
        ids: &[String],
    ) -> Result<BTreeMap<String, (InstanceState, Option<String>)>, ProviderError> {
        use aws_sdk_ec2::types::Filter;
        let mut out = BTreeMap::new();
        // A filter (not InstanceIds) so that an unknown ID is simply absent instead of failing
        // the whole call with InvalidInstanceID.NotFound.
        for chunk in ids.chunks(195) {
            let op = "DescribeInstances";
            let pages = self
                .call(op, || {
                    self.ec2
                        .describe_instances()
                        .filters(
                            Filter::builder()
                                .name("instance-id")
                                .set_values(Some(chunk.to_vec()))
                                .build(),
                        )
                        .into_paginator()
                        .send()
                        .collect::<Result<Vec<_>, _>>()
                })
                .await?;
            for i in pages
                .iter()
                .flat_map(|p| p.reservations())
                .flat_map(|r| r.instances())
            {
                let Some(id) = i.instance_id() else { continue };
                let state = i
                    .state()
                    .and_then(|s| s.name())
                    .map(|n| InstanceState::from_ec2(n.as_str()))
                    .unwrap_or(InstanceState::NotFound);
                out.insert(
                    id.to_string(),
                    (state, i.private_ip_address().map(str::to_string)),
                );
            }
        }
        Ok(out)
    }

    /// The state of each of `ids` (not found when EC2 does not know it).
    pub async fn instance_states(
        &self,
        ids: &[String],
    ) -> Result<BTreeMap<String, InstanceState>, ProviderError> {
        let found = self.instances(ids).await?;
        Ok(ids
            .iter()
            .map(|id| {
                (
                    id.clone(),
                    found
                        .get(id)
                        .map(|(s, _)| *s)
                        .unwrap_or(InstanceState::NotFound),
                )
            })
            .collect())
    }

    /// Creates a String parameter without overwrite: `Ok(true)` when this call created it,
    /// `Ok(false)` when it existed (`ParameterAlreadyExists`). The atomic create the init race
    /// and the stale-claim reset rely on.
    pub async fn create(&self, name: &str, value: &str) -> Result<bool, ProviderError> {
        let op = "PutParameter";
        let r = self
            .call(op, || {
                self.ssm
                    .put_parameter()
                    .name(name)
                    .value(value)
                    .r#type(ParameterType::String)
                    .overwrite(false)
                    .send()
            })
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(e) if e.code == "ParameterAlreadyExists" => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Writes a parameter, overwriting it: a SecureString when `secure`.
    pub async fn put(&self, name: &str, value: &Secret, secure: bool) -> Result<(), ProviderError> {
        let op = "PutParameter";
        self.call(op, || {
            self.ssm
                .put_parameter()
                .name(name)
                .value(value.expose())
                .r#type(if secure {
                    ParameterType::SecureString
                } else {
                    ParameterType::String
                })
                .overwrite(true)
                .send()
        })
        .await
        .map(drop)
    }

    /// A parameter's value (decrypted), `None` when it does not exist.
    pub async fn get(&self, name: &str) -> Result<Option<Secret>, ProviderError> {
        let op = "GetParameter";
        let r = self
            .call(op, || {
                self.ssm
                    .get_parameter()
                    .name(name)
                    .with_decryption(true)
                    .send()
            })
            .await;
        match r {
            Ok(out) => Ok(out
                .parameter()
                .and_then(|p| p.value())
                .map(|v| Secret::new(v.to_string()))),
            Err(e) if e.class == ErrorClass::NotFound => Ok(None),
            Err(e) => Err(e.with_name(name)),
        }
    }

    /// Deletes a parameter; one that does not exist is fine.
    pub async fn delete(&self, name: &str) -> Result<(), ProviderError> {
        let op = "DeleteParameter";
        let r = self
            .call(op, || self.ssm.delete_parameter().name(name).send())
            .await;
        match r {
            Err(e) if e.class != ErrorClass::NotFound => Err(e.with_name(name)),
            _ => Ok(()),
        }
    }

    /// Every parameter under `path` (recursive): name and value, decrypted.
    pub async fn list(&self, path: &str) -> Result<Vec<(String, Secret)>, ProviderError> {
        let op = "GetParametersByPath";
        let pages = self
            .call(op, || {
                self.ssm
                    .get_parameters_by_path()
                    .path(path)
                    .recursive(true)
                    .with_decryption(true)
                    .into_paginator()
                    .send()
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?;
        Ok(pages
            .iter()
            .flat_map(|p| p.parameters())
            .filter_map(|p| Some((p.name()?.to_string(), Secret::new(p.value()?))))
            .collect())
    }

    /// The group's hook on `autoscaling:EC2_INSTANCE_TERMINATING`, if it has one.
    pub async fn terminating_hook(&self, group: &str) -> Result<Option<Hook>, ProviderError> {
        let op = "DescribeLifecycleHooks";
        let out = self
            .call(op, || {
                self.asg
                    .describe_lifecycle_hooks()
                    .auto_scaling_group_name(group)
                    .send()
            })
            .await?;
        Ok(out
            .lifecycle_hooks()
            .iter()
            .filter(|h| h.lifecycle_transition() == Some("autoscaling:EC2_INSTANCE_TERMINATING"))
            .filter_map(|h| {
                Some(Hook {
                    name: h.lifecycle_hook_name()?.to_string(),
                    heartbeat: Duration::from_secs(
                        h.heartbeat_timeout().unwrap_or(3600).max(0) as u64
                    ),
                })
            })
            .min_by(|a, b| a.name.cmp(&b.name)))
    }

    /// Completes `instance`'s lifecycle action on `hook` with `CONTINUE`.
    pub async fn complete_lifecycle(
        &self,
        group: &str,
        hook: &str,
        instance: &str,
        policy: &RetryPolicy,
    ) -> Result<(), ProviderError> {
        let op = "CompleteLifecycleAction";
        self.call_with(policy, op, || {
            self.asg
                .complete_lifecycle_action()
                .auto_scaling_group_name(group)
                .lifecycle_hook_name(hook)
                .instance_id(instance)
                .lifecycle_action_result("CONTINUE")
                .send()
        })
        .await
        .map(drop)
    }
}

/// Adds the parameter's name to an error's message (AWS's SSM messages often omit it).
trait WithName {
    fn with_name(self, name: &str) -> Self;
}

impl WithName for ProviderError {
    fn with_name(mut self, name: &str) -> Self {
        if !self.message.contains(name) {
            self.message = format!("{} ({name})", self.message);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Role;

    #[test]
    fn every_parameter_lives_under_the_stacks_swarm_prefix() {
        let p = Params::new("prod");
        assert_eq!(p.prefix(), "/infra/prod/swarm/");
        assert_eq!(p.init(), "/infra/prod/swarm/init");
        assert_eq!(p.init_reset("i-1"), "/infra/prod/swarm/init-reset/i-1");
        assert_eq!(p.token(Role::Manager), "/infra/prod/swarm/manager-token");
        assert_eq!(p.token(Role::Worker), "/infra/prod/swarm/worker-token");
        assert_eq!(p.node("i-9"), "/infra/prod/swarm/nodes/i-9");
        assert!(p.node("i-9").starts_with(&p.nodes()));
        for name in [
            p.init(),
            p.init_reset("i-1"),
            p.manager_token(),
            p.node("i-2"),
        ] {
            assert!(name.starts_with("/infra/prod/"), "the node role's IAM path");
        }
    }

    #[test]
    fn access_denied_is_recognised_in_each_apis_spelling() {
        for code in [
            "AccessDeniedException",
            "AccessDenied",
            "UnauthorizedOperation",
        ] {
            assert!(is_access_denied(&ProviderError::fatal(code, "no")));
        }
        assert!(!is_access_denied(&ProviderError::fatal(
            "ParameterNotFound",
            "no"
        )));
    }
}
