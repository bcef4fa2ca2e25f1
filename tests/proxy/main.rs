//! Tests of the fault-injecting proxy (`infra_test_support::proxy`) through the real AWS SDK clients
//! against moto: each fault must look to the SDK like the real thing (error code, status, dispatch
//! failure) and must have the intended effect upstream (forwarded or not), so that the fault tests
//! built on it prove what they claim.
//!
//! moto is shared by tests running in parallel: every test tags what it creates with a unique
//! value, counts only its own resources and deletes them; nothing calls `/moto-api/reset`.
//! Without moto the moto-backed tests print a SKIPPED line and pass, except when the run requires
//! the endpoints (`INFRA_REQUIRE_ENDPOINTS=1`, as `.ci/test` sets), where they fail.

use infra_test_support::proxy;

use std::time::{Duration, Instant};

use aws_sdk_ec2::config::retry::{RetryConfig, RetryPartition};
use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;

use proxy::{Fault, FaultConfig, FaultProxy};

const TAG_KEY: &str = "proxy-test";

// ---------------------------------------------------------------------------------------------
// Environment

/// The moto endpoint if it accepts connections, or `None` after a SKIPPED line naming the
/// running test (a failure when the run requires the endpoints: a silently skipped fault test
/// would be a false green).
async fn moto() -> Option<String> {
    let url = infra_test_support::moto_url();
    match infra_test_support::reachable(&url) {
        Ok(()) => Some(url),
        Err(why) => {
            infra_test_support::skip_or_fail(&infra_test_support::current_test(), &why);
            None
        }
    }
}

macro_rules! require_moto {
    () => {
        match moto().await {
            Some(url) => url,
            None => return,
        }
    };
}

/// A unique tag value per test and run, so parallel tests and earlier runs never see each other's
/// resources in the shared moto.
use infra_test_support::unique;

/// An SDK-retry partition of its own per client, so that the process-wide retry token bucket is
/// not drained by other tests' injected faults.
fn partition(name: &str) -> RetryPartition {
    RetryPartition::new(unique(name))
}

// ---------------------------------------------------------------------------------------------
// SDK clients

/// `fn $name(endpoint, retry) -> $sdk::Client`: a client of that SDK for moto or the proxy, with
/// test credentials and a retry partition of its own.
macro_rules! sdk_client {
    ($name:ident, $sdk:ident) => {
        fn $name(endpoint: &str, retry: RetryConfig) -> $sdk::Client {
            let config = $sdk::Config::builder()
                .behavior_version($sdk::config::BehaviorVersion::latest())
                .region($sdk::config::Region::new("us-east-1"))
                .credentials_provider($sdk::config::Credentials::new(
                    "test",
                    "test",
                    None,
                    None,
                    "proxy-tests",
                ))
                .endpoint_url(endpoint)
                .retry_config(retry)
                .retry_partition(partition(stringify!($name)))
                .build();
            $sdk::Client::from_conf(config)
        }
    };
}

sdk_client!(ec2, aws_sdk_ec2);
sdk_client!(iam, aws_sdk_iam);
sdk_client!(autoscaling, aws_sdk_autoscaling);
sdk_client!(ssm, aws_sdk_ssm);
sdk_client!(lambda, aws_sdk_lambda);

/// The SDK's standard retry (3 attempts, same classifiers as the default) with a short backoff
/// so the test doesn't sleep for seconds; classification doesn't depend on the backoff.
fn standard_retry() -> RetryConfig {
    RetryConfig::standard().with_initial_backoff(Duration::from_millis(5))
}

// ---------------------------------------------------------------------------------------------
// moto helpers (always called directly, never through a proxy)

async fn create_tagged_vpc(
    client: &aws_sdk_ec2::Client,
    tag: &str,
) -> Result<String, SdkError<aws_sdk_ec2::operation::create_vpc::CreateVpcError>> {
    let out = client
        .create_vpc()
        .cidr_block("10.77.0.0/16")
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Vpc)
                .tags(Tag::builder().key(TAG_KEY).value(tag).build())
                .build(),
        )
        .send()
        .await?;
    Ok(out
        .vpc()
        .and_then(|v| v.vpc_id())
        .expect("CreateVpc returns the VPC id")
        .to_owned())
}

async fn vpcs_tagged(direct: &aws_sdk_ec2::Client, tag: &str) -> Vec<String> {
    let out = direct
        .describe_vpcs()
        .filters(
            Filter::builder()
                .name(format!("tag:{TAG_KEY}"))
                .values(tag)
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("DescribeVpcs on moto: {}", DisplayErrorContext(&e)));
    out.vpcs()
        .iter()
        .filter_map(|v| v.vpc_id().map(str::to_owned))
        .collect()
}

/// Counts the test's VPCs on moto, then deletes them, so that assertions run after the cleanup.
async fn count_and_delete_vpcs(direct: &aws_sdk_ec2::Client, tag: &str) -> usize {
    let ids = vpcs_tagged(direct, tag).await;
    for id in &ids {
        direct
            .delete_vpc()
            .vpc_id(id)
            .send()
            .await
            .unwrap_or_else(|e| panic!("DeleteVpc {id}: {}", DisplayErrorContext(&e)));
    }
    ids.len()
}

/// How a call ended, as the caller can observe it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    Ok,
    Service { status: u16, code: Option<String> },
    Dispatch { io: bool },
    Other(String),
}

fn outcome<T, E: ProvideErrorMetadata + std::error::Error + 'static>(
    result: &Result<T, SdkError<E>>,
) -> Outcome {
    match result {
        Ok(_) => Outcome::Ok,
        Err(SdkError::ServiceError(e)) => Outcome::Service {
            status: e.raw().status().as_u16(),
            code: e.err().code().map(str::to_owned),
        },
        Err(SdkError::DispatchFailure(e)) => Outcome::Dispatch { io: e.is_io() },
        Err(e) => Outcome::Other(DisplayErrorContext(e).to_string()),
    }
}

async fn describe_azs(client: &aws_sdk_ec2::Client) -> Outcome {
    outcome(&client.describe_availability_zones().send().await)
}

// ---------------------------------------------------------------------------------------------
// Tests against moto

#[tokio::test]
async fn transparent_proxy_passes_create_and_describe_through() {
    let moto = require_moto!();
    let proxy = FaultProxy::start(&moto, FaultConfig::transparent())
        .await
        .unwrap();
    let via = ec2(&proxy.url(), RetryConfig::disabled());
    let direct = ec2(&moto, RetryConfig::disabled());
    let tag = unique("transparent");

    let created = create_tagged_vpc(&via, &tag).await;
    let seen_via_proxy = match &created {
        Ok(_) => vpcs_tagged(&via, &tag).await,
        Err(_) => Vec::new(),
    };
    let on_moto = count_and_delete_vpcs(&direct, &tag).await;

    let id = created.unwrap_or_else(|e| panic!("CreateVpc via proxy: {}", DisplayErrorContext(&e)));
    assert_eq!(seen_via_proxy, vec![id], "DescribeVpcs via the proxy");
    assert_eq!(on_moto, 1, "moto holds exactly the one VPC");
    let stats = proxy.stats();
    assert_eq!(stats.total.requests, 2, "{stats:?}");
    assert_eq!(stats.total.forwarded, 2, "{stats:?}");
    assert_eq!(stats.total.delivered, 2, "{stats:?}");
    assert_eq!(stats.total.faults(), 0, "{stats:?}");
    assert_eq!(stats.action("CreateVpc").delivered, 1, "{stats:?}");
    assert_eq!(stats.action("DescribeVpcs").delivered, 1, "{stats:?}");
    let events = proxy.events();
    assert!(
        events
            .iter()
            .all(|e| e.service.as_deref() == Some("ec2") && e.fault == Fault::None),
        "{events:?}"
    );
}

#[tokio::test]
async fn throttled_ec2_call_is_request_limit_exceeded_and_not_forwarded() {
    let moto = require_moto!();
    let config = FaultConfig {
        throttle_rate: 1.0,
        ..FaultConfig::transparent()
    };
    let proxy = FaultProxy::start(&moto, config).await.unwrap();
    let via = ec2(&proxy.url(), RetryConfig::disabled());
    let tag = unique("throttle-ec2");

    let result = create_tagged_vpc(&via, &tag).await;
    let on_moto = count_and_delete_vpcs(&ec2(&moto, RetryConfig::disabled()), &tag).await;

    let err = result.expect_err("a throttled call fails");
    assert_eq!(err.code(), Some("RequestLimitExceeded"), "{err:?}");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(503));
    assert!(
        aws_runtime::retries::classifiers::THROTTLING_ERRORS.contains(&"RequestLimitExceeded"),
        "the SDK's retry classifier treats the code as throttling"
    );
    assert_eq!(on_moto, 0, "a throttled create must not reach moto");
    let stats = proxy.stats();
    assert_eq!(
        (stats.total.throttled, stats.total.forwarded),
        (1, 0),
        "{stats:?}"
    );
}

#[tokio::test]
async fn throttled_iam_and_autoscaling_calls_are_throttling() {
    let moto = require_moto!();
    let config = FaultConfig {
        throttle_rate: 1.0,
        ..FaultConfig::transparent()
    };
    let proxy = FaultProxy::start(&moto, config).await.unwrap();

    let iam_err = iam(&proxy.url(), RetryConfig::disabled())
        .list_roles()
        .send()
        .await
        .expect_err("throttled");
    let asg_err = autoscaling(&proxy.url(), RetryConfig::disabled())
        .describe_auto_scaling_groups()
        .send()
        .await
        .expect_err("throttled");

    for (service, code, status) in [
        (
            "iam",
            iam_err.code(),
            iam_err.raw_response().map(|r| r.status()),
        ),
        (
            "autoscaling",
            asg_err.code(),
            asg_err.raw_response().map(|r| r.status()),
        ),
    ] {
        assert_eq!(code, Some("Throttling"), "{service}");
        assert_eq!(status.map(|s| s.as_u16()), Some(400), "{service}");
    }
    assert!(aws_runtime::retries::classifiers::THROTTLING_ERRORS.contains(&"Throttling"));
    let services: Vec<_> = proxy
        .events()
        .into_iter()
        .map(|e| (e.service, e.action))
        .collect();
    assert_eq!(
        services,
        vec![
            (Some("iam".to_owned()), Some("ListRoles".to_owned())),
            (
                Some("autoscaling".to_owned()),
                Some("DescribeAutoScalingGroups".to_owned())
            ),
        ]
    );
    assert_eq!(proxy.stats().total.forwarded, 0);
}

#[tokio::test]
async fn server_errors_are_500_or_503_and_not_forwarded() {
    let moto = require_moto!();
    let config = FaultConfig {
        seed: 5,
        error_5xx_rate: 1.0,
        ..FaultConfig::transparent()
    };
    let proxy = FaultProxy::start(&moto, config).await.unwrap();
    let via = ec2(&proxy.url(), RetryConfig::disabled());
    let tag = unique("5xx");

    let mut outcomes = Vec::new();
    for _ in 0..8 {
        outcomes.push(outcome(&create_tagged_vpc(&via, &tag).await));
    }
    let on_moto = count_and_delete_vpcs(&ec2(&moto, RetryConfig::disabled()), &tag).await;

    assert_eq!(on_moto, 0, "no 5xx'd create may reach moto");
    for o in &outcomes {
        let ok = matches!(o, Outcome::Service { status: 500, code: Some(c) } if c == "InternalError")
            || matches!(o, Outcome::Service { status: 503, code: Some(c) } if c == "ServiceUnavailable");
        assert!(ok, "{o:?}");
    }
    let statuses: std::collections::BTreeSet<_> = proxy
        .events()
        .iter()
        .map(|e| match e.fault {
            Fault::ServerError(s) => s,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        statuses.len(),
        2,
        "both 500 and 503 within 8 draws of seed 5"
    );
    let stats = proxy.stats();
    assert_eq!(
        (stats.total.server_errors, stats.total.forwarded),
        (8, 0),
        "{stats:?}"
    );
}

#[tokio::test]
async fn reset_before_is_a_dispatch_failure_and_has_no_effect() {
    let moto = require_moto!();
    let config = FaultConfig {
        reset_before_rate: 1.0,
        ..FaultConfig::transparent()
    };
    let proxy = FaultProxy::start(&moto, config).await.unwrap();
    let via = ec2(&proxy.url(), RetryConfig::disabled());
    let tag = unique("reset-before");

    let result = create_tagged_vpc(&via, &tag).await;
    let on_moto = count_and_delete_vpcs(&ec2(&moto, RetryConfig::disabled()), &tag).await;

    assert_eq!(outcome(&result), Outcome::Dispatch { io: true });
    assert_eq!(on_moto, 0, "a reset-before create must not reach moto");
    let stats = proxy.stats();
    assert_eq!(
        (stats.total.resets_before, stats.total.forwarded),
        (1, 0),
        "{stats:?}"
    );
}

#[tokio::test]
async fn lost_response_is_a_dispatch_failure_but_the_create_happened() {
    let moto = require_moto!();
    let config = FaultConfig {
        lost_response_rate: 1.0,
        ..FaultConfig::transparent()
    };
    let proxy = FaultProxy::start(&moto, config).await.unwrap();
    let via = ec2(&proxy.url(), RetryConfig::disabled());
    let tag = unique("lost-response");

    let result = create_tagged_vpc(&via, &tag).await;
    let on_moto = count_and_delete_vpcs(&ec2(&moto, RetryConfig::disabled()), &tag).await;

    assert_eq!(outcome(&result), Outcome::Dispatch { io: true });
    assert_eq!(
        on_moto, 1,
        "the create reached moto although the client saw a failure"
    );
    let stats = proxy.stats();
    assert_eq!(
        (
            stats.total.lost_responses,
            stats.total.forwarded,
            stats.total.delivered
        ),
        (1, 1, 0),
        "{stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_applies_per_call_and_overlaps_under_concurrency() {
    let moto = require_moto!();
    let latency = Duration::from_millis(50);
    let proxy = FaultProxy::start(&moto, FaultConfig::with_latency(latency))
        .await
        .unwrap();
    let via = ec2(&proxy.url(), RetryConfig::disabled());

    let start = Instant::now();
    for _ in 0..10 {
        assert_eq!(describe_azs(&via).await, Outcome::Ok);
    }
    let sequential = start.elapsed();

    let start = Instant::now();
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let via = via.clone();
            tokio::spawn(async move { describe_azs(&via).await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), Outcome::Ok);
    }
    let concurrent = start.elapsed();

    assert!(
        sequential >= latency * 10,
        "10 sequential calls took {sequential:?}"
    );
    // Sequential ≈ 10 × (50 ms + moto); concurrent ≈ 50 ms + 10 × moto's serial time.
    assert!(
        concurrent * 2 < sequential,
        "10 concurrent calls took {concurrent:?}, sequential {sequential:?}: the delays don't overlap"
    );
    let events = proxy.events();
    assert_eq!(events.len(), 20);
    assert!(events.iter().all(|e| e.delay == latency), "{events:?}");
    eprintln!("latency 50 ms: 10 sequential {sequential:?}, 10 concurrent {concurrent:?}");
}

#[tokio::test]
async fn jitter_and_spikes_delay_each_call_as_dealt() {
    let moto = require_moto!();
    let config = FaultConfig {
        seed: 11,
        latency: Duration::from_millis(10),
        latency_jitter: Duration::from_millis(20),
        spike_rate: 0.3,
        spike: Duration::from_millis(150),
        ..FaultConfig::transparent()
    };
    let proxy = FaultProxy::start(&moto, config).await.unwrap();
    let via = ec2(&proxy.url(), RetryConfig::disabled());

    let mut elapsed = Vec::new();
    for _ in 0..20 {
        let start = Instant::now();
        assert_eq!(describe_azs(&via).await, Outcome::Ok);
        elapsed.push(start.elapsed());
    }

    let events = proxy.events();
    assert_eq!(events.len(), 20);
    let spiked = events.iter().filter(|e| e.spiked).count();
    assert!(
        (1..20).contains(&spiked),
        "{spiked} spikes in 20 at rate 0.3"
    );
    assert_eq!(proxy.stats().total.spikes, spiked as u64);
    let mut jitters = std::collections::BTreeSet::new();
    for (event, took) in events.iter().zip(&elapsed) {
        let base = if event.spiked {
            Duration::from_millis(160)
        } else {
            Duration::from_millis(10)
        };
        assert!(
            event.delay >= base && event.delay < base + Duration::from_millis(20),
            "{event:?}"
        );
        assert!(*took >= event.delay, "call took {took:?} < dealt {event:?}");
        jitters.insert(event.delay - base);
    }
    assert!(jitters.len() > 10, "jitter varies: {jitters:?}");
}

#[tokio::test]
async fn same_seed_deals_the_same_faults() {
    let moto = require_moto!();
    let config = |seed| FaultConfig {
        spike_rate: 0.2,
        spike: Duration::from_millis(1),
        latency_jitter: Duration::from_millis(1),
        ..FaultConfig::chaos(seed, 0.6)
    };

    async fn run(moto: &str, config: FaultConfig) -> (Vec<Outcome>, Vec<proxy::Event>) {
        let proxy = FaultProxy::start(moto, config).await.unwrap();
        let via = ec2(&proxy.url(), RetryConfig::disabled());
        let mut outcomes = Vec::new();
        for _ in 0..40 {
            outcomes.push(describe_azs(&via).await);
        }
        (outcomes, proxy.events())
    }

    let (outcomes_a, events_a) = run(&moto, config(42)).await;
    let (outcomes_b, events_b) = run(&moto, config(42)).await;
    let (outcomes_c, events_c) = run(&moto, config(43)).await;

    assert_eq!(events_a, events_b, "same seed, same decisions");
    assert_eq!(outcomes_a, outcomes_b, "same seed, same observed outcomes");
    assert_ne!(
        events_a.iter().map(|e| e.fault).collect::<Vec<_>>(),
        events_c.iter().map(|e| e.fault).collect::<Vec<_>>(),
        "another seed, other faults"
    );
    assert_ne!(outcomes_a, outcomes_c);
    for kind in [
        Fault::None,
        Fault::Throttle,
        Fault::ResetBefore,
        Fault::LostResponse,
    ] {
        assert!(
            events_a.iter().any(|e| e.fault == kind),
            "{kind:?} dealt in 40 requests"
        );
    }
    assert!(events_a
        .iter()
        .any(|e| matches!(e.fault, Fault::ServerError(_))));
    // What the client observed matches what was dealt, request by request.
    for (event, outcome) in events_a.iter().zip(&outcomes_a) {
        let expected = match event.fault {
            Fault::None => Outcome::Ok,
            Fault::Throttle => Outcome::Service {
                status: 503,
                code: Some("RequestLimitExceeded".into()),
            },
            Fault::ServerError(500) => Outcome::Service {
                status: 500,
                code: Some("InternalError".into()),
            },
            Fault::ServerError(_) => Outcome::Service {
                status: 503,
                code: Some("ServiceUnavailable".into()),
            },
            Fault::ResetBefore | Fault::LostResponse => Outcome::Dispatch { io: true },
        };
        assert_eq!(*outcome, expected, "{event:?}");
    }
}

#[tokio::test]
async fn only_actions_limits_faults_to_those_actions() {
    let moto = require_moto!();
    let config = FaultConfig {
        throttle_rate: 1.0,
        only_actions: Some(vec!["CreateVpc".to_owned()]),
        ..FaultConfig::transparent()
    };
    let proxy = FaultProxy::start(&moto, config).await.unwrap();
    let via = ec2(&proxy.url(), RetryConfig::disabled());
    let tag = unique("only-actions");

    let describe = describe_azs(&via).await;
    let create = outcome(&create_tagged_vpc(&via, &tag).await);
    let on_moto = count_and_delete_vpcs(&ec2(&moto, RetryConfig::disabled()), &tag).await;

    assert_eq!(describe, Outcome::Ok);
    assert_eq!(
        create,
        Outcome::Service {
            status: 503,
            code: Some("RequestLimitExceeded".into())
        }
    );
    assert_eq!(on_moto, 0);
    let stats = proxy.stats();
    assert_eq!(stats.action("CreateVpc").throttled, 1, "{stats:?}");
    assert_eq!(stats.action("DescribeAvailabilityZones").faults(), 0);
    assert_eq!(stats.action("DescribeAvailabilityZones").delivered, 1);
}

#[tokio::test]
async fn set_config_turns_faults_off_at_runtime() {
    let moto = require_moto!();
    let config = FaultConfig {
        throttle_rate: 1.0,
        ..FaultConfig::transparent()
    };
    let proxy = FaultProxy::start(&moto, config).await.unwrap();
    let via = ec2(&proxy.url(), RetryConfig::disabled());

    let before = describe_azs(&via).await;
    proxy.set_config(FaultConfig::transparent());
    let after = describe_azs(&via).await;

    assert!(
        matches!(before, Outcome::Service { status: 503, .. }),
        "{before:?}"
    );
    assert_eq!(after, Outcome::Ok);
    assert_eq!(proxy.config(), FaultConfig::transparent());
    let events = proxy.events();
    assert_eq!(events.len(), 1, "the log restarts with the new config");
    assert_eq!((events[0].seq, events[0].fault), (0, Fault::None));
    let stats = proxy.stats();
    assert_eq!(
        (
            stats.total.requests,
            stats.total.throttled,
            stats.total.delivered
        ),
        (2, 1, 1),
        "counters accumulate across configs: {stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_32_concurrent_calls_and_reuses_keep_alive_connections() {
    let moto = require_moto!();
    let proxy = FaultProxy::start(&moto, FaultConfig::with_latency(Duration::from_millis(20)))
        .await
        .unwrap();
    let via = ec2(&proxy.url(), RetryConfig::disabled());

    let calls: Vec<_> = (0..32)
        .map(|_| {
            let via = via.clone();
            tokio::spawn(async move { describe_azs(&via).await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), Outcome::Ok);
    }
    let after_burst = proxy.stats();
    for _ in 0..10 {
        assert_eq!(describe_azs(&via).await, Outcome::Ok);
    }
    let after_sequential = proxy.stats();

    assert_eq!(after_burst.total.delivered, 32, "{after_burst:?}");
    assert!(
        (2..=32).contains(&after_burst.connections),
        "the burst used parallel connections: {after_burst:?}"
    );
    assert_eq!(after_sequential.total.delivered, 42);
    assert_eq!(
        after_sequential.connections, after_burst.connections,
        "sequential calls reuse pooled keep-alive connections"
    );
}

/// What the SDK's own standard retry (on by default, 3 attempts) does with each fault: every kind
/// is retried, including a lost response to a create — which then runs the create again.
#[tokio::test]
async fn sdk_standard_retry_retries_every_fault_kind() {
    let moto = require_moto!();
    let direct = ec2(&moto, RetryConfig::disabled());
    let off = FaultConfig::transparent;
    let kinds = [
        (
            "throttle",
            FaultConfig {
                throttle_rate: 1.0,
                ..off()
            },
        ),
        (
            "5xx",
            FaultConfig {
                error_5xx_rate: 1.0,
                ..off()
            },
        ),
        (
            "reset-before",
            FaultConfig {
                reset_before_rate: 1.0,
                ..off()
            },
        ),
        (
            "lost-response",
            FaultConfig {
                lost_response_rate: 1.0,
                ..off()
            },
        ),
    ];
    for (kind, config) in kinds {
        let proxy = FaultProxy::start(&moto, config).await.unwrap();
        let via = ec2(&proxy.url(), standard_retry());
        let tag = unique(kind);

        let result = create_tagged_vpc(&via, &tag).await;
        let on_moto = count_and_delete_vpcs(&direct, &tag).await;

        assert!(result.is_err(), "{kind}: every attempt is faulted");
        assert_eq!(
            proxy.stats().total.requests,
            3,
            "{kind}: the SDK made 3 attempts"
        );
        let expected_on_moto = if kind == "lost-response" { 3 } else { 0 };
        assert_eq!(
            on_moto, expected_on_moto,
            "{kind}: creates that reached moto (a retried lost CreateVpc duplicates the VPC)"
        );
    }

    // Throttling on an awsQuery service is retried too.
    let config = FaultConfig {
        throttle_rate: 1.0,
        ..FaultConfig::transparent()
    };
    let proxy = FaultProxy::start(&moto, config).await.unwrap();
    let result = iam(&proxy.url(), standard_retry())
        .list_roles()
        .send()
        .await;
    assert_eq!(result.expect_err("throttled").code(), Some("Throttling"));
    assert_eq!(proxy.stats().total.requests, 3);
}

// ---------------------------------------------------------------------------------------------
// Tests that need no moto

/// A port nothing listens on: bind, note it, close.
fn dead_upstream() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

async fn raw_post(
    client: &HttpClient<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    url: &str,
    body: &'static str,
) -> (u16, String) {
    let request = http::Request::post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap();
    let response = client.request(request).await.expect("proxy answers");
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn unreachable_upstream_is_a_502_not_a_hang() {
    let proxy = FaultProxy::start(&dead_upstream(), FaultConfig::transparent())
        .await
        .unwrap();
    let via = ec2(&proxy.url(), RetryConfig::disabled());

    let result = tokio::time::timeout(Duration::from_secs(10), describe_azs(&via))
        .await
        .expect("answered in time");

    assert!(
        matches!(result, Outcome::Service { status: 502, .. }),
        "{result:?}"
    );
    let stats = proxy.stats();
    assert_eq!(
        (stats.total.forwarded, stats.total.upstream_errors),
        (1, 1),
        "{stats:?}"
    );
}

#[tokio::test]
async fn rates_are_respected_and_faulted_calls_never_reach_upstream() {
    // Throttles and 5xx never forward, so a dead upstream proves nothing was forwarded.
    let config = FaultConfig {
        seed: 3,
        throttle_rate: 0.3,
        error_5xx_rate: 0.7,
        ..FaultConfig::transparent()
    };
    let proxy = FaultProxy::start(&dead_upstream(), config).await.unwrap();
    let client = HttpClient::builder(TokioExecutor::new()).build_http();

    let mut statuses = std::collections::BTreeMap::<u16, u32>::new();
    for _ in 0..400 {
        let (status, body) = raw_post(
            &client,
            &proxy.url(),
            "Action=DescribeVpcs&Version=2016-11-15",
        )
        .await;
        assert!(
            body.starts_with("<?xml") && body.contains("<Response><Errors><Error><Code>"),
            "EC2 error shape without a SigV4 header (service from Version): {body}"
        );
        *statuses.entry(status).or_default() += 1;
    }

    let stats = proxy.stats();
    assert_eq!(stats.total.forwarded, 0, "{stats:?}");
    assert_eq!(stats.total.requests, 400);
    let throttled = stats.total.throttled;
    assert!(
        (90..=150).contains(&throttled),
        "{throttled} of 400 at rate 0.3"
    );
    assert_eq!(throttled + stats.total.server_errors, 400);
    assert!(
        statuses.keys().all(|s| [500, 503].contains(s)),
        "only 500 and 503 (EC2 throttles are 503): {statuses:?}"
    );
    let internal = u64::from(statuses.get(&500).copied().unwrap_or(0));
    let errors = stats.total.server_errors;
    assert!(
        (errors * 3 / 10..=errors * 7 / 10).contains(&internal),
        "about half of the {errors} server errors are 500: {statuses:?}"
    );
    assert_eq!(stats.action("DescribeVpcs").requests, 400);
}

#[tokio::test]
async fn requests_without_an_action_are_never_faulted() {
    // /moto-api/ and other non-AWS calls must pass even at fault rate 1.
    let config = FaultConfig {
        reset_before_rate: 1.0,
        ..FaultConfig::transparent()
    };
    let proxy = FaultProxy::start(&dead_upstream(), config).await.unwrap();
    let client = HttpClient::builder(TokioExecutor::new()).build_http();

    let (status, _) = raw_post(&client, &format!("{}/moto-api/", proxy.url()), "").await;

    assert_eq!(status, 502, "forwarded (to the dead upstream), not reset");
    let events = proxy.events();
    assert_eq!(
        (events[0].action.as_deref(), events[0].fault),
        (None, Fault::None)
    );
}

#[tokio::test]
#[should_panic(expected = "sum to")]
async fn fault_rates_above_one_in_total_are_rejected() {
    let config = FaultConfig {
        throttle_rate: 0.6,
        lost_response_rate: 0.6,
        ..FaultConfig::transparent()
    };
    let _ = FaultProxy::start(&dead_upstream(), config).await;
}

// ---------------------------------------------------------------------------------------------
// Measurement (not a pass/fail timing test): run with
// `cargo test -p infra --test proxy -- --ignored --nocapture proxy_overhead`

#[tokio::test]
#[ignore = "measurement; prints figures"]
async fn proxy_overhead() {
    let moto = require_moto!();
    let proxy = FaultProxy::start(&moto, FaultConfig::transparent())
        .await
        .unwrap();
    let direct = ec2(&moto, RetryConfig::disabled());
    let via = ec2(&proxy.url(), RetryConfig::disabled());
    const N: u32 = 100;

    // Warm up both connection pools and moto's code paths.
    for client in [&direct, &via] {
        for _ in 0..5 {
            assert_eq!(outcome(&client.describe_vpcs().send().await), Outcome::Ok);
        }
    }
    // Interleave direct and proxied calls so that load from other processes hits both alike, and
    // report medians, which a few slow outliers don't move.
    let (mut direct_times, mut via_times) = (Vec::new(), Vec::new());
    for i in 0..N {
        let order = if i % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for is_direct in order {
            let (client, times) = if is_direct {
                (&direct, &mut direct_times)
            } else {
                (&via, &mut via_times)
            };
            let start = Instant::now();
            assert_eq!(outcome(&client.describe_vpcs().send().await), Outcome::Ok);
            times.push(start.elapsed());
        }
    }
    let median = |times: &mut Vec<Duration>| {
        times.sort();
        times[times.len() / 2]
    };
    let total = |times: &[Duration]| times.iter().sum::<Duration>();
    println!(
        "DescribeVpcs x{N} each, interleaved: direct median {:?} (total {:?}), via proxy median {:?} \
         (total {:?}), median overhead {:?}/call",
        median(&mut direct_times),
        total(&direct_times),
        median(&mut via_times),
        total(&via_times),
        median(&mut via_times).saturating_sub(median(&mut direct_times)),
    );
    assert_eq!(proxy.stats().total.delivered, 5 + u64::from(N));
}

// ---------------------------------------------------------------------------------------------
// The JSON protocols (SSM, EventBridge) and REST-JSON (Lambda, API Gateway v2)

#[test]
fn rest_operations_are_named_from_method_and_path() {
    let op = proxy::rest_operation;
    assert_eq!(
        op("lambda", "POST", "/2015-03-31/functions"),
        Some("CreateFunction")
    );
    assert_eq!(
        op("lambda", "POST", "/2015-03-31/functions/"),
        Some("CreateFunction")
    );
    assert_eq!(
        op("lambda", "PUT", "/2015-03-31/functions/ingest/code"),
        Some("UpdateFunctionCode")
    );
    assert_eq!(
        op(
            "lambda",
            "DELETE",
            "/2015-03-31/functions/ingest/policy/sid-1"
        ),
        Some("RemovePermission")
    );
    assert_eq!(
        op(
            "lambda",
            "GET",
            "/2017-03-31/tags/arn%3Aaws%3Alambda%3Aus-east-1%3A1%3Afunction%3Ax"
        ),
        Some("ListTags")
    );
    assert_eq!(
        op("apigateway", "DELETE", "/v2/apis/a1b2/routes/r9"),
        Some("DeleteRoute")
    );
    assert_eq!(op("apigateway", "POST", "/v2/apis"), Some("CreateApi"));
    // the method, the service and the number of segments all matter
    assert_eq!(op("lambda", "PATCH", "/2015-03-31/functions"), None);
    assert_eq!(op("apigateway", "POST", "/2015-03-31/functions"), None);
    assert_eq!(op("lambda", "GET", "/2015-03-31/functions//code"), None);
    assert_eq!(op("lambda", "GET", "/moto-api/reset"), None);
}

#[tokio::test]
async fn ssm_faults_speak_the_json_protocol_and_are_not_forwarded() {
    let moto = require_moto!();
    let throttled = FaultProxy::start(
        &moto,
        FaultConfig {
            throttle_rate: 1.0,
            ..FaultConfig::transparent()
        },
    )
    .await
    .unwrap();
    let err = ssm(&throttled.url(), RetryConfig::disabled())
        .get_parameter()
        .name("/proxy-test/none")
        .send()
        .await
        .expect_err("throttled");
    assert_eq!(err.code(), Some("ThrottlingException"), "{err:?}");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(400));
    assert!(aws_runtime::retries::classifiers::THROTTLING_ERRORS.contains(&"ThrottlingException"));
    let events = throttled.events();
    assert_eq!(
        (events[0].service.as_deref(), events[0].action.as_deref()),
        (Some("ssm"), Some("GetParameter"))
    );
    assert_eq!(throttled.stats().total.forwarded, 0);

    let failing = FaultProxy::start(
        &moto,
        FaultConfig {
            error_5xx_rate: 1.0,
            seed: 3,
            ..FaultConfig::transparent()
        },
    )
    .await
    .unwrap();
    let client = ssm(&failing.url(), RetryConfig::disabled());
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..8 {
        let err = client
            .get_parameter()
            .name("/proxy-test/none")
            .send()
            .await
            .expect_err("5xx");
        let status = err.raw_response().map(|r| r.status().as_u16());
        seen.insert((err.code().map(str::to_owned), status));
    }
    let expected: std::collections::BTreeSet<_> = [
        (Some("InternalError".to_owned()), Some(500)),
        (Some("ServiceUnavailable".to_owned()), Some(503)),
    ]
    .into_iter()
    .collect();
    assert_eq!(seen, expected, "both 5xx kinds, with their codes parsed");
    assert_eq!(failing.stats().total.forwarded, 0);
}

#[tokio::test]
async fn a_lost_put_parameter_took_effect_and_its_retry_finds_it_exists() {
    let moto = require_moto!();
    let proxy = FaultProxy::start(
        &moto,
        FaultConfig {
            lost_response_rate: 1.0,
            ..FaultConfig::transparent()
        },
    )
    .await
    .unwrap();
    let name = format!("/proxy-test/{}", unique("lost"));
    let put = |client: aws_sdk_ssm::Client| {
        let name = name.clone();
        async move {
            client
                .put_parameter()
                .name(name)
                .value("me")
                .r#type(aws_sdk_ssm::types::ParameterType::String)
                .overwrite(false)
                .send()
                .await
        }
    };
    let lost = put(ssm(&proxy.url(), RetryConfig::disabled())).await;
    assert!(
        matches!(lost, Err(SdkError::DispatchFailure(_))),
        "{lost:?}"
    );
    proxy.set_config(FaultConfig::transparent());
    let again = put(ssm(&proxy.url(), RetryConfig::disabled()))
        .await
        .expect_err("exists");
    assert_eq!(again.code(), Some("ParameterAlreadyExists"));
    let direct = ssm(&moto, RetryConfig::disabled());
    let value = direct
        .get_parameter()
        .name(&name)
        .send()
        .await
        .expect("GetParameter")
        .parameter()
        .and_then(|p| p.value().map(str::to_owned));
    direct.delete_parameter().name(&name).send().await.unwrap();
    assert_eq!(value.as_deref(), Some("me"));
    assert_eq!(proxy.stats().action("PutParameter").lost_responses, 1);
}

#[tokio::test]
async fn lambda_calls_are_named_from_their_path_and_throttled_with_429() {
    let moto = require_moto!();
    let proxy = FaultProxy::start(
        &moto,
        FaultConfig {
            throttle_rate: 1.0,
            only_actions: Some(vec!["ListFunctions".into()]),
            ..FaultConfig::transparent()
        },
    )
    .await
    .unwrap();
    let client = lambda(&proxy.url(), RetryConfig::disabled());
    let err = client.list_functions().send().await.expect_err("throttled");
    assert_eq!(err.code(), Some("TooManyRequestsException"), "{err:?}");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(429));
    // not in `only_actions`: forwarded (moto answers: no such function)
    let missing = client
        .get_function()
        .function_name(unique("none"))
        .send()
        .await
        .expect_err("not found");
    assert_eq!(missing.code(), Some("ResourceNotFoundException"));
    let events: Vec<_> = proxy
        .events()
        .into_iter()
        .map(|e| (e.service, e.action, e.fault))
        .collect();
    assert_eq!(
        events,
        vec![
            (
                Some("lambda".to_owned()),
                Some("ListFunctions".to_owned()),
                Fault::Throttle
            ),
            (
                Some("lambda".to_owned()),
                Some("GetFunction".to_owned()),
                Fault::None
            ),
        ]
    );
}
