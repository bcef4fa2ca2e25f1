//! The AWS provider: reads, creates, updates and deletes the AWS kinds through aws-sdk-ec2,
//! aws-sdk-autoscaling and aws-sdk-iam, configured by `aws-config` (default credential chain and
//! region; `AWS_ENDPOINT_URL` honoured, which is how the tests reach moto).
//!
//! One module per service area keeps each kind's read, create, update and delete together:
//! `ec2_network` (VPC, subnet, internet gateway, Elastic IP, NAT gateway, route table),
//! `ec2_security_group`, `ec2_compute` (launch template, AMI lookup), `autoscaling`
//! (group, scaling policy) and `iam`. This module dispatches by kind and implements what every
//! kind shares:
//!
//! * **Batched reads.** A read lists each object type once (paginated), filtered by the
//!   `infra:stack` tag (IAM: by the stack's IAM path), and keeps only objects whose tags say they
//!   are the stack's — also when an endpoint ignores the filter. The one per-object exception is
//!   the VPC's two DNS attributes, which AWS exposes only through `DescribeVpcAttribute`.
//! * **Idempotent creates.** Objects are created with their tags in the same call; APIs with an
//!   idempotency token get the reconciler's. A retried create (after a lost response or a
//!   retryable error) first looks the object up by its `infra:id` (or its name) and, if it
//!   exists, converges it instead of creating a duplicate. Mutating calls are not retried by the
//!   SDK for the same reason: the reconciler retries them, through that look-up.
//! * **Re-entrant updates.** A retried update re-reads the object and recomputes what differs,
//!   so steps done by the failed attempt are not repeated.
//! * **An apply lock.** Two applies of one stack exclude each other through an IAM policy
//!   `<stack>.infra-lock` under the stack's IAM path, created atomically with the holder in its
//!   description (see [`lock_name`] and the `lock` module's notes on why IAM).

mod autoscaling;
mod common;
mod ec2_compute;
mod ec2_network;
mod ec2_security_group;
mod errors;
mod iam;
mod interceptor;
mod lock;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use infra_core::dsl::KindSchema;
use infra_core::dsl::{Address, Stack};
use infra_core::lock::Created;
use infra_core::provider::{
    LockInfo, Observed, OpContext, Provider, ProviderError, ReadResult, Resolved,
};
use infra_core::validate::Problem;

use common::{changed_fields, Cx, SeveredMap, WaitConfig};
use interceptor::{CallCounter, CountCalls};

pub use common::{TAG_ID, TAG_NAME, TAG_PROTECT, TAG_STACK};
pub use lock::{lock_name, TAG_LOCK};

/// Why the provider could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No region in the environment, profile or configuration.
    #[error("no AWS region is configured: set AWS_REGION (or a region in the AWS profile)")]
    NoRegion,
}

/// The SDK clients. Mutating calls go through clients without SDK retries (see the module
/// docs); reads and polls through clients with the SDK's standard retries.
#[derive(Clone, Debug)]
pub(crate) struct Clients {
    pub(crate) ec2: aws_sdk_ec2::Client,
    pub(crate) ec2_read: aws_sdk_ec2::Client,
    pub(crate) asg: aws_sdk_autoscaling::Client,
    pub(crate) asg_read: aws_sdk_autoscaling::Client,
    pub(crate) iam: aws_sdk_iam::Client,
    pub(crate) iam_read: aws_sdk_iam::Client,
    pub(crate) region: String,
}

/// The AWS provider. See the [module docs](self).
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use infra_aws::AwsProvider;
/// use infra_core::engine::Engine;
/// let engine = Engine::new().with_provider(AwsProvider::from_env().await?);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct AwsProvider {
    clients: Clients,
    calls: Arc<CallCounter>,
    last_read: Mutex<BTreeMap<String, u64>>,
    waits: WaitConfig,
    severed: SeveredMap,
}

impl AwsProvider {
    /// A provider configured from the environment by `aws-config` (credentials chain, region,
    /// `AWS_ENDPOINT_URL`).
    pub async fn from_env() -> Result<AwsProvider, ConfigError> {
        let config = aws_config::load_defaults(BehaviorVersion::latest()).await;
        AwsProvider::from_sdk_config(&config)
    }

    /// A provider from an SDK configuration (tests build one pointing at moto).
    pub fn from_sdk_config(config: &SdkConfig) -> Result<AwsProvider, ConfigError> {
        let region = config
            .region()
            .map(|r| r.to_string())
            .ok_or(ConfigError::NoRegion)?;
        let calls = Arc::new(CallCounter::default());
        let counter = CountCalls(calls.clone());
        // A hung connection must not stall an apply forever; these bounds are per attempt.
        let write_timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(10))
            .operation_attempt_timeout(Duration::from_secs(90))
            .build();
        // Reads (and polls) are small and quick: an endpoint that accepts connections but never
        // answers fails a plan within half a minute, not after three attempts of 90 s.
        let read_timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(10))
            .operation_attempt_timeout(Duration::from_secs(10))
            .operation_timeout(Duration::from_secs(30))
            .build();
        let reads = config
            .retry_config()
            .cloned()
            .unwrap_or_else(RetryConfig::standard);
        let writes = RetryConfig::disabled();
        let ec2 = |retry: RetryConfig, timeouts: &TimeoutConfig| {
            aws_sdk_ec2::Client::from_conf(
                aws_sdk_ec2::config::Builder::from(config)
                    .retry_config(retry)
                    .timeout_config(timeouts.clone())
                    .interceptor(counter.clone())
                    .build(),
            )
        };
        let asg = |retry: RetryConfig, timeouts: &TimeoutConfig| {
            aws_sdk_autoscaling::Client::from_conf(
                aws_sdk_autoscaling::config::Builder::from(config)
                    .retry_config(retry)
                    .timeout_config(timeouts.clone())
                    .interceptor(counter.clone())
                    .build(),
            )
        };
        let iam = |retry: RetryConfig, timeouts: &TimeoutConfig| {
            aws_sdk_iam::Client::from_conf(
                aws_sdk_iam::config::Builder::from(config)
                    .retry_config(retry)
                    .timeout_config(timeouts.clone())
                    .interceptor(counter.clone())
                    .build(),
            )
        };
        Ok(AwsProvider {
            clients: Clients {
                ec2: ec2(writes.clone(), &write_timeouts),
                ec2_read: ec2(reads.clone(), &read_timeouts),
                asg: asg(writes.clone(), &write_timeouts),
                asg_read: asg(reads.clone(), &read_timeouts),
                iam: iam(writes, &write_timeouts),
                iam_read: iam(reads, &read_timeouts),
                region,
            },
            calls,
            last_read: Mutex::new(BTreeMap::new()),
            waits: WaitConfig::default(),
            severed: SeveredMap::default(),
        })
    }

    /// How long deletes and creates wait, at most, where AWS requires waiting (NAT gateways
    /// becoming available or deleted, auto scaling groups and their instances going away).
    /// Default: 10 minutes.
    pub fn with_wait_timeout(mut self, timeout: Duration) -> Self {
        self.waits.timeout = timeout;
        self
    }

    /// The longest pause between two polls while waiting (default 15 s; pauses start at 1 s).
    pub fn with_max_poll_interval(mut self, interval: Duration) -> Self {
        self.waits.max_interval = interval;
        self
    }

    /// The region the provider works in.
    pub fn region(&self) -> &str {
        &self.clients.region
    }

    /// API calls made so far, by operation (`ec2.DescribeVpcs`), retries included.
    pub fn calls_by_operation(&self) -> BTreeMap<String, u64> {
        self.calls.by_operation()
    }

    /// The API calls of the most recent [`Provider::read`], by operation.
    pub fn last_read_calls(&self) -> BTreeMap<String, u64> {
        self.last_read
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn cx<'a>(&'a self, stack: &'a str) -> Cx<'a> {
        Cx {
            c: &self.clients,
            stack,
            waits: &self.waits,
            severed: &self.severed,
        }
    }

    /// The stack's object at `address`, looked up by its ownership tags (or name), fresh.
    async fn find(
        &self,
        cx: &Cx<'_>,
        address: &Address,
    ) -> Result<Option<Observed>, ProviderError> {
        match address.kind() {
            "aws_vpc" => ec2_network::find_vpc(cx, address).await,
            "aws_subnet" => ec2_network::find_subnet(cx, address).await,
            "aws_internet_gateway" => ec2_network::find_internet_gateway(cx, address).await,
            "aws_eip" => ec2_network::find_eip(cx, address).await,
            "aws_nat_gateway" => ec2_network::find_nat_gateway(cx, address).await,
            "aws_route_table" => ec2_network::find_route_table(cx, address).await,
            "aws_security_group" => ec2_security_group::find(cx, address).await,
            "aws_launch_template" => ec2_compute::find_launch_template(cx, address).await,
            "aws_autoscaling_group" => autoscaling::find_group(cx, address).await,
            "aws_autoscaling_policy" => autoscaling::find_policy(cx, address).await,
            "aws_iam_policy"
            | "aws_iam_role"
            | "aws_iam_instance_profile"
            | "aws_iam_group"
            | "aws_iam_user" => iam::find(cx, address).await,
            other => Err(unsupported(other)),
        }
    }

    async fn create_new(
        &self,
        cx: &Cx<'_>,
        op: &OpContext,
        d: &Resolved,
    ) -> Result<Observed, ProviderError> {
        match d.schema.kind {
            "aws_vpc" => ec2_network::create_vpc(cx, d).await,
            "aws_subnet" => ec2_network::create_subnet(cx, d).await,
            "aws_internet_gateway" => ec2_network::create_internet_gateway(cx, d).await,
            "aws_eip" => ec2_network::create_eip(cx, d).await,
            "aws_nat_gateway" => ec2_network::create_nat_gateway(cx, op, d).await,
            "aws_route_table" => ec2_network::create_route_table(cx, op, d).await,
            "aws_security_group" => ec2_security_group::create(cx, d).await,
            "aws_launch_template" => ec2_compute::create_launch_template(cx, op, d).await,
            "aws_autoscaling_group" => autoscaling::create_group(cx, d).await,
            "aws_autoscaling_policy" => autoscaling::put_policy(cx, d).await,
            "aws_iam_policy" => iam::create_policy(cx, d).await,
            "aws_iam_role" => iam::create_role(cx, d).await,
            "aws_iam_instance_profile" => iam::create_instance_profile(cx, d).await,
            "aws_iam_group" => iam::create_group(cx, d).await,
            "aws_iam_user" => iam::create_user(cx, d).await,
            other => Err(unsupported(other)),
        }
    }

    async fn update_existing(
        &self,
        cx: &Cx<'_>,
        op: &OpContext,
        current: &Observed,
        d: &Resolved,
        changed: &[String],
    ) -> Result<Observed, ProviderError> {
        match d.schema.kind {
            "aws_vpc" => ec2_network::update_vpc(cx, current, d, changed).await,
            "aws_subnet" => ec2_network::update_subnet(cx, current, d, changed).await,
            "aws_internet_gateway" => {
                ec2_network::update_internet_gateway(cx, current, d, changed).await
            }
            "aws_eip" => ec2_network::update_tags_only(cx, current, d).await,
            "aws_nat_gateway" => ec2_network::update_tags_only(cx, current, d).await,
            "aws_route_table" => ec2_network::update_route_table(cx, current, d, changed).await,
            "aws_security_group" => ec2_security_group::update(cx, current, d, changed).await,
            "aws_launch_template" => {
                ec2_compute::update_launch_template(cx, op, current, d, changed).await
            }
            "aws_autoscaling_group" => autoscaling::update_group(cx, current, d, changed).await,
            "aws_autoscaling_policy" => autoscaling::put_policy(cx, d).await,
            "aws_iam_policy" => iam::update_policy(cx, current, d, changed).await,
            "aws_iam_role" => iam::update_role(cx, current, d, changed).await,
            "aws_iam_instance_profile" => {
                iam::update_instance_profile(cx, current, d, changed).await
            }
            "aws_iam_group" => iam::update_group(cx, current, d, changed).await,
            "aws_iam_user" => iam::update_user(cx, current, d, changed).await,
            other => Err(unsupported(other)),
        }
    }

    /// Converges an existing object (found by a look-up) to `d`.
    async fn converge(
        &self,
        cx: &Cx<'_>,
        op: &OpContext,
        existing: Observed,
        d: &Resolved,
    ) -> Result<Observed, ProviderError> {
        let changed = changed_fields(d, &existing);
        if changed.is_empty() && existing.protect == d.protect {
            return Ok(existing);
        }
        // The reconciler refuses planned force-new updates; this converges an object found by
        // a look-up, which no plan has seen.
        infra_core::reconcile::force_new_guard(d, &changed)?;
        self.update_existing(cx, op, &existing, d, &changed).await
    }
}

fn unsupported(kind: &str) -> ProviderError {
    ProviderError::fatal(
        "Unsupported",
        format!("the aws provider has no kind `{kind}`"),
    )
}

/// Kinds whose create can't carry an idempotency token and whose name isn't unique in AWS: a
/// retried create must look the object up first.
fn lookup_before_create(kind: &str) -> bool {
    // Auto scaling groups are looked up on every create: moto silently replaces a group of the
    // same name, so AWS's AlreadyExists can't be relied on to find a lost create's group.
    kind == "aws_autoscaling_group"
}

#[async_trait]
impl Provider for AwsProvider {
    fn name(&self) -> &str {
        crate::PROVIDER
    }

    /// Availability zones against the configured region: `us-east-1a` can't be used with
    /// `eu-west-1` (the region is known only here, where the stack is deployed).
    fn preflight(&self, stack: &Stack) -> Vec<Problem> {
        crate::kinds::network::availability_zone_problems(stack, &self.clients.region)
    }

    async fn read(&self, stack: &str) -> Result<ReadResult, ProviderError> {
        let scope = Arc::new(CallCounter::default());
        let cx = self.cx(stack);
        let result = interceptor::scoped(scope.clone(), async {
            let (net, sg, compute, asg, iam) = tokio::try_join!(
                ec2_network::read(&cx),
                ec2_security_group::read(&cx),
                ec2_compute::read(&cx),
                autoscaling::read(&cx),
                iam::read(&cx),
            )?;
            Ok::<_, ProviderError>([net, sg, compute, asg, iam].concat())
        })
        .await;
        *self.last_read.lock().unwrap_or_else(|e| e.into_inner()) = scope.by_operation();
        let mut resources = result?;
        settle_duplicates(stack, &mut resources);
        Ok(ReadResult {
            resources,
            api_calls: scope.total(),
        })
    }

    async fn lookup(&self, stack: &str, spec: &Resolved) -> Result<Observed, ProviderError> {
        match spec.schema.kind {
            "aws_ami" => ec2_compute::lookup_ami(&self.cx(stack), spec).await,
            other => Err(unsupported(other)),
        }
    }

    async fn create(&self, op: &OpContext, d: &Resolved) -> Result<Observed, ProviderError> {
        let cx = self.cx(&op.stack);
        if op.attempt > 1 || lookup_before_create(d.schema.kind) {
            if let Some(existing) = self.find(&cx, &d.address).await? {
                tracing::info!(address = %d.address, id = %existing.id, "found the object of an earlier attempt; converging it");
                return self.converge(&cx, op, existing, d).await;
            }
        }
        match self.create_new(&cx, op, d).await {
            // A named object (IAM entity) made by an earlier attempt whose response was lost:
            // converge it if it is the stack's; a name taken by anything else is an error.
            Err(e) if e.code == "EntityAlreadyExists" => match self.find(&cx, &d.address).await? {
                Some(existing) => self.converge(&cx, op, existing, d).await,
                None => Err(ProviderError::fatal(
                    e.code,
                    format!(
                        "{} (and it is not owned by stack `{}`)",
                        e.message, op.stack
                    ),
                )),
            },
            other => other,
        }
    }

    async fn update(
        &self,
        op: &OpContext,
        current: &Observed,
        d: &Resolved,
        changed: &[String],
    ) -> Result<Observed, ProviderError> {
        let cx = self.cx(&op.stack);
        if op.attempt > 1 {
            // Part of the first attempt may have been done: start from what is there now.
            let fresh = self.find(&cx, &d.address).await?.ok_or_else(|| {
                ProviderError::not_found("NotFound", format!("{} is gone", d.address))
            })?;
            return self.converge(&cx, op, fresh, d).await;
        }
        self.update_existing(&cx, op, current, d, changed).await
    }

    async fn delete(&self, op: &OpContext, current: &Observed) -> Result<(), ProviderError> {
        let cx = self.cx(&op.stack);
        match current.address.kind() {
            "aws_vpc" => ec2_network::delete_vpc(&cx, current).await,
            "aws_subnet" => ec2_network::delete_subnet(&cx, current).await,
            "aws_internet_gateway" => ec2_network::delete_internet_gateway(&cx, current).await,
            "aws_eip" => ec2_network::delete_eip(&cx, current).await,
            "aws_nat_gateway" => ec2_network::delete_nat_gateway(&cx, current).await,
            "aws_route_table" => ec2_network::delete_route_table(&cx, current).await,
            "aws_security_group" => ec2_security_group::delete(&cx, current).await,
            "aws_launch_template" => ec2_compute::delete_launch_template(&cx, current).await,
            "aws_autoscaling_group" => autoscaling::delete_group(&cx, current).await,
            "aws_autoscaling_policy" => autoscaling::delete_policy(&cx, current).await,
            "aws_iam_policy" => iam::delete_policy(&cx, current).await,
            "aws_iam_role" => iam::delete_role(&cx, current).await,
            "aws_iam_instance_profile" => iam::delete_instance_profile(&cx, current).await,
            "aws_iam_group" => iam::delete_group(&cx, current).await,
            "aws_iam_user" => iam::delete_user(&cx, current).await,
            other => Err(unsupported(other)),
        }
    }

    /// The lock is an IAM policy `<stack>.infra-lock` under the stack's IAM path (see
    /// [`lock_name`]): created atomically, never part of a read.
    async fn lock_create(&self, stack: &str, info: &LockInfo) -> Result<Created, ProviderError> {
        lock::create(&self.clients, stack, info).await
    }

    async fn lock_read(&self, stack: &str) -> Result<Option<LockInfo>, ProviderError> {
        lock::read(&self.clients, stack).await
    }

    async fn lock_delete(&self, stack: &str) -> Result<(), ProviderError> {
        lock::delete(&self.clients, stack).await
    }

    fn kinds(&self) -> Option<Vec<&'static KindSchema>> {
        Some(crate::kinds::schemas())
    }

    fn api_calls(&self) -> Option<u64> {
        Some(self.calls.total())
    }
}

/// Several objects carrying one `infra:id`: the two halves of a create-before-destroy
/// replacement that was interrupted between its create and its delete (or a copy made by hand
/// with the stack's tags). The first by id stays the resource; the others are read as
/// `<address>~<id>` ("deposed", as terraform calls them), which no declaration has, so the plan
/// deletes them once nothing refers to them and the next apply converges. EC2 ids carry no
/// time order: when the survivor is the old half, the plan replaces it again (one more
/// replacement, nothing lost). IAM names are unique, so this only happens to EC2 objects.
fn settle_duplicates(stack: &str, resources: &mut [Observed]) {
    resources.sort_by(|a, b| a.address.cmp(&b.address).then_with(|| a.id.cmp(&b.id)));
    let mut primary: Option<(Address, String)> = None;
    for o in resources.iter_mut() {
        match &primary {
            Some((address, kept)) if *address == o.address => {
                tracing::warn!(
                    stack,
                    address = %o.address,
                    kept = %kept,
                    deposed = %o.id,
                    "two objects carry one infra:id; the extra one will be deleted"
                );
                o.address =
                    Address::new(o.address.kind(), format!("{}~{}", o.address.name(), o.id));
            }
            _ => primary = Some((o.address.clone(), o.id.clone())),
        }
    }
    resources.sort_by(|a, b| a.address.cmp(&b.address));
}
