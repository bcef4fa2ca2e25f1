//! The environment of the reliability tests: skips (`infra_test_support::skip_or_fail`), private
//! moto servers, the deploy program, SDK configurations pointed at moto or at a fault proxy, and
//! the production stack's AWS part.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use infra::aws::AwsProvider;
use infra::cli::{Context, Target};
use infra::core::engine::Engine;
use infra::core::reconcile::{ApplyOptions, RetryPolicy};
use infra::core::Stack;

pub(crate) use infra_test_support::{say, show, skip_or_fail, swarm_missing};

/// The shared moto of the test environment, if it answers.
pub(crate) fn shared_moto() -> Result<String, String> {
    infra_test_support::moto()
}

/// A moto server of one test's own (moto serves one request at a time: a heavy test on the
/// shared one would slow every other test down, and the untagged-object invariants need a server
/// nobody else writes to). Started by `.ci/setup-moto` on a free port, stopped on drop.
pub(crate) struct PrivateMoto {
    pub(crate) url: String,
    port: u16,
    pid: Option<u32>,
}

impl PrivateMoto {
    /// Starts one, or `Err` with why not.
    pub(crate) fn start() -> Result<PrivateMoto, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".ci/setup-moto");
        let out = Command::new(&script)
            .env("MOTO_PORT", port.to_string())
            .output()
            .map_err(|e| format!("{}: {e}", script.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{} failed: {}",
                script.display(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let pid = std::fs::read_to_string(format!("/tmp/moto-{port}.pid"))
            .ok()
            .and_then(|s| s.trim().parse().ok());
        Ok(PrivateMoto {
            url: format!("http://127.0.0.1:{port}"),
            port,
            pid,
        })
    }
}

impl Drop for PrivateMoto {
    fn drop(&mut self) {
        if let Some(pid) = self.pid {
            // The server this test started, by its id.
            let _ = Command::new("kill").arg(pid.to_string()).status();
            let _ = std::fs::remove_file(format!("/tmp/moto-{}.pid", self.port));
        }
    }
}

/// A private moto for `test`, or `None` after a skip (a failure when the run requires the
/// endpoints). The shared
/// moto's presence is what says the environment was prepared.
pub(crate) fn private_moto(test: &str) -> Option<PrivateMoto> {
    if let Err(why) = shared_moto() {
        skip_or_fail(test, &why);
        return None;
    }
    match PrivateMoto::start() {
        Ok(m) => Some(m),
        Err(why) => {
            skip_or_fail(test, &why);
            None
        }
    }
}

/// An SDK configuration for `endpoint` (moto, or a fault proxy in front of it) with test
/// credentials; reads retry quickly (moto answers at once), writes are the provider's business.
pub(crate) async fn sdk_config(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .test_credentials()
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(4)
                .with_initial_backoff(Duration::from_millis(20))
                .with_max_backoff(Duration::from_millis(500)),
        )
        .load()
        .await
}

/// An AWS provider on `endpoint`, waiting briefly (moto makes NAT gateways available at once).
pub(crate) async fn aws_provider(endpoint: &str) -> AwsProvider {
    AwsProvider::from_sdk_config(&sdk_config(endpoint).await)
        .expect("region is set")
        .with_wait_timeout(Duration::from_secs(60))
        .with_max_poll_interval(Duration::from_millis(200))
}

/// Quick retries (moto answers at once); the deploy program makes 8 attempts.
pub(crate) fn apply_options(max_attempts: u32) -> ApplyOptions {
    ApplyOptions {
        concurrency: 10,
        retry: RetryPolicy {
            max_attempts,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(400),
        },
        ..ApplyOptions::default()
    }
}

/// An engine with only an AWS provider on `endpoint` (the `--only aws` phase), retrying each
/// operation up to `max_attempts` times.
pub(crate) async fn aws_engine(endpoint: &str, max_attempts: u32) -> Engine {
    Engine::new()
        .with_provider(aws_provider(endpoint).await)
        .with_options(apply_options(max_attempts))
        .with_rules(infra::default_rules())
}

/// The production stack (`--env local`) under another name.
pub(crate) fn production(name: &str) -> Stack {
    let mut s = crate::example::stack(&Context {
        env: "local".into(),
        target: Target::Live,
        stack_name: Some(name.to_string()),
    });
    s.rename(name.to_string());
    s
}

/// A stack name unique to this process and `tag`: `<prefix><pid hex><tag>`, lowercase.
pub(crate) fn stack_name(prefix: &str, tag: impl std::fmt::Display) -> String {
    format!("{prefix}{:x}-{tag}", std::process::id())
}

/// Registers the image the stack's AMI lookup finds on the moto at `endpoint`
/// (`infra_test_support::register_node_image`).
pub(crate) async fn register_node_image(endpoint: &str) {
    infra_test_support::register_node_image(&aws_sdk_ec2::Client::new(&sdk_config(endpoint).await))
        .await;
}

/// The deploy program, `target/debug/examples/production` (cargo test builds examples).
pub(crate) fn example_binary() -> PathBuf {
    infra_test_support::example_binary("production")
}

/// A deploy-program command line with a clean environment for the run's target (`INFRA_*`
/// variables of the caller's shell removed; the audit log in `dir`).
pub(crate) fn deploy(dir: &std::path::Path, endpoint: &str, stack: &str) -> Command {
    let mut c = Command::new(example_binary());
    c.args(["--target", "live", "--stack", stack])
        .env("INFRA_AUDIT_LOG", dir.join("audit.jsonl"))
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("INFRA_LOG", "warn")
        .env_remove("INFRA_TARGET")
        .env_remove("INFRA_ENV")
        .env_remove("INFRA_STACK")
        .env_remove("INFRA_LOCK_TIMEOUT")
        .env_remove("INFRA_CONCURRENCY");
    c
}
