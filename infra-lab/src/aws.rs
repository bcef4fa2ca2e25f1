//! The lab's own AWS calls (moto): what the stack's ASGs hold, the instances' addresses, lifecycle
//! hooks, and the health-check replacement. Every call is bounded (SDK timeouts, 3 attempts, and
//! an outer 60 s limit: a busy shared moto answers one request at a time, in seconds).

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use aws_sdk_autoscaling::types::Filter as AsgFilter;
use aws_sdk_ec2::config::retry::RetryConfig;
use aws_sdk_ec2::config::timeout::TimeoutConfig;
use aws_sdk_ec2::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata};

use crate::LabError;

/// One auto scaling group of the stack.
#[derive(Debug, Clone)]
pub(crate) struct Group {
    pub(crate) name: String,
    pub(crate) role: String,
    pub(crate) zones: Vec<String>,
    /// (instance id, lifecycle state)
    pub(crate) instances: Vec<(String, String)>,
}

/// What EC2 says about an instance.
#[derive(Debug, Clone)]
pub(crate) struct Inst {
    pub(crate) state: String,
    pub(crate) ip: Option<String>,
    pub(crate) subnet: Option<String>,
    pub(crate) vpc: Option<String>,
    pub(crate) az: Option<String>,
}

impl Inst {
    pub(crate) fn running(&self) -> bool {
        matches!(self.state.as_str(), "pending" | "running")
    }
}

pub(crate) struct Aws {
    ec2: aws_sdk_ec2::Client,
    asg: aws_sdk_autoscaling::Client,
}

const CALL_LIMIT: Duration = Duration::from_secs(60);

async fn bounded<T, E, F>(op: &str, f: F) -> Result<T, LabError>
where
    F: Future<Output = Result<T, E>>,
    E: std::error::Error,
{
    match tokio::time::timeout(CALL_LIMIT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(LabError::Aws {
            op: op.into(),
            msg: DisplayErrorContext(&e).to_string(),
        }),
        Err(_) => Err(LabError::Aws {
            op: op.into(),
            msg: format!("no answer within {CALL_LIMIT:?}"),
        }),
    }
}

impl Aws {
    pub(crate) fn new(endpoint: &str, region: &str) -> Aws {
        let key = std::env::var("AWS_ACCESS_KEY_ID").unwrap_or_else(|_| "test".into());
        let secret = std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or_else(|_| "test".into());
        let creds = Credentials::new(key, secret, None, None, "infra-lab");
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(3))
            .operation_attempt_timeout(Duration::from_secs(20))
            .operation_timeout(Duration::from_secs(50))
            .build();
        let ec2 = aws_sdk_ec2::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_string()))
            .credentials_provider(creds.clone())
            .endpoint_url(endpoint)
            .timeout_config(timeouts.clone())
            .retry_config(RetryConfig::standard().with_max_attempts(3))
            .build();
        let asg = aws_sdk_autoscaling::Config::builder()
            .behavior_version(aws_sdk_autoscaling::config::BehaviorVersion::latest())
            .region(aws_sdk_autoscaling::config::Region::new(region.to_string()))
            .credentials_provider(creds)
            .endpoint_url(endpoint)
            .timeout_config(timeouts)
            .retry_config(RetryConfig::standard().with_max_attempts(3))
            .build();
        Aws {
            ec2: aws_sdk_ec2::Client::from_conf(ec2),
            asg: aws_sdk_autoscaling::Client::from_conf(asg),
        }
    }

    /// The ASGs tagged `infra:stack=<stack>` (at most 20 pages).
    pub(crate) async fn groups(&self, stack: &str) -> Result<Vec<Group>, LabError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        for _page in 0..20 {
            let resp = bounded(
                "DescribeAutoScalingGroups",
                self.asg
                    .describe_auto_scaling_groups()
                    .filters(
                        AsgFilter::builder()
                            .name("tag:infra:stack")
                            .values(stack)
                            .build(),
                    )
                    .set_next_token(token.clone())
                    .send(),
            )
            .await?;
            for g in resp.auto_scaling_groups() {
                // the filter is the server's; check the tag ourselves too
                let tag = |k: &str| {
                    g.tags()
                        .iter()
                        .find(|t| t.key() == Some(k))
                        .and_then(|t| t.value())
                        .map(str::to_string)
                };
                if tag("infra:stack").as_deref() != Some(stack) {
                    continue;
                }
                out.push(Group {
                    name: g.auto_scaling_group_name().unwrap_or_default().to_string(),
                    role: tag("role").unwrap_or_default(),
                    zones: g.availability_zones().to_vec(),
                    instances: g
                        .instances()
                        .iter()
                        .filter_map(|i| {
                            Some((
                                i.instance_id()?.to_string(),
                                i.lifecycle_state()
                                    .map(|s| s.as_str().to_string())
                                    .unwrap_or_default(),
                            ))
                        })
                        .collect(),
                });
            }
            token = resp.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        Ok(out)
    }

    /// What EC2 says about these instances; an instance EC2 does not know is absent.
    pub(crate) async fn instances(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, Inst>, LabError> {
        let mut out = HashMap::new();
        for chunk in ids.chunks(100) {
            match self.describe(chunk).await {
                Ok(found) => out.extend(found),
                Err(e) if e.to_string().contains("InvalidInstanceID") => {
                    // one unknown id fails the whole call: ask one by one
                    for id in chunk {
                        match self.describe(std::slice::from_ref(id)).await {
                            Ok(found) => out.extend(found),
                            Err(e) if e.to_string().contains("InvalidInstanceID") => {}
                            Err(e) => return Err(e),
                        }
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    async fn describe(&self, ids: &[String]) -> Result<HashMap<String, Inst>, LabError> {
        let resp = tokio::time::timeout(
            CALL_LIMIT,
            self.ec2
                .describe_instances()
                .set_instance_ids(Some(ids.to_vec()))
                .send(),
        )
        .await
        .map_err(|_| LabError::Aws {
            op: "DescribeInstances".into(),
            msg: format!("no answer within {CALL_LIMIT:?}"),
        })?
        .map_err(|e| LabError::Aws {
            op: "DescribeInstances".into(),
            msg: format!(
                "{}: {}",
                e.code().unwrap_or("error"),
                DisplayErrorContext(&e)
            ),
        })?;
        let mut out = HashMap::new();
        for r in resp.reservations() {
            for i in r.instances() {
                let Some(id) = i.instance_id() else { continue };
                out.insert(
                    id.to_string(),
                    Inst {
                        state: i
                            .state()
                            .and_then(|s| s.name())
                            .map(|n| n.as_str().to_string())
                            .unwrap_or_default(),
                        ip: i.private_ip_address().map(str::to_string),
                        subnet: i.subnet_id().map(str::to_string),
                        vpc: i.vpc_id().map(str::to_string),
                        az: i
                            .placement()
                            .and_then(|p| p.availability_zone())
                            .map(str::to_string),
                    },
                );
            }
        }
        Ok(out)
    }

    /// A subnet's CIDR block.
    pub(crate) async fn subnet_cidr(&self, subnet: &str) -> Result<String, LabError> {
        let resp = bounded(
            "DescribeSubnets",
            self.ec2.describe_subnets().subnet_ids(subnet).send(),
        )
        .await?;
        resp.subnets()
            .first()
            .and_then(|s| s.cidr_block())
            .map(str::to_string)
            .ok_or_else(|| LabError::Aws {
                op: "DescribeSubnets".into(),
                msg: format!("no CIDR for {subnet}"),
            })
    }

    /// A VPC's CIDR block.
    pub(crate) async fn vpc_cidr(&self, vpc: &str) -> Result<String, LabError> {
        let resp = bounded("DescribeVpcs", self.ec2.describe_vpcs().vpc_ids(vpc).send()).await?;
        resp.vpcs()
            .first()
            .and_then(|v| v.cidr_block())
            .map(str::to_string)
            .ok_or_else(|| LabError::Aws {
                op: "DescribeVpcs".into(),
                msg: format!("no CIDR for {vpc}"),
            })
    }

    /// The heartbeat timeout of the group's `EC2_INSTANCE_TERMINATING` hook, if it has one.
    pub(crate) async fn terminating_hook(&self, asg: &str) -> Result<Option<Duration>, LabError> {
        let resp = bounded(
            "DescribeLifecycleHooks",
            self.asg
                .describe_lifecycle_hooks()
                .auto_scaling_group_name(asg)
                .send(),
        )
        .await?;
        Ok(resp
            .lifecycle_hooks()
            .iter()
            .find(|h| h.lifecycle_transition() == Some("autoscaling:EC2_INSTANCE_TERMINATING"))
            .map(|h| Duration::from_secs(h.heartbeat_timeout().unwrap_or(3600).max(1) as u64)))
    }

    /// What an EC2 health check does to a dead instance: terminate it without decrementing the
    /// desired capacity (the ASG launches a replacement).
    pub(crate) async fn replace(&self, instance: &str) -> Result<(), LabError> {
        bounded(
            "TerminateInstanceInAutoScalingGroup",
            self.asg
                .terminate_instance_in_auto_scaling_group()
                .instance_id(instance)
                .should_decrement_desired_capacity(false)
                .send(),
        )
        .await
        .map(|_| ())
    }
}
