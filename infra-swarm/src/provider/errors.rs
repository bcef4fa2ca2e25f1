//! Docker errors as the reconciler needs them: not found, worth retrying, or final.

use bollard::errors::Error as DockerError;
use infra_core::dsl::Address;
use infra_core::provider::ProviderError;

/// What Swarm says when an update carries a stale `Version.Index`.
const OUT_OF_SEQUENCE: &str = "out of sequence";

/// A Docker error as the reconciler needs it: not found, worth retrying, or final. `what` says
/// what was being done ("creating service demo_app").
pub(crate) fn api_error(what: &str, e: DockerError) -> ProviderError {
    match e {
        DockerError::DockerResponseServerError {
            status_code: 404,
            message,
        } => ProviderError::not_found("NotFound", format!("{what}: {message}")),
        DockerError::DockerResponseServerError {
            status_code,
            message,
        } => {
            let transient = status_code == 503
                || [
                    "Unavailable",
                    "deadline exceeded",
                    "raft",
                    "leader",
                    OUT_OF_SEQUENCE,
                ]
                .iter()
                .any(|m| message.contains(m));
            let code = format!("Http{status_code}");
            let message = format!("{what}: {message}");
            if transient {
                ProviderError::retryable(code, message)
            } else {
                ProviderError::fatal(code, message)
            }
        }
        e @ (DockerError::RequestTimeoutError
        | DockerError::IOError { .. }
        | DockerError::HyperResponseError { .. }
        | DockerError::HyperLegacyError { .. }) => {
            ProviderError::retryable("Connection", format!("{what}: {e}"))
        }
        e => ProviderError::fatal("Docker", format!("{what}: {e}")),
    }
}

/// True for the error (from [`api_error`]) Swarm gives an update carrying a stale
/// `Version.Index`: another writer got in between the inspect and the update.
pub(crate) fn out_of_sequence(e: &ProviderError) -> bool {
    e.message.contains(OUT_OF_SEQUENCE)
}

/// True when Docker answered 404.
pub(crate) fn is_404(e: &DockerError) -> bool {
    matches!(
        e,
        DockerError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// True when Docker answered 409 (a name that is taken).
pub(crate) fn is_409(e: &DockerError) -> bool {
    matches!(
        e,
        DockerError::DockerResponseServerError {
            status_code: 409,
            ..
        }
    )
}

/// Turns Swarm's "in use" refusal into a message that says what to do.
pub(crate) fn in_use(address: &Address, e: ProviderError) -> ProviderError {
    if e.message.contains("in use") {
        ProviderError::fatal(
            "InUse",
            format!(
                "{address} is still used by a service outside the stack's plan ({}); detach it from that service first",
                e.message
            ),
        )
    } else {
        e
    }
}
