//! Retrying, backing off and polling: the one place in the workspace where a call is tried
//! again or a condition is waited for.
//!
//! * [`RetryPolicy`] and [`retry`] / [`run`]: a call that failed with a retryable
//!   [`ProviderError`] is tried again after an exponential backoff with full jitter, a bounded
//!   number of times, never sooner than the API's `Retry-After`. The reconciler retries provider
//!   operations with it; the lock protocol ([`crate::lock`]) and the providers' reads retry their
//!   calls with it.
//! * [`PollPolicy`] and [`poll`]: waiting for something the API does asynchronously (a NAT
//!   gateway becoming available, a service's tasks converging) with growing pauses and a
//!   deadline. While a poll waits, what it waits for is published to the operation running it
//!   ([`waiting_for`]), so the deploy program can print a heartbeat that says what an apply is
//!   waiting for.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

use crate::provider::ProviderError;

/// Retry policy for retryable errors: exponential backoff with full jitter, bounded.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The first backoff's upper bound.
    pub base_delay: Duration,
    /// The cap on any one backoff.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// The reconciler's policy: 8 attempts, backoffs up to 0.2 s, 0.4 s, … 10 s.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// A policy with these bounds.
    pub fn new(max_attempts: u32, base_delay: Duration, max_delay: Duration) -> Self {
        RetryPolicy {
            max_attempts,
            base_delay,
            max_delay,
        }
    }

    /// For small calls that must not be given up on lightly (the apply lock, a provider's read):
    /// 8 attempts, backoffs up to 0.1 s, 0.2 s, … 3.2 s (about 6 s at most in all).
    pub fn calls() -> Self {
        RetryPolicy::new(8, Duration::from_millis(100), Duration::from_millis(3200))
    }

    /// The same policy with another number of attempts.
    pub fn with_max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts;
        self
    }

    /// The delay before attempt `attempt + 1`: uniform in `[0, min(max, base * 2^(attempt-1))]`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        let cap = exp.min(self.max_delay);
        let millis = cap.as_millis() as u64;
        Duration::from_millis(if millis == 0 {
            0
        } else {
            rand::rng().random_range(0..=millis)
        })
    }
}

/// Runs `call` (given the attempt number, from 1) until it succeeds, fails with an error that
/// `retryable` refuses, or the policy's attempts are used up. Before each new attempt,
/// `on_retry(attempt, error, delay)` is told why and how long the pause is. Returns the last
/// result and the number of attempts made.
pub async fn run<T, F, Fut, R, O>(
    policy: &RetryPolicy,
    mut call: F,
    mut retryable: R,
    mut on_retry: O,
) -> (Result<T, ProviderError>, u32)
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, ProviderError>>,
    R: FnMut(&ProviderError) -> bool,
    O: FnMut(u32, &ProviderError, Duration),
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match call(attempt).await {
            Err(e) if attempt < policy.max_attempts && retryable(&e) => {
                let delay = policy.delay(attempt).max(e.retry_after.unwrap_or_default());
                on_retry(attempt, &e, delay);
                tokio::time::sleep(delay).await;
            }
            other => return (other, attempt),
        }
    }
}

/// [`run`] for the common case: retry what the provider classified as retryable, logging each
/// retry at debug level under `what`.
pub async fn retry<T, F, Fut>(
    policy: &RetryPolicy,
    what: &str,
    mut call: F,
) -> Result<T, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ProviderError>>,
{
    run(
        policy,
        |_| call(),
        ProviderError::is_retryable,
        |attempt, error, delay| {
            tracing::debug!(%what, attempt, %error, delay_ms = delay.as_millis() as u64, "call failed; retrying");
        },
    )
    .await
    .0
}

/// How long and how often to poll.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PollPolicy {
    /// Give up after this long.
    pub timeout: Duration,
    /// The first pause.
    pub first_interval: Duration,
    /// Pauses double up to this.
    pub max_interval: Duration,
}

impl PollPolicy {
    /// A policy with these bounds.
    pub fn new(timeout: Duration, first_interval: Duration, max_interval: Duration) -> Self {
        PollPolicy {
            timeout,
            first_interval,
            max_interval,
        }
    }

    /// The pause after `polls` polls: `first * 2^(polls-1)`, at most `max_interval`.
    pub fn interval(&self, polls: u32) -> Duration {
        self.first_interval
            .saturating_mul(1u32 << polls.saturating_sub(1).min(20))
            .min(self.max_interval.max(Duration::from_millis(1)))
    }
}

/// What one look at a polled condition found.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Probe<T> {
    /// The condition holds: stop polling with this value.
    Done(T),
    /// Not yet; what is seen now (`2 of 3 tasks running`), shown in heartbeats and in the
    /// timeout error.
    Waiting(String),
}

/// The error code of a [`poll`] that ran out of time.
pub const WAIT_TIMEOUT: &str = "WaitTimeout";

/// Polls `probe` under `policy` until it is [`Probe::Done`], fails, or the timeout passes (a
/// fatal [`WAIT_TIMEOUT`] error naming `what`, the time waited and the last status: a later
/// apply picks up where this one stopped, since the state is read again). While it waits, the
/// running operation's status says `waiting for <what>: <status>` (see [`waiting_for`]).
pub async fn poll<T, F, Fut>(
    what: &str,
    policy: &PollPolicy,
    mut probe: F,
) -> Result<T, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Probe<T>, ProviderError>>,
{
    let started = Instant::now();
    let mut polls = 0u32;
    let result = loop {
        polls += 1;
        let status = match probe().await {
            Ok(Probe::Done(v)) => break Ok(v),
            Ok(Probe::Waiting(status)) => status,
            Err(e) => break Err(e),
        };
        let pause = policy.interval(polls);
        if started.elapsed() + pause > policy.timeout {
            let seen = if status.is_empty() {
                String::new()
            } else {
                format!(" (last seen: {status})")
            };
            break Err(ProviderError::fatal(
                WAIT_TIMEOUT,
                format!(
                    "gave up after {} s waiting for {what}{seen}; apply again to continue",
                    started.elapsed().as_secs()
                ),
            ));
        }
        waiting_for(if status.is_empty() {
            what.to_string()
        } else {
            format!("{what}: {status}")
        });
        tracing::debug!(%what, %status, pause_ms = pause.as_millis() as u64, "waiting");
        tokio::time::sleep(pause).await;
    };
    done_waiting();
    result
}

/// What an operation is waiting for, shared between the operation (which sets it from inside
/// the provider, through [`poll`] or [`waiting_for`]) and whoever reports progress.
#[derive(Clone, Debug, Default)]
pub struct WaitStatus(Arc<Mutex<Option<String>>>);

impl WaitStatus {
    /// A status saying nothing.
    pub fn new() -> Self {
        WaitStatus::default()
    }
    /// What the operation waits for now, if it said.
    pub fn get(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
    fn set(&self, status: Option<String>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = status;
    }
    /// Runs `fut` with this status as the one [`waiting_for`] sets.
    pub fn scope<F: Future>(&self, fut: F) -> impl Future<Output = F::Output> {
        CURRENT.scope(self.clone(), fut)
    }
}

tokio::task_local! {
    static CURRENT: WaitStatus;
}

/// Says what the current operation is waiting for (shown in the deploy program's heartbeat
/// lines). Outside an operation's [`WaitStatus::scope`] it does nothing.
pub fn waiting_for(status: impl Into<String>) {
    let status = status.into();
    let _ = CURRENT.try_with(|s| s.set(Some(status)));
}

/// Clears what the current operation said it waits for.
pub fn done_waiting() {
    let _ = CURRENT.try_with(|s| s.set(None));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn delays_are_bounded_by_the_exponential_cap() {
        let p = RetryPolicy::new(8, Duration::from_millis(100), Duration::from_millis(3200));
        for _ in 0..50 {
            assert!(p.delay(1) <= Duration::from_millis(100));
            assert!(p.delay(3) <= Duration::from_millis(400));
            assert!(p.delay(30) <= Duration::from_millis(3200));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retryable_errors_are_retried_up_to_the_limit_and_others_not() {
        let calls = AtomicU32::new(0);
        let r: Result<(), _> = retry(&RetryPolicy::calls().with_max_attempts(3), "x", || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(ProviderError::retryable("Throttling", "slow down")) }
        })
        .await;
        assert_eq!(r.unwrap_err().code, "Throttling");
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        calls.store(0, Ordering::SeqCst);
        let r: Result<(), _> = retry(&RetryPolicy::calls(), "x", || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(ProviderError::fatal("Invalid", "no")) }
        })
        .await;
        assert_eq!(r.unwrap_err().code, "Invalid");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_honoured() {
        let started = tokio::time::Instant::now();
        let mut first = true;
        let (r, attempts) = run(
            &RetryPolicy::new(2, Duration::from_millis(1), Duration::from_millis(1)),
            |_| {
                let fail = std::mem::take(&mut first);
                async move {
                    if fail {
                        let mut e = ProviderError::retryable("Throttling", "later");
                        e.retry_after = Some(Duration::from_secs(7));
                        Err(e)
                    } else {
                        Ok(1)
                    }
                }
            },
            ProviderError::is_retryable,
            |_, _, _| {},
        )
        .await;
        assert_eq!((r.unwrap(), attempts), (1, 2));
        assert!(started.elapsed() >= Duration::from_secs(7));
    }

    #[tokio::test(start_paused = true)]
    async fn a_poll_publishes_what_it_waits_for_and_times_out_with_the_last_status() {
        let status = WaitStatus::new();
        let seen = status.clone();
        let policy = PollPolicy::new(
            Duration::from_secs(10),
            Duration::from_secs(1),
            Duration::from_secs(4),
        );
        let polls = AtomicU32::new(0);
        let r: Result<(), _> = status
            .scope(poll("nat-1 to become available", &policy, || {
                let n = polls.fetch_add(1, Ordering::SeqCst);
                let seen = seen.clone();
                async move {
                    if n > 0 {
                        assert_eq!(
                            seen.get().as_deref(),
                            Some("nat-1 to become available: pending")
                        );
                    }
                    Ok(Probe::Waiting("pending".into()))
                }
            }))
            .await;
        let e = r.unwrap_err();
        assert_eq!(e.code, WAIT_TIMEOUT);
        assert!(
            e.message
                .contains("nat-1 to become available (last seen: pending)"),
            "{e}"
        );
        // 1 + 2 + 4 s of pauses fit in 10 s, the next 4 s would not.
        assert_eq!(polls.load(Ordering::SeqCst), 4);
        assert_eq!(status.get(), None, "cleared when the poll ends");
    }

    #[tokio::test(start_paused = true)]
    async fn a_poll_ends_with_the_probes_value() {
        let policy = PollPolicy::new(
            Duration::from_secs(60),
            Duration::from_millis(200),
            Duration::from_millis(600),
        );
        let polls = AtomicU32::new(0);
        let v = poll("x", &policy, || {
            let n = polls.fetch_add(1, Ordering::SeqCst);
            async move {
                Ok(if n == 3 {
                    Probe::Done(n)
                } else {
                    Probe::Waiting(String::new())
                })
            }
        })
        .await
        .unwrap();
        assert_eq!(v, 3);
        assert_eq!(policy.interval(1), Duration::from_millis(200));
        assert_eq!(policy.interval(5), Duration::from_millis(600));
    }
}
