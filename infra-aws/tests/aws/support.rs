//! The shared harness: reaching moto (or skipping loudly), unique stack names, an engine tuned
//! for tests, and plan/apply helpers that fail with the rendered plan or report.

use std::sync::Arc;
use std::time::Duration;

use aws_config::BehaviorVersion;
use infra_aws::AwsProvider;
use infra_core::dsl::Stack;
use infra_core::engine::{Engine, Planned};
use infra_core::plan::{Action, PlanOptions};
use infra_core::reconcile::{ApplyOptions, ApplyReport, NoObserver, RetryPolicy};
use infra_core::render::{plan_text, report_text};

/// What a test needs to talk to moto: the provider under test, and plain SDK clients for
/// out-of-band changes and checks.
pub(crate) struct Moto {
    pub(crate) provider: Arc<AwsProvider>,
    pub(crate) ec2: aws_sdk_ec2::Client,
    pub(crate) asg: aws_sdk_autoscaling::Client,
    pub(crate) iam: aws_sdk_iam::Client,
    pub(crate) ssm: aws_sdk_ssm::Client,
    pub(crate) elb: aws_sdk_elasticloadbalancingv2::Client,
    pub(crate) lambda: aws_sdk_lambda::Client,
    pub(crate) apigw: aws_sdk_apigatewayv2::Client,
    pub(crate) events: aws_sdk_eventbridge::Client,
}

/// The moto endpoint: `AWS_ENDPOINT_URL` (what `.ci/setup-moto` exports), else its default.
pub(crate) fn endpoint() -> String {
    infra_test_support::moto_url()
}

/// Connects to moto, or returns `None` after a `SKIPPED` line (`infra_test_support::skip_or_fail`;
/// a failure when the run requires the endpoints).
pub(crate) async fn moto(test: &str) -> Option<Moto> {
    let url = endpoint();
    if let Err(why) = infra_test_support::reachable(&url) {
        infra_test_support::skip_or_fail(test, &why);
        return None;
    }
    // Always moto, with test credentials: these tests must never reach a real account, whatever
    // the environment holds.
    let config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(&url)
        .region(aws_config::Region::new("us-east-1"))
        .test_credentials()
        .load()
        .await;
    let provider = AwsProvider::from_sdk_config(&config)
        .expect("region is set")
        .with_wait_timeout(Duration::from_secs(60))
        .with_max_poll_interval(Duration::from_millis(200));
    Some(Moto {
        provider: Arc::new(provider),
        ec2: aws_sdk_ec2::Client::new(&config),
        asg: aws_sdk_autoscaling::Client::new(&config),
        iam: aws_sdk_iam::Client::new(&config),
        ssm: aws_sdk_ssm::Client::new(&config),
        elb: aws_sdk_elasticloadbalancingv2::Client::new(&config),
        lambda: aws_sdk_lambda::Client::new(&config),
        apigw: aws_sdk_apigatewayv2::Client::new(&config),
        events: aws_sdk_eventbridge::Client::new(&config),
    })
}

pub(crate) use infra_test_support::unique;

impl Moto {
    /// An engine over the provider, with quick retries (moto answers at once).
    pub(crate) fn engine(&self) -> Engine {
        Engine::new()
            .with_provider_arc(self.provider.clone())
            .with_options(ApplyOptions {
                concurrency: 10,
                retry: RetryPolicy {
                    max_attempts: 4,
                    base_delay: Duration::from_millis(50),
                    max_delay: Duration::from_millis(500),
                },
                ..ApplyOptions::default()
            })
    }
}

/// Plans (panics on error).
pub(crate) async fn plan(engine: &Engine, stack: &Stack) -> Planned {
    engine
        .plan(stack, &PlanOptions::default())
        .await
        .unwrap_or_else(|e| panic!("plan of {} failed: {e}", stack.name()))
}

/// Plans and applies; panics with the report when anything failed.
pub(crate) async fn apply(engine: &Engine, stack: &Stack) -> (Planned, ApplyReport) {
    let planned = plan(engine, stack).await;
    let report = engine
        .apply(&planned, &NoObserver)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "apply of {} failed: {e}\n{}",
                stack.name(),
                plan_text(&planned.plan)
            )
        });
    assert!(
        report.is_success(),
        "apply of {} did not succeed:\n{}\nplan was:\n{}",
        stack.name(),
        report_text(&report),
        plan_text(&planned.plan)
    );
    (planned, report)
}

/// Asserts that the plan is empty (a truly no-op re-plan).
pub(crate) async fn assert_noop(engine: &Engine, stack: &Stack, step: &str) {
    let p = plan(engine, stack).await;
    assert!(
        p.plan.is_empty(),
        "{step}: expected an empty plan, got:\n{}",
        plan_text(&p.plan)
    );
}

/// The action planned for `address`.
pub(crate) fn action(p: &Planned, address: &str) -> Action {
    p.plan
        .change(address)
        .unwrap_or_else(|| panic!("{address} is not in the plan:\n{}", plan_text(&p.plan)))
        .action
}

/// The names of the fields a change lists.
pub(crate) fn fields(p: &Planned, address: &str) -> Vec<String> {
    p.plan
        .change(address)
        .map(|c| c.fields.iter().map(|f| f.name.clone()).collect())
        .unwrap_or_default()
}

/// Destroys the stack and checks that nothing it owned is left.
pub(crate) async fn destroy(m: &Moto, engine: &Engine, stack: &Stack) {
    let planned = engine
        .plan(
            stack,
            &PlanOptions {
                destroy: true,
                allow_destroy_all: true,
                ..PlanOptions::default()
            },
        )
        .await
        .expect("destroy plan");
    let report = engine.apply(&planned, &NoObserver).await.expect("destroy");
    assert!(
        report.is_success(),
        "destroy failed:\n{}",
        report_text(&report)
    );
    let left = infra_core::provider::Provider::read(m.provider.as_ref(), stack.name())
        .await
        .expect("read after destroy");
    assert!(
        left.resources.is_empty(),
        "destroy left owned objects: {:?}",
        left.resources
            .iter()
            .map(|o| o.address.to_string())
            .collect::<Vec<_>>()
    );
}

/// The id of the object at `address` as the provider reads it now.
pub(crate) async fn id_of(m: &Moto, stack: &str, address: &str) -> String {
    observed(m, stack, address).await.id
}

/// The object at `address` as the provider reads it now.
pub(crate) async fn observed(
    m: &Moto,
    stack: &str,
    address: &str,
) -> infra_core::provider::Observed {
    infra_core::provider::Provider::read(m.provider.as_ref(), stack)
        .await
        .expect("read")
        .resources
        .into_iter()
        .find(|o| o.address.to_string() == address)
        .unwrap_or_else(|| panic!("{address} not found in stack {stack}"))
}
