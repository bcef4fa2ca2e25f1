//! Live providers for `--target live`.

use std::sync::Arc;

use infra_core::provider::Provider;

/// Connects the live provider `name` (`aws` or `swarm`).
pub(crate) async fn provider(name: &str) -> Result<Arc<dyn Provider>, String> {
    Err(format!(
        "--target live: the `{name}` provider is not part of this build yet; use --target sandbox"
    ))
}
