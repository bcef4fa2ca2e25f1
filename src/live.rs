//! Live providers for `--target live`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use infra_core::provider::Provider;

/// Connects the live provider `name` (`aws` or `swarm`). For Swarm, retries for up to `wait`
/// while the endpoint isn't reachable or not yet a swarm manager (a phased deploy waits for the
/// managers the AWS phase just made).
pub(crate) async fn provider(name: &str, wait: Duration) -> Result<Arc<dyn Provider>, String> {
    match name {
        // aws-config's default chain: credentials, region, and AWS_ENDPOINT_URL (e.g. moto).
        "aws" => infra_aws::AwsProvider::from_env()
            .await
            .map(|p| Arc::new(p) as Arc<dyn Provider>)
            .map_err(|e| format!("--target live: {e}")),
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
                    Err(e) => return Err(format!("--target live: {e}")),
                }
            }
        }
        _ => Err(format!(
            "--target live: there is no `{name}` provider (known: aws, swarm)"
        )),
    }
}
