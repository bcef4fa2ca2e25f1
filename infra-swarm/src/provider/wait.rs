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
    pub(crate) fn poll_policy(&self) -> PollPolicy {
        PollPolicy::new(
            self.converge_timeout,
            self.poll_interval,
            self.poll_interval * 3,
        )
    }
}

/// Polls `look` under `policy` until it is done or fails. While it waits, the
/// running operation waits for `what: <status>`; when time runs out, the wait fails with the
/// error the last look named.
pub(crate) async fn poll<T, F, Fut>(
    policy: &PollPolicy,
    what: &str,
    mut look: F,
) -> Result<T, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Look<T>, ProviderError>>,
{
    let last: Mutex<Option<ProviderError>> = Mutex::new(None);
    let r = retry::poll(what, policy, || {
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use infra_core::retry::WaitStatus;

    use super::*;

    #[tokio::test]
    async fn an_update_out_of_sequence_is_tried_again_and_nothing_else_is() {
        let calls = AtomicU32::new(0);
        let stale = || {
            ProviderError::retryable(
                "Http500",
                "updating service x: rpc error: update out of sequence",
            )
        };
        let r = fresh_version("service x", || {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                if n < 3 {
                    Err(stale())
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(r.unwrap(), 3);

        calls.store(0, Ordering::SeqCst);
        let r: Result<(), _> = fresh_version("service x", || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(stale()) }
        })
        .await;
        assert!(out_of_sequence(&r.unwrap_err()));
        assert_eq!(calls.load(Ordering::SeqCst), SEQUENCE_ATTEMPTS);

        // A retryable error of another kind is the reconciler's to retry, not this loop's.
        calls.store(0, Ordering::SeqCst);
        let r: Result<(), _> = fresh_version("service x", || {
            calls.fetch_add(1, Ordering::SeqCst);
            async {
                Err(ProviderError::retryable(
                    "Http503",
                    "inspecting service x: no leader",
                ))
            }
        })
        .await;
        assert_eq!(r.unwrap_err().code, "Http503");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_wait_says_what_it_waits_for_and_times_out_with_its_own_error() {
        let policy = PollPolicy::new(
            Duration::from_millis(80),
            Duration::from_millis(5),
            Duration::from_millis(10),
        );
        let looks = AtomicU32::new(0);
        let status = WaitStatus::new();
        let seen = status.clone();
        let r: Result<(), _> = status
            .scope(poll(&policy, "service x to converge", || {
                let n = looks.fetch_add(1, Ordering::SeqCst);
                let seen = seen.clone();
                async move {
                    if n > 0 {
                        let expect = format!("service x to converge: {} of 2 running", n - 1);
                        assert_eq!(seen.get().as_deref(), Some(expect.as_str()));
                    }
                    Ok(Look::Waiting {
                        status: format!("{n} of 2 running"),
                        timeout: ProviderError::fatal(
                            "ConvergeTimeout",
                            format!("x: {n} of 2 running"),
                        ),
                    })
                }
            }))
            .await;
        let e = r.unwrap_err();
        let n = looks.load(Ordering::SeqCst);
        assert!(n > 2, "{n} looks");
        assert_eq!(e.code, "ConvergeTimeout");
        assert_eq!(e.message, format!("x: {} of 2 running", n - 1));
        assert_eq!(status.get(), None, "cleared when the wait ends");

        let v = poll(&policy, "y", || async { Ok(Look::Done(7)) }).await;
        assert_eq!(v.unwrap(), 7);
    }
}
