//! The AWS provider: reads, creates, updates and deletes the AWS kinds through aws-sdk-ec2,
//! aws-sdk-autoscaling, aws-sdk-iam, aws-sdk-ssm, aws-sdk-elasticloadbalancingv2, aws-sdk-lambda,
//! aws-sdk-apigatewayv2 and aws-sdk-eventbridge, configured by `aws-config` (default credential chain and
//! region; `AWS_ENDPOINT_URL` honoured, which is how the tests reach moto).
//!
//! Each kind is one handler in a module of its own (`kinds::vpc`, `kinds::iam_role`, …)
//! keeping its read, create, update and delete together; the handlers are listed once, in a
//! registry the provider looks kinds up in. This module implements what every kind shares:
//!
//! * **Batched reads.** A read lists each object type once (paginated), filtered by the
//!   `infra:stack` tag (IAM: by the stack's IAM path), and keeps only objects whose tags say they
//!   are the stack's — also when an endpoint ignores the filter. The per-object exceptions are
//!   what AWS has no batched read of: the VPC's two DNS attributes (`DescribeVpcAttribute`),
//!   the lifecycle hooks of each of the stack's groups, the tags and values of the stack's
//!   SSM parameters, the tags and resource policy of each of the stack's Lambda functions, the
//!   routes, integrations and stages of each of the stack's HTTP APIs, and the tags and targets
//!   of each of the stack's EventBridge rules.
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

mod common;
mod ec2_common;
mod elb_common;
mod errors;
mod iam_common;
mod import;
mod interceptor;
mod kinds;
mod lock;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use infra_core::dsl::{Address, KindSchema, Stack};
use infra_core::import::{Found, ImportFilter};
use infra_core::lock::Created;
use infra_core::provider::{
    LockInfo, Observed, OpContext, Provider, ProviderError, ReadResult, Resolved,
};
use infra_core::registry::Registry;
use infra_core::retry::PollPolicy;
use infra_core::validate::Problem;

use common::{changed_fields, Cx, SeveredMap};
use interceptor::{CallCounter, CountCalls};
use kinds::{AwsKind, Listings};

pub use common::{TAG_DECLARED, TAG_ID, TAG_NAME, TAG_PROTECT, TAG_STACK};
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
    pub(crate) ssm: aws_sdk_ssm::Client,
    pub(crate) ssm_read: aws_sdk_ssm::Client,
    pub(crate) elb: aws_sdk_elasticloadbalancingv2::Client,
    pub(crate) elb_read: aws_sdk_elasticloadbalancingv2::Client,
    pub(crate) lambda: aws_sdk_lambda::Client,
    pub(crate) lambda_read: aws_sdk_lambda::Client,
    pub(crate) apigw: aws_sdk_apigatewayv2::Client,
    pub(crate) apigw_read: aws_sdk_apigatewayv2::Client,
    pub(crate) events: aws_sdk_eventbridge::Client,
    pub(crate) events_read: aws_sdk_eventbridge::Client,
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
    waits: PollPolicy,
    severed: SeveredMap,
    kinds: Registry<dyn AwsKind>,
    /// The caller's ARN, once known.
    caller: tokio::sync::OnceCell<String>,
    /// The stack locks' policy ARNs, once seen (see [`lock::KnownArns`]).
    lock_arns: lock::KnownArns,
    /// STS, for [`Provider::target`] (the account) and [`Provider::caller`] (the ARN).
    sts: aws_sdk_sts::Client,
    /// The endpoint the configuration names (`AWS_ENDPOINT_URL`), if any.
    endpoint: Option<String>,
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
        let ssm = |retry: RetryConfig, timeouts: &TimeoutConfig| {
            aws_sdk_ssm::Client::from_conf(
                aws_sdk_ssm::config::Builder::from(config)
                    .retry_config(retry)
                    .timeout_config(timeouts.clone())
                    .interceptor(counter.clone())
                    .build(),
            )
        };
        let elb = |retry: RetryConfig, timeouts: &TimeoutConfig| {
            aws_sdk_elasticloadbalancingv2::Client::from_conf(
                aws_sdk_elasticloadbalancingv2::config::Builder::from(config)
                    .retry_config(retry)
                    .timeout_config(timeouts.clone())
                    .interceptor(counter.clone())
                    .build(),
            )
        };
        let lambda = |retry: RetryConfig, timeouts: &TimeoutConfig| {
            aws_sdk_lambda::Client::from_conf(
                aws_sdk_lambda::config::Builder::from(config)
                    .retry_config(retry)
                    .timeout_config(timeouts.clone())
                    .interceptor(counter.clone())
                    .build(),
            )
        };
        let apigw = |retry: RetryConfig, timeouts: &TimeoutConfig| {
            aws_sdk_apigatewayv2::Client::from_conf(
                aws_sdk_apigatewayv2::config::Builder::from(config)
                    .retry_config(retry)
                    .timeout_config(timeouts.clone())
                    .interceptor(counter.clone())
                    .build(),
            )
        };
        let events = |retry: RetryConfig, timeouts: &TimeoutConfig| {
            aws_sdk_eventbridge::Client::from_conf(
                aws_sdk_eventbridge::config::Builder::from(config)
                    .retry_config(retry)
                    .timeout_config(timeouts.clone())
                    .interceptor(counter.clone())
                    .build(),
            )
        };
        let sts = aws_sdk_sts::Client::from_conf(
            aws_sdk_sts::config::Builder::from(config)
                .retry_config(reads.clone())
                .timeout_config(read_timeouts.clone())
                .interceptor(counter.clone())
                .build(),
        );
        Ok(AwsProvider {
            sts,
            endpoint: config.endpoint_url().map(str::to_string),
            clients: Clients {
                ec2: ec2(writes.clone(), &write_timeouts),
                ec2_read: ec2(reads.clone(), &read_timeouts),
                asg: asg(writes.clone(), &write_timeouts),
                asg_read: asg(reads.clone(), &read_timeouts),
                iam: iam(writes.clone(), &write_timeouts),
                iam_read: iam(reads.clone(), &read_timeouts),
                ssm: ssm(writes.clone(), &write_timeouts),
                ssm_read: ssm(reads.clone(), &read_timeouts),
                elb: elb(writes.clone(), &write_timeouts),
                elb_read: elb(reads.clone(), &read_timeouts),
                lambda: lambda(writes.clone(), &write_timeouts),
                lambda_read: lambda(reads.clone(), &read_timeouts),
                apigw: apigw(writes.clone(), &write_timeouts),
                apigw_read: apigw(reads.clone(), &read_timeouts),
                events: events(writes, &write_timeouts),
                events_read: events(reads, &read_timeouts),
                region,
            },
            calls,
            last_read: Mutex::new(BTreeMap::new()),
            // Pauses of 1 s, 2 s, 4 s … up to 15 s, for at most 10 minutes.
            waits: PollPolicy::new(
                Duration::from_secs(600),
                Duration::from_secs(1),
                Duration::from_secs(15),
            ),
            severed: SeveredMap::default(),
            kinds: kinds::registry(),
            caller: tokio::sync::OnceCell::new(),
            lock_arns: Default::default(),
        })
    }

    /// How long deletes and creates wait, at most, where AWS requires waiting (NAT gateways
    /// becoming available or deleted, auto scaling groups and their instances going away).
    /// Default: 10 minutes.
    pub fn with_wait_timeout(mut self, timeout: Duration) -> Self {
        self.waits.timeout = timeout;
        self
    }

    /// The longest pause between two polls while waiting (default 15 s; pauses start at 1 s,
    /// or at this interval when it is shorter).
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

    /// Converges an existing object (found by a look-up) to `d`.
    async fn converge(
        kind: &dyn AwsKind,
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
        kind.update(cx, op, &existing, d, &changed).await
    }
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

    /// `aws account <id>, region <region>`, and `, endpoint <url>` when the configuration
    /// names one (`AWS_ENDPOINT_URL`: moto, a proxy): the account comes from STS
    /// `GetCallerIdentity`, which needs no permission.
    async fn target(&self) -> Result<Option<String>, ProviderError> {
        let who = self
            .sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| errors::from_sdk("sts.GetCallerIdentity", e, &[]))?;
        let mut target = format!(
            "aws account {}, region {}",
            who.account().unwrap_or("(unknown)"),
            self.clients.region
        );
        if let Some(url) = &self.endpoint {
            target.push_str(&format!(", endpoint {url}"));
        }
        Ok(Some(target))
    }

    async fn read(&self, stack: &str) -> Result<ReadResult, ProviderError> {
        let scope = Arc::new(CallCounter::default());
        let cx = self.cx(stack);
        let listings = Listings::default();
        let result = interceptor::scoped(
            scope.clone(),
            futures::future::try_join_all(self.kinds.iter().map(|k| k.read(&cx, &listings))),
        )
        .await;
        *self.last_read.lock().unwrap_or_else(|e| e.into_inner()) = scope.by_operation();
        let mut resources = result?.concat();
        settle_duplicates(stack, &mut resources);
        Ok(ReadResult {
            resources,
            api_calls: scope.total(),
        })
    }

    async fn lookup(&self, stack: &str, spec: &Resolved) -> Result<Observed, ProviderError> {
        self.kinds
            .get(spec.schema.kind)?
            .lookup(&self.cx(stack), spec)
            .await
    }

    async fn create(&self, op: &OpContext, d: &Resolved) -> Result<Observed, ProviderError> {
        let cx = self.cx(&op.stack);
        let kind = self.kinds.get(d.schema.kind)?;
        if op.attempt > 1 || kind.lookup_before_create() {
            if let Some(existing) = kind.find(&cx, &d.address).await? {
                tracing::info!(address = %d.address, id = %existing.id, "found the object of an earlier attempt; converging it");
                return Self::converge(kind, &cx, op, existing, d).await;
            }
        }
        match kind.create(&cx, op, d).await {
            // A named object (IAM entity) made by an earlier attempt whose response was lost:
            // converge it if it is the stack's; a name taken by anything else is an error.
            Err(e) if kind.already_exists_codes().contains(&e.code.as_str()) => {
                match kind.find(&cx, &d.address).await? {
                    Some(existing) => Self::converge(kind, &cx, op, existing, d).await,
                    None => Err(ProviderError::fatal(
                        e.code,
                        format!(
                            "{} (and it is not owned by stack `{}`)",
                            e.message, op.stack
                        ),
                    )),
                }
            }
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
        let kind = self.kinds.get(d.schema.kind)?;
        if op.attempt > 1 {
            // Part of the first attempt may have been done: start from what is there now.
            let fresh = kind.find(&cx, &d.address).await?.ok_or_else(|| {
                ProviderError::not_found("NotFound", format!("{} is gone", d.address))
            })?;
            return Self::converge(kind, &cx, op, fresh, d).await;
        }
        kind.update(&cx, op, current, d, changed).await
    }

    async fn delete(&self, op: &OpContext, current: &Observed) -> Result<(), ProviderError> {
        self.kinds
            .get(current.address.kind())?
            .delete(&self.cx(&op.stack), current)
            .await
    }

    async fn move_to(
        &self,
        op: &OpContext,
        current: &Observed,
        to: &Address,
    ) -> Result<Observed, ProviderError> {
        self.kinds
            .get(current.address.kind())?
            .move_to(&self.cx(&op.stack), current, to)
            .await
    }

    /// The lock is an IAM policy `<stack>.infra-lock` under the stack's IAM path (see
    /// [`lock_name`]): created atomically, never part of a read.
    async fn lock_create(&self, stack: &str, info: &LockInfo) -> Result<Created, ProviderError> {
        lock::create(&self.clients, &self.lock_arns, stack, info).await
    }

    async fn lock_read(&self, stack: &str) -> Result<Option<LockInfo>, ProviderError> {
        lock::read(&self.clients, &self.lock_arns, stack).await
    }

    async fn lock_delete(&self, stack: &str) -> Result<(), ProviderError> {
        lock::delete(&self.clients, &self.lock_arns, stack).await
    }

    fn kinds(&self) -> Option<Vec<&'static KindSchema>> {
        Some(self.kinds.kinds())
    }

    /// Kind by kind in dependency order (VPCs, subnets, gateways, route tables, security
    /// groups, target groups, load balancers and their listeners, IAM, launch templates, auto
    /// scaling groups and their policies, SSM parameters, Lambda functions, EventBridge rules,
    /// HTTP APIs and Lambda permissions), each paging through
    /// its listing and handing every object without an `infra:stack` tag to `sink` as its
    /// page arrives. An error names the kind and the API call (one line).
    async fn discover(
        &self,
        filter: &ImportFilter,
        sink: &mut (dyn FnMut(Found) + Send),
    ) -> Result<(), ProviderError> {
        let cx = self.cx("");
        let mut pass = import::Discovery::new(filter, sink);
        for kind in import::DISCOVERY_ORDER {
            self.kinds
                .get(kind)?
                .discover(&cx, &mut pass)
                .await
                .map_err(|e| import::discovery_error(kind, e))?;
        }
        tracing::debug!(objects = pass.count, "aws discovery done");
        drop(pass);
        // Kinds whose import is not built: said in the module, never silently left out.
        for schema in self.kinds.kinds() {
            if schema.data_source || import::DISCOVERY_ORDER.contains(&schema.kind) {
                continue;
            }
            sink(Found::Inexpressible {
                what: format!("{} objects", schema.kind),
                id: "(all)".into(),
                reason: "import of this kind is not built yet: declare them by hand, each with \
                         its `stack.adopt`"
                    .into(),
            });
        }
        Ok(())
    }

    async fn read_unowned(
        &self,
        kind: &'static KindSchema,
        id: &str,
        address: &Address,
    ) -> Result<Option<Observed>, ProviderError> {
        self.kinds
            .get(kind.kind)?
            .read_unowned(&self.cx(""), id, address)
            .await
    }

    fn adoption_refusal(&self, kind: &'static KindSchema) -> Option<String> {
        let why = self.kinds.get(kind.kind).ok()?.adoption_refusal()?;
        Some(why.to_string())
    }

    /// Writes `infra:stack` and `infra:id` with the API's tagging call (EC2 CreateTags, Auto
    /// Scaling CreateOrUpdateTags, IAM TagRole/TagUser, ELBv2 AddTags, SSM AddTagsToResource,
    /// Lambda, EventBridge and API Gateway TagResource); the `Name` tag and everything else
    /// stay as they are.
    async fn adopt(
        &self,
        op: &OpContext,
        current: &Observed,
        to: &Address,
    ) -> Result<Observed, ProviderError> {
        self.kinds
            .get(to.kind())?
            .adopt(&self.cx(&op.stack), current, to)
            .await
    }

    fn api_calls(&self) -> Option<u64> {
        Some(self.calls.total())
    }

    /// The ARN `sts:GetCallerIdentity` gives (a user, or an assumed role's session), asked
    /// once per provider; a failure is said in the answer and asked again next time.
    async fn caller(&self) -> Option<String> {
        let found = self
            .caller
            .get_or_try_init(|| async {
                let out = self.sts.get_caller_identity().send().await.map_err(|e| {
                    use aws_sdk_sts::error::ProvideErrorMetadata;
                    let why = e
                        .as_service_error()
                        .and_then(|s| s.code().map(str::to_string))
                        .unwrap_or_else(|| e.to_string());
                    format!("unknown (sts:GetCallerIdentity failed: {why})")
                })?;
                out.arn()
                    .map(str::to_string)
                    .ok_or_else(|| "unknown (sts:GetCallerIdentity gave no ARN)".to_string())
            })
            .await;
        Some(match found {
            Ok(arn) => arn.clone(),
            Err(why) => why,
        })
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
