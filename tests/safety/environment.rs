//! A malformed environment: the deploy program (`--target live`) without credentials, without a
//! region, against an AWS endpoint that refuses connections or never answers, against a Docker
//! endpoint that doesn't exist, never answers, or is not a swarm manager. Each run must end
//! with exit 1 and one paragraph (one line) that says what to do, with no panic and no
//! backtrace although `RUST_BACKTRACE=1` is set, and in bounded time (measured and printed).
//!
//! Self-contained: the endpoints are local stand-ins (a tripwire that counts connections, a
//! silent listener, a fake Docker engine), so these tests never skip.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::support::{
    clean_env, example_binary, one_error_paragraph, say, show, FakeEngine, FakeNode, Silent,
    Tripwire,
};

/// Runs the deploy program with a clean environment plus `env`, returning its output and how
/// long it took.
fn deploy(args: &[&str], env: &[(&str, &str)], unset: &[&str]) -> (Output, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Command::new(example_binary());
    clean_env(&mut c, dir.path())
        .args(["--target", "live"])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    for (k, v) in env {
        c.env(k, v);
    }
    for k in unset {
        c.env_remove(k);
    }
    let started = Instant::now();
    let out = c.output().unwrap();
    (out, started.elapsed())
}

/// The bound for an error that must come at once (no retries, no waiting): the child's first
/// seconds go to checking the Lambda artifacts through cargo, which waits for cargo's lock
/// while other test binaries build (5 s was exceeded by 0.35 s in a loaded CI run); the
/// waiting cases (an endpoint that never answers) take 15 s and more.
const QUICK: u64 = 10;

/// The common checks, plus: the paragraph contains every `needle`, took less than `bound`.
fn expect_paragraph(
    what: &str,
    (o, took): (Output, Duration),
    needles: &[&str],
    bound: Duration,
) -> String {
    let line = one_error_paragraph(&o);
    for n in needles {
        assert!(line.contains(n), "{what}: `{n}` missing in:\n{}", show(&o));
    }
    assert!(
        took < bound,
        "{what}: took {took:?}, more than {bound:?}:\n{}",
        show(&o)
    );
    say(&format!(
        "malformed environment: {what}: exit 1 after {:.2} s: {line}",
        took.as_secs_f64()
    ));
    line
}

#[test]
fn no_credentials_says_which_to_set_without_contacting_the_endpoint() {
    let endpoint = Tripwire::start();
    let url = endpoint.url();
    expect_paragraph(
        "no credentials",
        deploy(
            &["--only", "aws", "plan"],
            &[("AWS_ENDPOINT_URL", &url)],
            &["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"],
        ),
        &[
            "there are no usable AWS credentials",
            "Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            "AWS_PROFILE",
            "nothing was read or changed",
            "Environment: the credential provider was not enabled",
        ],
        Duration::from_secs(QUICK),
    );
    assert_eq!(
        endpoint.hits(),
        0,
        "a request that can't be signed is never sent"
    );
}

#[test]
fn no_credentials_with_an_unanswering_instance_metadata_service_fails_fast() {
    // Off EC2, the chain's last resort is the instance metadata service; when nothing answers
    // there, the failure must still come in seconds.
    let imds = Silent::start();
    let endpoint = Tripwire::start();
    let (url, imds_url) = (endpoint.url(), imds.url());
    expect_paragraph(
        "no credentials, metadata service silent",
        deploy(
            &["--only", "aws", "plan"],
            &[
                ("AWS_ENDPOINT_URL", &url),
                ("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds_url),
            ],
            &[
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY",
                "AWS_EC2_METADATA_DISABLED",
            ],
        ),
        &["there are no usable AWS credentials", "Ec2InstanceMetadata"],
        Duration::from_secs(15),
    );
    assert_eq!(endpoint.hits(), 0);
}

#[test]
fn no_region_says_to_set_one() {
    expect_paragraph(
        "no region",
        deploy(
            &["--only", "aws", "plan"],
            &[("AWS_ENDPOINT_URL", "http://127.0.0.1:1")],
            &["AWS_REGION"],
        ),
        &["no AWS region is configured: set AWS_REGION"],
        Duration::from_secs(QUICK),
    );
}

#[test]
fn an_endpoint_that_refuses_connections_is_named_with_what_to_check() {
    expect_paragraph(
        "AWS endpoint refuses connections",
        deploy(
            &["plan"],
            &[("AWS_ENDPOINT_URL", "http://127.0.0.1:1")],
            &[],
        ),
        &[
            "cannot reach http://127.0.0.1:1 (AWS_ENDPOINT_URL)",
            "Connection refused",
            "unset it to use AWS itself",
            "nothing was changed",
        ],
        Duration::from_secs(10),
    );
}

#[test]
fn an_endpoint_that_never_answers_fails_within_the_read_timeout() {
    // Accepts connections, never answers: each read gives up after 10 s per attempt and 30 s in
    // all (it took 3 x 90 s before the bound).
    let silent = Silent::start();
    let url = silent.url();
    expect_paragraph(
        "AWS endpoint never answers",
        deploy(
            &["--only", "aws", "plan"],
            &[("AWS_ENDPOINT_URL", &url)],
            &[],
        ),
        &["accepted the connection but did not answer in time"],
        Duration::from_secs(45),
    );
}

#[test]
fn docker_not_reachable_says_to_start_it_or_set_docker_host() {
    expect_paragraph(
        "Docker socket missing",
        deploy(
            &["--only", "swarm", "plan"],
            &[("DOCKER_HOST", "unix:///nonexistent.sock")],
            &[],
        ),
        &[
            "cannot reach the Docker engine at unix:///nonexistent.sock",
            "point DOCKER_HOST at a Swarm manager",
            "nothing was read or changed",
        ],
        Duration::from_secs(QUICK),
    );
    expect_paragraph(
        "Docker endpoint refuses connections",
        deploy(
            &["--only", "swarm", "plan"],
            &[("DOCKER_HOST", "tcp://127.0.0.1:1")],
            &[],
        ),
        &[
            "cannot reach the Docker engine at tcp://127.0.0.1:1",
            "DOCKER_HOST",
        ],
        Duration::from_secs(QUICK),
    );
    expect_paragraph(
        "DOCKER_HOST with an unsupported scheme",
        deploy(
            &["--only", "swarm", "plan"],
            &[("DOCKER_HOST", "ssh://admin@manager")],
            &[],
        ),
        &["unsupported DOCKER_HOST scheme: use unix://, tcp:// or http://"],
        Duration::from_secs(QUICK),
    );
}

#[test]
fn a_docker_endpoint_that_never_answers_fails_within_the_handshake_timeout() {
    let silent = Silent::start();
    let host = silent.tcp();
    expect_paragraph(
        "Docker endpoint never answers",
        deploy(&["--only", "swarm", "plan"], &[("DOCKER_HOST", &host)], &[]),
        &["accepted the connection but did not answer within 10 s"],
        Duration::from_secs(20),
    );
}

#[test]
fn docker_not_in_swarm_mode_says_to_init_or_join() {
    let cases = [
        (
            FakeNode::NotInSwarm,
            "Docker not in swarm mode",
            "is not in swarm mode (state: inactive); run `docker swarm init` on it (or `docker swarm join` it to a swarm)",
        ),
        (
            FakeNode::Worker,
            "Docker is a swarm worker",
            "is a swarm worker; services can only be managed through a manager: point DOCKER_HOST at a manager node",
        ),
        (
            FakeNode::Old,
            "Docker engine too old",
            "speaks API 1.30; infra's Swarm provider needs 1.40 or newer",
        ),
    ];
    for (node, what, needle) in cases {
        let engine = FakeEngine::start(node);
        let host = engine.host();
        expect_paragraph(
            what,
            deploy(&["--only", "swarm", "plan"], &[("DOCKER_HOST", &host)], &[]),
            &[needle, "nothing was read or changed"],
            Duration::from_secs(QUICK),
        );
        // Only the handshake was asked: nothing was listed or changed.
        let requests = engine.requests();
        assert!(
            requests
                .iter()
                .all(|r| r.contains("/version") || r.contains("/info")),
            "{what}: {requests:?}"
        );
    }
}

#[test]
fn json_mode_reports_the_environment_error_as_json_too() {
    let (o, _) = deploy(
        &["--only", "swarm", "--json", "plan"],
        &[("DOCKER_HOST", "unix:///nonexistent.sock")],
        &[],
    );
    let line = one_error_paragraph(&o);
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("stdout is one JSON document ({e}):\n{}", show(&o)));
    assert_eq!(
        doc["error"].as_str(),
        line.strip_prefix("Error: "),
        "{}",
        show(&o)
    );
}
