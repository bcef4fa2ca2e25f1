//! The apply lock's three primitives (see `infra_core::lock`, which builds the protocol on
//! them): the stack lock is a Swarm config. Config names are unique in the raft store, so
//! creating it is an atomic test-and-set that every manager agrees on. It carries no
//! `infra.stack` label, so no read ever reports it as a resource.

use std::collections::HashMap;

use base64::Engine as _;
use bollard::models::ConfigSpec;
use infra_core::lock::Created;
use infra_core::provider::{LockInfo, ProviderError};

use super::connect::Client;
use super::errors::{api_error, is_404, is_409};

/// The name of `stack`'s lock config.
fn lock_name(stack: &str) -> String {
    format!("infra-lock_{stack}")
}

/// Lock calls are retried on any server-side error too: the lock is small and its calls are
/// checked (the holder is read back), and giving up leaves a stack locked.
fn lock_error(e: ProviderError) -> ProviderError {
    if e.code.starts_with("Http5") {
        ProviderError::retryable(e.code, e.message)
    } else {
        e
    }
}

/// Creates the lock config holding `info`; `Exists` when someone holds it.
pub(crate) async fn create(
    client: &Client,
    stack: &str,
    info: &LockInfo,
) -> Result<Created, ProviderError> {
    let data = base64::engine::general_purpose::STANDARD
        .encode(serde_json::to_vec(info).unwrap_or_default());
    let spec = ConfigSpec {
        name: Some(lock_name(stack)),
        labels: Some(HashMap::from([(
            "infra.lock".to_string(),
            stack.to_string(),
        )])),
        data: Some(data),
        ..Default::default()
    };
    client.count();
    match client.docker.create_config(spec).await {
        Ok(_) => Ok(Created::Created),
        Err(e) if is_409(&e) => Ok(Created::Exists),
        Err(e) => Err(lock_error(api_error("taking the stack lock", e))),
    }
}

/// The lock's holder, if the lock is held.
pub(crate) async fn read(client: &Client, stack: &str) -> Result<Option<LockInfo>, ProviderError> {
    client.count();
    match client.docker.inspect_config(&lock_name(stack)).await {
        Ok(c) => {
            let data = c.spec.and_then(|s| s.data).unwrap_or_default();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(data)
                .unwrap_or_default();
            Ok(Some(serde_json::from_slice(&bytes).unwrap_or(LockInfo {
                holder: "unknown (unreadable lock)".into(),
                since_unix: 0,
                operation: "unknown".into(),
            })))
        }
        Err(e) if is_404(&e) => Ok(None),
        Err(e) => Err(lock_error(api_error("reading the stack lock", e))),
    }
}

/// Removes the lock config; removing a lock that is gone succeeds.
pub(crate) async fn delete(client: &Client, stack: &str) -> Result<(), ProviderError> {
    client.count();
    match client.docker.delete_config(&lock_name(stack)).await {
        Ok(()) => Ok(()),
        Err(e) if is_404(&e) => Ok(()),
        Err(e) => Err(lock_error(api_error("releasing the stack lock", e))),
    }
}
