//! Trying again and waiting, on `infra_core::retry`: the provider's only loops.
//!
//! * [`fresh_version`]: a read-modify-write of a versioned object (a service, a secret's or a
//!   config's labels, a node's labels) that meets "update out of sequence" (another writer got
//!   in between the inspect and the update) is inspected again and retried.
//! * [`poll`]: what Swarm does asynchronously (a service converging, a removed service's tasks
//!   stopping, a network freed by them) is polled under the connection's policy, with what it
//!   waits for published to the running operation (`infra_core::retry::waiting_for`) and the
//!   wait's own error when it runs out of time.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use infra_core::provider::ProviderError;
use infra_core::retry::{self, PollPolicy, Probe, RetryPolicy, WAIT_TIMEOUT};

use super::connect::Client;
use super::errors::out_of_sequence;

/// Attempts at an update that keeps meeting "update out of sequence".
const SEQUENCE_ATTEMPTS: u32 = 5;

/// Runs `attempt` (inspect, change, update with the version just read) until it succeeds or
/// fails otherwise than "out of sequence", at most [`SEQUENCE_ATTEMPTS`] times. The pauses
/// between attempts are short and jittered: the fresh version is what makes the next attempt
/// succeed, the jitter only keeps two writers from colliding again.
pub(crate) async fn fresh_version<T, F, Fut>(what: &str, mut attempt: F) -> Result<T, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ProviderError>>,
{
    let policy = RetryPolicy::new(
        SEQUENCE_ATTEMPTS,
        Duration::from_millis(10),
        Duration::from_millis(100),
    );
    retry::run(
        &policy,
        |_| attempt(),
        out_of_sequence,
        |n, _, _| {
            tracing::info!(%what, attempt = n, "update out of sequence; re-inspecting");
        },
    )
    .await
    .0
}

/// One look at something Swarm does asynchronously.
pub(crate) enum Look<T> {
    /// Done, with this value.
    Done(T),
    /// Not yet: `status` says what is seen now (for heartbeats), `timeout` is the error to
    /// fail with if the wait ends here.
    Waiting {
        status: String,
        timeout: ProviderError,
    },
}

impl Client {
    /// The policy of every wait: pauses of `poll_interval`, doubling up to three times that,
    /// until `converge_timeout`.
    fn poll_policy(&self) -> PollPolicy {
        PollPolicy::new(
            self.converge_timeout,
            self.poll_interval,
            self.poll_interval * 3,
        )
    }
}

/// Polls `look` under the client's policy until it is done or fails. While it waits, the
/// running operation waits for `what: <status>`; when time runs out, the wait fails with the
/// error the last look named.
pub(crate) async fn poll<T, F, Fut>(
    client: &Client,
    what: &str,
    mut look: F,
) -> Result<T, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Look<T>, ProviderError>>,
{
    let last: Mutex<Option<ProviderError>> = Mutex::new(None);
    let r = retry::poll(what, &client.poll_policy(), || {
        let seen = look();
        let last = &last;
        async move {
            Ok(match seen.await? {
                Look::Done(v) => Probe::Done(v),
                Look::Waiting { status, timeout } => {
                    *last.lock().unwrap_or_else(|e| e.into_inner()) = Some(timeout);
                    Probe::Waiting(status)
                }
            })
        }
    })
    .await;
    match r {
        Err(e) if e.code == WAIT_TIMEOUT => Err(last
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .unwrap_or(e)),
        r => r,
    }
}
