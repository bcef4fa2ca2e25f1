//! Live providers for `--target live`.

use std::sync::Arc;

use infra_core::provider::Provider;

/// Connects the live provider `name` (`aws` or `swarm`).
pub(crate) async fn provider(name: &str) -> Result<Arc<dyn Provider>, String> {
    match name {
        // aws-config's default chain: credentials, region, and AWS_ENDPOINT_URL (e.g. moto).
        "aws" => infra_aws::AwsProvider::from_env()
            .await
            .map(|p| Arc::new(p) as Arc<dyn Provider>)
            .map_err(|e| format!("--target live: {e}")),
        // Docker from DOCKER_HOST or the local socket; swarm mode (a manager) is required.
        "swarm" => infra_swarm::SwarmProvider::connect()
            .await
            .map(|p| Arc::new(p) as Arc<dyn Provider>)
            .map_err(|e| format!("--target live: {e}")),
        _ => Err(format!(
            "--target live: the `{name}` provider is not part of this build yet; use --target sandbox"
        )),
    }
}
